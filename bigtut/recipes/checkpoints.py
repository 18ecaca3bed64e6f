"""Rebuild the course's committed checkpoints (runs longer than a notebook's budget).

    OMP_NUM_THREADS=1 python -m bigtut.recipes.checkpoints gpt     # checkpoints/gpt_char_5000
    python -m bigtut.recipes.checkpoints gpt --steps 60 --out /tmp/gpt_smoke   # a quick smoke run elsewhere
    OMP_NUM_THREADS=1 python -m bigtut.recipes.checkpoints bert    # checkpoints/bert_pretrain_long
    python -m bigtut.recipes.checkpoints bert-packages             # checkpoints/bert_packages (about 45 min)

``gpt``: notebook 04's character GPT pretrained for 5 000 steps (:func:`bigtut.recipes.gpt.build_gpt_checkpoint`).
Built on the CPU with ``OMP_NUM_THREADS=1`` (901 s on a busy 2-core machine, load average 6.35 at the start: the
command prints its time), the result is what ``tests/test_checkpoint_gpt.py`` checks.

``bert``: notebook 05's BERT pretrained for 4 800 steps (:func:`bigtut.recipes.bert.write_long_pretraining`, about
5 minutes; ``--steps`` and ``--out`` do not apply), checked by ``tests/test_checkpoint_bert.py``.

``bert-packages``: notebook 05's in-domain BERT, pretrained on the installed packages' docstrings
(:data:`bigtut.recipes.bert.PACKAGES_PRETRAIN`; ``--steps`` does not apply, ``--out`` does), checked by
``tests/test_checkpoint_bert_packages.py``.
"""

from __future__ import annotations

import argparse
import os
import time

from bigtut.recipes.gpt import GPT_CHECKPOINT_DIR, build_gpt_checkpoint


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bigtut.recipes.checkpoints", description=__doc__.splitlines()[0])
    parser.add_argument("which", choices=["gpt", "bert", "bert-packages"], help="which checkpoint to rebuild")
    parser.add_argument("--steps", type=int, default=5000, help="training steps (default 5000)")
    parser.add_argument("--out", default=str(GPT_CHECKPOINT_DIR), help=f"folder (default {GPT_CHECKPOINT_DIR})")
    parser.add_argument("--device", default="cpu", help="cpu (default; what the committed checkpoint used) or cuda")
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error(f"--steps must be a positive integer, got {args.steps}")
    load, start = os.getloadavg()[0], time.perf_counter()
    if args.which.startswith("bert"):
        from bigtut.recipes import bert

        if args.which == "bert":
            folder = bert.write_long_pretraining()
        else:
            out = bert.PACKAGES_PRETRAIN_DIR if args.out == str(GPT_CHECKPOINT_DIR) else args.out
            folder = bert.write_long_pretraining(out, recipe=bert.PACKAGES_PRETRAIN,
                                                 eval_every=bert.PACKAGES_EVAL_EVERY)
        print(f"bert: written to {folder} in {time.perf_counter() - start:.0f} s (load average at start {load:.2f})")
        return
    ckpt = build_gpt_checkpoint(args.out, steps=args.steps, device=args.device)
    print(f"{args.which}: {args.steps} steps, validation {ckpt.meta['val_bpc']:.3f} bits per character; written to "
          f"{args.out} in {time.perf_counter() - start:.0f} s (load average at start {load:.2f})")


if __name__ == "__main__":
    main()
