"""The repository on a real PostgreSQL server (Debian's binaries, a temp data dir, loopback only).

SQLite stays the default; this proves the same migrations and queries work on PostgreSQL, which a
multi-node deployment needs (every Director and Ingress replica shares one database).
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import inspect, text

from store.db import Database, GenerationNotFound, utcnow
from store.records import (
    AdvancedImageSettings,
    ImageScores,
    PlannedScene,
    SceneQualityRecord,
    SceneRecord,
    StoryboardPlan,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    from infra import ServiceUnavailable
    from infra.postgres import postgres_server

    try:
        with postgres_server() as server:
            yield server.url
    except ServiceUnavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture
def db(postgres_url: str) -> Iterator[Database]:
    database = Database(postgres_url)
    with database.engine.begin() as connection:  # each test starts from empty tables
        connection.execute(text("TRUNCATE generations, users CASCADE"))
    yield database
    database.close()


def create(db: Database, generation_id: str, user: str = "alice", scenes: int = 2) -> None:
    db.create_generation(
        generation_id=generation_id,
        user=user,
        request={"prompt": f"an ad for {generation_id}", "use_advanced_image_generation": True},
        seed=7,
        scenes_total=scenes,
    )


def test_migrations_create_the_schema_and_are_idempotent(postgres_url: str) -> None:
    first = Database(postgres_url)
    second = Database(postgres_url)  # a second replica starting: upgrade head is a no-op
    try:
        tables = set(inspect(first.engine).get_table_names())
        assert {"users", "generations", "alembic_version"} <= tables
        with first.engine.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM alembic_version")).scalar() == 1
        assert first.engine.dialect.name == "postgresql"
    finally:
        first.close()
        second.close()


def test_a_generation_round_trips_with_json_columns_and_utc_times(db: Database) -> None:
    create(db, "g1")
    record = db.get("g1", user="alice")
    assert record.status == "queued" and record.advanced is True and record.scenes_total == 2
    assert record.created_at.tzinfo is not None
    plan = StoryboardPlan(
        scenes=[PlannedScene(index=1, prompt="sunrise")],
        advanced_image_generation_used=True,
        advanced_image_settings=AdvancedImageSettings(
            quality_threshold=30.0, num_variations=2, max_enhancement_iterations=1
        ),
    )
    scene = SceneRecord(
        index=1,
        prompt="sunrise",
        enhanced_prompt=None,
        image_url="/x",
        reference_from=None,
        seeds=[1, 2],
        num_variations=2,
        best_index=2,
        mode="text2img",
    )
    quality = SceneQualityRecord(
        best_index=2,
        best_overall=71.5,
        below_threshold=False,
        scorers_used=["pickscore"],
        seeds=[1, 2],
        per_image=[ImageScores(pickscore=60.0, overall=60.0), ImageScores(pickscore=71.5, overall=71.5)],
    )
    db.update(
        "g1",
        status="running",
        stage="scene 1: generating",
        storyboard_plan=plan,
        scenes=[scene],
        image_quality_scores={"scene_1": quality},
        warnings=["vqa unavailable"],
        scenes_done=1,
    )
    record = db.get("g1")
    assert record.storyboard_plan == plan and record.scenes == [scene]
    assert record.image_quality_scores == {"scene_1": quality}
    assert record.warnings == ["vqa unavailable"] and record.scenes_done == 1
    assert record.updated_at >= record.created_at


def test_ownership_paging_and_recovery_queries(db: Database) -> None:
    for n in range(5):
        create(db, f"a{n}", user="alice")
    create(db, "b0", user="bob")
    with pytest.raises(GenerationNotFound):
        db.get("b0", user="alice")
    page, total = db.list_for_user("alice", limit=2, offset=0)
    assert total == 5 and [r.id for r in page] == ["a4", "a3"]  # newest first
    page, _ = db.list_for_user("alice", limit=2, offset=4)
    assert [r.id for r in page] == ["a0"]
    db.update("a0", status="completed", finished_at=utcnow())
    db.update("a1", status="running")
    unfinished = [r.id for r in db.list_unfinished()]
    assert "a0" not in unfinished and unfinished[0] == "a1" and len(unfinished) == 5
    assert [r.id for r in db.list_finished_before(utcnow() + timedelta(seconds=1))] == ["a0"]
    db.delete("a0")
    with pytest.raises(GenerationNotFound):
        db.get("a0")


def test_two_replicas_see_each_others_commits(postgres_url: str, db: Database) -> None:
    other = Database(postgres_url, migrate=False)  # e.g. the Director on another node
    try:
        create(db, "shared")
        other.update("shared", status="completed", scenes_done=2, finished_at=utcnow())
        record = db.get("shared")
        assert record.status == "completed" and record.scenes_done == 2
        assert record.finished_at is not None and record.finished_at.tzinfo is not None
    finally:
        other.close()


def test_unknown_columns_are_refused(db: Database) -> None:
    create(db, "g2")
    with pytest.raises(ValueError, match="cannot update"):
        db.update("g2", prompt="rewritten")


def test_exactly_one_director_replica_wins_a_concurrent_claim(postgres_url: str, db: Database) -> None:
    create(db, "contested")
    replicas = [Database(postgres_url, migrate=False) for _ in range(4)]
    try:
        stale_before = utcnow() - timedelta(minutes=5)
        with ThreadPoolExecutor(max_workers=4) as pool:
            wins = list(
                pool.map(
                    lambda pair: pair[1].claim("contested", f"director-{pair[0]}", stale_before=stale_before),
                    enumerate(replicas),
                )
            )
        assert sum(wins) == 1, wins
        record = db.get("contested")
        assert record.status == "running" and record.owner == f"director-{wins.index(True)}"
        # a live lease is not taken over; a silent owner's is (its heartbeat is older than the cutoff)
        loser = replicas[(wins.index(True) + 1) % 4]
        assert not loser.claim("contested", "director-late", stale_before=stale_before)
        assert loser.claim("contested", "director-late", stale_before=utcnow() + timedelta(seconds=1))
        assert db.get("contested").owner == "director-late"
    finally:
        for replica in replicas:
            replica.close()
