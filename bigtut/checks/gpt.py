"""Checkers for the exercises of chapter 04 (GPT).

Each takes the student's function and ``seed=`` (``None``: fresh random inputs at every call; failure messages
quote the seed), compares it with :mod:`bigtut.gpt` on random cases, and is built to catch the usual mistakes —
when a wrong answer equals a known mistake on the failing case, the message names it:

===============================  ===============================================================================
checker                          what it holds the candidate to (and the usual mistakes it names)
===============================  ===============================================================================
``check_gpt_block``              ``gpt_block(x, ln_1, attn, ln_2, mlp)``: pre-LN, ``h = x + attn(ln_1(x))``,
                                 ``h + mlp(ln_2(h))`` (not post-LN, not a missing residual or LayerNorm, not
                                 ln_1/ln_2 swapped or reused, not the MLP reading ``x``, not a normalised
                                 stream or output, not ``x`` changed in place, not a branch without gradient)
``check_generate``               ``generate(model, idx, max_new_tokens, temperature, generator)``: crop to the
                                 last ``block_size`` tokens, the last position's logits, ``softmax(logits / T)``,
                                 ``torch.multinomial(..., generator=generator)`` (arg-max for ``T = 0``), append
                                 (not uncropped or cropped wrongly, not another position, not temperature
                                 after the softmax / multiplied / ignored, not the softmax over the batch, not
                                 the global random generator, not sampling at ``T = 0`` or greedy at ``T > 0``,
                                 not only the new tokens)
``check_cached_generate``        ``cached_generate(model, idx, max_new_tokens)``: greedy, prompt fed once, then
                                 the newest token at each call into one KV cache (not a fresh cache per step,
                                 not the whole sequence again, not a call without ``cache=``, not the prompt
                                 outside the cache, not the previous token fed again, not sampling)
``check_top_p_filter``           the nucleus keeps the smallest top set with mass ``>= p`` (logits, not probs;
                                 not one token too few, not the boundary case ``mass before == p`` kept, not
                                 sorted ascending or not at all, not left in sorted order or put back with
                                 ``gather``, not ``0`` or a finite number for ``-inf``, not in place)
``check_kv_cache_step``          one cached attention step: append the new key/value after the cache, attend
                                 over all of them (not the past only, not in front, not the old cache handed
                                 back, not keys/values swapped, not unscaled, not the softmax over the
                                 queries, not ``x @ w``, not without ``w_o``, not a causal mask)
===============================  ===============================================================================

Weights follow ``nn.Linear``'s convention: ``w`` is ``(d_out, d_in)`` and a projection is ``x @ w.T``.

The known mistake a wrong answer equals is named by :func:`bigtut.checks.core.matching_mistake`.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import torch

from bigtut.attention import KVCache, MultiHeadAttention, causal_mask
from bigtut.checks.core import (
    CheckFailure,
    _describe,
    assert_close,
    checker_generator,
    guarded,
    matching_mistake,
    passed,
)
from bigtut.checks.forbidden import Forbidden, record_forbidden_calls, scan_for_forbidden_names
from bigtut.checks.multihead import _device_problem
from bigtut.gpt import GPT, GPTConfig
from bigtut.gpt import generate as _generate_reference
from bigtut.gpt import top_p_filter as _top_p_reference

__all__ = ["GPTLayout", "check_cached_generate", "check_generate", "check_gpt_block", "check_gpt_forward",
           "check_kv_cache_step", "check_load_gpt_weights", "check_top_p_filter"]


def _callable(candidate, name: str) -> None:
    if not callable(candidate):
        raise CheckFailure(f"{name}: expected a function, got {type(candidate).__name__}")


def _global_draws(fn: Callable, *args):
    """``(fn(*args), drew)``: ``drew`` says whether ``fn`` drew from torch's global CPU random generator; the
    generator's state is restored afterwards, so the checker leaves the notebook's random state as it was."""
    state = torch.get_rng_state()
    try:
        out = fn(*args)
        return out, not torch.equal(state, torch.get_rng_state())
    finally:
        torch.set_rng_state(state)


def _first_difference(name: str, got: torch.Tensor, expected: torch.Tensor, T: int, what: str) -> CheckFailure:
    """A failure naming the first row and position where two id tensors ``(B, T + n)`` differ."""
    row, col = (got.cpu().long() != expected).nonzero()[0].tolist()
    hint = "the prompt itself changed" if col < T else f"new token {col - T}, drawn after {col} tokens"
    return CheckFailure(f"{name}: for {what}: row {row} differs first at position {col} ({hint}): expected "
                        f"{expected[row].tolist()}, got {got[row].tolist()}")


def _random_gpt(gen: torch.Generator, vocab: int, block_size: int, n_layer: int, n_head: int, d: int) -> GPT:
    """A float64 GPT whose every parameter is redrawn from ``gen``: LayerNorms far from the identity (so that
    swapping two of them shows) and logits of standard deviation ~2 (so that temperature changes the samples)."""
    config = GPTConfig(vocab_size=vocab, block_size=block_size, n_layer=n_layer, n_head=n_head, d_model=d,
                       tie_weights=False)  # untied: a tied head favours repeating the current token, whatever the past
    model = GPT(config).double().eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen, dtype=torch.float64)
            if ".ln_" in name or name.startswith("ln_f"):
                p.copy_(noise * 0.5 + (1.0 if name.endswith("weight") else 0.0))  # gains ~1 ± 0.5, biases ~±0.5
            elif name == "lm_head.weight":
                p.copy_(noise * 2 / p.shape[1] ** 0.5)  # logits of standard deviation ~2
            elif p.dim() == 2 and "emb" not in name:
                p.copy_(noise / p.shape[1] ** 0.5)  # Linear (d_out, d_in)
            else:
                p.copy_(noise * 0.5)  # embeddings and Linear biases
    return model


# ------------------------------------------------------------------------------------------------ the block

_BLOCK_RULE = "A pre-LN GPT block is h = x + attn(ln_1(x)), then h + mlp(ln_2(h))"


def _block_mistakes(x, ln_1, attn, ln_2, mlp) -> dict:
    """What the usual wrong blocks return on ``x``."""
    h = x + attn(ln_1(x))
    post = ln_1(x + attn(x))
    swapped = x + attn(ln_2(x))
    no_res = attn(ln_1(x))
    stream = ln_1(x) + attn(ln_1(x))
    no_ln_1 = x + attn(x)
    return {
        "the block is post-LN (the LayerNorm after each residual sum, as in the original Transformer)":
            ln_2(post + mlp(post)),
        "the residual around the attention is missing (h = attn(ln_1(x)))": no_res + mlp(ln_2(no_res)),
        "the residual around the MLP is missing (returns mlp(ln_2(h)))": mlp(ln_2(h)),
        "ln_1 and ln_2 are swapped": swapped + mlp(ln_1(swapped)),
        "ln_1 is used before the MLP too (ln_2 is never used)": h + mlp(ln_1(h)),
        "ln_2 is used before the attention too (ln_1 is never used)": swapped + mlp(ln_2(swapped)),
        "the MLP reads the block's input x instead of h (a 'parallel' block)": h + mlp(ln_2(x)),
        "the residual stream itself is normalised (x = ln_1(x) before the residual)":
            ln_2(stream) + mlp(ln_2(stream)),
        "the attention reads x without ln_1": no_ln_1 + mlp(ln_2(no_ln_1)),
        "the MLP reads h without ln_2": h + mlp(h),
        "the MLP sub-layer is missing (returns h)": h,
        "the attention sub-layer is missing": x + mlp(ln_2(x)),
        "the output is normalised again (ln_2 after the last sum; GPT's final LayerNorm comes after the last "
        "block only)": ln_2(h + mlp(ln_2(h))),
    }


def check_gpt_block(candidate: Callable, seed: int | None = None) -> None:
    """``candidate(x (B, L, d), ln_1, attn, ln_2, mlp) -> (B, L, d)``: one pre-LN GPT block, given a
    :class:`bigtut.gpt.Block`'s submodules (``attn`` maps ``(B, L, d) -> (B, L, d)`` and is already causal).
    Compared with ``Block.forward`` on random float64 blocks whose LayerNorms differ from each other: the values,
    the gradients (with respect to ``x`` and every parameter), and that ``x`` itself is left unchanged."""
    name = "gpt_block"
    _callable(candidate, name)
    gen, seed = checker_generator(seed)
    for B, L, d, h in ((2, 5, 8, 2), (1, 1, 4, 1), (3, 7, 16, 4)):
        block = _random_gpt(gen, 7, 8, 1, h, d).blocks[0]
        x = torch.randn(B, L, d, generator=gen, dtype=torch.float64)
        what = f"x of shape {(B, L, d)}, a random block with {h} head(s) (seed={seed})"

        def attn(a, block=block):  # (B, L, d) -> (B, L, d): causal self-attention (weights dropped)
            return block.attn(a)[0]

        given = x.clone()
        with torch.no_grad():
            expected = block(x)[0]  # (B, L, d)
            got = guarded(name, f"gpt_block on {what}", candidate, given, block.ln_1, attn, block.ln_2, block.mlp)
        if not torch.equal(given, x):
            raise CheckFailure(f"{name}: changed x in place (x += ...) for {what}; the caller's x must stay as it "
                               f"was (autograd needs it too): write h = x + attn(ln_1(x))")
        if not matching_mistake(got, {"right": expected}, atol=1e-10, rtol=1e-9):
            with torch.no_grad():
                mistake = matching_mistake(got, _block_mistakes(x, block.ln_1, attn, block.ln_2, block.mlp),
                                           atol=1e-10, rtol=1e-9)
            if mistake is not None:
                raise CheckFailure(f"{name}: {mistake}, for {what}. {_BLOCK_RULE}")
            assert_close(got, expected, what=name, atol=1e-10, inputs=f"{what}; expected {_BLOCK_RULE[19:]}")
        # gradients: a detached branch, or one computed outside autograd, has the right value and no gradient
        params = [x.clone().requires_grad_(), *block.parameters()]
        out = guarded(name, f"gpt_block with gradients on {what}", candidate, params[0], block.ln_1, attn,
                      block.ln_2, block.mlp)
        if not isinstance(out, torch.Tensor) or not out.requires_grad:
            raise CheckFailure(f"{name}: the output carries no gradient for {what} (computed under torch.no_grad(), "
                               f"detached, or via .data?): training needs gradients through every branch")
        weights = torch.randn(expected.shape, generator=gen, dtype=torch.float64)  # a random direction
        try:
            got_grads = guarded(name, f"backward through gpt_block's output on {what}", torch.autograd.grad,
                                (out * weights).sum(), params, allow_unused=True)
        except CheckFailure as err:
            hint = ("\n  Hint: an in-place update (h += ...) overwrote a tensor that the backward pass needs (ln_2 "
                    "read h); write h + mlp(ln_2(h))" if "inplace" in str(err) else "")
            raise CheckFailure(f"{err}{hint}") from None
        expected_grads = torch.autograd.grad((block(params[0])[0] * weights).sum(), params)
        names = ["x", *(f"block.{n}" for n, _ in block.named_parameters())]
        for label, g, e in zip(names, got_grads, expected_grads):
            g = torch.zeros_like(e) if g is None else g
            if not torch.allclose(g, e, atol=1e-9, rtol=1e-7):
                raise CheckFailure(f"{name}: the values are right but the gradient with respect to {label} is wrong "
                                   f"for {what}: a branch is detached (.detach(), .data, torch.no_grad()) or "
                                   f"computed outside autograd; largest difference "
                                   f"{(g - e).abs().max().item():.3g}")
    passed(name, "pre-LN block equals bigtut.gpt.Block on 3 random blocks")


# ------------------------------------------------------------------------------------------------ generation

def _sample_loop(model: GPT, idx: torch.Tensor, n: int, temperature: float, draw_seed: int, *, crop: str = "last",
                 position: int = -1, scale: str = "divide", softmax_dim: int = -1, greedy: str = "at_zero"):
    """The generation loop with one usual mistake switched on (``crop``, ``position``, ``scale``,
    ``softmax_dim``, ``greedy``); ``None`` when that mistake crashes on this input."""
    generator = torch.Generator().manual_seed(draw_seed)
    block_size = model.config.block_size
    try:
        with torch.no_grad():
            for _ in range(n):
                context = {"last": idx[:, -block_size:], "first": idx[:, :block_size],
                           "one_short": idx[:, -(block_size - 1):]}[crop]
                logits = model(context).logits[:, position]  # (B, V)
                if greedy == "always" or (temperature == 0 and greedy == "at_zero"):
                    next_id = logits.argmax(-1, keepdim=True)
                else:
                    t = temperature or 1.0  # greedy == "never": sampled at T = 1 when T = 0
                    scaled = {"divide": logits / t, "multiply": logits * t, "ignore": logits}[scale]
                    next_id = torch.multinomial(scaled.softmax(softmax_dim), 1, generator=generator)
                idx = torch.cat([idx, next_id], dim=1)
    except (RuntimeError, ValueError, IndexError):
        return None
    return idx


_GENERATE_MISTAKES = {  # the usual wrong loops, as switches of _sample_loop
    "the context is cropped to the first block_size tokens (idx[:, :block_size]); the model must see the last "
    "ones (idx[:, -block_size:])": {"crop": "first"},
    "the context is cropped to block_size - 1 tokens; keep the last block_size (idx[:, -block_size:])":
        {"crop": "one_short"},
    "the logits of position 0 are used; the next token is predicted by the last position (logits[:, -1, :])":
        {"position": 0},
    "the logits of the second-to-last position are used; the next token is predicted by the last one "
    "(logits[:, -1, :])": {"position": -2},
    "at temperature=0 the tokens were sampled (as at T = 1); temperature=0 means greedy, the arg-max":
        {"greedy": "never"},
    "the temperature has no effect (it is ignored, or divides the probabilities after the softmax, which "
    "torch.multinomial normalises away); divide the logits: softmax(logits / T)": {"scale": "ignore"},
    "the logits are multiplied by the temperature; divide them: softmax(logits / T)": {"scale": "multiply"},
    "the softmax runs over the batch axis (dim=0); it must run over the vocabulary (dim=-1)": {"softmax_dim": 0},
    "greedy at every temperature (the arg-max); at T > 0 draw with torch.multinomial(probs, 1, "
    "generator=generator)": {"greedy": "always"},
}


def _consistent_mistake(answers: list, mistakes: list, value_of: Callable, first: int, atol: float = 0.0,
                        rtol: float = 0.0) -> str | None:
    """The first known mistake that reproduces every answer of the candidate, or None.

    ``answers[i]`` is the candidate's answer on case ``i`` (``None``: it crashed or had the wrong shape there),
    ``value_of(i, mistake)`` what ``mistake`` returns on that case (``None`` if it crashes); case ``first``,
    where the candidate went wrong, is tried first. Matching every case, the right ones included, keeps a
    coincidence on one case (greedy tokens that happen to agree) from naming the wrong mistake; a mistake that
    does not show on a case returns the right answer there.
    """
    order = [first] + [i for i in range(len(answers)) if i != first and answers[i] is not None]
    for mistake in mistakes:
        if all(matching_mistake(answers[i], {mistake: value_of(i, mistake)}, atol=atol, rtol=rtol) for i in order):
            return mistake
    return None


def _error_hint(err: CheckFailure, temperature: float | None = None) -> str:
    """A hint for the usual crashes of generation and cache code, read off the candidate's own error."""
    text = str(err.__cause__ or err)
    if "exceed block_size" in text:
        return "\n  Hint: the context was not cropped: the model sees at most block_size tokens, idx[:, -block_size:]"
    if "except in dimension 0" in text:
        return "\n  Hint: torch.cat along dim=0 stacks rows (the batch); append along dim=1: torch.cat([idx, x], 1)"
    if "except in dimension" in text:
        return "\n  Hint: the cache grows along dim 2 (the positions): torch.cat([past_k, k], dim=2)"
    if temperature == 0 and any(word in text for word in ("inf", "nan", "probability")):
        return "\n  Hint: temperature=0 means greedy: take the arg-max instead of dividing by 0"
    return ""


