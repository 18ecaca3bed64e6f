"""The chapter-05 recipe: pretrain a small BERT (MLM + NSP) on Python's documentation, fine-tune it to tell
which standard-library family a docstring comes from, and cache the result under ``runs/``.

Chapters 06–10 load the classifier with ``train_bert_docstring_classifier()`` (a few seconds from the cache,
about 40 s to rebuild on a 2-core CPU).
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.nn.functional as F

from bigtut.bert import (
    SPECIAL_TOKENS,
    Bert,
    BertConfig,
    BertForPreTraining,
    BertForSequenceClassification,
    BertVocab,
    encode_for_classifier,
    mask_tokens,
    pretraining_loss,
    trim_to_longest,
)
from bigtut.data import LABELS, docstring_splits, python_docs_corpus
from bigtut.data.sentences import NSPSampler, docs_sentences, encode_pairs
from bigtut.recipes.cache import load_or_build
from bigtut.runtime import get_device, seed_everything
from bigtut.tokenizers import BPETokenizer, load_tokenizer
from bigtut.training import History, fit, load_checkpoint, save_checkpoint

__all__ = ["BertRecipe", "TrainedBert", "build_bert_tokenizer", "finetune_bert", "pretrain_bert",
           "pretraining_batches", "train_bert_docstring_classifier"]


@dataclass(frozen=True)
class BertRecipe:
    """Every setting of :func:`train_bert_docstring_classifier`; the cache is keyed by all of them."""

    seed: int = 0
    vocab_size: int = 1024  # byte-level BPE ids, the 4 special tokens included
    d_model: int = 64
    num_layers: int = 2
    num_heads: int = 4
    d_ff: int = 256
    max_len: int = 64  # tokens, [CLS] and [SEP]s included
    dropout: float = 0.0  # pretraining underfits and, on this task, fine-tuning did better without it
    mask_prob: float = 0.15
    pretrain_on_docstrings: bool = True  # add the training docstrings' text (never labels) to the docs topics
    pretrain_steps: int = 1200  # 0: no pretraining, fine-tune a randomly initialised BERT
    pretrain_batch: int = 32
    pretrain_lr: float = 2e-3
    finetune_steps: int = 450
    finetune_batch: int = 16
    finetune_lr: float = 1e-3

    def __post_init__(self):
        if self.pretrain_steps < 0 or self.finetune_steps < 1:
            raise ValueError(f"need pretrain_steps >= 0 and finetune_steps >= 1, got {self.pretrain_steps}, "
                             f"{self.finetune_steps}")

    def config(self, tokenizer, **changes) -> BertConfig:
        """The model's :class:`BertConfig` for this recipe and tokenizer."""
        settings = dict(vocab_size=tokenizer.vocab_size, max_len=self.max_len, d_model=self.d_model,
                        num_layers=self.num_layers, num_heads=self.num_heads, d_ff=self.d_ff,
                        dropout=self.dropout, pad_id=tokenizer.token_to_id("[PAD]"))
        return BertConfig(**{**settings, **changes})


def build_bert_tokenizer(recipe: BertRecipe | None = None):
    """The recipe's byte-level BPE tokenizer (``recipe.vocab_size`` ids), trained on the training topics of the
    Python docs and the training docstrings; the special tokens are ``[PAD] [CLS] [SEP] [MASK]``."""
    recipe = recipe or BertRecipe()
    text = python_docs_corpus("train") + "\n".join(d.text for d in docstring_splits()["train"])
    return BPETokenizer.train(text, recipe.vocab_size, special_tokens=SPECIAL_TOKENS)


