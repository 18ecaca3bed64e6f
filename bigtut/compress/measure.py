"""What a compression buys and costs: size on disk, CPU latency, and the task metric.

* :func:`size_on_disk` — bytes of the model's safetensors file (pruning masks folded in first, so a pruned
  model is stored as the dense matrices it runs with);
* :func:`cpu_latency` — the median wall time of repeated forward calls, with the thread count stated;
  :func:`compare_latency` times several models side by side, in rounds whose order rotates, so that a
  machine's drifting load hits them all alike;
* the task metrics are those of :mod:`bigtut.evaluation` (re-exported here): :func:`accuracy` for
  classifiers, :func:`bits_per_character` for the character GPT.
"""

from __future__ import annotations

import copy
import tempfile
import time
from collections.abc import Hashable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from bigtut.compress.prune import make_pruning_permanent
from bigtut.evaluation import accuracy, bits_per_character
from bigtut.validation import check_positive_int

__all__ = ["Latency", "accuracy", "bits_per_character", "compare_latency", "cpu_latency", "parameter_bytes",
           "size_on_disk"]


def size_on_disk(model: nn.Module) -> int:
    """Bytes of ``model``'s weights written as one safetensors file (a tied matrix is stored once)."""
    from safetensors.torch import save_model

    plain = make_pruning_permanent(copy.deepcopy(model))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.safetensors"
        save_model(plain, str(path))
        return path.stat().st_size


def parameter_bytes(model: nn.Module) -> dict[str, int]:
    """Bytes of the model's tensors (parameters and buffers) by dtype, e.g. ``{"torch.float32": 81920}``."""
    seen, sizes = set(), {}
    for t in list(model.parameters()) + list(model.buffers()):
        if id(t) not in seen:
            seen.add(id(t))
            sizes[str(t.dtype)] = sizes.get(str(t.dtype), 0) + t.numel() * t.element_size()
    return sizes


class Latency(NamedTuple):
    """Wall time of one forward call in milliseconds: the ``median`` and the quartiles of ``repeats`` calls."""

    median_ms: float
    q1_ms: float
    q3_ms: float
    threads: int
    repeats: int


def cpu_latency(model: nn.Module, *args, repeats: int = 20, warmup: int = 3, threads: int = 1, **kwargs) -> Latency:
    """Time ``model(*args, **kwargs)`` on the CPU under ``torch.no_grad()`` with ``threads`` intra-op threads.

    ``warmup`` untimed calls first; the thread setting is restored afterwards. Inputs must already be on the
    CPU (and the model too).
    """
    check_positive_int("repeats", repeats)
    check_positive_int("threads", threads)
    if any(p.device.type != "cpu" for p in model.parameters()):
        raise ValueError("cpu_latency times CPU models: move the model (and inputs) with .cpu() first")
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        times = []
        with torch.no_grad():
            for i in range(warmup + repeats):
                start = time.perf_counter()
                model(*args, **kwargs)
                if i >= warmup:
                    times.append((time.perf_counter() - start) * 1000)
    finally:
        torch.set_num_threads(before)
    q1, median, q3 = np.percentile(times, [25, 50, 75])
    return Latency(float(median), float(q1), float(q3), threads, repeats)




def compare_latency(jobs: dict[Hashable, tuple], *, rounds: int = 5, repeats: int = 5, warmup: int = 2,
                    threads: int = 1) -> dict[Hashable, Latency]:
    """Time several models side by side: ``jobs`` maps a name to ``(model, args)`` or ``(model, args, kwargs)``.

    Each of ``rounds`` rounds runs :func:`cpu_latency` (``repeats`` calls) on every model, starting each round
    at a different model. Returns name -> :class:`Latency` whose median is the median of the round medians and
    whose quartiles are those of the round medians (the spread from round to round).
    """
    check_positive_int("rounds", rounds)
    names, found = list(jobs), {name: [] for name in jobs}
    for r in range(rounds):
        shift = r * len(names) // rounds  # each round starts at a different place in the list
        for name in names[shift:] + names[:shift]:
            model, args, *kwargs = jobs[name]
            found[name].append(cpu_latency(model, *args, repeats=repeats, warmup=warmup, threads=threads,
                                           **(kwargs[0] if kwargs else {})).median_ms)
    result = {}
    for name, medians in found.items():
        q1, median, q3 = np.percentile(medians, [25, 50, 75])
        result[name] = Latency(float(median), float(q1), float(q3), threads, rounds * repeats)
    return result
