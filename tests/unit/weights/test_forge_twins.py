"""The forged twins of the production diffusion models, and the licensed catalogue.

The twins must be what production loads, at toy size: the same pipeline classes through diffusers'
AutoPipelines, the same component classes and tokenizer formats (T5 SentencePiece for Flux, two CLIP
tokenizers for SDXL), the same scheduler settings; the twin profiles must carry production's options
field for field, so an option added to production without its twin fails here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from weights.forge import ensure_forged, read_manifest
from weights.profiles import (
    PROFILES,
    ROLES,
    TWIN_OF,
    TWIN_OPTION_GAPS,
    catalogue_rows,
    format_catalogue_table,
    get_profile,
    main,
    non_commercial_roles,
    twin_differences,
)

# ---- the catalogue: licenses ---------------------------------------------------------------------


def test_every_role_of_every_profile_carries_license_commercial_use_and_size() -> None:
    for profile in PROFILES.values():
        for role in ROLES:
            spec = profile.model(role)
            assert spec.license, f"{profile.name}/{role} has no license"
            assert spec.commercial_use is not None, f"{profile.name}/{role}: commercial use unknown"
            assert spec.size, f"{profile.name}/{role} has no size"


def test_production_is_commercially_usable_and_runs_flux_schnell() -> None:
    production = get_profile("production")
    assert non_commercial_roles(production) == []
    diffusion = production.model("diffusion")
    assert diffusion.source == "black-forest-labs/FLUX.1-schnell"
    assert diffusion.license == "apache-2.0"
    assert diffusion.options["family"] == "flux"
    assert diffusion.options["max_sequence_length"] == 256
    assert production.generation.guidance_scale == 0.0
    assert production.generation.steps == 4


def test_production_sdxl_is_flagged_non_commercial() -> None:
    profile = get_profile("production-sdxl")
    assert profile.model("diffusion").source == "stabilityai/sdxl-turbo"
    assert profile.model("diffusion").license == "sai-nc-community"
    assert non_commercial_roles(profile) == ["diffusion"]
    table = format_catalogue_table(profile)
    assert "WARNING: diffusion (stabilityai/sdxl-turbo) is not licensed for commercial use" in table


def test_an_uncatalogued_license_counts_as_non_commercial() -> None:
    production = get_profile("production")
    models = dict(production.models)
    models["vqa"] = models["vqa"].model_copy(update={"license": None, "commercial_use": None})
    unknown = production.model_copy(update={"models": models})
    assert non_commercial_roles(unknown) == ["vqa"]


def test_catalogue_table_lists_every_role(capsys: pytest.CaptureFixture[str]) -> None:
    for profile in PROFILES.values():
        assert [row.role for row in catalogue_rows(profile)] == list(ROLES)
    assert main(["--table", "production"]) == 0
    printed = capsys.readouterr().out
    for role in ROLES:
        assert f"\n{role} " in printed
    assert "black-forest-labs/FLUX.1-schnell" in printed and "apache-2.0" in printed
    assert "WARNING" not in printed


# ---- twins: production's options field for field -------------------------------------------------


@pytest.mark.parametrize("twin_name", sorted(TWIN_OF))
def test_twin_differs_from_its_production_profile_only_in_model_sources(twin_name: str) -> None:
    twin, production = get_profile(twin_name), get_profile(TWIN_OF[twin_name])
    assert set(twin_differences(twin, production)) <= TWIN_OPTION_GAPS
    # the diffusion role is a full twin: its options are production's, byte for byte
    assert twin.model("diffusion").options == production.model("diffusion").options
    assert twin.device == "cpu" and twin.dtype == "float32"


def test_an_option_added_to_production_only_is_a_twin_difference() -> None:
    production = get_profile("production")
    models = dict(production.models)
    diffusion = models["diffusion"]
    models["diffusion"] = diffusion.model_copy(update={"options": {**diffusion.options, "new_option": 1}})
    changed = production.model_copy(update={"models": models})
    assert "diffusion.options.new_option" in twin_differences(get_profile("twin"), changed)
    faster = production.model_copy(
        update={"generation": production.generation.model_copy(update={"steps": 2})}
    )
    assert "generation.steps" in twin_differences(get_profile("twin"), faster)


# ---- the forged twins: real layout, production loaders --------------------------------------------


@pytest.fixture(scope="module")
def model_dir() -> Path:
    from weights.forge import default_model_dir

    return default_model_dir()


def test_twin_flux_has_the_flux_schnell_layout(model_dir: Path) -> None:
    path = ensure_forged("twin-flux", model_dir)
    index = json.loads((path / "model_index.json").read_text())
    assert index["_class_name"] == "FluxPipeline"
    assert index["transformer"] == ["diffusers", "FluxTransformer2DModel"]
    assert index["text_encoder"] == ["transformers", "CLIPTextModel"]
    assert index["text_encoder_2"] == ["transformers", "T5EncoderModel"]
    assert index["tokenizer"] == ["transformers", "CLIPTokenizer"]
    for name in ("spiece.model", "tokenizer.json", "tokenizer_config.json"):
        assert (path / "tokenizer_2" / name).is_file(), name
    vae = json.loads((path / "vae" / "config.json").read_text())
    assert vae["latent_channels"] == 16
    assert vae["use_quant_conv"] is False and vae["use_post_quant_conv"] is False
    assert (vae["shift_factor"], vae["scaling_factor"]) == (0.1159, 0.3611)
    assert len(vae["block_out_channels"]) == 4  # 8x down-sampling, as in production
    transformer = json.loads((path / "transformer" / "config.json").read_text())
    assert transformer["in_channels"] == 4 * vae["latent_channels"]
    assert sum(transformer["axes_dims_rope"]) == transformer["attention_head_dim"]
    assert transformer["guidance_embeds"] is False  # schnell, not dev
    scheduler = json.loads((path / "scheduler" / "scheduler_config.json").read_text())
    assert scheduler["_class_name"] == "FlowMatchEulerDiscreteScheduler"
    assert scheduler["use_dynamic_shifting"] is False
    manifest = read_manifest(path)
    assert manifest is not None and manifest["twin_of"] == "black-forest-labs/FLUX.1-schnell"


def test_twin_flux_t5_tokenizer_is_a_trained_sentencepiece_unigram(model_dir: Path) -> None:
    import sentencepiece as spm
    from transformers import AutoTokenizer

    path = ensure_forged("twin-flux", model_dir) / "tokenizer_2"
    processor = spm.SentencePieceProcessor(model_file=str(path / "spiece.model"))
    assert (processor.pad_id(), processor.eos_id(), processor.unk_id(), processor.bos_id()) == (0, 1, 2, -1)
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    ids = tokenizer("a red sports car on a coastal road").input_ids
    assert ids[-1] == tokenizer.eos_token_id == 1
    assert tokenizer.unk_token_id not in ids  # real words, real pieces: the model was trained
    assert len(ids) < 20  # whole words and sub-words, not one piece per character
    # the slow SentencePiece model and the converted tokenizer.json agree
    assert ids[:-1] == processor.encode("a red sports car on a coastal road")
    assert "<extra_id_0>" in tokenizer.get_vocab()  # T5's sentinels


def test_twin_sdxl_has_the_sdxl_turbo_layout(model_dir: Path) -> None:
    path = ensure_forged("twin-sdxl", model_dir)
    index = json.loads((path / "model_index.json").read_text())
    assert index["_class_name"] == "StableDiffusionXLPipeline"
    assert index["text_encoder"] == ["transformers", "CLIPTextModel"]
    assert index["text_encoder_2"] == ["transformers", "CLIPTextModelWithProjection"]
    assert index["scheduler"] == ["diffusers", "EulerAncestralDiscreteScheduler"]
    unet = json.loads((path / "unet" / "config.json").read_text())
    encoder = json.loads((path / "text_encoder" / "config.json").read_text())
    encoder_2 = json.loads((path / "text_encoder_2" / "config.json").read_text())
    assert unet["addition_embed_type"] == "text_time"
    assert unet["cross_attention_dim"] == encoder["hidden_size"] + encoder_2["hidden_size"]
    assert (
        unet["projection_class_embeddings_input_dim"]
        == encoder_2["projection_dim"] + 6 * unet["addition_time_embed_dim"]
    )
    tokenizer_2 = json.loads((path / "tokenizer_2" / "tokenizer_config.json").read_text())
    assert tokenizer_2["pad_token"] == "!"
    scheduler = json.loads((path / "scheduler" / "scheduler_config.json").read_text())
    assert scheduler["timestep_spacing"] == "trailing"


def test_twin_sdxl_ships_the_fp16_variant_production_loads_on_cuda(model_dir: Path) -> None:
    import torch
    from diffusers import AutoPipelineForText2Image
    from safetensors import safe_open

    assert get_profile("twin-sdxl").model("diffusion").options["variant"] == "fp16"
    path = ensure_forged("twin-sdxl", model_dir)
    for component in ("unet", "vae", "text_encoder", "text_encoder_2"):
        (variant,) = (path / component).glob("*.fp16.safetensors")
        with safe_open(str(variant), "pt") as weights:
            assert weights.get_tensor(next(iter(weights.keys()))).dtype == torch.float16, component
    pipeline = AutoPipelineForText2Image.from_pretrained(str(path), variant="fp16", dtype=torch.float32)
    assert type(pipeline).__name__ == "StableDiffusionXLPipeline"


@pytest.mark.parametrize(
    ("recipe", "text2img", "img2img"),
    [
        ("twin-flux", "FluxPipeline", "FluxImg2ImgPipeline"),
        ("twin-sdxl", "StableDiffusionXLPipeline", "StableDiffusionXLImg2ImgPipeline"),
    ],
)
def test_twins_load_with_diffusers_auto_pipelines(
    model_dir: Path, recipe: str, text2img: str, img2img: str
) -> None:
    from diffusers import AutoPipelineForImage2Image, AutoPipelineForText2Image

    pipeline = AutoPipelineForText2Image.from_pretrained(str(ensure_forged(recipe, model_dir)))
    assert type(pipeline).__name__ == text2img
    derived = AutoPipelineForImage2Image.from_pipe(pipeline)
    assert type(derived).__name__ == img2img
    # from_pipe shares the components: one copy of the weights
    assert derived.vae is pipeline.vae and derived.text_encoder_2 is pipeline.text_encoder_2


def test_twin_forge_is_deterministic(tmp_path: Path) -> None:
    first = ensure_forged("twin-flux", tmp_path / "a")
    second = ensure_forged("twin-flux", tmp_path / "b")
    for component in ("transformer", "vae", "text_encoder", "text_encoder_2"):
        weights_a = next((first / component).glob("*.safetensors")).read_bytes()
        weights_b = next((second / component).glob("*.safetensors")).read_bytes()
        assert weights_a == weights_b, component
    for name in ("spiece.model", "tokenizer.json"):
        assert (first / "tokenizer_2" / name).read_bytes() == (second / "tokenizer_2" / name).read_bytes()
