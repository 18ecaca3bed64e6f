"""The chapter-10 checkers pass the right answers on seeds 0–2 and catch the usual wrong ones, each with a message
naming the mistake."""

import contextlib
import copy
import math
import warnings

import pytest
import torch
import torch.nn.functional as F
from checker_cases import assert_fails_naming, assert_passes_on_seeds

from bigtut.checks import CheckFailure
from bigtut.checks.compress import (
    check_distillation_loss,
    check_distillation_step,
    check_global_pruning,
    check_quantize_per_channel,
)
from bigtut.compress import distillation_loss


# ------------------------------------------------------------------------- right answers (the notebook's solutions)
def quantize_per_channel(W):
    scale = (W.abs().amax(dim=1, keepdim=True) / 127.5).clamp(min=torch.finfo(torch.float32).eps)  # (O, 1)
    values = torch.clamp(torch.round(W / scale), -128, 127).to(torch.int8)  # (O, K)
    return values, scale


def distillation_loss_exercise(student_logits, teacher_logits, labels, T, alpha):
    log_q = F.log_softmax(student_logits / T, dim=-1)  # (B, C) student, softened
    p = F.softmax(teacher_logits.detach() / T, dim=-1)  # (B, C) teacher, softened
    kl = (p * (p.log() - log_q)).sum(-1).mean()
    return alpha * T * T * kl + (1 - alpha) * F.cross_entropy(student_logits, labels)


def prune_global(model, sparsity):
    tables = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.Embedding)}
    layers = {name: m for name, m in model.named_modules()
              if isinstance(m, torch.nn.Linear) and id(m.weight) not in tables}  # not a tied output layer
    magnitudes = torch.cat([m.weight.detach().abs().flatten() for m in layers.values()])  # (n,) all layers together
    n_drop = round(sparsity * magnitudes.numel())
    keep = torch.ones_like(magnitudes)
    keep[torch.sort(magnitudes, stable=True).indices[:n_drop]] = 0  # the n_drop smallest; ties in model order
    pruned, masks, start = copy.deepcopy(model), {}, 0
    for name, layer in layers.items():
        masks[name] = keep[start:start + layer.weight.numel()].reshape(layer.weight.shape)  # (O, K)
        start += layer.weight.numel()
        with torch.no_grad():
            pruned.get_submodule(name).weight.mul_(masks[name])
    return pruned, masks


def distillation_step(student, teacher, optimizer, x, labels, temperature, alpha):
    teacher.eval()  # no dropout in the soft targets
    student.train()
    optimizer.zero_grad()
    with torch.no_grad():  # the teacher is a fixed target: no graph, no gradient
        teacher_logits = teacher(x)  # (B, C)
    loss = distillation_loss(student(x), teacher_logits, labels, temperature=temperature, alpha=alpha)
    loss.backward()
    optimizer.step()
    return loss.item()


# other right answers
def prune_global_bool_masks(model, sparsity):  # bool masks, layers found through their parameters, torch.where
    embeddings = [m.weight for m in model.modules() if isinstance(m, torch.nn.Embedding)]
    names = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)
             and not any(m.weight is e for e in embeddings)]
    weights = [model.get_submodule(n).weight.detach() for n in names]
    flat = torch.cat([w.abs().reshape(-1) for w in weights])
    order = torch.argsort(flat, stable=True)
    keep = torch.ones(flat.numel(), dtype=torch.bool)
    keep[order[:round(sparsity * flat.numel())]] = False
    masks = dict(zip(names, (k.view_as(w) for k, w in zip(keep.split([w.numel() for w in weights]), weights))))
    pruned = copy.deepcopy(model)
    with torch.no_grad():
        for n, mask in masks.items():
            layer = pruned.get_submodule(n)
            layer.weight.copy_(torch.where(mask, layer.weight, torch.zeros_like(layer.weight)))
    return pruned, masks


def distillation_step_in_inference_mode(student, teacher, optimizer, x, labels, temperature, alpha):
    optimizer.zero_grad(set_to_none=False)
    teacher.eval()
    student.train(True)
    student_logits = student(x)  # the student first: the teacher in eval mode draws no dropout
    with torch.inference_mode():
        teacher_logits = teacher(x)
    loss = distillation_loss(student_logits, teacher_logits.clone(), labels, temperature=temperature, alpha=alpha)
    loss.backward()
    optimizer.step()
    return loss.detach()


def quantize_by_inverse(weight):  # W * (1 / scale), torchao's way: may round the half-step extremes differently
    scale = (weight.abs().amax(dim=1, keepdim=True) / 127.5).clamp(min=torch.finfo(torch.float32).eps)
    return torch.clamp(torch.round(weight * (1 / scale)), -128, 127).to(torch.int8), scale


