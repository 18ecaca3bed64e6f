"""The encoder–decoder Transformer of "Attention Is All You Need": config, masks, model, training loss.

Shape legend:  B batch   S source positions   T target positions   D d_model   V target vocabulary   h heads

Sequences are right-padded with ``config.pad_id``; decoding (greedy, beam search) is in
:mod:`bigtut.transformer.decoding`, the layers in :mod:`bigtut.transformer.layers`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from bigtut.attention import causal_mask, padding_mask
from bigtut.positional import SinusoidalPositionalEncoding
from bigtut.transformer.layers import Decoder, Encoder, check_layer_args
from bigtut.validation import check_positive_int

__all__ = ["Seq2SeqConfig", "Seq2SeqOutput", "Seq2SeqTransformer", "decoder_self_mask", "right_padded_mask",
           "teacher_forcing_loss"]


@dataclass
class Seq2SeqConfig:
    """Everything that defines a :class:`Seq2SeqTransformer` (paper's base model: 512 wide, 8 heads, 6+6)."""

    src_vocab_size: int  # source token ids are 0 .. src_vocab_size - 1
    tgt_vocab_size: int  # target token ids are 0 .. tgt_vocab_size - 1
    d_model: int = 64  # width of every position's vector
    num_heads: int = 4  # attention heads per layer (d_model must be divisible by it)
    num_encoder_layers: int = 2
    num_decoder_layers: int = 2
    d_ff: int = 256  # hidden width of the feed-forward nets
    dropout: float = 0.0  # on embeddings, attention weights and every sublayer output
    max_len: int = 64  # longest source or target sequence (positions of the sinusoidal table)
    norm_first: bool = True  # pre-LN (True) or the paper's post-LN (False)
    activation: str = "relu"  # "relu" (paper) or "gelu"
    pad_id: int = 0  # padding id (ignored by attention and by the loss), same in source and target
    bos_id: int = 1  # the target's start token
    eos_id: int = 2  # the target's end token

    def __post_init__(self):
        check_layer_args(self.d_model, self.num_heads, self.d_ff, self.dropout, self.activation)
        for name in ("src_vocab_size", "tgt_vocab_size", "num_encoder_layers", "num_decoder_layers", "max_len"):
            check_positive_int(name, getattr(self, name))
        for name in ("pad_id", "bos_id", "eos_id"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 0 <= value < min(self.src_vocab_size, self.tgt_vocab_size):
                raise ValueError(f"{name}={value!r} must be an id in both vocabularies (0 .. "
                                 f"{min(self.src_vocab_size, self.tgt_vocab_size) - 1})")
        if len({self.pad_id, self.bos_id, self.eos_id}) != 3:
            raise ValueError(f"pad_id, bos_id, eos_id must differ, got {self.pad_id}, {self.bos_id}, {self.eos_id}")


class Seq2SeqOutput(NamedTuple):
    """What :class:`Seq2SeqTransformer` returns; attention lists hold one ``(B, h, ·, ·)`` tensor per layer."""

    logits: torch.Tensor  # (B, T, V)
    encoder_attentions: list  # [(B, h, S, S)]
    decoder_attentions: list  # [(B, h, T, T)]
    cross_attentions: list  # [(B, h, T, S)]


def right_padded_mask(ids: torch.Tensor, pad_id: int) -> torch.Tensor:
    """Key-padding mask ``(B, 1, L)`` of right-padded ``ids (B, L)`` via :func:`bigtut.attention.padding_mask`."""
    real = ids != pad_id  # (B, L)
    mask = padding_mask(real.sum(-1), ids.shape[1])  # (B, 1, L)
    if not torch.equal(mask[:, 0], real):
        raise ValueError(f"sequences must be right-padded: pad_id={pad_id} found before a real token")
    return mask


def decoder_self_mask(tgt: torch.Tensor, pad_id: int) -> torch.Tensor:
    """Decoder self-attention mask ``(B, T, T)``: position ``t`` may read positions ``<= t`` that are not padding."""
    return causal_mask(tgt.shape[1], tgt.device) & right_padded_mask(tgt, pad_id)  # (T, T) & (B, 1, T)


class Seq2SeqTransformer(nn.Module):
    """Embeddings (scaled by √D) + sinusoidal positions -> :class:`Encoder` / :class:`Decoder` -> linear to
    target-vocabulary logits."""

    def __init__(self, config: Seq2SeqConfig):
        super().__init__()
        if not isinstance(config, Seq2SeqConfig):
            raise TypeError(f"config must be a Seq2SeqConfig, got {type(config).__name__}")
        c = self.config = config
        self.src_embed = nn.Embedding(c.src_vocab_size, c.d_model)
        self.tgt_embed = nn.Embedding(c.tgt_vocab_size, c.d_model)
        for emb in (self.src_embed, self.tgt_embed):  # so that √D · embedding has unit scale, like the positions
            nn.init.normal_(emb.weight, std=c.d_model**-0.5)
        self.positions = SinusoidalPositionalEncoding(c.d_model, c.max_len, c.dropout)
        layer_args = (c.d_model, c.num_heads, c.d_ff, c.dropout, c.activation, c.norm_first)
        self.encoder = Encoder(c.num_encoder_layers, *layer_args)
        self.decoder = Decoder(c.num_decoder_layers, *layer_args)
        self.out_proj = nn.Linear(c.d_model, c.tgt_vocab_size)

    def _embed(self, ids: torch.Tensor, table: nn.Embedding) -> torch.Tensor:
        if ids.dim() != 2 or ids.dtype != torch.long:
            raise ValueError(f"token ids must be a (B, L) LongTensor, got shape {tuple(ids.shape)}, {ids.dtype}")
        if ids.shape[1] > self.config.max_len:
            raise ValueError(f"sequence length {ids.shape[1]} exceeds max_len={self.config.max_len}")
        return self.positions(table(ids) * math.sqrt(self.config.d_model))  # (B, L, D)

    def encode(self, src: torch.Tensor, return_attention: bool = False):
        """``src (B, S)`` -> ``(memory (B, S, D), source mask (B, 1, S), [encoder weights])``."""
        src_mask = right_padded_mask(src, self.config.pad_id)  # (B, 1, S)
        memory, weights = self.encoder(self._embed(src, self.src_embed), src_mask, return_attention)  # (B, S, D)
        return memory, src_mask, weights

    def decode(self, tgt: torch.Tensor, memory: torch.Tensor, src_mask: torch.Tensor, return_attention: bool = False):
        """``tgt (B, T)`` (starting with ``<bos>``) -> ``(logits (B, T, V), [self weights], [cross weights])``."""
        self_mask = decoder_self_mask(tgt, self.config.pad_id)  # (B, T, T)
        x, self_ws, cross_ws = self.decoder(self._embed(tgt, self.tgt_embed), memory, self_mask, src_mask,
                                            return_attention)  # (B, T, D)
        return self.out_proj(x), self_ws, cross_ws  # (B, T, V)

    def forward(self, src: torch.Tensor, tgt: torch.Tensor, return_attention: bool = False) -> Seq2SeqOutput:
        """Logits of the next target token at every target position (teacher forcing)."""
        memory, src_mask, enc_ws = self.encode(src, return_attention)
        logits, self_ws, cross_ws = self.decode(tgt, memory, src_mask, return_attention)
        return Seq2SeqOutput(logits, enc_ws, self_ws, cross_ws)


def teacher_forcing_loss(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor],
                         label_smoothing: float = 0.0) -> torch.Tensor:
    """Cross-entropy of predicting ``tgt[:, 1:]`` from ``src`` and the true prefix ``tgt[:, :-1]``.

    ``batch = (src (B, S), tgt (B, T))`` with ``tgt = <bos> … <eos> <pad>…``; padding is ignored. With
    ``label_smoothing = ε`` the target distribution is ``(1 - ε)`` on the right token plus ``ε / V`` on
    every token.
    """
    src, tgt = batch
    logits = model(src, tgt[:, :-1]).logits  # (B, T-1, V)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt[:, 1:].reshape(-1),
                           ignore_index=model.config.pad_id, label_smoothing=label_smoothing)
