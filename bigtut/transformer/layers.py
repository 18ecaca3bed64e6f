"""The Transformer's layers, read top to bottom: encoder layer, decoder layer, and the stacks of them.

Shape legend:  B batch   S source positions   T target positions   D d_model   h heads

Masks are bool with ``True`` = "may attend" (:mod:`bigtut.attention`); PyTorch's ``nn.Transformer*`` use the
opposite (``True`` = blocked). Parameter names follow ``nn.TransformerEncoderLayer``/``DecoderLayer``, so
:func:`copy_from_torch` copies PyTorch's weights in and a test proves both give the same numbers.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from bigtut.attention import MultiHeadAttention
from bigtut.validation import check_dropout, check_positive_int

__all__ = ["ACTIVATIONS", "Decoder", "DecoderLayer", "Encoder", "EncoderLayer", "check_layer_args", "copy_from_torch"]
ACTIVATIONS = {"relu": F.relu, "gelu": F.gelu}


def check_layer_args(d_model: int, num_heads: int, d_ff: int, dropout: float, activation: str) -> None:
    """Raise ``ValueError`` naming the first bad layer size, dropout rate or activation."""
    for name, value in (("d_model", d_model), ("num_heads", num_heads), ("d_ff", d_ff)):
        check_positive_int(name, value)
    if d_model % num_heads:
        raise ValueError(f"d_model={d_model} is not divisible by num_heads={num_heads}")
    check_dropout("dropout", dropout)
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")


class EncoderLayer(nn.Module):
    """Self-attention, then a position-wise feed-forward net; each wrapped in a residual and a LayerNorm.

    ``norm_first=False`` is the paper's post-LN, ``x = LN(x + sublayer(x))``; ``norm_first=True`` is the
    pre-LN of GPT-2 and most modern models, ``x = x + sublayer(LN(x))``. Parameter names follow
    ``nn.TransformerEncoderLayer`` (``linear1``, ``norm1``, …) so weights map one to one.
    """

    def __init__(self, d_model: int, num_heads: int, d_ff: int, dropout: float = 0.0, activation: str = "relu",
                 norm_first: bool = True, layer_norm_eps: float = 1e-5):
        super().__init__()
        check_layer_args(d_model, num_heads, d_ff, dropout, activation)
        self.norm_first, self.activation = norm_first, ACTIVATIONS[activation]
        self.self_attn = MultiHeadAttention(d_model, num_heads, dropout)
        self.linear1, self.linear2 = nn.Linear(d_model, d_ff), nn.Linear(d_ff, d_model)
        self.norm1, self.norm2 = nn.LayerNorm(d_model, layer_norm_eps), nn.LayerNorm(d_model, layer_norm_eps)
        self.dropout, self.dropout1, self.dropout2 = nn.Dropout(dropout), nn.Dropout(dropout), nn.Dropout(dropout)

    def feed_forward(self, x: torch.Tensor) -> torch.Tensor:
        """``linear2(act(linear1(x)))`` at every position: ``(B, L, D) -> (B, L, d_ff) -> (B, L, D)``."""
        return self.dropout2(self.linear2(self.dropout(self.activation(self.linear1(x)))))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None,
                return_attention: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``x (B, S, D)``, ``mask`` broadcastable to ``(B, h, S, S)`` -> ``(x (B, S, D), weights (B, h, S, S))``."""
        def attend(y):
            out, w = self.self_attn(y, y, y, mask, return_attention=return_attention)  # (B, S, D), (B, h, S, S)
            return self.dropout1(out), w

        if self.norm_first:
            attended, weights = attend(self.norm1(x))
            x = x + attended  # (B, S, D)
            x = x + self.feed_forward(self.norm2(x))  # (B, S, D)
        else:
            attended, weights = attend(x)
            x = self.norm1(x + attended)  # (B, S, D)
            x = self.norm2(x + self.feed_forward(x))  # (B, S, D)
        return x, weights


