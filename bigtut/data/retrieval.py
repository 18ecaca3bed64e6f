"""A generated key–value retrieval task whose evidence position is known, for chapter 11: which prompt token
made a GPT write its answer?

A prompt lists a few ``key=value`` pairs, each followed by ``;``, then asks for one of the keys with ``?``::

    c=7;a=2;e=0;c?      ->  7

The rule: **the answer is the value written after the queried key**. Keys are distinct letters of
:data:`KEYS` and values distinct digits of :data:`VALUES` within a prompt, so the answer is defined — the
queried key occurs once among the pairs — and the answer's digit occurs exactly once in the prompt: one
position holds it. The exact-match ceiling is therefore 100 %; nothing but the model stands between a
prompt and its answer.

Every character is a token (:func:`retrieval_tokenizer`): a prompt of ``n`` pairs has ``4n + 2`` tokens,
pair ``j`` (from 0) at positions ``4j`` (key), ``4j + 1`` (``=``), ``4j + 2`` (value), ``4j + 3`` (``;``),
the queried key at ``4n`` and ``?`` at ``4n + 1``, the last prompt token, where the answer is predicted.
**Evidence**: the value of the queried pair (``value_position``) — the token the answer copies. Its key
(``key_position``) and the query's key (``query_position``) decide *which* value is copied: they are causes
too, recorded apart so a score can count either.

Splits are balanced: the number of pairs (:data:`MIN_PAIRS` to :data:`MAX_PAIRS`) equally often, the queried
pair equally often at each place among them (so the distance to the query varies), and every answer digit
equally often; no prompt occurs twice, within or across splits.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch

from bigtut.tokenizers import CharTokenizer

__all__ = ["KEYS", "MAX_PAIRS", "MIN_PAIRS", "RETRIEVAL_PAD", "VALUES", "RetrievalBatch", "RetrievalExample",
           "encode_retrieval", "retrieval_answer", "retrieval_example", "retrieval_splits", "retrieval_tokenizer"]

KEYS = "abcdefgh"  # 8 keys: a prompt uses up to MAX_PAIRS distinct ones
VALUES = "0123456789"  # 10 values (the answers): distinct within a prompt
MIN_PAIRS, MAX_PAIRS = 2, 6  # prompts of 10 to 26 characters
RETRIEVAL_PAD = "<pad>"  # the one special token (id 0): right padding, attention mask 0


@dataclass(frozen=True)
class RetrievalExample:
    """One prompt: its text (``prompt``), the ``answer`` (one digit), and where the evidence is — positions
    (= token positions, one token per character) of the queried pair's value and key; ``n_pairs``; and
    ``distance``, the number of pairs between the queried pair and the query (0: the last pair)."""

    prompt: str
    answer: str
    value_position: int
    key_position: int
    n_pairs: int
    distance: int

    @property
    def query_position(self) -> int:
        """Position of the queried key, right before the final ``?``."""
        return len(self.prompt) - 2

    @property
    def text(self) -> str:
        """The prompt followed by its answer: what a model trained on the task writes."""
        return self.prompt + self.answer


def retrieval_answer(prompt: str) -> str:
    """The rule: the value written after the queried key of ``prompt`` (``"c=7;a=2;c?"`` -> ``"7"``).

    Raises:
        ValueError: a prompt that is not ``k=v;...;k?`` with distinct keys, the queried one among them.
    """
    return _parse(prompt)[0]


def _parse(prompt: str) -> tuple[str, int, int]:
    """``(answer, key_position, value_position)`` of a prompt, checking its form."""
    if not isinstance(prompt, str) or len(prompt) < 6 or (len(prompt) - 2) % 4 or prompt[-1] != "?":
        raise ValueError(f"a retrieval prompt is 'k=v;' pairs then 'k?', got {prompt!r}")
    pairs = [prompt[i:i + 4] for i in range(0, len(prompt) - 2, 4)]
    if any(p[1] != "=" or p[3] != ";" or p[0] not in KEYS or p[2] not in VALUES for p in pairs):
        raise ValueError(f"every pair must be <key in {KEYS}>=<digit>;, got {pairs} in {prompt!r}")
    keys = [p[0] for p in pairs]
    if len(set(keys)) != len(keys) or prompt[-2] not in keys:
        raise ValueError(f"keys must be distinct and the queried key {prompt[-2]!r} one of them, got {keys}")
    j = keys.index(prompt[-2])
    return pairs[j][2], 4 * j, 4 * j + 2


def retrieval_example(pairs: Sequence[tuple[str, str]], query: int) -> RetrievalExample:
    """The example that lists ``pairs`` (``(key, value)``, keys distinct) and asks for pair ``query``."""
    if not 0 <= query < len(pairs):
        raise ValueError(f"query must index one of the {len(pairs)} pairs, got {query}")
    prompt = "".join(f"{k}={v};" for k, v in pairs) + f"{pairs[query][0]}?"
    answer, key_position, value_position = _parse(prompt)
    return RetrievalExample(prompt, answer, value_position, key_position, len(pairs), len(pairs) - 1 - query)


def _balanced(rng: random.Random, items: Sequence, n: int) -> list:
    """``n`` items cycling through ``items`` (each as often as the others, ±1), in random order."""
    out = [items[i % len(items)] for i in range(n)]
    rng.shuffle(out)
    return out


def retrieval_splits(n_train: int = 20000, n_test: int = 1000, seed: int = 0) -> dict[str, list[RetrievalExample]]:
    """Deterministic ``{"train", "test"}`` splits of generated prompts.

    Each split draws from its own random stream (``seed`` and the split's name). Per split, the number of pairs
    cycles through ``MIN_PAIRS..MAX_PAIRS``, the queried pair through every place for each number, and the answer
    through the ten digits, each list shuffled apart; the other keys and values are drawn without replacement.
    A prompt already drawn (in this split or an earlier one) is redrawn with new keys and values.

    Raises:
        ValueError: a split size that is not a positive int.
    """
    sizes = {"train": n_train, "test": n_test}
    for name, n in sizes.items():
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"n_{name} must be a positive int, got {n!r}")
    seen: set[str] = set()
    splits: dict[str, list[RetrievalExample]] = {}
    for name, size in sizes.items():
        rng = random.Random(f"retrieval-{seed}-{name}")  # str seeds are hashed with SHA-512: stable everywhere
        counts = _balanced(rng, range(MIN_PAIRS, MAX_PAIRS + 1), size)  # number of pairs, balanced
        answers = _balanced(rng, VALUES, size)
        places = {n: iter(_balanced(rng, range(n), counts.count(n))) for n in range(MIN_PAIRS, MAX_PAIRS + 1)}
        examples = []
        for n, answer in zip(counts, answers):
            query = next(places[n])  # each place equally often among prompts of n pairs
            while True:
                keys = rng.sample(KEYS, n)
                values = rng.sample([v for v in VALUES if v != answer], n - 1)
                values.insert(query, answer)
                example = retrieval_example(list(zip(keys, values)), query)
                if example.prompt not in seen:
                    break
            seen.add(example.prompt)
            examples.append(example)
        splits[name] = examples
    return splits


def retrieval_tokenizer() -> CharTokenizer:
    """The task's character tokenizer: ``<pad>`` (id 0), then ``; = ?``, the digits and the keys in sorted
    order — 22 ids."""
    return CharTokenizer(sorted(set(KEYS + VALUES + "=;?")), special_tokens=(RETRIEVAL_PAD,))


class RetrievalBatch(NamedTuple):
    """What :func:`encode_retrieval` returns; every ``(N, L)`` tensor is right-padded to the longest row."""

    input_ids: torch.Tensor  # (N, L) long: the prompts (and answers, with_answer=True), then <pad>
    attention_mask: torch.Tensor  # (N, L) bool: True at real tokens
    answer_ids: torch.Tensor  # (N,) long: the answer's token id
    evidence: torch.Tensor  # (N, L) bool: True at the queried pair's value
    key_evidence: torch.Tensor  # (N, L) bool: True at the queried pair's key and at the query's key
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
    evidence, key_evidence = torch.zeros_like(mask), torch.zeros_like(mask)  # (N, L), (N, L)
    for row, (text, e) in enumerate(zip(texts, examples)):
        ids[row, :len(text)] = torch.tensor(tokenizer.encode(text))
        mask[row, :len(text)] = True
        evidence[row, e.value_position] = True
        key_evidence[row, [e.key_position, e.query_position]] = True
    answers = torch.tensor([tokenizer.token_to_id(e.answer) for e in examples])  # (N,)
    positions = torch.tensor([len(e.prompt) - 1 for e in examples])  # (N,)
    return RetrievalBatch(ids, mask, answers, evidence, key_evidence, positions)
