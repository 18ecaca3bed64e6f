"""The appendix-A1 checkers pass the right answers on seeds 0–2 and catch the usual wrong ones, each with a message
naming the mistake."""
import contextlib

import pytest
import torch
from checker_cases import assert_fails_naming, assert_passes_on_seeds

from bigtut.checks import CheckFailure
from bigtut.checks.distributed import (
    check_ddp_accumulation,
    check_ring_all_reduce,
    check_shard_indices,
    check_simulated_ddp,
)
from bigtut.distributed import shard_indices as reference_shard_indices


# ------------------------------------------------------------------------- right answers (the notebook's solutions)
def shard_indices(n, rank, world_size, seed, epoch):
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed + epoch)).tolist()  # (n,)
    usable = n - n % world_size  # drop the tail, so every rank gets n // world_size
    return perm[rank:usable:world_size]


def simulated_ddp_gradients(model, x, y, world_size):
    per_rank = x.shape[0] // world_size
    grads = []  # one list of gradients per rank
    for rank in range(world_size):
        shard = slice(rank * per_rank, (rank + 1) * per_rank)
        model.zero_grad()
        model(x[shard], y[shard]).loss.backward()  # the mean over this rank's samples
        grads.append([p.grad.clone() for p in model.parameters()])
    return [torch.stack(per_param).mean(dim=0) for per_param in zip(*grads)]  # the all-reduce: mean over ranks


def ring_all_reduce(tensors, send):
    W = len(tensors)
    chunks = [list(t.clone().tensor_split(W)) for t in tensors]  # chunks[r][c]: rank r's copy of chunk c
    for step in range(W - 1):  # reduce-scatter: each rank adds the chunk that arrives
        sent = [(r, (r - step) % W) for r in range(W)]
        arrived = [send(r, c, chunks[r][c]) for r, c in sent]
        for (r, c), values in zip(sent, arrived):
            chunks[(r + 1) % W][c] = chunks[(r + 1) % W][c] + values
    for step in range(W - 1):  # all-gather: each rank copies the finished chunk that arrives
        sent = [(r, (r + 1 - step) % W) for r in range(W)]
        arrived = [send(r, c, chunks[r][c]) for r, c in sent]
        for (r, c), values in zip(sent, arrived):
            chunks[(r + 1) % W][c] = values
    return [torch.cat(c) / W for c in chunks]  # the sum / W: the mean, as DDP's


def ddp_accumulation_step(model, optimizer, micro_batches):
    optimizer.zero_grad()
    total = 0.0
    for k, (x, y) in enumerate(micro_batches):
        last = k == len(micro_batches) - 1
        with contextlib.nullcontext() if last else model.no_sync():  # all-reduce only in the last backward
            loss = model(x, y).loss / len(micro_batches)  # the mean over the whole batch, piece by piece
            loss.backward()
        total += loss.item()
    optimizer.step()
    return total


# other right answers
def ring_pre_divided_shifted(tensors, send):  # divides before sending, and starts one chunk further on
    W = len(tensors)
    chunks = [[c / W for c in t.tensor_split(W)] for t in tensors]
    for step in range(2 * (W - 1)):
        for r in range(W):  # rank by rank: a step's sends never touch the chunk another rank sends in it
            c = (r - step + 1) % W if step < W - 1 else (r + 2 - (step - W + 1)) % W
            values = send(r, c, chunks[r][c])
            chunks[(r + 1) % W][c] = chunks[(r + 1) % W][c] + values if step < W - 1 else values
    return [torch.cat(c) for c in chunks]


def ddp_step_with_tensor_loss(model, optimizer, micro_batches):  # require_backward_grad_sync by hand, a tensor loss
    model.zero_grad(set_to_none=False)
    losses = []
    for k, (x, y) in enumerate(micro_batches):
        model.require_backward_grad_sync = k == len(micro_batches) - 1
        loss = model(x, y).loss / len(micro_batches)
        loss.backward()
        losses.append(loss.detach())
    model.require_backward_grad_sync = True
    optimizer.step()
    return torch.stack(losses).sum()


