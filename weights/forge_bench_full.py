"""Config-only model dirs of the production architectures at full size: the ``gpu-bench`` profile.

Each recipe writes what a loader needs to *build* the model (``config.json``, ``model_index.json``,
scheduler, tokenizer and processor files) and NO weight file; ``weights.random_init.build_random``
then builds the model from those configs directly on the GPU with random init (never on the CPU),
and vLLM does the same for the LLM with ``load_format="dummy"``. Writing the configs needs no
weights either: parameter counts come from building each model on the ``meta`` device.

- ``bench-flux-schnell``: FLUX.1-schnell's ``FluxPipeline`` (FluxTransformer2DModel, 19 double + 38
  single blocks, 24 heads x 128, joint_attention_dim 4096, pooled 768, no guidance embedding; the
  16-channel Flux VAE; CLIP-L text encoder; T5-XXL encoder: d_model 4096, 24 layers, d_ff 10240,
  64 heads, gated-GELU) and schnell's scheduler.
- ``bench-pickscore-h14``: PickScore_v1's ``CLIPModel`` (ViT-H/14: vision 1280 wide x 32 layers, text
  1024 x 24, projection 1024); its processor is ``twin-clip-h14-processor`` (exact: full CLIP BPE).
- ``bench-openclip-l14-config``: open_clip ``ViT-L-14-quickgelu``'s own model config, no checkpoint.
- ``bench-aesthetic-config``: the LAION aesthetic MLP's input width (768).
- ``bench-llava15-7b``: llava-1.5-7b-hf (CLIP ViT-L/14-336 tower + Llama-2-7B + projector) with the
  twin's ``LlavaProcessor`` (336 px, llava-1.5's chat template).
- ``bench-qwen25-7b``: Qwen2.5-7B-Instruct's ``config.json`` (bf16) with the twin's tokenizer and chat
  template; vLLM reads it with ``load_format="dummy"``, ``build_random`` with transformers.

Tokenizers: exact where the twin's is exact (the full CLIP BPE of CLIP-L / CLIP-H / open_clip, the
image processors). Elsewhere the twins' tokenizers, trained here, stand in (T5's SentencePiece:
1,100 pieces instead of 32,100; LLaVA's Llama BPE; Qwen2's byte-level BPE): their ids all fall
inside the full-size vocabularies, the model's embedding tables keep the real sizes (32128, 32064,
152064), and T5 prompts are padded to ``max_sequence_length`` anyway, so the compute is the
production compute; only the token *ids* of a given text differ. Special-token ids (LLaVA's
``<image>``, Qwen's bos/eos) are the twin tokenizer's, written into the configs.

Every dir size has a tiny twin (the ``TINY_*`` configs are the twins' configs), written by the same
functions: ``bench-tiny-random`` holds all six at toy size, for CPU tests of the same code path.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from weights.clip_tokenizer import save_clip_tokenizer
from weights.forge_twin_models import (
    AESTHETIC_INPUT_SIZE,
    OPENCLIP_ARCH,
    OPENCLIP_CONFIG,
    TWIN_LLAVA15,
    TWIN_OPENCLIP_L14,
    TWIN_PICKSCORE,
    TWIN_QWEN25,
)
from weights.forge_twins import TWIN_FLUX
from weights.random_init import AESTHETIC_CONFIG

RANDOM_INIT_MANIFEST = {"weights": "none: config only, random init on the device", "random_init": True}

# ---- full-size configs (the twins' dict layout, production's numbers) -----------------------------

FULL_FLUX: dict[str, Any] = {
    **copy.deepcopy(TWIN_FLUX),
    "clip_tokenizer_merges": None,  # the full CLIP BPE (exact)
    "t5_model_vocab_size": 32128,  # google/t5-v1_1-xxl's embedding rows (the tokenizer is the twin's)
    "transformer": {
        "patch_size": 1,
        "in_channels": 64,
        "num_layers": 19,
        "num_single_layers": 38,
        "attention_head_dim": 128,
        "num_attention_heads": 24,
        "joint_attention_dim": 4096,
        "pooled_projection_dim": 768,
        "guidance_embeds": False,
        "axes_dims_rope": [16, 56, 56],
    },
    "vae": {
        "in_channels": 3,
        "out_channels": 3,
        "down_block_types": ["DownEncoderBlock2D"] * 4,
        "up_block_types": ["UpDecoderBlock2D"] * 4,
        "block_out_channels": [128, 256, 512, 512],
        "layers_per_block": 2,
        "latent_channels": 16,
        "norm_num_groups": 32,
        "sample_size": 1024,
        "use_quant_conv": False,
        "use_post_quant_conv": False,
        "shift_factor": 0.1159,
        "scaling_factor": 0.3611,
        "force_upcast": True,
    },
    "text_encoder": {  # openai/clip-vit-large-patch14's text tower
        "hidden_size": 768,
        "intermediate_size": 3072,
        "num_attention_heads": 12,
        "num_hidden_layers": 12,
        "max_position_embeddings": 77,
        "projection_dim": 768,
        "hidden_act": "quick_gelu",
    },
    "text_encoder_2": {  # google/t5-v1_1-xxl's encoder
        "d_model": 4096,
        "d_kv": 64,
        "d_ff": 10240,
        "num_layers": 24,
        "num_heads": 64,
        "relative_attention_num_buckets": 32,
        "relative_attention_max_distance": 128,
        "feed_forward_proj": "gated-gelu",
        "tie_word_embeddings": False,
        "layer_norm_epsilon": 1e-6,
    },
}

FULL_PICKSCORE: dict[str, Any] = {  # laion CLIP-ViT-H-14 = yuvalkirstain/PickScore_v1
    "projection_dim": 1024,
    "logit_scale_init_value": 4.6052,
    "text": {
        "hidden_size": 1024,
        "intermediate_size": 4096,
        "num_hidden_layers": 24,
        "num_attention_heads": 16,
        "max_position_embeddings": 77,
        "hidden_act": "gelu",
        "layer_norm_eps": 1e-5,
    },
    "vision": {
        "hidden_size": 1280,
        "intermediate_size": 5120,
        "num_hidden_layers": 32,
        "num_attention_heads": 16,
        "image_size": 224,
        "patch_size": 14,
        "hidden_act": "gelu",
        "layer_norm_eps": 1e-5,
    },
}

FULL_OPENCLIP_L14: dict[str, Any] = {
    # = open_clip.get_model_config("ViT-L-14-quickgelu") (checked by a test)
    "model_cfg": {
        "embed_dim": 768,
        "quick_gelu": True,
        "vision_cfg": {"image_size": 224, "layers": 24, "width": 1024, "patch_size": 14},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 768, "heads": 12, "layers": 12},
    },
    "preprocess_cfg": copy.deepcopy(TWIN_OPENCLIP_L14["preprocess_cfg"]),
}

FULL_LLAVA15: dict[str, Any] = {
    **copy.deepcopy(TWIN_LLAVA15),
    "model_vocab_size": 32064,  # llava-1.5-7b-hf's padded embedding rows
    "vision": {  # openai/clip-vit-large-patch14-336
        "hidden_size": 1024,
        "intermediate_size": 4096,
        "num_hidden_layers": 24,
        "num_attention_heads": 16,
        "hidden_act": "quick_gelu",
        "projection_dim": 768,
        "layer_norm_eps": 1e-5,
    },
    "text": {  # Llama-2-7B
        "hidden_size": 4096,
        "intermediate_size": 11008,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 32,
        "max_position_embeddings": 4096,
        "rms_norm_eps": 1e-5,
        "hidden_act": "silu",
        "tie_word_embeddings": False,
    },
}

FULL_QWEN25: dict[str, Any] = {
    **copy.deepcopy(TWIN_QWEN25),
    "model_vocab_size": 152064,  # Qwen2.5-7B's embedding rows
    "model": {
        "hidden_size": 3584,
        "intermediate_size": 18944,
        "num_hidden_layers": 28,
        "num_attention_heads": 28,
        "num_key_value_heads": 4,
        "head_dim": 128,
        "hidden_act": "silu",
        "max_position_embeddings": 32768,
        "max_window_layers": 28,
        "rms_norm_eps": 1e-6,
        "rope_theta": 1000000.0,
        "sliding_window": 131072,
        "use_sliding_window": False,
        "tie_word_embeddings": False,
        "initializer_range": 0.02,
        "attention_dropout": 0.0,
    },
}

# The tiny twins' configs, in the same layout: the CPU tests write and build these.
TINY_FLUX: dict[str, Any] = copy.deepcopy(TWIN_FLUX)
TINY_PICKSCORE: dict[str, Any] = copy.deepcopy(TWIN_PICKSCORE)
TINY_OPENCLIP_L14: dict[str, Any] = copy.deepcopy(TWIN_OPENCLIP_L14)
TINY_LLAVA15: dict[str, Any] = copy.deepcopy(TWIN_LLAVA15)
TINY_QWEN25: dict[str, Any] = copy.deepcopy(TWIN_QWEN25)


# ---- helpers --------------------------------------------------------------------------------------


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def meta_parameters(build: Any) -> int:
    """Parameters of the module ``build()`` makes, built on the meta device (no memory, no init cost)."""
    import torch  # noqa: PLC0415

    with torch.device("meta"):
        module = build()
    return sum(p.numel() for p in module.parameters())


def _transformers_config_dir(out_dir: Path, config: Any, architecture: str) -> int:
    """Save a transformers config naming its model class; returns the class's parameter count."""
    import transformers  # noqa: PLC0415

    config.architectures = [architecture]
    config.save_pretrained(str(out_dir))
    model_class = getattr(transformers, architecture)
    return meta_parameters(lambda: model_class(config))


