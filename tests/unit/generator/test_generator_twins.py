"""The diffusion core on the forged production twins, run the production way (the `twin` profiles'
options): FLUX.1-schnell's FluxPipeline (no negative prompt, T5 sequence length, guidance 0) and
SDXL-Turbo's StableDiffusionXLPipeline, text2img then img2img chained from the best image."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
from PIL import Image

from generator import DiffusionGenerator, GenerationRequest, InvalidGenerationRequest
from weights.profiles import get_profile

PROMPT = "a red sports car on a coastal road at sunset"


def build(profile_name: str) -> DiffusionGenerator:
    profile = get_profile(profile_name)
    return DiffusionGenerator(
        profile.model("diffusion"), profile.generation, device=profile.device, dtype=profile.dtype
    )


@pytest.fixture(scope="module")
def flux() -> DiffusionGenerator:
    return build("twin")


@pytest.fixture(scope="module")
def sdxl() -> DiffusionGenerator:
    return build("twin-sdxl")


def size_of(png: bytes) -> tuple[int, int]:
    return Image.open(io.BytesIO(png)).size


def pixels(png: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(np.int16)


class CallRecorder:
    """Wraps a pipeline: records each call's keyword arguments, then runs the real call."""

    def __init__(self, pipeline: Any) -> None:
        self.pipeline = pipeline
        self.calls: list[dict[str, Any]] = []

    def __call__(self, **kwargs: Any) -> Any:
        self.calls.append(kwargs)
        return self.pipeline(**kwargs)


@pytest.fixture
def recorded(flux: DiffusionGenerator, monkeypatch: pytest.MonkeyPatch) -> tuple[CallRecorder, CallRecorder]:
    text2img, img2img = CallRecorder(flux.text2img), CallRecorder(flux.img2img)
    monkeypatch.setattr(flux, "text2img", text2img)
    monkeypatch.setattr(flux, "img2img", img2img)
    return text2img, img2img


@pytest.mark.parametrize(
    ("profile_name", "pipelines"),
    [
        ("twin", ("FluxPipeline", "FluxImg2ImgPipeline")),
        ("twin-sdxl", ("StableDiffusionXLPipeline", "StableDiffusionXLImg2ImgPipeline")),
    ],
)
def test_twin_loads_the_production_pipelines(profile_name: str, pipelines: tuple[str, str]) -> None:
    generator = build(profile_name)
    assert (type(generator.text2img).__name__, type(generator.img2img).__name__) == pipelines
    assert generator.img2img.vae is generator.text2img.vae  # from_pipe: one copy of the weights


@pytest.mark.parametrize("name", ["flux", "sdxl"])
def test_text2img_then_chained_img2img_is_seeded_and_sized(name: str, request: pytest.FixtureRequest) -> None:
    generator: DiffusionGenerator = request.getfixturevalue(name)
    # 1. text2img: N seeded variations at the profile's size
    first = generator.generate(GenerationRequest(prompt=PROMPT, seeds=[1, 2]))
    assert first.mode == "text2img" and first.warnings == []
    assert [size_of(image.png) for image in first.images] == [(64, 64), (64, 64)]
    assert np.abs(pixels(first.images[0].png) - pixels(first.images[1].png)).mean() > 1.0
    again = generator.generate(GenerationRequest(prompt=PROMPT, seeds=[1, 2]))
    assert [image.png for image in again.images] == [image.png for image in first.images]
    # 2. img2img from the previous scene's image: the chain
    best = first.images[0].png
    scene_2 = GenerationRequest(prompt="the same car parked at a beach cafe", seeds=[3], reference_png=best)
    chained = generator.generate(scene_2)
    assert chained.mode == "img2img" and chained.strength == 0.5 and chained.steps == 4
    assert size_of(chained.images[0].png) == (64, 64)
    assert generator.generate(scene_2).images[0].png == chained.images[0].png
    # the reference matters: another reference, same seed and prompt, gives another image
    other = generator.generate(scene_2.model_copy(update={"reference_png": first.images[1].png}))
    assert other.images[0].png != chained.images[0].png


