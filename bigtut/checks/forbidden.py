"""Forbidden calls: what an exercise asks the student to write, refused when the candidate calls it instead.

The checkers of every chapter find them in two ways:

* in the candidate's code, before it runs: :func:`scan_for_forbidden_names` reads the bytecode (so it needs no
  source file, ignores comments and strings, and sees through ``from torch.nn.functional import gelu as g``),
  reads the helpers of the candidate's own module that it calls, and quotes the offending line where the source
  is available. :func:`assert_does_not_use` builds on it to refuse named functions with advice for each: the
  course's own answer (:data:`OWN_ANSWER`) or the library's. A function of the student's own that shares a
  banned name is allowed (and read in turn);
* while it runs: :func:`record_forbidden_calls`, a torch-function and a dispatch mode that see every call that
  reaches PyTorch, however it is spelled.
"""

from __future__ import annotations

import dis
import functools
import inspect
import types
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

from bigtut.checks.core import CheckFailure

__all__ = ["OWN_ANSWER", "Forbidden", "assert_does_not_use", "record_forbidden_calls", "scan_for_forbidden_names"]


@dataclass(frozen=True)
class Forbidden:
    """The library calls an exercise asks the student to write by hand.

    Attributes:
        names: base names (see :func:`_base_name`) of forbidden functions, tensor methods, ``nn`` modules and
            ATen operators, e.g. ``{"log_softmax", "LogSoftmax", "logsumexp"}``.
        what: how a failure message names them.
        hint: what to do instead.
        autograd: also forbid autograd (``.backward()``, ``torch.autograd.grad``, ``requires_grad``).
    """

    names: frozenset[str]
    what: str
    hint: str
    autograd: bool = False


# Names that mean "autograd" in code (``w.requires_grad_()``, ``loss.backward()``, ``torch.autograd.grad``,
# ``torch.func.grad``, ``torch.autograd.functional.jacobian``), as base names.
_AUTOGRAD_NAMES = frozenset({"backward", "grad", "requires_grad", "autograd", "enable_grad", "jacobian", "hessian",
                             "vjp", "jvp", "jacrev", "jacfwd"})


def _base_name(name: str) -> str:
    """``"aten::_log_softmax"``, ``"special_log_softmax"``, ``"gelu_"`` → ``"log_softmax"``, …, ``"gelu"``."""
    name = name.rsplit("::", 1)[-1].rsplit(".", 1)[-1]
    name = name.strip("_")
    return name.removeprefix("special_")


def _is_forbidden(name: str, forbidden: Forbidden) -> bool:
    base = _base_name(name)
    return base in forbidden.names or (forbidden.autograd and base in _AUTOGRAD_NAMES)


def _function_label(func: Any) -> str:
    """How a student would spell a library function: ``torch.log_softmax``, ``torch.nn.functional.gelu``, …"""
    name = getattr(func, "__name__", None) or repr(func)
    module = getattr(func, "__module__", None) or ""
    qualname = getattr(func, "__qualname__", "") or ""
    if module.startswith("torch._ops"):
        return f"torch.ops.aten.{name}"
    if qualname.startswith(("TensorBase.", "Tensor.")):
        return f"Tensor.{name}"
    if module.startswith("torch.nn.modules"):
        return f"nn.{qualname or name}"
    if module == "torch._C._nn":
        return f"torch.nn.functional.{name}"
    if module == "torch._C._special":
        return f"torch.special.{name.removeprefix('special_')}"
    if qualname.startswith("_VariableFunctionsClass."):
        return f"torch.{name}"
    return f"{module}.{qualname or name}" if module else name


def _unwrap(candidate: Any) -> Any:
    """The plain Python function behind a partial, a bound method, a decorated function or a callable object."""
    for _ in range(5):
        if isinstance(candidate, functools.partial):
            candidate = candidate.func
        elif isinstance(candidate, types.MethodType):
            candidate = candidate.__func__
        elif isinstance(candidate, types.FunctionType):
            return inspect.unwrap(candidate)
        elif isinstance(call := inspect.getattr_static(type(candidate), "__call__", None), types.FunctionType):
            candidate = call
        else:
            return None
    return None


