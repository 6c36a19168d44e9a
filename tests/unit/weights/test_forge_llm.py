"""LLM forge recipes: dirs that transformers loads (vLLM: tests/integration/test_vllm_cpu.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from weights.forge import ensure_forged, read_manifest
from weights.forge_llm import TINY_LLM_CONFIG, forge_bench_llm_1b, smollm2_gguf_path


@pytest.fixture(scope="module")
def tiny_llm_fresh(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ensure_forged("tiny-llm", tmp_path_factory.mktemp("models"))


def test_tiny_llm_is_a_seeded_llama_with_the_real_smollm2_tokenizer(tiny_llm_fresh: Path) -> None:
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from weights.forge_llm import _llama_config

    config = json.loads((tiny_llm_fresh / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"] and config["head_dim"] == 64
    assert (
        config["num_hidden_layers"] == TINY_LLM_CONFIG["num_hidden_layers"] and config["vocab_size"] == 49152
    )
    manifest = read_manifest(tiny_llm_fresh)
    assert manifest is not None and manifest["seed"] == 1234 and manifest["weights"] == "random"
    # deterministic: rebuilding from the same seed gives the same tensors
    torch.manual_seed(1234)
    rebuilt = AutoModelForCausalLM.from_config(_llama_config(TINY_LLM_CONFIG, 49152), dtype=torch.float32)
    saved = load_file(str(tiny_llm_fresh / "model.safetensors"))
    for name, tensor in rebuilt.state_dict().items():
        if name in saved:
            assert torch.equal(saved[name], tensor), name
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_llm_fresh))
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    assert text.endswith("<|im_start|>assistant\n") and tokenizer.eos_token == "<|im_end|>"
    model = AutoModelForCausalLM.from_pretrained(str(tiny_llm_fresh))
    inputs = tokenizer(text, return_tensors="pt")
    output = model.generate(**inputs, max_new_tokens=4, do_sample=False)
    assert output.shape[1] == inputs["input_ids"].shape[1] + 4


def test_smollm2_gguf_ships_with_the_package() -> None:
    path = smollm2_gguf_path()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.stat().st_size > 50_000_000


def test_bench_llm_1b_is_config_only(tmp_path: Path) -> None:
    extra = forge_bench_llm_1b(tmp_path, 0, tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert (
        extra["load_format"] == "dummy"
        and config["hidden_size"] == 2048
        and config["num_hidden_layers"] == 16
    )
    assert not list(tmp_path.glob("*.safetensors")) and (tmp_path / "tokenizer.json").is_file()


@pytest.mark.slow
def test_smollm2_dir_holds_the_real_instruct_model() -> None:
    """Real weights: greedy decoding answers a factual question (a random model cannot)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_dir = ensure_forged("smollm2-135m-instruct")
    manifest = read_manifest(model_dir)
    assert manifest is not None and manifest["license"] == "Apache-2.0"
    assert json.loads((model_dir / "config.json").read_text())["num_hidden_layers"] == 30
    assert "quantization_config" not in json.loads((model_dir / "config.json").read_text())
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(model_dir))
    inputs = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    output = model.generate(**inputs, max_new_tokens=16, do_sample=False)
    answer = tokenizer.decode(output[0][inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    assert "Paris" in answer
