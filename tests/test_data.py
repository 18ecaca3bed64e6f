from collections import Counter

import pytest

from bigtut.data import (
    LABELS,
    breast_cancer,
    digits,
    docstring_dataset,
    docstring_splits,
    python_docs_corpus,
    python_docs_topics,
    train_val_split,
)


def test_corpus_is_the_reference_documentation():
    text = python_docs_corpus()
    assert len(text) > 400_000
    assert "assignment statement" in text.lower()
    topics = python_docs_topics()
    assert list(topics) == sorted(topics)


def test_corpus_train_and_val_are_disjoint_topics_in_order():
    train, val = python_docs_corpus("train"), python_docs_corpus("val")
    topics = list(python_docs_topics().values())
    n_val = round(len(topics) * 0.1)
    assert val == "\n".join(topics[-n_val:])
    assert train == "\n".join(topics[:-n_val])
    assert len(val) > 10_000


def test_corpus_rejects_unknown_split():
    with pytest.raises(ValueError, match="'test'"):
        python_docs_corpus("test")


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.2, 1.5])
def test_split_fraction_outside_open_interval(fraction):
    with pytest.raises(ValueError, match=r"strictly between 0 and 1, got"):
        train_val_split(list(range(100)), fraction)
    with pytest.raises(ValueError, match="between 0 and 1"):
        python_docs_corpus("train", val_fraction=fraction)


def test_split_is_contiguous_and_complete():
    items = list(range(10))
    train, val = train_val_split(items, 0.3)
    assert train + val == items and val == [7, 8, 9]
    with pytest.raises(ValueError, match="empty"):
        train_val_split([1, 2], 0.1)


def test_docstring_dataset_is_balanced_and_deduplicated():
    data = docstring_dataset()
    counts = Counter(d.label for d in data)
    assert set(counts) == set(range(len(LABELS)))
    assert max(counts.values()) <= 1.5 * min(counts.values())
    texts = [d.text for d in data]
    assert len(texts) == len(set(texts))
    assert all(len(t) >= 40 for t in texts)


def test_docstring_splits_are_disjoint_stratified_and_deterministic():
    splits = docstring_splits()
    texts = {name: {d.text for d in part} for name, part in splits.items()}
    assert not texts["train"] & texts["val"] and not texts["train"] & texts["test"] and not texts["val"] & texts["test"]
    assert sum(len(p) for p in splits.values()) == len(docstring_dataset())
    for part in ("val", "test"):
        assert set(Counter(d.label for d in splits[part])) == set(range(len(LABELS)))
    assert [d.source for d in docstring_splits()["test"]] == [d.source for d in splits["test"]]


def test_docstring_split_fractions_are_checked():
    with pytest.raises(ValueError, match="below 1"):
        docstring_splits(0.6, 0.5)
    with pytest.raises(ValueError, match="test_fraction"):
        docstring_splits(0.1, 0.0)


def test_tabular_wrappers_are_standardised_splits():
    data = breast_cancer()
    assert data.x_train.shape[1] == 30 and len(data.feature_names) == 30
    assert len(data.x_train) + len(data.x_test) == 569
    assert data.x_train.mean(0).abs().max() < 1e-4
    d = digits(test_fraction=0.2)
    assert d.x_test.shape == (round(1797 * 0.2), 64) and set(d.y_train.tolist()) == set(range(10))
