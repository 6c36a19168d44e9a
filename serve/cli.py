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
from typing import TYPE_CHECKING, Any

from weights.compat import install_import_hook

if TYPE_CHECKING:
    from serve.config import AppArgs

Command = Callable[[argparse.Namespace], int]


def _forge_models(args: argparse.Namespace) -> int:
    from weights.forge import default_model_dir, forge_profile  # noqa: PLC0415

    model_dir = Path(args.out).resolve() if args.out else default_model_dir()
    forged = forge_profile(args.profile, model_dir)
    print(json.dumps({name: str(path) for name, path in forged.items()}, indent=2))
    return 0


def _models(args: argparse.Namespace) -> int:
    """The model catalogue: per role its source, license, commercial use and size."""
    from weights.profiles import PROFILES, format_catalogue_table, get_profile  # noqa: PLC0415

    names = args.profile or sorted(PROFILES)
    print("\n\n".join(format_catalogue_table(get_profile(name)) for name in names))
    return 0


def _fetch_models(args: argparse.Namespace) -> int:
    """Download a profile's hub models (only the files each loader reads) into a hub-cache dir or S3."""
    from weights.fetch import FetchError, fetch_to, plan_downloads  # noqa: PLC0415
    from weights.profiles import get_profile  # noqa: PLC0415

    profile = get_profile(args.profile)
    roles = args.role or None
    if args.dry_run:
        plan = [entry.model_dump(mode="json") for entry in plan_downloads(profile, roles)]
        print(json.dumps(plan, indent=2))
        return 0
    try:
        target = fetch_to(
            profile,
            args.to,
            staging=Path(args.staging) if args.staging else None,
            roles=roles,
            endpoint=args.endpoint,
        )
    except FetchError as exc:
        print(f"scenechain: fetch-models: {exc}", file=sys.stderr)
        return 2
    variable = "SCENECHAIN_MODEL_S3" if target.startswith("s3://") else "SCENECHAIN_MODEL_DIR"
    where = f"{variable}={target}"
    print(f"done; replicas load offline with {where} HF_HUB_OFFLINE=1 (docs/deploy.md)")
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


# -- the dev secret: loopback dev only ----------------------------------------------------------------

# Profiles whose `scenechain run` on a loopback address may generate its own JWT secret (forged models,
# one machine); every other start needs SCENECHAIN_JWT_SECRET (or an RS256 public key).
LOOPBACK_DEV_PROFILES: tuple[str, ...] = ("tiny", "tiny-smollm", "toy")
DEV_SECRET_FILE = ".dev-jwt-secret"


def is_loopback(host: str) -> bool:
    """True for 'localhost' and loopback addresses (127.0.0.0/8, ::1); False for 0.0.0.0 and the rest."""
    import ipaddress  # noqa: PLC0415

    host = host.strip().strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def dev_secret_path(app_args: AppArgs) -> Path | None:
    """Where the loopback dev secret lives: ``<output_dir>/.dev-jwt-secret`` (None for a remote store)."""
    if not app_args.is_local_output():
        return None
    return Path(app_args.resolved_output_dir()) / DEV_SECRET_FILE


def read_dev_secret(path: Path) -> str:
    """The dev secret in ``path``; InsecureKeyError when others may read the file or it is too weak."""
    from api.auth import InsecureKeyError, check_secret  # noqa: PLC0415

    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise InsecureKeyError(
            f"{path} is readable by other users (mode {mode:o}); chmod 600 it, or delete it to make a new one"
        )
    secret = path.read_text().strip()
    check_secret(secret, name=str(path))
    return secret


def load_or_create_dev_secret(path: Path) -> str:
    """The dev secret in ``path``, made on first use: random, in a file only its owner can read (0600)."""
    import os  # noqa: PLC0415
    import secrets  # noqa: PLC0415

    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return read_dev_secret(path)
    secret = secrets.token_urlsafe(48)
    with os.fdopen(descriptor, "w") as file:
        file.write(secret + "\n")
    return secret


def _app_args(config: str | None, profile: str, output_dir: str | None) -> tuple[AppArgs, dict[str, Any]]:
    """(AppArgs, http options) of ``run``/``token``: the config's args, the profile, --output-dir, env."""
    from serve.config import AppArgs  # noqa: PLC0415

    data, http_options = _load_config_args(Path(config) if config else None, profile)
    data["profile"] = profile
    if output_dir:
        data["output_dir"] = output_dir
    return AppArgs.from_env(**data), http_options


