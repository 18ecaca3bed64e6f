"""Checker for chapter 09's activation-patching exercise.

=============================  ==================================================================================
checker                        what it holds the candidate to (and the usual mistakes it names)
=============================  ==================================================================================
``check_patch_one_position``   the restored logit difference ``d(patched) − d(corrupted)`` of one block output at
                               one position of a BERT classifier, as :func:`bigtut.explain.activation_patching`
                               computes it (not the whole layer, not the block's input or the next block's
                               output, not the attention sublayer's output, not every position from ``position``
                               on, not the batch row ``position``, not row 0 alone, not ``d(patched)`` alone, not
                               the sign flipped or the runs swapped, not the probability, the log-probability or
                               the target logit alone, not without the attention mask (in every run or in the
                               clean one), not the token patched instead of the activation); every pass in eval
                               mode (every dropout off) under ``torch.no_grad()``, every hook removed, the inputs,
                               weights and dtype untouched
=============================  ==================================================================================

The model arrives in training mode with dropout, as ``fit`` leaves it: a run in training mode is named, and so is a
hook left on the model (it would stay patched for every later call).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
from torch import nn

from bigtut.checks.core import (
    CheckFailure,
    _describe,
    assert_close_or_hint,
    assert_unchanged,
    checker_generator,
    guarded,
    passed,
)
from bigtut.checks.evaluating_explanations import _VOCAB, SEP, _as_numbers, _tiny_bert_classifier, _token_batch
from bigtut.checks.forbidden import OWN_ANSWER, assert_does_not_use
from bigtut.runtime import eval_mode

__all__ = ["check_patch_one_position"]

_DROPOUT = 0.1  # the model arrives in training mode with this dropout: a run in training mode is random


def _case(gen: torch.Generator, num_layers: int, lengths: tuple[int, ...], L: int, words_under_padding: bool,
          position: int):
    """A random 2-class BERT classifier in training mode (dropout on), clean ``[CLS] words [SEP]`` rows, the
    corrupted rows (two words of each row substituted; the word at ``position`` among them in the even rows), the
    mask and a target per row."""
    model = _tiny_bert_classifier(gen, num_layers, num_labels=2)
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = _DROPOUT
        if hasattr(module, "q_proj"):  # MultiHeadAttention: dropout on the attention weights
            module.dropout = _DROPOUT
    model.train()
    clean, mask = _token_batch(gen, lengths, L)  # (B, L), (B, L)
    if words_under_padding:  # only attention_mask says what is real
        clean = torch.where(mask.bool(), clean, torch.randint(SEP + 1, _VOCAB, clean.shape, generator=gen))
    corrupted = clean.clone()
    for b, n in enumerate(lengths):
        words = (torch.randperm(n - 2, generator=gen) + 1).tolist()  # never [CLS] or [SEP]
        if b % 2 == 0 and position in words:
            words.remove(position)
            words.insert(0, position)
        for p in words[:2]:
            corrupted[b, p] = SEP + 1 + (clean[b, p] - SEP - 1 + torch.randint(1, _VOCAB - SEP - 1, (),
                                                                                  generator=gen)) % (_VOCAB - SEP - 1)
    target = torch.randint(0, 2, (len(lengths),), generator=gen)  # (B,)
    return model, clean, corrupted, mask, target


def _patched_logits(model: nn.Module, clean_ids: torch.Tensor, corrupted_ids: torch.Tensor,
                    mask: torch.Tensor | None, index: int, where: torch.Tensor, *, clean_mask: object = "same",
                    module: nn.Module | None = None) -> torch.Tensor:
    """The logits ``(B, 2)`` of the corrupted run in which the hidden states entering the stack (``index`` 0) or
    leaving block ``index − 1`` — or, given ``module``, that module's output — are the clean run's at the
    ``where`` ``(B, L)`` cells; the clean run gets ``clean_mask`` (by default ``mask`` too)."""
    blocks = model.bert.layers
    kept = []
    clean_mask = mask if isinstance(clean_mask, str) else clean_mask

    def site(hook):
        if module is not None:  # a module that returns (hidden, ...), as the attention does
            return module.register_forward_hook(lambda _, args, out: hook(out[0], out))
        if index == 0:
            return blocks[0].register_forward_pre_hook(lambda _, args: hook(args[0], args))
        return blocks[index - 1].register_forward_hook(lambda _, args, out: hook(out[0], out))

    def keep(x, _):
        kept.append(x.clone())

    def patch(x, packed):
        return (torch.where(where[..., None], kept[0], x), *packed[1:])

    with eval_mode(model), torch.no_grad():
        handle = site(keep)
        try:
            model(clean_ids, attention_mask=clean_mask)
        finally:
            handle.remove()
        handle = site(patch)
        try:
            return model(corrupted_ids, attention_mask=mask)  # (B, 2)
        finally:
            handle.remove()


def _variants(model, clean, corrupted, mask, layer, position, target, expected) -> dict[str, Callable]:
    """The ``(B,)`` answers of the usual wrong patches."""
    from bigtut.explain.patching import activation_patching

    B, L = clean.shape
    rows = torch.arange(B)
    run = partial(activation_patching, model, clean, corrupted, mask, target=target)

    def logits(ids):
        with eval_mode(model), torch.no_grad():
            return model(ids, attention_mask=mask)  # (B, 2)

    def d(z):
        return z[rows, target] - z[rows, 1 - target]  # (B,)

    def cells(index, chosen):
        return _patched_logits(model, clean, corrupted, mask, index, chosen)

    def one(pos):
        where = torch.zeros(B, L, dtype=torch.bool)
        where[:, pos] = True
        return where

    def after(pos):
        where = torch.zeros(B, L, dtype=torch.bool)
        where[:, pos:] = True
        return where

    def batch_row():
        where = torch.zeros(B, L, dtype=torch.bool)
        where[position] = True
        return where

    def row_0():
        where = torch.zeros(B, L, dtype=torch.bool)
        where[0, position] = True
        return where

    def token_swapped():
        ids = corrupted.clone()
        ids[:, position] = clean[:, position]
        return d(logits(ids)) - d(logits(corrupted))

    n = len(model.bert.layers)
    return {
        "the whole layer was patched (every position): patch block `layer`'s output at `position` only":
            lambda: torch.as_tensor(run(site="layer", layers=[layer + 1]).attributions[:, 0]),
        "every position from `position` on was patched (x[:, position:]): patch the one position x[:, position]":
            lambda: d(cells(layer + 1, after(position))) - d(logits(corrupted)),
        "the batch row `position` was patched (x[position]): positions are the second axis, x[:, position]":
            lambda: d(cells(layer + 1, batch_row())) - d(logits(corrupted)),
        "only row 0 was patched (x[0, position]): patch position `position` in every row, x[:, position]":
            lambda: d(cells(layer + 1, row_0())) - d(logits(corrupted)),
        "the attention sublayer's output was patched: patch the output of the whole block `layer` (after its "
        "feed-forward sublayer), model.bert.layers[layer]":
            lambda: d(_patched_logits(model, clean, corrupted, mask, layer + 1, one(position),
                                      module=model.bert.layers[layer].self_attn)) - d(logits(corrupted)),
        "the block's input was patched (off by one): patch the OUTPUT of block `layer`, a forward hook on "
        "model.bert.layers[layer] (not a pre-hook, not the output of block layer − 1)":
            lambda: torch.as_tensor(run(layers=[layer]).attributions[:, 0, position]),
        "the next block's output was patched (off by one): block `layer` is model.bert.layers[layer], counted from 0":
            lambda: (torch.as_tensor(run(layers=[layer + 2]).attributions[:, 0, position]) if layer + 2 <= n
                     else None),
        "d(patched) was returned: return the restored difference d(patched) − d(corrupted)":
            lambda: expected + d(logits(corrupted)),
        "the sign is flipped: return d(patched) − d(corrupted), the patched run first": lambda: -expected,
        "the runs were swapped (the corrupted activation patched into the clean run): run the corrupted input "
        "with the clean activation": lambda: torch.as_tensor(activation_patching(
            model, corrupted, clean, mask, target=target, layers=[layer + 1]).attributions[:, 0, position]),
        "probabilities were compared: d is the logit difference logit[target] − logit[1 − target]":
            lambda: (cells(layer + 1, one(position)).softmax(-1)[rows, target]
                     - logits(corrupted).softmax(-1)[rows, target]),
        "log-probabilities of the target were compared: d is the logit difference logit[target] − "
        "logit[1 − target]": lambda: (cells(layer + 1, one(position)).log_softmax(-1)[rows, target]
                                      - logits(corrupted).log_softmax(-1)[rows, target]),
        "the target's logit alone: d is the difference logit[target] − logit[1 − target]":
            lambda: cells(layer + 1, one(position))[rows, target] - logits(corrupted)[rows, target],
        "the target was ignored (d = logit[1] − logit[0] in every row): d = logit[target] − logit[1 − target]":
            lambda: torch.as_tensor(activation_patching(model, clean, corrupted, mask, target=1, contrast=0,
                                                        layers=[layer + 1]).attributions[:, 0, position]),
        "the attention mask was ignored: pass attention_mask=attention_mask to every run (padding is not text)":
            lambda: torch.as_tensor(activation_patching(model, clean, corrupted, None, target=target,
                                                        layers=[layer + 1]).attributions[:, 0, position]),
        "the clean run had no attention mask: pass attention_mask=attention_mask to the clean run too (padding "
        "is not text)": lambda: (d(_patched_logits(model, clean, corrupted, mask, layer + 1, one(position),
                                                   clean_mask=None)) - d(logits(corrupted))),
        "the restored fraction was returned: return the raw logit difference d(patched) − d(corrupted)":
            lambda: expected / (d(logits(clean)) - d(logits(corrupted))),
        "the token was patched (the clean id put into the corrupted input): patch the block's output activation":
            token_swapped,
        "d(clean) − d(corrupted) was returned, the whole effect of the corruption: patch one activation":
            lambda: d(logits(clean)) - d(logits(corrupted)),
        "every row is 0, the patch changed nothing: record the CLEAN run's activation, then put it into the "
        "corrupted run": lambda: torch.zeros(B, dtype=torch.float64),
    }


def _note_run(runs: list[tuple[bool, bool]], module: nn.Module, args: tuple) -> None:
    """A spy's forward pre-hook: note whether the block ran in training mode and with autograd on."""
    runs.append((module.training, torch.is_grad_enabled()))


