"""Magnitude pruning: zero the weights (or whole heads and neurons) that matter least by size.

* **Unstructured** (:func:`prune_magnitude`): the fraction ``sparsity`` of weights with the smallest ``|w|``
  becomes 0 — ranked over all chosen layers at once (``scope="global"``) or within each layer
  (``"layer"``). The count is exact: ``round(sparsity * n)`` weights out of ``n`` (the rule of
  ``torch.nn.utils.prune``, which a test proves equal). The zeros are kept by a mask applied on every
  forward (:class:`MaskedLinear`), so they survive fine-tuning; :func:`make_pruning_permanent` folds the
  mask into the weight. The matrix keeps its dense shape: no smaller file, no faster matmul.
* **Structured** (:func:`prune_heads`, :func:`prune_ffn_neurons`): whole attention heads or feed-forward
  neurons are removed, so the matrices shrink for real — smaller and faster, at a larger cost in quality.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Mapping
from numbers import Real

import torch
import torch.nn.functional as F
from torch import nn

from bigtut.attention import MultiHeadAttention
from bigtut.compress.common import check_finite_parameters, linear_layers, replace_module
from bigtut.gpt.model import MLP
from bigtut.transformer.layers import EncoderLayer
from bigtut.validation import check_model, non_finite

__all__ = ["MaskedLinear", "check_sparsity", "count_heads", "head_scores", "magnitude_masks",
           "make_pruning_permanent", "prune_ffn_neurons", "prune_heads", "prune_magnitude", "sparsity",
           "sparsity_sweep"]


def check_sparsity(value: float, name: str = "sparsity", what: str = "weights") -> float:
    """Return ``value`` if it is a fraction in ``[0, 1)`` (of the ``what`` to remove); else raise ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, Real) or not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must lie in [0, 1) (the fraction of {what} to remove), got {value!r}")
    return float(value)


class MaskedLinear(nn.Linear):
    """An ``nn.Linear`` whose weight is multiplied by a fixed 0/1 ``mask`` on every forward pass.

    The pruned weights are stored as zeros and get zero gradient, so fine-tuning cannot revive them; the mask
    is a buffer, saved with the model. ``x`` ``(..., K)`` -> ``(..., O)``.
    """

    def __init__(self, linear: nn.Linear, mask: torch.Tensor):
        if not isinstance(linear, nn.Linear):
            raise TypeError(f"linear must be an nn.Linear, got {type(linear).__name__}")
        if not isinstance(mask, torch.Tensor):
            raise TypeError(f"mask must be a torch.Tensor (O, K) of 0/1, got {type(mask).__name__}")
        if tuple(mask.shape) != tuple(linear.weight.shape):
            raise ValueError(f"mask must have the weight's shape (O, K) = {tuple(linear.weight.shape)}, got "
                             f"{tuple(mask.shape)}")
        if mask.device.type != "meta" and not bool(((mask == 0) | (mask == 1)).all()):
            raise ValueError("mask must hold only 0 and 1 (1 = keep the weight), got other values")
        super().__init__(linear.in_features, linear.out_features, bias=linear.bias is not None,
                         device=linear.weight.device, dtype=linear.weight.dtype)
        self.register_buffer("mask", mask.to(linear.weight.dtype))  # (O, K) 0/1
        with torch.no_grad():
            self.weight.copy_(linear.weight * self.mask)
            if linear.bias is not None:
                self.bias.copy_(linear.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight * self.mask, self.bias)


def _effective_weight(layer: nn.Linear) -> torch.Tensor:
    """The weight the layer multiplies by: ``weight * mask`` for a :class:`MaskedLinear`."""
    weight = layer.weight.detach()
    return weight * layer.mask if isinstance(layer, MaskedLinear) else weight


