"""What the deployments add around the cost-model cores: the simulated device a replica sits on, and
per-request stage timings (queueing vs compute, as Triton's perf_analyzer splits them).

A replica's device key is its Ray node and the GPU ids Ray assigned it, so replicas Ray placed on
the same (logical) GPU share one simulated device (``weights.costmodel.SimulatedDevice``).
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel, Field


def replica_device_key(role: str) -> str:
    """'<node id>-gpu<ids>' for a replica with GPUs, else '<node id>-<role>-cpu' (its own device)."""
    import ray  # noqa: PLC0415

    if not ray.is_initialized():
        return f"local-{role}"
    node = ray.get_runtime_context().get_node_id()
    gpus = ray.get_gpu_ids()
    return f"{node}-gpu{'_'.join(str(g) for g in gpus)}" if gpus else f"{node}-{role}-cpu"


class StageTiming(BaseModel):
    """One request through one replica."""

    in_replica_s: float = Field(description="From the replica method's entry to its return.")
    compute_s: float = Field(description="Device time of the batch(es) that served it.")
    device_wait_s: float = Field(default=0.0, description="Waiting for the shared device.")
    batch: int = Field(default=1, description="Items (images, calls) in its batch.")


class StageClock:
    """Per-request timings of one replica, drained by ``take``."""

    def __init__(self, limit: int = 20_000) -> None:
        self.records: list[StageTiming] = []
        self.limit = limit
        self.pending: dict[int, tuple[float, float, int]] = {}  # id(request) -> (compute, wait, batch)

    def note_batch(self, requests: list[Any], holds: list[Any], elapsed_s: float) -> None:
        """Attribute a batch's device holds (a real core has none: its wall time) to its requests."""
        compute = sum(h.compute_s for h in holds) if holds else elapsed_s
        wait = sum(h.wait_s for h in holds)
        batch = max((h.batch for h in holds), default=len(requests))
        for request in requests:
            self.pending[id(request)] = (compute, wait, batch)

    def record(self, request: Any, entered: float, compute_s: float | None = None) -> None:
        """The request left the replica (``entered``: perf_counter at entry)."""
        in_replica = time.perf_counter() - entered
        compute, wait, batch = self.pending.pop(id(request), (compute_s or 0.0, 0.0, 1))
        if len(self.records) < self.limit:
            self.records.append(
                StageTiming(in_replica_s=in_replica, compute_s=compute, device_wait_s=wait, batch=batch)
            )

    def take(self) -> list[dict[str, float]]:
        """Every record since the last call, as plain data (and forget them)."""
        records, self.records = self.records, []
        return [record.model_dump() for record in records]
