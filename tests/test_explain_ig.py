"""Tests of bigtut.explain.integrated_gradients: equal to captum's IntegratedGradients and
LayerIntegratedGradients, the IG axioms (completeness, saturation, dummy features, linearity), quadrature
convergence, batching and input validation. Everything runs in float64 on tiny models."""

import numpy as np
import pytest
import torch
from captum.attr import IntegratedGradients, LayerIntegratedGradients
from torch import nn

from bigtut.bert import BertConfig, BertForSequenceClassification
from bigtut.explain.common import as_numpy
from bigtut.explain.integrated_gradients import (
    INTEGRATION_RULES,
    integrated_gradients,
    integration_rule,
    token_integrated_gradients,
)
from bigtut.gpt import GPT, GPTClassifier, GPTConfig


def gap(a, b) -> float:
    """Largest absolute difference of two arrays or tensors (float64)."""
    return float(np.abs(as_numpy(a) - as_numpy(b)).max())


def tanh_mlp(n_in=5, n_out=3, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(n_in, 8), nn.Tanh(), nn.Linear(8, n_out)).double().eval()


@pytest.fixture(scope="module")
def batch():
    g = torch.Generator().manual_seed(1)
    return torch.randn(4, 5, generator=g, dtype=torch.float64), torch.randn(4, 5, generator=g, dtype=torch.float64)


@pytest.fixture(scope="module")
def bert():
    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(vocab_size=40, max_len=16, d_model=16, num_layers=2,
                                                     num_heads=2, d_ff=32, num_labels=3, pad_id=0)).double().eval()
    with torch.no_grad():  # BERT's 0.02 init gives nearly constant logits: re-draw larger weights
        for module in model.modules():
            if isinstance(module, nn.Embedding):
                module.weight.normal_(0, 1)
            elif isinstance(module, nn.Linear):
                module.weight.normal_(0, module.in_features ** -0.5)
    return model


@pytest.fixture(scope="module")
def gpt():
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=31, block_size=20, n_layer=2, n_head=2, d_model=16)).double().eval()


@pytest.fixture(scope="module")
def padded_ids():
    torch.manual_seed(2)
    ids = torch.randint(3, 31, (3, 9))
    ids[:, 0] = 1  # a [CLS]-like token kept by keep_ids
    mask = torch.ones_like(ids)
    mask[1, 6:], mask[2, 4:] = 0, 0
    return ids.masked_fill(mask == 0, 0), mask


# ---------------------------------------------------------------------------------------------- the rules


@pytest.mark.parametrize("method", INTEGRATION_RULES)
def test_rules_sum_to_one_and_captum_trapezoid_does_not(method):
    alphas, weights = integration_rule(method, 7)
    assert alphas.dtype == weights.dtype == torch.float64 and alphas.shape == weights.shape == (7,)
    assert bool(((alphas >= 0) & (alphas <= 1)).all())
    assert abs(weights.sum().item() - 1) < 1e-14
    _, captum_weights = integration_rule(method, 7, captum_compatible=True)
    expected = 1 - 1 / 7 if method == "riemann_trapezoid" else 1.0
    assert abs(captum_weights.sum().item() - expected) < 1e-6  # float32 weights: ~1e-7 off


def test_rules_integrate_polynomials():
    alphas, weights = integration_rule("gausslegendre", 4)  # exact up to degree 7
    assert abs((weights * alphas ** 7).sum().item() - 1 / 8) < 1e-15
    alphas, weights = integration_rule("riemann_trapezoid", 3)  # exact for straight lines
    assert abs((weights * (2 * alphas + 1)).sum().item() - 2) < 1e-15
    alphas, weights = integration_rule("riemann_middle", 5)  # the midpoint rule too
    assert abs((weights * (3 * alphas - 1)).sum().item() - 0.5) < 1e-15


# --------------------------------------------------------------------------------- equal to captum (MLP)


