"""The chapter-09 checkers pass the right answers on seeds 0–2 and catch the usual wrong ones, each with a message
naming the mistake."""


import pytest
import torch
from checker_cases import assert_fails_naming, assert_passes_on_seeds

from bigtut.checks import CheckFailure
from bigtut.checks.evaluating_explanations import check_precision_at_k, check_rollout


# ------------------------------------------------------------------------- right answers (the notebook's solutions)
def precision_at_k(scores, evidence, k):
    top = scores.argsort(dim=1, descending=True)[:, :k]  # (B, k): positions of the k highest scores
    return evidence.gather(1, top).double().mean(1)  # (B,)


def rollout(attentions):
    R = None
    for A in attentions:  # (h, L, L), first layer first
        A_hat = 0.5 * A.mean(0) + 0.5 * torch.eye(A.shape[-1], dtype=A.dtype)
        A_hat = A_hat / A_hat.sum(-1, keepdim=True)
        R = A_hat if R is None else A_hat @ R
    return R


# other right answers
def precision_by_topk_float32(scores, evidence, k):  # float32 is fine for a share of k tokens
    return evidence.gather(1, scores.topk(k, dim=1).indices).float().sum(1) / k


def rollout_from_identity(attentions):  # R starts at I; A + I renormalised is the same as 0.5·A + 0.5·I
    R = torch.eye(attentions[0].shape[-1], dtype=attentions[0].dtype)
    for A in attentions:
        A_hat = A.mean(0) + torch.eye(A.shape[-1], dtype=A.dtype)
        R = (A_hat / A_hat.sum(-1, keepdim=True)) @ R
    return R


RIGHT = [(check_precision_at_k, precision_at_k), (check_precision_at_k, precision_by_topk_float32),
         (check_rollout, rollout), (check_rollout, rollout_from_identity)]


@pytest.mark.parametrize("checker, solution", RIGHT, ids=[f"{c.__name__}-{s.__name__}" for c, s in RIGHT])
def test_checkers_pass_the_right_answer_on_seeds_0_to_2(checker, solution, capsys):
    assert_passes_on_seeds(checker, solution, capsys)


def test_committed_solutions_print_the_committed_pass_lines(capsys):
    check_precision_at_k(precision_at_k, seed=0)
    check_rollout(rollout, seed=0)
    assert capsys.readouterr().out.splitlines() == [
        "PASS precision_at_k: random scores and evidence, k = 1, 3, 6",
        "PASS rollout: 1–4 layers, several heads, rows that do and do not sum to 1",
    ]


# ------------------------------------------------------------------------------------------- wrong answers
def stub(*args):
    raise NotImplementedError("Exercise: replace this line with your code")


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


def hit_count(scores, evidence, k):
    top = scores.argsort(dim=1, descending=True)[:, :k]
    return evidence.gather(1, top).double().sum(1)


def divided_by_min_k_evidence(scores, evidence, k):  # an R-precision-like denominator
    top = scores.argsort(dim=1, descending=True)[:, :k]
    return evidence.gather(1, top).double().sum(1) / evidence.sum(1).clamp(max=k)


def one_too_many(scores, evidence, k):
    top = scores.argsort(dim=1, descending=True)[:, :k + 1]
    return evidence.gather(1, top).double().mean(1)


def skips_the_top(scores, evidence, k):  # ranks 1 … k, as if rank 0 were the instance itself
    top = scores.argsort(dim=1, descending=True)[:, 1:k + 1]
    return evidence.gather(1, top).double().mean(1)


def batch_mean(scores, evidence, k):
    return precision_at_k(scores, evidence, k).mean()


def sorts_in_place(scores, evidence, k):  # right values, but the caller's scores are sorted in place
    order = scores.argsort(dim=1, descending=True)
    scores.copy_(scores.gather(1, order))
    return evidence.gather(1, order[:, :k]).double().mean(1)


def bool_mean(scores, evidence, k):  # mean of a bool tensor: a RuntimeError
    top = scores.argsort(dim=1, descending=True)[:, :k]
    return evidence.gather(1, top).mean(1)


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


def rollout_normalised_before_residual(attentions):
    R = None
    for A in attentions:
        mean = A.mean(0)
        A_hat = 0.5 * mean / mean.sum(-1, keepdim=True) + 0.5 * torch.eye(A.shape[-1], dtype=A.dtype)
        R = A_hat if R is None else A_hat @ R
    return R


def rollout_column_normalised(attentions):
    R = None
    for A in attentions:
        A_hat = 0.5 * A.mean(0) + 0.5 * torch.eye(A.shape[-1], dtype=A.dtype)
        A_hat = A_hat / A_hat.sum(0, keepdim=True)
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


def rollout_sum_heads(attentions):
    R = None
    for A in attentions:
        A_hat = 0.5 * A.sum(0) + 0.5 * torch.eye(A.shape[-1], dtype=A.dtype)
        A_hat = A_hat / A_hat.sum(-1, keepdim=True)
        R = A_hat if R is None else A_hat @ R
    return R


