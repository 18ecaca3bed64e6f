"""Many perturbed copies of a text through a model, the fast way: :func:`evaluate_token_rows`.

Token LIME and token SHAP send hundreds or thousands of perturbed copies of a text through the model, and that
is where all their time goes. Three things make it faster without changing a single answer:

1. identical rows (the same ids, the same attended positions, read at the same place) run once;
2. the rows are sorted by length (their last attended position + 1) and each chunk of ``batch_size`` rows is
   cut to its longest row, so a text with deleted tokens makes a *shorter* batch instead of a padded one;
3. ``torch.inference_mode``: no autograd bookkeeping at all.

Cutting relies on the classifier contract: a model ignores the positions it does not attend (attention mask 0),
so the padding columns cut off the right end of a chunk change nothing (up to floating-point summation order).

Shape legend:  N rows   L positions   C classes   V vocabulary   U distinct rows
"""

from __future__ import annotations

from typing import Any

import torch

from bigtut.explain.common import explained_logits, logits_of

__all__ = ["evaluate_token_rows", "row_lengths"]


def row_lengths(attended: torch.Tensor) -> torch.Tensor:
    """``(N,)`` the last attended position of each row ``attended`` ``(N, L)`` plus one (0 for a row with none):
    the columns a right-padded row needs."""
    columns = torch.arange(1, attended.shape[1] + 1, device=attended.device)  # (L,)
    return (attended.long() * columns).amax(1)  # (N,)


def evaluate_token_rows(model: Any, ids: torch.Tensor, attended: torch.Tensor, *, batch_size: int,
                        read: torch.Tensor | None = None, position_given: bool = False) -> torch.Tensor:
    """The logits a token method explains for every row: ``(N, C)`` (a classifier) or ``(N, V)`` (a language
    model, read at ``read`` ``(N,)``), in the order of the rows, identical rows run once, short rows together.

    Args:
        model: ``model(ids (n, l), attention_mask=(n, l)) -> logits (n, C)`` or ``(n, l, V)``.
        ids, attended: ``(N, L)`` token ids and the positions the model may see (bool).
        batch_size: at most this many rows per model call.
        read: ``(N,)`` where each row's language-model logits are read (an attended position); None: position 0
            (only used when the model returns ``(n, l, V)``).
        position_given: the caller passed ``position=``, which a classifier refuses.
    """
    N, L = ids.shape
    read = torch.zeros(N, dtype=torch.long, device=ids.device) if read is None else read.to(ids.device).long()
    key = torch.cat([ids.long(), attended.long(), read[:, None]], dim=1)  # (N, 2L + 1): what makes a row
    distinct, inverse = torch.unique(key, dim=0, return_inverse=True)  # (U, 2L + 1), (N,)
    distinct_ids, distinct_attended = distinct[:, :L], distinct[:, L:2 * L].bool()  # (U, L) each
    distinct_read = distinct[:, 2 * L]  # (U,)
    lengths = row_lengths(distinct_attended)  # (U,)
    order = torch.argsort(lengths, stable=True)  # (U,) shortest first
    chunks = []
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]  # (n,)
            width = max(int(lengths[rows].max()), 1)  # the longest row of this chunk
            output = model(distinct_ids[rows, :width], attention_mask=distinct_attended[rows, :width].long())
            chunks.append(explained_logits(logits_of(output, len(rows)), distinct_read[rows], position_given))
    by_length = torch.cat(chunks)  # (U, C) in the order of ``order``
    in_distinct_order = torch.empty_like(by_length)
    in_distinct_order[order.to(by_length.device)] = by_length  # (U, C)
    return in_distinct_order[inverse.to(by_length.device)]  # (N, C)