def _code_objects(code: types.CodeType) -> Iterator[types.CodeType]:
    """A code object and every code object nested in it (lambdas, comprehensions, inner functions)."""
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _code_objects(const)


def _source_line(code: types.CodeType, lineno: int | None) -> str | None:
    """The source line ``lineno`` of ``code``, or ``None`` where the source is not available (e.g. ``exec``)."""
    if lineno is None:
        return None
    try:
        lines, start = inspect.getsourcelines(code)
    except (OSError, TypeError):
        return None
    index = lineno - max(start, 1)
    return lines[index].strip() if 0 <= index < len(lines) else None


_LOADS = frozenset({"LOAD_GLOBAL", "LOAD_NAME", "LOAD_DEREF", "LOAD_FAST", "LOAD_CLASSDEREF", "LOAD_FAST_CHECK",
                    "LOAD_FAST_AND_CLEAR"})
_ATTRIBUTES = frozenset({"LOAD_ATTR", "LOAD_METHOD", "STORE_ATTR", "IMPORT_FROM", "LOAD_SUPER_ATTR"})


class _Found(NamedTuple):
    name: str  # the base name that is forbidden
    report: str  # how a message quotes the call: `F.gelu` (as `g`) in the line `…`


def _first_forbidden(candidate: Callable, forbidden: Forbidden) -> _Found | None:
    """The first forbidden call in ``candidate``'s code (see :func:`scan_for_forbidden_names`), or ``None``."""
    root = _unwrap(candidate)
    if root is None:
        return None
    home = getattr(root, "__module__", None)
    seen_codes: set[int] = set()
    pending: list[tuple[types.FunctionType, int]] = [(root, 0)]
    while pending:
        function, depth = pending.pop()
        names: dict[str, Any] = dict(function.__globals__)
        for var, cell in zip(function.__code__.co_freevars, function.__closure__ or ()):
            try:
                names[var] = cell.cell_contents
            except ValueError:  # an empty cell
                pass
        for code in _code_objects(function.__code__):
            if id(code) in seen_codes:
                continue
            seen_codes.add(id(code))
            chain: list[str] = []
            for instr in dis.get_instructions(code):
                positions = getattr(instr, "positions", None)
                lineno = positions.lineno if positions else instr.starts_line
                if instr.opname in _LOADS and isinstance(instr.argval, str):
                    chain = [instr.argval]
                    if instr.opname == "LOAD_FAST":
                        continue
                    obj = names.get(instr.argval)
                    if obj is None or isinstance(obj, types.ModuleType):
                        continue
                    if getattr(obj, "__module__", None) == home:  # the student's own (e.g. a hand-written logsumexp)
                        if isinstance(obj, types.FunctionType) and depth < 3 and obj is not function:
                            pending.append((obj, depth + 1))  # a helper they call: read it too
                        continue
                    if isinstance(obj, nn.Module):  # e.g. a global `act = nn.GELU()`
                        obj = type(obj)
                    if _is_forbidden(getattr(obj, "__name__", "") or "", forbidden):
                        return _Found(_base_name(obj.__name__),
                                      _static_report(_function_label(obj), instr.argval, code, lineno))
                elif instr.opname in _ATTRIBUTES and isinstance(instr.argval, str):
                    chain.append(instr.argval)
                    if _is_forbidden(instr.argval, forbidden):  # `.x` alone: a method of a call's result
                        return _Found(_base_name(instr.argval), _static_report(
                            ".".join(chain if len(chain) > 1 else ["", *chain]), None, code, lineno))
                else:
                    chain = []
    return None


def scan_for_forbidden_names(candidate: Callable, forbidden: Forbidden) -> str | None:
    """The first forbidden library call in ``candidate``'s code, as text for a message, or ``None``.

    Reads the bytecode (so it needs no source file and ignores comments and strings): an attribute such as
    ``torch.log_softmax``, ``F.gelu`` or ``z.logsumexp(...)`` whose name is forbidden, or a global or closure
    variable bound to a forbidden library function or class (``from torch.nn.functional import gelu as g``).
    Functions of the candidate's own module that it calls are read too. Where the source is available
    (notebooks, files) the offending line is quoted. Returns ``None`` for anything it cannot read.
    """
    found = _first_forbidden(candidate, forbidden)
    return None if found is None else found.report


