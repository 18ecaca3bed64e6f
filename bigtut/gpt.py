"""GPT, read top to bottom: config, causal self-attention, block, model, sampling, KV cache, GPT-2 weights,
pretraining on Python's documentation and fine-tuning on the docstring task.

Shape legend used in every comment:
    B  batch size     L  positions in this call     T  positions seen so far (with a KV cache)
    V  vocabulary     d  d_model                    h  heads          C  classes

A GPT models text left to right, P(x) = ∏ P(x_i | x_<i): every position predicts the next token and may
only look at itself and the past (a causal mask). Module names follow the GPT-2 checkpoint's layout
(embeddings, ``blocks[i].ln_1/attn/ln_2/mlp``, ``ln_f``, ``lm_head``), so :func:`gpt_to_hf` and
:func:`gpt_from_hf` are one short table.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from bigtut.attention import KVCache, MultiHeadAttention
from bigtut.runtime import check_positive_int

__all__ = [
    "GPT", "MLP", "Block", "CausalSelfAttention", "ClassifierRun", "GPTClassifier", "GPTConfig", "GPTOutput",
    "GPTOutputWithAttention",
    "PretrainRun", "apply_temperature", "bits_per_character", "gpt_from_hf", "gpt_to_hf", "hf_config", "lm_loss",
    "load_gpt2_pretrained", "next_token_distribution", "pretrain_char_gpt", "python_docs_char_tokenizer",
    "sample_next_token", "top_k_filter", "top_p_filter", "train_docstring_classifier",
]


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
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must lie in [0, 1), got {self.dropout}")


class GPTOutput(NamedTuple):
    """What :class:`GPT` and :class:`GPTClassifier` return: ``logits`` and ``loss`` (None without targets),
    so ``logits, loss = model(idx, targets)`` works as in nanoGPT."""

    logits: torch.Tensor
    loss: torch.Tensor | None = None


class GPTOutputWithAttention(NamedTuple):
    """The same with ``return_attention=True``, plus ``attentions``: one ``(B, h, L, T)`` tensor per block."""

    logits: torch.Tensor
    loss: torch.Tensor | None
    attentions: list[torch.Tensor]


def _gpt_output(logits, loss, attentions, return_attention: bool):
    return GPTOutputWithAttention(logits, loss, attentions) if return_attention else GPTOutput(logits, loss)


# ---------------------------------------------------------------------------------------------------- model
class CausalSelfAttention(nn.Module):
    """Multi-head self-attention in which position ``t`` sees only positions ``<= t``."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.attn = MultiHeadAttention(config.d_model, config.n_head, config.dropout, config.bias)
        self.resid_drop = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, need_weights: bool = False):
        """``x`` ``(B, L, d)`` -> ``((B, L, d), weights (B, h, L, T) or None)``; ``T = cached + L``."""
        L, past = x.shape[1], (cache.length if cache is not None else 0)
        mask = None
        if L > 1:  # one new query may see every cached key: no mask needed
            keys = torch.arange(past + L, device=x.device)  # (T,)
            queries = torch.arange(past, past + L, device=x.device)  # (L,) absolute positions
            mask = keys[None, :] <= queries[:, None]  # (L, T): True = may attend
        out, weights = self.attn(x, x, x, mask=mask, need_weights=need_weights, cache=cache)
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

    def forward(self, x: torch.Tensor, cache: KVCache | None = None, need_weights: bool = False):
        attended, weights = self.attn(self.ln_1(x), cache, need_weights)
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

    def hidden_states(self, idx: torch.Tensor | None = None, *, inputs_embeds: torch.Tensor | None = None,
                      cache: list[KVCache] | None = None, return_attention: bool = False):
        """Run the blocks; return ``(h, attentions)`` with ``h`` ``(B, L, d)`` after the final LayerNorm.

        Args:
            idx: token ids ``(B, L)``; or ``inputs_embeds`` ``(B, L, d)`` in their place (position embeddings
                are still added here, so gradients with respect to the token embeddings are well defined).
            cache: one KVCache per block (:meth:`new_cache`); positions then continue after the cached ones.
            return_attention: also return the attention weights, one ``(B, h, L, T)`` tensor per block.
        """
        if (idx is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of idx (B, L) and inputs_embeds (B, L, d_model)")
        if idx is not None:
            if idx.dim() != 2 or idx.dtype != torch.long:
                raise ValueError(f"idx must be a (B, L) LongTensor, got shape {tuple(idx.shape)}, dtype {idx.dtype}")
            if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= self.config.vocab_size):
                raise ValueError(f"token ids must lie in [0, {self.config.vocab_size}), got "
                                 f"[{int(idx.min())}, {int(idx.max())}]")
            inputs_embeds = self.tok_emb(idx)  # (B, L, d)
        elif inputs_embeds.dim() != 3 or inputs_embeds.shape[-1] != self.config.d_model:
            raise ValueError(f"inputs_embeds must be (B, L, d_model={self.config.d_model}), "
                             f"got {tuple(inputs_embeds.shape)}")
        if cache is not None and len(cache) != len(self.blocks):
            raise ValueError(f"cache must hold one KVCache per block ({len(self.blocks)}), got {len(cache)}")
        past = cache[0].length if cache is not None else 0
        L = inputs_embeds.shape[1]
        if past + L > self.config.block_size:
            raise ValueError(f"{past} cached + {L} new positions exceed block_size={self.config.block_size}; "
                             f"crop the input to its last {self.config.block_size} tokens (generate does)")
        positions = torch.arange(past, past + L, device=inputs_embeds.device)  # (L,)
        x = self.drop(inputs_embeds + self.pos_emb(positions))  # (B, L, d)
        attentions = []
        for i, block in enumerate(self.blocks):
            x, weights = block(x, cache[i] if cache is not None else None, return_attention)  # (B, L, d)
            attentions.append(weights)
        return self.ln_f(x), (attentions if return_attention else None)  # (B, L, d)

    def forward(self, idx: torch.Tensor | None = None, targets: torch.Tensor | None = None, *,
                inputs_embeds: torch.Tensor | None = None, cache: list[KVCache] | None = None,
                return_attention: bool = False) -> GPTOutput | GPTOutputWithAttention:
        """Next-token logits ``(B, L, V)``; with ``targets`` ``(B, L)`` also the mean cross-entropy (nats per
        token; targets of -100 are ignored). Inputs longer than ``block_size`` raise ``ValueError``.

        Returns ``(logits, loss)`` (a :class:`GPTOutput`; ``loss`` is None without targets), or
        ``(logits, loss, attentions)`` with ``return_attention=True``."""
        h, attentions = self.hidden_states(idx, inputs_embeds=inputs_embeds, cache=cache,
                                           return_attention=return_attention)
        logits = self.lm_head(h)  # (B, L, V)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-100)
        return _gpt_output(logits, loss, attentions, return_attention)

    @torch.no_grad()
    def generate(self, idx: torch.Tensor, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
                 top_p: float | None = None, use_cache: bool = True,
                 generator: torch.Generator | None = None) -> torch.Tensor:
        """Extend ``idx`` ``(B, T)`` by ``max_new_tokens`` sampled tokens; returns ``(B, T + max_new_tokens)``.

        ``temperature=0`` is greedy decoding. The model always sees the last ``block_size`` tokens (longer
        contexts are cropped). With ``use_cache`` each step feeds only the newest token and reads the earlier
        keys/values from a KV cache; once the context is longer than ``block_size`` the window slides, every
        position shifts, and the cache is rebuilt at each step — the results stay identical either way.
        """
        if idx.dim() != 2 or idx.shape[1] < 1:
            raise ValueError(f"idx must be (B, T) with T >= 1, got shape {tuple(idx.shape)}")
        if not isinstance(max_new_tokens, int) or max_new_tokens < 0:
            raise ValueError(f"max_new_tokens must be a non-negative int, got {max_new_tokens!r}")
        was_training = self.training
        self.eval()
        cache, cache_start = None, -1
        with _decoding_layout(self, enabled=idx.device.type == "cpu"):
            for _ in range(max_new_tokens):
                start = max(0, idx.shape[1] - self.config.block_size)  # first token of the visible window
                if use_cache and start == cache_start:  # the window did not move: feed only the newest token
                    h, _ = self.hidden_states(idx[:, -1:], cache=cache)  # (B, 1, d)
                else:
                    cache = self.new_cache() if use_cache else None
                    cache_start = start
                    h, _ = self.hidden_states(idx[:, start:], cache=cache)  # (B, L, d)
                logits = self.lm_head(h[:, -1])  # (B, V): only the last position is needed
                next_id = sample_next_token(logits, temperature, top_k, top_p, generator)  # (B, 1)
                idx = torch.cat([idx, next_id], dim=1)  # (B, T + 1)
        self.train(was_training)
        return idx


