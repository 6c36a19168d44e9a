"""The client installs as a user installs it: ``pip install ./clients/python`` into a bare venv.

It must come with httpx, pydantic and rich only: no torch, Ray, diffusers, FastAPI or SQLAlchemy,
and its ``scenechain-client`` command must work there. Needs PyPI (or a wheel mirror pip knows of).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

CLIENT_DIR = Path(__file__).resolve().parents[2] / "clients" / "python"
SERVER_ONLY = ("torch", "ray", "diffusers", "transformers", "fastapi", "sqlalchemy", "numpy", "pillow")


def run(argv: list[str | Path], cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    return subprocess.run(
        [str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_the_client_installs_alone_into_a_bare_venv(tmp_path: Path) -> None:
    # pip builds a local directory in place; a copy keeps build/ and egg-info out of the checkout.
    source = tmp_path / "python"
    shutil.copytree(
        CLIENT_DIR, source, ignore=shutil.ignore_patterns("build", "dist", "*.egg-info", "__pycache__")
    )
    venv = tmp_path / "venv"
    bin_dir = venv / "bin"
    started = time.monotonic()
    made = run([sys.executable, "-m", "venv", venv], tmp_path)
    assert made.returncode == 0, made.stderr
    installed = run([bin_dir / "pip", "install", source], tmp_path, timeout=300)
    seconds = time.monotonic() - started
    assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr[-3000:]
    print(f"venv + pip install of the client: {seconds:.1f}s")

    for heavy in ("torch", "ray"):
        imported = run([bin_dir / "python", "-c", f"import {heavy}"], tmp_path)
        assert imported.returncode != 0 and "ModuleNotFoundError" in imported.stderr, heavy

    # the package is the installed copy, and importing all of it pulls in no server library
    probe = (
        "import sys, json, scenechain, scenechain.cli, scenechain.client, scenechain.events, "
        "scenechain.protocol; "
        "print(json.dumps([scenechain.__file__, sorted(m.split('.')[0] for m in sys.modules)]))"
    )
    imported = run([bin_dir / "python", "-c", probe], tmp_path)
    assert imported.returncode == 0, imported.stderr
    location, modules = json.loads(imported.stdout)
    assert Path(location).is_relative_to(venv)
    assert not {"torch", "ray", "diffusers", "fastapi", "sqlalchemy", "numpy", "PIL"} & set(modules)

    usage = run([bin_dir / "scenechain-client", "--help"], tmp_path)
    assert usage.returncode == 0, usage.stderr
    assert usage.stdout.startswith("usage: scenechain-client")
    assert all(command in usage.stdout for command in ("generate", "status", "list"))
    generate = run([bin_dir / "scenechain-client", "generate", "--help"], tmp_path)
    assert generate.returncode == 0, generate.stderr
    assert "--advanced" in generate.stdout and "--out" in generate.stdout

    listed = run([bin_dir / "pip", "list", "--format=json"], tmp_path)
    assert listed.returncode == 0, listed.stderr
    names = {package["name"].lower().replace("_", "-") for package in json.loads(listed.stdout)}
    assert {"scenechain-client", "httpx", "pydantic", "rich"} <= names
    assert not set(SERVER_ONLY) & names, sorted(set(SERVER_ONLY) & names)