def check_generate(candidate: Callable, seed: int | None = None) -> None:
    """``candidate(model, idx (B, T), max_new_tokens, temperature=1.0, generator=None) -> (B, T + n)``:
    the sampling loop of :func:`bigtut.gpt.generate` without a cache. Each step crops the context to the last
    ``model.config.block_size`` tokens, takes the logits ``(B, V)`` of the last position, and draws one token
    per row with ``torch.multinomial(softmax(logits / temperature), 1, generator=generator)`` — or the arg-max
    when ``temperature == 0`` — then appends it. Cases run past ``block_size`` and sample at T = 0.5, 1, 2.
    A wrong answer is compared with the usual mistakes on every case, and named when one reproduces it."""
    name = "generate"
    _callable(candidate, name)
    gen, seed = checker_generator(seed)
    model = _random_gpt(gen, 11, 8, 2, 2, 16)  # block_size 8
    cases = []
    for B, T, n, temperature in ((2, 3, 9, 0.0), (1, 10, 4, 0.0), (3, 2, 12, 1.0), (2, 4, 10, 0.5), (2, 6, 8, 2.0)):
        idx = torch.randint(0, 11, (B, T), generator=gen)
        draw_seed = int(torch.randint(0, 2**31 - 1, (1,), generator=gen))
        cases.append((idx, n, temperature, draw_seed))

    def run(idx, n, temperature, draw_seed):  # (answer, drew from the global generator, description)
        what = (f"a prompt of {idx.shape[0]}x{idx.shape[1]} tokens, {n} new tokens, temperature={temperature}, "
                f"block_size=8, generator seeded {draw_seed} (seed={seed})")
        with torch.no_grad():
            got, drew = _global_draws(guarded, name, what, candidate, model, idx.clone(), n, temperature,
                                      torch.Generator().manual_seed(draw_seed))
        return got, drew, what

    answers = []
    for idx, n, temperature, draw_seed in cases:
        (B, T), expected = idx.shape, _generate_reference(model, idx, n, temperature, use_cache=False,
                                                          generator=torch.Generator().manual_seed(draw_seed))
        try:
            got, drew, what = run(idx, n, temperature, draw_seed)
        except CheckFailure as err:
            raise CheckFailure(f"{err}{_error_hint(err, temperature)}") from None
        if not isinstance(got, torch.Tensor) or tuple(got.shape) != tuple(expected.shape):
            shape = tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__
            hint = ""
            if isinstance(got, torch.Tensor) and got.dim() == 2:
                if got.shape == (B, n):
                    hint = ": only the new tokens came back; return the prompt followed by them"
                elif got.shape[0] == B:
                    hint = f": {got.shape[1] - T} new tokens instead of {n}"
                else:
                    hint = ": the tokens were appended along the batch axis; torch.cat([idx, next_id], dim=1)"
            raise CheckFailure(f"{name}: expected ids of shape {tuple(expected.shape)} (prompt + new tokens) for "
                               f"{what}, got {shape}{hint}")
        got = got.cpu().long()
        answers.append(got)
        if torch.equal(got, expected):
            continue
        if drew:
            raise CheckFailure(f"{name}: drew from torch's global random generator for {what}: pass "
                               f"generator=generator to torch.multinomial, so that a seeded generator "
                               f"reproduces the samples")
        first = len(answers) - 1
        for later in cases[len(answers):]:  # the candidate on the remaining cases too, to name the mistake
            try:
                answers.append(run(*later)[0])
            except CheckFailure:
                answers.append(None)
        mistake = _consistent_mistake(answers, list(_GENERATE_MISTAKES), lambda i, key: _sample_loop(
            model, *cases[i], **_GENERATE_MISTAKES[key]), first)
        if mistake is not None:
            raise CheckFailure(f"{name}: {mistake}, for {what}")
        raise _first_difference(name, got, expected, T, what)
    passed(name, "greedy and sampled (T = 0.5, 1, 2) generation equals bigtut.gpt.generate, past block_size too")


