"""The Python client and the client CLI against the server's documented answers.

``httpx.MockTransport`` plays the HTTP peer (status codes, bodies and headers as the ingress
sends them); everything on the client side is real: request building, parsing into the server's
pydantic models, error mapping, SSE reading and resuming, downloads, exports, the rich CLI.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import httpx
import pydantic
import pytest
from PIL import Image
from rich.console import Console
from scenechain import (
    AsyncClient,
    AuthenticationError,
    Client,
    ConflictError,
    ConnectionFailed,
    EventsUnavailable,
    NotFoundError,
    RateLimitError,
    ServerError,
    ServiceUnavailableError,
    ValidationError,
    WaitTimeout,
    cli,
)
from scenechain.client import parse_retry_after, resolve_connection
from scenechain.events import GenerationEvent, format_sse, format_sse_comment
from scenechain.protocol import GenerationStatus

URL = "http://scenechain.test"
TOKEN = "tok.en.jwt"
GID = "abc123"


def png(colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 24), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def status_doc(state: str = "completed", scenes: int = 2, advanced: bool = True) -> dict[str, Any]:
    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC).isoformat()
    done = scenes if state == "completed" else 0
    return {
        "id": GID,
        "status": state,
        "progress": {
            "scenes_done": done,
            "scenes_total": scenes,
            "stage": state if done else "scene 1: scoring",
        },
        "prompt": "A citrus soda on a rooftop at sunset",
        "seed": 42,
        "advanced_image_generation_used": advanced,
        "storyboard_plan": None,
        "image_quality_scores": {
            f"scene_{n}": {
                "best_index": 2,
                "best_overall": 61.5,
                "per_image": [
                    {"pickscore": 50.0, "clip": 40.0, "vqa": 45.0, "aesthetic": 30.0, "overall": 41.25},
                    {"pickscore": 70.0, "clip": 60.0, "vqa": None, "aesthetic": 55.0, "overall": 61.5},
                ],
                "below_threshold": n == 2,
                "scorers_used": ["pickscore", "clip", "aesthetic"],
                "scorers_failed": {"vqa": "RuntimeError: boom"},
                "seeds": [42, 43],
            }
            for n in range(1, done + 1)
        },
        "scenes": [
            {
                "index": n,
                "prompt": f"scene {n} prompt",
                "enhanced_prompt": f"scene {n} enhanced",
                "image_url": f"/api/generations/{GID}/scenes/{n}/image",
                "reference_from": n - 1 or None,
                "seeds": [42, 43],
                "num_variations": 2,
                "best_index": 2,
            }
            for n in range(1, done + 1)
        ],
        "warnings": ["scene 2: best overall score 61.5 is below the quality threshold 70"] if done else [],
        "error": None,
        "timings": {},
        "created_at": now,
        "updated_at": now,
    }


def page_doc() -> dict[str, Any]:
    return {
        "items": [
            {
                "id": GID,
                "status": "running",
                "prompt": "A citrus soda",
                "advanced_image_generation_used": False,
                "scenes_done": 1,
                "scenes_total": 3,
                "created_at": "2026-11-25T12:00:00Z",
                "status_url": f"/api/status/{GID}",
            }
        ],
        "total": 1,
        "limit": 20,
        "offset": 0,
    }


def sse(*events: GenerationEvent, comment: bool = True) -> bytes:
    text = "retry: 2000\n\n" + (format_sse_comment() if comment else "")
    return (text + "".join(format_sse(event) for event in events)).encode()


def event(type: str, seq: int, scene: int | None = None, **data: Any) -> GenerationEvent:
    return GenerationEvent(type=type, generation_id=GID, scene=scene, data=data, seq=seq)  # type: ignore[arg-type]


def LIVE_EVENTS() -> list[GenerationEvent]:
    return [
        event("stage", 1, None, stage="planning", label="planning"),
        event("stage", 2, 1, stage="enhancing", label="scene 1: enhancing"),
        event("enhancer_iteration", 3, 1, iteration=1, prompt="p", scores={}, overall=77.0, approved=False),
        event("stage", 4, 1, stage="scoring", label="scene 1: scoring"),
        event("variation_scored", 5, 1, k=1, scores={"overall": 41.25}, seed=42),
        event("variation_scored", 6, 1, k=2, scores={"overall": 61.5}, seed=43),
        event("best_picked", 7, 1, k=2, overall=61.5, below_threshold=False),
        event("scene_done", 8, 1, image_url="/x", scenes_done=1, scenes_total=2),
        event("warning", 9, 2, message="scene 2: best overall score 61.5 is below the quality threshold 70"),
        event("best_picked", 10, 2, k=2, overall=61.5, below_threshold=True),
        event("scene_done", 11, 2, image_url="/y", scenes_done=2, scenes_total=2),
        event("done", 12, None, status="completed", error=None),
    ]


Handler = Callable[[httpx.Request], httpx.Response]


class FakeServer:
    """Routes → answers, and a record of every request the client made."""

    def __init__(self, routes: dict[str, Any]) -> None:
        self.routes = routes
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        key = f"{request.method} {request.url.path}"
        answer = self.routes.get(key)
        if answer is None:
            return httpx.Response(404, json={"detail": "Not Found"})  # FastAPI: no such route
        if callable(answer):
            return answer(request)
        if isinstance(answer, list):
            answer = answer.pop(0) if len(answer) > 1 else answer[0]
        # a fresh copy: a Response object is consumed by the client that receives it
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.read())

    def client(self) -> Client:
        return Client(URL, TOKEN, transport=httpx.MockTransport(self))

    def async_client(self) -> AsyncClient:
        return AsyncClient(URL, TOKEN, transport=httpx.MockTransport(self))


def completed_server(**extra: Any) -> FakeServer:
    routes: dict[str, Any] = {
        "POST /api/generate": httpx.Response(
            202, json={"id": GID, "status": "queued", "status_url": f"/api/status/{GID}"}
        ),
        f"GET /api/status/{GID}": httpx.Response(200, json=status_doc()),
        f"GET /api/generations/{GID}/scenes/1/image": httpx.Response(200, content=png((200, 0, 0))),
        f"GET /api/generations/{GID}/scenes/2/image": httpx.Response(200, content=png((0, 200, 0))),
        f"GET /api/generations/{GID}/events": httpx.Response(
            200, content=sse(*LIVE_EVENTS()), headers={"content-type": "text/event-stream"}
        ),
        "GET /api/generations": httpx.Response(200, json=page_doc()),
    }
    for scene in (1, 2):
        for k in (1, 2):
            routes[f"GET /api/generations/{GID}/scenes/{scene}/variations/{k}"] = httpx.Response(
                200, content=png((scene * 50, k * 50, 0))
            )
    routes.update(extra)
    return FakeServer(routes)


SHEET = f"GET /api/generations/{GID}/export/contact-sheet.png"
ANIMATIC = f"GET /api/generations/{GID}/export/animatic.mp4"


def served_exports() -> dict[str, httpx.Response]:
    """The export routes of a server that builds both exports (the client writes these bytes)."""
    return {
        SHEET: httpx.Response(200, content=png((9, 9, 9)), headers={"content-type": "image/png"}),
        ANIMATIC: httpx.Response(200, content=b"\0\0\0\x18ftypisom-server-mp4"),
    }


class Driver:
    """Calls one method on the sync or the async client: both must behave the same."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.sleeps: list[float] = []

    def __call__(self, server: FakeServer, method: str, *args: Any, **kwargs: Any) -> Any:
        if self.kind == "sync":
            with server.client() as client:
                result = getattr(client, method)(*args, **kwargs)
                return list(result) if method == "events" else result

        async def run() -> Any:
            async with server.async_client() as client:
                result = getattr(client, method)(*args, **kwargs)
                return [e async for e in result] if method == "events" else await result

        return asyncio.run(run())


