"""The toy world: a judge that reads images from pixels alone, and a generator that follows its prompt.

The judge (``eval.judge``) never sees a score: it must be right on rendered ground-truth images of the
world. The toy generator (``forge:toy-sd``, trained by the forge on the same world) must then draw what
the prompt asks for, as the judge sees it, on combos the UNet never saw in training (``TOY_HELD_OUT``),
one image per prompt and seed, through the production generator core and the ``toy`` profile.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from eval.judge import judge_image, judge_prompt, parse_prompt
from weights.forge_scorers import all_shape_captions, render_shape, shape_caption
from weights.forge_toy import TOY_HELD_OUT, TOY_SD, toy_rating, train_toy_sd

COMBOS = all_shape_captions()


@pytest.mark.parametrize("size", [64, 32])
def test_the_judge_reads_rendered_world_images(size: int) -> None:
    rng = random.Random(20261204 + size)
    total, right = 0, {"colour": 0, "shape": 0, "background": 0}
    for colour, shape, background in COMBOS:
        for _ in range(5):
            image = render_shape(colour, shape, background, rng)
            if size != 64:
                image = image.resize((size, size), Image.Resampling.BOX)
            verdict = judge_image(image)
            total += 1
            right["colour"] += verdict.colour == colour
            right["shape"] += verdict.shape == shape
            right["background"] += verdict.background == background
    assert {name: count / total for name, count in right.items()} == {
        "colour": 1.0,
        "shape": 1.0,
        "background": 1.0,
    }


def test_the_judge_reads_position_and_an_empty_canvas() -> None:
    image = Image.new("RGB", (64, 64), (255, 255, 255))
    assert judge_image(image).shape is None
    image.paste((220, 30, 30), (2, 40, 18, 60))  # a red square, bottom left
    verdict = judge_image(image)
    assert (verdict.colour, verdict.shape, verdict.horizontal, verdict.vertical) == (
        "red",
        "square",
        "left",
        "bottom",
    )
    assert judge_prompt("a red square on the left, white background", image) == {
        "colour": True,
        "shape": True,
        "background": True,
        "horizontal": True,
    }


def test_prompts_are_parsed_into_world_attributes() -> None:
    parsed = parse_prompt("A Purple triangle at the top, on a black background")
    assert (parsed.colour, parsed.shape, parsed.background, parsed.vertical) == (
        "purple",
        "triangle",
        "black",
        "top",
    )
    assert parse_prompt("a cat in a hat").model_dump(exclude_none=True) == {}


def test_the_toy_aesthetic_rating_prefers_centred_high_contrast_shapes() -> None:
    centred_contrast = toy_rating("yellow", "black", (32, 32), 64)
    off_centre_low_contrast = toy_rating("yellow", "white", (8, 8), 64)
    assert 1.0 <= off_centre_low_contrast < centred_contrast <= 10.0


def test_toy_sd_training_is_seeded(tmp_path: Path) -> None:
    from weights.forge import default_model_dir, ensure_forged

    clip_dir = ensure_forged("trained-clip", default_model_dir())
    short = {
        **TOY_SD,
        "training": {**TOY_SD["training"], "pool_per_caption": 1, "vae_steps": 3, "unet_steps": 3},
    }
    digests = []
    for run in ("a", "b"):
        out = tmp_path / run
        out.mkdir()
        train_toy_sd(out, 7, clip_dir, short)
        digests.append(
            [(out / part / "diffusion_pytorch_model.safetensors").read_bytes() for part in ("unet", "vae")]
        )
    assert digests[0] == digests[1]


@pytest.fixture(scope="module")
def toy_generator() -> Any:
    from generator.core import DiffusionGenerator
    from weights.forge import default_model_dir
    from weights.profiles import get_profile

    profile = get_profile("toy")
    return DiffusionGenerator(
        profile.model("diffusion"), profile.generation, device="cpu", model_dir=default_model_dir()
    )


@pytest.mark.toy
@pytest.mark.slow
def test_the_toy_generator_follows_its_prompt_on_held_out_combos(toy_generator: Any) -> None:
    from generator.core import GenerationRequest, decode_png

    checks: list[dict[str, bool]] = []
    for combo in TOY_HELD_OUT:
        prompt = shape_caption(*combo)
        # one image per (prompt, seed): single samples, no best-of-N
        result = toy_generator.generate(GenerationRequest(prompt=prompt, seeds=[11, 12, 13, 14]))
        checks += [judge_prompt(prompt, decode_png(image.png)) for image in result.images]
    colour = sum(check["colour"] for check in checks) / len(checks)
    shape = sum(check["shape"] for check in checks) / len(checks)
    assert colour >= 0.8 and shape >= 0.6, f"held-out combos: colour {colour:.2f}, shape {shape:.2f}"


@pytest.mark.toy
@pytest.mark.slow
def test_a_consistency_weight_makes_consecutive_scenes_more_alike(tmp_path: Path) -> None:
    """Same prompts and seeds, best-of-4 chained, consistency share 0 vs 0.5: the kept scenes of the
    weighted run are more alike (CLIP image cosine of consecutive scenes); the alignment cost (mean
    CLIPScore of the kept images) is printed, not asserted."""
    from eval.runner import EvalRunner, ModeSpec, group_stories, load_prompts

    runner = EvalRunner("toy")
    items = load_prompts(Path(__file__).parents[3] / "eval" / "prompts" / "toy.jsonl", limit=12)
    stories = group_stories(items)
    outcomes = {}
    for weight in (0.0, 0.5):
        mode = ModeSpec(
            name=f"w{weight}", variations=4, chained=True, scored_choice=True, consistency_weight=weight
        )
        outcomes[weight] = runner.run_mode(mode, stories, 0, tmp_path)
    similarity = {
        weight: sum(o.consistency for o in rows if o.consistency is not None)
        / sum(o.consistency is not None for o in rows)
        for weight, rows in outcomes.items()
    }
    alignment = {
        weight: sum(o.scores["clipscore"] for o in rows) / len(rows) for weight, rows in outcomes.items()
    }
    print(f"consecutive-scene cosine {similarity}, mean CLIPScore {alignment}")
    assert similarity[0.5] > similarity[0.0]
