"""Checkers for notebook 05 (BERT).

=======================  ==============================================================================
checker                  what the candidate must do
=======================  ==============================================================================
``check_mask_tokens``    ``mask_tokens(ids, vocab, mask_prob, generator)``: BERT's 80/10/10 corruption
``check_nsp_pair``       ``sample_pair(documents, rng)``: one next-sentence-prediction pair
=======================  ==============================================================================

Both tasks are random, so the checkers do not compare with the reference value by value: they test the
rules every correct answer obeys (specials untouched, labels where and only where a token was selected, a
true next sentence really follows, ...) and the statistics on large samples, with tolerances of about five
standard deviations, so a correct answer fails with negligible probability. Inputs come from a private
generator; every failure names the seed, so the case can be replayed with ``seed=...``.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import torch

from bigtut.bert import IGNORE_INDEX, BertVocab
from bigtut.checks.core import CheckFailure, _call, checker_generator, passed

__all__ = ["check_mask_tokens", "check_nsp_pair"]


def _fail_unless(condition, message: str, seed: int) -> None:
    if not bool(condition):
        raise CheckFailure(f"{message} (checker seed={seed})")


def _mask_case(gen: torch.Generator, vocab: BertVocab, rows: int, cols: int) -> torch.Tensor:
    """Rows of ordinary ids framed like BERT inputs: [CLS] ... [SEP] ... [SEP] then padding."""
    ids = torch.randint(5, vocab.size, (rows, cols), generator=gen)  # (B, L)
    ids[:, 0], ids[:, cols // 3], ids[:, -cols // 8 - 1] = vocab.cls_id, vocab.sep_id, vocab.sep_id
    ids[:, -cols // 8 :] = vocab.pad_id
    ids[::5, cols // 2] = vocab.mask_id  # specials may occur inside the text too
    ids[::7, cols // 2 + 1] = vocab.unk_id
    return ids


def check_mask_tokens(candidate: Callable, seed: int | None = None) -> None:
    """``candidate(ids, vocab, mask_prob, generator) -> (masked_ids, labels)`` must follow BERT's rule.

    ``vocab`` is a :class:`bigtut.bert.BertVocab`. Checked on large random batches: specials are never
    selected; ``labels`` is the original id at selected positions and -100 elsewhere; unselected positions
    are unchanged; about ``mask_prob`` of the ordinary tokens are selected, and of those about 80 % become
    [MASK], 10 % a random ordinary token, 10 % stay; the same generator seed gives the same result.
    """
    gen, seed = checker_generator(seed)
    name = "mask_tokens"
    vocab = BertVocab(size=int(torch.randint(30, 80, (1,), generator=gen)), pad_id=0, cls_id=1, sep_id=2,
                      mask_id=3, unk_id=4)
    for mask_prob in (0.15, 0.4):
        ids = _mask_case(gen, vocab, 96, 128)  # (B, L)
        original = ids.clone()
        draw_seed = int(torch.randint(2**31, (1,), generator=gen))
        out = _call(candidate, name, (ids, vocab, mask_prob, torch.Generator().manual_seed(draw_seed)), {})
        what = f"ids of shape {tuple(ids.shape)} with vocab size {vocab.size}, mask_prob={mask_prob}"
        _fail_unless(isinstance(out, tuple) and len(out) == 2, f"{name}: expected (masked_ids, labels), got "
                     f"{type(out).__name__}", seed)
        masked, labels = out
        _fail_unless(torch.equal(ids, original), f"{name}: changed its input tensor in place; work on a copy "
                     f"(ids.clone())", seed)
        for t, label in ((masked, "masked_ids"), (labels, "labels")):
            _fail_unless(isinstance(t, torch.Tensor) and t.shape == ids.shape, f"{name}: {label} must be a "
                         f"tensor of shape {tuple(ids.shape)} for {what}", seed)
        special = torch.isin(ids, torch.tensor(vocab.special_ids))
        selected = labels != IGNORE_INDEX
        _fail_unless(not selected[special].any(), f"{name}: selected special tokens ([CLS]/[SEP]/[PAD]/[MASK]/"
                     f"[UNK]) for {what}; they must never be selected", seed)
        _fail_unless(torch.equal(masked[special], ids[special]), f"{name}: changed special tokens", seed)
        _fail_unless(torch.equal(labels[selected], ids[selected]), f"{name}: labels at selected positions "
                     f"must be the original ids (and {IGNORE_INDEX} everywhere else) for {what}", seed)
        _fail_unless(torch.equal(masked[~selected], ids[~selected]), f"{name}: changed positions whose label is "
                     f"{IGNORE_INDEX}; only selected positions may change", seed)
        n_ordinary, n = int((~special).sum()), int(selected.sum())
        share = n / n_ordinary
        tol = 5 * (mask_prob * (1 - mask_prob) / n_ordinary) ** 0.5
        _fail_unless(abs(share - mask_prob) < tol, f"{name}: selected {share:.3f} of the ordinary tokens, "
                     f"expected about mask_prob={mask_prob} for {what}", seed)
        became_mask = float((masked[selected] == vocab.mask_id).sum()) / n
        kept = float((masked[selected] == ids[selected]).sum()) / n
        replaced = masked[selected & (masked != vocab.mask_id) & (masked != ids)]
        tol = 5 * (0.09 / n) ** 0.5 + 0.01
        _fail_unless(abs(became_mask - 0.8) < tol and abs(kept - 0.1) < tol + 1 / vocab.size,
                     f"{name}: of the selected tokens {became_mask:.3f} became [MASK] and {kept:.3f} stayed "
                     f"unchanged; expected about 0.8 and 0.1 (the other 0.1 random tokens) for {what}", seed)
        _fail_unless(not torch.isin(replaced, torch.tensor(vocab.special_ids)).any(), f"{name}: a random "
                     f"replacement was a special token; draw replacements from the ordinary ids only", seed)
        _fail_unless(len(replaced.unique()) > vocab.size // 3, f"{name}: the random replacements take only "
                     f"{len(replaced.unique())} distinct values; draw them uniformly from the ordinary ids", seed)
        again = _call(candidate, name, (ids, vocab, mask_prob, torch.Generator().manual_seed(draw_seed)), {})
        _fail_unless(all(torch.equal(a, b) for a, b in zip(out, again)), f"{name}: two calls with generators "
                     f"seeded alike gave different results; draw every random number with `generator=`", seed)
    only_special = torch.tensor([[vocab.cls_id, vocab.sep_id, vocab.pad_id, vocab.pad_id]])
    masked, labels = _call(candidate, name, (only_special, vocab, 1.0, torch.Generator().manual_seed(0)), {})
    _fail_unless(torch.equal(masked, only_special) and (labels == IGNORE_INDEX).all(), f"{name}: a row of "
                 f"special tokens only must come back unchanged with all labels {IGNORE_INDEX}", seed)
    passed(name, "specials untouched, labels only at selected positions, ~mask_prob selected, 80/10/10 "
                        "split, reproducible")


def _toy_documents(rng: random.Random) -> list[list[str]]:
    """Five or six documents of unique sentences ("d2 s3"), one of them a single sentence."""
    sizes = [rng.randint(2, 9) for _ in range(rng.randint(4, 5))] + [1]
    rng.shuffle(sizes)
    return [[f"d{d} s{i}" for i in range(n)] for d, n in enumerate(sizes)]


def check_nsp_pair(candidate: Callable, seed: int | None = None, samples: int = 2000) -> None:
    """``candidate(documents, rng) -> (a, b, label)`` must draw one next-sentence-prediction pair.

    ``documents`` is a list of documents, each a list of sentences; ``rng`` a ``random.Random``. Checked over
    ``samples`` draws: ``a`` has a successor in its document; label 0 ("is next") pairs ``a`` with that
    successor, label 1 ("random") with a sentence of another document; about half the labels are 0; random
    ``b`` come from several documents; the same ``rng`` seed gives the same pairs.
    """
    _, seed = checker_generator(seed)
    rng = random.Random(seed)
    name = "nsp_pair"
    documents = _toy_documents(rng)
    where = {s: (d, i) for d, doc in enumerate(documents) for i, s in enumerate(doc)}
    draw_seed = rng.randrange(2**31)
    pairs = []
    sample_rng = random.Random(draw_seed)
    for _ in range(samples):
        out = _call(candidate, name, (documents, sample_rng), {})
        _fail_unless(isinstance(out, tuple) and len(out) == 3, f"{name}: expected a tuple (a, b, label), got "
                     f"{out!r}", seed)
        pairs.append(tuple(out))
    for a, b, label in pairs:
        _fail_unless(a in where and b in where, f"{name}: ({a!r}, {b!r}) are not sentences of the documents",
                     seed)
        _fail_unless(label in (0, 1), f"{name}: label must be 0 (is next) or 1 (random), got {label!r}", seed)
        (da, ia), (db, ib) = where[a], where[b]
        _fail_unless(ia + 1 < len(documents[da]), f"{name}: a={a!r} is the last sentence of its document; "
                     f"choose a among sentences that have a successor", seed)
        if label == 0:
            _fail_unless(db == da and ib == ia + 1, f"{name}: label 0 means b follows a, but got a={a!r}, b={b!r}",
                         seed)
        else:
            _fail_unless(db != da, f"{name}: label 1 needs b from another document, got a={a!r}, b={b!r}", seed)
    share = sum(p[2] == 0 for p in pairs) / samples
    _fail_unless(abs(share - 0.5) < 5 * (0.25 / samples) ** 0.5, f"{name}: {share:.3f} of the pairs are "
                 f"'is next'; expected about 0.5", seed)
    random_docs = {where[b][0] for _, b, label in pairs if label == 1}
    _fail_unless(len(random_docs) >= 3, f"{name}: random b came from only {len(random_docs)} document(s); draw "
                 f"it from any other document", seed)
    starts = {a for a, _, _ in pairs}
    _fail_unless(len(starts) > len(where) // 2, f"{name}: only {len(starts)} different sentences were used as "
                 f"a; draw a at random", seed)
    replay_rng = random.Random(draw_seed)
    replay = [tuple(_call(candidate, name, (documents, replay_rng), {})) for _ in range(20)]
    _fail_unless(replay == pairs[:20], f"{name}: the same rng seed gave different pairs; draw every random "
                 f"choice from `rng`", seed)
    passed(name, f"{samples} pairs: a has a successor, is-next pairs follow, random b from other "
                        f"documents, ~50 % each, reproducible")
