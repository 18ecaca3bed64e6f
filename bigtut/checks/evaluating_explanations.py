"""Checkers for chapter 09 (evaluating explanations).

Each takes the student's function, compares it with :mod:`bigtut.explain.metrics` or
:mod:`bigtut.explain.attention_scores` on fresh random cases, and is built to catch the usual mistakes (a
failure names the input, what was expected, what came back and — when it is a known wrong variant — the mistake):

==========================  =================================================================================
checker                     what it holds the candidate to (and the usual mistake it catches)
==========================  =================================================================================
``check_precision_at_k``    share of the k highest-scored tokens that are evidence (not hits / |evidence|,
                            not the evidence share of all tokens, not the k *lowest* scores, not ranked by
                            |score|, not the hit count, not k ± 1 positions, not the batch mean)
``check_rollout``           R = Â_n ⋯ Â_1 with Â = rownorm(0.5·mean_h A + 0.5·I) (not without the residual,
                            not without renormalising, not renormalised before the residual, not the product
                            in the wrong order, not max/sum over heads, not one layer, not transposed)
==========================  =================================================================================

Both hand the candidate copies of their tensors and fail it if it changed them in place, and fail an answer that
calls the course's own implementation (``bigtut.explain``'s ``precision_at_k``, ``attention_rollout``).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import torch

from bigtut.checks.core import CheckFailure, _describe, checker_generator, guarded, passed
from bigtut.checks.explain import OWN_ANSWER, assert_close_or_hint, assert_does_not_use, assert_not_modified

__all__ = ["check_precision_at_k", "check_rollout"]


def _share_of_top(scores: torch.Tensor, evidence: torch.Tensor, start: int, stop: int) -> torch.Tensor:
    """The evidence share of the positions ranked ``start … stop − 1`` (highest score first) of every row."""
    top = scores.argsort(dim=1, descending=True)[:, start:stop]  # (B, stop − start)
    return evidence.gather(1, top).double().mean(1)  # (B,)


def _precision_variants(s: torch.Tensor, e: torch.Tensor, k: int) -> dict[str, torch.Tensor]:
    """The ``(B,)`` values of the usual wrong precision@k formulas."""
    hits = _share_of_top(s, e, 0, k) * k  # (B,)
    return {
        "recall: hits / |evidence|; precision@k divides the hits by k": hits / e.sum(1),
        "the evidence share of all L tokens; precision@k looks only at the k top-scored ones": e.double().mean(1),
        "the k lowest scores: sort in descending order (argsort(descending=True) or topk)": _share_of_top(-s, e, 0, k),
        "ranked by |score|: a strongly negative score is not a top score": _share_of_top(s.abs(), e, 0, k),
        "the number of hits: divide it by k": hits,
        "hits / min(k, |evidence|): precision@k divides by k": hits / e.sum(1).clamp(max=k),
        "the top k + 1 positions: slice [:, :k]": _share_of_top(s, e, 0, k + 1),
        "positions 1 … k of the ranking: the top-scored position (index 0) was skipped": _share_of_top(s, e, 1, k + 1),
        "the top k − 1 positions: slice [:, :k]": _share_of_top(s, e, 0, k - 1),
    }


def check_precision_at_k(candidate: Callable, seed: int | None = None) -> None:
    """``candidate(scores (B, L), evidence (B, L) bool, k) -> (B,)``: the share of each row's ``k``
    highest-scored tokens that are evidence (every position counts as a token; scores have no ties). A float32
    result is accepted to float32's precision."""
    from bigtut.explain.metrics import precision_at_k

    gen, seed = checker_generator(seed)
    name = "precision_at_k"
    if not callable(candidate):
        raise CheckFailure(f"{name}: expected a function, got {_describe(candidate)}")
    for B, L, k in ((6, 10, 1), (8, 12, 3), (5, 9, 6)):
        scores = torch.randn(B, L, generator=gen, dtype=torch.float64)  # (B, L): continuous, no ties
        evidence = torch.rand(B, L, generator=gen) < 0.3  # (B, L)
        evidence[:, 0] = True  # every row has evidence
        evidence[0] = False
        evidence[0, scores[0].argmax()] = True  # row 0: one evidence token, ranked first
        expected = torch.as_tensor(precision_at_k(scores.numpy(), evidence.numpy(), k=k))  # (B,)
        inputs = f"B={B} rows of L={L} random scores, k={k}, random evidence (seed={seed})"
        given = scores.clone(), evidence.clone()
        got = guarded(name, f"precision_at_k(scores, evidence, {k}) for {inputs}", candidate, *given, k)
        assert_not_modified(name, inputs, {"scores": (scores, given[0]), "evidence": (evidence, given[1])})
        if isinstance(got, torch.Tensor) and got.dim() == 0:
            raise CheckFailure(f"{name}: got one number ({got.item():.4g}) for {inputs}, expected one precision per "
                               f"row, shape ({B},): average over each row's top k, not over the batch")
        assert_close_or_hint(got, expected, what=name, inputs=inputs, atol=_precision_of(got), rtol=0.0, hint_atol=1e-6,
                             variants=partial(_precision_variants, scores, evidence, k))
    assert_does_not_use(name, candidate, {f: OWN_ANSWER.format(f"bigtut.explain's {f}")
                                          for f in ("precision_at_k", "top_k_sets")})
    passed(name, "random scores and evidence, k = 1, 3, 6")


