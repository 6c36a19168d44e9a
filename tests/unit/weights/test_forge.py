"""The model catalogue and the offline forge: deterministic, cached, in the real formats."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from weights.clip_tokenizer import save_clip_tokenizer
from weights.forge import RECIPES, ForgeError, ensure_forged, read_manifest, resolve_source
from weights.profiles import PROFILES, UnknownProfileError, get_profile


def test_every_forged_model_a_profile_names_has_a_recipe() -> None:
    for profile in PROFILES.values():
        for name in profile.forged_names():
            assert name in RECIPES, f"profile {profile.name} needs unknown recipe {name}"


def test_unknown_profile_error_lists_the_valid_names() -> None:
    with pytest.raises(UnknownProfileError, match="production"):
        get_profile("nope")


def test_unknown_recipe_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ForgeError, match="no forge recipe named 'nope'"):
        ensure_forged("nope", tmp_path)


def test_hub_ids_pass_through_unchanged() -> None:
    assert resolve_source("stabilityai/sdxl-turbo") == "stabilityai/sdxl-turbo"


def test_forge_is_deterministic_and_cached(tmp_path: Path) -> None:
    first = ensure_forged("tiny-sd", tmp_path / "a")
    second = ensure_forged("tiny-sd", tmp_path / "b")
    for component in ("unet", "vae", "text_encoder"):
        weights_a = next((first / component).glob("*.safetensors")).read_bytes()
        weights_b = next((second / component).glob("*.safetensors")).read_bytes()
        assert weights_a == weights_b, component
    manifest = read_manifest(first)
    assert manifest is not None and manifest["seed"] == 1234 and manifest["format"] == "diffusers"
    stamp = (first / "forge_manifest.json").stat().st_mtime_ns
    assert ensure_forged("tiny-sd", tmp_path / "a") == first
    assert (first / "forge_manifest.json").stat().st_mtime_ns == stamp  # not rebuilt
    assert not list((tmp_path / "a").glob(".tiny-sd.tmp-*"))  # no half-built leftovers


def test_different_seed_gives_different_weights(tmp_path: Path) -> None:
    base = ensure_forged("tiny-sd", tmp_path / "a", seed=1)
    other = ensure_forged("tiny-sd", tmp_path / "b", seed=2)
    assert (
        next((base / "unet").glob("*.safetensors")).read_bytes()
        != next((other / "unet").glob("*.safetensors")).read_bytes()
    )


def test_tiny_sd_loads_with_diffusers_own_auto_pipelines(tmp_path: Path) -> None:
    from diffusers import AutoPipelineForImage2Image, AutoPipelineForText2Image

    path = ensure_forged("tiny-sd", tmp_path)
    index = json.loads((path / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionPipeline"
    text2img = AutoPipelineForText2Image.from_pretrained(str(path))
    img2img = AutoPipelineForImage2Image.from_pipe(text2img)
    assert type(img2img).__name__ == "StableDiffusionImg2ImgPipeline"


def test_clip_tokenizer_built_offline_matches_open_clip(tmp_path: Path) -> None:
    import open_clip
    from transformers import CLIPTokenizer

    save_clip_tokenizer(tmp_path)
    ours = CLIPTokenizer.from_pretrained(str(tmp_path))
    text = "a red circle on a white background"
    reference = open_clip.get_tokenizer("ViT-B-32")([text])[0].tolist()
    ids = ours(text).input_ids
    assert ids == reference[: len(ids)]
    assert len(ours) == 49408
