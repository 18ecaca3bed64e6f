"""Activation patching: on hand-built models whose answer is known cell by cell, then properties on random tiny
BERT classifiers and GPTs (float64), a hand-rolled one-cell-at-a-time loop, and the refusals of bad input."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from bigtut.attention import MultiHeadAttention
from bigtut.bert import Bert, BertConfig, BertForSequenceClassification
from bigtut.explain.patching import PatchingResult, activation_patching, transformer_blocks
from bigtut.gpt import GPT, GPTClassifier, GPTConfig

ATOL = 1e-12


# ------------------------------------------------------------------------------------------- hand-built models
class CopyTwoIntoZero(nn.Module):
    """Position 0 <- position 2; returns a tuple ``(x, None)`` as BERT's layers do."""

    def forward(self, x, mask=None):
        out = x.clone()
        out[:, 0] = x[:, 2]
        return out, None


class AddOneIntoZero(nn.Module):
    """Position 0 <- position 0 + position 1; returns the tensor alone."""

    def forward(self, x, mask=None):
        out = x.clone()
        out[:, 0] = x[:, 0] + x[:, 1]
        return out


class HandBuilt(nn.Module):
    """Token embeddings (+ an optional fixed table added at every position), the blocks, a linear read-out of
    position 0: ``logits = W x_0 + b``."""

    def __init__(self, blocks, vocab=10, d=4, added=None, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.tok = nn.Embedding(vocab, d).double()
        self.readout = nn.Linear(d, 2).double()
        with torch.no_grad():
            self.tok.weight.copy_(torch.randn(vocab, d, generator=g, dtype=torch.float64))
            self.readout.weight.copy_(torch.randn(2, d, generator=g, dtype=torch.float64))
            self.readout.bias.copy_(torch.randn(2, generator=g, dtype=torch.float64))
        self.blocks = nn.ModuleList(blocks)
        self.added = added

    def get_input_embeddings(self):
        return self.tok

    def forward(self, input_ids, attention_mask=None):
        x = self.tok(input_ids)  # (B, L, d)
        if self.added is not None:
            x = x + self.added[: x.shape[1]]
        for block in self.blocks:
            out = block(x, attention_mask)
            x = out[0] if isinstance(out, tuple) else out
        return self.readout(x[:, 0])  # (B, 2)


IDS = torch.tensor([[1, 2, 3, 4, 5], [6, 7, 8, 9, 1]])
CORRUPTED = torch.tensor([[1, 8, 9, 4, 5], [6, 2, 3, 9, 1]])  # positions 1 and 2 substituted


def test_hand_built_residual_grid_every_cell():
    model = HandBuilt([CopyTwoIntoZero(), AddOneIntoZero()])
    for target in (0, 1):
        result = activation_patching(model, IDS, CORRUPTED, target=target)
        assert isinstance(result, PatchingResult) and result.layer_names == ("embeddings", "block 0", "block 1")
        w = (model.readout.weight[target] - model.readout.weight[1 - target]).detach()  # (d,)
        e_clean, e_corrupted = model.tok(IDS).detach(), model.tok(CORRUPTED).detach()  # (B, L, d)
        moved = ((e_clean - e_corrupted) @ w).numpy()  # (B, L): what restoring one embedding moves d by
        total = moved[:, 1] + moved[:, 2]  # d reads positions 1 and 2 (block 0 copies 2 into 0, block 1 adds 1)
        expected = np.zeros((2, 3, 5))
        expected[:, 0, 1], expected[:, 0, 2] = moved[:, 1], moved[:, 2]  # embeddings: positions 1 and 2
        expected[:, 1, 0], expected[:, 1, 1] = moved[:, 2], moved[:, 1]  # after block 0: position 2 now sits at 0
        expected[:, 2, 0] = total  # after block 1: everything is at position 0
        assert result.attributions.shape == (2, 3, 5) and result.attributions.dtype == np.float64
        np.testing.assert_allclose(result.attributions, expected, atol=ATOL)
        bias = model.readout.bias.detach()
        bias = float(bias[target] - bias[1 - target])
        for got, e in ((result.clean_difference, e_clean), (result.corrupted_difference, e_corrupted)):
            np.testing.assert_allclose(got, ((e[:, 1] + e[:, 2]) @ w).numpy() + bias, atol=ATOL)
        np.testing.assert_allclose(result.clean_difference - result.corrupted_difference, total, atol=ATOL)
        layer = activation_patching(model, IDS, CORRUPTED, target=target, site="layer")
        np.testing.assert_allclose(layer.attributions, np.repeat(total[:, None], 3, 1), atol=ATOL)
        fraction = result.restored_fraction()
        np.testing.assert_allclose(fraction[:, 2, 0], 1.0, atol=ATOL)
        np.testing.assert_allclose(fraction, expected / total[:, None, None], atol=ATOL)


def test_hand_built_layers_subset_keeps_the_order_asked():
    model = HandBuilt([CopyTwoIntoZero(), AddOneIntoZero()])
    full = activation_patching(model, IDS, CORRUPTED, target=1)
    some = activation_patching(model, IDS, CORRUPTED, target=1, layers=[2, 0])
    assert some.layer_names == ("block 1", "embeddings")
    np.testing.assert_allclose(some.attributions, full.attributions[:, [2, 0]], atol=ATOL)
    one = activation_patching(model, IDS, CORRUPTED, target=1, layers=1, site="layer")
    assert one.attributions.shape == (2, 1) and one.layer_names == ("block 0",)


class AttentionBlock(nn.Module):
    def __init__(self, attention, explicit):
        super().__init__()
        self.attn, self.explicit = attention, explicit

    def forward(self, x, mask=None):
        return self.attn(x, x, x, return_attention=self.explicit)  # (x, weights)


def _two_head_attention(seed=1) -> MultiHeadAttention:
    """d_model 8 (content in dims 0-3, a one-hot position in dims 4-7), 2 heads of 4: head 0 attends to position 2
    only, head 1 to position 1 only (scores 10^4 apart: the softmax is exactly one-hot in float64); both carry the
    content; a random output projection mixes them."""
    g = torch.Generator().manual_seed(seed)
    attention = MultiHeadAttention(8, 2).double()
    with torch.no_grad():
        for proj in (attention.q_proj, attention.k_proj, attention.v_proj):
            proj.weight.zero_()
            proj.bias.zero_()
        attention.q_proj.bias[0] = attention.q_proj.bias[4] = 1.0  # every query: the first dim of each head
        attention.k_proj.weight[0, 4 + 2] = 1e4  # head 0's key: "is this position 2?"
        attention.k_proj.weight[4, 4 + 1] = 1e4  # head 1's key: "is this position 1?"
        attention.v_proj.weight[0:4, 0:4] = torch.eye(4, dtype=torch.float64)  # head 0 carries the content
        attention.v_proj.weight[4:8, 0:4] = torch.eye(4, dtype=torch.float64)  # so does head 1
        attention.out_proj.weight.copy_(torch.randn(8, 8, generator=g, dtype=torch.float64))
        attention.out_proj.bias.copy_(torch.randn(8, generator=g, dtype=torch.float64))
    return attention


@pytest.mark.parametrize("explicit", [False, True], ids=["fast path", "explicit path"])
def test_hand_built_heads(explicit):
    positions = torch.cat([torch.zeros(5, 4), torch.eye(5)[:, :4]], 1).double()  # (L=5, 8): one-hot in dims 4-7
    positions[4, 4:] = 0  # position 4 has no one-hot (neither head looks at it)
    model = HandBuilt([AttentionBlock(_two_head_attention(), explicit)], d=8, added=positions)
    with torch.no_grad():
        model.tok.weight[:, 4:] = 0  # tokens live in the content dims only
    target = 0
    result = activation_patching(model, IDS, CORRUPTED, target=target, site="head")
    w = (model.readout.weight[target] - model.readout.weight[1 - target]).detach()  # (8,)
    u = model.blocks[0].attn.out_proj.weight.detach().T @ w  # (8,): d = u[:4]·c_2 + u[4:]·c_1 + constant
    c_clean, c_corrupted = model.tok(IDS).detach()[..., :4], model.tok(CORRUPTED).detach()[..., :4]  # (B, L, 4)
    expected = torch.stack([(c_clean[:, 2] - c_corrupted[:, 2]) @ u[:4],
                            (c_clean[:, 1] - c_corrupted[:, 1]) @ u[4:]], -1)[:, None]  # (B, 1, 2)
    assert result.attributions.shape == (2, 1, 2) and result.layer_names == ("block 0",)
    np.testing.assert_allclose(result.attributions, expected.numpy(), atol=1e-10)
    np.testing.assert_allclose(result.attributions.sum((1, 2)), result.clean_difference - result.corrupted_difference,
                               atol=1e-10)  # two heads, each reading one of the two changed tokens
    only_one = activation_patching(model, IDS, CORRUPTED, target=target, site="head", heads=[1])
    np.testing.assert_allclose(only_one.attributions[..., 0], expected[..., 1].numpy(), atol=1e-10)
    residual = activation_patching(model, IDS, CORRUPTED, target=target)  # embeddings at 2 = head 0's share
    np.testing.assert_allclose(residual.attributions[:, 0, 2], expected[:, 0, 0].numpy(), atol=1e-10)
    np.testing.assert_allclose(residual.attributions[:, 0, [0, 3, 4]], 0.0, atol=1e-10)


# -------------------------------------------------------------------------------------- random tiny Transformers
def _bert(num_labels=2, num_layers=2, dropout=0.0, seed=0):
    torch.manual_seed(seed)
    model = BertForSequenceClassification(BertConfig(vocab_size=30, max_len=16, d_model=16, num_layers=num_layers,
                                                     num_heads=2, d_ff=32, dropout=dropout, num_labels=num_labels))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".norm" not in name:
                p.normal_(0, 0.5)
    return model.double().eval()


def _gpt(seed=0):
    torch.manual_seed(seed)
    model = GPT(GPTConfig(vocab_size=20, block_size=16, n_layer=2, n_head=2, d_model=16))
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.5)
    return model.double().eval()


