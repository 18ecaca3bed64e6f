"""Checker for chapter 00's tokenizer exercise: one merge step of byte-pair encoding.

The student writes ``bpe_merge_step(words, new_id) -> (pair, merged_words)`` where ``words`` is a list of
``(symbols, count)``: each distinct piece of the text as a list of token ids, with how often it occurs. One step

1. counts every adjacent pair inside each piece, weighted by the piece's count (never across two pieces);
2. picks the most frequent pair; ties go to the smallest pair, ``(a, b)`` before ``(a, c)`` when ``b < c``;
3. replaces every occurrence of that pair, left to right and without overlap, by ``new_id`` in every piece,
   returning new lists (the input is left as it was).

Repeating the step from the bytes of a text must give exactly the merges of :meth:`BPETokenizer.train`.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Callable

import torch

from bigtut.checks.core import CheckFailure, _describe, checker_generator, guarded, passed
from bigtut.tokenizers import _PIECE, BPETokenizer, _merge

Words = list[tuple[list[int], int]]
NAME = "bpe_merge_step"


def bpe_merge_step_reference(words: Words, new_id: int) -> tuple[tuple[int, int], Words]:
    """The course's merge step (as :meth:`BPETokenizer.train` does it, written out once)."""
    counts: Counter = Counter()
    for symbols, n in words:
        for pair in zip(symbols, symbols[1:]):
            counts[pair] += n
    best = max(counts.items(), key=lambda item: (item[1], -item[0][0], -item[0][1]))[0]
    return best, [(_merge(symbols, best, new_id), n) for symbols, n in words]


def pieces_of(text: str) -> Words:
    """The distinct pieces of ``text`` (as :class:`BPETokenizer` splits it) as byte lists with their counts."""
    return [(list(piece.encode("utf-8")), n) for piece, n in Counter(_PIECE.findall(text)).items()]


def _cases(seed: int) -> list[tuple[str, Words, int]]:
    """Hand-made traps (ties, overlaps, counts that outvote frequency, pairs across pieces) and random words."""
    gen, _ = checker_generator(seed)
    cases = [
        ("a tie between (1, 2) and (3, 4), both seen twice", [([3, 4, 1, 2], 2)], 9),
        ("a tie where the smaller pair is seen last", [([5, 6], 1), ([1, 9], 1), ([1, 2], 1)], 300),
        ("a tie on the first id: (4, 7) before (4, 8)", [([4, 8, 4, 7], 3)], 256),
        ("'aaa' and 'aaaa': overlapping pairs merge left to right", [([97, 97, 97], 1), ([97, 97, 97, 97], 1)], 256),
        ("counts decide, not how many pieces hold a pair", [([1, 2], 5), ([3, 4], 1), ([3, 4, 9], 1)], 256),
        ("a pair across two pieces must not be counted", [([1, 2], 1), ([2, 3], 1), ([3, 1], 1),
                                                          ([3, 1], 1), ([1, 2], 1)], 260),
        ("one piece of a single symbol beside the pairs", [([7], 50), ([5, 5, 5], 2)], 256),
        ("'aaa' holds the pair (a, a) twice: count overlapping pairs", [([7, 7, 7], 1), ([1, 2], 1)], 256),
        ("(2, 1) is another pair than (1, 2): leave it alone", [([1, 2], 3), ([2, 1, 2], 1), ([2, 1], 1)], 256),
    ]
    for i in range(3):
        words = []
        for _ in range(int(torch.randint(3, 8, (1,), generator=gen))):
            length = int(torch.randint(1, 9, (1,), generator=gen))
            symbols = torch.randint(0, 4, (length,), generator=gen).tolist()
            words.append((symbols, int(torch.randint(1, 6, (1,), generator=gen))))
        if not any(len(s) > 1 for s, _ in words):
            words.append(([0, 1], 1))
        cases.append((f"random pieces #{i} (ids 0-3, seed {seed})", words, 256 + i))
    return cases


def _compare(candidate: Callable, description: str, words: Words, new_id: int) -> None:
    expected_pair, expected_words = bpe_merge_step_reference(words, new_id)
    given = copy.deepcopy(words)
    result = guarded(NAME, f"bpe_merge_step on {description}", candidate, given, new_id)
    if not (isinstance(result, (tuple, list)) and len(result) == 2):
        raise CheckFailure(f"{NAME}: return (pair, merged_words), got {_describe(result)} for {description}")
    pair, merged = result
    if given != words:
        raise CheckFailure(f"{NAME}: the input was changed in place for {description}; build new lists instead "
                           f"(got {_describe(given)})")
    try:
        pair = tuple(int(i) for i in pair)
    except (TypeError, ValueError):
        raise CheckFailure(f"{NAME}: the pair must be two ids, got {_describe(pair)} for {description}") from None
    if pair != expected_pair:
        counts: Counter = Counter()
        for symbols, n in words:
            for p in zip(symbols, symbols[1:]):
                counts[p] += n
        raise CheckFailure(f"{NAME}: picked {pair} (count {counts.get(pair, 0)}) for {description}; expected "
                           f"{expected_pair} (count {counts[expected_pair]}). Count pairs inside each piece, "
                           f"weighted by the piece's count; on a tie take the smallest pair.\n  pieces: "
                           f"{_describe(words)}")
    try:
        merged = [(list(map(int, symbols)), int(n)) for symbols, n in merged]
    except (TypeError, ValueError):
        raise CheckFailure(f"{NAME}: merged_words must be a list of (symbols, count), got {_describe(merged)} "
                           f"for {description}") from None
    for (got, got_n), (want, want_n), (before, _) in zip(merged, expected_words, words):
        if got != want or got_n != want_n:
            raise CheckFailure(f"{NAME}: merging {pair} into {new_id} in {before} (count {want_n}) gave {got} "
                               f"(count {got_n}); expected {want} (count {want_n}) for {description}. Replace "
                               f"the pair left to right, without overlap, in every piece.")
    if len(merged) != len(expected_words):
        raise CheckFailure(f"{NAME}: expected {len(expected_words)} pieces back, got {len(merged)} for "
                           f"{description}")


def check_bpe_merge_step(candidate: Callable[[Words, int], tuple[tuple[int, int], Words]],
                         seed: int | None = None, merges: int = 20) -> None:
    """Check one BPE merge step on traps and random pieces, then repeat it ``merges`` times from the bytes of a
    text and require exactly the merges of ``BPETokenizer.train``."""
    if not callable(candidate):
        raise CheckFailure(f"{NAME}: expected a function, got {_describe(candidate)}")
    _, seed = checker_generator(seed)
    for description, words, new_id in _cases(seed):
        _compare(candidate, description, words, new_id)
    text = ("The for statement iterates over the items of any sequence. The while statement repeats while "
            "the condition is true; the if statement chooses, and the try statement catches an exception.")
    words, learned = pieces_of(text), []
    for new_id in range(256, 256 + merges):
        pair, words = guarded(NAME, f"merge {new_id - 256} on a sentence", candidate, words, new_id)
        learned.append(tuple(int(i) for i in pair))
    reference = BPETokenizer.train(text, vocab_size=256 + merges).merges
    if learned != list(reference):
        first = next(i for i, (a, b) in enumerate(zip(learned, reference)) if a != b)
        raise CheckFailure(f"{NAME}: repeated {merges} times on a sentence, merge {first} was {learned[first]}; "
                           f"BPETokenizer.train learned {reference[first]} (earlier merges agree)")
    passed(NAME, f"ties, overlaps, weighted counts and {merges} merges equal to BPETokenizer.train")
