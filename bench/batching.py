"""Batching gain: N variations in one batched call vs N sequential calls (generator and scorers)."""

from __future__ import annotations

import io
import logging
from pathlib import Path

from bench.common import BenchResult, load_generator, machine_info, median, time_calls
from generator import GenerationRequest
from weights.profiles import get_profile

logger = logging.getLogger(__name__)

PROMPT = "a red sports car on a coastal road at sunset, cinematic, 35mm"
GOAL = ">= 2.5x on a GPU"


def bench_generator_batching(
    profile_name: str = "tiny", variations: int = 4, repeats: int = 5, model_dir: Path | None = None
) -> BenchResult:
    """One pipeline call for N seeds vs N one-seed calls, same seeds and settings."""
    generator = load_generator(profile_name, model_dir)
    seeds = list(range(variations))
    batched = time_calls(lambda: generator.generate(GenerationRequest(prompt=PROMPT, seeds=seeds)), repeats)
    sequential = time_calls(
        lambda: [generator.generate(GenerationRequest(prompt=PROMPT, seeds=[seed])) for seed in seeds],
        repeats,
    )
    ratio = median(sequential) / median(batched)
    on_gpu = generator.device == "cuda"
    return BenchResult(
        name="batching_generator",
        title=f"Generator: {variations} variations batched vs sequential ({profile_name})",
        unit="seconds per scene",
        samples={"sequential": sequential, "batched": batched},
        summary={
            "median_sequential_s": median(sequential),
            "median_batched_s": median(batched),
            "gain": ratio,
        },
        headline=f"batched is {ratio:.2f}x faster",
        goal=GOAL,
        goal_met=(ratio >= 2.5) if on_gpu else None,
        params={
            "profile": profile_name,
            "variations": variations,
            "repeats": repeats,
            "device": generator.device,
        },
        machine=machine_info(),
    )


def bench_scorer_batching(
    profile_name: str = "tiny", images: int = 4, repeats: int = 5, model_dir: Path | None = None
) -> BenchResult:
    """Each scorer over N images in one forward pass vs one image per call, all four scorers."""
    from PIL import Image  # noqa: PLC0415

    from scorers.registry import SCORER_NAMES, build_scorer  # noqa: PLC0415

    profile = get_profile(profile_name)
    device = "cuda" if profile.device == "cuda" else "cpu"
    # Scorer names double as profile roles.
    scorers = [
        build_scorer(name, profile.model(name), device=device, dtype=profile.dtype, model_dir=model_dir)
        for name in SCORER_NAMES
    ]
    generator = load_generator(profile_name, model_dir)
    result = generator.generate(GenerationRequest(prompt=PROMPT, seeds=list(range(images))))
    pictures = [Image.open(io.BytesIO(image.png)).convert("RGB") for image in result.images]
    batched = time_calls(lambda: [scorer.score(PROMPT, pictures) for scorer in scorers], repeats)
    per_image = time_calls(
        lambda: [scorer.score(PROMPT, [picture]) for scorer in scorers for picture in pictures], repeats
    )
    ratio = median(per_image) / median(batched)
    return BenchResult(
        name="batching_scorers",
        title=f"Scorers x4: {images} images batched vs one per call ({profile_name})",
        unit="seconds per scene (4 scorers)",
        samples={"per image": per_image, "batched": batched},
        summary={"median_per_image_s": median(per_image), "median_batched_s": median(batched), "gain": ratio},
        headline=f"batched is {ratio:.2f}x faster",
        goal=GOAL,
        goal_met=(ratio >= 2.5) if device == "cuda" else None,
        params={"profile": profile_name, "images": images, "repeats": repeats, "device": device},
        machine=machine_info(),
    )
