"""Tests of bigtut.bert (and bigtut.data.sentences): equal to Hugging Face's BERT in both mapping directions,
padding invariance, masking statistics, NSP pairs and input validation (the recipe: test_recipes.py)."""

import random

import pytest
import torch
import transformers
from hypothesis import given, settings
from hypothesis import strategies as st

from bigtut.bert import (
    Bert,
    BertConfig,
    BertForPreTraining,
    BertForSequenceClassification,
    BertVocab,
    bert_from_hf,
    bert_to_hf,
    mask_tokens,
    pretraining_loss,
)
from bigtut.data import docstring_splits
from bigtut.data.sentences import NSPSampler, docs_sentences, encode_pairs, sample_nsp_pairs, split_sentences

transformers.logging.set_verbosity_error()
MODELS = {Bert: transformers.BertModel, BertForPreTraining: transformers.BertForPreTraining,
          BertForSequenceClassification: transformers.BertForSequenceClassification}


@st.composite
def tiny_configs(draw):
    heads = draw(st.integers(1, 3))
    return BertConfig(vocab_size=draw(st.integers(8, 40)), max_len=draw(st.integers(8, 20)),
                      type_vocab_size=draw(st.integers(1, 3)), d_model=heads * draw(st.integers(2, 6)),
                      num_layers=draw(st.integers(1, 3)), num_heads=heads, d_ff=draw(st.integers(4, 24)),
                      dropout=0.0, layer_norm_eps=draw(st.sampled_from([1e-12, 1e-5])),
                      num_labels=draw(st.integers(2, 5)))


def randomize_(model: torch.nn.Module, gen: torch.Generator) -> None:
    """Every parameter random (biases and LayerNorms too), so a swapped or missed tensor cannot hide."""
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * 0.5)


def random_inputs(config: BertConfig, gen: torch.Generator, batch: int = 3):
    L = int(torch.randint(2, config.max_len + 1, (1,), generator=gen))
    ids = torch.randint(config.vocab_size, (batch, L), generator=gen)  # (B, L)
    segments = torch.randint(config.type_vocab_size, (batch, L), generator=gen)  # (B, L)
    lengths = torch.randint(1, L + 1, (batch,), generator=gen)
    lengths[0] = L  # one full row
    mask = (torch.arange(L)[None, :] < lengths[:, None]).long()  # (B, L), 1 = real
    return ids, segments, mask


def outputs_of(model, ids, segments, mask):
    """Our outputs and HF's, as lists of comparable tensors (real positions only where padding matters)."""
    if isinstance(model, Bert):
        out = model(ids, mask, segments)
        return [out.hidden * mask[..., None], out.pooled]
    if isinstance(model, BertForPreTraining):
        mlm, nsp = model(ids, mask, segments)
        return [mlm * mask[..., None], nsp]
    return [model(ids, mask, segments)]


def hf_outputs_of(hf, ids, segments, mask):
    out = hf(input_ids=ids, token_type_ids=segments, attention_mask=mask)
    if isinstance(hf, transformers.BertModel):
        return [out.last_hidden_state * mask[..., None], out.pooler_output]
    if isinstance(hf, transformers.BertForPreTraining):
        return [out.prediction_logits * mask[..., None], out.seq_relationship_logits]
    return [out.logits]


@pytest.mark.parametrize("kind", list(MODELS), ids=lambda k: k.__name__)
@settings(max_examples=8, deadline=None)
@given(config=tiny_configs(), seed=st.integers(0, 2**16))
def test_ours_to_hf_gives_the_same_outputs(kind, config, seed):
    gen = torch.Generator().manual_seed(seed)
    ours = kind(config).double().eval()
    randomize_(ours, gen)
    hf = bert_to_hf(ours)
    ids, segments, mask = random_inputs(config, gen)
    with torch.no_grad():
        for a, b in zip(outputs_of(ours, ids, segments, mask), hf_outputs_of(hf, ids, segments, mask)):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kind", list(MODELS), ids=lambda k: k.__name__)
