"""Chapter 04's longer pretraining run: the notebook's character GPT trained for more steps.

Notebook 04 pretrains a 4-layer, 128-wide character GPT for 900 steps. This script runs the same recipe —
the same config, batch 12, learning rate 3e-3, seed 0, the same call to ``bigtut.recipes.pretrain_char_gpt`` —
with only the number of steps changed (and, for smoke tests of 50 steps or fewer, the warm-up), and prints
one line: the bits per character on the whole validation split, computed by
``bigtut.evaluation.bits_per_character`` exactly as the notebook's ``run.val_bpc``.

    OMP_NUM_THREADS=1 python benchmarks/gpt_long_run.py --steps 5000   # about 5 minutes on a 2-core CPU
    OMP_NUM_THREADS=1 python benchmarks/gpt_long_run.py --steps 900  # notebook 04's run: 2.184 bits/char stored
    python benchmarks/gpt_long_run.py --steps 20                        # smoke test

Results are deterministic given the step count and the device (CPU and CUDA differ in the last digits).
"""

from __future__ import annotations

import argparse
import math
import os
import time

import bigtut
from bigtut.data import python_docs_corpus
from bigtut.evaluation import bits_per_character
from bigtut.gpt import GPTConfig
from bigtut.recipes import pretrain_char_gpt, python_docs_char_tokenizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5000, help="training steps (the notebook uses 900)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: bigtut.get_device())")
    args = parser.parse_args()
    if args.steps < 1:
        parser.error(f"--steps must be a positive integer, got {args.steps}")

    device = bigtut.get_device(args.device)
    tokenizer = python_docs_char_tokenizer()
    # the notebook's settings (notebooks/04_gpt.ipynb, Section 4); only `steps` differs
    config = GPTConfig(vocab_size=tokenizer.vocab_size, block_size=64, n_layer=4, n_head=4, d_model=128)
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    warmup = 50 if args.steps > 50 else args.steps // 2  # the notebook's 50, shortened only for smoke tests
    run = pretrain_char_gpt(config, steps=args.steps, batch_size=12, lr=3e-3, warmup_steps=warmup, seed=0,
                            device=device)
    seconds = time.perf_counter() - t0
    bpc = bits_per_character(run.model, python_docs_corpus("val"), run.tokenizer)  # same as run.val_bpc
    print(f"steps={args.steps}: validation {bpc:.3f} bits per character ({bpc * math.log(2):.3f} nats); "
          f"{seconds:.0f} s on {device.type} (load average at start {load:.2f})")


if __name__ == "__main__":
    main()
