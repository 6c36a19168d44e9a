"""One store for images and traces, over fsspec (a local dir by default; s3:// etc. by URL).

Layout under the root:
- ``generations/{id}/scene_{n}.png`` — the kept image of scene n (the chain's reference);
- ``reference_image_traces/{id}/scene_{n}/`` — the per-scene trace: ``00_original_prompt.txt``,
  ``01_agent1_iteration_1.txt`` ..., ``final_enhanced_prompt.txt``, ``prompt_trace_summary.json``,
  ``image_1.png`` ... (one per variation), ``quality_scores.json``; scene 1 of a generation with a
  product reference image also ``reference_image.png`` (the image it started from) and
  ``reference_image.json`` (its id and the strength used);
- ``generations/{id}/reference_image.png`` — the product reference image a generation was submitted
  with (normalised PNG; the Director reads it for scene 1);
- ``uploads/{user key}/{upload id}.png`` — images uploaded with ``POST /api/uploads``, per user (the
  key is a digest of the user name, so another user's id is simply not there).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from typing import Any

import fsspec
from fsspec.core import url_to_fs

logger = logging.getLogger(__name__)

TRACES_DIR = "reference_image_traces"
IMAGES_DIR = "generations"
UPLOADS_DIR = "uploads"
REFERENCE_IMAGE = "reference_image.png"
_SAFE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")


class StorageError(RuntimeError):
    """A store operation failed."""


def _check_id(generation_id: str) -> str:
    if not _SAFE_ID.match(generation_id):
        raise ValueError(f"invalid generation id {generation_id!r}")
    return generation_id


class Storage:
    """Images and traces of generations, addressed by generation id and scene number."""

    def __init__(self, root: str) -> None:
        self.root = root.rstrip("/")
        self.fs: fsspec.AbstractFileSystem
        self.fs, self._root_path = url_to_fs(self.root)
        if self.is_local:
            self.fs.makedirs(self._root_path, exist_ok=True)

    @property
    def is_local(self) -> bool:
        """True for a local-filesystem store."""
        return "file" in (self.fs.protocol if isinstance(self.fs.protocol, tuple) else (self.fs.protocol,))

    # -- paths ---------------------------------------------------------------------------------

    def _path(self, *parts: str) -> str:
        return "/".join([self._root_path, *parts])

    def trace_dir(self, generation_id: str, scene: int) -> str:
        """Path of a scene's trace dir (in the store's own path syntax)."""
        return self._path(TRACES_DIR, _check_id(generation_id), f"scene_{int(scene)}")

    def scene_image_path(self, generation_id: str, scene: int) -> str:
        """Path of a scene's kept image."""
        return self._path(IMAGES_DIR, _check_id(generation_id), f"scene_{int(scene)}.png")

    # -- primitives ----------------------------------------------------------------------------

    def _write(self, path: str, data: bytes) -> None:
        parent = path.rsplit("/", 1)[0]
        self.fs.makedirs(parent, exist_ok=True)
        tmp = f"{path}.tmp"
        with self.fs.open(tmp, "wb") as handle:
            handle.write(data)
        self.fs.mv(tmp, path)  # readers never see a half-written file

    def _read(self, path: str) -> bytes:
        try:
            with self.fs.open(path, "rb") as handle:
                return handle.read()
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise StorageError(f"reading {path}: {exc}") from exc

    # -- traces --------------------------------------------------------------------------------

    def write_trace_file(self, generation_id: str, scene: int, name: str, data: bytes | str) -> str:
        """Write one file into a scene's trace dir; returns its path."""
        if not _SAFE_NAME.match(name):
            raise ValueError(f"invalid trace file name {name!r}")
        path = f"{self.trace_dir(generation_id, scene)}/{name}"
        self._write(path, data.encode() if isinstance(data, str) else data)
        return path

    def write_trace_json(self, generation_id: str, scene: int, name: str, payload: Any) -> str:
        """Write a JSON trace file (indented, keys sorted)."""
        return self.write_trace_file(
            generation_id, scene, name, json.dumps(payload, indent=2, sort_keys=True, default=str)
        )

    def read_trace_file(self, generation_id: str, scene: int, name: str) -> bytes:
        """Read one trace file (FileNotFoundError when absent)."""
        if not _SAFE_NAME.match(name):
            raise ValueError(f"invalid trace file name {name!r}")
        return self._read(f"{self.trace_dir(generation_id, scene)}/{name}")

    def list_trace_files(self, generation_id: str, scene: int) -> list[str]:
        """Names in a scene's trace dir, sorted."""
        directory = self.trace_dir(generation_id, scene)
        if not self.fs.exists(directory):
            return []
        return sorted(entry.rsplit("/", 1)[-1] for entry in self.fs.ls(directory, detail=False))

    def write_variation(self, generation_id: str, scene: int, k: int, png: bytes) -> str:
        """Write variation k (1-based) of a scene as ``image_{k}.png`` in its trace dir."""
        return self.write_trace_file(generation_id, scene, f"image_{int(k)}.png", png)

    def read_variation(self, generation_id: str, scene: int, k: int) -> bytes:
        """Read variation k (1-based) of a scene."""
        return self.read_trace_file(generation_id, scene, f"image_{int(k)}.png")

    # -- kept images ---------------------------------------------------------------------------

    def write_scene_image(self, generation_id: str, scene: int, png: bytes) -> str:
        """Write the kept image of a scene."""
        path = self.scene_image_path(generation_id, scene)
        self._write(path, png)
        return path

    def read_scene_image(self, generation_id: str, scene: int) -> bytes:
        """Read the kept image of a scene (FileNotFoundError when absent)."""
        return self._read(self.scene_image_path(generation_id, scene))

    # -- product reference images ----------------------------------------------------------------

    def upload_path(self, user: str, upload_id: str) -> str:
        """Path of one of ``user``'s uploads (under a digest of the user name: no name in a path)."""
        user_key = hashlib.sha256(user.encode()).hexdigest()[:32]
        return self._path(UPLOADS_DIR, user_key, f"{_check_id(upload_id)}.png")

    def write_upload(self, user: str, upload_id: str, png: bytes) -> str:
        """Write an uploaded (normalised) image of ``user``."""
        path = self.upload_path(user, upload_id)
        self._write(path, png)
        return path

    def read_upload(self, user: str, upload_id: str) -> bytes:
        """Read one of ``user``'s uploads (FileNotFoundError when unknown or another user's)."""
        return self._read(self.upload_path(user, upload_id))

    def reference_image_path(self, generation_id: str) -> str:
        """Path of the product reference image a generation was submitted with."""
        return self._path(IMAGES_DIR, _check_id(generation_id), REFERENCE_IMAGE)

    def write_reference_image(self, generation_id: str, png: bytes) -> str:
        """Write a generation's product reference image (before its row exists)."""
        path = self.reference_image_path(generation_id)
        self._write(path, png)
        return path

    def read_reference_image(self, generation_id: str) -> bytes:
        """Read a generation's product reference image (FileNotFoundError when absent)."""
        return self._read(self.reference_image_path(generation_id))

    # -- retention -----------------------------------------------------------------------------

    def delete_generation(self, generation_id: str) -> None:
        """Remove every file of a generation (images and traces)."""
        for directory in (
            self._path(IMAGES_DIR, _check_id(generation_id)),
            self._path(TRACES_DIR, _check_id(generation_id)),
        ):
            if self.fs.exists(directory):
                self.fs.rm(directory, recursive=True)
