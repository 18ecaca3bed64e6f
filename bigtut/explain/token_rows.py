"""Many perturbed copies of a text through a model, the fast way: :func:`evaluate_token_rows`.

Token LIME and token SHAP send hundreds or thousands of perturbed copies of a text through the model, and that
is where all their time goes. Three things make it faster without changing a single answer:

1. identical rows (the same ids, the same attended positions, read at the same place) run once;
2. the rows are sorted by length (their last attended position + 1) and grouped by length
   (:func:`length_groups`); each model call takes at most ``batch_size`` rows of one group, cut to its longest
   row, so a text with deleted tokens makes a *shorter* batch instead of a padded one;
3. ``torch.inference_mode``: no autograd bookkeeping at all.

Cutting relies on the classifier contract: a model ignores the positions it does not attend (attention mask 0),
so the padding columns cut off the right end of a chunk change nothing (up to floating-point summation order).

Shape legend:  N rows   L positions   C classes   V vocabulary   U distinct rows
"""

from __future__ import annotations

from typing import Any

import torch

from bigtut.explain.common import explained_logits, logits_of

__all__ = ["MIN_GROUP_ROWS", "evaluate_token_rows", "length_groups", "row_lengths"]

MIN_GROUP_ROWS = 32  # a length with fewer rows shares its model calls with the next length (see length_groups)


def row_lengths(attended: torch.Tensor) -> torch.Tensor:
    """``(N,)`` the last attended position of each row ``attended`` ``(N, L)`` plus one (0 for a row with none):
    the columns a right-padded row needs."""
    columns = torch.arange(1, attended.shape[1] + 1, device=attended.device)  # (L,)
    return (attended.long() * columns).amax(1)  # (N,)


def length_groups(lengths: torch.Tensor) -> list[torch.Tensor]:
    """The indices of the rows of ``lengths`` ``(N,)`` grouped by length, shortest first, for separate model calls
    cut to their longest row: the rows of one length form a group, a length with fewer than
    :data:`MIN_GROUP_ROWS` rows joins the next (a tiny call costs more per row than a little padding), and a
    group's longest row is at most 9/8 of its shortest, so at most 1/9 of a group's tokens are padding (chunks of a
    fixed number of sorted rows can spend up to half)."""
    distinct, counts = torch.unique(lengths, return_counts=True)  # (D,) sorted, (D,)
    group_of, group, first, rows = [], -1, 0, 0  # each length's group; the current group's shortest length, rows
    for length, n in zip(distinct.tolist(), counts.tolist()):
        if group < 0 or rows >= MIN_GROUP_ROWS or 8 * length > 9 * first:
            group, first, rows = group + 1, length, 0
        group_of.append(group)
        rows += n
    row_group = torch.as_tensor(group_of, device=lengths.device)[torch.searchsorted(distinct, lengths)]  # (N,)
    order = torch.argsort(row_group, stable=True)  # (N,)
    return list(torch.split(order, torch.bincount(row_group).tolist()))


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
    groups = length_groups(lengths)  # rows of about the same length, shortest first
    order = torch.cat(groups)  # (U,)
    chunks = []
    with torch.inference_mode():
        for rows in (group[start:start + batch_size] for group in groups for start in range(0, len(group), batch_size)):
            width = max(int(lengths[rows].max()), 1)  # the longest row of this call
            output = model(distinct_ids[rows, :width], attention_mask=distinct_attended[rows, :width].long())
            chunks.append(explained_logits(logits_of(output, len(rows)), distinct_read[rows], position_given))
    by_length = torch.cat(chunks)  # (U, C) in the order of ``order``
    in_distinct_order = torch.empty_like(by_length)
    in_distinct_order[order.to(by_length.device)] = by_length  # (U, C)
    return in_distinct_order[inverse.to(by_length.device)]  # (N, C)