@pytest.fixture(params=["sync", "async"])
def drive(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Driver:
    """A ``Driver`` for each client; their sleeps are recorded instead of slept."""
    driver = Driver(request.param)
    monkeypatch.setattr("scenechain.client.time.sleep", driver.sleeps.append)

    async def sleep(seconds: float) -> None:
        driver.sleeps.append(seconds)

    monkeypatch.setattr("scenechain.client.asyncio.sleep", sleep)
    return driver


# -- requests and parsing -------------------------------------------------------------------------


def test_generate_sends_the_request_model_with_aliases_and_the_bearer_token(drive: Driver) -> None:
    server = completed_server()

    accepted = drive(
        server, "generate", "A citrus soda", advanced=True, variations=3, threshold=55.5, scenes=2, seed=7
    )

    assert accepted.id == GID and accepted.status == "queued"
    (request,) = server.requests
    assert request.method == "POST" and request.url == f"{URL}/api/generate"
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert json.loads(request.content) == {
        "prompt": "A citrus soda",
        "use_advanced_image_generation": True,
        "advanced_image_num_variations": 3,
        "advanced_image_quality_threshold": 55.5,
        "advanced_image_max_enhancement_iterations": 4,
        "num_scenes": 2,
        "seed": 7,
    }


def test_generate_validates_settings_before_sending_anything(drive: Driver) -> None:
    server = completed_server()
    with pytest.raises(TypeError, match="unknown setting 'colour'"):
        drive(server, "generate", "x", colour="red")
    with pytest.raises(pydantic.ValidationError, match="advanced_image_num_variations"):
        drive(server, "generate", "x", variations=1)
    assert server.requests == []


def test_status_and_list_parse_into_the_servers_models(drive: Driver) -> None:
    server = completed_server()

    status = drive(server, "status", GID)
    page = drive(server, "list", limit=5, offset=10)

    assert isinstance(status, GenerationStatus)
    assert status.scenes[1].reference_from == 1
    assert status.image_quality_scores["scene_2"].below_threshold
    assert status.image_quality_scores["scene_1"].per_image[1].vqa is None
    assert page.items[0].scenes_total == 3 and page.total == 1
    assert dict(server.requests[-1].url.params) == {"limit": "5", "offset": "10"}


def test_cancel_trace_files_and_health_use_their_routes(drive: Driver) -> None:
    trace = {"generation_id": GID, "scene": 1, "original_prompt": "p", "iterations": []}
    server = completed_server(
        **{
            f"POST /api/generations/{GID}/cancel": httpx.Response(200, json=status_doc("cancelled")),
            f"GET /api/generations/{GID}/scenes/1/trace": httpx.Response(200, json=trace),
            "GET /healthz": httpx.Response(
                200, json={"status": "ok", "app": "scenechain", "profile": "tiny"}
            ),
        }
    )

    assert drive(server, "cancel", GID).status == "cancelled"
    assert drive(server, "trace", GID, 1) == trace
    assert drive(server, "image", GID, 2) == png((0, 200, 0))
    assert drive(server, "variation", GID, 2, 1) == png((100, 50, 0))
    assert drive(server, "health").profile == "tiny"
    assert [f"{r.method} {r.url.path}" for r in server.requests] == [
        f"POST /api/generations/{GID}/cancel",
        f"GET /api/generations/{GID}/scenes/1/trace",
        f"GET /api/generations/{GID}/scenes/2/image",
        f"GET /api/generations/{GID}/scenes/2/variations/1",
        "GET /healthz",
    ]


def test_a_missing_scene_image_raises_not_found(drive: Driver) -> None:
    answer = httpx.Response(404, json={"detail": "scene 3 has no image yet"})
    server = completed_server(**{f"GET /api/generations/{GID}/scenes/3/image": answer})
    with pytest.raises(NotFoundError, match="scene 3 has no image yet"):
        drive(server, "image", GID, 3)


# -- error mapping --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("response", "error", "message", "retry_after"),
    [
        (
            httpx.Response(401, json={"detail": "invalid token: Signature has expired"}),
            AuthenticationError,
            "invalid token: Signature has expired",
            None,
        ),
        (
            httpx.Response(404, json={"detail": f"generation {GID} not found"}),
            NotFoundError,
            f"generation {GID} not found",
            None,
        ),
        (
            httpx.Response(
                422,
                json={
                    "detail": [
                        {
                            "loc": ["body", "num_scenes"],
                            "msg": "num_scenes: Input should be less than or equal to 8; allowed range is 1 to 8 (inclusive)",
                            "type": "less_than_equal",
                        }
                    ]
                },
            ),
            ValidationError,
            "num_scenes: Input should be less than or equal to 8; allowed range is 1 to 8 (inclusive)",
            None,
        ),
        (
            httpx.Response(429, json={"detail": "too many requests"}, headers={"Retry-After": "7"}),
            RateLimitError,
            "too many requests",
            7.0,
        ),
        (
            httpx.Response(503, text="Service Unavailable: back-pressure", headers={"Retry-After": "2"}),
            ServiceUnavailableError,
            "Service Unavailable: back-pressure",
            2.0,
        ),
        (httpx.Response(500, text="Internal Server Error"), ServerError, "Internal Server Error", None),
    ],
)
def test_error_statuses_map_to_exceptions_with_the_servers_message(
    drive: Driver, response: httpx.Response, error: type[Exception], message: str, retry_after: float | None
) -> None:
    server = FakeServer({f"GET /api/status/{GID}": response})

    with pytest.raises(error) as raised:
        drive(server, "status", GID)

    assert raised.value.message == message
    assert raised.value.status_code == response.status_code
    assert raised.value.retry_after == retry_after
    assert str(raised.value) == f"HTTP {response.status_code}: {message}"
    assert raised.value.method == "GET" and raised.value.url.endswith(f"/api/status/{GID}")


