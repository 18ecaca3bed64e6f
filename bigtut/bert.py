"""BERT, read top to bottom: embeddings, post-LN encoder blocks, pooler, the pretraining and classification
heads, masked-token corruption, weight exchange with Hugging Face, and the recipe the later chapters reuse.

Shape legend used in every comment:
    B  batch size    L  sequence length    d  d_model    h  heads    V  vocabulary size    C  classes

Conventions shared with Hugging Face, so numbers can be compared one to one:

* ``attention_mask`` is ``(B, L)``, 1/True at real tokens and 0/False at padding. ``None`` means "attend to
  every position" (as in HF): pass the mask whenever a batch is padded.
* ``token_type_ids`` (segment ids) are 0 for sentence A (and [CLS]) and 1 for sentence B.
* MLM labels are the original id at the selected positions and ``-100`` elsewhere (the ``ignore_index`` of
  ``torch.nn.functional.cross_entropy``); the NSP label is 0 when B really follows A, 1 when B is random.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from types import SimpleNamespace
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from bigtut.runtime import check_positive_int
from bigtut.transformer import EncoderLayer

__all__ = [
    "IGNORE_INDEX", "SPECIAL_TOKENS", "Bert", "BertConfig", "BertForPreTraining", "BertForSequenceClassification",
    "BertOutput", "BertOutputWithAttention", "BertRecipe", "BertVocab", "TrainedBert", "bert_from_hf", "bert_to_hf", "build_tokenizer",
    "cache_folder", "classify", "default_cache_dir", "encode_for_classifier", "finetune", "mask_tokens", "pretrain",
    "pretraining_batches", "pretraining_loss", "train_docstring_classifier",
]

#: The special tokens BERT needs (the tokenizer decides their ids: see :class:`BertVocab`).
SPECIAL_TOKENS = ("[PAD]", "[CLS]", "[SEP]", "[MASK]")
IGNORE_INDEX = -100  # label of positions the MLM loss skips


@dataclass
class BertConfig:
    """Sizes of a BERT model. The defaults are the chapter's small model (:class:`BertRecipe` sets the
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
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"BertConfig.dropout must lie in [0, 1), got {self.dropout}")
        if not self.layer_norm_eps > 0:
            raise ValueError(f"layer_norm_eps must be positive, got {self.layer_norm_eps}")
        if not 0 <= self.pad_id < self.vocab_size:
            raise ValueError(f"pad_id={self.pad_id} must be a valid id in [0, vocab_size={self.vocab_size})")


