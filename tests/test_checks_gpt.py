"""The chapter-04 checkers pass the right answers (for several seeds) and catch the usual wrong ones."""

import math

import pytest
import torch

from bigtut.checks import CheckFailure
from bigtut.checks.gpt import (
    check_cached_generate,
    check_causal_self_attention,
    check_generate,
    check_gpt_block,
    check_kv_cache_step,
    check_top_p_filter,
)
from bigtut.gpt import top_p_filter


def stub(*args, **kwargs):
    raise NotImplementedError("Exercise: replace this line with your code")


# ------------------------------------------------------------------------------------------------ the block
def gpt_block(x, ln_1, attn, ln_2, mlp):
    h = x + attn(ln_1(x))  # (B, L, d)
    return h + mlp(ln_2(h))


def post_ln(x, ln_1, attn, ln_2, mlp):  # the original Transformer's order: normalise after adding
    h = ln_1(x + attn(x))
    return ln_2(h + mlp(h))


def no_attention_residual(x, ln_1, attn, ln_2, mlp):
    h = attn(ln_1(x))
    return h + mlp(ln_2(h))


def no_mlp_residual(x, ln_1, attn, ln_2, mlp):
    h = x + attn(ln_1(x))
    return mlp(ln_2(h))


def layernorms_swapped(x, ln_1, attn, ln_2, mlp):
    h = x + attn(ln_2(x))
    return h + mlp(ln_1(h))


def mlp_reads_x(x, ln_1, attn, ln_2, mlp):  # a "parallel" block: both branches read the block's input
    return x + attn(ln_1(x)) + mlp(ln_2(x))


def normalised_stream(x, ln_1, attn, ln_2, mlp):  # LayerNorm on the residual path itself
    x = ln_1(x)
    h = x + attn(x)
    h = ln_2(h)
    return h + mlp(h)


# ------------------------------------------------------------------------------------------------ generate
def generate(model, idx, max_new_tokens, temperature=1.0, generator=None, *, crop="last", position=-1,
             after_softmax=False):
    block_size = model.config.block_size
    for _ in range(max_new_tokens):
        if crop == "last":
            context = idx[:, -block_size:]
        elif crop == "first":
            context = idx[:, :block_size]
        else:
            context = idx
        logits = model(context).logits[:, position, :]  # (B, V)
        if temperature == 0:
            next_id = logits.argmax(-1, keepdim=True)
        elif after_softmax:
            next_id = torch.multinomial(logits.softmax(-1) / temperature, 1, generator=generator)
        else:
            next_id = torch.multinomial((logits / temperature).softmax(-1), 1, generator=generator)
        idx = torch.cat([idx, next_id], dim=1)  # (B, T + 1)
    return idx


def no_crop(model, idx, n, temperature=1.0, generator=None):
    return generate(model, idx, n, temperature, generator, crop=None)


def crop_first(model, idx, n, temperature=1.0, generator=None):
    return generate(model, idx, n, temperature, generator, crop="first")


def first_position(model, idx, n, temperature=1.0, generator=None):
    return generate(model, idx, n, temperature, generator, position=0)


def second_to_last_position(model, idx, n, temperature=1.0, generator=None):
    return generate(model, idx, n, temperature, generator, position=-2)


def temperature_after_softmax(model, idx, n, temperature=1.0, generator=None):
    return generate(model, idx, n, temperature, generator, after_softmax=True)


def only_new_tokens(model, idx, n, temperature=1.0, generator=None):
    return generate(model, idx, n, temperature, generator)[:, idx.shape[1]:]


def always_greedy(model, idx, n, temperature=1.0, generator=None):
    return generate(model, idx, n, 0.0, generator)


# ------------------------------------------------------------------------------------------------ KV cache
def cached_generate(model, idx, max_new_tokens, *, mode="right"):
    cache = model.new_cache()
    logits = model(idx, cache=cache).logits  # (B, T, V): the prompt, once
    for step in range(max_new_tokens):
        next_id = logits[:, -1].argmax(-1, keepdim=True)  # (B, 1)
        idx = torch.cat([idx, next_id], dim=1)
        if step == max_new_tokens - 1:
            break
        if mode == "right":
            logits = model(next_id, cache=cache).logits
        elif mode == "fresh_cache":  # a new cache every step: the past is forgotten
            cache = model.new_cache()
            logits = model(next_id, cache=cache).logits
        elif mode == "refeed":  # the whole sequence again, into the same cache
            logits = model(idx, cache=cache).logits
        elif mode == "no_cache":  # correct tokens, but recomputes the past every step
            logits = model(idx).logits
    return idx


RIGHT = [(check_gpt_block, gpt_block), (check_generate, generate), (check_cached_generate, cached_generate)]


