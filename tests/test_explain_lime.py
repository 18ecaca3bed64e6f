"""Tests of bigtut.explain.lime: the weighted ridge equals scikit-learn's, the explanations equal the lime
package's on the same neighbourhood (and end to end, draw for draw, for tables and images), planted signals
come out where they were planted, a batch is its rows explained one by one, and bad input is refused by name."""

import inspect

import numpy as np
import pytest
import torch
from lime.lime_base import LimeBase
from lime.lime_image import LimeImageExplainer
from lime.lime_tabular import LimeTabularExplainer
from lime.lime_text import IndexedString, LimeTextExplainer
from sklearn.linear_model import Ridge
from torch import nn

from bigtut.bert import BertConfig, BertForSequenceClassification
from bigtut.explain import lime_tokens
from bigtut.explain.lime import (
    LimeExplanation,
    cosine_to_ones,
    explain_neighbourhood,
    fit_surrogate,
    lime_from_neighbourhood,
    lime_kernel,
    lime_tabular,
)
from bigtut.explain.lime_images import digit_segments, lime_image
from bigtut.explain.lime_tokens import lime_text, token_neighbourhood
from bigtut.gpt import GPT, GPTClassifier, GPTConfig

TOL = 1e-8
DIAGNOSTICS = ("intercept", "score", "prediction", "value")


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


def assert_rows_equal(batched: LimeExplanation, singles: list[LimeExplanation], atol: float = 0.0):
    """Row b of ``batched`` equals the single explanation ``singles[b]`` (field by field)."""
    for b, single in enumerate(singles):
        np.testing.assert_allclose(batched.attributions[b], single.attributions[0], rtol=0, atol=atol)
        for name in DIAGNOSTICS:
            np.testing.assert_allclose(getattr(batched, name)[b], getattr(single, name)[0], rtol=0, atol=atol)
        for name in ("per_unit", "segment_coefficients"):
            if getattr(single, name) is not None:
                np.testing.assert_allclose(getattr(batched, name)[b], getattr(single, name)[0], rtol=0, atol=atol)
        assert batched.n_samples == single.n_samples


def assert_result_shape(out: LimeExplanation, shape: tuple[int, ...]):
    """The family's result: float64 NumPy attributions shaped like the input, (B,) float64 diagnostics."""
    assert isinstance(out, LimeExplanation)
    assert isinstance(out.attributions, np.ndarray) and out.attributions.dtype == np.float64
    assert out.attributions.shape == shape
    for name in DIAGNOSTICS:
        value = getattr(out, name)
        assert isinstance(value, np.ndarray) and value.dtype == np.float64 and value.shape == (shape[0],), name
    assert isinstance(out.n_samples, int)


def test_kernel_is_lime_s():
    d = np.linspace(0, 5, 11)
    np.testing.assert_allclose(lime_kernel(d, 1.5), np.sqrt(np.exp(-d ** 2 / 1.5 ** 2)), rtol=1e-15)
    np.testing.assert_allclose(lime_kernel(d, 1.5), np.exp(-d ** 2 / (2 * 1.5 ** 2)), rtol=1e-12)
    for width in (0.0, -1.0, np.inf, np.nan):
        with pytest.raises(ValueError, match="kernel_width"):
            lime_kernel(d, width)


@pytest.mark.parametrize("alpha", [1.0, 0.3, 1e-6])
def test_weighted_ridge_equals_sklearn(alpha):
    rng = np.random.default_rng(1)
    Z, y, w = rng.normal(size=(200, 5)), rng.normal(size=200), rng.uniform(0, 1, 200)
    coefficients, intercept, score = fit_surrogate(Z, y, w, alpha=alpha)
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
    assert_result_shape(ours, (1, 4))  # one neighbourhood = one explained input
    base = LimeBase(lambda d: lime_kernel(d, 1.2), random_state=0)
    intercept, local_exp, score, local_pred = base.explain_instance_with_data(
        features, f(inputs), distances, label=2, num_features=4, feature_selection="none")
    np.testing.assert_allclose(ours.attributions[0], lime_coefficients(local_exp, 4), rtol=0, atol=TOL)
    assert abs(ours.intercept[0] - intercept) <= TOL and abs(ours.score[0] - score) <= TOL
    assert abs(ours.prediction[0] - local_pred[0]) <= TOL
    assert ours.value[0] == f(inputs)[0, 2] and ours.n_samples == 500


@pytest.mark.parametrize("discretize, around", [(False, "mean"), (False, "instance"), ("quartile", "mean")])
def test_end_to_end_equals_lime_tabular(table, discretize, around):
    """Same seed, same draws: lime's explainer and ours agree to 1e-8 without sharing any array."""
    train, x, f = table
    explainer = LimeTabularExplainer(train, discretize_continuous=bool(discretize), discretizer="quartile",
                                     sample_around_instance=around == "instance", feature_selection="none",
                                     random_state=3)
    theirs = explainer.explain_instance(x, f, labels=(1,), num_features=4, num_samples=2000)
    ours = lime_tabular(f, x[None], training_data=train, target=1, n_samples=2000, seed=3, sample_around=around,
                        discretize=discretize)
    assert_result_shape(ours, (1, 4))
    np.testing.assert_allclose(ours.attributions[0], lime_coefficients(theirs.local_exp[1], 4), rtol=0, atol=TOL)
    assert abs(ours.intercept[0] - theirs.intercept[1]) <= TOL
    assert abs(ours.score[0] - theirs.score) <= TOL and abs(ours.prediction[0] - theirs.local_pred[0]) <= TOL
    assert (ours.per_unit is None) == bool(discretize)


