"""Secure by default (issue #19), as a deployer and a user meet it.

- Refusals: ``scenechain run`` and ``build_app`` (what ``serve run``/``serve deploy`` call) exit
  non-zero, naming SCENECHAIN_JWT_SECRET, with no secret, a short one, the old default, on a
  non-loopback bind and with the production config; all before Ray starts (seconds each).
- One real loopback-dev start: ``scenechain run`` on a free port with its store in a temp dir and a
  PostgreSQL URL that carries a password. It generates its JWT secret; ``scenechain token`` mints
  with it; the API, the gallery and the headers answer as a browser needs; a token signed with the
  old public default is 401. After one advanced generation the server is stopped and every Ray log,
  trace file, event and status document is searched for the secret, the password and the bearer
  token: none may appear.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import jwt
import pytest

from api.auth import JwtSettings, mint_token, signing_key_id

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[2]
OLD_DEFAULT = "scenechain-dev-secret-change-me-in-production"
MISSING = "SCENECHAIN_JWT_SECRET is not set"
START_TIMEOUT_S = 420
GENERATION_TIMEOUT_S = 420


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without any JWT key or database URL (the session's test secret included)."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("SCENECHAIN_JWT_") and name != "DATABASE_URL"
    }
    return {**env, **extra}


def cli(*args: str, env: dict[str, str], timeout_s: float = 120) -> subprocess.CompletedProcess[str]:
    """``scenechain ARGS`` (``python -m serve.cli``, what ``make run`` calls) in the repository."""
    return subprocess.run(
        [sys.executable, "-m", "serve.cli", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


# -- refusals: quick, before Ray ---------------------------------------------------------------------

REFUSED_RUNS = {
    "no secret, non-loopback bind": (["--profile", "tiny", "--host", "0.0.0.0"], None, MISSING),
    "short secret": (["--profile", "tiny"], "0123456789abcdef0123", "20 bytes"),
    "old default": (["--profile", "tiny"], OLD_DEFAULT, "publicly known"),
    "production config, no secret": (["--profile", "production"], None, MISSING),
    "production config, old default": (["--profile", "production"], OLD_DEFAULT, "publicly known"),
}


@pytest.mark.parametrize("case", sorted(REFUSED_RUNS))
def test_scenechain_run_refuses_to_start(case: str, tmp_path: Path) -> None:
    args, secret, says = REFUSED_RUNS[case]
    out = tmp_path / "out"
    env = clean_env(**({"SCENECHAIN_JWT_SECRET": secret} if secret else {}))
    started = time.monotonic()
    result = cli("run", *args, "--port", str(free_port()), "--output-dir", str(out), env=env)
    elapsed = time.monotonic() - started
    assert result.returncode == 2, (result.returncode, result.stdout[-2000:], result.stderr[-2000:])
    assert "refusing to start" in result.stderr and says in result.stderr
    assert "SCENECHAIN_JWT_SECRET" in result.stderr  # names the variable to set
    if secret:
        assert secret not in result.stderr + result.stdout  # never the value
    assert "Started a local Ray instance" not in result.stderr + result.stdout  # refused before Ray
    assert elapsed < 60
    assert not (out / ".dev-jwt-secret").exists()  # off loopback dev, no secret is generated


BUILD = """
import sys, yaml
from serve.app import build_app
args = yaml.safe_load(open(sys.argv[1]))["applications"][0]["args"]
if args["output_dir"] == "output":
    args["output_dir"] = sys.argv[2]