@pytest.mark.parametrize("checker, solution", RIGHT, ids=[c.__name__ for c, _ in RIGHT])
def test_new_checkers_pass_the_right_answer(checker, solution, capsys):
    for seed in (0, 1, 2):
        checker(solution, seed=seed)
    assert capsys.readouterr().out.count("PASS") == 3


WRONG = [
    (check_gpt_block, post_ln), (check_gpt_block, no_attention_residual), (check_gpt_block, no_mlp_residual),
    (check_gpt_block, layernorms_swapped), (check_gpt_block, mlp_reads_x), (check_gpt_block, normalised_stream),
    (check_gpt_block, stub),
    (check_generate, no_crop), (check_generate, crop_first), (check_generate, first_position),
    (check_generate, second_to_last_position), (check_generate, temperature_after_softmax),
    (check_generate, only_new_tokens), (check_generate, always_greedy), (check_generate, stub),
    (check_cached_generate, lambda m, i, n: cached_generate(m, i, n, mode="fresh_cache")),
    (check_cached_generate, lambda m, i, n: cached_generate(m, i, n, mode="refeed")),
    (check_cached_generate, lambda m, i, n: cached_generate(m, i, n, mode="no_cache")),
    (check_cached_generate, lambda m, i, n: generate(m, i, n, 0.0)),  # right tokens, no cache at all
    (check_cached_generate, stub),
]
WRONG_IDS = ["post_ln", "no_attention_residual", "no_mlp_residual", "layernorms_swapped", "mlp_reads_x",
             "normalised_stream", "block_stub", "no_crop", "crop_first", "first_position", "second_to_last_position",
             "temperature_after_softmax", "only_new_tokens", "always_greedy", "generate_stub", "fresh_cache",
             "refeed_whole_sequence", "recompute_without_cache", "uncached_generate", "cached_stub"]


@pytest.mark.parametrize("checker, wrong", WRONG, ids=WRONG_IDS)
def test_new_checkers_catch_wrong_answers(checker, wrong):
    for seed in (0, 1, 2):
        with pytest.raises(CheckFailure):
            checker(wrong, seed=seed)


def test_failure_messages_say_what_and_where():
    with pytest.raises(CheckFailure, match=r"seed=3"):
        check_gpt_block(post_ln, seed=3)
    with pytest.raises(CheckFailure, match=r"block_size"):
        check_generate(no_crop, seed=0)
    with pytest.raises(CheckFailure, match=r"new_cache\(\) was called 0 times"):
        check_cached_generate(lambda m, i, n: generate(m, i, n, 0.0), seed=0)
    with pytest.raises(CheckFailure, match=r"new_cache\(\) was called \d+ times"):
        check_cached_generate(lambda m, i, n: cached_generate(m, i, n, mode="fresh_cache"), seed=0)
    with pytest.raises(CheckFailure, match=r"one new token per call"):
        check_cached_generate(lambda m, i, n: cached_generate(m, i, n, mode="no_cache"), seed=0)
    with pytest.raises(CheckFailure, match=r"not implemented"):
        check_generate(stub, seed=0)


def test_seed_none_draws_fresh_cases(capsys):
    check_gpt_block(gpt_block)
    check_generate(generate)
    assert capsys.readouterr().out.count("PASS") == 2


# ------------------------------------------------------------------------------------------------ attention
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


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_causal_self_attention_checker(seed, capsys):
    check_causal_self_attention(good_attention, seed=seed)
    assert capsys.readouterr().out.startswith("PASS causal_self_attention")
    wrong = [
        lambda *a: good_attention(*a, causal=False),  # forgot the mask
        lambda *a: good_attention(*a, upper=True),  # mask the past instead of the future
        lambda *a: good_attention(*a, scale=False),  # forgot 1/sqrt(d_head)
        lambda x, wq, wk, wv, wo, h: good_attention(x, wq, wk, wv, wo, 1),  # one head of width d
    ]
    for candidate in [stub, *wrong]:
        with pytest.raises(CheckFailure):
            check_causal_self_attention(candidate, seed=seed)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_top_p_checker(seed, capsys):
    check_top_p_filter(top_p_filter, seed=seed)
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
            check_top_p_filter(candidate, seed=seed)


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


def not_appended(x_new, past_k, past_v, *rest):  # right output, but hands back the old cache
    out, _, _ = good_step(x_new, past_k, past_v, *rest)
    return out, past_k, past_v


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kv_cache_step_checker(seed, capsys):
    check_kv_cache_step(good_step, seed=seed)
    assert "PASS kv_cache_step" in capsys.readouterr().out
    wrong = [
        lambda *a: good_step(*a, append=False),
        lambda *a: good_step(*a, prepend=True),
        lambda *a: good_step(*a)[0],  # forgot to return the updated cache
        not_appended,
    ]
    for candidate in [stub, *wrong]:
        with pytest.raises(CheckFailure):
            check_kv_cache_step(candidate, seed=seed)
