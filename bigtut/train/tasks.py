"""What the trainer can train: each task builds its tokenizer, its map-style data set and its model, and turns a
list of sample indices into a batch and a batch into loss sums.

Two rules make one process and W processes compute the same thing:

* a sample is a pure function of its index, the seed and the epoch — never of the process that prepares it,
  of its neighbours in the batch or of a random state that drifts (BERT's sentence pairs and masks are drawn
  from a generator seeded by ``(seed, epoch, index)``, at the full ``max_len`` before trimming);
* a loss is returned as *sums* with the *counts* they are divided by. BERT's MLM loss is a mean over masked
  tokens, and two halves of a batch hold different numbers of them: the mean of the two halves' means is not
  the mean over the batch. The trainer divides each rank's sum by the count of the whole global batch.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from bigtut.distributed import LMWindows

__all__ = ["DEFAULTS", "TASKS", "BertTask", "GPTTask", "build_task", "sample_seed"]

DEFAULTS = {  # the chapters' recipes: notebook 04's GPT pretraining, notebook 05's BERT pretraining
    "gpt": {"n_layer": 4, "n_head": 4, "d_model": 128, "block_size": 64, "batch_size": 12, "lr": 3e-3},
    "bert": {"n_layer": 2, "n_head": 4, "d_model": 64, "block_size": 64, "batch_size": 32, "lr": 2e-3},
}


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """A 63-bit seed for sample ``index`` in ``epoch``: the same in every process that prepares it."""
    digest = hashlib.sha256(f"bigtut-sample:{seed}:{epoch}:{index}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


@dataclass
class GPTTask:
    """Chapter 04's character GPT on Python's documentation (:func:`bigtut.recipes.gpt.pretrain_char_gpt`'s data)."""

    tokenizer: Any
    dataset: LMWindows
    config: Any  # bigtut.gpt.GPTConfig
    corpus_sha256: str

    name = "gpt"

    @classmethod
    def build(cls, args) -> GPTTask:
        from bigtut.data import python_docs_corpus
        from bigtut.gpt import GPTConfig
        from bigtut.recipes.gpt import corpus_fingerprint, python_docs_char_tokenizer

        tokenizer = python_docs_char_tokenizer()
        config = GPTConfig(vocab_size=tokenizer.vocab_size, block_size=args.block_size, n_layer=args.n_layer,
                           n_head=args.n_head, d_model=args.d_model, dropout=args.dropout)
        ids = torch.tensor(tokenizer.encode(python_docs_corpus("train")))  # (N_tokens,)
        return cls(tokenizer, LMWindows(ids, config.block_size), config, corpus_fingerprint())

    def settings(self) -> dict:
        """What a checkpoint records about the task and a resumed run must repeat."""
        return {"task": self.name, "config": asdict(self.config), "corpus_sha256": self.corpus_sha256}

    def model(self) -> nn.Module:
        from bigtut.gpt import GPT

        return GPT(self.config)

    def batch(self, indices: list[int], epoch: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(x, y)``, both ``(m, L)``: windows ``indices`` of the training text (epoch and seed play no part)."""
        return self.dataset.batch(indices)

    @staticmethod
    def counts(batch) -> torch.Tensor:
        """``(1,)``: the number of predicted tokens ``m * L``."""
        return torch.tensor([float(batch[0].numel())], dtype=torch.float64)

    @staticmethod
    def loss_sums(model: nn.Module, batch) -> torch.Tensor:
        """``(1,)``: the summed next-character cross-entropy (nats) of the micro-batch."""
        x, y = batch
        return (model(x, y).loss * x.numel()).reshape(1)


class NSPPairs:
    """A map-style data set of BERT pretraining pairs: item ``i`` starts at the ``i``-th sentence that has a
    successor; whether ``b`` is that successor or a sentence of another document, and which positions are
    masked, are drawn from :func:`sample_seed` ``(seed, epoch, i)``."""

    def __init__(self, documents: list[list[str]], tokenizer, max_len: int, mask_prob: float):
        from bigtut.bert import BertVocab
        from bigtut.data.sentences import NSPSampler

        self.sampler = NSPSampler(documents)  # the sentences, and how pretraining pairs are drawn from them
        self.tokenizer, self.max_len, self.mask_prob = tokenizer, max_len, mask_prob
        self.vocab = BertVocab.from_tokenizer(tokenizer)
        self._encoded: dict[str, list[int]] = {}

    def __len__(self) -> int:
        return len(self.sampler.starts)

    def encode(self, text: str) -> list[int]:
        if text not in self._encoded:
            self._encoded[text] = self.tokenizer.encode(text)
        return self._encoded[text]

    def pair(self, index: int, rng: random.Random):
        """The pair that starts at the ``index``-th sentence with a successor, ``b`` drawn with ``rng``."""
        return self.sampler.pair_at(*self.sampler.starts[index], rng)

    def batch(self, indices: list[int], epoch: int, seed: int):
        """``(masked_ids, token_type_ids, attention_mask, labels, nsp_labels)``: ``(m, L')`` x4 and ``(m,)``."""
        from bigtut.bert import mask_tokens, trim_to_longest
        from bigtut.data.sentences import encode_pairs

        rows = []
        for index in indices:
            s = sample_seed(seed, epoch, index)
            pair = self.pair(index, random.Random(s))
            ids, segments, lengths, nsp = encode_pairs([pair], self, self.max_len, self.vocab.cls_id,
                                                       self.vocab.sep_id, self.vocab.pad_id)  # (1, L) x2, (1,) x2
            masked, labels = mask_tokens(ids, self.vocab, self.mask_prob,
                                         generator=torch.Generator().manual_seed(s))  # (1, L) x2, full width
            rows.append((masked, segments, labels, lengths, nsp))
        masked, segments, labels, lengths, nsp = (torch.cat(parts) for parts in zip(*rows))
        masked, segments, labels, mask = trim_to_longest(lengths, masked, segments, labels)  # (m, L') x4
        return masked, segments, mask, labels, nsp


@dataclass
class BertTask:
    """Chapter 05's BERT pretraining (masked-language modelling + next-sentence prediction) on the Python docs
    and the training docstrings' text (:class:`bigtut.recipes.BertRecipe`'s data and tokenizer)."""

    tokenizer: Any
    dataset: NSPPairs
    config: Any  # bigtut.bert.BertConfig
    mask_prob: float

    name = "bert"

    @classmethod
    def build(cls, args) -> BertTask:
        from bigtut.bert import BertConfig
        from bigtut.data.sentences import docs_sentences
        from bigtut.recipes.bert import BertRecipe, build_bert_tokenizer

        recipe = BertRecipe()
        tokenizer = build_bert_tokenizer(recipe)
        config = BertConfig(vocab_size=tokenizer.vocab_size, max_len=args.block_size, d_model=args.d_model,
                            num_layers=args.n_layer, num_heads=args.n_head, d_ff=4 * args.d_model,
                            dropout=args.dropout, pad_id=tokenizer.token_to_id("[PAD]"))
        documents = docs_sentences("train", docstrings=recipe.pretrain_on_docstrings)
        return cls(tokenizer, NSPPairs(documents, tokenizer, config.max_len, recipe.mask_prob), config,
                   recipe.mask_prob)

    def settings(self) -> dict:
        return {"task": self.name, "config": asdict(self.config), "mask_prob": self.mask_prob,
                "samples": len(self.dataset)}

    def model(self) -> nn.Module:
        from bigtut.bert import BertForPreTraining

        return BertForPreTraining(self.config)

    def batch(self, indices: list[int], epoch: int, seed: int):
        return self.dataset.batch(indices, epoch, seed)

    @staticmethod
    def counts(batch) -> torch.Tensor:
        """``(2,)``: masked tokens (the MLM loss's divisor) and pairs (the NSP loss's)."""
        labels, nsp = batch[3], batch[4]
        from bigtut.bert import IGNORE_INDEX

        return torch.tensor([float((labels != IGNORE_INDEX).sum()), float(len(nsp))], dtype=torch.float64)

    @staticmethod
    def loss_sums(model: nn.Module, batch) -> torch.Tensor:
        """``(2,)``: summed MLM cross-entropy over the masked tokens, summed NSP cross-entropy over the pairs."""
        from bigtut.bert import IGNORE_INDEX

        ids, segments, mask, labels, nsp = batch
        mlm_logits, nsp_logits = model(ids, mask, segments)  # (m, L', V), (m, 2)
        selected = labels != IGNORE_INDEX  # (m, L')
        mlm = F.cross_entropy(mlm_logits[selected], labels[selected], reduction="sum")
        return torch.stack([mlm, F.cross_entropy(nsp_logits, nsp, reduction="sum")])


TASKS = {"gpt": GPTTask, "bert": BertTask}


def build_task(args):
    """The task named ``args.task``, built from the command-line settings."""
    return TASKS[args.task].build(args)
