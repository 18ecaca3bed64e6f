"""The refusals every explanation method shares: one place that turns bad input into a ``ValueError`` or
``TypeError`` naming the argument, what was given and what is needed -- before any model call where it can be.

Shape legend:  B batch   L positions
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from bigtut.explain.common import DEFAULT_BATCH_SIZE, DEFAULT_SEED

__all__ = ["check_budget", "check_flag", "check_float_batch", "check_keep_ids", "check_same_shape",
           "check_target_rows", "check_token_batch", "check_token_id", "input_embeddings", "resolve_batch_size",
           "resolve_pad_id", "resolve_seed", "vocab_size_of"]


def check_budget(name: str, value: Any, minimum: int = 1) -> int:
    """Return ``value`` if it is an int ``>= minimum`` (a number of steps, samples or permutations)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def check_flag(name: str, value: Any) -> bool:
    """Return ``value`` if it is a bool (``probabilities``, ``residual``...), else ``TypeError``."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def check_same_shape(x: Any, reference: Any, x_name: str = "inputs", reference_name: str = "baseline") -> None:
    """Raise ``ValueError`` when ``x`` and ``reference`` do not have the same shape."""
    if tuple(np.shape(x)) != tuple(np.shape(reference)):
        raise ValueError(f"{x_name} {tuple(np.shape(x))} and {reference_name} {tuple(np.shape(reference))} must "
                         "have the same shape")


def resolve_seed(seed: Any) -> int:
    """``seed`` as an int in ``[0, 2**32)`` (what NumPy's and torch's generators take); ``None`` is
    :data:`~bigtut.explain.common.DEFAULT_SEED`, so a call without a seed is reproducible."""
    if seed is None:
        return DEFAULT_SEED
    seed = check_budget("seed", seed, 0)
    if seed >= 2**32:
        raise ValueError(f"seed must be an int in [0, 2**32), got {seed}")
    return seed


def resolve_batch_size(batch_size: Any) -> int:
    """``batch_size`` (rows per model call) as an int >= 1; ``None`` is :data:`DEFAULT_BATCH_SIZE`."""
    return DEFAULT_BATCH_SIZE if batch_size is None else check_budget("batch_size", batch_size)


def check_float_batch(name: str, value: Any, min_dim: int = 2, legend: str = "(B, ...)") -> Any:
    """Return ``value`` (a tensor or an array) if it is a finite floating-point batch of ``>= 1`` examples with
    at least ``min_dim`` dimensions; else a ``TypeError``/``ValueError`` that says what to pass."""
    if isinstance(value, torch.Tensor):
        floating = value.is_floating_point()
    elif isinstance(value, np.ndarray):
        floating = value.dtype.kind == "f"
    else:
        raise TypeError(f"{name} must be a tensor or a NumPy array {legend}, got {type(value).__name__}")
    if not floating:
        raise TypeError(f"{name} must hold floating-point numbers, got dtype {value.dtype}; convert it first "
                        "(e.g. .float() or .astype(float))")
    if value.ndim < min_dim:
        hint = "; add the batch dimension for one example (x[None])" if value.ndim == min_dim - 1 else ""
        raise ValueError(f"{name} must be a batch {legend}, got shape {tuple(value.shape)}{hint}")
    if value.shape[0] == 0 or any(s == 0 for s in value.shape[1:]):
        raise ValueError(f"{name} must hold at least one example with at least one feature, got shape "
                         f"{tuple(value.shape)}")
    finite = bool(torch.isfinite(value).all()) if isinstance(value, torch.Tensor) else bool(np.isfinite(value).all())
    if not finite:
        raise ValueError(f"{name} must be finite, got NaN or inf")
    return value


def check_token_batch(input_ids: Any, attention_mask: Any, vocab_size: int | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """``(input_ids (B, L) long, real (B, L) bool)`` after checking a padded batch of token ids.

    ``input_ids`` must be a 2-D integer tensor with ``B, L >= 1`` (ids in ``[0, vocab_size)`` when it is
    given); ``attention_mask`` None (all real) or ``(B, L)`` of 0/1 or bool, with a real token in every row.
    """
    if not isinstance(input_ids, torch.Tensor):
        raise TypeError(f"input_ids must be a torch tensor of token ids (B, L), got {type(input_ids).__name__}")
    if input_ids.is_floating_point() or input_ids.is_complex() or input_ids.dtype == torch.bool:
        raise TypeError(f"input_ids must be an integer tensor, got {input_ids.dtype}; token ids are never "
                        "fractional (use .long())")
    if input_ids.dim() != 2:
        hint = "; add the batch dimension for one text (ids[None])" if input_ids.dim() == 1 else ""
        raise ValueError(f"input_ids must be a batch (B, L), got shape {tuple(input_ids.shape)}{hint}")
    B, L = input_ids.shape
    if B == 0 or L == 0:
        raise ValueError(f"input_ids must hold at least one text of at least one token, got shape {(B, L)}")
    if int(input_ids.min()) < 0 or (vocab_size is not None and int(input_ids.max()) >= vocab_size):
        raise ValueError(f"input_ids must lie in [0, {vocab_size}), got values from {int(input_ids.min())} to "
                         f"{int(input_ids.max())}")
    if attention_mask is None:
        real = torch.ones(B, L, dtype=torch.bool, device=input_ids.device)
    else:
        if not isinstance(attention_mask, torch.Tensor):
            raise TypeError(f"attention_mask must be a torch tensor (B, L) or None, got "
                            f"{type(attention_mask).__name__}")
        if tuple(attention_mask.shape) != (B, L):
            raise ValueError(f"attention_mask must have the shape of input_ids {(B, L)}, got "
                             f"{tuple(attention_mask.shape)}")
        if not bool(((attention_mask == 0) | (attention_mask == 1)).all()):
            raise ValueError("attention_mask must hold 0/1 or True/False (1 = real token, 0 = padding)")
        real = (attention_mask != 0).to(input_ids.device)
    if not bool(real.any(-1).all()):
        empty = torch.nonzero(~real.any(-1))[:, 0].tolist()
        raise ValueError(f"every row needs at least one real token (attention_mask 1); rows {empty} have none")
    return input_ids.long(), real


def check_token_id(name: str, value: Any, vocab_size: int | None) -> int:
    """``value`` (``pad_id``, ``mask_id``...) as a token id in ``[0, vocab_size)``, else ``ValueError``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 0 \
            or (vocab_size is not None and value >= vocab_size):
        raise ValueError(f"{name} must be a token id in [0, {vocab_size}), got {value!r}")
    return int(value)


