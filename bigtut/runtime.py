"""Where tensors live and how runs repeat: device choice, seeding, and evaluation mode.

Every notebook starts with::

    import bigtut
    bigtut.seed_everything(0)
    device = bigtut.get_device()
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn

__all__ = ["DEVICE_CHOICES", "describe_environment", "eval_mode", "get_device", "seed_everything"]

DEVICE_CHOICES = ("cpu", "cuda", "mps")


def _available(kind: str) -> bool:
    if kind == "cpu":
        return True
    if kind == "cuda":
        return torch.cuda.is_available()
    if kind == "mps":
        return bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()
    return False


def get_device(prefer: str | None = None) -> torch.device:
    """Pick the device the course runs on.

    Order: ``prefer`` if given, else the environment variable ``BIGTUT_DEVICE``, else CUDA when a GPU is
    present, else the CPU. Apple's MPS is used only when asked for by name: it is known to give wrong losses
    for some models, so the course never picks it on its own.

    Raises:
        ValueError: ``prefer`` (or ``BIGTUT_DEVICE``) is not one of ``cpu``, ``cuda``, ``mps`` (an index such
            as ``cuda:1`` is allowed), or names a device this machine does not have.
    """
    choice = prefer if prefer is not None else os.environ.get("BIGTUT_DEVICE") or None
    if choice is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not isinstance(choice, str):
        raise TypeError(f"prefer must be a string such as 'cpu' or 'cuda', got {type(choice).__name__}")
    kind = choice.strip().lower().split(":")[0]
    if kind not in DEVICE_CHOICES:
        raise ValueError(f"unknown device {choice!r}; choose one of {', '.join(DEVICE_CHOICES)} (e.g. 'cuda:0')")
    if not _available(kind):
        present = [k for k in DEVICE_CHOICES if _available(k)]
        raise ValueError(f"device {choice!r} is not available on this machine; available: {', '.join(present)}")
    _, _, index = choice.strip().lower().partition(":")
    if index:
        count = torch.cuda.device_count() if kind == "cuda" else 1
        if not index.isdigit() or int(index) >= count:
            raise ValueError(f"device {choice!r}: index must be an integer in 0..{count - 1} for {kind}")
    return torch.device(choice.strip().lower())


def seed_everything(seed: int = 0) -> None:
    """Seed Python's, NumPy's and torch's (CPU and every CUDA device) random generators."""
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # also seeds every CUDA device


def describe_environment() -> dict[str, str]:
    """Versions and hardware facts for the set-up notebook: {name: value}."""
    import platform

    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "device": str(get_device()),
        "cpu threads (torch)": str(torch.get_num_threads()),
        "cuda available": str(torch.cuda.is_available()),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode for the ``with`` block; restore every submodule's own mode afterwards.

    The mode is restored even when the block raises, and per submodule (a model whose encoder was frozen
    in eval mode inside a training model comes back exactly as it was)::

        with eval_mode(model):
            logits = model(ids)
    """
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in modes:
            module.training = training
