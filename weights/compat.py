"""Make PyPI's CUDA torchvision importable beside a CPU torch, in every process.

PyPI's torchvision wheel is a CUDA build. Beside the CPU torch we pin, its compiled ``_C`` library
cannot load, and ``torchvision._meta_registrations`` then dies registering fake kernels for
``torchvision::nms`` (``operator torchvision::nms does not exist``), taking ``open_clip`` and
diffusers' CLIP image processor down with it. Defining the two op *schemas* first is enough.

Two layers make it automatic:
- ``install_import_hook()`` puts a meta-path finder in front of the import system that runs
  ``ensure_torchvision_ops()`` right before ``torchvision`` is first imported;
- ``write_pth_file()`` (run by ``make`` after install) drops a ``.pth`` into site-packages that
  installs the hook at interpreter start, so Ray workers and vLLM's spawned subprocesses get it too.
"""

from __future__ import annotations

import ctypes
import importlib.abc
import importlib.util
import logging
import sys
import sysconfig
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

PTH_NAME = "scenechain-torchvision-compat.pth"
PTH_LINE = "import weights.compat as _sc_compat; _sc_compat.install_import_hook()\n"

# (name, schema) of the ops torchvision's Python side expects its C library to have defined.
_TORCHVISION_OP_SCHEMAS = (
    ("nms", "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor"),
    ("qnms", "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor"),
)

_state: dict[str, Any] = {"done": False, "library": None}


def _torchvision_c_library_loads() -> bool:
    """True when torchvision's compiled ops library loads here (then it registers the real ops)."""
    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return False
    package_dir = Path(next(iter(spec.submodule_search_locations)))
    for candidate in sorted(package_dir.glob("_C*.so")) + sorted(package_dir.glob("_C*.pyd")):
        try:
            ctypes.CDLL(str(candidate))
        except OSError:
            return False
        return True
    return False


def ensure_torchvision_ops() -> bool:
    """Define the torchvision op schemas if the compiled library cannot; idempotent.

    Returns True when the schemas were defined by us (i.e. the shim is active).
    """
    if _state["done"]:
        return _state["library"] is not None
    _state["done"] = True
    if importlib.util.find_spec("torchvision") is None or "torchvision" in sys.modules:
        return False
    import torch  # noqa: PLC0415 - only when torchvision is about to be imported

    if _torchvision_c_library_loads():
        return False
    library = torch.library.Library("torchvision", "DEF")
    for name, schema in _TORCHVISION_OP_SCHEMAS:
        try:
            library.define(schema)
        except RuntimeError:
            logger.debug("torchvision::%s already defined", name)
    # The Library object must outlive the process, or its definitions are dropped.
    _state["library"] = library
    logger.debug("torchvision op schemas defined by scenechain (CPU torch + CUDA torchvision)")
    return True


class _TorchvisionImportHook(importlib.abc.MetaPathFinder):
    """Runs the shim just before the first ``import torchvision``; never resolves a module itself."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> None:
        if fullname == "torchvision":
            sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _TorchvisionImportHook)]
            ensure_torchvision_ops()
        return None


def install_import_hook() -> None:
    """Idempotently put the hook first on ``sys.meta_path`` (cheap: imports nothing heavy)."""
    if "torchvision" in sys.modules:
        return
    if not any(isinstance(f, _TorchvisionImportHook) for f in sys.meta_path):
        sys.meta_path.insert(0, _TorchvisionImportHook())


def write_pth_file(site_packages: Path | None = None) -> Path:
    """Install the start-up ``.pth`` into this interpreter's site-packages; returns its path."""
    target_dir = site_packages or Path(sysconfig.get_paths()["purelib"])
    pth_path = target_dir / PTH_NAME
    if not pth_path.exists() or pth_path.read_text() != PTH_LINE:
        pth_path.write_text(PTH_LINE)
    return pth_path


if __name__ == "__main__":
    print(write_pth_file())
