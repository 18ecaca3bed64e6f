"""How good is a token attribution? Faithfulness (does the model need the tokens ranked high?), plausibility
(are the planted evidence tokens ranked high?), and agreement of two rankings. The checks of a *method*
(model randomisation, stability across seeds) live in :mod:`bigtut.explain.sanity`.

Shape legend:  B batch   L positions   K points of a curve   F fractions   C classes

Every function takes one padded batch and the ``attributions`` ``(B, L)`` of any method: its result as it comes
(the ``.attributions`` field is read), or a tensor or array. It returns NumPy float64. The model follows the
classifier contract: ``model(input_ids, attention_mask=...)`` -> ``(B, C)``.

**Probabilities by default.** The methods explain the logit (``probabilities=False``: attributions add up to
logit differences); these scores follow their papers (ERASER, DeYoung et al., 2020; ferret) and measure the
drop of the target's softmax **probability** (``probabilities=True``), which stays in [-1, 1] and compares
across models. Pass ``probabilities=False`` to follow the logit instead.

Removing a token means **deleting** it: its ``attention_mask`` entry becomes 0, and the contract makes a
masked position invisible (the other tokens keep their positions). This is not replacing it by [MASK] or [PAD],
which the model still sees and reacts to. Tokens whose id is in ``keep_ids`` (say [CLS], [SEP]) or whose
position is set in ``keep`` ``(B, L)`` are never removed and never ranked; padding takes no part. What is left
are a row's ``n`` *removable* tokens, ranked by decreasing score (ties: the earlier position first). A model
that cannot take an empty row (GPTClassifier) needs at least one kept token per row.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from scipy import stats

from bigtut.explain.arguments import (
    check_budget,
    check_flag,
    check_keep_ids,
    check_same_shape,
    check_target_rows,
    check_token_batch,
    resolve_batch_size,
)
from bigtut.explain.common import as_numpy, attributions_of, logits_of, select_target

__all__ = ["ERASER_FRACTIONS", "FERRET_FRACTIONS", "Agreement", "Curve", "aopc", "auprc", "comprehensiveness",
           "deletion_curve", "insertion_curve", "precision_at_k", "rank_agreement", "recall_at_k", "sufficiency",
           "token_f1", "top_k_sets"]

ERASER_FRACTIONS = (0.01, 0.05, 0.10, 0.20, 0.50)  # ERASER's AOPC bins (DeYoung et al., 2020)
FERRET_FRACTIONS = tuple(float(f) for f in np.round(np.arange(0.1, 1.01, 0.1), 2))  # ferret's 10 %, ..., 100 %
DEFAULT_GRID = np.linspace(0.0, 1.0, 11)  # (11,): where steps=None curves are read


class Curve(NamedTuple):
    """``fractions`` ``(K,)`` of the removable tokens deleted (deletion) or present (insertion), the explained
    output ``values`` ``(B, K)`` there, and the ``area`` ``(B,)`` under each row's curve."""

    fractions: np.ndarray
    values: np.ndarray
    area: np.ndarray


class Agreement(NamedTuple):
    """Rank correlations ``(B,)`` of two attributions per row (NaN where a row is constant or too short)."""

    spearman: np.ndarray
    kendall: np.ndarray


def _scores(scores: Any, shape: tuple[int, int] | None = None, name: str = "attributions") -> np.ndarray:
    """``scores`` (a method's result, a tensor or an array) as a finite float64 ``(B, L)`` array, of the given
    ``shape`` when there is one."""
    values = attributions_of(scores, name)
    if values.ndim != 2 or (shape is not None and values.shape != tuple(shape)):
        raise ValueError(f"{name} must have shape {'(B, L)' if shape is None else tuple(shape)}, got {values.shape}")
    if values.size == 0:
        raise ValueError(f"{name} must hold at least one row and one position, got shape {values.shape}")
    if not np.isfinite(values).all():
        raise ValueError(f"{name} must be finite, got NaN or inf")
    return values


