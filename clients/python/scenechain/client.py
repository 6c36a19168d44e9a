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
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import tomllib
from collections.abc import AsyncIterator, Iterator, Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import httpx

from scenechain.events import (
    EVENT_TYPES,
    TERMINAL_EVENT,
    GenerationEvent,
    SSEDecoder,
    SSEMessage,
    event_from_sse,
)
from scenechain.protocol import (
    FINISHED_STATUSES,
    GenerateAccepted,
    GenerateRequest,
    GenerationPage,
    GenerationStatus,
    Health,
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
}


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
        return response.json().get("detail") == "Not Found"
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


def _canonical_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    fields = set(GenerateRequest.model_fields)
    out: dict[str, Any] = {}
    for key, value in settings.items():
        name = SETTING_ALIASES.get(key, key)
        if name not in fields or name == "prompt":
            allowed = sorted((fields - {"prompt"}) | set(SETTING_ALIASES))
            raise TypeError(f"unknown setting {key!r}; allowed: {allowed}")
        if value is not None:
            out[name] = value
    return out


def _event_or_none(message: SSEMessage) -> GenerationEvent | None:
    if message.event not in EVENT_TYPES:
        return None  # a comment-like or future event type: skip, don't break old clients
    return event_from_sse(message)


def _events_path(generation_id: str) -> str:
    return f"/api/generations/{generation_id}/events"


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    tmp.write_bytes(data)
    tmp.replace(path)
    return path


def _status_json(status: GenerationStatus) -> bytes:
    return (json.dumps(status.model_dump(mode="json"), indent=2, sort_keys=True) + "\n").encode()