def _precision_of(got: object) -> float:
    """The tolerance for a share of k tokens returned in ``got``'s dtype: float64 exact, float32 or float16 to their
    own rounding (a share is a multiple of 1/k, so any wrong share is still far off)."""
    dtype = got.dtype if isinstance(got, torch.Tensor) else torch.float64
    return {torch.float32: 1e-6, torch.float16: 1e-3, torch.bfloat16: 1e-2}.get(dtype, 1e-12)


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


def _rownorm(A: torch.Tensor, dim: int = -1) -> torch.Tensor:
    return A / A.sum(dim, keepdim=True)


def _rollout(attentions: list[torch.Tensor], *, heads: Callable = lambda A: A.mean(0), residual: bool = True,
             norm: str = "after", order: str = "last-left", dim: int = -1) -> torch.Tensor:
    """Attention rollout and its usual wrong variants: how the heads are merged, whether 0.5·I is added, where the
    rows are renormalised (``"after"`` the residual, ``"before"`` it, ``"none"``), which way the product goes."""
    R = None
    for A in attentions:
        merged = heads(A)  # (L, L)
        eye = torch.eye(A.shape[-1], dtype=A.dtype)
        if norm == "before":
            merged = _rownorm(merged, dim)
        A_hat = 0.5 * merged + 0.5 * eye if residual else merged
        if norm == "after":
            A_hat = _rownorm(A_hat, dim)
        R = A_hat if R is None else (A_hat @ R if order == "last-left" else R @ A_hat)
    return R


def _rollout_variants(a: list[torch.Tensor], expected: torch.Tensor) -> dict[str, Any]:
    """The ``(L, L)`` results of the usual wrong rollouts of the maps ``a`` (each computed only when asked for)."""
    h = a[0].shape[0]
    return {
        "no residual: Â = rownorm(0.5·A + 0.5·I), the 0.5·I (the skip connection) is missing":
            lambda: _rollout(a, residual=False),
        "the rows were not renormalised after adding 0.5·I (rows read after dropout do not sum to 1)":
            lambda: _rollout(a, norm="none"),
        "the rows were normalised before adding 0.5·I; normalise 0.5·A + 0.5·I itself":
            lambda: _rollout(a, norm="before"),
        "the columns were normalised (sum over dim −2); each row must sum to 1": lambda: _rollout(a, dim=-2),
        "the product runs the wrong way: R = Â_n ⋯ Â_1, the last layer on the left (R = Â @ R)":
            lambda: _rollout(a, order="first-left"),
        "the heads were merged by their maximum; rollout averages them": lambda: _rollout(a, heads=lambda A: A.amax(0)),
        "the heads were summed; rollout averages them": lambda: _rollout(a, heads=lambda A: A.sum(0)),
        "only the last layer: multiply the Â of every layer": lambda: _rollout(a[-1:]),
        "only the first layer: multiply the Â of every layer": lambda: _rollout(a[:1]),
        "the result is transposed: row i says how much token i draws on each token": lambda: expected.T,
        "a rollout per head, then averaged: average the heads first, in every layer":
            lambda: torch.stack([_rollout([A[i:i + 1] for A in a]) for i in range(h)]).mean(0),
    }


def check_rollout(candidate: Callable, seed: int | None = None) -> None:
    """``candidate(attentions) -> (L, L)``: attention rollout of one text, ``attentions`` a list of ``n``
    tensors ``(h, L, L)``, first layer first. Per layer ``A = mean over heads``, ``Â = 0.5·A + 0.5·I`` with
    every row renormalised to sum to 1, and ``R = Â_n ⋯ Â_2 Â_1`` (the last layer on the left)."""
    from bigtut.explain.attention_scores import attention_rollout

    gen, seed = checker_generator(seed)
    name = "rollout"
    if not callable(candidate):
        raise CheckFailure(f"{name}: expected a function, got {_describe(candidate)}")
    for n_layers, h, L, normalised in ((2, 3, 7, False), (3, 4, 6, True), (1, 2, 5, True), (4, 2, 5, False)):
        attentions = _random_attentions(gen, n_layers, h, L, normalised)
        expected = attention_rollout([a[None] for a in attentions])[0]  # (L, L)
        rows = "softmax rows" if normalised else "rows after dropout (not summing to 1)"
        inputs = f"{n_layers} layer(s) of {h} heads over L={L} tokens, {rows} (seed={seed})"
        given = [a.clone() for a in attentions]
        got = guarded(name, f"rollout(attentions) for {inputs}", candidate, given)
        assert_not_modified(name, inputs, {"attentions": (attentions, given)})
        assert_close_or_hint(got, expected, what=name, atol=1e-10, inputs=inputs,
                             variants=partial(_rollout_variants, attentions, expected))
    assert_does_not_use(name, candidate, {f: OWN_ANSWER.format(f"bigtut.explain's {f}")
                                          for f in ("attention_rollout", "rollout_scores")})
    passed(name, "1–4 layers, several heads, rows that do and do not sum to 1")
