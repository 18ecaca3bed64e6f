"""A generated retrieval task whose evidence position is known, for chapter 11: which prompt token made a GPT
write its answer?

A prompt is a row of distractors — lowercase letters and digits — in which exactly one ``@`` marks a digit,
and it ends with ``?``::

    ab7q@5ckz3?      ->  5

The rule: **the answer is the digit right after the** ``@``. The marked digit is one of :data:`VALUES`; the
distractors are drawn from :data:`LETTERS` and :data:`VALUES`, so the answer's digit may occur again elsewhere
(a copy that does not decide the answer) and a model has to find the marker, not the digit. The answer is
defined by the prompt alone, so the exact-match ceiling is 100 %; nothing but the model stands between a
prompt and its answer.

Every character is a token (:func:`retrieval_tokenizer`): a prompt of ``n`` distractor-or-marked tokens has
``n + 1`` tokens, the ``?`` last, at position ``n``, where the answer is predicted. **Evidence**: the marked
digit (``evidence_position``, the token the answer copies). The ``@`` (``marker_position``, right before it)
decides *which* token is copied: it is a cause too, recorded apart so a score can count either.

Splits are balanced: the length ``n`` (:data:`MIN_LENGTH` to :data:`MAX_LENGTH`) equally often, the marker
equally often at each of its ``n - 1`` places for each length (so the distance from the evidence to the ``?``
varies from 0 to ``n - 2``), and every answer digit equally often; no prompt occurs twice, within or across
splits.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch

from bigtut.tokenizers import CharTokenizer

__all__ = ["LETTERS", "MARKER", "MAX_LENGTH", "MIN_LENGTH", "QUERY", "RETRIEVAL_PAD", "VALUES", "RetrievalBatch",
           "RetrievalExample", "encode_retrieval", "retrieval_answer", "retrieval_example", "retrieval_splits",
           "retrieval_tokenizer"]

LETTERS = "abcdefghijklmnopqrstuvwxyz"  # distractors only
VALUES = "0123456789"  # the answers, and distractors too
MARKER, QUERY = "@", "?"  # '@' marks the answer's digit; '?' ends the prompt
MIN_LENGTH, MAX_LENGTH = 4, 16  # tokens before the '?': prompts of 5 to 17 characters
RETRIEVAL_PAD = "<pad>"  # the one special token (id 0): right padding, attention mask 0


@dataclass(frozen=True)
class RetrievalExample:
    """One prompt: its text (``prompt``), the ``answer`` (one digit), and where the evidence is — positions
    (= token positions, one token per character) of the marked digit and of the ``@``; ``length``, the tokens
    before the ``?``; and ``distance``, the tokens between the evidence and the ``?`` (0: right before it)."""

    prompt: str
    answer: str
    evidence_position: int
    marker_position: int
    length: int
    distance: int

    @property
    def query_position(self) -> int:
        """Position of the final ``?``, whose next-token prediction is the answer."""
        return len(self.prompt) - 1

    @property
    def text(self) -> str:
        """The prompt followed by its answer: what a model trained on the task writes."""
        return self.prompt + self.answer


def retrieval_answer(prompt: str) -> str:
    """The rule: the digit right after the one ``@`` of ``prompt`` (``"ab7q@5ckz3?"`` -> ``"5"``).

    Raises:
        ValueError: a prompt that is not letters and digits with one ``@`` before a digit, ending in ``?``.
    """
    return _parse(prompt)[0]


def _parse(prompt: str) -> tuple[str, int]:
    """``(answer, marker_position)`` of a prompt, checking its form."""
    if not isinstance(prompt, str) or len(prompt) < 3 or prompt[-1] != QUERY:
        raise ValueError(f"a retrieval prompt is letters and digits with one '@', then '?', got {prompt!r}")
    body = prompt[:-1]
    if any(c not in LETTERS + VALUES + MARKER for c in body):
        raise ValueError(f"a prompt holds only letters, digits and one '@' before its '?', got {prompt!r}")
    if body.count(MARKER) != 1:
        raise ValueError(f"a prompt needs exactly one marker '@', got {body.count(MARKER)} in {prompt!r}")
    m = body.index(MARKER)
    if m + 1 >= len(body) or body[m + 1] not in VALUES:
        raise ValueError(f"the marker '@' must be followed by a digit, got {prompt!r}")
    return body[m + 1], m


def retrieval_example(distractors: str, marker: int, answer: str) -> RetrievalExample:
    """The example whose ``distractors`` (letters and digits) get ``"@" + answer`` inserted before index
    ``marker`` (0 to ``len(distractors)``), then ``?``."""
    if not isinstance(marker, int) or not 0 <= marker <= len(distractors):
        raise ValueError(f"marker must be a place among the {len(distractors)} distractors (0 to "
                         f"{len(distractors)}), got {marker!r}")
    prompt = distractors[:marker] + MARKER + answer + distractors[marker:] + QUERY
    answer, m = _parse(prompt)
    n = len(prompt) - 1
    return RetrievalExample(prompt, answer, m + 1, m, n, n - 2 - m)


def _balanced(rng: random.Random, items: Sequence, n: int) -> list:
    """``n`` items cycling through ``items`` (each as often as the others, ±1), in random order."""
    out = [items[i % len(items)] for i in range(n)]
    rng.shuffle(out)
    return out


def retrieval_splits(n_train: int = 20000, n_test: int = 1000, seed: int = 0) -> dict[str, list[RetrievalExample]]:
    """Deterministic ``{"train", "test"}`` splits of generated prompts.

    Each split draws from its own random stream (``seed`` and the split's name). Per split, the length cycles
    through ``MIN_LENGTH..MAX_LENGTH``, the marker through its every place for each length, and the answer
    through the ten digits, each list shuffled apart; the distractors are drawn uniformly (with replacement)
    from the letters and digits. A prompt already drawn (in this split or an earlier one) is redrawn with new
    distractors.

    Raises:
        ValueError: a split size that is not a positive int.
    """
    sizes = {"train": n_train, "test": n_test}
    for name, n in sizes.items():
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n_{name} must be a positive int, got {n!r}")
    seen: set[str] = set()
    splits: dict[str, list[RetrievalExample]] = {}
    lengths = range(MIN_LENGTH, MAX_LENGTH + 1)
    for name, size in sizes.items():
        rng = random.Random(f"retrieval-{seed}-{name}")  # str seeds are hashed with SHA-512: stable everywhere
        counts = _balanced(rng, lengths, size)  # tokens before the '?', balanced
        answers = _balanced(rng, VALUES, size)
        places = {n: iter(_balanced(rng, range(n - 1), counts.count(n))) for n in lengths}
        examples = []
        for n, answer in zip(counts, answers):
            marker = next(places[n])  # each place equally often among prompts of length n
            while True:
                distractors = "".join(rng.choices(LETTERS + VALUES, k=n - 2))
                example = retrieval_example(distractors, marker, answer)
                if example.prompt not in seen:
                    break
            seen.add(example.prompt)
            examples.append(example)
        splits[name] = examples
    return splits


def retrieval_tokenizer() -> CharTokenizer:
    """The task's character tokenizer: ``<pad>`` (id 0), then ``? @``, the digits and the letters in sorted
    order — 39 ids."""
    return CharTokenizer(sorted(set(LETTERS + VALUES + MARKER + QUERY)), special_tokens=(RETRIEVAL_PAD,))


class RetrievalBatch(NamedTuple):
    """What :func:`encode_retrieval` returns; every ``(N, L)`` tensor is right-padded to the longest row."""

    input_ids: torch.Tensor  # (N, L) long: the prompts (and answers, with_answer=True), then <pad>
    attention_mask: torch.Tensor  # (N, L) bool: True at real tokens
    answer_ids: torch.Tensor  # (N,) long: the answer's token id
    evidence: torch.Tensor  # (N, L) bool: True at the marked digit
    marker: torch.Tensor  # (N, L) bool: True at the '@'
    answer_positions: torch.Tensor  # (N,) long: the last prompt token ('?'), whose logits predict the answer


def encode_retrieval(examples: Sequence[RetrievalExample], tokenizer: CharTokenizer, *,
                     with_answer: bool = False) -> RetrievalBatch:
    """Encode prompts (followed by their answers if ``with_answer``) as right-padded id rows.

    Raises:
        ValueError: no examples.
    """
    if not examples:
        raise ValueError("encode_retrieval needs at least one example")
    texts = [e.text if with_answer else e.prompt for e in examples]
    L = max(len(t) for t in texts)
    pad = tokenizer.token_to_id(RETRIEVAL_PAD)
    ids = torch.full((len(texts), L), pad, dtype=torch.long)  # (N, L)
    mask = torch.zeros(len(texts), L, dtype=torch.bool)  # (N, L)
    evidence, marker = torch.zeros_like(mask), torch.zeros_like(mask)  # (N, L), (N, L)
    for row, (text, e) in enumerate(zip(texts, examples)):
        ids[row, :len(text)] = torch.tensor(tokenizer.encode(text))
        mask[row, :len(text)] = True
        evidence[row, e.evidence_position] = True
        marker[row, e.marker_position] = True
    answers = torch.tensor([tokenizer.token_to_id(e.answer) for e in examples])  # (N,)
    positions = torch.tensor([e.query_position for e in examples])  # (N,)
    return RetrievalBatch(ids, mask, answers, evidence, marker, positions)