@pytest.mark.parametrize("method", INTEGRATION_RULES)
def test_equals_captum(method, batch):
    x, base = batch
    model, target, n = tanh_mlp(), [0, 2, 1, 2], 20
    ref, ref_delta = IntegratedGradients(model).attribute(x, base, target=target, n_steps=n, method=method,
                                                          return_convergence_delta=True)
    ours = integrated_gradients(model, x, baseline=base, target=target, n_steps=n, method=method,
                                captum_compatible=True)
    # captum's own rule reproduces it to rounding (about 1e-16; the sum over steps runs in another order)
    assert gap(ours.attributions, ref) < 1e-12
    assert gap(ours.delta, ref_delta) < 1e-12
    exact = integrated_gradients(model, x, baseline=base, target=target, n_steps=n, method=method)
    if method != "riemann_trapezoid":
        # The exact float64 rule differs from captum's only by captum's float32 nodes (Riemann) and float32
        # weights (all methods): about 2e-8 here for Riemann, 5e-10 for Gauss-Legendre -- below 1e-6, but
        # enough to leave captum's Gauss-Legendre delta near 1e-10 where the float64 rule reaches 1e-16.
        assert gap(exact.attributions, ref) < 1e-6
    else:
        # Same nodes, weights proportional (1/(n-1) against captum's 1/n): ours = captum's * n/(n-1), up to
        # captum's float32 rounding; and completeness is much better.
        assert gap(exact.attributions, ref * n / (n - 1)) < 1e-6
        assert np.abs(exact.delta).max() < 0.05 * ref_delta.abs().max().item()


# ---------------------------------------------------------------------------- completeness, convergence


def test_delta_is_the_completeness_gap(batch):
    x, base = batch
    model = tanh_mlp()
    attributions, delta = integrated_gradients(model, x, baseline=base, target=1, n_steps=6, method="riemann_right")
    with torch.no_grad():
        change = model(x)[:, 1] - model(base)[:, 1]
    assert gap(delta, attributions.sum(1) - as_numpy(change)) < 1e-14
    assert isinstance(attributions, np.ndarray) and attributions.dtype == np.float64
    assert attributions.shape == x.shape and delta.shape == (4,)


@pytest.mark.parametrize("method", INTEGRATION_RULES)
def test_delta_shrinks_with_more_steps(method, batch):
    x, base = batch
    model = tanh_mlp()
    gaps = [integrated_gradients(model, x, baseline=base, target=0, n_steps=n, method=method).delta.__abs__().max()
            for n in (5, 50, 300)]
    for coarse, fine in zip(gaps, gaps[1:]):
        assert fine < coarse or fine < 1e-13  # Gauss-Legendre hits rounding level already at 50 steps
    assert gaps[-1] < 2e-3  # O(1/n) for left/right Riemann sums, far smaller for the others


def test_batch_size_changes_nothing(batch):
    x, base = batch
    model = tanh_mlp()
    whole = integrated_gradients(model, x, baseline=base, target=[2, 1, 0, 1], n_steps=9)
    for size in (1, 7, 36, 1000):
        part = integrated_gradients(model, x, baseline=base, target=[2, 1, 0, 1], n_steps=9, batch_size=size)
        # the same arithmetic; only the BLAS may round a differently sized matrix product differently
        assert gap(part.attributions, whole.attributions) < 1e-14
        assert gap(part.delta, whole.delta) < 1e-14


def test_probabilities_scalar_baseline_and_no_parameter_grads(batch):
    x, _ = batch
    model = tanh_mlp().train()
    result = integrated_gradients(model, x, baseline=0.5, target=2, n_steps=40, probabilities=True)
    with torch.no_grad():
        change = model(x).softmax(-1)[:, 2] - model(torch.full_like(x, 0.5)).softmax(-1)[:, 2]
    assert gap(result.attributions.sum(1), change) < 1e-10
    assert all(p.grad is None for p in model.parameters())
    assert model.training  # the mode is the caller's business


