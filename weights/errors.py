"""How an error reads to a user, in one line; shared by every layer (weights is the bottom one)."""

from __future__ import annotations

MAX_CHARS = 300


def describe_error(exc: BaseException) -> str:
    """``Type: first line of the message``, at most 300 characters.

    Multi-line messages (SQLAlchemy's, Ray's actor-death dumps with ids, pids and addresses) keep
    only their first line; the rest stays in the logs. A timeout reads "timed out".
    """
    if isinstance(exc, TimeoutError):
        return "timed out"
    lines = str(exc).strip().splitlines()
    first = lines[0].strip() if lines else ""
    return f"{type(exc).__name__}: {first}"[:MAX_CHARS] if first else type(exc).__name__
