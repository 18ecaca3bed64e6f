"""Turning next-token logits into text: temperature, top-k, top-p, sampling, and ``generate`` with a KV cache.

Shape legend:  B batch   T tokens so far   V vocabulary   d d_model

``generate`` works on any model with :class:`bigtut.gpt.GPT`'s interface (``config.block_size``,
``new_cache()``, ``hidden_states(..., cache=)`` and ``lm_head``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from bigtut.gpt.fast_decoding import FastDecoder
from bigtut.runtime import eval_mode
from bigtut.validation import check_positive_int

__all__ = ["apply_temperature", "generate", "next_token_distribution", "sample_next_token", "top_k_filter",
           "top_p_filter"]


def apply_temperature(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """``logits / temperature`` (``(..., V)``): below 1 sharpens the distribution, above 1 flattens it."""
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0 (use temperature=0 in generate for greedy), got {temperature}")
    return logits / temperature


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep exactly the ``k`` largest logits of the last axis (ties broken by ``torch.topk``); set the rest
    to ``-inf``. ``k >= V`` keeps everything."""
    check_positive_int("top_k", k)
    if k >= logits.shape[-1]:
        return logits
    keep = torch.zeros_like(logits, dtype=torch.bool).scatter_(-1, logits.topk(k, dim=-1).indices, True)
    return logits.masked_fill(~keep, float("-inf"))  # (..., V)


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus filter: keep the smallest set of most likely tokens whose probability mass is ``>= p``.

    A token survives if the mass of the tokens ranked above it is still below ``p`` (so the most likely
    token always survives); the rest get ``-inf``.
    """
    if not 0.0 < p <= 1.0:
        raise ValueError(f"top_p must lie in (0, 1], got {p}")
    sorted_logits, order = logits.sort(dim=-1, descending=True)  # (..., V)
    probs = sorted_logits.softmax(dim=-1)  # (..., V)
    mass_before = probs.cumsum(dim=-1) - probs  # (..., V): mass of the better-ranked tokens
    remove_sorted = mass_before >= p  # (..., V)
    remove = torch.zeros_like(remove_sorted).scatter_(-1, order, remove_sorted)  # back to vocabulary order
    return logits.masked_fill(remove, float("-inf"))


def next_token_distribution(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
                            top_p: float | None = None) -> torch.Tensor:
    """Probabilities ``(..., V)`` that sampling draws from: temperature, then top-k, then top-p.

    ``temperature=0`` gives the greedy one-hot distribution on the arg-max.
    """
    if temperature == 0:
        return F.one_hot(logits.argmax(-1), logits.shape[-1]).to(logits.dtype)  # (..., V)
    logits = apply_temperature(logits, temperature)
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    if top_p is not None:
        logits = top_p_filter(logits, top_p)
    return logits.softmax(dim=-1)  # (..., V)


def sample_next_token(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
                      top_p: float | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw one token per row of ``logits`` ``(B, V)``; returns ``(B, 1)`` ids (arg-max if temperature=0)."""
    if temperature == 0:
        return logits.argmax(dim=-1, keepdim=True)  # (B, 1)
    probs = next_token_distribution(logits, temperature, top_k, top_p)  # (B, V)
    if generator is not None and generator.device != probs.device:
        return torch.multinomial(probs.cpu(), 1, generator=generator).to(probs.device)
    return torch.multinomial(probs, 1, generator=generator)  # (B, 1)


@torch.no_grad()
def generate(model: nn.Module, idx: torch.Tensor, max_new_tokens: int, temperature: float = 1.0,
             top_k: int | None = None, top_p: float | None = None, use_cache: bool = True,
             generator: torch.Generator | None = None) -> torch.Tensor:
    """Extend ``idx`` ``(B, T)`` by ``max_new_tokens`` sampled tokens; returns ``(B, T + max_new_tokens)``.

    ``temperature=0`` is greedy decoding. The model always sees the last ``block_size`` tokens (longer
    contexts are cropped). With ``use_cache`` each step feeds only the newest token and reads the earlier
    keys/values from a KV cache; once the context is longer than ``block_size`` the window slides, every
    position shifts, and the cache is rebuilt at each step — the results stay identical either way. The
    model runs in eval mode; its mode is restored afterwards.

    For an unmodified :class:`~bigtut.gpt.GPT` the one-token steps run through
    :class:`~bigtut.gpt.fast_decoding.FastDecoder`: the same arithmetic in fewer calls, proven equal by a test.
    """
    if idx.dim() != 2 or idx.shape[1] < 1:
        raise ValueError(f"idx must be (B, T) with T >= 1, got shape {tuple(idx.shape)}")
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be a non-negative int, got {max_new_tokens!r}")
    block_size = model.config.block_size
    cache, cache_start = None, -1
    with eval_mode(model), torch.inference_mode():  # unlike no_grad, no version counters or view tracking
        fast = FastDecoder(model) if use_cache and FastDecoder.applies_to(model) else None
        for _ in range(max_new_tokens):
            start = max(0, idx.shape[1] - block_size)  # first token of the visible window
            if use_cache and start == cache_start:  # the window did not move: feed only the newest token
                h = fast.step(idx[:, -1]) if fast else model.hidden_states(idx[:, -1:], cache=cache)[0][:, -1]
            else:
                cache = (fast.new_cache() if fast else model.new_cache()) if use_cache else None
                cache_start = start
                h = model.hidden_states(idx[:, start:], cache=cache)[0][:, -1]  # (B, d): the window's last
            logits = fast.logits(h) if fast else model.lm_head(h)  # (B, V): only the last position is needed
            next_id = sample_next_token(logits, temperature, top_k, top_p, generator)  # (B, 1)
            idx = torch.cat([idx, next_id], dim=1)  # (B, T + 1)
    return idx.clone()  # made outside inference mode: a normal tensor, usable wherever autograd runs
