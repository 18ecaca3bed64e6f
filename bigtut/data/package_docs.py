"""In-domain unlabelled text for BERT pretraining: the docstrings of the third-party packages the course installs.

Chapter 05 fine-tunes on standard-library docstrings (:mod:`bigtut.data.docstrings`). Pretraining pays off when
the unlabelled text resembles the task's, and the nearest text a laptop holds offline is the documentation of the
scientific Python stack itself: NumPy, SciPy, scikit-learn, PyTorch, pandas, Matplotlib, Transformers, ... —
tens of megabytes of technical English in the same genre as the task, written by other people about other code.

The corpus is read from the installed source files with :mod:`ast` (nothing is imported, nothing downloaded), in a
fixed order (packages as listed, files by path, docstrings in source order), deduplicated, and with every docstring
that also occurs in the fine-tuning task removed. It therefore depends only on the pinned package versions
(``requirements.txt``); ``tests/test_package_docs.py`` pins its fingerprint for the pinned set.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.metadata
import importlib.util
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from functools import lru_cache
from pathlib import Path

#: import name -> distribution name (for the version), in the order the corpus reads them
PACKAGES: dict[str, str] = {
    "numpy": "numpy", "scipy": "scipy", "sklearn": "scikit-learn", "torch": "torch", "pandas": "pandas",
    "matplotlib": "matplotlib", "transformers": "transformers", "sympy": "sympy", "networkx": "networkx",
    "skimage": "scikit-image",
}
MIN_CHARS = 40  # as the task: shorter docstrings ("Return self.") are boilerplate
_DOCUMENTED = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


def _source_files(package: str) -> Iterator[Path]:
    """Every ``.py`` file of an installed package, sorted by path (its tests included: they are prose too)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"package {package!r} is not installed (run `make setup`)")
    for root in sorted(spec.submodule_search_locations):
        for folder, subfolders, files in os.walk(root):
            subfolders.sort()
            yield from (Path(folder, name) for name in sorted(files) if name.endswith(".py"))


def _docstrings_in(path: Path) -> Iterator[str]:
    """The cleaned docstrings of a source file's module, classes and functions, in source order."""
    try:
        tree = ast.parse(path.read_text(encoding="utf-8", errors="replace"))
    except (SyntaxError, ValueError):  # a template or a file for another Python version
        return
    nodes = sorted((n for n in ast.walk(tree) if isinstance(n, _DOCUMENTED)), key=lambda n: getattr(n, "lineno", 0))
    for node in nodes:
        text = ast.get_docstring(node, clean=True)
        if text:
            yield text


def normalised(text: str) -> str:
    """Whitespace collapsed: how two docstrings are compared for sameness."""
    return " ".join(text.split())


@lru_cache(maxsize=4)
def package_docstrings(packages: tuple[str, ...] = tuple(PACKAGES), exclude: frozenset[str] | None = None
                       ) -> tuple[str, ...]:
    """The corpus: every docstring of ``packages`` of at least ``MIN_CHARS`` characters, once, in a fixed order.

    ``exclude``: normalised texts to leave out; by default the docstrings of the fine-tuning task
    (:func:`bigtut.data.docstring_dataset`), so that no task example is ever seen during pretraining.
    """
    if exclude is None:
        from bigtut.data.docstrings import docstring_dataset

        exclude = frozenset(normalised(d.text) for d in docstring_dataset())
    seen: set[str] = set(exclude)
    corpus: list[str] = []
    for package in packages:
        for path in _source_files(package):
            for text in _docstrings_in(path):
                key = normalised(text)
                if len(text) >= MIN_CHARS and key not in seen:
                    seen.add(key)
                    corpus.append(text)
    return tuple(corpus)


def package_versions(packages: Iterable[str] = PACKAGES) -> dict[str, str]:
    """``{distribution: version}`` of the packages the corpus reads (what its content depends on)."""
    return {PACKAGES.get(p, p): importlib.metadata.version(PACKAGES.get(p, p)) for p in packages}


def fingerprint(texts: Sequence[str]) -> str:
    """SHA-256 of the texts in order: the same corpus, byte for byte, gives the same fingerprint."""
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode("utf-8"))
        digest.update(b"\x00")
    return digest.hexdigest()


_WORD = re.compile(r"\w+")


def word_ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    """The set of lower-cased word ``n``-grams of a text."""
    words = _WORD.findall(text.lower())
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def ngram_overlap(corpus: Sequence[str], task: Sequence[str], n: int = 8) -> float:
    """Share of the task's distinct word ``n``-grams that also occur somewhere in the corpus (0: none)."""
    wanted = set().union(*(word_ngrams(t, n) for t in task))
    if not wanted:
        return 0.0
    found = set()
    for text in corpus:
        found |= word_ngrams(text, n) & wanted
    return len(found) / len(wanted)
