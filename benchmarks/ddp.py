"""Benchmark of appendix A1: training throughput of chapter 04's GPT in one process vs two DDP processes (gloo)
on this machine's CPU cores, and the share of a DDP step spent communicating.

Each configuration is a fresh ``torchrun`` launch of this file (``--worker``), with a stated number of processes
and of threads per process (``OMP_NUM_THREADS`` and ``torch.set_num_threads``):

* 1 process x 1 thread, 1 process x 2 threads, 2 processes x 1 thread (the same two cores, split by DDP);
* the global batch is fixed (16 windows of 64 characters), so each of 2 processes takes 8;
* a worker times ``--steps`` optimizer steps after 3 warm-up steps (forward, backward with DDP's gradient
  all-reduce, AdamW). With 2 processes it also times the same steps under ``no_sync()`` (no all-reduce: the
  gradients stay local) and a bare ``all_reduce`` of a tensor the size of all gradients. Communication share =
  (synced step - unsynced step) / synced step.

Configurations alternate over ``--rounds`` rounds and medians are reported, so a busy machine slows all alike.

    python benchmarks/ddp.py            # 3 rounds (about a minute and a half on a 2-core CPU)
    python benchmarks/ddp.py --quick    # 1 round, fewer steps
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONFIGS = [(1, 1), (1, 2), (2, 1)]  # (processes, threads per process)
BATCH, BLOCK = 16, 64


def worker(steps: int, out: str) -> None:
    """Run under torchrun: time ``steps`` DDP steps (and, with 2 ranks, unsynced steps and a bare all-reduce)."""
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from bigtut.distributed import init_distributed
    from bigtut.gpt import GPT, GPTConfig

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    ctx = init_distributed("cpu")
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=105, block_size=BLOCK))  # the chapter's 4-layer, 128-wide GPT
    ddp = DistributedDataParallel(model) if ctx.distributed else model
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    per_rank = BATCH // ctx.world_size
    gen = torch.Generator().manual_seed(ctx.rank)
    x = torch.randint(0, 105, (per_rank, BLOCK), generator=gen)  # (b, L)
    y = torch.randint(0, 105, (per_rank, BLOCK), generator=gen)  # (b, L)

    def step(sync: bool) -> None:
        optimizer.zero_grad(set_to_none=True)
        with ddp.no_sync() if (ctx.distributed and not sync) else contextlib.nullcontext():
            ddp(x, y).loss.backward()
        optimizer.step()

    def timed(sync: bool) -> float:
        for _ in range(3):
            step(sync)
        if ctx.distributed:
            dist.barrier()
        start = time.perf_counter()
        for _ in range(steps):
            step(sync)
        if ctx.distributed:
            dist.barrier()
        return (time.perf_counter() - start) / steps

    result = {"step_s": timed(True)}
    if ctx.distributed:
        result["unsynced_step_s"] = timed(False)
        flat = torch.zeros(sum(p.numel() for p in model.parameters()))
        for _ in range(3):
            dist.all_reduce(flat)
        start = time.perf_counter()
        for _ in range(steps):
            dist.all_reduce(flat)
        result["all_reduce_s"] = (time.perf_counter() - start) / steps
        result["gradient_mb"] = flat.numel() * 4 / 1e6
        dist.barrier()  # leave together: a rank tearing gloo down while the other still talks can abort
        dist.destroy_process_group()
    if ctx.rank == 0:
        Path(out).write_text(json.dumps(result))


def launch(processes: int, threads: int, steps: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
                   __file__, "--worker", "--steps", str(steps), "--out", str(out)]
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{processes} x {threads} failed ({done.returncode}):\n{done.stderr[-4000:]}")
        return json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.worker:
        worker(args.steps, args.out)
        sys.stdout.flush()
        os._exit(0)  # skip the interpreter's shutdown: gloo's threads can abort it after a good run (exit code -6)
    if args.quick:
        args.steps, args.rounds = 8, 1
    runs = {config: [] for config in CONFIGS}
    for _ in range(args.rounds):
        for processes, threads in CONFIGS:
            runs[(processes, threads)].append(launch(processes, threads, args.steps))
    cores = os.cpu_count()
    print(f"chapter 04's GPT (4 layers, width 128, 0.8 M parameters), global batch {BATCH} x {BLOCK} tokens, "
          f"{args.steps} timed steps, median of {args.rounds} round(s), {cores} CPU cores, gloo")
    base = statistics.median(r["step_s"] for r in runs[(1, 1)])
    print(f"{'processes':>9} {'threads each':>12} {'ms/step':>8} {'tokens/s':>9} {'vs 1x1':>7} "
          f"{'comm. share':>11} {'all-reduce ms':>13}")
    for processes, threads in CONFIGS:
        rows = runs[(processes, threads)]
        step = statistics.median(r["step_s"] for r in rows)
        comm = share = "-"
        if processes > 1:
            unsynced = statistics.median(r["unsynced_step_s"] for r in rows)
            share = f"{max(step - unsynced, 0.0) / step:.0%}"
            comm = f"{statistics.median(r['all_reduce_s'] for r in rows) * 1e3:.1f}"
        print(f"{processes:>9} {threads:>12} {step * 1e3:>8.1f} {BATCH * BLOCK / step:>9.0f} {base / step:>6.2f}x "
              f"{share:>11} {comm:>13}")
    mb = runs[(2, 1)][0]["gradient_mb"]
    print(f"all-reduce: one float32 tensor of all gradients ({mb:.1f} MB), alone, between 2 processes")


if __name__ == "__main__":
    main()
