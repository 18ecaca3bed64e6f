"""Explaining what a language model writes: per-step attributions of a continuation (teacher forcing).

Shape legend:  B batch   P prompt tokens   T continuation tokens   L = P + T positions   S explained steps
               n integration steps   N rows sent to the model   d d_model   V vocabulary

The prompt ``input_ids`` ``(B, P)`` is followed by the continuation ``target`` ``(B, T)`` (what the model
wrote, e.g. by ``GPT.generate``). Step ``t`` explains ::

    F_t(x) = log p(target[t] | prompt, target[:t])          or, with contrast=,   log p(target[t]) − log p(contrast[t])

read from the model's logits at position ``P + t − 1``: one forward pass over the ``L`` tokens gives every
step's number (causal attention). Step ``t``'s scores cover positions ``0 .. P+t−1`` (the prompt and the
tokens written before it); later positions are exactly 0, so ``attributions`` ``(B, S, L)`` is lower
triangular, as inseq draws it. ``steps=None`` explains every step, else the listed step indices, in order.
``probabilities=True`` explains ``p`` instead of ``log p`` (captum's ``attr_target="prob"``).

Rows are unpadded: every row of a batch has the same ``P`` and ``T`` (an ``attention_mask`` with a 0 is
refused; explain texts of other lengths in separate calls). The results are float64 NumPy.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import torch

from bigtut.explain.arguments import (
    check_budget,
    check_flag,
    check_token_id,
    input_embeddings,
    resolve_batch_size,
    resolve_pad_id,
    resolve_seed,
    vocab_size_of,
)
from bigtut.explain.common import as_numpy, delete_tokens, logits_of
from bigtut.explain.generation_task import GenerationTask, checked_ids, generation_task
from bigtut.explain.integrated_gradients import integration_rule
from bigtut.explain.shap import MAX_EXACT_PLAYERS, exact_game, kernel_budget, kernel_game
from bigtut.explain.shap_tokens import ABSENT_MODES

__all__ = ["GenerationIGResult", "GenerationOcclusionResult", "GenerationShapResult", "generation_integrated_gradients",
           "generation_kernel_shap", "generation_occlusion"]


class GenerationIGResult(NamedTuple):
    """``attributions`` ``(B, S, L)``, the completeness gap ``delta`` ``(B, S)`` = Σ_positions attributions −
    (F_t(x) − F_t(x')), the explained ``output`` F_t(x) ``(B, S)`` and the explained ``steps`` ``(S,)``."""

    attributions: np.ndarray
    delta: np.ndarray
    output: np.ndarray
    steps: np.ndarray


class GenerationOcclusionResult(NamedTuple):
    """``attributions`` ``(B, S, L)`` = F_t(x) − F_t(x without the token), ``output`` F_t(x) ``(B, S)``,
    ``steps`` ``(S,)`` and ``n_evaluations`` (model rows used)."""

    attributions: np.ndarray
    output: np.ndarray
    steps: np.ndarray
    n_evaluations: int


class GenerationShapResult(NamedTuple):
    """Shapley values of the prompt tokens ``attributions`` ``(B, S, L)`` (0 at the continuation), each step's
    value with every prompt player absent ``base_value`` ``(B, S)``, ``output`` F_t(x) ``(B, S)``, ``steps``
    ``(S,)`` and ``n_evaluations``; ``attributions.sum(-1) == output − base_value`` (efficiency)."""

    attributions: np.ndarray
    base_value: np.ndarray
    output: np.ndarray
    steps: np.ndarray
    n_evaluations: int


def _read(logits: torch.Tensor, where: torch.Tensor, a: torch.Tensor, b: torch.Tensor | None,
          probabilities: bool) -> torch.Tensor:
    """F of each row and step ``(N, S)``: ``log p(a) [− log p(b)]`` (or ``p(a) [− p(b)]``) from ``logits``
    ``(N, L, V)`` read at ``where`` ``(N, S)``; ``a``, ``b`` ``(N, S)``."""
    rows = torch.arange(len(logits), device=logits.device)[:, None]  # (N, 1)
    log_p = logits[rows, where].log_softmax(-1)  # (N, S, V)
    log_p = log_p.exp() if probabilities else log_p
    out = log_p.gather(-1, a[..., None])[..., 0]  # (N, S)
    return out if b is None else out - log_p.gather(-1, b[..., None])[..., 0]


def _scores(model: Any, task: GenerationTask, rows: torch.Tensor, seen: torch.Tensor | None = None,
            where: torch.Tensor | None = None, example: torch.Tensor | None = None) -> torch.Tensor:
    """F ``(N, S)`` of ``rows`` (ids ``(N, L)`` or embeddings ``(N, L, d)``) of examples ``example`` ``(N,)``."""
    N = len(rows)
    example = torch.zeros(N, dtype=torch.long, device=rows.device) if example is None else example
    kwargs = {} if seen is None else {"attention_mask": seen.long()}
    out = model(inputs_embeds=rows, **kwargs) if rows.is_floating_point() else model(rows, **kwargs)
    where = (task.P - 1 + task.steps).expand(N, -1) if where is None else where  # (N, S)
    return _read(logits_of(out, N), where, task.a[example], None if task.b is None else task.b[example],
                 task.probabilities)


def _causal(task: GenerationTask, L: int) -> torch.Tensor:
    """``(S, L)`` True where a step may have a score: positions before the token it explains."""
    return torch.arange(L, device=task.ids.device)[None, :] < (task.P + task.steps)[:, None]


def generation_integrated_gradients(model: torch.nn.Module, input_ids: torch.Tensor,
                                    attention_mask: torch.Tensor | None = None, *, target: torch.Tensor | None = None,
                                    contrast: torch.Tensor | None = None, steps: Sequence[int] | None = None,
                                    baseline: str | int | torch.Tensor = "pad", pad_id: int | None = None,
                                    prompt_only: bool = False, n_steps: int = 50, method: str = "gausslegendre",
                                    captum_compatible: bool = False, batch_size: int | None = None,
                                    probabilities: bool = False) -> GenerationIGResult:
    """Integrated Gradients of each step's F_t along the token embeddings of prompt + continuation.

    One straight path from the baseline's embeddings to the text's serves every step (F_t ignores positions
    ``>= P+t``); each path point is one forward pass, then one backward pass per explained step. Scores are
    summed over ``d``. ``baseline`` (IG's reference, as ids): ``"pad"`` (``pad_id``, default
    ``model.config.pad_id``), ``"zero"`` (zero embeddings), an int (one id everywhere; captum's default is 0)
    or ``(B, L)`` ids. By default the tokens written before step ``t`` are inputs of step ``t`` like the
    prompt: they start at the baseline too and get scores. ``prompt_only=True`` keeps them as written (only the
    prompt moves; their score is 0) — what captum's ``LLMGradientAttribution`` does. With ``prompt_only=True``,
    ``baseline=0``, ``captum_compatible=True`` (captum's float32 quadrature weights) this equals
    ``LLMGradientAttribution(LayerIntegratedGradients(model, <token embedding>), tokenizer).attribute(
    TextTokenInput(prompt, tokenizer), target=ids).token_attr`` at the prompt positions.

    Returns :class:`GenerationIGResult`. ``n_steps``, ``method``, ``batch_size`` (path points per call) as
    :func:`~bigtut.explain.integrated_gradients.integrated_gradients`; the parameters' ``.grad`` stay untouched.
    """
    task = generation_task(model, input_ids, attention_mask, target, contrast, steps, probabilities)
    embedding, prompt_only = input_embeddings(model), check_flag("prompt_only", prompt_only)
    chunk = resolve_batch_size(batch_size)
    alphas, weights = integration_rule(method, n_steps, captum_compatible=captum_compatible)  # (n,), (n,)
    ids, (B, L), S = task.ids, task.ids.shape, len(task.steps)
    vocab = embedding.num_embeddings
    if isinstance(baseline, str):
        if baseline not in ("pad", "zero"):
            raise ValueError(f"baseline must be 'pad', 'zero', a token id or (B, L) ids, got {baseline!r}")
        fill = 0 if baseline == "zero" else resolve_pad_id(model, pad_id, vocab)
        if fill is None:
            raise ValueError("baseline='pad' needs pad_id= (this model's config has no pad_id); or use a token id, "
                             "e.g. baseline=0 (captum's default)")
        base_ids = torch.full_like(ids, fill)  # (B, L)
    elif isinstance(baseline, (int, np.integer)) and not isinstance(baseline, (bool, np.bool_)):
        base_ids = torch.full_like(ids, check_token_id("baseline", baseline, vocab))  # (B, L)
    elif isinstance(baseline, torch.Tensor):
        base_ids = checked_ids("baseline", baseline, B, L, vocab, f"baseline ids ({B}, {L})").to(ids.device)
    else:
        raise TypeError(f"baseline must be 'pad', 'zero', a token id or (B, L) ids, got {type(baseline).__name__}")
    with torch.no_grad():
        x, x_base = embedding(ids), embedding(base_ids)  # (B, L, d), (B, L, d)
        if isinstance(baseline, str) and baseline == "zero":
            x_base = torch.zeros_like(x)
        if prompt_only:
            x_base[:, task.P:] = x[:, task.P:]  # the written tokens keep their embedding
        examples = torch.arange(B, device=ids.device)
        ends = [torch.cat([_scores(model, task, e[i:i + chunk], example=examples[i:i + chunk])
                           for i in range(0, B, chunk)]) for e in (x, x_base)]  # 2 x (B, S)
    n = len(alphas)
    alpha, weight = alphas.to(x), weights.to(x)  # (n,), (n,)
    path = (x_base[:, None] + alpha[None, :, None, None] * (x - x_base)[:, None]).reshape(B * n, L, -1)  # (B*n, L, d)
    row_example, row_node = examples.repeat_interleave(n), torch.arange(n, device=ids.device).repeat(B)  # (B*n,) x 2
    average = torch.zeros(B, S, *x.shape[1:], dtype=x.dtype, device=x.device)  # (B, S, L, d)
    for i in range(0, B * n, chunk):
        rows = path[i:i + chunk].detach().requires_grad_(True)  # (N, L, d)
        example, node = row_example[i:i + chunk], row_node[i:i + chunk]  # (N,), (N,)
        with torch.enable_grad():
            out = _scores(model, task, rows, example=example)  # (N, S)
            for s in range(S):
                grad = torch.autograd.grad(out[:, s].sum(), rows, retain_graph=s < S - 1)[0]  # (N, L, d)
                average[:, s].index_add_(0, example, weight[node][:, None, None] * grad)
    if not bool(torch.isfinite(average).all()):
        raise ValueError("the model's gradient is NaN or inf on the path; Integrated Gradients is undefined there")
    attributions = (average * (x - x_base)[:, None]).sum(-1) * _causal(task, L)  # (B, S, L)
    delta = attributions.sum(-1) - (ends[0] - ends[1])  # (B, S)
    return GenerationIGResult(as_numpy(attributions), as_numpy(delta), as_numpy(ends[0]), task.steps.cpu().numpy())


def _absent_model(model: Any, task: GenerationTask, absent: str, mask_id: Any, pad_id: Any, batch_size: Any):
    """Checks the perturbation arguments; returns ``values(present (N, L) bool, example (N,)) -> (N, S)``: F of
    each example's text with the tokens not ``present`` masked, hidden (``"pad"``) or deleted."""
    if absent not in ABSENT_MODES:
        raise ValueError(f"absent must be one of {ABSENT_MODES}, got {absent!r}")
    vocab = vocab_size_of(model)
    if absent == "mask":
        if mask_id is None:
            raise ValueError("absent='mask' replaces tokens by mask_id; pass mask_id= (captum's default baseline "
                             "token is id 0)")
        mask_id = check_token_id("mask_id", mask_id, vocab)
    fill = resolve_pad_id(model, pad_id, vocab)
    fill, chunk = (0 if fill is None else fill), resolve_batch_size(batch_size)
    P, steps = task.P, task.steps

    def values(present: torch.Tensor, example: torch.Tensor) -> torch.Tensor:
        out = []
        for i in range(0, len(present), chunk):
            keep, e = present[i:i + chunk], example[i:i + chunk]  # (N, L), (N,)
            ids, seen, where = task.ids[e], None, None  # (N, L)
            if absent == "mask":
                ids = ids.masked_fill(~keep, mask_id)
            elif absent == "pad":
                ids, seen = ids.masked_fill(~keep, fill), keep
            else:  # the kept tokens move left; step t is read just before its token, wherever it went
                ids, seen, new_position = delete_tokens(ids, keep, fill)  # (N, L) x 3
                where = new_position[:, P + steps] - 1  # (N, S)
            with torch.no_grad():
                out.append(_scores(model, task, ids, seen, where, e))  # (N, S)
        return torch.cat(out)

    return values


def generation_occlusion(model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                         *, target: torch.Tensor | None = None, contrast: torch.Tensor | None = None,
                         steps: Sequence[int] | None = None, absent: str = "delete", mask_id: int | None = None,
                         pad_id: int | None = None, prompt_only: bool = False, batch_size: int | None = None,
                         probabilities: bool = False) -> GenerationOcclusionResult:
    """Leave-one-out: the score of position ``j`` at step ``t`` is ``F_t(x) − F_t(x without token j)``.

    One model row per position (every step read from it) plus one for the text. ``absent``: ``"delete"`` (the
    text without the token: later tokens move left, step ``t`` is read at the token before ``target[t]``;
    needs ``P >= 2`` when step 0 is explained), ``"mask"`` (the id becomes ``mask_id``), ``"pad"`` (attention
    mask 0; a step's read token, at ``P+t−1``, is never hidden from its own step: score 0 there, as in
    :func:`~bigtut.explain.token_shap`). ``prompt_only=True`` occludes the prompt only (captum's
    ``LLMAttribution`` perturbs nothing else). Linear in F: a contrastive score is the difference of the two
    tokens' scores. With ``absent="mask", mask_id=0, prompt_only=True`` this equals captum's
    ``LLMAttribution(FeatureAblation(model), tokenizer).attribute(TextTokenInput(prompt, tokenizer),
    target=ids).token_attr`` (captum accumulates in float32: about 1e-7).
    """
    task = generation_task(model, input_ids, attention_mask, target, contrast, steps, probabilities)
    prompt_only = check_flag("prompt_only", prompt_only)
    if absent == "delete" and task.P == 1 and bool((task.steps == 0).any()):
        raise ValueError("absent='delete' of the only prompt token leaves nothing to predict step 0 from; use a "
                         "prompt of at least 2 tokens, absent='mask', or steps= without 0")
    values = _absent_model(model, task, absent, mask_id, pad_id, batch_size)
    (B, L), P = task.ids.shape, task.P
    J = P if prompt_only else P + int(task.steps.max())  # positions 0..J-1 are occluded
    present = ~torch.eye(J, L, dtype=torch.bool, device=task.ids.device)  # (J, L): row j lacks token j
    present = torch.cat([torch.ones(1, L, dtype=torch.bool, device=present.device), present])  # (1 + J, L)
    example = torch.arange(B, device=present.device).repeat_interleave(J + 1)  # (B*(1+J),)
    v = values(present.repeat(B, 1), example).view(B, J + 1, -1)  # (B, 1+J, S)
    drops = torch.zeros(B, len(task.steps), L, dtype=v.dtype, device=v.device)  # (B, S, L)
    drops[..., :J] = (v[:, :1] - v[:, 1:]).transpose(1, 2)  # (B, S, J)
    keep = _causal(task, L)  # (S, L)
    if absent == "pad":
        keep[torch.arange(len(task.steps)), P + task.steps - 1] = False
    drops = torch.where(keep, drops, torch.zeros_like(drops))  # NaN-safe
    return GenerationOcclusionResult(as_numpy(drops), as_numpy(v[:, 0]), task.steps.cpu().numpy(), B * (J + 1))


def generation_kernel_shap(model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                           *, target: torch.Tensor | None = None, contrast: torch.Tensor | None = None,
                           steps: Sequence[int] | None = None, absent: str = "delete", mask_id: int | None = None,
                           pad_id: int | None = None, n_samples: int | None = None, seed: int | None = None,
                           exact_up_to: int = 10, batch_size: int | None = None,
                           probabilities: bool = False) -> GenerationShapResult:
    """Shapley values of the prompt tokens for each step; the continuation is always present.

    The players are the prompt tokens — under ``"pad"``/``"delete"`` all but the last one, which step 0 is
    read from (so a prompt of one token has no player there). One game per row and step; every coalition is one
    model row whose single forward pass gives all steps (cached, so the steps share the coalitions). Exact for
    at most ``exact_up_to`` players, else KernelSHAP with ``n_samples`` coalitions and ``seed`` (as
    :func:`~bigtut.explain.kernel_shap`, the same seed for every row and step). ``absent`` as
    :func:`generation_occlusion`.
    """
    task = generation_task(model, input_ids, attention_mask, target, contrast, steps, probabilities)
    if check_budget("exact_up_to", exact_up_to, 0) > MAX_EXACT_PLAYERS:
        raise ValueError(f"exact_up_to must be <= {MAX_EXACT_PLAYERS}, got {exact_up_to}")
    n_samples, seed = (None if n_samples is None else check_budget("n_samples", n_samples)), resolve_seed(seed)
    values = _absent_model(model, task, absent, mask_id, pad_id, batch_size)
    (B, L), P, S = task.ids.shape, task.P, len(task.steps)
    m = P if absent == "mask" else P - 1
    if m == 0:
        raise ValueError(f"absent={absent!r} keeps the last prompt token (step 0 is read from it), so a 1-token "
                         "prompt has no player; use absent='mask' or a longer prompt")
    if m > exact_up_to:
        kernel_budget(m, n_samples)
    attributions, base, output = np.zeros((B, S, L)), np.zeros((B, S)), np.zeros((B, S))
    n_evaluations = 0
    for b in range(B):
        cache: dict[bytes, np.ndarray] = {}

        def game(masks: np.ndarray, s: int, b: int = b, cache: dict = cache) -> np.ndarray:
            new = list({mask.tobytes(): mask for mask in masks if mask.tobytes() not in cache}.values())
            if new:
                present = torch.ones(len(new), L, dtype=torch.bool, device=task.ids.device)  # (K', L)
                present[:, :m] = torch.as_tensor(np.array(new), device=present.device)
                got = as_numpy(values(present, torch.full((len(new),), b, device=present.device)))  # (K', S)
                cache.update(zip([mask.tobytes() for mask in new], got))
            return np.array([cache[mask.tobytes()][s] for mask in masks])  # (K,)

        for s in range(S):
            def game_s(masks: np.ndarray, s: int = s) -> np.ndarray:
                return game(masks, s)
            phi, base[b, s], _ = exact_game(game_s, m) if m <= exact_up_to else kernel_game(game_s, m, n_samples, seed)
            attributions[b, s, :m] = phi
            output[b, s] = base[b, s] + phi.sum()
        n_evaluations += len(cache)
    return GenerationShapResult(attributions, base, output, task.steps.cpu().numpy(), n_evaluations)