def check_keep_ids(keep_ids: Any) -> tuple[int, ...]:
    """``keep_ids`` (token ids that are never removed or explained: [CLS], [SEP]...) as a tuple of ints."""
    if isinstance(keep_ids, (str, bytes)):
        raise TypeError(f"keep_ids must be a sequence of token ids (ints), got {keep_ids!r}")
    values = keep_ids.tolist() if isinstance(keep_ids, (torch.Tensor, np.ndarray)) else keep_ids
    try:
        values = list(values)
    except TypeError:
        raise TypeError(f"keep_ids must be a sequence of token ids (ints), got {keep_ids!r}") from None
    if not all(isinstance(k, (int, np.integer)) and not isinstance(k, (bool, np.bool_)) for k in values):
        raise TypeError(f"keep_ids must be a sequence of token ids (ints), got {keep_ids!r}")
    if any(not 0 <= k < 2**63 for k in values):
        raise ValueError(f"keep_ids must be token ids >= 0, got {keep_ids!r}")
    return tuple(int(k) for k in values)


def check_target_rows(target: Any, n: int) -> Any:
    """``target`` as None, an int, or ``n`` ints (unchanged); a 0-d tensor or array becomes an int (one class
    for every row). ``ValueError`` when a sequence has another length than the batch. Ranges are checked
    against the model's outputs by :func:`select_target`."""
    if target is None or isinstance(target, (int, np.integer)) and not isinstance(target, (bool, np.bool_)):
        return target
    if isinstance(target, (bool, np.bool_, float, str)):
        raise TypeError(f"target must be an int or {n} ints, got {target!r}")
    shape = tuple(np.shape(target.detach().cpu() if isinstance(target, torch.Tensor) else target))
    if shape not in ((), (n,)):
        raise ValueError(f"target must be an int or {n} ints (one per example), got shape {shape}")
    kind = np.asarray(target.detach().cpu() if isinstance(target, torch.Tensor) else target).dtype.kind
    if kind not in "iu":
        raise TypeError(f"target must be an int or {n} ints (one per example), got {target!r}")
    if shape == ():
        value = target.item() if isinstance(target, (torch.Tensor, np.ndarray)) else target
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"target must be an int or {n} ints, got {target!r}")
        return int(value)
    return target


def vocab_size_of(model: Any) -> int | None:
    """The model's vocabulary size (rows of ``get_input_embeddings()``), or None when it does not say."""
    getter = getattr(model, "get_input_embeddings", None)
    embedding = getter() if callable(getter) else None
    return int(embedding.num_embeddings) if isinstance(embedding, torch.nn.Embedding) else None


def resolve_pad_id(model: Any, pad_id: Any, vocab_size: int | None) -> int | None:
    """``pad_id`` checked as a token id; ``None`` is the model's ``config.pad_id`` when it has one, else None."""
    if pad_id is None:
        pad_id = getattr(getattr(model, "config", None), "pad_id", None)
    return None if pad_id is None else check_token_id("pad_id", pad_id, vocab_size)


def input_embeddings(model: Any) -> torch.nn.Embedding:
    """``model.get_input_embeddings()``, the token-embedding table of the classifier contract, or ``TypeError``."""
    getter = getattr(model, "get_input_embeddings", None)
    embedding = getter() if callable(getter) else None
    if not isinstance(embedding, torch.nn.Embedding):
        raise TypeError(f"model must honour the classifier contract: model.get_input_embeddings() -> nn.Embedding "
                        f"and model(attention_mask=..., inputs_embeds=...); {type(model).__name__} does not")
    return embedding
