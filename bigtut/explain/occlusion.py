"""Occlusion (Zeiler & Fergus, 2014), from scratch: slide a window over the input, replace what it covers by a
baseline, and credit the drop of the explained output to every feature under the window.

Shape legend:  B batch   K windows   N rows sent to the model   L positions   P token players

A feature's attribution is the mean, over the windows that cover it, of ``F(x) − F(x with the window
occluded)``. Windows start at ``0, stride, 2·stride, ...`` along each dimension until one reaches the end; the
last is cut off at the border when the stride does not fit evenly (captum 0.9's ``Occlusion`` does the same,
then divides in float32: equality with it is about 1e-7). Deterministic: no seed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch

from bigtut.explain.arguments import (
    check_budget,
    check_flag,
    check_float_batch,
    check_same_shape,
    check_target_rows,
    resolve_batch_size,
)
from bigtut.explain.common import as_numpy, scalar_output, target_of_row, to_model_input
from bigtut.explain.shap_tokens import _token_games

__all__ = ["OcclusionResult", "occlusion", "token_occlusion", "window_cover"]


class OcclusionResult(NamedTuple):
    """``attributions`` shaped like the input (0 at padding and at tokens that are never occluded), the
    explained ``output`` ``(B,)`` of the untouched input, and ``n_evaluations`` (model rows used)."""

    attributions: np.ndarray
    output: np.ndarray
    n_evaluations: int


def _check_sizes(name: str, value: Any, n_dims: int) -> tuple[int, ...]:
    """``window``/``stride``: an int (the same along every dimension) or ``n_dims`` ints, each ``>= 1``."""
    values = (value,) * n_dims if isinstance(value, (int, np.integer)) and not isinstance(value, bool) else value
    if not isinstance(values, (tuple, list)) or len(values) != n_dims \
            or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
        raise ValueError(f"{name} must be an int or a tuple of {n_dims} ints (one per feature dimension), got "
                         f"{value!r}")
    if any(v < 1 for v in values):
        raise ValueError(f"{name} must be >= 1 along every dimension, got {value!r}")
    return tuple(int(v) for v in values)


def window_cover(length: int, window: int, stride: int) -> np.ndarray:
    """Which of ``length`` positions each window covers: ``(K, length)`` bool, ``K = ceil((length − window) /
    stride) + 1`` windows starting at ``0, stride, ...``, the last one cut off at the end. ``stride <= window``
    unless the window spans the whole length (as captum)."""
    if window > length:
        raise ValueError(f"window={window} is longer than the input ({length})")
    if stride > window and window < length:
        raise ValueError(f"stride={stride} is larger than window={window}: the positions between two windows "
                         "would never be occluded; use stride <= window")
    starts = np.arange(math.ceil((length - window) / stride) + 1) * stride  # (K,)
    positions = np.arange(length)  # (length,)
    return (positions >= starts[:, None]) & (positions < starts[:, None] + window)  # (K, length)


def occlusion(f: Callable, inputs: Any, *, target: int | Sequence[int] | None = None,
              window: int | Sequence[int] = 1, stride: int | Sequence[int] = 1, baseline: Any = 0.0,
              batch_size: int | None = None, probabilities: bool = False) -> OcclusionResult:
    """Occlusion of ``f`` at ``inputs`` ``(B, ...)`` (tensor or array) with a sliding ``window``.

    ``window``, ``stride``: an int (the same along every feature dimension) or one int per dimension
    (``(1, 3, 3)`` for ``(B, C, H, W)`` images: one channel, 3×3 pixels); ``1 <= stride <= window <=`` the
    input's size. ``baseline``: what an occluded feature becomes, a number or an array shaped like ``inputs``.
    ``f``, ``target``, ``probabilities`` as :func:`exact_shapley`; ``batch_size`` rows per call. Window ``1`` is
    feature ablation: on a linear model, ``w ⊙ (x − baseline)``. Equals captum's ``Occlusion(f).attribute(x,
    sliding_window_shapes=window, strides=stride, baselines=baseline)``. Returns :class:`OcclusionResult`.
    """
    check_float_batch("inputs", inputs, 2)
    x = as_numpy(inputs)  # (B, ...)
    B, features = x.shape[0], x.shape[1:]
    windows = _check_sizes("window", window, len(features))
    strides = _check_sizes("stride", stride, len(features))
    if any(w > d for w, d in zip(windows, features)):
        raise ValueError(f"window {windows} is larger than an input {tuple(features)} along some dimension")
    covers = [window_cover(d, w, s) for d, w, s in zip(features, windows, strides)]  # each (K_j, D_j)
    masks = np.ones((1,), dtype=bool)  # (K, *features so far)
    for cover in covers:
        masks = masks[:, None, ..., None] & cover.reshape(1, len(cover), *[1] * (masks.ndim - 1), -1)
        masks = masks.reshape(-1, *masks.shape[2:])
    K = len(masks)  # masks: (K, *features)
    if isinstance(baseline, (int, float, np.integer, np.floating)) and not isinstance(baseline, bool):
        base = np.full_like(x, float(baseline))  # (B, ...)
    else:
        check_same_shape(x, baseline)
        check_float_batch("baseline", baseline, x.ndim, f"{tuple(x.shape)}")
        base = as_numpy(baseline)
    target = check_target_rows(target, B)
    probabilities, chunk = check_flag("probabilities", probabilities), resolve_batch_size(batch_size)
    to_model = to_model_input(f, inputs)

    def values(rows: np.ndarray, examples: np.ndarray) -> np.ndarray:
        """The explained output ``(N,)`` of ``rows`` ``(N, ...)``, row ``i`` belonging to ``examples[i]``."""
        if target is None or isinstance(target, (int, np.integer)):
            return scalar_output(f, target, probabilities)(to_model(rows))
        return scalar_output(f, np.asarray([target_of_row(target, e) for e in examples]), probabilities)(
            to_model(rows))

    output = np.concatenate([values(x[i:i + chunk], np.arange(i, min(i + chunk, B))) for i in range(0, B, chunk)])
    drops = np.empty(B * K)  # (B*K,): F(x_b) - F(x_b with window k occluded), row b*K + k
    for i in range(0, B * K, chunk):
        flat = np.arange(i, min(i + chunk, B * K))  # (N,)
        b, k = flat // K, flat % K
        rows = np.where(masks[k], base[b], x[b])  # (N, ...)
        drops[flat] = output[b] - values(rows, b)
    counts = masks.sum(0)  # (*features,): windows covering each feature, >= 1
    attributions = np.tensordot(drops.reshape(B, K), masks.astype(np.float64), axes=1) / counts  # (B, ...)
    return OcclusionResult(attributions, output, B * (K + 1))


def token_occlusion(model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, *,
                    target: int | Sequence[int] | None = None, window: int = 1, stride: int = 1,
                    absent: str = "mask", keep_ids: Sequence[int] = (), mask_id: int | None = None,
                    pad_id: int | None = None, batch_size: int | None = None, probabilities: bool = False,
                    position: int | Sequence[int] | None = None) -> OcclusionResult:
    """Occlusion of the tokens of each text: ``window`` consecutive explained tokens absent at a time.

    The explained tokens (the players of :func:`token_shap`) are the real tokens whose id is not in
    ``keep_ids`` (for a language model, none after ``position``; with "pad"/"delete" not the read token
    either). Windows slide over them in order (skipping kept tokens), ``1 <= stride <= window <=`` a row's
    number of explained tokens; each token scores the mean drop of the explained logit over the windows that
    cover it. ``absent``: ``"mask"`` (ids become ``mask_id``), ``"pad"`` (attention mask 0), ``"delete"``
    (removed, the rest move left), as in :func:`token_shap`, whose other arguments these are too.

    With ``absent="mask"``, no ``keep_ids`` and no padding this equals captum's ``Occlusion`` on the token
    embeddings ``(1, L, d)`` with ``sliding_window_shapes=(window, d)``, ``strides=(stride, d)`` and the
    [MASK] embedding as baseline. Captum slides over every position, [CLS]/[SEP] included; here a kept token is
    never occluded (score 0) and windows join the tokens on either side of it. Padding gets 0.
    """
    window, stride = check_budget("window", window), check_budget("stride", stride)
    if stride > window:
        raise ValueError(f"stride={stride} is larger than window={window}: the tokens between two windows would "
                         "never be occluded; use stride <= window")

    def check_players(m: int) -> None:
        if window > m:
            raise ValueError(f"window={window} is longer than a row's {m} explained tokens (real tokens not in "
                             "keep_ids); use a smaller window")

    games, shape = _token_games(model, input_ids, attention_mask, target=target, absent=absent, mask_id=mask_id,
                                pad_id=pad_id, keep_ids=keep_ids, batch_size=batch_size,
                                probabilities=probabilities, position=position, check_players=check_players)
    attributions, output, n_evaluations = np.zeros(shape), np.zeros(shape[0]), shape[0]  # the probe: B rows
    for b, (index, game) in enumerate(games):
        cover = window_cover(len(index), window, stride)  # (K, P)
        present = np.vstack([np.ones((1, len(index)), dtype=bool), ~cover])  # (1 + K, P): the text, then windows
        value = game(present)  # (1 + K,)
        output[b], drops = value[0], value[0] - value[1:]  # (K,)
        attributions[b, index] = drops @ cover / cover.sum(0)  # (P,)
        n_evaluations += len(present)
    return OcclusionResult(attributions, output, n_evaluations)
