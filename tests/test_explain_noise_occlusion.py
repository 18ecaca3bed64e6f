"""Tests of bigtut.explain.noise (SmoothGrad, VarGrad, GradientSHAP) and bigtut.explain.occlusion: equal to
captum 0.9's NoiseTunnel, GradientShap and Occlusion (same noise, same baseline draws, same windows), on feature
models and on token models through their embeddings; the invariants (stdev 0 gives the base method, one
baseline and many samples give IG, window 1 on a linear model gives w ⊙ (x − baseline)); seeds, rows and
batch sizes; bad input. Everything in float64 on tiny random models."""

import numpy as np
import pytest
import torch
from captum.attr import GradientShap, IntegratedGradients, NoiseTunnel, Occlusion, Saliency
from explain_fixtures import CLS, additive_case
from torch import nn

from bigtut.bert import BertConfig, BertForSequenceClassification
from bigtut.explain.common import DEFAULT_SEED, as_numpy
from bigtut.explain.integrated_gradients import integrated_gradients, token_integrated_gradients
from bigtut.explain.noise import gradient_shap, smoothgrad, token_gradient_shap, token_smoothgrad
from bigtut.explain.occlusion import occlusion, token_occlusion, window_cover
from bigtut.gpt import GPT, GPTConfig

MASK = 2  # the [MASK] id of the tiny BERT


def gap(a, b) -> float:
    return float(np.abs(as_numpy(a) - as_numpy(b)).max())


@pytest.fixture(scope="module")
def mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3)).double().eval()


@pytest.fixture(scope="module")
def rows():
    g = torch.Generator().manual_seed(1)
    return torch.randn(3, 5, generator=g, dtype=torch.float64), torch.randn(4, 5, generator=g, dtype=torch.float64)


@pytest.fixture(scope="module")
def bert():
    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(vocab_size=30, max_len=12, d_model=16, num_layers=2,
                                                     num_heads=2, d_ff=32, num_labels=3, pad_id=0, dropout=0.0))
    with torch.no_grad():  # BERT's 0.02 init gives nearly constant logits: re-draw larger weights
        for p in model.parameters():
            p.normal_(0, 0.5)
    return model.double().eval()


@pytest.fixture(scope="module")
def gpt():
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=31, block_size=12, n_layer=2, n_head=2, d_model=16)).double().eval()


@pytest.fixture(scope="module")
def padded():
    """ids (3, 8) with [CLS] (id 1) first, rows 1 and 2 padded (id 0), no [MASK] in the text."""
    ids = torch.randint(3, 30, (3, 8), generator=torch.Generator().manual_seed(2))
    ids[:, 0] = CLS
    mask = torch.ones_like(ids)
    mask[1, 6:], mask[2, 4:] = 0, 0
    return ids.masked_fill(mask == 0, 0), mask


def per_row(ids, mask, target, attribute):
    """captum one row at a time (its draws depend on the batch size; ours give every row the same draws)."""
    out = []
    for b in range(len(ids)):
        torch.manual_seed(7)
        np.random.seed(7)
        t = target[b] if isinstance(target, list) else target
        out.append(attribute(b, t))
    return torch.cat(out)