def _static_report(label: str, alias: str | None, code: types.CodeType, lineno: int | None) -> str:
    spelled = f" (as `{alias}`)" if alias and alias != label.rsplit(".", 1)[-1] else ""
    line = _source_line(code, lineno)
    where = f" in the line `{line}`" if line else ""
    return f"`{label}`{spelled}{where}"


def _requires_grad(value: Any) -> bool:
    if isinstance(value, torch.Tensor):
        return value.requires_grad
    if isinstance(value, (tuple, list)):
        return any(_requires_grad(v) for v in value)
    return False


class _ForbiddenFunctionSpy(TorchFunctionMode):
    """Notes every forbidden torch function, tensor method or ``torch.ops`` call, under any alias."""

    def __init__(self, forbidden: Forbidden, seen: list[str]):
        super().__init__()
        self.forbidden, self.seen = forbidden, seen

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001 (PyTorch's protocol)
        if _is_forbidden(getattr(func, "__name__", "") or "", self.forbidden):
            self.seen.append(_function_label(func))
        out = func(*args, **(kwargs or {}))
        if self.forbidden.autograd and not self.seen and _requires_grad(out):
            self.seen.append("autograd (a tensor with requires_grad=True was built)")
        return out


class _ForbiddenOperatorSpy(TorchDispatchMode):
    """Notes every forbidden ATen operator, whatever Python function led to it (``nn.GELU``, distributions…)."""

    def __init__(self, forbidden: Forbidden, seen: list[str]):
        super().__init__()
        self.forbidden, self.seen = forbidden, seen

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        # Nothing here is compiled; PyTorch's default would wrap __torch_dispatch__ in a dynamo guard whose first
        # call imports torch._dynamo (about a second, in the notebook's first exercise cell).
        return False

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001 (PyTorch's protocol)
        name = func.overloadpacket.__name__
        if _base_name(name) in self.forbidden.names:
            self.seen.append(f"torch.ops.aten.{name}")
        return func(*args, **(kwargs or {}))


@contextmanager
def record_forbidden_calls(forbidden: Forbidden) -> Iterator[list[str]]:
    """Within the block, note (in the list it yields) every forbidden call that reaches PyTorch.

    Nothing is patched: a torch-function mode sees the Python-level call (``torch.log_softmax``,
    ``F.gelu``, ``z.logsumexp()``, ``torch.ops.aten._log_softmax`` — under any alias), a dispatch mode the
    ATen operator it ends in (so ``nn.GELU()``, ``torch.distributions`` or a helper in another module are
    seen too). With ``forbidden.autograd``, building a tensor that requires grad counts as a forbidden call.
    The calls are only noted, never blocked, so a ``try``/``except`` around them cannot hide them.
    """
    seen: list[str] = []
    with _ForbiddenOperatorSpy(forbidden, seen), _ForbiddenFunctionSpy(forbidden, seen):
        yield seen


#: the advice :func:`assert_does_not_use` gives for a banned reference implementation (``.format(its name)``)
OWN_ANSWER = "{} is the course's own answer to this exercise: write it yourself with torch"


def assert_does_not_use(name: str, candidate: Callable, banned: Mapping[str, str]) -> None:
    """Fail if ``candidate``'s code calls one of the ``banned`` names (a name -> what to write instead): the
    course's own answer, or the library function the exercise asks the student to write.

    The names are found as :func:`scan_for_forbidden_names` finds them, in the bytecode (so it works for
    functions defined in notebook cells or ``exec``'d strings): read from a module (``metrics.precision_at_k``,
    ``from … import precision_at_k``) or a global bound to a library function of that name. A function of the
    candidate's own module that shares the name (the student's own helper) is allowed, and read in turn. A
    callable without bytecode (a builtin) is not read.
    """
    by_base = {_base_name(used): used for used in banned}  # as the scan compares them: `_redraw` is `redraw`
    found = _first_forbidden(candidate, Forbidden(frozenset(by_base), what="", hint=""))
    if found is not None:
        used = by_base[found.name]
        raise CheckFailure(f"{name}: the answer calls `{used}` — {banned[used]}")
