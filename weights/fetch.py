"""Pre-download a profile's hub models into a shared cache, and load them from it offline.

``scenechain fetch-models --profile production --to DIR`` downloads, per role, only the files that
role's loader reads (``plan_downloads``: diffusers pipeline folders without the single-file
checkpoints next to them, transformers weights as safetensors, a processor without its model, one
open_clip checkpoint, one ``.pth``) into ``DIR`` in the hub cache layout
(``models--org--name/refs/main`` + ``snapshots/<sha>/...``), printing each role's license. Downloads
resume: ``snapshot_download`` skips complete files and continues partial ones.

Replicas point ``SCENECHAIN_MODEL_DIR`` at that cache (a shared volume), or set
``SCENECHAIN_MODEL_S3=s3://bucket/prefix`` to have the cache synced from S3 to ``SCENECHAIN_MODEL_DIR``
on each node first (``sync_from_s3``). ``resolve_from_cache`` (called by ``weights.forge.resolve_spec``,
so by every core) turns a hub id found in the cache into its local snapshot path, so the libraries'
loaders never contact the hub (run replicas with ``HF_HUB_OFFLINE=1`` as a guard).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from filelock import FileLock
from pydantic import BaseModel, ConfigDict, Field

from weights.profiles import FORGE_PREFIX, ROLES, ModelSpec, Profile, Role

logger = logging.getLogger(__name__)

MODEL_S3_ENV = "SCENECHAIN_MODEL_S3"
SYNC_MARKER = ".s3-sync.json"

# ---- what each loader reads, as data ----------------------------------------------------------------
# diffusers pipeline folders: model_index.json + one folder per component. "*/" keeps out the
# single-file checkpoints some repos carry at the root (FLUX.1-schnell: flux1-schnell.safetensors,
# ae.safetensors, 34 GB more); "*" in these patterns matches "/" too (fnmatch).
_PIPELINE_CONFIGS: tuple[str, ...] = ("model_index.json", "*/*.json", "*/*.txt", "*/*.model")
DIFFUSERS_PATTERNS: tuple[str, ...] = (*_PIPELINE_CONFIGS, "*/*.safetensors")
# With a variant (SDXL-Turbo: fp16) only the variant's weights, not the fp32 duplicates.
DIFFUSERS_VARIANT_PATTERNS = "*/*.{variant}.safetensors"
# transformers models (CLIPModel, LLaVA, Qwen2 for vLLM): configs, tokenizer files, safetensors only.
TRANSFORMERS_PATTERNS: tuple[str, ...] = ("*.json", "*.safetensors", "*.txt", "*.model", "*.jinja")
# A processor (image preprocessing + tokenizer) without the model it ships with.
PROCESSOR_PATTERNS: tuple[str, ...] = (
    "config.json",  # AutoProcessor reads the model type from it
    "preprocessor_config.json",
    "processor_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.json",
    "merges.txt",
)
# open_clip's hub checkpoints: it tries the safetensors name first, then the pickle (open_clip.pretrained).
OPEN_CLIP_FILES: tuple[str, ...] = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
# (model name option, pretrained tag option) pairs that name an open_clip checkpoint, per role.
OPEN_CLIP_OPTION_PAIRS: tuple[tuple[str, str], ...] = (("arch", "pretrained"), ("clip", "clip_pretrained"))


class HubDownload(BaseModel):
    """One download from the hub: a filtered snapshot of a repo, or the first existing of some files."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    repo_id: str = Field(description="Hub repo id, 'org/name'.")
    what: str = Field(description="What the loader uses it as, e.g. 'diffusers pipeline', 'processor'.")
    allow_patterns: tuple[str, ...] = Field(
        default=(), description="Snapshot file patterns (fnmatch); empty when 'files' is set."
    )
    ignore_patterns: tuple[str, ...] = Field(default=(), description="Snapshot patterns left out.")
    files: tuple[str, ...] = Field(
        default=(), description="Single files, the first that exists is downloaded (hf_hub_download)."
    )


