"""Training wall time of chapter 04's character GPT against nanoGPT's CPU recipe, on the same data, side by side.

    OMP_NUM_THREADS=1 python benchmarks/nanogpt.py --nanogpt ~/src/nanoGPT              # 1500 iterations, 3 rounds
    OMP_NUM_THREADS=1 python benchmarks/nanogpt.py --nanogpt ~/src/nanoGPT --eval none  # adds the CLI trainer

``--nanogpt`` is a checkout of https://github.com/karpathy/nanoGPT; its ``train.py``, ``model.py``,
``configurator.py`` and ``config/train_shakespeare_char.py`` are copied into a temporary folder and run there
(nothing of nanoGPT enters this repository). The data is the course's: chapter 04's training and validation text
(:func:`bigtut.data.python_docs_corpus`) encoded with its character tokenizer
(:func:`bigtut.recipes.gpt.python_docs_char_tokenizer`, 105 ids) and written in nanoGPT's format
(``data/bigtut_char/train.bin``, ``val.bin`` as uint16, ``meta.pkl`` with ``vocab_size``).

What each side runs, as a separate process (whole-process wall time, ``import torch`` included), the same number
of optimizer steps ``N`` (``--iters``), both with ``OMP_NUM_THREADS`` set to ``--threads``:

* **nanoGPT**: the README's CPU recipe, ``python train.py config/train_shakespeare_char.py --device=cpu
  --compile=False --eval_iters=20 --log_interval=1 --block_size=64 --batch_size=12 --n_layer=4 --n_head=4
  --n_embd=128 --max_iters=N-1 --lr_decay_iters=N-1 --dropout=0.0``, plus ``--bias=True`` (the course's model
  has biases: both models then hold 814,976 parameters, checked below), ``--dataset=bigtut_char`` and a
  temporary ``--out_dir``. ``max_iters=N-1`` because nanoGPT trains iterations ``0..max_iters``. From the
  config file: lr 1e-3, 100 warm-up steps, cosine decay to 1e-4, AdamW betas (0.9, 0.99), weight decay 0.1,
  gradient clipping at 1.0; evaluation of 20 training + 20 validation batches of 12 at iteration 0 and every
  250; a checkpoint (``torch.save``) whenever the validation loss improves after iteration 0; a log line per
  iteration. Batches: random windows gathered from a ``np.memmap`` sample by sample (its ``get_batch``).
* **course, fit** (the trainer of notebook 04 and :mod:`bigtut.recipes.gpt`): ``GPT(GPTConfig(vocab_size=105))``
  (4 layers, 4 heads, width 128, context 64), :func:`bigtut.training.fit` with :func:`bigtut.recipes.gpt.lm_loss`,
  random windows from :func:`bigtut.data.random_lm_batch` (batch 12), AdamW over
  :func:`bigtut.training.weight_decay_groups` with lr 1e-3, betas (0.9, 0.99), weight decay 0.1, gradient
  clipping at 1.0, 100 warm-up steps (fewer in runs under 101 steps) then cosine decay to 10 % (nanoGPT's
  warm-up divides by 101, the course's by 100); the same evaluation budget: 40 validation batches of 12 every
  250 steps and after the last (as many evaluations as nanoGPT makes); its progress bar on (to a pipe); no
  checkpoint written. The text is read and tokenized inside the timed process.
* **course, CLI** (``--eval none`` only): ``python -m bigtut.train gpt --steps N --lr 1e-3 --warmup-steps 100
  --checkpoint-every N`` (batch 12, the same model; non-overlapping windows in a per-epoch permutation; AdamW
  betas (0.9, 0.999), which the CLI does not expose; one checkpoint at the end; no evaluation, which it lacks).

``--eval recipe`` (default) compares nanoGPT and fit with the recipe's evaluation; ``--eval none`` runs all three
without evaluation (nanoGPT with ``--eval_iters=0``: its evaluation then runs no batch and saves no checkpoint).

Model differences that stay: nanoGPT's MLP uses the exact GELU, the course's the tanh approximation (GPT-2's), whose
CPU kernel costs more (the run prints both kernels' times); nanoGPT fuses the q/k/v projections into one
``c_attn``, the course keeps three; nanoGPT also decays the embedding table. ``--diagnose-gelu`` adds a side that
is not the course's model — fit with nanoGPT's exact GELU in the course's MLP, other numbers — to show how much of
the gap the activation accounts for. Rounds alternate the order of the sides; the ratios are of medians over rounds.
Besides wall time, the table gives each process's CPU time (user + system, from ``getrusage``), which another job
on a shared machine disturbs less. Time per iteration comes from the logs: nanoGPT's ``time ...ms`` lines, and the
interval between batch requests in the fit process (medians; for the CLI, its ``history.json`` seconds / N, a mean
that includes its checkpoint). "last eval loss" is each side's last evaluation: nanoGPT's at the last multiple of
250 below N (its train.py evaluates before an iteration), the course's after step N.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import pickle
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DATASET = "bigtut_char"
NANOGPT_FILES = ("train.py", "model.py", "configurator.py", "config/train_shakespeare_char.py")
EVAL_INTERVAL, EVAL_BATCHES = 250, 40  # nanoGPT's recipe: every 250 iterations, 20 train + 20 val batches
BATCH, CONTEXT, LR, WARMUP, BETAS, WEIGHT_DECAY, GRAD_CLIP = 12, 64, 1e-3, 100, (0.9, 0.99), 0.1, 1.0
SEED = 1337  # nanoGPT's
EXACT_GELU = "course fit, exact GELU"  # the --diagnose-gelu side's name


def load_text_and_tokenizer():
    """Chapter 04's tokenizer and its ``{"train": ids, "val": ids}`` (lists of ints)."""
    from bigtut.data import python_docs_corpus
    from bigtut.recipes.gpt import python_docs_char_tokenizer

    tokenizer = python_docs_char_tokenizer()
    return tokenizer, {split: tokenizer.encode(python_docs_corpus(split)) for split in ("train", "val")}


