"""Forward + backward time of bigtut's MultiHeadAttention (fast and explicit paths) against nn.MultiheadAttention.

All three modules hold the same weights and see the same input. Within every repeat the three are timed one
after the other, in an order that rotates from repeat to repeat, so that a burst of load on a shared machine
hits them alike; the table reports medians and the ratios of medians. Goal: fast path ≤ 1.2× PyTorch.

    OMP_NUM_THREADS=1 python benchmarks/attention.py            # under a minute on a quiet 2-core CPU
    python benchmarks/attention.py --repeats 5 --sizes 4x32x64  # a quick look

The "fast" path calls torch.nn.functional.scaled_dot_product_attention (return_attention=False); the "explicit"
path is the readable softmax(q kᵀ/√d) v of bigtut.attention, returning per-head weights.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
from torch import nn

from bigtut.attention import MultiHeadAttention, causal_mask
from bigtut.runtime import get_device

DEFAULT_SIZES = "8x64x128,16x128x256,4x256x512"  # batch x seq x d_model


def make_modules(d_model: int, heads: int, device: torch.device) -> tuple[MultiHeadAttention, nn.MultiheadAttention]:
    mine = MultiHeadAttention(d_model, heads).to(device)
    theirs = nn.MultiheadAttention(d_model, heads, batch_first=True).to(device)
    with torch.no_grad():  # same weights in both: q, k, v stacked into PyTorch's packed in_proj
        theirs.in_proj_weight.copy_(torch.cat([mine.q_proj.weight, mine.k_proj.weight, mine.v_proj.weight]))
        theirs.in_proj_bias.copy_(torch.cat([mine.q_proj.bias, mine.k_proj.bias, mine.v_proj.bias]))
        theirs.out_proj.load_state_dict(mine.out_proj.state_dict())
    return mine, theirs


def runners(mine, theirs, x: torch.Tensor, causal: bool) -> dict:
    """One forward + backward pass per implementation (self-attention, loss = sum of outputs)."""
    L = x.shape[1]
    mask = causal_mask(L, device=x.device) if causal else None  # True = may attend (bigtut)
    blocked = None if mask is None else ~mask  # True = may NOT attend (PyTorch's attn_mask for bool)

    def step(fn):
        def run():
            x.grad = None
            out = fn()
            out.sum().backward()
            return out
        return run

    return {
        "torch": step(lambda: theirs(x, x, x, attn_mask=blocked, need_weights=False)[0]),
        "fast": step(lambda: mine(x, x, x, mask=mask, return_attention=False)[0]),
        "explicit": step(lambda: mine(x, x, x, mask=mask, return_attention=True)[0]),
    }


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(fns: dict, repeats: int, warmup: int, device: torch.device) -> dict[str, float]:
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    names = list(fns)
    for r in range(repeats):
        for name in names[r % len(names):] + names[: r % len(names)]:  # rotate the order every repeat
            sync(device)
            start = time.perf_counter()
            fns[name]()
            sync(device)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=DEFAULT_SIZES, help="comma-separated BxLxD (default %(default)s)")
    parser.add_argument("--heads", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--device", default=None, help="cpu or cuda (default: bigtut.get_device())")
    args = parser.parse_args()
    device = get_device(args.device)
    torch.manual_seed(0)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"device={device}, torch {torch.__version__}, threads={torch.get_num_threads()}, load average {load}")
    print(f"forward+backward, medians of {args.repeats} interleaved repeats; ratio = time / nn.MultiheadAttention\n")
    print("| batch × seq × d_model | heads | mask | nn.MultiheadAttention (ms) | bigtut fast (ms) | "
          "bigtut explicit (ms) | fast / torch | explicit / torch |")
    print("|---|---|---|---|---|---|---|---|")
    worst = 0.0
    for size in args.sizes.split(","):
        B, L, D = (int(n) for n in size.lower().split("x"))
        mine, theirs = make_modules(D, args.heads, device)
        x = torch.randn(B, L, D, device=device, requires_grad=True)
        for causal in (False, True):
            fns = runners(mine, theirs, x, causal)
            outs = [fn() for fn in fns.values()]  # the three agree before we time them
            gap = max((o - outs[0]).abs().max().item() for o in outs)
            if gap > 1e-4:
                raise SystemExit(f"outputs differ by {gap:.2e} at {size}: not timing different computations")
            t = measure(fns, args.repeats, args.warmup, device)
            worst = max(worst, t["fast"] / t["torch"])
            print(f"| {B} × {L} × {D} | {args.heads} | {'causal' if causal else 'none'} | "
                  f"{1e3 * t['torch']:.2f} | {1e3 * t['fast']:.2f} | {1e3 * t['explicit']:.2f} | "
                  f"{t['fast'] / t['torch']:.2f} | {t['explicit'] / t['torch']:.2f} |")
    verdict = "meets" if worst <= 1.2 else "misses"
    print(f"\nworst fast / torch ratio: {worst:.2f} ({verdict} the goal of ≤ 1.2)")


if __name__ == "__main__":
    main()
