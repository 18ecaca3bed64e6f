"""The chapter-04 checkers pass the right answers (for several seeds) and catch the usual wrong ones.

Every wrong answer below is a small function with one mistake students really make; each is run on seeds 0, 1
and 2 and must fail with a message that names the mistake (the regular expression next to it).
"""

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from checker_cases import assert_fails_naming, assert_passes_on_seeds

from bigtut.checks import CheckFailure
from bigtut.checks.gpt import (
    GPTLayout,
    check_cached_generate,
    check_generate,
    check_gpt_block,
    check_gpt_forward,
    check_kv_cache_step,
    check_load_gpt_weights,
    check_top_p_filter,
)
from bigtut.gpt import GPT, GPTConfig, top_p_filter

SEEDS = (0, 1, 2)


def stub(*args, **kwargs):
    raise NotImplementedError("Exercise: replace this line with your code")


# ------------------------------------------------------------------------------------------------ the block
def gpt_block(x, ln_1, attn, ln_2, mlp):  # notebook 04, exercise 1
    h = x + attn(ln_1(x))  # (B, L, d)
    return h + mlp(ln_2(h))


def in_place_on_h(x, ln_1, attn, ln_2, mlp):  # right values, but ln_2's backward needs the h it overwrote
    h = x + attn(ln_1(x))
    h += mlp(ln_2(h))
    return h


def gpt_block_functional(x, ln_1, attn, ln_2, mlp):  # right too: no intermediate name
    return (lambda h: h + mlp(ln_2(h)))(x + attn(ln_1(x)))


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


def ln_1_twice(x, ln_1, attn, ln_2, mlp):
    h = x + attn(ln_1(x))
    return h + mlp(ln_1(h))


def mlp_reads_x(x, ln_1, attn, ln_2, mlp):  # a "parallel" block: both branches read the block's input
    return x + attn(ln_1(x)) + mlp(ln_2(x))


def normalised_stream(x, ln_1, attn, ln_2, mlp):  # LayerNorm on the residual path itself
    x = ln_1(x)
    h = x + attn(x)
    h = ln_2(h)
    return h + mlp(h)


def no_ln_before_attention(x, ln_1, attn, ln_2, mlp):
    h = x + attn(x)
    return h + mlp(ln_2(h))


def no_ln_before_mlp(x, ln_1, attn, ln_2, mlp):
    h = x + attn(ln_1(x))
    return h + mlp(h)


def mlp_forgotten(x, ln_1, attn, ln_2, mlp):
    return x + attn(ln_1(x))


def extra_final_norm(x, ln_1, attn, ln_2, mlp):  # GPT's final LayerNorm belongs after the last block only
    h = x + attn(ln_1(x))
    return ln_2(h + mlp(ln_2(h)))


def residual_in_place(x, ln_1, attn, ln_2, mlp):  # right values, but overwrites the caller's x
    x += attn(ln_1(x))
    x += mlp(ln_2(x))
    return x


def detached_branch(x, ln_1, attn, ln_2, mlp):  # right values, but no gradient reaches the attention
    h = x + attn(ln_1(x)).detach()
    return h + mlp(ln_2(h))


BLOCK_WRONG = {
    "post_ln": (post_ln, "post-LN"),
    "no_attention_residual": (no_attention_residual, "residual around the attention is missing"),
    "no_mlp_residual": (no_mlp_residual, "residual around the MLP is missing"),
    "layernorms_swapped": (layernorms_swapped, "ln_1 and ln_2 are swapped"),
    "ln_1_twice": (ln_1_twice, "ln_1 is used before the MLP"),
    "mlp_reads_x": (mlp_reads_x, "MLP reads the block's input x"),
    "normalised_stream": (normalised_stream, "residual stream itself is normalised"),
    "no_ln_before_attention": (no_ln_before_attention, "attention reads x without ln_1"),
    "no_ln_before_mlp": (no_ln_before_mlp, "MLP reads h without ln_2"),
    "mlp_forgotten": (mlp_forgotten, "MLP sub-layer is missing"),
    "extra_final_norm": (extra_final_norm, "output is normalised"),
    "residual_in_place": (residual_in_place, "changed x in place"),
    "detached_branch": (detached_branch, "values are right but the gradient"),
    "in_place_on_h": (in_place_on_h, "in-place update \\(h \\+= ...\\) overwrote"),
    "stub": (stub, "not implemented"),
}


# ------------------------------------------------------------------------------------------------ generate
def generate(model, idx, max_new_tokens, temperature=1.0, generator=None):  # notebook 04, exercise 2
    for _ in range(max_new_tokens):
        context = idx[:, -model.config.block_size:]  # (B, <= block_size)
        logits = model(context).logits[:, -1, :]  # (B, V)
        if temperature == 0:
            next_id = logits.argmax(dim=-1, keepdim=True)  # (B, 1)
        else:
            probs = (logits / temperature).softmax(dim=-1)  # (B, V)
            next_id = torch.multinomial(probs, 1, generator=generator)  # (B, 1)
        idx = torch.cat([idx, next_id], dim=1)  # (B, T + 1)
    return idx


