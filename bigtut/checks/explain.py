"""Checkers for chapters 06 and 07 (LIME, SHAP); notebook 08's Integrated Gradients checkers live in
:mod:`bigtut.checks.integrated_gradients`.

Each takes the student's function, compares it with :mod:`bigtut.explain` on fresh random cases, and is
built to catch the wrong formulas that circulate in course notes; a failure names the input, what was
expected and what came back, and — when the answer is a known wrong variant — which mistake it is:

==================================  ==========================================================================
checker                             the formula it holds the candidate to (and the usual mistake it catches)
==================================  ==========================================================================
``check_lime_kernel``               lime's weight √exp(−d²/w²) (not exp(−d²/w²), not exp(−d/w), not w
                                    unsquared, not normalised weights, not float32, not in place)
``check_weighted_least_squares``    the surrogate minimises Σ π(z)(f(z) − g(z))² (not an unweighted fit, not
                                    rows times w instead of √w, not y or Z left unweighted, not without an
                                    intercept, not lime's ridge penalty, not the outputs swapped)
``check_lime_tabular``              tabular LIME end to end = ``lime_tabular`` on the same seed (not sampled
                                    around the wrong centre, not another generator or std, not unscaled
                                    distances, not exp(−d²/w²) or another width, not unweighted, not α ≠ 1,
                                    not a penalised or missing intercept, not probabilities, not another
                                    column); a nameless mistake is told whether ``f`` got lime's samples
``check_shapley_weight``            |S|!(M−|S|−1)!/M! (not 1/M, not 1/2^(M−1), not |S|!(M−|S|)!/M!, not
                                    1/C(M−1, |S|), not integer division)
``check_shapley_value``             Σ_{S⊆N∖{i}} w(|S|)[v(S∪{i}) − v(S)] (not v(S) − v(S∖{i}) over S ∌ i, not
                                    unweighted, not the sign flipped, not a coalition size left out)
``check_kernel_shap_solve``         KernelSHAP's weighted least squares under Σφ = f(x) − f(∅) = ``kernel_game``
                                    (not unconstrained, not a free intercept, not the wrong right-hand side,
                                    not unweighted or reweighted, not the eliminated φ_M left out or wrong,
                                    not rescaled to add up, not ∅ and N as heavy rows), also on a design
                                    without complement pairs
==================================  ==========================================================================

Every checker also hands the candidate copies of its tensors and fails it if it changed them in place
(:func:`~bigtut.checks.core.assert_unchanged`), and fails an answer that calls the course's own implementation
(``bigtut.explain``'s ``lime_kernel``, ``fit_surrogate``, ``lime_tabular``, ``coalition_weight``,
``exact_shapley``, ``kernel_game``; lime's ``LimeTabularExplainer`` and ``LimeBase``, scikit-learn's ``Ridge``,
``RidgeCV`` and ``ridge_regression``, shap's ``KernelExplainer``;
:func:`~bigtut.checks.forbidden.assert_does_not_use`). The known mistakes are named by
:func:`~bigtut.checks.core.assert_close_or_hint`.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
import torch

from bigtut.checks.core import (
    CheckFailure,
    _as_float64,
    _describe,
    assert_close,
    assert_close_or_hint,
    assert_unchanged,
    checker_generator,
    guarded,
    passed,
    random_float64,
    wrong_only,
)
from bigtut.checks.forbidden import OWN_ANSWER, assert_does_not_use

__all__ = ["check_kernel_shap_solve", "check_lime_kernel", "check_lime_tabular", "check_shapley_value",
           "check_shapley_weight", "check_weighted_least_squares"]


# ------------------------------------------------------------------------------------- reading the answers
def _numbers(got: Any) -> Any:
    """A candidate's array answer ready for :func:`assert_close`: a tensor detached, NumPy arrays, lists and Python
    floats as float64 tensors (``torch.as_tensor`` alone would read a Python float as float32), anything else as
    it came (the comparison then says what it is)."""
    if isinstance(got, torch.Tensor):
        return got.detach()
    converted = _as_float64(got)
    return got if converted is None else converted


def _number(name: str, got: Any, inputs: str) -> float:
    """A candidate's scalar answer as a float, or a :class:`CheckFailure` saying what came back instead."""
    try:
        return float(got)
    except (TypeError, ValueError, RuntimeError):
        raise CheckFailure(f"{name}: expected a number for {inputs}, got {_describe(got)}") from None


# ------------------------------------------------------------------------------------------------- LIME
def _lime_variants(d: torch.Tensor, w: float, expected: torch.Tensor) -> dict[str, torch.Tensor]:
    """The weights of the usual wrong kernels for distances ``d`` and width ``w``."""
    return {
        "exp(−d²/w²) has no square root; lime's weight is √exp(−d²/w²) = exp(−d²/(2w²))": torch.exp(-d**2 / w**2),
        "exp(−d/w): the distance and the width must be squared": torch.exp(-d / w),
        "√exp(−d/w): the distance and the width must be squared": torch.sqrt(torch.exp(-d / w)),
        "√exp(−d²/w): the width must be squared too": torch.sqrt(torch.exp(-d**2 / w)),
        "√exp(−d/w²): the distance must be squared": torch.sqrt(torch.exp(-d / w**2)),
        "the exponent's sign is wrong: √exp(+d²/w²) grows with the distance": torch.sqrt(torch.exp(d**2 / w**2)),
        "the weights were normalised to sum to 1; lime's are not (the instance itself weighs 1)":
            expected / expected.sum(),
    }


def check_lime_kernel(candidate: Callable, seed: int | None = None) -> None:
    """``candidate(distances (N,), kernel_width) -> weights (N,)`` must be lime's √exp(−d²/w²)."""
    from bigtut.explain.lime import lime_kernel

    gen, seed = checker_generator(seed)
    name = "lime_kernel"
    for width in (0.75, 2.0, 25.0):
        distances = random_float64(gen, 50).abs() * width * 1.5  # (N,) from 0 to a few widths
        distances[0] = 0.0  # the instance itself: weight 1
        expected = torch.as_tensor(lime_kernel(distances.numpy(), width))
        given = distances.clone()
        inputs = f"50 distances, kernel_width={width} (seed={seed})"
        got = guarded(name, f"kernel_weights(distances, {width}) ({inputs})", candidate, given, width)
        assert_unchanged(name, inputs, {"distances": (distances, given)})
        assert_close_or_hint(got, expected, what=name, inputs=inputs, atol=1e-10, rtol=1e-8,
                             variants=partial(_lime_variants, distances, width, expected))
    assert_does_not_use(name, candidate, {"lime_kernel": OWN_ANSWER.format("bigtut.explain's lime_kernel")})
    passed(name, "√exp(−d²/w²) for three kernel widths")


