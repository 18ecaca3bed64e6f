"""Activation patching: run a clean input and a corrupted one, copy ONE activation of the clean run into the
corrupted run, and measure how much of the logit difference comes back. What the model *uses* is then read off
an intervention, not off a gradient or a weight.

Shape legend:  B batch   L positions   d d_model   h heads   d_head = d / h   n blocks   C classes   V vocabulary

The explained number is a logit difference ``d(x) = logit[target] − logit[contrast]`` (a language model's logits
``(B, L, V)`` are read at ``position``, by the family's rule: default the last real token). A patch at one site
restores ``d(patched) − d(corrupted)``, in logit units; :meth:`PatchingResult.restored_fraction` divides by
``d(clean) − d(corrupted)`` (1 = the patch alone restores the clean answer, 0 = it does nothing).

The sites, hooked onto the blocks of any course Transformer (no change to the model files):

* ``"residual"`` — the hidden state at one position entering the stack (``"embeddings"``, the input of block 0)
  or leaving block ``i`` (``"block i"``) -> ``(B, n + 1, L)``, one patched run per (layer, position) cell;
* ``"layer"`` — the same hidden states at every position at once -> ``(B, n + 1)``;
* ``"head"`` — one attention head's output at every position, before the output projection mixes the heads
  (the input of the attention's ``out_proj``, ``(B, L, h · d_head)`` seen as ``(B, L, h, d_head)``) ->
  ``(B, n, h)``.

The two runs share ``attention_mask`` and must be aligned token by token (corrupt by substituting tokens).
Patched runs are batched, many cells per model call; everything runs in eval mode (:func:`bigtut.eval_mode`,
which restores the caller's mode) under ``torch.no_grad()``, and every hook is removed, even on error.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn

from bigtut.explain.arguments import check_target_rows, check_token_batch, resolve_batch_size, vocab_size_of
from bigtut.explain.common import as_numpy, explained_logits, last_real_positions, logits_of, resolve_positions
from bigtut.runtime import eval_mode

__all__ = ["PATCHING_SITES", "PatchingResult", "activation_patching", "transformer_blocks"]

PATCHING_SITES = ("residual", "layer", "head")


class PatchingResult(NamedTuple):
    """What :func:`activation_patching` returns, float64 NumPy:

    * ``attributions`` — the restored logit difference ``d(patched) − d(corrupted)`` per patched site:
      ``(B, layers, L)`` (``"residual"``; 0 at padding), ``(B, layers)`` (``"layer"``), ``(B, layers, heads)``
      (``"head"``);
    * ``clean_difference``, ``corrupted_difference`` — ``d(clean)``, ``d(corrupted)`` ``(B,)``;
    * ``layer_names`` — what each layer row is: ``"embeddings"`` (the input of block 0), ``"block i"`` (its output,
      or for heads the block the head sits in).
    """

    attributions: np.ndarray
    clean_difference: np.ndarray
    corrupted_difference: np.ndarray
    layer_names: tuple[str, ...]

    def restored_fraction(self) -> np.ndarray:
        """``attributions / (d(clean) − d(corrupted))``, shaped like ``attributions``; NaN in the rows where the
        corruption changed nothing (``d(clean) == d(corrupted)``)."""
        gap = (self.clean_difference - self.corrupted_difference).reshape(-1, *(1,) * (self.attributions.ndim - 1))
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(gap == 0, np.nan, self.attributions / gap)


# ------------------------------------------------------------------------------------------ where the blocks are
def transformer_blocks(model: nn.Module) -> nn.ModuleList:
    """The blocks of a course Transformer: ``model.blocks`` (:class:`~bigtut.gpt.GPT`) or ``model.layers``
    (:class:`~bigtut.bert.Bert`), also inside a ``bert``/``gpt`` body (the BERT heads,
    :class:`~bigtut.gpt.GPTClassifier`). Each block returns its hidden states ``(B, L, d)``, or a tuple starting
    with them (``(x, attention weights)``)."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    for owner in (model, getattr(model, "bert", None), getattr(model, "gpt", None)):
        for name in ("blocks", "layers"):
            blocks = getattr(owner, name, None) if isinstance(owner, nn.Module) else None
            if isinstance(blocks, nn.ModuleList) and len(blocks) > 0:
                return blocks
    raise TypeError(f"{type(model).__name__} has no Transformer blocks to patch: activation_patching needs a "
                    "non-empty nn.ModuleList model.blocks or model.layers (or one in model.bert / model.gpt)")


