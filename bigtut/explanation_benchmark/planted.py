"""Chapter 09's benchmark on the planted task: every token attribution method run on the same sentences and
the same trained model, scored against two ground truths — the *planted* evidence (what the data made the
cause) and the *interventional* evidence (what edits show the model uses, :mod:`bigtut.explain.interventions`).

Shape legend:  B sentences   L positions

* :func:`benchmark_sentences` — the sentences: from ``test`` (``indeed`` goes with label 1, as in training)
  and from ``shortcut_test`` (``indeed`` independent of the label), negation and xor alike;
  :func:`sentence_groups` — the groups of the per-group tables.
* :func:`planted_methods` — the methods with the options the chapter uses, each as
  ``run(model, ids, mask, target) -> (scores (B, L), model rows per text)``.
* :func:`run_methods` — runs them and times them; :func:`planted_benchmark_runs` — the same, cached under
  ``runs/``; :func:`precision_table` — precision@k with bootstrap intervals, overall and per group.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from bigtut.data.planted import PlantedExample, encode_planted, planted_splits
from bigtut.explain import (
    gradient_norm,
    gradient_x_input,
    lime_text,
    permutation_shap,
    precision_at_k,
    raw_attention_scores,
    rollout_scores,
    token_gradient_shap,
    token_integrated_gradients,
    token_occlusion,
    token_shap,
    token_smoothgrad,
)
from bigtut.explain.common import model_device
from bigtut.recipes.cache import PACKAGE_DIR, load_or_build, source_fingerprint
from bigtut.recipes.few_labels import bootstrap_interval
from bigtut.recipes.planted import train_planted_classifier
from bigtut.training import progress_bar

__all__ = ["BENCHMARK_PER_KIND", "GROUPS", "NOISE_SHARE", "MethodRun", "benchmark_sentences", "noise_stdev",
           "planted_benchmark_runs", "planted_methods", "precision_table", "run_methods", "sentence_groups"]

#: The groups of the per-group tables: sentences without ``indeed`` by kind, and every sentence carrying it.
GROUPS = ("negation", "xor", "shortcut")
#: Sentences per kind and split of the chapter's benchmark: 4 x 50 = 200 sentences.
BENCHMARK_PER_KIND = 50


def benchmark_sentences(splits: dict[str, list[PlantedExample]], per_kind: int = BENCHMARK_PER_KIND
                        ) -> list[PlantedExample]:
    """``per_kind`` negation and ``per_kind`` xor sentences (with a marker: an xor sentence without one has no
    cause) from each of ``test`` and ``shortcut_test``, first ones first: ``4 * per_kind`` sentences."""
    chosen = []
    for split in ("test", "shortcut_test"):
        for kind in ("negation", "xor"):
            matching = [e for e in splits[split] if e.kind == kind and e.evidence]
            if len(matching) < per_kind:
                raise ValueError(f"split {split!r} has only {len(matching)} {kind} sentences with evidence, "
                                 f"fewer than per_kind={per_kind}")
            chosen += matching[:per_kind]
    return chosen


def sentence_groups(examples: Sequence[PlantedExample]) -> dict[str, np.ndarray]:
    """``(B,)`` bool masks of :data:`GROUPS`: ``negation``/``xor`` without ``indeed``, ``shortcut`` with it."""
    kinds = np.array([e.kind for e in examples])
    shortcut = np.array([e.shortcut for e in examples])
    return {"negation": (kinds == "negation") & ~shortcut, "xor": (kinds == "xor") & ~shortcut,
            "shortcut": shortcut}


class MethodRun(NamedTuple):
    """One method's run over the benchmark sentences."""

    scores: np.ndarray  # (B, L) float64 attributions
    rows_per_text: float  # model rows (forward passes of one text) per sentence
    seconds_per_text: float  # wall time per sentence (varies between machines)


Method = Callable[[torch.nn.Module, torch.Tensor, torch.Tensor, torch.Tensor], tuple[np.ndarray, float]]


def _permutation_one(model, ids, mask, target, keep_ids, n_permutations) -> tuple[np.ndarray, float]:
    """Permutation SHAP of one text ``(1, L)`` on the "pad" game (a token absent = attention mask 0)."""
    players = torch.nonzero(mask[0].bool() & ~torch.isin(ids[0], torch.tensor(keep_ids, device=ids.device)))[:, 0]

    def game(present):  # (N, P) 0/1 -> (N, C) logits
        seen = mask.repeat(len(present), 1).clone()
        seen[:, players] = torch.as_tensor(present > 0.5, device=ids.device).to(seen.dtype)
        return model(ids.repeat(len(present), 1), attention_mask=seen)

    values = permutation_shap(game, np.ones((1, len(players))), background=np.zeros((1, len(players))),
                              n_permutations=n_permutations, target=target, batch_size=4096)
    out = np.zeros(ids.shape[1])
    out[players.cpu().numpy()] = values.attributions[0]
    return out, values.n_evaluations


