"""Issue #8 on a real local Ray Serve app: a bounded loopback burst, and what became of every request.

20 clients (one user each) send 5 simple 1-scene generations each, one after another (100 in all;
the benchmark ``scenechain bench --only load-burst`` sends 200), against configs/tiny.yaml with
``max_queued_generations=12`` and, where the app has them, 1 active generation per user: the queue
fills with the first requests (503 for the rest), and a client with a generation in flight is
refused by its quota (429). Fewer accepted generations than the benchmark's keeps the drain short.
The test owns its Ray cluster (started and stopped by ``bench.load_report.run_load_burst``).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]

REPO = Path(__file__).resolve().parents[2]
CLIENTS, PER_CLIENT, QUEUE_LIMIT, MAX_ACTIVE = 20, 5, 12, 1


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory):  # -> bench.load_report.LoadReport | None
    import ray

    if ray.is_initialized():  # another module's driver lives in this process: run this module alone
        yield None
        return
    from bench.load_report import run_load_burst

    yield run_load_burst(
        clients=CLIENTS,
        per_client=PER_CLIENT,
        queue_limit=QUEUE_LIMIT,
        max_active_per_user=MAX_ACTIVE,
        timeout_s=30,
        drain_timeout_s=300,
        output_dir=str(tmp_path_factory.mktemp("load-burst")),
    )


def test_in_a_fresh_interpreter_when_ray_is_taken(report) -> None:
    if report is not None:
        pytest.skip("ran in this process")
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", __file__, "-q", "-p", "no:cacheprovider"],
        cwd=REPO,
        timeout=580,
        check=False,
        capture_output=True,
        text=True,
    )
    assert completed.returncode == 0, completed.stdout[-4000:] + completed.stderr[-2000:]


def test_every_request_got_exactly_one_allowed_answer(report) -> None:
    if report is None:
        pytest.skip("ran in a fresh interpreter")
    counts = report.counts
    summary = report.burst.summary()
    assert counts.requests == CLIENTS * PER_CLIENT, summary
    assert counts.transport_errors == 0, summary  # no timeouts, no resets: nothing hung
    assert counts.other == {}, summary  # only 202 / 429 / 503, no 5xx crash
    assert counts.accepted + counts.quota + counts.overloaded == CLIENTS * PER_CLIENT, summary
    assert counts.accepted >= QUEUE_LIMIT, summary  # the queue was filled, so the limits were exercised
    assert counts.overloaded > 0, summary
    if report.quotas:  # per-user quotas exist in this build: a client's second request met its quota
        assert counts.quota > 0, summary


def test_every_rejection_says_when_to_retry(report) -> None:
    if report is None:
        pytest.skip("ran in a fresh interpreter")
    assert report.malformed == []


def test_every_accepted_generation_completes(report) -> None:
    if report is None:
        pytest.skip("ran in a fresh interpreter")
    assert len(report.final_statuses) == report.counts.accepted
    assert report.finals == {
        "completed": report.counts.accepted,
        "failed": 0,
        "cancelled": 0,
        "unfinished": 0,
    }, report.final_statuses


def test_the_service_is_healthy_afterwards(report) -> None:
    if report is None:
        pytest.skip("ran in a fresh interpreter")
    assert report.healthz_status == 200
    assert report.fresh_generation_status == "completed"
