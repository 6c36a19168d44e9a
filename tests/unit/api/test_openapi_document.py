"""The OpenAPI document says what the API answers: every status with its error model, strict types,
the text rule as a pattern, operation ids and links. (The live proof: tests/integration/
test_openapi_contract.py runs schemathesis with every check; test_hostile_input.py fuzzes in-process.)
"""

from __future__ import annotations

import json
import re
import sys
from types import SimpleNamespace
from typing import Any

import jsonschema
import pytest
from fakes import RecordingDirector
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.testclient import TestClient
from ray.serve.exceptions import BackPressureError
from scenechain.protocol import TEXT_PATTERN, check_text

from api.auth import mint_token
from api.errors import ERROR_DOCS, EXCEPTION_HANDLERS, Overloaded
from api.ingress import IngressService, create_api
from api.quotas import QuotaExceeded
from director.webhooks import InvalidWebhook
from serve.config import AppArgs

AUTH = {"Authorization": f"Bearer {mint_token(AppArgs().jwt, 'alice')}"}
ERROR_MODELS = {"ErrorBody", "ValidationErrorBody", "QuotaExceededBody", "OverloadedBody"}


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Any:
    out_dir = tmp_path_factory.mktemp("openapi") / "out"
    service = IngressService(AppArgs(output_dir=str(out_dir)).ingress_settings(), RecordingDirector())
    with TestClient(create_api(service)) as client:
        yield client, client.get("/openapi.json").json()
    service.db.close()


def operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method.upper(), path, op) for path, ops in spec["paths"].items() for method, op in ops.items()]


def refs(schema: dict[str, Any]) -> set[str]:
    """The component names a response schema points at (one $ref or an anyOf of them)."""
    return {item["$ref"].rsplit("/", 1)[-1] for item in schema.get("anyOf", [schema]) if "$ref" in item}


# -- statuses ----------------------------------------------------------------------------------------


def expected_statuses(path: str, operation: dict[str, Any]) -> set[str]:
    """What the edge answers on a route of this shape, whatever the route does."""
    statuses = {"413"}  # the body-size check runs before routing
    parameters = operation.get("parameters", [])
    body = operation.get("requestBody", {}).get("content", {})
    if "application/json" in body:
        statuses.add("400")  # unparsable JSON / UTF-8
    if operation.get("security"):
        statuses.add("401")
    if parameters or body:
        statuses.add("422")
    if "{generation_id}" in path:
        statuses.add("404")  # unknown, or another user's
    return statuses


def test_every_operation_documents_each_status_the_edge_answers(app: Any) -> None:
    _, spec = app
    missing = {
        f"{method} {path}": sorted(expected_statuses(path, op) - set(op["responses"]))
        for method, path, op in operations(spec)
        if expected_statuses(path, op) - set(op["responses"])
    }
    assert not missing, missing


def test_every_error_status_has_a_json_error_model_and_its_headers(app: Any) -> None:
    _, spec = app
    problems = []
    for method, path, op in operations(spec):
        for status, response in op["responses"].items():
            if int(status) < 400:
                continue
            schema = response.get("content", {}).get("application/json", {}).get("schema", {})
            if not refs(schema) or not refs(schema) <= ERROR_MODELS:
                problems.append(f"{method} {path} {status}: {schema}")
            if not response.get("description"):
                problems.append(f"{method} {path} {status}: no description")
            headers = response.get("headers", {})
            if status == "401" and not headers.get("WWW-Authenticate", {}).get("required"):
                problems.append(f"{method} {path} 401 without WWW-Authenticate")
            if status == "429" and not headers.get("Retry-After", {}).get("required"):
                problems.append(f"{method} {path} 429 without Retry-After")
    assert not problems, problems


def test_the_error_models_describe_every_field(app: Any) -> None:
    _, spec = app
    schemas = spec["components"]["schemas"]
    for name in (*ERROR_MODELS, "ValidationIssue"):
        for field, schema in schemas[name]["properties"].items():
            assert schema.get("description"), (name, field)
    # FastAPI's stock 422 model (no descriptions, no one-message form) is gone.
    assert "HTTPValidationError" not in schemas


def error_instance(error: type[Exception]) -> Exception:
    special: dict[type[Exception], Exception] = {
        Overloaded: Overloaded("full", 5, "queue_full"),
        QuotaExceeded: QuotaExceeded("too many", 7, "rate", 3),
        BackPressureError: BackPressureError(num_queued_requests=9, max_queued_requests=8),
        RequestValidationError: RequestValidationError(
            [{"loc": ("body", "prompt"), "msg": "Field required", "type": "missing"}]
        ),
        InvalidWebhook: InvalidWebhook("no", field="webhook_url"),
    }
    return special.get(error) or error("it went wrong")


@pytest.mark.parametrize("error", list(ERROR_DOCS), ids=lambda error: error.__name__)
def test_each_documented_error_is_answered_as_documented(error: type[Exception]) -> None:
    # ERROR_DOCS (what the document says) and EXCEPTION_HANDLERS (what is answered) agree.
    probe = FastAPI(exception_handlers=EXCEPTION_HANDLERS)
    probe.state.service = SimpleNamespace(settings=SimpleNamespace(retry_after_s=3))

    @probe.get("/raise")
    async def raise_it() -> None:
        raise error_instance(error)

    answer = TestClient(probe, raise_server_exceptions=False).get("/raise")
    documented = ERROR_DOCS[error]
    assert answer.status_code == documented.status, answer.text
    documented.model.model_validate(answer.json())


# -- request schema: strict types, the text rule --------------------------------------------------


