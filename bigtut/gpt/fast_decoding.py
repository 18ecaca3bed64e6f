"""One cached decoding step of a GPT in fewer calls: the arithmetic of ``GPT.hidden_states`` for one new
position, read straight from the model's weights.

Shape legend:  B batch   T positions cached   d d_model   h heads   d_head = d / h

:func:`bigtut.gpt.generate` feeds one token per step once the prompt is cached. Through the model's modules
that step also pays for module calls, argument checks, mask logic and, in every layer, a ``torch.cat`` that
copies the whole cached past; for the chapter's 4-layer, 128-wide model on one CPU thread that is more time
than the arithmetic. :class:`FastDecoder` runs the same operations on the same weights in the same order,
``F.layer_norm``, ``addmm``, ``F.scaled_dot_product_attention`` and ``F.gelu``, with caches that write in place
(``KVCache(capacity=block_size)``) and the weights gathered once per ``generate`` call instead of looked up
through the modules at every step. Gathering them also copies them into the layout a one-row product reads
fastest (transposed and contiguous, the query, key and value projections side by side, the output matrix too:
:meth:`FastDecoder.logits`), so its sums run in another order than ``F.linear``'s: the numbers agree to float
rounding. ``tests/test_gpt_generate_fast.py`` proves its hidden states and logits equal to the readable path's
to that rounding, and the generated tokens identical.
``bigtut/gpt/model.py`` remains the model to read; this file is only how ``generate`` runs it quickly
(``benchmarks/gpt.py`` times both).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from bigtut.attention import KVCache, MultiHeadAttention

__all__ = ["FastDecoder", "readable_decoding"]

_enabled = True


@contextmanager
def readable_decoding() -> Iterator[None]:
    """Within this block :func:`bigtut.gpt.generate` takes the readable path (``model.hidden_states`` at every
    step) even where :class:`FastDecoder` applies: to compare the two paths, or to time the taught one."""
    global _enabled
    before, _enabled = _enabled, False
    try:
        yield
    finally:
        _enabled = before


class _Norm(NamedTuple):
    """A LayerNorm's parameters; calling it is ``F.layer_norm``, what ``nn.LayerNorm`` runs."""

    shape: tuple[int, ...]
    weight: torch.Tensor | None
    bias: torch.Tensor | None
    eps: float

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, self.shape, self.weight, self.bias, self.eps)


class _Affine(NamedTuple):
    """One or more Linear layers side by side: the weights copied, transposed, into one contiguous ``(in, out)``
    matrix, which a one-row product reads at close to the memory's speed (MKL's one-row kernel reads a
    transposed view of ``(out, in)`` up to 3x slower on some CPUs); calling it on ``x`` ``(B, in)`` is an
    ``addmm`` (or ``mm``), ``(B, out)``."""

    bias: torch.Tensor | None
    weight_t: torch.Tensor

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return x.mm(self.weight_t) if self.bias is None else torch.addmm(self.bias, x, self.weight_t)


class _BlockWeights(NamedTuple):
    """What one :class:`~bigtut.gpt.Block` computes with, read once per ``generate`` call."""

    ln_1: _Norm
    qkv: _Affine  # the query, key and value projections side by side: (B, d) -> (B, 3d)
    out: _Affine
    heads: int
    d_head: int
    ln_2: _Norm
    fc: _Affine
    proj: _Affine


def _norm(module: nn.LayerNorm) -> _Norm:
    return _Norm(module.normalized_shape, module.weight, module.bias, module.eps)


def _affine(*modules: nn.Linear) -> _Affine:
    """``modules`` (Linear layers of the same input width) as one :class:`_Affine`, outputs in their order."""
    biases = [m.bias if m.bias is not None else m.weight.new_zeros(m.out_features) for m in modules]
    bias = None if all(m.bias is None for m in modules) else torch.cat(biases)  # (out,)
    return _Affine(bias, torch.cat([m.weight for m in modules]).t().contiguous())  # (in, out)


def _block_weights(block: nn.Module) -> _BlockWeights:
    attn = block.attn.attn  # the MultiHeadAttention inside CausalSelfAttention
    return _BlockWeights(_norm(block.ln_1), _affine(attn.q_proj, attn.k_proj, attn.v_proj), _affine(attn.out_proj),
                         attn.num_heads, attn.d_head, _norm(block.ln_2), _affine(block.mlp.fc),
                         _affine(block.mlp.proj))


