"""Benchmark of chapter 04: bigtut's GPT against Hugging Face's GPT2LMHeadModel, measured side by side.

1. training throughput (tokens/s) of ``GPT`` and ``GPT2LMHeadModel`` of the same config, same weights, same
   batches, same optimizer (goal: ratio >= 1.0);
2. greedy generation of 256 new tokens after a 16-token prompt with a 6-layer, 384-wide model, once with the
   course's character vocabulary and once with GPT-2's 50257 tokens (whose 77 MB output matrix, read at every
   step whatever the cache, dominates the cost): ``GPT.generate`` with vs without the KV cache (goal >= 5x),
   and ``GPT.generate`` vs HF ``generate`` on the same weights (goal >= 1.0). The generated tokens are checked
   to be identical.

Measurements alternate between the contenders and report medians, so a busy machine slows both alike.

    python benchmarks/gpt.py            # full run (a few minutes on a 2-core CPU)
    python benchmarks/gpt.py --quick    # fewer repeats, for a smoke test
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
import torch.nn.functional as F

import bigtut
from bigtut.gpt import GPT, GPTConfig, gpt_to_hf


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_throughput(config: GPTConfig, batch_size: int, steps: int, repeats: int, device: torch.device):
    """Median tokens/s of ``steps`` AdamW steps, ours and HF's, alternating ``repeats`` times."""
    bigtut.seed_everything(0)
    ours = GPT(config).to(device).train()
    theirs = gpt_to_hf(ours).to(device).train()
    gen = torch.Generator().manual_seed(0)
    batches = [torch.randint(0, config.vocab_size, (2, batch_size, config.block_size), generator=gen).to(device)
               for _ in range(steps)]

    def ours_loss(x, y):
        return ours(x, y).loss

    def theirs_loss(x, y):
        logits = theirs(x).logits  # (B, L, V); the same loss as ours, computed outside the model
        return F.cross_entropy(logits.flatten(0, 1), y.flatten())

    contenders = {"bigtut GPT": (ours, ours_loss), "HF GPT2LMHeadModel": (theirs, theirs_loss)}
    optimizers = {name: torch.optim.AdamW(model.parameters(), lr=1e-4) for name, (model, _) in contenders.items()}
    rates: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(repeats + 1):  # the first round warms up and is discarded
        for name, (_, loss_fn) in contenders.items():
            opt = optimizers[name]
            _sync(device)
            start = time.perf_counter()
            for x, y in batches:
                loss = loss_fn(x, y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            _sync(device)
            rates[name].append(steps * batch_size * config.block_size / (time.perf_counter() - start))
    return {name: statistics.median(r[1:]) for name, r in rates.items()}


@torch.no_grad()
def generation_times(config: GPTConfig, prompt_len: int, new_tokens: int, repeats: int, device: torch.device):
    """Median seconds to generate ``new_tokens`` greedily: cached, uncached, and HF ``generate``."""
    bigtut.seed_everything(0)
    ours = GPT(config).to(device).eval()
    theirs = gpt_to_hf(ours).to(device).eval()
    prompt = torch.randint(0, config.vocab_size, (1, prompt_len), generator=torch.Generator().manual_seed(1))
    prompt = prompt.to(device)
    runs = {
        "GPT.generate, KV cache": lambda: ours.generate(prompt, new_tokens, temperature=0, use_cache=True),
        "GPT.generate, no cache": lambda: ours.generate(prompt, new_tokens, temperature=0, use_cache=False),
        "HF generate, KV cache": lambda: theirs.generate(prompt, attention_mask=torch.ones_like(prompt),
                                                         max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                                                         do_sample=False, pad_token_id=0),
    }
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    outputs = {}
    for _ in range(repeats + 1):
        for name, run in runs.items():
            _sync(device)
            start = time.perf_counter()
            outputs[name] = run()
            _sync(device)
            seconds[name].append(time.perf_counter() - start)
    reference = outputs["GPT.generate, KV cache"]
    same = all(torch.equal(out, reference) for out in outputs.values())
    return {name: statistics.median(s[1:]) for name, s in seconds.items()}, same


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps and repeats (smoke test)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: bigtut.get_device())")
    args = parser.parse_args()
    device = bigtut.get_device(args.device)
    repeats = 1 if args.quick else 3
    print(f"device={device}, torch {torch.__version__}, threads={torch.get_num_threads()}, "
          f"load average at start={os.getloadavg()[0]:.2f}\n")

    rows = []
    train_configs = [
        ("char GPT of the chapter (4 layers, 128 wide, context 64), batch 12",
         GPTConfig(vocab_size=105, block_size=64, n_layer=4, n_head=4, d_model=128), 12, 10),
        ("6 layers, 384 wide, context 256, char vocabulary, batch 4",
         GPTConfig(vocab_size=105, block_size=256, n_layer=6, n_head=6, d_model=384), 4, 4),
    ]
    for label, config, batch_size, steps in train_configs:
        rates = train_throughput(config, batch_size, steps=2 if args.quick else steps, repeats=repeats,
                                 device=device)
        ours, theirs = rates["bigtut GPT"], rates["HF GPT2LMHeadModel"]
        rows.append((f"training, {label}", f"{ours:,.0f} tokens/s", f"HF {theirs:,.0f} tokens/s",
                     f"{ours / theirs:.2f}x", "≥ 1.0"))

    new_tokens = 64 if args.quick else 256
    all_same = True
    for vocab, vocab_label in ((105, "char vocabulary (105)"), (50257, "GPT-2 vocabulary (50257)")):
        config = GPTConfig(vocab_size=vocab, block_size=1024, n_layer=6, n_head=6, d_model=384)
        seconds, same = generation_times(config, prompt_len=16, new_tokens=new_tokens, repeats=repeats,
                                         device=device)
        all_same = all_same and same
        cached, uncached, hf = (seconds["GPT.generate, KV cache"], seconds["GPT.generate, no cache"],
                                seconds["HF generate, KV cache"])
        head = f"generation, 6 layers, 384 wide, {vocab_label}, {new_tokens} tokens after 16"
        rows.append((f"{head}: cache vs no cache", f"{new_tokens / cached:,.0f} tokens/s",
                     f"no cache {new_tokens / uncached:,.0f} tokens/s", f"{uncached / cached:.1f}x", "≥ 5"))
        rows.append((f"{head}: GPT.generate vs HF generate", f"{new_tokens / cached:,.0f} tokens/s",
                     f"HF {new_tokens / hf:,.0f} tokens/s", f"{hf / cached:.2f}x", "≥ 1.0"))

    print("| measurement | bigtut | reference | ratio | goal |")
    print("|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print(f"\ngreedy outputs identical (cached, uncached, HF): {all_same}")
    print(f"load average at end={os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
