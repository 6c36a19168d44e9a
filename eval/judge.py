"""An independent judge of toy-world images: what is drawn, read from the pixels alone.

No model and no scorer: the judge finds the background (the border's median colour), the shape's
mask (pixels far from the background), and from the mask's moments and extents reads

- **colour**: the world palette colour (``weights.forge_scorers.SHAPE_COLOURS``) nearest to the
  median colour of the mask;
- **shape**: ``triangle`` when the mask's centroid sits clearly below its box centre (the world's
  triangles point up: centroid at 2/3 of the height) or the mask fills little of its box (1/2);
  ``square`` when its diagonal extent is ~sqrt(2) of its axis extent or it fills its box (1);
  else ``circle`` (pi/4 of its box, equal extents in every direction);
- **position**: the centroid's third of the image, horizontally (left/centre/right) and vertically
  (top/middle/bottom);
- **background**: the world background nearest to the border's median colour.

``parse_prompt`` reads the same attributes out of a world caption, and ``judge_image`` /
``JudgeVerdict.matches`` compare them, so a prompt set can be graded without trusting any scorer.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

from weights.forge_scorers import BACKGROUNDS, SHAPE_COLOURS, SHAPES

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

HorizontalPosition = Literal["left", "centre", "right"]
VerticalPosition = Literal["top", "middle", "bottom"]

# A pixel belongs to the shape when it is this far (Euclidean RGB) from the background colour.
FOREGROUND_DISTANCE = 90.0
# Less of the image than this in the mask: nothing is drawn.
MIN_COVERAGE = 0.01
# Thresholds of the shape rule (see the module docstring); calibrated on rendered world images.
TRIANGLE_CENTROID_OFFSET = 0.07
TRIANGLE_MAX_FILL = 0.62
SQUARE_MIN_DIAGONAL_RATIO = 1.12
SQUARE_MIN_FILL = 0.93


class JudgeVerdict(BaseModel):
    """What the judge reads off one image."""

    model_config = ConfigDict(extra="forbid")

    colour: str | None = Field(description="World palette colour of the shape; None when nothing is drawn.")
    shape: str | None = Field(description="circle, square or triangle; None when nothing is drawn.")
    background: str = Field(description="World background nearest to the border colour.")
    horizontal: HorizontalPosition | None = Field(description="Centroid's horizontal third.")
    vertical: VerticalPosition | None = Field(description="Centroid's vertical third.")
    coverage: float = Field(description="Fraction of the image in the shape's mask.")
    fill: float = Field(
        description="Mask area / its bounding-box area (square 1, circle 0.79, triangle 0.5)."
    )
    centroid_offset: float = Field(
        description="(centroid y - box centre y) / box height: about 1/6 for an upward triangle, 0 otherwise."
    )
    diagonal_ratio: float = Field(
        description="Mean extent along the diagonals / mean extent along the axes (square 1.41, circle 1)."
    )

    def matches(self, expected: PromptAttributes) -> dict[str, bool]:
        """Per attribute the prompt names, whether the image shows it."""
        checks: dict[str, bool] = {}
        for name in ("colour", "shape", "background", "horizontal", "vertical"):
            wanted = getattr(expected, name)
            if wanted is not None:
                checks[name] = getattr(self, name) == wanted
        return checks


class PromptAttributes(BaseModel):
    """What a world caption asks for; None where it says nothing."""

    model_config = ConfigDict(extra="forbid")

    colour: str | None = Field(default=None, description="Colour word before the shape word.")
    shape: str | None = Field(default=None, description="Shape word.")
    background: str | None = Field(default=None, description="Word before 'background'.")
    horizontal: HorizontalPosition | None = Field(
        default=None, description="'on the left/right', 'in the centre'."
    )
    vertical: VerticalPosition | None = Field(default=None, description="'at the top/bottom'.")


_COLOURS = "|".join(SHAPE_COLOURS)
_SHAPES = "|".join(SHAPES)
_OBJECT = re.compile(rf"\b({_COLOURS})\s+({_SHAPES})\b", re.IGNORECASE)
_SHAPE_ONLY = re.compile(rf"\b({_SHAPES})\b", re.IGNORECASE)
_BACKGROUND = re.compile(r"\b(\w+)\s+background\b", re.IGNORECASE)


def parse_prompt(prompt: str) -> PromptAttributes:
    """The world attributes a prompt names (colour, shape, background, position)."""
    text = prompt.lower()
    attributes: dict[str, str] = {}
    if match := _OBJECT.search(text):
        attributes["colour"], attributes["shape"] = match.group(1), match.group(2)
    elif match := _SHAPE_ONLY.search(text):
        attributes["shape"] = match.group(1)
    if (match := _BACKGROUND.search(text)) and match.group(1) in BACKGROUNDS:
        attributes["background"] = match.group(1)
    for word, horizontal in (
        ("left", "left"),
        ("right", "right"),
        ("centre", "centre"),
        ("center", "centre"),
    ):
        if re.search(rf"\b{word}\b", text):
            attributes["horizontal"] = horizontal
    for word, vertical in (("top", "top"), ("bottom", "bottom")):
        if re.search(rf"\b{word}\b", text):
            attributes["vertical"] = vertical
    return PromptAttributes.model_validate(attributes)


def _nearest(rgb: np.ndarray, palette: dict[str, tuple[int, int, int]]) -> str:
    import numpy as np  # noqa: PLC0415

    names = list(palette)
    distances = [float(np.linalg.norm(rgb - np.array(palette[name], dtype=np.float32))) for name in names]
    return names[int(np.argmin(distances))]


def _extent(values: np.ndarray) -> float:
    """Robust extent of a 1-D point cloud (1st to 99th percentile), plus one pixel."""
    import numpy as np  # noqa: PLC0415

    low, high = np.percentile(values, [1, 99])
    return float(high - low) + 1.0


def judge_image(image: Image.Image) -> JudgeVerdict:
    """Read colour, shape, position and background off ``image``'s pixels."""
    import numpy as np  # noqa: PLC0415

    # 1. background: the median colour of the one-pixel border
    pixels = np.asarray(image.convert("RGB"), dtype=np.float32)
    height, width, _ = pixels.shape
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    background_rgb = np.median(border, axis=0)
    background = _nearest(background_rgb, BACKGROUNDS)
    # 2. the shape's mask: pixels far from the background
    mask = np.linalg.norm(pixels - background_rgb, axis=-1) > FOREGROUND_DISTANCE
    coverage = float(mask.mean())
    if coverage < MIN_COVERAGE:
        return JudgeVerdict(
            colour=None,
            shape=None,
            background=background,
            horizontal=None,
            vertical=None,
            coverage=coverage,
            fill=0.0,
            centroid_offset=0.0,
            diagonal_ratio=0.0,
        )
    rows, cols = np.nonzero(mask)
    xs, ys = cols.astype(np.float64) + 0.5, rows.astype(np.float64) + 0.5
    # 3. colour: the palette colour nearest to the mask's median colour
    colour = _nearest(np.median(pixels[mask], axis=0), SHAPE_COLOURS)
    # 4. shape: fill of the box, centroid offset (m01/m00 against the box), diagonal vs axis extents
    box_width, box_height = _extent(xs), _extent(ys)
    box_top = float(np.percentile(ys, 1))
    area = float(mask.sum())
    fill = area / (box_width * box_height)
    centroid_x, centroid_y = float(xs.mean()), float(ys.mean())
    centroid_offset = (centroid_y - (box_top + (box_height - 1.0) / 2.0)) / box_height
    diagonal = (_extent((xs + ys) / np.sqrt(2)) + _extent((xs - ys) / np.sqrt(2))) / 2.0
    diagonal_ratio = diagonal / ((box_width + box_height) / 2.0)
    if centroid_offset > TRIANGLE_CENTROID_OFFSET or fill < TRIANGLE_MAX_FILL:
        shape = "triangle"
    elif diagonal_ratio > SQUARE_MIN_DIAGONAL_RATIO or fill > SQUARE_MIN_FILL:
        shape = "square"
    else:
        shape = "circle"
    # 5. position: the centroid's thirds
    thirds_x: tuple[HorizontalPosition, ...] = ("left", "centre", "right")
    thirds_y: tuple[VerticalPosition, ...] = ("top", "middle", "bottom")
    return JudgeVerdict(
        colour=colour,
        shape=shape,
        background=background,
        horizontal=thirds_x[min(int(3 * centroid_x / width), 2)],
        vertical=thirds_y[min(int(3 * centroid_y / height), 2)],
        coverage=coverage,
        fill=fill,
        centroid_offset=centroid_offset,
        diagonal_ratio=diagonal_ratio,
    )


def judge_prompt(prompt: str, image: Image.Image) -> dict[str, bool]:
    """Per attribute ``prompt`` names, whether ``image`` shows it."""
    return judge_image(image).matches(parse_prompt(prompt))