def _generate(model, idx, max_new_tokens, temperature=1.0, generator=None, *, crop="last", position=-1,
              scale="divide", softmax_dim=-1, use_generator=True, greedy_branch=True):
    """``generate`` with one mistake switched on."""
    block_size = model.config.block_size
    for _ in range(max_new_tokens):
        context = {"last": idx[:, -block_size:], "first": idx[:, :block_size], "none": idx,
                   "one_short": idx[:, -(block_size - 1):]}[crop]
        logits = model(context).logits[:, position, :]  # (B, V)
        if temperature == 0 and greedy_branch:
            next_id = logits.argmax(-1, keepdim=True)
        else:
            if scale == "divide":
                probs = (logits / temperature).softmax(softmax_dim)
            elif scale == "after_softmax":
                probs = logits.softmax(softmax_dim) / temperature
            elif scale == "multiply":
                probs = (logits * temperature).softmax(softmax_dim)
            else:  # temperature ignored
                probs = logits.softmax(softmax_dim)
            next_id = torch.multinomial(probs, 1, generator=generator if use_generator else None)
        idx = torch.cat([idx, next_id], dim=1)  # (B, T + 1)
    return idx


def _generate_with(**mistake):
    def candidate(model, idx, n, temperature=1.0, generator=None):
        return _generate(model, idx, n, temperature, generator, **mistake)

    return candidate


def only_new_tokens(model, idx, n, temperature=1.0, generator=None):
    return generate(model, idx, n, temperature, generator)[:, idx.shape[1]:]


def always_greedy(model, idx, n, temperature=1.0, generator=None):
    return generate(model, idx, n, 0.0, generator)


def zero_temperature_samples(model, idx, n, temperature=1.0, generator=None):  # T = 0 treated as T = 1
    return generate(model, idx, n, temperature or 1.0, generator)


def one_more_token(model, idx, n, temperature=1.0, generator=None):
    return generate(model, idx, n + 1, temperature, generator)


def appended_on_batch_axis(model, idx, n, temperature=1.0, generator=None):  # torch.cat's default dim=0
    for _ in range(n):
        logits = model(idx[:, -model.config.block_size:]).logits[:, -1]
        next_id = logits.argmax(-1, keepdim=True) if temperature == 0 else torch.multinomial(
            (logits / temperature).softmax(-1), 1, generator=generator)
        idx = torch.cat([idx, next_id])
    return idx


def sample_shared_by_rows(model, idx, n, temperature=1.0, generator=None):  # row 0's token for every row
    for _ in range(n):
        logits = model(idx[:, -model.config.block_size:]).logits[:, -1]
        if temperature == 0:
            next_id = logits.argmax(-1, keepdim=True)
        else:
            next_id = torch.multinomial((logits / temperature).softmax(-1), 1, generator=generator)
        idx = torch.cat([idx, next_id[:1].expand(idx.shape[0], 1)], dim=1)
    return idx


GENERATE_WRONG = {
    "no_crop": (_generate_with(crop="none"), "context was not cropped"),
    "crop_first": (_generate_with(crop="first"), "first block_size tokens"),
    "crop_one_short": (_generate_with(crop="one_short"), "block_size - 1"),
    "first_position": (_generate_with(position=0), "position 0"),
    "second_to_last_position": (_generate_with(position=-2), "second-to-last"),
    "temperature_after_softmax": (_generate_with(scale="after_softmax"), "temperature has no effect"),
    "temperature_multiplies": (_generate_with(scale="multiply"), "multiplied by the temperature"),
    "temperature_ignored": (_generate_with(scale="ignored"), "temperature has no effect"),
    "softmax_over_batch": (_generate_with(softmax_dim=0), "softmax runs over the batch axis"),
    "generator_ignored": (_generate_with(use_generator=False), "generator"),
    "no_greedy_branch": (_generate_with(greedy_branch=False), "arg-max instead of dividing by 0"),
    "zero_temperature_samples": (zero_temperature_samples, "temperature=0 means greedy"),
    "always_greedy": (always_greedy, "greedy at every temperature"),
    "only_new_tokens": (only_new_tokens, "prompt \\+ new tokens"),
    "one_more_token": (one_more_token, "prompt \\+ new tokens"),
    "appended_on_batch_axis": (appended_on_batch_axis, "append along dim=1"),
    "sample_shared_by_rows": (sample_shared_by_rows, "row"),
    "stub": (stub, "not implemented"),
}


# ------------------------------------------------------------------------------------------------ KV cache
def cached_generate(model, idx, max_new_tokens):  # notebook 04, exercise 3
    cache = model.new_cache()  # one KVCache per block, empty
    logits = model(idx, cache=cache).logits  # (B, T, V): the prompt, once
    for step in range(max_new_tokens):
        next_id = logits[:, -1].argmax(dim=-1, keepdim=True)  # (B, 1)
        idx = torch.cat([idx, next_id], dim=1)  # (B, T + step + 1)
        if step < max_new_tokens - 1:
            logits = model(next_id, cache=cache).logits  # (B, 1, V): only the new token
    return idx


