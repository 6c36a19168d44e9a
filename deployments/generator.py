"""Generator deployment: the diffusion core behind ``@serve.batch``.

Concurrent requests (several scenes or generations at once) are collected into one batch and
handed to ``DiffusionGenerator.generate_many``, which merges compatible requests into one pipeline
call. A failing batch is retried request by request so one bad request fails only itself.
Running out of memory is handled in the core: it splits the pipeline call (down to one image per
call) and raises ``GeneratorOutOfMemory`` only when a single image does not fit.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

from ray import serve

from deployments.settings import GeneratorReplicaSettings
from generator.core import DiffusionGenerator, GenerationRequest, GenerationResult

logger = logging.getLogger(__name__)

HEALTH_PROBE_IDLE_S = 120.0  # probe the model only when no batch succeeded this recently


@serve.deployment(name="Generator", max_ongoing_requests=16, health_check_period_s=30)
class GeneratorDeployment:
    """Wraps one ``DiffusionGenerator`` (model and defaults from the app's profile)."""

    def __init__(self, settings: dict[str, Any]) -> None:
        config = GeneratorReplicaSettings.model_validate(settings)
        self.core = DiffusionGenerator(
            config.spec,
            config.generation,
            device=config.device,
            dtype=config.dtype,
            model_dir=Path(config.model_dir),
        )
        self._pipeline = asyncio.Lock()  # batches and the health probe share one pipeline
        self._last_ok = time.monotonic()
        self._generate_batch.set_max_batch_size(config.batch.max_batch_size)
        self._generate_batch.set_batch_wait_timeout_s(config.batch.batch_wait_timeout_s)

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        """Images for one request (batched with concurrent callers)."""
        outcome = await self._generate_batch(request)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    @serve.batch(max_batch_size=4, batch_wait_timeout_s=0.05)
    async def _generate_batch(
        self, requests: list[GenerationRequest]
    ) -> list[GenerationResult | BaseException]:
        try:
            async with self._pipeline:
                results = list(await asyncio.to_thread(self.core.generate_many, requests))
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
