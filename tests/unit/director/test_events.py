"""Live events: SSE wire format, the persistent log (SQLite), the Director's recorder, the stream loop."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any

import pytest
from scenechain.events import GenerationEvent, event_from_sse, format_sse, format_sse_comment, parse_sse
from sqlalchemy import create_engine

from api.events import parse_last_event_id, stream_events
from director.events import EventRecorder, RowSnapshot, enhancement_trace
from store.events import MemoryEventStore, SqlEventStore

GID = "gen123"


def collect(stream: Any) -> list[str]:
    async def run() -> list[str]:
        return [chunk async for chunk in stream]

    return asyncio.run(run())


def decoded(chunks: list[str]) -> list[GenerationEvent]:
    lines = "".join(chunks).split("\n")
    return [event_from_sse(message) for message in parse_sse(lines) if message.data]


# -- wire format ----------------------------------------------------------------------------------


def test_format_sse_round_trips_through_the_decoder_with_id_and_type() -> None:
    event = GenerationEvent(
        type="variation_scored",
        generation_id=GID,
        scene=2,
        data={"k": 3, "scores": {"overall": 58.9}, "note": "line one\nline two"},
        seq=7,
    )

    text = format_sse(event)
    messages = list(parse_sse(text.split("\n")))

    assert text.startswith("id: 7\nevent: variation_scored\ndata: {")
    assert text.endswith("\n\n") and text.count("\ndata: ") == 1  # newlines in data stay escaped
    assert len(messages) == 1 and messages[0].id == "7" and messages[0].event == "variation_scored"
    assert event_from_sse(messages[0]) == event


def test_unlogged_events_have_no_sse_id_so_clients_never_resume_from_them() -> None:
    text = format_sse(GenerationEvent(type="stage", generation_id=GID, data={"stage": "planning"}))
    assert "id:" not in text


def test_decoder_follows_the_sse_rules_for_comments_retry_multiline_data_and_crlf() -> None:
    raw = ": keep-alive\r\n\r\nretry: 1500\n\nevent: custom\ndata: a\ndata:b\nid: 9\nunknown: x\n\n"

    messages = list(parse_sse(raw.replace("\r\n", "\n").split("\n")))

    assert [(m.event, m.data, m.id, m.retry) for m in messages] == [
        ("message", "", None, 1500),
        ("custom", "a\nb", "9", None),
    ]
    assert format_sse_comment().startswith(":")


def test_event_from_sse_rejects_messages_that_carry_no_event() -> None:
    message = next(parse_sse(["data: not json", ""]))
    with pytest.raises(ValueError, match="not a generation event"):
        event_from_sse(message)


@pytest.mark.parametrize(
    ("value", "seq"), [(None, 0), ("", 0), ("12", 12), (" 4 ", 4), ("abc", 0), ("-3", 0)]
)
def test_parse_last_event_id(value: str | None, seq: int) -> None:
    assert parse_last_event_id(value) == seq


# -- persistent log -------------------------------------------------------------------------------


@pytest.fixture
def sql_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'events.db'}"


def test_sql_store_numbers_events_per_generation_and_reads_after_a_seq(sql_url: str) -> None:
    store = SqlEventStore(create_engine(sql_url), create_table=True)

    first = store.append(GID, "stage", None, {"stage": "planning"})
    store.append("other", "stage", None, {"stage": "planning"})
    second = store.append(GID, "scene_done", 1, {"scenes_done": 1})

    assert (first.seq, second.seq) == (1, 2)
    assert [e.seq for e in store.read(GID)] == [1, 2]
    assert store.read(GID, after_seq=1) == [second]
    assert store.read(GID, after_seq=1)[0].ts.tzinfo is not None
    store.delete(GID)
    assert store.read(GID) == [] and len(store.read("other")) == 1


def test_the_app_database_gets_the_event_table_from_its_migrations(tmp_path: Path) -> None:
    from sqlalchemy import inspect

    from store.db import Database

    db = Database(f"sqlite:///{tmp_path / 'app.db'}")  # runs alembic upgrade head
    assert inspect(db.engine).has_table("generation_events")
    store = SqlEventStore(db.engine)  # no table creation of its own
    assert store.append("g1", "stage", None, {"stage": "planning"}).seq == 1
    assert [event.seq for event in store.read("g1")] == [1]


def test_sql_store_events_persist_across_processes_sharing_the_database(sql_url: str) -> None:
    director_side = SqlEventStore(create_engine(sql_url), create_table=True)
    director_side.append(GID, "warning", 2, {"message": "scene 2: scorer vqa failed"})

    ingress_side = SqlEventStore(create_engine(sql_url), create_table=True)  # another engine: another process

    (event,) = ingress_side.read(GID)
    assert (
        event.type == "warning"
        and event.scene == 2
        and event.data == {"message": "scene 2: scorer vqa failed"}
    )


def test_sql_store_gives_concurrent_appenders_distinct_consecutive_seqs(sql_url: str) -> None:
    stores = [SqlEventStore(create_engine(sql_url), create_table=True) for _ in range(3)]

    def append_many(store: SqlEventStore) -> None:
        for _ in range(10):
            store.append(GID, "stage", None, {})

    threads = [threading.Thread(target=append_many, args=(store,)) for store in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert [event.seq for event in stores[0].read(GID)] == list(range(1, 31))


def test_stores_reject_unknown_event_types(sql_url: str) -> None:
    for store in (MemoryEventStore(), SqlEventStore(create_engine(sql_url), create_table=True)):
        with pytest.raises(ValueError, match="unknown event type"):
            store.append(GID, "exploded", None, {})  # type: ignore[arg-type]


# -- the Director's recorder ----------------------------------------------------------------------


def quality(best: int, overalls: list[float], below: bool) -> dict[str, Any]:
    return {
        "best_index": best,
        "best_overall": overalls[best - 1],
        "per_image": [{"pickscore": o, "clip": o, "vqa": o, "aesthetic": o, "overall": o} for o in overalls],
        "below_threshold": below,
        "scorers_used": ["pickscore", "clipscore", "vqa", "aesthetic"],
        "seeds": [100 + k for k in range(len(overalls))],
    }


def scene(n: int) -> dict[str, Any]:
    return {
        "index": n,
        "prompt": f"scene {n}",
        "enhanced_prompt": None,
        "image_url": f"/api/generations/{GID}/scenes/{n}/image",
        "reference_from": n - 1 or None,
        "seeds": [1],
        "best_index": 1,
    }


def run_director_updates(recorder: EventRecorder) -> None:
    """The DB updates a two-scene advanced run makes, in the Director's order."""

    async def run() -> None:
        await recorder.observe(status="running", stage="planning", warnings=[], timings={})
        await recorder.observe(scenes_total=2, stage="scene 1: starting", storyboard_plan={"scenes": []})
        await recorder.observe(stage="scene 1: enhancing")
        await recorder.observe(stage="scene 1: generating")
        await recorder.observe(stage="scene 1: scoring")
        await recorder.observe(
            scenes=[scene(1)],
            image_quality_scores={"scene_1": quality(2, [40.0, 70.0], False)},
            scenes_done=1,
            stage="scene 2: starting",
        )
        await recorder.observe(stage="scene 2: generating", warnings=["scene 2: scorer vqa failed (boom)"])
        await recorder.observe(
            scenes=[scene(1), scene(2)],
            image_quality_scores={
                "scene_1": quality(2, [40.0, 70.0], False),
                "scene_2": quality(1, [20.0, 10.0], True),
            },
            scenes_done=2,
            stage="finishing",
            warnings=["scene 2: scorer vqa failed (boom)", "scene 2: best overall score 20.0 is below 30"],
        )
        await recorder.observe(status="completed", stage="completed")

    asyncio.run(run())