def magnitude_masks(weights: dict[str, torch.Tensor], sparsity: float, scope: str = "global"
                    ) -> dict[str, torch.Tensor]:
    """0/1 masks that drop exactly ``round(sparsity * n)`` of the smallest-magnitude entries.

    ``weights``: name -> tensor. ``scope="global"`` ranks all entries together (``n`` = all of them);
    ``"layer"`` ranks each tensor on its own. Ties are broken by position, so the count is always exact.
    """
    check_sparsity(sparsity)
    if scope not in ("global", "layer"):
        raise ValueError(f"scope must be 'global' or 'layer', got {scope!r}")
    if not isinstance(weights, Mapping):
        raise TypeError(f"weights must be a dict name -> weight tensor, got {type(weights).__name__}")
    if not weights:
        raise ValueError("weights is empty: give at least one name -> weight tensor")
    for name, w in weights.items():
        if not isinstance(w, torch.Tensor) or not w.is_floating_point():
            raise TypeError(f"weights[{name!r}] must be a floating-point tensor, got "
                            + (f"dtype {w.dtype}" if isinstance(w, torch.Tensor) else type(w).__name__))
        if bad := non_finite(w):
            raise ValueError(f"weights[{name!r}] holds {bad} NaN/inf value{'s' if bad > 1 else ''}: magnitudes "
                             "must be finite to be ranked")
    groups = [weights] if scope == "global" else [{name: w} for name, w in weights.items()]
    masks = {}
    for group in groups:
        flat = torch.cat([w.abs().reshape(-1) for w in group.values()])  # (n,)
        n_drop = round(sparsity * flat.numel())
        keep = torch.ones_like(flat, dtype=torch.bool)
        if n_drop:
            order = torch.sort(flat, stable=True).indices  # smallest first; ties by position
            keep[order[:n_drop]] = False
        start = 0
        for name, w in group.items():
            masks[name] = keep[start:start + w.numel()].reshape(w.shape).to(w.dtype)
            start += w.numel()
    return masks


def prune_magnitude(model: nn.Module, sparsity: float, *, scope: str = "global",
                    layers: Iterable[str] | None = None) -> nn.Module:
    """A copy of ``model`` whose chosen Linear weights are ``sparsity`` zeros (the original is untouched).

    Pruning an already pruned model keeps its zeros (they have the smallest magnitude), so a sweep
    ``0.3 -> 0.5 -> 0.7`` nests. ``layers``: Linear layer names (default: every untied Linear layer).

    Raises:
        ValueError: ``sparsity`` outside ``[0, 1)``, an unknown ``scope``, a layer the model does not have,
            NaN/inf weights.
    """
    check_sparsity(sparsity)
    if scope not in ("global", "layer"):
        raise ValueError(f"scope must be 'global' or 'layer', got {scope!r}")
    chosen = linear_layers(model, layers)
    check_finite_parameters(model)
    pruned = copy.deepcopy(model)
    targets = {name: pruned.get_submodule(name) for name in chosen}
    masks = magnitude_masks({name: _effective_weight(m) for name, m in targets.items()}, sparsity, scope)
    for name, layer in targets.items():
        if isinstance(layer, MaskedLinear):  # pruned before: its zeros are among the smallest, so they stay
            layer.mask.copy_(masks[name])
            with torch.no_grad():
                layer.weight.mul_(layer.mask)
        else:
            replace_module(pruned, name, MaskedLinear(layer, masks[name]))
    return pruned


def sparsity(model: nn.Module, layers: Iterable[str] | None = None) -> float:
    """The fraction of exact zeros among the chosen Linear weights (default: every untied Linear layer)."""
    weights = [_effective_weight(m) for m in linear_layers(model, layers).values()]
    total = sum(w.numel() for w in weights)
    if total == 0:
        raise ValueError("the chosen Linear layers hold no weights (every one is 0-wide): sparsity is undefined")
    return sum((w == 0).sum().item() for w in weights) / total