@settings(max_examples=8, deadline=None)
@given(config=tiny_configs(), seed=st.integers(0, 2**16))
def test_hf_to_ours_gives_the_same_outputs(kind, config, seed):
    gen = torch.Generator().manual_seed(seed)
    hf = MODELS[kind](bert_to_hf(kind(config)).config).double().eval()  # a fresh HF model, HF's own init
    randomize_(hf, gen)
    ours = bert_from_hf(hf)
    assert isinstance(ours, kind)
    ids, segments, mask = random_inputs(config, gen)
    with torch.no_grad():
        for a, b in zip(outputs_of(ours, ids, segments, mask), hf_outputs_of(hf, ids, segments, mask)):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
    back = bert_to_hf(ours).state_dict()  # and the round trip loses nothing
    for name, tensor in hf.state_dict().items():
        torch.testing.assert_close(back[name], tensor, atol=0, rtol=0)


def test_attention_weights_and_losses_match_hf():
    config = BertConfig(vocab_size=30, max_len=12, d_model=12, num_layers=2, num_heads=3, d_ff=20, dropout=0.0)
    gen = torch.Generator().manual_seed(0)
    ours = BertForPreTraining(config).double().eval()
    randomize_(ours, gen)
    hf = bert_to_hf(ours)
    hf.config._attn_implementation = "eager"  # the implementation that returns attention weights
    ids, segments, mask = random_inputs(config, gen, batch=4)
    labels = torch.where(torch.rand(ids.shape, generator=gen) < 0.3, ids, -100)
    labels[0, 0] = ids[0, 0]  # at least one MLM target
    nsp_labels = torch.randint(2, (4,), generator=gen)
    with torch.no_grad():
        mlm, nsp, attentions = ours(ids, mask, segments, return_attention=True)
        out = hf(input_ids=ids, token_type_ids=segments, attention_mask=mask, labels=labels,
                 next_sentence_label=nsp_labels, output_attentions=True)
    assert len(attentions) == len(out.attentions) == 2
    for a, b in zip(attentions, out.attentions):
        assert a.shape == (4, 3, ids.shape[1], ids.shape[1])
        torch.testing.assert_close(a * mask[:, None, None, :], b * mask[:, None, None, :], atol=1e-10, rtol=1e-8)
    with torch.no_grad():
        ours_loss = sum(pretraining_loss(ours, (ids, segments, mask, labels, nsp_labels)))
    torch.testing.assert_close(ours_loss, out.loss, atol=1e-10, rtol=1e-8)