build_app(args)
print("BUILT")
"""

REFUSED_BUILDS = {
    "tiny config, no secret": ("tiny", None, MISSING),
    "tiny config, short secret": ("tiny", "x" * 31, "31 bytes"),
    "tiny config, old default": ("tiny", OLD_DEFAULT, "publicly known"),
    "production config, no secret": ("production", None, MISSING),
}


@pytest.mark.parametrize("case", sorted(REFUSED_BUILDS))
def test_build_app_of_a_serve_config_refuses_to_build(case: str, tmp_path: Path) -> None:
    config, secret, says = REFUSED_BUILDS[case]
    env = clean_env(DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite'}")
    if secret:
        env["SCENECHAIN_JWT_SECRET"] = secret
    result = subprocess.run(
        [sys.executable, "-c", BUILD, str(REPO / "configs" / f"{config}.yaml"), str(tmp_path / "out")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0 and "BUILT" not in result.stdout
    assert "InsecureKeyError" in result.stderr and says in result.stderr, result.stderr[-2000:]
    assert "SCENECHAIN_JWT_SECRET" in result.stderr
    if secret:
        assert secret not in result.stderr


def test_build_app_of_the_tiny_config_builds_with_a_good_secret(tmp_path: Path) -> None:
    # The control of the refusals above: the same command, a deployer's secret, builds.
    env = clean_env(
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite'}", SCENECHAIN_JWT_SECRET=secrets.token_urlsafe(36)
    )
    result = subprocess.run(
        [sys.executable, "-c", BUILD, str(REPO / "configs" / "tiny.yaml"), str(tmp_path / "out")],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0 and "BUILT" in result.stdout, result.stderr[-2000:]


# -- one real loopback-dev start ----------------------------------------------------------------------


@dataclass
class DevServer:
    """A ``scenechain run`` process: where it answers, where it keeps things, what it must not leak."""

    base_url: str
    output_dir: Path
    ray_dir: Path
    console: Path
    process: subprocess.Popen[bytes]
    database_password: str | None
    seen: dict[str, str] = field(default_factory=dict)  # answers to search too: status, events, ...

    def token(self, user: str = "alice") -> str:
        result = cli("token", "--user", user, "--output-dir", str(self.output_dir), env=clean_env())
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    def dev_secret(self) -> str:
        return (self.output_dir / ".dev-jwt-secret").read_text().strip()

    def stop(self) -> None:
        """SIGTERM (the command shuts Serve and Ray down), then wait; kill its group if it hangs."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=180)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=30)


def _console_tail(path: Path) -> str:
    return path.read_text(errors="replace")[-4000:] if path.is_file() else ""


