"""Checkers for the exercises of appendix A1 (scaling out with data parallelism).

===============================  ===============================================================================
checker                          what it holds the candidate to (and the usual mistakes it catches)
===============================  ===============================================================================
``check_shard_indices``          ``shard_indices(n, rank, world_size, seed, epoch)`` = ``DistributedSampler(
                                 shuffle=True, drop_last=True)``: permutation from ``seed + epoch``, cut to a
                                 multiple of ``world_size``, every ``world_size``-th entry from ``rank`` (not
                                 contiguous blocks, not the seed without the epoch, not a seed per rank, not
                                 unshuffled, not uneven or padded shards, not the head dropped instead of the
                                 tail, not ranks counted from 1, not the global random state reseeded, not
                                 ``DistributedSampler`` itself)
``check_simulated_ddp``          ``simulated_ddp_gradients(model, x, y, world_size)``: each rank's gradient of
                                 the mean loss on its ``B / W`` contiguous samples, averaged over ranks = the
                                 one-process gradient of the whole batch (not summed, not rank 0's alone, not
                                 the last rank's alone, not accumulated without ``zero_grad``, not divided by
                                 ``B``; and the model must run once per rank on that rank's contiguous shard —
                                 one forward of the whole batch, or interleaved shards, fail — without changing
                                 the parameters)
===============================  ===============================================================================
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DistributedSampler

from bigtut.checks.core import CheckFailure, _describe, assert_close, checker_generator, guarded, passed
from bigtut.checks.explain import OWN_ANSWER, assert_does_not_use
from bigtut.gpt import GPT, GPTConfig

__all__ = ["check_shard_indices", "check_simulated_ddp"]


def _sampler(n: int, rank: int, world: int, seed: int, epoch: int, drop_last: bool = True) -> list[int]:
    """What ``DistributedSampler(shuffle=True)`` yields for this rank after ``set_epoch(epoch)``."""
    sampler = DistributedSampler(range(n), num_replicas=world, rank=rank, shuffle=True, seed=seed, drop_last=drop_last)
    sampler.set_epoch(epoch)
    return list(sampler)


def _shard_variants(n: int, rank: int, world: int, seed: int, epoch: int) -> dict[str, Any]:
    """The indices the usual wrong shardings give this rank (each computed only when asked for)."""
    def perm(s: int) -> list[int]:
        return torch.randperm(n, generator=torch.Generator().manual_seed(s)).tolist()

    usable, size = n - n % world, n // world
    return {
        "contiguous blocks perm[rank·n/W:(rank+1)·n/W]; DistributedSampler deals every W-th index, "
        "perm[rank:usable:world_size]": lambda: perm(seed + epoch)[rank * size:(rank + 1) * size],
        "the epoch is ignored: seed the permutation with seed + epoch, so every epoch has its own order":
            lambda: perm(seed)[rank:usable:world],
        "seed · epoch; the sampler seeds its permutation with seed + epoch":
            lambda: perm(seed * epoch)[rank:usable:world],
        "each rank seeds with its own rank: the ranks must share one permutation (seed + epoch), or their shards "
        "overlap": lambda: perm(seed + epoch + rank)[rank:usable:world],
        "not shuffled: deal out torch.randperm(n, generator=torch.Generator().manual_seed(seed + epoch))":
            lambda: list(range(usable))[rank::world],
        "the first n % world_size indices of the permutation were dropped; drop_last drops the last ones":
            lambda: perm(seed + epoch)[n % world:][rank::world],
        "ranks counted from 1: rank r starts at perm[r]": lambda: perm(seed + epoch)[rank + 1:usable:world],
        "padded to a multiple of world_size (drop_last=False); drop the tail instead":
            lambda: _sampler(n, rank, world, seed, epoch, drop_last=False),
    }


@contextlib.contextmanager
def _watching_sampler() -> Iterator[list[bool]]:
    """Within the block, iterating any ``DistributedSampler`` appends True to the yielded list."""
    used: list[bool] = []
    original = DistributedSampler.__iter__

    def watched(self: DistributedSampler) -> Iterator[int]:
        used.append(True)
        return original(self)

    DistributedSampler.__iter__ = watched
    try:
        yield used
    finally:
        DistributedSampler.__iter__ = original


def check_shard_indices(candidate, *, seed: int | None = None) -> None:
    """``candidate(n, rank, world_size, seed, epoch) -> list[int]`` must give what ``DistributedSampler`` gives,
    without touching the global random state (a ``torch.Generator`` of its own, not ``torch.manual_seed``)."""
    if not callable(candidate):
        raise CheckFailure(f"shard_indices: expected a function, got {type(candidate).__name__}")
    gen, seed = checker_generator(seed)
    cases = [(10, 2, 0), (11, 3, 1), (7, 4, 2), (5, 1, 0)]
    cases += [(int(torch.randint(8, 40, (1,), generator=gen)), int(torch.randint(2, 5, (1,), generator=gen)),
               int(torch.randint(0, 5, (1,), generator=gen))) for _ in range(4)]
    for n, world, epoch in cases:
        sample_seed = int(torch.randint(0, 1000, (1,), generator=gen))
        for rank in range(world):
            expected = _sampler(n, rank, world, sample_seed, epoch)
            inputs = f"n={n}, rank={rank}, world_size={world}, seed={sample_seed}, epoch={epoch}; checker seed {seed}"
            rng_before = torch.get_rng_state()
            with _watching_sampler() as sampler_used:
                got = guarded("shard_indices", f"shard_indices({inputs})", candidate, n, rank, world, sample_seed,
                              epoch)
            if sampler_used:
                raise CheckFailure(f"shard_indices({inputs}): it iterated a DistributedSampler — the exercise is to "
                                   f"write what the sampler does: draw the permutation with torch.randperm(n, "
                                   f"generator=torch.Generator().manual_seed(seed + epoch)) and deal it out yourself")
            rng_changed = not torch.equal(torch.get_rng_state(), rng_before)
            torch.set_rng_state(rng_before)
            try:
                got = [int(i) for i in (got.tolist() if isinstance(got, torch.Tensor) else got)]
            except (TypeError, ValueError):
                raise CheckFailure(f"shard_indices({inputs}): expected a list of ints, got {_describe(got)}") from None
            if got != expected:
                hint = next((f"\n  Hint: {label}." for label, wrong in _shard_variants(
                    n, rank, world, sample_seed, epoch).items() if wrong() == got), "")
                raise CheckFailure(f"shard_indices({inputs}): expected {expected}, got {got}"
                                   + (f" — {len(got)} indices where every rank needs n // world_size = "
                                      f"{n // world} (drop the last n % world_size of the permutation)"
                                      if len(got) != len(expected) else "") + hint)
            if rng_changed:
                raise CheckFailure(f"shard_indices({inputs}): the right indices, but the call changed the global "
                                   f"random state (torch.manual_seed, or torch.randperm without a generator): every "
                                   f"later random draw of the program now depends on it — draw the permutation with "
                                   f"generator=torch.Generator().manual_seed(seed + epoch)")
    assert_does_not_use("shard_indices", candidate, {
        "shard_indices": OWN_ANSWER.format("bigtut.distributed's shard_indices"),
        "DistributedSampler": "the exercise is to write what DistributedSampler does, not to call it"})
    passed("shard_indices", f"= DistributedSampler(shuffle=True, drop_last=True) on {len(cases)} cases, every rank")


def _rank_gradients(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, world: int) -> list[list[torch.Tensor]]:
    """Each rank's gradient of its mean loss, one list per rank (the model's .grad is left zeroed)."""
    per_rank, grads = x.shape[0] // world, []
    for rank in range(world):
        model.zero_grad()
        shard = slice(rank * per_rank, (rank + 1) * per_rank)
        model(x[shard], y[shard]).loss.backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    model.zero_grad()
    return grads


def _ddp_variants(ranks: list[list[torch.Tensor]], batch: int) -> dict[str, list[torch.Tensor]]:
    """The gradients ``(one per parameter)`` of the usual wrong all-reduces, from the ranks' own gradients."""
    world = len(ranks)
    per_param = [torch.stack(g) for g in zip(*ranks)]  # each (W, *shape)
    cumulative = [g.cumsum(0) for g in per_param]  # rank r's .grad without zero_grad: the sum over ranks ≤ r
    return {
        "the ranks' gradients were summed (all-reduce SUM) and not divided by world_size":
            [g.sum(0) for g in per_param],
        "rank 0's gradient alone: average it with the other ranks' (the all-reduce)": [g[0] for g in per_param],
        "the last rank's gradient alone: p.grad was stored without .clone() and zeroed or overwritten in place, or "
        "only the last rank's was kept": [g[-1] for g in per_param],
        "the gradients accumulated across ranks: call model.zero_grad() before each rank's backward":
            [c.mean(0) for c in cumulative],
        f"the sum over ranks was divided by the batch size B = {batch}; each rank's loss is already a mean over its "
        f"samples, so divide by world_size = {world}": [g.sum(0) / batch for g in per_param],
    }