def test_tied_decoder_and_inputs_embeds():
    config = BertConfig(vocab_size=25, max_len=10, d_model=8, num_heads=2, d_ff=16, dropout=0.0,
                        num_labels=3)
    model = BertForPreTraining(config).double().eval()
    assert model.bert.embeddings.token.weight.shape == (25, 8)
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in bert_to_hf(model).parameters())
    gen = torch.Generator().manual_seed(1)
    ids, segments, mask = random_inputs(config, gen)
    clf = BertForSequenceClassification(config).double().eval()
    embeds = clf.get_input_embeddings()(ids)  # (B, L, d)
    hf = bert_to_hf(clf)
    with torch.no_grad():
        torch.testing.assert_close(clf(inputs_embeds=embeds, token_type_ids=segments, attention_mask=mask),
                                   clf(ids, mask, segments))
        torch.testing.assert_close(clf(inputs_embeds=embeds, token_type_ids=segments, attention_mask=mask),
                                   hf(inputs_embeds=embeds, token_type_ids=segments, attention_mask=mask).logits)
    embeds = embeds.detach().requires_grad_(True)  # gradients reach the embeddings (what IG needs)
    clf(inputs_embeds=embeds, attention_mask=mask)[:, 0].sum().backward()
    assert embeds.grad is not None and embeds.grad.abs().sum() > 0


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**16), extra=st.integers(1, 6))
def test_extra_padding_changes_nothing_at_real_positions(seed, extra):
    config = BertConfig(vocab_size=20, max_len=24, d_model=16, num_heads=4, d_ff=32, dropout=0.0,
                        num_labels=3)
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    pre, clf = BertForPreTraining(config).double().eval(), BertForSequenceClassification(config).double().eval()
    ids, segments, mask = random_inputs(BertConfig(**{**config.__dict__, "max_len": 16}), gen)
    B, L = ids.shape
    pad = lambda t, value: torch.cat([t, torch.full((B, extra), value, dtype=t.dtype)], dim=1)  # noqa: E731
    padded = pad(ids, config.pad_id), pad(mask, 0), pad(segments, 0)
    real = mask.bool()
    with torch.no_grad():
        mlm, nsp, att = pre(ids, mask, segments, return_attention=True)
        mlm_p, nsp_p, att_p = pre(*padded, return_attention=True)
        torch.testing.assert_close(mlm_p[:, :L][real], mlm[real])
        torch.testing.assert_close(nsp_p, nsp)
        torch.testing.assert_close(att_p[-1][..., :L, :L], att[-1])
        assert att_p[-1][..., L:].abs().max() == 0  # no query looks at padding
        torch.testing.assert_close(clf(*padded), clf(ids, mask, segments))


def test_bert_is_bidirectional():
    config = BertConfig(vocab_size=20, max_len=8, d_model=8, num_heads=2, d_ff=16, dropout=0.0)
    model = Bert(config).double().eval()
    ids = torch.randint(20, (1, 8), generator=torch.Generator().manual_seed(0))
    changed = ids.clone()
    changed[0, -1] = (ids[0, -1] + 1) % 20  # change only the last token
    with torch.no_grad():
        first, second = model(ids).hidden, model(changed).hidden
    assert (first[0, 0] - second[0, 0]).abs().max() > 1e-6  # the first position sees the last one


VOCAB = BertVocab(size=50, pad_id=0, cls_id=1, sep_id=2, mask_id=3, unk_id=4)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), mask_prob=st.sampled_from([0.15, 0.3, 0.5]))
def test_mask_tokens_statistics(seed, mask_prob):
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 50, (64, 256), generator=gen)  # ordinary tokens ...
    ids[:, 0], ids[:, 100], ids[:, -40:] = 1, 2, 0  # ... with [CLS], a [SEP] and padding
    ids[::7, 50] = 3  # a literal [MASK] and an [UNK] in the text are special as well
    ids[::5, 60] = 4
    masked, labels = mask_tokens(ids, VOCAB, mask_prob, generator=gen)
    special = ids < 5
    selected = labels != -100
    assert not selected[special].any(), "special tokens must never be selected"
    assert torch.equal(masked[special], ids[special])
    assert torch.equal(labels[selected], ids[selected])  # labels are the original ids
    assert torch.equal(masked[~selected], ids[~selected])  # unselected positions are untouched
    share = selected.sum() / (~special).sum()
    assert abs(share - mask_prob) < 0.02
    n = selected.sum()
    to_mask = (masked[selected] == 3).sum() / n
    kept = (masked[selected] == ids[selected]).sum() / n
    swapped = 1 - to_mask - kept
    assert abs(to_mask - 0.8) < 0.04 and abs(kept - 0.1) < 0.03 and abs(swapped - 0.1) < 0.03
    assert (masked[selected & (masked != 3)] >= 5).all(), "random replacements are ordinary tokens"


