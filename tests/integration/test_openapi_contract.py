"""The OpenAPI document tells the truth: what tools pointed at /openapi.json see is what the app does.

- schemathesis runs every check it has (``--checks all``: documented statuses, response schemas
  and headers, negative data refused, positive data accepted, auth enforced, stateful chains over
  the documented links) against the live app over real HTTP, and must report no failure;
- a client generated from /openapi.json by openapi-python-client completes a one-scene generation.

Cost on the shared app: the hooks (``schemathesis_hooks.py``) cancel every generation the fuzzer
creates as soon as it is accepted, and the test cancels any that is left before it ends.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

if TYPE_CHECKING:
    from conftest import LiveApp

pytestmark = pytest.mark.integration

HERE = Path(__file__).resolve().parent
USER = "openapi-contract"
SCHEMATHESIS = Path(sys.executable).parent / "schemathesis"
# Per operation and phase: the whole run (stateful phase included) takes ~1-2 minutes on 2 loaded cores.
MAX_EXAMPLES = 25
# openapi-python-client pins httpx<0.29 and typer<0.28 (older than the project's, which it runs with):
# installed with --no-deps into pytest's cache (.pytest_cache/d/openapi-python-client-*).
OPENAPI_PYTHON_CLIENT = "openapi-python-client==0.29.1"
OPENAPI_PYTHON_CLIENT_PACKAGES = (OPENAPI_PYTHON_CLIENT, "ruamel.yaml>=0.18.6,<0.20", "shellingham>=1.3.2,<2")
# Binary answers (images, the animatic) are bytes to a generated client.
GENERATOR_CONFIG = """\
content_type_overrides:
  image/png: application/octet-stream
  image/jpeg: application/octet-stream
  image/webp: application/octet-stream
  video/mp4: application/octet-stream
"""


def token(live_app: LiveApp, user: str = USER) -> str:
    return live_app.headers(user)["Authorization"].removeprefix("Bearer ")


def schemathesis_config(live_app: LiveApp) -> str:
    return f"""\
hooks = "{HERE / "schemathesis_hooks.py"}"
workers = 1
seed = 17
request-timeout = 30

[auth.openapi.bearer]
bearer = "{token(live_app)}"

[phases.stateful]
max-steps = 10

# An upload's schema is "bytes" (format: binary): which bytes are a PNG/JPEG/WebP no schema can say,
# so a schema-valid upload that is no image is rightly refused with 422 (every other check applies).
[[operations]]
include-path = "/api/uploads"
include-method = "POST"

[operations.checks.positive_data_acceptance]
expected-statuses = ["2xx", 401, 404, 409, 413, 422, 429]
"""


def cancel_everything_of(live_app: LiveApp, user: str) -> list[str]:
    """Cancel every unfinished generation of ``user``; the ids that were still unfinished."""
    unfinished: list[str] = []
    with live_app.client(user) as client:
        offset = 0
        while True:
            page = client.get("/api/generations", params={"limit": 100, "offset": offset}).json()
            unfinished += [item["id"] for item in page["items"] if item["status"] in ("queued", "running")]
            offset += page["limit"]
            if offset >= page["total"]:
                break
        for generation_id in unfinished:
            client.post(f"/api/generations/{generation_id}/cancel")
    return unfinished


def test_schemathesis_with_every_check_finds_nothing_the_document_does_not_say(
    live_app: LiveApp, tmp_path: Path
) -> None:
    config = tmp_path / "schemathesis.toml"
    config.write_text(schemathesis_config(live_app))
    command = [
        str(SCHEMATHESIS),
        "--config-file",
        str(config),
        "run",
        f"{live_app.base_url}/openapi.json",
        "--checks",
        "all",  # no check excluded
        "--max-examples",
        str(MAX_EXAMPLES),
        "--report",
        "junit",
        "--report-dir",
        str(tmp_path / "report"),
    ]
    env = {
        **os.environ,
        "SCENECHAIN_CONTRACT_URL": live_app.base_url,
        "SCENECHAIN_CONTRACT_TOKEN": token(live_app),
        "NO_COLOR": "1",
    }
    started = time.monotonic()
    try:
        run = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900, cwd=tmp_path)
    finally:
        left = cancel_everything_of(live_app, USER)
    output = run.stdout + run.stderr
    print(f"schemathesis ran {time.monotonic() - started:.0f} s; {len(left)} generations left to cancel")
    print(output[output.rfind("SUMMARY") :])
    assert run.returncode == 0, output[-12000:]
    # The run really covered the API: every operation, and the stateful phase over the links.
    operations = len(
        [op for ops in httpx.get(f"{live_app.base_url}/openapi.json").json()["paths"].values() for op in ops]
    )
    assert f"Tested: {operations}" in output, output[-4000:]
    assert "Scenarios:" in output and "API Links:" in output, output[-4000:]


@pytest.fixture(scope="module")
def openapi_python_client(request: pytest.FixtureRequest) -> list[str]:
    """The openapi-python-client command: the package and its two deps the project lacks, installed
    with --no-deps into a cached folder and run by this interpreter (its httpx/typer caps are older
    than the project's, and it generates fine with the newer ones: seconds instead of a virtualenv)."""
    target = Path(request.config.cache.mkdir(OPENAPI_PYTHON_CLIENT.replace("==", "-") + "-lib"))
    if not (target / "openapi_python_client").is_dir():
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--no-deps",
                "--upgrade",
                "--target",
                str(target),
                *OPENAPI_PYTHON_CLIENT_PACKAGES,
            ],
            check=True,
            timeout=600,
        )
    return [
        sys.executable,
        "-c",
        f"import sys; sys.path.insert(0, {str(target)!r}); from openapi_python_client.cli import app; app()",
    ]


