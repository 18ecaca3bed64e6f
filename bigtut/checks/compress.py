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
``check_global_pruning``       ``prune_global(model, sparsity) -> (pruned, masks)`` = ``prune_magnitude(scope=
                               "global")``: one ranking of the |w| of every Linear weight not tied to an
                               embedding, exactly ``round(sparsity · n)`` dropped, ties by position (not
                               per-layer thresholds, not biases ranked or zeroed, not the largest or the signed
                               weights, not k ± 1, ``int()``, ``ceil`` or half up, not ties dropped or kept
                               together or in another layer order, not the tied ``lm_head`` pruned or an untied
                               one skipped by name, not the caller's model changed, not masks left unapplied)
``check_distillation_step``    one step of the student on ``distillation_loss`` = a reference SGD step (same
                               batch and dropout draws): gradients cleared first (a stale ``.grad`` is planted),
                               the teacher once, in eval mode, under ``torch.no_grad()``, the student once in
                               train mode, backward, then ``optimizer.step()`` (not a teacher with dropout or a
                               graph, not gradient into the teacher, not a forgotten or late ``zero_grad``, not
                               swapped logits or a detached student, not a step before backward, not the loss's
                               default temperature and alpha, not a student in eval mode or left in it)
=============================  ==============================================================================

None accepts an answer that calls the course's own implementation (``bigtut.compress``'s
``quantize_symmetric``, ``distillation_loss`` in the loss exercise, ``prune_magnitude``, ``magnitude_masks``;
``torch.quantize_per_channel``, ``torch.nn.utils.prune.global_unstructured``); the distillation step is meant to
call ``distillation_loss``.
"""

from __future__ import annotations

import copy
import math
from collections import OrderedDict
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from bigtut.checks.core import (
    CheckFailure,
    _describe,
    assert_close,
    assert_close_or_hint,
    assert_unchanged,
    checker_generator,
    guarded,
    hint_for,
    passed,
)
from bigtut.checks.forbidden import OWN_ANSWER, assert_does_not_use

__all__ = ["check_distillation_loss", "check_distillation_step", "check_global_pruning", "check_quantize_per_channel"]

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
        assert_unchanged(name, inputs, {"W": (weight, given)})
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
        assert_unchanged(name, inputs, {"student_logits": (student, student_logits),
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


# ------------------------------------------------------------------------------------------ global pruning
def _randomised(model: nn.Module, gen: torch.Generator, *, grid: bool = False) -> nn.Module:
    """``model`` (float64) with fresh weights from ``gen``: every Linear weight at its own scale (so layers differ in
    size and a per-layer threshold differs from the global one), small biases, small embeddings. ``grid``: Linear
    weights ±k/4, k = 1..4, so many magnitudes tie at the threshold."""
    model = model.double()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Embedding):
                module.weight.copy_(0.05 * torch.randn(module.weight.shape, generator=gen, dtype=torch.float64))
            elif isinstance(module, nn.Linear):
                shape = module.weight.shape
                if grid:
                    levels = torch.randint(1, 5, shape, generator=gen).double() / 4
                    signs = torch.randint(0, 2, shape, generator=gen).double() * 2 - 1
                    module.weight.copy_(levels * signs)
                else:
                    size = float(torch.empty(()).uniform_(-2.0, 1.0, generator=gen).exp())  # 0.14 to 2.7
                    module.weight.copy_(size * torch.randn(shape, generator=gen, dtype=torch.float64))
                if module.bias is not None:
                    module.bias.copy_(0.05 * torch.randn(module.bias.shape, generator=gen, dtype=torch.float64))
    return model


def _pruning_cases(gen: torch.Generator) -> list[tuple[str, nn.Module, float]]:
    """(description, model, sparsity): a GPT with its output layer tied to the token embedding, one untied (its
    ``lm_head`` is then an ordinary layer), an MLP whose magnitudes tie at the threshold (its layers named so that
    alphabetical order is not model order, and sparsity · n = 62.5, which round() takes to the even 62), and
    sparsity 0."""
    from bigtut.gpt import GPT, GPTConfig

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=gen)))
        tied = GPT(GPTConfig(vocab_size=13, block_size=8, n_layer=1, n_head=2, d_model=8))
        untied = GPT(GPTConfig(vocab_size=13, block_size=8, n_layer=1, n_head=2, d_model=8, tie_weights=False))
        ties = nn.Sequential(OrderedDict(up=nn.Linear(6, 10), act=nn.ReLU(), down=nn.Linear(10, 4)))
        plain = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3, bias=False))
    return [("a 1-layer GPT whose lm_head is tied to the token embedding, sparsity 0.5", _randomised(tied, gen), 0.5),
            ("a 1-layer GPT with an untied lm_head, sparsity 0.3 (0.3 · 872 = 261.6 weights)",
             _randomised(untied, gen), 0.3),
            ("an MLP (layers 'up', 'down') whose weights are ±0.25, ±0.5, ±0.75, ±1 (many magnitudes tie), sparsity "
             "0.625 (0.625 · 100 = 62.5 weights)", _randomised(ties, gen, grid=True), 0.625),
            ("an MLP at sparsity 0.0 (nothing to drop)", _randomised(plain, gen), 0.0)]


def _drop(scores: torch.Tensor, n_drop: int) -> torch.Tensor:
    """Keep mask ``(n,)`` float64 without the ``n_drop`` smallest ``scores`` (ties by position)."""
    keep = torch.ones(scores.numel(), dtype=torch.float64)
    keep[torch.sort(scores, stable=True).indices[:max(n_drop, 0)]] = 0.0
    return keep


def _pruning_variants(model: nn.Module, names: list[str], sparsity: float) -> dict[str, torch.Tensor]:
    """The flat keep masks ``(n,)`` (weights of ``names`` concatenated in order) of the usual wrong rankings."""
    from bigtut.compress import magnitude_masks
    from bigtut.compress.common import tied_to_embedding

    layers = [model.get_submodule(name) for name in names]
    weights = [layer.weight.detach().double() for layer in layers]
    flat = torch.cat([w.abs().flatten() for w in weights])  # (n,)
    n = flat.numel()
    n_drop = round(sparsity * n)
    ordered = torch.sort(flat).values  # (n,)
    exact, variants = sparsity * n, {}
    if int(exact + 0.5) != n_drop:  # a half: round() goes to the even count, as torch.nn.utils.prune's
        variants[f"{exact:g} weights rounded up (math.ceil or int(x + 0.5)): the count is round(sparsity · n), which "
                 f"takes a half to the even number, round({exact:g}) = {n_drop}"] = _drop(flat, int(exact + 0.5))
    elif math.ceil(exact) != n_drop:
        variants["math.ceil(sparsity · n): the count is round(sparsity · n)"] = _drop(flat, math.ceil(exact))
    variants |= {
        "per-layer thresholds: each layer lost round(sparsity · its size); global pruning ranks all the layers' "
        "|w| together, with one threshold": torch.cat([m.flatten() for m in magnitude_masks(
            dict(zip(names, weights)), sparsity, scope="layer").values()]).double(),
        "the largest magnitudes were dropped: prune the SMALLEST |w|": _drop(-flat, n_drop),
        "the signed values were ranked (the most negative went first): rank |w|": _drop(
            torch.cat([w.flatten() for w in weights]), n_drop),
    }
    if int(sparsity * n) != n_drop:
        variants["int(sparsity · n) truncates: the count is round(sparsity · n), as torch.nn.utils.prune"] = _drop(
            flat, int(sparsity * n))
    threshold = ordered[n_drop - 1]  # index -1 when nothing is to drop: the largest magnitude
    variants["|w| <= threshold drops every weight tied with it (and with n_drop = 0 the index n_drop − 1 = −1 is the "
             "largest |w|, so everything goes): drop exactly round(sparsity · n) weights, ranked by a stable sort"] = (
        flat > threshold).double()
    if n_drop < n:
        variants["|w| < threshold keeps every weight tied with it: drop exactly round(sparsity · n) weights, ranked "
                 "by a stable sort, ties in model order"] = (flat >= ordered[n_drop]).double()
    variants["one weight too many went (k + 1: the threshold sort index is n_drop − 1, keep |w| > it)"] = _drop(
        flat, n_drop + 1)
    variants["one weight too few went (k − 1)"] = _drop(flat, n_drop - 1)
    variants["sparsity is the fraction of weights to REMOVE: drop round(sparsity · n), keep the rest"] = _drop(
        flat, n - n_drop)
    biases = [torch.cat([w.flatten(), (layer.bias.detach().double().flatten() if layer.bias is not None
                                       else w.new_zeros(0))]) for w, layer in zip(weights, layers)]
    is_weight = torch.cat([torch.arange(b.numel()) < w.numel() for b, w in zip(biases, weights)])  # (n + biases,)
    with_biases = torch.cat(biases).abs()
    for count, counted in ((round(sparsity * with_biases.numel()), " (and counted in n)"), (n_drop, "")):
        variants[f"the biases were ranked with the weights{counted}: rank the Linear weights alone (the biases stay "
                 f"as they are)"] = _drop(with_biases, count)[is_weight]
    tied = sorted(tied_to_embedding(model))
    if tied:
        everything = torch.cat([flat] + [model.get_submodule(t).weight.detach().double().abs().flatten()
                                         for t in tied])
        variants["the tied lm_head was ranked too: its weight IS the token embedding, so skip it"] = _drop(
            everything, round(sparsity * everything.numel()))[:n]
    return variants


def _module_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every parameter and buffer by name (tied ones under each name), detached copies."""
    return {name: t.detach().clone() for name, t in model.state_dict(keep_vars=True).items()}


