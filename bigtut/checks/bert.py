"""Checkers for notebook 05 (BERT).

=============================  ========================================================================
checker                        what the candidate must do
=============================  ========================================================================
``check_bert_embeddings``      ``embed(parts, input_ids, token_type_ids)``: token + position + segment
                               embeddings, then LayerNorm
``check_pretraining_loss``     ``pretraining_loss(hidden, pooled, head, mlm_labels, nsp_labels)``: the
                               tied MLM head and the MLM + NSP loss
``check_mask_tokens``          ``mask_tokens(ids, vocab, mask_prob, generator)``: BERT's 80/10/10 corruption
``check_nsp_pair``             ``sample_pair(documents, rng)``: one next-sentence-prediction pair, with ``a``
                               uniform over the sentences that have a successor (not a document first) and the
                               NotNext ``b`` from a random other document (not always the same one)
=============================  ========================================================================

The first two compare with :class:`bigtut.bert.BertEmbeddings` and :func:`bigtut.bert.pretraining_loss` in
float64 on random models whose every parameter is random (LayerNorm and biases too, so no term can hide
behind an initial zero), and name the usual mistake when the answer matches one. The pretraining-loss
checker also compares gradients, so a decoder that copies the embedding matrix (untied) fails even when its
value is right. The last two tasks are random, so those checkers do not compare value by value: they test the
rules every correct answer obeys (specials untouched, labels where and only where a token was selected, a
true next sentence really follows, ...) and the statistics on large samples, with tolerances of about five
standard deviations, so a correct answer fails with negligible probability (the NSP checker's toy documents
have very different lengths, so that sampling a document first, instead of a sentence, shows in the counts).
Inputs come from a private generator; every failure names the seed, so the case can be replayed with
``seed=...``. Known mistakes are named with :func:`bigtut.checks.core.matching_mistake`.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from types import SimpleNamespace

import torch
import torch.nn.functional as F

from bigtut.bert import IGNORE_INDEX, BertConfig, BertEmbeddings, BertForPreTraining, BertVocab
from bigtut.checks.core import (
    CheckFailure,
    _describe,
    assert_close,
    checker_generator,
    guarded,
    matching_mistake,
    passed,
)

__all__ = ["check_bert_embeddings", "check_mask_tokens", "check_nsp_pair", "check_pretraining_loss"]


def _fail_unless(condition, message: str, seed: int) -> None:
    if not bool(condition):
        raise CheckFailure(f"{message} (checker seed={seed})")


def _randomize_(module: torch.nn.Module, gen: torch.Generator) -> None:
    """Every parameter random (LayerNorm scales and biases too), so that no term can hide behind a 0 or a 1."""
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen, dtype=p.dtype) * 0.5)


def _randint(gen: torch.Generator, low: int, high: int) -> int:
    return int(torch.randint(low, high + 1, (1,), generator=gen))


def _embedding_error_hint(err: CheckFailure, length: int, max_len: int) -> str:
    """A hint for the usual crashes of the embeddings exercise, read off the candidate's own error."""
    text = str(err.__cause__ or err)
    if "index out of range" in text and length == max_len:
        return (f"\n  Hint: at L = max_len = {max_len} a position id reached {max_len}: position ids are 0, 1, ..., "
                f"L-1 (torch.arange(L))")
    if "must match the size" in text:
        return ("\n  Hint: add the embeddings of the input's L positions, parts.position(torch.arange(L)), not all "
                "max_len of them")
    return ""


