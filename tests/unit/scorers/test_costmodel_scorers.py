"""Cost-model scorers: curves pinned to timm's RTX 4090 throughputs; one device hold for all groups of
a batch (prompts of different generations in one forward pass); valid, deterministic scores."""

from __future__ import annotations

import pytest
from PIL import Image

from scorers.costmodel import CostModelScorer, build_scorer_or_costmodel
from weights.costmodel import CURVES, DeviceHold
from weights.profiles import get_profile


@pytest.mark.parametrize(
    ("name", "images_per_s"), [("clip-vit-h14-4090", 346.0), ("clip-vit-l14-4090", 658.0)]
)
def test_clip_curves_match_timm_throughput(name: str, images_per_s: float) -> None:
    curve = CURVES[name]
    assert 1 / curve.per_item_s == pytest.approx(images_per_s, rel=0.05)
    assert 256 / curve.seconds(256) == pytest.approx(images_per_s, rel=0.05)


def test_vqa_curve_is_a_7b_forward_per_image() -> None:
    vqa = CURVES["llava-7b-vqa-h100"]
    assert vqa.per_item_s == pytest.approx(0.0177, rel=0.05)
    assert vqa.seconds(4) > 4 * CURVES["clip-vit-h14-4090"].per_item_s


class _Recorder:
    def __init__(self) -> None:
        self.asked: list[tuple[float, int]] = []

    def hold(self, seconds: float, batch: int) -> DeviceHold:
        self.asked.append((seconds, batch))
        return DeviceHold(wait_s=0.0, compute_s=seconds, batch=batch)


def _scorer(name: str, monkeypatch: pytest.MonkeyPatch) -> tuple[CostModelScorer, _Recorder]:
    scorer = build_scorer_or_costmodel(name, get_profile("cluster-twin").model(name), device_key="test-gpu")
    assert isinstance(scorer, CostModelScorer)
    recorder = _Recorder()
    monkeypatch.setattr(scorer, "device", recorder)
    return scorer, recorder


def test_groups_of_different_prompts_share_one_device_hold(monkeypatch: pytest.MonkeyPatch) -> None:
    scorer, recorder = _scorer("pickscore", monkeypatch)
    images = [Image.new("RGB", (16, 16), (k, 2 * k, 3 * k)) for k in range(4)]
    results = scorer.score_many([("a bike at dawn", images, None), ("a bike at dusk", images[:2], None)])
    assert recorder.asked == [(pytest.approx(CURVES["clip-vit-h14-4090"].seconds(6)), 6)]
    assert [len(r.normalized) for r in results] == [4, 2]
    assert all(0 <= v <= 100 for r in results for v in r.normalized)
    again = scorer.score("a bike at dawn", images)
    assert again.normalized == results[0].normalized  # deterministic, batch-independent


def test_clipscore_compares_with_the_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    scorer, recorder = _scorer("clipscore", monkeypatch)
    images = [Image.new("RGB", (16, 16), (k, 0, 0)) for k in range(3)]
    result = scorer.score("a bike", images, reference=Image.new("RGB", (16, 16), (9, 9, 9)))
    assert len(result.extra["consistency"]) == 3
    assert recorder.asked[-1][1] == 4  # the reference rides in the same pass


def test_empty_prompt_is_rejected_like_the_real_scorers(monkeypatch: pytest.MonkeyPatch) -> None:
    scorer, recorder = _scorer("vqa", monkeypatch)
    with pytest.raises(ValueError):
        scorer.score("  ", [Image.new("RGB", (8, 8))])
    assert recorder.asked == []
