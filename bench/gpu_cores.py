"""The cores on one GPU, without Ray: ``python -m bench.gpu_cores`` -> ``bench/results/gpu_cores.json``.

Times the ``gpu-bench`` profile (production's architectures at full size, random weights built on
the GPU from config-only dirs by ``weights.random_init.build_random``) through our own cores:

(a) diffusion (``generator.DiffusionGenerator``, FLUX.1-schnell): one scene = 4 variations at
    512x512, 4 steps, run at batch 1 (4 calls of 1 image), 4 (one call) and 8 (two scenes merged into
    one call by ``generate_many``): seconds per image, images/s, peak GPU memory;
(b) the four scorers (``scorers.*``: PickScore CLIP-H, CLIPScore and the aesthetic MLP over one
    ViT-L-14-quickgelu, VQAScore LLaVA-1.5-7B) on 8 images: seconds per scorer call;
(c) one LLM critique (``agents.llm_client.TransformersChatClient``, greedy, the Prompt Engineer's
    messages and JSON schema) from a Qwen2.5-7B-shaped random model: output tokens per second.

It imports torch, transformers, diffusers, open_clip, pydantic, PIL, numpy and our cores only (never
Ray, vLLM or the service), so it runs on a bare GPU machine (``scripts/gpu_run.sh``). Each section
is timed after one warm-up call; the JSON is rewritten after every section, so a run cut short keeps
what it measured, and a failing section records its error and lets the others run.

``--dry-run-cpu`` runs the very same code on the tiny twins' configs (``bench-tiny-random``) on the
CPU in seconds: it checks the script end to end and the JSON's shape; its numbers mean nothing.
Random weights make the images noise and the critique gibberish: only the timings are claims.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import functools
import gc
import json
import logging
import platform
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from weights.profiles import Profile, get_profile

logger = logging.getLogger(__name__)

PROFILE = "gpu-bench"
DEFAULT_OUT = Path("bench/results/gpu_cores.json")
DRY_RUN_OUT = Path(tempfile.gettempdir()) / "gpu_cores_dry_run.json"
PROMPT = "a red sports car on a coastal road at sunset, cinematic lighting"
CANDIDATE = PROMPT + ", low-angle tracking shot, 35mm lens, golden hour rim light, shallow depth of field"
VARIATIONS = 4  # images per scene
BATCHES = (1, 4, 8)
SCORER_IMAGES = 8
SCORERS = ("pickscore", "clipscore", "vqa", "aesthetic")
LLM_TOKENS = 150
BUDGET_S = 480.0  # the whole run: 8 minutes
TINY_SIZE = 64  # dry-run image side
SECTIONS = ("diffusion", "scorers", "llm")


# ---- where the models are ---------------------------------------------------------------------------


def model_dirs(profile: Profile, *, tiny: bool, model_dir: Path | None) -> dict[str, Path]:
    """Config-only dir per part: diffusion, pickscore, pickscore_processor, clip, aesthetic, vqa, llm.

    Full size: the profile's forge references (forged here if missing: configs, no weights).
    Tiny: the same parts at the twins' sizes, from ``bench-tiny-random``.
    """
    from weights.forge import ensure_forged, resolve_source  # noqa: PLC0415

    processor = Path(resolve_source(str(profile.model("pickscore").options["processor"]), model_dir))
    if tiny:
        base = ensure_forged("bench-tiny-random", model_dir)
        return {
            "diffusion": base / "flux",
            "pickscore": base / "pickscore",
            "pickscore_processor": processor,
            "clip": base / "openclip",
            "aesthetic": base / "aesthetic",
            "vqa": base / "llava",
            "llm": base / "qwen",
        }

    def forged(role: str, option: str | None = None) -> Path:
        spec = profile.model(role)  # type: ignore[arg-type]
        return Path(resolve_source(str(spec.options[option]) if option else spec.source, model_dir))

    return {
        "diffusion": forged("diffusion"),
        "pickscore": forged("pickscore"),
        "pickscore_processor": processor,
        "clip": forged("clipscore", "pretrained"),
        "aesthetic": forged("aesthetic"),
        "vqa": forged("vqa"),
        "llm": forged("llm"),
    }


# ---- measuring ---------------------------------------------------------------------------------------


class Gpu:
    """Peak memory and cache release on CUDA; no-ops on the CPU."""

    def __init__(self, device: str) -> None:
        import torch  # noqa: PLC0415

        self.torch = torch
        self.cuda = device.startswith("cuda")

    def reset_peak(self) -> None:
        if self.cuda:
            self.torch.cuda.synchronize()
            self.torch.cuda.reset_peak_memory_stats()

    def peak_gib(self) -> float | None:
        if not self.cuda:
            return None
        self.torch.cuda.synchronize()
        return round(self.torch.cuda.max_memory_allocated() / 2**30, 3)

    def allocated_gib(self) -> float | None:
        return round(self.torch.cuda.memory_allocated() / 2**30, 3) if self.cuda else None

    def sync(self) -> None:
        if self.cuda:
            self.torch.cuda.synchronize()

    def release(self) -> None:
        gc.collect()
        if self.cuda:
            self.torch.cuda.empty_cache()


def timed(gpu: Gpu, call: Callable[[], Any]) -> tuple[Any, float]:
    """(result, wall seconds), the device synchronised on both sides."""
    gpu.sync()
    started = time.perf_counter()
    result = call()
    gpu.sync()
    return result, time.perf_counter() - started


def parameters(*modules: Any) -> int:
    return sum(p.numel() for module in modules for p in module.parameters())


def machine_info(device: str) -> dict[str, Any]:
    """Versions and hardware (imports no optional package that is absent, and never Ray)."""
    import importlib.metadata  # noqa: PLC0415

    import torch  # noqa: PLC0415

    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": device,
        "cuda": torch.version.cuda if device.startswith("cuda") else None,
    }
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(0)
        info["gpu_memory_gib"] = round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1)
    for package in ("transformers", "diffusers", "open_clip_torch", "pydantic"):
        try:
            info[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            info[package] = None
    return info


# ---- (a) diffusion -----------------------------------------------------------------------------------


def scene_calls(batch: int) -> list[list[Any]]:
    """The generate_many calls that make one measurement at ``batch`` images per pipeline call.

    Batch below a scene's 4 variations: the scene in 4 / batch calls; batch 8: two scenes in one call.
    """
    from generator import GenerationRequest  # noqa: PLC0415

    if batch <= VARIATIONS:
        return [
            [GenerationRequest(prompt=PROMPT, seeds=list(range(start, start + batch)))]
            for start in range(0, VARIATIONS, batch)
        ]
    scenes = batch // VARIATIONS
    return [
        [
            GenerationRequest(
                prompt=f"{PROMPT}, scene {scene + 1}",
                seeds=list(range(scene * VARIATIONS, (scene + 1) * VARIATIONS)),
            )
            for scene in range(scenes)
        ]
    ]


def bench_diffusion(
    profile: Profile, dirs: dict[str, Path], device: str, tiny: bool, repeats: int, gpu: Gpu
) -> tuple[dict[str, Any], list[Any]]:
    """Section (a); also returns 8 generated images (PIL) for the scorers."""
    from generator import DiffusionGenerator  # noqa: PLC0415
    from generator.core import decode_png  # noqa: PLC0415

    spec = profile.model("diffusion")
    spec = spec.model_copy(update={"source": str(dirs["diffusion"])})
    generation = profile.generation
    if tiny:
        generation = generation.model_copy(update={"width": TINY_SIZE, "height": TINY_SIZE})
    gpu.reset_peak()
    generator, load_seconds = timed(
        gpu, lambda: DiffusionGenerator(spec, generation, device=device, dtype=profile.dtype)
    )
    pipeline = generator.text2img
    modules = [getattr(pipeline, name) for name in ("transformer", "vae", "text_encoder", "text_encoder_2")]
    section: dict[str, Any] = {
        "model": profile.model("diffusion").source,
        "pipeline": type(pipeline).__name__,
        "dtype": str(next(pipeline.transformer.parameters()).dtype).removeprefix("torch."),
        "parameters": parameters(*modules),
        "load_seconds": round(load_seconds, 3),
        "memory_after_load_gib": gpu.allocated_gib(),
        "peak_gpu_memory_load_gib": gpu.peak_gib(),
        "width": generation.width,
        "height": generation.height,
        "steps": generation.steps,
        "guidance_scale": generation.guidance_scale,
        "variations_per_scene": VARIATIONS,
        "repeats": repeats,
        "batches": [],
    }
    images: list[Any] = []
    for batch in BATCHES:
        calls = scene_calls(batch)
        count = sum(len(request.seeds) for call in calls for request in call)

        def run(calls: list[list[Any]] = calls) -> tuple[list[Any], float]:
            results, pipeline_seconds = [], 0.0
            for call in calls:
                call_results = generator.generate_many(call)
                results.extend(call_results)
                pipeline_seconds += max(result.seconds for result in call_results)
            return results, pipeline_seconds

        walls, pipes = [], []
        results: list[Any] = []
        try:
            run()  # warm-up at this shape
            gpu.reset_peak()
            for _ in range(repeats):
                (results, pipeline_seconds), wall = timed(gpu, run)
                walls.append(wall)
                pipes.append(pipeline_seconds)
        except Exception as exc:  # one batch size failing keeps the others' numbers
            logger.exception("diffusion at batch %d failed", batch)
            section["batches"].append({"batch": batch, "error": f"{type(exc).__name__}: {exc}"})
            gpu.release()
            continue
        wall = statistics.median(walls)
        sizes = sorted({result.batch_size for result in results})
        section["batches"].append(
            {
                "batch": batch,
                "pipeline_calls": len(calls),
                "images": count,
                "images_per_call": sizes,
                "seconds": round(wall, 4),
                "pipeline_seconds": round(statistics.median(pipes), 4),
                "seconds_per_image": round(wall / count, 4),
                "images_per_s": round(count / wall, 3),
                "peak_gpu_memory_gib": gpu.peak_gib(),
                "samples_seconds": [round(w, 4) for w in walls],
            }
        )
        if batch == max(BATCHES):
            images = [decode_png(image.png) for result in results for image in result.images]
    return section, images  # the caller releases the model's memory


# ---- (b) scorers -------------------------------------------------------------------------------------


def build_scorers(profile: Profile, dirs: dict[str, Path], device: str) -> dict[str, tuple[Any, float, int]]:
    """name -> (scorer, build seconds, parameters): random models in the scorers' own bundles."""
    from transformers import AutoProcessor  # noqa: PLC0415

    from scorers.aesthetic import AestheticScorer  # noqa: PLC0415
    from scorers.base import resolve_dtype  # noqa: PLC0415
    from scorers.clipscore import ClipScoreScorer, OpenClipBundle  # noqa: PLC0415
    from scorers.pickscore import HFClipBundle, PickScoreScorer  # noqa: PLC0415
    from scorers.vqascore import VqaBundle, VqaScorer  # noqa: PLC0415
    from weights.random_init import build_random, open_clip_transforms  # noqa: PLC0415

    dtype = resolve_dtype(profile.dtype, device)  # as the scorers load: half precision on CUDA only
    built: dict[str, tuple[Any, float, int]] = {}

    started = time.perf_counter()
    pick_options = profile.model("pickscore").options
    clip_model = build_random(dirs["pickscore"], device, dtype)
    processor = AutoProcessor.from_pretrained(str(dirs["pickscore_processor"]))
    pickscore = PickScoreScorer(
        HFClipBundle(clip_model, processor, device, dtype),
        calibration=(float(pick_options["calibration_low"]), float(pick_options["calibration_high"])),
    )
    built["pickscore"] = (pickscore, time.perf_counter() - started, parameters(clip_model))

    started = time.perf_counter()
    open_clip_model = build_random(dirs["clip"], device, dtype)
    preprocess, tokenizer, embed_dim = open_clip_transforms(dirs["clip"])
    clip_bundle = OpenClipBundle(open_clip_model, preprocess, tokenizer, device, dtype, embed_dim)
    built["clipscore"] = (
        ClipScoreScorer(clip_bundle),
        time.perf_counter() - started,
        parameters(open_clip_model),
    )

    started = time.perf_counter()
    llava = build_random(dirs["vqa"], device, dtype)
    vqa = VqaScorer(VqaBundle(llava, AutoProcessor.from_pretrained(str(dirs["vqa"])), device, dtype))
    built["vqa"] = (vqa, time.perf_counter() - started, parameters(llava))

    started = time.perf_counter()
    # the MLP runs in float32 on the CLIP's float32-cast embeddings, as scorers.aesthetic loads it
    mlp = build_random(dirs["aesthetic"], device, "float32")
    built["aesthetic"] = (AestheticScorer(clip_bundle, mlp), time.perf_counter() - started, parameters(mlp))
    return built


