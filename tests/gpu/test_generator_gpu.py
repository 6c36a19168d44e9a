"""The diffusion core at full FLUX.1-schnell size on a GPU (gpu-bench: random weights built on the GPU from
a config-only dir; real compute, no hub)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from generator import DiffusionGenerator, GenerationRequest
from weights.profiles import get_profile

PROMPT = "a red sports car on a coastal road at sunset"


@pytest.fixture(scope="module")
def generator() -> DiffusionGenerator:
    profile = get_profile("gpu-bench")
    return DiffusionGenerator(
        profile.model("diffusion"), profile.generation, device="cuda", dtype=profile.dtype
    )


def test_runs_on_cuda_in_half_precision(generator: DiffusionGenerator) -> None:
    import torch

    assert generator.device == "cuda"
    transformer = generator.text2img.transformer  # built on the GPU in Flux's bf16, never on the CPU
    assert next(transformer.parameters()).dtype == torch.bfloat16
    assert next(transformer.parameters()).device.type == "cuda"
    result = generator.generate(GenerationRequest(prompt=PROMPT, seeds=[1, 2, 3, 4]))
    assert len(result.images) == 4 and result.batch_size == 4
    assert Image.open(io.BytesIO(result.images[0].png)).size == (512, 512)


def test_same_seed_same_image_on_gpu(generator: DiffusionGenerator) -> None:
    first = generator.generate(GenerationRequest(prompt=PROMPT, seeds=[9])).images[0].png
    second = generator.generate(GenerationRequest(prompt=PROMPT, seeds=[9])).images[0].png
    a = np.asarray(Image.open(io.BytesIO(first))).astype(int)
    b = np.asarray(Image.open(io.BytesIO(second))).astype(int)
    assert np.abs(a - b).max() <= 2  # cuDNN kernels may differ by a level between calls


def test_img2img_chain_on_gpu(generator: DiffusionGenerator) -> None:
    reference = generator.generate(GenerationRequest(prompt=PROMPT, seeds=[1])).images[0].png
    chained = generator.generate(GenerationRequest(prompt=PROMPT, seeds=[1, 2], reference_png=reference))
    assert chained.mode == "img2img" and len(chained.images) == 2
