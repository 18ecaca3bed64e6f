"""Attention, read top to bottom: scaled dot-product attention, masks, multi-head attention.

Shape legend used in every comment:
    B  batch size          h  number of heads        d_model  model width
    Lq query positions     Lk key/value positions    d_head   = d_model // h

Mask convention (the same as ``torch.nn.functional.scaled_dot_product_attention``): a **boolean** mask where
``True`` means "this query may attend to this key". A query row whose every key is masked returns zeros
(and zero weights), never NaN. ``nn.MultiheadAttention``'s ``key_padding_mask`` and bool ``attn_mask`` use
the opposite convention (``True`` = ignore): pass ``~mask`` there.

Positions are not this module's business (see :mod:`bigtut.positional`), except that
:meth:`MultiHeadAttention.forward` accepts a rotary embedding, which must act inside each head.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from bigtut.validation import check_positive_int

__all__ = [
    "KVCache", "MultiHeadAttention", "causal_mask", "check_mask", "padding_mask", "scaled_dot_product_attention",
]


def causal_mask(length: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Lower-triangular ``(length, length)`` bool mask: query ``i`` may attend to keys ``0..i``."""
    check_positive_int("length", length)
    return torch.ones(length, length, dtype=torch.bool, device=device).tril()


def padding_mask(lengths: torch.Tensor | list[int], max_len: int | None = None) -> torch.Tensor:
    """Key-padding mask ``(B, 1, max_len)``: ``True`` at the first ``lengths[b]`` (real) positions of row ``b``.

    The middle axis of size 1 broadcasts over query positions, so the result can be passed as ``mask`` for
    scores of shape ``(B, Lq, Lk)``; :class:`MultiHeadAttention` also broadcasts it over heads. For
    :func:`scaled_dot_product_attention` on per-head tensors ``(B, h, L, d)`` add the head axis yourself,
    ``padding_mask(lengths, L)[:, None]`` -> ``(B, 1, 1, L)``: broadcasting aligns axes from the right, so a
    3-D mask would meet the head axis with its batch axis.
    """
    lengths = torch.as_tensor(lengths)
    if lengths.dim() != 1:
        raise ValueError(f"lengths must be 1-D (one length per sequence), got shape {tuple(lengths.shape)}")
    max_len = int(lengths.max()) if max_len is None else max_len
    if (lengths < 0).any() or (lengths > max_len).any():
        raise ValueError(f"every length must lie in [0, {max_len}], got {lengths.tolist()}")
    positions = torch.arange(max_len, device=lengths.device)  # (L,)
    return (positions[None, :] < lengths[:, None]).unsqueeze(1)  # (B, 1, L)


def check_mask(mask: torch.Tensor | None, scores_shape: torch.Size) -> torch.Tensor | None:
    """Validate a boolean mask against scores of shape ``(..., Lq, Lk)``; return it (or None)."""
    if mask is None:
        return None
    if mask.dtype != torch.bool:
        raise TypeError(f"mask must be a bool tensor (True = may attend), got dtype {mask.dtype}")
    try:
        broadcast = torch.broadcast_shapes(mask.shape, scores_shape)
    except RuntimeError:
        broadcast = None
    if broadcast != scores_shape:
        raise ValueError(
            f"mask of shape {tuple(mask.shape)} does not broadcast to the attention scores' shape "
            f"{tuple(scores_shape)} (..., Lq, Lk)"
        )
    return mask


def scaled_dot_product_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
    training: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """softmax(q kᵀ / √d_k) v, written out.

    Args:
        q: queries ``(..., Lq, d_k)``.
        k: keys ``(..., Lk, d_k)``.
        v: values ``(..., Lk, d_v)``.
        mask: optional bool mask broadcastable to ``(..., Lq, Lk)``; ``True`` = may attend.
        dropout_p: dropout on the attention weights, applied only when ``training`` is True.

    Returns:
        ``(output, weights)``: output ``(..., Lq, d_v)`` and the weights ``(..., Lq, Lk)`` (before dropout).
        Rows whose every key is masked give zero weights and a zero output.
    """
    if min(q.dim(), k.dim(), v.dim()) < 2:
        raise ValueError(f"q, k and v need at least 2 dims (..., L, d): q {tuple(q.shape)}, k {tuple(k.shape)}, "
                         f"v {tuple(v.shape)}")
    if q.shape[-1] != k.shape[-1]:
        raise ValueError(f"q and k need the same feature size d_k: q {tuple(q.shape)}, k {tuple(k.shape)}")
    if k.shape[-2] != v.shape[-2]:
        raise ValueError(f"k and v need the same number of positions Lk: k {tuple(k.shape)}, v {tuple(v.shape)}")
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"dropout_p must lie in [0, 1), got {dropout_p}")
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (..., Lq, Lk)
    mask = check_mask(mask, scores.shape)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1)  # (..., Lq, Lk); a fully masked row is all NaN here
    if mask is not None:
        weights = weights.masked_fill(~mask, 0.0)  # ... and all zeros here
    dropped = F.dropout(weights, p=dropout_p, training=training) if dropout_p > 0 else weights
    return dropped @ v, weights  # (..., Lq, d_v), (..., Lq, Lk)