def prepare_nanogpt(nanogpt: Path, workdir: Path) -> None:
    """Copy nanoGPT's scripts into ``workdir`` and write the course's data there in nanoGPT's format."""
    import numpy as np

    for name in NANOGPT_FILES:
        source = nanogpt / name
        if not source.is_file():
            raise SystemExit(f"--nanogpt {nanogpt}: {name} is missing; give a checkout of karpathy/nanoGPT")
        (workdir / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, workdir / name)
    tokenizer, ids = load_text_and_tokenizer()
    data = workdir / "data" / DATASET
    data.mkdir(parents=True)
    for split, values in ids.items():
        np.array(values, dtype=np.uint16).tofile(data / f"{split}.bin")
    itos = {i: tokenizer.decode([i]) for i in range(tokenizer.vocab_size)}
    with open(data / "meta.pkl", "wb") as f:  # what nanoGPT's data/shakespeare_char/prepare.py writes
        pickle.dump({"vocab_size": tokenizer.vocab_size, "itos": itos, "stoi": {s: i for i, s in itos.items()}}, f)


def parameter_counts(workdir: Path, vocab_size: int) -> tuple[int, int]:
    """``(nanoGPT's, the course's)`` parameter counts for the benchmarked configuration (a tied matrix once)."""
    import importlib.util

    from bigtut.gpt import GPT, GPTConfig

    spec = importlib.util.spec_from_file_location("nanogpt_model", workdir / "model.py")
    module = importlib.util.module_from_spec(spec)
    with contextlib.redirect_stdout(io.StringIO()):  # its constructor prints the count
        spec.loader.exec_module(module)
        theirs = module.GPT(module.GPTConfig(block_size=CONTEXT, vocab_size=vocab_size, n_layer=4, n_head=4, n_embd=128,
                                             dropout=0.0, bias=True))
    return sum(p.numel() for p in theirs.parameters()), GPT(GPTConfig(vocab_size=vocab_size)).num_parameters()


def nanogpt_command(iters: int, out_dir: Path, evaluate: bool) -> list[str]:
    return [sys.executable, "train.py", "config/train_shakespeare_char.py", "--device=cpu", "--compile=False",
            f"--eval_iters={20 if evaluate else 0}", "--log_interval=1", f"--block_size={CONTEXT}",
            f"--batch_size={BATCH}", "--n_layer=4", "--n_head=4", "--n_embd=128", f"--max_iters={iters - 1}",
            f"--lr_decay_iters={iters - 1}", "--dropout=0.0", "--bias=True", f"--dataset={DATASET}",
            f"--out_dir={out_dir}"]


def exact_gelu_mlp(self, x):
    """Diagnostic only (``--diagnose-gelu``): the course's MLP with nanoGPT's exact GELU, other numbers."""
    import torch.nn.functional as F

    return self.drop(self.proj(F.gelu(self.fc(x))))


