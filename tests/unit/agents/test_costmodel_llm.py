"""The cost-model LLM: the decode curve pinned to vLLM's published figures; valid agent replies that
the real planner and enhancer accept, the critic approving at the configured round."""

from __future__ import annotations

import asyncio

import pytest

from agents.costmodel import CostModelChatClient, chat_client_spec
from agents.enhancer import EnhancerSettings, enhance_prompt
from agents.llm_client import LLMOptions
from agents.planner import plan_storyboard
from weights.costmodel import LLM_CURVES
from weights.profiles import ModelSpec, get_profile


def test_decode_curve_matches_vllm_figures() -> None:
    curve = LLM_CURVES["vllm-8b-h100"]
    assert curve.aggregate_tokens_per_s(1) == pytest.approx(100, rel=0.05)
    assert curve.aggregate_tokens_per_s(64) == pytest.approx(5100, rel=0.05)
    assert 70 <= curve.aggregate_tokens_per_s(64) / 64 <= 100  # per stream in server mode
    # a 150-token rewrite alone: 1.5 s; four at once barely slower each (batch 1 and 4 within 5%)
    assert curve.seconds(1, 150) == pytest.approx(1.5, rel=0.05)
    assert curve.seconds(4, 150) == pytest.approx(1.5, rel=0.05)


def _client(rounds: int) -> CostModelChatClient:
    spec = ModelSpec(
        source="costmodel:vllm-8b-h100", options={"costmodel": {"critic_rounds": rounds, "time_scale": 1e-4}}
    )
    return CostModelChatClient(spec)


def test_planner_accepts_the_storyboard() -> None:
    plan = asyncio.run(plan_storyboard(_client(2), "A 30-second ad for a solar bike light", 3))
    assert not plan.degraded and len(plan.scenes) == 3


@pytest.mark.parametrize("rounds", [1, 2, 3])
def test_critic_approves_at_the_configured_round(rounds: int) -> None:
    result = asyncio.run(
        enhance_prompt(
            _client(rounds), "a red bike light on a rainy city street", EnhancerSettings(max_iterations=4)
        )
    )
    assert result.approved and result.stop_reason == "approved"
    assert len(result.iterations) == rounds
    assert not result.degraded and not any(it.critic_fallback_used for it in result.iterations)


def test_concurrent_calls_are_decoded_together() -> None:
    client = _client(2)

    async def many() -> list[str]:
        return await asyncio.gather(*(client.chat([]) for _ in range(8)))

    assert len(asyncio.run(many())) == 8
    assert client.calls == 8


def test_cost_model_options_are_stripped_for_the_chat_client() -> None:
    spec = get_profile("cluster-twin").model("llm")
    LLMOptions.model_validate(chat_client_spec(spec).options)  # would fail with 'costmodel' left in
