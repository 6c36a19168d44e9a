"""The agents on real models through transformers (no fakes): the forged tiny LM, and SmolLM2.

The tiny LM is random: its replies are gibberish, so these tests check that the loop completes,
records what happened, and falls back honestly (rejected rewrites, rubric scores, fallback plan).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from agents.enhancer import EnhancerSettings, enhance_prompt
from agents.llm_client import (
    ChatCall,
    ChatMessage,
    LLMTimeoutError,
    TransformersChatClient,
    build_chat_client,
)
from agents.planner import plan_storyboard
from weights.forge import ensure_forged
from weights.profiles import get_profile

PROMPT = "A runner drinks an AquaBolt energy drink on a mountain ridge at sunrise"


@pytest.fixture(scope="module")
def tiny_llm_dir() -> Path:
    return ensure_forged("tiny-llm")


@pytest.fixture(scope="module")
def tiny_client(tiny_llm_dir: Path) -> TransformersChatClient:
    client = build_chat_client(get_profile("tiny").model("llm"))
    assert isinstance(client, TransformersChatClient) and client.model_dir == str(tiny_llm_dir)
    client.load()
    return client


def test_sampling_is_seeded(tiny_client: TransformersChatClient) -> None:
    messages = [ChatMessage(role="user", content="Describe a car.")]
    first = asyncio.run(tiny_client.with_seed(7).chat(messages, max_tokens=12))
    second = asyncio.run(tiny_client.with_seed(7).chat(messages, max_tokens=12))
    other = asyncio.run(tiny_client.with_seed(8).chat(messages, max_tokens=12))
    assert first == second and first != other and first.strip()


def test_a_batched_request_answers_what_it_answers_alone(tiny_client: TransformersChatClient) -> None:
    # Different lengths (left padding), temperatures (greedy and sampled), budgets and seeds.
    calls = [
        ChatCall(messages=[ChatMessage(role="user", content="Describe a car.")], max_tokens=16, seed=3),
        ChatCall(
            messages=[
                ChatMessage(role="system", content="You are a cinematographer writing shot lists."),
                ChatMessage(role="user", content="Rewrite: a runner at dawn on a ridge, wide shot."),
            ],
            temperature=0.0,
            max_tokens=24,
            seed=4,
        ),
        ChatCall(messages=[ChatMessage(role="user", content="Hi")], temperature=1.3, max_tokens=8, seed=5),
    ]
    batched = asyncio.run(tiny_client.chat_many(calls))
    alone = [asyncio.run(tiny_client.chat_many([call]))[0] for call in calls]
    assert batched == alone
    assert len(set(batched)) == 3 and all(isinstance(text, str) and text for text in batched)
    # the seed is what fixes a row: another seed in the same batch position answers differently
    reseeded = asyncio.run(tiny_client.chat_many([calls[0].model_copy(update={"seed": 99}), *calls[1:]]))
    assert reseeded[0] != batched[0] and reseeded[1:] == batched[1:]


def test_time_limit_raises_timeout(tiny_client: TransformersChatClient) -> None:
    messages = [ChatMessage(role="user", content="Write a story.")]
    with pytest.raises(LLMTimeoutError):
        asyncio.run(tiny_client.chat(messages, max_tokens=2000, timeout_s=0.001))


def test_enhancer_completes_on_the_tiny_lm(tiny_client: TransformersChatClient) -> None:
    settings = EnhancerSettings(max_iterations=2, max_tokens=32, timeout_s=120)
    result = asyncio.run(enhance_prompt(tiny_client.with_seed(0), PROMPT, settings, context="Scene 1 of 3"))
    assert not result.degraded and 1 <= len(result.iterations) <= 2
    assert result.stop_reason in ("approved", "plateau", "max_iterations")
    for iteration in result.iterations:
        # real model output is recorded as produced; gibberish is rejected, not passed on
        assert iteration.cinematographer_output == iteration.calls[0].response
        if iteration.candidate_rejected:
            assert iteration.rejection_reason
        assert iteration.critic_fallback_used or not iteration.critic_repair_used or iteration.scores
    if all(it.candidate_rejected for it in result.iterations):
        assert result.final_prompt == PROMPT
    summary = json.loads(result.trace_files()["prompt_trace_summary.json"])
    assert summary["final_prompt"] == result.final_prompt and summary["iterations"]


def test_planner_on_the_tiny_lm_gives_the_right_scene_count(tiny_client: TransformersChatClient) -> None:
    plan = asyncio.run(
        plan_storyboard(
            tiny_client.with_seed(0), "Sell shoes. Show a runner.", 2, timeout_s=120, max_tokens=48
        )
    )
    assert len(plan.scenes) == 2 and [s.index for s in plan.scenes] == [1, 2]
    assert plan.calls and all(call.response is not None for call in plan.calls)
    if plan.degraded:  # what a random LM mostly gets: the fallback, said so
        assert plan.warnings and [s.prompt for s in plan.scenes] == ["Sell shoes.", "Show a runner."]


@pytest.mark.slow
def test_enhancer_on_smollm2() -> None:
    """The embedded real model: completes, not degraded, and everything is in the trace."""
    client = build_chat_client(get_profile("tiny-smollm").model("llm"))
    settings = EnhancerSettings(max_iterations=2, max_tokens=160, timeout_s=300)
    result = asyncio.run(enhance_prompt(client, PROMPT, settings))
    assert not result.degraded and result.iterations
    assert result.final_prompt.strip()
    files = result.trace_files()
    assert "01_agent1_iteration_1.txt" in files and "02_agent2_iteration_1.txt" in files
