"""The data-parallel training loop: the same code in one process and under ``torchrun``.

Each optimizer step ``s`` takes one global batch of ``B`` samples, the block ``perm[k*B : (k+1)*B]`` of the
epoch's permutation (``epoch, k = divmod(s, steps_per_epoch)``). Rank ``r`` of ``W`` holds ``b = B / W`` of
them (its ``DistributedSampler`` shard, sliced) and walks them in micro-batches of ``m``: ``b / m`` forward and
backward passes (gradient accumulation), DDP's all-reduce only after the last (``no_sync()`` before it). Each
micro-batch's summed loss is divided by the count of the *global* batch (tokens, masked tokens, pairs: one
small all-reduce per step) and multiplied by ``W``; DDP averages the ranks' gradients, so every rank ends the
step with the gradient of the mean loss over all ``B`` samples — what one process computes from the whole batch.

Everything random is a pure function of the seed and the step (the permutation of ``seed + epoch``, dropout
reseeded with :func:`bigtut.distributed.step_seed`), so a run resumed from its checkpoint at step ``s`` makes
the steps the uninterrupted run made.
"""

from __future__ import annotations

import contextlib
import json
import time
from dataclasses import asdict
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DistributedSampler

from bigtut.distributed import DistributedContext, all_reduce_mean, all_reduce_sum, rank_batch, step_seed
from bigtut.runtime import seed_everything
from bigtut.train.state import (
    STATE_FILE,
    CheckpointError,
    atomic_write_bytes,
    load_train_state,
    read_train_state,
    remove_stale_temporaries,
    save_train_state,
)
from bigtut.training import History, lr_lambda, progress_bar, weight_decay_groups

__all__ = ["DTYPES", "check_batch_split", "check_resumable", "train"]

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def check_batch_split(batch_size: int, world_size: int, micro_batch_size: int | None) -> tuple[int, int, int]:
    """``(per_rank_batch, micro_batch, accumulation_steps)`` for a global batch over ``world_size`` ranks.

    Raises:
        ValueError: ``world_size`` does not divide ``batch_size``, or ``micro_batch_size`` does not divide the
            per-rank batch — with the settings that would work.
    """
    if batch_size % world_size:
        fits = [n for n in range(1, batch_size + 1) if batch_size % n == 0 and n <= 16]
        raise ValueError(f"--batch-size {batch_size} (the global batch) is not divisible by the {world_size} "
                         f"processes (--nproc_per_node x --nnodes); use a process count in {fits}, or a batch "
                         f"size that is a multiple of {world_size}")
    per_rank = batch_size // world_size
    micro = micro_batch_size or per_rank
    if per_rank % micro:
        fits = [m for m in range(1, per_rank + 1) if per_rank % m == 0]
        raise ValueError(f"--micro-batch-size {micro} does not divide the per-process batch {per_rank} "
                         f"(= {batch_size} / {world_size} processes); use one of {fits}")
    return per_rank, micro, per_rank // micro


def check_resumable(stored: dict, wanted: dict, folder: Path) -> None:
    """Raise :class:`CheckpointError` naming each setting where the checkpoint in ``folder`` differs."""
    differ = [f"{key}: stored {stored.get(key)!r}, asked {wanted.get(key)!r}"
              for key in sorted(set(stored) | set(wanted)) if stored.get(key) != wanted.get(key)]
    if differ:
        raise CheckpointError(f"the checkpoint in {folder} was made with other settings ({'; '.join(differ)}); "
                              "repeat the stored settings to resume it, or choose another --out for a new run")


def _settings(task, args) -> dict:
    return {**task.settings(), "batch_size": args.batch_size, "steps": args.steps, "lr": args.lr,
            "warmup_steps": args.warmup_steps, "weight_decay": args.weight_decay, "grad_clip": args.grad_clip,
            "seed": args.seed, "dtype": args.dtype}


# Files of a finished model (a notebook's, the committed checkpoints/) that a new run must not overwrite.
FOREIGN_OUTPUTS = ("model.safetensors", "history.json", "config.json")


def _outputs_match(folder: Path, step: int) -> bool:
    """Whether ``folder`` holds the train state of ``step`` and the model and history written with it."""
    from bigtut.training import checkpoint_metadata

    try:
        written = checkpoint_metadata(folder / "model.safetensors").get("step")
        logged = len(json.loads((folder / "history.json").read_text())["train_loss"])
        return (folder / STATE_FILE).is_file() and written == step == logged
    except (OSError, ValueError, KeyError):  # missing, truncated or unreadable: rewrite them
        return False


def _write_outputs(folder: Path, model, settings: dict, step: int, history: History, optimizer, scheduler) -> None:
    """Rank 0's checkpoint: the resumable state first, then the notebook-facing weights and history."""
    from safetensors.torch import save_model

    history_dict = asdict(history)
    save_train_state(folder, model, optimizer, scheduler, step=step, settings=settings, history=history_dict)
    meta = {"config": settings["config"], "task": settings["task"], "step": step, "settings": settings}
    tmp = folder / f".model.safetensors.tmp-{id(model)}"
    save_model(model, str(tmp), metadata={"bigtut": json.dumps(meta)})  # bigtut.training.save_checkpoint's format
    tmp.chmod(0o644)  # safetensors creates it private; the other files are world-readable too
    tmp.replace(folder / "model.safetensors")
    atomic_write_bytes(folder / "history.json", (json.dumps(history_dict) + "\n").encode())


