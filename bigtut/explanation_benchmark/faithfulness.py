"""Chapter 09's faithfulness scores with intervals, and the stored run on real text: every token method on
chapter 05's docstring BERT over the whole test split (``benchmarks/explain_faithfulness.py`` writes it once;
notebook 09 reads it with :func:`load_faithfulness`).

Shape legend:  B texts   L positions
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from bigtut.bert import BertVocab, encode_for_classifier
from bigtut.data import docstring_splits
from bigtut.explain import ERASER_FRACTIONS, aopc, comprehensiveness, deletion_curve, insertion_curve, sufficiency
from bigtut.explain.common import model_device
from bigtut.explanation_benchmark.planted import Method, planted_methods
from bigtut.recipes.bert import train_bert_docstring_classifier
from bigtut.recipes.few_labels import bootstrap_interval

__all__ = ["FAITHFULNESS_COLUMNS", "FAITHFULNESS_FILE", "DocstringInputs", "StoredFaithfulness",
           "docstring_benchmark_inputs", "docstring_methods", "faithfulness_scores", "interval_table",
           "load_faithfulness"]

#: Where ``benchmarks/explain_faithfulness.py`` stores the docstring BERT's per-docstring scores.
FAITHFULNESS_FILE = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "09_faithfulness.json"

#: The faithfulness columns per text, and whether higher is better: deletion/insertion AUC (10 steps),
#: ERASER comprehensiveness and sufficiency at 20 % of the tokens, and their AOPC over ERASER's fractions.
FAITHFULNESS_COLUMNS = {"deletion AUC": False, "insertion AUC": True, "comprehensiveness": True,
                        "sufficiency": False, "AOPC comp.": True, "AOPC suff.": False}


def faithfulness_scores(model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                        target: torch.Tensor, scores: np.ndarray, keep_ids: Sequence[int], steps: int | None = 10,
                        batch_size: int = 4096) -> dict[str, np.ndarray]:
    """Every :data:`FAITHFULNESS_COLUMNS` score of one method's ``scores`` ``(B, L)``, per text: ``{column:
    (B,)}``, on probabilities (as ERASER defines them). Deleting a token = attention mask 0."""
    kw = dict(target=target, keep_ids=keep_ids, batch_size=batch_size)
    return {
        "deletion AUC": deletion_curve(model, input_ids, attention_mask, scores, steps=steps, **kw).area,
        "insertion AUC": insertion_curve(model, input_ids, attention_mask, scores, steps=steps, **kw).area,
        "comprehensiveness": comprehensiveness(model, input_ids, attention_mask, scores, fraction=0.2, **kw),
        "sufficiency": sufficiency(model, input_ids, attention_mask, scores, fraction=0.2, **kw),
        "AOPC comp.": aopc(model, input_ids, attention_mask, scores, metric="comprehensiveness",
                           fractions=ERASER_FRACTIONS, **kw),
        "AOPC suff.": aopc(model, input_ids, attention_mask, scores, metric="sufficiency",
                           fractions=ERASER_FRACTIONS, **kw),
    }


def interval_table(per_text: dict[str, dict[str, np.ndarray]], resamples: int = 2000
                   ) -> dict[str, dict[str, tuple[float, float, float]]]:
    """``{method: {column: (mean, low, high)}}``: each per-text score's mean with its 95 % bootstrap interval
    over the texts (the same resampling seed for every cell)."""
    return {name: {column: bootstrap_interval(np.asarray(values, dtype=np.float64)[None], resamples=resamples)
                   for column, values in columns.items()}
            for name, columns in per_text.items()}


class DocstringInputs(NamedTuple):
    """The docstring BERT and the test docstrings it is explained on."""

    model: torch.nn.Module  # chapter 05's recipe classifier, eval mode
    input_ids: torch.Tensor  # (B, L)
    attention_mask: torch.Tensor  # (B, L)
    target: torch.Tensor  # (B,): the predicted family, the class explained
    correct: np.ndarray  # (B,) bool: the prediction is the docstring's family
    keep_ids: tuple[int, int]  # [CLS], [SEP]: never ranked or removed
    mask_id: int  # [MASK]


def docstring_benchmark_inputs(limit: int | None = None, device=None) -> DocstringInputs:
    """The whole ``test`` split of the docstrings (or its first ``limit``), encoded for the docstring BERT
    (:func:`~bigtut.recipes.bert.train_bert_docstring_classifier`, from the ``runs/`` cache)."""
    run = train_bert_docstring_classifier(device=device, progress=False)
    model = run.classifier.eval()
    vocab = BertVocab.from_tokenizer(run.tokenizer)
    docs = docstring_splits()["test"][:limit]
    ids, mask = encode_for_classifier([d.text for d in docs], run.tokenizer, run.recipe.max_len)
    ids, mask = ids.to(model_device(model)), mask.to(model_device(model))
    with torch.no_grad():
        target = model(ids, attention_mask=mask).argmax(-1)  # (B,)
    correct = target.cpu().numpy() == np.array([d.label for d in docs])
    return DocstringInputs(model, ids, mask, target, correct, (vocab.cls_id, vocab.sep_id), vocab.mask_id)


def docstring_methods(keep_ids: Sequence[int], mask_id: int) -> dict[str, Method]:
    """:func:`planted_methods` with the budgets of texts of up to 62 players: no exact Shapley values (2^62
    coalitions), LIME on 300 samples and KernelSHAP on 300 coalitions, permutation SHAP on 2 permutations."""
    methods = planted_methods(keep_ids, mask_id, lime_samples=300, kernel_samples=300, n_permutations=2)
    del methods["Shapley [PAD]"], methods["Shapley [MASK]"]
    return methods


class StoredFaithfulness(NamedTuple):
    """What :func:`load_faithfulness` returns: the stored run of ``benchmarks/explain_faithfulness.py``."""

    scores: dict[str, dict[str, np.ndarray]]  # {method: {column: (B,) per docstring}}
    rows_per_text: dict[str, float]  # model rows per docstring, per method
    seconds_per_text: dict[str, float]  # wall time per docstring on the machine that ran it
    n_docstrings: int
    target: np.ndarray  # (B,) int: the explained class, the classifier's prediction
    correct: np.ndarray  # (B,) bool: the prediction is the docstring's family
    keep_ids: tuple[int, ...]  # the tokens never ranked or removed ([CLS], [SEP])


def load_faithfulness(path: str | Path = FAITHFULNESS_FILE) -> StoredFaithfulness:
    """Read the stored faithfulness run (``FileNotFoundError`` naming the command that writes it)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; write it with `OMP_NUM_THREADS=1 python "
                                f"benchmarks/explain_faithfulness.py --json {path}`")
    record = json.loads(path.read_text())
    methods = record["methods"]
    return StoredFaithfulness(
        {name: {c: np.asarray(v, dtype=np.float64) for c, v in m["scores"].items()} for name, m in methods.items()},
        {name: m["rows_per_text"] for name, m in methods.items()},
        {name: m["seconds_per_text"] for name, m in methods.items()},
        record["n_docstrings"], np.asarray(record["target"], dtype=np.int64), np.asarray(record["correct"], dtype=bool),
        tuple(record["keep_ids"]))