class DecoderLayer(EncoderLayer):
    """Masked self-attention, cross-attention to the encoder's output ("memory"), feed-forward net.

    The same residual/LayerNorm wiring as :class:`EncoderLayer`, with a third sublayer in the middle:
    ``cross_attn`` (PyTorch: ``multihead_attn``) takes its queries from the decoder and its keys and values
    from the memory — this is where output positions read the input.
    """

    def __init__(self, d_model: int, num_heads: int, d_ff: int, dropout: float = 0.0, activation: str = "relu",
                 norm_first: bool = True, layer_norm_eps: float = 1e-5):
        super().__init__(d_model, num_heads, d_ff, dropout, activation, norm_first, layer_norm_eps)
        self.cross_attn = MultiHeadAttention(d_model, num_heads, dropout)
        self.norm3, self.dropout3 = nn.LayerNorm(d_model, layer_norm_eps), nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, memory: torch.Tensor, self_mask: torch.Tensor | None = None,
                memory_mask: torch.Tensor | None = None, return_attention: bool = False):
        """Args: ``x (B, T, D)``; ``memory (B, S, D)``; ``self_mask`` e.g. causal ``(T, T)`` or ``(B, T, T)``;
        ``memory_mask`` e.g. source padding ``(B, 1, S)``.

        Returns: ``(x (B, T, D), self weights (B, h, T, T), cross weights (B, h, T, S))`` (weights None unless
        ``return_attention``).
        """
        def self_attend(y):
            out, w = self.self_attn(y, y, y, self_mask, return_attention=return_attention)  # (B, T, D), (B, h, T, T)
            return self.dropout1(out), w

        def cross_attend(y):
            out, w = self.cross_attn(y, memory, memory, memory_mask, return_attention=return_attention)  # (B, h, T, S)
            return self.dropout2(out), w

        if self.norm_first:
            attended, self_w = self_attend(self.norm1(x))
            x = x + attended  # (B, T, D)
            attended, cross_w = cross_attend(self.norm2(x))
            x = x + attended  # (B, T, D)
            x = x + self.feed_forward(self.norm3(x))  # (B, T, D)
        else:
            attended, self_w = self_attend(x)
            x = self.norm1(x + attended)  # (B, T, D)
            attended, cross_w = cross_attend(x)
            x = self.norm2(x + attended)  # (B, T, D)
            x = self.norm3(x + self.feed_forward(x))  # (B, T, D)
        return x, self_w, cross_w

    def feed_forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout3(self.linear2(self.dropout(self.activation(self.linear1(x)))))  # (B, T, D)


class Encoder(nn.Module):
    """``num_layers`` encoder layers; pre-LN stacks end in one more LayerNorm (their residual stream is
    never normalised otherwise), post-LN stacks do not need it."""

    def __init__(self, num_layers: int, d_model: int, num_heads: int, d_ff: int, dropout: float = 0.0,
                 activation: str = "relu", norm_first: bool = True, layer_norm_eps: float = 1e-5,
                 layer_class: type[EncoderLayer] = EncoderLayer):
        super().__init__()
        check_positive_int("num_layers", num_layers)
        self.layers = nn.ModuleList(layer_class(d_model, num_heads, d_ff, dropout, activation, norm_first,
                                                layer_norm_eps) for _ in range(num_layers))
        self.norm = nn.LayerNorm(d_model, layer_norm_eps) if norm_first else None

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, return_attention: bool = False):
        """``x (B, S, D)`` -> ``(x (B, S, D), [weights (B, h, S, S) per layer] or [])``."""
        weights = []
        for layer in self.layers:
            x, w = layer(x, mask, return_attention)
            weights += [w] if return_attention else []
        return (self.norm(x) if self.norm is not None else x), weights


class Decoder(Encoder):
    """``num_layers`` decoder layers (+ a final LayerNorm when pre-LN)."""

    def __init__(self, num_layers: int, d_model: int, num_heads: int, d_ff: int, dropout: float = 0.0,
                 activation: str = "relu", norm_first: bool = True, layer_norm_eps: float = 1e-5):
        super().__init__(num_layers, d_model, num_heads, d_ff, dropout, activation, norm_first, layer_norm_eps,
                         layer_class=DecoderLayer)

    def forward(self, x: torch.Tensor, memory: torch.Tensor, self_mask: torch.Tensor | None = None,
                memory_mask: torch.Tensor | None = None, return_attention: bool = False):
        """``x (B, T, D)``, ``memory (B, S, D)`` -> ``(x (B, T, D), [self weights], [cross weights])``."""
        self_ws, cross_ws = [], []
        for layer in self.layers:
            x, self_w, cross_w = layer(x, memory, self_mask, memory_mask, return_attention)
            if return_attention:
                self_ws.append(self_w)
                cross_ws.append(cross_w)
        return (self.norm(x) if self.norm is not None else x), self_ws, cross_ws


def copy_from_torch(ours: EncoderLayer, theirs: nn.Module) -> EncoderLayer:
    """Copy the weights of ``nn.TransformerEncoderLayer``/``nn.TransformerDecoderLayer`` into ours (in place).

    PyTorch packs the query, key and value projections into one ``in_proj_weight (3D, D)``; we keep three
    ``nn.Linear``: rows ``0:D`` are the query's, ``D:2D`` the key's, ``2D:3D`` the value's.
    """
    pairs = [(ours.self_attn, theirs.self_attn)]
    if isinstance(ours, DecoderLayer):
        pairs.append((ours.cross_attn, theirs.multihead_attn))
    with torch.no_grad():
        for mine, torch_mha in pairs:
            for proj, w, b in zip((mine.q_proj, mine.k_proj, mine.v_proj), torch_mha.in_proj_weight.chunk(3),
                                  torch_mha.in_proj_bias.chunk(3)):
                proj.weight.copy_(w)
                proj.bias.copy_(b)
            mine.out_proj.load_state_dict(torch_mha.out_proj.state_dict())
        names = ["linear1", "linear2", "norm1", "norm2"] + (["norm3"] if isinstance(ours, DecoderLayer) else [])
        for name in names:
            getattr(ours, name).load_state_dict(getattr(theirs, name).state_dict())
    return ours
