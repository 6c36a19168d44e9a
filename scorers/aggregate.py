"""Combine the catalogue's scorers' 0–100 values into one overall score per image and pick the best image.

overall = Σ wᵢ · normalizedᵢ / Σ wᵢ over the scorers that succeeded and have weight > 0: a scorer that
failed (an exception in ``results``) or is disabled (``None``, or weight 0) is dropped and the rest
re-normalised. Ties go to the lowest image index (the first seed), so the pick is deterministic.

``weights=None`` means ``DEFAULT_WEIGHTS``; a weights mapping replaces them whole: a scorer it leaves
out has weight 0 (disabled). Weights need not sum to 1.

Scorer names, default weights, the order of scorers and the fields of ``ImageScores`` all come from
the catalogue (``scorers.catalogue``); ``aggregate`` takes another catalogue for an extended set.

Consistency (scenes after the first): ``consistency`` holds, per image, its similarity to the previous
kept scene, 0–100 (``consistency_from_cosines``: CLIP image–image cosine, clipped at 0). It is an
aggregate term, not a catalogue scorer (no model, role or deployment of its own: the CLIPScore scorer
computes it from its image tower). With ``consistency_weight`` w in [0, 1]:
overall = (1 − w) · (weighted scorer mean) + w · consistency; w = 0 (the default) leaves the scores as
they were.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny, create_model

from scorers.base import ScoreResult
from scorers.catalogue import CATALOGUE, DEFAULT_WEIGHTS, FIELD_OF_SCORER, ScorerCatalogue
from weights.errors import describe_error

__all__ = [
    "DEFAULT_WEIGHTS",
    "FIELD_OF_SCORER",
    "AggregateResult",
    "ImageScores",
    "ImageScoresBase",
    "NoScoresError",
    "aggregate",
    "check_weights",
    "consistency_from_cosines",
    "image_scores_model",
]
# Overall scores closer than this are a tie.
TIE_TOLERANCE = 1e-9


class NoScoresError(ValueError):
    """No scorer produced usable scores; the caller degrades (keeps the first image)."""


class ImageScoresBase(BaseModel):
    """Base of every catalogue's ImageScores model (fieldless, so the score fields keep their order)."""

    model_config = ConfigDict(extra="forbid")


@functools.cache
def image_scores_model(catalogue: ScorerCatalogue) -> type[ImageScoresBase]:
    """The ImageScores model of ``catalogue``: one optional 0–100 field per scorer, then ``overall``."""
    fields: dict[str, Any] = {
        entry.score_field: (float | None, Field(default=None, description=entry.description))
        for entry in catalogue.entries
    }
    fields["overall"] = (float, Field(description="Weighted mean of the scorers used, 0–100."))
    return create_model(
        "ImageScores",
        __base__=ImageScoresBase,
        __doc__="One image's 0–100 scores; None where that scorer was disabled or failed.",
        __module__=__name__,
        **fields,
    )


ImageScores = image_scores_model(CATALOGUE)


class AggregateResult(BaseModel):
    """Per-image scores, the best image, and which scorers counted."""

    model_config = ConfigDict(extra="forbid")

    # SerializeAsAny: dump each image's own ImageScores fields (an extended catalogue adds some)
    per_image: list[SerializeAsAny[ImageScoresBase]] = Field(description="Scores per image, in image order.")
    best_index: int = Field(description="Index of the best image (ties: lowest index).")
    best_overall: float = Field(description="Overall score of the best image.")
    scorers_used: list[str] = Field(description="Scorers whose scores entered the overall score.")
    scorers_failed: dict[str, str] = Field(description="Scorer name -> why it was dropped.")
    weights: dict[str, float] = Field(description="Re-normalised weights applied to the scorers used.")
    consistency: list[float] | None = Field(
        default=None,
        description="Per image, similarity to the previous kept scene, 0–100; None: not computed.",
    )
    consistency_weight: float = Field(
        default=0.0, description="Share of the consistency term in the overall score (0: not used)."
    )