def quantize_times_127_5_over_max(weight):  # (W · 127.5) / max: another association of the same quotient
    amax = weight.abs().amax(dim=1, keepdim=True)
    scale = (amax / 127.5).clamp(min=torch.finfo(torch.float32).eps)
    quotient = torch.where(amax > 0, weight * 127.5 / amax.clamp(min=1e-30), torch.zeros_like(weight))
    return torch.clamp(torch.round(quotient), -128, 127).to(torch.int8), scale


def distillation_with_kl_div_under_no_grad(student, teacher, labels, T, alpha):
    with torch.no_grad():
        log_p = F.log_softmax(teacher / T, -1)
    soft = F.kl_div(F.log_softmax(student / T, -1), log_p, log_target=True, reduction="batchmean")
    return alpha * T**2 * soft + (1 - alpha) * F.cross_entropy(student, labels)


RIGHT = [(check_quantize_per_channel, quantize_per_channel), (check_quantize_per_channel, quantize_by_inverse),
         (check_quantize_per_channel, quantize_times_127_5_over_max),
         (check_distillation_loss, distillation_loss_exercise),
         (check_distillation_loss, distillation_with_kl_div_under_no_grad),
         (check_global_pruning, prune_global), (check_global_pruning, prune_global_bool_masks),
         (check_distillation_step, distillation_step), (check_distillation_step, distillation_step_in_inference_mode)]


@pytest.mark.parametrize("checker, solution", RIGHT, ids=[f"{c.__name__}-{s.__name__}" for c, s in RIGHT])
def test_checkers_pass_the_right_answer_on_seeds_0_to_2(checker, solution, capsys):
    assert_passes_on_seeds(checker, solution, capsys)


def test_committed_solutions_print_the_committed_pass_lines(capsys):
    check_quantize_per_channel(quantize_per_channel, seed=0)
    check_distillation_loss(distillation_loss_exercise, seed=0)
    check_global_pruning(prune_global, seed=0)
    check_distillation_step(distillation_step, seed=0)
    assert capsys.readouterr().out.splitlines() == [
        "PASS quantize_per_channel: int8 values and per-row scales on 4 weights (uneven rows, the ±127.5 extremes, "
        "a zero row)",
        "PASS distillation_loss: 4 random batches, temperatures 0.5–4, alpha 0.3–1",
        "PASS prune_global: the masks and the pruned copy of 4 models (tied and untied GPT, tied magnitudes, "
        "sparsity 0)",
        "PASS distillation_step: = one reference step on 3 batches (teacher in eval mode under no_grad, zero_grad, "
        "backward, step)",
    ]


# ------------------------------------------------------------------------------------------- wrong answers
EPS = torch.finfo(torch.float32).eps


def stub(*args):
    raise NotImplementedError("Exercise: replace this line with your code")


def quantize_with(weight, scale, low=-128, high=127, rounding=torch.round):
    return torch.clamp(rounding(weight / scale), low, high).to(torch.int8), scale


def row_scale(weight, divisor=127.5):
    return (weight.abs().amax(dim=1, keepdim=True) / divisor).clamp(min=EPS)


def per_tensor_scale(weight):  # one scale for the whole matrix, broadcast to every row
    return quantize_with(weight, (weight.abs().amax() / 127.5).clamp(min=EPS).expand(weight.shape[0], 1))


def per_column_scale(weight):  # the wrong axis: one scale per input feature
    return quantize_with(weight, (weight.abs().amax(dim=0, keepdim=True) / 127.5).clamp(min=EPS))


def scale_without_keepdim(weight):  # (O,) scales: W / scale broadcasts along the wrong axis (or fails)
    scale = (weight.abs().amax(dim=1) / 127.5).clamp(min=EPS)
    return torch.clamp(torch.round(weight / scale[:, None]), -128, 127).to(torch.int8), scale


def without_clamp(weight):  # 127.5 rounds to 128, which int8 wraps to -128
    scale = row_scale(weight)
    return torch.round(weight / scale).to(torch.int8), scale


def truncating(weight):  # the int8 cast truncates towards zero instead of rounding
    scale = row_scale(weight)
    return torch.clamp(weight / scale, -128, 127).to(torch.int8), scale


def flooring(weight):
    return quantize_with(weight, row_scale(weight), rounding=torch.floor)


def max_over_127(weight):  # the other common convention, symmetric ±127: not torchao's
    return quantize_with(weight, row_scale(weight, 127), low=-127)


def symmetric_clamp(weight):  # the right scale, but int8's -128 refused
    return quantize_with(weight, row_scale(weight), low=-127)


def round_half_up(weight):  # floor(x + 0.5): -127.5 becomes -127
    return quantize_with(weight, row_scale(weight), rounding=lambda q: torch.floor(q + 0.5))


def signed_max(weight):  # the row's maximum, not its largest magnitude
    return quantize_with(weight, (weight.amax(dim=1, keepdim=True) / 127.5).clamp(min=EPS))