def test_validation_error_lists_each_problem() -> None:
    detail = [
        {
            "loc": ["body", "prompt"],
            "msg": "prompt: String should have at least 1 character",
            "type": "string_too_short",
        },
        {"loc": ["body", "seed"], "msg": "Input should be a valid integer", "type": "int_parsing"},
    ]
    server = FakeServer({"POST /api/generate": httpx.Response(422, json={"detail": detail})})

    with server.client() as client, pytest.raises(ValidationError) as raised:
        client.generate("x")

    assert [e["loc"][-1] for e in raised.value.errors] == ["prompt", "seed"]
    assert (
        raised.value.message
        == "prompt: String should have at least 1 character; seed: Input should be a valid integer"
    )


def test_retry_after_accepts_seconds_and_http_dates() -> None:
    now = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(format_datetime(now + timedelta(seconds=30), usegmt=True), now=now) == 30.0
    assert parse_retry_after(format_datetime(now - timedelta(seconds=30), usegmt=True), now=now) == 0.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def test_an_unreachable_server_raises_connection_failed(drive: Driver) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    server = FakeServer({f"GET /api/status/{GID}": refuse})
    with pytest.raises(ConnectionFailed, match=f"GET {URL}/api/status/{GID}: connection refused"):
        drive(server, "status", GID)


