"""The gallery/events/trace/export routes on the real ingress app, real DB and store, no Ray.

The Director is a stand-in that writes what a run writes (rows, images, trace files, events);
the routes are exercised over HTTP with FastAPI's TestClient, and the Python client reads them.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from scenechain import Client
from scenechain.events import event_from_sse, parse_sse

from api.auth import mint_token
from api.exports import mp4_duration_s
from api.ingress import IngressService, create_api
from director.events import EventRecorder
from serve.config import AppArgs
from store.events import SqlEventStore


def png(colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (48, 32), colour).save(buffer, format="PNG")
    return buffer.getvalue()


class IdleDirector:
    async def submit(self, generation_id: str) -> None:
        return None

    async def cancel(self, generation_id: str) -> bool:
        return True


@pytest.fixture
def app(tmp_path: Path) -> Any:
    args = AppArgs(output_dir=str(tmp_path / "out"))
    service = IngressService(args.ingress_settings(), IdleDirector())
    # The ingress installs the UI routes itself, on the events table of the app's own database.
    store = SqlEventStore(service.db.engine)
    api = create_api(service)
    with TestClient(api) as client:
        yield client, service, store
    service.db.close()


def auth(user: str = "alice") -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(AppArgs().jwt, user)}"}


def submit(client: TestClient) -> str:
    body = {"prompt": "A citrus soda ad", "num_scenes": 2, "use_advanced_image_generation": True, "seed": 5}
    answer = client.post("/api/generate", json=body, headers=auth())
    assert answer.status_code == 202
    return answer.json()["id"]


def finish(service: IngressService, store: SqlEventStore, gid: str, scenes: int = 2) -> None:
    """What a Director leaves behind: images, trace files, the completed row, the event log."""
    import asyncio

    storage = service.storage
    quality = {}
    done = []
    for n in range(1, scenes + 1):
        for k, colour in ((1, (200, 0, 0)), (2, (0, 0, 200))):
            storage.write_variation(gid, n, k, png(colour))
        storage.write_scene_image(gid, n, png((0, 0, 200)))
        storage.write_trace_file(gid, n, "00_original_prompt.txt", f"scene {n} planned\n")
        storage.write_trace_file(gid, n, "01_agent1_iteration_1.txt", f"scene {n}, golden hour, 35mm\n")
        critic = {"scores": {"cinematography": 88.0}, "overall": 86.0, "feedback": "good"}
        storage.write_trace_file(gid, n, "02_agent2_iteration_1.txt", json.dumps(critic))
        storage.write_trace_file(gid, n, "final_enhanced_prompt.txt", f"scene {n}, golden hour, 35mm\n")
        storage.write_trace_json(
            gid, n, "prompt_trace_summary.json", {"approve_threshold": 85, "stop_reason": "approved"}
        )
        quality[f"scene_{n}"] = {
            "best_index": 2,
            "best_overall": 62.0,
            "per_image": [
                {"pickscore": 30.0, "clip": 30.0, "vqa": 30.0, "aesthetic": 30.0, "overall": 30.0},
                {"pickscore": 62.0, "clip": 62.0, "vqa": 62.0, "aesthetic": 62.0, "overall": 62.0},
            ],
            "below_threshold": n == 2,
            "scorers_used": ["pickscore", "clip", "vqa", "aesthetic"],
            "scorers_failed": {},
            "seeds": [5, 6],
        }
        storage.write_trace_json(gid, n, "quality_scores.json", quality[f"scene_{n}"])
        done.append(
            {
                "index": n,
                "prompt": f"scene {n} planned",
                "enhanced_prompt": f"scene {n}, golden hour, 35mm",
                "image_url": f"/api/generations/{gid}/scenes/{n}/image",
                "reference_from": n - 1 or None,
                "seeds": [5, 6],
                "num_variations": 2,
                "best_index": 2,
            }
        )
    fields = {
        "status": "completed",
        "stage": "completed",
        "scenes": done,
        "scenes_done": scenes,
        "image_quality_scores": quality,
        "warnings": ["scene 2: best overall score 62.0 is below the quality threshold 70"],
    }
    service.db.update(gid, **fields)
    recorder = EventRecorder(store, gid)
    asyncio.run(recorder.observe(status="running", stage="planning"))
    asyncio.run(recorder.observe(**fields))


def test_root_and_ui_redirect_to_the_gallery_page_and_assets_are_served(app: Any) -> None:
    client, _service, _store = app

    for path in ("/", "/ui"):
        answer = client.get(path, follow_redirects=False)
        assert answer.status_code == 307 and answer.headers["location"].endswith("/ui/")
    page = client.get("/ui/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert '<script src="app.js">' in page.text
    for asset, kind in (("app.js", "javascript"), ("style.css", "text/css")):
        answer = client.get(f"/ui/{asset}")
        assert answer.status_code == 200 and kind in answer.headers["content-type"]
    assert client.get("/ui/../serve/db.py").status_code == 404
    assert client.get("/ui/secrets.txt").status_code == 404


def test_events_stream_replays_the_log_resumes_and_ends_at_done(app: Any) -> None:
    client, service, store = app
    gid = submit(client)
    finish(service, store, gid)

    whole = client.get(f"/api/generations/{gid}/events", headers=auth())
    assert whole.status_code == 200 and whole.headers["content-type"].startswith("text/event-stream")
    events = [event_from_sse(m) for m in parse_sse(whole.text.split("\n")) if m.data]
    types = [e.type for e in events]
    assert types[0] == "stage" and types[-1] == "done"
    assert types.count("variation_scored") == 4 and types.count("scene_done") == 2

    resumed = client.get(
        f"/api/generations/{gid}/events", headers={**auth(), "Last-Event-ID": str(events[-3].seq)}
    )
    again = [event_from_sse(m) for m in parse_sse(resumed.text.split("\n")) if m.data]
    assert [e.seq for e in again] == [events[-2].seq, events[-1].seq]


def test_events_need_a_token_and_ownership(app: Any) -> None:
    client, _service, _store = app
    gid = submit(client)

    assert client.get(f"/api/generations/{gid}/events").status_code == 401
    other = client.get(f"/api/generations/{gid}/events", headers=auth("bob"))
    assert other.status_code == 404 and other.json()["detail"] == f"generation {gid} not found"


def test_trace_pairs_rewrites_with_critic_scores(app: Any) -> None:
    client, service, store = app
    gid = submit(client)
    assert client.get(f"/api/generations/{gid}/scenes/1/trace", headers=auth()).status_code == 404  # not yet
    finish(service, store, gid)

    trace = client.get(f"/api/generations/{gid}/scenes/1/trace", headers=auth()).json()

    assert trace["original_prompt"] == "scene 1 planned"
    assert trace["iterations"] == [
        {
            "iteration": 1,
            "rewrite": "scene 1, golden hour, 35mm",
            "scores": {"cinematography": 88.0},
            "overall": 86.0,
            "feedback": "good",
            "negative_prompt": None,
            "approved": True,
            "critic_text": None,
        }
    ]
    assert trace["final_prompt"] == "scene 1, golden hour, 35mm"
    assert trace["quality_scores"]["best_index"] == 2
    assert trace["variations"] == ["image_1.png", "image_2.png"]
    assert "01_agent1_iteration_1.txt" in trace["files"] and "image_1.png" not in trace["files"]
    assert client.get(f"/api/generations/{gid}/scenes/1/trace", headers=auth("bob")).status_code == 404


def test_exports_are_built_from_the_kept_images(app: Any) -> None:
    client, service, store = app
    gid = submit(client)
    early = client.get(f"/api/generations/{gid}/export/contact-sheet.png", headers=auth())
    assert early.status_code == 409 and "no finished scene" in early.json()["detail"]
    finish(service, store, gid)

    sheet = client.get(f"/api/generations/{gid}/export/contact-sheet.png", headers=auth())
    assert sheet.status_code == 200 and sheet.headers["content-type"] == "image/png"
    assert f'filename="{gid}_contact_sheet.png"' in sheet.headers["content-disposition"]
    assert Image.open(io.BytesIO(sheet.content)).width > 2 * 48

    video = client.get(
        f"/api/generations/{gid}/export/animatic.mp4?seconds_per_scene=1&crossfade=0.25&fps=8", headers=auth()
    )
    assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
    assert mp4_duration_s(video.content) == pytest.approx(2.0, abs=0.2)

    bad = client.get(
        f"/api/generations/{gid}/export/animatic.mp4?seconds_per_scene=1&crossfade=2", headers=auth()
    )
    assert bad.status_code == 422 and "crossfade must be" in bad.json()["detail"]


def test_the_python_client_reads_these_routes(app: Any, tmp_path: Path) -> None:
    client, service, store = app
    gid = submit(client)
    finish(service, store, gid)

    class Bridge(httpx.BaseTransport):
        """httpx transport onto the TestClient (same ASGI app, same process)."""

        def handle_request(self, request: httpx.Request) -> httpx.Response:
            answer = client.request(
                request.method,
                request.url.raw_path.decode(),
                headers=dict(request.headers),
                content=request.content,
            )
            return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)

    token = mint_token(AppArgs().jwt, "alice")
    with Client("http://testserver", token, transport=Bridge()) as api_client:
        events = list(api_client.events(gid))
        trace = api_client.trace(gid, 2)
        paths = api_client.download(gid, tmp_path, variations=True)

    assert events[-1].type == "done" and events[-1].data["status"] == "completed"
    assert trace["iterations"][0]["overall"] == 86.0
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