class _Base:
    def __init__(self, url: str, token: str | None) -> None:
        self.url = url.rstrip("/")
        self.token = token

    def _headers(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": "scenechain-client/0.1"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        headers.update(extra or {})
        return headers


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

    @classmethod
    def from_config(cls, url: str | None = None, token: str | None = None, **kwargs: Any) -> Client:
        """A client with URL/token from arguments, environment or the config file."""
        resolved_url, resolved_token = resolve_connection(url, token, kwargs.pop("config_path", None))
        return cls(resolved_url, resolved_token, **kwargs)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ConnectionFailed(f"{method} {self.url}{path}: {exc}") from exc
        _raise_for_status(response)
        return response

    # -- API -----------------------------------------------------------------------------------

    def health(self) -> Health:
        """``GET /healthz`` (no token needed)."""
        return Health.model_validate(self._request("GET", "/healthz").json())

    def generate(self, prompt: str | GenerateRequest, **settings: Any) -> GenerateAccepted:
        """Submit a brief; returns at once (202) with the id. Settings: the request's field names or
        the aliases advanced, threshold, variations, iterations, scenes (plus seed, negative_prompt)."""
        request = build_request(prompt, settings)
        response = self._request(
            "POST", "/api/generate", json=request.model_dump(mode="json", exclude_none=True)
        )
        return GenerateAccepted.model_validate(response.json())

    def status(self, generation_id: str) -> GenerationStatus:
        """The full status document."""
        return GenerationStatus.model_validate(self._request("GET", f"/api/status/{generation_id}").json())

    def list(self, limit: int = 20, offset: int = 0) -> GenerationPage:
        """A page of your generations, newest first."""
        response = self._request("GET", "/api/generations", params={"limit": limit, "offset": offset})
        return GenerationPage.model_validate(response.json())

    def cancel(self, generation_id: str) -> GenerationStatus:
        """Cancel an unfinished generation."""
        response = self._request("POST", f"/api/generations/{generation_id}/cancel")
        return GenerationStatus.model_validate(response.json())

    def wait(self, generation_id: str, timeout: float = 900.0, poll: float = 1.0) -> GenerationStatus:
        """Poll until completed/failed/cancelled (WaitTimeout after ``timeout`` s). 429/503 answers
        are waited out (Retry-After) rather than raised."""
        deadline = time.monotonic() + timeout
        last: GenerationStatus | None = None
        while True:
            delay = poll
            try:
                last = self.status(generation_id)
                if last.status in FINISHED_STATUSES:
                    return last
            except (RateLimitError, ServiceUnavailableError) as exc:
                delay = max(poll, exc.retry_after or poll)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                state = last.status if last else "unknown"
                raise WaitTimeout(f"generation {generation_id} still {state} after {timeout:g}s", last)
            time.sleep(min(delay, remaining))

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
        failures = 0
        while True:
            headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
            if last_event_id:
                headers["Last-Event-ID"] = str(last_event_id)
            try:
                with self._http.stream(
                    "GET",
                    _events_path(generation_id),
                    headers=headers,
                    timeout=httpx.Timeout(self._http.timeout.connect or 30.0, read=read_timeout),
                ) as response:
                    if response.status_code >= 400:
                        response.read()
                        if _is_missing_route(response):
                            raise EventsUnavailable(f"{self.url} has no events endpoint")
                        _raise_for_status(response)
                    decoder = SSEDecoder()
                    for line in response.iter_lines():
                        message = decoder.feed(line)
                        if message is None:
                            continue
                        event = _event_or_none(message)
                        if event is None:
                            continue
                        if message.id:
                            last_event_id = message.id
                        failures = 0
                        yield event
                        if event.type == TERMINAL_EVENT:
                            return
            except httpx.TransportError as exc:
                failures += 1
                if not reconnect or failures > max_reconnects:
                    raise ConnectionFailed(f"event stream of {generation_id} broke: {exc}") from exc
            else:
                failures += 1  # the server closed the stream before "done"
                if not reconnect or failures > max_reconnects:
                    return
            time.sleep(min(0.5 * failures, 5.0))

    def image(self, generation_id: str, scene: int) -> bytes:
        """PNG of a scene's kept image."""
        return self._request("GET", f"/api/generations/{generation_id}/scenes/{scene}/image").content

    def variation(self, generation_id: str, scene: int, k: int) -> bytes:
        """PNG of variation k (1-based) of a scene."""
        return self._request("GET", f"/api/generations/{generation_id}/scenes/{scene}/variations/{k}").content

    def trace(self, generation_id: str, scene: int) -> dict[str, Any]:
        """The scene's enhancement trace (original, rewrites, critic scores, final, quality scores)."""
        return self._request("GET", f"/api/generations/{generation_id}/scenes/{scene}/trace").json()

    def export(self, generation_id: str, name: str) -> bytes | None:
        """A server-side export ('contact-sheet.png' or 'animatic.mp4'); None when the server has none."""
        try:
            response = self._http.get(f"/api/generations/{generation_id}/export/{name}")
        except httpx.TransportError as exc:
            raise ConnectionFailed(f"GET export {name}: {exc}") from exc
        if _is_missing_route(response):
            return None
        _raise_for_status(response)
        return response.content

    def download(
        self, generation_id: str, out_dir: str | Path, *, variations: bool = False, exports: bool = True
    ) -> Paths:
        """Write ``status.json``, each scene's best image (``scene_01.png`` ...), optionally every
        variation, and the server's contact sheet + animatic. Returns the paths."""
        out = Path(out_dir)
        status = self.status(generation_id)
        written = [_write(out / "status.json", _status_json(status))]
        pngs: dict[int, bytes] = {}
        for scene in status.scenes:
            pngs[scene.index] = self.image(generation_id, scene.index)
            written.append(_write(out / f"scene_{scene.index:02d}.png", pngs[scene.index]))
            if variations:
                for k in range(1, scene.num_variations + 1):
                    data = self.variation(generation_id, scene.index, k)
                    written.append(_write(out / f"scene_{scene.index:02d}_variation_{k}.png", data))
        if exports and pngs:
            written += _write_exports(out, lambda name: self.export(generation_id, name))
        return written


def _write_exports(out: Path, fetch: Any) -> Paths:
    """The server's contact sheet and animatic; an export the server does not offer is skipped."""
    written = []
    for name, filename in (("contact-sheet.png", "contact_sheet.png"), ("animatic.mp4", "animatic.mp4")):
        data = fetch(name)
        if data is not None:
            written.append(_write(out / filename, data))
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

    @classmethod
    def from_config(cls, url: str | None = None, token: str | None = None, **kwargs: Any) -> AsyncClient:
        """A client with URL/token from arguments, environment or the config file."""
        resolved_url, resolved_token = resolve_connection(url, token, kwargs.pop("config_path", None))
        return cls(resolved_url, resolved_token, **kwargs)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ConnectionFailed(f"{method} {self.url}{path}: {exc}") from exc
        _raise_for_status(response)
        return response

    async def health(self) -> Health:
        """``GET /healthz``."""
        return Health.model_validate((await self._request("GET", "/healthz")).json())

    async def generate(self, prompt: str | GenerateRequest, **settings: Any) -> GenerateAccepted:
        """Submit a brief (see ``Client.generate``)."""
        request = build_request(prompt, settings)
        response = await self._request(
            "POST", "/api/generate", json=request.model_dump(mode="json", exclude_none=True)
        )
        return GenerateAccepted.model_validate(response.json())

    async def status(self, generation_id: str) -> GenerationStatus:
        """The full status document."""
        response = await self._request("GET", f"/api/status/{generation_id}")
        return GenerationStatus.model_validate(response.json())

    async def list(self, limit: int = 20, offset: int = 0) -> GenerationPage:
        """A page of your generations, newest first."""
        response = await self._request("GET", "/api/generations", params={"limit": limit, "offset": offset})
        return GenerationPage.model_validate(response.json())

    async def cancel(self, generation_id: str) -> GenerationStatus:
        """Cancel an unfinished generation."""
        response = await self._request("POST", f"/api/generations/{generation_id}/cancel")
        return GenerationStatus.model_validate(response.json())

    async def wait(self, generation_id: str, timeout: float = 900.0, poll: float = 1.0) -> GenerationStatus:
        """Poll until finished (see ``Client.wait``)."""
        deadline = time.monotonic() + timeout
        last: GenerationStatus | None = None
        while True:
            delay = poll
            try:
                last = await self.status(generation_id)
                if last.status in FINISHED_STATUSES:
                    return last
            except (RateLimitError, ServiceUnavailableError) as exc:
                delay = max(poll, exc.retry_after or poll)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                state = last.status if last else "unknown"
                raise WaitTimeout(f"generation {generation_id} still {state} after {timeout:g}s", last)
            await asyncio.sleep(min(delay, remaining))

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
        failures = 0
        while True:
            headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
            if last_event_id:
                headers["Last-Event-ID"] = str(last_event_id)
            try:
                async with self._http.stream(
                    "GET",
                    _events_path(generation_id),
                    headers=headers,
                    timeout=httpx.Timeout(self._http.timeout.connect or 30.0, read=read_timeout),
                ) as response:
                    if response.status_code >= 400:
                        await response.aread()
                        if _is_missing_route(response):
                            raise EventsUnavailable(f"{self.url} has no events endpoint")
                        _raise_for_status(response)
                    decoder = SSEDecoder()
                    async for line in response.aiter_lines():
                        message = decoder.feed(line)
                        if message is None:
                            continue
                        event = _event_or_none(message)
                        if event is None:
                            continue
                        if message.id:
                            last_event_id = message.id
                        failures = 0
                        yield event
                        if event.type == TERMINAL_EVENT:
                            return
            except httpx.TransportError as exc:
                failures += 1
                if not reconnect or failures > max_reconnects:
                    raise ConnectionFailed(f"event stream of {generation_id} broke: {exc}") from exc
            else:
                failures += 1
                if not reconnect or failures > max_reconnects:
                    return
            await asyncio.sleep(min(0.5 * failures, 5.0))

    async def image(self, generation_id: str, scene: int) -> bytes:
        """PNG of a scene's kept image."""
        return (await self._request("GET", f"/api/generations/{generation_id}/scenes/{scene}/image")).content

    async def variation(self, generation_id: str, scene: int, k: int) -> bytes:
        """PNG of variation k of a scene."""
        path = f"/api/generations/{generation_id}/scenes/{scene}/variations/{k}"
        return (await self._request("GET", path)).content

    async def trace(self, generation_id: str, scene: int) -> dict[str, Any]:
        """The scene's enhancement trace."""
        return (await self._request("GET", f"/api/generations/{generation_id}/scenes/{scene}/trace")).json()

    async def export(self, generation_id: str, name: str) -> bytes | None:
        """A server-side export; None when the server has none."""
        try:
            response = await self._http.get(f"/api/generations/{generation_id}/export/{name}")
        except httpx.TransportError as exc:
            raise ConnectionFailed(f"GET export {name}: {exc}") from exc
        if _is_missing_route(response):
            return None
        _raise_for_status(response)
        return response.content

    async def download(
        self, generation_id: str, out_dir: str | Path, *, variations: bool = False, exports: bool = True
    ) -> Paths:
        """Write status, best images, optional variations and exports (see ``Client.download``)."""
        out = Path(out_dir)
        status = await self.status(generation_id)
        written = [_write(out / "status.json", _status_json(status))]
        pngs: dict[int, bytes] = {}
        for scene in status.scenes:
            pngs[scene.index] = await self.image(generation_id, scene.index)
            written.append(_write(out / f"scene_{scene.index:02d}.png", pngs[scene.index]))
            if variations:
                for k in range(1, scene.num_variations + 1):
                    data = await self.variation(generation_id, scene.index, k)
                    written.append(_write(out / f"scene_{scene.index:02d}_variation_{k}.png", data))
        if exports and pngs:
            fetched = {
                name: await self.export(generation_id, name) for name in ("contact-sheet.png", "animatic.mp4")
            }
            written += _write_exports(out, fetched.get)
        return written
