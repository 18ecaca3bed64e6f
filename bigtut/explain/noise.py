"""Attributions averaged over random inputs, from scratch: SmoothGrad and VarGrad (Smilkov et al., 2017;
Adebayo et al., 2018) and GradientSHAP / expected gradients (Lundberg & Lee, 2017; Erion et al., 2021).

Shape legend:  B batch   n samples   K baseline rows   N rows sent to the model   L positions   d d_model

SmoothGrad averages a base attribution (the gradient, or IG) over ``n`` noisy copies ``x + ε``,
``ε ~ N(0, stdev²)``; VarGrad takes their variance ``E[a²] − E[a]²`` instead. GradientSHAP draws, per sample, a
baseline row ``b`` from a distribution, a point ``α ~ U(0, 1)`` and noise, and averages
``(x̃ − b) ⊙ ∇F(b + α (x̃ − b))``: in expectation, IG averaged over the baselines.

Every row of a batch gets the same draws (``seed``; None = the package default), so a row explained alone
equals the row in a batch. The draws are captum 0.9's, for one row: noise ``torch.normal(0, stdev)`` in float32
for the shape ``(n, ...)``, then (GradientSHAP) baseline rows ``np.random.choice(K, n)`` before the points
``np.random.uniform(0, 1, n)``, from generators seeded with ``seed`` -- where captum uses the global ones (so
``torch.manual_seed(s); np.random.seed(s)`` and captum's ``NoiseTunnel``/``GradientShap`` on one row, with
``nt_samples_batch_size=None``, give these numbers). The noise is drawn on the CPU, so a GPU gives the same.
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
    resolve_seed,
)
from bigtut.explain.common import as_numpy, last_real_positions, resolve_positions
from bigtut.explain.integrated_gradients import (
    _embedding_forward,
    _explained_output,
    _token_baseline,
    integrated_gradients,
    integration_rule,
)

__all__ = ["NOISE_BASES", "GradientShapResult", "NoiseTunnelResult", "TokenGradientShapResult",
           "TokenNoiseTunnelResult", "gradient_shap", "smoothgrad", "token_gradient_shap", "token_smoothgrad"]

NOISE_BASES = ("saliency", "integrated_gradients")


class NoiseTunnelResult(NamedTuple):
    """``attributions`` ``(B, ...)``: the mean of the sampled attributions (SmoothGrad) or their variance
    (VarGrad); ``mean`` and ``mean_square`` over the samples (captum's "smoothgrad" and "smoothgrad_sq")."""

    attributions: np.ndarray
    mean: np.ndarray
    mean_square: np.ndarray


class TokenNoiseTunnelResult(NamedTuple):
    """Per-token ``attributions`` ``(B, L)`` = ``embedding_attributions`` ``(B, L, d)`` summed over ``d``."""

    attributions: np.ndarray
    embedding_attributions: np.ndarray


class GradientShapResult(NamedTuple):
    """``attributions`` ``(B, ...)`` and ``delta`` ``(B,)``: Σ attributions − mean over the samples of
    ``F(x̃) − F(b)`` (captum's per-sample deltas, averaged); it shrinks as ``n_samples`` grows."""

    attributions: np.ndarray
    delta: np.ndarray


class TokenGradientShapResult(NamedTuple):
    """Per-token ``attributions`` ``(B, L)``, ``delta`` ``(B,)`` and ``embedding_attributions`` ``(B, L, d)``."""

    attributions: np.ndarray
    delta: np.ndarray
    embedding_attributions: np.ndarray


# ------------------------------------------------------------------------------------------------ shared parts
def _check_stdev(stdev: Any) -> float:
    if isinstance(stdev, (bool, np.bool_)) or not isinstance(stdev, (int, float, np.integer, np.floating)) \
            or not np.isfinite(stdev) or stdev < 0:
        raise ValueError(f"stdev (the noise's standard deviation) must be a number >= 0, got {stdev!r}")
    return float(stdev)


def _check_inputs(f: Any, inputs: Any) -> torch.Tensor:
    if not callable(f):
        raise TypeError(f"f must be a model or a function, got {type(f).__name__}")
    if not isinstance(inputs, torch.Tensor):
        raise TypeError(f"inputs must be a floating-point torch tensor (B, ...), got {type(inputs).__name__}")
    return check_float_batch("inputs", inputs, 2).detach()


def _gaussian_noise(shape: tuple[int, ...], stdev: float, seed: int, like: torch.Tensor) -> torch.Tensor:
    """Noise ``shape`` drawn as captum draws it (``torch.normal`` with a float32 standard deviation), from a CPU
    generator seeded with ``seed``, then moved to ``like``'s dtype and device."""
    if stdev == 0:
        return torch.zeros(shape, dtype=like.dtype, device=like.device)
    std = torch.full(shape, stdev, dtype=torch.float32)  # as captum's torch.tensor(stdev).repeat(shape)
    return torch.normal(0.0, std, generator=torch.Generator().manual_seed(seed)).to(like)


def _gradients(explained: Callable, rows: torch.Tensor, example: torch.Tensor, chunk: int) -> torch.Tensor:
    """``∂F/∂rows`` ``(N, ...)`` of the explained output, at most ``chunk`` rows per backward pass."""
    grads = []
    for i in range(0, len(rows), chunk):
        leaf = rows[i:i + chunk].detach().requires_grad_(True)  # a leaf: the parameters' .grad stay untouched
        with torch.enable_grad():
            out = explained(leaf, example[i:i + chunk])  # (k,)
            if not out.requires_grad:
                raise ValueError("the model's output does not depend on its input through autograd (no gradient); "
                                 "this method needs a differentiable PyTorch model")
            (grad,) = torch.autograd.grad(out.sum(), leaf)  # (k, ...): rows are independent in eval mode
        if not bool(torch.isfinite(grad).all()):
            raise ValueError("the model's gradient is NaN or inf at a sampled input")
        grads.append(grad)
    return torch.cat(grads)


def _values(explained: Callable, rows: torch.Tensor, example: torch.Tensor, chunk: int) -> torch.Tensor:
    """The explained output ``(N,)`` of ``rows``, without gradients (checks the target and NaNs too)."""
    with torch.no_grad():
        return torch.cat([explained(rows[i:i + chunk], example[i:i + chunk]) for i in range(0, len(rows), chunk)])


def _per_sample(value: Any, n: int) -> Any:
    """A per-example target (or tensor of ``forward_kwargs``) repeated for the ``n`` samples of each example."""
    if value is None or isinstance(value, (int, np.integer)):
        return value
    return value.repeat_interleave(n, 0) if isinstance(value, torch.Tensor) else np.repeat(np.asarray(value), n)


def _rows(target: Any, start: int, size: int) -> Any:
    """Rows ``start:start + size`` of a per-row target (None or an int: itself)."""
    return target if target is None or isinstance(target, (int, np.integer)) else target[start:start + size]


# ------------------------------------------------------------------------------------------------ features
def smoothgrad(f: Callable, inputs: torch.Tensor, *, target: int | Sequence[int] | torch.Tensor | None = None,
               base: str = "saliency", n_samples: int = 50, stdev: float = 0.15, variance: bool = False,
               seed: int | None = None, absolute: bool = True, baseline: torch.Tensor | float | None = None,
               n_steps: int = 50, method: str = "gausslegendre", batch_size: int | None = None,
               probabilities: bool = False, captum_compatible: bool = False,
               forward_kwargs: dict[str, torch.Tensor] | None = None) -> NoiseTunnelResult:
    """SmoothGrad (``variance=False``) or VarGrad (``variance=True``) of ``f`` at ``inputs`` ``(B, ...)``.

    The base attribution of each noisy copy ``x + ε`` (``n_samples`` copies, ``ε ~ N(0, stdev²)``, absolute
    units, the same ``ε`` for every row): ``"saliency"`` the gradient, ``|∂F/∂x|`` with ``absolute=True`` as
    captum's ``Saliency`` by default (False: the signed gradient); or ``"integrated_gradients"`` from
    ``baseline`` (None: zeros; a number; a tensor shaped like ``inputs``; it gets no noise) to the noisy copy,
    with ``n_steps``, ``method``, ``captum_compatible`` as :func:`integrated_gradients`. ``f``, ``target``,
    ``batch_size``, ``probabilities``, ``forward_kwargs`` as there. Equals captum's
    ``NoiseTunnel(Saliency(f) | IntegratedGradients(f)).attribute(x, nt_type="smoothgrad" | "vargrad",
    nt_samples=n_samples, stdevs=stdev)`` with ``torch.manual_seed(seed)``, one row at a time.
    """
    inputs = _check_inputs(f, inputs)
    B, features = inputs.shape[0], inputs.shape[1:]
    if base not in NOISE_BASES:
        raise ValueError(f"base must be one of {NOISE_BASES}, got {base!r}")
    n, stdev = check_budget("n_samples", n_samples), _check_stdev(stdev)
    variance, absolute = check_flag("variance", variance), check_flag("absolute", absolute)
    probabilities, seed, chunk = check_flag("probabilities", probabilities), resolve_seed(seed), \
        resolve_batch_size(batch_size)
    target = check_target_rows(target, B)
    explained = _explained_output(f, target, probabilities, forward_kwargs, B, inputs.device)
    if base == "integrated_gradients":
        if baseline is None or isinstance(baseline, (int, float)) and not isinstance(baseline, bool):
            baseline = torch.full_like(inputs, float(baseline or 0))  # (B, ...)
        if not isinstance(baseline, torch.Tensor):
            raise TypeError(f"baseline must be a tensor shaped like inputs, a number or None, got "
                            f"{type(baseline).__name__}")
        check_same_shape(inputs, baseline)
    noise = _gaussian_noise((n, *features), stdev, seed, inputs)  # (n, ...)
    noisy = (inputs[:, None] + noise).reshape(B * n, *features)  # (B*n, ...): example-major rows
    example = torch.arange(B, device=inputs.device).repeat_interleave(n)  # (B*n,)
    if base == "saliency":
        _values(explained, inputs, example[::n], chunk)  # checks the target and the outputs first
        grads = _gradients(explained, noisy, example, chunk)  # (B*n, ...)
        samples = as_numpy(grads.abs() if absolute else grads)
    else:  # IG of a few examples' noisy copies per call: its path holds n * n_steps rows per example
        group = n * max(1, chunk // (n * len(integration_rule(method, n_steps)[0])))  # rows per IG call
        targets, base_rows = _per_sample(target, n), baseline.detach().to(inputs).repeat_interleave(n, 0)
        extra = {k: _per_sample(v, n) for k, v in (forward_kwargs or {}).items()}  # each (B*n, ...)
        samples = np.concatenate([integrated_gradients(
            f, noisy[i:i + group], target=_rows(targets, i, group), baseline=base_rows[i:i + group],
            n_steps=n_steps, method=method, batch_size=batch_size, probabilities=probabilities,
            captum_compatible=captum_compatible, forward_kwargs={k: v[i:i + group] for k, v in extra.items()}
        ).attributions for i in range(0, B * n, group)])
    samples = samples.reshape(B, n, *features)  # (B, n, ...)
    mean, mean_square = samples.sum(1) / n, (samples ** 2).sum(1) / n  # (B, ...), (B, ...)
    return NoiseTunnelResult(mean_square - mean * mean if variance else mean, mean, mean_square)


def _expected_gradients(f: Callable, inputs: torch.Tensor, distribution: torch.Tensor, target: Any, n: int,
                        stdev: float, seed: int, chunk: int, probabilities: bool,
                        forward_kwargs: dict | None) -> tuple[torch.Tensor, torch.Tensor]:
    """GradientSHAP of ``inputs`` ``(B, ...)`` against each row's baseline ``distribution`` ``(B, K, ...)``:
    ``(attributions (B, ...), delta (B,))``."""
    B, K, features = len(inputs), distribution.shape[1], inputs.shape[1:]
    explained = _explained_output(f, target, probabilities, forward_kwargs, B, inputs.device)
    rng = np.random.RandomState(seed)  # captum: the global np.random, baseline rows first, then the points
    index = torch.as_tensor(rng.choice(K, n), device=inputs.device)  # (n,)
    noise = _gaussian_noise((n, *features), stdev, seed, inputs)  # (n, ...)
    alpha = torch.as_tensor(rng.uniform(0.0, 1.0, n)).to(inputs).view(1, n, *[1] * len(features))  # (1, n, 1...)
    noisy = inputs[:, None] + noise  # (B, n, ...)
    drawn = distribution[:, index]  # (B, n, ...)
    scaled = alpha * noisy + (1 - alpha) * drawn  # (B, n, ...): captum's form of b + α (x̃ - b)
    example = torch.arange(B, device=inputs.device).repeat_interleave(n)  # (B*n,)
    rows = (B * n, *features)
    gap = _values(explained, noisy.reshape(rows), example, chunk) \
        - _values(explained, drawn.reshape(rows), example, chunk)  # (B*n,): F(x̃) - F(b), checked first
    samples = (noisy - drawn) * _gradients(explained, scaled.reshape(rows), example, chunk).view(B, n, *features)
    delta = samples.reshape(B, n, -1).sum(-1) - gap.view(B, n)  # (B, n): captum's delta per sample
    return samples.sum(1) / n, delta.mean(1)  # (B, ...), (B,)


def gradient_shap(f: Callable, inputs: torch.Tensor, *, target: int | Sequence[int] | torch.Tensor | None = None,
                  baseline: torch.Tensor | float | None = None, n_samples: int = 50, stdev: float = 0.0,
                  seed: int | None = None, batch_size: int | None = None, probabilities: bool = False,
                  forward_kwargs: dict[str, torch.Tensor] | None = None) -> GradientShapResult:
    """GradientSHAP (expected gradients) of ``f`` at ``inputs`` ``(B, ...)``.

    ``baseline`` is a distribution of reference inputs ``(K, ...)``, each shaped like one input and shared by
    every row (None: one row of zeros; a number: one constant row). Each of ``n_samples`` samples draws a row
    ``b``, a point ``α ~ U(0, 1)`` and noise ``ε ~ N(0, stdev²)`` (``x̃ = x + ε``) and contributes
    ``(x̃ − b) ⊙ ∇F(α x̃ + (1 − α) b)``; the attributions are their mean. Equals captum's
    ``GradientShap(f).attribute(x, baselines, n_samples=n_samples, stdevs=stdev)`` after
    ``torch.manual_seed(seed); np.random.seed(seed)``, one row at a time. Other arguments as :func:`smoothgrad`.
    """
    inputs = _check_inputs(f, inputs)
    B, features = inputs.shape[0], inputs.shape[1:]
    if baseline is None or isinstance(baseline, (int, float)) and not isinstance(baseline, bool):
        baseline = torch.full_like(inputs[:1], float(baseline or 0))  # (1, ...)
    if not isinstance(baseline, torch.Tensor):
        raise TypeError(f"baseline must be a tensor (K, {', '.join(map(str, features))}) of reference inputs, a "
                        f"number or None, got {type(baseline).__name__}")
    if baseline.shape[1:] != features or baseline.dim() != inputs.dim():
        raise ValueError(f"baseline must be a distribution (K, {', '.join(map(str, features))}) of reference "
                         f"inputs, each shaped like one input; got shape {tuple(baseline.shape)}")
    check_float_batch("baseline", baseline, inputs.dim(), "(K, ...)")
    n, stdev = check_budget("n_samples", n_samples), _check_stdev(stdev)
    probabilities, seed = check_flag("probabilities", probabilities), resolve_seed(seed)
    distribution = baseline.detach().to(inputs)[None].expand(B, *baseline.shape)  # (B, K, ...)
    attributions, delta = _expected_gradients(f, inputs, distribution, check_target_rows(target, B), n, stdev, seed,
                                              resolve_batch_size(batch_size), probabilities, forward_kwargs)
    return GradientShapResult(as_numpy(attributions), as_numpy(delta))


# ------------------------------------------------------------------------------------------------ tokens
def _token_setup(model: Any, input_ids: Any, attention_mask: Any, keep_ids: Any, position: Any):
    """``(embedding, input_ids, real, x (B, L, d), forward, forward_kwargs, keep_ids)`` shared by the token
    methods: ``forward(embeds, position=..., attention_mask=...)`` is :func:`_embedding_forward`."""
    embedding = input_embeddings(model)
    keep_ids = check_keep_ids(keep_ids)
    input_ids, real = check_token_batch(input_ids, attention_mask, embedding.num_embeddings)  # (B, L), (B, L)
    positions = last_real_positions(real) if position is None else resolve_positions(position, real)  # (B,)
    kwargs = {"position": positions} if attention_mask is None else {"position": positions,
                                                                     "attention_mask": attention_mask}
    with torch.no_grad():
        x = embedding(input_ids)  # (B, L, d)
    return embedding, input_ids, real, x, _embedding_forward(model, position is not None), kwargs, keep_ids


def token_smoothgrad(model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, *,
                     target: int | Sequence[int] | torch.Tensor | None = None, base: str = "saliency",
                     n_samples: int = 50, stdev: float = 0.02, variance: bool = False, seed: int | None = None,
                     absolute: bool = True, baseline: str | torch.Tensor = "pad", pad_id: int | None = None,
                     mask_id: int | None = None, keep_ids: Sequence[int] = (), n_steps: int = 50,
                     method: str = "gausslegendre", batch_size: int | None = None, probabilities: bool = False,
                     position: int | Sequence[int] | torch.Tensor | None = None,
                     captum_compatible: bool = False) -> TokenNoiseTunnelResult:
    """SmoothGrad / VarGrad of a token model on its token embeddings, summed over ``d`` to one score per token.

    :func:`smoothgrad` on the embeddings ``(B, L, d)`` through the classifier contract (a language model's
    logit of ``target`` is read at ``position``, as :func:`token_integrated_gradients`): noise (embedding units;
    the default suits BERT-like embeddings of spread about 0.02–0.05) goes onto every position, and the base
    attribution per coordinate is reduced by a **sum over d** -- with ``absolute=True`` saliency that is the L1
    norm of the gradient (:func:`gradient_norm` takes the L2 norm). ``baseline``, ``pad_id``, ``mask_id``,
    ``keep_ids`` (base IG only) as :func:`token_integrated_gradients`; kept tokens keep their embedding in the
    baseline but still get noise, so they can score. Padding gets 0. Returns :class:`TokenNoiseTunnelResult`.
    """
    embedding, input_ids, real, x, forward, kwargs, keep_ids = _token_setup(model, input_ids, attention_mask,
                                                                            keep_ids, position)
    x_base = None
    if base == "integrated_gradients":
        _, x_base = _token_baseline(model, embedding, input_ids, real, baseline, pad_id, mask_id, keep_ids)
    result = smoothgrad(forward, x, target=target, base=base, n_samples=n_samples, stdev=stdev, variance=variance,
                        seed=seed, absolute=absolute, baseline=x_base, n_steps=n_steps, method=method,
                        batch_size=batch_size, probabilities=probabilities, captum_compatible=captum_compatible,
                        forward_kwargs=kwargs)
    per_coordinate = result.attributions * as_numpy(real)[..., None]  # (B, L, d)
    return TokenNoiseTunnelResult(per_coordinate.sum(-1), per_coordinate)


def token_gradient_shap(model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                        *, target: int | Sequence[int] | torch.Tensor | None = None,
                        baseline: str | torch.Tensor = "pad", pad_id: int | None = None, mask_id: int | None = None,
                        keep_ids: Sequence[int] = (), n_samples: int = 50, stdev: float = 0.0,
                        seed: int | None = None, batch_size: int | None = None, probabilities: bool = False,
                        position: int | Sequence[int] | torch.Tensor | None = None) -> TokenGradientShapResult:
    """GradientSHAP of a token model on its token embeddings, summed over ``d`` to one score per token.

    The baseline distribution of each row: ``"pad"``, ``"mask"``, ``"zero"`` (one baseline text, as
    :func:`token_integrated_gradients` builds it: kept and padded tokens keep their embedding), or a ``(K, L)``
    tensor of ids, K baseline texts shared by every row (padded positions keep the row's own token). Noise
    ``stdev`` (embedding units) goes onto every position. Equals captum's ``GradientShap`` on the embedding
    tensor (one row at a time, seeded as in :func:`gradient_shap`) followed by the sum over ``d``; with one
    baseline text and many samples it approaches :func:`token_integrated_gradients`. Padding gets 0.
    """
    embedding, input_ids, real, x, forward, kwargs, keep_ids = _token_setup(model, input_ids, attention_mask,
                                                                            keep_ids, position)
    B, L = input_ids.shape
    if isinstance(baseline, torch.Tensor):
        if baseline.dim() != 2 or baseline.shape[1] != L or len(baseline) == 0:
            raise ValueError(f"baseline ids must be a distribution (K, {L}) of K >= 1 baseline texts as long as "
                             f"input_ids, got shape {tuple(baseline.shape)}")
        rows = [_token_baseline(model, embedding, input_ids, real, ids.expand(B, L), pad_id, mask_id, keep_ids)[1]
                for ids in baseline]  # K x (B, L, d)
    else:
        rows = [_token_baseline(model, embedding, input_ids, real, baseline, pad_id, mask_id, keep_ids)[1]]
    n, stdev = check_budget("n_samples", n_samples), _check_stdev(stdev)
    probabilities, seed = check_flag("probabilities", probabilities), resolve_seed(seed)
    attributions, delta = _expected_gradients(forward, x, torch.stack(rows, 1), check_target_rows(target, B), n,
                                              stdev, seed, resolve_batch_size(batch_size), probabilities, kwargs)
    per_coordinate = as_numpy(attributions) * as_numpy(real)[..., None]  # (B, L, d)
    return TokenGradientShapResult(per_coordinate.sum(-1), as_numpy(delta), per_coordinate)
