"""Forge recipes for the four scorers' models, in the formats the production checkpoints ship in.

- ``tiny-pickscore``: a transformers ``CLIPModel`` + ``CLIPProcessor`` dir (real CLIP BPE, trimmed),
  the format of ``yuvalkirstain/PickScore_v1`` + the laion ViT-H-14 processor.
- ``tiny-openclip``: an open_clip **local-dir** (``open_clip_config.json`` with ``model_cfg`` and
  ``preprocess_cfg``, weights in ``open_clip_model.safetensors``), loaded by
  ``open_clip.create_model_and_transforms("local-dir:" + path)``; the tokenizer is open_clip's own
  full CLIP BPE (``vocab_size`` 49408).
- ``tiny-vqa``: a ``LlavaForConditionalGeneration`` ``save_pretrained`` dir with its ``LlavaProcessor``
  (CLIP image processor, a byte-level BPE tokenizer trained here, a LLaVA-1.5-style chat template).
- ``tiny-aesthetic``: the LAION improved-aesthetic-predictor MLP state dict (``layers.*`` keys) for
  ``tiny-openclip``'s embedding width.
- ``bench-clip-h14``, ``bench-openclip-l14``, ``bench-vqa``, ``bench-aesthetic``: the production
  architectures at full size with random fp16 weights (``gpu-bench`` profile; build them on the GPU
  machine: bench-vqa is LLaVA-1.5-7B-sized, ~14 GB).
- ``trained-clip``: an open_clip local-dir CLIP *trained* here, on CPU in about a minute, on synthetic
  captioned images ("a red circle on a white background"), so tests can show that scores mean something;
  ``trained-clip/transformers`` holds the same weights as a transformers ``CLIPModel`` + ``CLIPProcessor``
  (so PickScore's loader and math run on a trained model too).

All random weights are seeded; the training run is seeded and single-process.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from weights.clip_tokenizer import save_clip_tokenizer

if TYPE_CHECKING:
    from PIL import Image, ImageDraw

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

# ---- configs (data) ------------------------------------------------------------------------------

TINY_PICKSCORE: dict[str, Any] = {
    "tokenizer_merges": 2000,
    "projection_dim": 32,
    "logit_scale_init_value": 2.6592,  # ln(1/0.07), CLIP's initial temperature
    "text": {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "max_position_embeddings": 77,
    },
    "vision": {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "image_size": 32,
        "patch_size": 8,
    },
}

# PickScore_v1 = CLIP ViT-H/14 (laion/CLIP-ViT-H-14-laion2B-s32B-b79K's config.json).
BENCH_CLIP_H14: dict[str, Any] = {
    "tokenizer_merges": None,
    "projection_dim": 1024,
    "logit_scale_init_value": 2.6592,
    "save_dtype": "float16",
    "text": {
        "hidden_size": 1024,
        "intermediate_size": 4096,
        "num_hidden_layers": 24,
        "num_attention_heads": 16,
        "max_position_embeddings": 77,
        "hidden_act": "gelu",
    },
    "vision": {
        "hidden_size": 1280,
        "intermediate_size": 5120,
        "num_hidden_layers": 32,
        "num_attention_heads": 16,
        "image_size": 224,
        "patch_size": 14,
        "hidden_act": "gelu",
    },
}

OPENAI_PREPROCESS: dict[str, Any] = {
    "mean": list(CLIP_MEAN),
    "std": list(CLIP_STD),
    "interpolation": "bicubic",
    "resize_mode": "shortest",
}
# OpenAI's CLIP L/14 (CLIPScore, and the aesthetic predictor's embedding model) uses QuickGELU.
BENCH_OPENCLIP_ARCH = "ViT-L-14-quickgelu"

TINY_OPENCLIP: dict[str, Any] = {
    "model_cfg": {
        "embed_dim": 32,
        "vision_cfg": {"image_size": 32, "layers": 2, "width": 32, "head_width": 16, "patch_size": 8},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
    },
    "preprocess_cfg": OPENAI_PREPROCESS,
}

TRAINED_CLIP: dict[str, Any] = {
    "model_cfg": {
        "embed_dim": 64,
        "vision_cfg": {"image_size": 32, "layers": 3, "width": 64, "head_width": 16, "patch_size": 8},
        "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 64, "heads": 4, "layers": 2},
    },
    "preprocess_cfg": TINY_OPENCLIP["preprocess_cfg"],
    "training": {
        "steps": 700,
        "threads": 1,  # one thread: reproducible, and fair to a shared 2-core machine
        "learning_rate": 2e-3,
        "weight_decay": 0.05,
        "warmup_steps": 30,
        "pool_per_caption": 40,
        "render_size": 64,
    },
}

TINY_VQA: dict[str, Any] = {
    "tokenizer_vocab_size": 600,
    "image_size": 32,
    "patch_size": 8,
    "vision": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2},
    "text": {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 2,
        "max_position_embeddings": 512,
    },
}

# llava-hf/llava-1.5-7b-hf's config: CLIP ViT-L/14-336 (QuickGELU) + Llama-2-7B; our small BPE tokenizer
# stands in for Llama's (same embedding size via vocab_size), which changes nothing in the compute.
BENCH_VQA: dict[str, Any] = {
    "tokenizer_vocab_size": 600,
    "vocab_size": 32064,
    "save_dtype": "float16",
    "image_size": 336,
    "patch_size": 14,
    "vision": {
        "hidden_size": 1024,
        "intermediate_size": 4096,
        "num_hidden_layers": 24,
        "num_attention_heads": 16,
        "hidden_act": "quick_gelu",
        "projection_dim": 768,
    },
    "text": {
        "hidden_size": 4096,
        "intermediate_size": 11008,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 32,
        "max_position_embeddings": 4096,
        "rms_norm_eps": 1e-5,
    },
}

# LLaVA-1.5's conversation format ("USER: <image>\n... ASSISTANT:"), as a jinja chat template.
LLAVA_CHAT_TEMPLATE = (
    "{% for message in messages %}{{ message['role'].upper() + ': ' }}"
    "{% for item in message['content'] %}{% if item['type'] == 'image' %}{{ '<image>\n' }}"
    "{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}{% endfor %}"
    "{% if not loop.last %}{{ '\n' }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ ' ASSISTANT:' }}{% endif %}"
)


def _torch_dtype(name: str) -> Any:
    import torch  # noqa: PLC0415

    return {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[name]


# ---- synthetic captioned images (the trained CLIP's data; tests reuse it) -------------------------

SHAPE_COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 170, 40),
    "blue": (30, 60, 220),
    "yellow": (240, 220, 30),
    "purple": (140, 40, 170),
    "orange": (250, 140, 20),
}
SHAPES = ("circle", "square", "triangle")
BACKGROUNDS: dict[str, tuple[int, int, int]] = {"white": (255, 255, 255), "black": (0, 0, 0)}
# trained-clip also holds the same weights as a transformers CLIPModel + CLIPProcessor, in this subdir.
TRANSFORMERS_SUBDIR = "transformers"


def shape_caption(colour: str, shape: str, background: str) -> str:
    """The caption of one synthetic image."""
    return f"a {colour} {shape} on a {background} background"


def all_shape_captions() -> list[tuple[str, str, str]]:
    """Every (colour, shape, background) combination, in a fixed order."""
    return [(c, s, b) for b in BACKGROUNDS for s in SHAPES for c in SHAPE_COLOURS]


def render_shape(colour: str, shape: str, background: str, rng: random.Random, size: int = 64) -> Image.Image:
    """One synthetic image: a coloured shape, jittered in size and position, on a plain background."""
    from PIL import Image, ImageDraw  # noqa: PLC0415

    image = Image.new("RGB", (size, size), BACKGROUNDS[background])
    draw = ImageDraw.Draw(image)
    extent = rng.uniform(0.4, 0.7) * size
    left = rng.uniform(0.05 * size, 0.95 * size - extent)
    top = rng.uniform(0.05 * size, 0.95 * size - extent)
    draw_shape(draw, shape, colour, (left, top, extent), rng)
    return image


def draw_shape(
    draw: ImageDraw.ImageDraw, shape: str, colour: str, at: tuple[float, float, float], rng: random.Random
) -> None:
    """``shape`` filled with a jittered ``colour`` in the square of side ``extent`` at (left, top)."""
    left, top, extent = at
    box = (left, top, left + extent, top + extent)
    fill = tuple(min(max(v + rng.randint(-20, 20), 0), 255) for v in SHAPE_COLOURS[colour])
    if shape == "circle":
        draw.ellipse(box, fill=fill)
    elif shape == "square":
        draw.rectangle(box, fill=fill)
    else:
        draw.polygon(
            [(left + extent / 2, top), (left, top + extent), (left + extent, top + extent)], fill=fill
        )


# ---- tiny-pickscore ------------------------------------------------------------------------------


def _save_clip_processor(
    out_dir: Path, num_merges: int | None, image_size: int, model_max_length: int = 77
) -> Any:
    """Write a ``CLIPProcessor`` dir (real CLIP BPE + CLIP image normalisation); returns the tokenizer."""
    from transformers import CLIPImageProcessor, CLIPProcessor, CLIPTokenizer  # noqa: PLC0415

    save_clip_tokenizer(out_dir, num_merges=num_merges, model_max_length=model_max_length)
    tokenizer = CLIPTokenizer.from_pretrained(str(out_dir))
    image_processor = CLIPImageProcessor(
        size={"shortest_edge": image_size},
        crop_size={"height": image_size, "width": image_size},
        image_mean=list(CLIP_MEAN),
        image_std=list(CLIP_STD),
    )
    CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(str(out_dir))
    return tokenizer


def _forge_hf_clip(out_dir: Path, seed: int, config: dict[str, Any]) -> dict[str, Any]:
    """A seeded random transformers CLIPModel + CLIPProcessor (PickScore_v1's on-disk format)."""
    import torch  # noqa: PLC0415
    from transformers import (  # noqa: PLC0415
        CLIPConfig,
        CLIPModel,
    )

    tokenizer = _save_clip_processor(out_dir, config["tokenizer_merges"], config["vision"]["image_size"])
    clip_config = CLIPConfig(
        text_config={
            **config["text"],
            "vocab_size": len(tokenizer),
            "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        },
        vision_config=config["vision"],
        projection_dim=config["projection_dim"],
        logit_scale_init_value=config["logit_scale_init_value"],
    )
    torch.manual_seed(seed)
    model = CLIPModel(clip_config).to(_torch_dtype(config.get("save_dtype", "float32")))
    model.save_pretrained(str(out_dir), safe_serialization=True)
    merges = config["tokenizer_merges"]
    return {
        "kind": "transformers-clip",
        "architecture": "CLIPModel",
        "parameters": sum(p.numel() for p in model.parameters()),
        "tokenizer": "CLIP BPE" + (f", first {merges} merges" if merges else ""),
        "weights": "random",
    }


def forge_tiny_pickscore(out_dir: Path, seed: int, model_dir: Path) -> dict[str, Any]:
    """Tiny random CLIPModel + CLIPProcessor in PickScore_v1's format."""
    return _forge_hf_clip(out_dir, seed, TINY_PICKSCORE)


def forge_bench_clip_h14(out_dir: Path, seed: int, model_dir: Path) -> dict[str, Any]:
    """PickScore_v1's architecture (CLIP ViT-H/14, ~1B parameters) with random weights, fp16."""
    return _forge_hf_clip(out_dir, seed, BENCH_CLIP_H14)


# ---- open_clip local-dir (tiny-openclip, trained-clip) --------------------------------------------


def _save_open_clip_dir(out_dir: Path, config: dict[str, Any], model: Any) -> None:
    from safetensors.torch import save_file  # noqa: PLC0415

    payload = {"model_cfg": config["model_cfg"], "preprocess_cfg": config["preprocess_cfg"]}
    (out_dir / "open_clip_config.json").write_text(json.dumps(payload, indent=2))
    state = {key: value.detach().contiguous() for key, value in model.state_dict().items()}
    save_file(state, str(out_dir / "open_clip_model.safetensors"))


def _new_open_clip(config: dict[str, Any], seed: int) -> Any:
    import open_clip  # noqa: PLC0415
    import torch  # noqa: PLC0415

    torch.manual_seed(seed)
    return open_clip.CLIP(**config["model_cfg"])


def forge_bench_openclip_l14(out_dir: Path, seed: int, model_dir: Path) -> dict[str, Any]:
    """open_clip ViT-L-14-quickgelu (OpenAI CLIP L/14's architecture) with random weights, fp16."""
    import open_clip  # noqa: PLC0415

    config = {
        "model_cfg": open_clip.get_model_config(BENCH_OPENCLIP_ARCH),
        "preprocess_cfg": OPENAI_PREPROCESS,
    }
    model = _new_open_clip(config, seed).half()
    _save_open_clip_dir(out_dir, config, model)
    return {
        "kind": "open_clip-local-dir",
        "architecture": BENCH_OPENCLIP_ARCH,
        "embed_dim": config["model_cfg"]["embed_dim"],
        "parameters": sum(p.numel() for p in model.parameters()),
        "weights": "random",
    }


def forge_tiny_openclip(out_dir: Path, seed: int, model_dir: Path) -> dict[str, Any]:
    """A seeded random open_clip CLIP in the local-dir format."""
    model = _new_open_clip(TINY_OPENCLIP, seed)
    _save_open_clip_dir(out_dir, TINY_OPENCLIP, model)
    return {
        "kind": "open_clip-local-dir",
        "embed_dim": TINY_OPENCLIP["model_cfg"]["embed_dim"],
        "parameters": sum(p.numel() for p in model.parameters()),
        "weights": "random",
    }


# ---- open_clip -> transformers CLIPModel (the trained CLIP in PickScore's format too) --------------


def _hf_block(prefix: str, block: str, state: dict[str, Any], out: dict[str, Any]) -> None:
    """One open_clip residual block -> one transformers CLIPEncoderLayer."""
    q, k, v = state[f"{block}.attn.in_proj_weight"].chunk(3)
    q_bias, k_bias, v_bias = state[f"{block}.attn.in_proj_bias"].chunk(3)
    for name, weight, bias in (("q", q, q_bias), ("k", k, k_bias), ("v", v, v_bias)):
        out[f"{prefix}.self_attn.{name}_proj.weight"] = weight
        out[f"{prefix}.self_attn.{name}_proj.bias"] = bias
    pairs = {
        "self_attn.out_proj": "attn.out_proj",
        "layer_norm1": "ln_1",
        "layer_norm2": "ln_2",
        "mlp.fc1": "mlp.c_fc",
        "mlp.fc2": "mlp.c_proj",
    }
    for hf_name, oc_name in pairs.items():
        for param in ("weight", "bias"):
            out[f"{prefix}.{hf_name}.{param}"] = state[f"{block}.{oc_name}.{param}"]


def open_clip_to_transformers(model_cfg: dict[str, Any], state: dict[str, Any], eos_token_id: int) -> Any:
    """A transformers ``CLIPModel`` with the weights of an open_clip ``CLIP`` (standard ViT + text tower).

    The same mapping as transformers' ``convert_clip_original_pytorch_to_hf``: fused in-projections
    split into q/k/v, projections transposed.
    """
    from transformers import CLIPConfig, CLIPModel  # noqa: PLC0415

    vision, text = model_cfg["vision_cfg"], model_cfg["text_cfg"]
    act = "quick_gelu" if model_cfg.get("quick_gelu") else "gelu"
    config = CLIPConfig(
        text_config={
            "vocab_size": text["vocab_size"],
            "hidden_size": text["width"],
            "intermediate_size": int(text["width"] * text.get("mlp_ratio", 4.0)),
            "num_hidden_layers": text["layers"],
            "num_attention_heads": text["heads"],
            "max_position_embeddings": text["context_length"],
            "hidden_act": act,
            "bos_token_id": eos_token_id - 1,
            "eos_token_id": eos_token_id,
            "pad_token_id": eos_token_id,
        },
        vision_config={
            "hidden_size": vision["width"],
            "intermediate_size": int(vision["width"] * vision.get("mlp_ratio", 4.0)),
            "num_hidden_layers": vision["layers"],
            "num_attention_heads": vision["width"] // vision.get("head_width", 64),
            "image_size": vision["image_size"],
            "patch_size": vision["patch_size"],
            "hidden_act": act,
        },
        projection_dim=model_cfg["embed_dim"],
    )
    out: dict[str, Any] = {
        "logit_scale": state["logit_scale"],
        "text_projection.weight": state["text_projection"].T,
        "visual_projection.weight": state["visual.proj"].T,
        "text_model.embeddings.token_embedding.weight": state["token_embedding.weight"],
        "text_model.embeddings.position_embedding.weight": state["positional_embedding"],
        "text_model.final_layer_norm.weight": state["ln_final.weight"],
        "text_model.final_layer_norm.bias": state["ln_final.bias"],
        "vision_model.embeddings.class_embedding": state["visual.class_embedding"],
        "vision_model.embeddings.patch_embedding.weight": state["visual.conv1.weight"],
        "vision_model.embeddings.position_embedding.weight": state["visual.positional_embedding"],
        "vision_model.pre_layrnorm.weight": state["visual.ln_pre.weight"],
        "vision_model.pre_layrnorm.bias": state["visual.ln_pre.bias"],
        "vision_model.post_layernorm.weight": state["visual.ln_post.weight"],
        "vision_model.post_layernorm.bias": state["visual.ln_post.bias"],
    }
    for i in range(text["layers"]):
        _hf_block(f"text_model.encoder.layers.{i}", f"transformer.resblocks.{i}", state, out)
    for i in range(vision["layers"]):
        _hf_block(f"vision_model.encoder.layers.{i}", f"visual.transformer.resblocks.{i}", state, out)
    model = CLIPModel(config)
    missing, unexpected = model.load_state_dict(
        {k: v.detach().clone().contiguous() for k, v in out.items()}, strict=False
    )
    # position_ids buffers are not weights; anything else missing is a mapping bug
    missing = [k for k in missing if not k.endswith("position_ids")]
    if missing or unexpected:
        raise RuntimeError(f"open_clip -> transformers mapping incomplete: {missing=} {unexpected=}")
    return model.eval()


def _save_transformers_copy(out_dir: Path, config: dict[str, Any], model: Any) -> None:
    """The same CLIP as a transformers ``CLIPModel`` + ``CLIPProcessor`` dir (full CLIP BPE)."""

    out_dir.mkdir()
    context_length = config["model_cfg"]["text_cfg"]["context_length"]
    image_size = config["model_cfg"]["vision_cfg"]["image_size"]
    tokenizer = _save_clip_processor(out_dir, None, image_size, model_max_length=context_length)
    hf_model = open_clip_to_transformers(config["model_cfg"], model.state_dict(), tokenizer.eos_token_id)
    hf_model.save_pretrained(str(out_dir), safe_serialization=True)


def _synthetic_pool(config: dict[str, Any], preprocess: Any, seed: int) -> tuple[Any, list[int]]:
    """Pre-rendered, preprocessed training images and their caption index."""
    import torch  # noqa: PLC0415

    rng = random.Random(seed)
    training = config["training"]
    tensors, labels = [], []
    for label, (colour, shape, background) in enumerate(all_shape_captions()):
        for _ in range(training["pool_per_caption"]):
            image = render_shape(colour, shape, background, rng, size=training["render_size"])
            tensors.append(preprocess(image))
            labels.append(label)
    return torch.stack(tensors), labels


def _train(
    model: Any,
    pool: Any,
    tokens: Any,
    indices_by_caption: list[list[int]],
    training: dict[str, Any],
    seed: int,
) -> list[float]:
    """Symmetric contrastive training, one image per caption per step; returns the losses."""
    import torch  # noqa: PLC0415

    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=training["learning_rate"], weight_decay=training["weight_decay"]
    )
    steps, warmup = training["steps"], training["warmup_steps"]
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: (
            (step + 1) / warmup
            if step < warmup
            else 0.5 * (1 + math.cos(math.pi * (step - warmup) / (steps - warmup)))
        ),
    )
    targets = torch.arange(len(indices_by_caption))
    model.train()
    losses = []
    for _ in range(steps):
        picks = torch.randint(0, training["pool_per_caption"], (len(targets),), generator=generator)
        batch = pool[[indices_by_caption[c][int(p)] for c, p in enumerate(picks)]]
        image_features = model.encode_image(batch, normalize=True)
        text_features = model.encode_text(tokens, normalize=True)
        logits = model.logit_scale.exp() * image_features @ text_features.T
        loss = (
            torch.nn.functional.cross_entropy(logits, targets)
            + torch.nn.functional.cross_entropy(logits.T, targets)
        ) / 2
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        losses.append(loss.item())
    model.eval()
    return losses