#: SmoothGrad's noise, as a share of the range of the token-embedding table's entries (the 10–20 % of the
#: input's range that Smilkov et al., 2017, recommend).
NOISE_SHARE = 0.15


def noise_stdev(model: torch.nn.Module) -> float:
    """The standard deviation of SmoothGrad's and VarGrad's noise for ``model``: :data:`NOISE_SHARE` of the
    range (max − min) of its token-embedding entries."""
    weight = model.get_input_embeddings().weight.detach()
    return NOISE_SHARE * float(weight.max() - weight.min())


def _players(ids: torch.Tensor, mask: torch.Tensor, keep: tuple[int, ...]) -> np.ndarray:
    """``(B, L)`` 0/1: the real tokens not in ``keep`` (the ones a method may rank)."""
    kept = torch.isin(ids, torch.as_tensor(keep, device=ids.device))
    return (mask.bool() & ~kept).cpu().numpy().astype(np.float64)


def planted_methods(keep_ids: Sequence[int], mask_id: int, *, lime_samples: int = 500, kernel_samples: int = 256,
                    n_permutations: int = 8, exact_up_to: int = 12, ig_steps: int = 32,
                    noise_samples: int = 32) -> dict[str, Method]:
    """The chapter's methods, in the order of its tables. ``keep_ids`` ([CLS], [SEP]) are never ranked or
    removed; perturbation methods take a token away with attention mask 0 ("pad") unless their name says
    [MASK]. SmoothGrad, VarGrad and GradientSHAP average ``noise_samples`` gradients (noise:
    :func:`noise_stdev`; GradientSHAP: the [PAD] text as its one baseline, no noise)."""
    keep = tuple(keep_ids)

    def lime(m, ids, mask, target):
        e = lime_text(m, ids, mask, target=target, n_samples=lime_samples, keep_ids=keep, batch_size=2048)
        return e.attributions, e.n_samples

    def shapley(exact: bool, absent: str = "pad"):
        def run(m, ids, mask, target):
            v = token_shap(m, ids, mask, target=target, absent=absent, mask_id=mask_id, keep_ids=keep,
                           exact_up_to=exact_up_to if exact else 0, n_samples=None if exact else kernel_samples,
                           batch_size=4096)
            return v.attributions, v.n_evaluations / len(ids)
        return run

    def permutation(m, ids, mask, target):
        runs = [_permutation_one(m, ids[b:b + 1], mask[b:b + 1], int(target[b]), keep, n_permutations)
                for b in range(len(ids))]
        return np.stack([s for s, _ in runs]), float(np.mean([r for _, r in runs]))

    def ig(baseline: str):
        def run(m, ids, mask, target):
            r = token_integrated_gradients(m, ids, mask, target=target, baseline=baseline, mask_id=mask_id,
                                           keep_ids=keep, n_steps=ig_steps)
            return r.attributions, ig_steps  # n_steps forward + backward passes
        return run

    def one_pass(fn):
        return lambda m, ids, mask, target: (fn(m, ids, mask, target=target).attributions, 1)

    def attention(fn):
        return lambda m, ids, mask, target: (fn(m, ids, mask).attributions, 1)  # [CLS]'s row: no target

    def smooth(variance: bool):
        def run(m, ids, mask, target):
            r = token_smoothgrad(m, ids, mask, target=target, n_samples=noise_samples, stdev=noise_stdev(m),
                                 variance=variance, keep_ids=keep, batch_size=4096)
            return r.attributions * _players(ids, mask, keep), noise_samples
        return run

    def gradient_shap(m, ids, mask, target):
        r = token_gradient_shap(m, ids, mask, target=target, baseline="pad", keep_ids=keep, n_samples=noise_samples,
                                batch_size=4096)
        return r.attributions, noise_samples

    def occluded(absent: str):
        def run(m, ids, mask, target):
            r = token_occlusion(m, ids, mask, target=target, absent=absent, mask_id=mask_id, keep_ids=keep,
                                batch_size=4096)
            return r.attributions, r.n_evaluations / len(ids)
        return run

    def random_scores(m, ids, mask, target):
        return np.random.default_rng(0).random(tuple(ids.shape)) * mask.cpu().numpy(), 0

    return {
        "LIME": lime, "Shapley [PAD]": shapley(True),
        "Shapley [MASK]": shapley(True, "mask"), "KernelSHAP": shapley(False), "permutation SHAP": permutation,
        "occlusion [PAD]": occluded("pad"), "occlusion [MASK]": occluded("mask"),
        "IG [PAD]": ig("pad"), "IG [MASK]": ig("mask"), "GradientSHAP": gradient_shap, "SmoothGrad": smooth(False),
        "VarGrad": smooth(True), "gradient×input": one_pass(gradient_x_input), "gradient L2": one_pass(gradient_norm),
        "raw attention": attention(raw_attention_scores), "attention rollout": attention(rollout_scores),
        "random": random_scores,
    }


