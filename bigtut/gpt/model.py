"""The GPT model, read top to bottom: config, causal self-attention, MLP, block, the model.

Shape legend used in every comment:
    B  batch size     L  positions in this call     T  positions seen so far (with a KV cache)
    V  vocabulary     d  d_model                    h  heads

A GPT models text left to right, P(x) = ∏ P(x_i | x_<i): every position predicts the next token and may
only look at itself and the past (a causal mask). Module names follow the GPT-2 checkpoint's layout
(embeddings, ``blocks[i].ln_1/attn/ln_2/mlp``, ``ln_f``, ``lm_head``), so the weight exchange with
Hugging Face (:mod:`bigtut.gpt.hf`) is one short table. Sampling and ``generate`` live in
:mod:`bigtut.gpt.sampling`, the classifier in :mod:`bigtut.gpt.classifier`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from bigtut.attention import KVCache, MultiHeadAttention
from bigtut.gpt.sampling import generate
from bigtut.validation import check_attention_mask, check_dropout, check_positive_int, resolve_inputs

__all__ = ["GPT", "MLP", "Block", "CausalSelfAttention", "GPTConfig", "GPTOutput", "GPTOutputWithAttention"]


@dataclass
class GPTConfig:
    """Hyper-parameters of a GPT (defaults: the chapter's 0.8 M-parameter character model)."""

    vocab_size: int = 105  # number of token ids V
    block_size: int = 64  # longest context the position embeddings cover
    n_layer: int = 4  # number of Transformer blocks
    n_head: int = 4  # attention heads per block; must divide d_model
    d_model: int = 128  # width of the residual stream
    dropout: float = 0.0  # on embeddings, attention weights and residual branches (training only)
    bias: bool = True  # biases in Linear and LayerNorm layers (GPT-2 has them)
    tie_weights: bool = True  # share the LM head's weight with the token embedding

    def __post_init__(self):
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "d_model"):
            check_positive_int(f"GPTConfig.{name}", getattr(self, name))
        if self.d_model % self.n_head:
            raise ValueError(f"d_model={self.d_model} is not divisible by n_head={self.n_head}")
        check_dropout("GPTConfig.dropout", self.dropout)


class GPTOutput(NamedTuple):
    """What :class:`GPT` returns: ``logits`` and ``loss`` (None without targets),
    so ``logits, loss = model(idx, targets)`` works as in nanoGPT."""

    logits: torch.Tensor
    loss: torch.Tensor | None = None


class GPTOutputWithAttention(NamedTuple):
    """The same with ``return_attention=True``, plus ``attentions``: one ``(B, h, L, T)`` tensor per block."""

    logits: torch.Tensor
    loss: torch.Tensor | None
    attentions: list[torch.Tensor]


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention in which position ``t`` sees only positions ``<= t``."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.attn = MultiHeadAttention(config.d_model, config.n_head, config.dropout, config.bias)
        self.resid_drop = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, return_attention: bool = False,
                key_mask: torch.Tensor | None = None):
        """``x`` ``(B, L, d)`` -> ``((B, L, d), weights (B, h, L, T) or None)``; ``T = cached + L``.

        ``key_mask`` ``(B, T)`` bool, False at padding: no position attends to a padded one.
        """
        L, past = x.shape[1], (cache.length if cache is not None else 0)
        if past == 0 and key_mask is None:  # a fresh sequence, nothing padded: attention applies the causal mask
            out, weights = self.attn(x, x, x, causal=True, return_attention=return_attention, cache=cache)
            return self.resid_drop(out), weights
        mask = None
        if L > 1 or key_mask is not None:  # one new query may see every cached key: no mask needed
            keys = torch.arange(past + L, device=x.device)  # (T,)
            queries = torch.arange(past, past + L, device=x.device)  # (L,) absolute positions
            mask = keys[None, :] <= queries[:, None]  # (L, T): True = may attend
            if key_mask is not None:
                mask = mask & key_mask[:, None, :]  # (B, L, T)
        out, weights = self.attn(x, x, x, mask=mask, return_attention=return_attention, cache=cache)
        return self.resid_drop(out), weights


class MLP(nn.Module):
    """Position-wise feed-forward: d -> 4d -> GELU (tanh approximation, as GPT-2) -> d."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.fc = nn.Linear(config.d_model, 4 * config.d_model, bias=config.bias)
        self.proj = nn.Linear(4 * config.d_model, config.d_model, bias=config.bias)
        self.drop = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.proj(F.gelu(self.fc(x), approximate="tanh")))  # (B, L, d)


class Block(nn.Module):
    """Pre-LN Transformer block: ``x + attn(ln_1(x))``, then ``x + mlp(ln_2(x))``."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.d_model, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.d_model, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, return_attention: bool = False,
                key_mask: torch.Tensor | None = None):
        attended, weights = self.attn(self.ln_1(x), cache, return_attention, key_mask)
        x = x + attended  # (B, L, d)
        return x + self.mlp(self.ln_2(x)), weights  # (B, L, d)


