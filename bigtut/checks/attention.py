"""Checkers for notebook 02 (attention): functions here, multi-head attention classes in :mod:`.multihead`.

====================================  =========================================================================
checker                               what the candidate must do
====================================  =========================================================================
``check_scaled_dot_product_attention``  ``fn(q, k, v[, mask]) -> (output, weights)``; fully masked rows give 0
``check_causal_mask``                 ``fn(L)`` -> bool ``(L, L)``, True on and below the diagonal
``check_sliding_window_mask``         ``fn(L, window)`` -> bool ``(L, L)``: the last ``window`` keys, itself included
``check_head_contributions``          ``fn(heads, out_proj)`` -> ``(B, h, L, d_model)``, each head's share of W_O
``check_sinusoidal_encoding``         ``fn(length, d_model)`` -> the paper's ``(length, d_model)`` table
``check_mha_shapes``                  ``cls(d_model, num_heads)``: output ``(B, Lq, d_model)`` for any Lq, Lk
``check_mha_output_projection``       four ``d_model × d_model`` projections, the last one ``out_proj``
``check_mha_values``                  same numbers as :class:`bigtut.attention.MultiHeadAttention`
``check_mha_dropout``                 dropout zeroes attention *weights* (after the softmax), scaled 1/(1-p)
``check_multi_head_attention``        all four ``check_mha_*`` checks in turn
====================================  =========================================================================

Inputs come from a private generator; pass ``seed=`` to replay a case (the seed is named in every failure).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from bigtut.attention import causal_mask, padding_mask, scaled_dot_product_attention
from bigtut.checks.core import (
    CheckFailure,
    _call,
    _describe,
    assert_close,
    check_function,
    checker_generator,
    guarded,
    passed,
    random_float64,
)
from bigtut.checks.multihead import (
    check_mha_dropout,
    check_mha_output_projection,
    check_mha_shapes,
    check_mha_values,
    check_multi_head_attention,
)
from bigtut.positional import sinusoidal_encoding

__all__ = [
    "check_causal_mask", "check_head_contributions", "check_sliding_window_mask", "check_mha_dropout",
    "check_mha_output_projection", "check_mha_shapes", "check_mha_values", "check_multi_head_attention",
    "check_scaled_dot_product_attention", "check_sinusoidal_encoding",
]


# ------------------------------------------------------------------------------------------- functions
def check_scaled_dot_product_attention(candidate: Callable[..., Any], seed: int | None = None) -> None:
    """``candidate(q, k, v)`` and ``candidate(q, k, v, mask)`` must return ``(output, weights)``.

    ``q (..., Lq, d_k)``, ``k (..., Lk, d_k)``, ``v (..., Lk, d_v)``; ``mask`` bool, True = may attend,
    broadcastable to ``(..., Lq, Lk)``. ``weights = softmax(q kᵀ / √d_k)`` over the allowed keys
    ``(..., Lq, Lk)``, ``output = weights @ v``. A query row with no allowed key gets zero weights and a zero
    output. Compared with :func:`bigtut.attention.scaled_dot_product_attention` in float64.
    """
    gen, seed = checker_generator(seed)
    every = torch.rand((2, 4, 6), generator=gen) > 0.4  # (B, Lq, Lk), an arbitrary pattern …
    every[1, 2] = False  # … with one query that may attend to nothing
    def r(*shape: int) -> torch.Tensor:  # a float64 draw of this shape
        return random_float64(gen, *shape)

    cases = [
        ("q (2, 4, 8), k (2, 6, 8), v (2, 6, 5), no mask", (r(2, 4, 8), r(2, 6, 8), r(2, 6, 5)), {}),
        ("q, k, v (2, 3, 5, 4) (3 heads), causal mask (5, 5)",
         (r(2, 3, 5, 4), r(2, 3, 5, 4), r(2, 3, 5, 4), causal_mask(5)), {}),
        ("q (2, 4, 8), k, v (2, 6, 8), padding mask (2, 1, 6) for lengths [6, 3]",
         (r(2, 4, 8), r(2, 6, 8), r(2, 6, 8), padding_mask([6, 3], 6)), {}),
        ("q (2, 4, 8), k, v (2, 6, 8), arbitrary mask (2, 4, 6) whose row [1, 2] is all False",
         (r(2, 4, 8), r(2, 6, 8), r(2, 6, 8), every), {}),
        ("q (1, 16), k (9, 16), v (9, 3), scores of size ~10", (3 * r(1, 16), 3 * r(9, 16), r(9, 3)), {}),
    ]
    name = "scaled_dot_product_attention"
    if not callable(candidate):
        raise CheckFailure(f"{name}: expected a function, got {_describe(candidate)}")
    for description, args, _ in cases:
        description = f"{description} (seed={seed})"
        got = _call(candidate, name, args, {})
        if not isinstance(got, tuple) or len(got) != 2:
            raise CheckFailure(f"{name}: expected a tuple of 2 values (output, weights) for {description}, got "
                               f"{_describe(got)}")
        try:
            for i, (g, e) in enumerate(zip(got, scaled_dot_product_attention(*args))):
                assert_close(g, e, what=f"{name} (output {i})", inputs=description, atol=1e-9, rtol=1e-7)
        except CheckFailure as failure:
            raise CheckFailure(f"{failure}{_sdpa_hint(got[1], *args)}") from None
    passed(name, f"matches the reference on {len(cases)} random cases")


def _sdpa_hint(weights: Any, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask=None) -> str:
    """Name the mistake when the candidate's weights are those of a known wrong variant."""
    if not isinstance(weights, torch.Tensor):
        return ""
    if torch.isnan(weights).any():
        return ("\n  Hint: nan weights — a query whose every key is masked gets softmax(-inf, …, -inf) = 0/0; "
                "set its weights (and so its output) to 0.")
    raw = q @ k.transpose(-2, -1)  # (..., Lq, Lk)
    d_k = q.shape[-1]
    allowed = torch.ones_like(raw, dtype=torch.bool) if mask is None else mask.expand_as(raw)

    def masked_softmax(scores, keep, dim=-1):
        w = torch.softmax(scores.masked_fill(~keep, float("-inf")), dim=dim)
        return w.nan_to_num(0.0)

    variants = {
        "the scores were not divided by √d_k": masked_softmax(raw, allowed),
        "the scores were divided by d_k, not by its square root √d_k": masked_softmax(raw / d_k, allowed),
        "the mask is inverted: True must mean 'may attend'": masked_softmax(raw / d_k**0.5, ~allowed),
        "the mask was applied after the softmax: the weights of the allowed keys no longer sum to 1 — remove "
        "the masked keys before it (their scores → -inf)": torch.softmax(raw / d_k**0.5, -1) * allowed,
        "the softmax ran over the queries (dim=-2); each query's weights over the keys (the last axis) must "
        "sum to 1": masked_softmax(raw / d_k**0.5, allowed, dim=-2),
    }
    for hint, wrong in variants.items():
        if wrong.shape == weights.shape and torch.allclose(weights.detach().double().cpu(), wrong, atol=1e-9):
            return f"\n  Hint: {hint}."
    return ""


