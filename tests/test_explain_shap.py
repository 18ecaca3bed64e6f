"""Tests of bigtut.explain.shap: exact Shapley values equal a brute-force sum and shap's ExactExplainer, KernelSHAP
equals shap's KernelExplainer when every coalition is enumerated and converges when it samples, permutation
sampling converges, the Shapley axioms hold, token_shap explains BERT, GPT classifiers and GPT itself, the
vectorised token game equals a loop over coalitions, token_shap / token_permutation_shap with shap_compatible=True
equal shap's KernelExplainer / PermutationExplainer on 48-token texts at the very same coalitions, and every
method keeps the family's shape: a batch in, one row = that row alone, bad arguments refused by name."""

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
from bigtut.explain.common import DEFAULT_BATCH_SIZE, DEFAULT_SEED
from bigtut.explain.shap import (
    _kernel_design,
    coalition_weight,
    exact_shapley,
    kernel_shap,
    permutation_shap,
)
from bigtut.explain.shap_designs import _shap_kernel_design, _shap_permutation_orders
from bigtut.explain.shap_tokens import _token_games, token_permutation_shap, token_shap
from bigtut.gpt import GPT, GPTClassifier, GPTConfig

CLS, SEP, MASK = 1, 2, 3


def problem(m, n_background=6, seed=0):
    """A non-additive 3-class model ``f`` (interactions, so sampling estimators are not exact), one row ``x``
    ``(M,)`` and background ``(R, M)``; the methods take ``x[None]``."""
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
    result = exact_shapley(f, x[None], target=2, background=background)
    assert result.attributions.shape == (1, m) and result.attributions.dtype == np.float64
    assert result.base_value.shape == (1,) and isinstance(result.n_evaluations, int)
    np.testing.assert_allclose(result.attributions[0], brute_force(lambda X: f(X)[:, 2], x, background), rtol=0,
                               atol=1e-12)
    assert result.base_value[0] == pytest.approx(f(background)[:, 2].mean(), abs=1e-12)
    assert result.n_evaluations == 2**m * len(background)


@pytest.mark.parametrize("m", [2, 5, 8])
def test_exact_equals_shap_exact_explainer(m):
    f, x, background = problem(m, n_background=12, seed=m)
    g = lambda X: f(X)[:, 0]  # noqa: E731
    reference = shap.explainers.Exact(g, shap.maskers.Independent(background, max_samples=len(background)))(x[None])
    result = exact_shapley(g, x[None], background=background, batch_size=50)  # several model calls
    np.testing.assert_allclose(result.attributions[0], reference.values[0], rtol=0, atol=1e-10)
    assert abs(result.base_value[0] - reference.base_values[0]) < 1e-10


def test_batch_size_bounds_the_rows_of_a_call_and_changes_nothing():
    f, x, background = problem(5, n_background=7)
    sizes = []

    def g(X):
        sizes.append(len(X))
        return f(X)[:, 1]

    small = exact_shapley(g, x[None], background=background, batch_size=3)  # fewer rows than one coalition has
    assert max(sizes) == 3 and sum(sizes) == small.n_evaluations
    sizes.clear()
    default = exact_shapley(g, x[None], background=background)
    assert max(sizes) <= DEFAULT_BATCH_SIZE and sum(sizes) == default.n_evaluations
    np.testing.assert_allclose(small.attributions, default.attributions, rtol=0, atol=1e-12)


# ---------------------------------------------------------------------------------------------------- kernel
@pytest.mark.parametrize("m", [2, 3, 6, 9, 11])
def test_kernel_equals_shap_kernel_explainer_when_enumerated(m):
    f, x, background = problem(m, n_background=5, seed=10 + m)
    if m >= 6:
        background[:, 1] = x[1]  # a feature that never varies is no player (shap drops it too)
    g = lambda X: f(X)[:, 1]  # noqa: E731
    result = kernel_shap(f, x[None], target=1, background=background, n_samples=2**m - 2)
    for nsamples in (2**m - 2, "auto"):
        np.testing.assert_allclose(result.attributions[0], shap_kernel(g, x, background, nsamples), rtol=0,
                                   atol=1e-8)
    np.testing.assert_allclose(result.attributions, exact_shapley(g, x[None], background=background).attributions,
                               rtol=0, atol=1e-10)
    np.testing.assert_array_equal(kernel_shap(f, x[None], target=1, background=background, seed=5).attributions,
                                  result.attributions)
    if m >= 6:
        assert result.attributions[0, 1] == 0


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
    exact = exact_shapley(f, x[None], target=0, background=background)

    def kernel(n_samples, seed):
        return kernel_shap(f, x[None], target=0, background=background, n_samples=n_samples, seed=seed)

    def error(n_samples):
        return np.mean([np.abs(kernel(n_samples, s).attributions - exact.attributions).mean() for s in range(3)])

    errors = [error(n) for n in (200, 1000, 4000)]
    assert errors[0] > errors[1] > errors[2] and errors[2] < 0.5 * errors[0], errors
    first, again = (kernel(300, 7) for _ in range(2))
    np.testing.assert_array_equal(first.attributions, again.attributions)
    assert not np.array_equal(first.attributions, kernel(300, 8).attributions)
    assert first.attributions.sum() == pytest.approx(f(x[None])[0, 0] - exact.base_value[0], abs=1e-10)  # efficiency
    assert first.n_evaluations == (300 + 2) * len(background)
    np.testing.assert_array_equal(kernel(300, None).attributions, kernel(300, DEFAULT_SEED).attributions)
    w = np.linspace(-1, 1, 14)  # an additive model is fitted without error by any full-rank sample
    linear = kernel_shap(lambda X: X @ w, x[None], background=background, n_samples=300, seed=1)
    np.testing.assert_allclose(linear.attributions[0], w * (x - background.mean(0)), rtol=0, atol=1e-10)