def test_recorder_turns_director_updates_into_ordered_events() -> None:
    store = MemoryEventStore()

    run_director_updates(EventRecorder(store, GID))

    events = store.read(GID)
    summary = [(e.type, e.scene) for e in events]
    assert summary == [
        ("stage", None),  # planning
        ("stage", 1),  # scene 1: starting
        ("stage", 1),
        ("stage", 1),
        ("stage", 1),
        ("variation_scored", 1),
        ("variation_scored", 1),
        ("best_picked", 1),
        ("scene_done", 1),
        ("stage", 2),  # scene 2: starting
        ("warning", 2),  # scorer failed, committed with the stage change
        ("stage", 2),
        ("variation_scored", 2),
        ("variation_scored", 2),
        ("best_picked", 2),
        ("warning", 2),  # below threshold, committed with the scene
        ("scene_done", 2),
        ("stage", None),  # finishing
        ("done", None),
    ]
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert events[4].data == {"stage": "scoring", "label": "scene 1: scoring"}
    assert (
        events[6].data["k"] == 2
        and events[6].data["scores"]["overall"] == 70.0
        and events[6].data["seed"] == 101
    )
    assert events[7].data == {"k": 2, "overall": 70.0, "below_threshold": False}
    assert events[8].data == {
        "image_url": f"/api/generations/{GID}/scenes/1/image",
        "scenes_done": 1,
        "scenes_total": 2,
    }
    assert events[14].data["below_threshold"] is True
    assert events[-1].data == {"status": "completed", "error": None}


