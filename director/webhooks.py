"""Webhooks: generation events delivered to a user's URL as signed Standard Webhooks messages.

The parts, pure logic first (the ingress uses them too), then the ``WebhookDispatcher``:

- ``WebhookSettings``: the knobs (SSRF policy, timeout, retry window and backoff);
- ``check_webhook_request`` / ``resolve_webhook_target``: the SSRF guard. http(s) only; the host is
  resolved and *every* address must be public (no loopback, private, link-local, shared or reserved
  range) unless ``allow_private_addresses``. Checked at submit (a 422 naming the field) and again at
  each attempt, which then connects to the address it checked (DNS rebinding gets nothing);
- ``webhook_messages``: log events -> (webhook-id, event, body). Ids are deterministic
  (``msg_<generation>_started``, ``..._scene_<n>``, ``..._<completed|failed|cancelled>``) so a
  message is written to the outbox once, whoever reads the log, however often;
- ``sign`` / ``signed_headers``: ``webhook-signature: v1,base64(HMAC-SHA256(secret, "id.ts.body"))``;
- ``retry_delay_s`` / ``next_attempt_at``: exponential backoff with jitter inside a bounded window.

``WebhookDispatcher`` is an outbox driven by the persisted event log (``generation_events``): it
turns new events of subscribed generations into delivery rows (persisted before any send), then
sends the due rows, recording attempts, the next attempt or the final failure. It runs in the
Director deployment; after a restart the new replica sends whatever is still pending.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import hmac
import ipaddress
import json
import logging
import random
import socket
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
from pydantic import BaseModel, ConfigDict, Field
from scenechain.events import TERMINAL_EVENT, GenerationEvent
from scenechain.protocol import FINISHED_STATUSES, WEBHOOK_EVENTS

from store.db import utcnow
from store.events import EventStore
from store.webhooks import SECRET_PREFIX, DeliveryRecord, SubscriptionRecord, WebhookStore

logger = logging.getLogger(__name__)

DEFAULT_WEBHOOK_EVENTS: tuple[str, ...] = ("completed", "failed", "cancelled")
USER_AGENT = "scenechain-webhooks/0.1"

# host, port -> the addresses it resolves to (tests inject a fake one).
Resolver = Callable[[str, int], Awaitable[list[str]]]


class WebhookSettings(BaseModel):
    """Webhook delivery settings (the ingress reads the SSRF policy, the Director all of them)."""

    model_config = ConfigDict(extra="forbid")

    allow_private_addresses: bool = Field(
        default=False,
        description="Allow webhook URLs that resolve to loopback, private, link-local or other non-public "
        "addresses (local development and tests only).",
    )
    timeout_s: float = Field(
        default=10.0, gt=0, le=120, description="Timeout of one delivery attempt (connect + answer)."
    )
    max_retry_s: float = Field(
        default=86400.0,
        gt=0,
        description="Retry window: a delivery not answered 2xx this long after it was created is given up.",
    )
    initial_backoff_s: float = Field(
        default=5.0, gt=0, description="Delay before the first retry (jittered)."
    )
    max_backoff_s: float = Field(default=3600.0, gt=0, description="Largest delay between two attempts.")
    poll_interval_s: float = Field(
        default=1.0, gt=0, description="How often the dispatcher reads new events and sends due deliveries."
    )
    dns_timeout_s: float = Field(
        default=5.0,
        gt=0,
        le=60,
        description="Time allowed to resolve a webhook URL's host (submit and send).",
    )
    max_concurrent_deliveries: int = Field(
        default=16, ge=1, description="Attempts in flight at once per Director replica."
    )
    terminal_grace_s: float = Field(
        default=60.0,
        gt=0,
        description="A finished generation whose log lacks its final event this long after it finished "
        "gets its final webhook from the row.",
    )


# -- the SSRF guard ------------------------------------------------------------------------------


class InvalidWebhook(ValueError):
    """A webhook field the service refuses (HTTP 422 naming ``field``)."""

    def __init__(self, message: str, field: str = "webhook_url") -> None:
        super().__init__(message)
        self.field = field

    def __reduce__(self) -> tuple[type[InvalidWebhook], tuple[str, str]]:
        # Handle callers receive it across processes: pickle every constructor argument.
        return type(self), (str(self), self.field)


@dataclass(frozen=True)
class WebhookTarget:
    """A checked URL: where to connect (an address that passed the check) and what to call it."""

    url: str  # the URL as given
    connect_url: str  # the same URL with the host replaced by the checked address
    host: str  # for the Host header and TLS SNI / certificate check
    host_header: str
    address: str


def _split(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an http(s) URL; InvalidWebhook otherwise."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidWebhook(f"webhook_url is not a valid URL ({exc})") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise InvalidWebhook(f"webhook_url must be an http:// or https:// URL, not {scheme or 'schemeless'}")
    host = parts.hostname
    if not host:
        raise InvalidWebhook("webhook_url has no host")
    try:
        host = host.encode("idna").decode("ascii")  # the DNS form of an internationalised name
    except UnicodeError:
        raise InvalidWebhook(f"webhook_url host {host!r} is not a valid host name") from None
    if parts.username is not None or parts.password is not None:
        raise InvalidWebhook(
            "webhook_url must not carry credentials (user:password@); sign-in is the signature"
        )
    return scheme, host, port or (443 if scheme == "https" else 80)


def address_refusal(address: str, allow_private: bool) -> str | None:
    """Why ``address`` may not receive webhooks (None: it may)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone id
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_unspecified or ip.is_multicast:
        return "an unspecified or multicast address"
    if allow_private or ip.is_global:
        return None
    for kind, flag in (
        ("a loopback", ip.is_loopback),
        ("a link-local", ip.is_link_local),
        ("a private", ip.is_private),
        ("a reserved", ip.is_reserved),
    ):
        if flag:
            return f"{kind} address"
    return "a non-public address"


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True


