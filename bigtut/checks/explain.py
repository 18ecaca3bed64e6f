"""Checkers for chapters 06–08 (LIME, SHAP, Integrated Gradients).

Each takes the student's function, compares it with :mod:`bigtut.explain` on fresh random cases, and is
built to catch the wrong formulas that circulate in course notes:

==================================  ==========================================================================
checker                             the formula it holds the candidate to (and the usual mistake it catches)
==================================  ==========================================================================
``check_lime_kernel``               lime's weight √exp(−d²/w²) (not exp(−d²/w²), not exp(−d/w))
``check_weighted_least_squares``    the surrogate minimises Σ π(z)(f(z) − g(z))² (not an unweighted fit)
``check_shapley_weight``            |S|!(M−|S|−1)!/M! (not 1/M, not 1/2^(M−1), not |S|!(M−|S|)!/M!)
``check_shapley_value``             Σ_{S⊆N∖{i}} w(|S|)[v(S∪{i}) − v(S)] (not v(S) − v(S∖{i}) over S ∌ i)
``check_interpolation_path``        x′ + α(x − x′), α = k/n (not x′ + αx, not αx)
``check_riemann_integrated_gradients``  (x − x′) ⊙ mean of the path gradients (the (x − x′) factor included)
==================================  ==========================================================================
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import torch

from bigtut.checks.core import CheckFailure, _call, assert_close, checker_generator, passed, random_float64

__all__ = ["check_interpolation_path", "check_lime_kernel", "check_riemann_integrated_gradients",
           "check_shapley_value", "check_shapley_weight", "check_weighted_least_squares"]


# ------------------------------------------------------------------------------------------------- LIME
def check_lime_kernel(candidate: Callable, seed: int | None = None) -> None:
    """``candidate(distances (N,), kernel_width) -> weights (N,)`` must be lime's √exp(−d²/w²)."""
    from bigtut.explain.lime import lime_kernel

    gen, seed = checker_generator(seed)
    name = "lime_kernel"
    for width in (0.75, 2.0, 25.0):
        distances = random_float64(gen, 50).abs() * width * 1.5  # (N,) from 0 to a few widths
        distances[0] = 0.0  # the instance itself: weight 1
        expected = torch.as_tensor(lime_kernel(distances.numpy(), width))
        got = _call(candidate, name, (distances, width), {})
        assert_close(got, expected, what=name, inputs=f"50 distances, kernel_width={width} (seed={seed})",
                     atol=1e-10, rtol=1e-8)
    passed(name, "√exp(−d²/w²) for three kernel widths")


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
        got = _call(candidate, name, (features, targets, weights), {})
        if not isinstance(got, tuple) or len(got) != 2:
            raise CheckFailure(f"{name}: expected (coefficients, intercept), got {type(got).__name__} (seed={seed})")
        what = f"N={n} samples, K={k} features, unequal weights (seed={seed})"
        assert_close(got[0], torch.as_tensor(coefficients), what=f"{name} coefficients", inputs=what, atol=1e-7)
        assert_close(got[1], torch.as_tensor(intercept), what=f"{name} intercept", inputs=what, atol=1e-7)
    passed(name, "the weighted fit on two random neighbourhoods")


# ------------------------------------------------------------------------------------------------- SHAP
def check_shapley_weight(candidate: Callable, seed: int | None = None) -> None:
    """``candidate(size, n_features) -> float``: the weight of a coalition of ``size`` players that player i
    joins, among ``n_features`` players, |S|!(M−|S|−1)!/M!."""
    from bigtut.explain.shap import coalition_weight

    _, seed = checker_generator(seed)
    name = "shapley_weight"
    for m in range(1, 9):
        for size in range(m):
            got = _call(candidate, name, (size, m), {})
            assert_close(torch.as_tensor(float(got)), torch.as_tensor(coalition_weight(size, m)), what=name,
                         inputs=f"|S|={size}, M={m}", atol=0, rtol=1e-12)
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


def check_shapley_value(candidate: Callable, seed: int | None = None) -> None:
    """``candidate(value, n_players, player) -> float`` with ``value(frozenset) -> float`` must be the
    Shapley value φ_player = Σ_{S⊆N∖{i}} |S|!(M−|S|−1)!/M! · [v(S∪{i}) − v(S)]."""
    from bigtut.explain.shap import coalition_weight

    gen, seed = checker_generator(seed)
    name = "shapley_value"
    for n in (3, 5):
        table = _random_game(gen, n)
        for player in range(n):
            others = [p for p in range(n) if p != player]
            expected = sum(coalition_weight(size, n) * (table[frozenset(s) | {player}] - table[frozenset(s)])
                           for size in range(n) for s in itertools.combinations(others, size))
            got = _call(candidate, name, (table.__getitem__, n, player), {})
            what = f"a random {n}-player game, player {player}{' (a dummy)' if player == n - 1 else ''}"
            assert_close(torch.as_tensor(float(got)), torch.as_tensor(expected), what=name,
                         inputs=f"{what} (seed={seed})", atol=1e-10)
    passed(name, "random 3- and 5-player games (efficiency and the dummy hold)")


# --------------------------------------------------------------------------------------- Integrated Gradients
def check_interpolation_path(candidate: Callable, seed: int | None = None) -> None:
    """``candidate(x (M,), baseline (M,), n_steps) -> (n_steps, M)``: the points x′ + (k/n)(x − x′), k = 1 … n."""
    gen, seed = checker_generator(seed)
    name = "interpolation_path"
    for n_steps in (1, 4, 20):
        x, baseline = random_float64(gen, 6), random_float64(gen, 6)  # (M,), (M,): a non-zero baseline
        alphas = torch.arange(1, n_steps + 1, dtype=torch.float64) / n_steps  # (n,)
        expected = baseline + alphas[:, None] * (x - baseline)  # (n, M)
        got = _call(candidate, name, (x, baseline, n_steps), {})
        assert_close(got, expected, what=name, inputs=f"M=6, non-zero baseline, n_steps={n_steps} (seed={seed})",
                     atol=1e-12)
    passed(name, "right-Riemann points from a non-zero baseline")


def check_riemann_integrated_gradients(candidate: Callable, seed: int | None = None) -> None:
    """``candidate(forward, x (M,), baseline (M,), n_steps) -> attributions (M,)``: right-Riemann IG,
    (x − x′) ⊙ (1/n) Σ_k ∇F(x′ + (k/n)(x − x′)), where ``forward`` maps a batch ``(N, M)`` to ``(N,)``."""
    from bigtut.explain.integrated_gradients import integrated_gradients

    gen, seed = checker_generator(seed)
    name = "riemann_integrated_gradients"
    w1, w2 = random_float64(gen, 5, 8), random_float64(gen, 8)  # a small tanh network

    def forward(batch: torch.Tensor) -> torch.Tensor:  # (N, 5) -> (N,)
        return torch.tanh(batch @ w1) @ w2

    for n_steps in (1, 7, 40):
        x, baseline = random_float64(gen, 5), random_float64(gen, 5)
        expected = integrated_gradients(forward, x[None], baseline=baseline[None], n_steps=n_steps,
                                        method="riemann_right").attributions[0]  # (M,) float64 NumPy
        got = _call(candidate, name, (forward, x, baseline, n_steps), {})
        assert_close(got, expected, what=name,
                     inputs=f"a tanh network of 5 inputs, non-zero baseline, n_steps={n_steps} (seed={seed})",
                     atol=1e-9)
    passed(name, "right-Riemann IG on a small network, non-zero baselines")
