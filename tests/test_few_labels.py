"""Chapter 05's learning-curve helpers: label draws, the fine-tuning budget, the TF-IDF baseline and the bootstrap."""

import numpy as np
import pytest

from bigtut.data import LABELS, docstring_splits
from bigtut.recipes.bert import BertRecipe
from bigtut.recipes.few_labels import bootstrap_interval, few_per_family, finetune_steps_for, tfidf_predictions


def test_few_per_family_draws_n_of_every_family_reproducibly():
    train = docstring_splits()["train"]
    chosen = few_per_family(4, seed=3)
    assert [d.label for d in chosen] == [c for c in range(len(LABELS)) for _ in range(4)]
    assert len({d.text for d in chosen}) == len(chosen) and all(d in train for d in chosen)
    assert chosen == few_per_family(4, seed=3) and chosen != few_per_family(4, seed=4)
    assert few_per_family(None) == list(train)
    assert few_per_family(1, seed=3)[0] == chosen[0]  # a larger draw extends a smaller one with the same seed
    with pytest.raises(ValueError, match="positive"):
        few_per_family(0)
    with pytest.raises(ValueError, match="fewer than"):
        few_per_family(10_000)


def test_finetune_steps_are_about_twenty_epochs_within_bounds():
    recipe = BertRecipe()  # batch 16, 450 steps on the whole split
    assert finetune_steps_for(7, recipe) == 40  # at least 40
    assert finetune_steps_for(112, recipe) == 140  # 20 epochs of 112 in batches of 16
    assert finetune_steps_for(698, recipe) == 450  # never more than the whole split's budget


def test_tfidf_learns_the_task():
    splits = docstring_splits()
    predicted = tfidf_predictions(splits["train"], splits["val"])
    labels = np.array([d.label for d in splits["val"]])
    assert predicted.shape == labels.shape and (predicted == labels).mean() > 0.6  # chance is about 1/7


def test_bootstrap_interval_brackets_the_mean_and_shrinks_with_data():
    rng = np.random.default_rng(0)
    small = (rng.random((3, 50)) < 0.6).astype(int)
    large = (rng.random((12, 400)) < 0.6).astype(int)
    for hits in (small, large):
        mean, low, high = bootstrap_interval(hits, resamples=1000)
        assert low < mean < high and mean == hits.mean()
    assert np.ptp(bootstrap_interval(large, resamples=1000)[1:]) < np.ptp(bootstrap_interval(small, resamples=1000)[1:])
    assert bootstrap_interval(np.ones((5, 20)))[1:] == (1.0, 1.0)  # no spread, no interval
    # seeds that disagree widen it even when every seed has a tight mean over the docstrings
    spread = np.repeat(np.array([[0], [1], [0], [1], [1]]), 200, axis=1)
    assert np.ptp(bootstrap_interval(spread, resamples=1000)[1:]) > 0.3
    with pytest.raises(ValueError, match="seeds, docstrings"):
        bootstrap_interval(np.ones(5))
    with pytest.raises(ValueError, match="level"):
        bootstrap_interval(np.ones((2, 2)), level=1.5)


# ---- the committed curve that chapter 05 draws (benchmarks/results/05_learning_curve.json) ----------------------

@pytest.fixture(scope="module")
def curve():
    from bigtut.recipes.few_labels import load_learning_curve

    return load_learning_curve()


def test_the_stored_curve_has_every_point_with_at_least_five_seeds(curve):
    test = docstring_splits()["test"]
    assert curve.record["split"] == "test" and curve.labels.tolist() == [d.label for d in test]
    assert curve.sizes == ["1", "4", "16", "64", "all"]
    assert {"TF-IDF + logistic regression", "BERT from scratch", "BERT pretrained on the packages' docstrings"} <= set(
        curve.contenders)
    for size in curve.sizes:
        assert len(curve.seeds[size]) >= 5
        for name in curve.contenders:
            assert curve.hits(name, size).shape == (len(curve.seeds[size]), len(test))


def test_the_stored_tfidf_points_reproduce_exactly(curve):
    test = docstring_splits()["test"]
    for size in curve.sizes:
        for seed in curve.seeds[size]:
            examples = few_per_family(None if size == "all" else int(size), seed)
            stored = curve.predictions("TF-IDF + logistic regression", size, seed)
            assert (tfidf_predictions(examples, test) == stored).all(), (size, seed)


def test_a_stored_bert_point_reproduces(curve):
    """One fine-tuning run (4 labels per family, seed 0) redone from the committed checkpoint and the stored
    recipe: the same prediction on (nearly) every test docstring. Another CPU may round differently."""
    from bigtut.recipes.bert import PACKAGES_PRETRAIN_DIR, BertRecipe, load_pretrained_bert
    from bigtut.recipes.few_labels import finetune_predictions

    name = "BERT pretrained on the packages' docstrings"
    packages = load_pretrained_bert(PACKAGES_PRETRAIN_DIR, device="cpu")
    recipe = BertRecipe(**curve.record["recipes"][name])
    fresh = finetune_predictions(packages.model.bert, packages.tokenizer, recipe, few_per_family(4, 0),
                                 docstring_splits()["test"], seed=0, device="cpu")
    assert (fresh == curve.predictions(name, "4", 0)).mean() >= 0.97
