"""Tests of bigtut.explain.lime: the weighted ridge equals scikit-learn's, the explanations equal the lime
package's on the same neighbourhood (and end to end, draw for draw, for tables and images), and planted
signals come out where they were planted."""

import numpy as np
import pytest
import torch
from lime.lime_base import LimeBase
from lime.lime_image import LimeImageExplainer
from lime.lime_tabular import LimeTabularExplainer
from sklearn.linear_model import Ridge
from torch import nn

from bigtut.bert import BertConfig, BertForSequenceClassification
from bigtut.explain.lime import (
    LimeExplanation,
    digit_segments,
    fit_surrogate,
    lime_from_neighbourhood,
    lime_image,
    lime_kernel,
    lime_tabular,
    lime_text,
)
from bigtut.gpt import GPT, GPTConfig

TOL = 1e-8


def softmax_model(W: np.ndarray, b: np.ndarray):
    """A 3-class probability model ``softmax(X W + b)``, X ``(N, M)`` -> ``(N, 3)`` (what lime expects)."""
    def f(X):
        logits = np.tanh(X) @ W + b  # (N, 3), non-linear in X so the surrogate is a real approximation
        e = np.exp(logits - logits.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)
    return f


@pytest.fixture
def table():
    rng = np.random.default_rng(0)
    train = rng.normal(size=(300, 4)) * np.array([0.5, 1.0, 3.0, 10.0]) + np.array([1.0, -2.0, 0.0, 5.0])
    f = softmax_model(rng.normal(size=(4, 3)), rng.normal(size=3))
    return train, train[7] + 0.1, f


def lime_coefficients(local_exp, K: int) -> np.ndarray:
    """lime's sorted ``[(feature, weight), ...]`` as a dense ``(K,)`` vector."""
    out = np.zeros(K)
    for feature, weight in local_exp:
        out[feature] = weight
    return out


def test_kernel_is_lime_s():
    d = np.linspace(0, 5, 11)
    np.testing.assert_allclose(lime_kernel(d, 1.5), np.sqrt(np.exp(-d ** 2 / 1.5 ** 2)), rtol=1e-15)
    np.testing.assert_allclose(lime_kernel(d, 1.5), np.exp(-d ** 2 / (2 * 1.5 ** 2)), rtol=1e-12)


@pytest.mark.parametrize("alpha", [1.0, 0.3, 1e-6])
def test_weighted_ridge_equals_sklearn(alpha):
    rng = np.random.default_rng(1)
    Z, y, w = rng.normal(size=(200, 5)), rng.normal(size=200), rng.uniform(0, 1, 200)
    coefficients, intercept, score = fit_surrogate(Z, y, w, alpha)
    ridge = Ridge(alpha=alpha, fit_intercept=True).fit(Z, y, sample_weight=w)
    np.testing.assert_allclose(coefficients, ridge.coef_, rtol=0, atol=TOL)
    assert abs(intercept - ridge.intercept_) <= TOL
    assert abs(score - ridge.score(Z, y, sample_weight=w)) <= TOL


def test_same_neighbourhood_equals_lime_base(table):
    """Any neighbourhood, kernel and distances: our fit equals LimeBase.explain_instance_with_data's."""
    train, x, f = table
    rng = np.random.default_rng(2)
    inputs = x + rng.normal(size=(500, 4))  # (N, M)
    inputs[0] = x
    features = rng.integers(0, 2, size=(500, 4)).astype(float)  # any interpretable features will do
    features[0] = 1
    distances = np.linalg.norm(inputs - x, axis=1)
    ours = lime_from_neighbourhood(f, features, inputs, distances, kernel_width=1.2, target=2)
    base = LimeBase(lambda d: lime_kernel(d, 1.2), random_state=0)
    intercept, local_exp, score, local_pred = base.explain_instance_with_data(
        features, f(inputs), distances, label=2, num_features=4, feature_selection="none")
    np.testing.assert_allclose(ours.coefficients, lime_coefficients(local_exp, 4), rtol=0, atol=TOL)
    assert abs(ours.intercept - intercept) <= TOL and abs(ours.score - score) <= TOL
    assert abs(ours.prediction - local_pred[0]) <= TOL
    assert ours.value == f(inputs)[0, 2] and ours.n_samples == 500


