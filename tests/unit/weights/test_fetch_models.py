"""`scenechain fetch-models` and loading from its cache, with no model hub reachable.

A fake hub on loopback (tests/infra/hub.py) holds the forged twins under the production profile's
repo ids, next to decoy files no loader reads. fetch-models runs its real download code
(huggingface_hub's snapshot_download / hf_hub_download) against it; the production specs then load
from the cache through the real loaders with HF_HUB_OFFLINE=1 and a dead HF_ENDPOINT.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from infra.hub import DECOY, FakeHub, fake_hub, production_stand_ins

from weights.fetch import (
    DIFFUSERS_PATTERNS,
    PROCESSOR_PATTERNS,
    fetch_models,
    plan_downloads,
    resolve_from_cache,
)
from weights.forge import ensure_forged, resolve_spec
from weights.profiles import get_profile

REPO = Path(__file__).resolve().parents[3]
TWINS = (
    "twin-flux",
    "twin-sdxl",
    "twin-pickscore",
    "twin-clip-h14-processor",
    "twin-openclip-l14",
    "twin-aesthetic",
    "twin-llava15",
    "twin-qwen25",
)

# What each production repo's download must bring (the loader's files), and nothing else.
EXPECTED_FILES = {
    "black-forest-labs/FLUX.1-schnell": {
        "model_index.json",
        "scheduler/scheduler_config.json",
        "text_encoder/config.json",
        "text_encoder/model.safetensors",
        "text_encoder_2/config.json",
        "text_encoder_2/model.safetensors",
        "tokenizer/tokenizer.json",
        "tokenizer/tokenizer_config.json",
        "tokenizer_2/spiece.model",
        "tokenizer_2/tokenizer.json",
        "tokenizer_2/tokenizer_config.json",
        "transformer/config.json",
        "transformer/diffusion_pytorch_model.safetensors",
        "vae/config.json",
        "vae/diffusion_pytorch_model.safetensors",
    },
    "yuvalkirstain/PickScore_v1": {"config.json", "model.safetensors"},
    "laion/CLIP-ViT-H-14-laion2B-s32B-b79K": {
        "config.json",
        "preprocessor_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
    },
    "timm/vit_large_patch14_clip_224.openai": {"open_clip_model.safetensors"},
    "camenduru/improved-aesthetic-predictor": {"sac+logos+ava1-l14-linearMSE.pth"},
    "llava-hf/llava-1.5-7b-hf": {
        "chat_template.jinja",
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "processor_config.json",
        "tokenizer.json",
        "tokenizer_config.json",
    },
    "Qwen/Qwen2.5-7B-Instruct": {
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    },
}


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without the test session's HF_* settings, plus ``extra``."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("HF_", "TRANSFORMERS_"))}
    return {**env, "PYTHONPATH": str(REPO), **extra}


@pytest.fixture(scope="module")
def hub() -> Iterator[FakeHub]:
    forged = {name: ensure_forged(name) for name in TWINS}
    with fake_hub(production_stand_ins(forged)) as running:
        yield running


@pytest.fixture(scope="module")
def fetched(hub: FakeHub, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The production profile fetched by the CLI (a real process, hub online) into a fresh cache."""
    cache = tmp_path_factory.mktemp("model-cache")
    command = ["fetch-models", "--profile", "production", "--to", str(cache), "--endpoint", hub.endpoint]
    result = subprocess.run(
        [sys.executable, "-m", "serve.cli", *command],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return cache, result.stdout


@pytest.fixture
def hub_online(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process talks to the fake hub (the session runs with HF_HUB_OFFLINE=1)."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)


# ---- the plan, as data -------------------------------------------------------------------------------


def test_the_plan_downloads_only_what_each_loader_reads() -> None:
    plan = {entry.role: entry for entry in plan_downloads(get_profile("production"))}
    (flux,) = plan["diffusion"].downloads
    assert flux.repo_id == "black-forest-labs/FLUX.1-schnell"
    assert flux.allow_patterns == DIFFUSERS_PATTERNS  # component folders only, not the root checkpoints
    _, processor = plan["pickscore"].downloads
    assert processor.repo_id == "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"
    assert processor.allow_patterns == PROCESSOR_PATTERNS
    assert not any("safetensors" in p or ".bin" in p for p in processor.allow_patterns)
    # the open_clip "openai" tag maps to the repo open_clip itself downloads from, safetensors first
    (clip,) = plan["clipscore"].downloads
    assert (clip.repo_id, clip.files) == (
        "timm/vit_large_patch14_clip_224.openai",
        ("open_clip_model.safetensors", "open_clip_pytorch_model.bin"),
    )
    # the aesthetic MLP is one file; its CLIP tower is CLIPScore's, fetched once
    (mlp,) = plan["aesthetic"].downloads
    assert mlp.files == ("sac+logos+ava1-l14-linearMSE.pth",)
    assert [entry.license for entry in plan.values()] == [
        "apache-2.0",
        "mit",
        "mit",
        "llama2",
        "apache-2.0",
        "apache-2.0",
    ]


def test_a_variant_downloads_only_the_variant_weights() -> None:
    (entry,) = plan_downloads(get_profile("production-sdxl"), roles=["diffusion"])
    (sdxl,) = entry.downloads
    assert "*/*.fp16.safetensors" in sdxl.allow_patterns
    assert "*/*.safetensors" not in sdxl.allow_patterns
    assert entry.commercial_use is False


def test_forged_profiles_need_no_download() -> None:
    plan = plan_downloads(get_profile("twin"))
    assert all(not entry.downloads and "forge" in entry.note for entry in plan)


# ---- the download, against the fake hub ----------------------------------------------------------------


def test_fetch_models_downloads_the_planned_files_and_no_decoy(
    hub: FakeHub, fetched: tuple[Path, str]
) -> None:
    cache, output = fetched
    for repo_id, expected in EXPECTED_FILES.items():
        assert hub.downloaded(repo_id) == expected, repo_id
        snapshot = next((cache / ("models--" + repo_id.replace("/", "--")) / "snapshots").iterdir())
        on_disk = {p.relative_to(snapshot).as_posix() for p in snapshot.rglob("*") if p.is_file()}
        assert on_disk == expected, repo_id
        assert all((snapshot / name).read_bytes() != DECOY for name in expected)
    assert not hub.downloaded("stabilityai/sdxl-turbo")  # not in the production profile
    # each role's license is printed as it goes
    for line in (
        "diffusion: black-forest-labs/FLUX.1-schnell  license apache-2.0 (commercial use: yes)",
        "vqa: llava-hf/llava-1.5-7b-hf  license llama2 (commercial use: yes)",
    ):
        assert line in output
    assert "WARNING" not in output


def test_a_rerun_resumes_only_what_is_missing(
    hub: FakeHub, fetched: tuple[Path, str], hub_online: None, tmp_path: Path
) -> None:
    import shutil

    cache = tmp_path / "cache"
    shutil.copytree(fetched[0], cache, symlinks=True)
    snapshot = next((cache / "models--black-forest-labs--FLUX.1-schnell" / "snapshots").iterdir())
    lost = snapshot / "vae" / "diffusion_pytorch_model.safetensors"
    lost.resolve().unlink()
    lost.unlink()
    hub.requests.clear()
    fetch_models(get_profile("production"), cache, endpoint=hub.endpoint, echo=lambda line: None)
    gets = [path for method, path in hub.requests if method == "GET" and "/resolve/" in path]
    assert gets == [gets[0]] and gets[0].endswith("/vae/diffusion_pytorch_model.safetensors")
    assert lost.is_file()


def test_a_variant_profile_fetches_fp16_weights_only(hub: FakeHub, hub_online: None, tmp_path: Path) -> None:
    lines: list[str] = []
    fetch_models(
        get_profile("production-sdxl"),
        tmp_path,
        roles=["diffusion"],
        endpoint=hub.endpoint,
        echo=lines.append,
    )
    weights = {name for name in hub.downloaded("stabilityai/sdxl-turbo") if name.endswith(".safetensors")}
    assert weights and all(name.endswith(".fp16.safetensors") for name in weights)
    assert "sd_xl_turbo_1.0_fp16.safetensors" not in weights  # root single-file checkpoint
    assert any(line.startswith("WARNING: diffusion") for line in lines)  # SDXL-Turbo: non-commercial


def test_dry_run_prints_the_plan(capsys: pytest.CaptureFixture[str]) -> None:
    from serve.cli import main

    assert main(["fetch-models", "--to", "unused", "--role", "llm", "--dry-run"]) == 0
    (entry,) = json.loads(capsys.readouterr().out)
    assert entry["downloads"][0]["repo_id"] == "Qwen/Qwen2.5-7B-Instruct"


# ---- loading from the cache ------------------------------------------------------------------------------


def test_hub_references_resolve_to_the_cache(fetched: tuple[Path, str], tmp_path: Path) -> None:
    cache, _ = fetched
    profile = get_profile("production")
    resolved = {role: resolve_spec(spec, cache) for role, spec in profile.models.items()}
    for role in ("diffusion", "pickscore", "vqa", "llm"):
        assert Path(resolved[role].source).is_dir() and Path(resolved[role].source).is_relative_to(cache), (
            role
        )
    assert Path(resolved["pickscore"].options["processor"]).is_relative_to(cache)
    assert resolved["aesthetic"].source.endswith("sac+logos+ava1-l14-linearMSE.pth")
    assert Path(resolved["aesthetic"].source).is_file()
    # open_clip name + "openai" tag -> the checkpoint open_clip would have downloaded, from the cache
    for role, key in (("clipscore", "pretrained"), ("aesthetic", "clip_pretrained")):
        assert resolved[role].options[key].endswith("open_clip_model.safetensors"), role
        assert Path(resolved[role].options[key]).is_file()
    assert resolved["clipscore"].source == "ViT-L-14-quickgelu"  # a model name, not a repo
    # the catalogue fields travel with the spec
    assert resolved["diffusion"].license == "apache-2.0"
    # nothing cached: the spec is unchanged (the library would download it)
    assert resolve_from_cache(profile.models["diffusion"], tmp_path) == profile.models["diffusion"]


_LOAD_OFFLINE = """
import json, sys
from pathlib import Path
from generator.core import DiffusionGenerator, GenerationRequest
from scorers.aesthetic import load_aesthetic_mlp
from scorers.registry import build_scorer
from weights.forge import resolve_spec
from weights.profiles import GenerationDefaults, get_profile
from PIL import Image

cache = Path(sys.argv[1])
profile = get_profile("production")
defaults = GenerationDefaults(steps=1, guidance_scale=0.0, width=64, height=64, strength=0.5)
generator = DiffusionGenerator(profile.model("diffusion"), defaults, device="cpu", model_dir=cache)
result = generator.generate(GenerationRequest(prompt="a red bike light", seeds=[1]))
image = Image.new("RGB", (64, 64), (200, 30, 30))
pickscore = build_scorer("pickscore", profile.model("pickscore"), device="cpu", model_dir=cache)
vqa = build_scorer("vqa", profile.model("vqa"), device="cpu", model_dir=cache)
mlp = load_aesthetic_mlp(resolve_spec(profile.model("aesthetic"), cache).source, "cpu")
print(json.dumps({
    "pipeline": type(generator.text2img).__name__,
    "images": len(result.images),
    "pickscore": pickscore.score("a red square", [image]).normalized,
    "vqa": vqa.score("a red square", [image]).normalized,
    "aesthetic_input": mlp.input_size,
}))
"""


def test_production_specs_load_offline_from_the_cache(fetched: tuple[Path, str]) -> None:
    cache, _ = fetched
    env = clean_env(
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        HF_ENDPOINT="http://127.0.0.1:9",  # nothing listens: any hub call would fail
        HF_HUB_CACHE=str(cache.parent / "empty-default-cache"),
        SCENECHAIN_MODEL_DIR=str(cache),
    )
    result = subprocess.run(
        [sys.executable, "-c", _LOAD_OFFLINE, str(cache)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded["pipeline"] == "FluxPipeline"  # FLUX.1-schnell's pipeline class, from the hub id
    assert loaded["images"] == 1
    assert len(loaded["pickscore"]) == 1 and len(loaded["vqa"]) == 1
    assert loaded["aesthetic_input"] > 0


def test_without_the_cache_the_hub_id_does_not_load_offline(tmp_path: Path) -> None:
    """The control: the same spec with an empty model dir goes to the hub, which is offline."""
    from diffusers import AutoPipelineForText2Image

    spec = resolve_spec(get_profile("production").model("diffusion"), tmp_path)
    assert spec.source == "black-forest-labs/FLUX.1-schnell"
    with pytest.raises(Exception, match=r"(?i)offline|connect|does not appear to have"):
        AutoPipelineForText2Image.from_pretrained(spec.source, cache_dir=tmp_path)


def test_an_s3_target_needs_a_staging_dir(capsys: pytest.CaptureFixture[str]) -> None:
    from serve.cli import main

    assert main(["fetch-models", "--to", "s3://bucket/models"]) == 2
    assert "--staging" in capsys.readouterr().err
