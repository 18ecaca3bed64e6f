"""The checkers of notebooks 00 and 01 pass correct code and fail stubs and plausible mistakes."""

from __future__ import annotations

import contextlib
import io
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bigtut.checks import CheckFailure
from bigtut.checks.basics import (
    check_count_parameters,
    check_cross_entropy,
    check_gelu,
    check_linear_regression_step,
    check_log_softmax,
    check_standardize,
)

# ---------------------------------------------------------------- correct solutions, written as a student would


def standardize(x):
    return (x - x.mean(dim=0)) / x.std(dim=0, correction=0)


def count_parameters(model):
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def gelu(x, approximate="none"):
    if approximate == "tanh":
        return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    return 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))


def log_softmax(z):
    m = z.max(dim=-1, keepdim=True).values
    return z - m - torch.log(torch.exp(z - m).sum(dim=-1, keepdim=True))


def cross_entropy(logits, targets):
    return -log_softmax(logits).gather(1, targets[:, None]).mean()


def linear_regression_step(w, b, x, y, lr):
    r = x @ w + b - y
    return w - lr * 2 * x.T @ r / len(y), b - lr * 2 * r.mean()


def stub(*args, **kwargs):
    raise NotImplementedError("fill in the solution")


CORRECT = [
    (check_standardize, standardize),
    (check_count_parameters, count_parameters),
    (check_gelu, gelu),
    (check_log_softmax, log_softmax),
    (check_cross_entropy, cross_entropy),
    (check_linear_regression_step, linear_regression_step),
]
IDS = [checker.__name__ for checker, _ in CORRECT]


@pytest.mark.parametrize(("checker", "solution"), CORRECT, ids=IDS)
def test_checker_passes_a_correct_solution(checker, solution, capsys):
    checker(solution)
    line = capsys.readouterr().out.strip()
    assert line.startswith("PASS ") and "\n" not in line


@pytest.mark.parametrize(("checker", "solution"), CORRECT, ids=IDS)
def test_checker_fails_the_stub_with_a_hint(checker, solution):
    with pytest.raises(CheckFailure, match="not implemented yet"):
        checker(stub)


@pytest.mark.parametrize(("checker", "solution"), CORRECT, ids=IDS)
def test_checker_rejects_a_non_function(checker, solution):
    with pytest.raises(CheckFailure, match="expected a function"):
        checker(42)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(min_value=0, max_value=2**31 - 1))
def test_checkers_pass_correct_solutions_for_any_seed(seed):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        for checker, solution in CORRECT:
            checker(solution, seed=seed)  # raises CheckFailure on any disagreement
    assert out.getvalue().count("PASS ") == len(CORRECT)


def test_checkers_leave_the_global_random_state_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    for checker, solution in CORRECT:
        checker(solution)
    assert torch.equal(torch.rand(3), expected)


# ---------------------------------------------------------------- plausible mistakes each checker must catch


def test_standardize_rejects_the_sample_std():
    with pytest.raises(CheckFailure, match="values differ"):
        check_standardize(lambda x: (x - x.mean(0)) / x.std(0))  # divides by n - 1


def test_standardize_rejects_row_statistics():
    with pytest.raises(CheckFailure, match="values differ"):
        check_standardize(lambda x: (x - x.mean(1, keepdim=True)) / x.std(1, correction=0, keepdim=True))


def test_count_parameters_rejects_counting_frozen_weights():
    with pytest.raises(CheckFailure, match="frozen"):
        check_count_parameters(lambda m: sum(p.numel() for p in m.parameters()))


def test_count_parameters_rejects_counting_tied_weights_twice():
    def wrong(model):
        return sum(p.numel() for _, p in model.named_parameters(remove_duplicate=False) if p.requires_grad)

    with pytest.raises(CheckFailure, match="tied"):
        check_count_parameters(wrong)


def test_count_parameters_rejects_the_number_of_tensors():
    with pytest.raises(CheckFailure, match="trainable parameters"):
        check_count_parameters(lambda m: len([p for p in m.parameters() if p.requires_grad]))


def test_count_parameters_accepts_a_one_element_tensor_but_not_a_fraction(capsys):
    check_count_parameters(lambda m: torch.tensor(count_parameters(m)))
    assert capsys.readouterr().out.startswith("PASS count_parameters")
    with pytest.raises(CheckFailure, match="whole number"):
        check_count_parameters(lambda m: count_parameters(m) + 0.5)


