"""The typed records of a generation that the database keeps in JSON columns.

One shape from the Director to the HTTP edge: the Director builds these, ``store.db`` persists
them (``GenerationRecord``), the event diff reads them, and the status document is made of them.
Each record is the public protocol model (``scenechain.protocol``) plus the few fields the server
keeps for itself, so the HTTP schema cannot drift from what is stored.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field
from scenechain.protocol import (
    AdvancedImageSettings,
    ImageScoresOut,
    PlannedScene,
    SceneOut,
    SceneQuality,
    StoryboardPlanOut,
)

__all__ = [
    "AdvancedImageSettings",
    "ImageScores",
    "PlannedScene",
    "SceneQualityRecord",
    "SceneRecord",
    "StoryboardPlan",
    "to_json",
]

# The planned storyboard (with the advanced settings it runs with) is stored exactly as published.
StoryboardPlan = StoryboardPlanOut
ImageScores = ImageScoresOut


class SceneRecord(SceneOut):
    """One finished scene, as committed before the next scene starts."""

    mode: str = Field(default="text2img", description="Pipeline used: 'text2img' or 'img2img'.")
    reference_image: str | None = Field(
        default=None,
        description="Id of the product reference image this scene started from (scene 1 only; its "
        "reference_from stays null); the status's reference_image_used.",
    )


class SceneQualityRecord(SceneQuality):
    """One scene's scoring outcome (advanced mode)."""

    note: str | None = Field(default=None, description="Why the scene is unscored, when it is.")


def to_json(value: Any) -> Any:
    """``value`` with every pydantic model in it dumped to JSON-ready data (for JSON columns)."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list | tuple):
        return [to_json(item) for item in value]
    if isinstance(value, dict):
        return {key: to_json(item) for key, item in value.items()}
    return value