def _instrument(model: GPT) -> tuple[list[dict], list, Callable[[], None]]:
    """Record every pass through the model (the ids fed, read at the token embedding, and the ``cache=`` it was
    given) and every cache that ``model.new_cache()`` hands out; the returned function undoes both."""
    calls: list[dict] = []
    caches: list = []
    handle = model.tok_emb.register_forward_hook(
        lambda module, args, out: calls.append({"ids": args[0].detach().clone(), "cache": None}))

    def hidden_states(*args, **kwargs):  # GPT.forward (and generate) go through hidden_states
        out = GPT.hidden_states(model, *args, **kwargs)
        if calls:
            calls[-1]["cache"] = kwargs.get("cache")
        return out

    def new_cache():
        caches.append(GPT.new_cache(model))
        return caches[-1]

    model.new_cache = new_cache  # instance attributes shadow the methods until they are deleted
    model.hidden_states = hidden_states

    def undo() -> None:
        handle.remove()
        del model.new_cache
        del model.hidden_states

    return calls, caches, undo


def check_cached_generate(candidate: Callable, seed: int | None = None) -> None:
    """``candidate(model, idx (B, T), max_new_tokens) -> (B, T + n)``: greedy generation with one KV cache
    (``cache = model.new_cache()``): feed the prompt once (``model(idx, cache=cache).logits``), then only the
    newest token at each step (``model(next_id, cache=cache)``). Prompt + new tokens fit in ``block_size``.
    Checked: the tokens equal uncached greedy generation, one cache holds the whole past, every call gets it,
    the prompt goes in once and then each new token, and the model never re-reads the past."""
    name = "cached_generate"
    _callable(candidate, name)
    gen, seed = checker_generator(seed)
    model = _random_gpt(gen, 13, 24, 2, 2, 16)  # block_size 24
    for B, T, n in ((2, 5, 10), (1, 1, 8), (3, 7, 16)):
        idx = torch.randint(0, 13, (B, T), generator=gen)
        expected = _generate_reference(model, idx, n, 0.0, use_cache=False)  # (B, T + n)
        what = f"a prompt of {B}x{T} tokens, {n} new tokens, greedy, block_size=24 (seed={seed})"
        calls, caches, undo = _instrument(model)
        error = None
        try:
            with torch.no_grad():
                got, drew = _global_draws(guarded, name, what, candidate, model, idx.clone(), n)
        except CheckFailure as err:  # what the calls so far already show is named first
            error = err
        finally:
            undo()
        if len(caches) > 1 or (len(caches) == 0 and error is None):
            raise CheckFailure(f"{name}: for {what} model.new_cache() was called {len(caches)} times. Make one "
                               f"cache before the loop and pass the same one to every call: it must keep "
                               f"(append) the keys and values of every position fed so far")
        lengths = [call["ids"].shape[-1] for call in calls]
        fed = sum(lengths)
        if any(length != 1 for length in lengths[1:]) or fed > T + n or (not lengths and error is None):
            raise CheckFailure(f"{name}: for {what} the model was fed {lengths} positions per call ({fed} in all). "
                               f"With a KV cache the prompt is fed once and then one new token per call "
                               f"(at most {T} + {n} positions in all): the cache already holds the past")
        if calls and caches and calls[0]["cache"] is not caches[0]:
            raise CheckFailure(f"{name}: for {what} the prompt was fed without the cache (model(idx) instead of "
                               f"model(idx, cache=cache)): the cache then lacks the prompt's keys and values")
        for k, call in enumerate(calls[1:] if caches else [], start=1):
            if call["cache"] is not caches[0]:
                raise CheckFailure(f"{name}: for {what} call {k} fed the new token without cache=: alone, a token "
                                   f"has no context; pass cache=cache to every call")
        if error is not None:
            raise CheckFailure(f"{error}{_error_hint(error)}") from None
        if lengths[0] != T or not torch.equal(calls[0]["ids"], idx):
            raise CheckFailure(f"{name}: for {what} the first call fed {calls[0]['ids'].tolist()}; feed the whole "
                               f"prompt once, model(idx, cache=cache)")
        if isinstance(got, torch.Tensor) and tuple(got.shape) == tuple(expected.shape):
            for k, call in enumerate(calls[1:], start=1):
                newest = got[:, T + k - 1:T + k].cpu().long()  # the token the previous call produced
                if not torch.equal(call["ids"].long(), newest):
                    previous = got[:, T + k - 2:T + k - 1].cpu().long()
                    what_fed = ("fed the previous token again (idx[:, -1:] read before appending the new one): "
                                "the cache then holds it twice" if torch.equal(call["ids"].long(), previous)
                                else f"fed {call['ids'].tolist()}")
                    raise CheckFailure(f"{name}: for {what} call {k} {what_fed}; feed the token just chosen, "
                                       f"{newest.tolist()}")
        if drew:
            raise CheckFailure(f"{name}: drew from torch's random generator for {what}: cached_generate is greedy, "
                               f"the arg-max of the last position's logits, with no sampling")
        if not isinstance(got, torch.Tensor) or tuple(got.shape) != tuple(expected.shape):
            raise CheckFailure(f"{name}: expected ids of shape {tuple(expected.shape)} (prompt + new tokens) for "
                               f"{what}, got {_describe(got)}")
        if not torch.equal(got.cpu().long(), expected):
            raise _first_difference(name, got, expected, T, what)
    passed(name, "greedy tokens equal uncached generation; one cache, the prompt fed once, then one token per step")


