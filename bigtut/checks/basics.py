"""Checkers for notebooks 00 (set-up & tour) and 01 (deep-learning basics).

=================================  ==========================================================  ========
checker                            what the candidate must do                                  notebook
=================================  ==========================================================  ========
``check_standardize``              ``(x - mean) / std`` per column, population std             00
``check_count_parameters``         number of trainable parameters of a model                   00
``check_gelu``                     GELU, exact (erf) and tanh approximation                    01
``check_log_softmax``              numerically stable log-softmax over the last axis           01
``check_cross_entropy``            mean negative log-likelihood of integer targets             01
``check_linear_regression_step``   one gradient-descent step on mean-squared error, by hand    01
=================================  ==========================================================  ========

The references are PyTorch's own functions (``torch.nn.functional``) and, for the gradient step, autograd.
Inputs are drawn from a private ``torch.Generator``, so a checker never disturbs the notebook's random
state. Every checker takes an optional ``seed``; without one it draws fresh inputs each call, and the seed
used is named in any failure message so the case can be replayed.

Beyond the values, the checkers reject what students often get wrong while the numbers still come out
right: modifying an input in place, returning another dtype or a non-tensor, a loss that no gradient flows
through, and calling the very library function an exercise asks them to write (``F.gelu``,
``torch.log_softmax``, ``F.cross_entropy``, autograd in the hand-derived step). Forbidden calls are found
twice, by :mod:`bigtut.checks.forbidden`: in the candidate's code before it runs
(:func:`~bigtut.checks.forbidden.scan_for_forbidden_names`, which reads the bytecode, so it works without the
source and sees through ``from torch.nn.functional import gelu as g``), and while it runs
(:func:`~bigtut.checks.forbidden.record_forbidden_calls`, which sees every call that reaches PyTorch, however
it is spelled).
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from bigtut.checks.core import (
    CheckFailure,
    _describe,
    assert_close,
    checker_generator,
    guarded,
    passed,
    random_float64,
)
from bigtut.checks.forbidden import Forbidden, record_forbidden_calls, scan_for_forbidden_names

__all__ = [
    "check_count_parameters", "check_cross_entropy", "check_gelu", "check_linear_regression_step",
    "check_log_softmax", "check_standardize",
]


# --------------------------------------------------------------------------------------------------------
# Forbidden library calls (found by bigtut.checks.forbidden): the failure message
# --------------------------------------------------------------------------------------------------------


def _forbidden_failure(name: str, forbidden: Forbidden, found: str, where: str) -> CheckFailure:
    return CheckFailure(
        f"{name}: your function calls {found}{where}, but this exercise rules out {forbidden.what}: {forbidden.hint}"
    )


def _reject_forbidden_code(candidate: Callable, forbidden: Forbidden | None, name: str) -> None:
    if forbidden is not None and (found := scan_for_forbidden_names(candidate, forbidden)):
        raise _forbidden_failure(name, forbidden, found, "")


# --------------------------------------------------------------------------------------------------------
# Calling the candidate: errors, forbidden calls, inputs modified in place, the kind of value returned
# --------------------------------------------------------------------------------------------------------


def _call_watched(candidate: Callable, args: tuple, kwargs: dict, *, name: str, description: str,
                  arg_names: tuple[str, ...], forbidden: Forbidden | None, in_place_hint: str) -> Any:
    """``candidate(*args, **kwargs)``, failing (with ``description``) if it raises, calls a forbidden function,
    modifies a tensor argument in place or switches on its ``requires_grad``."""
    before = [(a.detach().clone(), a.requires_grad) if isinstance(a, torch.Tensor) else None for a in args]
    with record_forbidden_calls(forbidden) if forbidden is not None else nullcontext([]) as seen:
        try:
            got = guarded(name, f"your function, called on {description},", candidate, *args, **kwargs)
        except CheckFailure:
            if not seen:
                raise
            got = None
    if seen:
        raise _forbidden_failure(name, forbidden, seen[0], f" (seen while it ran on {description})")
    for label, value, kept in zip(arg_names, args, before):
        if kept is None:
            continue
        if not torch.equal(value.detach(), kept[0]):
            raise CheckFailure(f"{name}: the input {label} was modified in place for {description}; {in_place_hint}")
        if value.requires_grad != kept[1] or value.grad is not None:
            raise CheckFailure(f"{name}: your function switched on autograd for the input {label} "
                               f"(requires_grad or .grad) for {description}; leave the inputs as they are")
    return got


def _assert_tensor_like(got: Any, expected: torch.Tensor, *, what: str, inputs: str) -> None:
    """A tensor of the reference's dtype (a Python number, a NumPy array or float32 for float64 is a mistake)."""
    if not isinstance(got, torch.Tensor):
        raise CheckFailure(f"{what}: expected a torch.Tensor like {_describe(expected)} for {inputs}, got "
                           f"{type(got).__name__} {_describe(got)}")
    if got.dtype != expected.dtype:
        raise CheckFailure(f"{what}: expected dtype {expected.dtype} (the inputs' dtype) for {inputs}, got "
                           f"{got.dtype} — compute in the input's dtype, without .float(), torch.tensor(...) "
                           f"or constants of another dtype")


