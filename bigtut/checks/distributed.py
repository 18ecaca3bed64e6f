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
``check_ring_all_reduce``        ``ring_all_reduce(tensors, send)``: the mean of the W tensors on every rank,
                                 bit-identical, every value sent through ``send(rank, chunk, values)`` to the
                                 next rank, 2 (W − 1) chunk sends per rank on the ring's schedule (not a sum
                                 without sends, not whole tensors, not without the all-gather, not W steps, not
                                 the wrong chunk numbers, not a rank running ahead (in either phase), not an
                                 all-gather that adds, not undivided or divided twice, not the inputs changed
                                 in place)
``check_ddp_accumulation``       ``ddp_accumulation_step(model, optimizer, micro_batches)`` on a real DDP model
                                 (gloo, one process): ``zero_grad``, each micro-batch's loss / M backward under
                                 ``no_sync()`` but the last, one ``optimizer.step()`` = one large-batch step,
                                 one all-reduce (not without ``no_sync``, not ``no_sync`` on the last too, not
                                 undivided losses, not one backward of the summed losses, not a step in the loop
                                 or before the last backward, not ``zero_grad`` missing or misplaced, not the
                                 caller's list of micro-batches shortened)
===============================  ===============================================================================
"""

from __future__ import annotations

import contextlib
import copy
import operator
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import DistributedSampler

from bigtut.checks.core import CheckFailure, _describe, assert_close, checker_generator, guarded, passed
from bigtut.checks.forbidden import OWN_ANSWER, assert_does_not_use
from bigtut.gpt import GPT, GPTConfig

__all__ = ["check_ddp_accumulation", "check_ring_all_reduce", "check_shard_indices", "check_simulated_ddp"]


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


# ------------------------------------------------------------------------------------------ ring all-reduce
class _Ring:
    """The ``send`` a ring all-reduce is given: ``send(rank, chunk, values)`` passes ``values`` (rank ``rank``'s copy
    of chunk number ``chunk``) to rank ``(rank + 1) % W`` and returns what arrives there (a copy). Every send is
    recorded as ``(rank, chunk, values)``."""

    def __init__(self, world: int) -> None:
        self.world = world
        self.sends: list[tuple[int, int, torch.Tensor]] = []

    def __call__(self, rank: Any, chunk: Any, values: Any) -> torch.Tensor:
        numbers = []
        for label, number in (("rank", rank), ("chunk", chunk)):
            try:
                number = operator.index(number)  # an int, a NumPy integer or a one-element integer tensor
            except TypeError:
                number = None
            if number is None or isinstance(number, bool) or not 0 <= number < self.world:
                raise ValueError(f"send(rank, chunk, values): {label} must be an int in 0..{self.world - 1} "
                                 f"(W = {self.world}), got {(rank, chunk)[len(numbers)]!r}")
            numbers.append(number)
        if not isinstance(values, torch.Tensor):
            raise TypeError(f"send(rank, chunk, values): values must be a tensor (the chunk's values), got "
                            f"{type(values).__name__}")
        self.sends.append((numbers[0], numbers[1], values.detach().clone()))
        return values.detach().clone()


def _ring_expected(tensors: list[torch.Tensor], rank: int, k: int, offset: int) -> tuple[int, torch.Tensor]:
    """The chunk number rank ``rank`` sends at its ``k``-th send (0-based) and its running sum: at reduce-scatter
    step ``s = k`` chunk ``(rank − s + offset) mod W``, the sum of that chunk over ranks ``rank − s .. rank``; at
    all-gather step ``s = k − (W − 1)`` chunk ``(rank + 1 − s + offset) mod W``, the sum over all ranks."""
    world = len(tensors)
    if k < world - 1:
        chunk = (rank - k + offset) % world
        owners = [(rank - j) % world for j in range(k + 1)]
    else:
        chunk = (rank + 1 - (k - world + 1) + offset) % world
        owners = list(range(world))
    return chunk, sum(tensors[j].tensor_split(world)[chunk] for j in owners)


def _ring_chunk_hint(chunks: list[int], rank: int, world: int, offset: int) -> str:
    """Name the rule a rank's chunk numbers followed, when it is a known wrong one."""
    steps = range(min(len(chunks), world - 1))
    if world < 3:  # with two ranks, r + s and r − s are the same chunk
        return ""
    if len(set(chunks[:world - 1])) == 1:
        return ("\n  Hint: the rank sent the same chunk at every step: at step s it passes on the chunk that just "
                "arrived from rank r − 1, number (r − s) mod W")
    if all(chunks[s] == (rank + s + offset) % world for s in steps):
        return ("\n  Hint: the chunk number runs the wrong way round the ring: (r − s) mod W, the chunk that arrived "
                "from rank r − 1 at the step before")
    return ""


def _ring_send_failure(tensors: list[torch.Tensor], sends: list[tuple[int, int, torch.Tensor]], inputs: str) -> None:
    """Check every send's chunk number and values against the ring schedule; raise at the first wrong one."""
    world = len(tensors)
    per_rank: dict[int, list[tuple[int, int, torch.Tensor]]] = {r: [] for r in range(world)}
    for position, (rank, chunk, values) in enumerate(sends):
        per_rank[rank].append((position, chunk, values))
    offset = per_rank[0][0][1]  # rank 0's first chunk fixes which chunk each rank starts with
    rule = ("at reduce-scatter step s rank r sends chunk (r − s) mod W (the one that arrived at the step before), at "
            "all-gather step s chunk (r + 1 − s) mod W")
    for rank in range(world):
        chunks = [chunk for _, chunk, _ in per_rank[rank]]
        for k, (position, chunk, values) in enumerate(per_rank[rank]):
            phase, step = ("reduce-scatter", k) if k < world - 1 else ("all-gather", k - world + 1)
            where = f"rank {rank}'s send at {phase} step {step}"
            expected_chunk, running = _ring_expected(tensors, rank, k, offset)
            if chunk != expected_chunk:
                raise CheckFailure(f"ring_all_reduce({inputs}): {where} carried chunk {chunk}, expected chunk "
                                   f"{expected_chunk}: {rule}{' (shifted by ' + str(offset) + ')' if offset else ''}"
                                   f"{_ring_chunk_hint(chunks, rank, world, offset)}")
            size = tuple(running.shape)
            if tuple(values.shape) != size:
                by_chunk = (chunk < len(tensors[0].chunk(world))
                            and tuple(values.shape) == tuple(tensors[0].chunk(world)[chunk].shape))
                raise CheckFailure(
                    f"ring_all_reduce({inputs}): {where} sent values of shape {tuple(values.shape)}, expected chunk "
                    f"{chunk} of t.tensor_split(W), shape {size}"
                    + ("\n  Hint: torch.chunk sizes its chunks differently (and can give fewer than W): cut with "
                       "t.tensor_split(W)" if by_chunk else ""))
            if values.is_floating_point() and any(torch.allclose(values.double(), running * f, atol=1e-12, rtol=1e-10)
                                                  for f in (1.0, 1.0 / world)):
                continue
            hint = ""
            if k > 0:  # what rank r sends at its k-th send arrived with rank r − 1's (k − 1)-th
                upstream = per_rank[(rank - 1) % world]
                if len(upstream) >= k and upstream[k - 1][0] > position:  # steps counted over both phases
                    hint = (f"\n  Hint: rank {rank} sent at step {k} before rank {(rank - 1) % world}'s step-{k - 1} "
                            f"chunk had arrived: make all W sends of a step (and add or copy what they bring) before "
                            f"the next step")
            if not hint and torch.allclose(values.double(), tensors[rank].tensor_split(world)[chunk], atol=1e-12):
                hint = ("\n  Hint: the rank passed on its own original chunk: add what arrives to your copy of the "
                        "chunk, and send that running sum on")
            if not hint and k >= world - 1:
                hint = ("\n  Hint: in the all-gather each rank passes on the finished chunk it holds or has just "
                        "received: copy what arrives (do not add it)")
            over = (f"ranks {sorted((rank - j) % world for j in range(k + 1))}" if k < world - 1 else "all ranks")
            raise CheckFailure(f"ring_all_reduce({inputs}): {where} (chunk {chunk}) carried {_describe(values)}, "
                               f"expected the sum of chunk {chunk} over {over}: {_describe(running)} (or that divided "
                               f"by W = {world}){hint}")


def check_ring_all_reduce(candidate, *, seed: int | None = None) -> None:
    """``candidate(tensors, send) -> list[Tensor]``: the mean of the ``W`` tensors ``(N,)`` (one per rank) on every
    rank, by a ring all-reduce in which every value travels through ``send(rank, chunk, values)`` (rank to rank + 1,
    one chunk of ``t.tensor_split(W)`` at a time): ``W − 1`` reduce-scatter steps (rank r sends chunk
    ``(r − s) mod W`` and the next rank adds it to its own) then ``W − 1`` all-gather steps (rank r sends chunk
    ``(r + 1 − s) mod W``, the next rank copies it), so ``2 (W − 1)`` sends per rank; the inputs unchanged, the
    results bit-identical on every rank."""
    if not callable(candidate):
        raise CheckFailure(f"ring_all_reduce: expected a function, got {type(candidate).__name__}")
    gen, seed = checker_generator(seed)
    for world, n in ((3, 7), (2, 6), (4, 10), (5, 13)):
        tensors = [torch.randn(n, generator=gen, dtype=torch.float64) for _ in range(world)]  # W × (N,)
        given = [t.clone() for t in tensors]
        inputs = f"W={world} ranks, tensors of N={n} (checker seed {seed})"
        ring = _Ring(world)
        got = guarded("ring_all_reduce", f"ring_all_reduce on {inputs}", candidate, given, ring)
        if len(given) != world or not all(torch.equal(g, t) for g, t in zip(given, tensors)):
            raise CheckFailure(f"ring_all_reduce({inputs}): changed the input tensors in place (`t += …`, "
                               f"`chunk.add_(…)` on a view of t): each rank's buffer belongs to the caller — work on "
                               f"copies (t.clone()), and return new tensors")
        counts = [sum(1 for r, _, _ in ring.sends if r == rank) for rank in range(world)]
        whole = [r for r, _, values in ring.sends if tuple(values.shape) == (n,)]
        if whole:
            raise CheckFailure(f"ring_all_reduce({inputs}): rank {whole[0]} sent a whole tensor of N={n} values: a "
                               f"send carries one chunk, t.tensor_split(W)[c] — passing whole tensors round the ring "
                               f"costs (W − 1) · N per rank, the ring all-reduce 2 (W − 1) · N / W")
        if not ring.sends:
            raise CheckFailure(f"ring_all_reduce({inputs}): nothing went through send: a rank holds only its own "
                               f"tensor, so adding them all up (gathering them on one rank) is not possible — every "
                               f"value must travel round the ring, send(rank, chunk, values)")
        if counts != [2 * (world - 1)] * world:
            if len(set(counts)) == 1 and counts[0] == world - 1:
                detail = ("only the reduce-scatter: after it each rank holds ONE finished chunk; the all-gather's "
                          "W − 1 steps pass the finished chunks round")
            elif len(set(counts)) == 1 and counts[0] in (2 * world - 1, 2 * world):
                detail = "W steps per phase: each phase takes W − 1 steps"
            elif len(set(counts)) > 1:
                detail = ("the ranks do not send equally (one rank gathering, or a rank skipped): in every step each "
                          "rank sends one chunk to the next")
            else:
                detail = "each phase takes W − 1 steps, with one send per rank per step"
            raise CheckFailure(f"ring_all_reduce({inputs}): the ranks sent {counts} chunks, expected 2 (W − 1) = "
                               f"{2 * (world - 1)} each: {detail}")
        _ring_send_failure(tensors, ring.sends, inputs)
        if (not isinstance(got, (list, tuple)) or len(got) != world
                or not all(isinstance(result, torch.Tensor) for result in got)):
            raise CheckFailure(f"ring_all_reduce({inputs}): expected a list of {world} tensors (each rank's result), "
                               f"got {_describe(got)}")
        mean = torch.stack(tensors).mean(0)  # (N,)
        for rank, result in enumerate(got):
            try:
                assert_close(result, mean, what=f"ring_all_reduce: rank {rank}'s result", inputs=inputs, atol=1e-12,
                             rtol=1e-10)
            except CheckFailure as failure:
                hint = ""
                if _same(result, mean * world):
                    hint = "\n  Hint: the sum, not divided by W: the all-reduce here is the mean, as DDP's"
                elif _same(result, mean / world):
                    hint = "\n  Hint: divided by W twice: divide once (before sending, or at the end)"
                raise CheckFailure(f"{failure}{hint}") from None
        if not all(torch.equal(result, got[0]) for result in got):
            raise CheckFailure(f"ring_all_reduce({inputs}): the ranks' results differ in the last bits: after the "
                               f"all-gather every rank holds copies of the same finished chunks, so the results must "
                               f"be bit-identical — copy what arrives, do not sum it again in another order")
    passed("ring_all_reduce", "the mean on every rank, bit-identical, 2 (W − 1) chunk sends per rank round the ring "
                              "(W = 2 to 5)")


# ------------------------------------------------------------------------------ DDP with gradient accumulation
_ACCUMULATION_LR = 0.5  # plain SGD: the step is linear in the gradient, so every wrong gradient shows


@contextlib.contextmanager
def _world_of_one() -> Iterator[None]:
    """A gloo process group of one process (this one) for the block, unless one exists already."""
    import torch.distributed as dist

    created = False
    if not dist.is_initialized():
        dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
        created = True
    elif dist.get_world_size() != 1:
        raise CheckFailure(f"ddp_accumulation_step: this process belongs to a process group of "
                           f"{dist.get_world_size()}; run the checker in a single process (world size 1)")
    try:
        yield
    finally:
        if created:
            dist.destroy_process_group()


def _recording_module(module: torch.nn.Module, micro_batches: list[tuple[torch.Tensor, torch.Tensor]],
                      events: list[tuple]) -> None:
    """Append ``("forward", k)`` at every forward of ``module`` (``k``: which micro-batch it ran on, -1 for none,
    ``"all"`` for all of them at once) and ``("backward", k)`` when a gradient reaches its logits."""
    forward = module.forward
    everything = torch.cat([x for x, _ in micro_batches])  # (M·b, L)

    def recording_forward(*args: Any, **kwargs: Any) -> Any:
        idx = args[0] if args else kwargs.get("idx")
        which: Any = -1
        if isinstance(idx, torch.Tensor):
            matches = [k for k, (x, _) in enumerate(micro_batches) if idx.shape == x.shape and torch.equal(idx, x)]
            which = matches[0] if matches else ("all" if idx.shape == everything.shape
                                                and torch.equal(idx, everything) else -1)
        events.append(("forward", which))
        out = forward(*args, **kwargs)
        logits = getattr(out, "logits", None)
        if isinstance(logits, torch.Tensor) and logits.requires_grad:
            logits.register_hook(lambda g: events.append(("backward", which)))
        return out

    module.forward = recording_forward  # an instance attribute, shadowing GPT.forward


def _counting_hook(events: list[tuple]) -> Any:
    """A DDP communication hook that records each all-reduce of a gradient bucket (the world has one process: the
    bucket's sum over ranks is the bucket itself)."""
    def hook(state, bucket):  # no annotations: DDP checks them against its own types, and these are strings
        events.append(("all-reduce",))
        future: torch.futures.Future = torch.futures.Future()
        future.set_result(bucket.buffer())
        return future

    return hook


def _accumulation_events(events: list[tuple], count: int, inputs: str) -> None:
    """Name what the step did wrong in its order of forwards, backwards, all-reduces and optimizer steps."""
    name = "ddp_accumulation_step"
    forwards = [e[1] for e in events if e[0] == "forward"]
    if forwards == ["all"]:
        raise CheckFailure(f"{name}({inputs}): the model ran once, on all {count} micro-batches concatenated: that is "
                           f"the large-batch step accumulation replaces — run each micro-batch on its own")
    if forwards != list(range(count)):
        raise CheckFailure(f"{name}({inputs}): the model ran on the micro-batches {forwards} (-1: another input); "
                           f"expected each of the {count} micro-batches once, in order: {list(range(count))}")
    passes = [e for e in events if e[0] in ("forward", "backward")]
    expected = [(kind, k) for k in range(count) for kind in ("forward", "backward")]
    if passes != expected:
        raise CheckFailure(f"{name}({inputs}): forwards and backwards came in the order "
                           f"{[f'{kind} {k}' for kind, k in passes]}; each micro-batch's backward must follow its "
                           f"own forward before the next forward (one loss.backward() per micro-batch: summing the "
                           f"losses first keeps every micro-batch's activations in memory)")
    synced, current = [], None  # the micro-batches whose backward all-reduced
    for event in events:
        if event[0] == "backward":
            current = event[1]
        elif event[0] == "all-reduce" and current is not None and current not in synced:
            synced.append(current)
    if not synced:
        raise CheckFailure(f"{name}({inputs}): no all-reduce at all: every micro-batch ran under model.no_sync() (or "
                           f"around the DDP wrapper, through model.module), so the ranks never average their "
                           f"gradients — the last micro-batch must run outside no_sync()")
    if synced != [count - 1]:
        early = [k for k in synced if k != count - 1]
        raise CheckFailure(f"{name}({inputs}): the gradients were all-reduced after micro-batch(es) {synced} of "
                           f"0..{count - 1}: run micro-batch(es) {early} under `with model.no_sync():` — only the last "
                           f"backward all-reduces (one all-reduce per step, not one per micro-batch)"
                           + ("" if count - 1 in synced else "; and the last one outside it")
                           + "; the forward goes inside no_sync() too: DDP decides in the forward whether the "
                             "backward will all-reduce")
    kinds = [e[0] for e in events]
    steps = kinds.count("step")
    if steps != 1:
        raise CheckFailure(f"{name}({inputs}): optimizer.step() was called {steps} times for {count} micro-batches; "
                           f"once, after the last backward"
                           + (" (not inside the loop)" if steps > 1 else ""))
    last_backward = max(i for i, kind in enumerate(kinds) if kind == "backward")
    if kinds.index("step") < last_backward:
        raise CheckFailure(f"{name}({inputs}): optimizer.step() came before the last backward: step once, after every "
                           f"micro-batch's gradient has been added up")


def _accumulation_variants(grads: list[list[torch.Tensor]], stale: list[torch.Tensor], start: list[torch.Tensor]
                           ) -> dict[str, torch.Tensor]:
    """The parameters ``(flattened)`` after an SGD step on the gradients of the usual mistakes: ``grads[k]`` is
    micro-batch ``k``'s gradient of its mean loss (one tensor per parameter), ``stale`` what ``.grad`` held before."""
    count = len(grads)

    def after(gradient: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat([(p - _ACCUMULATION_LR * g).flatten() for p, g in zip(start, gradient)])

    total = [sum(g) for g in zip(*grads)]
    return {
        "each micro-batch's loss must be divided by the number of micro-batches: the sum of their gradients is "
        f"{count} times the large batch's": after(total),
        "the gradient left in .grad before the call was added: call optimizer.zero_grad() first, before the "
        "micro-batches": after([t / count + s for t, s in zip(total, stale)]),
        "the gradient left in .grad was added and the losses were not divided by the number of micro-batches":
            after([t + s for t, s in zip(total, stale)]),
        "only the last micro-batch's gradient was used: zero_grad() inside the loop erases the earlier ones — clear "
        "the gradients once, before the loop": after([g / count for g in grads[-1]]),
        f"divided by the number of micro-batches twice (by {count}² in all)": after([t / count**2 for t in total]),
        "the weights did not move: the gradient was cleared between the last backward and optimizer.step()":
            after([torch.zeros_like(p) for p in start]),
    }


def check_ddp_accumulation(candidate, *, seed: int | None = None) -> None:
    """``candidate(model, optimizer, micro_batches) -> loss``: one optimizer step of a ``DistributedDataParallel``
    model over the micro-batches ``[(x, y), …]`` (each ``(b, L)``): ``optimizer.zero_grad()``, then each
    micro-batch's ``model(x, y).loss / M`` backward — under ``model.no_sync()`` for all but the last, so DDP
    all-reduces once, after the last backward — then ``optimizer.step()``; it returns the step's loss (the mean
    over the micro-batches, a number or a 0-d tensor).

    The model is a real DDP-wrapped GPT on a gloo process group of one process (created for the check when none
    exists); a communication hook counts the all-reduces. The parameters after the call must equal one step of the
    same optimizer on the whole batch (the gradient of its mean loss); ``.grad`` holds a stale gradient before the
    call."""
    name = "ddp_accumulation_step"
    if not callable(candidate):
        raise CheckFailure(f"{name}: expected a function, got {type(candidate).__name__}")
    gen, seed = checker_generator(seed)
    with _world_of_one():
        for count, micro in ((3, 2), (2, 3), (4, 1), (1, 2)):
            _accumulation_case(candidate, gen, count, micro, f"a 1-layer GPT, {count} micro-batches of {micro} "
                                                             f"(checker seed {seed})")
    passed(name, "one all-reduce per step, = one large-batch SGD step (4 accumulations, a real DDP model)")


def _accumulation_case(candidate: Any, gen: torch.Generator, count: int, micro: int, inputs: str) -> None:
    """One case of :func:`check_ddp_accumulation`: ``count`` micro-batches of ``micro`` sequences."""
    from torch.nn.parallel import DistributedDataParallel

    name = "ddp_accumulation_step"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=gen)))
        module = GPT(GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, d_model=8)).double()
    x = torch.randint(0, 11, (count * micro, 8), generator=gen)  # (B, L)
    y = torch.randint(0, 11, (count * micro, 8), generator=gen)  # (B, L)
    micro_batches = [(x[k * micro:(k + 1) * micro], y[k * micro:(k + 1) * micro]) for k in range(count)]
    start = [p.detach().clone() for p in module.parameters()]
    stale = [0.5 * torch.randn(p.shape, generator=gen, dtype=torch.float64) for p in module.parameters()]
    reference = copy.deepcopy(module)
    full_loss = reference(x, y).loss
    full_loss.backward()
    expected = torch.cat([(p - _ACCUMULATION_LR * p.grad).detach().flatten() for p in reference.parameters()])
    events: list[tuple] = []
    _recording_module(module, micro_batches, events)
    model = DistributedDataParallel(module)
    model.register_comm_hook(None, _counting_hook(events))
    for p, g in zip(module.parameters(), stale):
        p.grad = g.clone()  # what the previous step left behind
    optimizer = torch.optim.SGD(model.parameters(), lr=_ACCUMULATION_LR)
    optimizer.step = _recording_step(optimizer.step, events)
    given = [(a.clone(), b.clone()) for a, b in micro_batches]
    try:
        got = guarded(name, f"ddp_accumulation_step(model, optimizer, micro_batches) on {inputs}", candidate, model,
                      optimizer, given)
    finally:
        del module.forward
    if len(given) != count:
        raise CheckFailure(f"{name}({inputs}): the list of micro-batches now holds {len(given)} of the {count} it was "
                           f"handed (micro_batches.pop(), .remove(), del …): the caller's list is not yours to change "
                           f"— read it, e.g. `*first, last = micro_batches` or micro_batches[-1]")
    if not all(torch.equal(a, c) and torch.equal(b, d) for (a, b), (c, d) in zip(given, micro_batches)):
        raise CheckFailure(f"{name}({inputs}): changed the micro-batches in place")
    _accumulation_events(events, count, inputs)
    after = torch.cat([p.detach().flatten() for p in module.parameters()])
    if not torch.allclose(after, expected, atol=1e-10, rtol=1e-8):
        hint = next((f"\n  Hint: {label}." for label, wrong in _accumulation_variants(
            _micro_gradients(module, start, micro_batches), stale, start).items()
            if torch.allclose(after, wrong, atol=1e-10, rtol=1e-8)), "")
        try:
            assert_close(after, expected, what=f"{name}: the parameters after the step (flattened)", inputs=inputs,
                         atol=1e-10, rtol=1e-8)
        except CheckFailure as failure:
            raise CheckFailure(f"{failure}\n  (expected: one step of the same optimizer on the whole batch, the "
                               f"gradient of its mean loss){hint}") from None
    if isinstance(got, (int, float)) and not isinstance(got, bool):
        got = torch.tensor(float(got), dtype=torch.float64)  # loss.item(): a Python float is a float64
    if not isinstance(got, torch.Tensor) or got.numel() != 1:
        raise CheckFailure(f"{name}({inputs}): expected the step's loss (a number), got {_describe(got)}")
    loss, full = got.detach().double().reshape(()), full_loss.detach()
    atol, rtol = (1e-6, 1e-6) if got.dtype == torch.float32 else (1e-10, 1e-8)  # a float32 loss: harmless
    if not torch.allclose(loss, full, atol=atol, rtol=rtol):
        hint = (" — the sum of the micro-batches' losses: divide each by the number of micro-batches"
                if count > 1 and torch.allclose(loss, full * count, atol=atol, rtol=rtol) else
                " — divided by the number of micro-batches twice: the sum of the divided losses is the mean"
                if count > 1 and torch.allclose(loss, full / count, atol=atol, rtol=rtol) else "")
        raise CheckFailure(f"{name}({inputs}): returned the loss {loss.item():.6g}, expected {full.item():.6g}, the "
                           f"mean loss over the whole batch (the sum of the micro-batches' losses / M){hint}")


def _micro_gradients(module: torch.nn.Module, start: list[torch.Tensor],
                     micro_batches: list[tuple[torch.Tensor, torch.Tensor]]) -> list[list[torch.Tensor]]:
    """Each micro-batch's gradient of its mean loss at the parameters ``start`` (one tensor per parameter)."""
    grads = []
    for xs, ys in micro_batches:
        reference = copy.deepcopy(module)
        with torch.no_grad():
            for p, s in zip(reference.parameters(), start):
                p.copy_(s)
                p.grad = None
        reference(xs, ys).loss.backward()
        grads.append([p.grad for p in reference.parameters()])
    return grads


def _recording_step(step: Any, events: list[tuple]) -> Any:
    """``optimizer.step``, appending ``("step",)`` to ``events`` at every call."""
    def recording_step(*args: Any, **kwargs: Any) -> Any:
        events.append(("step",))
        return step(*args, **kwargs)

    return recording_step