def forge_trained_clip(out_dir: Path, seed: int, model_dir: Path) -> dict[str, Any]:
    """An open_clip CLIP trained contrastively on synthetic captioned shapes (local-dir format).

    Each step takes one random image of every caption (36 distinct captions, so no false negatives
    in the batch) and minimises the symmetric CLIP loss. Seeded; about a minute on 2 CPU cores.
    """
    import open_clip  # noqa: PLC0415
    import torch  # noqa: PLC0415

    config = TRAINED_CLIP
    training = config["training"]
    model = _new_open_clip(config, seed)
    preprocess = open_clip.image_transform(
        config["model_cfg"]["vision_cfg"]["image_size"],
        is_train=False,
        mean=CLIP_MEAN,
        std=CLIP_STD,
        interpolation="bicubic",
        resize_mode="shortest",
    )
    tokenizer = open_clip.SimpleTokenizer(context_length=config["model_cfg"]["text_cfg"]["context_length"])
    captions = [shape_caption(*combo) for combo in all_shape_captions()]
    tokens = tokenizer(captions)
    pool, labels = _synthetic_pool(config, preprocess, seed)
    indices_by_caption: list[list[int]] = [[] for _ in captions]
    for index, label in enumerate(labels):
        indices_by_caption[label].append(index)

    threads_before = torch.get_num_threads()
    torch.set_num_threads(training["threads"])
    try:
        losses = _train(model, pool, tokens, indices_by_caption, training, seed)
    finally:
        torch.set_num_threads(threads_before)
    _save_open_clip_dir(out_dir, config, model)
    _save_transformers_copy(out_dir / TRANSFORMERS_SUBDIR, config, model)
    return {
        "kind": "open_clip-local-dir",
        "transformers_copy": TRANSFORMERS_SUBDIR,
        "embed_dim": config["model_cfg"]["embed_dim"],
        "parameters": sum(p.numel() for p in model.parameters()),
        "weights": "trained on synthetic captioned shapes",
        "captions": len(captions),
        "steps": training["steps"],
        "final_loss": round(sum(losses[-20:]) / 20, 4),
    }


