"""The explanation checkers (06–08) pass the right formulas on seeds 0–2 and catch the wrong ones students write,
each with a message naming the mistake."""

import itertools
import math

import numpy as np
import pytest
import torch
from checker_cases import assert_fails_naming, assert_passes_on_seeds

from bigtut.checks import CheckFailure
from bigtut.checks.explain import (
    RecordedCalls,
    assert_does_not_use,
    assert_not_modified,
    check_interpolation_path,
    check_lime_kernel,
    check_riemann_integrated_gradients,
    check_shapley_value,
    check_shapley_weight,
    check_weighted_least_squares,
    hint_for,
)


# ------------------------------------------------------------------------- right answers (the notebooks' solutions)
def lime_kernel(distances, kernel_width):
    return torch.sqrt(torch.exp(-distances ** 2 / kernel_width ** 2))


def weighted_least_squares(features, targets, weights):
    design = torch.cat([torch.ones(len(features), 1, dtype=features.dtype), features], dim=1)  # (N, 1 + K)
    root = weights.sqrt()[:, None]  # (N, 1)
    solution = torch.linalg.lstsq(design * root, targets[:, None] * root).solution[:, 0]  # (1 + K,)
    return solution[1:], solution[0]


def shapley_weight(size, n_features):
    return math.factorial(size) * math.factorial(n_features - size - 1) / math.factorial(n_features)


def shapley_value(value, n_players, player):
    others = [p for p in range(n_players) if p != player]
    total = 0.0
    for size in range(n_players):
        weight = math.factorial(size) * math.factorial(n_players - size - 1) / math.factorial(n_players)
        for coalition in itertools.combinations(others, size):
            coalition = frozenset(coalition)
            total += weight * (value(coalition | {player}) - value(coalition))
    return total


def interpolation_path(x, baseline, n_steps):
    alphas = torch.arange(1, n_steps + 1, dtype=x.dtype) / n_steps  # (n,)
    return baseline + alphas[:, None] * (x - baseline)  # (n, M)


def riemann_integrated_gradients(forward, x, baseline, n_steps):
    alphas = torch.arange(1, n_steps + 1, dtype=x.dtype) / n_steps  # (n,)
    path = (baseline + alphas[:, None] * (x - baseline)).requires_grad_(True)  # (n, M)
    (grads,) = torch.autograd.grad(forward(path).sum(), path)  # (n, M)
    return (x - baseline) * grads.mean(0)  # (M,)


# other right answers a student may write
def lime_kernel_gaussian(distances, kernel_width):  # √exp(−d²/w²) = exp(−d²/(2w²))
    return torch.exp(-distances ** 2 / (2 * kernel_width ** 2))


def normal_equations(features, targets, weights):
    design = torch.cat([torch.ones(len(features), 1, dtype=features.dtype), features], dim=1)
    gram = design.T @ (weights[:, None] * design)
    solution = torch.linalg.solve(gram, design.T @ (weights * targets))
    return solution[1:], solution[0]


def shapley_weight_comb(size, n_features):
    return 1 / (n_features * math.comb(n_features - 1, size))


def shapley_value_by_permutations(value, n_players, player):  # the average over orderings: exact, just slower
    total = 0.0
    orders = list(itertools.permutations(range(n_players)))
    for order in orders:
        before = frozenset(order[:order.index(player)])
        total += value(before | {player}) - value(before)
    return total / len(orders)


def path_by_linspace(x, baseline, n_steps):
    alphas = torch.linspace(0, 1, n_steps + 1, dtype=x.dtype)[1:]
    return baseline + alphas[:, None] * (x - baseline)


def ig_with_backward(forward, x, baseline, n_steps):  # .backward() and .grad instead of autograd.grad
    path = path_by_linspace(x, baseline, n_steps).detach().requires_grad_(True)
    forward(path).sum().backward()
    return ((x - baseline) * path.grad.sum(0) / n_steps).detach()


