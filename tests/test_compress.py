"""Tests of bigtut.compress: int8 quantisation proven equal to torchao's maintained int8 path, magnitude pruning
proven equal to torch.nn.utils.prune, structured pruning proven equal to zeroing the removed heads/neurons,
the distillation loss against a hand computation, and the measurements. Tiny random models throughout."""

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn.utils import prune as torch_prune
from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_

from bigtut.attention import MultiHeadAttention
from bigtut.bert import BertConfig, BertForSequenceClassification
from bigtut.compress import (
    Int8Linear,
    Latency,
    count_heads,
    cpu_latency,
    dequantize,
    distill,
    distillation_loss,
    linear_layers,
    make_pruning_permanent,
    make_student,
    parameter_bytes,
    prune_ffn_neurons,
    prune_heads,
    prune_magnitude,
    quantize_model,
    quantize_symmetric,
    size_on_disk,
    soft_target_loss,
    sparsity,
    sparsity_sweep,
)
from bigtut.gpt import GPT, GPTClassifier, GPTConfig
from bigtut.gpt.model import MLP
from bigtut.transformer.layers import EncoderLayer

EPS32 = torch.finfo(torch.float32).eps


# ------------------------------------------------------------------------------------------------ models
def tiny_bert(seed=0, num_layers=2):
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=50, max_len=16, d_model=32, num_layers=num_layers, num_heads=4, d_ff=64,
                        dropout=0.0, num_labels=3)
    return BertForSequenceClassification(config).eval()


def tiny_gpt(seed=0):
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=40, block_size=16, n_layer=2, n_head=4, d_model=32)).eval()


def tiny_gpt_classifier(seed=0):
    return GPTClassifier(tiny_gpt(seed), num_classes=3, dropout=0.0).eval()


def tiny_mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(10, 20), nn.ReLU(), nn.Linear(20, 5)).eval()


def batch(seed=1, B=3, L=12, V=40):
    """Token ids ``(B, L)`` and a mask with padding at the end of row 1."""
    gen = torch.Generator().manual_seed(seed)
    mask = torch.ones(B, L, dtype=torch.long)
    mask[1, L - 4:] = 0
    return torch.randint(0, V, (B, L), generator=gen), mask


def logits_of(model, ids, mask):
    """The logits ``(B, C)`` or ``(B, L, V)`` of any of the tiny models."""
    if isinstance(model, GPT):
        return model(ids).logits
    if isinstance(model, nn.Sequential):
        return model(ids.float()[:, :10])
    return model(ids, mask)


MODELS = {"bert": tiny_bert, "gpt": tiny_gpt, "gpt_classifier": tiny_gpt_classifier}


def used_weight(layer):
    """The weight ``(O, K)`` a Linear layer really multiplies by, read off its forward pass on the identity
    (so a mask counts however the layer keeps it)."""
    exact = copy.deepcopy(layer).double()  # float32 weight + bias - bias is exact in float64
    with torch.no_grad():
        out = exact(torch.eye(layer.in_features, dtype=torch.float64))  # (K, O)
        return (out if exact.bias is None else out - exact.bias).T  # (O, K)


def zero_count(layer):
    return int((used_weight(layer) == 0).sum())


def linears(model):
    return {n: m for n, m in model.named_modules() if isinstance(m, nn.Linear)}


# ------------------------------------------------------------------------------------- quantise = torchao
@pytest.mark.parametrize("n_in, n_out, x_shape", [(1, 1, (1, 1)), (16, 8, (5, 16)), (33, 7, (2, 3, 33)),
                                          (64, 48, (1, 64)), (5, 3, (2, 2, 4, 5))])
def test_int8_linear_equals_torchao(n_in, n_out, x_shape):
    """Same int8 weight values and scales as torchao, and bit-equal outputs (2-, 3- and 4-D inputs)."""
    torch.manual_seed(n_in)
    linear = nn.Linear(n_in, n_out)
    reference = nn.Sequential(copy.deepcopy(linear))
    quantize_(reference, Int8DynamicActivationInt8WeightConfig())
    ours = Int8Linear.from_linear(linear)
    assert torch.equal(ours.weight_int8, reference[0].weight.qdata)
    assert torch.equal(ours.weight_scale.reshape(-1), reference[0].weight.scale.reshape(-1))
    x = 3 * torch.randn(x_shape)
    with torch.no_grad():
        assert torch.equal(ours(x), reference(x))