def _wls(features: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor, *, row_scale: torch.Tensor | None = None,
         target_scale: torch.Tensor | None = None, intercept: bool = True) -> torch.Tensor:
    """The weighted least-squares coefficients (intercept first when ``intercept``), rows scaled by √weights unless
    ``row_scale`` / ``target_scale`` say otherwise: the right fit and its usual wrong variants."""
    root = weights.sqrt()
    design = torch.cat([torch.ones(len(features), 1, dtype=features.dtype), features], 1) if intercept else features
    rows = (root if row_scale is None else row_scale)[:, None]
    ys = (root if target_scale is None else target_scale)[:, None]
    return torch.linalg.lstsq(design * rows, targets[:, None] * ys).solution[:, 0]


def _wls_variants(Z: torch.Tensor, y: torch.Tensor, w: torch.Tensor) -> dict[str, Any]:
    """The coefficients of the usual wrong fits (computed only when asked for)."""
    from bigtut.explain.lime import fit_surrogate

    return {
        "an unweighted fit: the weights were not used": _wls(Z, y, torch.ones_like(w))[1:],
        "the rows were multiplied by w, not √w (that minimises Σ w²·residual²)": _wls(Z, y, w**2)[1:],
        "only [1, Z] was multiplied by √w; y must be too": _wls(Z, y, w, target_scale=torch.ones_like(w))[1:],
        "only y was multiplied by √w; the rows of [1, Z] must be too": _wls(Z, y, w, row_scale=torch.ones_like(w))[1:],
        "no intercept: add a column of ones to Z (the intercept is fitted, not 0)": _wls(Z, y, w, intercept=False),
        "a ridge penalty (lime's default alpha=1); this exercise asks for none":
            torch.as_tensor(fit_surrogate(Z.numpy(), y.numpy(), w.numpy(), alpha=1.0)[0]),
        "the weights were inverted (1 / w)": _wls(Z, y, 1 / w)[1:],
    }


def check_weighted_least_squares(candidate: Callable, seed: int | None = None) -> None:
    """``candidate(features (N, K), targets (N,), weights (N,)) -> (coefficients (K,), intercept)`` must
    minimise Σ weights · (targets − intercept − features @ coefficients)²."""
    from bigtut.explain.lime import fit_surrogate

    gen, seed = checker_generator(seed)
    name = "weighted_least_squares"
    for n, k in ((40, 3), (200, 6)):
        features = (torch.rand(n, k, generator=gen, dtype=torch.float64) < 0.5).double()  # (N, K) on/off
        targets = random_float64(gen, n)  # (N,) not linear in the features: weights change the answer
        weights = torch.rand(n, generator=gen, dtype=torch.float64) ** 3  # (N,) very unequal
        coefficients, intercept, _ = fit_surrogate(features.numpy(), targets.numpy(), weights.numpy(), alpha=0.0)
        what = f"N={n} samples, K={k} features, unequal weights (seed={seed})"
        given = features.clone(), targets.clone(), weights.clone()
        got = guarded(name, f"weighted_least_squares(features, targets, weights) for {what}", candidate, *given)
        assert_unchanged(name, what, {"features": (features, given[0]), "targets": (targets, given[1]),
                                      "weights": (weights, given[2])})
        if not isinstance(got, (tuple, list)) or len(got) != 2:
            raise CheckFailure(f"{name}: expected (coefficients, intercept), got {_describe(got)} for {what}")
        shapes = [tuple(torch.as_tensor(g).shape) if _as_float64(g) is not None else None for g in got]
        if shapes[0] == () and shapes[1] == (k,):
            raise CheckFailure(f"{name}: got (a number, a ({k},) tensor) for {what}: return (coefficients (K,), "
                               f"intercept) in that order")
        if shapes[0] == (k + 1,):
            raise CheckFailure(f"{name}: coefficients of shape ({k + 1},) for {what}, expected ({k},): the "
                               f"intercept is still among them — return solution[1:] and solution[0] separately")
        assert_close_or_hint(got[0], torch.as_tensor(coefficients), what=f"{name} coefficients", inputs=what,
                             atol=1e-7, variants=partial(_wls_variants, features, targets, weights))
        assert_close(got[1], torch.as_tensor(intercept), what=f"{name} intercept", inputs=what, atol=1e-7)
    assert_does_not_use(name, candidate, {"fit_surrogate": OWN_ANSWER.format("bigtut.explain's fit_surrogate")})
    passed(name, "the weighted fit on two random neighbourhoods")


# ------------------------------------------------------------------------------------- LIME, end to end
class _TabularModel:
    """A small random network ``(N, M) -> logits (N, C)`` handed to a LIME answer. It records every batch it is
    called with (float64 NumPy copies), so that a failure can say whether the samples were lime's."""

    def __init__(self, gen: torch.Generator, m: int, n_classes: int, hidden: int = 8) -> None:
        self.w1 = random_float64(gen, m, hidden, scale=1.5 / math.sqrt(m))
        self.b1 = random_float64(gen, hidden, scale=0.5)
        self.w2 = random_float64(gen, hidden, n_classes)
        self.b2 = random_float64(gen, n_classes)
        self.m, self.batches = m, []

    def __call__(self, rows: Any) -> torch.Tensor:
        dtype = getattr(rows, "dtype", None)  # a tensor's or an array's; a list of Python floats is float64 anyway
        lower = (dtype.is_floating_point and dtype != torch.float64) if isinstance(dtype, torch.dtype) else (
            isinstance(dtype, np.dtype) and np.issubdtype(dtype, np.floating) and dtype != np.float64)
        if lower:
            raise TypeError(f"f takes float64 rows, got {dtype}: samples rounded to {dtype} are not lime's samples "
                            f"— keep them in float64 (torch.from_numpy of NumPy's float64 draws)")
        rows = (rows.detach() if isinstance(rows, torch.Tensor) else torch.as_tensor(rows, dtype=torch.float64)
                ).to("cpu", torch.float64)
        if rows.ndim != 2 or rows.shape[1] != self.m:
            raise ValueError(f"f takes a batch of rows (N, {self.m}), got shape {tuple(rows.shape)}")
        self.batches.append(rows.numpy().copy())
        return torch.tanh(rows @ self.w1 + self.b1) @ self.w2 + self.b2  # (N, C) logits

    def logits(self, rows: np.ndarray) -> np.ndarray:
        """The same network on NumPy rows ``(N, M)``, unrecorded: logits ``(N, C)``."""
        rows = torch.as_tensor(rows, dtype=torch.float64)
        return (torch.tanh(rows @ self.w1 + self.b1) @ self.w2 + self.b2).numpy()


def _lime_draws(rule: str, seed: int, n: int, m: int) -> np.ndarray:
    """The ``(n, m)`` standard-normal draws of a sampler: lime's (``"RandomState"``) and the usual wrong ones."""
    draws = {
        "RandomState": lambda: np.random.RandomState(seed).normal(0, 1, (n, m)),
        "seed 0": lambda: np.random.RandomState(0).normal(0, 1, (n, m)),
        "default_rng": lambda: np.random.default_rng(seed).normal(0, 1, (n, m)),
        "default_rng standard_normal": lambda: np.random.default_rng(seed).standard_normal((n, m)),
        "torch": lambda: torch.randn(n, m, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).numpy(),
        "transposed": lambda: np.random.RandomState(seed).normal(0, 1, (m, n)).T,
    }
    return draws[rule]()