def _recording(forward: Any, seen: list[Any]) -> Any:
    """``forward``, appending the token ids of every call to ``seen``."""
    def recording_forward(*args: Any, **kwargs: Any) -> Any:
        idx = args[0] if args else kwargs.get("idx")
        seen.append(idx.detach().clone() if isinstance(idx, torch.Tensor) else idx)
        return forward(*args, **kwargs)

    return recording_forward


def _same(got: Any, wrong: torch.Tensor) -> bool:
    """Does the candidate's gradient ``got`` equal the wrong variant's, to the checker's tolerance?"""
    return (isinstance(got, torch.Tensor) and got.shape == wrong.shape
            and torch.allclose(got.detach().double(), wrong, atol=1e-10, rtol=1e-8))


def _matching_rows(batch: torch.Tensor, x: torch.Tensor) -> list[int]:
    """For each row of ``batch``, its index in ``x`` (-1 where none matches)."""
    if batch.dim() != 2 or batch.shape[1] != x.shape[1]:
        return [-1] * (batch.shape[0] if batch.dim() else 1)
    same = (batch[:, None, :] == x[None, :, :]).all(-1)  # (b, B)
    return [int(row.nonzero()[0]) if bool(row.any()) else -1 for row in same]


def check_simulated_ddp(candidate, *, seed: int | None = None) -> None:
    """``candidate(model, x, y, world_size) -> list[Tensor]`` (one gradient per parameter, in
    ``model.parameters()`` order) must equal the gradient of the mean loss over the whole batch, found by running
    the model once per rank, on that rank's contiguous shard of ``B / world_size`` samples, without changing the
    parameters."""
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
        parameters = [p.detach().clone() for p in model.parameters()]
        inputs = f"a 1-layer GPT, batch {world * per_rank}, world_size={world} (checker seed {seed})"
        seen: list[Any] = []  # the token ids of every forward call, through model(...) or model.forward(...)
        model.forward = _recording(model.forward, seen)  # an instance attribute, shadowing GPT.forward
        try:
            got = guarded("simulated_ddp_gradients", f"a call on {inputs}", candidate, model, x.clone(), y.clone(),
                          world)
        finally:
            del model.forward
        if not isinstance(got, (list, tuple)) or len(got) != len(expected):
            raise CheckFailure(f"simulated_ddp_gradients({inputs}): expected a list of {len(expected)} gradients "
                               f"(one per parameter), got {type(got).__name__}"
                               + (f" of length {len(got)}" if isinstance(got, (list, tuple)) else ""))
        changed = [name for (name, p), before in zip(model.named_parameters(), parameters)
                   if not torch.equal(p.detach(), before)]
        if changed:
            raise CheckFailure(f"simulated_ddp_gradients({inputs}): the parameters changed ({', '.join(changed[:3])}"
                               f"{', …' if len(changed) > 3 else ''}): return the averaged gradients, take no "
                               f"optimizer step")
        names = [name for name, _ in model.named_parameters()]
        for name, g, e in zip(names, got, expected):
            try:
                assert_close(g, e, what=f"simulated_ddp_gradients: gradient of {name}", inputs=inputs, atol=1e-10,
                             rtol=1e-8)
            except CheckFailure as failure:
                wrong = _ddp_variants(_rank_gradients(model, x, y, world), x.shape[0])
                hint = next((f"\n  Hint: {label}." for label, grads in wrong.items()
                             if all(_same(a, b) for a, b in zip(got, grads))), "")
                raise CheckFailure(f"{failure}{hint}") from None
        shards = [list(range(r * per_rank, (r + 1) * per_rank)) for r in range(world)]
        rows = [_matching_rows(idx, x) if isinstance(idx, torch.Tensor) else [-1] for idx in seen]
        if sorted(rows) != shards:
            if len(seen) == 1 and rows[0] == list(range(x.shape[0])):
                detail = (f"the model ran once, on the whole batch of {x.shape[0]}: that is the one-process gradient "
                          f"the simulation should reproduce, not {world} ranks")
            else:
                detail = (f"the model ran {len(seen)} time(s), on the rows {rows[:6]}{' …' if len(rows) > 6 else ''} "
                          f"of x")
            raise CheckFailure(f"simulated_ddp_gradients({inputs}): {detail}; each of the {world} ranks must run "
                               f"the model once on its own contiguous shard of B / world_size = {per_rank} samples, "
                               f"rank r on x[r·{per_rank}:(r+1)·{per_rank}], i.e. the rows {shards}")
    passed("simulated_ddp_gradients", "the mean of the ranks' gradients = the one-process gradient (3 world sizes)")