def _pair(vocab, B=3, L=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, vocab, (B, L), generator=g)
    corrupted = ids.clone()
    corrupted[:, 2] = (ids[:, 2] - 3 + 5) % (vocab - 3) + 3  # a different word at position 2 and 4
    corrupted[:, 4] = (ids[:, 4] - 3 + 7) % (vocab - 3) + 3
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    return ids, corrupted, mask


BERT, GPT_LM = _bert(), _gpt()
BERT_IDS, BERT_CORRUPTED, BERT_MASK = _pair(30)
GPT_IDS, GPT_CORRUPTED, GPT_MASK = _pair(20, seed=1)


def _hooks(model):
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def test_bert_whole_last_block_and_whole_embeddings_restore_everything():
    result = activation_patching(BERT, BERT_IDS, BERT_CORRUPTED, BERT_MASK, target=[0, 1, 1], site="layer")
    assert result.attributions.shape == (3, 3)
    assert (np.abs(result.clean_difference - result.corrupted_difference) > 1e-3).all()
    np.testing.assert_allclose(result.restored_fraction(), 1.0, atol=1e-10)  # every layer cuts the whole stream
    residual = activation_patching(BERT, BERT_IDS, BERT_CORRUPTED, BERT_MASK, target=[0, 1, 1])
    np.testing.assert_allclose(residual.restored_fraction()[:, -1, 0], 1.0, atol=1e-10)  # the pooler reads [CLS]
    np.testing.assert_allclose(residual.attributions[:, -1, 1:], 0.0, atol=ATOL)
    assert (residual.attributions[1, :, 6:] == 0).all()  # padding: never patched
    np.testing.assert_allclose(residual.attributions[:, 0, [0, 1, 3, 5, 6, 7]], 0.0, atol=ATOL)  # unchanged tokens