class GPT(nn.Module):
    """A decoder-only Transformer language model (GPT-2's architecture, any size)."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        if not isinstance(config, GPTConfig):
            raise TypeError(f"GPT needs a GPTConfig, got {type(config).__name__}")
        self.config = config
        self.tok_emb = nn.Embedding(config.vocab_size, config.d_model)
        self.pos_emb = nn.Embedding(config.block_size, config.d_model)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.d_model, bias=config.bias)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        if config.tie_weights:
            self.lm_head.weight = self.tok_emb.weight  # one (V, d) matrix reads and writes tokens
        self.apply(self._init_weights)
        for name, p in self.named_parameters():  # GPT-2: shrink the branches that add into the residual stream
            if name.endswith(("out_proj.weight", "mlp.proj.weight")):
                nn.init.normal_(p, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def num_parameters(self, non_embedding: bool = False) -> int:
        """Number of parameters (a tied matrix counts once); ``non_embedding`` leaves out both embeddings."""
        n = sum(p.numel() for p in self.parameters())
        if non_embedding:
            n -= self.pos_emb.weight.numel() + self.tok_emb.weight.numel()
        return n

    def new_cache(self) -> list[KVCache]:
        """One empty :class:`~bigtut.attention.KVCache` per block, for :meth:`forward` and :meth:`generate`."""
        return [KVCache() for _ in self.blocks]

    def get_input_embeddings(self) -> nn.Embedding:
        """The token-embedding table ``(V, d)``: what ``inputs_embeds=`` replaces (position embeddings are
        always added inside)."""
        return self.tok_emb

    def hidden_states(self, idx: torch.Tensor | None = None, *, attention_mask: torch.Tensor | None = None,
                      inputs_embeds: torch.Tensor | None = None, cache: list[KVCache] | None = None,
                      return_attention: bool = False):
        """Run the blocks; return ``(h, attentions)`` with ``h`` ``(B, L, d)`` after the final LayerNorm.

        Args:
            idx: token ids ``(B, L)``; or ``inputs_embeds`` ``(B, L, d)`` in their place (position embeddings
                are still added here, so gradients with respect to the token embeddings are well defined).
            attention_mask: ``(B, L)``, 1/True at real tokens, 0/False at padding; no position attends to a
                padded one. Right padding never needs it (the causal mask already hides what comes later).
            cache: one KVCache per block (:meth:`new_cache`); positions then continue after the cached ones.
            return_attention: also return the attention weights, one ``(B, h, L, T)`` tensor per block.
        """
        inputs_embeds = resolve_inputs(idx, inputs_embeds, self.tok_emb, "idx")  # (B, L, d)
        B, L, _ = inputs_embeds.shape
        key_mask = check_attention_mask(attention_mask, B, L)  # (B, L) bool or None
        if key_mask is not None and bool(key_mask.all()):
            key_mask = None  # nothing padded: the causal mask alone, as without a mask
        if cache is not None and len(cache) != len(self.blocks):
            raise ValueError(f"cache must hold one KVCache per block ({len(self.blocks)}), got {len(cache)}")
        if cache is not None and key_mask is not None:
            raise ValueError("attention_mask with padding cannot be combined with a KV cache")
        past = cache[0].length if cache is not None else 0
        if past + L > self.config.block_size:
            raise ValueError(f"{past} cached + {L} new positions exceed block_size={self.config.block_size}; "
                             f"crop the input to its last {self.config.block_size} tokens (generate does)")
        positions = torch.arange(past, past + L, device=inputs_embeds.device)  # (L,)
        x = self.drop(inputs_embeds + self.pos_emb(positions))  # (B, L, d)
        attentions = []
        for i, block in enumerate(self.blocks):
            x, weights = block(x, cache[i] if cache is not None else None, return_attention, key_mask)  # (B, L, d)
            attentions.append(weights)
        return self.ln_f(x), (attentions if return_attention else None)  # (B, L, d)

    def forward(self, idx: torch.Tensor | None = None, targets: torch.Tensor | None = None, *,
                attention_mask: torch.Tensor | None = None, inputs_embeds: torch.Tensor | None = None,
                cache: list[KVCache] | None = None,
                return_attention: bool = False) -> GPTOutput | GPTOutputWithAttention:
        """Next-token logits ``(B, L, V)``; with ``targets`` ``(B, L)`` also the mean cross-entropy (nats per
        token; targets of -100 are ignored). Inputs longer than ``block_size`` raise ``ValueError``.

        Returns ``(logits, loss)`` (a :class:`GPTOutput`; ``loss`` is None without targets), or
        ``(logits, loss, attentions)`` with ``return_attention=True``. Other arguments as :meth:`hidden_states`.
        """
        h, attentions = self.hidden_states(idx, attention_mask=attention_mask, inputs_embeds=inputs_embeds,
                                           cache=cache, return_attention=return_attention)
        logits = self.lm_head(h)  # (B, L, V)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-100)
        if return_attention:
            return GPTOutputWithAttention(logits, loss, attentions)
        return GPTOutput(logits, loss)

    def generate(self, idx: torch.Tensor, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
                 top_p: float | None = None, use_cache: bool = True,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """Extend ``idx`` ``(B, T)`` by ``max_new_tokens`` sampled tokens: :func:`bigtut.gpt.sampling.generate`."""
        return generate(self, idx, max_new_tokens, temperature, top_k, top_p, use_cache, generator)
