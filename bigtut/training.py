"""A small, readable training loop with a progress bar, loss history, clipping, a learning-rate schedule,
and checkpoints in safetensors.

The loop is deliberately plain — the same five lines every chapter uses::

    loss = loss_fn(model, batch)      # forward
    optimizer.zero_grad()
    loss.backward()                   # backward
    clip_grad_norm_(...)              # optional
    optimizer.step(); scheduler.step()

``loss_fn(model, batch) -> scalar tensor`` is the only thing a chapter has to write.
"""

from __future__ import annotations

import io
import itertools
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.std import tqdm as tqdm_std

from bigtut.runtime import eval_mode, get_device
from bigtut.validation import check_positive_int

__all__ = ["History", "checkpoint_metadata", "evaluate", "fit", "load_checkpoint", "lr_lambda", "move_to",
           "progress_bar", "save_checkpoint", "weight_decay_groups"]

LossFn = Callable[[nn.Module, Any], torch.Tensor]


@dataclass
class History:
    """What :func:`fit` recorded: training loss at every step, validation loss every ``eval_every`` steps."""

    step: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    val_step: list[int] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    seconds: float = 0.0

    def smoothed_train_loss(self, window: int = 50, centred: bool = False) -> list[float]:
        """The training loss averaged over ``window`` steps (for readable curves).

        ``centred=False``: the mean of the last ``window`` steps (what a running display can know) — it trails
        the raw loss by about half a window. ``centred=True``: the mean over a window centred on each step,
        shrunk symmetrically near both ends, so a falling loss is not drawn later than it happened (an even
        ``window`` becomes the odd ``window - 1``, so that it has a centre).
        """
        check_positive_int("window", window)
        values = self.train_loss
        if not centred:
            out, total = [], 0.0
            for i, value in enumerate(values):
                total += value - (values[i - window] if i >= window else 0.0)
                out.append(total / min(i + 1, window))
            return out
        prefix = [0.0]
        for value in values:
            prefix.append(prefix[-1] + value)
        n, half = len(values), (window - 1) // 2
        out = []
        for i in range(n):
            h = min(half, i, n - 1 - i)  # symmetric, so the window stays centred at the ends
            out.append((prefix[i + h + 1] - prefix[i - h]) / (2 * h + 1))
        return out


def progress_bar(iterable: Iterable | None = None, **kwargs):
    """A tqdm progress bar: a widget in JupyterLab, plain text in a terminal.

    ``BIGTUT_PROGRESS=text`` (``make outputs`` sets it) writes nothing while the loop runs and exactly one
    finished line to stderr when it ends — ``desc: 100%|██████| n/total [elapsed<00:00, rate, postfix]`` — with
    no carriage returns. A stored notebook then shows each finished loop once, instead of a widget's first
    frame ("0%") or a stream of ``\r``-separated frames.
    """
    if os.environ.get("BIGTUT_PROGRESS", "").lower() == "text":
        return _FinalLineBar(iterable, **kwargs)
    from tqdm.auto import tqdm

    return tqdm(iterable, **kwargs)


class _Discard(io.TextIOBase):
    """A text stream that forgets what it is given (the frames of a bar still running)."""

    encoding = "utf-8"  # so tqdm draws the same unicode bar it would draw on the real stream

    def write(self, text: str) -> int:
        return len(text)


class _FinalLineBar(tqdm_std):
    """tqdm that draws nothing while running, then writes its final line once, ending in a newline.

    The frames tqdm draws go to a throw-away buffer; :meth:`close` (called by tqdm when the loop ends) writes
    the finished bar to the real file. ``leave=False`` keeps its meaning: no line at all.
    """

    def __init__(self, *args, **kwargs):
        self._final_file = kwargs.pop("file", None) or sys.stderr
        kwargs["file"] = _Discard()
        super().__init__(*args, **kwargs)

    def close(self):
        if self.disable:
            return
        line = str(self)  # the bar as it stands: n/total, elapsed, rate, last postfix
        keep = self.leave
        super().close()
        if keep:
            self._final_file.write(line.rstrip() + "\n")
            self._final_file.flush()


