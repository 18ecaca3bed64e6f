"""LIME from scratch: explain one prediction by a weighted linear fit on random variations of the input.

Shape legend:  N samples   M input features   K interpretable features   L positions   S segments

Every LIME explainer is the same four steps; only the first three change with the kind of input.

1. a *neighbourhood*: N random variations of the input, the first one being the input itself;
2. *interpretable features* ``Z (N, K)`` of each variation (a standardised value, "in the same quartile as
   x", "token kept", "segment shown");
3. a *proximity weight* per variation: its distance to the input, through lime's kernel;
4. a weighted ridge regression of the explained output on ``Z``. Its slopes are the explanation, and its
   weighted R² (``score``) says how well a plane describes the model *around this input*.

The explained number is the model's logit for ``target`` (``probabilities=True``: its softmax probability).
The lime package itself explains probabilities, so the tests hand both sides the same probabilities.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch
from scipy.stats import truncnorm

from bigtut.explain.common import as_numpy, check_budget, scalar_output, select_target

__all__ = ["LimeExplanation", "digit_segments", "fit_surrogate", "lime_from_neighbourhood", "lime_image",
           "lime_kernel", "lime_tabular", "lime_text"]


class LimeExplanation(NamedTuple):
    """One LIME explanation.

    Fields:
        coefficients: the surrogate's slopes laid out like the explained input: ``(M,)`` for a table row (per
            standardised unit, lime's convention, or per "same quartile" indicator), ``(L,)`` for a text (0 at
            kept and padded positions), the image's shape for an image (each pixel holds its segment's slope).
        intercept: the surrogate's intercept.
        score: weighted R² of the surrogate on its own neighbourhood (local fidelity; 1 = locally linear).
        prediction: the surrogate's value at the explained input (lime's ``local_pred``).
        value: the model's explained output at the input, to compare with ``prediction``.
        n_samples: size of the neighbourhood.
        per_unit: ``(M,)`` slopes per *original* unit, ``coefficients / std`` (lime_tabular without
            discretisation only, else None).
        segment_coefficients: ``(S,)`` one slope per segment (lime_image only, else None).
    """

    coefficients: np.ndarray
    intercept: float
    score: float
    prediction: float
    value: float
    n_samples: int
    per_unit: np.ndarray | None = None
    segment_coefficients: np.ndarray | None = None


def lime_kernel(distances, kernel_width: float) -> np.ndarray:
    """Proximity weights ``(N,)`` of distances ``(N,)``: ``sqrt(exp(-d² / w²))``.

    This is lime's own choice: the square root of an exponential kernel, which is a Gaussian bump
    ``exp(-d² / (2 w²))`` of standard deviation ``w``. A sample at distance 0 weighs 1.
    """
    d = as_numpy(distances)
    return np.sqrt(np.exp(-(d ** 2) / float(kernel_width) ** 2))


def fit_surrogate(features, targets, weights, alpha: float = 1.0) -> tuple[np.ndarray, float, float]:
    """Weighted ridge regression ``min Σ wᵢ (yᵢ − b − zᵢ·β)² + α ‖β‖²`` (the intercept ``b`` is not penalised).

    Closed form: centre ``Z`` and ``y`` on their weighted means, solve ``(Z_cᵀ W Z_c + αI) β = Z_cᵀ W y_c``, then
    ``b = ȳ − z̄·β``. This is what lime fits (scikit-learn's ``Ridge(alpha=1)`` with ``sample_weight``).

    Args:
        features: ``(N, K)`` interpretable features.  targets: ``(N,)``.  weights: ``(N,)``, non-negative.
    Returns:
        ``(coefficients (K,), intercept, score)``, the score being the weighted R² on the same samples.
    """
    Z, y, w = as_numpy(features), as_numpy(targets), as_numpy(weights)
    if Z.ndim != 2 or y.shape != (len(Z),) or w.shape != (len(Z),):
        raise ValueError(f"need features (N, K), targets (N,) and weights (N,), got {Z.shape}, {y.shape}, {w.shape}")
    if not (np.isfinite(w).all() and (w >= 0).all() and w.sum() > 0):
        raise ValueError("weights must be finite, non-negative and not all zero")
    if not alpha >= 0:
        raise ValueError(f"alpha must be >= 0, got {alpha!r}")
    z_mean, y_mean = w @ Z / w.sum(), w @ y / w.sum()  # (K,), ()
    Zc, yc = Z - z_mean, y - y_mean  # (N, K), (N,)
    gram = Zc.T @ (w[:, None] * Zc) + alpha * np.eye(Z.shape[1])  # (K, K)
    try:
        beta = np.linalg.solve(gram, Zc.T @ (w * yc))  # (K,)
    except np.linalg.LinAlgError:
        raise ValueError("the weighted features are collinear; use alpha > 0") from None
    intercept = float(y_mean - z_mean @ beta)
    ss_res, ss_tot = w @ (y - Z @ beta - intercept) ** 2, w @ yc ** 2
    score = 1.0 - ss_res / ss_tot if ss_tot > 0 else float(ss_res == 0)  # scikit-learn's r2 on a constant y
    return beta, intercept, float(score)


def _explain(values: np.ndarray, features: np.ndarray, distances: np.ndarray, kernel_width: float, alpha: float):
    """Steps 3 and 4: ``(coefficients (K,), intercept, score, prediction, value)`` for explained outputs
    ``(N,)``, features ``(N, K)`` and distances ``(N,)`` to the input (row 0)."""
    if not kernel_width > 0:
        raise ValueError(f"kernel_width must be positive, got {kernel_width!r}")
    beta, intercept, score = fit_surrogate(features, values, lime_kernel(distances, kernel_width), alpha)
    return beta, intercept, score, float(intercept + features[0] @ beta), float(values[0])


def lime_from_neighbourhood(f: Callable, neighbourhood_features, neighbourhood_inputs, distances,
                            kernel_width: float, target: int | None = None, probabilities: bool = False,
                            alpha: float = 1.0) -> LimeExplanation:
    """LIME on a neighbourhood you built yourself (row 0 = the explained input).

    ``f(neighbourhood_inputs (N, ...)) -> (N,) | (N, C)``; the surrogate is fitted on
    ``neighbourhood_features (N, K)`` with ``distances (N,)`` to the explained input. Returns a
    :class:`LimeExplanation` with ``coefficients`` ``(K,)``.
    """
    Z, d = as_numpy(neighbourhood_features), as_numpy(distances)
    if Z.ndim != 2 or d.shape != (len(Z),) or len(neighbourhood_inputs) != len(Z):
        raise ValueError(f"need features (N, K), inputs (N, ...) and distances (N,) with one N, got {Z.shape}, "
                         f"{len(neighbourhood_inputs)} inputs and {d.shape}")
    check_budget("number of samples", len(Z), Z.shape[1] + 1)
    values = scalar_output(f, target, probabilities)(neighbourhood_inputs)  # (N,)
    return LimeExplanation(*_explain(values, Z, d, kernel_width, alpha), n_samples=len(Z))


def lime_tabular(f: Callable, x, training_data, n_samples: int = 5000, kernel_width: float | None = None,
                 seed: int = 0, sample_around: str = "mean", discretize: bool | str = False,
                 target: int | None = None, feature_selection: str = "none", probabilities: bool = False,
                 alpha: float = 1.0) -> LimeExplanation:
    """LIME for one table row ``x (M,)`` and a model ``f(X (N, M) float64) -> (N,) | (N, C)``.

    As lime's ``LimeTabularExplainer`` (same draws for the same ``seed``: both use ``RandomState(seed)``):
    every feature is standardised with the training mean and standard deviation ``s`` (a constant column
    keeps ``s = 1``).

    * ``discretize=False``: samples ``N(0, 1)`` in standardised space, centred on the training mean
      (``sample_around="mean"``, lime's default) or on ``x`` (``"instance"``), mapped back to original units
      for ``f``. The surrogate sees the standardised samples, so ``coefficients`` are per standardised unit
      (lime's convention); ``per_unit = coefficients / s`` are per original unit.
    * ``discretize="quartile"``: each feature is cut at its training quartiles; a sample draws a bin per
      feature with the training frequencies, then a value inside it from a normal truncated to the bin (mean
      and std of the training values there). The surrogate's features say "same bin as x" (1) or not (0).

    Row 0 is ``x`` itself; distances are Euclidean between surrogate features; ``kernel_width`` defaults to
    ``0.75·√M``. ``feature_selection="none"`` keeps all M features (lime's default ``"auto"`` keeps a subset).
    """
    train, x = as_numpy(training_data), as_numpy(x)
    if train.ndim != 2 or train.shape[0] == 0 or train.shape[1] == 0:
        raise ValueError(f"training_data must be a non-empty (T, M) array, got shape {train.shape}")
    M = train.shape[1]
    if x.shape != (M,):
        raise ValueError(f"x must be one row of {M} features like training_data, got shape {x.shape}")
    if sample_around not in ("mean", "instance"):
        raise ValueError(f"sample_around must be 'mean' or 'instance', got {sample_around!r}")
    if discretize not in (False, "quartile"):
        raise ValueError(f"discretize must be False or 'quartile', got {discretize!r}")
    if feature_selection != "none":
        raise ValueError(f"only feature_selection='none' (all features) is implemented, got {feature_selection!r}")
    n_samples = check_budget("n_samples", n_samples, M + 1)
    kernel_width = 0.75 * np.sqrt(M) if kernel_width is None else kernel_width
    rng = np.random.RandomState(seed)
    if discretize is False:
        mean, scale = train.mean(0), train.std(0)  # (M,), (M,)
        scale[scale == 0] = 1.0
        draws = rng.normal(0, 1, n_samples * M).reshape(n_samples, M)  # (N, M) standard normal
        inputs = draws * scale + (x if sample_around == "instance" else mean)  # (N, M), original units
        inputs[0] = x
        features = (inputs - mean) / scale  # (N, M), standardised
    else:
        features, inputs = _quartile_neighbourhood(x, train, n_samples, rng)
    distances = np.linalg.norm(features - features[0], axis=1)  # (N,)
    values = scalar_output(f, target, probabilities)(inputs)  # (N,)
    beta, *rest = _explain(values, features, distances, kernel_width, alpha)
    per_unit = beta / scale if discretize is False else None  # (M,) slopes per original unit
    return LimeExplanation(beta, *rest, n_samples=n_samples, per_unit=per_unit)


def _quartile_neighbourhood(x: np.ndarray, train: np.ndarray, n: int, rng: np.random.RandomState):
    """lime's discretised sampling: ``(features (n, M) binary "same bin as x", inputs (n, M))``.

    The random draws come in lime's order: one bin per sample for every feature, then the values inside the
    bins, feature by feature, from ``scipy.stats.truncnorm`` with the same generator.
    """
    M = x.shape[0]
    features, inputs = np.ones((n, M)), np.empty((n, M))  # (n, M) each
    edges, bins = [], []
    for j in range(M):
        edges.append(np.unique(np.percentile(train[:, j], [25, 50, 75])))  # (≤3,) inner bin borders
        train_bins = np.searchsorted(edges[j], train[:, j])  # (T,) bin of every training value
        present, counts = np.unique(train_bins, return_counts=True)
        bins.append((train_bins, rng.choice(present, size=n, replace=True, p=counts / counts.sum())))  # (n,)
        features[1:, j] = bins[j][1][1:] == np.searchsorted(edges[j], x[j])
    for j in range(M):
        (train_bins, drawn), column = bins[j], train[:, j]
        bin_ids = range(len(edges[j]) + 1)
        means = np.array([column[train_bins == b].mean() if (train_bins == b).any() else 0.0 for b in bin_ids])
        stds = np.array([column[train_bins == b].std() if (train_bins == b).any() else 0.0 for b in bin_ids])
        stds += 1e-11  # lime's guard against a zero width
        lows = np.concatenate([[column.min()], edges[j]])[drawn[1:]]  # (n-1,) the drawn bin's borders
        highs = np.concatenate([edges[j], [column.max()]])[drawn[1:]]
        mu, sd = means[drawn[1:]], stds[drawn[1:]]  # (n-1,)
        a, b = (lows - mu) / sd, (highs - mu) / sd  # borders in units of the bin's std
        inputs[1:, j] = lows  # a bin holding one value (a = b) returns it (lime returns a, a quirk)
        wide = a != b
        inputs[1:, j][wide] = truncnorm.rvs(a[wide], b[wide], loc=mu[wide], scale=sd[wide], random_state=rng)
    inputs[0] = x
    return features, inputs


def _cosine_to_ones(on: np.ndarray) -> np.ndarray:
    """Cosine distance ``(N,)`` of each binary row of ``on (N, K)`` to the all-ones row: with ``k`` ones it is
    ``1 − k / (√k·√K) = 1 − √(k/K)`` (1 for an empty row, scikit-learn's convention for a zero vector)."""
    return 1.0 - np.sqrt(on.sum(1) / on.shape[1])


def lime_text(model: torch.nn.Module, input_ids, attention_mask=None, target: int | None = None,
              n_samples: int = 1000, seed: int = 0, kernel_width: float = 25.0, removal: str = "pad",
              keep_ids=(), probabilities: bool = False, batch_size: int = 256, position: int | None = None,
              alpha: float = 1.0) -> LimeExplanation:
    """LIME for one token sequence, removing tokens by id (the text is never re-tokenised).

    The interpretable features are the real positions whose id is not in ``keep_ids`` (e.g. [CLS], [SEP]).
    Each sample removes ``k`` of those ``n`` tokens, ``k`` uniform in 1..n−1, then which ones uniformly (as
    lime_text, which also allows removing all n: here one token always stays, so no input is empty). Row 0
    is the full text. ``removal="pad"`` sets the mask to 0 (the token becomes invisible, the others keep
    their positions); ``"delete"`` removes it and shifts the rest left. Distance: cosine distance between
    the on/off vector and all-ones, times 100 (lime_text's scale for ``kernel_width=25``).

    Args:
        model: the classifier contract, ``model(ids (B, L), attention_mask=(B, L)) -> logits (B, C)``, in
            eval mode; or a language model returning ``(B, L, V)`` logits (or a tuple starting with them):
            then ``target`` is a token id and the explained logit is read at ``position`` (default: the last
            real token), which is never removed (after a deletion it is read where that token went).
        input_ids, attention_mask: ``(L,)`` or ``(1, L)``; mask 1 = real token, 0 = padding.
    Returns:
        a :class:`LimeExplanation` with ``coefficients`` ``(L,)``.
    """
    if removal not in ("pad", "delete"):
        raise ValueError(f"removal must be 'pad' or 'delete', got {removal!r}")
    ids_np = torch.as_tensor(input_ids).cpu().numpy().astype(np.int64)  # (L,) or (1, L)
    input_shape = ids_np.shape
    real = np.ones(ids_np.shape, bool) if attention_mask is None else torch.as_tensor(attention_mask).cpu().numpy() != 0
    if real.shape != ids_np.shape or not (ids_np.ndim == 1 or ids_np.ndim == 2 and len(ids_np) == 1):
        raise ValueError(f"need input_ids (L,) or (1, L) and a mask of the same shape, got {ids_np.shape} and "
                         f"{real.shape}")
    ids_np, real = ids_np.reshape(-1), real.reshape(-1)  # (L,), (L,)
    batch_size = check_budget("batch_size", batch_size)
    device = next(model.parameters(), torch.empty(0)).device
    L = len(ids_np)

    def logits_of(batch_ids: np.ndarray, batch_mask: np.ndarray) -> torch.Tensor:
        with torch.no_grad():
            out = model(torch.as_tensor(batch_ids, dtype=torch.long, device=device),
                        attention_mask=torch.as_tensor(batch_mask, dtype=torch.long, device=device))
        return out[0] if isinstance(out, tuple) else out  # (B, C) or (B, L, V)

    language_model = logits_of(ids_np[None], real[None]).dim() == 3
    explainable = real & ~np.isin(ids_np, np.asarray(keep_ids, dtype=np.int64))  # (L,)
    if language_model:
        position = int(np.flatnonzero(real)[-1]) if position is None else position
        if not (isinstance(position, (int, np.integer)) and 0 <= position < L and real[position]):
            raise ValueError(f"position must be a real (mask 1) position in [0, {L}), got {position!r}")
        explainable[position] = False
    elif position is not None:
        raise ValueError(f"position is for language models (B, L, V) only; this model returns (B, C), got {position}")
    positions = np.flatnonzero(explainable)  # (n,) the interpretable features
    n = len(positions)
    if n < 2:
        raise ValueError(f"need at least 2 real tokens outside keep_ids to remove, got {n}")
    n_samples = check_budget("n_samples", n_samples, n + 1)
    rng = np.random.RandomState(seed)
    Z = np.ones((n_samples, n))  # (N, n) 1 = token kept
    for i, size in enumerate(rng.randint(1, n, n_samples - 1), start=1):
        Z[i, rng.choice(n, size, replace=False)] = 0
    on = np.tile(real, (n_samples, 1))  # (N, L) what the model sees of each sample
    on[:, positions] = Z == 1
    if removal == "pad":
        batch_ids, batch_mask = np.tile(ids_np, (n_samples, 1)), on  # (N, L) each
        read = np.full(n_samples, position or 0)  # (N,) where the LM's logits are read
    else:
        order = np.argsort(~on, axis=1, kind="stable")  # (N, L) the visible positions first, in their order
        batch_ids = ids_np[order]  # (N, L); the removed ids trail behind, under mask 0
        batch_mask = np.arange(L) < on.sum(1, keepdims=True)  # (N, L)
        read = on[:, :(position or 0) + 1].sum(1) - 1  # (N,) where the read token went after the shift
    values = []
    for start in range(0, n_samples, batch_size):
        rows = slice(start, start + batch_size)
        logits = logits_of(batch_ids[rows], batch_mask[rows])
        if language_model:
            logits = logits[torch.arange(len(logits)), torch.as_tensor(read[rows])]  # (B, V)
        values.append(select_target(as_numpy(logits), target, probabilities))  # (B,)
    beta, *rest = _explain(np.concatenate(values), Z, 100 * _cosine_to_ones(Z), kernel_width, alpha)
    coefficients = np.zeros(L)
    coefficients[positions] = beta
    coefficients = coefficients.reshape(input_shape)  # (L,) or (1, L): the input's shape
    return LimeExplanation(coefficients, *rest, n_samples=n_samples)


def digit_segments(shape: tuple[int, int] = (8, 8), patch: int = 2) -> np.ndarray:
    """An integer segment map ``(H, W)`` of ``patch × patch`` squares, numbered row by row (16 for 8×8 / 2).

    Superpixel algorithms (quickshift, SLIC, felzenszwalb) group neighbouring pixels of similar colour over
    regions of dozens of pixels; an 8×8 digit has 64 pixels in all, so they return a handful of arbitrary
    blobs or single pixels. A fixed grid of 2×2 patches gives every stroke fragment its own feature.
    """
    check_budget("patch", patch)
    H, W = shape
    return (np.arange(H) // patch)[:, None] * (-(-W // patch)) + (np.arange(W) // patch)[None, :]  # (H, W)


def lime_image(f: Callable, image, target: int | None = None, segments=None, n_samples: int = 1000, seed: int = 0,
               kernel_width: float = 0.25, hide_value: float = 0.0, probabilities: bool = False,
               batch_size: int = 256, alpha: float = 1.0) -> LimeExplanation:
    """LIME for one image ``(H, W)`` or ``(C, H, W)`` and a model ``f(images (N, [C,] H, W)) -> (N,) | (N, C)``.

    Each sample shows every segment or not (a fair coin per segment, as lime_image; row 0 shows all); hidden
    pixels take ``hide_value`` (lime's ``hide_color``). Distance: cosine distance of the on/off vector to
    all-ones, ``kernel_width`` 0.25 (lime_image's). ``segments`` ``(H, W)`` integer labels default to
    :func:`digit_segments`. ``coefficients`` has the image's shape, each pixel holding its segment's slope;
    ``segment_coefficients`` ``(S,)`` follows the sorted segment labels.
    """
    img = as_numpy(image)
    if img.ndim not in (2, 3):
        raise ValueError(f"image must be (H, W) or (C, H, W), got shape {img.shape}")
    H, W = img.shape[-2:]
    seg = digit_segments((H, W)) if segments is None else np.asarray(segments)
    if seg.shape != (H, W) or seg.dtype.kind not in "iu":
        raise ValueError(f"segments must be integer labels of shape {(H, W)}, got {seg.dtype} {seg.shape}")
    labels, index = np.unique(seg, return_inverse=True)
    index = index.reshape(H, W)  # (H, W) segment number in 0..S-1
    n_samples = check_budget("n_samples", n_samples, len(labels) + 1)
    batch_size = check_budget("batch_size", batch_size)
    rng = np.random.RandomState(seed)
    Z = rng.randint(0, 2, n_samples * len(labels)).reshape(n_samples, len(labels)).astype(float)  # (N, S)
    Z[0] = 1
    explained, values = scalar_output(f, target, probabilities), []
    for start in range(0, n_samples, batch_size):
        shown = Z[start:start + batch_size, index] == 1  # (B, H, W)
        values.append(explained(np.where(shown if img.ndim == 2 else shown[:, None], img, hide_value)))
    beta, *rest = _explain(np.concatenate(values), Z, _cosine_to_ones(Z), kernel_width, alpha)
    pixels = np.broadcast_to(beta[index], img.shape).copy()  # (H, W) or (C, H, W)
    return LimeExplanation(pixels, *rest, n_samples=n_samples, segment_coefficients=beta)
