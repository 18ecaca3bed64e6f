"""The logit lens and the attention view of a GPT: the last layer is the model's own prediction, the hooks leave
no trace, attention rows are distributions over real positions, and the agreement score counts what it says."""

import numpy as np
import pytest
import torch

from bigtut.explain.logit_lens import attention_to_positions, evidence_in_top_k, logit_lens
from bigtut.gpt import GPT, GPTConfig


def tiny_gpt(seed=0):
    torch.manual_seed(seed)
    model = GPT(GPTConfig(vocab_size=11, block_size=12, n_layer=3, n_head=2, d_model=8)).double()
    with torch.no_grad():  # larger weights than GPT-2's 0.02: predictions that vary with the input
        for p in model.parameters():
            p.mul_(20.0) if p.dim() > 1 else None
    return model.eval()


@pytest.fixture
def case():
    ids = torch.tensor([[1, 4, 2, 7, 3, 9, 5], [2, 8, 6, 1, 0, 0, 0], [5, 5, 3, 10, 2, 4, 0]])
    mask = torch.tensor([[1] * 7, [1, 1, 1, 1, 0, 0, 0], [1] * 6 + [0]])
    return tiny_gpt(), ids, mask


def test_last_layer_is_the_models_prediction(case):
    model, ids, mask = case
    lens = logit_lens(model, ids, mask)
    assert lens.log_probs.shape == (3, 4, 11) and lens.log_probs.dtype == np.float64
    assert lens.layers == ("embeddings", "block 0", "block 1", "block 2")
    assert lens.positions.tolist() == [6, 3, 5]  # the last real token of each row
    with torch.no_grad():
        expected = torch.log_softmax(model(ids, attention_mask=mask).logits, -1)[torch.arange(3), [6, 3, 5]]
    np.testing.assert_allclose(lens.log_probs[:, -1], expected.numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(np.exp(lens.log_probs).sum(-1), 1.0, atol=1e-12)
    assert not any(block._forward_hooks or block._forward_pre_hooks for block in model.blocks)  # hooks removed


def test_every_layer_is_the_read_out_of_a_truncated_model(case):
    model, ids, mask = case
    lens = logit_lens(model, ids, mask, position=2)
    for n in range(len(model.blocks) + 1):  # the stream after n blocks = a copy of the model keeping n blocks
        truncated = tiny_gpt()
        truncated.blocks = truncated.blocks[:n]
        with torch.no_grad():
            expected = torch.log_softmax(truncated(ids, attention_mask=mask).logits[:, 2], -1)
        np.testing.assert_allclose(lens.log_probs[:, n], expected.numpy(), rtol=0, atol=1e-12)


def test_positions_batches_and_rows_alone(case):
    model, ids, mask = case
    whole = logit_lens(model, ids, mask, position=-2)
    assert whole.positions.tolist() == [5, 2, 4]
    chunked = logit_lens(model, ids, mask, position=[5, 2, 4], batch_size=2)
    np.testing.assert_allclose(chunked.log_probs, whole.log_probs, rtol=0, atol=1e-12)
    alone = logit_lens(model, ids[1:2, :4], position=-2)
    np.testing.assert_allclose(alone.log_probs[0], whole.log_probs[1], rtol=0, atol=1e-12)


def test_attention_rows_are_distributions_over_real_positions(case):
    model, ids, mask = case
    view = attention_to_positions(model, ids, mask)
    assert view.shape == (3, 3, 2, 7) and view.dtype == np.float64
    np.testing.assert_allclose(view.sum(-1), 1.0, atol=1e-12)
    assert (view[1, ..., 4:] == 0).all() and (view[2, ..., 6] == 0).all()  # padding
    early = attention_to_positions(model, ids, mask, position=2)
    assert (early[..., 3:] == 0).all()  # the causal mask: nothing after the position
    with torch.no_grad():
        attentions = model(ids, attention_mask=mask, return_attention=True).attentions
    np.testing.assert_allclose(early[0, 1], attentions[1][0, :, 2].numpy(), rtol=0, atol=0)


def test_evidence_in_top_k_counts_hits_per_row_and_head():
    scores = np.array([[0.1, 0.9, 0.3, 0.5], [0.8, 0.1, 0.7, 5.0]])
    evidence = np.array([[0, 1, 0, 0], [0, 0, 1, 0]], dtype=bool)
    mask = np.array([[1, 1, 1, 1], [1, 1, 1, 0]])  # row 1's highest score is padding: it never counts
    assert evidence_in_top_k(scores, evidence, mask=mask).tolist() == [1.0, 0.0]
    assert evidence_in_top_k(scores, evidence, k=2, mask=mask).tolist() == [1.0, 1.0]
    heads = np.stack([scores, -scores], 1)  # (B, 2, L)
    assert evidence_in_top_k(heads, evidence, mask=mask).tolist() == [[1.0, 0.0], [0.0, 0.0]]
    layered = np.stack([heads, heads], 1)  # (B, 2, 2, L)
    assert evidence_in_top_k(layered, evidence, mask=mask).shape == (2, 2, 2)
    assert evidence_in_top_k(np.zeros((1, 3)), np.array([[1, 0, 0]])).tolist() == [1.0]  # ties: earlier first


@pytest.mark.parametrize("call, error, match", [
    (lambda m, i, k: logit_lens(torch.nn.Linear(2, 2), i, k), TypeError, "bigtut.GPT"),
    (lambda m, i, k: attention_to_positions("gpt", i, k), TypeError, "bigtut.GPT"),
    (lambda m, i, k: logit_lens(m, i, k, position=7), ValueError, "position"),
    (lambda m, i, k: logit_lens(m, i, k, position=4), ValueError, "position"),  # padding in row 1
    (lambda m, i, k: logit_lens(m, i, k, position=-8), ValueError, "position"),
    (lambda m, i, k: logit_lens(m, i, k, position=1.5), TypeError, "position"),
    (lambda m, i, k: logit_lens(m, i.float(), k), TypeError, "integer"),
    (lambda m, i, k: logit_lens(m, i + 11, k), ValueError, r"\[0, 11\)"),
    (lambda m, i, k: logit_lens(m, torch.ones(1, 13, dtype=torch.long)), ValueError, "block_size"),
    (lambda m, i, k: logit_lens(m, i, k, batch_size=0), ValueError, "batch_size"),
    (lambda m, i, k: evidence_in_top_k(np.zeros((3, 7)), np.zeros((3, 6))), ValueError, "evidence"),
    (lambda m, i, k: evidence_in_top_k(np.zeros((3, 7)), np.zeros((3, 7)), k=0), ValueError, "k must"),
    (lambda m, i, k: evidence_in_top_k(np.full((3, 7), np.nan), np.zeros((3, 7))), ValueError, "finite"),
])
def test_bad_input_is_refused_by_name(case, call, error, match):
    model, ids, mask = case
    with pytest.raises(error, match=match):
        call(model, ids, mask)
