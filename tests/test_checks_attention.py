"""The checkers of notebook 02 pass correct code and fail stubs and each plausible mistake, naming it."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from bigtut.attention import MultiHeadAttention, causal_mask, scaled_dot_product_attention
from bigtut.checks import CheckFailure
from bigtut.checks.attention import (
    check_mha_dropout,
    check_mha_output_projection,
    check_mha_shapes,
    check_mha_values,
    check_multi_head_attention,
    check_scaled_dot_product_attention,
    check_sinusoidal_encoding,
)
from bigtut.positional import sinusoidal_encoding


def stub(*args, **kwargs):
    raise NotImplementedError("fill in the solution")


# ------------------------------------------------------------------ functions: correct, stubbed, wrong
def sdpa(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1).nan_to_num(0.0)
    return weights @ v, weights


def sdpa_unscaled(q, k, v, mask=None):
    return sdpa(q * math.sqrt(q.shape[-1]), k, v, mask)


def sdpa_nan_rows(q, k, v, mask=None):  # the fully masked row becomes NaN
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    return weights @ v, weights


def sdpa_inverted_mask(q, k, v, mask=None):
    return sdpa(q, k, v, None if mask is None else ~mask)


def sdpa_output_only(q, k, v, mask=None):
    return sdpa(q, k, v, mask)[0]


def sinusoid_swapped(n, d):  # cos on even columns, sin on odd ones
    pos = torch.arange(n, dtype=torch.float64)[:, None]
    angle = pos / 10000 ** (torch.arange(0, d, 2, dtype=torch.float64) / d)
    out = torch.empty(n, d, dtype=torch.float64)
    out[:, 0::2], out[:, 1::2] = torch.cos(angle), torch.sin(angle[:, : d // 2])
    return out


def sinusoid_textbook(n, d):
    """The misprinted formula: a constant exponent 2/3 and a case split on the position instead of the column."""
    pos = torch.arange(n, dtype=torch.float64)[:, None].expand(n, d)
    angle = pos / 10000 ** (2 / 3)
    return torch.where(pos % 2 == 0, torch.sin(angle), torch.cos(angle))


def sinusoid_i_not_2i(n, d):
    pos = torch.arange(n, dtype=torch.float64)[:, None]
    i = torch.arange(d, dtype=torch.float64)[None, :] // 2
    angle = pos / 10000 ** (i / d)
    return torch.where(torch.arange(d) % 2 == 0, torch.sin(angle), torch.cos(angle))


def sinusoid_concatenated(n, d):  # [sin…, cos…] instead of interleaved
    pe = sinusoidal_encoding(n, d, dtype=torch.float64)
    return torch.cat([pe[:, 0::2], pe[:, 1::2]], dim=1)


FUNCTION_CASES = [
    (check_scaled_dot_product_attention, scaled_dot_product_attention, [
        (stub, "not implemented"), (sdpa_unscaled, "values differ"), (sdpa_nan_rows, "values differ"),
        (sdpa_inverted_mask, "values differ"), (sdpa_output_only, "tuple of 2")]),
    (check_sinusoidal_encoding, sinusoidal_encoding, [
        (stub, "not implemented"), (sinusoid_swapped, "values differ"), (sinusoid_textbook, "values differ"),
        (sinusoid_i_not_2i, "values differ"), (sinusoid_concatenated, "values differ")]),
]


@pytest.mark.parametrize("checker, correct", [(c, ok) for c, ok, _ in FUNCTION_CASES] + [
    (check_scaled_dot_product_attention, sdpa)], ids=lambda x: getattr(x, "__name__", ""))
def test_function_checkers_pass_correct_code(checker, correct, capsys):
    checker(correct)
    assert capsys.readouterr().out.startswith("PASS ")


@pytest.mark.parametrize("checker, wrong, message", [(c, w, m) for c, _, ws in FUNCTION_CASES for w, m in ws],
                         ids=lambda x: getattr(x, "__name__", None) if callable(x) else str(x))
def test_function_checkers_fail_plausible_mistakes(checker, wrong, message):
    with pytest.raises(CheckFailure, match=message):
        checker(wrong, seed=0)


def test_failures_name_the_seed_and_replay():
    with pytest.raises(CheckFailure, match="seed=123") as first:
        check_scaled_dot_product_attention(sdpa_unscaled, seed=123)
    with pytest.raises(CheckFailure) as second:
        check_scaled_dot_product_attention(sdpa_unscaled, seed=123)
    assert str(first.value) == str(second.value)


# --------------------------------------------------------------- multi-head attention, one bug at a time
class Textbook(nn.Module):
    """A multi-head attention with switches for the mistakes found in circulating textbook code."""

    head_size_from_length = scale_by_d_model = dropout_on_scores = no_output_projection = False
    merge_to_split_shape = merge_without_transpose = no_dropout = missing_import = False

    def __init__(self, d_model, num_heads, dropout=0.1):
        super().__init__()
        self.d_model, self.h = d_model, num_heads
        self.q_proj, self.k_proj, self.v_proj = (nn.Linear(d_model, d_model) for _ in range(3))
        if not self.no_output_projection:
            self.out_proj = nn.Linear(d_model, d_model)
        self.dropout = nn.Dropout(0.0 if self.no_dropout else dropout)

    def forward(self, query, key, value, mask=None):
        B, Lq, _ = query.shape
        d_head = query.shape[1] // self.h if self.head_size_from_length else self.d_model // self.h

        def split(x):
            return x.view(B, -1, self.h, d_head).transpose(1, 2)

        q, k, v = split(self.q_proj(query)), split(self.k_proj(key)), split(self.v_proj(value))
        if self.missing_import:
            raise NameError("name 'math' is not defined")
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.d_model if self.scale_by_d_model else d_head)
        if mask is not None:
            scores = scores.masked_fill(~mask, float("-inf"))
        if self.dropout_on_scores:
            weights = torch.softmax(self.dropout(scores), dim=-1)
        else:
            weights = self.dropout(torch.softmax(scores, dim=-1))
        heads = weights @ v  # (B, h, Lq, d_head)
        if self.merge_to_split_shape:
            merged = heads.transpose(1, 2).reshape(B, Lq, self.h, d_head)
        elif self.merge_without_transpose:
            merged = heads.reshape(B, Lq, self.d_model)
        else:
            merged = heads.transpose(1, 2).reshape(B, Lq, self.d_model)
        return (merged if self.no_output_projection else self.out_proj(merged)), weights


def bug(**switches):
    return type("Buggy_" + "_".join(switches), (Textbook,), switches)


class Stubbed(Textbook):
    def forward(self, query, key, value, mask=None):
        raise NotImplementedError("Exercise: replace this line with your code")


class TorchMHA(nn.MultiheadAttention):
    """nn.MultiheadAttention behind bigtut's calling convention (True = may attend)."""

    def __init__(self, d_model, num_heads, dropout=0.0):
        super().__init__(d_model, num_heads, dropout=dropout, batch_first=True)

    def forward(self, query, key, value, mask=None):
        if mask is not None:
            B, Lq, Lk = query.shape[0], query.shape[1], key.shape[1]
            mask = ~mask.expand(B, self.num_heads, Lq, Lk).reshape(B * self.num_heads, Lq, Lk)
        return super().forward(query, key, value, attn_mask=mask, average_attn_weights=False)