# -------------------------------------------------------------------------------------------- the axioms


def test_saturation_example_of_the_paper():
    f = lambda x: (1 - torch.relu(1 - x)).sum(1)  # noqa: E731  f(x) = min(x, 1), flat beyond x = 1
    x = torch.tensor([[2.0]], dtype=torch.float64, requires_grad=True)
    (gradient,) = torch.autograd.grad(f(x).sum(), x)
    assert gradient.item() == 0.0  # the gradient says x does not matter...
    attributions, delta = integrated_gradients(f, x, n_steps=4, method="riemann_middle")
    assert attributions.item() == 1.0 and delta.item() == 0.0  # ...IG gives it all of f(2) - f(0) = 1
    attributions, _ = integrated_gradients(f, x, n_steps=50)
    assert abs(attributions.item() - 1) < 1e-12


def test_dummy_feature_gets_exactly_zero(batch):
    x, base = batch
    model = tanh_mlp()
    with torch.no_grad():
        model[0].weight[:, 3] = 0  # feature 3 never reaches the output
    attributions, _ = integrated_gradients(model, x, baseline=base, target=1, n_steps=10)
    assert bool((attributions[:, 3] == 0).all()) and bool((attributions[:, :3] != 0).all())


@pytest.mark.parametrize("method", INTEGRATION_RULES)
def test_linear_model(method, batch):
    x, base = batch
    torch.manual_seed(3)
    w = torch.randn(5, dtype=torch.float64)
    attributions, delta = integrated_gradients(lambda z: z @ w + 1.0, x, baseline=base, n_steps=6, method=method)
    assert gap(attributions, w * (x - base)) < 1e-14
    assert np.abs(delta).max() < 1e-14


# ----------------------------------------------------------------------------------------------- tokens


def captum_token_ig(model, ids, mask, baseline_ids, target, n_steps, method="gausslegendre"):
    lig = LayerIntegratedGradients(lambda i, m: model(i, m), model.get_input_embeddings())
    attributions, delta = lig.attribute(ids, baselines=baseline_ids, additional_forward_args=(mask,), target=target,
                                        n_steps=n_steps, method=method, return_convergence_delta=True)
    return attributions.sum(-1), delta


@pytest.mark.parametrize("method", ["gausslegendre", "riemann_middle"])
def test_token_ig_equals_captum_on_bert(bert, padded_ids, method):
    ids, mask = padded_ids
    ours = token_integrated_gradients(bert, ids, mask, target=[0, 1, 2], keep_ids=(1,), n_steps=12, method=method)
    # pad_id comes from bert.config; [CLS] (id 1) and the padding keep their own token in the baseline
    baseline_ids = torch.where((ids == 1) | (mask == 0), ids, torch.zeros_like(ids))
    ref, ref_delta = captum_token_ig(bert, ids, mask, baseline_ids, [0, 1, 2], 12, method)
    assert np.abs(ours.attributions).max() > 0.1  # a non-trivial comparison
    assert gap(ours.attributions, ref) < 1e-5
    assert bool((ours.attributions[:, 0] == 0).all()) and bool((ours.attributions[mask.numpy() == 0] == 0).all())
    assert ours.embedding_attributions.shape == (3, 9, 16)
    assert gap(ours.embedding_attributions.sum(-1), ours.attributions) < 1e-14
    same = token_integrated_gradients(bert, ids, mask, target=[0, 1, 2], keep_ids=(1,), n_steps=12, method=method,
                                      captum_compatible=True)
    assert gap(same.attributions, ref) < 1e-12 and gap(same.delta, ref_delta) < 1e-12


