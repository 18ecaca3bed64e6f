"""LIME for a text, token by token: :func:`lime_text`. The neighbourhood takes tokens out of the text by id
(it is never re-tokenised); steps 3 and 4 are those of :mod:`bigtut.explain.lime`.

Shape legend:  B batch   N samples   L positions   n interpretable tokens of a row   V vocabulary
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from bigtut.explain.arguments import (
    check_budget,
    check_flag,
    check_keep_ids,
    check_target_rows,
    check_token_batch,
    check_token_id,
    resolve_batch_size,
    resolve_pad_id,
    resolve_seed,
    vocab_size_of,
)
from bigtut.explain.common import (
    as_numpy,
    delete_tokens,
    explained_logits,
    last_real_positions,
    logits_of,
    model_device,
    resolve_positions,
    select_target,
    target_of_row,
)
from bigtut.explain.lime import (
    LimeExplanation,
    Target,
    check_kernel_and_alpha,
    cosine_to_ones,
    diagnostics,
    explain_neighbourhood,
)

__all__ = ["lime_text"]


def lime_text(model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, *,
              target: Target = None, absent: str = "pad", mask_id: int | None = None, pad_id: int | None = None,
              keep_ids: Sequence[int] = (), n_samples: int = 1000,
              kernel_width: float = 25.0, seed: int | None = None, batch_size: int | None = None,
              probabilities: bool = False, position: int | Sequence[int] | torch.Tensor | None = None,
              alpha: float = 1.0) -> LimeExplanation:
    """LIME for a batch of token sequences, taking tokens out by id (the text is never re-tokenised), each row
    explained on its own neighbourhood.

    The interpretable features of a row are its real positions whose id is not in ``keep_ids`` (e.g. [CLS],
    [SEP]). Each sample takes out ``k`` of those ``n`` tokens, ``k`` uniform in 1..n−1, then which ones
    uniformly (as lime_text, which also allows taking out all n: here one token always stays, so no input is
    empty). Row 0 is the full text. What a token taken out becomes is ``absent``, the family's word:
    ``"pad"`` sets the mask to 0 (the token becomes invisible, the others keep their positions); ``"delete"``
    removes it and moves the rest left (:func:`~bigtut.explain.common.delete_tokens`; the freed slots hold
    ``pad_id``, by default ``model.config.pad_id``, else 0); ``"mask"`` replaces it by ``mask_id`` ([MASK]).
    Distance: cosine distance between the on/off vector and all-ones, times 100 (lime_text's scale for
    ``kernel_width=25``).

    Args:
        model: the classifier contract, ``model(ids (N, L), attention_mask=(N, L)) -> logits (N, C)``, in
            eval mode; or a language model returning ``(N, L, V)`` logits (or a tuple/output starting with
            them): then ``target`` is a token id and the explained logit is read at ``position`` (an int or one
            per row; negative counts back from the row's last real token; default: the last real token), which
            is never taken out (after a deletion it is read where that token went).
        input_ids, attention_mask: ``(B, L)`` integer ids; mask 1 = real token, 0 = padding (None: all real).
        target: the class (or token id) explained, an int or one per row.
    Returns:
        a :class:`LimeExplanation` with ``attributions`` ``(B, L)`` and diagnostics ``(B,)``; ``n_samples`` model
        rows per text.
    """
    vocab_size = vocab_size_of(model)
    input_ids, real = check_token_batch(input_ids, attention_mask, vocab_size)  # (B, L), (B, L) bool
    B, L = input_ids.shape
    if absent not in ("pad", "delete", "mask"):
        raise ValueError(f"absent must be 'pad' (mask the token out), 'delete' (remove it, the rest move left) or "
                         f"'mask' (replace it by mask_id), got {absent!r}")
    if absent == "mask":
        if mask_id is None:
            raise ValueError("absent='mask' replaces tokens by mask_id; pass mask_id= (e.g. the id of [MASK])")
        mask_id = check_token_id("mask_id", mask_id, vocab_size)
    fill = resolve_pad_id(model, pad_id, vocab_size)  # what a deleted slot holds (never attended)
    fill = 0 if fill is None else fill
    keep = torch.as_tensor(check_keep_ids(keep_ids), dtype=torch.long)
    n_samples = check_budget("n_samples", n_samples, 3)  # at least 2 tokens to take out, checked per row below
    kernel_width, alpha = check_kernel_and_alpha(kernel_width, alpha)
    seed, chunk = resolve_seed(seed), resolve_batch_size(batch_size)
    probabilities = check_flag("probabilities", probabilities)
    target = check_target_rows(target, B)
    device = model_device(model)
    input_ids, real = input_ids.to(device), real.to(device)
    positions = last_real_positions(real) if position is None else resolve_positions(position, real)  # (B,)

    def logits(ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return logits_of(model(ids, attention_mask=mask.long()), len(ids))  # (N, C) or (N, L, V)

    probe = logits(input_ids[:1], real[:1])  # one probe row tells a classifier from a language model
    explained_logits(probe, positions[:1], position is not None)  # refuses a position for a classifier
    language_model = probe.dim() == 3
    explainable = real & ~torch.isin(input_ids, keep.to(device))  # (B, L)
    if language_model:
        explainable[torch.arange(B, device=device), positions] = False  # the read token always stays
    players = [torch.nonzero(row)[:, 0].cpu().numpy() for row in explainable]  # B x (n,) the features
    for b, p in enumerate(players):
        if len(p) < 2:
            where = "outside keep_ids and the read position" if language_model else "outside keep_ids"
            raise ValueError(f"input_ids row {b} has {len(p)} real token(s) {where}; LIME needs at least 2 to "
                             "take out")
        check_budget("n_samples", n_samples, len(p) + 1)

    attributions, rows = np.zeros((B, L)), []
    for b, p in enumerate(players):
        n = len(p)
        rng = np.random.RandomState(seed)  # afresh per row: row b alone = row b in the batch
        Z = np.ones((n_samples, n))  # (N, n) 1 = token kept
        for i, size in enumerate(rng.randint(1, n, n_samples - 1), start=1):
            Z[i, rng.choice(n, size, replace=False)] = 0
        on = real[b].repeat(n_samples, 1)  # (N, L) what the model sees of each sample
        on[:, torch.as_tensor(p, device=device)] = torch.as_tensor(Z == 1, device=device)
        ids = input_ids[b].repeat(n_samples, 1)  # (N, L)
        read = positions[b].repeat(n_samples)  # (N,) where a language model's logits are read
        if absent == "delete":
            ids, on, new_position = delete_tokens(ids, on, fill)  # (N, L) each
            read = new_position[:, positions[b]]  # (N,) where the read token went
        elif absent == "mask":
            ids = ids.masked_fill(real[b] & ~on, mask_id)  # (N, L): taken out = [MASK], still attended
            on = real[b].repeat(n_samples, 1)  # (N, L)
        explained = target_of_row(target, b)
        values = []
        for start in range(0, n_samples, chunk):
            part = slice(start, start + chunk)
            out = explained_logits(logits(ids[part], on[part]), read[part], False)  # (n, C) or (n, V)
            values.append(as_numpy(select_target(out, explained, probabilities)))  # (n,)
        rows.append(explain_neighbourhood(np.concatenate(values), Z, 100 * cosine_to_ones(Z), kernel_width, alpha))
        attributions[b, p] = rows[-1][0]
    return LimeExplanation(attributions, *diagnostics(rows), n_samples=n_samples)
