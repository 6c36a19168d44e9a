"""CUDA torchvision beside CPU torch: importable in every fresh interpreter, automatically."""

from __future__ import annotations

import subprocess
import sys

CHECK = """
import sys
from weights.compat import _TorchvisionImportHook
assert any(isinstance(f, _TorchvisionImportHook) for f in sys.meta_path) or 'torchvision' in sys.modules
import open_clip, torchvision
from diffusers import StableDiffusionPipeline
from transformers import CLIPImageProcessor
print("ok", torchvision.__version__)
"""


def test_fresh_interpreter_imports_open_clip_and_diffusers() -> None:
    # A fresh process (as Ray workers and vLLM's spawned processes are) gets the hook from the .pth.
    completed = subprocess.run([sys.executable, "-c", CHECK], capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert completed.stdout.startswith("ok")
