"""Checkers for the exercises of chapter 04 (GPT).

Each takes the student's function and ``seed=`` (``None``: fresh random inputs at every call; failure messages
quote the seed), compares it with :mod:`bigtut.gpt` on random cases, and is built to catch the usual mistakes:

===============================  ===============================================================================
checker                          what it holds the candidate to (and the usual mistakes it catches)
===============================  ===============================================================================
``check_gpt_block``              ``gpt_block(x, ln_1, attn, ln_2, mlp)``: pre-LN, ``h = x + attn(ln_1(x))``,
                                 ``h + mlp(ln_2(h))`` (not post-LN, not a missing residual, not ln_1/ln_2
                                 swapped, not the MLP reading ``x`` instead of ``h``)
``check_generate``               ``generate(model, idx, max_new_tokens, temperature, generator)``: crop to the
                                 last ``block_size`` tokens, the last position's logits, ``softmax(logits / T)``,
                                 ``torch.multinomial`` (arg-max for ``T = 0``), append (not uncropped, not the
                                 first ``block_size`` tokens, not another position, not temperature after softmax)
``check_cached_generate``        ``cached_generate(model, idx, max_new_tokens)``: greedy, prompt fed once, then
                                 one new token per call into one KV cache (not a fresh cache per step, not the
                                 whole sequence again, not without the cache)
``check_causal_self_attention``  multi-head causal self-attention from four projection matrices
``check_top_p_filter``           the nucleus keeps the smallest top set with mass ``>= p`` (logits, not probs)
``check_kv_cache_step``          one cached attention step: append the new key/value, attend over all of them
===============================  ===============================================================================

Weights follow ``nn.Linear``'s convention: ``w`` is ``(d_out, d_in)`` and a projection is ``x @ w.T``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from bigtut.attention import KVCache, MultiHeadAttention, causal_mask
from bigtut.checks.core import CheckFailure, _call, assert_close, checker_generator, guarded, passed
from bigtut.gpt import GPT, GPTConfig
from bigtut.gpt import generate as _generate_reference
from bigtut.gpt import top_p_filter as _top_p_reference

__all__ = ["check_cached_generate", "check_causal_self_attention", "check_generate", "check_gpt_block",
           "check_kv_cache_step", "check_top_p_filter"]


def _callable(candidate, name: str) -> None:
    if not callable(candidate):
        raise CheckFailure(f"{name}: expected a function, got {type(candidate).__name__}")


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

def check_gpt_block(candidate: Callable, seed: int | None = None) -> None:
    """``candidate(x (B, L, d), ln_1, attn, ln_2, mlp) -> (B, L, d)``: one pre-LN GPT block, given a
    :class:`bigtut.gpt.Block`'s submodules (``attn`` maps ``(B, L, d) -> (B, L, d)`` and is already causal).
    Compared with ``Block.forward`` on random float64 blocks whose LayerNorms differ from each other."""
    name = "gpt_block"
    _callable(candidate, name)
    gen, seed = checker_generator(seed)
    for B, L, d, h in ((2, 5, 8, 2), (1, 1, 4, 1), (3, 7, 16, 4)):
        block = _random_gpt(gen, 7, 8, 1, h, d).blocks[0]
        x = torch.randn(B, L, d, generator=gen, dtype=torch.float64)

        def attn(a, block=block):  # (B, L, d) -> (B, L, d): causal self-attention (weights dropped)
            return block.attn(a)[0]

        with torch.no_grad():
            expected = block(x)[0]  # (B, L, d)
            got = guarded(name, f"gpt_block on x of shape {(B, L, d)}", candidate, x.clone(), block.ln_1, attn,
                          block.ln_2, block.mlp)
        assert_close(got, expected, what=name, atol=1e-10,
                     inputs=f"x of shape {(B, L, d)}, a random block with {h} head(s) (seed={seed}); expected "
                            f"h = x + attn(ln_1(x)), then h + mlp(ln_2(h))")
    passed(name, "pre-LN block equals bigtut.gpt.Block on 3 random blocks")


# ------------------------------------------------------------------------------------------------ generation

def check_generate(candidate: Callable, seed: int | None = None) -> None:
    """``candidate(model, idx (B, T), max_new_tokens, temperature=1.0, generator=None) -> (B, T + n)``:
    the sampling loop of :func:`bigtut.gpt.generate` without a cache. Each step crops the context to the last
    ``model.config.block_size`` tokens, takes the logits ``(B, V)`` of the last position, and draws one token
    per row with ``torch.multinomial(softmax(logits / temperature), 1, generator=generator)`` — or the arg-max
    when ``temperature == 0`` — then appends it. Cases run past ``block_size`` and sample at T = 0.5, 1, 2."""
    name = "generate"
    _callable(candidate, name)
    gen, seed = checker_generator(seed)
    model = _random_gpt(gen, 11, 8, 2, 2, 16)  # block_size 8
    cases = ((2, 3, 9, 0.0), (1, 10, 4, 0.0), (3, 2, 12, 1.0), (2, 4, 10, 0.5), (2, 6, 8, 2.0))
    for B, T, n, temperature in cases:
        idx = torch.randint(0, 11, (B, T), generator=gen)
        draw_seed = int(torch.randint(0, 2**31 - 1, (1,), generator=gen))
        expected = _generate_reference(model, idx, n, temperature, use_cache=False,
                                       generator=torch.Generator().manual_seed(draw_seed))  # (B, T + n)
        what = (f"a prompt of {B}x{T} tokens, {n} new tokens, temperature={temperature}, block_size=8, "
                f"generator seeded {draw_seed} (seed={seed})")
        with torch.no_grad():
            got = guarded(name, what, candidate, model, idx.clone(), n, temperature,
                          torch.Generator().manual_seed(draw_seed))
        if not isinstance(got, torch.Tensor) or tuple(got.shape) != tuple(expected.shape):
            shape = tuple(got.shape) if isinstance(got, torch.Tensor) else type(got).__name__
            raise CheckFailure(f"{name}: expected ids of shape {tuple(expected.shape)} (prompt + new tokens) for "
                               f"{what}, got {shape}")
        if not torch.equal(got.cpu().long(), expected):
            row, col = (got.cpu().long() != expected).nonzero()[0].tolist()
            hint = "the prompt itself changed" if col < T else f"new token {col - T}, drawn after {col} tokens"
            raise CheckFailure(f"{name}: for {what}: row {row} differs first at position {col} ({hint}): expected "
                               f"{expected[row].tolist()}, got {got[row].tolist()}")
    passed(name, "greedy and sampled (T = 0.5, 1, 2) generation equals bigtut.gpt.generate, past block_size too")


def _instrument(model: GPT) -> tuple[list[int], list, Callable[[], None]]:
    """Record the positions of every forward pass (through the token embedding) and every cache that
    ``model.new_cache()`` hands out; the returned function undoes both."""
    lengths: list[int] = []
    caches: list = []
    handle = model.tok_emb.register_forward_hook(lambda module, args, out: lengths.append(args[0].shape[-1]))

    def new_cache():
        caches.append(GPT.new_cache(model))
        return caches[-1]

    model.new_cache = new_cache  # an instance attribute shadows the method until it is deleted

    def undo() -> None:
        handle.remove()
        del model.new_cache

    return lengths, caches, undo


def check_cached_generate(candidate: Callable, seed: int | None = None) -> None:
    """``candidate(model, idx (B, T), max_new_tokens) -> (B, T + n)``: greedy generation with one KV cache
    (``cache = model.new_cache()``): feed the prompt once (``model(idx, cache=cache).logits``), then only the
    newest token at each step (``model(next_id, cache=cache)``). Prompt + new tokens fit in ``block_size``.
    Checked: the tokens equal uncached greedy generation, one cache holds the whole past, and the model never
    re-reads it."""
    name = "cached_generate"
    _callable(candidate, name)
    gen, seed = checker_generator(seed)
    model = _random_gpt(gen, 13, 24, 2, 2, 16)  # block_size 24
    for B, T, n in ((2, 5, 10), (1, 1, 8), (3, 7, 16)):
        idx = torch.randint(0, 13, (B, T), generator=gen)
        expected = _generate_reference(model, idx, n, 0.0, use_cache=False)  # (B, T + n)
        what = f"a prompt of {B}x{T} tokens, {n} new tokens, greedy, block_size=24 (seed={seed})"
        lengths, caches, undo = _instrument(model)
        try:
            with torch.no_grad():
                got = guarded(name, what, candidate, model, idx.clone(), n)
        finally:
            undo()
        if len(caches) != 1:
            raise CheckFailure(f"{name}: for {what} model.new_cache() was called {len(caches)} times. Make one "
                               f"cache before the loop and pass the same one to every call: it must keep "
                               f"(append) the keys and values of every position fed so far")
        assert_close(got, expected, what=name, inputs=what, atol=0)
        fed = sum(lengths)
        if not lengths or any(length != 1 for length in lengths[1:]) or fed > T + n:
            raise CheckFailure(f"{name}: for {what} the model was fed {lengths} positions per call ({fed} in all). "
                               f"With a KV cache the prompt is fed once and then one new token per call "
                               f"(at most {T} + {n} positions in all): the cache already holds the past")
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


def check_causal_self_attention(candidate: Callable, seed: int | None = None) -> None:
    """``candidate(x (B, L, d), w_q, w_k, w_v, w_o (d, d), n_head) -> (B, L, d)``: causal multi-head
    self-attention without biases, compared with :class:`bigtut.attention.MultiHeadAttention` and a causal mask."""
    name = "causal_self_attention"
    _callable(candidate, name)
    gen, seed = checker_generator(seed)
    for B, L, d, h in ((2, 5, 8, 2), (1, 1, 4, 1), (3, 7, 12, 3), (2, 6, 16, 4)):
        x = torch.randn(B, L, d, generator=gen, dtype=torch.float64)
        args = (x, *_random_weights(d, gen), h)
        got = _call(candidate, name, args, {})
        assert_close(got, _reference_causal_self_attention(*args), what=name, atol=1e-8,
                     inputs=f"x of shape {(B, L, d)}, n_head={h} (seed={seed})")
    passed(name, "matches the reference on 4 random cases")


def check_top_p_filter(candidate: Callable, seed: int | None = None) -> None:
    """``candidate(logits (..., V), p) -> (..., V)``: the nucleus (smallest set of most likely tokens with
    mass ``>= p``) keeps its logits, every other entry becomes ``-inf``."""
    name = "top_p_filter"
    _callable(candidate, name)
    gen, seed = checker_generator(seed)
    fixed = torch.tensor([0.5, 0.3, 0.15, 0.05], dtype=torch.float64).log()
    cases = [("logits log([0.5, 0.3, 0.15, 0.05]), p=0.6", fixed, 0.6),
             ("logits log([0.5, 0.3, 0.15, 0.05]), p=0.5", fixed, 0.5)]
    for shape, p in (((3, 10), 0.9), ((2, 50), 0.5), ((4, 7), 1.0), ((1, 20), 0.05), ((2, 3, 12), 0.8)):
        logits = 3 * torch.randn(*shape, generator=gen, dtype=torch.float64)
        cases.append((f"random logits of shape {shape}, p={p} (seed={seed})", logits, p))
    for description, logits, p in cases:
        got = _call(candidate, name, (logits.clone(), p), {})
        assert_close(got, _top_p_reference(logits, p), what=name, inputs=description)
    passed(name, f"matches the reference on {len(cases)} random cases")


def _reference_kv_cache_step(x_new, past_k, past_v, w_q, w_k, w_v, w_o, n_head):
    mha = _attention((w_q, w_k, w_v, w_o), n_head)
    cache = KVCache(past_k, past_v, past_k.shape[2]) if past_k.shape[2] else KVCache()
    with torch.no_grad():
        out, _ = mha(x_new, x_new, x_new, return_attention=False, cache=cache)  # the new token sees every key
    return out, cache.keys, cache.values


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
        got = _call(candidate, name, args, {})
        if not isinstance(got, tuple) or len(got) != 3:
            raise CheckFailure(f"{name}: expected a tuple (out, keys, values) for {description}, got {type(got)}")
        expected = _reference_kv_cache_step(*args)
        for what, g, e in zip(("out", "keys", "values"), got, expected):
            assert_close(g, e, what=f"{name} ({what})", inputs=description, atol=1e-8)
        whole = _reference_causal_self_attention(x, *weights, h)[:, -1:]  # (B, 1, d)
        assert_close(got[0], whole, what=f"{name} (out vs. attention over the whole sequence)",
                     inputs=description, atol=1e-8)
        count += 1
    passed(name, f"matches the reference and full causal attention on {count} random cases")
