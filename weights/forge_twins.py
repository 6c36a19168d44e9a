"""Forged twins of the production diffusion architectures: same pipeline classes, component
classes, tokenizer formats and scheduler settings as the real checkpoints, at toy width.

- ``twin-flux`` is ``black-forest-labs/FLUX.1-schnell`` in miniature: a ``FluxPipeline`` dir with a
  ``FluxTransformer2DModel`` (1 double + 1 single block, no guidance embedding, like schnell), the
  Flux VAE layout (16 latent channels, no quant convs, Flux's shift and scaling factors), a CLIP text
  encoder with the real CLIP BPE tokenizer, a T5 v1.1-style encoder (gated-GELU) with a SentencePiece
  Unigram tokenizer trained here (``spiece.model`` + ``tokenizer.json``, as the real repo ships), and
  schnell's ``FlowMatchEulerDiscreteScheduler`` settings.
- ``twin-sdxl`` is ``stabilityai/sdxl-turbo`` in miniature: a ``StableDiffusionXLPipeline`` dir with
  both text encoders (``CLIPTextModel`` + ``CLIPTextModelWithProjection``, the second tokenizer
  padding with "!" like OpenCLIP bigG), a UNet with the ``text_time`` added conditioning
  (``projection_class_embeddings_input_dim`` = pooled width + 6 x ``addition_time_embed_dim``), the
  SDXL VAE's scaling factor, and turbo's ``EulerAncestralDiscreteScheduler`` ("trailing" spacing);
  like the real repo it holds fp32 weights and an ``fp16`` variant (``*.fp16.safetensors``).

Both VAEs have four blocks (8x down-sampling), as the real ones, so latent geometry matches
production: a 64x64 image is an 8x8 latent. Configs are data; the component seeds are ``seed + k``
so changing one component leaves the others' weights alone. Reference for the tiny sizes:
diffusers' own ``get_dummy_components`` in its Flux and SDXL pipeline tests.
"""

from __future__ import annotations

import io
import random
import shutil
from pathlib import Path
from typing import Any, cast

from weights.clip_tokenizer import clip_vocab_and_merges, save_clip_tokenizer

TWIN_FLUX: dict[str, Any] = {
    "clip_tokenizer_merges": 2000,
    "t5_vocab_size": 1000,  # SentencePiece pieces; the tokenizer adds 100 <extra_id_*> sentinels like T5
    "t5_model_max_length": 512,
    "transformer": {
        "patch_size": 1,
        "in_channels": 64,  # 16 latent channels x 2x2 packing, as in FLUX.1
        "num_layers": 1,  # real: 19 double-stream blocks
        "num_single_layers": 1,  # real: 38 single-stream blocks
        "attention_head_dim": 16,  # real: 128
        "num_attention_heads": 2,  # real: 24
        "joint_attention_dim": 32,  # = T5 d_model (real: 4096)
        "pooled_projection_dim": 32,  # = CLIP text hidden size (real: 768)
        "guidance_embeds": False,  # schnell is guidance-distilled without a guidance embedding
        "axes_dims_rope": [4, 6, 6],  # sums to attention_head_dim (real: 16, 56, 56)
    },
    "vae": {
        "in_channels": 3,
        "out_channels": 3,
        "down_block_types": ["DownEncoderBlock2D"] * 4,
        "up_block_types": ["UpDecoderBlock2D"] * 4,
        "block_out_channels": [16, 16, 32, 32],  # real: 128, 256, 512, 512
        "layers_per_block": 1,  # real: 2
        "latent_channels": 16,
        "norm_num_groups": 8,
        "sample_size": 64,
        "use_quant_conv": False,
        "use_post_quant_conv": False,
        "shift_factor": 0.1159,
        "scaling_factor": 0.3611,
        "force_upcast": True,
    },
    "text_encoder": {  # CLIP ViT-L/14 text tower (real: 768 wide, 12 layers)
        "hidden_size": 32,
        "intermediate_size": 37,
        "num_attention_heads": 4,
        "num_hidden_layers": 2,
        "max_position_embeddings": 77,
        "projection_dim": 32,
        "hidden_act": "quick_gelu",
    },
    "text_encoder_2": {  # T5 v1.1 XXL encoder (real: d_model 4096, 24 layers, 64 heads)
        "d_model": 32,
        "d_kv": 8,
        "d_ff": 37,
        "num_layers": 2,
        "num_heads": 4,
        "relative_attention_num_buckets": 32,
        "relative_attention_max_distance": 128,
        "feed_forward_proj": "gated-gelu",
        "tie_word_embeddings": False,
        "layer_norm_epsilon": 1e-6,
    },
    "scheduler": {  # FLUX.1-schnell's scheduler_config.json
        "num_train_timesteps": 1000,
        "shift": 1.0,
        "use_dynamic_shifting": False,
        "base_shift": 0.5,
        "max_shift": 1.15,
        "base_image_seq_len": 256,
        "max_image_seq_len": 4096,
    },
}