@pytest.mark.parametrize("cls", [MultiHeadAttention, Textbook, TorchMHA], ids=lambda c: c.__name__)
def test_mha_checkers_pass_correct_classes(cls, capsys):
    for checker in (check_mha_shapes, check_mha_output_projection, check_mha_values, check_mha_dropout,
                    check_multi_head_attention):
        checker(cls)
    assert capsys.readouterr().out.count("PASS ") == 5


@pytest.mark.parametrize("switches, checker, message", [
    ("missing_import", check_mha_shapes, "NameError: name 'math' is not defined"),
    ("head_size_from_length", check_mha_shapes, r"weights of shape \(2, 4, 20, 20\).*d_head = d_model // num_heads"),
    ("merge_to_split_shape", check_mha_shapes, "RuntimeError: mat1 and mat2 shapes cannot be multiplied"),
    ("merge_to_split_shape no_output_projection", check_mha_shapes, r"output of shape \(2, 5, 4, 4\)"),
    ("no_output_projection", check_mha_output_projection, "add the output projection out_proj"),
    ("scale_by_d_model", check_mha_values, "divided by √d_model = 4 instead of √d_head = √4 = 2"),
    ("merge_without_transpose", check_mha_values, "without moving the head axis back"),
    ("dropout_on_scores", check_mha_dropout, "Dropout belongs on the weights after the softmax"),
    ("no_dropout", check_mha_dropout, "dropped nothing in training mode"),
])
def test_each_bug_is_caught_by_its_check_and_by_the_umbrella(switches, checker, message):
    buggy = bug(**dict.fromkeys(switches.split(), True))
    with pytest.raises(CheckFailure, match=message):
        checker(buggy, seed=0)
    with pytest.raises(CheckFailure):
        check_multi_head_attention(buggy, seed=0)


