"""Enhancer deployment: the storyboard planner and the two-agent prompt loop (``agents``), on the LLM.

The LLM lives in its own deployment (``deployments/llm.py`` on CPU, ``ray.serve.llm`` on GPU) and
is reached through ``HandleChatClient``; each call is seeded from the generation's seed, so the same
request and seed give the same prompts. Results cross to the Director as ``PlanOutcome`` /
``EnhanceOutcome`` (pydantic), including the trace files.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from ray import serve
from ray.serve.handle import DeploymentHandle

from agents.costmodel import chat_client_spec
from agents.enhancer import EnhancerSettings, enhance_prompt
from agents.llm_client import build_chat_client
from agents.planner import plan_storyboard
from deployments.settings import EnhancerReplicaSettings
from director.ports import EnhanceOutcome, PlanOutcome, plan_outcome
from weights.profiles import ModelSpec

logger = logging.getLogger(__name__)


@serve.deployment(name="Enhancer", max_ongoing_requests=32, health_check_period_s=30)
class EnhancerDeployment:
    """Plans storyboards and enhances scene prompts."""

    def __init__(self, settings: dict[str, Any], llm: DeploymentHandle | None = None) -> None:
        self.settings = EnhancerReplicaSettings.model_validate(settings)
        self.spec = chat_client_spec(self.settings.llm)  # a cost-model LLM's own options stay in the LLM
        self.llm = llm
        self.model_dir = Path(self.settings.model_dir)

    def _client(self, seed: int | None) -> Any:
        # A cheap per-call client: the model stays in the LLM deployment; only the seed differs.
        return build_chat_client(
            self.spec,
            model_dir=self.model_dir,
            seed=seed or 0,
            handle=self.llm,
            handle_request_type=_ray_serve_llm_request_type(self.spec),
        )

    async def plan(self, brief: str, num_scenes: int, seed: int | None = None) -> PlanOutcome:
        """The storyboard plan (degraded, never raising, when the LLM fails)."""
        plan = await plan_storyboard(
            self._client(seed), brief, num_scenes, timeout_s=self.settings.enhancer.llm_timeout_s
        )
        return plan_outcome(plan)

    async def enhance(
        self,
        prompt: str,
        max_iterations: int,
        context: str = "",
        seed: int | None = None,
        generation_id: str = "",
    ) -> EnhanceOutcome:
        """The enhanced prompt and its trace files (the original prompt when the LLM fails)."""
        settings = EnhancerSettings(
            max_iterations=max_iterations,
            approve_threshold=self.settings.enhancer.approve_threshold,
            timeout_s=self.settings.enhancer.llm_timeout_s,
        )
        result = await enhance_prompt(
            self._client(seed), prompt, settings, context=context, generation_id=generation_id
        )
        return EnhanceOutcome(
            original_prompt=result.original_prompt,
            final_prompt=result.final_prompt,
            negative_prompt=result.negative_prompt or None,
            iterations=len(result.iterations),
            approved=result.approved,
            stop_reason=str(result.stop_reason),
            degraded=result.degraded,
            warnings=list(result.warnings),
            trace_files=result.trace_files(),
        )


def _ray_serve_llm_request_type(spec: ModelSpec) -> Any:
    """ray.serve.llm's chat request model when the LLM is served by it (imported only then)."""
    if spec.options.get("backend") != "ray-serve-llm":
        return None
    from ray.serve.llm.openai_api_models import ChatCompletionRequest  # noqa: PLC0415

    return ChatCompletionRequest
