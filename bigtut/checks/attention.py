"""Checkers for notebook 02 (attention): functions here, multi-head attention classes in :mod:`.multihead`.

====================================  =========================================================================
checker                               what the candidate must do
====================================  =========================================================================
``check_scaled_dot_product_attention``  ``fn(q, k, v[, mask]) -> (output, weights)``; fully masked rows give 0
``check_sliding_window_mask``         ``fn(L, window)`` -> bool ``(L, L)``: the last ``window`` keys, itself included
``check_head_contributions``          ``fn(heads, out_proj)`` -> ``(B, h, L, d_model)``, each head's share of W_O
``check_sinusoidal_encoding``         ``fn(length, d_model)`` -> the paper's ``(length, d_model)`` table
``check_mha_shapes``                  ``cls(d_model, num_heads)``: output ``(B, Lq, d_model)`` for any Lq, Lk
``check_mha_output_projection``       four ``d_model × d_model`` projections, the last one ``out_proj``
``check_mha_values``                  same numbers as :class:`bigtut.attention.MultiHeadAttention`
``check_mha_dropout``                 dropout zeroes attention *weights* (after the softmax), scaled 1/(1-p)
``check_multi_head_attention``        all four ``check_mha_*`` checks in turn
``check_causal_self_attention_module``  GPT-2's attention (fused ``c_attn``, ``c_proj``) = bigtut's and HF's
====================================  =========================================================================

Inputs come from a private generator; pass ``seed=`` to replay a case (the seed is named in every failure).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from bigtut.attention import causal_mask, padding_mask, scaled_dot_product_attention
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
from bigtut.checks.multihead import (
    assert_same_dtype,
    check_causal_self_attention_module,
    check_mha_dropout,
    check_mha_output_projection,
    check_mha_shapes,
    check_mha_values,
    check_multi_head_attention,
)
from bigtut.positional import sinusoidal_encoding

__all__ = [
    "check_causal_self_attention_module", "check_head_contributions",
    "check_sliding_window_mask", "check_mha_dropout", "check_mha_output_projection", "check_mha_shapes",
    "check_mha_values", "check_multi_head_attention", "check_scaled_dot_product_attention",
    "check_sinusoidal_encoding",
]


# ------------------------------------------------------------------------------------------- functions
def check_scaled_dot_product_attention(candidate: Callable[..., Any], seed: int | None = None) -> None:
    """``candidate(q, k, v)`` and ``candidate(q, k, v, mask)`` must return ``(output, weights)``.

    ``q (..., Lq, d_k)``, ``k (..., Lk, d_k)``, ``v (..., Lk, d_v)``; ``mask`` bool, True = may attend,
    broadcastable to ``(..., Lq, Lk)``. ``weights = softmax(q kᵀ / √d_k)`` over the allowed keys
    ``(..., Lq, Lk)``, ``output = weights @ v``. A query row with no allowed key gets zero weights and a zero
    output. Compared with :func:`bigtut.attention.scaled_dot_product_attention` in float64; the inputs must
    come back unmodified and the results keep the inputs' dtype. A failure names the mistake when the weights
    match a known wrong variant (no or wrong scaling, inverted or ignored mask, mask after the softmax or by
    multiplication, -1e9 instead of -inf, softmax over the queries).
    """
    gen, seed = checker_generator(seed)
    every = torch.rand((2, 4, 6), generator=gen) > 0.4  # (B, Lq, Lk), an arbitrary pattern …
    every[1, 2] = False  # … with one query that may attend to nothing
    def r(*shape: int) -> torch.Tensor:  # a float64 draw of this shape
        return random_float64(gen, *shape)

    cases = [
        ("q (2, 4, 8), k (2, 6, 8), v (2, 6, 5), no mask", (r(2, 4, 8), r(2, 6, 8), r(2, 6, 5)), {}),
        ("q, k, v (2, 3, 5, 4) (3 heads), causal mask (5, 5)",
         (r(2, 3, 5, 4), r(2, 3, 5, 4), r(2, 3, 5, 4), causal_mask(5)), {}),
        ("q (2, 4, 8), k, v (2, 6, 8), padding mask (2, 1, 6) for lengths [6, 3]",
         (r(2, 4, 8), r(2, 6, 8), r(2, 6, 8), padding_mask([6, 3], 6)), {}),
        ("q (2, 4, 8), k, v (2, 6, 8), arbitrary mask (2, 4, 6) whose row [1, 2] is all False",
         (r(2, 4, 8), r(2, 6, 8), r(2, 6, 8), every), {}),
        ("q (1, 16), k (9, 16), v (9, 3), scores of size ~10", (3 * r(1, 16), 3 * r(9, 16), r(9, 3)), {}),
    ]
    name = "scaled_dot_product_attention"
    if not callable(candidate):
        raise CheckFailure(f"{name}: expected a function, got {_describe(candidate)}")
    for description, args, _ in cases:
        description = f"{description} (seed={seed})"
        expected = scaled_dot_product_attention(*args)
        given = tuple(a.clone() for a in args)  # the candidate's copies: an in-place change shows
        try:
            got = guarded(name, f"scaled_dot_product_attention on {description}", candidate, *given)
        except CheckFailure as failure:
            if "not implemented" in str(failure):
                raise
            raise CheckFailure(f"{failure}\n  Hint: the inputs may have any number of leading axes (here "
                               f"{q_dims(args)}): use k.transpose(-2, -1) (k.T reverses every axis; transpose(1, 2) "
                               "is not the last two once there is a head axis), @ or torch.matmul (torch.bmm takes "
                               "3-D tensors only) and scores.masked_fill(~mask, …), which broadcasts the mask "
                               "(boolean indexing does not).") from None
        assert_unchanged(name, description, {label: (kept, handed) for label, kept, handed in
                                             zip(("q", "k", "v", "mask"), args, given)})
        if not isinstance(got, tuple) or len(got) != 2:
            hint = ""
            if isinstance(got, torch.Tensor) and got.shape == expected[0].shape:
                hint = "\n  Hint: only the output came back; return both: `return weights @ v, weights`."
            raise CheckFailure(f"{name}: expected a tuple of 2 values (output, weights) for {description}, got "
                               f"{_describe(got)}{hint}")
        shapes = [tuple(g.shape) if isinstance(g, torch.Tensor) else None for g in got]
        if shapes == [tuple(expected[1].shape), tuple(expected[0].shape)] and shapes[0] != shapes[1]:
            raise CheckFailure(f"{name}: for {description} the first value has the weights' shape {shapes[0]} and "
                               f"the second the output's {shapes[1]}: return (output, weights), in that order")
        for i, (g, e) in enumerate(zip(got, expected)):
            assert_same_dtype(name, g, e, what=("output", "weights")[i], inputs=description)
        try:  # the tolerance admits a float32 scale (torch.tensor(d_k).sqrt()); float32 results fail the dtype check
            for i, (g, e) in enumerate(zip(got, expected)):
                assert_close(g, e, what=f"{name} (output {i})", inputs=description, atol=1e-5, rtol=1e-5)
        except CheckFailure as failure:
            raise CheckFailure(f"{failure}{_sdpa_hint(got, expected, *args)}") from None
    passed(name, f"matches the reference on {len(cases)} random cases")


def q_dims(args: tuple) -> str:
    """``"q 3-D, mask (5, 5)"`` for a failure message."""
    text = f"q {args[0].dim()}-D"
    return text + (f", mask {tuple(args[3].shape)}" if len(args) > 3 else "")


def _sdpa_hint(got: tuple, expected: tuple, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask=None) -> str:
    """Name the mistake when the candidate's weights are those of a known wrong variant."""
    weights = got[1]
    if not isinstance(weights, torch.Tensor) or weights.shape != expected[1].shape:
        return ""
    weights = weights.detach().double().cpu()
    if torch.isnan(weights).any():
        return ("\n  Hint: nan weights — a query whose every key is masked gets softmax(-inf, …, -inf) = 0/0; "
                "set its weights (and so its output) to 0.")
    if torch.allclose(weights, expected[1], atol=1e-5, rtol=1e-5):
        return ("\n  Hint: the weights are right but the output is not: it is weights @ v, (..., Lq, Lk) @ "
                "(..., Lk, d_v) — the weights as returned, with masked keys at 0.")
    raw = q @ k.transpose(-2, -1)  # (..., Lq, Lk)
    d_k, d_v = q.shape[-1], v.shape[-1]
    allowed = torch.ones_like(raw, dtype=torch.bool) if mask is None else mask.expand_as(raw)

    def masked_softmax(scores, keep, dim=-1, fill=float("-inf")):
        w = torch.softmax(scores.masked_fill(~keep, fill), dim=dim)
        return w.nan_to_num(0.0)

    scaled = raw / d_k**0.5
    variants = {
        "the scores were not divided by √d_k": masked_softmax(raw, allowed),
        "the scores were divided by d_k, not by its square root √d_k": masked_softmax(raw / d_k, allowed),
        f"the scores were divided by d_k / 2 = {d_k / 2:g}, not by √d_k = {d_k**0.5:.4g}: `d_k ** 1/2` means "
        "(d_k ** 1) / 2 — write d_k ** 0.5 or math.sqrt(d_k)": masked_softmax(raw / (d_k / 2), allowed),
        f"the scores were divided by √d_v = √{d_v} (the values' width); the scale is √d_k = √{d_k}, the width "
        "of the queries and keys": masked_softmax(raw / d_v**0.5, allowed) if d_v != d_k else None,
        "the mask is inverted: True must mean 'may attend'": masked_softmax(scaled, ~allowed),
        "the mask was ignored: masked keys still get weight": masked_softmax(scaled, allowed | True),
        "the mask was applied after the softmax: the weights of the allowed keys no longer sum to 1 — remove "
        "the masked keys before it (their scores → -inf)": torch.softmax(scaled, -1) * allowed,
        "the mask multiplied the scores: a masked score becomes 0, not -inf, and still gets weight after the "
        "softmax — use scores.masked_fill(~mask, float('-inf'))": torch.softmax(scaled * allowed, -1),
        "masked scores were set to a large negative number (like -1e9), not -inf: a query whose every key is "
        "masked then spreads its weight uniformly over them, where it must get zero weights (and a zero "
        "output)": masked_softmax(scaled, allowed, fill=-1e9),
        "the softmax ran over the queries (dim=-2); each query's weights over the keys (the last axis) must "
        "sum to 1": masked_softmax(scaled, allowed, dim=-2),
    }
    for dim in range(raw.dim() - 2):  # the softmax over a leading axis (batch, heads)
        variants[f"the softmax ran over axis {dim} ({'the batch' if dim == 0 else 'the heads'}); each query's "
                 "weights over the keys (the last axis, dim=-1) must sum to 1"] = masked_softmax(scaled, allowed, dim)
    for hint, wrong in variants.items():
        if wrong is not None and wrong.shape == weights.shape and torch.allclose(weights, wrong, atol=1e-6):
            return f"\n  Hint: {hint}."
    return ""


