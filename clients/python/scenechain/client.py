"""Python client of the scenechain HTTP API (httpx; sync ``Client`` and async ``AsyncClient``).

Typed with the server's own models (``scenechain.protocol``, ``scenechain.events``)::

    from scenechain import Client

    with Client("http://127.0.0.1:8000", token) as client:
        accepted = client.generate("30s spot for a citrus soda", advanced=True, variations=4, scenes=3)
        for event in client.events(accepted.id):        # live, until the "done" event
            print(event.type, event.scene, event.data)
        status = client.wait(accepted.id, timeout=600)  # or just wait
        paths = client.download(accepted.id, "out/")    # best images, status.json, exports

Errors are ``APIError`` subclasses that carry the server's message (and ``retry_after`` for
429/503): ``AuthenticationError`` 401, ``NotFoundError`` 404, ``ValidationError`` 422,
``RateLimitError`` 429, ``ServiceUnavailableError`` 503, ``ServerError`` other 5xx.

Layout: every operation is built once, without I/O, as a ``Call`` (method, path, query, body,
headers, and the parser that turns the response into a model, bytes or an ``APIError``); the
policies of ``wait``, ``events`` and ``download`` live once too (``_Waiter``, ``_EventStream``,
``_download_plan``). ``Client`` and ``AsyncClient`` only do the I/O: ``_send`` a ``Call``, sleep,
read a stream, write a file.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
import tomllib
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, Generic, Self, TypeVar

import httpx
from pydantic import BaseModel

from scenechain.events import (
    EVENT_TYPES,
    TERMINAL_EVENT,
    GenerationEvent,
    SSEDecoder,
    event_from_sse,
)
from scenechain.protocol import (
    FINISHED_STATUSES,
    GenerateAccepted,
    GenerateRequest,
    GenerationPage,
    GenerationStatus,
    Health,
    UploadedImage,
    WebhookDeliveryList,
    WebhookSecret,
)

DEFAULT_URL = "http://127.0.0.1:8000"
ENV_URL = "SCENECHAIN_URL"
ENV_TOKEN = "SCENECHAIN_TOKEN"
ENV_CONFIG = "SCENECHAIN_CONFIG"

Paths = list[Path]  # (a module-level alias: inside the clients, ``list`` is their method)

# Short names accepted by ``generate`` (and the CLI flags) for the request's fields.
SETTING_ALIASES: dict[str, str] = {
    "advanced": "use_advanced_image_generation",
    "threshold": "advanced_image_quality_threshold",
    "variations": "advanced_image_num_variations",
    "iterations": "advanced_image_max_enhancement_iterations",
    "scenes": "num_scenes",
    "webhook": "webhook_url",
    "deadline": "deadline_s",
}
# ``reference=`` takes a file path or bytes and sends them base64-encoded as ``reference_image``.
REFERENCE_SETTING = "reference"


# -- errors --------------------------------------------------------------------------------------


class ScenechainError(Exception):
    """Base of the client's errors."""


class ConnectionFailed(ScenechainError):
    """The server could not be reached (or the connection broke)."""


class WaitTimeout(ScenechainError, TimeoutError):
    """``wait`` gave up; ``last_status`` is the last status document seen."""

    def __init__(self, message: str, last_status: GenerationStatus | None = None) -> None:
        super().__init__(message)
        self.last_status = last_status


class EventsUnavailable(ScenechainError):
    """The server has no events endpoint (an older server): poll ``status`` instead."""


class APIError(ScenechainError):
    """The server answered with an error status; ``message`` is its explanation."""

    def __init__(
        self,
        status_code: int,
        message: str,
        *,
        detail: Any = None,
        retry_after: float | None = None,
        method: str = "",
        url: str = "",
    ) -> None:
        super().__init__(f"HTTP {status_code}: {message}")
        self.status_code = status_code
        self.message = message
        self.detail = detail
        self.retry_after = retry_after
        self.method = method
        self.url = url


