"""Secure by default (issue #19), without Ray: serving keys, rotation, the dev secret, edge headers.

Each test does what a deployer, a caller or an attacker would: builds the app, sends a token,
reads an answer's headers. The live checks (a real `scenechain run`, the log grep) are in
tests/integration/test_security.py.
"""

from __future__ import annotations

import io
import os
import re
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fakes import RecordingDirector
from fastapi.testclient import TestClient
from PIL import Image
from pydantic import ValidationError

import api.auth
from api.auth import (
    KNOWN_PUBLIC_SECRETS,
    InsecureKeyError,
    JwtSettings,
    check_serving_keys,
    mint_token,
    signing_key_id,
    verify_token,
)
from api.ingress import IngressService, create_api
from serve.cli import DEV_SECRET_FILE, is_loopback, load_or_create_dev_secret, main, serving_app_args
from serve.config import AppArgs
from serve.serve_config import SERVE_PROFILES, render_profile

REPO = Path(__file__).resolve().parents[3]
OLD_DEFAULT = "scenechain-dev-secret-change-me-in-production"
JWT_ENV = (
    "SCENECHAIN_JWT_SECRET",
    "SCENECHAIN_JWT_PREVIOUS_SECRETS",
    "SCENECHAIN_JWT_PUBLIC_KEY_FILE",
    "SCENECHAIN_JWT_PREVIOUS_PUBLIC_KEY_FILES",
    "SCENECHAIN_JWT_PRIVATE_KEY_FILE",
)
BODY = {"prompt": "A 30-second ad for a solar bike light", "num_scenes": 1}


@pytest.fixture(autouse=True)
def no_jwt_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts from an environment that configures no JWT key."""
    for name in JWT_ENV:
        monkeypatch.delenv(name, raising=False)


def strong() -> str:
    return secrets.token_urlsafe(36)


def rsa_pair(bits: int = 2048) -> tuple[str, str]:
    """(private PEM, public PEM)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


def client_for(tmp_path: Path, jwt_settings: JwtSettings) -> TestClient:
    args = AppArgs(output_dir=str(tmp_path / "out"), jwt=jwt_settings)
    service = IngressService(args.ingress_settings(), RecordingDirector())
    return TestClient(create_api(service))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# -- 1. no known secret ------------------------------------------------------------------------------


def test_there_is_no_default_secret_and_the_old_one_is_known_public() -> None:
    assert not hasattr(api.auth, "DEFAULT_DEV_SECRET")
    assert JwtSettings().secret is None
    assert OLD_DEFAULT in KNOWN_PUBLIC_SECRETS
    # an unconfigured process signs with a random key of its own, never a constant
    assert JwtSettings().signing_secret() not in KNOWN_PUBLIC_SECRETS
    assert len(JwtSettings().signing_secret().encode()) >= 32