RIGHT = [(check_lime_kernel, lime_kernel), (check_lime_kernel, lime_kernel_gaussian),
         (check_weighted_least_squares, weighted_least_squares), (check_weighted_least_squares, normal_equations),
         (check_shapley_weight, shapley_weight), (check_shapley_weight, shapley_weight_comb),
         (check_shapley_value, shapley_value), (check_shapley_value, shapley_value_by_permutations),
         (check_interpolation_path, interpolation_path), (check_interpolation_path, path_by_linspace),
         (check_riemann_integrated_gradients, riemann_integrated_gradients),
         (check_riemann_integrated_gradients, ig_with_backward)]


@pytest.mark.parametrize("checker, solution", RIGHT, ids=[f"{c.__name__}-{s.__name__}" for c, s in RIGHT])
def test_checkers_pass_the_right_answer_on_seeds_0_to_2(checker, solution, capsys):
    assert_passes_on_seeds(checker, solution, capsys)


# ------------------------------------------------------------------------------------------- wrong answers
def stub(*args):
    raise NotImplementedError("Exercise: replace this line with your code")


# lime_kernel
def kernel_no_sqrt(d, w):
    return torch.exp(-d ** 2 / w ** 2)


def kernel_not_squared(d, w):
    return torch.exp(-d / w)


def kernel_width_not_squared(d, w):
    return torch.sqrt(torch.exp(-d ** 2 / w))


def kernel_normalised(d, w):
    k = torch.sqrt(torch.exp(-d ** 2 / w ** 2))
    return k / k.sum()


def kernel_positive_exponent(d, w):
    return torch.sqrt(torch.exp(d ** 2 / w ** 2))


def kernel_in_place(d, w):  # right values, but the caller's distances are squared in place
    d.pow_(2)
    return torch.sqrt(torch.exp(-d / w ** 2))


def kernel_float32(d, w):
    return torch.sqrt(torch.exp(-d.float() ** 2 / w ** 2))


def kernel_fixed_width(d, w):  # the argument ignored: lime's 0.75
    return torch.sqrt(torch.exp(-d ** 2 / 0.75 ** 2))


def kernel_column(d, w):
    return lime_kernel(d, w)[:, None]


# weighted_least_squares
def unweighted(z, y, w):
    return weighted_least_squares(z, y, torch.ones_like(w))


def rows_times_w(z, y, w):
    return weighted_least_squares(z, y, w ** 2)


def targets_unweighted(z, y, w):
    design = torch.cat([torch.ones(len(z), 1, dtype=z.dtype), z], dim=1)
    solution = torch.linalg.lstsq(design * w.sqrt()[:, None], y[:, None]).solution[:, 0]
    return solution[1:], solution[0]


def no_intercept(z, y, w):
    root = w.sqrt()[:, None]
    return torch.linalg.lstsq(z * root, y[:, None] * root).solution[:, 0], torch.tensor(0.0, dtype=z.dtype)


def ridge_like_lime(z, y, w):
    from bigtut.explain.lime import fit_surrogate

    coefficients, intercept, _ = fit_surrogate(z.numpy(), y.numpy(), w.numpy(), alpha=1.0)
    return torch.as_tensor(coefficients), torch.tensor(intercept)


def swapped_outputs(z, y, w):
    coefficients, intercept = weighted_least_squares(z, y, w)
    return intercept, coefficients


def intercept_kept(z, y, w):
    design = torch.cat([torch.ones(len(z), 1, dtype=z.dtype), z], dim=1)
    root = w.sqrt()[:, None]
    solution = torch.linalg.lstsq(design * root, y[:, None] * root).solution[:, 0]
    return solution, solution[0]


def wls_in_place(z, y, w):  # right answer, but the caller's features are reweighted in place
    root = w.sqrt()[:, None]
    z.mul_(root)
    design = torch.cat([root, z], dim=1)
    solution = torch.linalg.lstsq(design, y[:, None] * root).solution[:, 0]
    return solution[1:], solution[0]


def wls_numpy_array(z, y, w):
    return np.zeros(3)


# shapley_weight
def weight_one_over_m(s, m):
    return 1 / m


def weight_one_over_power(s, m):
    return 1 / 2 ** (m - 1)


def weight_wrong_factorial(s, m):
    return math.factorial(s) * math.factorial(m - s) / math.factorial(m)


def weight_inverse_binomial(s, m):
    return 1 / math.comb(m, s)


def weight_missing_one_over_m(s, m):
    return 1 / math.comb(m - 1, s)


