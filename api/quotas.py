"""Per-user quotas on submissions: a concurrency cap and a sliding-window rate limit.

``check_quotas`` is the decision, plain and synchronous: the ingress feeds it what the DB says
(the user's unfinished count and the creation times of their recent submissions) and it raises
``QuotaExceeded`` when a limit is hit. Counting in the DB makes the limits hold across Ingress
replicas and restarts. HTTP maps ``QuotaExceeded`` to 429 + Retry-After; handle callers get it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

QuotaReason = Literal["concurrent", "rate"]


class QuotaSettings(BaseModel):
    """Per-user limits on POST /api/generate (HTTP 429 + Retry-After); None switches a limit off."""

    model_config = ConfigDict(extra="forbid")

    max_active_per_user: int | None = Field(
        default=None, ge=1, description="Queued + running generations one user may have at once."
    )
    rate_limit_per_user: int | None = Field(
        default=None, ge=1, description="Generations one user may submit per rate_window_s (sliding)."
    )
    rate_window_s: float = Field(
        default=60.0, gt=0, description="Length in seconds of the sliding window of rate_limit_per_user."
    )


class QuotaExceeded(RuntimeError):
    """A per-user limit refused a submission; retry after ``retry_after_s`` seconds (HTTP 429)."""

    def __init__(self, message: str, retry_after_s: int, reason: QuotaReason, limit: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
        self.reason: QuotaReason = reason
        self.limit = limit

    def __reduce__(self) -> tuple[type[QuotaExceeded], tuple[str, int, QuotaReason, int]]:
        # Handle callers receive it across processes: pickle every constructor argument.
        return type(self), (str(self), self.retry_after_s, self.reason, self.limit)


def window_start(quotas: QuotaSettings, now: datetime) -> datetime:
    """Submissions created at or after this instant count towards the rate limit."""
    return now - timedelta(seconds=quotas.rate_window_s)


def check_quotas(
    quotas: QuotaSettings,
    *,
    active: int,
    recent: Sequence[datetime],
    now: datetime,
    concurrent_retry_after_s: int,
) -> None:
    """Raise ``QuotaExceeded`` when one more submission would break a limit.

    ``active`` is the user's queued + running count; ``recent`` the creation times of their
    submissions inside the window (any order). When both limits are hit, the longer wait wins,
    so a client that honours Retry-After is not refused again by the other limit.
    """
    refusals: list[QuotaExceeded] = []
    # 1. concurrency: a slot frees when one of their generations finishes; we cannot know when.
    cap = quotas.max_active_per_user
    if cap is not None and active >= cap:
        refusals.append(
            QuotaExceeded(
                f"per-user limit of {cap} queued or running generations reached (you have {active}); "
                f"retry in {concurrent_retry_after_s} s or after one of them finishes or is cancelled",
                concurrent_retry_after_s,
                "concurrent",
                cap,
            )
        )
    # 2. rate: wait until enough of the window's submissions age out to leave room for one more.
    rate = quotas.rate_limit_per_user
    if rate is not None and len(recent) >= rate:
        ordered = sorted(recent)
        must_expire = ordered[len(ordered) - rate]
        wait_s = (must_expire + timedelta(seconds=quotas.rate_window_s) - now).total_seconds()
        retry_after_s = max(1, math.ceil(wait_s))
        refusals.append(
            QuotaExceeded(
                f"per-user rate limit of {rate} generations per {quotas.rate_window_s:g} s reached; "
                f"retry in {retry_after_s} s",
                retry_after_s,
                "rate",
                rate,
            )
        )
    if refusals:
        raise max(refusals, key=lambda refusal: refusal.retry_after_s)


__all__ = ["QuotaExceeded", "QuotaReason", "check_quotas", "window_start"]
