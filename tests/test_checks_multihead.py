"""Notebook 02's multi-head attention checkers and the causal self-attention checker (fused q/k/v, as in GPT-2):
correct classes pass on seeds 0-2; each plausible mistake fails with a message that names it."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bigtut.attention import MultiHeadAttention
from bigtut.checks import CheckFailure
from bigtut.checks.multihead import (
    check_causal_self_attention_module,
    check_mha_dropout,
    check_mha_output_projection,
    check_mha_shapes,
    check_mha_values,
    check_multi_head_attention,
)

SEEDS = [0, 1, 2]


# ------------------------------------------------------------------ multi-head attention, one switch per mistake
class Switchable(nn.Module):
    """Multi-head attention written as students write it, with a switch for each mistake."""

    split_without_transpose = value_from_key = values_by_k_proj = mask_ignored = mask_inverted = False
    softmax_over_heads = softmax_over_queries = pow_one_half = functional_dropout_always = False
    out_proj_unused = dropout_on_output = dropout_on_values = dropout_unscaled = dropout_scaled_by_p = False
    dropout_fixed_rate = dropout_twice = fixed_num_heads = key_viewed_with_query_length = mask_to_zero = False
    out_proj_on_values = out_proj_twice = False

    def __init__(self, d_model, num_heads, dropout=0.1):
        super().__init__()
        self.d_model, self.h = d_model, 4 if self.fixed_num_heads else num_heads
        self.d_head, self.p = d_model // self.h, dropout
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (nn.Linear(d_model, d_model) for _ in range(4))
        self.dropout = nn.Dropout(0.5 if self.dropout_fixed_rate else dropout)

    def split(self, x, length=None):
        B, L = x.shape[0], x.shape[1] if length is None else length
        if self.split_without_transpose:
            return x.reshape(B, self.h, L, self.d_head)
        return x.view(B, L, self.h, self.d_head).transpose(1, 2)

    def drop(self, x):
        if not self.training or self.p == 0:
            return x
        keep = (torch.rand_like(x) >= self.p).to(x.dtype)
        if self.dropout_unscaled:
            return x * keep
        return x * keep / self.p  # dropout_scaled_by_p

    def forward(self, query, key, value, mask=None):
        B, Lq, _ = query.shape
        q = self.split(self.q_proj(query))
        k = self.split(self.k_proj(key), Lq if self.key_viewed_with_query_length else None)
        v_in = self.v_proj(value)
        if self.dropout_on_values:
            v_in = self.dropout(v_in)
        v = self.split((self.k_proj if self.values_by_k_proj else self.v_proj)(key if self.value_from_key else value)
                       if not self.dropout_on_values else v_in)
        if self.out_proj_on_values:
            v = self.split(self.out_proj(self.v_proj(value)))
        scale = self.d_head ** 1 / 2 if self.pow_one_half else math.sqrt(self.d_head)
        scores = q @ k.transpose(-2, -1) / scale
        if mask is not None and not self.mask_ignored:
            scores = scores.masked_fill(mask if self.mask_inverted else ~mask, 0.0 if self.mask_to_zero else -math.inf)
        dim = 1 if self.softmax_over_heads else -2 if self.softmax_over_queries else -1
        weights = torch.softmax(scores, dim=dim)
        if self.functional_dropout_always:
            dropped = F.dropout(weights, self.p)  # training=True by default
        elif self.dropout_unscaled or self.dropout_scaled_by_p:
            dropped = self.drop(weights)
        elif self.dropout_on_output or self.dropout_on_values:
            dropped = weights
        else:
            dropped = self.dropout(weights)
        heads = dropped @ v
        merged = heads.transpose(1, 2).reshape(B, Lq, self.d_model)
        out = merged if self.out_proj_unused or self.out_proj_on_values else self.out_proj(merged)
        if self.out_proj_twice:
            out = self.out_proj(out)
        if self.dropout_on_output or self.dropout_twice:
            out = self.dropout(out)
        return out, weights


def mistake(*switches):
    return type("With_" + "_".join(switches), (Switchable,), dict.fromkeys(switches, True))


class SdpaMHA(nn.Module):
    """Multi-head attention on torch.nn.functional.scaled_dot_product_attention (dropout inside it)."""

    def __init__(self, d_model, num_heads, dropout=0.0):
        super().__init__()
        self.h, self.p = num_heads, dropout
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (nn.Linear(d_model, d_model) for _ in range(4))

    def forward(self, query, key, value, mask=None):
        B, Lq, d = query.shape

        def split(x):
            return x.view(B, x.shape[1], self.h, d // self.h).transpose(1, 2)

        heads = F.scaled_dot_product_attention(split(self.q_proj(query)), split(self.k_proj(key)),
                                               split(self.v_proj(value)), attn_mask=mask,
                                               dropout_p=self.p if self.training else 0.0)
        return self.out_proj(heads.transpose(1, 2).reshape(B, Lq, d))


@pytest.mark.parametrize("cls", [MultiHeadAttention, Switchable, SdpaMHA], ids=lambda c: c.__name__)
@pytest.mark.parametrize("seed", SEEDS)
def test_mha_checkers_pass_correct_classes_on_every_seed(cls, seed, capsys):
    for checker in (check_mha_shapes, check_mha_output_projection, check_mha_values, check_mha_dropout,
                    check_multi_head_attention):
        checker(cls, seed=seed)
    assert capsys.readouterr().out.count("PASS ") == 5


MHA_MISTAKES = [
    ("split_without_transpose", check_mha_values, "heads split without a transpose"),
    ("value_from_key", check_mha_values, "values projected from `key`"),
    ("values_by_k_proj", check_mha_values, "values made by k_proj"),
    ("mask_ignored", check_mha_values, "the mask ignored"),
    ("mask_inverted", check_mha_values, "the mask inverted"),
    ("mask_to_zero", check_mha_values, "masked scores set to 0, not -inf"),
    ("softmax_over_heads", check_mha_values, r"softmax over the heads \(dim=1\)"),
    ("softmax_over_queries", check_mha_values, r"softmax over the queries \(dim=-2\)"),
    ("pow_one_half", check_mha_values, r"`d_head \*\* 1/2` is"),
    ("functional_dropout_always", check_mha_values, "dropout is still active"),
    ("out_proj_unused", check_mha_output_projection, "has an out_proj, but it is not the layer's last step"),
    ("out_proj_on_values", check_mha_output_projection, "has an out_proj, but it is not the layer's last step"),
    ("out_proj_twice", check_mha_output_projection, "has an out_proj, but it is not the layer's last step"),
    ("dropout_on_output", check_mha_dropout, "Dropout is elsewhere"),
    ("dropout_on_values", check_mha_dropout, "Dropout is elsewhere"),
    ("dropout_unscaled", check_mha_dropout, "the kept weights were not rescaled"),
    ("dropout_scaled_by_p", check_mha_dropout, "divided by p = 0.25"),
    ("dropout_fixed_rate", check_mha_dropout, "the rate is fixed"),
    ("dropout_twice", check_mha_dropout, "through dropout twice"),
    ("fixed_num_heads", check_mha_shapes, r"per-head weights of shape \(3, 4, 9, 9\)"),
    ("key_viewed_with_query_length", check_mha_shapes, r"cross-attention, Lq != Lk.*raised RuntimeError"),
]


@pytest.mark.parametrize("switch, checker, message", MHA_MISTAKES, ids=[s for s, _, _ in MHA_MISTAKES])
@pytest.mark.parametrize("seed", SEEDS)
def test_mha_checkers_name_each_mistake(switch, checker, message, seed):
    buggy = mistake(switch)
    with pytest.raises(CheckFailure, match=message):
        checker(buggy, seed=seed)
    with pytest.raises(CheckFailure):
        check_multi_head_attention(buggy, seed=seed)


def test_mha_output_projection_accepts_projections_without_bias(capsys):
    class NoBias(Switchable):
        def __init__(self, d_model, num_heads, dropout=0.0):
            super().__init__(d_model, num_heads, dropout)
            self.q_proj, self.k_proj, self.v_proj, self.out_proj = (nn.Linear(d_model, d_model, bias=False)
                                                                    for _ in range(4))

    for checker in (check_mha_output_projection, check_mha_values, check_multi_head_attention):
        checker(NoBias, seed=0)
    assert capsys.readouterr().out.count("PASS") == 3


def test_a_mistake_in_one_place_does_not_fail_the_unrelated_checks():
    for switch in ("dropout_on_output", "dropout_on_values", "dropout_scaled_by_p", "dropout_fixed_rate"):
        for checker in (check_mha_shapes, check_mha_output_projection, check_mha_values):
            checker(mistake(switch), seed=0)
    check_mha_shapes(mistake("out_proj_unused"), seed=0)


def test_mha_values_catches_a_value_projected_from_key_only_with_distinct_key_and_value():
    """The old cross-attention case passed key as value, so `v_proj(key)` went unseen."""
    with pytest.raises(CheckFailure, match=r"value ≠ key"):
        check_mha_values(mistake("value_from_key"), seed=0)


# ----------------------------------------------- causal self-attention with a fused q/k/v projection (GPT-2)
class NanoCausal(nn.Module):
    """nanoGPT's CausalSelfAttention: c_attn (d -> 3d), c_proj, attention and residual dropout, a tril buffer."""

    order = "qkv"
    per_head_split = scale_by_d_model = no_c_proj = merge_without_transpose = no_mask = transposed_mask = False
    mask_on_cpu = dropout_on_scores = only_attn_dropout = only_resid_dropout = functional_dropout_always = False
    dropout_unscaled = float32_output = dropout_before_mask = dropout_on_values = dropout_before_c_proj = False

    def __init__(self, d_model, n_head, dropout=0.0):
        super().__init__()
        self.h, self.p = n_head, dropout
        self.c_attn = nn.Linear(d_model, 3 * d_model)
        self.c_proj = nn.Linear(d_model, d_model)
        self.attn_dropout, self.resid_dropout = nn.Dropout(dropout), nn.Dropout(dropout)
        self.register_buffer("tril", torch.ones(64, 64, dtype=torch.bool).tril())

    def forward(self, x):
        B, L, d = x.shape
        h, d_head = self.h, d // self.h
        qkv = self.c_attn(x)  # (B, L, 3d)
        if self.per_head_split:
            q, k, v = (t.reshape(B, L, d) for t in qkv.view(B, L, h, 3 * d_head).split(d_head, dim=-1))
        else:
            parts = dict(zip(self.order, qkv.split(d, dim=2)))
            q, k, v = parts["q"], parts["k"], parts["v"]
        q, k, v = (t.view(B, L, h, d_head).transpose(1, 2) for t in (q, k, v))  # (B, h, L, d_head)
        scores = q @ k.transpose(-2, -1) / math.sqrt(d if self.scale_by_d_model else d_head)
        if self.dropout_before_mask:
            scores = self.attn_dropout(scores)
        if not self.no_mask:
            keep = torch.ones(L, L).tril().bool() if self.mask_on_cpu else self.tril[:L, :L]
            scores = scores.masked_fill(~(keep.T if self.transposed_mask else keep), float("-inf"))
        if self.dropout_on_scores:
            scores = self.attn_dropout(scores)
        weights = torch.softmax(scores, dim=-1)
        if self.functional_dropout_always:
            weights = F.dropout(weights, self.p)
        elif self.dropout_unscaled:
            weights = weights * (torch.rand_like(weights) >= self.p) if self.training else weights
        elif not (self.dropout_on_scores or self.dropout_before_mask or self.only_resid_dropout
                  or self.dropout_on_values):
            weights = self.attn_dropout(weights)
        heads = weights @ (self.attn_dropout(v) if self.dropout_on_values else v)  # (B, h, L, d_head)
        merged = heads.reshape(B, L, d) if self.merge_without_transpose else heads.transpose(1, 2).reshape(B, L, d)
        if self.dropout_before_c_proj:
            merged = self.resid_dropout(merged)
        out = merged if self.no_c_proj else self.c_proj(merged)
        if not (self.only_attn_dropout or self.dropout_before_c_proj):
            out = self.resid_dropout(out)
        return out.float() if self.float32_output else out


