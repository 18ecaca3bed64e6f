"""int8 quantisation from scratch: symmetric per-channel weights, dynamic per-token activations.

A float32 weight matrix ``W`` ``(out, in)`` becomes int8 values ``Q`` and one float scale per output
channel (row), ``s_o = max_i |W_oi| / 127.5``, with ``Q = clamp(round(W / s), -128, 127)``: four times
smaller, and ``Q * s`` is within half a step ``s_o / 2`` of ``W``. At run time every token's activation
vector ``x`` gets its own scale the same way (dynamic: computed from the data, nothing calibrated), the
product ``Q_x @ Q_W^T`` is summed exactly in int32, and one multiplication by ``s_x * s_W`` brings it back
to float.

The rounding rule and scales are those of torchao's ``Int8DynamicActivationInt8WeightConfig`` (the
maintained int8 path of PyTorch; ``torch.ao.quantization.quantize_dynamic`` still runs in torch 2.13 but its
quantized tensors are deprecated), and a test proves :class:`Int8Linear` equal to it.

Shape legend:  N rows (tokens)   K input features   O output features (channels)
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from bigtut.compress.common import check_finite_parameters, linear_layers, replace_module
from bigtut.validation import check_tensor, non_finite

__all__ = ["Int8Linear", "QuantizedTensor", "dequantize", "quantize_model", "quantize_symmetric"]

INT8_MIN, INT8_MAX = -128, 127
#: the scale divides the largest magnitude by half the int8 range, (127 - (-128)) / 2
HALF_RANGE = (INT8_MAX - INT8_MIN) / 2
#: the smallest scale (an all-zero row would otherwise divide by zero)
MIN_SCALE = torch.finfo(torch.float32).eps


class QuantizedTensor(NamedTuple):
    """int8 ``values`` with the shape of the float tensor, and ``scale``: one per row, shape ``(..., 1)``."""

    values: torch.Tensor
    scale: torch.Tensor


def quantize_symmetric(x: torch.Tensor) -> QuantizedTensor:
    """Quantise each row of ``x`` (its last axis) to int8 with its own scale.

    ``x`` ``(..., K)`` float -> ``QuantizedTensor(values (..., K) int8, scale (..., 1))``. For a weight
    ``(O, K)`` a row is an output channel; for activations ``(N, K)`` a row is a token.

    Raises:
        TypeError: ``x`` is not a floating-point tensor.
        ValueError: ``x`` is a scalar or empty, or holds NaN/inf (its row would get a non-finite scale).
    """
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"quantize_symmetric needs a floating-point tensor, got {type(x).__name__}"
                        + (f" of dtype {x.dtype}" if isinstance(x, torch.Tensor) else ""))
    if x.dim() == 0 or x.numel() == 0:
        raise ValueError(f"x must be a non-empty tensor (..., K) with at least one value per row, got shape "
                         f"{tuple(x.shape)}")
    if bad := non_finite(x):
        raise ValueError(f"x must be finite to be quantised (a NaN/inf gives its row a non-finite scale), got "
                         f"{bad} NaN/inf value{'s' if bad > 1 else ''}")
    return _quantize_rows(x)


def _quantize_rows(x: torch.Tensor) -> QuantizedTensor:
    """:func:`quantize_symmetric` without the checks: the per-token path of :meth:`Int8Linear.forward`."""
    scale = (x.abs().amax(dim=-1, keepdim=True) / HALF_RANGE).clamp(min=MIN_SCALE)  # (..., 1)
    values = torch.clamp(torch.round(x * (1.0 / scale)), INT8_MIN, INT8_MAX).to(torch.int8)  # (..., K)
    return QuantizedTensor(values, scale)


def _check_quantized(q: object, name: str = "q") -> QuantizedTensor:
    """Return ``q`` as a :class:`QuantizedTensor` if it is int8 ``values (..., K)`` with a positive finite
    float ``scale (..., 1)``; else raise ``TypeError``/``ValueError``."""
    if not (isinstance(q, tuple) and len(q) == 2 and all(isinstance(t, torch.Tensor) for t in q)):
        raise TypeError(f"{name} must be a QuantizedTensor(values, scale) (as quantize_symmetric returns), got "
                        f"{type(q).__name__}")
    values, scale = q
    if values.dtype != torch.int8 or not scale.is_floating_point():
        raise TypeError(f"{name} must hold int8 values and a floating-point scale, got {values.dtype} and "
                        f"{scale.dtype}")
    if values.dim() == 0 or tuple(scale.shape) != (*values.shape[:-1], 1):
        raise ValueError(f"{name}.scale must have shape (..., 1) = {(*values.shape[:-1], 1)} for values "
                         f"{tuple(values.shape)}, got {tuple(scale.shape)}")
    if scale.device.type != "meta" and not bool((torch.isfinite(scale) & (scale > 0)).all()):
        raise ValueError(f"{name}.scale must be finite and > 0 (one step per row), got min {scale.min().item()}, "
                         f"max {scale.max().item()}")
    return QuantizedTensor(values, scale)


def dequantize(q: QuantizedTensor) -> torch.Tensor:
    """The float tensor ``values * scale`` ``(..., K)`` that a :class:`QuantizedTensor` stands for."""
    return _dequantize(_check_quantized(q))


def _dequantize(q: QuantizedTensor) -> torch.Tensor:
    return q.values.to(q.scale.dtype) * q.scale  # (..., K)


def int8_matmul(x: QuantizedTensor, w: QuantizedTensor) -> torch.Tensor:
    """``dequantize(x) @ dequantize(w).T`` computed the integer way: ``(N, K) x (O, K) -> (N, O)``.

    The int8 products are summed in int32 (exact: no rounding until the one rescale at the end). Off the
    CPU (where ``torch._int_mm`` has shape limits) the same integer sums are formed in floating point, exact
    while ``K * 128**2 < 2**24`` in float32 (``K`` up to 1024), in float64 beyond.
    """
    if x.values.device.type == "cpu":
        accumulated = torch._int_mm(x.values, w.values.t())  # (N, O) int32, exact (a transposed view, no copy)
    else:
        exact = torch.float32 if x.values.shape[-1] <= 1024 else torch.float64
        accumulated = x.values.to(exact) @ w.values.to(exact).t()  # (N, O): integer values, exact
    return accumulated.to(x.scale.dtype) * x.scale * w.scale.reshape(1, -1).to(x.scale.dtype)  # (N, O)


class Int8Linear(nn.Module):
    """A Linear layer that stores an int8 weight (per-channel scales) and quantises its input per token.

    Forward: ``x`` ``(..., K)`` -> ``(..., O)``. The value is the integer computation; when a gradient is
    asked for (Integrated Gradients, fine-tuning) it flows as through the dequantised float layer — a
    straight-through estimator, since rounding has zero gradient almost everywhere.
    """

    def __init__(self, weight: QuantizedTensor, bias: torch.Tensor | None = None):
        super().__init__()
        weight = _check_quantized(weight, "weight")
        if weight.values.dim() != 2 or weight.values.numel() == 0:
            raise ValueError(f"weight must be (O, K) int8 with a (O, 1) scale, got values "
                             f"{tuple(weight.values.shape)}, scale {tuple(weight.scale.shape)}")
        if bias is not None:
            check_tensor("bias", bias, f"(O,) = ({weight.values.shape[0]},)", dim=1)
            if bias.shape[0] != weight.values.shape[0]:
                raise ValueError(f"bias must have shape (O,) = ({weight.values.shape[0]},), got {tuple(bias.shape)}")
        self.out_features, self.in_features = weight.values.shape
        self.register_buffer("weight_int8", weight.values)  # (O, K) int8
        self.register_buffer("weight_scale", weight.scale)  # (O, 1)
        self.register_buffer("bias", None if bias is None else bias.detach().clone())  # (O,)

    @classmethod
    def from_linear(cls, linear: nn.Linear) -> Int8Linear:
        """Quantise a float ``nn.Linear`` (its weight per output channel; the bias stays float)."""
        if not isinstance(linear, nn.Linear):
            raise TypeError(f"from_linear needs an nn.Linear, got {type(linear).__name__}")
        weight = linear.weight.detach()  # (O, K); a pruned layer's mask is folded in
        if bad := non_finite(weight):
            raise ValueError(f"the layer's weight must be finite to be quantised, got {bad} NaN/inf "
                             f"value{'s' if bad > 1 else ''}")
        mask = getattr(linear, "mask", None)
        return cls(quantize_symmetric(weight if mask is None else weight * mask), linear.bias)

    def dequantized_weight(self) -> torch.Tensor:
        """The float weight ``(O, K)`` the int8 values stand for."""
        return _dequantize(QuantizedTensor(self.weight_int8, self.weight_scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise TypeError(f"Int8Linear expects a floating-point tensor (..., {self.in_features}), got "
                            + (f"dtype {x.dtype}" if isinstance(x, torch.Tensor) else type(x).__name__))
        if x.dim() == 0 or x.shape[-1] != self.in_features:
            raise ValueError(f"Int8Linear expects (..., {self.in_features}) inputs, got {tuple(x.shape)}")
        rows = x.reshape(-1, self.in_features)  # (N, K)
        weight = QuantizedTensor(self.weight_int8, self.weight_scale)
        y = int8_matmul(_quantize_rows(rows.detach()), weight)  # (N, O); NaN/inf in x give NaN/inf rows out
        if self.bias is not None:
            y = y + self.bias
        if torch.is_grad_enabled() and x.requires_grad:  # value of the int8 layer, gradient of the float one
            y_float = F.linear(rows, self.dequantized_weight(), self.bias)  # (N, O)
            y = y_float + (y - y_float).detach()
        return y.reshape(*x.shape[:-1], self.out_features).to(x.dtype)  # (..., O)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8 per-channel"


def quantize_model(model: nn.Module, layers: Iterable[str] | None = None) -> nn.Module:
    """A copy of ``model`` with its Linear layers replaced by :class:`Int8Linear` (the original is untouched).

    ``layers``: names of the Linear layers to quantise (default: all but an output layer tied to an embedding,
    see :mod:`bigtut.compress.common`). Embeddings and LayerNorms stay float. The copy is in eval mode.

    Raises:
        ValueError: a layer name the model does not have, or one that is not ``nn.Linear``; NaN/inf weights.
        TypeError: ``model`` is not an ``nn.Module``.
    """
    chosen = linear_layers(model, layers)  # checks the names on the original
    check_finite_parameters(model)
    quantized = copy.deepcopy(model)
    for name in chosen:
        replace_module(quantized, name, Int8Linear.from_linear(quantized.get_submodule(name)))
    return quantized.eval()