def _weighted_ridge(features: np.ndarray, y: np.ndarray, pi: np.ndarray, alpha: float,
                    intercept: str) -> tuple[np.ndarray, float]:
    """``(β (K,), b)`` minimising Σ πᵢ (yᵢ − b − zᵢ·β)² + α‖β‖² (``intercept="free"``), with α b² added
    (``"penalised"``) or with b = 0 (``"none"``)."""
    k = features.shape[1]
    if intercept == "free":
        z_bar, y_bar = pi @ features / pi.sum(), pi @ y / pi.sum()  # (K,), ()
        zc, yc = features - z_bar, y - y_bar
        beta = np.linalg.solve(zc.T @ (pi[:, None] * zc) + alpha * np.eye(k), zc.T @ (pi * yc))
        return beta, float(y_bar - z_bar @ beta)
    design = np.c_[np.ones(len(features)), features] if intercept == "penalised" else features
    theta = np.linalg.solve(design.T @ (pi[:, None] * design) + alpha * np.eye(design.shape[1]), design.T @ (pi * y))
    return (theta[1:], float(theta[0])) if intercept == "penalised" else (theta, 0.0)


def _lime_scale(train: np.ndarray, ddof: int = 0) -> np.ndarray:
    """lime's feature scales ``(M,)``: the training standard deviations, 1 for a constant column."""
    scale = train.std(0, ddof=ddof)
    return np.where(scale == 0, 1.0, scale)


def _lime_samples(x: np.ndarray, train: np.ndarray, n: int, seed: int, around: str) -> np.ndarray:
    """lime_tabular's samples ``(N, M)`` in the model's units (row 0 = x)."""
    samples = _lime_draws("RandomState", seed, n, len(x)) * _lime_scale(train) + (
        x if around == "instance" else train.mean(0))
    samples[0] = x
    return samples


def _lime_by_hand(model: _TabularModel, x: np.ndarray, train: np.ndarray, target: int, n: int, seed: int,
                  around: str, *, draws: str = "RandomState", ddof: int = 0, row0: bool = True,
                  fit_on: str = "standardised", model_on: str = "samples", distance: str = "to x",
                  kernel: str = "lime", width: str = "0.75√M", weighting: str = "kernel", alpha: float = 1.0,
                  intercept: str = "free", output: str = "logit", column: int | None = None
                  ) -> tuple[np.ndarray, float, dict[str, np.ndarray]]:
    """Tabular LIME written out: ``(attributions (M,), intercept, parts)`` as
    :func:`bigtut.explain.lime_tabular` computes them with the defaults (``parts``: the standardised rows ``z``,
    the weights ``pi`` and the outputs ``y``) — and, with one argument changed, as each usual mistake does."""
    m = len(x)
    mean, scale = train.mean(0), _lime_scale(train, ddof)  # (M,), (M,)
    centre = x if around == "instance" else mean
    samples = _lime_draws(draws, seed, n, m) * scale + centre  # (N, M) in the model's units
    if row0:
        samples[0] = x
    z = (samples - mean) / scale  # (N, M) standardised
    d = {"to x": lambda: np.linalg.norm(z - z[0], axis=1),
         "unscaled": lambda: np.linalg.norm(samples - samples[0], axis=1),
         "to the centre": lambda: np.linalg.norm(z - (centre - mean) / scale, axis=1),
         "squared": lambda: np.linalg.norm(z - z[0], axis=1) ** 2}[distance]()  # (N,)
    w = {"0.75√M": 0.75 * math.sqrt(m), "√M": math.sqrt(m), "0.75M": 0.75 * m, "0.75": 0.75}[width]
    pi = {"lime": lambda: np.sqrt(np.exp(-d ** 2 / w ** 2)), "no sqrt": lambda: np.exp(-d ** 2 / w ** 2),
          "exp(-d/w)": lambda: np.exp(-d / w)}[kernel]()  # (N,)
    pi = {"kernel": pi, "none": np.ones_like(pi), "squared": pi ** 2, "normalised": pi / pi.sum()}[weighting]
    outputs = model.logits(samples if model_on == "samples" else z)  # (N, C)
    if output != "logit":
        shifted = outputs - outputs.max(1, keepdims=True)
        log_p = shifted - np.log(np.exp(shifted).sum(1, keepdims=True))
        outputs = np.exp(log_p) if output == "probability" else log_p
    y = outputs[:, target if column is None else column]  # (N,)
    beta, b = _weighted_ridge(z if fit_on == "standardised" else samples, y, pi, alpha, intercept)
    return beta, b, {"z": z, "pi": pi, "y": y}


