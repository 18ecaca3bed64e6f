"""Tests of bigtut.explain.metrics and bigtut.explain.baselines on cases small enough to compute by hand: an
additive model whose class-1 logit is the sum of its visible tokens' weights (so deleting a token removes
exactly its weight), hand-built attention stacks, and sklearn/scipy for the ranking metrics. The
randomisation check runs on a tiny BERT and a tiny GPT classifier. Everything in float64."""

import numpy as np
import pytest
import torch
from scipy import stats
from scipy.special import expit as sigmoid
from sklearn.metrics import average_precision_score
from torch import nn

from bigtut.bert import BertConfig, BertForSequenceClassification
from bigtut.explain import token_integrated_gradients
from bigtut.explain.baselines import (
    attention_rollout,
    gradient_norm,
    gradient_x_input,
    model_attentions,
    randomisation_check,
    raw_attention_scores,
    rollout_scores,
)
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
    stability,
    sufficiency,
    token_f1,
)
from bigtut.gpt import GPT, GPTClassifier, GPTConfig

PAD, CLS = 0, 1
#                     PAD  CLS   2    3    4    5    6    7
WEIGHTS = torch.tensor([5.0, 0.25, 3.0, -1.0, 2.0, 0.5, 1.0, -2.0], dtype=torch.float64)


class Additive(nn.Module):
    """logits ``(B, 2)``: class 0 is 0, class 1 is ``Σ_t w[id_t] · mask_t``. The embedding of id ``i`` is the
    one-hot ``e_i`` and the class-1 logit reads it through the fixed projection ``w``, so ``inputs_embeds``
    works and the logit is linear in the embeddings."""

    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding.from_pretrained(torch.eye(len(WEIGHTS), dtype=torch.float64))  # one-hot rows
        self.register_buffer("w", WEIGHTS.clone())

    def get_input_embeddings(self):
        return self.embedding

    def forward(self, input_ids=None, attention_mask=None, *, inputs_embeds=None):
        x = self.embedding(input_ids) if inputs_embeds is None else inputs_embeds  # (B, L, V)
        mask = torch.ones(x.shape[:2], dtype=x.dtype) if attention_mask is None else attention_mask.to(x.dtype)
        logit = ((x @ self.w) * mask).sum(-1)  # (B,)
        return torch.stack([torch.zeros_like(logit), logit], -1)  # (B, 2)


@pytest.fixture(scope="module")
def additive_batch():
    # row 0: [CLS] 2 3 4 5 -> weights 0.25 | 3, -1, 2, 0.5;  row 1: [CLS] 6 7 [PAD] [PAD] -> 0.25 | 1, -2
    ids = torch.tensor([[CLS, 2, 3, 4, 5], [CLS, 6, 7, PAD, PAD]])
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    scores = WEIGHTS[ids].clone()  # the perfect attribution; padding gets the largest score, 5, and must not count
    return Additive(), ids, mask, scores


# ------------------------------------------------------------------------------------------------ faithfulness


def test_deletion_curve_of_the_perfect_attribution(additive_batch):
    model, ids, mask, scores = additive_batch
    # row 0 deletes 3, 2, 0.5, -1 (n = 4): logits 4.75, 1.75, -0.25, -0.75, 0.25 ([CLS] stays)
    # row 1 deletes 1, -2 (n = 2): logits -0.75, -1.75, 0.25
    row0, row1 = [4.75, 1.75, -0.25, -0.75, 0.25], [-0.75, -1.75, 0.25]
    curve = deletion_curve(model, ids, mask, scores, 1, keep_ids=(CLS,), probabilities=False)
    assert np.allclose(curve.fractions, np.linspace(0, 1, 11))
    assert np.allclose(curve.values[0, [0, 5, 10]], [4.75, -0.25, 0.25])  # grid points 0, 0.5, 1 are curve points
    assert np.isclose(curve.values[0, 1], 4.75 + 0.4 * (1.75 - 4.75))  # 0.1 lies 40 % of the way to 0.25
    assert np.allclose(curve.values[1], np.interp(np.linspace(0, 1, 11), [0, 0.5, 1], row1))
    # the exact areas, trapezoids over each row's own points j / n
    assert np.allclose(curve.area, [0.25 * (3.25 + 0.75 - 0.5 - 0.25), 0.5 * (-1.25 - 0.75)])

    grid = deletion_curve(model, ids, mask, scores, 1, steps=4, keep_ids=(CLS,), probabilities=False)
    assert np.allclose(grid.values[0], row0)  # k = ceil(f * 4) = 0..4: every point of row 0
    assert np.allclose(grid.values[1], [-0.75, -1.75, -1.75, 0.25, 0.25])  # k = ceil(f * 2) = 0, 1, 1, 2, 2
    assert np.allclose(grid.area[0], curve.area[0])
    probs = deletion_curve(model, ids, mask, scores, 1, steps=4, keep_ids=(CLS,))  # probabilities by default
    assert np.allclose(probs.values, sigmoid(grid.values))  # class 0 has logit 0: p(1) = sigmoid(logit)

    dropped = deletion_curve(model, ids, mask, scores, 1, steps=4, probabilities=False)  # [CLS] removable too
    assert np.allclose(dropped.values[:, -1], 0.0)  # n = 5: k = ceil(0.25 * 5) = 2 deletes the 3 and the 2
    assert np.allclose(dropped.values[0, :2], [4.75, -0.25])


