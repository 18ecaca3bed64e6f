"""The checkers of notebook 03 pass correct code and fail stubs and plausible mistakes."""

from __future__ import annotations

import contextlib
import io

import pytest
import torch
import torch.nn.functional as F

from bigtut.checks import CheckFailure
from bigtut.checks.transformer import (
    check_beam_step,
    check_decoder_layer,
    check_decoder_mask,
    check_encoder_layer,
    check_label_smoothing_loss,
)

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


def encoder_layer(layer, x, mask=None):
    def ffn(h):
        return layer.dropout2(layer.linear2(layer.dropout(layer.activation(layer.linear1(h)))))

    if layer.norm_first:
        h = layer.norm1(x)
        x = x + layer.dropout1(layer.self_attn(h, h, h, mask)[0])
        return x + ffn(layer.norm2(x))
    x = layer.norm1(x + layer.dropout1(layer.self_attn(x, x, x, mask)[0]))
    return layer.norm2(x + ffn(x))


def decoder_layer(layer, y, memory, self_mask=None, memory_mask=None):
    def ffn(h):
        return layer.linear2(layer.activation(layer.linear1(h)))

    def self_attend(h):
        return layer.self_attn(h, h, h, self_mask)[0]

    def cross_attend(h):
        return layer.cross_attn(h, memory, memory, memory_mask)[0]

    for sublayer, norm in ((self_attend, layer.norm1), (cross_attend, layer.norm2), (ffn, layer.norm3)):
        y = y + sublayer(norm(y)) if layer.norm_first else norm(y + sublayer(y))
    return y


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


def _encoder(layer, x, mask, *, pre=None, residual=(1, 1), act=True, use_mask=True, swap_norms=False):
    """A written-out encoder layer with one mistake switched on."""
    pre = layer.norm_first if pre is None else pre
    n1, n2 = (layer.norm2, layer.norm1) if swap_norms else (layer.norm1, layer.norm2)
    m = mask if use_mask else None
    f = layer.activation if act else (lambda h: h)

    def attend(h):
        return layer.self_attn(h, h, h, m)[0]

    def ffn(h):
        return layer.linear2(f(layer.linear1(h)))

    if pre:
        x = residual[0] * x + attend(n1(x))
        return residual[1] * x + ffn(n2(x))
    x = n1(residual[0] * x + attend(x))
    return n2(residual[1] * x + ffn(x))


def encoder_always_pre_ln(layer, x, mask=None):  # ignores layer.norm_first
    return _encoder(layer, x, mask, pre=True)


def encoder_always_post_ln(layer, x, mask=None):
    return _encoder(layer, x, mask, pre=False)


def encoder_no_attention_residual(layer, x, mask=None):
    return _encoder(layer, x, mask, residual=(0, 1))


def encoder_no_ffn_residual(layer, x, mask=None):
    return _encoder(layer, x, mask, residual=(1, 0))


def encoder_no_activation(layer, x, mask=None):
    return _encoder(layer, x, mask, act=False)


def encoder_relu_hard_coded(layer, x, mask=None):  # torch.relu instead of layer.activation
    layer.activation = torch.relu
    return _encoder(layer, x, mask)


def encoder_mask_ignored(layer, x, mask=None):
    return _encoder(layer, x, mask, use_mask=False)


def encoder_mask_negated(layer, x, mask=None):  # PyTorch's convention (True = blocked) passed to bigtut
    return _encoder(layer, x, None if mask is None else ~mask)


def encoder_norms_swapped(layer, x, mask=None):
    return _encoder(layer, x, mask, swap_norms=True)


def encoder_calls_the_layer(layer, x, mask=None):
    return layer(x, mask)[0]


def encoder_returns_tuple(layer, x, mask=None):
    return encoder_layer(layer, x, mask), None


def _decoder(layer, y, memory, self_mask, memory_mask, *, pre=None, residual=(1, 1, 1), act=True,
             use_self_mask=True, use_memory_mask=True, kv="memory", q="decoder", norms=(1, 2, 3)):
    """A written-out decoder layer with one mistake switched on."""
    pre = layer.norm_first if pre is None else pre
    n = [getattr(layer, f"norm{i}") for i in norms]
    f = layer.activation if act else (lambda h: h)

    def self_attend(h):
        return layer.self_attn(h, h, h, self_mask if use_self_mask else None)[0]

    def cross_attend(h):
        keys = memory if kv == "memory" else h
        queries = h if q == "decoder" else memory
        return layer.cross_attn(queries, keys, keys, memory_mask if use_memory_mask else None)[0]

    def ffn(h):
        return layer.linear2(f(layer.linear1(h)))

    for sublayer, norm, r in zip((self_attend, cross_attend, ffn), n, residual):
        y = r * y + sublayer(norm(y)) if pre else norm(r * y + sublayer(y))
    return y


def decoder_always_pre_ln(layer, y, memory, self_mask=None, memory_mask=None):
    return _decoder(layer, y, memory, self_mask, memory_mask, pre=True)


def decoder_always_post_ln(layer, y, memory, self_mask=None, memory_mask=None):
    return _decoder(layer, y, memory, self_mask, memory_mask, pre=False)


def decoder_no_self_residual(layer, y, memory, self_mask=None, memory_mask=None):
    return _decoder(layer, y, memory, self_mask, memory_mask, residual=(0, 1, 1))


def decoder_no_cross_residual(layer, y, memory, self_mask=None, memory_mask=None):
    return _decoder(layer, y, memory, self_mask, memory_mask, residual=(1, 0, 1))