def test_the_other_checks_do_not_blame_a_bug_they_are_not_about():
    """Dropout placement is invisible in eval mode: shapes and values pass, only the dropout check fails."""
    buggy = bug(dropout_on_scores=True)
    for checker in (check_mha_shapes, check_mha_output_projection, check_mha_values):
        checker(buggy)


def test_mha_checkers_fail_stubs_non_classes_and_unmappable_weights():
    with pytest.raises(CheckFailure, match="not implemented"):
        check_multi_head_attention(Stubbed)
    with pytest.raises(CheckFailure, match="expected a class"):
        check_mha_shapes(MultiHeadAttention(16, 4))

    class Renamed(nn.Module):
        def __init__(self, d_model, num_heads):
            super().__init__()
            self.h = num_heads
            self.wq, self.wk, self.wv, self.wo = (nn.Linear(d_model, d_model) for _ in range(4))

        def forward(self, query, key, value, mask=None):
            B, Lq, d = query.shape

            def split(x):
                return x.view(B, -1, self.h, d // self.h).transpose(1, 2)

            heads, _ = scaled_dot_product_attention(split(self.wq(query)), split(self.wk(key)),
                                                    split(self.wv(value)), mask)
            return self.wo(heads.transpose(1, 2).reshape(B, Lq, d))

    check_mha_shapes(Renamed)  # shapes need no names
    with pytest.raises(CheckFailure, match="no parameter named out_proj"):
        check_mha_output_projection(Renamed)
    with pytest.raises(CheckFailure, match="cannot copy the reference weights into parameter 'wq.weight'"):
        check_mha_values(Renamed)
    with pytest.raises(CheckFailure, match="no `dropout` argument"):
        check_mha_dropout(Renamed)


def test_mha_shapes_exposes_a_missing_import_on_the_usual_example():
    from torch import nn

    from bigtut.checks.attention import check_mha_shapes

    class UsesAnUnimportedModule(nn.Module):
        def __init__(self, d_model, num_heads):
            super().__init__()
            self.proj = nn.Linear(d_model, d_model)

        def forward(self, query, key, value, mask=None):
            return self.proj(query) / not_imported.sqrt(4)  # noqa: F821 - the bug under test

    with pytest.raises(CheckFailure, match=r"the usual example.*raised NameError"):
        check_mha_shapes(UsesAnUnimportedModule, seed=0)


# ------------------------------------------- scaled dot-product attention: each plausible mistake is named
def sdpa_divided_by_d_k(q, k, v, mask=None):
    return sdpa(q / math.sqrt(q.shape[-1]), k, v, mask)


def sdpa_mask_after_softmax(q, k, v, mask=None):
    weights = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), dim=-1)
    if mask is not None:
        weights = weights * mask
    return weights @ v, weights


def sdpa_softmax_over_queries(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-2).nan_to_num(0.0)
    return weights @ v, weights


