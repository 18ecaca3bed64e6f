"""Checkers for notebook 08 (Integrated Gradients): the path and the Riemann sum on a small network, then IG
through ``inputs_embeds`` on the course's BERT.

======================================  ======================================================================
checker                                 the formula it holds the candidate to (and the usual mistakes it names)
======================================  ======================================================================
``check_interpolation_path``            x′ + α(x − x′), α = k/n (not x′ + αx, not αx, not the left nodes or
                                        linspace(0, 1, n), not the path reversed, not float32 alphas)
``check_riemann_integrated_gradients``  (x − x′) ⊙ mean of the path gradients (the (x − x′) factor included,
                                        the right nodes, a mean not a sum) with ONE call of ``forward`` on the
                                        whole ``(n_steps, M)`` path (a loop over the points fails)
``check_token_ig``                      = ``token_integrated_gradients`` on random tiny BERT classifiers (below)
======================================  ======================================================================

Each hands the candidate copies of its tensors and fails it if it changed them in place, and fails an answer
that calls the course's own implementation (``bigtut.explain``'s ``integration_rule``, ``integrated_gradients``,
``token_integrated_gradients``; captum's ``IntegratedGradients``, ``LayerIntegratedGradients``).

Shape legend:  B batch   n integration steps   L positions   d d_model   C classes

``check_token_ig(candidate)`` holds ``candidate(model, input_ids, attention_mask, target, baseline_ids, n_steps)``
to :func:`bigtut.explain.token_integrated_gradients` with its defaults (Gauss–Legendre nodes and weights), on
random tiny :class:`bigtut.bert.BertForSequenceClassification` models in float64: a batch without padding, and
two padded batches with their attention masks (one padded with a word's id, so that only the mask says where the
padding is), against three baselines given as ids ([MASK], [PAD], random tokens). It names the usual mistakes:

* the attribution: (x − x′) left out (all scores 0) or replaced by x, the sign flipped, |·|, the norm or the mean
  over ``d`` instead of the sum, per-coordinate ``(B, L, d)`` scores left unsummed;
* the path: token ids interpolated instead of embeddings, position and segment embeddings interpolated too,
  x′ + α·x, gradients taken through ``x`` (each point weighed by its α), the baseline ids ignored ([PAD], [MASK]
  or zeros instead);
* the rule: the Riemann sums and the trapezoid instead of Gauss–Legendre, Gauss–Legendre left on [−1, 1], with
  equal weights, weights that sum to 2 or n_steps ± 1 nodes;
* the output: the predicted class instead of ``target``, its probability or log-probability, the sum of the logits;
* the mask: none, rows that do not follow the path's rows, inverted (1 = ignore), the baseline's [PAD] hidden,
  recomputed from the ids (input_ids != [PAD]) instead of the one given;
* the one batched pass: the model must run once, on all ``B·n`` path points together; the arguments and the model
  (its weights, its eval mode, its parameters' ``requires_grad``) must come back unchanged, and the course's own
  answer (``token_integrated_gradients``, captum) is refused.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
import torch

from bigtut.checks.core import (
    CheckFailure,
    _describe,
    assert_close_or_hint,
    assert_unchanged,
    checker_generator,
    guarded,
    passed,
    random_float64,
)
from bigtut.checks.forbidden import OWN_ANSWER, assert_does_not_use

__all__ = ["check_interpolation_path", "check_riemann_integrated_gradients", "check_token_ig"]


class RecordedCalls:
    """Wraps ``fn``; ``shapes`` lists the shape of the first argument of every call (its type name if it has none)."""

    def __init__(self, fn: Callable) -> None:
        self.fn = fn
        self.shapes: list[tuple[int, ...] | str] = []

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        first = args[0] if args else next(iter(kwargs.values()), None)
        self.shapes.append(tuple(first.shape) if isinstance(first, torch.Tensor) else type(first).__name__)
        return self.fn(*args, **kwargs)

    def describe(self, limit: int = 4) -> str:
        shown = ", ".join(str(s) for s in self.shapes[:limit])
        return shown + (f", … ({len(self.shapes)} calls)" if len(self.shapes) > limit else "")


# ------------------------------------------------------- exercises 1 and 2: the path and the Riemann sum
def _path(x: torch.Tensor, baseline: torch.Tensor, alphas: torch.Tensor) -> torch.Tensor:
    """The points x′ + α(x − x′) ``(len(alphas), M)``."""
    return baseline + alphas[:, None] * (x - baseline)


def _float32_alphas(n_steps: int) -> torch.Tensor:
    """``torch.arange(1, n + 1) / n`` as a student writes it without ``dtype=``: float32 nodes, in float64."""
    return (torch.arange(1, n_steps + 1) / n_steps).double()


def _path_variants(x: torch.Tensor, baseline: torch.Tensor, n_steps: int, expected: torch.Tensor) -> dict[str, Any]:
    """The points ``(n, M)`` of the usual wrong paths."""
    k = torch.arange(1, n_steps + 1, dtype=torch.float64)  # (n,)
    return {
        "x′ + αx: the step is α(x − x′)": baseline + (k / n_steps)[:, None] * x,
        "αx: the path starts at the baseline x′, not at 0": (k / n_steps)[:, None] * x,
        "α = 0, 1/n, …, (n−1)/n are the left nodes; the right nodes are α = k/n for k = 1 … n":
            _path(x, baseline, (k - 1) / n_steps),
        "α = linspace(0, 1, n) spaces n points from 0 to 1; the right nodes are k/n for k = 1 … n":
            _path(x, baseline, torch.linspace(0, 1, n_steps, dtype=torch.float64)),
        "α = (k − ½)/n are the midpoints; the right nodes are k/n": _path(x, baseline, (k - 0.5) / n_steps),
        "the points run from x towards x′: x + α(x′ − x); the path goes from x′ to x": _path(baseline, x, k / n_steps),
        "the points are in reverse order: the first row is α = 1/n, the last α = 1": expected.flip(0),
        "the α are float32 (torch.arange(1, n + 1) / n): give torch.arange dtype=x.dtype":
            _path(x, baseline, _float32_alphas(n_steps)),
    }


def check_interpolation_path(candidate: Callable, seed: int | None = None) -> None:
    """``candidate(x (M,), baseline (M,), n_steps) -> (n_steps, M)``: the points x′ + (k/n)(x − x′), k = 1 … n."""
    gen, seed = checker_generator(seed)
    name = "interpolation_path"
    for n_steps in (4, 20, 1):
        x, baseline = random_float64(gen, 6), random_float64(gen, 6)  # (M,), (M,): a non-zero baseline
        expected = _path(x, baseline, torch.arange(1, n_steps + 1, dtype=torch.float64) / n_steps)  # (n, M)
        inputs = f"M=6, non-zero baseline, n_steps={n_steps} (seed={seed})"
        given = x.clone(), baseline.clone()
        got = guarded(name, f"interpolation_path(x, baseline, {n_steps}) for {inputs}", candidate, *given, n_steps)
        assert_unchanged(name, inputs, {"x": (x, given[0]), "baseline": (baseline, given[1])})
        shape = tuple(got.shape) if isinstance(got, torch.Tensor) else None
        if shape == (6, n_steps) and n_steps != 6:
            raise CheckFailure(f"{name}: shape (6, {n_steps}) for {inputs}, expected ({n_steps}, 6): one row per "
                               f"path point — alphas[:, None] * (x − baseline), not the transpose")
        if shape == (n_steps + 1, 6):
            raise CheckFailure(f"{name}: {n_steps + 1} points for {inputs}, expected {n_steps}: α = k/n for "
                               f"k = 1 … n — the baseline itself (k = 0) is not one of the right Riemann nodes")
        assert_close_or_hint(got, expected, what=name, inputs=inputs, atol=1e-12, rtol=1e-10,
                             variants=partial(_path_variants, x, baseline, n_steps, expected))
    assert_does_not_use(name, candidate, {f: OWN_ANSWER.format(f"bigtut.explain's {f}")
                                          for f in ("integration_rule", "integrated_gradients")})
    passed(name, "right-Riemann points from a non-zero baseline")


def _gradients(forward: Callable, points: torch.Tensor) -> torch.Tensor:
    """∇F at every row of ``points`` ``(n, M)`` -> ``(n, M)``."""
    points = points.detach().clone().requires_grad_(True)
    (grads,) = torch.autograd.grad(forward(points).sum(), points)
    return grads


def _ig_variants(forward: Callable, x: torch.Tensor, baseline: torch.Tensor, n_steps: int) -> dict[str, torch.Tensor]:
    """The attributions ``(M,)`` of the usual wrong IG formulas."""
    d, k = x - baseline, torch.arange(1, n_steps + 1, dtype=torch.float64)  # (M,), (n,)
    right = _gradients(forward, _path(x, baseline, k / n_steps))  # (n, M)
    left = _gradients(forward, _path(x, baseline, (k - 1) / n_steps))  # (n, M)
    return {
        "the (x − x′) factor is missing: IG multiplies the mean path gradient by x − x′": right.mean(0),
        "x ⊙ gradients: multiply by (x − x′), not x (they agree only for a zero baseline)": x * right.mean(0),
        "the gradients were summed, not averaged: the 1/n is missing": d * right.sum(0),
        "divided by n twice: forward(path).mean() already divides every gradient by n": d * right.mean(0) / n_steps,
        "α = 0 … (n−1)/n are the left nodes; this exercise uses the right nodes α = k/n, k = 1 … n": d * left.mean(0),
        "α = (k − ½)/n are the midpoints; this exercise uses the right nodes α = k/n":
            d * _gradients(forward, _path(x, baseline, (k - 0.5) / n_steps)).mean(0),
        "the trapezoid rule; this exercise uses the right nodes α = k/n with equal weights 1/n":
            d * (left.sum(0) + right.sum(0)) / (2 * n_steps),
        "the gradient at x alone, (x − x′) ⊙ ∇F(x), is not the path average": d * _gradients(forward, x[None])[0],
        "gradients with respect to x through the path weigh point k by α_k; take them with respect to the path "
        "points themselves": d * ((k / n_steps)[:, None] * right).mean(0),
        "the α are float32 (torch.arange(1, n + 1) / n): give torch.arange dtype=x.dtype":
            d * _gradients(forward, _path(x, baseline, _float32_alphas(n_steps))).mean(0),
    }


def check_riemann_integrated_gradients(candidate: Callable, seed: int | None = None) -> None:
    """``candidate(forward, x (M,), baseline (M,), n_steps) -> attributions (M,)``: right-Riemann IG,
    (x − x′) ⊙ (1/n) Σ_k ∇F(x′ + (k/n)(x − x′)), where ``forward`` maps a batch ``(N, M)`` to ``(N,)`` — and
    ``forward`` must be called once, on all the ``n_steps`` path points together."""
    from bigtut.explain.integrated_gradients import integrated_gradients

    gen, seed = checker_generator(seed)
    name = "riemann_integrated_gradients"
    w1, w2 = random_float64(gen, 5, 8), random_float64(gen, 8)  # a small tanh network

    def forward(batch: torch.Tensor) -> torch.Tensor:  # (N, 5) -> (N,)
        return torch.tanh(batch @ w1) @ w2

    for n_steps in (7, 40, 1):
        x, baseline = random_float64(gen, 5), random_float64(gen, 5)
        expected = integrated_gradients(forward, x[None], baseline=baseline[None], n_steps=n_steps,
                                        method="riemann_right").attributions[0]  # (M,) float64 NumPy
        inputs = f"a tanh network of 5 inputs, non-zero baseline, n_steps={n_steps} (seed={seed})"
        recorded = RecordedCalls(forward)
        given = x.clone(), baseline.clone()
        got = guarded(name, f"riemann_integrated_gradients(forward, x, baseline, {n_steps}) for {inputs}", candidate,
                      recorded, *given, n_steps)
        assert_unchanged(name, inputs, {"x": (x, given[0]), "baseline": (baseline, given[1])})
        if isinstance(got, torch.Tensor):
            got = got.detach()
        assert_close_or_hint(got, expected, what=name, inputs=inputs, atol=1e-9, rtol=1e-8,
                             variants=partial(_ig_variants, forward, x, baseline, n_steps))
        assert_does_not_use(name, candidate, {
            "integrated_gradients": OWN_ANSWER.format("bigtut.explain's integrated_gradients"),
            "token_integrated_gradients": OWN_ANSWER.format("bigtut.explain's token_integrated_gradients"),
            "IntegratedGradients": OWN_ANSWER.format("captum's IntegratedGradients")})
        if recorded.shapes != [(n_steps, 5)]:
            raise CheckFailure(
                f"{name}: forward was called {len(recorded.shapes)} time(s) for {inputs}, on inputs of shape "
                f"{recorded.describe() or 'none'}; the exercise asks for ONE call of forward on all the path points, "
                f"a batch of shape ({n_steps}, 5): build the (n_steps, M) path, call forward(path) once and take the "
                f"gradient of its sum with respect to the path")
    passed(name, "right-Riemann IG on a small network, non-zero baselines")

PAD, CLS, SEP, MASK = 0, 1, 2, 3  # the tiny vocabulary's special ids; the words are 4 … V-1
N_CLASSES = 3


# ----------------------------------------------------------------- exercise 3, token IG: the random models
def _randint(gen: torch.Generator, low: int, high: int) -> int:
    return int(torch.randint(low, high + 1, (1,), generator=gen))


def _tiny_classifier(gen: torch.Generator):
    """A random float64 BERT classifier in eval mode: every parameter drawn from ``gen`` at a scale where the
    logits move with the tokens (the course's N(0, 0.02) initialisation leaves it nearly linear)."""
    from bigtut.bert import BertConfig, BertForSequenceClassification

    heads = _randint(gen, 1, 2)
    config = BertConfig(vocab_size=_randint(gen, 14, 20), max_len=10, d_model=4 * heads * _randint(gen, 1, 2),
                        num_layers=2, num_heads=heads, d_ff=16, dropout=0.1, pad_id=PAD, num_labels=N_CLASSES)
    with torch.random.fork_rng(devices=[]):  # building layers draws from torch's generator: keep the caller's
        model = BertForSequenceClassification(config).double().eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen, dtype=p.dtype)
            if "norm" in name and name.endswith("weight"):
                p.copy_(1 + 0.2 * noise)  # LayerNorm scales
            elif p.dim() == 1:
                p.copy_(0.2 * noise)  # biases
            elif "embeddings" in name:
                p.copy_(noise)  # token, position and segment tables
            else:
                p.copy_(noise / p.shape[1] ** 0.5)  # Linear weights (out, in)
    return model


