"""BERT's heads: masked-LM + next-sentence pretraining, and sequence classification on [CLS].

Shape legend:  B batch   L sequence length   d d_model   V vocabulary   C classes

MLM labels are the original id at the selected positions and ``-100`` elsewhere (the ``ignore_index`` of
``torch.nn.functional.cross_entropy``); the NSP label is 0 when B really follows A, 1 when B is random.
:class:`BertForSequenceClassification` honours the course's classifier contract (ids, then mask; logits
``(B, C)``; ``inputs_embeds``; ``get_input_embeddings``), as :class:`bigtut.gpt.GPTClassifier` does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from bigtut.bert.inputs import IGNORE_INDEX
from bigtut.bert.model import Bert, BertConfig, init_bert_weights

__all__ = ["BertForPreTraining", "BertForSequenceClassification", "pretraining_loss"]


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
            init_bert_weights(module)

    def get_input_embeddings(self) -> nn.Embedding:
        """The encoder's token-embedding table ``(V, d)`` (also the MLM decoder's weight)."""
        return self.bert.get_input_embeddings()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, *, inputs_embeds=None,
                return_attention=False):
        """Arguments as :meth:`Bert.forward`; returns ``(mlm_logits (B, L, V), nsp_logits (B, 2)[, attentions])``."""
        out = self.bert(input_ids, attention_mask, token_type_ids, inputs_embeds=inputs_embeds,
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
        init_bert_weights(self.classifier)

    def get_input_embeddings(self) -> nn.Embedding:
        """The encoder's token-embedding table ``(V, d)``."""
        return self.bert.get_input_embeddings()

    def forward(self, input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, *, inputs_embeds: torch.Tensor | None = None,
                return_attention: bool = False):
        """Class logits ``(B, C)``, or ``(logits, attentions)`` with ``return_attention=True``.

        Arguments as :meth:`Bert.forward`: ``input_ids`` ``(B, L)`` or ``inputs_embeds`` ``(B, L, d)``,
        ``attention_mask`` ``(B, L)`` (1 = real token), ``token_type_ids`` ``(B, L)``.
        """
        out = self.bert(input_ids, attention_mask, token_type_ids, inputs_embeds=inputs_embeds,
                        return_attention=return_attention)
        logits = self.classifier(self.dropout(out.pooled))  # (B, C)
        return (logits, out.attentions) if return_attention else logits


def pretraining_loss(model: BertForPreTraining, batch) -> tuple[torch.Tensor, torch.Tensor]:
    """``(mlm_loss, nsp_loss)`` of a batch ``(ids, token_type_ids, attention_mask, labels, nsp_labels)``.

    The MLM loss is the mean cross-entropy over the positions whose label is not ``-100``; the vocabulary
    logits are computed there only (85 % of the positions have no target). HF's ``loss`` is the sum of both.
    """
    ids, segments, mask, labels, nsp_labels = batch
    out = model.bert(ids, mask, segments)
    selected = labels != IGNORE_INDEX  # (B, L)
    mlm_logits = model.mlm_head(out.hidden[selected])  # (S, V), S = number of selected positions
    return F.cross_entropy(mlm_logits, labels[selected]), F.cross_entropy(model.nsp(out.pooled), nsp_labels)
