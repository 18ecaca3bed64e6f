"""Tests of the one-gradient and attention yardsticks (bigtut.explain.gradients, .attention_scores) on cases
computed by hand, and of the checks of a method (bigtut.explain.sanity): the cascading randomisation check
on a tiny BERT and a tiny GPT classifier, and stability across seeds. Everything in float64."""

import functools

import numpy as np
import pytest
import torch
from explain_fixtures import WEIGHTS, FixedAttention, additive_case, tiny_bert
from torch import nn

from bigtut.explain import (
    Attribution,
    attention_rollout,
    gradient_norm,
    gradient_x_input,
    model_attentions,
    randomisation_check,
    raw_attention_scores,
    rollout_scores,
    stability,
    token_integrated_gradients,
)
from bigtut.gpt import GPT, GPTClassifier, GPTConfig


@pytest.fixture(scope="module")
def additive_batch():
    model, ids, mask, _ = additive_case()
    return model, ids, mask


@pytest.fixture(scope="module")
def bert():
    return tiny_bert()


# -------------------------------------------------------------------------------------------------- gradients


def test_gradient_methods_on_the_additive_model(additive_batch):
    model, ids, mask = additive_batch
    expected = (WEIGHTS[ids] * mask).numpy()
    result = gradient_x_input(model, ids, mask, target=1)
    assert isinstance(result, Attribution) and result.attributions.dtype == np.float64
    assert np.allclose(result.attributions, expected)  # exact: linear
    assert np.allclose(gradient_norm(model, ids, mask, target=1).attributions, WEIGHTS.norm().item() * mask.numpy())
    assert np.allclose(gradient_x_input(model, ids, mask, target=0).attributions, 0.0)
    p = torch.sigmoid(WEIGHTS[ids].mul(mask).sum(1, keepdim=True)).numpy()  # (2, 1): dp/dlogit = p (1 - p)
    assert np.allclose(gradient_x_input(model, ids, mask, target=1, probabilities=True).attributions,
                       p * (1 - p) * expected)
    one_by_one = gradient_x_input(model, ids, mask, target=[1, 0], batch_size=1).attributions
    assert np.allclose(one_by_one, expected * np.array([[1.0], [0.0]]))


# -------------------------------------------------------------------------------------------------- attention
A1 = torch.tensor([[0.5, 0.3, 0.2], [0.1, 0.6, 0.3], [0.2, 0.2, 0.6]], dtype=torch.float64)
A2 = torch.tensor([[0.4, 0.4, 0.2], [0.3, 0.3, 0.4], [0.1, 0.1, 0.8]], dtype=torch.float64)


def test_rollout_equals_the_hand_product():
    attentions = [A1[None, None], A2[None, None]]  # 2 layers of (B=1, h=1, L=3, L=3)
    model, ids = FixedAttention(attentions), torch.zeros(1, 3, dtype=torch.long)
    plain = attention_rollout(attentions, residual=False)[0]
    # row 0: 0.4 A1[0] + 0.4 A1[1] + 0.2 A1[2] = (0.2 + 0.04 + 0.04, 0.12 + 0.24 + 0.04, 0.08 + 0.12 + 0.12)
    assert torch.allclose(plain[0], torch.tensor([0.28, 0.40, 0.32], dtype=torch.float64))
    assert torch.allclose(plain, A2 @ A1)
    eye = torch.eye(3, dtype=torch.float64)
    assert torch.allclose(attention_rollout(attentions)[0], (0.5 * A2 + 0.5 * eye) @ (0.5 * A1 + 0.5 * eye))
    assert np.allclose(rollout_scores(model, ids, position=1).attributions[0],
                       ((0.5 * A2 + 0.5 * eye)[1] @ (0.5 * A1 + 0.5 * eye)).numpy())
    D = 0.05 * torch.tensor([[1.0, -1, 0], [0, 1, -1], [-1, 0, 1]], dtype=torch.float64)  # rows sum to 0
    two_heads = [torch.stack([A + D, A - D])[None] for A in (A1, A2)]  # (1, 2, 3, 3): valid heads averaging to A
    assert torch.allclose(attention_rollout(two_heads, residual=False)[0], A2 @ A1)
    assert np.allclose(raw_attention_scores(model, ids, position=2).attributions[0], A2[2].numpy())
    # padding the last position: its column and row vanish, the other rows are renormalised
    mask = torch.tensor([[1, 1, 0]])
    rollout = attention_rollout(attentions, mask, residual=False)[0]
    B1, B2 = (A[:2, :2] / A[:2, :2].sum(-1, keepdim=True) for A in (A1, A2))
    assert torch.allclose(rollout[:2, :2], B2 @ B1) and (rollout[2] == 0).all() and (rollout[:, 2] == 0).all()
    assert np.allclose(rollout_scores(model, ids, mask, position=-1, residual=False).attributions[0],
                       rollout[1].numpy())