# ------------------------------------------------------------------------------------- features = captum
@pytest.mark.parametrize("nt_type", ["smoothgrad", "vargrad"])
@pytest.mark.parametrize("base", ["saliency", "integrated_gradients"])
def test_smoothgrad_equals_captum_noise_tunnel(mlp, rows, nt_type, base):
    x, _ = rows
    ours = smoothgrad(mlp, x, target=[0, 2, 1], base=base, n_samples=6, stdev=0.4, seed=7, n_steps=8,
                      variance=nt_type == "vargrad", baseline=0.3, captum_compatible=True)
    method = Saliency(mlp) if base == "saliency" else IntegratedGradients(mlp)
    options = {} if base == "saliency" else dict(n_steps=8, baselines=0.3)
    ref = per_row(x, None, [0, 2, 1], lambda b, t: NoiseTunnel(method).attribute(
        x[b:b + 1], nt_type=nt_type, nt_samples=6, stdevs=0.4, target=t, **options))
    assert np.abs(ours.attributions).max() > 1e-3  # a non-trivial comparison
    assert gap(ours.attributions, ref) < 1e-14
    if nt_type == "smoothgrad":  # captum's "smoothgrad_sq" is the mean square
        sq = per_row(x, None, [0, 2, 1], lambda b, t: NoiseTunnel(method).attribute(
            x[b:b + 1], nt_type="smoothgrad_sq", nt_samples=6, stdevs=0.4, target=t, **options))
        assert gap(ours.mean_square, sq) < 1e-14


def test_gradient_shap_equals_captum(mlp, rows):
    x, distribution = rows
    ours = gradient_shap(mlp, x, target=[1, 0, 2], baseline=distribution, n_samples=9, stdev=0.2, seed=7)
    refs, deltas = [], []
    for b, t in enumerate([1, 0, 2]):
        torch.manual_seed(7)
        np.random.seed(7)
        a, d = GradientShap(mlp).attribute(x[b:b + 1], distribution, n_samples=9, stdevs=0.2, target=t,
                                           return_convergence_delta=True)
        refs.append(a)
        deltas.append(d.mean())
    assert np.abs(ours.attributions).max() > 1e-2
    assert gap(ours.attributions, torch.cat(refs)) < 1e-14 and gap(ours.delta, torch.stack(deltas)) < 1e-14