def test_token_ig_completeness(bert, padded_ids):
    ids, mask = padded_ids
    for baseline in ("mask", "zero", torch.full_like(ids, 7)):
        result = token_integrated_gradients(bert, ids, mask, target=2, baseline=baseline, mask_id=5,
                                            keep_ids=(1,), n_steps=10, batch_size=8)
        embeddings = bert.get_input_embeddings()
        keep = (mask == 0) | (ids == 1) if isinstance(baseline, str) else mask == 0
        with torch.no_grad():
            x = embeddings(ids)
            if isinstance(baseline, str) and baseline == "zero":
                x_base = torch.where(keep[..., None], x, torch.zeros_like(x))
            else:
                base_ids = torch.where(keep, ids, torch.full_like(ids, 5) if isinstance(baseline, str) else baseline)
                x_base = embeddings(base_ids)
            change = (bert(inputs_embeds=x, attention_mask=mask)
                      - bert(inputs_embeds=x_base, attention_mask=mask))[:, 2]
        assert gap(result.attributions.sum(-1) - result.delta, change) < 1e-12


def test_token_ig_equals_captum_on_gpt_classifier(gpt, padded_ids):
    ids, mask = padded_ids
    torch.manual_seed(4)
    model = GPTClassifier(gpt, 3).double().eval()
    ours = token_integrated_gradients(model, ids, mask, target=2, pad_id=0, n_steps=12)
    ref, _ = captum_token_ig(model, ids, mask, torch.where(mask == 0, ids, torch.zeros_like(ids)), 2, 12)
    assert np.abs(ours.attributions).max() > 0.01
    assert gap(ours.attributions, ref) < 1e-5


def test_token_ig_on_a_language_model(gpt, padded_ids):
    ids, mask = padded_ids
    ids = ids[:, 1:]  # no [CLS] for a GPT
    mask = mask[:, 1:]
    lig = LayerIntegratedGradients(lambda i: gpt(i).logits[:, -1], gpt.get_input_embeddings())
    ref = lig.attribute(ids, baselines=torch.zeros_like(ids), target=[3, 4, 5], n_steps=12).sum(-1)
    ours = token_integrated_gradients(gpt, ids, target=[3, 4, 5], pad_id=0, n_steps=12)  # last position
    assert gap(ours.attributions, ref) < 1e-5
    # with padding: the default position is each row's last real token, as if the row were alone
    padded = token_integrated_gradients(gpt, ids, mask, target=[3, 4, 5], pad_id=0, n_steps=12)
    alone = token_integrated_gradients(gpt, ids[2:, :3], target=5, pad_id=0, n_steps=12)
    assert gap(padded.attributions[2, :3], alone.attributions[0]) < 1e-12
    assert bool((padded.attributions[2, 3:] == 0).all())
    at_two = token_integrated_gradients(gpt, ids, target=4, pad_id=0, n_steps=12, position=2)
    assert bool((at_two.attributions[:, 3:] == 0).all())  # causal: later tokens cannot matter


# ---------------------------------------------------------------------------------------------- errors