def pretraining_batches(documents, tokenizer, recipe: BertRecipe, seed: int, batch_size: int | None = None):
    """A callable returning fresh pretraining batches ``(masked_ids, token_type_ids, attention_mask, labels,
    nsp_labels)`` — new sentence pairs and a new mask on every call, reproducible from ``seed``."""
    sampler, vocab = NSPSampler(documents), BertVocab.from_tokenizer(tokenizer)
    rng, gen = random.Random(seed), torch.Generator().manual_seed(seed)
    cached = SimpleNamespace(encode=lru_cache(maxsize=None)(tokenizer.encode))  # each sentence encoded once

    def next_batch():
        pairs = [sampler.sample(rng) for _ in range(batch_size or recipe.pretrain_batch)]
        ids, segments, lengths, nsp = encode_pairs(pairs, cached, recipe.max_len, vocab.cls_id, vocab.sep_id,
                                                   vocab.pad_id)  # (B, L), (B, L), (B,), (B,)
        ids, segments, mask = trim_to_longest(lengths, ids, segments)  # (B, L') x3
        masked, labels = mask_tokens(ids, vocab, recipe.mask_prob, generator=gen)  # (B, L') x2
        return masked, segments, mask, labels, nsp

    return next_batch


def pretrain_bert(model: BertForPreTraining, tokenizer, recipe: BertRecipe, *, progress: bool = True,
             device=None) -> dict:
    """MLM + NSP pretraining on sentence pairs of the training documents (:func:`docs_sentences`).

    Returns:
        ``{"total", "mlm", "nsp"}`` -> :class:`bigtut.training.History`, validated on held-out documents.
    """
    docs = {split: docs_sentences(split, docstrings=recipe.pretrain_on_docstrings) for split in ("train", "val")}
    train_batches = pretraining_batches(docs["train"], tokenizer, recipe, seed=recipe.seed)
    val_source = pretraining_batches(docs["val"], tokenizer, recipe, seed=recipe.seed + 1, batch_size=64)
    val_batches = [val_source() for _ in range(2)]  # a fixed validation set
    logs = {True: [], False: []}  # (mlm, nsp) per call, in training / in evaluation

    def loss_fn(model, batch):
        mlm, nsp = pretraining_loss(model, batch)
        logs[model.training].append((mlm.item(), nsp.item()))
        return mlm + nsp

    steps = recipe.pretrain_steps
    total = fit(model, loss_fn, train_batches, steps=steps, lr=recipe.pretrain_lr, val_batches=val_batches,
                eval_every=max(steps // 6, 1), warmup_steps=steps // 10, schedule="cosine", grad_clip=1.0,
                device=device, desc="pretrain", progress=progress)
    histories = {"total": total}
    for i, name in enumerate(("mlm", "nsp")):
        val, n = [v[i] for v in logs[False]], len(val_batches)
        histories[name] = History(total.step, [t[i] for t in logs[True]], total.val_step,
                                  [sum(val[j : j + n]) / n for j in range(0, len(val), n)], total.seconds)
    return histories


def finetune_bert(encoder: Bert, tokenizer, recipe: BertRecipe, *, progress: bool = True, device=None):
    """Train a docstring-family classifier whose encoder starts from a copy of ``encoder``'s weights.

    Returns:
        ``(classifier, history)``, validated on the docstrings' validation split.
    """
    classifier = BertForSequenceClassification(recipe.config(tokenizer, num_labels=len(LABELS)))
    classifier.bert.load_state_dict(encoder.state_dict())
    data, splits = {}, docstring_splits()
    for name in ("train", "val"):  # the test split stays untouched until the final evaluation
        ids, mask = encode_for_classifier([d.text for d in splits[name]], tokenizer, recipe.max_len)  # (N, L) x2
        data[name] = (ids, mask, torch.tensor([d.label for d in splits[name]]))
    gen, queue = torch.Generator().manual_seed(recipe.seed), []

    def next_batch():  # epochs of shuffled mini-batches
        nonlocal queue
        if len(queue) < recipe.finetune_batch:
            queue += torch.randperm(len(data["train"][2]), generator=gen).tolist()
        idx, queue = queue[: recipe.finetune_batch], queue[recipe.finetune_batch :]
        return tuple(t[idx] for t in data["train"])

    def loss_fn(model, batch):
        ids, mask, labels = batch
        return F.cross_entropy(model(ids, attention_mask=mask), labels)

    steps = recipe.finetune_steps
    history = fit(classifier, loss_fn, next_batch, steps=steps, lr=recipe.finetune_lr, val_batches=[data["val"]],
                  eval_every=max(steps // 6, 1), warmup_steps=steps // 10, schedule="cosine", device=device,
                  desc="fine-tune", progress=progress)
    return classifier, history


@dataclass
class TrainedBert:
    """What :func:`train_bert_docstring_classifier` returns."""

    classifier: BertForSequenceClassification  # fine-tuned, eval mode
    pretrainer: BertForPreTraining  # after pretraining, before fine-tuning
    tokenizer: object  # the BPETokenizer both use: encode new text with it (or with `classify`)
    recipe: BertRecipe
    histories: dict  # "total", "mlm", "nsp" (absent without pretraining), "finetune" -> History


def train_bert_docstring_classifier(recipe: BertRecipe | None = None, *, cache_dir: str | Path | None = None,
                                    reuse: bool = True, save: bool = True, progress: bool = True,
                                    device=None) -> TrainedBert:
    """Rebuild the chapter-05 docstring classifier: pretrain (MLM + NSP), then fine-tune — deterministic for a
    given recipe and device.

    With ``reuse`` the models are read from the cache (:mod:`bigtut.recipes.cache`: keyed by the recipe, the
    versions of bigtut and torch, and every source file of the package) when a run saved them there;
    otherwise the recipe runs and, with ``save``, stores safetensors weights, the tokenizer as JSON and the
    training histories. An entry that fails to load is rebuilt with a warning.
    """
    recipe = recipe or BertRecipe()
    device = torch.device(device) if device is not None else get_device()

    def build() -> TrainedBert:
        tokenizer = build_bert_tokenizer(recipe)
        seed_everything(recipe.seed)
        pretrainer = BertForPreTraining(recipe.config(tokenizer))
        histories = {}
        if recipe.pretrain_steps:
            histories = pretrain_bert(pretrainer, tokenizer, recipe, progress=progress, device=device)
        seed_everything(recipe.seed)
        classifier, histories["finetune"] = finetune_bert(pretrainer.bert, tokenizer, recipe, progress=progress,
                                                          device=device)
        return TrainedBert(classifier.eval(), pretrainer.eval(), tokenizer, recipe, histories)

    def store(run: TrainedBert, folder: Path) -> None:
        run.tokenizer.save(folder / "tokenizer.json")
        (folder / "config.json").write_text(json.dumps(asdict(run.classifier.config)))
        save_checkpoint(run.pretrainer, folder / "pretrainer.safetensors", {"recipe": asdict(recipe)})
        save_checkpoint(run.classifier, folder / "classifier.safetensors",
                        {"recipe": asdict(recipe), "histories": {k: asdict(h) for k, h in run.histories.items()}})

    def load(folder: Path) -> TrainedBert:
        tokenizer = load_tokenizer(folder / "tokenizer.json")
        pretrainer = BertForPreTraining(recipe.config(tokenizer))
        classifier = BertForSequenceClassification(BertConfig(**json.loads((folder / "config.json").read_text())))
        load_checkpoint(pretrainer, folder / "pretrainer.safetensors")
        meta = load_checkpoint(classifier, folder / "classifier.safetensors")
        histories = {name: History(**h) for name, h in meta["histories"].items()}
        return TrainedBert(classifier.eval(), pretrainer.eval(), tokenizer, recipe, histories)

    run = load_or_build("bert_docstrings", asdict(recipe), build, store, load, cache_dir=cache_dir, reuse=reuse,
                        store=save)
    run.classifier.to(device)
    run.pretrainer.to(device)
    return run
