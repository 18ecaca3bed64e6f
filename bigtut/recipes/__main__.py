"""``python -m bigtut.recipes``: build (or find in the ``runs/`` cache) the models chapters 06–10 explain."""

import time

from bigtut.recipes import build_explanation_models

start = time.perf_counter()
build_explanation_models()
print(f"explanation models ready ({time.perf_counter() - start:.0f} s)")