# -- wait -----------------------------------------------------------------------------------------


def test_wait_polls_until_finished_and_waits_out_503s(drive: Driver) -> None:
    server = FakeServer(
        {
            f"GET /api/status/{GID}": [
                httpx.Response(200, json=status_doc("queued")),
                httpx.Response(503, text="busy", headers={"Retry-After": "3"}),
                httpx.Response(200, json=status_doc("running")),
                httpx.Response(200, json=status_doc("completed")),
            ]
        }
    )

    status = drive(server, "wait", GID, timeout=60, poll=0.5)

    assert status.status == "completed"
    assert drive.sleeps == [0.5, 3.0, 0.5]
    assert len(server.requests) == 4


def test_wait_raises_errors_other_than_busy_answers(drive: Driver) -> None:
    server = FakeServer({f"GET /api/status/{GID}": httpx.Response(401, json={"detail": "token expired"})})
    with pytest.raises(AuthenticationError, match="token expired"):
        drive(server, "wait", GID, timeout=60, poll=0.5)
    assert drive.sleeps == []


def test_wait_times_out_with_the_last_status_seen(drive: Driver) -> None:
    server = FakeServer({f"GET /api/status/{GID}": httpx.Response(200, json=status_doc("running"))})

    with pytest.raises(WaitTimeout) as raised:
        drive(server, "wait", GID, timeout=0.05, poll=0.01)

    assert raised.value.last_status is not None and raised.value.last_status.status == "running"
    assert isinstance(raised.value, TimeoutError)
    assert drive.sleeps and all(0 < s <= 0.01 for s in drive.sleeps)


