"""Checkers for chapter 10 (efficient models).

Each takes the student's function, compares it with :mod:`bigtut.compress` on fresh random cases, and is
built to catch the usual mistakes (a failure names the input, what was expected, what came back and — when it
is a known wrong variant — the mistake):

=============================  ==============================================================================
checker                        what it holds the candidate to (and the usual mistake it catches)
=============================  ==============================================================================
``check_quantize_per_channel``  int8 values and one scale per output row, ``scale = max|row| / 127.5``
                               (torchao's rule), ``clamp(round(W / scale), -128, 127)`` (not a per-tensor or
                               per-column scale, not max / 127, not the signed max, not truncation, not a
                               missing clamp that wraps 128 to -128, not a ±127 clamp, not float values, not a
                               zero scale for an all-zero row, not W changed in place)
``check_distillation_loss``    ``alpha · T² · KL(teacher_T ‖ student_T) + (1 - alpha) · CE(student, labels)``,
                               batch mean (not without T², not KL the wrong way round, not an unsoftened
                               teacher, not a batch sum, not kl_div's element mean, not alpha swapped, not CE
                               on softened logits, not the soft cross-entropy); the teacher gets NO gradient
                               (its logits detached or computed under ``torch.no_grad()``) and the student gets
                               the reference's gradient (not a detached student, not a Python float)
=============================  ==============================================================================

Neither accepts an answer that calls the course's own implementation (``bigtut.compress``'s
``quantize_symmetric``, ``distillation_loss``; ``torch.quantize_per_channel``).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
import torch.nn.functional as F

from bigtut.checks.core import CheckFailure, _describe, checker_generator, guarded, passed
from bigtut.checks.explain import OWN_ANSWER, assert_close_or_hint, assert_does_not_use, assert_not_modified

__all__ = ["check_distillation_loss", "check_quantize_per_channel"]

#: a row whose largest magnitude is this maps exactly onto ±127.5 steps with a power-of-two scale (2**-8)
_EXTREME = 127.5 / 256
_EPS = torch.finfo(torch.float32).eps


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


def _scale_variants(W: torch.Tensor) -> dict[str, torch.Tensor]:
    """The scales ``(O, 1)`` of the usual wrong rules."""
    amax = W.abs().amax(dim=1, keepdim=True)  # (O, 1)
    return {
        "one scale for the whole matrix (per tensor); each output row needs its own, max|row| / 127.5":
            (W.abs().amax() / 127.5).clamp(min=_EPS).expand(W.shape[0], 1),
        "max|row| / 127 (the ±127 convention); this course uses torchao's max|row| / 127.5":
            (amax / 127).clamp(min=_EPS),
        "max|row| / 128; this course uses torchao's max|row| / 127.5": (amax / 128).clamp(min=_EPS),
        "max|row| / 255; the symmetric range is ±127.5 steps, so max|row| / 127.5": (amax / 255).clamp(min=_EPS),
        "the signed maximum of the row; take the largest magnitude, W.abs().amax(dim=1)":
            (W.amax(dim=1, keepdim=True) / 127.5).clamp(min=_EPS),
        "(max − min) / 255 is the asymmetric (zero-point) scale; this rule is symmetric, max|row| / 127.5":
            ((W.amax(dim=1, keepdim=True) - W.amin(dim=1, keepdim=True)) / 255).clamp(min=_EPS),
        "eps was added to the scale; it is a floor: .clamp(min=torch.finfo(torch.float32).eps)": amax / 127.5 + _EPS,
        "no floor at float32's eps: an all-zero row gets scale 0 (and 0 / 0 values)": amax / 127.5,
    }


def _power_of_two(scale: torch.Tensor) -> torch.Tensor:
    """True where ``scale`` is an exact power of two (then W / scale and W · (1 / scale) are both exact)."""
    return torch.frexp(scale.float()).mantissa.abs() == 0.5


def check_quantize_per_channel(candidate: Callable, seed: int | None = None) -> None:
    """``candidate(weight (O, K) float32) -> (values (O, K) int8, scale (O, 1))``: symmetric per-output-channel
    int8, as :func:`bigtut.compress.quantize_symmetric`: ``scale = max|row| / 127.5`` (at least float32's
    eps), ``values = clamp(round(W / scale), -128, 127)`` (round half to even, as ``torch.round``).

    Where ``W / scale`` lies within 0.001 of a half step (the largest entry of every row sits there), either
    neighbouring integer is accepted, so ``W / scale`` and ``W * (1 / scale)`` both pass — except where the
    scale is a power of two and ``W / scale`` is exactly ±127.5 (every way of dividing is exact there): then
    ``torch.round`` gives ±128, clamped to 127 and kept at -128.
    """
    from bigtut.compress import quantize_symmetric

    gen, seed = checker_generator(seed)
    name = "quantize_per_channel"
    if not callable(candidate):
        raise CheckFailure(f"{name}: expected a function, got {_describe(candidate)}")
    for description, weight in _weight_cases(gen):
        inputs = f"{description} (seed={seed})"
        expected = quantize_symmetric(weight)
        given = weight.clone()
        got = guarded(name, f"quantize_per_channel(W) for {inputs}", candidate, given)
        assert_not_modified(name, inputs, {"W": (weight, given)})
        if not isinstance(got, (tuple, list)) or len(got) != 2:
            raise CheckFailure(f"{name}: expected a pair (values, scale) for {inputs}, got {_describe(got)}")
        values, scale = got
        if not isinstance(values, torch.Tensor) or values.dtype != torch.int8:
            raise CheckFailure(f"{name}: values must be an int8 tensor (that is the 4x saving), got "
                               f"{_describe(values)} for {inputs}"
                               + ("\n  Hint: (values, scale) are swapped: return the int8 values first."
                                  if isinstance(scale, torch.Tensor) and scale.dtype == torch.int8 else ""))
        rows, K = weight.shape
        if isinstance(scale, torch.Tensor) and tuple(scale.shape) in ((rows,), (1, rows)) and rows != 1:
            raise CheckFailure(f"{name}: scale has shape {tuple(scale.shape)} for {inputs}, expected ({rows}, 1): one "
                               f"scale per output row, as a column (amax(dim=1, keepdim=True)) so W / scale "
                               f"broadcasts along each row")
        if isinstance(scale, torch.Tensor) and tuple(scale.shape) == (1, K):
            raise CheckFailure(f"{name}: scale has shape (1, {K}) for {inputs}, expected ({rows}, 1): that is one "
                               f"scale per input column (dim=0); per channel means per output row, amax(dim=1)")
        assert_close_or_hint(scale, expected.scale, atol=0.0, rtol=1e-6, inputs=inputs,
                             variants=partial(_scale_variants, weight),
                             what=f"{name} scale (O, 1) = max|row| / 127.5 (torchao's rule, not / 127; float32 eps "
                                  f"for a zero row)")
        if values.shape != expected.values.shape:
            raise CheckFailure(f"{name}: values have shape {tuple(values.shape)}, expected "
                               f"{tuple(expected.values.shape)} for {inputs}")
        steps = weight.double() / expected.scale.double()  # (O, K): the exact quotient W / scale
        fraction = steps.abs() - steps.abs().floor()  # (O, K)
        exact_half = (fraction == 0.5) & _power_of_two(expected.scale)  # (O, K): every route gives the same .5
        near_half = ((fraction - 0.5).abs() < 1e-3) & ~exact_half  # (O, K): either neighbour is fine
        allowed = (values.double() - steps).abs() <= 0.5 + 1e-3  # (O, K)
        wrong = (values != expected.values) & ~(near_half & allowed)  # (O, K)
        if bool(wrong.any()):
            o, k = (int(i) for i in wrong.nonzero()[0])
            q = weight * (1 / expected.scale)  # (O, K) float32, as the reference divides
            hints = {
                "the int8 cast truncates toward zero: torch.round first": torch.clamp(q, -128, 127).to(torch.int8),
                "floor rounds down: use torch.round (to the nearest integer)": torch.clamp(q.floor(), -128, 127),
                "ceil rounds up: use torch.round (to the nearest integer)": torch.clamp(q.ceil(), -128, 127),
                "no clamp before the cast: round(127.5) = 128 does not fit int8 and wraps to -128":
                    torch.round(q).to(torch.int8),
            }
            tolerated = near_half & allowed  # (O, K)
            hint = next((f"\n  Hint: {label}." for label, variant in hints.items()
                         if bool(((variant.to(torch.int8) == values) | tolerated).all())), "")
            if not hint and bool(exact_half[o, k]) and steps[o, k].item() < 0:
                hint = ("\n  Hint: W / scale is exactly -127.5 here (the scale is a power of two, so no rounding "
                        "error): torch.round gives -128 (half to even), which int8 holds — clamp to [-128, 127], not "
                        "±127, and round with torch.round, not floor(x + 0.5).")
            raise CheckFailure(
                f"{name}: values differ for {inputs}.\n"
                f"  at row {o}, column {k}: W = {weight[o, k].item():.6g}, W / scale = {steps[o, k].item():.4f}, "
                f"expected {expected.values[o, k].item()}, got {values[o, k].item()}\n"
                f"  (round to the nearest integer, then clamp to [-128, 127] before casting: int8(128) wraps to -128)"
                f"{hint}")
    assert_does_not_use(name, candidate, {
        "quantize_symmetric": OWN_ANSWER.format("bigtut.compress's quantize_symmetric"),
        "_quantize_rows": OWN_ANSWER.format("bigtut.compress's _quantize_rows"),
        "quantize_per_channel": OWN_ANSWER.format("torch.quantize_per_channel")})
    passed(name, "int8 values and per-row scales on 4 weights (uneven rows, the ±127.5 extremes, a zero row)")


def _soft_variants(s: torch.Tensor, t: torch.Tensor, y: torch.Tensor, T: float, alpha: float
                   ) -> dict[str, torch.Tensor]:
    """The losses of the usual wrong formulas on the same input (float64, no gradient)."""
    log_q, log_p = F.log_softmax(s / T, -1), F.log_softmax(t / T, -1)  # (B, C) student, teacher (softened)
    p, q = log_p.exp(), log_q.exp()
    kl = (p * (log_p - log_q)).sum(-1)  # (B,)
    ce = F.cross_entropy(s, y)
    C = s.shape[1]

    def mix(soft: torch.Tensor, hard: torch.Tensor = ce, a: float = alpha) -> torch.Tensor:
        return a * soft + (1 - a) * hard

    return {
        "the T² factor is missing: alpha · T² · KL keeps the soft gradients' size for every T": mix(kl.mean()),
        "T, not T²: the softened KL's gradient shrinks by 1/T², so multiply by T²": mix(T * kl.mean()),
        "divided by T²; multiply by it": mix(kl.mean() / T**2),
        "KL(student ‖ teacher): the teacher's distribution comes first, Σ p_teacher (log p_teacher − log q_student)":
            mix(T**2 * (q * (log_q - log_p)).sum(-1).mean()),
        "the teacher was not softened: divide its logits by T too":
            mix(T**2 * (F.softmax(t, -1) * (F.log_softmax(t, -1) - log_q)).sum(-1).mean()),
        "the student was not softened in the KL: divide its logits by T too":
            mix(T**2 * (p * (log_p - F.log_softmax(s, -1))).sum(-1).mean()),
        "summed over the batch; average both terms over it (reduction='batchmean' for F.kl_div)":
            mix(T**2 * kl.sum(), F.cross_entropy(s, y, reduction="sum")),
        "the KL was summed over the batch; average it (reduction='batchmean' for F.kl_div)": mix(T**2 * kl.sum()),
        "F.kl_div's default reduction='mean' divides by B·C; use reduction='batchmean' (divides by B)":
            mix(T**2 * kl.mean() / C),
        "alpha and 1 − alpha are swapped: alpha weighs the soft (teacher) term": mix(T**2 * kl.mean(), a=1 - alpha),
        "the cross-entropy was taken on the softened logits s / T; the hard-label term uses the raw logits":
            mix(T**2 * kl.mean(), F.cross_entropy(s / T, y)),
        "the soft cross-entropy −Σ p log q is not the KL: subtract the teacher's entropy, Σ p (log p − log q)":
            mix(T**2 * (-(p * log_q).sum(-1)).mean()),
        "F.kl_div was given probabilities; its first argument must be the student's log-probabilities":
            mix(T**2 * (p * (log_p - q)).sum(-1).mean()),
        "the soft term alone: add (1 − alpha) · cross_entropy(student_logits, labels)": T**2 * kl.mean(),
    }


def _gradient_variants(student: torch.Tensor, labels: torch.Tensor, alpha: float) -> dict[str, torch.Tensor]:
    """The student gradient ``(B, C)`` of a loss whose soft term gave the student none."""
    hard = student.clone().requires_grad_(True)
    ((1 - alpha) * F.cross_entropy(hard, labels)).backward()
    return {"only the cross-entropy's gradient reached the student: the student logits were detached (or put under "
            "torch.no_grad()) in the soft term — detach the teacher, not the student": hard.grad}


def check_distillation_loss(candidate: Callable, seed: int | None = None) -> None:
    """``candidate(student_logits (B, C), teacher_logits (B, C), labels (B,), temperature, alpha) -> scalar``:
    ``alpha * T² * KL(softmax(teacher / T) ‖ softmax(student / T)) + (1 - alpha) * CE(student, labels)``,
    both averaged over the batch, as :func:`bigtut.compress.distillation_loss`.

    The logits handed to the candidate come out of a graph, as a model's would: the loss must carry the
    reference's gradient back to the student, and none to the teacher (its logits are a fixed target:
    ``.detach()`` them or compute them under ``torch.no_grad()``).
    """
    from bigtut.compress import distillation_loss

    gen, seed = checker_generator(seed)
    name = "distillation_loss"
    if not callable(candidate):
        raise CheckFailure(f"{name}: expected a function, got {_describe(candidate)}")
    for B, C, T, alpha in ((4, 3, 2.0, 0.5), (6, 5, 4.0, 0.3), (3, 4, 0.5, 0.8), (5, 2, 3.0, 1.0)):
        student = 2 * torch.randn(B, C, generator=gen, dtype=torch.float64)  # (B, C)
        teacher = 3 * torch.randn(B, C, generator=gen, dtype=torch.float64)  # (B, C)
        labels = torch.randint(0, C, (B,), generator=gen)  # (B,)
        inputs = f"B={B} rows of C={C} random logits, temperature={T}, alpha={alpha} (seed={seed})"
        expected = distillation_loss(student, teacher, labels, temperature=T, alpha=alpha)  # ()
        reference_student = student.clone().requires_grad_(True)
        distillation_loss(reference_student, teacher, labels, temperature=T, alpha=alpha).backward()
        student_weights = student.clone().requires_grad_(True)  # stand-ins for the two models' parameters
        teacher_weights = teacher.clone().requires_grad_(True)
        student_logits, teacher_logits = student_weights * 1.0, teacher_weights * 1.0  # (B, C) each, in a graph
        given_labels = labels.clone()
        got = guarded(name, f"distillation_loss(student_logits, teacher_logits, labels, {T}, {alpha}) for {inputs}",
                      candidate, student_logits, teacher_logits, given_labels, T, alpha)
        assert_not_modified(name, inputs, {"student_logits": (student, student_logits),
                                           "teacher_logits": (teacher, teacher_logits),
                                           "labels": (labels, given_labels)})
        if isinstance(got, torch.Tensor) and got.shape == (B,):
            raise CheckFailure(f"{name}: got one loss per example, shape ({B},), for {inputs}; expected a scalar: "
                               f"average both terms over the batch")
        value = torch.tensor(got, dtype=torch.float64) if isinstance(got, (int, float)) else got  # a Python float
        assert_close_or_hint(value, expected, what=name, atol=1e-10, rtol=1e-8, inputs=inputs,
                             variants=partial(_soft_variants, student, teacher, labels, T, alpha))
        if not isinstance(got, torch.Tensor) or got.grad_fn is None:
            raise CheckFailure(f"{name}: the loss carries no gradient for {inputs} (got {_describe(got)}): the "
                               f"student learns from it — return a tensor built from student_logits (no .item(), "
                               f"no float(), no torch.tensor(...), no torch.no_grad() around the student's terms)")
        guarded(name, f"loss.backward() on the returned loss for {inputs}", got.backward)
        if teacher_weights.grad is not None and bool(teacher_weights.grad.ne(0).any()):
            raise CheckFailure(
                f"{name}: gradient flows into the teacher for {inputs} (its largest component "
                f"{teacher_weights.grad.abs().max().item():.3g}); the teacher is a fixed target — use "
                f"teacher_logits.detach(), or compute its softened distribution under torch.no_grad()")
        if student_weights.grad is None:
            raise CheckFailure(f"{name}: no gradient reaches the student logits for {inputs}: do not detach them")
        assert_close_or_hint(student_weights.grad, reference_student.grad, atol=1e-10, rtol=1e-8, inputs=inputs,
                             what=f"{name}: the gradient with respect to the student logits",
                             variants=partial(_gradient_variants, student, labels, alpha))
    assert_does_not_use(name, candidate, {f: OWN_ANSWER.format(f"bigtut.compress's {f}")
                                          for f in ("distillation_loss", "soft_target_loss")})
    passed(name, "4 random batches, temperatures 0.5–4, alpha 0.3–1")
