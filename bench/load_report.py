"""Issue #8: a bounded loopback burst against the tiny profile, and what became of every request.

``clients`` concurrent clients (one user and token each) send ``per_client`` simple 1-scene
generations each, one after another: at most ``clients`` requests in flight, one deadline per
request, no retries (``bench.load.client_burst``).
The app runs the shipped ``configs/tiny.yaml`` with ``max_queued_generations`` 30 (503 when full)
and, where ``AppArgs`` has them, 2 active generations per user (429): 20 users x 2 > 30, so both
limits bind. Then every accepted generation is
awaited to a finished status, and the service must still answer ``/healthz`` and run a new
generation. Claims: every accepted request completes, every rejected one got 503 or 429, the
counts add up exactly, the service stays healthy.

    python -m bench.load_report              # 200 requests from 20 clients, JSON + PNG in bench/results
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from scenechain.protocol import FINISHED_STATUSES

from bench.common import (
    BenchResult,
    bench_jwt_secret,
    local_serve_app,
    machine_info,
    percentile,
    tiny_config_args,
    write_result,
)
from bench.load import Answer, BurstResult, run_client_burst

BRIEF = "A 15-second ad for a solar bike light"
FINISHED = FINISHED_STATUSES  # the protocol's terminal statuses
ACCEPTED, QUOTA, OVERLOADED = 202, 429, 503


# -- pure accounting (unit-tested) ---------------------------------------------------------------


@dataclass
class BurstCounts:
    """What came back from a burst, by class of answer."""

    requests: int
    accepted: int = 0
    quota: int = 0
    overloaded: int = 0
    other: dict[str, int] = field(default_factory=dict)  # status code -> count, anything else
    transport_errors: int = 0  # no HTTP answer at all (timeout, reset)

    @property
    def answered(self) -> int:
        """Every answer counted once, whatever its class."""
        return self.accepted + self.quota + self.overloaded + sum(self.other.values()) + self.transport_errors

    @property
    def adds_up(self) -> bool:
        """Each request has exactly one answer and only 202/429/503 came back."""
        return self.answered == self.requests and not self.other and self.transport_errors == 0


def count_answers(answers: Iterable[Answer]) -> BurstCounts:
    """Classify a burst's answers: 202 accepted, 429 quota, 503 overloaded, other codes, no answer."""
    answers = list(answers)
    counts = BurstCounts(requests=len(answers))
    other: Counter[str] = Counter()
    for answer in answers:
        if answer.status is None:
            counts.transport_errors += 1
        elif answer.status == ACCEPTED:
            counts.accepted += 1
        elif answer.status == QUOTA:
            counts.quota += 1
        elif answer.status == OVERLOADED:
            counts.overloaded += 1
        else:
            other[str(answer.status)] += 1
    counts.other = dict(sorted(other.items()))
    return counts


def malformed_rejections(answers: Iterable[Answer]) -> list[str]:
    """Why each 429/503 answer falls short of the contract (Retry-After + the JSON error), if it does."""
    expected_error = {QUOTA: "quota_exceeded", OVERLOADED: "overloaded"}
    problems = []
    for answer in answers:
        if answer.status not in expected_error:
            continue
        if answer.retry_after is None or not answer.retry_after.isdigit() or int(answer.retry_after) < 1:
            problems.append(
                f"request {answer.index}: {answer.status} with Retry-After {answer.retry_after!r}"
            )
        error = answer.body.get("error") if isinstance(answer.body, dict) else None
        if error != expected_error[answer.status]:
            problems.append(f"request {answer.index}: {answer.status} with error {error!r}")
    return problems


def final_tally(final_statuses: dict[str, str]) -> dict[str, int]:
    """How many accepted generations ended in each status ('unfinished': still running at the deadline)."""
    tally = Counter(final_statuses.values())
    return {status: tally.get(status, 0) for status in (*FINISHED, "unfinished")}