def _diffusers_config_dir(out_dir: Path, model_class: Any, config: dict[str, Any]) -> int:
    """Save a diffusers model's config.json (built on meta, so nothing is allocated); its parameters."""
    import torch  # noqa: PLC0415

    with torch.device("meta"):
        model = model_class(**config)
    model.save_config(str(out_dir))
    return sum(p.numel() for p in model.parameters())


# ---- writers (one per architecture; full or tiny by the config passed) ----------------------------


def write_flux(out_dir: Path, seed: int, config: dict[str, Any]) -> dict[str, Any]:
    """A config-only ``FluxPipeline`` dir: model_index.json, component configs, tokenizers, scheduler."""
    import diffusers  # noqa: PLC0415
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxTransformer2DModel  # noqa: PLC0415
    from transformers import CLIPTokenizer, T5Config  # noqa: PLC0415

    from weights.forge_twins import _clip_text_config, save_t5_tokenizer  # noqa: PLC0415

    out_dir.mkdir(parents=True, exist_ok=True)
    # 1. tokenizers: CLIP BPE (full when clip_tokenizer_merges is None) and the twin's trained T5 one
    clip_vocab = save_clip_tokenizer(out_dir / "tokenizer", num_merges=config["clip_tokenizer_merges"])
    tokenizer = CLIPTokenizer.from_pretrained(str(out_dir / "tokenizer"))
    tokenizer_2 = save_t5_tokenizer(
        out_dir / "tokenizer_2", seed, config["t5_vocab_size"], config["t5_model_max_length"]
    )
    # 2. component configs
    parameters = {
        "transformer": _diffusers_config_dir(
            out_dir / "transformer", FluxTransformer2DModel, config["transformer"]
        ),
        "vae": _diffusers_config_dir(out_dir / "vae", AutoencoderKL, config["vae"]),
        "text_encoder": _transformers_config_dir(
            out_dir / "text_encoder",
            _clip_text_config(config["text_encoder"], tokenizer, clip_vocab),
            "CLIPTextModel",
        ),
        "text_encoder_2": _transformers_config_dir(
            out_dir / "text_encoder_2",
            T5Config(
                vocab_size=max(len(tokenizer_2), config.get("t5_model_vocab_size", 0)),
                pad_token_id=tokenizer_2.pad_token_id,
                eos_token_id=tokenizer_2.eos_token_id,
                **config["text_encoder_2"],
            ),
            "T5EncoderModel",
        ),
    }
    scheduler: Any = FlowMatchEulerDiscreteScheduler(**config["scheduler"])  # stubs lose save_pretrained
    scheduler.save_pretrained(str(out_dir / "scheduler"))
    # 3. model_index.json, as FluxPipeline.save_pretrained writes it
    _write_json(
        out_dir / "model_index.json",
        {
            "_class_name": "FluxPipeline",
            "_diffusers_version": diffusers.__version__,
            "feature_extractor": [None, None],
            "image_encoder": [None, None],
            "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
            "text_encoder": ["transformers", "CLIPTextModel"],
            "text_encoder_2": ["transformers", "T5EncoderModel"],
            "tokenizer": ["transformers", "CLIPTokenizer"],
            "tokenizer_2": ["transformers", type(tokenizer_2).__name__],
            "transformer": ["diffusers", "FluxTransformer2DModel"],
            "vae": ["diffusers", "AutoencoderKL"],
        },
    )
    return {
        "format": "diffusers-config-only",
        "pipeline": "FluxPipeline",
        "component_parameters": parameters,
        "parameters": sum(parameters.values()),
        "tokenizer_2": f"twin T5 SentencePiece ({len(tokenizer_2)} tokens; real: 32100)",
    }


