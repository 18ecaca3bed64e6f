"""What every explanation method shares: how a model's output becomes the one number being explained, and
the checks on its inputs.

Convention of the whole package: an attribution explains the model's **logit** for a ``target`` class
(attributions then add up to logit differences, which is what completeness and Shapley efficiency speak
about); pass ``probabilities=True`` to explain the softmax probability instead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

__all__ = ["as_numpy", "check_budget", "check_same_shape", "scalar_output", "select_target"]


def as_numpy(value: Any) -> np.ndarray:
    """``value`` (tensor, array, list) as a float64 NumPy array (tensors are detached and moved to the CPU)."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        if value.dtype == torch.bfloat16:
            value = value.float()
        value = value.numpy()
    return np.asarray(value, dtype=np.float64)


def check_budget(name: str, value: Any, minimum: int = 1) -> int:
    """Return ``value`` if it is an int ``>= minimum`` (a number of steps, samples or permutations)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def check_same_shape(x: Any, reference: Any, x_name: str = "inputs", reference_name: str = "baselines") -> None:
    """Raise ``ValueError`` when ``x`` and ``reference`` do not have the same shape."""
    if tuple(np.shape(x)) != tuple(np.shape(reference)):
        raise ValueError(f"{x_name} {tuple(np.shape(x))} and {reference_name} {tuple(np.shape(reference))} must "
                         "have the same shape")


def select_target(outputs: torch.Tensor | np.ndarray, target: int | Any | None, probabilities: bool = False):
    """The explained number per row: ``outputs`` ``(N,)`` as they are, or column ``target`` of ``(N, C)``.

    ``target`` is an int (the same class for every row) or a sequence/tensor of ``N`` ints; ``None`` is only
    allowed for ``(N,)`` outputs. With ``probabilities`` the ``(N, C)`` outputs go through a softmax first.
    Works on tensors (differentiably) and on arrays. Raises ``ValueError`` for NaN/inf outputs and for a
    target out of range.
    """
    is_tensor = isinstance(outputs, torch.Tensor)
    values = outputs if is_tensor else np.asarray(outputs, dtype=np.float64)
    finite = bool(torch.isfinite(values).all()) if is_tensor else bool(np.isfinite(values).all())
    if not finite:
        raise ValueError("the model returned NaN or inf; attributions of a non-finite output are undefined")
    if values.ndim == 1:
        if target not in (None, 0):
            raise ValueError(f"the model returns one number per row (shape {tuple(values.shape)}); target must be "
                             f"None, got {target!r}")
        return values
    if values.ndim != 2:
        raise ValueError(f"the model must return (N,) or (N, C) outputs, got shape {tuple(values.shape)}")
    n, classes = values.shape
    if target is None:
        raise ValueError(f"the model returns {classes} outputs per row; pass target= (an int in [0, {classes}))")
    if probabilities:
        values = values.softmax(-1) if is_tensor else _softmax(values)
    index = np.asarray(target.detach().cpu() if isinstance(target, torch.Tensor) else target)
    if index.dtype.kind not in "iu" or index.ndim > 1 or (index.ndim == 1 and len(index) != n):
        raise ValueError(f"target must be an int or {n} ints, got {target!r}")
    if (index < 0).any() or (index >= classes).any():
        raise ValueError(f"target must lie in [0, {classes}), got {index.tolist()}")
    rows = np.arange(n)
    index = np.broadcast_to(index, (n,)).copy()  # writable, as torch.as_tensor wants
    if is_tensor:
        return values[torch.as_tensor(rows, device=values.device), torch.as_tensor(index, device=values.device)]
    return values[rows, index]


def scalar_output(f: Callable, target: int | None = None, probabilities: bool = False) -> Callable:
    """Wrap a model or function ``f(X (N, ...)) -> (N,) | (N, C)`` into ``g(X) -> (N,)`` float64 NumPy values
    of the explained output (see :func:`select_target`); ``X`` is handed to ``f`` as it comes."""
    def explained(batch):
        with torch.no_grad():
            return as_numpy(select_target(f(batch), target, probabilities))

    return explained


def _softmax(values: np.ndarray) -> np.ndarray:
    shifted = values - values.max(-1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(-1, keepdims=True)
