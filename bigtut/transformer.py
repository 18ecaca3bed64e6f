"""The encoder–decoder Transformer of "Attention Is All You Need", read top to bottom.

layers (:class:`EncoderLayer`, :class:`DecoderLayer`) -> stacks (:class:`Encoder`, :class:`Decoder`) ->
the model (:class:`Seq2SeqTransformer`) -> training loss (:func:`teacher_forcing_loss`) -> decoding
(:func:`greedy_decode`, :func:`beam_search`) -> the baseline it displaced (:class:`LSTMSeq2Seq`).

Shape legend:  B batch   S source positions   T target positions   D d_model   V target vocabulary
               K beam size   h heads

Masks are bool with ``True`` = "may attend" (:mod:`bigtut.attention`); PyTorch's ``nn.Transformer*`` use the
opposite (``True`` = blocked). Sequences are right-padded with ``config.pad_id``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from bigtut.attention import MultiHeadAttention, causal_mask, padding_mask
from bigtut.positional import SinusoidalPositionalEncoding
from bigtut.runtime import check_positive_int

__all__ = [
    "Decoder", "DecoderLayer", "Encoder", "EncoderLayer", "LSTMSeq2Seq", "Seq2SeqConfig", "Seq2SeqOutput",
    "Seq2SeqTransformer", "beam_search", "beam_step", "copy_from_torch", "decoder_self_mask", "greedy_decode",
    "sequence_log_prob", "teacher_forcing_loss",
]
ACTIVATIONS = {"relu": F.relu, "gelu": F.gelu}


def _check_layer_args(d_model: int, num_heads: int, d_ff: int, dropout: float, activation: str) -> None:
    for name, value in (("d_model", d_model), ("num_heads", num_heads), ("d_ff", d_ff)):
        check_positive_int(name, value)
    if d_model % num_heads:
        raise ValueError(f"d_model={d_model} is not divisible by num_heads={num_heads}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must lie in [0, 1), got {dropout}")
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
        _check_layer_args(d_model, num_heads, d_ff, dropout, activation)
        self.norm_first, self.activation = norm_first, ACTIVATIONS[activation]
        self.self_attn = MultiHeadAttention(d_model, num_heads, dropout)
        self.linear1, self.linear2 = nn.Linear(d_model, d_ff), nn.Linear(d_ff, d_model)
        self.norm1, self.norm2 = nn.LayerNorm(d_model, layer_norm_eps), nn.LayerNorm(d_model, layer_norm_eps)
        self.dropout, self.dropout1, self.dropout2 = nn.Dropout(dropout), nn.Dropout(dropout), nn.Dropout(dropout)

    def feed_forward(self, x: torch.Tensor) -> torch.Tensor:
        """``linear2(act(linear1(x)))`` at every position: ``(B, L, D) -> (B, L, d_ff) -> (B, L, D)``."""
        return self.dropout2(self.linear2(self.dropout(self.activation(self.linear1(x)))))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None,
                need_weights: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``x (B, S, D)``, ``mask`` broadcastable to ``(B, h, S, S)`` -> ``(x (B, S, D), weights (B, h, S, S))``."""
        def attend(y):
            out, w = self.self_attn(y, y, y, mask, need_weights=need_weights)  # (B, S, D), (B, h, S, S)
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
                memory_mask: torch.Tensor | None = None, need_weights: bool = False):
        """Args: ``x (B, T, D)``; ``memory (B, S, D)``; ``self_mask`` e.g. causal ``(T, T)`` or ``(B, T, T)``;
        ``memory_mask`` e.g. source padding ``(B, 1, S)``.

        Returns: ``(x (B, T, D), self weights (B, h, T, T), cross weights (B, h, T, S))`` (weights None unless
        ``need_weights``).
        """
        def self_attend(y):
            out, w = self.self_attn(y, y, y, self_mask, need_weights=need_weights)  # (B, T, D), (B, h, T, T)
            return self.dropout1(out), w

        def cross_attend(y):
            out, w = self.cross_attn(y, memory, memory, memory_mask, need_weights=need_weights)  # (B, h, T, S)
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

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, need_weights: bool = False):
        """``x (B, S, D)`` -> ``(x (B, S, D), [weights (B, h, S, S) per layer] or [])``."""
        weights = []
        for layer in self.layers:
            x, w = layer(x, mask, need_weights)
            weights += [w] if need_weights else []
        return (self.norm(x) if self.norm is not None else x), weights


