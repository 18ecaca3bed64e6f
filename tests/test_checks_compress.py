"""The chapter-10 checkers pass the right answers and catch the usual wrong ones."""

import pytest
import torch
import torch.nn.functional as F

from bigtut.checks import CheckFailure
from bigtut.checks.compress import check_distillation_loss, check_quantize_per_channel


# ------------------------------------------------------------------------------------------- right answers
def quantize_per_channel(weight):
    scale = (weight.abs().amax(dim=1, keepdim=True) / 127.5).clamp(min=torch.finfo(torch.float32).eps)
    return torch.clamp(torch.round(weight / scale), -128, 127).to(torch.int8), scale


def distillation_loss(student, teacher, labels, T, alpha):
    soft = F.kl_div(F.log_softmax(student / T, -1), F.log_softmax(teacher / T, -1), log_target=True,
                    reduction="batchmean")
    return alpha * T**2 * soft + (1 - alpha) * F.cross_entropy(student, labels)


RIGHT = [(check_quantize_per_channel, quantize_per_channel), (check_distillation_loss, distillation_loss)]


@pytest.mark.parametrize("checker, solution", RIGHT, ids=[c.__name__ for c, _ in RIGHT])
def test_checkers_pass_the_right_answer(checker, solution, capsys):
    for seed in (0, 1, 2):
        checker(solution, seed=seed)
    assert capsys.readouterr().out.count("PASS") == 3


def test_quantize_checker_accepts_multiplying_by_the_inverse_scale():
    """``W * (1 / scale)`` (torchao's way) and ``W / scale`` may round the half-step extremes differently."""
    def by_inverse(weight):
        scale = (weight.abs().amax(dim=1, keepdim=True) / 127.5).clamp(min=torch.finfo(torch.float32).eps)
        return torch.clamp(torch.round(weight * (1 / scale)), -128, 127).to(torch.int8), scale

    for seed in (0, 1, 2):
        check_quantize_per_channel(by_inverse, seed=seed)


# ------------------------------------------------------------------------------------------- wrong answers
def per_tensor_scale(weight):  # one scale for the whole matrix, broadcast to every row
    scale = (weight.abs().amax() / 127.5).clamp(min=torch.finfo(torch.float32).eps).expand(weight.shape[0], 1)
    return torch.clamp(torch.round(weight / scale), -128, 127).to(torch.int8), scale


def per_column_scale(weight):  # the wrong axis: one scale per input feature
    scale = (weight.abs().amax(dim=0, keepdim=True) / 127.5).clamp(min=torch.finfo(torch.float32).eps)
    return torch.clamp(torch.round(weight / scale), -128, 127).to(torch.int8), scale


def without_clamp(weight):  # 127.5 rounds to 128, which int8 wraps to -128
    scale = (weight.abs().amax(dim=1, keepdim=True) / 127.5).clamp(min=torch.finfo(torch.float32).eps)
    return torch.round(weight / scale).to(torch.int8), scale


def truncating(weight):  # the int8 cast truncates towards zero instead of rounding
    scale = (weight.abs().amax(dim=1, keepdim=True) / 127.5).clamp(min=torch.finfo(torch.float32).eps)
    return torch.clamp(weight / scale, -128, 127).to(torch.int8), scale


def max_over_127(weight):  # the other common convention, symmetric ±127: not torchao's
    scale = (weight.abs().amax(dim=1, keepdim=True) / 127).clamp(min=torch.finfo(torch.float32).eps)
    return torch.clamp(torch.round(weight / scale), -127, 127).to(torch.int8), scale


def float_values(weight):  # the right numbers, but stored as floats: no saving
    values, scale = quantize_per_channel(weight)
    return values.float(), scale


def zero_scale_for_zero_rows(weight):  # no eps: 0 / 0 for an all-zero row
    scale = weight.abs().amax(dim=1, keepdim=True) / 127.5
    return torch.clamp(torch.round(torch.nan_to_num(weight / scale)), -128, 127).to(torch.int8), scale


def without_t_squared(student, teacher, labels, T, alpha):
    soft = F.kl_div(F.log_softmax(student / T, -1), F.log_softmax(teacher / T, -1), log_target=True,
                    reduction="batchmean")
    return alpha * soft + (1 - alpha) * F.cross_entropy(student, labels)


def kl_wrong_direction(student, teacher, labels, T, alpha):  # KL(student || teacher)
    soft = F.kl_div(F.log_softmax(teacher / T, -1), F.log_softmax(student / T, -1), log_target=True,
                    reduction="batchmean")
    return alpha * T**2 * soft + (1 - alpha) * F.cross_entropy(student, labels)


def teacher_not_softened(student, teacher, labels, T, alpha):
    soft = F.kl_div(F.log_softmax(student / T, -1), F.log_softmax(teacher, -1), log_target=True,
                    reduction="batchmean")
    return alpha * T**2 * soft + (1 - alpha) * F.cross_entropy(student, labels)


def summed_over_batch(student, teacher, labels, T, alpha):
    soft = F.kl_div(F.log_softmax(student / T, -1), F.log_softmax(teacher / T, -1), log_target=True,
                    reduction="sum")
    return alpha * T**2 * soft + (1 - alpha) * F.cross_entropy(student, labels, reduction="sum")


def alpha_swapped(student, teacher, labels, T, alpha):
    return distillation_loss(student, teacher, labels, T, 1 - alpha)


def ce_on_softened_logits(student, teacher, labels, T, alpha):
    soft = F.kl_div(F.log_softmax(student / T, -1), F.log_softmax(teacher / T, -1), log_target=True,
                    reduction="batchmean")
    return alpha * T**2 * soft + (1 - alpha) * F.cross_entropy(student / T, labels)


def stub(*args):
    raise NotImplementedError


WRONG = [(check_quantize_per_channel, f) for f in (per_tensor_scale, per_column_scale, without_clamp, truncating,
                                                   max_over_127, float_values, zero_scale_for_zero_rows, stub)]
WRONG += [(check_distillation_loss, f) for f in (without_t_squared, kl_wrong_direction, teacher_not_softened,
                                                 summed_over_batch, alpha_swapped, ce_on_softened_logits, stub)]


@pytest.mark.parametrize("checker, wrong", WRONG, ids=[f"{c.__name__}-{w.__name__}" for c, w in WRONG])
def test_checkers_catch_wrong_answers(checker, wrong):
    for seed in (0, 1, 2):
        with pytest.raises(CheckFailure):
            checker(wrong, seed=seed)


def test_failure_messages_explain_the_mistake():
    with pytest.raises(CheckFailure, match=r"127\.5 \(torchao's rule, not / 127"):
        check_quantize_per_channel(max_over_127, seed=0)
    with pytest.raises(CheckFailure, match=r"wraps to -128"):
        check_quantize_per_channel(without_clamp, seed=0)
    with pytest.raises(CheckFailure, match=r"int8 tensor"):
        check_quantize_per_channel(float_values, seed=0)
    with pytest.raises(CheckFailure, match=r"temperature=2\.0, alpha=0\.5 \(seed=4\)"):
        check_distillation_loss(summed_over_batch, seed=4)
    with pytest.raises(CheckFailure, match=r"not implemented"):
        check_distillation_loss(stub, seed=0)