def test_insertion_curve_of_the_perfect_attribution(additive_batch):
    model, ids, mask, scores = additive_batch
    curve = insertion_curve(model, ids, mask, scores, 1, steps=4, keep_ids=(CLS,), probabilities=False)
    assert np.allclose(curve.values[0], [0.25, 3.25, 5.25, 5.75, 4.75])  # only [CLS], then 3, 2, 0.5, -1 added
    assert np.allclose(curve.values[1], [0.25, 1.25, 1.25, -0.75, -0.75])
    worst = insertion_curve(model, ids, mask, -scores, 1, steps=4, keep_ids=(CLS,), probabilities=False)
    assert (worst.area < curve.area).all()  # the reversed ranking inserts the negative tokens first


def test_comprehensiveness_sufficiency_and_aopc(additive_batch):
    model, ids, mask, scores = additive_batch
    args = (model, ids, mask, scores, 1)
    # row 0 (n = 4): 20 % -> k = 1 deletes 3; 50 % -> k = 2 deletes 3 and 2. Row 1 (n = 2): k = 1 deletes 1.
    assert np.allclose(comprehensiveness(*args, keep_ids=(CLS,), probabilities=False), [3.0, 1.0])
    assert np.allclose(comprehensiveness(*args, fraction=0.5, keep_ids=(CLS,), probabilities=False), [5.0, 1.0])
    # sufficiency: p(x) - p([CLS] + top-k); row 0 at 50 % keeps 0.25 + 3 + 2
    assert np.allclose(sufficiency(*args, fraction=0.5, keep_ids=(CLS,), probabilities=False),
                       [4.75 - 5.25, -0.75 - 1.25])
    assert np.allclose(sufficiency(*args, fraction=1.0, keep_ids=(CLS,), probabilities=False), 0.0)
    # ERASER bins 1, 5, 10, 20, 50 %: row 0 k = 1, 1, 1, 1, 2 -> 3, 3, 3, 3, 5; row 1 always k = 1 -> 1
    assert np.allclose(aopc(*args, keep_ids=(CLS,), probabilities=False), [3.4, 1.0])
    # ferret's 10 %, ..., 100 % on row 0: k = 1, 1, 2, 2, 2, 3, 3, 4, 4, 4
    row0 = [3, 3, 5, 5, 5, 5.5, 5.5, 4.5, 4.5, 4.5]
    row1 = [1] * 5 + [-1] * 5  # k = 1 for 10-50 %, 2 for 60-100 %: 1 + (-2) removed -> -0.75 - 0.25
    ferret = aopc(*args, fractions=FERRET_FRACTIONS, keep_ids=(CLS,), probabilities=False)
    assert np.allclose(ferret, [np.mean(row0), np.mean(row1)]) and np.isclose(ferret[0], 4.55)
    # probabilities: the same removals, differences of sigmoids
    full = np.array([[4.75], [-0.75]])
    expected = (sigmoid(full) - sigmoid(full - np.array([row0, row1]))).mean(1)
    assert np.allclose(aopc(*args, fractions=FERRET_FRACTIONS, keep_ids=(CLS,)), expected)
    suff = aopc(*args, metric="sufficiency", fractions=(0.5, 1.0), keep_ids=(CLS,), probabilities=False)
    assert np.allclose(suff, [(4.75 - 5.25) / 2, (-0.75 - 1.25) / 2])