def _attention_of(block: nn.Module, index: int) -> nn.Module:
    """The self-attention of ``block``: the one :class:`~bigtut.attention.MultiHeadAttention` in it (``out_proj``,
    ``num_heads``, ``d_head``), or the one named ``self_attn`` where there are several."""
    found = [m for m in block.modules() if isinstance(getattr(m, "out_proj", None), nn.Linear)
             and isinstance(getattr(m, "num_heads", None), int) and isinstance(getattr(m, "d_head", None), int)]
    if len(found) > 1 and getattr(block, "self_attn", None) in found:
        found = [block.self_attn]
    if len(found) != 1:
        raise TypeError(f"site='head' needs one bigtut MultiHeadAttention (out_proj, num_heads, d_head) in each "
                        f"block; block {index} has {len(found)}")
    return found[0]


# ---------------------------------------------------------------------------------------------------- arguments
def _indices(name: str, value: Any, size: int, meaning: str) -> list[int]:
    """``value`` (None = all, an int, or distinct ints) as a list of indices in ``[0, size)``."""
    if value is None:
        return list(range(size))
    values = [value] if isinstance(value, (int, np.integer)) and not isinstance(value, bool) else value
    try:
        values = list(values.tolist() if isinstance(values, (torch.Tensor, np.ndarray)) else values)
    except TypeError:
        raise TypeError(f"{name} must be an int or a sequence of ints, got {value!r}") from None
    if not values or not all(isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) for v in values):
        raise TypeError(f"{name} must be an int or a non-empty sequence of ints, got {value!r}")
    if any(not 0 <= v < size for v in values):
        raise ValueError(f"{name} must lie in [0, {size}) ({meaning}), got {[int(v) for v in values]}")
    if len(set(values)) != len(values):
        raise ValueError(f"{name} must not repeat an index, got {[int(v) for v in values]}")
    return [int(v) for v in values]


def _class_rows(name: str, value: Any, n: int, device: torch.device) -> torch.Tensor:
    """``target``/``contrast`` (an int or ``n`` ints, checked by :func:`check_target_rows`) as ``(n,)`` long."""
    try:
        value = check_target_rows(value, n)
    except (TypeError, ValueError) as error:
        raise type(error)(str(error).replace("target", name)) from None
    value = value.detach().cpu() if isinstance(value, torch.Tensor) else value
    return torch.as_tensor(np.broadcast_to(np.asarray(value, dtype=np.int64), (n,)).copy(), device=device)


def _check_classes(explained: torch.Tensor, target: torch.Tensor, contrast: torch.Tensor | None,
                   language_model: bool) -> torch.Tensor:
    """``contrast`` ``(B,)`` after checking both against the ``C`` explained logits ``(B, C)``; None becomes the
    other class of a 2-class classifier."""
    classes = explained.shape[-1]
    if not bool(torch.isfinite(explained).all()):
        raise ValueError("the model returned NaN or inf on the clean input; a logit difference is undefined")
    if contrast is None:
        if language_model or classes != 2:
            what = "a language model" if language_model else f"a {classes}-class model"
            raise ValueError(f"contrast= is needed for {what}: d = logit[target] - logit[contrast] (only a 2-class "
                             "classifier has an obvious other class)")
        contrast = 1 - target
    for name, value in (("target", target), ("contrast", contrast)):
        if bool(((value < 0) | (value >= classes)).any()):
            raise ValueError(f"{name} must lie in [0, {classes}), got {value.tolist()}")
    return contrast


# ------------------------------------------------------------------------------------------------------- hooks
def _hidden(output: Any) -> torch.Tensor:
    """A block's hidden states ``(N, L, d)``: its output, or the first element of the tuple it returns."""
    x = output[0] if isinstance(output, tuple) and len(output) > 0 else output
    if not isinstance(x, torch.Tensor) or x.dim() != 3:
        raise TypeError("a block must return hidden states (B, L, d), or a tuple starting with them; got "
                        f"{type(x).__name__}{tuple(x.shape) if isinstance(x, torch.Tensor) else ''}")
    return x


def _with_hidden(output: Any, x: torch.Tensor) -> Any:
    """``output`` with its hidden states replaced by ``x`` (a tuple keeps its other elements and its type)."""
    if not isinstance(output, tuple):
        return x
    rest = (x, *output[1:])
    return type(output)(*rest) if hasattr(output, "_fields") else rest


def _site_hook(module: nn.Module, pre: bool, change: Callable[[torch.Tensor], torch.Tensor | None]):
    """Register a hook that hands ``change`` the site's tensor -- the first argument (``pre``) or the hidden
    states of the output -- and puts back what it returns (None: leave it). Returns the handle."""
    if pre:
        def hook(_, args):
            if not args or not isinstance(args[0], torch.Tensor):
                raise TypeError(f"{type(module).__name__} must receive its input (B, L, d) as its first positional "
                                "argument to be patched")
            new = change(args[0])
            return None if new is None else (new, *args[1:])
        return module.register_forward_pre_hook(hook)

    def hook(_, args, output):
        new = change(_hidden(output))
        return None if new is None else _with_hidden(output, new)
    return module.register_forward_hook(hook)