def test_recorder_reports_a_failure_as_error_then_done() -> None:
    store = MemoryEventStore()

    async def run() -> None:
        recorder = EventRecorder(store, GID)
        await recorder.observe(status="running", stage="planning")
        await recorder.observe(status="failed", stage="failed", error="RuntimeError: out of memory")
        await recorder.observe(status="failed", stage="failed")  # a repeat says nothing

    asyncio.run(run())

    assert [
        (e.type, e.data.get("message") or e.data.get("status") or e.data.get("stage"))
        for e in store.read(GID)
    ] == [
        ("stage", "planning"),
        ("error", "RuntimeError: out of memory"),
        ("done", "failed"),
    ]


def test_a_resumed_run_does_not_repeat_what_was_already_reported() -> None:
    store = MemoryEventStore()
    row = RowSnapshot(
        id=GID,
        status="running",
        stage="scene 2: starting",
        scenes_total=2,
        scenes_done=1,
        scenes=[scene(1)],
        warnings=["planner: fell back"],
    )

    async def run() -> None:
        recorder = EventRecorder(store, GID, row)
        await recorder.observe(status="running", stage="scene 2: starting", warnings=["planner: fell back"])
        await recorder.observe(scenes=[scene(1), scene(2)], scenes_done=2, stage="finishing")

    asyncio.run(run())

    assert [(e.type, e.scene) for e in store.read(GID)] == [("scene_done", 2), ("stage", None)]


def test_recorder_never_raises_when_the_store_fails() -> None:
    class Broken(MemoryEventStore):
        def append(self, *args: Any, **kwargs: Any) -> GenerationEvent:
            raise OSError("disk full")

    async def run() -> None:
        recorder = EventRecorder(Broken(), GID)
        assert await recorder.emit("stage", None, {}) is None
        await recorder.observe(status="completed", stage="completed")
        assert await EventRecorder(None, GID).emit("stage") is None

    asyncio.run(run())


