"""Checker for chapter 03's LayerNorm exercise: the student's ``LayerNorm`` module equals ``nn.LayerNorm``.

``LayerNorm(normalized_shape, eps=1e-5)`` normalises the last dimension of ``x (..., D)`` to mean 0 and
(population) variance 1, then scales by ``weight`` (ones at first) and shifts by ``bias`` (zeros), both
``nn.Parameter`` of shape ``(D,)``. The checker compares values and gradients (input, weight, bias) with
``nn.LayerNorm`` and refuses a module that calls the library's layer norm inside, however it is spelled
(``F.layer_norm``, ``from torch import layer_norm``, ``torch.native_layer_norm``, ``torch.ops.aten``…), or another
normalisation of the library that computes the same (``F.group_norm`` with one group, batch or instance norm).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from bigtut.checks.core import (
    CheckFailure,
    _describe,
    assert_close,
    assert_close_or_hint,
    checker_generator,
    guarded,
    passed,
)
from bigtut.checks.forbidden import Forbidden, record_forbidden_calls

NAME = "LayerNorm"


class _LibraryCall(Exception):
    """Raised inside the student's forward when it reaches the library's layer norm."""


@contextlib.contextmanager
def _library_layer_norm_forbidden() -> Iterator[None]:
    """Make every public entry to the library's layer norm raise while the student's module runs."""
    def refuse(*args, **kwargs):
        raise _LibraryCall
    saved = (F.layer_norm, torch.layer_norm, nn.LayerNorm.forward)
    F.layer_norm = torch.layer_norm = refuse
    nn.LayerNorm.forward = refuse
    try:
        yield
    finally:
        F.layer_norm, torch.layer_norm, nn.LayerNorm.forward = saved


#: the library's normalisations, seen under any alias while the forward runs (an alias bound before the checker
#: patched anything, ``torch.native_layer_norm``, ``torch.ops.aten.…``, or group norm with one group, which on a
#: (N, D) input is layer norm)
_LIBRARY_NORMS = Forbidden(names=frozenset({"layer_norm", "native_layer_norm", "LayerNorm", "group_norm",
                                            "native_group_norm", "GroupNorm", "instance_norm", "batch_norm",
                                            "native_batch_norm"}), what="", hint="")
_REFUSED = ("forward calls the library's layer norm (nn.LayerNorm, F.layer_norm or torch.layer_norm){}; write it "
            "from means and variances")


def _run(module: nn.Module, x: torch.Tensor, what: str) -> torch.Tensor:
    try:
        with _library_layer_norm_forbidden(), record_forbidden_calls(_LIBRARY_NORMS) as seen:
            out = guarded(NAME, what, module, x)
    except CheckFailure as failure:
        if isinstance(failure.__cause__, _LibraryCall):
            raise CheckFailure(f"{NAME}: {_REFUSED.format('')}") from None
        raise
    if seen:
        raise CheckFailure(f"{NAME}: {_REFUSED.format(f' — here {seen[0]}')}")
    return out


def _build(cls: Callable[..., nn.Module], d: int, eps: float | None) -> nn.Module:
    kwargs = {} if eps is None else {"eps": eps}  # None: the class's own default, which must be 1e-5
    call = f"{getattr(cls, '__name__', 'LayerNorm')}({d}{'' if eps is None else f', eps={eps}'})"
    module = guarded(NAME, call, cls, d, **kwargs)
    if not isinstance(module, nn.Module):
        raise CheckFailure(f"{NAME}: expected an nn.Module, got {_describe(module)}")
    if any(isinstance(m, nn.LayerNorm) for m in module.modules()):
        raise CheckFailure(f"{NAME}: the module holds an nn.LayerNorm; write the normalisation yourself")
    return module


def _check_parameters(module: nn.Module, d: int) -> None:
    params = dict(module.named_parameters())
    for name, fill in (("weight", 1.0), ("bias", 0.0)):
        value = getattr(module, name, None)
        if not isinstance(value, nn.Parameter):
            raise CheckFailure(f"{NAME}: `{name}` must be an nn.Parameter of shape ({d},) so that it is learned and "
                               f"moved with the model; got {_describe(value)}")
        if tuple(value.shape) != (d,):
            raise CheckFailure(f"{NAME}: `{name}` has shape {tuple(value.shape)}, expected ({d},): one per feature")
        if not torch.equal(value.detach(), torch.full((d,), fill, dtype=value.dtype)):
            raise CheckFailure(f"{NAME}: `{name}` must start at {'ones' if fill else 'zeros'} (a fresh LayerNorm is "
                               f"the plain normalisation), got {_describe(value)}")
    if set(params) != {"weight", "bias"}:
        raise CheckFailure(f"{NAME}: expected exactly the parameters `weight` and `bias`, got {sorted(params)}")


def _cases(gen: torch.Generator, d: int) -> list[tuple[str, torch.Tensor]]:
    cases = [
        ("x of shape (4, D)", torch.randn(4, d, generator=gen, dtype=torch.float64)),
        ("x of shape (2, 3, D)", torch.randn(2, 3, d, generator=gen, dtype=torch.float64) * 3),
        ("rows far from 0 (mean about 1000)", 1000 + torch.randn(3, d, generator=gen, dtype=torch.float64)),
        ("a constant row, where only eps keeps the division finite", torch.full((1, d), 2.5, dtype=torch.float64)),
    ]
    cases.append(("x of shape (5, D) with one dominant feature", torch.randn(5, d, generator=gen,
                                                                            dtype=torch.float64)))
    cases[-1][1][:, 0] *= 40
    return cases


def _mistakes(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float) -> dict:
    """What the usual wrong layer norms return on ``x`` (computed only when an answer is wrong)."""
    def norm(centred, var, eps_outside=False, used_eps=eps):
        scale = var.sqrt() + used_eps if eps_outside else torch.sqrt(var + used_eps)
        return centred / scale

    centred = x - x.mean(-1, keepdim=True)
    population = x.var(-1, keepdim=True, correction=0)
    right = norm(centred, population)
    return {
        "the variance is the unbiased one (divides by D-1); LayerNorm uses the population variance (divide by D: "
        "correction=0 or unbiased=False)": lambda: norm(centred, x.var(-1, keepdim=True)) * weight + bias,
        "eps is added outside the square root: divide by sqrt(var + eps)":
            lambda: norm(centred, population, eps_outside=True) * weight + bias,
        "eps is fixed at 1e-5 instead of the eps the module was built with (self.eps)":
            lambda: norm(centred, population, used_eps=1e-5) * weight + bias,
        "the mean is not subtracted: normalise x - mean": lambda: norm(x, population) * weight + bias,
        "the statistics are taken over the first dimension; LayerNorm normalises each vector over its last "
        "dimension (dim=-1)": lambda: norm(x - x.mean(0, keepdim=True), x.var(0, keepdim=True, correction=0))
            * weight + bias,
        "the bias is added before scaling: weight * normalised + bias": lambda: (right + bias) * weight,
        "weight and bias are swapped": lambda: right * bias + weight,
        "weight and bias are left out": lambda: right,
    }


def check_layer_norm(cls: Callable[..., nn.Module], seed: int | None = None) -> None:
    """``cls(D, eps=...)`` equals ``nn.LayerNorm(D, eps=...)``: parameters, values and gradients."""
    if not callable(cls):
        raise CheckFailure(f"{NAME}: expected a class (an nn.Module subclass), got {_describe(cls)}")
    gen, seed = checker_generator(seed)
    for d, eps in ((8, None), (5, 0.1), (16, 1e-5)):
        module = _build(cls, d, eps)
        _check_parameters(module, d)
        reference = nn.LayerNorm(d, eps=1e-5 if eps is None else eps)
        module, reference = module.double(), reference.double()
        with torch.no_grad():  # the same random gain and shift in both, so a swapped or ignored one shows
            weight, bias = torch.randn(d, generator=gen, dtype=torch.float64), torch.randn(d, generator=gen,
                                                                                          dtype=torch.float64)
            module.weight.copy_(weight)
            module.bias.copy_(bias)
            reference.weight.copy_(weight)
            reference.bias.copy_(bias)
        eps_text = "default eps" if eps is None else f"eps={eps}"
        for description, x in _cases(gen, d):
            inputs = f"{description}, D={d}, {eps_text} (seed {seed})"
            x_student, x_reference = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
            before = x_student.detach().clone()
            got = _run(module, x_student, f"forward on {inputs}")
            if not torch.equal(x_student.detach(), before):
                raise CheckFailure(f"{NAME}: forward changed its input in place for {inputs}")
            expected = reference(x_reference)
            with torch.no_grad():
                assert_close_or_hint(got, expected, what=f"{NAME} output", inputs=inputs, atol=1e-9, rtol=1e-7,
                                     variants=partial(_mistakes, x, weight, bias, 1e-5 if eps is None else eps))
            upstream = torch.randn(expected.shape, generator=gen, dtype=torch.float64)
            module.zero_grad()
            reference.zero_grad()
            guarded(NAME, f"backward on {inputs}", got.backward, upstream)
            expected.backward(upstream)
            if x_student.grad is None or module.weight.grad is None or module.bias.grad is None:
                raise CheckFailure(f"{NAME}: no gradient reached the input, `weight` or `bias` for {inputs} "
                                   f"(detached tensors, or .data used in forward?)")
            assert_close(x_student.grad, x_reference.grad, what=f"{NAME} gradient of the input", inputs=inputs,
                         atol=1e-7, rtol=1e-6)
            assert_close(module.weight.grad, reference.weight.grad, what=f"{NAME} gradient of `weight`",
                         inputs=inputs, atol=1e-7, rtol=1e-6)
            assert_close(module.bias.grad, reference.bias.grad, what=f"{NAME} gradient of `bias`", inputs=inputs,
                         atol=1e-7, rtol=1e-6)
    single = _build(cls, 6, None)  # float32 in, float32 out, as in a model
    out = _run(single, torch.randn(2, 6, generator=gen), "forward on a float32 (2, 6) input")
    if not isinstance(out, torch.Tensor) or out.dtype != torch.float32:
        raise CheckFailure(f"{NAME}: a float32 input must give a float32 output, got {_describe(out)}")
    passed(NAME, "equal to nn.LayerNorm in values and gradients (input, weight, bias), three widths and eps values")
