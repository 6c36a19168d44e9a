"""Scorer deployment: one class, bound four times (PickScore, CLIPScore, VQAScore, Aesthetic).

``@serve.batch`` collects concurrent calls; calls with the same prompt are scored in one model
call. Failures come back as ``ScoreOutcome.error`` (not exceptions) so the Director can reweight.

Health: a loaded model that can no longer score (a broken device, a corrupted model) fails
``check_health`` so Serve replaces the replica. A scorer that failed to load, or whose failure is
injected, stays healthy: the Director degrades around it, and a restart would not help.
"""

from __future__ import annotations

import asyncio
import io
import logging
import time
from pathlib import Path
from typing import Any

from PIL import Image
from ray import serve

from deployments.batcher import DispatchBatcher
from deployments.costmodel import StageClock, replica_device_key
from deployments.settings import ScorerReplicaSettings
from director.ports import ScoreOutcome, ScoreRequest
from scorers.base import FailingScorer, Scorer, ScoreResult
from scorers.costmodel import build_scorer_or_costmodel

logger = logging.getLogger(__name__)

HEALTH_PROBE_IDLE_S = 120.0  # probe the model only when no call scored this recently
HEALTH_PROBE_PROMPT = "a grey square"


@serve.deployment(name="Scorer", max_ongoing_requests=32, health_check_period_s=30)
class ScorerDeployment:
    """Wraps one scorer core chosen by ``name``."""

    def __init__(self, settings: dict[str, Any]) -> None:
        config = ScorerReplicaSettings.model_validate(settings)
        self.name = name = config.name
        self.load_error: str | None = None
        self.core: Scorer | None
        try:
            self.core = build_scorer_or_costmodel(
                name,
                config.spec,
                device=config.device,
                dtype=config.dtype,
                model_dir=Path(config.model_dir),
                device_key=replica_device_key(f"scorer-{name}"),
            )
        except Exception as exc:
            # A scorer that cannot load answers every call with its error: the app still serves.
            logger.exception("scorer %s failed to load", name)
            self.core = None
            self.load_error = f"{type(exc).__name__}: {exc}"
        self._model = asyncio.Lock()  # batches and the health probe share one model
        self._last_ok = time.monotonic()
        self._clock = StageClock()
        self._score_batch.set_max_batch_size(config.batch.max_batch_size)
        self._score_batch.set_batch_wait_timeout_s(config.batch.batch_wait_timeout_s)
        self._dispatch: DispatchBatcher[ScoreRequest, ScoreOutcome] | None = None
        if config.batch.unit == "images":
            # an image budget, filled when the (shared) device frees up: see deployments.batcher
            self._dispatch = DispatchBatcher(
                self._run_scores,
                size=lambda request: len(request.images),
                budget=config.batch.max_batch_size,
                wait_s=config.batch.batch_wait_timeout_s,
            )

    async def score(self, request: ScoreRequest) -> ScoreOutcome:
        """Scores of one scene's images (batched with concurrent callers)."""
        if self.core is None:
            return ScoreOutcome(error=f"{self.name} unavailable: {self.load_error}")
        entered = time.perf_counter()
        if self._dispatch is not None:
            outcome = await self._dispatch.submit(request)
        else:
            outcome = await self._score_batch(request)
        self._clock.record(request, entered)
        return outcome

    def stage_timings(self) -> list[dict[str, float]]:
        """Per request since the last call: time in this replica, device compute and wait."""
        return self._clock.take()

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.02)
    async def _score_batch(self, requests: list[ScoreRequest]) -> list[ScoreOutcome]:
        return await self._run_scores(requests)

    async def _run_scores(self, requests: list[ScoreRequest]) -> list[ScoreOutcome]:
        async with self._model:
            started = time.perf_counter()
            outcomes = await asyncio.to_thread(self._score_grouped, requests)
            take = getattr(self.core, "take_holds", None)
            holds = list(take()) if take is not None else []
            self._clock.note_batch(requests, holds, time.perf_counter() - started)
            return outcomes

    def _score_grouped(self, requests: list[ScoreRequest]) -> list[ScoreOutcome]:
        core = self.core
        if core is None:  # score() answers before batching; this keeps the type checker honest
            return [ScoreOutcome(error=f"{self.name} unavailable: {self.load_error}") for _ in requests]
        # Requests with the same prompt (and reference) share one model call; results are split back in order.
        outcomes: list[ScoreOutcome | None] = [None] * len(requests)
        groups: dict[tuple[str, bytes | None], list[int]] = {}
        for position, request in enumerate(requests):
            groups.setdefault((request.prompt, request.reference_png), []).append(position)
        # 1. decode every group's images (and its reference, for scorers that compare with one)
        decoded: list[tuple[str, list[int], list[list[Image.Image]], Image.Image | None]] = []
        for (prompt, reference_png), positions in groups.items():
            try:
                images = [
                    [Image.open(io.BytesIO(png)).convert("RGB") for png in requests[p].images]
                    for p in positions
                ]
                reference = None
                if reference_png is not None and getattr(core, "takes_reference", False):
                    reference = Image.open(io.BytesIO(reference_png)).convert("RGB")
            except Exception as exc:
                for position in positions:
                    outcomes[position] = ScoreOutcome(error=f"{type(exc).__name__}: {exc}")
                continue
            decoded.append((prompt, positions, images, reference))
        # 2. score: every group in one model call when the core can (prompts of different
        #    generations in one forward pass), else one call per group
        results: list[ScoreResult | BaseException] = []
        score_many = getattr(core, "score_many", None)
        if score_many is not None and decoded:
            try:
                flat_groups = [(p, [im for g in imgs for im in g], ref) for p, _, imgs, ref in decoded]
                results = list(score_many(flat_groups))
                self._last_ok = time.monotonic()
            except Exception as exc:
                results = [exc for _ in decoded]
        else:
            for prompt, _, images, reference in decoded:
                flat = [image for group in images for image in group]
                try:
                    if reference is not None:
                        results.append(core.score(prompt, flat, reference=reference))  # type: ignore[call-arg]
                    else:
                        results.append(core.score(prompt, flat))
                    self._last_ok = time.monotonic()
                except Exception as exc:
                    results.append(exc)
        # 3. split each group's result back per request
        for (_, positions, images, _), result in zip(decoded, results, strict=True):
            if isinstance(result, BaseException):
                for position in positions:
                    outcomes[position] = ScoreOutcome(error=f"{type(result).__name__}: {result}")
                continue
            start = 0
            for position, group in zip(positions, images, strict=True):
                end = start + len(group)
                outcomes[position] = ScoreOutcome(
                    result=ScoreResult(
                        scorer=result.scorer,
                        raw=result.raw[start:end],
                        normalized=result.normalized[start:end],
                        extra=_slice_extra(result.extra, start, end, len(result.raw)),
                        seconds=result.seconds,
                    )
                )
                start = end
        return [outcome or ScoreOutcome(error="not scored") for outcome in outcomes]

    async def check_health(self) -> None:
        """Fails when the loaded model can't score an 8x8 probe, unless a call scored recently.

        Healthy when the model failed to load or its failure is injected (the Director degrades
        around it; a new replica would fail the same way).
        """
        if self.core is None or isinstance(self.core, FailingScorer):
            return
        if time.monotonic() - self._last_ok < HEALTH_PROBE_IDLE_S:
            return
        probe = Image.new("RGB", (8, 8), (128, 128, 128))
        async with self._model:
            await asyncio.to_thread(self.core.score, HEALTH_PROBE_PROMPT, [probe])  # raises ScorerError
        self._last_ok = time.monotonic()


def _slice_extra(extra: dict[str, Any], start: int, end: int, total: int) -> dict[str, Any]:
    """Per-image lists in ``extra`` are sliced like the scores; anything else is kept.

    A softmax over the merged call is not one over this request's images: renormalised over the
    slice it is (exp(x_i)/Z restricted to a subset, divided by the subset's sum).
    """
    sliced = {
        key: value[start:end] if isinstance(value, list) and len(value) == total else value
        for key, value in extra.items()
    }
    softmax = sliced.get("softmax")
    if isinstance(softmax, list) and softmax and len(softmax) == end - start:
        mass = sum(softmax)
        sliced["softmax"] = [p / mass for p in softmax] if mass > 0 else softmax
    return sliced
