"""Checkers for chapter 09 (evaluating explanations).

Each takes the student's function, compares it with :mod:`bigtut.explain.metrics`,
:mod:`bigtut.explain.attention_scores` or :mod:`bigtut.explain.sanity` on fresh random cases, and is built to catch
the usual mistakes (a failure names the input, what was expected, what came back and — when it is a known wrong
variant — the mistake):

=================================  ==========================================================================
checker                            what it holds the candidate to (and the usual mistake it catches)
=================================  ==========================================================================
``check_precision_at_k``           share of the k highest-scored tokens that are evidence (not hits / |evidence|,
                                   not the evidence share of all tokens, not the k *lowest* scores, not ranked by
                                   |score|, not the hit count, not k ± 1 positions, not the batch mean)
``check_rollout``                  R = Â_n ⋯ Â_1 with Â = rownorm(0.5·mean_h A + 0.5·I) (not without the
                                   residual, not without renormalising, not renormalised before the residual, not
                                   the product in the wrong order, not max/sum over heads, not one layer, not
                                   transposed)
``check_comprehensiveness``        ERASER's p(x) − p(x without its top ⌈f·n⌉ removable tokens) on a tiny random
                                   BERT classifier: deleted by attention mask 0 (not replaced by [PAD], not moved
                                   left), ranked by the signed score (not |score|, not the bottom k, ties to the
                                   earlier position), padding and keep_ids never ranked, k over the removable
                                   tokens and rounded up, the target's softmax probability (not logits, log-probs,
                                   a sigmoid, a softmax over the batch, the argmax class), the sign p(x) − p(x′)
                                   (not divided by p(x)); a list of floats or float32 is read as such
``check_sufficiency``              p(x) − p(only the top ⌈f·n⌉ removable tokens and the keep_ids ones): the same
                                   mistakes, plus the keep_ids tokens deleted too, or kept under the padding,
                                   or comprehensiveness computed
``check_cascading_randomisation``  Adebayo et al.'s cascade as ``randomisation_check``: a deep copy (the caller's
                                   model untouched), randomised cumulatively from the top down, biases 0,
                                   LayerNorm scales 1, weights N(0, std²) in float64 from one seeded generator;
                                   Spearman of |scores| with the trained model's over each row's real tokens (not
                                   independent steps, not bottom-up, not Pearson/Kendall, not signed, not with
                                   padding, not against the previous step, not re-seeded, not a global seed, not
                                   the trained model as a row)
=================================  ==========================================================================

All hand the candidate copies of their tensors and fail it if it changed them in place, and fail an answer that
calls the course's own implementation (``bigtut.explain``'s ``precision_at_k``, ``attention_rollout``,
``comprehensiveness``, ``sufficiency``, ``randomisation_check``).
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
import torch
from scipy import stats

from bigtut.checks.core import (
    CheckFailure,
    _as_float64,
    _describe,
    assert_close_or_hint,
    assert_unchanged,
    checker_generator,
    guarded,
    passed,
)
from bigtut.checks.forbidden import OWN_ANSWER, assert_does_not_use

__all__ = ["check_cascading_randomisation", "check_comprehensiveness", "check_precision_at_k", "check_rollout",
           "check_sufficiency"]


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
        got = _as_numbers(guarded(name, f"precision_at_k(scores, evidence, {k}) for {inputs}", candidate, *given, k))
        assert_unchanged(name, inputs, {"scores": (scores, given[0]), "evidence": (evidence, given[1])})
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


def _as_numbers(got: Any) -> Any:
    """A list or tuple the candidate returned (of Python floats, say ``[p - q for …]`` after ``.item()``) as a
    float64 tensor — ``torch.as_tensor`` would read Python floats in float32 and fail a right answer; anything else
    as it is (a tensor or an array keeps its dtype, and what is not numbers is reported by the comparison)."""
    if isinstance(got, (list, tuple)):
        value = _as_float64(got)
        return got if value is None else value
    return got


def _tolerance_of(got: Any, atol: float) -> float:
    """``atol`` for a float64 answer; 1e-6 for a float32 one (its own rounding: every usual mistake is further off)."""
    single = ((isinstance(got, torch.Tensor) and got.dtype == torch.float32)
              or (isinstance(got, np.ndarray) and got.dtype == np.float32))
    return 1e-6 if single else atol


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
        assert_unchanged(name, inputs, {"attentions": (attentions, given)})
        assert_close_or_hint(got, expected, what=name, atol=1e-10, inputs=inputs,
                             variants=partial(_rollout_variants, attentions, expected))
    assert_does_not_use(name, candidate, {f: OWN_ANSWER.format(f"bigtut.explain's {f}")
                                          for f in ("attention_rollout", "rollout_scores")})
    passed(name, "1–4 layers, several heads, rows that do and do not sum to 1")


# ------------------------------------------------------------------------ ERASER: comprehensiveness, sufficiency
PAD, CLS, SEP = 0, 1, 2  # the tiny vocabulary of the classifiers below: [PAD], [CLS], [SEP], then words 3 … 23
_VOCAB = 24


def _tiny_bert_classifier(gen: torch.Generator, num_layers: int, num_labels: int = 3,
                          std: float = 0.5) -> torch.nn.Module:
    """A random :class:`~bigtut.bert.BertForSequenceClassification` that follows the classifier contract: float64,
    eval mode, no dropout, weights ``N(0, std²)`` from ``gen`` (large enough that deleting a token moves the output),
    LayerNorms at identity. Building it leaves torch's global random state alone."""
    from bigtut.bert import BertConfig, BertForSequenceClassification

    config = BertConfig(vocab_size=_VOCAB, max_len=32, d_model=16, num_layers=num_layers, num_heads=2, d_ff=32,
                        dropout=0.0, pad_id=PAD, num_labels=num_labels)
    with torch.random.fork_rng(devices=[]):  # the constructor initialises from the global generator
        model = BertForSequenceClassification(config).double().eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".norm" not in name:
                p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float64) * std)
    return model


