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
from bigtut.explain.token_rows import evaluate_token_rows

__all__ = ["lime_text", "token_neighbourhood"]

VALUES_PER_CALL = 2**24  # samples x max(L, outputs) per model pass over a group of texts: bounds the memory


def token_neighbourhood(n_tokens: int, n_samples: int, seed: int, *, lime_compatible: bool = False) -> np.ndarray:
    """LIME's on/off matrix ``Z`` ``(N, n)`` for a text of ``n`` interpretable tokens, 1 = kept: row 0 keeps all;
    each other row takes out ``k`` tokens, ``k`` uniform in 1..n−1 (1..n with ``lime_compatible``), then which
    ones uniformly — the draws of ``np.random.RandomState(seed)`` in lime's order (``randint`` for all ``k``,
    then one ``choice`` per sample)."""
    rng = np.random.RandomState(seed)
    sizes = rng.randint(1, n_tokens + 1 if lime_compatible else n_tokens, n_samples - 1)  # (N - 1,) how many out
    taken_out = [rng.choice(n_tokens, size, replace=False) for size in sizes]  # the only loop: one draw a sample
    Z = np.ones((n_samples, n_tokens))  # (N, n)
    Z[np.repeat(np.arange(1, n_samples), sizes), np.concatenate(taken_out)] = 0
    return Z


