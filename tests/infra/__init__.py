"""Throwaway services for integration tests: a real PostgreSQL and an S3-compatible server on loopback.

Each helper starts its service in a temp dir on a free 127.0.0.1 port, yields connection details,
and stops it; when the service's binary or client library is missing it raises ``ServiceUnavailable``
so the calling fixture can ``pytest.skip`` with the reason.
"""

from __future__ import annotations

import socket


class ServiceUnavailable(RuntimeError):
    """The service cannot be started here (binary or library missing); the message says which."""


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