# ------------------------------------------------------------------------------------------------ attention

def _attention(weights: tuple[torch.Tensor, ...], n_head: int) -> MultiHeadAttention:
    """A bias-free MultiHeadAttention holding the four given ``(d, d)`` projection matrices."""
    w_q, w_k, w_v, w_o = weights
    mha = MultiHeadAttention(w_q.shape[0], n_head, bias=False).to(w_q.dtype)
    with torch.no_grad():
        for proj, w in zip((mha.q_proj, mha.k_proj, mha.v_proj, mha.out_proj), weights):
            proj.weight.copy_(w)
    return mha.eval()


def _random_weights(d: int, gen: torch.Generator) -> tuple[torch.Tensor, ...]:
    return tuple(torch.randn(d, d, generator=gen, dtype=torch.float64) / d**0.5 for _ in range(4))


def _reference_causal_self_attention(x, w_q, w_k, w_v, w_o, n_head):
    mha = _attention((w_q, w_k, w_v, w_o), n_head)
    with torch.no_grad():
        return mha(x, x, x, mask=causal_mask(x.shape[1]), return_attention=False)[0]  # (B, L, d)


# ------------------------------------------------------------------------------------------------ top-p

def _top_p_variant(logits, p, *, descending=True, rule="before>=", back="scatter", fill=float("-inf"), sort=True):
    """The nucleus filter with one usual mistake switched on."""
    if sort:
        sorted_logits, order = logits.sort(dim=-1, descending=descending)
    else:
        sorted_logits, order = logits, torch.arange(logits.shape[-1]).expand_as(logits)
    probs = sorted_logits.softmax(dim=-1)
    cumulative = probs.cumsum(dim=-1)
    remove_sorted = {"before>=": cumulative - probs >= p, "before>": cumulative - probs > p,
                     "cum>": cumulative > p, "cum>=": cumulative >= p}[rule]
    if back == "sorted":
        return sorted_logits.masked_fill(remove_sorted, fill)
    remove = (remove_sorted.gather(-1, order) if back == "gather"
              else torch.zeros_like(remove_sorted).scatter(-1, order, remove_sorted))
    return logits.masked_fill(remove, fill)


def _top_p_mistakes(logits, p) -> dict:
    expected = _top_p_reference(logits, p)
    return {
        "one token too few: the token whose mass crosses p is dropped; a token stays while the mass ranked above "
        "it is below p (cumsum - probs < p)": _top_p_variant(logits, p, rule="cum>"),
        "one token too few: tokens are kept only while the running mass including them is below p; a token "
        "stays while the mass ranked above it is below p (cumsum - probs < p)": _top_p_variant(logits, p,
                                                                                             rule="cum>="),
        "a token whose better-ranked mass equals p exactly was kept; the nucleus already has mass >= p, so it goes "
        "(remove where cumsum - probs >= p)": _top_p_variant(logits, p, rule="before>"),
        "the least likely tokens were kept (sorted ascending); sort with descending=True":
            _top_p_variant(logits, p, descending=False),
        "the probabilities were accumulated in vocabulary order, without sorting; sort by probability first":
            _top_p_variant(logits, p, sort=False),
        "the filtered logits came back in sorted order; put the decision back in vocabulary order (scatter)":
            _top_p_variant(logits, p, back="sorted"),
        "the decision was put back with gather; gather applies the inverse permutation, use scatter(-1, order, "
        "...)": _top_p_variant(logits, p, back="gather"),
        "the removed entries are 0, not -inf (a logit of 0 still has probability)": expected.masked_fill(
            expected.isinf(), 0.0),
        "probabilities came back (softmax of the filtered logits); return the logits with -inf outside the nucleus":
            expected.softmax(-1),
        "probabilities came back (zeroed outside the nucleus); return the logits with -inf outside it":
            logits.softmax(-1).masked_fill(expected.isinf(), 0.0),
    }