def _lime_tabular_variants(model: _TabularModel, x: np.ndarray, train: np.ndarray, target: int, n: int, seed: int,
                           around: str, n_classes: int) -> dict[str, Any]:
    """The attributions ``(M,)`` of the usual wrong LIMEs (each computed only when asked for)."""
    args = (model, x, train, target, n, seed)

    def wrong(around: str = around, **change: Any) -> Callable[[], np.ndarray]:
        return lambda: _lime_by_hand(*args, around, **change)[0]

    centre = "the training mean (lime's default)" if around == "mean" else "x itself"
    variants = {
        f"the samples were drawn around the {'instance' if around == 'mean' else 'training mean'}; "
        f"sample_around={around!r} centres them on {centre}": wrong("instance" if around == "mean" else "mean"),
        "row 0 is not x: after drawing, set samples[0] = x (the explained row is the first sample)":
            wrong(row0=False),
        "the seed argument was ignored (RandomState(0)): draw from np.random.RandomState(seed)": wrong(draws="seed 0"),
        "np.random.default_rng(seed) is another generator: lime draws from np.random.RandomState(seed)":
            wrong(draws="default_rng"),
        "np.random.default_rng(seed) is another generator: lime draws from np.random.RandomState(seed)"
        ".normal(0, 1, (n_samples, M))": wrong(draws="default_rng standard_normal"),
        "torch's generator draws other numbers: lime draws from np.random.RandomState(seed).normal(0, 1, "
        "(n_samples, M))": wrong(draws="torch"),
        "the draws were shaped (M, n_samples) and transposed: draw (n_samples, M) in one call":
            wrong(draws="transposed"),
        "the standard deviation is the unbiased one (divides by T − 1, torch's std() default); lime uses NumPy's, "
        "which divides by T: std(0, correction=0)": wrong(ddof=1),
        "the surrogate was fitted on the samples in the model's units; lime fits it on the standardised rows "
        "(samples − mean) / std": wrong(fit_on="samples"),
        "the slopes were divided by the standard deviations (lime_tabular's per_unit); the attributions are per "
        "standardised unit": lambda: _lime_by_hand(*args, around)[0] / _lime_scale(train),
        "f was given the standardised rows; f takes the samples in the model's units": wrong(model_on="standardised"),
        "the distances were measured in the model's units; lime measures them between standardised rows "
        "(z − z₀, z = (samples − mean) / std)": wrong(distance="unscaled"),
        "the distances were measured from the sampling centre (the training mean), not from x (row 0)":
            wrong(distance="to the centre"),
        "the kernel got squared distances: d is the Euclidean norm ‖z − z₀‖, which the kernel squares":
            wrong(distance="squared"),
        "exp(−d²/w²) has no square root; lime's weight is √exp(−d²/w²)": wrong(kernel="no sqrt"),
        "exp(−d/w): lime's weight is √exp(−d²/w²)": wrong(kernel="exp(-d/w)"),
        "kernel width √M: lime's default is 0.75·√M": wrong(width="√M"),
        "kernel width 0.75·M: lime's default is 0.75·√M": wrong(width="0.75M"),
        "kernel width 0.75: lime's default is 0.75·√M": wrong(width="0.75"),
        "an unweighted fit: the kernel weights were not used": wrong(weighting="none"),
        "the weights were squared (rows times π, not √π)": wrong(weighting="squared"),
        "the weights were normalised to sum to 1, which makes the ridge penalty relatively stronger; lime's "
        "weights are the kernel's (the instance weighs 1)": wrong(weighting="normalised"),
        "no ridge penalty: lime fits Ridge(alpha=1)": wrong(alpha=0.0),
        "the intercept was penalised too: lime (like scikit-learn's Ridge) penalises only the slopes — centre on "
        "the weighted means, or put 0 on the intercept's diagonal entry": wrong(intercept="penalised"),
        "no intercept: the surrogate is b + z·β with b fitted (and not penalised)": wrong(intercept="none"),
        "the probabilities were explained; the method's default is the logit of the target (lime_tabular's "
        "probabilities=False)": wrong(output="probability"),
        "the log-probabilities were explained; the method's default is the logit of the target":
            wrong(output="log_probability"),
    }
    for alpha in (0.01, 0.1, 0.5, 2.0, 10.0):
        variants[f"alpha={alpha:g}: lime's ridge penalty is alpha=1"] = wrong(alpha=alpha)
    for column in range(n_classes):
        if column != target:
            variants[f"output column {column} was explained, not target={target}: take f(samples)[:, target]"] = \
                wrong(column=column)
    return variants


def _lime_intercept_variants(model: _TabularModel, x: np.ndarray, train: np.ndarray, target: int, n: int, seed: int,
                             around: str) -> dict[str, Any]:
    """The intercepts the usual wrong returns give when the slopes are right."""
    def right() -> tuple[np.ndarray, float, dict[str, np.ndarray]]:
        return _lime_by_hand(model, x, train, target, n, seed, around)

    def weighted_mean() -> float:
        parts = right()[2]
        return float(parts["pi"] @ parts["y"] / parts["pi"].sum())

    def at_x() -> float:
        beta, b, parts = right()
        return float(b + parts["z"][0] @ beta)

    return {"that is the weighted mean ȳ; the intercept is b = ȳ − z̄·β": weighted_mean,
            "that is the surrogate's value at x (b + z₀·β), not its intercept b — e.g. from features centred on x "
            "(z − z₀); lime's features are (samples − mean) / std": at_x,
            "the intercept is the fitted b of g(z) = b + z·β, not 0": 0.0}


def _samples_diagnosis(model: _TabularModel, expected: np.ndarray) -> str:
    """What the batches ``f`` received say about a wrong LIME answer whose mistake has no name."""
    batches = model.batches
    together = np.concatenate(batches) if batches else np.zeros((0, expected.shape[1]))
    if any(rows.shape == expected.shape and np.allclose(rows, expected, rtol=1e-12, atol=1e-12)
           for rows in [*batches, together]):
        return ("\n  f received exactly lime_tabular's samples, so the sampler is right: the difference lies in the "
                "distances, the kernel, the explained output or the fit.")
    return ("\n  f never received lime_tabular's samples (n_samples rows, row 0 = x): follow the random recipe — "
            "draws = np.random.RandomState(seed).normal(0, 1, (n_samples, M)); samples = draws * std + centre; "
            "samples[0] = x.")


#: (M features, T training rows, C classes, the class explained, n_samples, sample_around, index of a constant
#: column or None). The class: the least likely at x, the predicted one, or — last — the one of the two that was
#: not explained yet, so that an answer explaining a fixed column or the predicted class fails somewhere.
_LIME_CASES = ((4, 60, 3, "least likely", 400, "mean", None), (6, 40, 3, "predicted", 300, "instance", 1),
               (3, 30, 2, "new", 200, "mean", 2))