class RoleDownloads(BaseModel):
    """The downloads one role of a profile needs, with the license it carries."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Role = Field(description="The role.")
    source: str = Field(description="The spec's source as the profile names it.")
    license: str = Field(description="License id ('unknown' when the spec has none).")
    commercial_use: bool | None = Field(description="Whether commercial use is allowed; None: unknown.")
    downloads: tuple[HubDownload, ...] = Field(description="Hub downloads; empty for forged/local models.")
    note: str = Field(default="", description="Why nothing is downloaded, when so.")


class FetchError(RuntimeError):
    """A model cannot be planned or downloaded."""


def is_repo_id(value: str) -> bool:
    """'org/name' that is not a local path or a forge reference."""
    parts = value.split("/")
    return (
        len(parts) == 2
        and all(parts)
        and not value.startswith((".", "~", FORGE_PREFIX))
        and not Path(value).exists()
    )


def split_hub_file(value: str) -> tuple[str, str] | None:
    """'org/repo/path/file.ext' -> ('org/repo', 'path/file.ext'), or None."""
    parts = value.split("/")
    if len(parts) < 3 or not all(parts) or value.startswith((".", "~", FORGE_PREFIX)) or Path(value).exists():
        return None
    return "/".join(parts[:2]), "/".join(parts[2:])


def open_clip_hub_files(model_name: str, tag: str) -> tuple[str, tuple[str, ...]] | None:
    """(repo id, candidate files) open_clip downloads for ``model_name`` + pretrained ``tag``; None if
    open_clip knows no hub checkpoint for them (its own pretrained table, open_clip.pretrained)."""
    import open_clip  # noqa: PLC0415

    hub = (open_clip.get_pretrained_cfg(model_name, tag) or {}).get("hf_hub", "")
    if not hub:
        return None
    # open_clip's convention: "org/name/" (its default file names) or "org/name/file.bin"
    repo_id, filename = os.path.split(hub)
    if not filename:
        return repo_id, OPEN_CLIP_FILES
    if filename.endswith(".safetensors"):
        return repo_id, (filename,)
    return repo_id, (filename.rsplit(".", 1)[0] + ".safetensors", filename)


def _open_clip_pairs(options: dict[str, Any]) -> Iterable[tuple[str, str, str]]:
    """(model name, tag option key, tag) for each open_clip name + pretrained tag in ``options``."""
    for name_key, tag_key in OPEN_CLIP_OPTION_PAIRS:
        name, tag = options.get(name_key), options.get(tag_key)
        if (
            isinstance(name, str)
            and isinstance(tag, str)
            and "/" not in tag
            and not tag.startswith(FORGE_PREFIX)
        ):
            yield name, tag_key, tag


def role_downloads(role: Role, spec: ModelSpec) -> RoleDownloads:
    """What ``role``'s loader reads for ``spec``, as hub downloads."""
    entry = RoleDownloads(
        role=role,
        source=spec.source,
        license=spec.license or "unknown",
        commercial_use=spec.commercial_use,
        downloads=(),
        note="forged offline: scenechain forge-models",
    )
    if spec.forged_name:
        return entry
    downloads: list[HubDownload] = []
    options = spec.options
    # 1. the source itself
    if role == "diffusion" and is_repo_id(spec.source):
        variant = options.get("variant")
        if variant:
            allow = (*_PIPELINE_CONFIGS, DIFFUSERS_VARIANT_PATTERNS.format(variant=variant))
            downloads.append(
                HubDownload(repo_id=spec.source, what=f"diffusers pipeline ({variant})", allow_patterns=allow)
            )
        else:
            downloads.append(
                HubDownload(
                    repo_id=spec.source,
                    what="diffusers pipeline",
                    allow_patterns=DIFFUSERS_PATTERNS,
                    ignore_patterns=("*/*.fp16.safetensors",),
                )
            )
    elif role in ("pickscore", "vqa", "llm") and is_repo_id(spec.source):
        downloads.append(
            HubDownload(repo_id=spec.source, what="transformers model", allow_patterns=TRANSFORMERS_PATTERNS)
        )
    elif role == "aesthetic" and (hub_file := split_hub_file(spec.source)) is not None:
        downloads.append(
            HubDownload(repo_id=hub_file[0], what="aesthetic MLP checkpoint", files=(hub_file[1],))
        )
    # 2. models the options name
    processor = options.get("processor")
    if isinstance(processor, str) and is_repo_id(processor):
        downloads.append(HubDownload(repo_id=processor, what="processor", allow_patterns=PROCESSOR_PATTERNS))
    for model_name, _, tag in _open_clip_pairs(options):
        hub = open_clip_hub_files(model_name, tag)
        if hub is None:
            raise FetchError(f"{role}: open_clip has no hub checkpoint for {model_name!r} / {tag!r}")
        downloads.append(HubDownload(repo_id=hub[0], what=f"open_clip {model_name} ({tag})", files=hub[1]))
    note = "" if downloads else "not a hub id: loaded from the given path"
    return entry.model_copy(update={"downloads": tuple(downloads), "note": note})