def train(args, task, ctx: DistributedContext, log=print) -> History:
    """Train ``task`` with the settings ``args`` (see ``python -m bigtut.train --help``); return the loss history.

    All checks that can fail (batch split, checkpoint readable, same settings) run before anything is written.
    """
    per_rank, micro, accumulation = check_batch_split(args.batch_size, ctx.world_size, args.micro_batch_size)
    steps_per_epoch = len(task.dataset) // args.batch_size
    if steps_per_epoch < 1:
        raise ValueError(f"--batch-size {args.batch_size} exceeds the {len(task.dataset)} samples of the data set")
    folder = Path(args.out)
    settings = _settings(task, args)
    resume = (folder / STATE_FILE).is_file() or args.resume is not None
    if args.resume is not None and not Path(args.resume).is_dir():
        raise CheckpointError(f"--resume {args.resume}: no such folder; give the --out folder of an earlier run, "
                              f"or drop --resume to start a fresh run in --out {args.out}")
    stored = read_train_state(Path(args.resume or folder)) if resume else None
    if stored is not None:
        check_resumable(stored[1]["settings"], settings, Path(args.resume or folder))
    for place in (folder, *folder.parents):
        if place.exists() and not place.is_dir():
            raise ValueError(f"--out {folder}: {place} is a file; choose a folder")
    if stored is None and folder.is_dir():
        foreign = sorted(p.name for p in folder.iterdir() if p.name in FOREIGN_OUTPUTS)
        if foreign:
            raise CheckpointError(f"--out {folder} already holds {', '.join(foreign)} but no {STATE_FILE}: not a "
                                  "run of this trainer to resume, and a new run would overwrite it; choose another "
                                  "--out (or delete those files)")

    seed_everything(args.seed)  # the same initial weights on every rank (DDP also broadcasts rank 0's)
    model = task.model().to(ctx.device, DTYPES[args.dtype]).train()
    optimizer = torch.optim.AdamW(weight_decay_groups(model, args.weight_decay), lr=args.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda("cosine", args.steps, args.warmup_steps))
    history, start_step = History(), 0
    if stored is not None:
        tensors, meta = stored
        load_train_state(model, optimizer, scheduler, tensors, meta)
        start_step = meta["step"]
        history = History(**meta["history"])
        if ctx.is_main:
            log(f"resuming from step {start_step} of {args.steps} ({Path(args.resume or folder) / STATE_FILE})")
    if ctx.is_main:
        folder.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(folder)
        task.tokenizer.save(folder / "tokenizer.json")
    if ctx.is_main and stored is not None and not _outputs_match(folder, start_step):
        # resuming elsewhere, or a kill between the train state and the files written after it
        _write_outputs(folder, model, settings, start_step, history, optimizer, scheduler)

    ddp = DistributedDataParallel(model, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None) \
        if ctx.distributed else model
    sampler = DistributedSampler(task.dataset, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True,
                                 seed=args.seed, drop_last=True)
    shard, shard_epoch = [], -1
    bar = progress_bar(range(start_step, args.steps), desc=f"{task.name} x{ctx.world_size}",
                       disable=not (ctx.is_main and args.progress), initial=start_step, total=args.steps,
                       mininterval=0.5)
    began = time.perf_counter()
    for step in bar:
        epoch, k = divmod(step, steps_per_epoch)
        if epoch != shard_epoch:
            sampler.set_epoch(epoch)  # a new permutation per epoch, the same on every rank
            shard, shard_epoch = list(sampler), epoch
        mine = rank_batch(shard, k, per_rank)  # (b,) sample indices
        torch.manual_seed(step_seed(args.seed, ctx.rank, step))  # dropout: a function of (seed, rank, step)
        optimizer.zero_grad(set_to_none=True)
        micro_batches = [tuple(t.to(ctx.device) for t in task.batch(mine[j * micro:(j + 1) * micro], epoch, args.seed))
                         for j in range(accumulation)]
        # the divisors of the global batch: tokens (GPT), masked tokens and pairs (BERT), summed over all ranks
        divisors = all_reduce_sum(sum(task.counts(b) for b in micro_batches).to(ctx.device), ctx).clamp(min=1)
        step_loss = torch.zeros((), dtype=torch.float64, device=ctx.device)
        for j, batch in enumerate(micro_batches):
            last = j == accumulation - 1
            with ddp.no_sync() if (ctx.distributed and not last) else contextlib.nullcontext():
                sums = task.loss_sums(ddp, batch)  # (terms,): this micro-batch's summed losses
                loss = (sums / divisors.to(sums.dtype)).sum() * ctx.world_size  # DDP divides by world_size
                loss.backward()  # DDP all-reduces (averages over ranks) during the last backward
            step_loss += loss.detach().double()
        if args.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip)
        optimizer.step()
        scheduler.step()
        global_loss = float(all_reduce_mean(step_loss, ctx))  # the mean over all B samples, for the log
        history.step.append(step + 1)
        history.train_loss.append(global_loss)
        done = step + 1
        if ctx.is_main:
            if args.log_every and done % args.log_every == 0:
                log(f"step {done} loss {global_loss:.6f}", flush=True)
            if done % 10 == 0 or done == args.steps:
                bar.set_postfix(loss=f"{global_loss:.3f}", refresh=False)
            if done % args.checkpoint_every == 0 or done == args.steps:
                history.seconds += time.perf_counter() - began
                began = time.perf_counter()
                _write_outputs(folder, model, settings, done, history, optimizer, scheduler)
    if ctx.distributed:
        dist.barrier()  # nobody leaves before rank 0 has written the last checkpoint
    return history
