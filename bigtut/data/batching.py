"""Turning token ids into training batches: language-model windows and padded classification inputs.

Shared by the GPT (04) and BERT (05) chapters. Everything here is generic: a *tokenizer* is anything with an
``encode(text) -> list[int]`` method, and ids are plain ``LongTensor``\\ s.

Shape legend:  N  number of texts    B  batch size    L  block (context) length / ``max_len``
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Protocol

import torch

__all__ = ["encode_texts", "epoch_batches", "minibatches", "random_lm_batch", "sequential_lm_batches"]


class TextEncoder(Protocol):
    """What the batching helpers need from a tokenizer."""

    def encode(self, text: str) -> list[int]: ...


def _as_ids(ids: torch.Tensor | Sequence[int], block_size: int) -> torch.Tensor:
    """Check a 1-D id sequence holds at least ``block_size + 1`` tokens; return it as a LongTensor."""
    ids = torch.as_tensor(ids)
    if ids.dim() != 1 or ids.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
        raise ValueError(f"ids must be a 1-D integer tensor (or list), got shape {tuple(ids.shape)}, "
                         f"dtype {ids.dtype}")
    if not isinstance(block_size, int) or block_size < 1:
        raise ValueError(f"block_size must be a positive int, got {block_size!r}")
    if len(ids) < block_size + 1:
        raise ValueError(f"need at least block_size + 1 = {block_size + 1} tokens for one (x, y) window, "
                         f"got {len(ids)}")
    return ids.long()


def random_lm_batch(
    ids: torch.Tensor | Sequence[int],
    block_size: int,
    batch_size: int,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample ``batch_size`` random windows of a token stream for next-token prediction.

    Args:
        ids: the whole (training) token stream, 1-D, at least ``block_size + 1`` long.
        block_size: context length ``L`` of each window.
        batch_size: number of windows ``B``.
        generator: a seeded ``torch.Generator`` (on the CPU) for reproducible batches.
        device: where to put the batch (default: the CPU).

    Returns:
        ``(x, y)``, both ``(B, L)`` LongTensors with ``y[b, t] = x[b, t + 1]`` within the stream: the target
        of every position is the token that follows it.
    """
    ids = _as_ids(ids, block_size)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    starts = torch.randint(len(ids) - block_size, (batch_size,), generator=generator)  # (B,)
    offsets = starts[:, None] + torch.arange(block_size + 1)  # (B, L + 1)
    windows = ids[offsets]  # (B, L + 1)
    return windows[:, :-1].to(device), windows[:, 1:].to(device)  # (B, L), (B, L)