def write_pickscore(out_dir: Path, config: dict[str, Any]) -> dict[str, Any]:
    """A config-only ``CLIPModel`` dir in PickScore_v1's config keys (CLIP BPE ids)."""
    from transformers import CLIPConfig  # noqa: PLC0415

    from weights.clip_tokenizer import clip_vocab_and_merges  # noqa: PLC0415

    vocab, _merges = clip_vocab_and_merges()
    clip_config = CLIPConfig(
        text_config={
            **config["text"],
            "vocab_size": len(vocab),
            "bos_token_id": vocab["<|startoftext|>"],
            "eos_token_id": vocab["<|endoftext|>"],
            "pad_token_id": 1,
        },
        vision_config=config["vision"],
        projection_dim=config["projection_dim"],
        logit_scale_init_value=config["logit_scale_init_value"],
    )
    parameters = _transformers_config_dir(out_dir, clip_config, "CLIPModel")
    return {"kind": "transformers-clip-config-only", "architecture": "CLIPModel", "parameters": parameters}


def write_open_clip(out_dir: Path, config: dict[str, Any]) -> dict[str, Any]:
    """``open_clip_config.json`` (architecture, model_cfg, preprocess_cfg) and no checkpoint."""
    import open_clip  # noqa: PLC0415

    _write_json(out_dir / OPENCLIP_CONFIG, {"architecture": OPENCLIP_ARCH, **config})
    parameters = meta_parameters(lambda: open_clip.CLIP(**config["model_cfg"]))
    return {
        "kind": "open_clip-config-only",
        "architecture": OPENCLIP_ARCH,
        "embed_dim": config["model_cfg"]["embed_dim"],
        "parameters": parameters,
    }


