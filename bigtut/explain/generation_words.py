"""Token scores read as words, and the course's tokenizers made acceptable to captum's LLM attribution.

Shape legend:  L tokens   W words
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import torch

from bigtut.explain.common import as_numpy

__all__ = ["WORD_PATTERN", "CaptumTokenizer", "WordScores", "encode_text", "word_scores"]

WORD_PATTERN = r"\w+|[^\w\s]+"  # a word: a run of letters/digits/_, or a run of punctuation ("==", "()")


def encode_text(tokenizer: Any, text: str, *, name: str = "text") -> torch.Tensor:
    """``text`` as ids ``(1, L)`` for the generation methods (a prompt, or a continuation to explain).

    Refused with a ``ValueError`` naming the fix: an empty text, and a text the tokenizer cannot encode exactly —
    characters outside its vocabulary, which a tokenizer with an unknown token would silently turn into
    ``<unk>`` (found because the ids do not decode back to the text). ``name`` is how the message calls it.
    """
    if not isinstance(text, str):
        raise TypeError(f"{name} must be a string, got {type(text).__name__}")
    if not text:
        raise ValueError(f"{name} is empty: give at least one character to encode")
    ids = list(tokenizer.encode(text))
    back = tokenizer.decode(ids)
    if back != text:
        unknown = sorted({c for c in text if c not in back}) or sorted(set(text) - set(back))
        raise ValueError(f"{name} {text!r} cannot be encoded by this tokenizer: it reads back as {back!r}; the "
                         f"characters {unknown} are not in its vocabulary: remove or replace them")
    return torch.tensor([ids], dtype=torch.long)


class WordScores(NamedTuple):
    """``words`` (W strings), their ``scores`` ``(..., W)``, their character ``spans`` in the text (W pairs),
    and ``whitespace`` ``(...,)``: the score of characters in no word (spaces, newlines), so that
    ``scores.sum(-1) + whitespace`` equals the tokens' total."""

    words: list[str]
    scores: np.ndarray
    spans: list[tuple[int, int]]
    whitespace: np.ndarray


def word_scores(scores: Any, tokens: Sequence[str], rule: str = "sum") -> WordScores:
    """Aggregate token scores ``(..., L)`` (characters or subwords) to words.

    The text is ``"".join(tokens)`` (each token as its characters, e.g. ``tok.decode([i])`` each). A word is a
    run of word characters or a run of punctuation (:data:`WORD_PATTERN`); whitespace belongs to no word.
    ``rule="sum"``: a word scores the sum of its tokens' scores; a token whose characters fall in several words
    (or partly in whitespace) shares its score among them in proportion to its characters in each, and the
    share of its whitespace characters goes to ``whitespace`` — so nothing is lost: ``scores.sum(-1) +
    whitespace`` is the tokens' total. ``rule="max"``: a word scores the largest score of the tokens that touch
    it (no sharing; ``whitespace`` is then 0).
    """
    if rule not in ("sum", "max"):
        raise ValueError(f"rule must be 'sum' or 'max', got {rule!r}")
    if isinstance(tokens, str) or not all(isinstance(t, str) for t in tokens):
        raise TypeError("tokens must be a sequence of strings, one per token (e.g. [tok.decode([i]) for i in ids])")
    values = as_numpy(getattr(scores, "attributions", scores), "scores")  # (..., L)
    if values.ndim == 0 or values.shape[-1] != len(tokens):
        raise ValueError(f"scores must end in one score per token ({len(tokens)}), got shape {values.shape}")
    text = "".join(tokens)
    matches = list(re.finditer(WORD_PATTERN, text))
    owner = np.full(len(text), -1)  # (characters,): the word of each character, -1 for whitespace
    for w, match in enumerate(matches):
        owner[match.start():match.end()] = w
    share = np.zeros((len(tokens), len(matches) + 1))  # (L, W + 1): last column = whitespace
    start = 0
    for i, token in enumerate(tokens):
        for c in owner[start:start + len(token)]:
            share[i, c] += 1 / len(token)
        start += len(token)
    if rule == "sum":
        total = values @ share  # (..., W + 1)
    else:
        touches = share[:, :-1] > 0  # (L, W)
        total = np.where(touches, values[..., :, None], -np.inf).max(-2)  # (..., W)
        total = np.concatenate([total, np.zeros(values.shape[:-1] + (1,))], -1)
    return WordScores([m.group() for m in matches], total[..., :-1], [m.span() for m in matches], total[..., -1])


class CaptumTokenizer:
    """What captum 0.9's ``LLMAttribution``/``LLMGradientAttribution`` and ``TextTokenInput`` ask of a tokenizer
    (``encode``, ``decode``, ``convert_ids_to_tokens``, ``convert_tokens_to_ids``, a call with offsets),
    built on a course tokenizer with ``encode(text) -> ids`` and ``decode(ids) -> text`` (``CharTokenizer``).
    No special tokens are added: captum's prompt and target are the ids the course methods get."""

    def __init__(self, tokenizer: Any):
        self.tokenizer = tokenizer

    def encode(self, text: str, add_special_tokens: bool = True, return_tensors: str | None = None):
        ids = list(self.tokenizer.encode(text))
        return torch.tensor([ids]) if return_tensors == "pt" else ids

    def decode(self, token_ids: Any) -> str:
        ids = token_ids.tolist() if isinstance(token_ids, torch.Tensor) else token_ids
        return self.tokenizer.decode([ids] if isinstance(ids, int) else list(ids))

    def convert_ids_to_tokens(self, token_ids: Any) -> Any:
        return self.decode(token_ids) if isinstance(token_ids, int) else [self.decode([i]) for i in token_ids]

    def convert_tokens_to_ids(self, tokens: Any) -> Any:
        return self.encode(tokens)[0] if isinstance(tokens, str) else [self.encode(t)[0] for t in tokens]

    def __call__(self, text: str, return_offsets_mapping: bool = False, add_special_tokens: bool = True, **_: Any):
        ids, offsets, start = self.encode(text), [], 0
        for i in ids:
            end = start + len(self.decode([i]))
            offsets.append((start, end))
            start = end
        return {"input_ids": ids, "offset_mapping": offsets}
