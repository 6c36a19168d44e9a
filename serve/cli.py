"""The ``scenechain`` command line: forge models, run the service, mint dev tokens."""

from __future__ import annotations

import argparse
import json
import logging
import re
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from weights.compat import install_import_hook

Command = Callable[[argparse.Namespace], int]


def _forge_models(args: argparse.Namespace) -> int:
    from weights.forge import default_model_dir, forge_profile  # noqa: PLC0415

    model_dir = Path(args.out).resolve() if args.out else default_model_dir()
    forged = forge_profile(args.profile, model_dir)
    print(json.dumps({name: str(path) for name, path in forged.items()}, indent=2))
    return 0


def _load_config_args(config: Path | None, profile: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(app args, http options) from a Serve config YAML (first application), or ({}, {})."""
    import yaml  # noqa: PLC0415

    path = config if config is not None else Path("configs") / f"{profile}.yaml"
    if not path.is_file():
        return {}, {}
    document = yaml.safe_load(path.read_text()) or {}
    applications = document.get("applications") or [{}]
    return dict(applications[0].get("args") or {}), dict(document.get("http_options") or {})


def _port_free(host: str, port: int) -> bool:
    import socket  # noqa: PLC0415

    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _run(args: argparse.Namespace) -> int:
    """Start local Ray (logical GPUs), deploy the app, print a dev token and a curl line, block."""
    import ray  # noqa: PLC0415
    from ray import serve  # noqa: PLC0415

    from api.auth import mint_token  # noqa: PLC0415
    from serve.app import build_app  # noqa: PLC0415
    from serve.config import AppArgs  # noqa: PLC0415
    from weights.forge import forge_profile  # noqa: PLC0415

    app_args_data, http_options = _load_config_args(Path(args.config) if args.config else None, args.profile)
    app_args_data["profile"] = args.profile
    if args.output_dir:
        app_args_data["output_dir"] = args.output_dir
    app_args = AppArgs.from_env(**app_args_data).resolved()
    host = args.host or http_options.get("host", "127.0.0.1")
    port = args.port or int(http_options.get("port", 8000))

    if not _port_free(host, port):
        print(f"port {port} on {host} is in use; pass --port", file=sys.stderr)
        return 2

    # 1. models (forged ones are built once, then cached)
    forge_profile(app_args.profile, app_args.resolved_model_dir())

    # 2. Ray with logical GPUs, so fractional-GPU replicas place on a CPU machine
    ray.init(address="local", num_cpus=args.num_cpus, num_gpus=args.num_gpus, include_dashboard=False)
    try:
        serve.start(http_options={"host": host, "port": port})
        serve.run(build_app(app_args), name=app_args.app_name, route_prefix=app_args.route_prefix)
        token = mint_token(app_args.jwt, args.user)
        base = f"http://{host}:{port}"
        print(f"\nscenechain is up at {base}  (OpenAPI: {base}/docs)")
        print(f"dev token for {args.user!r}:\n  {token}\n")
        print("try:")
        print(
            f"  curl -s -X POST {base}/api/generate -H 'Authorization: Bearer {token}' "
            "-H 'Content-Type: application/json' "
            '-d \'{"prompt": "A 30-second ad for a solar-powered bike light", "num_scenes": 2, "seed": 7}\''
        )
        print(f"  curl -s {base}/api/status/<id> -H 'Authorization: Bearer {token}'\n")
        print("Ctrl-C to stop.", flush=True)
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            while not stop.wait(1.0):
                pass
        except KeyboardInterrupt:
            pass
    finally:
        serve.shutdown()
        ray.shutdown()
    return 0


def _token(args: argparse.Namespace) -> int:
    from api.auth import mint_token  # noqa: PLC0415
    from serve.config import AppArgs  # noqa: PLC0415

    print(mint_token(AppArgs.from_env().jwt, args.user, ttl_s=args.ttl))
    return 0


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")


def parse_duration(text: str) -> timedelta:
    """'90s', '30m', '12h', '7d' -> timedelta (ValueError otherwise)."""
    match = _DURATION.match(text.strip())
    if not match:
        raise ValueError(f"invalid duration {text!r}: use a number and s, m, h or d (e.g. 7d)")
    units = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
    return timedelta(**{units[match.group(2)]: float(match.group(1))})


def _cleanup(args: argparse.Namespace) -> int:
    from director.core import purge_finished_before  # noqa: PLC0415
    from serve.config import AppArgs  # noqa: PLC0415
    from store.db import Database, utcnow  # noqa: PLC0415
    from store.storage import Storage  # noqa: PLC0415

    overrides: dict[str, Any] = {}
    if args.output_dir:
        overrides["output_dir"] = args.output_dir
    if args.database_url:
        overrides["database_url"] = args.database_url
    app_args = AppArgs.from_env(**overrides)
    cutoff = utcnow() - parse_duration(args.older_than)
    db = Database(app_args.resolved_database_url())
    try:
        if args.dry_run:
            ids = [record.id for record in db.list_finished_before(cutoff)]
        else:
            ids = purge_finished_before(db, Storage(app_args.resolved_output_dir()), cutoff)
    finally:
        db.close()
    print(json.dumps({"removed" if not args.dry_run else "would_remove": ids}, indent=2))
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

    run = commands.add_parser("run", help="Start local Ray (logical GPUs) + the app; print a dev token.")
    run.add_argument("--profile", default="tiny", help="Model profile.")
    run.add_argument(
        "--config", default=None, help="Serve config YAML (default: configs/PROFILE.yaml if any)."
    )
    run.add_argument("--host", default=None, help="HTTP host (default from the config, else 127.0.0.1).")
    run.add_argument("--port", type=int, default=None, help="HTTP port (default from the config, else 8000).")
    run.add_argument("--output-dir", default=None, help="Images/traces/DB dir (default from the config).")
    run.add_argument("--num-cpus", type=float, default=2, help="Logical CPUs Ray advertises.")
    run.add_argument("--num-gpus", type=float, default=1, help="Logical GPUs Ray advertises.")
    run.add_argument("--user", default="dev", help="User of the printed dev token.")
    run.set_defaults(handler=_run)

    token = commands.add_parser(
        "token", help="Mint a dev JWT (secret from $SCENECHAIN_JWT_SECRET or default)."
    )
    token.add_argument("--user", required=True, help="The token's subject.")
    token.add_argument("--ttl", type=int, default=None, help="Lifetime in seconds (default 24 h).")
    token.set_defaults(handler=_token)

    cleanup = commands.add_parser("cleanup", help="Delete finished generations (rows, images, traces).")
    cleanup.add_argument("--older-than", required=True, help="Age, e.g. 7d, 12h, 30m.")
    cleanup.add_argument(
        "--output-dir", default=None, help="Store (default: $SCENECHAIN_OUTPUT_DIR or output)."
    )
    cleanup.add_argument(
        "--database-url", default=None, help="DB URL (default: $DATABASE_URL or the store's)."
    )
    cleanup.add_argument("--dry-run", action="store_true", help="List what would be removed.")
    cleanup.set_defaults(handler=_cleanup)

    # Client side: generate / status / list against a running server.
    from scenechain.cli import add_client_commands  # noqa: PLC0415

    add_client_commands(commands)

    # Benchmarks sit above the server (they build the app), so they run as their own module.
    bench = commands.add_parser(
        "bench",
        help="Run the benchmarks (python -m bench; JSON + PNG + SUMMARY.md in bench/results).",
        add_help=False,
    )
    bench.add_argument("bench_args", nargs=argparse.REMAINDER, help="Arguments of python -m bench.")
    bench.set_defaults(handler=_bench)
    return parser


def _bench(args: argparse.Namespace) -> int:
    import subprocess  # noqa: PLC0415

    return subprocess.call([sys.executable, "-m", "bench", *args.bench_args])


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
