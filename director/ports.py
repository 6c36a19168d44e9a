"""The port contracts of the Director: the request and reply model of every handle call it makes.

The Director core calls its models through ``DirectorPorts`` (deployment handles in production,
``deployments/director.py``; fakes in unit tests). Every model that crosses a handle is here, so
one call's request and reply live side by side.
"""

from __future__ import annotations

from typing import Protocol

from pydantic import BaseModel, Field

from agents.schemas import StoryboardPlan as AgentsPlan
from generator.core import GenerationRequest, GenerationResult
from scorers.base import ScoreResult
from store.records import PlannedScene

__all__ = [
    "DirectorPorts",
    "EnhanceOutcome",
    "GenerationRequest",
    "GenerationResult",
    "PlanOutcome",
    "PlannedScene",
    "ScoreOutcome",
    "ScoreRequest",
    "ScoreResult",
    "ScorerFailed",
    "plan_outcome",
]


class PlanOutcome(BaseModel):
    """The planner's storyboard."""

    scenes: list[PlannedScene] = Field(description="Planned scenes, in order.")
    degraded: bool = Field(default=False, description="True when the planner fell back.")
    warnings: list[str] = Field(default_factory=list, description="Why it degraded.")


def plan_outcome(plan: AgentsPlan) -> PlanOutcome:
    """The planner's storyboard (``agents.planner``) as it crosses the Enhancer handle."""
    return PlanOutcome(
        scenes=[
            PlannedScene(index=scene.index, prompt=scene.prompt, shot_notes=scene.shot_notes)
            for scene in plan.scenes
        ],
        degraded=plan.degraded,
        warnings=list(plan.warnings),
    )


class EnhanceOutcome(BaseModel):
    """The two-agent enhancer's result for one scene prompt."""

    original_prompt: str = Field(description="The prompt before enhancement.")
    final_prompt: str = Field(description="The prompt to generate with.")
    negative_prompt: str | None = Field(default=None, description="Negative prompt proposed by the agents.")
    iterations: int = Field(default=0, description="Critic/rewrite rounds run.")
    approved: bool = Field(default=False, description="Whether the critic approved.")
    stop_reason: str = Field(default="", description="Why the loop stopped.")
    degraded: bool = Field(default=False, description="True when the LLM failed and the original was kept.")
    warnings: list[str] = Field(default_factory=list, description="Why it degraded.")
    trace_files: dict[str, str] = Field(default_factory=dict, description="Trace file name -> text.")


class ScoreOutcome(BaseModel):
    """A scorer's answer through a handle: a result, or the error it raised."""

    result: ScoreResult | None = Field(default=None, description="Scores, when the scorer succeeded.")
    error: str | None = Field(default=None, description="The error, when it failed.")


class ScorerFailed(RuntimeError):
    """A scorer failed (its message is the scorer's error)."""


class DirectorPorts(Protocol):
    """What the Director needs from the model deployments."""

    async def plan(self, brief: str, num_scenes: int, seed: int) -> PlanOutcome: ...

    async def enhance(
        self, prompt: str, max_iterations: int, context: str, seed: int, generation_id: str
    ) -> EnhanceOutcome: ...

    async def generate(self, request: GenerationRequest) -> GenerationResult: ...

    async def score(
        self, scorer: str, prompt: str, images: list[bytes], reference: bytes | None = None
    ) -> ScoreResult:
        """``reference``: the previous kept scene's PNG, sent only to the scorer that compares images
        (clipscore) when the request weighs consistency; the result's ``extra["consistency"]``."""
        ...


class ScoreRequest(BaseModel):
    """Score the images of one scene against its prompt (Director -> Scorer deployment)."""

    prompt: str = Field(description="The scene prompt.")
    images: list[bytes] = Field(description="PNG bytes, one per variation.")
    reference_png: bytes | None = Field(
        default=None,
        description="PNG of the previous kept scene: a scorer that compares images adds each image's "
        "similarity to it (extra['consistency'], 0-100); None: no comparison.",
    )
