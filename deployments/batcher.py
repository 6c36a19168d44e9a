"""Batches formed when the device frees up, not when requests arrive.

Ray Serve's ``@serve.batch`` (2.60) forms a batch as soon as its wait times out and then queues the
formed batch behind the running one (``max_concurrent_batches``): under load a GPU replica runs a
string of small batches while dozens of requests wait. ``DispatchBatcher`` keeps one FIFO of requests
and, each time the previous batch finishes, takes everything waiting up to a budget (images, not
requests: Serve's ``batch_size_fn`` idea), so batches grow with the load. When the device was idle it
waits ``wait_s`` first, so concurrent arrivals share the first batch.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

Item = TypeVar("Item")
Outcome = TypeVar("Outcome")


class DispatchBatcher(Generic[Item, Outcome]):
    """One batch at a time; each batch is everything waiting, up to ``budget`` (by ``size``)."""

    def __init__(
        self,
        run: Callable[[list[Item]], Awaitable[list[Outcome]]],
        *,
        size: Callable[[Item], int],
        budget: int,
        wait_s: float,
    ) -> None:
        self.run = run
        self.size = size
        self.budget = budget
        self.wait_s = wait_s
        self.pending: deque[tuple[Item, asyncio.Future[Outcome]]] = deque()
        self.arrived = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.batch_sizes: list[int] = []  # items per batch, for tests and diagnostics

    async def submit(self, item: Item) -> Outcome:
        """The outcome of ``item``, run in the next batch that has room for it."""
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self.pending.append((item, future))
        self.arrived.set()
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._loop())
        return await future

    def _take(self) -> list[tuple[Item, asyncio.Future[Outcome]]]:
        batch: list[tuple[Item, asyncio.Future[Outcome]]] = []
        used = 0
        while self.pending:
            item, future = self.pending[0]
            if future.cancelled():
                self.pending.popleft()
                continue
            cost = self.size(item)
            if batch and used + cost > self.budget:
                break
            batch.append(self.pending.popleft())
            used += cost
        return batch

    async def _loop(self) -> None:
        idle = True
        while True:
            if not self.pending:
                self.arrived.clear()
                await self.arrived.wait()
                idle = True
            if idle and self.wait_s > 0:
                await asyncio.sleep(self.wait_s)  # let concurrent arrivals join the first batch
            idle = False
            batch = self._take()
            if not batch:
                continue
            self.batch_sizes.append(len(batch))
            try:
                outcomes = await self.run([item for item, _ in batch])
            except Exception as exc:  # run() reports per item; this is a bug guard, not a path
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), outcome in zip(batch, outcomes, strict=True):
                if not future.done():
                    future.set_result(outcome)