def check_bert_embeddings(candidate: Callable, seed: int | None = None) -> None:
    """``candidate(parts, input_ids, token_type_ids) -> (B, L, d)``: BERT's input embeddings.

    ``parts`` holds the four sub-modules of a :class:`bigtut.bert.BertEmbeddings` — ``parts.token``,
    ``parts.position``, ``parts.segment`` (``nn.Embedding``) and ``parts.norm`` (``nn.LayerNorm``);
    ``input_ids`` and ``token_type_ids`` are ``(B, L)``. The answer must equal
    ``LayerNorm(E_token[x_i] + E_position[i] + E_segment[s_i])`` (dropout is off), compared with the module
    itself in float64 on random models (every parameter random), sequences shorter than ``max_len`` and of
    length 1, two and three segment types. A known mistake (a missing term, the LayerNorm in the wrong
    place) is named.
    """
    gen, seed = checker_generator(seed)
    name = "bert_embeddings"
    if not callable(candidate):
        raise CheckFailure(f"{name}: expected a function, got {_describe(candidate)}")
    count = 0
    for type_vocab in (2, 3):
        config = BertConfig(vocab_size=_randint(gen, 20, 60), max_len=_randint(gen, 10, 16),
                            type_vocab_size=type_vocab, d_model=4 * _randint(gen, 2, 4), num_layers=1, num_heads=1,
                            d_ff=8, dropout=0.0)
        emb = BertEmbeddings(config).double().eval()
        _randomize_(emb, gen)
        parts = SimpleNamespace(token=emb.token, position=emb.position, segment=emb.segment, norm=emb.norm)
        for batch, length in ((3, config.max_len), (2, config.max_len // 2), (1, 1)):
            ids = torch.randint(config.vocab_size, (batch, length), generator=gen)  # (B, L)
            segments = torch.randint(type_vocab, (batch, length), generator=gen)  # (B, L)
            segments[0, 0] = 0  # [CLS] is in segment 0
            what = (f"input_ids {tuple(ids.shape)}, token_type_ids with {type_vocab} segment types, "
                    f"d_model={config.d_model}, max_len={config.max_len} (checker seed={seed})")
            with torch.no_grad():
                tok = emb.token(ids)  # (B, L, d)
                pos = emb.position(torch.arange(length))[None]  # (1, L, d)
                seg = emb.segment(segments)  # (B, L, d)
                expected = emb(tok, segments)  # (B, L, d): the bigtut module
                try:
                    got = guarded(name, f"called with {what}", candidate, parts, ids.clone(), segments.clone())
                except CheckFailure as err:
                    raise CheckFailure(f"{err}{_embedding_error_hint(err, length, config.max_len)}") from None
            if matching_mistake(got, {"right": expected}, atol=1e-10, rtol=1e-9):
                count += 1
                continue
            bare = "the LayerNorm's weight and bias are not applied (F.layer_norm without them); use parts.norm"
            d = config.d_model
            mistake = matching_mistake(got, [
                ("the segment embedding is missing", emb.norm(tok + pos)),
                ("the position embedding is missing", emb.norm(tok + seg)),
                ("only the token embedding is used", emb.norm(tok)),
                ("the LayerNorm comes before the sum (LN(token) + position + segment)", emb.norm(tok) + pos + seg),
                ("each embedding is normalised before the sum", emb.norm(tok) + emb.norm(pos) + emb.norm(seg)),
                ("the LayerNorm is missing", tok + pos + seg),
                ("the positions start at 1; position ids are 0, 1, ..., L-1 (torch.arange(L))",
                 emb.norm(tok + emb.position(torch.arange(1, length + 1)) + seg) if length < config.max_len
                 else None),
                ("all max_len position embeddings are summed and added to every position; add position i's "
                 "embedding to position i", emb.norm(tok + emb.position.weight.sum(0) + seg)),
                ("the segment ids are looked up in the token table; use parts.segment",
                 emb.norm(tok + pos + emb.token(segments))),
                ("token_type_ids are ignored (segment 0 everywhere); look up parts.segment(token_type_ids)",
                 emb.norm(tok + pos + emb.segment(torch.zeros_like(segments)))),
                (bare, F.layer_norm(tok + pos + seg, (d,))),
                (bare, F.layer_norm(tok + pos + seg, (d,), eps=emb.norm.eps)),
                ("the token embedding is scaled by sqrt(d_model) (the original Transformer does; BERT does not)",
                 emb.norm(tok * d**0.5 + pos + seg)),
            ], atol=1e-8, rtol=1e-6)
            if mistake is not None:
                raise CheckFailure(f"{name}: {mistake} for {what}; BERT sums the token, position and segment "
                                   f"embeddings, then applies the LayerNorm once")
            assert_close(got, expected, what=name, inputs=what, atol=1e-10, rtol=1e-9)
    passed(name, f"LayerNorm(token + position + segment) matches bigtut's BertEmbeddings on {count} random "
                 f"cases")


def _loss_case(gen: torch.Generator, masked_per_row: list[int]):
    """A random pretraining head and inputs: rows with the given numbers of masked positions."""
    heads = _randint(gen, 1, 2)
    config = BertConfig(vocab_size=_randint(gen, 30, 60), max_len=16, d_model=4 * heads * _randint(gen, 1, 2),
                        num_layers=1, num_heads=heads, d_ff=8, dropout=0.0)
    model = BertForPreTraining(config).double().eval()
    _randomize_(model, gen)
    B, L, d = len(masked_per_row), _randint(gen, max(masked_per_row) + 2, 12), config.d_model
    hidden = 2 * torch.randn(B, L, d, generator=gen, dtype=torch.float64)  # (B, L, d)
    pooled = torch.tanh(torch.randn(B, d, generator=gen, dtype=torch.float64))  # (B, d)
    labels = torch.full((B, L), IGNORE_INDEX)  # (B, L)
    for row, n in enumerate(masked_per_row):
        where = torch.randperm(L - 1, generator=gen)[:n] + 1  # never position 0 ([CLS])
        labels[row, where] = torch.randint(config.vocab_size, (n,), generator=gen)
    nsp_labels = torch.arange(B) % 2  # (B,): both labels
    nsp_labels = nsp_labels[torch.randperm(B, generator=gen)]
    head = SimpleNamespace(dense=model.mlm_dense, norm=model.mlm_norm, bias=model.mlm_bias,
                           token_embedding=model.bert.embeddings.token, nsp=model.nsp)
    return model, head, hidden, pooled, labels, nsp_labels


def _loss_variants(model, hidden, pooled, labels, nsp_labels) -> tuple[torch.Tensor, dict]:
    """The right loss and the usual wrong ones (values only)."""
    E, b = model.bert.embeddings.token.weight, model.mlm_bias  # (V, d), (V,)
    selected = labels != IGNORE_INDEX  # (B, L)
    B, L = labels.shape
    logits = model.mlm_head(hidden)  # (B, L, V): bigtut's tied head
    per_position = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), reduction="none").view(B, L)  # 0 off S
    mlm = per_position[selected].mean()
    nsp_each = F.cross_entropy(model.nsp(pooled), nsp_labels, reduction="none")  # (B,)
    nsp = nsp_each.mean()
    counts = selected.sum(1)  # (B,)
    rows = counts > 0
    transformed = model.mlm_norm(F.gelu(model.mlm_dense(hidden)))  # (B, L, d)
    tanh_gelu = model.mlm_norm(F.gelu(model.mlm_dense(hidden), approximate="tanh")) @ E.T + b  # (B, L, V)

    def mlm_of(other_logits):
        return F.cross_entropy(other_logits[selected], labels[selected])

    variants = {
        "the NSP loss is missing (the answer is the MLM loss alone)": mlm,
        "the MLM loss is missing (the answer is the NSP loss alone)": nsp,
        "the two losses are averaged, (MLM + NSP) / 2, instead of added": (mlm + nsp) / 2,
        "the NSP loss is summed over the batch instead of averaged": mlm + nsp_each.sum(),
        "the MLM loss is summed over the masked positions instead of averaged": per_position.sum() + nsp,
        "the MLM loss is averaged over all B*L positions (unmasked ones counted as 0) instead of over the masked "
        "ones": per_position.sum() / (B * L) + nsp,
        "the MLM loss is averaged per sequence, then over the sequences (every masked token must count the same)":
            (per_position.sum(1)[rows] / counts[rows]).mean() + nsp,
        "positions labelled -100 are scored as token 0 (the loss must skip them)":
            F.cross_entropy(logits.flatten(0, 1), labels.clamp_min(0).flatten()) + nsp,
        "the decoder bias is missing": mlm_of(transformed @ E.T) + nsp,
        "the head's transform (dense -> GELU -> LayerNorm) is skipped": mlm_of(hidden @ E.T + b) + nsp,
        "GELU is the tanh approximation; BERT's head uses the exact (erf) GELU": mlm_of(tanh_gelu) + nsp,
        "the head's activation is ReLU; BERT's head uses GELU (F.gelu)":
            mlm_of(model.mlm_norm(F.relu(model.mlm_dense(hidden))) @ E.T + b) + nsp,
        "the LayerNorm of the head's transform is missing (dense -> GELU -> LayerNorm)":
            mlm_of(F.gelu(model.mlm_dense(hidden)) @ E.T + b) + nsp,
        "the NSP head reads hidden[:, 0] instead of pooled (the pooler's tanh(W h_[CLS]) output)":
            mlm + F.cross_entropy(model.nsp(hidden[:, 0]), nsp_labels),
        "the NSP labels are flipped (0 means IsNext)": mlm + F.cross_entropy(model.nsp(pooled), 1 - nsp_labels),
        "cross_entropy got probabilities (softmax applied first); it takes the logits":
            mlm_of((transformed @ E.T + b).softmax(-1)) + nsp,
    }
    return mlm + nsp, variants


