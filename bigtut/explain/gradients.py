"""Cheap token attributions from one gradient: gradient × input and the gradient norm (saliency), the
yardsticks every expensive method should beat.

Shape legend:  B batch   L positions   d d_model   C classes   V vocabulary

Both explain the **logit** of ``target`` (``probabilities=True``: its softmax probability) through the
classifier contract: ``model(attention_mask=..., inputs_embeds=...)`` -> ``(B, C)`` and
``model.get_input_embeddings()``; or a language model's logit of token ``target`` at ``position`` (default:
the last real token). Call ``model.eval()`` first; nothing here changes the mode.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from bigtut.explain.arguments import (
    check_flag,
    check_target_rows,
    check_token_batch,
    input_embeddings,
    resolve_batch_size,
)
from bigtut.explain.common import (
    Attribution,
    as_numpy,
    explained_logits,
    last_real_positions,
    logits_of,
    resolve_positions,
    select_target,
)

__all__ = ["gradient_norm", "gradient_x_input"]


def _embedding_gradient(model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
                        target: Any, probabilities: bool, position: Any, batch_size: int | None
                        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Token embeddings ``x`` ``(B, L, d)``, the gradient ``∂F/∂x`` ``(B, L, d)`` of the explained output, and
    the real positions ``(B, L)`` as a 0/1 float mask."""
    embedding = input_embeddings(model)
    input_ids, real = check_token_batch(input_ids, attention_mask, embedding.num_embeddings)  # (B, L), (B, L)
    B = len(input_ids)
    target = check_target_rows(target, B)
    probabilities = check_flag("probabilities", probabilities)
    positions = last_real_positions(real) if position is None else resolve_positions(position, real)  # (B,)
    chunk = resolve_batch_size(batch_size)
    with torch.no_grad():
        x = embedding(input_ids)  # (B, L, d)
    grads = []
    for start in range(0, B, chunk):
        rows = slice(start, start + chunk)
        leaf = x[rows].detach().requires_grad_(True)  # a leaf: the gradient stops here, parameters untouched
        mask = None if attention_mask is None else attention_mask[rows]
        with torch.enable_grad():
            logits = logits_of(model(attention_mask=mask, inputs_embeds=leaf), len(leaf))  # (N, C) or (N, L, V)
            logits = explained_logits(logits, positions[rows], position is not None)  # (N, C) or (N, V)
            row_target = target if target is None or isinstance(target, (int, np.integer)) else target[rows]
            explained = select_target(logits, row_target, probabilities)  # (N,)
            (grad,) = torch.autograd.grad(explained.sum(), leaf)  # (N, L, d): rows are independent in eval mode
        grads.append(grad)
    return x, torch.cat(grads), real.to(x.dtype)


def gradient_x_input(model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, *,
                     target: int | Sequence[int] | torch.Tensor | None = None, batch_size: int | None = None,
                     probabilities: bool = False, position: Any = None) -> Attribution:
    """Gradient × input per token: ``Σ_d x_td · ∂F/∂x_td``, with ``x_t`` the token embedding.

    It is the first-order Taylor term of removing the embedding (moving it to zero), and equals Integrated
    Gradients with a zero baseline when ``F`` is linear in the embeddings. One backward pass per
    ``batch_size`` rows. Returns :class:`Attribution` ``(attributions (B, L),)``, 0 at padding.
    """
    x, grad, real = _embedding_gradient(model, input_ids, attention_mask, target, probabilities, position, batch_size)
    return Attribution(as_numpy((x * grad).sum(-1) * real))  # (B, L)


def gradient_norm(model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, *,
                  target: int | Sequence[int] | torch.Tensor | None = None, batch_size: int | None = None,
                  probabilities: bool = False, position: Any = None) -> Attribution:
    """Saliency per token: the L2 norm ``‖∂F/∂x_t‖`` over the embedding dimension.

    Unsigned, and blind to the input itself: a model linear in the embeddings gives every token the same norm.
    Returns :class:`Attribution` ``(attributions (B, L),)``, 0 at padding.
    """
    _, grad, real = _embedding_gradient(model, input_ids, attention_mask, target, probabilities, position, batch_size)
    return Attribution(as_numpy(grad.norm(dim=-1) * real))  # (B, L)