@pytest.mark.parametrize("discretize, around", [(False, "mean"), (False, "instance"), ("quartile", "mean")])
def test_end_to_end_equals_lime_tabular(table, discretize, around):
    """Same seed, same draws: lime's explainer and ours agree to 1e-8 without sharing any array."""
    train, x, f = table
    explainer = LimeTabularExplainer(train, discretize_continuous=bool(discretize), discretizer="quartile",
                                     sample_around_instance=around == "instance", feature_selection="none",
                                     random_state=3)
    theirs = explainer.explain_instance(x, f, labels=(1,), num_features=4, num_samples=2000)
    ours = lime_tabular(f, x, train, target=1, n_samples=2000, seed=3, sample_around=around,
                        discretize=discretize)
    np.testing.assert_allclose(ours.coefficients, lime_coefficients(theirs.local_exp[1], 4), rtol=0, atol=TOL)
    assert abs(ours.intercept - theirs.intercept[1]) <= TOL
    assert abs(ours.score - theirs.score) <= TOL and abs(ours.prediction - theirs.local_pred[0]) <= TOL
    assert (ours.per_unit is None) == bool(discretize)


def test_same_seed_same_answer_other_seed_differs(table):
    train, x, f = table
    for discretize in (False, "quartile"):
        a, b, c = (lime_tabular(f, x, train, target=0, n_samples=500, seed=s, discretize=discretize)
                   for s in (5, 5, 6))
        np.testing.assert_array_equal(a.coefficients, b.coefficients)
        assert a.intercept == b.intercept and a.score == b.score
        assert np.abs(a.coefficients - c.coefficients).max() > 1e-6


def test_linear_model_recovers_weights_in_original_units(table):
    """f(x) = w·x + b. The surrogate on standardised features has slopes w·s (s = training std, here 0.5 to
    10, so a wrong unit is off by far more than 1 %); per_unit = slopes / s must give back w within 1 %."""
    train, x, _ = table
    w, b = np.array([2.0, -1.0, 0.5, 0.05]), 0.7
    out = lime_tabular(lambda X: X @ w + b, x, train, n_samples=2000, sample_around="instance", kernel_width=1.0)
    np.testing.assert_allclose(out.per_unit, w, rtol=0.01)
    np.testing.assert_allclose(out.coefficients, w * train.std(0), rtol=0.01)
    assert out.score > 0.999 and abs(out.prediction - (x @ w + b)) < 0.01 * abs(x @ w + b)


# ---------------------------------------------------------------- text


def tiny_bert() -> BertForSequenceClassification:
    torch.manual_seed(0)
    config = BertConfig(vocab_size=40, max_len=16, d_model=16, num_layers=1, num_heads=2, d_ff=32, num_labels=3,
                        pad_id=0)
    return BertForSequenceClassification(config).double().eval()


class TokenCounter(nn.Module):
    """Logit 0 = how many visible tokens have id ``token``; logit 1 = how many visible tokens do not."""

    def __init__(self, token: int, vocab: int = 40):
        super().__init__()
        self.embedding = nn.Embedding(vocab, 2)
        with torch.no_grad():
            self.embedding.weight.copy_(torch.tensor([[0.0, 1.0]]).repeat(vocab, 1))
            self.embedding.weight[token] = torch.tensor([1.0, 0.0])

    def get_input_embeddings(self) -> nn.Embedding:
        return self.embedding

    def forward(self, input_ids=None, attention_mask=None, *, inputs_embeds=None):
        e = self.embedding(input_ids) if inputs_embeds is None else inputs_embeds  # (B, L, 2)
        mask = torch.ones(e.shape[:2]) if attention_mask is None else attention_mask.to(e.dtype)  # (B, L)
        return (e * mask[..., None]).sum(1)  # (B, 2)