# ---- tiny-aesthetic ------------------------------------------------------------------------------


def _forge_aesthetic(out_dir: Path, seed: int, input_size: int) -> None:
    import torch  # noqa: PLC0415

    from weights.architectures import AestheticMLP  # noqa: PLC0415

    torch.manual_seed(seed)
    mlp = AestheticMLP(input_size)
    with torch.no_grad():
        # Centre the random predictor on a mid rating so its scores land mid-range, not clipped at 0.
        cast("torch.nn.Linear", mlp.layers[7]).bias.fill_(5.5)
    torch.save(mlp.state_dict(), out_dir / "aesthetic_mlp.pth")


def forge_tiny_aesthetic(out_dir: Path, seed: int, model_dir: Path) -> dict[str, Any]:
    """The published aesthetic-predictor MLP, seeded, for tiny-openclip's embedding width."""
    from weights.forge import ensure_forged  # noqa: PLC0415

    clip_dir = ensure_forged("tiny-openclip", model_dir)
    embed_dim = json.loads((clip_dir / "open_clip_config.json").read_text())["model_cfg"]["embed_dim"]
    _forge_aesthetic(out_dir, seed, embed_dim)
    return {"kind": "aesthetic-mlp", "input_size": embed_dim, "clip": "tiny-openclip", "weights": "random"}