def write_aesthetic(out_dir: Path, input_size: int = AESTHETIC_INPUT_SIZE) -> dict[str, Any]:
    """The aesthetic MLP's config: its input width."""
    from weights.architectures import AestheticMLP  # noqa: PLC0415

    _write_json(out_dir / AESTHETIC_CONFIG, {"architecture": "AestheticMLP", "input_size": input_size})
    return {
        "kind": "aesthetic-mlp-config-only",
        "input_size": input_size,
        "parameters": meta_parameters(lambda: AestheticMLP(input_size)),
    }


def write_llava(out_dir: Path, config: dict[str, Any]) -> dict[str, Any]:
    """A config-only llava-1.5 dir: the twin's processor (tokenizer, image processor, chat template)."""
    from transformers import (  # noqa: PLC0415
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaProcessor,
    )

    from weights.forge_twin_models import (  # noqa: PLC0415
        LLAVA15_CHAT_TEMPLATE,
        LLAVA15_PREPROCESSOR,
        _llama_tokenizer,
        _padded,
    )

    size, patch = config["image_size"], config["patch_size"]
    tokenizer = _llama_tokenizer(config["tokenizer_vocab_size"])
    LlavaProcessor(
        image_processor=CLIPImageProcessor(**LLAVA15_PREPROCESSOR),
        tokenizer=tokenizer,
        patch_size=patch,
        vision_feature_select_strategy="default",
        chat_template=LLAVA15_CHAT_TEMPLATE,
        num_additional_image_tokens=1,
        image_token="<image>",
    ).save_pretrained(str(out_dir))
    image_token_id = int(tokenizer.convert_tokens_to_ids("<image>"))
    llava_config = LlavaConfig(
        vision_config=CLIPVisionConfig(**config["vision"], image_size=size, patch_size=patch),
        text_config=LlamaConfig(
            **config["text"],
            vocab_size=max(_padded(len(tokenizer), 64), config.get("model_vocab_size", 0)),
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        ),
        image_token_index=image_token_id,
        projector_hidden_act="gelu",
        vision_feature_select_strategy="default",
        vision_feature_layer=-2,
        image_seq_length=(size // patch) ** 2,
        tie_word_embeddings=False,
    )
    llava_config.dtype = "float16"  # llava-1.5-7b-hf's
    parameters = _transformers_config_dir(out_dir, llava_config, "LlavaForConditionalGeneration")
    return {
        "kind": "transformers-llava-config-only",
        "architecture": "LlavaForConditionalGeneration",
        "parameters": parameters,
        "tokenizer": f"twin Llama BPE ({len(tokenizer)} tokens; real: 32002)",
        "image_token_index": image_token_id,
    }


def write_qwen(out_dir: Path, config: dict[str, Any]) -> dict[str, Any]:
    """A config-only Qwen2.5 dir: config.json (bf16), the twin's tokenizer + chat template, generation config."""
    from transformers import Qwen2Config  # noqa: PLC0415

    from weights.forge_twin_models import (  # noqa: PLC0415
        _chat_template_into_tokenizer_config,
        _padded,
        _qwen2_tokenizer,
        write_qwen25_generation_config,
    )

    tokenizer = _qwen2_tokenizer(config["tokenizer_vocab_size"])
    tokenizer.save_pretrained(str(out_dir))
    _chat_template_into_tokenizer_config(out_dir)
    endoftext = int(tokenizer.convert_tokens_to_ids("<|endoftext|>"))
    im_end = int(tokenizer.convert_tokens_to_ids("<|im_end|>"))
    qwen_config = Qwen2Config(
        **config["model"],
        vocab_size=max(_padded(len(tokenizer), 128), config.get("model_vocab_size", 0)),
        bos_token_id=endoftext,
        eos_token_id=im_end,
    )
    qwen_config.dtype = "bfloat16"  # Qwen2.5-7B-Instruct's; vLLM's dummy weights take it
    parameters = _transformers_config_dir(out_dir, qwen_config, "Qwen2ForCausalLM")
    write_qwen25_generation_config(out_dir, endoftext, im_end)
    return {
        "kind": "causal-lm-config-only",
        "architecture": "Qwen2ForCausalLM",
        "parameters": parameters,
        "tokenizer": f"twin Qwen2 byte-level BPE ({len(tokenizer)} tokens; real: 151665)",
        "load_format": "dummy",
    }


# ---- recipes (weights.forge.RECIPES) --------------------------------------------------------------


def forge_bench_flux_schnell(out_dir: Path, seed: int, model_dir: Path) -> dict[str, Any]:
    """FLUX.1-schnell at full size, config only (16.9B parameters when built)."""
    return {
        **write_flux(out_dir, seed, FULL_FLUX),
        **RANDOM_INIT_MANIFEST,
        "of": "black-forest-labs/FLUX.1-schnell",
    }


def forge_bench_pickscore_h14(out_dir: Path, seed: int, model_dir: Path) -> dict[str, Any]:
    """PickScore_v1 (CLIP ViT-H/14) at full size, config only (986M parameters when built)."""
    return {
        **write_pickscore(out_dir, FULL_PICKSCORE),
        **RANDOM_INIT_MANIFEST,
        "of": "yuvalkirstain/PickScore_v1",
    }


def forge_bench_openclip_l14_config(out_dir: Path, seed: int, model_dir: Path) -> dict[str, Any]:
    """open_clip ViT-L-14-quickgelu at full size, config only (428M parameters when built)."""
    return {
        **write_open_clip(out_dir, FULL_OPENCLIP_L14),
        **RANDOM_INIT_MANIFEST,
        "of": "ViT-L-14-quickgelu/openai",
    }


def forge_bench_aesthetic_config(out_dir: Path, seed: int, model_dir: Path) -> dict[str, Any]:
    """The LAION aesthetic MLP (768-d input), config only."""
    return {**write_aesthetic(out_dir), **RANDOM_INIT_MANIFEST, "of": "sac+logos+ava1-l14-linearMSE.pth"}


def forge_bench_llava15_7b(out_dir: Path, seed: int, model_dir: Path) -> dict[str, Any]:
    """llava-1.5-7b-hf at full size, config + twin processor only (7.1B parameters when built)."""
    return {**write_llava(out_dir, FULL_LLAVA15), **RANDOM_INIT_MANIFEST, "of": "llava-hf/llava-1.5-7b-hf"}


def forge_bench_qwen25_7b(out_dir: Path, seed: int, model_dir: Path) -> dict[str, Any]:
    """Qwen2.5-7B-Instruct at full size, config + twin tokenizer only (7.6B parameters when built)."""
    return {**write_qwen(out_dir, FULL_QWEN25), **RANDOM_INIT_MANIFEST, "of": "Qwen/Qwen2.5-7B-Instruct"}


# name of each sub-dir of bench-tiny-random -> the gpu-bench role(s) it stands for
TINY_RANDOM_DIRS = ("flux", "pickscore", "openclip", "aesthetic", "llava", "qwen")


def forge_bench_tiny_random(out_dir: Path, seed: int, model_dir: Path) -> dict[str, Any]:
    """All six config-only dirs at the twins' toy sizes, one sub-dir each (CPU tests of gpu-bench's path)."""
    parts = {
        "flux": write_flux(out_dir / "flux", seed, TINY_FLUX),
        "pickscore": write_pickscore(out_dir / "pickscore", TINY_PICKSCORE),
        "openclip": write_open_clip(out_dir / "openclip", TINY_OPENCLIP_L14),
        "aesthetic": write_aesthetic(out_dir / "aesthetic"),
        "llava": write_llava(out_dir / "llava", TINY_LLAVA15),
        "qwen": write_qwen(out_dir / "qwen", TINY_QWEN25),
    }
    return {
        "kind": "config-only-set",
        "parts": {name: part["parameters"] for name, part in parts.items()},
        **RANDOM_INIT_MANIFEST,
    }
