"""Checkers for notebook 03 (the Transformer).

================================  ===========================================================================
checker                           what the candidate must do
================================  ===========================================================================
``check_encoder_layer``           ``fn(layer, x (B, S, D), mask)`` -> ``(B, S, D)``: one encoder layer written
                                  from the parts of a bigtut :class:`EncoderLayer` (post-LN or pre-LN, as
                                  ``layer.norm_first`` says)
``check_decoder_layer``           ``fn(layer, y (B, T, D), memory (B, S, D), self_mask, memory_mask)`` ->
                                  ``(B, T, D)``: one decoder layer from the parts of a :class:`DecoderLayer`
``check_decoder_mask``            ``fn(tgt (B, T), pad_id)`` -> bool ``(B, T, T)``: causal and not padding
``check_beam_step``               ``fn(scores (B, K), log_probs (B, K, V), beam_size)`` ->
                                  ``(new_scores, parent, token)``, each ``(B, beam_size)``, best first
``check_label_smoothing_loss``    ``fn(logits (N, V), targets (N,), epsilon, ignore_index)`` -> scalar loss
================================  ===========================================================================

References: :class:`bigtut.transformer.EncoderLayer` and :class:`~bigtut.transformer.DecoderLayer`,
:func:`bigtut.transformer.decoder_self_mask`, :func:`bigtut.transformer.beam_step` and
``torch.nn.functional.cross_entropy(..., label_smoothing=epsilon, ignore_index=...)``. Inputs come from a
private generator; pass ``seed=`` to replay a case (the seed is named in every failure).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F

from bigtut.attention import causal_mask, padding_mask
from bigtut.checks.core import CheckFailure, _describe, assert_close, checker_generator, passed
from bigtut.transformer import DecoderLayer, EncoderLayer, beam_step, decoder_self_mask

__all__ = ["check_beam_step", "check_decoder_layer", "check_decoder_mask", "check_encoder_layer",
           "check_label_smoothing_loss"]


class _CalledWhole(Exception):
    """A layer exercise called the bigtut layer itself (or its ready-made feed-forward) instead of its parts."""


def _run(name: str, inputs: str, fn: Callable[..., Any], *args: Any) -> Any:
    """Call the candidate; a stub or any error becomes a :class:`CheckFailure` naming the input."""
    try:
        return fn(*args)
    except _CalledWhole as err:
        raise CheckFailure(f"{err} (for {inputs})") from None
    except NotImplementedError:
        raise CheckFailure(f"{name}: not implemented yet — replace the `raise NotImplementedError` stub") from None
    except Exception as err:
        raise CheckFailure(f"{name}: raised {type(err).__name__}: {err} for {inputs}") from err


def _right_padded(gen: torch.Generator, lengths: list[int], T: int, vocab: int, pad_id: int) -> torch.Tensor:
    """Random ids ``(B, T)`` whose row ``b`` has ``lengths[b]`` real (non-pad) tokens, then padding."""
    ids = torch.randint(0, vocab - 1, (len(lengths), T), generator=gen)
    ids = ids + (ids >= pad_id).long()  # real tokens never equal pad_id
    for b, n in enumerate(lengths):
        ids[b, n:] = pad_id
    return ids


def check_decoder_mask(candidate: Callable[[torch.Tensor, int], torch.Tensor], seed: int | None = None) -> None:
    """Decoder self-attention mask: ``mask[b, i, j]`` is True iff ``j <= i`` and ``tgt[b, j]`` is not padding."""
    name = "decoder_self_attention_mask"
    gen, seed = checker_generator(seed)
    cases = [([5, 3, 1], 5, 0), ([4], 4, 0), ([1], 1, 0), ([6, 6], 6, 0), ([2, 7, 4, 1], 7, 3),
             ([int(torch.randint(1, 9, (1,), generator=gen))] * 2 + [9], 9, 2)]
    for lengths, T, pad_id in cases:
        tgt = _right_padded(gen, lengths, T, vocab=11, pad_id=pad_id)
        inputs = f"tgt={tgt.tolist()}, pad_id={pad_id} (seed={seed})"
        got = _run(name, inputs, candidate, tgt.clone(), pad_id)
        if not isinstance(got, torch.Tensor) or got.dtype != torch.bool:
            raise CheckFailure(f"{name}: expected a bool tensor (True = may attend) for {inputs}, got "
                               f"{_describe(got)}")
        expected = decoder_self_mask(tgt, pad_id)  # (B, T, T)
        if tuple(got.shape) != (len(lengths), T, T):
            raise CheckFailure(f"{name}: expected shape {(len(lengths), T, T)} (B, T, T) for {inputs}, got "
                               f"{tuple(got.shape)}")
        if not torch.equal(got, expected):
            b, i, j = (int(x) for x in (got != expected).nonzero()[0])
            raise CheckFailure(f"{name}: wrong entry [{b}, {i}, {j}] for {inputs}: query position {i} "
                               f"{'may' if expected[b, i, j] else 'may NOT'} attend to key position {j} "
                               f"(token {int(tgt[b, j])}), got {bool(got[b, i, j])}")
    passed(name, f"causal and key-padding mask right on {len(cases)} batches")


def check_beam_step(candidate: Callable[..., Any], seed: int | None = None) -> None:
    """One beam-search step: the ``beam_size`` best (beam, token) extensions by total score, best first."""
    name = "beam_step"
    gen, seed = checker_generator(seed)
    cases = []
    for B, K, V, beam_size in [(1, 3, 5, 3), (2, 4, 7, 4), (3, 2, 6, 2), (1, 1, 4, 1), (2, 3, 5, 5)]:
        scores = -torch.rand(B, K, generator=gen, dtype=torch.float64).mul(4).sort(-1).values.flip(-1)
        log_probs = torch.randn(B, K, V, generator=gen, dtype=torch.float64).log_softmax(-1)
        cases.append((f"random step B={B}, K={K}, V={V}, beam_size={beam_size}", scores, log_probs, beam_size))
    first = torch.full((2, 3), float("-inf"), dtype=torch.float64)
    first[:, 0] = 0.0  # the first step: one live beam, the others are placeholders scored -inf
    cases.append(("first step (scores [0, -inf, -inf])", first,
                  torch.randn(2, 3, 6, generator=gen, dtype=torch.float64).log_softmax(-1), 3))
    one_strong = torch.tensor([[-0.1, -5.0, -6.0]], dtype=torch.float64)  # every survivor comes from beam 0
    cases.append(("one beam far ahead", one_strong,
                  torch.randn(1, 3, 8, generator=gen, dtype=torch.float64).log_softmax(-1), 3))
    for description, scores, log_probs, beam_size in cases:
        inputs = f"{description} (seed={seed})"
        got = _run(name, inputs, candidate, scores.clone(), log_probs.clone(), beam_size)
        expected = beam_step(scores, log_probs, beam_size)
        if not isinstance(got, tuple) or len(got) != 3:
            raise CheckFailure(f"{name}: expected a tuple (new_scores, parent, token) for {inputs}, got "
                               f"{_describe(got)}")
        for what, g, e in zip(("new_scores", "parent", "token"), got, expected):
            assert_close(g, e, what=f"{name} ({what})", inputs=inputs, atol=1e-9, rtol=1e-9)
    passed(name, f"matches the reference on {len(cases)} steps, the first step included")


def check_label_smoothing_loss(candidate: Callable[..., Any], seed: int | None = None) -> None:
    """Label-smoothed cross-entropy, mean over the targets that are not ``ignore_index``."""
    name = "label_smoothing_loss"
    gen, seed = checker_generator(seed)
    count = 0
    for N, V, epsilon, n_ignored in [(6, 5, 0.1, 0), (8, 7, 0.2, 3), (5, 4, 0.0, 1), (7, 9, 0.5, 2),
                                     (1, 3, 0.1, 0)]:
        logits = torch.randn(N, V, generator=gen, dtype=torch.float64) * 3
        ignore_index = int(torch.randint(0, V, (1,), generator=gen))
        targets = torch.randint(0, V, (N,), generator=gen)
        targets[targets == ignore_index] = (ignore_index + 1) % V
        targets[torch.randperm(N, generator=gen)[:n_ignored]] = ignore_index  # some padding positions
        inputs = f"logits {tuple(logits.shape)}, targets={targets.tolist()}, epsilon={epsilon}, " \
                 f"ignore_index={ignore_index} (seed={seed})"
        got = _run(name, inputs, candidate, logits.clone(), targets.clone(), epsilon, ignore_index)
        expected = F.cross_entropy(logits, targets, ignore_index=ignore_index, label_smoothing=epsilon)
        assert_close(got, expected, what=name, inputs=inputs, atol=1e-9, rtol=1e-7)
        count += 1
    passed(name, f"matches F.cross_entropy(label_smoothing=ε) on {count} cases")


# ------------------------------------------------------------------------------------ encoder and decoder layers
_TOL = {"atol": 1e-8, "rtol": 1e-6}


def _random_layer(cls: type[EncoderLayer], gen: torch.Generator, norm_first: bool, activation: str, d_model: int,
                  num_heads: int, d_ff: int) -> EncoderLayer:
    """A float64 eval-mode layer with every parameter drawn from ``gen`` — LayerNorms too (a fresh LayerNorm is
    the identity), so that ``norm1``, ``norm2``, ``norm3`` differ and a swap shows."""
    with torch.random.fork_rng(devices=[]):  # building a module draws from the global generator: restore it
        layer = cls(d_model, num_heads, d_ff, dropout=0.0, activation=activation, norm_first=norm_first)
    layer = layer.double().eval()
    with torch.no_grad():
        for pname, p in layer.named_parameters():
            noise = torch.randn(p.shape, generator=gen, dtype=torch.float64)
            if pname.startswith("norm"):
                p.copy_((1.0 if pname.endswith("weight") else 0.0) + 0.5 * noise)
            else:  # Linear weights (out, in) and biases, scaled so that activations stay O(1)
                p.copy_(noise / (p.shape[-1] if p.dim() == 2 else d_model) ** 0.5)
    return layer


def _parts_only(layer: EncoderLayer, name: str) -> None:
    """Make ``layer(...)`` and ``layer.feed_forward(...)`` raise: the exercise is to wire the parts."""
    def called_whole(*args: Any, **kwargs: Any) -> Any:
        raise _CalledWhole(f"{name}: build the layer from its parts (layer.self_attn, layer.linear1, "
                           "layer.activation, layer.norm1, …); calling layer(...) or layer.feed_forward(...) "
                           "hands the exercise back to bigtut")
    layer.forward = layer.feed_forward = called_whole


def _wired(layer: EncoderLayer, x: torch.Tensor, sublayers: list, norm_first: bool,
           residual: tuple[bool, ...]) -> torch.Tensor:
    """Apply ``(sublayer, norm)`` pairs with residuals, post-LN or pre-LN."""
    for (sublayer, norm), keep in zip(sublayers, residual):
        r = 1.0 if keep else 0.0
        x = r * x + sublayer(norm(x)) if norm_first else norm(r * x + sublayer(x))
    return x


def _layer_variant(layer: EncoderLayer, x: torch.Tensor, memory: torch.Tensor | None, mask: torch.Tensor | None,
                   memory_mask: torch.Tensor | None, *, norm_first: bool, residual: tuple[bool, ...] = (1, 1, 1),
                   activation: bool = True, use_mask: bool = True, use_memory_mask: bool = True,
                   cross: str = "memory", norms: tuple[str, ...] = ("norm1", "norm2", "norm3"),
                   cross_first: bool = False) -> torch.Tensor:
    """An encoder layer (``memory=None``) or decoder layer in eval mode, with switches that reproduce the usual
    mistakes; the defaults compute it right. ``cross``: ``"memory"`` (right), ``"decoder"`` (cross-attention
    over the decoder's own states) or ``"swapped"`` (queries from the memory, keys/values from the decoder)."""
    act = layer.activation if activation else (lambda h: h)

    def self_attend(h):  # (B, L, D)
        return layer.self_attn(h, h, h, mask if use_mask else None, return_attention=False)[0]

    def cross_attend(h):  # (B, T, D)
        q, kv = {"memory": (h, memory), "decoder": (h, h), "swapped": (memory, h)}[cross]
        return layer.cross_attn(q, kv, kv, memory_mask if use_memory_mask else None, return_attention=False)[0]

    def ffn(h):  # (B, L, D) -> (B, L, d_ff) -> (B, L, D)
        return layer.linear2(act(layer.linear1(h)))

    parts = [self_attend, ffn] if memory is None else (
        [cross_attend, self_attend, ffn] if cross_first else [self_attend, cross_attend, ffn])
    return _wired(layer, x, [(f, getattr(layer, n)) for f, n in zip(parts, norms)], norm_first, residual)


def _same(got: Any, reference: torch.Tensor) -> bool:
    return (isinstance(got, torch.Tensor) and tuple(got.shape) == tuple(reference.shape)
            and torch.allclose(got.detach().double(), reference, **_TOL))


def _diagnose(name: str, got: Any, inputs: str, variants: list[tuple[str, Callable[[], torch.Tensor]]]) -> None:
    """Raise naming the known mistake that ``got`` reproduces, if any (a mistake that cannot run is skipped)."""
    for description, variant in variants:
        try:
            with torch.no_grad():
                wrong = variant()
        except Exception:
            continue
        if _same(got, wrong):
            raise CheckFailure(f"{name}: wrong output for {inputs}: it equals the layer with {description}")


def _flipped(norm_first: bool, v: str) -> str:
    return (f"post-LN wiring norm({v} + sublayer({v})), but this layer is pre-LN (layer.norm_first=True): "
            f"{v} + sublayer(norm({v}))" if norm_first else
            f"pre-LN wiring {v} + sublayer(norm({v})), but this layer is post-LN (layer.norm_first=False): "
            f"norm({v} + sublayer({v}))")


def _describe_layer(norm_first: bool, activation: str, d_model: int, num_heads: int) -> str:
    return (f"a {'pre' if norm_first else 'post'}-LN layer (layer.norm_first={norm_first}, "
            f"activation={activation!r}, d_model={d_model}, {num_heads} heads)")


def check_encoder_layer(candidate: Callable[..., Any], seed: int | None = None) -> None:
    """``candidate(layer, x (B, S, D), mask (B, 1, S) or None) -> (B, S, D)``: one encoder layer written from the
    parts of a bigtut :class:`~bigtut.transformer.EncoderLayer` (``self_attn``, ``dropout1``, ``norm1``,
    ``linear1``, ``activation``, ``linear2``, ``dropout2``, ``norm2``), post-LN when ``layer.norm_first`` is
    False, pre-LN when True; compared with the layer's own forward on random layers (LayerNorms included)."""
    name = "encoder_layer_forward"
    gen, seed = checker_generator(seed)
    cases = [(False, "relu", 8, 2, 16, [6, 4, 1]), (False, "gelu", 12, 3, 20, [5, 2]),  # norm_first, act,
             (True, "relu", 8, 4, 12, [7, 3]), (True, "gelu", 6, 2, 10, None)]  # D, h, d_ff, key lengths
    for norm_first, activation, D, h, FF, lengths in cases:
        B, S = (len(lengths), max(lengths)) if lengths else (2, int(torch.randint(3, 7, (1,), generator=gen)))
        layer = _random_layer(EncoderLayer, gen, norm_first, activation, D, h, FF)
        x = torch.randn(B, S, D, generator=gen, dtype=torch.float64)  # (B, S, D)
        mask = padding_mask(lengths, S) if lengths else None  # (B, 1, S), True = real key
        with torch.no_grad():
            expected = EncoderLayer.forward(layer, x, mask)[0]  # (B, S, D)
        inputs = (f"{_describe_layer(norm_first, activation, D, h)}, x {tuple(x.shape)}, "
                  f"{f'padding mask (B, 1, S) for lengths {lengths}' if lengths else 'mask=None'} (seed={seed})")
        _parts_only(layer, name)
        with torch.no_grad():
            got = _run(name, inputs, candidate, layer, x.clone(), None if mask is None else mask.clone())
        if _same(got, expected):
            continue
        variant = partial(_layer_variant, layer, x, None, mask, None, norm_first=norm_first)
        _diagnose(name, got, inputs, [
            (_flipped(norm_first, "x"), partial(variant, norm_first=not norm_first)),
            ("no residual around the self-attention", partial(variant, residual=(0, 1))),
            ("no residual around the feed-forward", partial(variant, residual=(1, 0))),
            ("no residual at all", partial(variant, residual=(0, 0))),
            ("no activation between linear1 and linear2 (use layer.activation)", partial(variant, activation=False)),
            ("norm1 and norm2 swapped", partial(variant, norms=("norm2", "norm1"))),
            *([("the padding mask ignored: pass `mask` to layer.self_attn", partial(variant, use_mask=False))]
              if lengths else [])])
        assert_close(got, expected, what=name, inputs=inputs, **_TOL)
    passed(name, f"equals bigtut's EncoderLayer on {len(cases)} random layers (post-LN and pre-LN, relu and "
                 "gelu, with and without padding)")


def check_decoder_layer(candidate: Callable[..., Any], seed: int | None = None) -> None:
    """``candidate(layer, y (B, T, D), memory (B, S, D), self_mask, memory_mask) -> (B, T, D)``: one decoder layer
    from the parts of a bigtut :class:`~bigtut.transformer.DecoderLayer`: masked self-attention (``self_attn``,
    ``norm1``), cross-attention over the memory (``cross_attn``, ``norm2``), feed-forward (``linear1``,
    ``activation``, ``linear2``, ``norm3``), each with its residual, post-LN or pre-LN as ``layer.norm_first``
    says. ``self_mask``: causal, ``(T, T)`` or ``(B, T, T)`` with target padding; ``memory_mask`` ``(B, 1, S)``."""
    name = "decoder_layer_forward"
    gen, seed = checker_generator(seed)
    cases = [  # norm_first, activation, D, h, d_ff, T, target lengths, source lengths (S == T in the first)
        (False, "relu", 8, 2, 16, 6, None, [6, 4]), (False, "gelu", 12, 3, 20, 6, [6, 3, 5], [4, 2, 3]),
        (True, "relu", 8, 4, 12, 5, None, [7, 3]), (True, "gelu", 6, 2, 10, 4, [4, 2], [6, 1])]
    for norm_first, activation, D, h, FF, T, tgt_lengths, src_lengths in cases:
        B, S = len(src_lengths), max(src_lengths)
        layer = _random_layer(DecoderLayer, gen, norm_first, activation, D, h, FF)
        y = torch.randn(B, T, D, generator=gen, dtype=torch.float64)  # (B, T, D) decoder states
        memory = torch.randn(B, S, D, generator=gen, dtype=torch.float64)  # (B, S, D) encoder output
        self_mask = causal_mask(T)  # (T, T), True = may attend
        if tgt_lengths:
            self_mask = self_mask[None] & padding_mask(tgt_lengths, T)  # (B, T, T): causal and not padding
        memory_mask = padding_mask(src_lengths, S)  # (B, 1, S)
        with torch.no_grad():
            expected = DecoderLayer.forward(layer, y, memory, self_mask, memory_mask)[0]  # (B, T, D)
        inputs = (f"{_describe_layer(norm_first, activation, D, h)}, y {tuple(y.shape)}, memory "
                  f"{tuple(memory.shape)}, causal self_mask {tuple(self_mask.shape)}"
                  f"{f' (target lengths {tgt_lengths})' if tgt_lengths else ''}, memory_mask (B, 1, S) for source "
                  f"lengths {src_lengths} (seed={seed})")
        _parts_only(layer, name)
        call = partial(_run, name, inputs, candidate, layer)
        with torch.no_grad():
            got = call(y.clone(), memory.clone(), self_mask.clone(), memory_mask.clone())
        if _same(got, expected):
            continue
        variant = partial(_layer_variant, layer, y, memory, self_mask, memory_mask, norm_first=norm_first)
        _diagnose(name, got, inputs, [
            (_flipped(norm_first, "y"), partial(variant, norm_first=not norm_first)),
            ("the causal mask ignored: every position sees the future (pass `self_mask` to layer.self_attn)",
             partial(variant, use_mask=False)),
            ("the source padding ignored (pass `memory_mask` to layer.cross_attn)",
             partial(variant, use_memory_mask=False)),
            ("cross-attention over the decoder's own states: its keys and values must come from `memory`",
             partial(variant, cross="decoder")),
            ("the cross-attention's queries and keys/values swapped: queries come from the decoder, keys and "
             "values from `memory`", partial(variant, cross="swapped")),
            *[(f"no residual around the {part}", partial(variant, residual=tuple(j != i for j in range(3))))
              for i, part in enumerate(("self-attention", "cross-attention", "feed-forward"))],
            ("no residual at all", partial(variant, residual=(0, 0, 0))),
            ("no activation between linear1 and linear2 (use layer.activation)", partial(variant, activation=False)),
            *[(f"{a} and {b} swapped", partial(variant, norms=tuple({a: b, b: a}.get(n, n)
                                                                  for n in ("norm1", "norm2", "norm3"))))
              for a, b in (("norm1", "norm2"), ("norm2", "norm3"), ("norm1", "norm3"))],
            ("the cross-attention before the self-attention", partial(variant, cross_first=True))])
        if isinstance(got, torch.Tensor) and got.shape == expected.shape:  # no known mistake: test the look-ahead
            t, later = T // 2, y.clone()
            later[:, t:] = torch.randn(B, T - t, D, generator=gen, dtype=torch.float64)
            with torch.no_grad():
                moved = call(later, memory.clone(), self_mask.clone(), memory_mask.clone())
            if isinstance(moved, torch.Tensor) and not _same(moved[:, :t], got[:, :t].detach().double()):
                raise CheckFailure(f"{name}: the decoder looks ahead for {inputs}: changing y at positions {t}.. "
                                   f"changed your output at positions 0..{t - 1}; pass `self_mask` (causal) to "
                                   "layer.self_attn")
        assert_close(got, expected, what=name, inputs=inputs, **_TOL)
    passed(name, f"equals bigtut's DecoderLayer on {len(cases)} random layers (post-LN and pre-LN, relu and "
                 "gelu, causal and padding masks)")
