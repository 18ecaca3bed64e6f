"""The appendix-A1 checkers pass the right answers on seeds 0–2 and catch the usual wrong ones, each with a message
naming the mistake."""


import pytest
import torch
from checker_cases import assert_fails_naming, assert_passes_on_seeds

from bigtut.checks import CheckFailure
from bigtut.checks.distributed import check_shard_indices, check_simulated_ddp
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


# other right answers
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
         (check_simulated_ddp, ddp_calling_forward)]


@pytest.mark.parametrize("checker, solution", RIGHT, ids=[f"{c.__name__}-{s.__name__}" for c, s in RIGHT])
def test_checkers_pass_the_right_answer_on_seeds_0_to_2(checker, solution, capsys):
    assert_passes_on_seeds(checker, solution, capsys)


def test_committed_solutions_print_the_committed_pass_lines(capsys):
    check_shard_indices(shard_indices, seed=0)
    check_simulated_ddp(simulated_ddp_gradients, seed=0)
    assert capsys.readouterr().out.splitlines() == [
        "PASS shard_indices: = DistributedSampler(shuffle=True, drop_last=True) on 8 cases, every rank",
        "PASS simulated_ddp_gradients: the mean of the ranks' gradients = the one-process gradient (3 world sizes)",
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
