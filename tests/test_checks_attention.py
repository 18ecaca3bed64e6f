"""The checkers of notebook 02 pass correct code and fail stubs and each plausible mistake, naming it."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from bigtut.attention import MultiHeadAttention, causal_mask, scaled_dot_product_attention
from bigtut.checks import CheckFailure
from bigtut.checks.attention import (
    check_causal_mask,
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


def causal_float(L):
    return torch.ones(L, L).tril()


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
    (check_causal_mask, causal_mask, [
        (stub, "not implemented"), (lambda L: causal_mask(L).T, "transpose"),
        (lambda L: ~causal_mask(L), "exact opposite"), (causal_float, "bool tensor"),
        (lambda L: causal_mask(L + 1), "shape")]),
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


def test_causal_mask_missing_diagonal_is_its_own_mistake():
    def no_diagonal(L):
        return torch.ones(L, L, dtype=torch.bool).tril(-1)

    with pytest.raises(CheckFailure, match="The diagonal is missing") as failure:
        check_causal_mask(no_diagonal, seed=0)
    assert "opposite" not in str(failure.value)  # at L = 1 it looks like an inverted mask; it is not one
    with pytest.raises(CheckFailure, match="exact opposite"):
        check_causal_mask(lambda L: torch.ones(L, L, dtype=torch.bool).triu(1), seed=0)  # True = blocked


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