class FastDecoder:
    """Prefill a GPT's caches through the model itself, then decode one position per call of :meth:`step`.

    Usage (what :func:`bigtut.gpt.generate` does)::

        decoder = FastDecoder(model)                                  # model: a GPT in eval mode
        h, _ = model.hidden_states(prompt, cache=decoder.new_cache())  # (B, L, d): the prompt, once
        h = decoder.step(next_id)                                      # (B, d): one new position
    """

    def __init__(self, model: nn.Module):
        if not self.applies_to(model):
            raise TypeError(f"FastDecoder runs an unmodified bigtut GPT, got {type(model).__name__} (see applies_to)")
        self.model = model
        self.caches: list[KVCache] | None = None
        self.blocks = [_block_weights(block) for block in model.blocks]
        self.ln_f = _norm(model.ln_f)
        # with GPT-2's vocabulary the output matrix (V, d) is 2/3 of what a step reads: in the layout of
        # _Affine, MKL read it at 28 GB/s on the AMD EPYC that wrote benchmarks/results/gpt.txt, 10 GB/s as a view
        self.head = _affine(model.lm_head)

    @staticmethod
    def applies_to(model: nn.Module) -> bool:
        """True if :meth:`step` runs the operations ``model.hidden_states`` would: every submodule is of one
        of the model file's own classes (no pruning masks, quantised or parametrised layers), attention on its
        SDPA path (``fast=True``), the model in eval mode (dropout off), no forward hook anywhere but on
        ``lm_head`` (which ``generate`` calls as a module on either path), no method replaced on an instance;
        and not inside :func:`readable_decoding`."""
        from bigtut.gpt.model import GPT, MLP, Block, CausalSelfAttention  # here: model.py imports us (via sampling)

        plain = (GPT, Block, CausalSelfAttention, MultiHeadAttention, MLP, nn.Linear, nn.LayerNorm, nn.Embedding,
                 nn.Dropout, nn.ModuleList)
        if not _enabled or type(model) is not GPT or nn.modules.module._global_forward_hooks \
                or nn.modules.module._global_forward_pre_hooks:
            return False
        for name, module in model.named_modules():
            if type(module) not in plain or module.training or getattr(module, "fast", True) is False \
                    or {"forward", "hidden_states", "new_cache"} & vars(module).keys():
                return False
            if name != "lm_head" and (module._forward_hooks or module._forward_pre_hooks):
                return False
        return True

    def new_cache(self) -> list[KVCache]:
        """Empty caches, one per block, with room for ``block_size`` positions; :meth:`step` continues them."""
        self.caches = [KVCache(capacity=self.model.config.block_size) for _ in self.model.blocks]
        return self.caches

    def step(self, ids: torch.Tensor) -> torch.Tensor:
        """Feed one token per row, ``ids`` ``(B,)``, after the cached positions; return its hidden state ``(B, d)``
        after the final LayerNorm, equal to ``model.hidden_states(ids[:, None], cache=caches)[0][:, -1]``."""
        model, position = self.model, self.caches[0].length
        if position >= model.config.block_size:
            raise ValueError(f"{position} cached + 1 new positions exceed block_size={model.config.block_size}")
        x = model.tok_emb.weight[ids] + model.pos_emb.weight[position]  # (B, d); dropout is off in eval mode
        for block, cache in zip(self.blocks, self.caches):
            x = x + block.out(self._attend(block, block.ln_1(x), cache))  # (B, d)
            x = x + block.proj(F.gelu(block.fc(block.ln_2(x)), approximate="tanh"))  # (B, d)
        return self.ln_f(x)  # (B, d)

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        """``model.lm_head(h)`` for ``h`` ``(B, d)``: ``(B, V)``, the same products summed in another order
        (equal to float rounding), through the module itself where a hook watches it."""
        lm_head = self.model.lm_head
        return lm_head(h) if lm_head._forward_hooks or lm_head._forward_pre_hooks else self.head(h)

    @staticmethod
    def _attend(block: _BlockWeights, x: torch.Tensor, cache: KVCache) -> torch.Tensor:
        """The new position ``x`` ``(B, d)`` attends over every cached key and itself; returns the heads
        side by side, ``(B, h * d_head)``, before the output projection."""
        B, h, d_head = x.shape[0], block.heads, block.d_head
        q, k, v = block.qkv(x).view(B, 3, h, 1, d_head).unbind(1)  # (B, h, 1, d_head) each
        keys, values = cache.update(k, v)  # (B, h, T, d_head): the past and the new position
        return F.scaled_dot_product_attention(q, keys, values).reshape(B, h * d_head)  # no mask: all visible
