"""The checker protocol shared by every chapter.

A checker is a plain function ``check_xxx(candidate)`` that

1. calls ``candidate`` and the reference on the same fresh random inputs (a few cases, edge cases included),
2. raises :class:`CheckFailure` (an ``AssertionError``) naming the input, the expected and the returned value
   at the first disagreement,
3. otherwise prints a single ``PASS <name>: <what was checked>`` line and returns ``None`` (so a notebook
   cell that ends with the checker call shows only that line).

A stub that raises ``NotImplementedError`` is reported as a failure too, with a hint to fill it in.

Helpers every chapter's checkers share: :func:`assert_close` (compare, and say where the values differ),
:func:`matching_mistake` / :func:`hint_for` / :func:`assert_close_or_hint` (name the known mistake a wrong answer
equals) and :func:`assert_unchanged` (the candidate left the tensors it was handed as they were). Bans on calls
(the library function an exercise asks for, the course's own answer) live in :mod:`bigtut.checks.forbidden`.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import torch


class CheckFailure(AssertionError):
    """Raised by a checker when the candidate disagrees with the reference."""


def checker_generator(seed: int | None) -> tuple[torch.Generator, int]:
    """A private random generator for a checker, and the seed it was started from.

    Checkers draw their inputs from it, so they never disturb the notebook's own random state; with
    ``seed=None`` each call draws fresh inputs, and failure messages quote the seed to replay the case.
    """
    if seed is None:
        seed = secrets.randbits(31)
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int or None, got {seed!r}")
    return torch.Generator().manual_seed(seed), seed


def random_float64(gen: torch.Generator, *shape: int, scale: float = 1.0) -> torch.Tensor:
    """Standard-normal float64 tensor of ``shape`` (times ``scale``), drawn from a checker's generator."""
    return torch.randn(shape, generator=gen, dtype=torch.float64) * scale


def _describe(value: Any, limit: int = 6) -> str:
    """A short, readable description of a tensor, array or plain value for failure messages."""
    if isinstance(value, torch.Tensor):
        flat = value.detach().flatten()
        head = ", ".join(f"{v:.4g}" for v in flat[:limit].tolist()) if flat.is_floating_point() else ", ".join(
            str(v) for v in flat[:limit].tolist()
        )
        more = ", …" if flat.numel() > limit else ""
        return f"tensor(shape={tuple(value.shape)}, dtype={value.dtype}, values=[{head}{more}])"
    text = repr(value)
    return text if len(text) <= 200 else text[:200] + "…"


def _as_float64(value: Any) -> torch.Tensor | None:
    """``value`` as a CPU float64 tensor, or None when it cannot be read as numbers."""
    try:
        if isinstance(value, torch.Tensor):
            return value.detach().to("cpu", torch.float64)
        return torch.as_tensor(value, dtype=torch.float64)  # a Python float is a double: not via float32
    except (TypeError, ValueError, RuntimeError):
        return None


def _python_number_dtype(value: Any) -> torch.dtype | None:
    """float64 for Python floats and (nested) lists or tuples holding one (``torch.as_tensor`` alone would read them
    as float32, whose rounding fails a float64 comparison); None (keep the value's own dtype) otherwise."""
    if isinstance(value, float):
        return torch.float64
    if isinstance(value, (list, tuple)) and value:
        return _python_number_dtype(value[0]) or next((torch.float64 for v in value if isinstance(v, float)), None)
    return None


def assert_close(got: Any, expected: Any, *, what: str, inputs: str, atol: float = 1e-6, rtol: float = 1e-5) -> None:
    """Compare two tensors (or numbers); raise :class:`CheckFailure` with a helpful message if they differ."""
    if not isinstance(expected, torch.Tensor):
        expected = torch.as_tensor(expected, dtype=_python_number_dtype(expected))
    if not isinstance(got, torch.Tensor):
        try:
            got = torch.as_tensor(got, dtype=_python_number_dtype(got))
        except (TypeError, ValueError, RuntimeError):
            raise CheckFailure(
                f"{what}: expected a tensor like {_describe(expected)}, got {_describe(got)} for {inputs}"
            ) from None
    if tuple(got.shape) != tuple(expected.shape):
        raise CheckFailure(
            f"{what}: wrong shape for {inputs}: expected {tuple(expected.shape)}, got {tuple(got.shape)}"
        )
    got_f = got.detach().to("cpu", torch.float64)
    exp_f = expected.detach().to("cpu", torch.float64)
    if not torch.allclose(got_f, exp_f, atol=atol, rtol=rtol, equal_nan=False):
        diff = (got_f - exp_f).abs()
        diff = torch.where(torch.isnan(diff), torch.full_like(diff, float("inf")), diff)
        worst = int(diff.flatten().argmax())
        index = tuple(int(i) for i in torch.unravel_index(torch.tensor(worst), exp_f.shape)) if exp_f.dim() else ()
        raise CheckFailure(
            f"{what}: values differ for {inputs}.\n"
            f"  expected {_describe(expected)}\n"
            f"  got      {_describe(got)}\n"
            f"  largest difference {diff.max().item():.3g} at index {index} "
            f"(expected {exp_f.flatten()[worst].item():.6g}, got {got_f.flatten()[worst].item():.6g})"
        )


