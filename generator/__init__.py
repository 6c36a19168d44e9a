"""Diffusion core: seeded, batched text2img / img2img (no Ray)."""

from generator.core import (
    DiffusionGenerator,
    GeneratedImage,
    GenerationRequest,
    GenerationResult,
    GeneratorError,
    GeneratorOutOfMemory,
    InvalidGenerationRequest,
    is_out_of_memory,
)

__all__ = [
    "DiffusionGenerator",
    "GeneratedImage",
    "GenerationRequest",
    "GenerationResult",
    "GeneratorError",
    "GeneratorOutOfMemory",
    "InvalidGenerationRequest",
    "is_out_of_memory",
]
