"""Combine the four scorers' 0–100 values into one overall score per image and pick the best image.

overall = Σ wᵢ · normalizedᵢ / Σ wᵢ over the scorers that succeeded and have weight > 0: a scorer that
failed (an exception in ``results``) or is disabled (``None``, or weight 0) is dropped and the rest
re-normalised. Ties go to the lowest image index (the first seed), so the pick is deterministic.

``weights=None`` means ``DEFAULT_WEIGHTS``; a weights mapping replaces them whole: a scorer it leaves
out has weight 0 (disabled). Weights need not sum to 1.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field

from scorers.base import ScoreResult

DEFAULT_WEIGHTS: dict[str, float] = {"pickscore": 0.50, "clipscore": 0.25, "vqa": 0.15, "aesthetic": 0.10}
# Scorer name -> field of ImageScores (the public status JSON calls CLIPScore "clip").
FIELD_OF_SCORER: dict[str, str] = {
    "pickscore": "pickscore",
    "clipscore": "clip",
    "vqa": "vqa",
    "aesthetic": "aesthetic",
}
# Overall scores closer than this are a tie.
TIE_TOLERANCE = 1e-9


class NoScoresError(ValueError):
    """No scorer produced usable scores; the caller degrades (keeps the first image)."""


class ImageScores(BaseModel):
    """One image's 0–100 scores; None where that scorer was disabled or failed."""

    model_config = ConfigDict(extra="forbid")

    pickscore: float | None = Field(default=None, description="PickScore, calibrated to 0–100.")
    clip: float | None = Field(default=None, description="CLIPScore, 0–100.")
    vqa: float | None = Field(default=None, description="VQAScore, 100 · P(yes).")
    aesthetic: float | None = Field(default=None, description="LAION aesthetic rating mapped to 0–100.")
    overall: float = Field(description="Weighted mean of the scorers used, 0–100.")


class AggregateResult(BaseModel):
    """Per-image scores, the best image, and which scorers counted."""

    model_config = ConfigDict(extra="forbid")

    per_image: list[ImageScores] = Field(description="Scores per image, in image order.")
    best_index: int = Field(description="Index of the best image (ties: lowest index).")
    best_overall: float = Field(description="Overall score of the best image.")
    scorers_used: list[str] = Field(description="Scorers whose scores entered the overall score.")
    scorers_failed: dict[str, str] = Field(description="Scorer name -> why it was dropped.")
    weights: dict[str, float] = Field(description="Re-normalised weights applied to the scorers used.")


def failure_reason(exc: BaseException) -> str:
    """One line a user can read: the error type and its first line (a Ray error's actor ids, pids
    and addresses stay in the logs)."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0].strip()}"[:300] if lines else type(exc).__name__


def check_weights(weights: Mapping[str, float]) -> dict[str, float]:
    """Known names, finite, non-negative; raises ValueError otherwise."""
    unknown = sorted(set(weights) - set(DEFAULT_WEIGHTS))
    if unknown:
        raise ValueError(f"unknown scorer weights {unknown}; known: {list(DEFAULT_WEIGHTS)}")
    bad = {name: w for name, w in weights.items() if not (math.isfinite(w) and w >= 0)}
    if bad:
        raise ValueError(f"weights must be finite and >= 0, got {bad}")
    return {name: float(weights.get(name, 0.0)) for name in DEFAULT_WEIGHTS}


def aggregate(
    results: Mapping[str, ScoreResult | BaseException | None],
    weights: Mapping[str, float] | None = None,
) -> AggregateResult:
    """Weighted 0–100 overall per image; drops failed/disabled scorers and re-normalises the rest."""
    # 1. check inputs
    unknown = sorted(set(results) - set(DEFAULT_WEIGHTS))
    if unknown:
        raise ValueError(f"unknown scorers in results {unknown}; known: {list(DEFAULT_WEIGHTS)}")
    weights_by_name = check_weights(DEFAULT_WEIGHTS if weights is None else weights)

    # 2. sort scorers into succeeded / failed, in the canonical order
    succeeded: dict[str, ScoreResult] = {}
    failed: dict[str, str] = {}
    image_count: int | None = None
    for name in DEFAULT_WEIGHTS:
        result = results.get(name)
        if result is None:
            continue
        if isinstance(result, BaseException):
            failed[name] = failure_reason(result)
            continue
        if image_count is None:
            image_count = len(result.normalized)
        if len(result.normalized) != image_count or image_count == 0:
            failed[name] = f"returned {len(result.normalized)} scores, expected {image_count}"
            continue
        succeeded[name] = result

    used = [name for name in succeeded if weights_by_name[name] > 0]
    if not used:
        reasons = "; ".join(f"{n}: {r}" for n, r in failed.items()) or "all scorers disabled or weighted 0"
        raise NoScoresError(f"no scorer produced usable scores ({reasons})")

    # 3. re-normalised weighted mean per image
    total = sum(weights_by_name[name] for name in used)
    applied = {name: weights_by_name[name] / total for name in used}
    per_image = []
    for index in range(image_count or 0):  # image_count is set whenever a scorer succeeded
        overall = sum(applied[name] * succeeded[name].normalized[index] for name in used)
        fields = {FIELD_OF_SCORER[name]: succeeded[name].normalized[index] for name in succeeded}
        per_image.append(ImageScores(overall=min(max(overall, 0.0), 100.0), **fields))

    # 4. best image; ties go to the lowest index
    best_index = 0
    for index, scores in enumerate(per_image):
        if scores.overall > per_image[best_index].overall + TIE_TOLERANCE:
            best_index = index
    return AggregateResult(
        per_image=per_image,
        best_index=best_index,
        best_overall=per_image[best_index].overall,
        scorers_used=used,
        scorers_failed=failed,
        weights=applied,
    )
