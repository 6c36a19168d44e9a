"""Diffusion core: seeded, batched text2img / img2img (no Ray)."""

from generator.core import (
    DiffusionGenerator,
    GeneratedImage,
    GenerationRequest,
    GenerationResult,
    GeneratorError,
    InvalidGenerationRequest,
)

__all__ = [
    "DiffusionGenerator",
    "GeneratedImage",
    "GenerationRequest",
    "GenerationResult",
    "GeneratorError",
    "InvalidGenerationRequest",
]