def forge_bench_aesthetic(out_dir: Path, seed: int, model_dir: Path) -> dict[str, Any]:
    """The published aesthetic-predictor MLP at its real input width (768, CLIP ViT-L/14), random."""
    import open_clip  # noqa: PLC0415

    embed_dim = int(open_clip.get_model_config(BENCH_OPENCLIP_ARCH)["embed_dim"])
    _forge_aesthetic(out_dir, seed, embed_dim)
    return {
        "kind": "aesthetic-mlp",
        "input_size": embed_dim,
        "clip": "bench-openclip-l14",
        "weights": "random",
    }


# ---- tiny-vqa ------------------------------------------------------------------------------------

_VQA_CORPUS = [
    'USER: <image>\nDoes this figure show "{}"? Please answer yes or no. ASSISTANT: Yes',
    'USER: <image>\nDoes this figure show "{}"? Please answer yes or no. ASSISTANT: No',
    "a photo of {} in the city at night, cinematic lighting, product shot, close-up",
    "an advertisement storyboard scene: {} with a happy family, sunrise, bright colours",
]


def _train_vqa_tokenizer(vocab_size: int) -> Any:
    """A byte-level BPE (every string encodes; no unknown tokens) with LLaVA's special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers  # noqa: PLC0415

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<unk>", "<s>", "</s>", "<pad>", "<image>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    subjects = [shape_caption(*combo) for combo in all_shape_captions()]
    corpus = [line.format(subject) for line in _VQA_CORPUS for subject in subjects]
    corpus += ["Yes", "No", " Yes", " No", "yes", "no"] * 50
    tokenizer.train_from_iterator(corpus, trainer=trainer)
    return tokenizer


def forge_tiny_vqa(out_dir: Path, seed: int, model_dir: Path) -> dict[str, Any]:
    """A tiny seeded random LLaVA with its processor, in save_pretrained format."""
    return _forge_llava(out_dir, seed, TINY_VQA)


def forge_bench_vqa(out_dir: Path, seed: int, model_dir: Path) -> dict[str, Any]:
    """LLaVA-1.5-7B's architecture (CLIP L/14-336 + 7B Llama) with random fp16 weights (~14 GB)."""
    return _forge_llava(out_dir, seed, BENCH_VQA)