class AuthenticationError(APIError):
    """401: missing, malformed, expired or wrongly signed token."""


class PermissionDeniedError(APIError):
    """403: the token is valid but not allowed."""


class NotFoundError(APIError):
    """404: unknown id, another user's generation, or a scene/file that does not exist (yet)."""


class ConflictError(APIError):
    """409: the request conflicts with the generation's state (e.g. an export before any scene)."""


class ValidationError(APIError):
    """422: the request was invalid; ``errors`` lists each problem (``loc``, ``msg``)."""

    @property
    def errors(self) -> list[dict[str, Any]]:
        return list(self.detail) if isinstance(self.detail, list) else []


class RateLimitError(APIError):
    """429: too many requests; retry after ``retry_after`` seconds."""


class ServiceUnavailableError(APIError):
    """503: overloaded or starting; retry after ``retry_after`` seconds."""


class ServerError(APIError):
    """Any other 5xx."""


_ERRORS: dict[int, type[APIError]] = {
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: ValidationError,
    429: RateLimitError,
    503: ServiceUnavailableError,
}


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date); None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _message_of(detail: Any) -> str:
    """A one-line message from FastAPI's ``detail`` (a string, or a list of ``{loc, msg}``)."""
    if isinstance(detail, str):
        return detail
    if isinstance(detail, list):
        parts = []
        for item in detail:
            if isinstance(item, dict):
                msg = str(item.get("msg", item))
                loc = [str(p) for p in item.get("loc", ()) if p != "body"]
                field = ".".join(loc)
                parts.append(
                    msg if not field or msg.startswith(f"{loc[-1]}:") or field in msg else f"{field}: {msg}"
                )
            else:
                parts.append(str(item))
        return "; ".join(parts)
    if isinstance(detail, dict):
        return str(detail.get("message") or detail.get("msg") or json.dumps(detail))
    return str(detail)


def error_from_response(response: httpx.Response) -> APIError:
    """The ``APIError`` subclass for an error response, with the server's message."""
    detail: Any
    try:
        body = response.json()
        detail = body.get("detail", body) if isinstance(body, dict) else body
    except ValueError:
        detail = response.text.strip() or response.reason_phrase
    message = _message_of(detail) or response.reason_phrase or "error"
    cls = _ERRORS.get(response.status_code) or (ServerError if response.status_code >= 500 else APIError)
    try:
        request: httpx.Request | None = response.request
    except RuntimeError:  # a Response built by hand has no request
        request = None
    return cls(
        response.status_code,
        message,
        detail=detail,
        retry_after=parse_retry_after(response.headers.get("retry-after")),
        method=request.method if request is not None else "",
        url=str(request.url) if request is not None else "",
    )


def _raise_for_status(response: httpx.Response) -> None:
    if response.status_code >= 400:
        raise error_from_response(response)


def _is_missing_route(response: httpx.Response) -> bool:
    """True for FastAPI's answer to a path it has no route for (not 'generation X not found')."""
    if response.status_code == 405:
        return True
    if response.status_code != 404:
        return False
    try:
        return bool(response.json().get("detail") == "Not Found")
    except (ValueError, AttributeError):
        return True


# -- connection settings -------------------------------------------------------------------------


def default_config_path() -> Path:
    """``$SCENECHAIN_CONFIG``, else ``$XDG_CONFIG_HOME/scenechain/config.toml`` (``~/.config``)."""
    if os.environ.get(ENV_CONFIG):
        return Path(os.environ[ENV_CONFIG]).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "scenechain" / "config.toml"