def test_attention_inputs_are_checked():
    eye = [torch.eye(5, dtype=torch.float64).expand(2, 1, 5, 5)]  # one layer, one head
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    model, ids = FixedAttention(eye), torch.zeros(2, 5, dtype=torch.long)
    cases = [
        (lambda: attention_rollout([None, None]), ValueError, "return_attention"),
        (lambda: attention_rollout(eye, head_reduction="median"), ValueError, "head_reduction"),
        (lambda: attention_rollout(eye, residual="yes"), TypeError, "residual"),
        (lambda: attention_rollout([eye[0], eye[0][:, :, :4, :4]]), ValueError, "one B, h and L for all layers"),
        (lambda: attention_rollout([eye[0] * torch.nan]), ValueError, "finite"),
        (lambda: attention_rollout([eye[0][:0]]), ValueError, "at least one row"),
        (lambda: attention_rollout([eye[0].long()]), TypeError, "floating-point"),
        (lambda: attention_rollout([]), ValueError, "non-empty"),
        (lambda: rollout_scores(model, ids, mask, position=4), ValueError, "position"),  # padding in row 1
        (lambda: rollout_scores(model, ids, mask, position=1.5), TypeError, "position"),
        (lambda: raw_attention_scores(model, ids, mask, layer=3), ValueError, "layer"),
        (lambda: rollout_scores(model, ids[0], mask[0]), ValueError, "batch dimension"),
    ]
    for call, kind, pattern in cases:
        with pytest.raises(kind, match=pattern):
            call()


def test_model_attentions_feed_rollout(bert):
    model, ids, mask = bert
    attentions = model_attentions(model, ids, mask)
    assert len(attentions) == 2 and attentions[0].shape == (4, 2, 10, 10)
    scores = rollout_scores(model, ids, mask).attributions
    assert np.allclose(scores.sum(-1), 1.0)
    padding = mask.numpy() == 0
    assert (scores[padding] == 0).all() and (raw_attention_scores(model, ids, mask).attributions[padding] == 0).all()
    in_twos = model_attentions(model, ids, mask, batch_size=2)
    assert all(torch.allclose(a, b) for a, b in zip(attentions, in_twos))


# ------------------------------------------------------------------------------------------------- randomisation


def test_randomisation_check_separates_model_blind_explanations(bert):
    model, ids, mask = bert
    before = {name: value.clone() for name, value in model.state_dict().items()}
    fixed = np.random.default_rng(3).normal(size=tuple(ids.shape))

    def embedding_norm(m, i, a, *, target):  # ignores everything above the token embeddings
        return m.get_input_embeddings()(i).norm(dim=-1)

    blind = randomisation_check(model, ids, mask, explain_fn=lambda m, i, a, *, target: fixed, target=1)
    assert blind.steps == ["classifier", "bert.pooler", "bert.layers.1", "bert.layers.0", "embeddings"]
    assert np.allclose(blind.spearman, 1.0)  # caught: the explanation does not move...
    assert (blind.output_change > 1e-3).all()  # ...although the model's output moved at every step
    assert blind.output_change.shape == (5, 4)
    norms = randomisation_check(model, ids, mask, explain_fn=embedding_norm, target=1)
    assert np.allclose(norms.spearman[:-1], 1.0) and np.abs(norms.spearman[-1]).mean() < 0.9
    ig = functools.partial(token_integrated_gradients, baseline="pad", n_steps=16)
    for explain in (ig, gradient_x_input):  # family methods fit as they are
        result = randomisation_check(model, ids, mask, explain_fn=explain, target=1)
        assert result.spearman.shape == (5, 4)
        assert np.abs(result.spearman[-1]).mean() < 0.9, result.spearman
    only = randomisation_check(model, ids, mask, explain_fn=gradient_x_input, target=1,
                               layers=[("top", model.classifier)])
    assert only.steps == ["top"] and only.spearman.shape == (1, 4) and (only.output_change > 0).all()
    after = model.state_dict()
    assert all(torch.equal(before[name], after[name]) for name in before)  # the original is untouched


