"""Transient I/O faults of the Director: recognising them, retrying them, and injecting them.

- ``retry_io`` runs one blocking storage/DB call in a thread and retries it, with exponential
  backoff and jitter (``RetryPolicy``), while it raises a *transient* error; it logs a warning per
  retry and raises ``StorageUnavailable`` / ``DatabaseUnavailable`` (a clear, user-facing message)
  once the attempts are spent. Anything else (a bad id, a missing file, a constraint) is raised
  at once: retrying cannot fix it.
- ``FaultyStorage`` / ``FaultyDatabase`` wrap the real ``Storage`` / ``Database`` and raise what a
  real outage raises (``OSError``, SQLAlchemy ``OperationalError``), configured by
  ``AppArgs.faults``, so tests and drills go through the production retry path.

Every retried call is idempotent: a storage write rewrites a whole file, a DB update sets absolute
values (``require_status`` included), a claim by the same owner claims again.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from store import metrics
from store.db import Database
from store.storage import Storage, StorageError
from weights.errors import describe_error

logger = logging.getLogger(__name__)

T = TypeVar("T")
Target = Literal["storage", "db"]

INJECTED_STORAGE_ERROR = "injected storage write failure"
INJECTED_DB_ERROR = "injected database outage (connection refused)"


class RetryPolicy(BaseModel):
    """Retry of transient storage/DB errors: exponential backoff with jitter (docs/reliability.md).

    Retry k (1-based) waits ``min(max_delay_s, base_delay_s * 2**(k-1))``, less a random fraction
    up to ``jitter`` of it (so replicas that failed together do not retry together). Keep the total
    (about ``max_delay_s * attempts`` at worst) well under ``lease_timeout_s``.
    """

    model_config = ConfigDict(extra="forbid")

    attempts: int = Field(default=6, ge=1, le=100, description="Tries in all, the first one included.")
    base_delay_s: float = Field(
        default=0.5, ge=0, description="Wait before the first retry; doubles each retry."
    )
    max_delay_s: float = Field(default=8.0, ge=0, description="Longest wait between two tries.")
    jitter: float = Field(
        default=0.5, ge=0, le=1, description="Fraction of each wait drawn at random (0: fixed waits)."
    )

    def delay_s(self, retry: int, draw: float) -> float:
        """The wait before retry ``retry`` (1-based); ``draw`` is a uniform random number in [0, 1)."""
        delay = min(self.max_delay_s, self.base_delay_s * 2 ** (retry - 1))
        return delay * (1.0 - self.jitter * draw)


class FaultSettings(BaseModel):
    """Fault injection into the Director's storage and DB calls (serve/faults.py); all off by default.

    The faults hit the real retry code path: the wrappers raise the errors a real outage raises.
    Model faults are injected through ``model_overrides`` options instead.
    """

    model_config = ConfigDict(extra="forbid")

    storage_write_failures: int = Field(
        default=0,
        ge=0,
        description="This many of the Director's storage writes in a row raise OSError('injected storage write failure').",
    )
    storage_write_failures_after: int = Field(
        default=0, ge=0, description="Storage writes that succeed before the injected failures start."
    )
    db_unavailable_s: float = Field(
        default=0.0,
        ge=0,
        description="Length of an injected DB outage: every Director DB call raises OperationalError meanwhile.",
    )
    db_unavailable_after_updates: int = Field(
        default=0,
        ge=0,
        description="Generation updates that succeed before the outage starts (it starts at the next update).",
    )

    @property
    def enabled(self) -> bool:
        """True when any fault is injected."""
        return self.storage_write_failures > 0 or self.db_unavailable_s > 0


class IOUnavailable(RuntimeError):
    """A storage/DB call still failed after every retry; the message is the user-facing error."""

    def __init__(self, message: str, *, what: str, attempts: int, cause: BaseException) -> None:
        super().__init__(message)
        self.what = what
        self.attempts = attempts
        self.cause = cause


class StorageUnavailable(IOUnavailable):
    """The image/trace store kept failing: the generation fails with this error."""


class DatabaseUnavailable(IOUnavailable):
    """The database kept failing: the run stops, its row stays running, the recovery pass resumes it."""


# -- which errors are transient -------------------------------------------------------------------


def is_transient_storage_error(exc: BaseException) -> bool:
    """OSError (connection, timeout, I/O), StorageError; not a missing file nor a bad argument."""
    if isinstance(exc, FileNotFoundError | IsADirectoryError | NotADirectoryError):
        return False
    return isinstance(exc, OSError | StorageError | TimeoutError)


def is_transient_db_error(exc: BaseException) -> bool:
    """A lost/refused connection, a locked database, a pool timeout; not a constraint or a bad id."""
    if isinstance(exc, OperationalError | InterfaceError | PoolTimeoutError):
        return True
    return isinstance(exc, DBAPIError) and bool(exc.connection_invalidated)


_TRANSIENT: dict[Target, Callable[[BaseException], bool]] = {
    "storage": is_transient_storage_error,
    "db": is_transient_db_error,
}
_EXHAUSTED: dict[Target, tuple[type[IOUnavailable], str]] = {
    "storage": (StorageUnavailable, "storage unavailable"),
    "db": (DatabaseUnavailable, "database unavailable"),
}


# -- the retry loop -------------------------------------------------------------------------------


async def retry_io(
    target: Target,
    what: str,
    call: Callable[[], T],
    policy: RetryPolicy,
    *,
    log: logging.Logger | logging.LoggerAdapter = logger,
    on_retry: Callable[[BaseException], None] | None = None,
    rng: random.Random | None = None,
) -> T:
    """``call()`` in a thread, retried on transient errors; ``what`` names it in logs and errors.

    Raises the first non-transient error as is, or ``StorageUnavailable`` / ``DatabaseUnavailable``
    (chained to the last error) when ``policy.attempts`` tries all failed.
    """
    transient = _TRANSIENT[target]
    draw = (rng or random).random
    for attempt in range(1, policy.attempts + 1):
        try:
            return await asyncio.to_thread(call)
        except Exception as exc:
            if not transient(exc):
                raise
            if attempt == policy.attempts:
                error_type, label = _EXHAUSTED[target]
                tries = f"{attempt} attempt{'s' if attempt > 1 else ''}"
                message = f"{label}: {what} failed after {tries} ({describe_error(exc)})"
                log.error("%s", message)
                metrics.record_io_retry(target, "exhausted")
                raise error_type(message, what=what, attempts=attempt, cause=exc) from exc
            delay = policy.delay_s(attempt, draw())
            log.warning(
                "%s: %s failed (attempt %d/%d: %s); retrying in %.2fs",
                target,
                what,
                attempt,
                policy.attempts,
                describe_error(exc),
                delay,
            )
            metrics.record_io_retry(target, "retried")
            if on_retry is not None:
                on_retry(exc)
            await asyncio.sleep(delay)
    raise AssertionError("unreachable: policy.attempts >= 1")  # pragma: no cover


# -- injection ------------------------------------------------------------------------------------


class InjectedOutage(ConnectionRefusedError):
    """The DB-API error under an injected ``OperationalError`` (what a refused connection raises)."""


class FaultyStorage:
    """A ``Storage`` whose writes fail ``failures`` times in a row after ``after`` good ones.

    Reads, listings and deletes pass straight through. Thread-safe (writes run in threads).
    """

    _WRITES = frozenset({"write_trace_file", "write_trace_json", "write_variation", "write_scene_image"})

    def __init__(self, storage: Storage, *, failures: int, after: int = 0) -> None:
        self.inner = storage
        self.failures = failures
        self.after = after
        self.writes = 0  # write calls seen, failed ones included
        self.failed = 0
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.inner, name)
        if name not in self._WRITES:
            return attribute

        @functools.wraps(attribute)
        def write(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                self.writes += 1
                fail = self.writes > self.after and self.failed < self.failures
                if fail:
                    self.failed += 1
            if fail:
                raise OSError(INJECTED_STORAGE_ERROR)
            return attribute(*args, **kwargs)

        return write


class FaultyDatabase:
    """A ``Database`` that goes down for ``unavailable_s`` seconds, starting at update ``after_updates + 1``.

    During the outage every method call raises SQLAlchemy ``OperationalError`` (as a refused
    connection does); before and after, calls pass straight through. Counting updates, not time,
    makes the start deterministic (e.g. just after scene 1 commits). ``engine`` passes through
    (the event log shares it and is not faulted).
    """

    def __init__(
        self,
        db: Database,
        *,
        unavailable_s: float,
        after_updates: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.inner = db
        self.unavailable_s = unavailable_s
        self.after_updates = after_updates
        self.clock = clock
        self.updates = 0  # update calls seen, failed ones included
        self.failed = 0
        self.outage_started: float | None = None
        self._lock = threading.Lock()

    def _down(self, name: str) -> bool:
        with self._lock:
            if name == "update":
                self.updates += 1
                if self.outage_started is None and self.updates > self.after_updates:
                    self.outage_started = self.clock()
                    logger.warning("injected database outage starts (%.1fs)", self.unavailable_s)
            down = self.outage_started is not None and self.clock() - self.outage_started < self.unavailable_s
            if down:
                self.failed += 1
            return down

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.inner, name)
        if name.startswith("_") or name == "engine" or not callable(attribute):
            return attribute

        @functools.wraps(attribute)
        def call(*args: Any, **kwargs: Any) -> Any:
            if self._down(name):
                raise OperationalError(f"Database.{name}", None, InjectedOutage(INJECTED_DB_ERROR))
            return attribute(*args, **kwargs)

        return call


def with_faults(db: Database, storage: Storage, faults: FaultSettings) -> tuple[Database, Storage]:
    """``db`` and ``storage`` wrapped as ``faults`` says (unchanged when no fault is set)."""
    if faults.db_unavailable_s > 0:
        db = FaultyDatabase(  # type: ignore[assignment]
            db, unavailable_s=faults.db_unavailable_s, after_updates=faults.db_unavailable_after_updates
        )
    if faults.storage_write_failures > 0:
        storage = FaultyStorage(  # type: ignore[assignment]
            storage, failures=faults.storage_write_failures, after=faults.storage_write_failures_after
        )
    if faults.enabled:
        logger.warning("fault injection on: %s", faults.model_dump(exclude_defaults=True))
    return db, storage


__all__ = [
    "DatabaseUnavailable",
    "FaultyDatabase",
    "FaultyStorage",
    "IOUnavailable",
    "StorageUnavailable",
    "describe_error",
    "is_transient_db_error",
    "is_transient_storage_error",
    "retry_io",
    "with_faults",
]