def weight_integer_division(s, m):
    return math.factorial(s) * math.factorial(m - s - 1) // math.factorial(m)


def weight_arguments_swapped(s, m):  # reads (n_features, size): a negative factorial
    return shapley_weight(m, s)


def weight_as_vector(s, m):
    return torch.full((m,), shapley_weight(s, m))


# shapley_value
def value_wrong_coalition(v, n, i):  # "v(S) − v(S ∖ {i})" summed over S ∌ i: always 0
    others = [p for p in range(n) if p != i]
    return sum(shapley_weight(len(s), n) * (v(frozenset(s)) - v(frozenset(s) - {i}))
               for k in range(n) for s in itertools.combinations(others, k))


def value_unweighted(v, n, i):  # the plain average of marginal contributions over coalitions
    others = [p for p in range(n) if p != i]
    pairs = [(frozenset(s), frozenset(s) | {i}) for k in range(n) for s in itertools.combinations(others, k)]
    return sum(v(b) - v(a) for a, b in pairs) / len(pairs)


def value_sign_flipped(v, n, i):
    return -shapley_value(v, n, i)


def value_range_off_by_one(v, n, i):  # range(n − 1): the coalition of all the others is missing
    others = [p for p in range(n) if p != i]
    return sum(shapley_weight(k, n) * (v(frozenset(s) | {i}) - v(frozenset(s)))
               for k in range(n - 1) for s in itertools.combinations(others, k))


def value_without_empty(v, n, i):
    others = [p for p in range(n) if p != i]
    return sum(shapley_weight(k, n) * (v(frozenset(s) | {i}) - v(frozenset(s)))
               for k in range(1, n) for s in itertools.combinations(others, k))


def value_leave_one_out(v, n, i):
    everyone = frozenset(range(n))
    return v(everyone) - v(everyone - {i})


def value_with_tuples(v, n, i):  # calls the game with tuples
    others = [p for p in range(n) if p != i]
    return sum(shapley_weight(k, n) * (v(tuple(sorted(s + (i,)))) - v(s))
               for k in range(n) for s in itertools.combinations(others, k))


def value_players_from_one(v, n, i):  # players numbered 1 … M
    others = [p for p in range(1, n + 1) if p != i + 1]
    return sum(shapley_weight(k, n) * (v(frozenset(s) | {i + 1}) - v(frozenset(s)))
               for k in range(n) for s in itertools.combinations(others, k))


# interpolation_path
def path_x_prime_plus_alpha_x(x, b, n):
    return b + (torch.arange(1, n + 1, dtype=x.dtype) / n)[:, None] * x


def path_alpha_x(x, b, n):
    return (torch.arange(1, n + 1, dtype=x.dtype) / n)[:, None] * x


def path_left_nodes(x, b, n):
    return b + (torch.arange(n, dtype=x.dtype) / n)[:, None] * (x - b)


def path_linspace_from_zero(x, b, n):
    return b + torch.linspace(0, 1, n, dtype=x.dtype)[:, None] * (x - b)


def path_midpoints(x, b, n):
    return b + ((torch.arange(1, n + 1, dtype=x.dtype) - 0.5) / n)[:, None] * (x - b)


def path_reversed(x, b, n):  # from x towards the baseline
    return x + (torch.arange(1, n + 1, dtype=x.dtype) / n)[:, None] * (b - x)


def path_float32_alphas(x, b, n):
    return b + (torch.arange(1, n + 1) / n)[:, None].float() * (x - b)


def path_transposed(x, b, n):
    return interpolation_path(x, b, n).T


def path_with_baseline(x, b, n):
    return b + (torch.arange(0, n + 1, dtype=x.dtype) / n)[:, None] * (x - b)


def path_in_place(x, b, n):
    x -= b  # the caller's x now holds x − x′
    return b + (torch.arange(1, n + 1, dtype=x.dtype) / n)[:, None] * x


# riemann_integrated_gradients
def ig_without_difference(forward, x, baseline, n_steps):  # the draft's formula: no (x − x′) factor
    path = interpolation_path(x, baseline, n_steps).requires_grad_(True)
    (grads,) = torch.autograd.grad(forward(path).sum(), path)
    return grads.mean(0)


