"""The chapter-05 checkers pass the right answers (for several seeds) and catch the usual wrong ones.

Every wrong answer below is a small function with one mistake students really make; each is run on seeds 0, 1
and 2 and must fail with a message that names the mistake (the regular expression next to it).
"""

import math
import random

import pytest
import torch
import torch.nn.functional as F
from checker_cases import assert_fails_naming, assert_passes_on_seeds

from bigtut.bert import BertVocab, mask_tokens
from bigtut.checks import CheckFailure
from bigtut.checks.bert import check_bert_embeddings, check_mask_tokens, check_nsp_pair, check_pretraining_loss
from bigtut.data.sentences import NSPSampler

SEEDS = (0, 1, 2)


def stub(*args):
    raise NotImplementedError


# --------------------------------------------------------------------------- BERT's embeddings (exercise 1)
def embed(parts, input_ids, token_type_ids):  # notebook 05, exercise 1
    positions = torch.arange(input_ids.shape[1], device=input_ids.device)  # (L,)
    x = parts.token(input_ids) + parts.position(positions) + parts.segment(token_type_ids)  # (B, L, d)
    return parts.norm(x)


def embed_by_weights(parts, input_ids, token_type_ids):  # the same with indexing and F.layer_norm
    L = input_ids.shape[1]
    x = parts.token.weight[input_ids] + parts.position.weight[:L] + parts.segment.weight[token_type_ids]
    return F.layer_norm(x, x.shape[-1:], parts.norm.weight, parts.norm.bias, parts.norm.eps)


def _positions(input_ids):
    return torch.arange(input_ids.shape[1])


def embed_without_segment(parts, input_ids, token_type_ids):
    return parts.norm(parts.token(input_ids) + parts.position(_positions(input_ids)))


def embed_without_position(parts, input_ids, token_type_ids):
    return parts.norm(parts.token(input_ids) + parts.segment(token_type_ids))


def embed_norm_first(parts, input_ids, token_type_ids):  # LayerNorm before the sum
    return parts.norm(parts.token(input_ids)) + parts.position(_positions(input_ids)) + parts.segment(token_type_ids)


def embed_norm_each(parts, input_ids, token_type_ids):
    return (parts.norm(parts.token(input_ids)) + parts.norm(parts.position(_positions(input_ids)))
            + parts.norm(parts.segment(token_type_ids)))


def embed_without_norm(parts, input_ids, token_type_ids):
    return parts.token(input_ids) + parts.position(_positions(input_ids)) + parts.segment(token_type_ids)


def embed_positions_from_one(parts, input_ids, token_type_ids):
    positions = torch.arange(1, input_ids.shape[1] + 1)
    return parts.norm(parts.token(input_ids) + parts.position(positions) + parts.segment(token_type_ids))


def embed_all_positions(parts, input_ids, token_type_ids):  # every position embedding, not the first L
    return parts.norm(parts.token(input_ids) + parts.position.weight.sum(0) + parts.segment(token_type_ids))


def embed_segment_as_token(parts, input_ids, token_type_ids):  # segment ids looked up in the token table
    return parts.norm(parts.token(input_ids) + parts.position(_positions(input_ids)) + parts.token(token_type_ids))


def embed_segment_zero(parts, input_ids, token_type_ids):  # token_type_ids ignored: segment 0 everywhere
    return parts.norm(parts.token(input_ids) + parts.position(_positions(input_ids))
                      + parts.segment(torch.zeros_like(token_type_ids)))


def embed_norm_without_affine(parts, input_ids, token_type_ids):  # F.layer_norm without the LayerNorm's parameters
    x = parts.token(input_ids) + parts.position(_positions(input_ids)) + parts.segment(token_type_ids)
    return F.layer_norm(x, x.shape[-1:])


def embed_scaled_token(parts, input_ids, token_type_ids):  # the original Transformer's sqrt(d) scaling
    d = parts.token.weight.shape[1]
    return parts.norm(parts.token(input_ids) * math.sqrt(d) + parts.position(_positions(input_ids))
                      + parts.segment(token_type_ids))


def embed_positions_max_len(parts, input_ids, token_type_ids):  # all max_len position embeddings: wrong length
    return parts.norm(parts.token(input_ids) + parts.position.weight + parts.segment(token_type_ids))