@contextmanager
def _decoding_layout(model: nn.Module, enabled: bool = True):
    """Inside this context every ``nn.Linear`` of ``model`` multiplies by a transposed copy of its weight.

    A cached decoding step multiplies one row per sequence by every weight matrix, so it is limited by how
    fast the weights stream from memory, not by arithmetic. On CPUs ``x @ W`` with ``W`` stored
    ``(in, out)`` (GPT-2's ``Conv1D`` layout) streams about 1.4x faster than ``nn.Linear``'s ``x @ W.T`` with
    ``W`` stored ``(out, in)`` (measured on a 6-layer, 384-wide model). The same products, summed in a
    slightly different order: results agree to rounding.
    """
    patched = []
    if enabled:
        for module in model.modules():
            if isinstance(module, nn.Linear):
                w_t = module.weight.detach().T.contiguous()  # (in, out)

                def forward(x, w_t=w_t, bias=module.bias):
                    flat = x.reshape(-1, x.shape[-1])  # (N, in)
                    out = flat @ w_t if bias is None else torch.addmm(bias, flat, w_t)  # (N, out)
                    return out.view(*x.shape[:-1], w_t.shape[1])  # (..., out)

                module.forward = forward
                patched.append(module)
    try:
        yield
    finally:
        for module in patched:
            del module.forward  # back to nn.Linear.forward


