"""The Director's logic, without Ray: run one generation end to end, persisting after every step.

plan → per scene (enhance → generate variations → score → pick best) → chain the kept image into
the next scene → complete. The models sit behind ``DirectorPorts`` (in production: deployment
handles, see ``deployments/director.py``; in unit tests: fakes), so this class runs anywhere.

Degradation, never failure, in advanced mode: a failing scorer is dropped and the overall score
reweighted from the rest; all scorers failing keeps the enhanced prompt's first image (and later
scenes generate a single image); a failing LLM leaves the original prompt. Each is a warning.
A generation that was running when its process died resumes from its last committed scene.

Storage writes and DB calls are retried with backoff on transient errors (``store.faults``); a
store that stays down fails the generation with a clear ``error``, a database that stays down stops
the run without a status change (nothing can be written) and the recovery pass resumes it later.
See docs/reliability.md for every fault and what it does.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import datetime, timedelta
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from scenechain.protocol import FINISHED_STATUSES, GenerateRequest

from agents.planner import fallback_plan as agents_fallback_plan
from director.events import EventRecorder
from director.ports import (
    DirectorPorts,
    EnhanceOutcome,
    GenerationResult,
    PlannedScene,
    PlanOutcome,
    ScorerFailed,
    plan_outcome,
)
from director.records import DEADLINE_STAGE, deadline_at, image_url
from generator.core import NEGATIVE_PROMPT_WARNING, GenerationRequest, is_out_of_memory
from scorers.aggregate import NoScoresError, aggregate
from scorers.base import ScoreResult
from scorers.registry import SCORER_NAMES
from store import metrics
from store.db import Database, GenerationRecord, utcnow
from store.events import EventStore
from store.faults import DatabaseUnavailable, IOUnavailable, RetryPolicy, Target, retry_io
from store.logging_setup import generation_context
from store.records import (
    AdvancedImageSettings,
    ImageScores,
    SceneQualityRecord,
    SceneRecord,
    StoryboardPlan,
)
from store.storage import Storage
from weights.errors import describe_error

logger = logging.getLogger(__name__)

T = TypeVar("T")
# The scorer that compares variations with the previous kept scene (its image tower: CLIP).
CONSISTENCY_SCORER = "clipscore"


class DeadlinePassed(Exception):
    """The generation's deadline (``deadline_s`` / Cancel-After) passed; seen at a stage boundary."""


class CancelledElsewhere(Exception):
    """The generation was cancelled through another Director replica (seen at the next persist)."""


class SceneFailed(RuntimeError):
    """A scene cannot be made; the message is the generation's user-facing ``error``."""


class DirectorSettings(BaseModel):
    """Knobs of the Director core (from AppArgs)."""

    score_weights: dict[str, float] | None = Field(
        default=None, description="Scorer weights; None: defaults."
    )
    max_concurrent_generations: int = Field(default=4, ge=1, description="Generations run at once.")
    plan_timeout_s: float = Field(default=300.0, gt=0, description="Timeout of planning.")
    enhance_timeout_s: float = Field(default=600.0, gt=0, description="Timeout of one scene's enhancement.")
    generate_timeout_s: float = Field(default=900.0, gt=0, description="Timeout of one scene's generation.")
    score_timeout_s: float = Field(default=600.0, gt=0, description="Timeout of one scorer call.")
    lease_timeout_s: float = Field(
        default=60.0, gt=0, description="A running generation whose owner is silent this long is taken over."
    )
    io_retry: RetryPolicy = Field(
        default_factory=RetryPolicy, description="Retry of storage writes and DB calls on transient errors."
    )


class RetentionSettings(BaseModel):
    """How long finished generations (rows, images, traces) are kept."""

    model_config = ConfigDict(extra="forbid")

    ttl_days: float | None = Field(
        default=None, gt=0, description="Delete finished generations older than this."
    )
    sweep_interval_s: float = Field(default=3600.0, gt=0, description="How often the Director sweeps.")