def check_global_pruning(candidate: Callable, seed: int | None = None) -> None:
    """``candidate(model, sparsity) -> (pruned, masks)``: global magnitude pruning, as
    :func:`bigtut.compress.prune_magnitude` with ``scope="global"`` (then :func:`make_pruning_permanent`).

    ``masks`` maps the name of every ``nn.Linear`` of ``model`` (as ``model.named_modules()`` names it) whose
    weight is not an ``nn.Embedding``'s (a tied output layer is skipped) to a 0/1 tensor of the weight's shape
    (1 = keep): exactly ``round(sparsity · n)`` of the ``n`` weights of all those layers go, those of smallest
    ``|w|`` ranked together, ties broken by position (layers in model order, each flattened row by row).
    ``pruned`` is a copy of ``model`` whose weights are multiplied by the masks, biases and everything else
    unchanged; ``model`` itself is left as it was.
    """
    from bigtut.compress import make_pruning_permanent, prune_magnitude
    from bigtut.compress.common import linear_layers, tied_to_embedding

    gen, seed = checker_generator(seed)
    name = "prune_global"
    if not callable(candidate):
        raise CheckFailure(f"{name}: expected a function, got {_describe(candidate)}")
    for description, model, sparsity in _pruning_cases(gen):
        inputs = f"{description} (seed={seed})"
        names = list(linear_layers(model))
        with torch.random.fork_rng(devices=[]):  # the new layers' initialisation draws from the global generator
            reference = prune_magnitude(model, sparsity, scope="global")
            expected_masks = {n: reference.get_submodule(n).mask.clone() for n in names}
            expected_state = _module_state(make_pruning_permanent(reference))
        before = _module_state(model)
        given = copy.deepcopy(model)
        got = guarded(name, f"prune_global(model, {sparsity}) for {inputs}", candidate, given, sparsity)
        if (isinstance(got, (tuple, list)) and len(got) == 2 and isinstance(got[0], Mapping)
                and isinstance(got[1], nn.Module)):
            raise CheckFailure(f"{name}: returned (masks, pruned) for {inputs}; return (pruned, masks)")
        if not (isinstance(got, (tuple, list)) and len(got) == 2 and isinstance(got[0], nn.Module)
                and isinstance(got[1], Mapping)):
            raise CheckFailure(f"{name}: expected a pair (pruned model, dict of masks) for {inputs}, got "
                               f"{_describe(got)}")
        pruned, masks = got
        if pruned is given:
            raise CheckFailure(f"{name}: returned the very model it was given, pruned in place, for {inputs}: prune "
                               f"a copy (copy.deepcopy(model)) and leave the caller's model as it was")
        changed = [n for n, t in _module_state(given).items() if not torch.equal(t, before[n])]
        if changed:
            raise CheckFailure(f"{name}: changed the caller's model in place for {inputs} ({', '.join(changed[:3])}"
                               f"{', …' if len(changed) > 3 else ''}): prune a copy, copy.deepcopy(model), and apply "
                               f"the masks to the copy's weights only")
        _check_mask_names(name, inputs, model, names, masks, tied_to_embedding(model))
        flat = []
        for n in names:
            mask, weight = masks[n], model.get_submodule(n).weight
            if not isinstance(mask, torch.Tensor) or tuple(mask.shape) != tuple(weight.shape):
                raise CheckFailure(f"{name}: the mask of {n!r} must be a tensor of its weight's shape "
                                   f"{tuple(weight.shape)}, got {_describe(mask)} for {inputs}")
            values = mask.detach().to(torch.float64)
            if not bool(((values == 0) | (values == 1)).all()):
                raise CheckFailure(f"{name}: the mask of {n!r} holds values other than 0 and 1 ({_describe(mask)}) "
                                   f"for {inputs}: a mask is 1 where the weight stays, 0 where it goes (the pruned "
                                   f"weights are weight * mask)")
            flat.append(values.flatten())
        got_flat = torch.cat(flat)  # (n,)
        expected_flat = torch.cat([expected_masks[n].double().flatten() for n in names])  # (n,)
        if not torch.equal(got_flat, expected_flat):
            _mask_failure(name, inputs, model, names, sparsity, got_flat, expected_flat)
        _check_pruned_copy(name, inputs, pruned, expected_state, expected_masks)
    assert_does_not_use(name, candidate, {
        "prune_magnitude": OWN_ANSWER.format("bigtut.compress's prune_magnitude"),
        "magnitude_masks": OWN_ANSWER.format("bigtut.compress's magnitude_masks"),
        "global_unstructured": "the exercise is to write what torch.nn.utils.prune.global_unstructured does"})
    passed(name, "the masks and the pruned copy of 4 models (tied and untied GPT, tied magnitudes, sparsity 0)")