def ig_times_input(forward, x, baseline, n_steps):  # x ⊙ mean gradient: right only for a zero baseline
    path = interpolation_path(x, baseline, n_steps).requires_grad_(True)
    (grads,) = torch.autograd.grad(forward(path).sum(), path)
    return x * grads.mean(0)


def ig_summed(forward, x, baseline, n_steps):
    path = interpolation_path(x, baseline, n_steps).requires_grad_(True)
    (grads,) = torch.autograd.grad(forward(path).sum(), path)
    return (x - baseline) * grads.sum(0)


def ig_mean_twice(forward, x, baseline, n_steps):
    path = interpolation_path(x, baseline, n_steps).requires_grad_(True)
    (grads,) = torch.autograd.grad(forward(path).mean(), path)
    return (x - baseline) * grads.mean(0)


def ig_left_nodes(forward, x, baseline, n_steps):
    path = path_left_nodes(x, baseline, n_steps).requires_grad_(True)
    (grads,) = torch.autograd.grad(forward(path).sum(), path)
    return (x - baseline) * grads.mean(0)


def ig_trapezoid(forward, x, baseline, n_steps):
    alphas = torch.arange(0, n_steps + 1, dtype=x.dtype) / n_steps
    path = (baseline + alphas[:, None] * (x - baseline)).requires_grad_(True)
    (grads,) = torch.autograd.grad(forward(path).sum(), path)
    return (x - baseline) * (grads[:-1] + grads[1:]).mean(0) / 2


def ig_gradient_at_x(forward, x, baseline, n_steps):
    point = x[None].clone().requires_grad_(True)
    (grads,) = torch.autograd.grad(forward(point).sum(), point)
    return (x - baseline) * grads[0]


def ig_through_x(forward, x, baseline, n_steps):  # gradient w.r.t. x, not w.r.t. the path points
    x = x.clone().requires_grad_(True)
    path = interpolation_path(x, baseline, n_steps)
    (grads,) = torch.autograd.grad(forward(path).sum(), x)
    return ((x - baseline) * grads / n_steps).detach()


def ig_loop_over_points(forward, x, baseline, n_steps):  # right values, n calls of forward (the known hole)
    total = torch.zeros_like(x)
    for point in interpolation_path(x, baseline, n_steps):
        point = point[None].clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(forward(point).sum(), point)
        total += grad[0]
    return (x - baseline) * total / n_steps


def ig_loop_unbatched(forward, x, baseline, n_steps):  # one (M,) point at a time
    grads = []
    for point in interpolation_path(x, baseline, n_steps):
        point = point.clone().requires_grad_(True)
        grads.append(torch.autograd.grad(forward(point), point)[0])
    return (x - baseline) * torch.stack(grads).mean(0)


def ig_extra_completeness_call(forward, x, baseline, n_steps):  # right values, plus F(x) and F(x′) on the side
    forward(torch.stack([x, baseline]))
    return riemann_integrated_gradients(forward, x, baseline, n_steps)


def ig_in_chunks(forward, x, baseline, n_steps):  # two half batches
    path = interpolation_path(x, baseline, n_steps).requires_grad_(True)
    half = (n_steps + 1) // 2
    outputs = torch.cat([forward(path[:half]), forward(path[half:])]) if n_steps > 1 else forward(path)
    (grads,) = torch.autograd.grad(outputs.sum(), path)
    return (x - baseline) * grads.mean(0)


def ig_in_place(forward, x, baseline, n_steps):
    result = riemann_integrated_gradients(forward, x, baseline, n_steps)
    baseline.zero_()
    return result


def ig_float32_alphas(forward, x, baseline, n_steps):  # torch.arange without dtype=: float32 nodes
    alphas = torch.arange(1, n_steps + 1) / n_steps
    path = (baseline + alphas[:, None] * (x - baseline)).requires_grad_(True)
    (grads,) = torch.autograd.grad(forward(path).sum(), path)
    return (x - baseline) * grads.mean(0)


def ig_float32(forward, x, baseline, n_steps):
    return riemann_integrated_gradients(forward, x, baseline, n_steps).float()


# the course's own answers, called instead of written
def kernel_by_the_library(d, w):
    from bigtut.explain.lime import lime_kernel as library_kernel

    return torch.as_tensor(library_kernel(d.numpy(), w))