# Lookups run in a small pool of their own: slow DNS answers (a hostile name server) must not use up
# the default executor that the DB calls run in.
_DNS_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="webhook-dns")


async def system_resolver(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (getaddrinfo, IPv4 and IPv6)."""
    infos = await asyncio.get_running_loop().run_in_executor(
        _DNS_POOL, functools.partial(socket.getaddrinfo, host, port, type=socket.SOCK_STREAM)
    )
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


async def resolve_webhook_target(
    url: str, allow_private: bool, resolver: Resolver | None = None, dns_timeout_s: float = 5.0
) -> WebhookTarget:
    """Check ``url`` (scheme, then every address its host resolves to); InvalidWebhook naming why."""
    scheme, host, port = _split(url)
    if _is_address(host):
        addresses = [host]
    else:
        try:
            addresses = await asyncio.wait_for((resolver or system_resolver)(host, port), dns_timeout_s)
        except TimeoutError:  # an OSError too: caught first
            raise InvalidWebhook(
                f"webhook_url host {host!r} was not resolved within {dns_timeout_s}s"
            ) from None
        except OSError as exc:
            raise InvalidWebhook(f"webhook_url host {host!r} cannot be resolved ({exc})") from None
        if not addresses:
            raise InvalidWebhook(f"webhook_url host {host!r} resolves to no address")
    for address in addresses:
        reason = address_refusal(address, allow_private)
        if reason is not None:
            shown = f"{host} is" if host == address else f"{host} resolves to {address}, which is"
            raise InvalidWebhook(
                f"webhook_url refused: {shown} {reason}; only public addresses receive webhooks"
            )
    address = addresses[0]
    parts = urlsplit(url)
    netloc_host = f"[{address}]" if ":" in address else address
    connect_netloc = f"{netloc_host}:{port}"
    default_port = 443 if scheme == "https" else 80
    host_header = host if port == default_port else f"{host}:{port}"
    if ":" in host:
        host_header = f"[{host}]" if port == default_port else f"[{host}]:{port}"
    connect_url = urlunsplit((scheme, connect_netloc, parts.path or "/", parts.query, ""))
    return WebhookTarget(
        url=url, connect_url=connect_url, host=host, host_header=host_header, address=address
    )


async def check_webhook_request(
    webhook_url: str | None,
    webhook_events: list[str] | None,
    settings: WebhookSettings,
    resolver: Resolver | None = None,
) -> list[str] | None:
    """The events to deliver (None: no webhook); InvalidWebhook for a refused URL or event list."""
    if webhook_url is None:
        if webhook_events is not None:
            raise InvalidWebhook("webhook_events needs a webhook_url", field="webhook_events")
        return None
    if webhook_events is not None and not webhook_events:
        raise InvalidWebhook(
            f"webhook_events is empty; list some of {list(WEBHOOK_EVENTS)} or omit it for "
            f"{list(DEFAULT_WEBHOOK_EVENTS)}",
            field="webhook_events",
        )
    await resolve_webhook_target(
        webhook_url, settings.allow_private_addresses, resolver, settings.dns_timeout_s
    )
    return list(dict.fromkeys(webhook_events or DEFAULT_WEBHOOK_EVENTS))


# -- messages ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WebhookMessage:
    """One message for the outbox: its ``webhook-id``, event name and the exact body to send."""

    id: str
    event: str
    body: str
    seq: int = 0  # the log position of its event (send order)


def status_path(generation_id: str) -> str:
    """API path of a generation's status."""
    return f"/api/status/{generation_id}"


def message_body(event: str, generation_id: str, status: str, timestamp: datetime, **data: Any) -> str:
    """The Standard Webhooks payload ``{"type", "timestamp", "data"}`` as compact JSON."""
    payload = {
        "type": f"generation.{event}",
        "timestamp": timestamp.isoformat().replace("+00:00", "Z"),
        "data": {"id": generation_id, "status": status, "status_url": status_path(generation_id), **data},
    }
    return json.dumps(payload, separators=(",", ":"), sort_keys=False, default=str)


def message_of(event: GenerationEvent) -> WebhookMessage | None:
    """The webhook message a log event stands for, if any (any ``stage`` event -> ``started``:
    the first one wins, since the outbox keeps one row per id)."""
    generation_id = event.generation_id
    if event.type == "stage":
        return WebhookMessage(
            f"msg_{generation_id}_started",
            "started",
            message_body("started", generation_id, "running", event.ts, stage=event.data.get("label")),
            event.seq,
        )
    if event.type == "scene_done" and event.scene is not None:
        scene = {
            "index": event.scene,
            "image_url": event.data.get("image_url"),
            "scenes_done": event.data.get("scenes_done"),
            "scenes_total": event.data.get("scenes_total"),
        }
        return WebhookMessage(
            f"msg_{generation_id}_scene_{event.scene}",
            "scene_completed",
            message_body("scene_completed", generation_id, "running", event.ts, scene=scene),
            event.seq,
        )
    if event.type == TERMINAL_EVENT:
        status = str(event.data.get("status"))
        if status in FINISHED_STATUSES:
            return terminal_message(generation_id, status, event.data.get("error"), event.ts, event.seq)
    return None


def terminal_message(
    generation_id: str, status: str, error: str | None, timestamp: datetime, seq: int
) -> WebhookMessage:
    """The final message of a generation (``completed``, ``failed`` or ``cancelled``)."""
    return WebhookMessage(
        f"msg_{generation_id}_{status}",
        status,
        message_body(status, generation_id, status, timestamp, error=error),
        seq,
    )


def webhook_messages(events: Iterable[GenerationEvent], subscribed: Iterable[str]) -> list[WebhookMessage]:
    """The messages of ``events`` a subscription to ``subscribed`` receives, in log order."""
    wanted = set(subscribed)
    messages = [message_of(event) for event in events]
    return [message for message in messages if message is not None and message.event in wanted]


# -- signing -------------------------------------------------------------------------------------


def secret_bytes(secret: str) -> bytes:
    """The key of a ``whsec_<base64>`` secret."""
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def sign(secret: str, message_id: str, timestamp: int, body: str | bytes) -> str:
    """``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`` (the Standard Webhooks signature)."""
    payload = body.encode() if isinstance(body, str) else body
    digest = hmac.new(secret_bytes(secret), f"{message_id}.{timestamp}.".encode() + payload, hashlib.sha256)
    return "v1," + base64.b64encode(digest.digest()).decode("ascii")


def signed_headers(secret: str, message_id: str, timestamp: int, body: str | bytes) -> dict[str, str]:
    """The headers of one attempt: the same ``webhook-id`` every time, that attempt's timestamp."""
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, message_id, timestamp, body),
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }


