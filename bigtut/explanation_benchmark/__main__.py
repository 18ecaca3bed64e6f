"""``python -m bigtut.explanation_benchmark`` (``make models``): run chapter 09's benchmark into the ``runs/`` cache."""

import time

from bigtut.explanation_benchmark import planted_benchmark_runs

start = time.perf_counter()
planted_benchmark_runs()
print(f"chapter 09's benchmark ready ({time.perf_counter() - start:.0f} s)")
