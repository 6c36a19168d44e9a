"""Cost models of GPU work, fitted to published figures, and the simulated devices they run on.

A cost-model core (``generator.costmodel``, ``scorers.costmodel``, ``agents.costmodel``) does no
model compute: for a batch of ``b`` items it holds its simulated device for ``curve.seconds(b)``
(sleeping, not spinning) and returns valid outputs. This lets the Serve graph's orchestration
(batching, overlap, placement, scale-out) be timed on a CPU machine. Every figure is a simulation.

Curves are data (``CURVES``), each with the published figure it is fitted to and where it comes
from. A batch of ``b`` costs ``fixed_s + per_item_s * b`` (linear in the batch: a GPU amortises a
fixed launch/weights-read cost over the batch, then scales with the work).

Shared devices: four scorer replicas share one GPU (0.25 GPU each). A GPU time-slices between
processes without MPS: one kernel stream at a time. So a device is a *lock file* keyed by the
device's identity (node + GPU index, as Ray placed the replica): ``fcntl.flock`` blocks the
calling thread without spinning, works across the processes of one machine (every simulated node
of a local ``ray.cluster_utils.Cluster`` lives on it), needs no extra Ray actor and no extra
handle hop per batch. A per-replica lock owning a fraction of the device was the alternative; it
would let four scorers run at once on one GPU at full speed each, which a GPU does not do.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

COSTMODEL_PREFIX = "costmodel:"


class CostCurve(BaseModel):
    """Seconds a device is held for a batch of ``b`` items: ``fixed_s + per_item_s * b``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="Curve id, used as the model source 'costmodel:<name>'.")
    what: str = Field(description="Model, resolution/steps, GPU and runtime the curve stands for.")
    fixed_s: float = Field(ge=0, description="Seconds per batch, whatever its size.")
    per_item_s: float = Field(gt=0, description="Seconds per item (image, or sequence-step) in the batch.")
    cited: dict[int, float] = Field(description="Batch size -> published seconds the curve is fitted to.")
    source: str = Field(description="Where the cited figures are published.")
    derivation: str = Field(default="", description="How a figure not published directly was derived.")

    def seconds(self, batch: int) -> float:
        """Device seconds for one batch of ``batch`` items."""
        if batch < 1:
            raise ValueError(f"batch must be >= 1, got {batch}")
        return self.fixed_s + self.per_item_s * batch


def through_two_points(b1_s: float, b4_s: float) -> dict[str, float]:
    """``fixed_s`` and ``per_item_s`` of the line through (1, b1_s) and (4, b4_s)."""
    per_item = (b4_s - b1_s) / 3
    return {"fixed_s": b1_s - per_item, "per_item_s": per_item}


def from_throughput(items_per_s: float, fixed_s: float) -> dict[str, float]:
    """``fixed_s`` and ``per_item_s`` for a model whose large-batch throughput is ``items_per_s``."""
    return {"fixed_s": fixed_s, "per_item_s": 1.0 / items_per_s}


# SDXL-Turbo, A100: batch 4 costs 2.29x batch 1 (391/171); other diffusion curves keep that shape
# where only a batch-1 figure is published (a batch-4 figure then is derived, and says so).
_BATCH4_OVER_BATCH1 = 0.391 / 0.171


def _diffusion_like_sdxl_a100(b1_s: float) -> dict[str, float]:
    return through_two_points(b1_s, b1_s * _BATCH4_OVER_BATCH1)


# A small per-call cost (pre-processing, launch) for the scorers, whose published figures are
# large-batch throughput only; an assumption, labelled as such in each curve.
_SCORER_CALL_S = 0.005