@dataclass
class KVCache:
    """Keys and values of the positions seen so far, per head: ``keys``/``values`` are ``(B, h, T, d_head)``.

    Pass the same cache to every call of :meth:`MultiHeadAttention.forward` while generating: each call
    appends the new positions' keys and values, so earlier positions are never projected twice.

    Appending with ``torch.cat`` copies the whole past at every step. Given a ``capacity`` (the most positions
    it will ever hold, e.g. ``block_size``), the cache instead makes room for ``capacity`` positions at its
    first update and writes each new position in place; ``keys``/``values`` are then views of the filled
    part, with the same numbers.
    """

    keys: torch.Tensor | None = None
    values: torch.Tensor | None = None
    length: int = field(default=0)
    capacity: int | None = None
    # (2, B, h, capacity, d_head): keys and values of every position it has room for, made at the first update
    _room: torch.Tensor | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self):
        if self.capacity is not None:
            check_positive_int("capacity", self.capacity)

    def update(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Append ``k, v`` ``(B, h, T_new, d_head)``; return all keys and values ``(B, h, T, d_head)``."""
        if self.capacity is None:
            self.keys = k if self.keys is None else torch.cat([self.keys, k], dim=2)
            self.values = v if self.values is None else torch.cat([self.values, v], dim=2)
        else:
            self._write_in_place(k, v)
        self.length = self.keys.shape[2]
        return self.keys, self.values

    def _write_in_place(self, k: torch.Tensor, v: torch.Tensor) -> None:
        past = 0 if self.keys is None else self.keys.shape[2]
        end = past + k.shape[2]
        if end > self.capacity:
            raise ValueError(f"KVCache(capacity={self.capacity}) cannot hold {past} cached + {k.shape[2]} new "
                             f"positions")
        if self._room is None:  # first update: room for every position, holding what was cached so far
            self._room = k.new_empty(2, k.shape[0], k.shape[1], self.capacity, k.shape[3])
            if past:
                self._room[0, :, :, :past], self._room[1, :, :, :past] = self.keys, self.values
        self._room[0, :, :, past:end], self._room[1, :, :, past:end] = k, v  # (B, h, T_new, d_head) each
        self.keys, self.values = self._room[0, :, :, :end], self._room[1, :, :, :end]  # (B, h, T, d_head)


class MultiHeadAttention(nn.Module):
    """Multi-head attention of "Attention Is All You Need" (self- or cross-attention).

    Args:
        d_model: width of inputs and outputs; must be divisible by ``num_heads``.
        num_heads: number of heads ``h``; each works in ``d_head = d_model // h`` dimensions.
        dropout: dropout on the attention weights during training.
        bias: whether the four projections have biases.
        fast: use ``torch.nn.functional.scaled_dot_product_attention`` when the weights are not requested.
            Both paths give the same numbers (a test proves it); the explicit one is the one to read.
    """

    def __init__(self, d_model: int, num_heads: int, dropout: float = 0.0, bias: bool = True, fast: bool = True):
        super().__init__()
        if not isinstance(d_model, int) or not isinstance(num_heads, int) or d_model < 1 or num_heads < 1:
            raise ValueError(f"d_model and num_heads must be positive ints, got d_model={d_model!r}, "
                             f"num_heads={num_heads!r}")
        if d_model % num_heads != 0:
            raise ValueError(f"d_model={d_model} is not divisible by num_heads={num_heads}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {dropout}")
        self.d_model, self.num_heads, self.d_head = d_model, num_heads, d_model // num_heads
        self.dropout, self.fast = dropout, fast
        self.q_proj = nn.Linear(d_model, d_model, bias=bias)
        self.k_proj = nn.Linear(d_model, d_model, bias=bias)
        self.v_proj = nn.Linear(d_model, d_model, bias=bias)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, L, d_model)`` -> ``(B, h, L, d_head)``."""
        B, L, _ = x.shape
        return x.view(B, L, self.num_heads, self.d_head).transpose(1, 2)  # (B, h, L, d_head)

    def merge_heads(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, h, L, d_head)`` -> ``(B, L, h * d_head)``: ``d_model`` wide, unless heads were pruned away."""
        B, _, L, _ = x.shape
        return x.transpose(1, 2).reshape(B, L, self.num_heads * self.d_head)  # (B, L, h * d_head)

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        mask: torch.Tensor | None = None,
        return_attention: bool = True,
        cache: KVCache | None = None,
        rotary: Callable[[torch.Tensor, int], torch.Tensor] | None = None,
        causal: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Attend from ``query`` positions to ``key``/``value`` positions.

        Args:
            query: ``(B, Lq, d_model)``; key, value: ``(B, Lk, d_model)`` (the same tensor for self-attention).
            mask: bool, ``True`` = may attend; shape ``(Lq, Lk)``, ``(B, Lq, Lk)`` (e.g. from
                :func:`padding_mask`, ``(B, 1, Lk)``) or ``(B, h, Lq, Lk)``. With a cache, ``Lk`` counts the
                cached positions too.
            return_attention: return the per-head weights (uses the explicit path).
            cache: a :class:`KVCache` to read earlier keys/values from and append this call's to.
            rotary: optional rotary position embedding (e.g. :class:`bigtut.positional.RotaryEmbedding` of
                width ``d_head``), called as ``rotary(x, offset)`` on the queries and keys of every head;
                ``offset`` is the number of cached positions (0 without a cache).
            causal: query ``i`` may attend only to keys ``0..i`` (:func:`causal_mask`), on top of ``mask``;
                queries and keys must then be the same positions (``Lq == Lk``, counting cached keys). Without
                ``mask`` the fast path leaves it to SDPA's ``is_causal``: the same numbers, no mask built.

        Returns:
            ``(output, weights)``: output ``(B, Lq, d_model)``; weights ``(B, h, Lq, Lk)`` or ``None`` when
            ``return_attention`` is False.
        """
        if query.dim() != 3 or query.shape[-1] != self.d_model:
            raise ValueError(f"query must be (B, Lq, d_model={self.d_model}), got {tuple(query.shape)}")
        if key.dim() != 3 or key.shape[-1] != self.d_model or key.shape != value.shape:
            raise ValueError(f"key and value must both be (B, Lk, d_model={self.d_model}), got key "
                             f"{tuple(key.shape)}, value {tuple(value.shape)}")
        if key.shape[0] != query.shape[0]:
            raise ValueError(f"query and key need the same batch size B: query {tuple(query.shape)}, "
                             f"key {tuple(key.shape)}")
        # 1) project, then split d_model into h heads of d_head
        q = self.split_heads(self.q_proj(query))  # (B, h, Lq, d_head)
        k = self.split_heads(self.k_proj(key))  # (B, h, Lk, d_head)
        v = self.split_heads(self.v_proj(value))  # (B, h, Lk, d_head)
        if rotary is not None:  # positions offset by what the cache already holds
            offset = cache.length if cache is not None else 0
            q, k = rotary(q, offset), rotary(k, offset)  # (B, h, Lq, d_head), (B, h, Lk, d_head)
        if cache is not None:
            k, v = cache.update(k, v)  # (B, h, T_cached + Lk, d_head)
        # 2) a (B, Lq, Lk) mask gets a head axis so it broadcasts over heads
        if mask is not None and mask.dim() == 3:
            mask = mask.unsqueeze(1)  # (B, 1, Lq, Lk)
        mask = check_mask(mask, torch.Size((q.shape[0], self.num_heads, q.shape[2], k.shape[2])))
        if causal and q.shape[2] != k.shape[2]:
            raise ValueError(f"causal=True needs queries and keys at the same positions, got Lq={q.shape[2]}, "
                             f"Lk={k.shape[2]}; pass the mask of their positions instead")
        is_causal = causal and mask is None and self.fast and not return_attention  # SDPA applies it
        if causal and not is_causal:  # written out: (Lq, Lk), combined with the given mask
            mask = causal_mask(q.shape[2], q.device) if mask is None else mask & causal_mask(q.shape[2], q.device)
        # 3) attend in every head at once
        dropout_p = self.dropout if self.training else 0.0
        if self.fast and not return_attention:
            heads = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p, is_causal=is_causal)
            if mask is not None:  # fully masked rows: zeros, as in the explicit path
                heads = heads.masked_fill(~mask.any(-1, keepdim=True), 0.0)
            weights = None
        else:
            heads, weights = scaled_dot_product_attention(q, k, v, mask, dropout_p, self.training)
        # 4) concatenate the heads and mix them with the output projection
        return self.out_proj(self.merge_heads(heads)), (weights if return_attention else None)