_IN_PLACE_HINT = "compute a new tensor instead (`y = x - m`, not `x -= m`, `x.sub_(m)` or `x[...] = …`)"


def _compare_on_cases(candidate: Callable, reference: Callable, cases: Iterable[tuple[str, tuple, dict]], *,
                      name: str, arg_names: tuple[str, ...], forbidden: Forbidden | None = None,
                      atol: float = 1e-9, rtol: float = 1e-7) -> int:
    """Like :func:`bigtut.checks.core.check_function`, stricter: forbidden calls, inputs changed in place,
    errors and the returned type and dtype are reported with the input. Returns the number of cases."""
    if not callable(candidate):
        raise CheckFailure(f"{name}: expected a function, got {_describe(candidate)}")
    _reject_forbidden_code(candidate, forbidden, name)
    count = 0
    for description, args, kwargs in cases:
        expected = reference(*args, **kwargs)
        got = _call_watched(candidate, args, kwargs, name=name, description=description, arg_names=arg_names,
                            forbidden=forbidden, in_place_hint=_IN_PLACE_HINT)
        _assert_tensor_like(got, expected, what=name, inputs=description)
        assert_close(got, expected, what=name, inputs=description, atol=atol, rtol=rtol)
        count += 1
    return count


# --------------------------------------------------------------------------------------------------------
# 00: the example exercise
# --------------------------------------------------------------------------------------------------------


def _standardize_reference(x: torch.Tensor) -> torch.Tensor:
    return (x - x.mean(dim=0)) / x.std(dim=0, correction=0)  # (n, d)


def check_standardize(candidate: Callable[[torch.Tensor], torch.Tensor], seed: int | None = None) -> None:
    """``candidate(x)`` with ``x`` of shape ``(n, d)`` must return ``(x - mean) / std`` column by column.

    The mean and the standard deviation are taken over the rows (``dim=0``); the standard deviation is the
    population one (divide by ``n``, ``correction=0``), as in ``bigtut.data``. ``x`` must be left unchanged
    and the result keep its dtype. Catches the sample std (``n - 1``), row statistics, a global mean or std,
    a missing step, an epsilon or a rounded result, and ``x -= …`` in place.
    """
    gen, seed = checker_generator(seed)
    cases = [
        (f"x of shape (5, 3) (seed={seed})", (random_float64(gen, 5, 3),), {}),
        (f"x of shape (40, 4), mean 10, std 3 (seed={seed})", (10 + random_float64(gen, 40, 4, scale=3.0),), {}),
        (f"x of shape (2, 1) (seed={seed})", (torch.tensor([[1.0], [3.0]], dtype=torch.float64),), {}),
        (f"x of shape (200, 6), columns on very different scales (seed={seed})",
         (random_float64(gen, 200, 6) * torch.logspace(-3, 3, 6, dtype=torch.float64),), {}),
    ]
    count = _compare_on_cases(candidate, _standardize_reference, cases, name="standardize", arg_names=("x",))
    passed("standardize", f"matches the reference on {count} random cases")