def trace_files() -> dict[str, str]:
    critic = {"scores": {"completeness": 80, "cinematography": 60}, "overall": 72.5, "feedback": "more light"}
    critic2 = {"scores": {"completeness": 90, "cinematography": 88}, "overall": 89.0, "feedback": "good"}
    return {
        "00_original_prompt.txt": "a can of soda\n",
        "01_agent1_iteration_1.txt": "a can of soda, golden hour\n",
        "02_agent2_iteration_1.txt": json.dumps(critic),
        "03_agent1_iteration_2.txt": "a can of soda, golden hour, 35mm, shallow depth of field\n",
        "04_agent2_iteration_2.txt": json.dumps(critic2),
        "final_enhanced_prompt.txt": "a can of soda, golden hour, 35mm, shallow depth of field\n",
        "prompt_trace_summary.json": json.dumps({"approve_threshold": 85.0, "stop_reason": "approved"}),
        "quality_scores.json": json.dumps({"best_index": 1}),
        "image_2.png": "",
        "image_10.png": "",
        "image_1.png": "",
    }


def test_enhancement_trace_pairs_each_rewrite_with_its_critic_verdict() -> None:
    trace = enhancement_trace(trace_files())

    assert trace.original_prompt == "a can of soda"
    assert [(it.iteration, it.overall, it.approved) for it in trace.iterations] == [
        (1, 72.5, False),
        (2, 89.0, True),
    ]
    assert trace.iterations[0].rewrite == "a can of soda, golden hour"
    assert trace.iterations[0].scores == {"completeness": 80, "cinematography": 60}
    assert trace.iterations[0].feedback == "more light"
    assert trace.final_prompt is not None and trace.final_prompt.endswith("shallow depth of field")
    assert trace.summary is not None and trace.summary["stop_reason"] == "approved"
    assert trace.quality_scores == {"best_index": 1}
    assert trace.variations == ["image_1.png", "image_2.png", "image_10.png"]


def test_enhancement_trace_of_a_simple_scene_and_of_a_non_json_critic() -> None:
    assert enhancement_trace({"00_original_prompt.txt": "x"}).iterations == []
    odd = enhancement_trace(
        {"01_agent1_iteration_1.txt": "rewrite", "02_agent2_iteration_1.txt": "score: 7/10"}
    )
    assert odd.iterations[0].critic_text == "score: 7/10" and odd.iterations[0].overall is None
    # an LLM critic's JSON with junk where numbers belong gives no scores, not a crash
    junk = enhancement_trace(
        {"02_agent2_iteration_1.txt": '{"scores": {"a": "high", "b": 70}, "overall": "ninety"}'}
    )
    assert junk.iterations[0].scores == {"b": 70.0} and junk.iterations[0].overall is None


def test_recorder_emits_one_enhancer_iteration_event_per_round() -> None:
    store = MemoryEventStore()
    asyncio.run(EventRecorder(store, GID).enhancement(3, trace_files()))

    events = store.read(GID)
    assert [(e.type, e.scene, e.data["iteration"], e.data["overall"]) for e in events] == [
        ("enhancer_iteration", 3, 1, 72.5),
        ("enhancer_iteration", 3, 2, 89.0),
    ]
    assert events[1].data["approved"] is True and events[1].data["prompt"].startswith("a can of soda, golden")


# -- the stream loop ------------------------------------------------------------------------------


class Row:
    """A mutable generation row the stream polls."""

    def __init__(self, **fields: Any) -> None:
        self.fields = {"id": GID, "status": "running", "stage": "planning", **fields}

    async def snapshot(self) -> dict[str, Any]:
        return dict(self.fields)


def test_stream_replays_the_log_and_ends_at_done() -> None:
    store = MemoryEventStore()
    run_director_updates(EventRecorder(store, GID))

    chunks = collect(stream_events(store, GID, Row(status="completed").snapshot, poll_s=0.01))

    assert chunks[0].startswith("retry: ")
    events = decoded(chunks)
    assert [e.seq for e in events] == list(range(1, 20)) and events[-1].type == "done"


def test_stream_resumes_after_last_event_id_without_repeats() -> None:
    store = MemoryEventStore()
    run_director_updates(EventRecorder(store, GID))

    events = decoded(collect(stream_events(store, GID, Row().snapshot, after_seq=15, poll_s=0.01)))

    assert [e.seq for e in events] == [16, 17, 18, 19]


