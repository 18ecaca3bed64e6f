"""bigtut.attention equals PyTorch's attention, hides the future, ignores order, and rejects bad input clearly."""

from __future__ import annotations

import re

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from bigtut.attention import (
    KVCache,
    MultiHeadAttention,
    causal_mask,
    padding_mask,
    scaled_dot_product_attention,
)
from bigtut.positional import RotaryEmbedding

TOL = dict(atol=1e-6, rtol=1e-6)
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def randn(*shape, gen=None):
    return torch.randn(shape, dtype=torch.float64, generator=gen)


def reference_sdpa(q, k, v, mask=None):
    """PyTorch's fused attention; rows with no allowed key are set to zero (older releases give NaN there)."""
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    if mask is not None:
        allowed = mask.expand(*out.shape[:-1], k.shape[-2]).any(-1, keepdim=True)  # (..., Lq, 1)
        out = torch.where(allowed, out, torch.zeros_like(out))
    return out


# ------------------------------------------------------------------------------------------ masks
def test_causal_mask_is_lower_triangular_bool():
    m = causal_mask(4)
    assert m.dtype == torch.bool and m.shape == (4, 4)
    assert m.tolist() == [[True, False, False, False], [True, True, False, False],
                          [True, True, True, False], [True, True, True, True]]


def test_padding_mask_shape_and_values():
    m = padding_mask([3, 1, 0], 4)
    assert m.shape == (3, 1, 4) and m.dtype == torch.bool
    assert m[:, 0].tolist() == [[True, True, True, False], [True, False, False, False], [False] * 4]
    assert padding_mask(torch.tensor([2, 5])).shape == (2, 1, 5)  # max_len defaults to the longest


@pytest.mark.parametrize("bad", [0, -3, 2.5, "4"])
def test_causal_mask_rejects_bad_length(bad):
    with pytest.raises(ValueError, match="positive int"):
        causal_mask(bad)


def test_padding_mask_rejects_lengths_out_of_range():
    with pytest.raises(ValueError, match=r"\[0, 3\]"):
        padding_mask([2, 4], 3)
    with pytest.raises(ValueError, match="1-D"):
        padding_mask(torch.ones(2, 2, dtype=torch.long), 3)


# ------------------------------------------------------------------ scaled dot-product vs PyTorch
def _mask(kind: str, B: int, Lq: int, Lk: int, gen: torch.Generator) -> torch.Tensor | None:
    if kind == "none":
        return None
    if kind == "causal":
        return causal_mask(Lq)  # (Lq, Lq): the test sets Lk = Lq
    if kind == "padding":
        lengths = torch.randint(1, Lk + 1, (B,), generator=gen)
        return padding_mask(lengths, Lk).unsqueeze(1)  # (B, 1, 1, Lk): broadcasts over heads and queries
    return torch.rand((B, 1, Lq, Lk), generator=gen) > 0.5  # arbitrary, may hold fully masked rows


@pytest.mark.parametrize("kind", ["none", "causal", "padding", "arbitrary"])
@settings(max_examples=25, deadline=None)
@given(B=st.integers(1, 3), h=st.integers(1, 3), Lq=st.integers(1, 7), Lk=st.integers(1, 7),
       d_k=st.integers(1, 9), d_v=st.integers(1, 9), seed=st.integers(0, 2**31 - 1))
def test_sdpa_equals_pytorch(kind, B, h, Lq, Lk, d_k, d_v, seed):
    gen = torch.Generator().manual_seed(seed)
    if kind == "causal":
        Lk = Lq
    q, k, v = randn(B, h, Lq, d_k, gen=gen), randn(B, h, Lk, d_k, gen=gen), randn(B, h, Lk, d_v, gen=gen)
    mask = _mask(kind, B, Lq, Lk, gen)
    out, weights = scaled_dot_product_attention(q, k, v, mask)
    torch.testing.assert_close(out, reference_sdpa(q, k, v, mask), **TOL)
    assert weights.shape == (B, h, Lq, Lk)
    if mask is not None:
        assert (weights[~mask.expand_as(weights)] == 0).all()