def plan_downloads(profile: Profile, roles: Iterable[Role] | None = None) -> list[RoleDownloads]:
    """Per role (in role order), the downloads a profile needs; a repo shared by two roles is fetched once
    (the first role lists it, e.g. CLIPScore's open_clip ViT-L/14 that the aesthetic MLP reuses)."""
    wanted = set(roles) if roles is not None else set(ROLES)
    seen: set[HubDownload] = set()
    plan: list[RoleDownloads] = []
    for role in ROLES:
        if role not in wanted or role not in profile.models:
            continue
        entry = role_downloads(role, profile.models[role])
        unique = tuple(download for download in entry.downloads if download not in seen)
        seen.update(unique)
        plan.append(entry.model_copy(update={"downloads": unique}))
    return plan


# ---- download -----------------------------------------------------------------------------------------


def _download(download: HubDownload, cache_dir: Path, token: str | None, endpoint: str | None) -> str:
    """Run one download into the hub cache ``cache_dir``; the local snapshot dir or file."""
    from huggingface_hub import hf_hub_download, snapshot_download  # noqa: PLC0415
    from huggingface_hub.errors import EntryNotFoundError  # noqa: PLC0415

    if not download.files:
        return snapshot_download(
            download.repo_id,
            cache_dir=cache_dir,
            allow_patterns=list(download.allow_patterns),
            ignore_patterns=list(download.ignore_patterns) or None,
            token=token,
            endpoint=endpoint,
        )
    missing: list[str] = []
    for filename in download.files:
        try:
            return hf_hub_download(
                download.repo_id, filename, cache_dir=cache_dir, token=token, endpoint=endpoint
            )
        except EntryNotFoundError:
            missing.append(filename)
    raise FetchError(f"{download.repo_id} has none of {missing}")


def fetch_models(
    profile: Profile,
    cache_dir: Path,
    *,
    roles: Iterable[Role] | None = None,
    token: str | None = None,
    endpoint: str | None = None,
    echo: Callable[[str], None] = print,
) -> dict[str, list[str]]:
    """Download what ``profile`` needs into ``cache_dir`` (hub cache layout); role -> local paths.

    Each role's license is echoed before its download; roles not licensed for commercial use get a
    WARNING line. Re-running resumes and skips what is complete. ``endpoint``: a hub mirror (default:
    ``$HF_ENDPOINT`` or huggingface.co); ``token``: for gated repos (default: ``$HF_TOKEN``).
    """
    cache_dir.mkdir(parents=True, exist_ok=True)
    fetched: dict[str, list[str]] = {}
    for entry in plan_downloads(profile, roles):
        commercial = {
            True: "commercial use: yes",
            False: "commercial use: NO",
            None: "commercial use: unknown",
        }
        echo(f"{entry.role}: {entry.source}  license {entry.license} ({commercial[entry.commercial_use]})")
        if entry.commercial_use is not True:
            echo(f"WARNING: {entry.role} ({entry.source}) is not licensed for commercial use")
        if not entry.downloads:
            echo(f"  nothing to download: {entry.note}" if entry.note else "  (already listed above)")
        paths: list[str] = []
        for download in entry.downloads:
            echo(f"  {download.repo_id}  [{download.what}]")
            paths.append(_download(download, cache_dir, token, endpoint))
        fetched[entry.role] = paths
    return fetched