IDS = torch.tensor([1, 7, 12, 5, 7, 30, 22, 2, 0, 0])  # [CLS]=1 ... [SEP]=2, then two [PAD]
MASK = torch.tensor([1, 1, 1, 1, 1, 1, 1, 1, 0, 0])


@pytest.mark.parametrize("removal", ["pad", "delete"])
def test_lime_text_on_bert_shapes_zeros_determinism(removal):
    model = tiny_bert()
    run = lambda seed: lime_text(model, IDS, MASK, target=2, n_samples=300, seed=seed, removal=removal,  # noqa: E731
                                 keep_ids=(1, 2))
    out = run(0)
    assert isinstance(out, LimeExplanation) and out.coefficients.shape == (10,)
    assert (out.coefficients[[0, 7, 8, 9]] == 0).all() and (out.coefficients[1:7] != 0).all()
    with torch.no_grad():
        assert abs(out.value - model(IDS[None], MASK[None])[0, 2].item()) < 1e-12
    np.testing.assert_array_equal(out.coefficients, run(0).coefficients)
    assert np.abs(out.coefficients - run(1).coefficients).max() > 1e-9
    batched = lime_text(model, IDS[None], MASK[None], target=2, n_samples=300, seed=0, removal=removal,
                        keep_ids=(1, 2))
    assert batched.coefficients.shape == (1, 10)  # the input's shape
    np.testing.assert_array_equal(batched.coefficients[0], out.coefficients)


@pytest.mark.parametrize("removal", ["pad", "delete"])
def test_lime_text_planted_token(removal):
    """The logit counts token 7 (twice in the text): both its positions get slope ~1, every other ~0."""
    out = lime_text(TokenCounter(7), IDS, MASK, target=0, n_samples=500, removal=removal, keep_ids=(1, 2))
    np.testing.assert_allclose(out.coefficients[[1, 4]], 1.0, atol=0.02)
    np.testing.assert_allclose(np.delete(out.coefficients, [1, 4]), 0.0, atol=0.02)
    assert out.score > 0.999


def test_lime_text_language_model_reads_the_last_real_token():
    torch.manual_seed(0)
    gpt = GPT(GPTConfig(vocab_size=40, block_size=16, n_layer=1, n_head=2, d_model=16)).double().eval()
    for removal in ("pad", "delete"):
        out = lime_text(gpt, IDS, MASK, target=9, n_samples=200, removal=removal)
        assert out.coefficients.shape == (10,) and (out.coefficients[7:] == 0).all()
        with torch.no_grad():
            assert abs(out.value - gpt(IDS[None, :8]).logits[0, 7, 9].item()) < 1e-12
    out = lime_text(gpt, IDS, MASK, target=9, n_samples=200, position=4)
    assert out.coefficients[4] == 0 and (out.coefficients[:4] != 0).all() and (out.coefficients[5:8] != 0).all()


# ---------------------------------------------------------------- image


def test_digit_segments():
    seg = digit_segments()
    assert seg.shape == (8, 8) and set(np.unique(seg)) == set(range(16))
    assert (seg[:2, :2] == 0).all() and seg[0, 2] == 1 and seg[2, 0] == 4 and seg[7, 7] == 15


def test_lime_image_planted_patch():
    """The model reads the pixels of one 2×2 patch (segment 6: rows 2-3, columns 4-5) and nothing else."""
    image = np.random.default_rng(4).uniform(0.5, 1.0, (8, 8))
    f = lambda batch: batch[:, 2:4, 4:6].sum((1, 2))  # noqa: E731
    out = lime_image(f, image, n_samples=400)
    others = np.delete(out.segment_coefficients, 6)
    assert out.segment_coefficients[6] > 0.95 * image[2:4, 4:6].sum() and np.abs(others).max() < 0.05
    assert out.coefficients.shape == (8, 8) and (out.coefficients[2:4, 4:6] == out.segment_coefficients[6]).all()
    color = lime_image(lambda b: b[:, :, 2:4, 4:6].sum((1, 2, 3)), np.stack([image] * 3), n_samples=400)
    assert color.coefficients.shape == (3, 8, 8)
    np.testing.assert_allclose(color.segment_coefficients, 3 * out.segment_coefficients, atol=1e-9)


