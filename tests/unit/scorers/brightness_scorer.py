"""A fifth scorer, as a new scorer would be written: mean luminance of the pixels, 0–100.

Used by ``test_scorer_catalogue.py`` to show that adding a scorer takes one catalogue entry and one
module like this one, and no edit anywhere else. Not collected by pytest (no ``test_`` prefix).
"""

from __future__ import annotations

from typing import Any

from PIL import Image, ImageStat
from pydantic import Field

from scorers.base import BatchScorer
from scorers.catalogue import ScorerOptions


class BrightnessOptions(ScorerOptions):
    """Options of the brightness scorer."""

    invert: bool = Field(default=False, description="Score darkness instead: 100 for a black image.")


class BrightnessScorer(BatchScorer):
    """Mean ITU-R 601 luma of each image (PIL's 'L' conversion), 0–255 raw and 0–100 normalized."""

    name = "brightness"

    def __init__(self, *, invert: bool = False) -> None:
        self.invert = invert

    @classmethod
    def from_spec(
        cls, source: str, options: BrightnessOptions, *, device: str, dtype: str
    ) -> BrightnessScorer:
        return cls(invert=options.invert)

    def _score_batch(
        self, prompt: str, images: list[Image.Image]
    ) -> tuple[list[float], list[float], dict[str, Any]]:
        luma = [ImageStat.Stat(image.convert("L")).mean[0] for image in images]
        normalized = [100.0 * value / 255.0 for value in luma]
        if self.invert:
            normalized = [100.0 - value for value in normalized]
        return luma, normalized, {}