def check_lime_tabular(candidate: Callable, seed: int | None = None) -> None:
    """``candidate(f, x (M,), training_data (T, M), target, n_samples, seed, sample_around="mean") ->
    (attributions (M,), intercept)`` must equal :func:`bigtut.explain.lime_tabular` with the same arguments
    (no discretisation, all features, kernel width 0.75·√M, Ridge(α=1), the logit of ``target``) to 1e-8: the
    same draws from ``np.random.RandomState(seed)``, the same kernel, the same fit."""
    from bigtut.explain.lime import lime_tabular

    gen, seed = checker_generator(seed)
    name = "lime_tabular"
    if not callable(candidate):
        raise CheckFailure(f"{name}: expected a function, got {_describe(candidate)}")
    targets: list[int] = []
    for m, t, n_classes, explained, n, around, constant in _LIME_CASES:
        column_means, column_scales = random_float64(gen, m, scale=3.0), random_float64(gen, m).exp()  # (M,) each
        train = random_float64(gen, t, m) * column_scales + column_means  # (T, M): unequal means and scales
        if constant is not None:
            train[:, constant] = 1.5  # exactly constant: standard deviation 0
        x = train[0] + 0.5 * random_float64(gen, m) * column_scales  # (M,) near the data, not a training row
        model = _TabularModel(gen, m, n_classes)
        lime_seed = int(torch.randint(1, 2**31 - 1, (1,), generator=gen))
        x_np, train_np = x.numpy(), train.numpy()
        at_x = model.logits(x_np[None])[0]  # (C,)
        least, predicted = int(at_x.argmin()), int(at_x.argmax())
        target = {"least likely": least, "predicted": predicted,
                  "new": next((c for c in (least, predicted) if c not in targets), least)}[explained]
        targets.append(target)
        reference = lime_tabular(model.logits, x_np[None], training_data=train_np, target=target, n_samples=n,
                                 seed=lime_seed, sample_around=around)
        constant_note = "" if constant is None else ", a constant training column"
        what = (f"a random network of M={m} features and {n_classes} classes, target={target}, n_samples={n}, "
                f"seed={lime_seed}, sample_around={around!r}{constant_note} (checker seed={seed})")
        given = x.clone(), train.clone()
        got = guarded(name, f"lime_tabular_by_hand(f, x, training_data, {target}, {n}, {lime_seed}, {around!r}) "
                            f"for {what}", candidate, model, *given, target, n, lime_seed, around)
        assert_unchanged(name, what, {"x": (x, given[0]), "training_data": (train, given[1])})
        if not isinstance(got, (tuple, list)) or len(got) != 2:
            raise CheckFailure(f"{name}: expected (attributions, intercept), got {_describe(got)} for {what}")
        attributions, intercept = (_numbers(g) for g in got)
        if isinstance(intercept, torch.Tensor) and intercept.numel() == 1:
            intercept = intercept.reshape(())  # a one-element intercept (theta[:1]) is the intercept all the same
        values = _as_float64(attributions)
        if values is not None and tuple(values.shape) == (m + 1,):
            raise CheckFailure(f"{name}: {m + 1} attributions for {what}, expected {m}: the intercept is still among "
                               f"them — return the slopes and the intercept separately")
        if constant is not None and values is not None and not torch.isfinite(values).all():
            raise CheckFailure(f"{name}: the attributions hold NaN or inf for {what}.\n  Hint: a constant training "
                               f"column has standard deviation 0; lime (and lime_tabular) uses the scale 1 for it.")
        try:
            assert_close_or_hint(attributions, torch.as_tensor(reference.attributions[0]), what=f"{name} attributions",
                                 inputs=what, atol=1e-8, rtol=1e-8, hint_atol=1e-7,
                                 variants=wrong_only(partial(_lime_tabular_variants, model, x_np, train_np,
                                                             target, n, lime_seed, around, n_classes),
                                                     reference.attributions[0]))
        except CheckFailure as failure:
            if "Hint:" in str(failure):
                raise
            expected_samples = _lime_samples(x_np, train_np, n, lime_seed, around)
            raise CheckFailure(f"{failure}{_samples_diagnosis(model, expected_samples)}") from None
        assert_close_or_hint(intercept, torch.tensor(reference.intercept[0], dtype=torch.float64),
                             what=f"{name} intercept", inputs=what, atol=1e-8, rtol=1e-8, hint_atol=1e-7,
                             variants=wrong_only(partial(_lime_intercept_variants, model, x_np, train_np, target, n,
                                                         lime_seed, around), reference.intercept[0]))
    assert_does_not_use(name, candidate, {
        **{f: OWN_ANSWER.format(f"bigtut.explain's {f}") for f in
           ("lime_tabular", "fit_surrogate", "lime_kernel", "explain_neighbourhood", "lime_from_neighbourhood")},
        "LimeTabularExplainer": "lime's LimeTabularExplainer is what this exercise asks you to write",
        "LimeBase": "lime's LimeBase fits lime's ridge for you: write the weighted ridge fit yourself (exercise 2 "
                    "plus the penalty α‖β‖²)",
        **{ridge: "write the weighted ridge fit yourself (exercise 2 plus the penalty α‖β‖²)"
           for ridge in ("Ridge", "RidgeCV", "ridge_regression")}})
    passed(name, "= bigtut's lime_tabular on three random networks (around the mean and the instance, a constant "
                 "column)")


# ------------------------------------------------------------------------------------------------- SHAP
def check_shapley_weight(candidate: Callable, seed: int | None = None) -> None:
    """``candidate(size, n_features) -> float``: the weight of a coalition of ``size`` players that player i
    joins, among ``n_features`` players, |S|!(M−|S|−1)!/M!."""
    from bigtut.explain.shap import coalition_weight

    _, seed = checker_generator(seed)
    name = "shapley_weight"
    if not callable(candidate):
        raise CheckFailure(f"{name}: expected a function, got {_describe(candidate)}")
    pairs = [(size, m) for m in range(1, 9) for size in range(m)]
    got = {(size, m): _number(name, guarded(name, f"shapley_weight({size}, {m})", candidate, size, m),
                              f"|S|={size}, M={m}") for size, m in pairs}
    f = math.factorial
    variants = {
        "1/M is the weight of a coalition *size*; each coalition of that size gets 1/(M·C(M−1, |S|))":
            lambda s, m: 1 / m,
        "1/2^(M−1) treats every coalition alike; the weight depends on |S|": lambda s, m: 1 / 2 ** (m - 1),
        "|S|!(M−|S|)!/M! = 1/C(M, |S|): the second factorial is (M − |S| − 1)!, since the coalitions lack player i "
        "(= 1/(M·C(M−1, |S|)))": lambda s, m: f(s) * f(m - s) / f(m),
        "1/C(M−1, |S|): the factor 1/M is missing": lambda s, m: 1 / math.comb(m - 1, s),
        "|S|!(M−|S|−1)!/(M−1)!: divide by M!, not (M−1)!": lambda s, m: f(s) * f(m - s - 1) / f(m - 1),
        "integer division `//` rounds the weight down to 0: use `/`": lambda s, m: f(s) * f(m - s - 1) // f(m),
    }
    for size, m in pairs:
        expected = coalition_weight(size, m)
        if not math.isclose(got[size, m], expected, rel_tol=1e-12, abs_tol=0.0):
            hint = ""
            for label, wrong in variants.items():
                try:
                    if all(math.isclose(got[p], wrong(*p), rel_tol=1e-9, abs_tol=1e-15) for p in pairs):
                        hint = f"\n  Hint: {label}."
                        break
                except (ValueError, ZeroDivisionError):
                    continue
            raise CheckFailure(f"{name}: wrong weight for |S|={size}, M={m}: expected |S|!(M−|S|−1)!/M! = "
                               f"{size}!·{m - size - 1}!/{m}! = {expected:.6g}, got {got[size, m]:.6g}{hint}")
    assert_does_not_use(name, candidate, {"coalition_weight": OWN_ANSWER.format("bigtut.explain's coalition_weight")})
    passed(name, "every coalition size for M = 1 … 8 (the weights over S ⊆ N∖{i} sum to 1)")


def _random_game(gen: torch.Generator, n: int) -> dict[frozenset, float]:
    """A characteristic function: a random value per coalition, with player n-1 a dummy (adds nothing)."""
    values = {}
    for size in range(n):
        for coalition in itertools.combinations(range(n - 1), size):
            values[frozenset(coalition)] = float(torch.randn(1, generator=gen, dtype=torch.float64))
    for coalition in list(values):
        values[coalition | {n - 1}] = values[coalition]  # the dummy
    return values


class _Game:
    """The value function handed to the candidate: ``value(frozenset of players) -> float``, with a clear error
    for anything else (a tuple, a list, an unknown player)."""

    def __init__(self, table: dict[frozenset, float], n: int) -> None:
        self.table, self.n = table, n

    def __call__(self, coalition: Any) -> float:
        if not isinstance(coalition, (frozenset, set)):
            raise TypeError(f"value() takes a frozenset of players, got {type(coalition).__name__} {coalition!r}")
        coalition = frozenset(coalition)
        if not coalition <= set(range(self.n)):
            raise KeyError(f"value() got the coalition {set(coalition)}; the players are 0 … {self.n - 1}")
        return self.table[coalition]


