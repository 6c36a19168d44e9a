"""Formats the HTTP edge checks beyond ``scenechain.protocol``: generation ids and Idempotency-Key.

Every request, status, trace and event model lives in the client package (``scenechain.protocol``
and ``scenechain.events``): one source of truth.
"""

import re

GENERATION_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
GENERATION_ID_RULE = "generation ids are 1-64 characters of A-Z, a-z, 0-9, '_' and '-'"
IDEMPOTENCY_KEY_RE = re.compile(r"^[\x21-\x7e]{1,128}$")