def cached_generate_feeds_last_too(model, idx, n):  # right too: one wasted call at the end
    cache = model.new_cache()
    logits = model(idx, cache=cache).logits
    for _ in range(n):
        next_id = logits[:, -1].argmax(-1, keepdim=True)
        idx = torch.cat([idx, next_id], dim=1)
        logits = model(next_id, cache=cache).logits
    return idx


def _cached(mode):
    def candidate(model, idx, n):
        cache = model.new_cache()
        logits = model(idx, cache=cache).logits if mode != "prompt_not_cached" else model(idx).logits
        for _ in range(n):
            if mode == "first_position":
                next_id = logits[:, 0].argmax(-1, keepdim=True)
            elif mode == "sampled":
                next_id = torch.multinomial(logits[:, -1].softmax(-1), 1)
            else:
                next_id = logits[:, -1].argmax(-1, keepdim=True)
            if mode == "refeed_previous_token":  # feeds the token before the new one (the cache then holds it twice)
                logits = model(idx[:, -1:], cache=cache).logits
                idx = torch.cat([idx, next_id], dim=1)
                continue
            idx = torch.cat([idx, next_id], dim=1)
            if mode == "fresh_cache":  # a new cache every step: the past is forgotten
                cache = model.new_cache()
                logits = model(next_id, cache=cache).logits
            elif mode == "refeed":  # the whole sequence again, into the same cache
                logits = model(idx, cache=cache).logits
            elif mode == "no_cache":  # right tokens, but recomputes the past every step
                logits = model(idx).logits
            elif mode == "forgets_cache":  # the new token alone, without the cache: no context at all
                logits = model(next_id).logits
            else:
                logits = model(next_id, cache=cache).logits
        return idx

    return candidate


CACHED_WRONG = {
    "fresh_cache": (_cached("fresh_cache"), "new_cache\\(\\) was called \\d+ times"),
    "refeed_whole_sequence": (_cached("refeed"), "one new token per call"),
    "recompute_without_cache": (_cached("no_cache"), "one new token per call"),
    "uncached_generate": (lambda m, i, n: generate(m, i, n, 0.0), "new_cache\\(\\) was called 0 times"),
    "forgets_cache": (_cached("forgets_cache"), "without cache="),
    "prompt_not_cached": (_cached("prompt_not_cached"), "prompt was fed without the cache"),
    "refeed_previous_token": (_cached("refeed_previous_token"), "fed the previous token"),
    "first_position": (_cached("first_position"), "differs first"),
    "sampled": (_cached("sampled"), "cached_generate is greedy"),
    "stub": (stub, "not implemented"),
}


