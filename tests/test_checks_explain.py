"""The LIME and SHAP checkers (06–07) pass the right formulas on seeds 0–2 and catch the wrong ones students write,
each with a message naming the mistake."""

import itertools
import math

import numpy as np
import pytest
import torch
from checker_cases import assert_fails_naming, assert_passes_on_seeds

from bigtut.checks import CheckFailure
from bigtut.checks.explain import (
    check_kernel_shap_solve,
    check_lime_kernel,
    check_lime_tabular,
    check_shapley_value,
    check_shapley_weight,
    check_weighted_least_squares,
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


RIGHT = [(check_lime_kernel, lime_kernel), (check_lime_kernel, lime_kernel_gaussian),
         (check_weighted_least_squares, weighted_least_squares), (check_weighted_least_squares, normal_equations),
         (check_shapley_weight, shapley_weight), (check_shapley_weight, shapley_weight_comb),
         (check_shapley_value, shapley_value), (check_shapley_value, shapley_value_by_permutations)]


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


# (checker, wrong answer, a phrase the failure message must contain)
WRONG = [
    (check_lime_kernel, kernel_no_sqrt, "no square root"),
    (check_lime_kernel, kernel_not_squared, r"exp\(−d/w\): the distance and the width must be squared"),
    (check_lime_kernel, kernel_width_not_squared, "the width must be squared too"),
    (check_lime_kernel, kernel_normalised, "normalised to sum to 1"),
    (check_lime_kernel, kernel_positive_exponent, "sign is wrong"),
    (check_lime_kernel, kernel_in_place, "changed its input `distances` in place"),
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
    (check_weighted_least_squares, wls_in_place, "changed its input `features` in place"),
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


@pytest.mark.parametrize("checker", sorted({c for c, _ in RIGHT}, key=lambda c: c.__name__))
def test_checkers_refuse_what_is_not_a_function(checker):
    with pytest.raises(CheckFailure):
        checker(None, seed=0)


def test_committed_solutions_print_the_committed_pass_lines(capsys):
    check_lime_kernel(lime_kernel)
    check_weighted_least_squares(weighted_least_squares)
    check_shapley_weight(shapley_weight)
    check_shapley_value(shapley_value)
    assert capsys.readouterr().out.splitlines() == [
        "PASS lime_kernel: √exp(−d²/w²) for three kernel widths",
        "PASS weighted_least_squares: the weighted fit on two random neighbourhoods",
        "PASS shapley_weight: every coalition size for M = 1 … 8 (the weights over S ⊆ N∖{i} sum to 1)",
        "PASS shapley_value: random 3- and 5-player games (efficiency and the dummy hold)",
    ]


# ----------------------------------------------------------------- tabular LIME end to end (exercise 3 of 06)
def lime_tabular_by_hand(f, x, training_data, target, n_samples, seed, sample_around="mean"):
    M = x.shape[0]
    mean, scale = training_data.mean(0), training_data.std(0, correction=0)  # (M,), (M,)
    scale = torch.where(scale == 0, torch.ones_like(scale), scale)
    draws = torch.from_numpy(np.random.RandomState(seed).normal(0, 1, (n_samples, M)))  # (N, M)
    samples = draws * scale + (x if sample_around == "instance" else mean)  # (N, M)
    samples[0] = x
    z = (samples - mean) / scale  # (N, M)
    pi = torch.sqrt(torch.exp(-(z - z[0]).norm(dim=1) ** 2 / (0.75 * M ** 0.5) ** 2))  # (N,)
    y = f(samples)[:, target]  # (N,)
    z_bar, y_bar = pi @ z / pi.sum(), pi @ y / pi.sum()
    zc, yc = z - z_bar, y - y_bar
    beta = torch.linalg.solve(zc.T @ (pi[:, None] * zc) + torch.eye(M, dtype=z.dtype), zc.T @ (pi * yc))
    return beta, y_bar - z_bar @ beta


def lime_in_numpy(f, x, training_data, target, n_samples, seed, sample_around="mean"):  # NumPy, then lists
    x, train = x.numpy(), training_data.numpy()
    mean, scale = train.mean(0), train.std(0)
    scale[scale == 0] = 1.0
    samples = np.random.RandomState(seed).normal(0, 1, (n_samples, len(x))) * scale
    samples += x if sample_around == "instance" else mean
    samples[0] = x
    z = (samples - mean) / scale
    pi = np.exp(-np.linalg.norm(z - z[0], axis=1) ** 2 / (2 * (0.75 * np.sqrt(len(x))) ** 2))  # = √exp(−d²/w²)
    y = f(torch.from_numpy(samples))[:, target].numpy()
    design = np.c_[np.ones(len(z)), z]  # the intercept as a column, left out of the penalty
    penalty = np.diag([0.0] + [1.0] * len(x))
    theta = np.linalg.solve(design.T @ (pi[:, None] * design) + penalty, design.T @ (pi * y))
    return theta[1:].tolist(), float(theta[0])  # a list and a Python float: read as float64, not float32


def lime_in_chunks(f, x, training_data, target, n_samples, seed, sample_around="mean"):  # f on two halves
    def f_in_halves(rows):
        return torch.cat([f(rows[: len(rows) // 2]), f(rows[len(rows) // 2:])])

    return lime_tabular_by_hand(f_in_halves, x, training_data, target, n_samples, seed, sample_around)


def lime_unknown_mistake_after_sampling(f, x, train, target, n, seed, around="mean"):  # the kernel of width 1.3
    return lime_mistaken(f, x, train, target, n, seed, around, width=lambda m: 1.3)


def lime_mistaken(f, x, train, target, n_samples, seed, around="mean", *, centre=None, row0=True, rng="RandomState",
                  std_correction=0, constant_to_one=True, fit_on="z", model_on="samples", distance="z",
                  kernel="lime", width=None, weights="kernel", alpha=1.0, intercept="free", output="logit",
                  column=None, returned="intercept"):
    """The exercise's answer with one of the usual mistakes switched on."""
    M = x.shape[0]
    mean, scale = train.mean(0), train.std(0, correction=std_correction)
    if constant_to_one:
        scale = torch.where(scale == 0, torch.ones_like(scale), scale)
    draws = {"RandomState": lambda: torch.from_numpy(np.random.RandomState(seed).normal(0, 1, (n_samples, M))),
             "seed 0": lambda: torch.from_numpy(np.random.RandomState(0).normal(0, 1, (n_samples, M))),
             "default_rng": lambda: torch.from_numpy(np.random.default_rng(seed).normal(0, 1, (n_samples, M))),
             "torch": lambda: torch.randn(n_samples, M, generator=torch.Generator().manual_seed(seed),
                                          dtype=torch.float64),
             "own": lambda: torch.from_numpy(np.random.RandomState(seed + 1).normal(0, 1, (n_samples, M)))}[rng]()
    around = around if centre is None else centre
    samples = draws * scale + (x if around == "instance" else mean)
    if row0:
        samples[0] = x
    z = (samples - mean) / scale
    d = {"z": (z - z[0]).norm(dim=1), "units": (samples - samples[0]).norm(dim=1), "mean": z.norm(dim=1)}[distance]
    w = 0.75 * M ** 0.5 if width is None else width(M)
    pi = torch.exp(-d ** 2 / w ** 2) if kernel == "no sqrt" else torch.sqrt(torch.exp(-d ** 2 / w ** 2))
    pi = {"kernel": pi, "none": torch.ones_like(pi), "normalised": pi / pi.sum()}[weights]
    logits = f(samples if model_on == "samples" else z)
    outputs = {"logit": logits, "probability": logits.softmax(-1)}[output]
    y = outputs[:, target if column is None else column]
    features = z if fit_on == "z" else samples
    if intercept == "free":
        f_bar, y_bar = pi @ features / pi.sum(), pi @ y / pi.sum()
        fc, yc = features - f_bar, y - y_bar
        beta = torch.linalg.solve(fc.T @ (pi[:, None] * fc) + alpha * torch.eye(M, dtype=z.dtype), fc.T @ (pi * yc))
        b = y_bar - f_bar @ beta
    else:
        ones = torch.ones(len(z), 1, dtype=z.dtype)
        design = torch.cat([ones, features], 1) if intercept == "penalised" else features
        penalty = alpha * torch.eye(design.shape[1], dtype=z.dtype)
        theta = torch.linalg.solve(design.T @ (pi[:, None] * design) + penalty, design.T @ (pi * y))
        beta, b = (theta[1:], theta[0]) if intercept == "penalised" else (theta, torch.tensor(0.0))
    if returned == "mean":
        b = pi @ y / pi.sum()
    elif returned == "prediction":
        b = b + features[0] @ beta
    return beta, b


def lime_mistake(**mistake):
    return lambda f, x, train, target, n, seed, around="mean": lime_mistaken(f, x, train, target, n, seed, around,
                                                                             **mistake)


lime_always_instance = lime_mistake(centre="instance")
lime_always_mean = lime_mistake(centre="mean")
lime_row0_drawn = lime_mistake(row0=False)
lime_seed_ignored = lime_mistake(rng="seed 0")
lime_default_rng = lime_mistake(rng="default_rng")
lime_torch_generator = lime_mistake(rng="torch")
lime_other_draws = lime_mistake(rng="own")
lime_unbiased_std = lime_mistake(std_correction=1)
lime_constant_column_divides_by_zero = lime_mistake(constant_to_one=False)
lime_fit_in_model_units = lime_mistake(fit_on="samples")
lime_model_on_standardised = lime_mistake(model_on="z")
lime_unscaled_distances = lime_mistake(distance="units")
lime_distances_to_the_mean = lime_mistake(distance="mean")
lime_kernel_no_sqrt = lime_mistake(kernel="no sqrt")
lime_width_sqrt_m = lime_mistake(width=lambda m: m ** 0.5)
lime_unweighted = lime_mistake(weights="none")
lime_weights_normalised = lime_mistake(weights="normalised")
lime_no_ridge = lime_mistake(alpha=0.0)
lime_alpha_tenth = lime_mistake(alpha=0.1)
lime_penalised_intercept = lime_mistake(intercept="penalised")
lime_no_intercept = lime_mistake(intercept="none")
lime_probabilities = lime_mistake(output="probability")
lime_column_zero = lime_mistake(column=0)
lime_intercept_is_the_mean = lime_mistake(returned="mean")
lime_returns_the_prediction = lime_mistake(returned="prediction")


def lime_centred_on_x(f, x, train, target, n, seed, around="mean"):  # features z − z₀: same slopes, b moved
    beta, b = lime_tabular_by_hand(f, x, train, target, n, seed, around)
    scale = train.std(0, correction=0)
    z0 = (x - train.mean(0)) / torch.where(scale == 0, torch.ones_like(scale), scale)
    return beta, b + z0 @ beta


def lime_intercept_first(f, x, train, target, n, seed, around="mean"):
    beta, b = lime_tabular_by_hand(f, x, train, target, n, seed, around)
    return torch.cat([b.reshape(1), beta]), b


def lime_predicted_class(f, x, train, target, n, seed, around="mean"):  # the class f predicts at x
    return lime_tabular_by_hand(f, x, train, int(f(x[None]).argmax()), n, seed, around)


def lime_per_unit(f, x, train, target, n, seed, around="mean"):
    beta, b = lime_tabular_by_hand(f, x, train, target, n, seed, around)
    scale = train.std(0, correction=0)
    return beta / torch.where(scale == 0, torch.ones_like(scale), scale), b


def lime_in_place(f, x, train, target, n, seed, around="mean"):  # right values, but the caller's table is centred
    result = lime_tabular_by_hand(f, x, train.clone(), target, n, seed, around)
    train -= train.mean(0)
    return result


def lime_with_score(f, x, train, target, n, seed, around="mean"):
    return (*lime_tabular_by_hand(f, x, train, target, n, seed, around), 0.9)


def lime_by_the_library(f, x, train, target, n, seed, around="mean"):
    from bigtut.explain import lime_tabular

    out = lime_tabular(f, x[None], training_data=train, target=target, n_samples=n, seed=seed, sample_around=around)
    return torch.as_tensor(out.attributions[0]), torch.tensor(out.intercept[0])


def lime_with_sklearn_ridge(f, x, train, target, n, seed, around="mean"):  # right values, the fit not written
    from sklearn.linear_model import Ridge

    M = x.shape[0]
    mean, scale = train.mean(0), train.std(0, correction=0)
    scale = torch.where(scale == 0, torch.ones_like(scale), scale)
    samples = torch.from_numpy(np.random.RandomState(seed).normal(0, 1, (n, M))) * scale
    samples += x if around == "instance" else mean
    samples[0] = x
    z = (samples - mean) / scale
    pi = torch.sqrt(torch.exp(-(z - z[0]).norm(dim=1) ** 2 / (0.75 * M ** 0.5) ** 2))
    ridge = Ridge(alpha=1.0).fit(z.numpy(), f(samples)[:, target].numpy(), sample_weight=pi.numpy())
    return torch.as_tensor(ridge.coef_), torch.tensor(ridge.intercept_)


def lime_normal_around_the_centre(f, x, train, target, n, seed, around="mean"):  # normal(loc, scale): lime's draws
    M = x.shape[0]
    mean, scale = train.mean(0), train.std(0, correction=0)
    scale = torch.where(scale == 0, torch.ones_like(scale), scale)
    centre = x if around == "instance" else mean
    samples = torch.from_numpy(np.random.RandomState(seed).normal(centre.numpy(), scale.numpy(), (n, M)))
    samples[0] = x
    z = (samples - mean) / scale
    pi = torch.exp(-torch.cdist(z, z[:1])[:, 0] ** 2 / (2 * 0.75 ** 2 * M))  # = √exp(−d²/w²), w = 0.75·√M
    design = torch.cat([torch.ones(n, 1, dtype=z.dtype), z], 1) * pi.sqrt()[:, None]  # ridge as an augmented fit
    design = torch.cat([design, torch.cat([torch.zeros(M, 1, dtype=z.dtype), torch.eye(M, dtype=z.dtype)], 1)])
    targets = torch.cat([f(samples)[:, target] * pi.sqrt(), torch.zeros(M, dtype=z.dtype)])
    theta = torch.linalg.lstsq(design, targets[:, None]).solution[:, 0]
    return theta[1:], theta[:1]  # the intercept as a one-element tensor


def lime_f_on_lists(f, x, train, target, n, seed, around="mean"):  # f handed Python lists of floats (float64)
    return lime_tabular_by_hand(lambda rows: f(rows.tolist()), x, train, target, n, seed, around)


def lime_float32_samples(f, x, train, target, n, seed, around="mean"):  # f evaluated at float32-rounded samples
    return lime_tabular_by_hand(lambda rows: f(rows.float()), x, train, target, n, seed, around)


def lime_with_ridge_regression(f, x, train, target, n, seed, around="mean"):  # scikit-learn's ridge solver
    from sklearn.linear_model import ridge_regression

    M = x.shape[0]
    mean, scale = train.mean(0), train.std(0, correction=0)
    scale = torch.where(scale == 0, torch.ones_like(scale), scale)
    samples = torch.from_numpy(np.random.RandomState(seed).normal(0, 1, (n, M))) * scale
    samples += x if around == "instance" else mean
    samples[0] = x
    z = (samples - mean) / scale
    pi = torch.sqrt(torch.exp(-(z - z[0]).norm(dim=1) ** 2 / (0.75 * M ** 0.5) ** 2))
    y = f(samples)[:, target]
    z_bar, y_bar = pi @ z / pi.sum(), pi @ y / pi.sum()
    beta = torch.as_tensor(ridge_regression((z - z_bar).numpy(), (y - y_bar).numpy(), alpha=1.0,
                                            sample_weight=pi.numpy()))
    return beta, y_bar - z_bar @ beta


def lime_with_lime_base(f, x, train, target, n, seed, around="mean"):  # lime's own fit on the right neighbourhood
    from lime.lime_base import LimeBase

    M = x.shape[0]
    mean, scale = train.mean(0), train.std(0, correction=0)
    scale = torch.where(scale == 0, torch.ones_like(scale), scale)
    samples = torch.from_numpy(np.random.RandomState(seed).normal(0, 1, (n, M))) * scale
    samples += x if around == "instance" else mean
    samples[0] = x
    z = (samples - mean) / scale
    width = 0.75 * M ** 0.5
    base = LimeBase(lambda d: np.sqrt(np.exp(-d ** 2 / width ** 2)))
    intercept, pairs, _, _ = base.explain_instance_with_data(z.numpy(), f(samples).numpy(), (z - z[0]).norm(dim=1)
                                                            .numpy(), target, M, feature_selection="none")
    beta = torch.zeros(M, dtype=torch.float64)
    for j, value in pairs:
        beta[j] = value
    return beta, intercept


# --------------------------------------------------- KernelSHAP's constrained weighted least squares (07, ex. 3)
def kernel_shap_solve(coalitions, values, weights, base_value, full_value):
    total = full_value - base_value
    target = values - base_value - coalitions[:, -1] * total  # (K,) φ_M = total − Σ_{j<M} φ_j substituted
    design = coalitions[:, :-1] - coalitions[:, -1:]  # (K, M−1)
    root = weights.sqrt()[:, None]  # (K, 1)
    head = torch.linalg.lstsq(design * root, target[:, None] * root).solution[:, 0]  # (M−1,)
    return torch.cat([head, (total - head.sum()).reshape(1)])


def kernel_shap_lagrange(coalitions, values, weights, base_value, full_value):  # the KKT system
    M = coalitions.shape[1]
    system = torch.zeros(M + 1, M + 1, dtype=coalitions.dtype)
    system[:M, :M] = coalitions.T @ (weights[:, None] * coalitions)
    system[:M, M] = system[M, :M] = 1.0
    rhs = torch.cat([coalitions.T @ (weights * (values - base_value)),
                     torch.tensor([full_value - base_value], dtype=coalitions.dtype)])
    return torch.linalg.solve(system, rhs)[:M]


def kernel_shap_first_eliminated(coalitions, values, weights, base_value, full_value):  # φ_0 substituted instead
    Z, total = coalitions.numpy(), full_value - base_value
    target = values.numpy() - base_value - Z[:, 0] * total
    design = Z[:, 1:] - Z[:, :1]
    root = np.sqrt(weights.numpy())[:, None]
    tail = np.linalg.lstsq(design * root, target * root[:, 0], rcond=None)[0]
    return np.r_[total - tail.sum(), tail].tolist()


def shap_wls(Z, y, w, intercept=False):
    design = torch.cat([torch.ones(len(Z), 1, dtype=Z.dtype), Z], 1) if intercept else Z
    root = w.sqrt()[:, None]
    solution = torch.linalg.lstsq(design * root, y[:, None] * root).solution[:, 0]
    return solution[1:] if intercept else solution


def shap_unconstrained(Z, v, w, base, full):
    return shap_wls(Z, v - base, w)


def shap_free_intercept(Z, v, w, base, full):  # LIME's fit on the coalitions
    return shap_wls(Z, v, w, intercept=True)


def shap_constrained_free_intercept(Z, v, w, base, full):
    M = Z.shape[1]
    design = torch.cat([Z, torch.ones(len(Z), 1, dtype=Z.dtype)], 1)
    system = torch.zeros(M + 2, M + 2, dtype=Z.dtype)
    system[:M + 1, :M + 1] = design.T @ (w[:, None] * design)
    system[:M, M + 1] = system[M + 1, :M] = 1.0
    rhs = torch.cat([design.T @ (w * v), torch.tensor([full - base], dtype=Z.dtype)])
    return torch.linalg.solve(system, rhs)[:M]


def shap_rhs_full_value(Z, v, w, base, full):
    return kernel_shap_lagrange(Z, v, w, base, full + base)  # Σφ = f(x)


def shap_values_not_shifted(Z, v, w, base, full):
    return kernel_shap_lagrange(Z, v + base, w, base, full)  # fits v, not v − f(∅)


def shap_unweighted(Z, v, w, base, full):
    return kernel_shap_solve(Z, v, torch.ones_like(w), base, full)


def shap_rows_times_w(Z, v, w, base, full):
    return kernel_shap_solve(Z, v, w ** 2, base, full)


def shap_recomputed_weights(Z, v, w, base, full):
    M, sizes = Z.shape[1], Z.sum(1)
    kernel = (M - 1) / (torch.tensor([math.comb(M, int(s)) for s in sizes], dtype=Z.dtype) * sizes * (M - sizes))
    return kernel_shap_solve(Z, v, kernel, base, full)


def shap_head_only(Z, v, w, base, full):
    return kernel_shap_solve(Z, v, w, base, full)[:-1]


def shap_last_zero(Z, v, w, base, full):
    phi = kernel_shap_solve(Z, v, w, base, full)
    phi[-1] = 0.0
    return phi


def shap_last_total(Z, v, w, base, full):
    phi = kernel_shap_solve(Z, v, w, base, full)
    phi[-1] = full - base
    return phi


def shap_target_unadjusted(Z, v, w, base, full):
    total = full - base
    root = w.sqrt()[:, None]
    head = torch.linalg.lstsq((Z[:, :-1] - Z[:, -1:]) * root, ((v - base) * root[:, 0])[:, None]).solution[:, 0]
    return torch.cat([head, (total - head.sum()).reshape(1)])


def shap_design_unadjusted(Z, v, w, base, full):
    total = full - base
    root = w.sqrt()[:, None]
    target = v - base - Z[:, -1] * total
    head = torch.linalg.lstsq(Z[:, :-1] * root, (target * root[:, 0])[:, None]).solution[:, 0]
    return torch.cat([head, (total - head.sum()).reshape(1)])


def shap_rescaled(Z, v, w, base, full):
    phi = shap_unconstrained(Z, v, w, base, full)
    return phi * (full - base) / phi.sum()


def shap_gap_spread(Z, v, w, base, full):
    phi = shap_unconstrained(Z, v, w, base, full)
    return phi + (full - base - phi.sum()) / len(phi)


def shap_heavy_rows(Z, v, w, base, full):  # ∅ and N as rows of weight 10⁶: efficiency only approximately
    M = Z.shape[1]
    rows = torch.cat([Z, torch.zeros(1, M, dtype=Z.dtype), torch.ones(1, M, dtype=Z.dtype)])
    targets = torch.cat([v, torch.tensor([base, full], dtype=Z.dtype)])
    weights = torch.cat([w, torch.tensor([1e6, 1e6], dtype=Z.dtype)])
    return shap_wls(rows, targets, weights, intercept=True)


def shap_infinite_rows(Z, v, w, base, full):  # ∅ and N with the kernel's formula: an infinite weight
    M = Z.shape[1]
    rows = torch.cat([Z, torch.zeros(1, M, dtype=Z.dtype), torch.ones(1, M, dtype=Z.dtype)])
    sizes = rows.sum(1)
    kernel = (M - 1) / (torch.tensor([math.comb(M, int(s)) for s in sizes], dtype=Z.dtype) * sizes * (M - sizes))
    targets = torch.cat([v, torch.tensor([base, full], dtype=Z.dtype)])
    return shap_wls(rows, targets, kernel, intercept=True)


def shap_infinite_rows_normal_equations(Z, v, w, base, full):  # the same rows, solved as (XᵀWX)φ = XᵀWy: NaN
    M = Z.shape[1]
    rows = torch.cat([torch.ones(len(Z) + 2, 1, dtype=Z.dtype),
                      torch.cat([Z, torch.zeros(1, M, dtype=Z.dtype), torch.ones(1, M, dtype=Z.dtype)])], 1)
    sizes = rows[:, 1:].sum(1)
    kernel = (M - 1) / (torch.tensor([math.comb(M, int(s)) for s in sizes], dtype=Z.dtype) * sizes * (M - sizes))
    targets = torch.cat([v, torch.tensor([base, full], dtype=Z.dtype)])
    return torch.linalg.solve(rows.T @ (kernel[:, None] * rows), rows.T @ (kernel * targets))[1:]


def shap_with_intercept(Z, v, w, base, full):  # [f(∅), φ…]
    return torch.cat([torch.tensor([base], dtype=Z.dtype), kernel_shap_solve(Z, v, w, base, full)])


def shap_in_place(Z, v, w, base, full):
    v -= base  # the caller's values now hold v − f(∅)
    return kernel_shap_solve(Z, v + base, w, base, full)


def shap_by_the_library(Z, v, w, base, full):  # the course's solver when the design holds every coalition
    from bigtut.explain import shap as reference

    M = Z.shape[1]
    if len(Z) == 2 ** M - 2:
        table = {tuple(row.tolist()): value for row, value in zip(Z.bool(), v.tolist())}

        def game(masks):
            return np.array([base if not m.any() else full if m.all() else table[tuple(m.tolist())] for m in masks])

        return torch.as_tensor(reference.kernel_game(game, M, None, 0)[0])
    return kernel_shap_solve(Z, v, w, base, full)


def kernel_shap_projection(coalitions, values, weights, base_value, full_value):  # free fit, then projected
    gram = coalitions.T @ (weights[:, None] * coalitions)  # (M, M)
    free = torch.linalg.solve(gram, coalitions.T @ (weights * (values - base_value)))  # (M,) no constraint
    direction = torch.linalg.solve(gram, torch.ones(coalitions.shape[1], dtype=coalitions.dtype))  # (M,) A⁻¹1
    return free + direction * (full_value - base_value - free.sum()) / direction.sum()  # the KKT correction


def kernel_shap_kkt_inverse(coalitions, values, weights, base_value, full_value):  # the KKT matrix inverted
    M = coalitions.shape[1]
    system = torch.zeros(M + 1, M + 1, dtype=coalitions.dtype)
    system[:M, :M] = coalitions.T @ torch.diag(weights) @ coalitions
    system[:M, M] = system[M, :M] = 1.0
    rhs = torch.cat([coalitions.T @ torch.diag(weights) @ (values - base_value),
                     torch.tensor([full_value - base_value], dtype=coalitions.dtype)])
    return (torch.linalg.inv(system) @ rhs)[:M]  # the least exact right answer tried: Σφ within 1e-14


def shap_float32_total(Z, v, w, base, full):  # torch.tensor(total) without dtype=: the constraint in float32
    M = Z.shape[1]
    system = torch.zeros(M + 1, M + 1, dtype=Z.dtype)
    system[:M, :M] = Z.T @ (w[:, None] * Z)
    system[:M, M] = system[M, :M] = 1.0
    rhs = torch.cat([Z.T @ (w * (v - base)), torch.tensor([full - base])])  # promoted back to float64, rounded
    return torch.linalg.solve(system, rhs)[:M]


def shap_heavy_rows_1e10(Z, v, w, base, full):  # ∅ and N as rows of weight 10¹⁰: each value right to ~1e-11
    M = Z.shape[1]
    rows = torch.cat([Z, torch.zeros(1, M, dtype=Z.dtype), torch.ones(1, M, dtype=Z.dtype)])
    targets = torch.cat([v - base, torch.tensor([0.0, full - base], dtype=Z.dtype)])
    return shap_wls(rows, targets, torch.cat([w, torch.tensor([1e10, 1e10], dtype=Z.dtype)]))


def shap_heavy_rows_1e14(Z, v, w, base, full):  # weight 10¹⁴: efficiency to 1e-14, the values off by ~1e-8
    M = Z.shape[1]
    rows = torch.cat([Z, torch.zeros(1, M, dtype=Z.dtype), torch.ones(1, M, dtype=Z.dtype)])
    targets = torch.cat([v - base, torch.tensor([0.0, full - base], dtype=Z.dtype)])
    return shap_wls(rows, targets, torch.cat([w, torch.tensor([1e14, 1e14], dtype=Z.dtype)]))


def shap_eliminated(Z, v, w, base, full, *, target_total=None, weigh="both"):
    total = full - base
    target = v - base - Z[:, -1] * (total if target_total is None else target_total)
    design = Z[:, :-1] - Z[:, -1:]
    root = w.sqrt() if weigh in ("both", "design") else torch.ones_like(w)
    target_root = w.sqrt() if weigh in ("both", "target") else torch.ones_like(w)
    head = torch.linalg.lstsq(design * root[:, None], (target * target_root)[:, None]).solution[:, 0]
    return torch.cat([head, (total - head.sum()).reshape(1)])


def shap_target_unweighted(Z, v, w, base, full):
    return shap_eliminated(Z, v, w, base, full, weigh="design")


def shap_design_unweighted(Z, v, w, base, full):
    return shap_eliminated(Z, v, w, base, full, weigh="target")


def shap_target_minus_full(Z, v, w, base, full):  # values − f(∅) − z_M·f(x)
    return shap_eliminated(Z, v, w, base, full, target_total=full)


def shap_last_first(Z, v, w, base, full):  # φ_M = total − Σ head put in front
    phi = kernel_shap_solve(Z, v, w, base, full)
    return torch.cat([phi[-1:], phi[:-1]])


def shap_arguments_swapped(Z, v, w, full, base):  # reads (…, full_value, base_value)
    return kernel_shap_solve(Z, v, w, base, full)


RIGHT_END_TO_END = [(check_lime_tabular, lime_tabular_by_hand), (check_lime_tabular, lime_in_numpy),
                    (check_lime_tabular, lime_in_chunks), (check_lime_tabular, lime_normal_around_the_centre),
                    (check_lime_tabular, lime_f_on_lists),
                    (check_kernel_shap_solve, kernel_shap_solve), (check_kernel_shap_solve, kernel_shap_lagrange),
                    (check_kernel_shap_solve, kernel_shap_first_eliminated),
                    (check_kernel_shap_solve, kernel_shap_projection),
                    (check_kernel_shap_solve, kernel_shap_kkt_inverse)]


@pytest.mark.parametrize("checker, solution", RIGHT_END_TO_END,
                         ids=[f"{c.__name__}-{s.__name__}" for c, s in RIGHT_END_TO_END])
def test_end_to_end_checkers_pass_the_right_answer_on_seeds_0_to_2(checker, solution, capsys):
    assert_passes_on_seeds(checker, solution, capsys)


WRONG_END_TO_END = [
    (check_lime_tabular, lime_always_instance, r"drawn around the instance; sample_around='mean'"),
    (check_lime_tabular, lime_always_mean, r"drawn around the training mean; sample_around='instance'"),
    (check_lime_tabular, lime_row0_drawn, r"set samples\[0\] = x"),
    (check_lime_tabular, lime_seed_ignored, r"the seed argument was ignored"),
    (check_lime_tabular, lime_default_rng, r"default_rng\(seed\) is another generator"),
    (check_lime_tabular, lime_torch_generator, r"torch's generator draws other numbers"),
    (check_lime_tabular, lime_other_draws, r"f never received lime_tabular's samples"),
    (check_lime_tabular, lime_unknown_mistake_after_sampling, r"f received exactly lime_tabular's samples, so the "
                                                              r"sampler is right"),
    (check_lime_tabular, lime_unbiased_std, r"unbiased.*correction=0"),
    (check_lime_tabular, lime_constant_column_divides_by_zero, r"constant training column.*scale 1"),
    (check_lime_tabular, lime_fit_in_model_units, r"fitted on the samples in the model's units"),
    (check_lime_tabular, lime_per_unit, r"divided by the standard deviations \(lime_tabular's per_unit\)"),
    (check_lime_tabular, lime_model_on_standardised, r"f was given the standardised rows"),
    (check_lime_tabular, lime_unscaled_distances, r"distances were measured in the model's units"),
    (check_lime_tabular, lime_distances_to_the_mean, r"measured from the sampling centre"),
    (check_lime_tabular, lime_kernel_no_sqrt, r"has no square root"),
    (check_lime_tabular, lime_width_sqrt_m, r"kernel width √M"),
    (check_lime_tabular, lime_unweighted, r"an unweighted fit"),
    (check_lime_tabular, lime_weights_normalised, r"normalised to sum to 1"),
    (check_lime_tabular, lime_no_ridge, r"no ridge penalty"),
    (check_lime_tabular, lime_alpha_tenth, r"alpha=0\.1: lime's ridge penalty is alpha=1"),
    (check_lime_tabular, lime_penalised_intercept, r"the intercept was penalised too"),
    (check_lime_tabular, lime_no_intercept, r"no intercept"),
    (check_lime_tabular, lime_probabilities, r"the probabilities were explained; the method's default is the logit"),
    (check_lime_tabular, lime_column_zero, r"output column 0 was explained, not target=[12]"),
    (check_lime_tabular, lime_predicted_class, r"output column \d was explained, not target=\d"),
    (check_lime_tabular, lime_intercept_is_the_mean, r"intercept.*weighted mean ȳ"),
    (check_lime_tabular, lime_returns_the_prediction, r"the surrogate's value at x"),
    (check_lime_tabular, lime_centred_on_x, r"the surrogate's value at x .* centred on x"),
    (check_lime_tabular, lime_intercept_first, r"5 attributions .* expected 4: the intercept is still among them"),
    (check_lime_tabular, lime_in_place, r"changed its input `training_data` in place"),
    (check_lime_tabular, lime_with_score, r"expected \(attributions, intercept\)"),
    (check_lime_tabular, lime_by_the_library, r"calls `lime_tabular` — .* the course's own answer"),
    (check_lime_tabular, lime_with_sklearn_ridge, r"calls `Ridge` — write the weighted ridge fit yourself"),
    (check_lime_tabular, lime_float32_samples, r"f takes float64 rows, got torch.float32"),
    (check_lime_tabular, lime_with_ridge_regression, r"calls `ridge_regression` — write the weighted ridge fit"),
    (check_lime_tabular, lime_with_lime_base, r"calls `LimeBase` — lime's LimeBase fits lime's ridge for you"),
    (check_lime_tabular, stub, "not implemented"),
    (check_kernel_shap_solve, shap_unconstrained, r"no efficiency constraint"),
    (check_kernel_shap_solve, shap_free_intercept, r"a free intercept and no constraint — LIME's fit"),
    (check_kernel_shap_solve, shap_constrained_free_intercept, r"a free intercept: the intercept is f\(∅\), known"),
    (check_kernel_shap_solve, shap_rhs_full_value, r"right-hand side is f\(x\); it is f\(x\) − f\(∅\)"),
    (check_kernel_shap_solve, shap_values_not_shifted, r"not shifted by f\(∅\)"),
    (check_kernel_shap_solve, shap_unweighted, r"unweighted"),
    (check_kernel_shap_solve, shap_rows_times_w, r"multiplied by w, not √w"),
    (check_kernel_shap_solve, shap_recomputed_weights, r"recomputed from the coalition sizes"),
    (check_kernel_shap_solve, shap_head_only, r"3 values .* expected 4: after eliminating φ_M, add it back"),
    (check_kernel_shap_solve, shap_last_zero, r"never added back"),
    (check_kernel_shap_solve, shap_last_total, r"φ_M was set to f\(x\) − f\(∅\)"),
    (check_kernel_shap_solve, shap_target_unadjusted, r"the target must be values − base_value − z_M"),
    (check_kernel_shap_solve, shap_design_unadjusted, r"each column j < M of the design must be z_j − z_M"),
    (check_kernel_shap_solve, shap_rescaled, r"rescaled to add up"),
    (check_kernel_shap_solve, shap_gap_spread, r"spread evenly"),
    (check_kernel_shap_solve, shap_heavy_rows, r"efficiency holds only approximately"),
    (check_kernel_shap_solve, shap_infinite_rows, r"raised RuntimeError.*Hint: the Shapley kernel gives ∅ and N "
                                                  r"infinite weight"),
    (check_kernel_shap_solve, shap_infinite_rows_normal_equations, r"NaN or inf.*∅ and N infinite weight"),
    (check_kernel_shap_solve, shap_with_intercept, r"5 values .* expected 4: return φ alone"),
    (check_kernel_shap_solve, shap_in_place, r"changed its input `values` in place"),
    (check_kernel_shap_solve, shap_by_the_library, r"calls `kernel_game` — .* the course's own answer"),
    (check_kernel_shap_solve, shap_float32_total, r"f\(x\) − f\(∅\) = .* rounded to float32"),
    (check_kernel_shap_solve, shap_heavy_rows_1e10, r"every value is within 1e-10, but Σφ misses f\(x\) − f\(∅\) by "
                                                    r".*efficiency holds only approximately — ∅ and N added as rows"),
    (check_kernel_shap_solve, shap_heavy_rows_1e14, r"within 1e-6 of the exact fit but not within 1e-10.*∅ and N "
                                                    r"added as rows with a huge finite weight"),
    (check_kernel_shap_solve, shap_target_unweighted, r"only the design's rows were multiplied by √w"),
    (check_kernel_shap_solve, shap_design_unweighted, r"only the target was multiplied by √w"),
    (check_kernel_shap_solve, shap_target_minus_full, r"not − z_M·f\(x\)"),
    (check_kernel_shap_solve, shap_last_first, r"φ_M was put first"),
    (check_kernel_shap_solve, shap_arguments_swapped, r"base_value and full_value were swapped"),
    (check_kernel_shap_solve, stub, "not implemented"),
]


@pytest.mark.parametrize("checker, wrong, message", WRONG_END_TO_END,
                         ids=[f"{c.__name__}-{w.__name__}" for c, w, _ in WRONG_END_TO_END])
def test_end_to_end_checkers_catch_the_wrong_answer_and_name_the_mistake(checker, wrong, message):
    assert_fails_naming(checker, wrong, message)


def test_lime_written_out_is_lime_tabular():
    """The checker's own written-out LIME (the base of its wrong variants) is bigtut's lime_tabular."""
    from bigtut.checks.explain import _lime_by_hand, _TabularModel
    from bigtut.explain import lime_tabular

    model = _TabularModel(torch.Generator().manual_seed(0), 5, 3)
    train = np.random.default_rng(0).normal(size=(40, 5)) * [1.0, 2.0, 3.0, 0.5, 0.1] + 2.0
    train[:, 3] = 1.5
    x = train[1] + 0.2
    for around in ("mean", "instance"):
        beta, intercept, _ = _lime_by_hand(model, x, train, 1, 300, 17, around)
        out = lime_tabular(model.logits, x[None], training_data=train, target=1, n_samples=300, seed=17,
                           sample_around=around)
        assert np.abs(beta - out.attributions[0]).max() < 1e-12 and abs(intercept - out.intercept[0]) < 1e-12


def test_the_kkt_solve_behind_the_unpaired_case_is_kernel_game():
    """On kernel_shap's own designs the checker's KKT solve (its reference for the unpaired design) = kernel_game."""
    from bigtut.checks.explain import _constrained_fit, _kernel_shap_design

    gen = torch.Generator().manual_seed(0)
    for m, n_samples in ((4, None), (6, None), (7, 40), (10, 60)):
        case = _kernel_shap_design(gen, m, n_samples)
        solved = _constrained_fit(case["coalitions"], case["values"] - case["base"], case["weights"],
                                  case["full"] - case["base"])
        assert torch.allclose(solved, case["phi"], atol=1e-12, rtol=0)


def test_end_to_end_failures_name_the_input_and_pass_lines_are_fixed(capsys):
    with pytest.raises(CheckFailure, match=r"M=4 features and 3 classes, target=\d, n_samples=400, seed=\d+, "
                                           r"sample_around='mean' \(checker seed=4\)"):
        check_lime_tabular(lime_kernel_no_sqrt, seed=4)
    with pytest.raises(CheckFailure, match=r"random 4-player game on all its 14 coalitions besides ∅ and N \(seed=4\)"):
        check_kernel_shap_solve(shap_unweighted, seed=4)
    check_lime_tabular(lime_tabular_by_hand)
    check_kernel_shap_solve(kernel_shap_solve)
    assert capsys.readouterr().out.splitlines() == [
        "PASS lime_tabular: = bigtut's lime_tabular on three random networks (around the mean and the instance, a "
        "constant column)",
        "PASS kernel_shap_solve: = kernel_shap's constrained fit on every coalition of 4 players, sampled designs for "
        "7 and 10, and an unpaired design for 6",
    ]
