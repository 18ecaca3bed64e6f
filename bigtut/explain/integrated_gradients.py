"""Integrated Gradients (Sundararajan, Taly & Yan, 2017), from scratch, on feature vectors and on tokens.

Shape legend:  B batch   n integration steps   N rows sent to the model   L positions   d d_model

IG attributes ``F(x) - F(x')`` to the features of ``x`` by integrating the gradient along the straight path
from the baseline ``x'`` to ``x``::

    IG_i(x) = (x_i - x'_i) * ∫_0^1 ∂F/∂x_i (x' + α (x - x')) dα  ≈  (x_i - x'_i) * Σ_k w_k ∂F/∂x_i (x' + α_k (x - x'))

The quadrature rule ``(α_k, w_k)`` comes from :func:`integration_rule`. Completeness says the attributions
add up to ``F(x) - F(x')``; the returned ``delta`` is what the quadrature misses of it.

Call ``model.eval()`` (or use :func:`bigtut.runtime.eval_mode`) first: the functions here never change the
model's mode, and dropout would make every path point see a different model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch

from bigtut.explain.arguments import (
    check_budget,
    check_flag,
    check_float_batch,
    check_keep_ids,
    check_same_shape,
    check_target_rows,
    check_token_batch,
    input_embeddings,
    resolve_batch_size,
    resolve_pad_id,
)
from bigtut.explain.common import (
    as_numpy,
    explained_logits,
    last_real_positions,
    logits_of,
    resolve_positions,
    select_target,
)

__all__ = ["INTEGRATION_RULES", "IGResult", "TokenIGResult", "integrated_gradients", "integration_rule",
           "token_integrated_gradients"]

INTEGRATION_RULES = ("riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid", "gausslegendre")


class IGResult(NamedTuple):
    """``attributions`` shaped like the inputs ``(B, ...)`` and ``delta`` ``(B,)`` = Σ attributions − (F(x) − F(x')),
    float64 NumPy."""

    attributions: np.ndarray
    delta: np.ndarray


class TokenIGResult(NamedTuple):
    """Per-token ``attributions`` ``(B, L)``, the completeness gap ``delta`` ``(B,)``, and the per-coordinate
    ``embedding_attributions`` ``(B, L, d)`` whose sum over ``d`` gives ``attributions`` (float64 NumPy)."""

    attributions: np.ndarray
    delta: np.ndarray
    embedding_attributions: np.ndarray


def integration_rule(method: str, n_steps: int, *, captum_compatible: bool = False
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Nodes ``alphas`` ``(n,)`` in ``[0, 1]`` and weights ``(n,)`` (float64) with ∫_0^1 g ≈ Σ_k w_k g(α_k).

    ``"riemann_left"``/``"riemann_right"``/``"riemann_middle"``: ``n`` equal cells of width ``1/n``, sampled at
    their left end, right end or middle. ``"riemann_trapezoid"``: the trapezoid rule on ``n >= 2`` equally
    spaced nodes ``0, 1/(n-1), ..., 1``, weights ``[1/2, 1, ..., 1, 1/2] / (n-1)``. ``"gausslegendre"``: the
    ``n``-node Gauss–Legendre rule mapped from ``[-1, 1]`` to ``[0, 1]`` (exact for polynomials of degree
    ``2n - 1``). Every one of these weight vectors sums to 1.

    ``captum_compatible=True`` returns captum 0.9's numbers instead: its Riemann nodes come from
    ``torch.linspace`` in the default dtype (float32), all its weights are rounded to float32, and its
    trapezoid weights are ``[1/2, 1, ..., 1, 1/2] / n`` — they sum to ``1 - 1/n``, so its trapezoid
    attributions fall short of completeness by about ``(F(x) - F(x')) / n``.
    """
    if method not in INTEGRATION_RULES:
        raise ValueError(f"unknown integration method {method!r}; choose one of {', '.join(INTEGRATION_RULES)}")
    n = check_budget("n_steps", n_steps, 2 if method == "riemann_trapezoid" else 1)
    captum_compatible = check_flag("captum_compatible", captum_compatible)
    if method == "gausslegendre":
        nodes, weights = np.polynomial.legendre.leggauss(n)  # (n,), (n,) on [-1, 1]
        alphas, weights = 0.5 * (1 + nodes), 0.5 * weights  # (n,), (n,) mapped to [0, 1]
    elif captum_compatible:  # the same expressions as captum's approximation_methods.riemann_builders
        start, stop = {"riemann_left": (0, 1 - 1 / n), "riemann_right": (1 / n, 1),
                       "riemann_middle": (1 / (2 * n), 1 - 1 / (2 * n)), "riemann_trapezoid": (0, 1)}[method]
        alphas = torch.linspace(start, stop, n).tolist()  # n floats computed in the default dtype
        weights = [1 / n] * n
        if method == "riemann_trapezoid":
            weights[0] /= 2
            weights[-1] /= 2
    else:
        k = np.arange(n, dtype=np.float64)  # (n,)
        offset = {"riemann_left": 0.0, "riemann_middle": 0.5, "riemann_right": 1.0, "riemann_trapezoid": 0.0}[method]
        alphas, weights = (k + offset) / n, np.full(n, 1 / n)  # (n,), (n,)
        if method == "riemann_trapezoid":
            alphas, weights = k / (n - 1), np.full(n, 1 / (n - 1))  # (n,), (n,)
            weights[[0, -1]] /= 2
    alphas = torch.as_tensor(np.asarray(alphas, dtype=np.float64))  # (n,)
    weights = torch.as_tensor(np.asarray(weights, dtype=np.float64))  # (n,)
    if captum_compatible:
        weights = weights.float().double()  # (n,): captum multiplies the gradients by float32 weights
    return alphas, weights


def _explained_output(f: Callable, target: Any, probabilities: bool, forward_kwargs: dict | None, n_examples: int,
                      device: torch.device) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """``explained(rows, example)``: the explained output ``(N,)`` of ``f`` at ``rows`` ``(N, ...)``, row ``i``
    belonging to example ``example[i]`` (its target, its ``forward_kwargs`` rows), differentiable.

    ``target`` (after :func:`check_target_rows`) is None, an int or one per example; ``forward_kwargs`` holds
    per-example tensors ``(n_examples, ...)`` handed to ``f`` as keyword arguments with each row."""
    targets = None  # (n_examples,) when each example has its own target
    if target is not None and not isinstance(target, (int, np.integer)):
        targets = torch.as_tensor(np.asarray(target.detach().cpu() if isinstance(target, torch.Tensor) else target),
                                  device=device)
    if forward_kwargs is not None and not isinstance(forward_kwargs, dict):
        raise TypeError(f"forward_kwargs must be a dict of per-example tensors or None, got "
                        f"{type(forward_kwargs).__name__}")
    per_example = dict(forward_kwargs or {})  # name -> (n_examples, ...) tensor
    for key, value in per_example.items():
        if not isinstance(value, torch.Tensor) or value.shape[:1] != (n_examples,):
            raise ValueError(f"forward_kwargs[{key!r}] must be a tensor with one row per example ({n_examples}), "
                             f"got {tuple(np.shape(value))}")

    def explained(rows: torch.Tensor, example: torch.Tensor) -> torch.Tensor:
        extra = {key: value[example] for key, value in per_example.items()}  # each (N, ...)
        out = logits_of(f(rows, **extra), len(rows))  # (N,) or (N, C)
        return select_target(out, target if targets is None else targets[example], probabilities)  # (N,)

    return explained


def integrated_gradients(f: Callable, inputs: torch.Tensor, *, target: int | Sequence[int] | torch.Tensor | None = None,
                         baseline: torch.Tensor | float | None = None, n_steps: int = 50, method: str = "gausslegendre",
                         batch_size: int | None = None, probabilities: bool = False, captum_compatible: bool = False,
                         forward_kwargs: dict[str, torch.Tensor] | None = None) -> IGResult:
    """Integrated Gradients of ``f`` at ``inputs`` ``(B, ...)``, with every path point in batched calls.

    Args:
        f: model or function, float tensor ``(N, ...)`` -> ``(N,)`` or ``(N, C)`` logits (a tuple
            output contributes its first element).
        inputs: ``(B, ...)`` floating-point tensor, finite, ``B >= 1``.
        target: class explained for ``(N, C)`` outputs: an int, or one int per example.
        baseline: ``x'``: a tensor shaped like ``inputs``, a number, or None (zeros).
        n_steps, method: the quadrature, see :func:`integration_rule`.
        batch_size: at most this many path rows go through ``f`` at once (None: the package default);
            the result does not depend on it beyond rounding.
        probabilities: explain the softmax probability of ``target`` instead of its logit.
        captum_compatible: use captum's rule (float32 nodes and weights, and its trapezoid weights summing to
            ``1 - 1/n``), to reproduce ``captum.attr.IntegratedGradients`` to rounding error.
        forward_kwargs: per-example tensors ``(B, ...)`` (an attention mask, say), repeated along the path and
            handed to ``f`` as keyword arguments with each row.

    Returns:
        :class:`IGResult` ``(attributions (B, ...), delta (B,))``. Only gradients with respect to the path
        points are taken: the parameters' ``.grad`` stay untouched, and so does the model's train/eval mode.
    """
    if not callable(f):
        raise TypeError(f"f must be a model or a function, got {type(f).__name__}")
    if not isinstance(inputs, torch.Tensor):
        raise TypeError(f"inputs must be a floating-point torch tensor (B, ...), got {type(inputs).__name__}")
    check_float_batch("inputs", inputs, 2)
    probabilities = check_flag("probabilities", probabilities)
    inputs = inputs.detach()
    B, features = inputs.shape[0], inputs.shape[1:]
    target = check_target_rows(target, B)
    if baseline is None or isinstance(baseline, (int, float)) and not isinstance(baseline, bool):
        baseline = torch.full_like(inputs, float(baseline or 0))  # (B, ...)
    if not isinstance(baseline, torch.Tensor):
        raise TypeError(f"baseline must be a tensor shaped like inputs, a number or None, got "
                        f"{type(baseline).__name__}")
    check_same_shape(inputs, baseline)
    check_float_batch("baseline", baseline, inputs.dim(), f"{tuple(inputs.shape)}")
    baseline = baseline.detach().to(inputs)  # (B, ...)
    alphas, weights = integration_rule(method, n_steps, captum_compatible=captum_compatible)  # (n,), (n,)
    n = len(alphas)
    explained = _explained_output(f, target, probabilities, forward_kwargs, B, inputs.device)
    chunk = resolve_batch_size(batch_size)
    examples = torch.arange(B, device=inputs.device)  # (B,)
    with torch.no_grad():  # the endpoints: F(x) and F(x'), checks target and NaNs before the path
        ends = [torch.cat([explained(x[i:i + chunk], examples[i:i + chunk]) for i in range(0, B, chunk)])
                for x in (inputs, baseline)]  # 2 x (B,)

    alpha = alphas.to(inputs).view(1, n, *[1] * len(features))  # (1, n, 1...)
    path = baseline[:, None] + alpha * (inputs - baseline)[:, None]  # (B, n, ...)
    path = path.reshape(B * n, *features)  # (B*n, ...): example-major rows
    row_example = examples.repeat_interleave(n)  # (B*n,)
    grads = []
    for i in range(0, B * n, chunk):
        rows = path[i:i + chunk].detach().requires_grad_(True)  # (N, ...) a leaf: gradients stop here
        with torch.enable_grad():
            out = explained(rows, row_example[i:i + chunk])  # (N,)
            if not out.requires_grad:
                raise ValueError("the model's output does not depend on its input through autograd (no gradient); "
                                 "Integrated Gradients needs a differentiable PyTorch model")
            grads.append(torch.autograd.grad(out.sum(), rows)[0])  # (N, ...): each row's gradient, rows being
            # independent (no batch statistics: eval mode)
        if not bool(torch.isfinite(grads[-1]).all()):
            raise ValueError("the model's gradient is NaN or inf on the path from the baseline to the input "
                             "(a kink such as sqrt(|x|) at 0?); Integrated Gradients is undefined there")
    grads = torch.cat(grads).view(B, n, *features)  # (B, n, ...)
    weight = weights.to(inputs).view(1, n, *[1] * len(features))  # (1, n, 1...)
    average_grad = (grads * weight).sum(1)  # (B, ...): Σ_k w_k ∇F(x' + α_k (x - x'))
    attributions = average_grad * (inputs - baseline)  # (B, ...)
    delta = attributions.reshape(B, -1).sum(1) - (ends[0] - ends[1])  # (B,)
    return IGResult(as_numpy(attributions), as_numpy(delta))


def token_integrated_gradients(model: torch.nn.Module, input_ids: torch.Tensor,
                               attention_mask: torch.Tensor | None = None, *,
                               target: int | Sequence[int] | torch.Tensor | None = None,
                               baseline: str | torch.Tensor = "pad", pad_id: int | None = None,
                               mask_id: int | None = None, keep_ids: Sequence[int] = (), n_steps: int = 50,
                               method: str = "gausslegendre", batch_size: int | None = None,
                               probabilities: bool = False, token_type_ids: torch.Tensor | None = None,
                               position: int | Sequence[int] | torch.Tensor | None = None,
                               captum_compatible: bool = False) -> TokenIGResult:
    """Integrated Gradients of a token model along its token embeddings, summed to one score per token.

    ``model`` honours the classifier contract (``model(attention_mask=..., inputs_embeds=...)`` -> ``(B, C)``,
    ``model.get_input_embeddings()``), or is a language model returning ``(B, L, V)`` logits (first element of
    a tuple output, as :class:`bigtut.gpt.GPT`): then the explained number is the logit of token ``target`` at
    ``position`` (an int or one per row, negative counting back from the last real token; default ``-1``, each
    row's last real token).

    The path runs from the baseline's token embeddings to the input's; position and segment embeddings and
    the attention mask stay fixed. ``baseline`` (IG's reference input, given as token ids): ``"pad"`` (every
    token replaced by ``pad_id``, by default ``model.config.pad_id``), ``"mask"`` (by ``mask_id``), ``"zero"``
    (zero embeddings), or a ``(B, L)`` tensor of baseline ids. The baseline tokens stay attended: this is not
    ``absent="pad"`` of the perturbation methods, which hides a token. With the three named baselines the tokens
    whose id is in ``keep_ids`` ([CLS], [SEP], ...) keep their embedding; padded positions (``attention_mask``
    0) always do, so their attribution is 0.

    Returns :class:`TokenIGResult` ``(attributions (B, L), delta (B,), embedding_attributions (B, L, d))``.
    Other arguments as :func:`integrated_gradients`.
    """
    embedding = input_embeddings(model)
    keep_ids = check_keep_ids(keep_ids)
    input_ids, real = check_token_batch(input_ids, attention_mask, embedding.num_embeddings)  # (B, L), (B, L)
    B, L = input_ids.shape
    if token_type_ids is not None:
        check_same_shape(token_type_ids, input_ids, "token_type_ids", "input_ids")
    x, x_base = _token_baseline(model, embedding, input_ids, real, baseline, pad_id, mask_id, keep_ids)

    explicit_position = position is not None
    positions = last_real_positions(real) if position is None else resolve_positions(position, real)  # (B,)
    fixed = {name: value for name, value in (("attention_mask", attention_mask), ("token_type_ids", token_type_ids))
             if value is not None}
    attributions, delta = integrated_gradients(
        _embedding_forward(model, explicit_position), x, target=target, baseline=x_base, n_steps=n_steps,
        method=method, batch_size=batch_size, probabilities=probabilities, captum_compatible=captum_compatible,
        forward_kwargs={"position": positions, **fixed})
    return TokenIGResult(attributions.sum(-1), delta, attributions)  # (B, L), (B,), (B, L, d)


def _token_baseline(model: torch.nn.Module, embedding: torch.nn.Embedding, input_ids: torch.Tensor,
                    real: torch.Tensor, baseline: str | torch.Tensor, pad_id: int | None, mask_id: int | None,
                    keep_ids: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """The token embeddings ``x`` ``(B, L, d)`` of ``input_ids`` ``(B, L)`` and those of the baseline
    ``(B, L, d)`` (``baseline`` as :func:`token_integrated_gradients` reads it; ``keep_ids`` already checked), without
    gradients. Padded positions (``real`` False) keep their own embedding, and with a named baseline so do the
    tokens whose id is in ``keep_ids``."""
    keep = ~real  # (B, L): positions whose embedding the baseline keeps
    if isinstance(baseline, str):
        if baseline not in ("pad", "mask", "zero"):
            raise ValueError(f"baseline must be 'pad', 'mask', 'zero' or a (B, L) tensor of ids, got {baseline!r}")
        keep = keep | torch.isin(input_ids, torch.as_tensor(list(keep_ids), dtype=input_ids.dtype,
                                                             device=input_ids.device))  # (B, L)
        if baseline == "pad":
            pad_id = resolve_pad_id(model, pad_id, embedding.num_embeddings)
        fill = {"pad": pad_id, "mask": mask_id, "zero": 0}[baseline]  # "zero" replaces the embeddings below
        if fill is None:
            raise ValueError(f"baseline={baseline!r} needs {baseline}_id= (the id of the [{baseline.upper()}] token)")
        if isinstance(fill, bool) or not isinstance(fill, (int, np.integer)) \
                or not 0 <= fill < embedding.num_embeddings:
            raise ValueError(f"{baseline}_id must be a token id in [0, {embedding.num_embeddings}), got {fill!r}")
        baseline_ids = torch.full_like(input_ids, int(fill))  # (B, L)
    elif isinstance(baseline, torch.Tensor):
        check_same_shape(baseline, input_ids, "baseline", "input_ids")
        baseline_ids, _ = check_token_batch(baseline, None, embedding.num_embeddings)
    else:
        raise TypeError(f"baseline must be 'pad', 'mask', 'zero' or a (B, L) tensor of ids, got "
                        f"{type(baseline).__name__}")
    baseline_ids = torch.where(keep, input_ids, baseline_ids)  # (B, L)
    with torch.no_grad():
        x, x_base = embedding(input_ids), embedding(baseline_ids)  # (B, L, d), (B, L, d)
    if isinstance(baseline, str) and baseline == "zero":
        x_base = torch.where(keep[..., None], x, torch.zeros_like(x))  # (B, L, d)
    return x, x_base


def _embedding_forward(model: torch.nn.Module, position_given: bool) -> Callable[..., torch.Tensor]:
    """``forward(embeds (N, L, d), position (N,), **kwargs)``: a token model's logits ``(N, C)`` (a classifier)
    or ``(N, V)`` read at ``position`` (a language model), from ``model(inputs_embeds=embeds, **kwargs)``."""

    def forward(embeds: torch.Tensor, position: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        logits = logits_of(model(inputs_embeds=embeds, **kwargs), len(embeds))  # (N, C) or (N, L, V)
        return explained_logits(logits, position, position_given)  # (N, C) or (N, V)

    return forward