def move_to(batch: Any, device: torch.device) -> Any:
    """Move a tensor, or the tensors inside a tuple/list/dict, to ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if isinstance(batch, (list, tuple)):
        return type(batch)(move_to(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: move_to(v, device) for k, v in batch.items()}
    return batch


def lr_lambda(schedule: str, steps: int, warmup_steps: int = 0) -> Callable[[int], float]:
    """Learning-rate multiplier per step: linear warm-up, then ``"constant"`` or ``"cosine"`` decay to 10 %."""
    if schedule not in ("constant", "cosine"):
        raise ValueError(f"schedule must be 'constant' or 'cosine', got {schedule!r}")
    if not 0 <= warmup_steps < max(steps, 1):
        raise ValueError(f"warmup_steps must lie in [0, steps={steps}), got {warmup_steps}")

    def multiplier(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        if schedule == "constant":
            return 1.0
        progress = (step - warmup_steps) / max(1, steps - warmup_steps)
        return 0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

    return multiplier


@torch.no_grad()
def evaluate(model: nn.Module, loss_fn: LossFn, batches: Iterable, device: torch.device | None = None) -> float:
    """Mean of ``loss_fn`` over ``batches`` in eval mode without gradients (the model's mode is restored)."""
    device = device or next(model.parameters()).device
    with eval_mode(model):
        losses = [float(loss_fn(model, move_to(b, device))) for b in batches]
    if not losses:
        raise ValueError("evaluate() got no batches")
    return sum(losses) / len(losses)


def weight_decay_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """AdamW parameter groups that decay only the weight matrices, as GPT-2 and nanoGPT do.

    Biases, LayerNorm gains and every ``nn.Embedding`` table (token, position, segment; a tied output head
    shares the token table) get no decay: shrinking them towards zero does not regularise, it only moves a
    gain away from 1 or an embedding away from where the data put it. Each parameter appears once.
    """
    if weight_decay < 0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
    embeddings = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    decay, no_decay, seen = [], [], set()
    for p in model.parameters():  # parameters() already skips a tied tensor's second name
        if not p.requires_grad or id(p) in seen:
            continue
        seen.add(id(p))
        (no_decay if p.dim() < 2 or id(p) in embeddings else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _batch_source(train_batches: Callable[[], Any] | Iterable) -> Callable[[], Any]:
    if callable(train_batches):
        return train_batches
    cycle = itertools.cycle(train_batches)  # an iterable (a DataLoader, a list) is repeated as needed
    return lambda: next(cycle)


def fit(
    model: nn.Module,
    loss_fn: LossFn,
    train_batches: Callable[[], Any] | Iterable,
    *,
    steps: int,
    lr: float = 3e-4,
    optimizer: torch.optim.Optimizer | None = None,
    weight_decay: float = 0.0,
    val_batches: Iterable | Callable[[], Iterable] | None = None,
    eval_every: int = 100,
    grad_clip: float | None = None,
    warmup_steps: int = 0,
    schedule: str = "constant",
    device: torch.device | str | None = None,
    desc: str = "train",
    progress: bool = True,
) -> History:
    """Train ``model`` for ``steps`` optimizer steps and return the loss :class:`History`.

    Args:
        loss_fn: ``loss_fn(model, batch) -> scalar loss``; the batch is already on ``device``.
        train_batches: a callable returning a fresh batch (random sampling), or an iterable that is cycled.
        optimizer: defaults to AdamW with ``lr``, decaying only weight matrices by ``weight_decay``
            (:func:`weight_decay_groups`: no decay on biases, LayerNorm gains and embeddings).
        val_batches: batches (or a callable returning them) for the validation loss, measured every
            ``eval_every`` steps and after the last step.
        grad_clip: clip the global gradient norm to this value.
        warmup_steps, schedule: learning-rate warm-up and ``"constant"``/``"cosine"`` decay (:func:`lr_lambda`).
    """
    check_positive_int("steps", steps)
    if eval_every < 1:
        raise ValueError(f"eval_every must be >= 1, got {eval_every}")
    device = torch.device(device) if device is not None else get_device()
    model.to(device).train()
    optimizer = optimizer or torch.optim.AdamW(weight_decay_groups(model, weight_decay), lr=lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(schedule, steps, warmup_steps))
    next_batch = _batch_source(train_batches)
    history = History()

    def validate(step: int) -> None:
        batches = val_batches() if callable(val_batches) else val_batches
        history.val_step.append(step)
        history.val_loss.append(evaluate(model, loss_fn, batches, device))
        model.train()

    start = time.perf_counter()
    bar = progress_bar(range(1, steps + 1), desc=desc, disable=not progress, mininterval=0.5)
    for step in bar:
        loss = loss_fn(model, move_to(next_batch(), device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        optimizer.step()
        scheduler.step()
        history.step.append(step)
        history.train_loss.append(loss.item())
        if val_batches is not None and (step % eval_every == 0 or step == steps):
            validate(step)
        if step % 10 == 0 or step == steps:
            postfix = {"loss": f"{history.smoothed_train_loss(20)[-1]:.3f}"}
            if history.val_loss:
                postfix["val"] = f"{history.val_loss[-1]:.3f}"
            bar.set_postfix(postfix, refresh=False)
    history.seconds = time.perf_counter() - start
    model.eval()
    return history


def save_checkpoint(model: nn.Module, path: str | Path, metadata: dict | None = None) -> None:
    """Save the model's weights (safetensors) with JSON-serialisable ``metadata`` (e.g. its config)."""
    from safetensors.torch import save_model

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    save_model(model, str(path), metadata={"bigtut": json.dumps(metadata or {})})


def load_checkpoint(model: nn.Module, path: str | Path) -> dict:
    """Load weights saved by :func:`save_checkpoint` into ``model`` (shapes must match); return the metadata.

    safetensors holds only tensors, so loading a file can never run code (unlike unpickling).
    """
    from safetensors.torch import load_model

    load_model(model, str(path), strict=True)  # raises if names or shapes differ
    return checkpoint_metadata(path)


def checkpoint_metadata(path: str | Path) -> dict:
    """The JSON metadata a :func:`save_checkpoint` file carries (e.g. the config to build its model from)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return json.loads((f.metadata() or {}).get("bigtut", "{}"))