def test_sdpa_weights_are_a_softmax_over_allowed_keys():
    q, k, v = randn(2, 5, 4), randn(2, 6, 4), randn(2, 6, 3)
    mask = padding_mask([6, 2], 6)  # (2, 1, 6)
    _, weights = scaled_dot_product_attention(q, k, v, mask)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 5, dtype=torch.float64))
    manual = torch.softmax(q[1] @ k[1, :2].T / 2.0, dim=-1)  # √d_k = 2, only the 2 real keys
    torch.testing.assert_close(weights[1, :, :2], manual)


def test_fully_masked_rows_give_zeros_and_finite_gradients():
    q, k, v = (randn(2, 3, 4, 5).requires_grad_() for _ in range(3))
    mask = torch.ones(2, 3, 4, 4, dtype=torch.bool)
    mask[0, 1, 2] = False  # query 2 of head 1 of batch 0 may attend to nothing
    out, weights = scaled_dot_product_attention(q, k, v, mask)
    assert (out[0, 1, 2] == 0).all() and (weights[0, 1, 2] == 0).all()
    assert torch.isfinite(out).all()
    out.sum().backward()
    assert all(torch.isfinite(t.grad).all() for t in (q, k, v))


def test_sdpa_dropout_acts_on_weights_only_when_training():
    q, k, v = randn(3, 5, 4), randn(3, 5, 4), randn(3, 5, 2)
    out_eval, w = scaled_dot_product_attention(q, k, v, dropout_p=0.5, training=False)
    torch.testing.assert_close(out_eval, w @ v)
    torch.manual_seed(7)
    out_train, w_train = scaled_dot_product_attention(q, k, v, dropout_p=0.5, training=True)
    torch.manual_seed(7)
    expected = F.dropout(w, p=0.5, training=True) @ v  # the same draw, applied to the weights
    torch.testing.assert_close(w_train, w)  # the returned weights are those before dropout
    torch.testing.assert_close(out_train, expected)
    assert not torch.allclose(out_train, out_eval)


def test_sdpa_bad_input_names_the_shapes():
    with pytest.raises(ValueError, match=re.escape("q (2, 3, 4), k (2, 5, 6)")):
        scaled_dot_product_attention(randn(2, 3, 4), randn(2, 5, 6), randn(2, 5, 6))
    with pytest.raises(ValueError, match=re.escape("mask of shape (4, 5)") + ".*" + re.escape("(2, 3, 5)")):
        scaled_dot_product_attention(randn(2, 3, 4), randn(2, 5, 4), randn(2, 5, 4), torch.ones(4, 5).bool())
    with pytest.raises(TypeError, match="bool"):
        scaled_dot_product_attention(randn(3, 4), randn(5, 4), randn(5, 4), torch.ones(3, 5))
    with pytest.raises(ValueError, match="Lk"):
        scaled_dot_product_attention(randn(3, 4), randn(5, 4), randn(6, 4))
    with pytest.raises(ValueError, match="dropout_p"):
        scaled_dot_product_attention(randn(3, 4), randn(5, 4), randn(5, 4), dropout_p=1.0)


# ------------------------------------------------------------- multi-head vs nn.MultiheadAttention
def copy_to_torch(mine: MultiHeadAttention, theirs: nn.MultiheadAttention) -> None:
    """bigtut's separate q/k/v projections -> PyTorch's packed in_proj (rows: q, then k, then v)."""
    with torch.no_grad():
        theirs.in_proj_weight.copy_(torch.cat([mine.q_proj.weight, mine.k_proj.weight, mine.v_proj.weight]))
        theirs.in_proj_bias.copy_(torch.cat([mine.q_proj.bias, mine.k_proj.bias, mine.v_proj.bias]))
        theirs.out_proj.weight.copy_(mine.out_proj.weight)
        theirs.out_proj.bias.copy_(mine.out_proj.bias)


def copy_from_torch(theirs: nn.MultiheadAttention, mine: MultiHeadAttention) -> None:
    """The same mapping the other way: split PyTorch's packed in_proj into q, k, v."""
    with torch.no_grad():
        for proj, w, b in zip((mine.q_proj, mine.k_proj, mine.v_proj), theirs.in_proj_weight.chunk(3),
                              theirs.in_proj_bias.chunk(3)):
            proj.weight.copy_(w)
            proj.bias.copy_(b)
        mine.out_proj.load_state_dict(theirs.out_proj.state_dict())


