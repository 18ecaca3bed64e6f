"""The checkers of notebook 03 pass correct code and fail stubs and plausible mistakes."""

from __future__ import annotations

import contextlib
import io

import pytest
import torch
import torch.nn.functional as F

from bigtut.checks import CheckFailure
from bigtut.checks.transformer import check_beam_step, check_decoder_mask, check_label_smoothing_loss

# ---------------------------------------------------------------- correct solutions, written as a student would


def decoder_mask(tgt, pad_id):
    T = tgt.shape[1]
    causal = torch.tril(torch.ones(T, T, dtype=torch.bool))
    return causal[None, :, :] & (tgt != pad_id)[:, None, :]


def beam_step(scores, log_probs, beam_size):
    B, K, V = log_probs.shape
    total = (scores[:, :, None] + log_probs).view(B, K * V)
    best, index = total.topk(beam_size, dim=1)
    return best, index // V, index % V


def label_smoothing_loss(logits, targets, epsilon, ignore_index):
    logp = logits.log_softmax(-1)
    keep = targets != ignore_index
    nll = -logp.gather(1, targets.clamp(min=0)[:, None])[:, 0]
    smooth = -logp.mean(-1)
    return ((1 - epsilon) * nll + epsilon * smooth)[keep].mean()


# ---------------------------------------------------------------- plausible mistakes


def mask_without_padding(tgt, pad_id):
    T = tgt.shape[1]
    return torch.tril(torch.ones(T, T, dtype=torch.bool)).expand(tgt.shape[0], T, T)


def mask_upper_triangular(tgt, pad_id):
    T = tgt.shape[1]
    return torch.triu(torch.ones(T, T, dtype=torch.bool))[None] & (tgt != pad_id)[:, None, :]


def mask_padding_on_queries(tgt, pad_id):
    T = tgt.shape[1]
    return torch.tril(torch.ones(T, T, dtype=torch.bool))[None] & (tgt != pad_id)[:, :, None]


def mask_as_float(tgt, pad_id):
    return decoder_mask(tgt, pad_id).float()


def beam_step_best_per_beam(scores, log_probs, beam_size):  # each beam keeps its own best token
    best, token = (scores[:, :, None] + log_probs).max(-1)
    order = best.argsort(dim=1, descending=True)[:, :beam_size]
    return best.gather(1, order), order, token.gather(1, order)


def beam_step_ignores_scores(scores, log_probs, beam_size):  # ranks by this step's log-prob only
    B, K, V = log_probs.shape
    _, index = log_probs.reshape(B, K * V).topk(beam_size, dim=1)
    total = (scores[:, :, None] + log_probs).reshape(B, K * V).gather(1, index)
    return total, index // V, index % V


def beam_step_swapped_division(scores, log_probs, beam_size):
    B, K, V = log_probs.shape
    best, index = (scores[:, :, None] + log_probs).view(B, K * V).topk(beam_size, dim=1)
    return best, index % K, index // K


def smoothing_over_wrong_classes(logits, targets, epsilon, ignore_index):  # ε/(V-1) on the others only
    logp = logits.log_softmax(-1)
    V = logits.shape[-1]
    keep = targets != ignore_index
    nll = -logp.gather(1, targets[:, None])[:, 0]
    others = -(logp.sum(-1) + nll * -1) / (V - 1)
    return ((1 - epsilon) * nll + epsilon * others)[keep].mean()


def smoothing_counts_padding(logits, targets, epsilon, ignore_index):
    return F.cross_entropy(logits, targets, label_smoothing=epsilon)


def smoothing_mean_over_all_rows(logits, targets, epsilon, ignore_index):
    per_row = F.cross_entropy(logits, targets, label_smoothing=epsilon, reduction="none",
                              ignore_index=ignore_index)
    return per_row.mean()  # divides by every row, padding included


def stub(*args, **kwargs):
    raise NotImplementedError("fill in the solution")


CORRECT = [(check_decoder_mask, decoder_mask), (check_beam_step, beam_step),
           (check_label_smoothing_loss, label_smoothing_loss)]
WRONG = [
    (check_decoder_mask, mask_without_padding), (check_decoder_mask, mask_upper_triangular),
    (check_decoder_mask, mask_padding_on_queries), (check_decoder_mask, mask_as_float),
    (check_beam_step, beam_step_best_per_beam), (check_beam_step, beam_step_ignores_scores),
    (check_beam_step, beam_step_swapped_division),
    (check_label_smoothing_loss, smoothing_over_wrong_classes), (check_label_smoothing_loss, smoothing_counts_padding),
    (check_label_smoothing_loss, smoothing_mean_over_all_rows),
]


@pytest.mark.parametrize("checker, solution", CORRECT, ids=[c.__name__ for c, _ in CORRECT])
@pytest.mark.parametrize("seed", [None, 0, 1, 2])
def test_correct_solutions_pass(checker, solution, seed):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert checker(solution, seed=seed) is None
    assert out.getvalue().startswith("PASS ")


@pytest.mark.parametrize("checker, _", CORRECT, ids=[c.__name__ for c, _ in CORRECT])
def test_stubs_fail_with_a_hint(checker, _):
    with pytest.raises(CheckFailure, match="not implemented"):
        checker(stub)


@pytest.mark.parametrize("checker, wrong", WRONG, ids=[w.__name__ for _, w in WRONG])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_plausible_mistakes_fail(checker, wrong, seed):
    with pytest.raises(CheckFailure):
        checker(wrong, seed=seed)


def test_failure_names_the_input():
    with pytest.raises(CheckFailure, match=r"seed=7\).*") as info:
        check_decoder_mask(mask_without_padding, seed=7)
    assert "may NOT attend" in str(info.value)