def check_top_p_filter(candidate: Callable, seed: int | None = None) -> None:
    """``candidate(logits (..., V), p) -> (..., V)``: the nucleus (smallest set of most likely tokens with
    mass ``>= p``) keeps its logits, every other entry becomes ``-inf``; ``logits`` itself is left unchanged."""
    name = "top_p_filter"
    _callable(candidate, name)
    gen, seed = checker_generator(seed)
    fixed = torch.tensor([0.5, 0.3, 0.15, 0.05], dtype=torch.float64).log()
    cases = [("logits log([0.5, 0.3, 0.15, 0.05]), p=0.6", fixed, 0.6),
             ("logits log([0.5, 0.3, 0.15, 0.05]), p=0.5", fixed, 0.5)]
    for shape, p in (((3, 10), 0.9), ((2, 50), 0.5), ((4, 7), 1.0), ((1, 20), 0.05), ((2, 3, 12), 0.8)):
        logits = 3 * torch.randn(*shape, generator=gen, dtype=torch.float64)
        cases.append((f"random logits of shape {shape}, p={p} (seed={seed})", logits, p))
    answers = []
    for description, logits, p in cases:
        given = logits.clone()
        got = guarded(name, f"top_p_filter on {description}", candidate, given, p)
        if not torch.equal(given, logits):
            raise CheckFailure(f"{name}: changed the logits in place (masked_fill_ or indexing) for {description}; "
                               f"return a new tensor (masked_fill) and leave the caller's logits as they were")
        expected = _top_p_reference(logits, p)
        answers.append(got)
        if matching_mistake(got, {"right": expected}, atol=1e-6, rtol=1e-5):
            continue
        first = len(answers) - 1
        for _, later, later_p in cases[len(answers):]:  # the candidate on the remaining cases too
            try:
                answers.append(candidate(later.clone(), later_p))
            except Exception:  # noqa: BLE001 - a crash elsewhere only means no mistake is named from that case
                answers.append(None)
        answers = [a if isinstance(a, torch.Tensor) else None for a in answers]
        tables = {i: _top_p_mistakes(cases[i][1], cases[i][2]) for i, a in enumerate(answers) if a is not None}
        mistake = None if first not in tables else _consistent_mistake(
            answers, list(tables[first]), lambda i, key, t=tables: t[i][key], first, atol=1e-6, rtol=1e-5)
        if mistake is None and isinstance(got, torch.Tensor) and got.shape == expected.shape:
            kept, removed = expected.isfinite(), expected.isinf()
            got64 = got.detach().to("cpu", torch.float64)
            if torch.allclose(got64[kept], logits[kept]) and removed.any() and got64[removed].isfinite().all():
                mistake = (f"the removed entries are {got64[removed][0].item():.4g}, not -inf (every finite logit "
                           f"keeps some probability)")
        if mistake is not None:
            raise CheckFailure(f"{name}: {mistake}, for {description}")
        assert_close(got, expected, what=name, inputs=description)
    passed(name, f"matches the reference on {len(cases)} random cases")


# ------------------------------------------------------------------------------------------------ one cache step

def _reference_kv_cache_step(x_new, past_k, past_v, w_q, w_k, w_v, w_o, n_head):
    mha = _attention((w_q, w_k, w_v, w_o), n_head)
    cache = KVCache(past_k, past_v, past_k.shape[2]) if past_k.shape[2] else KVCache()
    with torch.no_grad():
        out, _ = mha(x_new, x_new, x_new, return_attention=False, cache=cache)  # the new token sees every key
    return out, cache.keys, cache.values


def _step_variant(x_new, past_k, past_v, w_q, w_k, w_v, w_o, n_head, *, scale="d_head", softmax_dim=-1,
                  transposed=False, out=True, keys_seen="all", swap=False):
    """One cache step written out, with one usual mistake switched on; returns ``out`` only."""
    B, _, d = x_new.shape
    d_head = d // n_head
    q, k, v = (t.view(B, 1, n_head, d_head).transpose(1, 2) for t in (x_new @ (w if transposed else w.T)
                                                                       for w in (w_q, w_k, w_v)))
    if swap:
        k, v = v, k
    keys, values = {"all": (torch.cat([past_k, k], 2), torch.cat([past_v, v], 2)), "past": (past_k, past_v),
                    "first": (torch.cat([past_k, k], 2)[:, :, :1], torch.cat([past_v, v], 2)[:, :, :1])}[keys_seen]
    if keys.shape[2] == 0:
        return None
    scores = q @ keys.transpose(-2, -1) / {"d_head": math.sqrt(d_head), "d_model": math.sqrt(d), "none": 1.0}[scale]
    o = (scores.softmax(softmax_dim) @ values).transpose(1, 2).reshape(B, 1, d)
    return o @ (w_o if transposed else w_o.T) if out else o


def _step_mistakes(*args) -> dict:
    return {
        "the new position's own key and value are left out (it attends to the past only); append them first":
            _step_variant(*args, keys_seen="past"),
        "the scaling 1/sqrt(d_head) is missing": _step_variant(*args, scale="none"),
        "the scores are divided by sqrt(d_model); divide by sqrt(d_head), the width of one head":
            _step_variant(*args, scale="d_model"),
        "the softmax runs over the single query (dim=-2); it must run over the keys (dim=-1)":
            _step_variant(*args, softmax_dim=-2),
        "the projections are x @ w; with nn.Linear's (d_out, d_in) weights they are x @ w.T":
            _step_variant(*args, transposed=True),
        "the output projection w_o is missing": _step_variant(*args, out=False),
        "the new key and value are swapped": _step_variant(*args, swap=True),
        "a causal mask hides every key but the first; the newest position may see every cached key, no mask is "
        "needed": _step_variant(*args, keys_seen="first"),
    }


def check_kv_cache_step(candidate: Callable, seed: int | None = None) -> None:
    """``candidate(x_new (B, 1, d), past_k, past_v (B, h, T, d_head), w_q, w_k, w_v, w_o, n_head)
    -> (out (B, 1, d), keys, values (B, h, T + 1, d_head))``, and the step must agree with attending over the
    whole sequence at once."""
    name = "kv_cache_step"
    _callable(candidate, name)
    gen, seed = checker_generator(seed)
    count = 0
    for B, T, d, h in ((2, 4, 8, 2), (1, 0, 4, 1), (3, 6, 12, 3)):
        x = torch.randn(B, T + 1, d, generator=gen, dtype=torch.float64)
        weights = _random_weights(d, gen)
        mha = _attention(weights, h)
        past_k = mha.split_heads(x[:, :T] @ weights[1].T)  # (B, h, T, d_head)
        past_v = mha.split_heads(x[:, :T] @ weights[2].T)  # (B, h, T, d_head)
        args = (x[:, T:], past_k, past_v, *weights, h)
        description = f"B={B}, T={T} cached positions, d={d}, n_head={h} (seed={seed})"
        try:
            got = guarded(name, f"kv_cache_step on {description}", candidate,
                          *(a.clone() if torch.is_tensor(a) else a for a in args))
        except CheckFailure as err:
            raise CheckFailure(f"{err}{_error_hint(err)}") from None
        if not isinstance(got, tuple) or len(got) != 3:
            raise CheckFailure(f"{name}: expected a tuple (out, keys, values) for {description}, got "
                               f"{_describe(got)}")
        expected = _reference_kv_cache_step(*args)
        new_k, new_v = expected[1][:, :, -1:], expected[2][:, :, -1:]  # (B, h, 1, d_head)
        x_new = x[:, T:]  # (B, 1, d)
        for label, g, e, past, new, other, w in (("keys", got[1], expected[1], past_k, new_k, new_v, weights[1]),
                                                 ("values", got[2], expected[2], past_v, new_v, new_k, weights[2])):
            if matching_mistake(g, {"right": e}, atol=1e-8, rtol=1e-6):
                continue
            mistake = matching_mistake(g, {
                f"the {label} came back without the new position (the old cache); append it: torch.cat([past, "
                f"new], dim=2)": past,
                f"only the new position's {label[:-1]} came back; return the whole cache, old and new": new,
                f"the new position's {label[:-1]} was put in front of the cache; append it at the end": torch.cat(
                    [new, past], 2),
                f"the new key and value are swapped (the {label} end with the other projection)": torch.cat(
                    [past, other], 2),
                "the projections are x @ w; with nn.Linear's (d_out, d_in) weights they are x @ w.T": torch.cat(
                    [past, mha.split_heads(x_new @ w)], 2),
            }, atol=1e-8, rtol=1e-6)
            if mistake is not None:
                raise CheckFailure(f"{name}: {mistake}, for {description}")
            assert_close(g, e, what=f"{name} ({label}: the cache grows along dim 2, the positions)",
                         inputs=description, atol=1e-8)
        if not matching_mistake(got[0], {"right": expected[0]}, atol=1e-8, rtol=1e-6):
            mistake = matching_mistake(got[0], _step_mistakes(*args), atol=1e-8, rtol=1e-6)
            if mistake is not None:
                raise CheckFailure(f"{name}: {mistake}, for {description}")
            assert_close(got[0], expected[0], what=f"{name} (out)", inputs=description, atol=1e-8)
        whole = _reference_causal_self_attention(x, *weights, h)[:, -1:]  # (B, 1, d)
        assert_close(got[0], whole, what=f"{name} (out vs. attention over the whole sequence)",
                     inputs=description, atol=1e-8)
        count += 1
    passed(name, f"matches the reference and full causal attention on {count} random cases")