def test_gpt_positions_after_the_read_position_restore_nothing():
    for position in (4, -1, -3):
        result = activation_patching(GPT_LM, GPT_IDS, GPT_CORRUPTED, GPT_MASK, target=3, contrast=[4, 5, 6],
                                     position=position)
        read = {4: [4, 4, 4], -1: [7, 5, 7], -3: [5, 3, 5]}[position]
        for b, p in enumerate(read):
            assert (result.attributions[b, :, p + 1:] == 0).all()  # the causal mask: exactly nothing
            np.testing.assert_allclose(result.restored_fraction()[b, -1, p], 1.0, atol=1e-10)  # the read cell
        layer = activation_patching(GPT_LM, GPT_IDS, GPT_CORRUPTED, GPT_MASK, target=3, contrast=[4, 5, 6],
                                    position=position, site="layer")
        np.testing.assert_allclose(layer.restored_fraction(), 1.0, atol=1e-10)
    default = activation_patching(GPT_LM, GPT_IDS, GPT_CORRUPTED, GPT_MASK, target=3, contrast=4)
    last = activation_patching(GPT_LM, GPT_IDS, GPT_CORRUPTED, GPT_MASK, target=3, contrast=4, position=-1)
    np.testing.assert_array_equal(default.attributions, last.attributions)