def test_gelu_rejects_the_tanh_approximation_as_the_exact_gelu():
    with pytest.raises(CheckFailure, match="approximate='none'"):
        check_gelu(lambda x, approximate="none": gelu(x, approximate="tanh"))


def test_gelu_rejects_a_missing_cube_term():
    def wrong(x, approximate="none"):
        if approximate == "tanh":
            return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * x))
        return gelu(x)

    with pytest.raises(CheckFailure, match="approximate='tanh'"):
        check_gelu(wrong)


def test_gelu_rejects_the_sigmoid_approximation():
    with pytest.raises(CheckFailure, match="gelu"):
        check_gelu(lambda x, approximate="none": x * torch.sigmoid(1.702 * x))


def test_log_softmax_rejects_the_naive_formula_on_extreme_logits():
    naive = lambda z: torch.log(torch.exp(z) / torch.exp(z).sum(dim=-1, keepdim=True))  # noqa: E731
    with pytest.raises(CheckFailure, match="extreme logits"):
        check_log_softmax(naive)


def test_log_softmax_rejects_log_of_a_stable_softmax():
    # softmax itself is stable, but log(0) = -inf where the true answer is -2000
    with pytest.raises(CheckFailure, match="extreme logits"):
        check_log_softmax(lambda z: torch.log(torch.softmax(z, dim=-1)))


def test_log_softmax_rejects_the_wrong_axis():
    with pytest.raises(CheckFailure, match="values differ"):
        check_log_softmax(lambda z: torch.log_softmax(z, dim=0))


def test_cross_entropy_rejects_a_sum_over_the_batch():
    with pytest.raises(CheckFailure, match="values differ"):
        check_cross_entropy(lambda z, t: -log_softmax(z).gather(1, t[:, None]).sum())


def test_cross_entropy_rejects_a_per_example_vector():
    with pytest.raises(CheckFailure, match="wrong shape"):
        check_cross_entropy(lambda z, t: -log_softmax(z).gather(1, t[:, None]).squeeze(1))


def test_cross_entropy_rejects_the_naive_softmax():
    naive = lambda z, t: -torch.log(torch.softmax(z, -1).gather(1, t[:, None])).mean()  # noqa: E731
    with pytest.raises(CheckFailure, match="extreme logits"):
        check_cross_entropy(naive)


def test_step_rejects_a_gradient_without_the_factor_two():
    def wrong(w, b, x, y, lr):
        r = x @ w + b - y
        return w - lr * x.T @ r / len(y), b - lr * r.mean()

    with pytest.raises(CheckFailure, match="w_new"):
        check_linear_regression_step(wrong)


def test_step_rejects_climbing_the_gradient():
    def wrong(w, b, x, y, lr):
        r = x @ w + b - y
        return w + lr * 2 * x.T @ r / len(y), b + lr * 2 * r.mean()

    with pytest.raises(CheckFailure, match="values differ"):
        check_linear_regression_step(wrong)


def test_step_rejects_a_forgotten_bias_update():
    def wrong(w, b, x, y, lr):
        r = x @ w + b - y
        return w - lr * 2 * x.T @ r / len(y), b

    with pytest.raises(CheckFailure, match="b_new"):
        check_linear_regression_step(wrong)


def test_step_rejects_an_in_place_update():
    def wrong(w, b, x, y, lr):
        r = x @ w + b - y
        w -= lr * 2 * x.T @ r / len(y)
        return w, b - lr * 2 * r.mean()

    with pytest.raises(CheckFailure, match="modified in place"):
        check_linear_regression_step(wrong)


def test_step_rejects_a_single_return_value():
    with pytest.raises(CheckFailure, match="expected a tuple"):
        check_linear_regression_step(lambda w, b, x, y, lr: w)


def test_failure_message_names_the_seed_so_it_can_be_replayed():
    with pytest.raises(CheckFailure, match="seed=7"):
        check_standardize(lambda x: x, seed=7)


def test_seed_must_be_an_int():
    with pytest.raises(TypeError, match="seed must be an int"):
        check_standardize(standardize, seed="0")
