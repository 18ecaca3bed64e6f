"""Chapter 05's learning curve: test accuracy against the number of labelled docstrings per family, for a
pretrained BERT, the same BERT from a random start, and TF-IDF + logistic regression.

One point = one draw of ``n`` training docstrings per family (``seed``), one fine-tuning run on them (same
``seed``), scored on the whole test split. :func:`learning_curve` runs every point; :func:`bootstrap_interval`
turns the per-seed, per-docstring hits into an interval that counts both sources of noise: which labels were
drawn and fine-tuned (seeds) and which docstrings happen to be in the test split.

    python benchmarks/bert_learning_curve.py     # runs it once and writes benchmarks/results/05_learning_curve.json
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from bigtut.bert import classify, encode_for_classifier
from bigtut.data import LABELS, docstring_splits
from bigtut.recipes.bert import BertRecipe, finetune_bert
from bigtut.runtime import seed_everything
from bigtut.training import progress_bar

__all__ = ["LEARNING_CURVE_FILE", "SIZES", "LearningCurve", "bootstrap_interval", "few_per_family",
           "finetune_predictions", "finetune_steps_for", "learning_curve", "load_learning_curve",
           "mean_pooled_features", "probe_predictions", "tfidf_predictions"]

#: Labelled docstrings per family on the curve; ``None`` is the whole training split.
SIZES = (1, 4, 16, 64, None)
#: The committed run of ``benchmarks/bert_learning_curve.py`` that chapter 05 draws.
LEARNING_CURVE_FILE = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "05_learning_curve.json"


@dataclass
class LearningCurve:
    """A stored learning curve: every contender's predictions at every size and seed, on one split."""

    contenders: list[str]
    sizes: list[str]  # "1", "4", ..., "all"
    seeds: dict[str, list[int]]  # size -> seeds
    labels: np.ndarray  # (N,) true families of the scored split
    stored: dict[str, str]  # "name|size|seed" -> one digit (the predicted family) per docstring
    record: dict  # everything the file holds (settings, recipes, seconds, torch version)

    def predictions(self, name: str, size: str, seed: int) -> np.ndarray:
        """The predicted family of every docstring ``(N,)``."""
        return np.array([int(c) for c in self.stored[f"{name}|{size}|{seed}"]])

    def hits(self, name: str, size: str) -> np.ndarray:
        """1 where ``name`` was right, per seed and docstring ``(seeds, N)``."""
        return np.stack([self.predictions(name, size, s) == self.labels for s in self.seeds[size]]).astype(np.int8)

    def labelled(self, size: str) -> int:
        """Labelled training docstrings at ``size`` (7 families x n, or the whole split)."""
        return len(few_per_family(None if size == "all" else int(size)))


def load_learning_curve(path: str | Path = LEARNING_CURVE_FILE) -> LearningCurve:
    """Read a curve written by ``benchmarks/bert_learning_curve.py --json``."""
    record = json.loads(Path(path).read_text())
    return LearningCurve(record["contenders"], record["sizes"], record["seeds"], np.array(record["labels"]),
                         record["predictions"], record)


def few_per_family(n: int | None, seed: int = 0, examples: Sequence | None = None) -> list:
    """``n`` docstrings of every family drawn (without replacement) from ``examples`` (default: the training
    split) with ``random.Random(seed)``; all of them when ``n`` is None. Families keep their order."""
    examples = list(docstring_splits()["train"] if examples is None else examples)
    if n is None:
        return examples
    if n < 1:
        raise ValueError(f"n must be a positive number of docstrings per family (or None for all), got {n}")
    rng, chosen = random.Random(seed), []
    for c in range(len(LABELS)):
        family = [d for d in examples if d.label == c]
        if len(family) < n:
            raise ValueError(f"family {LABELS[c]!r} has {len(family)} training docstrings, fewer than n={n}")
        rng.shuffle(family)
        chosen += family[:n]
    return chosen


