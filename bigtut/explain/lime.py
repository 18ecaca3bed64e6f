"""LIME from scratch: explain a prediction by a weighted linear fit on random variations of the input.

Shape legend:  B batch   N samples   M input features   K interpretable features   L positions   S segments

Every LIME explainer is the same four steps; only the first three change with the kind of input.

1. a *neighbourhood*: N random variations of the input, the first one being the input itself;
2. *interpretable features* ``Z (N, K)`` of each variation (a standardised value, "in the same quartile as
   x", "token kept", "segment shown");
3. a *proximity weight* per variation: its distance to the input, through lime's kernel;
4. a weighted ridge regression of the explained output on ``Z``. Its slopes are the explanation, and its
   weighted R² (``score``) says how well a plane describes the model *around this input*.

This module holds steps 3 and 4 (shared) and the tabular explainer; :mod:`bigtut.explain.lime_tokens` and
:mod:`bigtut.explain.lime_images` hold the other two. The three explainers (:func:`lime_tabular`,
``lime_text``, ``lime_image``) keep the family's shape
(see :mod:`bigtut.explain`): a batch in, every row explained on its own neighbourhood drawn with the same
``seed`` (``RandomState(seed)`` afresh per row, so a row explained alone equals the same row in a batch, and
one row equals lime's own explainer with ``random_state=seed``), a :class:`LimeExplanation` of float64 NumPy
arrays with one row per example out.

The explained number is the model's logit for ``target`` (``probabilities=True``: its softmax probability).
The lime package itself explains probabilities, so the tests hand both sides the same probabilities.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from scipy.stats import truncnorm

from bigtut.explain.arguments import (
    check_budget,
    check_flag,
    check_float_batch,
    check_target_rows,
    resolve_batch_size,
    resolve_seed,
)
from bigtut.explain.common import as_numpy, scalar_output, target_of_row, to_model_input
from bigtut.validation import check_number

__all__ = ["LimeExplanation", "check_kernel_and_alpha", "cosine_to_ones", "diagnostics", "evaluate_rows",
           "explain_neighbourhood", "fit_surrogate", "lime_from_neighbourhood", "lime_kernel", "lime_tabular"]

Target = int | Sequence[int] | torch.Tensor | None


class LimeExplanation(NamedTuple):
    """LIME explanations of a batch of ``B`` inputs (float64 NumPy; ``B = 1`` for
    :func:`lime_from_neighbourhood`).

    Fields:
        attributions: the surrogate's slopes laid out like the explained inputs: ``(B, M)`` for table rows (per
            standardised unit, lime's convention, or per "same quartile" indicator), ``(B, L)`` for texts (0 at
            kept and padded positions, and at a language model's read position), the images' shape for images
            (each pixel holds its segment's slope).
        intercept: ``(B,)`` the surrogates' intercepts.
        score: ``(B,)`` weighted R² of each surrogate on its own neighbourhood (local fidelity; 1 = locally
            linear).
        prediction: ``(B,)`` each surrogate's value at its explained input (lime's ``local_pred``).
        value: ``(B,)`` the model's explained output at each input, to compare with ``prediction``.
        n_samples: size of each neighbourhood (model rows per explained input).
        per_unit: ``(B, M)`` slopes per *original* unit, ``attributions / std`` (:func:`lime_tabular` without
            discretisation only, else None).
        segment_coefficients: ``(B, S)`` one slope per segment, in the order of the sorted segment labels
            (:func:`lime_image` only, else None).
    """

    attributions: np.ndarray
    intercept: np.ndarray
    score: np.ndarray
    prediction: np.ndarray
    value: np.ndarray
    n_samples: int
    per_unit: np.ndarray | None = None
    segment_coefficients: np.ndarray | None = None


def lime_kernel(distances, kernel_width: float) -> np.ndarray:
    """Proximity weights ``(N,)`` of distances ``(N,)``: ``sqrt(exp(-d² / w²))``.

    This is lime's own choice: the square root of an exponential kernel, which is a Gaussian bump
    ``exp(-d² / (2 w²))`` of standard deviation ``w``. A sample at distance 0 weighs 1.
    """
    width = check_number("kernel_width", kernel_width, 0.0, low_open=True)
    d = as_numpy(distances)
    if not (np.isfinite(d).all() and (d >= 0).all()):
        raise ValueError("distances must be finite and >= 0, got NaN, inf or a negative value")
    return np.sqrt(np.exp(-(d ** 2) / width ** 2))


def fit_surrogate(features, targets, weights, *, alpha: float = 1.0) -> tuple[np.ndarray, float, float]:
    """Weighted ridge regression ``min Σ wᵢ (yᵢ − b − zᵢ·β)² + α ‖β‖²`` (the intercept ``b`` is not penalised).

    Closed form: centre ``Z`` and ``y`` on their weighted means, solve ``(Z_cᵀ W Z_c + αI) β = Z_cᵀ W y_c``, then
    ``b = ȳ − z̄·β``. This is what lime fits (scikit-learn's ``Ridge(alpha=1)`` with ``sample_weight``).

    Args:
        features: ``(N, K)`` interpretable features.  targets: ``(N,)``.  weights: ``(N,)``, non-negative.
        alpha: the ridge penalty, finite and ``>= 0``.
    Returns:
        ``(coefficients (K,), intercept, score)``, the score being the weighted R² on the same samples.
    """
    Z, y, w = as_numpy(features), as_numpy(targets), as_numpy(weights)
    if Z.ndim != 2 or y.shape != (len(Z),) or w.shape != (len(Z),):
        raise ValueError(f"need features (N, K), targets (N,) and weights (N,), got {Z.shape}, {y.shape}, {w.shape}")
    if len(Z) == 0 or Z.shape[1] == 0:
        raise ValueError(f"features must hold at least one sample and one feature, got shape {Z.shape}")
    if not (np.isfinite(Z).all() and np.isfinite(y).all()):
        raise ValueError("features and targets must be finite, got NaN or inf")
    if not (np.isfinite(w).all() and (w >= 0).all() and w.sum() > 0):
        raise ValueError("weights must be finite, non-negative and not all zero")
    alpha = check_number("alpha", alpha, 0.0)
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


def explain_neighbourhood(values: np.ndarray, features: np.ndarray, distances: np.ndarray, kernel_width: float,
                          alpha: float) -> tuple:
    """Steps 3 and 4 for one input: ``(coefficients (K,), intercept, score, prediction, value)`` for explained
    outputs ``(N,)``, features ``(N, K)`` and distances ``(N,)`` to the input (row 0)."""
    beta, intercept, score = fit_surrogate(features, values, lime_kernel(distances, kernel_width), alpha=alpha)
    return beta, intercept, score, float(intercept + features[0] @ beta), float(values[0])


def diagnostics(rows: list[tuple]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(intercept, score, prediction, value)``, each ``(B,)`` float64, of the rows' ``_explain`` tuples."""
    return tuple(np.array([row[i] for row in rows], dtype=np.float64) for i in (1, 2, 3, 4))


def check_kernel_and_alpha(kernel_width: Any, alpha: Any) -> tuple[float, float]:
    return (check_number("kernel_width", kernel_width, 0.0, low_open=True), check_number("alpha", alpha, 0.0))


def evaluate_rows(explained: Callable, rows: np.ndarray, to_model: Callable, batch_size: int) -> np.ndarray:
    """The explained outputs ``(N,)`` of ``rows`` ``(N, ...)``, at most ``batch_size`` rows per call of ``f``."""
    return np.concatenate([explained(to_model(rows[i:i + batch_size])) for i in range(0, len(rows), batch_size)])


def lime_from_neighbourhood(f: Callable, neighbourhood_features, neighbourhood_inputs, distances, *,
                            kernel_width: float, target: int | None = None, probabilities: bool = False,
                            alpha: float = 1.0) -> LimeExplanation:
    """LIME on a neighbourhood you built yourself (row 0 = the explained input): the building block under the
    three explainers, not a family method.

    ``f(neighbourhood_inputs (N, ...)) -> (N,) | (N, C)``, called once on all of them; the surrogate is fitted
    on ``neighbourhood_features (N, K)`` with ``distances (N,)`` to the explained input. One neighbourhood
    explains one input, so the result is a batch of one, like every :class:`LimeExplanation`:
    ``attributions`` ``(1, K)``, diagnostics ``(1,)``.
    """
    Z, d = as_numpy(neighbourhood_features), as_numpy(distances)
    if Z.ndim != 2 or d.shape != (len(Z),) or len(neighbourhood_inputs) != len(Z):
        raise ValueError(f"need neighbourhood_features (N, K), neighbourhood_inputs (N, ...) and distances (N,) "
                         f"with one N, got {Z.shape}, {len(neighbourhood_inputs)} inputs and {d.shape}")
    check_budget("number of samples (neighbourhood rows)", len(Z), Z.shape[1] + 1)
    kernel_width, alpha = check_kernel_and_alpha(kernel_width, alpha)
    probabilities = check_flag("probabilities", probabilities)
    to_model = to_model_input(f, neighbourhood_inputs)  # a module gets tensors, a function what it was given
    values = scalar_output(f, target, probabilities)(to_model(neighbourhood_inputs))  # (N,)  # (N,)
    row = explain_neighbourhood(values, Z, d, kernel_width, alpha)
    return LimeExplanation(row[0][None], *diagnostics([row]), n_samples=len(Z))


# ---------------------------------------------------------------------------------------------------- tables
def lime_tabular(f: Callable, inputs, *, target: Target = None, training_data, n_samples: int = 5000,
                 kernel_width: float | None = None, seed: int | None = None, sample_around: str = "mean",
                 discretize: bool | str = False, feature_selection: str = "none", batch_size: int | None = None,
                 probabilities: bool = False, alpha: float = 1.0) -> LimeExplanation:
    """LIME for table rows ``inputs (B, M)`` and a model ``f(X (N, M)) -> (N,) | (N, C)``.

    ``f`` receives tensors of the inputs' dtype on their device when ``inputs`` is a tensor; for NumPy inputs,
    float64 NumPy rows, or tensors on its device in its parameters' dtype when ``f`` is a ``torch.nn.Module``;
    at most ``batch_size`` rows per call. As lime's ``LimeTabularExplainer`` (same draws for the same ``seed``:
    both use ``RandomState(seed)``, here afresh for every row): every feature is standardised with the mean and
    standard deviation ``s`` of ``training_data`` ``(T, M)`` (a constant column keeps ``s = 1``).

    * ``discretize=False``: samples ``N(0, 1)`` in standardised space, centred on the training mean
      (``sample_around="mean"``, lime's default) or on the row (``"instance"``), mapped back to original units
      for ``f``. The surrogate sees the standardised samples, so ``attributions`` are per standardised unit
      (lime's convention); ``per_unit = attributions / s`` are per original unit.
    * ``discretize="quartile"``: each feature is cut at its training quartiles; a sample draws a bin per
      feature with the training frequencies, then a value inside it from a normal truncated to the bin (mean
      and std of the training values there). The surrogate's features say "same bin as the row" (1) or not (0).

    Row 0 of each neighbourhood is the row itself; distances are Euclidean between surrogate features;
    ``kernel_width`` defaults to ``0.75·√M``. ``feature_selection="none"`` keeps all M features (lime's default
    ``"auto"`` keeps a subset). ``target``: the class explained, an int or one per row.

    Returns a :class:`LimeExplanation`: ``attributions`` ``(B, M)``, diagnostics ``(B,)``, ``per_unit``
    ``(B, M)`` (None with ``discretize``).
    """
    check_float_batch("inputs", inputs, 2, "(B, M)")
    if inputs.ndim != 2:
        raise ValueError(f"inputs must be table rows (B, M), got shape {tuple(inputs.shape)}")
    check_float_batch("training_data", training_data, 2, "(T, M)")
    if training_data.ndim != 2:
        raise ValueError(f"training_data must be table rows (T, M), got shape {tuple(training_data.shape)}")
    x_all, train = as_numpy(inputs), as_numpy(training_data)  # (B, M), (T, M)
    B, M = x_all.shape
    if train.shape[1] != M:
        raise ValueError(f"inputs have {M} features but training_data has {train.shape[1]}; they must be rows of "
                         "the same table")
    if sample_around not in ("mean", "instance"):
        raise ValueError(f"sample_around must be 'mean' or 'instance', got {sample_around!r}")
    if not (discretize is False or isinstance(discretize, str) and discretize == "quartile"):
        raise ValueError(f"discretize must be False or 'quartile', got {discretize!r}")
    if feature_selection != "none":
        raise ValueError(f"only feature_selection='none' (all features) is implemented, got {feature_selection!r}")
    n_samples = check_budget("n_samples", n_samples, M + 1)
    kernel_width, alpha = check_kernel_and_alpha(0.75 * np.sqrt(M) if kernel_width is None else kernel_width,
                                                  alpha)
    seed, chunk = resolve_seed(seed), resolve_batch_size(batch_size)
    probabilities = check_flag("probabilities", probabilities)
    target = check_target_rows(target, B)
    mean, scale = train.mean(0), train.std(0)  # (M,), (M,)
    scale[scale == 0] = 1.0
    quartiles = _Quartiles(train) if discretize else None
    to_model = to_model_input(f, inputs)
    rows, betas = [], []
    for b, x in enumerate(x_all):
        rng = np.random.RandomState(seed)  # afresh per row: row b alone = row b in the batch = lime's draws
        if quartiles is None:
            draws = rng.normal(0, 1, n_samples * M).reshape(n_samples, M)  # (N, M) standard normal
            samples = draws * scale + (x if sample_around == "instance" else mean)  # (N, M), original units
            samples[0] = x
            features = (samples - mean) / scale  # (N, M), standardised
        else:
            features, samples = quartiles.neighbourhood(x, n_samples, rng)  # (N, M), (N, M)
        distances = np.linalg.norm(features - features[0], axis=1)  # (N,)
        values = evaluate_rows(scalar_output(f, target_of_row(target, b), probabilities), samples, to_model, chunk)
        rows.append(explain_neighbourhood(values, features, distances, kernel_width, alpha))
        betas.append(rows[-1][0])
    attributions = np.stack(betas)  # (B, M)
    per_unit = attributions / scale if quartiles is None else None  # (B, M) slopes per original unit
    return LimeExplanation(attributions, *diagnostics(rows), n_samples=n_samples, per_unit=per_unit)


class _Quartiles:
    """lime's quartile discretisation of a training table ``(T, M)``: the bins of every feature and the
    training values' frequency, mean and std in each; :meth:`neighbourhood` samples around a row."""

    def __init__(self, train: np.ndarray):
        inner = np.percentile(train, [25, 50, 75], axis=0)  # (3, M): every feature's quartiles at once
        distinct = np.ones_like(inner, dtype=bool)  # (3, M): np.unique's edges (equal quartiles count once)
        distinct[1:] = inner[1:] != inner[:-1]
        bins = ((inner[:, None, :] < train[None]) & distinct[:, None, :]).sum(0)  # (T, M): = searchsorted(edges, x)
        one_hot = bins[..., None] == np.arange(4)  # (T, M, 4): a feature has at most 4 bins
        counts = one_hot.sum(0)  # (M, 4)
        safe = np.maximum(counts, 1)
        means = np.einsum("tmb,tm->mb", one_hot, train) / safe  # (M, 4); 0 for an empty bin
        spread = train[..., None] - means[None]  # (T, M, 4): deviation from each bin's mean
        stds = np.sqrt(np.einsum("tmb,tmb->mb", one_hot, spread ** 2) / safe)  # (M, 4): ddof 0, as np.std
        low, high = train.min(0), train.max(0)  # (M,)
        self.edges, self.present, self.frequency, self.low, self.high, self.means, self.stds = ([] for _ in range(7))
        for j in range(train.shape[1]):  # per feature: only slicing, the arithmetic is done above
            edges = inner[distinct[:, j], j]  # (≤3,) inner bin borders
            n_bins = len(edges) + 1
            present = np.flatnonzero(counts[j, :n_bins])
            self.edges.append(edges)
            self.present.append(present)
            self.frequency.append(counts[j, present] / counts[j].sum())
            self.low.append(np.concatenate([[low[j]], edges]))  # (bins,) each bin's borders
            self.high.append(np.concatenate([edges, [high[j]]]))
            self.means.append(means[j, :n_bins])
            self.stds.append(stds[j, :n_bins] + 1e-11)  # lime's guard against a zero width

    def neighbourhood(self, x: np.ndarray, n: int, rng: np.random.RandomState) -> tuple[np.ndarray, np.ndarray]:
        """``(features (n, M) binary "same bin as x", inputs (n, M))``, row 0 being ``x``.

        The random draws come in lime's order: one bin per sample for every feature, then the values inside the
        bins, feature by feature, from ``scipy.stats.truncnorm`` with the same generator.
        """
        M = len(x)
        features, inputs = np.ones((n, M)), np.empty((n, M))  # (n, M) each
        drawn = []
        for j in range(M):
            drawn.append(rng.choice(self.present[j], size=n, replace=True, p=self.frequency[j])[1:])  # (n-1,)
            features[1:, j] = drawn[j] == np.searchsorted(self.edges[j], x[j])
        for j in range(M):
            lows, highs = self.low[j][drawn[j]], self.high[j][drawn[j]]  # (n-1,) the drawn bins' borders
            mu, sd = self.means[j][drawn[j]], self.stds[j][drawn[j]]  # (n-1,)
            a, b = (lows - mu) / sd, (highs - mu) / sd  # borders in units of the bin's std
            inputs[1:, j] = lows  # a bin holding one value (a = b) returns it (lime returns a, a quirk)
            wide = a != b
            inputs[1:, j][wide] = truncnorm.rvs(a[wide], b[wide], loc=mu[wide], scale=sd[wide], random_state=rng)
        inputs[0] = x
        return features, inputs


def cosine_to_ones(on: np.ndarray) -> np.ndarray:
    """Cosine distance ``(N,)`` of each binary row of ``on (N, K)`` to the all-ones row: with ``k`` ones it is
    ``1 − k / (√k·√K) = 1 − √(k/K)`` (1 for an empty row, scikit-learn's convention for a zero vector)."""
    return 1.0 - np.sqrt(on.sum(1) / on.shape[1])