def bench_scorers(
    profile: Profile, dirs: dict[str, Path], device: str, images: list[Any], repeats: int, gpu: Gpu
) -> dict[str, Any]:
    """Section (b): each scorer on the same 8 images, one warm-up call then ``repeats`` timed calls."""
    if len(images) < SCORER_IMAGES:
        from PIL import Image  # noqa: PLC0415

        images = images + [Image.new("RGB", (512, 512), (40 * i, 90, 160)) for i in range(SCORER_IMAGES)]
    images = images[:SCORER_IMAGES]
    gpu.reset_peak()
    built = build_scorers(profile, dirs, device)
    section: dict[str, Any] = {
        "images": len(images),
        "image_size": list(images[0].size),
        "repeats": repeats,
        "memory_after_load_gib": gpu.allocated_gib(),
        "scorers": {},
    }
    for name in SCORERS:
        scorer, build_seconds, count = built[name]
        scorer.score(PROMPT, images)  # warm-up
        walls = []
        result = None
        score: Callable[[], Any] = functools.partial(scorer.score, PROMPT, images)
        for _ in range(repeats):
            result, wall = timed(gpu, score)
            walls.append(wall)
        assert result is not None and len(result.raw) == len(images)
        wall = statistics.median(walls)
        section["scorers"][name] = {
            "seconds": round(wall, 4),
            "seconds_per_image": round(wall / len(images), 5),
            "build_seconds": round(build_seconds, 3),
            "parameters": count,
            "samples_seconds": [round(w, 4) for w in walls],
        }
    section["seconds_all_four"] = round(sum(s["seconds"] for s in section["scorers"].values()), 4)
    section["peak_gpu_memory_gib"] = gpu.peak_gib()
    return section