def asymmetric_scale(weight):
    return quantize_with(weight, ((weight.amax(1, keepdim=True) - weight.amin(1, keepdim=True)) / 255).clamp(min=EPS))


def float_values(weight):  # the right numbers, but stored as floats: no saving
    values, scale = quantize_per_channel(weight)
    return values.float(), scale


def uint8_values(weight):
    values, scale = quantize_per_channel(weight)
    return (values.int() + 128).to(torch.uint8), scale


def swapped_outputs(weight):
    values, scale = quantize_per_channel(weight)
    return scale, values


def zero_scale_for_zero_rows(weight):  # no eps: 0 / 0 for an all-zero row
    scale = weight.abs().amax(dim=1, keepdim=True) / 127.5
    return torch.clamp(torch.round(torch.nan_to_num(weight / scale)), -128, 127).to(torch.int8), scale


def eps_added(weight):
    return quantize_with(weight, weight.abs().amax(dim=1, keepdim=True) / 127.5 + EPS)


def divides_in_place(weight):  # right answer, but the caller's weight now holds W / scale
    scale = row_scale(weight)
    weight /= scale
    return torch.clamp(torch.round(weight), -128, 127).to(torch.int8), scale


def soft_kl(student, teacher, T, reduction="batchmean", teacher_T=None, student_T=None):
    teacher_T = T if teacher_T is None else teacher_T
    student_T = T if student_T is None else student_T
    return F.kl_div(F.log_softmax(student / student_T, -1), F.log_softmax(teacher.detach() / teacher_T, -1),
                    log_target=True, reduction=reduction)


def without_t_squared(student, teacher, labels, T, alpha):
    return alpha * soft_kl(student, teacher, T) + (1 - alpha) * F.cross_entropy(student, labels)


def t_not_squared(student, teacher, labels, T, alpha):
    return alpha * T * soft_kl(student, teacher, T) + (1 - alpha) * F.cross_entropy(student, labels)


def kl_wrong_direction(student, teacher, labels, T, alpha):  # KL(student || teacher)
    soft = F.kl_div(F.log_softmax(teacher.detach() / T, -1), F.log_softmax(student / T, -1), log_target=True,
                    reduction="batchmean")
    return alpha * T**2 * soft + (1 - alpha) * F.cross_entropy(student, labels)


def teacher_not_softened(student, teacher, labels, T, alpha):
    return alpha * T**2 * soft_kl(student, teacher, T, teacher_T=1.0) + (1 - alpha) * F.cross_entropy(student, labels)


def student_not_softened(student, teacher, labels, T, alpha):
    return alpha * T**2 * soft_kl(student, teacher, T, student_T=1.0) + (1 - alpha) * F.cross_entropy(student, labels)


def summed_over_batch(student, teacher, labels, T, alpha):
    return (alpha * T**2 * soft_kl(student, teacher, T, reduction="sum")
            + (1 - alpha) * F.cross_entropy(student, labels, reduction="sum"))


def kl_div_default_mean(student, teacher, labels, T, alpha):  # reduction="mean": divides by B·C
    with warnings.catch_warnings():  # PyTorch itself warns that "mean" is not the KL's batch mean
        warnings.simplefilter("ignore", UserWarning)
        soft = soft_kl(student, teacher, T, reduction="mean")
    return alpha * T**2 * soft + (1 - alpha) * F.cross_entropy(student, labels)


def alpha_swapped(student, teacher, labels, T, alpha):
    return distillation_loss_exercise(student, teacher, labels, T, 1 - alpha)


def ce_on_softened_logits(student, teacher, labels, T, alpha):
    return alpha * T**2 * soft_kl(student, teacher, T) + (1 - alpha) * F.cross_entropy(student / T, labels)


def soft_cross_entropy(student, teacher, labels, T, alpha):  # −Σ p log q: the teacher's entropy not subtracted
    p = F.softmax(teacher.detach() / T, -1)
    soft = -(p * F.log_softmax(student / T, -1)).sum(-1).mean()
    return alpha * T**2 * soft + (1 - alpha) * F.cross_entropy(student, labels)


def kl_div_on_probabilities(student, teacher, labels, T, alpha):  # F.kl_div(q, p): input must be log q
    soft = F.kl_div(F.softmax(student / T, -1), F.softmax(teacher.detach() / T, -1), reduction="batchmean")
    return alpha * T**2 * soft + (1 - alpha) * F.cross_entropy(student, labels)


def teacher_not_detached(student, teacher, labels, T, alpha):  # right value, gradient into the teacher (the hole)
    soft = F.kl_div(F.log_softmax(student / T, -1), F.log_softmax(teacher / T, -1), log_target=True,
                    reduction="batchmean")
    return alpha * T**2 * soft + (1 - alpha) * F.cross_entropy(student, labels)


