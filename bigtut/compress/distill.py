"""Knowledge distillation: a small student learns from a large teacher's soft predictions.

The teacher's logits ``t`` and the student's ``s`` are softened by a temperature ``T``; the student matches
the teacher's softened distribution (KL divergence), and the hard labels (cross-entropy):

    loss = alpha * T^2 * KL(softmax(t / T) || softmax(s / T)) + (1 - alpha) * CE(s, labels)

The ``T^2`` keeps the soft term's gradient the same size whatever ``T`` (the gradient of the softened KL
scales as ``1 / T^2``; Hinton, Vinyals & Dean 2015). A high ``T`` shows the student the teacher's "dark
knowledge": how much it leans to the wrong classes.

Shape legend:  B batch   C classes   L sequence length
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Sequence, Sized
from numbers import Integral
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from bigtut.bert.heads import BertForSequenceClassification
from bigtut.compress.prune import prune_ffn_neurons
from bigtut.training import History, fit
from bigtut.validation import check_model, check_number, check_tensor

__all__ = ["distill", "distillation_loss", "make_student", "soft_target_loss"]


def _check_temperature(temperature: float) -> float:
    return check_number("temperature", temperature, 0.0, math.inf, low_open=True)


def _check_alpha(alpha: float) -> float:
    return check_number("alpha", alpha, 0.0, 1.0, need=" (the weight of the soft targets)")


def _check_logits(name: str, logits: object) -> torch.Tensor:
    """``logits`` if a finite floating-point ``(B, C)`` tensor with at least one row and one class."""
    return check_tensor(name, logits, "(B, C)", dim=2)


def _check_labels(labels: object, batch: int, classes: int) -> torch.Tensor:
    """``labels`` if an integer ``(B,)`` tensor of class indices in ``[0, C)``."""
    check_tensor("labels", labels, f"(B,) = ({batch},) of class indices", kind="int")
    if tuple(labels.shape) != (batch,):
        raise ValueError(f"labels must have shape (B,) = ({batch},), one class index per row, got "
                         f"{tuple(labels.shape)}")
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high >= classes:
        raise ValueError(f"labels must lie in [0, {classes}) (the C={classes} classes of the logits), got values "
                         f"from {low} to {high}")
    return labels


def soft_target_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 2.0
                     ) -> torch.Tensor:
    """``T^2 * KL(softmax(teacher / T) || softmax(student / T))``, averaged over the batch (a scalar).

    ``student_logits``, ``teacher_logits``: ``(B, C)``. Zero exactly when the two agree up to a constant
    per row; the teacher gets no gradient.

    Raises:
        ValueError: ``temperature`` not a finite number > 0; logits that are not both ``(B, C)`` of the same
            shape, are empty, or hold NaN/inf.
        TypeError: logits that are not floating-point tensors.
    """
    T = _check_temperature(temperature)
    _check_logits("student_logits", student_logits)
    _check_logits("teacher_logits", teacher_logits)
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f"student and teacher logits must both be (B, C), got {tuple(student_logits.shape)} "
                         f"and {tuple(teacher_logits.shape)}")
    log_q = F.log_softmax(student_logits / T, dim=-1)  # (B, C) student, softened
    log_p = F.log_softmax(teacher_logits.detach() / T, dim=-1)  # (B, C) teacher, softened
    kl = (log_p.exp() * (log_p - log_q)).sum(-1)  # (B,)
    return T * T * kl.mean()


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                      labels: torch.Tensor | None = None, *, temperature: float = 2.0, alpha: float = 0.5
                      ) -> torch.Tensor:
    """``alpha * soft_target_loss + (1 - alpha) * cross_entropy(student_logits, labels)`` (a scalar).

    ``labels`` ``(B,)`` may be omitted only with ``alpha=1`` (pure soft targets).

    Raises:
        ValueError: ``temperature`` not a finite number > 0, ``alpha`` outside ``[0, 1]``, no labels with
            ``alpha < 1``, labels not ``(B,)`` or outside ``[0, C)``, logits as :func:`soft_target_loss` refuses.
        TypeError: logits not floating-point tensors, labels not an integer tensor.
    """
    _check_alpha(alpha)
    soft = soft_target_loss(student_logits, teacher_logits, temperature)
    if labels is None:
        if alpha < 1:
            raise ValueError(f"labels are needed for the hard-label term (alpha={alpha} < 1)")
        return soft
    _check_labels(labels, *student_logits.shape)
    return alpha * soft + (1 - alpha) * F.cross_entropy(student_logits, labels.long())


def make_student(teacher: BertForSequenceClassification, *, layers: Sequence[int] = (0,),
                 d_ff: int | None = None) -> BertForSequenceClassification:
    """A smaller BERT classifier started from the teacher's own weights (as DistilBERT is).

    ``layers``: which of the teacher's encoder layers the student keeps (fewer = shallower); ``d_ff``: the
    student's feed-forward width (narrower; the neurons kept are those :func:`prune_ffn_neurons` keeps).
    Embeddings, pooler and classifier are copied. The teacher is untouched.

    Raises:
        ValueError: a layer index the teacher does not have, a repeated one, no layer, or ``d_ff`` not in
            ``[1, teacher d_ff]``.
        TypeError: a teacher that is not a :class:`~bigtut.bert.BertForSequenceClassification`.
    """
    if not isinstance(teacher, BertForSequenceClassification):
        raise TypeError(f"make_student needs a BertForSequenceClassification, got {type(teacher).__name__}")
    n = teacher.config.num_layers
    need = f"layers must be a non-empty list of distinct layer indices in [0, {n})"
    if isinstance(layers, (str, bytes)) or not isinstance(layers, Iterable):
        raise ValueError(f"{need}, got {layers!r}")
    layers = list(layers)
    if not layers or any(isinstance(i, bool) or not isinstance(i, Integral) or not 0 <= i < n for i in layers):
        raise ValueError(f"{need}, got {layers}")
    if len(set(layers)) != len(layers):  # a repeated layer would be one module twice: silently tied weights
        raise ValueError(f"{need}, got {layers} (a repeat)")
    layers = [int(i) for i in layers]
    student = copy.deepcopy(teacher)
    student.bert.layers = nn.ModuleList(student.bert.layers[i] for i in layers)
    student.config.num_layers = student.bert.config.num_layers = len(layers)
    if d_ff is not None:
        full = teacher.config.d_ff
        if isinstance(d_ff, bool) or not isinstance(d_ff, int) or not 1 <= d_ff <= full:
            raise ValueError(f"d_ff must be an int in [1, {full}] (the teacher's width), got {d_ff!r}")
        student = prune_ffn_neurons(student, (full - d_ff) / full)
        student.config.d_ff = student.bert.config.d_ff = d_ff
    return student.eval()


def distill(teacher: nn.Module, student: nn.Module, train_batches: Callable[[], Any] | Iterable, *, steps: int,
            temperature: float = 2.0, alpha: float = 0.5, lr: float = 1e-3, weight_decay: float = 0.01,
            val_batches: Iterable | None = None, eval_every: int = 100, device: torch.device | str | None = None,
            desc: str = "distill", progress: bool = True) -> History:
    """Train ``student`` on :func:`distillation_loss` against the frozen ``teacher``; returns the loss history.

    Both honour the classifier contract. ``train_batches``: a callable returning ``(input_ids, attention_mask,
    labels)`` or an iterable of them (as :func:`bigtut.training.fit`); ``val_batches`` are scored with the same
    loss. Cosine learning-rate decay after a 10 % warm-up, gradients clipped at 1.

    Raises:
        TypeError: a teacher or student that is not an ``nn.Module``, a model that returns no logits tensor.
        ValueError: ``temperature``, ``alpha``, ``lr`` or ``weight_decay`` out of range (checked before any
            training); a batch that is not ``(input_ids, attention_mask, labels)``; a model whose logits are
            not ``(B, C)`` (the same for both) or hold NaN/inf; labels outside ``[0, C)``.
    """
    check_model(teacher, "teacher")
    check_model(student, "student")
    _check_temperature(temperature)
    _check_alpha(alpha)
    check_number("lr", lr, 0.0, math.inf, low_open=True)
    check_number("weight_decay", weight_decay, 0.0, math.inf)
    if isinstance(train_batches, (str, bytes)) or not (callable(train_batches) or isinstance(train_batches, Iterable)):
        raise TypeError(f"train_batches must be a function returning (input_ids, attention_mask, labels) or a list "
                        f"of such batches, got {type(train_batches).__name__}")
    if isinstance(train_batches, Sized) and len(train_batches) == 0:
        raise ValueError("train_batches is empty: give at least one (input_ids, attention_mask, labels) batch")
    teacher.eval()
    if device is not None:
        teacher.to(device)

    def loss_fn(model: nn.Module, batch) -> torch.Tensor:
        if not isinstance(batch, (tuple, list)) or len(batch) != 3:
            size = f" of {len(batch)}" if isinstance(batch, (tuple, list)) else ""
            raise ValueError(f"distill needs batches (input_ids, attention_mask, labels), got a "
                             f"{type(batch).__name__}{size}")
        ids, mask, labels = batch
        with torch.no_grad():
            teacher_logits = _check_logits("the teacher's logits", teacher(ids, attention_mask=mask))  # (B, C)
        student_logits = _check_logits("the student's logits", model(ids, attention_mask=mask))  # (B, C)
        return distillation_loss(student_logits, teacher_logits, labels, temperature=temperature, alpha=alpha)

    return fit(student, loss_fn, train_batches, steps=steps, lr=lr, weight_decay=weight_decay,
               val_batches=val_batches, eval_every=eval_every, warmup_steps=steps // 10, schedule="cosine",
               grad_clip=1.0, device=device if device is not None else next(teacher.parameters()).device,
               desc=desc, progress=progress)
