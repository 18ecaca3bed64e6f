"""The chapter-10 checkers pass the right answers on seeds 0–2 and catch the usual wrong ones, each with a message
naming the mistake."""

import warnings

import pytest
import torch
import torch.nn.functional as F
from checker_cases import assert_fails_naming, assert_passes_on_seeds

from bigtut.checks import CheckFailure
from bigtut.checks.compress import check_distillation_loss, check_quantize_per_channel


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


# other right answers
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
         (check_distillation_loss, distillation_with_kl_div_under_no_grad)]


@pytest.mark.parametrize("checker, solution", RIGHT, ids=[f"{c.__name__}-{s.__name__}" for c, s in RIGHT])
def test_checkers_pass_the_right_answer_on_seeds_0_to_2(checker, solution, capsys):
    assert_passes_on_seeds(checker, solution, capsys)


def test_committed_solutions_print_the_committed_pass_lines(capsys):
    check_quantize_per_channel(quantize_per_channel, seed=0)
    check_distillation_loss(distillation_loss_exercise, seed=0)
    assert capsys.readouterr().out.splitlines() == [
        "PASS quantize_per_channel: int8 values and per-row scales on 4 weights (uneven rows, the ±127.5 extremes, "
        "a zero row)",
        "PASS distillation_loss: 4 random batches, temperatures 0.5–4, alpha 0.3–1",
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
    (check_quantize_per_channel, divides_in_place, "changed its argument `W` in place"),
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
    (check_distillation_loss, softens_in_place, "changed its argument `teacher_logits` in place"),
    (check_distillation_loss, distillation_by_the_library, "calls `distillation_loss`"),
    (check_distillation_loss, stub, "not implemented"),
]


@pytest.mark.parametrize("checker, wrong, message", WRONG, ids=[f"{c.__name__}-{w.__name__}" for c, w, _ in WRONG])
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