def _check_mask_names(name: str, inputs: str, model: nn.Module, names: list[str], masks: Mapping[str, Any],
                      tied: set[str]) -> None:
    """The masks must be keyed by exactly the prunable layers' names."""
    keys = list(masks)
    if set(keys) == set(names):
        return
    if {str(k).removesuffix(".weight") for k in keys} == set(names):
        raise CheckFailure(f"{name}: the masks are keyed by parameter names ({keys[0]!r}) for {inputs}; key them by "
                           f"the layer names model.named_modules() gives ({names[0]!r})")
    extra, missing = sorted(set(map(str, keys)) - set(names)), sorted(set(names) - set(map(str, keys)))
    if set(extra) & tied:
        raise CheckFailure(f"{name}: masked the tied layer {sorted(set(extra) & tied)} for {inputs}: its weight IS "
                           f"the token embedding (the same tensor), so pruning it would also prune the input lookup; "
                           f"skip every Linear whose weight is an nn.Embedding's weight")
    if "lm_head" in missing and "lm_head" not in tied:
        raise CheckFailure(f"{name}: no mask for 'lm_head' for {inputs}: here it is an ordinary Linear with its own "
                           f"weight (not tied): prune it too; skip a layer only when its weight is an embedding's "
                           f"(id(layer.weight) == id(embedding.weight)), not by its name")
    raise CheckFailure(f"{name}: expected masks for exactly the Linear layers {names} for {inputs}; missing "
                       f"{missing}, unexpected {extra}")


