"""Chapter 09's faithfulness on real text: every token attribution method on chapter 05's docstring BERT (the
recipe classifier chapters 06–10 explain), scored per docstring on the whole test split, so that chapter 09
can state each score with a bootstrap interval instead of a mean over six texts.

Run once by hand (a few minutes on 2 cores, one thread as `make test` runs); notebook 09 reads the JSON:

    OMP_NUM_THREADS=1 python benchmarks/explain_faithfulness.py --json benchmarks/results/09_faithfulness.json

``tests/test_explain_benchmark.py`` recomputes a few docstrings of the stored file and must find the same numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from bigtut.explanation_benchmark import (
    FAITHFULNESS_COLUMNS,
    docstring_benchmark_inputs,
    docstring_methods,
    faithfulness_scores,
    interval_table,
    run_methods,
)
from bigtut.runtime import seed_everything


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write the per-docstring scores here")
    parser.add_argument("--limit", type=int, default=None, help="only the first N test docstrings (a quick look)")
    args = parser.parse_args(argv)
    seed_everything(0)
    torch.set_grad_enabled(True)
    start = time.perf_counter()
    inputs = docstring_benchmark_inputs(limit=args.limit)
    model, ids, mask, target = inputs.model, inputs.input_ids, inputs.attention_mask, inputs.target
    methods = docstring_methods(inputs.keep_ids, inputs.mask_id)
    runs = run_methods(model, ids, mask, target, methods)
    per_text = {name: faithfulness_scores(model, ids, mask, target, run.scores, inputs.keep_ids)
                for name, run in runs.items()}
    table = interval_table(per_text)
    print(f"{len(ids)} test docstrings, {int(mask.sum(1).min())}-{int(mask.sum(1).max())} tokens; "
          f"the classifier is right on {int(inputs.correct.sum())}")
    print(f"{'method':<18}" + "".join(f"{c:>24}" for c in FAITHFULNESS_COLUMNS) + f"{'ms / text':>11}")
    for name, columns in table.items():
        cells = "".join(f"{m:>8.3f} [{lo:.3f}, {hi:.3f}]" for m, lo, hi in columns.values())
        print(f"{name:<18}{cells}{1000 * runs[name].seconds_per_text:>11.1f}")
    print(f"wall time {time.perf_counter() - start:.0f} s")
    if args.json:
        record = {
            "what": "chapter 09: faithfulness of every token method on the docstring BERT, per test docstring",
            "n_docstrings": len(ids), "keep_ids": list(inputs.keep_ids), "target": target.tolist(),
            "correct": inputs.correct.tolist(), "columns": FAITHFULNESS_COLUMNS,
            "torch_threads": torch.get_num_threads(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
            "methods": {name: {"rows_per_text": run.rows_per_text, "seconds_per_text": run.seconds_per_text,
                               "scores": {c: np.round(v, 10).tolist() for c, v in per_text[name].items()}}
                        for name, run in runs.items()},
        }
        args.json.write_text(json.dumps(record, indent=1) + "\n")
        print("wrote", args.json)


if __name__ == "__main__":
    main()
