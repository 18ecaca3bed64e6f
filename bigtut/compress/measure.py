"""What a compression buys and costs: size on disk, CPU latency, and the task metric.

* :func:`size_on_disk` — bytes of the model's safetensors file (pruning masks folded in first, so a pruned
  model is stored as the dense matrices it runs with);
* :func:`cpu_latency` — the median wall time of repeated forward calls, with the thread count stated;
  :func:`compare_latency` times several models side by side, in rounds whose order rotates, so that a
  machine's drifting load hits them all alike;
* the task metrics live in :mod:`bigtut.evaluation` (one import path): ``accuracy`` for classifiers,
  ``bits_per_character`` for the character GPT.
"""

from __future__ import annotations

import copy
import tempfile
import time
from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from bigtut.compress.prune import make_pruning_permanent
from bigtut.validation import check_model, check_positive_int

__all__ = ["Latency", "compare_latency", "cpu_latency", "parameter_bytes",
           "size_on_disk"]


def size_on_disk(model: nn.Module) -> int:
    """Bytes of ``model``'s weights written as one safetensors file (a tied matrix is stored once)."""
    from safetensors.torch import save_model

    check_model(model)
    plain = make_pruning_permanent(copy.deepcopy(model))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.safetensors"
        save_model(plain, str(path))
        return path.stat().st_size


def parameter_bytes(model: nn.Module) -> dict[str, int]:
    """Bytes of the model's tensors (parameters and buffers) by dtype, e.g. ``{"torch.float32": 81920}``."""
    check_model(model)
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

    Raises:
        ValueError: ``repeats``/``threads`` not a positive int, ``warmup`` not an int >= 0, a model off the CPU,
            or a model that fails on the inputs given (its error is chained).
        TypeError: ``model`` is not an ``nn.Module``.
    """
    check_model(model)
    check_positive_int("repeats", repeats)
    _check_warmup(warmup)
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
                if i == 0:
                    try:
                        model(*args, **kwargs)
                    except Exception as error:  # the model's own complaint, with what it was given
                        raise ValueError(f"the model fails on the inputs given ({len(args)} positional, keywords "
                                         f"{sorted(kwargs)}): {type(error).__name__}: {error}") from error
                else:
                    model(*args, **kwargs)
                if i >= warmup:
                    times.append((time.perf_counter() - start) * 1000)
    finally:
        torch.set_num_threads(before)
    q1, median, q3 = np.percentile(times, [25, 50, 75])
    return Latency(float(median), float(q1), float(q3), threads, repeats)


def _check_warmup(warmup: object) -> int:
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        raise ValueError(f"warmup must be an int >= 0 (untimed calls), got {warmup!r}")
    return warmup


def compare_latency(jobs: dict[Hashable, tuple], *, rounds: int = 5, repeats: int = 5, warmup: int = 2,
                    threads: int = 1) -> dict[Hashable, Latency]:
    """Time several models side by side: ``jobs`` maps a name to ``(model, args)`` or ``(model, args, kwargs)``.

    Each of ``rounds`` rounds runs :func:`cpu_latency` (``repeats`` calls) on every model, starting each round
    at a different model. Returns name -> :class:`Latency` whose median is the median of the round medians and
    whose quartiles are those of the round medians (the spread from round to round).

    Raises:
        ValueError: no job, a job that is not ``(model, args)`` or ``(model, args, kwargs)``, or a count out of
            range (all checked before any timing).
        TypeError: a job's model not an ``nn.Module``, its args not a tuple, its kwargs not a dict.
    """
    check_positive_int("rounds", rounds)
    check_positive_int("repeats", repeats)
    _check_warmup(warmup)
    check_positive_int("threads", threads)
    if not isinstance(jobs, Mapping):
        raise TypeError(f"jobs must be a dict name -> (model, args) or (model, args, kwargs), got "
                        f"{type(jobs).__name__}")
    if not jobs:
        raise ValueError("jobs is empty: give at least one name -> (model, args)")
    for name, job in jobs.items():
        if not isinstance(job, (tuple, list)) or len(job) not in (2, 3):
            raise ValueError(f"jobs[{name!r}] must be (model, args) or (model, args, kwargs), got a "
                             f"{type(job).__name__}" + (f" of {len(job)}" if isinstance(job, (tuple, list)) else ""))
        check_model(job[0], f"the model of jobs[{name!r}]")
        if not isinstance(job[1], (tuple, list)):
            raise TypeError(f"the args of jobs[{name!r}] must be a tuple of positional inputs, e.g. (ids,), got "
                            f"{type(job[1]).__name__}")
        if len(job) == 3 and not isinstance(job[2], Mapping):
            raise TypeError(f"the kwargs of jobs[{name!r}] must be a dict, got {type(job[2]).__name__}")
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
