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


# --------------------------------------------------------------------------- BERT's embeddings (notebook 05)
import torch.nn.functional as F  # noqa: E402

from bigtut.checks.bert import check_bert_embeddings, check_pretraining_loss  # noqa: E402


def embed(parts, input_ids, token_type_ids):
    positions = torch.arange(input_ids.shape[1])  # (L,)
    x = parts.token(input_ids) + parts.position(positions) + parts.segment(token_type_ids)  # (B, L, d)
    return parts.norm(x)


def embed_by_weights(parts, input_ids, token_type_ids):  # the same with indexing and F.layer_norm
    L = input_ids.shape[1]
    x = parts.token.weight[input_ids] + parts.position.weight[:L] + parts.segment.weight[token_type_ids]
    return F.layer_norm(x, x.shape[-1:], parts.norm.weight, parts.norm.bias, parts.norm.eps)


def embed_without_segment(parts, input_ids, token_type_ids):
    return parts.norm(parts.token(input_ids) + parts.position(torch.arange(input_ids.shape[1])))


def embed_without_position(parts, input_ids, token_type_ids):
    return parts.norm(parts.token(input_ids) + parts.segment(token_type_ids))


def embed_norm_first(parts, input_ids, token_type_ids):  # LayerNorm before the sum
    return parts.norm(parts.token(input_ids)) + parts.position(torch.arange(input_ids.shape[1])) + \
        parts.segment(token_type_ids)


def embed_norm_each(parts, input_ids, token_type_ids):
    return (parts.norm(parts.token(input_ids)) + parts.norm(parts.position(torch.arange(input_ids.shape[1])))
            + parts.norm(parts.segment(token_type_ids)))


def embed_without_norm(parts, input_ids, token_type_ids):
    return parts.token(input_ids) + parts.position(torch.arange(input_ids.shape[1])) + parts.segment(token_type_ids)


def embed_positions_from_one(parts, input_ids, token_type_ids):
    positions = torch.arange(1, input_ids.shape[1] + 1)
    return parts.norm(parts.token(input_ids) + parts.position(positions) + parts.segment(token_type_ids))


def embed_all_positions(parts, input_ids, token_type_ids):  # every position embedding, not the first L
    return parts.norm(parts.token(input_ids) + parts.position.weight.sum(0) + parts.segment(token_type_ids))


def embed_segment_as_token(parts, input_ids, token_type_ids):  # segment ids looked up in the token table
    return parts.norm(parts.token(input_ids) + parts.position(torch.arange(input_ids.shape[1]))
                      + parts.token(token_type_ids))


# ---------------------------------------------------------------- the tied MLM head and the MLM + NSP loss
def loss(hidden, pooled, head, mlm_labels, nsp_labels):
    h = head.norm(F.gelu(head.dense(hidden)))  # (B, L, d)
    logits = h @ head.token_embedding.weight.T + head.bias  # (B, L, V)
    selected = mlm_labels != -100
    return F.cross_entropy(logits[selected], mlm_labels[selected]) + F.cross_entropy(head.nsp(pooled), nsp_labels)


def loss_ignore_index(hidden, pooled, head, mlm_labels, nsp_labels):  # right too: cross_entropy skips -100
    logits = head.norm(F.gelu(head.dense(hidden))) @ head.token_embedding.weight.T + head.bias
    return F.cross_entropy(logits.flatten(0, 1), mlm_labels.flatten()) + F.cross_entropy(head.nsp(pooled), nsp_labels)


def _wrong_loss(untied=False, copied=False, no_bias=False, no_transform=False, tanh=False, all_positions=False,
                per_row=False, no_nsp=False, halved=False, nsp_sum=False, mlm_sum=False, minus_100_as_0=False):
    def candidate(hidden, pooled, head, mlm_labels, nsp_labels):
        E = head.token_embedding.weight
        if untied:
            E = torch.nn.Linear(E.shape[1], E.shape[0], dtype=E.dtype).weight
        if copied:
            E = E.detach().clone()
        h = hidden if no_transform else head.norm(F.gelu(head.dense(hidden), approximate="tanh" if tanh else "none"))
        logits = h @ E.T + (0 if no_bias else head.bias)  # (B, L, V)
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
        nsp = F.cross_entropy(head.nsp(pooled), nsp_labels, reduction="sum" if nsp_sum else "mean")
        if no_nsp:
            return mlm
        return (mlm + nsp) / 2 if halved else mlm + nsp

    return candidate