@pytest.mark.parametrize("wrong, message", [
    (sdpa_unscaled, "Hint: the scores were not divided by √d_k"),
    (sdpa_divided_by_d_k, "Hint: the scores were divided by d_k, not by its square root"),
    (sdpa_mask_after_softmax, "Hint: the mask was applied after the softmax"),
    (sdpa_inverted_mask, "Hint: the mask is inverted"),
    (sdpa_nan_rows, "Hint: nan weights"),
    (sdpa_softmax_over_queries, r"Hint: the softmax ran over the queries \(dim=-2\)"),
], ids=lambda x: getattr(x, "__name__", ""))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sdpa_checker_names_the_mistake(wrong, message, seed):
    with pytest.raises(CheckFailure, match=message):
        check_scaled_dot_product_attention(wrong, seed=seed)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sdpa_checker_passes_the_reference_for_every_seed(seed, capsys):
    check_scaled_dot_product_attention(scaled_dot_product_attention, seed=seed)
    check_scaled_dot_product_attention(sdpa, seed=seed)
    assert capsys.readouterr().out.count("PASS") == 2


# ------------------------------------------------------------- exercise: a sliding-window causal mask
def window_mask(L, w):
    i, j = torch.arange(L)[:, None], torch.arange(L)[None, :]
    return (j <= i) & (i - j < w)


def window_mask_loop(L, w):
    out = torch.zeros(L, L, dtype=torch.bool)
    for i in range(L):
        out[i, max(0, i - w + 1): i + 1] = True
    return out


def window_mask_tril(L, w):
    ones = torch.ones(L, L, dtype=torch.bool)
    return ones.tril() & ones.triu(-(w - 1))


WINDOW_MISTAKES = [
    (stub, "not implemented"),
    (lambda L, w: ~window_mask(L, w), "inverted"),
    (lambda L, w: window_mask(L, w + 1), "one too many"),
    (lambda L, w: window_mask(L, w - 1), "sees only"),
    (lambda L, w: window_mask(L, w) & ~torch.eye(L, dtype=torch.bool), "diagonal is missing"),
    (lambda L, w: (torch.arange(L)[:, None] - torch.arange(L)[None, :]).abs() < w, "band around the diagonal"),
    (lambda L, w: window_mask(L, w).T, "transposed"),
    (lambda L, w: causal_mask(L), "window is ignored"),
    (lambda L, w: window_mask(L, w).float(), "bool tensor"),
    (lambda L, w: window_mask(L, w)[None], "shape"),
]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sliding_window_mask_passes_correct_code(seed, capsys):
    from bigtut.checks.attention import check_sliding_window_mask

    for correct in (window_mask, window_mask_loop, window_mask_tril):
        check_sliding_window_mask(correct, seed=seed)
    assert capsys.readouterr().out.count("PASS sliding_window_mask") == 3


@pytest.mark.parametrize("wrong, message", WINDOW_MISTAKES, ids=[m for _, m in WINDOW_MISTAKES])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sliding_window_mask_names_each_mistake(wrong, message, seed):
    from bigtut.checks.attention import check_sliding_window_mask

    with pytest.raises(CheckFailure, match=message):
        check_sliding_window_mask(wrong, seed=seed)


def test_sliding_window_mask_equals_causal_when_the_window_covers_everything():
    from bigtut.checks.attention import sliding_window_mask

    assert torch.equal(sliding_window_mask(7, 7), causal_mask(7)) and torch.equal(sliding_window_mask(7, 99),
                                                                                    causal_mask(7))
    assert torch.equal(sliding_window_mask(7, 1), torch.eye(7, dtype=torch.bool))


# ------------------------------------------------------------- exercise: what each head adds to the output
def contributions(heads, out_proj):
    B, h, L, d_head = heads.shape
    W = out_proj.weight  # (d_model, d_model) = (out, in)
    return torch.stack([heads[:, i] @ W[:, i * d_head:(i + 1) * d_head].T for i in range(h)], dim=1)


def contributions_interleaved(heads, out_proj):  # the transposed merge: head i in columns i, i+h, ...
    h = heads.shape[1]
    return torch.stack([heads[:, i] @ out_proj.weight[:, i::h].T for i in range(h)], dim=1)


