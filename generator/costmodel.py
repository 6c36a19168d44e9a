"""The cost-model diffusion core: ``DiffusionGenerator``'s interface, GPU time from published figures.

Profile ``cluster-twin`` names the diffusion model ``costmodel:<curve>`` (``weights.costmodel``).
``CostModelGenerator`` validates and groups requests exactly like ``DiffusionGenerator`` (it *is* one,
with the pipeline call replaced): each pipeline call holds the simulated device for the curve's
time for its image count, scaled by the denoising steps it runs (img2img runs
``int(steps * strength)`` of the curve's steps), and returns deterministic PNGs: a flat colour
from (prompt, seed, reference), so everything downstream runs unchanged. No weights are loaded.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any

from PIL import Image

from generator.core import (
    DEFAULT_FAMILY,
    PIPELINE_FAMILIES,
    DiffusionGenerator,
    _ResolvedRequest,
)
from weights.costmodel import DeviceHold, SimulatedDevice, costmodel_name, curve
from weights.profiles import GenerationDefaults, ModelSpec

logger = logging.getLogger(__name__)

CURVE_STEPS = 4  # every diffusion curve in weights.costmodel is for 4 denoising steps


class CostModelGenerator(DiffusionGenerator):
    """A diffusion core that sleeps on a simulated GPU instead of running a pipeline."""

    def __init__(
        self,
        spec: ModelSpec,
        defaults: GenerationDefaults,
        *,
        device: str = "cpu",
        dtype: str = "float32",
        model_dir: Path | None = None,
        options: dict[str, Any] | None = None,
        device_key: str = "local-gpu0",
    ) -> None:
        name = costmodel_name(spec.source)
        if name is None:
            raise ValueError(
                f"a cost-model generator needs a 'costmodel:<curve>' source, got {spec.source!r}"
            )
        self.curve = curve(name)
        self.options = {**spec.options, **(options or {})}
        self.source = spec.source
        self.defaults = defaults
        self.family_name = str(self.options.get("family", DEFAULT_FAMILY))
        if self.family_name not in PIPELINE_FAMILIES:
            raise ValueError(f"options.family {self.family_name!r} is not a pipeline family")
        self.family = PIPELINE_FAMILIES[self.family_name]
        self.device = "cpu"  # nothing is allocated; _release_memory has nothing to do
        self.sim_device = SimulatedDevice(device_key, float(self.options.get("time_scale", 1.0)))
        self.load_seconds = 0.0
        self.last_hold: DeviceHold | None = None  # the last pipeline call's wait and compute
        self.holds: list[DeviceHold] = []  # every pipeline call since the last ``take_holds``

    def take_holds(self) -> list[DeviceHold]:
        """The device holds recorded since the last call (and forget them)."""
        holds, self.holds = self.holds, []
        return holds

    def _pipeline_call(
        self, first: _ResolvedRequest, wanted: list[tuple[_ResolvedRequest, int]]
    ) -> list[Image.Image]:
        """Hold the device for the curve's time of ``len(wanted)`` images, then paint them."""
        strength = first.strength if first.reference is not None and first.strength is not None else 1.0
        steps_run = int(first.steps * strength)
        steps_run = max(1, steps_run)
        seconds = self.curve.seconds(len(wanted)) * steps_run / CURVE_STEPS
        hold = self.sim_device.hold(seconds, len(wanted))
        self.last_hold = hold
        self.holds.append(hold)
        return [self._paint(item, seed) for item, seed in wanted]

    @staticmethod
    def _paint(item: _ResolvedRequest, seed: int) -> Image.Image:
        """A flat colour that depends only on the prompt, the seed and the reference."""
        digest = hashlib.sha256(f"{item.prompt}\x00{seed}".encode())
        if item.reference is not None:
            digest.update(repr(item.reference.getpixel((0, 0))).encode())
        red, green, blue = digest.digest()[:3]
        return Image.new("RGB", (item.width, item.height), (red, green, blue))


def build_generator(
    spec: ModelSpec,
    defaults: GenerationDefaults,
    *,
    device: str = "auto",
    dtype: str = "float32",
    model_dir: Path | None = None,
    device_key: str = "local-gpu0",
) -> DiffusionGenerator:
    """The diffusion core a spec asks for: a cost model for 'costmodel:<curve>', else the real one."""
    if costmodel_name(spec.source) is not None:
        return CostModelGenerator(
            spec, defaults, device=device, dtype=dtype, model_dir=model_dir, device_key=device_key
        )
    return DiffusionGenerator(spec, defaults, device=device, dtype=dtype, model_dir=model_dir)