def _mask_failure(name: str, inputs: str, model: nn.Module, names: list[str], sparsity: float,
                  got: torch.Tensor, expected: torch.Tensor) -> None:
    """Raise the failure for wrong masks, naming the mistake when it is a known one."""
    flat = torch.cat([model.get_submodule(n).weight.detach().double().abs().flatten() for n in names])  # (n,)
    n, n_drop, dropped = flat.numel(), int((expected == 0).sum()), int((got == 0).sum())
    hint = hint_for(got, partial(_pruning_variants, model, names, sparsity), atol=0.0, rtol=0.0)
    if not hint and dropped == n_drop:
        differ = got != expected
        threshold = flat[expected == 0].max() if n_drop else None
        if threshold is not None and bool((flat[differ] == threshold).all()):
            hint = ("\n  Hint: ties at the threshold were broken in another order: the weights of equal |w| go in "
                    "model order (layers as named_modules() lists them, each flattened row by row), as a stable "
                    "sort of the concatenated |w| gives them (torch.sort(..., stable=True); topk does not promise it)")
    count = (f"dropped {dropped} of the n = {n} weights, expected exactly round({sparsity} · {n}) = {n_drop}"
             if dropped != n_drop else f"the right count ({n_drop} of {n}), but not the smallest |w|")
    first = int((got != expected).nonzero()[0])
    start = 0
    for layer in names:
        size = model.get_submodule(layer).weight.numel()
        if first < start + size:
            break
        start += size
    raise CheckFailure(f"{name}: wrong masks for {inputs}: {count}; first difference in {layer!r} at flat index "
                       f"{first - start} (|w| = {flat[first].item():.4g}): expected {expected[first].item():.0f}, got "
                       f"{got[first].item():.0f}{hint}")