def lime_text(model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, *,
              target: Target = None, absent: str = "pad", mask_id: int | None = None, pad_id: int | None = None,
              keep_ids: Sequence[int] = (), n_samples: int = 1000,
              kernel_width: float = 25.0, seed: int | None = None, batch_size: int | None = None,
              probabilities: bool = False, position: int | Sequence[int] | torch.Tensor | None = None,
              alpha: float = 1.0, lime_compatible: bool = False) -> LimeExplanation:
    """LIME for a batch of token sequences, taking tokens out by id (the text is never re-tokenised), each row
    explained on its own neighbourhood.

    The interpretable features of a row are its real positions whose id is not in ``keep_ids`` (e.g. [CLS],
    [SEP]). Each sample takes out ``k`` of those ``n`` tokens, ``k`` uniform in 1..n−1, then which ones
    uniformly (:func:`token_neighbourhood`); row 0 is the full text. What a token taken out becomes is
    ``absent``, the family's word: ``"pad"`` sets the mask to 0 (the token becomes invisible, the others keep
    their positions); ``"delete"`` removes it and moves the rest left
    (:func:`~bigtut.explain.common.delete_tokens`; the freed slots hold ``pad_id``, by default
    ``model.config.pad_id``, else 0); ``"mask"`` replaces it by ``mask_id`` ([MASK]). Distance: cosine distance
    between the on/off vector and all-ones, times 100 (lime_text's scale for ``kernel_width=25``).

    All samples of all rows go through the model together
    (:func:`~bigtut.explain.token_rows.evaluate_token_rows`: identical samples run once, short samples are
    batched together, so a deletion shortens the batch); the answer is that of running every sample alone, up
    to floating-point rounding.

    ``lime_compatible``: lime's ``LimeTextExplainer`` draws ``k`` in 1..n, so about one sample in n takes out
    every token. By default one token always stays, because a text with nothing left to read is no evidence about
    the model (and a row with no attended token is undefined for a transformer). With ``lime_compatible=True``
    ``k`` is drawn in 1..n as lime does, so with the same seed and samples the neighbourhood is lime's
    (``bow=False``, one feature per position) and so is the answer; refused (``ValueError``) where such an
    all-out sample would show the model nothing: ``absent`` "pad" or "delete" on a row with no real token
    outside the features (no ``keep_ids`` token in it).

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
    lime_compatible = check_flag("lime_compatible", lime_compatible)
    target = check_target_rows(target, B)
    device = model_device(model)
    input_ids, real = input_ids.to(device), real.to(device)
    positions = last_real_positions(real) if position is None else resolve_positions(position, real)  # (B,)

    with torch.no_grad():  # one probe row tells a classifier from a language model
        probe = logits_of(model(input_ids[:1], attention_mask=real[:1].long()), 1)  # (1, C) or (1, L, V)
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
        if lime_compatible and absent != "mask" and len(p) == int(real[b].sum()):
            raise ValueError(f"lime_compatible=True draws samples with every feature taken out (as lime does); "
                             f"with absent={absent!r} such a sample of input_ids row {b} leaves the model no token "
                             "to see: keep some (keep_ids=, e.g. [CLS] and [SEP]), use absent='mask', or "
                             "lime_compatible=False")

    Zs = [token_neighbourhood(len(p), n_samples, seed, lime_compatible=lime_compatible) for p in players]  # (N, n)
    explained = target  # None or an int: the same for every sample
    if not (target is None or isinstance(target, (int, np.integer))):
        explained = np.repeat([target_of_row(target, b) for b in range(B)], n_samples)  # (B·N,)
    texts_per_call = max(1, VALUES_PER_CALL // (n_samples * max(L, probe.shape[-1])))  # bounds the memory used
    values = []
    for start in range(0, B, texts_per_call):
        texts = slice(start, start + texts_per_call)
        ids, seen, read = _lime_samples(input_ids[texts], real[texts], positions[texts], players[texts], Zs[texts],
                                        absent, mask_id, fill)  # (n, L), (n, L), (n,): n = texts x N samples
        out = evaluate_token_rows(model, ids, seen, batch_size=chunk,
                                  read=read if language_model else None)  # (n, C) or (n, V)
        samples = slice(start * n_samples, start * n_samples + len(ids))
        part_target = explained[samples] if isinstance(explained, np.ndarray) else explained
        values.append(as_numpy(select_target(out, part_target, probabilities)))  # (n,)
    values = np.concatenate(values).reshape(B, n_samples)  # (B, N)

    attributions, rows = np.zeros((B, L)), []
    for b, (p, Z) in enumerate(zip(players, Zs, strict=True)):
        rows.append(explain_neighbourhood(values[b], Z, 100 * cosine_to_ones(Z), kernel_width, alpha))
        attributions[b, p] = rows[-1][0]
    return LimeExplanation(attributions, *diagnostics(rows), n_samples=n_samples)


def _lime_samples(input_ids: torch.Tensor, real: torch.Tensor, positions: torch.Tensor, players: list,
                  Zs: list, absent: str, mask_id: int | None, fill: int
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every sample of every row as model input: ``(ids (B·N, L), seen (B·N, L) bool, read (B·N,))``, row
    ``b``'s ``N`` samples together, ``Zs[b]`` ``(N, n)`` saying which of its ``players[b]`` stay; ``read`` is
    where a language model's logits are read (wherever "delete" moved that token)."""
    (B, L), N, device = input_ids.shape, len(Zs[0]), input_ids.device
    kept = real[:, None, :].repeat(1, N, 1)  # (B, N, L)
    for b, (p, Z) in enumerate(zip(players, Zs, strict=True)):  # one loop over the rows, none over samples
        kept[b][:, torch.as_tensor(p, device=device)] = torch.as_tensor(Z == 1, device=device)
    kept = kept.reshape(B * N, L)  # (B·N, L)
    ids = input_ids.repeat_interleave(N, dim=0)  # (B·N, L)
    read = positions.repeat_interleave(N)  # (B·N,)
    if absent == "delete":
        ids, kept, new_position = delete_tokens(ids, kept, fill)  # (B·N, L) each
        read = new_position[torch.arange(B * N, device=device), read]  # (B·N,) where the read token went
    elif absent == "mask":
        all_real = real.repeat_interleave(N, dim=0)  # (B·N, L)
        ids = ids.masked_fill(all_real & ~kept, mask_id)  # taken out = [MASK], still attended
        kept = all_real
    return ids, kept, read