TWIN_SDXL: dict[str, Any] = {
    "clip_tokenizer_merges": 2000,
    "unet": {
        "sample_size": 8,
        "in_channels": 4,
        "out_channels": 4,
        "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
        "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
        "block_out_channels": [16, 32, 32],  # real: 320, 640, 1280
        "layers_per_block": 1,  # real: 2
        "transformer_layers_per_block": [1, 1, 2],  # real: 1, 2, 10
        "attention_head_dim": [2, 4, 4],  # real: 5, 10, 20
        "use_linear_projection": True,
        "cross_attention_dim": 64,  # = both text encoders' widths, concatenated (real: 768 + 1280)
        "addition_embed_type": "text_time",
        "addition_time_embed_dim": 8,  # real: 256
        "projection_class_embeddings_input_dim": 32 + 6 * 8,  # pooled (text_encoder_2) + 6 time ids
        "norm_num_groups": 8,
    },
    "vae": {
        "in_channels": 3,
        "out_channels": 3,
        "down_block_types": ["DownEncoderBlock2D"] * 4,
        "up_block_types": ["UpDecoderBlock2D"] * 4,
        "block_out_channels": [16, 16, 32, 32],  # real: 128, 256, 512, 512
        "layers_per_block": 1,
        "latent_channels": 4,
        "norm_num_groups": 8,
        "sample_size": 64,
        "scaling_factor": 0.13025,
        "force_upcast": True,
    },
    "text_encoder": {  # CLIP ViT-L/14 text tower
        "hidden_size": 32,
        "intermediate_size": 37,
        "num_attention_heads": 4,
        "num_hidden_layers": 2,
        "max_position_embeddings": 77,
        "projection_dim": 32,
        "hidden_act": "quick_gelu",
    },
    "text_encoder_2": {  # OpenCLIP ViT-bigG/14 text tower, with projection
        "hidden_size": 32,
        "intermediate_size": 37,
        "num_attention_heads": 4,
        "num_hidden_layers": 2,
        "max_position_embeddings": 77,
        "projection_dim": 32,
        "hidden_act": "gelu",
    },
    "tokenizer_2_pad_token": "!",  # OpenCLIP pads with "!" (sdxl-turbo's tokenizer_2)
    "scheduler": {  # sdxl-turbo's scheduler_config.json
        "num_train_timesteps": 1000,
        "beta_start": 0.00085,
        "beta_end": 0.012,
        "beta_schedule": "scaled_linear",
        "prediction_type": "epsilon",
        "steps_offset": 1,
        "timestep_spacing": "trailing",
    },
}


# ---- tokenizers -----------------------------------------------------------------------------------


def _clip_tokenizer(build_dir: Path, merges: int, pad_token: str | None = None) -> tuple[Any, int]:
    """A transformers CLIPTokenizer (real CLIP BPE, first ``merges`` merges) and its vocab size."""
    from transformers import CLIPTokenizer  # noqa: PLC0415

    vocab_size = save_clip_tokenizer(build_dir, num_merges=merges)
    extra: dict[str, Any] = {"pad_token": pad_token} if pad_token else {}
    return CLIPTokenizer.from_pretrained(str(build_dir), **extra), vocab_size


