"""Cheap token attributions, the yardsticks every expensive method should beat: one gradient (gradient × input,
gradient norm) and the attention weights read as an explanation (raw attention, attention rollout); and the
sanity check any of them, cheap or not, must pass: the explanation has to change when the model does
(:func:`randomisation_check`).

Shape legend:  B batch   L positions   d d_model   h heads   C classes   n layers

The attribution functions return ``(B, L)`` scores (or the ``(B, L, L)`` rollout), 0 at padded positions
(``attention_mask`` 0). The gradient methods explain the **logit** of ``target`` (``probabilities=True``: its
softmax probability) through the classifier contract: ``model(attention_mask=..., inputs_embeds=...)`` ->
``(B, C)`` and ``model.get_input_embeddings()``. Call ``model.eval()`` first; nothing here changes the mode.

Attention is what the model *mixes*, not what it *uses*: attention scores cost one forward pass, but nothing
ties them to the output (see the faithfulness metrics of :mod:`bigtut.explain.metrics`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch

from bigtut.explain.common import as_numpy, select_target
from bigtut.explain.metrics import rank_agreement
from bigtut.validation import check_attention_mask, check_token_ids

__all__ = ["HEAD_NAMES", "HEAD_REDUCTIONS", "RandomisationResult", "attention_rollout", "gradient_norm",
           "gradient_x_input", "model_attentions", "randomisation_check", "raw_attention_scores", "rollout_scores"]

HEAD_REDUCTIONS = ("mean", "max", "min")
HEAD_NAMES = ("classifier", "head", "pooler", "ln_f")  # randomised first, in this order


class RandomisationResult(NamedTuple):
    """The randomised ``steps`` (names, top first) and the Spearman correlation ``(n_steps, B)`` of |scores|
    between the original model and the model randomised down to that step."""

    steps: list[str]
    spearman: np.ndarray


def _embedding_gradient(model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
                        target: Any, probabilities: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Token embeddings ``x`` ``(B, L, d)``, the gradient ``∂F/∂x`` ``(B, L, d)`` of the explained output, and
    the real positions ``(B, L)`` as a 0/1 float mask."""
    embedding = model.get_input_embeddings()
    check_token_ids(input_ids, embedding.num_embeddings)
    B, L = input_ids.shape
    real = check_attention_mask(attention_mask, B, L)  # (B, L) bool or None
    with torch.no_grad():
        x = embedding(input_ids)  # (B, L, d)
    x = x.detach().requires_grad_(True)  # a leaf: the gradient stops here, parameters' .grad stay untouched
    with torch.enable_grad():
        out = model(attention_mask=attention_mask, inputs_embeds=x)
        out = out[0] if isinstance(out, tuple) else out  # (B, C)
        explained = select_target(out, target, probabilities)  # (B,)
        (grad,) = torch.autograd.grad(explained.sum(), x)  # (B, L, d): rows are independent in eval mode
    real = torch.ones(B, L, dtype=torch.bool, device=x.device) if real is None else real
    return x.detach(), grad, real.to(x.dtype)


def gradient_x_input(model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                     target: int | Sequence[int] | torch.Tensor | None = None,
                     probabilities: bool = False) -> torch.Tensor:
    """Gradient × input per token: ``Σ_d x_td · ∂F/∂x_td`` ``(B, L)``, with ``x_t`` the token embedding.

    It is the first-order Taylor term of removing the embedding (moving it to zero), and equals Integrated
    Gradients with a zero baseline when ``F`` is linear in the embeddings. One backward pass.
    """
    x, grad, real = _embedding_gradient(model, input_ids, attention_mask, target, probabilities)
    return (x * grad).sum(-1) * real  # (B, L)


def gradient_norm(model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                  target: int | Sequence[int] | torch.Tensor | None = None,
                  probabilities: bool = False) -> torch.Tensor:
    """Saliency per token: the L2 norm ``‖∂F/∂x_t‖`` over the embedding dimension ``(B, L)``.

    Unsigned, and blind to the input itself: a model linear in the embeddings gives every token the same norm.
    """
    _, grad, real = _embedding_gradient(model, input_ids, attention_mask, target, probabilities)
    return grad.norm(dim=-1) * real  # (B, L)


