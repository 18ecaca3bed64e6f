"""The checkers of notebook 03 pass correct code and fail stubs and plausible mistakes, naming the mistake."""

from __future__ import annotations

import contextlib
import io

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from bigtut.checks import CheckFailure
from bigtut.checks.transformer import (
    check_beam_step,
    check_decoder_layer,
    check_encoder_layer,
    check_label_smoothing_loss,
)

# ---------------------------------------------------------------- correct solutions, written as a student would


def beam_step(scores, log_probs, beam_size):
    B, K, V = log_probs.shape
    total = (scores[:, :, None] + log_probs).view(B, K * V)
    best, index = total.topk(beam_size, dim=1)
    return best, index // V, index % V


def beam_step_notebook(scores: torch.Tensor, log_probs: torch.Tensor, beam_size: int):  # notebook 03's solution
    B, K, V = log_probs.shape
    candidates = (scores[:, :, None] + log_probs).reshape(B, K * V)  # (B, K*V)
    new_scores, flat = candidates.topk(beam_size, dim=1)  # (B, beam_size), best first
    return new_scores, flat // V, flat % V  # which beam, which token


def label_smoothing_loss(logits, targets, epsilon, ignore_index):
    logp = logits.log_softmax(-1)
    keep = targets != ignore_index
    nll = -logp.gather(1, targets.clamp(min=0)[:, None])[:, 0]
    smooth = -logp.mean(-1)
    return ((1 - epsilon) * nll + epsilon * smooth)[keep].mean()


def label_smoothing_soft_targets(logits, targets, epsilon, ignore_index):  # builds the smoothed distribution
    keep = targets != ignore_index
    logits, targets = logits[keep], targets[keep]
    V = logits.shape[-1]
    soft = torch.full_like(logits, epsilon / V).scatter(1, targets[:, None], 1 - epsilon + epsilon / V)
    return F.cross_entropy(logits, soft)  # soft targets: allowed, the smoothing is written out


def label_smoothing_nll_loss(logits, targets, epsilon, ignore_index):  # F.nll_loss for the target term
    logp = F.log_softmax(logits, dim=-1)
    keep = targets != ignore_index
    target_term = F.nll_loss(logp, targets, ignore_index=ignore_index)
    return (1 - epsilon) * target_term + epsilon * (-logp.mean(-1))[keep].mean()


def label_smoothing_loop(logits, targets, epsilon, ignore_index):  # one row at a time, log-sum-exp by hand
    total, count, V = logits.new_zeros(()), 0, logits.shape[-1]
    for row, y in zip(logits, targets.tolist()):
        if y == ignore_index:
            continue
        top = row.max()
        logp = row - top - torch.log(torch.exp(row - top).sum())
        total, count = total + (1 - epsilon) * -logp[y] - epsilon / V * logp.sum(), count + 1
    return total / count


def encoder_layer(layer, x, mask=None):  # with the optional dropout after the activation, as bigtut's layer
    def ffn(h):
        return layer.dropout2(layer.linear2(layer.dropout(layer.activation(layer.linear1(h)))))

    if layer.norm_first:
        h = layer.norm1(x)
        x = x + layer.dropout1(layer.self_attn(h, h, h, mask)[0])
        return x + ffn(layer.norm2(x))
    x = layer.norm1(x + layer.dropout1(layer.self_attn(x, x, x, mask)[0]))
    return layer.norm2(x + ffn(x))


def encoder_layer_forward(layer, x, mask=None):  # notebook 03's solution, verbatim
    def self_attention(h):  # (B, S, D): every position reads every real position
        return layer.dropout1(layer.self_attn(h, h, h, mask)[0])

    def feed_forward(h):  # (B, S, D) -> (B, S, d_ff) -> (B, S, D): the same MLP at every position
        return layer.dropout2(layer.linear2(layer.activation(layer.linear1(h))))

    if layer.norm_first:  # pre-LN: normalise what enters each sublayer, leave the residual path alone
        x = x + self_attention(layer.norm1(x))  # (B, S, D)
        return x + feed_forward(layer.norm2(x))  # (B, S, D)
    x = layer.norm1(x + self_attention(x))  # post-LN (the paper): add, then normalise; (B, S, D)
    return layer.norm2(x + feed_forward(x))  # (B, S, D)


def encoder_functional_dropout(layer, x, mask=None):  # F.dropout with the module's rate and mode: the same masks
    def drop(h, module):
        return F.dropout(h, module.p, training=layer.training)

    if layer.norm_first:
        h = layer.norm1(x)
        x = x + drop(layer.self_attn(h, h, h, mask, return_attention=False)[0], layer.dropout1)
        return x + drop(layer.linear2(layer.activation(layer.linear1(layer.norm2(x)))), layer.dropout2)
    x = layer.norm1(x + drop(layer.self_attn(x, x, x, mask)[0], layer.dropout1))
    return layer.norm2(x + drop(layer.linear2(layer.activation(layer.linear1(x))), layer.dropout2))