def _run(model: nn.Module, ids: torch.Tensor, mask: torch.Tensor | None, hooks: Sequence[tuple]) -> torch.Tensor:
    """The model's logits of ``ids`` with the ``(module, pre, change)`` hooks in place; removed whatever happens."""
    handles = []
    try:
        for module, pre, change in hooks:
            handles.append(_site_hook(module, pre, change))
        return logits_of(model(ids, attention_mask=mask), len(ids))  # (N, C) or (N, L, V)
    finally:
        for handle in handles:
            handle.remove()


# ---------------------------------------------------------------------------------------------------- patching
def activation_patching(model: nn.Module, clean_ids: torch.Tensor, corrupted_ids: torch.Tensor,
                        attention_mask: torch.Tensor | None = None, *, target: int | Sequence[int] | torch.Tensor,
                        contrast: int | Sequence[int] | torch.Tensor | None = None, site: str = "residual",
                        layers: int | Sequence[int] | None = None, heads: int | Sequence[int] | None = None,
                        position: Any = None, batch_size: int | None = None) -> PatchingResult:
    """Patch one activation of the clean run into the corrupted run, for every site, and measure the restored
    logit difference (see the module docstring for the sites and the shapes).

    Args:
        model: a course Transformer honouring the classifier contract (``model(ids, attention_mask=m)`` -> logits
            ``(B, C)``, or a language model's ``(B, L, V)``); its blocks are found by :func:`transformer_blocks`.
        clean_ids, corrupted_ids: ``(B, L)`` token ids, aligned position by position.
        attention_mask: ``(B, L)``, 1 at real tokens, shared by both runs (None: every token real).
        target, contrast: ``d = logit[target] − logit[contrast]``, an int or one per row; ``contrast=None`` is the
            other class of a 2-class classifier (required otherwise).
        site: ``"residual"``, ``"layer"`` or ``"head"``.
        layers: the layer rows to patch, None = all: ``0`` = the embeddings (input of block 0), ``i`` = the output
            of block ``i − 1`` (``"residual"``, ``"layer"``); the block index for ``"head"``.
        heads: the heads to patch (``"head"`` only), None = all.
        position: a language model's read position (negative: counted back from the last real token); default the
            last real token. Refused for a classifier.
        batch_size: at most this many patched rows per model call.
    """
    blocks = transformer_blocks(model)
    n = len(blocks)
    if site not in PATCHING_SITES:
        raise ValueError(f"site must be one of {PATCHING_SITES}, got {site!r}")
    if isinstance(attention_mask, (tuple, list)):
        raise TypeError("attention_mask must be one (B, L) tensor: the clean and corrupted runs share it, so the two "
                        "inputs must have their real tokens at the same positions")
    vocab = vocab_size_of(model)
    clean_ids, real = check_token_batch(clean_ids, attention_mask, vocab)  # (B, L), (B, L)
    if isinstance(corrupted_ids, torch.Tensor) and tuple(corrupted_ids.shape) != tuple(clean_ids.shape):
        raise ValueError(f"clean_ids {tuple(clean_ids.shape)} and corrupted_ids {tuple(corrupted_ids.shape)} differ "
                         "in shape: patching needs the two inputs aligned token by token: corrupt by substituting "
                         "tokens, or pad the shorter one")
    corrupted_ids, _ = check_token_batch(corrupted_ids, attention_mask, vocab)  # (B, L)
    B, L = clean_ids.shape
    if site == "head":
        names = tuple(f"block {i}" for i in range(n))
        chosen = _indices("layers", layers, n, f"the {n} blocks, for site='head'")
        attentions = [_attention_of(blocks[i], i) for i in chosen]
        if len({(a.num_heads, a.d_head) for a in attentions}) != 1:
            raise ValueError("site='head' needs the same number of heads in every patched block; pass layers= "
                             "blocks of one size")
        units = _indices("heads", heads, attentions[0].num_heads, f"the {attentions[0].num_heads} heads of a block")
    else:
        if heads is not None:
            raise ValueError(f"heads= only applies to site='head', got site={site!r}")
        names = ("embeddings", *(f"block {i}" for i in range(n)))
        chosen = _indices("layers", layers, n + 1, "0 = the embeddings, i = the output of block i - 1")
        units = list(range(L)) if site == "residual" else [0]
    if target is None:
        raise ValueError("target= is needed: activation patching explains d = logit[target] - logit[contrast]")
    target_rows = _class_rows("target", target, B, clean_ids.device)  # (B,)
    contrast_rows = None if contrast is None else _class_rows("contrast", contrast, B, clean_ids.device)  # (B,)
    if contrast_rows is not None and bool((target_rows == contrast_rows).any()):
        raise ValueError("target and contrast must differ in every row: d = logit[target] - logit[contrast] would "
                         "be 0 whatever is patched")
    read = last_real_positions(real) if position is None else resolve_positions(position, real)  # (B,)
    chunk = resolve_batch_size(batch_size)

    # where each site lives: (module, pre-hook?, how its tensor becomes the patched unit's view)
    if site == "head":
        sites = [(a.out_proj, True, a.num_heads) for a in attentions]
    else:
        sites = [(blocks[0], True, None) if i == 0 else (blocks[i - 1], False, None) for i in chosen]

    def view(x: torch.Tensor, heads_of: int | None) -> torch.Tensor:  # (N, L, d) -> (N, L, d) | (N, L, h, d_head)
        return x if heads_of is None else x.unflatten(-1, (heads_of, -1))

    def difference(logits: torch.Tensor, rows: torch.Tensor, contrast_of: torch.Tensor) -> torch.Tensor:
        explained = explained_logits(logits, read[rows], position is not None)  # (N, C) or (N, V)
        index = torch.arange(len(rows), device=explained.device)
        return explained[index, target_rows[rows]] - explained[index, contrast_of[rows]]  # (N,)

    mask_of = (lambda rows: None) if attention_mask is None else (lambda rows: attention_mask[rows])
    with eval_mode(model), torch.no_grad():
        # 1) the clean run, recording every site
        recorded: list[list[torch.Tensor]] = [[] for _ in sites]
        clean_logits = []
        for start in range(0, B, chunk):
            rows = torch.arange(start, min(start + chunk, B), device=clean_ids.device)

            def keep(x, i):
                recorded[i].append(view(x, sites[i][2]).clone())

            hooks = [(module, pre, (lambda x, i=i: keep(x, i))) for i, (module, pre, _) in enumerate(sites)]
            clean_logits.append(_run(model, clean_ids[rows], mask_of(rows), hooks))
            if any(len(r) != len(clean_logits) for r in recorded):
                raise TypeError("a patched site was not reached by model(input_ids, attention_mask=...): the blocks "
                                "must run in the model's forward")
        clean = [torch.cat(r) for r in recorded]  # per site (B, L, d) or (B, L, h, d_head)
        rows_all = torch.arange(B, device=clean_ids.device)
        clean_logits = torch.cat(clean_logits)
        explained = explained_logits(clean_logits, read, position is not None)  # (B, C) or (B, V)
        contrast_rows = _check_classes(explained, target_rows, contrast_rows, clean_logits.dim() == 3)
        clean_d = difference(clean_logits, rows_all, contrast_rows)  # (B,)
        # 2) the corrupted run
        corrupted_d = torch.cat([difference(_run(model, corrupted_ids[rows], mask_of(rows), ()), rows, contrast_rows)
                                 for rows in rows_all.split(chunk)])  # (B,)
        # 3) the patched runs: one row per (example, layer, unit), padding positions skipped
        device = clean_ids.device
        b, li, k = (g.flatten() for g in torch.meshgrid(rows_all, torch.arange(len(sites), device=device),
                                                         torch.arange(len(units), device=device), indexing="ij"))
        u = torch.as_tensor(units, device=device)[k]  # (J,): the position or head of each job
        if site == "residual":
            real_job = real[b, u]
            b, li, k, u = b[real_job], li[real_job], k[real_job], u[real_job]
        restored = torch.zeros(B, len(sites), len(units), dtype=clean_d.dtype, device=clean_d.device)
        for jobs in torch.arange(len(b), device=device).split(chunk):
            jb, jl, ju = b[jobs], li[jobs], u[jobs]  # (N,)

            def patch(x, i, jb=jb, jl=jl, ju=ju):
                r = torch.nonzero(jl == i)[:, 0]  # the rows of this chunk patched at site i
                if len(r) == 0:
                    return None
                heads_of = sites[i][2]
                x = view(x, heads_of).clone()  # (N, L, d) or (N, L, h, d_head)
                if site == "residual":
                    x[r, ju[r]] = clean[i][jb[r], ju[r]]  # one position: (n, d)
                elif site == "layer":
                    x[r] = clean[i][jb[r]]  # every position: (n, L, d)
                else:
                    x[r, :, ju[r]] = clean[i][jb[r], :, ju[r]]  # one head, every position: (n, L, d_head)
                return x if heads_of is None else x.flatten(-2)

            used = torch.unique(jl).tolist()
            hooks = [(sites[i][0], sites[i][1], (lambda x, i=i: patch(x, i))) for i in used]
            logits = _run(model, corrupted_ids[jb], mask_of(jb), hooks)
            restored[jb, jl, k[jobs]] = difference(logits, jb, contrast_rows) - corrupted_d[jb]
    attributions = restored[:, :, 0] if site == "layer" else restored
    return PatchingResult(as_numpy(attributions), as_numpy(clean_d), as_numpy(corrupted_d),
                          tuple(names[i] for i in chosen))
