"""The classifier contract of chapters 06–10, proven for both classifiers on fresh random configs:

* ``model(ids, mask)`` equals ``model(inputs_embeds=E(ids), attention_mask=mask)``, ``E = get_input_embeddings()``;
* appending PAD positions with mask 0 leaves the logits unchanged;
* gradients flow to ``inputs_embeds``;
* logits are a plain ``(B, C)`` tensor; ``return_attention=True`` adds one weight tensor per layer.
"""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bigtut.bert import BertConfig, BertForSequenceClassification
from bigtut.gpt import GPT, GPTClassifier, GPTConfig


def make_gpt(seed: int, num_classes: int, pool: str = "mean"):
    torch.manual_seed(seed)
    body = GPT(GPTConfig(vocab_size=31, block_size=20, n_layer=2, n_head=2, d_model=16))
    return GPTClassifier(body, num_classes, pool=pool).double().eval(), 0  # (model, pad id)


def make_bert(seed: int, num_classes: int, pool: str = "cls"):
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=31, max_len=20, d_model=16, num_layers=2, num_heads=2, d_ff=24,
                        num_labels=num_classes, pad_id=3)
    return BertForSequenceClassification(config).double().eval(), 3


BUILDERS = {"gpt-mean": lambda s, c: make_gpt(s, c, "mean"), "gpt-last": lambda s, c: make_gpt(s, c, "last"),
            "bert": make_bert}


def random_batch(seed: int, batch: int, length: int, vocab: int = 31):
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(4, vocab, (batch, length), generator=gen)  # (B, L)
    lengths = torch.randint(1, length + 1, (batch,), generator=gen)  # (B,)
    mask = (torch.arange(length)[None, :] < lengths[:, None]).long()  # (B, L) right padding
    return ids, mask


@pytest.mark.parametrize("kind", BUILDERS)
@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 10_000), batch=st.integers(1, 4), length=st.integers(1, 12), extra=st.integers(1, 6),
       classes=st.integers(2, 5))
def test_contract(kind, seed, batch, length, extra, classes):
    model, pad = BUILDERS[kind](seed, classes)
    ids, mask = random_batch(seed, batch, length)
    ids = ids.masked_fill(mask == 0, pad)
    logits = model(ids, mask)
    assert type(logits) is torch.Tensor and logits.shape == (batch, classes)

    embedding = model.get_input_embeddings()
    assert isinstance(embedding, torch.nn.Embedding)
    embeds = embedding(ids).detach().requires_grad_(True)  # (B, L, d)
    from_embeds = model(inputs_embeds=embeds, attention_mask=mask)
    torch.testing.assert_close(from_embeds, logits, atol=1e-12, rtol=0)

    from_embeds[:, 0].sum().backward()
    assert embeds.grad is not None and embeds.grad.abs().sum() > 0  # gradients reach the embeddings
    if (mask == 0).any():  # padded positions have no influence on the logits
        assert embeds.grad[mask == 0].abs().max() == 0

    padded_ids = torch.cat([ids, torch.full((batch, extra), pad)], dim=1)  # (B, L + extra)
    padded_mask = torch.cat([mask, torch.zeros(batch, extra, dtype=mask.dtype)], dim=1)
    torch.testing.assert_close(model(padded_ids, padded_mask), logits, atol=1e-12, rtol=0)
    bool_mask = model(ids, mask.bool())
    torch.testing.assert_close(bool_mask, logits, atol=0, rtol=0)


@pytest.mark.parametrize("kind", BUILDERS)
def test_attention_flag_is_one_name(kind):
    model, pad = BUILDERS[kind](0, 3)
    ids, mask = random_batch(0, 2, 7)
    mask[0, 5:] = 0  # some padding for sure
    logits, attentions = model(ids, mask, return_attention=True)
    torch.testing.assert_close(logits, model(ids, mask))
    assert len(attentions) == 2 and attentions[0].shape == (2, 2, 7, 7)
    to_padding = attentions[0].sum(-2)[mask[:, None, :].expand(-1, 2, -1) == 0]  # weight given to padded keys
    assert to_padding.abs().max() == 0


@pytest.mark.parametrize("kind", BUILDERS)
def test_contract_rejects_bad_input(kind):
    model, _ = BUILDERS[kind](0, 3)
    ids, mask = random_batch(0, 2, 6)
    with pytest.raises(ValueError, match="exactly one"):
        model(ids, mask, inputs_embeds=model.get_input_embeddings()(ids))
    with pytest.raises(ValueError, match="exactly one"):
        model()
    with pytest.raises(ValueError, match="attention_mask"):
        model(ids, mask[:, :4])
    with pytest.raises(ValueError, match="inputs_embeds"):
        model(inputs_embeds=torch.zeros(2, 6, 5, dtype=torch.float64))
    with pytest.raises(ValueError, match="must lie in"):
        model(torch.full((1, 3), 31))
