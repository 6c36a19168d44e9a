"""Planner, enhancer and chat clients against a scripted fake LLM (a test double of the LLM only)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from agents.enhancer import (
    EnhancementResult,
    EnhancerSettings,
    clean_candidate,
    enhance_prompt,
    overall_score,
    rubric_scores,
)
from agents.llm_client import (
    ChatClient,
    ChatMessage,
    FaultyChatClient,
    HandleChatClient,
    LLMTimeoutError,
    LLMUnavailableError,
    OpenAIChatClient,
    TransformersChatClient,
    VLLMEngineChatClient,
    build_chat_client,
    extract_json,
)
from agents.planner import PlannerInputError, fallback_plan, plan_storyboard
from agents.prompts import DEFAULT_NEGATIVE_PROMPT, PROMPT_VERSION
from agents.schemas import CRITERIA, DEFAULT_SCORE_WEIGHTS, Critique
from agents.vllm_engine import engine_args_dict
from weights.profiles import ModelSpec

ORIGINAL = "A runner drinks an AquaBolt energy drink on a mountain ridge at sunrise"


def rewrite(extra: str) -> str:
    """A plausible Cinematographer reply that keeps the subject."""
    return f"{ORIGINAL}, {extra}, shot on a 35mm lens at f/2.8, golden hour backlight, rule of thirds framing"


def critique(score: float, feedback: str = "add more detail", negative: str = "blurry, watermark") -> str:
    return json.dumps({**dict.fromkeys(CRITERIA, score), "feedback": feedback, "negative_prompt": negative})


class ScriptedChatClient:
    """Answers each call with the next scripted item: a string, or an exception to raise."""

    def __init__(self, script: list[str | Exception]):
        self.script = list(script)
        self.calls: list[dict[str, Any]] = []

    async def chat(
        self,
        messages: list[ChatMessage],
        *,
        temperature: float = 0.7,
        max_tokens: int = 512,
        json_schema: dict[str, Any] | None = None,
        timeout_s: float | None = None,
    ) -> str:
        self.calls.append(
            {
                "messages": messages,
                "temperature": temperature,
                "json_schema": json_schema,
                "timeout_s": timeout_s,
            }
        )
        if not self.script:
            raise AssertionError("the fake LLM was called more often than scripted")
        item = self.script.pop(0)
        if isinstance(item, Exception):
            raise item
        return item


def run(coro: Any) -> Any:
    return asyncio.run(coro)


# --------------------------------------------------------------------------------------------
# enhancer loop
# --------------------------------------------------------------------------------------------


def test_scripted_client_satisfies_the_protocol() -> None:
    assert isinstance(ScriptedChatClient([]), ChatClient)


def test_approves_at_first_iteration() -> None:
    client = ScriptedChatClient([rewrite("determined smile"), critique(90, negative="blurry, extra fingers")])
    result = run(enhance_prompt(client, ORIGINAL, EnhancerSettings()))
    assert result.approved and result.stop_reason == "approved" and not result.degraded
    assert result.final_prompt == rewrite("determined smile")
    assert result.negative_prompt == "blurry, extra fingers" and result.negative_prompt_source == "critic"
    assert len(result.iterations) == 1 and result.iterations[0].overall == 90.0
    assert result.prompt_version == PROMPT_VERSION
    # temperatures per agent, schema only for the critic
    assert [c["temperature"] for c in client.calls] == [0.7, 0.3]
    assert client.calls[0]["json_schema"] is None and client.calls[1]["json_schema"] == Critique.json_schema()


def test_iterates_with_feedback_then_approves() -> None:
    client = ScriptedChatClient(
        [rewrite("v1"), critique(70, feedback="name the lens"), rewrite("v2"), critique(88)]
    )
    result = run(enhance_prompt(client, ORIGINAL, EnhancerSettings()))
    assert result.stop_reason == "approved" and result.approved
    assert [it.overall for it in result.iterations] == [70.0, 88.0]
    assert result.final_prompt == rewrite("v2") and result.best_iteration == 2
    second_rewrite_request = client.calls[2]["messages"][-1].content
    assert "name the lens" in second_rewrite_request and rewrite("v1") in second_rewrite_request


def test_plateau_stops_when_gain_is_small_and_keeps_best() -> None:
    client = ScriptedChatClient([rewrite("v1"), critique(70), rewrite("v2"), critique(71.5)])
    result = run(enhance_prompt(client, ORIGINAL, EnhancerSettings(max_iterations=5)))
    assert result.stop_reason == "plateau" and not result.approved
    assert result.final_prompt == rewrite("v2") and result.best_overall == 71.5


def test_plateau_after_a_worse_rewrite_keeps_the_earlier_prompt() -> None:
    client = ScriptedChatClient([rewrite("v1"), critique(75), rewrite("v2"), critique(60)])
    result = run(enhance_prompt(client, ORIGINAL, EnhancerSettings(max_iterations=5)))
    assert result.stop_reason == "plateau"
    assert result.final_prompt == rewrite("v1") and result.best_iteration == 1


def test_low_scoring_rewrites_never_replace_the_original() -> None:
    client = ScriptedChatClient(
        [rewrite("v1"), critique(20, negative="I am thrilled to share a film about it")]
    )
    result = run(enhance_prompt(client, ORIGINAL, EnhancerSettings(max_iterations=1)))
    assert result.final_prompt == ORIGINAL and result.final_iteration is None
    assert result.best_iteration == 1 and result.best_overall == 20.0 and not result.approved
    assert result.negative_prompt == DEFAULT_NEGATIVE_PROMPT
    assert "kept the original prompt" in result.warnings[-1]


def test_max_iterations() -> None:
    script: list[str | Exception] = []
    for k, score in enumerate((50, 60, 70)):
        script += [rewrite(f"v{k}"), critique(score)]
    result = run(enhance_prompt(ScriptedChatClient(script), ORIGINAL, EnhancerSettings(max_iterations=3)))
    assert result.stop_reason == "max_iterations" and not result.approved
    assert len(result.iterations) == 3 and result.final_prompt == rewrite("v2")


def test_threshold_is_configurable() -> None:
    client = ScriptedChatClient([rewrite("v1"), critique(72)])
    result = run(enhance_prompt(client, ORIGINAL, EnhancerSettings(approve_threshold=70)))
    assert result.approved and result.stop_reason == "approved"


def test_invalid_critic_json_is_repaired_once() -> None:
    client = ScriptedChatClient([rewrite("v1"), "Great prompt! 9/10", critique(90)])
    result = run(enhance_prompt(client, ORIGINAL, EnhancerSettings()))
    iteration = result.iterations[0]
    assert iteration.critic_repair_used and not iteration.critic_fallback_used
    assert result.approved and not result.critic_fallback_used
    repair_request = client.calls[2]["messages"]
    assert repair_request[-2].role == "assistant" and repair_request[-2].content == "Great prompt! 9/10"
    assert "not valid JSON" in repair_request[-1].content


def test_invalid_critic_json_twice_falls_back_to_rubric_marked_in_trace() -> None:
    client = ScriptedChatClient([rewrite("v1"), "nope", '{"completeness": 101}'])
    result = run(enhance_prompt(client, ORIGINAL, EnhancerSettings(max_iterations=1)))
    iteration = result.iterations[0]
    assert iteration.critic_fallback_used and result.critic_fallback_used and not result.degraded
    assert iteration.scores == rubric_scores(rewrite("v1"), ORIGINAL)
    assert iteration.overall == overall_score(iteration.scores, DEFAULT_SCORE_WEIGHTS)
    assert any("rubric fallback" in w for w in result.warnings)
    assert result.negative_prompt == DEFAULT_NEGATIVE_PROMPT and result.negative_prompt_source == "default"
    files = result.trace_files()
    critic_file = json.loads(files["02_agent2_iteration_1.txt"])
    assert critic_file["critic_fallback_used"] is True and "nope" in critic_file["raw_response"]
    assert json.loads(files["prompt_trace_summary.json"])["critic_fallback_used"] is True


@pytest.mark.parametrize("error", [LLMTimeoutError("timed out"), LLMUnavailableError("connection refused")])
def test_llm_failure_returns_original_prompt_degraded(error: Exception) -> None:
    result = run(enhance_prompt(ScriptedChatClient([error]), ORIGINAL, EnhancerSettings()))
    assert result.degraded and result.stop_reason == "degraded" and not result.approved
    assert result.final_prompt == ORIGINAL and result.iterations == []
    assert result.negative_prompt == DEFAULT_NEGATIVE_PROMPT
    assert result.failed_call is not None and result.failed_call.agent == "cinematographer"
    assert str(error) in result.failed_call.error
    assert "used the original prompt" in result.warnings[0]
    assert set(result.trace_files()) == {
        "00_original_prompt.txt",
        "final_enhanced_prompt.txt",
        "prompt_trace_summary.json",
    }


def test_any_client_exception_is_a_model_failure_not_raised() -> None:
    result = run(enhance_prompt(ScriptedChatClient([ConnectionResetError("peer gone")]), ORIGINAL))
    assert result.degraded and result.final_prompt == ORIGINAL
    assert result.failed_call is not None and "ConnectionResetError" in result.failed_call.error
    plan = run(plan_storyboard(ScriptedChatClient([KeyError("choices")]), "Sell shoes", 1))
    assert plan.degraded and "KeyError" in plan.warnings[0]


def test_critic_failure_in_a_later_iteration_keeps_best_prompt_degraded() -> None:
    client = ScriptedChatClient([rewrite("v1"), critique(70), rewrite("v2"), LLMTimeoutError("slow")])
    result = run(enhance_prompt(client, ORIGINAL, EnhancerSettings()))
    assert result.degraded and result.stop_reason == "degraded"
    assert result.final_prompt == rewrite("v1") and len(result.iterations) == 1
    assert result.failed_call is not None and result.failed_call.agent == "prompt_engineer"
    # the half-done iteration is in the trace too: the rewrite that was made, then the failed call
    assert [c.agent for c in result.incomplete_calls] == ["cinematographer", "prompt_engineer"]
    summary = json.loads(result.trace_files()["prompt_trace_summary.json"])
    assert summary["incomplete_calls"][0]["response"] == rewrite("v2")


def test_unusable_cinematographer_reply_keeps_previous_prompt() -> None:
    client = ScriptedChatClient(
        ["desktop galaxies ballast Els totalitarian tutorials lifestyle", critique(60)]
    )
    result = run(enhance_prompt(client, ORIGINAL, EnhancerSettings(max_iterations=1)))
    iteration = result.iterations[0]
    assert iteration.candidate_rejected and "drops the subject" in iteration.rejection_reason
    assert iteration.candidate_prompt == ORIGINAL and result.final_prompt == ORIGINAL
    # the critic scored the prompt that was kept
    assert ORIGINAL in client.calls[1]["messages"][-1].content


def test_timeout_setting_is_passed_to_every_call() -> None:
    client = ScriptedChatClient([rewrite("v1"), critique(90)])
    run(enhance_prompt(client, ORIGINAL, EnhancerSettings(timeout_s=7.5)))
    assert {c["timeout_s"] for c in client.calls} == {7.5}


def test_trace_files_names_and_contents() -> None:
    client = ScriptedChatClient([rewrite("v1"), critique(70), rewrite("v2"), critique(90)])
    result = run(enhance_prompt(client, ORIGINAL, EnhancerSettings(), context="Scene 1 of 3"))
    files = result.trace_files()
    assert list(files) == [
        "00_original_prompt.txt",
        "01_agent1_iteration_1.txt",
        "02_agent2_iteration_1.txt",
        "03_agent1_iteration_2.txt",
        "04_agent2_iteration_2.txt",
        "final_enhanced_prompt.txt",
        "prompt_trace_summary.json",
    ]
    assert files["00_original_prompt.txt"].strip() == ORIGINAL
    assert files["03_agent1_iteration_2.txt"].strip() == rewrite("v2")
    assert json.loads(files["04_agent2_iteration_2.txt"])["overall"] == 90.0
    assert files["final_enhanced_prompt.txt"].strip() == rewrite("v2")
    summary = json.loads(files["prompt_trace_summary.json"])
    assert summary["prompt_version"] == PROMPT_VERSION and summary["approved"] is True
    assert summary["stop_reason"] == "approved" and summary["degraded"] is False
    assert summary["final_prompt"] == rewrite("v2") and summary["negative_prompt"] == "blurry, watermark"
    assert [it["overall"] for it in summary["iterations"]] == [70.0, 90.0]
    first_calls = summary["iterations"][0]["calls"]
    assert [c["agent"] for c in first_calls] == ["cinematographer", "prompt_engineer"]
    assert "Scene 1 of 3" in first_calls[0]["messages"][-1]["content"]
    assert all(c["seconds"] >= 0 for c in first_calls)
    # the result round-trips through JSON (it crosses Ray handles)
    assert EnhancementResult.model_validate_json(result.model_dump_json()).trace_files() == files


def test_settings_validation() -> None:
    with pytest.raises(ValidationError):
        EnhancerSettings(max_iterations=0)
    with pytest.raises(ValidationError):
        EnhancerSettings(weights={"completeness": 1.0})
    assert abs(sum(EnhancerSettings().weights.values()) - 1.0) < 1e-9


def test_rubric_rewards_cinematography_and_subject() -> None:
    rich = rubric_scores(rewrite("determined smile"), ORIGINAL)
    bare = rubric_scores("a drink", ORIGINAL)
    assert rich["cinematography"] == 100 and rich["brand_alignment"] == 100
    assert overall_score(rich, DEFAULT_SCORE_WEIGHTS) > overall_score(bare, DEFAULT_SCORE_WEIGHTS) + 30


def test_clean_candidate_strips_labels_and_rejects_junk() -> None:
    text, reason = clean_candidate(f'Rewritten prompt: "{rewrite("x")}"', ORIGINAL, 0.5)
    assert reason == "" and text == rewrite("x")
    assert clean_candidate("", ORIGINAL, 0.5)[1].startswith("reply too short")
    assert "not mostly text" in clean_candidate("{}[]{}[] 1234 5678 $$$$ %%%% ####", ORIGINAL, 0.5)[1]


# --------------------------------------------------------------------------------------------
# planner
# --------------------------------------------------------------------------------------------

BRIEF = "AquaBolt launches a new energy drink. A runner trains at dawn. She wins the race."


def storyboard(n: int) -> str:
    scenes = [{"prompt": f"scene {k}: a runner at dawn", "shot_notes": f"wide shot {k}"} for k in range(n)]
    return json.dumps({"scenes": scenes})


def test_planner_returns_model_plan() -> None:
    client = ScriptedChatClient([storyboard(3)])
    plan = run(plan_storyboard(client, BRIEF, 3))
    assert not plan.degraded and [s.index for s in plan.scenes] == [1, 2, 3]
    assert plan.scenes[0].prompt == "scene 0: a runner at dawn" and plan.scenes[2].shot_notes == "wide shot 2"
    schema = client.calls[0]["json_schema"]
    assert schema["properties"]["scenes"]["minItems"] == 3 == schema["properties"]["scenes"]["maxItems"]


def test_planner_repairs_wrong_scene_count() -> None:
    client = ScriptedChatClient([f"Here you go: {storyboard(2)}", storyboard(3)])
    plan = run(plan_storyboard(client, BRIEF, 3))
    assert (
        not plan.degraded and len(plan.scenes) == 3 and [c.purpose for c in plan.calls] == ["draft", "repair"]
    )
    assert "expected 3 scenes, got 2" in client.calls[1]["messages"][-1].content


def test_planner_rejects_repeated_or_unrelated_scenes() -> None:
    repeated = json.dumps(
        {"scenes": [{"prompt": "The new story is a great one.", "shot_notes": "wide shot"}] * 2}
    )
    unrelated = json.dumps(
        {"scenes": [{"prompt": f"A quiet lake with ducks {k}", "shot_notes": "wide shot"} for k in range(2)]}
    )
    plan = run(plan_storyboard(ScriptedChatClient([repeated, unrelated]), BRIEF, 2))
    assert plan.degraded and "share no word with the brief" in plan.warnings[0]
    assert "repeat each other" in plan.calls[1].messages[-1].content


def test_planner_falls_back_after_invalid_json_twice() -> None:
    plan = run(plan_storyboard(ScriptedChatClient(["garbage", "more garbage"]), BRIEF, 3))
    assert plan.degraded and "invalid JSON twice" in plan.warnings[0]
    assert [s.prompt for s in plan.scenes] == [
        "AquaBolt launches a new energy drink.",
        "A runner trains at dawn.",
        "She wins the race.",
    ]
    assert all(s.shot_notes for s in plan.scenes)


def test_planner_falls_back_when_llm_unavailable() -> None:
    plan = run(plan_storyboard(ScriptedChatClient([LLMTimeoutError("slow")]), "Sell shoes", 2, timeout_s=3))
    assert plan.degraded and "unavailable" in plan.warnings[0]
    assert [s.prompt for s in plan.scenes] == ["Sell shoes", "Sell shoes"]
    assert plan.calls[0].error and "slow" in plan.calls[0].error


def test_planner_rejects_bad_inputs() -> None:
    with pytest.raises(PlannerInputError):
        run(plan_storyboard(ScriptedChatClient([]), "  ", 3))
    with pytest.raises(PlannerInputError):
        run(plan_storyboard(ScriptedChatClient([]), BRIEF, 0))


def test_fallback_plan_is_deterministic() -> None:
    assert fallback_plan(BRIEF, 4, "w") == fallback_plan(BRIEF, 4, "w")


# --------------------------------------------------------------------------------------------
# clients
# --------------------------------------------------------------------------------------------


def test_extract_json() -> None:
    assert extract_json('Sure! ```json\n{"a": {"b": "}"}}\n``` bye') == '{"a": {"b": "}"}}'
    assert extract_json('{broken {"ok": 1}') == '{"ok": 1}'
    assert extract_json("no json here") is None


def test_faulty_client_from_config_injects_faults_without_loading_a_model() -> None:
    for mode, error in (("timeout", LLMTimeoutError), ("unavailable", LLMUnavailableError)):
        # the source does not exist: nothing is loaded or forged for these modes
        client = build_chat_client(
            ModelSpec(source="forge:nope", options={"backend": "transformers", "fail": mode})
        )
        with pytest.raises(error):
            run(client.chat([ChatMessage(role="user", content="hi")]))
        result = run(enhance_prompt(client, ORIGINAL, EnhancerSettings()))
        assert result.degraded and result.final_prompt == ORIGINAL


def test_faulty_client_invalid_json_drives_the_rubric_fallback() -> None:
    client = FaultyChatClient("invalid_json", ScriptedChatClient([rewrite("v1")]))
    result = run(enhance_prompt(client, ORIGINAL, EnhancerSettings(max_iterations=1)))
    assert result.iterations[0].critic_fallback_used and result.final_prompt == rewrite("v1")


def test_build_chat_client_dispatch() -> None:
    with pytest.raises(ValidationError):
        build_chat_client(ModelSpec(source="x", options={"backend": "transformers", "bogus": 1}))
    with pytest.raises(ValueError, match="base_url"):
        build_chat_client(ModelSpec(source="x", options={"backend": "openai"}))
    with pytest.raises(ValueError, match="handle"):
        build_chat_client(ModelSpec(source="x", options={"backend": "ray-serve-llm"}))
    openai = build_chat_client(
        ModelSpec(source="m", options={"backend": "openai", "base_url": "http://h/v1"})
    )
    assert isinstance(openai, OpenAIChatClient) and openai.model == "m"
    local = build_chat_client(ModelSpec(source="/some/dir", options={"backend": "transformers"}))
    assert isinstance(local, TransformersChatClient) and local._model is None  # loads lazily
    handle = build_chat_client(
        ModelSpec(source="Qwen/Q", options={"backend": "ray-serve-llm"}), handle=object()
    )
    assert isinstance(handle, HandleChatClient) and handle.protocol == "ray-serve-llm"
    ours = build_chat_client(ModelSpec(source="forge:tiny-llm", options={"backend": "vllm"}), handle=object())
    assert isinstance(ours, HandleChatClient) and ours.protocol == "openai-dict"


def _openai_client(handler: Any) -> OpenAIChatClient:
    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return OpenAIChatClient("http://llm/v1", "tiny", api_key="k", seed=3, http_client=http)


def test_openai_client_sends_json_schema_and_reads_content() -> None:
    seen: dict[str, Any] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen["url"], seen["auth"] = str(request.url), request.headers["authorization"]
        seen["body"] = json.loads(request.content)
        return httpx.Response(200, json={"choices": [{"message": {"role": "assistant", "content": "{}"}}]})

    schema = Critique.json_schema()
    reply = run(_openai_client(handler).chat([ChatMessage(role="user", content="hi")], json_schema=schema))
    assert reply == "{}" and seen["url"] == "http://llm/v1/chat/completions" and seen["auth"] == "Bearer k"
    assert seen["body"]["response_format"]["json_schema"]["schema"] == schema
    assert seen["body"]["seed"] == 3 and seen["body"]["messages"] == [{"role": "user", "content": "hi"}]


def test_openai_client_maps_failures() -> None:
    def server_error(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, text="overloaded")

    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    def refused(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    message = [ChatMessage(role="user", content="hi")]
    with pytest.raises(LLMUnavailableError, match="503"):
        run(_openai_client(server_error).chat(message))
    with pytest.raises(LLMTimeoutError):
        run(_openai_client(slow).chat(message, timeout_s=1))
    with pytest.raises(LLMUnavailableError, match="unreachable"):
        run(_openai_client(refused).chat(message))


class _FakeRemote:
    def __init__(self, reply: Any, delay: float = 0.0):
        self.reply, self.delay, self.bodies = reply, delay, []

    async def _answer(self, body: dict[str, Any]) -> Any:
        self.bodies.append(body)
        await asyncio.sleep(self.delay)
        return self.reply

    def remote(self, body: dict[str, Any]) -> Any:
        return self._answer(body)


class _FakeHandle:
    def __init__(self, reply: Any, delay: float = 0.0):
        self.chat = _FakeRemote(reply, delay)


def test_handle_client_openai_dict_protocol() -> None:
    ok = {"choices": [{"message": {"role": "assistant", "content": "hello"}}]}
    handle = _FakeHandle(ok)
    client = HandleChatClient(handle, model="tiny", protocol="openai-dict").with_seed(5)
    assert (
        run(
            client.chat([ChatMessage(role="user", content="hi")], json_schema={"type": "object"}, timeout_s=9)
        )
        == "hello"
    )
    body = handle.chat.bodies[0]
    assert body["seed"] == 5 and body["timeout_s"] == 9 and body["response_format"]["type"] == "json_schema"
    with pytest.raises(LLMUnavailableError, match="boom"):
        run(
            HandleChatClient(
                _FakeHandle({"object": "error", "error": "boom"}), model="t", protocol="openai-dict"
            ).chat([])
        )
    with pytest.raises(LLMTimeoutError):
        run(
            HandleChatClient(_FakeHandle(ok, delay=5), model="t", protocol="openai-dict").chat(
                [], timeout_s=0.05
            )
        )


class _FakeOutput:
    def __init__(self, text: str):
        self.outputs = [type("Completion", (), {"text": text})()]


class _FakeTokenizer:
    def apply_chat_template(
        self, messages: list[dict[str, str]], tokenize: bool, add_generation_prompt: bool
    ) -> str:
        return "".join(f"<{m['role']}>{m['content']}" for m in messages) + "<assistant>"

    def encode(self, text: str, add_special_tokens: bool) -> list[int]:
        return [ord(c) for c in text]


class _FakeEngine:
    """Stands in for vLLM's AsyncLLM: streams two partial outputs, records aborts."""

    def __init__(self, delay: float = 0.0):
        self.delay, self.requests, self.aborted = delay, [], []

    def get_tokenizer(self) -> _FakeTokenizer:
        return _FakeTokenizer()

    async def generate(self, prompt: Any, params: Any, request_id: str) -> Any:
        self.requests.append((prompt, params, request_id))
        yield _FakeOutput("par")
        await asyncio.sleep(self.delay)
        yield _FakeOutput("partial answer")

    async def abort(self, request_id: str) -> None:
        self.aborted.append(request_id)


