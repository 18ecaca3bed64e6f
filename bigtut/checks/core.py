"""The checker protocol shared by every chapter.

A checker is a plain function ``check_xxx(candidate)`` that

1. calls ``candidate`` and the reference on the same fresh random inputs (a few cases, edge cases included),
2. raises :class:`CheckFailure` (an ``AssertionError``) naming the input, the expected and the returned value
   at the first disagreement,
3. otherwise prints a single ``PASS <name>: <what was checked>`` line and returns ``None`` (so a notebook
   cell that ends with the checker call shows only that line).

A stub that raises ``NotImplementedError`` is reported as a failure too, with a hint to fill it in.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable
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


def assert_close(got: Any, expected: Any, *, what: str, inputs: str, atol: float = 1e-6, rtol: float = 1e-5) -> None:
    """Compare two tensors (or numbers); raise :class:`CheckFailure` with a helpful message if they differ."""
    if not isinstance(expected, torch.Tensor):
        expected = torch.as_tensor(expected)
    if not isinstance(got, torch.Tensor):
        try:
            got = torch.as_tensor(got)
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