def loss_in_place(hidden, pooled, head, mlm_labels, nsp_labels):  # overwrites the caller's labels
    mlm_labels[mlm_labels == -100] = -100
    mlm_labels += 0
    mlm_labels.clamp_(min=-100)
    nsp_labels.fill_(0)
    return loss(hidden, pooled, head, mlm_labels, nsp_labels)


def loss_no_grad(hidden, pooled, head, mlm_labels, nsp_labels):
    with torch.no_grad():
        return loss(hidden, pooled, head, mlm_labels, nsp_labels)


def loss_as_float(hidden, pooled, head, mlm_labels, nsp_labels):
    return loss(hidden, pooled, head, mlm_labels, nsp_labels).item()


def stub(*args):
    raise NotImplementedError


RIGHT = [(check_bert_embeddings, embed), (check_bert_embeddings, embed_by_weights), (check_pretraining_loss, loss),
         (check_pretraining_loss, loss_ignore_index)]


@pytest.mark.parametrize("checker, solution", RIGHT, ids=[s.__name__ for _, s in RIGHT])
def test_core_checkers_pass_the_right_answer(checker, solution, capsys):
    for seed in (0, 1, 2):
        checker(solution, seed=seed)
    assert capsys.readouterr().out.count("PASS") == 3


WRONG_LOSSES = ["untied", "copied", "no_bias", "no_transform", "tanh", "all_positions", "per_row", "no_nsp",
                "halved", "nsp_sum", "mlm_sum", "minus_100_as_0"]
WRONG = ([(check_bert_embeddings, f) for f in (embed_without_segment, embed_without_position, embed_norm_first,
                                               embed_norm_each, embed_without_norm, embed_positions_from_one,
                                               embed_all_positions, embed_segment_as_token, stub)]
         + [(check_pretraining_loss, _wrong_loss(**{m: True})) for m in WRONG_LOSSES]
         + [(check_pretraining_loss, f) for f in (loss_in_place, loss_no_grad, loss_as_float, stub)])
WRONG_IDS = ([f"embeddings-{f.__name__}" for c, f in WRONG if c is check_bert_embeddings]
             + [f"loss-{m}" for m in WRONG_LOSSES]
             + ["loss-in_place", "loss-no_grad", "loss-as_float", "loss-stub"])


@pytest.mark.parametrize("checker, wrong", WRONG, ids=WRONG_IDS)
def test_core_checkers_catch_wrong_answers(checker, wrong):
    for seed in (0, 1, 2):
        with pytest.raises(CheckFailure):
            checker(wrong, seed=seed)


@pytest.mark.parametrize("checker, wrong, message", [
    (check_bert_embeddings, embed_without_segment, "segment embedding is missing"),
    (check_bert_embeddings, embed_norm_first, "LayerNorm comes before the sum"),
    (check_pretraining_loss, _wrong_loss(copied=True), "not a copy"),
    (check_pretraining_loss, _wrong_loss(all_positions=True), "all B\\*L positions"),
    (check_pretraining_loss, _wrong_loss(no_nsp=True), "NSP loss is missing"),
    (check_pretraining_loss, _wrong_loss(halved=True), "averaged"),
    (check_pretraining_loss, stub, "not implemented"),
])
def test_core_checkers_name_the_mistake_and_the_seed(checker, wrong, message):
    with pytest.raises(CheckFailure, match=message):
        checker(wrong, seed=7)
    if wrong is not stub:
        with pytest.raises(CheckFailure, match="seed=7"):
            checker(wrong, seed=7)
