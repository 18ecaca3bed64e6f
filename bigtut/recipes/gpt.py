"""The chapter-04 recipes: pretrain a character-level GPT on Python's documentation, then fine-tune it (or a
randomly initialised one) to tell which standard-library family a docstring comes from; and the committed
5 000-step checkpoint of the same pretraining (``checkpoints/gpt_char_5000/``), with the recipe that rebuilds it
(``python -m bigtut.recipes.checkpoints gpt``) and its loader.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
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

__all__ = ["GPT_CHECKPOINT_DIR", "GPTCheckpoint", "GPTClassifierRun", "PretrainRun", "TrainedGPT",
           "build_gpt_checkpoint", "corpus_fingerprint", "lm_loss", "load_gpt_checkpoint", "load_or_train_gpt",
           "load_or_train_gpt_from_scratch",
           "long_run_settings", "pretrain_char_gpt", "python_docs_char_tokenizer", "train_gpt_docstring_classifier"]


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



def load_or_train_gpt_from_scratch(*, steps: int = 50, seed: int = 0, cache_dir: str | Path | None = None,
                                   reuse: bool = True, save: bool = True, device=None,
                                   progress: bool = True) -> GPTClassifierRun:
    """Notebook 04's from-scratch baseline — ``train_gpt_docstring_classifier(None, steps=steps, seed=seed)``, a
    random GPT body fine-tuned with the same recipe as the pretrained one — loaded from the ``runs/`` cache or
    trained and stored. ``make models`` builds it, so the notebook spends its time budget on the pretrained model.
    """
    device = torch.device(device) if device is not None else get_device()
    settings = {"steps": steps, "seed": seed}

    def build() -> GPTClassifierRun:
        return train_gpt_docstring_classifier(None, steps=steps, seed=seed, device=device, progress=progress)

    def store(run: GPTClassifierRun, folder: Path) -> None:
        run.tokenizer.save(folder / "tokenizer.json")
        meta = {"gpt_config": asdict(run.model.gpt.config), "num_classes": run.model.num_classes,
                "pool": run.model.pool, "val_accuracy": run.val_accuracy, "test_accuracy": run.test_accuracy,
                "config": run.config, "history": asdict(run.history)}
        save_checkpoint(run.model, folder / "classifier.safetensors", meta)

    def load(folder: Path) -> GPTClassifierRun:
        meta = checkpoint_metadata(folder / "classifier.safetensors")
        model = GPTClassifier(GPT(GPTConfig(**meta["gpt_config"])), meta["num_classes"], pool=meta["pool"])
        load_checkpoint(model, folder / "classifier.safetensors")
        return GPTClassifierRun(model.eval(), load_tokenizer(folder / "tokenizer.json"), History(**meta["history"]),
                                meta["val_accuracy"], meta["test_accuracy"], meta["config"])

    run = load_or_build("gpt_docstrings_from_scratch", settings, build, store, load, cache_dir=cache_dir,
                        reuse=reuse, store=save)
    run.model.to(device)
    return run


# ------------------------------------------------------------------------------ the committed 5 000-step checkpoint

GPT_CHECKPOINT_DIR = Path(__file__).resolve().parents[2] / "checkpoints" / "gpt_char_5000"
"""Where the repository keeps the 5 000-step character GPT (``model.safetensors``, ``config.json``,
``tokenizer.json``, ``history.json``)."""

VAL_SLICE_CHARS = 4096  # the checkpoint also stores its bits per character on the first 4 096 validation characters


def long_run_settings(steps: int = 5000, seed: int = 0) -> dict:
    """The keyword arguments of :func:`pretrain_char_gpt` for a run of ``steps`` steps with notebook 04's recipe:
    batch 12, learning rate 3e-3, 50 warm-up steps (shortened only for smoke runs of 50 steps or fewer), seed 0.

    With at least 51 steps the warm-up is the notebook's, and the learning rate of step ``s < 50`` is
    ``3e-3 * (s + 1) / 50`` whatever the total: every such run makes the same first 50 steps.
    """
    warmup = 50 if steps > 50 else steps // 2
    return {"steps": steps, "batch_size": 12, "lr": 3e-3, "warmup_steps": warmup, "seed": seed, "eval_every": 100}


def corpus_fingerprint() -> str:
    """SHA-256 (first 16 hex digits) of the training and validation text: the Python documentation differs
    between Python versions, and a checkpoint's stored numbers hold only for the text it was built from."""
    digest = hashlib.sha256()
    for split in ("train", "val"):
        digest.update(python_docs_corpus(split).encode())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


