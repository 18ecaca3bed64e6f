"""Checker for notebook 08's token exercise: Integrated Gradients through ``inputs_embeds`` on the course's BERT.

Shape legend:  B batch   n integration steps   L positions   d d_model   C classes

``check_token_ig(candidate)`` holds ``candidate(model, input_ids, attention_mask, target, baseline_ids, n_steps)``
to :func:`bigtut.explain.token_integrated_gradients` with its defaults (Gauss–Legendre nodes and weights), on
random tiny :class:`bigtut.bert.BertForSequenceClassification` models in float64: a batch without padding, and
two padded batches with their attention masks, against three baselines given as ids ([MASK], [PAD], random
tokens). It names the usual mistakes:

* the attribution: (x − x′) left out (all scores 0) or replaced by x, the sign flipped, |·|, the norm or the mean
  over ``d`` instead of the sum, per-coordinate ``(B, L, d)`` scores left unsummed;
* the path: token ids interpolated instead of embeddings, position and segment embeddings interpolated too,
  gradients taken through ``x`` (each point weighed by its α), the baseline ids ignored ([PAD] or zeros instead);
* the rule: the Riemann sums and the trapezoid instead of Gauss–Legendre, Gauss–Legendre left on [−1, 1] or with
  equal weights or weights that sum to 2;
* the output: the predicted class instead of ``target``, its probability or log-probability, the sum of the logits;
* the mask: none, rows that do not follow the path's rows, inverted (1 = ignore), the baseline's [PAD] hidden;
* the one batched pass: the model must run once, on all ``B·n`` path points together; the arguments and the model
  must come back unchanged, and the course's own answer (``token_integrated_gradients``, captum) is refused.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
import torch

from bigtut.checks.core import CheckFailure, _describe, checker_generator, guarded, passed
from bigtut.checks.explain import (
    OWN_ANSWER,
    RecordedCalls,
    assert_close_or_hint,
    assert_does_not_use,
    assert_not_modified,
)

__all__ = ["check_token_ig"]

PAD, CLS, SEP, MASK = 0, 1, 2, 3  # the tiny vocabulary's special ids; the words are 4 … V-1
N_CLASSES = 3


# ------------------------------------------------------------------------------------------ the random models
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


def _texts(gen: torch.Generator, vocab_size: int, lengths: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """``[CLS] words [SEP]`` rows padded on the right with [PAD]: ``(ids (B, L), real (B, L) bool)``."""
    L = max(lengths)
    ids = torch.full((len(lengths), L), PAD)
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
    other, other_real = _texts(gen, V, [_randint(gen, 4, 5), _randint(gen, 7, 9), _randint(gen, 6, 7)])
    random_ids = torch.randint(MASK + 1, V, other.shape, generator=gen)
    return [
        (f"two texts of {one.shape[1]} tokens without padding, a [MASK] baseline ([CLS], [SEP] kept), n_steps=6",
         one, one_real.long(), _baseline(one, one_real, MASK), 6),
        (f"a padded batch of 3 texts of {batch_real.sum(1).tolist()} tokens (bool attention_mask), a [PAD] "
         f"baseline ([CLS], [SEP] kept), n_steps=7", batch, batch_real, _baseline(batch, batch_real, PAD), 7),
        (f"a padded batch of 3 texts of {other_real.sum(1).tolist()} tokens (0/1 attention_mask), a baseline of "
         f"random words ([CLS], [SEP] kept), n_steps=5", other, other_real.long(),
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
                      through_x: bool = False, round_ids: Callable | None = None, zero_baseline: bool = False
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(x (B, L, d), x′ (B, L, d), Σ_k w_k ∇F(path point k) (B, L, d))`` — the right computation, or one of the
    usual mistakes: another ``rule``; ``embed="full"`` (token + position + segment interpolated) or ``"module"``
    (the embedding module's LayerNorm'd output); mask ``rows`` repeated in the other order (``"step"``) or left out
    (None); another ``output``; ``through_x`` (the gradient of
    Σ_k w_k F with respect to x weighs point k by α_k); ``round_ids`` (token ids interpolated, then rounded);
    ``zero_baseline`` (zero embeddings instead of the baseline ids)."""
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
            path = x_base[:, None] + alphas.view(1, n, 1, 1) * (x - x_base)[:, None]  # (B, n, L, d)
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
        "the baseline ids given were not used: the baseline is zero embeddings instead":
            lambda: _token_ig(*args, zero_baseline=True),
        "the gradients were taken with respect to x through the path, which weighs point k by α_k: take them with "
        "respect to the path points themselves": lambda: _token_ig(*args, through_x=True),
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
        "no attention_mask was given to the model: the padding was attended; repeat the mask along the path with "
        "the path points": lambda: _token_ig(*args, rows=None),
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
        calls, stop = _record_passes(model)
        try:
            got = guarded(name, f"token_ig(model, input_ids, attention_mask, {target}, baseline_ids, {n_steps}) for "
                                f"{inputs}", candidate, model, *given[:2], target, given[2], n_steps)
        finally:
            stop()
        assert_not_modified(name, inputs, {"input_ids": (ids, given[0]), "attention_mask": (mask, given[1]),
                                           "baseline_ids": (baseline_ids, given[2])})
        changed = [key for key, value in model.state_dict().items() if not torch.equal(value, weights[key])]
        if changed or model.training:
            model.load_state_dict(weights)
            raise CheckFailure(f"{name}: changed the model for {inputs} ("
                               + (f"its weights {', '.join(changed[:3])}" if changed else "it is in training mode now")
                               + "); leave the model as it is: compute new tensors instead, and do not call "
                                 "model.train()")
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
