"""Pilot for issue 23: does BERT pretraining on in-domain text (the installed packages' docstrings) pay off on
chapter 05's docstring task with few labels?

Pretrains one BERT on ``bigtut.data.package_docstrings`` (MLM + NSP, sentence pairs within a docstring) for a fixed
wall-clock budget, then fine-tunes it and the same architecture from scratch on 4 and 16 labelled docstrings per
family (several seeds each, the chapter's fine-tuning rule: ~20 epochs), and prints test accuracies. A pilot, not
the chapter's recipe: it prints every setting it used so that the numbers can be compared with later runs.

    python benchmarks/bert_indomain_pilot.py --minutes 20 --d-model 128 --layers 4
"""

from __future__ import annotations

import argparse
import random
import time
from dataclasses import replace

import numpy as np
import torch

from bigtut import bert, seed_everything
from bigtut.bert import SPECIAL_TOKENS, BertForPreTraining, pretraining_loss
from bigtut.data import docstring_splits
from bigtut.data.package_docs import package_docstrings
from bigtut.data.sentences import split_sentences
from bigtut.recipes.bert import BertRecipe, finetune_bert, pretraining_batches
from bigtut.recipes.few_labels import few_per_family
from bigtut.tokenizers import BPETokenizer
from bigtut.training import fit


def documents_of(texts, min_chars: int = 20) -> list[list[str]]:
    """Each docstring as a document of sentences; only those with two sentences or more (NSP needs a successor)."""
    docs = [split_sentences(t, min_chars) for t in texts]
    return [d for d in docs if len(d) >= 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=20.0, help="pretraining wall-clock budget")
    parser.add_argument("--steps", type=int, default=None, help="pretraining steps (default: from --minutes)")
    parser.add_argument("--d-model", type=int, default=128)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--vocab", type=int, default=2048)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--tokenizer-chars", type=int, default=2_000_000)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(2)
    start = time.perf_counter()
    corpus = package_docstrings()
    splits = docstring_splits()
    sample = "\n\n".join(corpus[:: max(1, sum(map(len, corpus)) // args.tokenizer_chars)])
    sample += "\n\n" + "\n\n".join(d.text for d in splits["train"])
    tokenizer = BPETokenizer.train(sample, args.vocab, special_tokens=SPECIAL_TOKENS)
    print(f"corpus: {len(corpus)} docstrings, {sum(map(len, corpus)) / 1e6:.1f} MB; tokenizer {args.vocab} ids "
          f"trained on {len(sample) / 1e6:.1f} MB in {time.perf_counter() - start:.0f} s")
    docs = documents_of(corpus)
    rng = random.Random(0)
    rng.shuffle(docs)
    val_docs, train_docs = docs[:500], docs[500:]
    print(f"documents with >= 2 sentences: {len(docs)} ({sum(map(len, docs))} sentences)")
    recipe = BertRecipe(vocab_size=args.vocab, d_model=args.d_model, num_layers=args.layers, num_heads=args.heads,
                        d_ff=4 * args.d_model, pretrain_batch=args.batch, pretrain_lr=args.lr)
    seed_everything(0)
    model = BertForPreTraining(recipe.config(tokenizer))
    train_batches = pretraining_batches(train_docs, tokenizer, recipe, seed=0)
    val_batches = [pretraining_batches(val_docs, tokenizer, recipe, seed=1, batch_size=64)() for _ in range(2)]
    probe = time.perf_counter()
    probe_model = BertForPreTraining(recipe.config(tokenizer))
    probe_opt = torch.optim.AdamW(probe_model.parameters(), lr=1e-4)
    for _ in range(10):
        mlm, nsp = pretraining_loss(probe_model, train_batches())
        (mlm + nsp).backward()
        probe_opt.step()
        probe_opt.zero_grad()
    per_step = (time.perf_counter() - probe) / 10
    steps = args.steps or max(100, int(args.minutes * 60 / per_step))
    print(f"model: {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters, {per_step:.3f} s per step "
          f"-> {steps} steps of {args.batch} pairs")

    def loss_fn(m, batch):
        mlm, nsp = pretraining_loss(m, batch)
        return mlm + nsp

    history = fit(model, loss_fn, train_batches, steps=steps, lr=recipe.pretrain_lr, val_batches=val_batches,
                  eval_every=max(steps // 10, 1), warmup_steps=steps // 10, schedule="cosine", grad_clip=1.0,
                  desc="pretrain (package docstrings)", progress=True)
    print("validation loss (MLM + NSP) by step:",
          ", ".join(f"{s} {v:.3f}" for s, v in zip(history.val_step, history.val_loss)))
    test_texts = [d.text for d in splits["test"]]
    y_test = np.array([d.label for d in splits["test"]])
    seed_everything(0)
    scratch = BertForPreTraining(recipe.config(tokenizer)).bert
    print(f"{'labels per family':<20}{'seed':>6}{'scratch':>10}{'pretrained':>12}")
    results = {}
    for n in (4, 16):
        for seed in range(args.seeds):
            examples = few_per_family(n, seed)  # the same draw as the learning curve's
            steps_ft = max(40, 20 * len(examples) // 16)
            for name, encoder in (("scratch", scratch), ("pretrained", model.bert)):
                seed_everything(seed)
                classifier, _ = finetune_bert(encoder, tokenizer, replace(recipe, finetune_steps=steps_ft, seed=seed),
                                              examples=examples, validate=False, progress=False)
                pred = bert.classify(classifier, tokenizer, test_texts).argmax(-1).numpy()
                results[n, seed, name] = float((pred == y_test).mean())
            print(f"{n:<20}{seed:>6}{results[n, seed, 'scratch']:>10.3f}{results[n, seed, 'pretrained']:>12.3f}")
    for n in (4, 16):
        for name in ("scratch", "pretrained"):
            values = [results[n, s, name] for s in range(args.seeds)]
            print(f"{n} per family, {name}: mean {np.mean(values):.3f} (min {min(values):.3f}, max {max(values):.3f})")
    print(f"total {time.perf_counter() - start:.0f} s; settings: {vars(args)}")


if __name__ == "__main__":
    main()