def contributions_rows(heads, out_proj):
    d_head = heads.shape[-1]
    return torch.stack([heads[:, i] @ out_proj.weight[i * d_head:(i + 1) * d_head] for i in range(heads.shape[1])], 1)


HEAD_MISTAKES = [
    (stub, "not implemented"),
    (contributions_interleaved, "every h-th column"),
    (contributions_rows, "rows of out_proj.weight"),
    (lambda heads, p: contributions(heads, p) + p.bias, "added to every head"),
    (lambda heads, p: contributions(heads, p) + p.bias / heads.shape[1], "shared out"),
    (lambda heads, p: contributions(heads, p).sum(1), "wrong shape"),
    (lambda heads, p: p(heads.transpose(1, 2).reshape(heads.shape[0], heads.shape[2], -1)), "wrong shape"),
]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_head_contributions_passes_correct_code(seed, capsys):
    from bigtut.checks.attention import check_head_contributions

    check_head_contributions(contributions, seed=seed)
    assert capsys.readouterr().out.startswith("PASS head_contributions")


@pytest.mark.parametrize("wrong, message", HEAD_MISTAKES, ids=[m for _, m in HEAD_MISTAKES])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_head_contributions_names_each_mistake(wrong, message, seed):
    from bigtut.checks.attention import check_head_contributions

    with pytest.raises(CheckFailure, match=message):
        check_head_contributions(wrong, seed=seed)


def test_head_contributions_add_up_to_bigtut_attention():
    """The reference is about the real layer: the shares of MultiHeadAttention's heads sum to its output."""
    from bigtut.checks.attention import _head_contributions

    mha = MultiHeadAttention(12, 3).double().eval()
    x = torch.randn(2, 5, 12, dtype=torch.float64)
    q, k, v = (p(x).view(2, 5, 3, 4).transpose(1, 2) for p in (mha.q_proj, mha.k_proj, mha.v_proj))
    heads, _ = scaled_dot_product_attention(q, k, v)  # (2, 3, 5, 4)
    total = _head_contributions(heads, mha.out_proj).sum(1) + mha.out_proj.bias
    assert torch.allclose(total, mha(x, x, x)[0], atol=1e-12)


# ------------------------------------- every function checker: the right answers pass on seeds 0-2, and more
# plausible wrong answers fail with a message that names the mistake
def sdpa_notebook(q, k, v, mask=None):  # the committed solution of notebook 02
    scores = q @ k.transpose(-2, -1) / q.shape[-1] ** 0.5
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    if mask is not None:
        weights = weights.masked_fill(~mask, 0.0)
    return weights @ v, weights


def sdpa_finfo_then_zero(q, k, v, mask=None):  # a finite fill is fine once masked weights are zeroed
    scores = q @ k.transpose(-1, -2) / math.sqrt(k.size(-1))
    if mask is not None:
        scores = scores.masked_fill(mask == 0, torch.finfo(scores.dtype).min)
    weights = torch.softmax(scores, dim=-1)
    if mask is not None:
        weights = torch.where(mask, weights, torch.zeros_like(weights))
    return weights @ v, weights


def sdpa_tensor_scale(q, k, v, mask=None):  # the scale as a (float32) 0-d tensor
    scores = torch.matmul(q, k.transpose(-2, -1)) / torch.sqrt(torch.tensor(q.shape[-1]))
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.nan_to_num(torch.softmax(scores, dim=-1))
    return torch.matmul(weights, v), weights


def sdpa_scaled_by_d_v(q, k, v, mask=None):
    return sdpa(q * math.sqrt(q.shape[-1] / v.shape[-1]), k, v, mask)


def sdpa_pow_one_half(q, k, v, mask=None):  # q.shape[-1] ** 1/2 is q.shape[-1] / 2
    return sdpa(q * math.sqrt(q.shape[-1]) / (q.shape[-1] ** 1 / 2), k, v, mask)


def sdpa_mask_ignored(q, k, v, mask=None):
    return sdpa(q, k, v)


def sdpa_minus_1e9(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, -1e9)
    weights = torch.softmax(scores, dim=-1)
    return weights @ v, weights