def resolve_connection(
    url: str | None = None, token: str | None = None, config_path: str | Path | None = None
) -> tuple[str, str | None]:
    """(url, token): explicit values, else ``SCENECHAIN_URL``/``SCENECHAIN_TOKEN``, else the config
    file's ``url``/``token`` keys (``token_file`` also works), else the default URL and no token."""
    path = Path(config_path).expanduser() if config_path else default_config_path()
    config: dict[str, Any] = {}
    if path.is_file():
        try:
            config = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ScenechainError(f"config file {path}: {exc}") from exc
    config = config.get("client", config)  # a [client] table or top-level keys
    resolved_url = url or os.environ.get(ENV_URL) or config.get("url") or DEFAULT_URL
    resolved_token = token or os.environ.get(ENV_TOKEN) or config.get("token")
    if not resolved_token and config.get("token_file"):
        resolved_token = Path(str(config["token_file"])).expanduser().read_text().strip()
    return str(resolved_url).rstrip("/"), resolved_token


def build_request(prompt: str | GenerateRequest, settings: Mapping[str, Any]) -> GenerateRequest:
    """A ``GenerateRequest`` from a prompt (or a request) and settings (field names or aliases)."""
    if isinstance(prompt, GenerateRequest):
        if settings:
            return prompt.model_copy(update=_canonical_settings(settings))
        return prompt
    return GenerateRequest(prompt=prompt, **_canonical_settings(settings))


def reference_image_field(image: str | os.PathLike[str] | bytes) -> str:
    """``reference_image`` of a product image given as a file path or bytes (base64 of the bytes)."""
    data = image if isinstance(image, bytes) else Path(image).read_bytes()
    return base64.b64encode(data).decode("ascii")


def _canonical_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    fields = set(GenerateRequest.model_fields)
    out: dict[str, Any] = {}
    for key, value in settings.items():
        if key == REFERENCE_SETTING:
            if value is not None:
                out["reference_image"] = reference_image_field(value)
            continue
        name = SETTING_ALIASES.get(key, key)
        if name not in fields or name == "prompt":
            allowed = sorted((fields - {"prompt"}) | set(SETTING_ALIASES) | {REFERENCE_SETTING})
            raise TypeError(f"unknown setting {key!r}; allowed: {allowed}")
        if value is not None:
            out[name] = value
    return out


# -- operations, without I/O ---------------------------------------------------------------------
#
# Each API operation is a ``Call``: the request to send and the function that reads its answer
# (a model, bytes, or an ``APIError``). ``Client`` and ``AsyncClient`` only carry calls over HTTP.

T_co = TypeVar("T_co", covariant=True)
ModelT = TypeVar("ModelT", bound=BaseModel)


@dataclass(frozen=True)
class Call(Generic[T_co]):
    """One request (method, path, query, body, extra headers) and the parser of its response."""

    method: str
    path: str
    parse: Callable[[httpx.Response], T_co]
    params: Mapping[str, Any] | None = None
    json: Any = None
    headers: Mapping[str, str] | None = None
    timeout: float | None = None
    content: bytes | None = None

    def options(self) -> dict[str, Any]:
        """The keyword arguments of ``httpx.Client.request`` / ``.stream`` (besides method and path)."""
        options: dict[str, Any] = {"params": self.params, "json": self.json, "headers": self.headers}
        if self.content is not None:
            options["content"] = self.content
        if self.timeout is not None:
            options["timeout"] = self.timeout
        return options


def _model(model: type[ModelT]) -> Callable[[httpx.Response], ModelT]:
    def parse(response: httpx.Response) -> ModelT:
        _raise_for_status(response)
        return model.model_validate(response.json())

    return parse


def _accepted_or_finished(response: httpx.Response) -> GenerateAccepted | GenerationStatus:
    """202: the accepted job; 200 (``Prefer: wait`` and it finished in time): its final status."""
    _raise_for_status(response)
    if response.status_code == 200:
        return GenerationStatus.model_validate(response.json())
    return GenerateAccepted.model_validate(response.json())


def _bytes(response: httpx.Response) -> bytes:
    _raise_for_status(response)
    return response.content


def _json(response: httpx.Response) -> dict[str, Any]:
    _raise_for_status(response)
    body: dict[str, Any] = response.json()
    return body


def _bytes_if_offered(response: httpx.Response) -> bytes | None:
    """The body, or None when the server has no such route (an export it does not offer)."""
    if _is_missing_route(response):
        return None
    return _bytes(response)