# -- events ---------------------------------------------------------------------------------------


def test_events_yields_typed_events_until_done(drive: Driver) -> None:
    server = completed_server()

    events = drive(server, "events", GID)

    assert [e.seq for e in events] == list(range(1, 13))
    assert events[-1].type == "done"
    assert events[6].type == "best_picked" and events[6].data["overall"] == 61.5
    assert isinstance(events[0], GenerationEvent)
    (request,) = server.requests
    assert request.headers["accept"] == "text/event-stream"
    assert request.headers["authorization"] == f"Bearer {TOKEN}"


def test_events_stop_reading_at_done(drive: Driver) -> None:
    body = sse(event("done", 1, status="completed"), event("stage", 2, None, stage="late", label="late"))
    server = FakeServer({f"GET /api/generations/{GID}/events": httpx.Response(200, content=body)})

    assert [e.type for e in drive(server, "events", GID)] == ["done"]


def test_events_resume_with_last_event_id_after_a_dropped_stream(drive: Driver) -> None:
    live = LIVE_EVENTS()
    answers = [
        httpx.Response(200, content=sse(*live[:5]), headers={"content-type": "text/event-stream"}),  # drops
        httpx.Response(200, content=sse(*live[5:]), headers={"content-type": "text/event-stream"}),
    ]
    server = FakeServer({f"GET /api/generations/{GID}/events": answers})

    events = drive(server, "events", GID)

    assert [e.seq for e in events] == list(range(1, 13))  # no gap, no repeat
    first, second = server.requests
    assert "last-event-id" not in first.headers
    assert second.headers["last-event-id"] == "5"
    assert first.headers["accept"] == "text/event-stream"
    assert drive.sleeps == [0.5]


def test_events_start_after_a_given_last_event_id(drive: Driver) -> None:
    server = FakeServer(
        {f"GET /api/generations/{GID}/events": httpx.Response(200, content=sse(*LIVE_EVENTS()[9:]))}
    )

    events = drive(server, "events", GID, last_event_id=9)

    assert [e.seq for e in events] == [10, 11, 12]
    assert server.requests[0].headers["last-event-id"] == "9"


def test_events_stop_quietly_after_max_reconnects_without_progress(drive: Driver) -> None:
    silent = httpx.Response(200, content=sse(), headers={"content-type": "text/event-stream"})
    server = FakeServer({f"GET /api/generations/{GID}/events": silent})

    assert drive(server, "events", GID, max_reconnects=2) == []
    assert len(server.requests) == 3  # the first connection and two reconnects
    assert drive.sleeps == [0.5, 1.0]


def test_events_do_not_reconnect_when_told_not_to(drive: Driver) -> None:
    live = LIVE_EVENTS()
    server = FakeServer({f"GET /api/generations/{GID}/events": httpx.Response(200, content=sse(*live[:3]))})

    assert [e.seq for e in drive(server, "events", GID, reconnect=False)] == [1, 2, 3]
    assert len(server.requests) == 1 and drive.sleeps == []


