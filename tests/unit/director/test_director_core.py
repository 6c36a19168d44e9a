"""The Director core with fake model ports: modes, chaining, degradation, resume, cancel."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from fakes import FakePorts, fake_png, slow_ports
from scenechain.protocol import GenerateRequest

from director.core import DirectorCore, DirectorSettings
from store.db import Database
from store.storage import Storage


@pytest.fixture
def env(tmp_path: Path) -> tuple[Database, Storage]:
    db = Database(f"sqlite:///{tmp_path / 'db.sqlite'}")
    yield db, Storage(str(tmp_path / "out"))
    db.close()


def submit(db: Database, request: GenerateRequest, gid: str = "g1", seed: int = 100) -> str:
    db.create_generation(
        generation_id=gid,
        user="alice",
        request=request.model_dump(mode="json"),
        seed=request.seed if request.seed is not None else seed,
        scenes_total=request.num_scenes,
    )
    return gid


def run(db: Database, storage: Storage, ports: FakePorts, gid: str, **settings: object) -> None:
    async def main() -> None:
        core = DirectorCore(db, storage, ports, DirectorSettings(**settings))
        assert core.start(gid)
        await core.wait(gid)

    asyncio.run(main())


def test_simple_mode_one_image_per_scene_and_chain(env: tuple[Database, Storage]) -> None:
    db, storage = env
    gid = submit(db, GenerateRequest(prompt="a coffee ad", num_scenes=3, seed=5))
    ports = FakePorts()
    run(db, storage, ports, gid)
    record = db.get(gid)
    assert record.status == "completed" and record.scenes_done == 3 and record.warnings == []
    assert [len(call.seeds) for call in ports.generate_calls] == [1, 1, 1]
    assert ports.enhance_calls == [] and ports.score_calls == []
    # the chain: scene n>1 uses scene n-1's kept image as reference
    assert ports.generate_calls[0].reference_png is None
    for n in (2, 3):
        assert ports.generate_calls[n - 1].reference_png == storage.read_scene_image(gid, n - 1)
    assert [scene.reference_from for scene in record.scenes] == [None, 1, 2]
    assert record.image_quality_scores == {}
    assert storage.list_trace_files(gid, 1) == ["00_original_prompt.txt", "image_1.png"]
    assert record.storyboard_plan.advanced_image_settings.num_variations == 4


def test_advanced_mode_variations_scores_best_and_traces(env: tuple[Database, Storage]) -> None:
    db, storage = env
    request = GenerateRequest(
        prompt="a sneaker ad",
        num_scenes=2,
        seed=40,
        use_advanced_image_generation=True,
        advanced_image_num_variations=3,
        advanced_image_quality_threshold=99,
    )
    gid = submit(db, request)
    # variation 2 wins on every scorer
    ports = FakePorts(
        scores={name: [20.0, 80.0, 50.0] for name in ("pickscore", "clipscore", "vqa", "aesthetic")}
    )
    run(db, storage, ports, gid)
    record = db.get(gid)
    assert record.status == "completed"
    assert [call.seeds for call in ports.generate_calls] == [[40, 41, 42], [40, 41, 42]]
    quality = record.image_quality_scores["scene_1"]
    assert quality.best_index == 2 and quality.best_overall == pytest.approx(80.0)
    assert quality.below_threshold is True and len(quality.per_image) == 3
    assert sorted(quality.scorers_used) == ["aesthetic", "clipscore", "pickscore", "vqa"]
    assert storage.read_scene_image(gid, 1) == storage.read_variation(gid, 1, 2)
    assert ports.generate_calls[1].reference_png == storage.read_variation(gid, 1, 2)
    assert any("below the quality threshold 99" in w for w in record.warnings)
    assert record.scenes[0].enhanced_prompt.endswith("cinematic lighting")
    files = storage.list_trace_files(gid, 2)
    assert files == sorted(
        [
            "00_original_prompt.txt",
            "01_agent1_iteration_1.txt",
            "02_agent2_iteration_1.txt",
            "final_enhanced_prompt.txt",
            "prompt_trace_summary.json",
            "image_1.png",
            "image_2.png",
            "image_3.png",
            "quality_scores.json",
        ]
    )
    trace = json.loads(storage.read_trace_file(gid, 2, "quality_scores.json"))
    assert trace["seeds"] == [40, 41, 42] and trace["best_index"] == 2


def test_consistency_weight_zero_sends_no_reference_and_records_none(env: tuple[Database, Storage]) -> None:
    db, storage = env
    request = GenerateRequest(
        prompt="a sneaker ad",
        num_scenes=2,
        seed=40,
        use_advanced_image_generation=True,
        advanced_image_num_variations=3,
    )
    ports = FakePorts(
        scores={name: [20.0, 80.0, 50.0] for name in ("pickscore", "clipscore", "vqa", "aesthetic")}
    )
    gid = submit(db, request)
    run(db, storage, ports, gid)
    record = db.get(gid)
    assert ports.references == []
    assert [s.consistency for s in record.image_quality_scores["scene_2"].per_image] == [None, None, None]
    assert record.image_quality_scores["scene_2"].best_index == 2  # today's behaviour


def test_consistency_weight_pulls_the_pick_towards_the_previous_scene(env: tuple[Database, Storage]) -> None:
    db, storage = env
    request = GenerateRequest(
        prompt="a sneaker ad",
        num_scenes=2,
        seed=40,
        use_advanced_image_generation=True,
        advanced_image_num_variations=3,
        advanced_image_consistency_weight=0.5,
    )
    # the scorers prefer variation 2 (80 vs 20/50); variation 1 is the most like the previous scene
    ports = FakePorts(
        scores={name: [20.0, 80.0, 50.0] for name in ("pickscore", "clipscore", "vqa", "aesthetic")},
        consistency=[100.0, 10.0, 40.0],
    )
    gid = submit(db, request)
    run(db, storage, ports, gid)
    record = db.get(gid)
    # scene 1 has no previous scene: no reference, no consistency, the scorers' pick
    first = record.image_quality_scores["scene_1"]
    assert first.best_index == 2 and [s.consistency for s in first.per_image] == [None, None, None]
    # scene 2: only clipscore gets scene 1's kept image; overall = 0.5 * scorers + 0.5 * consistency
    assert ports.references == [("clipscore", storage.read_scene_image(gid, 1))]
    second = record.image_quality_scores["scene_2"]
    assert [s.consistency for s in second.per_image] == [100.0, 10.0, 40.0]
    assert [s.overall for s in second.per_image] == pytest.approx([60.0, 45.0, 45.0])
    assert second.best_index == 1 and record.scenes[1].best_index == 1
    trace = json.loads(storage.read_trace_file(gid, 2, "quality_scores.json"))
    assert trace["consistency_weight"] == 0.5


def test_consistency_is_skipped_with_a_warning_when_clipscore_fails(env: tuple[Database, Storage]) -> None:
    db, storage = env
    request = GenerateRequest(
        prompt="a sneaker ad",
        num_scenes=2,
        seed=40,
        use_advanced_image_generation=True,
        advanced_image_num_variations=2,
        advanced_image_consistency_weight=0.5,
    )
    gid = submit(db, request)
    run(db, storage, FakePorts(fail_scorers=("clipscore",)), gid)
    record = db.get(gid)
    assert record.status == "completed"
    assert [s.consistency for s in record.image_quality_scores["scene_2"].per_image] == [None, None]
    assert any("consistency with scene 1 not computed" in w for w in record.warnings)


def test_one_scorer_failing_reweights_from_the_rest(env: tuple[Database, Storage]) -> None:
    db, storage = env
    request = GenerateRequest(
        prompt="x",
        num_scenes=1,
        seed=1,
        use_advanced_image_generation=True,
        advanced_image_num_variations=2,
        advanced_image_quality_threshold=0,
    )
    gid = submit(db, request)
    run(db, storage, FakePorts(fail_scorers=("pickscore",)), gid)
    record = db.get(gid)
    quality = record.image_quality_scores["scene_1"]
    assert record.status == "completed"
    assert "pickscore" not in quality.scorers_used and len(quality.scorers_used) == 3
    assert "pickscore" in quality.scorers_failed
    assert all(image.pickscore is None for image in quality.per_image)
    assert any("scorer pickscore failed" in w and "reweighted" in w for w in record.warnings)


def test_all_scorers_failing_keeps_enhanced_prompt_and_single_image(env: tuple[Database, Storage]) -> None:
    db, storage = env
    request = GenerateRequest(
        prompt="x", num_scenes=2, seed=1, use_advanced_image_generation=True, advanced_image_num_variations=3
    )
    gid = submit(db, request)
    ports = FakePorts(fail_scorers=("pickscore", "clipscore", "vqa", "aesthetic"))
    run(db, storage, ports, gid)
    record = db.get(gid)
    assert record.status == "completed"
    assert [scene.best_index for scene in record.scenes] == [1, 1]
    # once scoring is gone, later scenes generate one image from the enhanced prompt
    assert [len(call.seeds) for call in ports.generate_calls] == [3, 1]
    assert ports.generate_calls[1].prompt.endswith("cinematic lighting")
    assert any("all scorers failed" in w for w in record.warnings)
    assert record.image_quality_scores["scene_1"].best_overall is None


def test_llm_failing_uses_original_prompt_with_warning(env: tuple[Database, Storage]) -> None:
    db, storage = env
    request = GenerateRequest(
        prompt="tea ad",
        num_scenes=1,
        seed=3,
        use_advanced_image_generation=True,
        advanced_image_num_variations=2,
        advanced_image_quality_threshold=0,
    )
    gid = submit(db, request)
    ports = FakePorts(fail_llm=True, fail_plan=True)
    run(db, storage, ports, gid)
    record = db.get(gid)
    assert record.status == "completed"
    # the planner's own fallback plan (the brief spread over the scenes), enhancement degraded to it
    assert record.storyboard_plan.scenes[0].prompt == "tea ad"
    assert record.storyboard_plan.degraded
    assert record.scenes[0].enhanced_prompt == "tea ad"
    assert ports.generate_calls[0].prompt == "tea ad"
    assert any(w.startswith("planner:") for w in record.warnings)
    assert any("prompt enhancement degraded" in w for w in record.warnings)


def test_generator_failure_fails_the_generation_with_error(env: tuple[Database, Storage]) -> None:
    db, storage = env
    gid = submit(db, GenerateRequest(prompt="x", num_scenes=1))
    ports = FakePorts()

    async def broken(request: object) -> None:
        raise RuntimeError("injected generator fault: boom")

    ports.generate = broken  # type: ignore[method-assign]
    run(db, storage, ports, gid)
    record = db.get(gid)
    assert record.status == "failed" and "boom" in (record.error or "")


def test_resume_skips_committed_scenes_and_chains_from_the_last(env: tuple[Database, Storage]) -> None:
    db, storage = env
    gid = submit(db, GenerateRequest(prompt="car ad", num_scenes=2, seed=9))
    kept = fake_png("scene-1-kept")
    storage.write_scene_image(gid, 1, kept)
    db.update(
        gid,
        status="running",
        storyboard_plan={
            "scenes": [
                {"index": 1, "prompt": "p1", "shot_notes": ""},
                {"index": 2, "prompt": "p2", "shot_notes": ""},
            ],
            "advanced_image_generation_used": False,
            "advanced_image_settings": {
                "quality_threshold": 30,
                "num_variations": 4,
                "max_enhancement_iterations": 4,
            },
        },
        scenes=[
            {"index": 1, "prompt": "p1", "enhanced_prompt": None, "image_url": "u", "reference_from": None}
        ],
        scenes_done=1,
        scenes_total=2,
    )
    ports = FakePorts()

    async def main() -> list[str]:
        core = DirectorCore(db, storage, ports)
        started = await core.recover()
        for gid_ in started:
            await core.wait(gid_)
        return started

    assert asyncio.run(main()) == [gid]
    record = db.get(gid)
    assert record.status == "completed" and record.scenes_done == 2
    assert len(ports.generate_calls) == 1
    assert ports.generate_calls[0].prompt == "p2" and ports.generate_calls[0].reference_png == kept


def test_cancel_marks_cancelled(env: tuple[Database, Storage]) -> None:
    db, storage = env
    gid = submit(db, GenerateRequest(prompt="x", num_scenes=3))
    ports = FakePorts()
    original = ports.generate

    async def slow(request: object) -> object:
        await asyncio.sleep(5)
        return await original(request)

    ports.generate = slow  # type: ignore[method-assign]

    async def main() -> None:
        core = DirectorCore(db, storage, ports)
        core.start(gid)
        await asyncio.sleep(0.3)
        assert await core.cancel(gid)

    asyncio.run(main())
    assert db.get(gid).status == "cancelled"


async def until_claimed(db: Database, gid: str, timeout_s: float = 10.0) -> None:
    """Return as soon as some Director replica holds the generation's lease."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while db.get(gid).owner is None and loop.time() < deadline:
        await asyncio.sleep(0.01)