def wls_by_the_library(z, y, w):
    from bigtut.explain import lime

    coefficients, intercept, _ = lime.fit_surrogate(z.numpy(), y.numpy(), w.numpy(), alpha=0.0)
    return torch.as_tensor(coefficients), torch.tensor(intercept, dtype=torch.float64)


def weight_by_the_library(s, m):
    from bigtut.explain.shap import coalition_weight

    return coalition_weight(s, m)


def path_by_the_library(x, b, n):
    from bigtut.explain.integrated_gradients import integration_rule

    alphas = torch.as_tensor(integration_rule("riemann_right", n)[0], dtype=x.dtype)
    return b + alphas[:, None] * (x - b)


def ig_by_the_library(forward, x, baseline, n_steps):
    from bigtut.explain.integrated_gradients import integrated_gradients

    result = integrated_gradients(forward, x[None], baseline=baseline[None], n_steps=n_steps, method="riemann_right")
    return torch.as_tensor(result.attributions[0])


# (checker, wrong answer, a phrase the failure message must contain)
WRONG = [
    (check_lime_kernel, kernel_no_sqrt, "no square root"),
    (check_lime_kernel, kernel_not_squared, r"exp\(−d/w\): the distance and the width must be squared"),
    (check_lime_kernel, kernel_width_not_squared, "the width must be squared too"),
    (check_lime_kernel, kernel_normalised, "normalised to sum to 1"),
    (check_lime_kernel, kernel_positive_exponent, "sign is wrong"),
    (check_lime_kernel, kernel_in_place, "changed its argument `distances` in place"),
    (check_lime_kernel, kernel_float32, "float32"),
    (check_lime_kernel, kernel_fixed_width, r"kernel_width=2\.0"),
    (check_lime_kernel, kernel_column, r"wrong shape.*expected \(50,\), got \(50, 1\)"),
    (check_lime_kernel, kernel_by_the_library, "calls `lime_kernel` — .* the course's own answer"),
    (check_lime_kernel, stub, "not implemented"),
    (check_weighted_least_squares, unweighted, "an unweighted fit"),
    (check_weighted_least_squares, rows_times_w, r"multiplied by w, not √w"),
    (check_weighted_least_squares, targets_unweighted, r"y must be too"),
    (check_weighted_least_squares, no_intercept, "no intercept"),
    (check_weighted_least_squares, ridge_like_lime, "ridge penalty"),
    (check_weighted_least_squares, swapped_outputs, "in that order"),
    (check_weighted_least_squares, intercept_kept, "the intercept is still among them"),
    (check_weighted_least_squares, wls_in_place, "changed its argument `features` in place"),
    (check_weighted_least_squares, wls_numpy_array, r"expected \(coefficients, intercept\)"),
    (check_weighted_least_squares, wls_by_the_library, "calls `fit_surrogate`"),
    (check_weighted_least_squares, stub, "not implemented"),
    (check_shapley_weight, weight_one_over_m, "1/M is the weight of a coalition"),
    (check_shapley_weight, weight_one_over_power, r"1/2\^\(M−1\)"),
    (check_shapley_weight, weight_wrong_factorial, r"the second factorial is \(M − \|S\| − 1\)!"),
    (check_shapley_weight, weight_inverse_binomial, r"= 1/C\(M, \|S\|\): the second factorial"),
    (check_shapley_weight, weight_missing_one_over_m, "the factor 1/M is missing"),
    (check_shapley_weight, weight_integer_division, "integer division"),
    (check_shapley_weight, weight_arguments_swapped, r"shapley_weight\(0, 1\) raised ValueError"),
    (check_shapley_weight, weight_as_vector, "expected a number"),
    (check_shapley_weight, weight_by_the_library, "calls `coalition_weight`"),
    (check_shapley_weight, stub, "not implemented"),
    (check_shapley_value, value_wrong_coalition, r"v\(S\) − v\(S∖\{i\}\)"),
    (check_shapley_value, value_unweighted, "an unweighted average"),
    (check_shapley_value, value_sign_flipped, "the sign is flipped"),
    (check_shapley_value, value_range_off_by_one, "the largest coalitions"),
    (check_shapley_value, value_without_empty, "the empty coalition is left out"),
    (check_shapley_value, value_leave_one_out, "leave-one-out"),
    (check_shapley_value, value_with_tuples, "value\\(\\) takes a frozenset of players, got tuple"),
    (check_shapley_value, value_players_from_one, r"the players are 0 … 2"),
    (check_shapley_value, stub, "not implemented"),
    (check_interpolation_path, path_x_prime_plus_alpha_x, "x′ \\+ αx"),
    (check_interpolation_path, path_alpha_x, "αx: the path starts at the baseline"),
    (check_interpolation_path, path_left_nodes, "the left nodes"),
    (check_interpolation_path, path_linspace_from_zero, r"linspace\(0, 1, n\)"),
    (check_interpolation_path, path_midpoints, "midpoints"),
    (check_interpolation_path, path_reversed, "from x towards x′"),
    (check_interpolation_path, path_float32_alphas, r"the α are float32"),
    (check_interpolation_path, path_transposed, "not the transpose"),
    (check_interpolation_path, path_with_baseline, r"the baseline itself \(k = 0\)"),
    (check_interpolation_path, path_in_place, "changed its argument `x` in place"),
    (check_interpolation_path, path_by_the_library, "calls `integration_rule`"),
    (check_interpolation_path, stub, "not implemented"),
    (check_riemann_integrated_gradients, ig_without_difference, r"the \(x − x′\) factor is missing"),
    (check_riemann_integrated_gradients, ig_times_input, r"x ⊙ gradients"),
    (check_riemann_integrated_gradients, ig_summed, "summed, not averaged"),
    (check_riemann_integrated_gradients, ig_mean_twice, "divided by n twice"),
    (check_riemann_integrated_gradients, ig_left_nodes, "the left nodes"),
    (check_riemann_integrated_gradients, ig_trapezoid, "the trapezoid rule"),
    (check_riemann_integrated_gradients, ig_gradient_at_x, "the gradient at x alone"),
    (check_riemann_integrated_gradients, ig_through_x, "with respect to x through the path"),
    (check_riemann_integrated_gradients, ig_loop_over_points, r"forward was called 7 time\(s\).*ONE call"),
    (check_riemann_integrated_gradients, ig_loop_unbatched, r"forward was called 7 time\(s\).*\(5,\)"),
    (check_riemann_integrated_gradients, ig_extra_completeness_call, r"called 2 time\(s\).*\(2, 5\), \(7, 5\)"),
    (check_riemann_integrated_gradients, ig_in_chunks, r"called 2 time\(s\).*\(4, 5\), \(3, 5\)"),
    (check_riemann_integrated_gradients, ig_in_place, "changed its argument `baseline` in place"),
    (check_riemann_integrated_gradients, ig_float32, "the result is torch.float32"),
    (check_riemann_integrated_gradients, ig_float32_alphas, r"the α are float32"),
    (check_riemann_integrated_gradients, ig_by_the_library, "calls `integrated_gradients`"),
    (check_riemann_integrated_gradients, stub, "not implemented"),
]


