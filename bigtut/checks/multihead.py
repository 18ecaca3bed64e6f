"""Checkers for notebook 02's multi-head attention classes, taken apart bug by bug (re-exported by
:mod:`bigtut.checks.attention`).

A class under test is built as ``cls(d_model, num_heads)`` (``dropout=`` too, for the dropout check) and
called as ``module(query, key, value, mask)`` with a bool mask (True = may attend) shaped to broadcast
against scores ``(B, h, Lq, Lk)``; it may return the output or ``(output, weights)``. To compare values the
checkers copy the reference's weights into it by parameter name: ``q_proj``, ``k_proj``, ``v_proj``,
``out_proj`` (``nn.Linear(d_model, d_model)`` each, as in bigtut) or ``nn.MultiheadAttention``'s packed
``in_proj_weight``/``in_proj_bias``/``out_proj``. A missing bias counts as a zero bias.

:func:`check_causal_self_attention_module` checks GPT-2's causal self-attention with a fused q/k/v projection
``c_attn`` and an output projection ``c_proj``, against :class:`bigtut.gpt.CausalSelfAttention` and Hugging Face's
``GPT2Attention``. :func:`assert_same_dtype` is a generic helper (also used by :mod:`.attention`): a candidate
must return the inputs' dtype; that it leaves the tensors it is handed as they were is checked by
:func:`bigtut.checks.core.assert_unchanged`.

Inputs come from a private generator; pass ``seed=`` to replay a case (the seed is named in every failure).
"""

from __future__ import annotations

import copy
import inspect
import math
import sys
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from bigtut.attention import MultiHeadAttention, causal_mask, padding_mask
from bigtut.checks.core import (
    CheckFailure,
    _describe,
    assert_close,
    assert_unchanged,
    checker_generator,
    guarded,
    passed,
    random_float64,
)

__all__ = ["assert_same_dtype", "check_causal_self_attention_module", "check_mha_dropout",
           "check_mha_output_projection", "check_mha_shapes", "check_mha_values", "check_multi_head_attention"]


# ------------------------------------------------------------- generic helper (also used by .attention)
def assert_same_dtype(name: str, got: Any, expected: torch.Tensor, *, what: str, inputs: str) -> None:
    """Fail if a tensor came back in another floating dtype than the reference's (e.g. float32 for float64
    inputs): new tensors must be created with the inputs' ``dtype`` (and ``device``)."""
    if isinstance(got, torch.Tensor) and got.is_floating_point() and got.dtype != expected.dtype:
        raise CheckFailure(
            f"{name}: the {what} is {got.dtype} for {expected.dtype} inputs ({inputs}). Keep the inputs' dtype: no "
            ".float(), and create new tensors with dtype=x.dtype, device=x.device (or torch.zeros_like, "
            "x.new_zeros, …).")


def _device_problem(fn: Any, *args: Any) -> str | None:
    """Run ``fn(*args)`` on 'meta' tensors (shapes, no data): a tensor created on the CPU inside it then
    collides with the inputs' device, as it would on a GPU. Returns the error message of such a collision;
    any other error (an operation meta tensors do not support) is not the candidate's fault and gives None."""
    try:
        with torch.no_grad():
            fn(*args)
    except Exception as err:  # only device mix-ups count
        text = str(err)
        if "device" in text and ("meta" in text or "cpu" in text):
            return f"{type(err).__name__}: {text}"
    return None


# ------------------------------------------------------------------------------ multi-head attention classes
def _build(cls: Any, name: str, d_model: int, num_heads: int, **kwargs: Any) -> nn.Module:
    if not isinstance(cls, type):
        raise CheckFailure(f"{name}: expected a class (an nn.Module subclass), got {_describe(cls)}")
    args = ", ".join([str(d_model), str(num_heads)] + [f"{k}={v}" for k, v in kwargs.items()])
    module = guarded(name, f"{cls.__name__}({args})", cls, d_model, num_heads, **kwargs)
    if not isinstance(module, nn.Module):
        raise CheckFailure(f"{name}: {cls.__name__}({args}) is not an nn.Module")
    return module


def _shape(x: torch.Tensor) -> str:
    return str(tuple(x.shape))


def _call(module: nn.Module, name: str, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
          mask: torch.Tensor | None, label: str) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``module(query, key, value, mask)`` as ``(output, weights or None)``."""
    what = (f"forward(query {_shape(query)}, key {_shape(key)}, value {_shape(value)}, "
            f"mask {None if mask is None else _shape(mask)}) [{label}]")
    got = guarded(name, what, module, query, key, value, mask)
    out, weights = (got[0], got[1] if len(got) > 1 else None) if isinstance(got, tuple) else (got, None)
    if not isinstance(out, torch.Tensor):
        raise CheckFailure(f"{name}: {what} returned {_describe(got)}; expected output (B, Lq, d_model)")
    return out, weights


def _load_reference_weights(module: nn.Module, reference: MultiHeadAttention, name: str) -> None:
    """Copy ``reference``'s projections into ``module`` by parameter name; where ``module`` has no bias, the
    reference's bias is zeroed instead."""
    own = dict(module.named_parameters())
    packed = "in_proj_weight" in own  # nn.MultiheadAttention's layout: q, k, v stacked in one matrix
    with torch.no_grad():
        for prefix in "qkv":
            if (packed and "in_proj_bias" not in own) or (not packed and f"{prefix}_proj.bias" not in own):
                getattr(reference, f"{prefix}_proj").bias.zero_()
        if "out_proj.bias" not in own:
            reference.out_proj.bias.zero_()
        ref = {k: p for k, p in reference.named_parameters() if k in own}
        if packed:
            ref["in_proj_weight"] = torch.cat([getattr(reference, f"{p}_proj").weight for p in "qkv"])  # (3d, d)
            ref["in_proj_bias"] = torch.cat([getattr(reference, f"{p}_proj").bias for p in "qkv"])  # (3d,)
        for key, param in own.items():
            if key not in ref or ref[key].shape != param.shape:
                raise CheckFailure(
                    f"{name}: cannot copy the reference weights into parameter {key!r} of shape "
                    f"{tuple(param.shape)}. Name the projections q_proj, k_proj, v_proj, out_proj "
                    f"(nn.Linear(d_model, d_model) each); found parameters {sorted(own)}")
            param.copy_(ref[key])
    needed = ["in_proj_weight"] if packed else [f"{p}_proj.weight" for p in "qkv"]
    missing = [k for k in needed + ["out_proj.weight"] if k not in own]
    if missing:
        raise CheckFailure(f"{name}: the module has no parameter {', '.join(missing)} (found {sorted(own)}); "
                           "multi-head attention needs q_proj, k_proj, v_proj and out_proj")


