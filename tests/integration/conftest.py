"""One real scenechain Serve app per test session: local Ray with a logical GPU, real HTTP, tiny models.

The app is built as a deployer builds it: ``SCENECHAIN_JWT_SECRET`` set (a random value per test
session, ``jwt_secret``), since the shipped configs hold no secret and ``build_app`` refuses to
start without one. Tokens are minted with ``AppArgs.from_env().jwt``, the same settings.
"""

from __future__ import annotations

import os
import secrets
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from api.auth import mint_token
from serve.config import AppArgs

REPO = Path(__file__).resolve().parents[2]
FINISHED = ("completed", "failed", "cancelled")
# Webhook receivers in tests listen on loopback; short timeout and retry window (test_webhooks_http.py).
LIVE_WEBHOOKS = {
    "allow_private_addresses": True,
    "timeout_s": 2.0,
    "initial_backoff_s": 0.5,
    "max_backoff_s": 2.0,
    "max_retry_s": 8.0,
    "poll_interval_s": 0.25,
}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tiny_config_args() -> dict[str, Any]:
    """The app args of configs/tiny.yaml (so the shipped config is what the tests run)."""
    document = yaml.safe_load((REPO / "configs" / "tiny.yaml").read_text())
    return dict(document["applications"][0]["args"])


@dataclass
class LiveApp:
    """A running app: its URL, args, store, and a way to redeploy it with other args."""

    base_url: str
    args: dict[str, Any]
    output_dir: Path
    deploy: Callable[[dict[str, Any]], None]

    def headers(self, user: str = "alice") -> dict[str, str]:
        return {"Authorization": f"Bearer {mint_token(AppArgs.from_env().jwt, user)}"}

    def client(self, user: str = "alice") -> httpx.Client:
        return httpx.Client(base_url=self.base_url, headers=self.headers(user), timeout=60)

    def wait(self, client: httpx.Client, generation_id: str, timeout_s: float = 400) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while True:
            status = client.get(f"/api/status/{generation_id}").json()
            if status["status"] in FINISHED or time.monotonic() > deadline:
                return status
            time.sleep(0.5)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run the tests on the shared app last: its Ray cluster lives until the session ends, and
    other modules start (and stop) clusters of their own in this process."""
    items.sort(
        key=lambda item: (
            "live_app" in getattr(item, "fixturenames", ())
            # a module that asks for live_app at run time (request.getfixturevalue) says so
            or getattr(getattr(item, "module", None), "USES_LIVE_APP", False)
        )
    )


@pytest.fixture(scope="session", autouse=True)
def jwt_secret() -> Iterator[str]:
    """SCENECHAIN_JWT_SECRET for the session: random, 48 characters (what a deployer sets)."""
    secret = secrets.token_urlsafe(36)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SCENECHAIN_JWT_SECRET", secret)
        for name in ("SCENECHAIN_JWT_PREVIOUS_SECRETS", "SCENECHAIN_JWT_PUBLIC_KEY_FILE"):
            if name in os.environ:
                patch.delenv(name)
        yield secret


@pytest.fixture(scope="session")
def live_app(jwt_secret: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApp]:
    import ray  # noqa: PLC0415
    from ray import serve  # noqa: PLC0415

    from serve.app import build_app  # noqa: PLC0415

    output_dir = tmp_path_factory.mktemp("scenechain-output")
    # A short lease so the recovery test sees a dead Director's generation resumed quickly.
    args = {
        **tiny_config_args(),
        "output_dir": str(output_dir),
        "lease_timeout_s": 10,
        "webhooks": LIVE_WEBHOOKS,
    }
    port = _free_port()
    # Logical GPUs: the 0.25/0.125-GPU replicas really place on this CPU machine.
    ray.init(address="local", num_cpus=2, num_gpus=1, include_dashboard=False)
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})

        def deploy(app_args: dict[str, Any]) -> None:
            serve.run(build_app(app_args), name="scenechain", route_prefix="/")

        deploy(args)
        yield LiveApp(f"http://127.0.0.1:{port}", args, output_dir, deploy)
    finally:
        serve.shutdown()
        ray.shutdown()
