"""A real, offline text-classification task: which family of the standard library does a docstring come from?

The examples are the docstrings of public functions, classes and methods of standard-library modules, each
labelled with the family of its module (filesystem, text, math, ...). They are real English written by
many people, need no download, and carry evidence a reader can judge ("socket", "thread", "path", ...),
which chapters 06–09 use to ask whether an explanation points at the words the model really relies on.

The set depends only on the Python version (the course pins 3.11): same examples, same splits, everywhere.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import warnings
from dataclasses import dataclass
from functools import lru_cache

from bigtut.data.corpus import check_fraction

#: Module families: label name -> modules whose public docstrings carry that label.
FAMILIES: dict[str, tuple[str, ...]] = {
    "filesystem": ("os.path", "pathlib", "shutil", "glob", "fnmatch", "tempfile", "filecmp", "stat", "fileinput"),
    "text": ("string", "re", "textwrap", "difflib", "unicodedata", "html", "html.parser", "shlex", "locale",
             "builtins.str"),
    "math": ("math", "cmath", "statistics", "fractions", "decimal", "random", "numbers"),
    "networking": ("socket", "http.client", "urllib.request", "urllib.parse", "smtplib", "ftplib", "ssl",
                   "ipaddress", "http.server", "socketserver", "imaplib", "poplib"),
    "time": ("time", "datetime", "calendar", "zoneinfo", "sched"),
    "concurrency": ("threading", "multiprocessing", "concurrent.futures", "asyncio", "queue", "subprocess",
                    "selectors", "multiprocessing.pool"),
    "data formats": ("json", "csv", "pickle", "struct", "base64", "zipfile", "tarfile", "gzip",
                     "xml.etree.ElementTree", "configparser", "plistlib", "binascii", "bz2", "lzma"),
}
LABELS: tuple[str, ...] = tuple(FAMILIES)
MIN_CHARS = 40  # shorter docstrings ("Return self.") carry too little evidence to classify
MAX_PER_FAMILY = 150  # keeps the classes roughly balanced (the smallest family has ~110)


@dataclass(frozen=True)
class Docstring:
    """One example: ``text`` (the cleaned docstring), ``label`` (index into ``LABELS``), ``source`` (qualified name)."""

    text: str
    label: int
    source: str


def _public_objects(module_name: str):
    """(qualified name, object) for the public functions and classes of a module, and their methods."""
    if module_name == "builtins.str":
        yield from ((f"str.{n}", getattr(str, n)) for n in sorted(vars(str)) if not n.startswith("_"))
        return
    module = importlib.import_module(module_name)
    names = getattr(module, "__all__", None) or [n for n in dir(module) if not n.startswith("_")]
    for name in sorted(names):
        obj = getattr(module, name, None)
        if not (inspect.isfunction(obj) or inspect.isbuiltin(obj) or inspect.isclass(obj)):
            continue
        yield f"{module_name}.{name}", obj
        if inspect.isclass(obj):
            for member_name in sorted(vars(obj)):
                member = vars(obj)[member_name]
                if isinstance(member, (staticmethod, classmethod)):
                    member = member.__func__
                if not member_name.startswith("_") and callable(member):
                    yield f"{module_name}.{name}.{member_name}", member


def _stable_key(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


@lru_cache(maxsize=1)
def docstring_dataset() -> tuple[Docstring, ...]:
    """All examples, de-duplicated, at most ``MAX_PER_FAMILY`` per family, in a fixed order.

    A docstring that occurs under two families (shared base classes, aliases) is dropped, since its label
    would be ambiguous; one that occurs twice in the same family is kept once.
    """
    seen: dict[str, set[int]] = {}
    source_of: dict[str, str] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for label, modules in enumerate(FAMILIES.values()):
            for module_name in modules:
                for qualname, obj in _public_objects(module_name):
                    doc = inspect.getdoc(obj) if not inspect.isclass(obj) else inspect.cleandoc(obj.__doc__ or "")
                    if not doc or len(doc) < MIN_CHARS:
                        continue
                    seen.setdefault(doc, set()).add(label)
                    source_of.setdefault(doc, qualname)
    per_family: dict[int, list[Docstring]] = {i: [] for i in range(len(LABELS))}
    for doc, labels in seen.items():
        if len(labels) == 1:
            (label,) = labels
            per_family[label].append(Docstring(doc, label, source_of[doc]))
    examples: list[Docstring] = []
    for items in per_family.values():
        items.sort(key=lambda d: _stable_key(d.source))  # a fixed pseudo-random order
        examples.extend(items[:MAX_PER_FAMILY])
    examples.sort(key=lambda d: _stable_key(d.source + d.text))
    return tuple(examples)


def docstring_splits(val_fraction: float = 0.15, test_fraction: float = 0.15) -> dict[str, list[Docstring]]:
    """Disjoint, deterministic ``{"train", "val", "test"}`` splits, stratified by family.

    Raises:
        ValueError: a fraction outside (0, 1), or fractions that leave no training data.
    """
    check_fraction(val_fraction, "val_fraction")
    check_fraction(test_fraction, "test_fraction")
    if val_fraction + test_fraction >= 1:
        raise ValueError(f"val_fraction + test_fraction must be below 1, got {val_fraction} + {test_fraction}")
    splits: dict[str, list[Docstring]] = {"train": [], "val": [], "test": []}
    for label in range(len(LABELS)):
        items = [d for d in docstring_dataset() if d.label == label]
        n_test, n_val = round(len(items) * test_fraction), round(len(items) * val_fraction)
        splits["test"] += items[:n_test]
        splits["val"] += items[n_test : n_test + n_val]
        splits["train"] += items[n_test + n_val :]
    for part in splits.values():
        part.sort(key=lambda d: _stable_key(d.source + d.text))
    return splits