def _variant(ref: MultiHeadAttention, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
             mask: torch.Tensor | None, *, scale: float, transpose_merge: bool = True, transpose_split: bool = True,
             mask_mode: str = "keep", softmax_dim: int = -1, v_input: str = "value", v_proj: str = "v",
             k_proj: str = "k") -> torch.Tensor:
    """A deliberately altered explicit multi-head attention, used to name a candidate's mistake.

    ``mask_mode``: "keep" (True = may attend), "inverted", "ignored" or "zero" (masked scores set to 0);
    ``v_input``: the tensor the values are projected from ("value" or "key"); ``v_proj``/``k_proj``: which
    projection ("q", "k", "v") makes them."""
    B, h, d_head = query.shape[0], ref.num_heads, ref.d_head

    def split(x: torch.Tensor) -> torch.Tensor:  # (B, L, d_model) -> (B, h, L, d_head)
        L = x.shape[1]
        return x.view(B, L, h, d_head).transpose(1, 2) if transpose_split else x.reshape(B, h, L, d_head)

    proj = {"q": ref.q_proj, "k": ref.k_proj, "v": ref.v_proj}
    q, k = split(ref.q_proj(query)), split(proj[k_proj](key))
    v = split(proj[v_proj](key if v_input == "key" else value))
    scores = q @ k.transpose(-2, -1) / scale  # (B, h, Lq, Lk)
    if mask is not None and mask_mode != "ignored":
        keep = mask.unsqueeze(1) if mask.dim() == 3 else mask
        blocked = keep if mask_mode == "inverted" else ~keep
        scores = scores.masked_fill(blocked, 0.0 if mask_mode == "zero" else float("-inf"))
    heads = torch.softmax(scores, dim=softmax_dim) @ v  # (B, h, Lq, d_head); a fully masked row is nan, as in
    Lq = heads.shape[2]  # most wrong code
    merged = heads.transpose(1, 2).reshape(B, Lq, h * d_head) if transpose_merge else heads.reshape(B, Lq, -1)
    return ref.out_proj(merged)  # (B, Lq, d_model)


def _diagnose(out: torch.Tensor, ref: MultiHeadAttention, inputs: tuple, d_model: int) -> str:
    d_head = ref.d_head
    right = math.sqrt(d_head)
    suspects = [
        (dict(scale=math.sqrt(d_model)), f"scores divided by √d_model = {math.sqrt(d_model):g} instead of "
                                         f"√d_head = √{d_head} = {math.sqrt(d_head):g}"),
        (dict(scale=1.0), "scores not scaled at all (divide q·k by √d_head)"),
        (dict(scale=d_head / 2), f"scores divided by d_head / 2 = {d_head / 2:g}, not √d_head = {right:.4g}: "
                                 "`d_head ** 1/2` is (d_head ** 1) / 2 — write d_head ** 0.5"),
        (dict(scale=float(d_head)), f"scores divided by d_head = {d_head}, not by its square root √d_head"),
        (dict(scale=right, transpose_merge=False),
         "heads merged without moving the head axis back: (B, h, L, d_head) must become (B, L, h, d_head) "
         "(transpose) before the reshape to (B, L, d_model)"),
        (dict(scale=right, transpose_split=False),
         "heads split without a transpose: (B, L, d_model) must be viewed as (B, L, h, d_head) and then "
         "transposed to (B, h, L, d_head); viewing it directly as (B, h, L, d_head) mixes positions and features"),
        (dict(scale=right, transpose_split=False, transpose_merge=False),
         "heads split and merged without transposes: view (B, L, d_model) as (B, L, h, d_head), then "
         "transpose(1, 2); undo both when merging"),
        (dict(scale=right, mask_mode="ignored"), "the mask ignored: masked keys still get weight"),
        (dict(scale=right, mask_mode="inverted"), "the mask inverted: True must mean 'may attend' "
                                                  "(masked_fill(~mask, float('-inf'))); with a causal mask the "
                                                  "last query then sees no key at all and gives nan"),
        (dict(scale=right, mask_mode="zero"), "masked scores set to 0, not -inf: a score of 0 still gets weight "
                                              "after the softmax — masked_fill(~mask, float('-inf'))"),
        (dict(scale=right, softmax_dim=-2), "the softmax over the queries (dim=-2); it runs over the keys, dim=-1"),
        (dict(scale=right, softmax_dim=1), "the softmax over the heads (dim=1); it runs over the keys, dim=-1"),
        (dict(scale=right, v_input="key"), "the values projected from `key`, not from `value`: "
                                           "v = self.v_proj(value)"),
        (dict(scale=right, v_proj="k"), "the values made by k_proj: v = self.v_proj(value)"),
        (dict(scale=right, k_proj="q"), "the keys made by q_proj: k = self.k_proj(key)"),
    ]
    for kwargs, story in suspects:
        with torch.no_grad():
            alt = _variant(ref, *inputs, **kwargs)
        if alt.shape == out.shape and torch.allclose(out.detach().to(alt.dtype), alt, atol=1e-8, rtol=1e-6,
                                                     equal_nan=True):
            return f"\n  The output equals multi-head attention with {story}."
    return ""


def _mha_shapes(cls: Any, name: str, seed: int | None) -> str:
    gen, seed = checker_generator(seed)
    # 0) the example such code is usually shown with (L == d_model == 16): does the class run at all?
    smoke = random_float64(checker_generator(seed)[0], 2, 16, 16)
    _call(_build(cls, name, 16, 4).double().eval(), name, smoke, smoke, smoke, None,
          f"the usual example, L == d_model == 16, num_heads=4, seed={seed}")
    cases = [(16, 4, 2, 5, 5, "self-attention"), (16, 4, 2, 3, 7, "cross-attention, Lq != Lk"),
             (12, 2, 3, 9, 9, "self-attention, 2 heads"), (24, 3, 1, 1, 4, "one query")]
    for d_model, h, B, Lq, Lk, label in cases:
        module = _build(cls, name, d_model, h).double().eval()
        query, memory = random_float64(gen, B, Lq, d_model), random_float64(gen, B, Lk, d_model)
        key = query if Lq == Lk else memory
        out, weights = _call(module, name, query, key, key, None, f"{label}, d_model={d_model}, "
                                                                  f"num_heads={h}, seed={seed}")
        if tuple(out.shape) != (B, Lq, d_model):
            raise CheckFailure(
                f"{name}: output of shape {tuple(out.shape)} for query {(B, Lq, d_model)}, key/value "
                f"{(B, Lk, d_model)} [{label}, d_model={d_model}, num_heads={h}]; expected (B, Lq, d_model) = "
                f"{(B, Lq, d_model)}. Check every size used in a view/reshape: d_head = d_model // num_heads, "
                f"and after attention the heads are merged back into one axis of size d_model.")
        if isinstance(weights, torch.Tensor) and tuple(weights.shape) != (B, h, Lq, Lk):
            raise CheckFailure(f"{name}: per-head weights of shape {tuple(weights.shape)} for query "
                               f"{(B, Lq, d_model)}, key/value {(B, Lk, d_model)} [{label}, d_model={d_model}, "
                               f"num_heads={h}]; expected (B, h, Lq, Lk) = {(B, h, Lq, Lk)}. Each head must see "
                               f"all Lk keys with d_head = d_model // num_heads = {d_model // h} features.")
    return f"output (B, Lq, d_model) in {len(cases)} cases, Lq != Lk and num_heads != L included"


def _mha_output_projection(cls: Any, name: str, seed: int | None) -> str:
    d_model, h = 16, 4
    module = _build(cls, name, d_model, h)
    names = sorted(n for n, _ in module.named_parameters())
    count = sum(p.numel() for p in module.parameters())
    full, no_bias = 4 * d_model * (d_model + 1), 4 * d_model * d_model
    if count not in (full, no_bias):
        three = 3 * d_model * (d_model + 1)
        story = (" That is three projections: the heads are concatenated but nothing mixes them afterwards — "
                 "add the output projection out_proj = nn.Linear(d_model, d_model) and apply it last."
                 if count in (three, 3 * d_model * d_model) else "")
        raise CheckFailure(f"{name}: {cls.__name__}(16, 4) has {count} parameters ({names}); multi-head attention "
                           f"has four d_model × d_model projections (q, k, v, output): {full} numbers with "
                           f"biases, {no_bias} without.{story}")
    if not any(n.startswith("out_proj.") for n in names):
        raise CheckFailure(f"{name}: no parameter named out_proj.* (found {names}); call the output projection "
                           "out_proj so weights can be exchanged with bigtut and nn.MultiheadAttention")
    _out_proj_applied_last(module, name, cls.__name__, seed)
    return "four d_model × d_model projections, the last one out_proj"