# ---------------------------------------------------------------------------------------------------- permutations
def test_permutation_sampling():
    f, x, background = problem(2)
    np.testing.assert_allclose(  # one antithetic pair is every order of two features
        permutation_shap(f, x[None], target=0, background=background, n_permutations=1).attributions,
        exact_shapley(f, x[None], target=0, background=background).attributions, rtol=0, atol=1e-12)
    f, x, background = problem(6, seed=4)
    exact = exact_shapley(f, x[None], target=1, background=background).attributions

    def permutation(n, seed):
        return permutation_shap(f, x[None], target=1, background=background, n_permutations=n, seed=seed)

    errors = [np.mean([np.abs(permutation(n, s).attributions - exact).mean() for s in range(4)]) for n in (2, 200)]
    assert errors[1] < 0.3 * errors[0], errors
    first, again = (permutation(5, 2) for _ in range(2))
    np.testing.assert_array_equal(first.attributions, again.attributions)
    assert first.n_evaluations == (2 + 2 * 5 * 5) * len(background)


# ---------------------------------------------------------------------------------------------------- batches
TABULAR = {
    "exact": lambda f, x, bg, **kw: exact_shapley(f, x, background=bg, **kw),
    "kernel": lambda f, x, bg, **kw: kernel_shap(f, x, background=bg, **kw),
    "kernel-sampled": lambda f, x, bg, **kw: kernel_shap(f, x, background=bg, n_samples=40, seed=3, **kw),
    "permutation": lambda f, x, bg, **kw: permutation_shap(f, x, background=bg, n_permutations=4, seed=2, **kw),
}


@pytest.mark.parametrize("name", TABULAR)
def test_a_batch_is_its_rows_explained_alone(name):
    f, _, background = problem(7, seed=5)
    rows = np.random.default_rng(9).normal(size=(3, 7))
    rows[1, 2] = background[0, 2] = background[1, 2] = background[2, 2] = 0.0  # row 1: feature 2 is only partly a
    explain = TABULAR[name]  # player in the background; and a row with fewer players below
    rows[2, 4], background[:, 4] = 1.5, 1.5
    batch = explain(f, rows, background, target=[0, 2, 1], batch_size=64)
    alone = [explain(f, rows[b:b + 1], background, target=t) for b, t in enumerate([0, 2, 1])]
    assert batch.attributions.shape == (3, 7) and batch.base_value.shape == (3,)
    np.testing.assert_allclose(batch.attributions, np.concatenate([r.attributions for r in alone]), rtol=0,
                               atol=1e-12)
    np.testing.assert_allclose(batch.base_value, np.concatenate([r.base_value for r in alone]), rtol=0, atol=1e-12)
    assert batch.n_evaluations == sum(r.n_evaluations for r in alone)
    efficiency = f(rows)[np.arange(3), [0, 2, 1]] - batch.base_value  # (3,)
    np.testing.assert_allclose(batch.attributions.sum(1), efficiency, rtol=0, atol=1e-10)
    if name.startswith("kernel"):
        assert batch.attributions[2, 4] == 0  # no player in that row


def test_target_per_row_and_tensor_inputs():
    f, x, background = problem(4, seed=8)
    rows = np.stack([x, -x])  # (2, 4)
    same = exact_shapley(f, rows, target=1, background=background)
    each = exact_shapley(f, rows, target=torch.tensor([1, 2]), background=background)
    np.testing.assert_array_equal(each.attributions[0], same.attributions[0])
    np.testing.assert_allclose(each.attributions[1], exact_shapley(f, rows[1:], target=2, background=background)
                               .attributions[0], rtol=0, atol=1e-12)
    weights = torch.tensor(np.random.default_rng(0).normal(size=(4, 3)))
    seen = []

    def model(X):  # a torch function: tensor inputs reach it as tensors of their dtype
        seen.append((type(X), X.dtype))
        return torch.tanh(X @ weights.to(X.dtype))

    as_tensor = exact_shapley(model, torch.tensor(rows), target=[1, 2], background=torch.tensor(background))
    assert set(seen) == {(torch.Tensor, torch.float64)}
    as_array = exact_shapley(lambda X: model(torch.as_tensor(X)).numpy(), rows, target=[1, 2], background=background)
    np.testing.assert_allclose(as_tensor.attributions, as_array.attributions, rtol=0, atol=1e-12)
    assert isinstance(as_tensor.attributions, np.ndarray) and isinstance(as_tensor.base_value, np.ndarray)
    as_float32 = kernel_shap(model, torch.tensor(rows).float(), target=1, background=background)
    assert as_float32.attributions.dtype == np.float64 and seen[-1][1] == torch.float32
    module = torch.nn.Linear(4, 3).double()  # a module gets tensors in its parameters' dtype, NumPy inputs too
    with torch.no_grad():
        module.weight.copy_(weights.T)
        module.bias.zero_()
    by_module = exact_shapley(torch.nn.Sequential(module, torch.nn.Tanh()), rows, target=[1, 2],
                              background=background)
    np.testing.assert_allclose(by_module.attributions, as_array.attributions, rtol=0, atol=1e-12)