class Decoder(Encoder):
    """``num_layers`` decoder layers (+ a final LayerNorm when pre-LN)."""

    def __init__(self, num_layers: int, d_model: int, num_heads: int, d_ff: int, dropout: float = 0.0,
                 activation: str = "relu", norm_first: bool = True, layer_norm_eps: float = 1e-5):
        super().__init__(num_layers, d_model, num_heads, d_ff, dropout, activation, norm_first, layer_norm_eps,
                         layer_class=DecoderLayer)

    def forward(self, x: torch.Tensor, memory: torch.Tensor, self_mask: torch.Tensor | None = None,
                memory_mask: torch.Tensor | None = None, need_weights: bool = False):
        """``x (B, T, D)``, ``memory (B, S, D)`` -> ``(x (B, T, D), [self weights], [cross weights])``."""
        self_ws, cross_ws = [], []
        for layer in self.layers:
            x, self_w, cross_w = layer(x, memory, self_mask, memory_mask, need_weights)
            if need_weights:
                self_ws.append(self_w)
                cross_ws.append(cross_w)
        return (self.norm(x) if self.norm is not None else x), self_ws, cross_ws


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
        _check_layer_args(self.d_model, self.num_heads, self.d_ff, self.dropout, self.activation)
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


def _right_padded_mask(ids: torch.Tensor, pad_id: int) -> torch.Tensor:
    """Key-padding mask ``(B, 1, L)`` of right-padded ``ids (B, L)`` via :func:`bigtut.attention.padding_mask`."""
    real = ids != pad_id  # (B, L)
    mask = padding_mask(real.sum(-1), ids.shape[1])  # (B, 1, L)
    if not torch.equal(mask[:, 0], real):
        raise ValueError(f"sequences must be right-padded: pad_id={pad_id} found before a real token")
    return mask


def decoder_self_mask(tgt: torch.Tensor, pad_id: int) -> torch.Tensor:
    """Decoder self-attention mask ``(B, T, T)``: position ``t`` may read positions ``<= t`` that are not padding."""
    return causal_mask(tgt.shape[1], tgt.device) & _right_padded_mask(tgt, pad_id)  # (T, T) & (B, 1, T)


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

    def encode(self, src: torch.Tensor, need_weights: bool = False):
        """``src (B, S)`` -> ``(memory (B, S, D), source mask (B, 1, S), [encoder weights])``."""
        src_mask = _right_padded_mask(src, self.config.pad_id)  # (B, 1, S)
        memory, weights = self.encoder(self._embed(src, self.src_embed), src_mask, need_weights)  # (B, S, D)
        return memory, src_mask, weights

    def decode(self, tgt: torch.Tensor, memory: torch.Tensor, src_mask: torch.Tensor, need_weights: bool = False):
        """``tgt (B, T)`` (starting with ``<bos>``) -> ``(logits (B, T, V), [self weights], [cross weights])``."""
        self_mask = decoder_self_mask(tgt, self.config.pad_id)  # (B, T, T)
        x, self_ws, cross_ws = self.decoder(self._embed(tgt, self.tgt_embed), memory, self_mask, src_mask,
                                            need_weights)  # (B, T, D)
        return self.out_proj(x), self_ws, cross_ws  # (B, T, V)

    def forward(self, src: torch.Tensor, tgt: torch.Tensor, need_weights: bool = False) -> Seq2SeqOutput:
        """Logits of the next target token at every target position (teacher forcing)."""
        memory, src_mask, enc_ws = self.encode(src, need_weights)
        logits, self_ws, cross_ws = self.decode(tgt, memory, src_mask, need_weights)
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


# --------------------------------------------------------------------------------------------- decoding
def _next_log_probs(model: nn.Module, seqs: torch.Tensor, memory: torch.Tensor, src_mask: torch.Tensor):
    """Log-probabilities ``(N, V)`` of the token after ``seqs (N, t)``; ``<pad>`` and ``<bos>`` are never chosen."""
    logits = model.decode(seqs, memory, src_mask)[0][:, -1]  # (N, V)
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))  # scores in >= float32
    logits[:, [model.config.pad_id, model.config.bos_id]] = float("-inf")
    return logits.log_softmax(-1)  # (N, V)


def _decode_len(model: nn.Module, max_len: int | None) -> int:
    max_len = model.config.max_len - 1 if max_len is None else max_len
    if not isinstance(max_len, int) or not 1 <= max_len < model.config.max_len:
        raise ValueError(f"max_len must lie in [1, {model.config.max_len - 1}] (one position holds <bos>), "
                         f"got {max_len!r}")
    return max_len


