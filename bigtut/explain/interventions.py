"""Ground truth by intervention: what a trained model *uses*, measured by editing its input and watching the
output (chapter 09). The planted labels say what the *data* made the cause; a model can use more (a shortcut)
or less. An explanation is faithful to the model when it points at the tokens whose edit changes the output.

Shape legend:  B batch   L positions   N edited rows sent to the model   C classes

* :func:`counterfactual_effects` — minimal pairs: each editable token edited alone (deleted, or replaced by a
  counterfactual id such as the opposite polarity word), and how much the explained output falls.
* :func:`interventional_evidence` — the evidence set of a text: the tokens of the **smallest sets of edits
  that move the prediction past a threshold** (the probability of the explained class falls below it).
  Single edits are not enough: when a model has two sufficient reasons (a rule *and* a shortcut), deleting
  either alone changes nothing, and the evidence would come out empty; the smallest flipping sets hold both.

An edit is given per position in ``edits`` ``(B, L)``: an id ``>= 0`` replaces the token, :data:`DELETE`
removes it (the later tokens move left, as when a reader drops a word), :data:`FIXED` marks a token that is
never edited. ``edits="delete"`` deletes every editable token. Tokens whose id is in ``keep_ids`` ([CLS],
[SEP]) and padding are never edited. Activation patching, the other intervention, is in
:mod:`bigtut.explain.patching`.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations
from typing import Any, NamedTuple

import numpy as np
import torch

from bigtut.explain.arguments import (
    check_budget,
    check_flag,
    check_keep_ids,
    check_target_rows,
    check_token_batch,
    resolve_batch_size,
    resolve_pad_id,
    vocab_size_of,
)
from bigtut.explain.common import as_numpy, delete_tokens, logits_of, model_device, select_target, target_of_row

__all__ = ["DELETE", "FIXED", "CounterfactualEffects", "InterventionalEvidence", "apply_edits",
           "counterfactual_effects", "interventional_evidence"]

DELETE = -1  # an edit that removes the token
FIXED = -2  # a token that is never edited


class CounterfactualEffects(NamedTuple):
    """What :func:`counterfactual_effects` returns (float64 NumPy)."""

    attributions: np.ndarray  # (B, L): F(x) - F(x with this one token edited); 0 where nothing is edited
    edited: np.ndarray  # (B, L): F of each edited text (NaN where nothing is edited)
    output: np.ndarray  # (B,): F(x), the unedited text
    n_evaluations: int  # model rows used


class InterventionalEvidence(NamedTuple):
    """What :func:`interventional_evidence` returns."""

    evidence: np.ndarray  # (B, L) bool: the tokens of the smallest flipping sets
    set_size: np.ndarray  # (B,) int: their size; 0 when no set of at most max_size edits flips
    flipping_sets: list  # B lists of position tuples: every smallest flipping set
    probability: np.ndarray  # (B,): p(target | x) before any edit
    n_evaluations: int  # model rows used


def _resolve_edits(edits: Any, input_ids: torch.Tensor, editable: torch.Tensor, vocab_size: int | None
                   ) -> torch.Tensor:
    """``edits`` as ``(B, L)`` long on the ids' device, FIXED outside ``editable``; refusals name the fix."""
    if isinstance(edits, str):
        if edits != "delete":
            raise ValueError(f"edits must be 'delete' or (B, L) ids (>= 0 replace, {DELETE} delete, {FIXED} "
                             f"never edit), got {edits!r}")
        out = torch.full_like(input_ids, DELETE)
    else:
        if not isinstance(edits, (torch.Tensor, np.ndarray)):
            raise TypeError(f"edits must be 'delete' or a (B, L) tensor of ids, got {type(edits).__name__}")
        out = torch.as_tensor(edits, device=input_ids.device)
        if out.shape != input_ids.shape:
            raise ValueError(f"edits must have the shape of input_ids {tuple(input_ids.shape)} (one edit per token), "
                             f"got {tuple(out.shape)}")
        if out.dtype.is_floating_point or out.dtype == torch.bool:
            raise TypeError(f"edits must hold integer ids, got dtype {out.dtype}")
        out = out.long()
        top = vocab_size if vocab_size is not None else torch.iinfo(torch.long).max
        bad = (out < FIXED) | (out >= top)
        if bool(bad.any()):
            raise ValueError(f"edits must be ids in [0, {top}), {DELETE} (delete) or {FIXED} (never edit); got "
                             f"{out[bad][:5].tolist()}")
    return torch.where(editable, out, torch.full_like(out, FIXED))