def test_everything_after_the_inputs_is_keyword_only():
    f, x, background = problem(3)
    for method in (exact_shapley, kernel_shap, permutation_shap):
        with pytest.raises(TypeError):
            method(f, x[None], background)


# ---------------------------------------------------------------------------------------------------- axioms
ESTIMATORS = {
    "exact": lambda f, x, bg: exact_shapley(f, x[None], background=bg),
    "kernel": lambda f, x, bg: kernel_shap(f, x[None], background=bg),
    "kernel-sampled": lambda f, x, bg: kernel_shap(f, x[None], background=bg, n_samples=2 * len(x), seed=1),
    "permutation": lambda f, x, bg: permutation_shap(f, x[None], background=bg, n_permutations=3, seed=1),
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
        values_f = phi_f.attributions[0]
        assert values_f.sum() == pytest.approx(f(x[None])[0] - phi_f.base_value[0], abs=1e-9), name  # efficiency
        np.testing.assert_allclose(total.attributions, a * phi_f.attributions + b * phi_g.attributions, rtol=0,
                                   atol=1e-9)  # linearity
        if name in ("exact", "kernel"):  # samplers have these properties on average only
            assert values_f[0] == pytest.approx(values_f[1], abs=1e-9), name  # symmetry
            assert values_f[2] == pytest.approx(0, abs=1e-9), name  # dummy
        if name != "kernel-sampled":  # 2M coalitions need not pin down every direction
            linear = estimate(lambda X: X @ w + 1.5, x, background)  # noqa: B023
            np.testing.assert_allclose(linear.attributions[0], w * (x - background.mean(0)), rtol=0, atol=1e-9,
                                       err_msg=name)


# ---------------------------------------------------------------------------------------------------- tokens
@pytest.fixture(scope="module")
def bert():
    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(vocab_size=40, max_len=16, d_model=16, num_layers=1,
                                                     num_heads=2, d_ff=32, num_labels=3, pad_id=0))
    for p in model.parameters():  # BERT's init (std 0.02) makes every token nearly irrelevant
        torch.nn.init.normal_(p, std=0.5)
    return model.double().eval()


@pytest.fixture(scope="module")
def gpt():
    torch.manual_seed(1)
    return GPT(GPTConfig(vocab_size=31, block_size=20, n_layer=1, n_head=2, d_model=16)).double().eval()


def logit(model, ids, mask=None, target=2):
    mask = None if mask is None else torch.tensor([mask])
    with torch.no_grad():
        return model(torch.as_tensor(ids)[None], attention_mask=mask)[0, target]


TEXT, REAL = [CLS, 5, 9, 12, 7, 30, SEP, 0, 0], [1, 1, 1, 1, 1, 1, 1, 0, 0]


@pytest.mark.parametrize("absent", ["mask", "pad", "delete"])
def test_token_shap_absence_modes(bert, absent):
    result = token_shap(bert, torch.tensor([TEXT]), torch.tensor([REAL]), target=2, absent=absent, mask_id=MASK,
                        keep_ids=(CLS, SEP))
    assert result.attributions.shape == (1, 9) and result.base_value.shape == (1,)  # the input's shape
    values = result.attributions[0]
    assert np.all(values[[0, 6, 7, 8]] == 0) and np.abs(values).max() > 1e-3  # kept and padding get 0
    # every player present is the text itself (efficiency), every player absent is the mode's empty text
    assert values.sum() + result.base_value[0] == pytest.approx(float(logit(bert, TEXT, REAL)), abs=1e-10)
    empty = {"mask": (TEXT[:1] + [MASK] * 5 + TEXT[6:], REAL), "pad": (TEXT, [1, 0, 0, 0, 0, 0, 1, 0, 0]),
             "delete": ([CLS, SEP] + [0] * 7, [1, 1] + [0] * 7)}[absent]
    assert result.base_value[0] == pytest.approx(float(logit(bert, *empty)), abs=1e-10)
    assert result.n_evaluations == 2**5 + 1


def test_token_shap_kernel_path(bert):
    text = torch.tensor([[CLS, 4, 8, 15, 16, 23, 30, 11, SEP]])
    exact = token_shap(bert, text, target=0, absent="pad", keep_ids=(CLS, SEP))
    enumerated = token_shap(bert, text, target=0, absent="pad", keep_ids=(CLS, SEP), exact_up_to=4, n_samples=126)
    np.testing.assert_allclose(enumerated.attributions, exact.attributions, rtol=0, atol=1e-10)
    sampled = [token_shap(bert, text, target=0, absent="delete", keep_ids=(CLS,), exact_up_to=4, n_samples=40,
                          seed=3) for _ in range(2)]
    np.testing.assert_array_equal(sampled[0].attributions, sampled[1].attributions)
    assert sampled[0].attributions.sum() + sampled[0].base_value[0] == pytest.approx(
        float(logit(bert, text[0], target=0)))
    probs = token_shap(bert, text, target=1, mask_id=MASK, probabilities=True)
    with torch.no_grad():
        p = bert(text).softmax(-1)[0, 1].item()
    assert probs.attributions.sum() + probs.base_value[0] == pytest.approx(p, abs=1e-12)