def _mask_type_problem(got: Any, length: int, what: str) -> str | None:
    """Why ``got`` is not a bool ``(length, length)`` mask (None if it is one), naming the usual slips."""
    if not isinstance(got, torch.Tensor):
        return f"expected a bool tensor (True = may attend) for {what}, got {_describe(got)}"
    if got.dtype != torch.bool:
        values = got.detach().cpu()
        if values.is_floating_point() and bool(torch.isinf(values).any()):
            hint = ("it holds -inf: that is an additive mask (0 = keep, -inf = block, nn.Transformer's "
                    "convention); here the mask is bool, True = may attend")
        else:
            hint = (f"a {got.dtype} mask is not a bool one: masked_fill(~mask, …) and `~` need bool — build it "
                    "with dtype=torch.bool or end with .bool()")
        return f"expected a bool tensor (True = may attend) for {what}, got {_describe(got)}. Hint: {hint}"
    if tuple(got.shape) != (length, length):
        hint = ""
        if got.numel() == length * length and got.dim() > 2:
            hint = (" Hint: drop the extra axes; a (L, L) mask broadcasts over batch and heads by itself (it is "
                    "aligned from the right).")
        elif got.dim() == 2 and got.shape[0] == got.shape[1]:
            hint = (f" Hint: the size must follow the argument (L = {length}); a mask of fixed size, or one of "
                    "L ± 1, breaks for other lengths.")
        return f"expected shape ({length}, {length}) for {what}, got {tuple(got.shape)}.{hint}"
    return None