def latency_ms(answers: Iterable[Answer], status: int) -> list[float]:
    """Submit latencies in ms of the answers with ``status``."""
    return [answer.seconds * 1000 for answer in answers if answer.status == status]


def client_of(index: int, per_client: int) -> int:
    """Request ``index`` belongs to client ``index // per_client`` (as ``client_burst`` numbers them)."""
    return index // per_client


def user_name(client: int) -> str:
    """The user of client ``client`` (one token per client)."""
    return f"load-client-{client:02d}"


# -- the run -------------------------------------------------------------------------------------


@dataclass
class LoadReport:
    """Everything one burst run measured (the integration test asserts on it, the benchmark reports it)."""

    clients: int
    per_client: int
    queue_limit: int
    quotas: dict[str, Any] | None
    burst: BurstResult
    counts: BurstCounts
    final_statuses: dict[str, str]
    drain_s: float
    healthz_status: int | None
    fresh_generation_status: str | None
    malformed: list[str]

    @property
    def requests(self) -> int:
        return self.clients * self.per_client

    @property
    def finals(self) -> dict[str, int]:
        return final_tally(self.final_statuses)

    def checks(self) -> dict[str, bool]:
        """The issue's claims, one by one."""
        finals = self.finals
        return {
            "counts_add_up": self.counts.adds_up and self.counts.requests == self.requests,
            "every_accepted_completed": finals["completed"] == self.counts.accepted,
            "rejections_well_formed": not self.malformed,
            "healthz_ok_after": self.healthz_status == 200,
            "fresh_generation_completed": self.fresh_generation_status == "completed",
        }

    @property
    def ok(self) -> bool:
        return all(self.checks().values())


def _headers(jwt: Any, user: str) -> dict[str, str]:
    from api.auth import mint_token  # noqa: PLC0415

    return {"Authorization": f"Bearer {mint_token(jwt, user)}"}


