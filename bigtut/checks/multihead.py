"""Checkers for notebook 02's multi-head attention classes, taken apart bug by bug (re-exported by
:mod:`bigtut.checks.attention`).

A class under test is built as ``cls(d_model, num_heads)`` (``dropout=`` too, for the dropout check) and
called as ``module(query, key, value, mask)`` with a bool mask (True = may attend) shaped to broadcast
against scores ``(B, h, Lq, Lk)``; it may return the output or ``(output, weights)``. To compare values the
checkers copy the reference's weights into it by parameter name: ``q_proj``, ``k_proj``, ``v_proj``,
``out_proj`` (``nn.Linear(d_model, d_model)`` each, as in bigtut) or ``nn.MultiheadAttention``'s packed
``in_proj_weight``/``in_proj_bias``/``out_proj``. A missing bias counts as a zero bias.

Inputs come from a private generator; pass ``seed=`` to replay a case (the seed is named in every failure).
"""

from __future__ import annotations

import inspect
import math
from typing import Any

import torch
from torch import nn

from bigtut.attention import MultiHeadAttention, causal_mask, padding_mask, scaled_dot_product_attention
from bigtut.checks.core import (
    CheckFailure,
    _describe,
    assert_close,
    checker_generator,
    guarded,
    passed,
    random_float64,
)

__all__ = ["check_mha_dropout", "check_mha_output_projection", "check_mha_shapes", "check_mha_values",
           "check_multi_head_attention"]


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
             mask: torch.Tensor | None, *, scale: float, transpose_merge: bool = True) -> torch.Tensor:
    """A deliberately altered explicit multi-head attention, used to name a candidate's mistake."""
    q, k, v = (ref.split_heads(p(x)) for p, x in ((ref.q_proj, query), (ref.k_proj, key), (ref.v_proj, value)))
    heads, _ = scaled_dot_product_attention(q * math.sqrt(q.shape[-1]) / scale, k, v, mask)  # (B, h, Lq, d_head)
    B, h, Lq, d_head = heads.shape
    merged = heads.transpose(1, 2).reshape(B, Lq, h * d_head) if transpose_merge else heads.reshape(B, Lq, -1)
    return ref.out_proj(merged)  # (B, Lq, d_model)


def _diagnose(out: torch.Tensor, ref: MultiHeadAttention, inputs: tuple, d_model: int) -> str:
    d_head = ref.d_head
    suspects = [
        (dict(scale=math.sqrt(d_model)), f"scores divided by √d_model = {math.sqrt(d_model):g} instead of "
                                         f"√d_head = √{d_head} = {math.sqrt(d_head):g}"),
        (dict(scale=1.0), "scores not scaled at all (divide q·k by √d_head)"),
        (dict(scale=math.sqrt(d_head), transpose_merge=False),
         "heads merged without moving the head axis back: (B, h, L, d_head) must become (B, L, h, d_head) "
         "(transpose) before the reshape to (B, L, d_model)"),
    ]
    for kwargs, story in suspects:
        with torch.no_grad():
            alt = _variant(ref, *inputs, **kwargs)
        if alt.shape == out.shape and torch.allclose(out.detach().to(alt.dtype), alt, atol=1e-8, rtol=1e-6):
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
    return "four d_model × d_model projections, the last one out_proj"


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
        for label, (query, key, mask) in {
            "self-attention, no mask": (x, x, None),
            "self-attention, causal mask (L, L)": (x, x, causal_mask(L)),
            "cross-attention, key-padding mask (B, 1, 1, Lk), lengths [7, 4]": (x, memory, keep),
        }.items():
            label = f"{label}, d_model={d_model}, num_heads={h} (seed={seed})"
            with torch.no_grad():
                out, weights = _call(module, name, query, key, key, mask, label)
                expected, expected_weights = ref(query, key, key, mask)
            inputs = f"{label}: query {_shape(query)}, key/value {_shape(key)}"
            try:
                assert_close(out, expected, what=f"{name} (output)", inputs=inputs, atol=1e-8, rtol=1e-6)
            except CheckFailure as failure:
                raise CheckFailure(str(failure) + _diagnose(out, ref, (query, key, key, mask), d_model)) from None
            if isinstance(weights, torch.Tensor) and weights.shape == expected_weights.shape:
                assert_close(weights, expected_weights, what=f"{name} (per-head weights)", inputs=inputs,
                             atol=1e-8, rtol=1e-6)
            count += 1
    return f"equal to bigtut.attention.MultiHeadAttention with copied weights in {count} cases"


def _mha_dropout(cls: Any, name: str, seed: int | None) -> str:
    """With v_proj and out_proj set to the identity and one-hot values, each head's output row *is* its
    effective attention row, so dropout can be watched directly."""
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
        raise CheckFailure(
            f"{name}: in training mode with dropout={p}, every attention weight must be either dropped (0) or "
            f"kept and scaled by 1/(1-p) = {1 / (1 - p):g}. Weight row (batch, head, query) = {row} is\n"
            f"  without dropout {[round(x, 4) for x in w[row].tolist()]}\n"
            f"  in training     {[round(x, 4) for x in got[row].tolist()]}\n"
            f"  (row sums: {w[row].sum().item():.4f} vs {got[row].sum().item():.4f}). Dropout belongs on the "
            f"weights after the softmax; on the scores before it, a 'dropped' score becomes 0 (not -inf) and the "
            f"softmax renormalises everything (seed={seed}).")
    if not dropped.any() or not kept.any():
        raise CheckFailure(f"{name}: in training mode with dropout={p}, {int(dropped.sum())} of {dropped.numel()} "
                           f"attention weights were dropped; expected about half (seed={seed})")
    return f"dropout={p} zeroes attention weights after the softmax and scales the rest by 1/(1-p)"


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
    named ``out_proj``: without it, the heads' outputs are concatenated but never mixed."""
    passed("mha_output_projection", _mha_output_projection(cls, "mha_output_projection", seed))


def check_mha_values(cls: Any, seed: int | None = None) -> None:
    """In eval mode, with the reference's weights copied in, ``cls`` must give the numbers of
    :class:`bigtut.attention.MultiHeadAttention` (float64, ≤1e-8) for self- and cross-attention, with no mask,
    a causal mask ``(L, L)`` and a key-padding mask ``(B, 1, 1, Lk)``. A failure names the mistake when the
    output matches a known one (scale by √d_model, no scale, merge without transpose)."""
    passed("mha_values", _mha_values(cls, "mha_values", seed))


def check_mha_dropout(cls: Any, seed: int | None = None) -> None:
    """``cls(16, 4, dropout=0.5)`` in training mode must drop attention *weights* after the softmax: every
    weight is either 0 or its dropout-free value times 1/(1-p); in eval mode nothing is dropped."""
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