def sequential_lm_batches(
    ids: torch.Tensor | Sequence[int],
    block_size: int,
    batch_size: int,
    device: torch.device | str | None = None,
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Cut a token stream into consecutive, non-overlapping ``(x, y)`` windows, grouped into batches.

    Every token but the first is predicted exactly once (a tail shorter than ``block_size`` is dropped), so
    the mean loss over these batches is the validation loss per token of the stream, with no sampling noise.

    Returns:
        A list of ``(x, y)`` pairs, each ``(B', L)`` with ``B' <= batch_size`` (the last batch may be smaller).
    """
    ids = _as_ids(ids, block_size)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    n_windows = (len(ids) - 1) // block_size
    x = ids[: n_windows * block_size].view(n_windows, block_size)  # (n_windows, L)
    y = ids[1 : n_windows * block_size + 1].view(n_windows, block_size)  # (n_windows, L)
    return [(x[i : i + batch_size].to(device), y[i : i + batch_size].to(device))
            for i in range(0, n_windows, batch_size)]


def encode_texts(
    texts: Sequence[str],
    tokenizer: TextEncoder,
    max_len: int,
    pad_id: int,
    prefix: Sequence[int] = (),
    suffix: Sequence[int] = (),
) -> tuple[torch.Tensor, torch.Tensor]:
    """Encode texts into one right-padded id matrix for classification.

    Each row is ``prefix + encode(text)[:room] + suffix`` followed by ``pad_id`` up to ``max_len``, where
    ``room = max_len - len(prefix) - len(suffix)``: long texts are truncated *before* the suffix, so special
    tokens such as BERT's ``[CLS] … [SEP]`` always survive.

    Args:
        texts: N strings.
        tokenizer: anything with ``encode(str) -> list[int]``.
        max_len: row length ``L``.
        pad_id: the id written after the real tokens.
        prefix, suffix: ids put before/after every text (e.g. ``[cls_id]``, ``[sep_id]``).

    Returns:
        ``(ids, lengths)``: ``ids`` ``(N, L)`` LongTensor and ``lengths`` ``(N,)`` LongTensor, the number of
        real (non-pad) tokens of each row, always ``>= 1`` unless the text, prefix and suffix are all empty.
    """
    if isinstance(texts, str):
        raise TypeError("texts must be a sequence of strings, got a single string; wrap it in a list")
    if not hasattr(tokenizer, "encode"):
        raise TypeError(f"tokenizer must have an encode(text) -> list[int] method, got {type(tokenizer).__name__}")
    prefix, suffix = list(prefix), list(suffix)
    if not isinstance(max_len, int) or max_len < 1:
        raise ValueError(f"max_len must be a positive int, got {max_len!r}")
    room = max_len - len(prefix) - len(suffix)
    if room < 0:
        raise ValueError(f"max_len={max_len} leaves no room for prefix ({len(prefix)} ids) + suffix "
                         f"({len(suffix)} ids)")
    ids = torch.full((len(texts), max_len), pad_id, dtype=torch.long)  # (N, L)
    lengths = torch.zeros(len(texts), dtype=torch.long)  # (N,)
    for row, text in enumerate(texts):
        tokens = prefix + list(tokenizer.encode(text))[:room] + suffix
        ids[row, : len(tokens)] = torch.tensor(tokens, dtype=torch.long)
        lengths[row] = len(tokens)
    return ids, lengths


def minibatches(
    *tensors: torch.Tensor,
    batch_size: int,
    shuffle: bool = True,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> Iterator[tuple[torch.Tensor, ...]]:
    """Yield one epoch of aligned mini-batches ``(t1[idx], t2[idx], ...)`` of tensors sharing their first axis.

    With ``shuffle=True`` the order is a random permutation drawn from ``generator``; the last batch may be
    smaller than ``batch_size``.
    """
    if not tensors:
        raise ValueError("minibatches needs at least one tensor")
    n = tensors[0].shape[0]
    if any(t.shape[0] != n for t in tensors):
        raise ValueError(f"all tensors need the same first size, got {[tuple(t.shape) for t in tensors]}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)  # (N,)
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]  # (B,)
        yield tuple(t[idx].to(device) for t in tensors)


def epoch_batches(*tensors: torch.Tensor, batch_size: int, generator: torch.Generator
                  ) -> Callable[[], tuple[torch.Tensor, ...]]:
    """A ``next_batch()`` for a training loop that counts steps, not epochs: each call returns the next aligned
    mini-batch ``(t1[idx], t2[idx], ...)`` of ``batch_size`` rows, dealt from shuffled epochs without a gap (when
    fewer rows than ``batch_size`` are left of one permutation, the next is drawn from ``generator`` and
    appended, so a batch may straddle two epochs). Deterministic given the generator's seed."""
    if not tensors:
        raise ValueError("epoch_batches needs at least one tensor")
    n = tensors[0].shape[0]
    if any(t.shape[0] != n for t in tensors):
        raise ValueError(f"all tensors need the same first size, got {[tuple(t.shape) for t in tensors]}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    queue: list[int] = []

    def next_batch() -> tuple[torch.Tensor, ...]:
        nonlocal queue
        if len(queue) < batch_size:
            queue += torch.randperm(n, generator=generator).tolist()
        idx, queue = queue[:batch_size], queue[batch_size:]
        return tuple(t[idx] for t in tensors)

    return next_batch
