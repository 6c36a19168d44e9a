"""``python -m eval`` / ``scenechain eval``: advanced best-of-N vs simple over a prompt set (in-process)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

DEFAULT_PROMPTS = Path(__file__).parent / "prompts" / "toy.jsonl"
DEFAULT_RESULTS_DIR = Path(__file__).parent / "results"


def _variations(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"variations must be comma-separated integers, got {text!r}"
        ) from None
    if not values or any(not 1 <= value <= 16 for value in values):
        raise argparse.ArgumentTypeError(f"variations must be integers in [1, 16], got {text!r}")
    return values


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, run the eval, print the summary as JSON."""
    parser = argparse.ArgumentParser(prog="python -m eval", description=__doc__)
    parser.add_argument("--prompts", type=Path, default=DEFAULT_PROMPTS, help="Prompt set (JSON Lines).")
    parser.add_argument("--profile", default="toy", help="Model profile (weights.profiles).")
    parser.add_argument(
        "--variations", type=_variations, default=[1, 2, 4, 8], help="Best-of-N values, e.g. 1,2,4,8."
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_RESULTS_DIR, help="Output dir.")
    parser.add_argument("--seed", type=int, default=0, help="Base seed (variation k uses seed + k).")
    parser.add_argument("--limit", type=int, default=None, help="At most this many prompts (whole stories).")
    parser.add_argument("--steps", type=int, default=None, help="Denoising steps (default: the profile's).")
    parser.add_argument(
        "--consistency-weight",
        type=float,
        default=0.0,
        help="Also run the largest N with this consistency share (0-1) in the overall score.",
    )
    parser.add_argument(
        "--model-dir", type=Path, default=None, help="Model dir (default: $SCENECHAIN_MODEL_DIR)."
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    from eval.runner import run_eval  # noqa: PLC0415

    if not args.prompts.is_file():
        parser.error(f"prompt set {args.prompts} does not exist")
    payload = run_eval(
        args.prompts,
        args.profile,
        args.variations,
        args.out,
        base_seed=args.seed,
        limit=args.limit,
        steps=args.steps,
        model_dir=args.model_dir,
        consistency_weight=args.consistency_weight,
    )
    print(json.dumps(payload["summary"], indent=2))
    print(f"report: {args.out / 'report.html'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
