"""The scorer and LLM models of the ``twin`` profile, as data: production's loaders and options, forged twins.

Each role's ``options`` equal the ``production`` profile's, key for key and value for value, except
where a value names *where the weights come from* (a hub repo, a pretrained tag): that becomes the
forged twin (``forge:NAME``, built by ``weights.forge_twin_models``). The LLM keeps production's
``ray-serve-llm`` backend and adds only what vLLM needs to run the toy model on a CPU.
"""

from __future__ import annotations

from typing import Any

TWIN_MODELS: dict[str, dict[str, Any]] = {
    # yuvalkirstain/PickScore_v1 + the laion/CLIP-ViT-H-14-laion2B-s32B-b79K processor; same calibration
    "pickscore": {
        "source": "forge:twin-pickscore",
        "options": {
            "processor": "forge:twin-clip-h14-processor",
            "calibration_low": 18.0,
            "calibration_high": 24.0,
        },
    },
    # open_clip ViT-L-14-quickgelu by name; the checkpoint dir stands in for the "openai" tag
    "clipscore": {
        "source": "forge:twin-openclip-l14",
        "options": {"arch": "ViT-L-14-quickgelu", "pretrained": "forge:twin-openclip-l14"},
    },
    # llava-hf/llava-1.5-7b-hf (no options in production either)
    "vqa": {"source": "forge:twin-llava15"},
    # sac+logos+ava1-l14-linearMSE.pth over the same ViT-L-14-quickgelu as CLIPScore (loaded once)
    "aesthetic": {
        "source": "forge:twin-aesthetic",
        "options": {"clip": "ViT-L-14-quickgelu", "clip_pretrained": "forge:twin-openclip-l14"},
    },
    # Qwen/Qwen2.5-7B-Instruct on ray.serve.llm; engine_kwargs: what vLLM needs to run the toy model on CPU
    "llm": {
        "source": "forge:twin-qwen25",
        "options": {
            "backend": "ray-serve-llm",
            "engine_kwargs": {
                "dtype": "float32",  # CPU
                "max_model_len": 2048,  # a small KV cache
                "enforce_eager": True,  # no graph capture on CPU
                "max_num_seqs": 4,
                # = agents.vllm_engine.STRUCTURED_OUTPUTS_CONFIG: a random LM closes its JSON only with
                # the guidance backend and no free whitespace
                "structured_outputs_config": {"backend": "guidance", "disable_any_whitespace": True},
            },
        },
    },
}
