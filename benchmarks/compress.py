"""CPU latency of chapter 10's compressed models against their originals, measured side by side in one run.

Three model families of the course's sizes, randomly initialised (latency does not depend on the weights'
values, so nothing is trained and nothing is read from ``runs/``):

* the chapter-05 BERT docstring classifier (``BertRecipe`` sizes: vocabulary 1024, 2 layers, 64 wide, 4 heads,
  d_ff 256), a batch of 32 texts x 64 tokens;
* the chapter-09 planted-evidence classifier (``PLANTED_MODEL``, the planted word vocabulary), 64 x 16 tokens;
* chapter 04's character GPT (``GPTConfig()``: 4 layers, 128 wide, context 64), 8 sequences x 64 characters.

Each is timed as float32 and as every compression of ``bigtut.compress``: int8 (ours, ``quantize_model``, and
torchao's ``Int8DynamicActivationInt8WeightConfig`` on the same layers), unstructured magnitude pruning at 50 %
and 90 % (masks applied on every forward, and the same folded in with ``make_pruning_permanent``: still dense
matrices, so no speed-up is expected), half the heads removed, half the feed-forward neurons removed, and for
the BERT classifiers the shape of a distilled student (one layer of two, half the feed-forward width).

Every number comes from ``bigtut.compress.cpu_latency`` (forward calls under ``no_grad`` with the thread count
set). All variants of all families are timed in rounds, the order rotating from round to round, so drifting
load on a shared machine hits them alike; a variant's time is the median over rounds of ``cpu_latency``'s
median, its IQR the interquartile range of those round medians. Ratio = original time /
variant time (> 1: faster). Sizes are safetensors files (``size_on_disk``).

A second section times one Linear layer at growing widths (float32 vs our ``Int8Linear`` vs torchao), since int8
pays for quantising the activations at every call and only wins once the matrix product dominates.

    python benchmarks/compress.py                  # about 2 minutes on a 2-core CPU, one thread
    python benchmarks/compress.py --threads 1 2    # the same at one and at two threads
    python benchmarks/compress.py --quick          # a ~20 s smoke run
"""

from __future__ import annotations

import argparse
import copy
import io
import logging
import os
import warnings

import torch
from torch import nn

import bigtut
from bigtut.bert import BertConfig, BertForSequenceClassification
from bigtut.compress import (
    Int8Linear,
    compare_latency,
    linear_layers,
    make_pruning_permanent,
    make_student,
    prune_ffn_neurons,
    prune_heads,
    prune_magnitude,
    quantize_model,
    size_on_disk,
)
from bigtut.data import LABELS
from bigtut.data.planted import planted_tokenizer
from bigtut.gpt import GPT, GPTConfig
from bigtut.recipes import BertRecipe
from bigtut.recipes.planted import PLANTED_MODEL

WIDTHS = (64, 256, 512, 1024, 2048)  # in = out features of the single Linear layer
ROWS = (64, 256)  # tokens per call


def import_torchao():
    """torchao's int8 entry points, without its import-time chatter (optional CUDA kernels it cannot load)."""
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_
    finally:
        logging.disable(logging.NOTSET)
    return quantize_, Int8DynamicActivationInt8WeightConfig


