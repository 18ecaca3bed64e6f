"""What the three compressions share: choosing the Linear layers they act on, and the checks on their input.

Every function of :mod:`bigtut.compress` works on a *copy* of the model (the original is never touched) and
on its ``nn.Linear`` layers, named as ``model.named_modules()`` names them (``"body.layers.0.linear1"``).
By default that is every Linear layer except one whose weight is shared with an embedding table (GPT's tied
output layer): that matrix is also the input lookup, so compressing it would store a second copy of it.
"""

from __future__ import annotations

from collections.abc import Iterable

from torch import nn

from bigtut.validation import check_model, non_finite

__all__ = ["check_finite_parameters", "linear_layers", "replace_module", "tied_to_embedding"]


def check_finite_parameters(model: nn.Module) -> nn.Module:
    """Return ``model`` if every floating-point parameter is finite; else name the first one with NaN/inf."""
    for name, parameter in model.named_parameters():
        if bad := non_finite(parameter.detach()):
            raise ValueError(f"the model's parameter {name!r} holds {bad} NaN/inf value{'s' if bad > 1 else ''}: "
                             "a model must be finite to be compressed")
    return model


def tied_to_embedding(model: nn.Module) -> set[str]:
    """Names of the Linear layers whose weight is the very tensor of an ``nn.Embedding`` in ``model``."""
    check_model(model)
    tables = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    return {name for name, m in model.named_modules() if isinstance(m, nn.Linear) and id(m.weight) in tables}


def linear_layers(model: nn.Module, layers: Iterable[str] | None = None) -> dict[str, nn.Linear]:
    """The Linear layers to compress: ``layers`` by name, or (``None``) every untied one, in model order.

    Raises:
        ValueError: a name that is not a module of ``model``, or a module that is not ``nn.Linear``, or an
            empty selection.
        TypeError: ``model`` is not an ``nn.Module``, or ``layers`` is not a name or a list of names.
    """
    check_model(model)
    modules = dict(model.named_modules())
    if layers is None:
        tied = tied_to_embedding(model)
        chosen = {name: m for name, m in modules.items() if isinstance(m, nn.Linear) and name not in tied}
    else:
        if isinstance(layers, str):
            layers = [layers]
        if not isinstance(layers, Iterable):
            raise TypeError(f"layers must be a layer name or a list of names (as model.named_modules() gives "
                            f"them), got {type(layers).__name__}")
        layers = list(layers)
        if not layers:
            raise ValueError("layers is empty: name at least one Linear layer, or pass None for all of them")
        chosen = {}
        for name in layers:
            if not isinstance(name, str):
                raise TypeError(f"layers must hold layer names (str), got {name!r} ({type(name).__name__})")
            if name not in modules:
                linears = [n for n, m in modules.items() if isinstance(m, nn.Linear)]
                raise ValueError(f"the model has no layer named {name!r}; its Linear layers are {linears}")
            if not isinstance(modules[name], nn.Linear):
                raise ValueError(f"layer {name!r} is a {type(modules[name]).__name__}, not an nn.Linear")
            chosen[name] = modules[name]
    if not chosen:
        raise ValueError("no Linear layer to compress in this model")
    return chosen


def replace_module(model: nn.Module, name: str, new: nn.Module) -> None:
    """Put ``new`` where the submodule called ``name`` (dotted path) sits in ``model``."""
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)
