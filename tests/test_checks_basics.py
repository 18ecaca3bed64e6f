"""The checkers of notebooks 00 and 01 pass correct code and fail stubs and the mistakes students really make.

Every checker gets at least five plausible wrong answers (``WRONG`` below), each with the words its failure
message must contain, so that a message names the mistake. Exercises 1–4 of notebook 01 forbid library calls
(``F.gelu``, ``torch.log_softmax``/``logsumexp``/softmax, ``F.cross_entropy``/``nll_loss``, autograd): those
are caught in the code before it runs and, under any alias, while it runs.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn.functional import gelu as smooth_relu  # an alias a student might import at the top of a notebook

from bigtut.checks import CheckFailure
from bigtut.checks.basics import (
    check_count_parameters,
    check_cross_entropy,
    check_gelu,
    check_linear_regression_step,
    check_log_softmax,
    check_standardize,
)
from bigtut.checks.forbidden import Forbidden, record_forbidden_calls, scan_for_forbidden_names

NOTEBOOKS = Path(__file__).parent.parent / "notebooks"

# ---------------------------------------------------------------- the notebooks' solutions, copied from the cells


def standardize(x: torch.Tensor) -> torch.Tensor:
    mean = x.mean(dim=0)  # (d,)
    std = x.std(dim=0, correction=0)  # (d,) population standard deviation
    return (x - mean) / std  # (n, d) - (d,) broadcasts over the rows


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def gelu(x: torch.Tensor, approximate: str = "none") -> torch.Tensor:
    if approximate == "tanh":
        return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    return 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))


def log_softmax(logits: torch.Tensor) -> torch.Tensor:
    m = logits.max(dim=-1, keepdim=True).values  # (..., 1)
    shifted = logits - m  # (..., C) every entry <= 0
    return shifted - torch.log(torch.exp(shifted).sum(dim=-1, keepdim=True))  # (..., C)


def cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    log_probs = logits - torch.logsumexp(logits, dim=1, keepdim=True)  # (N, C)
    return -log_probs.gather(1, targets[:, None]).squeeze(1).mean()  # (N, 1) -> (N,) -> ()


def linear_regression_step(w: torch.Tensor, b: torch.Tensor, x: torch.Tensor, y: torch.Tensor, lr: float):
    residual = x @ w + b - y  # (N,)
    grad_w = 2 * x.T @ residual / len(y)  # (D, N) @ (N,) -> (D,)
    grad_b = 2 * residual.mean()  # ()
    return w - lr * grad_w, b - lr * grad_b


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

# The exact lines the notebooks show (compared by nbval): they must not change.
PASS_LINES = {
    check_standardize: "PASS standardize: matches the reference on 4 random cases\n",
    check_count_parameters: "PASS count_parameters: matches the reference on 5 random models\n",
    check_gelu: "PASS gelu: matches the reference on 6 random cases\n",
    check_log_softmax: "PASS log_softmax: matches the reference on 4 random cases\n",
    check_cross_entropy: "PASS cross_entropy: matches the reference on 4 random cases\n",
    check_linear_regression_step: "PASS linear_regression_step: matches autograd's gradient step on 4 random cases\n",
}


@pytest.mark.parametrize("seed", [0, 1, 2, None])
@pytest.mark.parametrize(("checker", "solution"), CORRECT, ids=IDS)
def test_the_notebook_solution_passes_with_the_same_line(checker, solution, seed, capsys):
    checker(solution) if seed is None else checker(solution, seed=seed)
    assert capsys.readouterr().out == PASS_LINES[checker]


def test_the_pass_lines_are_the_ones_the_notebooks_show():
    shown = set()
    for path in (NOTEBOOKS / "00_setup.ipynb", NOTEBOOKS / "01_deep_learning_basics.ipynb"):
        for cell in json.loads(path.read_text())["cells"]:
            for output in cell.get("outputs", []):
                shown.update(line for line in output.get("text", []) if line.startswith("PASS "))
    assert set(PASS_LINES.values()) <= shown


def test_the_failure_shown_in_notebook_00_is_unchanged():
    """Notebook 00 demonstrates a failure (the sample std, seed=0); its message stays as printed there."""
    cells = json.loads((NOTEBOOKS / "00_setup.ipynb").read_text())["cells"]
    shown = [o["evalue"] for c in cells for o in c.get("outputs", []) if o.get("ename") == "CheckFailure"]
    assert shown, "notebook 00 should show one CheckFailure"
    with pytest.raises(CheckFailure) as failure:
        check_standardize(lambda x: (x - x.mean(dim=0)) / x.std(dim=0), seed=0)
    assert str(failure.value) == shown[0]


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


# ---------------------------------------------------------------- other correct answers must pass too


def logsumexp(z, dim):  # a student's own helper, named like the library function it replaces
    m = z.max(dim=dim, keepdim=True).values
    return m + torch.log(torch.exp(z - m).sum(dim=dim, keepdim=True))


def log_softmax_with_own_helper(z):
    return z - logsumexp(z, -1)


def gelu_with_ndtr(x, approximate="none"):
    if approximate == "tanh":
        u = math.sqrt(2 / math.pi) * (x + 0.044715 * x * x * x)
        return x * torch.sigmoid(2 * u)  # x/2 (1 + tanh u) = x sigmoid(2u)
    return x * torch.special.ndtr(x)


def cross_entropy_with_own_log_softmax(logits, targets):
    return -log_softmax(logits)[torch.arange(len(targets)), targets].mean()


def cross_entropy_with_f_log_softmax(logits, targets):  # only F.cross_entropy / F.nll_loss are off limits
    return -(F.log_softmax(logits, dim=1) * F.one_hot(targets, logits.shape[1])).sum(dim=1).mean()


def step_returning_a_list_under_no_grad(w, b, x, y, lr):
    with torch.no_grad():
        r = x @ w + b - y
        return [w - lr * 2 * (x * r[:, None]).mean(dim=0), b - lr * 2 * r.mean()]


ALSO_CORRECT = [
    (check_standardize, lambda x: (x - x.mean(0, keepdim=True)) / ((x - x.mean(0)) ** 2).mean(0).sqrt()),
    (check_count_parameters, lambda m: np.int64(sum(math.prod(p.shape) for p in m.parameters() if p.requires_grad))),
    (check_count_parameters, lambda m: torch.tensor(count_parameters(m))),
    (check_gelu, gelu_with_ndtr),
    (check_log_softmax, log_softmax_with_own_helper),
    (check_cross_entropy, cross_entropy_with_own_log_softmax),
    (check_cross_entropy, cross_entropy_with_f_log_softmax),
    (check_linear_regression_step, step_returning_a_list_under_no_grad),
]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(("checker", "solution"), ALSO_CORRECT,
                         ids=[f"{c.__name__}-{i}" for i, (c, _) in enumerate(ALSO_CORRECT)])
def test_other_correct_answers_pass(checker, solution, seed, capsys):
    checker(solution, seed=seed)
    assert capsys.readouterr().out == PASS_LINES[checker]


# ---------------------------------------------------------------- plausible mistakes each checker must catch
#
# (checker, id, wrong answer, regex the failure message must match). The ids name the mistake.

OFF_LIMITS = "but this exercise rules out"


def _standardize_in_place(x):
    x -= x.mean(dim=0)
    x /= x.std(dim=0, correction=0)
    return x


WRONG_STANDARDIZE = [
    ("sample std (n - 1)", lambda x: (x - x.mean(0)) / x.std(0), r"values differ for x of shape \(5, 3\)"),
    ("statistics of the rows", lambda x: (x - x.mean(1, keepdim=True)) / x.std(1, correction=0, keepdim=True),
     "values differ"),
    ("one mean and std for the whole table", lambda x: (x - x.mean()) / x.std(correction=0), "values differ"),
    ("mean not subtracted", lambda x: x / x.std(0, correction=0), "values differ"),
    ("std not divided", lambda x: x - x.mean(0), "values differ"),
    ("divided by the variance", lambda x: (x - x.mean(0)) / x.var(0, correction=0), "values differ"),
    ("an epsilon in the denominator", lambda x: (x - x.mean(0)) / (x.std(0, correction=0) + 1e-5), "values differ"),
    ("row mean without keepdim", lambda x: (x - x.mean(1)) / x.std(0, correction=0), "raised RuntimeError"),
    ("modifies x in place", _standardize_in_place, "input x was modified in place"),
    ("computes in float32", lambda x: standardize(x.float()), "expected dtype torch.float64.*got torch.float32"),
    ("returns a NumPy array", lambda x: standardize(x).numpy(), "expected a torch.Tensor.*got ndarray"),
]


def _count_tied_twice(model):
    return sum(p.numel() for _, p in model.named_parameters(remove_duplicate=False) if p.requires_grad)


def _count_only_linear_layers(model):
    return sum(sum(p.numel() for p in m.parameters()) for m in model.modules() if isinstance(m, nn.Linear))


def _count_after_unfreezing(model):
    model.requires_grad_(True)
    return count_parameters(model)


WRONG_COUNT = [
    ("counts frozen parameters", lambda m: sum(p.numel() for p in m.parameters()), "frozen"),
    ("counts tied weights twice", _count_tied_twice, "tied"),
    ("number of tensors, not of numbers", lambda m: len([p for p in m.parameters() if p.requires_grad]),
     "trainable parameters"),
    ("adds the buffers", lambda m: count_parameters(m) + sum(b.numel() for b in m.buffers()), "buffers"),
    ("state_dict instead of parameters", lambda m: sum(v.numel() for v in m.state_dict().values()), "buffers"),
    ("weights only, no biases",
     lambda m: sum(p.numel() for n, p in m.named_parameters() if "weight" in n and p.requires_grad),
     r"nn\.Linear\(\d+, \d+\) \(seed"),
    ("only nn.Linear layers", _count_only_linear_layers, "BatchNorm"),
    ("modules() and parameters(): nested layers counted twice",
     lambda m: sum(p.numel() for mod in m.modules() for p in mod.parameters() if p.requires_grad), "Sequential"),
    ("children only (misses the model's own parameters)",
     lambda m: sum(p.numel() for c in m.children() for p in c.parameters() if p.requires_grad),
     r"expected \d+ trainable parameters, got 0"),
    ("first dimension instead of numel", lambda m: sum(p.shape[0] for p in m.parameters() if p.requires_grad),
     "trainable parameters"),
    ("rows times columns (fails on a bias)", lambda m: sum(p.size(0) * p.size(1) for p in m.parameters()),
     "raised IndexError"),
    ("parameters with a gradient", lambda m: sum(p.numel() for p in m.parameters() if p.grad is not None),
     "got 0"),
    ("a fraction", lambda m: count_parameters(m) + 0.5, "whole number"),
    ("unfreezes the model to count it", _count_after_unfreezing, "changed the model"),
]


GELU_LAYER = nn.GELU()


def _gelu_no_cube(x, approximate="none"):
    if approximate == "tanh":
        return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * x))
    return gelu(x)


def _gelu_truthy_flag(x, approximate="none"):
    return gelu(x, "tanh" if approximate else "none")  # "none" is a non-empty string: always tanh


def _gelu_tanh_via_exp(x, approximate="none"):
    if approximate == "tanh":
        u = 2 * math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)
        return 0.5 * x * (1 + (torch.exp(u) - 1) / (torch.exp(u) + 1))  # inf / inf = nan for large x
    return gelu(x)


def _gelu_in_place(x, approximate="none"):
    return x.mul_(0.5 * (1 + torch.erf(x / math.sqrt(2)))) if approximate == "none" else gelu(x, approximate)


def _gelu_through_getattr(x, approximate="none"):
    return getattr(F, "ge" + "lu")(x, approximate=approximate)  # invisible in the code, seen when it runs


def _gelu_calls_and_catches(x, approximate="none"):
    try:
        F.gelu(x, approximate="bogus")  # raises; the call is still noted
    except RuntimeError:
        pass
    return gelu(x, approximate)


WRONG_GELU = [
    ("tanh approximation for the exact GELU", lambda x, approximate="none": gelu(x, approximate="tanh"),
     "approximate='none'"),
    ("no cube term in the tanh form", _gelu_no_cube, "approximate='tanh'"),
    ("sigmoid approximation x σ(1.702 x)", lambda x, approximate="none": x * torch.sigmoid(1.702 * x),
     "values differ"),
    ("erf(x) without the 1/√2", lambda x, approximate="none": 0.5 * x * (1 + torch.erf(x)), "values differ"),
    ("missing the factor 1/2", lambda x, approximate="none": x * (1 + torch.erf(x / math.sqrt(2))),
     "values differ"),
    ("√2 rounded to 1.414", lambda x, approximate="none": 0.5 * x * (1 + torch.erf(x / 1.414)), "values differ"),
    ("ignores approximate", lambda x, approximate="none": gelu(x), "approximate='tanh'"),
    ("tests `if approximate:`", _gelu_truthy_flag, "approximate='none'"),
    ("tanh written with exp overflows", _gelu_tanh_via_exp, "extreme x"),
    ("multiplies x in place", _gelu_in_place, "input x was modified in place"),
    ("F.gelu", lambda x, approximate="none": F.gelu(x, approximate=approximate), OFF_LIMITS),
    ("torch.nn.functional.gelu", lambda x, approximate="none": torch.nn.functional.gelu(x, approximate=approximate),
     "`torch.nn.functional.gelu`"),
    ("nn.GELU", lambda x, approximate="none": nn.GELU(approximate=approximate)(x), "`nn.GELU`"),
    ("F.gelu imported under another name", lambda x, approximate="none": smooth_relu(x, approximate=approximate),
     r"`torch\.nn\.functional\.gelu` \(as `smooth_relu`\)"),
    ("a module-level nn.GELU() layer", lambda x, approximate="none": GELU_LAYER(x), r"`nn\.GELU` \(as `GELU_LAYER`\)"),
    ("torch.ops.aten.gelu", lambda x, approximate="none": torch.ops.aten.gelu(x, approximate=approximate),
     OFF_LIMITS),
    ("F.gelu reached through getattr", _gelu_through_getattr,
     r"calls torch\.nn\.functional\.gelu \(seen while it ran on x of shape"),
    ("F.gelu called inside try/except", _gelu_calls_and_catches, OFF_LIMITS),
    ("element by element with math.erf", lambda x, approximate="none": torch.tensor(
        [v * (1 + math.erf(v / math.sqrt(2))) / 2 for v in x.flatten().tolist()]), "expected dtype torch.float64"),
]


def _log_softmax_naive(z):
    return torch.log(torch.exp(z) / torch.exp(z).sum(dim=-1, keepdim=True))


def _log_of_stable_softmax(z):
    e = torch.exp(z - z.max(dim=-1, keepdim=True).values)
    return torch.log(e / e.sum(dim=-1, keepdim=True))  # log(0) = -inf where the answer is -2000


def _log_softmax_global_max(z):
    return z - z.max() - torch.log(torch.exp(z - z.max()).sum(dim=-1, keepdim=True))


def _log_softmax_forgets_m(z):
    m = z.max(dim=-1, keepdim=True).values
    return z - torch.log(torch.exp(z - m).sum(dim=-1, keepdim=True))


def _log_softmax_no_keepdim(z):
    m = z.max(dim=-1).values
    return z - m - torch.log(torch.exp(z - m).sum(dim=-1))


def _log_softmax_dim_one(z):
    m = z.max(dim=1, keepdim=True).values
    return z - m - torch.log(torch.exp(z - m).sum(dim=1, keepdim=True))


def _log_softmax_wrong_axis(z):
    m = z.max(dim=0, keepdim=True).values
    return z - m - torch.log(torch.exp(z - m).sum(dim=0, keepdim=True))


def _log_softmax_in_place(logits):
    logits -= logits.max(dim=-1, keepdim=True).values
    return logits - torch.log(torch.exp(logits).sum(dim=-1, keepdim=True))


def _log_softmax_through_getattr(z):
    return getattr(torch, "log_" + "softmax")(z, dim=-1)


WRONG_LOG_SOFTMAX = [
    ("naive log(exp / sum exp)", _log_softmax_naive, "values differ for extreme logits"),
    ("log of a hand-written stable softmax", _log_of_stable_softmax, "values differ for extreme logits"),
    ("maximum of the whole tensor, not of each row", _log_softmax_global_max, "values differ for extreme logits"),
    ("subtracts m but never adds it back", _log_softmax_forgets_m, "values differ"),
    ("max and sum without keepdim", _log_softmax_no_keepdim, "raised RuntimeError"),
    ("dim=1 instead of the last axis", _log_softmax_dim_one, "raised IndexError"),
    ("over the first axis", _log_softmax_wrong_axis, "values differ"),
    ("returns the softmax", lambda z: torch.exp(log_softmax(z)), "values differ"),
    ("sums over every element", lambda z: z - z.max() - torch.log(torch.exp(z - z.max()).sum()), "values differ"),
    ("subtracts the maximum in place", _log_softmax_in_place, "input logits was modified in place"),
    ("torch.log_softmax", lambda z: torch.log_softmax(z, dim=-1), "`torch.log_softmax`"),
    ("F.log_softmax", lambda z: F.log_softmax(z, dim=-1), OFF_LIMITS),
    ("the tensor method", lambda z: z.log_softmax(-1), r"`z\.log_softmax`"),
    ("torch.logsumexp", lambda z: z - torch.logsumexp(z, dim=-1, keepdim=True), "`torch.logsumexp`"),
    ("torch.special.log_softmax", lambda z: torch.special.log_softmax(z, dim=-1), OFF_LIMITS),
    ("log of F.softmax", lambda z: torch.log(F.softmax(z, dim=-1)), "`F.softmax`"),
    ("nn.LogSoftmax", lambda z: nn.LogSoftmax(dim=-1)(z), OFF_LIMITS),
    ("torch.distributions", lambda z: torch.distributions.Categorical(logits=z, validate_args=False).logits,
     r"calls Tensor\.logsumexp \(seen while it ran"),
    ("torch.log_softmax through getattr", _log_softmax_through_getattr,
     r"calls torch\.log_softmax \(seen while it ran"),
]


def _ce_logits_indexing(logits, targets):
    return -log_softmax(logits)[:, targets].mean()  # (N, N): every target for every row


def _ce_mean_over_classes_too(logits, targets):
    return -(log_softmax(logits) * F.one_hot(targets, logits.shape[1])).mean()  # divides by N C


def _ce_unsqueezes_targets_in_place(logits, targets):
    targets.unsqueeze_(1)
    return -log_softmax(logits).gather(1, targets).mean()


WRONG_CROSS_ENTROPY = [
    ("sum over the batch", lambda z, t: -log_softmax(z).gather(1, t[:, None]).sum(), "values differ"),
    ("per-example losses, not their mean", lambda z, t: -log_softmax(z).gather(1, t[:, None]).squeeze(1),
     "wrong shape"),
    ("naive softmax", lambda z, t: -torch.log(torch.softmax(z, -1).gather(1, t[:, None])).mean(),
     "values differ for extreme logits"),
    ("naive softmax by hand", lambda z, t: -torch.log((z.exp() / z.exp().sum(1, keepdim=True)).gather(
        1, t[:, None])).mean(), "values differ for extreme logits"),
    ("no minus sign", lambda z, t: log_softmax(z).gather(1, t[:, None]).mean(), "values differ"),
    ("raw logits, no log-softmax", lambda z, t: -z.gather(1, t[:, None]).mean(), "values differ"),
    ("indexes columns with the targets", _ce_logits_indexing, "values differ"),
    ("mean over the classes too", _ce_mean_over_classes_too, "values differ"),
    ("log-softmax over the batch axis", lambda z, t: -(z - torch.logsumexp(z, 0)).gather(1, t[:, None]).mean(),
     "values differ"),
    ("F.cross_entropy", lambda z, t: F.cross_entropy(z, t), "`F.cross_entropy`"),
    ("F.nll_loss", lambda z, t: F.nll_loss(log_softmax(z), t), "`F.nll_loss`"),
    ("nn.CrossEntropyLoss", lambda z, t: nn.CrossEntropyLoss()(z, t), OFF_LIMITS),
    ("returns a Python float", lambda z, t: cross_entropy(z, t).item(), "expected a torch.Tensor.*got float"),
    ("detaches the loss", lambda z, t: cross_entropy(z, t).detach(), "no gradient flows"),
    ("rebuilds the loss from .item()", lambda z, t: torch.tensor(cross_entropy(z, t).item(), dtype=z.dtype),
     "no gradient flows"),
    ("computes in float32", lambda z, t: cross_entropy(z.float(), t), "expected dtype torch.float64"),
    ("unsqueezes the targets in place", _ce_unsqueezes_targets_in_place, "input targets was modified in place"),
]


def _step_without_two(w, b, x, y, lr):
    r = x @ w + b - y
    return w - lr * x.T @ r / len(y), b - lr * r.mean()


def _step_uphill(w, b, x, y, lr):
    r = x @ w + b - y
    return w + lr * 2 * x.T @ r / len(y), b + lr * 2 * r.mean()


def _step_forgets_bias(w, b, x, y, lr):
    r = x @ w + b - y
    return w - lr * 2 * x.T @ r / len(y), b


def _step_in_place(w, b, x, y, lr):
    r = x @ w + b - y
    w -= lr * 2 * x.T @ r / len(y)
    return w, b - lr * 2 * r.mean()


def _step_sum_not_mean(w, b, x, y, lr):
    r = x @ w + b - y
    return w - lr * 2 * x.T @ r, b - lr * 2 * r.sum()


def _step_divides_by_features(w, b, x, y, lr):
    r = x @ w + b - y
    return w - lr * 2 * x.T @ r / x.shape[1], b - lr * 2 * r.mean()


def _step_without_transpose(w, b, x, y, lr):
    r = x @ w + b - y
    return w - lr * 2 * x @ r / len(y), b - lr * 2 * r.mean()


def _step_residual_without_bias(w, b, x, y, lr):
    r = x @ w - y
    return w - lr * 2 * x.T @ r / len(y), b - lr * 2 * r.mean()


def _step_bias_from_new_w(w, b, x, y, lr):
    w_new = w - lr * 2 * x.T @ (x @ w + b - y) / len(y)
    return w_new, b - lr * 2 * (x @ w_new + b - y).mean()


def _step_with_backward(w, b, x, y, lr):
    w, b = w.clone().requires_grad_(), b.clone().requires_grad_()
    ((x @ w + b - y) ** 2).mean().backward()
    return (w - lr * w.grad).detach(), (b - lr * b.grad).detach()


def _step_with_autograd_grad(w, b, x, y, lr):
    w2, b2 = w.detach().requires_grad_(True), b.detach().requires_grad_(True)
    gw, gb = torch.autograd.grad(((x @ w2 + b2 - y) ** 2).mean(), (w2, b2))
    return w - lr * gw, b - lr * gb


def _step_with_torch_func(w, b, x, y, lr):
    gw, gb = torch.func.grad(lambda v, c: ((x @ v + c - y) ** 2).mean(), argnums=(0, 1))(w, b)
    return w - lr * gw, b - lr * gb


def _step_bias_keeps_a_dimension(w, b, x, y, lr):
    r = x @ w + b - y
    return w - lr * 2 * x.T @ r / len(y), b - lr * 2 * r.mean(0, keepdim=True)


WRONG_STEP = [
    ("gradient without the factor 2", _step_without_two, r"\(w_new\)"),
    ("climbs the gradient", _step_uphill, "values differ"),
    ("forgets the bias", _step_forgets_bias, r"\(b_new\)"),
    ("updates w in place", _step_in_place, "input w was modified in place"),
    ("sum instead of mean", _step_sum_not_mean, "values differ"),
    ("divides by D instead of N", _step_divides_by_features, "values differ"),
    ("x @ r instead of x.T @ r", _step_without_transpose, "raised RuntimeError"),
    ("residual without the bias", _step_residual_without_bias, "values differ"),
    ("bias gradient taken at the new w", _step_bias_from_new_w, r"\(b_new\)"),
    ("only w returned", lambda w, b, x, y, lr: linear_regression_step(w, b, x, y, lr)[0], "expected a tuple"),
    ("returned as (b_new, w_new)", lambda *a: linear_regression_step(*a)[::-1], "wrong shape"),
    ("b_new of shape (1,)", _step_bias_keeps_a_dimension, r"\(b_new\): wrong shape"),
    ("b_new as a Python float", lambda *a: (linear_regression_step(*a)[0], linear_regression_step(*a)[1].item()),
     "expected a torch.Tensor"),
    ("computes in float32", lambda w, b, x, y, lr: linear_regression_step(w.float(), b.float(), x.float(),
                                                                            y.float(), lr), "dtype"),
    ("loss.backward()", _step_with_backward, r"`\.requires_grad_`.*rules out autograd"),
    ("torch.autograd.grad", _step_with_autograd_grad, OFF_LIMITS),
    ("torch.func.grad", _step_with_torch_func, OFF_LIMITS),
]

WRONG = (
    [(check_standardize, *case) for case in WRONG_STANDARDIZE]
    + [(check_count_parameters, *case) for case in WRONG_COUNT]
    + [(check_gelu, *case) for case in WRONG_GELU]
    + [(check_log_softmax, *case) for case in WRONG_LOG_SOFTMAX]
    + [(check_cross_entropy, *case) for case in WRONG_CROSS_ENTROPY]
    + [(check_linear_regression_step, *case) for case in WRONG_STEP]
)


@pytest.mark.parametrize("seed", [0, 1, None])
@pytest.mark.parametrize(("checker", "mistake", "wrong", "message"), WRONG,
                         ids=[f"{c.__name__.removeprefix('check_')}: {m}" for c, m, _, _ in WRONG])
def test_checker_catches_the_mistake_and_names_it(checker, mistake, wrong, message, seed):
    with pytest.raises(CheckFailure, match=message):
        checker(wrong) if seed is None else checker(wrong, seed=seed)


@pytest.mark.parametrize("checker", IDS)
def test_every_checker_has_at_least_five_wrong_answers(checker):
    assert sum(c.__name__ == checker for c, *_ in WRONG) >= 5


# ---------------------------------------------------------------- forbidden calls: how they are found


def _exec_candidate(source: str, name: str):
    """Define a function the way tests/test_exercises.py runs a cell: with exec, so no source file exists."""
    namespace = {"__name__": "__exercise__"}
    exec(compile(source, "<exercise>", "exec"), namespace)
    return namespace[name]


def test_forbidden_calls_are_found_without_the_source():
    wrong = _exec_candidate("import torch\n\ndef log_softmax(z):\n    return torch.log_softmax(z, dim=-1)\n",
                            "log_softmax")
    with pytest.raises(CheckFailure, match="calls `torch.log_softmax`, but this exercise rules out"):
        check_log_softmax(wrong)


def test_forbidden_calls_in_a_helper_of_the_same_cell_are_found():
    wrong = _exec_candidate(
        "import torch.nn.functional as F\n\ndef phi(x):\n    return F.gelu(x) / x\n\n"
        "def gelu(x, approximate='none'):\n    return x * phi(x)\n", "gelu")
    with pytest.raises(CheckFailure, match="`F.gelu`"):
        check_gelu(wrong)


def test_the_offending_line_is_quoted_where_the_source_is_available():
    found = scan_for_forbidden_names(lambda z: F.log_softmax(z, -1), Forbidden(frozenset({"log_softmax"}), "", ""))
    assert found == "`F.log_softmax` in the line `found = scan_for_forbidden_names(lambda z: F.log_softmax(z, -1), " \
        "Forbidden(frozenset({\"log_softmax\"}), \"\", \"\"))`"


def test_the_scan_passes_correct_code_and_what_it_cannot_read():
    ban = Forbidden(frozenset({"log_softmax", "logsumexp", "softmax", "gelu", "GELU"}), "", "")
    for solution in (log_softmax, log_softmax_with_own_helper, gelu, gelu_with_ndtr, standardize):
        assert scan_for_forbidden_names(solution, ban) is None
    assert scan_for_forbidden_names(torch.log_softmax, ban) is None  # a builtin: no bytecode to read


def test_the_recorder_notes_calls_under_any_name_and_leaves_no_mode_behind():
    ban = Forbidden(frozenset({"gelu"}), "", "")
    x = torch.randn(3)
    with record_forbidden_calls(ban) as seen:
        nn.GELU()(x)
        torch.ops.aten.gelu(x)
        torch.erf(x)
    assert seen[:2] == ["torch.nn.functional.gelu", "torch.ops.aten.gelu"] and "erf" not in " ".join(seen)
    with pytest.raises(ValueError, match="raised inside"), record_forbidden_calls(ban):
        raise ValueError("raised inside")
    with record_forbidden_calls(Forbidden(frozenset({"erf"}), "", "")) as seen:
        pass
    F.gelu(x)  # outside any recorder: nothing is noted, nothing raises
    assert seen == []
    assert not torch.overrides._get_current_function_mode_stack()


def test_autograd_is_noted_when_a_tensor_requires_grad():
    with record_forbidden_calls(Forbidden(frozenset(), "", "", autograd=True)) as seen:
        w = torch.zeros(2)
        w.requires_grad = True  # a property: seen once a computation uses it
        (w * 2).sum()
    assert seen and "autograd" in seen[0]


def test_a_helper_written_by_hand_in_the_notebook_is_not_mistaken_for_the_library():
    """Notebook 01 § 4 defines its own `logsumexp`; a solution built on it is allowed."""
    solution = _exec_candidate(
        "import torch\n\ndef logsumexp(z):\n    m = z.max(dim=-1, keepdim=True).values\n"
        "    return m.squeeze(-1) + torch.log(torch.exp(z - m).sum(dim=-1))\n\n"
        "def log_softmax(logits):\n    return logits - logsumexp(logits)[..., None]\n", "log_softmax")
    for seed in (0, 1, 2):
        check_log_softmax(solution, seed=seed)


def test_scipy_is_off_limits_too():
    special = pytest.importorskip("scipy.special")
    ns = {"__name__": "__exercise__", "torch": torch, "softmax_rows": special.log_softmax}
    exec("def by_alias(z):\n    return torch.from_numpy(softmax_rows(z.numpy(), axis=-1))\n", ns)
    with pytest.raises(CheckFailure, match=r"`scipy\.special.*log_softmax` \(as `softmax_rows`\)"):
        check_log_softmax(ns["by_alias"])
    with pytest.raises(CheckFailure, match=r"`special\.logsumexp`"):
        check_log_softmax(lambda z: z - torch.from_numpy(special.logsumexp(z.numpy(), axis=-1, keepdims=True)))
