"""The fast decoding path (bigtut.gpt.fast_decoding) against the readable one: the same hidden states and logits
at every step, identical generated tokens (greedy and sampled, batches, windows sliding past block_size), and
the readable path wherever the fast one would not compute the same thing. Also KVCache(capacity=...)."""

import pytest
import torch

from bigtut.attention import KVCache
from bigtut.compress import prune_heads, prune_magnitude
from bigtut.gpt import GPT, GPTConfig
from bigtut.gpt.fast_decoding import FastDecoder, readable_decoding

TOL = {torch.float64: dict(atol=1e-12, rtol=0), torch.float32: dict(atol=1e-5, rtol=1e-5)}  # sums in another order
UNCACHED_TOL = {torch.float64: dict(atol=1e-12, rtol=0), torch.float32: dict(atol=1e-5, rtol=1e-5)}  # other sums
SHAPES = [  # vocab, block_size, n_layer, n_head, d_model, bias, tie_weights
    dict(vocab_size=29, block_size=24, n_layer=2, n_head=2, d_model=16),
    dict(vocab_size=61, block_size=40, n_layer=3, n_head=4, d_model=32, bias=False),
    dict(vocab_size=17, block_size=12, n_layer=1, n_head=1, d_model=8, tie_weights=False),
    dict(vocab_size=101, block_size=33, n_layer=4, n_head=3, d_model=24, tie_weights=False),
]


def random_gpt(seed: int, dtype=torch.float64, **fields) -> GPT:
    """A GPT of the given shape whose every parameter is redrawn: LayerNorms away from the identity, biases
    nonzero, logits of standard deviation ~2 (so that sampling, top-k and top-p have choices to make)."""
    gen = torch.Generator().manual_seed(seed)
    model = GPT(GPTConfig(**fields)).to(dtype).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen, dtype=dtype)
            if "ln" in name:
                p.copy_(noise * 0.3 + (1.0 if name.endswith("weight") else 0.0))
            else:
                p.copy_(noise * (0.5 if "emb" in name or "lm_head" in name else 1.0) / p.shape[-1] ** 0.5)
    return model


def readable_generate(model, idx, n, **kwargs):
    with readable_decoding():
        return model.generate(idx, n, **kwargs)


def count_fast_steps(monkeypatch) -> list[int]:
    """Count the calls of FastDecoder.step from now on."""
    calls = []
    real = FastDecoder.step

    def step(self, ids):
        calls.append(ids.shape[0])
        return real(self, ids)

    monkeypatch.setattr(FastDecoder, "step", step)
    return calls


# ----------------------------------------------------------------------------------- one step, numbers
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("shape", range(len(SHAPES)))
@pytest.mark.parametrize("batch", [1, 3])
def test_step_gives_the_hidden_states_and_logits_of_the_readable_path(shape, batch, dtype):
    fields = SHAPES[shape]
    model = random_gpt(shape, dtype, **fields)
    L = fields["block_size"]
    ids = torch.randint(0, fields["vocab_size"], (batch, L), generator=torch.Generator().manual_seed(shape))
    prompt = 1 + shape  # prompts of 1 to 4 tokens, then one token per step up to block_size
    decoder = FastDecoder(model)
    readable_cache = model.new_cache()
    with torch.no_grad():
        full, _ = model.hidden_states(ids)  # (B, L, d): every position in one uncached pass
        fast_h, _ = model.hidden_states(ids[:, :prompt], cache=decoder.new_cache())
        readable_h, _ = model.hidden_states(ids[:, :prompt], cache=readable_cache)
        torch.testing.assert_close(fast_h, readable_h, **TOL[dtype])
        for t in range(prompt, L):
            fast = decoder.step(ids[:, t])  # (B, d)
            readable = model.hidden_states(ids[:, t:t + 1], cache=readable_cache)[0][:, -1]  # (B, d)
            torch.testing.assert_close(fast, readable, **TOL[dtype])
            torch.testing.assert_close(fast, full[:, t], **UNCACHED_TOL[dtype])
            torch.testing.assert_close(model.lm_head(fast), model.lm_head(readable), **TOL[dtype])
            torch.testing.assert_close(decoder.logits(fast), model.lm_head(readable), **UNCACHED_TOL[dtype])
    for ours, theirs in zip(decoder.caches, readable_cache):
        torch.testing.assert_close(ours.keys, theirs.keys, **TOL[dtype])
        torch.testing.assert_close(ours.values, theirs.values, **TOL[dtype])
    with pytest.raises(ValueError, match="block_size"):
        decoder.step(ids[:, 0])  # the cache is full


# ------------------------------------------------------------------------------------- generated tokens
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("shape", range(len(SHAPES)))
@pytest.mark.parametrize("sampling", [dict(temperature=0), dict(temperature=1.0), dict(temperature=0.7, top_k=5),
                                      dict(temperature=1.3, top_p=0.8), dict(top_k=7, top_p=0.9)])
def test_generate_fast_equals_readable_and_uncached(shape, sampling, dtype, monkeypatch):
    fields = SHAPES[shape]
    model = random_gpt(10 + shape, dtype, **fields)
    block = fields["block_size"]
    gen = torch.Generator().manual_seed(shape)
    for batch, prompt_len, new in ((1, 3, block - 3), (3, 2, block + 5), (2, block + 4, 6)):  # the last two slide
        idx = torch.randint(0, fields["vocab_size"], (batch, prompt_len), generator=gen)
        calls = count_fast_steps(monkeypatch)
        fast = model.generate(idx, new, generator=torch.Generator().manual_seed(1), **sampling)
        steps = len(calls)
        readable = readable_generate(model, idx, new, generator=torch.Generator().manual_seed(1), **sampling)
        uncached = model.generate(idx, new, use_cache=False, generator=torch.Generator().manual_seed(1),
                                  **sampling)
        assert fast.shape == (batch, prompt_len + new)
        assert torch.equal(fast, readable) and torch.equal(fast, uncached)
        assert steps == max(0, min(new - 1, block - prompt_len)), "fast steps until the window began to slide"
        assert len(calls) == steps, "inside readable_decoding() no fast step ran"