@pytest.mark.parametrize("discretize", [False, "quartile"])
def test_tabular_batch_is_its_rows_and_each_row_is_lime_s(table, discretize):
    """3 rows in one call = 3 single calls (RandomState(seed) afresh per row), with per-row targets; every
    row of the batch still equals lime's explainer built with random_state=seed."""
    train, _, f = table
    X, targets = train[[7, 50, 123]] + 0.05, [1, 0, 2]
    batched = lime_tabular(f, X, training_data=train, target=targets, n_samples=600, seed=4,
                           discretize=discretize, batch_size=128)
    assert_result_shape(batched, (3, 4))
    singles = [lime_tabular(f, X[b:b + 1], training_data=train, target=targets[b], n_samples=600, seed=4,
                            discretize=discretize) for b in range(3)]
    assert_rows_equal(batched, singles, atol=1e-12)
    for b in range(3):
        explainer = LimeTabularExplainer(train, discretize_continuous=bool(discretize), discretizer="quartile",
                                         feature_selection="none", random_state=4)
        theirs = explainer.explain_instance(X[b], f, labels=(targets[b],), num_features=4, num_samples=600)
        np.testing.assert_allclose(batched.attributions[b], lime_coefficients(theirs.local_exp[targets[b]], 4),
                                   rtol=0, atol=TOL)
    same_target = lime_tabular(f, X, training_data=train, target=torch.tensor(1), n_samples=600, seed=4,
                               discretize=discretize)
    np.testing.assert_array_equal(same_target.attributions[0], batched.attributions[0])


def test_tabular_tensor_inputs_reach_f_as_tensors(table):
    """A tensor batch goes to f as tensors of its dtype (a torch model works as it is); float64 tensors give
    the NumPy answer."""
    train, x, f = table
    seen = []

    def f_torch(X):
        seen.append((type(X), X.dtype))
        return torch.as_tensor(f(X.numpy()))

    ours = lime_tabular(f_torch, torch.tensor(x[None]), training_data=torch.tensor(train), target=1, n_samples=300)
    assert seen and all(kind is torch.Tensor and dtype == torch.float64 for kind, dtype in seen)
    reference = lime_tabular(f, x[None], training_data=train, target=1, n_samples=300)
    np.testing.assert_allclose(ours.attributions, reference.attributions, rtol=0, atol=1e-12)
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3)).eval()  # float32 module, float32 rows
    out = lime_tabular(mlp, torch.tensor(x[None], dtype=torch.float32), training_data=train, target=0, n_samples=300)
    assert_result_shape(out, (1, 4))
    from_numpy = lime_tabular(mlp, x[None], training_data=train, target=0, n_samples=300)  # a module gets tensors
    np.testing.assert_allclose(from_numpy.attributions, out.attributions, rtol=0, atol=1e-6)  # x in float32


def test_seed_none_batch_size_and_determinism(table):
    """seed=None is the package's default seed (reproducible); batch_size bounds the rows per call of f and
    changes nothing; another seed changes the answer."""
    train, x, f = table
    sizes = []

    def counting(X):
        sizes.append(len(X))
        return f(X)

    for discretize in (False, "quartile"):
        default = lime_tabular(f, x[None], training_data=train, target=0, n_samples=500, discretize=discretize)
        sizes.clear()
        a = lime_tabular(counting, x[None], training_data=train, target=0, n_samples=500, seed=0,
                         discretize=discretize, batch_size=64)
        assert max(sizes) == 64 and sum(sizes) == 500
        c = lime_tabular(f, x[None], training_data=train, target=0, n_samples=500, seed=6, discretize=discretize)
        np.testing.assert_allclose(a.attributions, default.attributions, rtol=0, atol=1e-12)
        assert abs(a.intercept[0] - default.intercept[0]) < 1e-12 and abs(a.score[0] - default.score[0]) < 1e-12
        assert np.abs(a.attributions - c.attributions).max() > 1e-6


def test_linear_model_recovers_weights_in_original_units(table):
    """f(x) = w·x + b. The surrogate on standardised features has slopes w·s (s = training std, here 0.5 to
    10, so a wrong unit is off by far more than 1 %); per_unit = slopes / s must give back w within 1 %."""
    train, x, _ = table
    w, b = np.array([2.0, -1.0, 0.5, 0.05]), 0.7
    out = lime_tabular(lambda X: X @ w + b, x[None], training_data=train, n_samples=2000, sample_around="instance",
                       kernel_width=1.0)
    np.testing.assert_allclose(out.per_unit[0], w, rtol=0.01)
    np.testing.assert_allclose(out.attributions[0], w * train.std(0), rtol=0.01)
    assert out.score[0] > 0.999 and abs(out.prediction[0] - (x @ w + b)) < 0.01 * abs(x @ w + b)


# ---------------------------------------------------------------- text


def tiny_bert() -> BertForSequenceClassification:
    torch.manual_seed(0)
    config = BertConfig(vocab_size=40, max_len=16, d_model=16, num_layers=1, num_heads=2, d_ff=32, num_labels=3,
                        pad_id=0)
    return BertForSequenceClassification(config).double().eval()


