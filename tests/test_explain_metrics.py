"""Tests of bigtut.explain.metrics on cases small enough to compute by hand: an additive model whose class-1
logit is the sum of its visible tokens' weights (so deleting a token removes exactly its weight), and
sklearn/scipy for the ranking metrics. Everything in float64."""

import numpy as np
import pytest
import torch
from explain_fixtures import CLS, additive_case
from scipy import stats
from scipy.special import expit as sigmoid
from sklearn.metrics import average_precision_score

from bigtut.explain import Attribution
from bigtut.explain.metrics import (
    FERRET_FRACTIONS,
    aopc,
    auprc,
    comprehensiveness,
    deletion_curve,
    insertion_curve,
    precision_at_k,
    rank_agreement,
    recall_at_k,
    sufficiency,
    token_f1,
)


@pytest.fixture(scope="module")
def additive_batch():
    return additive_case()  # model, ids (2, 5), mask (2, 5), the perfect attribution (2, 5)


# ------------------------------------------------------------------------------------------------ faithfulness


def test_deletion_curve_of_the_perfect_attribution(additive_batch):
    model, ids, mask, scores = additive_batch
    # row 0 deletes 3, 2, 0.5, -1 (n = 4): logits 4.75, 1.75, -0.25, -0.75, 0.25 ([CLS] stays)
    # row 1 deletes 1, -2 (n = 2): logits -0.75, -1.75, 0.25
    row0, row1 = [4.75, 1.75, -0.25, -0.75, 0.25], [-0.75, -1.75, 0.25]
    curve = deletion_curve(model, ids, mask, scores, target=1, keep_ids=(CLS,), probabilities=False)
    assert np.allclose(curve.fractions, np.linspace(0, 1, 11))
    assert np.allclose(curve.values[0, [0, 5, 10]], [4.75, -0.25, 0.25])  # grid points 0, 0.5, 1 are curve points
    assert np.isclose(curve.values[0, 1], 4.75 + 0.4 * (1.75 - 4.75))  # 0.1 lies 40 % of the way to 0.25
    assert np.allclose(curve.values[1], np.interp(np.linspace(0, 1, 11), [0, 0.5, 1], row1))
    # the exact areas, trapezoids over each row's own points j / n
    assert np.allclose(curve.area, [0.25 * (3.25 + 0.75 - 0.5 - 0.25), 0.5 * (-1.25 - 0.75)])

    grid = deletion_curve(model, ids, mask, scores, target=1, steps=4, keep_ids=(CLS,), probabilities=False)
    assert np.allclose(grid.values[0], row0)  # k = ceil(f * 4) = 0..4: every point of row 0
    assert np.allclose(grid.values[1], [-0.75, -1.75, -1.75, 0.25, 0.25])  # k = ceil(f * 2) = 0, 1, 1, 2, 2
    assert np.allclose(grid.area[0], curve.area[0])
    probs = deletion_curve(model, ids, mask, scores, target=1, steps=4, keep_ids=(CLS,))  # probabilities by default
    assert np.allclose(probs.values, sigmoid(grid.values))  # class 0 has logit 0: p(1) = sigmoid(logit)

    dropped = deletion_curve(model, ids, mask, scores, target=1, steps=4, probabilities=False)  # [CLS] removable too
    assert np.allclose(dropped.values[:, -1], 0.0)  # n = 5: k = ceil(0.25 * 5) = 2 deletes the 3 and the 2
    assert np.allclose(dropped.values[0, :2], [4.75, -0.25])


def test_insertion_curve_of_the_perfect_attribution(additive_batch):
    model, ids, mask, scores = additive_batch
    curve = insertion_curve(model, ids, mask, scores, target=1, steps=4, keep_ids=(CLS,), probabilities=False)
    assert np.allclose(curve.values[0], [0.25, 3.25, 5.25, 5.75, 4.75])  # only [CLS], then 3, 2, 0.5, -1 added
    assert np.allclose(curve.values[1], [0.25, 1.25, 1.25, -0.75, -0.75])
    worst = insertion_curve(model, ids, mask, -scores, target=1, steps=4, keep_ids=(CLS,), probabilities=False)
    assert (worst.area < curve.area).all()  # the reversed ranking inserts the negative tokens first


