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
from bigtut.validation import check_attention_mask, check_model, check_positive_int, check_tensor

__all__ = ["accuracy", "bits_per_character", "predict_logits"]


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def bits_per_character(model: nn.Module, text: str, tokenizer, batch_size: int = 32) -> float:
    """Validation loss of ``text`` in bits per character, comparable across tokenizers.

    The text is cut into consecutive, non-overlapping windows of ``block_size`` tokens; every token after the
    first is predicted once, from the tokens before it in its window only (no sliding window: the first tokens of
    a window see little context). Bits per character = total nats / ln 2 / number of characters those tokens spell.
    ``model(x, y)`` must return ``(logits, mean loss in nats)`` as :class:`bigtut.gpt.GPT` does.

    Raises:
        TypeError: ``model`` not a language model with ``config.block_size``, ``text`` not a str, a tokenizer
            without ``encode``/``decode``.
        ValueError: an empty text, one shorter than ``block_size + 1`` tokens, ``batch_size`` not positive.
    """
    check_model(model)
    if not isinstance(getattr(getattr(model, "config", None), "block_size", None), int):
        raise TypeError(f"model must be a language model with config.block_size (a bigtut GPT), got "
                        f"{type(model).__name__}")
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    if not text:
        raise ValueError("text is empty: bits per character need at least block_size + 1 tokens of text")
    if not (callable(getattr(tokenizer, "encode", None)) and callable(getattr(tokenizer, "decode", None))):
        raise TypeError(f"tokenizer must have encode(text) and decode(ids), got {type(tokenizer).__name__}")
    check_positive_int("batch_size", batch_size)
    return _bits_per_character(model, text, tokenizer, batch_size)


@torch.no_grad()
def _bits_per_character(model: nn.Module, text: str, tokenizer, batch_size: int) -> float:
    """:func:`bits_per_character` on checked arguments."""
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
    """Fraction of rows whose arg-max logit is the label ``(N,)``, after checking the inputs and (on the first
    row) that the model returns class logits ``(B, C)``.

    Raises:
        TypeError: ``model`` not an ``nn.Module``; ids or labels not integer tensors.
        ValueError: ids not ``(N, L)`` or empty, a mask not ``(N, L)``, labels not ``(N,)`` or outside
            ``[0, C)``, a model that does not return ``(B, C)`` logits.
    """
    check_model(model)
    check_tensor("input_ids", input_ids, "(N, L)", dim=2, kind="int")
    n, length = input_ids.shape
    check_attention_mask(attention_mask, n, length)
    check_tensor("labels", labels, f"(N,) = ({n},)", dim=1, kind="int")
    if labels.shape[0] != n:
        raise ValueError(f"labels must have shape (N,) = ({n},), one per row of input_ids, got {tuple(labels.shape)}")
    check_positive_int("batch_size", batch_size)
    first = predict_logits(model, input_ids[:1], None if attention_mask is None else attention_mask[:1])
    if first.dim() != 2 or first.shape[0] != 1:
        raise ValueError(f"the model must return class logits (B, C), got shape {tuple(first.shape)} for B=1 row")
    classes = first.shape[1]
    if int(labels.min()) < 0 or int(labels.max()) >= classes:
        raise ValueError(f"labels must lie in [0, {classes}) (the model's C={classes} classes), got values from "
                         f"{int(labels.min())} to {int(labels.max())}")
    predictions = predict_logits(model, input_ids, attention_mask, batch_size).argmax(-1)  # (N,)
    return float((predictions == labels.cpu()).float().mean())
