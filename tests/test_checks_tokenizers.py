"""The BPE merge-step checker: the right answer passes on seeds 0-2, and the mistakes students make fail with a
message naming them."""

from collections import Counter

import pytest

from bigtut.checks.core import CheckFailure
from bigtut.checks.tokenizers import bpe_merge_step_reference, check_bpe_merge_step
from bigtut.tokenizers import BPETokenizer


def merge_left_to_right(symbols, pair, new_id):
    out, i = [], 0
    while i < len(symbols):
        if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == pair:
            out.append(new_id)
            i += 2
        else:
            out.append(symbols[i])
            i += 1
    return out


def solution(words, new_id):
    counts = Counter()
    for symbols, n in words:
        for pair in zip(symbols, symbols[1:]):
            counts[pair] += n
    best = min(counts, key=lambda pair: (-counts[pair], pair))
    return best, [(merge_left_to_right(symbols, best, new_id), n) for symbols, n in words]


def unweighted(words, new_id):  # counts each piece once, whatever its count
    counts = Counter(pair for symbols, _ in words for pair in zip(symbols, symbols[1:]))
    best = min(counts, key=lambda pair: (-counts[pair], pair))
    return best, [(merge_left_to_right(s, best, new_id), n) for s, n in words]


def largest_on_tie(words, new_id):
    counts = Counter()
    for symbols, n in words:
        for pair in zip(symbols, symbols[1:]):
            counts[pair] += n
    best = max(counts, key=lambda pair: (counts[pair], pair))
    return best, [(merge_left_to_right(s, best, new_id), n) for s, n in words]


def first_seen_on_tie(words, new_id):  # Counter.most_common keeps insertion order on ties
    counts = Counter()
    for symbols, n in words:
        for pair in zip(symbols, symbols[1:]):
            counts[pair] += n
    best = counts.most_common(1)[0][0]
    return best, [(merge_left_to_right(s, best, new_id), n) for s, n in words]


def across_pieces(words, new_id):  # joins the pieces before counting
    flat = [(t, n) for symbols, n in words for t in symbols]
    counts = Counter()
    for (a, n), (b, _) in zip(flat, flat[1:]):
        counts[(a, b)] += n
    best = min(counts, key=lambda pair: (-counts[pair], pair))
    return best, [(merge_left_to_right(s, best, new_id), n) for s, n in words]


def overlapping(words, new_id):  # replaces every position where the pair starts, overlaps included
    best, _ = solution(words, new_id)
    out = []
    for symbols, n in words:
        merged, i = [], 0
        while i < len(symbols):
            if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == best:
                merged.append(new_id)
                i += 1 if i + 2 < len(symbols) and symbols[i + 2] == best[1] == best[0] else 2
            else:
                merged.append(symbols[i])
                i += 1
        out.append((merged, n))
    return best, out


def right_to_left(words, new_id):
    best, _ = solution(words, new_id)
    return best, [(merge_left_to_right(s[::-1], best[::-1], new_id)[::-1], n) for s, n in words]


def in_place(words, new_id):
    best, merged = solution(words, new_id)
    for (symbols, _), (new, _) in zip(words, merged):
        symbols[:] = new
    return best, words


def drops_counts(words, new_id):
    best, merged = solution(words, new_id)
    return best, [(s, 1) for s, _ in merged]


def first_piece_only(words, new_id):
    best, merged = solution(words, new_id)
    return best, [merged[0]] + list(words[1:])


def wrong_new_id(words, new_id):
    best, _ = solution(words, new_id + 1)
    return best, [(merge_left_to_right(s, best, new_id + 1), n) for s, n in words]


def counts_without_overlap(words, new_id):  # 'aaa' counted as one (a, a), as str.count would
    counts = Counter()
    for symbols, n in words:
        i = 0
        while i + 1 < len(symbols):
            counts[(symbols[i], symbols[i + 1])] += n
            i += 2 if symbols[i] == symbols[i + 1] else 1
    best = min(counts, key=lambda pair: (-counts[pair], pair))
    return best, [(merge_left_to_right(s, best, new_id), n) for s, n in words]


def unordered_merge(words, new_id):  # also merges the reversed pair
    best, _ = solution(words, new_id)
    return best, [(merge_left_to_right(merge_left_to_right(s, best, new_id), best[::-1], new_id), n)
                  for s, n in words]


def tie_on_second_id_first(words, new_id):  # ties broken on b, then a
    counts = Counter()
    for symbols, n in words:
        for pair in zip(symbols, symbols[1:]):
            counts[pair] += n
    best = min(counts, key=lambda pair: (-counts[pair], pair[1], pair[0]))
    return best, [(merge_left_to_right(s, best, new_id), n) for s, n in words]


def as_lists(words, new_id):  # correct too: a list [pair, merged] of lists, pieces as tuples
    best, merged = solution(words, new_id)
    return [list(best), [[tuple(s), n] for s, n in merged]]


def stub(words, new_id):
    raise NotImplementedError


@pytest.mark.parametrize("seed", [0, 1, 2, None])
def test_the_solution_and_the_reference_pass(seed, capsys):
    check_bpe_merge_step(solution, seed=seed)
    check_bpe_merge_step(bpe_merge_step_reference, seed=seed)
    check_bpe_merge_step(as_lists, seed=seed)
    assert capsys.readouterr().out.count("PASS bpe_merge_step") == 3


@pytest.mark.parametrize("wrong, says", [
    (unweighted, "weighted by the piece's count"), (largest_on_tie, "smallest pair"),
    (first_seen_on_tie, "smallest pair"), (across_pieces, "inside each piece"),
    (overlapping, "without overlap"), (right_to_left, "left to right"), (in_place, "changed in place"),
    (drops_counts, "count"), (first_piece_only, "every piece"), (wrong_new_id, "into"),
    (counts_without_overlap, "count overlapping pairs"), (unordered_merge, "another pair"),
    (tie_on_second_id_first, "smallest pair"),
    (stub, "not implemented"),
])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_plausible_mistakes_fail_with_their_name(wrong, says, seed):
    with pytest.raises(CheckFailure, match=says):
        check_bpe_merge_step(wrong, seed=seed)


def test_the_reference_repeats_into_bpetokenizer_train():
    text = "the theme of the thesis: then the other three"
    from bigtut.checks.tokenizers import pieces_of
    words, merges = pieces_of(text), []
    for new_id in range(256, 266):
        pair, words = bpe_merge_step_reference(words, new_id)
        merges.append(pair)
    assert merges == BPETokenizer.train(text, vocab_size=266).merges
