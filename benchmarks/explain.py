"""Each bigtut explanation method against the library practitioners use, with identical settings, side by side.

For every pair the same model, inputs, budget and seed go to both; their runs alternate (the order rotating
from repeat to repeat, so a burst of load hits both alike) and the table reports median seconds, the time
ratio bigtut / library (goal: ≤ 1.0) and the largest difference between the answers (goal: equal answers).

    OMP_NUM_THREADS=1 python benchmarks/explain.py            # a few minutes on a quiet 2-core CPU
    python benchmarks/explain.py --repeats 2 --only lime      # a quick look at one family
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import warnings

import numpy as np
import torch
from torch import nn

import bigtut
from bigtut.bert import BertConfig, BertForSequenceClassification


def alternate(contenders: dict, repeats: int) -> dict:
    """Median seconds of each ``name -> (callable)``, calls alternating in a rotating order; also the answers."""
    names, times, answers = list(contenders), {n: [] for n in contenders}, {}
    for r in range(repeats):
        for name in names[r % len(names):] + names[: r % len(names)]:
            start = time.perf_counter()
            answers[name] = contenders[name]()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}, answers


def integrated_gradients_rows(repeats: int) -> list:
    from captum.attr import IntegratedGradients, LayerIntegratedGradients

    from bigtut.explain import integrated_gradients, token_integrated_gradients

    rows = []
    bigtut.seed_everything(0)
    mlp = nn.Sequential(nn.Linear(64, 256), nn.Tanh(), nn.Linear(256, 256), nn.Tanh(), nn.Linear(256, 10))
    mlp = mlp.double().eval()
    x, target = torch.randn(32, 64, dtype=torch.float64), torch.randint(0, 10, (32,))
    for method in ("gausslegendre", "riemann_trapezoid"):
        theirs = IntegratedGradients(mlp)
        seconds, out = alternate({
            "bigtut": lambda m=method: integrated_gradients(mlp, x, target=target, n_steps=50, method=m,
                                                             captum_compatible=True).attributions,
            "captum": lambda m=method, t=theirs: t.attribute(x, target=target, n_steps=50, method=m)}, repeats)
        rows.append((f"IG, MLP 64-256-256-10, batch 32, 50 steps, {method}", seconds["bigtut"], seconds["captum"],
                     float(np.abs(out["bigtut"] - out["captum"].numpy()).max())))

    bigtut.seed_everything(0)
    config = BertConfig(vocab_size=1024, max_len=64, d_model=64, num_layers=2, num_heads=4, d_ff=256,
                        dropout=0.0, num_labels=7)
    bert = BertForSequenceClassification(config).double().eval()
    ids = torch.randint(4, 1024, (8, 48))
    mask = torch.ones(8, 48, dtype=torch.long)
    mask[4:, 30:] = 0
    baseline_ids = torch.where(mask.bool(), torch.zeros_like(ids), ids)  # every real token -> [PAD] (id 0)
    layer_ig = LayerIntegratedGradients(lambda i, m: bert(i, m), bert.get_input_embeddings())
    seconds, out = alternate({
        "bigtut": lambda: token_integrated_gradients(bert, ids, mask, target=3, baseline=baseline_ids, n_steps=50,
                                                     captum_compatible=True).attributions,
        "captum": lambda: layer_ig.attribute(ids, baselines=baseline_ids, additional_forward_args=(mask,), target=3,
                                             n_steps=50).sum(-1)}, repeats)
    rows.append(("token IG, BERT 2x64 (course size), 8 texts x 48 tokens, 50 steps", seconds["bigtut"],
                 seconds["captum"], float(np.abs(out["bigtut"] - out["captum"].numpy()).max())))
    return rows


def lime_rows(repeats: int) -> list:
    from lime.lime_tabular import LimeTabularExplainer
    from sklearn.linear_model import LogisticRegression

    from bigtut.data import breast_cancer
    from bigtut.explain import lime_tabular

    data = breast_cancer()  # standardised features
    train, test = np.asarray(data.x_train, dtype=np.float64), np.asarray(data.x_test, dtype=np.float64)
    model = LogisticRegression(max_iter=5000).fit(train, np.asarray(data.y_train))
    predict = model.predict_proba  # lime explains probabilities: give both the same function

    rows = []
    for discretize in (False, "quartile"):
        explainer = LimeTabularExplainer(train, discretize_continuous=bool(discretize), discretizer="quartile",
                                         feature_selection="none", random_state=0)

        def theirs(explainer=explainer):
            explainer.random_state = np.random.RandomState(0)  # the same draws at every repeat
            found = explainer.explain_instance(test[0], predict, labels=(1,), num_features=30, num_samples=5000)
            dense = np.zeros(30)
            for feature, weight in found.local_exp[1]:
                dense[feature] = weight
            return dense

        def theirs_built_each_time(discretize=discretize):  # lime's explainer computes its statistics when built
            built = LimeTabularExplainer(train, discretize_continuous=bool(discretize), discretizer="quartile",
                                         feature_selection="none", random_state=0)
            return theirs(built)

        seconds, out = alternate({
            "bigtut": lambda d=discretize: lime_tabular(predict, test[:1], training_data=train, target=1,
                                                        n_samples=5000, seed=0, discretize=d).attributions[0],
            "lime": theirs, "lime, explainer built in the call": theirs_built_each_time}, repeats)
        for name in ("lime", "lime, explainer built in the call"):
            rows.append((f"LIME tabular, breast cancer (30 features), 5000 samples, discretize={discretize}; vs {name}",
                         seconds["bigtut"], seconds[name], float(np.abs(out["bigtut"] - out[name]).max())))
    return rows


def shap_rows(repeats: int) -> list:
    import shap

    from bigtut.explain.shap import exact_shapley, kernel_shap

    rng = np.random.default_rng(0)
    weights = rng.normal(size=(10, 3))

    def f(rows):  # a non-linear 3-class model of 10 features
        return np.tanh(rows @ weights) + 0.1 * (rows[:, :3] ** 2).sum(1, keepdims=True)

    background, x = rng.normal(size=(20, 10)), rng.normal(size=10)
    masker = shap.maskers.Independent(background, max_samples=len(background))
    exact = shap.explainers.Exact(lambda rows: f(rows)[:, 1], masker)
    seconds, out = alternate({
        "bigtut": lambda: exact_shapley(f, x[None], background=background, target=1).attributions[0],
        "shap": lambda: exact(x[None]).values[0]}, repeats)
    rows = [("exact Shapley, 10 features, 20 background rows", seconds["bigtut"], seconds["shap"],
             float(np.abs(out["bigtut"] - out["shap"]).max()))]
    kernel = shap.KernelExplainer(lambda rows: f(rows)[:, 1], background)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        seconds, out = alternate({
            "bigtut": lambda: kernel_shap(f, x[None], background=background, n_samples=2**10 - 2,
                                              target=1).attributions[0],
            "shap": lambda: kernel.shap_values(x, nsamples=2**10 - 2, l1_reg=False, silent=True)}, repeats)
    rows.append(("KernelSHAP, 10 features, every coalition (1022), 20 background rows", seconds["bigtut"],
                 seconds["shap"], float(np.abs(np.ravel(out["bigtut"]) - np.ravel(out["shap"])).max())))
    return rows


def generation_rows(repeats: int) -> list:
    """Chapter 11: per-step IG and occlusion of a generated continuation, on the course's 5 000-step character
    GPT in float64, against captum's LLM attribution classes on the same weights in ``GPT2LMHeadModel``."""
    import copy

    from captum.attr import (
        FeatureAblation,
        LayerIntegratedGradients,
        LLMAttribution,
        LLMGradientAttribution,
        TextTokenInput,
    )

    from bigtut.explain import CaptumTokenizer, generation_integrated_gradients, generation_occlusion
    from bigtut.gpt import gpt_to_hf
    from bigtut.recipes.gpt import load_gpt_checkpoint

    checkpoint = load_gpt_checkpoint(device="cpu")
    gpt, tokenizer = copy.deepcopy(checkpoint.model).double().eval(), checkpoint.tokenizer
    hf, adapter = gpt_to_hf(gpt).eval(), CaptumTokenizer(tokenizer)
    prompt = "The built-in function len() returns"
    ids = torch.tensor([tokenizer.encode(prompt)])  # (1, P)
    continuation = gpt.generate(ids, 12, temperature=0)[:, ids.shape[1]:]  # (1, T): greedy
    P, T = ids.shape[1], continuation.shape[1]
    setting = f"course GPT (4x128, float64), {P}-character prompt, {T} generated characters"
    gradients = LLMGradientAttribution(LayerIntegratedGradients(hf, hf.transformer.wte), adapter)
    seconds, out = alternate({
        "bigtut": lambda: generation_integrated_gradients(gpt, ids, target=continuation, baseline=0, prompt_only=True,
                                                          captum_compatible=True).attributions[0, :, :P],
        "captum": lambda: gradients.attribute(TextTokenInput(prompt, adapter), target=continuation[0]
                                              ).token_attr.double().numpy()}, repeats)
    rows = [(f"per-step IG vs LLMGradientAttribution(LayerIntegratedGradients), {setting}, 50 steps",
             seconds["bigtut"], seconds["captum"], float(np.abs(out["bigtut"] - out["captum"]).max()))]
    ablation = LLMAttribution(FeatureAblation(hf), adapter)
    seconds, out = alternate({
        "bigtut": lambda: generation_occlusion(gpt, ids, target=continuation, absent="mask", mask_id=0,
                                               prompt_only=True).attributions[0, :, :P],
        "captum": lambda: ablation.attribute(TextTokenInput(prompt, adapter), target=continuation[0],
                                             use_cached_outputs=False).token_attr.double().numpy()}, repeats)
    rows.append((f"per-step occlusion vs LLMAttribution(FeatureAblation), {setting}", seconds["bigtut"],
                 seconds["captum"], float(np.abs(out["bigtut"] - out["captum"]).max())))
    return rows