def shard_indices_as_tensor(n, rank, world_size, seed, epoch):
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed + epoch))
    return perm[:n // world_size * world_size].view(-1, world_size)[:, rank]


def ddp_by_chunks_and_accumulation(model, x, y, world_size):  # accumulate loss / W, one backward per rank
    model.zero_grad()
    for xs, ys in zip(x.chunk(world_size), y.chunk(world_size)):
        (model(xs, ys).loss / world_size).backward()
    return [p.grad.clone() for p in model.parameters()]


def ddp_calling_forward(model, x, y, world_size):  # model.forward(...) rather than model(...)
    per_rank = x.shape[0] // world_size
    grads = []
    for rank in range(world_size):
        model.zero_grad()
        shard = slice(rank * per_rank, (rank + 1) * per_rank)
        model.forward(x[shard], y[shard]).loss.backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    return [torch.stack(g).mean(0) for g in zip(*grads)]


def ddp_with_keyword_arguments(model, x, y, world_size):
    per_rank = x.shape[0] // world_size
    total = [torch.zeros_like(p) for p in model.parameters()]
    for rank in range(world_size):
        model.zero_grad()
        shard = slice(rank * per_rank, (rank + 1) * per_rank)
        model(idx=x[shard], targets=y[shard]).loss.backward()
        total = [t + p.grad / world_size for t, p in zip(total, model.parameters())]
    return total


RIGHT = [(check_shard_indices, shard_indices), (check_shard_indices, reference_shard_indices),
         (check_shard_indices, shard_indices_as_tensor), (check_simulated_ddp, simulated_ddp_gradients),
         (check_simulated_ddp, ddp_by_chunks_and_accumulation), (check_simulated_ddp, ddp_with_keyword_arguments),
         (check_simulated_ddp, ddp_calling_forward), (check_ring_all_reduce, ring_all_reduce),
         (check_ring_all_reduce, ring_pre_divided_shifted), (check_ddp_accumulation, ddp_accumulation_step),
         (check_ddp_accumulation, ddp_step_with_tensor_loss)]


@pytest.mark.parametrize("checker, solution", RIGHT, ids=[f"{c.__name__}-{s.__name__}" for c, s in RIGHT])
def test_checkers_pass_the_right_answer_on_seeds_0_to_2(checker, solution, capsys):
    assert_passes_on_seeds(checker, solution, capsys)


def test_committed_solutions_print_the_committed_pass_lines(capsys):
    check_shard_indices(shard_indices, seed=0)
    check_simulated_ddp(simulated_ddp_gradients, seed=0)
    check_ring_all_reduce(ring_all_reduce, seed=0)
    check_ddp_accumulation(ddp_accumulation_step, seed=0)
    assert capsys.readouterr().out.splitlines() == [
        "PASS shard_indices: = DistributedSampler(shuffle=True, drop_last=True) on 8 cases, every rank",
        "PASS simulated_ddp_gradients: the mean of the ranks' gradients = the one-process gradient (3 world sizes)",
        "PASS ring_all_reduce: the mean on every rank, bit-identical, 2 (W − 1) chunk sends per rank round the ring "
        "(W = 2 to 5)",
        "PASS ddp_accumulation_step: one all-reduce per step, = one large-batch SGD step (4 accumulations, a real DDP "
        "model)",
    ]


def test_shard_checker_leaves_the_global_random_state_alone():
    state = torch.get_rng_state()
    check_shard_indices(shard_indices, seed=0)
    with pytest.raises(CheckFailure):
        check_shard_indices(reseeds_globally, seed=0)
    assert torch.equal(torch.get_rng_state(), state)


# ------------------------------------------------------------------------------------------- wrong answers
def stub(*args, **kwargs):
    raise NotImplementedError("Exercise: replace this line with your code")


def _perm(n, seed):
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()


def contiguous_blocks(n, rank, world_size, seed, epoch):  # disjoint and equal, but not the sampler's shards
    size = n // world_size
    return _perm(n, seed + epoch)[rank * size:(rank + 1) * size]


def seed_without_epoch(n, rank, world_size, seed, epoch):  # the same order every epoch
    return _perm(n, seed)[rank:n - n % world_size:world_size]


def seed_times_epoch(n, rank, world_size, seed, epoch):
    return _perm(n, seed * epoch)[rank:n - n % world_size:world_size]


def no_drop_last(n, rank, world_size, seed, epoch):  # uneven shards: ranks would wait for each other
    return _perm(n, seed + epoch)[rank::world_size]


def padded(n, rank, world_size, seed, epoch):  # drop_last=False: the head repeated at the end
    perm = _perm(n, seed + epoch)
    total = -(-n // world_size) * world_size
    return (perm + perm[:total - n])[rank:total:world_size]


def seed_per_rank(n, rank, world_size, seed, epoch):  # each rank shuffles on its own: shards overlap
    return _perm(n, seed + epoch + rank)[rank:n - n % world_size:world_size]


def unshuffled(n, rank, world_size, seed, epoch):
    return list(range(n - n % world_size))[rank::world_size]


def drops_the_head(n, rank, world_size, seed, epoch):
    return _perm(n, seed + epoch)[n % world_size:][rank::world_size]


def ranks_from_one(n, rank, world_size, seed, epoch):
    return _perm(n, seed + epoch)[rank + 1:n - n % world_size:world_size]


def reseeds_globally(n, rank, world_size, seed, epoch):  # the right indices, but torch.manual_seed(...) in passing
    torch.manual_seed(seed + epoch)
    return torch.randperm(n).tolist()[rank:n - n % world_size:world_size]


def uses_the_sampler(n, rank, world_size, seed, epoch):  # the library's answer, not the student's
    from torch.utils.data import DistributedSampler as Sampler

    sampler = Sampler(range(n), num_replicas=world_size, rank=rank, shuffle=True, seed=seed, drop_last=True)
    sampler.set_epoch(epoch)
    return list(sampler)


def by_the_library(n, rank, world_size, seed, epoch):
    import bigtut.distributed

    return bigtut.distributed.shard_indices(n, rank, world_size, seed, epoch)


def whole_permutation(n, rank, world_size, seed, epoch):  # every rank takes everything
    return _perm(n, seed + epoch)


def summed(model, x, y, world_size):  # all-reduce SUM without dividing by the world size
    return [g * world_size for g in simulated_ddp_gradients(model, x, y, world_size)]


def rank_zero_only(model, x, y, world_size):  # no all-reduce at all
    per_rank = x.shape[0] // world_size
    model.zero_grad()
    model(x[:per_rank], y[:per_rank]).loss.backward()
    grads = [p.grad.clone() for p in model.parameters()]
    for rank in range(1, world_size):  # the other ranks run, but their gradients are dropped
        model(x[rank * per_rank:(rank + 1) * per_rank], y[rank * per_rank:(rank + 1) * per_rank])
    return grads


def forgot_zero_grad(model, x, y, world_size):  # each rank's gradient still holds the ranks before it
    per_rank = x.shape[0] // world_size
    model.zero_grad()
    grads = []
    for rank in range(world_size):
        model(x[rank * per_rank:(rank + 1) * per_rank], y[rank * per_rank:(rank + 1) * per_rank]).loss.backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    return [torch.stack(g).mean(0) for g in zip(*grads)]


def without_clone(model, x, y, world_size):  # p.grad kept by reference and zeroed in place: the last rank's alone
    per_rank = x.shape[0] // world_size
    grads = []
    for rank in range(world_size):
        model.zero_grad(set_to_none=False)
        model(x[rank * per_rank:(rank + 1) * per_rank], y[rank * per_rank:(rank + 1) * per_rank]).loss.backward()
        grads.append([p.grad for p in model.parameters()])
    return [torch.stack(g).mean(0) for g in zip(*grads)]


def divided_by_the_batch(model, x, y, world_size):  # the sum of the ranks' means over B, not over W
    return [g * world_size / x.shape[0] for g in simulated_ddp_gradients(model, x, y, world_size)]


def whole_batch_once(model, x, y, world_size):  # the right gradient, but no ranks at all
    model.zero_grad()
    model(x, y).loss.backward()
    return [p.grad.clone() for p in model.parameters()]


def interleaved_shards(model, x, y, world_size):  # rank r takes rows r, r + W, …: the right mean, not the shards
    grads = []
    for rank in range(world_size):
        model.zero_grad()
        model(x[rank::world_size], y[rank::world_size]).loss.backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    return [torch.stack(g).mean(0) for g in zip(*grads)]


def takes_a_step(model, x, y, world_size):  # the right gradients, and an SGD step on the model in passing
    grads = simulated_ddp_gradients(model, x, y, world_size)
    with torch.no_grad():
        for p, g in zip(model.parameters(), grads):
            p -= 0.1 * g
    return grads


def one_tensor(model, x, y, world_size):
    return simulated_ddp_gradients(model, x, y, world_size)[0]


def as_a_dict(model, x, y, world_size):
    names = [name for name, _ in model.named_parameters()]
    return dict(zip(names, simulated_ddp_gradients(model, x, y, world_size)))


# ring all-reduce
def ring_with(tensors, send, *, chunk_of=None, phases=(True, True), steps=None, add_in_gather=False, divide=True,
              twice=False, own_chunk=False, in_place=False, split=None):
    W = len(tensors)
    steps = W - 1 if steps is None else steps
    split = split or (lambda t: list(t.tensor_split(W)))
    chunk_of = chunk_of or (lambda r, s, gather: (r + 1 - s) % W if gather else (r - s) % W)
    chunks = [split(t if in_place else t.clone()) for t in tensors]
    for gather, run in zip((False, True), phases):
        for step in range(steps if run else 0):
            sent = [(r, chunk_of(r, step, gather)) for r in range(W)]
            arrived = [send(r, c, tensors[r].tensor_split(W)[c] if own_chunk and not gather else chunks[r][c])
                       for r, c in sent]
            for (r, c), values in zip(sent, arrived):
                mine = chunks[(r + 1) % W]
                if gather and not add_in_gather:
                    mine[c] = values
                elif in_place:
                    mine[c] += values
                else:
                    mine[c] = mine[c] + values
    out = [torch.cat(c) for c in chunks]
    return [o / W / (W if twice else 1) for o in out] if divide else out


def sums_directly(tensors, send):  # gathered on one rank: no communication at all
    return [torch.stack(tensors).mean(0) for _ in tensors]


def sends_whole_tensors(tensors, send):  # every rank passes its running total round: (W − 1) · N per rank
    W = len(tensors)
    totals = [t.clone() for t in tensors]
    moving = [t.clone() for t in tensors]
    for _ in range(W - 1):
        moving = [send(r, 0, moving[r]) for r in range(W)]
        moving = [moving[(r - 1) % W] for r in range(W)]
        totals = [t + m for t, m in zip(totals, moving)]
    return [t / W for t in totals]


def only_reduce_scatter(tensors, send):
    return ring_with(tensors, send, phases=(True, False))


def w_steps_per_phase(tensors, send):
    return ring_with(tensors, send, steps=len(tensors))


def same_chunk_every_step(tensors, send):
    return ring_with(tensors, send, chunk_of=lambda r, s, gather: r)


def chunks_the_wrong_way(tensors, send):
    W = len(tensors)
    return ring_with(tensors, send, chunk_of=lambda r, s, gather: (r + s) % W)


def not_divided(tensors, send):
    return ring_with(tensors, send, divide=False)


def divided_twice(tensors, send):
    return ring_with(tensors, send, twice=True)


def adds_in_place(tensors, send):  # tensor_split gives views: += writes into the caller's tensors
    return ring_with(tensors, send, in_place=True)


def sends_its_own_chunk(tensors, send):  # the original chunk passed on, not the running sum
    return ring_with(tensors, send, own_chunk=True)


def adds_in_the_all_gather(tensors, send):
    return ring_with(tensors, send, add_in_gather=True)


def ranks_run_ahead(tensors, send):  # rank by rank, every step of one rank before the next rank's
    W = len(tensors)
    chunks = [list(t.clone().tensor_split(W)) for t in tensors]
    for r in range(W):
        for step in range(W - 1):
            c = (r - step) % W
            chunks[(r + 1) % W][c] = chunks[(r + 1) % W][c] + send(r, c, chunks[r][c])
    for step in range(W - 1):
        for r in range(W):
            c = (r + 1 - step) % W
            chunks[(r + 1) % W][c] = send(r, c, chunks[r][c])
    return [torch.cat(c) / len(tensors) for c in chunks]


def cut_by_torch_chunk(tensors, send):
    return ring_with(tensors, send, split=lambda t: list(t.chunk(len(tensors))))


def one_tensor_back(tensors, send):
    return ring_all_reduce(tensors, send)[0]


def each_rank_sums_again(tensors, send):  # the ring run, then each rank adds the tensors up in its own order
    ring_all_reduce(tensors, send)
    W = len(tensors)
    return [sum(tensors[(r + j) % W] for j in range(W)) / W for r in range(W)]


# DDP with gradient accumulation
def accumulate_with(model, optimizer, micro_batches, *, sync=lambda k, last: last, divide=True, zero_first=True,
                    zero_in_loop=False, step_in_loop=False, zero_before_step=False, through=None):
    M = len(micro_batches)
    net = model if through is None else through(model)
    if zero_first:
        optimizer.zero_grad()
    total = 0.0
    for k, (x, y) in enumerate(micro_batches):
        if zero_in_loop:
            optimizer.zero_grad()
        with contextlib.nullcontext() if sync(k, k == M - 1) else model.no_sync():
            loss = net(x, y).loss / (M if divide else 1)
            loss.backward()
        total += loss.item()
        if step_in_loop:
            optimizer.step()
    if zero_before_step:
        optimizer.zero_grad()
    if not step_in_loop:
        optimizer.step()
    return total if divide else total / M


def without_no_sync(*args):  # an all-reduce after every micro-batch
    return accumulate_with(*args, sync=lambda k, last: True)


def no_sync_on_every_micro_batch(*args):  # the last one too: the ranks never average
    return accumulate_with(*args, sync=lambda k, last: False)


def no_sync_on_the_last_only(*args):  # the condition the wrong way round
    return accumulate_with(*args, sync=lambda k, last: not last)


def losses_not_divided(*args):
    return accumulate_with(*args, divide=False)


def step_inside_the_loop(*args):
    return accumulate_with(*args, step_in_loop=True)


def no_zero_grad(*args):
    return accumulate_with(*args, zero_first=False)


def zero_grad_inside_the_loop(*args):
    return accumulate_with(*args, zero_first=False, zero_in_loop=True)


def zero_grad_before_the_step(*args):
    return accumulate_with(*args, zero_before_step=True)


def around_the_wrapper(*args):  # model.module: the plain GPT, no DDP hooks, no all-reduce
    return accumulate_with(*args, through=lambda model: model.module)


def one_backward_of_the_summed_losses(model, optimizer, micro_batches):
    optimizer.zero_grad()
    M = len(micro_batches)
    losses = []
    for k, (x, y) in enumerate(micro_batches):
        with contextlib.nullcontext() if k == M - 1 else model.no_sync():
            losses.append(model(x, y).loss / M)
    total = sum(losses)
    total.backward()
    optimizer.step()
    return total.item()


def whole_batch_at_once(model, optimizer, micro_batches):
    optimizer.zero_grad()
    x, y = (torch.cat(t) for t in zip(*micro_batches))
    loss = model(x, y).loss
    loss.backward()
    optimizer.step()
    return loss.item()


def step_before_the_last_backward(model, optimizer, micro_batches):
    optimizer.zero_grad()
    M = len(micro_batches)
    for x, y in micro_batches[:-1]:
        with model.no_sync():
            (model(x, y).loss / M).backward()
    optimizer.step()
    x, y = micro_batches[-1]
    loss = model(x, y).loss / M
    loss.backward()
    return loss.item() * M


def returns_the_summed_loss(model, optimizer, micro_batches):  # the right step, the loss M times too large
    return ddp_accumulation_step(model, optimizer, micro_batches) * len(micro_batches)



WRONG = [
    (check_shard_indices, contiguous_blocks, "contiguous blocks"),
    (check_shard_indices, seed_without_epoch, "the epoch is ignored"),
    (check_shard_indices, seed_times_epoch, "seed · epoch"),
    (check_shard_indices, no_drop_last, r"indices where every rank needs n // world_size"),
    (check_shard_indices, padded, r"padded to a multiple of world_size \(drop_last=False\)"),
    (check_shard_indices, seed_per_rank, "each rank seeds with its own rank"),
    (check_shard_indices, unshuffled, "not shuffled"),
    (check_shard_indices, drops_the_head, "the first n % world_size indices of the permutation were dropped"),
    (check_shard_indices, ranks_from_one, "ranks counted from 1"),
    (check_shard_indices, reseeds_globally, "changed the global random state"),
    (check_shard_indices, whole_permutation, "indices where every rank needs"),
    (check_shard_indices, uses_the_sampler, "it iterated a DistributedSampler"),
    (check_shard_indices, by_the_library, "calls `shard_indices` — bigtut.distributed's shard_indices"),
    (check_shard_indices, stub, "not implemented"),
    (check_shard_indices, 3, "expected a function"),
    (check_simulated_ddp, summed, "summed .* not divided by world_size"),
    (check_simulated_ddp, rank_zero_only, "rank 0's gradient alone"),
    (check_simulated_ddp, forgot_zero_grad, "call model.zero_grad"),
    (check_simulated_ddp, without_clone, "the last rank's gradient alone"),
    (check_simulated_ddp, divided_by_the_batch, "divided by the batch size"),
    (check_simulated_ddp, whole_batch_once, r"the model ran once, on the whole batch"),
    (check_simulated_ddp, interleaved_shards, r"contiguous shard.*rows \[\[0, 1, 2\], \[3, 4, 5\]\]"),
    (check_simulated_ddp, takes_a_step, "the parameters changed"),
    (check_simulated_ddp, one_tensor, "expected a list of"),
    (check_simulated_ddp, as_a_dict, "got dict"),
    (check_simulated_ddp, stub, "not implemented"),
    (check_simulated_ddp, None, "expected a function"),
    (check_ring_all_reduce, sums_directly, "nothing went through send"),
    (check_ring_all_reduce, sends_whole_tensors, "sent a whole tensor"),
    (check_ring_all_reduce, only_reduce_scatter, "only the reduce-scatter"),
    (check_ring_all_reduce, w_steps_per_phase, "W steps per phase"),
    (check_ring_all_reduce, same_chunk_every_step, "the same chunk at every step"),
    (check_ring_all_reduce, chunks_the_wrong_way, "the wrong way round the ring"),
    (check_ring_all_reduce, not_divided, "the sum, not divided by W"),
    (check_ring_all_reduce, divided_twice, "divided by W twice"),
    (check_ring_all_reduce, adds_in_place, "changed the input tensors in place"),
    (check_ring_all_reduce, sends_its_own_chunk, "passed on its own original chunk"),
    (check_ring_all_reduce, adds_in_the_all_gather, "copy what arrives"),
    (check_ring_all_reduce, ranks_run_ahead, r"before rank \d's step-\d chunk had arrived"),
    (check_ring_all_reduce, cut_by_torch_chunk, "torch.chunk"),
    (check_ring_all_reduce, one_tensor_back, "expected a list of"),
    (check_ring_all_reduce, each_rank_sums_again, "bit-identical"),
    (check_ring_all_reduce, stub, "not implemented"),
    (check_ring_all_reduce, "ring", "expected a function"),
    (check_ddp_accumulation, without_no_sync, r"run micro-batch\(es\) \[0, 1\] under `with model.no_sync\(\):`"),
    (check_ddp_accumulation, no_sync_on_every_micro_batch, "no all-reduce at all"),
    (check_ddp_accumulation, no_sync_on_the_last_only, r"all-reduced after micro-batch\(es\) \[0, 1\].*the last one "
                                                       "outside it"),
    (check_ddp_accumulation, losses_not_divided, "divided by the number of micro-batches"),
    (check_ddp_accumulation, step_inside_the_loop, r"optimizer.step\(\) was called 3 times.*not inside the loop"),
    (check_ddp_accumulation, no_zero_grad, r"the gradient left in .grad before the call.*zero_grad\(\) first"),
    (check_ddp_accumulation, zero_grad_inside_the_loop, "only the last micro-batch's gradient"),
    (check_ddp_accumulation, zero_grad_before_the_step, "the weights did not move"),
    (check_ddp_accumulation, around_the_wrapper, r"no all-reduce at all.*model.module"),
    (check_ddp_accumulation, one_backward_of_the_summed_losses, "forwards and backwards came in the order"),
    (check_ddp_accumulation, whole_batch_at_once, "the model ran once, on all 3 micro-batches"),
    (check_ddp_accumulation, step_before_the_last_backward, r"optimizer.step\(\) came before the last backward"),
    (check_ddp_accumulation, returns_the_summed_loss, "the sum of the micro-batches' losses"),
    (check_ddp_accumulation, stub, "not implemented"),
    (check_ddp_accumulation, 1, "expected a function"),
]


@pytest.mark.parametrize("checker, wrong, message", WRONG,
                         ids=[f"{c.__name__}-{getattr(w, '__name__', repr(w))}" for c, w, _ in WRONG])
def test_checkers_catch_the_wrong_answer_and_name_the_mistake(checker, wrong, message):
    assert_fails_naming(checker, wrong, message)


def test_failures_name_the_input():
    with pytest.raises(CheckFailure, match=r"n=10, rank=0, world_size=2, seed=\d+, epoch=0; checker seed 4"):
        check_shard_indices(contiguous_blocks, seed=4)
    with pytest.raises(CheckFailure, match=r"batch 6, world_size=2 \(checker seed 4\)"):
        check_simulated_ddp(summed, seed=4)
    with pytest.raises(CheckFailure, match=r"W=3 ranks, tensors of N=7 \(checker seed 4\)"):
        check_ring_all_reduce(only_reduce_scatter, seed=4)
    with pytest.raises(CheckFailure, match=r"3 micro-batches of 2 \(checker seed 4\)"):
        check_ddp_accumulation(without_no_sync, seed=4)


def test_ddp_checker_leaves_no_process_group_behind_and_keeps_one_it_found():
    import torch.distributed as dist

    state = torch.get_rng_state()
    check_ddp_accumulation(ddp_accumulation_step, seed=0)
    check_ring_all_reduce(ring_all_reduce, seed=0)
    assert not dist.is_initialized()
    assert torch.equal(torch.get_rng_state(), state), "a checker changed the global random state"
    with pytest.raises(CheckFailure):
        check_ddp_accumulation(no_sync_on_every_micro_batch, seed=0)
    assert not dist.is_initialized()
    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        check_ddp_accumulation(ddp_accumulation_step, seed=1)
        assert dist.is_initialized()
    finally:
        dist.destroy_process_group()


# ===================================================================== review: more right and wrong answers (3 and 4)
def ring_rank_by_rank_backwards(tensors, send):  # each step's sends from the last rank down, added at once; a tuple
    W = len(tensors)
    chunks = [list(t.tensor_split(W)) for t in tensors]  # views, never written into: the updates are out of place
    for step in range(2 * (W - 1)):
        for r in reversed(range(W)):
            c = (r - step) % W if step < W - 1 else (r + 1 - (step - W + 1)) % W
            values = send(r, c, chunks[r][c])
            chunks[(r + 1) % W][c] = chunks[(r + 1) % W][c] + values if step < W - 1 else values
    return tuple(torch.cat(c) / W for c in chunks)


def ring_dividing_the_finished_chunk(tensors, send):  # each rank divides its finished chunk before the all-gather
    W = len(tensors)
    chunks = [list(t.clone().tensor_split(W)) for t in tensors]
    for step in range(W - 1):
        sent = [(r, (r - step) % W) for r in range(W)]
        for (r, c), values in zip(sent, [send(r, c, chunks[r][c]) for r, c in sent]):
            chunks[(r + 1) % W][c] = chunks[(r + 1) % W][c] + values
    for r in range(W):
        chunks[r][(r + 1) % W] = chunks[r][(r + 1) % W] / W
    for step in range(W - 1):
        sent = [(r, (r + 1 - step) % W) for r in range(W)]
        for (r, c), values in zip(sent, [send(r, c, chunks[r][c]) for r, c in sent]):
            chunks[(r + 1) % W][c] = values
    return [torch.cat(c) for c in chunks]


def ddp_step_first_and_last(model, optimizer, micro_batches):  # one no_sync() block around all but the last
    *first, last = micro_batches
    optimizer.zero_grad()
    total = 0.0
    with model.no_sync():
        for x, y in first:
            loss = model(x, y).loss / len(micro_batches)
            loss.backward()
            total += loss.item()
    loss = model(*last).loss / len(micro_batches)
    loss.backward()
    optimizer.step()
    return total + loss.item()


def ddp_step_dividing_the_gradients(model, optimizer, micro_batches):  # forward under no_sync, backward after it
    optimizer.zero_grad()
    losses = []
    for k, (x, y) in enumerate(micro_batches):
        with contextlib.nullcontext() if k == len(micro_batches) - 1 else model.no_sync():
            loss = model(x, y).loss  # the forward decides: no all-reduce prepared under no_sync()
        loss.backward()
        losses.append(loss.item())
    for p in model.parameters():
        p.grad /= len(micro_batches)  # the mean of the gradients rather than of the losses
    optimizer.step()
    return sum(losses) / len(losses)


def ddp_step_with_a_float32_loss(*args):  # the loss reported in float32: harmless
    return torch.tensor(ddp_accumulation_step(*args))


MORE_RIGHT = [(check_ring_all_reduce, ring_rank_by_rank_backwards),
              (check_ring_all_reduce, ring_dividing_the_finished_chunk),
              (check_ddp_accumulation, ddp_step_first_and_last),
              (check_ddp_accumulation, ddp_step_dividing_the_gradients),
              (check_ddp_accumulation, ddp_step_with_a_float32_loss)]


@pytest.mark.parametrize("checker, solution", MORE_RIGHT, ids=[f"{c.__name__}-{s.__name__}" for c, s in MORE_RIGHT])
def test_more_right_answers_pass(checker, solution, capsys):
    assert_passes_on_seeds(checker, solution, capsys)


def all_gather_runs_ahead(tensors, send):  # the reduce-scatter step by step, the all-gather rank by rank
    W = len(tensors)
    chunks = [list(t.clone().tensor_split(W)) for t in tensors]
    for step in range(W - 1):
        sent = [(r, (r - step) % W) for r in range(W)]
        for (r, c), values in zip(sent, [send(r, c, chunks[r][c]) for r, c in sent]):
            chunks[(r + 1) % W][c] = chunks[(r + 1) % W][c] + values
    for r in range(W):
        for step in range(W - 1):
            c = (r + 1 - step) % W
            chunks[(r + 1) % W][c] = send(r, c, chunks[r][c])
    return [torch.cat(c) / W for c in chunks]


def pops_the_last_micro_batch(model, optimizer, micro_batches):  # right step, but the caller's list loses an item
    last = micro_batches.pop()
    M = len(micro_batches) + 1
    optimizer.zero_grad()
    with model.no_sync():
        for x, y in micro_batches:
            (model(x, y).loss / M).backward()
    loss = model(*last).loss / M
    loss.backward()
    optimizer.step()
    return loss.item() * M


def backward_alone_under_no_sync(model, optimizer, micro_batches):  # the forward outside: DDP has prepared its hooks
    optimizer.zero_grad()
    total = 0.0
    for k, (x, y) in enumerate(micro_batches):
        loss = model(x, y).loss / len(micro_batches)
        with contextlib.nullcontext() if k == len(micro_batches) - 1 else model.no_sync():
            loss.backward()
        total += loss.item()
    optimizer.step()
    return total


def returns_the_loss_divided_twice(*args):
    return ddp_accumulation_step(*args) / len(args[2])


MORE_WRONG = [
    (check_ring_all_reduce, all_gather_runs_ahead, r"sent at step \d before rank \d's step-\d chunk had arrived"),
    (check_ddp_accumulation, pops_the_last_micro_batch, r"micro-batches now holds 2 of the 3.*micro_batches\.pop"),
    (check_ddp_accumulation, backward_alone_under_no_sync, "the forward goes inside no_sync"),
    (check_ddp_accumulation, returns_the_loss_divided_twice, "divided by the number of micro-batches twice"),
]


@pytest.mark.parametrize("checker, wrong, message", MORE_WRONG,
                         ids=[f"{c.__name__}-{w.__name__}" for c, w, _ in MORE_WRONG])
def test_more_wrong_answers_fail_naming_the_mistake(checker, wrong, message):
    assert_fails_naming(checker, wrong, message)