def test_clean_into_clean_changes_nothing():
    result = activation_patching(BERT, BERT_IDS, BERT_IDS, BERT_MASK, target=1)
    np.testing.assert_allclose(result.attributions, 0.0, atol=ATOL)
    np.testing.assert_allclose(result.clean_difference, result.corrupted_difference, atol=ATOL)
    heads = activation_patching(GPT_LM, GPT_IDS, GPT_IDS, target=1, contrast=2, site="head")
    np.testing.assert_allclose(heads.attributions, 0.0, atol=ATOL)
    exact = PatchingResult(np.zeros((2, 3)), np.ones(2), np.ones(2), ("a", "b", "c"))
    assert np.isnan(exact.restored_fraction()).all()


@pytest.mark.parametrize("site", ["residual", "layer", "head"])
def test_batch_size_changes_nothing(site):
    results = [activation_patching(BERT, BERT_IDS, BERT_CORRUPTED, BERT_MASK, target=[0, 1, 0], site=site,
                                   batch_size=size) for size in (None, 1, 7)]
    for other in results[1:]:
        np.testing.assert_allclose(other.attributions, results[0].attributions, atol=ATOL)
        np.testing.assert_allclose(other.clean_difference, results[0].clean_difference, atol=ATOL)
    alone = activation_patching(BERT, BERT_IDS[1:2], BERT_CORRUPTED[1:2], BERT_MASK[1:2], target=1, site=site)
    np.testing.assert_allclose(alone.attributions[0], results[0].attributions[1], atol=ATOL)


def test_hooks_are_removed_and_the_mode_restored_even_on_error():
    model = _bert(dropout=0.3)
    model.train()
    with torch.no_grad(), torch.random.fork_rng():
        model.eval()
        before = model(BERT_IDS, attention_mask=BERT_MASK)
        model.train()
    in_eval = activation_patching(BERT, BERT_IDS, BERT_CORRUPTED, BERT_MASK, target=1, site="head")
    result = activation_patching(model, BERT_IDS, BERT_CORRUPTED, BERT_MASK, target=1, site="head")
    np.testing.assert_allclose(result.attributions, in_eval.attributions, atol=ATOL)  # dropout off while patching
    assert model.training and all(m.training for m in model.modules()) and _hooks(model) == 0
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(BERT_IDS, attention_mask=BERT_MASK), before)

    class Breaks(nn.Module):  # fails on its fourth call: inside the patched runs
        calls = 0

        def forward(self, x, mask=None):
            Breaks.calls += 1
            if Breaks.calls == 4:
                raise RuntimeError("planted failure")
            return x

    broken = HandBuilt([CopyTwoIntoZero(), Breaks()])
    broken.train()
    with pytest.raises(RuntimeError, match="planted failure"):
        activation_patching(broken, IDS, CORRUPTED, target=0, batch_size=2)
    assert _hooks(broken) == 0 and broken.training
    with pytest.raises(ValueError, match="target must lie"):  # refused after the clean run: its hooks are gone
        activation_patching(BERT, BERT_IDS, BERT_CORRUPTED, target=2, contrast=0)
    assert _hooks(BERT) == 0