def _shapley_sum(v: Callable, n: int, i: int, *, sizes: range | None = None, weight: Callable | None = None,
                 marginal: Callable | None = None) -> float:
    """Σ over S ⊆ N∖{i} with |S| in ``sizes`` of ``weight(|S|, n) · marginal(v, S, i)``: the Shapley value and,
    with other arguments, its usual wrong variants."""
    from bigtut.explain.shap import coalition_weight

    weight = coalition_weight if weight is None else weight
    marginal = (lambda v, s, i: v(s | {i}) - v(s)) if marginal is None else marginal
    others = [p for p in range(n) if p != i]
    return sum(weight(size, n) * marginal(v, frozenset(s), i)
               for size in (range(n) if sizes is None else sizes) for s in itertools.combinations(others, size))


def _shapley_value_variants(v: Callable, n: int, i: int, expected: float) -> dict[str, Callable[[], float]]:
    """The values the usual wrong formulas give player ``i`` of the game ``v`` (each computed only when asked for)."""
    f = math.factorial
    everyone = frozenset(range(n))
    return {
        "v(S) − v(S∖{i}) over the S that lack i is always 0: the marginal contribution is v(S∪{i}) − v(S)":
            lambda: _shapley_sum(v, n, i, marginal=lambda v, s, i: v(s) - v(s - {i})),
        "the sign is flipped: the marginal contribution is v(S∪{i}) − v(S)": lambda: -expected,
        "an unweighted average over the coalitions; each size |S| needs the weight |S|!(M−|S|−1)!/M!":
            lambda: _shapley_sum(v, n, i, weight=lambda s, m: 1 / 2 ** (m - 1)),
        "an unweighted sum over the coalitions; each needs the weight |S|!(M−|S|−1)!/M!":
            lambda: _shapley_sum(v, n, i, weight=lambda s, m: 1.0),
        "the weight |S|!(M−|S|)!/M!: the second factorial is (M − |S| − 1)!":
            lambda: _shapley_sum(v, n, i, weight=lambda s, m: f(s) * f(m - s) / f(m)),
        "the empty coalition is left out: sizes run 0 … M−1": lambda: _shapley_sum(v, n, i, sizes=range(1, n)),
        "the largest coalitions (all the other M−1 players) are left out: sizes run 0 … M−1, range(n_players), "
        "not range(n_players − 1)": lambda: _shapley_sum(v, n, i, sizes=range(n - 1)),
        "leave-one-out v(N) − v(N∖{i}) is one marginal contribution, not the Shapley value":
            lambda: v(everyone) - v(everyone - {i}),
        "v({i}) − v(∅) is one marginal contribution, not the Shapley value": lambda: v(frozenset({i})) - v(frozenset()),
    }


def check_shapley_value(candidate: Callable, seed: int | None = None) -> None:
    """``candidate(value, n_players, player) -> float`` with ``value(frozenset) -> float`` must be the
    Shapley value φ_player = Σ_{S⊆N∖{i}} |S|!(M−|S|−1)!/M! · [v(S∪{i}) − v(S)]."""
    gen, seed = checker_generator(seed)
    name = "shapley_value"
    if not callable(candidate):
        raise CheckFailure(f"{name}: expected a function, got {_describe(candidate)}")
    for n in (3, 5):
        table = _random_game(gen, n)
        for player in range(n):
            expected = _shapley_sum(table.__getitem__, n, player)
            what = f"a random {n}-player game, player {player}{' (a dummy)' if player == n - 1 else ''}"
            inputs = f"{what} (seed={seed})"
            got = _number(name, guarded(name, f"shapley_value(value, {n}, {player}) for {inputs}", candidate,
                                        _Game(table, n), n, player), inputs)
            assert_close_or_hint(torch.tensor(got, dtype=torch.float64), torch.tensor(expected, dtype=torch.float64),
                                 what=name, inputs=inputs, atol=1e-10,
                                 variants=partial(_shapley_value_variants, table.__getitem__, n, player, expected))
    assert_does_not_use(name, candidate, {f: OWN_ANSWER.format(f"bigtut.explain's {f}")
                                          for f in ("exact_shapley", "kernel_shap", "permutation_shap")})
    passed(name, "random 3- and 5-player games (efficiency and the dummy hold)")


# ------------------------------------------------------------------------------ KernelSHAP's constrained fit
def _kernel_shap_design(gen: torch.Generator, m: int, n_samples: int | None, unpaired: int = 0) -> dict[str, Any]:
    """A random game on ``m`` players, and the coalitions ``(K, m)``, weights ``(K,)`` and answer ``(m,)`` of
    ``kernel_shap``'s solver on it.

    The game's value per coalition is random (not additive, so the constraint matters). ``kernel_game`` draws
    its design (every coalition, or a sample) and solves; the coalitions it used are read back from its calls
    to the game, the weights from its design function with the same seed. With ``unpaired`` > 0 that many
    coalitions of size 2 … m−2 are then dropped at random, so that some lose their complement (shap's
    KernelExplainer samples the middle size unpaired): no kernel_shap design, so the answer is the same fit
    solved by its KKT system (:func:`_constrained_fit`, equal to kernel_game on kernel_shap's designs)."""
    from bigtut.explain.shap import _kernel_design, kernel_budget, kernel_game

    table = random_float64(gen, 2**m).numpy()  # (2^m,) v(S), S coded by its bits
    design_seed = int(torch.randint(0, 2**31 - 1, (1,), generator=gen))
    calls: list[np.ndarray] = []

    def game(masks: np.ndarray) -> np.ndarray:  # (K, m) bool -> (K,)
        calls.append(masks.copy())
        return table[masks.astype(np.int64) @ (1 << np.arange(m))]

    phi, base, _ = kernel_game(game, m, n_samples, design_seed)
    masks, weights = _kernel_design(m, kernel_budget(m, n_samples), np.random.default_rng(design_seed))
    if len(calls) != 2 or not np.array_equal(calls[1], masks):
        raise RuntimeError("kernel_game no longer evaluates its design in one call; update the checker")
    if unpaired:
        inner = np.flatnonzero((masks.sum(1) > 1) & (masks.sum(1) < m - 1))  # sizes 2 … m−2
        dropped = inner[torch.randperm(len(inner), generator=gen)[:unpaired].numpy()]
        masks, weights = np.delete(masks, dropped, 0), np.delete(weights, dropped)
    case = {"coalitions": torch.as_tensor(masks, dtype=torch.float64), "values": torch.as_tensor(game(masks)),
            "weights": torch.as_tensor(weights), "base": float(base), "full": float(table[-1])}
    case["phi"] = (_constrained_fit(case["coalitions"], case["values"] - base, case["weights"], case["full"] - base)
                   if unpaired else torch.as_tensor(phi))
    return case