@torch.no_grad()
def greedy_decode(model: nn.Module, src: torch.Tensor, max_len: int | None = None) -> torch.Tensor:
    """Pick the most likely next token until every row has produced ``<eos>`` (or ``max_len`` tokens).

    Returns:
        ``(B, n)`` ids without ``<bos>``, ``n <= max_len``; each row ends with ``<eos>`` then ``<pad>``.
        The model is used in eval mode (its mode is restored).
    """
    c, max_len, was_training = model.config, _decode_len(model, max_len), model.training
    model.eval()
    memory, src_mask, _ = model.encode(src)  # (B, S, D), (B, 1, S)
    seqs = torch.full((src.shape[0], 1), c.bos_id, dtype=torch.long, device=src.device)  # (B, 1)
    done = torch.zeros(src.shape[0], dtype=torch.bool, device=src.device)  # (B,)
    for _ in range(max_len):
        token = _next_log_probs(model, seqs, memory, src_mask).argmax(-1)  # (B,)
        token = token.masked_fill(done, c.pad_id)  # finished rows only pad
        seqs = torch.cat([seqs, token[:, None]], dim=1)  # (B, t + 1)
        done |= token == c.eos_id
        if done.all():
            break
    model.train(was_training)
    return seqs[:, 1:]


@torch.no_grad()
def sequence_log_prob(model: nn.Module, src: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """Model score ``log p(out | src)`` ``(B,)`` of outputs ``out (B, n)`` as :func:`greedy_decode` returns them:
    the sum of the tokens' log-probabilities up to and including ``<eos>`` (the same score beam search ranks by)."""
    c, was_training = model.config, model.training
    model.eval()
    memory, src_mask, _ = model.encode(src)
    bos = torch.full_like(out[:, :1], c.bos_id)  # (B, 1)
    logits = model.decode(torch.cat([bos, out[:, :-1]], 1), memory, src_mask)[0]  # (B, n, V)
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
    logits[..., [c.pad_id, c.bos_id]] = float("-inf")
    token_lp = logits.log_softmax(-1).gather(-1, out[..., None])[..., 0]  # (B, n)
    model.train(was_training)
    return token_lp.masked_fill(out == c.pad_id, 0.0).sum(-1)  # (B,)


def beam_step(scores: torch.Tensor, log_probs: torch.Tensor, beam_size: int):
    """One step of beam search: extend every beam by every token, keep the ``beam_size`` best in total.

    Args:
        scores: running scores of the current beams ``(B, K)`` (``-inf`` for unused beams).
        log_probs: next-token log-probabilities per beam ``(B, K, V)``.

    Returns:
        ``(new_scores, parent, token)``, each ``(B, beam_size)``, best first: the new beam ``j`` is beam
        ``parent[:, j]`` extended by ``token[:, j]`` and scores ``new_scores[:, j]``.
    """
    B, K, V = log_probs.shape
    candidates = (scores[..., None] + log_probs).reshape(B, K * V)  # (B, K·V): every beam × every token
    new_scores, flat = candidates.topk(beam_size, dim=-1)  # (B, beam_size)
    return new_scores, flat // V, flat % V


@torch.no_grad()
def beam_search(model: nn.Module, src: torch.Tensor, beam_size: int = 4, max_len: int | None = None,
                keep_greedy: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Keep the ``beam_size`` highest-scoring prefixes (score = sum of log-probabilities) at every step.

    Plain beam search is *not* monotone in the beam size: the prefix greedy decoding would extend can drop
    out of the beam, and what replaces it can end lower. With ``keep_greedy`` the greedy output is scored
    too and returned where it wins, so the result never scores below :func:`greedy_decode`'s.

    Returns:
        ``(out (B, n), scores (B,))``: best outputs in :func:`greedy_decode`'s layout and their scores.
    """
    c, max_len, was_training = model.config, _decode_len(model, max_len), model.training
    check_positive_int("beam_size", beam_size)
    model.eval()
    B, K, dev = src.shape[0], beam_size, src.device
    memory, src_mask, _ = model.encode(src)
    memory, src_mask = memory.repeat_interleave(K, 0), src_mask.repeat_interleave(K, 0)  # (B·K, S, D), (B·K, 1, S)
    seqs = torch.full((B * K, 1), c.bos_id, dtype=torch.long, device=dev)  # (B·K, 1)
    dtype = torch.promote_types(memory.dtype, torch.float32)
    scores = torch.full((B, K), float("-inf"), device=dev, dtype=dtype)  # (B, K)
    scores[:, 0] = 0.0  # one live beam at the start, so the first step does not pick K copies
    done = torch.zeros(B, K, dtype=torch.bool, device=dev)  # (B, K)
    for _ in range(max_len):
        log_probs = _next_log_probs(model, seqs, memory, src_mask).view(B, K, -1)  # (B, K, V)
        finished_row = torch.full_like(log_probs[0, 0], float("-inf"))  # (V,)
        finished_row[c.pad_id] = 0.0  # a finished beam continues with <pad> at no cost
        log_probs = torch.where(done[..., None], finished_row, log_probs)  # (B, K, V)
        scores, parent, token = beam_step(scores, log_probs, K)  # (B, K) each
        dead = scores == float("-inf")  # more beams than possible sequences: fill with finished padding
        token = token.masked_fill(dead, c.pad_id)
        seqs = seqs.view(B, K, -1).gather(1, parent[..., None].expand(-1, -1, seqs.shape[1]))  # (B, K, t)
        seqs = torch.cat([seqs, token[..., None]], dim=-1).view(B * K, -1)  # (B·K, t + 1)
        done = done.gather(1, parent) | (token == c.eos_id) | dead  # (B, K)
        if done.all():
            break
    best = scores.argmax(-1)  # (B,)
    out, best_scores = seqs.view(B, K, -1)[torch.arange(B), best, 1:], scores[torch.arange(B), best]  # (B, n), (B,)
    if keep_greedy:
        greedy = greedy_decode(model, src, max_len)  # (B, n')
        greedy_scores = sequence_log_prob(model, src, greedy)  # (B,)
        width = max(out.shape[1], greedy.shape[1])
        out, greedy = (F.pad(t, (0, width - t.shape[1]), value=c.pad_id) for t in (out, greedy))
        wins = greedy_scores > best_scores  # (B,)
        out, best_scores = torch.where(wins[:, None], greedy, out), torch.where(wins, greedy_scores, best_scores)
    model.train(was_training)
    return out, best_scores


# --------------------------------------------------------------------------------------------- PyTorch's
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


# --------------------------------------------------------------------------------------------- the baseline
class LSTMSeq2Seq(nn.Module):
    """The RNN encoder–decoder Transformers displaced (Sutskever et al. 2014), *without* attention.

    The encoder LSTM reads the source; its final state (at each row's true length) is the decoder LSTM's
    initial state, the only path from input to output. It speaks the same ``encode``/``decode`` interface as
    :class:`Seq2SeqTransformer` (its "memory" is the stacked final state ``(B, 2·layers, H)``), so
    :func:`teacher_forcing_loss`, :func:`greedy_decode` and :func:`beam_search` work on it unchanged.
    """

    def __init__(self, config: Seq2SeqConfig, hidden_size: int, num_layers: int = 1):
        super().__init__()
        self.config, self.num_layers = config, num_layers
        self.src_embed = nn.Embedding(config.src_vocab_size, config.d_model)
        self.tgt_embed = nn.Embedding(config.tgt_vocab_size, config.d_model)
        self.encoder = nn.LSTM(config.d_model, hidden_size, num_layers, batch_first=True)
        self.decoder = nn.LSTM(config.d_model, hidden_size, num_layers, batch_first=True)
        self.out_proj = nn.Linear(hidden_size, config.tgt_vocab_size)

    def encode(self, src: torch.Tensor, need_weights: bool = False):
        src_mask = _right_padded_mask(src, self.config.pad_id)  # (B, 1, S)
        lengths = src_mask[:, 0].sum(-1).cpu()  # (B,)
        packed = nn.utils.rnn.pack_padded_sequence(self.src_embed(src), lengths, batch_first=True,
                                                   enforce_sorted=False)
        _, (h, c) = self.encoder(packed)  # (layers, B, H) each, taken at each row's last real token
        return torch.cat([h, c], 0).transpose(0, 1), src_mask, []  # (B, 2·layers, H)

    def decode(self, tgt: torch.Tensor, memory: torch.Tensor, src_mask: torch.Tensor, need_weights: bool = False):
        h, c = memory.transpose(0, 1).contiguous().chunk(2, dim=0)  # (layers, B, H) each
        out, _ = self.decoder(self.tgt_embed(tgt), (h.contiguous(), c.contiguous()))  # (B, T, H)
        return self.out_proj(out), [], []  # (B, T, V)

    def forward(self, src: torch.Tensor, tgt: torch.Tensor, need_weights: bool = False) -> Seq2SeqOutput:
        memory, src_mask, _ = self.encode(src)
        return Seq2SeqOutput(self.decode(tgt, memory, src_mask)[0], [], [], [])