def test_token_shap_gpt(gpt):
    ids = torch.tensor([[4, 8, 15, 16, 23, 30, 2]])
    with torch.no_grad():
        logits = gpt(ids).logits[0]  # (L, V)
    for absent in ("mask", "pad", "delete"):  # next-token prediction: the logit of token 7 after the last token
        result = token_shap(gpt, ids, target=7, absent=absent, mask_id=0)
        values = result.attributions[0]
        assert values.sum() + result.base_value[0] == pytest.approx(logits[-1, 7].item(), abs=1e-10)
        assert (values[-1] == 0) == (absent != "mask")  # the read token stays unless masked
    result = token_shap(gpt, ids, target=7, absent="delete", position=3)
    values = result.attributions[0]
    assert np.all(values[3:] == 0) and values.sum() + result.base_value[0] == pytest.approx(
        logits[3, 7].item(), abs=1e-10)
    with torch.no_grad():  # with the three earlier tokens deleted, token 16 is read alone at position 0
        assert result.base_value[0] == pytest.approx(gpt(ids[:, 3:4]).logits[0, 0, 7].item(), abs=1e-10)
    counted_back = token_shap(gpt, ids, target=7, absent="delete", position=-4)  # 4th real token from the end
    np.testing.assert_array_equal(counted_back.attributions, result.attributions)
    classifier = GPTClassifier(gpt, 3).double().eval()
    result = token_shap(classifier, ids, target=1, absent="pad", keep_ids=(2,))
    assert result.attributions.sum() + result.base_value[0] == pytest.approx(logit(classifier, ids[0], target=1).item())


@pytest.mark.parametrize("absent", ["mask", "pad", "delete"])
def test_token_shap_batch_is_its_rows_alone(bert, gpt, absent):
    ids = torch.tensor([TEXT, [CLS, 4, 8, 15, 16, 23, 30, 11, SEP], [CLS, 7, 7, SEP, 0, 0, 0, 0, 0]])  # (3, 9)
    mask = (torch.arange(9) < torch.tensor([7, 9, 4])[:, None]).long()  # (3, 9)
    kw = dict(absent=absent, mask_id=MASK, keep_ids=(CLS, SEP), exact_up_to=5, n_samples=30, seed=4)
    batch = token_shap(bert, ids, mask, target=[2, 0, 1], batch_size=7, **kw)  # row 1: KernelSHAP (7 players)
    alone = [token_shap(bert, ids[b:b + 1], mask[b:b + 1], target=t, **kw) for b, t in enumerate([2, 0, 1])]
    assert batch.attributions.shape == (3, 9) and batch.base_value.shape == (3,)
    np.testing.assert_allclose(batch.attributions, np.concatenate([r.attributions for r in alone]), rtol=0,
                               atol=1e-10)
    np.testing.assert_allclose(batch.base_value, np.concatenate([r.base_value for r in alone]), rtol=0, atol=1e-10)
    assert batch.n_evaluations == sum(r.n_evaluations for r in alone)
    assert np.all(batch.attributions[mask.numpy() == 0] == 0)
    # a language model reads each row at its own last real token, wherever the padding is
    lm_ids = torch.tensor([[4, 8, 15, 16, 23, 30, 2], [5, 6, 7, 0, 0, 0, 0], [9, 9, 9, 9, 1, 0, 0]])
    lm_mask = (torch.arange(7) < torch.tensor([7, 3, 5])[:, None]).long()
    for position in (None, -2):
        batch = token_shap(gpt, lm_ids, lm_mask, target=[7, 3, 1], absent=absent, mask_id=0, position=position)
        for b, t in enumerate([7, 3, 1]):
            n = int(lm_mask[b].sum())
            one = token_shap(gpt, lm_ids[b:b + 1, :n], target=t, absent=absent, mask_id=0, position=position)
            np.testing.assert_allclose(batch.attributions[b, :n], one.attributions[0], rtol=0, atol=1e-10)
            assert batch.base_value[b] == pytest.approx(one.base_value[0], abs=1e-10)
            read = n - 1 if position is None else n - 2
            assert np.all(batch.attributions[b, read + 1:] == 0)


