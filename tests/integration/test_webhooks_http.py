"""Webhooks over real HTTP: the session's app POSTs signed Standard Webhooks messages to a real
receiver on loopback (the live app's config allows loopback: ``LIVE_WEBHOOKS`` in conftest), which
verifies every delivery with the reference library (``standardwebhooks``) and the secret the API
documents (``GET /api/webhooks/secret``).

- a receiver that answers: ``started``, ``scene_completed`` and ``completed``, in order, each once;
- one that fails twice, then answers: three attempts, one ``webhook-id``, one body;
- one that never answers: each attempt times out, is retried, then given up after the retry window
  and recorded as failed;
- the Director replica is killed while a delivery is pending: its replacement delivers it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

import pytest
from infra import wait_for
from standardwebhooks import Webhook, WebhookVerificationError

if TYPE_CHECKING:
    from conftest import LiveApp

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

USER = "webhook-receiver-owner"
SIMPLE = {"prompt": "An ad for a folding bicycle", "num_scenes": 1}


@dataclass
class Hit:
    """One request the receiver got."""

    path: str
    headers: dict[str, str]
    body: bytes
    answer: int | None = None
    verified: dict[str, Any] | None = None


class Receiver:
    """A real HTTP server on 127.0.0.1 whose behaviour depends on the path:

    ``/ok``: verify, 204; ``/flaky``: 500 twice, then verify, 204; ``/silent``: never answer;
    ``/restart``: 503 until ``up`` is set, then verify, 204. A delivery that does not verify is
    answered 400 (and recorded so)."""

    def __init__(self) -> None:
        self.secret = ""
        self.hits: list[Hit] = []
        self.lock = threading.Lock()
        self.up = threading.Event()
        self.stopping = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                hit = Hit(self.path, dict(self.headers.items()), body)
                with receiver.lock:
                    receiver.hits.append(hit)
                    earlier = sum(h.path == self.path for h in receiver.hits) - 1
                hit.answer = receiver.answer(hit, earlier)
                if hit.answer is None:
                    receiver.stopping.wait(60)  # hold the connection, never answer
                    return
                self.send_response(hit.answer)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def answer(self, hit: Hit, earlier: int) -> int | None:
        if hit.path == "/silent":
            return None
        if hit.path == "/flaky" and earlier < 2:
            return 500
        if hit.path == "/restart" and not self.up.is_set():
            return 503
        try:
            hit.verified = Webhook(self.secret).verify(hit.body, hit.headers)
        except WebhookVerificationError:
            return 400
        return 204

    def at(self, path: str) -> list[Hit]:
        with self.lock:
            return [hit for hit in self.hits if hit.path == path]


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    server.thread.start()
    try:
        yield server
    finally:
        server.stopping.set()
        server.server.shutdown()
        server.server.server_close()


def submit(client: Any, **body: Any) -> str:
    answer = client.post("/api/generate", json={**SIMPLE, **body})
    assert answer.status_code == 202, answer.text
    return answer.json()["id"]


def deliveries(client: Any, generation_id: str) -> list[dict[str, Any]]:
    answer = client.get(f"/api/generations/{generation_id}/webhooks")
    assert answer.status_code == 200, answer.text
    return answer.json()["items"]


def test_signed_deliveries_are_verified_retried_and_given_up(live_app: LiveApp, receiver: Receiver) -> None:
    with live_app.client(USER) as client:
        receiver.secret = client.get("/api/webhooks/secret").json()["secret"]
        refused = client.post("/api/generate", json={**SIMPLE, "webhook_url": "ftp://127.0.0.1/x"})
        assert refused.status_code == 422 and refused.json()["detail"][0]["loc"] == ["body", "webhook_url"]
        ids = {
            "ok": submit(
                client,
                seed=1,
                webhook_url=f"{receiver.url}/ok",
                webhook_events=["started", "scene_completed", "completed"],
            ),
            "flaky": submit(client, seed=2, webhook_url=f"{receiver.url}/flaky"),
            "silent": submit(
                client, seed=3, webhook_url=f"{receiver.url}/silent", webhook_events=["completed"]
            ),
        }
        for generation_id in ids.values():
            assert live_app.wait(client, generation_id)["status"] == "completed"

        # 1. The answering receiver: three messages in log order, each verified, each once.
        wait_for(lambda: len(receiver.at("/ok")) >= 3, 60, "the three /ok deliveries")
        ok = receiver.at("/ok")
        gid = ids["ok"]
        assert [hit.headers["webhook-id"] for hit in ok] == [
            f"msg_{gid}_started",
            f"msg_{gid}_scene_1",
            f"msg_{gid}_completed",
        ]
        assert all(hit.answer == 204 and hit.verified is not None for hit in ok)
        assert [hit.verified["type"] for hit in ok if hit.verified] == [
            "generation.started",
            "generation.scene_completed",
            "generation.completed",
        ]
        final = ok[-1].verified or {}
        assert final["data"]["id"] == gid and final["data"]["status"] == "completed"
        assert final["data"]["status_url"] == f"/api/status/{gid}"
        assert ok[1].verified and ok[1].verified["data"]["scene"]["index"] == 1

        # 2. Failed twice, then answered: one webhook-id, one body, three attempts.
        wait_for(
            lambda: [d["status"] for d in deliveries(client, ids["flaky"])] == ["delivered"],
            60,
            "the /flaky delivery",
        )
        flaky = receiver.at("/flaky")
        assert [hit.answer for hit in flaky] == [500, 500, 204]
        assert {hit.headers["webhook-id"] for hit in flaky} == {f"msg_{ids['flaky']}_completed"}
        assert len({hit.body for hit in flaky}) == 1
        assert flaky[-1].verified is not None
        (record,) = deliveries(client, ids["flaky"])
        assert record["attempts"] == 3 and record["last_status_code"] == 204

        # 3. Never answered: timed out, retried, given up after the window, recorded.
        wait_for(
            lambda: [d["status"] for d in deliveries(client, ids["silent"])] == ["failed"],
            90,
            "the /silent delivery to be given up",
        )
        (given_up,) = deliveries(client, ids["silent"])
        silent = receiver.at("/silent")
        assert given_up["attempts"] >= 2 and len(silent) == given_up["attempts"]
        assert {hit.headers["webhook-id"] for hit in silent} == {given_up["id"]}
        assert "gave up" in given_up["last_error"] and "no answer" in given_up["last_error"]


def _director_replicas() -> set[str]:
    import ray  # noqa: PLC0415

    return {
        actor["name"]
        for actor in ray.util.list_named_actors(all_namespaces=True)
        if actor["name"].startswith("SERVE_REPLICA::scenechain#Director#")
    }


def test_a_pending_delivery_is_sent_by_the_next_director_replica(
    live_app: LiveApp, receiver: Receiver
) -> None:
    import ray  # noqa: PLC0415

    with live_app.client(USER) as client:
        receiver.secret = client.get("/api/webhooks/secret").json()["secret"]
        generation_id = submit(client, seed=4, webhook_url=f"{receiver.url}/restart")
        assert live_app.wait(client, generation_id)["status"] == "completed"
        wait_for(lambda: receiver.at("/restart"), 60, "the first /restart attempt")

        # The receiver is down (503) and the Director replica dies with the delivery pending.
        (old,) = _director_replicas()
        ray.kill(ray.get_actor(old, namespace="serve"), no_restart=True)
        wait_for(lambda: old not in _director_replicas(), 60, "the old Director replica to be gone")
        (pending,) = deliveries(client, generation_id)
        assert pending["status"] == "pending", pending
        receiver.up.set()

        wait_for(
            lambda: [d["status"] for d in deliveries(client, generation_id)] == ["delivered"],
            180,
            "the replacement Director replica to deliver",
        )
    assert _director_replicas() - {old}
    hits = receiver.at("/restart")
    assert {hit.headers["webhook-id"] for hit in hits} == {f"msg_{generation_id}_completed"}
    assert hits[0].answer == 503 and hits[-1].answer == 204 and hits[-1].verified is not None
