"""Checkers for notebook 03 (the Transformer).

================================  ===========================================================================
checker                           what the candidate must do
================================  ===========================================================================
``check_decoder_mask``            ``fn(tgt (B, T), pad_id)`` -> bool ``(B, T, T)``: causal and not padding
``check_beam_step``               ``fn(scores (B, K), log_probs (B, K, V), beam_size)`` ->
                                  ``(new_scores, parent, token)``, each ``(B, beam_size)``, best first
``check_label_smoothing_loss``    ``fn(logits (N, V), targets (N,), epsilon, ignore_index)`` -> scalar loss
================================  ===========================================================================

References: :func:`bigtut.transformer.decoder_self_mask`, :func:`bigtut.transformer.beam_step` and
``torch.nn.functional.cross_entropy(..., label_smoothing=epsilon, ignore_index=...)``. Inputs come from a
private generator; pass ``seed=`` to replay a case (the seed is named in every failure).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from bigtut.checks.core import CheckFailure, _describe, assert_close, checker_generator, passed
from bigtut.transformer import beam_step, decoder_self_mask

__all__ = ["check_beam_step", "check_decoder_mask", "check_label_smoothing_loss"]


def _run(name: str, inputs: str, fn: Callable[..., Any], *args: Any) -> Any:
    """Call the candidate; a stub or any error becomes a :class:`CheckFailure` naming the input."""
    try:
        return fn(*args)
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