def test_a_broken_stream_raises_connection_failed_once_out_of_reconnects(drive: Driver) -> None:
    def broken(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadError("connection reset", request=request)

    server = FakeServer({f"GET /api/generations/{GID}/events": broken})

    with pytest.raises(ConnectionFailed, match=f"event stream of {GID} broke: connection reset"):
        drive(server, "events", GID, max_reconnects=2)
    assert len(server.requests) == 3
    assert drive.sleeps == [0.5, 1.0]


def test_events_skip_unknown_event_types(drive: Driver) -> None:
    body = b"event: progress-v2\ndata: {}\n\n" + sse(event("done", 1, status="completed"))
    server = FakeServer({f"GET /api/generations/{GID}/events": httpx.Response(200, content=body)})

    assert [e.type for e in drive(server, "events", GID)] == ["done"]


def test_events_on_a_server_without_the_endpoint_raise_events_unavailable(drive: Driver) -> None:
    with pytest.raises(EventsUnavailable):
        drive(FakeServer({}), "events", GID)


def test_events_of_an_unknown_generation_raise_not_found(drive: Driver) -> None:
    answer = httpx.Response(404, json={"detail": f"generation {GID} not found"})
    server = FakeServer({f"GET /api/generations/{GID}/events": answer})
    with pytest.raises(NotFoundError, match="not found"):
        drive(server, "events", GID)


# -- exports and download -------------------------------------------------------------------------


def test_export_returns_the_servers_bytes_or_none_when_it_has_no_such_route(drive: Driver) -> None:
    server = completed_server(**{SHEET: served_exports()[SHEET]})

    assert drive(server, "export", GID, "contact-sheet.png") == png((9, 9, 9))
    assert drive(server, "export", GID, "animatic.mp4") is None


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (httpx.Response(404, json={"detail": f"generation {GID} not found"}), NotFoundError),
        (httpx.Response(409, json={"detail": "no scene is finished yet"}), ConflictError),
        (httpx.Response(500, text="ffmpeg crashed"), ServerError),
    ],
)
def test_export_errors_of_an_existing_route_are_raised(
    drive: Driver, answer: httpx.Response, error: type[Exception]
) -> None:
    server = completed_server(**{ANIMATIC: answer})
    with pytest.raises(error):
        drive(server, "export", GID, "animatic.mp4")


def test_download_writes_best_images_variations_status_and_the_servers_exports(
    drive: Driver, tmp_path: Path
) -> None:
    server = completed_server(**served_exports())

    paths = drive(server, "download", GID, tmp_path / "out", variations=True)

    out = tmp_path / "out"
    assert sorted(p.name for p in paths) == sorted(
        [
            "status.json",
            "scene_01.png",
            "scene_02.png",
            "scene_01_variation_1.png",
            "scene_01_variation_2.png",
            "scene_02_variation_1.png",
            "scene_02_variation_2.png",
            "contact_sheet.png",
            "animatic.mp4",
        ]
    )
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in paths)
    assert (out / "scene_02.png").read_bytes() == png((0, 200, 0))
    assert (out / "scene_01_variation_2.png").read_bytes() == png((50, 100, 0))
    assert (out / "contact_sheet.png").read_bytes() == png((9, 9, 9))
    assert (out / "animatic.mp4").read_bytes() == b"\0\0\0\x18ftypisom-server-mp4"
    assert json.loads((out / "status.json").read_text()) == GenerationStatus.model_validate(
        status_doc()
    ).model_dump(mode="json")


def test_download_skips_exports_the_server_does_not_offer(drive: Driver, tmp_path: Path) -> None:
    server = completed_server()  # no export routes: FastAPI's 404 "Not Found"

    paths = drive(server, "download", GID, tmp_path)

    assert sorted(p.name for p in paths) == ["scene_01.png", "scene_02.png", "status.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scene_01.png", "scene_02.png", "status.json"]
    asked = [r.url.path for r in server.requests if "/export/" in r.url.path]
    assert asked == [
        f"/api/generations/{GID}/export/contact-sheet.png",
        f"/api/generations/{GID}/export/animatic.mp4",
    ]


def test_download_writes_the_one_export_the_server_offers(drive: Driver, tmp_path: Path) -> None:
    server = completed_server(
        **{
            SHEET: served_exports()[SHEET],
            ANIMATIC: httpx.Response(405, json={"detail": "Method Not Allowed"}),
        }
    )

    paths = drive(server, "download", GID, tmp_path)

    assert "contact_sheet.png" in {p.name for p in paths}
    assert (tmp_path / "contact_sheet.png").read_bytes() == png((9, 9, 9))
    assert not (tmp_path / "animatic.mp4").exists()
    assert not list(tmp_path.glob("*.part"))


