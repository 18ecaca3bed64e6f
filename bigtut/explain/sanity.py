"""Sanity checks of an explanation *method*, whatever it is: does the explanation change when the model does
(cascading model randomisation, Adebayo et al., 2018), and does it stay put when only the method's random
seed does (stability)?

Shape legend:  B batch   L positions   S randomisation steps

Both take the method as ``explain_fn``, with the family's own signature:
``explain_fn(model, input_ids, attention_mask, *, target=..., [seed=...])`` returning a result whose
``.attributions`` are ``(B, L)`` (or the ``(B, L)`` array itself). A family method goes in as it is, or with
its options fixed by ``functools.partial(lime_text, n_samples=500, keep_ids=KEEP)``.
"""

from __future__ import annotations

import copy
import inspect
import itertools
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch

from bigtut.explain.arguments import check_budget, check_target_rows, check_token_batch, resolve_seed
from bigtut.explain.common import attributions_of, logits_of
from bigtut.explain.metrics import rank_agreement, top_k_sets
from bigtut.validation import check_number

__all__ = ["HEAD_NAMES", "RandomisationResult", "randomisation_check", "stability"]

HEAD_NAMES = ("classifier", "head", "pooler", "ln_f")  # randomised first, in this order


class RandomisationResult(NamedTuple):
    """The randomised ``steps`` (names, top first); the Spearman correlation ``(S, B)`` of |attributions|
    between the original model and the model randomised down to that step; and ``output_change`` ``(S, B)``,
    the largest change of each row's logits at that step (proof that the model itself did change)."""

    steps: list[str]
    spearman: np.ndarray
    output_change: np.ndarray


def _explained(explain_fn: Callable, model, input_ids, attention_mask, shape, **kwargs) -> np.ndarray:
    """``explain_fn``'s attributions as ``(B, L)`` float64, or ``ValueError``."""
    try:
        inspect.signature(explain_fn).bind(model, input_ids, attention_mask, **kwargs)
    except TypeError:
        keywords = ", ".join(f"{key}=" for key in kwargs)
        raise TypeError(f"explain_fn must take (model, input_ids, attention_mask, *, {keywords}) like every method "
                        f"of the family; {getattr(explain_fn, '__name__', explain_fn)!r} does not") from None
    except ValueError:  # a builtin without a signature: let the call speak
        pass
    scores = attributions_of(explain_fn(model, input_ids, attention_mask, **kwargs), "explain_fn's result")
    if scores.shape != tuple(shape):
        raise ValueError(f"explain_fn must return (B, L) = {tuple(shape)} attributions, got {scores.shape}")
    if not np.isfinite(scores).all():
        raise ValueError("explain_fn returned NaN or inf attributions")
    return scores


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