# ---- load from the cache --------------------------------------------------------------------------------


def _snapshot_dir(cache_dir: Path, repo_id: str, revision: str = "main") -> Path | None:
    """``models--org--name/snapshots/<sha>`` of ``revision`` in the hub cache, when present."""
    storage = cache_dir / ("models--" + repo_id.replace("/", "--"))
    ref = storage / "refs" / revision
    if not ref.is_file():
        return None
    snapshot = storage / "snapshots" / ref.read_text().strip()
    return snapshot if snapshot.is_dir() else None


def _cached_file(cache_dir: Path, repo_id: str, filename: str) -> Path | None:
    snapshot = _snapshot_dir(cache_dir, repo_id)
    path = snapshot / filename if snapshot is not None else None
    return path if path is not None and path.is_file() else None


def _spec_repos(spec: ModelSpec) -> set[str]:
    """Hub repos a spec may load from (for a partial S3 sync)."""
    repos: set[str] = set()
    for value in (spec.source, *spec.options.values()):
        if isinstance(value, str):
            if is_repo_id(value):
                repos.add(value)
            elif (hub_file := split_hub_file(value)) is not None:
                repos.add(hub_file[0])
    for model_name, _, tag in _open_clip_pairs(spec.options):
        if (hub := open_clip_hub_files(model_name, tag)) is not None:
            repos.add(hub[0])
    return repos


def resolve_from_cache(spec: ModelSpec, model_dir: Path) -> ModelSpec:
    """``spec`` with every hub reference found in the hub cache ``model_dir`` made a local path.

    A repo id (source or option, e.g. ``processor``) becomes its snapshot dir, ``org/repo/file`` the
    cached file, an open_clip name + pretrained tag (``openai``) the cached checkpoint file. What is not
    cached stays as it is (the library then downloads it, or fails offline). With
    ``$SCENECHAIN_MODEL_S3`` set, the spec's repos are first synced from that prefix into ``model_dir``.
    """
    prefix = os.environ.get(MODEL_S3_ENV)
    if prefix and (repos := _spec_repos(spec)):
        sync_from_s3(prefix, model_dir, repos=repos)

    def local(value: str) -> str:
        if is_repo_id(value):
            snapshot = _snapshot_dir(model_dir, value)
            return str(snapshot) if snapshot is not None else value
        if (hub_file := split_hub_file(value)) is not None:
            cached = _cached_file(model_dir, *hub_file)
            return str(cached) if cached is not None else value
        return value

    if not any(model_dir.glob("models--*")):
        return spec
    options = {key: local(value) if isinstance(value, str) else value for key, value in spec.options.items()}
    for model_name, tag_key, tag in _open_clip_pairs(spec.options):
        hub = open_clip_hub_files(model_name, tag)
        for filename in hub[1] if hub is not None else ():
            if (cached := _cached_file(model_dir, hub[0], filename)) is not None:  # type: ignore[index]
                options[tag_key] = str(cached)
                break
    return spec.model_copy(update={"source": local(spec.source), "options": options})


# ---- S3: one copy of the cache for every node --------------------------------------------------------------

_STORAGE_PARTS = ("refs", "snapshots")  # blobs/ are the snapshots' symlink targets: uploaded as files instead


def push_to_s3(cache_dir: Path, prefix: str) -> list[str]:
    """Upload the hub cache's ``refs`` and ``snapshots`` (symlinks dereferenced) under ``prefix``;
    files already there with the same size are skipped. Returns the uploaded relative paths."""
    import fsspec  # noqa: PLC0415

    fs, root = fsspec.core.url_to_fs(prefix)
    root = root.rstrip("/")
    uploaded: list[str] = []
    for repo in sorted(cache_dir.glob("models--*")):
        for part in _STORAGE_PARTS:
            for path in sorted((repo / part).rglob("*")):
                if not path.is_file():
                    continue
                relative = path.relative_to(cache_dir).as_posix()
                remote = f"{root}/{relative}"
                if fs.exists(remote) and fs.size(remote) == path.stat().st_size:
                    continue
                fs.put_file(str(path.resolve()), remote)
                uploaded.append(relative)
    return uploaded