_CURVE_DATA: list[dict[str, object]] = [
    {
        "name": "sdxl-turbo-512-a100",
        "what": "SDXL-Turbo, 512x512, 4 steps, A100, PyTorch (torch.compile)",
        **through_two_points(0.171, 0.391),
        "cited": {1: 0.171, 4: 0.391},
        "source": "Hugging Face blog 'Accelerating SD Turbo and SDXL Turbo Inference with ONNX Runtime and "
        "Olive' (huggingface.co/blog/sdxl_ort_inference), PyTorch-compiled column, A100-80GB",
    },
    {
        "name": "sdxl-turbo-512-h100-trt",
        "what": "SDXL-Turbo, 512x512, 4 steps, H100, TensorRT",
        **_diffusion_like_sdxl_a100(0.084),
        "cited": {1: 0.084},
        "source": "NVIDIA TensorRT SDXL-Turbo figure for H100 (demo/Diffusion), as quoted in issue #16",
        "derivation": "batch 4 = batch 1 x 391/171 (the A100 PyTorch batch-4/batch-1 ratio)",
    },
    {
        "name": "flux-schnell-512-h100",
        "what": "FLUX.1-schnell, 512x512, 4 steps, H100",
        **_diffusion_like_sdxl_a100(0.29),
        "cited": {1: 0.29},
        "source": "Replicate's published FLUX.1-schnell latency (replicate.com/black-forest-labs/flux-schnell), "
        "512x512, 4 steps, as quoted in issue #16",
        "derivation": "batch 4 = batch 1 x 391/171 (the SDXL-Turbo A100 batch-4/batch-1 ratio)",
    },
    {
        "name": "clip-vit-h14-4090",
        "what": "CLIP ViT-H/14 image tower, 224 px (PickScore), RTX 4090, AMP",
        **from_throughput(346.0, _SCORER_CALL_S),
        "cited": {256: 256 / 346.0},
        "source": "timm inference benchmark, RTX 4090, AMP, NCHW (github.com/huggingface/pytorch-image-models "
        "results/benchmark-infer-amp-nchw-*-rtx4090.csv): vit_huge_patch14_clip_224 ~346 img/s",
        "derivation": "per image = 1/346 s at large batch; plus an assumed 5 ms per call",
    },
    {
        "name": "clip-vit-l14-4090",
        "what": "CLIP ViT-L/14 image tower, 224 px (CLIPScore, aesthetic), RTX 4090, AMP",
        **from_throughput(658.0, _SCORER_CALL_S),
        "cited": {256: 256 / 658.0},
        "source": "timm inference benchmark, RTX 4090, AMP, NCHW (github.com/huggingface/pytorch-image-models "
        "results/benchmark-infer-amp-nchw-*-rtx4090.csv): vit_large_patch14_clip_224 ~658 img/s",
        "derivation": "per image = 1/658 s at large batch; plus an assumed 5 ms per call",
    },
    {
        "name": "llava-7b-vqa-h100",
        "what": "LLaVA-1.5-7B forward (576 image + ~40 text tokens, one answer token) for VQAScore, H100 bf16",
        "fixed_s": 0.025,
        "per_item_s": 2 * 7.1e9 * 616 / (0.5 * 989e12),
        "cited": {1: 0.025 + 2 * 7.1e9 * 616 / (0.5 * 989e12)},
        "source": "derived from H100 SXM dense bf16 peak 989 TFLOPS (NVIDIA H100 datasheet) at 50% "
        "utilisation; no published VQAScore timing",
        "derivation": "per image 2 x 7.1e9 params x 616 tokens FLOPs / (0.5 x 989e12) = 17.7 ms; "
        "plus an assumed 25 ms per call (vision tower, launch)",
    },
]

CURVES: dict[str, CostCurve] = {str(d["name"]): CostCurve.model_validate(d) for d in _CURVE_DATA}