def check_causal_mask(candidate: Callable[[int], torch.Tensor], seed: int | None = None) -> None:
    """``candidate(L)`` must return a bool ``(L, L)`` tensor, True where key ``j ≤`` query ``i``."""
    gen, seed = checker_generator(seed)
    name = "causal_mask"
    lengths = [1, 2, 5] + [int(n) for n in torch.randint(3, 40, (2,), generator=gen)]
    for length in lengths:
        got = guarded(name, f"causal_mask({length})", candidate, length)
        expected = causal_mask(length)
        if not isinstance(got, torch.Tensor) or got.dtype != torch.bool:
            raise CheckFailure(f"{name}: expected a bool tensor (True = may attend) for L={length}, got "
                               f"{_describe(got)}")
        if tuple(got.shape) != (length, length):
            raise CheckFailure(f"{name}: expected shape ({length}, {length}) for L={length}, got {tuple(got.shape)}")
        if not torch.equal(got.cpu(), expected):
            hint = _causal_hint(candidate, length)
            raise CheckFailure(f"{name}: wrong pattern for L={length} (seed={seed}).{hint}\n"
                               f"  expected {expected.int().tolist()}\n  got      {got.int().tolist()}")
    passed(name, f"bool lower-triangular (L, L) masks for {len(lengths)} lengths, L = 1 included")