def student_detached(student, teacher, labels, T, alpha):  # right value, no soft gradient to the student
    return alpha * T**2 * soft_kl(student.detach(), teacher, T) + (1 - alpha) * F.cross_entropy(student, labels)


def returns_a_float(student, teacher, labels, T, alpha):
    return distillation_loss_exercise(student, teacher, labels, T, alpha).item()


def everything_under_no_grad(student, teacher, labels, T, alpha):
    with torch.no_grad():
        return distillation_loss_exercise(student, teacher, labels, T, alpha)


def per_example_losses(student, teacher, labels, T, alpha):
    p = F.softmax(teacher.detach() / T, -1)
    kl = (p * (p.log() - F.log_softmax(student / T, -1))).sum(-1)
    return alpha * T**2 * kl + (1 - alpha) * F.cross_entropy(student, labels, reduction="none")


def softens_in_place(student, teacher, labels, T, alpha):  # right value, but the caller's teacher logits are divided
    teacher /= T
    p = F.softmax(teacher.detach(), -1)
    kl = (p * (p.log() - F.log_softmax(student / T, -1))).sum(-1).mean()
    return alpha * T**2 * kl + (1 - alpha) * F.cross_entropy(student, labels)


def quantize_by_the_library(weight):
    from bigtut.compress import quantize_symmetric

    quantized = quantize_symmetric(weight)
    return quantized.values, quantized.scale


def quantize_by_torch(weight):  # torch's own per-channel quantiser, read back as int8
    scale = (weight.abs().amax(dim=1, keepdim=True) / 127.5).clamp(min=EPS)
    with warnings.catch_warnings():  # PyTorch deprecates its quantized tensors
        warnings.simplefilter("ignore", UserWarning)
        quantized = torch.quantize_per_channel(weight, scale[:, 0].double(), torch.zeros(len(weight), dtype=torch.long),
                                               axis=0, dtype=torch.qint8)
    return quantized.int_repr(), scale


def distillation_by_the_library(student, teacher, labels, T, alpha):
    from bigtut.compress import distillation_loss

    return distillation_loss(student, teacher, labels, temperature=T, alpha=alpha)


# global pruning: every wrong answer is the solution with one piece changed
def prunable(model, skip_tied=True):
    tables = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.Embedding)}
    return {n: m for n, m in model.named_modules()
            if isinstance(m, torch.nn.Linear) and not (skip_tied and id(m.weight) in tables)}


def prune_with(model, sparsity, keep_of=None, layers=None, apply=True, copy_first=True):
    """The solution, with ``keep_of(layers, sparsity) -> {name: mask}`` replacing the global ranking."""
    layers = prunable(model) if layers is None else layers
    masks = keep_of(layers, sparsity)
    pruned = copy.deepcopy(model) if copy_first else model
    if apply:
        with torch.no_grad():
            for name, mask in masks.items():
                pruned.get_submodule(name).weight.mul_(mask)
    return pruned, masks


def ranked(layers, sparsity, score=lambda w: w.abs(), count=round, extra=None):
    scores = torch.cat([score(m.weight.detach()).flatten() for m in layers.values()]
                       + ([] if extra is None else [extra]))
    keep = torch.ones_like(scores)
    keep[torch.sort(scores, stable=True).indices[:count(sparsity * scores.numel())]] = 0
    masks, start = {}, 0
    for name, m in layers.items():
        masks[name] = keep[start:start + m.weight.numel()].reshape(m.weight.shape)
        start += m.weight.numel()
    return masks


def per_layer_thresholds(model, sparsity):
    return prune_with(model, sparsity, lambda layers, s: {
        n: ranked({n: m}, s)[n] for n, m in layers.items()})


def ranks_the_biases_too(model, sparsity):
    def keep_of(layers, s):
        biases = torch.cat([m.bias.detach().abs() for m in layers.values() if m.bias is not None])
        return ranked(layers, s, extra=biases)
    return prune_with(model, sparsity, keep_of)


def prunes_the_biases_too(model, sparsity):  # the right masks, and the smallest biases zeroed in the copy
    pruned, masks = prune_global(model, sparsity)
    with torch.no_grad():
        for name in masks:
            bias = pruned.get_submodule(name).bias
            if bias is not None:
                bias[bias.abs() < bias.abs().median()] = 0
    return pruned, masks


def prunes_the_largest(model, sparsity):
    return prune_with(model, sparsity, lambda layers, s: ranked(layers, s, score=lambda w: -w.abs()))


def ranks_signed_values(model, sparsity):
    return prune_with(model, sparsity, lambda layers, s: ranked(layers, s, score=lambda w: w))


def one_too_many(model, sparsity):
    return prune_with(model, sparsity, lambda layers, s: ranked(layers, s, count=lambda x: round(x) + 1))