def tiny_gpt() -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=40, block_size=16, n_layer=1, n_head=2, d_model=16)).double().eval()


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


IDS = torch.tensor([[1, 7, 12, 5, 7, 30, 22, 2, 0, 0]])  # [CLS]=1 ... [SEP]=2, then two [PAD]
MASK = torch.tensor([[1, 1, 1, 1, 1, 1, 1, 1, 0, 0]])
BATCH_IDS = torch.tensor([[1, 7, 12, 5, 7, 30, 22, 2, 0, 0],
                          [1, 9, 9, 14, 2, 0, 0, 0, 0, 0],
                          [1, 3, 8, 7, 19, 25, 11, 6, 33, 2]])
BATCH_MASK = (BATCH_IDS != 0).long()


class KeepOneWord(np.random.RandomState):
    """lime_text draws how many words to take out with ``randint(1, n + 1)`` (all n may go); ours with
    ``randint(1, n)`` (one token always stays). Handed this generator, lime draws our numbers."""

    def randint(self, low, high=None, size=None, dtype=int):
        return super().randint(low, high - 1, size, dtype)


def test_lime_text_equals_lime_text_explainer():
    """lime's LimeTextExplainer (bow=False: one feature per position; a taken-out word becomes "", so it is
    deleted) on the same model, with the same draws: our neighbourhood, kernel and fit are lime's, to 1e-8."""
    model = TokenCounter(7)
    words = ["w7", "w12", "w5", "w7", "w30", "w22"]
    word_ids = {"w7": 7, "w12": 12, "w5": 5, "w30": 30, "w22": 22}

    def classifier_fn(texts):  # lime's side: texts -> probabilities of the same model
        rows = []
        for text in texts:
            ids = torch.tensor([[1] + [word_ids[w] for w in text.split()] + [2]])
            rows.append(model(ids).softmax(-1)[0].detach().numpy())
        return np.array(rows)

    explainer = LimeTextExplainer(bow=False, split_expression=r"\s+", mask_string="", feature_selection="none",
                                  random_state=KeepOneWord(11))
    theirs = explainer.explain_instance(" ".join(words), classifier_fn, labels=(0,), num_features=6, num_samples=400)
    ids = torch.tensor([[1, 7, 12, 5, 7, 30, 22, 2]])
    ours = lime_text(model, ids, target=0, absent="delete", keep_ids=(1, 2), n_samples=400, seed=11,
                     probabilities=True)
    np.testing.assert_allclose(ours.attributions[0, 1:7], lime_coefficients(theirs.local_exp[0], 6), rtol=0,
                               atol=TOL)
    assert abs(ours.intercept[0] - theirs.intercept[0]) <= TOL and abs(ours.score[0] - theirs.score) <= TOL


@pytest.mark.parametrize("absent", ["pad", "delete"])
def test_lime_text_on_bert_shapes_zeros_determinism(absent):
    model = tiny_bert()
    run = lambda seed: lime_text(model, IDS, MASK, target=2, n_samples=300, seed=seed, absent=absent,  # noqa: E731
                                 keep_ids=(1, 2))
    out = run(0)
    assert_result_shape(out, (1, 10))
    assert (out.attributions[0, [0, 7, 8, 9]] == 0).all() and (out.attributions[0, 1:7] != 0).all()
    with torch.no_grad():
        assert abs(out.value[0] - model(IDS, MASK)[0, 2].item()) < 1e-12
    np.testing.assert_array_equal(out.attributions, run(0).attributions)
    np.testing.assert_array_equal(out.attributions, run(None).attributions)  # seed=None: the default seed
    assert np.abs(out.attributions - run(1).attributions).max() > 1e-9


@pytest.mark.parametrize("absent", ["pad", "delete"])
def test_lime_text_batch_is_its_rows(absent):
    """3 texts of different lengths, per-row targets, small batch_size: the rows of one call = 3 single calls."""
    model, targets = tiny_bert(), torch.tensor([2, 0, 1])
    batched = lime_text(model, BATCH_IDS, BATCH_MASK, target=targets, absent=absent, keep_ids=(1, 2),
                        n_samples=200, batch_size=64)
    assert_result_shape(batched, (3, 10))
    singles = [lime_text(model, BATCH_IDS[b:b + 1], BATCH_MASK[b:b + 1], target=int(targets[b]), absent=absent,
                         keep_ids=(1, 2), n_samples=200) for b in range(3)]
    assert_rows_equal(batched, singles, atol=1e-12)
    assert (batched.attributions[BATCH_MASK == 0] == 0).all() and (batched.attributions[:, 0] == 0).all()


@pytest.mark.parametrize("absent", ["pad", "delete"])
def test_lime_text_planted_token(absent):
    """The logit counts token 7 (twice in the text): both its positions get slope ~1, every other ~0."""
    out = lime_text(TokenCounter(7), IDS, MASK, target=0, n_samples=500, absent=absent, keep_ids=(1, 2))
    np.testing.assert_allclose(out.attributions[0, [1, 4]], 1.0, atol=0.02)
    np.testing.assert_allclose(np.delete(out.attributions[0], [1, 4]), 0.0, atol=0.02)
    assert out.score[0] > 0.999