def _out_proj_applied_last(module: nn.Module, name: str, label: str, seed: int | None) -> None:
    """out_proj must be the layer's last step, applied once: with out_proj set to the identity (no bias) the
    output is the merged heads M, and with any weight W and bias b it must then be M @ W.T + b. Skipped when
    the forward pass fails (the shape and value checks say why)."""
    gen, seed = checker_generator(seed)
    module = module.double().eval()
    x = random_float64(gen, 2, 5, 16)  # (B, L, d_model)
    out_proj = getattr(module, "out_proj", None)
    weight, bias = getattr(out_proj, "weight", None), getattr(out_proj, "bias", None)
    if not isinstance(weight, torch.Tensor) or tuple(weight.shape) != (16, 16):
        return
    W, b = random_float64(gen, 16, 16, scale=0.25), random_float64(gen, 16)
    outs = []
    try:
        with torch.no_grad():
            for w_value, b_value in ((torch.eye(16, dtype=torch.float64), 0.0), (W, b)):
                weight.copy_(w_value)
                if isinstance(bias, torch.Tensor):
                    bias.copy_(b_value if isinstance(b_value, torch.Tensor) else torch.zeros_like(bias))
                got = module(x, x, x, None)
                outs.append(got[0] if isinstance(got, tuple) else got)
    except Exception:  # a broken forward is for the shape and value checks to report
        return
    if not all(isinstance(o, torch.Tensor) and o.shape == x.shape for o in outs):
        return
    merged, out = outs
    expected = merged @ W.T + (b if isinstance(bias, torch.Tensor) else 0.0)
    if not torch.allclose(out, expected, atol=1e-9, rtol=1e-7):
        raise CheckFailure(
            f"{name}: {label} has an out_proj, but it is not the layer's last step: with out_proj the identity the "
            f"output is the merged heads M, yet with weight W and bias b it is not M @ W.T + b (seed={seed}). "
            "Apply out_proj once, last, to the merged heads: return self.out_proj(merged), weights.")


def _mha_values(cls: Any, name: str, seed: int | None) -> str:
    gen, seed = checker_generator(seed)
    count = 0
    for d_model, h in ((16, 4), (12, 2)):
        module = _build(cls, name, d_model, h).double().eval()
        ref = MultiHeadAttention(d_model, h).double().eval()
        with torch.no_grad():
            for p in ref.parameters():
                p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float64) / math.sqrt(d_model))
        _load_reference_weights(module, ref, name)
        B, L, Lk = 2, 5, 7
        x, memory = random_float64(gen, B, L, d_model), random_float64(gen, B, Lk, d_model)
        keep = padding_mask([Lk, 4], Lk)[:, None]  # (B, 1, 1, Lk)
        values = random_float64(gen, B, Lk, d_model)  # cross-attention: value is not key
        for label, (query, key, value, mask) in {
            "self-attention, no mask": (x, x, x, None),
            "self-attention, causal mask (L, L)": (x, x, x, causal_mask(L)),
            "cross-attention, key-padding mask (B, 1, 1, Lk), lengths [7, 4], value ≠ key": (x, memory, values,
                                                                                          keep),
        }.items():
            label = f"{label}, d_model={d_model}, num_heads={h} (seed={seed})"
            given = {"query": query.clone(), "key": key.clone(), "value": value.clone()}
            with torch.no_grad():
                out, weights = _call(module, name, given["query"], given["key"], given["value"], mask, label)
                expected, expected_weights = ref(query, key, value, mask)
            inputs = f"{label}: query {_shape(query)}, key/value {_shape(key)}"
            assert_unchanged(name, inputs, {"query": (query, given["query"]), "key": (key, given["key"]),
                                            "value": (value, given["value"])})
            if count == 0:  # the very same tensors again: nn.MultiheadAttention's path depends on `query is key`
                _deterministic_in_eval(module, name, out, (given["query"], given["key"], given["value"], mask),
                                       inputs)
            assert_same_dtype(name, out, expected, what="output", inputs=inputs)
            try:
                assert_close(out, expected, what=f"{name} (output)", inputs=inputs, atol=1e-8, rtol=1e-6)
            except CheckFailure as failure:
                raise CheckFailure(str(failure) + _diagnose(out, ref, (query, key, value, mask), d_model)) from None
            if isinstance(weights, torch.Tensor) and weights.shape == expected_weights.shape:
                assert_close(weights, expected_weights, what=f"{name} (per-head weights)", inputs=inputs,
                             atol=1e-8, rtol=1e-6)
            count += 1
    return f"equal to bigtut.attention.MultiHeadAttention with copied weights in {count} cases"


def _deterministic_in_eval(module: nn.Module, name: str, out: torch.Tensor, inputs: tuple, label: str) -> None:
    """In eval mode the same call must give the same output: otherwise dropout is still on."""
    with torch.no_grad():
        again, _ = _call(module, name, *inputs, label)
    if again.shape == out.shape and not torch.equal(again, out):
        raise CheckFailure(
            f"{name}: in eval mode two identical calls gave different outputs ({label}): dropout is still active. "
            "F.dropout(x, p) drops unless told training=self.training; nn.Dropout follows module.eval() by itself.")


def _dropout_story(got: torch.Tensor, w: torch.Tensor, p: float, dropped: torch.Tensor) -> str:
    """Name a wrong dropout rule when every weight follows it: kept weights not rescaled, scaled by 1/p, or
    scaled twice (two dropouts in a row)."""
    rules = [
        (w, "the kept weights were not rescaled: inverted dropout divides them by 1-p, so that their "
            "expectation equals the weight without dropout"),
        (w / p, f"the kept weights were divided by p = {p:g}; inverted dropout divides by 1-p = {1 - p:g}"),
        (w / (1 - p) ** 2, "the weights went through dropout twice (each kept one is scaled by 1/(1-p) twice): "
                           "apply dropout once, to the weights after the softmax"),
    ]
    for scaled, story in rules:
        if ((got - scaled).abs() < 1e-8).logical_or(dropped).all():
            return f" Here {story}."
    return ""