@pytest.fixture(scope="module")
def dev_server() -> Iterator[DevServer]:
    from infra import ServiceUnavailable
    from infra.postgres import postgres_server

    with ExitStack() as stack:
        # The store, the DB and Ray's session logs all in this test's own temp dirs (short paths:
        # Ray's unix sockets live under RAY_TMPDIR).
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="sc-sec-")))
        output_dir, ray_dir, console = root / "out", root / "ray", root / "console.log"
        ray_dir.mkdir()
        password: str | None = None
        env = clean_env(RAY_TMPDIR=str(ray_dir), RAY_USAGE_STATS_ENABLED="0")
        try:
            server = stack.enter_context(postgres_server())
            password = "pw-" + secrets.token_hex(12)  # trust auth ignores it; our side must not print it
            env["DATABASE_URL"] = (
                f"postgresql+psycopg://{server.user}:{password}@{server.host}:{server.port}/{server.database}"
            )
        except ServiceUnavailable as exc:
            print(f"PostgreSQL unavailable ({exc}); the store's SQLite DB is used, no password to search")
        port = free_port()
        with console.open("wb") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "serve.cli", "run", "--profile", "tiny", "--port", str(port),
                 "--output-dir", str(output_dir), "--num-cpus", "2"],
                cwd=REPO,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # its own group: a hung shutdown is killed with its children
            )  # fmt: skip
        running = DevServer(f"http://127.0.0.1:{port}", output_dir, ray_dir, console, process, password)
        stack.callback(running.stop)
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                pytest.fail(f"scenechain run exited {process.returncode}:\n{_console_tail(console)}")
            try:
                if httpx.get(f"{running.base_url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"no /healthz after {START_TIMEOUT_S}s:\n{_console_tail(console)}")
            time.sleep(1)
        yield running


@pytest.fixture(scope="module")
def finished_generation(dev_server: DevServer) -> str:
    """One advanced generation (enhancer traces, scored variations, events) run to the end."""
    token = dev_server.token("alice")
    headers = {"Authorization": f"Bearer {token}"}
    body = {
        "prompt": "A 15-second ad for a thermos on a snowy ridge",
        "num_scenes": 1,
        "seed": 3,
        "use_advanced_image_generation": True,
        "advanced_image_num_variations": 2,
        "advanced_image_max_enhancement_iterations": 1,
    }
    with httpx.Client(base_url=dev_server.base_url, headers=headers, timeout=60) as client:
        accepted = client.post("/api/generate", json=body)
        assert accepted.status_code == 202, accepted.text
        generation_id = accepted.json()["id"]
        deadline = time.monotonic() + GENERATION_TIMEOUT_S
        while True:
            status = client.get(f"/api/status/{generation_id}")
            if status.json()["status"] in ("completed", "failed", "cancelled"):
                break
            assert time.monotonic() < deadline, f"generation still {status.json()['status']}"
            time.sleep(1)
        assert status.json()["status"] == "completed", status.text
        dev_server.seen["status"] = status.text
        dev_server.seen["events"] = client.get(f"/api/generations/{generation_id}/events").text
        dev_server.seen["trace"] = client.get(f"/api/generations/{generation_id}/scenes/1/trace").text
        dev_server.seen["list"] = client.get("/api/generations").text
    dev_server.seen["bearer token"] = token  # not an answer: remembered to be searched for
    return generation_id


def test_loopback_dev_starts_with_a_generated_secret(dev_server: DevServer) -> None:
    secret_file = dev_server.output_dir / ".dev-jwt-secret"
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    secret = dev_server.dev_secret()
    assert len(secret.encode()) >= 32 and secret != OLD_DEFAULT
    token = dev_server.token("alice")  # `scenechain token` reuses the generated secret
    assert jwt.get_unverified_header(token)["kid"] == signing_key_id(JwtSettings(secret=secret))
    answer = httpx.get(
        f"{dev_server.base_url}/api/generations", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    assert answer.status_code == 200 and answer.json()["items"] == []
    assert answer.headers["cache-control"] == "no-store"


def test_a_token_signed_with_the_old_default_is_401(dev_server: DevServer) -> None:
    forged = mint_token(JwtSettings(secret=OLD_DEFAULT), "alice")
    answer = httpx.get(
        f"{dev_server.base_url}/api/generations", headers={"Authorization": f"Bearer {forged}"}, timeout=30
    )
    assert answer.status_code == 401 and answer.headers["www-authenticate"] == "Bearer"


def test_head_of_the_gallery_is_200(dev_server: DevServer) -> None:
    head = httpx.head(f"{dev_server.base_url}/ui/", timeout=30)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-type"].startswith("text/html")
    assert int(head.headers["content-length"]) > 0


def test_headers_of_the_gallery_an_image_and_json(dev_server: DevServer, finished_generation: str) -> None:
    headers = {"Authorization": f"Bearer {dev_server.token('alice')}"}
    base = dev_server.base_url
    gallery = httpx.get(f"{base}/ui/", timeout=30)
    image = httpx.get(f"{base}/api/generations/{finished_generation}/scenes/1/image", headers=headers)
    variation = httpx.get(
        f"{base}/api/generations/{finished_generation}/scenes/1/variations/2", headers=headers
    )
    status = httpx.get(f"{base}/api/status/{finished_generation}", headers=headers)
    for answer in (gallery, image, variation, status):
        assert answer.status_code == 200, answer.text
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["referrer-policy"] == "no-referrer"
        assert answer.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
    assert gallery.headers["content-security-policy"].startswith("default-src 'self'; script-src 'self';")
    for answer in (image, variation):
        assert answer.headers["content-type"] == "image/png" and answer.content.startswith(b"\x89PNG")
        assert answer.headers["cache-control"] == "no-store"
    assert status.headers["content-type"] == "application/json"
    assert status.headers["cache-control"] == "no-store"


def test_nothing_secret_in_logs_traces_events_or_status(
    dev_server: DevServer, finished_generation: str
) -> None:
    # 1. stop the server, so every log is complete
    dev_server.stop()
    assert dev_server.process.returncode == 0, _console_tail(dev_server.console)
    needles = {"JWT secret": dev_server.dev_secret(), "bearer token": dev_server.seen["bearer token"]}
    if dev_server.database_password:
        needles["DB password"] = dev_server.database_password
    # 2. what there is to search: Ray's session logs (every process and replica: Serve's own logs,
    #    worker stdout/stderr, events), the store (traces, scores, images), the console, the answers
    files = [path for path in dev_server.ray_dir.rglob("*") if path.is_file() and not path.is_symlink()]
    files += [
        path for path in dev_server.output_dir.rglob("*") if path.is_file() and path.name != ".dev-jwt-secret"
    ]
    files.append(dev_server.console)
    logs = [path for path in files if "/logs/" in str(path)]
    traces = [path for path in files if "reference_image_traces" in str(path)]
    assert len(logs) > 10 and any(path.suffix == ".log" for path in logs), "no Ray session logs found"
    assert any(path.name == "prompt_trace_summary.json" for path in traces), "no trace files found"
    assert {"status", "events", "trace", "list"} <= set(dev_server.seen)
    # 3. search
    hits = []
    for path in files:
        content = path.read_bytes()
        hits += [f"{what} in {path}" for what, needle in needles.items() if needle.encode() in content]
    for answer, text in dev_server.seen.items():
        if answer != "bearer token":
            hits += [f"{what} in the {answer} answer" for what, needle in needles.items() if needle in text]
    assert not hits, "\n".join(hits)
