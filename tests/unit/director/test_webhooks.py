"""Webhooks: signatures a Standard Webhooks receiver accepts, the SSRF guard, backoff, event mapping,
and the dispatcher on a real SQLite DB (outbox, retries with one webhook-id, give-up, restart)."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from scenechain.events import GenerationEvent
from standardwebhooks import Webhook, WebhookVerificationError

from director.webhooks import (
    InvalidWebhook,
    WebhookDispatcher,
    WebhookSettings,
    address_refusal,
    check_webhook_request,
    message_of,
    next_attempt_at,
    resolve_webhook_target,
    retry_delay_s,
    signed_headers,
    webhook_messages,
)
from store.db import Database, utcnow
from store.events import SqlEventStore
from store.webhooks import WebhookStore, new_webhook_secret

GEN = "a" * 32
PUBLIC_HOST = "hooks.example.com"
PUBLIC_ADDRESS = "93.184.216.34"
URL = f"https://{PUBLIC_HOST}/scenechain?x=1"


def resolver_of(table: dict[str, list[str]]) -> Callable[[str, int], object]:
    async def resolve(host: str, _port: int) -> list[str]:
        if host not in table:
            raise OSError(f"unknown host {host}")
        return table[host]

    return resolve


PUBLIC_DNS = resolver_of({PUBLIC_HOST: [PUBLIC_ADDRESS]})


# -- signing ---------------------------------------------------------------------------------------


def test_signature_verifies_with_the_reference_library() -> None:
    secret = new_webhook_secret()
    assert secret.startswith("whsec_")
    body = json.dumps({"type": "generation.completed", "data": {"id": GEN, "note": "é"}})
    timestamp = int(utcnow().timestamp())
    headers = signed_headers(secret, f"msg_{GEN}_completed", timestamp, body)
    assert headers["webhook-id"] == f"msg_{GEN}_completed" and headers["webhook-timestamp"] == str(timestamp)
    assert headers["webhook-signature"].startswith("v1,")
    assert Webhook(secret).verify(body.encode(), headers)["data"]["note"] == "é"
    # Another secret (e.g. after a rotation), a changed body or a changed id do not verify.
    with pytest.raises(WebhookVerificationError):
        Webhook(new_webhook_secret()).verify(body.encode(), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body.replace("completed", "failed").encode(), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body.encode(), {**headers, "webhook-id": "msg_other"})


# -- backoff -------------------------------------------------------------------------------------


def test_backoff_doubles_with_jitter_and_is_capped() -> None:
    settings = WebhookSettings(initial_backoff_s=2, max_backoff_s=30)
    rng = random.Random(7)
    for attempt, base in [(1, 2), (2, 4), (3, 8), (4, 16), (5, 30), (12, 30), (200, 30)]:
        delays = [retry_delay_s(attempt, settings, rng) for _ in range(50)]
        assert all(base / 2 <= delay <= base for delay in delays), (attempt, delays)
        assert len({round(delay, 6) for delay in delays}) > 40  # jittered, not lockstep


def test_retries_stop_at_the_window_and_the_last_falls_on_its_end() -> None:
    settings = WebhookSettings(initial_backoff_s=1, max_backoff_s=60, max_retry_s=100)
    created = utcnow()
    now, attempt, attempts_at = created, 1, []
    while (retry := next_attempt_at(created, attempt, now, settings, random.Random(attempt))) is not None:
        assert now < retry <= created + timedelta(seconds=100)
        attempts_at.append(retry)
        now, attempt = retry, attempt + 1
    assert attempts_at[-1] == created + timedelta(seconds=100)
    assert 6 <= len(attempts_at) <= 12  # doubling from 1 s: a handful of attempts in 100 s, not hundreds
    assert next_attempt_at(created, 1, created + timedelta(seconds=101), settings) is None


# -- the SSRF guard --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1:8080/hook", "loopback"),
        ("http://10.1.2.3/hook", "private"),
        ("http://192.168.0.10/hook", "private"),
        ("http://169.254.169.254/latest/meta-data", "link-local"),
        ("http://[::1]:9000/hook", "loopback"),
        ("http://[::ffff:127.0.0.1]/hook", "loopback"),
        ("http://[fe80::1]/hook", "link-local"),
        ("http://100.64.1.1/hook", "non-public"),
        ("http://0.0.0.0/hook", "unspecified"),
        ("http://localhost/hook", "loopback"),
        ("http://internal.example.com/hook", "private"),  # resolves to a private address
        ("http://mixed.example.com/hook", "private"),  # one public, one private address: refused
        ("ftp://hooks.example.com/hook", "http:// or https://"),
        ("file:///etc/passwd", "http:// or https://"),
        ("https://user:pw@hooks.example.com/hook", "credentials"),
        ("https://nowhere.example.com/hook", "cannot be resolved"),
        ("http://[::1/hook", "not a valid URL"),
    ],
)
def test_ssrf_guard_refuses(url: str, reason: str) -> None:
    resolver = resolver_of(
        {
            PUBLIC_HOST: [PUBLIC_ADDRESS],
            "localhost": ["127.0.0.1", "::1"],
            "internal.example.com": ["10.0.0.7"],
            "mixed.example.com": [PUBLIC_ADDRESS, "172.16.3.4"],
        }
    )
    with pytest.raises(InvalidWebhook, match=reason) as refused:
        asyncio.run(resolve_webhook_target(url, allow_private=False, resolver=resolver))
    assert refused.value.field == "webhook_url" and "webhook_url" in str(refused.value)


def test_a_name_that_resolves_too_slowly_is_refused() -> None:
    async def slow(_host: str, _port: int) -> list[str]:
        await asyncio.sleep(5)
        return [PUBLIC_ADDRESS]

    with pytest.raises(InvalidWebhook, match=r"not resolved within 0\.2s"):
        asyncio.run(resolve_webhook_target(URL, allow_private=False, resolver=slow, dns_timeout_s=0.2))


def test_public_urls_pass_and_the_connection_is_pinned_to_the_checked_address() -> None:
    target = asyncio.run(resolve_webhook_target(URL, allow_private=False, resolver=PUBLIC_DNS))
    assert target.connect_url == f"https://{PUBLIC_ADDRESS}:443/scenechain?x=1"
    assert target.host == PUBLIC_HOST and target.host_header == PUBLIC_HOST
    literal = asyncio.run(resolve_webhook_target("http://8.8.8.8:8080/h", allow_private=False))
    assert literal.connect_url == "http://8.8.8.8:8080/h" and literal.host_header == "8.8.8.8:8080"


def test_private_addresses_pass_only_when_allowed() -> None:
    assert address_refusal("127.0.0.1", allow_private=True) is None
    assert address_refusal("10.0.0.1", allow_private=True) is None
    assert address_refusal("224.0.0.1", allow_private=True) is not None  # multicast: never
    target = asyncio.run(resolve_webhook_target("http://127.0.0.1:5000/x", allow_private=True))
    assert target.connect_url == "http://127.0.0.1:5000/x"


def test_request_check_names_the_field_and_defaults_the_events() -> None:
    settings = WebhookSettings()
    assert asyncio.run(check_webhook_request(None, None, settings)) is None
    default = asyncio.run(check_webhook_request(URL, None, settings, PUBLIC_DNS))
    assert default == ["completed", "failed", "cancelled"]
    chosen = asyncio.run(
        check_webhook_request(URL, ["started", "started", "completed"], settings, PUBLIC_DNS)
    )
    assert chosen == ["started", "completed"]
    for url, events, field in [(None, ["completed"], "webhook_events"), (URL, [], "webhook_events")]:
        with pytest.raises(InvalidWebhook) as refused:
            asyncio.run(check_webhook_request(url, events, settings, PUBLIC_DNS))
        assert refused.value.field == field and field in str(refused.value)


# -- event mapping ---------------------------------------------------------------------------------


def event(seq: int, type: str, scene: int | None = None, **data: object) -> GenerationEvent:
    return GenerationEvent(type=type, generation_id=GEN, scene=scene, data=data, seq=seq)  # type: ignore[arg-type]


LOG = [
    event(1, "stage", stage="planning", label="planning"),
    event(2, "stage", 1, stage="generating", label="scene 1: generating"),
    event(3, "warning", 1, message="scene 1: below threshold"),
    event(4, "scene_done", 1, image_url="/img/1", scenes_done=1, scenes_total=2),
    event(5, "scene_done", 2, image_url="/img/2", scenes_done=2, scenes_total=2),
    event(6, "done", status="completed", error=None),
]


def test_events_map_to_webhook_messages_with_deterministic_ids() -> None:
    every = ["started", "scene_completed", "completed", "failed", "cancelled"]
    messages = webhook_messages(LOG, every)
    # Every stage event stands for "started"; the outbox keeps the first (one id).
    assert [m.id for m in messages] == [
        f"msg_{GEN}_started",
        f"msg_{GEN}_started",
        f"msg_{GEN}_scene_1",
        f"msg_{GEN}_scene_2",
        f"msg_{GEN}_completed",
    ]
    started, scene = json.loads(messages[0].body), json.loads(messages[2].body)
    assert started["type"] == "generation.started" and started["data"]["status"] == "running"
    assert scene["type"] == "generation.scene_completed"
    assert scene["data"]["scene"] == {"index": 1, "image_url": "/img/1", "scenes_done": 1, "scenes_total": 2}
    final = json.loads(messages[-1].body)
    assert final["type"] == "generation.completed"
    assert final["data"] == {
        "id": GEN,
        "status": "completed",
        "status_url": f"/api/status/{GEN}",
        "error": None,
    }
    assert final["timestamp"].endswith("Z")
    # The defaults: only the final status.
    assert [m.event for m in webhook_messages(LOG, ["completed", "failed", "cancelled"])] == ["completed"]
    failed = message_of(event(9, "done", status="failed", error="boom"))
    assert failed is not None and failed.id == f"msg_{GEN}_failed"
    assert json.loads(failed.body)["data"]["error"] == "boom"
    assert message_of(event(3, "warning", message="x")) is None


# -- the dispatcher on a real DB ---------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class Receiver:
    """A mock transport that verifies each delivery with the reference library, then answers."""

    def __init__(self, store: WebhookStore, answers: list[int | type[Exception]] | None = None) -> None:
        self.store = store
        self.answers = list(answers or [])
        self.seen: list[httpx.Request] = []
        self.verified: list[dict[str, object]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.seen.append(request)
        answer = self.answers.pop(0) if self.answers else 204
        if isinstance(answer, type):
            raise answer("no answer", request=request)
        secret = self.store.secret_for("alice")
        assert secret is not None
        self.verified.append(Webhook(secret).verify(request.content, dict(request.headers)))
        return httpx.Response(answer)


@pytest.fixture
def env(tmp_path: Path):
    db = Database(f"sqlite:///{tmp_path / 'webhooks.db'}")
    store, events = WebhookStore(db.engine), SqlEventStore(db.engine)
    db.create_generation(generation_id=GEN, user="alice", request={"prompt": "x"}, seed=1, scenes_total=2)
    store.get_or_create_secret("alice")
    yield db, store, events
    db.close()


def dispatcher(
    store: WebhookStore, events: SqlEventStore, receiver: Receiver, clock: Clock, **settings: float
) -> WebhookDispatcher:
    knobs = {"initial_backoff_s": 1.0, "max_backoff_s": 4.0, "max_retry_s": 20.0, **settings}
    return WebhookDispatcher(
        store,
        events,
        WebhookSettings(**knobs),
        transport=httpx.MockTransport(receiver),
        resolver=PUBLIC_DNS,
        clock=clock,
        rng=random.Random(3),
    )


async def run_pass(d: WebhookDispatcher) -> None:
    await d.tick()
    await d.drain()


def append_log(events: SqlEventStore, entries: list[GenerationEvent]) -> None:
    for entry in entries:
        events.append(GEN, entry.type, entry.scene, entry.data)


def test_dispatcher_delivers_signed_messages_once_each(env) -> None:
    db, store, events = env
    store.subscribe(GEN, "alice", URL, ["started", "scene_completed", "completed"])
    receiver, clock = Receiver(store), Clock()

    async def run() -> None:
        d = dispatcher(store, events, receiver, clock)
        append_log(events, LOG[:4])
        await run_pass(d)
        append_log(events, LOG[4:])
        db.update(GEN, status="completed", finished_at=utcnow())
        await run_pass(d)
        await run_pass(d)  # nothing new: nothing sent twice
        await d.close()

    asyncio.run(run())
    assert [r.headers["webhook-id"] for r in receiver.seen] == [
        f"msg_{GEN}_started",
        f"msg_{GEN}_scene_1",
        f"msg_{GEN}_scene_2",
        f"msg_{GEN}_completed",
    ]
    assert [v["type"] for v in receiver.verified][-1] == "generation.completed"
    # Connected to the address the guard checked, with the URL's host as Host.
    assert all(str(r.url).startswith(f"https://{PUBLIC_ADDRESS}/scenechain?x=1") for r in receiver.seen)
    assert {r.headers["host"] for r in receiver.seen} == {PUBLIC_HOST}
    assert all(d.status == "delivered" and d.attempts == 1 for d in store.deliveries_for(GEN))
    assert store.open_subscriptions() == []  # closed at the final event


def test_failures_are_retried_with_one_webhook_id_after_a_backoff(env) -> None:
    _db, store, events = env
    store.subscribe(GEN, "alice", URL, ["completed"])
    receiver, clock = Receiver(store, [500, httpx.ConnectError, 204]), Clock()
    append_log(events, LOG)

    async def run() -> None:
        d = dispatcher(store, events, receiver, clock)
        await run_pass(d)
        await run_pass(d)  # not due yet: the backoff holds
        assert len(receiver.seen) == 1
        for _ in range(2):
            clock.advance(5)
            await run_pass(d)
        await d.close()

    asyncio.run(run())
    assert len(receiver.seen) == 3
    assert {r.headers["webhook-id"] for r in receiver.seen} == {f"msg_{GEN}_completed"}
    assert len({r.content for r in receiver.seen}) == 1  # the same body on every attempt
    assert len({r.headers["webhook-timestamp"] for r in receiver.seen}) == 3  # each attempt signed anew
    (delivery,) = store.deliveries_for(GEN)
    assert delivery.status == "delivered" and delivery.attempts == 3 and delivery.last_status_code == 204


def test_an_unanswering_receiver_is_given_up_after_the_window(env) -> None:
    _db, store, events = env
    store.subscribe(GEN, "alice", URL, ["completed"])
    receiver, clock = Receiver(store, [httpx.ReadTimeout] * 100), Clock()
    append_log(events, LOG)

    async def run() -> None:
        d = dispatcher(store, events, receiver, clock, max_retry_s=20.0)
        for _ in range(20):
            await run_pass(d)
            clock.advance(2.5)
        await d.close()

    asyncio.run(run())
    (delivery,) = store.deliveries_for(GEN)
    assert delivery.status == "failed"
    assert 3 <= delivery.attempts == len(receiver.seen) <= 12
    assert (
        delivery.last_error is not None
        and "gave up" in delivery.last_error
        and "no answer" in delivery.last_error
    )


def test_a_pending_delivery_is_sent_by_a_new_dispatcher_after_a_restart(env) -> None:
    _db, store, events = env
    store.subscribe(GEN, "alice", URL, ["completed"])
    append_log(events, LOG)
    down, up, clock = Receiver(store, [httpx.ConnectError]), Receiver(store), Clock()

    async def before_restart() -> None:
        d = dispatcher(store, events, down, clock)
        await run_pass(d)
        await d.close()

    async def after_restart() -> None:
        clock.advance(10)
        d = dispatcher(store, events, up, clock)
        await run_pass(d)
        await d.close()

    asyncio.run(before_restart())
    (pending,) = store.deliveries_for(GEN)
    assert pending.status == "pending" and pending.attempts == 1  # persisted, waiting
    asyncio.run(after_restart())
    assert [r.headers["webhook-id"] for r in up.seen] == [pending.id]
    assert store.deliveries_for(GEN)[0].status == "delivered"


def test_dns_rebinding_to_a_private_address_is_refused_at_send_time(env) -> None:
    _db, store, events = env
    store.subscribe(GEN, "alice", URL, ["completed"])
    append_log(events, LOG)
    receiver, clock = Receiver(store), Clock()

    async def run() -> None:
        d = dispatcher(store, events, receiver, clock)
        d.resolver = resolver_of({PUBLIC_HOST: ["169.254.169.254"]})  # the name now points inside
        await run_pass(d)
        await d.close()

    asyncio.run(run())
    assert receiver.seen == []
    (delivery,) = store.deliveries_for(GEN)
    assert delivery.status == "pending" and "link-local" in (delivery.last_error or "")


def test_a_final_event_missing_from_the_log_is_taken_from_the_row(env) -> None:
    db, store, events = env
    store.subscribe(GEN, "alice", URL, ["failed"])
    db.update(GEN, status="failed", error="boom", finished_at=utcnow())
    receiver, clock = Receiver(store), Clock()

    async def run() -> None:
        d = dispatcher(store, events, receiver, clock, terminal_grace_s=30)
        await run_pass(d)
        assert receiver.seen == []  # within the grace period the event may still come
        clock.advance(60)
        await run_pass(d)
        await d.close()

    asyncio.run(run())
    assert [r.headers["webhook-id"] for r in receiver.seen] == [f"msg_{GEN}_failed"]
    assert receiver.verified[0]["data"]["error"] == "boom"  # type: ignore[index]
