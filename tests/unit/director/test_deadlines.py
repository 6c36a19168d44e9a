"""Deadlines (deadline_s / Cancel-After): queued jobs never start, running ones stop at a stage boundary."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest
from fakes import FakePorts, slow_ports
from scenechain.protocol import GenerateRequest

from director.core import DirectorCore, DirectorSettings
from director.records import DEADLINE_STAGE, cancel_reason, deadline_at
from store.db import Database, utcnow
from store.events import SqlEventStore
from store.storage import Storage


@pytest.fixture
def env(tmp_path: Path) -> tuple[Database, Storage]:
    db = Database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    yield db, Storage(str(tmp_path / "out"))
    db.close()


def submit(db: Database, request: GenerateRequest, gid: str) -> str:
    db.create_generation(
        generation_id=gid,
        user="alice",
        request=request.model_dump(mode="json"),
        seed=7,
        scenes_total=request.num_scenes,
    )
    return gid


def test_a_running_generation_stops_at_the_next_stage_boundary_and_keeps_finished_scenes(
    env: tuple[Database, Storage],
) -> None:
    db, storage = env
    gid = submit(db, GenerateRequest(prompt="x", num_scenes=4, deadline_s=3), "g1")
    deadline = deadline_at(db.get(gid).created_at, db.get(gid).request)
    assert deadline is not None
    events = SqlEventStore(db.engine)
    ports = FakePorts()
    original = ports.generate

    async def scene_2_outlives_the_deadline(request: object) -> object:
        if len(ports.generate_calls) == 1:  # scene 2: still generating when the deadline passes
            await asyncio.sleep((deadline - utcnow()).total_seconds() + 0.1)
        return await original(request)

    ports.generate = scene_2_outlives_the_deadline  # type: ignore[method-assign]

    async def main() -> None:
        core = DirectorCore(db, storage, ports, events=events)
        core.start(gid)
        await core.wait(gid)

    asyncio.run(main())
    record = db.get(gid)
    assert record.status == "cancelled" and record.stage == DEADLINE_STAGE
    assert cancel_reason(record.status, record.stage) == "deadline"
    # scene 2 was generating when the deadline passed: it finished and was kept, nothing after it ran
    assert record.scenes_done == 2 and len(ports.generate_calls) == 2
    assert storage.read_scene_image(gid, 2)  # the committed image is there
    assert any("deadline of 3.0s passed" in warning for warning in record.warnings)
    types = [event.type for event in events.read(gid)]
    assert types[-1] == "done" and types.count("scene_done") == 2


def test_a_queued_generation_whose_deadline_passes_while_waiting_never_starts(
    env: tuple[Database, Storage],
) -> None:
    db, storage = env
    blocker = submit(db, GenerateRequest(prompt="x", num_scenes=2), "g-blocker")
    waiting = submit(db, GenerateRequest(prompt="y", num_scenes=1, deadline_s=0.3), "g-waiting")
    ports = slow_ports(0.4)

    async def main() -> None:
        core = DirectorCore(db, storage, ports, DirectorSettings(max_concurrent_generations=1))
        core.start(blocker)
        await asyncio.sleep(0.05)
        core.start(waiting)
        await core.wait(waiting)
        assert db.get(waiting).status == "cancelled"  # while the blocker still runs
        assert db.get(blocker).status == "running"
        await core.wait(blocker)

    asyncio.run(main())
    record = db.get(waiting)
    assert record.stage == DEADLINE_STAGE and record.scenes_done == 0 and record.storyboard_plan is None
    assert any("never started" in warning for warning in record.warnings)
    assert not any(call.prompt.startswith("y") for call in ports.generate_calls)
    assert db.get(blocker).status == "completed"


def test_a_deadline_already_past_at_recovery_cancels_without_running(env: tuple[Database, Storage]) -> None:
    db, storage = env
    gid = submit(db, GenerateRequest(prompt="x", num_scenes=1, deadline_s=0.01), "g1")
    ports = FakePorts()

    async def main() -> None:
        await asyncio.sleep(0.05)  # e.g. the Director was down while the deadline passed
        core = DirectorCore(db, storage, ports)
        for started in await core.recover():
            await core.wait(started)

    asyncio.run(main())
    record = db.get(gid)
    assert record.status == "cancelled" and record.storyboard_plan is None and ports.generate_calls == []


def test_a_generation_finishing_before_its_deadline_completes(env: tuple[Database, Storage]) -> None:
    db, storage = env
    gid = submit(db, GenerateRequest(prompt="x", num_scenes=2, deadline_s=60), "g1")

    async def main() -> None:
        core = DirectorCore(db, storage, FakePorts())
        core.start(gid)
        await core.wait(gid)

    asyncio.run(main())
    record = db.get(gid)
    assert record.status == "completed" and cancel_reason(record.status, record.stage) is None
    assert deadline_at(record.created_at, record.request) == record.created_at + timedelta(seconds=60)


def test_a_user_cancel_reads_as_reason_user(env: tuple[Database, Storage]) -> None:
    db, storage = env
    gid = submit(db, GenerateRequest(prompt="x", num_scenes=3), "g1")

    async def main() -> None:
        core = DirectorCore(db, storage, slow_ports(0.5))
        core.start(gid)
        await asyncio.sleep(0.2)
        assert await core.cancel(gid)

    asyncio.run(main())
    record = db.get(gid)
    assert cancel_reason(record.status, record.stage) == "user"
