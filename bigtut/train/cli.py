"""``python -m bigtut.train``: the course's models trained from the command line, in one process or data-parallel.

    python -m bigtut.train gpt --steps 900 --batch-size 12 --out runs/gpt_cli
    torchrun --standalone --nproc_per_node=2 -m bigtut.train gpt --steps 900 --batch-size 12 --out runs/gpt_ddp

Both commands make the same optimizer steps on the same global batches (up to floating-point rounding). Run the
command again after an interruption and it resumes from the last checkpoint in ``--out``.
"""

from __future__ import annotations

import argparse
import os
import sys

from bigtut.train.state import CheckpointError

__all__ = ["main", "parser"]


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m bigtut.train",
        description="Train a course model in one process or under torchrun (DDP). The global batch, not the "
                    "per-process one, is fixed: --batch-size is split over the processes.")
    p.add_argument("task", choices=["gpt", "bert"], help="gpt: chapter 04's character GPT on the Python docs; "
                   "bert: chapter 05's MLM + NSP pretraining")
    p.add_argument("--out", required=True, help="output folder: checkpoints, model.safetensors, history.json")
    p.add_argument("--resume", default=None, metavar="FOLDER",
                   help="resume from the checkpoint in FOLDER (default: --out, if it holds one)")
    p.add_argument("--steps", type=int, default=900, help="optimizer steps (default 900)")
    p.add_argument("--batch-size", type=int, default=None, help="GLOBAL batch: samples per optimizer step, all "
                   "processes together (default: gpt 12, bert 32)")
    p.add_argument("--micro-batch-size", type=int, default=None,
                   help="samples per forward pass on one process (default: the whole per-process batch); "
                   "smaller values accumulate gradients over several passes")
    p.add_argument("--lr", type=float, default=None, help="peak learning rate (default: gpt 3e-3, bert 2e-3)")
    p.add_argument("--warmup-steps", type=int, default=None, help="linear warm-up (default min(50, steps // 2))")
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--grad-clip", type=float, default=1.0, help="clip the gradient norm (0: off)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32",
                   help="float64 for equality tests between process counts")
    p.add_argument("--device", default=None, help="cpu or cuda (default: bigtut.get_device())")
    model = p.add_argument_group("model (default: the chapter's; gpt 4 layers, 4 heads, width 128, context 64; "
                                 "bert 2 layers, 4 heads, width 64, feed-forward 4 x width, 64 tokens)")
    model.add_argument("--n-layer", type=int, default=None)
    model.add_argument("--n-head", type=int, default=None)
    model.add_argument("--d-model", type=int, default=None)
    model.add_argument("--block-size", type=int, default=None, help="context (gpt) or max_len (bert)")
    model.add_argument("--dropout", type=float, default=0.0,
                       help="dropout masks differ between ranks: keep 0 to compare process counts")
    p.add_argument("--checkpoint-every", type=int, default=100, help="steps between checkpoints (default 100)")
    p.add_argument("--log-every", type=int, default=0, help="print 'step N loss L' every N steps (0: never)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    return p


def _check(args) -> None:
    from bigtut.train.tasks import DEFAULTS

    for name, value in DEFAULTS[args.task].items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    for name in ("steps", "batch_size", "checkpoint_every", "n_layer", "n_head", "d_model", "block_size"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(args, name)}")
    if args.micro_batch_size is not None and args.micro_batch_size < 1:
        raise ValueError(f"--micro-batch-size must be a positive integer, got {args.micro_batch_size}")
    if args.log_every < 0 or args.lr <= 0 or args.weight_decay < 0 or args.grad_clip < 0:
        raise ValueError("--log-every, --weight-decay and --grad-clip must be >= 0, --lr > 0")
    if args.warmup_steps is None:
        args.warmup_steps = min(50, args.steps // 2)
    if not 0 <= args.warmup_steps < args.steps:
        raise ValueError(f"--warmup-steps must lie in [0, --steps={args.steps}), got {args.warmup_steps}")


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv``, train, return 0; on bad input print ``error: ...`` (rank 0 only) and return 2."""
    from bigtut.distributed import env_world

    args = parser().parse_args(argv)
    rank = 0
    try:
        rank, world_size, _ = env_world()
        _check(args)
        from bigtut.train.loop import check_batch_split

        check_batch_split(args.batch_size, world_size, args.micro_batch_size)  # before any process group
        from bigtut.distributed import init_distributed
        from bigtut.train.loop import train
        from bigtut.train.tasks import build_task

        task = build_task(args)
        ctx = init_distributed(args.device)
        try:
            history = train(args, task, ctx)
        finally:
            if ctx.distributed:
                import torch.distributed as dist

                dist.destroy_process_group()
    except (ValueError, CheckpointError) as error:
        if rank == 0:
            print(f"python -m bigtut.train: error: {error}", file=sys.stderr, flush=True)
        return 2
    if rank == 0 and history.train_loss:
        print(f"done: {len(history.train_loss)} steps, last loss {history.train_loss[-1]:.4f}, "
              f"{args.out}{os.sep}model.safetensors", flush=True)
    return 0
