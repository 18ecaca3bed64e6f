"""bigtut.positional: the paper's sinusoids, a learned table, and rotary embeddings whose scores see only offsets."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bigtut.positional import (
    LearnedPositionalEmbedding,
    RotaryEmbedding,
    SinusoidalPositionalEncoding,
    apply_rotary,
    rotary_angles,
    sinusoidal_encoding,
)


# ------------------------------------------------------------------------------------------ sinusoidal
@pytest.mark.parametrize("length, d_model", [(1, 2), (9, 8), (30, 6), (5, 7)])
def test_sinusoidal_matches_the_papers_formula(length, d_model):
    """PE(pos, 2i) = sin(pos / 10000^(2i/d)), PE(pos, 2i+1) = cos(pos / 10000^(2i/d)), element by element."""
    pe = sinusoidal_encoding(length, d_model, dtype=torch.float64)
    assert pe.shape == (length, d_model)
    for pos in range(length):
        for col in range(d_model):
            i = col // 2
            angle = pos / 10000 ** (2 * i / d_model)
            expected = math.sin(angle) if col % 2 == 0 else math.cos(angle)
            assert pe[pos, col].item() == pytest.approx(expected, abs=1e-12)


def test_sinusoidal_shift_is_a_fixed_linear_map():
    """For every offset k there is one matrix M_k (block-diagonal rotations) with PE[pos + k] = PE[pos] M_k."""
    d, k = 16, 5
    pe = sinusoidal_encoding(64, d, dtype=torch.float64)
    freq = 1 / 10000 ** (torch.arange(0, d, 2, dtype=torch.float64) / d)  # (d/2,)
    M = torch.zeros(d, d, dtype=torch.float64)
    for i, w in enumerate(freq.tolist()):
        c, s = math.cos(k * w), math.sin(k * w)
        # [sin(a + b), cos(a + b)] = [sin a, cos a] @ [[cos b, -sin b], [sin b, cos b]]
        M[2 * i: 2 * i + 2, 2 * i: 2 * i + 2] = torch.tensor([[c, -s], [s, c]], dtype=torch.float64)
    torch.testing.assert_close(pe[:-k] @ M, pe[k:], atol=1e-10, rtol=0)


def test_sinusoidal_module_adds_the_table_with_offset_and_keeps_no_state():
    enc = SinusoidalPositionalEncoding(8, max_len=32)
    x = torch.randn(2, 5, 8)
    torch.testing.assert_close(enc(x), x + sinusoidal_encoding(5, 8))
    torch.testing.assert_close(enc(x, offset=3), x + sinusoidal_encoding(8, 8)[3:])
    assert enc.state_dict() == {}  # not learned, so not saved
    assert enc.double()(x.double()).dtype == torch.float64
    with pytest.raises(ValueError, match="max_len=32"):
        enc(torch.randn(1, 30, 8), offset=5)
    with pytest.raises(ValueError, match=r"\(\.\.\., L, 8\)"):
        enc(torch.randn(1, 3, 6))


def test_sinusoidal_rejects_bad_sizes():
    with pytest.raises(ValueError, match="d_model"):
        sinusoidal_encoding(4, 0)
    with pytest.raises(ValueError, match="length"):
        sinusoidal_encoding(-1, 4)


# ------------------------------------------------------------------------------------------ learned
def test_learned_embedding_adds_trainable_rows():
    emb = LearnedPositionalEmbedding(10, 4)
    assert [n for n, _ in emb.named_parameters()] == ["weight"] and emb.weight.shape == (10, 4)
    x = torch.randn(3, 6, 4)
    torch.testing.assert_close(emb(x, offset=2), x + emb.weight[2:8])
    emb(x).sum().backward()
    assert (emb.weight.grad[:6] == 3).all() and (emb.weight.grad[6:] == 0).all()  # 3 = batch size
    with pytest.raises(ValueError, match="max_len=10"):
        emb(torch.randn(1, 11, 4))


# ------------------------------------------------------------------------------------------ rotary
def rope_complex(x: torch.Tensor, positions: torch.Tensor, base: float = 10000.0) -> torch.Tensor:
    """Independent reference: interleaved pairs as complex numbers, multiplied by e^{i · pos · θ_j}."""
    d = x.shape[-1]
    theta = base ** (-torch.arange(0, d, 2, dtype=torch.float64) / d)  # (d/2,)
    z = torch.view_as_complex(x.reshape(*x.shape[:-1], d // 2, 2).contiguous())  # (..., L, d/2)
    z = z * torch.polar(torch.ones_like(theta), positions[:, None].double() * theta)  # (L, d/2) phases
    return torch.view_as_real(z).flatten(-2)  # (..., L, d)


def test_rotary_equals_complex_multiplication():
    x = torch.randn(2, 3, 7, 8, dtype=torch.float64)
    rope = RotaryEmbedding(8, interleaved=True)
    torch.testing.assert_close(rope(x, offset=4), rope_complex(x, torch.arange(4, 11)), atol=1e-12, rtol=0)


def test_rotary_layouts_differ_by_a_feature_permutation_only():
    d = 8
    x = torch.randn(5, d, dtype=torch.float64)
    interleave = torch.arange(d).view(2, d // 2).T.flatten()  # half layout index of interleaved slot
    half, inter = RotaryEmbedding(d)(x), RotaryEmbedding(d, interleaved=True)(x[:, interleave])
    torch.testing.assert_close(inter, half[:, interleave], atol=1e-12, rtol=0)


@settings(max_examples=25, deadline=None)
@given(m=st.integers(0, 500), n=st.integers(0, 500), shift=st.integers(0, 500), interleaved=st.booleans(),
       seed=st.integers(0, 2**31 - 1))
def test_rotary_scores_depend_only_on_the_offset(m, n, shift, interleaved, seed):
    gen = torch.Generator().manual_seed(seed)
    q, k = torch.randn(2, 1, 16, dtype=torch.float64, generator=gen)  # one query, one key, (1, 16) each
    rope = RotaryEmbedding(16, interleaved=interleaved)

    def score(i: int, j: int) -> float:
        return (rope(q, offset=i) @ rope(k, offset=j).T).item()

    assert score(m + shift, n + shift) == pytest.approx(score(m, n), abs=1e-9)
    assert score(m, n) == pytest.approx((q @ rope(k, offset=abs(n - m)).T).item() if n >= m
                                        else (rope(q, offset=m - n) @ k.T).item(), abs=1e-9)


def test_rotary_keeps_norms_and_leaves_position_zero_alone():
    x = torch.randn(4, 6, 10, dtype=torch.float64)
    rotated = RotaryEmbedding(10)(x)
    torch.testing.assert_close(rotated.norm(dim=-1), x.norm(dim=-1))
    torch.testing.assert_close(rotated[:, 0], x[:, 0])
    assert not torch.allclose(rotated[:, 1:], x[:, 1:])
    assert RotaryEmbedding(10)(x.float()).dtype == torch.float32


def test_rotary_rejects_bad_input():
    with pytest.raises(ValueError, match="even"):
        RotaryEmbedding(7)
    with pytest.raises(ValueError, match=r"\(\.\.\., L, 8\)"):
        RotaryEmbedding(8)(torch.randn(3, 6))
    with pytest.raises(ValueError, match="offset"):
        RotaryEmbedding(8)(torch.randn(3, 8), offset=-1)
    with pytest.raises(ValueError, match="angles"):
        apply_rotary(torch.randn(3, 8), rotary_angles(torch.arange(4), 8))
