"""Throwaway services for integration tests: a real PostgreSQL and an S3-compatible server on loopback.

Each helper starts its service in a temp dir on a free 127.0.0.1 port, yields connection details,
and stops it; when the service's binary or client library is missing it raises ``ServiceUnavailable``
so the calling fixture can ``pytest.skip`` with the reason.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any


class ServiceUnavailable(RuntimeError):
    """The service cannot be started here (binary or library missing); the message says which."""


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(condition: Callable[[], Any], timeout_s: float, what: str, poll_s: float = 0.5) -> Any:
    """Poll ``condition`` until truthy (returned) or fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(poll_s)
