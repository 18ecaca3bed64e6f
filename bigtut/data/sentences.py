"""Sentences of Python's documentation, and sentence pairs for BERT's next-sentence prediction (NSP).

A *document* is one documentation topic, kept as its list of prose sentences in reading order (code blocks,
grammar rules and headings are left out). An NSP pair ``(a, b, label)`` takes a sentence ``a`` that has a
successor in its document, then, with a fair coin, either that successor (label 0, "is next") or a sentence
of another document (label 1, "random"). Because ``a`` is chosen the same way for both labels, ``a`` alone
says nothing about the label.

Splits are by topic, exactly as :func:`bigtut.data.python_docs_corpus`: a training pair never holds a
validation sentence.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from typing import NamedTuple

import torch

from bigtut.data.corpus import check_fraction, python_docs_topics, train_val_split

__all__ = ["NSPPair", "NSPSampler", "docs_sentences", "encode_pairs", "sample_nsp_pairs", "split_sentences"]

IS_NEXT, IS_RANDOM = 0, 1  # NSP labels, as in Hugging Face's BertForPreTraining
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'(*])")  # a full stop, then a capital (or quote) opens the next
_UNDERLINE = re.compile(r"^[*=\-~^]{3,}$")


class NSPPair(NamedTuple):
    """One next-sentence-prediction example: sentences ``a`` and ``b``, ``label`` 0 = is next, 1 = random."""

    a: str
    b: str
    label: int


def split_sentences(text: str, min_chars: int = 20) -> list[str]:
    """The prose sentences of a documentation text, in order.

    Paragraphs are separated by blank lines; indented paragraphs (code, grammar) and headings (a line
    underlined with ``***`` or ``===``) are skipped. Lines are joined, runs of spaces collapsed, and the
    paragraph is cut after ``.``, ``!`` or ``?`` followed by a capital letter. Sentences shorter than
    ``min_chars`` characters are dropped.
    """
    sentences = []
    for paragraph in re.split(r"\n\s*\n", text):
        lines = [line for line in paragraph.split("\n") if line.strip()]
        if not lines or lines[0].startswith((" ", "\t")) or any(_UNDERLINE.match(x.strip()) for x in lines):
            continue
        joined = re.sub(r"\s+", " ", " ".join(lines)).strip()
        sentences += [s for s in _SENTENCE_END.split(joined) if len(s) >= min_chars]
    return sentences


def docs_sentences(split: str = "train", val_fraction: float = 0.1, min_chars: int = 20,
                   docstrings: bool = False, source: str = "python_docs") -> list[list[str]]:
    """One list of sentences per document of ``split`` (``"all"``, ``"train"`` or ``"val"``).

    ``source="python_docs"``: the documents are the documentation topics, split as in
    :func:`bigtut.data.python_docs_corpus` (same ``val_fraction``). ``source="packages"``: every docstring of
    :func:`bigtut.data.package_docstrings` is a document; every ``round(1 / val_fraction)``-th one (counting
    from 0) is validation, so both parts sample every package. With ``docstrings=True`` every docstring of the
    same split of :func:`bigtut.data.docstring_splits` is one more document (its text only, never its label;
    ``"all"`` includes the test docstrings, ``"train"`` and ``"val"`` never do). Documents with fewer than two
    sentences are dropped (they cannot give an "is next" pair).
    """
    if split not in ("all", "train", "val"):
        raise ValueError(f"split must be 'all', 'train' or 'val', got {split!r}")
    if source == "python_docs":
        texts = list(python_docs_topics().values())
        if split != "all":
            train, val = train_val_split(texts, val_fraction)
            texts = list(train if split == "train" else val)
    elif source == "packages":
        from bigtut.data.package_docs import package_docstrings

        check_fraction(val_fraction)
        every = round(1 / val_fraction)
        texts = [t for i, t in enumerate(package_docstrings())
                 if split == "all" or (i % every == 0) == (split == "val")]
    else:
        raise ValueError(f"source must be 'python_docs' or 'packages', got {source!r}")
    if docstrings:
        from bigtut.data.docstrings import docstring_splits

        parts = docstring_splits()
        texts += [d.text for name in (("train", "val", "test") if split == "all" else (split,)) for d in parts[name]]
    documents = [split_sentences(text, min_chars) for text in texts]
    return [doc for doc in documents if len(doc) >= 2]


def _check_documents(documents: Sequence[Sequence[str]]) -> None:
    if isinstance(documents, str) or len(documents) < 2:
        raise ValueError(f"NSP needs at least two documents (a list of lists of sentences), got "
                         f"{len(documents) if not isinstance(documents, str) else 'a string'}")
    if not any(len(doc) >= 2 for doc in documents):
        raise ValueError("NSP needs a document with at least two sentences")


class NSPSampler:
    """Draws NSP pairs from ``documents`` (a list of documents, each a list of sentences in order).

    ``a`` is a uniformly chosen sentence that has a successor in its document; with probability 1/2 ``b`` is
    that successor (label 0), otherwise a uniformly chosen sentence of another document (label 1).
    """

    def __init__(self, documents: Sequence[Sequence[str]]):
        _check_documents(documents)
        self.documents = [list(doc) for doc in documents]
        self.starts = [(d, i) for d, doc in enumerate(self.documents) for i in range(len(doc) - 1)]
        self.anywhere = [(d, i) for d, doc in enumerate(self.documents) for i in range(len(doc))]

    def sample(self, rng: random.Random) -> NSPPair:
        """One pair, drawn with ``rng``."""
        d, i = rng.choice(self.starts)  # a sentence with a successor
        return self.pair_at(d, i, rng)

    def pair_at(self, d: int, i: int, rng: random.Random) -> NSPPair:
        """The pair whose ``a`` is sentence ``i`` of document ``d`` (it must have a successor): ``b`` is that
        successor or, half the time (drawn with ``rng``), a uniform sentence of another document."""
        a = self.documents[d][i]
        if rng.random() < 0.5:
            return NSPPair(a, self.documents[d][i + 1], IS_NEXT)
        while True:  # a uniform sentence of any other document
            other, j = rng.choice(self.anywhere)
            if other != d:
                return NSPPair(a, self.documents[other][j], IS_RANDOM)

    def pairs(self, n: int, seed: int = 0) -> list[NSPPair]:
        """``n`` pairs drawn with ``random.Random(seed)`` (reproducible)."""
        if not isinstance(n, int) or n < 0:
            raise ValueError(f"n must be a non-negative int, got {n!r}")
        rng = random.Random(seed)
        return [self.sample(rng) for _ in range(n)]


def sample_nsp_pairs(documents: Sequence[Sequence[str]], n: int, seed: int = 0) -> list[NSPPair]:
    """``n`` pairs of :class:`NSPSampler` drawn with ``random.Random(seed)``."""
    return NSPSampler(documents).pairs(n, seed)


def encode_pairs(pairs: Sequence[NSPPair], tokenizer, max_len: int, cls_id: int, sep_id: int,
                 pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Encode pairs as ``[CLS] a [SEP] b [SEP]`` + padding, BERT's input format.

    When a pair is too long, the longer sentence loses characters until it fits: ``a`` from its start and
    ``b`` from its end, so the junction between them — the evidence for NSP — survives.

    Returns:
        ``(ids, token_type_ids, lengths, labels)``: ``ids`` and ``token_type_ids`` ``(N, max_len)`` (segment 0
        for ``[CLS] a [SEP]``, 1 for ``b [SEP]``, 0 on padding), ``lengths`` ``(N,)`` real tokens per row,
        ``labels`` ``(N,)`` the NSP labels.
    """
    if not isinstance(max_len, int) or max_len < 5:
        raise ValueError(f"max_len must be an int >= 5 (3 special tokens and one token per sentence), "
                         f"got {max_len!r}")
    room = max_len - 3
    ids = torch.full((len(pairs), max_len), pad_id, dtype=torch.long)  # (N, L)
    segments = torch.zeros(len(pairs), max_len, dtype=torch.long)  # (N, L)
    lengths = torch.zeros(len(pairs), dtype=torch.long)  # (N,)
    for row, (a, b, _) in enumerate(pairs):
        a_ids, b_ids = list(tokenizer.encode(a)), list(tokenizer.encode(b))
        keep_a, keep_b = len(a_ids), len(b_ids)
        while keep_a + keep_b > room:  # shorten the longer one, one token at a time
            if keep_a >= keep_b:
                keep_a -= 1
            else:
                keep_b -= 1
        a_ids, b_ids = a_ids[len(a_ids) - keep_a :], b_ids[:keep_b]  # a keeps its end, b its start
        tokens = [cls_id, *a_ids, sep_id, *b_ids, sep_id]
        ids[row, : len(tokens)] = torch.tensor(tokens)
        segments[row, len(a_ids) + 2 : len(tokens)] = 1
        lengths[row] = len(tokens)
    labels = torch.tensor([p[2] for p in pairs], dtype=torch.long)  # (N,)
    return ids, segments, lengths, labels
