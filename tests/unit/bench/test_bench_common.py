"""The summary keeps every benchmark: this run's results merged with earlier JSON results (no Ray)."""

from __future__ import annotations

from pathlib import Path

from bench.common import BenchResult, merge_results, write_summary


def result(name: str, headline: str, date: str = "2026-01-01T00:00:00+00:00") -> BenchResult:
    return BenchResult(
        name=name,
        title=f"title of {name}",
        unit="s",
        samples={"a": [1.0]},
        summary={},
        headline=headline,
        machine={"cpus": 2, "platform": "test"},
        date=date,
    )


def test_fresh_results_replace_earlier_ones_of_the_same_name() -> None:
    merged = merge_results([result("graph", "old"), result("batching", "kept")], [result("graph", "new")])
    assert [(r.name, r.headline) for r in merged] == [("batching", "kept"), ("graph", "new")]


def test_summary_lists_earlier_results_next_to_this_run(tmp_path: Path) -> None:
    earlier = result("graph_vs_baseline", "graph 1.00x", date="2026-01-01T00:00:00+00:00")
    (tmp_path / "graph_vs_baseline.json").write_text(earlier.model_dump_json())
    (tmp_path / "notes.json").write_text('{"not": "a result"}')  # ignored, not fatal
    fresh = result("overhead", "adds 5 ms", date="2026-02-02T00:00:00+00:00")
    (tmp_path / "overhead.json").write_text(fresh.model_dump_json())

    text = write_summary([fresh], tmp_path, command="scenechain bench --only overhead").read_text()

    assert "| title of graph_vs_baseline | graph 1.00x | — | — | 2026-01-01 |" in text
    assert "| title of overhead | adds 5 ms | — | — | 2026-02-02 |" in text
    assert "ran: overhead" in text