def last_layer_only(attentions):
    return rollout(attentions[-1:])


def first_layer_only(attentions):
    return rollout(attentions[:1])


def rollout_transposed(attentions):
    return rollout(attentions).T


def rollout_per_head(attentions):
    return torch.stack([rollout([A[i:i + 1] for A in attentions]) for i in range(attentions[0].shape[0])]).mean(0)


def rollout_reverses_the_list(attentions):  # right values, but the caller's list is reversed in place
    attentions.reverse()
    R = None
    for A in attentions:  # last layer first now
        A_hat = 0.5 * A.mean(0) + 0.5 * torch.eye(A.shape[-1], dtype=A.dtype)
        A_hat = A_hat / A_hat.sum(-1, keepdim=True)
        R = A_hat if R is None else R @ A_hat
    return R


def rollout_normalises_in_place(attentions):  # right values, but the caller's maps are rescaled in place
    for A in attentions:
        A /= A.sum(-1, keepdim=True)
    return rollout(attentions)


def rollout_with_batch_axis(attentions):
    return rollout(attentions)[None]


def precision_by_the_library(scores, evidence, k):
    from bigtut.explain import metrics

    return torch.as_tensor(metrics.precision_at_k(scores.numpy(), evidence.numpy(), k=k))


def rollout_by_the_library(attentions):
    from bigtut.explain.attention_scores import attention_rollout

    return attention_rollout([A[None] for A in attentions])[0]


# (checker, wrong answer, a phrase the failure message must contain)
WRONG = [
    (check_precision_at_k, recall_instead, "recall: hits / |evidence|"),
    (check_precision_at_k, share_of_all_tokens, "the evidence share of all L tokens"),
    (check_precision_at_k, lowest_k, "the k lowest scores"),
    (check_precision_at_k, top_by_magnitude, r"ranked by \|score\|"),
    (check_precision_at_k, hit_count, "the number of hits"),
    (check_precision_at_k, divided_by_min_k_evidence, r"min\(k, \|evidence\|\)"),
    (check_precision_at_k, one_too_many, r"the top k \+ 1 positions"),
    (check_precision_at_k, skips_the_top, "the top-scored position .* was skipped"),
    (check_precision_at_k, batch_mean, "not over the batch"),
    (check_precision_at_k, sorts_in_place, "changed its argument `scores` in place"),
    (check_precision_at_k, bool_mean, "raised RuntimeError"),
    (check_precision_at_k, precision_by_the_library, "calls `precision_at_k` — .* the course's own answer"),
    (check_precision_at_k, stub, "not implemented"),
    (check_rollout, rollout_without_residual, "no residual"),
    (check_rollout, rollout_without_renormalising, "not renormalised after adding 0.5·I"),
    (check_rollout, rollout_normalised_before_residual, "normalised before adding 0.5·I"),
    (check_rollout, rollout_column_normalised, "the columns were normalised"),
    (check_rollout, rollout_wrong_order, "the product runs the wrong way"),
    (check_rollout, rollout_max_heads, "merged by their maximum"),
    (check_rollout, rollout_sum_heads, "the heads were summed"),
    (check_rollout, last_layer_only, "only the last layer"),
    (check_rollout, first_layer_only, "only the first layer"),
    (check_rollout, rollout_transposed, "the result is transposed"),
    (check_rollout, rollout_per_head, "a rollout per head"),
    (check_rollout, rollout_reverses_the_list, "changed its argument `attentions` in place"),
    (check_rollout, rollout_normalises_in_place, "changed its argument `attentions` in place"),
    (check_rollout, rollout_with_batch_axis, r"wrong shape .* expected \(7, 7\), got \(1, 7, 7\)"),
    (check_rollout, rollout_by_the_library, "calls `attention_rollout`"),
    (check_rollout, stub, "not implemented"),
]


@pytest.mark.parametrize("checker, wrong, message", WRONG, ids=[f"{c.__name__}-{w.__name__}" for c, w, _ in WRONG])
def test_checkers_catch_the_wrong_answer_and_name_the_mistake(checker, wrong, message):
    assert_fails_naming(checker, wrong, message)


def test_failure_message_names_the_case():
    with pytest.raises(CheckFailure, match=r"k=1.*seed=5"):
        check_precision_at_k(lowest_k, seed=5)
    with pytest.raises(CheckFailure, match=r"(?s)2 layer\(s\) of 3 heads over L=7 tokens, rows after dropout .*seed=4"
                                           r".*expected.*got"):
        check_rollout(rollout_without_renormalising, seed=4)
    with pytest.raises(CheckFailure, match=r"expected a function"):
        check_rollout(None, seed=0)
    with pytest.raises(CheckFailure, match=r"expected a function"):
        check_precision_at_k(3, seed=0)