# ----------------------------------------------------------------------------------------------------------
# The encoder
# ----------------------------------------------------------------------------------------------------------


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
        self.config = config
        self.embeddings = BertEmbeddings(config)
        self.layers = nn.ModuleList(  # chapter 03's encoder layer, in BERT's flavour: post-LN and GELU
            EncoderLayer(config.d_model, config.num_heads, config.d_ff, config.dropout, activation="gelu",
                         norm_first=False, layer_norm_eps=config.layer_norm_eps) for _ in range(config.num_layers))
        self.pooler = nn.Linear(config.d_model, config.d_model)
        self.apply(_init_weights)

    def input_embeddings(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Token embeddings ``(B, L, d)`` of ``input_ids`` ``(B, L)``: what ``inputs_embeds=`` expects."""
        self._check_ids(input_ids, self.config.vocab_size, "input_ids")
        return self.embeddings.token(input_ids)  # (B, L, d)

    def forward(
        self,
        input_ids: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        *,
        inputs_embeds: torch.Tensor | None = None,
        return_attention: bool = False,
    ) -> BertOutput | BertOutputWithAttention:
        """Encode a batch.

        Args:
            input_ids: ``(B, L)`` ids in ``[0, vocab_size)``; give either these or ``inputs_embeds``.
            token_type_ids: ``(B, L)`` segment ids (default all 0).
            attention_mask: ``(B, L)`` bool or 0/1, True/1 at real tokens (default: all real).
            inputs_embeds: ``(B, L, d)`` precomputed token embeddings (e.g. scaled ones for Integrated
                Gradients); position and segment embeddings are still added here.
            return_attention: also return every layer's attention weights ``(B, h, L, L)``.
        """
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("give exactly one of input_ids (B, L) and inputs_embeds (B, L, d)")
        if inputs_embeds is None:
            inputs_embeds = self.input_embeddings(input_ids)  # (B, L, d)
        if inputs_embeds.dim() != 3 or inputs_embeds.shape[-1] != self.config.d_model:
            raise ValueError(f"inputs_embeds must be (B, L, d_model={self.config.d_model}), "
                             f"got {tuple(inputs_embeds.shape)}")
        B, L, _ = inputs_embeds.shape
        if L > self.config.max_len:
            raise ValueError(f"sequence length {L} exceeds max_len={self.config.max_len}")
        if token_type_ids is None:
            token_type_ids = torch.zeros(B, L, dtype=torch.long, device=inputs_embeds.device)  # (B, L)
        self._check_shape(token_type_ids, (B, L), "token_type_ids")
        self._check_ids(token_type_ids, self.config.type_vocab_size, "token_type_ids")
        mask = None
        if attention_mask is not None:
            self._check_shape(attention_mask, (B, L), "attention_mask")
            mask = (attention_mask != 0)[:, None, None, :]  # (B, 1, 1, L): every query sees the real keys
        x = self.embeddings(inputs_embeds, token_type_ids)  # (B, L, d)
        attentions = []
        for layer in self.layers:
            x, weights = layer(x, mask, need_weights=return_attention)  # (B, L, d), (B, h, L, L) | None
            attentions.append(weights)
        pooled = torch.tanh(self.pooler(x[:, 0]))  # (B, d): the [CLS] position
        return BertOutputWithAttention(x, pooled, attentions) if return_attention else BertOutput(x, pooled)

    @staticmethod
    def _check_shape(t: torch.Tensor, shape: tuple[int, int], name: str) -> None:
        if tuple(t.shape) != shape:
            raise ValueError(f"{name} must have shape (B, L) = {shape}, got {tuple(t.shape)}")

    @staticmethod
    def _check_ids(ids: torch.Tensor, size: int, name: str) -> None:
        if ids.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8) or ids.dim() != 2:
            raise ValueError(f"{name} must be a 2-D integer tensor (B, L), got {ids.dtype} {tuple(ids.shape)}")
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= size):
            raise ValueError(f"{name} must lie in [0, {size}), got values from {int(ids.min())} to "
                             f"{int(ids.max())}")


def _init_weights(module: nn.Module, std: float = 0.02) -> None:
    """BERT's initialisation: N(0, 0.02) weights, zero biases, LayerNorm at identity."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, std=std)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)
    if isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


# ----------------------------------------------------------------------------------------------------------
# Heads
# ----------------------------------------------------------------------------------------------------------


class BertForPreTraining(nn.Module):
    """BERT with its two pretraining heads.

    * MLM: ``logits = LN(GELU(W h)) Eᵀ + b`` — the decoder reuses (ties) the token-embedding matrix ``E``.
    * NSP: a linear layer on the pooled [CLS] vector, 2 classes (0 = B follows A, 1 = B is random).

    ``forward`` returns ``(mlm_logits (B, L, V), nsp_logits (B, 2))``, plus the attention list when
    ``return_attention=True``.
    """

    def __init__(self, config: BertConfig):
        super().__init__()
        self.config = config
        self.bert = Bert(config)
        self.mlm_dense = nn.Linear(config.d_model, config.d_model)
        self.mlm_norm = nn.LayerNorm(config.d_model, eps=config.layer_norm_eps)
        self.mlm_bias = nn.Parameter(torch.zeros(config.vocab_size))
        self.nsp = nn.Linear(config.d_model, 2)
        for module in (self.mlm_dense, self.mlm_norm, self.nsp):
            _init_weights(module)

    def forward(self, input_ids=None, token_type_ids=None, attention_mask=None, *, inputs_embeds=None,
                return_attention=False):
        """Arguments as :meth:`Bert.forward`; returns ``(mlm_logits (B, L, V), nsp_logits (B, 2)[, attentions])``."""
        out = self.bert(input_ids, token_type_ids, attention_mask, inputs_embeds=inputs_embeds,
                        return_attention=return_attention)
        mlm_logits, nsp_logits = self.mlm_head(out.hidden), self.nsp(out.pooled)  # (B, L, V), (B, 2)
        return (mlm_logits, nsp_logits, out.attentions) if return_attention else (mlm_logits, nsp_logits)

    def mlm_head(self, hidden: torch.Tensor) -> torch.Tensor:
        """Vocabulary logits ``(..., V)`` of hidden states ``(..., d)`` (all of them, or the selected ones)."""
        h = self.mlm_norm(F.gelu(self.mlm_dense(hidden)))  # (..., d)
        return h @ self.bert.embeddings.token.weight.T + self.mlm_bias  # (..., V): the tied decoder


class BertForSequenceClassification(nn.Module):
    """BERT + dropout + a linear classifier on the pooled [CLS] vector.

    ``forward`` returns logits ``(B, C)`` — or ``(logits, attentions)`` when ``return_attention=True``.
    """

    def __init__(self, config: BertConfig):
        super().__init__()
        self.config = config
        self.bert = Bert(config)
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(config.d_model, config.num_labels)
        _init_weights(self.classifier)

    def input_embeddings(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Token embeddings ``(B, L, d)``, the input of ``forward(inputs_embeds=...)``."""
        return self.bert.input_embeddings(input_ids)

    def forward(self, input_ids=None, token_type_ids=None, attention_mask=None, *, inputs_embeds=None,
                return_attention=False):
        """Arguments as :meth:`Bert.forward`; returns logits ``(B, C)``, or ``(logits, attentions)``."""
        out = self.bert(input_ids, token_type_ids, attention_mask, inputs_embeds=inputs_embeds,
                        return_attention=return_attention)
        logits = self.classifier(self.dropout(out.pooled))  # (B, C)
        return (logits, out.attentions) if return_attention else logits


def pretraining_loss(model: BertForPreTraining, batch) -> tuple[torch.Tensor, torch.Tensor]:
    """``(mlm_loss, nsp_loss)`` of a batch ``(ids, token_type_ids, attention_mask, labels, nsp_labels)``.

    The MLM loss is the mean cross-entropy over the positions whose label is not ``-100``; the vocabulary
    logits are computed there only (85 % of the positions have no target). HF's ``loss`` is the sum of both.
    """
    ids, segments, mask, labels, nsp_labels = batch
    out = model.bert(ids, segments, mask)
    selected = labels != IGNORE_INDEX  # (B, L)
    mlm_logits = model.mlm_head(out.hidden[selected])  # (S, V), S = number of selected positions
    return F.cross_entropy(mlm_logits, labels[selected]), F.cross_entropy(model.nsp(out.pooled), nsp_labels)


# ----------------------------------------------------------------------------------------------------------
# Masked-language-model corruption
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BertVocab:
    """What :func:`mask_tokens` needs to know about a vocabulary: its size and the special ids."""

    size: int
    pad_id: int
    cls_id: int
    sep_id: int
    mask_id: int
    unk_id: int | None = None

    @property
    def special_ids(self) -> tuple[int, ...]:
        """Ids that are never selected for prediction (and never drawn as random replacements)."""
        ids = (self.pad_id, self.cls_id, self.sep_id, self.mask_id, self.unk_id)
        return tuple(sorted({i for i in ids if i is not None}))

    @classmethod
    def from_tokenizer(cls, tokenizer) -> BertVocab:
        """Read ``[PAD] [CLS] [SEP] [MASK]`` (and ``[UNK]`` if present) from a bigtut tokenizer."""
        try:
            ids = [tokenizer.token_to_id(t) for t in SPECIAL_TOKENS]
        except (ValueError, KeyError, AttributeError) as err:
            raise ValueError(f"the tokenizer needs the special tokens {SPECIAL_TOKENS}: {err}") from None
        unk = tokenizer.token_to_id("[UNK]") if "[UNK]" in getattr(tokenizer, "special_tokens", ()) else None
        return cls(tokenizer.vocab_size, *ids, unk_id=unk)


def mask_tokens(ids: torch.Tensor, vocab, mask_prob: float = 0.15,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Corrupt ``ids`` for masked-language modelling with BERT's 80/10/10 rule.

    Every non-special position is selected independently with probability ``mask_prob``. A selected position
    becomes [MASK] with probability 0.8, a random non-special token with 0.1, and stays unchanged with 0.1.
    Special tokens ([PAD], [CLS], [SEP], [MASK], [UNK]) are never selected.

    Args:
        ids: integer tensor of any shape, e.g. ``(B, L)``.
        vocab: a :class:`BertVocab`, or a tokenizer with the special tokens (read by ``BertVocab.from_tokenizer``).
        mask_prob: selection probability, in ``(0, 1]``.
        generator: a seeded ``torch.Generator`` on ``ids``' device, for reproducible masks.

    Returns:
        ``(masked_ids, labels)``, both shaped like ``ids``: labels are the original ids at the selected
        positions and ``-100`` everywhere else.
    """
    if not isinstance(vocab, BertVocab):
        vocab = BertVocab.from_tokenizer(vocab)
    if not isinstance(ids, torch.Tensor) or ids.is_floating_point() or ids.is_complex() or ids.dtype == torch.bool:
        raise ValueError(f"ids must be an integer tensor, got {type(ids).__name__} "
                         f"{getattr(ids, 'dtype', '')}")
    if isinstance(mask_prob, bool) or not isinstance(mask_prob, (int, float)) or not 0.0 < mask_prob <= 1.0:
        raise ValueError(f"mask_prob must lie in (0, 1], got {mask_prob!r}")
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= vocab.size):
        raise ValueError(f"ids must lie in [0, {vocab.size}), got values from {int(ids.min())} to {int(ids.max())}")
    ids = ids.long()
    specials = torch.tensor(vocab.special_ids, device=ids.device)  # (S,)
    ordinary = torch.ones(vocab.size, dtype=torch.bool, device=ids.device)  # (V,)
    ordinary[specials] = False
    candidates = ordinary.nonzero().squeeze(1)  # (V - S,): ids a random replacement may take
    probs = torch.full(ids.shape, float(mask_prob), device=ids.device)  # (B, L)
    probs[torch.isin(ids, specials)] = 0.0
    selected = torch.bernoulli(probs, generator=generator).bool()  # (B, L)
    labels = torch.where(selected, ids, IGNORE_INDEX)  # (B, L)
    decide = torch.rand(ids.shape, generator=generator, device=ids.device)  # (B, L): one die per position
    random_tokens = candidates[torch.randint(len(candidates), ids.shape, generator=generator,
                                             device=ids.device)]  # (B, L)
    masked = ids.clone()  # (B, L)
    masked[selected & (decide < 0.8)] = vocab.mask_id  # 80 %: [MASK]
    swap = selected & (decide >= 0.8) & (decide < 0.9)  # 10 %: a random token; the last 10 % stay
    masked[swap] = random_tokens[swap]
    return masked, labels


# ----------------------------------------------------------------------------------------------------------
# Weight exchange with Hugging Face transformers
# ----------------------------------------------------------------------------------------------------------

#: Our parameter names -> Hugging Face's, for one encoder block (prefix ``layers.{i}.`` / ``encoder.layer.{i}.``).
_LAYER_NAMES = {
    "self_attn.q_proj": "attention.self.query", "self_attn.k_proj": "attention.self.key",
    "self_attn.v_proj": "attention.self.value", "self_attn.out_proj": "attention.output.dense",
    "norm1": "attention.output.LayerNorm", "linear1": "intermediate.dense", "linear2": "output.dense",
    "norm2": "output.LayerNorm",
}
_BASE_NAMES = {
    "embeddings.token": "embeddings.word_embeddings", "embeddings.position": "embeddings.position_embeddings",
    "embeddings.segment": "embeddings.token_type_embeddings", "embeddings.norm": "embeddings.LayerNorm",
    "pooler": "pooler.dense",
}
_HEAD_NAMES = {  # per model class: our head modules -> HF's
    "BertForPreTraining": {"mlm_dense": "cls.predictions.transform.dense",
                           "mlm_norm": "cls.predictions.transform.LayerNorm", "nsp": "cls.seq_relationship"},
    "BertForSequenceClassification": {"classifier": "classifier"},
    "Bert": {},
}


def _name_map(model: nn.Module) -> dict[str, str]:
    """``{our state-dict key: HF state-dict key}`` for every tensor of ``model``."""
    kind = type(model).__name__
    base = "" if kind == "Bert" else "bert."
    modules = dict(_BASE_NAMES)
    for i in range(model.config.num_layers):
        modules.update({f"layers.{i}.{ours}": f"encoder.layer.{i}.{theirs}" for ours, theirs in _LAYER_NAMES.items()})
    modules = {f"{base}{ours}": f"{base}{theirs}" for ours, theirs in modules.items()} | _HEAD_NAMES[kind]
    names = {}
    for ours, theirs in modules.items():
        names[f"{ours}.weight"] = f"{theirs}.weight"
        if ours not in (f"{base}embeddings.token", f"{base}embeddings.position", f"{base}embeddings.segment"):
            names[f"{ours}.bias"] = f"{theirs}.bias"  # every Linear and LayerNorm has a bias; embeddings do not
    if kind == "BertForPreTraining":
        names["mlm_bias"] = "cls.predictions.bias"
    return names


def _hf_config(config: BertConfig):
    import transformers

    return transformers.BertConfig(
        vocab_size=config.vocab_size, hidden_size=config.d_model, num_hidden_layers=config.num_layers,
        num_attention_heads=config.num_heads, intermediate_size=config.d_ff, hidden_act="gelu",
        hidden_dropout_prob=config.dropout, attention_probs_dropout_prob=config.dropout,
        max_position_embeddings=config.max_len, type_vocab_size=config.type_vocab_size,
        layer_norm_eps=config.layer_norm_eps, pad_token_id=config.pad_id, num_labels=config.num_labels,
        tie_word_embeddings=True)


def bert_to_hf(model: Bert | BertForPreTraining | BertForSequenceClassification):
    """Copy a bigtut BERT into the matching ``transformers`` model (``BertModel``, ``BertForPreTraining`` or
    ``BertForSequenceClassification``), in eval mode, on the same device and dtype."""
    import transformers

    kind = type(model).__name__
    if kind not in _HEAD_NAMES:
        raise TypeError(f"expected a bigtut Bert, BertForPreTraining or BertForSequenceClassification, got {kind}")
    hf_class = {"Bert": transformers.BertModel}.get(kind) or getattr(transformers, kind)
    param = next(model.parameters())
    hf = hf_class(_hf_config(model.config)).to(device=param.device, dtype=param.dtype).eval()
    ours = model.state_dict()
    theirs = {hf_key: ours[key] for key, hf_key in _name_map(model).items()}
    if kind == "BertForPreTraining":  # the tied decoder: HF keeps the names, the tensors are the same
        theirs["cls.predictions.decoder.weight"] = ours["bert.embeddings.token.weight"]
        theirs["cls.predictions.decoder.bias"] = ours["mlm_bias"]
    missing, unexpected = hf.load_state_dict(theirs, strict=False)
    missing = [k for k in missing if not k.endswith(("position_ids", "token_type_ids"))]
    if missing or unexpected:
        raise RuntimeError(f"weight mapping incomplete: missing {missing}, unexpected {unexpected}")
    return hf


def bert_from_hf(hf_model) -> Bert | BertForPreTraining | BertForSequenceClassification:
    """Copy a ``transformers`` ``BertModel``, ``BertForPreTraining`` or ``BertForSequenceClassification`` into
    the matching bigtut model (eval mode, same device and dtype).

    Raises:
        ValueError: the HF config uses something bigtut's BERT does not have (another activation, relative
            positions, a decoder, a model without pooler).
    """
    kind = {"BertModel": "Bert"}.get(type(hf_model).__name__, type(hf_model).__name__)
    if kind not in _HEAD_NAMES:
        raise TypeError(f"expected a transformers BertModel, BertForPreTraining or BertForSequenceClassification, "
                        f"got {type(hf_model).__name__}")
    c = hf_model.config
    if c.hidden_act != "gelu":
        raise ValueError(f"bigtut's BERT uses exact GELU; the HF config has hidden_act={c.hidden_act!r}")
    if getattr(c, "position_embedding_type", "absolute") != "absolute" or c.is_decoder:
        raise ValueError("bigtut's BERT is an encoder with absolute positions; this HF config is not")
    config = BertConfig(
        vocab_size=c.vocab_size, max_len=c.max_position_embeddings, type_vocab_size=c.type_vocab_size,
        d_model=c.hidden_size, num_layers=c.num_hidden_layers, num_heads=c.num_attention_heads,
        d_ff=c.intermediate_size, dropout=c.hidden_dropout_prob,
        layer_norm_eps=c.layer_norm_eps, pad_id=c.pad_token_id or 0, num_labels=c.num_labels)
    model = {"Bert": Bert, "BertForPreTraining": BertForPreTraining,
             "BertForSequenceClassification": BertForSequenceClassification}[kind](config)
    theirs = hf_model.state_dict()
    if kind == "Bert" and "pooler.dense.weight" not in theirs:
        raise ValueError("this BertModel has no pooler (add_pooling_layer=False); bigtut's Bert always has one")
    param = next(hf_model.parameters())
    model.to(device=param.device, dtype=param.dtype).eval()  # before loading: no round trip through float32
    model.load_state_dict({key: theirs[hf_key] for key, hf_key in _name_map(model).items()})
    return model


# ----------------------------------------------------------------------------------------------------------
# The course's recipe: pretrain on the Python docs, fine-tune on docstrings, cache the result
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BertRecipe:
    """Every setting of :func:`train_docstring_classifier`; the cache is keyed by all of them."""

    seed: int = 0
    vocab_size: int = 1024  # byte-level BPE ids, the 4 special tokens included
    d_model: int = 64
    num_layers: int = 2
    num_heads: int = 4
    d_ff: int = 256
    max_len: int = 64  # tokens, [CLS] and [SEP]s included
    dropout: float = 0.0  # pretraining underfits and, on this task, fine-tuning did better without it
    mask_prob: float = 0.15
    pretrain_on_docstrings: bool = True  # add the training docstrings' text (never labels) to the docs topics
    pretrain_steps: int = 1200  # 0: no pretraining, fine-tune a randomly initialised BERT
    pretrain_batch: int = 32
    pretrain_lr: float = 2e-3
    finetune_steps: int = 450
    finetune_batch: int = 16
    finetune_lr: float = 1e-3

    def __post_init__(self):
        if self.pretrain_steps < 0 or self.finetune_steps < 1:
            raise ValueError(f"need pretrain_steps >= 0 and finetune_steps >= 1, got {self.pretrain_steps}, "
                             f"{self.finetune_steps}")

    def config(self, tokenizer, **changes) -> BertConfig:
        """The model's :class:`BertConfig` for this recipe and tokenizer."""
        settings = dict(vocab_size=tokenizer.vocab_size, max_len=self.max_len, d_model=self.d_model,
                        num_layers=self.num_layers, num_heads=self.num_heads, d_ff=self.d_ff,
                        dropout=self.dropout, pad_id=tokenizer.token_to_id("[PAD]"))
        return BertConfig(**{**settings, **changes})

    def key(self) -> str:
        """A short hash of the settings (the cache folder's name)."""
        text = json.dumps({"format": 1, **asdict(self)}, sort_keys=True)
        return hashlib.sha1(text.encode()).hexdigest()[:10]


def build_tokenizer(recipe: BertRecipe | None = None):
    """The recipe's byte-level BPE tokenizer (``recipe.vocab_size`` ids), trained on the training topics of the
    Python docs and the training docstrings; the special tokens are ``[PAD] [CLS] [SEP] [MASK]``."""
    from bigtut.data import docstring_splits, python_docs_corpus
    from bigtut.tokenizers import BPETokenizer

    recipe = recipe or BertRecipe()
    text = python_docs_corpus("train") + "\n".join(d.text for d in docstring_splits()["train"])
    return BPETokenizer.train(text, recipe.vocab_size, special_tokens=SPECIAL_TOKENS)


def _trim(lengths: torch.Tensor, *tensors: torch.Tensor):
    """Cut ``(N, L)`` tensors to the longest row and add the ``(N, L')`` attention mask."""
    width = int(lengths.max())
    mask = torch.arange(width)[None, :] < lengths[:, None]  # (N, L')
    return (*(t[:, :width] for t in tensors), mask)


def pretraining_batches(documents, tokenizer, recipe: BertRecipe, seed: int, batch_size: int | None = None):
    """A callable returning fresh pretraining batches ``(masked_ids, token_type_ids, attention_mask, labels,
    nsp_labels)`` — new sentence pairs and a new mask on every call, reproducible from ``seed``."""
    import random

    from bigtut.data.sentences import NSPSampler, encode_pairs

    sampler, vocab = NSPSampler(documents), BertVocab.from_tokenizer(tokenizer)
    rng, gen = random.Random(seed), torch.Generator().manual_seed(seed)
    cached = SimpleNamespace(encode=lru_cache(maxsize=None)(tokenizer.encode))  # each sentence encoded once

    def next_batch():
        pairs = [sampler.sample(rng) for _ in range(batch_size or recipe.pretrain_batch)]
        ids, segments, lengths, nsp = encode_pairs(pairs, cached, recipe.max_len, vocab.cls_id, vocab.sep_id,
                                                   vocab.pad_id)  # (B, L), (B, L), (B,), (B,)
        ids, segments, mask = _trim(lengths, ids, segments)  # (B, L') x3
        masked, labels = mask_tokens(ids, vocab, recipe.mask_prob, generator=gen)  # (B, L') x2
        return masked, segments, mask, labels, nsp

    return next_batch


def pretrain(model: BertForPreTraining, tokenizer, recipe: BertRecipe, *, progress: bool = True,
             device=None) -> dict:
    """MLM + NSP pretraining on sentence pairs of the training documents (:func:`docs_sentences`).

    Returns:
        ``{"total", "mlm", "nsp"}`` -> :class:`bigtut.training.History`, validated on held-out documents.
    """
    from bigtut.data.sentences import docs_sentences
    from bigtut.training import History, fit

    docs = {split: docs_sentences(split, docstrings=recipe.pretrain_on_docstrings) for split in ("train", "val")}
    train_batches = pretraining_batches(docs["train"], tokenizer, recipe, seed=recipe.seed)
    val_source = pretraining_batches(docs["val"], tokenizer, recipe, seed=recipe.seed + 1, batch_size=64)
    val_batches = [val_source() for _ in range(2)]  # a fixed validation set
    logs = {True: [], False: []}  # (mlm, nsp) per call, in training / in evaluation

    def loss_fn(model, batch):
        mlm, nsp = pretraining_loss(model, batch)
        logs[model.training].append((mlm.item(), nsp.item()))
        return mlm + nsp

    steps = recipe.pretrain_steps
    total = fit(model, loss_fn, train_batches, steps=steps, lr=recipe.pretrain_lr, val_batches=val_batches,
                eval_every=max(steps // 6, 1), warmup_steps=steps // 10, schedule="cosine", grad_clip=1.0,
                device=device, desc="pretrain", progress=progress)
    histories = {"total": total}
    for i, name in enumerate(("mlm", "nsp")):
        val, n = [v[i] for v in logs[False]], len(val_batches)
        histories[name] = History(total.step, [t[i] for t in logs[True]], total.val_step,
                                  [sum(val[j : j + n]) / n for j in range(0, len(val), n)], total.seconds)
    return histories


def encode_for_classifier(texts, tokenizer, max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``[CLS] text [SEP]`` rows, cut to ``max_len`` and to the longest row: ``(ids, attention_mask)``, ``(N, L)``."""
    from bigtut.data.batching import encode_texts

    vocab = BertVocab.from_tokenizer(tokenizer)
    ids, lengths = encode_texts(texts, tokenizer, max_len, vocab.pad_id, prefix=[vocab.cls_id],
                                suffix=[vocab.sep_id])  # (N, max_len), (N,)
    return _trim(lengths, ids)  # (N, L), (N, L)


def finetune(encoder: Bert, tokenizer, recipe: BertRecipe, *, progress: bool = True, device=None):
    """Train a docstring-family classifier whose encoder starts from a copy of ``encoder``'s weights.

    Returns:
        ``(classifier, history)``, validated on the docstrings' validation split.
    """
    from bigtut.data import LABELS, docstring_splits
    from bigtut.training import fit

    classifier = BertForSequenceClassification(recipe.config(tokenizer, num_labels=len(LABELS)))
    classifier.bert.load_state_dict(encoder.state_dict())
    data, splits = {}, docstring_splits()
    for name in ("train", "val"):  # the test split stays untouched until the final evaluation
        ids, mask = encode_for_classifier([d.text for d in splits[name]], tokenizer, recipe.max_len)  # (N, L) x2
        data[name] = (ids, mask, torch.tensor([d.label for d in splits[name]]))
    gen, queue = torch.Generator().manual_seed(recipe.seed), []

    def next_batch():  # epochs of shuffled mini-batches
        nonlocal queue
        if len(queue) < recipe.finetune_batch:
            queue += torch.randperm(len(data["train"][2]), generator=gen).tolist()
        idx, queue = queue[: recipe.finetune_batch], queue[recipe.finetune_batch :]
        return tuple(t[idx] for t in data["train"])

    def loss_fn(model, batch):
        ids, mask, labels = batch
        return F.cross_entropy(model(ids, attention_mask=mask), labels)

    steps = recipe.finetune_steps
    history = fit(classifier, loss_fn, next_batch, steps=steps, lr=recipe.finetune_lr, val_batches=[data["val"]],
                  eval_every=max(steps // 6, 1), warmup_steps=steps // 10, schedule="cosine", device=device,
                  desc="fine-tune", progress=progress)
    return classifier, history


@torch.no_grad()
def classify(model: BertForSequenceClassification, tokenizer, texts, batch_size: int = 64) -> torch.Tensor:
    """Class probabilities ``(N, C)`` (on the CPU) of ``texts``, encoded as in training (``[CLS] text [SEP]``)."""
    if isinstance(texts, str):
        raise TypeError("texts must be a list of strings, got a single string; wrap it in a list")
    was_training, device = model.training, next(model.parameters()).device
    model.eval()
    probs = [torch.zeros(0, model.config.num_labels)]
    for i in range(0, len(texts), batch_size):
        ids, mask = encode_for_classifier(texts[i : i + batch_size], tokenizer, model.config.max_len)  # (B, L)
        probs.append(model(ids.to(device), attention_mask=mask.to(device)).softmax(-1).cpu())  # (B, C)
    model.train(was_training)
    return torch.cat(probs)


@dataclass
class TrainedBert:
    """What :func:`train_docstring_classifier` returns."""

    classifier: BertForSequenceClassification  # fine-tuned, eval mode
    pretrainer: BertForPreTraining  # after pretraining, before fine-tuning
    tokenizer: object  # the BPETokenizer both use: encode new text with it (or with `classify`)
    recipe: BertRecipe
    histories: dict  # "total", "mlm", "nsp" (absent without pretraining), "finetune" -> History


def default_cache_dir() -> Path:
    """``$BIGTUT_RUNS``, else ``runs/`` at the root of the source checkout (git-ignored), else ``./runs``."""
    if os.environ.get("BIGTUT_RUNS"):
        return Path(os.environ["BIGTUT_RUNS"])
    root = Path(__file__).resolve().parents[1]
    return root / "runs" if (root / "pyproject.toml").exists() else Path.cwd() / "runs"


def _source_hash() -> str:
    """First 8 hex digits of the SHA-1 of this file's bytes: any edit to the code gives a new cache folder."""
    return hashlib.sha1(Path(__file__).read_bytes()).hexdigest()[:8]


def cache_folder(recipe: BertRecipe, cache_dir: str | Path | None = None) -> Path:
    """``cache_dir/bert_docstrings_<recipe key>_v<bigtut version>_<source hash>``: a change of the settings, of
    the package version or of ``bigtut/bert.py`` never loads a classifier trained by other code."""
    from bigtut import __version__

    name = f"bert_docstrings_{recipe.key()}_v{__version__}_{_source_hash()}"
    return Path(cache_dir or default_cache_dir()) / name


def _write_atomically(folder: Path, write) -> Path:
    """Call ``write(tmp)`` on a fresh temporary folder next to ``folder``, then rename it to ``folder``: readers
    see a complete folder or none. If ``folder`` appeared meanwhile (another process), keep it, drop ours."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=folder.parent))
    try:
        write(tmp)
        try:
            os.rename(tmp, folder)  # atomic; fails if folder exists and is not empty
        except OSError:
            if not folder.exists():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return folder


def train_docstring_classifier(recipe: BertRecipe | None = None, *, cache_dir: str | Path | None = None,
                               reuse: bool = True, save: bool = True, progress: bool = True,
                               device=None) -> TrainedBert:
    """Rebuild the chapter-05 docstring classifier: pretrain (MLM + NSP), then fine-tune — deterministic for a
    given recipe and device.

    With ``reuse`` the models are read from :func:`cache_folder` (keyed by the recipe, the package version and
    the source of this module) when a run saved them there (safetensors weights, the tokenizer as JSON);
    otherwise the recipe runs (about 40 s on a 2-core CPU) and, with ``save``, writes that folder atomically.
    Chapters 06–09 call it with the defaults.
    """
    from bigtut.runtime import get_device, seed_everything
    from bigtut.tokenizers import load_tokenizer
    from bigtut.training import History, load_checkpoint, save_checkpoint

    recipe = recipe or BertRecipe()
    device = torch.device(device) if device is not None else get_device()
    folder = cache_folder(recipe, cache_dir)
    if reuse and (folder / "classifier.safetensors").exists():
        tokenizer = load_tokenizer(folder / "tokenizer.json")
        pretrainer = BertForPreTraining(recipe.config(tokenizer))
        classifier = BertForSequenceClassification(BertConfig(**json.loads((folder / "config.json").read_text())))
        load_checkpoint(pretrainer, folder / "pretrainer.safetensors")
        meta = load_checkpoint(classifier, folder / "classifier.safetensors")
        histories = {name: History(**h) for name, h in meta["histories"].items()}
        return TrainedBert(classifier.to(device).eval(), pretrainer.to(device).eval(), tokenizer, recipe, histories)
    tokenizer = build_tokenizer(recipe)
    seed_everything(recipe.seed)
    pretrainer = BertForPreTraining(recipe.config(tokenizer))
    histories = {}
    if recipe.pretrain_steps:
        histories = pretrain(pretrainer, tokenizer, recipe, progress=progress, device=device)
    seed_everything(recipe.seed)
    classifier, histories["finetune"] = finetune(pretrainer.bert, tokenizer, recipe, progress=progress,
                                                 device=device)
    if save:
        def write(tmp: Path) -> None:
            tokenizer.save(tmp / "tokenizer.json")
            (tmp / "config.json").write_text(json.dumps(asdict(classifier.config)))
            save_checkpoint(pretrainer, tmp / "pretrainer.safetensors", {"recipe": asdict(recipe)})
            save_checkpoint(classifier, tmp / "classifier.safetensors",
                            {"recipe": asdict(recipe), "histories": {k: asdict(h) for k, h in histories.items()}})

        _write_atomically(folder, write)
    return TrainedBert(classifier.to(device).eval(), pretrainer.to(device).eval(), tokenizer, recipe, histories)