@pytest.mark.parametrize("window, stride", [(1, 1), ((2, 3), (2, 1)), ((3, 2), 2), ((5, 6), 1)])
def test_occlusion_equals_captum_on_images(window, stride):
    torch.manual_seed(3)
    model = nn.Sequential(nn.Flatten(), nn.Linear(30, 7), nn.Tanh(), nn.Linear(7, 3)).double().eval()
    images = torch.randn(2, 5, 6, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    ours = occlusion(model, images, target=[1, 2], window=window, stride=stride, baseline=0.5)
    ref = Occlusion(model).attribute(images, sliding_window_shapes=window if isinstance(window, tuple) else (1, 1),
                                     strides=stride, baselines=0.5, target=[1, 2])
    assert ref.dtype == torch.float32  # captum divides by the window counts in float32
    assert gap(ours.attributions, ref) < 1e-6 and np.abs(ours.attributions).max() > 0.05
    # a NumPy batch, a tensor baseline and one row per call give the same
    again = occlusion(model, images.numpy(), target=[1, 2], window=window, stride=stride,
                      baseline=torch.full_like(images, 0.5), batch_size=1)
    assert gap(again.attributions, ours.attributions) < 1e-14


def test_window_cover_cuts_the_last_window_at_the_border():
    assert window_cover(5, 2, 2).astype(int).tolist() == [[1, 1, 0, 0, 0], [0, 0, 1, 1, 0], [0, 0, 0, 0, 1]]
    assert window_cover(4, 4, 9).shape == (1, 4) and window_cover(3, 1, 1).sum(0).tolist() == [1, 1, 1]


# ------------------------------------------------------------------------------------- feature invariants
def test_smoothgrad_with_stdev_zero_is_the_base_method(mlp, rows):
    x, _ = rows
    leaf = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(mlp(leaf)[:, 1].sum(), leaf)
    assert gap(smoothgrad(mlp, x, target=1, stdev=0.0, n_samples=3).attributions, grad.abs()) < 1e-15
    signed = smoothgrad(mlp, x, target=1, stdev=0.0, n_samples=3, absolute=False, variance=True)
    assert gap(signed.mean, grad) < 1e-15 and gap(signed.attributions, 0 * grad) < 1e-15
    ig = integrated_gradients(mlp, x, target=1, baseline=0.3, n_steps=9)
    assert gap(smoothgrad(mlp, x, target=1, base="integrated_gradients", stdev=0.0, n_samples=2, baseline=0.3,
                          n_steps=9).attributions, ig.attributions) < 1e-15


def test_gradient_shap_with_one_baseline_approaches_ig(mlp, rows):
    x, distribution = rows
    ig = integrated_gradients(mlp, x, target=2, baseline=distribution[:1].expand_as(x), n_steps=50).attributions
    shap = gradient_shap(mlp, x, target=2, baseline=distribution[:1], n_samples=1000)
    assert gap(shap.attributions, ig) < 0.02 * np.abs(ig).max()
    assert np.abs(shap.delta).max() < 0.02  # Monte Carlo: completeness in expectation
    few = gradient_shap(mlp, x, target=2, baseline=distribution[:1], n_samples=5)
    assert np.abs(few.delta).max() > np.abs(shap.delta).max()


def test_linear_models_give_the_exact_answer():
    w = torch.tensor([[1.0, -2.0, 0.5, 3.0], [0.0, 1.0, 1.0, -1.0]], dtype=torch.float64)
    model = nn.Linear(4, 2).double()
    with torch.no_grad():
        model.weight.copy_(w)
    x = torch.randn(3, 4, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    base = torch.randn(3, 4, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    exact = w[0] * (x - base)  # (3, 4)
    assert gap(occlusion(model, x, target=0, baseline=base).attributions, exact) < 1e-14
    # a window of 2, stride 1: the mean of the two windows' drops = mean of neighbouring pairs' sums
    pairs = occlusion(model, x, target=0, window=2, baseline=base).attributions
    drops = (exact[:, :-1] + exact[:, 1:]).numpy()  # (3, 3) the windows
    assert gap(pairs[:, 1], (drops[:, 0] + drops[:, 1]) / 2) < 1e-14 and gap(pairs[:, 0], drops[:, 0]) < 1e-14
    # on a linear model GradientSHAP is exact for every draw: (x - b) ⊙ w averaged over the drawn rows
    one = gradient_shap(model, x, target=0, baseline=base[:1], n_samples=4)
    assert gap(one.attributions, w[0] * (x - base[:1])) < 1e-14 and np.abs(one.delta).max() < 1e-13


# ------------------------------------------------------------------------------------- seeds, rows, batches
FEATURE_CALLS = {
    "smoothgrad": lambda m, x, d, **k: smoothgrad(m, x, target=1, n_samples=5, **k),
    "vargrad_ig": lambda m, x, d, **k: smoothgrad(m, x, target=1, n_samples=4, base="integrated_gradients",
                                                  n_steps=6, variance=True, **k),
    "gradient_shap": lambda m, x, d, **k: gradient_shap(m, x, target=1, baseline=d, n_samples=6, stdev=0.1, **k),
}


@pytest.mark.parametrize("name", FEATURE_CALLS)
def test_seed_rows_and_batch_size(mlp, rows, name):
    x, distribution = rows
    call = FEATURE_CALLS[name]
    first = call(mlp, x, distribution, seed=3).attributions
    assert gap(call(mlp, x, distribution, seed=3).attributions, first) == 0
    assert gap(call(mlp, x, distribution, seed=4).attributions, first) > 1e-6
    assert gap(call(mlp, x, distribution).attributions, call(mlp, x, distribution, seed=DEFAULT_SEED).attributions) == 0
    assert gap(call(mlp, x[1:2], distribution, seed=3).attributions[0], first[1]) < 1e-14
    assert gap(call(mlp, x, distribution, seed=3, batch_size=2).attributions, first) < 1e-14


# ------------------------------------------------------------------------------------- tokens = captum
def embedded(model, ids):
    with torch.no_grad():
        return model.get_input_embeddings()(ids)


@pytest.mark.parametrize("base", ["saliency", "integrated_gradients"])
def test_token_smoothgrad_equals_captum_on_the_embeddings(bert, padded, base):
    ids, mask = padded
    x = embedded(bert, ids)
    x_base = embedded(bert, torch.where((ids == CLS) | (mask == 0), ids, torch.zeros_like(ids)))  # "pad"
    ours = token_smoothgrad(bert, ids, mask, target=[0, 1, 2], base=base, n_samples=5, stdev=0.3, seed=7,
                            variance=base == "saliency", keep_ids=(CLS,), n_steps=6, captum_compatible=True)

    def attribute(b, t):
        forward = lambda e: bert(inputs_embeds=e, attention_mask=mask[b:b + 1].expand(len(e), -1))  # noqa: E731
        method = Saliency(forward) if base == "saliency" else IntegratedGradients(forward)
        options = {} if base == "saliency" else dict(n_steps=6, baselines=x_base[b:b + 1])
        return NoiseTunnel(method).attribute(x[b:b + 1], nt_type="vargrad" if base == "saliency" else "smoothgrad",
                                             nt_samples=5, stdevs=0.3, target=t, **options)

    ref = per_row(ids, mask, [0, 1, 2], attribute) * mask[..., None]
    assert np.abs(ours.attributions).max() > 1e-3
    assert gap(ours.embedding_attributions, ref) < 1e-13 and gap(ours.attributions, ref.sum(-1)) < 1e-13
    assert (ours.attributions[mask.numpy() == 0] == 0).all()


def test_token_gradient_shap_equals_captum_on_the_embeddings(bert, padded):
    ids, mask = padded
    x = embedded(bert, ids)
    baseline_ids = torch.randint(3, 30, (3, 8), generator=torch.Generator().manual_seed(8))  # K = 3 texts
    ours = token_gradient_shap(bert, ids, mask, target=2, baseline=baseline_ids, n_samples=6, stdev=0.1, seed=7)

    def attribute(b, t):
        forward = lambda e: bert(inputs_embeds=e, attention_mask=mask[b:b + 1].expand(len(e), -1))  # noqa: E731
        distribution = embedded(bert, torch.where(mask[b] == 0, ids[b], baseline_ids))  # (K, L, d)
        return GradientShap(forward).attribute(x[b:b + 1], distribution, n_samples=6, stdevs=0.1, target=t)

    ref = per_row(ids, mask, 2, attribute) * mask[..., None]
    assert np.abs(ours.attributions).max() > 1e-2
    assert gap(ours.embedding_attributions, ref) < 1e-13 and gap(ours.attributions, ref.sum(-1)) < 1e-13
    assert (ours.attributions[mask.numpy() == 0] == 0).all()


def test_token_noise_methods_on_a_language_model(gpt, padded):
    ids, mask = padded
    ids, mask = ids[:, 1:], mask[:, 1:]  # no [CLS] for a GPT
    x = embedded(gpt, ids)
    ours = token_gradient_shap(gpt, ids, mask, target=[3, 4, 5], baseline="zero", n_samples=4, seed=7)
    smooth = token_smoothgrad(gpt, ids, mask, target=[3, 4, 5], n_samples=4, stdev=0.2, seed=7)
    last = mask.sum(-1) - 1  # each row's last real token, the default position

    def gshap(b, t):
        forward = lambda e: gpt(inputs_embeds=e, attention_mask=mask[b:b + 1].expand(len(e), -1)).logits[  # noqa: E731
            :, last[b]]
        return GradientShap(forward).attribute(x[b:b + 1], torch.where(mask[b, :, None] == 0, x[b], 0.0)[None],
                                               n_samples=4, target=t)

    def saliency(b, t):
        forward = lambda e: gpt(inputs_embeds=e, attention_mask=mask[b:b + 1].expand(len(e), -1)).logits[  # noqa: E731
            :, last[b]]
        return NoiseTunnel(Saliency(forward)).attribute(x[b:b + 1], nt_samples=4, stdevs=0.2, target=t)

    assert gap(ours.attributions, (per_row(ids, mask, [3, 4, 5], gshap) * mask[..., None]).sum(-1)) < 1e-13
    assert gap(smooth.attributions, (per_row(ids, mask, [3, 4, 5], saliency) * mask[..., None]).sum(-1)) < 1e-13
    at_two = token_smoothgrad(gpt, ids, target=4, n_samples=3, position=2)
    assert (at_two.attributions[:, 3:] == 0).all()  # causal: later tokens cannot matter


@pytest.mark.parametrize("window, stride", [(1, 1), (2, 1), (3, 2)])
def test_token_occlusion_equals_captum_on_the_embeddings(bert, padded, window, stride):
    ids = padded[0][:1]  # row 0: no padding
    x, d = embedded(bert, ids), bert.config.d_model
    mask_embedding = embedded(bert, torch.full_like(ids, MASK))
    ours = token_occlusion(bert, ids, target=1, window=window, stride=stride, mask_id=MASK)
    ref = Occlusion(lambda e: bert(inputs_embeds=e)).attribute(
        x, sliding_window_shapes=(window, d), strides=(stride, d), baselines=mask_embedding, target=1)
    assert gap(ours.attributions, ref[..., 0]) < 1e-6 and np.abs(ours.attributions).max() > 0.01
    assert gap(ref[..., 0], ref[..., -1]) == 0  # the window covers all of d: one score per token
    # keep_ids=(CLS,): captum over positions 1.. with [CLS] prepended in the forward is the same
    kept = token_occlusion(bert, ids, target=1, window=window, stride=stride, mask_id=MASK, keep_ids=(CLS,))
    ref = Occlusion(lambda e: bert(inputs_embeds=torch.cat([x[:, :1].expand(len(e), -1, -1), e], 1))).attribute(
        x[:, 1:], sliding_window_shapes=(window, d), strides=(stride, d), baselines=mask_embedding[:, 1:], target=1)
    assert kept.attributions[0, 0] == 0 and gap(kept.attributions[:, 1:], ref[..., 0]) < 1e-6
    # absent="pad": captum occluding a 0/1 attention mask over positions 1.. ([CLS] stays attended)
    hidden = token_occlusion(bert, ids, target=1, window=window, stride=stride, absent="pad", keep_ids=(CLS,))
    ref = Occlusion(lambda z: bert(ids.expand(len(z), -1), attention_mask=torch.cat(
        [torch.ones_like(z[:, :1]), z], 1).round().long())).attribute(
        torch.ones(1, ids.shape[1] - 1, dtype=torch.float64), sliding_window_shapes=(window,), strides=stride,
        baselines=0.0, target=1)
    assert gap(hidden.attributions[:, 1:], ref) < 1e-6 and hidden.attributions[0, 0] == 0


def test_token_occlusion_on_padding_deletion_and_language_models(bert, gpt, padded):
    ids, mask = padded
    for absent in ("mask", "pad", "delete"):
        batch = token_occlusion(bert, ids, mask, target=[0, 1, 2], window=2, absent=absent, mask_id=MASK,
                                keep_ids=(CLS,), batch_size=5)
        assert (batch.attributions[mask.numpy() == 0] == 0).all() and (batch.attributions[:, 0] == 0).all()
        alone = token_occlusion(bert, ids[2:, :4], target=2, window=2, absent=absent, mask_id=MASK, keep_ids=(CLS,))
        assert gap(alone.attributions[0], batch.attributions[2, :4]) < 1e-12  # padding changes nothing
    # window 1 with "delete" on the additive model: each token's own weight (the deletion of one token)
    model, add_ids, add_mask, perfect = additive_case()
    result = token_occlusion(model, add_ids, add_mask, target=1, absent="delete", keep_ids=(CLS,))
    assert gap(result.attributions, perfect * (add_mask * (add_ids != CLS))) < 1e-14
    assert result.n_evaluations == 2 + (4 + 1) + (2 + 1)  # the probe, then each row's text and windows
    # a language model: read at the last real token; later tokens never matter
    lm_ids, lm_mask = ids[:, 1:], mask[:, 1:]
    lm = token_occlusion(gpt, lm_ids, lm_mask, target=[3, 4, 5], absent="pad", window=2)
    assert (lm.attributions[lm_mask.numpy() == 0] == 0).all()
    last = (lm_mask.sum(-1) - 1).numpy()
    assert (lm.attributions[np.arange(3), last] == 0).all()  # "pad": the read token is no player
    with torch.no_grad():
        logits = gpt(lm_ids, attention_mask=lm_mask).logits[torch.arange(3), torch.as_tensor(last)]
    assert gap(lm.output, logits[torch.arange(3), torch.tensor([3, 4, 5])]) < 1e-12


# ------------------------------------------------------------------------------------- token invariants, rows
def test_token_methods_at_stdev_zero_and_with_one_baseline(bert, padded):
    ids, mask = padded
    ig = token_integrated_gradients(bert, ids, mask, target=1, keep_ids=(CLS,), n_steps=8)
    smooth = token_smoothgrad(bert, ids, mask, target=1, base="integrated_gradients", stdev=0.0, n_samples=2,
                              keep_ids=(CLS,), n_steps=8)
    assert gap(smooth.attributions, ig.attributions) < 1e-14
    model, add_ids, add_mask, perfect = additive_case()  # linear in the embeddings: exact for every draw
    exact = token_gradient_shap(model, add_ids, add_mask, target=1, baseline="zero", keep_ids=(CLS,), n_samples=3)
    assert gap(exact.attributions, perfect * (add_mask * (add_ids != CLS))) < 1e-14
    assert np.abs(exact.delta).max() < 1e-13


TOKEN_CALLS = {
    "token_smoothgrad": lambda m, i, a, **k: token_smoothgrad(m, i, a, n_samples=3, stdev=0.2, **k),
    "token_vargrad_ig": lambda m, i, a, **k: token_smoothgrad(m, i, a, n_samples=2, stdev=0.2, n_steps=4,
                                                              base="integrated_gradients", variance=True,
                                                              keep_ids=(CLS,), **k),
    "token_gradient_shap": lambda m, i, a, **k: token_gradient_shap(m, i, a, baseline="mask", mask_id=MASK,
                                                                    n_samples=4, stdev=0.1, **k),
}


@pytest.mark.parametrize("name", TOKEN_CALLS)
def test_token_seed_rows_and_batch_size(bert, padded, name):
    ids, mask = padded
    call = TOKEN_CALLS[name]
    first = call(bert, ids, mask, target=[0, 1, 2], seed=3).attributions
    assert np.abs(first).max() > 1e-5 and (first[mask.numpy() == 0] == 0).all()
    assert gap(call(bert, ids, mask, target=[0, 1, 2], seed=4).attributions, first) > 1e-6
    assert gap(call(bert, ids, mask, target=[0, 1, 2], seed=3, batch_size=2).attributions, first) < 1e-12
    assert gap(call(bert, ids[1:2], mask[1:2], target=1, seed=3).attributions[0], first[1]) < 1e-12


# ------------------------------------------------------------------------------------- bad input
def test_bad_input_is_refused_before_any_model_call(mlp, rows, bert, padded):
    x, distribution = rows
    calls = []

    def counted(z):
        calls.append(len(z))
        return mlp(z)

    feature_cases = {
        r"window \(6,\) is larger than an input \(5,\)": lambda: occlusion(counted, x, target=0, window=6),
        r"window must be >= 1 along every dimension, got 0": lambda: occlusion(counted, x, target=0, window=0),
        r"window must be an int or a tuple of 1 ints \(one per feature dimension\), got \(2, 2\)":
            lambda: occlusion(counted, x, target=0, window=(2, 2)),
        r"stride must be >= 1 along every dimension, got 0": lambda: occlusion(counted, x, target=0, stride=0),
        r"stride=3 is larger than window=2": lambda: occlusion(counted, x, target=0, window=2, stride=3),
        r"inputs \(3, 5\) and baseline \(3, 4\)": lambda: occlusion(counted, x, target=0, baseline=x[:, :4]),
        r"stdev \(the noise's standard deviation\) must be a number >= 0, got -0.1":
            lambda: smoothgrad(counted, x, target=0, stdev=-0.1),
        r"stdev .* got nan": lambda: gradient_shap(counted, x, target=0, stdev=float("nan")),
        r"n_samples must be an int >= 1, got 0": lambda: smoothgrad(counted, x, target=0, n_samples=0),
        r"base must be one of \('saliency', 'integrated_gradients'\), got 'gradient'":
            lambda: smoothgrad(counted, x, target=0, base="gradient"),
        r"inputs \(3, 5\) and baseline \(1, 5\)":
            lambda: smoothgrad(counted, x, target=0, base="integrated_gradients", baseline=x[:1]),
        r"baseline must be a distribution \(K, 5\) of reference inputs.*got shape \(4, 3\)":
            lambda: gradient_shap(counted, x, target=0, baseline=distribution[:, :3]),
        r"baseline must be a distribution \(K, 5\).*got shape \(5,\)":
            lambda: gradient_shap(counted, x, target=0, baseline=distribution[0]),
        r"baseline must be finite": lambda: gradient_shap(counted, x, target=0, baseline=distribution * np.nan),
        r"n_samples must be an int >= 1, got 0$": lambda: gradient_shap(counted, x, target=0, n_samples=0),
    }
    for message, call in feature_cases.items():
        with pytest.raises((ValueError, TypeError), match=message):
            call()
    assert calls == []
    ids, mask = padded
    token_cases = {
        r"window=7 is longer than a row's 5 explained tokens": lambda: token_occlusion(
            bert, ids, mask, target=0, window=7, mask_id=MASK, keep_ids=(CLS,)),
        r"window must be an int >= 1, got 0": lambda: token_occlusion(bert, ids, mask, target=0, window=0,
                                                                      mask_id=MASK),
        r"stride must be an int >= 1, got 0": lambda: token_occlusion(bert, ids, mask, target=0, stride=0,
                                                                      mask_id=MASK),
        r"stride=2 is larger than window=1": lambda: token_occlusion(bert, ids, mask, target=0, stride=2,
                                                                     mask_id=MASK),
        r"absent must be one of \('mask', 'pad', 'delete'\), got 'drop'": lambda: token_occlusion(
            bert, ids, mask, target=0, absent="drop"),
        r"absent='mask' replaces tokens by mask_id": lambda: token_occlusion(bert, ids, mask, target=0),
        r"base must be one of": lambda: token_smoothgrad(bert, ids, mask, target=0, base="ig"),
        r"stdev .* got -1": lambda: token_smoothgrad(bert, ids, mask, target=0, stdev=-1),
        r"baseline ids must be a distribution \(K, 8\).*got shape \(2, 5\)": lambda: token_gradient_shap(
            bert, ids, mask, target=0, baseline=ids[:2, :5]),
        r"baseline must be 'pad', 'mask', 'zero'": lambda: token_gradient_shap(bert, ids, mask, target=0,
                                                                               baseline="unk"),
        r"baseline='mask' needs mask_id=": lambda: token_gradient_shap(bert, ids, mask, target=0, baseline="mask"),
        r"target must lie in \[0, 3\), got 5": lambda: token_gradient_shap(bert, ids, mask, target=5),
    }
    for message, call in token_cases.items():
        with pytest.raises((ValueError, TypeError), match=message):
            call()
