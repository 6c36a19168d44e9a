"""App config, auth tokens, the shipped Serve config and the CLI's token/cleanup commands."""

from __future__ import annotations

import json
from pathlib import Path

import jwt
import pytest
import yaml
from pydantic import ValidationError

from api.auth import AuthError, JwtSettings, mint_token, user_from_authorization, verify_token
from serve.cli import main, parse_duration
from serve.config import AppArgs
from store.db import Database
from store.storage import Storage

REPO = Path(__file__).resolve().parents[3]


def test_app_args_forbid_unknown_fields_and_profiles() -> None:
    with pytest.raises(ValidationError, match="extra"):
        AppArgs.model_validate({"profil": "tiny"})
    with pytest.raises(ValidationError, match="unknown profile"):
        AppArgs(profile="huge")
    with pytest.raises(ValidationError, match="unknown scorers"):
        AppArgs(score_weights={"sharpness": 1.0})


def test_model_overrides_merge_options_for_fault_injection() -> None:
    args = AppArgs(model_overrides={"pickscore": {"options": {"fail": "boom"}}})
    spec = args.model_spec("pickscore")
    assert spec.options["fail"] == "boom" and "processor" in spec.options
    assert spec.source == args.get_profile().model("pickscore").source
    assert args.model_spec("clipscore") == args.get_profile().model("clipscore")


def test_from_env_reads_env_at_call_time(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@db/scenechain")
    monkeypatch.setenv("SCENECHAIN_JWT_SECRET", "x" * 40)
    monkeypatch.setenv("SCENECHAIN_OUTPUT_DIR", str(tmp_path))
    args = AppArgs.from_env(profile="tiny")
    assert args.resolved_database_url() == "postgresql://u@db/scenechain"
    assert args.jwt.secret == "x" * 40 and args.resolved_output_dir() == str(tmp_path)
    monkeypatch.delenv("DATABASE_URL")
    assert AppArgs.from_env().resolved_database_url() == f"sqlite:///{tmp_path / 'scenechain.db'}"


def test_shipped_tiny_config_is_a_valid_serve_config_that_fits_one_logical_gpu() -> None:
    from ray.serve.schema import ServeDeploySchema

    document = yaml.safe_load((REPO / "configs" / "tiny.yaml").read_text())
    ServeDeploySchema.model_validate(document)
    application = document["applications"][0]
    assert application["import_path"] == "serve.app:build_app"
    args = AppArgs.model_validate(application["args"])
    gpus = args.generator.ray_actor_options["num_gpus"] + 4 * args.scorer.ray_actor_options["num_gpus"]
    assert 0 < gpus <= 1


def test_tokens_hs256_and_rs256() -> None:
    settings = JwtSettings()
    assert verify_token(settings, mint_token(settings, "alice")) == "alice"
    assert user_from_authorization(settings, f"Bearer {mint_token(settings, 'bob')}") == "bob"
    for header in (None, "", "Basic abc", "Bearer", f"Token {mint_token(settings, 'bob')}"):
        with pytest.raises(AuthError):
            user_from_authorization(settings, header)
    with pytest.raises(AuthError):
        verify_token(
            settings,
            jwt.encode({"sub": "eve", "exp": 9999999999}, settings.signing_secret(), algorithm="HS256"),
        )

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    rs = JwtSettings(algorithm="RS256", public_key=public, private_key=private)
    assert verify_token(rs, mint_token(rs, "carol")) == "carol"
    with pytest.raises(AuthError):  # an HS256 token signed with anything is refused under RS256
        verify_token(rs, mint_token(settings, "carol"))


def test_cli_token_and_cleanup(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SCENECHAIN_JWT_SECRET", "cli-test-" + "k" * 40)  # the server's secret
    assert main(["token", "--user", "dana", "--ttl", "60"]) == 0
    token = capsys.readouterr().out.strip()
    assert verify_token(AppArgs.from_env().jwt, token) == "dana"

    out = tmp_path / "out"
    db = Database(f"sqlite:///{out / 'scenechain.db'}")
    storage = Storage(str(out))
    for gid, status in (("old1", "completed"), ("run1", "running")):
        db.create_generation(generation_id=gid, user="dana", request={"prompt": "p"}, seed=1, scenes_total=1)
        db.update(gid, status=status)
        storage.write_scene_image(gid, 1, b"png")
        storage.write_variation(gid, 1, 1, b"png")
    assert main(["cleanup", "--older-than", "1d", "--output-dir", str(out)]) == 0
    assert json.loads(capsys.readouterr().out) == {"removed": []}
    assert main(["cleanup", "--older-than", "0s", "--output-dir", str(out)]) == 0
    assert json.loads(capsys.readouterr().out) == {"removed": ["old1"]}
    assert (
        not (out / "generations" / "old1").exists() and not (out / "reference_image_traces" / "old1").exists()
    )
    assert db.get("run1").status == "running" and storage.read_scene_image("run1", 1) == b"png"
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration("7 days")