def sliding_window_mask(length: int, window: int) -> torch.Tensor:
    """Reference: bool ``(length, length)``, query ``i`` sees keys ``i - window < j <= i`` (the last ``window``)."""
    i = torch.arange(length)[:, None]  # (L, 1) query positions
    j = torch.arange(length)[None, :]  # (1, L) key positions
    return (j <= i) & (j > i - window)  # (L, L)


def _unclamped_slices(length: int, window: int) -> torch.Tensor:
    """The loop ``mask[i, i - window + 1 : i + 1] = True`` without clamping the start at 0 (Python counts a
    negative start from the end)."""
    out = torch.zeros(length, length, dtype=torch.bool)
    for i in range(length):
        out[i, i - window + 1: i + 1] = True
    return out


def check_sliding_window_mask(candidate: Callable[[int, int], torch.Tensor], seed: int | None = None) -> None:
    """``candidate(L, window)`` must return bool ``(L, L)``: query ``i`` may attend to the ``window`` most recent
    keys, itself included — ``i - window < j <= i``. ``window >= L`` gives the plain causal mask."""
    gen, seed = checker_generator(seed)
    name = "sliding_window_mask"
    cases = [(8, 3), (6, 1), (5, 5), (4, 9), (int(torch.randint(10, 30, (1,), generator=gen)),
                                            int(torch.randint(2, 8, (1,), generator=gen))), (1, 1)]
    if not callable(candidate):
        raise CheckFailure(f"{name}: expected a function, got {_describe(candidate)}")
    for length, window in cases:
        what = f"sliding_window_mask({length}, {window})"
        got = guarded(name, what, candidate, length, window)
        expected = sliding_window_mask(length, window)
        problem = _mask_type_problem(got, length, what)
        if problem:
            raise CheckFailure(f"{name}: {problem}")
        got = got.cpu()
        if torch.equal(got, expected):
            continue
        eye = torch.eye(length, dtype=torch.bool)
        i, j = torch.arange(length)[:, None], torch.arange(length)[None, :]
        patterns = [
            (~expected, "It is inverted: True must mean 'may attend'."),
            (sliding_window_mask(length, window + 1), f"Each query sees {window + 1} keys, one too many: the "
                                                      f"window of {window} includes the query itself."),
            (sliding_window_mask(length, window - 1) if window > 1 else None,
             f"Each query sees only {window - 1} keys: the window of {window} includes the query itself."),
            (expected & ~eye, "The diagonal is missing: query i must also see key i (itself)."),
            ((i - j).abs() < window, "It is a band around the diagonal: future keys (j > i) must stay hidden."),
            (expected.T, "It is transposed: row i is query i, and it sees the keys (columns) just before it."),
            (causal_mask(length), f"The window is ignored: query i may see only keys i-{window - 1} … i."),
            (_unclamped_slices(length, window), f"The first {window - 1} queries see the wrong keys: a slice "
                                                "start i - window + 1 below 0 counts from the end in Python — "
                                                "clamp it, max(0, i - window + 1)."),
        ]
        hint = next((h for pattern, h in patterns if pattern is not None and torch.equal(got, pattern)), "")
        row = int((got != expected).any(1).nonzero()[0])
        raise CheckFailure(f"{name}: wrong pattern for {what} (seed={seed}). {hint}\n"
                           f"  first wrong row, query {row}: expected {expected[row].int().tolist()}\n"
                           f"  {' ' * len(f'first wrong row, query {row}:')} got      {got[row].int().tolist()}")
    passed(name, f"bool (L, L) masks for {len(cases)} lengths and windows, window >= L and L = 1 included")


