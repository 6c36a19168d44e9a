"""Build scorers by name from a ``ModelSpec``; models load once per process (``scorers.base.shared_model``).

Which class implements a name, and which options it takes, is read from the catalogue
(``scorers.catalogue``); only that class's module is imported. Forge references (``forge:NAME``) in
the spec are resolved with ``weights.forge.resolve_spec`` (built if missing). ``options`` passed here
are merged over ``spec.options``; the result must fit the scorer's options model, else
``ScorerOptionsError`` (a ``ValueError``) names the bad fields.

Fault injection (documented in ``scorers.base``): ``fail_with`` / ``fail`` → a scorer that raises
``ScorerError`` on every call and loads nothing; ``fail_on_load`` → ``build_scorer`` raises.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scorers.base import FailingScorer, Scorer, ScorerError
from scorers.catalogue import (
    CATALOGUE,
    SCORER_NAMES,
    ScorerCatalogue,
    ScorerOptions,
    ScorerOptionsError,
    UnknownScorerError,
)
from weights.profiles import ModelSpec

__all__ = ["SCORER_NAMES", "ScorerOptionsError", "UnknownScorerError", "build_scorer"]


def _fault_injection(name: str, options: ScorerOptions) -> Scorer | None:
    if options.fail_on_load:
        reason = options.fail_on_load if isinstance(options.fail_on_load, str) else "fail_on_load"
        raise ScorerError(f"{name} failed to load: {reason} (injected)")
    message = options.injected_failure
    return FailingScorer(name, message) if message is not None else None


def build_scorer(
    name: str,
    spec: ModelSpec,
    *,
    device: str = "cpu",
    dtype: str = "float32",
    model_dir: Path | None = None,
    options: dict[str, Any] | None = None,
    catalogue: ScorerCatalogue = CATALOGUE,
) -> Scorer:
    """The scorer ``name`` for ``spec``; the same model is never loaded twice in a process."""
    from weights.forge import ForgeError, resolve_spec  # noqa: PLC0415

    # 1. look the scorer up and check its options before anything is forged or loaded
    entry = catalogue.entry(name)
    merged = {**spec.options, **(options or {})}
    injected = _fault_injection(name, entry.parse_options(merged))
    if injected is not None:
        return injected
    # 2. resolve forge references to local paths
    try:
        resolved = resolve_spec(ModelSpec(source=spec.source, options=merged), model_dir)
    except ForgeError as exc:
        raise ScorerError(f"{name}: cannot forge its model: {exc}") from exc
    # 3. import the implementing class and load the model
    scorer_class = entry.load_class()
    try:
        return scorer_class.from_spec(
            resolved.source, entry.parse_options(resolved.options), device=device, dtype=dtype
        )
    except ScorerError:
        raise
    except Exception as exc:
        raise ScorerError(f"{name}: cannot load {spec.source!r}: {type(exc).__name__}: {exc}") from exc