# ------------------------------------------------------------------- tokens: the vectorised game = a plain loop
def one_coalition(model, ids, real, index, present, absent, read, target):
    """The value of one coalition, its text built token by token and run alone: the reference for the game."""
    ids, real = ids.tolist(), real.tolist()
    gone = {int(i) for i, p in zip(index, present) if not p}
    if absent == "mask":
        row, seen, where = [MASK if k in gone else t for k, t in enumerate(ids)], real, read
    elif absent == "pad":
        row, seen, where = ids, [0 if k in gone else a for k, a in enumerate(real)], read
    else:
        kept = [k for k in range(len(ids)) if real[k] and k not in gone]
        row, seen, where = [ids[k] for k in kept], [1] * len(kept), None if read is None else kept.index(read)
    with torch.no_grad():
        out = model(torch.tensor([row]), attention_mask=torch.tensor([seen]))
    logits = getattr(out, "logits", out)[0]  # (C,) or (L, V)
    return float((logits if where is None else logits[where])[target])


@pytest.mark.parametrize("absent", ["mask", "pad", "delete"])
def test_the_vectorised_token_game_equals_a_loop_over_coalitions(bert, gpt, absent):
    ids = torch.tensor([TEXT, [CLS, 4, 8, 15, 16, 23, 30, 11, SEP], [CLS, 7, 7, SEP, 0, 0, 0, 0, 0]])  # (3, 9)
    mask = (torch.arange(9) < torch.tensor([7, 9, 4])[:, None]).long()  # (3, 9)
    lm_ids = torch.tensor([[4, 8, 15, 16, 23, 30, 2, 0, 0], [5, 6, 7, 8, 9, 10, 11, 12, 13]])  # (2, 9)
    lm_mask = (torch.arange(9) < torch.tensor([7, 9])[:, None]).long()
    cases = [(bert, ids, mask, [2, 0, 1], None), (GPTClassifier(gpt, 3).double().eval(), ids, mask, [1, 2, 0], None),
             (gpt, lm_ids, lm_mask, [7, 3], [-1, 5])]
    rng = np.random.default_rng(0)
    for model, rows, real, targets, position in cases:
        games, _ = _token_games(model, rows, real, target=targets, absent=absent, mask_id=MASK, pad_id=None,
                                keep_ids=(CLS, SEP) if model is not gpt else (), batch_size=5,
                                probabilities=False, position=position, check_players=lambda m: None)
        for b, (index, game) in enumerate(games):
            coalitions = rng.random((40, len(index))) < rng.random((40, 1))  # (40, P): sizes of every kind
            coalitions[20:25] = coalitions[:5]  # repeats run once, and still get their value
            read = None
            if model is gpt:
                n_real = int(real[b].sum())
                read = n_real - 1 if position[b] == -1 else position[b]
            expected = [one_coalition(model, rows[b], real[b], index, c, absent, read, targets[b]) for c in coalitions]
            np.testing.assert_allclose(game(coalitions), expected, rtol=0, atol=1e-10)
            assert game(coalitions[:0]).shape == (0,)


# ------------------------------------------------------------------------- tokens: shap's own samples, equal answers
N_PLAYERS = 46  # [CLS] + 46 players + [SEP]: 48-token inputs


def token_model(kind, seed):
    """A random float64 classifier of 48-token texts, parameters drawn from N(0, 0.5²) so that every token
    matters (at the usual 0.02 scale the logits hardly move when tokens go)."""
    torch.manual_seed(seed)
    if kind == "bert":
        model = BertForSequenceClassification(BertConfig(vocab_size=40, max_len=48, d_model=16, num_layers=1,
                                                         num_heads=2, d_ff=32, num_labels=3, pad_id=0))
    else:
        model = GPTClassifier(GPT(GPTConfig(vocab_size=40, block_size=48, n_layer=1, n_head=2, d_model=16)), 3)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.5)
    return model.double().eval()


def text_of_48(seed):
    """``(1, 48)`` ids: [CLS], 46 word ids (4..39), [SEP]."""
    words = torch.randint(4, 40, (N_PLAYERS,), generator=torch.Generator().manual_seed(seed))
    return torch.cat([torch.tensor([CLS]), words, torch.tensor([SEP])])[None]


def masked_texts(model, text, absent, target):
    """``f(masks (K, 46)) -> (K,)`` as a user writes it for shap: each presence mask becomes a text ([MASK] at
    the absent words, or the words deleted), the texts are padded to the longest and run at once. Returns ``f``,
    the masks it was handed (one array per call) and the texts it built."""
    handed, texts, words_of_text = [], set(), text[0, 1:-1].tolist()

    def f(masks):
        masks = np.asarray(masks) > 0.5  # (K, 46)
        handed.append(masks)
        rows = []
        for present in masks:
            words = [w if p else MASK for w, p in zip(words_of_text, present)] if absent == "mask" else \
                [w for w, p in zip(words_of_text, present) if p]
            rows.append([CLS, *words, SEP])
            texts.add(tuple(rows[-1]))
        width = max(len(r) for r in rows)
        ids = torch.tensor([r + [0] * (width - len(r)) for r in rows])  # (K, width)
        with torch.no_grad():
            return model(ids, attention_mask=(torch.arange(width) < torch.tensor([len(r) for r in rows])[:, None])
                         .long())[:, target].numpy()

    return f, handed, texts


def texts_the_model_sees(model):
    """Record every attended text a model is run on (a forward pre-hook); returns the set it fills."""
    seen = set()

    def record(module, args, kwargs):
        ids, attended = args[0], kwargs["attention_mask"].bool()
        seen.update(tuple(row[keep].tolist()) for row, keep in zip(ids, attended))

    model.register_forward_pre_hook(record, with_kwargs=True)
    return seen


