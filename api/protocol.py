"""Formats the HTTP edge checks beyond ``scenechain.protocol``: generation ids and Idempotency-Key.

Every request, status, trace and event model lives in the client package (``scenechain.protocol``
and ``scenechain.events``): one source of truth.
"""

import re

GENERATION_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
GENERATION_ID_RULE = "generation ids are 1-64 characters of A-Z, a-z, 0-9, '_' and '-'"
IDEMPOTENCY_KEY_RE = re.compile(r"^[\x21-\x7e]{1,128}$")

# Cancel-After: a positive whole number of seconds, or with a unit (Replicate's style): "90", "90s", "5m", "2h".
# Schema pattern and parser are the same rule, so every schema-valid value is accepted.
CANCEL_AFTER_PATTERN = r"^[1-9][0-9]{0,5}[smh]?$"
MAX_DEADLINE_S = 86400.0
CANCEL_AFTER_RULE = (
    "Cancel-After takes a positive whole number of seconds ('90') or one with a unit ('90s', '5m', '2h'); "
    "values above 24h are capped at 24h"
)
# Prefer: wait or wait=N, N whole seconds 1-60 ("wait" alone: 60, as Replicate reads it).
MAX_WAIT_S = 60
PREFER_WAIT_PATTERN = r"^wait(=([1-9]|[1-5][0-9]|60))?$"
PREFER_WAIT_RULE = f"Prefer takes 'wait' or 'wait=N' with N whole seconds from 1 to {MAX_WAIT_S}"
_UNIT_S = {"s": 1, "m": 60, "h": 3600}


def parse_cancel_after(value: str) -> float:
    """Seconds of a Cancel-After header (capped at 24h); ValueError naming the rule when unreadable."""
    text = value.strip()
    if re.match(CANCEL_AFTER_PATTERN, text) is None:
        raise ValueError(f"Cancel-After {value!r} is not a duration; {CANCEL_AFTER_RULE}")
    unit = text[-1] if text[-1] in _UNIT_S else "s"
    return min(MAX_DEADLINE_S, float(int(text.rstrip("smh")) * _UNIT_S[unit]))


def parse_prefer_wait(value: str) -> int:
    """N of a ``Prefer: wait=N`` header (``wait`` alone: 60); ValueError naming the rule otherwise."""
    text = value.strip()
    if re.match(PREFER_WAIT_PATTERN, text) is None:
        raise ValueError(f"Prefer {value!r} is not supported; {PREFER_WAIT_RULE}")
    return int(text.partition("=")[2] or MAX_WAIT_S)
