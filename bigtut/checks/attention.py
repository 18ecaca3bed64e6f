"""Checkers for notebook 02 (attention): functions here, multi-head attention classes in :mod:`.multihead`.

====================================  =========================================================================
checker                               what the candidate must do
====================================  =========================================================================
``check_scaled_dot_product_attention``  ``fn(q, k, v[, mask]) -> (output, weights)``; fully masked rows give 0
``check_causal_mask``                 ``fn(L)`` -> bool ``(L, L)``, True on and below the diagonal
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

from bigtut.attention import causal_mask, padding_mask, scaled_dot_product_attention
from bigtut.checks.core import (
    CheckFailure,
    _describe,
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
    "check_causal_mask", "check_mha_dropout", "check_mha_output_projection", "check_mha_shapes",
    "check_mha_values", "check_multi_head_attention", "check_scaled_dot_product_attention",
    "check_sinusoidal_encoding",
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
    cases = [(f"{d} (seed={seed})", a, k) for d, a, k in cases]
    check_function(candidate, scaled_dot_product_attention, cases, name="scaled_dot_product_attention",
                   atol=1e-9, rtol=1e-7)


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
            hint = ""
            if torch.equal(got.cpu(), ~expected):
                hint = " It is the exact opposite: True must mean 'may attend', not 'blocked'."
            elif torch.equal(got.cpu(), expected.T):
                hint = " It is the transpose: query i (row) must see keys 0..i (columns), not i..L-1 (the future)."
            raise CheckFailure(f"{name}: wrong pattern for L={length} (seed={seed}).{hint}\n"
                               f"  expected {expected.int().tolist()}\n  got      {got.int().tolist()}")
    passed(name, f"bool lower-triangular (L, L) masks for {len(lengths)} lengths, L = 1 included")


def check_sinusoidal_encoding(candidate: Callable[[int, int], torch.Tensor], seed: int | None = None) -> None:
    """``candidate(length, d_model)`` must return the ``(length, d_model)`` table of the paper:
    ``PE[pos, 2i] = sin(pos / 10000^(2i/d_model))``, ``PE[pos, 2i+1] = cos(pos / 10000^(2i/d_model))``."""
    gen, seed = checker_generator(seed)
    sizes = [(1, 2), (10, 8), (64, 16), (7, 6), (int(torch.randint(20, 200, (1,), generator=gen)), 32)]
    cases = [(f"length={n}, d_model={d} (seed={seed})", (n, d), {}) for n, d in sizes]
    check_function(candidate, lambda n, d: sinusoidal_encoding(n, d, dtype=torch.float64), cases,
                   name="sinusoidal_encoding", atol=1e-4, rtol=1e-4)
