"""Storyboard exports, as pure functions of the scene images: a contact sheet PNG and an animatic MP4.

Both are deterministic: the same inputs give the same bytes (on one machine: the font and the
ffmpeg build are part of the input). The animatic uses the ffmpeg binary that the imageio-ffmpeg
wheel ships, so nothing else needs installing.
"""

from __future__ import annotations

import io
import math
import os
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
from PIL import Image, ImageDraw, ImageFont

SCORE_LABELS: tuple[tuple[str, str], ...] = (
    ("pickscore", "Pick"),
    ("clip", "CLIP"),
    ("vqa", "VQA"),
    ("aesthetic", "Aes"),
)

# Colours (RGB): a light sheet that prints well.
BACKGROUND = (246, 246, 243)
INK = (33, 33, 33)
MUTED = (110, 110, 110)
ARROW = (70, 110, 200)
BADGE = (200, 40, 40)
CARD = (255, 255, 255)
BORDER = (210, 210, 205)


class ExportError(ValueError):
    """Export inputs are unusable (no scenes, unreadable image, bad timing)."""


class SheetScene(NamedTuple):
    """One scene of a contact sheet; a plain ``(png, caption[, scores[, below_threshold]])`` tuple fits."""

    png: bytes
    caption: str
    scores: Mapping[str, Any] | None = None
    below_threshold: bool = False


def _load_rgb(png: bytes, what: str) -> Image.Image:
    try:
        with Image.open(io.BytesIO(png)) as image:
            return image.convert("RGB")
    except Exception as exc:
        raise ExportError(f"{what}: not a readable image ({exc})") from exc


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    # Pillow's bundled font: the same on every machine with FreeType, no system fonts needed.
    return ImageFont.load_default(size=size)


