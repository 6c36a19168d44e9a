"""scenechain scorers: PickScore, CLIPScore, VQAScore and the LAION aesthetic predictor behind one
``Scorer`` protocol, plus the 0–100 aggregate that picks the best variation.

Model code is imported lazily (``scorers.registry.build_scorer``); importing this package loads no torch.
"""

from scorers.aggregate import DEFAULT_WEIGHTS, AggregateResult, ImageScores, NoScoresError, aggregate
from scorers.base import Scorer, ScorerError, ScoreResult, ScorerInputError
from scorers.registry import SCORER_NAMES, UnknownScorerError, build_scorer

__all__ = [
    "DEFAULT_WEIGHTS",
    "SCORER_NAMES",
    "AggregateResult",
    "ImageScores",
    "NoScoresError",
    "ScoreResult",
    "Scorer",
    "ScorerError",
    "ScorerInputError",
    "UnknownScorerError",
    "aggregate",
    "build_scorer",
]