def test_generate_fast_equals_hugging_face_greedy():
    pytest.importorskip("transformers")
    from bigtut.gpt import gpt_to_hf

    model = random_gpt(3, torch.float64, **SHAPES[3])  # HF's GPT-2 has biases; this one is untied too
    idx = torch.randint(0, 101, (2, 5), generator=torch.Generator().manual_seed(0))
    theirs = gpt_to_hf(model).generate(idx, attention_mask=torch.ones_like(idx), max_new_tokens=28,
                                       do_sample=False, pad_token_id=0)
    assert torch.equal(model.generate(idx, 28, temperature=0), theirs)


def test_generate_returns_a_normal_tensor_and_restores_the_mode():
    model = random_gpt(4, torch.float32, **SHAPES[0])
    model.train()
    out = model.generate(torch.zeros(1, 2, dtype=torch.long), 5, temperature=0)
    assert model.training and all(m.training for m in model.modules())
    assert not out.is_inference()
    model.tok_emb(out).sum().backward()  # usable where autograd runs (e.g. attributions over generated ids)
    idx = torch.zeros(1, 3, dtype=torch.long)
    same = model.generate(idx, 0)
    assert torch.equal(same, idx) and same is not idx


# -------------------------------------------------------------------------- where the fast path applies
def test_fast_path_applies_only_to_an_unmodified_gpt_in_eval_mode():
    model = random_gpt(5, **SHAPES[0])
    assert FastDecoder.applies_to(model)
    with readable_decoding():
        assert not FastDecoder.applies_to(model)
    assert FastDecoder.applies_to(model)
    assert not FastDecoder.applies_to(model.train())
    model.eval()
    assert not FastDecoder.applies_to(prune_magnitude(model, 0.5))  # masked linear layers
    model.blocks[0].attn.attn.fast = False  # the explicit attention path: the readable path runs it
    assert not FastDecoder.applies_to(model)
    model.blocks[0].attn.attn.fast = True
    model.hidden_states = GPT.hidden_states.__get__(model)  # a method replaced on the instance
    assert not FastDecoder.applies_to(model)
    del model.hidden_states

    class Variant(GPT):
        pass

    assert not FastDecoder.applies_to(Variant(model.config))
    with pytest.raises(TypeError, match="FastDecoder"):
        FastDecoder(torch.nn.Linear(2, 2))


def test_hooks_see_every_call():
    model = random_gpt(6, **SHAPES[0])
    idx = torch.randint(0, 29, (2, 4), generator=torch.Generator().manual_seed(0))
    expected = readable_generate(model, idx, 10, temperature=0)
    seen = []
    handle = model.blocks[1].mlp.register_forward_hook(lambda module, args, out: seen.append(args[0].shape[1]))
    assert not FastDecoder.applies_to(model)  # a hook inside a block: the readable path, which calls it
    assert torch.equal(model.generate(idx, 10, temperature=0), expected)
    assert seen == [4] + [1] * 9
    handle.remove()
    stamps = []
    handle = model.lm_head.register_forward_hook(lambda module, args, out: stamps.append(out.shape))
    assert FastDecoder.applies_to(model)  # generate calls lm_head as a module on both paths
    assert torch.equal(model.generate(idx, 10, temperature=0), expected)
    assert stamps == [(2, 29)] * 10
    handle.remove()


def test_fast_path_runs_a_model_with_heads_pruned(monkeypatch):
    model = prune_heads(random_gpt(7, **SHAPES[1]), 0.5).eval()  # 2 of 4 heads per layer, projections 16 wide
    assert FastDecoder.applies_to(model)
    idx = torch.randint(0, 61, (2, 3), generator=torch.Generator().manual_seed(0))
    calls = count_fast_steps(monkeypatch)
    fast = model.generate(idx, 20, temperature=0.9, generator=torch.Generator().manual_seed(2))
    assert len(calls) == 19
    assert torch.equal(fast, readable_generate(model, idx, 20, temperature=0.9,
                                               generator=torch.Generator().manual_seed(2)))


# ------------------------------------------------------------------------------ KVCache(capacity=...)
@pytest.mark.parametrize("start_filled", [False, True])
def test_kv_cache_with_capacity_equals_appending(start_filled):
    gen = torch.Generator().manual_seed(0)
    chunks = [(torch.randn(2, 3, n, 4, generator=gen, dtype=torch.float64),
               torch.randn(2, 3, n, 4, generator=gen, dtype=torch.float64)) for n in (3, 1, 1, 4)]
    appending, in_place = KVCache(), KVCache(capacity=10)
    if start_filled:  # a cache made from existing keys and values keeps them
        k, v = chunks.pop(0)
        appending, in_place = KVCache(k, v, 3), KVCache(k.clone(), v.clone(), 3, capacity=10)
    where = set()
    for k, v in chunks:
        expected, got = appending.update(k, v), in_place.update(k, v)
        assert torch.equal(got[0], expected[0]) and torch.equal(got[1], expected[1])
        assert in_place.length == appending.length == got[0].shape[2]
        where.add(got[0].data_ptr())
    assert len(where) == 1  # views of one buffer written in place, never a new copy of the past
    with pytest.raises(ValueError, match=r"capacity=10.*9 cached \+ 2 new"):
        in_place.update(*(t[:, :, :2] for t in chunks[-1]))
    with pytest.raises(ValueError, match="capacity"):
        KVCache(capacity=0)