def _check_pruned_copy(name: str, inputs: str, pruned: nn.Module, expected: dict[str, torch.Tensor],
                       masks: dict[str, torch.Tensor]) -> None:
    """The pruned copy holds ``weight * mask`` in the pruned layers and every other tensor unchanged."""
    state = _module_state(pruned)
    if set(state) != set(expected):
        raise CheckFailure(f"{name}: the pruned model's tensors are {sorted(set(state))[:4]}…, expected those of the "
                           f"model it was given ({sorted(expected)[:4]}…) for {inputs}: return a copy of the same "
                           f"model, its Linear weights multiplied by the masks")
    for key, value in expected.items():
        if state[key].shape == value.shape and torch.equal(state[key].double(), value.double()):
            continue
        layer, _, kind = key.rpartition(".")
        if kind == "bias":
            detail = "a bias changed: magnitude pruning zeroes weights only; the biases stay as they are"
        elif layer in masks:
            detail = f"the weight is not weight * mask (the mask of {layer!r} applied to the given weight)"
        else:
            detail = ("a tensor that is not a prunable Linear weight changed (a tied lm_head pruned also prunes the "
                      "token embedding)")
        raise CheckFailure(f"{name}: the pruned model's {key!r} differs for {inputs}: {detail}")


# ------------------------------------------------------------------------------------- one distillation step
_STEP_LR = 0.5  # plain SGD: the step is linear in the gradient, so every wrong gradient shows in the weights


def _distillation_models(gen: torch.Generator, D: int, C: int) -> tuple[nn.Module, nn.Module]:
    """(teacher, student): float64 MLPs ``(B, D) -> (B, C)``, both with dropout (the teacher's must be off while it
    teaches, the student's on while it learns); the teacher is confident (large logits)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=gen)))
        teacher = nn.Sequential(nn.Linear(D, 16), nn.Tanh(), nn.Dropout(0.5), nn.Linear(16, C)).double()
        student = nn.Sequential(nn.Linear(D, 8), nn.Tanh(), nn.Dropout(0.25), nn.Linear(8, C)).double()
    with torch.no_grad():
        teacher[3].weight.mul_(4.0)
    return teacher, student


def _reference_step(student: nn.Module, teacher: nn.Module, x: torch.Tensor, labels: torch.Tensor, T: float,
                    alpha: float, dropout_seed: int, stale: list[torch.Tensor], *, zero_grad: bool = True
                    ) -> tuple[float, torch.Tensor]:
    """One distillation step on ``student`` (changed in place), whose ``.grad`` holds ``stale`` before it: (the loss,
    the student's parameters flattened)."""
    from bigtut.compress import distillation_loss

    for p, g in zip(student.parameters(), stale):
        p.grad = g.clone()
    optimizer = torch.optim.SGD(student.parameters(), lr=_STEP_LR)
    student.train()
    teacher.eval()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(dropout_seed)
        if zero_grad:
            optimizer.zero_grad()
        with torch.no_grad():
            teacher_logits = teacher(x)  # (B, C)
        loss = distillation_loss(student(x), teacher_logits, labels, temperature=T, alpha=alpha)
        loss.backward()
        optimizer.step()
    return loss.item(), _flat_parameters(student)


def _flat_parameters(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().double().flatten() for p in model.parameters()])


def _record_forward(model: nn.Module, who: str, events: list[tuple]) -> None:
    """Append ``(who, training, output requires grad)`` to ``events`` at every forward of ``model``, and
    ``("backward", who)`` when a gradient reaches that output."""
    def hook(module: nn.Module, args: Any, output: Any) -> None:
        grad = isinstance(output, torch.Tensor) and output.requires_grad
        events.append((who, any(m.training for m in module.modules()), grad))
        if grad:
            output.register_hook(lambda g: events.append(("backward", who)))

    model.register_forward_hook(hook)