@pytest.mark.parametrize("make", MODELS.values(), ids=MODELS.keys())
def test_quantized_models_equal_torchao(make):
    """A whole BERT / GPT / GPT classifier quantised by us and by torchao gives the same logits (GPT's tied
    output layer is left float on both sides)."""
    model, (ids, mask) = make(), batch()
    reference = copy.deepcopy(model)
    quantize_(reference, Int8DynamicActivationInt8WeightConfig(),
              filter_fn=lambda m, name: isinstance(m, nn.Linear) and name != "lm_head")
    with torch.no_grad():
        torch.testing.assert_close(logits_of(quantize_model(model), ids, mask), logits_of(reference, ids, mask),
                                   atol=1e-5, rtol=0)


# --------------------------------------------------------------------------------- quantise: the numbers
@settings(max_examples=60, deadline=None)
@given(rows=st.integers(1, 6), cols=st.integers(1, 20), exponent=st.integers(-8, 8), seed=st.integers(0, 2**31 - 1),
       double=st.booleans())
def test_quantize_error_at_most_half_a_step(rows, cols, exponent, seed, double):
    """Per row, |W - dequantize(quantize(W))| <= scale / 2; values int8 in [-128, 127], scale (O, 1).

    The slack: 1e-6 of a half step in float64; in float32, ``W * (1 / scale)`` itself is rounded twice
    (about 2 * 128 * 2**-24 = 1.5e-5 step), so up to 1e-4 (measured 1.5e-5 on 3 million random weights)."""
    gen = torch.Generator().manual_seed(seed)
    dtype = torch.float64 if double else torch.float32
    W = torch.randn(rows, cols, generator=gen, dtype=dtype) * 10.0**exponent  # (O, K)
    q = quantize_symmetric(W)
    assert q.values.dtype == torch.int8 and q.values.shape == (rows, cols) and q.scale.shape == (rows, 1)
    assert int(q.values.min()) >= -128 and int(q.values.max()) <= 127
    error = (W.double() - q.values.double() * q.scale.double()).abs()  # (O, K), exact in float64
    slack = 1e-6 if double else 1e-4
    assert bool((error <= q.scale.double() / 2 * (1 + slack)).all())
    torch.testing.assert_close(q.scale, (W.abs().amax(1, keepdim=True) / 127.5).clamp(min=EPS32), atol=0, rtol=0)


def test_quantize_hand_example():
    """A row whose largest |w| is 127.5 / 256 gets the exact scale 1/256, so it lands on ±127.5 steps: +127.5
    rounds to 128 and is clamped to 127; -127.5 rounds (half to even) to -128; 0.25 is 64 steps."""
    top = 127.5 / 256
    q = quantize_symmetric(torch.tensor([[top, -0.25], [-top, 0.25], [0.25, 0.0]]))
    assert q.values.tolist() == [[127, -64], [-128, 64], [127, 0]]
    torch.testing.assert_close(q.scale, torch.tensor([[1 / 256], [1 / 256], [0.25 / 127.5]]), atol=0, rtol=0)


def test_all_zero_rows_do_not_divide_by_zero():
    """An all-zero weight row gets the smallest scale and zero values; an all-zero input token gives the bias."""
    W = torch.randn(3, 5)
    W[1] = 0.0
    q = quantize_symmetric(W)
    assert q.scale[1].item() == EPS32 and bool((q.values[1] == 0).all())
    assert torch.isfinite(dequantize(q)).all()
    linear = nn.Linear(5, 3)
    with torch.no_grad():
        linear.weight.copy_(W)
        y = Int8Linear.from_linear(linear)(torch.zeros(2, 5))
    assert torch.isfinite(y).all() and torch.equal(y, linear.bias.detach().expand(2, 3))


def test_int8_linear_gradient_is_that_of_the_dequantised_layer():
    """Straight-through: the value is the int8 one, the input gradient that of the float dequantised layer."""
    torch.manual_seed(0)
    layer = Int8Linear.from_linear(nn.Linear(6, 4))
    x = torch.randn(3, 6, requires_grad=True)
    y = layer(x)  # (3, 4)
    y.pow(2).sum().backward()
    with torch.no_grad():
        assert torch.equal(y, layer(x))  # the int8 value, also when a gradient is asked for
    torch.testing.assert_close(x.grad, 2 * y.detach() @ layer.dequantized_weight())


# --------------------------------------------------------------------------- compressed models stay close
def ffn_widths(model):
    """Hidden width of every feed-forward block, in model order."""
    return [m.linear1.out_features if isinstance(m, EncoderLayer) else m.fc.out_features
            for m in model.modules() if isinstance(m, (EncoderLayer, MLP))]


def all_int8(original, compressed):
    """Every Linear layer that quantize_model chooses by default is an Int8Linear in the copy."""
    return all(isinstance(compressed.get_submodule(n), Int8Linear) for n in linear_layers(original))


def int8_zeros(model):
    """(zeros, entries) among the int8 weights of the model."""
    layers = [m for m in model.modules() if isinstance(m, Int8Linear)]
    return sum(int((m.weight_int8 == 0).sum()) for m in layers), sum(m.weight_int8.numel() for m in layers)


