"""Python's own reference documentation as a text corpus, and a deterministic train/validation split.

Every CPython ships the text of its language reference in ``pydoc_data.topics`` (about 465k characters of
real English technical prose: ``help('assignment')`` prints one topic). The course pretrains its GPT and
BERT on it, so nothing has to be downloaded.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")


def python_docs_topics() -> dict[str, str]:
    """The documentation topics as ``{topic name: text}``, sorted by name (79 topics on Python 3.11)."""
    from pydoc_data.topics import topics

    return {name: topics[name].strip() + "\n" for name in sorted(topics)}


def check_fraction(val_fraction: float, name: str = "val_fraction") -> float:
    """Return ``val_fraction`` if it lies strictly between 0 and 1, else raise ``ValueError``."""
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, (int, float)):
        raise TypeError(f"{name} must be a number in (0, 1), got {val_fraction!r}")
    if not 0.0 < float(val_fraction) < 1.0:
        raise ValueError(f"{name} must lie strictly between 0 and 1, got {val_fraction}")
    return float(val_fraction)


def train_val_split(items: Sequence[T], val_fraction: float = 0.1) -> tuple[Sequence[T], Sequence[T]]:
    """Split a sequence (string, list, tensor) into its first ``1 - val_fraction`` and its last part.

    Deterministic and contiguous: no shuffling, so neighbouring text never leaks across the boundary.

    Raises:
        ValueError: ``val_fraction`` is not strictly between 0 and 1, or a part would be empty.
    """
    check_fraction(val_fraction)
    n_val = round(len(items) * val_fraction)
    if n_val == 0 or n_val == len(items):
        raise ValueError(
            f"val_fraction={val_fraction} of {len(items)} items leaves an empty part; "
            "use more items or another fraction"
        )
    return items[: len(items) - n_val], items[len(items) - n_val :]


def python_docs_corpus(split: str = "all", val_fraction: float = 0.1) -> str:
    """Text of Python's reference documentation.

    Args:
        split: ``"all"``, ``"train"`` (the first ``1 - val_fraction`` of the topics sorted by name) or
            ``"val"`` (the last ``val_fraction`` of them). Splitting by topic keeps whole documents apart.
        val_fraction: share of topics held out, strictly between 0 and 1.

    Returns:
        The topics' texts joined by blank lines (one string).
    """
    topics = list(python_docs_topics().values())
    if split == "all":
        return "\n".join(topics)
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'all', 'train' or 'val', got {split!r}")
    train, val = train_val_split(topics, val_fraction)
    return "\n".join(train if split == "train" else val)
