"""Live generation events: the model, a persistent log, SSE encoding/decoding and the stream loop.

The Director appends events to an ``EventStore`` as it works (``EventRecorder`` is the per-generation
helper); the ingress streams them as Server-Sent Events with ``stream_events``. Events persist
(SQL table ``generation_events``, same database as the generations), numbered per generation from 1,
so a client that reconnects with ``Last-Event-ID: N`` gets every event after N and nothing twice.

Generations with no logged events (e.g. runs by a Director that does not record events) still get a
live stream: ``stream_events`` then synthesizes stage/scene/warning/done events from the status row.
Synthesized events carry ``seq=0`` and no SSE ``id`` (they cannot be resumed; the row can be re-read).

Wire format (one event)::

    id: 7
    event: variation_scored
    data: {"type": "variation_scored", "generation_id": "...", "scene": 2, "seq": 7, "ts": "...",
           "data": {"k": 3, "scores": {"pickscore": 61.2, ..., "overall": 58.9}}}
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

logger = logging.getLogger(__name__)

EventType = Literal[
    "stage", "enhancer_iteration", "variation_scored", "best_picked", "warning", "scene_done", "done", "error"
]
EVENT_TYPES: tuple[str, ...] = (
    "stage",
    "enhancer_iteration",
    "variation_scored",
    "best_picked",
    "warning",
    "scene_done",
    "done",
    "error",
)
# A stream ends after this event; ``error`` is followed by ``done`` (status "failed").
TERMINAL_EVENT: Literal["done"] = "done"
FINISHED = ("completed", "failed", "cancelled")


def _utcnow() -> datetime:
    return datetime.now(UTC)


class GenerationEvent(BaseModel):
    """One thing that happened to a generation."""

    model_config = ConfigDict(extra="forbid")

    type: EventType = Field(description="What happened.")
    generation_id: str = Field(description="Generation id.")
    scene: int | None = Field(default=None, description="1-based scene number, when scene-specific.")
    data: dict[str, Any] = Field(
        default_factory=dict, description="Type-specific payload (see docs/client.md)."
    )
    ts: datetime = Field(default_factory=_utcnow, description="When it happened (UTC).")
    seq: int = Field(
        default=0, ge=0, description="Position in the generation's log (1-based); 0: not logged."
    )


# -- SSE encoding / decoding ---------------------------------------------------------------------


def format_sse(event: GenerationEvent) -> str:
    """One SSE message: ``id`` (logged events only), ``event`` (the type) and one ``data`` line of JSON."""
    lines = []
    if event.seq:
        lines.append(f"id: {event.seq}")
    lines.append(f"event: {event.type}")
    # model_dump_json never emits raw newlines, so one data line always suffices.
    lines.append(f"data: {event.model_dump_json()}")
    return "\n".join(lines) + "\n\n"


def format_sse_comment(text: str = "keep-alive") -> str:
    """An SSE comment line (clients ignore it; keeps proxies from closing an idle stream)."""
    return f": {text}\n\n"


def format_sse_retry(milliseconds: int) -> str:
    """Tells EventSource-style clients how long to wait before reconnecting."""
    return f"retry: {int(milliseconds)}\n\n"


class SSEMessage(BaseModel):
    """One decoded SSE message (the spec's fields)."""

    event: str = Field(default="message", description="The 'event' field.")
    data: str = Field(default="", description="The 'data' lines joined by newlines.")
    id: str | None = Field(default=None, description="The 'id' field, if the message had one.")
    retry: int | None = Field(default=None, description="The 'retry' field, if any.")


class SSEDecoder:
    """Incremental SSE parser (WHATWG rules): feed it lines, it returns complete messages."""

    def __init__(self) -> None:
        self._event = ""
        self._data: list[str] = []
        self._id: str | None = None
        self._retry: int | None = None
        self._has_fields = False

    def feed(self, line: str) -> SSEMessage | None:
        """Consume one line (without its line ending); a blank line completes a message."""
        line = line.rstrip("\r\n")
        if not line:
            if not self._has_fields:
                return None
            message = SSEMessage(
                event=self._event or "message", data="\n".join(self._data), id=self._id, retry=self._retry
            )
            self._event, self._data, self._retry, self._has_fields = "", [], None, False
            # Per spec the last event id persists across messages until changed.
            return message
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id":
            if "\0" not in value:
                self._id = value
        elif name == "retry":
            if value.isdigit():
                self._retry = int(value)
        else:
            return None
        self._has_fields = True
        return None


def parse_sse(lines: Iterable[str]) -> Iterator[SSEMessage]:
    """Decode SSE messages from an iterable of lines."""
    decoder = SSEDecoder()
    for line in lines:
        message = decoder.feed(line)
        if message is not None:
            yield message


def event_from_sse(message: SSEMessage) -> GenerationEvent:
    """The ``GenerationEvent`` carried by an SSE message (ValueError when it carries none)."""
    try:
        return GenerationEvent.model_validate_json(message.data)
    except ValueError as exc:
        raise ValueError(f"SSE message {message.event!r} is not a generation event: {exc}") from exc


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

    def __init__(self, engine: Any, *, create_table: bool = True) -> None:
        from sqlalchemy import JSON, Column, DateTime, Integer, MetaData, String, Table  # noqa: PLC0415

        self.engine = engine
        self.metadata = MetaData()
        self.table = Table(
            "generation_events",
            self.metadata,
            Column("generation_id", String(64), primary_key=True),
            Column("seq", Integer, primary_key=True, autoincrement=False),
            Column("type", String(32), nullable=False),
            Column("scene", Integer, nullable=True),
            Column("data", JSON, nullable=False),
            Column("ts", DateTime(timezone=True), nullable=False),
        )
        if create_table:
            self.ensure_table()

    def ensure_table(self) -> None:
        """Create the table when missing (until the Alembic migration adds it; idempotent)."""
        from sqlalchemy.exc import OperationalError, ProgrammingError  # noqa: PLC0415

        try:
            self.metadata.create_all(self.engine, checkfirst=True)
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


# -- row diffs: events implied by successive states of a generation row ----------------------------


class RowSnapshot(BaseModel):
    """What the event helpers read of a generation row (a ``GenerationRecord`` fits)."""

    model_config = ConfigDict(extra="ignore", from_attributes=True)

    id: str
    status: str = "queued"
    stage: str = "queued"
    scenes_total: int = 0
    scenes_done: int = 0
    scenes: list[dict[str, Any]] = Field(default_factory=list)
    image_quality_scores: dict[str, Any] = Field(default_factory=dict)
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
            n = int(scene.get("index", 0)) or None
            quality = row.image_quality_scores.get(f"scene_{n}") or {}
            seeds = quality.get("seeds") or scene.get("seeds") or []
            for k, scores in enumerate(quality.get("per_image") or [], start=1):
                seed = seeds[k - 1] if k <= len(seeds) else None
                events.append(("variation_scored", n, {"k": k, "scores": scores, "seed": seed}))
            if quality:
                events.append(
                    (
                        "best_picked",
                        n,
                        {
                            "k": quality.get("best_index", scene.get("best_index", 1)),
                            "overall": quality.get("best_overall"),
                            "below_threshold": bool(quality.get("below_threshold")),
                        },
                    )
                )
            self.scenes_seen += 1
            completions.append(
                (
                    "scene_done",
                    n,
                    {
                        "image_url": scene.get("image_url"),
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


def enhancement_trace(files: Mapping[str, str]) -> dict[str, Any]:
    """A scene's trace files (name -> text) as one document: the original prompt, each iteration's
    Cinematographer rewrite (agent 1) and critic verdict (agent 2: scores, overall, feedback),
    the final prompt, the parsed summary and quality scores, and the variation image names."""
    iterations: dict[int, dict[str, Any]] = {}
    for name, text in files.items():
        found = _iteration_of(name)
        if found is None:
            continue
        agent, number = found
        entry = iterations.setdefault(
            number, {"iteration": number, "rewrite": None, "scores": {}, "overall": None}
        )
        if agent == 1:
            entry["rewrite"] = text.strip()
        else:
            critic = _json_or_none(text)
            if isinstance(critic, dict):
                entry["scores"] = critic.get("scores") or {}
                entry["overall"] = critic.get("overall")
                entry["feedback"] = critic.get("feedback")
                entry["negative_prompt"] = critic.get("negative_prompt")
            else:
                entry["critic_text"] = text.strip()
    summary = _json_or_none(files.get("prompt_trace_summary.json"))
    approve_threshold = summary.get("approve_threshold") if isinstance(summary, dict) else None
    for entry in iterations.values():
        overall = entry.get("overall")
        entry["approved"] = bool(
            approve_threshold is not None
            and overall is not None
            and float(overall) >= float(approve_threshold)
        )
    original = files.get("00_original_prompt.txt")
    final = files.get("final_enhanced_prompt.txt")
    return {
        "original_prompt": original.strip() if original is not None else None,
        "iterations": [iterations[number] for number in sorted(iterations)],
        "final_prompt": final.strip() if final is not None else None,
        "summary": summary,
        "quality_scores": _json_or_none(files.get("quality_scores.json")),
        "variations": sorted(
            (name for name in files if name.startswith("image_") and name.endswith(".png")),
            key=lambda name: int(name[6:-4]) if name[6:-4].isdigit() else 0,
        ),
    }


# -- the Director's side -------------------------------------------------------------------------


class EventRecorder:
    """Appends one generation's events; never raises (a broken log must not fail a generation).

    The least a Director has to do is call ``observe(**fields)`` with every DB update it makes:
    stage changes, finished scenes (with their variation scores and best pick), new warnings and
    the final status become events. ``enhancement(scene, trace_files)`` adds the enhancer's
    iterations. Async methods run the (synchronous) store in a thread, like ``serve.db``.
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
        self.row = self.row.model_copy(update=known)
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
        for entry in enhancement_trace(trace_files)["iterations"]:
            await self.emit(
                "enhancer_iteration",
                scene,
                {
                    "iteration": entry["iteration"],
                    "prompt": entry.get("rewrite"),
                    "scores": entry.get("scores") or {},
                    "overall": entry.get("overall"),
                    "feedback": entry.get("feedback"),
                    "approved": entry.get("approved", False),
                },
            )


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