def test_stream_delivers_events_logged_while_it_waits() -> None:
    store = MemoryEventStore()
    store.append(GID, "stage", None, {"stage": "planning", "label": "planning"})

    async def run() -> list[str]:
        async def director() -> None:
            await asyncio.sleep(0.05)
            store.append(GID, "scene_done", 1, {"scenes_done": 1, "scenes_total": 1})
            await asyncio.sleep(0.05)
            store.append(GID, "done", None, {"status": "completed"})

        task = asyncio.create_task(director())
        chunks = [
            chunk async for chunk in stream_events(store, GID, Row().snapshot, poll_s=0.01, heartbeat_s=0.02)
        ]
        await task
        return chunks

    chunks = asyncio.run(run())

    assert [e.type for e in decoded(chunks)] == ["stage", "scene_done", "done"]
    assert any(chunk.startswith(":") for chunk in chunks)  # heartbeats while idle


def test_stream_synthesizes_events_from_the_row_when_nothing_was_logged() -> None:
    row = Row(stage="queued", status="queued", scenes_total=1)

    async def run() -> list[str]:
        async def director() -> None:
            await asyncio.sleep(0.05)
            row.fields.update(status="running", stage="scene 1: generating")
            await asyncio.sleep(0.05)
            row.fields.update(
                scenes=[scene(1)], scenes_done=1, stage="finishing", warnings=["planner: fell back"]
            )
            await asyncio.sleep(0.05)
            row.fields.update(status="completed", stage="completed")

        task = asyncio.create_task(director())
        chunks = [chunk async for chunk in stream_events(MemoryEventStore(), GID, row.snapshot, poll_s=0.01)]
        await task
        return chunks

    events = decoded(asyncio.run(run()))

    assert [(e.type, e.scene, e.seq) for e in events] == [
        ("stage", None, 0),
        ("stage", 1, 0),
        ("warning", None, 0),
        ("scene_done", 1, 0),
        ("stage", None, 0),
        ("done", None, 0),
    ]


def test_stream_closes_with_a_done_when_the_row_finished_but_the_log_has_none() -> None:
    store = MemoryEventStore()
    store.append(GID, "stage", None, {"stage": "planning"})  # a Director that died mid-way

    events = decoded(
        collect(stream_events(store, GID, Row(status="failed").snapshot, poll_s=0.01, finished_grace_s=0.05))
    )

    assert [e.type for e in events] == ["stage", "done"]
    assert events[-1].data["status"] == "failed" and events[-1].seq == 0


def test_stream_stops_after_max_duration_so_clients_reconnect() -> None:
    chunks = collect(
        stream_events(MemoryEventStore(), GID, Row().snapshot, after_seq=3, poll_s=0.01, max_duration_s=0.05)
    )
    assert decoded(chunks) == []


def test_a_resumed_run_catches_up_events_a_crash_kept_from_the_log() -> None:
    store = MemoryEventStore()
    scenes = [scene(1), scene(2)]
    before = {"id": GID, "status": "running", "stage": "scene 1: starting"}
    # the first run logged scene 1, then died after committing scene 2's row but before its events
    asyncio.run(EventRecorder(store, GID, before).observe(scenes=scenes[:1], stage="scene 2: starting"))
    row = {**before, "stage": "scene 3: starting", "scenes": scenes, "warnings": ["w1"]}
    resumed = EventRecorder(store, GID, row)
    asyncio.run(resumed.catch_up())
    asyncio.run(resumed.catch_up())  # idempotent: a second catch-up adds nothing
    events = store.read(GID)
    assert [e.scene for e in events if e.type == "scene_done"] == [1, 2]
    assert [e.data.get("message") for e in events if e.type == "warning"] == ["w1"]
    # a fresh run has nothing to catch up
    fresh = MemoryEventStore()
    asyncio.run(EventRecorder(fresh, "other", {"id": "other"}).catch_up())
    assert fresh.read("other") == []
