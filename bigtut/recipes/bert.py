"""The chapter-05 recipe: pretrain a small BERT (MLM + NSP) on Python's documentation, fine-tune it to tell
which standard-library family a docstring comes from, and cache the result under ``runs/``.

Chapters 06–10 load the classifier with ``train_bert_docstring_classifier()`` (a few seconds from the cache,
about 40 s to rebuild on a 2-core CPU).
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.nn.functional as F

from bigtut.bert import (
    IGNORE_INDEX,
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
from bigtut.data import LABELS, docstring_splits, epoch_batches, python_docs_corpus
from bigtut.data.sentences import NSPSampler, docs_sentences, encode_pairs
from bigtut.recipes.cache import load_or_build
from bigtut.runtime import get_device, seed_everything
from bigtut.tokenizers import BPETokenizer, load_tokenizer
from bigtut.training import History, fit, load_checkpoint, save_checkpoint

__all__ = ["LONG_PRETRAIN", "LONG_PRETRAIN_DIR", "PACKAGES_PRETRAIN", "PACKAGES_PRETRAIN_DIR", "BertRecipe",
           "PretrainedBert", "TrainedBert", "build_bert_tokenizer", "finetune_bert", "first_pretraining_losses",
           "load_pretrained_bert", "pretrain_bert", "pretrain_bert_long", "pretraining_batches",
           "pretraining_documents", "save_pretrained_bert", "tokenizer_training_text",
           "train_bert_docstring_classifier", "write_long_pretraining"]


#: Pretraining corpora -> the fraction of their documents held out for validation.
PRETRAINING_CORPORA = {"python_docs": 0.1, "packages": 0.02}
#: Characters of the packages' docstrings the tokenizer is trained on (BPE on all 34 MB would take an hour).
TOKENIZER_SAMPLE_CHARS = 2_000_000


@dataclass(frozen=True)
class BertRecipe:
    """Every setting of :func:`train_bert_docstring_classifier`; the cache is keyed by all of them."""

    seed: int = 0
    corpus: str = "python_docs"  # pretraining text: "python_docs" (topics) or "packages" (installed docstrings)
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
    pretrain_weight_decay: float = 0.0  # on weight matrices only (bigtut.training.weight_decay_groups)
    finetune_steps: int = 450
    finetune_batch: int = 16
    finetune_lr: float = 1e-3

    def __post_init__(self):
        if self.corpus not in PRETRAINING_CORPORA:
            raise ValueError(f"corpus must be one of {sorted(PRETRAINING_CORPORA)}, got {self.corpus!r}")
        if self.pretrain_steps < 0 or self.finetune_steps < 1:
            raise ValueError(f"need pretrain_steps >= 0 and finetune_steps >= 1, got {self.pretrain_steps}, "
                             f"{self.finetune_steps}")

    def config(self, tokenizer, **changes) -> BertConfig:
        """The model's :class:`BertConfig` for this recipe and tokenizer."""
        settings = dict(vocab_size=tokenizer.vocab_size, max_len=self.max_len, d_model=self.d_model,
                        num_layers=self.num_layers, num_heads=self.num_heads, d_ff=self.d_ff,
                        dropout=self.dropout, pad_id=tokenizer.token_to_id("[PAD]"))
        return BertConfig(**{**settings, **changes})