# ------------------------------------------------------------------------------------------------ the whole GPT

class GPTLayout(torch.nn.Module):
    """The parameters of the student's GPT (notebook 04, section 7), without a forward: GPT-2's layout with one
    fused ``c_attn`` ``(3d, d)`` per block (rows q | k | v), ``nn.Linear`` weights ``(d_out, d_in)`` and a head
    tied to ``wte``. :func:`check_load_gpt_weights` fills one of these; the exercise declares the same in its class."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        V, T, d, self.n_head = config.vocab_size, config.block_size, config.d_model, config.n_head
        self.wte, self.wpe = torch.nn.Embedding(V, d), torch.nn.Embedding(T, d)
        self.h = torch.nn.ModuleList(torch.nn.ModuleDict({
            "ln_1": torch.nn.LayerNorm(d), "c_attn": torch.nn.Linear(d, 3 * d), "attn_proj": torch.nn.Linear(d, d),
            "ln_2": torch.nn.LayerNorm(d), "c_fc": torch.nn.Linear(d, 4 * d), "mlp_proj": torch.nn.Linear(4 * d, d),
        }) for _ in range(config.n_layer))
        self.ln_f = torch.nn.LayerNorm(d)


def _layout_state(gpt: GPT, *, qkv: str = "qkv") -> dict[str, torch.Tensor]:
    """``gpt``'s weights under :class:`GPTLayout`'s names (the reference loader); ``qkv`` orders c_attn's rows."""
    state = {"wte.weight": gpt.tok_emb.weight, "wpe.weight": gpt.pos_emb.weight,
             "ln_f.weight": gpt.ln_f.weight, "ln_f.bias": gpt.ln_f.bias}
    for i, block in enumerate(gpt.blocks):
        mha = block.attn.attn
        projections = {"q": mha.q_proj, "k": mha.k_proj, "v": mha.v_proj}
        for kind in ("weight", "bias"):
            state[f"h.{i}.c_attn.{kind}"] = torch.cat([getattr(projections[c], kind) for c in qkv])
            for ours, theirs in (("ln_1", block.ln_1), ("attn_proj", mha.out_proj), ("ln_2", block.ln_2),
                                 ("c_fc", block.mlp.fc), ("mlp_proj", block.mlp.proj)):
                state[f"h.{i}.{ours}.{kind}"] = getattr(theirs, kind)
    return {k: v.detach().clone() for k, v in state.items()}


def _layout_forward(state: dict, idx: torch.Tensor, n_layer: int, n_head: int, *, qkv: str = "qkv",
                    mask: str = "causal", scale: str = "d_head", split: str = "transpose", gelu: str = "tanh",
                    variance: str = "biased", post_ln: bool = False, final_ln: bool = True,
                    positions: bool = True, softmax_dim: int = -1, residual: bool = True,
                    second_ln: str = "ln_2", eps: float = 1e-5) -> torch.Tensor:
    """The GPT forward written out over a :class:`GPTLayout` state, with one usual mistake switched on."""
    B, L = idx.shape
    x = state["wte.weight"][idx] + (state["wpe.weight"][:L] if positions else 0)  # (B, L, d)
    d = x.shape[-1]
    d_head = d // n_head

    def norm(u, prefix):  # LayerNorm over the last axis
        var = u.var(-1, unbiased=variance == "unbiased", keepdim=True)
        normalised = (u - u.mean(-1, keepdim=True)) / torch.sqrt(var + eps)
        return normalised * state[prefix + ".weight"] + state[prefix + ".bias"]

    def linear(u, prefix):
        return u @ state[prefix + ".weight"].T + state[prefix + ".bias"]

    def heads(t):  # (B, L, d) -> (B, h, L, d_head)
        return t.view(B, L, n_head, d_head).transpose(1, 2) if split == "transpose" else t.reshape(B, n_head, L, d_head)

    allowed = {"causal": torch.ones(L, L, dtype=torch.bool).tril(), "none": torch.ones(L, L, dtype=torch.bool),
               "strict": torch.ones(L, L, dtype=torch.bool).tril(-1)}[mask]
    for i in range(n_layer):
        p = f"h.{i}."
        u = x if post_ln else norm(x, p + "ln_1")
        parts = dict(zip(qkv, linear(u, p + "c_attn").split(d, dim=-1)))
        q, k, v = (heads(parts[c]) for c in "qkv")
        scores = q @ k.transpose(-2, -1) / {"d_head": math.sqrt(d_head), "d_model": math.sqrt(d), "none": 1.0}[scale]
        weights = scores.masked_fill(~allowed, float("-inf")).softmax(softmax_dim).nan_to_num(0.0)
        o = (weights @ v).transpose(1, 2).reshape(B, L, d)
        x = x + linear(o, p + "attn_proj") if residual else linear(o, p + "attn_proj")
        x = norm(x, p + "ln_1") if post_ln else x
        u = x if post_ln else norm(x, p + second_ln)
        hidden = linear(u, p + "c_fc")
        hidden = torch.relu(hidden) if gelu == "relu" else torch.nn.functional.gelu(hidden, approximate=gelu)
        x = x + linear(hidden, p + "mlp_proj")
        x = norm(x, p + "ln_2") if post_ln else x
    return (norm(x, "ln_f") if final_ln else x) @ state["wte.weight"].T  # (B, L, V): the tied head


