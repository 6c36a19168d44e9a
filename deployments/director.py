"""Director deployment: ``DirectorCore`` with ports over the model deployments' handles."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from ray import serve
from ray.serve.handle import DeploymentHandle

from deployments.settings import DirectorReplicaSettings
from director.core import DirectorCore, purge_finished_before, retention_cutoff
from director.ports import (
    EnhanceOutcome,
    GenerationRequest,
    GenerationResult,
    PlanOutcome,
    ScoreRequest,
    ScoreResult,
    ScorerFailed,
)
from director.webhooks import WebhookDispatcher
from store.db import Database
from store.events import SqlEventStore
from store.faults import with_faults
from store.storage import Storage
from store.webhooks import WebhookStore

logger = logging.getLogger(__name__)


class HandlePorts:
    """``DirectorPorts`` over deployment handles."""

    def __init__(
        self, enhancer: DeploymentHandle, generator: DeploymentHandle, scorers: dict[str, DeploymentHandle]
    ) -> None:
        self.enhancer = enhancer
        self.generator = generator
        self.scorers = scorers

    async def plan(self, brief: str, num_scenes: int, seed: int) -> PlanOutcome:
        return await self.enhancer.plan.remote(brief, num_scenes, seed)

    async def enhance(
        self, prompt: str, max_iterations: int, context: str, seed: int, generation_id: str
    ) -> EnhanceOutcome:
        return await self.enhancer.enhance.remote(prompt, max_iterations, context, seed, generation_id)

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        return await self.generator.generate.remote(request)

    async def score(
        self, scorer: str, prompt: str, images: list[bytes], reference: bytes | None = None
    ) -> ScoreResult:
        request = ScoreRequest(prompt=prompt, images=images, reference_png=reference)
        outcome = await self.scorers[scorer].score.remote(request)
        if outcome.result is None:
            raise ScorerFailed(outcome.error or "no result")
        return outcome.result


@serve.deployment(name="Director", max_ongoing_requests=64, health_check_period_s=30)
class DirectorDeployment:
    """Runs generations (one asyncio task each); recovers unfinished ones at start and periodically."""

    async def __init__(
        self,
        settings: dict[str, Any],
        enhancer: DeploymentHandle,
        generator: DeploymentHandle,
        scorers: dict[str, DeploymentHandle],
    ) -> None:
        self.settings = DirectorReplicaSettings.model_validate(settings)
        db = Database(self.settings.database_url)
        # Injected storage/DB faults (AppArgs.faults; off by default) wrap the real ones.
        faulty_db, storage = with_faults(db, Storage(self.settings.output_dir), self.settings.faults)
        self.core = DirectorCore(
            faulty_db,
            storage,
            HandlePorts(enhancer, generator, scorers),
            self.settings.core,
            events=SqlEventStore(db.engine),
        )
        # Webhooks: an outbox fed by the event log; pending deliveries resume after a restart.
        self.webhooks = WebhookDispatcher(
            WebhookStore(db.engine), SqlEventStore(db.engine), self.settings.webhooks
        )
        # Async constructor: runs on the replica's event loop, so these tasks really run.
        self._housekeeping = asyncio.get_running_loop().create_task(self._housekeeping_loop())
        self._webhook_loop = asyncio.get_running_loop().create_task(self.webhooks.run())

    async def submit(self, generation_id: str) -> bool:
        """Start a queued generation; returns at once (False when it already runs here)."""
        return self.core.start(generation_id)

    async def cancel(self, generation_id: str) -> bool:
        """Cancel a generation; True when it was unfinished."""
        return await self.core.cancel(generation_id)

    async def running(self) -> list[str]:
        """Ids of generations running in this replica."""
        return self.core.running()

    async def _housekeeping_loop(self) -> None:
        # Lease heartbeats often; recovery pass at start-up and then every recover_interval_s;
        # retention sweep every sweep_interval_s when a TTL is set.
        tick = max(0.5, self.core.settings.lease_timeout_s / 4)
        # A dead replica's generations become claimable after lease_timeout_s: look at least that often.
        recover_every = min(
            self.settings.recover_interval_s or float("inf"), self.core.settings.lease_timeout_s
        )
        ttl = self.settings.retention.ttl_days
        sweep_every = self.settings.retention.sweep_interval_s
        since_recover = since_sweep = float("inf")
        while True:
            try:
                await self.core.heartbeat()
                if since_recover >= recover_every:
                    since_recover = 0.0
                    await self.core.recover()
                if ttl is not None and since_sweep >= sweep_every:
                    since_sweep = 0.0
                    await asyncio.to_thread(
                        purge_finished_before, self.core.db, self.core.storage, retention_cutoff(ttl)
                    )
            except Exception:
                logger.exception("housekeeping pass failed")
            await asyncio.sleep(tick)
            since_recover += tick
            since_sweep += tick

    async def __del__(self) -> None:
        self._housekeeping.cancel()
        self._webhook_loop.cancel()
        with contextlib.suppress(BaseException):
            await self.webhooks.close()
        with contextlib.suppress(BaseException):
            await self.core.shutdown()