def model_attentions(model: torch.nn.Module, input_ids: torch.Tensor,
                     attention_mask: torch.Tensor | None = None) -> list[torch.Tensor]:
    """The attention weights of every layer, ``n`` tensors ``(B, h, L, L)`` (first layer first), from one
    forward pass ``model(input_ids, attention_mask, return_attention=True)`` without gradients."""
    with torch.no_grad():
        out = model(input_ids, attention_mask, return_attention=True)
    if not isinstance(out, tuple) or len(out) != 2:
        raise ValueError(f"model(..., return_attention=True) must return (logits, attentions), got "
                         f"{type(out).__name__}")
    return [weights.detach() for weights in out[1]]


def _reduced_heads(attentions: Sequence[torch.Tensor], attention_mask: torch.Tensor | None,
                   head_reduction: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Check the attention list; return it head-reduced as ``(n, B, L, L)`` and the real positions ``(B, L)``."""
    if head_reduction not in HEAD_REDUCTIONS:
        raise ValueError(f"head_reduction must be one of {', '.join(HEAD_REDUCTIONS)}, got {head_reduction!r}")
    if not isinstance(attentions, (list, tuple)) or len(attentions) == 0:
        raise ValueError(f"attentions must be a non-empty list of (B, h, L, L) tensors, one per layer, got "
                         f"{type(attentions).__name__}")
    if any(a is None for a in attentions):
        raise ValueError("attentions holds None: run the model with return_attention=True (or model_attentions)")
    stacked = torch.stack([torch.as_tensor(a) for a in attentions])  # (n, B, h, L, L); raises on unequal shapes
    if stacked.dim() != 5 or stacked.shape[-1] != stacked.shape[-2]:
        raise ValueError(f"each attention tensor must be (B, h, L, L), got {tuple(stacked.shape[1:])}")
    _, B, _, L, _ = stacked.shape
    real = check_attention_mask(attention_mask, B, L)  # (B, L) bool or None
    real = torch.ones(B, L, dtype=torch.bool, device=stacked.device) if real is None else real.to(stacked.device)
    if head_reduction == "mean":
        return stacked.mean(2), real  # (n, B, L, L)
    return (stacked.amax(2) if head_reduction == "max" else stacked.amin(2)), real  # (n, B, L, L)


def attention_rollout(attentions: Sequence[torch.Tensor], attention_mask: torch.Tensor | None = None,
                      residual: bool = True, head_reduction: str = "mean") -> torch.Tensor:
    """Attention rollout (Abnar & Zuidema, 2020): how much each position draws, through all layers, on each input.

    Per layer the heads are reduced (``"mean"``, as in the paper, or ``"max"``/``"min"``) to ``A`` ``(B, L, L)``.
    With ``residual`` the skip connection counts as half of the mixing, ``Â = 0.5·A + 0.5·I``; entries of
    padded queries or keys are set to 0 and every row is renormalised to sum to 1. The rollout is the product
    from the last layer down to the first, ``R = Â_n ⋯ Â_2 Â_1``: ``R[b, i, j]`` is the share of input ``j``
    in the last layer's output at ``i``.

    Args:
        attentions: ``n`` tensors ``(B, h, L, L)``, first layer first (see :func:`model_attentions`).
        attention_mask: ``(B, L)``, 1 at real tokens, 0 at padding (default: all real).

    Returns:
        ``(B, L, L)``, rows of real queries summing to 1, rows and columns of padded positions 0.
    """
    layers, real = _reduced_heads(attentions, attention_mask, head_reduction)  # (n, B, L, L), (B, L)
    L = layers.shape[-1]
    both_real = (real[:, :, None] & real[:, None, :]).to(layers.dtype)  # (B, L, L): real query and real key
    identity = torch.eye(L, dtype=layers.dtype, device=layers.device)  # (L, L)
    rollout = None
    for A in layers:  # A: (B, L, L), first layer first
        A_hat = (0.5 * A + 0.5 * identity if residual else A) * both_real  # (B, L, L)
        total = A_hat.sum(-1, keepdim=True)  # (B, L, 1)
        A_hat = torch.where(total > 0, A_hat / total.clamp_min(torch.finfo(A_hat.dtype).tiny), 0.0)  # rows sum to 1
        rollout = A_hat if rollout is None else A_hat @ rollout  # (B, L, L): R = Â_l R
    return rollout


def _query_positions(query: int | Sequence[int] | torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Positions ``(B,)`` of the explained query per row. A non-negative entry is a position; a negative one
    counts back from the row's last real token (``-1`` = the last real token, wherever the padding is)."""
    B, L = real.shape
    q = torch.as_tensor(query, device=real.device)
    if q.is_floating_point() or q.dtype == torch.bool or q.dim() > 1 or q.numel() not in (1, B):
        raise ValueError(f"query must be an int or {B} ints (one per row), got {query!r}")
    q = q.long().expand(B)  # (B,)
    n_real = real.sum(-1)  # (B,)
    index_among_real = real.long().cumsum(-1) - 1  # (B, L): 0 for the first real token, 1 for the next, ...
    wanted = (n_real + q).clamp_min(0)  # (B,): for negative q, which real token
    from_end = (real & (index_among_real == wanted[:, None])).long().argmax(-1)  # (B,)
    positions = torch.where(q < 0, from_end, q)  # (B,)
    ok = (q < L) & (n_real + q >= 0) & real[torch.arange(B, device=real.device), positions.clamp(0, L - 1)]
    if not bool(ok.all()):
        raise ValueError(f"query must point at a real token (attention_mask 1) in every row, got {query!r} for "
                         f"rows with {n_real.tolist()} real tokens")
    return positions


def rollout_scores(attentions: Sequence[torch.Tensor], attention_mask: torch.Tensor | None = None,
                   query: int | Sequence[int] | torch.Tensor = 0, residual: bool = True,
                   head_reduction: str = "mean") -> torch.Tensor:
    """The rollout row of the position the classifier reads: ``(B, L)`` scores (each row sums to 1).

    ``query=0`` is [CLS] for BERT; for a GPT classifier pooling the last token pass ``query=-1`` (negative
    values count back from each row's last real token). An int, or one per row. Other arguments as
    :func:`attention_rollout`.
    """
    rollout = attention_rollout(attentions, attention_mask, residual, head_reduction)  # (B, L, L)
    B, L, _ = rollout.shape
    real = check_attention_mask(attention_mask, B, L)
    real = torch.ones(B, L, dtype=torch.bool, device=rollout.device) if real is None else real.to(rollout.device)
    positions = _query_positions(query, real)  # (B,)
    return rollout[torch.arange(B, device=rollout.device), positions]  # (B, L)


def raw_attention_scores(attentions: Sequence[torch.Tensor], attention_mask: torch.Tensor | None = None,
                         layer: int = -1, query: int | Sequence[int] | torch.Tensor = 0) -> torch.Tensor:
    """One layer's head-averaged attention of ``query`` over the keys: ``(B, L)`` scores, 0 at padding.

    ``layer`` indexes ``attentions`` (``-1``: the last layer); ``query`` as in :func:`rollout_scores`.
    """
    layers, real = _reduced_heads(attentions, attention_mask, "mean")  # (n, B, L, L), (B, L)
    n = len(layers)
    if isinstance(layer, bool) or not isinstance(layer, int) or not -n <= layer < n:
        raise ValueError(f"layer must be an int in [-{n}, {n}) for {n} layers, got {layer!r}")
    A = layers[layer]  # (B, L, L)
    positions = _query_positions(query, real)  # (B,)
    return A[torch.arange(A.shape[0], device=A.device), positions] * real  # (B, L)


def _layer_groups(model: torch.nn.Module) -> list[tuple[str, list[torch.nn.Parameter]]]:
    """The cascade, top first: head-like modules (:data:`HEAD_NAMES`, in that order), every block of each
    ``nn.ModuleList`` from the last to the first, then ``"embeddings"``: every parameter left."""
    named = dict(model.named_modules())
    lists = [name for name, m in named.items() if isinstance(m, torch.nn.ModuleList)]
    lists = [name for name in lists if not any(name.startswith(outer + ".") for outer in lists)]  # outermost only
    in_list = tuple(name + "." for name in lists)
    heads = sorted((name for name in named if name.rsplit(".", 1)[-1] in HEAD_NAMES and not name.startswith(in_list)),
                   key=lambda name: (HEAD_NAMES.index(name.rsplit(".", 1)[-1]), name.count(".")))
    steps = heads + [f"{name}.{i}" for name in reversed(lists) for i in reversed(range(len(named[name])))]
    groups, seen = [], set()
    for name in steps + [""]:  # "" = the whole model: what no earlier step took
        params = [p for p in named[name].parameters() if id(p) not in seen]
        seen.update(id(p) for p in params)
        if params:
            groups.append((name or "embeddings", params))
    return groups


def _redraw(module: torch.nn.Module, params: list[torch.nn.Parameter], generator: torch.Generator,
            std: float) -> None:
    """A fresh initialisation of ``params``: biases 0, norm scales 1, other weights N(0, std²)."""
    kinds = {id(p): (name, "Norm" in type(owner).__name__)  # LayerNorm, RMSNorm, BatchNorm...
             for owner in module.modules() for name, p in owner.named_parameters(recurse=False)}
    with torch.no_grad():
        for p in params:
            last, is_norm = kinds[id(p)]
            if last == "bias":
                p.zero_()
            elif is_norm:
                p.fill_(1.0)
            else:
                p.copy_(torch.randn(p.shape, generator=generator, dtype=torch.float64).to(p) * std)


def randomisation_check(model: torch.nn.Module, explain_fn: Callable, input_ids: torch.Tensor,
                        attention_mask: torch.Tensor | None, target: Any, seed: int = 0,
                        layers: Sequence[tuple[str, torch.nn.Module]] | None = None,
                        std: float = 0.02) -> RandomisationResult:
    """Cascading model randomisation (Adebayo et al., 2018): an explanation that does not change when the
    model's weights are replaced by random ones does not explain the model.

    A deep copy of ``model`` is randomised group by group, cumulatively, from the top down: the head-like
    modules (named ``classifier``, ``head``, ``pooler``, ``ln_f``), then the blocks of every ``nn.ModuleList``
    (``bert.layers``, ``gpt.blocks``) from the last to the first, then every parameter left (``"embeddings"``).
    ``layers`` replaces that list with your own ``(name, module)`` pairs (modules of ``model``). Each group is
    redrawn (biases 0, norm scales 1, weights N(0, std²), seeded by ``seed``) and
    ``explain_fn(model_copy, input_ids, attention_mask, target)`` -> ``(B, L)`` is recomputed. ``model``
    itself is never changed.

    Returns :class:`RandomisationResult` ``(steps, spearman (n_steps, B))``: Spearman's ρ of |scores| between
    the original and each randomised model over the real tokens. Values near 1 after heavy randomisation
    flag an explanation that ignores the model.
    """
    original = as_numpy(explain_fn(model, input_ids, attention_mask, target))  # (B, L)
    if original.shape != tuple(input_ids.shape):
        raise ValueError(f"explain_fn must return (B, L) = {tuple(input_ids.shape)} scores, got {original.shape}")
    randomised = copy.deepcopy(model)
    if layers is None:
        groups = _layer_groups(randomised)
    else:
        names = {id(m): name for name, m in model.named_modules()}
        if not layers or any(id(m) not in names for _, m in layers):
            raise ValueError(f"layers must be a non-empty list of (name, module) pairs, each module a submodule of "
                             f"model, got {[name for name, _ in layers]}")
        groups = [(step, list(randomised.get_submodule(names[id(m)]).parameters())) for step, m in layers]
    generator = torch.Generator().manual_seed(seed)
    steps, rhos = [], []
    for step, params in groups:
        _redraw(randomised, params, generator, std)
        scores = as_numpy(explain_fn(randomised, input_ids, attention_mask, target))  # (B, L)
        steps.append(step)
        rhos.append(rank_agreement(np.abs(original), np.abs(scores), attention_mask).spearman)  # (B,)
    return RandomisationResult(steps, np.array(rhos).reshape(len(steps), len(original)))
