"""The SSE stream loop of the ingress (``stream_events``) and the ``Last-Event-ID`` parser."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from scenechain.events import (
    FINISHED,
    TERMINAL_EVENT,
    GenerationEvent,
    format_sse,
    format_sse_comment,
    format_sse_retry,
)

from director.events import RowDiff, RowSnapshot
from store.events import EventStore

logger = logging.getLogger(__name__)


# -- the ingress's side --------------------------------------------------------------------------


async def stream_events(
    store: EventStore,
    generation_id: str,
    snapshot: Callable[[], Awaitable[Any]],
    *,
    after_seq: int = 0,
    poll_s: float = 0.5,
    heartbeat_s: float = 15.0,
    finished_grace_s: float = 2.0,
    max_duration_s: float | None = None,
    retry_ms: int = 2000,
) -> AsyncIterator[str]:
    """SSE text of a generation's events after ``after_seq``, live, until its ``done`` event.

    ``snapshot`` returns the generation row (anything ``RowSnapshot`` validates from). While the
    generation has no logged events, events are synthesized from row changes (``seq`` 0). When
    the row is finished but no ``done`` was logged within ``finished_grace_s`` (a Director that
    died), a synthesized ``done`` closes the stream. ``max_duration_s`` ends long streams (the
    client resumes with ``Last-Event-ID``).
    """
    yield format_sse_retry(retry_ms)
    started = last_output = time.monotonic()
    finished_since: float | None = None
    synthesized: RowDiff | None = None
    logged_any = after_seq > 0
    while True:
        events = await asyncio.to_thread(store.read, generation_id, after_seq)
        for event in events:
            logged_any = True
            after_seq = event.seq
            yield format_sse(event)
            last_output = time.monotonic()
            if event.type == TERMINAL_EVENT:
                return
        if events:
            continue  # drain a backlog before sleeping
        row = RowSnapshot.model_validate(await snapshot())
        if not logged_any:
            synthesized = synthesized or RowDiff()
            for type, scene, data in synthesized.diff(row):
                yield format_sse(
                    GenerationEvent(type=type, generation_id=generation_id, scene=scene, data=data)
                )
                last_output = time.monotonic()
                if type == TERMINAL_EVENT:
                    return
        elif row.status in FINISHED:
            finished_since = finished_since or time.monotonic()
            if time.monotonic() - finished_since >= finished_grace_s:
                yield format_sse(
                    GenerationEvent(
                        type=TERMINAL_EVENT,
                        generation_id=generation_id,
                        data={"status": row.status, "error": row.error},
                    )
                )
                return
        now = time.monotonic()
        if max_duration_s is not None and now - started >= max_duration_s:
            return
        if now - last_output >= heartbeat_s:
            yield format_sse_comment()
            last_output = now
        await asyncio.sleep(poll_s)


def parse_last_event_id(value: str | None) -> int:
    """The seq a client resumes after (``Last-Event-ID`` header or query); 0 when absent/invalid."""
    if value is None:
        return 0
    value = value.strip()
    # ASCII digits only ('²' is a digit to str.isdigit, not to int), and at most 18 of them.
    return int(value) if value.isascii() and value.isdigit() and len(value) <= 18 else 0
