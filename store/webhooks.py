"""Webhook persistence: per-user signing secrets, per-generation subscriptions and the delivery outbox.

Three tables (migration 0005), no foreign key to ``generations`` (retention deletes those rows):

- ``webhook_secrets``: one Standard Webhooks signing secret (``whsec_...``) per user;
- ``webhook_subscriptions``: a generation's ``webhook_url`` and events, and how far the dispatcher
  has read its event log (``last_seq``); ``done`` once its terminal event was turned into a delivery;
- ``webhook_deliveries``: the outbox. A row is written (its body fixed) before the first attempt,
  so the ``webhook-id`` (the row id) and the body are the same on every retry and after a restart.

Synchronous, short transactions (async callers use ``asyncio.to_thread``), like ``store.db``;
rows come back as detached pydantic snapshots.
"""

from __future__ import annotations

import base64
import logging
import secrets
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Integer,
    String,
    Table,
    Text,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from store.db import Base, Generation, User, utcnow

logger = logging.getLogger(__name__)

SECRET_PREFIX = "whsec_"
# Standard Webhooks recommends 24-64 random bytes.
SECRET_BYTES = 32

DeliveryStatus = Literal["pending", "delivered", "failed"]

WEBHOOK_SECRETS = Table(
    "webhook_secrets",
    Base.metadata,
    Column("user_name", String(128), primary_key=True),
    Column("secret", String(128), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

WEBHOOK_SUBSCRIPTIONS = Table(
    "webhook_subscriptions",
    Base.metadata,
    Column("generation_id", String(64), primary_key=True),
    Column("user_name", String(128), nullable=False),
    Column("url", Text, nullable=False),
    Column("events", JSON, nullable=False),
    Column("last_seq", Integer, nullable=False, default=0),
    Column("done", Boolean, nullable=False, default=False, index=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

WEBHOOK_DELIVERIES = Table(
    "webhook_deliveries",
    Base.metadata,
    Column("id", String(160), primary_key=True),
    Column("generation_id", String(64), nullable=False, index=True),
    Column("user_name", String(128), nullable=False),
    Column("event", String(32), nullable=False),
    # Position of the event in the generation's log: a generation's messages go out in this order.
    Column("seq", Integer, nullable=False, default=0),
    Column("url", Text, nullable=False),
    Column("payload", Text, nullable=False),
    Column("status", String(16), nullable=False, index=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False, index=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("delivered_at", DateTime(timezone=True), nullable=True),
    Column("last_error", Text, nullable=True),
    Column("last_status_code", Integer, nullable=True),
)


def new_webhook_secret() -> str:
    """A fresh signing secret: ``whsec_`` + base64 of 32 random bytes (the Standard Webhooks form)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def _as_utc(value: datetime | None) -> datetime | None:
    # SQLite drops tzinfo; everything stored here is UTC.
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


class WebhookSecretRecord(BaseModel):
    """A user's signing secret."""

    model_config = ConfigDict(frozen=True)

    user_name: str
    secret: str
    created_at: datetime


class SubscriptionRecord(BaseModel):
    """An open subscription, with what the dispatcher needs of its generation row."""

    model_config = ConfigDict(frozen=True)

    generation_id: str
    user_name: str
    url: str
    events: list[str]
    last_seq: int
    created_at: datetime
    # None when the generation row is gone (retention deleted it).
    generation_status: str | None = None
    generation_error: str | None = None
    generation_finished_at: datetime | None = None


class DeliveryRecord(BaseModel):
    """One webhook message (the ``webhook-id`` is ``id``) and its delivery state."""

    model_config = ConfigDict(frozen=True)

    id: str
    generation_id: str
    user_name: str
    event: str
    seq: int
    url: str
    payload: str
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime
    created_at: datetime
    updated_at: datetime
    delivered_at: datetime | None = None
    last_error: str | None = None
    last_status_code: int | None = None


def _delivery(row: Any) -> DeliveryRecord:
    data = dict(row._mapping)
    for key in ("next_attempt_at", "created_at", "updated_at", "delivered_at"):
        data[key] = _as_utc(data[key])
    return DeliveryRecord.model_validate(data)


class WebhookStore:
    """The webhook tables of the app's database (created by Alembic: 0005)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # -- secrets -------------------------------------------------------------------------------

    def _ensure_user(self, connection: Any, user: str) -> None:
        if connection.scalar(select(User.name).where(User.name == user)) is None:
            connection.execute(insert(User).values(name=user, created_at=utcnow()))

    def get_or_create_secret(self, user: str) -> WebhookSecretRecord:
        """The user's signing secret, created on first use."""
        table = WEBHOOK_SECRETS
        now = utcnow()
        for _ in range(3):
            with self.engine.begin() as connection:
                row = connection.execute(select(table).where(table.c.user_name == user)).first()
                if row is not None:
                    return WebhookSecretRecord(
                        user_name=row.user_name, secret=row.secret, created_at=_as_utc(row.created_at) or now
                    )
            try:
                with self.engine.begin() as connection:
                    self._ensure_user(connection, user)
                    secret = new_webhook_secret()
                    connection.execute(insert(table).values(user_name=user, secret=secret, created_at=now))
                    return WebhookSecretRecord(user_name=user, secret=secret, created_at=now)
            except IntegrityError:
                continue  # created concurrently: read theirs
        raise RuntimeError(f"could not create the webhook secret of {user!r}")

    def rotate_secret(self, user: str) -> WebhookSecretRecord:
        """Replace the user's secret with a new one (deliveries signed from now on use it)."""
        self.get_or_create_secret(user)
        now = utcnow()
        secret = new_webhook_secret()
        with self.engine.begin() as connection:
            connection.execute(
                update(WEBHOOK_SECRETS)
                .where(WEBHOOK_SECRETS.c.user_name == user)
                .values(secret=secret, created_at=now)
            )
        return WebhookSecretRecord(user_name=user, secret=secret, created_at=now)

    def secret_for(self, user: str) -> str | None:
        """The user's current secret, if any."""
        with self.engine.connect() as connection:
            return connection.scalar(
                select(WEBHOOK_SECRETS.c.secret).where(WEBHOOK_SECRETS.c.user_name == user)
            )

    # -- subscriptions -------------------------------------------------------------------------

    def subscribe(self, generation_id: str, user: str, url: str, events: list[str]) -> None:
        """Record a generation's webhook (idempotent: a second call keeps the first)."""
        try:
            with self.engine.begin() as connection:
                connection.execute(
                    insert(WEBHOOK_SUBSCRIPTIONS).values(
                        generation_id=generation_id,
                        user_name=user,
                        url=url,
                        events=list(events),
                        last_seq=0,
                        done=False,
                        created_at=utcnow(),
                    )
                )
        except IntegrityError:
            logger.debug("[generation %s] webhook subscription exists", generation_id)

    def open_subscriptions(self, limit: int = 500) -> list[SubscriptionRecord]:
        """Subscriptions whose terminal event is not yet turned into a delivery, oldest first."""
        subs = WEBHOOK_SUBSCRIPTIONS
        generations = Generation.__table__
        query = (
            select(
                subs,
                generations.c.status.label("generation_status"),
                generations.c.error.label("generation_error"),
                generations.c.finished_at.label("generation_finished_at"),
            )
            .select_from(subs.outerjoin(generations, generations.c.id == subs.c.generation_id))
            .where(subs.c.done.is_(False))
            .order_by(subs.c.created_at)
            .limit(limit)
        )
        with self.engine.connect() as connection:
            rows = connection.execute(query).all()
        records = []
        for row in rows:
            data = dict(row._mapping)
            data["created_at"] = _as_utc(data["created_at"])
            data["generation_finished_at"] = _as_utc(data["generation_finished_at"])
            data.pop("done", None)
            records.append(SubscriptionRecord.model_validate(data))
        return records

    def advance(self, generation_id: str, last_seq: int, *, done: bool = False) -> None:
        """Move a subscription's cursor forward (never back); ``done`` closes it."""
        subs = WEBHOOK_SUBSCRIPTIONS
        values: dict[str, Any] = {"done": True} if done else {}
        with self.engine.begin() as connection:
            connection.execute(
                update(subs)
                .where(subs.c.generation_id == generation_id, subs.c.last_seq < last_seq)
                .values(last_seq=last_seq)
            )
            if values:
                connection.execute(update(subs).where(subs.c.generation_id == generation_id).values(**values))

    # -- deliveries ----------------------------------------------------------------------------

    def add_delivery(
        self,
        delivery_id: str,
        *,
        generation_id: str,
        user: str,
        event: str,
        url: str,
        payload: str,
        seq: int = 0,
        now: datetime | None = None,
    ) -> bool:
        """Persist a pending delivery unless one with this id exists; True when inserted."""
        now = now or utcnow()
        try:
            with self.engine.begin() as connection:
                connection.execute(
                    insert(WEBHOOK_DELIVERIES).values(
                        id=delivery_id,
                        generation_id=generation_id,
                        user_name=user,
                        event=event,
                        seq=seq,
                        url=url,
                        payload=payload,
                        status="pending",
                        attempts=0,
                        next_attempt_at=now,
                        created_at=now,
                        updated_at=now,
                    )
                )
            return True
        except IntegrityError:
            return False

    def get_delivery(self, delivery_id: str) -> DeliveryRecord | None:
        """One delivery, or None."""
        with self.engine.connect() as connection:
            row = connection.execute(
                select(WEBHOOK_DELIVERIES).where(WEBHOOK_DELIVERIES.c.id == delivery_id)
            ).first()
        return _delivery(row) if row is not None else None

    def deliveries_for(self, generation_id: str) -> list[DeliveryRecord]:
        """A generation's deliveries, in creation order."""
        table = WEBHOOK_DELIVERIES
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(table)
                .where(table.c.generation_id == generation_id)
                .order_by(table.c.seq, table.c.created_at)
            ).all()
        return [_delivery(row) for row in rows]

    def due(self, now: datetime, limit: int = 50) -> list[DeliveryRecord]:
        """Pending deliveries whose next attempt is due, earliest first."""
        table = WEBHOOK_DELIVERIES
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(table)
                .where(table.c.status == "pending", table.c.next_attempt_at <= now.astimezone(UTC))
                .order_by(table.c.next_attempt_at, table.c.seq)
                .limit(limit)
            ).all()
        return [_delivery(row) for row in rows]

    def claim(self, delivery: DeliveryRecord, *, lease_until: datetime) -> bool:
        """Take the next attempt of ``delivery`` (counted now; due again at ``lease_until`` if the
        sender dies mid-attempt); False when another sender took it first."""
        table = WEBHOOK_DELIVERIES
        with self.engine.begin() as connection:
            result = connection.execute(
                update(table)
                .where(
                    table.c.id == delivery.id,
                    table.c.status == "pending",
                    table.c.attempts == delivery.attempts,
                )
                .values(attempts=delivery.attempts + 1, next_attempt_at=lease_until, updated_at=utcnow())
            )
            return result.rowcount == 1

    def _finish_attempt(self, delivery_id: str, **values: Any) -> None:
        table = WEBHOOK_DELIVERIES
        with self.engine.begin() as connection:
            connection.execute(
                update(table)
                .where(table.c.id == delivery_id, table.c.status == "pending")
                .values(updated_at=utcnow(), **values)
            )

    def mark_delivered(self, delivery_id: str, status_code: int) -> None:
        """The receiver answered 2xx."""
        self._finish_attempt(
            delivery_id,
            status="delivered",
            delivered_at=utcnow(),
            last_status_code=status_code,
            last_error=None,
        )

    def schedule_retry(
        self, delivery_id: str, next_attempt_at: datetime, error: str, status_code: int | None
    ) -> None:
        """The attempt failed; try again at ``next_attempt_at``."""
        self._finish_attempt(
            delivery_id,
            next_attempt_at=next_attempt_at,
            last_error=error[:2000],
            last_status_code=status_code,
        )

    def give_up(self, delivery_id: str, error: str, status_code: int | None) -> None:
        """The retry window is over: the delivery failed for good (kept, with the last error)."""
        self._finish_attempt(
            delivery_id, status="failed", last_error=error[:2000], last_status_code=status_code
        )
