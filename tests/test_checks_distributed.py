"""The appendix-A1 checkers pass the right answers (for several seeds) and catch the usual wrong ones."""

import pytest
import torch

from bigtut.checks import CheckFailure
from bigtut.checks.distributed import check_shard_indices, check_simulated_ddp
from bigtut.distributed import shard_indices


def stub(*args, **kwargs):
    raise NotImplementedError("Exercise: replace this line with your code")


def _perm(n, seed, epoch):
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed + epoch)).tolist()


def contiguous_blocks(n, rank, world_size, seed, epoch):  # disjoint and equal, but not the sampler's shards
    size = n // world_size
    return _perm(n, seed, epoch)[rank * size:(rank + 1) * size]


def seed_without_epoch(n, rank, world_size, seed, epoch):  # the same order every epoch
    perm = _perm(n, seed, 0)
    return perm[rank:n - n % world_size:world_size]


def no_drop_last(n, rank, world_size, seed, epoch):  # uneven shards: ranks would wait for each other
    return _perm(n, seed, epoch)[rank::world_size]


def seed_per_rank(n, rank, world_size, seed, epoch):  # each rank shuffles on its own: shards overlap
    return _perm(n, seed + rank, epoch)[rank:n - n % world_size:world_size]


def unshuffled(n, rank, world_size, seed, epoch):
    return list(range(n - n % world_size))[rank::world_size]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_shard_indices_passes_the_reference(seed, capsys):
    check_shard_indices(shard_indices, seed=seed)
    assert capsys.readouterr().out.startswith("PASS shard_indices")


@pytest.mark.parametrize("wrong", [stub, contiguous_blocks, seed_without_epoch, no_drop_last, seed_per_rank,
                                   unshuffled, 3])
def test_shard_indices_catches(wrong):
    with pytest.raises(CheckFailure):
        check_shard_indices(wrong, seed=0)


def simulated_ddp_gradients(model, x, y, world_size):
    per_rank = x.shape[0] // world_size
    grads = []
    for rank in range(world_size):
        model.zero_grad()
        model(x[rank * per_rank:(rank + 1) * per_rank], y[rank * per_rank:(rank + 1) * per_rank]).loss.backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    return [torch.stack(g).mean(0) for g in zip(*grads)]


def summed(model, x, y, world_size):  # all-reduce SUM without dividing by the world size
    return [g * world_size for g in simulated_ddp_gradients(model, x, y, world_size)]


def rank_zero_only(model, x, y, world_size):  # no all-reduce at all
    per_rank = x.shape[0] // world_size
    model.zero_grad()
    model(x[:per_rank], y[:per_rank]).loss.backward()
    return [p.grad.clone() for p in model.parameters()]


def forgot_zero_grad(model, x, y, world_size):  # each rank's gradient still holds the ranks before it
    per_rank = x.shape[0] // world_size
    model.zero_grad()
    grads = []
    for rank in range(world_size):
        model(x[rank * per_rank:(rank + 1) * per_rank], y[rank * per_rank:(rank + 1) * per_rank]).loss.backward()
        grads.append([p.grad.clone() for p in model.parameters()])
    return [torch.stack(g).mean(0) for g in zip(*grads)]


def divided_by_the_batch(model, x, y, world_size):  # the sum of the ranks' means over B, not over W
    return [g * world_size / x.shape[0] for g in simulated_ddp_gradients(model, x, y, world_size)]


def one_tensor(model, x, y, world_size):
    return simulated_ddp_gradients(model, x, y, world_size)[0]


@pytest.mark.parametrize("seed", [0, 1])
def test_simulated_ddp_passes_the_reference(seed, capsys):
    check_simulated_ddp(simulated_ddp_gradients, seed=seed)
    assert capsys.readouterr().out.startswith("PASS simulated_ddp_gradients")


@pytest.mark.parametrize("wrong", [stub, summed, rank_zero_only, forgot_zero_grad, divided_by_the_batch, one_tensor,
                                   None])
def test_simulated_ddp_catches(wrong):
    with pytest.raises(CheckFailure):
        check_simulated_ddp(wrong, seed=0)