EMBED_WRONG = {
    "without_segment": (embed_without_segment, "segment embedding is missing"),
    "without_position": (embed_without_position, "position embedding is missing"),
    "norm_first": (embed_norm_first, "LayerNorm comes before the sum"),
    "norm_each": (embed_norm_each, "each embedding is normalised"),
    "without_norm": (embed_without_norm, "LayerNorm is missing"),
    "positions_from_one": (embed_positions_from_one, "position ids are 0, 1, ..., L-1"),
    "all_positions_summed": (embed_all_positions, "all max_len position embeddings are summed"),
    "segment_as_token": (embed_segment_as_token, "segment ids are looked up in the token table"),
    "segment_zero": (embed_segment_zero, "token_type_ids are ignored"),
    "norm_without_affine": (embed_norm_without_affine, "weight and bias"),
    "scaled_token": (embed_scaled_token, "scaled by sqrt\\(d_model\\)"),
    "positions_max_len": (embed_positions_max_len, "not all max_len of them"),
    "stub": (stub, "not implemented"),
}


# ---------------------------------------------------------------- the tied MLM head and the MLM + NSP loss
def loss(hidden, pooled, head, mlm_labels, nsp_labels):  # notebook 05, exercise 2
    h = head.norm(F.gelu(head.dense(hidden)))  # (B, L, d)
    logits = h @ head.token_embedding.weight.T + head.bias  # (B, L, V)
    selected = mlm_labels != -100
    return F.cross_entropy(logits[selected], mlm_labels[selected]) + F.cross_entropy(head.nsp(pooled), nsp_labels)


def loss_ignore_index(hidden, pooled, head, mlm_labels, nsp_labels):  # right too: cross_entropy skips -100
    logits = head.norm(F.gelu(head.dense(hidden))) @ head.token_embedding.weight.T + head.bias
    return F.cross_entropy(logits.flatten(0, 1), mlm_labels.flatten()) + F.cross_entropy(head.nsp(pooled), nsp_labels)


def _wrong_loss(untied=False, copied=False, no_bias=False, no_transform=False, tanh=False, all_positions=False,
                per_row=False, no_nsp=False, halved=False, nsp_sum=False, mlm_sum=False, minus_100_as_0=False,
                relu=False, no_norm=False, nsp_from_cls=False, flipped_nsp=False, probabilities=False):
    def candidate(hidden, pooled, head, mlm_labels, nsp_labels):
        E = head.token_embedding.weight
        if untied:
            E = torch.nn.Linear(E.shape[1], E.shape[0], dtype=E.dtype).weight
        if copied:
            E = E.detach().clone()
        if no_transform:
            h = hidden
        else:
            act = F.relu(head.dense(hidden)) if relu else F.gelu(head.dense(hidden), approximate="tanh" if tanh
                                                                  else "none")
            h = act if no_norm else head.norm(act)
        logits = h @ E.T + (0 if no_bias else head.bias)  # (B, L, V)
        if probabilities:
            logits = logits.softmax(-1)
        per_position = F.cross_entropy(logits.flatten(0, 1), mlm_labels.clamp_min(0).flatten() if minus_100_as_0
                                       else mlm_labels.flatten(), reduction="none").view(mlm_labels.shape)
        selected = (mlm_labels != -100) | minus_100_as_0
        if all_positions:
            mlm = per_position.mean()
        elif per_row:
            mlm = torch.stack([r[s].mean() for r, s in zip(per_position, selected) if s.any()]).mean()
        elif mlm_sum:
            mlm = per_position[selected].sum()
        else:
            mlm = per_position[selected].mean()
        nsp_in = hidden[:, 0] if nsp_from_cls else pooled
        nsp = F.cross_entropy(head.nsp(nsp_in), 1 - nsp_labels if flipped_nsp else nsp_labels,
                              reduction="sum" if nsp_sum else "mean")
        if no_nsp:
            return mlm
        return (mlm + nsp) / 2 if halved else mlm + nsp

    return candidate


def loss_in_place(hidden, pooled, head, mlm_labels, nsp_labels):  # overwrites the caller's labels
    nsp_labels.fill_(0)
    return loss(hidden, pooled, head, mlm_labels, nsp_labels)


def loss_no_grad(hidden, pooled, head, mlm_labels, nsp_labels):
    with torch.no_grad():
        return loss(hidden, pooled, head, mlm_labels, nsp_labels)


def loss_as_float(hidden, pooled, head, mlm_labels, nsp_labels):
    return loss(hidden, pooled, head, mlm_labels, nsp_labels).item()


