"""Shared test set-up: offline hub, the repo's model dir, no Ray dashboard noise."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Set before any test module imports a model library (they read these at import).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("SCENECHAIN_MODEL_DIR", str(REPO / ".models"))
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
