"""``python -m bench`` / ``scenechain bench``: run the benchmarks, write JSON + PNG + SUMMARY.md."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from bench.common import DEFAULT_RESULTS_DIR, BenchResult, write_result, write_summary


def _batching_generator(args: argparse.Namespace) -> BenchResult:
    from bench.batching import bench_generator_batching  # noqa: PLC0415

    return bench_generator_batching(args.profile, variations=args.variations, repeats=args.repeats)


def _batching_scorers(args: argparse.Namespace) -> BenchResult:
    from bench.batching import bench_scorer_batching  # noqa: PLC0415

    return bench_scorer_batching(args.profile, images=args.variations, repeats=args.repeats)


def _graph(args: argparse.Namespace) -> BenchResult:
    from bench.graph import bench_graph_vs_baseline  # noqa: PLC0415

    return bench_graph_vs_baseline(args.profile, variations=args.variations)


def _load_burst(args: argparse.Namespace) -> BenchResult:
    from bench.load_report import bench_load_burst  # noqa: PLC0415

    return bench_load_burst(args.profile)


def _overhead(args: argparse.Namespace) -> BenchResult:
    from bench.overhead import bench_overhead  # noqa: PLC0415

    return bench_overhead(repeats=args.overhead_repeats)


def _memory(args: argparse.Namespace) -> BenchResult:
    from bench.memory import bench_memory  # noqa: PLC0415

    return bench_memory(args.profile)


def _cluster_twin(args: argparse.Namespace) -> BenchResult:
    from bench.cluster_twin import bench_cluster_twin  # noqa: PLC0415

    return bench_cluster_twin(variations=args.variations)


BENCHMARKS: dict[str, Callable[[argparse.Namespace], BenchResult]] = {
    "batching-generator": _batching_generator,
    "batching-scorers": _batching_scorers,
    "graph": _graph,
    "load-burst": _load_burst,
    "overhead": _overhead,
    "memory": _memory,
    "cluster-twin": _cluster_twin,
}


def build_parser() -> argparse.ArgumentParser:
    """Arguments shared by ``python -m bench`` and ``scenechain bench``."""
    parser = argparse.ArgumentParser(prog="scenechain bench", description=__doc__)
    add_arguments(parser)
    return parser


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the benchmark options to ``parser`` (also used by the CLI's sub-command)."""
    parser.add_argument(
        "--only", default=",".join(BENCHMARKS), help=f"Comma list of: {', '.join(BENCHMARKS)}."
    )
    parser.add_argument("--profile", default="tiny", help="Model profile (tiny on CPU, gpu-bench on a GPU).")
    parser.add_argument("--repeats", type=int, default=5, help="Timed repetitions per variant.")
    parser.add_argument("--variations", type=int, default=4, help="Variations (images) per scene.")
    parser.add_argument(
        "--overhead-repeats", type=int, default=50, help="Timed requests per kind and side (overhead)."
    )
    parser.add_argument("--out", default=str(DEFAULT_RESULTS_DIR), help="Results directory.")


def run(args: argparse.Namespace) -> int:
    """Run the selected benchmarks; print the summary table."""
    names = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s) {unknown}; choose from {list(BENCHMARKS)}", file=sys.stderr)
        return 2
    out_dir = Path(args.out)
    results = []
    for name in names:
        logging.getLogger(__name__).info("running %s", name)
        result = BENCHMARKS[name](args)
        write_result(result, out_dir)
        results.append(result)
        print(f"{result.title}: {result.headline}")
    # sys.argv is [python -m bench, ...] or [scenechain, bench, ...]: name the command once either way.
    argv = sys.argv[1:]
    argv = argv[1:] if argv[:1] == ["bench"] else argv
    summary = write_summary(results, out_dir, command=" ".join(["scenechain bench", *argv]))
    print(summary.read_text())
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m bench``."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return run(build_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