def check_pretraining_loss(candidate: Callable, seed: int | None = None) -> None:
    """``candidate(hidden, pooled, head, mlm_labels, nsp_labels) -> loss`` (a scalar tensor): BERT's tied MLM
    head and its pretraining loss, ``L_MLM + L_NSP``.

    ``hidden`` ``(B, L, d)`` and ``pooled`` ``(B, d)`` are the encoder's outputs; ``head`` holds
    ``head.dense`` (``nn.Linear(d, d)``), ``head.norm`` (``nn.LayerNorm(d)``), ``head.bias`` (``(V,)``),
    ``head.token_embedding`` (the encoder's ``nn.Embedding(V, d)``) and ``head.nsp`` (``nn.Linear(d, 2)``).
    The MLM logits are ``LN(GELU(dense(h))) @ E.T + bias`` with ``E = head.token_embedding.weight``;
    ``L_MLM`` is the mean cross-entropy over the positions whose label is not -100, ``L_NSP`` the mean
    cross-entropy of ``head.nsp(pooled)``. Checked in float64 against :meth:`BertForPreTraining.mlm_head` and
    ``nsp`` on random heads, rows with different numbers of masked positions (one row with none): the value,
    and the gradients of every head parameter — a decoder that uses a copy of ``E`` (an untied head) gets no
    gradient into ``E`` and fails. Known mistakes are named.
    """
    gen, seed = checker_generator(seed)
    name = "pretraining_loss"
    if not callable(candidate):
        raise CheckFailure(f"{name}: expected a function, got {_describe(candidate)}")
    for masked_per_row in ([1, 3, 6, 2], [4, 0, 2]):
        model, head, hidden, pooled, labels, nsp_labels = _loss_case(gen, masked_per_row)
        what = (f"hidden {tuple(hidden.shape)}, vocabulary {model.config.vocab_size}, masked positions per row "
                f"{masked_per_row} (checker seed={seed})")
        given_labels, given_nsp = labels.clone(), nsp_labels.clone()
        model.zero_grad(set_to_none=True)
        got = guarded(name, f"called with {what}", candidate, hidden, pooled, head, given_labels, given_nsp)
        if not (torch.equal(given_labels, labels) and torch.equal(given_nsp, nsp_labels)):
            raise CheckFailure(f"{name}: changed the label tensors in place; work on copies ({what})")
        if not isinstance(got, torch.Tensor) or got.numel() != 1:
            raise CheckFailure(f"{name}: expected the loss as a scalar tensor, got {_describe(got)} for {what}")
        expected, variants = _loss_variants(model, hidden, pooled, labels, nsp_labels)
        if not matching_mistake(got.reshape(()), {"right": expected}, atol=1e-10, rtol=1e-9):
            mistake = matching_mistake(got.reshape(()), variants, atol=1e-10, rtol=1e-9)
            if mistake is not None:
                raise CheckFailure(f"{name}: {mistake}, for {what}. The loss is the mean cross-entropy over the "
                                   f"masked positions plus the mean NSP cross-entropy")
            try:
                assert_close(got.reshape(()), expected, what=name, inputs=what, atol=1e-10, rtol=1e-9)
            except CheckFailure as err:
                raise CheckFailure(f"{err}\n  Hint: the decoder must be head.token_embedding.weight transposed (tied, "
                                   f"no new matrix), plus head.bias, after dense -> GELU -> LayerNorm") from None
        if not got.requires_grad:
            raise CheckFailure(f"{name}: the loss carries no gradient (was it computed under torch.no_grad() or "
                               f"detached?) for {what}")
        guarded(name, "backward() of the returned loss", got.reshape(()).backward)
        grads = {n: (p.grad.clone() if p.grad is not None else torch.zeros_like(p))
                 for n, p in model.named_parameters()}
        model.zero_grad(set_to_none=True)
        expected.backward()
        for n, p in model.named_parameters():
            if p.grad is None:
                continue
            if n == "bert.embeddings.token.weight" and not torch.allclose(grads[n], p.grad, atol=1e-8, rtol=1e-6):
                raise CheckFailure(f"{name}: the gradient of the token-embedding matrix E is wrong for {what}: the "
                                   f"decoder must use E itself (head.token_embedding.weight, transposed), not a copy "
                                   f"or another matrix — that is what tying means")
            assert_close(grads[n], p.grad, what=f"{name} (gradient of {n})", inputs=what, atol=1e-8, rtol=1e-6)
    passed(name, "tied MLM head (E transposed + bias), mean over masked positions + mean NSP loss: values and "
                 "gradients match bigtut on 2 random cases")


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
        what = f"ids of shape {tuple(ids.shape)} with vocab size {vocab.size}, mask_prob={mask_prob}"
        out = guarded(name, f"called with {what} (checker seed={seed})", candidate, ids, vocab, mask_prob,
                      torch.Generator().manual_seed(draw_seed))
        _fail_unless(isinstance(out, tuple) and len(out) == 2, f"{name}: expected (masked_ids, labels), got "
                     f"{type(out).__name__}", seed)
        masked, labels = out
        _fail_unless(torch.equal(ids, original), f"{name}: changed its input tensor in place; work on a copy "
                     f"(ids.clone())", seed)
        for t, label in ((masked, "masked_ids"), (labels, "labels")):
            _fail_unless(isinstance(t, torch.Tensor) and t.shape == ids.shape, f"{name}: {label} must be a "
                         f"tensor of shape {tuple(ids.shape)} for {what}", seed)
        _fail_unless(not (masked == IGNORE_INDEX).any(), f"{name}: masked_ids contains {IGNORE_INDEX}: the two "
                     f"outputs are swapped; return (masked_ids, labels) in this order, for {what}", seed)
        if not (labels == IGNORE_INDEX).any():
            held = ("the original id at every position" if torch.equal(labels, ids) else
                    f"{int(labels.flatten().mode().values)} where nothing was selected")
            raise CheckFailure(f"{name}: labels must be the original id at selected positions and {IGNORE_INDEX} "
                               f"everywhere else, but no label is {IGNORE_INDEX} (they hold {held}): the loss "
                               f"skips {IGNORE_INDEX}, for {what} (checker seed={seed})")
        special = torch.isin(ids, torch.tensor(vocab.special_ids))
        selected = labels != IGNORE_INDEX
        both_ordinary = ~special[1:] & ~special[:-1]  # (B - 1, L): ordinary in a row and the next one
        alike = ((selected[1:] == selected[:-1]) | ~both_ordinary).all(1).float().mean().item()
        _fail_unless(alike < 0.5, f"{name}: the same positions are selected in every row ({alike:.0%} of the rows "
                     f"equal the next one) for {what}: draw one Bernoulli per element of ids, with probs shaped "
                     f"like ids, not one row broadcast to all", seed)
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
        again = guarded(name, f"called again with {what} (checker seed={seed})", candidate, ids, vocab, mask_prob,
                        torch.Generator().manual_seed(draw_seed))
        _fail_unless(all(torch.equal(a, b) for a, b in zip(out, again)), f"{name}: two calls with generators "
                     f"seeded alike gave different results; draw every random number with `generator=`", seed)
    only_special = torch.tensor([[vocab.cls_id, vocab.sep_id, vocab.pad_id, vocab.pad_id]])
    masked, labels = guarded(name, "called on a row of special tokens only, mask_prob=1.0", candidate, only_special,
                             vocab, 1.0, torch.Generator().manual_seed(0))
    _fail_unless(torch.equal(masked, only_special) and (labels == IGNORE_INDEX).all(), f"{name}: a row of "
                 f"special tokens only must come back unchanged with all labels {IGNORE_INDEX}", seed)
    passed(name, "specials untouched, labels only at selected positions, ~mask_prob selected, 80/10/10 "
                        "split, reproducible")


