"""A throwaway model hub on loopback, and hub-cache dirs built by hand, holding forged stand-ins.

``fake_hub(repos)`` serves the few endpoints ``huggingface_hub.snapshot_download`` and
``hf_hub_download`` call (repo info, recursive tree listing, ``resolve`` HEAD/GET with ranges) from
local files, so ``scenechain fetch-models`` runs its real download code with ``endpoint=`` pointing
here. ``write_hub_cache`` lays files out as the hub cache does (``models--org--name/refs/main``,
``blobs/``, ``snapshots/<sha>/`` symlinks). ``production_stand_ins`` maps the production profile's
repo ids onto forged twins, plus decoy files a loader never reads (which a download must skip).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

# repo id -> {path in repo: file content}
Repos = dict[str, dict[str, bytes]]

DECOY = b"decoy: a loader never reads this file\n"


def repo_sha(repo_id: str, files: dict[str, bytes]) -> str:
    """A stable 40-hex commit id for a repo's content."""
    digest = hashlib.sha1(repo_id.encode())
    for path in sorted(files):
        digest.update(path.encode() + hashlib.sha1(files[path]).digest())
    return digest.hexdigest()


def dir_files(directory: Path, skip: tuple[str, ...] = ("forge_manifest.json",)) -> dict[str, bytes]:
    """Every file under ``directory`` by relative POSIX path (the forge manifest left out)."""
    return {
        path.relative_to(directory).as_posix(): path.read_bytes()
        for path in sorted(directory.rglob("*"))
        if path.is_file() and path.name not in skip
    }


def production_stand_ins(forged: dict[str, Path]) -> Repos:
    """The production profile's hub repos, holding forged twins (``forged``: forge name -> dir) plus
    decoys each role's download must leave out (single-file checkpoints, .bin duplicates, other weights)."""
    return {
        "black-forest-labs/FLUX.1-schnell": {
            **dir_files(forged["twin-flux"]),
            "flux1-schnell.safetensors": DECOY,  # the original single-file checkpoint (23 GB upstream)
            "ae.safetensors": DECOY,
            "README.md": DECOY,
        },
        "stabilityai/sdxl-turbo": {
            **dir_files(forged["twin-sdxl"]),
            "sd_xl_turbo_1.0_fp16.safetensors": DECOY,
        },
        "yuvalkirstain/PickScore_v1": {**dir_files(forged["twin-pickscore"]), "pytorch_model.bin": DECOY},
        "laion/CLIP-ViT-H-14-laion2B-s32B-b79K": {
            **dir_files(forged["twin-clip-h14-processor"]),
            "open_clip_pytorch_model.bin": DECOY,  # the processor role needs no weights of this repo
            "model.safetensors": DECOY,
        },
        "timm/vit_large_patch14_clip_224.openai": {
            **dir_files(forged["twin-openclip-l14"]),
            "open_clip_pytorch_model.bin": DECOY,  # open_clip prefers the safetensors
        },
        "camenduru/improved-aesthetic-predictor": {
            "sac+logos+ava1-l14-linearMSE.pth": (forged["twin-aesthetic"] / "aesthetic_mlp.pth").read_bytes(),
            "ava+logos-l14-linearMSE.pth": DECOY,
        },
        "llava-hf/llava-1.5-7b-hf": {**dir_files(forged["twin-llava15"]), "pytorch_model.bin": DECOY},
        "Qwen/Qwen2.5-7B-Instruct": {**dir_files(forged["twin-qwen25"]), "pytorch_model.bin": DECOY},
    }


def write_hub_cache(cache_dir: Path, repos: Repos) -> dict[str, Path]:
    """Lay ``repos`` out in the hub cache layout under ``cache_dir``; repo id -> snapshot dir."""
    snapshots: dict[str, Path] = {}
    for repo_id, files in repos.items():
        storage = cache_dir / ("models--" + repo_id.replace("/", "--"))
        sha = repo_sha(repo_id, files)
        (storage / "refs").mkdir(parents=True, exist_ok=True)
        (storage / "refs" / "main").write_text(sha)
        snapshot = storage / "snapshots" / sha
        for relative, content in files.items():
            blob = storage / "blobs" / hashlib.sha256(content).hexdigest()
            blob.parent.mkdir(parents=True, exist_ok=True)
            blob.write_bytes(content)
            link = snapshot / relative
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(os.path.relpath(blob, link.parent))
        snapshots[repo_id] = snapshot
    return snapshots


@dataclass
class FakeHub:
    """The running hub: its endpoint and every request it answered (method, path)."""

    endpoint: str
    repos: Repos
    requests: list[tuple[str, str]] = field(default_factory=list)

    def downloaded(self, repo_id: str) -> set[str]:
        """Files of ``repo_id`` whose content was sent (GET on resolve)."""
        prefix = f"/{repo_id}/resolve/"
        return {
            unquote(path[len(prefix) :]).split("/", 1)[1]
            for method, path in self.requests
            if method == "GET" and path.startswith(prefix)
        }


def _handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # quiet
            pass

        def do_HEAD(self) -> None:  # noqa: N802
            self._serve(send_body=False)

        def do_GET(self) -> None:  # noqa: N802
            self._serve(send_body=True)

        def _json(self, data: object, send_body: bool) -> None:
            body = json.dumps(data).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if send_body:
                self.wfile.write(body)

        def _not_found(self, code: str) -> None:
            self.send_response(404)
            self.send_header("X-Error-Code", code)
            self.send_header("X-Error-Message", code)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _serve(self, send_body: bool) -> None:
            path = urlsplit(self.path).path
            hub.requests.append((self.command, path))
            path = unquote(path)
            if match := re.fullmatch(r"/api/models/([^/]+/[^/]+)/revision/([^/]+)", path):
                files = hub.repos.get(match.group(1))
                if files is None:
                    return self._not_found("RepoNotFound")
                sha = repo_sha(match.group(1), files)
                siblings = [{"rfilename": name} for name in sorted(files)]
                return self._json({"id": match.group(1), "sha": sha, "siblings": siblings}, send_body)
            if match := re.fullmatch(r"/api/models/([^/]+/[^/]+)/tree/([^/]+)(/.*)?", path):
                files = hub.repos.get(match.group(1))
                if files is None:
                    return self._not_found("RepoNotFound")
                entries = [
                    {
                        "type": "file",
                        "path": name,
                        "size": len(content),
                        "oid": hashlib.sha1(content).hexdigest(),
                    }
                    for name, content in sorted(files.items())
                ]
                return self._json(entries, send_body)
            if match := re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path):
                files = hub.repos.get(match.group(1))
                if files is None:
                    return self._not_found("RepoNotFound")
                content = files.get(match.group(3))
                if content is None:
                    return self._not_found("EntryNotFound")
                start = 0
                if (ranged := re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))) is not None:
                    start = int(ranged.group(1))
                self.send_response(206 if start else 200)
                self.send_header("X-Repo-Commit", repo_sha(match.group(1), files))
                self.send_header("ETag", f'"{hashlib.sha1(content).hexdigest()}"')
                self.send_header("Content-Length", str(len(content) - start))
                self.end_headers()
                if send_body:
                    self.wfile.write(content[start:])
                return None
            return self._not_found("NotFound")

    return Handler


@contextlib.contextmanager
def fake_hub(repos: Repos) -> Iterator[FakeHub]:
    """Serve ``repos`` on a free 127.0.0.1 port for the block."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    hub = FakeHub(endpoint=f"http://127.0.0.1:{server.server_address[1]}", repos=repos)
    server.RequestHandlerClass = _handler(hub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hub
    finally:
        server.shutdown()
        server.server_close()
