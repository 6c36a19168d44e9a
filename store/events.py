"""The persistent generation-event log: ``EventStore`` and its memory/SQL implementations."""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import UTC
from typing import Any, Protocol

from scenechain.events import (
    EVENT_TYPES,
    EventType,
    GenerationEvent,
)

logger = logging.getLogger(__name__)


# -- the persistent log --------------------------------------------------------------------------


class EventStore(Protocol):
    """An append-only, per-generation numbered event log."""

    def append(
        self,
        generation_id: str,
        type: EventType,
        scene: int | None = None,
        data: dict[str, Any] | None = None,
    ) -> GenerationEvent: ...

    def read(self, generation_id: str, after_seq: int = 0, limit: int = 1000) -> list[GenerationEvent]: ...

    def delete(self, generation_id: str) -> None: ...


def _check_type(type: str) -> None:
    if type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {type!r}; known: {list(EVENT_TYPES)}")


class MemoryEventStore:
    """``EventStore`` in a dict (tests, single-process tools)."""

    def __init__(self) -> None:
        self._events: dict[str, list[GenerationEvent]] = {}
        self._lock = threading.Lock()

    def append(
        self,
        generation_id: str,
        type: EventType,
        scene: int | None = None,
        data: dict[str, Any] | None = None,
    ) -> GenerationEvent:
        _check_type(type)
        with self._lock:
            log = self._events.setdefault(generation_id, [])
            event = GenerationEvent(
                type=type, generation_id=generation_id, scene=scene, data=dict(data or {}), seq=len(log) + 1
            )
            log.append(event)
            return event

    def read(self, generation_id: str, after_seq: int = 0, limit: int = 1000) -> list[GenerationEvent]:
        with self._lock:
            return [e for e in self._events.get(generation_id, []) if e.seq > after_seq][:limit]

    def delete(self, generation_id: str) -> None:
        with self._lock:
            self._events.pop(generation_id, None)


class SqlEventStore:
    """``EventStore`` in the ``generation_events`` table of the app's database (SQLite or PostgreSQL).

    The Director (one writer per generation) appends; ingress replicas read. ``seq`` is
    ``max(seq) + 1`` in the same transaction, and (generation_id, seq) is the primary key, so a
    lost race raises instead of duplicating; ``append`` retries it.
    """

    def __init__(self, engine: Any, *, create_table: bool = False) -> None:
        from store.db import GENERATION_EVENTS  # noqa: PLC0415

        self.engine = engine
        self.table = GENERATION_EVENTS
        if create_table:
            self.ensure_table()

    def ensure_table(self) -> None:
        """Create the table on a bare engine (tools and tests; the app's comes from Alembic: 0004)."""
        from sqlalchemy.exc import OperationalError, ProgrammingError  # noqa: PLC0415

        try:
            self.table.create(self.engine, checkfirst=True)
        except (OperationalError, ProgrammingError):
            # Another process created it between the check and the CREATE.
            logger.debug("generation_events created concurrently")

    def append(
        self,
        generation_id: str,
        type: EventType,
        scene: int | None = None,
        data: dict[str, Any] | None = None,
    ) -> GenerationEvent:
        from sqlalchemy import func, insert, select  # noqa: PLC0415
        from sqlalchemy.exc import IntegrityError  # noqa: PLC0415

        _check_type(type)
        payload = json.loads(json.dumps(data or {}, default=str))  # JSON-safe, detached copy
        table = self.table
        for attempt in range(5):
            try:
                with self.engine.begin() as connection:
                    last = connection.scalar(
                        select(func.max(table.c.seq)).where(table.c.generation_id == generation_id)
                    )
                    event = GenerationEvent(
                        type=type,
                        generation_id=generation_id,
                        scene=scene,
                        data=payload,
                        seq=int(last or 0) + 1,
                    )
                    connection.execute(
                        insert(table).values(
                            generation_id=generation_id,
                            seq=event.seq,
                            type=event.type,
                            scene=event.scene,
                            data=event.data,
                            ts=event.ts,
                        )
                    )
                    return event
            except IntegrityError:
                if attempt == 4:
                    raise
                time.sleep(0.01 * (attempt + 1))
        raise RuntimeError("unreachable")

    def read(self, generation_id: str, after_seq: int = 0, limit: int = 1000) -> list[GenerationEvent]:
        from sqlalchemy import select  # noqa: PLC0415

        table = self.table
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(table)
                .where(table.c.generation_id == generation_id, table.c.seq > after_seq)
                .order_by(table.c.seq)
                .limit(limit)
            ).all()
        events = []
        for row in rows:
            ts = row.ts if row.ts.tzinfo else row.ts.replace(tzinfo=UTC)  # SQLite drops tzinfo
            events.append(
                GenerationEvent(
                    type=row.type,
                    generation_id=row.generation_id,
                    scene=row.scene,
                    data=row.data,
                    ts=ts,
                    seq=row.seq,
                )
            )
        return events

    def delete(self, generation_id: str) -> None:
        from sqlalchemy import delete  # noqa: PLC0415

        with self.engine.begin() as connection:
            connection.execute(delete(self.table).where(self.table.c.generation_id == generation_id))