def _toy_documents(rng: random.Random) -> list[list[str]]:
    """Five documents of unique sentences ("d2 s3") of very different lengths — one of a single sentence, one
    of two, the others of 3-4, 6-7 and 8-10 — in random order, so that drawing a document first and then a
    sentence in it (instead of a sentence among all) shows in the counts."""
    sizes = [1, 2, rng.randint(3, 4), rng.randint(6, 7), rng.randint(8, 10)]
    rng.shuffle(sizes)
    return [[f"d{d} s{i}" for i in range(n)] for d, n in enumerate(sizes)]


def _count_bounds(trials: int, p_low: float, p_high: float | None = None) -> tuple[float, float]:
    """The range a count of ``trials`` draws of probability in ``[p_low, p_high]`` stays in for a right answer:
    five standard deviations (and 3 more for small counts) around each end; a miss is a ~1e-6 event."""
    p_high = p_low if p_high is None else p_high
    low = trials * p_low - 5 * (trials * p_low * (1 - p_low)) ** 0.5 - 3
    high = trials * p_high + 5 * (trials * p_high * (1 - p_high)) ** 0.5 + 3
    return low, high


def _chi_square_limit(df: int, z: float = 4.753) -> float:
    """The chi-square value a right answer exceeds with probability ~1e-6 (``z``: the one-sided normal
    quantile), by the Wilson-Hilferty approximation."""
    c = 2 / (9 * df)
    return df * (1 - c + z * c**0.5) ** 3


