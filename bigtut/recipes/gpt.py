"""The chapter-04 recipes: pretrain a character-level GPT on Python's documentation, then fine-tune it (or a
randomly initialised one) to tell which standard-library family a docstring comes from.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from bigtut.data import (
    LABELS,
    docstring_splits,
    encode_texts,
    minibatches,
    python_docs_corpus,
    random_lm_batch,
)
from bigtut.evaluation import accuracy, bits_per_character
from bigtut.gpt import GPT, GPTClassifier, GPTConfig
from bigtut.recipes.cache import load_or_build
from bigtut.runtime import get_device, seed_everything
from bigtut.tokenizers import CharTokenizer, load_tokenizer
from bigtut.training import History, checkpoint_metadata, fit, load_checkpoint, save_checkpoint

__all__ = ["GPTClassifierRun", "PretrainRun", "TrainedGPT", "lm_loss", "load_or_train_gpt", "pretrain_char_gpt",
           "python_docs_char_tokenizer", "train_gpt_docstring_classifier"]


def lm_loss(model: GPT, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """The ``loss_fn`` for :func:`bigtut.training.fit`: mean next-token cross-entropy (nats) of ``(x, y)``."""
    x, y = batch
    return model(x, y).loss


def python_docs_char_tokenizer():
    """The chapter's character tokenizer: the characters of the training split, plus ``<pad>`` and ``<unk>``."""
    return CharTokenizer.train(python_docs_corpus("train"), special_tokens=("<pad>",), unk_token="<unk>")


@dataclass
class PretrainRun:
    """What :func:`pretrain_char_gpt` returns."""

    model: GPT
    tokenizer: object
    history: object  # bigtut.training.History
    val_bpc: float  # bits per character on the whole validation split


def pretrain_char_gpt(config: GPTConfig | None = None, *, steps: int = 900, batch_size: int = 12,
                      lr: float = 3e-3, warmup_steps: int = 50, seed: int = 0, device=None,
                      progress: bool = True, eval_every: int = 100) -> PretrainRun:
    """Pretrain a character-level GPT on Python's reference documentation (deterministic given ``seed``
    and the device). The validation split is the last 10 % of the topics sorted by name.
    """
    device = torch.device(device) if device is not None else get_device()
    tokenizer = python_docs_char_tokenizer()
    config = config or GPTConfig(vocab_size=tokenizer.vocab_size)
    if config.vocab_size < tokenizer.vocab_size:
        raise ValueError(f"config.vocab_size={config.vocab_size} < the tokenizer's {tokenizer.vocab_size}")
    train_ids = torch.tensor(tokenizer.encode(python_docs_corpus("train")))
    val_ids = torch.tensor(tokenizer.encode(python_docs_corpus("val")))
    seed_everything(seed)
    model = GPT(config)
    batches = torch.Generator().manual_seed(seed)
    val_gen = torch.Generator().manual_seed(seed + 1)
    val_batches = [random_lm_batch(val_ids, config.block_size, 64, val_gen) for _ in range(4)]  # fixed subset
    history = fit(model, lm_loss, lambda: random_lm_batch(train_ids, config.block_size, batch_size, batches),
                  steps=steps, lr=lr, weight_decay=0.1, val_batches=val_batches, eval_every=eval_every,
                  grad_clip=1.0, warmup_steps=warmup_steps, schedule="cosine", device=device,
                  desc="pretrain", progress=progress)
    return PretrainRun(model, tokenizer, history, bits_per_character(model, python_docs_corpus("val"), tokenizer))


@dataclass
class GPTClassifierRun:
    """What :func:`train_gpt_docstring_classifier` returns."""

    model: GPTClassifier
    tokenizer: object
    history: object  # bigtut.training.History
    val_accuracy: float
    test_accuracy: float
    config: dict  # the arguments that rebuild it