# ------------------------------------------------------------------------------------------------ attention
def _heads(t, n_head):
    B, L, d = t.shape
    return t.view(B, L, n_head, d // n_head).transpose(1, 2)  # (B, h, L, d_head)


def _attend(q, k, v, causal=True, scale=True, upper=False, scale_by=None, softmax_dim=-1):
    divisor = scale_by if scale_by is not None else (math.sqrt(q.shape[-1]) if scale else 1.0)
    scores = q @ k.transpose(-2, -1) / divisor
    if causal:
        L, T = scores.shape[-2:]
        allowed = torch.ones(L, T, dtype=torch.bool).tril(T - L)
        scores = scores.masked_fill(~(allowed.T if upper else allowed), float("-inf"))
    return scores.softmax(softmax_dim) @ v


# ------------------------------------------------------------------------------------------------ top-p
def top_p(logits, p):  # notebook 04, exercise 5
    sorted_logits, order = logits.sort(dim=-1, descending=True)  # (..., V)
    probs = sorted_logits.softmax(dim=-1)
    mass_before = probs.cumsum(dim=-1) - probs  # mass of the better-ranked tokens
    remove_sorted = mass_before >= p
    remove = torch.zeros_like(remove_sorted).scatter(-1, order, remove_sorted)  # vocabulary order
    return logits.masked_fill(remove, float("-inf"))


def _top_p(logits, p, *, descending=True, rule="before>=", back="scatter", fill=float("-inf"), sort_dim=-1,
           in_place=False, sort=True):
    """``top_p`` with one mistake switched on."""
    if sort:
        sorted_logits, order = logits.sort(dim=sort_dim, descending=descending)
    else:
        sorted_logits, order = logits, torch.arange(logits.shape[-1]).expand_as(logits)
    probs = sorted_logits.softmax(dim=-1)
    cumulative = probs.cumsum(dim=-1)
    remove_sorted = {"before>=": cumulative - probs >= p, "before>": cumulative - probs > p,
                     "cum>": cumulative > p, "cum>=": cumulative >= p}[rule]
    if back == "scatter":
        remove = torch.zeros_like(remove_sorted).scatter(sort_dim, order, remove_sorted)
    elif back == "gather":
        remove = remove_sorted.gather(-1, order)
    else:  # the decision stays in sorted order
        return sorted_logits.masked_fill(remove_sorted, fill)
    if in_place:
        return logits.masked_fill_(remove, fill)
    return logits.masked_fill(remove, fill)


def _top_p_with(**mistake):
    def candidate(logits, p):
        return _top_p(logits, p, **mistake)

    return candidate


def hf_style(logits, p):  # the Hugging Face formulation (cumsum > p, shifted by one) keeps mass_before == p
    sorted_logits, order = logits.sort(dim=-1, descending=True)
    remove_sorted = sorted_logits.softmax(-1).cumsum(-1) > p
    remove_sorted[..., 1:] = remove_sorted[..., :-1].clone()
    remove_sorted[..., 0] = False
    return logits.masked_fill(remove_sorted.scatter(-1, order, remove_sorted), float("-inf"))


def on_logits_not_probs(logits, p):  # thresholds raw logits instead of probabilities
    return logits.masked_fill(logits < p, float("-inf"))


def renormalised(logits, p):  # returns probabilities, not logits
    return top_p_filter(logits, p).softmax(-1)


def filtered_probabilities(logits, p):  # the probabilities with the tail zeroed
    return logits.softmax(-1).masked_fill(top_p_filter(logits, p).isinf(), 0.0)


TOP_P_WRONG = {
    "stops_before_crossing": (_top_p_with(rule="cum>"), "one token too few"),
    "crossing_token_dropped": (_top_p_with(rule="cum>="), "one token too few"),
    "on_logits_not_probs": (on_logits_not_probs, "values differ"),
    "renormalised": (renormalised, "probabilities"),
    "filtered_probabilities": (filtered_probabilities, "probabilities"),
    "ascending_sort": (_top_p_with(descending=False), "least likely"),
    "no_sort": (_top_p_with(sort=False), "vocabulary order"),
    "sorted_order_returned": (_top_p_with(back="none"), "sorted order"),
    "gather_not_scatter": (_top_p_with(back="gather"), "scatter"),
    "fills_zero": (_top_p_with(fill=0.0), "-inf"),
    "fills_large_negative": (_top_p_with(fill=-1e9), "-inf"),
    "in_place": (_top_p_with(in_place=True), "in place"),
    "stub": (stub, "not implemented"),
}


def top_p_sort_dim0(logits, p):  # sorts along the batch axis: right only for 1-D logits
    return _top_p(logits, p, sort_dim=0)


TOP_P_WRONG["sort_dim0"] = (top_p_sort_dim0, "values differ|raised")
TOP_P_WRONG["hf_style_boundary"] = (hf_style, "equals p exactly")


# ------------------------------------------------------------------------------------------------ one cache step
def kv_cache_step(x_new, past_k, past_v, w_q, w_k, w_v, w_o, n_head):  # notebook 04, exercise 4
    B, _, d = x_new.shape
    d_head = d // n_head

    def heads(t):  # (B, 1, d) -> (B, h, 1, d_head)
        return t.view(B, 1, n_head, d_head).transpose(1, 2)

    q, k, v = heads(x_new @ w_q.T), heads(x_new @ w_k.T), heads(x_new @ w_v.T)
    keys = torch.cat([past_k, k], dim=2)  # (B, h, T + 1, d_head)
    values = torch.cat([past_v, v], dim=2)
    weights = (q @ keys.transpose(-2, -1) / math.sqrt(d_head)).softmax(dim=-1)  # (B, h, 1, T + 1): no mask
    out = (weights @ values).transpose(1, 2).reshape(B, 1, d) @ w_o.T  # (B, 1, d)
    return out, keys, values


def good_step(x_new, past_k, past_v, w_q, w_k, w_v, w_o, n_head, append=True, prepend=False, scale=True,
              scale_by=None, softmax_dim=-1, transposed=False, out=True, swap_kv=False, cat_dim=2, mask=False):
    B = x_new.shape[0]
    q, k, v = (_heads(x_new @ (w if transposed else w.T), n_head) for w in (w_q, w_k, w_v))  # (B, h, 1, d_head)
    if swap_kv:
        k, v = v, k
    if prepend:
        keys, values = torch.cat([k, past_k], cat_dim), torch.cat([v, past_v], cat_dim)
    else:
        keys, values = torch.cat([past_k, k], cat_dim), torch.cat([past_v, v], cat_dim)
    if append:
        if mask:  # a square causal mask cut to one query row: only the first key stays visible
            T1 = keys.shape[2]
            scores = q @ keys.transpose(-2, -1) / math.sqrt(q.shape[-1])
            scores = scores.masked_fill(~torch.ones(T1, T1, dtype=torch.bool).tril()[:1], float("-inf"))
            o = scores.softmax(-1) @ values
        else:
            o = _attend(q, keys, values, causal=False, scale=scale, scale_by=scale_by, softmax_dim=softmax_dim)
    else:  # attends to the past only, forgetting the new token's own key
        o = _attend(q, past_k, past_v, causal=False) if past_k.shape[2] else v
    o = o.transpose(1, 2).reshape(B, 1, -1)
    if out:
        o = o @ (w_o if transposed else w_o.T)
    return o, keys, values


def _step_with(**mistake):
    def candidate(*args):
        return good_step(*args, **mistake)

    return candidate


def not_appended(x_new, past_k, past_v, *rest):  # right output, but hands back the old cache
    out, _, _ = good_step(x_new, past_k, past_v, *rest)
    return out, past_k, past_v


def only_new_key(x_new, past_k, past_v, *rest):  # returns the new key and value instead of the whole cache
    out, keys, values = good_step(x_new, past_k, past_v, *rest)
    return out, keys[:, :, -1:], values[:, :, -1:]


def step_sqrt_d(x_new, past_k, past_v, w_q, w_k, w_v, w_o, n_head):
    return good_step(x_new, past_k, past_v, w_q, w_k, w_v, w_o, n_head, scale_by=math.sqrt(x_new.shape[-1]))


STEP_WRONG = {
    "past_only": (_step_with(append=False), "new position's own key"),
    "prepended": (_step_with(prepend=True), "in front"),
    "no_tuple": (lambda *a: good_step(*a)[0], "tuple"),
    "not_appended": (not_appended, "without the new position"),
    "only_new_key": (only_new_key, "only the new position's key"),
    "no_scale": (_step_with(scale=False), "1/sqrt\\(d_head\\) is missing"),
    "sqrt_d_model": (step_sqrt_d, "sqrt\\(d_model\\)"),
    "softmax_over_queries": (_step_with(softmax_dim=-2), "softmax"),
    "transposed_weights": (_step_with(transposed=True), "x @ w.T"),
    "no_out_projection": (_step_with(out=False), "w_o"),
    "keys_values_swapped": (_step_with(swap_kv=True), "swapped"),
    "cat_on_head_axis": (_step_with(cat_dim=1), "grows along dim 2"),
    "square_causal_mask": (_step_with(mask=True), "mask"),
    "stub": (stub, "not implemented"),
}


# ------------------------------------------------------------------------------------------------ the tests
RIGHT = [
    (check_gpt_block, gpt_block), (check_gpt_block, gpt_block_functional), (check_generate, generate),
    (check_cached_generate, cached_generate), (check_cached_generate, cached_generate_feeds_last_too),
    (check_top_p_filter, top_p), (check_top_p_filter, top_p_filter),
    (check_kv_cache_step, kv_cache_step), (check_kv_cache_step, good_step),
]


@pytest.mark.parametrize("checker, solution", RIGHT, ids=[f"{c.__name__}-{s.__name__}" for c, s in RIGHT])
def test_checkers_pass_the_right_answer(checker, solution, capsys):
    assert_passes_on_seeds(checker, solution, capsys)


WRONG = [(check_gpt_block, key, *value) for key, value in BLOCK_WRONG.items()]
WRONG += [(check_generate, key, *value) for key, value in GENERATE_WRONG.items()]
WRONG += [(check_cached_generate, key, *value) for key, value in CACHED_WRONG.items()]
WRONG += [(check_top_p_filter, key, *value) for key, value in TOP_P_WRONG.items()]
WRONG += [(check_kv_cache_step, key, *value) for key, value in STEP_WRONG.items()]


@pytest.mark.parametrize("checker, mistake, wrong, message", WRONG,
                         ids=[f"{c.__name__}-{k}" for c, k, _, _ in WRONG])
def test_checkers_catch_wrong_answers_and_name_the_mistake(checker, mistake, wrong, message):
    assert_fails_naming(checker, wrong, message)


def test_at_least_five_wrong_answers_per_checker():
    for checker in (check_gpt_block, check_generate, check_cached_generate, check_top_p_filter,
                    check_kv_cache_step):
        assert sum(c is checker and k != "stub" for c, k, _, _ in WRONG) >= 5, checker.__name__


def test_failure_messages_quote_the_seed():
    for checker, wrong in ((check_gpt_block, post_ln), (check_generate, GENERATE_WRONG["no_crop"][0]),
                           (check_cached_generate, CACHED_WRONG["fresh_cache"][0]),
                           (check_top_p_filter, TOP_P_WRONG["no_sort"][0]),
                           (check_kv_cache_step, STEP_WRONG["no_scale"][0])):
        with pytest.raises(CheckFailure, match=r"seed=3"):
            checker(wrong, seed=3)


def test_committed_pass_lines_are_unchanged(capsys):
    """The notebook compares these lines byte for byte (``# NBVAL_CHECK_OUTPUT``)."""
    check_gpt_block(gpt_block, seed=0)
    check_generate(generate, seed=0)
    check_cached_generate(cached_generate, seed=0)
    check_kv_cache_step(kv_cache_step, seed=0)
    check_top_p_filter(top_p, seed=0)
    assert capsys.readouterr().out.splitlines() == [
        "PASS gpt_block: pre-LN block equals bigtut.gpt.Block on 3 random blocks",
        "PASS generate: greedy and sampled (T = 0.5, 1, 2) generation equals bigtut.gpt.generate, past block_size too",
        "PASS cached_generate: greedy tokens equal uncached generation; one cache, the prompt fed once, then one "
        "token per step",
        "PASS kv_cache_step: matches the reference and full causal attention on 3 random cases",
        "PASS top_p_filter: matches the reference on 7 random cases",
    ]


def test_seed_none_draws_fresh_cases(capsys):
    check_gpt_block(gpt_block)
    check_generate(generate)
    check_top_p_filter(top_p)
    assert capsys.readouterr().out.count("PASS") == 3


# ------------------------------------------------------------------------------------------------ the whole GPT
class HandGPT(torch.nn.Module):  # notebook 04, exercise 4, with switches for the usual mistakes
    mistakes: dict = {}

    def __init__(self, config):
        super().__init__()
        V, T, d, self.n_head = config.vocab_size, config.block_size, config.d_model, config.n_head
        self.wte, self.wpe = torch.nn.Embedding(V, d), torch.nn.Embedding(T, d)
        self.h = torch.nn.ModuleList(torch.nn.ModuleDict({
            "ln_1": torch.nn.LayerNorm(d), "c_attn": torch.nn.Linear(d, 3 * d), "attn_proj": torch.nn.Linear(d, d),
            "ln_2": torch.nn.LayerNorm(d), "c_fc": torch.nn.Linear(d, 4 * d), "mlp_proj": torch.nn.Linear(4 * d, d),
        }) for _ in range(config.n_layer))
        self.ln_f = torch.nn.LayerNorm(d)

    def norm(self, u, ln):
        var = u.var(-1, unbiased=bool(self.mistakes.get("unbiased")), keepdim=True)
        eps = 0.0 if self.mistakes.get("no_eps") else ln.eps
        return (u - u.mean(-1, keepdim=True)) / torch.sqrt(var + eps) * ln.weight + ln.bias

    def attend(self, q, k, v):  # (B, L, d) each -> (B, L, d)
        m, (B, L, d), h = self.mistakes, q.shape, self.n_head
        if m.get("split_view"):
            q, k, v = (t.reshape(B, h, L, d // h) for t in (q, k, v))
        else:
            q, k, v = (t.view(B, L, h, d // h).transpose(1, 2) for t in (q, k, v))
        scores = q @ k.transpose(-2, -1) / (d ** 0.5 if m.get("sqrt_d_model") else (d // h) ** 0.5)
        if not m.get("no_mask"):
            future = torch.ones(L, L, dtype=torch.bool, device=None if m.get("cpu_mask") else q.device)
            scores = scores.masked_fill(future.triu(0 if m.get("diagonal_masked") else 1), float("-inf"))
        return (scores.softmax(-2 if m.get("softmax_queries") else -1) @ v).transpose(1, 2).reshape(B, L, d)

    def forward(self, idx):
        m = self.mistakes
        L, d = idx.shape[1], self.wte.embedding_dim
        x = self.wte(idx) + (0 if m.get("no_positions") else self.wpe(torch.arange(L, device=idx.device)))
        for block in self.h:
            q, k, v = block["c_attn"](self.norm(x, block["ln_1"])).split(d, dim=-1)
            attended = block["attn_proj"](self.attend(k, q, v) if m.get("kqv") else self.attend(q, k, v))
            x = attended if m.get("no_attn_residual") else x + attended
            hidden = block["c_fc"](self.norm(x, block["ln_1" if m.get("ln_1_for_mlp") else "ln_2"]))
            if m.get("relu"):
                hidden = torch.relu(hidden)
            else:
                hidden = F.gelu(hidden, approximate="none" if m.get("exact_gelu") else "tanh")
            x = x + block["mlp_proj"](hidden)
        if m.get("detached"):
            x = x.detach()
        out = x if m.get("no_ln_f") else self.norm(x, self.ln_f)
        return out @ self.wte.weight.T


class FunctionalGPT(HandGPT):  # correct too: F.linear, chunk, permute, an additive -1e10 mask, GELU by formula
    def forward(self, idx):
        (B, L), d, h = idx.shape, self.wte.embedding_dim, self.n_head
        x = F.embedding(idx, self.wte.weight) + self.wpe.weight[:L]
        keep = torch.tril(torch.ones(L, L, device=idx.device))
        for block in self.h:
            q, k, v = F.linear(self.norm(x, block["ln_1"]), block["c_attn"].weight, block["c_attn"].bias).chunk(3, -1)
            q, v = (t.reshape(B, L, h, -1).permute(0, 2, 1, 3) for t in (q, v))
            k = k.reshape(B, L, h, -1).permute(0, 2, 3, 1)  # (B, h, d_head, L)
            weights = torch.softmax((q @ k) / (d // h) ** 0.5 + (keep - 1) * 1e10, dim=-1)
            x = x + block["attn_proj"]((weights @ v).permute(0, 2, 1, 3).reshape(B, L, d))
            u = block["c_fc"](self.norm(x, block["ln_2"]))
            x = x + block["mlp_proj"](0.5 * u * (1 + torch.tanh((2 / torch.pi) ** 0.5 * (u + 0.044715 * u**3))))
        return F.linear(self.norm(x, self.ln_f), self.wte.weight)


class GroupNormGPT(HandGPT):  # group norm with one group: the library's layer norm by another name
    def norm(self, u, ln):
        return F.group_norm(u.reshape(-1, u.shape[-1]), 1, ln.weight, ln.bias, ln.eps).reshape(u.shape)


class LibraryNormGPT(HandGPT):  # nn.LayerNorm's own forward, called through the module
    def norm(self, u, ln):
        return ln(u)


class FusedAttentionGPT(HandGPT):  # F.scaled_dot_product_attention, in a helper the forward calls
    def attend(self, q, k, v):
        (B, L, d), h = q.shape, self.n_head
        q, k, v = (t.view(B, L, h, d // h).transpose(1, 2) for t in (q, k, v))
        return F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(B, L, d)


class SdpaInForwardGPT(HandGPT):  # the library attention written in forward itself: found in the code
    def forward(self, idx):
        if idx.shape[1] < 0:
            return F.scaled_dot_product_attention(idx, idx, idx)
        return super().forward(idx)


def _gpt_with(**mistakes):
    return type("WrongGPT", (HandGPT,), {"mistakes": mistakes})


def hand_gpt_in_place(cls=HandGPT):
    class InPlace(HandGPT):
        def forward(self, idx):
            out = super().forward(idx)
            idx.zero_()
            return out
    return InPlace


class RenamedGPT(HandGPT):  # renamed parameters: a checkpoint no longer loads
    def __init__(self, config):
        super().__init__(config)
        self.final_norm = self.ln_f
        del self.ln_f


GPT_FORWARD_WRONG = {
    "no_mask": (_gpt_with(no_mask=True), "causal mask is missing"),
    "kqv": (_gpt_with(kqv=True), "k \\| q \\| v"),
    "sqrt_d_model": (_gpt_with(sqrt_d_model=True), "sqrt\\(d_model\\)"),
    "split_view": (_gpt_with(split_view=True), "view\\(B, n_head, L, d_head\\)"),
    "exact_gelu": (_gpt_with(exact_gelu=True), "tanh approximation"),
    "unbiased": (_gpt_with(unbiased=True), "unbiased variance"),
    "no_ln_f": (_gpt_with(no_ln_f=True), "ln_f"),
    "no_positions": (_gpt_with(no_positions=True), "position embeddings"),
    "softmax_queries": (_gpt_with(softmax_queries=True), "softmax runs over the queries"),
    "diagonal_masked": (_gpt_with(diagonal_masked=True), "diagonal"),
    "no_attn_residual": (_gpt_with(no_attn_residual=True), "residual around the attention is missing"),
    "ln_1_for_mlp": (_gpt_with(ln_1_for_mlp=True), "ln_1 is used before the MLP too"),
    "relu": (_gpt_with(relu=True), "ReLU"),
    "no_eps": (_gpt_with(no_eps=True), "no eps"),
    "cpu_mask": (_gpt_with(cpu_mask=True), "fails on a GPU"),
    "group_norm": (GroupNormGPT, "rules out the library's LayerNorm"),
    "library_layer_norm": (LibraryNormGPT, "rules out the library's LayerNorm"),
    "sdpa_at_run_time": (FusedAttentionGPT, "rules out the library's LayerNorm and attention"),
    "sdpa_in_the_code": (SdpaInForwardGPT, "forward calls `F.scaled_dot_product_attention`"),
    "detached": (_gpt_with(detached=True), "no gradient"),
    "idx_in_place": (hand_gpt_in_place(), "changed idx in place"),
    "renamed": (RenamedGPT, "keep the parameters __init__ declares"),
    "instance_not_class": (HandGPT(GPTConfig()), "expected your GPT class"),
}


@pytest.mark.parametrize("mistake", list(GPT_FORWARD_WRONG))
def test_gpt_forward_checker_names_each_mistake(mistake):
    assert_fails_naming(check_gpt_forward, *GPT_FORWARD_WRONG[mistake])


@pytest.mark.parametrize("right", [HandGPT, FunctionalGPT])
def test_gpt_forward_checker_passes_the_right_class(right, capsys):
    for seed in SEEDS:
        check_gpt_forward(right, seed=seed)
    assert capsys.readouterr().out.splitlines() == [
        "PASS gpt_forward: logits equal bigtut.gpt.GPT on 5 inputs of 3 random GPTs; gradients reach every weight"] * 3


# ------------------------------------------------------------------------------------------------ loading weights
def load_from_bigtut(mine, theirs, order="qkv", dim=0, biases=True, swap_ln=False, share=False, ln_f=True,
                     touch=False):
    projections = {"q": "q_proj", "k": "k_proj", "v": "v_proj"}
    with torch.no_grad():
        if share:
            mine.wte.weight = theirs.tok_emb.weight
        else:
            mine.wte.weight.copy_(theirs.tok_emb.weight)
        mine.wpe.weight.copy_(theirs.pos_emb.weight)
        for block, ours in zip(mine.h, theirs.blocks):
            mha = ours.attn.attn
            weights = [getattr(mha, projections[c]).weight for c in order]
            block["c_attn"].weight.copy_(torch.cat([w.T for w in weights], 1).T if dim == 1 else torch.cat(weights))
            if biases:
                block["c_attn"].bias.copy_(torch.cat([getattr(mha, projections[c]).bias for c in order]))
            ln_1, ln_2 = (ours.ln_2, ours.ln_1) if swap_ln else (ours.ln_1, ours.ln_2)
            for name, module in (("ln_1", ln_1), ("attn_proj", mha.out_proj), ("ln_2", ln_2), ("c_fc", ours.mlp.fc),
                                 ("mlp_proj", ours.mlp.proj)):
                block[name].load_state_dict(module.state_dict())
        if ln_f:
            mine.ln_f.load_state_dict(theirs.ln_f.state_dict())
        if touch:
            theirs.ln_f.weight.mul_(1.0001)
    return mine


def _loader_with(**mistake):
    return lambda mine, theirs: load_from_bigtut(mine, theirs, **mistake)


def transposed_loader(mine, theirs):  # the Conv1D habit: each weight transposed before stacking
    load_from_bigtut(mine, theirs)
    with torch.no_grad():
        for block, ours in zip(mine.h, theirs.blocks):
            mha = ours.attn.attn
            block["c_attn"].weight.copy_(torch.cat([mha.q_proj.weight.T, mha.k_proj.weight.T, mha.v_proj.weight.T]))
    return mine


def frozen_loader(mine, theirs):  # requires_grad switched off to let copy_ write, and never back on
    mine.requires_grad_(False)
    load_from_bigtut(mine, theirs)
    return mine


def theirs_frozen_loader(mine, theirs):
    load_from_bigtut(mine, theirs)
    theirs.requires_grad_(False)  # "only reading it": bigtut's model can no longer be trained


def state_dict_loader(mine, theirs):  # correct too: one renamed state dict, load_state_dict
    sd = theirs.state_dict()
    state = {"wte.weight": sd["tok_emb.weight"], "wpe.weight": sd["pos_emb.weight"], "ln_f.weight": sd["ln_f.weight"],
             "ln_f.bias": sd["ln_f.bias"]}
    for i in range(len(theirs.blocks)):
        block = f"blocks.{i}."
        for kind in ("weight", "bias"):
            state[f"h.{i}.c_attn.{kind}"] = torch.cat([sd[f"{block}attn.attn.{c}_proj.{kind}"] for c in "qkv"])
            for ours, bigtut in (("ln_1", "ln_1"), ("attn_proj", "attn.attn.out_proj"), ("ln_2", "ln_2"),
                                 ("c_fc", "mlp.fc"), ("mlp_proj", "mlp.proj")):
                state[f"h.{i}.{ours}.{kind}"] = sd[f"{block}{bigtut}.{kind}"]
    mine.load_state_dict(state)


LOAD_WRONG = {
    "kqv": (_loader_with(order="kqv"), "k \\| q \\| v"),
    "vkq": (_loader_with(order="vkq"), "v \\| k \\| q"),
    "transposed": (transposed_loader, "transposed"),
    "no_biases": (_loader_with(biases=False), "c_attn.bias was not loaded"),
    "swapped_ln": (_loader_with(swap_ln=True), "swapped"),
    "shared": (_loader_with(share=True), "shares its tensor"),
    "no_ln_f": (_loader_with(ln_f=False), "ln_f.weight was not loaded"),
    "changes_theirs": (_loader_with(touch=True), "changed bigtut's model"),
    "new_module": (lambda mine, theirs: copy.deepcopy(load_from_bigtut(mine, theirs)), "returned a different module"),
    "frozen": (frozen_loader, "no longer requires grad"),
    "theirs_frozen": (theirs_frozen_loader, "changed bigtut's model"),
    "stub": (stub, "not implemented"),
}


@pytest.mark.parametrize("mistake", list(LOAD_WRONG))
def test_load_gpt_weights_checker_names_each_mistake(mistake):
    assert_fails_naming(check_load_gpt_weights, *LOAD_WRONG[mistake])


@pytest.mark.parametrize("right", [load_from_bigtut, state_dict_loader])
def test_load_gpt_weights_checker_passes_the_right_loader(right, capsys):
    for seed in SEEDS:
        check_load_gpt_weights(right, seed=seed)
    assert capsys.readouterr().out.splitlines() == [
        "PASS load_gpt_weights: every weight of 3 random GPTs copied into the fused layout; bigtut's model "
        "untouched, no shared tensors"] * 3


def test_hand_gpt_loaded_from_bigtut_equals_bigtut():
    """The two exercises together: bigtut's GPT loaded into the hand-written class gives the same logits."""
    torch.manual_seed(0)
    config = GPTConfig(vocab_size=17, block_size=12, n_layer=2, n_head=2, d_model=16)
    ours = GPT(config).eval()
    mine = load_from_bigtut(HandGPT(config), ours)
    idx = torch.randint(0, 17, (2, 12))
    with torch.no_grad():
        assert torch.allclose(mine(idx), ours(idx).logits, atol=1e-5)
    assert isinstance(GPTLayout(config), torch.nn.Module)