def test_randomisation_really_redraws_the_weights(bert):
    """The check above could pass with a no-op randomiser; here the copy's weights must differ group by group."""
    model, ids, mask = bert
    seen = []

    def spy(m, i, a, *, target):
        seen.append({name: p.detach().clone() for name, p in m.named_parameters()})
        return np.ones(tuple(i.shape))

    randomisation_check(model, ids, mask, explain_fn=spy, target=1)
    original = dict(model.named_parameters())
    changed = [sum(not torch.equal(step[name], original[name]) for name in original) for step in seen[1:]]
    assert changed == sorted(changed) and changed[0] > 0 and changed[-1] == len(original)  # cumulative, total


def test_gpt_classifier_cascade_and_last_token_rollout():
    torch.manual_seed(0)
    model = GPTClassifier(GPT(GPTConfig(vocab_size=31, block_size=12, n_layer=2, n_head=2, d_model=16)), 2,
                          pool="last", dropout=0.0).double().eval()
    ids, mask = torch.randint(3, 31, (2, 6)), torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]])
    result = randomisation_check(model, ids, mask, explain_fn=gradient_x_input, target=1)
    assert result.steps == ["head", "gpt.ln_f", "gpt.blocks.1", "gpt.blocks.0", "embeddings"]
    rollout = attention_rollout(model_attentions(model, ids, mask), mask).numpy()
    last = rollout[[0, 1], [5, 3]]  # the last real tokens
    assert np.allclose(rollout_scores(model, ids, mask, position=-1).attributions, last)
    assert np.allclose(rollout_scores(model, ids, mask, position=torch.tensor([5, 3])).attributions, last)


def test_randomisation_bad_inputs(bert):
    model, ids, mask = bert
    fixed = np.ones(tuple(ids.shape))
    stranger = [("x", nn.Linear(2, 2))]  # not a submodule of the model
    cases = [
        (lambda: randomisation_check(model, ids, mask, explain_fn=lambda m, i, a, **k: fixed, target=1,
                                     layers=stranger), ValueError, "submodule"),
        (lambda: randomisation_check(model, ids, mask, explain_fn=lambda m, i, a, **k: fixed[:, :3], target=1),
         ValueError, "explain_fn must return"),
        (lambda: randomisation_check(model, ids, mask, explain_fn=lambda m, i, a, **k: fixed * np.nan, target=1),
         ValueError, "NaN"),
        (lambda: randomisation_check(model, ids, mask, explain_fn="ig", target=1), TypeError, "explain_fn"),
        (lambda: randomisation_check(model, ids, mask, explain_fn=gradient_x_input, target=1, std=0), ValueError,
         "std"),
        (lambda: randomisation_check(lambda *a: None, ids, mask, explain_fn=gradient_x_input), TypeError,
         "torch.nn.Module"),
    ]
    for call, kind, pattern in cases:
        with pytest.raises(kind, match=pattern):
            call()


# -------------------------------------------------------------------------------------------------- stability


def test_stability():
    ids, mask = torch.zeros(3, 7, dtype=torch.long), None
    fixed = np.random.default_rng(2).normal(size=(3, 7))
    assert np.allclose(stability(None, ids, mask, explain_fn=lambda m, i, a, *, target, seed: fixed,
                                 seeds=[0, 1, 2], k=3), 1.0)
    tops = {0: [[3.0, 2.0, 1.0, 0.0]], 1: [[1.0, 3.0, 2.0, 0.0]], 2: [[3.0, 2.0, 0.0, 1.0]]}  # {0, 1}, {1, 2}, {0, 1}
    one = torch.zeros(1, 4, dtype=torch.long)
    by_seed = lambda m, i, a, *, target, seed: np.array(tops[seed])  # noqa: E731
    assert np.allclose(stability(None, one, explain_fn=by_seed, seeds=[0, 1], k=2), 0.5)
    assert np.allclose(stability(None, one, explain_fn=by_seed, seeds=[0, 1, 2], k=2), (0.5 + 1.0 + 0.5) / 3)
    with pytest.raises(ValueError, match="k must"):
        stability(None, one, explain_fn=by_seed, seeds=[0, 1], k=0)
    with pytest.raises(ValueError, match="2 seeds"):
        stability(None, one, explain_fn=by_seed, seeds=[0])
    with pytest.raises(ValueError, match="all different"):  # a repeated seed would agree with itself
        stability(None, one, explain_fn=by_seed, seeds=[0, 0])
    with pytest.raises(TypeError, match="seeds must be"):
        stability(None, one, explain_fn=by_seed, seeds=None)