LOSS_WRONG = {
    "untied": (_wrong_loss(untied=True), "values differ"),
    "copied": (_wrong_loss(copied=True), "not a copy"),
    "no_bias": (_wrong_loss(no_bias=True), "decoder bias is missing"),
    "no_transform": (_wrong_loss(no_transform=True), "transform .* is skipped"),
    "tanh": (_wrong_loss(tanh=True), "tanh approximation"),
    "relu": (_wrong_loss(relu=True), "ReLU"),
    "no_norm": (_wrong_loss(no_norm=True), "LayerNorm of the head's transform is missing"),
    "all_positions": (_wrong_loss(all_positions=True), "all B\\*L positions"),
    "per_row": (_wrong_loss(per_row=True), "averaged per sequence"),
    "no_nsp": (_wrong_loss(no_nsp=True), "NSP loss is missing"),
    "halved": (_wrong_loss(halved=True), "averaged, \\(MLM \\+ NSP\\) / 2"),
    "nsp_sum": (_wrong_loss(nsp_sum=True), "NSP loss is summed"),
    "mlm_sum": (_wrong_loss(mlm_sum=True), "MLM loss is summed"),
    "minus_100_as_0": (_wrong_loss(minus_100_as_0=True), "scored as token 0"),
    "nsp_from_cls": (_wrong_loss(nsp_from_cls=True), "hidden\\[:, 0\\]"),
    "flipped_nsp": (_wrong_loss(flipped_nsp=True), "NSP labels are flipped"),
    "probabilities": (_wrong_loss(probabilities=True), "probabilities"),
    "in_place": (loss_in_place, "changed the label tensors in place"),
    "no_grad": (loss_no_grad, "carries no gradient"),
    "as_float": (loss_as_float, "scalar tensor"),
    "stub": (stub, "not implemented"),
}


# --------------------------------------------------------------------------- BERT's masking rule (exercise 3)
def notebook_mask_tokens(ids, vocab, mask_prob, generator):  # notebook 05, exercise 3
    specials = torch.tensor(vocab.special_ids)
    ordinary = torch.tensor([i for i in range(vocab.size) if i not in vocab.special_ids])
    probs = torch.full(ids.shape, float(mask_prob))
    probs[torch.isin(ids, specials)] = 0.0
    selected = torch.bernoulli(probs, generator=generator).bool()
    labels = torch.where(selected, ids, -100)
    die = torch.rand(ids.shape, generator=generator)
    random_ids = ordinary[torch.randint(len(ordinary), ids.shape, generator=generator)]
    masked = ids.clone()
    masked[selected & (die < 0.8)] = vocab.mask_id
    swap = selected & (die >= 0.8) & (die < 0.9)
    masked[swap] = random_ids[swap]
    return masked, labels


def _masker(select_specials=False, labels_everywhere=False, always_mask=False, zero_labels=False,
            special_replacements=False, ignore_generator=False, in_place=False, die_without_generator=False,
            independent_dice=False, corrupted_labels=False, swapped_outputs=False, split=(0.8, 0.9),
            same_rows=False):
    """mask_tokens with one mistake switched on."""

    def candidate(ids, vocab: BertVocab, mask_prob, generator):
        gen = None if ignore_generator else generator
        specials = torch.tensor(vocab.special_ids)
        if same_rows:  # one selection pattern drawn for a row, broadcast to every row
            probs = torch.full(ids.shape[-1:], mask_prob)
            selected = torch.bernoulli(probs, generator=gen).bool().expand(ids.shape) & ~torch.isin(ids, specials)
        else:
            probs = torch.full(ids.shape, mask_prob)
            if not select_specials:
                probs[torch.isin(ids, specials)] = 0
            selected = torch.bernoulli(probs, generator=gen).bool()
        decide = torch.rand(ids.shape, generator=None if die_without_generator else gen)
        low = 0 if special_replacements else 5
        random_ids = torch.randint(low, vocab.size, ids.shape, generator=gen)
        masked = ids if in_place else ids.clone()
        masked[selected & ((decide < split[0]) | always_mask)] = vocab.mask_id
        if independent_dice:  # a second, independent die for the random tokens: they overwrite some [MASK]s
            swap = selected & (torch.rand(ids.shape, generator=gen) < 0.1)
        else:
            swap = selected & (decide >= split[0]) & (decide < split[1]) & (not always_mask)
        masked[swap] = random_ids[swap]
        if labels_everywhere:
            labels = ids.clone()
        elif corrupted_labels:
            labels = torch.where(selected, masked, -100)
        else:
            labels = torch.where(selected, ids, 0 if zero_labels else -100)
        return (labels, masked) if swapped_outputs else (masked, labels)

    return candidate