def _texts(gen: torch.Generator, vocab_size: int, lengths: list[int], pad: int = PAD) -> tuple[torch.Tensor,
                                                                                                 torch.Tensor]:
    """``[CLS] words [SEP]`` rows padded on the right with ``pad`` ([PAD]): ``(ids (B, L), real (B, L) bool)``."""
    L = max(lengths)
    ids = torch.full((len(lengths), L), pad)
    for row, length in enumerate(lengths):
        ids[row, 0], ids[row, length - 1] = CLS, SEP
        ids[row, 1:length - 1] = torch.randint(MASK + 1, vocab_size, (length - 2,), generator=gen)
    return ids, torch.arange(L)[None] < torch.tensor(lengths)[:, None]


def _baseline(ids: torch.Tensor, real: torch.Tensor, fill: torch.Tensor | int) -> torch.Tensor:
    """The baseline ids: ``fill`` at the real words, [CLS], [SEP] and the padding kept."""
    words = real & (ids != CLS) & (ids != SEP)
    return torch.where(words, torch.as_tensor(fill).expand_as(ids), ids)


def _cases(gen: torch.Generator, model) -> list[tuple[str, torch.Tensor, torch.Tensor, torch.Tensor, int]]:
    """``(description, input_ids, attention_mask, baseline_ids, n_steps)`` for one model."""
    V = model.config.vocab_size
    length = _randint(gen, 6, 8)
    one, one_real = _texts(gen, V, [length, length])
    batch, batch_real = _texts(gen, V, [_randint(gen, 7, 9), _randint(gen, 3, 4), _randint(gen, 5, 6)])
    # padded with a word's id, as tokenizers without a [PAD] token do: the mask, not the ids, says what is padding
    other, other_real = _texts(gen, V, [_randint(gen, 4, 5), _randint(gen, 7, 9), _randint(gen, 6, 7)], pad=V - 1)
    random_ids = torch.randint(MASK + 1, V, other.shape, generator=gen)
    return [
        (f"two texts of {one.shape[1]} tokens without padding, a [MASK] baseline ([CLS], [SEP] kept), n_steps=6",
         one, one_real.long(), _baseline(one, one_real, MASK), 6),
        (f"a padded batch of 3 texts of {batch_real.sum(1).tolist()} tokens (bool attention_mask), a [PAD] "
         f"baseline ([CLS], [SEP] kept), n_steps=7", batch, batch_real, _baseline(batch, batch_real, PAD), 7),
        (f"a batch of 3 texts of {other_real.sum(1).tolist()} tokens padded with the word id {V - 1} (0/1 "
         f"attention_mask), a baseline of random words ([CLS], [SEP] kept), n_steps=5", other, other_real.long(),
         _baseline(other, other_real, random_ids), 5),
    ]


