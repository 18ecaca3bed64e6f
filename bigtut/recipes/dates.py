"""The chapter-03 recipe: a small encoder–decoder Transformer that rewrites dates into ISO 8601."""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

from bigtut.data import date_splits, date_tokenizer, encode_date_pairs
from bigtut.runtime import get_device, seed_everything
from bigtut.training import History, fit
from bigtut.transformer import Seq2SeqConfig, Seq2SeqTransformer, teacher_forcing_loss

__all__ = ["DatesRun", "dates_config", "train_dates_transformer"]


@dataclass
class DatesRun:
    """What :func:`train_dates_transformer` returns."""

    model: Seq2SeqTransformer  # trained, eval mode
    tokenizer: object  # the date CharTokenizer (inputs and outputs share it)
    history: History


def dates_config(tokenizer, **changes) -> Seq2SeqConfig:
    """The chapter's model: 2 + 2 pre-LN layers, 64 wide, 4 heads, no dropout; special ids from ``tokenizer``."""
    pad, bos, eos = (tokenizer.token_to_id(t) for t in ("<pad>", "<bos>", "<eos>"))
    settings = dict(src_vocab_size=tokenizer.vocab_size, tgt_vocab_size=tokenizer.vocab_size, d_model=64,
                    num_heads=4, num_encoder_layers=2, num_decoder_layers=2, d_ff=128, dropout=0.0, max_len=32,
                    norm_first=True, pad_id=pad, bos_id=bos, eos_id=eos)
    return Seq2SeqConfig(**{**settings, **changes})


def train_dates_transformer(config: Seq2SeqConfig | None = None, *, steps: int = 800, batch_size: int = 64,
                            lr: float = 3e-3, warmup_steps: int = 80, label_smoothing: float = 0.1, seed: int = 0,
                            splits: dict | None = None, device=None, progress: bool = True) -> DatesRun:
    """Train the date normaliser with teacher forcing and label smoothing (deterministic given the device).

    Each step draws ``batch_size`` training pairs at random (``random.Random(seed)``); the validation loss is
    measured on the whole validation split every 100 steps. ``splits`` defaults to :func:`date_splits`.
    """
    device = torch.device(device) if device is not None else get_device()
    tokenizer = date_tokenizer()
    config = config or dates_config(tokenizer)
    splits = splits or date_splits()
    train_pairs, sampler = splits["train"], random.Random(seed)

    def train_batch():
        return encode_date_pairs(sampler.sample(train_pairs, batch_size), tokenizer)  # (B, S), (B, T)

    val_batches = [encode_date_pairs(splits["val"], tokenizer)]
    seed_everything(seed)
    model = Seq2SeqTransformer(config)
    history = fit(model, lambda m, b: teacher_forcing_loss(m, b, label_smoothing=label_smoothing), train_batch,
                  steps=steps, lr=lr, warmup_steps=warmup_steps, schedule="cosine", grad_clip=1.0,
                  val_batches=val_batches, eval_every=100, device=device, desc="dates", progress=progress)
    return DatesRun(model.eval(), tokenizer, history)
