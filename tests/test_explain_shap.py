"""Tests of bigtut.explain.shap: exact Shapley values equal a brute-force sum and shap's ExactExplainer, KernelSHAP
equals shap's KernelExplainer when every coalition is enumerated and converges when it samples, permutation
sampling converges, the Shapley axioms hold, and token_shap explains BERT, GPT classifiers and GPT itself."""

import itertools
import math
import warnings

import numpy as np
import pytest
import shap
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bigtut.bert import BertConfig, BertForSequenceClassification
from bigtut.explain.shap import (
    _kernel_design,
    coalition_weight,
    exact_shapley,
    kernel_shap,
    permutation_shap,
    token_shap,
)
from bigtut.gpt import GPT, GPTClassifier, GPTConfig

CLS, SEP, MASK = 1, 2, 3


def problem(m, n_background=6, seed=0):
    """A non-additive 3-class model ``f`` (interactions, so sampling estimators are not exact), ``x``, background."""
    rng = np.random.default_rng(seed)
    weights = rng.normal(size=(m, 3))

    def f(X):  # (N, m) -> (N, 3)
        return np.tanh(X @ weights) * (1 + X[:, :1] * X[:, -1:]) + 0.3 * X[:, :1] ** 2

    return f, rng.normal(size=m), rng.normal(size=(n_background, m))


def brute_force(f, x, background):
    """Shapley values from the definition: marginal contributions averaged over all M! orders of the features."""
    m = len(x)

    def v(present):  # interventional value of a coalition
        rows = background.copy()
        rows[:, present] = x[present]
        return f(rows).mean()

    phi = np.zeros(m)
    for order in itertools.permutations(range(m)):
        for k, i in enumerate(order):
            phi[i] += v(list(order[:k + 1])) - v(list(order[:k]))
    return phi / math.factorial(m)


def shap_kernel(g, x, background, nsamples):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return shap.KernelExplainer(g, background).shap_values(x, nsamples=nsamples, l1_reg=False, silent=True)


# ---------------------------------------------------------------------------------------------------- exact
def test_coalition_weight():
    assert coalition_weight(1, 3) == pytest.approx(1 / 6)
    assert coalition_weight(0, 1) == 1.0
    for m in (1, 4, 9):  # the weights of the coalitions lacking a player sum to one
        assert sum(math.comb(m - 1, s) * coalition_weight(s, m) for s in range(m)) == pytest.approx(1.0)
    for bad in ((3, 3), (-1, 3), (0, 0), (1.0, 3)):
        with pytest.raises(ValueError):
            coalition_weight(*bad)


@pytest.mark.parametrize("m", [1, 3, 5])
def test_exact_equals_brute_force(m):
    f, x, background = problem(m)
    result = exact_shapley(f, x, background, target=2)
    np.testing.assert_allclose(result.values, brute_force(lambda X: f(X)[:, 2], x, background), rtol=0, atol=1e-12)
    assert result.base_value == pytest.approx(f(background)[:, 2].mean(), abs=1e-12)
    assert result.n_evaluations == 2**m * len(background)


@pytest.mark.parametrize("m", [2, 5, 8])
def test_exact_equals_shap_exact_explainer(m):
    f, x, background = problem(m, n_background=12, seed=m)
    g = lambda X: f(X)[:, 0]  # noqa: E731
    reference = shap.explainers.Exact(g, shap.maskers.Independent(background, max_samples=len(background)))(x[None])
    result = exact_shapley(g, x, background, batch_size=50)  # several model calls
    np.testing.assert_allclose(result.values, reference.values[0], rtol=0, atol=1e-10)
    assert abs(result.base_value - reference.base_values[0]) < 1e-10


# ---------------------------------------------------------------------------------------------------- kernel
@pytest.mark.parametrize("m", [2, 3, 6, 9, 11])
def test_kernel_equals_shap_kernel_explainer_when_enumerated(m):
    f, x, background = problem(m, n_background=5, seed=10 + m)
    if m >= 6:
        background[:, 1] = x[1]  # a feature that never varies is no player (shap drops it too)
    g = lambda X: f(X)[:, 1]  # noqa: E731
    result = kernel_shap(f, x, background, n_samples=2**m - 2, target=1)
    for nsamples in (2**m - 2, "auto"):
        np.testing.assert_allclose(result.values, shap_kernel(g, x, background, nsamples), rtol=0, atol=1e-8)
    np.testing.assert_allclose(result.values, exact_shapley(g, x, background).values, rtol=0, atol=1e-10)
    np.testing.assert_array_equal(kernel_shap(f, x, background, target=1, seed=5).values, result.values)
    if m >= 6:
        assert result.values[1] == 0