def _hook_count(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def check_patch_one_position(candidate: Callable, seed: int | None = None) -> None:
    """``candidate(model, clean_ids (B, L), corrupted_ids (B, L), attention_mask (B, L), layer, position,
    target (B,)) -> (B,)``: on a 2-class BERT classifier, the corrupted run with block ``layer``'s output at
    ``position`` replaced by the clean run's, measured as ``d(patched) − d(corrupted)`` with
    ``d = logit[target] − logit[1 − target]`` — :func:`bigtut.explain.activation_patching`'s residual cell
    ``(layer + 1, position)``. Every pass in eval mode under ``torch.no_grad()``; no hook left behind."""
    from bigtut.explain.patching import activation_patching

    gen, seed = checker_generator(seed)
    name = "patch_one_position"
    if not callable(candidate):
        raise CheckFailure(f"{name}: expected a function, got {_describe(candidate)}")
    for num_layers, lengths, L, layer, position, under in ((4, (9, 7, 9, 8), 9, 1, 3, True),
                                                           (2, (8, 6, 8, 5), 8, 0, 2, False),
                                                           (2, (7, 4, 6), 7, 1, 0, True)):
        model, clean, corrupted, mask, target = _case(gen, num_layers, lengths, L, under, position)
        inputs = (f"a random {num_layers}-layer BERT classifier (2 classes, float64, arriving in training mode with "
                  f"dropout {_DROPOUT}), B={len(lengths)} rows of L={L} ids, real lengths {list(lengths)}, two words "
                  f"per row substituted (the word at `position` in rows 0, 2, …), layer={layer}, position={position} "
                  f"(seed={seed})")
        expected = torch.as_tensor(activation_patching(model, clean, corrupted, mask, target=target,
                                                       layers=[layer + 1]).attributions[:, 0, position])  # (B,)
        with eval_mode(model), torch.no_grad():
            corrupted_logits = model(corrupted, attention_mask=mask)  # (B, 2)
        weights = {key: value.clone() for key, value in model.state_dict().items()}
        hooks = _hook_count(model)
        runs: list[tuple[bool, bool]] = []  # (training?, autograd on?) of every block or dropout call made
        spied = [*model.bert.layers, *(m for m in model.modules() if isinstance(m, nn.Dropout) or hasattr(m, "q_proj"))]
        spies = [module.register_forward_pre_hook(partial(_note_run, runs)) for module in spied]
        given = (clean.clone(), corrupted.clone(), mask.clone(), target.clone())
        try:
            got = _as_numbers(guarded(name, f"{name}(model, clean_ids, corrupted_ids, attention_mask, {layer}, "
                                            f"{position}, target) for {inputs}", candidate, model, given[0],
                                      given[1], given[2], layer, position, given[3]))
        finally:
            for spy in spies:
                spy.remove()
        assert_unchanged(name, inputs, {"clean_ids": (clean, given[0]), "corrupted_ids": (corrupted, given[1]),
                                        "attention_mask": (mask, given[2]), "target": (target, given[3])})
        if any(value.dtype != weights[key].dtype for key, value in model.state_dict().items()):
            raise CheckFailure(f"{name}: the model was converted to another dtype for {inputs} — the caller's "
                               "float64 model came back changed: leave it as it is (model.float() or "
                               "model.to(...) act in place)")
        if any(not torch.equal(weights[key], value) for key, value in model.state_dict().items()):
            raise CheckFailure(f"{name}: the model's weights changed for {inputs} — patch activations with hooks "
                               "(or a forward written out), never the parameters")
        if any(training for training, _ in runs):
            raise CheckFailure(f"{name}: the model ran in training mode (dropout on) for {inputs} — it arrives in "
                               "training mode: run every pass inside `with bigtut.eval_mode(model):` (or call "
                               "model.eval() first, on the whole model: model.bert.eval() leaves the classifier's "
                               "dropout on)")
        if any(grad for _, grad in runs) or (isinstance(got, torch.Tensor) and got.requires_grad):
            raise CheckFailure(f"{name}: the model ran with autograd on for {inputs} — patching needs no gradient: "
                               "run the passes under `with torch.no_grad():`")
        with eval_mode(model), torch.no_grad():
            still_patched = not torch.equal(model(corrupted, attention_mask=mask), corrupted_logits)
        if _hook_count(model) != hooks or still_patched:
            raise CheckFailure(f"{name}: a hook was left on the model for {inputs} — every later call would stay "
                               "patched: keep the handle, `handle = block.register_forward_hook(...)`, and call "
                               "`handle.remove()` in a `finally:` block")
        if isinstance(got, torch.Tensor) and got.dim() == 0:
            raise CheckFailure(f"{name}: got one number ({got.item():.4g}) for {inputs}, expected one restored "
                               f"difference per row, shape ({len(lengths)},): do not average over the batch")
        atol = 1e-6 if isinstance(got, torch.Tensor) and got.dtype == torch.float32 else 1e-9
        assert_close_or_hint(got, expected, what=name, inputs=inputs, atol=atol, rtol=0.0, hint_atol=1e-9,
                             variants=partial(_variants, model, clean, corrupted, mask, layer, position, target,
                                              expected))
    assert_does_not_use(name, candidate, {"activation_patching": OWN_ANSWER.format(
        "bigtut.explain's activation_patching")})
    passed(name, "random 2- and 4-layer BERT classifiers, one block output at one position, padding, eval mode, "
                 "no grad, no hook left")