def test_kept_tokens_are_never_removed(additive_batch):
    model, ids, mask, scores = additive_batch
    loud = scores.clone()
    loud[:, 0] = 100.0  # [CLS] ranked first: kept anyway, so the ranking of the rest decides
    assert np.allclose(comprehensiveness(model, ids, mask, loud, 1, keep_ids=(CLS,), probabilities=False), [3, 1])
    keep = torch.zeros_like(ids, dtype=torch.bool)
    keep[0, 1] = True  # position of the 3: never deleted, so 20 % deletes the 2
    assert np.allclose(comprehensiveness(model, ids, mask, scores, 1, keep_ids=(CLS,), keep=keep,
                                         probabilities=False), [2.0, 1.0])
    assert np.allclose(comprehensiveness(model, ids, mask, loud, 1, probabilities=False), [0.25, 0.25])


# ------------------------------------------------------------------------------------------------ plausibility


def test_precision_recall_f1_on_a_constructed_case():
    scores = np.array([[0.9, 0.1, 0.8, 0.3, 0.5, 7.0]])  # the last position is padding with a high score
    evidence = np.array([[True, False, False, True, True, True]])
    mask = np.array([[1, 1, 1, 1, 1, 0]])
    # default k = 3 evidence tokens; top-3 real = positions 0, 2, 4, of which 0 and 4 are evidence
    for metric in (precision_at_k, recall_at_k, token_f1):
        assert np.allclose(metric(scores, evidence, mask=mask), 2 / 3)
    # k = 2: top-2 = 0, 2 -> one hit: P = 1/2, R = 1/3, F1 = 2 * (1/6) / (5/6) = 0.4
    assert np.allclose(precision_at_k(scores, evidence, 2, mask), 0.5)
    assert np.allclose(recall_at_k(scores, evidence, 2, mask), 1 / 3)
    assert np.allclose(token_f1(scores, evidence, 2, mask), 0.4)
    assert np.allclose(recall_at_k(scores, evidence, 10, mask), 1.0)  # k above the 5 real tokens takes them all
    assert np.allclose(precision_at_k(scores, evidence, 10, mask), 3 / 5)
    assert np.isnan(recall_at_k(scores, np.zeros_like(evidence), 2, mask)).all()  # no evidence: undefined


def test_auprc_equals_sklearn():
    rng = np.random.default_rng(0)
    scores = rng.integers(0, 4, size=(6, 9)).astype(float)  # many ties
    evidence = rng.random((6, 9)) < 0.4
    evidence[:, 0] = True
    mask = np.ones((6, 9), dtype=int)
    mask[2, 6:], mask[4, 3:] = 0, 0
    ours = auprc(scores, evidence, mask)
    for b in range(6):
        real = mask[b] == 1
        assert np.isclose(ours[b], average_precision_score(evidence[b, real], scores[b, real]))
    assert np.isclose(auprc([[0.1, 0.9, 0.5]], [[False, True, True]])[0], 1.0)


def test_rank_agreement_equals_scipy():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(4, 8)), rng.integers(0, 3, size=(4, 8)).astype(float)  # b has ties
    mask = np.ones((4, 8), dtype=bool)
    mask[1, 5:] = False
    result = rank_agreement(a, b, mask)
    for row in range(4):
        real = mask[row]
        assert np.isclose(result.spearman[row], stats.spearmanr(a[row, real], b[row, real]).statistic)
        assert np.isclose(result.kendall[row], stats.kendalltau(a[row, real], b[row, real]).statistic)
    assert np.allclose(rank_agreement(a, 2 * a + 1).spearman, 1.0)


def test_stability():
    fixed = np.random.default_rng(2).normal(size=(3, 7))
    assert np.allclose(stability(lambda seed: fixed, seeds=[0, 0, 0], k=3), 1.0)
    tops = {0: [[3.0, 2.0, 1.0, 0.0]], 1: [[1.0, 3.0, 2.0, 0.0]]}  # top-2 sets {0, 1} and {1, 2}
    assert np.allclose(stability(lambda seed: tops[seed], seeds=[0, 1], k=2), 0.5)
    assert np.allclose(stability(lambda seed: tops[seed], seeds=[0, 1, 0], k=2), (0.5 + 1.0 + 0.5) / 3)


# -------------------------------------------------------------------------------------------------- baselines


