"""Checkers for the exercises of appendix A1 (scaling out with data parallelism).

===============================  ===============================================================================
checker                          what it holds the candidate to (and the usual mistakes it catches)
===============================  ===============================================================================
``check_shard_indices``          ``shard_indices(n, rank, world_size, seed, epoch)`` = ``DistributedSampler(
                                 shuffle=True, drop_last=True)``: permutation from ``seed + epoch``, cut to a
                                 multiple of ``world_size``, every ``world_size``-th entry from ``rank`` (not
                                 contiguous blocks, not the seed without the epoch, not uneven shards)
``check_simulated_ddp``          ``simulated_ddp_gradients(model, x, y, world_size)``: each rank's gradient of
                                 the mean loss on its ``B / W`` samples, averaged over ranks = the one-process
                                 gradient of the whole batch (not summed, not rank 0's alone)
===============================  ===============================================================================
"""

from __future__ import annotations

import torch
from torch.utils.data import DistributedSampler

from bigtut.checks.core import CheckFailure, assert_close, checker_generator, guarded, passed
from bigtut.gpt import GPT, GPTConfig

__all__ = ["check_shard_indices", "check_simulated_ddp"]


def check_shard_indices(candidate, *, seed: int | None = None) -> None:
    """``candidate(n, rank, world_size, seed, epoch) -> list[int]`` must give what ``DistributedSampler`` gives."""
    if not callable(candidate):
        raise CheckFailure(f"shard_indices: expected a function, got {type(candidate).__name__}")
    gen, seed = checker_generator(seed)
    cases = [(10, 2, 0), (11, 3, 1), (7, 4, 2), (5, 1, 0)]
    cases += [(int(torch.randint(8, 40, (1,), generator=gen)), int(torch.randint(2, 5, (1,), generator=gen)),
               int(torch.randint(0, 5, (1,), generator=gen))) for _ in range(4)]
    for n, world, epoch in cases:
        sample_seed = int(torch.randint(0, 1000, (1,), generator=gen))
        for rank in range(world):
            truth = DistributedSampler(range(n), num_replicas=world, rank=rank, shuffle=True, seed=sample_seed,
                                       drop_last=True)
            truth.set_epoch(epoch)
            expected = list(truth)
            inputs = f"n={n}, rank={rank}, world_size={world}, seed={sample_seed}, epoch={epoch}; checker seed {seed}"
            got = guarded("shard_indices", f"shard_indices({inputs})", candidate, n, rank, world, sample_seed, epoch)
            got = [int(i) for i in (got.tolist() if isinstance(got, torch.Tensor) else got)]
            if got != expected:
                raise CheckFailure(f"shard_indices({inputs}): expected {expected}, got {got}"
                                   + (f" — {len(got)} indices where every rank needs n // world_size = "
                                      f"{n // world} (drop the last n % world_size of the permutation)"
                                      if len(got) != len(expected) else ""))
    passed("shard_indices", f"= DistributedSampler(shuffle=True, drop_last=True) on {len(cases)} cases, every rank")


def check_simulated_ddp(candidate, *, seed: int | None = None) -> None:
    """``candidate(model, x, y, world_size) -> list[Tensor]`` (one gradient per parameter, in
    ``model.parameters()`` order) must equal the gradient of the mean loss over the whole batch."""
    if not callable(candidate):
        raise CheckFailure(f"simulated_ddp_gradients: expected a function, got {type(candidate).__name__}")
    gen, seed = checker_generator(seed)
    for world, per_rank in ((2, 3), (4, 2), (3, 1)):
        torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=gen)))
        model = GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, d_model=8)).double()
        x = torch.randint(0, 11, (world * per_rank, 8), generator=gen)  # (B, L)
        y = torch.randint(0, 11, (world * per_rank, 8), generator=gen)  # (B, L)
        model.zero_grad()
        model(x, y).loss.backward()
        expected = [p.grad.clone() for p in model.parameters()]
        model.zero_grad()
        inputs = f"a 1-layer GPT, batch {world * per_rank}, world_size={world} (checker seed {seed})"
        got = guarded("simulated_ddp_gradients", f"a call on {inputs}", candidate, model, x, y, world)
        if not isinstance(got, (list, tuple)) or len(got) != len(expected):
            raise CheckFailure(f"simulated_ddp_gradients({inputs}): expected a list of {len(expected)} gradients "
                               f"(one per parameter), got {type(got).__name__}"
                               + (f" of length {len(got)}" if isinstance(got, (list, tuple)) else ""))
        names = [name for name, _ in model.named_parameters()]
        for name, g, e in zip(names, got, expected):
            assert_close(g, e, what=f"simulated_ddp_gradients: gradient of {name}", inputs=inputs, atol=1e-10,
                         rtol=1e-8)
    passed("simulated_ddp_gradients", "the mean of the ranks' gradients = the one-process gradient (3 world sizes)")