def test_lime_image_end_to_end_equals_lime():
    image = np.random.default_rng(5).uniform(0, 1, (8, 8))
    W = np.random.default_rng(6).normal(size=(64, 3))

    def probabilities(batch):  # (N, 8, 8) -> (N, 3)
        logits = batch.reshape(len(batch), -1) @ W
        e = np.exp(logits - logits.max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    explainer = LimeImageExplainer(feature_selection="none", random_state=7)
    theirs = explainer.explain_instance(image, lambda rgb: probabilities(rgb[..., 0]), labels=(1,), hide_color=0,
                                        top_labels=None, num_samples=300, segmentation_fn=lambda im: digit_segments(),
                                        random_seed=0)
    ours = lime_image(probabilities, image, target=1, n_samples=300, seed=7)
    np.testing.assert_allclose(ours.segment_coefficients, lime_coefficients(theirs.local_exp[1], 16), rtol=0,
                               atol=TOL)
    assert abs(ours.intercept - theirs.intercept[1]) <= TOL and abs(ours.score - theirs.score) <= TOL


# ---------------------------------------------------------------- bad inputs


def test_bad_inputs_raise(table):
    train, x, f = table
    with pytest.raises(ValueError, match="n_samples"):
        lime_tabular(f, x, train, target=0, n_samples=4)
    with pytest.raises(ValueError, match="training_data"):
        lime_tabular(f, x, train[:0], target=0)
    with pytest.raises(ValueError, match="x must be"):
        lime_tabular(f, x[:3], train, target=0)
    with pytest.raises(ValueError, match="NaN"):
        lime_tabular(lambda X: np.full(len(X), np.nan), x, train, n_samples=50)
    with pytest.raises(ValueError, match="target"):
        lime_tabular(f, x, train, target=3, n_samples=50)
    for option in ({"sample_around": "x"}, {"discretize": "decile"}, {"feature_selection": "auto"},
                   {"kernel_width": 0.0}):
        with pytest.raises(ValueError):
            lime_tabular(f, x, train, target=0, n_samples=50, **option)
    with pytest.raises(ValueError, match="weights"):
        fit_surrogate(np.ones((3, 1)), np.ones(3), np.zeros(3))
    with pytest.raises(ValueError, match="removal"):
        lime_text(TokenCounter(7), IDS, MASK, target=0, removal="drop")
    with pytest.raises(ValueError, match="at least 2"):
        lime_text(TokenCounter(7), IDS[:2], MASK[:2], target=0, keep_ids=(1, 2))
    with pytest.raises(ValueError, match="position"):
        lime_text(TokenCounter(7), IDS, MASK, target=0, position=3)
    with pytest.raises(ValueError, match="segments"):
        lime_image(lambda b: b.sum((1, 2)), np.ones((8, 8)), segments=np.zeros((4, 4), dtype=int))
    with pytest.raises(ValueError, match="n_samples"):
        lime_image(lambda b: b.sum((1, 2)), np.ones((8, 8)), n_samples=10)


def test_positional_order_is_the_documented_one(table):
    """``lime_tabular(f, x, training_data, n_samples, kernel_width, seed, sample_around, discretize)``."""
    train, x, f = table
    positional = lime_tabular(f, x, train, 300, 2.0, 4, "instance", False, 1)
    keywords = lime_tabular(f, x, train, n_samples=300, kernel_width=2.0, seed=4, sample_around="instance",
                            discretize=False, target=1)
    np.testing.assert_array_equal(positional.coefficients, keywords.coefficients)
