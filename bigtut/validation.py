"""Argument checks shared by every module: one place that turns bad input into a clear error.

Each helper returns the value it checked (so ``self.width = check_positive_int("width", width)`` reads well)
and raises ``ValueError``/``TypeError`` naming the argument, what was given and what is needed.
"""

from __future__ import annotations

import math
from numbers import Real

import torch
from torch import nn

__all__ = [
    "check_attention_mask", "check_dropout", "check_model", "check_number", "check_positive_int", "check_shape",
    "check_tensor", "check_token_ids", "non_finite", "resolve_inputs",
]

_INTEGER_DTYPES = (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8)


def check_positive_int(name: str, value: object) -> int:
    """Return ``value`` if it is a positive int; else raise ``ValueError`` naming ``name`` and the value.

    The one check behind every size argument of the package (widths, lengths, head counts, steps).
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return value


def check_dropout(name: str, value: float) -> float:
    """Return ``value`` if it is a probability in ``[0, 1)`` (a dropout rate); else raise ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must lie in [0, 1), got {value!r}")
    return float(value)


def check_shape(tensor: torch.Tensor, shape: tuple[int, ...], name: str, legend: str = "") -> torch.Tensor:
    """Return ``tensor`` if its shape is ``shape``; ``legend`` (e.g. ``"(B, L)"``) names the axes in the error."""
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(tensor).__name__}")
    if tuple(tensor.shape) != tuple(shape):
        raise ValueError(f"{name} must have shape {legend + ' = ' if legend else ''}{tuple(shape)}, "
                         f"got {tuple(tensor.shape)}")
    return tensor


def check_token_ids(ids: torch.Tensor, vocab_size: int, name: str = "input_ids") -> torch.Tensor:
    """Return ``ids`` if it is a 2-D integer tensor ``(B, L)`` with values in ``[0, vocab_size)``."""
    if not isinstance(ids, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of token ids (B, L), got {type(ids).__name__}")
    if ids.dtype not in _INTEGER_DTYPES or ids.dim() != 2:
        raise ValueError(f"{name} must be a 2-D integer tensor (B, L), got {ids.dtype} {tuple(ids.shape)}")
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= vocab_size):
        raise ValueError(f"{name} must lie in [0, {vocab_size}), got values from {int(ids.min())} to "
                         f"{int(ids.max())}")
    return ids


def check_attention_mask(mask: torch.Tensor | None, batch: int, length: int) -> torch.Tensor | None:
    """Return ``mask`` as a bool ``(B, L)`` tensor (True/1 = real token), or None; raise on a wrong shape."""
    if mask is None:
        return None
    check_shape(mask, (batch, length), "attention_mask", "(B, L)")
    if mask.dtype != torch.bool and mask.is_floating_point() and not torch.all((mask == 0) | (mask == 1)):
        raise ValueError("attention_mask must hold 0/1 or True/False (1 = real token, 0 = padding)")
    return mask != 0  # (B, L) bool


def resolve_inputs(input_ids: torch.Tensor | None, inputs_embeds: torch.Tensor | None, embedding: torch.nn.Embedding,
                   name: str = "input_ids") -> torch.Tensor:
    """Token embeddings ``(B, L, d)``: ``embedding(input_ids)``, or ``inputs_embeds`` checked against its width.

    Exactly one of the two must be given: the classifier contract's way of feeding either ids or (for
    gradient methods such as Integrated Gradients) embeddings.
    """
    if (input_ids is None) == (inputs_embeds is None):
        raise ValueError(f"pass exactly one of {name} (B, L) and inputs_embeds (B, L, d)")
    if input_ids is not None:
        return embedding(check_token_ids(input_ids, embedding.num_embeddings, name))  # (B, L, d)
    if not isinstance(inputs_embeds, torch.Tensor) or inputs_embeds.dim() != 3 \
            or inputs_embeds.shape[-1] != embedding.embedding_dim:
        raise ValueError(f"inputs_embeds must be (B, L, d_model={embedding.embedding_dim}), "
                         f"got {tuple(getattr(inputs_embeds, 'shape', ()))}")
    return inputs_embeds


def check_model(model: object, name: str = "model") -> nn.Module:
    """Return ``model`` if it is an ``nn.Module``; else raise ``TypeError`` naming ``name``."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"{name} must be a torch.nn.Module, got {type(model).__name__}")
    return model


def check_number(name: str, value: object, low: float = -math.inf, high: float = math.inf, *,
                 low_open: bool = False, high_open: bool = False, need: str = "") -> float:
    """Return ``value`` as a float if it is a finite real number in the interval ``low .. high`` (each end
    closed unless ``*_open``); else raise ``ValueError`` (``need``: what the number is, for the message)."""
    ok = isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = (low < value if low_open else low <= value) and (value < high if high_open else value <= high)
    if not ok:
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        if high == math.inf:
            bounds = "" if low == -math.inf else f" {'>' if low_open else '>='} {low:g}"
        else:
            bounds = f" in {interval}"
        raise ValueError(f"{name}{need} must be a finite number{bounds}, got {value!r}")
    return float(value)


def non_finite(tensor: torch.Tensor) -> int:
    """How many entries of ``tensor`` are NaN or inf (0 for a tensor without data, on the ``meta`` device)."""
    if tensor.device.type == "meta" or not (tensor.is_floating_point() or tensor.is_complex()):
        return 0
    return int((~torch.isfinite(tensor)).sum())


def check_tensor(name: str, value: object, legend: str, *, dim: int | None = None, kind: str = "float",
                 finite: bool = True) -> torch.Tensor:
    """Return ``value`` if it is a non-empty torch tensor of ``kind`` (``"float"`` or ``"int"``) with ``dim``
    axes (any if None) and, with ``finite``, no NaN or inf; ``legend`` (e.g. ``"(B, C)"``) names the axes."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor {legend}, got {type(value).__name__}")
    integer = not value.is_floating_point() and not value.is_complex() and value.dtype != torch.bool
    if (kind == "float" and not value.is_floating_point()) or (kind == "int" and not integer):
        what = "a floating-point" if kind == "float" else "an integer"
        raise TypeError(f"{name} must be {what} tensor {legend}, got dtype {value.dtype}")
    if dim is not None and value.dim() != dim:
        raise ValueError(f"{name} must be a {dim}-D tensor {legend}, got shape {tuple(value.shape)}")
    if value.numel() == 0:
        raise ValueError(f"{name} must not be empty, got shape {tuple(value.shape)}")
    if finite and (bad := non_finite(value)):
        raise ValueError(f"{name} must be finite, got {bad} NaN/inf value{'s' if bad > 1 else ''}")
    return value