def _forward_mistakes(state: dict, idx: torch.Tensor, n_layer: int, n_head: int) -> dict:
    def variant(**mistake):
        return _layout_forward(state, idx, n_layer, n_head, **mistake)

    return {
        "the causal mask is missing: a position sees later positions": variant(mask="none"),
        "c_attn's output was split as k | q | v; its rows are q | k | v, in that order": variant(qkv="kqv"),
        "c_attn's output was split as q | v | k; its rows are q | k | v, in that order": variant(qkv="qvk"),
        "the scores are divided by sqrt(d_model); divide by sqrt(d_head), the width of one head":
            variant(scale="d_model"),
        "the scaling 1/sqrt(d_head) is missing": variant(scale="none"),
        "the heads are split with view(B, n_head, L, d_head); view (B, L, n_head, d_head), then transpose(1, 2)":
            variant(split="view"),
        "the MLP uses the exact GELU; GPT-2 uses the tanh approximation (approximate='tanh')": variant(gelu="none"),
        "the MLP uses ReLU; GPT-2 uses GELU (the tanh approximation)": variant(gelu="relu"),
        "the LayerNorm has no eps: divide by sqrt(var + eps), eps = ln.eps = 1e-5": variant(eps=0.0),
        "the LayerNorm uses the unbiased variance (divides by d - 1); LayerNorm divides by d (unbiased=False)":
            variant(variance="unbiased"),
        "the blocks are post-LN (LayerNorm after each residual sum); GPT-2 is pre-LN: x + attn(ln_1(x))":
            variant(post_ln=True),
        "the final LayerNorm ln_f before the head is missing": variant(final_ln=False),
        "the position embeddings wpe are missing": variant(positions=False),
        "the softmax runs over the queries (dim=-2); each query's weights over the keys sum to 1 (dim=-1)":
            variant(softmax_dim=-2),
        "the diagonal is masked too: position i may attend to itself (mask above the diagonal only, triu(1))":
            variant(mask="strict"),
        "the residual around the attention is missing: x = x + attn_proj(...)": variant(residual=False),
        "ln_1 is used before the MLP too; the MLP reads ln_2(x)": variant(second_ln="ln_1"),
    }


_GPT_FORBIDDEN = Forbidden(
    names=frozenset({"layer_norm", "LayerNorm", "native_layer_norm", "group_norm", "native_group_norm",
                     "instance_norm", "batch_norm", "native_batch_norm", "scaled_dot_product_attention",
                     "scaled_dot_product_flash_attention_for_cpu", "scaled_dot_product_attention_math",
                     "scaled_dot_product_efficient_attention", "multi_head_attention_forward", "MultiheadAttention"}),
    what="the library's LayerNorm and attention (nn.LayerNorm's forward, F.layer_norm, "
         "F.scaled_dot_product_attention, nn.MultiheadAttention)",
    hint="normalise with means and variances and attend with q @ k^T, as in notebooks 02 and 03; the LayerNorm "
         "modules only hold the weight and bias",
)


def _build(cls, name: str, config: GPTConfig) -> torch.nn.Module:
    model = guarded(name, f"{getattr(cls, '__name__', cls)}(config)", cls, config)
    if not isinstance(model, torch.nn.Module):
        raise CheckFailure(f"{name}: {getattr(cls, '__name__', cls)}(config) should build an nn.Module, got "
                           f"{_describe(model)}")
    return model


def _missing_layout(name: str, model: torch.nn.Module, config: GPTConfig) -> None:
    """Fail unless ``model`` declares exactly :class:`GPTLayout`'s parameters, with their shapes."""
    want = {k: tuple(v.shape) for k, v in GPTLayout(config).state_dict().items()}
    have = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    if want != have:
        missing = sorted(set(want) - set(have))
        extra = sorted(set(have) - set(want))
        shapes = sorted(k for k in set(want) & set(have) if want[k] != have[k])
        raise CheckFailure(f"{name}: keep the parameters __init__ declares (wte, wpe, h[i] ln_1/c_attn/attn_proj/"
                           f"ln_2/c_fc/mlp_proj, ln_f), so a checkpoint can be loaded into them; missing "
                           f"{missing[:4]}, unexpected {extra[:4]}, wrong shapes {shapes[:4]}")


def check_gpt_forward(cls: Callable, seed: int | None = None) -> None:
    """``cls(config)`` (a :class:`bigtut.gpt.GPTConfig`) declares :class:`GPTLayout`'s parameters and its
    ``forward(idx (B, L))`` returns the logits ``(B, L, V)`` of GPT-2's forward pass, written by hand.

    Checked in float64 on random GPTs whose weights are copied in from a :class:`bigtut.gpt.GPT` (LayerNorms far
    from the identity): the logits equal ``GPT(idx).logits`` for ``L = 1`` up to ``block_size``; gradients reach the
    weights; ``idx`` is untouched; no library LayerNorm (or group norm) or attention is called; no tensor is created
    on the CPU whatever the device of ``idx``. A failure names the mistake when the logits equal a known wrong
    forward (mask, q/k/v order, scale, head split, softmax axis, GELU, variance, residual, post-LN, ln_2, ln_f,
    positions)."""
    name = "gpt_forward"
    if not isinstance(cls, type):
        raise CheckFailure(f"{name}: expected your GPT class (not an instance or a function), got {_describe(cls)}")
    found = scan_for_forbidden_names(getattr(cls, "forward", None), _GPT_FORBIDDEN)
    if found:
        raise CheckFailure(f"{name}: forward calls {found}, but this exercise rules out {_GPT_FORBIDDEN.what}: "
                           f"{_GPT_FORBIDDEN.hint}")
    gen, seed = checker_generator(seed)
    count = 0
    for vocab, block_size, n_layer, n_head, d, shapes in ((11, 8, 2, 2, 8, ((2, 8), (1, 1), (3, 5))),
                                                          (7, 6, 1, 1, 4, ((2, 6),)), (13, 9, 2, 4, 16, ((2, 9),))):
        reference = _random_gpt(gen, vocab, block_size, n_layer, n_head, d)
        reference.lm_head.weight = reference.tok_emb.weight  # the course's GPTs tie the head
        config = GPTConfig(vocab_size=vocab, block_size=block_size, n_layer=n_layer, n_head=n_head, d_model=d)
        model = _build(cls, name, config).double().eval()
        _missing_layout(name, model, config)
        state = _layout_state(reference)
        model.load_state_dict(state)
        for B, L in shapes:
            idx = torch.randint(0, vocab, (B, L), generator=gen)
            given = idx.clone()
            what = (f"a random GPT (vocab {vocab}, block_size {block_size}, {n_layer} layer(s), {n_head} head(s), "
                    f"d_model {d}), idx of shape {(B, L)} (seed={seed})")
            with record_forbidden_calls(_GPT_FORBIDDEN) as seen, torch.no_grad():
                got = guarded(name, f"forward on {what}", model, given)
            if seen:
                raise CheckFailure(f"{name}: forward calls {seen[0]}, but this exercise rules out "
                                   f"{_GPT_FORBIDDEN.what}: {_GPT_FORBIDDEN.hint}")
            if not torch.equal(given, idx):
                raise CheckFailure(f"{name}: forward changed idx in place for {what}; leave the caller's ids alone")
            got = got.logits if hasattr(got, "logits") else got
            with torch.no_grad():
                expected = reference(idx).logits  # (B, L, V)
            if not matching_mistake(got, {"right": expected}, atol=1e-9, rtol=1e-7):
                with torch.no_grad():
                    mistake = matching_mistake(got, _forward_mistakes(state, idx, n_layer, n_head), atol=1e-9,
                                               rtol=1e-7)
                if mistake is not None:
                    raise CheckFailure(f"{name}: {mistake}, for {what}")
                if isinstance(got, torch.Tensor) and got.is_floating_point() and torch.isnan(got).any():
                    raise CheckFailure(f"{name}: the logits hold nan for {what}: a row of scores that is all -inf "
                                       f"(the diagonal masked too?) gives 0/0 in the softmax; mask above the "
                                       f"diagonal only")
                assert_close(got, expected, what=f"{name} (logits vs bigtut.gpt.GPT)", inputs=what, atol=1e-9,
                             rtol=1e-7)
            count += 1
        out = guarded(name, f"forward with gradients on {what}", model, idx)
        out = out.logits if hasattr(out, "logits") else out
        if not out.requires_grad:
            raise CheckFailure(f"{name}: the logits carry no gradient for {what} (torch.no_grad(), .detach() or .data "
                               f"inside forward?): the model could not be trained or fine-tuned")
        grads = torch.autograd.grad(out.square().sum(), [p for _, p in model.named_parameters()], allow_unused=True)
        unused = [n for (n, _), g in zip(model.named_parameters(), grads) if g is None or not g.abs().sum()]
        if unused:
            raise CheckFailure(f"{name}: no gradient reaches {unused[:3]} for {what}: a parameter is not used, or "
                               f"used outside autograd")
    try:
        probe = copy.deepcopy(model).to("meta")  # shapes, no data: a CPU tensor made inside forward collides with it
    except Exception:  # something in the model cannot be copied: the device check is skipped
        probe = None
    problem = probe is not None and _device_problem(probe, torch.zeros(2, 5, dtype=torch.long, device="meta"))
    if problem:
        raise CheckFailure(f"{name}: forward creates a tensor on the CPU whatever the device of idx, so it fails on a "
                           f"GPU (found by running it on 'meta' tensors: {problem}). Create positions and masks with "
                           f"device=idx.device (torch.arange(L, device=idx.device)).")
    passed(name, f"logits equal bigtut.gpt.GPT on {count} inputs of 3 random GPTs; gradients reach every weight")


