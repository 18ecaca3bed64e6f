"""How long will an explanation take? A cost model of every token method, measured on this machine.

The time of a token explanation is (the rows it sends through the model) × (the time of one row of their
length). This script measures the second factor for the course's docstring-BERT architecture (2 blocks, 64
wide, 4 heads, FFN 256; random weights, since time does not depend on them; ``max_len`` raised to 512),
forward alone and forward + backward, at lengths 16 … 512, and fits ``t(L) = a + b·L + c·L²`` seconds per row
(the ``L²`` term is attention). The first factor is a formula of the number of explained tokens ``n`` and the
budget (samples ``S``, steps, coalitions ``K``, permutations ``P``), printed in the table. Their product is the
predicted time; the script then times each method for real at 48 tokens and several at 512, and prints
predicted and measured side by side.

A row of a method that deletes tokens is shorter: with ``absent="delete"`` LIME takes out ``k`` uniform in
1..n−1 tokens, so its rows average about ``L − n/2`` tokens and cost the mean of ``t`` over those lengths
(rows of equal length run together, :mod:`bigtut.explain.token_rows`). KernelSHAP's lengths follow its
coalition sizes, which the script counts from the coalitions it draws.

    OMP_NUM_THREADS=1 python benchmarks/explain_cost.py     # a few minutes on a quiet 2-core CPU
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch

from bigtut.bert import BertConfig, BertForSequenceClassification
from bigtut.explain import gradient_x_input, lime_text, token_integrated_gradients, token_occlusion, token_shap
from bigtut.explain.shap import _kernel_design, kernel_budget
from bigtut.runtime import seed_everything

CLS, SEP, MASK = 1, 2, 3  # special ids of the random model's vocabulary (ids 4.. are words)
LENGTHS = (16, 32, 64, 128, 256, 512)
ROWS_PER_CALL = 64


def course_bert(max_len: int = 512) -> BertForSequenceClassification:
    """The docstring BERT's architecture (bigtut.recipes.bert.BertRecipe) with random weights, in eval mode."""
    seed_everything(0)
    config = BertConfig(vocab_size=1024, max_len=max_len, d_model=64, num_layers=2, num_heads=4, d_ff=256,
                        dropout=0.0, num_labels=7)
    return BertForSequenceClassification(config).eval()


def text_of_length(L: int, batch: int = 1) -> torch.Tensor:
    """``(batch, L)`` random ids: [CLS], ``L − 2`` words, [SEP]."""
    ids = torch.randint(4, 1024, (batch, L), generator=torch.Generator().manual_seed(L))
    ids[:, 0], ids[:, -1] = CLS, SEP
    return ids


def median_seconds(run, repeats: int) -> float:
    run()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def row_seconds(model, repeats: int) -> dict:
    """Seconds per row at each length: ``{"forward": {L: s}, "backward": {L: s}}`` (backward = forward + backward
    of the embeddings' gradient, as the gradient methods run)."""
    out = {"forward": {}, "backward": {}}
    for L in LENGTHS:
        ids = text_of_length(L, ROWS_PER_CALL)
        mask = torch.ones_like(ids)

        def forward(ids=ids, mask=mask):
            with torch.inference_mode():
                model(ids, attention_mask=mask)

        def forward_backward(ids=ids, mask=mask):
            embeds = model.get_input_embeddings()(ids).detach().requires_grad_(True)
            model(attention_mask=mask, inputs_embeds=embeds)[:, 0].sum().backward()

        out["forward"][L] = median_seconds(forward, repeats) / ROWS_PER_CALL
        out["backward"][L] = median_seconds(forward_backward, repeats) / ROWS_PER_CALL
    return out


def fit_quadratic(seconds: dict) -> np.ndarray:
    """``(a, b, c)`` of ``t(L) = a + b·L + c·L²`` by least squares on relative error (every length counts)."""
    L = np.array(sorted(seconds), dtype=float)
    t = np.array([seconds[int(length)] for length in L])
    design = np.stack([np.ones_like(L), L, L**2], 1) / t[:, None]
    return np.linalg.lstsq(design, np.ones_like(L), rcond=None)[0]


def kernel_lengths(n: int, L: int, n_samples: int | None) -> np.ndarray:
    """The lengths of KernelSHAP's rows with ``absent="delete"``: ``L − n + |coalition|`` for each coalition it
    draws, plus the empty and full coalitions."""
    masks, _ = _kernel_design(n, kernel_budget(n, n_samples), np.random.default_rng(0))
    return np.concatenate([[L - n, L], L - n + masks.sum(1)])