def test_gradient_baselines_on_the_additive_model(additive_batch):
    model, ids, mask, _ = additive_batch
    assert torch.allclose(gradient_x_input(model, ids, mask, target=1), WEIGHTS[ids] * mask)  # exact: linear
    assert torch.allclose(gradient_norm(model, ids, mask, target=1), WEIGHTS.norm() * mask)  # the same everywhere
    assert torch.allclose(gradient_x_input(model, ids, mask, target=0), torch.zeros(2, 5, dtype=torch.float64))
    p = torch.sigmoid(WEIGHTS[ids].mul(mask).sum(1, keepdim=True))  # (2, 1): dp/dlogit = p (1 - p)
    assert torch.allclose(gradient_x_input(model, ids, mask, target=1, probabilities=True),
                          p * (1 - p) * WEIGHTS[ids] * mask)


def test_rollout_equals_the_hand_product():
    A1 = torch.tensor([[0.5, 0.3, 0.2], [0.1, 0.6, 0.3], [0.2, 0.2, 0.6]], dtype=torch.float64)
    A2 = torch.tensor([[0.4, 0.4, 0.2], [0.3, 0.3, 0.4], [0.1, 0.1, 0.8]], dtype=torch.float64)
    attentions = [A1[None, None], A2[None, None]]  # 2 layers of (B=1, h=1, L=3, L=3)
    plain = attention_rollout(attentions, residual=False)[0]
    # row 0: 0.4 A1[0] + 0.4 A1[1] + 0.2 A1[2] = (0.2 + 0.04 + 0.04, 0.12 + 0.24 + 0.04, 0.08 + 0.12 + 0.12)
    assert torch.allclose(plain[0], torch.tensor([0.28, 0.40, 0.32], dtype=torch.float64))
    assert torch.allclose(plain, A2 @ A1)
    eye = torch.eye(3, dtype=torch.float64)
    assert torch.allclose(attention_rollout(attentions)[0], (0.5 * A2 + 0.5 * eye) @ (0.5 * A1 + 0.5 * eye))
    assert torch.allclose(rollout_scores(attentions, query=1)[0], (0.5 * A2 + 0.5 * eye)[1] @ (0.5 * A1 + 0.5 * eye))
    D = 0.05 * torch.tensor([[1.0, -1, 0], [0, 1, -1], [-1, 0, 1]], dtype=torch.float64)  # rows sum to 0
    two_heads = [torch.stack([A + D, A - D])[None] for A in (A1, A2)]  # (1, 2, 3, 3): valid heads averaging to A
    assert torch.allclose(attention_rollout(two_heads, residual=False)[0], A2 @ A1)
    assert torch.allclose(raw_attention_scores(attentions, query=2)[0], A2[2])
    # padding the last position: its column and row vanish, the other rows are renormalised
    mask = torch.tensor([[1, 1, 0]])
    rollout = attention_rollout(attentions, mask, residual=False)[0]
    B1, B2 = (A[:2, :2] / A[:2, :2].sum(-1, keepdim=True) for A in (A1, A2))
    assert torch.allclose(rollout[:2, :2], B2 @ B1) and (rollout[2] == 0).all() and (rollout[:, 2] == 0).all()
    assert torch.allclose(rollout_scores(attentions, mask, query=-1, residual=False)[0], rollout[1])


# ------------------------------------------------------------------------------------------------- randomisation


@pytest.fixture(scope="module")
def bert():
    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(vocab_size=40, max_len=16, d_model=16, num_layers=2,
                                                     num_heads=2, d_ff=32, num_labels=2, dropout=0.0))
    with torch.no_grad():  # the 0.02 init gives nearly constant logits: re-draw larger weights
        for p in model.parameters():
            p.normal_(0, 0.5)
    model = model.double().eval()
    torch.manual_seed(1)
    ids, mask = torch.randint(3, 40, (4, 10)), torch.ones(4, 10, dtype=torch.long)
    ids[:, 0], mask[1, 7:], mask[3, 5:] = 1, 0, 0  # [CLS] first; rows 1 and 3 padded
    return model, ids.masked_fill(mask == 0, 0), mask