def _head_contributions(heads: torch.Tensor, out_proj: nn.Linear) -> torch.Tensor:
    """Reference: head i's slice of the merged vector, columns i·d_head … (i+1)·d_head − 1, times W_O."""
    B, h, L, d_head = heads.shape
    weight = out_proj.weight.view(out_proj.out_features, h, d_head)  # (d_model, h, d_head): (out, head, in)
    return torch.einsum("bhld,ohd->bhlo", heads, weight)  # (B, h, L, d_model)


def check_head_contributions(candidate: Callable[[torch.Tensor, nn.Linear], torch.Tensor],
                             seed: int | None = None) -> None:
    """``candidate(heads, out_proj)`` must return ``(B, h, L, d_model)``: what each head adds to the output.

    ``heads`` ``(B, h, L, d_head)`` are the per-head attention outputs, ``out_proj`` the ``nn.Linear`` W_O.
    Summed over the heads, plus ``out_proj.bias`` once, the contributions give
    ``out_proj(heads.transpose(1, 2).reshape(B, L, h * d_head))``. Compared in float64; ``heads`` and
    ``out_proj`` must come back unmodified, and the result keeps the inputs' dtype.
    """
    gen, seed = checker_generator(seed)
    name = "head_contributions"
    if not callable(candidate):
        raise CheckFailure(f"{name}: expected a function, got {_describe(candidate)}")
    sizes = [(2, 4, 5, 3), (3, 1, 4, 6), (1, 2, 3, 8), (2, 3, 1, 2)]  # (B, h, L, d_head)
    for B, h, L, d_head in sizes:
        what = f"heads (B={B}, h={h}, L={L}, d_head={d_head}), out_proj {h * d_head}→{h * d_head} (seed={seed})"
        heads = random_float64(gen, B, h, L, d_head)
        out_proj = nn.Linear(h * d_head, h * d_head).double()
        with torch.no_grad():
            out_proj.weight.copy_(random_float64(gen, h * d_head, h * d_head))
            out_proj.bias.copy_(random_float64(gen, h * d_head))
        expected = _head_contributions(heads, out_proj).detach()
        given_heads, given_proj = heads.clone(), copy.deepcopy(out_proj)
        try:
            got = guarded(name, f"head_contributions on {what}", candidate, given_heads, given_proj)
        except CheckFailure as failure:
            if "cannot be multiplied" not in str(failure):
                raise
            raise CheckFailure(f"{failure}\n  Hint: nn.Linear stores weight as (out_features, in_features) = "
                               "(d_model, d_model); head i's block weight[:, i·d_head:(i+1)·d_head] is "
                               "(d_model, d_head), applied as heads[:, i] @ block.T.") from None
        assert_unchanged(name, what, {"heads": (heads, given_heads),
                                      "out_proj.weight": (out_proj.weight.detach(), given_proj.weight.detach()),
                                      "out_proj.bias": (out_proj.bias.detach(), given_proj.bias.detach())})
        if isinstance(got, torch.Tensor) and got.shape != expected.shape and got.dim() == 4 \
                and tuple(got.shape) == (B, L, h, h * d_head) and L != h:
            raise CheckFailure(f"{name}: wrong shape for {what}: expected (B, h, L, d_model) = "
                               f"{tuple(expected.shape)}, got (B, L, h, d_model) = {tuple(got.shape)}. Hint: stack "
                               "the heads' terms along dim=1, the head axis of the input.")
        assert_same_dtype(name, got, expected, what="contributions", inputs=what)
        try:
            assert_close(got, expected, what=name, inputs=what, atol=1e-9, rtol=1e-7)
        except CheckFailure as failure:
            raise CheckFailure(f"{failure}{_head_hint(got, heads, out_proj, expected)}") from None
        merged = heads.transpose(1, 2).reshape(B, L, h * d_head)  # (B, L, d_model)
        assert_close(got.sum(1) + out_proj.bias, out_proj(merged), what=f"{name}: sum over heads + bias",
                     inputs=what, atol=1e-9, rtol=1e-7)
    passed(name, f"per-head shares of W_O that add up to the layer's output, {len(sizes)} cases")