def _params(temperature: float, max_tokens: int, seed: int, json_schema: Any) -> dict[str, Any]:
    return {"temperature": temperature, "max_tokens": max_tokens, "seed": seed, "json_schema": json_schema}


def test_vllm_engine_client_with_injected_engine() -> None:
    engine = _FakeEngine()
    client = VLLMEngineChatClient(engine, seed=10, sampling_params_factory=_params)
    messages = [ChatMessage(role="user", content="hi")]
    assert run(client.chat(messages, temperature=0.3, json_schema={"type": "object"})) == "partial answer"
    prompt, params, _ = engine.requests[0]
    assert prompt == {"prompt_token_ids": [ord(c) for c in "<user>hi<assistant>"]}
    assert params == {"temperature": 0.3, "max_tokens": 512, "seed": 11, "json_schema": {"type": "object"}}
    slow = _FakeEngine(delay=5)
    with pytest.raises(LLMTimeoutError):
        run(VLLMEngineChatClient(slow, sampling_params_factory=_params).chat(messages, timeout_s=0.05))
    assert len(slow.aborted) == 1


def test_vllm_engine_args_are_data() -> None:
    args = engine_args_dict("/m", max_model_len=2048, engine_kwargs={"max_num_seqs": 2})
    assert args["structured_outputs_config"] == {"backend": "guidance", "disable_any_whitespace": True}
    assert args["enforce_eager"] is True and args["max_num_seqs"] == 2 and args["max_model_len"] == 2048
    assert "enforce_eager" not in engine_args_dict("/m", device="cuda")