def sparsity_sweep(model: nn.Module, sparsities: Iterable[float], metric: Callable[[nn.Module], float], *,
                   scope: str = "global", layers: Iterable[str] | None = None) -> dict[float, float]:
    """``{sparsity: metric(pruned copy)}`` for each sparsity, each pruned from ``model`` by :func:`prune_magnitude`.

    ``metric`` scores a model (e.g. test accuracy, or bits per character); the original is untouched.

    Raises:
        ValueError: no sparsity, a repeated one, one outside ``[0, 1)``, or a metric that returns NaN/inf.
        TypeError: ``sparsities`` not a list of numbers, ``metric`` not callable or returning no number.
    """
    if isinstance(sparsities, (str, bytes)) or not isinstance(sparsities, Iterable):
        raise TypeError(f"sparsities must be a list of fractions in [0, 1), got {type(sparsities).__name__}")
    levels = [check_sparsity(s) for s in sparsities]
    if not levels:
        raise ValueError("sparsities is empty: give at least one fraction in [0, 1)")
    if len(set(levels)) != len(levels):
        raise ValueError(f"sparsities must be distinct (one result each), got {levels}")
    if not callable(metric):
        raise TypeError(f"metric must be a function model -> number, got {type(metric).__name__}")
    layers = None if layers is None else list(layers)
    linear_layers(model, layers)  # checks the model and the names before any pruning
    results = {}
    for s in levels:
        value = metric(prune_magnitude(model, s, scope=scope, layers=layers))
        try:
            number = float(value)
        except (TypeError, ValueError, RuntimeError):
            raise TypeError(f"metric must return a number, got {type(value).__name__} {value!r:.60}") from None
        if not math.isfinite(number):
            raise ValueError(f"metric must return a finite number, got {number} at sparsity {s}")
        results[s] = number
    return results


def make_pruning_permanent(model: nn.Module) -> nn.Module:
    """Replace every :class:`MaskedLinear` by a plain ``nn.Linear`` holding ``weight * mask``, in place (a
    plain model with zeros); returns ``model``."""
    check_model(model)
    masked = [name for name, m in model.named_modules() if isinstance(m, MaskedLinear)]
    for name in masked:
        layer = model.get_submodule(name)
        plain = nn.Linear(layer.in_features, layer.out_features, bias=layer.bias is not None,
                          device=layer.weight.device, dtype=layer.weight.dtype)
        with torch.no_grad():
            plain.weight.copy_(_effective_weight(layer))
            if layer.bias is not None:
                plain.bias.copy_(layer.bias)
        replace_module(model, name, plain)
    return model


def _keep_count(total: int, fraction: float, what: str) -> int:
    keep = total - round(fraction * total)
    if keep < 1:
        raise ValueError(f"pruning a fraction {fraction} of {total} {what} would leave none")
    return keep


def _shrink_linear(layer: nn.Linear, rows: torch.Tensor | None = None, cols: torch.Tensor | None = None) -> nn.Linear:
    """A new Linear holding only output ``rows`` and input ``cols`` of ``layer`` (index tensors)."""
    weight = layer.weight.detach()  # (O, K)
    bias = None if layer.bias is None else layer.bias.detach()
    if rows is not None:
        weight, bias = weight[rows], (None if bias is None else bias[rows])
    if cols is not None:
        weight = weight[:, cols]
    new = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None, device=weight.device, dtype=weight.dtype)
    with torch.no_grad():
        new.weight.copy_(weight)
        if bias is not None:
            new.bias.copy_(bias)
    return new


def _unmasked(model: nn.Module) -> nn.Module:
    check_model(model)
    check_finite_parameters(model)
    if any(isinstance(m, MaskedLinear) for m in model.modules()):
        raise ValueError("structured pruning needs a model without pruning masks: call make_pruning_permanent first")
    return model


def head_scores(attention: MultiHeadAttention) -> torch.Tensor:
    """One magnitude per head ``(h,)``: the L2 norm of all the weights that belong to it (its rows of the
    query, key and value projections and its columns of the output projection)."""
    if not isinstance(attention, MultiHeadAttention):
        raise TypeError(f"attention must be a bigtut MultiHeadAttention, got {type(attention).__name__}")
    h, d_head = attention.num_heads, attention.d_head
    parts = [p.weight.detach().reshape(h, d_head, -1) for p in (attention.q_proj, attention.k_proj, attention.v_proj)]
    out = attention.out_proj.weight.detach().reshape(-1, h, d_head).transpose(0, 1)  # (h, d_model, d_head)
    return torch.sqrt(sum(p.pow(2).sum((1, 2)) for p in parts) + out.pow(2).sum((1, 2)))  # (h,)