def _mha_dropout(cls: Any, name: str, seed: int | None) -> str:
    """With v_proj and out_proj set to the identity and one-hot values, each head's output row *is* its
    effective attention row, so dropout can be watched directly. A second module with another ``p`` is then
    run twice on the same random draws, with one-hot and with dense values: dropout on the weights gives
    outputs that are the same dropped weights times the values; dropout on the values or on the output does
    not."""
    gen, seed = checker_generator(seed)
    d_model, h, p, B, Lq, Lk = 16, 4, 0.5, 8, 4, 4  # Lk <= d_head = 4, so one-hot values fit in a head
    if not _takes_dropout(cls):
        raise CheckFailure(f"{name}: {cls.__name__} takes no `dropout` argument, so dropout cannot be checked")
    module = _build(cls, name, d_model, h, dropout=p).double()
    ref = MultiHeadAttention(d_model, h).double().eval()
    with torch.no_grad():
        for proj in (ref.q_proj, ref.k_proj):  # moderate scores, so that no weight is ~0 by itself
            proj.weight.copy_(torch.randn(d_model, d_model, generator=gen, dtype=torch.float64) / d_model**0.5)
            proj.bias.copy_(torch.randn(d_model, generator=gen, dtype=torch.float64) / d_model**0.5)
        for proj in (ref.v_proj, ref.out_proj):
            proj.weight.copy_(torch.eye(d_model, dtype=torch.float64))
            proj.bias.zero_()
    _load_reference_weights(module, ref, name)
    query = random_float64(gen, B, Lq, d_model)
    value = torch.zeros(B, Lk, d_model, dtype=torch.float64)  # (B, Lk, d_model)
    for j in range(Lk):
        value[:, j, j::d_model // h] = 1.0  # key j is the one-hot e_j inside every head
    key = random_float64(gen, B, Lk, d_model)
    with torch.no_grad():
        _, w = ref(query, key, value)  # (B, h, Lq, Lk): the weights without dropout

        def effective(out: torch.Tensor) -> torch.Tensor:
            return out.view(B, Lq, h, d_model // h)[..., :Lk].transpose(1, 2)  # (B, h, Lq, Lk)

        module.eval()
        out, _ = _call(module, name, query, key, value, None, f"eval mode, seed={seed}")
        _deterministic_in_eval(module, name, out, (query, key, value, None), f"eval mode, dropout={p}, "
                                                                               f"seed={seed}")
        assert_close(effective(out), w, what=f"{name} (eval mode, dropout off)", atol=1e-8, rtol=1e-6,
                     inputs=f"identity value/output projections, one-hot values (seed={seed}); run "
                            "check_mha_values first")
        module.train()
        with torch.random.fork_rng(devices=[]):  # the candidate's dropout draws from torch's global generator
            torch.manual_seed(seed)
            out, _ = _call(module, name, query, key, value, None, f"training mode, dropout={p}, seed={seed}")
    got = effective(out)  # (B, h, Lq, Lk)
    dropped = got.abs() < 1e-9
    kept = (got - w / (1 - p)).abs() < 1e-8
    if torch.allclose(got, w, atol=1e-8, rtol=1e-6):
        raise CheckFailure(f"{name}: {cls.__name__}(16, 4, dropout={p}) dropped nothing in training mode: the "
                           f"attention weights equal those of eval mode. Apply dropout (e.g. nn.Dropout(dropout)) "
                           f"to the weights after the softmax (seed={seed}).")
    if not (dropped | kept).all():
        i = tuple(int(t) for t in torch.nonzero(~(dropped | kept))[0])
        row = i[:3]
        story = _dropout_story(got, w, p, dropped)
        raise CheckFailure(
            f"{name}: in training mode with dropout={p}, every attention weight must be either dropped (0) or "
            f"kept and scaled by 1/(1-p) = {1 / (1 - p):g}.{story} Weight row (batch, head, query) = {row} is\n"
            f"  without dropout {[round(x, 4) for x in w[row].tolist()]}\n"
            f"  in training     {[round(x, 4) for x in got[row].tolist()]}\n"
            f"  (row sums: {w[row].sum().item():.4f} vs {got[row].sum().item():.4f}). Dropout belongs on the "
            f"weights after the softmax; on the scores before it, a 'dropped' score becomes 0 (not -inf) and the "
            f"softmax renormalises everything (seed={seed}).")
    _dropout_rate(name, cls.__name__, dropped, p, seed)
    _dropout_placement(cls, name, ref, query, key, value, w, seed, gen, effective)
    return f"dropout={p} zeroes attention weights after the softmax and scales the rest by 1/(1-p)"


def _dropout_rate(name: str, label: str, dropped: torch.Tensor, p: float, seed: int) -> None:
    """About a fraction ``p`` of the weights must be dropped (±0.15, over 7 standard deviations here)."""
    rate = dropped.double().mean().item()
    if abs(rate - p) > 0.15:
        raise CheckFailure(f"{name}: {label}(16, 4, dropout={p}) dropped {int(dropped.sum())} of "
                           f"{dropped.numel()} attention weights ({rate:.0%}) in training mode; expected about "
                           f"{p:.0%}. Pass the `dropout` argument on to nn.Dropout instead of a fixed rate "
                           f"(seed={seed}).")


def _dropout_placement(cls: Any, name: str, ref: MultiHeadAttention, query: torch.Tensor, key: torch.Tensor,
                       one_hot: torch.Tensor, w: torch.Tensor, seed: int, gen: torch.Generator,
                       effective: Callable[[torch.Tensor], torch.Tensor]) -> None:
    p = 0.25  # another rate: 1/(1-p) and 1/p differ, and a fixed rate shows
    module = _build(cls, name, ref.d_model, ref.num_heads, dropout=p).double().train()
    _load_reference_weights(module, ref, name)
    dense = random_float64(gen, *one_hot.shape)  # (B, Lk, d_model)
    outs = []
    for value in (one_hot, dense):
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed + 1)  # the same draws in both calls
            outs.append(_call(module, name, query, key, value, None, f"training mode, dropout={p}, "
                                                                     f"seed={seed}")[0])
    got = effective(outs[0])  # (B, h, Lq, Lk): the dropped weights
    dropped = got.abs() < 1e-9
    kept = (got - w / (1 - p)).abs() < 1e-8
    if not (dropped | kept).all():
        story = _dropout_story(got, w, p, dropped)
        if not story and ((got - w / 0.5).abs() < 1e-8).logical_or(dropped).all():
            story = (" The kept weights were scaled by 2 = 1/(1-0.5), as for dropout=0.5: the rate is fixed "
                     "instead of taken from the `dropout` argument.")
        raise CheckFailure(f"{name}: in training mode with dropout={p}, every attention weight must be either "
                           f"dropped (0) or kept and scaled by 1/(1-p) = {1 / (1 - p):g}.{story} (seed={seed})")
    _dropout_rate(name, cls.__name__, dropped, p, seed)
    B, Lq, d_model = outs[1].shape
    h, d_head = ref.num_heads, ref.d_head
    v = dense.view(B, -1, h, d_head).transpose(1, 2)  # (B, h, Lk, d_head)
    expected = (got @ v).transpose(1, 2).reshape(B, Lq, d_model)  # the same dropped weights, dense values
    if not torch.allclose(outs[1], expected, atol=1e-8, rtol=1e-6):
        raise CheckFailure(
            f"{name}: in training mode with dropout={p}, the output is not (dropped attention weights) @ values: "
            "run twice on the same random draws, with one-hot and with dense values, the dropped weights seen "
            "through the one-hot values do not explain the dense output. Dropout is elsewhere — on the values, on "
            "the merged heads or on the output — where it zeroes single features instead of whole attention "
            f"weights. Apply it to the weights after the softmax, and only there (seed={seed}).")


def _takes_dropout(cls: Any) -> bool:
    try:
        return "dropout" in inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return False


def check_mha_shapes(cls: Any, seed: int | None = None) -> None:
    """``cls(d_model, num_heads)`` must map query ``(B, Lq, d_model)`` and key/value ``(B, Lk, d_model)`` to an
    output ``(B, Lq, d_model)`` (and per-head weights ``(B, h, Lq, Lk)``, if returned) — for Lq != Lk, for
    sequence lengths unrelated to ``d_model``, and for ``num_heads`` different from the sequence length."""
    passed("mha_shapes", _mha_shapes(cls, "mha_shapes", seed))


def check_mha_output_projection(cls: Any, seed: int | None = None) -> None:
    """``cls(16, 4)`` must hold four ``d_model × d_model`` projections (q, k, v and output), the output one
    named ``out_proj``: without it, the heads' outputs are concatenated but never mixed. out_proj must also be
    the last step, applied once (not defined and left unused, nor applied to the values or twice)."""
    passed("mha_output_projection", _mha_output_projection(cls, "mha_output_projection", seed))


def check_mha_values(cls: Any, seed: int | None = None) -> None:
    """In eval mode, with the reference's weights copied in, ``cls`` must give the numbers of
    :class:`bigtut.attention.MultiHeadAttention` (float64, ≤1e-8) for self- and cross-attention, with no mask,
    a causal mask ``(L, L)`` and a key-padding mask ``(B, 1, 1, Lk)`` (with value ≠ key); the same call twice
    gives the same output (no dropout in eval mode), the inputs come back unmodified and the dtype is kept. A
    failure names the mistake when the output matches a known one (scale by √d_model, d_head, d_head / 2 or
    none; split or merge without transpose; mask ignored, inverted or filled with 0; softmax over the queries
    or heads; values from ``key`` or by ``k_proj``; keys by ``q_proj``)."""
    passed("mha_values", _mha_values(cls, "mha_values", seed))


def check_mha_dropout(cls: Any, seed: int | None = None) -> None:
    """``cls(16, 4, dropout=0.5)`` in training mode must drop attention *weights* after the softmax: every
    weight is either 0 or its dropout-free value times 1/(1-p), about a fraction p of them 0; in eval mode
    nothing is dropped. Then ``cls(16, 4, dropout=0.25)``, run twice on the same random draws with one-hot and
    with dense values, must give the same dropped weights times the values — which fails for dropout on the
    values or on the output, a rate fixed in the code, and kept weights scaled by 1/p."""
    passed("mha_dropout", _mha_dropout(cls, "mha_dropout", seed))


def check_multi_head_attention(cls: Any, seed: int | None = None) -> None:
    """Run the shape, output-projection, value and (if ``cls`` takes ``dropout``) dropout checks in turn."""
    name = "multi_head_attention"
    steps = [_mha_shapes, _mha_output_projection, _mha_values]
    if _takes_dropout(cls):
        steps.append(_mha_dropout)
    for step in steps:
        step(cls, name, seed)
    what = "shapes, output projection, values" + (", dropout" if len(steps) == 4 else "")
    passed(name, f"{len(steps)} checks ({what}) against bigtut.attention.MultiHeadAttention")


# ------------------------------------------------------- causal self-attention with a fused q/k/v projection
def _build_causal(cls: Any, name: str, d_model: int, n_head: int, dropout: float = 0.0) -> nn.Module:
    """``cls(d_model, n_head[, dropout=])``, or ``cls(config)`` with a :class:`bigtut.gpt.GPTConfig` when the
    constructor's first parameter is called ``config``."""
    if not isinstance(cls, type):
        raise CheckFailure(f"{name}: expected a class (an nn.Module subclass), got {_describe(cls)}")
    if _first_parameter(cls) == "config":
        from bigtut.gpt import GPTConfig

        config = GPTConfig(d_model=d_model, n_head=n_head, dropout=dropout)
        module = guarded(name, f"{cls.__name__}(GPTConfig(d_model={d_model}, n_head={n_head}, dropout={dropout}))",
                         cls, config)
    elif _takes_dropout(cls):
        module = guarded(name, f"{cls.__name__}({d_model}, {n_head}, dropout={dropout})", cls, d_model, n_head,
                         dropout=dropout)
    else:
        module = guarded(name, f"{cls.__name__}({d_model}, {n_head})", cls, d_model, n_head)
    if not isinstance(module, nn.Module):
        raise CheckFailure(f"{name}: {cls.__name__}(…) is not an nn.Module")
    return module


def _causal_forward(module: nn.Module, name: str, x: torch.Tensor, label: str) -> torch.Tensor:
    got = guarded(name, f"forward(x {_shape(x)}) [{label}]", module, x)
    out = got[0] if isinstance(got, tuple) and got else got
    if not isinstance(out, torch.Tensor):
        raise CheckFailure(f"{name}: forward(x {_shape(x)}) [{label}] returned {_describe(got)}; expected the "
                           f"output (B, L, d_model) = {_shape(x)} (alone or first in a tuple)")
    if out.shape != x.shape:
        raise CheckFailure(f"{name}: forward(x {_shape(x)}) [{label}] returned shape {_shape(out)}; expected "
                           f"(B, L, d_model) = {_shape(x)}. d_head = d_model // n_head; after attention the heads "
                           "are merged back into one axis of size d_model.")
    return out


def _find(params: dict[str, torch.Tensor], *suffixes: str) -> str | None:
    return next((n for n in params for s in suffixes if n == s or n.endswith("." + s)), None)


def _load_causal_weights(module: nn.Module, name: str, weights: dict[str, torch.Tensor], d: int) -> None:
    """Copy ``weights`` (``Wq, Wk, Wv, Wo`` in nn.Linear's (out, in) layout, ``bq, bk, bv, bo``) into the
    candidate: a fused ``c_attn`` (nn.Linear(d, 3d), rows q | k | v, or GPT-2's Conv1D (d, 3d), columns
    q | k | v) and ``c_proj``; bigtut's separate q_proj/k_proj/v_proj and out_proj work too. A projection
    without bias gets the reference's bias zeroed."""
    params = dict(module.named_parameters())
    fused = _find(params, "c_attn.weight")
    separate = [_find(params, f"{p}_proj.weight") for p in "qkv"]
    out_name = _find(params, "c_proj.weight", "out_proj.weight")
    if (fused is None and None in separate) or out_name is None:
        raise CheckFailure(f"{name}: cannot find the projections among the parameters {sorted(params)}: name the "
                           "fused q/k/v projection c_attn (nn.Linear(d_model, 3 * d_model)) and the output "
                           "projection c_proj (nn.Linear(d_model, d_model)), as GPT-2 does")

    def owner(param_name: str) -> nn.Module:
        return module.get_submodule(param_name.rsplit(".", 1)[0]) if "." in param_name else module

    def bias_of(param_name: str) -> torch.Tensor | None:
        return params.get(param_name[: -len("weight")] + "bias")

    with torch.no_grad():
        if fused is not None:
            w = params[fused]
            conv1d = tuple(w.shape) == (d, 3 * d) and not isinstance(owner(fused), nn.Linear)
            if tuple(w.shape) not in ((3 * d, d), (d, 3 * d)):
                raise CheckFailure(f"{name}: {fused} has shape {tuple(w.shape)}; a fused q/k/v projection "
                                   f"d_model → 3·d_model has nn.Linear's weight {(3 * d, d)} (rows q | k | v) or "
                                   f"GPT-2's Conv1D weight {(d, 3 * d)} (columns q | k | v)")
            stacked = torch.cat([weights["Wq"], weights["Wk"], weights["Wv"]])  # (3d, d): Linear layout
            w.copy_(stacked.T if conv1d else stacked)
            b = bias_of(fused)
            if b is None:
                for p in "qkv":
                    weights[f"b{p}"].zero_()
            else:
                b.copy_(torch.cat([weights["bq"], weights["bk"], weights["bv"]]))
        else:
            conv1d = False
            for p, param_name in zip("qkv", separate):
                params[param_name].copy_(weights[f"W{p}"])
                b = bias_of(param_name)
                weights[f"b{p}"].zero_() if b is None else b.copy_(weights[f"b{p}"])
        w = params[out_name]
        out_conv1d = conv1d and not isinstance(owner(out_name), nn.Linear)
        w.copy_(weights["Wo"].T if out_conv1d else weights["Wo"])
        b = bias_of(out_name)
        weights["bo"].zero_() if b is None else b.copy_(weights["bo"])


def _require_biases(module: nn.Module, name: str) -> None:
    """GPT-2's q/k/v and output projections carry biases (and its checkpoints hold them): a candidate's must too."""
    params = dict(module.named_parameters())
    fused = _find(params, "c_attn.weight")
    weights = [fused] if fused is not None else [_find(params, f"{p}_proj.weight") for p in "qkv"]
    for weight in [*weights, _find(params, "c_proj.weight", "out_proj.weight")]:
        if weight is not None and weight[: -len("weight")] + "bias" not in params:
            raise CheckFailure(f"{name}: {weight.rsplit('.', 1)[0]} has no bias; GPT-2's projections have biases "
                               "(nn.Linear's default bias=True), and a GPT-2 checkpoint brings them")


def _causal_reference(weights: dict[str, torch.Tensor], d: int, h: int, dropout: float = 0.0) -> nn.Module:
    """bigtut's :class:`~bigtut.gpt.CausalSelfAttention` holding ``weights`` (float64)."""
    from bigtut.gpt import CausalSelfAttention, GPTConfig

    ref = CausalSelfAttention(GPTConfig(d_model=d, n_head=h, dropout=dropout)).double()
    with torch.no_grad():
        for p, proj in zip("qkvo", (ref.attn.q_proj, ref.attn.k_proj, ref.attn.v_proj, ref.attn.out_proj)):
            proj.weight.copy_(weights[f"W{p}"])
            proj.bias.copy_(weights[f"b{p}"])
    return ref


def _hf_gpt2_attention(weights: dict[str, torch.Tensor], d: int, h: int, x: torch.Tensor) -> torch.Tensor:
    """Hugging Face's ``GPT2Attention`` (eager) with the same weights, causal, on ``x`` (float64)."""
    from transformers import GPT2Config
    from transformers.models.gpt2.modeling_gpt2 import GPT2Attention

    config = GPT2Config(n_embd=d, n_head=h, attn_pdrop=0.0, resid_pdrop=0.0)
    config._attn_implementation = "eager"
    hf = GPT2Attention(config, layer_idx=0).double().eval()
    with torch.no_grad():  # Conv1D stores (in, out): the transposes of nn.Linear's weights
        hf.c_attn.weight.copy_(torch.cat([weights["Wq"], weights["Wk"], weights["Wv"]]).T)
        hf.c_attn.bias.copy_(torch.cat([weights["bq"], weights["bk"], weights["bv"]]))
        hf.c_proj.weight.copy_(weights["Wo"].T)
        hf.c_proj.bias.copy_(weights["bo"])
        L = x.shape[1]
        blocked = ~torch.ones(L, L, dtype=torch.bool).tril()
        additive = torch.zeros(1, 1, L, L, dtype=x.dtype).masked_fill(blocked, torch.finfo(x.dtype).min)
        return hf(x, attention_mask=additive)[0]  # (B, L, d)


def _causal_variant(weights: dict[str, torch.Tensor], x: torch.Tensor, h: int, *, order: str = "qkv",
                    per_head: bool = False, scale: float | None = None, mask: str = "causal",
                    transpose_merge: bool = True, transpose_split: bool = True, project: bool = True,
                    softmax_dim: int = -1) -> torch.Tensor:
    """A deliberately altered causal self-attention, used to name a candidate's mistake."""
    B, L, d = x.shape
    d_head = d // h
    fused = x @ torch.cat([weights["Wq"], weights["Wk"], weights["Wv"]]).T + torch.cat(
        [weights["bq"], weights["bk"], weights["bv"]])  # (B, L, 3d)
    if per_head:  # read as (B, L, h, 3 d_head): each head's q, k, v side by side
        parts = fused.view(B, L, h, 3 * d_head).split(d_head, dim=-1)  # 3 × (B, L, h, d_head)
        parts = [t.reshape(B, L, d) for t in parts]
    else:
        parts = list(fused.split(d, dim=-1))  # 3 × (B, L, d)
    named = dict(zip(order, parts))

    def split(t: torch.Tensor) -> torch.Tensor:
        return t.view(B, L, h, d_head).transpose(1, 2) if transpose_split else t.reshape(B, h, L, d_head)

    q, k, v = split(named["q"]), split(named["k"]), split(named["v"])
    scores = q @ k.transpose(-2, -1) / (math.sqrt(d_head) if scale is None else scale)  # (B, h, L, L)
    keep = causal_mask(L)
    if mask == "transposed":
        keep = keep.T
    if mask != "none":
        scores = scores.masked_fill(~keep, float("-inf"))
    heads = torch.softmax(scores, dim=softmax_dim).nan_to_num(0.0) @ v  # (B, h, L, d_head)
    merged = heads.transpose(1, 2).reshape(B, L, d) if transpose_merge else heads.reshape(B, L, d)
    return merged @ weights["Wo"].T + weights["bo"] if project else merged


def _causal_diagnose(out: torch.Tensor, weights: dict[str, torch.Tensor], x: torch.Tensor, h: int) -> str:
    d = x.shape[-1]
    d_head = d // h
    suspects = [
        *[(dict(order=o), f"c_attn's output split in the order {', '.join(o)}: its three d_model-wide blocks "
                          "are q, k, v, in that order") for o in ("kqv", "qvk", "vkq", "kvq", "vqk")],
        (dict(per_head=True), "c_attn's output read per head, as (B, L, h, 3·d_head): its blocks are q | k | v, "
                              "each d_model wide — split into q, k, v first, then each into heads"),
        (dict(scale=math.sqrt(d)), f"scores divided by √d_model = {math.sqrt(d):.4g}, not √d_head = "
                                   f"{math.sqrt(d_head):.4g}"),
        (dict(scale=1.0), "scores not scaled (divide q·k by √d_head)"),
        (dict(transpose_merge=False), "heads merged without transpose(1, 2) before the reshape to (B, L, d_model)"),
        (dict(transpose_split=False), "heads split without a transpose: view (B, L, d_model) as "
                                      "(B, L, h, d_head), then transpose(1, 2)"),
        (dict(project=False), "no output projection: apply c_proj to the merged heads"),
        (dict(softmax_dim=-2), "the softmax over the queries (dim=-2); it runs over the keys, dim=-1"),
    ]
    for kwargs, story in suspects:
        alt = _causal_variant(weights, x, h, **kwargs)
        if alt.shape == out.shape and torch.allclose(out.detach().double(), alt, atol=1e-8, rtol=1e-6):
            return f"\n  The output equals causal self-attention with {story}."
    return ""


def _random_causal_weights(gen: torch.Generator, d: int) -> dict[str, torch.Tensor]:
    weights = {f"W{p}": random_float64(gen, d, d, scale=d**-0.5) for p in "qkvo"}
    weights.update({f"b{p}": random_float64(gen, d, scale=0.1) for p in "qkvo"})
    return weights


def _causal_future_leak(module: nn.Module, name: str, x: torch.Tensor, out: torch.Tensor, gen: torch.Generator,
                        label: str) -> None:
    """Changing the tokens after position t must leave the outputs at positions <= t unchanged."""
    L = x.shape[1]
    t = L // 2
    changed = x.clone()
    changed[:, t + 1:] = random_float64(gen, x.shape[0], L - t - 1, x.shape[2])
    with torch.no_grad():
        again = _causal_forward(module, name, changed, label)
    if not torch.allclose(again[:, : t + 1], out[:, : t + 1], atol=1e-10):
        moved = [int(i) for i in range(t + 1) if not torch.allclose(again[:, i], out[:, i], atol=1e-10)]
        raise CheckFailure(
            f"{name}: the future leaks in ({label}): only positions {t + 1}…{L - 1} of x changed, yet the outputs "
            f"at positions {moved} changed too. Position t may attend to positions ≤ t only: fill the scores "
            "above the diagonal with -inf (keep = torch.ones(L, L, dtype=torch.bool, device=x.device).tril(), "
            "True on and below it) before the softmax.")


def _causal_dropout(cls: Any, name: str, seed: int, gen: torch.Generator) -> str:
    """Dropout as in GPT-2: on the attention weights after the softmax and on the output after c_proj, both at
    rate p, both inverted (kept values scaled by 1/(1-p)). With values that are one-hot in every head and
    c_proj the identity, output feature (head, j) at position t is the weight of key j, dropped by both."""
    p, d, h, B, L = 0.3, 32, 4, 4, 8  # L <= d_head = 8 and B·L <= d_model = 32
    d_head = d // h
    x = random_float64(gen, B, L, d)
    tokens = x.reshape(B * L, d)  # (32, 32), invertible with probability 1
    target = torch.zeros(B * L, d, dtype=torch.float64)
    for j in range(L):
        target[torch.arange(B) * L + j, j::d_head] = 1.0  # token j's value: e_j inside every head
    weights = _random_causal_weights(gen, d)
    weights["Wv"] = torch.linalg.solve(tokens, target).T  # tokens @ Wv.T == target
    weights["bv"].zero_()
    weights["Wo"], weights["bo"] = torch.eye(d, dtype=torch.float64), torch.zeros(d, dtype=torch.float64)
    module = _build_causal(cls, name, d, h, dropout=p).double()
    _load_causal_weights(module, name, weights, d)
    ref = _causal_reference(weights, d, h).eval()
    with torch.no_grad():
        w_full = ref(x)[0].view(B, L, h, d_head)[..., :L].transpose(1, 2)  # (B, h, L, L): the weights
        module.eval()
        first = _causal_forward(module, name, x, f"eval mode, dropout={p}")
        if not torch.equal(first, _causal_forward(module, name, x, f"eval mode, dropout={p}")):
            raise CheckFailure(f"{name}: in eval mode two identical calls gave different outputs (dropout={p}): "
                               "dropout is still active. F.dropout(x, p) drops unless told training=self.training; "
                               "nn.Dropout follows module.eval() by itself.")
        module.train()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            out = _causal_forward(module, name, x, f"training mode, dropout={p}, seed={seed}")
    got = out.view(B, L, h, d_head)[..., :L].transpose(1, 2)  # (B, h, L, L)
    allowed = causal_mask(L).expand_as(got)
    if torch.allclose(got, w_full, atol=1e-8):
        raise CheckFailure(f"{name}: {cls.__name__} with dropout={p} dropped nothing in training mode (seed={seed}); "
                           "GPT-2 drops the attention weights after the softmax and the output after c_proj")
    if torch.isnan(out).any():
        raise CheckFailure(f"{name}: the output holds nan in training mode with dropout={p} (seed={seed}): dropout on "
                           "the scores turns a masked score into -inf · 0 = nan (and elsewhere lets the softmax "
                           "renormalise). Apply dropout to the weights after the softmax, and to the output after "
                           "c_proj.")
    if not (got.abs() < 1e-9)[~allowed].all():
        raise CheckFailure(f"{name}: in training mode with dropout={p}, a position attended to a later one "
                           f"(seed={seed}): the causal mask must hold in training too")
    dropped = (got.abs() < 1e-9) & allowed

    def follows(scale: float) -> bool:
        return bool((((got - w_full * scale).abs() < 1e-8) | dropped)[allowed].all())

    if follows(1 / (1 - p) ** 2):
        rate = dropped[allowed].double().mean().item()
        expected_rate = 1 - (1 - p) ** 2
        if abs(rate - expected_rate) > 0.12:
            raise CheckFailure(f"{name}: with dropout={p} in training mode {rate:.0%} of the attention terms were "
                               f"dropped; two dropouts at rate p drop 1-(1-p)² = {expected_rate:.0%}. Pass the "
                               f"`dropout` argument on to both nn.Dropout layers (seed={seed}).")
        return "dropout on the attention weights and on the output, inverted"
    rate = dropped[allowed].double().mean().item()
    if follows(1 / (1 - p)) and abs(rate - (1 - (1 - p) ** 2)) < abs(rate - p):
        raise CheckFailure(
            f"{name}: in training mode with dropout={p} two dropouts act ({rate:.0%} of the attention terms dropped, "
            f"about 1-(1-p)² = {1 - (1 - p) ** 2:.0%}), but the kept terms are scaled by 1/(1-p) once: one of them "
            "does not rescale what it keeps. Inverted dropout divides the kept values by 1-p — nn.Dropout does "
            f"(seed={seed}).")
    if follows(1 / (1 - p)):
        raise CheckFailure(
            f"{name}: in training mode with dropout={p} there is one dropout where GPT-2 has two: every kept term "
            f"is scaled by 1/(1-p) once, not twice (seed={seed}). GPT-2's attention drops the attention weights "
            "after the softmax (attn_dropout) and the output after c_proj (resid_dropout), both with rate p.")
    if follows(1.0):
        story = "the kept terms were not rescaled: inverted dropout divides them by 1-p"
    elif follows(1 / p**2) or follows(1 / p):
        story = f"the kept terms were divided by p = {p:g}; inverted dropout divides by 1-p = {1 - p:g}"
    elif fixed := next((q for q in (0.1, 0.2, 0.5) if follows(1 / (1 - q) ** 2) or follows(1 / (1 - q))), None):
        story = (f"the kept terms were scaled as for dropout={fixed:g}: the rate is fixed instead of taken from the "
                 "`dropout` argument")
    else:
        story = ("the kept attention weights no longer equal the dropout-free ones times 1/(1-p): dropout on the "
                 "scores before the softmax (a dropped score becomes 0, not -inf, and the softmax renormalises) or "
                 "on the inputs changes every weight")
    i = tuple(int(t) for t in torch.nonzero(~((((got - w_full / (1 - p) ** 2).abs() < 1e-8) | dropped) | ~allowed))[0])
    raise CheckFailure(
        f"{name}: in training mode with dropout={p}, {story} (seed={seed}). Attention row (batch, head, position) "
        f"= {i[:3]}:\n  without dropout {[round(v, 4) for v in w_full[i[:3]].tolist()]}\n"
        f"  in training     {[round(v, 4) for v in got[i[:3]].tolist()]}")


def _causal_dropout_placement(cls: Any, name: str, seed: int, gen: torch.Generator) -> None:
    """Where the two dropouts sit, seen with one position and dense weights. With L = 1 each head's only attention
    weight is 1, so dropout on the weights keeps or silences a whole head; the output is then
    ``dropout(c_proj(heads))``: each row equals ``c_proj`` of its heads, each kept (scaled by 1/(1-p)) or dropped
    whole, then scaled by 1/(1-p), with about a fraction p of its entries exactly 0. Dropout on the values, on the
    merged heads or on c_proj's input drops single features instead, and leaves no exact zero after c_proj."""
    p, d, h, B = 0.3, 32, 4, 64
    weights = _random_causal_weights(gen, d)
    module = _build_causal(cls, name, d, h, dropout=p).double().train()
    _load_causal_weights(module, name, weights, d)
    x = random_float64(gen, B, 1, d)
    label = f"training mode, dropout={p}, x of shape {(B, 1, d)}, seed={seed}"
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed + 1)
        out = _causal_forward(module, name, x, label)[:, 0]  # (B, d)
    zero = out.abs() < 1e-12
    rate = zero.double().mean().item()
    if abs(rate - p) > 0.1:
        raise CheckFailure(
            f"{name}: in training mode with dropout={p} and one position ({label}), {rate:.0%} of the outputs are "
            f"exactly 0; the dropout after c_proj (GPT-2's resid_dropout) zeroes about {p:.0%} of them. Dropout "
            "before c_proj (on the merged heads) or on the values is not the same: c_proj mixes the features, so "
            "nothing it outputs is 0. Apply nn.Dropout to c_proj's output.")
    v = x[:, 0] @ weights["Wv"].T + weights["bv"]  # (B, d): with one position, each head outputs its value
    patterns = torch.cartesian_prod(*[torch.tensor([0.0, 1.0], dtype=torch.float64)] * h).view(-1, h)  # (2^h, h)
    kept_heads = patterns.repeat_interleave(d // h, dim=1)  # (2^h, d)
    possible = ((v * kept_heads[:, None] / (1 - p)) @ weights["Wo"].T + weights["bo"]) / (1 - p)  # (2^h, B, d)
    explained = (((out - possible).abs() < 1e-8) | zero).all(-1).any(0)  # (B,)
    if not explained.all():
        raise CheckFailure(
            f"{name}: in training mode with dropout={p} and one position ({label}), where each head's single "
            "attention weight is 1 and dropping it silences the whole head, the output is not c_proj of the heads "
            "(each kept or dropped whole) followed by dropout: dropout zeroes single features — on the values, on "
            "the merged heads or on c_proj's input. GPT-2 drops the attention weights after the softmax "
            "(attn_dropout) and c_proj's output (resid_dropout), and nothing else.")


def _dropout_off_by_default(cls: Any, name: str, d: int, h: int) -> None:
    """``cls(d_model, n_head)`` without ``dropout=`` must not drop: the default is ``dropout=0.0``."""
    if not _takes_dropout(cls) or inspect.signature(cls).parameters["dropout"].default is inspect.Parameter.empty:
        return  # built from a config (whose dropout is 0.0 unless set), or dropout= is always given
    module = guarded(name, f"{cls.__name__}({d}, {h})", cls, d, h)
    if not isinstance(module, nn.Module):
        raise CheckFailure(f"{name}: {cls.__name__}({d}, {h}) is not an nn.Module")
    module = module.double().train()
    x = random_float64(torch.Generator().manual_seed(0), 2, 4, d)
    with torch.no_grad():
        first, second = (_causal_forward(module, name, x, f"{cls.__name__}({d}, {h}), training mode")
                         for _ in range(2))
    if not torch.equal(first, second):
        raise CheckFailure(f"{name}: {cls.__name__}({d}, {h}), built without dropout=, drops in training mode: "
                           "the default must be dropout=0.0, as in the exercise's signature")


def check_causal_self_attention_module(cls: Any, seed: int | None = None, hf: bool | None = None) -> None:
    """``cls(d_model, n_head)`` (``dropout=`` too, if it takes one; or ``cls(config)`` with a
    :class:`bigtut.gpt.GPTConfig`) must be GPT-2's causal self-attention: ``module(x)`` with ``x (B, L, d_model)``
    returns ``(B, L, d_model)`` (alone or first in a tuple), from a fused projection ``c_attn`` (nn.Linear(d, 3d)
    with rows q | k | v, or GPT-2's Conv1D (d, 3d)) and an output projection ``c_proj``.

    Checked, in float64 with random weights copied in: shapes (L = 1 included); no position sees a later one;
    the numbers of :class:`bigtut.gpt.CausalSelfAttention` and, when ``hf`` is True (default: whenever
    ``transformers`` is already imported), of Hugging Face's ``GPT2Attention`` on the same weights; ``x``
    unchanged, the dtype kept, no tensor created off the input's device; biases in the projections; a ``dropout``
    argument (0.0 by default): no dropout in eval mode and GPT-2's two inverted dropouts in training mode, on the
    attention weights after the softmax and on c_proj's output (and nowhere else: with one position and dense
    weights, a dropped attention weight silences a whole head). A failure names the mistake when the output is a
    known wrong variant (q/k/v order, per-head split of c_attn, scale, merge or split without transpose, no
    c_proj, softmax axis).
    """
    with torch.random.fork_rng(devices=[]):  # building modules and seeding dropout leave torch's generator as it was
        _check_causal_module(cls, seed, hf)


def _check_causal_module(cls: Any, seed: int | None, hf: bool | None) -> None:
    name = "causal_self_attention_module"
    gen, seed = checker_generator(seed)
    if hf is None:
        hf = "transformers" in sys.modules
    count = 0
    for d, h, B, L in ((16, 4, 2, 6), (12, 3, 3, 7), (8, 1, 2, 1), (24, 6, 1, 9)):
        label = f"d_model={d}, n_head={h}, x of shape {(B, L, d)} (seed={seed})"
        module = _build_causal(cls, name, d, h).double().eval()
        _require_biases(module, name)
        weights = _random_causal_weights(gen, d)
        _load_causal_weights(module, name, weights, d)
        x = random_float64(gen, B, L, d)
        given = x.clone()
        with torch.no_grad():
            out = _causal_forward(module, name, given, label)
            expected = _causal_reference(weights, d, h).eval()(x)[0]
        assert_unchanged(name, label, {"x": (x, given)})
        assert_same_dtype(name, out, expected, what="output", inputs=label)
        try:
            assert_close(out, expected, what=f"{name} (vs bigtut.gpt.CausalSelfAttention)", inputs=label,
                         atol=1e-8, rtol=1e-6)
        except CheckFailure as failure:
            story = _causal_diagnose(out, weights, x, h)
            if not story and L > 2:  # a leak is the likeliest cause left; name it if so
                _causal_future_leak(module, name, x, out, gen, label)
            raise CheckFailure(f"{failure}{story}") from None
        if hf:
            assert_close(out, _hf_gpt2_attention(weights, d, h, x), what=f"{name} (vs Hugging Face GPT2Attention)",
                         inputs=label, atol=1e-8, rtol=1e-6)
        count += 1
    probe = copy.deepcopy(module).to("meta")  # the last case's module, d_model = d
    problem = _device_problem(probe, torch.empty(2, 5, d, device="meta"))
    if problem:
        raise CheckFailure(f"{name}: forward creates a tensor on the CPU whatever the input's device, so it fails "
                           f"on a GPU (found by running it on 'meta' tensors: {problem}). Create masks and other "
                           "new tensors with device=x.device, or register them as buffers (self.register_buffer), "
                           "which move with the module.")
    what = f"equal to bigtut's CausalSelfAttention{' and Hugging Face GPT2Attention' if hf else ''} in {count} cases"
    if not (_takes_dropout(cls) or _first_parameter(cls) == "config"):
        raise CheckFailure(f"{name}: {cls.__name__} takes no `dropout` argument; GPT-2's attention is "
                           f"{cls.__name__}(d_model, n_head, dropout=0.0), with dropout on the attention weights and "
                           "on the output")
    what += ", " + _causal_dropout(cls, name, seed, gen)
    _causal_dropout_placement(cls, name, seed, gen)
    _dropout_off_by_default(cls, name, d, h)
    passed(name, what)


def _first_parameter(cls: Any) -> str | None:
    try:
        return next(iter(inspect.signature(cls).parameters), None)
    except (TypeError, ValueError):
        return None