def test_kernel_design_enumerates_what_the_budget_covers_as_shap_does():
    m, n_samples = 9, 400  # enough for the coalitions of sizes 1, 8 and 2, 7; sizes 3..6 are sampled
    f, x, background = problem(m, n_background=3)
    explainer = shap.KernelExplainer(lambda X: f(X)[:, 0], background)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        explainer.shap_values(x, nsamples=n_samples, l1_reg=False, silent=True)
    masks, weights = _kernel_design(m, n_samples, np.random.default_rng(0))

    def enumerated(masks, weights):  # the coalitions of sizes 1, 2, m-2, m-1 sorted, with their weights
        masks = masks.astype(bool)
        chosen = np.isin(np.minimum(masks.sum(1), m - masks.sum(1)), [1, 2])
        order = np.lexsort(masks[chosen].T)
        return masks[chosen][order], weights[chosen][order]

    (ours, our_weights), (theirs, their_weights) = enumerated(masks, weights), enumerated(
        explainer.maskMatrix, explainer.kernelWeights)
    np.testing.assert_array_equal(ours, theirs)
    assert len(ours) == 2 * (9 + 36)
    np.testing.assert_allclose(our_weights, their_weights, rtol=1e-12, atol=0)
    assert masks.shape == (n_samples, m) and len(np.unique(masks, axis=0)) == n_samples
    assert weights.sum() == pytest.approx(1.0) and explainer.kernelWeights.sum() == pytest.approx(1.0)


def test_kernel_sampling_converges_and_is_seeded():
    f, x, background = problem(14, n_background=4, seed=3)
    exact = exact_shapley(f, x, background, target=0)

    def error(n_samples):
        return np.mean([np.abs(kernel_shap(f, x, background, n_samples, target=0, seed=s).values - exact.values).mean()
                        for s in range(3)])

    errors = [error(n) for n in (200, 1000, 4000)]
    assert errors[0] > errors[1] > errors[2] and errors[2] < 0.5 * errors[0], errors
    first, again = (kernel_shap(f, x, background, 300, target=0, seed=7) for _ in range(2))
    np.testing.assert_array_equal(first.values, again.values)
    assert not np.array_equal(first.values, kernel_shap(f, x, background, 300, target=0, seed=8).values)
    assert first.values.sum() == pytest.approx(f(x[None])[0, 0] - exact.base_value, abs=1e-10)  # efficiency
    assert first.n_evaluations == (300 + 2) * len(background)
    w = np.linspace(-1, 1, 14)  # an additive model is fitted without error by any full-rank sample
    linear = kernel_shap(lambda X: X @ w, x, background, 300, seed=1)
    np.testing.assert_allclose(linear.values, w * (x - background.mean(0)), rtol=0, atol=1e-10)


# ---------------------------------------------------------------------------------------------------- permutations
def test_permutation_sampling():
    f, x, background = problem(2)
    np.testing.assert_allclose(permutation_shap(f, x, background, 1, target=0).values,  # one antithetic pair
                               exact_shapley(f, x, background, target=0).values, rtol=0, atol=1e-12)
    f, x, background = problem(6, seed=4)
    exact = exact_shapley(f, x, background, target=1).values
    errors = [np.mean([np.abs(permutation_shap(f, x, background, n, target=1, seed=s).values - exact).mean()
                       for s in range(4)]) for n in (2, 200)]
    assert errors[1] < 0.3 * errors[0], errors
    first, again = (permutation_shap(f, x, background, 5, target=1, seed=2) for _ in range(2))
    np.testing.assert_array_equal(first.values, again.values)
    assert first.n_evaluations == (2 + 2 * 5 * 5) * len(background)


# ---------------------------------------------------------------------------------------------------- axioms
ESTIMATORS = {
    "exact": lambda f, x, bg: exact_shapley(f, x, bg),
    "kernel": lambda f, x, bg: kernel_shap(f, x, bg),
    "kernel-sampled": lambda f, x, bg: kernel_shap(f, x, bg, n_samples=2 * len(x), seed=1),
    "permutation": lambda f, x, bg: permutation_shap(f, x, bg, n_permutations=3, seed=1),
}


