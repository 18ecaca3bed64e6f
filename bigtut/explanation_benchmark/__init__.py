"""Chapter 09's benchmark of explanation methods: which method finds what the model uses, how faithful it is,
and at what cost — measured on the planted task and on chapter 05's docstring BERT.

==========================================  ===============================================================
module                                      what it holds
==========================================  ===============================================================
``explanation_benchmark.planted``           the 200 planted sentences, the seventeen methods, their cached runs,
                                            precision@k against either ground truth, with intervals
``explanation_benchmark.faithfulness``      ERASER faithfulness per text with intervals; the docstring BERT's
                                            stored run (``benchmarks/explain_faithfulness.py``)
==========================================  ===============================================================

It sits above :mod:`bigtut.recipes` (it reads their trained models) and :mod:`bigtut.explain` (it runs the
methods); no model recipe imports it, so editing it retrains nothing. ``python -m bigtut.explanation_benchmark``
(run by ``make models``) fills the cache of :func:`planted_benchmark_runs`.
"""

from bigtut.explanation_benchmark.faithfulness import (
    FAITHFULNESS_COLUMNS,
    FAITHFULNESS_FILE,
    DocstringInputs,
    StoredFaithfulness,
    docstring_benchmark_inputs,
    docstring_methods,
    faithfulness_scores,
    interval_table,
    load_faithfulness,
)
from bigtut.explanation_benchmark.planted import (
    BENCHMARK_PER_KIND,
    GROUPS,
    NOISE_SHARE,
    MethodRun,
    benchmark_sentences,
    noise_stdev,
    planted_benchmark_runs,
    planted_methods,
    precision_table,
    run_methods,
    sentence_groups,
)

__all__ = [
    "BENCHMARK_PER_KIND", "FAITHFULNESS_COLUMNS", "FAITHFULNESS_FILE", "GROUPS", "NOISE_SHARE", "DocstringInputs",
    "MethodRun", "StoredFaithfulness", "benchmark_sentences", "docstring_benchmark_inputs", "docstring_methods",
    "faithfulness_scores", "interval_table", "load_faithfulness", "noise_stdev", "planted_benchmark_runs",
    "planted_methods", "precision_table", "run_methods", "sentence_groups",
]
