"""Scorers on forged tiny models: the methods' math, batching, one load per process, aggregation, faults.

Every expected value is computed here independently of ``scorers/`` (the libraries' own loaders and
plain torch), so a wrong formula, token, or batching bug fails a test.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from PIL import Image

from scorers import (
    DEFAULT_WEIGHTS,
    SCORER_NAMES,
    NoScoresError,
    ScorerError,
    ScoreResult,
    ScorerInputError,
    UnknownScorerError,
    aggregate,
    build_scorer,
)
from scorers import base as scorer_base
from scorers.aesthetic import AestheticMLP, rating_to_percent
from scorers.clipscore import clip_score_from_embeddings
from scorers.pickscore import calibrate
from weights.forge import default_model_dir, ensure_forged
from weights.profiles import ModelSpec, get_profile

PROMPT = "a red circle on a white background"


@pytest.fixture(scope="module")
def model_dir() -> Path:
    return default_model_dir()


@pytest.fixture(scope="module")
def tiny() -> dict[str, ModelSpec]:
    profile = get_profile("tiny")
    return {name: profile.model(name) for name in SCORER_NAMES}


@pytest.fixture(scope="module")
def images() -> list[Image.Image]:
    colours = [(220, 30, 30), (30, 60, 220), (30, 170, 40), (240, 220, 30)]
    out = []
    for i, colour in enumerate(colours):
        image = Image.new("RGB", (48 + 8 * i, 64), (255, 255, 255))  # mixed sizes: the processors resize
        image.paste(colour, (8, 8, 40, 40))
        out.append(image)
    return out


def _result(name: str, normalized: list[float]) -> ScoreResult:
    return ScoreResult(scorer=name, raw=normalized, normalized=normalized, seconds=0.0)


# ---- CLIPScore -----------------------------------------------------------------------------------


def test_clipscore_of_known_embeddings() -> None:
    text = torch.tensor([3.0, 0.0, 0.0])  # not unit length: the cosine normalises
    images = torch.tensor(
        [
            [1.0, 0.0, 0.0],  # cos 1 -> CLIP-S 2.5 -> 250, clipped to 100
            [0.2, math.sqrt(0.96), 0.0],  # cos 0.2 -> 0.5 -> 50
            [0.1, 0.0, math.sqrt(0.99)],  # cos 0.1 -> 0.25 -> 25
            [-0.5, math.sqrt(0.75), 0.0],  # cos -0.5 -> max(cos, 0) = 0
        ]
    )
    cosines, clip_s, normalized = clip_score_from_embeddings(images * 2.0, text)
    assert cosines == pytest.approx([1.0, 0.2, 0.1, -0.5], abs=1e-6)
    assert clip_s == pytest.approx([2.5, 0.5, 0.25, 0.0], abs=1e-6)
    assert normalized == pytest.approx([100.0, 50.0, 25.0, 0.0], abs=1e-4)


def test_clipscore_on_tiny_openclip_matches_open_clip_computed_by_hand(
    tiny: dict[str, ModelSpec], model_dir: Path, images: list[Image.Image]
) -> None:
    import open_clip

    scorer = build_scorer("clipscore", tiny["clipscore"], model_dir=model_dir)
    result = scorer.score(PROMPT, images)
    assert result.scorer == "clipscore" and len(result.raw) == len(images)
    assert all(0.0 <= v <= 100.0 for v in result.normalized)
    assert scorer.score(PROMPT, images).raw == result.raw  # deterministic

    name = "local-dir:" + str(ensure_forged("tiny-openclip", model_dir))
    model, _, preprocess = open_clip.create_model_and_transforms(name)
    tokenizer = open_clip.get_tokenizer(name)
    with torch.no_grad():
        text = model.encode_text(tokenizer([PROMPT]))
        expected = []
        for image in images:  # one at a time: batching must not change a score
            embed = model.eval().encode_image(preprocess(image).unsqueeze(0))
            cosine = torch.nn.functional.cosine_similarity(embed, text).item()
            expected.append(2.5 * max(cosine, 0.0))
            assert result.extra["cosine"][len(expected) - 1] == pytest.approx(cosine, abs=1e-5)
    assert result.raw == pytest.approx(expected, abs=1e-5)
    assert result.normalized == pytest.approx([min(100 * v, 100) for v in expected], abs=1e-3)


# ---- PickScore -----------------------------------------------------------------------------------


def test_pickscore_is_logit_scale_times_cosine_with_softmax_over_variations(
    tiny: dict[str, ModelSpec], model_dir: Path, images: list[Image.Image]
) -> None:
    from transformers import AutoProcessor, CLIPModel

    scorer = build_scorer("pickscore", tiny["pickscore"], model_dir=model_dir)
    result = scorer.score(PROMPT, images)

    path = str(ensure_forged("tiny-pickscore", model_dir))
    model, processor = CLIPModel.from_pretrained(path).eval(), AutoProcessor.from_pretrained(path)
    with torch.no_grad():
        out = model(**processor(text=[PROMPT], images=images, return_tensors="pt", padding=True))
    # CLIPModel's own logits_per_text is exactly logit_scale.exp() * cos(text, image)
    expected = out.logits_per_text[0]
    assert result.raw == pytest.approx(expected.tolist(), abs=1e-4)
    assert result.extra["softmax"] == pytest.approx(torch.softmax(expected, 0).tolist(), abs=1e-5)
    assert sum(result.extra["softmax"]) == pytest.approx(1.0)
    low, high = tiny["pickscore"].options["calibration_low"], tiny["pickscore"].options["calibration_high"]
    assert result.normalized == pytest.approx(calibrate(result.raw, low, high))


def test_pickscore_calibration_is_linear_clipped_and_validated() -> None:
    assert calibrate([18.0, 21.0, 24.0, 30.0, 10.0], 18.0, 24.0) == pytest.approx([0, 50, 100, 100, 0])
    with pytest.raises(ScorerError, match="high > low"):
        calibrate([1.0], 5.0, 5.0)


# ---- VQAScore ------------------------------------------------------------------------------------


def test_vqa_p_yes_is_the_softmax_over_the_yes_no_answer_logits(
    tiny: dict[str, ModelSpec], model_dir: Path, images: list[Image.Image]
) -> None:
    from transformers import AutoProcessor, LlavaForConditionalGeneration

    scorer = build_scorer("vqa", tiny["vqa"], model_dir=model_dir)
    result = scorer.score(PROMPT, images)

    path = str(ensure_forged("tiny-vqa", model_dir))
    processor = AutoProcessor.from_pretrained(path)
    model = LlavaForConditionalGeneration.from_pretrained(path).eval()
    text = f'USER: <image>\nDoes this figure show "{PROMPT}"? Please answer yes or no. ASSISTANT:'
    yes_id, no_id = processor.tokenizer.convert_tokens_to_ids(["ĠYes", "ĠNo"])  # byte-level " Yes"/" No"
    expected = []
    with torch.no_grad():
        for image in images:  # one image per forward pass: the batch must give the same numbers
            logits = model(**processor(images=[image], text=[text], return_tensors="pt")).logits[0, -1]
            expected.append(math.exp(logits[yes_id]) / (math.exp(logits[yes_id]) + math.exp(logits[no_id])))
    assert result.raw == pytest.approx(expected, abs=1e-5)
    assert result.normalized == pytest.approx([100 * p for p in expected], abs=1e-3)
    assert all(0.0 < p < 1.0 for p in result.extra["p_yes_full_vocab"])
    assert all(full <= p for full, p in zip(result.extra["p_yes_full_vocab"], result.raw, strict=True))


# ---- Aesthetic -----------------------------------------------------------------------------------

PUBLISHED_KEYS = {f"layers.{i}.{p}" for i in (0, 2, 4, 6, 7) for p in ("weight", "bias")}


def _published_mlp(input_size: int) -> torch.nn.Module:
    """improved-aesthetic-predictor's MLP as published (layers only), written out independently."""

    class MLP(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layers = torch.nn.Sequential(
                torch.nn.Linear(input_size, 1024),
                torch.nn.Dropout(0.2),
                torch.nn.Linear(1024, 128),
                torch.nn.Dropout(0.2),
                torch.nn.Linear(128, 64),
                torch.nn.Dropout(0.1),
                torch.nn.Linear(64, 16),
                torch.nn.Linear(16, 1),
            )

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.layers(x)

    return MLP()


def test_aesthetic_checkpoint_has_the_published_layout_and_loads_strictly(model_dir: Path) -> None:
    state = torch.load(ensure_forged("tiny-aesthetic", model_dir) / "aesthetic_mlp.pth", weights_only=True)
    assert set(state) == PUBLISHED_KEYS
    input_size = state["layers.0.weight"].shape[1]
    shapes = [tuple(state[f"layers.{i}.weight"].shape) for i in (0, 2, 4, 6, 7)]
    assert shapes == [(1024, input_size), (128, 1024), (64, 128), (16, 64), (1, 16)]
    published, ours = _published_mlp(input_size).eval(), AestheticMLP(input_size).eval()
    published.load_state_dict(state, strict=True)
    ours.load_state_dict(published.state_dict(), strict=True)  # and back: the formats are the same
    x = torch.nn.functional.normalize(torch.randn(3, input_size), dim=-1)
    assert torch.allclose(published(x), ours(x))
    # the ViT-L/14 checkpoint shape (768 inputs) round-trips too
    assert set(AestheticMLP(768).state_dict()) == PUBLISHED_KEYS
    _published_mlp(768).load_state_dict(AestheticMLP(768).state_dict(), strict=True)


def test_aesthetic_scores_the_normalised_clip_embedding(
    tiny: dict[str, ModelSpec], model_dir: Path, images: list[Image.Image]
) -> None:
    import open_clip

    result = build_scorer("aesthetic", tiny["aesthetic"], model_dir=model_dir).score(PROMPT, images)
    name = "local-dir:" + str(ensure_forged("tiny-openclip", model_dir))
    clip, _, preprocess = open_clip.create_model_and_transforms(name)
    state = torch.load(ensure_forged("tiny-aesthetic", model_dir) / "aesthetic_mlp.pth", weights_only=True)
    mlp = _published_mlp(state["layers.0.weight"].shape[1]).eval()
    mlp.load_state_dict(state)
    with torch.no_grad():
        embeds = clip.eval().encode_image(torch.stack([preprocess(i) for i in images]))
        ratings = mlp(embeds / embeds.norm(dim=-1, keepdim=True)).squeeze(-1).tolist()
    assert result.raw == pytest.approx(ratings, abs=1e-5)
    assert result.normalized == pytest.approx([rating_to_percent(r) for r in ratings])
    assert rating_to_percent(1.0) == 0.0 and rating_to_percent(10.0) == 100.0
    assert rating_to_percent(5.5) == pytest.approx(50.0) and rating_to_percent(12.0) == 100.0


# ---- loading: once per process, errors wrapped ---------------------------------------------------


def test_each_model_loads_once_and_clipscore_shares_its_clip_with_aesthetic(
    tiny: dict[str, ModelSpec], model_dir: Path
) -> None:
    scorer_base.clear_model_cache()
    first = {name: build_scorer(name, spec, model_dir=model_dir) for name, spec in tiny.items()}
    again = {name: build_scorer(name, spec, model_dir=model_dir) for name, spec in tiny.items()}
    assert all(count == 1 for count in scorer_base.LOAD_COUNTS.values())
    kinds = sorted(key[0] for key in scorer_base.LOAD_COUNTS)
    assert kinds == ["aesthetic_mlp", "hf_clip", "open_clip", "vqa"]  # one open_clip for two scorers
    assert first["clipscore"].bundle is again["clipscore"].bundle is first["aesthetic"].clip
    assert first["pickscore"].bundle is again["pickscore"].bundle
    assert first["vqa"].bundle.model is again["vqa"].bundle.model


def test_unusable_inputs_and_models_raise_scorer_errors(
    tiny: dict[str, ModelSpec], model_dir: Path, images: list[Image.Image]
) -> None:
    scorer = build_scorer("clipscore", tiny["clipscore"], model_dir=model_dir)
    with pytest.raises(ScorerInputError, match="at least one image"):
        scorer.score(PROMPT, [])
    with pytest.raises(ScorerInputError, match="non-empty"):
        scorer.score("  ", images)
    with pytest.raises(UnknownScorerError):
        build_scorer("hpsv2", tiny["clipscore"])
    # a transformers CLIP dir is not an open_clip dir: the library error arrives as ScorerError
    not_open_clip = ModelSpec(source="forge:tiny-pickscore", options={"arch": "local-dir"})
    with pytest.raises(ScorerError, match="open_clip"):
        build_scorer("clipscore", not_open_clip, model_dir=model_dir)


# ---- fault injection + aggregation with real scorers ---------------------------------------------


def test_a_failing_scorer_is_dropped_and_the_others_still_score(
    tiny: dict[str, ModelSpec], model_dir: Path, images: list[Image.Image]
) -> None:
    scorers = {name: build_scorer(name, spec, model_dir=model_dir) for name, spec in tiny.items()}
    scorers["vqa"] = build_scorer("vqa", tiny["vqa"], options={"fail_with": "CUDA out of memory"})
    results: dict[str, ScoreResult | BaseException | None] = {}
    for name, scorer in scorers.items():
        try:
            results[name] = scorer.score(PROMPT, images)
        except ScorerError as exc:
            results[name] = exc
    assert isinstance(results["vqa"], ScorerError)
    summary = aggregate(results)
    assert summary.scorers_used == ["pickscore", "clipscore", "aesthetic"]
    assert "CUDA out of memory" in summary.scorers_failed["vqa"]
    assert all(image.vqa is None and image.pickscore is not None for image in summary.per_image)
    weights = {"pickscore": 0.5 / 0.85, "clipscore": 0.25 / 0.85, "aesthetic": 0.1 / 0.85}
    for index, image in enumerate(summary.per_image):
        expected = sum(w * results[n].normalized[index] for n, w in weights.items())  # type: ignore[union-attr]
        assert image.overall == pytest.approx(expected)
    with pytest.raises(ScorerError, match="injected"):
        build_scorer("pickscore", tiny["pickscore"], options={"fail_on_load": "disk full"})
    with pytest.raises(ScorerError, match="injected failure"):
        build_scorer("aesthetic", tiny["aesthetic"], options={"fail": True}).score(PROMPT, images)


# ---- aggregate (pure) ----------------------------------------------------------------------------


def test_aggregate_default_weights_and_public_field_names() -> None:
    results = {
        "pickscore": _result("pickscore", [80.0, 40.0]),
        "clipscore": _result("clipscore", [20.0, 60.0]),
        "vqa": _result("vqa", [50.0, 90.0]),
        "aesthetic": _result("aesthetic", [10.0, 100.0]),
    }
    summary = aggregate(results)
    assert DEFAULT_WEIGHTS == {"pickscore": 0.50, "clipscore": 0.25, "vqa": 0.15, "aesthetic": 0.10}
    assert summary.per_image[0].overall == pytest.approx(0.5 * 80 + 0.25 * 20 + 0.15 * 50 + 0.1 * 10)
    assert summary.per_image[1].overall == pytest.approx(0.5 * 40 + 0.25 * 60 + 0.15 * 90 + 0.1 * 100)
    assert summary.best_index == 1 and summary.best_overall == summary.per_image[1].overall
    assert set(summary.per_image[0].model_dump()) == {"pickscore", "clip", "vqa", "aesthetic", "overall"}
    assert summary.per_image[0].clip == 20.0
    assert summary.scorers_used == list(SCORER_NAMES) and summary.scorers_failed == {}


def test_reweighting_changes_the_pick_and_renormalises() -> None:
    results = {
        "pickscore": _result("pickscore", [90.0, 10.0]),
        "clipscore": _result("clipscore", [0.0, 70.0]),
    }
    assert aggregate(results).best_index == 0  # .50/.75 * 90 = 60 vs .50/.75 * 10 + .25/.75 * 70 = 30
    reweighted = aggregate(results, {"pickscore": 0.1, "clipscore": 0.9})
    assert reweighted.best_index == 1
    assert reweighted.per_image[1].overall == pytest.approx(0.1 * 10 + 0.9 * 70)
    assert reweighted.weights == pytest.approx({"pickscore": 0.1, "clipscore": 0.9})
    # weight 0 disables a scorer: its values are still reported but do not count
    only_clip = aggregate(results, {"pickscore": 0.0, "clipscore": 2.0})
    assert only_clip.scorers_used == ["clipscore"] and only_clip.per_image[1].overall == pytest.approx(70.0)
    assert only_clip.per_image[0].pickscore == 90.0


def test_disabled_and_failed_scorers_are_dropped_and_recorded() -> None:
    results = {
        "pickscore": RuntimeError("weights missing"),
        "clipscore": _result("clipscore", [30.0, 50.0]),
        "vqa": None,
        "aesthetic": _result("aesthetic", [90.0, 10.0]),
    }
    summary = aggregate(results)
    assert summary.scorers_used == ["clipscore", "aesthetic"]
    assert summary.scorers_failed == {"pickscore": "RuntimeError: weights missing"}
    assert summary.weights == pytest.approx({"clipscore": 0.25 / 0.35, "aesthetic": 0.10 / 0.35})
    assert summary.per_image[0].overall == pytest.approx((0.25 * 30 + 0.10 * 90) / 0.35)
    assert summary.per_image[0].pickscore is None and summary.per_image[0].vqa is None


def test_ties_go_to_the_lowest_index() -> None:
    results = {"clipscore": _result("clipscore", [40.0, 70.0, 70.0, 70.0 - 1e-12])}
    assert aggregate(results).best_index == 1


def test_no_usable_scorer_raises_a_value_error_naming_the_failures() -> None:
    with pytest.raises(NoScoresError, match="vqa: ScorerError: boom") as info:
        aggregate({"pickscore": None, "vqa": ScorerError("boom")})
    assert isinstance(info.value, ValueError)
    with pytest.raises(NoScoresError):
        aggregate({})


def test_aggregate_rejects_bad_weights_and_inconsistent_results() -> None:
    with pytest.raises(ValueError, match="unknown scorer weights"):
        aggregate({"clipscore": _result("clipscore", [1.0])}, {"hps": 1.0})
    with pytest.raises(ValueError, match=">= 0"):
        aggregate({"clipscore": _result("clipscore", [1.0])}, {"clipscore": -1.0})
    mismatched = aggregate({"pickscore": _result("pickscore", [1.0, 2.0]), "vqa": _result("vqa", [1.0])})
    assert mismatched.scorers_used == ["pickscore"]
    assert "returned 1 scores, expected 2" in mismatched.scorers_failed["vqa"]
    with pytest.raises(ValueError, match=r"\[0, 100\]"):
        ScoreResult(scorer="clipscore", raw=[1.0], normalized=[101.0], seconds=0.0)