def tokenizer_training_text(recipe: BertRecipe) -> str:
    """What :func:`build_bert_tokenizer` learns its merges from: the training docstrings plus, for
    ``corpus="python_docs"``, the training topics of the Python docs, or, for ``"packages"``, an evenly spaced
    sample of the packages' training docstrings (every k-th, about ``TOKENIZER_SAMPLE_CHARS`` characters)."""
    if recipe.corpus == "python_docs":
        text = python_docs_corpus("train")
    else:
        documents = [" ".join(doc) for doc in pretraining_documents(recipe, "train")]
        every = max(1, sum(map(len, documents)) // TOKENIZER_SAMPLE_CHARS)
        text = "\n\n".join(documents[::every]) + "\n\n"
    return text + "\n".join(d.text for d in docstring_splits()["train"])


def build_bert_tokenizer(recipe: BertRecipe | None = None):
    """The recipe's byte-level BPE tokenizer (``recipe.vocab_size`` ids) trained on
    :func:`tokenizer_training_text`; the special tokens are ``[PAD] [CLS] [SEP] [MASK]``."""
    recipe = recipe or BertRecipe()
    return BPETokenizer.train(tokenizer_training_text(recipe), recipe.vocab_size, special_tokens=SPECIAL_TOKENS)


def pretraining_documents(recipe: BertRecipe, split: str) -> list[list[str]]:
    """The recipe's pretraining documents of ``split`` ("train" or "val"), each a list of sentences.

    The packages' docstrings take about a minute to read and split; they are kept under ``runs/`` (keyed by the
    package versions and bigtut's sources, like every cached model) and in memory once read."""
    if recipe.corpus == "python_docs":
        return docs_sentences(split, val_fraction=PRETRAINING_CORPORA[recipe.corpus],
                              docstrings=recipe.pretrain_on_docstrings)
    return _package_documents(recipe.pretrain_on_docstrings)[split]


@lru_cache(maxsize=2)
def _package_documents(docstrings: bool) -> dict[str, list[list[str]]]:
    from bigtut.data.package_docs import package_versions

    val_fraction = PRETRAINING_CORPORA["packages"]
    fields = {"val_fraction": val_fraction, "docstrings": docstrings, "versions": package_versions()}

    def build():
        return {split: docs_sentences(split, val_fraction=val_fraction, docstrings=docstrings, source="packages")
                for split in ("train", "val")}

    def save(documents, folder: Path) -> None:
        (folder / "documents.json").write_text(json.dumps(documents))

    def load(folder: Path):
        return json.loads((folder / "documents.json").read_text())

    return load_or_build("package_documents", fields, build, save, load)


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
    return _pretrain(model, tokenizer, recipe, progress=progress, device=device)[0]


class _EnoughSteps(Exception):
    """Raised by the batch source to stop pretraining after the first steps (see :func:`first_pretraining_losses`)."""


def _pretrain(model, tokenizer, recipe: BertRecipe, *, progress=True, device=None, eval_every=None, stop_after=None):
    """:func:`pretrain_bert`, plus the validation MLM/NSP accuracies at every evaluation, and an early stop.

    Returns ``(histories, scores)`` — ``scores`` maps ``"step"``, ``"mlm_accuracy"`` (on the masked positions)
    and ``"nsp_accuracy"`` to lists; or, with ``stop_after=n``, the list of the first ``n`` training losses
    (MLM + NSP) of the very same run (same schedule, same batches).
    """
    docs = {split: pretraining_documents(recipe, split) for split in ("train", "val")}
    train_batches = pretraining_batches(docs["train"], tokenizer, recipe, seed=recipe.seed)
    val_source = pretraining_batches(docs["val"], tokenizer, recipe, seed=recipe.seed + 1, batch_size=64)
    val_batches = [val_source() for _ in range(2)]  # a fixed validation set
    logs = {True: [], False: []}  # (mlm, nsp, total) per call, in training / in evaluation
    hits = []  # (masked-token hits, masked tokens, NSP hits, pairs) per validation batch

    def loss_fn(model, batch):
        mlm, nsp = pretraining_loss(model, batch)
        logs[model.training].append((mlm.item(), nsp.item(), (mlm + nsp).item()))
        if not model.training:  # validation (no gradients): also count correct guesses
            ids, segments, mask, labels, nsp_labels = batch
            mlm_logits, nsp_logits = model(ids, mask, segments)  # (B, L, V), (B, 2)
            selected = labels != IGNORE_INDEX  # (B, L)
            hits.append((int((mlm_logits[selected].argmax(-1) == labels[selected]).sum()), int(selected.sum()),
                         int((nsp_logits.argmax(-1) == nsp_labels).sum()), len(nsp_labels)))
        return mlm + nsp

    def batches():
        if stop_after is not None and len(logs[True]) >= stop_after:
            raise _EnoughSteps
        return train_batches()

    steps = recipe.pretrain_steps
    try:
        total = fit(model, loss_fn, batches, steps=steps, lr=recipe.pretrain_lr,
                    weight_decay=recipe.pretrain_weight_decay, val_batches=val_batches,
                    eval_every=eval_every or max(steps // 6, 1), warmup_steps=steps // 10, schedule="cosine",
                    grad_clip=1.0, device=device, desc="pretrain", progress=progress)
    except _EnoughSteps:
        return [t[2] for t in logs[True]]
    histories = {"total": total}
    n = len(val_batches)
    for i, name in enumerate(("mlm", "nsp")):
        val = [v[i] for v in logs[False]]
        histories[name] = History(total.step, [t[i] for t in logs[True]], total.val_step,
                                  [sum(val[j : j + n]) / n for j in range(0, len(val), n)], total.seconds)
    groups = [hits[j : j + n] for j in range(0, len(hits), n)]  # one group per evaluation
    scores = {"step": list(total.val_step),
              "mlm_accuracy": [sum(g[0] for g in group) / sum(g[1] for g in group) for group in groups],
              "nsp_accuracy": [sum(g[2] for g in group) / sum(g[3] for g in group) for group in groups]}
    return histories, scores


def finetune_bert(encoder: Bert, tokenizer, recipe: BertRecipe, *, progress: bool = True, device=None,
                  examples=None, validate: bool = True):
    """Train a docstring-family classifier whose encoder starts from a copy of ``encoder``'s weights.

    Args:
        examples: the training docstrings (default: the whole training split), e.g. a few per class.
        validate: measure the loss on the validation split (``eval_every`` = a sixth of the steps).

    Returns:
        ``(classifier, history)``.
    """
    classifier = BertForSequenceClassification(recipe.config(tokenizer, num_labels=len(LABELS)))
    classifier.bert.load_state_dict(encoder.state_dict())
    data, splits = {}, docstring_splits()
    if examples is not None:
        splits = {**splits, "train": list(examples)}
    for name in ("train", "val"):  # the test split stays untouched until the final evaluation
        ids, mask = encode_for_classifier([d.text for d in splits[name]], tokenizer, recipe.max_len)  # (N, L) x2
        data[name] = (ids, mask, torch.tensor([d.label for d in splits[name]]))
    next_batch = epoch_batches(*data["train"], batch_size=recipe.finetune_batch,
                               generator=torch.Generator().manual_seed(recipe.seed))

    def loss_fn(model, batch):
        ids, mask, labels = batch
        return F.cross_entropy(model(ids, attention_mask=mask), labels)

    steps = recipe.finetune_steps
    history = fit(classifier, loss_fn, next_batch, steps=steps, lr=recipe.finetune_lr,
                  val_batches=[data["val"]] if validate else None,
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


# ------------------------------------------------------------------------------------------------------------
# A longer pretraining than a notebook can afford, shipped as a committed checkpoint (checkpoints/, a few MB)
# ------------------------------------------------------------------------------------------------------------
#: Where the committed checkpoint lives: ``checkpoints/bert_pretrain_long/`` at the root of the source checkout.
LONG_PRETRAIN_DIR = Path(__file__).resolve().parents[2] / "checkpoints" / "bert_pretrain_long"
#: The chapter's recipe, pretrained 4 times longer (the notebook's own run stops at 1200 steps).
LONG_PRETRAIN = BertRecipe(pretrain_steps=4800)
LONG_EVAL_EVERY = 200  # validation MLM/NSP accuracy every 200 steps: the curve the notebook draws

#: The in-domain pretraining: the installed packages' docstrings (34 MB), a wider and deeper BERT, ~45 min on 2 cores.
PACKAGES_PRETRAIN_DIR = LONG_PRETRAIN_DIR.parent / "bert_packages"
PACKAGES_PRETRAIN = BertRecipe(corpus="packages", vocab_size=2048, d_model=192, num_layers=4, num_heads=6, d_ff=768,
                               pretrain_steps=8000, pretrain_batch=64, pretrain_lr=1e-3, pretrain_weight_decay=0.01)
PACKAGES_EVAL_EVERY = 400


@dataclass
class PretrainedBert:
    """What :func:`pretrain_bert_long` builds and :func:`load_pretrained_bert` reads back."""

    model: BertForPreTraining  # eval mode
    tokenizer: object  # the recipe's BPETokenizer
    recipe: BertRecipe
    metadata: dict  # "first_losses", "scores" (step, mlm_accuracy, nsp_accuracy), "histories", "seconds", ...


def corpus_summary(recipe: BertRecipe) -> dict:
    """What the recipe pretrains on, in numbers: documents and sentences per split; for ``corpus="packages"`` also
    the docstrings read, their characters, the package versions, the corpus fingerprint and its overlap with the
    fine-tuning task (docstrings shared, share of the task's word 8-grams found in the corpus)."""
    summary = {split: {"documents": len(docs), "sentences": sum(map(len, docs))}
               for split in ("train", "val") for docs in [pretraining_documents(recipe, split)]}
    if recipe.corpus == "packages":
        from bigtut.data import package_docs as pd
        from bigtut.data.docstrings import docstring_dataset

        corpus, task = pd.package_docstrings(), [d.text for d in docstring_dataset()]
        in_corpus = {pd.normalised(t) for t in corpus}
        summary.update(docstrings=len(corpus), characters=sum(map(len, corpus)), versions=pd.package_versions(),
                       fingerprint=pd.fingerprint(corpus), task_8gram_overlap=pd.ngram_overlap(corpus, task, 8),
                       shared_docstrings=sum(pd.normalised(t) in in_corpus for t in task))
    return summary


def pretrain_bert_long(recipe: BertRecipe = LONG_PRETRAIN, *, eval_every: int = LONG_EVAL_EVERY,
                       progress: bool = True, device="cpu") -> PretrainedBert:
    """Pretrain the chapter's BERT (MLM + NSP) for ``recipe.pretrain_steps`` steps, recording the validation
    MLM and NSP accuracies every ``eval_every`` steps and the first 20 training losses (what the checkpoint
    test replays). Deterministic for a given recipe, device and torch build."""
    tokenizer = build_bert_tokenizer(recipe)
    seed_everything(recipe.seed)
    model = BertForPreTraining(recipe.config(tokenizer))
    histories, scores = _pretrain(model, tokenizer, recipe, progress=progress, device=device, eval_every=eval_every)
    text_digest = hashlib.sha256(tokenizer_training_text(recipe).encode()).hexdigest()
    metadata = {"recipe": asdict(recipe), "eval_every": eval_every, "first_losses": histories["total"].train_loss[:20],
                "tokenizer_text_sha256": text_digest, "corpus": corpus_summary(recipe),
                "scores": scores, "histories": {k: asdict(h) for k, h in histories.items()},
                "seconds": round(histories["total"].seconds, 1), "torch": torch.__version__, "device": str(device)}
    return PretrainedBert(model.eval(), tokenizer, recipe, metadata)


def first_pretraining_losses(recipe: BertRecipe = LONG_PRETRAIN, n: int = 20, device="cpu",
                             tokenizer=None) -> list[float]:
    """The first ``n`` training losses (MLM + NSP) of :func:`pretrain_bert_long`'s run — same tokenizer, seed,
    batches and learning-rate schedule — without running the rest (a few seconds).

    ``tokenizer``: the run's tokenizer if you have it (e.g. a checkpoint's); by default it is rebuilt."""
    tokenizer = tokenizer or build_bert_tokenizer(recipe)
    seed_everything(recipe.seed)
    model = BertForPreTraining(recipe.config(tokenizer))
    return _pretrain(model, tokenizer, recipe, progress=False, device=device, stop_after=n)


def save_pretrained_bert(run: PretrainedBert, folder: str | Path = LONG_PRETRAIN_DIR) -> Path:
    """Write ``model.safetensors`` (weights + metadata), ``config.json`` and ``tokenizer.json`` atomically."""
    from bigtut.recipes.cache import write_atomically

    def write(tmp: Path) -> None:
        run.tokenizer.save(tmp / "tokenizer.json")
        (tmp / "config.json").write_text(json.dumps(asdict(run.model.config), indent=1) + "\n")
        save_checkpoint(run.model, tmp / "model.safetensors", run.metadata)

    return write_atomically(Path(folder), write, replace=True)


def load_pretrained_bert(folder: str | Path = LONG_PRETRAIN_DIR, device=None) -> PretrainedBert:
    """Read a checkpoint written by :func:`save_pretrained_bert` (safetensors: loading never runs code)."""
    folder = Path(folder)
    if not (folder / "model.safetensors").exists():
        raise FileNotFoundError(f"no pretrained BERT at {folder}; regenerate it with "
                                f"`python -c 'from bigtut.recipes.bert import write_long_pretraining as w; w()'`")
    tokenizer = load_tokenizer(folder / "tokenizer.json")
    model = BertForPreTraining(BertConfig(**json.loads((folder / "config.json").read_text())))
    metadata = load_checkpoint(model, folder / "model.safetensors")
    recipe = BertRecipe(**metadata["recipe"])
    return PretrainedBert(model.to(device or get_device()).eval(), tokenizer, recipe, metadata)


def write_long_pretraining(folder: str | Path = LONG_PRETRAIN_DIR, progress: bool = True,
                           recipe: BertRecipe = LONG_PRETRAIN, eval_every: int = LONG_EVAL_EVERY) -> Path:
    """Regenerate a committed checkpoint: :func:`pretrain_bert_long` on the CPU, then save it (the default,
    ``checkpoints/bert_pretrain_long``, takes about 5 min; ``PACKAGES_PRETRAIN`` about 45 min)."""
    run = pretrain_bert_long(recipe, eval_every=eval_every, progress=progress, device="cpu")
    return save_pretrained_bert(run, folder)
