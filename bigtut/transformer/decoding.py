"""Turning a trained seq2seq model into outputs: greedy decoding, sequence scores and beam search.

Works on any model with ``config`` (``pad_id``, ``bos_id``, ``eos_id``, ``max_len``), ``encode`` and
``decode`` — :class:`~bigtut.transformer.Seq2SeqTransformer` and the :class:`~bigtut.transformer.LSTMSeq2Seq`
baseline alike. Every function runs the model in eval mode and restores its mode afterwards.

Shape legend:  B batch   S source positions   n output positions   V target vocabulary   K beam size
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from bigtut.runtime import eval_mode
from bigtut.validation import check_positive_int

__all__ = ["beam_search", "beam_step", "greedy_decode", "sequence_log_prob"]


def _next_log_probs(model: nn.Module, seqs: torch.Tensor, memory: torch.Tensor, src_mask: torch.Tensor):
    """Log-probabilities ``(N, V)`` of the token after ``seqs (N, t)``; ``<pad>`` and ``<bos>`` are never chosen."""
    logits = model.decode(seqs, memory, src_mask)[0][:, -1]  # (N, V)
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))  # scores in >= float32
    logits[:, [model.config.pad_id, model.config.bos_id]] = float("-inf")
    return logits.log_softmax(-1)  # (N, V)


def _decode_len(model: nn.Module, max_len: int | None) -> int:
    max_len = model.config.max_len - 1 if max_len is None else max_len
    if not isinstance(max_len, int) or not 1 <= max_len < model.config.max_len:
        raise ValueError(f"max_len must lie in [1, {model.config.max_len - 1}] (one position holds <bos>), "
                         f"got {max_len!r}")
    return max_len


@torch.no_grad()
def greedy_decode(model: nn.Module, src: torch.Tensor, max_len: int | None = None) -> torch.Tensor:
    """Pick the most likely next token until every row has produced ``<eos>`` (or ``max_len`` tokens).

    Returns:
        ``(B, n)`` ids without ``<bos>``, ``n <= max_len``; each row ends with ``<eos>`` then ``<pad>``.
        The model is used in eval mode (its mode is restored).
    """
    c, max_len = model.config, _decode_len(model, max_len)
    with eval_mode(model):
        memory, src_mask, _ = model.encode(src)  # (B, S, D), (B, 1, S)
        seqs = torch.full((src.shape[0], 1), c.bos_id, dtype=torch.long, device=src.device)  # (B, 1)
        done = torch.zeros(src.shape[0], dtype=torch.bool, device=src.device)  # (B,)
        for _ in range(max_len):
            token = _next_log_probs(model, seqs, memory, src_mask).argmax(-1)  # (B,)
            token = token.masked_fill(done, c.pad_id)  # finished rows only pad
            seqs = torch.cat([seqs, token[:, None]], dim=1)  # (B, t + 1)
            done |= token == c.eos_id
            if done.all():
                break
    return seqs[:, 1:]


@torch.no_grad()
def sequence_log_prob(model: nn.Module, src: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """Model score ``log p(out | src)`` ``(B,)`` of outputs ``out (B, n)`` as :func:`greedy_decode` returns them:
    the sum of the tokens' log-probabilities up to and including ``<eos>`` (the same score beam search ranks by)."""
    c = model.config
    with eval_mode(model):
        memory, src_mask, _ = model.encode(src)
        bos = torch.full_like(out[:, :1], c.bos_id)  # (B, 1)
        logits = model.decode(torch.cat([bos, out[:, :-1]], 1), memory, src_mask)[0]  # (B, n, V)
        logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
        logits[..., [c.pad_id, c.bos_id]] = float("-inf")
        token_lp = logits.log_softmax(-1).gather(-1, out[..., None])[..., 0]  # (B, n)
    return token_lp.masked_fill(out == c.pad_id, 0.0).sum(-1)  # (B,)


