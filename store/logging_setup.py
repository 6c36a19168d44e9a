"""Structured (JSON-lines) logs carrying the generation id and the request id.

How the ids travel:

- **request id** — Ray Serve's own: the proxy takes the ``X-Request-ID`` header (or makes one),
  answers with it, and stores it in the replica's request context; every ``DeploymentHandle`` call
  made while handling that request carries the same id to the next deployment (Serve copies the
  caller's context into the call's metadata), and asyncio tasks started there inherit it. So a
  generation started by ``POST /api/generate`` logs the POST's request id in the Ingress, the
  Director and every model deployment. ``current_request_id()`` reads it.
- **generation id** — ours: ``generation_context(gid)`` sets a contextvar for a block (the Director
  wraps each generation's task in it, and tasks it starts inherit it); an explicit
  ``extra={"generation_id": ...}`` on a log call wins.

``install()`` puts a JSON formatter and ``LogContextFilter`` on the root logger's stream handler;
``render_serve_config`` names it as the ``worker_process_setup_hook`` so every Ray worker (each
replica) runs it at start-up. One record per line::

    {"ts": "2026-...Z", "level": "INFO", "logger": "api.ingress", "message": "...",
     "generation_id": "5f0c...", "request_id": "b1e2...", "deployment": "Director",
     "replica": "scenechain#Director#abc", "pid": 1234}
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import os
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

SETUP_HOOK = "store.logging_setup.install"
LEVEL_ENV = "SCENECHAIN_LOG_LEVEL"
FORMAT_ENV = "SCENECHAIN_LOG_FORMAT"  # "json" (default) or "text"

generation_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "scenechain_generation_id", default=None
)

# LogRecord attributes that are not "extra" fields (a JSON line carries every extra field).
_STANDARD_ATTRS = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys() | {"message", "asctime", "taskName"}
)


@contextlib.contextmanager
def generation_context(generation_id: str | None) -> Iterator[None]:
    """Log records made in this block (and tasks started in it) carry ``generation_id``."""
    token = generation_id_var.set(generation_id)
    try:
        yield
    finally:
        generation_id_var.reset(token)


def current_generation_id() -> str | None:
    """The generation id of the current context, if any."""
    return generation_id_var.get()


def current_request_id() -> str | None:
    """Ray Serve's request id of the request being handled in this context, if any."""
    try:
        from ray.serve import context as serve_context  # noqa: PLC0415

        # Serve keeps it in a private contextvar; there is no public accessor for deployments.
        return serve_context._get_serve_request_context().request_id or None
    except Exception:
        return None


def _replica_tags() -> dict[str, str]:
    try:
        from ray.serve import context as serve_context  # noqa: PLC0415

        replica = serve_context._get_internal_replica_context()
    except Exception:
        return {}
    if replica is None:
        return {}
    return {"deployment": replica.deployment, "replica": replica.replica_tag, "app": replica.app_name}


class LogContextFilter(logging.Filter):
    """Adds ``generation_id``, ``request_id`` (and replica tags) to records that lack them; drops nothing."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "generation_id", None) is None:
            record.generation_id = current_generation_id()
        if getattr(record, "request_id", None) is None:
            record.request_id = current_request_id()
        for key, value in _replica_tags().items():
            if getattr(record, key, None) is None:
                setattr(record, key, value)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, ids, extra fields, exception."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "generation_id": getattr(record, "generation_id", None),
            "request_id": getattr(record, "request_id", None),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and key not in payload and not key.startswith("_"):
                payload[key] = value
        payload["pid"] = record.process
        if record.exc_info:
            payload["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            payload["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(payload, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """Human-readable lines with the ids in brackets (local development)."""

    def __init__(self) -> None:
        super().__init__(
            "%(asctime)s %(levelname)s %(name)s [gen=%(generation_id)s req=%(request_id)s] %(message)s"
        )


_HANDLER_NAME = "scenechain-structured"


def install(level: str | int | None = None, fmt: str | None = None) -> logging.Handler:
    """Configure the root logger for structured logs; idempotent (safe as a worker setup hook).

    ``level``/``fmt`` default to $SCENECHAIN_LOG_LEVEL (INFO) and $SCENECHAIN_LOG_FORMAT (json),
    read here, at call time.
    """
    level = level if level is not None else os.environ.get(LEVEL_ENV, "INFO")
    fmt = (fmt or os.environ.get(FORMAT_ENV, "json")).lower()
    root = logging.getLogger()
    handler = next((h for h in root.handlers if h.get_name() == _HANDLER_NAME), None)
    if handler is None:
        handler = logging.StreamHandler(sys.stderr)
        handler.set_name(_HANDLER_NAME)
        handler.addFilter(LogContextFilter())
        root.addHandler(handler)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root.setLevel(level)
    return handler


__all__ = [
    "SETUP_HOOK",
    "JsonFormatter",
    "LogContextFilter",
    "current_generation_id",
    "current_request_id",
    "generation_context",
    "generation_id_var",
    "install",
]
