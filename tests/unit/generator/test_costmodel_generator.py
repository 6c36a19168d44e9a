"""The cost-model diffusion core: curves pinned to their cited figures; valid, deterministic PNGs;
the device held for the curve's time of each pipeline call (recorded, not timed)."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from generator import GenerationRequest
from generator.costmodel import CostModelGenerator, build_generator
from weights.costmodel import CURVES, DeviceHold, SimulatedDevice
from weights.profiles import get_profile


@pytest.mark.parametrize(
    ("name", "batch", "published_s"),
    [
        ("sdxl-turbo-512-a100", 1, 0.171),  # A100, PyTorch compiled
        ("sdxl-turbo-512-a100", 4, 0.391),
        ("sdxl-turbo-512-h100-trt", 1, 0.084),  # H100, TensorRT
        ("flux-schnell-512-h100", 1, 0.29),  # Replicate's FLUX.1-schnell figure
    ],
)
def test_diffusion_curves_match_their_published_figures(name: str, batch: int, published_s: float) -> None:
    assert CURVES[name].seconds(batch) == pytest.approx(published_s, rel=0.05)


def test_every_cited_figure_is_within_5_percent_of_its_curve() -> None:
    for curve in CURVES.values():
        assert curve.source, curve.name
        for batch, published_s in curve.cited.items():
            assert curve.seconds(batch) == pytest.approx(published_s, rel=0.05), (curve.name, batch)


def test_batching_amortises_the_fixed_cost() -> None:
    flux = CURVES["flux-schnell-512-h100"]
    assert flux.seconds(4) / 4 < flux.seconds(1)
    assert flux.seconds(16) / 16 < flux.seconds(4) / 4


class _Recorder:
    def __init__(self) -> None:
        self.asked: list[tuple[float, int]] = []

    def hold(self, seconds: float, batch: int) -> DeviceHold:
        self.asked.append((seconds, batch))
        return DeviceHold(wait_s=0.0, compute_s=seconds, batch=batch)


@pytest.fixture
def generator(monkeypatch: pytest.MonkeyPatch) -> tuple[CostModelGenerator, _Recorder]:
    profile = get_profile("cluster-twin")
    core = build_generator(profile.model("diffusion"), profile.generation, device_key="test-gpu")
    assert isinstance(core, CostModelGenerator)
    recorder = _Recorder()
    monkeypatch.setattr(core, "sim_device", recorder)
    return core, recorder


def test_returns_valid_deterministic_pngs_of_the_profile_size(generator) -> None:  # type: ignore[no-untyped-def]
    core, _ = generator
    request = GenerationRequest(prompt="a red bike light at dusk", seeds=[1, 2, 3, 4])
    first = core.generate(request)
    again = core.generate(request)
    assert [i.png for i in first.images] == [i.png for i in again.images]
    assert len({i.png for i in first.images}) == 4  # each seed its own image
    image = Image.open(io.BytesIO(first.images[0].png))
    assert image.size == (512, 512) and first.mode == "text2img"


def test_one_device_hold_per_pipeline_call_at_the_curves_time(generator) -> None:  # type: ignore[no-untyped-def]
    core, recorder = generator
    flux = CURVES["flux-schnell-512-h100"]
    text = [GenerationRequest(prompt=f"scene {k} of a bike ad", seeds=[0, 1, 2, 3]) for k in range(2)]
    core.generate_many(text)  # two requests, same settings: one call of 8 images
    assert recorder.asked == [(pytest.approx(flux.seconds(8)), 8)]
    reference = core.generate(text[0]).images[0].png
    recorder.asked.clear()
    core.generate(GenerationRequest(prompt="scene 2", seeds=[5, 6], reference_png=reference))
    # img2img at strength 0.5 runs 2 of the curve's 4 steps
    assert recorder.asked == [(pytest.approx(flux.seconds(2) * 2 / 4), 2)]


def test_simulated_device_records_wait_and_compute(tmp_path) -> None:  # type: ignore[no-untyped-def]
    device = SimulatedDevice("unit-test-device", time_scale=0.001)
    hold = device.hold(1.0, 3)
    assert hold.batch == 3 and hold.compute_s >= 0 and hold.wait_s >= 0
    with pytest.raises(ValueError):
        SimulatedDevice("bad", time_scale=0)
