"""``MultiHeadAttention(..., causal=True)`` gives the numbers of the written-out causal mask, bit for bit.

Without another mask, the fast path hands the causal mask to SDPA (``is_causal=True``) instead of building it;
``CausalSelfAttention`` takes that path for a fresh, unpadded sequence (training, a prompt). These tests hold it
to the path it replaced — the same outputs, gradients and training losses, compared with ``torch.equal`` — so the
chapter's trained models and the committed checkpoint keep their numbers.
"""

from __future__ import annotations

import copy
import types

import pytest
import torch

from bigtut.attention import MultiHeadAttention, causal_mask, padding_mask
from bigtut.gpt import GPT, GPTConfig
from bigtut.training import weight_decay_groups

DTYPES = [torch.float32, torch.float64]


def written_out_forward(self, x, cache=None, return_attention=False, key_mask=None):
    """``CausalSelfAttention.forward`` as it was: the causal mask built from positions and passed to attention."""
    L, past = x.shape[1], (cache.length if cache is not None else 0)
    mask = None
    if L > 1 or key_mask is not None:
        keys = torch.arange(past + L, device=x.device)  # (T,)
        queries = torch.arange(past, past + L, device=x.device)  # (L,)
        mask = keys[None, :] <= queries[:, None]  # (L, T)
        if key_mask is not None:
            mask = mask & key_mask[:, None, :]  # (B, L, T)
    out, weights = self.attn(x, x, x, mask=mask, return_attention=return_attention, cache=cache)
    return self.resid_drop(out), weights


def with_written_out_masks(model: GPT) -> GPT:
    """A copy of ``model`` whose blocks build the causal mask as before."""
    twin = copy.deepcopy(model)
    for block in twin.blocks:
        block.attn.forward = types.MethodType(written_out_forward, block.attn)
    return twin


def attention_and_grads(mha, x, **kwargs):
    out, weights = mha(x, x, x, **kwargs)
    grads = torch.autograd.grad(out.square().sum(), [x, *mha.parameters()])
    return out, weights, grads


def assert_same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert torch.equal(x, y), (x - y).abs().max()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("L", [1, 5, 64, 130])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_causal_flag_equals_the_written_out_mask_on_the_fast_path(dtype, L, seed):
    torch.manual_seed(seed)
    mha = MultiHeadAttention(32, 4).to(dtype)
    x = torch.randn(3, L, 32, dtype=dtype, requires_grad=True)
    flag, no_weights, flag_grads = attention_and_grads(mha, x, causal=True, return_attention=False)
    mask, _, mask_grads = attention_and_grads(mha, x, mask=causal_mask(L), return_attention=False)
    assert no_weights is None
    assert torch.equal(flag, mask)
    assert_same(flag_grads, mask_grads)


@pytest.mark.parametrize("dtype", DTYPES)
def test_causal_flag_with_dropout_draws_the_same_masks(dtype):
    torch.manual_seed(0)
    mha = MultiHeadAttention(32, 4, dropout=0.3).to(dtype).train()
    x = torch.randn(2, 9, 32, dtype=dtype, requires_grad=True)
    torch.manual_seed(7)
    flag = attention_and_grads(mha, x, causal=True, return_attention=False)
    torch.manual_seed(7)
    mask = attention_and_grads(mha, x, mask=causal_mask(9), return_attention=False)
    assert torch.equal(flag[0], mask[0])
    assert_same(flag[2], mask[2])


@pytest.mark.parametrize("fast", [False, True])
def test_causal_flag_combines_with_a_padding_mask_and_on_the_explicit_path(fast):
    torch.manual_seed(0)
    mha = MultiHeadAttention(16, 2, fast=fast).double()
    x = torch.randn(3, 6, 16, dtype=torch.float64, requires_grad=True)
    keep = padding_mask([6, 4, 1], 6)  # (B, 1, L)
    flag = attention_and_grads(mha, x, mask=keep, causal=True, return_attention=not fast)
    both = attention_and_grads(mha, x, mask=keep & causal_mask(6), return_attention=not fast)
    assert torch.equal(flag[0], both[0])
    if not fast:
        assert torch.equal(flag[1], both[1])  # weights (B, h, L, L), zero above the diagonal
        assert not flag[1].triu(1).any()
    assert_same(flag[2], both[2])


def test_causal_flag_needs_queries_and_keys_at_the_same_positions():
    mha = MultiHeadAttention(16, 2)
    with pytest.raises(ValueError, match="Lq=3, Lk=5"):
        mha(torch.randn(1, 3, 16), torch.randn(1, 5, 16), torch.randn(1, 5, 16), causal=True)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", [0, 1])
def test_gpt_forward_and_gradients_equal_the_written_out_masks(dtype, seed):
    torch.manual_seed(seed)
    model = GPT(GPTConfig(vocab_size=23, block_size=16, n_layer=2, n_head=2, d_model=16)).to(dtype)
    twin = with_written_out_masks(model)
    idx = torch.randint(23, (4, 16))
    for m in (model, twin):
        m(idx, idx.roll(-1, 1)).loss.backward()
    assert torch.equal(model(idx).logits, twin(idx).logits)
    assert_same([p.grad for p in model.parameters()], [p.grad for p in twin.parameters()])
    _, _, attentions = model(idx, return_attention=True)
    _, _, twin_attentions = twin(idx, return_attention=True)
    assert_same(attentions, twin_attentions)


def test_chapter_gpt_training_losses_equal_the_written_out_masks():
    """Notebook 04's model and optimizer for 15 steps: every loss and every final weight identical."""
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=105))
    twin = with_written_out_masks(model)
    batches = torch.Generator().manual_seed(0)
    data = [torch.randint(105, (12, 65), generator=batches) for _ in range(15)]
    losses = {}
    for name, m in (("causal flag", model), ("written out", twin)):
        optimizer = torch.optim.AdamW(weight_decay_groups(m, 0.1), lr=3e-3)
        losses[name] = []
        for window in data:
            loss = m(window[:, :-1], window[:, 1:]).loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
            optimizer.step()
            losses[name].append(loss.item())
    assert losses["causal flag"] == losses["written out"]
    assert_same(list(model.parameters()), list(twin.parameters()))


def test_prompt_then_cached_steps_equal_the_written_out_masks():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=11, block_size=12, n_layer=2, n_head=2, d_model=8)).double().eval()
    twin = with_written_out_masks(model)
    idx = torch.randint(11, (2, 9))
    outputs = []
    for m in (model, twin):
        cache = m.new_cache()
        prompt = m(idx[:, :5], cache=cache).logits  # a fresh cache: the causal flag's path in `model`
        steps = [m(idx[:, t:t + 1], cache=cache).logits for t in range(5, 8)]
        outputs.append([prompt, *steps, m(idx, attention_mask=torch.ones(2, 9)).logits])
    assert_same(*outputs)
