"""HTTP/handle API models (the protocol): requests, responses, status documents.

The same ``GenerateRequest`` is the body of ``POST /api/generate`` and the argument of the Python
handle's ``submit``/``generate``. Every field carries a one-line description (shown at /docs).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

GenerationStatusName = Literal["queued", "running", "completed", "failed", "cancelled"]
WebhookEventName = Literal["started", "scene_completed", "completed", "failed", "cancelled"]
WEBHOOK_EVENTS: tuple[str, ...] = ("started", "scene_completed", "completed", "failed", "cancelled")
FINISHED_STATUSES: tuple[str, ...] = ("completed", "failed", "cancelled")
# Text fields are data for models and files: no NUL, C0/C1 controls or DEL (tab, LF, CR are fine),
# and no lone surrogates (they cannot be stored as UTF-8).
_FORBIDDEN_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
# The same rule as a JSON-Schema ``pattern`` (ECMA-262, Python and Rust regex alike); lone surrogates
# need no pattern: UTF-8 JSON cannot carry them (a JSON "\ud800" escape is refused as invalid Unicode).
TEXT_PATTERN = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]*$"


def _schema_of(kind: str, **keywords: Any) -> Callable[[dict[str, Any]], None]:
    """A ``json_schema_extra`` putting ``keywords`` on the ``kind`` branch of a field's schema (not on null)."""

    def extra(schema: dict[str, Any]) -> None:
        for branch in schema.get("anyOf", [schema]):
            if branch.get("type") == kind:
                branch.update(keywords)

    return extra


def check_text(value: str, field: str) -> str:
    """``value`` unchanged, or ValueError naming the first forbidden character and its position."""
    bad = _FORBIDDEN_TEXT.search(value)
    if bad is None:
        return value
    char = bad.group()
    where = f"U+{ord(char):04X} at position {bad.start()}"
    if "\ud800" <= char <= "\udfff":
        raise ValueError(f"{field} contains an unpaired surrogate {where}; send valid Unicode text")
    raise ValueError(
        f"{field} contains control character {where}; remove it "
        "(tab, newline and carriage return are the only control characters allowed)"
    )


# Fields that are refused without another: reference_strength needs reference_image, webhook_events
# needs webhook_url (a null counts as absent); the schema's if/then says so.
_NEEDS = [
    {
        "if": {"properties": {field: {"not": {"type": "null"}}}, "required": [field]},
        "then": {"properties": {needed: {"type": "string"}}, "required": [needed]},
    }
    for field, needed in (("reference_strength", "reference_image"), ("webhook_events", "webhook_url"))
]