def apply_edits(input_ids: torch.Tensor, real: torch.Tensor, edits: torch.Tensor, chosen: torch.Tensor, fill: int
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """The texts with the ``chosen`` ``(N, L)`` bool edits applied: ``input_ids``, ``real``, ``edits`` ``(N, L)``.

    Replacements first, then deletions (the rest move left, padded on the right with ``fill``). Returns
    ``(ids (N, L), attention_mask (N, L) bool)``."""
    replace = chosen & (edits >= 0)  # (N, L)
    ids = torch.where(replace, edits, input_ids)  # (N, L)
    present = real & ~(chosen & (edits == DELETE))  # (N, L)
    ids, attended, _ = delete_tokens(ids, present, fill)  # (N, L), (N, L)
    return ids, attended


class _Runner:
    """The explained output of many edited texts: ``F(x)`` per row, at most ``batch_size`` rows a call."""

    def __init__(self, model, fill: int, batch_size: int, probabilities: bool):
        self.model, self.fill, self.batch_size, self.probabilities = model, fill, batch_size, probabilities
        self.n_evaluations = 0

    def __call__(self, ids, real, edits, chosen, target) -> np.ndarray:
        """``ids``, ``real``, ``edits``, ``chosen`` ``(N, L)``, ``target`` ``(N,)`` -> ``F`` ``(N,)``."""
        out = [np.zeros(0)]
        for start in range(0, len(chosen), self.batch_size):
            rows = slice(start, start + self.batch_size)
            batch, attended = apply_edits(ids[rows], real[rows], edits[rows], chosen[rows], self.fill)
            with torch.no_grad():
                logits = logits_of(self.model(batch, attention_mask=attended.long()), len(batch))  # (n, C)
            if logits.dim() != 2:
                raise ValueError(f"interventions explain a classifier returning (N, C) logits, got shape "
                                 f"{tuple(logits.shape)}")
            out.append(as_numpy(select_target(logits, target[rows].cpu().numpy(), self.probabilities)))
            self.n_evaluations += len(batch)
        return np.concatenate(out)


def _prepare(model, input_ids, attention_mask, target, edits, keep_ids, pad_id, batch_size, probabilities):
    """Checked inputs shared by both functions: ids, real, edits ``(B, L)``, target ``(B,)``, the runner."""
    vocab_size = vocab_size_of(model)
    input_ids, real = check_token_batch(input_ids, attention_mask, vocab_size)  # (B, L), (B, L)
    B = len(input_ids)
    if target is None:
        raise ValueError("pass target= (an int or one per row): the class whose output the edits move")
    target = check_target_rows(target, B)
    probabilities = check_flag("probabilities", probabilities)
    keep_ids = check_keep_ids(keep_ids)
    fill = resolve_pad_id(model, pad_id, vocab_size)
    device = model_device(model)
    input_ids, real = input_ids.to(device), real.to(device)
    keep = torch.isin(input_ids, torch.as_tensor(keep_ids, dtype=torch.long, device=device))  # (B, L)
    edits = _resolve_edits(edits, input_ids, real & ~keep, vocab_size)  # (B, L)
    targets = torch.as_tensor([target_of_row(target, b) for b in range(B)], device=device)  # (B,)
    runner = _Runner(model, 0 if fill is None else fill, resolve_batch_size(batch_size), probabilities)
    return input_ids, real, edits, targets, runner


def counterfactual_effects(model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                           *, target: int | Sequence[int] | torch.Tensor | None = None, edits: Any = "delete",
                           keep_ids: Sequence[int] = (), pad_id: int | None = None, batch_size: int | None = None,
                           probabilities: bool = False) -> CounterfactualEffects:
    """Minimal pairs: every editable token edited alone, and the fall of the explained output.

    ``model(ids (N, L), attention_mask=(N, L))`` returns class logits ``(N, C)``; ``F`` is the logit of
    ``target`` (``probabilities=True``: its probability). ``edits`` ``(B, L)`` says what each token becomes
    (module docstring). Returns :class:`CounterfactualEffects`: ``attributions`` ``(B, L)`` =
    ``F(x) - F(x with token t edited)``, positive where the edit takes evidence for ``target`` away.
    One model row per text and one per editable token.
    """
    ids, real, edits, targets, run = _prepare(model, input_ids, attention_mask, target, edits, keep_ids, pad_id,
                                              batch_size, probabilities)
    B, L = ids.shape
    none = torch.zeros(B, L, dtype=torch.bool, device=ids.device)
    output = run(ids, real, edits, none, targets)  # (B,)
    rows, cols = torch.nonzero(edits != FIXED, as_tuple=True)  # (N,), (N,): one edited text per editable token
    chosen = torch.zeros(len(rows), L, dtype=torch.bool, device=ids.device)
    chosen[torch.arange(len(rows)), cols] = True  # (N, L)
    edited_values = run(ids[rows], real[rows], edits[rows], chosen, targets[rows])  # (N,)
    edited = np.full((B, L), np.nan)
    edited[rows.cpu().numpy(), cols.cpu().numpy()] = edited_values
    effects = np.where(np.isnan(edited), 0.0, output[:, None] - np.nan_to_num(edited))  # (B, L)
    return CounterfactualEffects(effects, edited, output, run.n_evaluations)


def interventional_evidence(model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                            *, target: int | Sequence[int] | torch.Tensor | None = None, edits: Any = "delete",
                            keep_ids: Sequence[int] = (), threshold: float = 0.5, max_size: int = 3,
                            pad_id: int | None = None, batch_size: int | None = None) -> InterventionalEvidence:
    """The evidence set of each text: the tokens of its smallest sets of edits that flip the prediction.

    A set of edits *flips* a text when, with all of them applied, the probability of ``target`` falls below
    ``threshold`` (in (0, 1); 0.5 = the other class wins a two-class model). Sets of size 1, 2, ...,
    ``max_size`` are tried in turn; a text's evidence is the union of every flipping set of the smallest size
    that has one, and empty when none of at most ``max_size`` edits flips it (it is then left out of scores
    against this evidence). A text with ``P`` editable tokens costs ``P + C(P, 2) + ...`` model rows up to the
    size that flips it.

    Raises:
        ValueError: ``threshold`` outside (0, 1), ``max_size`` < 1, bad ids, edits or targets.
    """
    if isinstance(threshold, (bool, np.bool_)) or not isinstance(threshold, (int, float, np.floating)) \
            or not 0.0 < float(threshold) < 1.0:
        raise ValueError(f"threshold must be a probability in (0, 1) (the prediction flips when p(target) falls "
                         f"below it; 0.5 for two classes), got {threshold!r}")
    max_size = check_budget("max_size", max_size)
    ids, real, edits, targets, run = _prepare(model, input_ids, attention_mask, target, edits, keep_ids, pad_id,
                                              batch_size, True)
    B, L = ids.shape
    probability = run(ids, real, edits, torch.zeros(B, L, dtype=torch.bool, device=ids.device), targets)  # (B,)
    evidence, set_size = np.zeros((B, L), dtype=bool), np.zeros(B, dtype=np.int64)
    flipping: list[list[tuple[int, ...]]] = [[] for _ in range(B)]
    editable = [torch.nonzero(edits[b] != FIXED)[:, 0].tolist() for b in range(B)]
    open_rows = [b for b in range(B) if probability[b] >= threshold]  # already below: nothing to flip
    for size in range(1, max_size + 1):
        owners, sets = [], []
        for b in open_rows:
            for subset in combinations(editable[b], size):
                owners.append(b)
                sets.append(subset)
        if not sets:
            break
        index = torch.as_tensor(owners, device=ids.device)  # (N,)
        chosen = torch.zeros(len(sets), L, dtype=torch.bool, device=ids.device)  # (N, L)
        for n, subset in enumerate(sets):
            chosen[n, list(subset)] = True
        p = run(ids[index], real[index], edits[index], chosen, targets[index])  # (N,)
        for b, subset, value in zip(owners, sets, p):
            if value < threshold:
                flipping[b].append(subset)
                evidence[b, list(subset)] = True
                set_size[b] = size
        open_rows = [b for b in open_rows if not flipping[b]]
    return InterventionalEvidence(evidence, set_size, flipping, probability, run.n_evaluations)