# ---- (c) LLM -----------------------------------------------------------------------------------------


def bench_llm(dirs: dict[str, Path], device: str, max_tokens: int, gpu: Gpu) -> dict[str, Any]:
    """Section (c): one greedy critique (the Prompt Engineer's messages + JSON schema) through transformers."""
    from agents.llm_client import TransformersChatClient  # noqa: PLC0415
    from agents.prompts import critic_messages  # noqa: PLC0415
    from agents.schemas import Critique  # noqa: PLC0415

    dtype = "bfloat16" if device.startswith("cuda") else "float32"  # Qwen2.5's dtype
    client = TransformersChatClient(dirs["llm"], device=device, dtype=dtype, random_init=True, seed=0)
    gpu.reset_peak()
    _, load_seconds = timed(gpu, client.load)
    messages = critic_messages(PROMPT, CANDIDATE)
    schema = Critique.json_schema()

    async def critique(tokens: int) -> str:
        return await client.chat(messages, temperature=0.0, max_tokens=tokens, json_schema=schema)

    asyncio.run(critique(8))  # warm-up
    text, wall = timed(gpu, lambda: asyncio.run(critique(max_tokens)))
    stats = client.last_generation or {}
    new_tokens = int(stats.get("new_tokens", 0))
    seconds = float(stats.get("seconds", wall))
    section = {
        "model": "Qwen2.5-7B-Instruct architecture, random weights (transformers)",
        "dtype": dtype,
        "parameters": parameters(client._model),
        "load_seconds": round(load_seconds, 3),
        "prompt_tokens": int(stats.get("prompt_tokens", 0)),
        "max_tokens": max_tokens,
        "new_tokens": new_tokens,
        "generate_seconds": round(seconds, 4),
        "seconds": round(wall, 4),
        "tokens_per_s": round(new_tokens / seconds, 2) if seconds > 0 else None,
        "reply_chars": len(text),
        "peak_gpu_memory_gib": gpu.peak_gib(),
    }
    return section


