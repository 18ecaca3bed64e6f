"""The arguments the generation methods of :mod:`bigtut.explain.generation` share, checked before any model call:
the prompt, the continuation (``target``), the ``contrast`` tokens and the explained ``steps``.

Shape legend:  B batch   P prompt tokens   T continuation tokens   L = P + T   S explained steps
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch

from bigtut.explain.arguments import check_flag, check_token_batch, vocab_size_of
from bigtut.explain.common import model_device

__all__ = ["GenerationTask", "checked_ids", "generation_task"]


class GenerationTask(NamedTuple):
    """What the three methods explain, checked: the ids, the prompt length, the steps and their tokens."""

    ids: torch.Tensor  # (B, L) prompt + continuation, on the model's device
    P: int
    steps: torch.Tensor  # (S,) step indices
    a: torch.Tensor  # (B, S) the written tokens of the explained steps
    b: torch.Tensor | None  # (B, S) their alternatives (contrast), or None
    probabilities: bool  # explain p (captum's attr_target="prob") instead of log p


def checked_ids(name: str, value: Any, B: int, T: int | None, vocab: int | None, what: str) -> torch.Tensor:
    """``value`` as a long ``(B, T)`` tensor of token ids (``(T,)`` is repeated for every row when allowed)."""
    if isinstance(value, (list, tuple, np.ndarray)) and np.asarray(value).dtype.kind in "iu":
        value = torch.as_tensor(np.asarray(value))
    if not isinstance(value, torch.Tensor) or value.is_floating_point() or value.dtype == torch.bool:
        raise TypeError(f"{name} must be {what}: an integer tensor of token ids, got "
                        f"{getattr(value, 'dtype', type(value).__name__)}; encode a text with the model's tokenizer "
                        "first (e.g. torch.tensor([tok.encode(text)]))")
    if value.dim() == 1 and T is not None:
        value = value[None].expand(B, -1)
    if value.dim() != 2 or value.shape[0] != B or (T is not None and value.shape[1] != T):
        hint = "; add the batch dimension for one text (ids[None])" if value.dim() == 1 else ""
        raise ValueError(f"{name} must be {what} shaped ({B}, {'T' if T is None else T}) like the prompt's batch, "
                         f"got {tuple(value.shape)}{hint}")
    if value.shape[1] == 0:
        raise ValueError(f"{name} is empty: pass at least one generated token id to explain")
    if int(value.min()) < 0 or (vocab is not None and int(value.max()) >= vocab):
        raise ValueError(f"{name} must hold token ids in [0, {vocab}), got values from {int(value.min())} to "
                         f"{int(value.max())}")
    return value.long()


def generation_task(model: Any, input_ids: Any, attention_mask: Any, target: Any, contrast: Any, steps: Any,
          probabilities: Any) -> GenerationTask:
    """Check every argument the three methods share (before any model call) and gather the task."""
    if target is None:
        raise ValueError("target= is required: the continuation's token ids (B, T), e.g. what model.generate wrote "
                         "after the prompt (out[:, P:])")
    probabilities = check_flag("probabilities", probabilities)
    if isinstance(input_ids, torch.Tensor) and input_ids.dim() == 2 and input_ids.shape[1] == 0:
        raise ValueError("the prompt input_ids is empty: the first generated token needs at least one token before "
                         "it (start the prompt with a BOS or newline token)")
    vocab = vocab_size_of(model)
    prompt, real = check_token_batch(input_ids, attention_mask, vocab)  # (B, P), (B, P)
    if not bool(real.all()):
        raise ValueError("attention_mask has padding (0): rows must be unpadded and of equal length here; explain "
                         "prompts of different lengths in separate calls")
    B, P = prompt.shape
    written = checked_ids("target", target, B, None, vocab, "the continuation's token ids (B, T)")  # (B, T)
    T = written.shape[1]
    config = getattr(model, "config", None)
    context = getattr(config, "block_size", None) or getattr(config, "n_positions", None)
    if context is not None and P + T > context:
        fix = (f"keep the last {context - T} prompt tokens (input_ids[:, -{context - T}:])" if T < context
               else "explain a shorter continuation")
        raise ValueError(f"prompt ({P}) + continuation ({T}) = {P + T} tokens exceed the model's context "
                         f"block_size={context}; {fix}")
    if steps is None:
        chosen = list(range(T))
    else:
        chosen = steps.tolist() if isinstance(steps, (torch.Tensor, np.ndarray)) else steps
        if isinstance(chosen, (int, np.integer)) or not isinstance(chosen, (list, tuple)) or not chosen \
                or not all(isinstance(s, (int, np.integer)) and not isinstance(s, (bool, np.bool_)) for s in chosen):
            raise TypeError(f"steps must be None (every step) or a non-empty list of step indices, got {steps!r}")
        if any(not 0 <= s < T for s in chosen):
            raise ValueError(f"steps must lie in [0, {T}) (the continuation has {T} tokens), got {list(chosen)}")
    index = torch.as_tensor([int(s) for s in chosen], dtype=torch.long)  # (S,)
    alternative = None
    if contrast is not None:
        alternative = checked_ids("contrast", contrast, B, T, vocab, "the alternative token ids (B, T) or (T,)")
        alternative = alternative[:, index]  # (B, S)
        same = (alternative == written[:, index]).any(0)  # (S,)
        if bool(same.any()):
            raise ValueError(f"contrast equals target at steps {index[same].tolist()}: log p(a) − log p(a) is 0; "
                             "pick another alternative there, or leave those steps out with steps=")
    device = model_device(model)
    ids = torch.cat([prompt, written.to(prompt.device)], 1).to(device)  # (B, L)
    return GenerationTask(ids, P, index.to(device), written[:, index].to(device),
                 None if alternative is None else alternative.to(device), probabilities)
