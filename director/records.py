"""Records of a generation that cross layers: ids, seeds and URLs (typed scene records join here)."""

from __future__ import annotations

import random
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any


def choose_seed(seed: int | None) -> int:
    """The request's seed, or a random one (recorded so the run can be reproduced)."""
    return seed if seed is not None else random.SystemRandom().randrange(0, 2**31 - 1 - 16)


def image_url(generation_id: str, scene: int) -> str:
    """API path of a scene's kept image."""
    return f"/api/generations/{generation_id}/scenes/{scene}/image"


# The stage a generation cancelled by its deadline ends in (the status document's cancel_reason).
DEADLINE_STAGE = "cancelled (deadline)"


def deadline_at(created_at: datetime, request: Mapping[str, Any]) -> datetime | None:
    """When a generation is cancelled if unfinished: submission + the request's ``deadline_s``."""
    seconds = request.get("deadline_s")
    if not isinstance(seconds, int | float) or isinstance(seconds, bool):
        return None
    return created_at + timedelta(seconds=float(seconds))


def cancel_reason(status: str, stage: str) -> str | None:
    """'deadline' or 'user' for a cancelled generation (from its final stage); None otherwise."""
    if status != "cancelled":
        return None
    return "deadline" if stage == DEADLINE_STAGE else "user"
