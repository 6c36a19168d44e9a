"""Cost-model scorers: the ``Scorer`` interface, GPU time from published figures (``weights.costmodel``).

Profile ``cluster-twin`` names each scorer's model ``costmodel:<curve>``. ``CostModelScorer.score``
checks its inputs like every scorer, holds its simulated device for the curve's time for the batch
(plus the reference image, when it compares with one) and returns deterministic, valid scores:
a value in 0-100 from (scorer, prompt, image pixels). Four scorer replicas on one GPU pass the same
device key, so their batches queue on one device, as on a time-sliced GPU.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scorers.base import Scorer, ScoreResult, check_inputs
from weights.costmodel import DeviceHold, SimulatedDevice, costmodel_name, curve
from weights.profiles import ModelSpec

if TYPE_CHECKING:
    from PIL import Image

# Scorers that compare an image with the previous scene's (CLIPScore's image tower does).
REFERENCE_SCORERS = frozenset({"clipscore"})


def _unit(*parts: object) -> float:
    """A deterministic number in [0, 1) from ``parts``."""
    digest = hashlib.sha256("\x00".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


class CostModelScorer:
    """A scorer that sleeps on a simulated GPU for the curve's time of its batch."""

    def __init__(self, name: str, spec: ModelSpec, *, device_key: str = "local-gpu0") -> None:
        curve_name = costmodel_name(spec.source)
        if curve_name is None:
            raise ValueError(f"a cost-model scorer needs a 'costmodel:<curve>' source, got {spec.source!r}")
        self.name = name
        self.curve = curve(curve_name)
        self.takes_reference = name in REFERENCE_SCORERS
        self.device = SimulatedDevice(device_key, float(spec.options.get("time_scale", 1.0)))
        self.last_hold: DeviceHold | None = None
        self.holds: list[DeviceHold] = []

    def take_holds(self) -> list[DeviceHold]:
        """The device holds recorded since the last call (and forget them)."""
        holds, self.holds = self.holds, []
        return holds

    def score(
        self, prompt: str, images: list[Image.Image], reference: Image.Image | None = None
    ) -> ScoreResult:
        """Scores of ``images`` after holding the device for one batch of them."""
        return self.score_many([(prompt, images, reference)])[0]

    def score_many(
        self, groups: list[tuple[str, list[Image.Image], Image.Image | None]]
    ) -> list[ScoreResult]:
        """Several (prompt, images, reference) groups in ONE forward pass: a CLIP-style model encodes
        every prompt and every image of the batch together (prompts of different generations)."""
        # 1. the same input checks as the real scorers
        for prompt, images, _ in groups:
            check_inputs(prompt, images)
        started = time.perf_counter()
        # 2. one batch on the device (a reference rides in the same image-tower pass)
        batch = sum(
            len(images) + (1 if reference is not None and self.takes_reference else 0)
            for _, images, reference in groups
        )
        hold = self.device.hold(self.curve.seconds(batch), batch)
        self.last_hold = hold
        self.holds.append(hold)
        seconds = time.perf_counter() - started
        return [self._scores(prompt, images, reference, seconds) for prompt, images, reference in groups]

    def _scores(
        self, prompt: str, images: list[Image.Image], reference: Image.Image | None, seconds: float
    ) -> ScoreResult:
        # deterministic scores from the pixels (flat cost-model images: one pixel tells them apart)
        keys = [repr(image.getpixel((0, 0))) for image in images]
        normalized = [round(100 * _unit(self.name, prompt, key), 3) for key in keys]
        extra: dict[str, Any] = {}
        if reference is not None and self.takes_reference:
            ref = repr(reference.getpixel((0, 0)))
            extra["consistency"] = [round(100 * _unit("consistency", key, ref), 3) for key in keys]
        return ScoreResult(
            scorer=self.name,
            raw=[value / 100 for value in normalized],
            normalized=normalized,
            extra=extra,
            seconds=seconds,
        )


def build_scorer_or_costmodel(
    name: str,
    spec: ModelSpec,
    *,
    device: str = "cpu",
    dtype: str = "float32",
    model_dir: Path | None = None,
    device_key: str = "local-gpu0",
) -> Scorer:
    """The scorer a spec asks for: a cost model for 'costmodel:<curve>', else ``build_scorer``'s."""
    if costmodel_name(spec.source) is not None:
        return CostModelScorer(name, spec, device_key=device_key)
    from scorers.registry import build_scorer  # noqa: PLC0415

    return build_scorer(name, spec, device=device, dtype=dtype, model_dir=model_dir)
