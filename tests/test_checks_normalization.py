"""The LayerNorm checker: the right module passes on seeds 0-2; the mistakes students make fail with a message
naming them."""

import pytest
import torch
import torch.nn.functional as F
from torch import layer_norm as bound_layer_norm  # bound before any checker runs
from torch import nn

from bigtut.checks.core import CheckFailure
from bigtut.checks.normalization import check_layer_norm


class Right(nn.Module):
    def __init__(self, normalized_shape, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(normalized_shape))
        self.bias = nn.Parameter(torch.zeros(normalized_shape))

    def forward(self, x):
        mean = x.mean(dim=-1, keepdim=True)
        var = x.var(dim=-1, keepdim=True, correction=0)
        return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias


class FromMoments(Right):  # correct too: var = E[x²] - E[x]², and rsqrt
    def forward(self, x):
        mean = x.mean(-1, keepdim=True)
        var = (x * x).mean(-1, keepdim=True) - mean**2
        return (x - mean) * torch.rsqrt(var + self.eps) * self.weight + self.bias


class RowByRow(Right):  # correct too: a loop over the vectors, var_mean
    def forward(self, x):
        rows = []
        for row in x.reshape(-1, x.shape[-1]):
            var, mean = torch.var_mean(row, correction=0)
            rows.append(self.weight * (row - mean) / (var + self.eps) ** 0.5 + self.bias)
        return torch.stack(rows).reshape(x.shape)


class UnbiasedVariance(Right):
    def forward(self, x):
        return (x - x.mean(-1, keepdim=True)) / torch.sqrt(x.var(-1, keepdim=True) + self.eps) * self.weight + self.bias


class EpsOutsideSqrt(Right):
    def forward(self, x):
        std = x.var(-1, keepdim=True, correction=0).sqrt()
        return (x - x.mean(-1, keepdim=True)) / (std + self.eps) * self.weight + self.bias


class EpsIgnored(Right):
    def forward(self, x):
        var = x.var(-1, keepdim=True, correction=0)
        return (x - x.mean(-1, keepdim=True)) / torch.sqrt(var + 1e-5) * self.weight + self.bias


class WrongDimension(Right):
    def forward(self, x):
        mean, var = x.mean(0, keepdim=True), x.var(0, keepdim=True, correction=0)
        return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias


class PlainTensors(Right):
    def __init__(self, normalized_shape, eps=1e-5):
        nn.Module.__init__(self)
        self.eps = eps
        self.weight = torch.ones(normalized_shape)
        self.bias = torch.zeros(normalized_shape)


class RandomInit(Right):
    def __init__(self, normalized_shape, eps=1e-5):
        super().__init__(normalized_shape, eps)
        self.weight = nn.Parameter(torch.randn(normalized_shape))


class NoBias(Right):
    def __init__(self, normalized_shape, eps=1e-5):
        super().__init__(normalized_shape, eps)
        del self.bias
        self.register_parameter("bias", None)

    def forward(self, x):
        var = x.var(-1, keepdim=True, correction=0)
        return (x - x.mean(-1, keepdim=True)) / torch.sqrt(var + self.eps) * self.weight


class FunctionalCall(Right):
    def forward(self, x):
        return F.layer_norm(x, x.shape[-1:], self.weight, self.bias, self.eps)


class AliasedCall(Right):
    ln = staticmethod(torch.layer_norm)  # bound before the checker runs: still the library's kernel

    def forward(self, x):
        return torch.nn.functional.layer_norm(x, x.shape[-1:], self.weight, self.bias, self.eps)


class ImportedAlias(Right):  # `from torch import layer_norm` at the top of the notebook
    def forward(self, x):
        return bound_layer_norm(x, x.shape[-1:], self.weight, self.bias, self.eps)


class NativeLayerNorm(Right):
    def forward(self, x):
        return torch.native_layer_norm(x, x.shape[-1:], self.weight, self.bias, self.eps)[0]


class AtenLayerNorm(Right):
    def forward(self, x):
        return torch.ops.aten.layer_norm(x, list(x.shape[-1:]), self.weight, self.bias, self.eps)


