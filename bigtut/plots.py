"""Plotting helpers the notebooks share: training curves and heatmaps (attention weights, confusion matrices).

Each function draws on the ``ax`` it is given (or a new one) and returns it, so notebooks can compose figures.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

__all__ = ["plot_heatmap", "plot_history"]


def _to_numpy(x) -> np.ndarray:
    return x.detach().float().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def plot_history(history, ax: plt.Axes | None = None, title: str | None = None, smooth: int = 50,
                 log_y: bool = False) -> plt.Axes:
    """Training loss (raw, faint; smoothed over ``smooth`` steps) and validation loss against the step."""
    ax = ax or plt.subplots(figsize=(6, 3.5))[1]
    ax.plot(history.step, history.train_loss, color="tab:blue", alpha=0.25, linewidth=0.8)
    ax.plot(history.step, history.smoothed_train_loss(smooth), color="tab:blue", label="train (smoothed)")
    if history.val_loss:
        ax.plot(history.val_step, history.val_loss, "o-", color="tab:orange", markersize=3, label="validation")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    if log_y:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    if title:
        ax.set_title(title)
    return ax


def plot_heatmap(matrix, x_labels: Sequence[str] | None = None, y_labels: Sequence[str] | None = None,
                 ax: plt.Axes | None = None, title: str | None = None, cmap: str = "viridis",
                 annotate: bool = False, colorbar: bool = True, vmin: float | None = None,
                 vmax: float | None = None) -> plt.Axes:
    """Show a 2-D matrix ``(rows, cols)`` — e.g. attention weights ``(Lq, Lk)`` — with optional tick labels."""
    values = _to_numpy(matrix)
    if values.ndim != 2:
        raise ValueError(f"plot_heatmap needs a 2-D matrix, got shape {values.shape}")
    ax = ax or plt.subplots(figsize=(1 + 0.35 * values.shape[1], 1 + 0.35 * values.shape[0]))[1]
    image = ax.imshow(values, cmap=cmap, aspect="auto", vmin=vmin, vmax=vmax)
    if x_labels is not None:
        ax.set_xticks(range(len(x_labels)), [repr(t)[1:-1] if isinstance(t, str) else t for t in x_labels],
                      rotation=90)
    if y_labels is not None:
        ax.set_yticks(range(len(y_labels)), [repr(t)[1:-1] if isinstance(t, str) else t for t in y_labels])
    if annotate:
        for (r, c), v in np.ndenumerate(values):
            ax.text(c, r, f"{v:.2g}", ha="center", va="center", fontsize=7,
                    color="white" if v < (values.max() + values.min()) / 2 else "black")
    if colorbar:
        ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    if title:
        ax.set_title(title)
    return ax
