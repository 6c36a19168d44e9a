"""`scenechain models` and the start-up licence warning, as a deployer meets them."""

from __future__ import annotations

import logging
import secrets
import subprocess
import sys

import pytest

from weights.profiles import ROLES


def test_scenechain_models_lists_every_role_with_its_license() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "serve.cli",
            "models",
            "--profile",
            "production",
            "--profile",
            "production-sdxl",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    production, sdxl = result.stdout.split("\n\n", 1)
    for block in (production, sdxl):
        for role in ROLES:
            assert any(line.split()[0] == role for line in block.splitlines()[2:] if line.strip()), (
                role,
                block,
            )
    assert "black-forest-labs/FLUX.1-schnell" in production and "apache-2.0" in production
    assert " NO " not in production and "WARNING" not in production  # production is commercially usable
    assert "sai-nc-community" in sdxl and "WARNING: diffusion" in sdxl


def test_a_non_commercial_model_is_a_start_up_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: object
) -> None:
    from deployments.llm import LLMDeployment
    from serve.app import DeploymentClasses, build_app

    # our LLM deployment class instead of ray.serve.llm's (which needs pyarrow): same graph otherwise
    classes = DeploymentClasses(llm=LLMDeployment)
    monkeypatch.setenv("SCENECHAIN_JWT_SECRET", secrets.token_urlsafe(36))
    with caplog.at_level(logging.WARNING, logger="serve.app"):
        build_app({"profile": "production-sdxl", "output_dir": str(tmp_path)}, classes)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("stabilityai/sdxl-turbo" in w and "commercial use" in w for w in warnings), warnings
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="serve.app"):
        build_app({"profile": "production", "output_dir": str(tmp_path)}, classes)
    assert not [r for r in caplog.records if "commercial use" in r.getMessage()]


@pytest.mark.parametrize("separator", [["--"], []])
def test_scenechain_eval_forwards_its_arguments_with_or_without_a_separator(separator: list[str]) -> None:
    """`scenechain eval -- --profile toy ...` (as the README writes it) and without the `--`."""
    answer = subprocess.run(
        [sys.executable, "-m", "serve.cli", "eval", *separator, "--limit", "1", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert answer.returncode == 0, answer.stderr
    assert "usage: python -m eval" in answer.stdout and "--consistency-weight" in answer.stdout