def _explicit_bert(model, ids, mask, patch=None):
    """BERT's forward written out, with ``patch(kind, index, tensor) -> tensor`` applied to the embedding output
    (``"residual"``, 0), each block's output (``"residual"``, i + 1) and each block's merged heads (``"head"``, i)."""
    bert = model.bert
    patch = patch or (lambda kind, i, t: t)
    x = bert.embeddings(bert.embeddings.token(ids), torch.zeros_like(ids))  # (B, L, d)
    x = patch("residual", 0, x)
    keys = mask.bool()[:, None, None, :]  # (B, 1, 1, L)
    for i, layer in enumerate(bert.layers):
        a = layer.self_attn
        q, k, v = (a.split_heads(proj(x)) for proj in (a.q_proj, a.k_proj, a.v_proj))  # (B, h, L, d_head)
        scores = (q @ k.transpose(-2, -1) / math.sqrt(a.d_head)).masked_fill(~keys, -torch.inf)  # (B, h, L, L)
        heads = a.merge_heads(scores.softmax(-1) @ v)  # (B, L, d)
        x = layer.norm1(x + a.out_proj(patch("head", i, heads)))
        x = patch("residual", i + 1, layer.norm2(x + layer.feed_forward(x)))
    logits = model.classifier(torch.tanh(bert.pooler(x[:, 0])))  # (B, C)
    return logits[:, 1] - logits[:, 0]  # (B,)


def test_bert_equals_a_hand_rolled_loop_one_cell_at_a_time():
    with torch.no_grad():
        clean, corrupted = {}, _explicit_bert(BERT, BERT_CORRUPTED, BERT_MASK)

        def record(kind, i, t):
            clean[kind, i] = t.clone()
            return t

        _explicit_bert(BERT, BERT_IDS, BERT_MASK, record)
        residual = np.zeros((3, 3, 8))
        for layer in range(3):
            for p in range(8):
                def one_cell(kind, i, t, layer=layer, p=p):
                    if (kind, i) != ("residual", layer):
                        return t
                    t = t.clone()
                    t[:, p] = clean[kind, i][:, p]
                    return t

                residual[:, layer, p] = (_explicit_bert(BERT, BERT_CORRUPTED, BERT_MASK, one_cell) - corrupted).numpy()
        heads = np.zeros((3, 2, 2))
        for layer in range(2):
            for h in range(2):
                def one_head(kind, i, t, layer=layer, h=h):
                    if (kind, i) != ("head", layer):
                        return t
                    t = t.clone()
                    t[..., 8 * h:8 * (h + 1)] = clean[kind, i][..., 8 * h:8 * (h + 1)]
                    return t

                heads[:, layer, h] = (_explicit_bert(BERT, BERT_CORRUPTED, BERT_MASK, one_head) - corrupted).numpy()
    residual[1, :, 6:] = 0  # padding is not patched
    result = activation_patching(BERT, BERT_IDS, BERT_CORRUPTED, BERT_MASK, target=1, contrast=0)
    np.testing.assert_allclose(result.attributions, residual, atol=1e-10)
    result = activation_patching(BERT, BERT_IDS, BERT_CORRUPTED, BERT_MASK, target=1, site="head")
    np.testing.assert_allclose(result.attributions, heads, atol=1e-10)