# ---- the run -----------------------------------------------------------------------------------------


def write(report: dict[str, Any], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")


def run(
    *,
    tiny: bool,
    out: Path,
    model_dir: Path | None = None,
    sections: tuple[str, ...] = SECTIONS,
    llm_tokens: int = LLM_TOKENS,
    repeats: int | None = None,
    budget_s: float = BUDGET_S,
) -> dict[str, Any]:
    """Run the sections, rewriting ``out`` after each; returns the report."""
    import torch  # noqa: PLC0415

    started = time.perf_counter()
    if tiny:
        device = "cpu"
    elif torch.cuda.is_available():
        device = "cuda"
    else:
        raise SystemExit("bench.gpu_cores needs a CUDA GPU (use --dry-run-cpu to check it on the CPU)")
    repeats = repeats or (1 if tiny else 2)
    profile = get_profile(PROFILE)
    gpu = Gpu(device)
    report: dict[str, Any] = {
        "name": "gpu_cores",
        "mode": "cpu-dry-run (tiny twins' configs: shapes only, numbers mean nothing)" if tiny else "cuda",
        "profile": PROFILE,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine_info(device),
        "params": {
            "prompt": PROMPT,
            "variations_per_scene": VARIATIONS,
            "batches": list(BATCHES),
            "scorer_images": SCORER_IMAGES,
            "llm_max_tokens": llm_tokens,
            "repeats": repeats,
            "budget_s": budget_s,
        },
        "errors": {},
        "skipped": [],
    }
    write(report, out)
    dirs, forge_seconds = timed(gpu, lambda: model_dirs(profile, tiny=tiny, model_dir=model_dir))
    report["model_dirs"] = {name: str(path) for name, path in dirs.items()}
    report["forge_seconds"] = round(forge_seconds, 3)
    images: list[Any] = []
    for name in sections:
        if time.perf_counter() - started > budget_s:
            report["skipped"].append(name)
            continue
        section_started = time.perf_counter()
        try:
            if name == "diffusion":
                report["diffusion"], images = bench_diffusion(profile, dirs, device, tiny, repeats, gpu)
            elif name == "scorers":
                report["scorers"] = bench_scorers(profile, dirs, device, images, max(repeats, 2), gpu)
            elif name == "llm":
                report["llm"] = bench_llm(dirs, device, llm_tokens, gpu)
        except Exception as exc:  # one failing section must not lose the others' numbers
            logger.exception("section %s failed", name)
            report["errors"][name] = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=6)}"
        gpu.release()  # the section's models are out of scope now: hand their memory back
        report.setdefault("section_seconds", {})[name] = round(time.perf_counter() - section_started, 2)
        report["total_seconds"] = round(time.perf_counter() - started, 2)
        write(report, out)
    report["total_seconds"] = round(time.perf_counter() - started, 2)
    write(report, out)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gpu_cores", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--dry-run-cpu", action="store_true", help="Run on the CPU with the tiny twins' configs."
    )
    parser.add_argument("--out", type=Path, default=None, help=f"JSON path (default {DEFAULT_OUT}).")
    parser.add_argument(
        "--model-dir", type=Path, default=None, help="Model dir (default $SCENECHAIN_MODEL_DIR)."
    )
    parser.add_argument("--sections", default=",".join(SECTIONS), help="Comma-separated subset of sections.")
    parser.add_argument("--llm-tokens", type=int, default=LLM_TOKENS, help="Critique output tokens.")
    parser.add_argument("--repeats", type=int, default=None, help="Timed runs per measurement.")
    parser.add_argument("--budget-s", type=float, default=BUDGET_S, help="Skip sections not started by then.")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    sections = tuple(s for s in args.sections.split(",") if s)
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown sections {unknown}; choose from {list(SECTIONS)}")
    out = args.out or (DRY_RUN_OUT if args.dry_run_cpu else DEFAULT_OUT)
    report = run(
        tiny=args.dry_run_cpu,
        out=out,
        model_dir=args.model_dir,
        sections=sections,
        llm_tokens=args.llm_tokens,
        repeats=args.repeats,
        budget_s=args.budget_s,
    )
    print(json.dumps({k: report.get(k) for k in ("mode", "total_seconds", "errors", "skipped")}, indent=2))
    print(f"wrote {out}", file=sys.stderr)
    return 1 if report["errors"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
