"""Where is each token? Sinusoidal, learned and rotary position information, read top to bottom.

Attention compares every query with every key, and nothing in ``softmax(q kᵀ/√d) v`` knows which key came
first: permute the tokens and the outputs are permuted the same way. Three ways to give it positions:

1. :func:`sinusoidal_encoding` / :class:`SinusoidalPositionalEncoding` — a fixed table of sines and cosines
   added to the token embeddings ("Attention Is All You Need", §3.5).
2. :class:`LearnedPositionalEmbedding` — a trained table, one vector per position, added the same way
   (BERT, GPT-2).
3. :class:`RotaryEmbedding` (RoPE, "RoFormer", Su et al. 2021) — nothing is added; the queries and keys of
   every head are rotated by an angle proportional to their position, so a query–key score depends only on
   how far apart the two tokens are. Pass one to :meth:`bigtut.attention.MultiHeadAttention.forward` as
   ``rotary=``.

Shape legend: B batch, L positions, d_model model width, d_head width of one attention head.
"""

from __future__ import annotations

import torch
from torch import nn

from bigtut.validation import check_positive_int

__all__ = [
    "LearnedPositionalEmbedding", "RotaryEmbedding", "SinusoidalPositionalEncoding", "apply_rotary",
    "rotary_angles", "sinusoidal_encoding",
]


def _check_window(x: torch.Tensor, d: int, offset: int, max_len: int | None, what: str) -> int:
    """Validate ``x (..., L, d)`` and the positions ``offset .. offset + L - 1`` (< ``max_len``); return L."""
    if x.dim() < 2 or x.shape[-1] != d:
        raise ValueError(f"{what} expects input (..., L, {d}), got shape {tuple(x.shape)}")
    if not isinstance(offset, int) or offset < 0:
        raise ValueError(f"offset must be a non-negative int, got {offset!r}")
    length = x.shape[-2]
    if max_len is not None and offset + length > max_len:
        raise ValueError(f"positions {offset}..{offset + length - 1} do not fit in max_len={max_len} of {what}")
    return length