def sync_from_s3(prefix: str, local_dir: Path, *, repos: Iterable[str] | None = None) -> list[str]:
    """Copy the hub cache under ``prefix`` (all of it, or only ``repos``) into ``local_dir``.

    Once per node: a file lock serialises the replicas of a node, and a file already present with the
    same size is not copied again (the second replica lists and copies nothing). Each file lands under
    a temporary name first, so a crash never leaves a truncated weight file. Returns the copied paths.
    """
    import fsspec  # noqa: PLC0415

    fs, root = fsspec.core.url_to_fs(prefix)
    root = root.rstrip("/")
    local_dir.mkdir(parents=True, exist_ok=True)
    folders = (
        ["models--" + repo.replace("/", "--") for repo in sorted(set(repos))] if repos is not None else [""]
    )
    copied: list[str] = []
    with FileLock(str(local_dir / ".s3-sync.lock")):
        for folder in folders:
            base = f"{root}/{folder}".rstrip("/")
            if not fs.exists(base):
                continue
            for key, info in sorted(fs.find(base, detail=True).items()):
                relative = key[len(root) :].lstrip("/")
                target = local_dir / relative
                if target.is_file() and target.stat().st_size == info.get("size"):
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                partial = target.with_name(f".{target.name}.part-{os.getpid()}")
                fs.get_file(key, str(partial))
                partial.replace(target)
                copied.append(relative)
        (local_dir / SYNC_MARKER).write_text(json.dumps({"prefix": prefix, "copied": len(copied)}))
    if copied:
        logger.info("synced %d files from %s into %s", len(copied), prefix, local_dir)
    return copied


def fetch_to(
    profile: Profile,
    target: str,
    *,
    staging: Path | None = None,
    roles: Iterable[Role] | None = None,
    token: str | None = None,
    endpoint: str | None = None,
    echo: Callable[[str], None] = print,
) -> str:
    """``fetch_models`` into a local dir, or into ``staging`` then up to an ``s3://`` prefix; the target."""
    if not target.startswith("s3://"):
        cache_dir = Path(target).expanduser().resolve()
        fetch_models(profile, cache_dir, roles=roles, token=token, endpoint=endpoint, echo=echo)
        return str(cache_dir)
    if staging is None:
        raise FetchError("an s3:// target needs a local staging dir (--staging) to download into first")
    fetch_models(profile, staging.resolve(), roles=roles, token=token, endpoint=endpoint, echo=echo)
    uploaded = push_to_s3(staging.resolve(), target)
    echo(f"uploaded {len(uploaded)} files to {target}")
    return target


def sync_node(environ: dict[str, str] | None = None) -> list[str]:
    """Sync all of ``$SCENECHAIN_MODEL_S3`` into the model dir (``$SCENECHAIN_MODEL_DIR``); no-op when unset.

    Run at node start (cluster.yaml setup, a KubeRay init container) so that models loaded by code
    that does not resolve specs itself (vLLM under ray.serve.llm, given a path resolved on the head)
    find the same local path on every node.
    """
    from weights.forge import MODEL_DIR_ENV  # noqa: PLC0415

    environ = dict(os.environ) if environ is None else environ
    prefix = environ.get(MODEL_S3_ENV)
    if not prefix:
        return []
    return sync_from_s3(prefix, Path(environ.get(MODEL_DIR_ENV) or ".models").resolve())


def main(argv: list[str] | None = None) -> int:
    """``python -m weights.fetch sync``: the node-start sync of the S3 model cache (``sync_node``)."""
    import argparse  # noqa: PLC0415

    parser = argparse.ArgumentParser(prog="python -m weights.fetch", description=main.__doc__)
    parser.add_argument("command", choices=["sync"], help="sync: copy $SCENECHAIN_MODEL_S3 to the model dir.")
    parser.parse_args(argv)
    copied = sync_node()
    print(
        f"synced {len(copied)} files"
        if os.environ.get(MODEL_S3_ENV)
        else f"{MODEL_S3_ENV} not set: nothing to sync"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