def _forge_llava(out_dir: Path, seed: int, config: dict[str, Any]) -> dict[str, Any]:
    """A seeded random LLaVA (CLIP vision tower + Llama LM) with processor, in save_pretrained format."""
    import torch  # noqa: PLC0415
    from transformers import (  # noqa: PLC0415
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
        PreTrainedTokenizerFast,
    )

    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=_train_vqa_tokenizer(config["tokenizer_vocab_size"]),
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
        model_max_length=config["text"]["max_position_embeddings"],
    )
    tokenizer.add_special_tokens({"additional_special_tokens": ["<image>"]})
    size, patch = config["image_size"], config["patch_size"]
    image_processor = CLIPImageProcessor(
        size={"shortest_edge": size},
        crop_size={"height": size, "width": size},
        image_mean=list(CLIP_MEAN),
        image_std=list(CLIP_STD),
    )
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=patch,
        vision_feature_select_strategy="default",
        chat_template=LLAVA_CHAT_TEMPLATE,
        num_additional_image_tokens=1,  # the CLIP CLS token, dropped by the "default" strategy
    )
    processor.save_pretrained(str(out_dir))
    image_token_id = int(tokenizer.convert_tokens_to_ids("<image>"))  # type: ignore[arg-type]
    llava_config = LlavaConfig(
        vision_config=CLIPVisionConfig(**config["vision"], image_size=size, patch_size=patch),
        text_config=LlamaConfig(
            **config["text"],
            vocab_size=max(len(tokenizer), config.get("vocab_size", 0)),
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        ),
        image_token_index=image_token_id,
        projector_hidden_act="gelu",
        vision_feature_select_strategy="default",
        vision_feature_layer=-2,
        image_seq_length=(size // patch) ** 2,
    )
    torch.manual_seed(seed)
    dtype = _torch_dtype(config.get("save_dtype", "float32"))
    default_dtype = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # build a 7B model directly in half precision (half the memory)
    try:
        model = LlavaForConditionalGeneration(llava_config)
    finally:
        torch.set_default_dtype(default_dtype)
    model.save_pretrained(str(out_dir), safe_serialization=True)
    return {
        "kind": "transformers-llava",
        "architecture": "LlavaForConditionalGeneration",
        "parameters": sum(p.numel() for p in model.parameters()),
        "tokenizer": f"byte-level BPE trained here ({len(tokenizer)} tokens)",
        "weights": "random",
    }