def keeps_the_sparsity_fraction(model, sparsity):  # sparsity read as the fraction to keep
    return prune_with(model, sparsity, lambda layers, s: ranked(layers, 1 - s))


def truncated_count(model, sparsity):
    return prune_with(model, sparsity, lambda layers, s: ranked(layers, s, count=int))


def threshold_less_or_equal(model, sparsity):  # |w| <= the n_drop-th smallest: all ties go
    def keep_of(layers, s):
        flat = torch.cat([m.weight.detach().abs().flatten() for m in layers.values()])
        threshold = flat.sort().values[round(s * flat.numel()) - 1]
        return {n: (m.weight.detach().abs() > threshold).double() for n, m in layers.items()}
    return prune_with(model, sparsity, keep_of)


def ties_broken_backwards(model, sparsity):  # the right count, but the last of equal magnitudes goes first
    def keep_of(layers, s):
        flat = torch.cat([m.weight.detach().abs().flatten() for m in layers.values()])
        n = flat.numel()
        order = n - 1 - torch.sort(flat.flip(0), stable=True).indices
        keep = torch.ones(n, dtype=torch.float64)
        keep[order[:round(s * n)]] = 0
        masks, start = {}, 0
        for name, m in layers.items():
            masks[name] = keep[start:start + m.weight.numel()].reshape(m.weight.shape)
            start += m.weight.numel()
        return masks
    return prune_with(model, sparsity, keep_of)


def prunes_the_tied_head(model, sparsity):
    return prune_with(model, sparsity, ranked, layers=prunable(model, skip_tied=False))


def skips_lm_head_by_name(model, sparsity):
    return prune_with(model, sparsity, ranked, layers={n: m for n, m in prunable(model, skip_tied=False).items()
                                                       if n != "lm_head"})


def prunes_in_place(model, sparsity):
    return prune_with(model, sparsity, ranked, copy_first=False)


def masks_the_caller_then_copies(model, sparsity):  # the caller's weights changed, then the copy taken
    pruned, masks = prune_with(model, sparsity, ranked, copy_first=False)
    return copy.deepcopy(pruned), masks


def masks_not_applied(model, sparsity):
    return prune_with(model, sparsity, ranked, apply=False)


def parameter_names_as_keys(model, sparsity):
    pruned, masks = prune_global(model, sparsity)
    return pruned, {f"{name}.weight": mask for name, mask in masks.items()}


def pair_swapped(model, sparsity):
    pruned, masks = prune_global(model, sparsity)
    return masks, pruned


def pruned_weights_as_masks(model, sparsity):
    pruned, masks = prune_global(model, sparsity)
    return pruned, {name: pruned.get_submodule(name).weight.detach() for name in masks}


def prune_by_the_library(model, sparsity):
    from bigtut.compress import make_pruning_permanent, prune_magnitude

    pruned = prune_magnitude(model, sparsity)
    masks = {n: m.mask.clone() for n, m in pruned.named_modules() if hasattr(m, "mask")}
    return make_pruning_permanent(pruned), masks


# one distillation step
def step_with(student, teacher, optimizer, x, labels, T, alpha, *, teacher_eval=True, no_grad=True, zero_grad=True,
              student_eval=False, arguments=None, detach_student=False, step_first=False, step=True, teacher_runs=1):
    if teacher_eval:
        teacher.eval()
    if student_eval:
        student.eval()
    if zero_grad:
        optimizer.zero_grad()
    with torch.no_grad() if no_grad else contextlib.nullcontext():
        for _ in range(teacher_runs):
            teacher_logits = teacher(x)
    student_logits = student(x).detach() if detach_student else student(x)
    kwargs = {"temperature": T, "alpha": alpha} if arguments is None else arguments
    first, second = (student_logits, teacher_logits) if arguments != "swapped" else (teacher_logits, student_logits)
    loss = distillation_loss(first, second, labels, **(kwargs if arguments != "swapped" else
                                                        {"temperature": T, "alpha": alpha}))
    if step_first:
        optimizer.step()
    loss.backward()
    if step and not step_first:
        optimizer.step()
    return loss.item()


def teacher_in_train_mode(*args):
    return step_with(*args, teacher_eval=False)


def teacher_builds_a_graph(*args):  # the loss detaches it anyway: no gradient, but a graph for nothing
    return step_with(*args, no_grad=False)


def gradient_into_the_teacher(student, teacher, optimizer, x, labels, T, alpha):  # a hand-written loss, no detach
    teacher.eval()
    optimizer.zero_grad()
    s, t = student(x), teacher(x)
    p = F.softmax(t / T, -1)
    soft = (p * (F.log_softmax(t / T, -1) - F.log_softmax(s / T, -1))).sum(-1).mean()
    loss = alpha * T**2 * soft + (1 - alpha) * F.cross_entropy(s, labels)
    loss.backward()
    optimizer.step()
    return loss.item()