def serving_app_args(app_args: AppArgs, host: str) -> AppArgs:
    """``app_args`` with the JWT key this start serves with, or InsecureKeyError (naming the variable).

    Loopback dev (a tiny profile, a loopback bind, no key configured) uses the generated dev secret of
    the store; every other start needs a configured key that ``AppArgs.check_secrets`` accepts.
    """
    jwt = app_args.jwt
    path = dev_secret_path(app_args)
    loopback_dev = app_args.profile in LOOPBACK_DEV_PROFILES and is_loopback(host)
    if loopback_dev and jwt.algorithm == "HS256" and jwt.secret is None and path is not None:
        secret = load_or_create_dev_secret(path)
        app_args = app_args.model_copy(update={"jwt": jwt.model_copy(update={"secret": secret})})
    app_args.check_secrets()
    return app_args


def _run(args: argparse.Namespace) -> int:
    """Start local Ray (logical GPUs), deploy the app, print a dev token and a curl line, block."""
    from api.auth import InsecureKeyError  # noqa: PLC0415

    app_args, http_options = _app_args(args.config, args.profile, args.output_dir)
    host = args.host or http_options.get("host", "127.0.0.1")
    port = args.port or int(http_options.get("port", 8000))

    # 1. the JWT key, before anything starts: refuse a missing, short or public one
    try:
        app_args = serving_app_args(app_args, host).resolved()
    except InsecureKeyError as exc:
        print(f"scenechain: refusing to start: {exc}", file=sys.stderr)
        return 2

    if not _port_free(host, port):
        print(f"port {port} on {host} is in use; pass --port", file=sys.stderr)
        return 2

    import ray  # noqa: PLC0415
    from ray import serve  # noqa: PLC0415

    from api.auth import mint_token  # noqa: PLC0415
    from serve.app import build_app  # noqa: PLC0415
    from weights.forge import forge_profile  # noqa: PLC0415

    # 2. models (forged ones are built once, then cached)
    forge_profile(app_args.profile, app_args.resolved_model_dir())

    # 3. Ray with logical GPUs, so fractional-GPU replicas place on a CPU machine
    ray.init(address="local", num_cpus=args.num_cpus, num_gpus=args.num_gpus, include_dashboard=False)
    try:
        serve.start(http_options={"host": host, "port": port})
        serve.run(build_app(app_args), name=app_args.app_name, route_prefix=app_args.route_prefix)
        base = f"http://{host}:{port}"
        print(f"\nscenechain is up at {base}  (OpenAPI: {base}/docs)")
        if app_args.jwt.algorithm == "HS256" or app_args.jwt.private_key:
            token = mint_token(app_args.jwt, args.user)
            print(f"dev token for {args.user!r}:\n  {token}\n")
            print("try:")
            print(
                f"  curl -s -X POST {base}/api/generate -H 'Authorization: Bearer {token}' "
                "-H 'Content-Type: application/json' "
                '-d \'{"prompt": "A 30-second ad for a solar-powered bike light", "num_scenes": 2, "seed": 7}\''
            )
            print(f"  curl -s {base}/api/status/<id> -H 'Authorization: Bearer {token}'\n")
        else:
            print("RS256: tokens come from your issuer (set SCENECHAIN_JWT_PRIVATE_KEY_FILE to mint here)\n")
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
    """Mint a token with the server's key: SCENECHAIN_JWT_SECRET (or the RS256 private key file),
    else the dev secret `scenechain run` generated in the store."""
    from api.auth import PRIVATE_KEY_ENV, SECRET_ENV, InsecureKeyError, check_secret, mint_token  # noqa: PLC0415

    app_args, _ = _app_args(args.config, args.profile, args.output_dir)
    jwt = app_args.jwt
    try:
        if jwt.algorithm == "RS256":
            if not jwt.private_key:
                raise InsecureKeyError(f"RS256 tokens need the issuer's private key: set {PRIVATE_KEY_ENV}")
        elif jwt.secret is not None:
            check_secret(jwt.secret)
        else:
            path = dev_secret_path(app_args)
            if path is None or not path.is_file():
                raise InsecureKeyError(
                    f"{SECRET_ENV} is not set and there is no dev secret at {path or 'a local store'} "
                    f"(`scenechain run` on a loopback address makes one): set {SECRET_ENV} to the "
                    "server's secret, or pass the --output-dir of the dev server"
                )
            jwt = jwt.model_copy(update={"secret": read_dev_secret(path)})
    except InsecureKeyError as exc:
        print(f"scenechain: cannot mint a token: {exc}", file=sys.stderr)
        return 2
    print(mint_token(jwt, args.user, ttl_s=args.ttl))
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

    forge = commands.add_parser("forge-models", help="Build (or train) the offline models of a profile.")
    forge.add_argument("--profile", default="toy", help="Profile whose forged models to build.")
    forge.add_argument("--out", default=None, help="Model dir (default: $SCENECHAIN_MODEL_DIR or .models).")
    forge.set_defaults(handler=_forge_models)

    models = commands.add_parser(
        "models", help="The model catalogue: role, source, license, commercial use, size."
    )
    models.add_argument(
        "--profile", action="append", default=None, help="Only this profile (repeatable; default: all)."
    )
    models.set_defaults(handler=_models)

    fetch = commands.add_parser(
        "fetch-models", help="Pre-download a profile's hub models into a shared cache (prints licenses)."
    )
    fetch.add_argument("--profile", default="production", help="Profile whose hub models to download.")
    fetch.add_argument("--to", required=True, help="Cache dir (hub layout), or s3://bucket/prefix.")
    fetch.add_argument("--staging", default=None, help="Local dir to download into before an s3:// upload.")
    fetch.add_argument(
        "--role", action="append", default=None, help="Only this role (repeatable; default: every role)."
    )
    fetch.add_argument("--endpoint", default=None, help="Hub mirror URL (default: $HF_ENDPOINT or the hub).")
    fetch.add_argument("--dry-run", action="store_true", help="Print the per-role download plan as JSON.")
    fetch.set_defaults(handler=_fetch_models)

    run = commands.add_parser("run", help="Start local Ray (logical GPUs) + the app; print a dev token.")
    run.add_argument("--profile", default="toy", help="Model profile.")
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
        "token",
        help="Mint a JWT ($SCENECHAIN_JWT_SECRET, else the dev secret `scenechain run` made in the store).",
    )
    token.add_argument("--user", required=True, help="The token's subject.")
    token.add_argument("--ttl", type=int, default=None, help="Lifetime in seconds (default 24 h).")
    token.add_argument("--profile", default="toy", help="Profile whose config names the store.")
    token.add_argument("--config", default=None, help="Serve config YAML (default: configs/PROFILE.yaml).")
    token.add_argument(
        "--output-dir", default=None, help="The store holding the dev secret (default from the config)."
    )
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

    # Quality evaluation sits on top too (eval/): advanced best-of-N vs simple, its own module.
    evaluate = commands.add_parser(
        "eval",
        help="Measure advanced vs simple mode (python -m eval; JSON + PNG + report.html in eval/results).",
        add_help=False,
    )
    evaluate.add_argument("eval_args", nargs=argparse.REMAINDER, help="Arguments of python -m eval.")
    evaluate.set_defaults(handler=_eval)
    return parser


def _bench(args: argparse.Namespace) -> int:
    import subprocess  # noqa: PLC0415

    return subprocess.call([sys.executable, "-m", "bench", *args.bench_args])


def _eval(args: argparse.Namespace) -> int:
    import subprocess  # noqa: PLC0415

    # `scenechain eval -- --profile toy ...`: the "--" only ends scenechain's own options
    forwarded = args.eval_args[1:] if args.eval_args[:1] == ["--"] else args.eval_args
    return subprocess.call([sys.executable, "-m", "eval", *forwarded])


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``scenechain`` script."""
    install_import_hook()
    parser = build_parser()
    args, unparsed = parser.parse_known_args(argv)
    # argparse's REMAINDER misses a sub-command's leading options (`bench --only x`): pass them on
    if unparsed and getattr(args, "handler", None) in (_bench, _eval):
        name = "bench_args" if args.handler is _bench else "eval_args"
        setattr(args, name, [*unparsed, *getattr(args, name)])
    elif unparsed:
        parser.error(f"unrecognized arguments: {' '.join(unparsed)}")
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    handler: Command = args.handler
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
