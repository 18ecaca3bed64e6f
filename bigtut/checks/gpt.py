"""Checkers for the exercises of chapter 04 (GPT).

* :func:`check_causal_self_attention` — ``causal_self_attention(x, w_q, w_k, w_v, w_o, n_head) -> (B, L, d)``
* :func:`check_top_p_filter` — ``top_p_filter(logits, p) -> logits`` with ``-inf`` outside the nucleus
* :func:`check_kv_cache_step` — ``kv_cache_step(x_new, past_k, past_v, w_q, w_k, w_v, w_o, n_head)
  -> (out, keys, values)``

Weights follow ``nn.Linear``'s convention: ``w`` is ``(d_out, d_in)`` and a projection is ``x @ w.T``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from bigtut.attention import KVCache, MultiHeadAttention, causal_mask
from bigtut.checks.core import CheckFailure, _call, assert_close, check_function, passed
from bigtut.gpt import top_p_filter as _top_p_reference

__all__ = ["check_causal_self_attention", "check_kv_cache_step", "check_top_p_filter"]


def _attention(weights: tuple[torch.Tensor, ...], n_head: int) -> MultiHeadAttention:
    """A bias-free MultiHeadAttention holding the four given ``(d, d)`` projection matrices."""
    w_q, w_k, w_v, w_o = weights
    mha = MultiHeadAttention(w_q.shape[0], n_head, bias=False).to(w_q.dtype)
    with torch.no_grad():
        for proj, w in zip((mha.q_proj, mha.k_proj, mha.v_proj, mha.out_proj), weights):
            proj.weight.copy_(w)
    return mha.eval()


def _random_weights(d: int, gen: torch.Generator) -> tuple[torch.Tensor, ...]:
    return tuple(torch.randn(d, d, generator=gen, dtype=torch.float64) / d**0.5 for _ in range(4))


def _reference_causal_self_attention(x, w_q, w_k, w_v, w_o, n_head):
    mha = _attention((w_q, w_k, w_v, w_o), n_head)
    with torch.no_grad():
        return mha(x, x, x, mask=causal_mask(x.shape[1]), return_attention=False)[0]  # (B, L, d)


def check_causal_self_attention(candidate: Callable) -> None:
    """``candidate(x (B, L, d), w_q, w_k, w_v, w_o (d, d), n_head) -> (B, L, d)``: causal multi-head
    self-attention without biases, compared with :class:`bigtut.attention.MultiHeadAttention` and a causal mask."""
    gen = torch.Generator().manual_seed(4)
    cases = []
    for B, L, d, h in ((2, 5, 8, 2), (1, 1, 4, 1), (3, 7, 12, 3), (2, 6, 16, 4)):
        x = torch.randn(B, L, d, generator=gen, dtype=torch.float64)
        cases.append((f"x of shape {(B, L, d)}, n_head={h}", (x, *_random_weights(d, gen), h), {}))
    check_function(candidate, _reference_causal_self_attention, cases, name="causal_self_attention",
                   atol=1e-8)


def check_top_p_filter(candidate: Callable) -> None:
    """``candidate(logits (..., V), p) -> (..., V)``: the nucleus (smallest set of most likely tokens with
    mass ``>= p``) keeps its logits, every other entry becomes ``-inf``."""
    gen = torch.Generator().manual_seed(5)
    cases = [("logits log([0.5, 0.3, 0.15, 0.05]), p=0.6", (torch.tensor([0.5, 0.3, 0.15, 0.05]).log(), 0.6), {}),
             ("logits log([0.5, 0.3, 0.15, 0.05]), p=0.5", (torch.tensor([0.5, 0.3, 0.15, 0.05]).log(), 0.5), {})]
    for shape, p in (((3, 10), 0.9), ((2, 50), 0.5), ((4, 7), 1.0), ((1, 20), 0.05), ((2, 3, 12), 0.8)):
        logits = 3 * torch.randn(*shape, generator=gen, dtype=torch.float64)
        cases.append((f"random logits of shape {shape}, p={p}", (logits, p), {}))
    check_function(candidate, _top_p_reference, cases, name="top_p_filter")


def _reference_kv_cache_step(x_new, past_k, past_v, w_q, w_k, w_v, w_o, n_head):
    mha = _attention((w_q, w_k, w_v, w_o), n_head)
    cache = KVCache(past_k, past_v, past_k.shape[2]) if past_k.shape[2] else KVCache()
    with torch.no_grad():
        out, _ = mha(x_new, x_new, x_new, return_attention=False, cache=cache)  # the new token sees every key
    return out, cache.keys, cache.values


def check_kv_cache_step(candidate: Callable) -> None:
    """``candidate(x_new (B, 1, d), past_k, past_v (B, h, T, d_head), w_q, w_k, w_v, w_o, n_head)
    -> (out (B, 1, d), keys, values (B, h, T + 1, d_head))``, and the step must agree with attending over the
    whole sequence at once."""
    name = "kv_cache_step"
    gen = torch.Generator().manual_seed(6)
    cases = []
    for B, T, d, h in ((2, 4, 8, 2), (1, 0, 4, 1), (3, 6, 12, 3)):
        x = torch.randn(B, T + 1, d, generator=gen, dtype=torch.float64)
        weights = _random_weights(d, gen)
        mha = _attention(weights, h)
        past_k = mha.split_heads(x[:, :T] @ weights[1].T)  # (B, h, T, d_head)
        past_v = mha.split_heads(x[:, :T] @ weights[2].T)  # (B, h, T, d_head)
        cases.append((f"B={B}, T={T} cached positions, d={d}, n_head={h}",
                      (x[:, T:], past_k, past_v, *weights, h), {}, x))
    for description, args, kwargs, full_x in cases:
        got = _call(candidate, name, args, kwargs)
        if not isinstance(got, tuple) or len(got) != 3:
            raise CheckFailure(f"{name}: expected a tuple (out, keys, values) for {description}, got {type(got)}")
        expected = _reference_kv_cache_step(*args, **kwargs)
        for what, g, e in zip(("out", "keys", "values"), got, expected):
            assert_close(g, e, what=f"{name} ({what})", inputs=description, atol=1e-8)
        whole = _reference_causal_self_attention(full_x, *args[3:])[:, -1:]  # (B, 1, d)
        assert_close(got[0], whole, what=f"{name} (out vs. attention over the whole sequence)",
                     inputs=description, atol=1e-8)
    passed(name, f"matches the reference and full causal attention on {len(cases)} random cases")