# -- retries -------------------------------------------------------------------------------------


def retry_delay_s(attempt: int, settings: WebhookSettings, rng: random.Random | None = None) -> float:
    """Delay after failed attempt ``attempt`` (1-based): doubling from ``initial_backoff_s``, capped at
    ``max_backoff_s``, jittered to 50-100% of that so failed receivers are not hit in lockstep."""
    base = min(settings.max_backoff_s, settings.initial_backoff_s * 2 ** min(attempt - 1, 30))
    return base * (0.5 + 0.5 * (rng or random).random())


def next_attempt_at(
    created_at: datetime,
    attempt: int,
    now: datetime,
    settings: WebhookSettings,
    rng: random.Random | None = None,
) -> datetime | None:
    """When to try again after failed attempt ``attempt``; None once the retry window is over (the
    last attempt falls on the window's end)."""
    deadline = created_at + timedelta(seconds=settings.max_retry_s)
    if now >= deadline:
        return None
    return min(now + timedelta(seconds=retry_delay_s(attempt, settings, rng)), deadline)


# -- the dispatcher ------------------------------------------------------------------------------


class WebhookDispatcher:
    """Turns subscribed generations' log events into persisted deliveries, and sends the due ones."""

    def __init__(
        self,
        store: WebhookStore,
        events: EventStore,
        settings: WebhookSettings | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        resolver: Resolver | None = None,
        clock: Callable[[], datetime] = utcnow,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.events = events
        self.settings = settings or WebhookSettings()
        self.resolver = resolver
        self.clock = clock
        self.rng = rng or random.Random()
        self._client = httpx.AsyncClient(
            transport=transport,
            timeout=self.settings.timeout_s,
            follow_redirects=False,  # a redirect could lead anywhere the SSRF check did not look
            trust_env=False,  # never through an environment proxy
        )
        # generation id -> the task sending its due deliveries
        self._inflight: dict[str, asyncio.Task[None]] = {}

    async def run(self) -> None:
        """Collect and send every ``poll_interval_s`` until cancelled."""
        while True:
            try:
                await self.tick()
            except Exception:
                logger.exception("webhook dispatcher pass failed")
            await asyncio.sleep(self.settings.poll_interval_s)

    async def tick(self) -> None:
        """One pass: new events -> deliveries, then start the due attempts (not awaited)."""
        await self.collect()
        await self.send_due()

    async def drain(self) -> None:
        """Await the attempts in flight (tests, shutdown)."""
        while self._inflight:
            await asyncio.gather(*self._inflight.values(), return_exceptions=True)

    async def close(self) -> None:
        """Cancel the attempts in flight (their rows stay pending: a later dispatcher retries) and close."""
        tasks = list(self._inflight.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._client.aclose()

    # 1. the log -> the outbox

    async def collect(self) -> int:
        """Persist a delivery for every new subscribed event; returns how many were added."""
        added = 0
        for subscription in await asyncio.to_thread(self.store.open_subscriptions):
            try:
                added += await self._collect_one(subscription)
            except Exception:
                logger.exception(
                    "[generation %s] webhook events not collected",
                    subscription.generation_id,
                    extra={"generation_id": subscription.generation_id},
                )
        return added

    async def _collect_one(self, subscription: SubscriptionRecord) -> int:
        generation_id = subscription.generation_id
        logged: list[GenerationEvent] = []
        after = subscription.last_seq
        while page := await asyncio.to_thread(self.events.read, generation_id, after):
            logged.extend(page)
            after = page[-1].seq
        messages = webhook_messages(logged, subscription.events)
        finished = any(event.type == TERMINAL_EVENT for event in logged)
        final_status = subscription.generation_status
        if not finished and final_status is not None and self._final_event_lost(subscription):
            # The row finished but its final event never reached the log: the row is the truth.
            finished = True
            final = terminal_message(
                generation_id,
                final_status,
                subscription.generation_error,
                subscription.generation_finished_at or self.clock(),
                after + 1,  # after everything logged
            )
            if final.event in subscription.events:
                messages.append(final)
        gone = subscription.generation_status is None and not logged
        added = 0
        for message in messages:
            inserted = await asyncio.to_thread(
                self.store.add_delivery,
                message.id,
                generation_id=generation_id,
                user=subscription.user_name,
                event=message.event,
                url=subscription.url,
                payload=message.body,
                seq=message.seq,
                now=self.clock(),
            )
            added += inserted
            if inserted:
                logger.info(
                    "[generation %s] webhook %s queued as %s",
                    generation_id,
                    message.event,
                    message.id,
                    extra={"generation_id": generation_id},
                )
        if after > subscription.last_seq or finished or gone:
            await asyncio.to_thread(self.store.advance, generation_id, after, done=finished or gone)
        return added

    def _final_event_lost(self, subscription: SubscriptionRecord) -> bool:
        finished_at = subscription.generation_finished_at
        return (
            subscription.generation_status in FINISHED_STATUSES
            and finished_at is not None
            and (self.clock() - finished_at).total_seconds() > self.settings.terminal_grace_s
        )

    # 2. the outbox -> the receivers

    async def send_due(self) -> int:
        """Start sending the due deliveries (not awaited); returns how many generations got a sender.

        One sender per generation, attempting its due messages in log order: a receiver gets a
        generation's messages in order (a retried one may be overtaken by the next).
        """
        room = self.settings.max_concurrent_deliveries - len(self._inflight)
        if room <= 0:
            return 0
        due = await asyncio.to_thread(
            self.store.due, self.clock(), 8 * self.settings.max_concurrent_deliveries
        )
        batches: dict[str, list[DeliveryRecord]] = {}
        for delivery in due:
            if delivery.generation_id in self._inflight:
                continue
            if delivery.generation_id in batches or len(batches) < room:
                batches.setdefault(delivery.generation_id, []).append(delivery)
        for generation_id, deliveries in batches.items():
            task = asyncio.get_running_loop().create_task(
                self._send_in_order(deliveries), name=f"webhooks-{generation_id}"
            )
            self._inflight[generation_id] = task
            task.add_done_callback(functools.partial(self._forget, generation_id))
        return len(batches)

    def _forget(self, generation_id: str, _task: asyncio.Task[None]) -> None:
        self._inflight.pop(generation_id, None)

    async def _send_in_order(self, deliveries: list[DeliveryRecord]) -> None:
        for delivery in sorted(deliveries, key=lambda d: (d.seq, d.created_at)):
            try:
                await self._attempt(delivery)
            except Exception:
                # A DB hiccup: the row stays pending (or leased) and a later pass retries it.
                logger.exception(
                    "[generation %s] webhook %s attempt not recorded",
                    delivery.generation_id,
                    delivery.id,
                    extra={"generation_id": delivery.generation_id},
                )

    async def _attempt(self, delivery: DeliveryRecord) -> None:
        generation_id = delivery.generation_id
        extra = {"generation_id": generation_id}
        now = self.clock()
        # Counted before sending; if this process dies mid-attempt, it is due again after the lease.
        lease = timedelta(seconds=2 * self.settings.timeout_s + self.settings.dns_timeout_s + 5)
        if not await asyncio.to_thread(self.store.claim, delivery, lease_until=now + lease):
            return  # another replica took this attempt
        attempt = delivery.attempts + 1
        status_code: int | None = None
        try:
            target = await resolve_webhook_target(
                delivery.url,
                self.settings.allow_private_addresses,
                self.resolver,
                self.settings.dns_timeout_s,
            )
            secret = (await asyncio.to_thread(self.store.get_or_create_secret, delivery.user_name)).secret
            headers = signed_headers(secret, delivery.id, int(now.timestamp()), delivery.payload)
            headers["host"] = target.host_header
            # Streamed and closed unread: only the status matters, a receiver's body is never loaded.
            async with self._client.stream(
                "POST",
                target.connect_url,
                content=delivery.payload.encode(),
                headers=headers,
                extensions={"sni_hostname": target.host} if target.url.lower().startswith("https") else {},
            ) as response:
                status_code = response.status_code
            if 200 <= status_code < 300:
                await asyncio.to_thread(self.store.mark_delivered, delivery.id, status_code)
                logger.info(
                    "[generation %s] webhook %s delivered (attempt %d, HTTP %d)",
                    generation_id,
                    delivery.id,
                    attempt,
                    status_code,
                    extra=extra,
                )
                return
            error = f"HTTP {status_code}"
        except InvalidWebhook as exc:
            error = str(exc)
        except httpx.TimeoutException:
            error = f"no answer within {self.settings.timeout_s}s"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
        except Exception as exc:  # anything else still ends the attempt: retried or given up below
            logger.exception(
                "[generation %s] webhook %s attempt failed", generation_id, delivery.id, extra=extra
            )
            error = f"{type(exc).__name__}: {exc}"
        retry_at = next_attempt_at(delivery.created_at, attempt, self.clock(), self.settings, self.rng)
        if retry_at is None:
            message = f"gave up after {attempt} attempt(s) over {self.settings.max_retry_s}s; last: {error}"
            await asyncio.to_thread(self.store.give_up, delivery.id, message, status_code)
            logger.warning("[generation %s] webhook %s %s", generation_id, delivery.id, message, extra=extra)
            return
        await asyncio.to_thread(self.store.schedule_retry, delivery.id, retry_at, error, status_code)
        logger.info(
            "[generation %s] webhook %s attempt %d failed (%s); retry at %s",
            generation_id,
            delivery.id,
            attempt,
            error,
            retry_at.isoformat(),
            extra=extra,
        )


__all__ = [
    "DEFAULT_WEBHOOK_EVENTS",
    "InvalidWebhook",
    "WebhookDispatcher",
    "WebhookMessage",
    "WebhookSettings",
    "WebhookTarget",
    "address_refusal",
    "check_webhook_request",
    "message_of",
    "next_attempt_at",
    "resolve_webhook_target",
    "retry_delay_s",
    "sign",
    "signed_headers",
    "webhook_messages",
]