class OneGroupNorm(Right):  # group norm with one group on (N, D) rows is layer norm
    def forward(self, x):
        rows = x.reshape(-1, x.shape[-1])
        return F.group_norm(rows, 1, self.weight, self.bias, self.eps).reshape(x.shape)


class NoMean(Right):
    def forward(self, x):
        return x / torch.sqrt(x.var(-1, keepdim=True, correction=0) + self.eps) * self.weight + self.bias


class SwappedGainAndShift(Right):
    def forward(self, x):
        var = x.var(-1, keepdim=True, correction=0)
        return (x - x.mean(-1, keepdim=True)) / torch.sqrt(var + self.eps) * self.bias + self.weight


class WrapsModule(nn.Module):
    def __init__(self, normalized_shape, eps=1e-5):
        super().__init__()
        self.inner = nn.LayerNorm(normalized_shape, eps)
        self.weight, self.bias = self.inner.weight, self.inner.bias

    def forward(self, x):
        return self.inner(x)


class InPlace(Right):
    def forward(self, x):
        x.sub_(x.mean(-1, keepdim=True).detach())
        return x / torch.sqrt(x.var(-1, keepdim=True, correction=0) + self.eps) * self.weight + self.bias


class DetachedStatistics(Right):
    def forward(self, x):
        mean = x.mean(-1, keepdim=True).detach()
        var = x.var(-1, keepdim=True, correction=0).detach()
        return (x - mean) / torch.sqrt(var + self.eps) * self.weight + self.bias


class ScaleAfterShift(Right):
    def forward(self, x):
        var = x.var(-1, keepdim=True, correction=0)
        return ((x - x.mean(-1, keepdim=True)) / torch.sqrt(var + self.eps) + self.bias) * self.weight


class AlwaysFloat64(Right):
    def forward(self, x):
        return super().forward(x.double())


class Stub(nn.Module):
    def __init__(self, normalized_shape, eps=1e-5):
        super().__init__()
        raise NotImplementedError


@pytest.mark.parametrize("right", [Right, FromMoments, RowByRow])
@pytest.mark.parametrize("seed", [0, 1, 2, None])
def test_the_right_module_passes(right, seed, capsys):
    check_layer_norm(right, seed=seed)
    assert capsys.readouterr().out.startswith("PASS LayerNorm")


@pytest.mark.parametrize("wrong, says", [
    (UnbiasedVariance, "(?s)output.*unbiased"), (EpsOutsideSqrt, "(?s)output.*outside the square root"),
    (EpsIgnored, "(?s)eps=0.1.*self.eps"), (WrongDimension, "(?s)output.*last dimension"),
    (NoMean, "mean is not subtracted"), (SwappedGainAndShift, "weight and bias are swapped"),
    (ImportedAlias, "library's layer norm.*torch.layer_norm"), (NativeLayerNorm, "library's layer norm"),
    (AtenLayerNorm, "library's layer norm"), (OneGroupNorm, "library's layer norm.*group_norm"),
    (PlainTensors, "nn.Parameter"), (RandomInit, "must start at ones"), (NoBias, "bias"),
    (FunctionalCall, "library's layer norm"), (AliasedCall, "library's layer norm"), (WrapsModule, "nn.LayerNorm"),
    (InPlace, "in.place"), (DetachedStatistics, "gradient of the input"),
    (ScaleAfterShift, "(?s)output.*bias is added before scaling"),
    (AlwaysFloat64, "float32"), (Stub, "not implemented"),
])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_plausible_mistakes_fail_with_their_name(wrong, says, seed):
    with pytest.raises(CheckFailure, match=says):
        check_layer_norm(wrong, seed=seed)


def test_the_library_functions_are_restored_after_a_failure():
    saved = (F.layer_norm, torch.layer_norm, nn.LayerNorm.forward)
    with pytest.raises(CheckFailure):
        check_layer_norm(FunctionalCall, seed=0)
    assert (F.layer_norm, torch.layer_norm, nn.LayerNorm.forward) == saved
    x = torch.randn(2, 4)
    assert torch.allclose(nn.LayerNorm(4)(x), F.layer_norm(x, (4,)))