def course_fit(iters: int, evaluate: bool, report: Path, exact_gelu: bool = False) -> None:
    """The fit side (run in its own process): train, then write losses and iteration times to ``report``."""
    import torch

    from bigtut.data import random_lm_batch
    from bigtut.gpt import GPT, GPTConfig
    from bigtut.recipes.gpt import lm_loss
    from bigtut.training import fit, weight_decay_groups

    if exact_gelu:
        from bigtut.gpt.model import MLP

        MLP.forward = exact_gelu_mlp
    tokenizer, ids = load_text_and_tokenizer()
    train_ids, val_ids = torch.tensor(ids["train"]), torch.tensor(ids["val"])
    torch.manual_seed(SEED)
    model = GPT(GPTConfig(vocab_size=tokenizer.vocab_size))
    gen = torch.Generator().manual_seed(SEED)
    val_batches = [random_lm_batch(val_ids, CONTEXT, BATCH, gen) for _ in range(EVAL_BATCHES)] if evaluate else None
    requested = []

    def next_batch():
        requested.append(time.perf_counter())
        return random_lm_batch(train_ids, CONTEXT, BATCH, gen)

    optimizer = torch.optim.AdamW(weight_decay_groups(model, WEIGHT_DECAY), lr=LR, betas=BETAS)
    history = fit(model, lm_loss, next_batch, steps=iters, optimizer=optimizer, val_batches=val_batches,
                  eval_every=EVAL_INTERVAL, grad_clip=GRAD_CLIP, warmup_steps=min(WARMUP, iters - 1), schedule="cosine",
                  device="cpu", desc="course fit")
    gaps = [b - a for a, b in zip(requested, requested[1:])]
    report.write_text(json.dumps({"losses": history.train_loss, "val_loss": history.val_loss,
                                  "iteration_ms": 1000 * statistics.median(gaps) if gaps else None}))