@pytest.mark.parametrize("checker, wrong, message", WRONG, ids=[f"{c.__name__}-{w.__name__}" for c, w, _ in WRONG])
def test_checkers_catch_the_wrong_answer_and_name_the_mistake(checker, wrong, message):
    assert_fails_naming(checker, wrong, message)


def test_failures_name_the_input():
    with pytest.raises(CheckFailure, match=r"(?s)50 distances, kernel_width=0\.75 \(seed=7\).*expected.*got"):
        check_lime_kernel(kernel_no_sqrt, seed=7)
    with pytest.raises(CheckFailure, match=r"\|S\|=0, M=2: expected .* = 0\.5, got 1"):
        check_shapley_weight(weight_inverse_binomial, seed=0)
    with pytest.raises(CheckFailure, match=r"player 0 \(seed=3\)"):
        check_shapley_value(value_sign_flipped, seed=3)
    with pytest.raises(CheckFailure, match=r"n_steps=4 \(seed=5\)"):
        check_interpolation_path(path_alpha_x, seed=5)
    with pytest.raises(CheckFailure, match=r"n_steps=7 \(seed=5\)"):
        check_riemann_integrated_gradients(ig_summed, seed=5)


@pytest.mark.parametrize("checker", sorted({c for c, _ in RIGHT}, key=lambda c: c.__name__))
def test_checkers_refuse_what_is_not_a_function(checker):
    with pytest.raises(CheckFailure):
        checker(None, seed=0)