@pytest.mark.parametrize(("kind", "absent", "seed"), [("bert", "mask", 0), ("bert", "mask", 1), ("bert", "delete", 2),
                                                      ("bert", "delete", 3), ("gpt", "delete", 4), ("gpt", "mask", 5)])
def test_token_kernel_shap_equals_shap_kernel_explainer_at_its_coalitions(kind, absent, seed):
    model, text, n_samples, target = token_model(kind, seed), text_of_48(seed), 200 + 40 * seed, seed % 3
    f, handed, texts = masked_texts(model, text, absent, target)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        explainer = shap.KernelExplainer(f, np.zeros((1, N_PLAYERS)))
        np.random.seed(seed)  # shap samples from NumPy's global generator
        theirs = explainer.shap_values(np.ones(N_PLAYERS), nsamples=n_samples, l1_reg=False, silent=True)
    seen = texts_the_model_sees(model)
    ours = token_shap(model, text, target=target, absent=absent, mask_id=MASK, keep_ids=(CLS, SEP),
                      n_samples=n_samples, seed=seed, batch_size=64, shap_compatible=True)
    np.testing.assert_allclose(ours.attributions[0, 1:-1], theirs, rtol=0, atol=1e-10)
    assert ours.attributions[0, 0] == ours.attributions[0, -1] == 0
    assert abs(ours.base_value[0] - float(np.ravel(explainer.expected_value)[0])) < 1e-10
    assert np.abs(theirs).max() > 0.01  # the words matter: 1e-8 is a real comparison
    # the same coalitions: shap's calls on the background (∅) and on x (N), then its design, row for row
    assert [len(h) for h in handed] == [1, 1, n_samples]
    design, weights = _shap_kernel_design(N_PLAYERS, n_samples, seed)
    np.testing.assert_array_equal(handed[2], design)
    np.testing.assert_array_equal(explainer.maskMatrix, design)
    np.testing.assert_allclose(explainer.kernelWeights, weights, rtol=1e-13, atol=0)
    assert seen == texts  # our model ran on exactly the texts shap's function built
    default = token_shap(model, text, target=target, absent=absent, mask_id=MASK, keep_ids=(CLS, SEP),
                         n_samples=n_samples, seed=seed)
    assert not np.allclose(default.attributions, ours.attributions, atol=1e-6)  # another (valid) sample


@pytest.mark.parametrize(("kind", "absent", "seed"), [("bert", "mask", 0), ("bert", "delete", 1), ("bert", "delete", 2),
                                                      ("gpt", "delete", 3), ("gpt", "mask", 4)])
def test_token_permutation_shap_equals_shap_permutation_explainer_at_its_orders(kind, absent, seed):
    model, text, n_permutations, target = token_model(kind, seed), text_of_48(seed), 2 + seed % 3, (seed + 1) % 3
    f, handed, texts = masked_texts(model, text, absent, target)
    explainer = shap.PermutationExplainer(f, lambda mask, x: (x * mask)[None], seed=seed)
    theirs = explainer(np.ones((1, N_PLAYERS)), max_evals=n_permutations * (2 * N_PLAYERS + 1), batch_size=64,
                       silent=True)
    seen = texts_the_model_sees(model)
    ours = token_permutation_shap(model, text, target=target, absent=absent, mask_id=MASK, keep_ids=(CLS, SEP),
                                  n_permutations=n_permutations, seed=seed, batch_size=64, shap_compatible=True)
    np.testing.assert_allclose(ours.attributions[0, 1:-1], theirs.values[0], rtol=0, atol=1e-10)
    assert abs(ours.base_value[0] - theirs.base_values[0]) < 1e-10 and np.abs(theirs.values).max() > 0.01
    assert ours.n_evaluations == 1 + 2 + 2 * n_permutations * (N_PLAYERS - 1)
    # the same orders: per order shap evaluates ∅, its prefixes up to N, then N with the order's players removed
    # one by one (the reverse order's prefixes)
    players = np.arange(N_PLAYERS)
    expected = []
    for order in _shap_permutation_orders(N_PLAYERS, n_permutations, seed):
        expected += [np.isin(players, order[:k]) for k in range(N_PLAYERS + 1)]
        expected += [~np.isin(players, order[:k]) for k in range(1, N_PLAYERS + 1)]
    np.testing.assert_array_equal(np.concatenate(handed), np.array(expected))
    assert seen == texts


