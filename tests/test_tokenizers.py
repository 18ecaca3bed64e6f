import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bigtut.data import python_docs_corpus
from bigtut.tokenizers import BPETokenizer, CharTokenizer, load_tokenizer

CORPUS = python_docs_corpus()


@pytest.fixture(scope="module")
def bpe():
    return BPETokenizer.train(CORPUS, vocab_size=400, special_tokens=["<eos>"])


def test_char_round_trip_on_the_corpus():
    tok = CharTokenizer.train(CORPUS)
    assert tok.decode(tok.encode(CORPUS)) == CORPUS
    assert tok.vocab_size == len(set(CORPUS))


def test_char_specials_come_first_and_are_not_encoded_from_text():
    tok = CharTokenizer.train("<abdp>", special_tokens=["<pad>", "<bos>"])
    assert tok.token_to_id("<pad>") == 0 and tok.token_to_id("<bos>") == 1
    assert len(tok.encode("<pad>")) == 5  # plain text never becomes a special token
    a = tok.token_to_id("a")
    assert tok.decode([0, a, 1]) == "<pad>a<bos>" and tok.decode([0, a, 1], skip_special_tokens=True) == "a"


def test_char_unknown_character_raises_or_maps_to_unk():
    tok = CharTokenizer.train("abc")
    with pytest.raises(ValueError, match=r"'z' at position 1"):
        tok.encode("az")
    with_unk = CharTokenizer.train("abc", unk_token="<unk>")
    assert with_unk.encode("az") == [with_unk.token_to_id("a"), with_unk.token_to_id("<unk>")]


@pytest.mark.parametrize("bad", [[-1], [3], [0, 99]])
def test_char_decode_out_of_range_ids(bad):
    tok = CharTokenizer.train("abc")
    with pytest.raises(ValueError, match=r"valid ids are 0\.\.2"):
        tok.decode(bad)


def test_bpe_round_trip_and_compression(bpe):
    ids = bpe.encode(CORPUS)
    assert bpe.decode(ids) == CORPUS
    assert len(CORPUS) / len(ids) > 1.8  # merges shorten English prose
    assert bpe.vocab_size == 400 and max(ids) < 399  # the special token is never produced by encode


def test_bpe_merges_are_frequent_pairs(bpe):
    assert b" the" in {bpe.id_to_token(i) for i in range(256, 399)}


@settings(max_examples=40, deadline=None)
@given(st.text(max_size=60))
def test_bpe_encodes_any_text_exactly(text):
    tok = BPETokenizer.train(CORPUS[:20_000], vocab_size=300)
    assert tok.decode(tok.encode(text)) == text


def test_bpe_vocab_smaller_than_alphabet():
    with pytest.raises(ValueError, match=r"vocab_size=200 is smaller than the alphabet.*>= 257"):
        BPETokenizer.train("hello", vocab_size=200, special_tokens=["<pad>"])


def test_bpe_decode_out_of_range(bpe):
    with pytest.raises(ValueError, match="outside the vocabulary"):
        bpe.decode([400])


def test_save_and_load_round_trip(tmp_path, bpe):
    char = CharTokenizer.train("hello world", special_tokens=["<pad>"], unk_token="<unk>")
    char.save(tmp_path / "char.json")
    bpe.save(tmp_path / "bpe.json")
    again_char, again_bpe = load_tokenizer(tmp_path / "char.json"), BPETokenizer.load(tmp_path / "bpe.json")
    assert again_char.encode("hello?") == char.encode("hello?") and again_char.vocab_size == char.vocab_size
    assert again_bpe.encode(CORPUS[:5000]) == bpe.encode(CORPUS[:5000])
    with pytest.raises(ValueError, match="does not hold"):
        CharTokenizer.load(tmp_path / "bpe.json")


def test_bpe_vocab_size_must_be_an_int_and_may_end_smaller_on_tiny_text():
    with pytest.raises(TypeError, match="vocab_size must be an int"):
        BPETokenizer.train("hello", vocab_size="300")
    tiny = BPETokenizer.train("abab", vocab_size=300)
    assert 256 < tiny.vocab_size < 300 and tiny.decode(tiny.encode("abab")) == "abab"


def test_char_tokenizer_needs_text():
    with pytest.raises(ValueError, match="non-empty"):
        CharTokenizer.train("")
