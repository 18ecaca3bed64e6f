"""Views of a GPT's inside at one step of what it writes (chapter 11): the logit lens and attention to the prompt.

Shape legend:  B batch   L positions   V vocabulary   n layers (blocks)   h heads

* **Logit lens** (nostalgebraist, 2020). The residual stream of a pre-LN GPT is read out only at the end:
  ``logits = lm_head(ln_f(x_n))``. Applying the same read-out to the stream after the embeddings (``x_0``) and
  after every block (``x_1 .. x_n``) asks what the model would write if it stopped there. The last row is the
  model's own prediction, exactly: the same two modules on the same tensor.
* **Attention to the prompt**: the weights with which the token at ``position`` (the one predicting the next
  token) attends to every position, per layer and head — *where* each head reads, not what it uses.
* :func:`evidence_in_top_k` scores any such view (or an attribution) against known evidence: is an evidence
  position among the ``k`` highest-scored real positions?

The logit lens runs the model once with forward hooks on ``model.blocks`` (the input of the first block is the
embedding output, each block's output is the stream after it) and leaves the model file untouched; hooks are
removed even when the forward pass fails. These are views, not attribution methods: their results are
float64 NumPy like the family's, but they are not members of ``TOKEN_METHODS``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch

from bigtut.explain.arguments import check_budget, check_token_batch, resolve_batch_size
from bigtut.explain.attention_scores import model_attentions
from bigtut.explain.common import as_numpy, model_device, resolve_positions
from bigtut.explain.metrics import top_k_sets
from bigtut.gpt import GPT

__all__ = ["LogitLens", "attention_to_positions", "evidence_in_top_k", "logit_lens"]


class LogitLens(NamedTuple):
    """What :func:`logit_lens` returns."""

    log_probs: np.ndarray  # (B, n + 1, V) float64: log-softmax of the read-out after the embeddings and each block
    layers: tuple[str, ...]  # n + 1 names: "embeddings", "block 0", ..., "block n-1"
    positions: np.ndarray  # (B,) int64: the position read in each row


def _check_gpt(model: Any, input_ids: Any, attention_mask: Any, position: Any
               ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The checked ``(input_ids, real (B, L) bool, positions (B,))`` of a call on a course GPT."""
    if not isinstance(model, GPT):
        raise TypeError(f"model must be a bigtut.GPT (the logit lens reads its blocks, ln_f and lm_head), got "
                        f"{type(model).__name__}; for a GPTClassifier pass its .gpt")
    input_ids, real = check_token_batch(input_ids, attention_mask, model.config.vocab_size)
    if input_ids.shape[1] > model.config.block_size:
        raise ValueError(f"input_ids has {input_ids.shape[1]} positions, more than the model's block_size="
                         f"{model.config.block_size}; crop the prompt to its last {model.config.block_size} tokens")
    positions = resolve_positions(-1 if position is None else position, real)  # (B,)
    return input_ids, real, positions


def logit_lens(model: GPT, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, *,
               position: Any = None, batch_size: int | None = None) -> LogitLens:
    """What each layer's residual stream predicts at ``position``: ``log_softmax(lm_head(ln_f(x_l)))``.

    Args:
        model: a :class:`bigtut.GPT` (call ``.eval()`` first).
        input_ids: ``(B, L)`` token ids; ``attention_mask`` ``(B, L)`` 1 at real tokens (None: all real).
        position: an int or one per row, the family's rule (negative counts back from the last real token);
            None = ``-1``, the last real token — the one predicting the next token.
        batch_size: rows per forward pass (None: the family's default).

    Returns:
        :class:`LogitLens`: ``log_probs`` ``(B, n_layers + 1, V)`` float64 — row 0 after the embeddings, row
        ``l`` after block ``l - 1``; the last row equals ``log_softmax(model(input_ids).logits)`` at
        ``position`` (computed in the model's dtype, then converted).
    """
    input_ids, real, positions = _check_gpt(model, input_ids, attention_mask, position)
    chunk, device, parts = resolve_batch_size(batch_size), model_device(model), []
    streams: list[torch.Tensor] = []  # (b, L, d) each: the embeddings, then every block's output
    handles = [model.blocks[0].register_forward_pre_hook(lambda _m, args: streams.append(args[0]))]
    handles += [block.register_forward_hook(lambda _m, _args, out: streams.append(out[0])) for block in model.blocks]
    try:
        for start in range(0, len(input_ids), chunk):
            rows = slice(start, start + chunk)
            streams.clear()
            with torch.no_grad():
                model(input_ids[rows].to(device), attention_mask=real[rows].to(device))
                at = positions[rows].to(device)  # (b,)
                picked = torch.stack([x[torch.arange(len(x), device=device), at] for x in streams], 1)  # (b, n+1, d)
                parts.append(torch.log_softmax(model.lm_head(model.ln_f(picked)), -1))  # (b, n + 1, V)
    finally:
        for handle in handles:
            handle.remove()
    names = ("embeddings", *(f"block {i}" for i in range(len(model.blocks))))
    return LogitLens(as_numpy(torch.cat(parts)), names, positions.cpu().numpy().astype(np.int64))