def prune_heads(model: nn.Module, fraction: float) -> nn.Module:
    """A copy of ``model`` with ``round(fraction * h)`` of the ``h`` heads of every attention layer removed,
    those of smallest :func:`head_scores`. The projections shrink from ``d_model`` to ``h' * d_head`` wide.

    Raises:
        ValueError: ``fraction`` outside ``[0, 1)``, one that would leave a layer without a head, or a model
            with no :class:`~bigtut.attention.MultiHeadAttention`; NaN/inf weights.
    """
    check_sparsity(fraction, "fraction", "heads")
    pruned = copy.deepcopy(_unmasked(model))
    attentions = [m for m in pruned.modules() if isinstance(m, MultiHeadAttention)]
    if not attentions:
        raise ValueError("the model has no bigtut MultiHeadAttention layer to remove heads from")
    for attn in attentions:
        keep = _keep_count(attn.num_heads, fraction, "heads")
        heads = torch.sort(torch.topk(head_scores(attn), keep).indices).values  # (h',) kept heads, in order
        offsets = torch.arange(attn.d_head, device=heads.device)  # (d_head,) on the model's device
        dims = (heads[:, None] * attn.d_head + offsets).reshape(-1)  # (h' * d_head,)
        attn.q_proj, attn.k_proj, attn.v_proj = (_shrink_linear(p, rows=dims)
                                                 for p in (attn.q_proj, attn.k_proj, attn.v_proj))
        attn.out_proj = _shrink_linear(attn.out_proj, cols=dims)
        attn.num_heads = keep
    return pruned


def _ffn_pairs(model: nn.Module) -> list[tuple[nn.Module, str, str]]:
    """(module, up-projection name, down-projection name) of every feed-forward block bigtut builds."""
    pairs = []
    for m in model.modules():
        if isinstance(m, EncoderLayer):  # also DecoderLayer; BERT's layers
            pairs.append((m, "linear1", "linear2"))
        elif isinstance(m, MLP):  # GPT
            pairs.append((m, "fc", "proj"))
    return pairs


def prune_ffn_neurons(model: nn.Module, fraction: float) -> nn.Module:
    """A copy of ``model`` whose feed-forward blocks keep ``1 - fraction`` of their hidden neurons: those
    with the largest ``|w_in| * |w_out|`` (the norms of the neuron's row of the up-projection and column of
    the down-projection).

    Raises:
        ValueError: ``fraction`` outside ``[0, 1)`` or too large, a model with no bigtut feed-forward block, or
            NaN/inf weights.
    """
    check_sparsity(fraction, "fraction", "neurons")
    pruned = copy.deepcopy(_unmasked(model))
    pairs = _ffn_pairs(pruned)
    if not pairs:
        raise ValueError("the model has no bigtut feed-forward block (EncoderLayer, DecoderLayer or GPT MLP)")
    for module, up_name, down_name in pairs:
        up, down = getattr(module, up_name), getattr(module, down_name)
        keep = _keep_count(up.out_features, fraction, "neurons")
        score = up.weight.detach().norm(dim=1) * down.weight.detach().norm(dim=0)  # (d_ff,)
        neurons = torch.sort(torch.topk(score, keep).indices).values  # (d_ff',)
        setattr(module, up_name, _shrink_linear(up, rows=neurons))
        setattr(module, down_name, _shrink_linear(down, cols=neurons))
    return pruned


def count_heads(model: nn.Module) -> list[int]:
    """Heads per attention layer, in model order."""
    check_model(model)
    return [m.num_heads for m in model.modules() if isinstance(m, MultiHeadAttention)]