def test_download_without_exports_or_scenes_asks_for_none(drive: Driver, tmp_path: Path) -> None:
    server = completed_server(**served_exports())
    drive(server, "download", GID, tmp_path / "a", exports=False)
    queued = completed_server(
        **served_exports(), **{f"GET /api/status/{GID}": httpx.Response(200, json=status_doc("queued"))}
    )
    paths = drive(queued, "download", GID, tmp_path / "b")

    assert not any("/export/" in r.url.path for r in server.requests + queued.requests)
    assert not (tmp_path / "a" / "contact_sheet.png").exists()
    assert [p.name for p in paths] == ["status.json"]


def test_download_fails_on_an_export_error_instead_of_skipping_it(drive: Driver, tmp_path: Path) -> None:
    server = completed_server(**{SHEET: httpx.Response(500, text="render failed")})
    with pytest.raises(ServerError, match="render failed"):
        drive(server, "download", GID, tmp_path)
    assert not (tmp_path / "contact_sheet.png").exists()


# -- async client ---------------------------------------------------------------------------------


def test_async_client_generate_events_wait_and_download(tmp_path: Path) -> None:
    server = completed_server(**served_exports())

    async def run() -> tuple[Any, list[GenerationEvent], GenerationStatus, list[Path]]:
        async with server.async_client() as client:
            accepted = await client.generate("A citrus soda", scenes=2)
            events = [e async for e in client.events(accepted.id)]
            status = await client.wait(accepted.id, timeout=5)
            paths = await client.download(accepted.id, tmp_path)
            return accepted, events, status, paths

    accepted, events, status, paths = asyncio.run(run())

    assert accepted.id == GID and events[-1].type == "done" and status.status == "completed"
    assert sorted(p.name for p in paths) == [
        "animatic.mp4",
        "contact_sheet.png",
        "scene_01.png",
        "scene_02.png",
        "status.json",
    ]


# -- connection settings --------------------------------------------------------------------------


def test_connection_settings_come_from_flags_then_env_then_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "config.toml"
    config.write_text('url = "http://config:8000/"\ntoken = "config-token"\n')
    monkeypatch.delenv("SCENECHAIN_URL", raising=False)
    monkeypatch.delenv("SCENECHAIN_TOKEN", raising=False)

    assert resolve_connection(None, None, config) == ("http://config:8000", "config-token")
    monkeypatch.setenv("SCENECHAIN_URL", "http://env:1")
    monkeypatch.setenv("SCENECHAIN_TOKEN", "env-token")
    assert resolve_connection(None, None, config) == ("http://env:1", "env-token")
    assert resolve_connection("http://flag:2", "flag-token", config) == ("http://flag:2", "flag-token")


def test_config_file_may_use_a_client_table_and_a_token_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "token").write_text("file-token\n")
    config = tmp_path / "config.toml"
    config.write_text(f'[client]\nurl = "http://table:9"\ntoken_file = "{tmp_path / "token"}"\n')
    monkeypatch.delenv("SCENECHAIN_URL", raising=False)
    monkeypatch.delenv("SCENECHAIN_TOKEN", raising=False)

    assert resolve_connection(None, None, config) == ("http://table:9", "file-token")
    monkeypatch.setenv("SCENECHAIN_CONFIG", str(config))
    assert resolve_connection() == ("http://table:9", "file-token")


# -- CLI ------------------------------------------------------------------------------------------