def pair(d_model: int, h: int, direction: str = "to_torch"):
    mine = MultiHeadAttention(d_model, h).double().eval()
    theirs = nn.MultiheadAttention(d_model, h, batch_first=True).double().eval()
    nn.init.normal_(theirs.in_proj_bias)  # PyTorch initialises biases to zero: make the test see them
    nn.init.normal_(theirs.out_proj.bias)
    copy_to_torch(mine, theirs) if direction == "to_torch" else copy_from_torch(theirs, mine)
    return mine, theirs


@pytest.mark.parametrize("direction", ["to_torch", "from_torch"])
@pytest.mark.parametrize("fast", [False, True])
@pytest.mark.parametrize("cross", [False, True])
@settings(max_examples=10, deadline=None)
@given(B=st.integers(1, 3), h=st.sampled_from([1, 2, 4]), Lq=st.integers(1, 6), Lk=st.integers(1, 6),
       seed=st.integers(0, 2**31 - 1))
def test_mha_equals_torch_with_key_padding(direction, fast, cross, B, h, Lq, Lk, seed):
    torch.manual_seed(seed)
    d_model = 4 * h
    mine, theirs = pair(d_model, h, direction)
    query = randn(B, Lq, d_model)
    memory = randn(B, Lk, d_model) if cross else query
    Lk = memory.shape[1]
    lengths = torch.randint(1, Lk + 1, (B,))
    keep = padding_mask(lengths, Lk)  # (B, 1, Lk), True = real token
    expected, expected_w = theirs(query, memory, memory, key_padding_mask=~keep[:, 0],  # True = ignore
                                  need_weights=True, average_attn_weights=False)
    out, weights = mine(query, memory, memory, mask=keep, return_attention=not fast)
    torch.testing.assert_close(out, expected, **TOL)
    if not fast:
        torch.testing.assert_close(weights, expected_w, **TOL)


def test_mha_equals_torch_with_causal_mask_and_gradients():
    torch.manual_seed(0)
    mine, theirs = pair(16, 4)
    x = randn(2, 7, 16)
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    expected, _ = theirs(x1, x1, x1, attn_mask=~causal_mask(7), need_weights=False)  # True = blocked there
    out, _ = mine(x2, x2, x2, mask=causal_mask(7))
    torch.testing.assert_close(out, expected, **TOL)
    expected.pow(2).sum().backward()
    out.pow(2).sum().backward()
    torch.testing.assert_close(x2.grad, x1.grad, **TOL)
    torch.testing.assert_close(mine.q_proj.weight.grad, theirs.in_proj_weight.grad[:16], **TOL)


@pytest.mark.parametrize("device", DEVICES)
def test_fast_path_equals_explicit_path(device):
    torch.manual_seed(1)
    mha = MultiHeadAttention(12, 3).double().to(device)
    x, memory = randn(3, 5, 12).to(device), randn(3, 6, 12).to(device)
    mask = torch.rand(3, 3, 5, 6, device=device) > 0.5
    mask[0, :, 1] = False  # some queries see nothing
    for m in (None, mask, mask[:, :1], padding_mask(torch.tensor([6, 2, 4], device=device), 6)):
        slow, weights = mha(x, memory, memory, mask=m, return_attention=True)
        fast, none = mha(x, memory, memory, mask=m, return_attention=False)
        assert none is None and weights.shape == (3, 3, 5, 6)
        torch.testing.assert_close(fast, slow, **TOL)
        if m is mask:  # a query that sees nothing outputs out_proj(0) = its bias, on both paths
            torch.testing.assert_close(fast[0, 1], mha.out_proj.bias.detach(), atol=0, rtol=0)


# ------------------------------------------------------------------------------------- properties
@settings(max_examples=25, deadline=None)
@given(L=st.integers(2, 8), t=st.integers(1, 7), fast=st.booleans(), seed=st.integers(0, 2**31 - 1))
def test_causal_mask_hides_the_future(L, t, fast, seed):
    t = min(t, L - 1)
    torch.manual_seed(seed)
    mha = MultiHeadAttention(8, 2).double()
    x = randn(2, L, 8)
    changed = x.clone()
    changed[:, t:] = randn(2, L - t, 8)  # rewrite positions t, t+1, … (the future of positions < t)
    out, _ = mha(x, x, x, mask=causal_mask(L), return_attention=not fast)
    out_changed, _ = mha(changed, changed, changed, mask=causal_mask(L), return_attention=not fast)
    torch.testing.assert_close(out_changed[:, :t], out[:, :t], atol=1e-12, rtol=0)
    assert not torch.allclose(out_changed[:, t:], out[:, t:])


