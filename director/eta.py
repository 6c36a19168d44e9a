"""Estimates of when a generation finishes, from the stage timings of recent ones.

An estimate, not a promise: the median planning time and the median seconds per scene of the
last completed generations of the same mode (simple or advanced), scaled by the scenes left and,
while queued, by the generations ahead sharing the Director's slots.
"""

from __future__ import annotations

import math
from statistics import median

from pydantic import BaseModel, Field

from store.db import GenerationRecord


class StageRates(BaseModel):
    """Median durations of one mode, measured on recently completed generations."""

    plan_s: float = Field(description="Median seconds of planning.")
    scene_s: float = Field(description="Median seconds per scene (enhance + generate + score).")
    samples: int = Field(description="Completed generations the medians come from.")

    def generation_s(self, scenes: int) -> float:
        """Seconds of a whole generation of ``scenes`` scenes."""
        return self.plan_s + scenes * self.scene_s


def stage_rates(completed: list[GenerationRecord]) -> StageRates | None:
    """Medians over ``completed`` (None when no generation has usable timings)."""
    plans: list[float] = []
    scenes: list[float] = []
    for record in completed:
        total = record.timings.get("total_s")
        if not isinstance(total, int | float) or record.scenes_done < 1:
            continue
        plan = record.timings.get("plan_s")
        plan_s = float(plan) if isinstance(plan, int | float) else 0.0
        plans.append(plan_s)
        scenes.append(max(0.0, float(total) - plan_s) / record.scenes_done)
    if not scenes:
        return None
    return StageRates(plan_s=median(plans), scene_s=median(scenes), samples=len(scenes))


def estimate_eta_s(
    record: GenerationRecord,
    rates: StageRates | None,
    *,
    queue_position: int | None,
    running: int,
    capacity: int,
) -> float | None:
    """Seconds until ``record`` is likely finished; None when finished or nothing to estimate from."""
    if rates is None or record.status not in ("queued", "running"):
        return None
    planned = record.storyboard_plan is not None
    own = (0.0 if planned else rates.plan_s) + max(
        0, record.scenes_total - record.scenes_done
    ) * rates.scene_s
    if record.status == "running" or queue_position is None:
        return round(own, 1)
    # Queued: every `capacity` generations ahead (running ones included) take about one generation's time.
    turns = math.floor((running + queue_position - 1) / max(1, capacity))
    return round(own + turns * rates.generation_s(record.scenes_total), 1)
