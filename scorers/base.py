"""The scorer contract: one ``Scorer`` protocol, one result type, one error type, one model cache.

A scorer scores a whole list of images against one prompt in one batched forward pass and returns,
per image, the method's native value (``raw``) and a 0–100 value (``normalized``). Failures of any
kind leave a scorer as ``ScorerError`` so callers can drop that scorer and keep the others.

Fault injection (for service tests, through config): a scorer's options may carry
``{"fail_with": "message"}`` (or ``{"fail": True}``): the registry then builds a scorer that loads
no model and raises ``ScorerError(message)`` on every ``score`` call; ``{"fail_on_load": "message"}``
makes ``build_scorer`` itself raise ``ScorerError``. These options are typed in
``scorers.catalogue.ScorerOptions``, which every scorer's options model extends.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, model_validator

if TYPE_CHECKING:
    import torch
    from PIL import Image

logger = logging.getLogger(__name__)

T = TypeVar("T")


class ScorerError(RuntimeError):
    """A scorer could not load or could not score; library errors are wrapped in this."""


class ScorerInputError(ScorerError, ValueError):
    """The prompt or images handed to a scorer are unusable (empty prompt, no images, not PIL)."""


class ScoreResult(BaseModel):
    """One scorer's scores for every image of one prompt, in image order."""

    model_config = ConfigDict(extra="forbid")

    scorer: str = Field(description="Scorer name, as in the catalogue (scorers.catalogue), e.g. 'pickscore'.")
    raw: list[float] = Field(description="Per image, the method's native value.")
    normalized: list[float] = Field(description="Per image, the value mapped to 0–100.")
    extra: dict[str, Any] = Field(default_factory=dict, description="Scorer-specific per-image extras.")
    seconds: float = Field(description="Wall time of the scoring call.", ge=0)

    @model_validator(mode="after")
    def _check_lengths_and_range(self) -> ScoreResult:
        if len(self.raw) != len(self.normalized):
            raise ValueError(f"{len(self.raw)} raw values but {len(self.normalized)} normalized values")
        out_of_range = [v for v in self.normalized if not 0.0 <= v <= 100.0]
        if out_of_range:
            raise ValueError(f"normalized values must lie in [0, 100], got {out_of_range[:3]}")
        return self


@runtime_checkable
class Scorer(Protocol):
    """Scores a list of images for one prompt, in one forward pass."""

    name: str

    def score(self, prompt: str, images: list[Image.Image]) -> ScoreResult: ...


def check_inputs(prompt: str, images: Sequence[Any]) -> None:
    """Concise, specific errors for unusable inputs, before any model runs."""
    from PIL import Image  # noqa: PLC0415

    if not isinstance(prompt, str) or not prompt.strip():
        raise ScorerInputError("prompt must be a non-empty string")
    if len(images) == 0:
        raise ScorerInputError("images must hold at least one image")
    not_pil = [i for i, image in enumerate(images) if not isinstance(image, Image.Image)]
    if not_pil:
        raise ScorerInputError(f"images must be PIL images; items {not_pil[:5]} are not")


class BatchScorer:
    """Shared ``score`` template: check inputs, time one batched call, wrap errors, build the result.

    Subclasses set ``name`` and implement ``_score_batch(prompt, images) -> (raw, normalized, extra)``.
    """

    name: str = "base"

    def score(
        self, prompt: str, images: list[Image.Image], reference: Image.Image | None = None
    ) -> ScoreResult:
        """Scores of ``images``; with a ``reference`` (the previous kept scene), scorers that compare
        images (``takes_reference``) add ``extra["consistency"]``, 0–100 per image."""
        import torch  # noqa: PLC0415

        check_inputs(prompt, images)
        if reference is not None and not self.takes_reference:
            raise ScorerInputError(f"{self.name} does not compare images with a reference")
        started = time.perf_counter()
        try:
            with torch.inference_mode():
                rgb = [im.convert("RGB") for im in images]
                if reference is None:
                    raw, normalized, extra = self._score_batch(prompt, rgb)
                else:
                    raw, normalized, extra = self._score_batch_with_reference(
                        prompt, rgb, reference.convert("RGB")
                    )
        except ScorerError:
            raise
        except Exception as exc:
            raise ScorerError(f"{self.name} failed: {type(exc).__name__}: {exc}") from exc
        return ScoreResult(
            scorer=self.name,
            raw=[float(v) for v in raw],
            normalized=[float(v) for v in normalized],
            extra=extra,
            seconds=time.perf_counter() - started,
        )

    # Scorers that can compare images with a reference set this and implement the method below.
    takes_reference: bool = False

    def _score_batch(
        self, prompt: str, images: list[Image.Image]
    ) -> tuple[list[float], list[float], dict[str, Any]]:
        raise NotImplementedError

    def _score_batch_with_reference(
        self, prompt: str, images: list[Image.Image], reference: Image.Image
    ) -> tuple[list[float], list[float], dict[str, Any]]:
        raise NotImplementedError


class FailingScorer:
    """Fault injection: a scorer that loads nothing and always raises ``ScorerError``."""

    def __init__(self, name: str, message: str) -> None:
        self.name = name
        self.message = message

    def score(self, prompt: str, images: list[Image.Image]) -> ScoreResult:
        raise ScorerError(f"{self.name} failed: {self.message}")


# ---- device / dtype -------------------------------------------------------------------------------


def resolve_device(device: str) -> str:
    """'auto' becomes 'cuda' when available, else 'cpu'; anything else is passed through."""
    if device != "auto":
        return device
    import torch  # noqa: PLC0415

    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_dtype(dtype: str, device: str) -> torch.dtype:
    """The torch dtype to run in; half precision only on CUDA (CPU half kernels are slow or missing)."""
    import torch  # noqa: PLC0415

    names = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
    if dtype not in names:
        raise ScorerError(f"unknown dtype {dtype!r}; choose one of {sorted(names)}")
    return names[dtype] if device.startswith("cuda") else torch.float32


# ---- one load per process ------------------------------------------------------------------------

_MODEL_CACHE: dict[tuple[Any, ...], Any] = {}
_MODEL_LOCKS: dict[tuple[Any, ...], threading.Lock] = {}
_CACHE_LOCK = threading.Lock()
LOAD_COUNTS: dict[tuple[Any, ...], int] = {}


def shared_model(key: tuple[Any, ...], load: Callable[[], T]) -> T:
    """The process-wide instance for ``key``, loading it with ``load()`` exactly once.

    Keys name what was loaded (kind, source, device, dtype), so two scorers that need the same
    model (CLIPScore and the aesthetic predictor's CLIP) share one copy.
    """
    with _CACHE_LOCK:
        if key in _MODEL_CACHE:
            return _MODEL_CACHE[key]
        lock = _MODEL_LOCKS.setdefault(key, threading.Lock())
    with lock:  # one loader per key; other keys load in parallel
        if key not in _MODEL_CACHE:
            logger.info("loading %s", key)
            _MODEL_CACHE[key] = load()
            LOAD_COUNTS[key] = LOAD_COUNTS.get(key, 0) + 1
        return _MODEL_CACHE[key]


def clear_model_cache() -> None:
    """Forget every loaded model (tests; a process normally keeps them for its lifetime)."""
    with _CACHE_LOCK:
        _MODEL_CACHE.clear()
        _MODEL_LOCKS.clear()
        LOAD_COUNTS.clear()
