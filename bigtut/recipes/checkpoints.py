"""Rebuild the course's committed checkpoints (runs longer than a notebook's budget).

    OMP_NUM_THREADS=1 python -m bigtut.recipes.checkpoints gpt     # checkpoints/gpt_char_5000
    python -m bigtut.recipes.checkpoints gpt --steps 60 --out /tmp/gpt_smoke   # a quick smoke run elsewhere
    OMP_NUM_THREADS=1 python -m bigtut.recipes.checkpoints bert    # checkpoints/bert_pretrain_long
    python -m bigtut.recipes.checkpoints bert-packages             # checkpoints/bert_packages (about 45 min)
    OMP_NUM_THREADS=1 python -m bigtut.recipes.checkpoints explained   # checkpoints/explained (about 5 min)

``gpt``: notebook 04's character GPT pretrained for 5 000 steps (:func:`bigtut.recipes.gpt.build_gpt_checkpoint`).
Built on the CPU with ``OMP_NUM_THREADS=1`` (901 s on a busy 2-core machine, load average 6.35 at the start: the
command prints its time), the result is what ``tests/test_checkpoint_gpt.py`` checks.

``bert``: notebook 05's BERT pretrained for 4 800 steps (:func:`bigtut.recipes.bert.write_long_pretraining`, about
5 minutes; ``--steps`` and ``--out`` do not apply), checked by ``tests/test_checkpoint_bert.py``.

``bert-packages``: notebook 05's in-domain BERT, pretrained on the installed packages' docstrings
(:data:`bigtut.recipes.bert.PACKAGES_PRETRAIN`; ``--steps`` does not apply, ``--out`` does), checked by
``tests/test_checkpoint_bert_packages.py``.

``explained``: the models chapters 04–11 explain (:data:`bigtut.recipes.cache.EXPLAINED_RECIPES`), trained afresh
by :func:`bigtut.recipes.build_explanation_models` into a temporary cache and copied to ``checkpoints/explained/``
in place of the old ones (``--steps``, ``--out`` and ``--device`` do not apply: the recipes' own settings, on the
CPU). Run it after editing anything that trains (``tests/test_committed_models.py`` says when), then re-execute
notebooks 04–11 (``make outputs``) and check the prose (``make claims``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from bigtut.recipes.cache import COMMITTED_DIR, EXPLAINED_RECIPES
from bigtut.recipes.gpt import GPT_CHECKPOINT_DIR, build_gpt_checkpoint


def write_explained_models(out: str | Path = COMMITTED_DIR) -> list[Path]:
    """Train every explained model afresh (no committed copy, no ``runs/`` entry used) and put exactly those
    entries in ``out``, deleting the folders of older keys. Returns the folders written."""
    from bigtut.recipes import build_explanation_models

    out = Path(out)
    saved = {name: os.environ.get(name) for name in ("BIGTUT_RUNS", "BIGTUT_COMMITTED")}
    with tempfile.TemporaryDirectory(prefix="bigtut-explained-") as tmp:
        os.environ["BIGTUT_RUNS"], os.environ["BIGTUT_COMMITTED"] = tmp, ""
        try:
            build_explanation_models(device="cpu")
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
        entries = sorted(p for p in Path(tmp).iterdir() if p.is_dir() and p.name.rsplit("_", 1)[0] in EXPLAINED_RECIPES)
        if sorted(p.name.rsplit("_", 1)[0] for p in entries) != sorted(EXPLAINED_RECIPES):
            raise RuntimeError(f"expected one entry per recipe of {EXPLAINED_RECIPES}, got {[p.name for p in entries]}")
        if out.exists():
            shutil.rmtree(out)
        out.mkdir(parents=True)
        written = [Path(shutil.copytree(p, out / p.name)) for p in entries]
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bigtut.recipes.checkpoints", description=__doc__.splitlines()[0])
    parser.add_argument("which", choices=["gpt", "bert", "bert-packages", "explained"],
                        help="which checkpoint to rebuild")
    parser.add_argument("--steps", type=int, default=5000, help="training steps (default 5000)")
    parser.add_argument("--out", default=str(GPT_CHECKPOINT_DIR), help=f"folder (default {GPT_CHECKPOINT_DIR})")
    parser.add_argument("--device", default="cpu", help="cpu (default; what the committed checkpoint used) or cuda")
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error(f"--steps must be a positive integer, got {args.steps}")
    load, start = os.getloadavg()[0], time.perf_counter()
    if args.which == "explained":
        folders = write_explained_models()
        print(f"explained: {len(folders)} models written to {COMMITTED_DIR} in {time.perf_counter() - start:.0f} s "
              f"(load average at start {load:.2f})")
        return
    if args.which.startswith("bert"):
        from bigtut.recipes import bert

        if args.which == "bert":
            folder = bert.write_long_pretraining()
        else:
            out = bert.PACKAGES_PRETRAIN_DIR if args.out == str(GPT_CHECKPOINT_DIR) else args.out
            folder = bert.write_long_pretraining(out, recipe=bert.PACKAGES_PRETRAIN,
                                                 eval_every=bert.PACKAGES_EVAL_EVERY)
        print(f"bert: written to {folder} in {time.perf_counter() - start:.0f} s (load average at start {load:.2f})")
        return
    ckpt = build_gpt_checkpoint(args.out, steps=args.steps, device=args.device)
    print(f"{args.which}: {args.steps} steps, validation {ckpt.meta['val_bpc']:.3f} bits per character; written to "
          f"{args.out} in {time.perf_counter() - start:.0f} s (load average at start {load:.2f})")


if __name__ == "__main__":
    main()
