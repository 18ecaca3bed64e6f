"""The chapter-09 checkers pass the right answers and catch the usual wrong ones."""

import pytest
import torch

from bigtut.checks import CheckFailure
from bigtut.checks.evaluating_explanations import check_precision_at_k, check_rollout


# ------------------------------------------------------------------------------------------- right answers
def precision_at_k(scores, evidence, k):
    top = scores.argsort(dim=1, descending=True)[:, :k]  # (B, k)
    return evidence.gather(1, top).double().mean(1)


def rollout(attentions):
    R = None
    for A in attentions:
        A_hat = 0.5 * A.mean(0) + 0.5 * torch.eye(A.shape[-1], dtype=A.dtype)
        A_hat = A_hat / A_hat.sum(-1, keepdim=True)
        R = A_hat if R is None else A_hat @ R
    return R


RIGHT = [(check_precision_at_k, precision_at_k), (check_rollout, rollout)]


@pytest.mark.parametrize("checker, solution", RIGHT, ids=[c.__name__ for c, _ in RIGHT])
def test_checkers_pass_the_right_answer(checker, solution, capsys):
    for seed in (0, 1, 2):
        checker(solution, seed=seed)
    assert capsys.readouterr().out.count("PASS") == 3


# ------------------------------------------------------------------------------------------- wrong answers
def recall_instead(scores, evidence, k):  # hits / |evidence|
    top = scores.argsort(dim=1, descending=True)[:, :k]
    return evidence.gather(1, top).double().sum(1) / evidence.sum(1)


def share_of_all_tokens(scores, evidence, k):  # precision over every token, not the top k
    return evidence.double().mean(1)


def lowest_k(scores, evidence, k):  # ascending order: the k least important tokens
    top = scores.argsort(dim=1)[:, :k]
    return evidence.gather(1, top).double().mean(1)


def top_by_magnitude(scores, evidence, k):  # |score|: a strongly negative token counts as top
    top = scores.abs().argsort(dim=1, descending=True)[:, :k]
    return evidence.gather(1, top).double().mean(1)


def rollout_without_residual(attentions):
    R = None
    for A in attentions:
        A_hat = A.mean(0) / A.mean(0).sum(-1, keepdim=True)
        R = A_hat if R is None else A_hat @ R
    return R


def rollout_without_renormalising(attentions):
    R = None
    for A in attentions:
        A_hat = 0.5 * A.mean(0) + 0.5 * torch.eye(A.shape[-1], dtype=A.dtype)
        R = A_hat if R is None else A_hat @ R
    return R


def rollout_wrong_order(attentions):  # R = Â_1 Â_2 ⋯ Â_n
    R = None
    for A in attentions:
        A_hat = 0.5 * A.mean(0) + 0.5 * torch.eye(A.shape[-1], dtype=A.dtype)
        A_hat = A_hat / A_hat.sum(-1, keepdim=True)
        R = A_hat if R is None else R @ A_hat
    return R


def rollout_max_heads(attentions):  # heads reduced by max instead of the mean
    R = None
    for A in attentions:
        A_hat = 0.5 * A.amax(0) + 0.5 * torch.eye(A.shape[-1], dtype=A.dtype)
        A_hat = A_hat / A_hat.sum(-1, keepdim=True)
        R = A_hat if R is None else A_hat @ R
    return R


def last_layer_only(attentions):
    return rollout(attentions[-1:])


def stub(*args):
    raise NotImplementedError


WRONG = [(check_precision_at_k, recall_instead), (check_precision_at_k, share_of_all_tokens),
         (check_precision_at_k, lowest_k), (check_precision_at_k, top_by_magnitude), (check_precision_at_k, stub),
         (check_rollout, rollout_without_residual), (check_rollout, rollout_without_renormalising),
         (check_rollout, rollout_wrong_order), (check_rollout, rollout_max_heads), (check_rollout, last_layer_only),
         (check_rollout, stub)]


@pytest.mark.parametrize("checker, wrong", WRONG, ids=[f"{c.__name__}-{w.__name__}" for c, w in WRONG])
def test_checkers_catch_wrong_answers(checker, wrong):
    for seed in (0, 1, 2):
        with pytest.raises(CheckFailure):
            checker(wrong, seed=seed)


def test_failure_message_names_the_case():
    with pytest.raises(CheckFailure, match=r"k=1.*seed=5"):
        check_precision_at_k(lowest_k, seed=5)
    with pytest.raises(CheckFailure, match=r"not implemented"):
        check_rollout(stub, seed=0)