def sdpa_multiplicative_mask(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores * mask
    weights = torch.softmax(scores, dim=-1)
    return weights @ v, weights


def sdpa_scales_q_in_place(q, k, v, mask=None):
    q /= math.sqrt(q.shape[-1])
    return sdpa(q * math.sqrt(q.shape[-1]), k, v, mask)


def sdpa_float32(q, k, v, mask=None):
    out, weights = sdpa(q.float(), k.float(), v.float(), mask)
    return out, weights


def sdpa_returns_weights_first(q, k, v, mask=None):
    out, weights = sdpa(q, k, v, mask)
    return weights, out


def sdpa_transposes_dims_1_2(q, k, v, mask=None):  # right for 3-D inputs, wrong with a head axis
    scores = q @ k.transpose(1, 2) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1).nan_to_num(0.0)
    return weights @ v, weights


def sdpa_bmm(q, k, v, mask=None):  # torch.bmm: 3-D only
    scores = torch.bmm(q, k.transpose(-2, -1)) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1).nan_to_num(0.0)
    return torch.bmm(weights, v), weights


def sdpa_boolean_indexing(q, k, v, mask=None):  # scores[~mask] = -inf does not broadcast a (5, 5) mask
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores[~mask] = float("-inf")
    weights = torch.softmax(scores, dim=-1).nan_to_num(0.0)
    return weights @ v, weights


def sdpa_softmax_over_batch(q, k, v, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=0).nan_to_num(0.0)
    return weights @ v, weights


SDPA_MORE_MISTAKES = [
    (sdpa_bmm, "torch.bmm takes 3-D tensors only"),
    (sdpa_boolean_indexing, "boolean indexing does not"),
    (sdpa_softmax_over_batch, r"the softmax ran over axis 0 \(the batch\)"),
    (sdpa_scaled_by_d_v, "divided by √d_v"),
    (sdpa_pow_one_half, r"`d_k \*\* 1/2` means"),
    (sdpa_mask_ignored, "the mask was ignored"),
    (sdpa_minus_1e9, "large negative number"),
    (sdpa_multiplicative_mask, "the mask multiplied the scores"),
    (sdpa_scales_q_in_place, "changed its input `q` in place"),
    (sdpa_float32, "is torch.float32 for torch.float64 inputs"),
    (sdpa_returns_weights_first, r"return \(output, weights\), in that order"),
    (sdpa_transposes_dims_1_2, r"3 heads.*raised RuntimeError"),
    (sdpa_output_only, "only the output came back"),
]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sdpa_checker_passes_every_correct_variant(seed, capsys):
    for correct in (sdpa_notebook, sdpa_finfo_then_zero, sdpa_tensor_scale):
        check_scaled_dot_product_attention(correct, seed=seed)
    assert capsys.readouterr().out.count("PASS scaled_dot_product_attention") == 3


@pytest.mark.parametrize("wrong, message", SDPA_MORE_MISTAKES, ids=lambda x: getattr(x, "__name__", ""))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sdpa_checker_names_more_mistakes(wrong, message, seed):
    with pytest.raises(CheckFailure, match=message):
        check_scaled_dot_product_attention(wrong, seed=seed)


def test_the_committed_pass_lines_are_unchanged(capsys):
    """nbval compares these lines in notebook 02 byte for byte."""
    from bigtut.checks.attention import check_head_contributions, check_sliding_window_mask

    check_scaled_dot_product_attention(sdpa_notebook)
    check_sliding_window_mask(window_mask)
    check_sinusoidal_encoding(sinusoid_notebook)
    check_head_contributions(contributions_notebook)
    assert capsys.readouterr().out.splitlines() == [
        "PASS scaled_dot_product_attention: matches the reference on 5 random cases",
        "PASS sliding_window_mask: bool (L, L) masks for 6 lengths and windows, window >= L and L = 1 included",
        "PASS sinusoidal_encoding: matches the reference on 5 random cases",
        "PASS head_contributions: per-head shares of W_O that add up to the layer's output, 4 cases",
    ]


