"""What every explanation method shares when it runs: how a model's output becomes the one number being
explained, where a token model is read, how tokens are taken out of a text, and the result of a method with no
diagnostics. The refusals of bad input they share are in :mod:`bigtut.explain.arguments`.

Shape legend:  B batch   N rows sent to the model   L positions   C classes   V vocabulary

The conventions themselves (signature, result, array type, positions) are written down once, in
:mod:`bigtut.explain`; this module is the code that keeps them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import torch

__all__ = ["DEFAULT_BATCH_SIZE", "DEFAULT_SEED", "Attribution", "as_numpy", "attributions_of", "delete_tokens",
           "explained_logits", "last_real_positions", "logits_of", "model_device", "read_at", "resolve_positions",
           "scalar_output", "select_target", "target_of_row", "to_model_input"]

DEFAULT_SEED = 0  # seed=None: every call with the same arguments gives the same answer (the course's numbers)
DEFAULT_BATCH_SIZE = 512  # batch_size=None: at most this many rows go through the model in one call


# ---------------------------------------------------------------------------------------------------- numbers
def as_numpy(value: Any, name: str = "value") -> np.ndarray:
    """``value`` (tensor, array, list) as a float64 NumPy array (tensors are detached and moved to the CPU);
    ``TypeError`` naming ``name`` when it does not hold numbers."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        if value.dtype in (torch.bfloat16, torch.float16):
            value = value.float()
        value = value.numpy()
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must hold numbers, got {type(value).__name__}") from None


def attributions_of(value: Any, name: str = "scores") -> np.ndarray:
    """The attributions of a method's result (its ``.attributions`` field), or ``value`` itself (a tensor or
    an array), as float64 NumPy: what the metrics accept, so a result goes in without conversion."""
    value = getattr(value, "attributions", value)
    if not isinstance(value, (torch.Tensor, np.ndarray, list, tuple)):
        raise TypeError(f"{name} must be a method's result, a tensor or an array, got {type(value).__name__}")
    return as_numpy(value, name)


# ---------------------------------------------------------------------------------------------------- inputs


def last_real_positions(real: torch.Tensor) -> torch.Tensor:
    """The position of each row's last real token ``(B,)`` of ``real`` ``(B, L)`` bool (padding anywhere)."""
    L = real.shape[-1]
    positions = torch.arange(L, device=real.device).expand_as(real)  # (B, L)
    return positions.masked_fill(~real, -1).max(-1).values  # (B,)


def resolve_positions(position: Any, real: torch.Tensor, name: str = "position") -> torch.Tensor:
    """Positions ``(B,)`` of ``position`` (an int or one per row) in a batch whose real tokens are ``real``.

    **The family's one rule**: a non-negative value is a position of the padded row; a negative one counts back
    from the row's last *real* token (``-1`` = the last real token, ``-2`` the one before, wherever the padding
    is). The position must be a real token of every row, else ``ValueError``.
    """
    B, L = real.shape
    if isinstance(position, torch.Tensor):
        p = position.detach().to(real.device)
    elif isinstance(position, (bool, np.bool_)):
        raise TypeError(f"{name} must be an int or {B} ints, got {position!r}")
    else:
        try:
            p = torch.as_tensor(np.asarray(position), device=real.device)
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(f"{name} must be an int or {B} ints, got {position!r}") from None
    if p.dtype not in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8) or p.dim() > 1 \
            or p.numel() not in (1, B):
        raise TypeError(f"{name} must be an int or {B} ints (one per row), got {position!r}")
    p = p.long().reshape(-1).expand(B)  # (B,)
    n_real = real.sum(-1)  # (B,)
    rank_among_real = real.long().cumsum(-1) - 1  # (B, L): 0 for the first real token, 1 for the next...
    wanted = (n_real + p).clamp_min(0)  # (B,): for negative p, which real token
    from_end = (real & (rank_among_real == wanted[:, None])).long().argmax(-1)  # (B,)
    positions = torch.where(p < 0, from_end, p)  # (B,)
    rows = torch.arange(B, device=real.device)
    ok = (p < L) & (n_real + p >= 0) & real[rows, positions.clamp(0, L - 1)]
    if not bool(ok.all()):
        raise ValueError(f"{name} must point at a real token (attention_mask 1) of every row: a position in "
                         f"[0, {L}) or a negative count back from the last real token; got {position!r} for rows "
                         f"with {n_real.tolist()} real tokens")
    return positions


