"""A throwaway PostgreSQL server: initdb in a temp dir, pg_ctl on a free 127.0.0.1 port, then removed.

Uses Debian's server binaries (``/usr/lib/postgresql/<version>/bin``; ``scripts/install-services.sh``
installs them). PostgreSQL refuses to run as root, so under root the server runs as the
``postgres`` system user (created by the Debian package) through ``runuser``.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from . import ServiceUnavailable, free_port

DATABASE = "scenechain"
START_TIMEOUT_S = 60


@dataclass(frozen=True)
class PostgresServer:
    """Where the running server listens."""

    host: str
    port: int
    user: str
    database: str
    data_dir: Path

    @property
    def url(self) -> str:
        """SQLAlchemy URL (psycopg 3 driver)."""
        return f"postgresql+psycopg://{self.user}@{self.host}:{self.port}/{self.database}"


def find_bin_dir() -> Path:
    """The newest ``.../bin`` holding initdb and pg_ctl (ServiceUnavailable when none)."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda path: int(Path(path).parent.name or 0)
    )
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(str(Path(on_path).resolve().parent))
    for candidate in reversed(candidates):
        if (Path(candidate) / "initdb").is_file() and (Path(candidate) / "pg_ctl").is_file():
            return Path(candidate)
    raise ServiceUnavailable(
        "PostgreSQL server binaries (initdb, pg_ctl) not found; run scripts/install-services.sh"
    )


def _server_user() -> str | None:
    """The user to run the server as: None (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise ServiceUnavailable("running as root and no 'postgres' user to run PostgreSQL as") from None
    if shutil.which("runuser") is None:
        raise ServiceUnavailable("running as root and 'runuser' is missing")
    return "postgres"


def _run(command: list[str], run_as: str | None, log: Path | None = None) -> None:
    if run_as is not None:
        command = ["runuser", "-u", run_as, "--", *command]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    if result.returncode != 0:
        detail = result.stderr.strip() or result.stdout.strip()
        if log is not None and log.is_file():
            detail += "\n--- server log ---\n" + log.read_text()[-4000:]
        raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}): {detail}")


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """Start a private PostgreSQL with an empty ``scenechain`` database; stop and delete it after."""
    bin_dir = find_bin_dir()
    try:
        import psycopg  # noqa: PLC0415
    except ImportError:
        raise ServiceUnavailable("psycopg is not installed (pip install -e '.[postgres]')") from None
    run_as = _server_user()
    root = Path(tempfile.mkdtemp(prefix="scenechain-pg-"))
    data_dir, log = root / "data", root / "server.log"
    if run_as is not None:
        entry = pwd.getpwnam(run_as)
        os.chown(root, entry.pw_uid, entry.pw_gid)
    port = free_port()
    started = False
    try:
        # 1. a fresh cluster; trust auth is fine: it listens on loopback only, for this test run
        _run(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(data_dir),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-instructions",
            ],
            run_as,
        )
        # 2. start it on 127.0.0.1:port, its socket in our temp dir, durability off (a throwaway)
        options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
        _run(
            [
                str(bin_dir / "pg_ctl"),
                "-D",
                str(data_dir),
                "-l",
                str(log),
                "-w",
                "-t",
                str(START_TIMEOUT_S),
                "-o",
                options,
                "start",
            ],
            run_as,
            log,
        )
        started = True
        # 3. the application database
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                with psycopg.connect(
                    host="127.0.0.1", port=port, user="postgres", dbname="postgres", autocommit=True
                ) as connection:
                    connection.execute(f"CREATE DATABASE {DATABASE}")
                break
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        yield PostgresServer(
            host="127.0.0.1", port=port, user="postgres", database=DATABASE, data_dir=data_dir
        )
    finally:
        if started:
            with contextlib.suppress(Exception):
                _run([str(bin_dir / "pg_ctl"), "-D", str(data_dir), "-m", "immediate", "-w", "stop"], run_as)
        shutil.rmtree(root, ignore_errors=True)
