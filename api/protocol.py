"""Server-side wire formats beyond ``scenechain.protocol``: id and header formats, trace documents.

The request, status and event models live in the client package (``scenechain.protocol`` and
``scenechain.events``, one source of truth); this module holds what only the server answers with.
"""

import re
from typing import Any

from pydantic import BaseModel, Field

GENERATION_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
GENERATION_ID_RULE = "generation ids are 1-64 characters of A-Z, a-z, 0-9, '_' and '-'"
IDEMPOTENCY_KEY_RE = re.compile(r"^[\x21-\x7e]{1,128}$")


class TraceIteration(BaseModel):
    """One round of the two-agent enhancer."""

    iteration: int = Field(description="1-based iteration number.")
    rewrite: str | None = Field(default=None, description="The Cinematographer's rewrite (agent 1).")
    scores: dict[str, float] = Field(
        default_factory=dict, description="The critic's criterion scores (agent 2)."
    )
    overall: float | None = Field(default=None, description="The critic's overall score, 0-100.")
    feedback: str | None = Field(default=None, description="The critic's feedback.")
    negative_prompt: str | None = Field(default=None, description="The critic's negative prompt.")
    approved: bool = Field(default=False, description="Whether this rewrite reached the approve threshold.")
    critic_text: str | None = Field(default=None, description="The critic's file, when it was not JSON.")


class SceneTrace(BaseModel):
    """The enhancement trace of one scene (``GET .../scenes/{n}/trace``)."""

    generation_id: str = Field(description="Generation id.")
    scene: int = Field(description="1-based scene number.")
    original_prompt: str | None = Field(description="The planned prompt (00_original_prompt.txt).")
    iterations: list[TraceIteration] = Field(description="Rewrite → critic rounds, in order.")
    final_prompt: str | None = Field(description="The prompt generated with (final_enhanced_prompt.txt).")
    summary: dict[str, Any] | None = Field(description="prompt_trace_summary.json, parsed.")
    quality_scores: dict[str, Any] | None = Field(description="quality_scores.json, parsed.")
    variations: list[str] = Field(description="Variation image files (image_k.png).")
    files: dict[str, str] = Field(description="Every text/JSON trace file by name, verbatim.")