def decoder_layer(layer, y, memory, self_mask=None, memory_mask=None):  # with the optional inner dropout
    def ffn(h):
        return layer.dropout3(layer.linear2(layer.dropout(layer.activation(layer.linear1(h)))))

    def self_attend(h):
        return layer.dropout1(layer.self_attn(h, h, h, self_mask)[0])

    def cross_attend(h):
        return layer.dropout2(layer.cross_attn(h, memory, memory, memory_mask)[0])

    for sublayer, norm in ((self_attend, layer.norm1), (cross_attend, layer.norm2), (ffn, layer.norm3)):
        y = y + sublayer(norm(y)) if layer.norm_first else norm(y + sublayer(y))
    return y


def decoder_layer_forward(layer, y, memory, self_mask=None, memory_mask=None):  # notebook 03's solution, verbatim
    def self_attention(h):  # (B, T, D): position t reads positions <= t of the output so far
        return layer.dropout1(layer.self_attn(h, h, h, self_mask)[0])

    def cross_attention(h):  # (B, T, D): queries from the decoder, keys and values from the memory (B, S, D)
        return layer.dropout2(layer.cross_attn(h, memory, memory, memory_mask)[0])

    def feed_forward(h):  # (B, T, D) -> (B, T, d_ff) -> (B, T, D)
        return layer.dropout3(layer.linear2(layer.activation(layer.linear1(h))))

    for sublayer, norm in ((self_attention, layer.norm1), (cross_attention, layer.norm2),
                           (feed_forward, layer.norm3)):
        y = y + sublayer(norm(y)) if layer.norm_first else norm(y + sublayer(y))  # (B, T, D)
    return y


# ---------------------------------------------------------------- plausible mistakes: beam step


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


def beam_step_worst_first(scores, log_probs, beam_size):
    best, parent, token = beam_step(scores, log_probs, beam_size)
    return best.flip(-1), parent.flip(-1), token.flip(-1)


def beam_step_true_division(scores, log_probs, beam_size):  # float parent: cannot index
    B, K, V = log_probs.shape
    best, index = (scores[:, :, None] + log_probs).view(B, K * V).topk(beam_size, dim=1)
    return best, torch.floor(index / V), index % V


def beam_step_keeps_k(scores, log_probs, beam_size):  # K beams out instead of beam_size
    return beam_step(scores, log_probs, scores.shape[1])


def beam_step_returns_token_first(scores, log_probs, beam_size):
    best, parent, token = beam_step(scores, log_probs, beam_size)
    return best, token, parent


def beam_step_adds_in_place(scores, log_probs, beam_size):  # the caller's log_probs are overwritten
    B, K, V = log_probs.shape
    log_probs += scores[:, :, None]
    best, index = log_probs.view(B, K * V).topk(beam_size, dim=1)
    return best, index // V, index % V


def beam_step_flattens_token_major(scores, log_probs, beam_size):  # (B, V, K) flattened, decoded as (B, K, V)
    B, K, V = log_probs.shape
    total = (scores[:, :, None] + log_probs).transpose(1, 2).reshape(B, V * K)
    best, index = total.topk(beam_size, dim=1)
    return best, index // V, index % V


def beam_step_multiplies_probabilities(scores, log_probs, beam_size):  # products of probabilities, not log-sums
    B, K, V = log_probs.shape
    total = (scores.exp()[:, :, None] * log_probs.exp()).reshape(B, K * V)
    best, index = total.topk(beam_size, dim=1)
    return best, index // V, index % V