def token_lime_rows(repeats: int) -> list:
    """Token LIME (``lime_text``) vs lime's ``LimeTextExplainer.explain_instance`` on the docstring BERT and the
    GPT classifier: to be written."""
    return []


def token_shap_rows(repeats: int) -> list:
    """Token SHAP vs shap's ``KernelExplainer`` and ``PermutationExplainer`` over a masking function, on the
    docstring BERT and the GPT classifier: to be written."""
    return []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--only", default="ig,lime,shap,token_lime,token_shap,generation",
                        help="comma-separated subset of ig, lime, shap, token_lime, token_shap, generation")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, threads={torch.get_num_threads()}, OMP_NUM_THREADS="
          f"{os.environ.get('OMP_NUM_THREADS', 'unset')}, load average at start={os.getloadavg()[0]:.2f}\n")
    parts = {"ig": integrated_gradients_rows, "lime": lime_rows, "shap": shap_rows, "token_lime": token_lime_rows,
             "token_shap": token_shap_rows, "generation": generation_rows}
    rows = [row for name in args.only.split(",") for row in parts[name](args.repeats)]
    print("| method and setting | bigtut s | library s | ratio (goal ≤ 1.0) | max |difference| |")
    print("|---|---|---|---|---|")
    for name, ours, theirs, difference in rows:
        print(f"| {name} | {ours:.3f} | {theirs:.3f} | {ours / theirs:.2f}x | {difference:.1e} |")
    print(f"\nload average at end={os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
