"""Schemathesis hooks of the OpenAPI contract run (``test_openapi_contract.py``; loaded by file path).

Two jobs, each narrow and written down:

1. Inputs whose validity no JSON Schema can state. Schemathesis' ``positive_data_acceptance``
   expects every schema-valid request to be accepted, but two fields of ``POST /api/generate`` are
   valid only by what they point at: ``webhook_url`` (its host must resolve, to a public address:
   the SSRF rule, and this machine resolves nothing) and ``reference_image`` (base64 of a real
   PNG/JPEG/WebP file). Before a request is sent, such a value of the right JSON type is replaced
   by one that points at something real (a tiny PNG) or, for the webhook, left out. Schemathesis
   re-classifies a JSON body after the edit, so every check still judges the request really sent;
   wrongly typed (negative) values stay as drawn. (The raw body of ``POST /api/uploads`` is not
   re-classified after an edit: the test's config lets that operation answer 422 to bytes that are
   no image instead.)
2. Cost on the shared live app: every generation the fuzzer creates is cancelled at once (it
   would otherwise run on the tiny models for minutes), and a valid ``Prefer: wait=N`` is left out
   (each would hold the request N seconds; tests/integration/test_job_api_http.py covers it).

The test passes the API's URL and a token through ``SCENECHAIN_CONTRACT_URL`` / ``_TOKEN``.
"""

from __future__ import annotations

import base64
import io
import os
import re
from typing import Any

import httpx
import schemathesis
from PIL import Image

UPLOAD_ID = re.compile(r"^img_[0-9a-f]{32}$")
PREFER_WAIT = re.compile(r"^wait(=\d+)?$")


def _tiny_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 40, 40)).save(buffer, format="PNG")
    return buffer.getvalue()


TINY_PNG = _tiny_png()


def _is(case: Any, method: str, path: str) -> bool:
    return case.operation.method.upper() == method and case.operation.path == path


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    if _is(case, "POST", "/api/generate"):
        body = case.body
        if isinstance(body, dict):
            url, events = body.get("webhook_url"), body.get("webhook_events")
            if isinstance(url, str | None) and isinstance(events, list | None):
                body.pop("webhook_url", None)
                body.pop("webhook_events", None)
            image = body.get("reference_image")
            if isinstance(image, str) and not UPLOAD_ID.match(image):
                body["reference_image"] = base64.b64encode(TINY_PNG).decode("ascii")
        headers = case.headers or {}
        for name in list(headers):
            if (
                name.lower() == "prefer"
                and isinstance(headers[name], str)
                and PREFER_WAIT.match(headers[name])
            ):
                del headers[name]


@schemathesis.hook
def after_call(context: Any, case: Any, response: Any) -> None:
    if not _is(case, "POST", "/api/generate") or response.status_code != 202:
        return
    generation_id = response.json().get("id")
    base_url, token = os.environ["SCENECHAIN_CONTRACT_URL"], os.environ["SCENECHAIN_CONTRACT_TOKEN"]
    httpx.post(
        f"{base_url}/api/generations/{generation_id}/cancel",
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
    )