def randomisation_check(model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                        *, explain_fn: Callable, target: Any = None, seed: int | None = None,
                        layers: Sequence[tuple[str, torch.nn.Module]] | None = None,
                        std: float = 0.02) -> RandomisationResult:
    """Cascading model randomisation: an explanation that does not change when the model's weights are replaced
    by random ones does not explain the model.

    A deep copy of ``model`` is randomised group by group, cumulatively, from the top down: the head-like
    modules (named ``classifier``, ``head``, ``pooler``, ``ln_f``), then the blocks of every ``nn.ModuleList``
    (``bert.layers``, ``gpt.blocks``) from the last to the first, then every parameter left (``"embeddings"``).
    ``layers`` replaces that list with your own ``(name, module)`` pairs (modules of ``model``). Each group is
    redrawn (biases 0, norm scales 1, weights N(0, std²), seeded by ``seed``) and
    ``explain_fn(model_copy, input_ids, attention_mask, target=target)`` is recomputed. ``model`` itself is
    never changed.

    Returns :class:`RandomisationResult` ``(steps, spearman (S, B), output_change (S, B))``: Spearman's ρ of
    |attributions| between the original and each randomised model over the real tokens. Values near 1 after
    heavy randomisation, while ``output_change`` shows the model's logits moved, flag an explanation that
    ignores the model.
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module (its weights are randomised), got {type(model).__name__}")
    if not callable(explain_fn):
        raise TypeError(f"explain_fn must be a function explain_fn(model, input_ids, attention_mask, *, target), "
                        f"got {type(explain_fn).__name__}")
    input_ids, real = check_token_batch(input_ids, attention_mask)
    target = check_target_rows(target, len(input_ids))
    std = check_number("std", std, 0, np.inf, low_open=True)
    seed = resolve_seed(seed)
    if not any(True for _ in model.parameters()):
        raise ValueError("model has no parameters: there is nothing to randomise")
    original = _explained(explain_fn, model, input_ids, attention_mask, input_ids.shape, target=target)  # (B, L)
    randomised = copy.deepcopy(model)
    if layers is None:
        groups = _layer_groups(randomised)
    else:
        names = {id(m): name for name, m in model.named_modules()}
        if not layers or any(not isinstance(pair, tuple) or len(pair) != 2 or id(pair[1]) not in names
                             for pair in layers):
            raise ValueError("layers must be a non-empty list of (name, module) pairs, each module a submodule of "
                             "model")
        groups = [(step, list(randomised.get_submodule(names[id(m)]).parameters())) for step, m in layers]

    def logits(m: torch.nn.Module) -> torch.Tensor:
        with torch.no_grad():
            out = logits_of(m(input_ids, attention_mask=real.long()), len(input_ids))
        return out.reshape(len(input_ids), -1).double()  # (B, C) or (B, L·V)

    before = logits(model)
    generator = torch.Generator().manual_seed(seed)
    steps, rhos, changes = [], [], []
    for step, params in groups:
        _redraw(randomised, params, generator, std)
        scores = _explained(explain_fn, randomised, input_ids, attention_mask, input_ids.shape, target=target)
        steps.append(step)
        rhos.append(rank_agreement(np.abs(original), np.abs(scores), mask=real.cpu().numpy()).spearman)  # (B,)
        changes.append((logits(randomised) - before).abs().amax(-1).cpu().numpy())  # (B,)
    shape = (len(steps), len(original))
    return RandomisationResult(steps, np.array(rhos).reshape(shape), np.array(changes).reshape(shape))


def stability(model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, *,
              explain_fn: Callable, target: Any = None, seeds: Sequence[int] = (0, 1, 2), k: int = 5) -> np.ndarray:
    """Mean top-``k`` overlap ``|A ∩ B| / k`` ``(B,)`` of ``explain_fn(model, input_ids, attention_mask,
    target=target, seed=s)`` over all pairs of ``seeds`` (1 = every seed picks the same top tokens). ``k``
    above a row's real tokens takes them all."""
    if not callable(explain_fn):
        raise TypeError(f"explain_fn must be a function explain_fn(model, input_ids, attention_mask, *, target, "
                        f"seed), got {type(explain_fn).__name__}")
    input_ids, real = check_token_batch(input_ids, attention_mask)
    target = check_target_rows(target, len(input_ids))
    if isinstance(seeds, (str, bytes)) or not hasattr(seeds, "__iter__"):
        raise TypeError(f"seeds must be a sequence of at least 2 different ints, got {seeds!r}")
    seeds, k = [resolve_seed(seed) for seed in seeds], check_budget("k", k)
    if len(set(seeds)) < 2 or len(set(seeds)) != len(seeds):
        raise ValueError(f"stability needs at least 2 seeds to compare, all different (a repeated seed agrees with "
                         f"itself), got {seeds!r}")
    runs = [_explained(explain_fn, model, input_ids, attention_mask, input_ids.shape, target=target,
                       seed=resolve_seed(seed)) for seed in seeds]  # S x (B, L)
    real = real.cpu().numpy()
    top_k = np.minimum(k, real.sum(1))  # (B,)
    tops = [top_k_sets(r, real, top_k) for r in runs]  # S x (B, L): each run's top-k set
    overlaps = [(x & y).sum(1) / np.maximum(top_k, 1) for x, y in itertools.combinations(tops, 2)]  # pairs x (B,)
    return np.mean(overlaps, axis=0)