def forgets_zero_grad(*args):
    return step_with(*args, zero_grad=False)


def zero_grad_after_the_step(*args):  # the loop idiom step(); zero_grad(): this step still used the old gradient
    loss = step_with(*args, zero_grad=False)
    args[2].zero_grad()
    return loss


def logits_swapped(*args):
    return step_with(*args, arguments="swapped")


def step_before_backward(*args):
    return step_with(*args, step_first=True)


def detaches_the_student(*args):
    return step_with(*args, detach_student=True)


def student_in_eval_mode(*args):
    return step_with(*args, student_eval=True)


def default_temperature_and_alpha(*args):
    return step_with(*args, arguments={})


def teacher_twice(*args):
    return step_with(*args, teacher_runs=2)


def no_step(*args):
    return step_with(*args, step=False)


def zero_grad_before_the_step(student, teacher, optimizer, x, labels, T, alpha):
    teacher.eval()
    optimizer.zero_grad()
    with torch.no_grad():
        teacher_logits = teacher(x)
    loss = distillation_loss(student(x), teacher_logits, labels, temperature=T, alpha=alpha)
    loss.backward()
    optimizer.zero_grad()  # the gradient just computed is thrown away
    optimizer.step()
    return loss.item()


def returns_nothing(*args):
    step_with(*args)



WRONG = [
    (check_quantize_per_channel, per_tensor_scale, "one scale for the whole matrix"),
    (check_quantize_per_channel, per_column_scale, r"scale has shape \(1, 10\).*one scale per input column"),
    (check_quantize_per_channel, scale_without_keepdim, r"scale has shape \(6,\).*keepdim=True"),
    (check_quantize_per_channel, without_clamp, "no clamp before the cast"),
    (check_quantize_per_channel, truncating, "truncates toward zero"),
    (check_quantize_per_channel, flooring, "floor rounds down"),
    (check_quantize_per_channel, max_over_127, r"max\|row\| / 127 \(the ±127 convention\)"),
    (check_quantize_per_channel, symmetric_clamp, r"exactly -127\.5.*not ±127"),
    (check_quantize_per_channel, round_half_up, r"exactly -127\.5.*not floor\(x \+ 0\.5\)"),
    (check_quantize_per_channel, signed_max, "the signed maximum of the row"),
    (check_quantize_per_channel, asymmetric_scale, r"\(max − min\) / 255"),
    (check_quantize_per_channel, float_values, "int8 tensor"),
    (check_quantize_per_channel, uint8_values, r"int8 tensor.*torch\.uint8"),
    (check_quantize_per_channel, swapped_outputs, r"\(values, scale\) are swapped"),
    (check_quantize_per_channel, zero_scale_for_zero_rows, "no floor at float32's eps"),
    (check_quantize_per_channel, eps_added, "eps was added to the scale"),
    (check_quantize_per_channel, divides_in_place, "changed its input `W` in place"),
    (check_quantize_per_channel, quantize_by_the_library, "calls `quantize_symmetric`"),
    (check_quantize_per_channel, quantize_by_torch, "calls `quantize_per_channel` — torch.quantize_per_channel"),
    (check_quantize_per_channel, stub, "not implemented"),
    (check_distillation_loss, without_t_squared, "the T² factor is missing"),
    (check_distillation_loss, t_not_squared, "T, not T²"),
    (check_distillation_loss, kl_wrong_direction, r"KL\(student ‖ teacher\)"),
    (check_distillation_loss, teacher_not_softened, "the teacher was not softened"),
    (check_distillation_loss, student_not_softened, "the student was not softened"),
    (check_distillation_loss, summed_over_batch, "summed over the batch; average both terms"),
    (check_distillation_loss, kl_div_default_mean, "default reduction='mean' divides by B·C"),
    (check_distillation_loss, alpha_swapped, "alpha and 1 − alpha are swapped"),
    (check_distillation_loss, ce_on_softened_logits, "cross-entropy was taken on the softened logits"),
    (check_distillation_loss, soft_cross_entropy, "soft cross-entropy"),
    (check_distillation_loss, kl_div_on_probabilities, "F.kl_div was given probabilities"),
    (check_distillation_loss, teacher_not_detached, r"gradient flows into the teacher.*detach\(\)"),
    (check_distillation_loss, student_detached, "only the cross-entropy's gradient reached the student"),
    (check_distillation_loss, returns_a_float, "the loss carries no gradient"),
    (check_distillation_loss, everything_under_no_grad, "the loss carries no gradient"),
    (check_distillation_loss, per_example_losses, r"one loss per example.*expected a scalar"),
    (check_distillation_loss, softens_in_place, "changed its input `teacher_logits` in place"),
    (check_distillation_loss, distillation_by_the_library, "calls `distillation_loss`"),
    (check_distillation_loss, stub, "not implemented"),
    (check_global_pruning, per_layer_thresholds, "per-layer thresholds"),
    (check_global_pruning, ranks_the_biases_too, "the biases were ranked with the weights"),
    (check_global_pruning, prunes_the_biases_too, "a bias changed: magnitude pruning zeroes weights only"),
    (check_global_pruning, prunes_the_largest, "the largest magnitudes were dropped"),
    (check_global_pruning, ranks_signed_values, "the signed values were ranked"),
    (check_global_pruning, one_too_many, r"dropped \d+ of the n = \d+ weights.*one weight too many"),
    (check_global_pruning, truncated_count, r"int\(sparsity · n\) truncates"),
    (check_global_pruning, keeps_the_sparsity_fraction, "sparsity is the fraction of weights to REMOVE"),
    (check_global_pruning, threshold_less_or_equal, r"\|w\| <= threshold drops every weight tied with it"),
    (check_global_pruning, ties_broken_backwards, "ties at the threshold were broken in another order"),
    (check_global_pruning, prunes_the_tied_head, r"masked the tied layer \['lm_head'\]"),
    (check_global_pruning, skips_lm_head_by_name, "no mask for 'lm_head'.*not by its name"),
    (check_global_pruning, prunes_in_place, "returned the very model it was given"),
    (check_global_pruning, masks_the_caller_then_copies, "changed the caller's model in place"),
    (check_global_pruning, masks_not_applied, r"the weight is not weight \* mask"),
    (check_global_pruning, parameter_names_as_keys, "keyed by parameter names"),
    (check_global_pruning, pair_swapped, r"returned \(masks, pruned\)"),
    (check_global_pruning, pruned_weights_as_masks, "holds values other than 0 and 1"),
    (check_global_pruning, prune_by_the_library, "calls `prune_magnitude`"),
    (check_global_pruning, stub, "not implemented"),
    (check_global_pruning, "prune", "expected a function"),
    (check_distillation_step, teacher_in_train_mode, "the teacher ran in train mode.*teacher.eval"),
    (check_distillation_step, teacher_builds_a_graph, r"the teacher's forward built a graph.*torch.no_grad\(\)"),
    (check_distillation_step, gradient_into_the_teacher, "gradient reached the teacher's parameters"),
    (check_distillation_step, forgets_zero_grad, r"gradient left in .grad before the call.*zero_grad\(\)"),
    (check_distillation_step, zero_grad_after_the_step, r"gradient left in .grad before the call.*zero_grad\(\)"),
    (check_distillation_step, logits_swapped, r"the two logits are swapped"),
    (check_distillation_step, step_before_backward, r"optimizer.step\(\) came before loss.backward\(\)"),
    (check_distillation_step, detaches_the_student, "its logits were detached"),
    (check_distillation_step, student_in_eval_mode, "the student ran in eval mode"),
    (check_distillation_step, default_temperature_and_alpha, r"defaults \(temperature=2.0, alpha=0.5\)"),
    (check_distillation_step, teacher_twice, "the teacher ran 2 times"),
    (check_distillation_step, no_step, r"optimizer.step\(\) was called 0 times"),
    (check_distillation_step, returns_nothing, "returned None"),
    (check_distillation_step, zero_grad_before_the_step, "the weights did not move"),
    (check_distillation_step, stub, "not implemented"),
    (check_distillation_step, None, "expected a function"),
]