def run_side(name: str, args, workdir: Path, round_dir: Path) -> dict:
    """Run one side once; return its wall time, per-iteration time and loss curve."""
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    evaluate = args.eval == "recipe"
    round_dir.mkdir(parents=True, exist_ok=True)
    if name == "nanoGPT":
        command, cwd = nanogpt_command(args.iters, round_dir / "nanogpt_out", evaluate), workdir
    elif name.startswith("course fit"):
        command = [sys.executable, __file__, "--run-fit", str(round_dir / "fit.json"), "--iters", str(args.iters),
                   "--eval", args.eval] + (["--exact-gelu"] if name == EXACT_GELU else [])
        cwd = Path.cwd()
    else:
        command = [sys.executable, "-m", "bigtut.train", "gpt", "--steps", str(args.iters), "--lr", str(LR),
                   "--warmup-steps", str(min(WARMUP, args.iters - 1)), "--checkpoint-every", str(args.iters),
                   "--device", "cpu", "--out", str(round_dir / "cli_out")]
        cwd = Path.cwd()
    start, used = time.perf_counter(), child_cpu_seconds()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    wall, cpu = time.perf_counter() - start, child_cpu_seconds() - used
    if done.returncode:
        raise SystemExit(f"{name} failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    if name == "nanoGPT":
        lines = re.findall(r"iter (\d+): loss ([\d.]+), time ([\d.]+)ms", done.stdout)
        losses = [float(loss) for _, loss, _ in lines]
        per_iter = statistics.median(float(ms) for _, _, ms in lines[1:])
        val = re.findall(r"val loss ([\d.na]+)", done.stdout)
        return {"wall": wall, "cpu": cpu, "iteration_ms": per_iter, "losses": losses,
                "last_val": val[-1] if val else "-"}
    if name.startswith("course fit"):
        report = json.loads((round_dir / "fit.json").read_text())
        last_val = f"{report['val_loss'][-1]:.4f}" if report["val_loss"] else "-"
        return {"wall": wall, "cpu": cpu, "iteration_ms": report["iteration_ms"], "losses": report["losses"],
                "last_val": last_val}
    history = json.loads((round_dir / "cli_out" / "history.json").read_text())
    return {"wall": wall, "cpu": cpu, "iteration_ms": 1000 * history["seconds"] / args.iters,
            "losses": history["train_loss"], "last_val": "-"}


def child_cpu_seconds() -> float:
    """User + system CPU seconds of the finished child processes so far."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def gelu_costs(threads: int) -> str:
    """Forward + backward time of the two GELUs on one MLP activation ``(12, 64, 512)``, medians of 200."""
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(threads)
    x = torch.randn(BATCH, CONTEXT, 4 * 128)
    grad = torch.randn_like(x)
    times: dict[str, list[float]] = {"tanh": [], "none": []}
    for _ in range(200):
        for kind in times:
            start = time.perf_counter()
            F.gelu(x, approximate=kind)
            torch.ops.aten.gelu_backward(grad, x, approximate=kind)
            times[kind].append(time.perf_counter() - start)
    tanh, exact = (1000 * statistics.median(times[k]) for k in ("tanh", "none"))
    return (f"GELU forward + backward on one (12, 64, 512) activation: tanh approximation (the course's, GPT-2's) "
            f"{tanh:.2f} ms, exact (nanoGPT's) {exact:.2f} ms; 4 layers: {4 * (tanh - exact):+.1f} ms per iteration")


def curve(losses: list[float], pieces: int = 6) -> str:
    """The mean loss over ``pieces`` equal stretches of the run."""
    size = max(1, len(losses) // pieces)
    return " ".join(f"{statistics.fmean(losses[i:i + size]):.3f}" for i in range(0, size * pieces, size))


def torch_version() -> str:
    import torch

    return torch.__version__


def nanogpt_commit(nanogpt: Path) -> str:
    """The checkout's commit, or a note that it is not a git checkout."""
    found = subprocess.run(["git", "-C", str(nanogpt), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return f"commit {found.stdout.strip()}" if found.returncode == 0 else "not a git checkout"


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nanogpt", type=Path, help="a checkout of karpathy/nanoGPT")
    parser.add_argument("--iters", type=int, default=1500, help="optimizer steps per run (default 1500)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    parser.add_argument("--eval", choices=["recipe", "none"], default="recipe",
                        help="recipe: nanoGPT's evaluation budget on both sides; none: no evaluation, CLI added")
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "1")))
    parser.add_argument("--diagnose-gelu", action="store_true", help="add a side that is NOT the course's model: "
                        "fit with nanoGPT's exact GELU, to show how much of the gap the activation is")
    parser.add_argument("--run-fit", type=Path, help=argparse.SUPPRESS)  # internal: the fit side's process
    parser.add_argument("--exact-gelu", action="store_true", help=argparse.SUPPRESS)  # internal
    args = parser.parse_args()
    if args.run_fit:
        course_fit(args.iters, args.eval == "recipe", args.run_fit, args.exact_gelu)
        return
    if args.nanogpt is None or args.iters < 2 or args.rounds < 1:
        parser.error("--nanogpt is required; --iters must be >= 2, --rounds >= 1")
    sides = ["nanoGPT", "course fit"] + (["course CLI"] if args.eval == "none" else []) + \
        ([EXACT_GELU] if args.diagnose_gelu else [])
    results: dict[str, list[dict]] = {name: [] for name in sides}
    with tempfile.TemporaryDirectory(prefix="bigtut_nanogpt_") as tmp:
        workdir = Path(tmp)
        prepare_nanogpt(args.nanogpt.expanduser().resolve(), workdir)
        vocab_size = pickle.loads((workdir / "data" / DATASET / "meta.pkl").read_bytes())["vocab_size"]
        theirs, ours = parameter_counts(workdir, vocab_size)
        print(f"# OMP_NUM_THREADS={args.threads} python benchmarks/nanogpt.py --iters {args.iters} --rounds "
              f"{args.rounds} --eval {args.eval}, {time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPUs")
        print(f"torch {torch_version()}; nanoGPT from {args.nanogpt} ({nanogpt_commit(args.nanogpt)})")
        print(f"parameters: nanoGPT {theirs:,}, course {ours:,} ({'the same' if theirs == ours else 'DIFFERENT'})")
        print(f"load average at start: {load()}")
        print(gelu_costs(args.threads))
        for r in range(args.rounds):
            order = sides[r % len(sides):] + sides[:r % len(sides)]  # alternate who goes first
            for name in order:
                results[name].append(run_side(name, args, workdir, workdir / f"round{r}" / name.replace(" ", "_")))
            walls = ", ".join(f"{n} {results[n][-1]['wall']:.1f} s" for n in sides)
            print(f"round {r + 1}: {walls}; load average {load()}", flush=True)
    print(f"\nmedians of {args.rounds} rounds; ratio = course / nanoGPT (below 1: the course is faster)")
    print("| side | wall s | ratio | per round | CPU s | ratio | ms/iteration | ratio | last eval loss |")
    print("|---|---|---|---|---|---|---|---|---|")
    medians = {name: {key: statistics.median(x[key] for x in results[name]) for key in ("wall", "cpu", "iteration_ms")}
               for name in sides}
    for name in sides:
        mine, ref = medians[name], medians["nanoGPT"]
        rounds = " ".join(f"{x['wall']:.1f}" for x in results[name])
        print(f"| {name} | {mine['wall']:.1f} | {mine['wall'] / ref['wall']:.3f} | {rounds} | {mine['cpu']:.1f} | "
              f"{mine['cpu'] / ref['cpu']:.3f} | {mine['iteration_ms']:.1f} | "
              f"{mine['iteration_ms'] / ref['iteration_ms']:.3f} | {results[name][-1]['last_val']} |")
    for name in sides[1:]:
        ratios = [a["wall"] / b["wall"] for a, b in zip(results[name], results["nanoGPT"])]
        print(f"{name} / nanoGPT, wall time per round: {' '.join(f'{x:.3f}' for x in ratios)}")
    print("\ntraining loss, mean over 6 equal stretches of the run (last round; same shape expected):")
    for name in sides:
        print(f"  {name:{max(map(len, sides))}s}  {curve(results[name][-1]['losses'])}")
    print(f"load average at end: {load()}")


if __name__ == "__main__":
    main()
