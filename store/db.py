"""Persistence: SQLAlchemy 2 models, Alembic migrations at start-up, and a small repository.

SQLite file by default, PostgreSQL by URL. The repository is synchronous (short transactions);
async callers wrap calls in ``asyncio.to_thread``. Rows are returned as ``GenerationRecord``
snapshots (pydantic), never as live ORM objects, so nothing leaks across sessions or threads.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from filelock import FileLock
from pydantic import BaseModel, ConfigDict
from scenechain.protocol import FINISHED_STATUSES
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, sessionmaker

from store.records import SceneQualityRecord, SceneRecord, StoryboardPlan, to_json

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def utcnow() -> datetime:
    """Timezone-aware now (UTC)."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """Declarative base of scenechain's tables."""


class User(Base):
    """A caller, identified by the token's 'sub'."""

    __tablename__ = "users"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Generation(Base):
    """One storyboard generation: request, status, plan, per-scene results, scores, warnings."""

    __tablename__ = "generations"
    # A client's Idempotency-Key names at most one generation per user.
    __table_args__ = (
        UniqueConstraint("user_name", "idempotency_key", name="uq_generations_user_idempotency"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_name: Mapped[str] = mapped_column(ForeignKey("users.name"), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    stage: Mapped[str] = mapped_column(String(64), default="queued")
    prompt: Mapped[str] = mapped_column(Text)
    request: Mapped[dict[str, Any]] = mapped_column(JSON)
    seed: Mapped[int] = mapped_column(Integer)
    advanced: Mapped[bool] = mapped_column(Boolean, default=False)
    scenes_total: Mapped[int] = mapped_column(Integer, default=0)
    scenes_done: Mapped[int] = mapped_column(Integer, default=0)
    storyboard_plan: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    scenes: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    image_quality_scores: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    warnings: Mapped[list[str]] = mapped_column(JSON, default=list)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    timings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # The Director replica running it; its lease is live while updated_at is recent (heartbeats).
    owner: Mapped[str | None] = mapped_column(String(128), nullable=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(128), nullable=True)


# The persisted event log (store.events.SqlEventStore); created by migration 0004.
GENERATION_EVENTS = Table(
    "generation_events",
    Base.metadata,
    Column("generation_id", String(64), primary_key=True),
    Column("seq", Integer, primary_key=True, autoincrement=False),
    Column("type", String(32), nullable=False),
    Column("scene", Integer, nullable=True),
    Column("data", JSON, nullable=False),
    Column("ts", DateTime(timezone=True), nullable=False),
)


class GenerationRecord(BaseModel):
    """A detached snapshot of a ``generations`` row."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    user_name: str
    status: str
    stage: str
    prompt: str
    request: dict[str, Any]
    seed: int
    advanced: bool
    scenes_total: int
    scenes_done: int
    storyboard_plan: StoryboardPlan | None
    scenes: list[SceneRecord]
    image_quality_scores: dict[str, SceneQualityRecord]
    warnings: list[str]
    error: str | None
    timings: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None
    owner: str | None = None
    idempotency_key: str | None = None


class GenerationNotFound(LookupError):
    """No generation with that id (for that user)."""


_UPDATABLE = frozenset(
    {
        "status",
        "stage",
        "scenes_total",
        "scenes_done",
        "storyboard_plan",
        "scenes",
        "image_quality_scores",
        "warnings",
        "error",
        "timings",
        "finished_at",
    }
)


def _as_utc(value: datetime | None) -> datetime | None:
    # SQLite drops tzinfo; everything we store is UTC.
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def _snapshot(row: Generation) -> GenerationRecord:
    record = GenerationRecord.model_validate(row)
    return record.model_copy(
        update={
            "created_at": _as_utc(record.created_at),
            "updated_at": _as_utc(record.updated_at),
            "finished_at": _as_utc(record.finished_at),
        }
    )


def make_engine(url: str) -> Engine:
    """An engine; SQLite gets WAL + a busy timeout (several processes share the file)."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


def run_migrations(url: str) -> None:
    """``alembic upgrade head`` on ``url``; serialised across local processes by a file lock."""
    from alembic import command  # noqa: PLC0415
    from alembic.config import Config  # noqa: PLC0415

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    digest = hashlib.sha256(url.encode()).hexdigest()[:16]
    with FileLock(str(Path(tempfile.gettempdir()) / f"scenechain-migrate-{digest}.lock")):
        command.upgrade(config, "head")


class Database:
    """The repository: users and generations."""

    def __init__(self, url: str, *, migrate: bool = True) -> None:
        self.url = url
        if migrate:
            run_migrations(url)
        self.engine = make_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def close(self) -> None:
        """Dispose of the engine's connections."""
        self.engine.dispose()

    def ensure_user(self, name: str) -> None:
        """Create the user row on first sight."""
        with self._sessions.begin() as session:
            if session.get(User, name) is None:
                session.add(User(name=name))

    def create_generation(
        self,
        *,
        generation_id: str,
        user: str,
        request: dict[str, Any],
        seed: int,
        scenes_total: int,
        idempotency_key: str | None = None,
    ) -> GenerationRecord:
        """Insert a queued generation (creating the user if new)."""
        self.ensure_user(user)
        now = utcnow()
        with self._sessions.begin() as session:
            row = Generation(
                id=generation_id,
                user_name=user,
                status="queued",
                stage="queued",
                prompt=request["prompt"],
                request=request,
                seed=seed,
                advanced=bool(request.get("use_advanced_image_generation")),
                scenes_total=scenes_total,
                scenes_done=0,
                storyboard_plan=None,
                scenes=[],
                image_quality_scores={},
                warnings=[],
                error=None,
                timings={},
                created_at=now,
                updated_at=now,
                idempotency_key=idempotency_key,
            )
            session.add(row)
            session.flush()
            return _snapshot(row)

    def find_by_idempotency_key(self, user: str, key: str) -> GenerationRecord | None:
        """The user's generation created with this Idempotency-Key, if any."""
        with self._sessions() as session:
            row = session.scalar(
                select(Generation).where(Generation.user_name == user, Generation.idempotency_key == key)
            )
            return _snapshot(row) if row is not None else None

    def get(self, generation_id: str, *, user: str | None = None) -> GenerationRecord:
        """The generation; with ``user``, only when it is theirs (else GenerationNotFound)."""
        with self._sessions() as session:
            row = session.get(Generation, generation_id)
            if row is None or (user is not None and row.user_name != user):
                raise GenerationNotFound(generation_id)
            return _snapshot(row)

    def update(
        self, generation_id: str, *, require_status: str | None = None, **fields: Any
    ) -> GenerationRecord:
        """Set columns and commit; JSON columns are replaced whole.

        With ``require_status``, nothing changes unless the row has that status (the returned
        snapshot tells the caller what it is instead, e.g. 'cancelled').
        """
        unknown = set(fields) - _UPDATABLE
        if unknown:
            raise ValueError(f"cannot update {sorted(unknown)}")
        with self._sessions.begin() as session:
            row = session.get(Generation, generation_id)
            if row is None:
                raise GenerationNotFound(generation_id)
            if require_status is not None and row.status != require_status:
                return _snapshot(row)
            for key, value in fields.items():
                setattr(row, key, to_json(value))
            row.updated_at = utcnow()
            session.flush()
            return _snapshot(row)

    def claim(self, generation_id: str, owner: str, *, stale_before: datetime) -> bool:
        """Take the lease of an unfinished generation (free, ours, or its owner went silent); marks it running."""
        with self._sessions.begin() as session:
            result = session.execute(
                update(Generation)
                .where(
                    Generation.id == generation_id,
                    Generation.status.in_(("queued", "running")),
                    or_(
                        Generation.owner.is_(None),
                        Generation.owner == owner,
                        Generation.updated_at < stale_before,
                    ),
                )
                .values(owner=owner, status="running", updated_at=utcnow())
                .execution_options(synchronize_session=False)
            )
            return result.rowcount == 1

    def heartbeat(self, generation_ids: list[str], owner: str) -> None:
        """Renew the lease of the owner's running generations."""
        if not generation_ids:
            return
        with self._sessions.begin() as session:
            session.execute(
                update(Generation)
                .where(Generation.id.in_(generation_ids), Generation.owner == owner)
                .values(updated_at=utcnow())
                .execution_options(synchronize_session=False)
            )

    def list_for_user(self, user: str, *, limit: int, offset: int) -> tuple[list[GenerationRecord], int]:
        """A page of the user's generations, newest first, and their total count."""
        with self._sessions() as session:
            total = session.scalar(
                select(func.count()).select_from(Generation).where(Generation.user_name == user)
            )
            rows = session.scalars(
                select(Generation)
                .where(Generation.user_name == user)
                .order_by(Generation.created_at.desc(), Generation.id)
                .limit(limit)
                .offset(offset)
            ).all()
            return [_snapshot(row) for row in rows], int(total or 0)

    def list_unfinished(self) -> list[GenerationRecord]:
        """Queued or running generations, oldest first (the recovery pass)."""
        with self._sessions() as session:
            rows = session.scalars(
                select(Generation)
                .where(Generation.status.in_(("queued", "running")))
                .order_by(Generation.created_at)
            ).all()
            return [_snapshot(row) for row in rows]

    def count_unfinished(self) -> int:
        """How many generations are queued or running (admission control)."""
        with self._sessions() as session:
            total = session.scalar(
                select(func.count())
                .select_from(Generation)
                .where(Generation.status.in_(("queued", "running")))
            )
            return int(total or 0)

    def queue_position(self, generation_id: str) -> int | None:
        """1-based place of a queued generation among all queued ones (oldest first); None unless queued."""
        with self._sessions() as session:
            row = session.get(Generation, generation_id)
            if row is None or row.status != "queued":
                return None
            ahead = session.scalar(
                select(func.count())
                .select_from(Generation)
                .where(
                    Generation.status == "queued",
                    (Generation.created_at < row.created_at)
                    | ((Generation.created_at == row.created_at) & (Generation.id < row.id)),
                )
            )
            return int(ahead or 0) + 1

    def count_running(self) -> int:
        """How many generations are running now (the ETA of a queued one)."""
        with self._sessions() as session:
            total = session.scalar(
                select(func.count()).select_from(Generation).where(Generation.status == "running")
            )
            return int(total or 0)

    def recent_completed(self, *, advanced: bool, limit: int = 20) -> list[GenerationRecord]:
        """The last ``limit`` completed generations of one mode, newest first (ETA estimates)."""
        with self._sessions() as session:
            rows = session.scalars(
                select(Generation)
                .where(Generation.status == "completed", Generation.advanced == advanced)
                .order_by(Generation.finished_at.desc())
                .limit(limit)
            ).all()
            return [_snapshot(row) for row in rows]

    def count_unfinished_for_user(self, user: str) -> int:
        """How many of ``user``'s generations are queued or running (per-user quota)."""
        with self._sessions() as session:
            total = session.scalar(
                select(func.count())
                .select_from(Generation)
                .where(Generation.user_name == user, Generation.status.in_(("queued", "running")))
            )
            return int(total or 0)

    def submitted_since(self, user: str, since: datetime) -> list[datetime]:
        """Creation times (UTC, oldest first) of ``user``'s generations created at or after ``since``."""
        with self._sessions() as session:
            times = session.scalars(
                select(Generation.created_at)
                # UTC like every stored time (SQLite keeps the wall-clock digits only).
                .where(Generation.user_name == user, Generation.created_at >= since.astimezone(UTC))
                .order_by(Generation.created_at)
            ).all()
            return [value if value.tzinfo else value.replace(tzinfo=UTC) for value in times]

    def list_finished_before(self, cutoff: datetime) -> list[GenerationRecord]:
        """Finished generations created before ``cutoff`` (retention)."""
        with self._sessions() as session:
            rows = session.scalars(
                select(Generation).where(
                    Generation.status.in_(FINISHED_STATUSES),
                    Generation.created_at < cutoff,
                )
            ).all()
            return [_snapshot(row) for row in rows]

    def delete(self, generation_id: str) -> None:
        """Delete one generation row (its files are the storage's business)."""
        with self._sessions.begin() as session:
            row = session.get(Generation, generation_id)
            if row is not None:
                session.delete(row)