def test_kernel_shap_shap_compatible_equals_shap_on_tables():
    for m, n_samples, seed in ((6, 40, 0), (9, 300, 1), (13, 200, 2)):
        f, x, background = problem(m, n_background=4, seed=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            np.random.seed(seed)
            theirs = shap.KernelExplainer(lambda X: f(X)[:, 2], background).shap_values(  # noqa: B023
                x, nsamples=n_samples, l1_reg=False, silent=True)
        ours = kernel_shap(f, x[None], target=2, background=background, n_samples=n_samples, seed=seed,
                           shap_compatible=True)
        np.testing.assert_allclose(ours.attributions[0], theirs, rtol=0, atol=1e-10)
        default = kernel_shap(f, x[None], target=2, background=background, n_samples=n_samples, seed=seed)
        assert not np.allclose(default.attributions, ours.attributions, atol=1e-8)


def test_shap_compatible_is_a_flag_and_changes_no_default():
    text = torch.tensor([[CLS, 4, 8, 15, 16, 23, 30, 11, 9, 12, 5, 6, 7, SEP]])  # 12 players
    kw = dict(target=1, absent="mask", mask_id=MASK, keep_ids=(CLS, SEP))
    model = token_model("bert", 0)
    ten = torch.cat([text[:, :11], text[:, -1:]], 1)  # 10 players: exact, nothing is sampled
    assert np.array_equal(token_shap(model, ten, **kw).attributions,
                          token_shap(model, ten, **kw, shap_compatible=True).attributions)
    enumerated = dict(exact_up_to=4, n_samples=2**12 - 2)  # every coalition: both designs = exact Shapley values
    np.testing.assert_allclose(token_shap(model, text, **kw, **enumerated, shap_compatible=True).attributions,
                               token_shap(model, text, **kw, exact_up_to=12).attributions, rtol=0, atol=1e-10)
    permutations = [token_permutation_shap(model, text, **kw, n_permutations=3, seed=s, shap_compatible=c)
                    for s, c in ((1, False), (1, False), (1, True))]
    np.testing.assert_array_equal(permutations[0].attributions, permutations[1].attributions)
    assert not np.allclose(permutations[0].attributions, permutations[2].attributions)
    for p in permutations:  # efficiency holds for every sample of orders
        assert p.attributions.sum() + p.base_value[0] == pytest.approx(float(logit(model, text[0], target=1)))


# ---------------------------------------------------------------------------------------------------- bad input
F, X, BACKGROUND = problem(3)
TOKENS = torch.tensor([[CLS, 5, 9, SEP]])
BAD_INPUTS = {  # case -> (call, the exception, a word the message must hold)
    "1-D inputs": (lambda bert: exact_shapley(F, X, target=0, background=BACKGROUND), ValueError, r"x\[None\]"),
    "1-D inputs (kernel)": (lambda bert: kernel_shap(F, X, target=0, background=BACKGROUND), ValueError, "inputs"),
    "3-D inputs": (lambda bert: permutation_shap(F, X[None, None], target=0, background=BACKGROUND), ValueError,
                   "inputs"),
    "list inputs": (lambda bert: exact_shapley(F, [list(X)], target=0, background=BACKGROUND), TypeError, "inputs"),
    "integer inputs": (lambda bert: exact_shapley(F, np.ones((1, 3), int), target=0, background=BACKGROUND),
                       TypeError, "inputs"),
    "empty batch": (lambda bert: exact_shapley(F, X[None][:0], target=0, background=BACKGROUND), ValueError,
                    "inputs"),
    "no features": (lambda bert: permutation_shap(F, X[None, :0], target=0, background=BACKGROUND[:, :0]),
                    ValueError, "inputs"),
    "NaN in inputs": (lambda bert: kernel_shap(F, np.array([[np.nan, 0, 0]]), target=0, background=BACKGROUND),
                      ValueError, "inputs"),
    "NaN in background": (lambda bert: exact_shapley(F, X[None], target=0, background=np.where(
        np.eye(6, 3) > 0, np.nan, BACKGROUND)), ValueError, "background"),
    "empty background": (lambda bert: exact_shapley(F, X[None], target=0, background=BACKGROUND[:0]), ValueError,
                         "background"),
    "1-D background": (lambda bert: exact_shapley(F, X[None], target=0, background=BACKGROUND[0]), ValueError,
                       "background"),
    "no background": (lambda bert: exact_shapley(F, X[None], target=0, background=None), TypeError, "background"),
    "width mismatch": (lambda bert: kernel_shap(F, X[None], target=0, background=BACKGROUND[:, :2]), ValueError,
                       "background"),
    "f returns too few rows": (lambda bert: exact_shapley(lambda X: F(X)[:1], X[None], target=0,
                                                          background=BACKGROUND), ValueError, "rows"),
    "f returns a 3-D output": (lambda bert: permutation_shap(lambda X: F(X)[:, :, None], X[None], target=0,
                                                             background=BACKGROUND), ValueError, "shape"),
    "f not callable": (lambda bert: exact_shapley(3, X[None], background=BACKGROUND), TypeError, "f"),
    "NaN model": (lambda bert: exact_shapley(lambda X: np.full(len(X), np.nan), X[None], background=BACKGROUND),
                  ValueError, "NaN"),
    "target out of range": (lambda bert: exact_shapley(F, X[None], target=3, background=BACKGROUND), ValueError,
                            "target"),
    "targets of another length": (lambda bert: exact_shapley(F, X[None], target=[0, 1], background=BACKGROUND),
                                  ValueError, "target"),
    "float target": (lambda bert: kernel_shap(F, X[None], target=1.0, background=BACKGROUND), TypeError, "target"),
    "missing target": (lambda bert: exact_shapley(F, X[None], background=BACKGROUND), ValueError, "target"),
    "too many features for exact": (lambda bert: exact_shapley(lambda X: X[:, 0], np.zeros((1, 21)),
                                                               background=np.ones((2, 21))), ValueError, "M <= 20"),
    "too few samples": (lambda bert: kernel_shap(F, problem(14)[1][None], target=0, background=problem(14)[2],
                                                 n_samples=20), ValueError, "n_samples"),
    "zero samples": (lambda bert: kernel_shap(F, X[None], target=0, background=BACKGROUND, n_samples=0), ValueError,
                     "n_samples"),
    "zero permutations": (lambda bert: permutation_shap(F, X[None], target=0, background=BACKGROUND,
                                                        n_permutations=0), ValueError, "n_permutations"),
    "negative seed": (lambda bert: kernel_shap(F, X[None], target=0, background=BACKGROUND, seed=-1), ValueError,
                      "seed"),
    "zero batch_size": (lambda bert: exact_shapley(F, X[None], target=0, background=BACKGROUND, batch_size=0),
                        ValueError, "batch_size"),
    "probabilities not a bool": (lambda bert: exact_shapley(F, X[None], target=0, background=BACKGROUND,
                                                            probabilities="yes"), TypeError, "probabilities"),
    "1-D input_ids": (lambda bert: token_shap(bert, TOKENS[0], target=0, mask_id=MASK), ValueError, r"ids\[None\]"),
    "float input_ids": (lambda bert: token_shap(bert, TOKENS.double(), target=0, mask_id=MASK), TypeError,
                        "input_ids"),
    "list input_ids": (lambda bert: token_shap(bert, TOKENS.tolist(), target=0, mask_id=MASK), TypeError,
                       "input_ids"),
    "input_ids out of the vocabulary": (lambda bert: token_shap(bert, TOKENS + 40, target=0, mask_id=MASK),
                                        ValueError, "input_ids"),
    "mask of another shape": (lambda bert: token_shap(bert, TOKENS, torch.ones(1, 3), target=0, mask_id=MASK),
                              ValueError, "attention_mask"),
    "a row without a real token": (lambda bert: token_shap(bert, TOKENS, torch.zeros(1, 4), target=0, mask_id=MASK),
                                   ValueError, "real token"),
    "unknown absence": (lambda bert: token_shap(bert, TOKENS, target=0, absent="zero", mask_id=MASK), ValueError,
                        "absent"),
    "mask without mask_id": (lambda bert: token_shap(bert, TOKENS, target=0), ValueError, "mask_id"),
    "mask_id out of range": (lambda bert: token_shap(bert, TOKENS, target=0, mask_id=40), ValueError, "mask_id"),
    "float mask_id": (lambda bert: token_shap(bert, TOKENS, target=0, mask_id=3.0), ValueError, "mask_id"),
    "pad_id out of range": (lambda bert: token_shap(bert, TOKENS, target=0, absent="pad", pad_id=-1,
                                                    keep_ids=(CLS,)), ValueError, "pad_id"),
    "keep_ids of floats": (lambda bert: token_shap(bert, TOKENS, target=0, absent="pad", keep_ids=(1.0,)),
                           TypeError, "keep_ids"),
    "pad with nothing kept": (lambda bert: token_shap(bert, TOKENS, target=0, absent="pad"), ValueError,
                              "keep_ids"),
    "token target out of range": (lambda bert: token_shap(bert, TOKENS, target=5, mask_id=MASK), ValueError,
                                  "target"),
    "token targets of another length": (lambda bert: token_shap(bert, TOKENS, target=[0, 1], mask_id=MASK),
                                        ValueError, "target"),
    "position on a classifier": (lambda bert: token_shap(bert, TOKENS, target=0, mask_id=MASK, position=2),
                                 ValueError, "position"),
    "exact_up_to too large": (lambda bert: token_shap(bert, TOKENS, target=0, mask_id=MASK, exact_up_to=21),
                              ValueError, "exact_up_to"),
    "too few token samples": (lambda bert: token_shap(bert, torch.arange(4, 20)[None], target=0, mask_id=MASK,
                                                      exact_up_to=3, n_samples=5), ValueError, "n_samples"),
}


@pytest.mark.parametrize("case", BAD_INPUTS)
def test_bad_input(bert, case):
    call, error, word = BAD_INPUTS[case]
    with pytest.raises(error, match=word):
        call(bert)


@pytest.mark.parametrize("position", [7, -8, 3])
def test_token_position_out_of_range(gpt, position):
    ids, mask = torch.tensor([[4, 8, 15, 16, 23, 30, 2]]), torch.tensor([[1, 1, 1, 0, 1, 1, 1]])  # 3: padding
    with pytest.raises(ValueError, match="position"):
        token_shap(gpt, ids, mask, target=7, absent="pad", position=position)


def test_bad_token_arguments_are_refused_before_the_model_runs(bert):
    calls = []
    handle = bert.register_forward_hook(lambda *args: calls.append(1))
    try:
        for case in ("1-D input_ids", "float input_ids", "unknown absence", "mask without mask_id",
                     "mask_id out of range", "exact_up_to too large", "token targets of another length"):
            with pytest.raises((TypeError, ValueError)):
                BAD_INPUTS[case][0](bert)
    finally:
        handle.remove()
    assert calls == []