def test_a_live_lease_keeps_other_replicas_off_and_a_stale_one_is_taken_over(
    env: tuple[Database, Storage],
) -> None:
    db, storage = env
    gid = submit(db, GenerateRequest(prompt="x", num_scenes=2))
    settings = DirectorSettings(lease_timeout_s=0.5)

    async def main() -> None:
        first = DirectorCore(db, storage, slow_ports(0.3), settings, owner="replica-a")
        second_ports = FakePorts()
        second = DirectorCore(db, storage, second_ports, settings, owner="replica-b")
        first.start(gid)
        await until_claimed(db, gid)  # (a loaded machine may take longer than a fixed sleep)
        assert db.get(gid).owner == "replica-a"
        for started in await second.recover():  # the lease is live: replica-b must not run it
            await second.wait(started)
        assert second_ports.generate_calls == []
        await first.shutdown()  # replica-a dies mid-run (nothing marked)
        assert db.get(gid).status == "running"
        await asyncio.sleep(0.6)  # its lease goes stale
        for started in await second.recover():
            await second.wait(started)
        assert db.get(gid).owner == "replica-b"

    asyncio.run(main())
    record = db.get(gid)
    assert record.status == "completed" and record.scenes_done == 2


def test_cancel_through_another_replica_stops_the_owner(env: tuple[Database, Storage]) -> None:
    db, storage = env
    gid = submit(db, GenerateRequest(prompt="x", num_scenes=3))

    async def main() -> None:
        owner = DirectorCore(db, storage, slow_ports(0.3), owner="replica-a")
        other = DirectorCore(db, storage, FakePorts(), owner="replica-b")
        owner.start(gid)
        await until_claimed(db, gid)
        assert await other.cancel(gid)
        await owner.wait(gid)

    asyncio.run(main())
    record = db.get(gid)
    assert record.status == "cancelled" and record.stage == "cancelled" and record.scenes_done < 3