def _call(candidate: Callable, name: str, args: tuple, kwargs: dict) -> Any:
    try:
        return candidate(*args, **kwargs)
    except NotImplementedError:
        raise CheckFailure(f"{name}: not implemented yet — replace the `raise NotImplementedError` stub") from None


def guarded(name: str, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run ``fn``; turn any exception into a :class:`CheckFailure` that says what was being done."""
    try:
        return fn(*args, **kwargs)
    except NotImplementedError:
        raise CheckFailure(f"{name}: not implemented yet — replace the `raise NotImplementedError` stub") from None
    except Exception as err:  # the candidate's own error, reported with the input that caused it
        raise CheckFailure(f"{name}: {what} raised {type(err).__name__}: {err}") from err


def passed(name: str, detail: str) -> None:
    """Print the single pass line every checker ends with."""
    print(f"PASS {name}: {detail}")


def check_function(
    candidate: Callable,
    reference: Callable,
    cases: Iterable[tuple[str, tuple, dict]],
    *,
    name: str,
    atol: float = 1e-6,
    rtol: float = 1e-5,
) -> None:
    """Compare ``candidate(*args, **kwargs)`` with ``reference(...)`` on every case.

    Args:
        candidate: the student's function.
        reference: the course's reference implementation.
        cases: ``(description, args, kwargs)`` triples; the description names the input in failure messages.
        name: the exercise name used in the PASS line and in failures.
    """
    if not callable(candidate):
        raise CheckFailure(f"{name}: expected a function, got {_describe(candidate)}")
    count = 0
    for description, args, kwargs in cases:
        expected = reference(*args, **kwargs)
        got = _call(candidate, name, args, kwargs)
        if isinstance(expected, tuple):
            if not isinstance(got, tuple) or len(got) != len(expected):
                raise CheckFailure(f"{name}: expected a tuple of {len(expected)} values for {description}, got "
                                   f"{_describe(got)}")
            for i, (g, e) in enumerate(zip(got, expected)):
                assert_close(g, e, what=f"{name} (output {i})", inputs=description, atol=atol, rtol=rtol)
        else:
            assert_close(got, expected, what=name, inputs=description, atol=atol, rtol=rtol)
        count += 1
    passed(name, f"matches the reference on {count} random cases")


# --------------------------------------------------------------------------- naming the mistake an answer equals
#: known mistakes: a mapping (or a list of pairs, when two forms of one mistake share a description) from a
#: description to what that mistake returns on the failing input — a value, a function computing it, or None
#: where it cannot be computed — or a function returning that table, so nothing is computed unless needed
Variants = Mapping[str, Any] | Iterable[tuple[str, Any]] | Callable[[], Mapping[str, Any] | Iterable[tuple[str, Any]]]


def _variant_values(variants: Variants) -> Iterator[tuple[str, torch.Tensor | None]]:
    """``(description, value as float64 or None)`` for each variant, computed one at a time; a variant (or a
    table) whose computation raises is left out: that mistake cannot be the answer on this input."""
    try:
        table = variants() if callable(variants) else variants
        pairs = list(table.items() if isinstance(table, Mapping) else table)
    except Exception:  # a hint is optional; the failure is reported anyway
        return
    for label, wrong in pairs:
        try:
            yield label, _as_float64(wrong() if callable(wrong) else wrong)
        except Exception:  # e.g. factorial of a negative number: that variant cannot be the answer
            continue


def matching_mistake(got: Any, variants: Variants, *, atol: float = 1e-9, rtol: float = 1e-7) -> str | None:
    """The description of the first variant (see :data:`Variants`) that ``got`` equals — same shape,
    ``allclose`` in float64 — or None. A checker computes, on the input where the candidate failed, what each
    usual mistake returns; if the answer equals one of them, the failure message can say which mistake it is.
    ``got`` may be a tensor, an array or a number; anything that cannot be read as numbers matches nothing."""
    value = _as_float64(got)
    if value is None:
        return None
    for label, wrong in _variant_values(variants):
        if wrong is not None and wrong.shape == value.shape and torch.allclose(value, wrong, atol=atol, rtol=rtol):
            return label
    return None


def hint_for(got: Any, variants: Variants, *, atol: float = 1e-9, rtol: float = 1e-7) -> str:
    """``"\\n  Hint: <mistake>."`` for the first known mistake ``got`` equals (:func:`matching_mistake`), else
    ``""``."""
    mistake = matching_mistake(got, variants, atol=atol, rtol=rtol)
    return "" if mistake is None else f"\n  Hint: {mistake}."


def wrong_only(variants: Variants, expected: Any, *, atol: float = 1e-9,
               rtol: float = 1e-9) -> Callable[[], dict[str, torch.Tensor | None]]:
    """``variants`` without the mistakes that give the right answer on this very input (computed when the table
    is asked for), so that a hint never names a mistake that makes no difference here."""
    def table() -> dict[str, torch.Tensor | None]:
        return {label: value for label, value in _variant_values(variants)
                if matching_mistake(value, {label: expected}, atol=atol, rtol=rtol) is None}

    return table


def assert_close_or_hint(got: Any, expected: Any, *, what: str, inputs: str, variants: Variants, atol: float = 1e-6,
                         rtol: float = 1e-5, hint_atol: float | None = None) -> None:
    """:func:`assert_close`, whose failure also names the mistake when ``got`` equals one of ``variants`` (see
    :func:`hint_for`, to ``hint_atol``) or was computed in a lower precision than the float64 expected."""
    try:
        assert_close(got, expected, what=what, inputs=inputs, atol=atol, rtol=rtol)
    except CheckFailure as failure:
        hint = hint_for(got, variants, atol=atol if hint_atol is None else hint_atol, rtol=rtol)
        expected_dtype = expected.dtype if isinstance(expected, torch.Tensor) else torch.float64
        if (not hint and isinstance(got, torch.Tensor) and got.is_floating_point()
                and expected_dtype == torch.float64 and got.dtype != torch.float64):
            hint = (f"\n  Hint: the result is {got.dtype}; the inputs are float64 — compute in float64 (a "
                    f"torch.arange or torch.tensor without dtype= gives float32, whose rounding alone is ~1e-7)")
        raise CheckFailure(f"{failure}{hint}") from None


# ------------------------------------------------------------------------------ inputs changed in place
def _same(kept: torch.Tensor, given: Any) -> bool:
    return (isinstance(given, torch.Tensor) and given.shape == kept.shape and given.dtype == kept.dtype
            and torch.equal(given.detach().cpu(), kept.detach().cpu()))


def assert_unchanged(name: str, inputs: str, tensors: Mapping[str, tuple[Any, Any]]) -> None:
    """Fail if the candidate changed, in place, something it was handed (``x += …``, ``x[…] = …``,
    ``x.masked_fill_(…)``, ``out_proj.bias.data.zero_()``, a list reversed): the caller's next use of it would
    silently go wrong.

    ``tensors`` maps an input's name — an argument such as ``x``, or a module's parameter such as
    ``out_proj.bias`` — to ``(kept, given)``: the checker's own copy and the object the candidate received, a
    tensor or a list or tuple of tensors (``kept`` None: nothing to compare). Shape, dtype and values must be as
    they were.
    """
    for label, (kept, given) in tensors.items():
        if kept is None:
            continue
        if isinstance(kept, torch.Tensor):
            same = _same(kept, given)
        else:
            same = (isinstance(given, (list, tuple)) and len(given) == len(kept)
                    and all(_same(k, g) for k, g in zip(kept, given)))
        if same:
            continue
        if "." in label:  # a parameter of a module the candidate was handed
            how = f"`{label} += …`, `{label}.data.zero_()` or `{label}.copy_(…)` overwrite the caller's parameter"
            fix = f"leave {label.rsplit('.', 1)[0]}'s parameters as they are: compute with them, do not change them"
        else:
            listed = ", and so does reordering the list" if not isinstance(kept, torch.Tensor) else ""
            how = (f"`{label} += …`, `{label} /= …`, `{label}[…] = …` and methods ending in `_` such as "
                   f"`{label}.mul_(…)` or `{label}.masked_fill_(…)` overwrite the caller's data{listed}")
            fix = f"compute a new tensor instead, e.g. `{label} = {label} / …`"
        raise CheckFailure(f"{name}: changed its input `{label}` in place for {inputs} — {how}; {fix}")
