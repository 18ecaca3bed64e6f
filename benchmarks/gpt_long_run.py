"""Chapter 04's longer pretraining run: the notebook's character GPT trained for more steps.

Notebook 04 pretrains a 4-layer, 128-wide character GPT for 900 steps. This script runs the same recipe —
``bigtut.recipes.pretrain_char_gpt`` with ``bigtut.recipes.gpt.long_run_settings(steps)``: the notebook's config,
batch 12, learning rate 3e-3, 50 warm-up steps, seed 0 — with only the number of steps changed (and, for smoke
tests of 50 steps or fewer, the warm-up), and prints one line: the bits per character on the whole validation
split, computed by ``bigtut.evaluation.bits_per_character`` exactly as the notebook's ``run.val_bpc``.

    OMP_NUM_THREADS=1 python benchmarks/gpt_long_run.py --steps 5000   # 15 minutes on a busy 2-core CPU
    OMP_NUM_THREADS=1 python benchmarks/gpt_long_run.py --steps 900    # notebook 04's run: 2.187 bits/char
    python benchmarks/gpt_long_run.py --steps 20                       # smoke test
    OMP_NUM_THREADS=1 python benchmarks/gpt_long_run.py --out checkpoints/gpt_char_5000   # also write the checkpoint

With ``--out`` the run goes through ``bigtut.recipes.gpt.build_gpt_checkpoint`` — what
``python -m bigtut.recipes.checkpoints gpt`` runs to rebuild the committed ``checkpoints/gpt_char_5000``.
Results are deterministic given the step count and the device (CPU and CUDA differ in the last digits).
"""

from __future__ import annotations

import argparse
import math
import os
import time

import bigtut
from bigtut.gpt import GPTConfig
from bigtut.recipes import pretrain_char_gpt, python_docs_char_tokenizer
from bigtut.recipes.gpt import build_gpt_checkpoint, long_run_settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5000, help="training steps (the notebook uses 900)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: bigtut.get_device())")
    parser.add_argument("--out", default=None, help="also write the model as a checkpoint folder")
    args = parser.parse_args()
    if args.steps < 1:
        parser.error(f"--steps must be a positive integer, got {args.steps}")

    device = bigtut.get_device(args.device)
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    if args.out:
        bpc = build_gpt_checkpoint(args.out, steps=args.steps, device=device).meta["val_bpc"]
    else:
        config = GPTConfig(vocab_size=python_docs_char_tokenizer().vocab_size)  # 4 layers, 4 heads, 128 wide, 64
        bpc = pretrain_char_gpt(config, device=device, **long_run_settings(args.steps)).val_bpc
    seconds = time.perf_counter() - t0
    print(f"steps={args.steps}: validation {bpc:.3f} bits per character ({bpc * math.log(2):.3f} nats); "
          f"{seconds:.0f} s on {device.type} (load average at start {load:.2f})")


if __name__ == "__main__":
    main()