class GenerateRequest(BaseModel):
    """A storyboard generation request."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, json_schema_extra={"allOf": _NEEDS})

    prompt: str = Field(
        min_length=1,
        max_length=4000,
        description="The ad brief to storyboard (no control characters but tab, LF and CR).",
        json_schema_extra=_schema_of("string", pattern=TEXT_PATTERN),
    )
    use_advanced_image_generation: bool = Field(
        default=False,
        strict=True,
        description="Enhance prompts, generate variations, score them and keep the best.",
    )
    advanced_image_quality_threshold: float = Field(
        default=30.0, ge=0.0, le=100.0, description="Overall score (0-100) below which a scene is flagged."
    )
    advanced_image_num_variations: int = Field(
        default=4, ge=2, le=8, description="Variations generated per scene in advanced mode."
    )
    advanced_image_max_enhancement_iterations: int = Field(
        default=4, ge=1, le=10, description="Most critic/rewrite rounds of the prompt enhancer."
    )
    advanced_image_consistency_weight: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="Share (0-1) of the consistency term in the overall score of scenes after the first: "
        "each variation's similarity to the previous kept scene (CLIP image-image, 0-100); null or 0: off.",
    )
    num_scenes: int = Field(default=4, ge=1, le=8, description="Scenes in the storyboard.")
    seed: int | None = Field(
        default=None, ge=0, le=2**31 - 1, description="Base seed; variation k of a scene uses seed+k."
    )
    negative_prompt: str | None = Field(
        default=None,
        max_length=2000,
        description="What to keep out of images (no control characters but tab, LF and CR).",
        json_schema_extra=_schema_of("string", pattern=TEXT_PATTERN),
    )
    webhook_url: str | None = Field(
        default=None,
        max_length=2048,
        description="http(s) URL that receives signed Standard Webhooks deliveries of this generation's events.",
    )
    webhook_events: list[WebhookEventName] | None = Field(
        default=None,
        max_length=5,
        description="Events to deliver to webhook_url (default: completed, failed, cancelled).",
        json_schema_extra=_schema_of("array", minItems=1),  # [] is refused: omit it for the default
    )
    deadline_s: float | None = Field(
        default=None,
        gt=0.0,
        le=86400.0,
        description="Seconds after submission by which the generation must finish, else it is cancelled "
        "(reason 'deadline'); the Cancel-After header sets the same.",
    )
    reference_image: str | None = Field(
        default=None,
        max_length=11_200_000,
        description="A product image for scene 1's img2img reference: base64 PNG/JPEG/WebP (<= 8 MB decoded) "
        "or an upload id from POST /api/uploads.",
    )
    reference_strength: float | None = Field(
        default=None,
        gt=0.0,
        le=1.0,
        description="img2img strength for the reference image, above 0 up to 1 (near 0 stays close to it, "
        "1 ignores it); default: the chain strength of the profile.",
        json_schema_extra=_schema_of("number", exclusiveMinimum=0.0),  # 0 is refused: no denoising step
    )

    @field_validator("prompt", "negative_prompt")
    @classmethod
    def _printable(cls, value: str | None, info: ValidationInfo) -> str | None:
        return value if value is None else check_text(value, info.field_name or "text")

    @field_validator(
        "advanced_image_quality_threshold",
        "advanced_image_num_variations",
        "advanced_image_max_enhancement_iterations",
        "advanced_image_consistency_weight",
        "num_scenes",
        "seed",
        "deadline_s",
        "reference_strength",
        mode="before",
    )
    @classmethod
    def _not_a_boolean(cls, value: Any, info: ValidationInfo) -> Any:
        # Lax mode would read true as 1 and "4" as 4: client bugs we would rather report than run.
        if isinstance(value, bool | str):
            given = str(value).lower() if isinstance(value, bool) else "a string"
            raise ValueError(f"{info.field_name} must be a number, not {given}")
        return value


class GenerateAccepted(BaseModel):
    """Answer to a submitted generation (HTTP 202)."""

    id: str = Field(description="Generation id.")
    status: GenerationStatusName = Field(description="Status right after submission.")
    status_url: str = Field(description="Where to poll the status.")


class Progress(BaseModel):
    """How far a generation got."""

    scenes_done: int = Field(description="Scenes finished.")
    scenes_total: int = Field(description="Scenes planned (the requested count until planned).")
    stage: str = Field(description="Current stage, e.g. 'planning', 'scene 2: scoring', 'completed'.")


class AdvancedImageSettings(BaseModel):
    """The advanced-mode settings a generation ran with."""

    quality_threshold: float = Field(description="Below-threshold flag level (0-100).")
    num_variations: int = Field(description="Variations per scene.")
    max_enhancement_iterations: int = Field(description="Enhancer iteration cap.")


class PlannedScene(BaseModel):
    """One scene of the storyboard plan."""

    index: int = Field(description="1-based scene number.")
    prompt: str = Field(description="The scene's image prompt as planned.")
    shot_notes: str = Field(default="", description="Camera/composition notes from the planner.")


class StoryboardPlanOut(BaseModel):
    """The storyboard plan, stored as JSON with the advanced settings."""

    scenes: list[PlannedScene] = Field(description="Planned scenes, in order.")
    advanced_image_generation_used: bool = Field(description="Whether advanced mode was requested.")
    advanced_image_settings: AdvancedImageSettings = Field(description="Advanced-mode settings.")
    degraded: bool = Field(default=False, description="True when the planner fell back (LLM failure).")


class ImageScoresOut(BaseModel):
    """Scores of one variation; a scorer that failed is null."""

    pickscore: float | None = Field(default=None, description="PickScore, normalised 0-100.")
    clip: float | None = Field(default=None, description="CLIPScore, normalised 0-100.")
    vqa: float | None = Field(default=None, description="VQAScore, normalised 0-100.")
    aesthetic: float | None = Field(default=None, description="Aesthetic score, normalised 0-100.")
    consistency: float | None = Field(
        default=None,
        description="Similarity to the previous kept scene, 0-100 (CLIP image-image); null when not computed "
        "(first scene, or a consistency weight of 0).",
    )
    overall: float = Field(description="Weighted overall score from the scorers that succeeded.")


class SceneQuality(BaseModel):
    """The scoring outcome of one scene (advanced mode)."""

    best_index: int = Field(description="1-based variation that was kept (image_{k}.png).")
    best_overall: float | None = Field(description="Overall score of the kept variation; null when unscored.")
    per_image: list[ImageScoresOut] = Field(description="Scores per variation, in variation order.")
    below_threshold: bool = Field(description="True when best_overall is below the quality threshold.")
    scorers_used: list[str] = Field(description="Scorers that contributed.")
    scorers_failed: dict[str, str] = Field(default_factory=dict, description="Scorer -> error, for failures.")
    seeds: list[int] = Field(default_factory=list, description="Seed of each variation.")


class SceneOut(BaseModel):
    """One finished scene."""

    index: int = Field(description="1-based scene number.")
    prompt: str = Field(description="The planned scene prompt.")
    enhanced_prompt: str | None = Field(description="The enhancer's final prompt (advanced mode), else null.")
    image_url: str = Field(description="URL of the kept image (PNG, authenticated).")
    reference_from: int | None = Field(description="Scene whose image was the img2img reference, if any.")
    seeds: list[int] = Field(default_factory=list, description="Seeds of the generated variations.")
    num_variations: int = Field(default=1, description="Variations generated for this scene.")
    best_index: int = Field(default=1, description="1-based variation kept.")


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


class EnhancementTrace(BaseModel):
    """A scene's trace files read as one document (what the Director's files say)."""

    original_prompt: str | None = Field(description="The planned prompt (00_original_prompt.txt).")
    iterations: list[TraceIteration] = Field(description="Rewrite → critic rounds, in order.")
    final_prompt: str | None = Field(description="The prompt generated with (final_enhanced_prompt.txt).")
    summary: dict[str, Any] | None = Field(description="prompt_trace_summary.json, parsed.")
    quality_scores: dict[str, Any] | None = Field(description="quality_scores.json, parsed.")
    variations: list[str] = Field(description="Variation image files (image_k.png).")


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


class GenerationStatus(BaseModel):
    """The full status document of one generation."""

    id: str = Field(description="Generation id.")
    status: GenerationStatusName = Field(description="queued | running | completed | failed | cancelled.")
    progress: Progress = Field(description="Scenes done/total and the current stage.")
    prompt: str = Field(description="The brief.")
    seed: int = Field(description="Base seed used (chosen at random when the request had none).")
    advanced_image_generation_used: bool = Field(description="Whether advanced mode was requested.")
    storyboard_plan: StoryboardPlanOut | None = Field(description="The plan, once planned.")
    image_quality_scores: dict[str, SceneQuality] = Field(description="'scene_n' -> scoring outcome.")
    scenes: list[SceneOut] = Field(description="Finished scenes, in order.")
    warnings: list[str] = Field(description="Degradations and below-threshold flags.")
    error: str | None = Field(description="Why the generation failed, if it did.")
    timings: dict[str, Any] = Field(description="Seconds per step.")
    created_at: datetime = Field(description="Submission time (UTC).")
    updated_at: datetime = Field(description="Last update (UTC).")
    queue_position: int | None = Field(
        default=None, description="While queued: place in the queue (1 = next to start); else null."
    )
    eta_s: float | None = Field(
        default=None,
        description="An estimate, not a promise: seconds until finished, from recent stage timings; "
        "null when there is nothing to estimate from or the generation is finished.",
    )
    deadline_at: datetime | None = Field(
        default=None,
        description="When the generation is cancelled if not finished (deadline_s / Cancel-After).",
    )
    cancel_reason: str | None = Field(
        default=None, description="Why it was cancelled: 'user' or 'deadline'; null unless cancelled."
    )
    reference_image_used: bool = Field(
        default=False, description="Whether a product reference image was scene 1's img2img reference."
    )


class GenerationSummary(BaseModel):
    """One row of the caller's generation list."""

    id: str = Field(description="Generation id.")
    status: GenerationStatusName = Field(description="Current status.")
    prompt: str = Field(description="The brief.")
    advanced_image_generation_used: bool = Field(description="Whether advanced mode was requested.")
    scenes_done: int = Field(description="Scenes finished.")
    scenes_total: int = Field(description="Scenes planned.")
    created_at: datetime = Field(description="Submission time (UTC).")
    status_url: str = Field(description="Where to fetch the full status.")


