"""The cluster-twin benchmark's pieces that need no Ray: the naive pipeline's cores, the app args
(the levers), and the queueing/compute split per stage."""

from __future__ import annotations

import pytest

from agents.costmodel import CostModelChatClient
from bench.cluster_twin import CostModelNaivePipeline, _stage_split, twin_app_args
from generator.costmodel import CostModelGenerator
from scorers.costmodel import CostModelScorer


def test_naive_pipeline_runs_on_cost_model_cores() -> None:
    pipeline = CostModelNaivePipeline()
    assert isinstance(pipeline.generator, CostModelGenerator)
    assert isinstance(pipeline.llm, CostModelChatClient)
    assert set(pipeline.scorers) == {"pickscore", "clipscore", "vqa", "aesthetic"}
    assert all(isinstance(s, CostModelScorer) for s in pipeline.scorers.values())


def test_app_args_carry_the_levers() -> None:
    args = twin_app_args(
        "/tmp/out", max_generations=128, max_replicas=4, per_node_load=32, jwt_secret="x" * 48
    )
    assert args.profile == "cluster-twin"
    assert args.generator_batch.unit == "images" and args.generator_batch.max_batch_size == 16
    assert args.scorer_batch.max_batch_size == 64 and args.scorer_batch.unit == "images"
    assert args.generator.autoscaling_config["max_replicas"] == 4
    assert args.generator.autoscaling_config["target_ongoing_requests"] == 32
    assert args.max_concurrent_generations == 128
    # the LLM may hold every generation's call at once (continuous batching), not Serve's default 16
    assert args.llm.max_ongoing_requests >= 128


def test_stage_split_separates_queueing_from_compute() -> None:
    records = [
        {"in_replica_s": 1.0, "compute_s": 0.25, "device_wait_s": 0.5, "batch": 8},
        {"in_replica_s": 3.0, "compute_s": 0.25, "device_wait_s": 2.0, "batch": 8},
    ]
    split = _stage_split({"Generator": records, "LLM": []})
    assert set(split) == {"Generator"}
    generator = split["Generator"]
    assert generator["requests"] == 2
    assert generator["compute_p50_s"] == pytest.approx(0.25)
    assert generator["queue_p50_s"] == pytest.approx((0.75 + 2.75) / 2)
    assert generator["queue_share"] == pytest.approx(3.5 / 4.0)
    assert generator["in_replica_sum_s"] == pytest.approx(4.0)


def test_dispatch_batcher_fills_the_next_batch_with_everything_waiting() -> None:
    import asyncio  # noqa: PLC0415

    from deployments.batcher import DispatchBatcher  # noqa: PLC0415

    async def scenario() -> tuple[list[int], list[str]]:
        release = asyncio.Event()
        started = asyncio.Event()

        async def run(items: list[str]) -> list[str]:
            started.set()
            await release.wait()  # the "GPU" is busy until released
            return [item.upper() for item in items]

        batcher: DispatchBatcher[str, str] = DispatchBatcher(run, size=lambda _: 4, budget=16, wait_s=0)
        first = asyncio.create_task(batcher.submit("a"))
        await started.wait()
        later = [asyncio.create_task(batcher.submit(name)) for name in "bcdefg"]  # arrive while busy
        await asyncio.sleep(0)
        release.set()
        outcomes = await asyncio.gather(first, *later)
        return batcher.batch_sizes, outcomes

    sizes, outcomes = asyncio.run(scenario())
    # @serve.batch would have formed small batches on arrival; here: 1, then 4 (16 images), then 2
    assert sizes == [1, 4, 2]
    assert outcomes == list("ABCDEFG")
