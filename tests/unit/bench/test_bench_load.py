"""The load-burst report's accounting (no Ray, no HTTP): classes of answers, the sum, the contract."""

from __future__ import annotations

from bench.load import Answer, BurstResult
from bench.load_report import (
    BurstCounts,
    LoadReport,
    client_of,
    count_answers,
    final_tally,
    latency_ms,
    malformed_rejections,
)


def answers(*statuses: int | None) -> list[Answer]:
    out = []
    for index, status in enumerate(statuses):
        body = {"429": {"error": "quota_exceeded"}, "503": {"error": "overloaded"}}.get(str(status), {})
        retry = "10" if status in (429, 503) else None
        out.append(Answer(index, status, 0.01 * (index + 1), retry, body, None if status else "ReadTimeout"))
    return out


def report(burst_answers: list[Answer], finals: dict[str, str], **overrides: object) -> LoadReport:
    fields: dict[str, object] = {
        "clients": 1,
        "per_client": len(burst_answers),
        "queue_limit": 2,
        "quotas": {"max_active_per_user": 2},
        "burst": BurstResult(answers=burst_answers, seconds=1.0),
        "counts": count_answers(burst_answers),
        "final_statuses": finals,
        "drain_s": 3.0,
        "healthz_status": 200,
        "fresh_generation_status": "completed",
        "malformed": malformed_rejections(burst_answers),
    }
    fields.update(overrides)
    return LoadReport(**fields)  # type: ignore[arg-type]


def test_answers_are_counted_once_each_by_class() -> None:
    counts = count_answers(answers(202, 202, 429, 503, 503, 503, 500, None))
    assert (counts.accepted, counts.quota, counts.overloaded) == (2, 1, 3)
    assert counts.other == {"500": 1} and counts.transport_errors == 1
    assert counts.answered == counts.requests == 8
    assert not counts.adds_up  # a 500 and a timeout are not allowed answers


def test_only_202_429_503_add_up() -> None:
    assert count_answers(answers(202, 429, 503, 503)).adds_up
    assert BurstCounts(requests=3, accepted=1, overloaded=1).adds_up is False  # one request unanswered


def test_rejections_need_retry_after_and_their_json_error() -> None:
    good = answers(429, 503)
    assert malformed_rejections(good) == []
    bad = [
        Answer(0, 503, 0.1, None, {"error": "overloaded"}),
        Answer(1, 429, 0.1, "5", {"error": "overloaded"}),
        Answer(2, 503, 0.1, "0", "plain text"),
    ]
    problems = malformed_rejections(bad)
    assert any("request 0" in p and "Retry-After" in p for p in problems)
    assert any("request 1" in p and "error" in p for p in problems)
    assert sum("request 2" in p for p in problems) == 2


def test_final_tally_names_every_outcome() -> None:
    tally = final_tally({"a": "completed", "b": "completed", "c": "failed", "d": "unfinished"})
    assert tally == {"completed": 2, "failed": 1, "cancelled": 0, "unfinished": 1}


def test_client_numbering_matches_client_burst() -> None:
    # client_burst: request i is request i % per_client of client i // per_client
    assert [client_of(i, 10) for i in (0, 9, 10, 199)] == [0, 0, 1, 19]


def test_latencies_are_per_status_in_ms() -> None:
    assert latency_ms(answers(202, 503, 202), 202) == [10.0, 30.0]


def test_checks_pass_only_when_every_claim_holds() -> None:
    burst = answers(202, 202, 429, 503)
    finals = {"g1": "completed", "g2": "completed"}
    assert report(burst, finals).ok
    assert report(burst, finals).checks() == {
        "counts_add_up": True,
        "every_accepted_completed": True,
        "rejections_well_formed": True,
        "healthz_ok_after": True,
        "fresh_generation_completed": True,
    }
    assert not report(burst, {"g1": "completed", "g2": "failed"}).checks()["every_accepted_completed"]
    assert not report(burst, finals, healthz_status=503).ok
    assert not report(burst, finals, fresh_generation_status="HTTP 503").ok
    assert not report(answers(202, 202, 500), finals).checks()["counts_add_up"]
