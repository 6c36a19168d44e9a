"""The diffusion core on the forged tiny pipeline: seeding, batching, img2img, input checks."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from generator import DiffusionGenerator, GenerationRequest, GeneratorError, InvalidGenerationRequest
from generator.core import GeneratorOutOfMemory, is_out_of_memory
from weights.profiles import get_profile

PROMPT = "a red sports car on a coastal road at sunset"


@pytest.fixture(scope="module")
def generator() -> DiffusionGenerator:
    profile = get_profile("tiny")
    return DiffusionGenerator(profile.model("diffusion"), profile.generation, device="cpu")


def pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(np.int16)


def test_same_seed_gives_identical_png_bytes_even_across_loads(generator: DiffusionGenerator) -> None:
    first = generator.generate(GenerationRequest(prompt=PROMPT, seeds=[7]))
    second = generator.generate(GenerationRequest(prompt=PROMPT, seeds=[7]))
    profile = get_profile("tiny")
    reloaded = DiffusionGenerator(profile.model("diffusion"), profile.generation, device="cpu")
    third = reloaded.generate(GenerationRequest(prompt=PROMPT, seeds=[7]))
    assert first.images[0].png == second.images[0].png == third.images[0].png
    assert Image.open(io.BytesIO(first.images[0].png)).size == (64, 64)


def test_different_seeds_give_different_images(generator: DiffusionGenerator) -> None:
    result = generator.generate(GenerationRequest(prompt=PROMPT, seeds=[1, 2, 3]))
    assert [image.seed for image in result.images] == [1, 2, 3]
    arrays = [pixels(image.png) for image in result.images]
    for i in range(3):
        for j in range(i + 1, 3):
            assert np.abs(arrays[i] - arrays[j]).mean() > 1.0


def test_prompt_changes_the_image(generator: DiffusionGenerator) -> None:
    car = generator.generate(GenerationRequest(prompt=PROMPT, seeds=[5])).images[0].png
    other = generator.generate(GenerationRequest(prompt="a bowl of green soup", seeds=[5])).images[0].png
    assert car != other


def assert_same_image(a: bytes, b: bytes) -> None:
    """Equal up to float rounding: batched CPU matmuls may move a rare pixel by one 8-bit level."""
    difference = np.abs(pixels(a) - pixels(b))
    assert difference.max() <= 1
    assert (difference > 0).mean() < 0.001


def test_batch_of_four_equals_four_single_calls(generator: DiffusionGenerator) -> None:
    batched = generator.generate(GenerationRequest(prompt=PROMPT, seeds=[10, 11, 12, 13]))
    assert batched.batch_size == 4
    singles = [
        generator.generate(GenerationRequest(prompt=PROMPT, seeds=[s])).images[0].png
        for s in (10, 11, 12, 13)
    ]
    for image, single in zip(batched.images, singles, strict=True):
        assert_same_image(image.png, single)


def test_generate_many_merges_compatible_requests_without_changing_results(
    generator: DiffusionGenerator,
) -> None:
    requests = [
        GenerationRequest(prompt=PROMPT, seeds=[1, 2]),
        GenerationRequest(prompt="a bowl of green soup", seeds=[3]),
        GenerationRequest(prompt=PROMPT, seeds=[4], steps=3),  # different settings: its own call
    ]
    merged = generator.generate_many(requests)
    assert [r.batch_size for r in merged] == [3, 3, 1]
    alone = [generator.generate(request) for request in requests]
    for merged_result, alone_result in zip(merged, alone, strict=True):
        assert [i.seed for i in merged_result.images] == [i.seed for i in alone_result.images]
        for merged_image, alone_image in zip(merged_result.images, alone_result.images, strict=True):
            assert_same_image(merged_image.png, alone_image.png)


def test_img2img_uses_the_reference(generator: DiffusionGenerator) -> None:
    red = Image.new("RGB", (64, 64), (220, 30, 30))
    blue = Image.new("RGB", (64, 64), (30, 30, 220))
    encode = lambda image: (buf := io.BytesIO(), image.save(buf, format="PNG"), buf.getvalue())[2]  # noqa: E731
    from_red = generator.generate(
        GenerationRequest(prompt=PROMPT, seeds=[3], reference_png=encode(red), strength=0.5)
    )
    from_blue = generator.generate(
        GenerationRequest(prompt=PROMPT, seeds=[3], reference_png=encode(blue), strength=0.5)
    )
    text_only = generator.generate(GenerationRequest(prompt=PROMPT, seeds=[3]))
    assert from_red.mode == from_blue.mode == "img2img" and text_only.mode == "text2img"
    red_pixels, blue_pixels = pixels(from_red.images[0].png), pixels(from_blue.images[0].png)
    print("mean |red - blue| =", np.abs(red_pixels - blue_pixels).mean())
    # Same prompt and seed: only the reference differs, so any change comes from the reference.
    assert np.abs(red_pixels - blue_pixels).mean() > 2
    assert from_red.images[0].png != text_only.images[0].png


def test_img2img_shares_components_with_text2img(generator: DiffusionGenerator) -> None:
    assert generator.img2img.unet is generator.text2img.unet
    assert generator.img2img.vae is generator.text2img.vae
    assert generator.img2img.text_encoder is generator.text2img.text_encoder


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"prompt": "   "}, "prompt must not be empty"),
        ({"seeds": []}, "seeds must hold at least one seed"),
        ({"seeds": [-1]}, "seed -1 is out of range"),
        ({"width": 65}, "width must be a multiple of 8"),
        ({"height": 4096}, "height must be a multiple of 8"),
        ({"steps": 0}, "steps must be in [1, 150]"),
        ({"guidance_scale": -1.0}, "guidance_scale must be in [0, 50]"),
        ({"reference_png": b"not a png"}, "reference_png is not a readable image"),
        ({"reference_png": None, "strength": 2.0}, None),  # strength is ignored without a reference
    ],
)
def test_check_inputs_names_the_bad_field(
    generator: DiffusionGenerator, overrides: dict, message: str | None
) -> None:
    request = GenerationRequest(**{"prompt": PROMPT, "seeds": [1], **overrides})
    if message is None:
        generator.check_inputs(request)
        return
    with pytest.raises(InvalidGenerationRequest, match=message.replace("[", r"\[").replace("]", r"\]")):
        generator.check_inputs(request)


def test_img2img_needs_at_least_one_denoising_step(generator: DiffusionGenerator) -> None:
    png = generator.generate(GenerationRequest(prompt=PROMPT, seeds=[1])).images[0].png
    with pytest.raises(InvalidGenerationRequest, match="steps \\* strength must be at least 1"):
        generator.check_inputs(
            GenerationRequest(prompt=PROMPT, seeds=[1], reference_png=png, steps=2, strength=0.3)
        )


def test_injected_fault_raises_generator_error() -> None:
    profile = get_profile("tiny")
    faulty = DiffusionGenerator(
        profile.model("diffusion"), profile.generation, device="cpu", options={"fail": "simulated OOM"}
    )
    with pytest.raises(GeneratorError, match="simulated OOM"):
        faulty.generate(GenerationRequest(prompt=PROMPT, seeds=[1]))


# -- out of memory: split the pipeline call, same images ----------------------------------------


def test_out_of_memory_splits_the_call_and_gives_the_same_images(
    generator: DiffusionGenerator, monkeypatch: pytest.MonkeyPatch
) -> None:
    seeds = [10, 11, 12, 13]
    unsplit = generator.generate(GenerationRequest(prompt=PROMPT, seeds=seeds))
    assert unsplit.pipeline_calls == 1 and unsplit.batch_size == 4
    # injected: a pipeline call of more than n images raises torch.OutOfMemoryError
    monkeypatch.setitem(generator.options, "oom_above_images", 2)
    halves = generator.generate(GenerationRequest(prompt=PROMPT, seeds=seeds))
    monkeypatch.setitem(generator.options, "oom_above_images", 1)
    singles = generator.generate(GenerationRequest(prompt=PROMPT, seeds=seeds))
    assert (halves.pipeline_calls, halves.batch_size) == (2, 2)
    assert (singles.pipeline_calls, singles.batch_size) == (4, 1)
    for split in (halves, singles):
        assert [image.seed for image in split.images] == seeds
        for image, reference in zip(split.images, unsplit.images, strict=True):
            assert_same_image(image.png, reference.png)


def test_out_of_memory_split_keeps_merged_requests_apart(
    generator: DiffusionGenerator, monkeypatch: pytest.MonkeyPatch
) -> None:
    requests = [
        GenerationRequest(prompt=PROMPT, seeds=[1, 2]),
        GenerationRequest(prompt="a bowl of green soup", seeds=[3]),
    ]
    merged = generator.generate_many(requests)
    monkeypatch.setitem(generator.options, "oom_above_images", 1)
    split = generator.generate_many(requests)
    assert [r.pipeline_calls for r in split] == [3, 3] and [r.batch_size for r in split] == [1, 1]
    for split_result, merged_result in zip(split, merged, strict=True):
        assert [i.seed for i in split_result.images] == [i.seed for i in merged_result.images]
        for split_image, merged_image in zip(split_result.images, merged_result.images, strict=True):
            assert_same_image(split_image.png, merged_image.png)


def test_out_of_memory_with_one_image_per_call_fails_clearly() -> None:
    profile = get_profile("tiny")
    # the option as the config sets it: model_overrides.diffusion.options
    faulty = DiffusionGenerator(
        profile.model("diffusion"), profile.generation, device="cpu", options={"oom_above_images": 0}
    )
    with pytest.raises(GeneratorOutOfMemory, match=r"even with one 64x64 image per pipeline call") as raised:
        faulty.generate(GenerationRequest(prompt=PROMPT, seeds=[1, 2]))
    assert isinstance(raised.value, GeneratorError) and is_out_of_memory(raised.value)


def test_out_of_memory_is_recognised_by_type_and_by_message() -> None:
    import torch

    assert is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert is_out_of_memory(torch.cuda.OutOfMemoryError("x"))
    assert is_out_of_memory(RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate"))
    assert is_out_of_memory(RuntimeError("ray: ... GeneratorOutOfMemory: out of memory even with one image"))
    assert not is_out_of_memory(GeneratorError("injected generator fault: boom"))
    assert not is_out_of_memory(ValueError("width must be a multiple of 8"))
