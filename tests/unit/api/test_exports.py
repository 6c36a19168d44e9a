"""Storyboard exports: the contact sheet PNG and the animatic MP4 (real PIL, real bundled ffmpeg)."""

from __future__ import annotations

import io
import subprocess

import numpy as np
import pytest
from PIL import Image

from api import exports
from api.exports import (
    ExportError,
    SheetScene,
    animatic_frames,
    animatic_mp4,
    contact_sheet,
    mp4_duration_s,
)

COLOURS = [(220, 30, 30), (30, 200, 40), (40, 60, 220), (230, 200, 20), (200, 40, 200)]


def png(colour: tuple[int, int, int], size: tuple[int, int] = (96, 64)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def scores(overall: float, clip: float | None = 55.0) -> dict[str, float | None]:
    return {"pickscore": 61.0, "clip": clip, "vqa": 70.0, "aesthetic": 44.0, "overall": overall}


def open_png(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG"
    return image.convert("RGB")


def contains_colour(image: Image.Image, colour: tuple[int, int, int], box: tuple[int, int, int, int]) -> bool:
    pixels = np.asarray(image.crop(box))
    return bool(np.all(pixels == np.array(colour), axis=-1).any())


# -- contact sheet --------------------------------------------------------------------------------


def test_contact_sheet_lays_scenes_out_in_order_with_each_image() -> None:
    scenes = [
        SheetScene(png(colour), f"scene caption {i}", scores(50 + i)) for i, colour in enumerate(COLOURS[:3])
    ]

    sheet = open_png(contact_sheet(scenes, thumb_width=200))

    # One row of three, left to right in scene order: each thumbnail's centre has its scene's colour.
    width, _ = sheet.size
    thirds = [sheet.getpixel((int(width * f), 24 + 66)) for f in (0.17, 0.5, 0.83)]
    assert thirds == COLOURS[:3]


def test_contact_sheet_wraps_rows_and_accepts_plain_tuples() -> None:
    scenes = [(png(colour), f"caption {i}") for i, colour in enumerate(COLOURS)]  # no scores, no flag

    one_row = open_png(contact_sheet(scenes[:4], thumb_width=128))
    two_rows = open_png(contact_sheet(scenes, thumb_width=128))

    assert two_rows.width == one_row.width  # still four columns
    assert two_rows.height > 1.8 * one_row.height
    # the fifth scene starts the second row, under the first
    assert contains_colour(two_rows, COLOURS[4], (0, one_row.height - 24, 200, two_rows.height))


def test_contact_sheet_marks_below_threshold_scenes_with_a_red_badge() -> None:
    plain = [SheetScene(png(COLOURS[1]), "fine", scores(80), False)]
    flagged = [SheetScene(png(COLOURS[1]), "fine", scores(20), True)]

    plain_sheet, flagged_sheet = open_png(contact_sheet(plain)), open_png(contact_sheet(flagged))
    assert not contains_colour(plain_sheet, exports.BADGE, (0, 0, *plain_sheet.size))
    assert contains_colour(flagged_sheet, exports.BADGE, (0, 0, *flagged_sheet.size))


def test_contact_sheet_draws_chain_arrows_between_consecutive_scenes_only() -> None:
    one = open_png(contact_sheet([(png(COLOURS[0]), "a")]))
    two = open_png(contact_sheet([(png(COLOURS[0]), "a"), (png(COLOURS[1]), "b")]))

    assert not contains_colour(one, exports.ARROW, (0, 0, one.width, one.height))
    assert contains_colour(two, exports.ARROW, (0, 0, two.width, two.height))


def test_contact_sheet_is_deterministic_and_changes_with_its_inputs() -> None:
    scenes = [
        SheetScene(png(c), "A long caption " * 10, scores(40.0), i == 1) for i, c in enumerate(COLOURS[:3])
    ]

    first = contact_sheet(scenes, title="Citrus soda")
    assert contact_sheet(scenes, title="Citrus soda") == first
    assert contact_sheet(scenes, title="Lemon soda") != first


def test_contact_sheet_rejects_unusable_input() -> None:
    with pytest.raises(ExportError, match="at least one scene"):
        contact_sheet([])
    with pytest.raises(ExportError, match="scene 2: not a readable image"):
        contact_sheet([(png(COLOURS[0]), "ok"), (b"not a png", "broken")])


def test_scores_line_names_each_scorer_and_marks_failures() -> None:
    line = exports.scores_line(scores(72.34, clip=None))

    assert line.startswith("overall 72.3")
    assert "Pick 61" in line and "CLIP n/a" in line and "VQA 70" in line and "Aes 44" in line
    assert exports.scores_line(None) == "unscored"


def test_sheet_scenes_takes_captions_scores_and_flags_from_a_status_document() -> None:
    status = {
        "scenes": [
            {"index": 2, "prompt": "planned two", "enhanced_prompt": None, "best_index": 1},
            {"index": 1, "prompt": "planned one", "enhanced_prompt": "enhanced one", "best_index": 2},
        ],
        "image_quality_scores": {
            "scene_1": {"best_index": 2, "per_image": [scores(10), scores(35)], "below_threshold": True},
        },
    }

    items = exports.sheet_scenes(status, {1: png(COLOURS[0]), 2: png(COLOURS[1])})

    assert [item.caption for item in items] == ["enhanced one", "planned two"]
    assert items[0].scores == scores(35) and items[0].below_threshold
    assert items[1].scores is None and not items[1].below_threshold


# -- animatic -------------------------------------------------------------------------------------


def test_animatic_frames_hold_each_scene_then_cross_fade() -> None:
    pngs = [png(COLOURS[0]), png(COLOURS[1])]

    frames, size = animatic_frames(pngs, seconds_per_scene=1.0, crossfade=0.5, fps=10)

    assert size == (96, 64)
    assert len(frames) == 20  # two scenes x 1 s x 10 fps
    assert tuple(frames[0][0, 0]) == COLOURS[0]
    assert tuple(frames[4][0, 0]) == COLOURS[0]  # held for 1 s minus the fade
    middle = frames[7][0, 0].astype(int)  # inside the 5-frame fade: between the two colours
    assert all(
        min(a, b) < m < max(a, b) for a, b, m in zip(COLOURS[0], COLOURS[1], middle, strict=True) if a != b
    )
    assert all(tuple(frame[0, 0]) == COLOURS[1] for frame in frames[10:])


def test_animatic_frames_fit_odd_and_mismatched_sizes_to_even_dimensions() -> None:
    frames, size = animatic_frames([png(COLOURS[0], (101, 75)), png(COLOURS[1], (40, 40))], fps=4)

    assert size == (100, 74)
    assert {frame.shape for frame in frames} == {(74, 100, 3)}


def test_animatic_mp4_is_a_playable_h264_video_of_the_right_length() -> None:
    pngs = [png(c) for c in COLOURS[:3]]

    mp4 = animatic_mp4(pngs, seconds_per_scene=1.0, crossfade=0.25, fps=8)

    assert mp4[4:8] == b"ftyp"
    assert mp4_duration_s(mp4) == pytest.approx(3.0, abs=0.2)
    # the bundled ffmpeg can decode it back: frame count and size survive the round trip
    probe = subprocess.run(
        [exports.ffmpeg_exe(), "-hide_banner", "-i", "pipe:0", "-f", "null", "-"],
        input=mp4,
        capture_output=True,
        check=True,
    )
    log = probe.stderr.decode()
    assert "h264" in log and "96x64" in log
    assert "frame=   24" in log or "frame=24" in log.replace(" ", "")


def test_animatic_mp4_is_deterministic() -> None:
    pngs = [png(c) for c in COLOURS[:2]]
    assert animatic_mp4(pngs, 0.5, 0.25, 8) == animatic_mp4(pngs, 0.5, 0.25, 8)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"pngs": []}, "at least one scene"),
        ({"fps": 0}, "fps must be between"),
        ({"seconds_per_scene": 0}, "seconds_per_scene must be > 0"),
        ({"seconds_per_scene": 1.0, "crossfade": 1.0}, "crossfade must be"),
    ],
)
def test_animatic_rejects_bad_timing(kwargs: dict, message: str) -> None:
    arguments = {"pngs": [png(COLOURS[0])], **kwargs}
    with pytest.raises(ExportError, match=message):
        animatic_frames(**arguments)
