"""scenechain scorers: PickScore, CLIPScore, VQAScore and the LAION aesthetic predictor behind one
``Scorer`` protocol, plus the 0–100 aggregate that picks the best variation.

The scorers are one catalogue, as data (``scorers.catalogue``): names, public score fields, default
weights, implementing classes and options models. Model code is imported lazily
(``scorers.registry.build_scorer``); importing this package loads no torch.
"""

from scorers.aggregate import DEFAULT_WEIGHTS, AggregateResult, ImageScores, NoScoresError, aggregate
from scorers.base import Scorer, ScorerError, ScoreResult, ScorerInputError
from scorers.catalogue import (
    CATALOGUE,
    FIELD_OF_SCORER,
    SCORER_NAMES,
    ScorerCatalogue,
    ScorerEntry,
    ScorerOptions,
    ScorerOptionsError,
    UnknownScorerError,
)
from scorers.registry import build_scorer

__all__ = [
    "CATALOGUE",
    "DEFAULT_WEIGHTS",
    "FIELD_OF_SCORER",
    "SCORER_NAMES",
    "AggregateResult",
    "ImageScores",
    "NoScoresError",
    "ScoreResult",
    "Scorer",
    "ScorerCatalogue",
    "ScorerEntry",
    "ScorerError",
    "ScorerInputError",
    "ScorerOptions",
    "ScorerOptionsError",
    "UnknownScorerError",
    "aggregate",
    "build_scorer",
]