def check_distillation_step(candidate: Callable, seed: int | None = None) -> None:
    """``candidate(student, teacher, optimizer, x, labels, temperature, alpha) -> loss``: one training step of
    the student on :func:`bigtut.compress.distillation_loss`, equal to the reference step: the gradients cleared
    first (the checker leaves a stale one in ``.grad``), the teacher in eval mode (no dropout; it is handed in
    train mode) and under ``torch.no_grad()`` (no graph, no gradient), the student in train mode (once handed in eval
    mode), one forward each, the loss with the given temperature and alpha, backward, ``optimizer.step()``; it
    returns the loss (a number or a 0-d tensor; float32 is read to float32's precision).

    The student's weights after the call must equal the reference step's (same optimizer, batch and dropout
    draws); the teacher's must be unchanged and get no gradient.
    """
    gen, seed = checker_generator(seed)
    name = "distillation_step"
    if not callable(candidate):
        raise CheckFailure(f"{name}: expected a function, got {_describe(candidate)}")
    cases = ((6, 5, 4, 4.0, 0.7, True), (5, 3, 3, 2.5, 0.3, False), (8, 4, 5, 1.5, 0.9, True))
    for B, D, C, T, alpha, student_training in cases:
        handed = "" if student_training else ", the student handed in eval mode (as after an evaluation)"
        inputs = (f"a batch of B={B} inputs of D={D} features, C={C} classes, temperature={T}, alpha={alpha}{handed} "
                  f"(seed={seed})")
        teacher, student = _distillation_models(gen, D, C)
        x = torch.randn(B, D, generator=gen, dtype=torch.float64)  # (B, D)
        labels = torch.randint(0, C, (B,), generator=gen)  # (B,)
        dropout_seed = int(torch.randint(0, 2**31, (1,), generator=gen))
        stale = [0.5 * torch.randn(p.shape, generator=gen, dtype=torch.float64) for p in student.parameters()]
        step = partial(_reference_step, x=x, labels=labels, dropout_seed=dropout_seed, stale=stale)
        expected_loss, expected = step(copy.deepcopy(student), copy.deepcopy(teacher), T=T, alpha=alpha)
        given_student, given_teacher = copy.deepcopy(student), copy.deepcopy(teacher)
        for p, g in zip(given_student.parameters(), stale):
            p.grad = g.clone()  # what a previous step left behind
        given_student.train(student_training)  # once in eval mode: the step must switch the student's dropout on
        given_teacher.train()  # as a model comes out of training: the step must switch its dropout off
        events: list[tuple] = []
        _record_forward(given_teacher, "teacher", events)
        _record_forward(given_student, "student", events)
        optimizer = torch.optim.SGD(given_student.parameters(), lr=_STEP_LR)
        optimizer.step = _recording_step(optimizer.step, events)
        given_x, given_labels = x.clone(), labels.clone()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(dropout_seed)
            try:
                got = guarded(name, f"distillation_step(student, teacher, optimizer, x, labels, {T}, {alpha}) for "
                              f"{inputs}", candidate, given_student, given_teacher, optimizer, given_x, given_labels,
                              T, alpha)
            except CheckFailure as failure:
                if "does not require grad" not in str(failure):
                    raise
                raise CheckFailure(
                    f"{failure}\n  Hint: the loss reached no parameter of the student: its logits were detached "
                    f"(or computed under torch.no_grad()), or the two logits are swapped — the call is "
                    f"distillation_loss(student_logits, teacher_logits, labels, temperature=…, alpha=…)") from None
        assert_unchanged(name, inputs, {"x": (x, given_x), "labels": (labels, given_labels)})
        _check_step_events(name, inputs, events, given_teacher, _flat_parameters(teacher))
        on_copies = partial(_step_on_copies, step, student, teacher)
        variants = {
            "the step added the gradient left in .grad before the call: clear it first, optimizer.zero_grad(), "
            "before backward": partial(on_copies, T=T, alpha=alpha, zero_grad=False),
            "distillation_loss's defaults (temperature=2.0, alpha=0.5) were used: pass the step's temperature= and "
            "alpha=": partial(on_copies, T=2.0, alpha=0.5),
            "the weights did not move: optimizer.step() missing, or the gradient cleared between backward and step":
                _flat_parameters(student),
        }
        assert_close_or_hint(_flat_parameters(given_student), expected, atol=1e-10, rtol=1e-8, variants=variants,
                             inputs=inputs, what=f"{name}: the student's parameters after the step (flattened)")
        if got is None:
            raise CheckFailure(f"{name}: returned None for {inputs}: return the step's loss (loss.item())")
        if isinstance(got, (int, float)) and not isinstance(got, bool):
            got = torch.tensor(float(got), dtype=torch.float64)  # loss.item(): a Python float is a float64
        single = isinstance(got, torch.Tensor) and got.dtype == torch.float32  # a loss reported in float32: harmless
        assert_close(got.detach() if isinstance(got, torch.Tensor) else got,
                     torch.tensor(expected_loss, dtype=torch.float64), atol=1e-6 if single else 1e-10,
                     rtol=1e-6 if single else 1e-8, inputs=inputs,
                     what=f"{name}: the returned loss (the distillation loss of this batch, before the step)")
    passed(name, "= one reference step on 3 batches (teacher in eval mode under no_grad, zero_grad, backward, step)")