def beam_step_whole_batch(scores, log_probs, beam_size):  # topk over the batch together
    B, K, V = log_probs.shape
    best, index = (scores[:, :, None] + log_probs).reshape(-1).topk(beam_size)
    return best[None].expand(B, -1), (index % (K * V) // V)[None].expand(B, -1), (index % V)[None].expand(B, -1)


# ---------------------------------------------------------------- plausible mistakes: label smoothing


def smoothing_over_wrong_classes(logits, targets, epsilon, ignore_index):  # ε/(V-1) on the others only
    logp = logits.log_softmax(-1)
    V = logits.shape[-1]
    keep = targets != ignore_index
    nll = -logp.gather(1, targets.clamp(min=0)[:, None])[:, 0]
    others = -(logp.sum(-1) + nll) / (V - 1)  # -Σ_{v != target} log p_v / (V-1)
    return ((1 - epsilon) * nll + epsilon * others)[keep].mean()


def _smoothed_rows(logits, targets, epsilon):
    logp = logits.log_softmax(-1)
    nll = -logp.gather(1, targets.clamp(min=0)[:, None])[:, 0]
    return (1 - epsilon) * nll + epsilon * -logp.mean(-1)


def smoothing_counts_padding(logits, targets, epsilon, ignore_index):
    return _smoothed_rows(logits, targets, epsilon).mean()


def smoothing_mean_over_all_rows(logits, targets, epsilon, ignore_index):
    keep = targets != ignore_index
    return (_smoothed_rows(logits, targets, epsilon) * keep).sum() / len(targets)  # padding in the denominator


def smoothing_sums_rows(logits, targets, epsilon, ignore_index):
    return _smoothed_rows(logits, targets, epsilon)[targets != ignore_index].sum()


def smoothing_library_call(logits, targets, epsilon, ignore_index):
    return F.cross_entropy(logits, targets, ignore_index=ignore_index, label_smoothing=epsilon)


def smoothing_library_module(logits, targets, epsilon, ignore_index):
    return nn.CrossEntropyLoss(ignore_index=ignore_index, label_smoothing=epsilon)(logits, targets)


def smoothing_sign_flipped(logits, targets, epsilon, ignore_index):
    logp = logits.log_softmax(-1)
    keep = targets != ignore_index
    return ((1 - epsilon) * logp.gather(1, targets.clamp(min=0)[:, None])[:, 0]
            + epsilon * logp.mean(-1))[keep].mean()


def smoothing_without_one_minus(logits, targets, epsilon, ignore_index):
    logp = logits.log_softmax(-1)
    keep = targets != ignore_index
    return (-logp.gather(1, targets.clamp(min=0)[:, None])[:, 0] + epsilon * -logp.mean(-1))[keep].mean()


def smoothing_sum_over_classes(logits, targets, epsilon, ignore_index):  # ε·Σ instead of ε·mean
    logp = logits.log_softmax(-1)
    keep = targets != ignore_index
    nll = -logp.gather(1, targets.clamp(min=0)[:, None])[:, 0]
    return ((1 - epsilon) * nll + epsilon * -logp.sum(-1))[keep].mean()


def smoothing_forgets_epsilon(logits, targets, epsilon, ignore_index):
    return F.cross_entropy(logits, targets, ignore_index=ignore_index)


def smoothing_log_of_softmax(logits, targets, epsilon, ignore_index):  # -inf for large logits
    logp = torch.log(torch.softmax(logits, -1))
    keep = targets != ignore_index
    nll = -logp.gather(1, targets.clamp(min=0)[:, None])[:, 0]
    return ((1 - epsilon) * nll + epsilon * -logp.mean(-1))[keep].mean()


def smoothing_returns_float(logits, targets, epsilon, ignore_index):
    return label_smoothing_loss(logits, targets, epsilon, ignore_index).item()


def smoothing_detached(logits, targets, epsilon, ignore_index):
    return label_smoothing_loss(logits.detach(), targets, epsilon, ignore_index)


def smoothing_shifts_in_place(logits, targets, epsilon, ignore_index):  # the max trick on the caller's logits
    logits -= logits.max(-1, keepdim=True).values
    return label_smoothing_loss(logits, targets, epsilon, ignore_index)


def smoothing_float32(logits, targets, epsilon, ignore_index):
    return label_smoothing_loss(logits.float(), targets, epsilon, ignore_index)


def smoothing_gathers_ignore_index(logits, targets, epsilon, ignore_index):  # crashes on ignore_index=-100
    logp = logits.log_softmax(-1)
    keep = targets != ignore_index
    nll = -logp.gather(1, targets[:, None])[:, 0]
    return ((1 - epsilon) * nll + epsilon * -logp.mean(-1))[keep].mean()


def _soft_targets(logits, targets, epsilon, target_share=True):
    V = logits.shape[-1]
    on_target = 1 - epsilon + (epsilon / V if target_share else 0.0)
    return torch.full_like(logits, epsilon / V).scatter(1, targets.clamp(min=0)[:, None], on_target)


def smoothing_kl_divergence(logits, targets, epsilon, ignore_index):  # the Annotated Transformer's KLDivLoss
    keep = targets != ignore_index
    q = _soft_targets(logits, targets, epsilon)
    return F.kl_div(logits.log_softmax(-1)[keep], q[keep], reduction="batchmean")


def smoothing_target_without_share(logits, targets, epsilon, ignore_index):  # q_target = 1-ε: q sums to 1-ε/V
    keep = targets != ignore_index
    q = _soft_targets(logits, targets, epsilon, target_share=False)
    return -(q * logits.log_softmax(-1)).sum(-1)[keep].mean()


def smoothing_mean_over_classes(logits, targets, epsilon, ignore_index):  # .mean() over (N, V), not per row
    keep = targets != ignore_index
    return -(_soft_targets(logits, targets, epsilon) * logits.log_softmax(-1))[keep].mean()


def smoothing_aten_kernel(logits, targets, epsilon, ignore_index):  # PyTorch's kernel under another name
    return torch.ops.aten.cross_entropy_loss(logits, targets, None, 1, ignore_index, epsilon)


# ---------------------------------------------------------------- plausible mistakes: encoder layer


def _encoder(layer, x, mask, *, pre=None, residual=(1, 1), act=True, use_mask=True, swap_norms=False,
             drops=("dropout1", "dropout2"), where="output", inner=None):
    """A written-out encoder layer with one mistake switched on (``where``: where the dropouts go)."""
    pre = layer.norm_first if pre is None else pre
    n1, n2 = (layer.norm2, layer.norm1) if swap_norms else (layer.norm1, layer.norm2)
    m = mask if use_mask else None
    f = layer.activation if act is True else (lambda h: h) if act is False else act
    d1, d2 = ((lambda h: h) if d is None else getattr(layer, d) for d in drops)
    inner = (lambda h: h) if inner is None else getattr(layer, inner)

    def attend(h):
        return layer.self_attn(h, h, h, m)[0]

    def ffn(h):
        return layer.linear2(inner(f(layer.linear1(h))))

    def sub(x, norm, sublayer, d, r):
        if pre:
            if where == "input":
                return r * x + sublayer(d(norm(x)))
            return d(r * x + sublayer(norm(x))) if where == "sum" else r * x + d(sublayer(norm(x)))
        if where == "input":
            return norm(r * x + sublayer(d(x)))
        if where == "after_norm":
            return d(norm(r * x + sublayer(x)))
        return norm(d(r * x + sublayer(x))) if where == "sum" else norm(r * x + d(sublayer(x)))

    x = sub(x, n1, attend, d1, residual[0])
    return sub(x, n2, ffn, d2, residual[1])


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
    return _encoder(layer, x, mask, act=torch.relu)


def encoder_mask_ignored(layer, x, mask=None):
    return _encoder(layer, x, mask, use_mask=False)


def encoder_mask_negated(layer, x, mask=None):  # PyTorch's convention (True = blocked) passed to bigtut
    return _encoder(layer, x, None if mask is None else ~mask)


def encoder_norms_swapped(layer, x, mask=None):
    return _encoder(layer, x, mask, swap_norms=True)


def encoder_calls_the_layer(layer, x, mask=None):
    return layer(x, mask)[0]


def encoder_uses_feed_forward(layer, x, mask=None):
    if layer.norm_first:
        h = layer.norm1(x)
        x = x + layer.dropout1(layer.self_attn(h, h, h, mask)[0])
        return x + layer.feed_forward(layer.norm2(x))
    x = layer.norm1(x + layer.dropout1(layer.self_attn(x, x, x, mask)[0]))
    return layer.norm2(x + layer.feed_forward(x))


def encoder_returns_tuple(layer, x, mask=None):
    return encoder_layer(layer, x, mask), None


def encoder_no_dropout(layer, x, mask=None):  # right in eval mode, no dropout in training
    return _encoder(layer, x, mask, drops=(None, None))


def encoder_attention_dropout_only(layer, x, mask=None):
    return _encoder(layer, x, mask, drops=("dropout1", None))


def encoder_dropout_on_residual_sum(layer, x, mask=None):  # dropout(x + sublayer(x))
    return _encoder(layer, x, mask, where="sum")


def encoder_dropout_on_sublayer_input(layer, x, mask=None):
    return _encoder(layer, x, mask, where="input")


def encoder_dropout_after_norm(layer, x, mask=None):  # post-LN: dropout(norm(x + sublayer(x)))
    return _encoder(layer, x, mask, where="after_norm")


def encoder_dropout_modules_swapped(layer, x, mask=None):
    return _encoder(layer, x, mask, drops=("dropout2", "dropout1"))


def encoder_dropout1_everywhere(layer, x, mask=None):
    return _encoder(layer, x, mask, drops=("dropout1", "dropout1"))


def encoder_inner_dropout_instead(layer, x, mask=None):  # layer.dropout where layer.dropout2 belongs
    return _encoder(layer, x, mask, drops=("dropout1", "dropout"))


def encoder_inner_dropout_before_activation(layer, x, mask=None):
    def ffn(h):
        return layer.dropout2(layer.linear2(layer.activation(layer.dropout(layer.linear1(h)))))

    if layer.norm_first:
        h = layer.norm1(x)
        x = x + layer.dropout1(layer.self_attn(h, h, h, mask)[0])
        return x + ffn(layer.norm2(x))
    x = layer.norm1(x + layer.dropout1(layer.self_attn(x, x, x, mask)[0]))
    return layer.norm2(x + ffn(x))


def encoder_dropout_in_eval(layer, x, mask=None):  # F.dropout's training defaults to True
    def drop(h, module):
        return F.dropout(h, module.p)

    if layer.norm_first:
        h = layer.norm1(x)
        x = x + drop(layer.self_attn(h, h, h, mask)[0], layer.dropout1)
        return x + drop(layer.linear2(layer.activation(layer.linear1(layer.norm2(x)))), layer.dropout2)
    x = layer.norm1(x + drop(layer.self_attn(x, x, x, mask)[0], layer.dropout1))
    return layer.norm2(x + drop(layer.linear2(layer.activation(layer.linear1(x))), layer.dropout2))


def encoder_fresh_dropout_module(layer, x, mask=None):  # a new nn.Dropout is in training mode
    drop = nn.Dropout(layer.dropout1.p)
    if layer.norm_first:
        h = layer.norm1(x)
        x = x + drop(layer.self_attn(h, h, h, mask)[0])
        return x + drop(layer.linear2(layer.activation(layer.linear1(layer.norm2(x)))))
    x = layer.norm1(x + drop(layer.self_attn(x, x, x, mask)[0]))
    return layer.norm2(x + drop(layer.linear2(layer.activation(layer.linear1(x)))))


def encoder_dropout_rate_hard_coded(layer, x, mask=None):  # p=0.1 instead of the layer's rate
    def drop(h):
        return F.dropout(h, 0.1, training=layer.training)

    if layer.norm_first:
        h = layer.norm1(x)
        x = x + drop(layer.self_attn(h, h, h, mask)[0])
        return x + drop(layer.linear2(layer.activation(layer.linear1(layer.norm2(x)))))
    x = layer.norm1(x + drop(layer.self_attn(x, x, x, mask)[0]))
    return layer.norm2(x + drop(layer.linear2(layer.activation(layer.linear1(x)))))


def encoder_old_style_dropout(layer, x, mask=None):  # scales by (1 - p) at test time, as in the 2014 paper
    def drop(h, module):
        return module(h) if layer.training else h * (1 - module.p)

    if layer.norm_first:
        h = layer.norm1(x)
        x = x + drop(layer.self_attn(h, h, h, mask)[0], layer.dropout1)
        return x + drop(layer.linear2(layer.activation(layer.linear1(layer.norm2(x)))), layer.dropout2)
    x = layer.norm1(x + drop(layer.self_attn(x, x, x, mask)[0], layer.dropout1))
    return layer.norm2(x + drop(layer.linear2(layer.activation(layer.linear1(x))), layer.dropout2))


def encoder_in_place_residual(layer, x, mask=None):  # x += … changes the caller's tensor
    if layer.norm_first:
        h = layer.norm1(x)
        x += layer.dropout1(layer.self_attn(h, h, h, mask)[0])
        x += layer.dropout2(layer.linear2(layer.activation(layer.linear1(layer.norm2(x)))))
        return x
    return encoder_layer_forward(layer, x, mask)


def encoder_detached_residual(layer, x, mask=None):  # the residual path carries no gradient
    if layer.norm_first:
        h = layer.norm1(x)
        x = x.detach() + layer.dropout1(layer.self_attn(h, h, h, mask)[0])
        return x + layer.dropout2(layer.linear2(layer.activation(layer.linear1(layer.norm2(x)))))
    return encoder_layer_forward(layer, x.detach(), mask)


def encoder_under_no_grad(layer, x, mask=None):
    with torch.no_grad():
        return encoder_layer_forward(layer, x, mask)


# ---------------------------------------------------------------- plausible mistakes: decoder layer


def _decoder(layer, y, memory, self_mask, memory_mask, *, pre=None, residual=(1, 1, 1), act=True,
             use_self_mask=True, use_memory_mask=True, kv="memory", q="decoder", norms=(1, 2, 3),
             drops=("dropout1", "dropout2", "dropout3"), where="output"):
    """A written-out decoder layer with one mistake switched on."""
    pre = layer.norm_first if pre is None else pre
    n = [getattr(layer, f"norm{i}") for i in norms]
    f = layer.activation if act is True else (lambda h: h) if act is False else act
    d = [(lambda h: h) if m is None else getattr(layer, m) for m in drops]

    def self_attend(h):
        return layer.self_attn(h, h, h, self_mask if use_self_mask else None)[0]

    def cross_attend(h):
        keys = memory if kv == "memory" else h
        queries = h if q == "decoder" else memory
        return layer.cross_attn(queries, keys, keys, memory_mask if use_memory_mask else None)[0]

    def ffn(h):
        return layer.linear2(f(layer.linear1(h)))

    for sublayer, norm, r, drop in zip((self_attend, cross_attend, ffn), n, residual, d):
        if where == "sum":
            y = drop(r * y + sublayer(norm(y))) if pre else norm(drop(r * y + sublayer(y)))
        else:
            y = r * y + drop(sublayer(norm(y))) if pre else norm(r * y + drop(sublayer(y)))
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


def decoder_relu_hard_coded(layer, y, memory, self_mask=None, memory_mask=None):
    return _decoder(layer, y, memory, self_mask, memory_mask, act=F.relu)


def decoder_sees_the_future(layer, y, memory, self_mask=None, memory_mask=None):  # self_mask ignored
    return _decoder(layer, y, memory, self_mask, memory_mask, use_self_mask=False)


def decoder_padding_only(layer, y, memory, self_mask=None, memory_mask=None):  # causal part dropped, padding kept
    keys = self_mask if self_mask.dim() == 3 else self_mask[None]
    return _decoder(layer, y, memory, keys[:, -1:, :], memory_mask)


def decoder_memory_mask_ignored(layer, y, memory, self_mask=None, memory_mask=None):
    return _decoder(layer, y, memory, self_mask, memory_mask, use_memory_mask=False)


def decoder_memory_mask_negated(layer, y, memory, self_mask=None, memory_mask=None):
    return _decoder(layer, y, memory, self_mask, ~memory_mask)


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


def decoder_no_dropout(layer, y, memory, self_mask=None, memory_mask=None):
    return _decoder(layer, y, memory, self_mask, memory_mask, drops=(None, None, None))


def decoder_no_cross_dropout(layer, y, memory, self_mask=None, memory_mask=None):
    return _decoder(layer, y, memory, self_mask, memory_mask, drops=("dropout1", None, "dropout3"))


def decoder_encoder_dropout_names(layer, y, memory, self_mask=None, memory_mask=None):  # dropout2 on the FFN
    return _decoder(layer, y, memory, self_mask, memory_mask, drops=("dropout1", "dropout3", "dropout2"))


def decoder_dropout2_twice(layer, y, memory, self_mask=None, memory_mask=None):  # encoder habit: dropout2 = FFN
    return _decoder(layer, y, memory, self_mask, memory_mask, drops=("dropout1", "dropout2", "dropout2"))


def decoder_dropout_on_residual_sum(layer, y, memory, self_mask=None, memory_mask=None):
    return _decoder(layer, y, memory, self_mask, memory_mask, where="sum")


def decoder_dropout_in_eval(layer, y, memory, self_mask=None, memory_mask=None):  # F.dropout, training=True
    def self_attention(h):
        return F.dropout(layer.self_attn(h, h, h, self_mask)[0], layer.dropout1.p)

    def cross_attention(h):
        return F.dropout(layer.cross_attn(h, memory, memory, memory_mask)[0], layer.dropout2.p)

    def feed_forward(h):
        return F.dropout(layer.linear2(layer.activation(layer.linear1(h))), layer.dropout3.p)

    for sublayer, norm in ((self_attention, layer.norm1), (cross_attention, layer.norm2),
                           (feed_forward, layer.norm3)):
        y = y + sublayer(norm(y)) if layer.norm_first else norm(y + sublayer(y))
    return y


def decoder_in_place_residual(layer, y, memory, self_mask=None, memory_mask=None):
    if not layer.norm_first:
        return decoder_layer_forward(layer, y, memory, self_mask, memory_mask)
    h = layer.norm1(y)
    y += layer.dropout1(layer.self_attn(h, h, h, self_mask)[0])
    y += layer.dropout2(layer.cross_attn(layer.norm2(y), memory, memory, memory_mask)[0])
    y += layer.dropout3(layer.linear2(layer.activation(layer.linear1(layer.norm3(y)))))
    return y


def decoder_memory_detached(layer, y, memory, self_mask=None, memory_mask=None):  # no gradient into the encoder
    return decoder_layer_forward(layer, y, memory.detach(), self_mask, memory_mask)


def stub(*args, **kwargs):
    raise NotImplementedError("fill in the solution")


CORRECT = [(check_beam_step, beam_step), (check_beam_step, beam_step_notebook),
           (check_label_smoothing_loss, label_smoothing_loss),
           (check_label_smoothing_loss, label_smoothing_soft_targets),
           (check_label_smoothing_loss, label_smoothing_nll_loss), (check_label_smoothing_loss, label_smoothing_loop),
           (check_encoder_layer, encoder_layer), (check_encoder_layer, encoder_layer_forward),
           (check_encoder_layer, encoder_functional_dropout),
           (check_decoder_layer, decoder_layer), (check_decoder_layer, decoder_layer_forward)]

_IN_TRAINING = "in training mode"
WRONG = [  # (checker, mistake, what the failure must say)
    (check_encoder_layer, encoder_always_pre_ln, "this layer is post-LN"),
    (check_encoder_layer, encoder_always_post_ln, "this layer is pre-LN"),
    (check_encoder_layer, encoder_no_attention_residual, "no residual around the self-attention"),
    (check_encoder_layer, encoder_no_ffn_residual, "no residual around the feed-forward"),
    (check_encoder_layer, encoder_no_activation, "no activation"),
    (check_encoder_layer, encoder_relu_hard_coded, "relu hard-coded"),
    (check_encoder_layer, encoder_mask_ignored, "padding mask ignored"),
    (check_encoder_layer, encoder_mask_negated, "mask inverted"),
    (check_encoder_layer, encoder_norms_swapped, "norm1 and norm2 swapped"),
    (check_encoder_layer, encoder_calls_the_layer, "from its parts"),
    (check_encoder_layer, encoder_uses_feed_forward, "from its parts"),
    (check_encoder_layer, encoder_returns_tuple, "expected a tensor"),
    (check_encoder_layer, encoder_no_dropout, "no dropout ran although layer.training is True"),
    (check_encoder_layer, encoder_attention_dropout_only, "no dropout on the feed-forward's output"),
    (check_encoder_layer, encoder_dropout_on_residual_sum, "residual sum"),
    (check_encoder_layer, encoder_dropout_on_sublayer_input, "input instead of its output"),
    (check_encoder_layer, encoder_dropout_after_norm, "after the"),
    (check_encoder_layer, encoder_dropout_modules_swapped, "layer.dropout1 and layer.dropout2 swapped"),
    (check_encoder_layer, encoder_dropout1_everywhere, "layer.dropout1 (on every sublayer|instead of layer.dropout2)"),
    (check_encoder_layer, encoder_inner_dropout_instead, "layer.dropout instead of layer.dropout2"),
    (check_encoder_layer, encoder_inner_dropout_before_activation, "before layer.activation"),
    (check_encoder_layer, encoder_dropout_in_eval, "dropout is on in eval mode"),
    (check_encoder_layer, encoder_fresh_dropout_module, "dropout is on in eval mode"),
    (check_encoder_layer, encoder_dropout_rate_hard_coded, f"{_IN_TRAINING}.*its own dropout module"),
    (check_encoder_layer, encoder_old_style_dropout, "old-style dropout"),
    (check_encoder_layer, encoder_in_place_residual, "changed its input `x` in place"),
    (check_encoder_layer, encoder_detached_residual, "(?s)gradient w.r.t. `x`.*detached"),
    (check_encoder_layer, encoder_under_no_grad, "carries no gradient"),
    (check_decoder_layer, decoder_always_pre_ln, "this layer is post-LN"),
    (check_decoder_layer, decoder_always_post_ln, "this layer is pre-LN"),
    (check_decoder_layer, decoder_no_self_residual, "no residual around the self-attention"),
    (check_decoder_layer, decoder_no_cross_residual, "no residual around the cross-attention"),
    (check_decoder_layer, decoder_no_ffn_residual, "no residual around the feed-forward"),
    (check_decoder_layer, decoder_no_activation, "no activation"),
    (check_decoder_layer, decoder_relu_hard_coded, "relu hard-coded"),
    (check_decoder_layer, decoder_sees_the_future, "sees the future"),
    (check_decoder_layer, decoder_padding_only, "sees the future|looks ahead"),
    (check_decoder_layer, decoder_memory_mask_ignored, "source padding ignored"),
    (check_decoder_layer, decoder_memory_mask_negated, "`memory_mask` inverted"),
    (check_decoder_layer, decoder_cross_reads_decoder, "must come from `memory`"),
    (check_decoder_layer, decoder_cross_swapped, "swapped"),
    (check_decoder_layer, decoder_norms_1_2_swapped, "norm1 and norm2 swapped"),
    (check_decoder_layer, decoder_norms_2_3_swapped, "norm2 and norm3 swapped"),
    (check_decoder_layer, decoder_one_norm_for_all, "wrong output|values differ"),
    (check_decoder_layer, decoder_calls_the_layer, "from its parts"),
    (check_decoder_layer, decoder_uses_feed_forward, "from its parts"),
    (check_decoder_layer, decoder_no_dropout, "no dropout ran although layer.training is True"),
    (check_decoder_layer, decoder_no_cross_dropout, "no dropout on the cross-attention's output"),
    (check_decoder_layer, decoder_encoder_dropout_names, "layer.dropout2 and layer.dropout3 swapped"),
    (check_decoder_layer, decoder_dropout2_twice, "layer.dropout2 instead of layer.dropout3 on the feed-forward"),
    (check_decoder_layer, decoder_dropout_on_residual_sum, "residual sum"),
    (check_decoder_layer, decoder_dropout_in_eval, "dropout is on in eval mode"),
    (check_decoder_layer, decoder_in_place_residual, "changed its input `y` in place"),
    (check_decoder_layer, decoder_memory_detached, "gradient w.r.t. `memory`"),
    (check_beam_step, beam_step_best_per_beam, "best extensions"),
    (check_beam_step, beam_step_ignores_scores, "best extensions"),
    (check_beam_step, beam_step_swapped_division, "flat index"),
    (check_beam_step, beam_step_worst_first, "best first"),
    (check_beam_step, beam_step_true_division, "integer tensor"),
    (check_beam_step, beam_step_keeps_k, r"shape \(B, beam_size\)"),
    (check_beam_step, beam_step_returns_token_first, "parent and token swapped"),
    (check_beam_step, beam_step_adds_in_place, "changed its input `log_probs` in place"),
    (check_beam_step, beam_step_flattens_token_major, "flat index"),
    (check_beam_step, beam_step_multiplies_probabilities, "sums of log-probabilities"),
    (check_beam_step, beam_step_whole_batch, "best extensions|flat index"),
    (check_label_smoothing_loss, smoothing_over_wrong_classes, "V-1 wrong classes"),
    (check_label_smoothing_loss, smoothing_counts_padding, "padding rows counted"),
    (check_label_smoothing_loss, smoothing_mean_over_all_rows, "all N rows"),
    (check_label_smoothing_loss, smoothing_sums_rows, "sum over the rows"),
    (check_label_smoothing_loss, smoothing_library_call, "write the smoothing yourself"),
    (check_label_smoothing_loss, smoothing_library_module, "write the smoothing yourself"),
    (check_label_smoothing_loss, smoothing_sign_flipped, "sign flipped"),
    (check_label_smoothing_loss, smoothing_without_one_minus, r"no \(1-ε\)"),
    (check_label_smoothing_loss, smoothing_sum_over_classes, "sum of -log p"),
    (check_label_smoothing_loss, smoothing_forgets_epsilon, "plain cross-entropy"),
    (check_label_smoothing_loss, smoothing_log_of_softmax, "log_softmax"),
    (check_label_smoothing_loss, smoothing_returns_float, "0-dim tensor"),
    (check_label_smoothing_loss, smoothing_detached, "no gradient"),
    (check_label_smoothing_loss, smoothing_shifts_in_place, "changed its input `logits` in place"),
    (check_label_smoothing_loss, smoothing_float32, "dtype"),
    (check_label_smoothing_loss, smoothing_gathers_ignore_index, "ignore_index=-100"),
    (check_label_smoothing_loss, smoothing_kl_divergence, "KL"),
    (check_label_smoothing_loss, smoothing_target_without_share, "target given 1-ε instead of 1-ε\\+ε/V"),
    (check_label_smoothing_loss, smoothing_mean_over_classes, "mean taken over the classes"),
    (check_label_smoothing_loss, smoothing_aten_kernel, "write the smoothing yourself"),
]


@pytest.mark.parametrize("checker, solution", CORRECT, ids=[s.__name__ for _, s in CORRECT])
@pytest.mark.parametrize("seed", [None, 0, 1, 2])
def test_correct_solutions_pass(checker, solution, seed):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert checker(solution, seed=seed) is None
    assert out.getvalue().startswith("PASS ")


@pytest.mark.parametrize("checker, solution, line", [
    (check_encoder_layer, encoder_layer_forward, "PASS encoder_layer_forward: equals bigtut's EncoderLayer on 4 "
     "random layers (post-LN and pre-LN, relu and gelu, with and without padding)\n"),
    (check_decoder_layer, decoder_layer_forward, "PASS decoder_layer_forward: equals bigtut's DecoderLayer on 4 "
     "random layers (post-LN and pre-LN, relu and gelu, causal and padding masks)\n"),
    (check_beam_step, beam_step_notebook, "PASS beam_step: matches the reference on 7 steps, the first step "
     "included\n"),
], ids=["encoder", "decoder", "beam"])
def test_notebook_solutions_print_the_committed_line(checker, solution, line):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        checker(solution)
    assert out.getvalue() == line


@pytest.mark.parametrize("checker", sorted({c for c, _ in CORRECT}, key=lambda c: c.__name__),
                         ids=lambda c: c.__name__)
def test_stubs_fail_with_a_hint(checker):
    with pytest.raises(CheckFailure, match="not implemented"):
        checker(stub)


@pytest.mark.parametrize("checker, wrong, message", WRONG, ids=[w.__name__ for _, w, _ in WRONG])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_plausible_mistakes_fail_naming_the_mistake(checker, wrong, message, seed):
    with pytest.raises(CheckFailure, match=message) as info:
        checker(wrong, seed=seed)
    assert f"seed={seed}" in str(info.value)  # the failing input can be replayed


def test_every_checker_has_five_mistakes():
    counts = {c: sum(1 for c2, _, _ in WRONG if c2 is c) for c, _ in CORRECT}
    assert min(counts.values()) >= 5, counts


def test_library_label_smoothing_allowed_on_request():
    with contextlib.redirect_stdout(io.StringIO()):
        check_label_smoothing_loss(smoothing_library_call, seed=0, allow_library=True)
        check_label_smoothing_loss(smoothing_library_module, seed=0, allow_library=True)
    assert F.cross_entropy(torch.zeros(1, 2), torch.tensor([0]), label_smoothing=0.1) > 0  # the kernel is back


@pytest.mark.parametrize("checker, wrong", [(check_encoder_layer, encoder_no_dropout),
                                            (check_decoder_layer, decoder_no_dropout)])
def test_dropout_failure_says_how_to_replay(checker, wrong):
    with pytest.raises(CheckFailure, match=r"layer\.train\(\); layer\.dropout1\.p=.*torch\.manual_seed\(\d+\)"):
        checker(wrong, seed=0)


@pytest.mark.parametrize("checker, solution", [(check_encoder_layer, encoder_layer_forward),
                                               (check_decoder_layer, decoder_layer_forward),
                                               (check_encoder_layer, encoder_dropout_in_eval)])
def test_layer_checkers_leave_the_global_generator_alone(checker, solution):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(CheckFailure):
        checker(solution, seed=0)
    assert torch.equal(torch.rand(3), expected)


def test_layer_checkers_are_fast():
    import time

    with contextlib.redirect_stdout(io.StringIO()):
        for checker, solution in ((check_encoder_layer, encoder_layer_forward),
                                  (check_decoder_layer, decoder_layer_forward)):
            checker(solution, seed=0)  # warm up
            start = time.perf_counter()
            checker(solution, seed=1)
            assert time.perf_counter() - start < 1.0


def test_checkers_restore_the_thread_count():
    threads = torch.get_num_threads()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(CheckFailure):
        check_encoder_layer(encoder_layer_forward, seed=0)
        check_decoder_layer(stub, seed=0)
    assert torch.get_num_threads() == threads