def _constrained_fit(Z: torch.Tensor, y: torch.Tensor, w: torch.Tensor, total: float, *,
                     intercept: bool = False) -> torch.Tensor:
    """``φ (M,)`` minimising Σ wₖ (yₖ [− b] − zₖ·φ)² subject to Σφ = total, by its KKT system (with a free,
    unconstrained intercept b when ``intercept``)."""
    m = Z.shape[1]
    design = torch.cat([Z, torch.ones(len(Z), 1, dtype=Z.dtype)], 1) if intercept else Z  # (K, p)
    p = design.shape[1]
    kkt = torch.zeros(p + 1, p + 1, dtype=Z.dtype)
    kkt[:p, :p] = design.T @ (w[:, None] * design)
    kkt[:m, p] = kkt[p, :m] = 1.0
    rhs = torch.cat([design.T @ (w * y), torch.tensor([total], dtype=Z.dtype)])
    return torch.linalg.solve(kkt, rhs)[:m]


def _free_fit(Z: torch.Tensor, y: torch.Tensor, w: torch.Tensor, *, intercept: bool = False) -> torch.Tensor:
    """``φ (M,)`` of the unconstrained weighted least squares of ``y`` on ``Z`` (plus a free intercept)."""
    design = torch.cat([torch.ones(len(Z), 1, dtype=Z.dtype), Z], 1) if intercept else Z
    root = w.sqrt()[:, None]
    solution = torch.linalg.lstsq(design * root, y[:, None] * root).solution[:, 0]
    return solution[1:] if intercept else solution


def _eliminated(Z: torch.Tensor, y: torch.Tensor, w: torch.Tensor, total: float, *, adjust_target: bool = True,
                adjust_design: bool = True, target_total: float | None = None, weigh: str = "both") -> torch.Tensor:
    """The first M − 1 values ``(M-1,)`` after substituting φ_M = total − Σ_{j<M} φ_j (shap's elimination), the
    target or the design left unadjusted on request, the target adjusted by ``target_total`` instead of ``total``,
    or only the ``"design"`` or only the ``"target"`` multiplied by √w."""
    target = y - Z[:, -1] * (total if target_total is None else target_total) if adjust_target else y
    design = Z[:, :-1] - Z[:, -1:] if adjust_design else Z[:, :-1]
    if weigh == "both":
        return _free_fit(design, target, w)
    root = w.sqrt()
    rows, targets = (design * root[:, None], target) if weigh == "design" else (design, target * root)
    return torch.linalg.lstsq(rows, targets[:, None]).solution[:, 0]


def _kernel_shap_variants(case: dict[str, Any]) -> dict[str, Any]:
    """The values ``(M,)`` of the usual wrong solves (each computed only when asked for)."""
    Z, v, w, base, full = (case[k] for k in ("coalitions", "values", "weights", "base", "full"))
    total, y, m = full - base, v - base, Z.shape[1]

    def add_back(head: torch.Tensor) -> torch.Tensor:
        return torch.cat([head, (total - head.sum()).reshape(1)])

    def kernel_weights() -> torch.Tensor:
        sizes = Z.sum(1)
        return (m - 1) / (torch.tensor([math.comb(m, int(s)) for s in sizes], dtype=Z.dtype) * sizes * (m - sizes))

    def unconstrained() -> torch.Tensor:
        return _free_fit(Z, y, w)

    constraint = "the efficiency constraint Σφ = f(x) − f(∅)"
    return {
        f"no efficiency constraint (plain weighted least squares): impose {constraint}": unconstrained,
        "a free intercept and no constraint — LIME's fit; KernelSHAP's intercept is f(∅), known, and "
        f"{constraint} is imposed": lambda: _free_fit(Z, v, w, intercept=True),
        "a free intercept: the intercept is f(∅), known — subtract base_value from the values instead of fitting "
        "one": lambda: _constrained_fit(Z, v, w, total, intercept=True),
        "the constraint's right-hand side is f(x); it is f(x) − f(∅), since the values were shifted by f(∅)":
            lambda: _constrained_fit(Z, y, w, full),
        "the values were not shifted by f(∅): the fit explains v(S) − f(∅) = z·φ":
            lambda: _constrained_fit(Z, v, w, total),
        "unweighted: every coalition counted alike; use the given Shapley-kernel weights":
            lambda: _constrained_fit(Z, y, torch.ones_like(w), total),
        "the rows were multiplied by w, not √w (that minimises Σ w²·residual²)":
            lambda: _constrained_fit(Z, y, w**2, total),
        "the weights were recomputed from the coalition sizes; use the given weights (sampled coalitions carry "
        "their counts, not the kernel's formula)": lambda: _constrained_fit(Z, y, kernel_weights(), total),
        "φ_M was eliminated but never added back (it is 0 here): φ_M = f(x) − f(∅) − Σ_{j<M} φ_j":
            lambda: torch.cat([case["phi"][:-1], torch.zeros(1, dtype=Z.dtype)]),
        "φ_M was set to f(x) − f(∅); it is f(x) − f(∅) − Σ_{j<M} φ_j":
            lambda: torch.cat([case["phi"][:-1], torch.tensor([total], dtype=Z.dtype)]),
        "after eliminating φ_M the target must be values − base_value − z_M·(f(x) − f(∅))":
            lambda: add_back(_eliminated(Z, y, w, total, adjust_target=False)),
        "after eliminating φ_M each column j < M of the design must be z_j − z_M":
            lambda: add_back(_eliminated(Z, y, w, total, adjust_design=False)),
        "after eliminating φ_M the target is values − base_value − z_M·(f(x) − f(∅)), not − z_M·f(x)":
            lambda: add_back(_eliminated(Z, y, w, total, target_total=full)),
        "only the design's rows were multiplied by √w; the target must be too":
            lambda: add_back(_eliminated(Z, y, w, total, weigh="design")),
        "only the target was multiplied by √w; the design's rows must be too":
            lambda: add_back(_eliminated(Z, y, w, total, weigh="target")),
        "φ_M was put first: φ_M = f(x) − f(∅) − Σ_{j<M} φ_j is the last player's value, appended after the others":
            lambda: torch.cat([case["phi"][-1:], case["phi"][:-1]]),
        "base_value and full_value were swapped: the arguments are (…, base_value = f(∅), full_value = f(x))":
            lambda: _constrained_fit(Z, v - full, w, base - full),
        "the unconstrained solution was rescaled to add up; the constraint moves each φ_i by its own amount, it "
        "does not scale them": lambda: unconstrained() * total / unconstrained().sum(),
        "the unconstrained solution's gap to f(x) − f(∅) was spread evenly; the constraint moves each φ_i by its "
        "own amount": lambda: unconstrained() + (total - unconstrained().sum()) / m,
    }


_INFINITE_WEIGHT = ("the Shapley kernel gives ∅ and N infinite weight (|S| = 0 or M divides by zero); they are no "
                    "rows of the fit — they enter as f(∅), subtracted from the values, and as the constraint "
                    "Σφ = f(x) − f(∅)")
