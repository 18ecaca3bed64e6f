"""The chapter-04 checkers accept correct solutions and reject stubs and plausible mistakes."""

import math

import pytest
import torch

from bigtut.checks import CheckFailure
from bigtut.checks.gpt import check_causal_self_attention, check_kv_cache_step, check_top_p_filter
from bigtut.gpt import top_p_filter


def _heads(t, n_head):
    B, L, d = t.shape
    return t.view(B, L, n_head, d // n_head).transpose(1, 2)  # (B, h, L, d_head)


def _attend(q, k, v, causal=True, scale=True, upper=False):
    scores = q @ k.transpose(-2, -1) / (math.sqrt(q.shape[-1]) if scale else 1.0)
    if causal:
        L, T = scores.shape[-2:]
        allowed = torch.ones(L, T, dtype=torch.bool).tril(T - L)
        scores = scores.masked_fill(~(allowed.T if upper else allowed), float("-inf"))
    return scores.softmax(-1) @ v


def good_attention(x, w_q, w_k, w_v, w_o, n_head, **kwargs):
    q, k, v = (_heads(x @ w.T, n_head) for w in (w_q, w_k, w_v))
    out = _attend(q, k, v, **kwargs)
    B, _, L, _ = out.shape
    return out.transpose(1, 2).reshape(B, L, -1) @ w_o.T


def stub(*args, **kwargs):
    raise NotImplementedError("Exercise: replace this line with your code")


def test_causal_self_attention_checker(capsys):
    check_causal_self_attention(good_attention)
    assert capsys.readouterr().out.startswith("PASS causal_self_attention")
    wrong = [
        lambda *a: good_attention(*a, causal=False),  # forgot the mask
        lambda *a: good_attention(*a, upper=True),  # mask the past instead of the future
        lambda *a: good_attention(*a, scale=False),  # forgot 1/sqrt(d_head)
        lambda x, wq, wk, wv, wo, h: good_attention(x, wq, wk, wv, wo, 1),  # one head of width d
    ]
    for candidate in [stub, *wrong]:
        with pytest.raises(CheckFailure):
            check_causal_self_attention(candidate)


def test_top_p_checker(capsys):
    check_top_p_filter(top_p_filter)
    assert "PASS top_p_filter" in capsys.readouterr().out

    def stops_before_crossing(logits, p):  # keeps tokens while the running mass is <= p: one too few
        probs, order = logits.softmax(-1).sort(-1, descending=True)
        remove = probs.cumsum(-1) > p
        return logits.masked_fill(torch.zeros_like(remove).scatter(-1, order, remove), float("-inf"))

    def on_logits_not_probs(logits, p):  # thresholds raw logits instead of probabilities
        return logits.masked_fill(logits < p, float("-inf"))

    def renormalised(logits, p):  # returns probabilities, not logits
        return top_p_filter(logits, p).softmax(-1)

    for candidate in (stub, stops_before_crossing, on_logits_not_probs, renormalised):
        with pytest.raises(CheckFailure):
            check_top_p_filter(candidate)


def good_step(x_new, past_k, past_v, w_q, w_k, w_v, w_o, n_head, append=True, prepend=False):
    q, k, v = (_heads(x_new @ w.T, n_head) for w in (w_q, w_k, w_v))  # (B, h, 1, d_head)
    if prepend:
        keys, values = torch.cat([k, past_k], 2), torch.cat([v, past_v], 2)
    else:
        keys, values = torch.cat([past_k, k], 2), torch.cat([past_v, v], 2)
    if append:
        out = _attend(q, keys, values, causal=False)
    else:  # attends to the past only, forgetting the new token's own key
        out = _attend(q, past_k, past_v, causal=False) if past_k.shape[2] else v
    B = x_new.shape[0]
    return out.transpose(1, 2).reshape(B, 1, -1) @ w_o.T, keys, values


def test_kv_cache_step_checker(capsys):
    check_kv_cache_step(good_step)
    assert "PASS kv_cache_step" in capsys.readouterr().out
    wrong = [
        lambda *a: good_step(*a, append=False),
        lambda *a: good_step(*a, prepend=True),
        lambda *a: good_step(*a)[0],  # forgot to return the updated cache
    ]
    for candidate in [stub, *wrong]:
        with pytest.raises(CheckFailure):
            check_kv_cache_step(candidate)