def _t5_corpus(seed: int, lines: int = 6000) -> list[str]:
    """Seeded English-like text: random sentences over whole words taken from the CLIP BPE vocabulary."""
    _, merges = clip_vocab_and_merges(20000)
    words = sorted(
        {
            (left + right)[: -len("</w>")]
            for left, right in merges
            if (left + right).endswith("</w>") and (left + right)[: -len("</w>")].isalpha()
        }
    )
    rng = random.Random(seed)
    return [" ".join(rng.choice(words) for _ in range(rng.randint(4, 16))) for _ in range(lines)]


def save_t5_tokenizer(out_dir: Path, seed: int, vocab_size: int, model_max_length: int) -> Any:
    """Train a SentencePiece Unigram model (T5's special ids: pad 0, eos 1, unk 2, no bos) and write
    it as a T5 tokenizer dir: ``spiece.model`` plus transformers' ``tokenizer.json`` and config."""
    import sentencepiece as spm  # noqa: PLC0415
    from transformers import T5Tokenizer  # noqa: PLC0415

    build_dir = out_dir.parent / f"_{out_dir.name}_build"
    build_dir.mkdir(parents=True, exist_ok=True)
    model = io.BytesIO()
    # Sentences from an iterator and the model into memory: no temp path ends up in the trainer spec
    # stored inside spiece.model, so equal seeds give byte-equal files.
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(_t5_corpus(seed)),
        model_writer=model,
        model_type="unigram",
        vocab_size=vocab_size,
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,
        character_coverage=1.0,
        num_threads=1,  # one thread: the trained model is the same on every machine
        input_sentence_size=0,
        shuffle_input_sentence=False,
        minloglevel=2,
    )
    (build_dir / "spiece.model").write_bytes(model.getvalue())
    # transformers converts spiece.model into its Unigram tokenizer.json, as for google/t5-v1_1-xxl
    # (T5Tokenizer is the tokenizers-backed class in transformers 5; FLUX.1 names it T5TokenizerFast)
    tokenizer = T5Tokenizer.from_pretrained(str(build_dir), extra_ids=100, model_max_length=model_max_length)
    tokenizer.save_pretrained(str(out_dir))
    shutil.copyfile(build_dir / "spiece.model", out_dir / "spiece.model")
    shutil.rmtree(build_dir)
    return tokenizer


# ---- pipelines ------------------------------------------------------------------------------------


def _parameters(modules: list[Any]) -> int:
    return sum(p.numel() for module in modules for p in module.parameters())


def _clip_text_config(config: dict[str, Any], tokenizer: Any, vocab_size: int) -> Any:
    from transformers import CLIPTextConfig  # noqa: PLC0415

    return CLIPTextConfig(
        vocab_size=vocab_size,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **config,
    )