# sliding-window mask
def window_mask_unclamped_loop(L, w):  # a negative slice start counts from the end
    out = torch.zeros(L, L, dtype=torch.bool)
    for i in range(L):
        out[i, i - w + 1: i + 1] = True
    return out


WINDOW_MORE_MISTAKES = [
    (window_mask_unclamped_loop, "clamp it"),
    (lambda L, w: window_mask(L, w).to(torch.uint8), "dtype=torch.bool"),
    (lambda L, w: torch.ones(L, L, dtype=torch.bool).tril().triu(-w), "one too many"),
    (lambda L, w: torch.ones(L, L, dtype=torch.bool).tril().triu(-(w - 1)).T, "transposed"),
    (lambda L, w: torch.zeros(L, L).masked_fill(~window_mask(L, w), float("-inf")), "additive mask"),
    (lambda L, w: window_mask(L, w)[None, None], "drop the extra axes"),
    (lambda L, w: window_mask(L + 1, w), "must follow the argument"),
]


@pytest.mark.parametrize("wrong, message", WINDOW_MORE_MISTAKES, ids=[m for _, m in WINDOW_MORE_MISTAKES])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sliding_window_mask_names_more_mistakes(wrong, message, seed):
    from bigtut.checks.attention import check_sliding_window_mask

    with pytest.raises(CheckFailure, match=message):
        check_sliding_window_mask(wrong, seed=seed)