# What shows that each compression really happened: (original, compressed copy) -> bool. An identity
# "compression" fails every one.
def pruned_30(original, compressed):
    return sparsity(original) == 0.0 and sparsity(compressed) == pytest.approx(0.3, abs=1e-3)


def fewer_heads(original, compressed):
    return count_heads(original) == [4, 4] and count_heads(compressed) == [3, 3]


def narrower(original, compressed):
    return ffn_widths(compressed) == [w * 3 // 4 for w in ffn_widths(original)]


def pruned_int8(original, compressed):
    zeros, entries = int8_zeros(compressed)
    return all_int8(original, compressed) and zeros >= round(0.3 * entries)


# Max |logit change| on the test batch, measured for model seed 0 / worst of seeds 0-4 / smallest of seeds 0-4.
# The tolerance is >= 3x the worst; the floor (a compression must move the logits) <= 1/3 of the smallest.
# BERT's random-init logits are ~0.045 in size, GPT's ~0.7.
CLOSE = [  # (model, compression, tolerance, floor, what shows it happened)
    ("bert", lambda m: quantize_model(m), 1e-3, 5e-5, all_int8),  # 2.0e-4 / 3.8e-4 / 1.7e-4
    ("gpt", lambda m: quantize_model(m), 1e-2, 5e-4, all_int8),  # 2.4e-3 / 2.4e-3 / 1.7e-3
    ("bert", lambda m: prune_magnitude(m, 0.3), 1.5e-2, 5e-4, pruned_30),  # 4.1e-3 / 4.1e-3 / 2.6e-3
    ("gpt", lambda m: prune_magnitude(m, 0.3), 0.15, 1e-2, pruned_30),  # 3.6e-2 / 3.6e-2 / 3.0e-2
    ("bert", lambda m: prune_heads(m, 0.25), 1e-3, 1e-5, fewer_heads),  # 1.4e-4 / 2.1e-4 / 5.7e-5
    ("gpt", lambda m: prune_heads(m, 0.25), 0.3, 1e-2, fewer_heads),  # 8.6e-2 / 8.6e-2 / 3.4e-2
    ("bert", lambda m: prune_ffn_neurons(m, 0.25), 1e-3, 2e-5, narrower),  # 7.8e-5 / 1.4e-4 / 7.8e-5
    ("gpt", lambda m: prune_ffn_neurons(m, 0.25), 0.2, 1e-2, narrower),  # 5.8e-2 / 6.3e-2 / 4.6e-2
    ("bert", lambda m: quantize_model(prune_magnitude(m, 0.3)), 1.5e-2, 5e-4, pruned_int8),  # 4.0e-3 / 4.0e-3 / 2.4e-3
]


@pytest.mark.parametrize("name, compress, tolerance, floor, happened", CLOSE,
                         ids=[f"{n}-{i}" for i, (n, *_) in enumerate(CLOSE)])
def test_compressed_models_stay_close(name, compress, tolerance, floor, happened):
    """Quantised and pruned models run and their logits stay within a stated distance of the original's —
    and move by more than a stated floor, with the compression visible in the copy (int8 layers, zeros,
    fewer heads, narrower feed-forward blocks), so a "compression" that changes nothing fails."""
    model = MODELS[name]()
    ids, mask = batch(seed=2, B=4)
    compressed = compress(model)
    with torch.no_grad():
        before, after = logits_of(model, ids, mask), logits_of(compressed, ids, mask)
    assert after.shape == before.shape
    change = (after - before).abs().max().item()
    assert change < tolerance, f"the logits moved by {change:.3g}, more than the tolerance {tolerance:g}"
    assert change > floor, f"the logits moved by only {change:.3g} <= {floor:g}: did the compression do anything?"
    assert happened(model, compressed), "the copy shows no sign of the compression"


def test_compressions_leave_the_original_untouched():
    model = tiny_bert()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    for compress in (quantize_model, lambda m: prune_magnitude(m, 0.5), lambda m: prune_heads(m, 0.5),
                     lambda m: prune_ffn_neurons(m, 0.5), lambda m: make_student(m, layers=[1], d_ff=16)):
        compress(model)
    assert model.state_dict().keys() == state.keys()
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    assert all(type(m) is nn.Linear for m in linears(model).values())
    assert count_heads(model) == [4, 4] and model.config.num_layers == 2 and model.config.d_ff == 64


# ------------------------------------------------------------------------------ unstructured: exact count
@pytest.mark.parametrize("s", [0.0, 0.3, 0.5, 0.77, 0.999])
def test_global_sparsity_is_exact(s):
    """round(s * n) zeros among the n weights of all chosen layers together."""
    pruned = prune_magnitude(tiny_bert(), s)
    layers = [m for m in pruned.modules() if isinstance(m, nn.Linear)]
    n = sum(m.weight.numel() for m in layers)
    assert sum(zero_count(m) for m in layers) == round(s * n)
    assert sparsity(pruned) == round(s * n) / n


@pytest.mark.parametrize("s", [0.1, 0.5, 0.9])
def test_per_layer_sparsity_is_exact(s):
    """round(s * n_layer) zeros in every layer."""
    pruned = prune_magnitude(tiny_bert(), s, scope="layer")
    layers = [m for m in pruned.modules() if isinstance(m, nn.Linear)]
    assert len(layers) == 2 * 6 + 2
    assert [zero_count(m) for m in layers] == [round(s * m.weight.numel()) for m in layers]


@pytest.mark.parametrize("scope", ["global", "layer"])
def test_nested_pruning_keeps_the_earlier_zeros(scope):
    first = prune_magnitude(tiny_bert(), 0.3, scope=scope)
    second = prune_magnitude(first, 0.6, scope=scope)
    before, after = linears(first), linears(second)
    for name, layer in before.items():
        assert bool((used_weight(after[name])[used_weight(layer) == 0] == 0).all())
    n = {name: layer.weight.numel() for name, layer in before.items()}
    if scope == "global":
        assert sum(zero_count(layer) for layer in after.values()) == round(0.6 * sum(n.values()))
    else:
        assert [zero_count(layer) for layer in after.values()] == [round(0.6 * n[name]) for name in after]


@pytest.mark.parametrize("s", [0.2, 0.5, 0.85])
def test_masks_equal_torch_prune(s):
    """The masks of torch.nn.utils.prune: l1_unstructured per layer, global_unstructured over all layers."""
    model = tiny_mlp()
    per_layer, globally = copy.deepcopy(model), copy.deepcopy(model)
    for layer in (per_layer[0], per_layer[2]):
        torch_prune.l1_unstructured(layer, "weight", amount=s)
    torch_prune.global_unstructured([(globally[0], "weight"), (globally[2], "weight")],
                                    pruning_method=torch_prune.L1Unstructured, amount=s)
    for reference, scope in ((per_layer, "layer"), (globally, "global")):
        pruned = prune_magnitude(model, s, scope=scope)
        for i in (0, 2):  # the random weights have no zeros and no ties
            assert torch.equal((used_weight(pruned[i]) != 0).float(), reference[i].weight_mask)


def test_masks_survive_fine_tuning():
    """AdamW with weight decay moves the kept weights but every pruned entry stays exactly zero."""
    pruned = prune_magnitude(tiny_mlp(), 0.6)
    before = [used_weight(pruned[i]) for i in (0, 2)]
    optimizer = torch.optim.AdamW(pruned.parameters(), lr=1e-2, weight_decay=0.1)
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(32, 10, generator=gen), torch.randn(32, 5, generator=gen)
    for _ in range(5):
        optimizer.zero_grad()
        F.mse_loss(pruned(x), y).backward()
        optimizer.step()
    assert sparsity(pruned) == round(0.6 * 300) / 300
    for i, old in zip((0, 2), before):
        new = used_weight(pruned[i])
        assert bool((new[old == 0] == 0).all()) and bool((new[old != 0] != old[old != 0]).all())


def test_make_pruning_permanent_gives_a_plain_model():
    model = tiny_bert()
    pruned = prune_magnitude(model, 0.4)
    ids, mask = batch()
    with torch.no_grad():
        expected = pruned(ids, mask)
        assert make_pruning_permanent(pruned) is pruned
        got = pruned(ids, mask)
    assert all(type(m) is nn.Linear for m in linears(pruned).values())
    assert pruned.state_dict().keys() == model.state_dict().keys()  # no mask left anywhere
    n = sum(m.weight.numel() for m in pruned.modules() if isinstance(m, nn.Linear))
    assert torch.equal(got, expected) and sparsity(pruned) == round(0.4 * n) / n


def test_quantizing_a_pruned_model_keeps_its_zeros():
    pruned = prune_magnitude(tiny_bert(), 0.5)
    quantized = quantize_model(pruned)
    for name, layer in linears(pruned).items():
        int8 = quantized.get_submodule(name)
        assert isinstance(int8, Int8Linear) and bool((int8.weight_int8[used_weight(layer) == 0] == 0).all())


# --------------------------------------------------------------------------------------- size on disk
def test_size_on_disk_dense_for_masks_smaller_for_structure_and_int8():
    model = tiny_bert()
    dense = size_on_disk(model)
    assert size_on_disk(prune_magnitude(model, 0.9)) == dense
    assert size_on_disk(prune_heads(model, 0.5)) < dense
    assert size_on_disk(prune_ffn_neurons(model, 0.5)) < dense
    assert size_on_disk(quantize_model(model)) < 0.5 * dense


def test_parameter_bytes_shows_int8():
    model = tiny_mlp()
    assert parameter_bytes(model) == {"torch.float32": 4 * (10 * 20 + 20 + 20 * 5 + 5)}
    sizes = parameter_bytes(quantize_model(model))
    assert sizes["torch.int8"] == 10 * 20 + 20 * 5
    assert sizes["torch.float32"] == 4 * (20 + 5 + 20 + 5)  # biases and one scale per output row


# ------------------------------------------------------------------------------------------- structured
def own_head_scores(attn):
    """Squared norm per head ``(h,)`` of its q/k/v rows and out_proj columns, computed here independently."""
    scores = []
    for j in range(attn.num_heads):
        dims = slice(j * attn.d_head, (j + 1) * attn.d_head)
        rows = sum(p.weight[dims].pow(2).sum() for p in (attn.q_proj, attn.k_proj, attn.v_proj))
        scores.append(rows + attn.out_proj.weight[:, dims].pow(2).sum())
    return torch.stack(scores)


@pytest.mark.parametrize("make", [tiny_bert, tiny_gpt_classifier], ids=["bert", "gpt_classifier"])
def test_prune_heads_equals_zeroing_the_weakest_heads(make):
    """The pruned model = the original with the lowest-scoring heads' q/k/v rows and out_proj columns zeroed;
    its attention (B, h', L, L) is the original's for the kept heads."""
    model = make().double()
    pruned = prune_heads(model, 0.5)
    zeroed = copy.deepcopy(model)
    kept = []
    with torch.no_grad():
        for attn in (m for m in zeroed.modules() if isinstance(m, MultiHeadAttention)):
            order = own_head_scores(attn).argsort(descending=True)
            kept.append(order[:2].sort().values)
            for j in order[2:].tolist():
                rows = slice(j * attn.d_head, (j + 1) * attn.d_head)
                for p in (attn.q_proj, attn.k_proj, attn.v_proj):
                    p.weight[rows], p.bias[rows] = 0.0, 0.0
                attn.out_proj.weight[:, rows] = 0.0
        ids, mask = batch()
        got, got_attn = pruned(ids, mask, return_attention=True)
        expected, full_attn = zeroed(ids, mask, return_attention=True)
    assert count_heads(pruned) == [2, 2]
    torch.testing.assert_close(got, expected, atol=1e-10, rtol=0)
    for weights, full, heads in zip(got_attn, full_attn, kept):
        assert weights.shape == (3, 2, 12, 12)
        torch.testing.assert_close(weights, full[:, heads], atol=1e-12, rtol=0)


@pytest.mark.parametrize("make", [tiny_bert, tiny_gpt], ids=["bert", "gpt"])
def test_prune_ffn_neurons_equals_zeroing_the_weakest_neurons(make):
    """Zeroing a neuron's up-projection row and bias gives GELU(0) = 0: the same model as removing it."""
    model = make().double()
    pruned = prune_ffn_neurons(model, 0.25)
    zeroed = copy.deepcopy(model)
    with torch.no_grad():
        for module in zeroed.modules():
            if not isinstance(module, (EncoderLayer, MLP)):
                continue
            up, down = (module.linear1, module.linear2) if isinstance(module, EncoderLayer) else (module.fc,
                                                                                                    module.proj)
            score = up.weight.norm(dim=1) * down.weight.norm(dim=0)  # (d_ff,)
            removed = score.argsort()[:round(0.25 * up.out_features)]
            up.weight[removed], up.bias[removed] = 0.0, 0.0
        ids, mask = batch()
        torch.testing.assert_close(logits_of(pruned, ids, mask), logits_of(zeroed, ids, mask), atol=1e-10, rtol=0)
    widths = [m.out_features for n, m in pruned.named_modules() if n.endswith(("linear1", "mlp.fc"))]
    assert widths == ([48, 48] if make is tiny_bert else [96, 96])


def test_prune_heads_follows_the_model_device():
    """Every index tensor is made on the model's device (meta here stands for a GPU)."""
    pruned = prune_heads(copy.deepcopy(tiny_bert()).to("meta"), 0.5)
    assert count_heads(pruned) == [2, 2] and pruned.bert.layers[0].self_attn.q_proj.weight.device.type == "meta"


# --------------------------------------------------------------------------------------- distillation
def test_distillation_loss_by_hand():
    """Two classes, T = 2, alpha = 0.25. Example 1: student (1, 0), teacher (0, 2), label 1. Example 2: both
    (0, 0), label 0, so KL = 0 and CE = log 2. The loss is the mean over the two examples."""
    T, alpha = 2.0, 0.25
    q = [math.exp(0.5) / (math.exp(0.5) + 1), 1 / (math.exp(0.5) + 1)]  # softmax((1, 0) / 2)
    p = [1 / (1 + math.e), math.e / (1 + math.e)]  # softmax((0, 2) / 2)
    kl = sum(pi * math.log(pi / qi) for pi, qi in zip(p, q))  # KL(teacher || student), example 1
    ce = -math.log(1 / (math.e + 1))  # -log softmax((1, 0))[1], example 1
    expected = alpha * T**2 * (kl + 0.0) / 2 + (1 - alpha) * (ce + math.log(2)) / 2
    student = torch.tensor([[1.0, 0.0], [0.0, 0.0]], dtype=torch.float64)
    teacher = torch.tensor([[0.0, 2.0], [0.0, 0.0]], dtype=torch.float64)
    got = distillation_loss(student, teacher, torch.tensor([1, 0]), temperature=T, alpha=alpha)
    assert got.shape == () and got.item() == pytest.approx(expected, rel=1e-12)


def test_distillation_loss_is_zero_when_the_logits_match():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(5, 4, generator=gen, dtype=torch.float64)
    assert distillation_loss(logits, logits, temperature=3.0, alpha=1.0).item() == 0.0
    assert soft_target_loss(logits, logits + 7.0, temperature=0.5).abs().item() < 1e-12  # a shift per row


def test_t_squared_keeps_the_soft_gradient_size():
    """With T², the gradient of the soft term hardly changes from T = 4 to 16 (without it: 16 times smaller)."""
    gen = torch.Generator().manual_seed(0)
    student = 2 * torch.randn(4, 5, generator=gen, dtype=torch.float64)  # (B, C)
    teacher = 2 * torch.randn(4, 5, generator=gen, dtype=torch.float64)  # (B, C)
    norms = []
    for T in (4.0, 16.0):
        s = student.clone().requires_grad_()
        soft_target_loss(s, teacher, temperature=T).backward()
        norms.append(s.grad.norm().item())
    assert norms[1] / norms[0] == pytest.approx(1.0, abs=0.1)  # measured 1.016


def test_teacher_gets_no_gradient():
    torch.manual_seed(0)
    student = torch.randn(3, 4, requires_grad=True)
    teacher = torch.randn(3, 4, requires_grad=True)
    distillation_loss(student, teacher, torch.tensor([0, 1, 3]), temperature=2.0, alpha=0.5).backward()
    assert teacher.grad is None and student.grad is not None and student.grad.abs().sum() > 0


def test_make_student_keeps_the_chosen_layers():
    teacher = tiny_bert(num_layers=3)
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    student = make_student(teacher, layers=[0, 2])
    assert len(student.bert.layers) == 2 and student.config.num_layers == 2 == student.bert.config.num_layers
    for mine, theirs in zip(student.bert.layers, (teacher.bert.layers[0], teacher.bert.layers[2])):
        assert all(torch.equal(a, b) for a, b in zip(mine.state_dict().values(), theirs.state_dict().values()))
    assert torch.equal(student.classifier.weight, teacher.classifier.weight)
    assert teacher.config.num_layers == 3 and len(teacher.bert.layers) == 3
    assert all(torch.equal(v, before[k]) for k, v in teacher.state_dict().items())
    ids, mask = batch(V=50)
    assert student(ids, mask).shape == (3, 3)


def test_make_student_with_a_narrower_feed_forward():
    teacher = tiny_bert()
    student = make_student(teacher, layers=[1], d_ff=24)
    layer, source = student.bert.layers[0], teacher.bert.layers[1]
    assert student.config.d_ff == 24 and teacher.config.d_ff == 64
    assert layer.linear1.weight.shape == (24, 32) and layer.linear2.weight.shape == (32, 24)
    kept = (source.linear1.weight.norm(dim=1) * source.linear2.weight.norm(dim=0)).topk(24).indices.sort().values
    assert torch.equal(layer.linear1.weight, source.linear1.weight[kept])
    assert torch.equal(layer.linear2.weight, source.linear2.weight[:, kept])


def test_distill_lowers_the_distillation_loss():
    """60 steps on a synthetic task (label = the second token's id mod 3) lower the loss against the teacher."""
    teacher = tiny_bert(num_layers=2)
    student = make_student(teacher, layers=[0], d_ff=16)
    gen = torch.Generator().manual_seed(0)

    def batches():
        ids = torch.randint(1, 50, (16, 8), generator=gen)
        return ids, torch.ones_like(ids), ids[:, 1] % 3

    fixed = [batches() for _ in range(4)]

    def loss():
        with torch.no_grad():
            return sum(distillation_loss(student(i, m), teacher(i, m), y, temperature=2.0, alpha=0.5).item()
                       for i, m, y in fixed)

    start = loss()
    history = distill(teacher, student, fixed, steps=60, lr=3e-3, device="cpu", progress=False)
    student.eval()
    assert len(history.train_loss) == 60 and loss() < 0.85 * start  # measured 2.20 -> 1.58 (0.72)


# ------------------------------------------------------------------------------------------- measures
def test_cpu_latency_states_and_restores_threads():
    before = torch.get_num_threads()
    threads = 2 if before == 1 else 1  # differs from the current setting, so a missing restore shows
    result = cpu_latency(tiny_mlp(), torch.randn(4, 10), repeats=5, warmup=1, threads=threads)
    assert isinstance(result, Latency) and result.threads == threads and result.repeats == 5
    assert 0 < result.q1_ms <= result.median_ms <= result.q3_ms
    assert torch.get_num_threads() == before



def test_compare_latency_times_every_model_in_every_round(monkeypatch):
    """Each model is timed once per round, each round starting at a different model; medians over rounds."""
    import bigtut.compress.measure as measure

    calls = []

    def fake_cpu_latency(model, *args, repeats, warmup, threads):
        calls.append(model.tag)
        ms = float(model.tag * 10 + len(calls) % 3)  # differs from round to round
        return Latency(ms, ms, ms, threads, repeats)

    models = {}
    for tag in range(3):
        m = tiny_mlp()
        m.tag = tag
        models[f"model {tag}"] = (m, (torch.randn(2, 10),))
    monkeypatch.setattr(measure, "cpu_latency", fake_cpu_latency)
    found = measure.compare_latency(models, rounds=3, repeats=4, threads=1)
    assert calls == [0, 1, 2, 1, 2, 0, 2, 0, 1]  # rotating start
    assert set(found) == set(models) and all(t.repeats == 12 and t.threads == 1 for t in found.values())
    for tag in range(3):
        per_round = [tag * 10 + (i + 1) % 3 for i, c in enumerate(calls) if c == tag]
        assert found[f"model {tag}"].median_ms == sorted(per_round)[1]
        assert found[f"model {tag}"].q1_ms <= found[f"model {tag}"].median_ms <= found[f"model {tag}"].q3_ms

# ------------------------------------------------------------------------------------------ bad inputs
_LOGITS, _LABELS = torch.zeros(2, 3), torch.tensor([0, 1])
BAD_CALLS = {  # id: (error, call)
    **{f"sparsity={s!r}": (ValueError, lambda s=s: prune_magnitude(tiny_mlp(), s))
       for s in (-0.1, 1.0, 1.5, True, float("nan"))},
    "scope='row'": (ValueError, lambda: prune_magnitude(tiny_mlp(), 0.5, scope="row")),
    "temperature=0": (ValueError, lambda: distillation_loss(_LOGITS, _LOGITS, _LABELS, temperature=0.0)),
    "temperature<0": (ValueError, lambda: distillation_loss(_LOGITS, _LOGITS, _LABELS, temperature=-1.0)),
    "alpha>1": (ValueError, lambda: distillation_loss(_LOGITS, _LOGITS, _LABELS, alpha=1.5)),
    "alpha<0": (ValueError, lambda: distillation_loss(_LOGITS, _LOGITS, _LABELS, alpha=-0.1)),
    "no labels, alpha<1": (ValueError, lambda: distillation_loss(_LOGITS, _LOGITS, None, alpha=0.5)),
    "quantize unknown layer": (ValueError, lambda: quantize_model(tiny_mlp(), layers=["nope"])),
    "prune unknown layer": (ValueError, lambda: prune_magnitude(tiny_mlp(), 0.5, layers=["nope"])),
    "quantize a ReLU": (ValueError, lambda: quantize_model(tiny_mlp(), layers=["1"])),
    "prune a LayerNorm": (ValueError, lambda: prune_magnitude(tiny_bert(), 0.5, layers=["bert.embeddings.norm"])),
    "every head": (ValueError, lambda: prune_heads(tiny_bert(), 0.9)),  # round(0.9 * 4) = all 4 heads
    "heads fraction=1": (ValueError, lambda: prune_heads(tiny_bert(), 1.0)),
    "heads without attention": (ValueError, lambda: prune_heads(tiny_mlp(), 0.5)),
    "neurons without feed-forward": (ValueError, lambda: prune_ffn_neurons(tiny_mlp(), 0.5)),
    "heads of a masked model": (ValueError, lambda: prune_heads(prune_magnitude(tiny_bert(), 0.5), 0.5)),
    "student layer 2 of 2": (ValueError, lambda: make_student(tiny_bert(), layers=[2])),
    "student layer -1": (ValueError, lambda: make_student(tiny_bert(), layers=[-1])),
    "student without layers": (ValueError, lambda: make_student(tiny_bert(), layers=[])),
    "student d_ff too large": (ValueError, lambda: make_student(tiny_bert(), layers=[0], d_ff=65)),
    "student d_ff=0": (ValueError, lambda: make_student(tiny_bert(), layers=[0], d_ff=0)),
    "student of a GPT": (TypeError, lambda: make_student(tiny_gpt_classifier(), layers=[0])),
    **{f"{f.__name__} of a string": (TypeError, lambda f=f: f("model"))
       for f in (quantize_model, sparsity, size_on_disk)},
    **{f"{f.__name__} of a string": (TypeError, lambda f=f: f("model", 0.5))
       for f in (prune_magnitude, prune_heads, prune_ffn_neurons)},
}


@pytest.mark.parametrize("error, call", BAD_CALLS.values(), ids=BAD_CALLS.keys())
def test_bad_arguments_raise_clear_errors(error, call):
    with pytest.raises(error):
        call()


# ------------------------------------------------------------------------- the public API, fresh models
PUBLIC = {**MODELS, "sequential": tiny_mlp}


@pytest.mark.parametrize("make", PUBLIC.values(), ids=PUBLIC.keys())
def test_public_api_on_fresh_random_models(make):
    """What an external check does: quantise and prune a fresh random model through ``bigtut.compress``."""
    from bigtut.compress import (  # noqa: F401  (the import itself is part of the check)
        distillation_loss,
        prune_ffn_neurons,
        prune_heads,
        prune_magnitude,
        quantize_model,
        size_on_disk,
        sparsity,
    )

    model, (ids, mask) = make(seed=3), batch()
    with torch.no_grad():
        reference = logits_of(model, ids, mask)
        for compressed in (quantize_model(model), prune_magnitude(model, 0.5), prune_magnitude(model, 0.5,
                                                                                               scope="layer")):
            out = logits_of(compressed, ids, mask)
            assert out.shape == reference.shape and torch.isfinite(out).all()
    assert sparsity(model) == 0.0 and sparsity(prune_magnitude(model, 0.5)) == pytest.approx(0.5, abs=1e-3)
    assert size_on_disk(quantize_model(model)) < size_on_disk(model) == size_on_disk(prune_magnitude(model, 0.5))
    if make is tiny_mlp:
        with pytest.raises(ValueError, match="MultiHeadAttention"):
            prune_heads(model, 0.5)
    else:
        for structured in (prune_heads(model, 0.5), prune_ffn_neurons(model, 0.5)):
            with torch.no_grad():
                assert logits_of(structured, ids, mask).shape == reference.shape
            assert size_on_disk(structured) < size_on_disk(model)


def test_gpt_tied_output_layer_is_skipped_unless_named():
    """GPT's lm_head shares the token embedding: left alone by default, compressed when named explicitly."""
    gpt = tiny_gpt()
    quantized = quantize_model(gpt)
    assert type(quantized.lm_head) is nn.Linear and quantized.lm_head.weight is quantized.tok_emb.weight
    assert isinstance(quantized.blocks[0].mlp.fc, Int8Linear)
    assert sparsity(prune_magnitude(gpt, 0.5), layers=["lm_head"]) == 0.0
    head_only = quantize_model(gpt, layers=["lm_head"])
    assert isinstance(head_only.lm_head, Int8Linear) and type(head_only.blocks[0].mlp.fc) is nn.Linear
    pruned = prune_magnitude(gpt, 0.5, layers=["lm_head"])
    assert sparsity(pruned, layers=["lm_head"]) == 0.5
    assert torch.equal(pruned.tok_emb.weight, gpt.tok_emb.weight)  # the input lookup keeps every entry
    ids, _ = batch()
    with torch.no_grad():
        assert torch.isfinite(head_only(ids).logits).all() and torch.isfinite(pruned(ids).logits).all()


def test_sparsity_sweep_prunes_each_level_from_the_original():
    model = tiny_mlp()
    seen = []

    def metric(m):
        seen.append(sparsity(m))
        return 1.0 - sparsity(m)

    result = sparsity_sweep(model, [0.0, 0.5, 0.9], metric, scope="layer")
    assert list(result) == [0.0, 0.5, 0.9]
    assert result[0.5] == pytest.approx(0.5, abs=0.01) and result[0.9] == pytest.approx(0.1, abs=0.01)
    assert seen == pytest.approx([0.0, 0.5, 0.9], abs=0.01)
    assert sparsity(model) == 0.0  # the original is untouched
    with pytest.raises(ValueError):
        sparsity_sweep(model, [0.5, 1.0], metric)
