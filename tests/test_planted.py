"""Tests of the planted-evidence task (bigtut.data.planted) and its classifier recipe (bigtut.recipes.planted).

The label rule is re-implemented here from its description, with its own word lists, and checked on every
generated example; the recipe is run for a few steps only (the full run is ~20 s and belongs to `make models`).
"""

from collections import Counter

import pytest
import torch

from bigtut.bert import SPECIAL_TOKENS, BertForSequenceClassification, BertVocab, encode_for_classifier
from bigtut.data.planted import (
    PlantedExample,
    WordTokenizer,
    encode_planted,
    planted_evidence,
    planted_label,
    planted_splits,
    planted_tokenizer,
)
from bigtut.recipes.planted import TrainedPlanted, train_planted_classifier

GOOD = {"good", "great", "excellent", "nice"}
BAD = {"bad", "awful", "poor", "dull"}
PLANTED = GOOD | BAD | {"not", "alpha", "beta", "indeed"}


def rule(words):
    """(label, evidence positions) as the module docstring states them."""
    polar = [i for i, w in enumerate(words) if w in GOOD | BAD]
    if polar:
        (i,) = polar
        negated = i >= 1 and words[i - 1] == "not"
        label = 1 if (words[i] in GOOD) else 0
        return (1 - label if negated else label), ([i - 1, i] if negated else [i])
    markers = [i for i, w in enumerate(words) if w in ("alpha", "beta")]
    return int(len({words[i] for i in markers}) == 1), markers


@pytest.fixture(scope="module")
def splits():
    return planted_splits()


# ------------------------------------------------------------------------------------------------ splits
def test_splits_are_deterministic_and_sized():
    a, b = planted_splits(40, 10, 20, 30, seed=3), planted_splits(40, 10, 20, 30, seed=3)
    assert a == b and {k: len(v) for k, v in a.items()} == {"train": 40, "val": 10, "test": 20, "shortcut_test": 30}
    assert planted_splits(40, 10, 20, 30, seed=4)["train"] != a["train"]
    # each split has its own random stream: the test set does not move when the training set grows
    assert planted_splits(80, 10, 20, 30, seed=3)["test"] == a["test"]


def test_no_word_sequence_is_shared(splits):
    sequences = [tuple(e.words) for part in splits.values() for e in part]
    assert len(sequences) == len(set(sequences)) == 6500


def test_every_label_and_evidence_follow_the_rule(splits):
    for name, part in splits.items():
        for e in part:
            assert 6 <= len(e.words) <= 12, e
            assert (e.label, e.evidence) == rule(e.words), (name, e)
            assert (planted_label(e.words), planted_evidence(e.words)) == (e.label, e.evidence)
            assert all(e.words[p] in PLANTED - {"indeed"} for p in e.evidence)
            assert e.shortcut == ("indeed" in e.words) and e.words.count("indeed") <= 1
            if e.kind == "negation":
                assert sum(w in GOOD | BAD for w in e.words) == 1 and not {"alpha", "beta"} & set(e.words)
            else:
                assert e.kind == "xor" and not (GOOD | BAD | {"not"}) & set(e.words)


def test_kinds_and_labels_are_balanced(splits):
    for part in splits.values():
        kinds = Counter(e.kind for e in part)
        assert kinds["negation"] - kinds["xor"] in (0, 1)
        for kind in ("negation", "xor"):
            share = sum(e.label for e in part if e.kind == kind) / kinds[kind]
            assert 0.4 < share < 0.6, (kind, share)


def test_negation_flips_the_label(splits):
    assert [planted_label(s.split()) for s in ("good", "not good", "bad", "not bad")] == [1, 0, 0, 1]
    assert planted_label("not the film was good".split()) == 1  # "not" flips only right before the word
    negated = [e for e in splits["train"] if e.kind == "negation" and "not" in e.words]
    assert 0.2 < len(negated) / 2000 < 0.3  # "not" in a quarter of the negation sentences
    for e in negated:
        i = e.words.index("not")
        assert e.evidence == [i, i + 1]
        assert planted_label(e.words[:i] + e.words[i + 1 :]) == 1 - e.label  # delete "not": the label flips


def test_xor_needs_both_markers(splits):
    assert [planted_label(s.split()) for s in ("the", "alpha", "beta", "alpha beta", "beta a alpha")] == [0, 1, 1, 0, 0]
    xor = [e for e in splits["train"] if e.kind == "xor"]
    cases = Counter(tuple(sorted({"alpha", "beta"} & set(e.words))) for e in xor)
    assert set(cases) == {(), ("alpha",), ("beta",), ("alpha", "beta")}
    for marker in ("alpha", "beta"):  # a marker alone does not decide: both labels occur with it
        assert {e.label for e in xor if marker in e.words} == {0, 1}
    assert all(e.evidence == [] and e.label == 0 for e in xor if not {"alpha", "beta"} & set(e.words))
    assert all(len(e.evidence) == 2 and e.label == 0 for e in xor if {"alpha", "beta"} <= set(e.words))


def test_rule_rejects_two_polarity_words():
    with pytest.raises(ValueError, match="at most one polarity word"):
        planted_label("good and bad".split())
    with pytest.raises(ValueError, match="n_test must be a positive int, got 0"):
        planted_splits(n_test=0)