# ------------------------------------------------------------------------------------------------ loading weights

def _layout_mistakes(gpt: GPT) -> dict:
    """What the usual wrong loaders put into a layout's c_attn weight (the tensor that shows most mistakes)."""
    mha = gpt.blocks[0].attn.attn
    q, k, v = mha.q_proj.weight, mha.k_proj.weight, mha.v_proj.weight
    d = q.shape[0]
    return {
        "c_attn's rows are k | q | v; concatenate q, k, v in that order": torch.cat([k, q, v]),
        "c_attn's rows are q | v | k; concatenate q, k, v in that order": torch.cat([q, v, k]),
        "c_attn's rows are v | k | q; concatenate q, k, v in that order": torch.cat([v, k, q]),
        "c_attn holds the transposed weights (Hugging Face's Conv1D habit); nn.Linear keeps (d_out, d_in), "
        "so stack q, k, v along dim 0 as they are": torch.cat([q.T, k.T, v.T]),
        "c_attn interleaves the heads (q, k, v of head 0, then of head 1, ...); stack the whole q, then k, then v":
            torch.stack([q, k, v]).view(3, mha.num_heads, d // mha.num_heads, d).transpose(0, 1).reshape(3 * d, d),
    }


def check_load_gpt_weights(candidate: Callable, seed: int | None = None) -> None:
    """``candidate(mine, theirs)`` copies a :class:`bigtut.gpt.GPT` (``theirs``) into a :class:`GPTLayout`-shaped
    module (``mine``, in place; it may return it): embeddings, every LayerNorm and Linear, and the three
    ``q_proj``/``k_proj``/``v_proj`` stacked into one ``c_attn`` (rows q | k | v, weights and biases).

    Checked on random GPTs: every parameter of ``mine`` equals the reference copy and still requires grad;
    ``theirs`` is unchanged (values and ``requires_grad``) and shares no storage with ``mine`` (copy the values; a
    shared tensor would train both models at once)."""
    name = "load_gpt_weights"
    _callable(candidate, name)
    gen, seed = checker_generator(seed)
    for vocab, block_size, n_layer, n_head, d in ((11, 8, 2, 2, 8), (7, 5, 1, 1, 4), (13, 9, 3, 4, 16)):
        theirs = _random_gpt(gen, vocab, block_size, n_layer, n_head, d)
        theirs.lm_head.weight = theirs.tok_emb.weight
        config = GPTConfig(vocab_size=vocab, block_size=block_size, n_layer=n_layer, n_head=n_head, d_model=d)
        mine = GPTLayout(config).double()
        before = {k: v.clone() for k, v in theirs.state_dict().items()}
        what = (f"a random bigtut GPT (vocab {vocab}, block_size {block_size}, {n_layer} layer(s), {n_head} "
                f"head(s), d_model {d}) (seed={seed})")
        returned = guarded(name, f"load_gpt_weights on {what}", candidate, mine, theirs)
        if returned is not None and returned is not mine:
            raise CheckFailure(f"{name}: returned a different module for {what}; fill `mine` in place (copy_ under "
                               f"torch.no_grad()) and return it, or return nothing")
        changed = [k for k, v in theirs.state_dict().items() if not torch.equal(v, before[k])]
        changed += [f"{k}.requires_grad" for k, p in theirs.named_parameters() if not p.requires_grad]
        if changed:
            raise CheckFailure(f"{name}: changed bigtut's model ({changed[0]}) for {what}; only copy from it")
        frozen = [k for k, p in mine.named_parameters() if not p.requires_grad]
        if frozen:
            raise CheckFailure(f"{name}: {frozen[0]} no longer requires grad after loading, for {what}: the model "
                               f"could not be trained or fine-tuned. Copy under torch.no_grad() (which lets copy_ "
                               f"write into a parameter) instead of switching requires_grad off")
        storage = {p.untyped_storage().data_ptr() for p in theirs.parameters()}
        shared = [k for k, p in mine.named_parameters() if p.untyped_storage().data_ptr() in storage]
        if shared:
            raise CheckFailure(f"{name}: {shared[0]} shares its tensor with bigtut's model for {what} (assigned, not "
                               f"copied): training one model would change the other; copy the values with "
                               f"mine.<name>.copy_(...) under torch.no_grad()")
        expected = _layout_state(theirs)
        got = dict(mine.named_parameters())
        if not torch.equal(got["h.0.c_attn.weight"].detach(), expected["h.0.c_attn.weight"]):
            mistake = matching_mistake(got["h.0.c_attn.weight"], _layout_mistakes(theirs), atol=0, rtol=0)
            if mistake is not None:
                raise CheckFailure(f"{name}: {mistake}, for {what}")
        for key, value in expected.items():
            if not torch.equal(got[key].detach(), value):
                swaps = {"wte": "wpe", "wpe": "wte", "ln_1": "ln_2", "ln_2": "ln_1", "c_fc": "mlp_proj"}
                hint = ""
                for part, other in swaps.items():
                    twin = key.replace(part, other)
                    if part in key and twin in expected and got[key].shape == expected[twin].shape and torch.equal(
                            got[key].detach(), expected[twin]):
                        hint = f" (it holds what belongs in {twin}: the two are swapped)"
                if not hint and key.endswith("bias") and "c_attn" in key:
                    hint = " (stack the three biases q_proj.bias, k_proj.bias, v_proj.bias the same way)"
                raise CheckFailure(f"{name}: {key} was not loaded right for {what}{hint}.\n"
                                   f"  expected {_describe(value)}\n  got      {_describe(got[key])}")
    passed(name, "every weight of 3 random GPTs copied into the fused layout; bigtut's model untouched, no "
                 "shared tensors")