def check_nsp_pair(candidate: Callable, seed: int | None = None, samples: int = 2000) -> None:
    """``candidate(documents, rng) -> (a, b, label)`` must draw one next-sentence-prediction pair.

    ``documents`` is a list of documents, each a list of sentences; ``rng`` a ``random.Random``. Checked over
    ``samples`` draws from toy documents of very different lengths: ``a`` has a successor in its document;
    label 0 ("is next") pairs ``a`` with that successor, label 1 ("random") with a sentence of another
    document; ``documents`` is left unchanged; and the distributions, each within five standard deviations:

    * about half the labels are 0;
    * ``a`` is uniform over the sentences that have a successor (not a document first, then a sentence in it),
      for either label alike (else ``a`` alone would give the label away);
    * the "random" ``b`` comes from every other document at a rate between "uniform over the other documents"
      and "uniform over their sentences" (both are right; always the next document, say, is not), and is
      uniform over the sentences of its document (the last one too);
    * the same ``rng`` seed gives the same pairs.
    """
    _, seed = checker_generator(seed)
    rng = random.Random(seed)
    name = "nsp_pair"
    documents = _toy_documents(rng)
    given = [list(doc) for doc in documents]
    where = {s: (d, i) for d, doc in enumerate(documents) for i, s in enumerate(doc)}
    draw_seed = rng.randrange(2**31)
    what = f"{samples} pairs from {len(documents)} documents of {[len(doc) for doc in documents]} sentences"
    pairs = []
    sample_rng = random.Random(draw_seed)
    for _ in range(samples):
        out = guarded(name, f"called on {what} (checker seed={seed})", candidate, given, sample_rng)
        _fail_unless(isinstance(out, tuple) and len(out) == 3, f"{name}: expected a tuple (a, b, label), got "
                     f"{out!r}", seed)
        pairs.append(tuple(out))
    _fail_unless(given == documents, f"{name}: changed the documents in place (rng.shuffle, pop, ...); leave the "
                 f"caller's list as it was and draw indices instead", seed)
    follows = [a in where and b in where and where[b] == (where[a][0], where[a][1] + 1) for a, b, _ in pairs]
    _fail_unless(not (all(f == (label == 1) for f, (_, _, label) in zip(follows, pairs)) and any(follows)),
                 f"{name}: the labels are swapped: 0 means b is a's true next sentence (IsNext), 1 a random one "
                 f"(NotNext)", seed)
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
    # a: uniform over the sentences with a successor, per document and per sentence, for each label alike
    starts = [len(doc) - 1 for doc in documents]  # sentences with a successor, per document
    with_starts = [d for d, n in enumerate(starts) if n > 0]
    sentence_counts = {s: 0 for s, (d, i) in where.items() if i + 1 < len(documents[d])}
    for a, _, _ in pairs:
        sentence_counts[a] += 1
    never = [s for s, c in sentence_counts.items() if c == 0]
    _fail_unless(not never or _count_bounds(samples, 1 / sum(starts))[0] < 1, f"{name}: {never} (sentences with a "
                 f"successor) were never drawn as a in {samples} pairs: a may be any sentence but the last of its "
                 f"document (the second-to-last too: range(len(doc) - 1)); {what}", seed)
    for label, subset in ((None, pairs), (0, [p for p in pairs if p[2] == 0]), (1, [p for p in pairs if p[2] == 1])):
        counts = [sum(where[a][0] == d for a, _, _ in subset) for d in range(len(documents))]
        for d in with_starts:
            low, high = _count_bounds(len(subset), starts[d] / sum(starts))
            if not low <= counts[d] <= high:
                uniform_docs = all(abs(counts[e] - len(subset) / len(with_starts)) <= 5 * len(subset) ** 0.5 / 2 + 3
                                   for e in with_starts)
                hint = (" — that is a document drawn uniformly first, then a sentence in it" if uniform_docs else "")
                among = "of all pairs" if label is None else f"of the {len(subset)} pairs labelled {label}"
                raise CheckFailure(
                    f"{name}: a came from document d{d} ({starts[d]} of the {sum(starts)} sentences with a "
                    f"successor) in {counts[d]} {among}, expected {max(low, 0):.0f} to {high:.0f}{hint}. Draw a "
                    f"uniformly among all sentences that have a successor"
                    + ("" if label is None else ", the same way for both labels (else a alone gives the label away)")
                    + f"; {what} (checker seed={seed})")
    counts = [sum(where[a][0] == d for a, _, _ in pairs) for d in with_starts]
    expected = [samples * starts[d] / sum(starts) for d in with_starts]
    chi2 = sum((c - e) ** 2 / e for c, e in zip(counts, expected))
    _fail_unless(chi2 <= _chi_square_limit(len(with_starts) - 1), f"{name}: a came from the documents "
                 f"{[f'd{d}' for d in with_starts]} {counts} times, expected about {[round(e) for e in expected]} "
                 f"(chi-square {chi2:.0f} > {_chi_square_limit(len(with_starts) - 1):.0f}): documents weighted by "
                 f"their length, or drawn first? Draw a uniformly among all {sum(starts)} sentences that have a "
                 f"successor; {what}", seed)
    low, high = _count_bounds(samples, 1 / sum(starts))
    for s, c in sentence_counts.items():
        _fail_unless(low <= c <= high, f"{name}: {s!r} was drawn as a {c} times, expected {max(low, 0):.0f} to "
                     f"{high:.0f}: draw a uniformly among all {sum(starts)} sentences that have a successor; {what}",
                     seed)
    # b of the random pairs: from every other document, uniformly within it
    random_pairs = [(where[a][0], where[b]) for a, b, label in pairs if label == 1]
    total = sum(len(doc) for doc in documents)
    for da in with_starts:
        partners = [db for d, (db, _) in random_pairs if d == da]
        for e in range(len(documents)):
            if e == da:
                continue
            per_document, per_sentence = 1 / (len(documents) - 1), len(documents[e]) / (total - len(documents[da]))
            low, high = _count_bounds(len(partners), min(per_document, per_sentence), max(per_document, per_sentence))
            c = partners.count(e)
            _fail_unless(low <= c <= high, f"{name}: of the {len(partners)} random pairs whose a is in d{da}, {c} "
                         f"took b from d{e} ({len(documents[e])} sentences), expected {max(low, 0):.0f} to "
                         f"{high:.0f}: draw the other document at random among all the others (uniformly, or "
                         f"weighted by their sentences), not always the same one; {what}", seed)
    for e, doc in enumerate(documents):
        picks = [ib for _, (db, ib) in random_pairs if db == e]
        low, high = _count_bounds(len(picks), 1 / len(doc))
        for j in range(len(doc)):
            c = picks.count(j)
            _fail_unless(low <= c <= high, f"{name}: random b was sentence {j} of d{e} {c} times out of "
                         f"{len(picks)} b from d{e}, expected {max(low, 0):.0f} to {high:.0f}: draw b uniformly "
                         f"among all the sentences of the other document (the first and the last too); {what}", seed)
    replay_rng = random.Random(draw_seed)
    replay = [tuple(guarded(name, f"called again on {what}", candidate, given, replay_rng)) for _ in range(20)]
    _fail_unless(replay == pairs[:20], f"{name}: the same rng seed gave different pairs; draw every random "
                 f"choice from `rng`", seed)
    passed(name, f"{samples} pairs: a has a successor, is-next pairs follow, random b from other "
                        f"documents, ~50 % each, reproducible")