# ------------------------------------------------------------------------------------ the reference and its mistakes
def _reference(model, ids, mask, target, baseline_ids, n_steps) -> torch.Tensor:
    """bigtut's token IG with its defaults: ``(B, L)`` float64."""
    from bigtut.explain import token_integrated_gradients

    result = token_integrated_gradients(model, ids, mask, target=target, baseline=baseline_ids, n_steps=n_steps)
    return torch.as_tensor(result.attributions)


def _rule(rule: str, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Nodes and weights ``(n,), (n,)``: a rule of bigtut, or a wrong Gauss–Legendre."""
    from bigtut.explain import integration_rule

    nodes, weights = (torch.as_tensor(v) for v in np.polynomial.legendre.leggauss(n))  # on [-1, 1]
    alphas, equal = (nodes + 1) / 2, torch.full((n,), 1 / n)  # (n,), (n,)
    wrong = {"gl_unmapped": (nodes, weights), "gl_equal": (alphas, equal), "gl_unhalved": (alphas, weights),
             "gl_unweighted": (alphas, torch.ones(n)), "gl_mean": (alphas, weights / 2 / n),
             "linspace": (torch.linspace(0, 1, n), equal)}
    alphas, weights = wrong[rule] if rule in wrong else integration_rule(rule, n)
    return alphas.double(), weights.double()


def _average_gradient(model, ids, mask, target, baseline_ids, n_steps, *, rule: str = "gausslegendre",
                      embed: str = "token", rows: str | None = "example", output: str = "logit",
                      through_x: bool = False, round_ids: Callable | None = None, zero_baseline: bool = False,
                      step: str = "difference") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(x (B, L, d), x′ (B, L, d), Σ_k w_k ∇F(path point k) (B, L, d))`` — the right computation, or one of the
    usual mistakes: another ``rule``; ``embed="full"`` (token + position + segment interpolated) or ``"module"``
    (the embedding module's LayerNorm'd output); mask ``rows`` repeated in the other order (``"step"``) or left out
    (None); another ``output``; ``through_x`` (the gradient of
    Σ_k w_k F with respect to x weighs point k by α_k); ``round_ids`` (token ids interpolated, then rounded);
    ``zero_baseline`` (zero embeddings instead of the baseline ids); ``step="input"`` (the path x′ + α·x)."""
    B, L = ids.shape
    table = model.get_input_embeddings()
    bert = model.bert

    def embedded(token_ids: torch.Tensor) -> torch.Tensor:  # (N, L) -> (N, L, d)
        e = table(token_ids)
        if embed == "full":
            segments = torch.zeros_like(token_ids)
            return e + bert.embeddings.position(torch.arange(L)) + bert.embeddings.segment(segments)
        if embed == "module":
            return bert.embeddings(e, torch.zeros_like(token_ids))
        return e

    alphas, weights = _rule(rule, n_steps)  # (n,), (n,)
    if through_x:
        weights = weights * alphas
    n = len(alphas)
    with torch.no_grad():
        x, x_base = embedded(ids), embedded(baseline_ids)  # (B, L, d), (B, L, d)
        if zero_baseline:
            x_base = torch.zeros_like(x)
        if round_ids is None:
            path = x_base[:, None] + alphas.view(1, n, 1, 1) * (x - x_base if step == "difference" else x)[:, None]
        else:
            between = baseline_ids[:, None] + alphas.view(1, n, 1) * (ids - baseline_ids)[:, None]  # (B, n, L)
            path = embedded(round_ids(between).long().reshape(B * n, L)).view(B, n, L, -1)
    path = path.reshape(B * n, L, -1).requires_grad_(True)  # (B*n, L, d): example-major rows
    mask = torch.as_tensor(mask).bool()
    row_mask = {"example": mask.repeat_interleave(n, 0), "step": mask.repeat(n, 1), None: None}[rows]  # (B*n, L)
    with torch.enable_grad():
        logits = model(inputs_embeds=path, attention_mask=row_mask)  # (B*n, C)
        with torch.no_grad():
            predicted = model(ids, mask).argmax(-1).repeat_interleave(n)  # (B*n,)
        explained = {"logit": lambda: logits[:, target], "probability": lambda: logits.softmax(-1)[:, target],
                     "log_probability": lambda: logits.log_softmax(-1)[:, target],
                     "sum": lambda: logits.sum(-1), "path_argmax": lambda: logits.max(-1).values,
                     "input_argmax": lambda: logits.gather(1, predicted[:, None])[:, 0]}[output]()  # (B*n,)
        (grads,) = torch.autograd.grad(explained.sum(), path)  # (B*n, L, d)
    average = (weights.view(1, n, 1, 1) * grads.view(B, n, L, -1)).sum(1)  # (B, L, d)
    return x, x_base, average


def _token_ig(*args: Any, **mistake: Any) -> torch.Tensor:
    """Token attributions ``(B, L)``: Σ_d (x − x′) ⊙ average gradient, with one of the mistakes of
    :func:`_average_gradient`."""
    x, x_base, average = _average_gradient(*args, **mistake)
    return ((x - x_base) * average).sum(-1)


def _step_major_variant(model, ids, mask, target, baseline_ids, n_steps) -> torch.Tensor:
    """A path in step-major rows (row k·B + b) with the mask repeated per example (row r gets example r // n)."""
    B, L = ids.shape
    alphas, weights = _rule("gausslegendre", n_steps)
    table = model.get_input_embeddings()
    with torch.no_grad():
        x, x_base = table(ids), table(baseline_ids)
    path = (x_base[None] + alphas.view(-1, 1, 1, 1) * (x - x_base)[None]).reshape(n_steps * B, L, -1)
    path.requires_grad_(True)
    with torch.enable_grad():
        logits = model(inputs_embeds=path, attention_mask=torch.as_tensor(mask).bool().repeat_interleave(n_steps, 0))
        (grads,) = torch.autograd.grad(logits[:, target].sum(), path)
    average = (weights.view(-1, 1, 1, 1) * grads.view(n_steps, B, L, -1)).sum(0)
    return ((x - x_base) * average).sum(-1)


def _variants(model, ids, mask, target, baseline_ids, n_steps) -> dict[str, Callable[[], torch.Tensor]]:
    """What the usual wrong answers return ``(B, L)``, each computed only when asked for (first match is named)."""
    args = (model, ids, mask, target, baseline_ids, n_steps)
    right = partial(_average_gradient, *args)
    real = torch.as_tensor(mask).bool()
    keep = (ids == CLS) | (ids == SEP) | ~real

    def times(reduce: Callable, factor: str = "difference") -> torch.Tensor:
        x, x_base, average = right()
        return reduce({"difference": x - x_base, "input": x}[factor] * average)

    def rule(name: str) -> Callable[[], torch.Tensor]:
        return lambda: _token_ig(*args, rule=name)

    def baseline(ids_: torch.Tensor) -> Callable[[], torch.Tensor]:
        return lambda: _token_ig(model, ids, mask, target, ids_, n_steps)

    return {
        "every score is 0 — the usual causes: the (x − x′) factor is missing (the gradient alone sums to 0 over d: "
        "the first LayerNorm ignores a shift of all d coordinates); the mask hides the tokens (1/True marks a real "
        "token, as in Hugging Face, not key_padding_mask's True = ignore); the mask hides the positions where the "
        "baseline is [PAD] (the baseline's tokens stay attended all along the path, only the padding is masked)":
            lambda: torch.zeros_like(ids, dtype=torch.float64),
        "x ⊙ gradient: multiply by (x − x′), the input's minus the baseline's token embeddings, not by the input's "
        "embeddings alone": lambda: times(lambda a: a.sum(-1), "input"),
        "the sign is flipped: the factor is (x − x′), the input's embeddings minus the baseline's":
            lambda: -times(lambda a: a.sum(-1)),
        "|·| summed over d: a token's score is the plain (signed) sum of its d coordinates' attributions":
            lambda: times(lambda a: a.abs().sum(-1)),
        "the norm over d: a token's score is the (signed) sum of its d coordinates' attributions, not their length":
            lambda: times(lambda a: a.norm(dim=-1)),
        "the mean over d: sum a token's d coordinates' attributions, do not average them":
            lambda: times(lambda a: a.mean(-1)),
        "the token ids were interpolated and rounded: ids are integers with no path between them; interpolate "
        "their embeddings, model.get_input_embeddings()(ids)": lambda: _token_ig(*args, round_ids=torch.round),
        "the token ids were interpolated and truncated (.long()): ids are integers with no path between them; "
        "interpolate their embeddings, model.get_input_embeddings()(ids)":
            lambda: _token_ig(*args, round_ids=torch.trunc),
        "the position and segment embeddings were interpolated too, and the model adds them again: interpolate only "
        "the token embeddings, model.get_input_embeddings()(ids)": lambda: _token_ig(*args, embed="full"),
        "the embedding module's output (token + position + segment, LayerNorm) was interpolated: inputs_embeds are "
        "the token embeddings alone, model.get_input_embeddings()(ids)": lambda: _token_ig(*args, embed="module"),
        "the baseline ids given were not used: the baseline is [PAD] everywhere instead":
            baseline(torch.where(real, torch.full_like(ids, PAD), ids)),
        "the baseline ids given were not used: the baseline is [PAD] (with [CLS], [SEP] kept) instead":
            baseline(torch.where(keep, ids, torch.full_like(ids, PAD))),
        "the baseline ids given were not used: the baseline is [MASK] (with [CLS], [SEP] kept) instead":
            baseline(torch.where(keep, ids, torch.full_like(ids, MASK))),
        "the baseline ids given were not used: the baseline is zero embeddings instead":
            lambda: _token_ig(*args, zero_baseline=True),
        "the gradients were taken with respect to x through the path, which weighs point k by α_k: take them with "
        "respect to the path points themselves": lambda: _token_ig(*args, through_x=True),
        "the path x′ + α·x: a path point is x′ + α(x − x′), from the baseline's embeddings to the input's":
            lambda: _token_ig(*args, step="input"),
        "Gauss–Legendre with n_steps + 1 nodes: take exactly n_steps, leggauss(n_steps)":
            lambda: _token_ig(model, ids, mask, target, baseline_ids, n_steps + 1),
        "Gauss–Legendre with n_steps − 1 nodes: take exactly n_steps, leggauss(n_steps)":
            lambda: _token_ig(model, ids, mask, target, baseline_ids, n_steps - 1),
        "the left Riemann sum (α = 0 … (n−1)/n); bigtut's default, and this exercise's, is Gauss–Legendre":
            rule("riemann_left"),
        "the right Riemann sum (α = 1/n … 1); bigtut's default, and this exercise's, is Gauss–Legendre":
            rule("riemann_right"),
        "the midpoint rule (α = (k − ½)/n); bigtut's default, and this exercise's, is Gauss–Legendre":
            rule("riemann_middle"),
        "the trapezoid rule; bigtut's default, and this exercise's, is Gauss–Legendre": rule("riemann_trapezoid"),
        "α = linspace(0, 1, n) with equal weights 1/n; bigtut's default, and this exercise's, is Gauss–Legendre":
            rule("linspace"),
        "Gauss–Legendre nodes and weights left on [−1, 1]: map them to [0, 1], α = (t + 1)/2 and w/2":
            rule("gl_unmapped"),
        "Gauss–Legendre nodes with equal weights 1/n: each node has its own weight (w/2 on [0, 1])":
            rule("gl_equal"),
        "the Gauss–Legendre weights sum to 2 on [−1, 1]: halve them with the nodes' map to [0, 1]":
            rule("gl_unhalved"),
        "Gauss–Legendre without its weights: the gradient at node k counts w_k (w/2 on [0, 1]), not 1":
            rule("gl_unweighted"),
        "the weighted gradients were averaged over the nodes: the weights already sum to 1; sum w_k ∇F":
            rule("gl_mean"),
        "the mean of the target logits scales every gradient by 1/(B·n_steps): take the gradient of their sum":
            lambda: _token_ig(*args) / (ids.shape[0] * n_steps),
        "the logit of the predicted class at each path point: explain the logit of the class `target` given":
            lambda: _token_ig(*args, output="path_argmax"),
        "the logit of the class predicted for the input: explain the logit of the class `target` given":
            lambda: _token_ig(*args, output="input_argmax"),
        "the probability of `target` (softmax): explain its logit": lambda: _token_ig(*args, output="probability"),
        "the log-probability of `target` (log_softmax): explain its logit":
            lambda: _token_ig(*args, output="log_probability"),
        "the sum of all the logits: explain the logit of the class `target`, logits[:, target]":
            lambda: _token_ig(*args, output="sum"),
        "no attention_mask was given to the model: the padding was attended (or the mask was recomputed from the "
        "ids, input_ids != [PAD] — a batch may be padded with another id: use the attention_mask given); repeat "
        "the mask along the path with the path points": lambda: _token_ig(*args, rows=None),
        "the mask rows do not follow the path rows: path row b·n + k belongs to example b (mask.repeat_interleave("
        "n_steps, 0)), but the mask was tiled (mask.repeat(n_steps, 1))": lambda: _token_ig(*args, rows="step"),
        "the mask rows do not follow the path rows: path row k·B + b belongs to example b (mask.repeat(n_steps, "
        "1)), but the mask was repeated per example (mask.repeat_interleave(n_steps, 0))":
            partial(_step_major_variant, *args),
    }


# ------------------------------------------------------------------------------------------------------ checker
def _record_passes(model) -> tuple[RecordedCalls, Callable[[], None]]:
    """Record the shape of what every pass through the encoder is fed (``inputs_embeds`` ``(N, L, d)`` or ids
    ``(N, L)``); the returned function stops recording."""
    calls = RecordedCalls(lambda first: None)

    def hook(module, args, kwargs):
        embeds = kwargs.get("inputs_embeds")
        fed = embeds if isinstance(embeds, torch.Tensor) else (args[0] if args else kwargs.get("input_ids"))
        calls(fed)

    handle = model.bert.register_forward_pre_hook(hook, with_kwargs=True)
    return calls, handle.remove


def _shape_failure(name: str, got: Any, B: int, L: int, d: int, inputs: str) -> None:
    """A clear message for the usual wrong shapes and types of the answer."""
    if isinstance(got, (tuple, list)) and got and isinstance(got[0], torch.Tensor):
        raise CheckFailure(f"{name}: returned a {type(got).__name__} of {len(got)} for {inputs}; return only the "
                           f"({B}, {L}) tensor of token attributions")
    shape = tuple(got.shape) if isinstance(got, (torch.Tensor, np.ndarray)) else None
    if shape == (B, L):
        return
    if shape == (B, L, d):
        raise CheckFailure(f"{name}: shape {shape} for {inputs}: these are per-coordinate attributions; sum them "
                           f"over the embedding dimension d (the last) to get one score per token ({B}, {L})")
    if shape in ((B, d), (B,)):
        raise CheckFailure(f"{name}: shape {shape} for {inputs}, expected ({B}, {L}): the sum runs over the "
                           f"embedding dimension d only, one score per token")


def check_token_ig(candidate: Callable, seed: int | None = None) -> None:
    """``candidate(model, input_ids (B, L), attention_mask (B, L), target, baseline_ids (B, L), n_steps) ->
    (B, L)``: Integrated Gradients of the logit ``target`` along the token embeddings, from
    ``model.get_input_embeddings()(baseline_ids)`` to ``(...)(input_ids)``, with Gauss–Legendre nodes and weights,
    the attention mask repeated with the path, and ONE ``model(inputs_embeds=..., attention_mask=...)`` call on all
    the ``B·n_steps`` points; the attributions summed over the embedding dimension. It must equal
    ``bigtut.explain.token_integrated_gradients(model, input_ids, attention_mask, target=target,
    baseline=baseline_ids, n_steps=n_steps).attributions``."""
    gen, seed = checker_generator(seed)
    name = "token_ig"
    if not callable(candidate):
        raise CheckFailure(f"{name}: expected a function, got {_describe(candidate)}")
    model = _tiny_classifier(gen)
    d = model.config.d_model
    for description, ids, mask, baseline_ids, n_steps in _cases(gen, model):
        with torch.no_grad():
            target = int(model(ids, mask)[0].argmin())  # not the predicted class, at least in the first row
        inputs = (f"a random BERT classifier (d_model={d}), {description}, target={target} (seed={seed})")
        expected = _reference(model, ids, mask, target, baseline_ids, n_steps)  # (B, L)
        given = ids.clone(), mask.clone(), baseline_ids.clone()
        weights = {key: value.clone() for key, value in model.state_dict().items()}
        trainable = {key: p.requires_grad for key, p in model.named_parameters()}
        calls, stop = _record_passes(model)
        try:
            got = guarded(name, f"token_ig(model, input_ids, attention_mask, {target}, baseline_ids, {n_steps}) for "
                                f"{inputs}", candidate, model, *given[:2], target, given[2], n_steps)
        finally:
            stop()
        assert_unchanged(name, inputs, {"input_ids": (ids, given[0]), "attention_mask": (mask, given[1]),
                                        "baseline_ids": (baseline_ids, given[2])})
        changed = [key for key, value in model.state_dict().items() if not torch.equal(value, weights[key])]
        frozen = [key for key, p in model.named_parameters() if p.requires_grad != trainable[key]]
        if changed or model.training or frozen:
            model.load_state_dict(weights)
            for key, p in model.named_parameters():
                p.requires_grad_(trainable[key])
            raise CheckFailure(f"{name}: changed the model for {inputs} ("
                               + (f"its weights {', '.join(changed[:3])}" if changed else
                                  f"the requires_grad of its parameters {', '.join(frozen[:3])}" if frozen else
                                  "it is in training mode now")
                               + "); leave the model as it is: compute new tensors instead, and do not call "
                                 "model.train() or requires_grad_() on the model (the gradient is taken with "
                                 "respect to the path alone)")
        if isinstance(got, torch.Tensor):
            got = got.detach()
        _shape_failure(name, got, *ids.shape, d, inputs)
        assert_close_or_hint(got, expected, what=name, inputs=inputs, atol=1e-8, rtol=1e-6,
                             variants=partial(_variants, model, ids, mask, target, baseline_ids, n_steps))
        assert_does_not_use(name, candidate, {
            "token_integrated_gradients": OWN_ANSWER.format("bigtut.explain's token_integrated_gradients"),
            "integrated_gradients": OWN_ANSWER.format("bigtut.explain's integrated_gradients"),
            "IntegratedGradients": OWN_ANSWER.format("captum's IntegratedGradients"),
            "LayerIntegratedGradients": OWN_ANSWER.format("captum's LayerIntegratedGradients")})
        B, L = ids.shape
        if calls.shapes != [(B * n_steps, L, d)]:
            raise CheckFailure(
                f"{name}: the model ran {len(calls.shapes)} time(s) for {inputs}, on inputs of shape "
                f"{calls.describe() or 'none'}; the exercise asks for ONE pass on all the path points together: "
                f"build the ({B * n_steps}, {L}, {d}) path of every example's {n_steps} points, call "
                f"model(inputs_embeds=path, attention_mask=...) once and take the gradient of the target logits' "
                f"sum with respect to the path")
    passed(name, "Gauss–Legendre IG along the token embeddings of random tiny BERT classifiers, a batch without "
                 "padding and two padded batches, three given baselines")
