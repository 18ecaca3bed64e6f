"""Plotting helpers the notebooks share: training curves, heatmaps (attention weights, confusion matrices),
the learning-rate schedule and label-smoothed targets. The architecture diagrams live in :mod:`bigtut.diagrams`
(one import path per name).

Each function draws on the ``ax`` it is given (or a new one) and returns it, so notebooks can compose figures;
call ``plt.show()`` after. The diagrams are drawn with matplotlib patches and text only (no image files).
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

from bigtut.diagrams import new_ax

__all__ = ["plot_heatmap",
           "plot_history", "plot_label_smoothing", "plot_lr_schedule", "text_color_for"]


def _to_numpy(x) -> np.ndarray:
    return x.detach().float().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


# ---------------------------------------------------------------------------------------------- charts

def plot_history(history, ax: plt.Axes | None = None, title: str | None = None, smooth: int = 50,
                 log_y: bool = False) -> plt.Axes:
    """Training loss (raw, faint; a centred mean over ``smooth`` steps) and validation loss against the step.

    The mean is centred on each step (:meth:`bigtut.training.History.smoothed_train_loss` with ``centred=True``),
    so the smoothed curve does not lag the raw one and can be compared with the validation points at the same
    step; a trailing mean would trail by half a window and make early training look worse than validation.
    """
    ax = new_ax(ax, (6, 3.5))
    ax.plot(history.step, history.train_loss, color="tab:blue", alpha=0.25, linewidth=0.8, label="train (per step)")
    ax.plot(history.step, history.smoothed_train_loss(smooth, centred=True), color="tab:blue",
            label=f"train (centred mean of {2 * ((smooth - 1) // 2) + 1} steps)")
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


def text_color_for(rgba) -> str:
    """``"black"`` on a light background colour, ``"white"`` on a dark one (WCAG relative luminance)."""
    rgb = np.asarray(rgba, dtype=float)[:3]
    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    luminance = float(linear @ np.array([0.2126, 0.7152, 0.0722]))
    return "black" if luminance > 0.179 else "white"  # 0.179: equal contrast against black and against white


def plot_heatmap(matrix, x_labels: Sequence[str] | None = None, y_labels: Sequence[str] | None = None,
                 ax: plt.Axes | None = None, title: str | None = None, cmap: str = "viridis",
                 annotate: bool = False, colorbar: bool = True, vmin: float | None = None,
                 vmax: float | None = None) -> plt.Axes:
    """Show a 2-D matrix ``(rows, cols)`` — e.g. attention weights ``(Lq, Lk)`` — with optional tick labels.

    With ``annotate=True`` each cell shows its value, in black on light cells and white on dark cells of the
    colour map (whatever the map: ``viridis`` is dark at the bottom, ``Blues`` is light there).
    """
    values = _to_numpy(matrix)
    if values.ndim != 2:
        raise ValueError(f"plot_heatmap needs a 2-D matrix, got shape {values.shape}")
    ax = new_ax(ax, (1 + 0.35 * values.shape[1], 1 + 0.35 * values.shape[0]))
    image = ax.imshow(values, cmap=cmap, aspect="auto", vmin=vmin, vmax=vmax)
    if x_labels is not None:
        ax.set_xticks(range(len(x_labels)), [repr(t)[1:-1] if isinstance(t, str) else t for t in x_labels],
                      rotation=90)
    if y_labels is not None:
        ax.set_yticks(range(len(y_labels)), [repr(t)[1:-1] if isinstance(t, str) else t for t in y_labels])
    if annotate:
        for (r, c), v in np.ndenumerate(values):
            if np.isfinite(v):
                ax.text(c, r, f"{v:.2g}", ha="center", va="center", fontsize=7,
                        color=text_color_for(image.cmap(image.norm(v))))
    if colorbar:
        ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    if title:
        ax.set_title(title)
    return ax


def plot_lr_schedule(ax: plt.Axes | None = None, steps: int = 1000, warmup_steps: int = 100,
                     schedule: str = "cosine", peak_lr: float = 1e-3) -> plt.Axes:
    """The learning rate of each optimizer step of :func:`bigtut.training.fit` with this schedule.

    Step ``s`` (1-based, as in ``History.step``) runs with ``peak_lr * lr_lambda(schedule, steps,
    warmup_steps)(s - 1)`` — what ``torch.optim.lr_scheduler.LambdaLR`` gives before its ``s``-th ``step()``.
    """
    from bigtut.training import lr_lambda  # the one definition of the schedule (training sits above plots)

    multiplier = lr_lambda(schedule, steps, warmup_steps)
    step = np.arange(1, steps + 1)
    lr = np.array([peak_lr * multiplier(s - 1) for s in step])
    ax = new_ax(ax, (6, 3))
    label = "cosine decay to 10 % of the peak" if schedule == "cosine" else "constant"
    ax.plot(step, lr, color="tab:purple", label=f"{label}, warm-up {warmup_steps} steps")
    if warmup_steps:
        ax.axvline(warmup_steps, color="grey", linestyle=":", linewidth=1)
        ax.annotate("end of warm-up", (warmup_steps, peak_lr), xytext=(8, -12), textcoords="offset points",
                    fontsize=8, color="grey")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("learning rate")
    ax.set_ylim(0, peak_lr * 1.1)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right")
    return ax


def plot_label_smoothing(ax: plt.Axes | None = None, num_classes: int = 10, target: int = 3,
                         smoothing: float = 0.1) -> plt.Axes:
    """Bars of the one-hot target beside the label-smoothed one that the loss is computed against.

    The smoothed target is ``(1 - ε) · one_hot + ε / K`` (``K = num_classes``): the true class gets
    ``1 - ε + ε/K`` and every class, the true one included, gets ``ε/K`` — the convention of
    ``torch.nn.functional.cross_entropy(..., label_smoothing=ε)``.
    """
    if not 0 <= target < num_classes:
        raise ValueError(f"target={target} must lie in [0, num_classes={num_classes})")
    if not 0.0 <= smoothing <= 1.0:
        raise ValueError(f"smoothing must lie in [0, 1], got {smoothing}")
    one_hot = np.eye(num_classes)[target]
    smoothed = (1 - smoothing) * one_hot + smoothing / num_classes
    ax = new_ax(ax, (6, 3))
    k = np.arange(num_classes)
    ax.bar(k - 0.2, one_hot, width=0.4, color="lightgrey", edgecolor="grey", label="one-hot target")
    ax.bar(k + 0.2, smoothed, width=0.4, color="tab:green", label=f"smoothed, ε = {smoothing:g}")
    ax.annotate(f"1 − ε + ε/K = {smoothed[target]:.3g}", (target + 0.2, smoothed[target]), xytext=(12, -4),
                textcoords="offset points", fontsize=8)
    other = (target + 1) % num_classes if num_classes > 1 else target
    ax.annotate(f"ε/K = {smoothing / num_classes:.3g}", (other + 0.2, smoothed[other]), xytext=(0, 18),
                textcoords="offset points", fontsize=8, ha="center", arrowprops={"arrowstyle": "-", "lw": 0.6})
    ax.set_xticks(k)
    ax.set_xlabel("class")
    ax.set_ylabel("target probability")
    ax.set_ylim(0, 1.15)
    ax.legend(loc="upper right", fontsize=8)
    return ax
