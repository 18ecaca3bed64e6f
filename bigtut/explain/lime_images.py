"""LIME for images: :func:`lime_image` shows or hides segments of the image (:func:`digit_segments`, a grid
of patches sized for 8×8 digits); steps 3 and 4 are those of :mod:`bigtut.explain.lime`.

Shape legend:  B batch   N samples   C channels   H, W height and width   S segments
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from bigtut.explain.arguments import (
    check_budget,
    check_flag,
    check_float_batch,
    check_target_rows,
    resolve_batch_size,
    resolve_seed,
)
from bigtut.explain.common import as_numpy, scalar_output, target_of_row, to_model_input
from bigtut.explain.lime import (
    LimeExplanation,
    Target,
    check_kernel_and_alpha,
    cosine_to_ones,
    diagnostics,
    explain_neighbourhood,
)
from bigtut.validation import check_number

__all__ = ["digit_segments", "lime_image"]


def digit_segments(shape: tuple[int, int] = (8, 8), patch: int = 2) -> np.ndarray:
    """An integer segment map ``(H, W)`` of ``patch × patch`` squares, numbered row by row (16 for 8×8 / 2).

    Superpixel algorithms (quickshift, SLIC, felzenszwalb) group neighbouring pixels of similar colour over
    regions of dozens of pixels; an 8×8 digit has 64 pixels in all, so they return a handful of arbitrary
    blobs or single pixels. A fixed grid of 2×2 patches gives every stroke fragment its own feature.
    """
    check_budget("patch", patch)
    if not isinstance(shape, (tuple, list)) or len(shape) != 2:
        raise ValueError(f"shape must be (H, W), two ints >= 1, got {shape!r}")
    H, W = (check_budget(name, value) for name, value in zip(("H", "W"), shape))
    return (np.arange(H) // patch)[:, None] * (-(-W // patch)) + (np.arange(W) // patch)[None, :]  # (H, W)


def lime_image(f: Callable, inputs, *, target: Target = None, segments=None, n_samples: int = 1000,
               kernel_width: float = 0.25, hide_value: float = 0.0, seed: int | None = None,
               batch_size: int | None = None, probabilities: bool = False, alpha: float = 1.0) -> LimeExplanation:
    """LIME for images ``inputs`` ``(B, H, W)`` or ``(B, C, H, W)`` and a model
    ``f(images (N, [C,] H, W)) -> (N,) | (N, C)``.

    ``f`` receives images as :func:`lime_tabular` hands it rows (tensors for tensor inputs or a module, else
    float64 NumPy), at most ``batch_size`` images per call. Each sample shows every segment or not (a fair coin
    per segment, as lime_image; row 0 shows all); hidden pixels take ``hide_value`` (lime's ``hide_color``).
    Distance: cosine distance of the on/off vector to all-ones, ``kernel_width`` 0.25 (lime_image's).
    ``segments``: integer labels ``(H, W)`` shared by every image, or ``(B, H, W)`` one map per image; default
    :func:`digit_segments`.

    Returns a :class:`LimeExplanation`: ``attributions`` shaped like ``inputs``, each pixel holding its
    segment's slope; ``segment_coefficients`` ``(B, S)`` in the order of each image's sorted segment labels
    (``S`` the most segments of any image; an image with fewer has NaN after its last); diagnostics ``(B,)``.
    """
    check_float_batch("inputs", inputs, 3, "(B, H, W) or (B, C, H, W)")
    if inputs.ndim not in (3, 4):
        raise ValueError(f"inputs must be images (B, H, W) or (B, C, H, W), got shape {tuple(inputs.shape)}")
    images = as_numpy(inputs)  # (B, [C,] H, W)
    B, (H, W) = len(images), images.shape[-2:]
    seg = digit_segments((H, W)) if segments is None else np.asarray(
        segments.detach().cpu() if isinstance(segments, torch.Tensor) else segments)
    if seg.dtype.kind not in "iu" or seg.shape not in ((H, W), (B, H, W)):
        raise ValueError(f"segments must be integer labels of shape {(H, W)} (every image) or {(B, H, W)} (one "
                         f"map per image), got {seg.dtype} {seg.shape}")
    seg = np.broadcast_to(seg, (B, H, W))
    maps = [np.unique(s, return_inverse=True) for s in seg]  # B x (labels (S_b,), index (H*W,))
    n_samples = check_budget("n_samples", n_samples, max(len(labels) for labels, _ in maps) + 1)
    kernel_width, alpha = check_kernel_and_alpha(kernel_width, alpha)
    hide_value = check_number("hide_value", hide_value)
    seed, chunk = resolve_seed(seed), resolve_batch_size(batch_size)
    probabilities = check_flag("probabilities", probabilities)
    target = check_target_rows(target, B)

    to_model = to_model_input(f, inputs)
    attributions, segment_coefficients = np.zeros(images.shape), np.full((B, max(len(m[0]) for m in maps)), np.nan)
    rows = []
    for b, (img, (labels, index)) in enumerate(zip(images, maps, strict=True)):
        index = index.reshape(H, W)  # (H, W) segment number in 0..S-1
        S = len(labels)
        rng = np.random.RandomState(seed)  # afresh per image: image b alone = image b in the batch
        Z = rng.randint(0, 2, n_samples * S).reshape(n_samples, S).astype(float)  # (N, S)
        Z[0] = 1
        explained, values = scalar_output(f, target_of_row(target, b), probabilities), []
        for start in range(0, n_samples, chunk):
            shown = Z[start:start + chunk, index] == 1  # (n, H, W)
            hidden = np.where(shown if img.ndim == 2 else shown[:, None], img, hide_value)  # (n, [C,] H, W)
            values.append(explained(to_model(hidden)))
        rows.append(explain_neighbourhood(np.concatenate(values), Z, cosine_to_ones(Z), kernel_width, alpha))
        beta = rows[-1][0]  # (S,)
        attributions[b] = np.broadcast_to(beta[index], img.shape)  # ([C,] H, W)
        segment_coefficients[b, :S] = beta
    return LimeExplanation(attributions, *diagnostics(rows), n_samples=n_samples,
                           segment_coefficients=segment_coefficients)