# --------------------------------------------------------------------------------------------- sinusoidal
def sinusoidal_encoding(
    length: int,
    d_model: int,
    base: float = 10000.0,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """The fixed encoding of "Attention Is All You Need": a ``(length, d_model)`` table.

    .. math::  PE_{(pos, 2i)} = \\sin(pos / base^{2i/d_{model}}), \\quad
               PE_{(pos, 2i+1)} = \\cos(pos / base^{2i/d_{model}})

    Column pair ``(2i, 2i+1)`` is a sine/cosine of one frequency; frequencies fall geometrically from 1
    (period 2π positions) to ``1/base`` (period 2π·base). For an odd ``d_model`` the last column is the sine
    of one more frequency.
    """
    check_positive_int("length", length)
    check_positive_int("d_model", d_model)
    if base <= 1:
        raise ValueError(f"base must be > 1, got {base}")
    pos = torch.arange(length, dtype=torch.float64)[:, None]  # (L, 1), built in float64 on the CPU
    two_i = torch.arange(0, d_model, 2, dtype=torch.float64)  # (ceil(d/2),) = 0, 2, 4, …
    angle = pos / base ** (two_i / d_model)  # (L, ceil(d/2))
    pe = torch.zeros(length, d_model, dtype=torch.float64)  # (L, d_model)
    pe[:, 0::2] = torch.sin(angle)  # even columns
    pe[:, 1::2] = torch.cos(angle[:, : d_model // 2])  # odd columns
    return pe.to(device=device, dtype=dtype)


class SinusoidalPositionalEncoding(nn.Module):
    """Adds :func:`sinusoidal_encoding` to its input (then dropout, as in the paper).

    The table is a non-persistent buffer: it follows ``.to(device)`` but is not saved in checkpoints, since
    it is not learned.
    """

    def __init__(self, d_model: int, max_len: int = 4096, dropout: float = 0.0, base: float = 10000.0):
        super().__init__()
        self.d_model, self.max_len = check_positive_int("d_model", d_model), check_positive_int("max_len", max_len)
        self.register_buffer("pe", sinusoidal_encoding(max_len, d_model, base), persistent=False)  # (max_len, d)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, offset: int = 0) -> torch.Tensor:
        """``x (B, L, d_model)`` -> ``x + PE[offset : offset + L]``, same shape."""
        length = _check_window(x, self.d_model, offset, self.max_len, type(self).__name__)
        return self.dropout(x + self.pe[offset : offset + length].to(x.dtype))  # (B, L, d_model)


# --------------------------------------------------------------------------------------------- learned
class LearnedPositionalEmbedding(nn.Module):
    """A trained ``(max_len, d_model)`` table, added to its input (BERT's and GPT-2's choice).

    Its only parameter is ``weight`` (the same layout as ``nn.Embedding.weight``, GPT-2's ``wpe``).
    Unlike the sinusoidal table it cannot say anything about positions beyond ``max_len``.
    """

    def __init__(self, max_len: int, d_model: int, dropout: float = 0.0, init_std: float = 0.02):
        super().__init__()
        self.max_len, self.d_model = check_positive_int("max_len", max_len), check_positive_int("d_model", d_model)
        self.weight = nn.Parameter(torch.randn(max_len, d_model) * init_std)  # (max_len, d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, offset: int = 0) -> torch.Tensor:
        """``x (B, L, d_model)`` -> ``x + weight[offset : offset + L]``, same shape."""
        length = _check_window(x, self.d_model, offset, self.max_len, type(self).__name__)
        return self.dropout(x + self.weight[offset : offset + length])  # (B, L, d_model)


# --------------------------------------------------------------------------------------------- rotary
def rotary_angles(positions: torch.Tensor, d_head: int, base: float = 10000.0) -> torch.Tensor:
    """Rotation angles ``θ[p, i] = positions[p] · base^(-2i/d_head)``: ``(L,)`` -> ``(L, d_head // 2)``.

    Computed in float64, except on devices without float64 (Apple's MPS), where float32 is used.
    """
    if check_positive_int("d_head", d_head) % 2:
        raise ValueError(f"rotary embedding rotates pairs of features, so d_head must be even, got {d_head}")
    dtype = torch.float32 if positions.device.type == "mps" else torch.float64
    two_i = torch.arange(0, d_head, 2, device=positions.device, dtype=dtype)  # (d_head/2,) = 0, 2, 4, …
    inv_freq = base ** (-two_i / d_head)  # (d_head/2,)
    return positions.to(dtype)[:, None] * inv_freq[None, :]  # (L, d_head/2)


def apply_rotary(x: torch.Tensor, angles: torch.Tensor, interleaved: bool = False) -> torch.Tensor:
    """Rotate each feature pair of ``x (..., L, d_head)`` by ``angles (L, d_head // 2)``.

    Pair ``i`` is ``(x[i], x[i + d_head/2])`` (``interleaved=False``, the layout of GPT-NeoX and LLaMA) or
    ``(x[2i], x[2i+1])`` (``interleaved=True``, the RoFormer paper's). Both are the same rotation up to a
    fixed permutation of the features, so they give the same attention scores.
    """
    half = x.shape[-1] // 2
    if x.dim() < 2 or x.shape[-1] % 2 or angles.shape != (x.shape[-2], half):
        raise ValueError(f"apply_rotary needs x (..., L, d_head) with d_head even and angles (L, d_head/2); "
                         f"got x {tuple(x.shape)}, angles {tuple(angles.shape)}")
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)  # (L, d_head/2) each
    if interleaved:
        x1, x2 = x[..., 0::2], x[..., 1::2]  # (..., L, d_head/2) each
    else:
        x1, x2 = x[..., :half], x[..., half:]  # (..., L, d_head/2) each
    # the 2-D rotation [[cos, -sin], [sin, cos]] applied to every pair (x1, x2)
    r1, r2 = x1 * cos - x2 * sin, x1 * sin + x2 * cos  # (..., L, d_head/2) each
    if interleaved:
        return torch.stack([r1, r2], dim=-1).flatten(-2)  # (..., L, d_head), pairs back side by side
    return torch.cat([r1, r2], dim=-1)  # (..., L, d_head)


class RotaryEmbedding(nn.Module):
    """Rotary position embedding (RoPE) for the queries and keys of heads of width ``d_head``.

    ``rope(x, offset)`` rotates ``x (..., L, d_head)`` as if its positions were ``offset .. offset + L - 1``
    (``offset`` is the number of cached positions when generating with a KV cache). Since rotations
    compose, ``⟨R(m) q, R(n) k⟩ = ⟨q, R(n - m) k⟩``: the score of a query at position m and a key at
    position n depends on the offset ``n - m`` only. The module has no parameters and no buffers; angles are
    computed on the input's device for each call (a few hundred numbers), so there is no length limit.

    Args:
        d_head: features per head (even).
        base: the frequency base, 10000 as in the paper.
        interleaved: the feature-pair layout, see :func:`apply_rotary`.
    """

    def __init__(self, d_head: int, base: float = 10000.0, interleaved: bool = False):
        super().__init__()
        if check_positive_int("d_head", d_head) % 2:
            raise ValueError(f"rotary embedding rotates pairs of features, so d_head must be even, got {d_head}")
        if base <= 1:
            raise ValueError(f"base must be > 1, got {base}")
        self.d_head, self.base, self.interleaved = d_head, base, interleaved

    def forward(self, x: torch.Tensor, offset: int = 0) -> torch.Tensor:
        """``x (..., L, d_head)`` -> rotated ``x``, same shape and dtype."""
        length = _check_window(x, self.d_head, offset, None, type(self).__name__)
        positions = torch.arange(offset, offset + length, device=x.device)  # (L,)
        return apply_rotary(x, rotary_angles(positions, self.d_head, self.base), self.interleaved)

    def extra_repr(self) -> str:
        return f"d_head={self.d_head}, base={self.base}, interleaved={self.interleaved}"