def forge_twin_flux(out_dir: Path, seed: int, model_dir: Path) -> dict[str, Any]:
    """A toy FLUX.1-schnell ``FluxPipeline`` dir (about 0.5M parameters, 3 MB)."""
    import torch  # noqa: PLC0415
    from diffusers import (  # noqa: PLC0415
        AutoencoderKL,
        FlowMatchEulerDiscreteScheduler,
        FluxPipeline,
        FluxTransformer2DModel,
    )
    from transformers import CLIPTextModel, T5Config, T5EncoderModel  # noqa: PLC0415

    config = TWIN_FLUX
    tokenizer, clip_vocab = _clip_tokenizer(out_dir / "_clip_build", config["clip_tokenizer_merges"])
    tokenizer_2 = save_t5_tokenizer(
        out_dir / "_t5", seed, config["t5_vocab_size"], config["t5_model_max_length"]
    )
    torch.manual_seed(seed)
    transformer = FluxTransformer2DModel(**config["transformer"])
    torch.manual_seed(seed + 1)
    vae = AutoencoderKL(**config["vae"])
    torch.manual_seed(seed + 2)
    text_encoder = CLIPTextModel(_clip_text_config(config["text_encoder"], tokenizer, clip_vocab))
    torch.manual_seed(seed + 3)
    t5_config = T5Config(
        vocab_size=len(tokenizer_2),
        pad_token_id=tokenizer_2.pad_token_id,
        eos_token_id=tokenizer_2.eos_token_id,
        **config["text_encoder_2"],
    )
    text_encoder_2 = T5EncoderModel(t5_config)
    pipeline = FluxPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(**config["scheduler"]),
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        text_encoder_2=text_encoder_2,
        tokenizer_2=tokenizer_2,
        transformer=transformer,
    )
    # diffusers' stubs lose save_pretrained through its mixins; it is there at run time.
    cast(Any, pipeline).save_pretrained(str(out_dir), safe_serialization=True)
    shutil.copyfile(out_dir / "_t5" / "spiece.model", out_dir / "tokenizer_2" / "spiece.model")
    shutil.rmtree(out_dir / "_t5")
    shutil.rmtree(out_dir / "_clip_build")
    return {
        "format": "diffusers",
        "pipeline": "FluxPipeline",
        "twin_of": "black-forest-labs/FLUX.1-schnell",
        "parameters": _parameters([transformer, vae, text_encoder, text_encoder_2]),
    }


def forge_twin_sdxl(out_dir: Path, seed: int, model_dir: Path) -> dict[str, Any]:
    """A toy SDXL-Turbo ``StableDiffusionXLPipeline`` dir (about 1M parameters; fp32 + fp16, 6 MB)."""
    import torch  # noqa: PLC0415
    from diffusers import (  # noqa: PLC0415
        AutoencoderKL,
        EulerAncestralDiscreteScheduler,
        StableDiffusionXLPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextModel, CLIPTextModelWithProjection  # noqa: PLC0415

    config = TWIN_SDXL
    merges = config["clip_tokenizer_merges"]
    tokenizer, vocab = _clip_tokenizer(out_dir / "_clip_build", merges)
    tokenizer_2, vocab_2 = _clip_tokenizer(out_dir / "_clip_build_2", merges, config["tokenizer_2_pad_token"])
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(**config["unet"])
    torch.manual_seed(seed + 1)
    vae = AutoencoderKL(**config["vae"])
    torch.manual_seed(seed + 2)
    text_encoder = CLIPTextModel(_clip_text_config(config["text_encoder"], tokenizer, vocab))
    torch.manual_seed(seed + 3)
    text_encoder_2 = CLIPTextModelWithProjection(
        _clip_text_config(config["text_encoder_2"], tokenizer_2, vocab_2)
    )
    pipeline = StableDiffusionXLPipeline(
        vae=vae,
        text_encoder=text_encoder,
        text_encoder_2=text_encoder_2,
        tokenizer=tokenizer,
        tokenizer_2=tokenizer_2,
        unet=unet,
        scheduler=EulerAncestralDiscreteScheduler(**config["scheduler"]),
        force_zeros_for_empty_prompt=True,
        add_watermarker=False,
    )
    parameters = _parameters([unet, vae, text_encoder, text_encoder_2])
    cast(Any, pipeline).save_pretrained(str(out_dir), safe_serialization=True)
    # sdxl-turbo ships fp16 copies beside the fp32 weights (production loads variant="fp16" on CUDA)
    cast(Any, pipeline).to(dtype=torch.float16)
    cast(Any, pipeline).save_pretrained(str(out_dir), safe_serialization=True, variant="fp16")
    shutil.rmtree(out_dir / "_clip_build")
    shutil.rmtree(out_dir / "_clip_build_2")
    return {
        "format": "diffusers",
        "pipeline": "StableDiffusionXLPipeline",
        "twin_of": "stabilityai/sdxl-turbo",
        "variants": ["fp32", "fp16"],
        "parameters": parameters,
    }