def fixed_rate(ids, vocab, mask_prob, generator):
    return mask_tokens(ids, vocab, 0.15, generator)  # ignores mask_prob


MASK_WRONG = {
    "select_specials": (_masker(select_specials=True), "selected special tokens"),
    "labels_everywhere": (_masker(labels_everywhere=True), "-100 everywhere else"),
    "zero_labels": (_masker(zero_labels=True), "-100 everywhere else"),
    "corrupted_labels": (_masker(corrupted_labels=True), "labels at selected positions must be the original ids"),
    "swapped_outputs": (_masker(swapped_outputs=True), "outputs are swapped"),
    "always_mask": (_masker(always_mask=True), "became \\[MASK\\]"),
    "split_swapped": (_masker(split=(0.1, 0.9)), "became \\[MASK\\]"),
    "no_keep": (_masker(split=(0.8, 1.0)), "stayed unchanged"),
    "independent_dice": (_masker(independent_dice=True), "became \\[MASK\\]"),
    "special_replacements": (_masker(special_replacements=True), "replacement was a special token"),
    "ignore_generator": (_masker(ignore_generator=True), "generator"),
    "die_without_generator": (_masker(die_without_generator=True), "generator"),
    "in_place": (_masker(in_place=True), "in place"),
    "same_rows": (_masker(same_rows=True), "same positions"),
    "fixed_rate": (fixed_rate, "expected about mask_prob"),
    "stub": (stub, "not implemented"),
}


# --------------------------------------------------------------------------- NSP pairs (exercise 4)
def reference_pair(documents, rng):
    return tuple(NSPSampler(documents).sample(rng))


def notebook_pair(documents, rng):  # notebook 05, exercise 4: the other document uniform over documents
    starts = [(d, i) for d, doc in enumerate(documents) for i in range(len(doc) - 1)]
    d, i = rng.choice(starts)
    a = documents[d][i]
    if rng.random() < 0.5:
        return a, documents[d][i + 1], 0
    other = rng.choice([e for e in range(len(documents)) if e != d and documents[e]])
    return a, rng.choice(documents[other]), 1


def rejection_pair(documents, rng):  # right too: redraw until a has a successor and b is in another document
    flat = [(d, i) for d, doc in enumerate(documents) for i in range(len(doc))]
    while True:
        d, i = rng.choice(flat)
        if i + 1 < len(documents[d]):
            break
    if rng.random() < 0.5:
        return documents[d][i], documents[d][i + 1], 0
    while True:
        e, j = rng.choice(flat)
        if e != d:
            return documents[d][i], documents[e][j], 1


def _starts(documents):
    return [(d, i) for d, doc in enumerate(documents) for i in range(len(doc) - 1)]


def last_can_start(documents, rng):  # a may be the last sentence: its "next" crosses into another document
    flat = [(d, i) for d, doc in enumerate(documents) for i in range(len(doc))]
    d, i = rng.choice(flat)
    if rng.random() < 0.5 and i + 1 < len(documents[d]):
        return documents[d][i], documents[d][i + 1], 0
    other = rng.choice([e for e in range(len(documents)) if e != d and documents[e]])
    return documents[d][i], rng.choice(documents[other]), 1


def random_from_anywhere(documents, rng):  # the "random" b may come from a's own document
    d, i = rng.choice(_starts(documents))
    if rng.random() < 0.5:
        return documents[d][i], documents[d][i + 1], 0
    return documents[d][i], rng.choice([s for doc in documents for s in doc]), 1


def labels_swapped(documents, rng):
    a, b, label = reference_pair(documents, rng)
    return a, b, 1 - label


def mostly_next(documents, rng):
    a, b, label = reference_pair(documents, rng)
    if label == 1 and rng.random() < 0.5:
        return reference_pair(documents, rng)
    return a, b, label


def global_random(documents, rng):
    return reference_pair(documents, random.Random(random.random()))


def document_uniform_a(documents, rng):  # a document first, then a sentence in it
    d = rng.choice([e for e, doc in enumerate(documents) if len(doc) > 1])
    i = rng.randrange(len(documents[d]) - 1)
    if rng.random() < 0.5:
        return documents[d][i], documents[d][i + 1], 0
    other = rng.choice([e for e in range(len(documents)) if e != d])
    return documents[d][i], rng.choice(documents[other]), 1