class _TiedLanguageModel(nn.Module):
    """Embedding and output layer sharing one weight matrix (as GPT-2 does): one tensor, counted once.

    Also a learned scalar ``scale`` held by the model itself (a 0-dimensional parameter, not in a child).
    """

    def __init__(self, vocab: int, width: int):
        super().__init__()
        self.embed = nn.Embedding(vocab, width)  # weight (vocab, width)
        self.norm = nn.LayerNorm(width)
        self.out = nn.Linear(width, vocab, bias=False)
        self.out.weight = self.embed.weight  # tied: the same Parameter object
        self.scale = nn.Parameter(torch.ones(()))  # () a parameter of the root module, 0-dimensional

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.out(self.scale * self.norm(self.embed(ids)))  # (B, L) -> (B, L, vocab)


def _count_parameters_reference(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)  # parameters() skips repeats


def _model_state(model: nn.Module) -> list[tuple[str, int, bool, int]]:
    return [(n, id(p), p.requires_grad, p.numel()) for n, p in model.named_parameters(remove_duplicate=False)]


def check_count_parameters(candidate: Callable[[nn.Module], int], seed: int | None = None) -> None:
    """``candidate(model)`` must return the number of **trainable** parameters of ``model`` (an int).

    Trainable means ``requires_grad=True``; a tensor shared by two layers (tied weights) counts once; buffers
    (a BatchNorm's running statistics) are not parameters; a parameter can sit on the model itself and be
    0-dimensional. The model must be left unchanged.
    """
    gen, seed = checker_generator(seed)

    def size(low: int, high: int) -> int:
        return int(torch.randint(low, high, (), generator=gen))

    a, b, c, n_embed = size(2, 50), size(2, 50), size(2, 20), size(5, 40)
    vocab, width = size(10, 60), size(4, 32)
    with torch.random.fork_rng(devices=[]):  # initialising layers draws random numbers: keep the caller's
        torch.manual_seed(seed)
        frozen = nn.Sequential(nn.Embedding(n_embed, a), nn.Linear(a, b))
        frozen[0].weight.requires_grad_(False)
        cases = [
            (f"nn.Linear({a}, {b}) (seed={seed})", (nn.Linear(a, b),), {}),
            (f"nn.Linear({a}, {b}, bias=False) (seed={seed})", (nn.Linear(a, b, bias=False),), {}),
            (f"nn.Sequential(nn.Linear({a}, {b}), nn.BatchNorm1d({b}), nn.GELU(), nn.Linear({b}, {c})) — the "
             f"BatchNorm's running mean and variance are buffers, not parameters (seed={seed})",
             (nn.Sequential(nn.Linear(a, b), nn.BatchNorm1d(b), nn.GELU(), nn.Linear(b, c)),), {}),
            (f"nn.Embedding({n_embed}, {a}) frozen with requires_grad_(False), then nn.Linear({a}, {b}) "
             f"(seed={seed})", (frozen,), {}),
            (f"embedding ({vocab}, {width}) tied to the output layer's weight, with a LayerNorm({width}) and a "
             f"learned scalar `scale` (a 0-dimensional parameter of the model itself) (seed={seed})",
             (_TiedLanguageModel(vocab, width),), {}),
        ]
    name = "count_parameters"
    if not callable(candidate):
        raise CheckFailure(f"{name}: expected a function, got {_describe(candidate)}")
    for description, args, _ in cases:
        model = args[0]
        state = _model_state(model)
        got = guarded(name, f"your function, called on {description},", candidate, *args)
        if _model_state(model) != state:
            raise CheckFailure(f"{name}: your function changed the model's parameters (which tensors they are or "
                               f"their requires_grad) for {description}; only read them")
        if isinstance(got, torch.Tensor) and got.numel() == 1:
            got = got.item()
        if isinstance(got, bool) or not isinstance(got, numbers.Real) or got != int(got):
            raise CheckFailure(f"{name}: expected a whole number for {description}, got {_describe(got)}")
        expected = _count_parameters_reference(model)
        if int(got) != expected:
            raise CheckFailure(f"{name}: for {description} expected {expected} trainable parameters, got {int(got)}")
    passed(name, f"matches the reference on {len(cases)} random models")