def torchao_int8(model: nn.Module, layers: list[str] | None = None) -> nn.Module:
    """A copy of ``model`` with torchao's dynamic int8 on the Linear layers ``layers`` (default: all of them)."""
    quantize_, Int8Config = import_torchao()
    chosen = set(layers) if layers is not None else None
    quantized = copy.deepcopy(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantize_(quantized, Int8Config(),
                  filter_fn=lambda m, fqn: isinstance(m, nn.Linear) and (chosen is None or fqn in chosen))
    return quantized.eval()


def file_bytes(model: nn.Module) -> tuple[int, bool]:
    """Bytes on disk and whether they are a safetensors file (torchao's tensor subclasses need ``torch.save``)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return size_on_disk(model), True
        except (RuntimeError, TypeError, AttributeError):
            buffer = io.BytesIO()
            torch.save(model.state_dict(), buffer)
            return buffer.tell(), False


def variants(model: nn.Module, student_d_ff: int | None) -> dict[str, tuple[nn.Module, int, bool]]:
    """Every compressed version of ``model`` (float32 first) by row label, with its bytes on disk (and whether
    they are a safetensors file)."""
    out = {"original float32": model,
           "int8, ours (quantize_model)": quantize_model(model),
           "int8, torchao": torchao_int8(model, list(linear_layers(model)))}
    for fraction in (0.5, 0.9):
        out[f"unstructured {fraction:.0%}, masks on"] = prune_magnitude(model, fraction)
        out[f"unstructured {fraction:.0%}, permanent"] = make_pruning_permanent(prune_magnitude(model, fraction))
    out["heads pruned 50 %"] = prune_heads(model, 0.5)
    out["FFN neurons pruned 50 %"] = prune_ffn_neurons(model, 0.5)
    if student_d_ff is not None:
        out[f"student shape: layer 0 only, d_ff {student_d_ff}"] = make_student(model, layers=[0], d_ff=student_d_ff)
    return {name: (m.eval(), *file_bytes(m)) for name, m in out.items()}


def families() -> dict[str, tuple[dict[str, nn.Module], tuple, dict]]:
    """Family label -> (variants, forward args, forward kwargs)."""
    bigtut.seed_everything(0)
    recipe = BertRecipe()
    bert = BertForSequenceClassification(BertConfig(
        vocab_size=recipe.vocab_size, max_len=recipe.max_len, d_model=recipe.d_model, num_layers=recipe.num_layers,
        num_heads=recipe.num_heads, d_ff=recipe.d_ff, dropout=recipe.dropout, num_labels=len(LABELS))).eval()
    ids = torch.randint(4, recipe.vocab_size, (32, recipe.max_len))
    bert_inputs = ((ids,), {"attention_mask": torch.ones_like(ids)})

    tokenizer = planted_tokenizer()
    planted = BertForSequenceClassification(BertConfig(
        vocab_size=tokenizer.vocab_size, pad_id=tokenizer.token_to_id("[PAD]"), num_labels=2, **PLANTED_MODEL)).eval()
    ids = torch.randint(1, tokenizer.vocab_size, (64, PLANTED_MODEL["max_len"]))
    planted_inputs = ((ids,), {"attention_mask": torch.ones_like(ids)})

    config = GPTConfig()
    gpt = GPT(config).eval()
    gpt_inputs = ((torch.randint(0, config.vocab_size, (8, config.block_size)),), {})

    def params(m):
        return f"{sum(p.numel() for p in m.parameters()) / 1e6:.2f} M parameters"

    return {
        f"ch. 05 BERT docstring classifier (vocab {recipe.vocab_size}, {recipe.num_layers} layers x {recipe.d_model}, "
        f"d_ff {recipe.d_ff}, {params(bert)}), batch 32 x {recipe.max_len} tokens":
            (variants(bert, recipe.d_ff // 2), *bert_inputs),
        f"ch. 09 planted-evidence classifier (vocab {tokenizer.vocab_size}, {PLANTED_MODEL['num_layers']} layers x "
        f"{PLANTED_MODEL['d_model']}, d_ff {PLANTED_MODEL['d_ff']}, {params(planted)}), batch 64 x "
        f"{PLANTED_MODEL['max_len']} tokens":
            (variants(planted, PLANTED_MODEL["d_ff"] // 2), *planted_inputs),
        f"ch. 04 character GPT (vocab {config.vocab_size}, {config.n_layer} layers x {config.d_model}, "
        f"{params(gpt)}), batch 8 x {config.block_size} characters":
            (variants(gpt, None), *gpt_inputs),
    }


def interleaved(jobs: dict, rounds: int, repeats: int, threads: int) -> dict[object, tuple[float, float]]:
    """``key -> (model, args, kwargs)`` timed side by side by :func:`bigtut.compress.compare_latency`.

    Returns ``key -> (median ms, IQR ms)``: the median of the round medians and their interquartile range.
    """
    found = compare_latency(jobs, rounds=rounds, repeats=repeats, warmup=2, threads=threads)
    return {key: (t.median_ms, t.q3_ms - t.q1_ms) for key, t in found.items()}


def model_tables(fams: dict, threads: int, rounds: int, repeats: int) -> None:
    jobs = {(family, name): (model, args, kwargs)
            for family, (models, args, kwargs) in fams.items() for name, (model, _, _) in models.items()}
    times = interleaved(jobs, rounds, repeats, threads)
    any_torch_save = False
    for family, (models, _, _) in fams.items():
        print(f"\n{family}, threads={threads}\n")
        print("| variant | size MB | median ms | IQR ms | ratio vs original (> 1 = faster) |")
        print("|---|---|---|---|---|")
        base = times[(family, "original float32")][0]
        for name, (_, size, safetensors) in models.items():
            any_torch_save |= not safetensors
            median, iqr = times[(family, name)]
            print(f"| {name} | {size / 1e6:.2f}{'' if safetensors else '*'} | {median:.2f} | {iqr:.2f} | "
                  f"{base / median:.2f}x |")
    if any_torch_save:
        print("\n* torch.save file of the state dict: torchao's int8 tensors cannot be written as safetensors "
              "(its pickle overhead is about 2 % at these sizes)")


def linear_table(threads: int, rounds: int, repeats: int, widths=WIDTHS, rows=ROWS) -> None:
    bigtut.seed_everything(0)
    jobs = {}
    for width in widths:
        layer = nn.Linear(width, width).eval()
        contenders = {"float32": layer, "int8 ours": Int8Linear.from_linear(layer), "int8 torchao": torchao_int8(layer)}
        for n in rows:
            x = torch.randn(n, width)
            jobs.update({(width, n, name): (module, (x,), {}) for name, module in contenders.items()})
    times = interleaved(jobs, rounds, repeats, threads)
    print(f"\none nn.Linear(width, width) on (rows, width) float32 inputs, threads={threads}\n")
    print("| width | rows | float32 ms | int8 ours ms | int8 torchao ms | float / ours | float / torchao |")
    print("|---|---|---|---|---|---|---|")
    for width in widths:
        for n in rows:
            f, o, a = (times[(width, n, name)][0] for name in ("float32", "int8 ours", "int8 torchao"))
            print(f"| {width} | {n} | {f:.3f} | {o:.3f} | {a:.3f} | {f / o:.2f}x | {f / a:.2f}x |")
    print()
    for name in ("int8 ours", "int8 torchao"):
        for n in rows:
            faster = [times[(w, n, "float32")][0] > times[(w, n, name)][0] for w in widths]
            # the crossover: the narrowest width from which int8 is faster at every wider width measured
            start = next((i for i in range(len(widths)) if all(faster[i:])), None)
            where = (f"faster than float32 from width {widths[start]} on" if start is not None
                     else f"never faster than float32 up to width {widths[-1]}")
            print(f"crossover, {name}, {n} rows: {where}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1], help="intra-op thread counts (default: 1)")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved timing rounds (default 11; quick 3)")
    parser.add_argument("--repeats", type=int, default=None, help="forward calls per round (default 10; quick 3)")
    parser.add_argument("--quick", action="store_true", help="fewer rounds, calls and widths (a smoke run)")
    args = parser.parse_args()
    rounds = args.rounds or (3 if args.quick else 11)
    repeats = args.repeats or (3 if args.quick else 10)
    _, _ = import_torchao()
    import torchao

    print(f"torch {torch.__version__}, torchao {torchao.__version__}, {os.cpu_count()} cores, "
          f"threads={' and '.join(map(str, args.threads))}, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, "
          f"{rounds} rounds x {repeats} calls, load average at start={os.getloadavg()[0]:.2f}")
    fams = families()
    for threads in args.threads:
        model_tables(fams, threads, rounds, repeats)
        if args.quick:
            linear_table(threads, rounds, repeats, widths=(64, 1024), rows=(64,))
        else:
            linear_table(threads, rounds, repeats)
    print(f"\nload average at end={os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
