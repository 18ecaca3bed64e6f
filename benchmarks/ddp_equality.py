"""How equal are one and two processes? Appendix A1's numbers, printed by one committed script.

Runs ``python -m bigtut.train`` in one process and under ``torchrun --nproc_per_node=2`` (gloo, CPU) with the same
settings — a tiny GPT and a tiny BERT, and 30 steps of chapter 04's GPT; dropout 0 — and prints the largest
difference of any weight and of any logged loss, in float64 (what ``tests/test_ddp.py`` bounds by 1e-6) and in
float32 (rounding, for comparison):

    OMP_NUM_THREADS=1 python benchmarks/ddp_equality.py                    # the trainer's warm-up
    OMP_NUM_THREADS=1 python benchmarks/ddp_equality.py --warmup-steps 0   # full learning rate from step 1
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from safetensors.torch import load_file

TINY = ["--n-layer", "2", "--n-head", "2", "--d-model", "32", "--block-size", "32"]
CHAPTER_SIZE: list[str] = []  # the trainer's defaults: chapter 04's GPT (4 layers, width 128, context 64)
CASES = [  # (name, task, steps, global batch, model)
    ("GPT, 1 step", "gpt", 1, 8, TINY),
    ("GPT, 8 steps", "gpt", 8, 8, TINY),
    ("BERT, 4 steps", "bert", 4, 8, TINY),
    ("GPT 04, 30", "gpt", 30, 8, CHAPTER_SIZE),
]


def train(out: Path, processes: int, task: str, steps: int, batch: int, model: list[str], dtype: str,
          extra: list[str]) -> None:
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"] \
        if processes > 1 else [sys.executable]
    command = [*launcher, "-m", "bigtut.train", task, *model, "--no-progress", "--steps", str(steps),
               "--batch-size", str(batch), "--dtype", dtype, "--out", str(out), *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(command, check=True, capture_output=True, env=env)


def largest_differences(a: Path, b: Path) -> tuple[float, str, float]:
    """(max |weight difference|, the weight where it is, max |loss difference|) between two runs' outputs."""
    wa, wb = load_file(a / "model.safetensors"), load_file(b / "model.safetensors")
    where = max(wa, key=lambda k: float((wa[k] - wb[k]).abs().max()))
    la, lb = (json.loads((f / "history.json").read_text())["train_loss"] for f in (a, b))
    return float((wa[where] - wb[where]).abs().max()), where, max(abs(x - y) for x, y in zip(la, lb))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warmup-steps", type=int, default=None, help="passed to every run (default: the trainer's)")
    args = parser.parse_args()
    extra = [] if args.warmup_steps is None else ["--warmup-steps", str(args.warmup_steps)]
    print(f"{'run':<14} {'dtype':<8} {'max |weight diff|':>18} {'max |loss diff|':>16}  largest at")
    with tempfile.TemporaryDirectory() as tmp:
        for name, task, steps, batch, model in CASES:
            for dtype in ("float64", "float32"):
                one, two = Path(tmp) / f"{task}{steps}{dtype}_1", Path(tmp) / f"{task}{steps}{dtype}_2"
                train(one, 1, task, steps, batch, model, dtype, extra)
                train(two, 2, task, steps, batch, model, dtype, extra)
                weights, where, losses = largest_differences(one, two)
                print(f"{name:<14} {dtype:<8} {weights:>18.1e} {losses:>16.1e}  {where}", flush=True)
    warmup = "min(50, steps // 2)" if args.warmup_steps is None else str(args.warmup_steps)
    print(f"1 process (batch 8) vs 2 processes (4 each), gloo on CPU, dropout 0, warm-up {warmup}")


if __name__ == "__main__":
    main()