# --------------------------------------------------------------------------------------------------------
# 01: activations and losses
# --------------------------------------------------------------------------------------------------------

_GELU_FORBIDDEN = Forbidden(
    names=frozenset({"gelu", "GELU"}),
    what="torch.nn.functional.gelu and nn.GELU",
    hint="build it from torch.erf (approximate='none') and torch.tanh (approximate='tanh')",
)


def _gelu_reference(x: torch.Tensor, approximate: str = "none") -> torch.Tensor:
    return F.gelu(x, approximate=approximate)


def check_gelu(candidate: Callable[..., torch.Tensor], seed: int | None = None) -> None:
    """``candidate(x, approximate="none" | "tanh")`` must equal ``torch.nn.functional.gelu`` elementwise.

    ``"none"``: ``x Φ(x)`` with the normal CDF ``Φ(x) = (1 + erf(x / √2)) / 2``.
    ``"tanh"``: ``x/2 (1 + tanh(√(2/π) (x + 0.044715 x³)))``. Inputs include ±1000 and 0.
    The candidate may not call ``F.gelu`` or ``nn.GELU`` (under any name), must keep ``x`` unchanged and
    return ``x``'s dtype.
    """
    gen, seed = checker_generator(seed)
    extreme = torch.tensor([-1000.0, -30.0, -5.0, -1e-8, 0.0, 1e-8, 5.0, 30.0, 1000.0], dtype=torch.float64)
    cases = []
    for approximate in ("none", "tanh"):
        cases += [
            (f"x of shape (4, 7), approximate={approximate!r} (seed={seed})", (random_float64(gen, 4, 7),),
             {"approximate": approximate}),
            (f"x of shape (100,) spread over [-6, 6], approximate={approximate!r} (seed={seed})",
             (random_float64(gen, 100, scale=3.0).clamp(-6, 6),), {"approximate": approximate}),
            (f"extreme x = {extreme.tolist()}, approximate={approximate!r}", (extreme,),
             {"approximate": approximate}),
        ]
    count = _compare_on_cases(candidate, _gelu_reference, cases, name="gelu", arg_names=("x",),
                              forbidden=_GELU_FORBIDDEN)
    passed("gelu", f"matches the reference on {count} random cases")


def _extreme_logits() -> torch.Tensor:
    """Logits that overflow ``exp`` in float64 (exp(1000) = inf) and make a naive softmax return NaN."""
    return torch.tensor([[1000.0, -1000.0, 0.0], [1000.0, 1000.0, 999.0], [-1000.0, -1000.0, -1001.0]],
                        dtype=torch.float64)  # (3, 3)


_LOG_SOFTMAX_FORBIDDEN = Forbidden(
    names=frozenset({"log_softmax", "LogSoftmax", "logsumexp", "softmax", "Softmax", "softmin", "Softmin"}),
    what="torch.log_softmax, F.log_softmax, torch.logsumexp and softmax",
    hint="subtract each row's maximum m (z.max(dim=-1, keepdim=True).values), then return "
         "z - m - log(sum(exp(z - m))) with torch.exp, .sum(dim=-1, keepdim=True) and torch.log",
)