@pytest.mark.parametrize("checker, wrong, message", WRONG,
                         ids=[f"{c.__name__}-{getattr(w, '__name__', repr(w))}" for c, w, _ in WRONG])
def test_checkers_catch_the_wrong_answer_and_name_the_mistake(checker, wrong, message):
    assert_fails_naming(checker, wrong, message)


def test_failure_messages_name_the_input():
    with pytest.raises(CheckFailure, match=r"127\.5 \(torchao's rule, not / 127"):
        check_quantize_per_channel(max_over_127, seed=0)
    with pytest.raises(CheckFailure, match=r"wraps to -128"):
        check_quantize_per_channel(without_clamp, seed=0)
    with pytest.raises(CheckFailure, match=r"(?s)\(4, 9\) weight .* \(seed=3\).*row 1, column 0: W = -0\.498"):
        check_quantize_per_channel(symmetric_clamp, seed=3)
    with pytest.raises(CheckFailure, match=r"temperature=2\.0, alpha=0\.5 \(seed=4\)"):
        check_distillation_loss(summed_over_batch, seed=4)
    with pytest.raises(CheckFailure, match=r"temperature=2\.0, alpha=0\.5 \(seed=4\)"):
        check_distillation_loss(teacher_not_detached, seed=4)
    with pytest.raises(CheckFailure, match=r"expected a function"):
        check_distillation_loss(None, seed=0)
    with pytest.raises(CheckFailure, match=r"expected a function"):
        check_quantize_per_channel("W / scale", seed=0)
    with pytest.raises(CheckFailure, match=r"sparsity 0\.5 \(seed=4\)"):
        check_global_pruning(per_layer_thresholds, seed=4)
    with pytest.raises(CheckFailure, match=r"temperature=4\.0, alpha=0\.7 \(seed=4\)"):
        check_distillation_step(forgets_zero_grad, seed=4)


