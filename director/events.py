"""Events implied by a generation row's successive states, and the Director's ``EventRecorder``."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from scenechain.events import (
    FINISHED,
    TERMINAL_EVENT,
    EventType,
    GenerationEvent,
)
from scenechain.protocol import EnhancementTrace, SceneOut, SceneQuality, TraceIteration

from store.events import EventStore

logger = logging.getLogger(__name__)


# -- row diffs: events implied by successive states of a generation row ----------------------------


class RowSnapshot(BaseModel):
    """What the event helpers read of a generation row (a ``GenerationRecord`` fits)."""

    model_config = ConfigDict(extra="ignore", from_attributes=True)

    id: str
    status: str = "queued"
    stage: str = "queued"
    scenes_total: int = 0
    scenes_done: int = 0
    scenes: list[SceneOut] = Field(default_factory=list)
    image_quality_scores: dict[str, SceneQuality] = Field(default_factory=dict)
    warnings: list[str] = Field(default_factory=list)
    error: str | None = None


class RowDiff:
    """Turns successive row states into events: stage changes, per finished scene its variation
    scores, best pick and ``scene_done``, new warnings, and ``error``/``done`` at the end."""

    def __init__(self, row: RowSnapshot | None = None) -> None:
        self.stage: str | None = None
        self.scenes_seen = 0
        self.warnings_seen = 0
        self.finished = False
        if row is not None:
            self.prime(row)

    def prime(self, row: RowSnapshot) -> None:
        """Take ``row`` as already reported (a resumed run must not repeat its past)."""
        self.stage = row.stage
        self.scenes_seen = len(row.scenes)
        self.warnings_seen = len(row.warnings)
        self.finished = row.status in FINISHED

    def diff(self, row: RowSnapshot) -> list[tuple[EventType, int | None, dict[str, Any]]]:
        """(type, scene, data) of each event implied since the last call, in order."""
        events: list[tuple[EventType, int | None, dict[str, Any]]] = []
        if self.finished:
            return events
        # Order within one update: scores of newly finished scenes, warnings (a below-threshold flag
        # is committed with its scene), the scenes' completion, then the stage that follows.
        completions: list[tuple[EventType, int | None, dict[str, Any]]] = []
        for scene in row.scenes[self.scenes_seen :]:
            n = scene.index
            quality = row.image_quality_scores.get(f"scene_{n}")
            seeds = (quality.seeds if quality else None) or scene.seeds
            for k, scores in enumerate(quality.per_image if quality else [], start=1):
                seed = seeds[k - 1] if k <= len(seeds) else None
                events.append(("variation_scored", n, {"k": k, "scores": scores.model_dump(), "seed": seed}))
            if quality is not None:
                events.append(
                    (
                        "best_picked",
                        n,
                        {
                            "k": quality.best_index,
                            "overall": quality.best_overall,
                            "below_threshold": quality.below_threshold,
                        },
                    )
                )
            self.scenes_seen += 1
            completions.append(
                (
                    "scene_done",
                    n,
                    {
                        "image_url": scene.image_url,
                        "scenes_done": self.scenes_seen,
                        "scenes_total": row.scenes_total,
                    },
                )
            )
        for message in row.warnings[self.warnings_seen :]:
            events.append(("warning", _scene_of_warning(message), {"message": message}))
        self.warnings_seen = max(self.warnings_seen, len(row.warnings))
        events.extend(completions)
        if row.stage != self.stage and row.status not in FINISHED:
            self.stage = row.stage
            stage_scene, stage = _split_stage(row.stage)
            events.append(("stage", stage_scene, {"stage": stage, "label": row.stage}))
        if row.status in FINISHED:
            self.finished = True
            if row.status == "failed":
                events.append(("error", None, {"message": row.error or "failed"}))
            events.append((TERMINAL_EVENT, None, {"status": row.status, "error": row.error}))
        return events


def _scene_of_warning(message: str) -> int | None:
    """The scene a Director warning is about ('scene 3: ...'), if any."""
    scene, _ = _split_stage(message)
    return scene


def _split_stage(label: str) -> tuple[int | None, str]:
    """'scene 2: scoring' -> (2, 'scoring'); 'planning' -> (None, 'planning')."""
    head, sep, tail = label.partition(":")
    if sep and head.startswith("scene "):
        number = head.removeprefix("scene ").strip()
        if number.isdigit():
            return int(number), tail.strip()
    return None, label


# -- enhancement traces --------------------------------------------------------------------------


def _iteration_of(name: str) -> tuple[int, int] | None:
    """'01_agent1_iteration_1.txt' -> (agent 1, iteration 1); None for other names."""
    stem = name.rsplit(".", 1)[0]
    parts = stem.split("_")
    if (
        len(parts) == 4
        and parts[1] in ("agent1", "agent2")
        and parts[2] == "iteration"
        and parts[3].isdigit()
    ):
        return int(parts[1][-1]), int(parts[3])
    return None


def _json_or_none(text: str | None) -> Any:
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def enhancement_trace(files: Mapping[str, str]) -> EnhancementTrace:
    """A scene's trace files (name -> text) as one document: the original prompt, each iteration's
    Cinematographer rewrite (agent 1) and critic verdict (agent 2: scores, overall, feedback),
    the final prompt, the parsed summary and quality scores, and the variation image names."""
    iterations: dict[int, TraceIteration] = {}
    for name, text in files.items():
        found = _iteration_of(name)
        if found is None:
            continue
        agent, number = found
        entry = iterations.setdefault(number, TraceIteration(iteration=number))
        if agent == 1:
            entry.rewrite = text.strip()
            continue
        critic = _json_or_none(text)
        if isinstance(critic, dict):
            entry.scores = _numeric_scores(critic.get("scores"))
            entry.overall = _number_or_none(critic.get("overall"))
            entry.feedback = _text_or_none(critic.get("feedback"))
            entry.negative_prompt = _text_or_none(critic.get("negative_prompt"))
        else:
            entry.critic_text = text.strip()
    summary = _json_or_none(files.get("prompt_trace_summary.json"))
    approve_threshold = (
        _number_or_none(summary.get("approve_threshold")) if isinstance(summary, dict) else None
    )
    for entry in iterations.values():
        entry.approved = (
            approve_threshold is not None and entry.overall is not None and entry.overall >= approve_threshold
        )
    original = files.get("00_original_prompt.txt")
    final = files.get("final_enhanced_prompt.txt")
    quality = _json_or_none(files.get("quality_scores.json"))
    return EnhancementTrace(
        original_prompt=original.strip() if original is not None else None,
        iterations=[iterations[number] for number in sorted(iterations)],
        final_prompt=final.strip() if final is not None else None,
        summary=summary if isinstance(summary, dict) else None,
        quality_scores=quality if isinstance(quality, dict) else None,
        variations=sorted(
            (name for name in files if name.startswith("image_") and name.endswith(".png")),
            key=lambda name: int(name[6:-4]) if name[6:-4].isdigit() else 0,
        ),
    )


def _number_or_none(value: Any) -> float | None:
    # Critic JSON comes from an LLM: a non-number (or a bool) is no score.
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _text_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _numeric_scores(value: Any) -> dict[str, float]:
    if not isinstance(value, dict):
        return {}
    return {str(k): score for k, v in value.items() if (score := _number_or_none(v)) is not None}


# -- the Director's side -------------------------------------------------------------------------


class EventRecorder:
    """Appends one generation's events; never raises (a broken log must not fail a generation).

    The least a Director has to do is call ``observe(**fields)`` with every DB update it makes:
    stage changes, finished scenes (with their variation scores and best pick), new warnings and
    the final status become events. ``enhancement(scene, trace_files)`` adds the enhancer's
    iterations. Async methods run the (synchronous) store in a thread, like ``store.db``.
    """

    def __init__(self, store: EventStore | None, generation_id: str, row: Any = None) -> None:
        self.store = store
        self.generation_id = generation_id
        # Starting from the row as it is: a resumed run does not repeat what was reported.
        self.row = RowSnapshot.model_validate(row) if row is not None else RowSnapshot(id=generation_id)
        self._diff = RowDiff(self.row)

    async def emit(
        self, type: EventType, scene: int | None = None, data: dict[str, Any] | None = None
    ) -> GenerationEvent | None:
        """Append an event; None when there is no store or the append failed (logged)."""
        if self.store is None:
            return None
        try:
            return await asyncio.to_thread(self.store.append, self.generation_id, type, scene, data)
        except Exception:
            logger.exception(
                "[generation %s] could not record a %s event",
                self.generation_id,
                type,
                extra={"generation_id": self.generation_id},
            )
            return None

    async def observe(self, **fields: Any) -> None:
        """Record the events implied by a DB update (the same keyword arguments as ``Database.update``)."""
        known = {key: value for key, value in fields.items() if key in RowSnapshot.model_fields}
        # Validated, so a caller may pass records or plain JSON alike.
        self.row = RowSnapshot.model_validate({**dict(self.row), **known})
        for type, scene, data in self._diff.diff(self.row):
            await self.emit(type, scene, data)

    async def catch_up(self) -> None:
        """A resumed run: emit what the row holds but the log lacks.

        The row update and its events are separate transactions; a process that dies between them
        loses the events, and the row is the truth. A fresh run has nothing to catch up.
        """
        if self.store is None:
            return
        logged: list[GenerationEvent] = []
        try:
            while page := await asyncio.to_thread(
                self.store.read, self.generation_id, logged[-1].seq if logged else 0
            ):
                logged.extend(page)
        except Exception:
            logger.exception(
                "[generation %s] could not read the event log to catch up",
                self.generation_id,
                extra={"generation_id": self.generation_id},
            )
            return
        self._diff.scenes_seen = sum(event.type == "scene_done" for event in logged)
        self._diff.warnings_seen = sum(event.type == "warning" for event in logged)
        for type, scene, data in self._diff.diff(self.row):
            await self.emit(type, scene, data)

    async def enhancement(self, scene: int, trace_files: Mapping[str, str]) -> None:
        """One ``enhancer_iteration`` event per Cinematographer rewrite + critic verdict."""
        for entry in enhancement_trace(trace_files).iterations:
            await self.emit(
                "enhancer_iteration",
                scene,
                {
                    "iteration": entry.iteration,
                    "prompt": entry.rewrite,
                    "scores": entry.scores,
                    "overall": entry.overall,
                    "feedback": entry.feedback,
                    "approved": entry.approved,
                },
            )
