"""Checkers for chapter 10 (efficient models).

Each takes the student's function, compares it with :mod:`bigtut.compress` on fresh random cases, and is
built to catch the usual mistakes:

=============================  ==============================================================================
checker                        what it holds the candidate to (and the usual mistake it catches)
=============================  ==============================================================================
``check_quantize_per_channel``  int8 values and one scale per output row, ``scale = max|row| / 127.5``
                               (torchao's rule), ``clamp(round(W / scale), -128, 127)`` (not a per-tensor or
                               per-column scale, not max / 127, not truncation, not a missing clamp that
                               wraps 128 to -128, not float values, not a zero scale for an all-zero row)
``check_distillation_loss``    ``alpha · T² · KL(teacher_T ‖ student_T) + (1 - alpha) · CE(student, labels)``,
                               batch mean (not without T², not KL the wrong way round, not an unsoftened
                               teacher, not a batch sum, not alpha swapped, not CE on softened logits)
=============================  ==============================================================================
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from bigtut.checks.core import CheckFailure, _call, _describe, assert_close, checker_generator, passed

__all__ = ["check_distillation_loss", "check_quantize_per_channel"]

#: a row whose largest magnitude is this maps exactly onto ±127.5 steps with a power-of-two scale (2**-8)
_EXTREME = 127.5 / 256


def _weight_cases(gen: torch.Generator) -> list[tuple[str, torch.Tensor]]:
    """float32 weight matrices ``(O, K)``: rows of very different sizes, rows reaching the int8 extremes
    exactly (+127.5 steps, which rounds to 128 and must be clamped to 127; -127.5, which rounds to -128), and
    a matrix with an all-zero row."""
    sizes = torch.tensor([0.01, 0.1, 1.0, 10.0, 0.5, 3.0])[:, None]  # (6, 1): one magnitude per row
    random = torch.randn(6, 10, generator=gen) * sizes  # (6, 10)
    extreme = torch.rand(4, 9, generator=gen) * 0.8 - 0.4  # (4, 9): |w| < 0.4 < _EXTREME
    extreme[0, 3], extreme[1, 0], extreme[2, 8] = _EXTREME, -_EXTREME, _EXTREME  # row 3 stays ordinary
    with_zero_row = torch.randn(3, 7, generator=gen)  # (3, 7)
    with_zero_row[1] = 0.0
    wide = torch.randn(5, 64, generator=gen) * 0.05  # (5, 64): a weight-sized layer
    return [("a (6, 10) weight whose rows differ in size from 0.01 to 10", random),
            ("a (4, 9) weight whose largest entries are exactly ±127.5 steps (the int8 extremes)", extreme),
            ("a (3, 7) weight with an all-zero row 1", with_zero_row),
            ("a (5, 64) weight of std 0.05", wide)]


def check_quantize_per_channel(candidate: Callable, seed: int | None = None) -> None:
    """``candidate(weight (O, K) float32) -> (values (O, K) int8, scale (O, 1))``: symmetric per-output-channel
    int8, as :func:`bigtut.compress.quantize_symmetric`: ``scale = max|row| / 127.5`` (at least float32's
    eps), ``values = clamp(round(W / scale), -128, 127)`` (round half to even, as ``torch.round``).

    Where ``W / scale`` lies within 0.001 of a half step (the largest entry of every row sits there), either
    neighbouring integer is accepted, so ``W / scale`` and ``W * (1 / scale)`` both pass.
    """
    from bigtut.compress import quantize_symmetric

    gen, seed = checker_generator(seed)
    name = "quantize_per_channel"
    for description, weight in _weight_cases(gen):
        inputs = f"{description} (seed={seed})"
        expected = quantize_symmetric(weight)
        got = _call(candidate, name, (weight.clone(),), {})
        if not isinstance(got, tuple) or len(got) != 2:
            raise CheckFailure(f"{name}: expected a pair (values, scale) for {inputs}, got {_describe(got)}")
        values, scale = got
        if not isinstance(values, torch.Tensor) or values.dtype != torch.int8:
            raise CheckFailure(f"{name}: values must be an int8 tensor (that is the 4x saving), got "
                               f"{_describe(values)} for {inputs}")
        assert_close(scale, expected.scale, atol=0.0, rtol=1e-6, inputs=inputs,
                     what=f"{name} scale (O, 1) = max|row| / 127.5 (torchao's rule, not / 127; float32 eps for a "
                          f"zero row)")
        if values.shape != expected.values.shape:
            raise CheckFailure(f"{name}: values have shape {tuple(values.shape)}, expected "
                               f"{tuple(expected.values.shape)} for {inputs}")
        steps = weight.double() / expected.scale.double()  # (O, K): the exact quotient W / scale
        near_half = ((steps.abs() - steps.abs().floor()) - 0.5).abs() < 1e-3  # (O, K): either neighbour is fine
        allowed = (values.double() - steps).abs() <= 0.5 + 1e-3  # (O, K)
        wrong = (values != expected.values) & ~(near_half & allowed)  # (O, K)
        if bool(wrong.any()):
            o, k = (int(i) for i in wrong.nonzero()[0])
            raise CheckFailure(
                f"{name}: values differ for {inputs}.\n"
                f"  at row {o}, column {k}: W = {weight[o, k].item():.6g}, W / scale = {steps[o, k].item():.4f}, "
                f"expected {expected.values[o, k].item()}, got {values[o, k].item()}\n"
                f"  (round to the nearest integer, then clamp to [-128, 127] before casting: int8(128) wraps to -128)")
    passed(name, "int8 values and per-row scales on 4 weights (uneven rows, the ±127.5 extremes, a zero row)")


def check_distillation_loss(candidate: Callable, seed: int | None = None) -> None:
    """``candidate(student_logits (B, C), teacher_logits (B, C), labels (B,), temperature, alpha) -> scalar``:
    ``alpha * T² * KL(softmax(teacher / T) ‖ softmax(student / T)) + (1 - alpha) * CE(student, labels)``,
    both averaged over the batch, as :func:`bigtut.compress.distillation_loss`."""
    from bigtut.compress import distillation_loss

    gen, seed = checker_generator(seed)
    name = "distillation_loss"
    for B, C, T, alpha in ((4, 3, 2.0, 0.5), (6, 5, 4.0, 0.3), (3, 4, 0.5, 0.8), (5, 2, 3.0, 1.0)):
        student = 2 * torch.randn(B, C, generator=gen, dtype=torch.float64)  # (B, C)
        teacher = 3 * torch.randn(B, C, generator=gen, dtype=torch.float64)  # (B, C)
        labels = torch.randint(0, C, (B,), generator=gen)  # (B,)
        expected = distillation_loss(student, teacher, labels, temperature=T, alpha=alpha)  # ()
        got = _call(candidate, name, (student.clone(), teacher.clone(), labels.clone(), T, alpha), {})
        assert_close(got, expected, what=name, atol=1e-10, rtol=1e-8,
                     inputs=f"B={B} rows of C={C} random logits, temperature={T}, alpha={alpha} (seed={seed})")
    passed(name, "4 random batches, temperatures 0.5–4, alpha 0.3–1")