def test_errors_name_the_problem(batch, bert, padded_ids):
    x, base = batch
    model = tanh_mlp()
    with pytest.raises(ValueError, match=r"inputs \(4, 5\) and baseline \(4, 3\)"):
        integrated_gradients(model, x, baseline=base[:, :3], target=0)
    with pytest.raises(ValueError, match="n_steps must be an int >= 1, got 0"):
        integrated_gradients(model, x, target=0, n_steps=0)
    with pytest.raises(ValueError, match="n_steps must be an int >= 2, got 1"):
        integrated_gradients(model, x, target=0, n_steps=1, method="riemann_trapezoid")
    with pytest.raises(ValueError, match="unknown integration method 'simpson'; choose one of riemann_left"):
        integrated_gradients(model, x, target=0, method="simpson")
    with pytest.raises(ValueError, match="NaN"):
        integrated_gradients(lambda z: model(z) * torch.nan, x, target=0)
    with pytest.raises(ValueError, match=r"target must lie in \[0, 3\), got 3"):
        integrated_gradients(model, x, target=3)
    with pytest.raises(ValueError, match="target must be an int or 4 ints"):
        integrated_gradients(model, x, target=[0, 1])
    with pytest.raises(TypeError, match="floating-point"):
        integrated_gradients(model, x.long(), target=0)
    with pytest.raises(ValueError, match="at least one example"):
        integrated_gradients(model, x[:0], target=0)
    with pytest.raises(ValueError, match="inputs must be finite"):
        integrated_gradients(model, x.masked_fill(x > 1, torch.nan), target=0)
    with pytest.raises(ValueError, match=r"returned shape \(3, 3\) for 4 rows"):
        integrated_gradients(lambda z: model(z)[:3], x, target=0)
    with pytest.raises(TypeError, match="logits tensor"):
        integrated_gradients(lambda z: model(z).tolist(), x, target=0)
    with pytest.raises(ValueError, match="batch_size must be an int >= 1"):
        integrated_gradients(model, x, target=0, batch_size=0)
    with pytest.raises(TypeError, match="probabilities must be True or False"):
        integrated_gradients(model, x, target=0, probabilities="yes")
    ids, mask = padded_ids
    with pytest.raises(ValueError, match="baseline='mask' needs mask_id="):
        token_integrated_gradients(bert, ids, mask, target=0, baseline="mask")
    with pytest.raises(ValueError, match="baseline must be 'pad', 'mask', 'zero'"):
        token_integrated_gradients(bert, ids, mask, target=0, baseline="unk")
    with pytest.raises(ValueError, match=r"attention_mask must have the shape of input_ids \(3, 9\)"):
        token_integrated_gradients(bert, ids, mask[:, :4], target=0)
    with pytest.raises(ValueError, match=r"baseline \(3, 4\) and input_ids \(3, 9\)"):
        token_integrated_gradients(bert, ids, mask, target=0, baseline=ids[:, :4])
    gpt_clf = GPTClassifier(GPT(GPTConfig(vocab_size=31, block_size=20, n_layer=1, n_head=2, d_model=8)), 2)
    with pytest.raises(ValueError, match="baseline='pad' needs pad_id="):
        token_integrated_gradients(gpt_clf, ids, target=0)
    with pytest.raises(ValueError, match=r"position= only applies to language models returning \(B, L, V\) logits"):
        token_integrated_gradients(bert, ids, mask, target=0, position=2)
    with pytest.raises(ValueError, match="position must point at a real token"):
        token_integrated_gradients(bert, ids, mask, target=0, position=8)
    with pytest.raises(TypeError, match="input_ids must be an integer tensor"):
        token_integrated_gradients(bert, ids.double(), mask, target=0)
    with pytest.raises(ValueError, match=r"add the batch dimension"):
        token_integrated_gradients(bert, ids[0], mask[0], target=0)
    with pytest.raises(ValueError, match="at least one text"):
        token_integrated_gradients(bert, ids[:0], mask[:0], target=0)
    with pytest.raises(ValueError, match="rows \\[1\\] have none"):
        token_integrated_gradients(bert, ids, mask * torch.tensor([[1], [0], [1]]), target=0)


def test_negative_positions_count_back_from_the_last_real_token(gpt, padded_ids):
    """The family's one rule: -1 is each row's last real token, wherever the padding is."""
    ids, mask = padded_ids
    ids, mask = ids[:, 1:], mask[:, 1:]
    default = token_integrated_gradients(gpt, ids, mask, target=4, pad_id=0, n_steps=8)
    last = token_integrated_gradients(gpt, ids, mask, target=4, pad_id=0, n_steps=8, position=-1)
    assert np.array_equal(default.attributions, last.attributions)
    explicit = token_integrated_gradients(gpt, ids, mask, target=4, pad_id=0, n_steps=8, position=[6, 3, 1])
    second_last = token_integrated_gradients(gpt, ids, mask, target=4, pad_id=0, n_steps=8, position=-2)
    assert np.array_equal(explicit.attributions, second_last.attributions)