def _fit(image: Image.Image, width: int, height: int) -> Image.Image:
    """``image`` scaled to fit ``width`` x ``height``, centred on a card-coloured canvas."""
    scale = min(width / image.width, height / image.height)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    resized = image.resize(size, Image.Resampling.LANCZOS)
    canvas = Image.new("RGB", (width, height), CARD)
    canvas.paste(resized, ((width - size[0]) // 2, (height - size[1]) // 2))
    return canvas


def _format_score(value: Any) -> str:
    return "n/a" if value is None else f"{float(value):.0f}"


def scores_line(scores: Mapping[str, Any] | None) -> str:
    """'overall 72.3 · Pick 70 · CLIP 65 · VQA 80 · Aes 55' (a failed scorer shows 'n/a')."""
    if not scores:
        return "unscored"
    overall = scores.get("overall")
    parts = [f"overall {float(overall):.1f}" if overall is not None else "overall n/a"]
    parts += [f"{label} {_format_score(scores.get(key))}" for key, label in SCORE_LABELS]
    return " · ".join(parts)


def _arrow(draw: ImageDraw.ImageDraw, points: Sequence[tuple[int, int]], width: int = 4) -> None:
    """A polyline with an arrowhead at its last point."""
    draw.line(list(points), fill=ARROW, width=width, joint="curve")
    (x0, y0), (x1, y1) = points[-2], points[-1]
    angle = math.atan2(y1 - y0, x1 - x0)
    head = 12
    left = (x1 - head * math.cos(angle - 0.5), y1 - head * math.sin(angle - 0.5))
    right = (x1 - head * math.cos(angle + 0.5), y1 - head * math.sin(angle + 0.5))
    draw.polygon([(x1, y1), left, right], fill=ARROW)


def contact_sheet(
    scenes: Sequence[SheetScene | tuple[Any, ...]],
    *,
    title: str | None = None,
    columns: int | None = None,
    thumb_width: int = 320,
) -> bytes:
    """A PNG storyboard: scenes in order (row-major), each with its number, caption and scores,
    a red 'BELOW THRESHOLD' badge where flagged, and chain arrows from each scene to the next."""
    # 1. check inputs
    if not scenes:
        raise ExportError("contact_sheet needs at least one scene")
    items = [SheetScene(*scene) for scene in scenes]
    if thumb_width < 64:
        raise ExportError(f"thumb_width must be >= 64, got {thumb_width}")
    images = [_load_rgb(item.png, f"scene {n}") for n, item in enumerate(items, start=1)]
    columns = max(1, min(columns or min(4, len(items)), len(items)))
    rows = math.ceil(len(items) / columns)

    # 2. layout: thumbnails share the first image's aspect ratio
    aspect = images[0].height / images[0].width
    thumb_height = max(32, round(thumb_width * aspect))
    pad, gap_x, gap_y = 24, 56, 56
    font, small, big = _font(15), _font(13), _font(22)
    caption_lines = 3
    score_lines = 2
    text_block = 22 + (caption_lines + score_lines) * 18 + 6
    cell_w, cell_h = thumb_width, thumb_height + text_block
    header = 48 if title else 0
    width = pad * 2 + columns * cell_w + (columns - 1) * gap_x
    height = pad * 2 + header + rows * cell_h + (rows - 1) * gap_y
    sheet = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    if title:
        draw.text((pad, pad), _ellipsize(title, 90), fill=INK, font=big)

    def origin(i: int) -> tuple[int, int]:
        row, col = divmod(i, columns)
        return pad + col * (cell_w + gap_x), pad + header + row * (cell_h + gap_y)

    # 3. cells
    for i, (item, image) in enumerate(zip(items, images, strict=True)):
        x, y = origin(i)
        draw.rectangle((x - 1, y - 1, x + cell_w, y + cell_h), fill=CARD, outline=BORDER)
        sheet.paste(_fit(image, thumb_width, thumb_height), (x, y))
        ty = y + thumb_height + 4
        draw.text((x + 6, ty), f"Scene {i + 1}", fill=INK, font=font)
        if item.below_threshold:
            label = "BELOW THRESHOLD"
            box = draw.textbbox((0, 0), label, font=small)
            bw = box[2] - box[0] + 10
            draw.rectangle((x + cell_w - bw - 6, ty, x + cell_w - 6, ty + 18), fill=BADGE)
            draw.text((x + cell_w - bw - 1, ty + 2), label, fill=(255, 255, 255), font=small)
        ty += 22
        for line in _wrap(draw, item.caption, small, thumb_width - 12, caption_lines):
            draw.text((x + 6, ty), line, fill=INK, font=small)
            ty += 18
        ty = y + thumb_height + 4 + 22 + caption_lines * 18
        for line in _wrap(draw, scores_line(item.scores), small, thumb_width - 12, score_lines):
            draw.text((x + 6, ty), line, fill=MUTED, font=small)
            ty += 18

    # 4. chain arrows: right within a row; at a row wrap, down and back to the next row's start
    for i in range(len(items) - 1):
        x, y = origin(i)
        nx, ny = origin(i + 1)
        if ny == y:
            mid = y + thumb_height // 2
            _arrow(draw, [(x + cell_w + 8, mid), (nx - 8, mid)])
        else:
            lane = y + cell_h + gap_y // 2
            _arrow(
                draw,
                [
                    (x + cell_w // 2, y + cell_h + 6),
                    (x + cell_w // 2, lane),
                    (nx + cell_w // 2, lane),
                    (nx + cell_w // 2, ny - 8),
                ],
            )

    out = io.BytesIO()
    sheet.save(out, format="PNG", optimize=False, compress_level=6)
    return out.getvalue()


def _ellipsize(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(1, limit - 1)].rstrip() + "..."


def _wrap(draw: ImageDraw.ImageDraw, text: str, font: Any, max_width: int, max_lines: int) -> list[str]:
    """Greedy word wrap by rendered width; the last kept line ends in '...' when text was cut."""
    lines: list[str] = []
    current = ""
    words = text.split()
    for word in words:
        candidate = f"{current} {word}".strip()
        if current and draw.textlength(candidate, font=font) > max_width:
            lines.append(current)
            current = word
        else:
            current = candidate
    if current:
        lines.append(current)
    if len(lines) > max_lines:
        last = " ".join(lines[max_lines - 1 :])
        while last and draw.textlength(last + "...", font=font) > max_width:
            last = last[:-1]
        lines = [*lines[: max_lines - 1], last.rstrip() + "..."]
    return lines or [""]


# -- animatic ------------------------------------------------------------------------------------


def _even(value: int) -> int:
    # yuv420p needs even dimensions.
    return max(2, value - value % 2)


def animatic_frames(
    pngs: Sequence[bytes], seconds_per_scene: float = 2.0, crossfade: float = 0.5, fps: int = 12
) -> tuple[list[np.ndarray], tuple[int, int]]:
    """The animatic's RGB frames (uint8 HxWx3) and (width, height).

    Each scene shows for ``seconds_per_scene``; the last ``crossfade`` seconds of every scene but
    the last blend linearly into the next scene, so the total is ``len(pngs) * seconds_per_scene``.
    """
    # 1. check inputs
    if not pngs:
        raise ExportError("animatic needs at least one scene image")
    if not 1 <= fps <= 60:
        raise ExportError(f"fps must be between 1 and 60, got {fps}")
    if seconds_per_scene <= 0:
        raise ExportError(f"seconds_per_scene must be > 0, got {seconds_per_scene}")
    if not 0 <= crossfade < seconds_per_scene:
        raise ExportError(
            f"crossfade must be >= 0 and shorter than seconds_per_scene ({seconds_per_scene}), got {crossfade}"
        )

    # 2. one size for all (the first image's, made even), others fitted on a black canvas
    images = [_load_rgb(png, f"scene {n}") for n, png in enumerate(pngs, start=1)]
    width, height = _even(images[0].width), _even(images[0].height)
    arrays = []
    for image in images:
        scale = min(width / image.width, height / image.height)
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        canvas = Image.new("RGB", (width, height), (0, 0, 0))
        canvas.paste(
            image.resize(size, Image.Resampling.LANCZOS), ((width - size[0]) // 2, (height - size[1]) // 2)
        )
        arrays.append(np.asarray(canvas, dtype=np.uint8))

    # 3. frames: hold, then cross-fade into the next scene
    per_scene = max(1, round(seconds_per_scene * fps))
    fade = min(per_scene - 1, round(crossfade * fps)) if len(arrays) > 1 else 0
    frames: list[np.ndarray] = []
    for index, current in enumerate(arrays):
        following = arrays[index + 1] if index + 1 < len(arrays) else None
        hold = per_scene - (fade if following is not None else 0)
        frames.extend([current] * hold)
        if following is not None:
            for step in range(1, fade + 1):
                alpha = step / (fade + 1)
                blended = current.astype(np.float32) * (1 - alpha) + following.astype(np.float32) * alpha
                frames.append(np.clip(np.rint(blended), 0, 255).astype(np.uint8))
    return frames, (width, height)


def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary bundled with imageio-ffmpeg (IMAGEIO_FFMPEG_EXE overrides)."""
    import imageio_ffmpeg  # noqa: PLC0415

    return imageio_ffmpeg.get_ffmpeg_exe()


def animatic_mp4(
    pngs: Sequence[bytes], seconds_per_scene: float = 2.0, crossfade: float = 0.5, fps: int = 12
) -> bytes:
    """An H.264 MP4 (yuv420p, faststart) showing the scenes in order with cross-fades."""
    frames, (width, height) = animatic_frames(pngs, seconds_per_scene, crossfade, fps)
    with tempfile.TemporaryDirectory(prefix="scenechain-animatic-") as tmp:
        path = os.path.join(tmp, "animatic.mp4")
        command = [
            ffmpeg_exe(),
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgb24",
            "-s",
            f"{width}x{height}",
            "-r",
            str(fps),
            "-i",
            "-",
            "-an",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-crf",
            "20",
            "-pix_fmt",
            "yuv420p",
            # One thread and bit-exact muxing: identical inputs give identical bytes.
            "-threads",
            "1",
            "-fflags",
            "+bitexact",
            "-flags:v",
            "+bitexact",
            "-map_metadata",
            "-1",
            "-movflags",
            "+faststart",
            path,
        ]
        raw = b"".join(frame.tobytes() for frame in frames)
        result = subprocess.run(command, input=raw, capture_output=True, check=False, timeout=300)
        if result.returncode != 0:
            raise RuntimeError(
                f"ffmpeg failed ({result.returncode}): {result.stderr.decode(errors='replace')[-500:]}"
            )
        with open(path, "rb") as handle:
            return handle.read()


def mp4_duration_s(mp4: bytes) -> float:
    """Duration of an MP4, read from its 'mvhd' box (tests and sanity checks; no ffprobe needed)."""
    index = mp4.find(b"mvhd")
    if index < 0:
        raise ExportError("not an MP4: no mvhd box")
    body = mp4[index + 4 :]
    version = body[0]
    if version == 1:
        timescale = int.from_bytes(body[20:24], "big")
        duration = int.from_bytes(body[24:32], "big")
    else:
        timescale = int.from_bytes(body[12:16], "big")
        duration = int.from_bytes(body[16:20], "big")
    return duration / timescale if timescale else 0.0


def sheet_scenes(status: Any, pngs: Mapping[int, bytes]) -> list[SheetScene]:
    """Contact-sheet input from a ``GenerationStatus`` (or its dict) and the kept PNG of each scene.

    Captions are the enhanced prompt when there is one, else the planned prompt; scores are the
    kept variation's; scenes without a PNG in ``pngs`` are left out.
    """
    document = status.model_dump(mode="json") if hasattr(status, "model_dump") else dict(status)
    quality_by_scene = document.get("image_quality_scores") or {}
    items = []
    for scene in sorted(document.get("scenes") or [], key=lambda s: s["index"]):
        n = scene["index"]
        if n not in pngs:
            continue
        quality = quality_by_scene.get(f"scene_{n}") or {}
        per_image = quality.get("per_image") or []
        best = int(quality.get("best_index") or scene.get("best_index") or 1)
        scores = per_image[best - 1] if 0 < best <= len(per_image) else None
        caption = scene.get("enhanced_prompt") or scene.get("prompt") or ""
        items.append(SheetScene(pngs[n], caption, scores, bool(quality.get("below_threshold"))))
    return items