def test_distillation_step_checker_leaves_the_global_random_state_alone():
    state = torch.get_rng_state()
    check_distillation_step(distillation_step, seed=0)
    check_global_pruning(prune_global, seed=0)
    assert torch.equal(torch.get_rng_state(), state)


# ===================================================================== review: more right and wrong answers (2 and 4)
def prune_by_squares_with_int_masks(model, sparsity):  # w² ranks as |w| does; 0/1 masks of dtype long
    pruned, masks = prune_with(model, sparsity, lambda layers, s: ranked(layers, s, score=lambda w: w * w))
    return pruned, {name: mask.long() for name, mask in masks.items()}


def prune_replacing_the_parameters(model, sparsity):  # new Parameters on a deep copy: the caller's stay
    _, masks = prune_global(model, sparsity)
    pruned = copy.deepcopy(model)
    for name, mask in masks.items():
        layer = pruned.get_submodule(name)
        layer.weight = torch.nn.Parameter(layer.weight.detach() * mask)
    return [pruned, masks]


def distillation_step_with_a_float32_loss(*args):  # the loss reported in float32: harmless
    return torch.tensor(distillation_step(*args))


def distillation_step_with_a_frozen_teacher(student, teacher, optimizer, x, labels, temperature, alpha):
    teacher.eval().requires_grad_(False)  # no parameter of the teacher asks for a gradient: no graph either
    student.train()
    optimizer.zero_grad()
    loss = distillation_loss(student(x), teacher(x), labels, temperature=temperature, alpha=alpha)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()  # cleared after the step too: harmless
    return loss.item()


MORE_RIGHT = [(check_global_pruning, prune_by_squares_with_int_masks),
              (check_global_pruning, prune_replacing_the_parameters),
              (check_distillation_step, distillation_step_with_a_float32_loss),
              (check_distillation_step, distillation_step_with_a_frozen_teacher)]


@pytest.mark.parametrize("checker, solution", MORE_RIGHT, ids=[f"{c.__name__}-{s.__name__}" for c, s in MORE_RIGHT])
def test_more_right_answers_pass(checker, solution, capsys):
    assert_passes_on_seeds(checker, solution, capsys)


def count_rounded_half_up(model, sparsity):  # int(x + 0.5): 62.5 -> 63, where round() gives the even 62
    return prune_with(model, sparsity, lambda layers, s: ranked(layers, s, count=lambda x: int(x + 0.5)))


def count_rounded_up(model, sparsity):  # ERASER's ceil, not torch.nn.utils.prune's round
    return prune_with(model, sparsity, lambda layers, s: ranked(layers, s, count=math.ceil))


def layers_in_alphabetical_order(model, sparsity):  # ties go by position in sorted(names), not in model order
    layers = prunable(model)
    return prune_with(model, sparsity, ranked, layers={name: layers[name] for name in sorted(layers)})


def student_mode_left_as_it_came(student, teacher, optimizer, x, labels, temperature, alpha):  # no student.train()
    teacher.eval()
    optimizer.zero_grad()
    with torch.no_grad():
        teacher_logits = teacher(x)
    loss = distillation_loss(student(x), teacher_logits, labels, temperature=temperature, alpha=alpha)
    loss.backward()
    optimizer.step()
    return loss.item()


def temperature_and_alpha_swapped(*args):
    T, alpha = args[5:]
    return step_with(*args, arguments={"temperature": alpha, "alpha": T})


MORE_WRONG = [
    (check_global_pruning, count_rounded_half_up, r"62\.5 weights rounded up .*round\(62\.5\) = 62"),
    (check_global_pruning, count_rounded_up, r"62\.5 weights rounded up \(math\.ceil"),
    (check_global_pruning, layers_in_alphabetical_order, "ties at the threshold were broken in another order"),
    (check_distillation_step, student_mode_left_as_it_came, r"the student ran in eval mode.*call student\.train\(\)"),
    (check_distillation_step, temperature_and_alpha_swapped,
     r"alpha \(the weight of the soft targets\) must be .* got 4\.0"),
]


@pytest.mark.parametrize("checker, wrong, message", MORE_WRONG,
                         ids=[f"{c.__name__}-{w.__name__}" for c, w, _ in MORE_WRONG])
def test_more_wrong_answers_fail_naming_the_mistake(checker, wrong, message):
    assert_fails_naming(checker, wrong, message)
