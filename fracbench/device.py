"""Device checks shared by models and probes: refuse a device before any work starts on it."""

from __future__ import annotations

import torch


def check_device(device: str | torch.device) -> torch.device:
    """The torch device ``device`` names, or a ValueError saying what to use instead."""
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device {device!r} is not a torch device; use 'cpu' or 'cuda' (or 'cuda:N')") from None
    if resolved.type not in ("cpu", "cuda"):
        raise ValueError(f"device {device!r} is not supported; use 'cpu' or 'cuda' (or 'cuda:N')")
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device {device!r} was asked for but CUDA is not available to torch {torch.__version__}; "
                "use device 'cpu' (--device cpu), or install a CUDA build of torch on a machine with a GPU"
            )
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ValueError(f"device {device!r} does not exist: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return resolved