def test_comprehensiveness_sufficiency_and_aopc(additive_batch):
    model, ids, mask, scores = additive_batch
    args = (model, ids, mask, scores)
    kw = {"target": 1}
    # row 0 (n = 4): 20 % -> k = 1 deletes 3; 50 % -> k = 2 deletes 3 and 2. Row 1 (n = 2): k = 1 deletes 1.
    assert np.allclose(comprehensiveness(*args, **kw, keep_ids=(CLS,), probabilities=False), [3.0, 1.0])
    assert np.allclose(comprehensiveness(*args, **kw, fraction=0.5, keep_ids=(CLS,), probabilities=False), [5.0, 1.0])
    # sufficiency: p(x) - p([CLS] + top-k); row 0 at 50 % keeps 0.25 + 3 + 2
    assert np.allclose(sufficiency(*args, **kw, fraction=0.5, keep_ids=(CLS,), probabilities=False),
                       [4.75 - 5.25, -0.75 - 1.25])
    assert np.allclose(sufficiency(*args, **kw, fraction=1.0, keep_ids=(CLS,), probabilities=False), 0.0)
    # ERASER bins 1, 5, 10, 20, 50 %: row 0 k = 1, 1, 1, 1, 2 -> 3, 3, 3, 3, 5; row 1 always k = 1 -> 1
    assert np.allclose(aopc(*args, **kw, keep_ids=(CLS,), probabilities=False), [3.4, 1.0])
    # ferret's 10 %, ..., 100 % on row 0: k = 1, 1, 2, 2, 2, 3, 3, 4, 4, 4
    row0 = [3, 3, 5, 5, 5, 5.5, 5.5, 4.5, 4.5, 4.5]
    row1 = [1] * 5 + [-1] * 5  # k = 1 for 10-50 %, 2 for 60-100 %: 1 + (-2) removed -> -0.75 - 0.25
    ferret = aopc(*args, **kw, fractions=FERRET_FRACTIONS, keep_ids=(CLS,), probabilities=False)
    assert np.allclose(ferret, [np.mean(row0), np.mean(row1)]) and np.isclose(ferret[0], 4.55)
    # probabilities: the same removals, differences of sigmoids
    full = np.array([[4.75], [-0.75]])
    expected = (sigmoid(full) - sigmoid(full - np.array([row0, row1]))).mean(1)
    assert np.allclose(aopc(*args, **kw, fractions=FERRET_FRACTIONS, keep_ids=(CLS,)), expected)
    suff = aopc(*args, **kw, metric="sufficiency", fractions=(0.5, 1.0), keep_ids=(CLS,), probabilities=False)
    assert np.allclose(suff, [(4.75 - 5.25) / 2, (-0.75 - 1.25) / 2])


def test_kept_tokens_are_never_removed(additive_batch):
    model, ids, mask, scores = additive_batch
    loud = scores.clone()
    loud[:, 0] = 100.0  # [CLS] ranked first: kept anyway, so the ranking of the rest decides
    assert np.allclose(comprehensiveness(model, ids, mask, loud, target=1, keep_ids=(CLS,), probabilities=False),
                       [3, 1])
    keep = torch.zeros_like(ids, dtype=torch.bool)
    keep[0, 1] = True  # position of the 3: never deleted, so 20 % deletes the 2
    assert np.allclose(comprehensiveness(model, ids, mask, scores, target=1, keep_ids=(CLS,), keep=keep,
                                         probabilities=False), [2.0, 1.0])
    assert np.allclose(comprehensiveness(model, ids, mask, loud, target=1, probabilities=False), [0.25, 0.25])


# ------------------------------------------------------------------------------------------------ plausibility


def test_precision_recall_f1_on_a_constructed_case():
    scores = np.array([[0.9, 0.1, 0.8, 0.3, 0.5, 7.0]])  # the last position is padding with a high score
    evidence = np.array([[True, False, False, True, True, True]])
    mask = np.array([[1, 1, 1, 1, 1, 0]])
    # default k = 3 evidence tokens; top-3 real = positions 0, 2, 4, of which 0 and 4 are evidence
    for metric in (precision_at_k, recall_at_k, token_f1):
        assert np.allclose(metric(scores, evidence, mask=mask), 2 / 3)
    # k = 2: top-2 = 0, 2 -> one hit: P = 1/2, R = 1/3, F1 = 2 * (1/6) / (5/6) = 0.4
    assert np.allclose(precision_at_k(scores, evidence, k=2, mask=mask), 0.5)
    assert np.allclose(recall_at_k(scores, evidence, k=2, mask=mask), 1 / 3)
    assert np.allclose(token_f1(scores, evidence, k=2, mask=mask), 0.4)
    assert np.allclose(recall_at_k(scores, evidence, k=10, mask=mask), 1.0)  # k above the 5 real tokens takes them all
    assert np.allclose(precision_at_k(scores, evidence, k=10, mask=mask), 3 / 5)
    assert np.isnan(recall_at_k(scores, np.zeros_like(evidence), k=2, mask=mask)).all()  # no evidence: undefined


