"""Storage and DB faults in the Director: retried with backoff, failed with a clear error, or resumed.

A real SQLite ``Database`` and a real ``Storage`` (tmp dirs), wrapped by the fault injectors of
``store.faults`` (what ``AppArgs.faults`` configures), under ``DirectorCore`` with fake model ports.
The assertions are about persistence: statuses, errors, files, retries, and nothing redone.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from fakes import FakePorts
from scenechain.protocol import GenerateRequest
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from director.core import DirectorCore, DirectorSettings
from generator.core import GenerationRequest, GenerationResult, GeneratorOutOfMemory
from serve.config import AppArgs
from store.db import Database, GenerationNotFound
from store.faults import (
    DatabaseUnavailable,
    FaultSettings,
    FaultyDatabase,
    FaultyStorage,
    RetryPolicy,
    StorageUnavailable,
    is_transient_db_error,
    is_transient_storage_error,
    retry_io,
    with_faults,
)
from store.storage import Storage, StorageError

# Fast, fixed waits: 3 tries, 10 ms then 20 ms.
FAST = RetryPolicy(attempts=3, base_delay_s=0.01, max_delay_s=0.02, jitter=0)
# Simple mode, per scene: 00_original_prompt.txt, image_1.png (variation), scene_n.png.
WRITES_PER_SCENE = 3
# Simple mode: planning, plan, scene 1 generating, scene 1 committed.
UPDATES_UNTIL_SCENE_1_COMMITTED = 4


@pytest.fixture
def env(tmp_path: Path) -> Iterator[tuple[Database, Storage]]:
    db = Database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    yield db, Storage(str(tmp_path / "out"))
    db.close()


def submit(db: Database, num_scenes: int = 2, gid: str = "g1") -> str:
    request = GenerateRequest(prompt="an ad for rain boots", num_scenes=num_scenes, seed=7)
    db.create_generation(
        generation_id=gid,
        user="alice",
        request=request.model_dump(mode="json"),
        seed=7,
        scenes_total=num_scenes,
    )
    return gid


def run(db: Any, storage: Any, gid: str, ports: FakePorts | None = None, **settings: Any) -> FakePorts:
    """Run one generation to the end of its task on a fresh DirectorCore (faulty wrappers welcome)."""
    ports = ports or FakePorts()

    async def main() -> None:
        core = DirectorCore(
            cast(Database, db),
            cast(Storage, storage),
            ports,
            DirectorSettings(**{"io_retry": FAST, **settings}),
        )
        assert core.start(gid)
        await core.wait(gid)

    asyncio.run(main())
    return ports


def recover(db: Database, storage: Storage, **settings: Any) -> FakePorts:
    """A fresh DirectorCore (another replica) runs its recovery pass to the end."""
    ports = FakePorts()

    async def main() -> None:
        core = DirectorCore(db, storage, ports, DirectorSettings(**settings), owner="replica-b")
        for gid in await core.recover():
            await core.wait(gid)

    asyncio.run(main())
    return ports


def files_of(storage: Storage, gid: str, scenes: int) -> dict[str, bytes]:
    found = {}
    for n in range(1, scenes + 1):
        found[f"scene_{n}.png"] = storage.read_scene_image(gid, n)
        for name in storage.list_trace_files(gid, n):
            found[f"scene_{n}/{name}"] = storage.read_trace_file(gid, n, name)
    return found


# -- the retry policy and the retry loop ---------------------------------------------------------


def test_backoff_doubles_is_capped_and_jitter_only_shortens() -> None:
    policy = RetryPolicy(attempts=6, base_delay_s=0.5, max_delay_s=3.0, jitter=0.5)
    assert [policy.delay_s(k, 0.0) for k in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert [policy.delay_s(k, 0.999999) for k in (1, 4)] == pytest.approx([0.25, 1.5], rel=1e-4)
    assert RetryPolicy(jitter=0).delay_s(2, 0.9) == 1.0


def test_only_transient_errors_count_as_transient() -> None:
    assert is_transient_storage_error(OSError("connection reset"))
    assert is_transient_storage_error(TimeoutError("slow bucket"))
    assert is_transient_storage_error(StorageError("reading x: boom"))
    assert not is_transient_storage_error(FileNotFoundError("scene_1.png"))
    assert not is_transient_storage_error(ValueError("invalid generation id '../x'"))
    refused = OperationalError("UPDATE generations", None, ConnectionRefusedError("refused"))
    assert is_transient_db_error(refused)
    assert is_transient_db_error(DBAPIError("SELECT 1", None, Exception("gone"), connection_invalidated=True))
    assert not is_transient_db_error(DBAPIError("SELECT 1", None, Exception("bad SQL")))
    assert not is_transient_db_error(IntegrityError("INSERT", None, Exception("duplicate key")))
    assert not is_transient_db_error(GenerationNotFound("g1"))
    assert not is_transient_db_error(ValueError("cannot update ['owner']"))


def test_retry_io_retries_transient_errors_then_succeeds_and_logs_each_retry(
    caplog: pytest.LogCaptureFixture,
) -> None:
    outcomes: list[Exception | str] = [OSError("blip 1"), OSError("blip 2"), "written"]
    retried: list[BaseException] = []

    def flaky_write() -> str:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    with caplog.at_level(logging.WARNING):
        result = asyncio.run(
            retry_io("storage", "writing scene 1 image", flaky_write, FAST, on_retry=retried.append)
        )
    assert result == "written" and [str(e) for e in retried] == ["blip 1", "blip 2"]
    messages = [r.getMessage() for r in caplog.records]
    assert any("writing scene 1 image failed (attempt 1/3: OSError: blip 1)" in m for m in messages)
    assert any("(attempt 2/3: OSError: blip 2)" in m for m in messages)


def test_retry_io_gives_up_with_a_clear_error_and_never_retries_bad_input() -> None:
    calls: list[str] = []

    def down() -> None:
        calls.append("down")
        raise OSError("no route to host")

    with pytest.raises(StorageUnavailable) as raised:
        asyncio.run(retry_io("storage", "writing scene 2 image", down, FAST))
    assert str(raised.value) == (
        "storage unavailable: writing scene 2 image failed after 3 attempts (OSError: no route to host)"
    )
    assert len(calls) == 3 and isinstance(raised.value.__cause__, OSError)

    def bad_id() -> None:
        calls.append("bad")
        raise ValueError("invalid generation id")

    with pytest.raises(ValueError, match="invalid generation id"):
        asyncio.run(retry_io("db", "update of ../x", bad_id, FAST))
    assert calls.count("bad") == 1


def test_retry_io_waits_follow_the_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    waits: list[float] = []
    real_sleep = asyncio.sleep
    this_thread = threading.get_ident()

    async def no_sleep(seconds: float) -> None:
        # only this test's loop: a loop another test left running in a thread keeps its real sleep
        if threading.get_ident() != this_thread:
            await real_sleep(seconds)
            return
        waits.append(seconds)

    monkeypatch.setattr(asyncio, "sleep", no_sleep)
    policy = RetryPolicy(attempts=4, base_delay_s=1.0, max_delay_s=3.0, jitter=0.5)

    def down() -> None:
        raise OperationalError("SELECT 1", None, ConnectionRefusedError("refused"))

    with pytest.raises(DatabaseUnavailable, match="database unavailable: get failed after 4 attempts"):
        asyncio.run(retry_io("db", "get", down, policy, rng=random.Random(0)))
    assert len(waits) == 3
    for wait, nominal in zip(waits, (1.0, 2.0, 3.0), strict=True):
        assert nominal * 0.5 <= wait <= nominal


# -- the fault injectors ------------------------------------------------------------------------


def test_fault_settings_wrap_only_what_they_name(env: tuple[Database, Storage]) -> None:
    db, storage = env
    assert with_faults(db, storage, FaultSettings()) == (db, storage)
    faults = AppArgs.model_validate({"faults": {"storage_write_failures": 2, "db_unavailable_s": 1.5}}).faults
    faulty_db, faulty_storage = with_faults(db, storage, faults)
    assert isinstance(faulty_db, FaultyDatabase) and isinstance(faulty_storage, FaultyStorage)
    assert faulty_db.engine is db.engine  # the event log shares the engine, unfaulted
    with pytest.raises(ValueError, match="Extra inputs"):
        AppArgs.model_validate({"faults": {"storage_failures": 1}})


def test_faulty_storage_fails_n_writes_after_m_and_passes_reads(env: tuple[Database, Storage]) -> None:
    _, storage = env
    faulty = FaultyStorage(storage, failures=2, after=1)
    faulty.write_scene_image("g1", 1, b"first")
    for _ in range(2):
        with pytest.raises(OSError, match="injected storage write failure"):
            faulty.write_variation("g1", 1, 1, b"x")
    faulty.write_variation("g1", 1, 1, b"third")
    assert faulty.read_scene_image("g1", 1) == b"first" and storage.read_variation("g1", 1, 1) == b"third"


# -- storage faults in a generation -------------------------------------------------------------


def test_transient_storage_failures_are_retried_and_the_generation_completes(
    env: tuple[Database, Storage], caplog: pytest.LogCaptureFixture
) -> None:
    db, storage = env
    gid = submit(db)
    faulty = FaultyStorage(storage, failures=2, after=WRITES_PER_SCENE)  # scene 2's first write fails twice
    with caplog.at_level(logging.WARNING):
        run(db, faulty, gid)
    record = db.get(gid)
    assert record.status == "completed" and record.scenes_done == 2 and record.error is None
    # a retry that succeeded changes nothing the user sees: no warning, counted in the timings
    assert record.warnings == []
    assert record.timings["io_retries"] == {"storage": 2}
    assert faulty.failed == 2
    assert sorted(files_of(storage, gid, 2)) == [
        "scene_1.png",
        "scene_1/00_original_prompt.txt",
        "scene_1/image_1.png",
        "scene_2.png",
        "scene_2/00_original_prompt.txt",
        "scene_2/image_1.png",
    ]
    retries = [r.getMessage() for r in caplog.records if "retrying in" in r.getMessage()]
    assert len(retries) == 2 and all(f"[generation {gid}]" in m for m in retries)
    assert "writing scene 2 trace 00_original_prompt.txt failed (attempt 1/3" in retries[0]


def test_a_storage_outage_past_the_retries_fails_with_a_clear_error_and_keeps_earlier_scenes(
    env: tuple[Database, Storage],
) -> None:
    db, storage = env
    gid = submit(db, num_scenes=3)
    # scene 2's trace and variation are written, then its kept image never is
    faulty = FaultyStorage(storage, failures=1000, after=WRITES_PER_SCENE + 2)
    ports = run(db, faulty, gid)
    record = db.get(gid)
    assert record.status == "failed" and record.stage == "failed"
    assert record.error == (
        "storage unavailable: writing scene 2 image failed after 3 attempts "
        "(OSError: injected storage write failure)"
    )
    assert record.scenes_done == 1 and [scene.index for scene in record.scenes] == [1]
    assert storage.read_scene_image(gid, 1)
    assert len(ports.generate_calls) == 2  # scene 3 never started
    assert record.timings["io_retries"] == {"storage": 2}


# -- DB faults in a generation ------------------------------------------------------------------


def test_a_brief_db_outage_is_ridden_out(env: tuple[Database, Storage]) -> None:
    db, storage = env
    gid = submit(db)
    faulty = FaultyDatabase(db, unavailable_s=1.0, after_updates=UPDATES_UNTIL_SCENE_1_COMMITTED)
    # 0.1 + 0.2 + 0.4 + 0.5 + ... s: about 2.7 s of retries cover the 1 s outage
    run(faulty, storage, gid, io_retry=RetryPolicy(attempts=8, base_delay_s=0.1, max_delay_s=0.5, jitter=0))
    record = db.get(gid)
    assert record.status == "completed" and record.scenes_done == 2 and record.warnings == []
    assert faulty.failed >= 2
    assert record.timings["io_retries"]["db"] == faulty.failed


def test_a_db_outage_past_the_retries_leaves_the_row_running_and_recovery_completes_it(
    env: tuple[Database, Storage], caplog: pytest.LogCaptureFixture
) -> None:
    db, storage = env
    gid = submit(db)
    # the outage starts just after scene 1 is committed and outlasts the 3 tries
    faulty = FaultyDatabase(db, unavailable_s=600, after_updates=UPDATES_UNTIL_SCENE_1_COMMITTED)
    with caplog.at_level(logging.ERROR):
        first_ports = run(faulty, storage, gid)
    assert any("recovery pass resumes it once the database is back" in r.getMessage() for r in caplog.records)
    stopped = db.get(gid)
    assert stopped.status == "running" and stopped.scenes_done == 1 and stopped.error is None
    assert len(first_ports.generate_calls) == 1
    scene_1_png = storage.read_scene_image(gid, 1)
    scene_1_timing = stopped.timings["scene_1"]

    # the DB is back; another replica's recovery pass takes the lapsed lease and finishes the job
    asyncio.run(asyncio.sleep(0.3))
    ports = recover(db, storage, lease_timeout_s=0.2)
    record = db.get(gid)
    assert record.status == "completed" and record.scenes_done == 2 and record.owner == "replica-b"
    assert [call.prompt.endswith("scene 2") for call in ports.generate_calls] == [True]  # scene 1 not redone
    assert ports.generate_calls[0].reference_png == scene_1_png
    assert storage.read_scene_image(gid, 1) == scene_1_png
    assert record.timings["scene_1"] == scene_1_timing


def test_when_even_the_failure_cannot_be_recorded_the_row_stays_running_for_recovery(
    env: tuple[Database, Storage],
) -> None:
    db, storage = env
    gid = submit(db)
    # the store fails scene 2's kept image for good, then the DB is down when "failed" is written
    faulty_storage = FaultyStorage(storage, failures=1000, after=WRITES_PER_SCENE + 2)
    faulty_db = FaultyDatabase(db, unavailable_s=600, after_updates=UPDATES_UNTIL_SCENE_1_COMMITTED + 1)
    run(faulty_db, faulty_storage, gid)
    assert faulty_db.failed == FAST.attempts  # the "failed" update, tried 3 times
    stopped = db.get(gid)
    assert stopped.status == "running" and stopped.scenes_done == 1

    asyncio.run(asyncio.sleep(0.3))
    recover(db, storage, lease_timeout_s=0.2)  # both are back
    record = db.get(gid)
    assert record.status == "completed" and record.scenes_done == 2 and record.error is None


# -- generator out of memory, as the Director sees it -------------------------------------------


def test_generator_out_of_memory_fails_the_generation_with_a_clear_error(
    env: tuple[Database, Storage],
) -> None:
    db, storage = env
    gid = submit(db)
    ports = FakePorts()

    async def out_of_memory(request: GenerationRequest) -> GenerationResult:
        raise GeneratorOutOfMemory("out of memory even with one 64x64 image per pipeline call (2 steps)")

    ports.generate = out_of_memory  # type: ignore[method-assign]
    run(db, storage, gid, ports)
    record = db.get(gid)
    assert record.status == "failed" and record.scenes_done == 0
    assert record.error == (
        "generator out of memory at scene 1 even with one image per call; "
        "lower the resolution or the number of variations"
    )


def test_a_split_generation_is_recorded_in_the_scene_timings(env: tuple[Database, Storage]) -> None:
    db, storage = env
    gid = submit(db, num_scenes=1)
    ports = FakePorts()
    original = ports.generate

    async def split(request: GenerationRequest) -> GenerationResult:
        result = await original(request)
        return result.model_copy(update={"pipeline_calls": 2})

    ports.generate = split  # type: ignore[method-assign]
    run(db, storage, gid, ports)
    record = db.get(gid)
    assert record.status == "completed" and record.warnings == []
    assert record.timings["scene_1"]["generate_calls"] == 2
