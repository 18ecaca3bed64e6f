"""The BERT encoder, read top to bottom: config, embeddings (token + position + segment), post-LN blocks,
and the tanh pooler over [CLS]. The heads are in :mod:`bigtut.bert.heads`.

Shape legend used in every comment:
    B  batch size    L  sequence length    d  d_model    h  heads    V  vocabulary size    C  classes

Conventions shared with Hugging Face, so numbers can be compared one to one:

* arguments in Hugging Face's order: ``input_ids``, ``attention_mask``, ``token_type_ids``;
* ``attention_mask`` is ``(B, L)``, 1/True at real tokens and 0/False at padding. ``None`` means "attend to
  every position" (as in HF): pass the mask whenever a batch is padded;
* ``token_type_ids`` (segment ids) are 0 for sentence A (and [CLS]) and 1 for sentence B.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn

from bigtut.transformer.layers import EncoderLayer
from bigtut.validation import (
    check_attention_mask,
    check_dropout,
    check_positive_int,
    check_shape,
    check_token_ids,
    resolve_inputs,
)

__all__ = ["Bert", "BertConfig", "BertEmbeddings", "BertOutput", "BertOutputWithAttention", "init_bert_weights"]


@dataclass
class BertConfig:
    """Sizes of a BERT model. The defaults are the chapter's small model (:class:`bigtut.recipes.BertRecipe` sets the
    vocabulary and [PAD] id from its tokenizer, and turns dropout off); BERT-base would be 30522, 512, 2,
    768, 12, 12, 3072."""

    vocab_size: int = 1024  # V: number of token ids
    max_len: int = 64  # longest input (number of learned position embeddings)
    type_vocab_size: int = 2  # number of segments (A, B)
    d_model: int = 64  # width of every hidden state
    num_layers: int = 2  # encoder blocks
    num_heads: int = 4  # attention heads per block
    d_ff: int = 256  # hidden width of the feed-forward sub-layer
    dropout: float = 0.1  # on embeddings, attention weights, sub-layer outputs and the classifier input
    layer_norm_eps: float = 1e-12  # BERT's LayerNorm epsilon
    pad_id: int = 0  # id of [PAD]
    num_labels: int = 2  # classes of BertForSequenceClassification

    def __post_init__(self):
        for name in ("vocab_size", "max_len", "type_vocab_size", "d_model", "num_layers", "num_heads", "d_ff",
                     "num_labels"):
            check_positive_int(f"BertConfig.{name}", getattr(self, name))
        if self.d_model % self.num_heads:
            raise ValueError(f"d_model={self.d_model} is not divisible by num_heads={self.num_heads}")
        check_dropout("BertConfig.dropout", self.dropout)
        if not self.layer_norm_eps > 0:
            raise ValueError(f"layer_norm_eps must be positive, got {self.layer_norm_eps}")
        if not 0 <= self.pad_id < self.vocab_size:
            raise ValueError(f"pad_id={self.pad_id} must be a valid id in [0, vocab_size={self.vocab_size})")


class BertEmbeddings(nn.Module):
    """token + position + segment embeddings, then LayerNorm and dropout."""

    def __init__(self, config: BertConfig):
        super().__init__()
        self.token = nn.Embedding(config.vocab_size, config.d_model)
        self.position = nn.Embedding(config.max_len, config.d_model)
        self.segment = nn.Embedding(config.type_vocab_size, config.d_model)
        self.norm = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, inputs_embeds: torch.Tensor, token_type_ids: torch.Tensor) -> torch.Tensor:
        """``inputs_embeds`` ``(B, L, d)`` (token embeddings), ``token_type_ids`` ``(B, L)`` -> ``(B, L, d)``."""
        positions = torch.arange(inputs_embeds.shape[1], device=inputs_embeds.device)  # (L,)
        x = inputs_embeds + self.position(positions) + self.segment(token_type_ids)  # (B, L, d)
        return self.dropout(self.norm(x))  # (B, L, d)


class BertOutput(NamedTuple):
    """What :class:`Bert` returns: ``hidden`` ``(B, L, d)`` and ``pooled`` ``(B, d)`` (from [CLS]) — the
    same pair as Hugging Face's ``BertModel`` (``last_hidden_state``, ``pooler_output``)."""

    hidden: torch.Tensor
    pooled: torch.Tensor