class WarningPorts(FakePorts):
    """FakePorts whose generator results carry one warning (as the real one does for negative prompts)."""

    def __init__(self, warning: str) -> None:
        super().__init__()
        self.warning = warning

    async def generate(self, request):  # type: ignore[no-untyped-def]
        result = await super().generate(request)
        return result.model_copy(update={"warnings": [self.warning]})


def test_a_generator_warning_reaches_the_status_warnings(env: tuple[Database, Storage]) -> None:
    """What the generator could not honour (a negative prompt Flux cannot take) is said, per scene."""

    db, storage = env
    gid = submit(db, GenerateRequest(prompt="a tea ad", num_scenes=2, seed=1, negative_prompt="blur"))
    run(db, storage, WarningPorts("negative prompt not supported by this model"), gid)
    record = db.get(gid)
    assert record.status == "completed"
    assert [w for w in record.warnings if "negative prompt" in w] == [
        "scene 1: negative prompt not supported by this model",
        "scene 2: negative prompt not supported by this model",
    ]


def test_warnings_about_the_enhancers_own_negative_prompt_stay_in_the_log(
    env: tuple[Database, Storage],
) -> None:
    """The user sent no negative prompt: the generator ignoring the enhancer's proposal is no news."""

    db, storage = env
    gid = submit(db, GenerateRequest(prompt="a tea ad", num_scenes=1, seed=1))
    run(db, storage, WarningPorts("negative prompt has no effect: guidance 1"), gid)
    record = db.get(gid)
    assert record.status == "completed"
    assert not [w for w in record.warnings if "negative prompt" in w]
