"""A GPT body with a classification head: the course's classifier contract on a decoder-only model.

Shape legend:  B batch   L positions   d d_model   C classes

The contract every classifier of chapters 06–10 honours (shared with
:class:`bigtut.bert.BertForSequenceClassification`):

* ``model(input_ids, attention_mask=None, *, inputs_embeds=None)`` returns class logits ``(B, C)``;
* ``model.get_input_embeddings()`` is the token-embedding table; position embeddings are added inside even
  when ``inputs_embeds`` is given;
* padding (``attention_mask`` 0) never changes the logits; ``return_attention=True`` adds the weights.
"""

from __future__ import annotations

import torch
from torch import nn

from bigtut.gpt.model import GPT
from bigtut.validation import check_attention_mask, check_dropout

__all__ = ["GPTClassifier"]


class GPTClassifier(nn.Module):
    """A :class:`~bigtut.gpt.GPT` body, then a linear head over a pooled hidden state: the ``"last"`` real
    token or the ``"mean"`` of the real tokens.

    Padded positions (``attention_mask`` 0) are hidden from attention and skipped by the pooling, so any
    padding, right or in between, leaves the logits unchanged.
    """

    def __init__(self, gpt: GPT, num_classes: int, pool: str = "mean", dropout: float = 0.1):
        super().__init__()
        if not isinstance(gpt, GPT):
            raise TypeError(f"GPTClassifier needs a bigtut.gpt.GPT body, got {type(gpt).__name__}")
        if pool not in ("last", "mean"):
            raise ValueError(f"pool must be 'last' or 'mean', got {pool!r}")
        if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
            raise ValueError(f"num_classes must be an int >= 2, got {num_classes!r}")
        self.gpt, self.pool, self.num_classes = gpt, pool, num_classes
        self.config = gpt.config
        self.drop = nn.Dropout(check_dropout("dropout", dropout))
        self.head = nn.Linear(gpt.config.d_model, num_classes)

    def get_input_embeddings(self) -> nn.Embedding:
        """The GPT body's token-embedding table ``(V, d)``."""
        return self.gpt.get_input_embeddings()

    def forward(self, input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None, *,
                inputs_embeds: torch.Tensor | None = None, return_attention: bool = False):
        """Class logits ``(B, C)``, or ``(logits, attentions)`` with ``return_attention=True``.

        Args:
            input_ids: ``(B, L)`` token ids; or ``inputs_embeds`` ``(B, L, d)`` token embeddings instead.
            attention_mask: ``(B, L)``, 1/True at real tokens, 0/False at padding (default: all real).
            return_attention: also return the attention weights, one ``(B, h, L, L)`` tensor per block.
        """
        h, attentions = self.gpt.hidden_states(input_ids, attention_mask=attention_mask,
                                               inputs_embeds=inputs_embeds, return_attention=return_attention)
        B, L, _ = h.shape  # h: (B, L, d)
        real = check_attention_mask(attention_mask, B, L)  # (B, L) bool or None
        if real is None:
            real = torch.ones(B, L, dtype=torch.bool, device=h.device)
        if not bool(real.any(-1).all()):
            raise ValueError("every row of attention_mask needs at least one real token (a 1)")
        if self.pool == "last":
            positions = torch.arange(L, device=h.device).expand(B, L)  # (B, L)
            last = positions.masked_fill(~real, -1).max(-1).values  # (B,): index of the last real token
            pooled = h[torch.arange(B, device=h.device), last]  # (B, d)
        else:
            weights = real.to(h.dtype)  # (B, L)
            pooled = (h * weights[..., None]).sum(1) / weights.sum(1, keepdim=True)  # (B, d)
        logits = self.head(self.drop(pooled))  # (B, C)
        return (logits, attentions) if return_attention else logits
