"""The ``scenechain`` command line: forge models, run the service, mint dev tokens."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from weights.compat import install_import_hook

Command = Callable[[argparse.Namespace], int]


def _forge_models(args: argparse.Namespace) -> int:
    from weights.forge import default_model_dir, forge_profile  # noqa: PLC0415

    model_dir = Path(args.out).resolve() if args.out else default_model_dir()
    forged = forge_profile(args.profile, model_dir)
    print(json.dumps({name: str(path) for name, path in forged.items()}, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; each sub-command sets ``handler``."""
    parser = argparse.ArgumentParser(prog="scenechain", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="Log at DEBUG level.")
    commands = parser.add_subparsers(dest="command", required=True)

    forge = commands.add_parser("forge-models", help="Build the offline tiny models of a profile.")
    forge.add_argument("--profile", default="tiny", help="Profile whose forged models to build.")
    forge.add_argument("--out", default=None, help="Model dir (default: $SCENECHAIN_MODEL_DIR or .models).")
    forge.set_defaults(handler=_forge_models)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``scenechain`` script."""
    install_import_hook()
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    handler: Command = args.handler
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