@dataclass
class GPTCheckpoint:
    """What :func:`load_gpt_checkpoint` returns."""

    model: GPT  # eval mode
    tokenizer: object  # the character tokenizer it was trained with
    meta: dict  # config.json: config, settings, first_losses, val_bpc, val_slice_bpc, corpus, versions, seconds
    history: object  # bigtut.training.History of the whole run


def build_gpt_checkpoint(folder: str | Path = GPT_CHECKPOINT_DIR, *, steps: int = 5000, seed: int = 0, device=None,
                         progress: bool = True, first_losses: int = 20) -> GPTCheckpoint:
    """Train notebook 04's character GPT for ``steps`` steps (:func:`pretrain_char_gpt` with
    :func:`long_run_settings`) and write it to ``folder``:

    * ``model.safetensors`` — the weights (safetensors: loading never runs code), the metadata inside too;
    * ``config.json`` — the :class:`~bigtut.gpt.GPTConfig`, the recipe's settings, the first ``first_losses``
      training losses, bits per character on the whole validation split and on its first 4 096 characters,
      the corpus fingerprint, torch version, device and threads;
    * ``tokenizer.json`` — the character tokenizer; ``history.json`` — every training and validation loss.

    Deterministic given ``steps``, ``seed``, the device and the Python documentation (the corpus);
    ``tests/test_checkpoint_gpt.py`` reruns the first steps and compares the losses.
    """
    device = torch.device(device) if device is not None else get_device()
    settings = long_run_settings(steps, seed)
    tokenizer = python_docs_char_tokenizer()
    config = GPTConfig(vocab_size=tokenizer.vocab_size)  # the chapter's: 4 layers, 4 heads, width 128, context 64
    run = pretrain_char_gpt(config, device=device, progress=progress, **settings)
    model = run.model.eval()
    meta = {
        "recipe": "bigtut.recipes.gpt.pretrain_char_gpt", "config": asdict(config), "settings": settings,
        "first_losses": run.history.train_loss[:first_losses], "val_bpc": run.val_bpc,
        "val_slice_chars": VAL_SLICE_CHARS,
        "val_slice_bpc": bits_per_character(model, python_docs_corpus("val")[:VAL_SLICE_CHARS], run.tokenizer),
        "corpus_sha256": corpus_fingerprint(), "torch": torch.__version__, "device": device.type,
        "torch_threads": torch.get_num_threads(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "seconds": round(run.history.seconds, 1),
    }
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_checkpoint(model, folder / "model.safetensors", meta)
    run.tokenizer.save(folder / "tokenizer.json")
    (folder / "config.json").write_text(json.dumps(meta, indent=1) + "\n")
    (folder / "history.json").write_text(json.dumps(asdict(run.history)) + "\n")
    return GPTCheckpoint(model, run.tokenizer, meta, run.history)


def load_gpt_checkpoint(folder: str | Path = GPT_CHECKPOINT_DIR, device=None) -> GPTCheckpoint:
    """Load a checkpoint written by :func:`build_gpt_checkpoint` (by default the repository's 5 000-step GPT).

    Raises ``FileNotFoundError`` naming the command that rebuilds it when the folder is incomplete.
    """
    folder = Path(folder)
    missing = [n for n in ("model.safetensors", "config.json", "tokenizer.json", "history.json")
               if not (folder / n).is_file()]
    if missing:
        raise FileNotFoundError(f"{folder} lacks {', '.join(missing)}; rebuild it with "
                                f"`python -m bigtut.recipes.checkpoints gpt --out {folder}`")
    meta = json.loads((folder / "config.json").read_text())
    model = GPT(GPTConfig(**meta["config"]))
    load_checkpoint(model, folder / "model.safetensors")
    history = History(**json.loads((folder / "history.json").read_text()))
    device = torch.device(device) if device is not None else get_device()
    return GPTCheckpoint(model.to(device).eval(), load_tokenizer(folder / "tokenizer.json"), meta, history)
