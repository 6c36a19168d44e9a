"""Records of a generation that cross layers: ids, seeds and URLs (typed scene records join here)."""

from __future__ import annotations

import random


def choose_seed(seed: int | None) -> int:
    """The request's seed, or a random one (recorded so the run can be reproduced)."""
    return seed if seed is not None else random.SystemRandom().randrange(0, 2**31 - 1 - 16)


def image_url(generation_id: str, scene: int) -> str:
    """API path of a scene's kept image."""
    return f"/api/generations/{generation_id}/scenes/{scene}/image"