def _generation(generation_id: str) -> str:
    return f"/api/generations/{generation_id}"


class _Op:
    """The ``Call`` of each operation."""

    @staticmethod
    def health() -> Call[Health]:
        return Call("GET", "/healthz", _model(Health))

    @staticmethod
    def generate(
        prompt: str | GenerateRequest,
        settings: Mapping[str, Any],
        wait: int | None = None,
        cancel_after: str | float | None = None,
    ) -> Call[GenerateAccepted | GenerationStatus]:
        body = build_request(prompt, settings).model_dump(mode="json", exclude_none=True)
        headers: dict[str, str] = {}
        if wait is not None:
            headers["Prefer"] = f"wait={wait}"
        if cancel_after is not None:
            headers["Cancel-After"] = (
                str(int(cancel_after)) if isinstance(cancel_after, int | float) else cancel_after
            )
        # With Prefer: wait the server holds the answer up to ``wait`` seconds: the read waits longer.
        timeout = None if wait is None else wait + 30.0
        return Call(
            "POST",
            "/api/generate",
            _accepted_or_finished,
            json=body,
            headers=headers or None,
            timeout=timeout,
        )

    @staticmethod
    def status(generation_id: str) -> Call[GenerationStatus]:
        return Call("GET", f"/api/status/{generation_id}", _model(GenerationStatus))

    @staticmethod
    def list(limit: int, offset: int) -> Call[GenerationPage]:
        params = {"limit": limit, "offset": offset}
        return Call("GET", "/api/generations", _model(GenerationPage), params=params)

    @staticmethod
    def cancel(generation_id: str) -> Call[GenerationStatus]:
        return Call("POST", f"{_generation(generation_id)}/cancel", _model(GenerationStatus))

    @staticmethod
    def image(generation_id: str, scene: int) -> Call[bytes]:
        return Call("GET", f"{_generation(generation_id)}/scenes/{scene}/image", _bytes)

    @staticmethod
    def variation(generation_id: str, scene: int, k: int) -> Call[bytes]:
        return Call("GET", f"{_generation(generation_id)}/scenes/{scene}/variations/{k}", _bytes)

    @staticmethod
    def trace(generation_id: str, scene: int) -> Call[dict[str, Any]]:
        return Call("GET", f"{_generation(generation_id)}/scenes/{scene}/trace", _json)

    @staticmethod
    def upload(image: str | os.PathLike[str] | bytes) -> Call[UploadedImage]:
        data = image if isinstance(image, bytes) else Path(image).read_bytes()
        # The server reads the format from the bytes; octet-stream says no more than that.
        headers = {"Content-Type": "application/octet-stream"}
        return Call("POST", "/api/uploads", _model(UploadedImage), headers=headers, content=data)

    @staticmethod
    def webhook_secret(rotate: bool) -> Call[WebhookSecret]:
        if rotate:
            return Call("POST", "/api/webhooks/secret/rotate", _model(WebhookSecret))
        return Call("GET", "/api/webhooks/secret", _model(WebhookSecret))

    @staticmethod
    def webhook_deliveries(generation_id: str) -> Call[WebhookDeliveryList]:
        return Call("GET", f"{_generation(generation_id)}/webhooks", _model(WebhookDeliveryList))

    @staticmethod
    def export(generation_id: str, name: str) -> Call[bytes | None]:
        return Call("GET", f"{_generation(generation_id)}/export/{name}", _bytes_if_offered)


# The server's exports, by route name, and the file ``download`` writes each to.
EXPORTS: tuple[tuple[str, str], ...] = (
    ("contact-sheet.png", "contact_sheet.png"),
    ("animatic.mp4", "animatic.mp4"),
)