# ------------------------------------------------------------------------------------------------- sampling
def apply_temperature(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """``logits / temperature`` (``(..., V)``): below 1 sharpens the distribution, above 1 flattens it."""
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0 (use temperature=0 in generate for greedy), got {temperature}")
    return logits / temperature


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep exactly the ``k`` largest logits of the last axis (ties broken by ``torch.topk``); set the rest
    to ``-inf``. ``k >= V`` keeps everything."""
    check_positive_int("top_k", k)
    if k >= logits.shape[-1]:
        return logits
    keep = torch.zeros_like(logits, dtype=torch.bool).scatter_(-1, logits.topk(k, dim=-1).indices, True)
    return logits.masked_fill(~keep, float("-inf"))  # (..., V)


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Nucleus filter: keep the smallest set of most likely tokens whose probability mass is ``>= p``.

    A token survives if the mass of the tokens ranked above it is still below ``p`` (so the most likely
    token always survives); the rest get ``-inf``.
    """
    if not 0.0 < p <= 1.0:
        raise ValueError(f"top_p must lie in (0, 1], got {p}")
    sorted_logits, order = logits.sort(dim=-1, descending=True)  # (..., V)
    probs = sorted_logits.softmax(dim=-1)  # (..., V)
    mass_before = probs.cumsum(dim=-1) - probs  # (..., V): mass of the better-ranked tokens
    remove_sorted = mass_before >= p  # (..., V)
    remove = torch.zeros_like(remove_sorted).scatter_(-1, order, remove_sorted)  # back to vocabulary order
    return logits.masked_fill(remove, float("-inf"))


def next_token_distribution(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
                            top_p: float | None = None) -> torch.Tensor:
    """Probabilities ``(..., V)`` that sampling draws from: temperature, then top-k, then top-p.

    ``temperature=0`` gives the greedy one-hot distribution on the arg-max.
    """
    if temperature == 0:
        return F.one_hot(logits.argmax(-1), logits.shape[-1]).to(logits.dtype)  # (..., V)
    logits = apply_temperature(logits, temperature)
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    if top_p is not None:
        logits = top_p_filter(logits, top_p)
    return logits.softmax(dim=-1)  # (..., V)


def sample_next_token(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
                      top_p: float | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw one token per row of ``logits`` ``(B, V)``; returns ``(B, 1)`` ids (arg-max if temperature=0)."""
    if temperature == 0:
        return logits.argmax(dim=-1, keepdim=True)  # (B, 1)
    probs = next_token_distribution(logits, temperature, top_k, top_p)  # (B, V)
    if generator is not None and generator.device != probs.device:
        return torch.multinomial(probs.cpu(), 1, generator=generator).to(probs.device)
    return torch.multinomial(probs, 1, generator=generator)  # (B, 1)


# ------------------------------------------------------------------------------- GPT-2 (Hugging Face) weights
def hf_config(config: GPTConfig):
    """The ``transformers.GPT2Config`` of the same architecture (GELU tanh = ``"gelu_new"``, eps 1e-5)."""
    from transformers import GPT2Config

    if not config.bias:
        raise ValueError("GPT-2 (Hugging Face) layers always have biases; a GPTConfig with bias=False cannot be "
                         "mapped to GPT2LMHeadModel")
    return GPT2Config(vocab_size=config.vocab_size, n_positions=config.block_size, n_embd=config.d_model,
                      n_layer=config.n_layer, n_head=config.n_head, activation_function="gelu_new",
                      resid_pdrop=config.dropout, embd_pdrop=config.dropout, attn_pdrop=config.dropout,
                      layer_norm_epsilon=1e-5, tie_word_embeddings=config.tie_weights,
                      bos_token_id=None, eos_token_id=None)


def _name_table(n_layer: int) -> list[tuple[str, str, str]]:
    """``(our name, HF name, how)`` with how = "copy", "transpose" (Conv1D stores (in, out)) or "qkv"."""
    table = [("tok_emb.weight", "transformer.wte.weight", "copy"), ("pos_emb.weight", "transformer.wpe.weight", "copy"),
             ("ln_f.weight", "transformer.ln_f.weight", "copy"), ("ln_f.bias", "transformer.ln_f.bias", "copy"),
             ("lm_head.weight", "lm_head.weight", "copy")]
    for i in range(n_layer):
        ours, theirs = f"blocks.{i}.", f"transformer.h.{i}."
        for ln in ("ln_1", "ln_2"):
            table += [(ours + f"{ln}.{p}", theirs + f"{ln}.{p}", "copy") for p in ("weight", "bias")]
        table += [(ours + "attn.attn.{}_proj.{}", theirs + "attn.c_attn.{}", "qkv")]
        for a, b in (("attn.attn.out_proj", "attn.c_proj"), ("mlp.fc", "mlp.c_fc"), ("mlp.proj", "mlp.c_proj")):
            table += [(ours + f"{a}.weight", theirs + f"{b}.weight", "transpose"),
                      (ours + f"{a}.bias", theirs + f"{b}.bias", "copy")]
    return table


@torch.no_grad()
def gpt_to_hf(model: GPT):
    """A ``transformers.GPT2LMHeadModel`` with the same weights (and dtype/device) as ``model``."""
    from transformers import GPT2LMHeadModel

    try:  # skip the random initialisation: every weight is overwritten below
        from transformers.initialization import no_init_weights
    except ImportError:  # other transformers versions: initialise, then overwrite
        from contextlib import nullcontext as no_init_weights
    ours, weight = model.state_dict(), model.lm_head.weight
    with no_init_weights():
        hf = GPT2LMHeadModel(hf_config(model.config)).to(dtype=weight.dtype, device=weight.device)
    hf.tie_weights()  # (skipped with the initialisation) lm_head.weight is wte.weight when tie_weights
    theirs = {}
    for a, b, how in _name_table(model.config.n_layer):
        if how == "qkv":  # Conv1D c_attn: (d, 3d) = [Wq^T | Wk^T | Wv^T], bias (3d,)
            theirs[b.format("weight")] = torch.cat([ours[a.format(x, "weight")].T for x in "qkv"], dim=1)
            theirs[b.format("bias")] = torch.cat([ours[a.format(x, "bias")] for x in "qkv"])
        else:
            theirs[b] = ours[a].T if how == "transpose" else ours[a]
    hf.load_state_dict(theirs, strict=False)
    missing = set(hf.state_dict()) - set(theirs)
    if missing:
        raise RuntimeError(f"weights of GPT2LMHeadModel left unset: {sorted(missing)[:5]}")
    return hf.eval()


@torch.no_grad()
def gpt_from_hf(hf_model) -> GPT:
    """A :class:`GPT` with the weights of a ``transformers.GPT2LMHeadModel`` (same dtype and device).

    Raises:
        ValueError: the Hugging Face model uses options this GPT does not have (another activation, a custom
            inner width, layer-index scaling of the scores, another LayerNorm epsilon).
    """
    c = hf_model.config
    problems = [f"{k}={getattr(c, k)!r} (need {v!r})" for k, v in (
        ("activation_function", "gelu_new"), ("n_inner", None), ("scale_attn_by_inverse_layer_idx", False),
        ("scale_attn_weights", True), ("add_cross_attention", False)) if getattr(c, k, v) != v]
    if abs(c.layer_norm_epsilon - 1e-5) > 1e-12:
        problems.append(f"layer_norm_epsilon={c.layer_norm_epsilon} (need 1e-5)")
    if problems:
        raise ValueError("cannot map this GPT-2 to bigtut.gpt.GPT: " + "; ".join(problems))
    config = GPTConfig(vocab_size=c.vocab_size, block_size=c.n_positions, n_layer=c.n_layer, n_head=c.n_head,
                       d_model=c.n_embd, dropout=0.0, bias=True, tie_weights=bool(c.tie_word_embeddings))
    weight = hf_model.lm_head.weight
    with torch.device("meta"):  # no time spent on a random initialisation that is overwritten below
        model = GPT(config)
    model = model.to_empty(device=weight.device).to(weight.dtype)
    if config.tie_weights:
        model.lm_head.weight = model.tok_emb.weight  # to_empty made two tensors of the tied one
    theirs, ours = hf_model.state_dict(), {}
    d = config.d_model
    for a, b, how in _name_table(config.n_layer):
        if how == "qkv":
            w, bias = theirs[b.format("weight")], theirs[b.format("bias")]  # (d, 3d), (3d,)
            for j, x in enumerate("qkv"):
                ours[a.format(x, "weight")] = w[:, j * d : (j + 1) * d].T  # (d_out, d_in)
                ours[a.format(x, "bias")] = bias[j * d : (j + 1) * d]
        else:
            ours[a] = theirs[b].T if how == "transpose" else theirs[b]
    model.load_state_dict(ours, strict=True)
    return model.eval()


def load_gpt2_pretrained(name: str = "gpt2"):
    """Load genuine GPT-2 weights **from the local Hugging Face cache only** (never downloads).

    Returns:
        ``(model, tokenizer)``: a :class:`GPT` and the Hugging Face GPT-2 tokenizer.

    Raises:
        FileNotFoundError: the weights are not in the local cache (e.g. offline, never downloaded).
    """
    from transformers import GPT2LMHeadModel, GPT2TokenizerFast

    try:
        hf = GPT2LMHeadModel.from_pretrained(name, local_files_only=True, use_safetensors=True)
        tokenizer = GPT2TokenizerFast.from_pretrained(name, local_files_only=True)
    except (OSError, ValueError) as err:
        raise FileNotFoundError(f"GPT-2 weights {name!r} are not in the local Hugging Face cache (nothing is "
                                f"downloaded here): {type(err).__name__}") from None
    return gpt_from_hf(hf), tokenizer


# ---------------------------------------------------------------------- pretraining on Python's documentation
def lm_loss(model: GPT, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """The ``loss_fn`` for :func:`bigtut.training.fit`: mean next-token cross-entropy (nats) of ``(x, y)``."""
    x, y = batch
    return model(x, y).loss


@torch.no_grad()
def bits_per_character(model: GPT, text: str, tokenizer, batch_size: int = 32) -> float:
    """Validation loss of ``text`` in bits per character, comparable across tokenizers.

    The text is cut into consecutive windows of ``block_size`` tokens; every token after the first is
    predicted once. Bits per character = total nats / ln 2 / number of characters those tokens spell.
    """
    from bigtut.data.batching import sequential_lm_batches

    ids = torch.tensor(tokenizer.encode(text))
    device = model.lm_head.weight.device
    batches = sequential_lm_batches(ids, model.config.block_size, batch_size, device=device)
    was_training = model.training
    model.eval()
    nats = sum(float(model(x, y).loss) * y.numel() for x, y in batches)
    model.train(was_training)
    n_predicted = sum(y.numel() for _, y in batches)
    n_chars = len(tokenizer.decode(ids[1 : n_predicted + 1].tolist()))
    return nats / math.log(2) / n_chars


def python_docs_char_tokenizer():
    """The chapter's character tokenizer: the characters of the training split, plus ``<pad>`` and ``<unk>``."""
    from bigtut.data import python_docs_corpus
    from bigtut.tokenizers import CharTokenizer

    return CharTokenizer.train(python_docs_corpus("train"), special_tokens=("<pad>",), unk_token="<unk>")


@dataclass
class PretrainRun:
    """What :func:`pretrain_char_gpt` returns."""

    model: GPT
    tokenizer: object
    history: object  # bigtut.training.History
    val_bpc: float  # bits per character on the whole validation split


def pretrain_char_gpt(config: GPTConfig | None = None, *, steps: int = 900, batch_size: int = 12,
                      lr: float = 3e-3, warmup_steps: int = 50, seed: int = 0, device=None,
                      progress: bool = True, eval_every: int = 100) -> PretrainRun:
    """Pretrain a character-level GPT on Python's reference documentation (deterministic given ``seed``
    and the device). The validation split is the last 10 % of the topics sorted by name.
    """
    from bigtut.data import python_docs_corpus, random_lm_batch
    from bigtut.runtime import get_device, seed_everything
    from bigtut.training import fit

    device = torch.device(device) if device is not None else get_device()
    tokenizer = python_docs_char_tokenizer()
    config = config or GPTConfig(vocab_size=tokenizer.vocab_size)
    if config.vocab_size < tokenizer.vocab_size:
        raise ValueError(f"config.vocab_size={config.vocab_size} < the tokenizer's {tokenizer.vocab_size}")
    train_ids = torch.tensor(tokenizer.encode(python_docs_corpus("train")))
    val_ids = torch.tensor(tokenizer.encode(python_docs_corpus("val")))
    seed_everything(seed)
    model = GPT(config)
    batches = torch.Generator().manual_seed(seed)
    val_gen = torch.Generator().manual_seed(seed + 1)
    val_batches = [random_lm_batch(val_ids, config.block_size, 64, val_gen) for _ in range(4)]  # fixed subset
    history = fit(model, lm_loss, lambda: random_lm_batch(train_ids, config.block_size, batch_size, batches),
                  steps=steps, lr=lr, weight_decay=0.1, val_batches=val_batches, eval_every=eval_every,
                  grad_clip=1.0, warmup_steps=warmup_steps, schedule="cosine", device=device,
                  desc="pretrain", progress=progress)
    return PretrainRun(model, tokenizer, history, bits_per_character(model, python_docs_corpus("val"), tokenizer))


# ------------------------------------------------------------------------ fine-tuning: docstring classifier
class GPTClassifier(nn.Module):
    """A GPT body with a linear head over a pooled hidden state: ``"last"`` real token or ``"mean"`` of them.

    Inputs are right-padded; thanks to the causal mask real tokens never see the padding after them, so no
    padding mask is needed — only the pooling must skip the pads (``lengths``).
    """

    def __init__(self, gpt: GPT, num_classes: int, pool: str = "mean", dropout: float = 0.1):
        super().__init__()
        if pool not in ("last", "mean"):
            raise ValueError(f"pool must be 'last' or 'mean', got {pool!r}")
        if not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}")
        self.gpt, self.pool = gpt, pool
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(gpt.config.d_model, num_classes)

    def forward(self, idx: torch.Tensor | None = None, lengths: torch.Tensor | None = None,
                labels: torch.Tensor | None = None, *, inputs_embeds: torch.Tensor | None = None,
                return_attention: bool = False) -> GPTOutput | GPTOutputWithAttention:
        """Class logits ``(B, C)`` (and cross-entropy with ``labels`` ``(B,)``); ``lengths`` ``(B,)`` counts the
        real tokens of each row (default: all of them)."""
        h, attentions = self.gpt.hidden_states(idx, inputs_embeds=inputs_embeds, return_attention=return_attention)
        B, L, _ = h.shape
        if lengths is None:
            lengths = torch.full((B,), L, device=h.device)
        lengths = lengths.to(h.device)
        if lengths.shape != (B,) or int(lengths.min()) < 1 or int(lengths.max()) > L:
            raise ValueError(f"lengths must be (B={B},) with values in [1, {L}], got {lengths.tolist()}")
        if self.pool == "last":
            pooled = h[torch.arange(B, device=h.device), lengths - 1]  # (B, d)
        else:
            real = (torch.arange(L, device=h.device)[None, :] < lengths[:, None]).to(h.dtype)  # (B, L)
            pooled = (h * real[..., None]).sum(1) / lengths[:, None].to(h.dtype)  # (B, d)
        logits = self.head(self.drop(pooled))  # (B, C)
        loss = F.cross_entropy(logits, labels.to(h.device)) if labels is not None else None
        return _gpt_output(logits, loss, attentions, return_attention)


@dataclass
class ClassifierRun:
    """What :func:`train_docstring_classifier` returns."""

    model: GPTClassifier
    tokenizer: object
    history: object  # bigtut.training.History
    val_accuracy: float
    test_accuracy: float
    config: dict  # the arguments that rebuild it


@torch.no_grad()
def _accuracy(model: GPTClassifier, ids: torch.Tensor, lengths: torch.Tensor, labels: torch.Tensor) -> float:
    model.eval()
    device = model.head.weight.device
    preds = torch.cat([model(ids[i : i + 128].to(device), lengths[i : i + 128]).logits.argmax(-1).cpu()
                       for i in range(0, len(ids), 128)])
    return float((preds == labels).float().mean())


def train_docstring_classifier(pretrained: PretrainRun | None = None, *, pool: str = "mean", steps: int = 50,
                               batch_size: int = 32, lr: float = 1e-3, seed: int = 0, device=None,
                               progress: bool = True) -> ClassifierRun:
    """Fine-tune a GPT to tell which standard-library family a docstring comes from (``bigtut.data.LABELS``).

    With ``pretrained`` (from :func:`pretrain_char_gpt`) the body starts from a copy of its weights;
    without, from a random GPT of the default config — the from-scratch baseline. Each docstring is cut to
    the first ``block_size`` characters. Deterministic given the arguments and the device.
    """
    import copy

    from bigtut.data import LABELS, docstring_splits, encode_texts, minibatches
    from bigtut.runtime import get_device, seed_everything
    from bigtut.training import fit

    device = torch.device(device) if device is not None else get_device()
    seed_everything(seed)
    if pretrained is not None:
        tokenizer, body = pretrained.tokenizer, copy.deepcopy(pretrained.model)
    else:
        tokenizer = python_docs_char_tokenizer()
        body = GPT(GPTConfig(vocab_size=tokenizer.vocab_size))
    model = GPTClassifier(body, len(LABELS), pool=pool)
    pad = tokenizer.token_to_id("<pad>")
    data = {}
    for split, items in docstring_splits().items():
        ids, lengths = encode_texts([d.text for d in items], tokenizer, body.config.block_size, pad)
        data[split] = (ids, lengths, torch.tensor([d.label for d in items]))
    gen = torch.Generator().manual_seed(seed)

    def epochs():
        while True:
            yield from minibatches(*data["train"], batch_size=batch_size, generator=gen)

    stream = epochs()
    history = fit(model, lambda m, b: m(b[0], b[1], b[2]).loss, lambda: next(stream), steps=steps, lr=lr,
                  weight_decay=0.01, warmup_steps=min(10, steps - 1), schedule="cosine", grad_clip=1.0,
                  val_batches=[data["val"]], eval_every=max(1, steps // 6), device=device,
                  desc="fine-tune" if pretrained is not None else "from scratch", progress=progress)
    config = {"pretrained": pretrained is not None, "pool": pool, "steps": steps, "batch_size": batch_size,
              "lr": lr, "seed": seed}
    return ClassifierRun(model, tokenizer, history, _accuracy(model, *data["val"]), _accuracy(model, *data["test"]),
                         config)