def run_cli(argv: list[str], server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> tuple[int, str]:
    monkeypatch.setattr(cli, "make_client", lambda args: server.client())
    monkeypatch.setattr("scenechain.cli.time.sleep", lambda _s: None)
    parser = argparse.ArgumentParser(prog="scenechain")
    cli.add_client_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    output = io.StringIO()
    args.console = Console(file=output, width=160, force_terminal=False, color_system=None)
    return args.handler(args), output.getvalue()


def test_cli_generate_follows_events_prints_scores_and_downloads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = completed_server(
        **served_exports(),
        **{
            f"GET /api/status/{GID}": [
                httpx.Response(200, json=status_doc("running")),
                httpx.Response(200, json=status_doc("completed")),
            ]
        },
    )

    code, out = run_cli(
        [
            "generate",
            "A citrus soda",
            "--advanced",
            "--variations",
            "2",
            "--scenes",
            "2",
            "--out",
            str(tmp_path),
        ],
        server,
        monkeypatch,
    )

    assert code == 0
    body = json.loads(server.requests[0].content)
    assert body["use_advanced_image_generation"] is True and body["num_scenes"] == 2
    assert any(r.url.path.endswith("/events") for r in server.requests)
    assert f"submitted {GID}" in out
    assert "warning: scene 2: best overall score 61.5 is below the quality threshold 70" in out
    assert out.count("warning: scene 2") == 1  # the event and the final status don't repeat it
    assert "below threshold" in out and "61.5" in out
    assert "scene 1 enhanced" in out
    assert (tmp_path / "scene_01.png").read_bytes() == png((200, 0, 0))
    assert (tmp_path / "animatic.mp4").read_bytes() == b"\0\0\0\x18ftypisom-server-mp4"
    assert f"wrote 5 file(s) to {tmp_path}" in out


def test_cli_generate_polls_the_status_when_the_server_has_no_events(monkeypatch: pytest.MonkeyPatch) -> None:
    server = completed_server(
        **{
            f"GET /api/status/{GID}": [
                httpx.Response(200, json=status_doc("queued")),
                httpx.Response(200, json=status_doc("running")),
                httpx.Response(200, json=status_doc("completed")),
            ],
            f"GET /api/generations/{GID}/events": httpx.Response(404, json={"detail": "Not Found"}),
        }
    )

    code, out = run_cli(["generate", "A citrus soda"], server, monkeypatch)

    assert code == 0
    assert sum(r.url.path == f"/api/status/{GID}" for r in server.requests) >= 3
    assert "completed" in out


def test_cli_generate_exits_1_on_a_failed_generation(monkeypatch: pytest.MonkeyPatch) -> None:
    failed = status_doc("failed") | {"error": "RuntimeError: generator crashed"}
    server = completed_server(
        **{
            f"GET /api/status/{GID}": httpx.Response(200, json=failed),
            f"GET /api/generations/{GID}/events": httpx.Response(
                200,
                content=sse(
                    event("error", 1, message="RuntimeError: generator crashed"),
                    event("done", 2, status="failed"),
                ),
            ),
        }
    )

    code, out = run_cli(["generate", "x"], server, monkeypatch)

    assert code == 1 and "RuntimeError: generator crashed" in out


def test_cli_generate_reports_api_errors_with_the_servers_message(monkeypatch: pytest.MonkeyPatch) -> None:
    server = FakeServer(
        {"POST /api/generate": httpx.Response(503, text="overloaded", headers={"Retry-After": "4"})}
    )
    code, out = run_cli(["generate", "x", "--no-wait"], server, monkeypatch)
    assert code == 1 and "error 503: overloaded (retry after 4s)" in out


def test_cli_status_json_and_list_table(monkeypatch: pytest.MonkeyPatch) -> None:
    server = completed_server()

    code, out = run_cli(["status", GID, "--json"], server, monkeypatch)
    assert code == 0 and json.loads(out)["id"] == GID

    code, out = run_cli(["list"], server, monkeypatch)
    assert code == 0 and GID in out and "1/3" in out and "running" in out


def test_cli_without_a_token_exits_2_with_a_hint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SCENECHAIN_TOKEN", raising=False)
    monkeypatch.setenv("SCENECHAIN_CONFIG", str(tmp_path / "missing.toml"))
    parser = argparse.ArgumentParser(prog="scenechain")
    cli.add_client_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["list"])
    output = io.StringIO()
    args.console = Console(file=output, width=160, color_system=None)

    assert args.handler(args) == 2
    assert "no token" in output.getvalue()


def test_the_scenechain_client_command_offers_generate_status_and_list(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: scenechain-client")
    assert all(command in out for command in ("generate", "status", "list"))
    args = cli.build_parser().parse_args(["generate", "A brief", "--scenes", "2", "--advanced"])
    assert args.handler is cli.cmd_generate and args.scenes == 2 and args.advanced