def decoder_no_ffn_residual(layer, y, memory, self_mask=None, memory_mask=None):
    return _decoder(layer, y, memory, self_mask, memory_mask, residual=(1, 1, 0))


def decoder_no_activation(layer, y, memory, self_mask=None, memory_mask=None):
    return _decoder(layer, y, memory, self_mask, memory_mask, act=False)


def decoder_sees_the_future(layer, y, memory, self_mask=None, memory_mask=None):  # self_mask ignored
    return _decoder(layer, y, memory, self_mask, memory_mask, use_self_mask=False)


def decoder_padding_only(layer, y, memory, self_mask=None, memory_mask=None):  # causal part dropped, padding kept
    keys = self_mask if self_mask.dim() == 3 else self_mask[None]
    return _decoder(layer, y, memory, keys[:, -1:, :], memory_mask)


def decoder_memory_mask_ignored(layer, y, memory, self_mask=None, memory_mask=None):
    return _decoder(layer, y, memory, self_mask, memory_mask, use_memory_mask=False)


def decoder_cross_reads_decoder(layer, y, memory, self_mask=None, memory_mask=None):  # keys/values from y
    return _decoder(layer, y, memory, self_mask, memory_mask, kv="decoder")


def decoder_cross_swapped(layer, y, memory, self_mask=None, memory_mask=None):  # queries from the memory
    return _decoder(layer, y, memory, self_mask, memory_mask, kv="decoder", q="memory")


def decoder_norms_1_2_swapped(layer, y, memory, self_mask=None, memory_mask=None):
    return _decoder(layer, y, memory, self_mask, memory_mask, norms=(2, 1, 3))


def decoder_norms_2_3_swapped(layer, y, memory, self_mask=None, memory_mask=None):
    return _decoder(layer, y, memory, self_mask, memory_mask, norms=(1, 3, 2))


def decoder_one_norm_for_all(layer, y, memory, self_mask=None, memory_mask=None):
    return _decoder(layer, y, memory, self_mask, memory_mask, norms=(1, 1, 1))


def decoder_calls_the_layer(layer, y, memory, self_mask=None, memory_mask=None):
    return layer(y, memory, self_mask, memory_mask)[0]


def decoder_uses_feed_forward(layer, y, memory, self_mask=None, memory_mask=None):
    h = layer.norm1(y + layer.self_attn(y, y, y, self_mask)[0])
    h = layer.norm2(h + layer.cross_attn(h, memory, memory, memory_mask)[0])
    return layer.norm3(h + layer.feed_forward(h))


def stub(*args, **kwargs):
    raise NotImplementedError("fill in the solution")


CORRECT = [(check_decoder_mask, decoder_mask), (check_beam_step, beam_step),
           (check_label_smoothing_loss, label_smoothing_loss), (check_encoder_layer, encoder_layer),
           (check_decoder_layer, decoder_layer)]
WRONG = [
    *[(check_encoder_layer, w) for w in (
        encoder_always_pre_ln, encoder_always_post_ln, encoder_no_attention_residual, encoder_no_ffn_residual,
        encoder_no_activation, encoder_relu_hard_coded, encoder_mask_ignored, encoder_mask_negated,
        encoder_norms_swapped, encoder_calls_the_layer, encoder_returns_tuple)],
    *[(check_decoder_layer, w) for w in (
        decoder_always_pre_ln, decoder_always_post_ln, decoder_no_self_residual, decoder_no_cross_residual,
        decoder_no_ffn_residual, decoder_no_activation, decoder_sees_the_future, decoder_padding_only,
        decoder_memory_mask_ignored, decoder_cross_reads_decoder, decoder_cross_swapped, decoder_norms_1_2_swapped,
        decoder_norms_2_3_swapped, decoder_one_norm_for_all, decoder_calls_the_layer, decoder_uses_feed_forward)],
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


@pytest.mark.parametrize("checker, wrong, message", [
    (check_encoder_layer, encoder_always_pre_ln, "this layer is post-LN"),
    (check_encoder_layer, encoder_no_activation, "no activation"),
    (check_encoder_layer, encoder_mask_ignored, "padding mask ignored"),
    (check_encoder_layer, encoder_norms_swapped, "norm1 and norm2 swapped"),
    (check_encoder_layer, encoder_calls_the_layer, "from its parts"),
    (check_decoder_layer, decoder_always_post_ln, "this layer is pre-LN"),
    (check_decoder_layer, decoder_sees_the_future, "sees the future"),
    (check_decoder_layer, decoder_padding_only, "sees the future|looks ahead"),
    (check_decoder_layer, decoder_cross_reads_decoder, "must come from `memory`"),
    (check_decoder_layer, decoder_cross_swapped, "swapped"),
    (check_decoder_layer, decoder_no_cross_residual, "no residual around the cross-attention"),
    (check_decoder_layer, decoder_norms_2_3_swapped, "norm2 and norm3 swapped"),
    (check_decoder_layer, decoder_uses_feed_forward, "from its parts"),
], ids=lambda v: getattr(v, "__name__", "msg"))
def test_layer_failures_name_the_mistake(checker, wrong, message):
    with pytest.raises(CheckFailure, match=message):
        checker(wrong, seed=0)


@pytest.mark.parametrize("checker, solution", [(check_encoder_layer, encoder_layer),
                                               (check_decoder_layer, decoder_layer)])
def test_layer_checkers_leave_the_global_generator_alone(checker, solution):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    with contextlib.redirect_stdout(io.StringIO()):
        checker(solution, seed=0)
    assert torch.equal(torch.rand(3), expected)
