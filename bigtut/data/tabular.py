"""Thin wrappers around scikit-learn's bundled datasets (shipped inside the package: no download)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from bigtut.data.corpus import check_fraction


@dataclass
class TabularSplit:
    """Standardised train/test tensors of a bundled dataset.

    Attributes:
        x_train, x_test: float32 features, ``(n, n_features)``, standardised with the training mean and std.
        y_train, y_test: int64 class labels, ``(n,)``.
        feature_names: one name per column; class_names: one name per label.
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    feature_names: list[str]
    class_names: list[str]
    mean: torch.Tensor
    std: torch.Tensor


def _split(x: np.ndarray, y: np.ndarray, names, classes, test_fraction: float, seed: int) -> TabularSplit:
    check_fraction(test_fraction, "test_fraction")
    order = np.random.default_rng(seed).permutation(len(x))
    n_test = round(len(x) * test_fraction)
    test, train = order[:n_test], order[n_test:]
    mean, std = x[train].mean(0), x[train].std(0) + 1e-8
    to_x = lambda a: torch.tensor((a - mean) / std, dtype=torch.float32)  # noqa: E731
    return TabularSplit(
        x_train=to_x(x[train]), y_train=torch.tensor(y[train], dtype=torch.long),
        x_test=to_x(x[test]), y_test=torch.tensor(y[test], dtype=torch.long),
        feature_names=[str(n) for n in names], class_names=[str(c) for c in classes],
        mean=torch.tensor(mean, dtype=torch.float32), std=torch.tensor(std, dtype=torch.float32),
    )


def breast_cancer(test_fraction: float = 0.25, seed: int = 0) -> TabularSplit:
    """Wisconsin breast-cancer data: 569 tumours, 30 measurements, malignant (0) or benign (1)."""
    from sklearn.datasets import load_breast_cancer

    d = load_breast_cancer()
    return _split(d.data, d.target, d.feature_names, d.target_names, test_fraction, seed)


def digits(test_fraction: float = 0.25, seed: int = 0) -> TabularSplit:
    """8×8 images of handwritten digits: 1797 images, 64 pixels (row-major), labels 0–9."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return _split(d.data, d.target, [f"pixel_{r}_{c}" for r in range(8) for c in range(8)],
                  [str(i) for i in range(10)], test_fraction, seed)