def train_gpt_docstring_classifier(pretrained: PretrainRun | None = None, *, pool: str = "mean", steps: int = 50,
                                   batch_size: int = 32, lr: float = 1e-3, seed: int = 0, device=None,
                                   progress: bool = True) -> GPTClassifierRun:
    """Fine-tune a GPT to tell which standard-library family a docstring comes from (``bigtut.data.LABELS``).

    With ``pretrained`` (from :func:`pretrain_char_gpt`) the body starts from a copy of its weights;
    without, from a random GPT of the default config — the from-scratch baseline. Each docstring is cut to
    the first ``block_size`` characters and right-padded with ``<pad>`` (attention mask 0). Deterministic
    given the arguments and the device.
    """
    device = torch.device(device) if device is not None else get_device()
    seed_everything(seed)
    if pretrained is not None:
        tokenizer, body = pretrained.tokenizer, copy.deepcopy(pretrained.model)
    else:
        tokenizer = python_docs_char_tokenizer()
        body = GPT(GPTConfig(vocab_size=tokenizer.vocab_size))
    model = GPTClassifier(body, len(LABELS), pool=pool)
    pad = tokenizer.token_to_id("<pad>")
    data = {}
    for split, items in docstring_splits().items():
        ids, lengths = encode_texts([d.text for d in items], tokenizer, body.config.block_size, pad)  # (N, L), (N,)
        mask = torch.arange(ids.shape[1])[None, :] < lengths[:, None]  # (N, L): True at real characters
        data[split] = (ids, mask, torch.tensor([d.label for d in items]))
    gen = torch.Generator().manual_seed(seed)

    def epochs():
        while True:
            yield from minibatches(*data["train"], batch_size=batch_size, generator=gen)

    def loss_fn(model, batch):
        ids, mask, labels = batch
        return F.cross_entropy(model(ids, mask), labels)

    stream = epochs()
    history = fit(model, loss_fn, lambda: next(stream), steps=steps, lr=lr,
                  weight_decay=0.01, warmup_steps=min(10, steps - 1), schedule="cosine", grad_clip=1.0,
                  val_batches=[data["val"]], eval_every=max(1, steps // 6), device=device,
                  desc="fine-tune" if pretrained is not None else "from scratch", progress=progress)
    config = {"pretrained": pretrained is not None, "pool": pool, "steps": steps, "batch_size": batch_size,
              "lr": lr, "seed": seed}
    return GPTClassifierRun(model, tokenizer, history, accuracy(model, *data["val"]), accuracy(model, *data["test"]),
                            config)


@dataclass
class TrainedGPT:
    """What :func:`load_or_train_gpt` returns: chapter 04's two trained models, for chapters 06–10."""

    language_model: GPT  # pretrained on the Python docs, eval mode
    classifier: GPTClassifier  # its fine-tuned copy with a docstring-family head, eval mode
    tokenizer: object  # the character tokenizer both use (``<pad>`` pads)
    val_bpc: float  # the language model's bits per character on the validation split
    val_accuracy: float  # the classifier's docstring accuracy, validation split
    test_accuracy: float  # ... and test split
    settings: dict  # the arguments that rebuild them
    histories: dict  # "pretrain", "finetune" -> History


def load_or_train_gpt(*, pretrain_steps: int = 900, finetune_steps: int = 50, seed: int = 0,
                      cache_dir: str | Path | None = None, reuse: bool = True, save: bool = True, device=None,
                      progress: bool = True) -> TrainedGPT:
    """Chapter 04's GPT and GPT docstring classifier, loaded from the ``runs/`` cache or trained and stored.

    The recipe is notebook 04's: :func:`pretrain_char_gpt` (default config, batch 12, lr 3e-3), then
    :func:`train_gpt_docstring_classifier` on a copy (batch 32, lr 1e-3, mean pooling). The cache key covers
    these settings, the package and torch versions and every source file of ``bigtut``
    (:mod:`bigtut.recipes.cache`); an entry that fails to load is rebuilt with a warning.
    """
    device = torch.device(device) if device is not None else get_device()
    settings = {"pretrain_steps": pretrain_steps, "finetune_steps": finetune_steps, "seed": seed}

    def build() -> TrainedGPT:
        run = pretrain_char_gpt(steps=pretrain_steps, seed=seed, device=device, progress=progress,
                                warmup_steps=min(50, pretrain_steps - 1))
        clf = train_gpt_docstring_classifier(run, steps=finetune_steps, seed=seed, device=device, progress=progress)
        return TrainedGPT(run.model.eval(), clf.model.eval(), run.tokenizer, run.val_bpc, clf.val_accuracy,
                          clf.test_accuracy, settings, {"pretrain": run.history, "finetune": clf.history})

    def store(trained: TrainedGPT, folder: Path) -> None:
        trained.tokenizer.save(folder / "tokenizer.json")
        meta = {"config": asdict(trained.language_model.config), "val_bpc": trained.val_bpc,
                "val_accuracy": trained.val_accuracy, "test_accuracy": trained.test_accuracy,
                "num_classes": trained.classifier.num_classes, "pool": trained.classifier.pool,
                "histories": {k: asdict(h) for k, h in trained.histories.items()}}
        save_checkpoint(trained.language_model, folder / "language_model.safetensors")
        save_checkpoint(trained.classifier, folder / "classifier.safetensors", meta)

    def load(folder: Path) -> TrainedGPT:
        tokenizer = load_tokenizer(folder / "tokenizer.json")
        meta = checkpoint_metadata(folder / "classifier.safetensors")
        config = GPTConfig(**meta["config"])
        language_model = GPT(config)
        classifier = GPTClassifier(GPT(config), meta["num_classes"], pool=meta["pool"])
        load_checkpoint(language_model, folder / "language_model.safetensors")
        load_checkpoint(classifier, folder / "classifier.safetensors")
        histories = {name: History(**h) for name, h in meta["histories"].items()}
        return TrainedGPT(language_model.eval(), classifier.eval(), tokenizer, meta["val_bpc"], meta["val_accuracy"],
                          meta["test_accuracy"], settings, histories)

    trained = load_or_build("gpt_docstrings", settings, build, store, load, cache_dir=cache_dir, reuse=reuse,
                            store=save)
    trained.language_model.to(device)
    trained.classifier.to(device)
    return trained