class SdpaCausal(nn.Module):
    """The same with F.scaled_dot_product_attention(is_causal=True)."""

    def __init__(self, d_model, n_head, dropout=0.0):
        super().__init__()
        self.h, self.p = n_head, dropout
        self.c_attn, self.c_proj = nn.Linear(d_model, 3 * d_model), nn.Linear(d_model, d_model)
        self.resid_dropout = nn.Dropout(dropout)

    def forward(self, x):
        B, L, d = x.shape
        q, k, v = (t.view(B, L, self.h, d // self.h).transpose(1, 2) for t in self.c_attn(x).split(d, dim=2))
        heads = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=self.p if self.training else 0.0)
        return self.resid_dropout(self.c_proj(heads.transpose(1, 2).reshape(B, L, d)))


class NoDropoutCausal(NanoCausal):  # wrong: the exercise's signature has dropout=0.0
    def __init__(self, d_model, n_head):
        super().__init__(d_model, n_head, 0.0)


class DropoutByDefault(NanoCausal):  # wrong: CausalSelfAttention(d, h) drops in training
    def __init__(self, d_model, n_head, dropout=0.1):
        super().__init__(d_model, n_head, dropout)


class FixedRate(NanoCausal):  # wrong: the argument is ignored
    def __init__(self, d_model, n_head, dropout=0.0):
        super().__init__(d_model, n_head, 0.1)


class NoBias(NanoCausal):  # wrong: GPT-2's projections have biases
    def __init__(self, d_model, n_head, dropout=0.0):
        super().__init__(d_model, n_head, dropout)
        self.c_attn = nn.Linear(d_model, 3 * d_model, bias=False)
        self.c_proj = nn.Linear(d_model, d_model, bias=False)


class AdditiveMaskCausal(NanoCausal):  # correct too: an additive -1e9 mask, F.dropout with self.training
    def forward(self, x):
        B, L, d = x.shape
        q, k, v = (t.view(B, L, self.h, d // self.h).transpose(1, 2) for t in self.c_attn(x).split(d, dim=2))
        future = torch.full((L, L), -1e9, dtype=x.dtype, device=x.device).triu(1)
        weights = F.dropout((q @ k.transpose(-2, -1) * (d // self.h) ** -0.5 + future).softmax(-1), self.p,
                            training=self.training)
        return F.dropout(self.c_proj((weights @ v).transpose(1, 2).reshape(B, L, d)), self.p, self.training)


def causal_mistake(**switches):
    return type("Causal_" + "_".join(switches), (NanoCausal,), switches)


def bigtut_causal():
    from bigtut.gpt import CausalSelfAttention

    return CausalSelfAttention


@pytest.mark.parametrize("seed", SEEDS)
def test_causal_self_attention_module_passes_correct_classes(seed, capsys):
    for cls in (NanoCausal, SdpaCausal, AdditiveMaskCausal, bigtut_causal()):
        check_causal_self_attention_module(cls, seed=seed, hf=False)
    out = capsys.readouterr().out
    assert out.count("PASS causal_self_attention_module") == 4
    assert out.count("dropout on the attention weights and on the output") == 4


def test_causal_self_attention_module_equals_hugging_face_gpt2_attention(capsys):
    transformers = pytest.importorskip("transformers")
    from transformers.models.gpt2.modeling_gpt2 import GPT2Attention

    class HFLayout(nn.Module):
        """Hugging Face's GPT2Attention (Conv1D weights (d, 3d)) behind module(x), with its causal mask."""

        def __init__(self, d_model, n_head, dropout=0.0):
            super().__init__()
            config = transformers.GPT2Config(n_embd=d_model, n_head=n_head, attn_pdrop=dropout, resid_pdrop=dropout)
            config._attn_implementation = "eager"
            self.attn = GPT2Attention(config, layer_idx=0)

        def forward(self, x):
            L = x.shape[1]
            blocked = ~torch.ones(L, L, dtype=torch.bool, device=x.device).tril()
            additive = torch.zeros(L, L, dtype=x.dtype, device=x.device).masked_fill(blocked, torch.finfo(x.dtype).min)
            return self.attn(x, attention_mask=additive[None, None])[0]

    check_causal_self_attention_module(NanoCausal, seed=0, hf=True)
    check_causal_self_attention_module(HFLayout, seed=0, hf=True)
    assert capsys.readouterr().out.count("and Hugging Face GPT2Attention") == 2


CAUSAL_MISTAKES = [
    (dict(no_mask=True), "the future leaks"),
    (dict(transposed_mask=True), "the future leaks"),
    (dict(order="kqv"), "split in the order k, q, v"),
    (dict(order="qvk"), "split in the order q, v, k"),
    (dict(per_head_split=True), "read per head"),
    (dict(scale_by_d_model=True), "divided by √d_model"),
    (dict(no_c_proj=True), "no output projection"),
    (dict(merge_without_transpose=True), r"merged without transpose\(1, 2\)"),
    (dict(mask_on_cpu=True), "fails on a GPU"),
    (dict(dropout_on_scores=True), "dropout on the scores"),
    (dict(dropout_before_mask=True), "dropout on the scores"),
    (dict(only_attn_dropout=True), "one dropout where GPT-2 has two"),
    (dict(only_resid_dropout=True), "one dropout where GPT-2 has two"),
    (dict(functional_dropout_always=True), "dropout is still active"),
    (dict(dropout_unscaled=True), "does not rescale what it keeps"),
    (dict(float32_output=True), "is torch.float32 for torch.float64 inputs"),
    (dict(dropout_on_values=True), "dropout zeroes single features"),
    (dict(dropout_before_c_proj=True), "Dropout before c_proj"),
]


@pytest.mark.parametrize("switches, message", CAUSAL_MISTAKES, ids=[m for _, m in CAUSAL_MISTAKES])
@pytest.mark.parametrize("seed", SEEDS)
def test_causal_self_attention_module_names_each_mistake(switches, message, seed):
    with pytest.raises(CheckFailure, match=message):
        check_causal_self_attention_module(causal_mistake(**switches), seed=seed, hf=False)


@pytest.mark.parametrize("cls, message", [
    (NoDropoutCausal, "takes no `dropout` argument"), (DropoutByDefault, "default must be dropout=0.0"),
    (FixedRate, "rate is fixed"), (NoBias, "c_attn has no bias"),
], ids=["no dropout argument", "dropout by default", "fixed rate", "no bias"])
@pytest.mark.parametrize("seed", SEEDS)
def test_causal_self_attention_module_names_constructor_mistakes(cls, message, seed):
    with pytest.raises(CheckFailure, match=message):
        check_causal_self_attention_module(cls, seed=seed, hf=False)


def test_causal_self_attention_module_rejects_unmappable_classes():
    class Renamed(nn.Module):
        def __init__(self, d_model, n_head):
            super().__init__()
            self.wqkv, self.wo = nn.Linear(d_model, 3 * d_model), nn.Linear(d_model, d_model)

        def forward(self, x):
            return self.wo(x)

    with pytest.raises(CheckFailure, match="name the fused q/k/v projection c_attn"):
        check_causal_self_attention_module(Renamed, seed=0)
    with pytest.raises(CheckFailure, match="expected a class"):
        check_causal_self_attention_module(NanoCausal(16, 4), seed=0)

    class Stub(NanoCausal):
        def forward(self, x):
            raise NotImplementedError("Exercise: replace this line with your code")

    with pytest.raises(CheckFailure, match="not implemented"):
        check_causal_self_attention_module(Stub, seed=0)


def test_causal_self_attention_module_modifying_x_in_place_is_named():
    class InPlace(NanoCausal):
        def forward(self, x):
            x /= 1.5  # "normalising" the caller's tensor
            return super().forward(x * 1.5)

    with pytest.raises(CheckFailure, match="changed its input `x` in place"):
        check_causal_self_attention_module(InPlace, seed=0, hf=False)


def test_the_module_checker_leaves_torchs_generator_alone(capsys):
    """Building the student's modules and seeding dropout must not move the notebook's random numbers."""
    from bigtut.checks.multihead import check_causal_self_attention_module
    from bigtut.gpt import CausalSelfAttention

    torch.manual_seed(123)
    before = torch.get_rng_state()
    check_causal_self_attention_module(CausalSelfAttention, seed=0, hf=False)
    assert torch.equal(torch.get_rng_state(), before)
    assert "PASS" in capsys.readouterr().out