def attention_to_positions(model: GPT, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, *,
                           position: Any = None, batch_size: int | None = None) -> np.ndarray:
    """The attention weights from ``position`` to every position, per layer and head: ``(B, n, h, L)`` float64.

    Read from ``model(..., return_attention=True)`` (:func:`~bigtut.explain.model_attentions`). ``position`` as
    in :func:`logit_lens` (default: the last real token). Each ``[b, l, head]`` row sums to 1 over the real
    positions up to ``position``; later and padded positions get 0 (the causal and padding masks).
    """
    input_ids, real, positions = _check_gpt(model, input_ids, attention_mask, position)
    device = model_device(model)
    layers = model_attentions(model, input_ids.to(device), real.to(device), batch_size=batch_size)  # n × (B,h,L,L)
    stacked = torch.stack(layers, 1)  # (B, n, h, L, L)
    rows = torch.arange(len(input_ids), device=stacked.device)
    return as_numpy(stacked[rows, :, :, positions.to(stacked.device)])  # (B, n, h, L): query row `position`


def evidence_in_top_k(scores: Any, evidence: Any, *, k: int = 1, mask: Any = None) -> np.ndarray:
    """1.0 where an evidence position is among the ``k`` highest-scored real positions, else 0.0.

    Args:
        scores: ``(B, ..., L)`` — an attribution ``(B, L)`` (a method's result is read through
            ``.attributions``), attention per head ``(B, h, L)`` or per layer and head ``(B, n, h, L)``.
        evidence: ``(B, L)`` 0/1 or bool, shared by every leading index of a row.
        k: how many top positions count (ties: the earlier position first, as the metrics rank).
        mask: ``(B, L)`` real positions (1/True); None = all. Padded positions are never in the top ``k``.

    Returns:
        ``(B, ...)`` float64 of 0/1, one per row (and head): average over rows for top-k accuracy, or
        bootstrap over them for an interval.
    """
    values = as_numpy(getattr(scores, "attributions", scores), "scores")
    if values.ndim < 2:
        raise ValueError(f"scores must be (B, ..., L), got shape {values.shape}")
    if not np.isfinite(values).all():
        raise ValueError("scores must be finite, got NaN or inf")
    B, L = values.shape[0], values.shape[-1]
    planted = as_numpy(evidence, "evidence")
    if planted.shape != (B, L):
        raise ValueError(f"evidence must be (B, L) = {(B, L)} to match scores {values.shape}, got {planted.shape}")
    if not np.isin(planted, (0, 1)).all():
        raise ValueError("evidence must hold 0/1 or True/False per position (1 = evidence)")
    real = np.ones((B, L), dtype=bool) if mask is None else as_numpy(mask, "mask")
    if real.shape != (B, L) or not np.isin(real, (0, 1)).all():
        raise ValueError(f"mask must be (B, L) = {(B, L)} of 0/1, got shape {np.shape(real)}")
    k = check_budget("k", k)
    lead = values.shape[1:-1]
    flat = values.reshape(B, -1, L).transpose(1, 0, 2).reshape(-1, L)  # (rest·B, L), row r·B + b
    rest = flat.shape[0] // B
    real_rows = np.tile(real != 0, (rest, 1))  # (rest·B, L)
    top = top_k_sets(flat, real_rows, np.full(len(flat), k))  # (rest·B, L) bool
    hits = (top & np.tile(planted != 0, (rest, 1))).any(-1).astype(np.float64)  # (rest·B,)
    return hits.reshape(rest, B).T.reshape(B, *lead)