def test_shortcut_goes_with_label_1_in_training_only(splits):
    def rates(part):
        return [sum(e.shortcut for e in part if e.label == y) / sum(e.label == y for e in part) for y in (0, 1)]

    for name in ("train", "test"):
        without, with_ = rates(splits[name])
        assert without == 0.0 and abs(with_ - 0.9) < 0.03, (name, without, with_)
    without, with_ = rates(splits["shortcut_test"])
    assert abs(without - 0.5) < 0.01 and abs(with_ - 0.5) < 0.01
    for kind in ("negation", "xor"):  # exactly half of each kind and label, up to one sentence
        for y in (0, 1):
            group = [e.shortcut for e in splits["shortcut_test"] if (e.kind, e.label) == (kind, y)]
            assert abs(2 * sum(group) - len(group)) <= 1
    assert all("indeed" not in [e.words[p] for p in e.evidence] for part in splits.values() for e in part)


# ---------------------------------------------------------------------------------------- tokens, encoding
def test_tokenizer_is_word_level_with_bert_specials(tmp_path):
    tok = planted_tokenizer()
    assert [tok.token_to_id(t) for t in SPECIAL_TOKENS] == [0, 1, 2, 3]
    vocab = BertVocab.from_tokenizer(tok)
    assert vocab.size == tok.vocab_size == 4 + 72 and vocab.unk_id is None
    ids = tok.encode("not good indeed")
    assert len(ids) == 3 and tok.decode(ids) == "not good indeed" and tok.encode(["not", "good", "indeed"]) == ids
    assert tok.decode([1, *ids, 2, 0], skip_special_tokens=True) == "not good indeed"
    with pytest.raises(ValueError, match="'splendid'"):
        tok.encode("a splendid film")
    with pytest.raises(ValueError, match="outside the vocabulary"):
        tok.decode([tok.vocab_size])
    with pytest.raises(ValueError, match="repeated: \\['good'\\]"):
        WordTokenizer(["good", "good"])
    tok.save(tmp_path / "tok.json")
    again = WordTokenizer.load(tmp_path / "tok.json")
    assert again.words == tok.words and again.special_tokens == tok.special_tokens


def test_encoding_adds_cls_sep_shifts_evidence_and_masks_padding(splits):
    tok, examples = planted_tokenizer(), splits["test"][:50]
    ids, mask, labels, evidence = encode_planted(examples, tok, max_len=16)
    width = max(len(e.words) for e in examples) + 2
    assert ids.shape == mask.shape == evidence.shape == (50, width) and mask.dtype == evidence.dtype == torch.bool
    assert labels.tolist() == [e.label for e in examples]
    for row, e in enumerate(examples):
        n = len(e.words)
        assert ids[row, 0] == tok.token_to_id("[CLS]") and ids[row, n + 1] == tok.token_to_id("[SEP]")
        assert tok.decode(ids[row, 1 : n + 1].tolist()) == e.text
        assert mask[row].tolist() == [True] * (n + 2) + [False] * (width - n - 2)
        assert (ids[row, n + 2 :] == tok.token_to_id("[PAD]")).all()
        assert evidence[row].nonzero().squeeze(1).tolist() == [p + 1 for p in e.evidence]
        assert [tok.id_to_token(int(i)) for i in ids[row][evidence[row]]] == [e.words[p] for p in e.evidence]
    same_ids, same_mask = encode_for_classifier([e.text for e in examples], tok, 16)  # BERT's own encoding
    assert torch.equal(same_ids, ids) and torch.equal(same_mask, mask)


def test_encoding_never_cuts_a_sentence():
    tok = planted_tokenizer()
    long = PlantedExample(["the"] * 11 + ["good"], 1, [11], "negation", False)
    with pytest.raises(ValueError, match="max_len=13 is too short.*14 tokens"):
        encode_planted([long], tok, max_len=13)
    with pytest.raises(ValueError, match="at least one example"):
        encode_planted([], tok)


# ------------------------------------------------------------------------------------------------ recipe
def _weights(run: TrainedPlanted) -> dict:
    return {k: v.clone() for k, v in run.classifier.state_dict().items()}


def test_recipe_is_deterministic_and_cached(tmp_path):
    kwargs = dict(steps=3, batch_size=8, cache_dir=tmp_path, device="cpu", progress=False)
    first = train_planted_classifier(**kwargs)
    rebuilt = train_planted_classifier(reuse=False, save=False, **kwargs)
    loaded = train_planted_classifier(**kwargs)
    assert [p.name for p in tmp_path.iterdir()] == [next(tmp_path.iterdir()).name]  # one entry
    for run in (rebuilt, loaded):
        assert all(torch.equal(a, b) for a, b in zip(_weights(first).values(), _weights(run).values()))
        assert run.test_accuracy == first.test_accuracy and run.scores == first.scores
        assert run.history.train_loss == first.history.train_loss and len(run.history.step) == 3
    assert isinstance(loaded.classifier, BertForSequenceClassification) and not loaded.classifier.training
    assert loaded.tokenizer.words == planted_tokenizer().words
    assert loaded.settings == {**first.settings} and first.settings["steps"] == 3
    assert 0.0 <= loaded.shortcut_test_accuracy <= 1.0 and len(loaded.scores["shortcut_test_groups"]) == 4
    ids, mask, _, _ = encode_planted(planted_splits()["val"][:4], loaded.tokenizer)
    assert loaded.classifier(ids, mask).shape == (4, 2)  # the classifier contract: logits (B, C)
    other = train_planted_classifier(seed=1, reuse=False, save=False, **{**kwargs, "cache_dir": None})
    assert not torch.equal(other.classifier.classifier.weight, first.classifier.classifier.weight)


def test_recipe_rejects_bad_settings():
    with pytest.raises(ValueError, match="steps must be a positive int, got 0"):
        train_planted_classifier(steps=0, save=False)
