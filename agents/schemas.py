"""Pydantic models at the LLM boundary: the JSON the agents ask for, and what the agents return.

LLM output models carry ``json_schema()`` helpers: the same schema is sent to the engine for
structured decoding (vLLM, OpenAI ``response_format``) and used to validate the reply.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# The five critic criteria, in the order the rubric and the prompts list them.
CRITERIA: tuple[str, ...] = (
    "completeness",
    "specificity",
    "cinematography",
    "professionalism",
    "brand_alignment",
)

# Default weights of the overall score (sum 1.0). Cinematography weighs most: it is what the
# Cinematographer is for; professionalism least: small critics over-reward polished wording.
DEFAULT_SCORE_WEIGHTS: dict[str, float] = {
    "completeness": 0.20,
    "specificity": 0.20,
    "cinematography": 0.25,
    "professionalism": 0.15,
    "brand_alignment": 0.20,
}


def _strict_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema as structured-output engines want it: closed (no extra
    properties), every property required (OpenAI strict mode), no titles (fewer prompt tokens)."""
    schema = model.model_json_schema()
    for node in [schema, *schema.get("$defs", {}).values()]:
        node.pop("title", None)
        node["additionalProperties"] = False
        node["required"] = list(node.get("properties", {}))
        for prop in node.get("properties", {}).values():
            prop.pop("title", None)
    return schema


class ChatMessage(BaseModel):
    """One chat turn."""

    model_config = ConfigDict(extra="forbid")

    role: Literal["system", "user", "assistant"] = Field(description="Who speaks.")
    content: str = Field(description="What is said.")


# --------------------------------------------------------------------------------------------
# LLM JSON output
# --------------------------------------------------------------------------------------------


class SceneDraft(BaseModel):
    """One scene as the planner LLM writes it."""

    model_config = ConfigDict(extra="forbid")

    # minimum lengths are in the schema too: structured decoding then cannot stop at one word
    prompt: str = Field(description="Text-to-image prompt for the scene.", min_length=20, max_length=400)
    shot_notes: str = Field(description="Camera / shot notes for the scene.", min_length=8, max_length=200)


class StoryboardDraft(BaseModel):
    """The planner LLM's JSON reply."""

    model_config = ConfigDict(extra="forbid")

    scenes: list[SceneDraft] = Field(description="Scenes in story order.", min_length=1)

    @classmethod
    def json_schema(cls, num_scenes: int) -> dict[str, Any]:
        """Closed schema with the exact scene count, for structured decoding."""
        schema = _strict_schema(cls)
        schema["properties"]["scenes"]["minItems"] = num_scenes
        schema["properties"]["scenes"]["maxItems"] = num_scenes
        return schema


class Critique(BaseModel):
    """The Prompt Engineer's JSON reply: one 0-100 score per criterion, feedback, negative prompt."""

    model_config = ConfigDict(extra="forbid")

    completeness: float = Field(description="Subject, action, setting all present (0-100).", ge=0, le=100)
    specificity: float = Field(
        description="Concrete visual detail rather than vague words (0-100).", ge=0, le=100
    )
    cinematography: float = Field(description="Camera, lens, lighting, composition (0-100).", ge=0, le=100)
    professionalism: float = Field(description="Reads like a professional ad brief (0-100).", ge=0, le=100)
    brand_alignment: float = Field(
        description="Faithful to the original brief and brand (0-100).", ge=0, le=100
    )
    feedback: str = Field(
        default="", description="What to improve next, one or two sentences.", max_length=300
    )
    negative_prompt: str = Field(default="", description="Comma-separated things to avoid.", max_length=200)

    @classmethod
    def json_schema(cls) -> dict[str, Any]:
        """Closed schema for structured decoding. Scores are asked for as integers (a tighter
        grammar: a random LM cannot wander into endless decimals); validation accepts floats."""
        schema = _strict_schema(cls)
        for name in CRITERIA:
            schema["properties"][name]["type"] = "integer"
            schema["properties"][name].pop("default", None)
        for name in ("feedback", "negative_prompt"):
            schema["properties"][name].pop("default", None)
        return schema

    def scores(self) -> dict[str, float]:
        """Criterion -> score."""
        return {name: float(getattr(self, name)) for name in CRITERIA}


# --------------------------------------------------------------------------------------------
# Agent results
# --------------------------------------------------------------------------------------------


class LLMCall(BaseModel):
    """One chat call as the trace records it: every message in and the reply out."""

    agent: Literal["planner", "cinematographer", "prompt_engineer"] = Field(description="Which agent called.")
    purpose: str = Field(description="'draft', 'repair', 'rewrite', 'critique', ...")
    messages: list[ChatMessage] = Field(description="Messages sent.")
    temperature: float = Field(description="Sampling temperature.")
    max_tokens: int = Field(description="Generation budget.")
    json_schema: bool = Field(description="Whether structured (JSON schema) output was requested.")
    response: str | None = Field(default=None, description="Raw reply; None when the call failed.")
    error: str | None = Field(default=None, description="Failure, when the call failed.")
    seconds: float = Field(description="Wall time of the call.")


class ScenePlan(BaseModel):
    """One storyboard scene."""

    index: int = Field(description="1-based scene number.", ge=1)
    prompt: str = Field(description="Text-to-image prompt.")
    shot_notes: str = Field(default="", description="Camera / shot notes.")


class StoryboardPlan(BaseModel):
    """The planner's result: always ``num_scenes`` scenes, degraded when the LLM did not deliver."""

    brief: str = Field(description="The ad brief the plan is for.")
    scenes: list[ScenePlan] = Field(description="Scenes in story order.")
    degraded: bool = Field(default=False, description="True when the deterministic fallback plan was used.")
    warnings: list[str] = Field(default_factory=list, description="What went wrong, for the user.")
    prompt_version: str = Field(default="", description="Version of the prompts used.")
    calls: list[LLMCall] = Field(default_factory=list, description="Every LLM call made.")
    seconds: float = Field(default=0.0, description="Wall time of planning.")


class IterationRecord(BaseModel):
    """One Cinematographer -> Prompt Engineer round."""

    iteration: int = Field(description="1-based iteration number.", ge=1)
    cinematographer_output: str = Field(description="Raw Cinematographer reply.")
    candidate_prompt: str = Field(
        description="The prompt that was scored (cleaned reply, or the previous one)."
    )
    candidate_rejected: bool = Field(
        description="True when the reply was unusable and the previous prompt kept."
    )
    rejection_reason: str = Field(default="", description="Why the reply was rejected.")
    critic_raw: str = Field(description="Raw Prompt Engineer reply (the repair reply appended, if any).")
    scores: dict[str, float] = Field(description="Criterion -> 0-100 score.")
    overall: float = Field(description="Weighted overall score 0-100.")
    feedback: str = Field(default="", description="Critic feedback passed to the next iteration.")
    negative_prompt: str = Field(default="", description="Critic's negative prompt ('' if none).")
    critic_repair_used: bool = Field(default=False, description="True when a repair retry was needed.")
    critic_fallback_used: bool = Field(description="True when the rubric fallback scored this iteration.")
    cinematographer_seconds: float = Field(description="Wall time of the Cinematographer call.")
    critic_seconds: float = Field(description="Wall time of the critic call(s).")
    seconds: float = Field(description="Wall time of the iteration.")
    calls: list[LLMCall] = Field(default_factory=list, description="Every LLM call of the iteration.")
