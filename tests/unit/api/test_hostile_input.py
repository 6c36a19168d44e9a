"""Hostile input: schemathesis fuzzes every operation of the OpenAPI spec, then explicit attacks.

The app is the real FastAPI app on a real SQLite DB and store; one generation is run to completion
(Director core with fake model ports) so the fuzzer also hits routes that read images and traces.
Every refusal must be a 4xx whose message says what to fix; no input may produce a 5xx.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fakes import FakePorts, RecordingDirector
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from scenechain.protocol import GenerateRequest
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.auth import mint_token
from api.ingress import IngressService, create_api
from director.core import DirectorCore, DirectorSettings
from serve.config import AppArgs

AUTH = {"Authorization": f"Bearer {mint_token(AppArgs().jwt, 'alice')}"}
JSON_AUTH = {**AUTH, "Content-Type": "application/json"}
CHECKS = [
    not_a_server_error,
    status_code_conformance,  # every status answered is documented (errors.document_errors)
    response_schema_conformance,
    content_type_conformance,
    response_headers_conformance,
]

GID_ROUTES = [
    ("GET", "/api/status/{generation_id}"),
    ("POST", "/api/generations/{generation_id}/cancel"),
    ("GET", "/api/generations/{generation_id}/scenes/{scene}/image"),
    ("GET", "/api/generations/{generation_id}/scenes/{scene}/variations/{k}"),
    ("GET", "/api/generations/{generation_id}/events"),
    ("GET", "/api/generations/{generation_id}/scenes/{scene}/trace"),
    ("GET", "/api/generations/{generation_id}/export/contact-sheet.png"),
    ("GET", "/api/generations/{generation_id}/export/animatic.mp4"),
    ("GET", "/api/generations/{generation_id}/webhooks"),
]
WEBHOOK_SECRET_ROUTES = [("GET", "/api/webhooks/secret"), ("POST", "/api/webhooks/secret/rotate")]
OPERATIONS = [
    ("POST", "/api/generate"),
    ("POST", "/api/uploads"),
    ("GET", "/api/generations"),
    ("GET", "/healthz"),
    *WEBHOOK_SECRET_ROUTES,
    *GID_ROUTES,
]
NO_PARAMETERS = {("GET", "/healthz"), *WEBHOOK_SECRET_ROUTES}  # nothing to make invalid
# any bytes are a schema-valid upload body; hostile files: tests/unit/api/test_reference_images.py
NO_PARAMETERS.add(("POST", "/api/uploads"))
SLOW = {("GET", "/api/generations/{generation_id}/export/animatic.mp4")}  # encodes an MP4 per call


@dataclass
class Hostile:
    """The app under attack, its client, its output dir and one finished generation."""

    service: IngressService
    client: TestClient
    schema: Any
    out_dir: Path
    finished_id: str


def run_to_completion(service: IngressService, generation_id: str) -> None:
    """Run a queued generation with the Director core and fake model ports (writes images/traces)."""

    async def main() -> None:
        core = DirectorCore(service.db, service.storage, FakePorts(), DirectorSettings())
        assert core.start(generation_id)
        await core.wait(generation_id)

    asyncio.run(main())


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hostile]:
    out_dir = tmp_path_factory.mktemp("hostile") / "out"
    service = IngressService(AppArgs(output_dir=str(out_dir)).ingress_settings(), RecordingDirector())
    app = create_api(service)
    with TestClient(app, raise_server_exceptions=False) as client:
        body = {
            "prompt": "a lighthouse ad",
            "num_scenes": 2,
            "use_advanced_image_generation": True,
            "advanced_image_num_variations": 2,
        }
        finished_id = client.post("/api/generate", json=body, headers=AUTH).json()["id"]
        run_to_completion(service, finished_id)
        assert service.db.get(finished_id).status == "completed"
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        yield Hostile(service, client, schema, out_dir, finished_id)
    service.db.close()


def fuzz(hostile: Hostile, method: str, path: str, mode: GenerationMode, **fixed: Any) -> Counter[int]:
    """Run schemathesis cases of one operation; every response must pass CHECKS. Returns the codes."""
    operation = hostile.schema[path][method]
    codes: Counter[int] = Counter()
    examples = 5 if (method, path) in SLOW else 40

    # The token is fixed, not fuzzed (test_auth_attacks.py does that): negative cases break the rest.
    @given(
        case=operation.as_strategy(
            generation_mode=mode, headers={"authorization": AUTH["Authorization"]}, **fixed
        )
    )
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,  # no .hypothesis/ dir in the repo
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        if case.headers:  # Prefer: wait=N holds the answer N s for a job the fake Director never runs
            case.headers.pop("Prefer", None)
        response = case.call(headers=AUTH)
        codes[response.status_code] += 1
        case.validate_response(response, checks=CHECKS)

    run()
    return codes


# -- schemathesis ---------------------------------------------------------------------------------


def test_every_operation_of_the_spec_is_fuzzed(hostile: Hostile) -> None:
    in_spec = {(op.ok().method.upper(), op.ok().path) for op in hostile.schema.get_all_operations()}
    assert in_spec == set(OPERATIONS)


FUZZ_CASES = [
    (method, path, mode)
    for method, path in OPERATIONS
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    if not (mode is GenerationMode.NEGATIVE and (method, path) in NO_PARAMETERS)
]


@pytest.mark.parametrize(("method", "path", "mode"), FUZZ_CASES, ids=str)
def test_fuzzed_requests_get_no_5xx_and_schema_conforming_answers(
    hostile: Hostile, method: str, path: str, mode: GenerationMode
) -> None:
    codes = fuzz(hostile, method, path, mode)
    assert not [code for code in codes if code >= 500], codes
    if mode is GenerationMode.NEGATIVE:
        # Most invalid inputs are refused (unknown query parameters are ignored, as HTTP APIs do).
        assert any(400 <= code < 500 for code in codes), codes


@pytest.mark.parametrize(("method", "path"), GID_ROUTES, ids=lambda value: value)
def test_fuzzed_requests_on_a_finished_generation_get_no_5xx(
    hostile: Hostile, method: str, path: str
) -> None:
    # A real id reaches the code behind the id check: image reads, traces, SSE, exports.
    codes = fuzz(
        hostile, method, path, GenerationMode.POSITIVE, path_parameters={"generation_id": hostile.finished_id}
    )
    assert not [code for code in codes if code >= 500], codes
    if "{scene}" not in path:  # scenes 1-64 are drawn, this generation has 2
        assert any(200 <= code < 300 for code in codes), codes


# -- regressions of what the fuzzer found -----------------------------------------------------------


@pytest.mark.parametrize("offset", [2**63, 2**64, 10**30])
def test_a_huge_page_offset_is_a_422_not_a_database_overflow(hostile: Hostile, offset: int) -> None:
    answer = hostile.client.get("/api/generations", params={"offset": offset}, headers=AUTH)
    assert answer.status_code == 422, answer.text
    assert "offset" in answer.text and "1000000000" in answer.text


@pytest.mark.parametrize("last_event_id", ["²", "٣", "9" * 5000, "9" * 30, "-1", "1.5", ""])
def test_a_strange_last_event_id_replays_from_the_start_instead_of_failing(
    hostile: Hostile, last_event_id: str
) -> None:
    url = f"/api/generations/{hostile.finished_id}/events"
    by_query = hostile.client.get(url, params={"last_event_id": last_event_id}, headers=AUTH)
    by_header = hostile.client.get(url, headers={**AUTH, "Last-Event-ID": last_event_id.encode()})
    for answer in (by_query, by_header):
        assert answer.status_code == 200, answer.text
        assert "event: done" in answer.text


# -- explicit attacks on POST /api/generate ---------------------------------------------------------


def post_raw(hostile: Hostile, content: bytes, content_type: str = "application/json") -> Any:
    return hostile.client.post(
        "/api/generate", content=content, headers={**AUTH, "Content-Type": content_type}
    )


def messages(answer: Any) -> str:
    """Every message of an error answer as one string."""
    detail = answer.json()["detail"]
    return " | ".join(item["msg"] for item in detail) if isinstance(detail, list) else str(detail)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"prompt": "x" * 4001}, "at most 4000 characters"),
        ({"prompt": "x", "negative_prompt": "n" * 2001}, "at most 2000 characters"),
        ({"prompt": ""}, "at least 1 character"),
        ({"prompt": "a\x00b"}, "prompt contains control character U+0000 at position 1"),
        ({"prompt": "bell\x07"}, "control character U+0007"),
        ({"prompt": "\x1b[31mred"}, "control character U+001B at position 0"),
        ({"prompt": "del\x7f"}, "control character U+007F"),
        ({"prompt": "nel\x85"}, "control character U+0085"),
        ({"prompt": "x", "negative_prompt": "\x00"}, "negative_prompt contains control character U+0000"),
        ({"num_scenes": 2}, "prompt: Field required"),
        ({"prompt": "x", "colour": "red"}, "unknown field 'colour'"),
        ({"prompt": "x", "__proto__": {"admin": True}}, "unknown field '__proto__'"),
        ({"prompt": ["x"]}, "prompt: Input should be a valid string"),
        ({"prompt": {"$ne": ""}}, "prompt: Input should be a valid string"),
    ],
)
def test_invalid_bodies_are_422s_that_say_what_to_fix(
    hostile: Hostile, body: dict[str, Any], expected: str
) -> None:
    answer = hostile.client.post("/api/generate", json=body, headers=AUTH)
    assert answer.status_code == 422, answer.text
    assert expected in messages(answer)


NUMERIC_FIELDS = {
    "advanced_image_quality_threshold": "0.0 to 100.0",
    "advanced_image_num_variations": "2 to 8",
    "advanced_image_max_enhancement_iterations": "1 to 10",
    "num_scenes": "1 to 8",
    "seed": "0 to 2147483647",
}
BAD_NUMBERS = [
    "-1",
    "NaN",
    "Infinity",
    "-Infinity",
    "1e309",
    "1e400",
    str(2**64),
    '"abc"',
    '"4"',  # no string is read as a number (the schema says number)
    "[]",
    "{}",
    "true",
]


@pytest.mark.parametrize("literal", BAD_NUMBERS)
@pytest.mark.parametrize("field", list(NUMERIC_FIELDS))
def test_bad_numbers_are_422s_naming_the_field(hostile: Hostile, field: str, literal: str) -> None:
    answer = post_raw(hostile, f'{{"prompt": "x", "{field}": {literal}}}'.encode())
    assert answer.status_code == 422, answer.text
    text = messages(answer)
    assert text.startswith(f"{field}") or f"{field} must" in text, text
    if literal in ("-1", str(2**64)):
        assert NUMERIC_FIELDS[field] in text  # out of range: the range is named


@pytest.mark.parametrize("field", ["advanced_image_num_variations", "num_scenes", "seed"])
def test_fractional_values_of_integer_fields_are_refused(hostile: Hostile, field: str) -> None:
    answer = post_raw(hostile, f'{{"prompt": "x", "{field}": 2.5}}'.encode())
    assert answer.status_code == 422 and messages(answer).startswith(field), answer.text


@pytest.mark.parametrize(
    ("content", "content_type", "status", "expected"),
    [
        (b"prompt=hello", "application/json", 422, "not valid JSON"),
        (b'{"prompt": "x",}', "application/json", 422, "not valid JSON"),
        (b'["prompt", "x"]', "application/json", 422, "must be a JSON object"),
        (b'"just a string"', "application/json", 422, "must be a JSON object"),
        (b"null", "application/json", 422, "must be a JSON object"),
        (b"", "application/json", 422, "request body is missing"),
        (b'{"prompt": "caf\xe9"}', "application/json", 400, "invalid UTF-8"),
        (b"[" * 40_000 + b"]" * 40_000, "application/json", 400, "nested too deep"),
        (b'{"prompt": "a\\ud800b"}', "application/json", 422, "prompt: not valid Unicode"),
        (b'{"prompt": "\\udfff"}', "application/json", 422, "prompt: not valid Unicode"),
        (b'{"prompt": "x"}', "text/plain", 422, "must be a JSON object"),
    ],
    ids=lambda value: value[:24] if isinstance(value, bytes) else value,
)
def test_malformed_bodies_are_4xx_that_say_what_to_fix(
    hostile: Hostile, content: bytes, content_type: str, status: int, expected: str
) -> None:
    answer = post_raw(hostile, content, content_type)
    assert answer.status_code == status, answer.text
    assert expected in messages(answer)


@pytest.mark.parametrize(
    ("path", "size", "limit"),
    [
        # a generate body may carry a base64 reference_image: 128 KiB + 11,200,000 characters
        ("/api/generate", 11_400_000, 11_331_072),
        ("/api/generate", 40_000_000, 11_331_072),
        ("/api/generations/0123456789abcdef/cancel", 200_000, 131_072),
        ("/api/uploads", 8_388_609, 8_388_608),
    ],
)
def test_a_huge_body_is_refused_unread_with_413(hostile: Hostile, path: str, size: int, limit: int) -> None:
    content = json.dumps({"prompt": "x" * size}).encode()
    answer = hostile.client.post(path, content=content, headers=JSON_AUTH)
    assert answer.status_code == 413, answer.text
    assert f"limit is {limit} bytes" in answer.json()["detail"]


def test_the_python_handle_refuses_the_same_text() -> None:
    for prompt in ("a\x00b", "lone \ud800 surrogate"):
        with pytest.raises(ValueError, match="prompt"):
            GenerateRequest(prompt=prompt)


@pytest.mark.parametrize(
    "prompt",
    [
        "tabs\tnew\nlines\r\nare text",
        "RTL \u202eoverride\u202c and zero\u200bwidth\u200d joiners",
        "emoji 🚲💡 and 𝕗𝕒𝕟𝕔𝕪 and combining e\u0301",
        "\ufeffBOM and CJK 自行车灯 and Arabic دراجة",
        "<script>alert(1)</script> {{7*7}} ${jndi:ldap://x} %s%n",
        "' OR 1=1; DROP TABLE generations; --",
    ],
)
def test_odd_but_valid_text_is_accepted_and_stored_verbatim(hostile: Hostile, prompt: str) -> None:
    answer = hostile.client.post("/api/generate", json={"prompt": prompt, "num_scenes": 1}, headers=AUTH)
    assert answer.status_code == 202, answer.text
    status = hostile.client.get(answer.json()["status_url"], headers=AUTH).json()
    assert status["prompt"] == prompt


# -- ids and paths ----------------------------------------------------------------------------------

HOSTILE_IDS = [
    "../../etc/passwd",
    "..%2F..%2Fetc%2Fpasswd",
    "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "..%2F",
    "%2e%2e",
    "..",
    "....//....//etc//passwd",
    "..\\..\\windows\\win.ini",
    "%00",
    "id%0d%0aSet-Cookie:%20x=1",
    "a" * 65,
    "a" * 8000,
    "%252e%252e%252f",
    "generation;rm%20-rf",
]


@pytest.mark.parametrize("generation_id", HOSTILE_IDS, ids=lambda value: value[:32])
@pytest.mark.parametrize(("method", "path"), GID_ROUTES, ids=lambda value: value)
def test_path_traversal_ids_are_4xx_that_say_what_to_fix(
    hostile: Hostile, method: str, path: str, generation_id: str
) -> None:
    url = path.replace("{generation_id}", generation_id).replace("{scene}", "1").replace("{k}", "1")
    answer = hostile.client.request(method, url, headers=AUTH)
    assert 400 <= answer.status_code < 500, (url, answer.status_code, answer.text)
    assert answer.headers["content-type"].startswith("application/json")
    text = messages(answer)
    assert "generation" in text or "no route matches" in text, text
    assert "root:" not in answer.text and "[fonts]" not in answer.text


@pytest.mark.parametrize(
    "path",
    [
        "/ui/..%2F..%2Fetc%2Fpasswd",
        "/ui/%2e%2e/%2e%2e/etc/passwd",
        "/ui/..%5C..%5Cetc%5Cpasswd",
        "/ui/....//....//etc/passwd",
        "/ui/index.html%00.png",
        "/ui/%2e%2e%2fserve%2fingress.py",
        "/ui/" + "a" * 5000 + ".js",
        "/ui/app.js%2F..%2F..%2F..%2Fingress.py",
    ],
    ids=lambda value: value[:40],
)
def test_gallery_paths_never_leave_the_static_dir(hostile: Hostile, path: str) -> None:
    answer = hostile.client.get(path, follow_redirects=False)
    assert answer.status_code == 404, (path, answer.status_code)
    assert "no such file" in answer.text or "no route matches" in answer.text
    assert "root:" not in answer.text and "def create_api" not in answer.text


def test_prompts_are_data_never_commands_or_paths(tmp_path: Path) -> None:
    canary = tmp_path / "pwned"
    prompt = (
        f'"; rm -rf / $(touch {canary}) `touch {canary}` ../../x ..\\..\\x %2e%2e%2f '
        f"{{{{7*7}}}} && echo pwned > {canary}"
    )
    out_dir = tmp_path / "out"
    service = IngressService(AppArgs(output_dir=str(out_dir)).ingress_settings(), RecordingDirector())
    try:
        with TestClient(create_api(service)) as client:
            body = {
                "prompt": prompt,
                "negative_prompt": "../../../etc/shadow",
                "num_scenes": 2,
                "use_advanced_image_generation": True,
                "advanced_image_num_variations": 2,
            }
            answer = client.post("/api/generate", json=body, headers=AUTH)
            assert answer.status_code == 202, answer.text
            generation_id = answer.json()["id"]
            run_to_completion(service, generation_id)
            status = client.get(f"/api/status/{generation_id}", headers=AUTH).json()
    finally:
        service.db.close()
    assert status["status"] == "completed" and status["prompt"] == prompt
    assert service.db.get(generation_id).request["negative_prompt"] == "../../../etc/shadow"
    assert not canary.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    allowed = re.compile(
        rf"^(scenechain\.db(-wal|-shm|-journal)?"
        rf"|generations(/{generation_id}(/scene_[12]\.png)?)?"
        rf"|reference_image_traces(/{generation_id}(/scene_[12](/[A-Za-z0-9_.]+)?)?)?)$"
    )
    tree = sorted(str(p.relative_to(out_dir)) for p in out_dir.rglob("*"))
    unexpected = [p for p in tree if not allowed.match(p)]
    assert not unexpected, unexpected
    assert any(p.endswith("scene_2.png") for p in tree)  # the run wrote files, all of them in place