def test_auprc_equals_sklearn():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 4, size=(6, 9)).astype(float)  # many ties
    evidence = rng.random((6, 9)) < 0.4
    evidence[:, 0] = True
    mask = np.ones((6, 9), dtype=int)
    mask[2, 6:], mask[4, 3:] = 0, 0
    ours = auprc(scores, evidence, mask=mask)
    for b in range(6):
        real = mask[b] == 1
        assert np.isclose(ours[b], average_precision_score(evidence[b, real], scores[b, real]))
    assert np.isclose(auprc([[0.1, 0.9, 0.5]], [[False, True, True]])[0], 1.0)


def test_rank_agreement_equals_scipy():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(4, 8)), rng.integers(0, 3, size=(4, 8)).astype(float)  # b has ties
    mask = np.ones((4, 8), dtype=bool)
    mask[1, 5:] = False
    result = rank_agreement(a, b, mask=mask)
    for row in range(4):
        real = mask[row]
        assert np.isclose(result.spearman[row], stats.spearmanr(a[row, real], b[row, real]).statistic)
        assert np.isclose(result.kendall[row], stats.kendalltau(a[row, real], b[row, real]).statistic)
    assert np.allclose(rank_agreement(a, 2 * a + 1).spearman, 1.0)


# -------------------------------------------------------------------------------------------------- bad inputs


def test_metrics_take_a_result_as_it_comes(additive_batch):
    model, ids, mask, scores = additive_batch
    as_result = Attribution(scores.numpy())
    assert np.array_equal(comprehensiveness(model, ids, mask, as_result, target=1),
                          comprehensiveness(model, ids, mask, scores, target=1))
    assert np.array_equal(precision_at_k(as_result, scores > 1), precision_at_k(scores.numpy(), scores > 1))


def test_bad_inputs_raise(additive_batch):
    model, ids, mask, scores = additive_batch
    cases = [
        (lambda: comprehensiveness(model, ids, mask, scores[:, :3], target=1), ValueError,
         "attributions must have shape"),
        *[(lambda f=f: comprehensiveness(model, ids, mask, scores, target=1, fraction=f), ValueError, "fraction")
          for f in (0, 1.5, -0.1, float("nan"), True)],
        (lambda: aopc(model, ids, mask, scores, target=1, metric="faithfulness"), ValueError, "metric"),
        (lambda: aopc(model, ids, mask, scores, target=1, fractions=()), ValueError, "at least one"),
        (lambda: deletion_curve(model, ids, mask, scores, target=1, steps=0), ValueError, "steps"),
        (lambda: comprehensiveness(model, ids, mask, scores, target=[1, 1, 1]), ValueError, "target"),
        (lambda: comprehensiveness(model, ids, mask, scores, target=2), ValueError, r"target must lie in \[0, 2\)"),
        (lambda: comprehensiveness(model, ids, mask, scores), ValueError, "target is needed"),
        (lambda: comprehensiveness(model, ids, mask, scores, target=1.0), TypeError, "target must be an int"),
        (lambda: comprehensiveness(model, ids[:0], mask[:0], scores[:0], target=1), ValueError, "at least one text"),
        (lambda: comprehensiveness(model, ids.double(), mask, scores, target=1), TypeError, "integer tensor"),
        (lambda: comprehensiveness(model, ids, mask, scores * torch.nan, target=1), ValueError, "finite"),
        (lambda: comprehensiveness(model, ids, mask, scores, target=1, batch_size=0), ValueError, "batch_size"),
        (lambda: comprehensiveness(model, ids, mask, scores, target=1, probabilities=None), TypeError,
         "probabilities"),
        (lambda: comprehensiveness(lambda i, attention_mask: model(i, attention_mask)[:1], ids, mask, scores,
                                   target=1), ValueError, "for 2 rows"),
        (lambda: comprehensiveness("model", ids, mask, scores, target=1), TypeError, "model must be"),
        (lambda: precision_at_k(scores, scores > 1, k=0), ValueError, "k must"),
        (lambda: precision_at_k(scores, scores * 2, k=1), ValueError, "evidence must hold 0/1"),
        (lambda: recall_at_k(scores, np.ones((2, 4), bool)), ValueError, "evidence"),
        (lambda: precision_at_k(scores, scores > 1, mask=mask * 2), ValueError, "mask must hold 0/1"),
        (lambda: rank_agreement(scores, scores[:1]), ValueError, "b must have shape"),
        (lambda: rank_agreement("scores", scores), TypeError, "a must be"),
        (lambda: auprc(scores[:0], scores[:0] > 1), ValueError, "at least one row"),
    ]
    for call, kind, pattern in cases:
        with pytest.raises(kind, match=pattern):
            call()