def _wait_one(client: httpx.Client, generation_id: str, headers: dict[str, str], timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    while True:
        status = client.get(f"/api/status/{generation_id}", headers=headers).json()["status"]
        if status in FINISHED or time.monotonic() > deadline:
            return str(status)
        time.sleep(0.25)


def _drain(
    client: httpx.Client,
    owners: dict[str, str],
    headers: dict[str, dict[str, str]],
    timeout_s: float,
) -> dict[str, str]:
    """Final status of every accepted generation (``owners``: id -> user), polling each user's list."""
    final: dict[str, str] = {}
    pending_by_user: dict[str, set[str]] = {}
    for generation_id, user in owners.items():
        pending_by_user.setdefault(user, set()).add(generation_id)
    deadline = time.monotonic() + timeout_s
    while pending_by_user and time.monotonic() < deadline:
        for user in list(pending_by_user):
            page = client.get("/api/generations", params={"limit": 100}, headers=headers[user]).json()
            for item in page["items"]:
                if item["id"] in pending_by_user[user] and item["status"] in FINISHED:
                    final[item["id"]] = item["status"]
                    pending_by_user[user].discard(item["id"])
            if not pending_by_user[user]:
                del pending_by_user[user]
        if pending_by_user:
            time.sleep(0.5)
    for ids in pending_by_user.values():
        final.update(dict.fromkeys(ids, "unfinished"))
    return final


def run_load_burst_on(
    base_url: str,
    jwt: Any,
    *,
    clients: int,
    per_client: int,
    queue_limit: int,
    quotas: dict[str, Any] | None,
    timeout_s: float = 30.0,
    drain_timeout_s: float = 600.0,
) -> LoadReport:
    """The burst, the drain and the after-checks against a running app (HTTP only, no Ray here)."""
    users = [user_name(c) for c in range(clients)]
    headers = {user: _headers(jwt, user) for user in [*users, "load-warmup", "load-after"]}
    body = {"prompt": BRIEF, "num_scenes": 1}
    with httpx.Client(base_url=base_url, timeout=60) as client:
        # 1. warm-up: one generation end to end, so the burst meets loaded, exercised replicas
        warm = client.post("/api/generate", json={**body, "seed": 0}, headers=headers["load-warmup"])
        warm.raise_for_status()
        _wait_one(client, warm.json()["id"], headers["load-warmup"], timeout_s=300)

        # 2. the burst: each client sends its requests one after another, one deadline each, no retries
        burst = run_client_burst(
            f"{base_url}/api/generate",
            clients,
            per_client,
            json_body=lambda i: {**body, "seed": 1 + i},
            headers_for=lambda i: headers[users[client_of(i, per_client)]],
            timeout_s=timeout_s,
        )

        # 3. drain: every accepted generation to a finished status
        owners = {
            answer.body["id"]: users[client_of(answer.index, per_client)]
            for answer in burst.answers
            if answer.status == ACCEPTED
        }
        drain_started = time.perf_counter()
        final_statuses = _drain(client, owners, headers, drain_timeout_s)
        drain_s = time.perf_counter() - drain_started

        # 4. still healthy: liveness, and a new generation runs to the end
        healthz = client.get("/healthz")
        fresh = client.post("/api/generate", json={**body, "seed": 99_999}, headers=headers["load-after"])
        fresh_status = (
            _wait_one(client, fresh.json()["id"], headers["load-after"], timeout_s=300)
            if fresh.status_code == ACCEPTED
            else f"HTTP {fresh.status_code}"
        )
    return LoadReport(
        clients=clients,
        per_client=per_client,
        queue_limit=queue_limit,
        quotas=quotas,
        burst=burst,
        counts=count_answers(burst.answers),
        final_statuses=final_statuses,
        drain_s=drain_s,
        healthz_status=healthz.status_code,
        fresh_generation_status=fresh_status,
        malformed=malformed_rejections(burst.answers),
    )


def burst_app_args(output_dir: str, queue_limit: int, max_active_per_user: int | None) -> dict[str, Any]:
    """configs/tiny.yaml's args with the queue bound and, when the app has them, per-user quotas."""
    from serve.config import AppArgs  # noqa: PLC0415

    args = {**tiny_config_args(), "output_dir": output_dir, "max_queued_generations": queue_limit}
    if max_active_per_user is not None and "quotas" in AppArgs.model_fields:
        args["quotas"] = {"max_active_per_user": max_active_per_user}
    return args


def run_load_burst(
    *,
    clients: int = 20,
    per_client: int = 10,
    queue_limit: int = 30,
    max_active_per_user: int | None = 2,
    timeout_s: float = 30.0,
    drain_timeout_s: float = 600.0,
    num_cpus: int = 4,
    output_dir: str | None = None,
    profile: str = "tiny",
) -> LoadReport:
    """Start local Ray + the tiny app, run the burst against it, shut everything down."""
    from serve.app import build_app  # noqa: PLC0415
    from serve.config import AppArgs  # noqa: PLC0415

    output_dir = output_dir or tempfile.mkdtemp(prefix="scenechain-load-")
    args = {
        **burst_app_args(output_dir, queue_limit, max_active_per_user),
        "profile": profile,
        "jwt": {"secret": bench_jwt_secret()},
    }
    with local_serve_app(lambda: build_app(args), num_cpus=num_cpus) as base_url:
        return run_load_burst_on(
            base_url,
            AppArgs.model_validate(args).jwt,
            clients=clients,
            per_client=per_client,
            queue_limit=queue_limit,
            quotas=args.get("quotas"),
            timeout_s=timeout_s,
            drain_timeout_s=drain_timeout_s,
        )


def report_result(report: LoadReport, profile: str = "tiny") -> BenchResult:
    """The benchmark result of a burst run (JSON + PNG via ``write_result``)."""
    counts, finals, answers = report.counts, report.finals, report.burst.answers
    submit_ms = [answer.seconds * 1000 for answer in answers if answer.status is not None]
    samples = {
        label: values
        for label, values in (
            ("202 accepted", latency_ms(answers, ACCEPTED)),
            ("429 quota", latency_ms(answers, QUOTA)),
            ("503 overloaded", latency_ms(answers, OVERLOADED)),
        )
        if values
    }
    checks = report.checks()
    summary: dict[str, float] = {
        "requests": report.requests,
        "accepted_202": counts.accepted,
        "rejected_429": counts.quota,
        "rejected_503": counts.overloaded,
        "other_status": sum(counts.other.values()),
        "transport_errors": counts.transport_errors,
        "accepted_completed": finals["completed"],
        "accepted_failed": finals["failed"],
        "accepted_cancelled": finals["cancelled"],
        "accepted_unfinished": finals["unfinished"],
        "submit_p50_ms": percentile(submit_ms, 50) if submit_ms else 0.0,
        "submit_p95_ms": percentile(submit_ms, 95) if submit_ms else 0.0,
        "burst_s": report.burst.seconds,
        "drain_s": report.drain_s,
        **{check: float(passed) for check, passed in checks.items()},
    }
    quota_note = (
        f"{counts.quota} x 429 (quota {report.quotas['max_active_per_user']}/user)"
        if report.quotas
        else f"{counts.quota} x 429 (no per-user quotas in this build)"
    )
    healthy = (
        "healthy after"
        if checks["healthz_ok_after"] and checks["fresh_generation_completed"]
        else "NOT healthy after"
    )
    headline = (
        f"{report.requests} requests from {report.clients} clients: {counts.accepted} accepted "
        f"({finals['completed']} completed), {quota_note}, {counts.overloaded} x 503, "
        f"{sum(counts.other.values())} other, {counts.transport_errors} transport errors; "
        f"{'sum exact' if checks['counts_add_up'] else 'SUM MISMATCH'}; {healthy}; "
        f"submit p50 {summary['submit_p50_ms']:.0f} ms, drained in {report.drain_s:.1f} s"
    )
    return BenchResult(
        name="load_burst",
        title=f"Bounded burst: {report.requests} requests from {report.clients} clients ({profile})",
        unit="ms per POST /api/generate (submit latency)",
        samples=samples,
        summary=summary,
        headline=headline,
        goal=(
            "every accepted request completes, every rejected one gets 503/429, counts add up exactly, "
            "healthy afterwards"
        ),
        goal_met=report.ok,
        params={
            "profile": profile,
            "clients": report.clients,
            "requests_per_client": report.per_client,
            "concurrency": f"{report.clients} (one request in flight per client)",
            "max_queued_generations": report.queue_limit,
            "quotas": report.quotas or "not available in this build",
            "request": {"prompt": BRIEF, "num_scenes": 1, "mode": "simple"},
            "other_status_codes": counts.other,
            "burst": report.burst.summary(),
            "malformed_rejections": report.malformed[:10],
        },
        machine=machine_info(),
    )


def bench_load_burst(profile: str = "tiny", **kwargs: Any) -> BenchResult:
    """The ``load-burst`` benchmark: configs/tiny.yaml's settings with ``profile``'s models."""
    return report_result(run_load_burst(profile=profile, **kwargs), profile)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the burst and write ``load_burst.json`` + ``.png``."""
    parser = argparse.ArgumentParser(prog="python -m bench.load_report", description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20, help="Clients (one user each).")
    parser.add_argument("--per-client", type=int, default=10, help="Requests per client.")
    parser.add_argument("--queue-limit", type=int, default=30, help="max_queued_generations of the app.")
    parser.add_argument("--max-active", type=int, default=2, help="Per-user quota (if the app has quotas).")
    parser.add_argument("--out", default="bench/results", help="Results directory.")
    options = parser.parse_args(argv)
    from pathlib import Path  # noqa: PLC0415

    result = bench_load_burst(
        clients=options.clients,
        per_client=options.per_client,
        queue_limit=options.queue_limit,
        max_active_per_user=options.max_active,
    )
    write_result(result, Path(options.out))
    print(result.headline)
    return 0 if result.goal_met else 1


if __name__ == "__main__":
    sys.exit(main())