def _head_hint(got: Any, heads: torch.Tensor, out_proj: nn.Linear, expected: torch.Tensor) -> str:
    if not isinstance(got, torch.Tensor) or got.shape != expected.shape:
        return ""
    B, h, L, d_head = heads.shape
    W, bias = out_proj.weight.detach(), out_proj.bias.detach()
    interleaved = torch.stack([heads[:, i] @ W[:, i::h].T for i in range(h)], 1)
    rows = torch.stack([heads[:, i] @ W[i * d_head:(i + 1) * d_head] for i in range(h)], 1)
    variants = {
        "head i was given every h-th column of W_O (columns i, i+h, …) — the order a merge without "
        "transpose(1, 2) would produce. transpose(1, 2).reshape puts head i in the columns "
        "i·d_head … (i+1)·d_head − 1": interleaved,
        "head i took rows of out_proj.weight, or its block untransposed. nn.Linear stores weight as "
        "(out_features, in_features): head i's block is weight[:, i·d_head:(i+1)·d_head], applied as "
        "x @ block.T": rows,
        "the bias was added to every head; it belongs to the output once (output = contributions.sum(1) + "
        "bias), so leave it out here": expected + bias,
        "the bias was shared out among the heads; leave it out (output = contributions.sum(1) + bias)":
            expected + bias / h,
        "every head got the whole merged output, not its own share (the same values in each head's slot)":
            expected.sum(1, keepdim=True).expand_as(expected),
        "the heads are in reverse order": expected.flip(1),
    }
    for hint, wrong in variants.items():
        if torch.allclose(got.detach().double(), wrong, atol=1e-9):
            return f"\n  Hint: {hint}."
    return ""


