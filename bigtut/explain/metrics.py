"""How good is a token attribution? Faithfulness (does the model need the tokens ranked high?), plausibility
(are the planted evidence tokens ranked high?), agreement of two rankings, and stability across seeds. The
model-randomisation sanity check lives beside the cheap baselines, in :mod:`bigtut.explain.baselines`.

Shape legend:  B batch   L positions   K points of a curve   F fractions   C classes

Every function takes one padded batch and ``scores`` ``(B, L)`` from any method (tensor or array), and returns
NumPy float64. The model follows the classifier contract: ``model(input_ids, attention_mask)`` -> ``(B, C)``.

Removing a token means **deleting** it: its ``attention_mask`` entry becomes 0, and the contract makes a
masked position invisible (the other tokens keep their positions). This is not replacing it by [MASK] or [PAD],
which the model still sees and reacts to. Tokens whose id is in ``keep_ids`` (say [CLS], [SEP]) or whose
position is set in ``keep`` ``(B, L)`` are never removed and never ranked; padding takes no part. What is left
are a row's ``n`` *removable* tokens, ranked by decreasing score (ties: the earlier position first). A model
that cannot take an empty row (GPTClassifier) needs at least one kept token per row.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from scipy import stats

from bigtut.explain.common import as_numpy, check_budget, check_same_shape, select_target
from bigtut.validation import check_attention_mask

__all__ = ["ERASER_FRACTIONS", "FERRET_FRACTIONS", "Agreement", "Curve", "aopc", "auprc", "comprehensiveness",
           "deletion_curve", "insertion_curve", "precision_at_k", "rank_agreement", "recall_at_k", "stability",
           "sufficiency", "token_f1"]

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


def _scores(scores: Any, shape: tuple[int, int] | None = None, name: str = "scores") -> np.ndarray:
    """``scores`` as a finite float64 ``(B, L)`` array, of the given ``shape`` when there is one."""
    values = as_numpy(scores)
    if values.ndim != 2 or (shape is not None and values.shape != tuple(shape)):
        raise ValueError(f"{name} must have shape {'(B, L)' if shape is None else tuple(shape)}, got {values.shape}")
    if not np.isfinite(values).all():
        raise ValueError(f"{name} must be finite, got NaN or inf")
    return values


def _real(mask: Any, shape: tuple[int, int], name: str = "mask") -> np.ndarray:
    """Real positions ``(B, L)`` bool: ``mask`` (1/True = real) or, without one, all True."""
    if mask is None:
        return np.ones(shape, dtype=bool)
    check_same_shape(mask, np.empty(shape), name, f"the scores {shape}")
    return as_numpy(mask) != 0


def _ranks(scores: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """Rank ``(B, L)`` of every position by decreasing score among ``allowed`` ones (0 = best; ties: the earlier
    position first); positions not allowed rank after all allowed ones."""
    key = np.where(allowed, -scores, np.inf)  # (B, L): ascending key = descending score
    order = np.argsort(key, axis=1, kind="stable")  # (B, L): positions, best first
    return np.argsort(order, axis=1)  # (B, L): the inverse permutation


def _check_fractions(fractions: Iterable[Any]) -> np.ndarray:
    """``fractions`` as a non-empty float64 array ``(F,)`` of numbers in ``(0, 1]``."""
    fractions = list(fractions)
    for f in fractions:
        if isinstance(f, bool) or not isinstance(f, (int, float, np.floating)) or not 0 < f <= 1:
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
        if not isinstance(input_ids, torch.Tensor) or input_ids.dim() != 2 or input_ids.is_floating_point():
            raise ValueError(f"input_ids must be a 2-D integer tensor (B, L), got {type(input_ids).__name__} "
                             f"{tuple(np.shape(input_ids))}")
        B, L = input_ids.shape
        real = check_attention_mask(attention_mask, B, L)  # (B, L) bool or None
        self.real = np.ones((B, L), dtype=bool) if real is None else real.cpu().numpy()
        kept = np.isin(input_ids.cpu().numpy(), np.asarray(list(keep_ids), dtype=np.int64))  # (B, L)
        self.removable = self.real & ~kept & ~(_real(keep, (B, L), "keep") if keep is not None else False)
        self.rank = _ranks(_scores(scores, (B, L)), self.removable)  # (B, L)
        self.n = self.removable.sum(1)  # (B,)
        index = np.asarray(target.cpu() if isinstance(target, torch.Tensor) else target)
        if index.dtype.kind not in "iu" or index.ndim > 1 or index.size not in (1, B):
            raise ValueError(f"target must be an int or {B} ints (one per row), got {target!r}")
        self.target = np.broadcast_to(index, (B,))
        self.model, self.input_ids, self.probabilities = model, input_ids, probabilities
        self.batch_size = check_budget("batch_size", batch_size)

    def counts(self, fractions: np.ndarray) -> np.ndarray:
        """``k = ⌈f · n⌉`` ``(B, F)`` (1 % of 5 tokens is 1 token; the 1e-9 absorbs 0.1 · 30 = 3.0000000000000004)."""
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
                logits = self.model(self.input_ids[torch.as_tensor(rows[chunk], device=device)],
                                    torch.as_tensor(masks[chunk], device=device).long())  # (N, C)
                logits = logits[0] if isinstance(logits, tuple) else logits
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


def deletion_curve(model: Callable, input_ids: torch.Tensor, attention_mask: torch.Tensor | None, scores: Any,
                   target: Any, steps: int | None = None, keep_ids: Sequence[int] = (), probabilities: bool = True,
                   *, keep: Any = None, batch_size: int = 256) -> Curve:
    """Delete the removable tokens in decreasing score order and follow the target's probability (logit with
    ``probabilities=False``). A faithful ranking makes it fall fast: a small ``area`` is good.

    ``steps=None`` (default): every token count ``0, 1, ..., n`` of each row is evaluated (``n + 1`` model rows),
    ``area`` is the trapezoid rule over that exact curve (points ``j / n``), and ``values`` are the curve read
    by linear interpolation at the common grid ``fractions = 0, 0.1, ..., 1``. ``steps=s``: the grid ``i / s``
    (``s + 1`` points), deleting ``k = ⌈fraction · n⌉`` tokens at each point, and ``area`` over that grid.
    A row with nothing removable gives a flat curve. ``batch_size``: rows per model call. Returns :class:`Curve`.
    """
    removals = _Removals(model, input_ids, attention_mask, scores, target, keep_ids, keep, probabilities, batch_size)
    return _curve(removals, steps, present=False)


def insertion_curve(model: Callable, input_ids: torch.Tensor, attention_mask: torch.Tensor | None, scores: Any,
                    target: Any, steps: int | None = None, keep_ids: Sequence[int] = (), probabilities: bool = True,
                    *, keep: Any = None, batch_size: int = 256) -> Curve:
    """The reverse of :func:`deletion_curve`: start with every removable token deleted (only the kept ones
    left) and put them back in decreasing score order. A faithful ranking makes it rise fast: a large ``area``
    is good. Same grid and arguments as :func:`deletion_curve`."""
    removals = _Removals(model, input_ids, attention_mask, scores, target, keep_ids, keep, probabilities, batch_size)
    return _curve(removals, steps, present=True)


def _erasure(removals: _Removals, fractions: Iterable[Any], present: bool) -> np.ndarray:
    """``p(x) - p(x')`` ``(B, F)``: ``x'`` deletes the top ``⌈f · n⌉`` tokens, or (``present``) keeps only them."""
    ks = removals.counts(_check_fractions(fractions))  # (B, F)
    full = removals.outputs(np.zeros((len(ks), 1), dtype=np.int64))  # (B, 1): nothing deleted
    return full - removals.outputs(ks, present)  # (B, F)


def comprehensiveness(model: Callable, input_ids: torch.Tensor, attention_mask: torch.Tensor | None, scores: Any,
                      target: Any, fraction: float = 0.2, keep_ids: Sequence[int] = (), probabilities: bool = True,
                      *, keep: Any = None, batch_size: int = 256) -> np.ndarray:
    """ERASER's comprehensiveness ``(B,)``: ``p(x) - p(x without its top-k tokens)``, ``k = ⌈fraction · n⌉``
    (deleted, see the module). Large = the top tokens were needed."""
    removals = _Removals(model, input_ids, attention_mask, scores, target, keep_ids, keep, probabilities, batch_size)
    return _erasure(removals, [fraction], present=False)[:, 0]


def sufficiency(model: Callable, input_ids: torch.Tensor, attention_mask: torch.Tensor | None, scores: Any,
                target: Any, fraction: float = 0.2, keep_ids: Sequence[int] = (), probabilities: bool = True,
                *, keep: Any = None, batch_size: int = 256) -> np.ndarray:
    """ERASER's sufficiency ``(B,)``: ``p(x) - p(only its top-k tokens, plus the kept ones)``,
    ``k = ⌈fraction · n⌉``. Small (or negative) = the top tokens alone carry the prediction."""
    removals = _Removals(model, input_ids, attention_mask, scores, target, keep_ids, keep, probabilities, batch_size)
    return _erasure(removals, [fraction], present=True)[:, 0]


def aopc(model: Callable, input_ids: torch.Tensor, attention_mask: torch.Tensor | None, scores: Any, target: Any,
         metric: str = "comprehensiveness", fractions: Sequence[float] = ERASER_FRACTIONS,
         keep_ids: Sequence[int] = (), probabilities: bool = True, *, keep: Any = None,
         batch_size: int = 256) -> np.ndarray:
    """Area over the perturbation curve ``(B,)``: the mean of ``metric`` (``"comprehensiveness"`` or
    ``"sufficiency"``) over ``fractions`` — ERASER's bins 1, 5, 10, 20, 50 % by default, ferret's 10, ..., 100 %
    with :data:`FERRET_FRACTIONS`."""
    if metric not in ("comprehensiveness", "sufficiency"):
        raise ValueError(f"metric must be 'comprehensiveness' or 'sufficiency', got {metric!r}")
    removals = _Removals(model, input_ids, attention_mask, scores, target, keep_ids, keep, probabilities, batch_size)
    return _erasure(removals, fractions, present=metric == "sufficiency").mean(1)


def _hits(scores: Any, evidence: Any, k: int | None, mask: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Evidence tokens among the top ``k`` real tokens ``(B,)``, the ``k`` used ``(B,)``, evidence count ``(B,)``."""
    values = _scores(scores)  # (B, L)
    real = _real(mask, values.shape)  # (B, L)
    check_same_shape(evidence, values, "evidence", "scores")
    planted = (as_numpy(evidence) != 0) & real  # (B, L): evidence at padding does not count
    n_evidence = planted.sum(1)  # (B,)
    top_k = n_evidence if k is None else np.minimum(check_budget("k", k), real.sum(1))  # (B,)
    top = _ranks(values, real) < top_k[:, None]  # (B, L)
    return (top & planted).sum(1), top_k, n_evidence


def _ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a / b`` elementwise, NaN where ``b`` is 0."""
    return np.where(b > 0, a / np.maximum(b, 1), np.nan)


def precision_at_k(scores: Any, evidence: Any, k: int | None = None, mask: Any = None) -> np.ndarray:
    """Share of the ``k`` highest-scored real tokens that are planted evidence ``(B,)`` (``evidence`` a bool
    ``(B, L)``). ``k`` defaults to each row's evidence count (then precision = recall = F1); a ``k`` above a
    row's real tokens takes them all. NaN where ``k`` is 0."""
    hits, top_k, _ = _hits(scores, evidence, k, mask)
    return _ratio(hits, top_k)


def recall_at_k(scores: Any, evidence: Any, k: int | None = None, mask: Any = None) -> np.ndarray:
    """Share of the evidence tokens found among the ``k`` highest-scored ones ``(B,)``; NaN without evidence."""
    hits, _, n_evidence = _hits(scores, evidence, k, mask)
    return _ratio(hits, n_evidence)


def token_f1(scores: Any, evidence: Any, k: int | None = None, mask: Any = None) -> np.ndarray:
    """Token F1 ``(B,)`` of the top-``k`` set against the evidence: ``2PR / (P + R)`` (0 when no hit)."""
    hits, top_k, n_evidence = _hits(scores, evidence, k, mask)
    return _ratio(2 * hits, top_k + n_evidence)  # = 2PR / (P + R) with P = hits / k, R = hits / |E|


def auprc(scores: Any, evidence: Any, mask: Any = None) -> np.ndarray:
    """Average precision per row ``(B,)``, as ``sklearn.metrics.average_precision_score``:
    ``AP = Σ_t (R_t - R_{t-1}) P_t`` over the distinct scores ``t`` taken as thresholds (tied tokens enter
    together). Real tokens only; NaN for a row without evidence."""
    _, _, n_evidence = _hits(scores, evidence, None, mask)  # checks the arguments
    values = as_numpy(scores)  # (B, L)
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


def rank_agreement(a: Any, b: Any, mask: Any = None) -> Agreement:
    """How alike two attributions rank the tokens: Spearman's ρ and Kendall's τ-b per row over the real tokens
    (ties get average ranks, as in scipy.stats). Returns :class:`Agreement` ``(spearman (B,), kendall (B,))``."""
    a = _scores(a, name="a")  # (B, L)
    b = _scores(b, a.shape, "b")  # (B, L)
    return Agreement(*_spearman_kendall(a, b, _real(mask, a.shape)))


def stability(explain_fn: Callable[[int], Any], seeds: Sequence[int], k: int = 5, mask: Any = None) -> np.ndarray:
    """Mean top-``k`` overlap ``|A ∩ B| / k`` ``(B,)`` of ``explain_fn(seed)`` ``(B, L)`` over all pairs of seeds
    (1 = every seed picks the same top tokens). ``k`` above a row's real tokens takes them all."""
    seeds, k = list(seeds), check_budget("k", k)
    if len(seeds) < 2:
        raise ValueError(f"stability needs at least 2 seeds to compare, got {seeds!r}")
    first = _scores(explain_fn(seeds[0]), name=f"explain_fn({seeds[0]!r})")  # (B, L)
    runs = [first] + [_scores(explain_fn(seed), first.shape, f"explain_fn({seed!r})") for seed in seeds[1:]]
    real = _real(mask, first.shape)  # (B, L)
    top_k = np.minimum(k, real.sum(1))  # (B,)
    tops = [_ranks(r, real) < top_k[:, None] for r in runs]  # S x (B, L): each run's top-k set
    overlaps = [(x & y).sum(1) / np.maximum(top_k, 1) for x, y in itertools.combinations(tops, 2)]  # pairs x (B,)
    return np.mean(overlaps, axis=0)


# The single entry point: the baselines and the randomisation check live in bigtut.explain.baselines
# (they import rank_agreement from here); they are reachable from this module too, imported on first use.
_FROM_BASELINES = ("RandomisationResult", "attention_rollout", "gradient_norm", "gradient_x_input", "model_attentions",
                   "randomisation_check", "raw_attention_scores", "rollout_scores")


def __getattr__(name: str):
    if name in _FROM_BASELINES:
        from bigtut.explain import baselines

        return getattr(baselines, name)
    raise AttributeError(f"module 'bigtut.explain.metrics' has no attribute {name!r}")
