"""Tests of bigtut.gpt: GPT-2 weight exchange with Hugging Face, generation with and without the KV cache,
sampling filters, context-length handling, configs, the classifier and the training recipes."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bigtut.evaluation import bits_per_character
from bigtut.gpt import (
    GPT,
    GPTClassifier,
    GPTConfig,
    apply_temperature,
    gpt_from_hf,
    gpt_to_hf,
    hf_config,
    load_gpt2_pretrained,
    next_token_distribution,
    sample_next_token,
    top_k_filter,
    top_p_filter,
)

transformers = pytest.importorskip("transformers")


def tiny(seed=0, dtype=torch.float64, **overrides):
    torch.manual_seed(seed)
    fields = dict(vocab_size=29, block_size=24, n_layer=2, n_head=2, d_model=16)
    fields.update(overrides)
    model = GPT(GPTConfig(**fields)).to(dtype).eval()
    with torch.no_grad():  # non-trivial LayerNorm parameters and biases, so a mix-up cannot hide
        for name, p in model.named_parameters():
            if name.endswith("bias") or "ln" in name:
                p.add_(0.1 * torch.randn_like(p))
    return model


# ------------------------------------------------------------------------------------------------- configs
@pytest.mark.parametrize("fields, message", [
    (dict(d_model=30, n_head=4), "not divisible"),
    (dict(n_layer=0), "n_layer"),
    (dict(vocab_size=-3), "vocab_size"),
    (dict(block_size=0), "block_size"),
    (dict(n_head=0), "n_head"),
    (dict(d_model=2.5), "d_model"),
    (dict(dropout=1.0), "dropout"),
])
def test_bad_configs_raise(fields, message):
    with pytest.raises(ValueError, match=message):
        GPTConfig(**fields)


def test_num_parameters_matches_formula_and_hf():
    model = tiny()
    c = model.config
    d, V = c.d_model, c.vocab_size
    per_block = 4 * (d * d + d) + 2 * (2 * d) + (d * 4 * d + 4 * d) + (4 * d * d + d)
    expected = V * d + c.block_size * d + c.n_layer * per_block + 2 * d  # tied head: no extra V*d
    assert model.num_parameters() == expected
    assert model.num_parameters(non_embedding=True) == expected - V * d - c.block_size * d
    assert model.num_parameters() == sum(p.numel() for p in gpt_to_hf(model).parameters())
    untied = tiny(tie_weights=False)
    assert untied.num_parameters() == expected + V * d
    assert model.lm_head.weight is model.tok_emb.weight
    hf = gpt_to_hf(model)
    assert hf.lm_head.weight is hf.transformer.wte.weight
    back = gpt_from_hf(hf)
    assert back.lm_head.weight is back.tok_emb.weight
    hf_untied = gpt_to_hf(untied)
    assert hf_untied.lm_head.weight is not hf_untied.transformer.wte.weight
    back_untied = gpt_from_hf(hf_untied)
    assert back_untied.lm_head.weight is not back_untied.tok_emb.weight


# ---------------------------------------------------------------------------------------- Hugging Face parity
@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 10_000), n_layer=st.integers(1, 3), n_head=st.sampled_from([1, 2, 4]),
       head_dim=st.sampled_from([2, 4, 8]), tie=st.booleans())
def test_weights_map_both_ways_with_equal_logits(seed, n_layer, n_head, head_dim, tie):
    model = tiny(seed, n_layer=n_layer, n_head=n_head, d_model=n_head * head_dim, tie_weights=tie)
    hf = gpt_to_hf(model)
    assert isinstance(hf, transformers.GPT2LMHeadModel)
    back = gpt_from_hf(hf)
    gen = torch.Generator().manual_seed(seed)
    for length in (1, 5, model.config.block_size):  # padding-free batches of several lengths
        idx = torch.randint(0, model.config.vocab_size, (3, length), generator=gen)
        ours = model(idx).logits
        assert ours.shape == (3, length, model.config.vocab_size)
        torch.testing.assert_close(hf(idx).logits, ours, atol=1e-10, rtol=0)
        torch.testing.assert_close(back(idx).logits, ours, atol=1e-10, rtol=0)


def test_random_hf_model_maps_into_gpt():
    torch.manual_seed(3)
    hf = transformers.GPT2LMHeadModel(hf_config(GPTConfig(vocab_size=41, block_size=20, n_layer=2, n_head=4,
                                                           d_model=16))).double().eval()
    with torch.no_grad():
        for p in hf.parameters():
            p.add_(0.05 * torch.randn_like(p))
    ours = gpt_from_hf(hf)
    idx = torch.randint(0, 41, (4, 13))
    torch.testing.assert_close(ours(idx).logits, hf(idx).logits, atol=1e-10, rtol=0)
    torch.testing.assert_close(gpt_to_hf(ours)(idx).logits, hf(idx).logits, atol=1e-10, rtol=0)


def test_float32_logits_agree_within_1e_5():
    model = tiny(1, dtype=torch.float32)
    idx = torch.randint(0, 29, (2, 24))
    assert (model(idx).logits - gpt_to_hf(model)(idx).logits).abs().max() <= 1e-5


def test_attention_weights_match_hf_eager():
    model = tiny(2)
    hf = gpt_to_hf(model)
    hf.config._attn_implementation = "eager"
    idx = torch.randint(0, 29, (2, 9))
    ours = model(idx, return_attention=True).attentions
    theirs = hf(idx, output_attentions=True).attentions
    assert len(ours) == len(theirs) == model.config.n_layer
    for a, b in zip(ours, theirs):
        assert a.shape == (2, model.config.n_head, 9, 9)
        torch.testing.assert_close(a, b, atol=1e-12, rtol=0)


def test_mapping_rejects_what_gpt2_cannot_hold():
    with pytest.raises(ValueError, match="bias=False"):
        gpt_to_hf(tiny(bias=False))
    hf = transformers.GPT2LMHeadModel(transformers.GPT2Config(vocab_size=11, n_positions=8, n_embd=8, n_layer=1,
                                                              n_head=2, activation_function="gelu"))
    with pytest.raises(ValueError, match="activation_function"):
        gpt_from_hf(hf)


def test_loading_real_gpt2_fails_clearly_when_not_cached():
    with pytest.raises(FileNotFoundError, match="local Hugging Face cache"):
        load_gpt2_pretrained("bigtut-tests/no-such-model")


# --------------------------------------------------------------------------------------------- generation
@pytest.mark.parametrize("prompt_len, batch", [(1, 1), (4, 3), (10, 2)])
def test_greedy_generation_cached_uncached_and_hf_agree(prompt_len, batch):
    model = tiny(4, block_size=32)
    hf = gpt_to_hf(model)
    idx = torch.randint(0, 29, (batch, prompt_len), generator=torch.Generator().manual_seed(prompt_len))
    new = 32 - prompt_len
    cached = model.generate(idx, new, temperature=0, use_cache=True)
    uncached = model.generate(idx, new, temperature=0, use_cache=False)
    theirs = hf.generate(idx, attention_mask=torch.ones_like(idx), max_new_tokens=new, do_sample=False,
                         pad_token_id=0)
    assert cached.shape == (batch, 32)
    assert torch.equal(cached[:, :prompt_len], idx)
    assert torch.equal(cached, uncached)
    assert torch.equal(cached, theirs)


def test_generation_past_block_size_crops_the_context():
    model = tiny(5, block_size=8)
    idx = torch.randint(0, 29, (2, 11))  # the prompt is already longer than block_size
    cached = model.generate(idx, 12, temperature=0, use_cache=True)
    uncached = model.generate(idx, 12, temperature=0, use_cache=False)
    manual = idx
    for _ in range(12):  # the documented rule: the model sees the last block_size tokens
        logits = model(manual[:, -8:]).logits[:, -1]
        manual = torch.cat([manual, logits.argmax(-1, keepdim=True)], dim=1)
    assert torch.equal(cached, manual) and torch.equal(uncached, manual)
    with pytest.raises(ValueError, match="block_size"):
        model(idx)  # forward itself refuses more than block_size positions
    cache = model.new_cache()
    model(idx[:, :6], cache=cache)
    with pytest.raises(ValueError, match="cached"):
        model(idx[:, :3], cache=cache)


def test_sampling_is_the_same_with_and_without_cache():
    model = tiny(6, block_size=16)
    idx = torch.randint(0, 29, (3, 2))
    kwargs = dict(temperature=1.3, top_k=10, top_p=0.9)
    a = model.generate(idx, 20, use_cache=True, generator=torch.Generator().manual_seed(0), **kwargs)
    b = model.generate(idx, 20, use_cache=False, generator=torch.Generator().manual_seed(0), **kwargs)
    assert torch.equal(a, b)
    assert a.shape == (3, 22)


def test_kv_cache_layout_and_chunked_forward():
    model = tiny(7)
    idx = torch.randint(0, 29, (2, 15))
    cache = model.new_cache()
    with torch.no_grad():
        parts = [model(chunk, cache=cache).logits for chunk in idx.split([6, 1, 5, 3], dim=1)]
        torch.testing.assert_close(torch.cat(parts, dim=1), model(idx).logits, atol=1e-12, rtol=0)
    assert len(cache) == model.config.n_layer
    d_head = model.config.d_model // model.config.n_head
    assert all(c.length == 15 for c in cache)
    assert all(c.keys.shape == c.values.shape == (2, model.config.n_head, 15, d_head) for c in cache)


def test_generate_validates_and_keeps_training_mode():
    model = tiny()
    model.train()
    model.blocks[0].eval()  # a mixed state must come back exactly as it was
    model.generate(torch.zeros(1, 1, dtype=torch.long), 2)
    assert model.training and model.blocks[1].training and not model.blocks[0].training
    with pytest.raises(ValueError, match="idx"):
        model.generate(torch.zeros(3, dtype=torch.long), 2)
    with pytest.raises(ValueError, match=r"idx must lie in \[0, 29\)"):
        model(torch.tensor([[0, 29]]))


# ----------------------------------------------------------------------------------------------- sampling
@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), V=st.integers(2, 40), k=st.integers(1, 45))
def test_top_k_keeps_exactly_k(seed, V, k):
    logits = torch.randn(3, V, generator=torch.Generator().manual_seed(seed)).round(decimals=1)  # with ties
    kept = torch.isfinite(top_k_filter(logits, k))
    assert (kept.sum(-1) == min(k, V)).all()
    kept_min = logits.masked_fill(~kept, float("inf")).min(-1).values
    dropped_max = logits.masked_fill(kept, float("-inf")).max(-1).values
    assert (kept_min >= dropped_max).all()  # the kept ones are the largest
    assert torch.equal(top_k_filter(logits, k)[kept], logits[kept])  # kept logits are unchanged


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), V=st.integers(1, 40), p=st.floats(0.01, 1.0))
def test_top_p_keeps_the_smallest_set_with_mass_at_least_p(seed, V, p):
    logits = 2 * torch.randn(4, V, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    probs = logits.softmax(-1)
    kept = torch.isfinite(top_p_filter(logits, p))
    for row_probs, row_kept in zip(probs, kept):
        mass = row_probs[row_kept].sum()
        assert mass >= p - 1e-12
        assert mass - row_probs[row_kept].min() < p  # one fewer token would fall short of p
        if (~row_kept).any():
            assert row_probs[row_kept].min() >= row_probs[~row_kept].max()


def test_top_p_examples():
    logits = torch.tensor([0.5, 0.3, 0.15, 0.05]).log()
    assert torch.isfinite(top_p_filter(logits, 0.5)).tolist() == [True, False, False, False]
    assert torch.isfinite(top_p_filter(logits, 0.51)).tolist() == [True, True, False, False]
    assert torch.isfinite(top_p_filter(logits, 0.9)).tolist() == [True, True, True, False]
    assert torch.isfinite(top_p_filter(logits, 1.0)).all()
    with pytest.raises(ValueError, match="top_p"):
        top_p_filter(logits, 0.0)
    with pytest.raises(ValueError, match="top_k"):
        top_k_filter(logits, 0)


def test_temperature_and_distribution():
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0]])
    torch.testing.assert_close(next_token_distribution(logits, 0.5), (logits / 0.5).softmax(-1))
    assert next_token_distribution(logits, 0).tolist() == [[1.0, 0.0, 0.0, 0.0]]
    sharp, flat = next_token_distribution(logits, 0.3), next_token_distribution(logits, 3.0)
    assert sharp.max() > next_token_distribution(logits).max() > flat.max()
    dist = next_token_distribution(logits, 1.0, top_k=3, top_p=0.7)
    assert (dist[0, 2:] == 0).all() and abs(float(dist.sum()) - 1) < 1e-6
    assert sample_next_token(logits, 0).tolist() == [[0]]
    draws = sample_next_token(logits.expand(2000, 4), 1.0, top_k=2, generator=torch.Generator().manual_seed(0))
    assert set(draws.flatten().tolist()) == {0, 1}
    with pytest.raises(ValueError, match="temperature"):
        apply_temperature(logits, -1.0)


# --------------------------------------------------------------------------------- inputs for explanations
@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), cut=st.integers(1, 11))
def test_future_tokens_never_change_past_logits(seed, cut):
    model = tiny(seed % 7)
    gen = torch.Generator().manual_seed(seed)
    a = torch.randint(0, 29, (2, 12), generator=gen)
    b = a.clone()
    b[:, cut:] = torch.randint(0, 29, (2, 12 - cut), generator=gen)
    torch.testing.assert_close(model(a).logits[:, :cut], model(b).logits[:, :cut], atol=1e-12, rtol=0)


def test_inputs_embeds_and_attention_weights():
    model = tiny(8)
    idx = torch.randint(0, 29, (2, 10))
    out = model(idx, return_attention=True)
    torch.testing.assert_close(model(inputs_embeds=model.tok_emb(idx)).logits, out.logits)
    torch.testing.assert_close(model(idx).logits, out.logits, atol=1e-12, rtol=0)  # fast path = explicit path
    for weights in out.attentions:
        assert weights.shape == (2, 2, 10, 10)
        torch.testing.assert_close(weights.sum(-1), torch.ones(2, 2, 10, dtype=torch.float64))
        assert (weights.triu(1) == 0).all()  # no weight on the future
    with pytest.raises(ValueError, match="exactly one"):
        model(idx, inputs_embeds=model.tok_emb(idx))
    with pytest.raises(ValueError, match="inputs_embeds"):
        model(inputs_embeds=torch.zeros(2, 3, 5, dtype=torch.float64))


def test_loss_is_mean_cross_entropy_and_ignores_minus_100():
    model = tiny(9)
    x, y = torch.randint(0, 29, (2, 2, 7))
    out = model(x, y)
    expected = torch.nn.functional.cross_entropy(out.logits.reshape(-1, 29), y.reshape(-1))
    torch.testing.assert_close(out.loss, expected)
    y_masked = y.clone()
    y_masked[:, :3] = -100
    expected = torch.nn.functional.cross_entropy(out.logits[:, 3:].reshape(-1, 29), y[:, 3:].reshape(-1))
    torch.testing.assert_close(model(x, y_masked).loss, expected)


@pytest.mark.parametrize("pool", ["last", "mean"])
def test_classifier_ignores_padding_and_pools_real_tokens(pool):
    body = tiny(10)
    clf = GPTClassifier(body, num_classes=3, pool=pool).double().eval()
    idx = torch.randint(1, 29, (3, 9))
    lengths = torch.tensor([9, 4, 1])
    mask = torch.arange(9)[None, :] < lengths[:, None]  # (3, 9) right padding
    logits = clf(idx, mask)
    assert isinstance(logits, torch.Tensor) and logits.shape == (3, 3)
    other_pads = idx.clone()
    for row, n in enumerate(lengths.tolist()):
        other_pads[row, n:] = 0
    torch.testing.assert_close(clf(other_pads, mask), logits, atol=1e-12, rtol=0)
    h, _ = body.hidden_states(idx)
    pooled = torch.stack([h[r, n - 1] if pool == "last" else h[r, :n].mean(0)
                          for r, n in enumerate(lengths.tolist())])
    torch.testing.assert_close(logits, clf.head(pooled))
    torch.testing.assert_close(clf(inputs_embeds=body.tok_emb(idx), attention_mask=mask), logits)
    for row, n in enumerate(lengths.tolist()):  # each row alone, unpadded
        torch.testing.assert_close(clf(idx[row : row + 1, :n]), logits[row : row + 1], atol=1e-12, rtol=0)
    with pytest.raises(ValueError, match="at least one real token"):
        clf(idx, torch.zeros(3, 9, dtype=torch.bool))
    with pytest.raises(ValueError, match="attention_mask"):
        clf(idx, mask[:, :5])
    with pytest.raises(ValueError, match="pool"):
        GPTClassifier(body, 3, pool="max")


def test_gpt_padding_in_the_middle_is_invisible():
    """A masked position anywhere is hidden from attention: the real tokens' states do not depend on it."""
    body = tiny(12)
    clf = GPTClassifier(body, num_classes=2, pool="mean").double().eval()
    idx = torch.randint(1, 29, (2, 7))
    mask = torch.ones(2, 7, dtype=torch.bool)
    mask[:, 3] = False
    changed = idx.clone()
    changed[:, 3] = (idx[:, 3] + 5) % 29
    torch.testing.assert_close(clf(changed, mask), clf(idx, mask), atol=1e-12, rtol=0)
    assert not torch.allclose(clf(changed), clf(idx))  # without the mask the token counts