def check_log_softmax(candidate: Callable[[torch.Tensor], torch.Tensor], seed: int | None = None) -> None:
    """``candidate(logits)`` must equal ``torch.log_softmax(logits, dim=-1)`` for any number of leading axes.

    Includes logits of ±1000: ``log(softmax(z))`` computed naively gives NaN or -inf there, the
    log-sum-exp trick (subtract the row maximum first) gives the exact answer. The candidate may not call
    ``torch.log_softmax``, ``torch.logsumexp`` or a softmax (under any name), must keep ``logits`` unchanged
    and return their dtype.
    """
    gen, seed = checker_generator(seed)
    cases = [
        (f"logits of shape (4, 5) (seed={seed})", (random_float64(gen, 4, 5),), {}),
        (f"logits of shape (6,) (seed={seed})", (random_float64(gen, 6),), {}),
        (f"logits of shape (2, 3, 10), scale 20 (seed={seed})", (random_float64(gen, 2, 3, 10, scale=20.0),), {}),
        ("extreme logits [[1000, -1000, 0], [1000, 1000, 999], [-1000, -1000, -1001]]", (_extreme_logits(),), {}),
    ]
    count = _compare_on_cases(candidate, lambda z: torch.log_softmax(z, dim=-1), cases, name="log_softmax",
                              arg_names=("logits",), forbidden=_LOG_SOFTMAX_FORBIDDEN)
    passed("log_softmax", f"matches the reference on {count} random cases")


_CROSS_ENTROPY_FORBIDDEN = Forbidden(
    names=frozenset({"cross_entropy", "cross_entropy_loss", "CrossEntropyLoss", "nll_loss", "nll_loss_nd",
                     "nll_loss_forward", "nll_loss2d", "nll_loss2d_forward", "NLLLoss"}),
    what="F.cross_entropy, F.nll_loss, nn.CrossEntropyLoss and nn.NLLLoss",
    hint="take log-probabilities with the log-sum-exp trick (torch.logsumexp is allowed), pick each row's "
         "target with .gather(1, targets[:, None]), negate and average over the batch",
)


def check_cross_entropy(candidate: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                        seed: int | None = None) -> None:
    """``candidate(logits, targets)`` must equal ``torch.nn.functional.cross_entropy(logits, targets)``.

    ``logits`` has shape ``(N, C)``, ``targets`` holds ``N`` class indices (int64); the answer is the mean
    over the batch of ``-log softmax(logits)[n, targets[n]]``, a scalar tensor (shape ``()``) of the logits'
    dtype. Extreme logits of ±1000 included. The gradient with respect to the logits must be PyTorch's
    (so no ``.item()``, ``.detach()`` or NumPy round trip), the inputs must be left unchanged, and
    ``F.cross_entropy`` / ``F.nll_loss`` may not be called (under any name).
    """
    gen, seed = checker_generator(seed)

    def targets(n: int, c: int) -> torch.Tensor:
        return torch.randint(0, c, (n,), generator=gen)  # (N,)

    extreme = _extreme_logits()
    cases = [
        (f"logits (8, 4), targets (8,) (seed={seed})", (random_float64(gen, 8, 4), targets(8, 4)), {}),
        (f"logits (1, 10), targets (1,) (seed={seed})", (random_float64(gen, 1, 10), targets(1, 10)), {}),
        (f"logits (64, 3) scaled by 30, targets (64,) (seed={seed})",
         (random_float64(gen, 64, 3, scale=30.0), targets(64, 3)), {}),
        ("extreme logits [[1000, -1000, 0], [1000, 1000, 999], [-1000, -1000, -1001]], targets [1, 2, 0]",
         (extreme, torch.tensor([1, 2, 0])), {}),
    ]
    name = "cross_entropy"
    count = _compare_on_cases(candidate, lambda z, t: F.cross_entropy(z, t), cases, name=name,
                              arg_names=("logits", "targets"), forbidden=_CROSS_ENTROPY_FORBIDDEN)
    for description, (logits, target), _ in (cases[0], cases[-1]):
        z = logits.detach().clone().requires_grad_(True)
        loss = _call_watched(candidate, (z, target), {}, name=name, description=description,
                             arg_names=("logits", "targets"), forbidden=_CROSS_ENTROPY_FORBIDDEN,
                             in_place_hint=_IN_PLACE_HINT)
        if not isinstance(loss, torch.Tensor) or not loss.requires_grad:
            raise CheckFailure(
                f"{name}: no gradient flows from the returned loss back to the logits for {description} "
                "(.item(), .detach(), .data, NumPy or torch.no_grad() cut it off); a loss must stay differentiable"
            )
        (got_grad,) = torch.autograd.grad(loss.sum(), z)
        reference = logits.detach().clone().requires_grad_(True)
        (expected_grad,) = torch.autograd.grad(F.cross_entropy(reference, target), reference)
        assert_close(got_grad, expected_grad, what=f"{name} (gradient with respect to the logits)",
                     inputs=description, atol=1e-9, rtol=1e-7)
    passed(name, f"matches the reference on {count} random cases")