def run_methods(model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor, target: torch.Tensor,
                methods: dict[str, Method], progress: bool = True) -> dict[str, MethodRun]:
    """Every method on the same texts ``(B, L)`` and targets ``(B,)``: ``{name: MethodRun}``."""
    runs = {}
    for name in progress_bar(methods, desc="methods", disable=not progress):
        start = time.perf_counter()
        scores, rows = methods[name](model, input_ids, attention_mask, target)
        runs[name] = MethodRun(np.asarray(scores, dtype=np.float64), float(rows),
                               (time.perf_counter() - start) / len(input_ids))
    return runs


def precision_table(runs: dict[str, MethodRun], evidence: np.ndarray, candidates: np.ndarray,
                    groups: dict[str, np.ndarray], resamples: int = 2000) -> dict[str, dict[str, tuple]]:
    """Precision@k (k = each sentence's evidence count) per method: ``{name: {"all": (mean, low, high),
    group: (mean, low, high), ...}}`` with 95 % bootstrap intervals over the sentences. ``evidence`` and
    ``candidates`` (the tokens that may be ranked) are ``(B, L)`` bool; sentences without evidence are left
    out (their precision is undefined)."""
    table = {}
    for name, run in runs.items():
        precision = precision_at_k(run.scores, evidence, mask=candidates)  # (B,), NaN without evidence
        rows = {"all": np.ones(len(precision), bool), **groups}
        table[name] = {}
        for group, chosen in rows.items():
            values = precision[chosen & ~np.isnan(precision)]
            table[name][group] = (bootstrap_interval(values[None], resamples=resamples) if len(values)
                                  else (np.nan, np.nan, np.nan))
    return table


def planted_benchmark_runs(per_kind: int = BENCHMARK_PER_KIND, *, device=None, progress: bool = True,
                           cache_dir: str | Path | None = None, reuse: bool = True) -> dict[str, MethodRun]:
    """Every :func:`planted_methods` method run on the :func:`benchmark_sentences` of chapter 09's planted
    classifier (:func:`~bigtut.recipes.planted.train_planted_classifier`), explaining its predicted class: the
    :func:`run_methods` result, cached under ``runs/`` like the models (``make models`` builds it; about a
    minute on 2 cores). The timings are those of the run that filled the cache.

    The models' cache key leaves ``bigtut/explain`` and this package out (no model depends on them); this
    entry's key adds a fingerprint of both folders, so an edited method is run again, never read from the cache."""
    trained = train_planted_classifier(device=device, progress=progress)
    model, tokenizer = trained.classifier.eval(), trained.tokenizer
    ids, mask, _, _ = encode_planted(benchmark_sentences(planted_splits(), per_kind), tokenizer)
    ids, mask = ids.to(model_device(model)), mask.to(model_device(model))
    keep = tuple(tokenizer.token_to_id(t) for t in ("[CLS]", "[SEP]"))
    methods = planted_methods(keep, tokenizer.token_to_id("[MASK]"))

    def build() -> dict[str, MethodRun]:
        with torch.no_grad():
            target = model(ids, attention_mask=mask).argmax(-1)  # (B,)
        return run_methods(model, ids, mask, target, methods, progress=progress)

    def save(runs: dict[str, MethodRun], folder: Path) -> None:
        np.savez(folder / "scores.npz", *[run.scores for run in runs.values()])
        (folder / "runs.json").write_text(json.dumps({name: [run.rows_per_text, run.seconds_per_text]
                                                      for name, run in runs.items()}, indent=1))

    def load(folder: Path) -> dict[str, MethodRun]:
        meta = json.loads((folder / "runs.json").read_text())
        with np.load(folder / "scores.npz") as stored:
            scores = [stored[f"arr_{i}"] for i in range(len(meta))]
        if list(meta) != list(methods) or any(s.shape != tuple(ids.shape) for s in scores):
            raise ValueError("the cached benchmark does not match the methods or the sentences")
        return {name: MethodRun(s, *meta[name]) for name, s in zip(meta, scores)}

    fields = {"per_kind": per_kind, "device": str(model_device(model).type),
              "explain_source": source_fingerprint(PACKAGE_DIR / "explain"),
              "benchmark_source": source_fingerprint(PACKAGE_DIR / "explanation_benchmark")}
    return load_or_build("planted_benchmark", fields, build, save, load, cache_dir=cache_dir, reuse=reuse)