def delete_tokens(input_ids: torch.Tensor, present: torch.Tensor, fill: int
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Delete the tokens not ``present`` and move the rest left, keeping their order.

    ``input_ids``, ``present`` ``(N, L)``. Returns ``(ids (N, L), attention_mask (N, L) bool, new_position
    (N, L))``: the shorter texts padded on the right with ``fill``, and where each old position went
    (``new_position[n, i]`` = number of present tokens up to ``i``, minus 1).
    """
    order = torch.argsort((~present).to(torch.int8), dim=1, stable=True)  # (N, L): present tokens first
    ids, mask = input_ids.gather(1, order), present.gather(1, order)  # (N, L), (N, L)
    ids = ids.masked_fill(~mask, fill)  # (N, L): never attended
    return ids, mask, present.long().cumsum(1) - 1  # (N, L)


# ---------------------------------------------------------------------------------------------------- outputs
def model_device(model: Any) -> torch.device:
    """Where the model's parameters live (the CPU for a function or a parameter-less module)."""
    try:
        return next(model.parameters()).device
    except (AttributeError, StopIteration, TypeError):
        return torch.device("cpu")


def logits_of(output: Any, n_rows: int | None = None) -> torch.Tensor:
    """The logits in a model's output: the output itself, its ``.logits`` (GPT's ``GPTOutput``) or the first
    element of a tuple; checked to be a tensor with ``n_rows`` rows when given."""
    logits = getattr(output, "logits", None)
    if logits is None:
        logits = output[0] if isinstance(output, (tuple, list)) and len(output) > 0 else output
    if not isinstance(logits, torch.Tensor):
        raise TypeError(f"the model must return a logits tensor (or a tuple starting with one), got "
                        f"{type(logits).__name__}")
    if n_rows is not None and (logits.dim() == 0 or logits.shape[0] != n_rows):
        raise ValueError(f"the model returned shape {tuple(logits.shape)} for {n_rows} rows; it must return one "
                         "row of outputs per input row")
    return logits


def read_at(logits: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """A language model's logits ``(N, V)`` at one position per row: ``logits`` ``(N, L, V)``,
    ``positions`` ``(N,)``."""
    rows = torch.arange(len(logits), device=logits.device)
    return logits[rows, positions.to(logits.device)]  # (N, V)


def explained_logits(logits: torch.Tensor, positions: torch.Tensor, position_given: bool) -> torch.Tensor:
    """The logits a token method explains: a classifier's ``(N, C)`` as they are, a language model's
    ``(N, L, V)`` read at ``positions`` ``(N,)`` -> ``(N, V)``. The one place that tells the two apart by the
    output's shape; a ``position`` passed for a classifier (``position_given``) is refused."""
    if logits.dim() == 3:
        return read_at(logits, positions)  # (N, V)
    if position_given:
        raise ValueError(f"position= only applies to language models returning (B, L, V) logits; this model "
                         f"returns {tuple(logits.shape)}")
    return logits


def select_target(outputs: torch.Tensor | np.ndarray, target: Any, probabilities: bool = False):
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
        if target is not None:
            raise ValueError(f"the model returns one number per row (shape {tuple(values.shape)}); target must be "
                             f"None, got {target!r}")
        if probabilities:
            raise ValueError("probabilities=True needs (N, C) class logits to soften; this model returns one number "
                             "per row")
        return values
    if values.ndim != 2:
        raise ValueError(f"the model must return (N,) or (N, C) outputs here, got shape {tuple(values.shape)}")
    n, classes = values.shape
    if target is None:
        raise ValueError(f"the model returns {classes} outputs per row; pass target= (an int in [0, {classes}))")
    if isinstance(target, (bool, np.bool_)):
        raise TypeError(f"target must be an int or {n} ints, got {target!r}")
    index = np.asarray(target.detach().cpu() if isinstance(target, torch.Tensor) else target)
    if index.dtype.kind not in "iu" or index.ndim > 1 or (index.ndim == 1 and len(index) != n):
        raise ValueError(f"target must be an int or {n} ints (one per row), got {target!r}")
    if (index < 0).any() or (index >= classes).any():
        raise ValueError(f"target must lie in [0, {classes}), got {index.tolist()}")
    if probabilities:
        values = values.softmax(-1) if is_tensor else _softmax(values)
    rows = np.arange(n)
    index = np.broadcast_to(index, (n,)).copy()  # writable, as torch.as_tensor wants
    if is_tensor:
        return values[torch.as_tensor(rows, device=values.device), torch.as_tensor(index, device=values.device)]
    return values[rows, index]


def scalar_output(f: Callable, target: Any = None, probabilities: bool = False) -> Callable:
    """Wrap a model or function ``f(X (N, ...)) -> (N,) | (N, C)`` into ``g(X) -> (N,)`` float64 NumPy values
    of the explained output (see :func:`select_target`); ``X`` is handed to ``f`` as it comes, and ``f`` must
    return one row per row of ``X``."""
    if not callable(f):
        raise TypeError(f"the model must be callable (a module or a function), got {type(f).__name__}")

    def explained(batch):
        with torch.no_grad():
            out = f(batch)
        if not isinstance(out, (torch.Tensor, np.ndarray)):
            wrapped = isinstance(out, tuple) or hasattr(out, "logits")
            out = logits_of(out) if wrapped else as_numpy(out, "the model's output")
        if isinstance(out, np.ndarray) and out.dtype.kind not in "fiub":
            raise TypeError(f"the model must return numbers, got an array of dtype {out.dtype}")
        if out.ndim == 0 or out.shape[0] != len(batch):
            raise ValueError(f"the model returned shape {tuple(out.shape)} for {len(batch)} rows; it must return "
                             "(N,) or (N, C), one row per input row")
        return as_numpy(select_target(out, target, probabilities))

    return explained


def target_of_row(target: Any, b: int) -> Any:
    """Row ``b``'s target (after :func:`check_target_rows`): ``target`` itself for None or an int, else its
    ``b``-th entry as an int."""
    if target is None or isinstance(target, (int, np.integer)):
        return target
    value = target[b]
    return int(value.item() if isinstance(value, (torch.Tensor, np.ndarray)) else value)


def to_model_input(f: Any, inputs: Any) -> Callable[[np.ndarray], Any]:
    """How a float64 NumPy batch of perturbed inputs (LIME's samples, SHAP's coalition rows) goes to ``f``: as
    a tensor of the inputs' dtype on their device for tensor inputs; as a tensor on the module's device, in its
    parameters' dtype, for NumPy inputs and a ``torch.nn.Module`` (a module cannot take NumPy); as float64 NumPy
    for NumPy inputs and a plain function (scikit-learn's ``decision_function``, say)."""
    if isinstance(inputs, torch.Tensor):
        dtype, device = inputs.dtype, inputs.device
    elif isinstance(f, torch.nn.Module):
        floating = [p.dtype for p in f.parameters() if p.is_floating_point()]
        dtype, device = (floating[0] if floating else torch.get_default_dtype()), model_device(f)
    else:
        return lambda rows: rows
    return lambda rows: torch.as_tensor(rows, dtype=dtype, device=device)


def _softmax(values: np.ndarray) -> np.ndarray:
    shifted = values - values.max(-1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(-1, keepdims=True)


class Attribution(NamedTuple):
    """The result of a method with no diagnostics of its own (gradients, attention): ``attributions`` ``(B, L)``
    float64 NumPy, 0 at padding."""

    attributions: np.ndarray