def test_mask_tokens_is_reproducible_and_reads_tokenizers():
    from bigtut.tokenizers import CharTokenizer

    tok = CharTokenizer.train("abcdefgh", special_tokens=["[PAD]", "[CLS]", "[SEP]", "[MASK]"], unk_token="[UNK]")
    vocab = BertVocab.from_tokenizer(tok)
    assert vocab.special_ids == (0, 1, 2, 3, 4) and vocab.size == 13
    ids = torch.tensor([[1, *tok.encode("abcdefghabcdefgh"), 2, 0, 0]])
    first = mask_tokens(ids, tok, 0.5, generator=torch.Generator().manual_seed(3))
    second = mask_tokens(ids, vocab, 0.5, generator=torch.Generator().manual_seed(3))
    assert all(torch.equal(a, b) for a, b in zip(first, second))
    with pytest.raises(ValueError, match="special tokens"):
        mask_tokens(ids, CharTokenizer.train("abc"), 0.15)


def test_nsp_pairs_are_half_true_and_stay_inside_their_split():
    train, val = docs_sentences("train", docstrings=True), docs_sentences("val", docstrings=True)
    tagged = [[f"{d}|{i}|{s}" for i, s in enumerate(doc)] for d, doc in enumerate(train)]  # where each came from
    pairs = sample_nsp_pairs(tagged, 4000, seed=0)
    assert abs(sum(p.label == 0 for p in pairs) / len(pairs) - 0.5) < 0.03
    for a, b, label in pairs:
        (da, ia), (db, ib) = (tuple(map(int, s.split("|")[:2])) for s in (a, b))
        assert ia + 1 < len(train[da]), "a has a successor in its document"
        if label == 0:
            assert (db, ib) == (da, ia + 1), "an is-next pair is consecutive in one document"
        else:
            assert db != da, "a random b comes from another document"
    train_set, val_set = {s for doc in train for s in doc}, {s for doc in val for s in doc}
    assert all(a in train_set and b in train_set for a, b, _ in sample_nsp_pairs(train, 2000, seed=1))
    assert all(a in val_set and b in val_set for a, b, _ in sample_nsp_pairs(val, 500, seed=2))
    held_out = {tuple(split_sentences(d.text)) for name in ("val", "test") for d in docstring_splits()[name]}
    assert not any(tuple(doc) in held_out for doc in train), "no validation or test docstring in training"
    assert sample_nsp_pairs(train, 50, seed=7) == sample_nsp_pairs(train, 50, seed=7)


def test_nsp_sampler_on_toy_documents():
    docs = [["a0", "a1", "a2"], ["b0"], ["c0", "c1"]]
    rng = random.Random(0)
    for _ in range(300):
        a, b, label = NSPSampler(docs).sample(rng)
        assert a not in ("a2", "b0", "c1"), "a needs a successor"
        if label == 0:
            assert b == {"a0": "a1", "a1": "a2", "c0": "c1"}[a]
        else:
            assert b[0] != a[0]
    with pytest.raises(ValueError, match="two documents"):
        NSPSampler([["x", "y"]])


def test_split_sentences_and_encode_pairs():
    text = "Title\n*****\n\nFirst sentence is here. Second one\nfollows it.\n\n   code = 1  # not prose\n\nThird."
    assert split_sentences(text, min_chars=5) == ["First sentence is here.", "Second one follows it.", "Third."]

    class Chars:
        def encode(self, s):
            return [ord(c) for c in s]

    ids, segments, lengths, labels = encode_pairs([("abcdefgh", "xyz", 1), ("ab", "c", 0)], Chars(), 10, 1, 2, 0)
    assert ids[0].tolist() == [1, *map(ord, "efgh"), 2, *map(ord, "xyz"), 2]  # a loses its start
    assert segments[0].tolist() == [0] * 6 + [1] * 4
    assert ids[1].tolist() == [1, ord("a"), ord("b"), 2, ord("c"), 2, 0, 0, 0, 0]
    assert segments[1].tolist() == [0, 0, 0, 0, 1, 1, 0, 0, 0, 0]
    assert lengths.tolist() == [10, 6] and labels.tolist() == [1, 0]


