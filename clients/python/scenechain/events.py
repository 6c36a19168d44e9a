"""Live generation events, as they cross the wire: the model, SSE encoding and decoding.

The server logs events as a generation runs and streams them as Server-Sent Events on
``GET /api/generations/{id}/events`` (its log, the recorder and the stream loop are server code:
``store.events``, ``director.events``, ``api.events``). Logged events are numbered per generation
from 1, so a client that reconnects with ``Last-Event-ID: N`` gets every event after N and nothing
twice. Events a server synthesizes from the status row carry ``seq=0`` and no SSE ``id``.

Wire format (one event)::

    id: 7
    event: variation_scored
    data: {"type": "variation_scored", "generation_id": "...", "scene": 2, "seq": 7, "ts": "...",
           "data": {"k": 3, "scores": {"pickscore": 61.2, ..., "overall": 58.9}}}
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from scenechain.protocol import FINISHED_STATUSES

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
FINISHED = FINISHED_STATUSES  # a stream ends with the generation


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