def test_same_seed_gives_same_png_across_loads_of_the_flux_twin(flux: DiffusionGenerator) -> None:
    request = GenerationRequest(prompt=PROMPT, seeds=[7])
    assert flux.generate(request).images[0].png == build("twin").generate(request).images[0].png


def test_flux_calls_use_the_production_options(
    flux: DiffusionGenerator, recorded: tuple[CallRecorder, CallRecorder]
) -> None:
    text2img, img2img = recorded
    result = flux.generate(GenerationRequest(prompt=PROMPT, seeds=[1]))
    call = text2img.calls[-1]
    assert call["max_sequence_length"] == 256
    assert call["guidance_scale"] == 0.0 and call["num_inference_steps"] == 4
    assert (call["width"], call["height"]) == (64, 64)
    flux.generate(GenerationRequest(prompt=PROMPT, seeds=[1], reference_png=result.images[0].png))
    call = img2img.calls[-1]
    assert call["max_sequence_length"] == 256
    assert (call["width"], call["height"]) == (64, 64)  # else FluxImg2Img would resize to 1024


def test_flux_negative_prompt_is_not_dropped_silently(
    flux: DiffusionGenerator, recorded: tuple[CallRecorder, CallRecorder]
) -> None:
    text2img, _ = recorded
    plain = flux.generate(GenerationRequest(prompt=PROMPT, seeds=[4]))
    negative = flux.generate(GenerationRequest(prompt=PROMPT, seeds=[4], negative_prompt="blurry, text"))
    assert "negative_prompt" not in text2img.calls[-1]
    assert len(negative.warnings) == 1
    assert "negative prompt not used" in negative.warnings[0] and "flux" in negative.warnings[0]
    assert negative.images[0].png == plain.images[0].png
    assert plain.warnings == []


def test_sdxl_turbo_negative_prompt_without_guidance_says_it_has_no_effect(sdxl: DiffusionGenerator) -> None:
    result = sdxl.generate(GenerationRequest(prompt=PROMPT, seeds=[4], negative_prompt="blurry"))
    assert any("guidance_scale 0.0 <= 1" in warning for warning in result.warnings)
    guided = sdxl.generate(
        GenerationRequest(prompt=PROMPT, seeds=[4], negative_prompt="blurry", guidance_scale=2.0)
    )
    assert guided.warnings == []


def test_flux_sides_must_be_multiples_of_16(flux: DiffusionGenerator) -> None:
    with pytest.raises(InvalidGenerationRequest, match="width must be a multiple of 16"):
        flux.check_inputs(GenerationRequest(prompt=PROMPT, seeds=[1], width=72))
    assert flux.check_inputs(GenerationRequest(prompt=PROMPT, seeds=[1], width=80)).width == 80


def test_img2img_default_steps_are_raised_to_run_one_step(sdxl: DiffusionGenerator) -> None:
    reference = sdxl.generate(GenerationRequest(prompt=PROMPT, seeds=[1])).images[0].png
    # the profile's 4 steps at strength 0.2 would run int(0.8) = 0 steps: raised to 5, and said so
    result = sdxl.generate(GenerationRequest(prompt=PROMPT, seeds=[1], reference_png=reference, strength=0.2))
    assert result.steps == 5
    assert result.warnings and "steps raised from 4 to 5" in result.warnings[0]
    assert size_of(result.images[0].png) == (64, 64)
    # explicit steps are the caller's: still an error
    with pytest.raises(InvalidGenerationRequest, match="steps \\* strength must be at least 1"):
        sdxl.check_inputs(
            GenerationRequest(prompt=PROMPT, seeds=[1], reference_png=reference, steps=2, strength=0.2)
        )


def test_unknown_family_is_a_clear_error() -> None:
    profile = get_profile("twin")
    spec = profile.model("diffusion")
    with pytest.raises(ValueError, match=r"options\.family 'dalle' is not a pipeline family"):
        DiffusionGenerator(spec, profile.generation, device="cpu", options={"family": "dalle"})