@settings(max_examples=25, deadline=None)
@given(L=st.integers(2, 8), seed=st.integers(0, 2**31 - 1))
def test_self_attention_without_positions_is_permutation_equivariant(L, seed):
    torch.manual_seed(seed)
    mha = MultiHeadAttention(8, 2).double()
    x = randn(2, L, 8)
    mask = torch.rand(2, 1, L, L) > 0.3  # any mask, permuted along with the tokens
    perm = torch.randperm(L)
    out, weights = mha(x, x, x, mask=mask)
    out_p, weights_p = mha(x[:, perm], x[:, perm], x[:, perm], mask=mask[..., perm, :][..., perm])
    torch.testing.assert_close(out_p, out[:, perm], atol=1e-12, rtol=1e-10)
    torch.testing.assert_close(weights_p, weights[..., perm, :][..., perm], atol=1e-12, rtol=1e-10)


@pytest.mark.parametrize("rotary", [None, RotaryEmbedding(4)])
def test_kv_cache_decoding_equals_a_full_causal_pass(rotary):
    torch.manual_seed(2)
    mha = MultiHeadAttention(8, 2).double().eval()
    x = randn(2, 6, 8)
    full, _ = mha(x, x, x, mask=causal_mask(6), rotary=rotary)
    cache = KVCache()
    prompt, _ = mha(x[:, :3], x[:, :3], x[:, :3], mask=causal_mask(3), cache=cache, rotary=rotary)
    steps = [prompt] + [mha(x[:, t:t + 1], x[:, t:t + 1], x[:, t:t + 1], cache=cache, rotary=rotary)[0]
                        for t in range(3, 6)]
    assert cache.length == 6
    torch.testing.assert_close(torch.cat(steps, dim=1), full, **TOL)


def test_rotary_makes_attention_position_aware():
    torch.manual_seed(3)
    mha = MultiHeadAttention(8, 2).double()
    x = randn(1, 5, 8)
    perm = torch.tensor([4, 3, 2, 1, 0])
    out, _ = mha(x, x, x, rotary=RotaryEmbedding(4))
    out_p, _ = mha(x[:, perm], x[:, perm], x[:, perm], rotary=RotaryEmbedding(4))
    assert not torch.allclose(out_p, out[:, perm])  # order now matters


# ------------------------------------------------------------------------------------- bad input
def test_mha_rejects_indivisible_width_naming_both_numbers():
    with pytest.raises(ValueError, match=r"d_model=30.*num_heads=4"):
        MultiHeadAttention(30, 4)
    with pytest.raises(ValueError, match="positive"):
        MultiHeadAttention(16, 0)
    with pytest.raises(ValueError, match="dropout"):
        MultiHeadAttention(16, 4, dropout=1.5)


def test_mha_bad_shapes_and_masks_name_the_shapes():
    mha = MultiHeadAttention(8, 2)
    x = torch.randn(2, 5, 8)
    with pytest.raises(ValueError, match=re.escape("(2, 5, 6)")):
        mha(torch.randn(2, 5, 6), x, x)
    with pytest.raises(ValueError, match=re.escape("key (2, 5, 8), value (2, 4, 8)")):
        mha(x, x, torch.randn(2, 4, 8))
    with pytest.raises(ValueError, match="batch size"):
        mha(x, torch.randn(3, 5, 8), torch.randn(3, 5, 8))
    for fast in (True, False):
        with pytest.raises(ValueError, match=re.escape("(4, 5)") + ".*" + re.escape("(2, 2, 5, 5)")):
            mha(x, x, x, mask=torch.ones(4, 5, dtype=torch.bool), return_attention=not fast)


def test_mha_works_in_float32_and_returns_no_weights_on_request():
    mha = MultiHeadAttention(16, 4, dropout=0.1)
    x = torch.randn(2, 3, 16)
    out, weights = mha(x, x, x, return_attention=False)
    assert out.shape == (2, 3, 16) and out.dtype == torch.float32 and weights is None
    mha.eval()
    out, weights = mha(x, x, x)
    assert weights.shape == (2, 4, 3, 3)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 4, 3))