class BertOutputWithAttention(NamedTuple):
    """The same with ``return_attention=True``, plus ``attentions``: one ``(B, h, L, L)`` tensor per layer."""

    hidden: torch.Tensor
    pooled: torch.Tensor
    attentions: list[torch.Tensor]


class Bert(nn.Module):
    """The BERT encoder: embeddings, ``num_layers`` post-LN blocks, and the tanh pooler over [CLS]."""

    def __init__(self, config: BertConfig):
        super().__init__()
        if not isinstance(config, BertConfig):
            raise TypeError(f"Bert needs a BertConfig, got {type(config).__name__}")
        self.config = config
        self.embeddings = BertEmbeddings(config)
        self.layers = nn.ModuleList(  # chapter 03's encoder layer, in BERT's flavour: post-LN and GELU
            EncoderLayer(config.d_model, config.num_heads, config.d_ff, config.dropout, activation="gelu",
                         norm_first=False, layer_norm_eps=config.layer_norm_eps) for _ in range(config.num_layers))
        self.pooler = nn.Linear(config.d_model, config.d_model)
        self.apply(init_bert_weights)

    def get_input_embeddings(self) -> nn.Embedding:
        """The token-embedding table ``(V, d)``: what ``inputs_embeds=`` replaces."""
        return self.embeddings.token

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        *,
        inputs_embeds: torch.Tensor | None = None,
        return_attention: bool = False,
    ) -> BertOutput | BertOutputWithAttention:
        """Encode a batch.

        Args:
            input_ids: ``(B, L)`` ids in ``[0, vocab_size)``; give either these or ``inputs_embeds``.
            attention_mask: ``(B, L)`` bool or 0/1, True/1 at real tokens (default: all real).
            token_type_ids: ``(B, L)`` segment ids (default all 0).
            inputs_embeds: ``(B, L, d)`` precomputed token embeddings (e.g. scaled ones for Integrated
                Gradients); position and segment embeddings are still added here.
            return_attention: also return every layer's attention weights ``(B, h, L, L)``.
        """
        inputs_embeds = resolve_inputs(input_ids, inputs_embeds, self.embeddings.token)  # (B, L, d)
        B, L, _ = inputs_embeds.shape
        if L > self.config.max_len:
            raise ValueError(f"sequence length {L} exceeds max_len={self.config.max_len}")
        if token_type_ids is None:
            token_type_ids = torch.zeros(B, L, dtype=torch.long, device=inputs_embeds.device)  # (B, L)
        check_shape(token_type_ids, (B, L), "token_type_ids", "(B, L)")
        check_token_ids(token_type_ids, self.config.type_vocab_size, "token_type_ids")
        real = check_attention_mask(attention_mask, B, L)  # (B, L) bool or None
        mask = None if real is None else real[:, None, None, :]  # (B, 1, 1, L): every query sees the real keys
        x = self.embeddings(inputs_embeds, token_type_ids)  # (B, L, d)
        attentions = []
        for layer in self.layers:
            x, weights = layer(x, mask, return_attention=return_attention)  # (B, L, d), (B, h, L, L) | None
            attentions.append(weights)
        pooled = torch.tanh(self.pooler(x[:, 0]))  # (B, d): the [CLS] position
        return BertOutputWithAttention(x, pooled, attentions) if return_attention else BertOutput(x, pooled)


def init_bert_weights(module: nn.Module, std: float = 0.02) -> None:
    """BERT's initialisation: N(0, 0.02) weights, zero biases, LayerNorm at identity."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, std=std)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)
    if isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
