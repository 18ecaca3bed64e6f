"""The pretraining corpus of package docstrings: offline, deterministic for the pinned set, and disjoint from the
fine-tuning task (one test, so the ~40 s build runs once per test session)."""

import re
from pathlib import Path

import pytest

from bigtut.data.docstrings import docstring_dataset
from bigtut.data.package_docs import (
    MIN_CHARS,
    fingerprint,
    ngram_overlap,
    normalised,
    package_docstrings,
    package_versions,
    word_ngrams,
)

REQUIREMENTS = Path(__file__).parent.parent / "requirements.txt"
# The corpus of the pinned set (requirements.txt): 54 235 docstrings, 34.2 MB of text.
PINNED_FINGERPRINT = "3c49a439c80838fcb0c34e73439b2c5d3baf3d85b134e88a44d1e03edefcf923"
PINNED_COUNT = 54235


def _pins() -> dict[str, str]:
    pins = {}
    for line in REQUIREMENTS.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s;]+)", line)
        if match:
            pins[match[1].lower()] = match[2]
    return pins


def test_word_ngrams_and_overlap_on_a_toy_case():
    assert word_ngrams("Return the Sum of a", 2) == {("return", "the"), ("the", "sum"), ("sum", "of"), ("of", "a")}
    task = ["Return the sum.", "Open a file."]  # four bigrams, two of them in the corpus
    assert ngram_overlap(["return the sum of an array"], task, n=2) == 2 / 4
    assert ngram_overlap(["x"], ["a b"], n=3) == 0.0  # no 3-gram to find


@pytest.mark.slow
def test_corpus_is_pinned_and_disjoint_from_the_task():
    pins = _pins()
    for distribution, version in package_versions().items():
        assert version.split("+")[0] == pins[distribution.lower()], f"{distribution} is not the pinned version"
    corpus = package_docstrings()
    assert len(corpus) == PINNED_COUNT and fingerprint(corpus) == PINNED_FINGERPRINT
    assert all(len(text) >= MIN_CHARS for text in corpus)
    assert len(set(map(normalised, corpus))) == len(corpus), "duplicates left in the corpus"
    task = [d.text for d in docstring_dataset()]
    assert not set(map(normalised, corpus)) & set(map(normalised, task)), "a task docstring is in the corpus"
    assert ngram_overlap(corpus, task, n=8) < 0.01  # measured: 0.55 % of the task's word 8-grams