@pytest.mark.parametrize("changes, match", [
    ({"d_model": 30, "num_heads": 4}, "divisible"), ({"num_layers": 0}, "num_layers"),
    ({"dropout": 1.0}, "dropout"), ({"pad_id": 1024}, "pad_id"), ({"vocab_size": 2.5}, "vocab_size"),
    ({"layer_norm_eps": 0.0}, "layer_norm_eps"),
])
def test_bad_configs_raise(changes, match):
    with pytest.raises(ValueError, match=match):
        BertConfig(**changes)


def test_bad_inputs_raise():
    model = BertForSequenceClassification(BertConfig(vocab_size=20, max_len=8, d_model=8, num_heads=2, d_ff=8))
    ids = torch.randint(20, (2, 5))
    cases = [
        (dict(input_ids=torch.full((2, 5), 20)), "input_ids must lie in"),
        (dict(input_ids=torch.full((2, 5), -1)), "input_ids must lie in"),
        (dict(input_ids=ids.float()), "integer"),
        (dict(input_ids=ids, attention_mask=torch.ones(2, 4)), "attention_mask must have shape"),
        (dict(input_ids=ids, attention_mask=torch.ones(5, 2)), "attention_mask must have shape"),
        (dict(input_ids=ids, token_type_ids=torch.full((2, 5), 2)), "token_type_ids must lie in"),
        (dict(input_ids=torch.randint(20, (2, 9))), "max_len"),
        (dict(input_ids=ids, inputs_embeds=torch.zeros(2, 5, 8)), "exactly one"),
        (dict(), "exactly one"),
        (dict(inputs_embeds=torch.zeros(2, 5, 7)), "inputs_embeds must be"),
    ]
    for kwargs, match in cases:
        with pytest.raises(ValueError, match=match):
            model(**kwargs)
    for bad, match in [(dict(ids=torch.zeros(2, 3)), "integer"), (dict(mask_prob=0.0), "mask_prob"),
                       (dict(mask_prob=1.5), "mask_prob"), (dict(ids=torch.full((2, 3), 50)), "lie in")]:
        with pytest.raises(ValueError, match=match):
            mask_tokens(**{"ids": torch.full((2, 3), 7), "vocab": VOCAB, **bad})


def test_bert_from_hf_rejects_what_it_cannot_represent():
    hf_config = transformers.BertConfig(vocab_size=20, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
                                        intermediate_size=8, hidden_act="relu")
    with pytest.raises(ValueError, match="GELU"):
        bert_from_hf(transformers.BertModel(hf_config))
    with pytest.raises(TypeError):
        bert_to_hf(torch.nn.Linear(2, 2))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_runs_on_cuda_like_on_cpu():
    config = BertConfig(vocab_size=30, max_len=12, d_model=16, num_heads=4, d_ff=32, dropout=0.0)
    model = BertForPreTraining(config).double().eval()
    ids, segments, mask = random_inputs(config, torch.Generator().manual_seed(0))
    with torch.no_grad():
        cpu = model(ids, mask, segments)
        gpu = model.to("cuda")(ids.cuda(), mask.cuda(), segments.cuda())
    for a, b in zip(cpu, gpu):
        torch.testing.assert_close(a, b.cpu(), atol=1e-8, rtol=1e-6)
    masked, labels = mask_tokens(ids.cuda(), BertVocab(30, 0, 1, 2, 3), 0.5)
    assert masked.device.type == "cuda" and labels.device.type == "cuda"


def test_bert_returns_hidden_and_pooled_like_hf_bert_model():
    model = Bert(BertConfig(vocab_size=20, max_len=8, d_model=8, num_layers=1, num_heads=2, d_ff=16)).eval()
    ids = torch.randint(20, (2, 6))
    hidden, pooled = model(ids)
    assert hidden.shape == (2, 6, 8) and pooled.shape == (2, 8)
    hidden_again, _, attentions = model(ids, return_attention=True)
    assert torch.allclose(hidden_again, hidden, atol=1e-6) and attentions[0].shape == (2, 2, 6, 6)