def _token_batch(gen: torch.Generator, lengths: tuple[int, ...], L: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``[CLS] words [SEP]`` rows of the given ``lengths``, right-padded to ``L``: ``(input_ids, attention_mask)``,
    both ``(B, L)`` long. A row of length 2 has no word."""
    ids = torch.full((len(lengths), L), PAD, dtype=torch.long)  # (B, L)
    mask = torch.zeros(len(lengths), L, dtype=torch.long)  # (B, L)
    for b, n in enumerate(lengths):
        ids[b, :n] = torch.randint(SEP + 1, _VOCAB, (n,), generator=gen)
        ids[b, 0], ids[b, n - 1] = CLS, SEP
        mask[b, :n] = 1
    return ids, mask


def _erasure_cases(gen: torch.Generator) -> list[tuple[str, dict[str, Any]]]:
    """Three batches for a tiny classifier with 3 classes: continuous scores, scores with ties, and a batch where
    [SEP] is removable. Scores at padding and at [CLS]/[SEP] are raised so that ranking them changes the answer."""
    cases = []
    for B, L, lengths, fraction, keep_ids, tied in (
            (6, 12, (12, 9, 7, 5, 2, 11), 0.2, (CLS, SEP), False),
            (5, 10, (10, 8, 6, 9, 4), 0.5, (CLS, SEP), True),
            (3, 24, (24, 17, 9), 0.1, (CLS,), False)):
        ids, mask = _token_batch(gen, lengths, L)
        if not tied and B == 3:  # word ids under the padding: only attention_mask says what is real
            ids = torch.where(mask.bool(), ids, torch.randint(SEP + 1, _VOCAB, (B, L), generator=gen))
            ids[1:, -1] = CLS  # a keep_ids id under the padding: kept only where it is real
        if tied:
            scores = torch.randint(-1, 2, (B, L), generator=gen).double()  # (B, L): many equal scores
            scores[0] = 0.0  # row 0: every word ties, so which k of its n words go is decided by the ties alone
        else:
            scores = torch.randn(B, L, generator=gen, dtype=torch.float64)  # (B, L)
        not_words = (mask == 0) | torch.isin(ids, torch.tensor((CLS, SEP)))
        scores = scores + 2.0 * not_words  # (B, L): padding and special tokens would rank high if ranked
        target = torch.randint(0, 3, (B,), generator=gen)  # (B,)
        kind = "integer scores with ties" if tied else "random scores"
        under = "word ids and [CLS]" if bool((ids[mask == 0] != PAD).any()) else "[PAD]"
        what = (f"B={B} rows of L={L} ids, real lengths {list(lengths)} ({under} under the padding), {kind}, "
                f"fraction={fraction}, keep_ids={keep_ids} ([CLS]={CLS}, [SEP]={SEP}, [PAD]={PAD})")
        cases.append((what, dict(input_ids=ids, attention_mask=mask, scores=scores, target=target, fraction=fraction,
                                 keep_ids=keep_ids)))
    return cases


def _erased(model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor, scores: torch.Tensor,
            target: torch.Tensor, fraction: float, keep_ids: tuple[int, ...], *, present: bool = False,
            rank: str = "score", ties: str = "earlier", removable: str = "words", count: str = "removable",
            rounding: str = "ceil", removal: str = "mask", output: str = "probability", sign: float = 1.0,
            drop_kept: bool = False, full_mask: bool = True, predicted: bool = False,
            padding_seen: bool = False, real_by_id: bool = False, kept_anywhere: bool = False) -> torch.Tensor:
    """ERASER's ``p(x) − p(x′)`` ``(B,)`` (``present``: sufficiency) and its usual wrong variants: which positions are
    ranked (``removable``), by what (``rank``), ties, the ``count`` k is a share of and its ``rounding``, how a token
    is removed (``removal``), which ``output`` is compared, the ``sign``; ``drop_kept``: sufficiency without the
    kept tokens; ``full_mask=False``: ``p(x)`` with the padding attended; ``predicted``: the argmax class in place of
    ``target``; ``padding_seen``: ``x′`` with attention_mask 1 on the padding; ``real_by_id``: real tokens taken
    to be those whose id is not [PAD]; ``kept_anywhere``: sufficiency's keep_ids tokens kept under the padding too;
    ``count="batch"``: n counted over the whole batch; ``output="normalised"``: ``(p(x) − p(x′)) / p(x)``."""
    B, L = input_ids.shape
    real = input_ids != PAD if real_by_id else attention_mask.bool()  # (B, L)
    kept = torch.isin(input_ids, torch.tensor(keep_ids, dtype=input_ids.dtype))  # (B, L)
    words = real & ~kept  # (B, L): what bigtut may remove
    ranked = {"words": words, "padding too": ~kept, "special too": real}[removable]  # (B, L)
    n = {"removable": ranked.sum(1), "real": real.sum(1), "length": torch.full((B,), L),
         "batch": ranked.sum().expand(B)}[count]  # (B,)
    key = {"score": scores, "magnitude": scores.abs(), "lowest": -scores}[rank]  # (B, L)
    new_mask = torch.zeros(B, L, dtype=torch.bool)  # (B, L)
    for b in range(B):
        share = fraction * int(n[b])
        k = {"ceil": math.ceil(share - 1e-9), "floor": math.floor(share), "round": round(share),
             "count": math.ceil(fraction)}[rounding]
        positions = [i for i in range(L) if ranked[b, i]]
        positions.sort(key=lambda i: (-float(key[b, i]), i if ties == "earlier" else -i))
        positions += [i for i in range(L) if not ranked[b, i]]  # where a k above n reaches, as a sort would
        top = torch.zeros(L, dtype=torch.bool)
        top[positions[:k]] = True
        if present:
            new_mask[b] = top if drop_kept else top | (kept[b] if kept_anywhere else real[b] & ~ranked[b])
        else:
            new_mask[b] = real[b] & ~top
    if padding_seen:
        new_mask |= ~real
    ids, mask = input_ids, new_mask.long()
    if removal == "pad":  # the token replaced by [PAD], still attended
        ids, mask = input_ids.masked_fill(real & ~new_mask, PAD), attention_mask
    elif removal == "compact":  # the tokens left moved to the front, their positions changed
        order = torch.argsort((~new_mask).to(torch.int8), dim=1, stable=True)  # (B, L)
        mask = new_mask.gather(1, order)
        ids, mask = input_ids.gather(1, order).masked_fill(~mask, PAD), mask.long()
    with torch.no_grad():
        full = model(input_ids, attention_mask=attention_mask if full_mask else torch.ones_like(attention_mask))
        logits = torch.cat([full, model(ids, attention_mask=mask)])  # (2B, C)
    rows = torch.arange(2 * B)
    picked = torch.cat([full.argmax(-1) if predicted else target] * 2)  # (2B,)
    value = {"probability": lambda z: z.softmax(-1)[rows, picked], "logit": lambda z: z[rows, picked],
             "log-probability": lambda z: z.log_softmax(-1)[rows, picked],
             "sigmoid": lambda z: z[rows, picked].sigmoid(),
             "batch softmax": lambda z: torch.cat([z[:B].softmax(0), z[B:].softmax(0)])[rows, picked],
             "normalised": lambda z: z.softmax(-1)[rows, picked]}[output](logits)
    if output == "normalised":
        return sign * (value[:B] - value[B:]) / value[:B]  # (B,)
    return sign * (value[:B] - value[B:])  # (B,)


_REMOVAL_HINTS = {
    "the k lowest-scored tokens were removed: rank by decreasing score and take the top k": dict(rank="lowest"),
    "ranked by |score|: bigtut ranks by the signed score (a strongly negative token matters least, not most)":
        dict(rank="magnitude"),
    "padding took part in the ranking: only real tokens (attention_mask 1) not in keep_ids are removable":
        dict(removable="padding too"),
    "the keep_ids tokens ([CLS], [SEP]) were ranked: they are never removed, and n counts only the removable tokens":
        dict(removable="special too"),
    "k was counted over all real tokens, keep_ids included: k = ⌈fraction · n⌉ with n the row's removable tokens":
        dict(count="real"),
    "k was counted over the padded length L: k = ⌈fraction · n⌉ with n the row's removable tokens":
        dict(count="length"),
    "n was counted over the whole batch: each row's k = ⌈fraction · n⌉ comes from its own n removable tokens":
        dict(count="batch"),
    "k = ⌊fraction · n⌋: round up, k = ⌈fraction · n⌉": dict(rounding="floor"),
    "k = round(fraction · n): round up, k = ⌈fraction · n⌉": dict(rounding="round"),
    "fraction used as a number of tokens: it is a share, k = ⌈fraction · n⌉": dict(rounding="count"),
    "ties went to the later position: among equal scores the earlier position ranks first (a stable sort)":
        dict(ties="later"),
    "logits were compared: ERASER compares the target's softmax probability": dict(output="logit"),
    "log-probabilities were compared: ERASER compares the target's softmax probability":
        dict(output="log-probability"),
    "sigmoid of the target logit: the probability is the softmax over the C classes": dict(output="sigmoid"),
    "the softmax ran over the batch (dim 0): take it over the classes (dim −1)": dict(output="batch softmax"),
    "the sign is flipped: the score is p(x) − p(x′), the full input first": dict(sign=-1.0),
    "the drop was divided by p(x): ERASER's score is the plain difference p(x) − p(x′)": dict(output="normalised"),
    "the tokens were replaced by [PAD] (id 0) and still attended: delete them — attention_mask 0":
        dict(removal="pad"),
    "the remaining tokens were moved left (new positions): bigtut deletes by attention_mask 0 and every token keeps "
    "its position": dict(removal="compact"),
    "p(x) was computed without the attention mask (the padding attended): pass attention_mask for the full input "
    "too": dict(full_mask=False),
    "the predicted class (argmax) was followed: follow the given target": dict(predicted=True),
    "the padding became visible in x′ (attention_mask 1 there): start from the real tokens, attention_mask 1":
        dict(padding_seen=True),
    "real tokens were found by their id (≠ [PAD]): attention_mask says which tokens are real (padding may hold any "
    "id)": dict(real_by_id=True),
}


def _erasure_variants(model: torch.nn.Module, case: dict[str, Any], present: bool) -> dict[str, Callable]:
    """The ``(B,)`` results of the usual wrong comprehensiveness (``present=False``) or sufficiency answers."""
    run = partial(_erased, model, **case)
    variants = {label: partial(run, present=present, **options) for label, options in _REMOVAL_HINTS.items()}
    if present:
        variants["comprehensiveness was computed: sufficiency keeps ONLY the top k removable tokens (and the kept "
                 "ones) and deletes the rest"] = partial(run, present=False)
        variants["keep_ids tokens were deleted too: sufficiency keeps the top k AND the keep_ids tokens"] = partial(
            run, present=True, drop_kept=True)
        variants["keep_ids tokens under the padding were made visible: keep the keep_ids tokens that are real "
                 "(attention_mask 1) — the padding stays deleted, whatever id it holds"] = partial(
            run, present=True, kept_anywhere=True)
    else:
        variants["sufficiency was computed: comprehensiveness deletes the top k and keeps the rest"] = partial(
            run, present=True)
    return variants


def _check_erasure(candidate: Callable, seed: int | None, present: bool) -> None:
    """The shared body of :func:`check_comprehensiveness` and :func:`check_sufficiency`."""
    from bigtut.explain import metrics

    name = "sufficiency" if present else "comprehensiveness"
    reference = metrics.sufficiency if present else metrics.comprehensiveness
    gen, seed = checker_generator(seed)
    if not callable(candidate):
        raise CheckFailure(f"{name}: expected a function, got {_describe(candidate)}")
    model = _tiny_bert_classifier(gen, num_layers=2)
    for what, case in _erasure_cases(gen):
        inputs = f"a random 2-layer BERT classifier (3 classes, float64), {what} (seed={seed})"
        expected = torch.as_tensor(reference(model, case["input_ids"], case["attention_mask"], case["scores"],
                                             target=case["target"], fraction=case["fraction"],
                                             keep_ids=case["keep_ids"]))  # (B,)
        given = {key: value.clone() if isinstance(value, torch.Tensor) else value for key, value in case.items()}
        got = _as_numbers(guarded(name, f"{name}(model, input_ids, attention_mask, scores, target, fraction, "
                                        f"keep_ids) for {inputs}", candidate, model, *given.values()))
        assert_unchanged(name, inputs, {key: (case[key], given[key])
                                        for key in ("input_ids", "attention_mask", "scores", "target")})
        if isinstance(got, torch.Tensor) and got.dim() == 0:
            raise CheckFailure(f"{name}: got one number ({got.item():.4g}) for {inputs}, expected one score per row, "
                               f"shape ({len(expected)},): do not average over the batch")
        try:
            assert_close_or_hint(got, expected, what=name, inputs=inputs, atol=_tolerance_of(got, 1e-9), rtol=0.0,
                                 variants=partial(_erasure_variants, model, case, present))
        except CheckFailure as failure:
            if "Hint:" in str(failure) or "ties" not in what:
                raise
            raise CheckFailure(f"{failure}\n  Hint: this batch has tied scores (the batch before had none): among "
                               f"equal scores the earlier position ranks first — torch.argsort(..., "
                               f"descending=True, stable=True); topk and unstable sorts break ties in no fixed "
                               f"order.") from None
    banned = ("comprehensiveness", "sufficiency", "aopc", "deletion_curve", "insertion_curve", "top_k_sets")
    assert_does_not_use(name, candidate, {f: OWN_ANSWER.format(f"bigtut.explain's {f}") for f in banned})
    what = "kept, the rest deleted" if present else "deleted"
    passed(name, f"a random tiny BERT classifier, top ⌈f·n⌉ removable tokens {what}, f = 0.1, 0.2, 0.5, ties, "
                 "padding, keep_ids")


def check_comprehensiveness(candidate: Callable, seed: int | None = None) -> None:
    """``candidate(model, input_ids (B, L), attention_mask (B, L), scores (B, L), target (B,), fraction, keep_ids)
    -> (B,)``: ERASER's comprehensiveness as :func:`bigtut.explain.metrics.comprehensiveness` computes it —
    ``p(x) − p(x without its top k removable tokens)``, p the target's softmax probability, a row's removable tokens
    its real ones (attention_mask 1) whose id is not in ``keep_ids``, ranked by decreasing score (ties: the earlier
    position first), ``k = ⌈fraction · n⌉`` of its ``n`` removable tokens, deleted by setting attention_mask to 0."""
    _check_erasure(candidate, seed, present=False)


def check_sufficiency(candidate: Callable, seed: int | None = None) -> None:
    """``candidate(...)`` as for :func:`check_comprehensiveness` ``-> (B,)``: ERASER's sufficiency as
    :func:`bigtut.explain.metrics.sufficiency` computes it — ``p(x) − p(only the top k removable tokens and the
    keep_ids tokens)``: every other real token deleted (attention_mask 0)."""
    _check_erasure(candidate, seed, present=True)


# ------------------------------------------------------------------------------ cascading model randomisation
def _bert_cascade(model: torch.nn.Module) -> list[str]:
    """The submodules a BERT classifier's cascade randomises, top first — what
    :func:`bigtut.explain.sanity.randomisation_check` finds on its own: ``classifier``, ``bert.pooler``, the
    encoder layers from the last to the first, then ``bert.embeddings`` (every parameter left)."""
    layers = [f"bert.layers.{i}" for i in reversed(range(len(model.bert.layers)))]
    return ["classifier", "bert.pooler", *layers, "bert.embeddings"]


def _redraw_module(module: torch.nn.Module, generator: torch.Generator, std: float, mode: str = "right") -> None:
    """Redraw ``module``'s parameters in ``parameters()`` order: biases 0, LayerNorm scales 1, other weights
    ``N(0, std²)`` drawn in float64 from ``generator`` — or a usual wrong way (``mode``): every parameter drawn
    (``"all"``), a draw for every parameter but biases and scales reset afterwards (``"draw, then reset"``), the
    weights drawn without the std (``"no std"``) or in float32 (``"float32"``), the LayerNorm scales drawn
    (``"norms drawn"``)."""
    with torch.no_grad():
        for owner in module.modules():
            for name, p in owner.named_parameters(recurse=False):
                kind = "bias" if name == "bias" else "scale" if "Norm" in type(owner).__name__ else "weight"
                drawn = kind == "weight" or mode == "all" or (mode == "norms drawn" and kind == "scale")
                if drawn or mode == "draw, then reset":
                    z = torch.randn(p.shape, generator=generator,
                                    dtype=torch.float32 if mode == "float32" else torch.float64)
                    p.copy_(z.to(p) * (1.0 if mode == "no std" else std))
                if not drawn:
                    p.fill_(0.0 if kind == "bias" else 1.0)


def _correlations(a: np.ndarray, b: np.ndarray, real: np.ndarray, how: str = "spearman") -> np.ndarray:
    """Per-row rank (or linear) correlation ``(B,)`` of ``a`` and ``b`` ``(B, L)`` over the ``real`` positions."""
    function = {"spearman": stats.spearmanr, "pearson": stats.pearsonr, "kendall": stats.kendalltau}[how]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a constant row gives NaN: such a variant is simply not the answer
        return np.array([function(x[r], y[r]).statistic for x, y, r in zip(a, b, real)])


def _cascade(model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor, explain_fn: Callable,
             target: torch.Tensor, seed: int, std: float, *, order: str = "top-down", cascading: bool = True,
             reseed: bool = False, mode: str = "right", how: str = "spearman", magnitude: bool = True,
             over: str = "real", against: str = "original", skip: str | None = None) -> np.ndarray:
    """The cascade ``(S, B)`` and its usual wrong variants: the ``order`` of the steps, randomisations that do not
    accumulate (``cascading=False``), the generator ``reseed``-ed at every step, how weights are redrawn
    (``mode``), the correlation (``how``, on |scores| or signed, over the ``real`` tokens or ``"all"``
    positions), compared with the ``"original"`` explanation or the ``"previous"`` step's, a step left out."""
    explain = partial(_explained_scores, explain_fn, input_ids=input_ids, attention_mask=attention_mask, target=target)
    names = _bert_cascade(model)
    if order == "bottom-up":
        names = names[::-1]
    elif order == "layers first to last":
        names = names[:2] + names[2:-1][::-1] + names[-1:]
    names = [step for step in names if step != skip]
    real = attention_mask.bool().numpy() if over == "real" else np.ones(tuple(input_ids.shape), dtype=bool)
    reference = explain(model)  # (B, L)
    generator, randomised, rows = torch.Generator().manual_seed(seed), copy.deepcopy(model), []
    for step in names:
        if not cascading:
            randomised = copy.deepcopy(model)
        if reseed:
            generator = torch.Generator().manual_seed(seed)
        _redraw_module(randomised.get_submodule(step), generator, std, mode)
        scores = explain(randomised)  # (B, L)
        shown = (np.abs(reference), np.abs(scores)) if magnitude else (reference, scores)
        rows.append(_correlations(*shown, real, how))
        if against == "previous":
            reference = scores
    return np.array(rows)  # (S, B)


def _explained_scores(explain_fn: Callable, model: torch.nn.Module, *, input_ids: torch.Tensor,
                      attention_mask: torch.Tensor, target: torch.Tensor) -> np.ndarray:
    return np.asarray(explain_fn(model, input_ids, attention_mask, target=target), dtype=np.float64)


def _cascade_variants(model: torch.nn.Module, case: dict[str, Any], seed: int) -> dict[str, Callable]:
    """The ``(S, B)`` (or ``(S − 1, B)``) results of the usual wrong cascades."""
    run = partial(_cascade, model, **case)
    return {
        "the randomisations do not accumulate: each step must keep the layers randomised before it (one copy, "
        "randomised further at every step)": partial(run, cascading=False),
        "the randomisations do not accumulate (a fresh copy and a re-seeded generator at every step): each step must "
        "keep the layers randomised before it": partial(run, cascading=False, reseed=True),
        "bottom-up: the cascade starts at the top (classifier, pooler) and goes down to the embeddings":
            partial(run, order="bottom-up"),
        "the encoder layers went from the first to the last: the cascade goes down, the last layer first":
            partial(run, order="layers first to last"),
        "Pearson's r: the check uses Spearman's rank correlation": partial(run, how="pearson"),
        "Kendall's τ: the check uses Spearman's rank correlation": partial(run, how="kendall"),
        "signed attributions were correlated: bigtut correlates |attributions| (a sign flip is not a new "
        "explanation)": partial(run, magnitude=False),
        "padding took part in the correlation: correlate each row over its real tokens (attention_mask 1)":
            partial(run, over="all"),
        "each step was compared with the previous step: compare every step with the trained model's explanation":
            partial(run, against="previous"),
        "the generator was re-seeded at every step: seed one torch.Generator once and draw every step from it":
            partial(run, reseed=True),
        "the seed was not used: torch.Generator().manual_seed(seed)": partial(run, seed=0 if seed else 1),
        "biases and LayerNorm scales were drawn at random too: biases 0, LayerNorm scales 1": partial(run, mode="all"),
        "random numbers were drawn for the biases and LayerNorm scales too (then reset): draw only for the weights, "
        "or the stream shifts": partial(run, mode="draw, then reset"),
        "LayerNorm scales were drawn at random: set them to 1 (and biases to 0)": partial(run, mode="norms drawn"),
        "std was ignored: the weights are N(0, std²), torch.randn(...) * std": partial(run, mode="no std"),
        "the weights were drawn in float32: draw torch.randn(..., dtype=torch.float64) (then * std)":
            partial(run, mode="float32"),
        "the pooler step is missing: classifier, pooler, the layers last to first, then the embeddings":
            partial(run, skip="bert.pooler"),
        "the embeddings step is missing: the cascade ends by randomising bert.embeddings":
            partial(run, skip="bert.embeddings"),
        "the classifier step is missing: the cascade starts with the classifier": partial(run, skip="classifier"),
        "every ρ is 1: the trained model was explained at every step — call explain_fn on the randomised copy":
            lambda: np.ones((len(_bert_cascade(model)), len(case["input_ids"]))),
    }


def _state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {key: value.detach().clone() for key, value in model.state_dict().items()}


def check_cascading_randomisation(candidate: Callable, seed: int | None = None) -> None:
    """``candidate(model, input_ids (B, L), attention_mask (B, L), explain_fn, target (B,), seed, std) -> (S, B)``:
    Adebayo et al.'s cascading randomisation of a BERT classifier as
    :func:`bigtut.explain.sanity.randomisation_check` runs it — on a deep copy, cumulatively from the top down
    (``classifier``, ``bert.pooler``, ``bert.layers`` last to first, ``bert.embeddings``), each step's parameters
    redrawn (biases 0, LayerNorm scales 1, other weights ``torch.randn(shape, generator, float64) * std``, one
    ``torch.Generator().manual_seed(seed)`` for the whole cascade), and after each step Spearman's ρ of
    |explain_fn| with the trained model's, per row over its real tokens. The caller's model must be left alone."""
    from bigtut.explain import gradient_x_input
    from bigtut.explain.sanity import randomisation_check

    gen, seed = checker_generator(seed)
    name = "cascading_randomisation"
    if not callable(candidate):
        raise CheckFailure(f"{name}: expected a function, got {_describe(candidate)}")

    def explain_fn(model, input_ids, attention_mask, *, target):  # gradient × input, (B, L) float64
        return torch.as_tensor(gradient_x_input(model, input_ids, attention_mask, target=target).attributions)

    for num_layers, lengths, L, std in ((2, (10, 8, 6), 10, 0.02), (1, (9, 9, 7, 5), 9, 0.5)):
        model = _tiny_bert_classifier(gen, num_layers)
        input_ids, attention_mask = _token_batch(gen, lengths, L)
        target = torch.randint(0, 3, (len(lengths),), generator=gen)  # (B,)
        cascade_seed = int(torch.randint(1, 10_000, (), generator=gen))
        case = dict(input_ids=input_ids, attention_mask=attention_mask, explain_fn=explain_fn, target=target,
                    seed=cascade_seed, std=std)
        expected = torch.as_tensor(randomisation_check(model, input_ids, attention_mask, explain_fn=explain_fn,
                                                       target=target, seed=cascade_seed, std=std).spearman)  # (S, B)
        steps = ", ".join(_bert_cascade(model))
        inputs = (f"a random {num_layers}-layer BERT classifier (cascade: {steps}), B={len(lengths)} rows of L={L} "
                  f"ids, real lengths {list(lengths)}, gradient × input, seed={cascade_seed}, std={std} "
                  f"(checker seed={seed})")
        before, given = _state(model), (input_ids.clone(), attention_mask.clone(), target.clone())
        global_state = torch.random.get_rng_state()
        got = _as_numbers(guarded(name, f"{name}(model, input_ids, attention_mask, explain_fn, target, {cascade_seed}, "
                                        f"{std}) for {inputs}", candidate, model, given[0], given[1], explain_fn,
                                  given[2], cascade_seed, std))
        after = _state(model)
        if before.keys() != after.keys() or any(not torch.equal(before[k], after[k]) for k in before):
            raise CheckFailure(f"{name}: the caller's model was changed for {inputs} — randomise a copy "
                               f"(copy.deepcopy(model)), never the model you were given (copy.copy shares its weights)")
        assert_unchanged(name, inputs, {"input_ids": (input_ids, given[0]),
                                        "attention_mask": (attention_mask, given[1]), "target": (target, given[2])})
        if not torch.equal(torch.random.get_rng_state(), global_state):
            raise CheckFailure(f"{name}: torch's global random state changed for {inputs} — torch.manual_seed or "
                               f"torch.randn without generator=: draw from torch.Generator().manual_seed(seed)")
        values = _as_float64(got)
        S, B = expected.shape
        if values is not None and tuple(values.shape) == (B, S) and S != B:
            raise CheckFailure(f"{name}: got shape {(B, S)} for {inputs}, expected (S, B) = {(S, B)}: one row per "
                               f"randomisation step, one column per text")
        if values is not None and tuple(values.shape) == (S + 1, B):
            raise CheckFailure(f"{name}: got {S + 1} rows for {inputs}, expected S = {S}, one per randomisation step: "
                               f"the trained model itself is not a step (its ρ with itself is 1), and each of the {S} "
                               f"steps ({steps}) comes once")
        if values is not None and tuple(values.shape) == (S,):
            raise CheckFailure(f"{name}: got shape ({S},) for {inputs}, expected (S, B) = {(S, B)}: one Spearman ρ "
                               f"per text and step (over that text's real tokens), not one over the whole batch")
        assert_close_or_hint(got, expected, what=name, inputs=inputs, atol=_tolerance_of(got, 1e-9), rtol=0.0,
                             variants=partial(_cascade_variants, model, case, cascade_seed))
    banned = ("randomisation_check", "_layer_groups", "_redraw")
    assert_does_not_use(name, candidate, {f: OWN_ANSWER.format(f"bigtut.explain's {f}") for f in banned})
    passed(name, "random 1- and 2-layer BERT classifiers, gradient × input, top-down cascade on a copy, Spearman "
                 "of |scores| over real tokens")