class _GenerationLog(logging.LoggerAdapter):
    """Puts the generation id into every record (message prefix + ``extra``)."""

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, MutableMapping[str, Any]]:
        generation_id = (self.extra or {}).get("generation_id")
        kwargs.setdefault("extra", {})["generation_id"] = generation_id
        return f"[generation {generation_id}] {msg}", kwargs


def fallback_plan(brief: str, num_scenes: int, reason: str) -> PlanOutcome:
    """The planner's own deterministic fallback, when the planner could not be reached at all."""
    return plan_outcome(
        agents_fallback_plan(brief, num_scenes, f"planner failed ({reason}); used the fallback plan")
    )


class DirectorCore:
    """Runs generations as asyncio tasks, one per generation, bounded by a semaphore."""

    def __init__(
        self,
        db: Database,
        storage: Storage,
        ports: DirectorPorts,
        settings: DirectorSettings | None = None,
        *,
        owner: str | None = None,
        events: EventStore | None = None,
    ) -> None:
        self.owner = owner or f"director-{uuid.uuid4().hex[:12]}"
        self.db = db
        self.events = events
        self.storage = storage
        self.ports = ports
        self.settings = settings or DirectorSettings()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._slots = asyncio.Semaphore(self.settings.max_concurrent_generations)
        self._shutting_down = False

    # -- task management -----------------------------------------------------------------------

    def start(self, generation_id: str) -> bool:
        """Launch the generation's task unless one is already running here; True when launched."""
        task = self._tasks.get(generation_id)
        if task is not None and not task.done():
            return False
        task = asyncio.get_running_loop().create_task(self.run(generation_id), name=f"gen-{generation_id}")
        self._tasks[generation_id] = task
        task.add_done_callback(self._forget)
        metrics.set_queue_depth("director", len(self.running()))
        return True

    def _forget(self, task: asyncio.Task[None]) -> None:
        self._tasks.pop(task.get_name().removeprefix("gen-"), None)
        metrics.set_queue_depth("director", len(self.running()))  # queued + running here

    def running(self) -> list[str]:
        """Ids of generations with a live task here."""
        return [gid for gid, task in self._tasks.items() if not task.done()]

    async def wait(self, generation_id: str) -> None:
        """Wait for the generation's task, if any (tests, shutdown)."""
        task = self._tasks.get(generation_id)
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(task)

    async def cancel(self, generation_id: str) -> bool:
        """Cancel a queued/running generation; True when it was unfinished."""
        task = self._tasks.get(generation_id)
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            return True
        record = await self._db(self.db.get, generation_id)
        if record.status in FINISHED_STATUSES:
            return False
        await self._db(
            self.db.update, generation_id, status="cancelled", stage="cancelled", finished_at=utcnow()
        )
        await EventRecorder(self.events, generation_id, record).observe(status="cancelled", stage="cancelled")
        return True

    async def recover(self) -> list[str]:
        """Start every queued/running generation that has no task here (start-up + periodic)."""
        started = []
        for record in await self._db(self.db.list_unfinished):
            if self.start(record.id):
                started.append(record.id)
        if started:
            logger.info("recovery pass resumed %d generation(s): %s", len(started), started)
        return started

    async def heartbeat(self) -> None:
        """Renew the leases of the generations running here (call well within lease_timeout_s)."""
        await self._db(self.db.heartbeat, self.running(), self.owner)

    async def shutdown(self) -> None:
        """Cancel the local tasks without marking them cancelled (a restart resumes them)."""
        self._shutting_down = True
        tasks = [task for task in self._tasks.values() if not task.done()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    # -- helpers -------------------------------------------------------------------------------

    async def _db(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """A DB call in a thread, retried on transient errors (DatabaseUnavailable when they persist)."""
        name = getattr(func, "__name__", "call")
        what = f"{name} of {args[0]}" if args and isinstance(args[0], str) else name
        return await self._io("db", what, functools.partial(func, *args, **kwargs))

    async def _io(
        self,
        target: Target,
        what: str,
        call: Callable[[], T],
        *,
        log: logging.Logger | logging.LoggerAdapter = logger,
        on_retry: Callable[[BaseException], None] | None = None,
    ) -> T:
        return await retry_io(target, what, call, self.settings.io_retry, log=log, on_retry=on_retry)

    @staticmethod
    async def _timed(awaitable: Awaitable[T], timeout_s: float) -> tuple[T, float]:
        started = time.perf_counter()
        result = await asyncio.wait_for(awaitable, timeout_s)
        return result, round(time.perf_counter() - started, 3)

    # -- one generation ------------------------------------------------------------------------

    async def run(self, generation_id: str) -> None:
        """Run (or resume) one generation to a finished status; never raises model failures."""
        # Every record logged by this task (and by tasks it starts) carries the generation id.
        with generation_context(generation_id):
            await self._run(generation_id)

    async def _run(self, generation_id: str) -> None:
        log = _GenerationLog(logger, {"generation_id": generation_id})
        try:
            # A queued generation whose deadline passes while it waits for a slot never starts.
            if not await self._acquire_slot_before_deadline(generation_id, log):
                return
            try:
                await self._claim_and_execute(generation_id, log)
            finally:
                self._slots.release()
        except DatabaseUnavailable as exc:
            # Nothing can be written, not even "failed": the row stays running, its lease lapses
            # and a recovery pass resumes it from its last committed scene once the DB answers.
            log.error("stopped (%s); a recovery pass resumes it once the database is back", exc)

    async def _acquire_slot_before_deadline(self, generation_id: str, log: _GenerationLog) -> bool:
        """Take a slot; False (and the row cancelled, reason deadline) when the deadline comes first."""
        record = await self._db(self.db.get, generation_id)
        deadline = deadline_at(record.created_at, record.request)
        if deadline is None or record.status != "queued":
            await self._slots.acquire()
            return True
        try:
            await asyncio.wait_for(self._slots.acquire(), max(0.0, (deadline - utcnow()).total_seconds()))
            if utcnow() < deadline:
                return True
            self._slots.release()
        except TimeoutError:
            pass
        await self._cancel_queued_for_deadline(record, log)
        return False

    async def _cancel_queued_for_deadline(self, record: GenerationRecord, log: _GenerationLog) -> None:
        seconds = record.request.get("deadline_s")
        warning = f"deadline of {seconds}s passed while queued; the generation never started"
        updated = await self._db(
            self.db.update,
            record.id,
            require_status="queued",
            status="cancelled",
            stage=DEADLINE_STAGE,
            warnings=[*record.warnings, warning],
            finished_at=utcnow(),
        )
        if updated.status != "cancelled" or updated.stage != DEADLINE_STAGE:
            return  # started or finished elsewhere meanwhile
        log.info("cancelled: %s", warning)
        metrics.record_generation("cancelled")
        await EventRecorder(self.events, record.id, record).observe(
            status="cancelled", stage=DEADLINE_STAGE, warnings=updated.warnings
        )

    async def _claim_and_execute(self, generation_id: str, log: _GenerationLog) -> None:
        # 1. take the lease (a live owner elsewhere keeps it)
        stale_before = utcnow() - timedelta(seconds=self.settings.lease_timeout_s)
        if not await self._db(self.db.claim, generation_id, self.owner, stale_before=stale_before):
            log.debug("not claimed: finished, or owned by a live Director replica")
            return
        record = await self._db(self.db.get, generation_id)
        run = _Run(self, record, log)
        # 2. run it to a finished status (a DB outage past the retries propagates: see _run)
        try:
            await run.execute()
            metrics.observe_generation("completed", run.timings, run.scores)
        except asyncio.CancelledError:
            if self._shutting_down:
                log.info("stopped by shutdown; a recovery pass resumes it")
                raise
            log.info("cancelled")
            metrics.record_generation("cancelled")
            await self._db(
                self.db.update, generation_id, status="cancelled", stage="cancelled", finished_at=utcnow()
            )
            await run.events.observe(status="cancelled", stage="cancelled")
            raise
        except DeadlinePassed:
            seconds = run.request.deadline_s
            run.warn(
                f"deadline of {seconds}s passed at stage '{run.stage}'; "
                f"stopped with {len(run.scenes)} finished scene(s) kept"
            )
            metrics.record_generation("cancelled")
            await self._db(
                self.db.update,
                generation_id,
                status="cancelled",
                stage=DEADLINE_STAGE,
                warnings=run.warnings,
                timings=run.timings,
                finished_at=utcnow(),
            )
            await run.events.observe(status="cancelled", stage=DEADLINE_STAGE, warnings=run.warnings)
        except CancelledElsewhere:
            log.info("cancelled (through another replica)")
            await self._db(self.db.update, generation_id, stage="cancelled", finished_at=utcnow())
        except DatabaseUnavailable:
            raise
        except Exception as exc:
            error = _error_text(exc)
            log.exception("failed: %s", error)
            metrics.observe_generation("failed", run.timings, run.scores)
            await self._db(
                self.db.update,
                generation_id,
                status="failed",
                stage="failed",
                error=error,
                warnings=run.warnings,
                timings=run.timings,
                finished_at=utcnow(),
            )
            await run.events.observe(status="failed", stage="failed", error=error, warnings=run.warnings)


class _Run:
    """The state of one generation while it runs (mirrors its DB row)."""

    def __init__(self, core: DirectorCore, record: GenerationRecord, log: logging.LoggerAdapter) -> None:
        self.core = core
        self.db = core.db
        self.storage = core.storage
        self.ports = core.ports
        self.settings = core.settings
        self.record = record
        # Given the record, a resumed run does not re-announce what was already reported.
        self.events = EventRecorder(core.events, record.id, record)
        self.log = log
        self.id = record.id
        self.request = GenerateRequest.model_validate(record.request)
        self.warnings: list[str] = list(record.warnings)
        self.timings: dict[str, Any] = dict(record.timings)
        self.scenes: list[SceneRecord] = list(record.scenes)
        self.scores: dict[str, SceneQualityRecord] = dict(record.image_quality_scores)
        self.scoring_available = True
        self.deadline = deadline_at(record.created_at, record.request)
        self.stage = record.stage

    def warn(self, message: str) -> None:
        self.log.warning(message)
        if message not in self.warnings:
            self.warnings.append(message)

    def _count_retries(self, target: Target) -> Callable[[BaseException], None]:
        # Retries that succeed change nothing the user sees: logged, and counted in the timings.
        def count(_error: BaseException) -> None:
            retries = self.timings.setdefault("io_retries", {})
            retries[target] = int(retries.get(target, 0)) + 1

        return count

    async def persist(self, **fields: Any) -> None:
        self.stage = str(fields.get("stage", self.stage))
        # Only a running row is written: a cancel from another replica is never overwritten.
        # A retried update is harmless: it sets absolute values under the same require_status.
        what = f"saving generation {self.id} ({fields.get('status') or fields.get('stage', 'progress')})"
        record = await self.core._io(
            "db",
            what,
            functools.partial(
                self.db.update,
                self.id,
                require_status="running",
                warnings=self.warnings,
                timings=self.timings,
                **fields,
            ),
            log=self.log,
            on_retry=self._count_retries("db"),
        )
        if record.status != fields.get("status", "running"):
            raise CancelledElsewhere(self.id)
        await self.events.observe(warnings=self.warnings, **fields)
        # Every stage boundary passes here: past the deadline, stop before the next stage starts.
        # What this write committed (a finished scene, the plan) stays; "completed" is never undone.
        if self.deadline is not None and fields.get("status") != "completed" and utcnow() >= self.deadline:
            raise DeadlinePassed(self.id)

    async def store(self, what: str, func: Callable[..., T], *args: Any) -> T:
        """A storage call in a thread, retried on transient errors; StorageUnavailable when they persist."""
        return await self.core._io(
            "storage",
            what,
            functools.partial(func, *args),
            log=self.log,
            on_retry=self._count_retries("storage"),
        )

    async def execute(self) -> None:
        started = time.perf_counter()
        await self.events.catch_up()  # a resumed run re-announces what a crash kept from the log
        await self.persist(stage="planning")

        # 1. plan (skipped when resuming a planned generation)
        plan = self.record.storyboard_plan or await self.plan()
        planned = list(plan.scenes)

        # 2. scenes, chaining each kept image into the next scene
        done = {scene.index: scene for scene in self.scenes}
        reference: bytes | None = None
        reference_from: int | None = None
        for scene in planned:
            if scene.index in done:
                reference = await self.store(
                    f"reading scene {scene.index} image", self.storage.read_scene_image, self.id, scene.index
                )
                reference_from = scene.index
                continue
            reference = await self.run_scene(scene, len(planned), reference, reference_from)
            reference_from = scene.index

        # 3. complete
        self.timings["total_s"] = round(
            float(self.timings.get("total_s", 0.0)) + time.perf_counter() - started, 3
        )
        await self.persist(status="completed", stage="completed", finished_at=utcnow())
        self.log.info("completed %d scene(s) with %d warning(s)", len(planned), len(self.warnings))

    async def plan(self) -> StoryboardPlan:
        request = self.request
        try:
            outcome, seconds = await self.core._timed(
                self.ports.plan(request.prompt, request.num_scenes, self.record.seed),
                self.settings.plan_timeout_s,
            )
        except Exception as exc:
            outcome, seconds = fallback_plan(request.prompt, request.num_scenes, describe_error(exc)), 0.0
        if not outcome.scenes:
            outcome = fallback_plan(request.prompt, request.num_scenes, "planner returned no scenes")
        # Renumbered 1..n: the plan's order is the storyboard's, whatever the planner numbered.
        scenes = [
            scene.model_copy(update={"index": index})
            for index, scene in enumerate(outcome.scenes[: request.num_scenes], start=1)
        ]
        for message in outcome.warnings:
            self.warn(f"planner: {message}")
        if outcome.degraded and not outcome.warnings:
            self.warn("planner: LLM unavailable; used a fallback plan")
        plan = StoryboardPlan(
            scenes=scenes,
            advanced_image_generation_used=request.use_advanced_image_generation,
            advanced_image_settings=AdvancedImageSettings(
                quality_threshold=request.advanced_image_quality_threshold,
                num_variations=request.advanced_image_num_variations,
                max_enhancement_iterations=request.advanced_image_max_enhancement_iterations,
            ),
            degraded=outcome.degraded,
        )
        self.timings["plan_s"] = seconds
        await self.persist(storyboard_plan=plan, scenes_total=len(scenes), stage="scene 1: starting")
        self.log.info("planned %d scene(s) in %.2fs", len(scenes), seconds)
        return plan

    async def run_scene(
        self, scene: PlannedScene, total: int, reference: bytes | None, reference_from: int | None
    ) -> bytes:
        """Enhance, generate, score, keep the best; commits the scene; returns the kept PNG."""
        request = self.request
        advanced = request.use_advanced_image_generation
        n = scene.index
        timing: dict[str, float] = {}
        scene_started = time.perf_counter()

        # 1. prompt: enhanced in advanced mode, the planned one otherwise
        enhanced: EnhanceOutcome | None = None
        prompt = scene.prompt
        if advanced:
            await self.persist(stage=f"scene {n}: enhancing")
            enhanced, timing["enhance_s"] = await self.enhance(scene, total)
            prompt = enhanced.final_prompt or scene.prompt
        else:
            await self.store(
                f"writing scene {n} trace 00_original_prompt.txt",
                self.storage.write_trace_file,
                self.id,
                n,
                "00_original_prompt.txt",
                scene.prompt + "\n",
            )
        negative_prompt = request.negative_prompt or (enhanced.negative_prompt if enhanced else None)

        # 2. variations: seeds base+k; a single image in simple mode or once scoring is gone
        count = request.advanced_image_num_variations if advanced and self.scoring_available else 1
        seeds = [self.record.seed + k for k in range(count)]
        # scene 1 starts from the request's product reference image, if any (img2img at its own strength)
        product = await self.product_reference() if n == 1 and request.reference_image is not None else None
        await self.persist(stage=f"scene {n}: generating")
        try:
            generation, timing["generate_s"] = await self.core._timed(
                self.ports.generate(
                    GenerationRequest(
                        prompt=prompt,
                        seeds=seeds,
                        negative_prompt=negative_prompt,
                        reference_png=reference if product is None else product,
                        strength=None if product is None else request.reference_strength,
                    )
                ),
                self.settings.generate_timeout_s,
            )
        except Exception as exc:
            # The generator already split the call down to one image per call before giving up.
            if is_out_of_memory(exc):
                raise SceneFailed(
                    f"generator out of memory at scene {n} even with one image per call; "
                    "lower the resolution or the number of variations"
                ) from exc
            raise
        for message in generation.warnings:
            if request.negative_prompt is None and message.startswith(NEGATIVE_PROMPT_WARNING):
                # the enhancer's own proposal, not the user's: nothing the user sent was ignored
                self.log.info("scene %d: %s", n, message)
                continue
            # e.g. the user's negative prompt that the model family cannot take: said, never dropped
            self.warn(f"scene {n}: {message}")
        if generation.pipeline_calls > 1:
            timing["generate_calls"] = generation.pipeline_calls  # split after running out of memory
        if product is not None:
            await self.record_product_reference(n, product, generation)
        pngs = [image.png for image in generation.images]
        for k, png in enumerate(pngs, start=1):
            await self.store(
                f"writing scene {n} variation {k}", self.storage.write_variation, self.id, n, k, png
            )

        # 3. score and pick (advanced mode with more than one image)
        best = 0
        if advanced and len(pngs) > 1:
            await self.persist(stage=f"scene {n}: scoring")
            quality, timing["score_s"] = await self.score(scene, pngs, seeds, reference)
            if quality is not None:
                best = quality.best_index - 1
                self.scores[f"scene_{n}"] = quality
        elif advanced:
            self.scores[f"scene_{n}"] = _unscored_quality(
                seeds, "scoring skipped: all scorers failed earlier"
            )
            await self.store(
                f"writing scene {n} trace quality_scores.json",
                self.storage.write_trace_json,
                self.id,
                n,
                "quality_scores.json",
                self.scores[f"scene_{n}"].model_dump(mode="json"),
            )

        # 4. keep the best; commit the scene before the next starts
        kept = pngs[best]
        await self.store(f"writing scene {n} image", self.storage.write_scene_image, self.id, n, kept)
        timing["total_s"] = round(time.perf_counter() - scene_started, 3)
        self.timings[f"scene_{n}"] = timing
        self.scenes.append(
            SceneRecord(
                index=n,
                prompt=scene.prompt,
                enhanced_prompt=enhanced.final_prompt if enhanced else None,
                image_url=image_url(self.id, n),
                reference_from=reference_from,
                seeds=seeds,
                num_variations=len(pngs),
                best_index=best + 1,
                mode=generation.mode,
                reference_image=request.reference_image if product is not None else None,
            )
        )
        await self.persist(
            scenes=self.scenes,
            image_quality_scores=self.scores,
            scenes_done=len(self.scenes),
            stage=f"scene {n + 1}: starting" if n < total else "finishing",
        )
        self.log.info("scene %d/%d done (%s, %d image(s))", n, total, generation.mode, len(pngs))
        return kept

    async def product_reference(self) -> bytes:
        """The product reference image this generation was submitted with (the Ingress stored it)."""
        try:
            return await self.store(
                "reading the product reference image", self.storage.read_reference_image, self.id
            )
        except FileNotFoundError as exc:
            raise SceneFailed(
                "the product reference image of this generation is missing from the store; submit it again"
            ) from exc

    async def record_product_reference(self, n: int, png: bytes, generation: GenerationResult) -> None:
        """Scene n's trace shows what it started from: the image, its id and the strength used."""
        await self.store(
            f"writing scene {n} trace reference_image.png",
            self.storage.write_trace_file,
            self.id,
            n,
            "reference_image.png",
            png,
        )
        summary = {
            "reference_image": self.request.reference_image,
            "reference_strength": self.request.reference_strength,
            "strength_used": generation.strength,
            "mode": generation.mode,
            "steps": generation.steps,
            "fitted_to": [generation.width, generation.height],
        }
        await self.store(
            f"writing scene {n} trace reference_image.json",
            self.storage.write_trace_json,
            self.id,
            n,
            "reference_image.json",
            summary,
        )

    async def enhance(self, scene: PlannedScene, total: int) -> tuple[EnhanceOutcome, float]:
        request = self.request
        n = scene.index
        context = f"Ad brief: {request.prompt}\nScene {n} of {total}. Shot notes: {scene.shot_notes}"
        started = time.perf_counter()
        try:
            outcome = await asyncio.wait_for(
                self.ports.enhance(
                    scene.prompt,
                    request.advanced_image_max_enhancement_iterations,
                    context,
                    self.record.seed + n,
                    self.id,
                ),
                self.settings.enhance_timeout_s,
            )
        except Exception as exc:
            outcome = EnhanceOutcome(
                original_prompt=scene.prompt,
                final_prompt=scene.prompt,
                degraded=True,
                stop_reason="error",
                warnings=[f"enhancer failed ({describe_error(exc)}); used the original prompt"],
            )
        seconds = round(time.perf_counter() - started, 3)
        if outcome.degraded or not outcome.final_prompt.strip():
            outcome = outcome.model_copy(
                update={"final_prompt": outcome.final_prompt.strip() or scene.prompt}
            )
            reasons = "; ".join(outcome.warnings) or "LLM unavailable"
            self.warn(f"scene {n}: prompt enhancement degraded ({reasons}); used the original prompt")
        files = dict(outcome.trace_files) or _minimal_trace(outcome)
        for name, text in files.items():
            await self.store(
                f"writing scene {n} trace {name}", self.storage.write_trace_file, self.id, n, name, text
            )
        await self.events.enhancement(n, files)
        return outcome, seconds

    async def score(
        self, scene: PlannedScene, pngs: list[bytes], seeds: list[int], reference: bytes | None = None
    ) -> tuple[SceneQualityRecord | None, float]:
        n = scene.index
        threshold = self.request.advanced_image_quality_threshold
        # consistency with the previous kept scene: only after the first scene and when weighed
        consistency_weight = self.request.advanced_image_consistency_weight or 0.0
        compare_with = reference if consistency_weight > 0 else None
        started = time.perf_counter()

        def score_call(name: str) -> Any:
            if compare_with is not None and name == CONSISTENCY_SCORER:
                return self.ports.score(name, scene.prompt, pngs, compare_with)
            return self.ports.score(name, scene.prompt, pngs)

        results = await asyncio.gather(
            *(asyncio.wait_for(score_call(name), self.settings.score_timeout_s) for name in SCORER_NAMES),
            return_exceptions=True,
        )
        seconds = round(time.perf_counter() - started, 3)
        by_name: dict[str, ScoreResult | BaseException] = {}
        for name, result in zip(SCORER_NAMES, results, strict=True):
            if isinstance(result, asyncio.CancelledError):
                raise result
            by_name[name] = (
                result if isinstance(result, ScoreResult | BaseException) else ScorerFailed(str(result))
            )
        consistency: list[float] | None = None
        if compare_with is not None:
            clip_result = by_name.get(CONSISTENCY_SCORER)
            values = clip_result.extra.get("consistency") if isinstance(clip_result, ScoreResult) else None
            if isinstance(values, list) and len(values) == len(pngs):
                consistency = [float(value) for value in values]
            else:
                self.warn(
                    f"scene {n}: consistency with scene {n - 1} not computed ({CONSISTENCY_SCORER} gave none)"
                )
        try:
            combined = aggregate(
                by_name,
                self.settings.score_weights,
                consistency=consistency,
                consistency_weight=consistency_weight,
            )
        except NoScoresError as exc:
            # Keep the enhanced prompt's first image; later scenes generate one image only.
            self.scoring_available = False
            self.warn(f"scene {n}: all scorers failed ({exc}); kept the first image unscored")
            quality = _unscored_quality(seeds, str(exc)).model_copy(
                update={
                    "scorers_failed": {
                        name: describe_error(result)
                        for name, result in by_name.items()
                        if isinstance(result, BaseException)
                    }
                }
            )
            await self.store(
                f"writing scene {n} trace quality_scores.json",
                self.storage.write_trace_json,
                self.id,
                n,
                "quality_scores.json",
                quality.model_dump(mode="json"),
            )
            return quality, seconds
        for name, reason in combined.scorers_failed.items():
            self.warn(
                f"scene {n}: scorer {name} failed ({reason}); overall reweighted from "
                f"{', '.join(combined.scorers_used)}"
            )
        below = combined.best_overall < threshold
        if below:
            self.warn(
                f"scene {n}: best overall score {combined.best_overall:.1f} is below the quality "
                f"threshold {threshold:g}"
            )
        quality = SceneQualityRecord(
            best_index=combined.best_index + 1,
            best_overall=round(combined.best_overall, 4),
            per_image=[
                ImageScores.model_validate(
                    {**scores.model_dump(), "consistency": consistency[k] if consistency else None}
                )
                for k, scores in enumerate(combined.per_image)
            ],
            below_threshold=below,
            scorers_used=combined.scorers_used,
            scorers_failed=combined.scorers_failed,
            seeds=seeds,
        )
        trace = {
            **quality.model_dump(mode="json", exclude={"note"}),
            "scene": n,
            "prompt": scene.prompt,
            "quality_threshold": threshold,
            "weights": combined.weights,
            "consistency_weight": combined.consistency_weight,
            "images": [f"image_{k}.png" for k in range(1, len(pngs) + 1)],
            "raw": {name: result.raw for name, result in by_name.items() if isinstance(result, ScoreResult)},
        }
        await self.store(
            f"writing scene {n} trace quality_scores.json",
            self.storage.write_trace_json,
            self.id,
            n,
            "quality_scores.json",
            trace,
        )
        return quality, seconds


def _unscored_quality(seeds: list[int], reason: str) -> SceneQualityRecord:
    return SceneQualityRecord(
        best_index=1,
        best_overall=None,
        per_image=[],
        below_threshold=False,
        scorers_used=[],
        scorers_failed={},
        seeds=seeds,
        note=reason,
    )


def _minimal_trace(outcome: EnhanceOutcome) -> dict[str, str]:
    """The trace of an enhancement that never reached the agents (the handle call failed)."""
    summary = {
        "original_prompt": outcome.original_prompt,
        "final_prompt": outcome.final_prompt,
        "iterations": outcome.iterations,
        "approved": outcome.approved,
        "stop_reason": outcome.stop_reason,
        "degraded": outcome.degraded,
        "warnings": outcome.warnings,
    }
    return {
        "00_original_prompt.txt": outcome.original_prompt + "\n",
        "final_enhanced_prompt.txt": outcome.final_prompt + "\n",
        "prompt_trace_summary.json": json.dumps(summary, indent=2, sort_keys=True),
    }


def _error_text(exc: BaseException) -> str:
    """The generation's ``error``: our own failures carry a user-facing message; others get their type."""
    if isinstance(exc, IOUnavailable | SceneFailed):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def purge_finished_before(db: Database, storage: Storage, cutoff: datetime) -> list[str]:
    """Delete finished generations created before ``cutoff``: files first, then the row."""
    from store.events import SqlEventStore  # noqa: PLC0415

    events = SqlEventStore(db.engine)
    removed = []
    for record in db.list_finished_before(cutoff):
        storage.delete_generation(record.id)
        events.delete(record.id)
        db.delete(record.id)
        removed.append(record.id)
    if removed:
        logger.info("retention removed %d generation(s)", len(removed))
    return removed


def retention_cutoff(ttl_days: float) -> datetime:
    """Now minus the TTL."""
    return utcnow() - timedelta(days=ttl_days)