def _causal_hint(candidate: Callable[[int], torch.Tensor], length: int) -> str:
    """Name a wrong causal pattern. Judged on L >= 4, where the mistakes differ (at L = 1 a missing diagonal
    and an inverted mask both give [[False]])."""
    probe = max(length, 4)
    try:
        got = candidate(probe).cpu()
    except Exception:  # the hint is optional; the failure itself is reported anyway
        return ""
    expected = causal_mask(probe)
    eye = torch.eye(probe, dtype=torch.bool)
    if not isinstance(got, torch.Tensor) or got.shape != expected.shape:
        return ""
    got = got.bool()
    patterns = [
        (expected & ~eye, " The diagonal is missing: query i must also see key i — a token attends to itself."),
        (~expected, " It is the exact opposite: True must mean 'may attend', not 'blocked'."),
        (expected.T, " It is the transpose: query i (row) must see keys 0..i (columns), not i..L-1 (the future)."),
        (expected.T & ~eye, " It is the transpose without the diagonal: query i (row) must see keys 0..i."),
    ]
    return next((hint for pattern, hint in patterns if torch.equal(got, pattern)), "")


def sliding_window_mask(length: int, window: int) -> torch.Tensor:
    """Reference: bool ``(length, length)``, query ``i`` sees keys ``i - window < j <= i`` (the last ``window``)."""
    i = torch.arange(length)[:, None]  # (L, 1) query positions
    j = torch.arange(length)[None, :]  # (1, L) key positions
    return (j <= i) & (j > i - window)  # (L, L)


def check_sliding_window_mask(candidate: Callable[[int, int], torch.Tensor], seed: int | None = None) -> None:
    """``candidate(L, window)`` must return bool ``(L, L)``: query ``i`` may attend to the ``window`` most recent
    keys, itself included — ``i - window < j <= i``. ``window >= L`` gives the plain causal mask."""
    gen, seed = checker_generator(seed)
    name = "sliding_window_mask"
    cases = [(8, 3), (6, 1), (5, 5), (4, 9), (int(torch.randint(10, 30, (1,), generator=gen)),
                                            int(torch.randint(2, 8, (1,), generator=gen))), (1, 1)]
    for length, window in cases:
        what = f"sliding_window_mask({length}, {window})"
        got = guarded(name, what, candidate, length, window)
        expected = sliding_window_mask(length, window)
        if not isinstance(got, torch.Tensor) or got.dtype != torch.bool:
            raise CheckFailure(f"{name}: expected a bool tensor (True = may attend) for {what}, got "
                               f"{_describe(got)}")
        if tuple(got.shape) != (length, length):
            raise CheckFailure(f"{name}: expected shape ({length}, {length}) for {what}, got {tuple(got.shape)}")
        got = got.cpu()
        if torch.equal(got, expected):
            continue
        eye = torch.eye(length, dtype=torch.bool)
        i, j = torch.arange(length)[:, None], torch.arange(length)[None, :]
        patterns = [
            (~expected, "It is inverted: True must mean 'may attend'."),
            (sliding_window_mask(length, window + 1), f"Each query sees {window + 1} keys, one too many: the "
                                                      f"window of {window} includes the query itself."),
            (sliding_window_mask(length, window - 1) if window > 1 else None,
             f"Each query sees only {window - 1} keys: the window of {window} includes the query itself."),
            (expected & ~eye, "The diagonal is missing: query i must also see key i (itself)."),
            ((i - j).abs() < window, "It is a band around the diagonal: future keys (j > i) must stay hidden."),
            (expected.T, "It is transposed: row i is query i, and it sees the keys (columns) just before it."),
            (causal_mask(length), f"The window is ignored: query i may see only keys i-{window - 1} … i."),
        ]
        hint = next((h for pattern, h in patterns if pattern is not None and torch.equal(got, pattern)), "")
        row = int((got != expected).any(1).nonzero()[0])
        raise CheckFailure(f"{name}: wrong pattern for {what} (seed={seed}). {hint}\n"
                           f"  first wrong row, query {row}: expected {expected[row].int().tolist()}\n"
                           f"  {' ' * len(f'first wrong row, query {row}:')} got      {got[row].int().tolist()}")
    passed(name, f"bool (L, L) masks for {len(cases)} lengths and windows, window >= L and L = 1 included")


def _head_contributions(heads: torch.Tensor, out_proj: nn.Linear) -> torch.Tensor:
    """Reference: head i's slice of the merged vector, columns i·d_head … (i+1)·d_head − 1, times W_O."""
    B, h, L, d_head = heads.shape
    weight = out_proj.weight.view(out_proj.out_features, h, d_head)  # (d_model, h, d_head): (out, head, in)
    return torch.einsum("bhld,ohd->bhlo", heads, weight)  # (B, h, L, d_model)


