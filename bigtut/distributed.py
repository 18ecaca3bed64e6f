"""Data parallelism in a few pieces: who am I (rank), how many are we (world size), which samples are mine, and
the one collective everything rests on, the all-reduce.

``torchrun --nproc_per_node=N`` starts N copies of the same program and tells each, through environment
variables, its ``RANK``, ``LOCAL_RANK`` (its index on this machine, i.e. its GPU) and the ``WORLD_SIZE``.
Without those variables the program is one process of a world of one: :func:`init_distributed` then starts no
process group, so the same code runs under ``python -m ...`` and under ``torchrun``.

Shape legend:  N  samples in the data set    W  world size (processes)    B  global batch    b = B / W
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.utils.data import Dataset

from bigtut.runtime import get_device

__all__ = ["DistributedContext", "LMWindows", "all_reduce_mean", "all_reduce_sum", "average_gradients", "env_world",
           "init_distributed", "rank_batch", "shard_indices", "step_seed"]


@dataclass(frozen=True)
class DistributedContext:
    """This process's place in the run: ``rank`` in ``0..world_size-1``, its device and the backend."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    backend: str | None  # "nccl" (CUDA), "gloo" (CPU), None: a single process without a process group

    @property
    def is_main(self) -> bool:
        """Rank 0 alone logs, draws the progress bar and writes checkpoints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.backend is not None


def env_world() -> tuple[int, int, int]:
    """``(rank, world_size, local_rank)`` from torchrun's environment variables; ``(0, 1, 0)`` without them."""
    values = []
    for name, default in (("RANK", 0), ("WORLD_SIZE", 1), ("LOCAL_RANK", 0)):
        raw = os.environ.get(name, str(default))
        if not raw.isdigit():
            raise ValueError(f"environment variable {name}={raw!r} is not a non-negative integer; "
                             "launch with torchrun, which sets it, or unset it")
        values.append(int(raw))
    rank, world_size, local_rank = values
    if world_size < 1 or rank >= world_size:
        raise ValueError(f"RANK={rank} must lie in 0..WORLD_SIZE-1 (WORLD_SIZE={world_size})")
    return rank, world_size, local_rank


def init_distributed(device: str | None = None) -> DistributedContext:
    """Join the process group torchrun prepared (NCCL when CUDA is present, gloo otherwise), or stay alone.

    Under torchrun each process takes GPU ``LOCAL_RANK`` when the device is CUDA. Without torchrun's
    variables no process group is started (``backend=None``).
    """
    rank, world_size, local_rank = env_world()
    chosen = get_device(device)
    if chosen.type == "cuda":
        chosen = torch.device("cuda", local_rank)
        torch.cuda.set_device(chosen)
    if "MASTER_ADDR" not in os.environ:
        if world_size > 1:
            raise ValueError(f"WORLD_SIZE={world_size} but no MASTER_ADDR: start the run with torchrun")
        return DistributedContext(0, 1, 0, chosen, None)
    backend = "nccl" if chosen.type == "cuda" else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend, rank=rank, world_size=world_size)
    return DistributedContext(rank, world_size, local_rank, chosen, backend)


def all_reduce_mean(value: torch.Tensor, ctx: DistributedContext) -> torch.Tensor:
    """The mean of ``value`` over all ranks (every rank gets it). gloo has no AVG, so: SUM, then divide."""
    return all_reduce_sum(value, ctx) / ctx.world_size


def all_reduce_sum(value: torch.Tensor, ctx: DistributedContext) -> torch.Tensor:
    """The sum of ``value`` over all ranks (every rank gets it)."""
    if not ctx.distributed:
        return value
    total = value.detach().clone()
    dist.all_reduce(total, op=dist.ReduceOp.SUM)
    return total


def average_gradients(per_rank_grads: list[torch.Tensor]) -> torch.Tensor:
    """What DDP's all-reduce leaves on every rank: the mean of the ranks' gradients, ``(W, ...)`` -> ``(...)``."""
    return torch.stack(per_rank_grads).mean(dim=0)


def shard_indices(n: int, rank: int, world_size: int, seed: int = 0, epoch: int = 0) -> list[int]:
    """The sample indices ``DistributedSampler(shuffle=True, drop_last=True)`` gives ``rank``: one permutation of
    ``range(n)`` drawn from ``seed + epoch``, cut to a multiple of ``world_size``, every ``world_size``-th
    entry starting at ``rank`` (``perm[rank::W]``). The ranks' shards are disjoint and of equal length."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed + epoch)).tolist()  # (N,)
    usable = n - n % world_size
    return perm[rank:usable:world_size]


def rank_batch(shard: list[int], step_in_epoch: int, per_rank_batch: int) -> list[int]:
    """Rank ``r``'s ``b`` sample indices at step ``k`` of an epoch, from its shard (``list(sampler)`` after
    ``sampler.set_epoch(epoch)``, i.e. ``perm[r::W]``): the slice ``[k*b : (k+1)*b]``. Over the ranks these are
    exactly ``perm[k*B : (k+1)*B]``, the global batch one process would take at the same step."""
    return shard[step_in_epoch * per_rank_batch:(step_in_epoch + 1) * per_rank_batch]


def step_seed(seed: int, rank: int, step: int) -> int:
    """A seed for the random draws of ``rank`` at ``step`` (dropout): a pure function of the three, so a resumed
    run draws what the uninterrupted one drew, and no two ranks draw the same dropout masks."""
    return (seed * 1_000_003 + rank * 10_007 + step) % 2**63


class LMWindows(Dataset):
    """A map-style data set of fixed next-token windows of a token stream.

    Item ``i`` is ``(x, y)``, both ``(L,)``, read from ``ids[i*L : i*L + L + 1]``: non-overlapping inputs,
    every token but the first predicted once per epoch (the tail shorter than a window is dropped).
    """

    def __init__(self, ids: torch.Tensor, block_size: int):
        if block_size < 1 or len(ids) < block_size + 1:
            raise ValueError(f"need at least block_size + 1 = {block_size + 1} tokens, got {len(ids)}")
        self.ids, self.block_size = ids.long(), block_size
        self.n = (len(ids) - 1) // block_size

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        start = i * self.block_size
        window = self.ids[start:start + self.block_size + 1]  # (L + 1,)
        return window[:-1], window[1:]

    def batch(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """The windows ``indices`` stacked: ``(x, y)``, both ``(len(indices), L)``."""
        starts = torch.tensor(indices, dtype=torch.long)[:, None] * self.block_size  # (b, 1)
        windows = self.ids[starts + torch.arange(self.block_size + 1)]  # (b, L + 1)
        return windows[:, :-1], windows[:, 1:]