class GenerationPage(BaseModel):
    """A page of the caller's generations, newest first."""

    items: list[GenerationSummary] = Field(description="This page.")
    total: int = Field(description="All of the caller's generations.")
    limit: int = Field(description="Page size.")
    offset: int = Field(description="Rows skipped.")


class Health(BaseModel):
    """Liveness answer."""

    status: Literal["ok"] = Field(description="Always 'ok' when the ingress answers.")
    app: str = Field(description="Serve application name.")
    profile: str = Field(description="Model profile.")


class QuotaExceededBody(BaseModel):
    """HTTP 429: a per-user quota refused the submission (the Retry-After header says the same)."""

    detail: str = Field(description="Which limit, its value, and when to retry.")
    error: Literal["quota_exceeded"] = Field(description="Always 'quota_exceeded'.")
    reason: Literal["concurrent", "rate"] = Field(
        description="'concurrent': too many queued/running; 'rate': too many submitted in the window."
    )
    retry_after_s: int = Field(description="Seconds to wait before retrying (>= 1).")


class OverloadedBody(BaseModel):
    """HTTP 503: the service is at capacity for everyone (the Retry-After header says the same)."""

    detail: str = Field(description="What is full, and when to retry.")
    error: Literal["overloaded"] = Field(description="Always 'overloaded'.")
    retry_after_s: int = Field(description="Seconds to wait before retrying (>= 1).")