@pytest.fixture
def generated_client(live_app: LiveApp, tmp_path: Path, openapi_python_client: list[str]) -> Iterator[Any]:
    """The package openapi-python-client generates from the live /openapi.json, imported."""
    (tmp_path / "openapi.json").write_text(httpx.get(f"{live_app.base_url}/openapi.json").text)
    (tmp_path / "generator.yaml").write_text(GENERATOR_CONFIG)
    generated = subprocess.run(
        [
            *openapi_python_client,
            "generate",
            "--path",
            str(tmp_path / "openapi.json"),
            "--config",
            str(tmp_path / "generator.yaml"),
            "--meta",
            "none",
            "--output-path",
            str(tmp_path / "scenechain_api"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    output = generated.stdout + generated.stderr
    assert generated.returncode == 0, output
    assert "WARNING" not in output, output  # every operation and answer made it into the client
    sys.path.insert(0, str(tmp_path))
    try:
        yield importlib.import_module("scenechain_api")
    finally:
        sys.path.remove(str(tmp_path))
        for name in [name for name in sys.modules if name.split(".")[0] == "scenechain_api"]:
            del sys.modules[name]


def test_a_client_generated_from_the_document_completes_a_generation(
    live_app: LiveApp, generated_client: Any
) -> None:
    generate = importlib.import_module("scenechain_api.api.generations.generate")
    status = importlib.import_module("scenechain_api.api.generations.status")
    models = importlib.import_module("scenechain_api.models")
    client = generated_client.AuthenticatedClient(
        base_url=live_app.base_url, token=token(live_app, "generated-client"), raise_on_unexpected_status=True
    )
    body = models.GenerateRequest(
        prompt="A 30-second ad for a solar-powered bike light", num_scenes=1, seed=7
    )
    accepted = generate.sync(client=client, body=body)
    assert isinstance(accepted, models.GenerateAccepted), accepted
    deadline = time.monotonic() + 400
    document = status.sync(client=client, generation_id=accepted.id)
    while document.status not in ("completed", "failed", "cancelled") and time.monotonic() < deadline:
        time.sleep(1)
        document = status.sync(client=client, generation_id=accepted.id)
    assert isinstance(document, models.GenerationStatus)
    assert document.status == "completed", document.error
    assert len(document.scenes) == 1 and document.scenes[0].image_url
    # A documented refusal reaches the client as its typed model, not as an "unexpected status".
    unknown = status.sync_detailed(client=client, generation_id="no-such-generation")
    assert unknown.status_code == 404 and isinstance(unknown.parsed, models.ErrorBody)
    assert "no-such-generation" in unknown.parsed.detail
