"""Attention weights read as an explanation: one layer's raw attention and attention rollout (Abnar & Zuidema,
2020), the other cheap yardstick besides :mod:`bigtut.explain.gradients`.

Shape legend:  B batch   L positions   h heads   n layers

Attention is what the model *mixes*, not what it *uses*: attention scores cost one forward pass, but nothing
ties them to the output (see the faithfulness metrics of :mod:`bigtut.explain.metrics`). They do not depend
on the class either: ``target`` is accepted, so that every method of the family can be called the same way,
and ignored.

:func:`rollout_scores` and :func:`raw_attention_scores` are family methods (model and batch in, an
:class:`~bigtut.explain.common.Attribution` out). :func:`model_attentions` and :func:`attention_rollout` are
their building blocks on the model's internals, and speak tensors like the model does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from bigtut.explain.arguments import check_flag, check_target_rows, check_token_batch, resolve_batch_size
from bigtut.explain.common import Attribution, as_numpy, resolve_positions

__all__ = ["HEAD_REDUCTIONS", "attention_rollout", "model_attentions", "raw_attention_scores", "rollout_scores"]

HEAD_REDUCTIONS = ("mean", "max", "min")


def model_attentions(model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, *,
                     batch_size: int | None = None) -> list[torch.Tensor]:
    """The attention weights of every layer, ``n`` tensors ``(B, h, L, L)`` (first layer first), from forward
    passes ``model(input_ids, attention_mask=..., return_attention=True)`` without gradients."""
    input_ids, real = check_token_batch(input_ids, attention_mask)
    chunk, parts = resolve_batch_size(batch_size), []
    for start in range(0, len(input_ids), chunk):
        rows = slice(start, start + chunk)
        if not callable(model):
            raise TypeError(f"model must be a module returning attention weights, got {type(model).__name__}")
        try:
            with torch.no_grad():
                out = model(input_ids[rows], attention_mask=real[rows].long(), return_attention=True)
        except TypeError as error:
            raise TypeError(f"model must accept model(input_ids, attention_mask=..., return_attention=True) and "
                            f"return (logits, attentions), as the course's BERT and GPT do: {error}") from error
        attentions = getattr(out, "attentions", None)
        if attentions is None and isinstance(out, tuple) and len(out) >= 2:
            attentions = out[-1]
        if not isinstance(attentions, (list, tuple)) or not all(isinstance(a, torch.Tensor) for a in attentions):
            raise ValueError(f"model(..., return_attention=True) must return (logits, attentions), the attentions a "
                             f"list of (B, h, L, L) tensors; got {type(out).__name__}")
        parts.append([a.detach() for a in attentions])
    return [torch.cat(layer) for layer in zip(*parts)]


def _reduced_heads(attentions: Sequence[torch.Tensor], attention_mask: torch.Tensor | None,
                   head_reduction: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Check the attention list; return it head-reduced as ``(n, B, L, L)`` and the real positions ``(B, L)``."""
    if head_reduction not in HEAD_REDUCTIONS:
        raise ValueError(f"head_reduction must be one of {', '.join(HEAD_REDUCTIONS)}, got {head_reduction!r}")
    if not isinstance(attentions, (list, tuple)) or len(attentions) == 0:
        raise ValueError(f"attentions must be a non-empty list of (B, h, L, L) tensors, one per layer, got "
                         f"{type(attentions).__name__}")
    if any(a is None for a in attentions):
        raise ValueError("attentions holds None: run the model with return_attention=True (or model_attentions)")
    if not all(isinstance(a, torch.Tensor) and a.is_floating_point() for a in attentions):
        raise TypeError("attentions must be floating-point torch tensors (B, h, L, L), one per layer")
    shapes = [tuple(a.shape) for a in attentions]
    if any(len(s) != 4 or s[-1] != s[-2] for s in shapes) or len(set(shapes)) != 1:
        raise ValueError(f"every layer's attention must be (B, h, L, L) with one B, h and L for all layers, got "
                         f"{shapes}")
    stacked = torch.stack(list(attentions))  # (n, B, h, L, L)
    if stacked.shape[1] == 0 or stacked.shape[-1] == 0:
        raise ValueError(f"attentions must hold at least one row and one position, got {shapes[0]}")
    if not bool(torch.isfinite(stacked).all()) or bool((stacked < 0).any()):
        raise ValueError("attention weights must be finite and non-negative, got NaN, inf or negative values")
    _, B, _, L, _ = stacked.shape
    if attention_mask is None:
        real = torch.ones(B, L, dtype=torch.bool, device=stacked.device)
    else:
        _, real = check_token_batch(torch.zeros(B, L, dtype=torch.long), attention_mask)
    real = real.to(stacked.device)
    if head_reduction == "mean":
        return stacked.mean(2), real  # (n, B, L, L)
    return (stacked.amax(2) if head_reduction == "max" else stacked.amin(2)), real  # (n, B, L, L)