def consistency_from_cosines(cosines: list[float]) -> list[float]:
    """CLIP image–image cosines mapped to 0–100 (negative similarity counts as 0)."""
    return [min(max(100.0 * cosine, 0.0), 100.0) for cosine in cosines]


def check_weights(weights: Mapping[str, float], catalogue: ScorerCatalogue = CATALOGUE) -> dict[str, float]:
    """Known names, finite, non-negative; raises ValueError otherwise."""
    names = catalogue.names
    unknown = sorted(set(weights) - set(names))
    if unknown:
        raise ValueError(f"unknown scorer weights {unknown}; known: {list(names)}")
    bad = {name: w for name, w in weights.items() if not (math.isfinite(w) and w >= 0)}
    if bad:
        raise ValueError(f"weights must be finite and >= 0, got {bad}")
    return {name: float(weights.get(name, 0.0)) for name in names}


def aggregate(
    results: Mapping[str, ScoreResult | BaseException | None],
    weights: Mapping[str, float] | None = None,
    *,
    catalogue: ScorerCatalogue = CATALOGUE,
    consistency: list[float] | None = None,
    consistency_weight: float = 0.0,
) -> AggregateResult:
    """Weighted 0–100 overall per image; drops failed/disabled scorers and re-normalises the rest.

    ``consistency`` (per image, 0–100) enters the overall with share ``consistency_weight`` (0–1).
    """
    # 1. check inputs
    if not (math.isfinite(consistency_weight) and 0.0 <= consistency_weight <= 1.0):
        raise ValueError(f"consistency_weight must be in [0, 1], got {consistency_weight}")
    names = catalogue.names
    unknown = sorted(set(results) - set(names))
    if unknown:
        raise ValueError(f"unknown scorers in results {unknown}; known: {list(names)}")
    weights_by_name = check_weights(catalogue.default_weights if weights is None else weights, catalogue)
    field_of_scorer = catalogue.field_of_scorer
    scores_model = image_scores_model(catalogue)

    # 2. sort scorers into succeeded / failed, in the canonical order
    succeeded: dict[str, ScoreResult] = {}
    failed: dict[str, str] = {}
    image_count: int | None = None
    for name in names:
        result = results.get(name)
        if result is None:
            continue
        if isinstance(result, BaseException):
            failed[name] = describe_error(result)
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

    if consistency is not None and len(consistency) != image_count:
        raise ValueError(f"consistency has {len(consistency)} values for {image_count} images")
    share = consistency_weight if consistency is not None else 0.0

    # 3. re-normalised weighted mean per image, then the consistency share
    total = sum(weights_by_name[name] for name in used)
    applied = {name: weights_by_name[name] / total for name in used}
    per_image: list[ImageScoresBase] = []
    overalls: list[float] = []
    for index in range(image_count or 0):  # image_count is set whenever a scorer succeeded
        overall = sum(applied[name] * succeeded[name].normalized[index] for name in used)
        if consistency is not None and share > 0:
            overall = (1.0 - share) * overall + share * consistency[index]
        overall = min(max(overall, 0.0), 100.0)
        fields = {field_of_scorer[name]: succeeded[name].normalized[index] for name in succeeded}
        per_image.append(scores_model.model_validate({**fields, "overall": overall}))
        overalls.append(overall)

    # 4. best image; ties go to the lowest index
    best_index = 0
    for index, overall in enumerate(overalls):
        if overall > overalls[best_index] + TIE_TOLERANCE:
            best_index = index
    return AggregateResult(
        per_image=per_image,
        best_index=best_index,
        best_overall=overalls[best_index],
        scorers_used=used,
        scorers_failed=failed,
        weights=applied,
        consistency=list(consistency) if consistency is not None else None,
        consistency_weight=share,
    )
