"""Generator deployment: the diffusion core behind ``@serve.batch``.

Concurrent requests (several scenes or generations at once) are collected into one batch and
handed to ``DiffusionGenerator.generate_many``, which merges compatible requests into one pipeline
call. A failing batch is retried request by request so one bad request fails only itself.
Running out of memory is handled in the core: it splits the pipeline call (down to one image per
call) and raises ``GeneratorOutOfMemory`` only when a single image does not fit.

``batch.unit = "images"`` makes ``max_batch_size`` an image budget across requests, filled each
time the GPU frees up (``deployments.batcher``: ``@serve.batch`` forms batches too early under
load), so batches grow with the load. A ``costmodel:`` profile gets the cost-model core
(``generator.costmodel``) on this replica's simulated GPU; ``stage_timings`` reports queueing vs compute per request.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

from ray import serve

from deployments.batcher import DispatchBatcher
from deployments.costmodel import StageClock, replica_device_key
from deployments.settings import GeneratorReplicaSettings
from generator.core import GenerationRequest, GenerationResult
from generator.costmodel import build_generator

logger = logging.getLogger(__name__)

HEALTH_PROBE_IDLE_S = 120.0  # probe the model only when no batch succeeded this recently


@serve.deployment(name="Generator", max_ongoing_requests=16, health_check_period_s=30)
class GeneratorDeployment:
    """Wraps one ``DiffusionGenerator`` (model and defaults from the app's profile)."""

    def __init__(self, settings: dict[str, Any]) -> None:
        config = GeneratorReplicaSettings.model_validate(settings)
        self.core = build_generator(
            config.spec,
            config.generation,
            device=config.device,
            dtype=config.dtype,
            model_dir=Path(config.model_dir),
            device_key=replica_device_key("generator"),
        )
        self._pipeline = asyncio.Lock()  # batches and the health probe share one pipeline
        self._last_ok = time.monotonic()
        self._clock = StageClock()
        self._batched = self._generate_requests
        self._batched.set_max_batch_size(config.batch.max_batch_size)
        self._batched.set_batch_wait_timeout_s(config.batch.batch_wait_timeout_s)
        self._dispatch: DispatchBatcher[GenerationRequest, GenerationResult | BaseException] | None = None
        if config.batch.unit == "images":
            # an image budget, filled when the GPU frees up (deployments.batcher says why not @serve.batch)
            self._dispatch = DispatchBatcher(
                self._generate_batch,
                size=lambda request: len(request.seeds),
                budget=config.batch.max_batch_size,
                wait_s=config.batch.batch_wait_timeout_s,
            )

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        """Images for one request (batched with concurrent callers)."""
        entered = time.perf_counter()
        if self._dispatch is not None:
            outcome = await self._dispatch.submit(request)
        else:
            outcome = await self._batched(request)
        self._clock.record(request, entered)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def stage_timings(self) -> list[dict[str, float]]:
        """Per request since the last call: time in this replica, device compute and wait."""
        return self._clock.take()

    @serve.batch(max_batch_size=4, batch_wait_timeout_s=0.05)
    async def _generate_requests(
        self, requests: list[GenerationRequest]
    ) -> list[GenerationResult | BaseException]:
        return await self._generate_batch(requests)

    async def _generate_batch(
        self, requests: list[GenerationRequest]
    ) -> list[GenerationResult | BaseException]:
        try:
            async with self._pipeline:
                started = time.perf_counter()
                results = list(await asyncio.to_thread(self.core.generate_many, requests))
                holds = _take_holds(self.core)
                self._clock.note_batch(requests, holds, time.perf_counter() - started)
            self._last_ok = time.monotonic()
            return results
        except Exception as exc:
            if len(requests) == 1:
                return [exc]
            logger.warning("batch of %d failed (%s); retrying one by one", len(requests), exc)
        outcomes: list[GenerationResult | BaseException] = []
        for request in requests:
            try:
                async with self._pipeline:
                    outcomes.append(await asyncio.to_thread(self.core.generate, request))
            except Exception as exc:
                outcomes.append(exc)
        return outcomes

    async def check_health(self) -> None:
        """Fails when the model can't run: a 1-step 64x64 probe, unless a batch succeeded recently."""
        if time.monotonic() - self._last_ok < HEALTH_PROBE_IDLE_S:
            return
        async with self._pipeline:
            await asyncio.to_thread(self.core.check_health)  # raises GeneratorError / CUDA errors
        self._last_ok = time.monotonic()


def _take_holds(core: object) -> list[object]:
    """The cost-model core's device holds of the last batch (a real core has none)."""
    take = getattr(core, "take_holds", None)
    return list(take()) if take is not None else []