def _download_plan(
    generation_id: str, status: GenerationStatus, out: Path, *, variations: bool, exports: bool
) -> Iterator[tuple[Path, Call[bytes | None]]]:
    """(file, call) for everything ``download`` fetches after the status: each scene's best image,
    optionally its variations, then the server's exports (a None answer: not offered, skipped)."""
    for scene in status.scenes:
        yield out / f"scene_{scene.index:02d}.png", _Op.image(generation_id, scene.index)
        if variations:
            for k in range(1, scene.num_variations + 1):
                path = out / f"scene_{scene.index:02d}_variation_{k}.png"
                yield path, _Op.variation(generation_id, scene.index, k)
    if exports and status.scenes:
        for name, filename in EXPORTS:
            yield out / filename, _Op.export(generation_id, name)


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(data)
    tmp.replace(path)
    return path


def _write_status(out: Path, status: GenerationStatus) -> Path:
    text = json.dumps(status.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"
    return _write(out / "status.json", text.encode())


_BUSY = (RateLimitError, ServiceUnavailableError)


class _Waiter:
    """``wait``'s policy: finished or not, how long to sleep before the next poll, when to give up."""

    def __init__(self, generation_id: str, timeout: float, poll: float) -> None:
        self.generation_id = generation_id
        self.timeout = timeout
        self.poll = poll
        self.deadline = time.monotonic() + timeout
        self.last: GenerationStatus | None = None

    def finished(self, outcome: GenerationStatus | APIError) -> GenerationStatus | None:
        """The status if the generation is over (completed, failed or cancelled), else None."""
        if isinstance(outcome, GenerationStatus):
            self.last = outcome
            if outcome.status in FINISHED_STATUSES:
                return outcome
        return None

    def delay(self, outcome: GenerationStatus | APIError) -> float:
        """Seconds to sleep: the poll period, or a busy answer's Retry-After. WaitTimeout when out of time."""
        delay = self.poll
        if isinstance(outcome, APIError):
            delay = max(self.poll, outcome.retry_after or self.poll)
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            state = self.last.status if self.last else "unknown"
            raise WaitTimeout(
                f"generation {self.generation_id} still {state} after {self.timeout:g}s", self.last
            )
        return min(delay, remaining)


class _EventStream:
    """``events``' protocol: the request (resuming with ``Last-Event-ID``), decoding lines into
    events, and the reconnect policy after a dropped stream."""

    def __init__(
        self,
        url: str,
        generation_id: str,
        last_event_id: int | str | None,
        reconnect: bool,
        max_reconnects: int,
        timeout: httpx.Timeout,
    ) -> None:
        self.url = url
        self.generation_id = generation_id
        self.last_event_id = last_event_id
        self.reconnect = reconnect
        self.max_reconnects = max_reconnects
        self.timeout = timeout
        self.failures = 0
        self.finished = False
        self._decoder = SSEDecoder()

    def call(self) -> Call[None]:
        """The next connection's request; its parser raises for an error answer (body read first)."""
        self._decoder = SSEDecoder()
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        if self.last_event_id:
            headers["Last-Event-ID"] = str(self.last_event_id)
        return Call("GET", f"{_generation(self.generation_id)}/events", self._check, headers=headers)

    def _check(self, response: httpx.Response) -> None:
        if response.status_code >= 400 and _is_missing_route(response):
            raise EventsUnavailable(f"{self.url} has no events endpoint")
        _raise_for_status(response)

    def feed(self, line: str) -> GenerationEvent | None:
        """The event completed by this line, if any (unknown event types are skipped)."""
        message = self._decoder.feed(line)
        if message is None or message.event not in EVENT_TYPES:
            return None  # partial message, or a future event type: skip, don't break old clients
        event = event_from_sse(message)
        if message.id:
            self.last_event_id = message.id
        self.failures = 0
        self.finished = event.type == TERMINAL_EVENT
        return event

    def backoff(self, error: httpx.TransportError | None) -> float | None:
        """After the stream ended before ``done`` (``error``: it broke): seconds to wait before
        reconnecting, or None to stop. ConnectionFailed when a broken stream is given up."""
        self.failures += 1
        if not self.reconnect or self.failures > self.max_reconnects:
            if error is not None:
                raise ConnectionFailed(f"event stream of {self.generation_id} broke: {error}") from error
            return None
        return min(0.5 * self.failures, 5.0)


class _Base:
    def __init__(self, url: str, token: str | None) -> None:
        self.url = url.rstrip("/")
        self.token = token

    @classmethod
    def from_config(cls, url: str | None = None, token: str | None = None, **kwargs: Any) -> Self:
        """A client with URL/token from arguments, environment or the config file."""
        resolved_url, resolved_token = resolve_connection(url, token, kwargs.pop("config_path", None))
        return cls(resolved_url, resolved_token, **kwargs)

    def _headers(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": "scenechain-client/0.1"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        headers.update(extra or {})
        return headers

    def _unreachable(self, call: Call[Any], exc: httpx.TransportError) -> ConnectionFailed:
        return ConnectionFailed(f"{call.method} {self.url}{call.path}: {exc}")


# -- sync ----------------------------------------------------------------------------------------


class Client(_Base):
    """Synchronous client. Use as a context manager, or call ``close()``."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(url, token)
        self._http = httpx.Client(
            base_url=self.url, timeout=timeout, transport=transport, headers=self._headers()
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send(self, call: Call[T_co]) -> T_co:
        try:
            response = self._http.request(call.method, call.path, **call.options())
        except httpx.TransportError as exc:
            raise self._unreachable(call, exc) from exc
        return call.parse(response)

    # -- API -----------------------------------------------------------------------------------

    def health(self) -> Health:
        """``GET /healthz`` (no token needed)."""
        return self._send(_Op.health())

    def generate(
        self,
        prompt: str | GenerateRequest,
        *,
        wait: int | None = None,
        cancel_after: str | float | None = None,
        **settings: Any,
    ) -> GenerateAccepted | GenerationStatus:
        """Submit a brief; returns at once (202) with the id. Settings: the request's field names or
        the aliases advanced, threshold, variations, iterations, scenes, webhook, deadline, and
        ``reference`` (a product image path or bytes, sent as ``reference_image``).

        ``wait=N`` (1-60, ``Prefer: wait``): the final ``GenerationStatus`` when the job finishes
        within N seconds, else the usual ``GenerateAccepted``. ``cancel_after`` ('90s', '5m', or
        seconds; ``Cancel-After``): cancel the job (reason 'deadline') if unfinished by then."""
        return self._send(_Op.generate(prompt, settings, wait, cancel_after))

    def status(self, generation_id: str) -> GenerationStatus:
        """The full status document."""
        return self._send(_Op.status(generation_id))

    def list(self, limit: int = 20, offset: int = 0) -> GenerationPage:
        """A page of your generations, newest first."""
        return self._send(_Op.list(limit, offset))

    def cancel(self, generation_id: str) -> GenerationStatus:
        """Cancel an unfinished generation."""
        return self._send(_Op.cancel(generation_id))

    def image(self, generation_id: str, scene: int) -> bytes:
        """PNG of a scene's kept image."""
        return self._send(_Op.image(generation_id, scene))

    def variation(self, generation_id: str, scene: int, k: int) -> bytes:
        """PNG of variation k (1-based) of a scene."""
        return self._send(_Op.variation(generation_id, scene, k))

    def trace(self, generation_id: str, scene: int) -> dict[str, Any]:
        """The scene's enhancement trace (original, rewrites, critic scores, final, quality scores)."""
        return self._send(_Op.trace(generation_id, scene))

    def export(self, generation_id: str, name: str) -> bytes | None:
        """A server-side export ('contact-sheet.png' or 'animatic.mp4'); None when the server has none."""
        return self._send(_Op.export(generation_id, name))

    def upload(self, image: str | os.PathLike[str] | bytes) -> UploadedImage:
        """Upload a product image (PNG/JPEG/WebP path or bytes, <= 8 MB); its ``id`` is a
        ``reference_image`` for any number of generations."""
        return self._send(_Op.upload(image))

    def webhook_secret(self, *, rotate: bool = False) -> WebhookSecret:
        """Your webhook signing secret ('whsec_...'); ``rotate=True`` replaces it first."""
        return self._send(_Op.webhook_secret(rotate))

    def webhook_deliveries(self, generation_id: str) -> WebhookDeliveryList:
        """A generation's webhook messages and how their delivery went."""
        return self._send(_Op.webhook_deliveries(generation_id))

    def wait(self, generation_id: str, timeout: float = 900.0, poll: float = 1.0) -> GenerationStatus:
        """Poll until completed/failed/cancelled (WaitTimeout after ``timeout`` s). 429/503 answers
        are waited out (Retry-After) rather than raised."""
        waiter = _Waiter(generation_id, timeout, poll)
        while True:
            outcome: GenerationStatus | APIError
            try:
                outcome = self.status(generation_id)
            except _BUSY as exc:
                outcome = exc
            if (finished := waiter.finished(outcome)) is not None:
                return finished
            time.sleep(waiter.delay(outcome))

    def events(
        self,
        generation_id: str,
        *,
        last_event_id: int | str | None = None,
        reconnect: bool = True,
        max_reconnects: int = 5,
        read_timeout: float = 60.0,
    ) -> Iterator[GenerationEvent]:
        """Live events (``GET /api/generations/{id}/events``) until ``done``. A dropped stream is
        resumed with ``Last-Event-ID`` (events already seen are not repeated).
        EventsUnavailable when the server has no events endpoint."""
        timeout = httpx.Timeout(self._http.timeout.connect or 30.0, read=read_timeout)
        stream = _EventStream(self.url, generation_id, last_event_id, reconnect, max_reconnects, timeout)
        while True:
            call = stream.call()
            try:
                with self._http.stream(
                    call.method, call.path, **call.options(), timeout=stream.timeout
                ) as response:
                    if response.status_code >= 400:
                        response.read()
                        call.parse(response)
                    for line in response.iter_lines():
                        if (event := stream.feed(line)) is not None:
                            yield event
                            if stream.finished:
                                return
            except httpx.TransportError as exc:
                delay = stream.backoff(exc)
            else:
                delay = stream.backoff(None)  # the server closed the stream before "done"
            if delay is None:
                return
            time.sleep(delay)

    def download(
        self, generation_id: str, out_dir: str | Path, *, variations: bool = False, exports: bool = True
    ) -> Paths:
        """Write ``status.json``, each scene's best image (``scene_01.png`` ...), optionally every
        variation, and the server's contact sheet + animatic (an export the server does not offer is
        skipped). Returns the paths written."""
        out = Path(out_dir)
        status = self.status(generation_id)
        written = [_write_status(out, status)]
        for path, call in _download_plan(generation_id, status, out, variations=variations, exports=exports):
            if (data := self._send(call)) is not None:
                written.append(_write(path, data))
        return written


# -- async ---------------------------------------------------------------------------------------


class AsyncClient(_Base):
    """Asynchronous client (same methods, awaitable; ``events`` is an async iterator)."""

    def __init__(
        self,
        url: str = DEFAULT_URL,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(url, token)
        self._http = httpx.AsyncClient(
            base_url=self.url, timeout=timeout, transport=transport, headers=self._headers()
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _send(self, call: Call[T_co]) -> T_co:
        try:
            response = await self._http.request(call.method, call.path, **call.options())
        except httpx.TransportError as exc:
            raise self._unreachable(call, exc) from exc
        return call.parse(response)

    # -- API (see ``Client``) ------------------------------------------------------------------

    async def health(self) -> Health:
        """``GET /healthz``."""
        return await self._send(_Op.health())

    async def generate(
        self,
        prompt: str | GenerateRequest,
        *,
        wait: int | None = None,
        cancel_after: str | float | None = None,
        **settings: Any,
    ) -> GenerateAccepted | GenerationStatus:
        """Submit a brief (see ``Client.generate``)."""
        return await self._send(_Op.generate(prompt, settings, wait, cancel_after))

    async def status(self, generation_id: str) -> GenerationStatus:
        """The full status document."""
        return await self._send(_Op.status(generation_id))

    async def list(self, limit: int = 20, offset: int = 0) -> GenerationPage:
        """A page of your generations, newest first."""
        return await self._send(_Op.list(limit, offset))

    async def cancel(self, generation_id: str) -> GenerationStatus:
        """Cancel an unfinished generation."""
        return await self._send(_Op.cancel(generation_id))

    async def image(self, generation_id: str, scene: int) -> bytes:
        """PNG of a scene's kept image."""
        return await self._send(_Op.image(generation_id, scene))

    async def variation(self, generation_id: str, scene: int, k: int) -> bytes:
        """PNG of variation k of a scene."""
        return await self._send(_Op.variation(generation_id, scene, k))

    async def trace(self, generation_id: str, scene: int) -> dict[str, Any]:
        """The scene's enhancement trace."""
        return await self._send(_Op.trace(generation_id, scene))

    async def export(self, generation_id: str, name: str) -> bytes | None:
        """A server-side export; None when the server has none."""
        return await self._send(_Op.export(generation_id, name))

    async def upload(self, image: str | os.PathLike[str] | bytes) -> UploadedImage:
        """Upload a product image (see ``Client.upload``)."""
        return await self._send(_Op.upload(image))

    async def webhook_secret(self, *, rotate: bool = False) -> WebhookSecret:
        """Your webhook signing secret (see ``Client.webhook_secret``)."""
        return await self._send(_Op.webhook_secret(rotate))

    async def webhook_deliveries(self, generation_id: str) -> WebhookDeliveryList:
        """A generation's webhook messages and their delivery state."""
        return await self._send(_Op.webhook_deliveries(generation_id))

    async def wait(self, generation_id: str, timeout: float = 900.0, poll: float = 1.0) -> GenerationStatus:
        """Poll until finished (see ``Client.wait``)."""
        waiter = _Waiter(generation_id, timeout, poll)
        while True:
            outcome: GenerationStatus | APIError
            try:
                outcome = await self.status(generation_id)
            except _BUSY as exc:
                outcome = exc
            if (finished := waiter.finished(outcome)) is not None:
                return finished
            await asyncio.sleep(waiter.delay(outcome))

    async def events(
        self,
        generation_id: str,
        *,
        last_event_id: int | str | None = None,
        reconnect: bool = True,
        max_reconnects: int = 5,
        read_timeout: float = 60.0,
    ) -> AsyncIterator[GenerationEvent]:
        """Live events until ``done`` (see ``Client.events``)."""
        timeout = httpx.Timeout(self._http.timeout.connect or 30.0, read=read_timeout)
        stream = _EventStream(self.url, generation_id, last_event_id, reconnect, max_reconnects, timeout)
        while True:
            call = stream.call()
            try:
                async with self._http.stream(
                    call.method, call.path, **call.options(), timeout=stream.timeout
                ) as response:
                    if response.status_code >= 400:
                        await response.aread()
                        call.parse(response)
                    async for line in response.aiter_lines():
                        if (event := stream.feed(line)) is not None:
                            yield event
                            if stream.finished:
                                return
            except httpx.TransportError as exc:
                delay = stream.backoff(exc)
            else:
                delay = stream.backoff(None)
            if delay is None:
                return
            await asyncio.sleep(delay)

    async def download(
        self, generation_id: str, out_dir: str | Path, *, variations: bool = False, exports: bool = True
    ) -> Paths:
        """Write status, best images, optional variations and the server's exports (see ``Client.download``)."""
        out = Path(out_dir)
        status = await self.status(generation_id)
        written = [_write_status(out, status)]
        for path, call in _download_plan(generation_id, status, out, variations=variations, exports=exports):
            if (data := await self._send(call)) is not None:
                written.append(_write(path, data))
        return written
