"""Checkers for notebooks 00 (set-up & tour) and 01 (deep-learning basics).

=================================  ==========================================================  ========
checker                            what the candidate must do                                  notebook
=================================  ==========================================================  ========
``check_standardize``              ``(x - mean) / std`` per column, population std             00
``check_count_parameters``         number of trainable parameters of a model                   00
``check_gelu``                     GELU, exact (erf) and tanh approximation                    01
``check_log_softmax``              numerically stable log-softmax over the last axis           01
``check_cross_entropy``            mean negative log-likelihood of integer targets             01
``check_linear_regression_step``   one gradient-descent step on mean-squared error, by hand    01
=================================  ==========================================================  ========

The references are PyTorch's own functions (``torch.nn.functional``) and, for the gradient step, autograd.
Inputs are drawn from a private ``torch.Generator``, so a checker never disturbs the notebook's random
state. Every checker takes an optional ``seed``; without one it draws fresh inputs each call, and the seed
used is named in any failure message so the case can be replayed.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from bigtut.checks.core import (
    CheckFailure,
    _call,
    _describe,
    assert_close,
    check_function,
    checker_generator,
    passed,
    random_float64,
)

__all__ = [
    "check_count_parameters", "check_cross_entropy", "check_gelu", "check_linear_regression_step",
    "check_log_softmax", "check_standardize",
]


# --------------------------------------------------------------------------------------------------------
# 00: the example exercise
# --------------------------------------------------------------------------------------------------------


def _standardize_reference(x: torch.Tensor) -> torch.Tensor:
    return (x - x.mean(dim=0)) / x.std(dim=0, correction=0)  # (n, d)


def check_standardize(candidate: Callable[[torch.Tensor], torch.Tensor], seed: int | None = None) -> None:
    """``candidate(x)`` with ``x`` of shape ``(n, d)`` must return ``(x - mean) / std`` column by column.

    The mean and the standard deviation are taken over the rows (``dim=0``); the standard deviation is the
    population one (divide by ``n``, ``correction=0``), as in ``bigtut.data``.
    """
    gen, seed = checker_generator(seed)
    cases = [
        (f"x of shape (5, 3) (seed={seed})", (random_float64(gen, 5, 3),), {}),
        (f"x of shape (40, 4), mean 10, std 3 (seed={seed})", (10 + random_float64(gen, 40, 4, scale=3.0),), {}),
        (f"x of shape (2, 1) (seed={seed})", (torch.tensor([[1.0], [3.0]], dtype=torch.float64),), {}),
        (f"x of shape (200, 6), columns on very different scales (seed={seed})",
         (random_float64(gen, 200, 6) * torch.logspace(-3, 3, 6, dtype=torch.float64),), {}),
    ]
    check_function(candidate, _standardize_reference, cases, name="standardize", atol=1e-9, rtol=1e-7)


class _TiedLanguageModel(nn.Module):
    """Embedding and output layer sharing one weight matrix (as GPT-2 does): one tensor, counted once."""

    def __init__(self, vocab: int, width: int):
        super().__init__()
        self.embed = nn.Embedding(vocab, width)  # weight (vocab, width)
        self.norm = nn.LayerNorm(width)
        self.out = nn.Linear(width, vocab, bias=False)
        self.out.weight = self.embed.weight  # tied: the same Parameter object

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.out(self.norm(self.embed(ids)))  # (B, L) -> (B, L, vocab)


def _count_parameters_reference(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)  # parameters() skips repeats


def check_count_parameters(candidate: Callable[[nn.Module], int], seed: int | None = None) -> None:
    """``candidate(model)`` must return the number of **trainable** parameters of ``model`` (an int).

    Trainable means ``requires_grad=True``; a tensor shared by two layers (tied weights) counts once.
    """
    gen, seed = checker_generator(seed)

    def size(low: int, high: int) -> int:
        return int(torch.randint(low, high, (), generator=gen))

    a, b, c, n_embed = size(2, 50), size(2, 50), size(2, 20), size(5, 40)
    vocab, width = size(10, 60), size(4, 32)
    with torch.random.fork_rng(devices=[]):  # initialising layers draws random numbers: keep the caller's
        torch.manual_seed(seed)
        frozen = nn.Sequential(nn.Embedding(n_embed, a), nn.Linear(a, b))
        frozen[0].weight.requires_grad_(False)
        cases = [
            (f"nn.Linear({a}, {b}) (seed={seed})", (nn.Linear(a, b),), {}),
            (f"nn.Linear({a}, {b}, bias=False) (seed={seed})", (nn.Linear(a, b, bias=False),), {}),
            (f"nn.Sequential(nn.Linear({a}, {b}), nn.GELU(), nn.Linear({b}, {c})) (seed={seed})",
             (nn.Sequential(nn.Linear(a, b), nn.GELU(), nn.Linear(b, c)),), {}),
            (f"nn.Embedding({n_embed}, {a}) frozen with requires_grad_(False), then nn.Linear({a}, {b}) "
             f"(seed={seed})", (frozen,), {}),
            (f"embedding ({vocab}, {width}) tied to the output layer's weight, with a LayerNorm({width}) "
             f"(seed={seed})", (_TiedLanguageModel(vocab, width),), {}),
        ]
    name = "count_parameters"
    if not callable(candidate):
        raise CheckFailure(f"{name}: expected a function, got {_describe(candidate)}")
    for description, args, _ in cases:
        got = _call(candidate, name, args, {})
        if isinstance(got, torch.Tensor) and got.numel() == 1:
            got = got.item()
        if isinstance(got, bool) or not isinstance(got, (int, float)) or got != int(got):
            raise CheckFailure(f"{name}: expected a whole number for {description}, got {_describe(got)}")
        expected = _count_parameters_reference(*args)
        if int(got) != expected:
            raise CheckFailure(f"{name}: for {description} expected {expected} trainable parameters, got {int(got)}")
    passed(name, f"matches the reference on {len(cases)} random models")


# --------------------------------------------------------------------------------------------------------
# 01: activations and losses
# --------------------------------------------------------------------------------------------------------


def _gelu_reference(x: torch.Tensor, approximate: str = "none") -> torch.Tensor:
    return F.gelu(x, approximate=approximate)


def check_gelu(candidate: Callable[..., torch.Tensor], seed: int | None = None) -> None:
    """``candidate(x, approximate="none" | "tanh")`` must equal ``torch.nn.functional.gelu`` elementwise.

    ``"none"``: ``x Φ(x)`` with the normal CDF ``Φ(x) = (1 + erf(x / √2)) / 2``.
    ``"tanh"``: ``x/2 (1 + tanh(√(2/π) (x + 0.044715 x³)))``. Inputs include ±1000 and 0.
    """
    gen, seed = checker_generator(seed)
    extreme = torch.tensor([-1000.0, -30.0, -5.0, -1e-8, 0.0, 1e-8, 5.0, 30.0, 1000.0], dtype=torch.float64)
    cases = []
    for approximate in ("none", "tanh"):
        cases += [
            (f"x of shape (4, 7), approximate={approximate!r} (seed={seed})", (random_float64(gen, 4, 7),),
             {"approximate": approximate}),
            (f"x of shape (100,) spread over [-6, 6], approximate={approximate!r} (seed={seed})",
             (random_float64(gen, 100, scale=3.0).clamp(-6, 6),), {"approximate": approximate}),
            (f"extreme x = {extreme.tolist()}, approximate={approximate!r}", (extreme,),
             {"approximate": approximate}),
        ]
    check_function(candidate, _gelu_reference, cases, name="gelu", atol=1e-9, rtol=1e-7)


def _extreme_logits() -> torch.Tensor:
    """Logits that overflow ``exp`` in float64 (exp(1000) = inf) and make a naive softmax return NaN."""
    return torch.tensor([[1000.0, -1000.0, 0.0], [1000.0, 1000.0, 999.0], [-1000.0, -1000.0, -1001.0]],
                        dtype=torch.float64)  # (3, 3)


def check_log_softmax(candidate: Callable[[torch.Tensor], torch.Tensor], seed: int | None = None) -> None:
    """``candidate(logits)`` must equal ``torch.log_softmax(logits, dim=-1)`` for any number of leading axes.

    Includes logits of ±1000: ``log(softmax(z))`` computed naively gives NaN or -inf there, the
    log-sum-exp trick (subtract the row maximum first) gives the exact answer.
    """
    gen, seed = checker_generator(seed)
    cases = [
        (f"logits of shape (4, 5) (seed={seed})", (random_float64(gen, 4, 5),), {}),
        (f"logits of shape (6,) (seed={seed})", (random_float64(gen, 6),), {}),
        (f"logits of shape (2, 3, 10), scale 20 (seed={seed})", (random_float64(gen, 2, 3, 10, scale=20.0),), {}),
        ("extreme logits [[1000, -1000, 0], [1000, 1000, 999], [-1000, -1000, -1001]]", (_extreme_logits(),), {}),
    ]
    check_function(candidate, lambda z: torch.log_softmax(z, dim=-1), cases, name="log_softmax",
                   atol=1e-9, rtol=1e-7)


def check_cross_entropy(candidate: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                        seed: int | None = None) -> None:
    """``candidate(logits, targets)`` must equal ``torch.nn.functional.cross_entropy(logits, targets)``.

    ``logits`` has shape ``(N, C)``, ``targets`` holds ``N`` class indices (int64); the answer is the mean
    over the batch of ``-log softmax(logits)[n, targets[n]]``, a scalar (shape ``()``). Extreme logits of
    ±1000 included.
    """
    gen, seed = checker_generator(seed)

    def targets(n: int, c: int) -> torch.Tensor:
        return torch.randint(0, c, (n,), generator=gen)  # (N,)

    extreme = _extreme_logits()
    cases = [
        (f"logits (8, 4), targets (8,) (seed={seed})", (random_float64(gen, 8, 4), targets(8, 4)), {}),
        (f"logits (1, 10), targets (1,) (seed={seed})", (random_float64(gen, 1, 10), targets(1, 10)), {}),
        (f"logits (64, 3) scaled by 30, targets (64,) (seed={seed})",
         (random_float64(gen, 64, 3, scale=30.0), targets(64, 3)), {}),
        ("extreme logits [[1000, -1000, 0], [1000, 1000, 999], [-1000, -1000, -1001]], targets [1, 2, 0]",
         (extreme, torch.tensor([1, 2, 0])), {}),
    ]
    check_function(candidate, lambda z, t: F.cross_entropy(z, t), cases, name="cross_entropy",
                   atol=1e-9, rtol=1e-7)


# --------------------------------------------------------------------------------------------------------
# 01: one gradient-descent step
# --------------------------------------------------------------------------------------------------------


def _linear_regression_step_reference(w: torch.Tensor, b: torch.Tensor, x: torch.Tensor, y: torch.Tensor,
                                      lr: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The step computed by autograd: ``w - lr ∂L/∂w``, ``b - lr ∂L/∂b`` for ``L = mean((x w + b - y)²)``."""
    w = w.detach().clone().requires_grad_(True)  # (D,)
    b = b.detach().clone().requires_grad_(True)  # ()
    loss = ((x @ w + b - y) ** 2).mean()  # (N,) -> ()
    grad_w, grad_b = torch.autograd.grad(loss, (w, b))
    return (w - lr * grad_w).detach(), (b - lr * grad_b).detach()


