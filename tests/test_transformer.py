"""bigtut.transformer: layers and stacks equal PyTorch's, the decoder never looks ahead, decoding is right."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from hypothesis import example, given, settings
from hypothesis import strategies as st
from torch import nn

from bigtut.attention import causal_mask, padding_mask
from bigtut.transformer import (
    Decoder,
    DecoderLayer,
    Encoder,
    EncoderLayer,
    LSTMSeq2Seq,
    Seq2SeqConfig,
    Seq2SeqTransformer,
    beam_search,
    beam_step,
    copy_from_torch,
    decoder_self_mask,
    greedy_decode,
    sequence_log_prob,
    teacher_forcing_loss,
)

PAD, BOS, EOS = 0, 1, 2
layer_configs = st.fixed_dictionaries({
    "num_heads": st.integers(1, 4), "d_head": st.integers(1, 6), "d_ff": st.integers(1, 24),
    "norm_first": st.booleans(), "activation": st.sampled_from(["relu", "gelu"]), "batch": st.integers(1, 3),
    "src_len": st.integers(1, 7), "tgt_len": st.integers(1, 6), "seed": st.integers(0, 2**16),
})


def _torch_layer(cls, cfg, d_model):
    return cls(d_model, cfg["num_heads"], cfg["d_ff"], dropout=0.0, activation=cfg["activation"],
               batch_first=True, norm_first=cfg["norm_first"]).double().eval()


def _inputs(cfg, d_model):
    gen = torch.Generator().manual_seed(cfg["seed"])
    x = torch.randn(cfg["batch"], cfg["src_len"], d_model, generator=gen, dtype=torch.float64)  # (B, S, D)
    y = torch.randn(cfg["batch"], cfg["tgt_len"], d_model, generator=gen, dtype=torch.float64)  # (B, T, D)
    src_lengths = torch.randint(1, cfg["src_len"] + 1, (cfg["batch"],), generator=gen)
    tgt_lengths = torch.randint(1, cfg["tgt_len"] + 1, (cfg["batch"],), generator=gen)
    return x, y, padding_mask(src_lengths, cfg["src_len"]), padding_mask(tgt_lengths, cfg["tgt_len"])


@settings(max_examples=25, deadline=None)
@given(cfg=layer_configs)
def test_encoder_layer_equals_pytorch(cfg):
    d_model = cfg["num_heads"] * cfg["d_head"]
    theirs = _torch_layer(nn.TransformerEncoderLayer, cfg, d_model)
    ours = copy_from_torch(EncoderLayer(d_model, cfg["num_heads"], cfg["d_ff"], 0.0, cfg["activation"],
                                        cfg["norm_first"]).double().eval(), theirs)
    x, _, src_pad, _ = _inputs(cfg, d_model)
    S = cfg["src_len"]
    with torch.no_grad():
        # PyTorch's bool masks mean "blocked": ours negated
        assert torch.allclose(ours(x)[0], theirs(x), atol=1e-6, rtol=0)
        assert torch.allclose(ours(x, src_pad)[0], theirs(x, src_key_padding_mask=~src_pad[:, 0]), atol=1e-6, rtol=0)
        both = causal_mask(S) & src_pad  # (B, S, S): row 0 always keeps key 0
        expected = theirs(x, src_mask=~causal_mask(S), src_key_padding_mask=~src_pad[:, 0])
        assert torch.allclose(ours(x, both)[0], expected, atol=1e-6, rtol=0)


@settings(max_examples=25, deadline=None)
@given(cfg=layer_configs)
def test_decoder_layer_equals_pytorch(cfg):
    d_model = cfg["num_heads"] * cfg["d_head"]
    theirs = _torch_layer(nn.TransformerDecoderLayer, cfg, d_model)
    ours = copy_from_torch(DecoderLayer(d_model, cfg["num_heads"], cfg["d_ff"], 0.0, cfg["activation"],
                                        cfg["norm_first"]).double().eval(), theirs)
    memory, y, src_pad, tgt_pad = _inputs(cfg, d_model)
    T = cfg["tgt_len"]
    with torch.no_grad():
        got = ours(y, memory, causal_mask(T) & tgt_pad, src_pad)[0]
        expected = theirs(y, memory, tgt_mask=~causal_mask(T), tgt_key_padding_mask=~tgt_pad[:, 0],
                          memory_key_padding_mask=~src_pad[:, 0])
        assert torch.allclose(got, expected, atol=1e-6, rtol=0)
        assert torch.allclose(ours(y, memory)[0], theirs(y, memory), atol=1e-6, rtol=0)


@pytest.mark.parametrize("norm_first", [False, True])
def test_stacks_equal_pytorch(norm_first):
    torch.manual_seed(0)
    D, h, d_ff, n = 12, 3, 20, 3
    final = (lambda: nn.LayerNorm(D)) if norm_first else (lambda: None)
    enc_layer = nn.TransformerEncoderLayer(D, h, d_ff, 0.0, batch_first=True, norm_first=norm_first)
    dec_layer = nn.TransformerDecoderLayer(D, h, d_ff, 0.0, batch_first=True, norm_first=norm_first)
    theirs_enc = nn.TransformerEncoder(enc_layer, n, norm=final(), enable_nested_tensor=False).double().eval()
    theirs_dec = nn.TransformerDecoder(dec_layer, n, norm=final()).double().eval()
    for module in (theirs_enc, theirs_dec):  # make the copies of the layer differ from each other
        for p in module.parameters():
            nn.init.normal_(p, std=0.3)
    ours_enc = Encoder(n, D, h, d_ff, norm_first=norm_first).double().eval()
    ours_dec = Decoder(n, D, h, d_ff, norm_first=norm_first).double().eval()
    for ours, theirs in ((ours_enc, theirs_enc), (ours_dec, theirs_dec)):
        for mine, torch_layer in zip(ours.layers, theirs.layers):
            copy_from_torch(mine, torch_layer)
        assert (ours.norm is None) == (theirs.norm is None)
        if ours.norm is not None:
            ours.norm.load_state_dict(theirs.norm.state_dict())
    x, y = torch.randn(2, 6, D, dtype=torch.float64), torch.randn(2, 4, D, dtype=torch.float64)
    src_pad = padding_mask([6, 3], 6)
    with torch.no_grad():
        memory = ours_enc(x, src_pad)[0]
        expected_memory = theirs_enc(x, src_key_padding_mask=~src_pad[:, 0])
        assert torch.allclose(memory, expected_memory, atol=1e-6, rtol=0)
        got = ours_dec(y, memory, causal_mask(4), src_pad)[0]
        expected = theirs_dec(y, memory, tgt_mask=~causal_mask(4), memory_key_padding_mask=~src_pad[:, 0])
        assert torch.allclose(got, expected, atol=1e-6, rtol=0)


# ------------------------------------------------------------------------------------------- the model
def _model(norm_first=True, vocab=9, eos_bias=0.0, seed=0, **overrides):
    torch.manual_seed(seed)
    cfg = Seq2SeqConfig(vocab, vocab, d_model=16, num_heads=2, d_ff=32, max_len=16, norm_first=norm_first,
                        **overrides)
    model = Seq2SeqTransformer(cfg).double().eval()
    with torch.no_grad():
        for p in model.parameters():  # larger weights than the init: peaked, varied next-token distributions
            p.mul_(2.0)
        model.out_proj.bias[EOS] += eos_bias
    return model


def _right_padded(lengths, T, vocab, gen):
    ids = torch.randint(3, vocab, (len(lengths), T), generator=gen)
    for b, n in enumerate(lengths):
        ids[b, n:] = PAD
    return ids


@settings(max_examples=25, deadline=None)
@given(norm_first=st.booleans(), T=st.integers(2, 8), t=st.data(), seed=st.integers(0, 2**16))
def test_decoder_never_looks_ahead(norm_first, T, t, seed):
    model = _model(norm_first)
    gen = torch.Generator().manual_seed(seed)
    src = _right_padded([5, 3], 5, 9, gen)
    tgt = torch.randint(3, 9, (2, T), generator=gen)
    cut = t.draw(st.integers(1, T - 1))
    changed = tgt.clone()
    shift = torch.randint(1, 6, (2, T - cut), generator=gen)
    changed[:, cut:] = (tgt[:, cut:] - 3 + shift) % 6 + 3  # rewrite the future: every later token differs
    with torch.no_grad():
        before, after = model(src, tgt).logits, model(src, changed).logits  # (B, T, V)
    assert torch.allclose(before[:, :cut], after[:, :cut], atol=1e-12, rtol=0)
    assert not torch.allclose(before[:, cut:], after[:, cut:])  # the future did change something


def test_source_padding_changes_nothing_and_weights_path_agrees():
    model = _model()
    gen = torch.Generator().manual_seed(1)
    src, tgt = _right_padded([6, 2, 4], 6, 9, gen), torch.randint(3, 9, (3, 5), generator=gen)
    longer = torch.cat([src, torch.full((3, 4), PAD)], dim=1)  # four more pad columns
    with torch.no_grad():
        plain = model(src, tgt)
        assert torch.allclose(plain.logits, model(longer, tgt).logits, atol=1e-12, rtol=0)
        explicit = model(src, tgt, return_attention=True)
    assert torch.allclose(plain.logits, explicit.logits, atol=1e-12, rtol=0)  # fast path == explicit path
    assert plain.cross_attentions == [] and len(explicit.cross_attentions) == 2
    cross = explicit.cross_attentions[0]  # (B, h, T, S)
    assert cross.shape == (3, 2, 5, 6)
    assert torch.allclose(cross.sum(-1), torch.ones(3, 2, 5, dtype=torch.float64))
    assert (cross[1, :, :, 2:] == 0).all()  # row 1 has 2 real source tokens: padding gets no attention


def test_decoder_mask_is_causal_and_hides_padding():
    tgt = torch.tensor([[1, 5, 6, 0], [1, 4, 0, 0]])
    mask = decoder_self_mask(tgt, PAD)
    assert mask.shape == (2, 4, 4) and mask.dtype == torch.bool
    assert torch.equal(mask[0, :, :3], causal_mask(4)[:, :3]) and not mask[0, :, 3].any()
    assert torch.equal(mask[1, 2], torch.tensor([True, True, False, False]))


def test_teacher_forcing_loss_ignores_padding_and_smooths_labels():
    model = _model()
    gen = torch.Generator().manual_seed(2)
    src = _right_padded([4, 2], 4, 9, gen)
    tgt = torch.tensor([[BOS, 5, 6, 7, EOS], [BOS, 4, EOS, PAD, PAD]])
    with torch.no_grad():
        logp = model(src, tgt[:, :-1]).logits.log_softmax(-1)  # (B, 4, V)
        targets = tgt[:, 1:]
        real = targets != PAD
        nll = -logp.gather(-1, targets[..., None])[..., 0][real].mean()
        uniform = -logp.mean(-1)[real].mean()
        assert torch.allclose(teacher_forcing_loss(model, (src, tgt)), nll)
        assert torch.allclose(teacher_forcing_loss(model, (src, tgt), 0.2), 0.8 * nll + 0.2 * uniform)


def test_left_padding_and_too_long_inputs_are_refused():
    model = _model()
    with pytest.raises(ValueError, match="right-padded"):
        model(torch.tensor([[PAD, 4, 5]]), torch.tensor([[BOS, 4]]))
    with pytest.raises(ValueError, match="max_len"):
        model(torch.full((1, 17), 4), torch.tensor([[BOS, 4]]))
    with pytest.raises(ValueError, match="LongTensor"):
        model(torch.ones(1, 3), torch.tensor([[BOS, 4]]))


@pytest.mark.parametrize("overrides, message", [
    ({"d_model": 30, "num_heads": 4}, "not divisible"),
    ({"num_encoder_layers": 0}, "num_encoder_layers"),
    ({"dropout": 1.0}, "dropout"),
    ({"activation": "tanh"}, "activation"),
    ({"d_ff": 0}, "d_ff"),
    ({"max_len": 0}, "max_len"),
    ({"src_vocab_size": 0}, "src_vocab_size"),
    ({"eos_id": 9}, "eos_id"),
    ({"bos_id": 0}, "must differ"),
])
def test_bad_configs_raise_value_error(overrides, message):
    args = {"src_vocab_size": 9, "tgt_vocab_size": 9, **overrides}
    with pytest.raises(ValueError, match=message):
        Seq2SeqConfig(**args)


def test_bad_layer_and_decoding_arguments_raise():
    with pytest.raises(ValueError, match="not divisible"):
        EncoderLayer(10, 3, 8)
    with pytest.raises(ValueError, match="num_layers"):
        Decoder(0, 8, 2, 8)
    with pytest.raises(TypeError, match="Seq2SeqConfig"):
        Seq2SeqTransformer({"d_model": 8})
    model, src = _model(), torch.tensor([[4, 5]])
    with pytest.raises(ValueError, match="beam_size"):
        beam_search(model, src, beam_size=0)
    with pytest.raises(ValueError, match="max_len"):
        greedy_decode(model, src, max_len=16)


# ------------------------------------------------------------------------------------------- decoding
def _sources(seed, B=6):
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, 7, (B,), generator=gen).tolist()
    return _right_padded(lengths, max(lengths), 9, gen)


def test_greedy_output_layout_and_score():
    model, src = _model(eos_bias=2.0), _sources(0)
    out = greedy_decode(model, src, max_len=8)
    for row in out.tolist():
        if EOS in row:
            end = row.index(EOS)
            assert all(t == PAD for t in row[end + 1:]) and PAD not in row[:end] and BOS not in row
    lengths = [(row.index(EOS) if EOS in row else len(row)) for row in out.tolist()]
    assert len(set(lengths)) > 1, "the test model should stop at different lengths"
    # its score is the sum of the chosen tokens' log-probabilities, recomputed step by step
    with torch.no_grad():
        memory, src_mask, _ = model.encode(src)
        prefix = torch.full((len(src), 1), BOS)
        total = torch.zeros(len(src), dtype=torch.float64)
        for t in range(out.shape[1]):
            logits = model.decode(prefix, memory, src_mask)[0][:, -1]
            logits[:, [PAD, BOS]] = float("-inf")
            step = logits.log_softmax(-1).gather(1, out[:, t : t + 1])[:, 0]
            total += torch.where(out[:, t] == PAD, 0.0, step)
            prefix = torch.cat([prefix, out[:, t : t + 1]], 1)
    assert torch.allclose(sequence_log_prob(model, src, out), total, atol=1e-10)


@pytest.mark.parametrize("seed", range(4))
def test_beam_of_one_is_greedy(seed):
    model, src = _model(eos_bias=1.5, seed=seed, norm_first=seed % 2 == 0), _sources(seed)
    greedy = greedy_decode(model, src, max_len=9)
    beam, scores = beam_search(model, src, beam_size=1, max_len=9, keep_greedy=False)
    assert torch.equal(beam, greedy)
    assert torch.allclose(scores, sequence_log_prob(model, src, greedy), atol=1e-10)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**16), beam_size=st.integers(2, 6), eos_bias=st.floats(0.0, 3.0))
@example(seed=48, beam_size=2, eos_bias=0.0)  # a row where plain beam search ends below greedy (rare)
def test_beam_never_scores_below_greedy(seed, beam_size, eos_bias):
    """With ``keep_greedy=True`` (the default) beam search also scores greedy's output and returns it where it
    wins, so it never scores below greedy *by construction*: this checks that the safeguard is wired right.
    Plain beam search (``keep_greedy=False``) guarantees no such thing; for it we check what does hold: its
    scores are the true log-probabilities of its outputs, and the safeguarded result is exactly the better of
    the plain beam's output and greedy's, row by row."""
    model, src = _model(eos_bias=eos_bias, seed=seed % 7), _sources(seed)
    greedy = greedy_decode(model, src, max_len=7)  # (B, n)
    greedy_scores = sequence_log_prob(model, src, greedy)  # (B,)
    out, scores = beam_search(model, src, beam_size=beam_size, max_len=7)
    assert torch.allclose(scores, sequence_log_prob(model, src, out), atol=1e-9)  # scores are honest
    assert (scores >= greedy_scores - 1e-9).all()

    plain, plain_scores = beam_search(model, src, beam_size=beam_size, max_len=7, keep_greedy=False)
    assert torch.allclose(plain_scores, sequence_log_prob(model, src, plain), atol=1e-9)
    assert torch.allclose(scores, torch.maximum(plain_scores, greedy_scores), atol=1e-9)
    width = out.shape[1]
    plain, greedy = (F.pad(t, (0, width - t.shape[1]), value=PAD) for t in (plain, greedy))
    greedy_won = greedy_scores > plain_scores  # (B,) rows where plain beam search fell below greedy
    assert torch.equal(out, torch.where(greedy_won[:, None], greedy, plain))


def test_wide_beam_finds_the_exact_best_sequence():
    model = _model(vocab=5, eos_bias=1.0, seed=3)  # tokens: pad, bos, eos, a=3, b=4
    src = torch.tensor([[3, 4, 4], [4, 3, 0]])
    outputs = [list(seq) + [EOS] for n in range(3) for seq in itertools.product([3, 4], repeat=n)]
    outputs += [list(seq) for seq in itertools.product([3, 4], repeat=3)]  # cut at max_len=3 without <eos>
    padded = torch.tensor([o + [PAD] * (3 - len(o)) for o in outputs])  # (15, 3) every possible output
    for b in range(len(src)):
        all_scores = sequence_log_prob(model, src[b : b + 1].expand(len(padded), -1), padded)  # (15,)
        out, score = beam_search(model, src[b : b + 1], beam_size=27, max_len=3, keep_greedy=False)
        assert torch.allclose(score, all_scores.max(), atol=1e-10)
        assert out[0].tolist() == padded[int(all_scores.argmax())].tolist()


def test_beam_step_keeps_the_best_extensions():
    scores = torch.tensor([[0.0, -1.0]])
    log_probs = torch.log(torch.tensor([[[0.5, 0.3, 0.2], [0.9, 0.05, 0.05]]]))
    new_scores, parent, token = beam_step(scores, log_probs, 3)
    # totals: beam 0 -> log .5, log .3, log .2; beam 1 -> -1 + log .9 (between the first two), …
    assert parent.tolist() == [[0, 1, 0]] and token.tolist() == [[0, 0, 1]]
    assert torch.allclose(new_scores, torch.log(torch.tensor([[0.5, 0.9 / torch.e, 0.3]])))


# ------------------------------------------------------------------------------------------- the baseline
def test_lstm_baseline_reads_true_lengths_and_decodes():
    torch.manual_seed(0)
    cfg = Seq2SeqConfig(9, 9, d_model=8, num_heads=2, d_ff=8, max_len=16)
    model = LSTMSeq2Seq(cfg, hidden_size=12).double().eval()
    gen = torch.Generator().manual_seed(0)
    src, tgt = _right_padded([5, 2, 3], 5, 9, gen), torch.randint(3, 9, (3, 4), generator=gen)
    longer = torch.cat([src, torch.full((3, 3), PAD)], dim=1)
    with torch.no_grad():
        logits = model(src, tgt).logits
        assert torch.allclose(logits, model(longer, tgt).logits, atol=1e-12)
        alone = model(src[1:2, :2], tgt[1:2]).logits  # the row on its own, without padding
        assert torch.allclose(logits[1:2], alone, atol=1e-12)
    out = greedy_decode(model, src, max_len=6)
    assert out.shape[0] == 3 and torch.isfinite(teacher_forcing_loss(model, (src, tgt)))
    assert torch.equal(beam_search(model, src, beam_size=1, max_len=6, keep_greedy=False)[0], out)


def test_models_train_on_the_chosen_device():
    from bigtut import get_device

    device = get_device()
    model = Seq2SeqTransformer(Seq2SeqConfig(9, 9, d_model=8, num_heads=2, d_ff=8, max_len=8)).to(device)
    src, tgt = torch.tensor([[4, 5, 0]], device=device), torch.tensor([[BOS, 4, EOS]], device=device)
    loss = teacher_forcing_loss(model, (src, tgt))
    loss.backward()
    assert loss.device.type == device.type and model.out_proj.weight.grad is not None
    assert greedy_decode(model, src, max_len=3).device.type == device.type
    assert F.softmax(model(src, tgt).logits, -1).shape == (1, 3, 9)