def cost_table(n: int, t_forward, t_backward, budgets: dict) -> list:
    """``[(method, rows formula, rows, predicted seconds, call)]`` for a text of ``n`` explained tokens."""
    L, S, steps, perms = n + 2, budgets["lime"], budgets["ig_steps"], budgets["permutations"]
    k = np.arange(1, n)  # LIME with "delete": k tokens out, uniform in 1..n-1
    kernel = kernel_lengths(n, L, budgets["kernel"])
    K = len(kernel) - 2
    ids = text_of_length(L)
    common = dict(target=0, keep_ids=(CLS, SEP))
    return [
        ("gradient × input", "1 forward + backward", 1, t_backward(L),
         lambda m: gradient_x_input(m, ids, target=0)),
        (f"IG, {steps} steps", "steps × (forward + backward)", steps, steps * t_backward(L),
         lambda m: token_integrated_gradients(m, ids, n_steps=steps, baseline="mask", mask_id=MASK, **common)),
        ("occlusion, mask", "n + 1 forward", n + 1, (n + 1) * t_forward(L),
         lambda m: token_occlusion(m, ids, absent="mask", mask_id=MASK, **common)),
        (f"LIME, {S} samples, mask", "S forward", S, S * t_forward(L),
         lambda m: lime_text(m, ids, absent="mask", mask_id=MASK, n_samples=S, **common)),
        (f"LIME, {S} samples, delete", "S forward, ~L − n/2 long", S, S * t_forward(L - k).mean(),
         lambda m: lime_text(m, ids, absent="delete", n_samples=S, **common)),
        (f"KernelSHAP, K = {K}, mask", "min(2n + 2048, 2^n − 2) + 2 forward", K + 2, (K + 2) * t_forward(L),
         lambda m: token_shap(m, ids, absent="mask", mask_id=MASK, n_samples=budgets["kernel"], **common)),
        (f"KernelSHAP, K = {K}, delete", "the same, rows as long as their coalitions", K + 2,
         t_forward(kernel).sum(),
         lambda m: token_shap(m, ids, absent="delete", n_samples=budgets["kernel"], **common)),
        (f"permutation SHAP, {perms} permutations (mask)", "2 + 2P(n − 1) forward", 2 + 2 * perms * (n - 1),
         (2 + 2 * perms * (n - 1)) * t_forward(L), None),
        ("exact Shapley (mask)", "2^n forward", 2**n, 2**n * t_forward(L), None),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--long", type=int, default=512, help="the long text's length, [CLS] and [SEP] included")
    args = parser.parse_args()
    torch.set_grad_enabled(True)
    print(f"torch {torch.__version__}, threads={torch.get_num_threads()}, OMP_NUM_THREADS="
          f"{os.environ.get('OMP_NUM_THREADS', 'unset')}, load average at start={os.getloadavg()[0]:.2f}\n")
    model = course_bert(max(args.long, max(LENGTHS)))
    seconds = row_seconds(model, args.repeats)
    fits = {kind: fit_quadratic(seconds[kind]) for kind in seconds}
    print("## Seconds per row of the course BERT architecture (2 x 64), rows of one length, 64 per call\n")
    print("| length L | forward ms/row | fit | forward + backward ms/row | fit |")
    print("|---|---|---|---|---|")

    def model_of(kind):
        a, b, c = fits[kind]
        return lambda L: a + b * np.asarray(L, float) + c * np.asarray(L, float) ** 2

    t_forward, t_backward = model_of("forward"), model_of("backward")
    for L in LENGTHS:
        print(f"| {L} | {1e3 * seconds['forward'][L]:.3f} | {1e3 * t_forward(L):.3f} | "
              f"{1e3 * seconds['backward'][L]:.3f} | {1e3 * t_backward(L):.3f} |")
    for kind in ("forward", "backward"):
        a, b, c = fits[kind]
        print(f"\n{kind}: t(L) = {1e3 * a:.4f} ms + {1e6 * b:.4f} µs·L + {1e9 * c:.4f} ns·L²")

    budgets = {"lime": 1000, "ig_steps": 50, "kernel": None, "permutations": 10}
    for n in (46, args.long - 2):
        print(f"\n## One text of {n + 2} tokens (n = {n} explained, [CLS] and [SEP] kept)\n")
        print("| method | model rows (formula) | rows | predicted s | measured s | measured / predicted |")
        print("|---|---|---|---|---|---|")
        for name, formula, rows, predicted, call in cost_table(n, t_forward, t_backward, budgets):
            measured = "" if call is None else median_seconds(lambda c=call: c(model), 1 if n > 46 else 3)
            ratio = "" if call is None else f"{measured / predicted:.2f}"
            shown = f"{rows:.3g}" if rows > 1e6 else f"{rows:,}"
            measured = measured if measured == "" else f"{measured:.3f}"
            print(f"| {name} | {formula} | {shown} | {predicted:.3g} | {measured} | {ratio} |")
    print(f"\nload average at end={os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