# sinusoidal encoding
def sinusoid_notebook(length, d_model):  # the committed solution of notebook 02
    pos = torch.arange(length, dtype=torch.float64)[:, None]
    two_i = torch.arange(0, d_model, 2, dtype=torch.float64)
    angle = pos / 10000 ** (two_i / d_model)
    pe = torch.zeros(length, d_model, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(angle)
    pe[:, 1::2] = torch.cos(angle)
    return pe


def sinusoid_exp_log(length, d_model):  # the usual float32 code: div_term via exp(-2i ln(10000) / d)
    pos = torch.arange(length).unsqueeze(1)
    div_term = torch.exp(torch.arange(0, d_model, 2) * (-math.log(10000.0) / d_model))
    pe = torch.zeros(length, d_model)
    pe[:, 0::2], pe[:, 1::2] = torch.sin(pos * div_term), torch.cos(pos * div_term)
    return pe


def sinusoid_loop(length, d_model):
    pe = torch.zeros(length, d_model, dtype=torch.float64)
    for pos in range(length):
        for i in range(0, d_model, 2):
            pe[pos, i] = math.sin(pos / 10000 ** (i / d_model))
            pe[pos, i + 1] = math.cos(pos / 10000 ** (i / d_model))
    return pe


def sinusoid_with(*, offset=0, exponent=lambda two_i: two_i, multiply=False, base=10000.0):
    def table(length, d_model):
        pos = torch.arange(length, dtype=torch.float64)[:, None] + offset
        two_i = torch.arange(0, d_model, 2, dtype=torch.float64)
        freq = base ** (exponent(two_i) / d_model)
        angle = pos * freq if multiply else pos / freq
        pe = torch.zeros(length, d_model, dtype=torch.float64)
        pe[:, 0::2], pe[:, 1::2] = torch.sin(angle), torch.cos(angle)
        return pe
    return table


def sinusoid_column_exponent(length, d_model):  # 10000^(j/d) for every column j
    pos = torch.arange(length, dtype=torch.float64)[:, None]
    j = torch.arange(d_model, dtype=torch.float64)
    angle = pos / 10000 ** (j / d_model)
    return torch.where(torch.arange(d_model) % 2 == 0, torch.sin(angle), torch.cos(angle))


SINUSOID_MORE_MISTAKES = [
    (sinusoid_swapped, "sin and cos are swapped"),
    (sinusoid_concatenated, "concatenated"),
    (sinusoid_i_not_2i, "the pair index"),
    (sinusoid_with(offset=1), "the positions start at 1"),
    (sinusoid_column_exponent, "the column index j"),
    (sinusoid_with(exponent=lambda two_i: 2 * two_i), "doubled"),
    (sinusoid_with(multiply=True), "multiplied by 10000"),
    (sinusoid_with(base=1000.0), "the base is 1000"),
    (lambda n, d: sinusoid_notebook(n, d).T, "transposed"),
    (lambda n, d: sinusoid_notebook(n, d)[None], "leave out batch axes"),
    (lambda n, d: sinusoid_notebook(n, d).half(), "float16, too coarse"),
    (sinusoid_textbook, "position 0"),
]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sinusoidal_encoding_passes_correct_code(seed, capsys):
    for correct in (sinusoid_notebook, sinusoid_exp_log, sinusoid_loop, sinusoidal_encoding):
        check_sinusoidal_encoding(correct, seed=seed)
    assert capsys.readouterr().out.count("PASS sinusoidal_encoding") == 4


@pytest.mark.parametrize("wrong, message", SINUSOID_MORE_MISTAKES, ids=[m for _, m in SINUSOID_MORE_MISTAKES])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sinusoidal_encoding_names_each_mistake(wrong, message, seed):
    with pytest.raises(CheckFailure, match=message):
        check_sinusoidal_encoding(wrong, seed=seed)


# head contributions
def contributions_notebook(heads, out_proj):  # the committed solution of notebook 02
    d_head = heads.shape[-1]
    blocks = out_proj.weight.split(d_head, dim=1)
    return torch.stack([heads[:, i] @ W_i.T for i, W_i in enumerate(blocks)], dim=1)


def contributions_by_zero_padding(heads, out_proj):  # out_proj on one head at a time, minus the bias
    B, h, L, d_head = heads.shape
    out = []
    for i in range(h):
        alone = torch.zeros_like(heads)
        alone[:, i] = heads[:, i]
        out.append(out_proj(alone.transpose(1, 2).reshape(B, L, h * d_head)) - out_proj.bias)
    return torch.stack(out, dim=1)


def contributions_float32(heads, out_proj):
    B, h, L, d_head = heads.shape
    out = torch.zeros(B, h, L, out_proj.out_features)  # float32: no dtype given
    for i, W_i in enumerate(out_proj.weight.split(d_head, dim=1)):
        out[:, i] = heads[:, i] @ W_i.T
    return out


def contributions_zeroing_the_bias(heads, out_proj):  # "bias left out" by zeroing the caller's layer
    out_proj.bias.data.zero_()
    B, h, L, d_head = heads.shape
    out = []
    for i in range(h):
        alone = torch.zeros_like(heads)
        alone[:, i] = heads[:, i]
        out.append(out_proj(alone.transpose(1, 2).reshape(B, L, h * d_head)))
    return torch.stack(out, dim=1)


def contributions_untransposed(heads, out_proj):
    d_head = heads.shape[-1]
    return torch.stack([heads[:, i] @ W_i for i, W_i in enumerate(out_proj.weight.split(d_head, dim=1))], 1)


HEAD_MORE_MISTAKES = [
    (contributions_float32, "is torch.float32 for torch.float64 inputs"),
    (contributions_zeroing_the_bias, "changed its input `out_proj.bias` in place"),
    (lambda heads, p: contributions(heads, p).transpose(1, 2), "stack the heads' terms along dim=1"),
    (contributions_untransposed, r"applied as heads\[:, i\] @ block.T"),
    (lambda heads, p: contributions(heads, p).sum(1, keepdim=True).expand(-1, heads.shape[1], -1, -1),
     "the whole merged output"),
    (lambda heads, p: contributions(heads, p).flip(1), "reverse order"),
]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_head_contributions_passes_every_correct_variant(seed, capsys):
    from bigtut.checks.attention import check_head_contributions

    for correct in (contributions_notebook, contributions_by_zero_padding):
        check_head_contributions(correct, seed=seed)
    assert capsys.readouterr().out.count("PASS head_contributions") == 2


@pytest.mark.parametrize("wrong, message", HEAD_MORE_MISTAKES, ids=[m for _, m in HEAD_MORE_MISTAKES])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_head_contributions_names_more_mistakes(wrong, message, seed):
    from bigtut.checks.attention import check_head_contributions

    with pytest.raises(CheckFailure, match=message):
        check_head_contributions(wrong, seed=seed)
