"""Scores mean something: a CLIP trained by the forge on synthetic captioned shapes.

Random-weight models only show that the plumbing runs. ``trained-clip`` is a CLIP the forge trains in
about a minute on CPU (cached in the model dir like every forged model), saved both as an open_clip
local dir (CLIPScore's format) and as a transformers CLIPModel + processor (PickScore's format). Through
the real scorers and the real aggregate it must prefer the matching caption and pick the matching
image among N variations. The images here are fresh renders (seeds the training never used).
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from PIL import Image

from scorers import aggregate, build_scorer
from scorers.base import Scorer
from weights.forge import default_model_dir, ensure_forged
from weights.forge_scorers import (
    SHAPE_COLOURS,
    SHAPES,
    TRANSFORMERS_SUBDIR,
    all_shape_captions,
    render_shape,
    shape_caption,
)
from weights.profiles import ModelSpec

TEST_SEED = 20240611
COMBOS = all_shape_captions()


@pytest.fixture(scope="module")
def model_dir() -> Path:
    model_dir = default_model_dir()
    ensure_forged("trained-clip", model_dir)  # trains once, then cached
    return model_dir


@pytest.fixture(scope="module")
def trained_clipscore(model_dir: Path) -> Scorer:
    # w = 1: this toy CLIP's matching cosines (~0.9) would saturate w = 2.5, which suits real CLIP's ~0.3
    spec = ModelSpec(source="forge:trained-clip", options={"arch": "local-dir", "w": 1.0})
    return build_scorer("clipscore", spec, model_dir=model_dir)


@pytest.fixture(scope="module")
def trained_pickscore(model_dir: Path) -> Scorer:
    options = {
        "processor": "forge:trained-clip",
        "subfolder": TRANSFORMERS_SUBDIR,
        "calibration_low": 0.0,  # logit scale <= 100: raw lies in [-100, 100]
        "calibration_high": 100.0,
    }
    return build_scorer(
        "pickscore", ModelSpec(source="forge:trained-clip", options=options), model_dir=model_dir
    )


def test_the_transformers_copy_scores_like_the_open_clip_original(
    trained_clipscore: Scorer, trained_pickscore: Scorer
) -> None:
    rng = random.Random(TEST_SEED - 1)
    images = [render_shape(*combo, rng) for combo in rng.sample(COMBOS, 6)]
    for prompt in (shape_caption(*COMBOS[0]), "a long prompt " * 12):  # the second is truncated
        cosines = trained_clipscore.score(prompt, images).extra["cosine"]
        picks = trained_pickscore.score(prompt, images).raw
        logit_scale = picks[0] / cosines[0]
        assert 1.0 < logit_scale <= 100.0 + 1e-3
        assert [p / logit_scale for p in picks] == pytest.approx(cosines, abs=2e-3)


def test_the_matching_caption_scores_highest_for_most_images(trained_clipscore: Scorer) -> None:
    rng = random.Random(TEST_SEED)
    images = [render_shape(*combo, rng) for combo in COMBOS]
    # scores[c][i]: caption c against image i, one batched call per caption
    scores = [trained_clipscore.score(shape_caption(*combo), images).raw for combo in COMBOS]
    count = len(COMBOS)
    top1 = sum(max(range(count), key=lambda c: scores[c][i]) == i for i in range(count))
    assert top1 >= 0.8 * count, f"matching caption ranked first for only {top1}/{count} images"
    right_mean = sum(scores[i][i] for i in range(count)) / count
    wrong_mean = sum(scores[c][i] for i in range(count) for c in range(count) if c != i) / (
        count * (count - 1)
    )
    assert right_mean > wrong_mean + 0.2


def _variations(target: tuple[str, str, str], rng: random.Random, count: int) -> list[tuple[str, str, str]]:
    """The target plus ``count - 1`` near misses: each differs from it in colour or shape only."""
    colour, shape, background = target
    misses = [(c, shape, background) for c in SHAPE_COLOURS if c != colour]
    misses += [(colour, s, background) for s in SHAPES if s != shape]
    return [target, *rng.sample(misses, count - 1)]


def test_best_of_n_picks_the_matching_image(trained_clipscore: Scorer, trained_pickscore: Scorer) -> None:
    rng = random.Random(TEST_SEED + 1)
    trials, picked, softmax_top = 12, 0, 0
    for target in rng.sample(COMBOS, trials):
        variations = _variations(target, rng, count=4)
        rng.shuffle(variations)
        images: list[Image.Image] = [render_shape(*combo, rng) for combo in variations]
        prompt = shape_caption(*target)
        pick = trained_pickscore.score(prompt, images)
        clip = trained_clipscore.score(prompt, images)
        # default weights; VQA and aesthetic disabled, so PickScore and CLIPScore are re-normalised
        summary = aggregate({"pickscore": pick, "clipscore": clip, "vqa": None, "aesthetic": None})
        assert summary.scorers_used == ["pickscore", "clipscore"]
        expected_index = variations.index(target)
        picked += summary.best_index == expected_index
        softmax = pick.extra["softmax"]
        softmax_top += softmax.index(max(softmax)) == expected_index
    assert picked >= 10, f"best-of-4 picked the matching image in only {picked}/{trials} prompts"
    assert softmax_top >= 10, f"PickScore's softmax preferred the match in only {softmax_top}/{trials}"
