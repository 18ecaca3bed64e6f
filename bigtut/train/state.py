"""The trainer's files, written so that a kill at any instant leaves either the old or the new version, never half.

An output folder holds:

* ``train_state.safetensors`` — what a resumed run needs: the weights (``model.*``), the optimizer's tensors
  (``optim.*``), and in the JSON metadata the settings, the step reached, the optimizer's and the scheduler's
  other state, the loss history and a SHA-256 of every tensor (so a damaged file is refused, not trained on);
* ``model.safetensors`` — the weights alone in :func:`bigtut.training.save_checkpoint`'s format (the config in
  its metadata), what notebooks load with :func:`bigtut.training.load_checkpoint`;
* ``history.json`` — the loss per step, :class:`bigtut.training.History`'s fields; ``tokenizer.json``.

Every file is written to a temporary name in the same folder, flushed to disk, then renamed over the old one
with :func:`os.replace` (atomic on POSIX). Nothing here unpickles: safetensors and JSON only.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch
from torch import nn

__all__ = ["STATE_FILE", "CheckpointError", "atomic_write_bytes", "load_train_state", "read_train_state",
           "remove_stale_temporaries", "save_train_state", "tensor_digest"]

STATE_FILE = "train_state.safetensors"


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: missing, unreadable, damaged, or made with other settings."""


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and :func:`os.replace`: readers see old or new."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def remove_stale_temporaries(folder: Path) -> None:
    """Delete temporary files a killed run left behind (``.<name>.tmp-<pid>``)."""
    for stale in folder.glob(".*.tmp-*"):
        stale.unlink(missing_ok=True)


def tensor_digest(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 over the names and raw bytes of ``tensors`` in sorted order."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        digest.update(name.encode() + b"\0")
        digest.update(tensors[name].contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _jsonable(value):
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, torch.Tensor):
        raise TypeError("tensors belong in the safetensors part, not the JSON metadata")
    return value


def save_train_state(folder: Path, model: nn.Module, optimizer: torch.optim.Optimizer,
                     scheduler: torch.optim.lr_scheduler.LRScheduler, *, step: int, settings: dict,
                     history: dict) -> None:
    """Write ``folder/train_state.safetensors`` atomically (see the module docstring for what it holds)."""
    from safetensors.torch import save

    tensors = {f"model.{k}": v.detach().to("cpu").clone() for k, v in model.state_dict().items()}
    optim = optimizer.state_dict()
    optim_scalars: dict[str, dict] = {}
    for index, state in optim["state"].items():
        for key, value in state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{index}.{key}"] = value.detach().to("cpu").clone()
            else:
                optim_scalars.setdefault(str(index), {})[key] = value
    meta = {"step": step, "settings": settings, "history": history,
            "param_groups": _jsonable(optim["param_groups"]), "optim_scalars": optim_scalars,
            "scheduler": _jsonable(scheduler.state_dict()), "sha256": tensor_digest(tensors)}
    atomic_write_bytes(folder / STATE_FILE, save(tensors, metadata={"bigtut_train": json.dumps(meta)}))


def read_train_state(folder: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """The tensors and metadata of ``folder/train_state.safetensors``, checked against their SHA-256.

    Raises:
        CheckpointError: the file is missing, unreadable (e.g. truncated) or damaged.
    """
    from safetensors.torch import load

    path = folder / STATE_FILE
    if not path.is_file():
        raise CheckpointError(f"no checkpoint in {folder} ({STATE_FILE} is missing); start a fresh run with "
                              f"--out {folder} and no --resume, or point --resume at a folder a run wrote")
    fix = (f"delete {path} to start again from step 0, or resume from a copy you kept; "
           "the weights in model.safetensors were not touched")
    try:
        raw = path.read_bytes()
        tensors = load(raw)
        header_len = int.from_bytes(raw[:8], "little")  # safetensors: 8-byte length, JSON header, tensor bytes
        meta = json.loads(json.loads(raw[8:8 + header_len])["__metadata__"]["bigtut_train"])
    except Exception as error:  # safetensors raises its own error type for a truncated or garbled file
        raise CheckpointError(f"{path} is unreadable ({type(error).__name__}: {error}); {fix}") from None
    if tensor_digest(tensors) != meta.get("sha256"):
        raise CheckpointError(f"{path} is damaged: its tensors do not match the SHA-256 stored with them; {fix}")
    return tensors, meta


def load_train_state(model: nn.Module, optimizer: torch.optim.Optimizer,
                     scheduler: torch.optim.lr_scheduler.LRScheduler, tensors: dict, meta: dict) -> None:
    """Put the weights, optimizer and scheduler state read by :func:`read_train_state` back in place."""
    model.load_state_dict({k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}, strict=True)
    state: dict[int, dict] = {}
    for name, value in tensors.items():
        if name.startswith("optim."):
            _, index, key = name.split(".", 2)
            state.setdefault(int(index), {})[key] = value  # load_state_dict moves it to the parameter's device
    for index, scalars in meta["optim_scalars"].items():
        state.setdefault(int(index), {}).update(scalars)
    groups = [{k: tuple(v) if k == "betas" else v for k, v in g.items()} for g in meta["param_groups"]]
    optimizer.load_state_dict({"state": state, "param_groups": groups})
    scheduler.load_state_dict(meta["scheduler"])