def _real(mask: Any, shape: tuple[int, int], name: str = "mask") -> np.ndarray:
    """Real positions ``(B, L)`` bool: ``mask`` (1/True = real) or, without one, all True."""
    if mask is None:
        return np.ones(shape, dtype=bool)
    check_same_shape(mask, np.empty(shape), name, "the attributions")
    values = as_numpy(mask)
    if not np.isin(values, (0, 1)).all():
        raise ValueError(f"{name} must hold 0/1 or True/False, got other values")
    return values != 0


def _ranks(scores: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """Rank ``(B, L)`` of every position by decreasing score among ``allowed`` ones (0 = best; ties: the earlier
    position first); positions not allowed rank after all allowed ones."""
    key = np.where(allowed, -scores, np.inf)  # (B, L): ascending key = descending score
    order = np.argsort(key, axis=1, kind="stable")  # (B, L): positions, best first
    return np.argsort(order, axis=1)  # (B, L): the inverse permutation


def top_k_sets(scores: np.ndarray, allowed: np.ndarray, k: np.ndarray) -> np.ndarray:
    """``(B, L)`` bool: the ``k[b]`` highest-scored ``allowed`` positions of each row (ties: the earlier first)."""
    return _ranks(scores, allowed) < k[:, None]


def _check_fractions(fractions: Iterable[Any]) -> np.ndarray:
    """``fractions`` as a non-empty float64 array ``(F,)`` of numbers in ``(0, 1]``."""
    if isinstance(fractions, (str, bytes)) or not hasattr(fractions, "__iter__"):
        raise TypeError(f"fractions must be a sequence of numbers in (0, 1], got {fractions!r}")
    fractions = list(fractions)
    for f in fractions:
        if isinstance(f, (bool, np.bool_)) or not isinstance(f, (int, float, np.integer, np.floating)) \
                or not 0 < f <= 1:
            raise ValueError(f"fraction must be a number in (0, 1], got {f!r}")
    if not fractions:
        raise ValueError("fractions must hold at least one number in (0, 1]")
    return np.array(fractions, dtype=np.float64)


def _trapezoid(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Trapezoid rule along the last axis: ``Σ (x_{i+1} - x_i)(y_i + y_{i+1}) / 2``."""
    return (np.diff(x) * (y[..., 1:] + y[..., :-1]) / 2).sum(-1)


class _Removals:
    """One checked batch, ready to be shown to the model with some of its tokens deleted.

    ``real``, ``removable`` ``(B, L)`` bool; ``rank`` ``(B, L)`` of the removable tokens by decreasing score;
    ``n`` ``(B,)`` removable tokens per row; ``target`` ``(B,)``.
    """

    def __init__(self, model, input_ids, attention_mask, scores, target, keep_ids, keep, probabilities, batch_size):
        if not callable(model):
            raise TypeError(f"model must be a classifier model(input_ids, attention_mask=...) -> (B, C), got "
                            f"{type(model).__name__}")
        input_ids, real = check_token_batch(input_ids, attention_mask)  # (B, L), (B, L)
        B, L = input_ids.shape
        self.real = real.cpu().numpy()
        kept = np.isin(input_ids.cpu().numpy(), np.asarray(check_keep_ids(keep_ids), dtype=np.int64))  # (B, L)
        self.removable = self.real & ~kept & ~(_real(keep, (B, L), "keep") if keep is not None else False)
        self.rank = _ranks(_scores(scores, (B, L)), self.removable)  # (B, L)
        self.n = self.removable.sum(1)  # (B,)
        if target is None:
            raise ValueError("target is needed: the class whose probability the deletions follow (an int or B ints)")
        target = check_target_rows(target, B)  # an int or B ints; the range is checked against the outputs
        index = np.asarray(target.detach().cpu() if isinstance(target, torch.Tensor) else target)
        self.target = np.broadcast_to(index, (B,))
        self.model, self.input_ids = model, input_ids
        self.probabilities = check_flag("probabilities", probabilities)
        self.batch_size = resolve_batch_size(batch_size)

    def counts(self, fractions: np.ndarray) -> np.ndarray:
        """``k = ⌈f · n⌉`` ``(B, F)`` (1 % of 5 tokens is 1 token; the 1e-9 absorbs 0.14 · 50 = 7.000000000000001)."""
        return np.clip(np.ceil(fractions[None, :] * self.n[:, None] - 1e-9), 0, self.n[:, None]).astype(np.int64)

    def outputs(self, ks: np.ndarray, present: bool = False) -> np.ndarray:
        """The explained output ``(B, F)`` when the ``ks[b, f]`` best removable tokens of row ``b`` are deleted,
        or (``present``) when they are the only removable tokens left."""
        B, F = ks.shape
        top = self.rank[:, None, :] < ks[:, :, None]  # (B, F, L): rank < k <= n implies removable
        deleted = (self.removable[:, None, :] & ~top) if present else top  # (B, F, L)
        masks = (self.real[:, None, :] & ~deleted).reshape(B * F, -1)  # (B*F, L)
        rows = np.repeat(np.arange(B), F)  # (B*F,): the example each mask belongs to
        values, device = [], self.input_ids.device
        with torch.no_grad():
            for i in range(0, B * F, self.batch_size):
                chunk = slice(i, i + self.batch_size)
                index = torch.as_tensor(rows[chunk], device=device)
                mask = torch.as_tensor(masks[chunk], device=device).long()  # (N, L)
                out = self.model(self.input_ids[index], attention_mask=mask)
                logits = logits_of(out, len(index))  # (N, C)
                values.append(as_numpy(select_target(logits, self.target[rows[chunk]], self.probabilities)))
        return np.concatenate(values).reshape(B, F)


def _curve(removals: _Removals, steps: int | None, present: bool) -> Curve:
    if steps is not None:  # the grid i / steps, k = ⌈fraction · n⌉ tokens at each point
        fractions = np.linspace(0.0, 1.0, check_budget("steps", steps) + 1)  # (K,)
        values = removals.outputs(removals.counts(fractions), present)  # (B, K)
        return Curve(fractions, values, _trapezoid(values, fractions))
    n = removals.n  # (B,)
    counts = np.minimum(np.arange(n.max() + 1)[None, :], n[:, None])  # (B, max n + 1): 0, 1, ..., n (then n)
    exact = removals.outputs(counts, present)  # (B, max n + 1)
    values, area = np.empty((len(n), len(DEFAULT_GRID))), np.empty(len(n))
    for b, n_b in enumerate(n):
        x = np.arange(n_b + 1) / n_b if n_b else np.array([0.0, 1.0])  # (n + 1,): the row's own fractions
        y = exact[b, :n_b + 1] if n_b else exact[b, [0, 0]]  # (n + 1,): nothing removable gives a flat curve
        values[b], area[b] = np.interp(DEFAULT_GRID, x, y), _trapezoid(y, x)
    return Curve(DEFAULT_GRID.copy(), values, area)


def deletion_curve(model: Callable, input_ids: torch.Tensor, attention_mask: torch.Tensor | None, attributions: Any, *,
                   target: Any = None, steps: int | None = None, keep_ids: Sequence[int] = (), keep: Any = None,
                   batch_size: int | None = None, probabilities: bool = True) -> Curve:
    """Delete the removable tokens in decreasing score order and follow the target's probability (logit with
    ``probabilities=False``). A faithful ranking makes it fall fast: a small ``area`` is good.

    ``steps=None`` (default): every token count ``0, 1, ..., n`` of each row is evaluated (``n + 1`` model rows),
    ``area`` is the trapezoid rule over that exact curve (points ``j / n``), and ``values`` are the curve read
    by linear interpolation at the common grid ``fractions = 0, 0.1, ..., 1``. ``steps=s``: the grid ``i / s``
    (``s + 1`` points), deleting ``k = ⌈fraction · n⌉`` tokens at each point, and ``area`` over that grid.
    A row with nothing removable gives a flat curve. ``batch_size``: rows per model call. Returns :class:`Curve`.
    """
    removals = _Removals(model, input_ids, attention_mask, attributions, target, keep_ids, keep, probabilities,
                          batch_size)
    return _curve(removals, steps, present=False)


def insertion_curve(model: Callable, input_ids: torch.Tensor, attention_mask: torch.Tensor | None, attributions: Any,
                    *, target: Any = None, steps: int | None = None, keep_ids: Sequence[int] = (), keep: Any = None,
                    batch_size: int | None = None, probabilities: bool = True) -> Curve:
    """The reverse of :func:`deletion_curve`: start with every removable token deleted (only the kept ones
    left) and put them back in decreasing score order. A faithful ranking makes it rise fast: a large ``area``
    is good. Same grid and arguments as :func:`deletion_curve`."""
    removals = _Removals(model, input_ids, attention_mask, attributions, target, keep_ids, keep, probabilities,
                          batch_size)
    return _curve(removals, steps, present=True)


def _erasure(removals: _Removals, fractions: Iterable[Any], present: bool) -> np.ndarray:
    """``p(x) - p(x')`` ``(B, F)``: ``x'`` deletes the top ``⌈f · n⌉`` tokens, or (``present``) keeps only them."""
    ks = removals.counts(_check_fractions(fractions))  # (B, F)
    full = removals.outputs(np.zeros((len(ks), 1), dtype=np.int64))  # (B, 1): nothing deleted
    return full - removals.outputs(ks, present)  # (B, F)


def comprehensiveness(model: Callable, input_ids: torch.Tensor, attention_mask: torch.Tensor | None, attributions: Any,
                      *, target: Any = None, fraction: float = 0.2, keep_ids: Sequence[int] = (), keep: Any = None,
                      batch_size: int | None = None, probabilities: bool = True) -> np.ndarray:
    """ERASER's comprehensiveness ``(B,)``: ``p(x) - p(x without its top-k tokens)``, ``k = ⌈fraction · n⌉``
    (deleted, see the module). Large = the top tokens were needed."""
    removals = _Removals(model, input_ids, attention_mask, attributions, target, keep_ids, keep, probabilities,
                          batch_size)
    return _erasure(removals, [fraction], present=False)[:, 0]


def sufficiency(model: Callable, input_ids: torch.Tensor, attention_mask: torch.Tensor | None, attributions: Any, *,
                target: Any = None, fraction: float = 0.2, keep_ids: Sequence[int] = (), keep: Any = None,
                batch_size: int | None = None, probabilities: bool = True) -> np.ndarray:
    """ERASER's sufficiency ``(B,)``: ``p(x) - p(only its top-k tokens, plus the kept ones)``,
    ``k = ⌈fraction · n⌉``. Small (or negative) = the top tokens alone carry the prediction."""
    removals = _Removals(model, input_ids, attention_mask, attributions, target, keep_ids, keep, probabilities,
                          batch_size)
    return _erasure(removals, [fraction], present=True)[:, 0]


def aopc(model: Callable, input_ids: torch.Tensor, attention_mask: torch.Tensor | None, attributions: Any, *,
         target: Any = None, metric: str = "comprehensiveness", fractions: Sequence[float] = ERASER_FRACTIONS,
         keep_ids: Sequence[int] = (), keep: Any = None, batch_size: int | None = None,
         probabilities: bool = True) -> np.ndarray:
    """Area over the perturbation curve ``(B,)``: the mean of ``metric`` (``"comprehensiveness"`` or
    ``"sufficiency"``) over ``fractions`` — ERASER's bins 1, 5, 10, 20, 50 % by default, ferret's 10, ..., 100 %
    with :data:`FERRET_FRACTIONS`."""
    if metric not in ("comprehensiveness", "sufficiency"):  # checked before any model call
        raise ValueError(f"metric must be 'comprehensiveness' or 'sufficiency', got {metric!r}")
    removals = _Removals(model, input_ids, attention_mask, attributions, target, keep_ids, keep, probabilities,
                          batch_size)
    return _erasure(removals, fractions, present=metric == "sufficiency").mean(1)


def _hits(scores: Any, evidence: Any, k: int | None, mask: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Evidence tokens among the top ``k`` real tokens ``(B,)``, the ``k`` used ``(B,)``, evidence count ``(B,)``."""
    values = _scores(scores)  # (B, L)
    real = _real(mask, values.shape)  # (B, L)
    check_same_shape(evidence, values, "evidence", "attributions")
    evidence = as_numpy(evidence)
    if not np.isin(evidence, (0, 1)).all():
        raise ValueError("evidence must hold 0/1 or True/False per token (1 = evidence)")
    planted = (evidence != 0) & real  # (B, L): evidence at padding does not count
    n_evidence = planted.sum(1)  # (B,)
    top_k = n_evidence if k is None else np.minimum(check_budget("k", k), real.sum(1))  # (B,)
    top = _ranks(values, real) < top_k[:, None]  # (B, L)
    return (top & planted).sum(1), top_k, n_evidence


def _ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a / b`` elementwise, NaN where ``b`` is 0."""
    return np.where(b > 0, a / np.maximum(b, 1), np.nan)


def precision_at_k(attributions: Any, evidence: Any, *, k: int | None = None, mask: Any = None) -> np.ndarray:
    """Share of the ``k`` highest-scored real tokens that are planted evidence ``(B,)`` (``evidence`` a bool
    ``(B, L)``). ``k`` defaults to each row's evidence count (then precision = recall = F1); a ``k`` above a
    row's real tokens takes them all. NaN where ``k`` is 0."""
    hits, top_k, _ = _hits(attributions, evidence, k, mask)
    return _ratio(hits, top_k)


def recall_at_k(attributions: Any, evidence: Any, *, k: int | None = None, mask: Any = None) -> np.ndarray:
    """Share of the evidence tokens found among the ``k`` highest-scored ones ``(B,)``; NaN without evidence."""
    hits, _, n_evidence = _hits(attributions, evidence, k, mask)
    return _ratio(hits, n_evidence)


def token_f1(attributions: Any, evidence: Any, *, k: int | None = None, mask: Any = None) -> np.ndarray:
    """Token F1 ``(B,)`` of the top-``k`` set against the evidence: ``2PR / (P + R)`` (0 when no hit)."""
    hits, top_k, n_evidence = _hits(attributions, evidence, k, mask)
    return _ratio(2 * hits, top_k + n_evidence)  # = 2PR / (P + R) with P = hits / k, R = hits / |E|


def auprc(attributions: Any, evidence: Any, *, mask: Any = None) -> np.ndarray:
    """Average precision per row ``(B,)``, as ``sklearn.metrics.average_precision_score``:
    ``AP = Σ_t (R_t - R_{t-1}) P_t`` over the distinct scores ``t`` taken as thresholds (tied tokens enter
    together). Real tokens only; NaN for a row without evidence."""
    _, _, n_evidence = _hits(attributions, evidence, None, mask)  # checks the arguments
    values = _scores(attributions)  # (B, L)
    real, planted = _real(mask, values.shape), as_numpy(evidence) != 0  # (B, L), (B, L)
    result = np.full(len(values), np.nan)
    for b in np.flatnonzero(n_evidence):
        s, e = values[b, real[b]], planted[b, real[b]]  # (n,), (n,)
        order = np.argsort(-s, kind="stable")
        s, e = s[order], e[order]  # sorted by decreasing score
        last_of_tie = np.r_[np.diff(s) != 0, True]  # (n,): thresholds sit after each group of equal scores
        true_positives = np.cumsum(e)[last_of_tie]  # (T,)
        predicted = np.arange(1, len(s) + 1)[last_of_tie]  # (T,)
        recall = true_positives / e.sum()  # (T,)
        result[b] = np.sum(np.diff(recall, prepend=0.0) * true_positives / predicted)
    return result


def _spearman_kendall(a: np.ndarray, b: np.ndarray, real: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-row Spearman and Kendall (tau-b) correlations ``(B,)`` over the real positions, by scipy."""
    rho, tau = np.full(len(a), np.nan), np.full(len(a), np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.ConstantInputWarning)  # a constant row gives NaN, said in the docs
        for row in range(len(a)):
            if real[row].sum() >= 2:
                x, y = a[row, real[row]], b[row, real[row]]
                rho[row], tau[row] = stats.spearmanr(x, y).statistic, stats.kendalltau(x, y).statistic
    return rho, tau


def rank_agreement(a: Any, b: Any, *, mask: Any = None) -> Agreement:
    """How alike two attributions rank the tokens: Spearman's ρ and Kendall's τ-b per row over the real tokens
    (ties get average ranks, as in scipy.stats). Returns :class:`Agreement` ``(spearman (B,), kendall (B,))``."""
    a = _scores(a, name="a")  # (B, L)
    b = _scores(b, a.shape, "b")  # (B, L)
    return Agreement(*_spearman_kendall(a, b, _real(mask, a.shape)))
