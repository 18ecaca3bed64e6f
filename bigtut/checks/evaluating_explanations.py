"""Checkers for chapter 09 (evaluating explanations).

Each takes the student's function, compares it with :mod:`bigtut.explain.metrics` or
:mod:`bigtut.explain.attention_scores` on fresh random cases, and is built to catch the usual mistakes:

==========================  =================================================================================
checker                     what it holds the candidate to (and the usual mistake it catches)
==========================  =================================================================================
``check_precision_at_k``    share of the k highest-scored tokens that are evidence (not hits / |evidence|,
                            not the evidence share of all tokens, not the k *lowest* scores)
``check_rollout``           R = Â_n ⋯ Â_1 with Â = rownorm(0.5·mean_h A + 0.5·I) (not without the residual,
                            not without renormalising, not the product in the wrong order)
==========================  =================================================================================
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from bigtut.checks.core import _call, assert_close, checker_generator, passed

__all__ = ["check_precision_at_k", "check_rollout"]


def check_precision_at_k(candidate: Callable, seed: int | None = None) -> None:
    """``candidate(scores (B, L), evidence (B, L) bool, k) -> (B,)``: the share of each row's ``k``
    highest-scored tokens that are evidence (every position counts as a token; scores have no ties)."""
    from bigtut.explain.metrics import precision_at_k

    gen, seed = checker_generator(seed)
    name = "precision_at_k"
    for B, L, k in ((6, 10, 1), (8, 12, 3), (5, 9, 6)):
        scores = torch.randn(B, L, generator=gen, dtype=torch.float64)  # (B, L): continuous, no ties
        evidence = torch.rand(B, L, generator=gen) < 0.3  # (B, L)
        evidence[:, 0] = True  # every row has evidence
        evidence[0] = False
        evidence[0, scores[0].argmax()] = True  # row 0: one evidence token, ranked first
        expected = torch.as_tensor(precision_at_k(scores.numpy(), evidence.numpy(), k=k))  # (B,)
        got = _call(candidate, name, (scores, evidence, k), {})
        assert_close(got, expected, what=name, atol=1e-12,
                     inputs=f"B={B} rows of L={L} random scores, k={k}, random evidence (seed={seed})")
    passed(name, "random scores and evidence, k = 1, 3, 6")


def _random_attentions(gen: torch.Generator, n_layers: int, h: int, L: int, normalised: bool) -> list[torch.Tensor]:
    """``n_layers`` random attention maps ``(h, L, L)``: softmax rows, or (``normalised=False``) rows read in
    training mode, after dropout (some weights zeroed, the rest scaled by 1/(1 - p)): they do not sum to 1."""
    maps = []
    for _ in range(n_layers):
        A = torch.softmax(2 * torch.randn(h, L, L, generator=gen, dtype=torch.float64), dim=-1)  # (h, L, L)
        if not normalised:
            keep = torch.rand(h, L, L, generator=gen) >= 0.2
            A = A * keep / 0.8
        maps.append(A)
    return maps


def check_rollout(candidate: Callable, seed: int | None = None) -> None:
    """``candidate(attentions) -> (L, L)``: attention rollout of one text, ``attentions`` a list of ``n``
    tensors ``(h, L, L)``, first layer first. Per layer ``A = mean over heads``, ``Â = 0.5·A + 0.5·I`` with
    every row renormalised to sum to 1, and ``R = Â_n ⋯ Â_2 Â_1`` (the last layer on the left)."""
    from bigtut.explain.attention_scores import attention_rollout

    gen, seed = checker_generator(seed)
    name = "rollout"
    for n_layers, h, L, normalised in ((1, 2, 5, True), (3, 4, 6, True), (2, 3, 7, False), (4, 2, 5, False)):
        attentions = _random_attentions(gen, n_layers, h, L, normalised)
        expected = attention_rollout([a[None] for a in attentions])[0]  # (L, L)
        got = _call(candidate, name, ([a.clone() for a in attentions],), {})
        rows = "softmax rows" if normalised else "rows after dropout (not summing to 1)"
        assert_close(got, expected, what=name, atol=1e-10,
                     inputs=f"{n_layers} layer(s) of {h} heads over L={L} tokens, {rows} (seed={seed})")
    passed(name, "1–4 layers, several heads, rows that do and do not sum to 1")
