"""The chapter-09 recipe: a small BERT classifier trained from scratch on the planted-evidence task
(:mod:`bigtut.data.planted`), cached under ``runs/``.

Its two scores are the lesson: ``test_accuracy`` on sentences where ``indeed`` still goes with label 1, as in
training, and ``shortcut_test_accuracy`` where it does not. A model that learned the planted rules scores the
same on both; one that leans on ``indeed`` loses the label-0 sentences that carry it. Measured with the
defaults on a 2-core CPU (``OMP_NUM_THREADS=1``): about 20 s of training, test accuracy 100 %,
shortcut_test 74 % — the rules are learned, *and* every label-0 sentence carrying ``indeed`` is called 1.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from bigtut.bert import BertConfig, BertForSequenceClassification
from bigtut.data.batching import epoch_batches
from bigtut.data.planted import WordTokenizer, encode_planted, planted_splits, planted_tokenizer
from bigtut.evaluation import accuracy, predict_logits
from bigtut.recipes.cache import load_or_build
from bigtut.runtime import get_device, seed_everything
from bigtut.training import History, fit, load_checkpoint, save_checkpoint
from bigtut.validation import check_positive_int

__all__ = ["PLANTED_MODEL", "TrainedPlanted", "planted_config", "shortcut_breakdown", "train_planted_classifier"]

#: The classifier's sizes (the vocabulary and [PAD] id come from :func:`~bigtut.data.planted.planted_tokenizer`).
PLANTED_MODEL = {"d_model": 64, "num_layers": 2, "num_heads": 4, "d_ff": 128, "max_len": 16, "dropout": 0.0}


def planted_config(tokenizer: WordTokenizer) -> BertConfig:
    """The :class:`BertConfig` of the planted-task classifier: :data:`PLANTED_MODEL`, two labels."""
    return BertConfig(vocab_size=tokenizer.vocab_size, pad_id=tokenizer.token_to_id("[PAD]"), num_labels=2,
                      **PLANTED_MODEL)


def shortcut_breakdown(model, ids: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor,
                       has_shortcut: torch.Tensor) -> dict[str, float]:
    """Accuracy per (label, shortcut present) group, e.g. ``"label 0, with indeed"``: where a model that
    leans on the shortcut fails. Groups without examples are left out."""
    predictions = predict_logits(model, ids, mask).argmax(-1)  # (N,)
    out = {}
    for label in (0, 1):
        for present in (False, True):
            group = (labels == label) & (has_shortcut == present)  # (N,)
            if group.any():
                name = f"label {label}, {'with' if present else 'without'} indeed"
                out[name] = float((predictions[group] == label).float().mean())
    return out


@dataclass
class TrainedPlanted:
    """What :func:`train_planted_classifier` returns."""

    classifier: BertForSequenceClassification  # eval mode
    tokenizer: WordTokenizer  # one id per word: token positions are word positions + 1 ([CLS])
    test_accuracy: float  # "test": indeed goes with label 1, as in training
    shortcut_test_accuracy: float  # "shortcut_test": indeed independent of the label
    history: History
    settings: dict  # the arguments that rebuild it (the cache key)
    scores: dict  # val accuracy and the shortcut_test accuracy per (label, indeed present) group


def train_planted_classifier(*, seed: int = 0, steps: int = 1000, batch_size: int = 64, lr: float = 1e-3,
                             cache_dir: str | Path | None = None, reuse: bool = True, save: bool = True, device=None,
                             progress: bool = True) -> TrainedPlanted:
    """Chapter 09's planted-evidence classifier, loaded from the ``runs/`` cache or trained and stored.

    A :class:`~bigtut.bert.BertForSequenceClassification` of :data:`PLANTED_MODEL` sizes, randomly initialised
    (``seed``), is trained on the ``train`` split with :func:`bigtut.training.fit`: AdamW (weight decay 0.01),
    ``steps`` steps of shuffled mini-batches, linear warm-up over the first 10 % then cosine decay, gradients
    clipped at 1.0; the data are always :func:`~bigtut.data.planted.planted_splits` with its defaults.
    Deterministic given the arguments and the device. The cache key covers the settings, the versions of
    bigtut and torch and every source file of the package (:mod:`bigtut.recipes.cache`).

    Raises:
        ValueError: ``steps`` or ``batch_size`` that is not a positive int.
    """
    check_positive_int("steps", steps)
    check_positive_int("batch_size", batch_size)
    device = torch.device(device) if device is not None else get_device()
    settings = {"seed": seed, "steps": steps, "batch_size": batch_size, "lr": lr, "model": PLANTED_MODEL}

    def build() -> TrainedPlanted:
        tokenizer, splits = planted_tokenizer(), planted_splits()
        data = {name: encode_planted(examples, tokenizer, PLANTED_MODEL["max_len"])
                for name, examples in splits.items()}  # name -> (ids, mask, labels, evidence)
        seed_everything(seed)
        model = BertForSequenceClassification(planted_config(tokenizer))
        train_ids, train_mask, train_labels, _ = data["train"]
        next_batch = epoch_batches(train_ids, train_mask, train_labels, batch_size=batch_size,
                                   generator=torch.Generator().manual_seed(seed))

        def loss_fn(model, batch):
            ids, mask, labels = batch
            return F.cross_entropy(model(ids, attention_mask=mask), labels)

        history = fit(model, loss_fn, next_batch, steps=steps, lr=lr, weight_decay=0.01,
                      val_batches=[data["val"][:3]], eval_every=max(steps // 6, 1), warmup_steps=steps // 10,
                      schedule="cosine", grad_clip=1.0, device=device, desc="planted", progress=progress)
        model.eval()
        shortcut_words = torch.tensor([e.shortcut for e in splits["shortcut_test"]])  # (N,)
        scores = {"val_accuracy": accuracy(model, *data["val"][:3]),
                  "shortcut_test_groups": shortcut_breakdown(model, *data["shortcut_test"][:3], shortcut_words)}
        return TrainedPlanted(model, tokenizer, accuracy(model, *data["test"][:3]),
                              accuracy(model, *data["shortcut_test"][:3]), history, settings, scores)

    def store(run: TrainedPlanted, folder: Path) -> None:
        run.tokenizer.save(folder / "tokenizer.json")
        (folder / "config.json").write_text(json.dumps(asdict(run.classifier.config)))
        save_checkpoint(run.classifier, folder / "classifier.safetensors",
                        {"test_accuracy": run.test_accuracy, "shortcut_test_accuracy": run.shortcut_test_accuracy,
                         "scores": run.scores, "history": asdict(run.history)})

    def load(folder: Path) -> TrainedPlanted:
        tokenizer = WordTokenizer.load(folder / "tokenizer.json")
        classifier = BertForSequenceClassification(BertConfig(**json.loads((folder / "config.json").read_text())))
        meta = load_checkpoint(classifier, folder / "classifier.safetensors")
        return TrainedPlanted(classifier.eval(), tokenizer, meta["test_accuracy"], meta["shortcut_test_accuracy"],
                              History(**meta["history"]), settings, meta["scores"])

    run = load_or_build("bert_planted", settings, build, store, load, cache_dir=cache_dir, reuse=reuse, store=save)
    run.classifier.to(device)
    return run