@settings(max_examples=20, deadline=None)
@given(m=st.integers(4, 7), seed=st.integers(0, 10**6), a=st.floats(-3, 3), b=st.floats(-3, 3))
def test_shapley_axioms(m, seed, a, b):
    rng = np.random.default_rng(seed)
    x, background, w = rng.normal(size=m), rng.normal(size=(5, m)), rng.normal(size=m)
    x[1], background[:, 1] = x[0], background[:, 0]  # features 0 and 1 interchangeable ...

    def f(X):  # ... for f; f never reads feature 2
        return np.sin(X[:, 0] + X[:, 1]) * X[:, 3] + X[:, 0] * X[:, 1] + X[:, 3:] @ w[3:]

    def g(X):
        return np.cos(X @ w) + X[:, 2] * X[:, -1]

    for name, estimate in ESTIMATORS.items():
        phi_f, phi_g = estimate(f, x, background), estimate(g, x, background)
        total = estimate(lambda X: a * f(X) + b * g(X), x, background)  # noqa: B023
        assert phi_f.values.sum() == pytest.approx(f(x[None])[0] - phi_f.base_value, abs=1e-9), name  # efficiency
        np.testing.assert_allclose(total.values, a * phi_f.values + b * phi_g.values, rtol=0, atol=1e-9)  # linearity
        if name in ("exact", "kernel"):  # samplers have these properties on average only
            assert phi_f.values[0] == pytest.approx(phi_f.values[1], abs=1e-9), name  # symmetry
            assert phi_f.values[2] == pytest.approx(0, abs=1e-9), name  # dummy
        if name != "kernel-sampled":  # 2M coalitions need not pin down every direction
            linear = estimate(lambda X: X @ w + 1.5, x, background)  # noqa: B023
            np.testing.assert_allclose(linear.values, w * (x - background.mean(0)), rtol=0, atol=1e-9, err_msg=name)


# ---------------------------------------------------------------------------------------------------- tokens
@pytest.fixture(scope="module")
def bert():
    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(vocab_size=40, max_len=16, d_model=16, num_layers=1,
                                                     num_heads=2, d_ff=32, num_labels=3, pad_id=0))
    for p in model.parameters():  # BERT's init (std 0.02) makes every token nearly irrelevant
        torch.nn.init.normal_(p, std=0.5)
    return model.double().eval()


def logit(model, ids, mask=None, target=2):
    mask = None if mask is None else torch.tensor([mask])
    with torch.no_grad():
        return model(torch.as_tensor(ids)[None], attention_mask=mask)[0, target]


TEXT, REAL = [CLS, 5, 9, 12, 7, 30, SEP, 0, 0], [1, 1, 1, 1, 1, 1, 1, 0, 0]


@pytest.mark.parametrize("absent", ["mask", "pad", "delete"])
def test_token_shap_absence_modes(bert, absent):
    result = token_shap(bert, torch.tensor([TEXT]), torch.tensor([REAL]), target=2, absent=absent, mask_id=MASK,
                        keep_ids=(CLS, SEP))
    assert result.values.shape == (1, 9)  # the input's shape
    values = result.values[0]
    assert np.all(values[[0, 6, 7, 8]] == 0) and np.abs(values).max() > 1e-3  # kept and padding get 0
    assert token_shap(bert, torch.tensor(TEXT), torch.tensor(REAL), target=2, absent=absent, mask_id=MASK,
                      keep_ids=(CLS, SEP)).values.shape == (9,)
    # every player present is the text itself (efficiency), every player absent is the mode's empty text
    assert result.values.sum() + result.base_value == pytest.approx(float(logit(bert, TEXT, REAL)), abs=1e-10)
    empty = {"mask": (TEXT[:1] + [MASK] * 5 + TEXT[6:], REAL), "pad": (TEXT, [1, 0, 0, 0, 0, 0, 1, 0, 0]),
             "delete": ([CLS, SEP] + [0] * 7, [1, 1] + [0] * 7)}[absent]
    assert result.base_value == pytest.approx(float(logit(bert, *empty)), abs=1e-10)
    assert result.n_evaluations == 2**5 + 1


def test_token_shap_kernel_path(bert):
    text = [CLS, 4, 8, 15, 16, 23, 30, 11, SEP]
    exact = token_shap(bert, text, target=0, absent="pad", keep_ids=(CLS, SEP))
    enumerated = token_shap(bert, text, target=0, absent="pad", keep_ids=(CLS, SEP), exact_up_to=4, n_samples=126)
    np.testing.assert_allclose(enumerated.values, exact.values, rtol=0, atol=1e-10)
    sampled = [token_shap(bert, text, target=0, absent="delete", keep_ids=(CLS,), exact_up_to=4, n_samples=40,
                          seed=3) for _ in range(2)]
    np.testing.assert_array_equal(sampled[0].values, sampled[1].values)
    assert sampled[0].values.sum() + sampled[0].base_value == pytest.approx(float(logit(bert, text, target=0)))
    probs = token_shap(bert, text, target=1, mask_id=MASK, probabilities=True)
    with torch.no_grad():
        p = bert(torch.tensor([text])).softmax(-1)[0, 1].item()
    assert probs.values.sum() + probs.base_value == pytest.approx(p, abs=1e-12)


