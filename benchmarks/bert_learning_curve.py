"""Chapter 05's learning curve (issue 23): test accuracy against labelled docstrings per family for the BERT
pretrained on the packages' docstrings (``checkpoints/bert_packages``), the same BERT from a random start, and
TF-IDF + logistic regression; optionally the older BERT pretrained on the Python docs.

Run once by hand (about 15 minutes on 2 cores); notebook 05 reads the JSON it writes:

    python benchmarks/bert_learning_curve.py --json benchmarks/results/05_learning_curve.json

``--split val`` scores on the validation split instead: that is how the fine-tuning settings were chosen,
without looking at the test split (``benchmarks/results/05_learning_curve_tuning.txt`` lists every trial).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch

from bigtut.bert import BertForPreTraining
from bigtut.data import docstring_splits
from bigtut.recipes.bert import LONG_PRETRAIN_DIR, PACKAGES_PRETRAIN_DIR, load_pretrained_bert
from bigtut.recipes.few_labels import SIZES, bootstrap_interval, learning_curve
from bigtut.runtime import seed_everything

TFIDF, SCRATCH, PRETRAINED, PROBE, PYTHON_DOCS = (
    "TF-IDF + logistic regression", "BERT from scratch", "BERT pretrained on the packages' docstrings",
    "frozen pretrained BERT + logistic regression", "BERT pretrained on the Python docs (4800 steps)")


def size_name(n) -> str:
    return "all" if n is None else str(n)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=str(PACKAGES_PRETRAIN_DIR))
    parser.add_argument("--split", choices=["val", "test"], default="test")
    parser.add_argument("--sizes", nargs="+", default=[size_name(n) for n in SIZES])
    parser.add_argument("--seeds", type=int, default=5, help="seeds per size (label draw + fine-tuning run)")
    parser.add_argument("--extra-small-seeds", type=int, default=5,
                        help="more seeds at sizes <= 16 labels per family, where a run is cheap and noisy")
    parser.add_argument("--lr-pretrained", type=float, default=None, help="fine-tuning lr (default: the recipe's)")
    parser.add_argument("--lr-scratch", type=float, default=None, help="fine-tuning lr (default: the recipe's)")
    parser.add_argument("--with-python-docs", action="store_true", help="add the older Python-docs checkpoint")
    parser.add_argument("--with-probe", action="store_true", help="add the frozen encoder + logistic regression")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (the results used 2)")
    parser.add_argument("--json", default=None, help="write every prediction and the settings here")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    torch.set_num_threads(args.threads)
    sizes = [None if s == "all" else int(s) for s in args.sizes]
    seeds = {n: list(range(args.seeds + (args.extra_small_seeds if n is not None and n <= 16 else 0))) for n in sizes}
    packages = load_pretrained_bert(args.checkpoint, device="cpu")
    recipe = packages.recipe
    seed_everything(recipe.seed)
    scratch = BertForPreTraining(packages.model.config).bert  # the same architecture, a random start
    pretrained_recipe = replace(recipe, finetune_lr=args.lr_pretrained or recipe.finetune_lr)
    scratch_recipe = replace(recipe, finetune_lr=args.lr_scratch or recipe.finetune_lr)
    contenders = {TFIDF: None, SCRATCH: (scratch, packages.tokenizer, scratch_recipe),
                  PRETRAINED: (packages.model.bert, packages.tokenizer, pretrained_recipe)}
    if args.with_probe:
        contenders[PROBE] = ("probe", packages.model.bert, packages.tokenizer, recipe)
    if args.with_python_docs:
        old = load_pretrained_bert(LONG_PRETRAIN_DIR, device="cpu")
        contenders[PYTHON_DOCS] = (old.model.bert, old.tokenizer, replace(old.recipe, finetune_lr=args.lr_pretrained
                                                                           or old.recipe.finetune_lr))
    predictions = learning_curve(contenders, seeds, sizes, split=args.split, device="cpu")
    labels = np.array([d.label for d in docstring_splits()[args.split]])
    print(f"{args.split} split, {len(labels)} docstrings; checkpoint {args.checkpoint}; fine-tuning lr: pretrained "
          f"{pretrained_recipe.finetune_lr}, scratch {scratch_recipe.finetune_lr}; 95 % bootstrap intervals over "
          f"seeds and docstrings")
    print(f"{'per family':<11}{'seeds':>6}  " + "".join(f"{name[:24]:>26}" for name in contenders))
    for n in sizes:
        cells = []
        for name in contenders:
            hits = np.stack([predictions[name, n, s] == labels for s in seeds[n]])
            mean, low, high = bootstrap_interval(hits)
            cells.append(f"{mean:.3f} [{low:.3f}, {high:.3f}]")
        print(f"{size_name(n):<11}{len(seeds[n]):>6}  " + "".join(f"{c:>26}" for c in cells))
    for other in [name for name in contenders if name != PRETRAINED]:
        gaps = []
        for n in sizes:
            diff = np.stack([(predictions[PRETRAINED, n, s] == labels).astype(int)
                             - (predictions[other, n, s] == labels).astype(int) for s in seeds[n]])
            mean, low, high = bootstrap_interval(diff)
            gaps.append(f"{size_name(n)}: {100 * mean:+.1f} [{100 * low:+.1f}, {100 * high:+.1f}]")
        print(f"pretrained - {other}, points: " + "; ".join(gaps))
    seconds = time.perf_counter() - start
    print(f"{seconds:.0f} s; settings: {vars(args)}")
    if args.json:
        record = {"split": args.split, "labels": labels.tolist(), "sizes": [size_name(n) for n in sizes],
                  "seeds": {size_name(n): seeds[n] for n in sizes}, "contenders": list(contenders),
                  "recipes": {PRETRAINED: asdict(pretrained_recipe), SCRATCH: asdict(scratch_recipe)},
                  "predictions": {f"{name}|{size_name(n)}|{s}": "".join(map(str, p.tolist()))
                                  for (name, n, s), p in predictions.items()},
                  "seconds": round(seconds), "torch": torch.__version__, "settings": vars(args)}
        Path(args.json).write_text(json.dumps(record, indent=1) + "\n")
        print(f"written to {args.json}")


if __name__ == "__main__":
    main()