def test_ig_one_call_is_checked_at_every_step_count():
    """The loop over path points is refused even where its values are exact (every n_steps, here n=1 last)."""
    def loop_only_when_many(forward, x, baseline, n_steps):
        return (ig_loop_over_points if n_steps == 40 else riemann_integrated_gradients)(forward, x, baseline, n_steps)

    with pytest.raises(CheckFailure, match=r"called 40 time\(s\).*n_steps=40"):
        check_riemann_integrated_gradients(loop_only_when_many, seed=0)


def test_committed_solutions_print_the_committed_pass_lines(capsys):
    check_lime_kernel(lime_kernel)
    check_weighted_least_squares(weighted_least_squares)
    check_shapley_weight(shapley_weight)
    check_shapley_value(shapley_value)
    check_interpolation_path(interpolation_path)
    check_riemann_integrated_gradients(riemann_integrated_gradients)
    assert capsys.readouterr().out.splitlines() == [
        "PASS lime_kernel: √exp(−d²/w²) for three kernel widths",
        "PASS weighted_least_squares: the weighted fit on two random neighbourhoods",
        "PASS shapley_weight: every coalition size for M = 1 … 8 (the weights over S ⊆ N∖{i} sum to 1)",
        "PASS shapley_value: random 3- and 5-player games (efficiency and the dummy hold)",
        "PASS interpolation_path: right-Riemann points from a non-zero baseline",
        "PASS riemann_integrated_gradients: right-Riemann IG on a small network, non-zero baselines",
    ]


def test_generic_helpers():
    assert hint_for(torch.ones(3), {"a": torch.zeros(3), "b": lambda: torch.ones(3)}) == "\n  Hint: b."
    assert hint_for(torch.ones(3), {"raises": lambda: 1 / 0, "shape": torch.ones(4)}) == ""
    assert hint_for(object(), {"a": torch.ones(3)}) == ""
    kept = torch.arange(3.0)
    assert_not_modified("f", "x", {"x": (kept, kept.clone())})
    with pytest.raises(CheckFailure, match="changed its argument `x` in place for an input"):
        assert_not_modified("f", "an input", {"x": (kept, kept + 1)})
    with pytest.raises(CheckFailure, match="`xs` in place"):
        assert_not_modified("f", "an input", {"xs": ([kept, kept], [kept])})
    recorded = RecordedCalls(lambda batch: batch)
    recorded(torch.zeros(2, 3))
    recorded(batch=torch.zeros(4))
    recorded(5)
    assert recorded.shapes == [(2, 3), (4,), "int"]
    assert recorded.describe(limit=2) == "(2, 3), (4,), … (3 calls)"


def lime_kernel_helper(d, w):  # a student's own helper that shares the library's name
    return torch.sqrt(torch.exp(-d ** 2 / w ** 2))


def test_assert_does_not_use_reads_the_bytecode():
    banned = {"lime_kernel": "write it yourself"}

    def by_attribute(d, w):
        from bigtut.explain import lime

        return lime.lime_kernel(d, w)

    def nested(d, w):
        def inner():
            from bigtut.explain.lime import lime_kernel as k

            return k(d, w)
        return inner()

    def own_helper(d, w):
        return lime_kernel_helper(d, w)

    for cheat in (by_attribute, nested):
        with pytest.raises(CheckFailure, match="the answer calls `lime_kernel` — write it yourself"):
            assert_does_not_use("k", cheat, banned)
    assert_does_not_use("k", own_helper, {"lime_kernel_helper": "…"})  # bound to the module's own function: allowed
    assert_does_not_use("k", torch.exp, banned)  # a builtin has no bytecode: not read
    namespace = {}
    exec("import torch\ndef lime_kernel(d, w):\n    return d\ndef f(d, w):\n    return lime_kernel(d, w)\n", namespace)
    assert_does_not_use("k", namespace["f"], banned)  # a notebook cell's own lime_kernel
