"""Benchmark of chapter 04: bigtut's GPT against Hugging Face's GPT2LMHeadModel, measured side by side.

1. training throughput (tokens/s) of ``GPT`` and ``GPT2LMHeadModel`` of the same config, same weights, same
   batches, same optimizer (goal: ratio >= 1.0);
2. greedy generation, batch 1, float32, of 256 new tokens after a 16-token prompt with a 6-layer, 384-wide
   model, once with the course's character vocabulary and once with GPT-2's 50257 tokens (whose 77 MB output
   matrix is read at every step, cache or not). Contenders, all on the same weights and prompt:
   ``GPT.generate`` with the KV cache (what a user calls; its steps run through ``FastDecoder``), the same call
   inside ``readable_decoding()`` (the taught path, ``model.hidden_states`` at every step), ``GPT.generate``
   without cache (each step runs the whole window and computes the logits of its last position only), and
   HF ``generate`` with its KV cache (``do_sample=False``, exactly 256 new tokens, the all-ones attention
   mask; its tied output matrix/token embedding is the very tensor ours uses, the same memory). Goals: cache
   >= 10x (char vocabulary) and >= 5x (GPT-2 vocabulary) over no cache, ``GPT.generate`` >= 1.1x HF
   ``generate``. The generated tokens are checked to be identical.
3. how far a cached step is from the memory-bandwidth limit: the time to read, once, the bytes a step must
   read (every weight: the blocks, the final LayerNorm, the whole (V, d) output matrix; plus a tensor the size
   of the cached keys/values at the mean context length), timed with ``torch.sum`` over each of them in the
   same rounds, i.e. bytes per token / the bandwidth measured on those very tensors (and, for reference, the
   bandwidth of a 1 GiB read).
4. why ``FastDecoder`` copies the weights: one row times the output matrix read as ``F.linear`` reads it (a
   transposed view of the ``(V, d)`` parameter) and as ``FastDecoder`` does (a contiguous ``(d, V)`` copy).

Measurements alternate between the contenders (the order rotating from round to round) and report medians,
so a busy machine slows all alike; the load average is printed.

    python benchmarks/gpt.py                     # full run (several minutes on a 2-core CPU)
    python benchmarks/gpt.py --only generation   # the generation rows only
    python benchmarks/gpt.py --quick             # fewer steps and repeats, for a smoke test
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
from bigtut.gpt.fast_decoding import readable_decoding


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


def _read_seconds(tensors: list[torch.Tensor], reads: int, device: torch.device) -> float:
    """Median seconds of one pass of ``torch.sum`` over each of ``tensors`` (a full read of every byte)."""
    seconds = []
    for _ in range(reads):
        _sync(device)
        start = time.perf_counter()
        for tensor in tensors:
            tensor.sum()
        _sync(device)
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def _product_seconds(row: torch.Tensor, matrix: torch.Tensor, reads: int, device: torch.device) -> float:
    """Median seconds of ``row @ matrix``, ``(1, d) @ (d, V)``."""
    seconds = []
    for _ in range(reads):
        _sync(device)
        start = time.perf_counter()
        row.mm(matrix)
        _sync(device)
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def read_per_cached_step(model: GPT, context: int) -> list[torch.Tensor]:
    """What one cached step must read at least: every weight once (of the two embeddings only the output
    matrix ``(V, d)``, tied to the token embedding, is read whole) and the cached keys and values of
    ``context`` positions (a stand-in tensor of their size)."""
    weights = [p for name, p in model.named_parameters() if name != "pos_emb.weight"]
    keys_and_values = torch.randn(2 * model.config.n_layer * model.config.d_model * context,
                                  device=model.pos_emb.weight.device)
    return [*weights, keys_and_values]


@torch.no_grad()
def generation_times(config: GPTConfig, prompt_len: int, new_tokens: int, repeats: int, device: torch.device):
    """Median seconds to generate ``new_tokens`` greedily per contender (module docstring) and, under "read",
    to read once what a cached step must read; whether all gave the same tokens; and those bytes."""
    bigtut.seed_everything(0)
    ours = GPT(config).to(device).eval()
    theirs = gpt_to_hf(ours).to(device).eval()
    # the (V, d) output matrix, tied to the token embedding on both sides, is the very same tensor: for GPT-2's
    # vocabulary it is most of what a step reads, and on this machine the read speed of 77 MB differs by up to
    # ~30% from one allocation to another (memory on huge pages reads faster), which would decide by chance
    theirs.transformer.wte.weight = theirs.lm_head.weight = ours.tok_emb.weight
    prompt = torch.randint(0, config.vocab_size, (1, prompt_len), generator=torch.Generator().manual_seed(1))
    prompt = prompt.to(device)
    step_reads = read_per_cached_step(ours, context=prompt_len + new_tokens // 2)  # the mean context
    step_bytes = sum(t.numel() * t.element_size() for t in step_reads)

    # one row times the output matrix: as F.linear reads it (a transposed view of (V, d)) and as FastDecoder
    # does (a contiguous (d, V) copy)
    row, head = torch.randn(1, config.d_model, device=device), ours.lm_head.weight.t()
    head_t = head.contiguous()

    def readable():
        with readable_decoding():
            return ours.generate(prompt, new_tokens, temperature=0, use_cache=True)

    runs = {
        "GPT.generate, KV cache": lambda: ours.generate(prompt, new_tokens, temperature=0, use_cache=True),
        "GPT.generate, KV cache, readable path": readable,
        "GPT.generate, no cache": lambda: ours.generate(prompt, new_tokens, temperature=0, use_cache=False),
        "HF generate, KV cache": lambda: theirs.generate(prompt, attention_mask=torch.ones_like(prompt),
                                                         max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                                                         do_sample=False, pad_token_id=0),
        "read": lambda: _read_seconds(step_reads, reads=20, device=device),
        "head, view": lambda: _product_seconds(row, head, reads=20, device=device),
        "head, copy": lambda: _product_seconds(row, head_t, reads=20, device=device),
    }
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    outputs = {}
    names = list(runs)
    for round_ in range(repeats + 1):  # the first round warms up and is discarded
        for name in names[round_ % len(names):] + names[:round_ % len(names)]:  # the order rotates
            _sync(device)
            start = time.perf_counter()
            outputs[name] = runs[name]()
            _sync(device)
            timed_inside = name in ("read", "head, view", "head, copy")  # these return their own seconds
            seconds[name].append(outputs[name] if timed_inside else time.perf_counter() - start)
    for timed_inside in ("read", "head, view", "head, copy"):
        outputs.pop(timed_inside)
    reference = outputs["GPT.generate, KV cache"]
    same = all(torch.equal(out, reference) for out in outputs.values())
    return {name: statistics.median(s[1:]) for name, s in seconds.items()}, same, step_bytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps and repeats (smoke test)")
    parser.add_argument("--only", choices=("training", "generation"), default=None, help="run one part only")
    parser.add_argument("--repeats", type=int, default=None, help="measured rounds (default 3; 5 for generation)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: bigtut.get_device())")
    args = parser.parse_args()
    device = bigtut.get_device(args.device)
    print(f"device={device}, torch {torch.__version__}, threads={torch.get_num_threads()}, "
          f"load average at start={', '.join(f'{x:.2f}' for x in os.getloadavg())}\n")

    rows = []
    train_configs = [
        ("char GPT of the chapter (4 layers, 128 wide, context 64), batch 12",
         GPTConfig(vocab_size=105, block_size=64, n_layer=4, n_head=4, d_model=128), 12, 10),
        ("6 layers, 384 wide, context 256, char vocabulary, batch 4",
         GPTConfig(vocab_size=105, block_size=256, n_layer=6, n_head=6, d_model=384), 4, 4),
    ]
    for label, config, batch_size, steps in train_configs if args.only != "generation" else []:
        rates = train_throughput(config, batch_size, steps=2 if args.quick else steps,
                                 repeats=1 if args.quick else (args.repeats or 3), device=device)
        ours, theirs = rates["bigtut GPT"], rates["HF GPT2LMHeadModel"]
        rows.append((f"training, {label}", f"{ours:,.0f} tokens/s", f"HF {theirs:,.0f} tokens/s",
                     f"{ours / theirs:.2f}x", "≥ 1.0"))

    new_tokens = 64 if args.quick else 256
    all_same, notes = True, []
    generation = [(105, "char vocabulary (105)", "≥ 10"), (50257, "GPT-2 vocabulary (50257)", "≥ 5")]
    for vocab, vocab_label, cache_goal in generation if args.only != "training" else []:
        config = GPTConfig(vocab_size=vocab, block_size=1024, n_layer=6, n_head=6, d_model=384)
        seconds, same, step_bytes = generation_times(config, prompt_len=16, new_tokens=new_tokens,
                                                     repeats=1 if args.quick else (args.repeats or 5),
                                                     device=device)
        all_same = all_same and same
        cached, readable, uncached, hf = (seconds["GPT.generate, KV cache"],
                                          seconds["GPT.generate, KV cache, readable path"],
                                          seconds["GPT.generate, no cache"], seconds["HF generate, KV cache"])
        head = f"generation, 6 layers, 384 wide, {vocab_label}, {new_tokens} tokens after 16"
        rows.append((f"{head}: cache vs no cache", f"{new_tokens / cached:,.0f} tokens/s",
                     f"no cache {new_tokens / uncached:,.0f} tokens/s", f"{uncached / cached:.1f}x", cache_goal))
        rows.append((f"{head}: readable path (the taught one) with cache vs no cache",
                     f"{new_tokens / readable:,.0f} tokens/s", f"no cache {new_tokens / uncached:,.0f} tokens/s",
                     f"{uncached / readable:.1f}x", "—"))
        rows.append((f"{head}: GPT.generate vs HF generate", f"{new_tokens / cached:,.0f} tokens/s",
                     f"HF {new_tokens / hf:,.0f} tokens/s", f"{hf / cached:.2f}x", "≥ 1.1"))
        limit = seconds["read"]  # seconds to read the bytes of one step once
        rows.append((f"{head}: cached step vs reading its {step_bytes / 1e6:.0f} MB once",
                     f"{cached / new_tokens * 1e3:.2f} ms/token",
                     f"limit {limit * 1e3:.2f} ms/token ({step_bytes / limit / 1e9:.1f} GB/s)",
                     f"{cached / new_tokens / limit:.2f}x the limit", "—"))
        view, copy = seconds["head, view"], seconds["head, copy"]
        rows.append((f"{head}: one row times the output matrix, contiguous (d, V) copy (FastDecoder) vs the "
                     f"transposed view of (V, d) (F.linear)", f"{copy * 1e3:.3f} ms", f"view {view * 1e3:.3f} ms",
                     f"{view / copy:.2f}x", "—"))
        notes.append(f"{vocab_label}: load average after = {', '.join(f'{x:.2f}' for x in os.getloadavg())}")

    print("| measurement | bigtut | reference | ratio | goal |")
    print("|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    if args.only != "training":
        gigabyte = 2**28  # float32 values in 1 GiB
        print(f"\ngreedy outputs identical (cached, readable cached, uncached, HF): {all_same}")
        big = [torch.randn(gigabyte, device=device)]
        print(f"bandwidth of a 1 GiB read (beyond any cache), for reference: "
              f"{gigabyte * 4 / _read_seconds(big, reads=5, device=device) / 1e9:.1f} GB/s")
        print("\n".join(notes))
    print(f"load average at end={', '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
