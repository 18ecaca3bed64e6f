"""Scores of trained models, shared by the chapters: bits per character of a language model, accuracy and
class probabilities of any classifier that honours the course's contract (``model(ids, mask) -> (B, C)``).

Every function runs the model in eval mode without gradients and restores its mode afterwards.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from bigtut.data.batching import sequential_lm_batches
from bigtut.runtime import eval_mode
from bigtut.validation import check_positive_int

__all__ = ["accuracy", "bits_per_character", "predict_logits"]


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def bits_per_character(model: nn.Module, text: str, tokenizer, batch_size: int = 32) -> float:
    """Validation loss of ``text`` in bits per character, comparable across tokenizers.

    The text is cut into consecutive windows of ``block_size`` tokens; every token after the first is
    predicted once. Bits per character = total nats / ln 2 / number of characters those tokens spell.
    ``model(x, y)`` must return ``(logits, mean loss in nats)`` as :class:`bigtut.gpt.GPT` does.
    """
    ids = torch.tensor(tokenizer.encode(text))
    batches = sequential_lm_batches(ids, model.config.block_size, batch_size, device=_device(model))
    with eval_mode(model):
        nats = sum(float(model(x, y).loss) * y.numel() for x, y in batches)
    n_predicted = sum(y.numel() for _, y in batches)
    n_chars = len(tokenizer.decode(ids[1 : n_predicted + 1].tolist()))
    return nats / math.log(2) / n_chars


@torch.no_grad()
def predict_logits(model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                   batch_size: int = 128) -> torch.Tensor:
    """Class logits ``(N, C)`` (on the CPU) of ``input_ids`` ``(N, L)``, in batches of ``batch_size`` rows."""
    check_positive_int("batch_size", batch_size)
    device, out = _device(model), []
    with eval_mode(model):
        for i in range(0, len(input_ids), batch_size):
            mask = None if attention_mask is None else attention_mask[i : i + batch_size].to(device)
            out.append(model(input_ids[i : i + batch_size].to(device), mask).cpu())  # (b, C)
    return torch.cat(out)


def accuracy(model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
             labels: torch.Tensor, batch_size: int = 128) -> float:
    """Fraction of rows whose arg-max logit is the label ``(N,)``."""
    predictions = predict_logits(model, input_ids, attention_mask, batch_size).argmax(-1)  # (N,)
    return float((predictions == labels.cpu()).float().mean())