def length_weighted_a(documents, rng):  # documents weighted by their length, not by their sentences with a successor
    candidates = [e for e, doc in enumerate(documents) if len(doc) > 1]
    d = rng.choices(candidates, weights=[len(documents[e]) for e in candidates])[0]
    i = rng.randrange(len(documents[d]) - 1)
    if rng.random() < 0.5:
        return documents[d][i], documents[d][i + 1], 0
    other = rng.choice([e for e in range(len(documents)) if e != d])
    return documents[d][i], rng.choice(documents[other]), 1


def a_differs_by_label(documents, rng):  # the label first; a by sentence for IsNext, by document for NotNext
    if rng.random() < 0.5:
        d, i = rng.choice(_starts(documents))
        return documents[d][i], documents[d][i + 1], 0
    d = rng.choice([e for e, doc in enumerate(documents) if len(doc) > 1])
    i = rng.randrange(len(documents[d]) - 1)
    other = rng.choice([e for e in range(len(documents)) if e != d])
    return documents[d][i], rng.choice(documents[other]), 1


def never_second_to_last(documents, rng):  # off by one: i in range(len(doc) - 2)
    d, i = rng.choice([(d, i) for d, doc in enumerate(documents) for i in range(len(doc) - 2)])
    if rng.random() < 0.5:
        return documents[d][i], documents[d][i + 1], 0
    other = rng.choice([e for e in range(len(documents)) if e != d])
    return documents[d][i], rng.choice(documents[other]), 1


def next_document_partner(documents, rng):  # NotNext b always from the following document
    d, i = rng.choice(_starts(documents))
    if rng.random() < 0.5:
        return documents[d][i], documents[d][i + 1], 0
    return documents[d][i], rng.choice(documents[(d + 1) % len(documents)]), 1


def first_sentence_partner(documents, rng):  # b is always the first sentence of the other document
    d, i = rng.choice(_starts(documents))
    if rng.random() < 0.5:
        return documents[d][i], documents[d][i + 1], 0
    other = rng.choice([e for e in range(len(documents)) if e != d])
    return documents[d][i], documents[other][0], 1


def partner_from_starts(documents, rng):  # b reuses the list of sentences with a successor: never a last one
    starts = _starts(documents)
    d, i = rng.choice(starts)
    if rng.random() < 0.5:
        return documents[d][i], documents[d][i + 1], 0
    e, j = rng.choice([(e, j) for e, j in starts if e != d])
    return documents[d][i], documents[e][j], 1


def same_index_partner(documents, rng):  # b is the sentence at a's index in the other document (clipped)
    d, i = rng.choice(_starts(documents))
    if rng.random() < 0.5:
        return documents[d][i], documents[d][i + 1], 0
    other = rng.choice([e for e in range(len(documents)) if e != d])
    return documents[d][i], documents[other][min(i, len(documents[other]) - 1)], 1


def shuffles_documents(documents, rng):  # picks "another" document by shuffling the caller's list in place
    d, i = rng.choice(_starts(documents))
    if rng.random() < 0.5:
        return documents[d][i], documents[d][i + 1], 0
    a, own = documents[d][i], documents[d]
    rng.shuffle(documents)
    return a, rng.choice(next(doc for doc in documents if doc is not own)), 1


def label_from_b(documents, rng):  # b drawn anywhere; the label says whether it happens to follow a
    d, i = rng.choice(_starts(documents))
    e, j = rng.choice([(e, j) for e, doc in enumerate(documents) for j in range(len(doc))])
    return documents[d][i], documents[e][j], 0 if (e, j) == (d, i + 1) else 1


NSP_WRONG = {
    "last_can_start": (last_can_start, "last sentence of its document"),
    "random_from_anywhere": (random_from_anywhere, "label 1 needs b from another document"),
    "labels_swapped": (labels_swapped, "labels are swapped"),
    "mostly_next": (mostly_next, "expected about 0.5"),
    "global_random": (global_random, "same rng seed gave different pairs"),
    "document_uniform_a": (document_uniform_a, "a document drawn uniformly first"),
    "length_weighted_a": (length_weighted_a, "Draw a uniformly among all sentences that have a successor"),
    "a_differs_by_label": (a_differs_by_label, "a came from document"),
    "never_second_to_last": (never_second_to_last, "never drawn as a"),
    "next_document_partner": (next_document_partner, "not always the same one"),
    "first_sentence_partner": (first_sentence_partner, "draw b uniformly among all the sentences"),
    "partner_from_starts": (partner_from_starts, "the first and the last too|not always the same one"),
    "same_index_partner": (same_index_partner, "draw b uniformly among all the sentences"),
    "shuffles_documents": (shuffles_documents, "changed the documents in place"),
    "label_from_b": (label_from_b, "label 1 needs b from another document"),
    "stub": (stub, "not implemented"),
}


