"""Forge recipes for diffusion pipelines: diffusers ``save_pretrained`` dirs, seeded random weights.

``tiny-sd`` has the Stable Diffusion 1.x pipeline layout (UNet2DConditionModel, AutoencoderKL, CLIP text
encoder + real CLIP BPE tokenizer, DDIM scheduler) at toy width, so ``AutoPipelineForText2Image`` /
``AutoPipelineForImage2Image`` load it exactly as they load a real checkpoint. ``bench-sd15`` is the
SD-1.5 architecture at full size with random weights: it costs what the real model costs to run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from weights.clip_tokenizer import save_clip_tokenizer

# Component configs are data; the tiny one follows diffusers' own test dummies.
_TINY_SD: dict[str, Any] = {
    "tokenizer_merges": 2000,
    "unet": {
        "block_out_channels": [32, 64],
        "layers_per_block": 1,
        "sample_size": 8,
        "in_channels": 4,
        "out_channels": 4,
        "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D"],
        "up_block_types": ["CrossAttnUpBlock2D", "UpBlock2D"],
        "cross_attention_dim": 32,
        "attention_head_dim": 8,
        "norm_num_groups": 32,
    },
    "vae": {
        "block_out_channels": [32, 64],
        "in_channels": 3,
        "out_channels": 3,
        "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D"],
        "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D"],
        "latent_channels": 4,
        "norm_num_groups": 32,
        "sample_size": 64,
    },
    "text_encoder": {
        "hidden_size": 32,
        "intermediate_size": 37,
        "num_attention_heads": 4,
        "num_hidden_layers": 2,
        "max_position_embeddings": 77,
        "projection_dim": 32,
    },
}

_SD15: dict[str, Any] = {
    "tokenizer_merges": None,
    "unet": {
        "block_out_channels": [320, 640, 1280, 1280],
        "layers_per_block": 2,
        "sample_size": 64,
        "in_channels": 4,
        "out_channels": 4,
        "down_block_types": [
            "CrossAttnDownBlock2D",
            "CrossAttnDownBlock2D",
            "CrossAttnDownBlock2D",
            "DownBlock2D",
        ],
        "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
        "cross_attention_dim": 768,
        "attention_head_dim": 8,
        "norm_num_groups": 32,
    },
    "vae": {
        "block_out_channels": [128, 256, 512, 512],
        "in_channels": 3,
        "out_channels": 3,
        "down_block_types": ["DownEncoderBlock2D"] * 4,
        "up_block_types": ["UpDecoderBlock2D"] * 4,
        "latent_channels": 4,
        "layers_per_block": 2,
        "norm_num_groups": 32,
        "sample_size": 512,
    },
    "text_encoder": {
        "hidden_size": 768,
        "intermediate_size": 3072,
        "num_attention_heads": 12,
        "num_hidden_layers": 12,
        "max_position_embeddings": 77,
        "projection_dim": 768,
    },
}

_SCHEDULER: dict[str, Any] = {
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "clip_sample": False,
    "set_alpha_to_one": False,
    "steps_offset": 1,
}


def _forge_sd(out_dir: Path, seed: int, config: dict[str, Any]) -> dict[str, Any]:
    import torch  # noqa: PLC0415
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel  # noqa: PLC0415
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer  # noqa: PLC0415

    tokenizer_dir = out_dir / "_tokenizer_build"
    vocab_size = save_clip_tokenizer(tokenizer_dir, num_merges=config["tokenizer_merges"])
    tokenizer = CLIPTokenizer.from_pretrained(str(tokenizer_dir))

    # One seed per component, so changing one component's config leaves the others' weights alone.
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(**config["unet"])
    torch.manual_seed(seed + 1)
    vae = AutoencoderKL(**config["vae"])
    torch.manual_seed(seed + 2)
    text_config = CLIPTextConfig(
        vocab_size=vocab_size,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **config["text_encoder"],
    )
    text_encoder = CLIPTextModel(text_config)
    pipeline = StableDiffusionPipeline(
        unet=unet,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        scheduler=DDIMScheduler(**_SCHEDULER),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    # diffusers' stubs lose save_pretrained through its mixins; it is there at run time.
    cast(Any, pipeline).save_pretrained(str(out_dir), safe_serialization=True)
    for leftover in tokenizer_dir.iterdir():
        leftover.unlink()
    tokenizer_dir.rmdir()
    modules: list[Any] = [unet, vae, text_encoder]
    parameters = sum(p.numel() for module in modules for p in module.parameters())
    return {"format": "diffusers", "pipeline": "StableDiffusionPipeline", "parameters": parameters}


def forge_tiny_sd(out_dir: Path, seed: int, model_dir: Path) -> dict[str, Any]:
    """A toy Stable Diffusion pipeline (~1M parameters) for CPU tests."""
    return _forge_sd(out_dir, seed, _TINY_SD)


def forge_bench_sd15(out_dir: Path, seed: int, model_dir: Path) -> dict[str, Any]:
    """SD-1.5-sized pipeline with random weights (about 1.1B parameters) for GPU timing."""
    return _forge_sd(out_dir, seed, _SD15)
