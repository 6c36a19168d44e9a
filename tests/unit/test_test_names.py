"""Test modules need unique basenames: pytest imports them by basename (no packages), and a clash
stops the whole run at collection ("import file mismatch") — only when both files are collected."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_every_test_module_has_a_unique_basename() -> None:
    names = Counter(path.name for path in TESTS.rglob("test_*.py"))
    assert [name for name, count in names.items() if count > 1] == []