def test_lime_text_language_model_reads_the_last_real_token():
    gpt = tiny_gpt()
    for absent in ("pad", "delete"):
        out = lime_text(gpt, IDS, MASK, target=9, n_samples=200, absent=absent)
        assert_result_shape(out, (1, 10))
        assert (out.attributions[0, 7:] == 0).all()
        with torch.no_grad():
            assert abs(out.value[0] - gpt(IDS[:, :8]).logits[0, 7, 9].item()) < 1e-12
        at_minus_one = lime_text(gpt, IDS, MASK, target=9, n_samples=200, absent=absent, position=-1)
        np.testing.assert_array_equal(at_minus_one.attributions, out.attributions)
    out = lime_text(gpt, IDS, MASK, target=9, n_samples=200, position=4)
    assert out.attributions[0, 4] == 0 and (out.attributions[0, :4] != 0).all()
    assert (out.attributions[0, 5:8] != 0).all()
    np.testing.assert_array_equal(lime_text(gpt, IDS, MASK, target=9, n_samples=200, position=-4).attributions,
                                  out.attributions)  # -4: the fourth real token from the end, position 4


def test_lime_text_language_model_batch_per_row_positions():
    gpt = tiny_gpt()
    batched = lime_text(gpt, BATCH_IDS, BATCH_MASK, target=[9, 3, 5], position=[-1, 2, -2], n_samples=150,
                        absent="delete")
    singles = [lime_text(gpt, BATCH_IDS[b:b + 1], BATCH_MASK[b:b + 1], target=t, position=p, n_samples=150,
                         absent="delete") for b, (t, p) in enumerate(zip([9, 3, 5], [-1, 2, -2], strict=True))]
    assert_rows_equal(batched, singles, atol=1e-12)
    assert batched.attributions[0, 7] == 0 and batched.attributions[1, 2] == 0 and batched.attributions[2, 8] == 0


# ------------------------------------------------ text: lime's own neighbourhood, the fast path = a plain loop

CLS, SEP, MASK_ID, VOCAB = 1, 2, 3, 60  # special ids of the 48-token models below; words are ids 4..59


def text_bert(seed: int) -> BertForSequenceClassification:
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=VOCAB, max_len=64, d_model=16, num_layers=2, num_heads=2, d_ff=32, num_labels=3,
                        pad_id=0)
    return spread(BertForSequenceClassification(config).double().eval())


def text_gpt_classifier(seed: int) -> GPTClassifier:
    torch.manual_seed(seed)
    body = GPT(GPTConfig(vocab_size=VOCAB, block_size=64, n_layer=2, n_head=2, d_model=16))
    return spread(GPTClassifier(body, 3).double().eval())


def spread(model: nn.Module) -> nn.Module:
    """Every parameter drawn afresh from N(0, 0.5²): at the usual 0.02 scale a random model's probabilities
    hardly move when words go (LIME slopes ~1e-6), too little for a 1e-8 comparison to mean anything."""
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.normal_(0.0, 0.5)
    return model


