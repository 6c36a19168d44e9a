"""The forge: builds tiny, seeded models offline, in the real on-disk formats, into a model dir.

Each recipe is a function ``build(out_dir: Path, seed: int, model_dir: Path) -> dict`` that writes
one model into ``out_dir`` (an empty temp dir) and returns extra manifest fields. The forge wraps
every recipe with what they all need: a file lock (Ray replicas may start together), build into a
temp dir then rename (a crash never leaves half a model), a ``forge_manifest.json`` with the recipe
version and seed, and a cache check (an existing model with the same version is not rebuilt).
``model_dir`` lets a recipe depend on another forged model (``ensure_forged``).
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from filelock import FileLock

from weights.profiles import FORGE_PREFIX, ModelSpec

logger = logging.getLogger(__name__)

MANIFEST_NAME = "forge_manifest.json"
DEFAULT_SEED = 1234
MODEL_DIR_ENV = "SCENECHAIN_MODEL_DIR"

# name -> ("module:function", recipe version). Bump the version when a recipe's output changes.
RECIPES: dict[str, tuple[str, int]] = {
    "tiny-sd": ("weights.forge_diffusion:forge_tiny_sd", 1),
    "bench-sd15": ("weights.forge_diffusion:forge_bench_sd15", 1),
    "twin-flux": ("weights.forge_twins:forge_twin_flux", 1),
    "twin-sdxl": ("weights.forge_twins:forge_twin_sdxl", 1),
    "tiny-pickscore": ("weights.forge_scorers:forge_tiny_pickscore", 1),
    "tiny-openclip": ("weights.forge_scorers:forge_tiny_openclip", 1),
    "tiny-vqa": ("weights.forge_scorers:forge_tiny_vqa", 1),
    "tiny-aesthetic": ("weights.forge_scorers:forge_tiny_aesthetic", 1),
    "trained-clip": ("weights.forge_scorers:forge_trained_clip", 1),
    # the toy world: trained on the synthetic shapes (weights.forge_toy), scored by trained-clip
    "toy-sd": ("weights.forge_toy:forge_toy_sd", 3),
    "toy-aesthetic": ("weights.forge_toy:forge_toy_aesthetic", 1),
    "bench-clip-h14": ("weights.forge_scorers:forge_bench_clip_h14", 1),
    "bench-openclip-l14": ("weights.forge_scorers:forge_bench_openclip_l14", 1),
    "bench-vqa": ("weights.forge_scorers:forge_bench_vqa", 1),
    "bench-aesthetic": ("weights.forge_scorers:forge_bench_aesthetic", 1),
    "tiny-llm": ("weights.forge_llm:forge_tiny_llm", 1),
    "smollm2-135m-instruct": ("weights.forge_llm:forge_smollm2", 1),
    "bench-llm-1b": ("weights.forge_llm:forge_bench_llm_1b", 1),
    "twin-pickscore": ("weights.forge_twin_models:forge_twin_pickscore", 1),
    "twin-clip-h14-processor": ("weights.forge_twin_models:forge_twin_clip_h14_processor", 1),
    "twin-openclip-l14": ("weights.forge_twin_models:forge_twin_openclip_l14", 1),
    "twin-aesthetic": ("weights.forge_twin_models:forge_twin_aesthetic", 1),
    "twin-llava15": ("weights.forge_twin_models:forge_twin_llava15", 1),
    "twin-qwen25": ("weights.forge_twin_models:forge_twin_qwen25", 1),
    # gpu-bench: production architectures at full size, config only (weights.random_init builds them)
    "bench-flux-schnell": ("weights.forge_bench_full:forge_bench_flux_schnell", 1),
    "bench-pickscore-h14": ("weights.forge_bench_full:forge_bench_pickscore_h14", 1),
    "bench-openclip-l14-config": ("weights.forge_bench_full:forge_bench_openclip_l14_config", 1),
    "bench-aesthetic-config": ("weights.forge_bench_full:forge_bench_aesthetic_config", 1),
    "bench-llava15-7b": ("weights.forge_bench_full:forge_bench_llava15_7b", 1),
    "bench-qwen25-7b": ("weights.forge_bench_full:forge_bench_qwen25_7b", 1),
    "bench-tiny-random": ("weights.forge_bench_full:forge_bench_tiny_random", 1),
}

Recipe = Callable[[Path, int, Path], dict[str, Any]]


class ForgeError(RuntimeError):
    """A recipe is unknown or failed to build."""


def default_model_dir() -> Path:
    """``$SCENECHAIN_MODEL_DIR`` or ``./.models``, absolute (read at call time, never at import)."""
    return Path(os.environ.get(MODEL_DIR_ENV) or ".models").resolve()


def _load_recipe(name: str) -> tuple[Recipe, int]:
    try:
        target, version = RECIPES[name]
    except KeyError:
        raise ForgeError(f"no forge recipe named {name!r}; known: {sorted(RECIPES)}") from None
    module_name, function_name = target.split(":")
    return getattr(importlib.import_module(module_name), function_name), version


def read_manifest(path: Path) -> dict[str, Any] | None:
    """The manifest of a forged model dir, or None when it is not a complete forged model."""
    manifest_path = path / MANIFEST_NAME
    if not manifest_path.is_file():
        return None
    return json.loads(manifest_path.read_text())


def ensure_forged(name: str, model_dir: Path | None = None, seed: int = DEFAULT_SEED) -> Path:
    """Return the dir of forged model ``name``, building it first if missing or outdated."""
    model_dir = (model_dir or default_model_dir()).resolve()
    target = model_dir / name
    recipe, version = _load_recipe(name)
    manifest = read_manifest(target)
    if manifest and manifest.get("version") == version and manifest.get("seed") == seed:
        return target
    model_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(str(model_dir / f".{name}.lock")):
        manifest = read_manifest(target)  # another process may have built it while we waited
        if manifest and manifest.get("version") == version and manifest.get("seed") == seed:
            return target
        tmp_dir = model_dir / f".{name}.tmp-{os.getpid()}"
        shutil.rmtree(tmp_dir, ignore_errors=True)
        tmp_dir.mkdir(parents=True)
        started = time.perf_counter()
        logger.info("forging %s (seed %d) into %s", name, seed, target)
        try:
            extra = recipe(tmp_dir, seed, model_dir) or {}
        except Exception as exc:
            shutil.rmtree(tmp_dir, ignore_errors=True)
            raise ForgeError(f"forging {name!r} failed: {exc}") from exc
        manifest = {
            "name": name,
            "version": version,
            "seed": seed,
            "seconds": round(time.perf_counter() - started, 2),
            **extra,
        }
        (tmp_dir / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, sort_keys=True))
        shutil.rmtree(target, ignore_errors=True)
        tmp_dir.rename(target)
    return target


def resolve_source(source: str, model_dir: Path | None = None) -> str:
    """A loadable source: forge references become the forged dir (built if needed), else unchanged."""
    if source.startswith(FORGE_PREFIX):
        return str(ensure_forged(source[len(FORGE_PREFIX) :], model_dir))
    return source


def resolve_spec(spec: ModelSpec, model_dir: Path | None = None) -> ModelSpec:
    """The same spec with its source and any forge-reference options resolved to local paths, and hub
    references found in the model dir's hub cache (``scenechain fetch-models``) made local paths too."""
    from weights.fetch import resolve_from_cache  # noqa: PLC0415

    model_dir = (model_dir or default_model_dir()).resolve()
    options = {
        key: resolve_source(value, model_dir) if isinstance(value, str) else value
        for key, value in spec.options.items()
    }
    # model_copy keeps the catalogue fields (license, size) of the spec
    forged = spec.model_copy(update={"source": resolve_source(spec.source, model_dir), "options": options})
    return resolve_from_cache(forged, model_dir)


def forge_profile(profile_name: str, model_dir: Path | None = None) -> dict[str, Path]:
    """Forge every model a profile needs; returns name -> dir."""
    from weights.profiles import get_profile  # noqa: PLC0415

    profile = get_profile(profile_name)
    return {name: ensure_forged(name, model_dir) for name in profile.forged_names()}