def _step_on_copies(step: Callable, student: nn.Module, teacher: nn.Module, **kwargs: Any) -> torch.Tensor:
    """The student's flattened parameters after ``step`` on copies of the two models."""
    return step(copy.deepcopy(student), copy.deepcopy(teacher), **kwargs)[1]


def _recording_step(step: Callable, events: list[tuple]) -> Callable:
    """``optimizer.step``, appending ``("step",)`` to ``events`` at every call."""
    def recording_step(*args: Any, **kwargs: Any) -> Any:
        events.append(("step",))
        return step(*args, **kwargs)

    return recording_step


def _check_step_events(name: str, inputs: str, events: list[tuple], teacher: nn.Module,
                       teacher_before: torch.Tensor) -> None:
    """Name what the step did wrong in its order of calls, or with the teacher."""
    teacher_calls = [e for e in events if e[0] == "teacher"]
    student_calls = [e for e in events if e[0] == "student"]
    if len(teacher_calls) != 1:
        raise CheckFailure(f"{name}: the teacher ran {len(teacher_calls)} times for {inputs}; it must run once: its "
                           f"logits on the batch are the soft targets")
    grads = [p.grad for p in teacher.parameters() if p.grad is not None and bool(p.grad.ne(0).any())]
    if grads:
        raise CheckFailure(f"{name}: gradient reached the teacher's parameters for {inputs}: the teacher is a fixed "
                           f"target — run it under torch.no_grad() (and check the order of the logits: "
                           f"distillation_loss(student_logits, teacher_logits, …))")
    if teacher_calls[0][1]:
        raise CheckFailure(f"{name}: the teacher ran in train mode for {inputs}: its dropout was on, so its soft "
                           f"targets were noisy — call teacher.eval() before its forward")
    if teacher_calls[0][2]:
        raise CheckFailure(f"{name}: the teacher's forward built a graph for {inputs} (its logits require grad): run "
                           f"it under torch.no_grad() — that graph is never used, and it costs memory and time")
    if not torch.equal(_flat_parameters(teacher), teacher_before):
        raise CheckFailure(f"{name}: the teacher's weights changed for {inputs}: only the student learns")
    if len(student_calls) != 1:
        raise CheckFailure(f"{name}: the student ran {len(student_calls)} times for {inputs}; one forward per step")
    if not student_calls[0][1]:
        raise CheckFailure(f"{name}: the student ran in eval mode for {inputs}: it is the model being trained, so "
                           f"its dropout must be on — call student.train() (it may come in eval mode) and .eval() on "
                           f"the teacher only")
    order = [e[0] for e in events if e[0] in ("backward", "step")]
    if "backward" not in order:
        raise CheckFailure(f"{name}: no gradient reached the student's logits for {inputs}: call loss.backward() on "
                           f"the distillation loss of student(x) (not detached)")
    if order.count("step") != 1:
        raise CheckFailure(f"{name}: optimizer.step() was called {order.count('step')} times for {inputs}; once, "
                           f"after loss.backward()")
    if order.index("step") < order.index("backward"):
        raise CheckFailure(f"{name}: optimizer.step() came before loss.backward() for {inputs}: the step used the "
                           f"old gradient; zero_grad, forward, loss, backward, then step")