def test_randomisation_check_separates_model_blind_explanations(bert):
    model, ids, mask = bert
    before = {name: value.clone() for name, value in model.state_dict().items()}
    fixed = torch.randn(ids.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)

    def ig(m, i, a, t):
        return token_integrated_gradients(m, i, a, t, baseline="pad", n_steps=16).attributions

    def embedding_norm(m, i, a, t):  # ignores everything above the token embeddings
        return m.get_input_embeddings()(i).norm(dim=-1)

    blind = randomisation_check(model, lambda m, i, a, t: fixed, ids, mask, 1)
    assert blind.steps == ["classifier", "bert.pooler", "bert.layers.1", "bert.layers.0", "embeddings"]
    assert np.allclose(blind.spearman, 1.0)  # caught: nothing changes
    norms = randomisation_check(model, embedding_norm, ids, mask, 1)
    assert np.allclose(norms.spearman[:-1], 1.0) and np.abs(norms.spearman[-1]).mean() < 0.9
    for explain in (ig, gradient_x_input):  # gradient_x_input(model, ids, mask, target) fits as it is
        result = randomisation_check(model, explain, ids, mask, 1)
        assert result.spearman.shape == (5, 4)
        assert np.abs(result.spearman[-1]).mean() < 0.9, result.spearman
    only = randomisation_check(model, gradient_x_input, ids, mask, 1, layers=[("top", model.classifier)])
    assert only.steps == ["top"] and only.spearman.shape == (1, 4)
    after = model.state_dict()
    assert all(torch.equal(before[name], after[name]) for name in before)  # the original is untouched


def test_gpt_classifier_cascade_and_last_token_rollout():
    torch.manual_seed(0)
    model = GPTClassifier(GPT(GPTConfig(vocab_size=31, block_size=12, n_layer=2, n_head=2, d_model=16)), 2,
                          pool="last", dropout=0.0).double().eval()
    ids, mask = torch.randint(3, 31, (2, 6)), torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]])
    result = randomisation_check(model, gradient_x_input, ids, mask, 1)
    assert result.steps == ["head", "gpt.ln_f", "gpt.blocks.1", "gpt.blocks.0", "embeddings"]
    attentions = model_attentions(model, ids, mask)
    rollout = attention_rollout(attentions, mask)
    assert torch.allclose(rollout_scores(attentions, mask, query=-1), rollout[[0, 1], [5, 3]])  # last real tokens
    assert torch.allclose(rollout_scores(attentions, mask, query=torch.tensor([5, 3])), rollout[[0, 1], [5, 3]])


def test_model_attentions_feed_rollout(bert):
    model, ids, mask = bert
    attentions = model_attentions(model, ids, mask)
    assert len(attentions) == 2 and attentions[0].shape == (4, 2, 10, 10)
    scores = rollout_scores(attentions, mask)
    assert torch.allclose(scores.sum(-1), torch.ones(4, dtype=torch.float64))
    assert (scores[mask == 0] == 0).all() and (raw_attention_scores(attentions, mask)[mask == 0] == 0).all()


# -------------------------------------------------------------------------------------------------- bad inputs


def test_bad_inputs_raise(additive_batch):
    model, ids, mask, scores = additive_batch
    eye = [torch.eye(5, dtype=torch.float64).expand(2, 1, 5, 5)]  # one layer, one head
    stranger = [("x", nn.Linear(2, 2))]  # not a submodule of the model
    cases = [
        (lambda: comprehensiveness(model, ids, mask, scores[:, :3], 1), "scores must have shape"),
        *[(lambda f=f: comprehensiveness(model, ids, mask, scores, 1, fraction=f), "fraction") for f in (0, 1.5, -0.1)],
        (lambda: aopc(model, ids, mask, scores, 1, metric="faithfulness"), "metric"),
        (lambda: deletion_curve(model, ids, mask, scores, 1, steps=0), "steps"),
        (lambda: comprehensiveness(model, ids, mask, scores, [1, 1, 1]), "target"),
        (lambda: precision_at_k(scores, scores > 1, k=0), "k must"),
        (lambda: recall_at_k(scores, np.ones((2, 4), bool)), "evidence"),
        (lambda: stability(lambda seed: scores, [0, 1], k=0), "k must"),
        (lambda: stability(lambda seed: scores, [0]), "2 seeds"),
        (lambda: rank_agreement(scores, scores[:1]), "b must have shape"),
        (lambda: attention_rollout([None, None]), "return_attention"),
        (lambda: attention_rollout(eye, head_reduction="median"), "head_reduction"),
        (lambda: rollout_scores(eye, mask, query=4), "query"),  # position 4 is padding in row 1
        (lambda: randomisation_check(model, lambda *args: scores, ids, mask, 1, layers=stranger), "submodule"),
    ]
    for call, pattern in cases:
        with pytest.raises(ValueError, match=pattern):
            call()