def test_bits_per_character_of_a_uniform_model_is_log2_vocab():
    from bigtut.tokenizers import CharTokenizer

    text = "the quick brown fox jumps over the lazy dog " * 5
    tok = CharTokenizer.train(text)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=16, n_layer=1, n_head=1, d_model=8,
                          tie_weights=False))
    torch.nn.init.zeros_(model.lm_head.weight)  # every next character equally likely
    assert bits_per_character(model, text, tok) == pytest.approx(math.log2(tok.vocab_size), rel=1e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_runs_on_cuda_like_on_cpu():
    model = tiny(11)
    idx = torch.randint(0, 29, (2, 12))
    gpu = tiny(11).cuda()
    torch.testing.assert_close(gpu(idx.cuda()).logits.cpu(), model(idx).logits)
    assert torch.equal(gpu.generate(idx.cuda()[:, :3], 10, temperature=0).cpu(),
                       model.generate(idx[:, :3], 10, temperature=0))


def test_forward_unpacks_like_nanogpt():
    model = GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, d_model=8)).eval()
    idx = torch.randint(11, (2, 5))
    logits, loss = model(idx, idx)  # (logits, loss), as in nanoGPT
    assert logits.shape == (2, 5, 11) and loss.dim() == 0
    logits_only, no_loss = model(idx)
    assert no_loss is None and torch.equal(logits_only, logits)
    logits_again, _, attentions = model(idx, return_attention=True)
    assert torch.allclose(logits_again, logits, atol=1e-6) and attentions[0].shape == (2, 2, 5, 5)  # explicit path
