"""The chapter-05 checkers pass the reference and fail plausible mistakes (not only stubs)."""

import random

import pytest
import torch

from bigtut.bert import BertVocab, mask_tokens
from bigtut.checks import CheckFailure
from bigtut.checks.bert import check_mask_tokens, check_nsp_pair
from bigtut.data.sentences import NSPSampler


def test_mask_tokens_checker_passes_the_reference(capsys):
    check_mask_tokens(mask_tokens, seed=0)
    assert capsys.readouterr().out.startswith("PASS mask_tokens")


def _masker(select_specials=False, labels_everywhere=False, always_mask=False, zero_labels=False,
            special_replacements=False, ignore_generator=False, in_place=False):
    """mask_tokens with one mistake switched on."""

    def candidate(ids, vocab: BertVocab, mask_prob, generator):
        gen = None if ignore_generator else generator
        specials = torch.tensor(vocab.special_ids)
        probs = torch.full(ids.shape, mask_prob)
        if not select_specials:
            probs[torch.isin(ids, specials)] = 0
        selected = torch.bernoulli(probs, generator=gen).bool()
        labels = ids.clone() if labels_everywhere else torch.where(selected, ids, 0 if zero_labels else -100)
        decide = torch.rand(ids.shape, generator=gen)
        low = 0 if special_replacements else 5
        random_ids = torch.randint(low, vocab.size, ids.shape, generator=gen)
        masked = ids if in_place else ids.clone()
        masked[selected & ((decide < 0.8) | always_mask)] = vocab.mask_id
        swap = selected & (decide >= 0.8) & (decide < 0.9) & (not always_mask)
        masked[swap] = random_ids[swap]
        return masked, labels

    return candidate


def test_my_masker_without_mistakes_passes(capsys):
    check_mask_tokens(_masker(), seed=1)
    assert capsys.readouterr().out.startswith("PASS mask_tokens")


@pytest.mark.parametrize("mistake", ["select_specials", "labels_everywhere", "always_mask", "zero_labels",
                                     "special_replacements", "ignore_generator", "in_place"])
def test_mask_tokens_checker_catches(mistake):
    with pytest.raises(CheckFailure):
        check_mask_tokens(_masker(**{mistake: True}), seed=2)


def test_mask_tokens_checker_catches_a_stub_and_a_wrong_rate():
    def stub(ids, vocab, mask_prob, generator):
        raise NotImplementedError

    def fixed_rate(ids, vocab, mask_prob, generator):
        return mask_tokens(ids, vocab, 0.15, generator)  # ignores mask_prob

    for candidate in (stub, fixed_rate):
        with pytest.raises(CheckFailure):
            check_mask_tokens(candidate, seed=3)


def reference_pair(documents, rng):
    return tuple(NSPSampler(documents).sample(rng))


def test_nsp_checker_passes_the_reference(capsys):
    check_nsp_pair(reference_pair, seed=0)
    assert capsys.readouterr().out.startswith("PASS nsp_pair")


def _last_can_start(documents, rng):  # a may be the last sentence: its "next" crosses into another document
    flat = [(d, i) for d, doc in enumerate(documents) for i in range(len(doc))]
    d, i = rng.choice(flat)
    if rng.random() < 0.5 and i + 1 < len(documents[d]):
        return documents[d][i], documents[d][i + 1], 0
    other = rng.choice([e for e in range(len(documents)) if e != d and documents[e]])
    return documents[d][i], rng.choice(documents[other]), 1


def _random_from_anywhere(documents, rng):  # the "random" b may come from a's own document
    d, i = rng.choice([(d, i) for d, doc in enumerate(documents) for i in range(len(doc) - 1)])
    if rng.random() < 0.5:
        return documents[d][i], documents[d][i + 1], 0
    return documents[d][i], rng.choice([s for doc in documents for s in doc]), 1


def _labels_swapped(documents, rng):
    a, b, label = reference_pair(documents, rng)
    return a, b, 1 - label


def _mostly_next(documents, rng):
    a, b, label = reference_pair(documents, rng)
    if label == 1 and rng.random() < 0.5:
        return reference_pair(documents, rng)
    return a, b, label


def _global_random(documents, rng):
    return reference_pair(documents, random.Random(random.random()))


@pytest.mark.parametrize("candidate", [_last_can_start, _random_from_anywhere, _labels_swapped, _mostly_next,
                                       _global_random])
def test_nsp_checker_catches(candidate):
    with pytest.raises(CheckFailure):
        check_nsp_pair(candidate, seed=4)