#: how exactly Σφ must equal f(x) − f(∅) (relative to max(1, |f(x) − f(∅)|)): an exact solve, by elimination or a
#: Lagrange multiplier, even through an explicit inverse, is within 1e-14; ∅ and N entered as rows of a large
#: finite weight H are off by about 1/H, and where that is below 1e-13 their values are off by more than 1e-10
_EXACT = 1e-13


def _efficiency_hint(values: torch.Tensor, case: dict[str, Any]) -> str:
    """What ``Σφ`` of a wrong answer ``values (M,)`` says about its mistake (a line for a failure message)."""
    base, full, phi = case["base"], case["full"], case["phi"]
    total, got = full - base, float(values.sum())
    exact = _EXACT * max(1.0, abs(total))

    def f32(number: float) -> float:
        return float(torch.tensor(number, dtype=torch.float32))

    if abs(got - total) <= exact:
        if torch.allclose(values, phi, atol=1e-6, rtol=1e-6):
            return ("\n  Hint: efficiency holds, and the values are within 1e-6 of the exact fit but not within 1e-10: "
                    "an approximate solve — ∅ and N added as rows with a huge finite weight? Their weight is "
                    "infinite: fit the other coalitions only, under Σφ = f(x) − f(∅) imposed exactly.")
        return ("\n  Efficiency holds, so the constraint is right: the difference lies in the weighted fit itself "
                "(the weights, the target values − base_value, the design).")
    if any(abs(got - rounded) <= exact for rounded in (f32(total), f32(full) - f32(base), f32(full) - base,
                                                       full - f32(base))):
        return (f"\n  Hint: Σφ = {got:.12g} is f(x) − f(∅) = {total:.12g} rounded to float32: torch.tensor(number) "
                f"without dtype= is float32 — give dtype=coalitions.dtype (float64).")
    if torch.allclose(values, phi, atol=1e-3, rtol=1e-3):
        return (f"\n  Hint: Σφ = {got:.15g}, but f(x) − f(∅) = {total:.15g}: efficiency holds only approximately — "
                f"∅ and N added as rows with a large finite weight? Their weight is infinite: impose "
                f"Σφ = f(x) − f(∅) exactly (eliminate one φ, or a Lagrange multiplier).")
    return (f"\n  Hint: Σφ = {got:.6g}, but f(x) − f(∅) = {total:.6g}: the answer must satisfy the efficiency "
            f"constraint Σφ = f(x) − f(∅) exactly.")


#: (players, coalitions besides ∅ and N — None: every one —, coalitions then dropped to break complement pairs)
_KERNEL_SHAP_CASES = ((4, None, 0), (7, 40, 0), (10, 60, 0), (6, None, 17))


def check_kernel_shap_solve(candidate: Callable, seed: int | None = None) -> None:
    """``candidate(coalitions (K, M), values (K,), weights (K,), base_value, full_value) -> φ (M,)`` must solve
    KernelSHAP's constrained weighted least squares, min Σₖ wₖ (vₖ − f(∅) − zₖ·φ)² subject to
    Σφ = f(x) − f(∅), as :func:`bigtut.explain.shap.kernel_game` does (to 1e-10, and Σφ to 1e-13 — no large
    finite weight on ∅ and N comes that close to both): on every coalition of four
    players (the exact Shapley values), on kernel_shap's sampled designs for 7 and 10 players, and on a design
    whose coalitions are not all paired with their complements (there a free intercept, or values not shifted by
    f(∅), change the answer; on paired designs they happen not to)."""
    gen, seed = checker_generator(seed)
    name = "kernel_shap_solve"
    if not callable(candidate):
        raise CheckFailure(f"{name}: expected a function, got {_describe(candidate)}")
    for m, n_samples, unpaired in _KERNEL_SHAP_CASES:
        case = _kernel_shap_design(gen, m, n_samples, unpaired)
        k = len(case["coalitions"])
        kind = "an unpaired set of" if unpaired else "all its" if n_samples is None else "a sample of"
        what = f"a random {m}-player game on {kind} {k} coalitions besides ∅ and N (seed={seed})"
        kept = {key: case[key] for key in ("coalitions", "values", "weights")}
        given = {key: value.clone() for key, value in kept.items()}
        try:
            got = guarded(name, f"kernel_shap_solve(coalitions, values, weights, base_value, full_value) for {what}",
                          candidate, given["coalitions"], given["values"], given["weights"], case["base"],
                          case["full"])
        except CheckFailure as failure:
            if re.search(r"illegal value|\bnan\b|\binf\b|infinit", str(failure), flags=re.IGNORECASE):
                raise CheckFailure(f"{failure}\n  Hint: {_INFINITE_WEIGHT}.") from None
            raise
        assert_unchanged(name, what, {key: (kept[key], given[key]) for key in kept})
        got = _numbers(got)
        values = _as_float64(got)
        if values is not None and tuple(values.shape) == (m + 1,):
            raise CheckFailure(f"{name}: {m + 1} values for {what}, expected {m}: return φ alone — the intercept "
                               f"f(∅) is given (base_value), not fitted")
        if values is not None and tuple(values.shape) == (m - 1,):
            raise CheckFailure(f"{name}: {m - 1} values for {what}, expected {m}: after eliminating φ_M, add it "
                               f"back as φ_M = f(x) − f(∅) − Σ_{{j<M}} φ_j")
        if values is not None and values.numel() and not torch.isfinite(values).all():
            raise CheckFailure(f"{name}: the values hold NaN or inf for {what}.\n  Hint: {_INFINITE_WEIGHT}.")
        total = case["full"] - case["base"]
        try:
            assert_close_or_hint(got, case["phi"], what=name, inputs=what, atol=1e-10, rtol=1e-10, hint_atol=1e-7,
                                 variants=wrong_only(partial(_kernel_shap_variants, case), case["phi"]))
        except CheckFailure as failure:
            if "Hint:" in str(failure) or values is None or values.shape != case["phi"].shape:
                raise
            raise CheckFailure(f"{failure}{_efficiency_hint(values, case)}") from None
        gap = float(values.sum()) - total
        if abs(gap) > _EXACT * max(1.0, abs(total)):  # each value within 1e-10, their sum not exactly the total
            raise CheckFailure(f"{name}: every value is within 1e-10, but Σφ misses f(x) − f(∅) by {gap:.2g} for "
                               f"{what}{_efficiency_hint(values, case)}")
    assert_does_not_use(name, candidate, {
        **{f: OWN_ANSWER.format(f"bigtut.explain's {f}") for f in
           ("kernel_game", "kernel_shap", "exact_game", "exact_shapley", "permutation_shap", "token_shap")},
        "KernelExplainer": "shap's KernelExplainer solves this fit for you: write it yourself with torch"})
    passed(name, "= kernel_shap's constrained fit on every coalition of 4 players, sampled designs for 7 and 10, "
                 "and an unpaired design for 6")