@pytest.mark.parametrize("value", [0, 1, "true", "false", None, [], {}])
def test_use_advanced_image_generation_takes_only_a_json_boolean(app: Any, value: Any) -> None:
    client, spec = app
    body = spec["components"]["schemas"]["GenerateRequest"]["properties"]["use_advanced_image_generation"]
    assert body["type"] == "boolean"
    answer = client.post(
        "/api/generate", json={"prompt": "x", "use_advanced_image_generation": value}, headers=AUTH
    )
    assert answer.status_code == 422, answer.text
    assert "use_advanced_image_generation" in answer.text


@pytest.mark.parametrize(
    "field", ["num_scenes", "seed", "advanced_image_quality_threshold", "deadline_s", "reference_strength"]
)
def test_numbers_written_as_strings_are_refused(app: Any, field: str) -> None:
    client, _ = app
    answer = client.post("/api/generate", json={"prompt": "x", field: "1"}, headers=AUTH)
    assert answer.status_code == 422, answer.text
    assert f"{field} must be a number, not a string" in answer.text


def test_the_text_pattern_allows_exactly_what_check_text_allows() -> None:
    pattern = re.compile(TEXT_PATTERN)
    disagree = []
    for code in range(sys.maxunicode + 1):
        if 0xD800 <= code <= 0xDFFF:
            continue  # lone surrogates: not in UTF-8 JSON at all (refused as invalid Unicode)
        char = chr(code)
        try:
            allowed = check_text(char, "prompt") == char
        except ValueError:
            allowed = False
        if allowed != bool(pattern.fullmatch(char)):
            disagree.append(hex(code))
    assert not disagree, disagree[:20]


def test_the_text_pattern_is_plain_ecma_and_rust_regex(app: Any) -> None:
    # Only \xHH escapes in one negated class: ECMA-262 (with or without the u flag), Python and Rust
    # regex (jsonschema-rs, what schemathesis validates with) read it alike.
    assert re.fullmatch(r"\^\[\^(\\x[0-9a-f]{2}(-\\x[0-9a-f]{2})?)+\]\*\$", TEXT_PATTERN), TEXT_PATTERN
    _, spec = app
    properties = spec["components"]["schemas"]["GenerateRequest"]["properties"]
    assert properties["prompt"]["pattern"] == TEXT_PATTERN
    (text,) = [item for item in properties["negative_prompt"]["anyOf"] if item.get("type") == "string"]
    assert text["pattern"] == TEXT_PATTERN


@pytest.mark.parametrize("field", ["prompt", "negative_prompt"])
@pytest.mark.parametrize(
    ("text", "valid"), [("tab\tnew\nline\r", True), ("bell\x07", False), ("nel\x85", False)]
)
def test_schema_valid_text_is_accepted_and_schema_invalid_text_refused(
    app: Any, field: str, text: str, valid: bool
) -> None:
    client, spec = app
    body = {"prompt": "x", field: text, "num_scenes": 1}
    schema = {**spec["components"]["schemas"]["GenerateRequest"], "components": spec["components"]}
    assert jsonschema.Draft202012Validator(schema).is_valid(body) is valid
    answer = client.post("/api/generate", json=body, headers=AUTH)
    assert answer.status_code == (202 if valid else 422), answer.text


def test_fields_refused_without_their_partner_say_so_in_the_schema(app: Any) -> None:
    client, spec = app
    validator = jsonschema.Draft202012Validator(
        {**spec["components"]["schemas"]["GenerateRequest"], "components": spec["components"]}
    )
    for body in (
        {"prompt": "x", "reference_strength": 0.5},
        {"prompt": "x", "webhook_events": ["completed"]},
    ):
        assert not validator.is_valid(body)
        assert client.post("/api/generate", json=body, headers=AUTH).status_code == 422


# -- operation ids and links ------------------------------------------------------------------------


def test_operation_ids_are_the_route_function_names(app: Any) -> None:
    _, spec = app
    ids = {f"{method} {path}": op["operationId"] for method, path, op in operations(spec)}
    assert ids["POST /api/generate"] == "generate"
    assert ids["GET /api/status/{generation_id}"] == "status"
    assert len(set(ids.values())) == len(ids)


def test_a_submission_links_to_every_operation_on_its_generation(app: Any) -> None:
    _, spec = app
    by_id = {op["operationId"]: (path, op) for _, path, op in operations(spec)}
    links = spec["paths"]["/api/generate"]["post"]["responses"]["202"]["links"]
    on_a_generation = {op["operationId"] for _, path, op in operations(spec) if path.startswith("/api/")}
    on_a_generation = {
        operation
        for operation in on_a_generation
        if "{generation_id}" in by_id[operation][0] and "webhooks" not in by_id[operation][0]
    }
    assert on_a_generation <= set(links), on_a_generation - set(links)
    for link in links.values():
        assert link["operationId"] in by_id
        assert link["parameters"] == {"generation_id": "$response.body#/id"}


def test_the_document_is_valid_openapi(app: Any) -> None:
    from openapi_spec_validator import validate  # noqa: PLC0415

    _, spec = app
    validate(json.loads(json.dumps(spec)))


def test_a_bearer_scheme_not_an_authorization_parameter(app: Any) -> None:
    _, spec = app
    assert spec["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": spec["components"]["securitySchemes"]["bearer"]["description"],
    }
    for method, path, op in operations(spec):
        names = {parameter["name"].lower() for parameter in op.get("parameters", [])}
        assert "authorization" not in names, (method, path)
        assert bool(op.get("security")) == path.startswith("/api/"), (method, path)