def check_linear_regression_step(
    candidate: Callable[..., tuple[torch.Tensor, torch.Tensor]], seed: int | None = None
) -> None:
    """``candidate(w, b, x, y, lr)`` must return ``(w_new, b_new)`` after one gradient-descent step.

    Model ``ŷ = x w + b`` with ``x (N, D)``, ``w (D,)``, ``b ()`` and ``y (N,)``; loss
    ``L = mean((ŷ - y)²)``. The reference differentiates with autograd; the candidate should use the
    gradients derived by hand. The inputs must be left unchanged (return new tensors).
    """
    gen, seed = checker_generator(seed)
    cases = []
    for n, d, lr in ((10, 1, 0.1), (32, 3, 0.05), (5, 8, 0.5), (100, 2, 1e-3)):
        x = random_float64(gen, n, d)  # (N, D)
        y = x @ random_float64(gen, d) + 0.1 * random_float64(gen, n)  # (N,)
        w, b = random_float64(gen, d), random_float64(gen)  # (D,), ()
        cases.append((f"N={n}, D={d}, lr={lr} (seed={seed})", (w, b, x, y, lr)))
    name = "linear_regression_step"
    if not callable(candidate):
        raise CheckFailure(f"{name}: expected a function, got {_describe(candidate)}")
    for description, args in cases:
        originals = [a.clone() if isinstance(a, torch.Tensor) else a for a in args]
        expected = _linear_regression_step_reference(*args)
        got = _call(candidate, name, args, {})
        if not isinstance(got, tuple) or len(got) != 2:
            raise CheckFailure(f"{name}: expected a tuple (w_new, b_new) for {description}, got {_describe(got)}")
        for label, value, before in zip(("w", "b", "x", "y"), args, originals):
            if not torch.equal(value, before):
                raise CheckFailure(
                    f"{name}: the input {label} was modified in place for {description}; "
                    "compute and return new tensors instead (e.g. `w_new = w - lr * grad_w`)"
                )
        assert_close(got[0], expected[0], what=f"{name} (w_new)", inputs=description, atol=1e-9, rtol=1e-7)
        assert_close(got[1], expected[1], what=f"{name} (b_new)", inputs=description, atol=1e-9, rtol=1e-7)
    passed(name, f"matches autograd's gradient step on {len(cases)} random cases")
