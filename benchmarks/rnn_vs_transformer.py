"""Benchmark of chapter 03: training throughput of a Transformer and an LSTM seq2seq, side by side.

The textbook claim is that a Transformer trains faster because it processes all positions of a sequence at
once, while an RNN must walk through them one after the other. This script measures training throughput
(source + target tokens per second, forward + backward + AdamW step) of two models of about the same size on
the copy task of notebook 03, for several sequence lengths and thread counts:

* ``Seq2SeqTransformer``: 1 encoder + 1 decoder layer, d_model 64, 4 heads, d_ff 128 (~86k parameters);
* ``LSTMSeq2Seq``: 1-layer LSTM encoder and decoder, hidden size 74, no attention (~86k parameters).

Within every repeat the two models are timed one after the other, in an order that alternates from repeat to
repeat, so a burst of load on a shared machine hits both alike; the table reports medians and the ratio.

    OMP_NUM_THREADS=1 python benchmarks/rnn_vs_transformer.py     # ~1 min on a quiet 2-core CPU
    python benchmarks/rnn_vs_transformer.py --lengths 16,64 --repeats 3 --threads 1,2
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from bigtut.runtime import get_device, seed_everything
from bigtut.transformer import LSTMSeq2Seq, Seq2SeqConfig, Seq2SeqTransformer, teacher_forcing_loss

VOCAB, PAD, BOS, EOS = 13, 0, 1, 2


def copy_batch(batch_size: int, length: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Random symbols ``src (B, L)``; the target is ``<bos> src <eos>`` ``(B, L + 2)``."""
    src = torch.randint(3, VOCAB, (batch_size, length), device=device)
    bos, eos = torch.full_like(src[:, :1], BOS), torch.full_like(src[:, :1], EOS)
    return src, torch.cat([bos, src, eos], dim=1)


def make_models(max_len: int, device: torch.device) -> dict[str, torch.nn.Module]:
    cfg = Seq2SeqConfig(VOCAB, VOCAB, d_model=64, num_heads=4, d_ff=128, num_encoder_layers=1,
                        num_decoder_layers=1, max_len=max_len)
    return {"transformer": Seq2SeqTransformer(cfg).to(device), "lstm": LSTMSeq2Seq(cfg, hidden_size=74).to(device)}


def time_steps(model: torch.nn.Module, optimizer: torch.optim.Optimizer, batch, steps: int) -> float:
    """Seconds per training step, averaged over ``steps`` steps on the same batch."""
    start = time.perf_counter()
    for _ in range(steps):
        loss = teacher_forcing_loss(model, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    if batch[0].is_cuda:
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", default="16,32,64,128,256", help="source lengths L, comma-separated")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=3, help="training steps per timing")
    parser.add_argument("--repeats", type=int, default=5, help="timings per model and length (median kept)")
    parser.add_argument("--threads", default=str(torch.get_num_threads()), help="torch thread counts, e.g. 1,2")
    args = parser.parse_args()
    device = get_device()
    lengths = [int(x) for x in args.lengths.split(",")]
    seed_everything(0)
    models = make_models(max(lengths) + 2, device)
    optimizers = {name: torch.optim.AdamW(m.parameters(), lr=1e-3) for name, m in models.items()}
    sizes = {name: sum(p.numel() for p in m.parameters()) for name, m in models.items()}
    print(f"device {device}, batch {args.batch_size}, parameters: " + ", ".join(f"{k} {v:,}" for k, v in sizes.items()))
    print(f"load average before: {os.getloadavg()[0]:.2f}")
    print(f"{'threads':>7} {'L':>5} {'transformer tok/s':>18} {'lstm tok/s':>11} {'transformer/lstm':>17}")
    for threads in (int(t) for t in args.threads.split(",")):
        if device.type == "cpu":
            torch.set_num_threads(threads)
        for length in lengths:
            batch = copy_batch(args.batch_size, length, device)
            tokens = batch[0].numel() + batch[1][:, :-1].numel()  # source + decoder-input tokens per step
            for name, model in models.items():  # warm-up: first calls allocate and pick kernels
                time_steps(model, optimizers[name], batch, 1)
            seconds: dict[str, list[float]] = {name: [] for name in models}
            for r in range(args.repeats):
                order = list(models) if r % 2 == 0 else list(models)[::-1]
                for name in order:
                    seconds[name].append(time_steps(models[name], optimizers[name], batch, args.steps))
            rate = {name: tokens / statistics.median(s) for name, s in seconds.items()}
            print(f"{threads:>7} {length:>5} {rate['transformer']:>18,.0f} {rate['lstm']:>11,.0f} "
                  f"{rate['transformer'] / rate['lstm']:>16.2f}x")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
