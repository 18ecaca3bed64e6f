"""The explanation checkers pass the right formulas and catch the wrong ones that circulate in course notes."""

import itertools
import math

import numpy as np
import pytest
import torch

from bigtut.checks import CheckFailure
from bigtut.checks.explain import (
    check_interpolation_path,
    check_lime_kernel,
    check_riemann_integrated_gradients,
    check_shapley_value,
    check_shapley_weight,
    check_weighted_least_squares,
)


# ------------------------------------------------------------------------------------------- right answers
def lime_kernel(d, w):
    return torch.sqrt(torch.exp(-(d**2) / w**2))


def weighted_least_squares(z, y, weights):
    design = torch.cat([torch.ones(len(z), 1, dtype=z.dtype), z], dim=1)  # (N, K + 1)
    root = weights.sqrt()[:, None]
    solution = torch.linalg.lstsq(design * root, y[:, None] * root).solution[:, 0]
    return solution[1:], solution[0]


def shapley_weight(size, m):
    return math.factorial(size) * math.factorial(m - size - 1) / math.factorial(m)


def shapley_value(v, n, i):
    others = [p for p in range(n) if p != i]
    return sum(shapley_weight(len(s), n) * (v(frozenset(s) | {i}) - v(frozenset(s)))
               for k in range(n) for s in itertools.combinations(others, k))


def interpolation_path(x, baseline, n_steps):
    alphas = torch.arange(1, n_steps + 1, dtype=x.dtype) / n_steps
    return baseline + alphas[:, None] * (x - baseline)


def riemann_ig(forward, x, baseline, n_steps):
    path = interpolation_path(x, baseline, n_steps).requires_grad_(True)
    (grads,) = torch.autograd.grad(forward(path).sum(), path)
    return (x - baseline) * grads.mean(0)


RIGHT = [(check_lime_kernel, lime_kernel), (check_weighted_least_squares, weighted_least_squares),
         (check_shapley_weight, shapley_weight), (check_shapley_value, shapley_value),
         (check_interpolation_path, interpolation_path), (check_riemann_integrated_gradients, riemann_ig)]


@pytest.mark.parametrize("checker, solution", RIGHT, ids=[c.__name__ for c, _ in RIGHT])
def test_checkers_pass_the_right_formula(checker, solution, capsys):
    for seed in (0, 1, 2):
        checker(solution, seed=seed)
    assert capsys.readouterr().out.count("PASS") == 3


# ------------------------------------------------------------------------------------------- wrong answers
def unweighted_least_squares(z, y, weights):
    return weighted_least_squares(z, y, torch.ones_like(weights))


def shapley_value_wrong_coalition(v, n, i):  # "v(S) − v(S ∖ {i})" summed over S ∌ i: always 0
    others = [p for p in range(n) if p != i]
    return sum(shapley_weight(len(s), n) * (v(frozenset(s)) - v(frozenset(s) - {i}))
               for k in range(n) for s in itertools.combinations(others, k))


def shapley_value_unweighted(v, n, i):  # the plain average of marginal contributions over coalitions
    others = [p for p in range(n) if p != i]
    pairs = [(frozenset(s), frozenset(s) | {i}) for k in range(n) for s in itertools.combinations(others, k)]
    return sum(v(b) - v(a) for a, b in pairs) / len(pairs)


def ig_without_difference(forward, x, baseline, n_steps):  # the draft's formula: no (x − x′) factor
    path = interpolation_path(x, baseline, n_steps).requires_grad_(True)
    (grads,) = torch.autograd.grad(forward(path).sum(), path)
    return grads.mean(0)


def ig_times_input(forward, x, baseline, n_steps):  # x ⊙ mean gradient: right only for a zero baseline
    return riemann_ig(forward, x, baseline, n_steps) / (x - baseline) * x


WRONG = [
    (check_lime_kernel, lambda d, w: torch.exp(-(d**2) / w**2), "exp(−d²/w²) without the square root"),
    (check_lime_kernel, lambda d, w: torch.exp(-d / w), "exp(−d/w)"),
    (check_weighted_least_squares, unweighted_least_squares, "an unweighted fit"),
    (check_shapley_weight, lambda s, m: 1 / m, "1/M"),
    (check_shapley_weight, lambda s, m: 1 / 2 ** (m - 1), "1/2^(M−1)"),
    (check_shapley_weight, lambda s, m: math.factorial(s) * math.factorial(m - s) / math.factorial(m), "(M−|S|)!"),
    (check_shapley_value, shapley_value_wrong_coalition, "v(S) − v(S∖{i})"),
    (check_shapley_value, shapley_value_unweighted, "an unweighted average"),
    (check_interpolation_path, lambda x, b, n: b + (torch.arange(1, n + 1, dtype=x.dtype) / n)[:, None] * x,
     "x′ + αx"),
    (check_interpolation_path, lambda x, b, n: (torch.arange(1, n + 1, dtype=x.dtype) / n)[:, None] * x, "αx"),
    (check_riemann_integrated_gradients, ig_without_difference, "no (x − x′) factor"),
    (check_riemann_integrated_gradients, ig_times_input, "x ⊙ gradients with a non-zero baseline"),
]


@pytest.mark.parametrize("checker, wrong, what", WRONG, ids=[w for _, _, w in WRONG])
def test_checkers_catch_the_wrong_formulas(checker, wrong, what):
    with pytest.raises(CheckFailure):
        checker(wrong, seed=0)


def test_checkers_report_stubs_and_bad_types():
    def stub(*args):
        raise NotImplementedError

    with pytest.raises(CheckFailure, match="not implemented"):
        check_shapley_weight(stub, seed=0)
    with pytest.raises(CheckFailure, match="coefficients, intercept"):
        check_weighted_least_squares(lambda z, y, w: np.zeros(3), seed=0)