def test_transformer_blocks_of_every_course_model():
    gpt = GPT(GPTConfig(vocab_size=20, block_size=16, n_layer=3, n_head=2, d_model=16))
    bert = BertForSequenceClassification(BertConfig(vocab_size=30, max_len=16, d_model=16, num_layers=2,
                                                    num_heads=2, d_ff=32))
    assert transformer_blocks(gpt) is gpt.blocks
    assert transformer_blocks(GPTClassifier(gpt, 3)) is gpt.blocks
    assert transformer_blocks(bert) is bert.bert.layers
    assert transformer_blocks(Bert(bert.config)) is not None and len(transformer_blocks(bert.bert)) == 2
    with pytest.raises(TypeError, match="no Transformer blocks"):
        transformer_blocks(nn.Linear(2, 2))
    classifier = GPTClassifier(_gpt(), 3, pool="last").double().eval()
    result = activation_patching(classifier, GPT_IDS, GPT_CORRUPTED, GPT_MASK, target=0, contrast=2, site="layer")
    np.testing.assert_allclose(result.restored_fraction(), 1.0, atol=1e-10)


# --------------------------------------------------------------------------------------------------- bad input
def _refused(match, error=ValueError, model=BERT, ids=BERT_IDS, corrupted=BERT_CORRUPTED, mask=BERT_MASK,
             called=False, **options):
    calls = []
    handle = model.register_forward_pre_hook(lambda *_: calls.append(1))
    try:
        with pytest.raises(error, match=match):
            activation_patching(model, ids, corrupted, mask, **{"target": 1, **options})
    finally:
        handle.remove()
    assert bool(calls) == called, "refused only after a model call" if calls else "refused before any model call"


def test_bad_input_is_refused_with_the_fix():
    _refused("aligned token by token: corrupt by substituting tokens, or pad the shorter one",
             corrupted=BERT_CORRUPTED[:, :6], mask=None)
    _refused("aligned token by token", corrupted=BERT_CORRUPTED[:2])
    _refused(r"layers must lie in \[0, 3\) \(0 = the embeddings", layers=[0, 3])
    _refused(r"layers must lie in \[0, 2\) \(the 2 blocks", layers=2, site="head")
    _refused(r"heads must lie in \[0, 2\)", site="head", heads=[0, 2])
    _refused("heads= only applies to site='head'", heads=[0])
    _refused("must not repeat", layers=[1, 1])
    _refused("layers must be an int", TypeError, layers=1.5)
    _refused("site must be one of", site="neuron")
    _refused("target= is needed", target=None)
    _refused("target and contrast must differ", target=[0, 1, 1], contrast=[1, 1, 0])
    _refused("contrast must be an int", TypeError, contrast="other")
    _refused(r"target must lie in \[0, 2\)", target=2, contrast=0, called=True)
    _refused(r"contrast must lie in \[0, 2\)", contrast=5, called=True)
    _refused(r"contrast= is needed for a 3-class model", model=_bert(num_labels=3), called=True)
    _refused("contrast= is needed for a language model", model=GPT_LM, ids=GPT_IDS, corrupted=GPT_CORRUPTED,
             mask=GPT_MASK, called=True)
    _refused("position= only applies to language models", position=2, called=True)
    _refused("position must point at a real token", model=GPT_LM, ids=GPT_IDS, corrupted=GPT_CORRUPTED,
             mask=GPT_MASK, contrast=2, position=7)
    _refused("share it", TypeError, mask=(BERT_MASK, BERT_MASK))
    _refused("attention_mask must have the shape", mask=BERT_MASK[:, :5])
    _refused("batch dimension", ids=BERT_IDS[0], corrupted=BERT_CORRUPTED[0], mask=None)
    _refused("integer tensor", TypeError, corrupted=BERT_CORRUPTED.double())
    _refused("batch_size", batch_size=0)
    with pytest.raises(TypeError, match="no Transformer blocks"):
        activation_patching(nn.Linear(2, 2), BERT_IDS, BERT_CORRUPTED, target=1)
