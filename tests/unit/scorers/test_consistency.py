"""Consistency as a scoring term: each variation's similarity to the previous kept scene.

The CLIPScore scorer computes it from its image tower when given a reference image; the aggregate
mixes it into the overall score with the request's share (0 = today's behaviour).
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from scorers import aggregate, build_scorer
from scorers.aggregate import consistency_from_cosines
from scorers.base import ScoreResult, ScorerInputError
from weights.forge import default_model_dir, ensure_forged
from weights.forge_scorers import render_shape
from weights.profiles import ModelSpec


def _result(name: str, values: list[float]) -> ScoreResult:
    return ScoreResult(scorer=name, raw=values, normalized=values, seconds=0.0)


def test_weight_zero_leaves_the_overall_score_alone() -> None:
    results = {
        "pickscore": _result("pickscore", [20.0, 80.0]),
        "clipscore": _result("clipscore", [40.0, 60.0]),
    }
    plain = aggregate(results)
    with_term = aggregate(results, consistency=[100.0, 0.0], consistency_weight=0.0)
    assert [s.overall for s in with_term.per_image] == [s.overall for s in plain.per_image]
    assert with_term.best_index == plain.best_index == 1


def test_the_consistency_share_mixes_into_the_overall_score() -> None:
    results = {"pickscore": _result("pickscore", [20.0, 80.0])}
    combined = aggregate(results, {"pickscore": 1.0}, consistency=[100.0, 0.0], consistency_weight=0.5)
    assert [s.overall for s in combined.per_image] == pytest.approx([60.0, 40.0])
    assert combined.best_index == 0 and combined.consistency == [100.0, 0.0]
    with pytest.raises(ValueError, match="consistency_weight"):
        aggregate(results, consistency=[1.0, 2.0], consistency_weight=1.5)
    with pytest.raises(ValueError, match="2 images"):
        aggregate(results, consistency=[1.0], consistency_weight=0.5)


def test_cosines_map_to_0_100() -> None:
    assert consistency_from_cosines([1.0, 0.25, -0.5]) == [100.0, 25.0, 0.0]


@pytest.fixture(scope="module")
def model_dir() -> Path:
    model_dir = default_model_dir()
    ensure_forged("trained-clip", model_dir)
    return model_dir


def test_clipscore_compares_images_with_the_reference(model_dir: Path) -> None:
    scorer = build_scorer(
        "clipscore",
        ModelSpec(source="forge:trained-clip", options={"arch": "local-dir", "w": 1.0}),
        model_dir=model_dir,
    )
    rng = random.Random(3)
    reference = render_shape("red", "circle", "white", rng)
    same_scene = render_shape("red", "circle", "white", rng)
    other_scene = render_shape("blue", "triangle", "black", rng)
    prompt = "a red circle on a white background"
    result = scorer.score(prompt, [reference, same_scene, other_scene], reference=reference)
    consistency = result.extra["consistency"]
    assert consistency[0] == pytest.approx(100.0, abs=1e-3)
    assert consistency[1] > consistency[2]
    # the prompt scores are the same as without a reference
    assert result.normalized == pytest.approx(
        scorer.score(prompt, [reference, same_scene, other_scene]).normalized
    )


def test_scorers_without_an_image_comparison_refuse_a_reference(model_dir: Path) -> None:
    scorer = build_scorer(
        "aesthetic",
        ModelSpec(source="forge:tiny-aesthetic", options={"clip": "forge:tiny-openclip"}),
        model_dir=model_dir,
    )
    image = render_shape("red", "circle", "white", random.Random(1))
    with pytest.raises(ScorerInputError, match="reference"):
        scorer.score("a red circle", [image], reference=image)  # type: ignore[call-arg]
