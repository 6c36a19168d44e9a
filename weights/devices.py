"""Where a model runs: a profile's device name made concrete (one resolver for every core)."""

from __future__ import annotations


class DeviceUnavailable(RuntimeError):
    """The profile asks for a device this machine does not have."""


def resolve_device(device: str) -> str:
    """'auto' becomes 'cuda' when CUDA is available, else 'cpu'; 'cuda' without CUDA is an error."""
    if device not in ("auto", "cuda") and not device.startswith("cuda:"):
        return device
    import torch  # noqa: PLC0415

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if not torch.cuda.is_available():
        raise DeviceUnavailable(f"profile asks for {device!r} but no CUDA device is available")
    return device