# --------------------------------------------------------------------------------------------------------
# 01: one gradient-descent step
# --------------------------------------------------------------------------------------------------------

_STEP_FORBIDDEN = Forbidden(
    names=frozenset(),
    what="autograd (.backward(), torch.autograd.grad, torch.func, requires_grad)",
    hint="use the gradients derived by hand, grad_w = 2 xᵀ(x w + b - y) / N and grad_b = 2 mean(x w + b - y)",
    autograd=True,
)


def _linear_regression_step_reference(w: torch.Tensor, b: torch.Tensor, x: torch.Tensor, y: torch.Tensor,
                                      lr: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The step computed by autograd: ``w - lr ∂L/∂w``, ``b - lr ∂L/∂b`` for ``L = mean((x w + b - y)²)``."""
    w = w.detach().clone().requires_grad_(True)  # (D,)
    b = b.detach().clone().requires_grad_(True)  # ()
    loss = ((x @ w + b - y) ** 2).mean()  # (N,) -> ()
    grad_w, grad_b = torch.autograd.grad(loss, (w, b))
    return (w - lr * grad_w).detach(), (b - lr * grad_b).detach()


def check_linear_regression_step(
    candidate: Callable[..., tuple[torch.Tensor, torch.Tensor]], seed: int | None = None
) -> None:
    """``candidate(w, b, x, y, lr)`` must return ``(w_new, b_new)`` after one gradient-descent step.

    Model ``ŷ = x w + b`` with ``x (N, D)``, ``w (D,)``, ``b ()`` and ``y (N,)``; loss
    ``L = mean((ŷ - y)²)``. The reference differentiates with autograd; the candidate must use the
    gradients derived by hand (no ``.backward()``, ``torch.autograd`` or ``requires_grad``). The inputs must
    be left unchanged (return new tensors of the inputs' dtype and shapes ``(D,)`` and ``()``).
    """
    gen, seed = checker_generator(seed)
    cases = []
    for n, d, lr in ((10, 1, 0.1), (32, 3, 0.05), (5, 8, 0.5), (100, 2, 1e-3)):
        x = random_float64(gen, n, d)  # (N, D)
        y = x @ random_float64(gen, d) + 0.1 * random_float64(gen, n)  # (N,)
        w, b = random_float64(gen, d), random_float64(gen)  # (D,), ()
        cases.append((f"N={n}, D={d}, lr={lr} (seed={seed})", (w, b, x, y, lr)))
    name = "linear_regression_step"
    if not callable(candidate):
        raise CheckFailure(f"{name}: expected a function, got {_describe(candidate)}")
    _reject_forbidden_code(candidate, _STEP_FORBIDDEN, name)
    for description, args in cases:
        expected = _linear_regression_step_reference(*args)
        got = _call_watched(candidate, args, {}, name=name, description=description, arg_names=("w", "b", "x", "y"),
                            forbidden=_STEP_FORBIDDEN,
                            in_place_hint="compute and return new tensors instead (e.g. `w_new = w - lr * grad_w`)")
        if not isinstance(got, (tuple, list)) or len(got) != 2:
            raise CheckFailure(f"{name}: expected a tuple (w_new, b_new) for {description}, got {_describe(got)}")
        for label, value, wanted in zip(("w_new", "b_new"), got, expected):
            _assert_tensor_like(value, wanted, what=f"{name} ({label})", inputs=description)
            assert_close(value, wanted, what=f"{name} ({label})", inputs=description, atol=1e-9, rtol=1e-7)
    passed(name, f"matches autograd's gradient step on {len(cases)} random cases")
