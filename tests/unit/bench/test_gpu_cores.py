"""gpu-bench on the CPU: config-only dirs, random init from config, and the GPU script's dry run.

The GPU numbers come only from a GPU (``scripts/gpu_run.sh``); here the same code runs at the tiny
twins' sizes: ``build_random`` builds models whose parameter counts are the configs' (and the twins'),
every model runs a forward, and ``python -m bench.gpu_cores --dry-run-cpu`` goes end to end without
importing Ray or vLLM.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from weights.forge import RECIPES, ensure_forged, read_manifest
from weights.forge_bench_full import (
    FULL_FLUX,
    FULL_LLAVA15,
    FULL_OPENCLIP_L14,
    FULL_QWEN25,
    TINY_RANDOM_DIRS,
    meta_parameters,
)
from weights.profiles import FORGE_PREFIX, ROLES, get_profile
from weights.random_init import build_random, kind_of, open_clip_transforms

REPO = Path(__file__).resolve().parents[3]
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pth", ".pt", ".ckpt", ".gguf")
# the twin each tiny config-only dir is a config copy of (same parameter count)
TWIN_OF_TINY = {
    "flux": "twin-flux",
    "pickscore": "twin-pickscore",
    "openclip": "twin-openclip-l14",
    "llava": "twin-llava15",
    "qwen": "twin-qwen25",
}


@pytest.fixture(scope="module")
def tiny_dir() -> Path:
    return ensure_forged("bench-tiny-random")


def _parameters(model: Any) -> int:
    import torch

    if hasattr(model, "components"):  # a diffusers pipeline
        modules = [m for m in model.components.values() if isinstance(m, torch.nn.Module)]
        return sum(p.numel() for m in modules for p in m.parameters())
    return sum(p.numel() for p in model.parameters())


# ---- config-only dirs --------------------------------------------------------------------------------


def test_config_only_dirs_hold_no_weights(tiny_dir: Path) -> None:
    manifest = read_manifest(tiny_dir)
    assert manifest is not None and manifest["random_init"] is True
    weights = [p for p in tiny_dir.rglob("*") if p.suffix in WEIGHT_SUFFIXES]
    assert weights == []
    assert sorted(manifest["parts"]) == sorted(TINY_RANDOM_DIRS)


@pytest.mark.parametrize("name", TINY_RANDOM_DIRS)
def test_random_init_builds_the_configs_parameter_count_and_runs(tiny_dir: Path, name: str) -> None:
    import torch

    manifest = read_manifest(tiny_dir)
    assert manifest is not None
    model = build_random(tiny_dir / name, "cpu", "float32", seed=0)
    count = _parameters(model)
    assert count == manifest["parts"][name]  # counted from the config on the meta device at forge time
    if name in TWIN_OF_TINY:  # and equal to the twin built from the same config with weights
        twin = read_manifest(ensure_forged(TWIN_OF_TINY[name]))
        assert twin is not None and count == twin["parameters"]
    assert all(p.device.type == "cpu" and p.dtype == torch.float32 for p in _modules_parameters(model))
    _forward(name, model, tiny_dir / name)


def _modules_parameters(model: Any) -> list[Any]:
    import torch

    if hasattr(model, "components"):
        return [
            p for m in model.components.values() if isinstance(m, torch.nn.Module) for p in m.parameters()
        ]
    return list(model.parameters())


def _forward(name: str, model: Any, path: Path) -> None:
    import torch
    from PIL import Image

    with torch.inference_mode():
        if name == "flux":
            # oneDNN's first-call kernel selection costs seconds on CPU (generator.core turns it off too)
            torch.backends.mkldnn.enabled = False  # type: ignore[assignment]
            out = model(
                "a red car",
                num_inference_steps=1,
                height=32,
                width=32,
                max_sequence_length=16,
                output_type="np",
            )
            assert out.images.shape == (1, 32, 32, 3)
        elif name == "pickscore":
            out = model(
                input_ids=torch.tensor([[49406, 320, 49407]]), pixel_values=torch.zeros(1, 3, 224, 224)
            )
            assert out.logits_per_image.shape == (1, 1)
        elif name == "openclip":
            preprocess, tokenizer, embed_dim = open_clip_transforms(path)
            image = model.encode_image(preprocess(Image.new("RGB", (64, 64))).unsqueeze(0))
            text = model.encode_text(tokenizer(["a red car"]))
            assert image.shape == text.shape == (1, embed_dim)
        elif name == "aesthetic":
            assert model(torch.randn(2, model.input_size)).shape == (2, 1)
        elif name == "llava":
            from transformers import AutoProcessor

            processor = AutoProcessor.from_pretrained(str(path))
            inputs = processor(
                images=[Image.new("RGB", (64, 64))],
                text=["USER: <image>\nA car? ASSISTANT:"],
                return_tensors="pt",
            )
            logits = model(**inputs, return_dict=True).logits
            assert logits.shape[0] == 1 and logits.shape[-1] == model.config.text_config.vocab_size
        else:  # qwen
            logits = model(input_ids=torch.tensor([[1, 2, 3]])).logits
            assert logits.shape == (1, 3, model.config.vocab_size)


def test_kind_of_a_dir_without_a_config_is_a_clear_error(tmp_path: Path) -> None:
    from weights.random_init import RandomInitError

    with pytest.raises(RandomInitError, match=r"holds no model_index\.json"):
        kind_of(tmp_path)


# ---- full size: production's architectures, counted on the meta device -----------------------------


def test_full_size_configs_have_production_parameter_counts() -> None:
    import open_clip
    from diffusers import FluxTransformer2DModel
    from transformers import Qwen2Config, Qwen2ForCausalLM, T5Config, T5EncoderModel

    flux = meta_parameters(lambda: FluxTransformer2DModel(**FULL_FLUX["transformer"]))
    t5 = meta_parameters(lambda: T5EncoderModel(T5Config(vocab_size=32128, **FULL_FLUX["text_encoder_2"])))
    qwen_config = Qwen2Config(vocab_size=FULL_QWEN25["model_vocab_size"], **FULL_QWEN25["model"])
    qwen = meta_parameters(lambda: Qwen2ForCausalLM(qwen_config))
    assert round(flux / 1e9, 1) == 11.9  # FLUX.1-schnell's transformer
    assert round(t5 / 1e9, 2) == 4.76  # T5-XXL's encoder
    assert round(qwen / 1e9, 2) == 7.62  # Qwen2.5-7B
    assert FULL_LLAVA15["text"]["hidden_size"] == 4096 and FULL_LLAVA15["vision"]["num_hidden_layers"] == 24
    assert FULL_OPENCLIP_L14["model_cfg"] == open_clip.get_model_config("ViT-L-14-quickgelu")


FULL_RECIPES = {  # recipe -> billions of parameters of the production model
    "bench-flux-schnell": 16.86,  # 11.89 transformer + 4.76 T5-XXL + 0.12 CLIP-L + 0.08 VAE
    "bench-pickscore-h14": 0.99,
    "bench-openclip-l14-config": 0.43,
    "bench-aesthetic-config": 0.0,
    "bench-llava15-7b": 7.06,
    "bench-qwen25-7b": 7.62,
}


@pytest.fixture(scope="module")
def full_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gpu-bench-models")


@pytest.mark.parametrize(("recipe", "billions"), sorted(FULL_RECIPES.items()))
def test_full_size_dirs_are_configs_only_and_build_on_the_target_device(
    full_model_dir: Path, recipe: str, billions: float
) -> None:
    """The full-size path at full size: every parameter is created on the target device, in its dtype
    (the meta device stands in for the GPU: nothing is allocated, nothing touches the CPU)."""
    import torch

    path = ensure_forged(recipe, full_model_dir)
    manifest = read_manifest(path)
    assert manifest is not None and manifest["random_init"] is True
    assert round(manifest["parameters"] / 1e9, 2) == billions
    assert [p for p in path.rglob("*") if p.suffix in WEIGHT_SUFFIXES] == []
    model = build_random(path, "meta", "bfloat16")
    params = _modules_parameters(model)
    assert sum(p.numel() for p in params) == manifest["parameters"]
    assert {p.device.type for p in params} == {"meta"}
    assert {p.dtype for p in params} == {torch.bfloat16}


# ---- the gpu-bench profile ----------------------------------------------------------------------------

# What gpu-bench may change beyond the sources: random_init itself, and vLLM's spelling of it.
RANDOM_INIT_KEYS = {"random_init", "engine_kwargs"}


def test_gpu_bench_options_are_productions_except_sources_and_random_init() -> None:
    bench, production = get_profile("gpu-bench"), get_profile("production")
    assert set(bench.models) == set(production.models) == set(ROLES)
    for role in ROLES:
        ours, theirs = bench.model(role).options, production.model(role).options
        assert bench.model(role).source.startswith(FORGE_PREFIX), role
        for key in sorted(set(ours) | set(theirs)):
            if key in RANDOM_INIT_KEYS:
                continue
            value = ours.get(key)
            if isinstance(value, str) and value.startswith(FORGE_PREFIX):
                continue  # a source: the config-only dir (or an exact processor twin)
            assert key in theirs and value == theirs[key], f"{role}.options.{key}"
    assert bench.model("diffusion").options == {**production.model("diffusion").options, "random_init": True}
    llm = bench.model("llm").options
    assert llm == {
        **production.model("llm").options,
        "random_init": True,
        "engine_kwargs": {"load_format": "dummy"},
    }
    for field in ("steps", "guidance_scale", "strength"):
        assert getattr(bench.generation, field) == getattr(production.generation, field)
    assert bench.dtype == production.dtype and bench.device == "cuda"


def test_gpu_bench_forges_only_config_only_recipes() -> None:
    for name in get_profile("gpu-bench").forged_names():
        module = RECIPES[name][0]
        assert module.startswith("weights.forge_bench_full:") or name == "twin-clip-h14-processor", name


# ---- the GPU script, end to end on the CPU ----------------------------------------------------------


def test_gpu_script_dry_run_end_to_end_without_ray(tmp_path: Path, tiny_dir: Path) -> None:
    out = tmp_path / "gpu_cores.json"
    code = (
        "import json, runpy, sys\n"
        f"sys.argv = ['bench.gpu_cores', '--dry-run-cpu', '--out', {str(out)!r}, '--llm-tokens', '12']\n"
        "try:\n"
        "    runpy.run_module('bench.gpu_cores', run_name='__main__')\n"
        "except SystemExit as exc:\n"
        "    code = exc.code\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('ray', 'vllm', 'serve', 'fastapi'))\n"
        "print('EXIT', code, 'HEAVY', json.dumps(heavy))\n"
    )
    env = {**os.environ, "SCENECHAIN_MODEL_DIR": str(tiny_dir.parent)}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=600
    )
    assert "EXIT 0 HEAVY []" in done.stdout, done.stdout[-2000:] + done.stderr[-4000:]
    report = json.loads(out.read_text())
    assert report["mode"].startswith("cpu-dry-run") and report["errors"] == {} and report["skipped"] == []
    diffusion = report["diffusion"]
    assert diffusion["pipeline"] == "FluxPipeline" and diffusion["steps"] == 4
    assert [b["batch"] for b in diffusion["batches"]] == [1, 4, 8]
    assert [b["images_per_call"] for b in diffusion["batches"]] == [[1], [4], [8]]
    for batch in diffusion["batches"]:
        assert batch["seconds_per_image"] > 0 and batch["images_per_s"] > 0
        assert "peak_gpu_memory_gib" in batch
    scorers = report["scorers"]
    assert scorers["images"] == 8 and sorted(scorers["scorers"]) == sorted(
        ("pickscore", "clipscore", "vqa", "aesthetic")
    )
    assert all(s["seconds"] > 0 and s["parameters"] > 0 for s in scorers["scorers"].values())
    llm = report["llm"]
    assert 0 < llm["new_tokens"] <= 12 and llm["tokens_per_s"] > 0 and llm["parameters"] > 0
