"""A throwaway S3-compatible server: moto's server mode on a free 127.0.0.1 port, one bucket.

Clients reach it like a real S3 endpoint (``s3fs``/``boto3`` over HTTP), configured through the
standard AWS environment variables plus ``FSSPEC_S3_ENDPOINT_URL``, so the code under test needs
no test-only branch: ``Storage("s3://bucket/prefix")`` works as it would on a cluster.
"""

from __future__ import annotations

import contextlib
import logging
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

from . import ServiceUnavailable, free_port

REGION = "us-east-1"


@dataclass(frozen=True)
class S3Server:
    """The running endpoint, its bucket, and the environment that points clients at it."""

    endpoint_url: str
    bucket: str
    env: dict[str, str] = field(default_factory=dict)

    def url(self, prefix: str) -> str:
        """``s3://bucket/prefix``."""
        return f"s3://{self.bucket}/{prefix.strip('/')}"


def s3_env(endpoint_url: str) -> dict[str, str]:
    """AWS + fsspec variables that send s3fs/boto3 to ``endpoint_url`` with dummy credentials."""
    return {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ENDPOINT_URL": endpoint_url,
        # fsspec maps FSSPEC_<PROTOCOL>_<KWARG> onto filesystem constructor kwargs
        "FSSPEC_S3_ENDPOINT_URL": endpoint_url,
    }


@contextlib.contextmanager
def patched_env(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables for the block, restoring the previous values after."""
    previous = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextlib.contextmanager
def s3_server(bucket: str | None = None) -> Iterator[S3Server]:
    """Start moto's S3 server with one empty bucket; the env is applied for the block."""
    try:
        import boto3  # noqa: PLC0415
        import s3fs  # noqa: F401, PLC0415
        from moto.server import ThreadedMotoServer  # noqa: PLC0415
    except ImportError as exc:
        raise ServiceUnavailable(f"{exc.name} is not installed (pip install -e '.[s3,dev]')") from None
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one access-log line per S3 call otherwise
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    env = s3_env(endpoint)
    name = bucket or f"scenechain-{uuid.uuid4().hex[:12]}"
    try:
        with patched_env(env):
            boto3.client("s3", endpoint_url=endpoint, region_name=REGION).create_bucket(Bucket=name)
            import fsspec  # noqa: PLC0415

            fsspec.filesystem("s3").clear_instance_cache()  # no client cached with another endpoint
            yield S3Server(endpoint_url=endpoint, bucket=name, env=env)
    finally:
        server.stop()