class WebhookSecret(BaseModel):
    """The caller's webhook signing secret."""

    secret: str = Field(
        description="Standard Webhooks signing secret, 'whsec_' + base64 key: verify each delivery with it."
    )
    created_at: datetime = Field(description="When this secret was created (or last rotated), UTC.")
    signature_scheme: str = Field(
        default="v1",
        description="webhook-signature is 'v1,' + base64(HMAC-SHA256(key, '{webhook-id}.{webhook-timestamp}.{body}')).",
    )


class WebhookDelivery(BaseModel):
    """One webhook message of a generation and how its delivery went."""

    id: str = Field(description="The message id, sent as webhook-id on every attempt.")
    event: WebhookEventName = Field(description="The webhook event.")
    url: str = Field(description="Where it is delivered.")
    status: Literal["pending", "delivered", "failed"] = Field(
        description="pending: not yet answered 2xx (retried with backoff); delivered; failed: given up "
        "after the retry window."
    )
    attempts: int = Field(description="Attempts made so far.")
    next_attempt_at: datetime | None = Field(description="When the next attempt is due (pending only), UTC.")
    created_at: datetime = Field(description="When the message was recorded, UTC (the retry window starts).")
    delivered_at: datetime | None = Field(description="When the receiver answered 2xx, UTC.")
    last_status_code: int | None = Field(description="HTTP status of the last answer, if there was one.")
    last_error: str | None = Field(description="Why the last attempt failed (timeout, HTTP status, refusal).")


class WebhookDeliveryList(BaseModel):
    """A generation's webhook messages, in event order."""

    generation_id: str = Field(description="Generation id.")
    items: list[WebhookDelivery] = Field(description="Its messages; empty without a webhook_url.")


class UploadedImage(BaseModel):
    """Answer to ``POST /api/uploads`` (HTTP 201)."""

    id: str = Field(description="Upload id: send it as reference_image of POST /api/generate.")
    width: int = Field(description="Width of the stored image (after EXIF rotation; at most 2048).")
    height: int = Field(description="Height of the stored image (after EXIF rotation; at most 2048).")
    format: str = Field(description="Format of the file sent: 'png', 'jpeg' or 'webp'.")
    bytes: int = Field(description="Size of the file sent, in bytes.")


def range_message(model: type[BaseModel], field: str) -> str | None:
    """'allowed range is LO to HI (inclusive)' (or 'above LO', 'below HI') for a bounded numeric field
    of ``model`` (used in 422 messages)."""
    info = model.model_fields.get(field)
    if info is None:
        return None
    low = high = None
    low_open = high_open = False
    for item in info.metadata:
        if getattr(item, "ge", None) is not None:
            low = item.ge
        if getattr(item, "gt", None) is not None:
            low, low_open = item.gt, True
        if getattr(item, "le", None) is not None:
            high = item.le
        if getattr(item, "lt", None) is not None:
            high, high_open = item.lt, True
    if low is None and high is None:
        return None
    if low is not None and high is not None:
        if not low_open and not high_open:
            return f"allowed range is {low} to {high} (inclusive)"
        lower = f"above {low}" if low_open else f"from {low}"
        upper = f"below {high}" if high_open else f"up to {high} (inclusive)"
        return f"allowed range is {lower} {upper}"
    if low is not None:
        return f"must be > {low}" if low_open else f"must be >= {low}"
    return f"must be < {high}" if high_open else f"must be <= {high}"
