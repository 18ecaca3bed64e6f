"""Tests of bigtut.data.batching: language-model windows and padded classification inputs."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bigtut.data import encode_texts, minibatches, random_lm_batch, sequential_lm_batches


class SpaceTokenizer:
    """A tiny tokenizer for tests: one id per character, ``ord(c) % 50 + 10``."""

    def encode(self, text):
        return [ord(c) % 50 + 10 for c in text]


@settings(max_examples=25, deadline=None)
@given(n=st.integers(2, 60), block=st.integers(1, 12), batch=st.integers(1, 6), seed=st.integers(0, 1000))
def test_random_lm_batch_targets_are_next_tokens(n, block, batch, seed):
    ids = torch.arange(100, 100 + n)  # distinct values: a token's value says where it came from
    if n < block + 1:
        with pytest.raises(ValueError, match="block_size"):
            random_lm_batch(ids, block, batch)
        return
    x, y = random_lm_batch(ids, block, batch, generator=torch.Generator().manual_seed(seed))
    assert x.shape == y.shape == (batch, block)
    assert x.dtype == torch.long
    assert torch.equal(y, x + 1)  # each target is the token that follows
    assert torch.equal(x[:, 1:], y[:, :-1])
    assert int(x.min()) >= 100 and int(y.max()) <= 100 + n - 1


def test_random_lm_batch_is_reproducible_and_covers_both_ends():
    ids = torch.arange(10)
    a = random_lm_batch(ids, 3, 200, generator=torch.Generator().manual_seed(1))
    b = random_lm_batch(ids, 3, 200, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert int(a[0][:, 0].min()) == 0 and int(a[0][:, 0].max()) == 10 - 3 - 1  # first and last valid start


def test_random_lm_batch_rejects_bad_input():
    with pytest.raises(ValueError, match="1-D"):
        random_lm_batch(torch.zeros(3, 4, dtype=torch.long), 2, 2)
    with pytest.raises(ValueError, match="batch_size"):
        random_lm_batch(torch.arange(10), 2, 0)
    with pytest.raises(ValueError, match="block_size"):
        random_lm_batch(torch.arange(10), 0, 2)


def test_sequential_lm_batches_predict_every_token_once():
    ids = torch.arange(23)
    batches = sequential_lm_batches(ids, block_size=5, batch_size=3)
    xs = torch.cat([x for x, _ in batches])
    ys = torch.cat([y for _, y in batches])
    assert [x.shape[0] for x, _ in batches] == [3, 1]  # (23 - 1) // 5 = 4 windows
    assert torch.equal(ys.flatten(), torch.arange(1, 21))
    assert torch.equal(xs.flatten(), torch.arange(0, 20))


def test_encode_texts_pads_truncates_and_keeps_specials():
    tok = SpaceTokenizer()
    ids, lengths = encode_texts(["ab", "", "abcdefgh"], tok, max_len=6, pad_id=0, prefix=[1], suffix=[2])
    assert ids.shape == (3, 6) and ids.dtype == torch.long
    assert lengths.tolist() == [4, 2, 6]
    assert ids[0].tolist() == [1, *tok.encode("ab"), 2, 0, 0]
    assert ids[1].tolist() == [1, 2, 0, 0, 0, 0]
    assert ids[2].tolist() == [1, *tok.encode("abcd"), 2]  # truncated before the suffix


@settings(max_examples=25, deadline=None)
@given(texts=st.lists(st.text(max_size=12), min_size=1, max_size=5), max_len=st.integers(1, 10))
def test_encode_texts_rows_match_encoding(texts, max_len):
    tok = SpaceTokenizer()
    ids, lengths = encode_texts(texts, tok, max_len=max_len, pad_id=-1)
    for row, text, n in zip(ids.tolist(), texts, lengths.tolist()):
        assert n == min(len(text), max_len)
        assert row[:n] == tok.encode(text)[:n]
        assert row[n:] == [-1] * (max_len - n)


def test_encode_texts_rejects_bad_input():
    tok = SpaceTokenizer()
    with pytest.raises(ValueError, match="no room"):
        encode_texts(["a"], tok, max_len=1, pad_id=0, prefix=[1], suffix=[2])
    with pytest.raises(TypeError, match="single string"):
        encode_texts("abc", tok, max_len=4, pad_id=0)
    with pytest.raises(TypeError, match="encode"):
        encode_texts(["a"], object(), max_len=4, pad_id=0)


def test_minibatches_cover_every_row_once_and_stay_aligned():
    a = torch.arange(10)
    b = torch.arange(10) * 10
    batches = list(minibatches(a, b, batch_size=4, generator=torch.Generator().manual_seed(0)))
    assert [len(x) for x, _ in batches] == [4, 4, 2]
    seen = torch.cat([x for x, _ in batches])
    assert sorted(seen.tolist()) == list(range(10))
    assert not torch.equal(seen, a)  # shuffled
    assert all(torch.equal(y, x * 10) for x, y in batches)
    ordered = torch.cat([x for (x,) in minibatches(a, batch_size=3, shuffle=False)])
    assert torch.equal(ordered, a)
    with pytest.raises(ValueError, match="first size"):
        list(minibatches(a, torch.arange(3), batch_size=2))


def test_epoch_batches_deal_shuffled_epochs_without_a_gap():
    from bigtut.data import epoch_batches

    x, y = torch.arange(10), torch.arange(10) * 2
    next_batch = epoch_batches(x, y, batch_size=4, generator=torch.Generator().manual_seed(0))
    batches = [next_batch() for _ in range(5)]  # 20 rows: exactly two epochs
    dealt = torch.cat([b[0] for b in batches])
    assert all(torch.equal(b[1], 2 * b[0]) for b in batches)  # rows stay aligned
    gen = torch.Generator().manual_seed(0)
    expected = torch.cat([torch.randperm(10, generator=gen), torch.randperm(10, generator=gen)])
    assert torch.equal(dealt, expected)  # epoch 1 then epoch 2; batch 3 straddles them
    with pytest.raises(ValueError, match="batch_size"):
        epoch_batches(x, batch_size=0, generator=gen)
    with pytest.raises(ValueError, match="same first size"):
        epoch_batches(x, y[:3], batch_size=2, generator=gen)