def _sinusoid_variants(n: int, d: int) -> dict[str, torch.Tensor]:
    """Known wrong tables of shape ``(n, d)`` (float64), keyed by the story that names the mistake."""
    def table(positions: torch.Tensor, exponents: torch.Tensor, *, multiply: bool = False, swap: bool = False,
              base: float = 10000.0) -> torch.Tensor:
        freq = base ** (exponents / d)  # (d/2,) or (d,)
        angle = positions[:, None] * freq if multiply else positions[:, None] / freq  # (n, ·)
        if angle.shape[1] == d:  # one exponent per column
            even = torch.arange(d) % 2 == 0
            return torch.where(even, torch.cos(angle) if swap else torch.sin(angle),
                               torch.sin(angle) if swap else torch.cos(angle))
        out = torch.empty(n, d, dtype=torch.float64)
        out[:, 0::2] = (torch.cos if swap else torch.sin)(angle[:, : (d + 1) // 2])
        out[:, 1::2] = (torch.sin if swap else torch.cos)(angle[:, : d // 2])
        return out

    pos = torch.arange(n, dtype=torch.float64)
    two_i = torch.arange(0, d, 2, dtype=torch.float64)  # 0, 2, 4, …
    right = table(pos, two_i)
    return {
        "sin and cos are swapped: sin goes in the even columns (2i), cos in the odd ones (2i+1)":
            table(pos, two_i, swap=True),
        "the sines and cosines are concatenated ([sin … | cos …]); they interleave: column 2i holds sin, column "
        "2i+1 the cos of the same angle": torch.cat([right[:, 0::2], right[:, 1::2]], dim=1),
        "the positions start at 1; the first row is position 0 (all sines 0, all cosines 1)": table(pos + 1, two_i),
        "the exponent is i/d_model with i = 0, 1, 2, … the pair index; it is 2i/d_model": table(pos, two_i / 2),
        "the exponent uses the column index j for every column; the sin/cos pair 2i, 2i+1 shares one angle, "
        "pos / 10000^(2i/d_model)": table(pos, torch.arange(d, dtype=torch.float64)),
        "the exponent is doubled twice: with 2i = 0, 2, 4, … already even, use 2i / d_model, not 2·(2i) / d_model":
            table(pos, 2 * two_i),
        "the position was multiplied by 10000^(2i/d_model), not divided by it — a sign slip in "
        "exp(-2i·ln(10000)/d_model)": table(pos, two_i, multiply=True),
        "the base is 1000; the paper's is 10000": table(pos, two_i, base=1000.0),
    }


def _sinusoid_hint(got: torch.Tensor, expected: torch.Tensor) -> str:
    """Name a known wrong table, or else the first structural fact the table breaks (row 0, column 0)."""
    if got.shape != expected.shape:
        return ""
    values = got.detach().cpu().double()
    n, d = expected.shape
    story = next((story for story, wrong in _sinusoid_variants(n, d).items()
                  if torch.allclose(values, wrong, atol=1e-4, rtol=1e-4)), None)
    if story:
        return f"\n  Hint: {story}."
    if not torch.allclose(values[0], expected[0], atol=1e-4):
        return (f"\n  Hint: row 0 (position 0) must be sin 0 = 0 in the even columns and cos 0 = 1 in the odd "
                f"ones, got {[round(v, 4) for v in values[0, :6].tolist()]}: sin or cos is chosen by the column "
                "(2i or 2i+1), not by the position, and the positions start at 0.")
    if not torch.allclose(values[:, 0], expected[:, 0], atol=1e-4):
        return ("\n  Hint: column 0 must be sin(pos): its exponent 2i/d_model is 0, so the angle is the position "
                "itself.")
    return ""


def check_sinusoidal_encoding(candidate: Callable[[int, int], torch.Tensor], seed: int | None = None) -> None:
    """``candidate(length, d_model)`` must return the ``(length, d_model)`` table of the paper:
    ``PE[pos, 2i] = sin(pos / 10000^(2i/d_model))``, ``PE[pos, 2i+1] = cos(pos / 10000^(2i/d_model))``.
    Any float dtype of at least float32 precision passes (tolerance 1e-4); a failure names the mistake when
    the table is a known wrong one (sin/cos swapped, concatenated, positions from 1, exponent i or j instead of
    2i, sign slip, wrong base, transposed)."""
    gen, seed = checker_generator(seed)
    name = "sinusoidal_encoding"
    if not callable(candidate):
        raise CheckFailure(f"{name}: expected a function, got {_describe(candidate)}")
    sizes = [(1, 2), (10, 8), (64, 16), (7, 6), (int(torch.randint(20, 200, (1,), generator=gen)), 32)]
    for n, d in sizes:
        description = f"length={n}, d_model={d} (seed={seed})"
        expected = sinusoidal_encoding(n, d, dtype=torch.float64)
        got = guarded(name, f"sinusoidal_encoding({n}, {d})", candidate, n, d)
        if isinstance(got, torch.Tensor) and got.shape != expected.shape:
            if tuple(got.shape) == (d, n):
                raise CheckFailure(f"{name}: wrong shape for {description}: expected (length, d_model) = {(n, d)}, "
                                   f"got {(d, n)}. Hint: one row per position, one column per feature — the "
                                   "table is transposed.")
            if got.numel() == n * d:
                raise CheckFailure(f"{name}: wrong shape for {description}: expected (length, d_model) = {(n, d)}, "
                                   f"got {tuple(got.shape)}. Hint: return the 2-D table; leave out batch axes.")
        if isinstance(got, torch.Tensor) and got.dtype in (torch.float16, torch.bfloat16):
            raise CheckFailure(f"{name}: the table for {description} is {got.dtype}, too coarse for angles up to "
                               f"{n - 1} rad (it differs from the exact one by up to 1e-1); compute in float32 or "
                               "float64")
        try:
            assert_close(got, expected, what=name, inputs=description, atol=1e-4, rtol=1e-4)
        except CheckFailure as failure:
            hint = _sinusoid_hint(got, expected) if isinstance(got, torch.Tensor) else ""
            raise CheckFailure(f"{failure}{hint}") from None
    passed(name, f"matches the reference on {len(sizes)} random cases")
