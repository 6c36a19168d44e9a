"""Build scorers by name from a ``ModelSpec``; models load once per process (``scorers.base.shared_model``).

Forge references (``forge:NAME``) in the spec are resolved with ``weights.forge.resolve_spec`` (built
if missing). ``options`` passed here are merged over ``spec.options``.

Fault injection (documented in ``scorers.base``): ``fail_with`` / ``fail`` → a scorer that raises
``ScorerError`` on every call and loads nothing; ``fail_on_load`` → ``build_scorer`` raises.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scorers.base import FailingScorer, Scorer, ScorerError
from weights.profiles import ModelSpec

SCORER_NAMES = ("pickscore", "clipscore", "vqa", "aesthetic")


class UnknownScorerError(ScorerError, ValueError):
    """A scorer name that is not one of ``SCORER_NAMES``."""


def _fault_injection(name: str, options: dict[str, Any]) -> Scorer | None:
    if options.get("fail_on_load"):
        raise ScorerError(f"{name} failed to load: {options['fail_on_load']} (injected)")
    if options.get("fail_with") or options.get("fail"):
        message = options.get("fail_with") or "injected failure"
        return FailingScorer(name, str(message))
    return None


def build_scorer(
    name: str,
    spec: ModelSpec,
    *,
    device: str = "cpu",
    dtype: str = "float32",
    model_dir: Path | None = None,
    options: dict[str, Any] | None = None,
) -> Scorer:
    """The scorer ``name`` for ``spec``; the same model is never loaded twice in a process."""
    from weights.forge import ForgeError, resolve_spec  # noqa: PLC0415

    if name not in SCORER_NAMES:
        raise UnknownScorerError(f"unknown scorer {name!r}; choose one of {list(SCORER_NAMES)}")
    merged = {**spec.options, **(options or {})}
    injected = _fault_injection(name, merged)
    if injected is not None:
        return injected
    try:
        resolved = resolve_spec(ModelSpec(source=spec.source, options=merged), model_dir)
    except ForgeError as exc:
        raise ScorerError(f"{name}: cannot forge its model: {exc}") from exc
    scorer_class = _scorer_class(name)
    try:
        return scorer_class.from_spec(resolved.source, dict(resolved.options), device=device, dtype=dtype)
    except ScorerError:
        raise
    except Exception as exc:
        raise ScorerError(f"{name}: cannot load {spec.source!r}: {type(exc).__name__}: {exc}") from exc


def _scorer_class(name: str) -> Any:
    # Imported on demand: building one scorer should not import every model library.
    if name == "pickscore":
        from scorers.pickscore import PickScoreScorer  # noqa: PLC0415

        return PickScoreScorer
    if name == "clipscore":
        from scorers.clipscore import ClipScoreScorer  # noqa: PLC0415

        return ClipScoreScorer
    if name == "vqa":
        from scorers.vqascore import VqaScorer  # noqa: PLC0415

        return VqaScorer
    from scorers.aesthetic import AestheticScorer  # noqa: PLC0415

    return AestheticScorer