def texts_of_48(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """3 texts ``(3, 48)``: [CLS] + 46 words + [SEP] twice, then one of 28 words padded to 48."""
    words = torch.randint(4, VOCAB, (3, 46), generator=torch.Generator().manual_seed(seed))
    ids = torch.cat([torch.full((3, 1), CLS), words, torch.full((3, 1), SEP)], dim=1)  # (3, 48)
    ids[2, 29], ids[2, 30:] = SEP, 0  # [CLS] + 28 words + [SEP], then [PAD]
    return ids, (ids != 0).long()


def as_words(ids: list[int]) -> str:
    """The text lime is handed: the explained tokens as whitespace-separated ids."""
    return " ".join(str(i) for i in ids)


def probabilities_of_texts(model, seen: list | None = None):
    """lime's classifier_fn: texts -> [CLS] + ids + [SEP], padded on the right -> softmax of the model's logits
    ``(N, C)``; the id sequences are appended to ``seen`` when given."""
    def classifier_fn(texts):
        rows = [[CLS] + [int(word) for word in text.split()] + [SEP] for text in texts]
        if seen is not None:
            seen.extend(tuple(row) for row in rows)
        ids = torch.zeros(len(rows), max(map(len, rows)), dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, :len(row)] = torch.tensor(row)
        with torch.no_grad():
            return model(ids, attention_mask=(ids != 0).long()).softmax(-1).numpy()
    return classifier_fn


class Recording(nn.Module):
    """The model as it is, remembering the real tokens of every row it is called on."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model, self.config, self.rows = model, model.config, []

    def get_input_embeddings(self) -> nn.Embedding:
        return self.model.get_input_embeddings()

    def forward(self, input_ids, attention_mask=None):
        self.rows.extend(tuple(row[seen.bool()].tolist()) for row, seen in zip(input_ids, attention_mask, strict=True))
        return self.model(input_ids, attention_mask=attention_mask)


@pytest.mark.parametrize("kind, absent, seed", [("bert", "delete", 0), ("bert", "delete", 1), ("bert", "mask", 2),
                                                ("bert", "mask", 3), ("gpt", "delete", 4), ("gpt", "delete", 5)])
def test_lime_compatible_equals_lime_text_explainer_on_48_tokens(kind, absent, seed):
    """lime_compatible=True: 3 texts of 48 tokens (one padded) in one call; each row equals lime's
    LimeTextExplainer.explain_instance on the same model (texts -> probabilities), seed and samples, to 1e-8.
    A taken-out word becomes "" (absent="delete") or the [MASK] id's word (absent="mask")."""
    model = text_bert(seed) if kind == "bert" else text_gpt_classifier(seed)
    ids, mask = texts_of_48(seed)
    targets = [0, 2, 1]
    ours = lime_text(model, ids, mask, target=targets, absent=absent, mask_id=MASK_ID, keep_ids=(CLS, SEP),
                     n_samples=300, seed=seed, probabilities=True, lime_compatible=True, batch_size=64)
    assert_result_shape(ours, (3, 48))
    for b, target in enumerate(targets):
        words = ids[b, 1:int(mask[b].sum()) - 1].tolist()
        explainer = LimeTextExplainer(bow=False, split_expression=r"\s+", feature_selection="none",
                                      mask_string="" if absent == "delete" else str(MASK_ID), random_state=seed)
        theirs = explainer.explain_instance(as_words(words), probabilities_of_texts(model), labels=(target,),
                                            num_features=len(words), num_samples=300)
        expected = np.zeros(48)
        expected[1:len(words) + 1] = lime_coefficients(theirs.local_exp[target], len(words))
        assert np.abs(expected).max() > 1e-4  # slopes 1e4 times the tolerance at least
        np.testing.assert_allclose(ours.attributions[b], expected, rtol=0, atol=TOL)
        assert abs(ours.intercept[b] - theirs.intercept[target]) <= TOL and abs(ours.score[b] - theirs.score) <= TOL
        assert abs(ours.prediction[b] - theirs.local_pred[0]) <= TOL


@pytest.mark.parametrize("absent, seed", [("delete", 0), ("delete", 7), ("mask", 8)])
def test_lime_compatible_neighbourhood_is_lime_s(absent, seed):
    """The on/off matrix and distances are lime's draw for draw (all words out included), and the model sees
    exactly the texts lime hands its classifier_fn, each distinct one once."""
    model = text_bert(seed)
    ids, mask = texts_of_48(seed)
    words = ids[0, 1:47].tolist()
    mask_string = "" if absent == "delete" else str(MASK_ID)
    explainer = LimeTextExplainer(bow=False, split_expression=r"\s+", mask_string=mask_string, random_state=seed)
    texts_lime_sends = []
    Z, _, distances = explainer._LimeTextExplainer__data_labels_distances(
        IndexedString(as_words(words), split_expression=r"\s+", bow=False, mask_string=mask_string),
        probabilities_of_texts(model, texts_lime_sends), 400)
    np.testing.assert_array_equal(token_neighbourhood(46, 400, seed, lime_compatible=True), Z)
    assert (Z.sum(1) == 0).any()  # lime takes every word out now and then
    np.testing.assert_allclose(100 * cosine_to_ones(Z), distances, rtol=0, atol=1e-10)
    recording = Recording(model)
    lime_text(recording, ids[:1], mask[:1], target=1, absent=absent, mask_id=MASK_ID, keep_ids=(CLS, SEP),
              n_samples=400, seed=seed, lime_compatible=True)
    model_saw = recording.rows[1:]  # after the one probe row (the full text)
    assert set(model_saw) == set(texts_lime_sends) and len(model_saw) == len(set(model_saw))


def test_lime_compatible_refuses_an_empty_sample():
    """k = n takes every feature out: with "pad"/"delete" and no token kept aside, the model would see nothing."""
    model = text_bert(0)
    ids, mask = texts_of_48(0)
    for absent in ("pad", "delete"):
        with pytest.raises(ValueError, match="lime_compatible"):
            lime_text(model, ids, mask, target=0, absent=absent, n_samples=100, lime_compatible=True)
    out = lime_text(model, ids, mask, target=0, absent="mask", mask_id=MASK_ID, n_samples=100, lime_compatible=True)
    assert (out.attributions[mask == 1] != 0).all()  # [CLS] and [SEP] are features too
    with pytest.raises(TypeError, match="lime_compatible"):
        lime_text(model, ids, mask, target=0, keep_ids=(CLS, SEP), n_samples=100, lime_compatible=1)


def lime_text_one_sample_at_a_time(model, ids, mask, *, target, absent, keep_ids, n_samples, seed, probabilities,
                                   lime_compatible, position=None):
    """The plain reference: every sample built on its own and run through the model alone (a deleted token is
    really gone: no padding at all), then the same kernel and ridge fit. ``(attributions (B, L), diagnostics)``."""
    B, L = ids.shape
    attributions, rows = np.zeros((B, L)), []
    for b in range(B):
        n_real = int(mask[b].sum())
        read = None if position is None else (position[b] if position[b] >= 0 else n_real + position[b])
        players = [i for i in range(n_real) if int(ids[b, i]) not in keep_ids and i != read]
        n = len(players)
        rng = np.random.RandomState(seed)
        Z = np.ones((n_samples, n))
        for i, size in enumerate(rng.randint(1, n + 1 if lime_compatible else n, n_samples - 1), start=1):
            Z[i, rng.choice(n, size, replace=False)] = 0
        values = []
        for z in Z:
            gone = {players[j] for j in range(n) if z[j] == 0}
            if absent == "delete":
                kept = [i for i in range(n_real) if i not in gone]
                sample, attended = ids[b, kept][None], torch.ones(1, len(kept), dtype=torch.long)
                at = None if read is None else kept.index(read)
            else:
                sample, attended, at = ids[b, :n_real].clone()[None], torch.ones(1, n_real, dtype=torch.long), read
                for i in gone:
                    if absent == "mask":
                        sample[0, i] = MASK_ID
                    else:
                        attended[0, i] = 0
            with torch.no_grad():
                out = model(sample, attention_mask=attended)
            out = out.logits[0, at] if at is not None else out[0]  # (C,) or (V,)
            t = target[b] if isinstance(target, list) else target
            values.append(float((out.softmax(-1) if probabilities else out)[t]))
        rows.append(explain_neighbourhood(np.array(values), Z, 100 * cosine_to_ones(Z), 25.0, 1.0))
        attributions[b, players] = rows[-1][0]
    return attributions, rows


@pytest.mark.parametrize("kind, absent, seed, probabilities, lime_compatible", [
    ("bert", "pad", 0, False, False), ("bert", "delete", 1, True, False), ("bert", "mask", 2, False, True),
    ("bert", "delete", 3, False, True), ("gpt", "delete", 4, True, False), ("gpt", "pad", 5, False, True),
    ("gpt_lm", "pad", 6, False, False), ("gpt_lm", "delete", 7, True, True)])
def test_lime_text_equals_one_sample_at_a_time(kind, absent, seed, probabilities, lime_compatible):
    """Deduplicated, length-sorted, cut batches give the answer of running every sample alone, to 1e-10."""
    ids, mask = texts_of_48(seed)
    ids, mask = ids[:, :20].clone(), mask[:, :20].clone()  # short texts: the reference runs 3 x 150 forwards
    ids[:, 19] = SEP
    ids[1, 12:] = 0
    ids[1, 11] = SEP
    mask = (ids != 0).long()
    target, position = [0, 2, 1], None
    if kind == "bert":
        model = text_bert(seed)
    elif kind == "gpt":
        model = text_gpt_classifier(seed)
    else:
        model, target, position = text_gpt_classifier(seed).gpt, [9, 30, 41], [-1, 4, -3]
    keep_ids = (CLS, SEP)
    ours = lime_text(model, ids, mask, target=target, absent=absent, mask_id=MASK_ID, keep_ids=keep_ids,
                     n_samples=150, seed=seed, probabilities=probabilities, lime_compatible=lime_compatible,
                     position=position, batch_size=32)
    attributions, rows = lime_text_one_sample_at_a_time(
        model, ids, mask, target=target, absent=absent, keep_ids=keep_ids, n_samples=150, seed=seed,
        probabilities=probabilities, lime_compatible=lime_compatible, position=position)
    np.testing.assert_allclose(ours.attributions, attributions, rtol=0, atol=1e-10)
    for i, name in enumerate(("intercept", "score", "prediction", "value"), start=1):
        np.testing.assert_allclose(getattr(ours, name), [row[i] for row in rows], rtol=0, atol=1e-10)


@pytest.mark.parametrize("kind", ["bert", "gpt_lm"])
def test_lime_text_groups_of_texts_change_nothing(kind, monkeypatch):
    """Texts go through the model in groups that bound the memory; one text per group gives the same answer."""
    ids, mask = texts_of_48(9)
    model, target, position = text_bert(9), [0, 2, 1], None
    if kind == "gpt_lm":
        model, target, position = text_gpt_classifier(9).gpt, [9, 30, 41], [-2, 5, -1]
    run = lambda: lime_text(model, ids, mask, target=target, absent="delete", keep_ids=(CLS, SEP),  # noqa: E731
                            n_samples=120, seed=9, position=position, batch_size=50)
    together = run()
    monkeypatch.setattr(lime_tokens, "VALUES_PER_CALL", 1)
    np.testing.assert_allclose(run().attributions, together.attributions, rtol=0, atol=1e-12)


# ---------------------------------------------------------------- image


def test_digit_segments():
    seg = digit_segments()
    assert seg.shape == (8, 8) and set(np.unique(seg)) == set(range(16))
    assert (seg[:2, :2] == 0).all() and seg[0, 2] == 1 and seg[2, 0] == 4 and seg[7, 7] == 15


def test_lime_image_planted_patch():
    """The model reads the pixels of one 2×2 patch (segment 6: rows 2-3, columns 4-5) and nothing else."""
    image = np.random.default_rng(4).uniform(0.5, 1.0, (8, 8))
    f = lambda batch: batch[:, 2:4, 4:6].sum((1, 2))  # noqa: E731
    out = lime_image(f, image[None], n_samples=400)
    assert_result_shape(out, (1, 8, 8))
    patches = out.segment_coefficients[0]
    others = np.delete(patches, 6)
    assert patches[6] > 0.95 * image[2:4, 4:6].sum() and np.abs(others).max() < 0.05
    assert (out.attributions[0, 2:4, 4:6] == patches[6]).all()
    color = lime_image(lambda b: b[:, :, 2:4, 4:6].sum((1, 2, 3)), np.stack([image] * 3)[None], n_samples=400)
    assert_result_shape(color, (1, 3, 8, 8))
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
    ours = lime_image(probabilities, image[None], target=1, n_samples=300, seed=7)
    np.testing.assert_allclose(ours.segment_coefficients[0], lime_coefficients(theirs.local_exp[1], 16), rtol=0,
                               atol=TOL)
    assert abs(ours.intercept[0] - theirs.intercept[1]) <= TOL and abs(ours.score[0] - theirs.score) <= TOL


def test_lime_image_batch_is_its_images_and_tensors_work():
    images = np.random.default_rng(8).uniform(0, 1, (3, 2, 8, 8))
    W = torch.tensor(np.random.default_rng(9).normal(size=(128, 4)))
    model = lambda batch: batch.reshape(len(batch), -1) @ W  # noqa: E731  tensors in, (N, 4) logits out
    sizes = []

    def counting(batch):
        sizes.append(len(batch))
        return model(batch)

    batched = lime_image(counting, torch.tensor(images), target=[0, 3, 1], n_samples=300, batch_size=100)
    assert max(sizes) == 100 and sum(sizes) == 900
    assert_result_shape(batched, (3, 2, 8, 8))
    assert batched.segment_coefficients.shape == (3, 16)
    singles = [lime_image(model, torch.tensor(images[b:b + 1]), target=t, n_samples=300)
               for b, t in enumerate([0, 3, 1])]
    assert_rows_equal(batched, singles, atol=1e-12)
    conv = nn.Sequential(nn.Flatten(), nn.Linear(128, 4)).double().eval()  # a module takes NumPy images too
    from_numpy = lime_image(conv, images, target=2, n_samples=300)
    np.testing.assert_array_equal(from_numpy.attributions,
                                  lime_image(conv, torch.tensor(images), target=2, n_samples=300).attributions)
    own = np.stack([digit_segments(), digit_segments(patch=4), digit_segments(patch=8)])  # 16, 4 and 1 segments
    per_image = lime_image(model, torch.tensor(images), target=0, segments=own, n_samples=300)
    assert np.isnan(per_image.segment_coefficients[1, 4:]).all()
    assert not np.isnan(per_image.segment_coefficients[0]).any()
    assert (per_image.attributions[2] == per_image.segment_coefficients[2, 0]).all()


# ---------------------------------------------------------------- the family's signature and bad inputs


@pytest.mark.parametrize("method, positional", [(lime_tabular, ("f", "inputs")), (lime_image, ("f", "inputs")),
                                                (lime_text, ("model", "input_ids", "attention_mask"))])
def test_only_model_and_data_are_positional(method, positional):
    parameters = inspect.signature(method).parameters
    assert tuple(name for name, p in parameters.items() if p.kind != p.KEYWORD_ONLY) == positional
    assert next(iter(parameters.values())).name in ("f", "model") and "target" in parameters
    for name in ("seed", "batch_size", "probabilities", "n_samples"):
        assert parameters[name].kind == inspect.Parameter.KEYWORD_ONLY
    assert parameters["seed"].default is None and parameters["batch_size"].default is None
    assert parameters["probabilities"].default is False


def test_bad_table_inputs_raise(table):
    train, x, f = table
    X = x[None]
    cases = [
        (TypeError, "inputs", dict(inputs=list(x))),
        (TypeError, "inputs", dict(inputs=np.arange(4)[None])),  # integers
        (ValueError, r"x\[None\]", dict(inputs=x)),  # one row without the batch dimension
        (ValueError, "inputs", dict(inputs=np.zeros((0, 4)))),  # empty batch
        (ValueError, "inputs", dict(inputs=np.full((1, 4), np.nan))),
        (ValueError, "inputs", dict(inputs=X[:, :3])),  # 3 features, training_data has 4
        (ValueError, "inputs", dict(inputs=X[:, None])),  # (B, 1, M) is not a table
        (ValueError, "training_data", dict(training_data=train[:0])),
        (ValueError, "training_data", dict(training_data=np.where(train > 8, np.nan, train))),
        (ValueError, "training_data", dict(training_data=train[0])),
        (ValueError, "n_samples", dict(n_samples=4)),  # M + 1 = 5 at least
        (ValueError, "n_samples", dict(n_samples=50.0)),
        (ValueError, "target", dict(target=3)),  # f has 3 classes
        (ValueError, "target", dict(target=[0, 1])),  # 2 targets for 1 row
        (ValueError, "target", dict(target=None)),  # f has 3 outputs per row
        (ValueError, "sample_around", dict(sample_around="x")),
        (ValueError, "discretize", dict(discretize="decile")),
        (ValueError, "discretize", dict(discretize=True)),
        (ValueError, "feature_selection", dict(feature_selection="auto")),
        (ValueError, "alpha", dict(alpha=-1.0)),
        (ValueError, "alpha", dict(alpha=np.inf)),
        (ValueError, "seed", dict(seed=-1)),
        (ValueError, "batch_size", dict(batch_size=0)),
        (TypeError, "probabilities", dict(probabilities="yes")),
        (ValueError, "NaN", dict(f=lambda X: np.full(len(X), np.nan), target=None)),
        (ValueError, "rows", dict(f=lambda X: f(X)[:3])),  # f returns the wrong number of rows
    ] + [(ValueError, "kernel_width", dict(kernel_width=w)) for w in (0.0, -1.0, np.inf, np.nan)]
    for error, message, change in cases:
        arguments = dict(f=f, inputs=X, training_data=train, target=0, n_samples=50) | change
        with pytest.raises(error, match=message):
            lime_tabular(arguments.pop("f"), arguments.pop("inputs"), **arguments)
    with pytest.raises(TypeError):
        lime_tabular(f, X, train)  # training_data is keyword-only


def test_bad_text_inputs_raise():
    counter, gpt = TokenCounter(7), tiny_gpt()
    cases = [
        (counter, TypeError, "integer", dict(input_ids=IDS.double())),  # float ids: never truncated silently
        (counter, ValueError, r"ids\[None\]", dict(input_ids=IDS[0], attention_mask=MASK[0])),
        (counter, ValueError, "input_ids", dict(input_ids=IDS[:0], attention_mask=MASK[:0])),
        (counter, ValueError, "input_ids", dict(input_ids=IDS + 40)),  # outside the vocabulary
        (counter, ValueError, "attention_mask", dict(attention_mask=MASK[:, :5])),
        (counter, ValueError, "absent", dict(absent="drop")),
        (counter, ValueError, "absent", dict(absent="mask")),
        (counter, ValueError, "at least 2", dict(input_ids=IDS[:, :3], attention_mask=MASK[:, :3], keep_ids=(1, 7))),
        (counter, ValueError, "n_samples", dict(n_samples=6)),  # 6 players need 7 rows
        (counter, ValueError, "n_samples", dict(n_samples=0)),
        (counter, ValueError, "target", dict(target=2)),  # 2 classes
        (counter, ValueError, "target", dict(target=[0, 1])),  # 2 targets for 1 row
        (counter, ValueError, "position", dict(position=3)),  # a classifier has no position
        (gpt, ValueError, "position", dict(position=8, target=9)),  # padding
        (gpt, ValueError, "position", dict(position=-9, target=9)),  # 8 real tokens
        (gpt, ValueError, "position", dict(position=12, target=9)),
        (gpt, TypeError, "position", dict(position=1.5, target=9)),
        (gpt, ValueError, "target", dict(target=40)),  # token ids of a 40-token vocabulary
        (counter, TypeError, "keep_ids", dict(keep_ids=("CLS",))),
        (counter, TypeError, "probabilities", dict(probabilities=None)),
    ] + [(counter, ValueError, "kernel_width", dict(kernel_width=w)) for w in (0.0, -25.0, np.inf)]
    for model, error, message, change in cases:
        arguments = dict(input_ids=IDS, attention_mask=MASK, target=0, keep_ids=(1, 2), n_samples=50) | change
        with pytest.raises(error, match=message):
            lime_text(model, arguments.pop("input_ids"), arguments.pop("attention_mask"), **arguments)
    with pytest.raises(TypeError):
        lime_text(counter, IDS, MASK, 0)  # target is keyword-only


def test_bad_image_and_building_block_inputs_raise():
    f = lambda b: b.sum((1, 2))  # noqa: E731
    images = np.ones((2, 8, 8))
    cases = [
        (ValueError, r"x\[None\]", dict(inputs=np.ones((8, 8)))),
        (ValueError, "inputs", dict(inputs=np.ones((0, 8, 8)))),
        (ValueError, "inputs", dict(inputs=np.ones((1, 1, 1, 8, 8)))),
        (ValueError, "inputs", dict(inputs=np.full((1, 8, 8), np.inf))),
        (TypeError, "inputs", dict(inputs=np.ones((1, 8, 8), dtype=int))),
        (ValueError, "segments", dict(segments=np.zeros((4, 4), dtype=int))),
        (ValueError, "segments", dict(segments=np.zeros((8, 8)))),  # float labels
        (ValueError, "n_samples", dict(n_samples=10)),  # 16 segments need 17 rows
        (ValueError, "hide_value", dict(hide_value=np.nan)),
        (ValueError, "target", dict(target=[0, 0, 0])),
        (ValueError, "rows", dict(f=lambda b: b.sum((1, 2))[:1])),
    ] + [(ValueError, "kernel_width", dict(kernel_width=w)) for w in (0.0, -0.25, np.inf)]
    for error, message, change in cases:
        arguments = dict(f=f, inputs=images, n_samples=50) | change
        with pytest.raises(error, match=message):
            lime_image(arguments.pop("f"), arguments.pop("inputs"), **arguments)
    Z, X = np.ones((5, 2)), np.ones((5, 2))
    with pytest.raises(ValueError, match="weights"):
        fit_surrogate(np.ones((3, 1)), np.ones(3), np.zeros(3))
    with pytest.raises(ValueError, match="alpha"):
        fit_surrogate(np.ones((3, 1)), np.ones(3), np.ones(3), alpha=-1.0)
    with pytest.raises(ValueError, match="kernel_width"):
        lime_from_neighbourhood(lambda X: X.sum(1), Z, X, np.zeros(5), kernel_width=np.inf)
    with pytest.raises(ValueError, match="one N"):
        lime_from_neighbourhood(lambda X: X.sum(1), Z, X[:4], np.zeros(5), kernel_width=1.0)
    with pytest.raises(TypeError):
        lime_from_neighbourhood(lambda X: X.sum(1), Z, X, np.zeros(5), 1.0)  # kernel_width is keyword-only