# --------------------------------------------------------------------------- the tests
RIGHT = [
    (check_bert_embeddings, embed), (check_bert_embeddings, embed_by_weights), (check_pretraining_loss, loss),
    (check_pretraining_loss, loss_ignore_index), (check_mask_tokens, notebook_mask_tokens),
    (check_mask_tokens, mask_tokens), (check_mask_tokens, _masker()), (check_nsp_pair, notebook_pair),
    (check_nsp_pair, reference_pair), (check_nsp_pair, rejection_pair),
]


@pytest.mark.parametrize("checker, solution", RIGHT, ids=[f"{c.__name__}-{s.__name__}" for c, s in RIGHT])
def test_checkers_pass_the_right_answer(checker, solution, capsys):
    assert_passes_on_seeds(checker, solution, capsys)


WRONG = [(check_bert_embeddings, key, *value) for key, value in EMBED_WRONG.items()]
WRONG += [(check_pretraining_loss, key, *value) for key, value in LOSS_WRONG.items()]
WRONG += [(check_mask_tokens, key, *value) for key, value in MASK_WRONG.items()]
WRONG += [(check_nsp_pair, key, *value) for key, value in NSP_WRONG.items()]


@pytest.mark.parametrize("checker, mistake, wrong, message", WRONG,
                         ids=[f"{c.__name__}-{k}" for c, k, _, _ in WRONG])
def test_checkers_catch_wrong_answers_and_name_the_mistake(checker, mistake, wrong, message):
    assert_fails_naming(checker, wrong, message)


def test_at_least_five_wrong_answers_per_checker():
    for checker in (check_bert_embeddings, check_pretraining_loss, check_mask_tokens, check_nsp_pair):
        assert sum(c is checker and k != "stub" for c, k, _, _ in WRONG) >= 5, checker.__name__


def test_failure_messages_quote_the_seed():
    for checker, wrong in ((check_bert_embeddings, embed_without_segment),
                           (check_pretraining_loss, LOSS_WRONG["no_nsp"][0]),
                           (check_mask_tokens, MASK_WRONG["always_mask"][0]),
                           (check_nsp_pair, document_uniform_a), (check_nsp_pair, next_document_partner)):
        with pytest.raises(CheckFailure, match=r"seed=7"):
            checker(wrong, seed=7)


@pytest.mark.parametrize("seed", range(3, 23))
def test_nsp_checker_tells_the_right_samplers_from_the_known_holes_on_more_seeds(seed, capsys):
    """The distribution checks hold for the notebook's sampler and fail the document-uniform one and the
    next-document partner on 20 more fixed seeds (the tolerances are five standard deviations)."""
    check_nsp_pair(notebook_pair, seed=seed)
    check_nsp_pair(reference_pair, seed=seed)
    assert capsys.readouterr().out.count("PASS") == 2
    for wrong in (document_uniform_a, next_document_partner):
        with pytest.raises(CheckFailure):
            check_nsp_pair(wrong, seed=seed)


def test_committed_pass_lines_are_unchanged(capsys):
    """The notebook compares these lines byte for byte (``# NBVAL_CHECK_OUTPUT``)."""
    check_bert_embeddings(embed, seed=0)
    check_pretraining_loss(loss, seed=0)
    check_mask_tokens(notebook_mask_tokens, seed=0)
    check_nsp_pair(notebook_pair, seed=0)
    assert capsys.readouterr().out.splitlines() == [
        "PASS bert_embeddings: LayerNorm(token + position + segment) matches bigtut's BertEmbeddings on 6 random "
        "cases",
        "PASS pretraining_loss: tied MLM head (E transposed + bias), mean over masked positions + mean NSP loss: "
        "values and gradients match bigtut on 2 random cases",
        "PASS mask_tokens: specials untouched, labels only at selected positions, ~mask_prob selected, 80/10/10 "
        "split, reproducible",
        "PASS nsp_pair: 2000 pairs: a has a successor, is-next pairs follow, random b from other documents, ~50 % "
        "each, reproducible",
    ]