def beam_step(scores: torch.Tensor, log_probs: torch.Tensor, beam_size: int):
    """One step of beam search: extend every beam by every token, keep the ``beam_size`` best in total.

    Args:
        scores: running scores of the current beams ``(B, K)`` (``-inf`` for unused beams).
        log_probs: next-token log-probabilities per beam ``(B, K, V)``.

    Returns:
        ``(new_scores, parent, token)``, each ``(B, beam_size)``, best first: the new beam ``j`` is beam
        ``parent[:, j]`` extended by ``token[:, j]`` and scores ``new_scores[:, j]``.
    """
    B, K, V = log_probs.shape
    candidates = (scores[..., None] + log_probs).reshape(B, K * V)  # (B, K·V): every beam × every token
    new_scores, flat = candidates.topk(beam_size, dim=-1)  # (B, beam_size)
    return new_scores, flat // V, flat % V


@torch.no_grad()
def beam_search(model: nn.Module, src: torch.Tensor, beam_size: int = 4, max_len: int | None = None,
                keep_greedy: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Keep the ``beam_size`` highest-scoring prefixes (score = sum of log-probabilities) at every step.

    Plain beam search is *not* monotone in the beam size: the prefix greedy decoding would extend can drop
    out of the beam, and what replaces it can end lower. With ``keep_greedy`` the greedy output is scored
    too and returned where it wins, so the result never scores below :func:`greedy_decode`'s.

    Returns:
        ``(out (B, n), scores (B,))``: best outputs in :func:`greedy_decode`'s layout and their scores.
    """
    c, max_len = model.config, _decode_len(model, max_len)
    check_positive_int("beam_size", beam_size)
    with eval_mode(model):
        out, best_scores = _best_beams(model, src, beam_size, max_len)  # (B, n), (B,)
    if keep_greedy:
        greedy = greedy_decode(model, src, max_len)  # (B, n')
        greedy_scores = sequence_log_prob(model, src, greedy)  # (B,)
        width = max(out.shape[1], greedy.shape[1])
        out, greedy = (F.pad(t, (0, width - t.shape[1]), value=c.pad_id) for t in (out, greedy))
        wins = greedy_scores > best_scores  # (B,)
        out, best_scores = torch.where(wins[:, None], greedy, out), torch.where(wins, greedy_scores, best_scores)
    return out, best_scores


def _best_beams(model: nn.Module, src: torch.Tensor, K: int, max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Plain beam search of width ``K``: the best finished beam per row, ``(out (B, n), scores (B,))``."""
    c, B, dev = model.config, src.shape[0], src.device
    memory, src_mask, _ = model.encode(src)
    memory, src_mask = memory.repeat_interleave(K, 0), src_mask.repeat_interleave(K, 0)  # (B·K, S, D), (B·K, 1, S)
    seqs = torch.full((B * K, 1), c.bos_id, dtype=torch.long, device=dev)  # (B·K, 1)
    dtype = torch.promote_types(memory.dtype, torch.float32)
    scores = torch.full((B, K), float("-inf"), device=dev, dtype=dtype)  # (B, K)
    scores[:, 0] = 0.0  # one live beam at the start, so the first step does not pick K copies
    done = torch.zeros(B, K, dtype=torch.bool, device=dev)  # (B, K)
    for _ in range(max_len):
        log_probs = _next_log_probs(model, seqs, memory, src_mask).view(B, K, -1)  # (B, K, V)
        finished_row = torch.full_like(log_probs[0, 0], float("-inf"))  # (V,)
        finished_row[c.pad_id] = 0.0  # a finished beam continues with <pad> at no cost
        log_probs = torch.where(done[..., None], finished_row, log_probs)  # (B, K, V)
        scores, parent, token = beam_step(scores, log_probs, K)  # (B, K) each
        dead = scores == float("-inf")  # more beams than possible sequences: fill with finished padding
        token = token.masked_fill(dead, c.pad_id)
        seqs = seqs.view(B, K, -1).gather(1, parent[..., None].expand(-1, -1, seqs.shape[1]))  # (B, K, t)
        seqs = torch.cat([seqs, token[..., None]], dim=-1).view(B * K, -1)  # (B·K, t + 1)
        done = done.gather(1, parent) | (token == c.eos_id) | dead  # (B, K)
        if done.all():
            break
    best = scores.argmax(-1)  # (B,)
    return seqs.view(B, K, -1)[torch.arange(B), best, 1:], scores[torch.arange(B), best]  # (B, n), (B,)