def finetune_steps_for(n_examples: int, recipe: BertRecipe, epochs: int = 20) -> int:
    """Fine-tuning steps: about ``epochs`` passes over the examples in batches of ``recipe.finetune_batch``, at
    least 40 and at most ``recipe.finetune_steps`` (the whole split's budget)."""
    return min(recipe.finetune_steps, max(40, epochs * n_examples // recipe.finetune_batch))


def tfidf_predictions(examples, test) -> np.ndarray:
    """TF-IDF (``sublinear_tf``) + logistic regression fitted on ``examples``: the predicted family of every
    test docstring ``(N,)``."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    tfidf = TfidfVectorizer(sublinear_tf=True)
    features = tfidf.fit_transform([d.text for d in examples])  # (n, words), sparse
    model = LogisticRegression(max_iter=2000).fit(features, [d.label for d in examples])
    return model.predict(tfidf.transform([d.text for d in test]))  # (N,)


def finetune_predictions(encoder, tokenizer, recipe: BertRecipe, examples, test, seed: int, device=None
                         ) -> np.ndarray:
    """Fine-tune a classifier from a copy of ``encoder`` on ``examples`` (:func:`finetune_steps_for` steps,
    ``recipe``'s learning rate, the classifier head and batches drawn with ``seed``): the predicted family of
    every test docstring ``(N,)``."""
    seed_everything(seed)  # the classification head's initial weights
    steps = finetune_steps_for(len(examples), recipe)
    classifier, _ = finetune_bert(encoder, tokenizer, replace(recipe, finetune_steps=steps, seed=seed),
                                  examples=examples, validate=False, progress=False, device=device)
    return classify(classifier, tokenizer, [d.text for d in test]).argmax(-1).numpy()  # (N,)


@torch.no_grad()
def mean_pooled_features(encoder, tokenizer, texts, max_len: int, batch_size: int = 64) -> np.ndarray:
    """The encoder's last hidden states averaged over each text's real tokens ``(N, d)``: a frozen feature
    vector per docstring (BERT's "feature-based" use, as opposed to fine-tuning)."""
    was_training, rows = encoder.training, []
    encoder.eval()
    device = next(encoder.parameters()).device
    for i in range(0, len(texts), batch_size):
        ids, mask = encode_for_classifier(texts[i : i + batch_size], tokenizer, max_len)  # (B, L) x2
        hidden, _ = encoder(ids.to(device), mask.to(device))  # (B, L, d)
        weights = mask.to(device).unsqueeze(-1).to(hidden.dtype)  # (B, L, 1): 1 on real tokens
        rows.append(((hidden * weights).sum(1) / weights.sum(1)).cpu().numpy())  # (B, d)
    encoder.train(was_training)
    return np.concatenate(rows)


def probe_predictions(features: dict, examples, test) -> np.ndarray:
    """Logistic regression on frozen features (``features[text]`` -> ``(d,)``, standardised on ``examples``):
    the predicted family of every test docstring ``(N,)``."""
    from sklearn.linear_model import LogisticRegression

    train_x = np.stack([features[d.text] for d in examples])  # (n, d)
    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    model = LogisticRegression(max_iter=2000).fit((train_x - mean) / std, [d.label for d in examples])
    return model.predict((np.stack([features[d.text] for d in test]) - mean) / std)  # (N,)


def learning_curve(contenders: dict, seeds: dict, sizes: Sequence = SIZES, split: str = "test",
                   device=None, progress: bool = True) -> dict:
    """Every point of the curve.

    Args:
        contenders: name -> ``None`` for TF-IDF + logistic regression, ``(encoder, tokenizer, recipe)`` to
            fine-tune, or ``("probe", encoder, tokenizer, recipe)`` for logistic regression on the frozen
            encoder's mean-pooled features.
        seeds: size -> the seeds of that size (one label draw and one fine-tuning run each).
        split: where the points are scored (``"val"`` while choosing settings, ``"test"`` once).

    Returns:
        ``{(name, size, seed): predictions}``, the predicted family of every docstring of ``split``.
    """
    test = docstring_splits()[split]
    jobs = [(name, n, s) for n in sizes for s in seeds[n] for name in contenders]
    predictions, features = {}, {}
    for name, n, seed in progress_bar(jobs, desc="learning curve", disable=not progress):
        examples = few_per_family(n, seed)
        if contenders[name] is None:
            predictions[name, n, seed] = tfidf_predictions(examples, test)
        elif contenders[name][0] == "probe":
            if name not in features:  # every docstring encoded once
                _, encoder, tokenizer, recipe = contenders[name]
                texts = [d.text for d in docstring_splits()["train"]] + [d.text for d in test]
                features[name] = dict(zip(texts, mean_pooled_features(encoder, tokenizer, texts, recipe.max_len)))
            predictions[name, n, seed] = probe_predictions(features[name], examples, test)
        else:
            encoder, tokenizer, recipe = contenders[name]
            predictions[name, n, seed] = finetune_predictions(encoder, tokenizer, recipe, examples, test, seed, device)
    return predictions


def bootstrap_interval(hits: np.ndarray, level: float = 0.95, resamples: int = 4000, seed: int = 0
                       ) -> tuple[float, float, float]:
    """Mean and a percentile-bootstrap interval of ``hits`` ``(seeds, docstrings)``, resampling the seeds and,
    independently, the docstrings (the same docstrings for every seed, as they share one test split).

    For a difference between two contenders pass the difference of their paired hits (same seeds, same
    docstrings): values in {-1, 0, 1}, and the interval of the gap.

    Returns:
        ``(mean, low, high)``.
    """
    hits = np.asarray(hits, dtype=np.float64)
    if hits.ndim != 2 or min(hits.shape) < 1:
        raise ValueError(f"hits must be a (seeds, docstrings) array, got shape {hits.shape}")
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    rng = np.random.default_rng(seed)
    n_seeds, n_docs = hits.shape
    means = np.empty(resamples)
    for b in range(resamples):
        rows = rng.integers(0, n_seeds, n_seeds)
        columns = rng.integers(0, n_docs, n_docs)
        means[b] = hits[np.ix_(rows, columns)].mean()
    tail = (1 - level) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return float(hits.mean()), float(low), float(high)