def attention_rollout(attentions: Sequence[torch.Tensor], attention_mask: torch.Tensor | None = None, *,
                      residual: bool = True, head_reduction: str = "mean") -> torch.Tensor:
    """Attention rollout: how much each position draws, through all layers, on each input.

    Per layer the heads are reduced (``"mean"``, as in the paper, or ``"max"``/``"min"``) to ``A`` ``(B, L, L)``.
    With ``residual`` the skip connection counts as half of the mixing, ``Â = 0.5·A + 0.5·I``; entries of
    padded queries or keys are set to 0 and every row is renormalised to sum to 1. The rollout is the product
    from the last layer down to the first, ``R = Â_n ⋯ Â_2 Â_1``: ``R[b, i, j]`` is the share of input ``j``
    in the last layer's output at ``i``.

    Args:
        attentions: ``n`` tensors ``(B, h, L, L)``, first layer first (see :func:`model_attentions`).
        attention_mask: ``(B, L)``, 1 at real tokens, 0 at padding (default: all real).

    Returns:
        ``(B, L, L)`` tensor, rows of real queries summing to 1, rows and columns of padded positions 0.
    """
    residual = check_flag("residual", residual)
    layers, real = _reduced_heads(attentions, attention_mask, head_reduction)  # (n, B, L, L), (B, L)
    L = layers.shape[-1]
    both_real = (real[:, :, None] & real[:, None, :]).to(layers.dtype)  # (B, L, L): real query and real key
    identity = torch.eye(L, dtype=layers.dtype, device=layers.device)  # (L, L)
    rollout = None
    for A in layers:  # A: (B, L, L), first layer first
        A_hat = (0.5 * A + 0.5 * identity if residual else A) * both_real  # (B, L, L)
        total = A_hat.sum(-1, keepdim=True)  # (B, L, 1)
        A_hat = torch.where(total > 0, A_hat / total.clamp_min(torch.finfo(A_hat.dtype).tiny), 0.0)  # rows sum to 1
        rollout = A_hat if rollout is None else A_hat @ rollout  # (B, L, L): R = Â_l R
    return rollout


def rollout_scores(model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, *,
                   target: Any = None, position: Any = 0, residual: bool = True, head_reduction: str = "mean",
                   batch_size: int | None = None) -> Attribution:
    """The rollout row of the position the model reads: ``(B, L)`` scores, each row summing to 1.

    ``position=0`` is [CLS] for BERT; a GPT classifier pools the last token: pass ``position=-1`` (negative
    values count back from each row's last real token). An int, or one per row. ``target`` is ignored
    (attention does not depend on it). Other arguments as :func:`attention_rollout`.
    """
    input_ids, real = check_token_batch(input_ids, attention_mask)
    check_target_rows(target, len(input_ids))
    positions = resolve_positions(position, real)  # (B,)
    attentions = model_attentions(model, input_ids, attention_mask, batch_size=batch_size)
    rollout = attention_rollout(attentions, attention_mask, residual=residual, head_reduction=head_reduction)
    return Attribution(as_numpy(rollout[torch.arange(len(rollout)), positions.to(rollout.device)]))  # (B, L)


def raw_attention_scores(model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                         *, target: Any = None, layer: int = -1, position: Any = 0,
                         batch_size: int | None = None) -> Attribution:
    """One layer's head-averaged attention of the read position over the keys: ``(B, L)`` scores, 0 at padding.

    ``layer`` indexes the layers (``-1``: the last); ``position`` and ``target`` as in :func:`rollout_scores`.
    """
    input_ids, real = check_token_batch(input_ids, attention_mask)
    check_target_rows(target, len(input_ids))
    positions = resolve_positions(position, real)  # (B,)
    layers, real = _reduced_heads(model_attentions(model, input_ids, attention_mask, batch_size=batch_size),
                                  attention_mask, "mean")  # (n, B, L, L), (B, L)
    n = len(layers)
    if isinstance(layer, (bool, np.bool_)) or not isinstance(layer, (int, np.integer)) or not -n <= layer < n:
        raise ValueError(f"layer must be an int in [-{n}, {n}) for {n} layers, got {layer!r}")
    A = layers[layer]  # (B, L, L)
    rows = torch.arange(A.shape[0], device=A.device)
    return Attribution(as_numpy(A[rows, positions.to(A.device)] * real))  # (B, L)