def check_head_contributions(candidate: Callable[[torch.Tensor, nn.Linear], torch.Tensor],
                             seed: int | None = None) -> None:
    """``candidate(heads, out_proj)`` must return ``(B, h, L, d_model)``: what each head adds to the output.

    ``heads`` ``(B, h, L, d_head)`` are the per-head attention outputs, ``out_proj`` the ``nn.Linear`` W_O.
    Summed over the heads, plus ``out_proj.bias`` once, the contributions give
    ``out_proj(heads.transpose(1, 2).reshape(B, L, h * d_head))``. Compared in float64.
    """
    gen, seed = checker_generator(seed)
    name = "head_contributions"
    if not callable(candidate):
        raise CheckFailure(f"{name}: expected a function, got {_describe(candidate)}")
    sizes = [(2, 4, 5, 3), (1, 2, 3, 8), (2, 3, 1, 2), (3, 1, 4, 6)]  # (B, h, L, d_head)
    for B, h, L, d_head in sizes:
        what = f"heads (B={B}, h={h}, L={L}, d_head={d_head}), out_proj {h * d_head}→{h * d_head} (seed={seed})"
        heads = random_float64(gen, B, h, L, d_head)
        out_proj = nn.Linear(h * d_head, h * d_head).double()
        with torch.no_grad():
            out_proj.weight.copy_(random_float64(gen, h * d_head, h * d_head))
            out_proj.bias.copy_(random_float64(gen, h * d_head))
        got = guarded(name, f"head_contributions on {what}", candidate, heads.clone(), out_proj)
        expected = _head_contributions(heads, out_proj).detach()
        try:
            assert_close(got, expected, what=name, inputs=what, atol=1e-9, rtol=1e-7)
        except CheckFailure as failure:
            raise CheckFailure(f"{failure}{_head_hint(got, heads, out_proj, expected)}") from None
        merged = heads.transpose(1, 2).reshape(B, L, h * d_head)  # (B, L, d_model)
        assert_close(got.sum(1) + out_proj.bias, out_proj(merged), what=f"{name}: sum over heads + bias",
                     inputs=what, atol=1e-9, rtol=1e-7)
    passed(name, f"per-head shares of W_O that add up to the layer's output, {len(sizes)} cases")


def _head_hint(got: Any, heads: torch.Tensor, out_proj: nn.Linear, expected: torch.Tensor) -> str:
    if not isinstance(got, torch.Tensor) or got.shape != expected.shape:
        return ""
    B, h, L, d_head = heads.shape
    W, bias = out_proj.weight.detach(), out_proj.bias.detach()
    interleaved = torch.stack([heads[:, i] @ W[:, i::h].T for i in range(h)], 1)
    rows = torch.stack([heads[:, i] @ W[i * d_head:(i + 1) * d_head] for i in range(h)], 1)
    variants = {
        "head i was given every h-th column of W_O (columns i, i+h, …) — the order a merge without "
        "transpose(1, 2) would produce. transpose(1, 2).reshape puts head i in the columns "
        "i·d_head … (i+1)·d_head − 1": interleaved,
        "head i took rows of out_proj.weight. nn.Linear stores weight as (out_features, in_features): head i's "
        "block is weight[:, i·d_head:(i+1)·d_head], applied as x @ block.T": rows,
        "the bias was added to every head; it belongs to the output once (output = contributions.sum(1) + "
        "bias), so leave it out here": expected + bias,
        "the bias was shared out among the heads; leave it out (output = contributions.sum(1) + bias)":
            expected + bias / h,
    }
    for hint, wrong in variants.items():
        if torch.allclose(got.detach().double(), wrong, atol=1e-9):
            return f"\n  Hint: {hint}."
    return ""


def check_sinusoidal_encoding(candidate: Callable[[int, int], torch.Tensor], seed: int | None = None) -> None:
    """``candidate(length, d_model)`` must return the ``(length, d_model)`` table of the paper:
    ``PE[pos, 2i] = sin(pos / 10000^(2i/d_model))``, ``PE[pos, 2i+1] = cos(pos / 10000^(2i/d_model))``."""
    gen, seed = checker_generator(seed)
    sizes = [(1, 2), (10, 8), (64, 16), (7, 6), (int(torch.randint(20, 200, (1,), generator=gen)), 32)]
    cases = [(f"length={n}, d_model={d} (seed={seed})", (n, d), {}) for n, d in sizes]
    check_function(candidate, lambda n, d: sinusoidal_encoding(n, d, dtype=torch.float64), cases,
                   name="sinusoidal_encoding", atol=1e-4, rtol=1e-4)