class DecodeCurve(BaseModel):
    """An LLM server with continuous batching: one decode step of ``b`` sequences costs
    ``step_fixed_s + step_per_seq_s * b``; a call of ``t`` output tokens among ``b`` takes ``t`` steps."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="Curve id, used as the model source 'costmodel:<name>'.")
    what: str = Field(description="Model, GPU and engine the curve stands for.")
    step_fixed_s: float = Field(gt=0, description="Seconds of one decode step at batch 1.")
    step_per_seq_s: float = Field(ge=0, description="Extra seconds per step per sequence in the batch.")
    cited: dict[str, float] = Field(description="Published figures the curve is fitted to.")
    source: str = Field(description="Where the cited figures are published.")

    def step_seconds(self, batch: int) -> float:
        """Seconds of one decode step with ``batch`` sequences running."""
        if batch < 1:
            raise ValueError(f"batch must be >= 1, got {batch}")
        return self.step_fixed_s + self.step_per_seq_s * batch

    def seconds(self, batch: int, tokens: int) -> float:
        """Seconds for ``batch`` calls of ``tokens`` output tokens each, decoded together."""
        return tokens * self.step_seconds(batch)

    def aggregate_tokens_per_s(self, batch: int) -> float:
        """Output tokens per second of the whole server at ``batch`` sequences."""
        return batch / self.step_seconds(batch)


# vLLM, 8B model, one H100: ~100 tok/s for a single stream (10 ms per step), ~5,100 tok/s aggregate
# at 64 concurrent streams (80 tok/s each): step(64) = 64 / 5100 s.
_STEP_1 = 1 / 100
_STEP_64 = 64 / 5100
LLM_CURVES: dict[str, DecodeCurve] = {
    "vllm-8b-h100": DecodeCurve(
        name="vllm-8b-h100",
        what="vLLM serving an 8B instruct model (Llama-3-8B class; Qwen2.5-7B in production), one H100",
        step_fixed_s=_STEP_1 - (_STEP_64 - _STEP_1) / 63,
        step_per_seq_s=(_STEP_64 - _STEP_1) / 63,
        cited={"tokens_per_s_1_stream": 100.0, "aggregate_tokens_per_s_64_streams": 5100.0},
        source="vLLM performance update (blog.vllm.ai/2024/09/05/perf-update.html): Llama 3 8B on one H100, "
        "~5,100 output tok/s aggregate in server mode; 70-100 tok/s per stream",
    )
}


def curve(name: str) -> CostCurve:
    """The batch curve ``name``; the error lists the known ones."""
    try:
        return CURVES[name]
    except KeyError:
        raise KeyError(f"unknown cost curve {name!r}; choose one of {sorted(CURVES)}") from None


def costmodel_name(source: str) -> str | None:
    """The curve name of a 'costmodel:<name>' source, else None."""
    return source[len(COSTMODEL_PREFIX) :] if source.startswith(COSTMODEL_PREFIX) else None


# ---- simulated devices -----------------------------------------------------------------------


class DeviceHold(BaseModel):
    """One batch on a simulated device."""

    wait_s: float = Field(description="Seconds spent waiting for the device (other batches on it).")
    compute_s: float = Field(description="Seconds the device was held (the curve's cost).")
    batch: int = Field(description="Items in the batch.")


def _lock_dir() -> Path:
    path = Path(tempfile.gettempdir()) / f"scenechain-costmodel-{os.getuid()}"
    path.mkdir(parents=True, exist_ok=True)
    return path


class SimulatedDevice:
    """A GPU that runs one batch at a time: a lock file shared by every process using ``key``.

    ``key`` names the device (e.g. '<ray node id>-gpu0'); replicas placed on the same GPU pass the
    same key. ``time_scale`` stretches every hold (1.0: the published figures as they are).
    """

    def __init__(self, key: str, time_scale: float = 1.0) -> None:
        if time_scale <= 0:
            raise ValueError(f"time_scale must be > 0, got {time_scale}")
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", key) or "device"
        self.key = key
        self.path = _lock_dir() / f"{safe}.lock"
        self.time_scale = time_scale
        self._local = threading.Lock()  # threads of one process queue here first (cheaper than flock)

    @contextlib.contextmanager
    def _held(self) -> Iterator[None]:
        with self._local, open(self.path, "a+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)  # blocks in the kernel: no spinning
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def hold(self, seconds: float, batch: int) -> DeviceHold:
        """Wait for the device, then hold it ``seconds`` (scaled); blocks the calling thread."""
        asked = time.perf_counter()
        with self._held():
            started = time.perf_counter()
            time.sleep(seconds * self.time_scale)
            finished = time.perf_counter()
        return DeviceHold(wait_s=started - asked, compute_s=finished - started, batch=batch)
