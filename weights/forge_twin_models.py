"""Forge recipes for the *twins* of the production scorer and LLM checkpoints.

A twin is the production architecture at toy size: seeded random weights, tiny widths and depths, but
the production checkpoint's on-disk layout, tokenizer format and interface (image size, patch size,
embedding width, special tokens, chat template), so the ``twin`` profile runs every production loader
with production's options; only the source differs.

- ``twin-pickscore``: a transformers ``CLIPModel`` saved like ``yuvalkirstain/PickScore_v1`` (CLIP
  ViT-H/14's config keys: GELU, 224 px, patch 14, logit scale 100), model files only.
- ``twin-clip-h14-processor``: the processor repo ``laion/CLIP-ViT-H-14-laion2B-s32B-b79K`` as PickScore
  reads it: its legacy ``preprocessor_config.json`` (224 px, crop, OpenAI mean/std), the full CLIP BPE
  tokenizer files and a ``config.json`` naming the model type.
- ``twin-openclip-l14``: an open_clip ``ViT-L-14-quickgelu`` checkpoint (``open_clip_model.safetensors``;
  QuickGELU, 224 px, patch 14, 768-d embedding, CLIP BPE) beside the ``open_clip_config.json`` that
  says how narrow and shallow the twin is; loaded by name with ``pretrained=<this dir>`` (see
  ``scorers.clipscore.open_clip_pretrained``).
- ``twin-aesthetic``: the LAION aesthetic MLP (768-d input, ``layers.*`` keys) as a ``.pth``.
- ``twin-llava15``: ``LlavaForConditionalGeneration`` in llava-hf/llava-1.5-7b-hf's layout: CLIP vision
  tower (336 px, patch 14, QuickGELU, feature layer -2), Llama text model, ``multi_modal_projector``,
  ``image_token_index`` = the first added token; a ``LlavaProcessor`` with its ``CLIPImageProcessor``,
  a Llama (SentencePiece-style BPE, byte fallback) tokenizer trained here with ``<image>`` / ``<pad>``
  added, and llava-1.5's chat template ("USER: <image>\\n... ASSISTANT:").
- ``twin-qwen25``: ``Qwen2ForCausalLM`` with a Qwen2 byte-level BPE tokenizer trained here, Qwen2.5's
  22 added tokens in their order and Qwen2.5-7B-Instruct's chat template (ChatML with the default
  system prompt) in ``tokenizer_config.json``; ``generation_config.json`` as Qwen2.5's.

Tokenizers are trained on a fixed corpus, single-threaded, so forging is deterministic.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from weights.clip_tokenizer import save_clip_tokenizer
from weights.forge_scorers import CLIP_MEAN, CLIP_STD, _forge_aesthetic

OPENCLIP_ARCH = "ViT-L-14-quickgelu"
OPENCLIP_CHECKPOINT = "open_clip_model.safetensors"
OPENCLIP_CONFIG = "open_clip_config.json"

# ---- configs (data) ------------------------------------------------------------------------------

# PickScore_v1 = CLIP ViT-H/14 (GELU, 224 px, patch 14, context 77, CLIP BPE); widths and depths tiny.
# logit_scale: PickScore_v1's trained value ln(100), so production's calibration 18–24 applies as is.
TWIN_PICKSCORE: dict[str, Any] = {
    "projection_dim": 32,
    "logit_scale_init_value": 4.6052,
    "text": {
        "hidden_size": 32,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "max_position_embeddings": 77,
        "hidden_act": "gelu",
        "layer_norm_eps": 1e-5,
    },
    "vision": {
        "hidden_size": 32,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "image_size": 224,
        "patch_size": 14,
        "hidden_act": "gelu",
        "layer_norm_eps": 1e-5,
    },
}

# laion/CLIP-ViT-H-14-laion2B-s32B-b79K's preprocessor_config.json (the legacy feature-extractor form).
LAION_H14_PREPROCESSOR: dict[str, Any] = {
    "crop_size": 224,
    "do_center_crop": True,
    "do_normalize": True,
    "do_resize": True,
    "feature_extractor_type": "CLIPFeatureExtractor",
    "image_mean": list(CLIP_MEAN),
    "image_std": list(CLIP_STD),
    "resample": 3,
    "size": 224,
}

# open_clip's ViT-L-14-quickgelu with narrow, shallow towers; embed_dim stays 768 (the aesthetic MLP's
# input), and so do the image size, patch size, QuickGELU, context length and vocabulary.
TWIN_OPENCLIP_L14: dict[str, Any] = {
    "model_cfg": {
        "embed_dim": 768,
        "quick_gelu": True,
        "vision_cfg": {"image_size": 224, "layers": 2, "width": 64, "head_width": 32, "patch_size": 14},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
    },
    "preprocess_cfg": {
        "mean": list(CLIP_MEAN),
        "std": list(CLIP_STD),
        "interpolation": "bicubic",
        "resize_mode": "shortest",
    },
}
AESTHETIC_INPUT_SIZE = 768  # CLIP ViT-L/14's embedding width

# llava-hf/llava-1.5-7b-hf: CLIP ViT-L/14-336 (QuickGELU) + Llama-2 (SiLU, RMSNorm 1e-5, 4k context).
TWIN_LLAVA15: dict[str, Any] = {
    "tokenizer_vocab_size": 1000,
    "image_size": 336,
    "patch_size": 14,
    "vision": {
        "hidden_size": 32,
        "intermediate_size": 128,
        "num_hidden_layers": 3,
        "num_attention_heads": 2,
        "hidden_act": "quick_gelu",
        "projection_dim": 32,
        "layer_norm_eps": 1e-5,
    },
    "text": {
        "hidden_size": 64,
        "intermediate_size": 172,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 2,
        "max_position_embeddings": 4096,
        "rms_norm_eps": 1e-5,
        "hidden_act": "silu",
        "tie_word_embeddings": False,
    },
}
# llava-1.5's processor: the <image> token expands to (336 / 14)² = 576 patch features (CLS dropped).
LLAVA15_PREPROCESSOR: dict[str, Any] = {
    "crop_size": {"height": 336, "width": 336},
    "do_center_crop": True,
    "do_convert_rgb": True,
    "do_normalize": True,
    "do_rescale": True,
    "do_resize": True,
    "image_mean": list(CLIP_MEAN),
    "image_std": list(CLIP_STD),
    "resample": 3,
    "rescale_factor": 1 / 255,
    "size": {"shortest_edge": 336},
}
# llava-hf/llava-1.5-7b-hf's chat_template.json.
LLAVA15_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] != 'system' %}{{ message['role'].upper() + ': '}}"
    "{% endif %}{# Render all images first #}{% for content in message['content'] | "
    "selectattr('type', 'equalto', 'image') %}{{ '<image>\n' }}{% endfor %}{# Render all text next #}"
    "{% if message['role'] != 'assistant' %}{% for content in message['content'] | "
    "selectattr('type', 'equalto', 'text') %}{{ content['text'] + ' '}}{% endfor %}{% else %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', 'text') %}{% generation %}"
    "{{ content['text'] + ' '}}{% endgeneration %}{% endfor %}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)

# Qwen2.5-7B-Instruct's config.json at toy width; head_dim 64 because vLLM's CPU attention needs it.
TWIN_QWEN25: dict[str, Any] = {
    "tokenizer_vocab_size": 1200,
    "model": {
        "hidden_size": 128,
        "intermediate_size": 352,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "head_dim": 64,
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
# Qwen2.5's added tokens, in id order after the BPE vocabulary; the first 14 are special.
QWEN25_ADDED_TOKENS: tuple[str, ...] = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
    "<tool_call>",
    "</tool_call>",
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    "<|fim_pad|>",
    "<|repo_name|>",
    "<|file_sep|>",
)
QWEN25_SPECIAL_COUNT = 14
QWEN25_DEFAULT_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."
# Qwen2.5-7B-Instruct's tokenizer_config.json "chat_template" (ChatML, tools, default system prompt).
QWEN25_CHAT_TEMPLATE = """{%- if tools %}
    {{- '<|im_start|>system\\n' }}
    {%- if messages[0]['role'] == 'system' %}
        {{- messages[0]['content'] }}
    {%- else %}
        {{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}
    {%- endif %}
    {{- "\\n\\n# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\n\
You are provided with function signatures within <tools></tools> XML tags:\\n<tools>" }}
    {%- for tool in tools %}
        {{- "\\n" }}
        {{- tool | tojson }}
    {%- endfor %}
    {{- "\\n</tools>\\n\\nFor each function call, return a json object with function name and arguments \
within <tool_call></tool_call> XML tags:\\n<tool_call>\\n{\\"name\\": <function-name>, \\"arguments\\": \
<args-json-object>}\\n</tool_call><|im_end|>\\n" }}
{%- else %}
    {%- if messages[0]['role'] == 'system' %}
        {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}
    {%- else %}
        {{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}
    {%- endif %}
{%- endif %}
{%- for message in messages %}
    {%- if (message.role == "user") or (message.role == "system" and not loop.first) or \
(message.role == "assistant" and not message.tool_calls) %}
        {{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}
    {%- elif message.role == "assistant" %}
        {{- '<|im_start|>' + message.role }}
        {%- if message.content %}
            {{- '\\n' + message.content }}
        {%- endif %}
        {%- for tool_call in message.tool_calls %}
            {%- if tool_call.function is defined %}
                {%- set tool_call = tool_call.function %}
            {%- endif %}
            {{- '\\n<tool_call>\\n{"name": "' }}
            {{- tool_call.name }}
            {{- '", "arguments": ' }}
            {{- tool_call.arguments | tojson }}
            {{- '}\\n</tool_call>' }}
        {%- endfor %}
        {{- '<|im_end|>\\n' }}
    {%- elif message.role == "tool" %}
        {%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\\n<tool_response>\\n' }}
        {{- message.content }}
        {{- '\\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}
            {{- '<|im_end|>\\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\\n' }}
{%- endif %}
"""

# The tokenizers' training text: what the twins will be asked (VQA questions, storyboard prompts, JSON).
_SUBJECTS = (
    "a red sports car on a mountain road at sunrise",
    "a happy family having breakfast in a bright kitchen",
    "a bottle of sparkling water on a white table",
    "a runner crossing the finish line in the rain",
    "a cosy coffee shop at night with warm lights",
    "a smartphone floating above a city skyline",
)
_CORPUS_LINES = (
    'USER: <image>\nDoes this figure show "{}"? Please answer yes or no. ASSISTANT: Yes',
    'USER: <image>\nDoes this figure show "{}"? Please answer yes or no. ASSISTANT: No',
    "Scene 1: {}, cinematic lighting, product shot, close-up, 35mm, shallow depth of field.",
    '{{"scenes": [{{"title": "Opening", "prompt": "{}", "score": 7}}], "feedback": "more contrast"}}',
    "You are a cinematographer. Improve the prompt: {}. Answer in JSON.",
)


def _corpus() -> list[str]:
    lines = [line.format(subject) for line in _CORPUS_LINES for subject in _SUBJECTS]
    return lines + ["Yes", "No", " Yes", " No", "yes", "no", QWEN25_DEFAULT_SYSTEM] * 20


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def _parameters(model: Any) -> int:
    return sum(p.numel() for p in model.parameters())


def _padded(size: int, multiple: int) -> int:
    """Embedding rows rounded up like the production checkpoints pad theirs (32002 -> 32064)."""
    return -(-size // multiple) * multiple


# ---- twin-pickscore + its processor --------------------------------------------------------------


def _twin_clip_config() -> Any:
    """The twin's CLIPConfig: ViT-H/14's keys and interface, toy widths, the full CLIP BPE's ids."""
    from transformers import CLIPConfig  # noqa: PLC0415

    from weights.clip_tokenizer import clip_vocab_and_merges  # noqa: PLC0415

    vocab, _merges = clip_vocab_and_merges()
    config = TWIN_PICKSCORE
    return CLIPConfig(
        text_config={
            **config["text"],
            "vocab_size": len(vocab),
            "bos_token_id": vocab["<|startoftext|>"],
            "eos_token_id": vocab["<|endoftext|>"],
            "pad_token_id": 1,  # as in the laion / OpenAI CLIP configs
        },
        vision_config=config["vision"],
        projection_dim=config["projection_dim"],
        logit_scale_init_value=config["logit_scale_init_value"],
    )


def forge_twin_pickscore(out_dir: Path, seed: int, model_dir: Path) -> dict[str, Any]:
    """PickScore_v1's format and config keys (CLIP ViT-H/14), tiny and random; model files only."""
    import torch  # noqa: PLC0415
    from transformers import CLIPModel  # noqa: PLC0415

    torch.manual_seed(seed)
    model = CLIPModel(_twin_clip_config())
    model.save_pretrained(str(out_dir), safe_serialization=True)
    return {
        "kind": "transformers-clip",
        "architecture": "CLIPModel",
        "twin_of": "yuvalkirstain/PickScore_v1",
        "parameters": _parameters(model),
        "weights": "random",
    }


def forge_twin_clip_h14_processor(out_dir: Path, seed: int, model_dir: Path) -> dict[str, Any]:
    """The processor files of laion/CLIP-ViT-H-14-laion2B-s32B-b79K (no weights; ``seed`` unused)."""
    from transformers import CLIPTokenizer  # noqa: PLC0415

    save_clip_tokenizer(out_dir, num_merges=None, model_max_length=77)
    tokenizer = CLIPTokenizer.from_pretrained(str(out_dir))
    _write_json(out_dir / "preprocessor_config.json", LAION_H14_PREPROCESSOR)
    # config.json names the model type, from which AutoProcessor picks CLIPProcessor (as on the hub).
    _twin_clip_config().save_pretrained(str(out_dir))
    return {
        "kind": "transformers-clip-processor",
        "processor": "CLIPProcessor",
        "twin_of": "laion/CLIP-ViT-H-14-laion2B-s32B-b79K",
        "tokenizer": f"CLIP BPE, full ({len(tokenizer)} tokens)",
    }


# ---- twin-openclip-l14 + twin-aesthetic ----------------------------------------------------------


def forge_twin_openclip_l14(out_dir: Path, seed: int, model_dir: Path) -> dict[str, Any]:
    """An open_clip ViT-L-14-quickgelu checkpoint at toy width, with the config that sizes it."""
    import open_clip  # noqa: PLC0415
    import torch  # noqa: PLC0415
    from safetensors.torch import save_file  # noqa: PLC0415

    model_cfg = TWIN_OPENCLIP_L14["model_cfg"]
    torch.manual_seed(seed)
    model = open_clip.CLIP(**model_cfg)
    state = {key: value.detach().contiguous() for key, value in model.state_dict().items()}
    save_file(state, str(out_dir / OPENCLIP_CHECKPOINT))
    _write_json(out_dir / OPENCLIP_CONFIG, {"architecture": OPENCLIP_ARCH, **TWIN_OPENCLIP_L14})
    return {
        "kind": "open_clip-checkpoint",
        "architecture": OPENCLIP_ARCH,
        "checkpoint": OPENCLIP_CHECKPOINT,
        "embed_dim": model_cfg["embed_dim"],
        "parameters": _parameters(model),
        "weights": "random",
    }


def forge_twin_aesthetic(out_dir: Path, seed: int, model_dir: Path) -> dict[str, Any]:
    """The LAION aesthetic MLP at its real input width (768), seeded, as a ``.pth`` state dict."""
    _forge_aesthetic(out_dir, seed, AESTHETIC_INPUT_SIZE)
    return {
        "kind": "aesthetic-mlp",
        "input_size": AESTHETIC_INPUT_SIZE,
        "clip": "twin-openclip-l14",
        "twin_of": "sac+logos+ava1-l14-linearMSE.pth",
        "weights": "random",
    }


# ---- twin-llava15 --------------------------------------------------------------------------------


def _train_bpe(vocab_size: int, pre_tokenizer: Any, normalizer: Any, alphabet: list[str]) -> tuple[Any, Any]:
    """(vocab, merges) of a BPE trained on the fixed corpus with the given pre-tokenization."""
    from tokenizers import Tokenizer, models, trainers  # noqa: PLC0415

    tokenizer = Tokenizer(models.BPE())
    tokenizer.normalizer = normalizer
    tokenizer.pre_tokenizer = pre_tokenizer
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, initial_alphabet=alphabet, show_progress=False)
    tokenizer.train_from_iterator(_corpus(), trainer=trainer)
    state = json.loads(tokenizer.to_str())["model"]
    merges = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in state["merges"]]
    return state["vocab"], merges


def _llama_tokenizer(vocab_size: int) -> Any:
    """A Llama tokenizer (BPE over "▁"-prefixed words, byte fallback) with llava-1.5's added tokens.

    Vocabulary order as Llama's: <unk>, <s>, </s>, the 256 byte tokens <0x00>..<0xFF>, then the merges.
    """
    from tokenizers import pre_tokenizers  # noqa: PLC0415
    from transformers import AddedToken, LlamaTokenizer  # noqa: PLC0415

    # train on words ("▁" starts each), so no merge crosses a word boundary (as SentencePiece's)
    trained_vocab, merges = _train_bpe(
        vocab_size, pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=True), None, []
    )
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    vocab.update({f"<0x{byte:02X}>": 3 + byte for byte in range(256)})
    for token, _index in sorted(trained_vocab.items(), key=lambda item: item[1]):
        vocab.setdefault(token, len(vocab))
    tokenizer = LlamaTokenizer(
        vocab=vocab,
        merges=merges,
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        legacy=False,
        add_bos_token=True,  # Llama prompts start with <s>
    )
    tokenizer.add_tokens([AddedToken("<image>", special=True, normalized=False)], special_tokens=True)
    tokenizer.add_special_tokens({"pad_token": "<pad>"})
    tokenizer.model_max_length = TWIN_LLAVA15["text"]["max_position_embeddings"]
    return tokenizer


def forge_twin_llava15(out_dir: Path, seed: int, model_dir: Path) -> dict[str, Any]:
    """llava-hf/llava-1.5-7b-hf's layout (CLIP-336 tower + Llama + projector + processor), tiny, random."""
    import torch  # noqa: PLC0415
    from transformers import (  # noqa: PLC0415
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    config = TWIN_LLAVA15
    size, patch = config["image_size"], config["patch_size"]
    # 1. processor: Llama tokenizer + CLIP image processor + llava-1.5's chat template
    tokenizer = _llama_tokenizer(config["tokenizer_vocab_size"])
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessor(**LLAVA15_PREPROCESSOR),
        tokenizer=tokenizer,
        patch_size=patch,
        vision_feature_select_strategy="default",
        chat_template=LLAVA15_CHAT_TEMPLATE,
        num_additional_image_tokens=1,  # the CLIP CLS token, dropped by the "default" strategy
        image_token="<image>",
    )
    processor.save_pretrained(str(out_dir))
    # 2. model: ids as llava-1.5's (image token = first added token, embeddings padded to 64)
    image_token_id = int(tokenizer.convert_tokens_to_ids("<image>"))
    llava_config = LlavaConfig(
        vision_config=CLIPVisionConfig(**config["vision"], image_size=size, patch_size=patch),
        text_config=LlamaConfig(
            **config["text"],
            vocab_size=_padded(len(tokenizer), 64),
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
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(llava_config)
    model.save_pretrained(str(out_dir), safe_serialization=True)
    return {
        "kind": "transformers-llava",
        "architecture": "LlavaForConditionalGeneration",
        "twin_of": "llava-hf/llava-1.5-7b-hf",
        "parameters": _parameters(model),
        "tokenizer": f"Llama BPE with byte fallback, trained here ({len(tokenizer)} tokens)",
        "image_token_index": image_token_id,
        "weights": "random",
    }


# ---- twin-qwen25 ---------------------------------------------------------------------------------


def _qwen2_tokenizer(vocab_size: int) -> Any:
    """A Qwen2 tokenizer (NFC, Qwen's split regex, byte-level BPE) with Qwen2.5's added tokens."""
    from tokenizers import Regex, normalizers, pre_tokenizers  # noqa: PLC0415
    from transformers import AddedToken, Qwen2Tokenizer  # noqa: PLC0415
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX  # noqa: PLC0415

    pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    vocab, merges = _train_bpe(
        vocab_size, pre_tokenizer, normalizers.NFC(), pre_tokenizers.ByteLevel.alphabet()
    )
    vocab = dict(sorted(vocab.items(), key=lambda item: item[1]))
    for token in QWEN25_ADDED_TOKENS:  # the added tokens follow the BPE vocabulary, as in Qwen2.5
        vocab[token] = len(vocab)
    tokenizer = Qwen2Tokenizer(
        vocab=vocab,
        merges=merges,
        unk_token=None,  # type: ignore[arg-type]  # Qwen2.5 has no unk token
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        errors="replace",
        split_special_tokens=False,
        model_max_length=131072,
        clean_up_tokenization_spaces=False,
    )
    tokenizer.add_tokens(
        [
            AddedToken(token, special=index < QWEN25_SPECIAL_COUNT, normalized=False)
            for index, token in enumerate(QWEN25_ADDED_TOKENS)
        ]
    )
    tokenizer.add_special_tokens(
        {"additional_special_tokens": list(QWEN25_ADDED_TOKENS[:QWEN25_SPECIAL_COUNT])},
        replace_extra_special_tokens=True,
    )
    tokenizer.chat_template = QWEN25_CHAT_TEMPLATE
    return tokenizer


def _chat_template_into_tokenizer_config(out_dir: Path) -> None:
    """Qwen2.5 ships its chat template inside tokenizer_config.json; transformers 5 writes a .jinja."""
    config_path = out_dir / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    jinja = out_dir / "chat_template.jinja"
    if jinja.is_file():
        config["chat_template"] = jinja.read_text()
        jinja.unlink()
    config["chat_template"] = config.get("chat_template") or QWEN25_CHAT_TEMPLATE
    _write_json(config_path, config)


def forge_twin_qwen25(out_dir: Path, seed: int, model_dir: Path) -> dict[str, Any]:
    """Qwen2.5-7B-Instruct's layout (Qwen2ForCausalLM, Qwen2 tokenizer, chat template), tiny, random."""
    import torch  # noqa: PLC0415
    from transformers import Qwen2Config, Qwen2ForCausalLM  # noqa: PLC0415

    config = TWIN_QWEN25
    # 1. tokenizer, with the chat template in tokenizer_config.json
    tokenizer = _qwen2_tokenizer(config["tokenizer_vocab_size"])
    tokenizer.save_pretrained(str(out_dir))
    _chat_template_into_tokenizer_config(out_dir)
    endoftext = int(tokenizer.convert_tokens_to_ids("<|endoftext|>"))
    im_end = int(tokenizer.convert_tokens_to_ids("<|im_end|>"))
    # 2. model: ids as Qwen2.5's (bos = pad = <|endoftext|>, eos = <|im_end|>, embeddings padded)
    qwen_config = Qwen2Config(
        **config["model"],
        vocab_size=_padded(len(tokenizer), 128),
        bos_token_id=endoftext,
        eos_token_id=im_end,
    )
    qwen_config.architectures = ["Qwen2ForCausalLM"]
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(qwen_config)
    model.save_pretrained(str(out_dir), safe_serialization=True)
    # 3. Qwen2.5-7B-Instruct's generation_config.json
    write_qwen25_generation_config(out_dir, endoftext, im_end)
    return {
        "kind": "causal-lm",
        "architecture": "Qwen2ForCausalLM",
        "twin_of": "Qwen/Qwen2.5-7B-Instruct",
        "parameters": _parameters(model),
        "tokenizer": f"Qwen2 byte-level BPE trained here ({len(tokenizer)} tokens) + Qwen2.5 chat template",
        "weights": "random",
    }


def write_qwen25_generation_config(out_dir: Path, endoftext: int, im_end: int) -> None:
    """Qwen2.5-7B-Instruct's generation_config.json (sampling defaults vLLM and transformers read)."""
    _write_json(
        out_dir / "generation_config.json",
        {
            "bos_token_id": endoftext,
            "pad_token_id": endoftext,
            "do_sample": True,
            "eos_token_id": [im_end, endoftext],
            "repetition_penalty": 1.05,
            "temperature": 0.7,
            "top_p": 0.8,
            "top_k": 20,
        },
    )