@pytest.mark.parametrize(
    ("secret", "says"),
    [
        (None, "is not set"),
        ("", "is not set"),
        ("too-short-but-random-7f3a", "25 bytes"),
        (OLD_DEFAULT, "publicly known"),
        (f"  {OLD_DEFAULT}\n", "publicly known"),
        *[(value, "publicly known") for value in sorted(KNOWN_PUBLIC_SECRETS)],
    ],
)
def test_build_app_refuses_a_missing_short_or_public_secret(
    secret: str | None, says: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from serve.app import build_app

    if secret is not None:
        monkeypatch.setenv("SCENECHAIN_JWT_SECRET", secret)
    with pytest.raises(InsecureKeyError, match=says) as refused:
        build_app({"profile": "tiny", "output_dir": str(tmp_path / "out")})
    message = str(refused.value)
    assert "SCENECHAIN_JWT_SECRET" in message  # names the variable to set
    if secret and secret.strip():
        assert secret.strip() not in message  # and never the value


def test_a_secret_passed_in_the_config_args_is_judged_the_same(tmp_path: Path) -> None:
    from serve.app import build_app

    args = {"profile": "tiny", "output_dir": str(tmp_path / "out"), "jwt": {"secret": OLD_DEFAULT}}
    with pytest.raises(InsecureKeyError, match="SCENECHAIN_JWT_SECRET is a publicly known value"):
        build_app(args)
    build_app({**args, "jwt": {"secret": strong()}})  # a good one builds


def test_a_weak_previous_secret_is_refused_too() -> None:
    settings = JwtSettings(secret=strong(), previous_secrets=[strong(), OLD_DEFAULT])
    with pytest.raises(InsecureKeyError, match=r"SCENECHAIN_JWT_PREVIOUS_SECRETS entry 2 \(or line 3 of"):
        check_serving_keys(settings)


def test_production_config_builds_only_with_a_secret(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from serve.app import build_app

    args = yaml.safe_load((REPO / "configs" / "production.yaml").read_text())["applications"][0]["args"]
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'db.sqlite'}")
    with pytest.raises(InsecureKeyError, match="SCENECHAIN_JWT_SECRET is not set"):
        build_app(args)


def test_a_token_signed_with_the_old_default_is_401(tmp_path: Path) -> None:
    with client_for(tmp_path, JwtSettings(secret=strong())) as client:
        forged_with_kid = mint_token(JwtSettings(secret=OLD_DEFAULT), "mallory")
        forged_plain = jwt.encode(
            {"sub": "mallory", "iss": "scenechain", "exp": 9_999_999_999}, OLD_DEFAULT, algorithm="HS256"
        )
        for token in (forged_with_kid, forged_plain):
            answer = client.get("/api/generations", headers=bearer(token))
            assert answer.status_code == 401, answer.text
            assert OLD_DEFAULT not in answer.text


def test_config_files_hold_no_secret_even_when_the_environment_has_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secret = strong()
    monkeypatch.setenv("SCENECHAIN_JWT_SECRET", secret)
    for path in sorted((REPO / "configs").glob("*.yaml")):
        text = path.read_text()
        args = yaml.safe_load(text)["applications"][0]["args"]
        assert "jwt" not in args, path.name
        assert "database_url" not in args, path.name  # the DB URL carries a password: env only
        assert not any(value in text for value in KNOWN_PUBLIC_SECRETS), path.name
    for name in SERVE_PROFILES:
        rendered = yaml.safe_dump(render_profile(name))
        assert secret not in rendered and "secret" not in rendered.lower(), name


def test_validation_errors_and_reprs_do_not_quote_keys_or_passwords() -> None:
    secret, password = strong(), "pg-" + secrets.token_hex(8)
    with pytest.raises(ValidationError) as refused:
        AppArgs.model_validate({"jwt": {"secret": secret, "algorithm": "RS256"}})
    assert secret not in str(refused.value) and "public_key" in str(refused.value)
    with pytest.raises(ValidationError) as refused:
        AppArgs.model_validate({"database_url": f"postgresql://u:{password}@db/x", "profile": "huge"})
    assert password not in str(refused.value)
    args = AppArgs(database_url=f"postgresql://u:{password}@db/x", jwt={"secret": secret})
    assert secret not in repr(args) and password not in repr(args) and secret not in str(args.jwt)


# -- RS256 -------------------------------------------------------------------------------------------


def test_rs256_serves_with_a_parsable_public_key_and_no_private_key(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from serve.app import build_app

    private, public = rsa_pair()
    public_file = tmp_path / "pub.pem"
    public_file.write_text(public)
    monkeypatch.setenv("SCENECHAIN_JWT_PUBLIC_KEY_FILE", str(public_file))
    build_app({"profile": "tiny", "output_dir": str(tmp_path / "out")})  # no secret, no private key
    # a serving replica never receives a private key, even when the builder has one
    issuer = JwtSettings(algorithm="RS256", public_key=public, private_key=private)
    assert AppArgs(jwt=issuer).ingress_settings().jwt.private_key is None

    public_file.write_text("-----BEGIN PUBLIC KEY-----\nnot a key\n-----END PUBLIC KEY-----\n")
    with pytest.raises(InsecureKeyError, match="SCENECHAIN_JWT_PUBLIC_KEY_FILE does not hold a PEM RSA"):
        build_app({"profile": "tiny", "output_dir": str(tmp_path / "out")})
    monkeypatch.setenv("SCENECHAIN_JWT_PUBLIC_KEY_FILE", str(tmp_path / "missing.pem"))
    with pytest.raises(InsecureKeyError, match=r"SCENECHAIN_JWT_PUBLIC_KEY_FILE=.*cannot read"):
        build_app({"profile": "tiny", "output_dir": str(tmp_path / "out")})


def test_rs256_refuses_weak_or_non_rsa_public_keys() -> None:
    _, short_public = rsa_pair(1024)
    with pytest.raises(InsecureKeyError, match="1024-bit"):
        check_serving_keys(JwtSettings(algorithm="RS256", public_key=short_public))
    ec_public = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    with pytest.raises(InsecureKeyError, match="not an RSA public key"):
        check_serving_keys(JwtSettings(algorithm="RS256", public_key=ec_public))


# -- 2. rotation -------------------------------------------------------------------------------------


def test_rotation_accepts_both_keys_and_signs_with_the_new_one(tmp_path: Path) -> None:
    old, new = strong(), strong()
    before = JwtSettings(secret=old)
    during = JwtSettings(secret=new, previous_secrets=[old])
    after = JwtSettings(secret=new)
    old_token = mint_token(before, "alice")
    old_token_without_kid = jwt.encode(
        {"sub": "alice", "iss": "scenechain", "exp": 9_999_999_999}, old, algorithm="HS256"
    )
    new_token = mint_token(during, "alice")
    assert jwt.get_unverified_header(new_token)["kid"] == signing_key_id(after) != signing_key_id(before)
    assert verify_token(after, new_token) == "alice"  # signed with the new key alone

    with client_for(tmp_path, during) as client:
        for token in (old_token, old_token_without_kid, new_token):
            assert client.get("/api/generations", headers=bearer(token)).status_code == 200
    with client_for(tmp_path, after) as client:  # the old key retired: its tokens stop working
        assert client.get("/api/generations", headers=bearer(new_token)).status_code == 200
        for token in (old_token, old_token_without_kid):
            assert client.get("/api/generations", headers=bearer(token)).status_code == 401


def test_kid_picks_the_key_and_cannot_point_a_token_at_another(tmp_path: Path) -> None:
    old, new = strong(), strong()
    during = JwtSettings(secret=new, previous_secrets=[old])
    claims = {"sub": "mallory", "iss": "scenechain", "exp": 9_999_999_999}
    wrong_kid = jwt.encode(claims, old, algorithm="HS256", headers={"kid": signing_key_id(during)})
    unknown_kid = jwt.encode(claims, strong(), algorithm="HS256", headers={"kid": "0123456789abcdef"})
    with client_for(tmp_path, during) as client:
        for token in (wrong_kid, unknown_kid):
            answer = client.get("/api/generations", headers=bearer(token))
            assert answer.status_code == 401 and token not in answer.text


def test_rotation_from_the_environment_and_the_token_command(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    old, older, new = strong(), strong(), strong()
    monkeypatch.setenv("SCENECHAIN_JWT_SECRET", new)
    monkeypatch.setenv("SCENECHAIN_JWT_PREVIOUS_SECRETS", f"{old}, {older},")
    settings = AppArgs.from_env().jwt
    assert settings.secret == new and settings.previous_secrets == [old, older]
    check_serving_keys(settings)
    assert main(["token", "--user", "dana"]) == 0
    token = capsys.readouterr().out.strip()
    assert jwt.get_unverified_header(token)["kid"] == signing_key_id(JwtSettings(secret=new))
    assert verify_token(JwtSettings(secret=new), token) == "dana"  # signed with the new key
    assert verify_token(settings, mint_token(JwtSettings(secret=older), "erin")) == "erin"


def test_rotation_through_a_secrets_file_is_read_at_each_build(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from serve.app import build_app

    old, new = strong(), strong()
    secrets_file = tmp_path / "jwt.secrets"
    secrets_file.write_text(f"# the first line signs\n{old}\n")
    monkeypatch.setenv("SCENECHAIN_JWT_SECRETS_FILE", str(secrets_file))
    assert AppArgs.from_env().jwt.secret == old
    old_token = mint_token(AppArgs.from_env().jwt, "alice")
    secrets_file.write_text(f"{new}\n{old}\n")  # phase 1: the new key signs, the old still verifies
    during = AppArgs.from_env().jwt
    assert (during.secret, during.previous_secrets) == (new, [old])
    assert verify_token(during, old_token) == "alice"
    build_app({"profile": "tiny", "output_dir": str(tmp_path / "out")})
    secrets_file.write_text(f"{new}\n{OLD_DEFAULT}\n")  # a public value is refused in any line
    with pytest.raises(InsecureKeyError, match="line 2 of SCENECHAIN_JWT_SECRETS_FILE"):
        build_app({"profile": "tiny", "output_dir": str(tmp_path / "out")})
    monkeypatch.setenv("SCENECHAIN_JWT_SECRET", new)  # two sources: ambiguous, refused
    with pytest.raises(InsecureKeyError, match="both set"):
        AppArgs.from_env()


def test_rs256_rotation_verifies_with_previous_public_keys(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    old_private, old_public = rsa_pair()
    new_private, new_public = rsa_pair()
    (tmp_path / "new.pem").write_text(new_public)
    (tmp_path / "old.pem").write_text(old_public)
    monkeypatch.setenv("SCENECHAIN_JWT_PUBLIC_KEY_FILE", str(tmp_path / "new.pem"))
    monkeypatch.setenv("SCENECHAIN_JWT_PREVIOUS_PUBLIC_KEY_FILES", str(tmp_path / "old.pem"))
    serving = AppArgs.from_env().ingress_settings().jwt
    check_serving_keys(serving)
    old_token = mint_token(
        JwtSettings(algorithm="RS256", public_key=old_public, private_key=old_private), "a"
    )
    new_token = mint_token(
        JwtSettings(algorithm="RS256", public_key=new_public, private_key=new_private), "b"
    )
    assert verify_token(serving, old_token) == "a" and verify_token(serving, new_token) == "b"
    with pytest.raises(api.auth.AuthError):
        verify_token(JwtSettings(algorithm="RS256", public_key=new_public), old_token)


# -- loopback dev: the generated secret ------------------------------------------------------------


def test_the_dev_secret_is_random_private_and_made_once(tmp_path: Path) -> None:
    path = tmp_path / "out" / DEV_SECRET_FILE
    first = load_or_create_dev_secret(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first.encode()) >= 32 and first not in KNOWN_PUBLIC_SECRETS
    assert load_or_create_dev_secret(path) == first  # reused, not regenerated
    assert load_or_create_dev_secret(tmp_path / "other" / DEV_SECRET_FILE) != first
    path.chmod(0o644)
    with pytest.raises(InsecureKeyError, match="readable by other users"):
        load_or_create_dev_secret(path)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.1.2.3", True), ("localhost", True), ("::1", True), ("[::1]", True),
     ("0.0.0.0", False), ("::", False), ("10.0.0.5", False), ("example.com", False)],
)  # fmt: skip
def test_loopback_addresses(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_only_loopback_dev_generates_a_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    dev = serving_app_args(AppArgs.from_env(profile="tiny", output_dir=str(out)), "127.0.0.1")
    assert dev.jwt.secret == (out / DEV_SECRET_FILE).read_text().strip()
    # the file exists now, and still: another bind or profile needs SCENECHAIN_JWT_SECRET
    for profile, host in (("tiny", "0.0.0.0"), ("production", "127.0.0.1"), ("gpu-bench", "localhost")):
        with pytest.raises(InsecureKeyError, match="SCENECHAIN_JWT_SECRET is not set"):
            serving_app_args(AppArgs.from_env(profile=profile, output_dir=str(out)), host)
    # a configured secret is judged like any other start's, on loopback too
    monkeypatch.setenv("SCENECHAIN_JWT_SECRET", "short")
    with pytest.raises(InsecureKeyError, match="5 bytes"):
        serving_app_args(AppArgs.from_env(profile="tiny", output_dir=str(out)), "127.0.0.1")
    good = strong()
    monkeypatch.setenv("SCENECHAIN_JWT_SECRET", good)
    assert (
        serving_app_args(AppArgs.from_env(profile="tiny", output_dir=str(out)), "0.0.0.0").jwt.secret == good
    )


def test_token_command_uses_the_dev_secret_or_says_what_to_set(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    assert main(["token", "--user", "dana", "--output-dir", str(out)]) == 2
    assert "SCENECHAIN_JWT_SECRET is not set" in capsys.readouterr().err
    secret = load_or_create_dev_secret(out / DEV_SECRET_FILE)
    assert main(["token", "--user", "dana", "--output-dir", str(out)]) == 0
    assert verify_token(JwtSettings(secret=secret), capsys.readouterr().out.strip()) == "dana"


def test_token_command_refuses_the_old_default(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SCENECHAIN_JWT_SECRET", OLD_DEFAULT)
    assert main(["token", "--user", "dana"]) == 2
    captured = capsys.readouterr()
    assert "publicly known" in captured.err and OLD_DEFAULT not in captured.err + captured.out


# -- 3. headers and HEAD ------------------------------------------------------------------------------


@pytest.fixture
def app(tmp_path: Path) -> Iterator[tuple[TestClient, IngressService, dict[str, str]]]:
    settings = JwtSettings(secret=strong())
    args = AppArgs(output_dir=str(tmp_path / "out"), jwt=settings)
    service = IngressService(args.ingress_settings(), RecordingDirector())
    with TestClient(create_api(service)) as client:
        yield client, service, bearer(mint_token(settings, "alice"))
    service.db.close()


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (10, 200, 10)).save(buffer, format="PNG")
    return buffer.getvalue()


def assert_base_headers(headers: Any) -> None:
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in headers["content-security-policy"]


def test_gallery_has_a_strict_csp_and_no_inline_code(app: Any) -> None:
    client, _, _ = app
    page = client.get("/ui/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert_base_headers(page.headers)
    policy = dict(
        (part.split()[0], part.split()[1:]) for part in page.headers["content-security-policy"].split("; ")
    )
    assert policy["default-src"] == ["'self'"] and policy["script-src"] == ["'self'"]
    assert policy["style-src"] == ["'self'"] and policy["object-src"] == ["'none'"]
    assert not any("'unsafe-inline'" in values or "'unsafe-eval'" in values for values in policy.values())
    # the CSP allows no inline code: the page must have none (scripts and styles are files)
    html = page.text
    assert re.findall(r"<script\b[^>]*>", html) == ['<script src="app.js">']
    assert "<style" not in html and not re.search(r"\sstyle\s*=", html)
    assert not re.search(r"\son[a-z]+\s*=", html), "inline event handler"
    for name, kind in (("app.js", "javascript"), ("style.css", "text/css")):
        answer = client.get(f"/ui/{name}")
        assert answer.status_code == 200 and kind in answer.headers["content-type"]
        assert_base_headers(answer.headers)


def test_json_image_and_export_answers_carry_the_headers_and_their_types(app: Any) -> None:
    client, service, headers = app
    generation_id = client.post("/api/generate", json=BODY, headers=headers).json()["id"]
    service.storage.write_scene_image(generation_id, 1, png())
    scene = {
        "index": 1,
        "prompt": "a bike light at dusk",
        "enhanced_prompt": None,
        "reference_from": None,
        "image_url": f"/api/generations/{generation_id}/scenes/1/image",
        "seeds": [1],
        "num_variations": 1,
        "best_index": 1,
    }
    service.db.update(generation_id, status="completed", scenes=[scene], scenes_done=1)

    status = client.get(f"/api/status/{generation_id}", headers=headers)
    listing = client.get("/api/generations", headers=headers)
    for answer in (status, listing):
        assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
        assert answer.headers["cache-control"] == "no-store"
        assert answer.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
        assert_base_headers(answer.headers)

    image = client.get(f"/api/generations/{generation_id}/scenes/1/image", headers=headers)
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    assert image.content == png() and image.headers["cache-control"] == "no-store"
    assert_base_headers(image.headers)

    sheet = client.get(f"/api/generations/{generation_id}/export/contact-sheet.png", headers=headers)
    assert sheet.status_code == 200, sheet.text
    assert sheet.headers["content-type"] == "image/png" and sheet.content.startswith(b"\x89PNG")
    assert sheet.headers["content-disposition"].startswith("attachment;")
    assert sheet.headers["cache-control"] == "no-store"
    assert_base_headers(sheet.headers)

    refused = client.get("/api/generations")  # a 401 is marked the same way
    assert refused.status_code == 401 and refused.headers["cache-control"] == "no-store"
    assert_base_headers(refused.headers)
    health = client.get("/healthz")
    assert health.status_code == 200 and "cache-control" not in health.headers
    assert_base_headers(health.headers)


def test_head_answers_wherever_get_does(app: Any) -> None:
    client, service, headers = app
    generation_id = client.post("/api/generate", json=BODY, headers=headers).json()["id"]
    service.storage.write_scene_image(generation_id, 1, png())
    for path, auth in (
        ("/ui/", {}),
        ("/ui/app.js", {}),
        ("/healthz", {}),
        ("/openapi.json", {}),
        ("/api/generations", headers),
        (f"/api/status/{generation_id}", headers),
        (f"/api/generations/{generation_id}/scenes/1/image", headers),
    ):
        get, head = client.get(path, headers=auth), client.head(path, headers=auth)
        assert head.status_code == get.status_code == 200, path
        assert head.content == b"", path
        assert head.headers["content-type"] == get.headers["content-type"], path
        if "content-length" in get.headers:
            assert head.headers["content-length"] == get.headers["content-length"], path
        assert_base_headers(head.headers)
    # the live events of a generation still running: an endless stream, yet HEAD answers at once
    events = client.head(f"/api/generations/{generation_id}/events", headers=headers)
    assert events.status_code == 200 and events.content == b""
    assert events.headers["content-type"].startswith("text/event-stream")
    assert client.head("/api/generations").status_code == 401  # HEAD is authenticated like GET
    assert client.head("/api/generate", headers=headers).status_code == 405  # a POST-only route


def test_head_adds_nothing_to_the_openapi_document(app: Any) -> None:
    client, _, _ = app
    document = client.get("/openapi.json").json()
    methods = {method for operations in document["paths"].values() for method in operations}
    assert "head" not in methods and methods <= {"get", "post"}


def test_every_api_operation_needs_a_token(app: Any) -> None:
    # OWASP API5: no /api/ function is reachable anonymously, whatever the route (from the spec).
    client, _, headers = app
    generation_id = client.post("/api/generate", json=BODY, headers=headers).json()["id"]
    values = {"generation_id": generation_id, "scene": "1", "k": "1"}
    document = client.get("/openapi.json").json()
    operations = [
        (method, path)
        for path, methods in document["paths"].items()
        if path.startswith("/api/")
        for method in methods
    ]
    assert len(operations) >= 9
    for method, path in operations:
        url = re.sub(r"{(\w+)}", lambda match: values[match.group(1)], path)
        answer = client.request(method.upper(), url, json=BODY if method == "post" else None)
        assert answer.status_code == 401, (method, path, answer.status_code)
        assert answer.headers["www-authenticate"] == "Bearer"


def test_the_gallery_files_hold_no_inline_script_or_style() -> None:
    static = REPO / "api" / "static"
    for page in static.glob("*.html"):
        html = page.read_text()
        for script in re.findall(r"<script\b([^>]*)>(.*?)</script>", html, flags=re.S):
            assert "src=" in script[0] and not script[1].strip(), page.name
    js = (static / "app.js").read_text()
    assert "innerHTML" not in js and ".style." not in js and "eval(" not in js
    assert os.access(static / "style.css", os.R_OK)