def test_token_shap_gpt():
    torch.manual_seed(1)
    gpt = GPT(GPTConfig(vocab_size=31, block_size=20, n_layer=1, n_head=2, d_model=16)).double().eval()
    ids = torch.tensor([4, 8, 15, 16, 23, 30, 2])
    with torch.no_grad():
        logits = gpt(ids[None]).logits[0]  # (L, V)
    for absent in ("mask", "pad", "delete"):  # next-token prediction: the logit of token 7 after the last token
        result = token_shap(gpt, ids, target=7, absent=absent, mask_id=0)
        assert result.values.sum() + result.base_value == pytest.approx(logits[-1, 7].item(), abs=1e-10)
        assert (result.values[-1] == 0) == (absent != "mask")  # the read token stays unless masked
    result = token_shap(gpt, ids, target=7, absent="delete", position=3)
    assert np.all(result.values[3:] == 0) and result.values.sum() + result.base_value == pytest.approx(
        logits[3, 7].item(), abs=1e-10)
    with torch.no_grad():  # with the three earlier tokens deleted, token 16 is read alone at position 0
        assert result.base_value == pytest.approx(gpt(ids[None, 3:4]).logits[0, 0, 7].item(), abs=1e-10)
    classifier = GPTClassifier(gpt, 3).double().eval()
    result = token_shap(classifier, ids, target=1, absent="pad", keep_ids=(2,))
    assert result.values.sum() + result.base_value == pytest.approx(logit(classifier, ids, target=1).item())


# ---------------------------------------------------------------------------------------------------- bad input
F, X, BACKGROUND = problem(3)
TOKENS = torch.tensor([CLS, 5, 9, SEP])
BAD_INPUTS = {
    "empty background": lambda bert: exact_shapley(F, X, BACKGROUND[:0], target=0),
    "width mismatch": lambda bert: kernel_shap(F, X, BACKGROUND[:, :2], target=0),
    "no features": lambda bert: permutation_shap(F, X[:0], BACKGROUND[:, :0], target=0),
    "NaN model": lambda bert: exact_shapley(lambda X: np.full(len(X), np.nan), X, BACKGROUND),
    "target out of range": lambda bert: exact_shapley(F, X, BACKGROUND, target=3),
    "missing target": lambda bert: exact_shapley(F, X, BACKGROUND),
    "too many features for exact": lambda bert: exact_shapley(lambda X: X[:, 0], np.zeros(21), np.ones((2, 21))),
    "too few samples": lambda bert: kernel_shap(F, *problem(14)[1:], n_samples=20, target=0),
    "zero samples": lambda bert: kernel_shap(F, X, BACKGROUND, n_samples=0, target=0),
    "zero permutations": lambda bert: permutation_shap(F, X, BACKGROUND, n_permutations=0, target=0),
    "unknown absence": lambda bert: token_shap(bert, TOKENS, target=0, absent="zero", mask_id=MASK),
    "mask without mask_id": lambda bert: token_shap(bert, TOKENS, target=0),
    "pad with nothing kept": lambda bert: token_shap(bert, TOKENS, target=0, absent="pad"),
    "token target out of range": lambda bert: token_shap(bert, TOKENS, target=5, mask_id=MASK),
    "position on a classifier": lambda bert: token_shap(bert, TOKENS, target=0, mask_id=MASK, position=2),
    "exact_up_to too large": lambda bert: token_shap(bert, TOKENS, target=0, mask_id=MASK, exact_up_to=21),
    "two texts": lambda bert: token_shap(bert, TOKENS[None].repeat(2, 1), target=0, mask_id=MASK),
    "mask of another length": lambda bert: token_shap(bert, TOKENS, torch.ones(3), target=0, mask_id=MASK),
}


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input(bert, case):
    with pytest.raises(ValueError):
        BAD_INPUTS[case](bert)


def test_positional_order_is_the_documented_one():
    """``kernel_shap(f, x, background, n_samples, seed)`` and ``permutation_shap(f, x, background, n, seed)``."""
    f, x, background = problem(6, seed=2)
    np.testing.assert_array_equal(kernel_shap(f, x, background, 40, 7, 0).values,
                                  kernel_shap(f, x, background, n_samples=40, seed=7, target=0).values)
    np.testing.assert_array_equal(permutation_shap(f, x, background, 3, 5, 1).values,
                                  permutation_shap(f, x, background, n_permutations=3, seed=5, target=1).values)
