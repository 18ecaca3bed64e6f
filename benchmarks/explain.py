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


def _lime_classifier_fn(model, prefix: list, suffix: list, pad_id: int, batch_size: int):
    """What a lime user writes: texts of whitespace-separated token ids -> ``prefix + ids + suffix``, chunks of
    ``batch_size`` texts in the given order, each padded to its longest text, softmax under ``torch.no_grad``."""
    def classifier_fn(texts):
        rows = [prefix + [int(word) for word in text.split()] + suffix for text in texts]
        probabilities = []
        for start in range(0, len(rows), batch_size):
            chunk = rows[start:start + batch_size]
            ids = torch.full((len(chunk), max(map(len, chunk))), pad_id)  # (n, longest)
            mask = torch.zeros_like(ids)
            for i, row in enumerate(chunk):
                ids[i, :len(row)], mask[i, :len(row)] = torch.tensor(row), 1
            with torch.no_grad():
                probabilities.append(model(ids, attention_mask=mask).softmax(-1).numpy())
        return np.concatenate(probabilities)
    return classifier_fn


def _lime_one_by_one(model, ids, mask, targets, kept_ahead: int, kept_after: int, mask_string: str,
                     classifier_fn, n_samples: int, seed: int) -> np.ndarray:
    """lime's ``explain_instance`` on each text in turn (its words: the ids between ``kept_ahead`` leading and
    ``kept_after`` trailing kept tokens), as a dense ``(B, L)`` array like ``lime_text``'s."""
    from lime.lime_text import LimeTextExplainer

    dense = np.zeros(ids.shape)
    for b, target in enumerate(targets):
        words = ids[b, kept_ahead:int(mask[b].sum()) - kept_after].tolist()
        explainer = LimeTextExplainer(bow=False, split_expression=r"\s+", mask_string=mask_string,
                                      feature_selection="none", random_state=seed)
        found = explainer.explain_instance(" ".join(map(str, words)), classifier_fn, labels=(target,),
                                           num_features=len(words), num_samples=n_samples)
        for feature, weight in found.local_exp[target]:
            dense[b, kept_ahead + feature] = weight
    return dense


def _lime_case(name, model, ids, lengths, ahead, after, pad_id, absent, mask_id, n_samples, *, batch_size, seed,
               repeats) -> tuple:
    """One row of :func:`token_lime_rows`: both sides timed side by side on the texts ``ids`` ``(B, L)``."""
    from bigtut.explain import lime_text

    B, L = ids.shape
    mask = (torch.arange(L) < lengths[:, None]).long()  # (B, L)
    with torch.no_grad():
        targets = model(ids, attention_mask=mask).argmax(-1).tolist()  # each text's predicted class
    classifier_fn = _lime_classifier_fn(model, ahead, after, pad_id, batch_size)
    mask_string = "" if absent == "delete" else str(mask_id)
    seconds, out = alternate({
        "bigtut": lambda: lime_text(model, ids, mask, target=targets, absent=absent, mask_id=mask_id,
                                    keep_ids=ahead + after, n_samples=n_samples, seed=seed, batch_size=batch_size,
                                    probabilities=True, lime_compatible=True).attributions,
        "lime": lambda: _lime_one_by_one(model, ids, mask, targets, len(ahead), len(after), mask_string, classifier_fn,
                                         n_samples, seed)}, repeats)
    return (f"token LIME, {name} float64, {B} texts x {L} tokens, {n_samples} samples, absent={absent!r}",
            seconds["bigtut"], seconds["lime"], float(np.abs(out["bigtut"] - out["lime"]).max()))


def _token_benchmark_texts(progress: bool) -> tuple:
    """The token rows' models and texts: ``(bert, gpt, vocab, newline, gpt_pad, bert_ids, bert_lengths, gpt_ids,
    gpt_lengths)``: the docstring BERT and the GPT classifier in float64, eval mode; the first 8 test docstrings
    as ``[CLS]`` + word pieces + ``[SEP]`` for the BERT and as a newline + characters for the GPT, each
    ``(8, 48)`` padded, with their lengths ``(8,)``."""
    import copy

    from bigtut.bert import BertVocab
    from bigtut.data import docstring_splits, encode_texts
    from bigtut.recipes import load_or_train_gpt, train_bert_docstring_classifier

    L = 48
    texts = [d.text for d in docstring_splits()["test"][:8]]
    bert_run = train_bert_docstring_classifier(device="cpu", progress=progress)
    gpt_run = load_or_train_gpt(device="cpu", progress=progress)
    bert, gpt = copy.deepcopy(bert_run.classifier).double().eval(), copy.deepcopy(gpt_run.classifier).double().eval()
    vocab = BertVocab.from_tokenizer(bert_run.tokenizer)
    newline, gpt_pad = gpt_run.tokenizer.encode("\n")[0], gpt_run.tokenizer.token_to_id("<pad>")
    bert_ids, bert_lengths = encode_texts(texts, bert_run.tokenizer, L, vocab.pad_id, prefix=[vocab.cls_id],
                                          suffix=[vocab.sep_id])  # (8, 48), (8,)
    gpt_ids, gpt_lengths = encode_texts([t.replace("\n", " ") for t in texts], gpt_run.tokenizer, L, gpt_pad,
                                        prefix=[newline])  # (8, 48), (8,)
    return bert, gpt, vocab, newline, gpt_pad, bert_ids, bert_lengths, gpt_ids, gpt_lengths


def token_lime_rows(repeats: int) -> list:
    """Token LIME (``lime_text``) vs lime's ``LimeTextExplainer.explain_instance``, on the course's docstring BERT
    (2x64, word pieces) and GPT classifier (4x128, characters), both in float64, 8 test docstrings of 48 tokens.

    BERT: ``[CLS]`` + the first 46 word pieces + ``[SEP]``, padded to 48. GPT: a newline, then the docstring on
    one line (newlines -> spaces) cut to 47 characters, padded to 48; the leading newline stays (lime may take
    out every word, and the GPT cannot read an empty text). Target: each text's predicted class, explained in
    probabilities. Both sides get the same model, seed 0, 512 rows per model call and the same number of
    samples per text: lime's default 5000 for the BERT, 1000 (notebook 06's budget) for the GPT, whose lime side
    would otherwise take minutes per repeat. Ours: one ``lime_text`` call on the 8 texts
    (``lime_compatible=True``: lime's neighbourhood, draw for draw). lime: ``explain_instance`` (``bow=False``,
    split on whitespace, ``feature_selection="none"``) on each text in turn, with a classifier function as a
    user writes it (texts of ids -> chunks of 512 in lime's order, each padded to its longest text,
    ``torch.no_grad``, softmax). A word taken out is deleted (``mask_string=""``) or, in the last row, replaced
    by BERT's ``[MASK]`` (``absent="mask"``: every sample keeps all 48 positions, so ours cannot gain from
    shorter rows, only from running repeated samples once).
    """
    batch_size, seed = 512, 0
    bert, gpt, vocab, newline, gpt_pad, bert_ids, bert_lengths, gpt_ids, gpt_lengths = _token_benchmark_texts(True)
    cases = [  # name, model, ids, lengths, kept ahead / after the words, pad id, absent, mask id, samples
        ("BERT 2x64", bert, bert_ids, bert_lengths, [vocab.cls_id], [vocab.sep_id], vocab.pad_id, "delete", None, 5000),
        ("GPT classifier 4x128", gpt, gpt_ids, gpt_lengths, [newline], [], gpt_pad, "delete", None, 1000),
        ("BERT 2x64", bert, bert_ids, bert_lengths, [vocab.cls_id], [vocab.sep_id], vocab.pad_id, "mask",
         vocab.mask_id, 5000)]
    return [_lime_case(*case, batch_size=batch_size, seed=seed, repeats=repeats) for case in cases]


def _shap_masked_model(model, ids: list, players: np.ndarray, absent: str, mask_id, pad_id: int, target: int,
                       batch_size: int):
    """The model function a shap user writes for one text ``ids`` (its real tokens) whose ``players`` are token
    positions: presence masks ``(K, m)`` -> the target's logit ``(K,)``. Each mask becomes the text with the absent
    players replaced by ``mask_id`` or deleted; chunks of ``batch_size`` masks in shap's order, each padded to its
    longest text, run under ``torch.no_grad``."""
    def f(masks):
        values = []
        for start in range(0, len(masks), batch_size):
            rows = []
            for present in np.asarray(masks[start:start + batch_size]) > 0.5:
                gone = set(players[~present].tolist())
                rows.append([mask_id if k in gone else t for k, t in enumerate(ids)] if absent == "mask"
                            else [t for k, t in enumerate(ids) if k not in gone])
            batch = torch.full((len(rows), max(map(len, rows))), pad_id)  # (n, longest)
            attention = torch.zeros_like(batch)
            for i, row in enumerate(rows):
                batch[i, :len(row)], attention[i, :len(row)] = torch.tensor(row), 1
            with torch.no_grad():
                values.append(model(batch, attention_mask=attention)[:, target].numpy())
        return np.concatenate(values)
    return f


def _shap_one_by_one(model, ids, mask, targets, keep_ids, absent, mask_id, pad_id, *, batch_size, seed,
                     n_samples=None, n_permutations=None) -> np.ndarray:
    """shap's ``KernelExplainer`` (``n_samples``) or ``PermutationExplainer`` (``n_permutations``) on each text in
    turn, the players its tokens whose id is not in ``keep_ids``, as a dense ``(B, L)`` array like ours."""
    import shap

    dense = np.zeros(ids.shape)
    for b, target in enumerate(targets):
        real = ids[b, :int(mask[b].sum())].tolist()
        players = np.array([k for k, t in enumerate(real) if t not in keep_ids])  # (m,)
        f, m = _shap_masked_model(model, real, players, absent, mask_id, pad_id, target, batch_size), len(players)
        if n_samples is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                np.random.seed(seed)  # KernelExplainer samples from NumPy's global generator
                dense[b, players] = shap.KernelExplainer(f, np.zeros((1, m))).shap_values(
                    np.ones(m), nsamples=n_samples, l1_reg=False, silent=True)
        else:
            explainer = shap.PermutationExplainer(f, lambda present, x: (x * present)[None], seed=seed)
            dense[b, players] = explainer(np.ones((1, m)), max_evals=n_permutations * (2 * m + 1),
                                          batch_size=batch_size, silent=True).values[0]
    return dense


def _shap_case(name, model, ids, lengths, keep_ids, pad_id, absent, mask_id, *, batch_size, seed, repeats,
               n_samples=None, n_permutations=None) -> tuple:
    """One row of :func:`token_shap_rows`: ours and shap's explainer timed side by side on ``ids`` ``(B, L)``."""
    from bigtut.explain import token_permutation_shap, token_shap

    B, L = ids.shape
    mask = (torch.arange(L) < lengths[:, None]).long()  # (B, L)
    with torch.no_grad():
        targets = model(ids, attention_mask=mask).argmax(-1).tolist()  # each text's predicted class
    common = dict(target=targets, absent=absent, mask_id=mask_id, pad_id=pad_id, keep_ids=keep_ids, seed=seed,
                  batch_size=batch_size, shap_compatible=True)
    if n_samples is not None:
        ours = lambda: token_shap(model, ids, mask, n_samples=n_samples, **common).attributions  # noqa: E731
        setting, library = f"KernelSHAP {n_samples} coalitions", "KernelExplainer"
    else:
        ours = lambda: token_permutation_shap(model, ids, mask, n_permutations=n_permutations,  # noqa: E731
                                              **common).attributions
        setting, library = f"permutation SHAP {n_permutations} orders + reverses", "PermutationExplainer"
    seconds, out = alternate({
        "bigtut": ours,
        "shap": lambda: _shap_one_by_one(model, ids, mask, targets, keep_ids, absent, mask_id, pad_id,
                                         batch_size=batch_size, seed=seed, n_samples=n_samples,
                                         n_permutations=n_permutations)}, repeats)
    return (f"token {setting} vs shap {library}, {name} float64, {B} texts x {L} tokens, absent={absent!r}, "
            f"{batch_size} rows per call",
            seconds["bigtut"], seconds["shap"], float(np.abs(out["bigtut"] - out["shap"]).max()))


def token_shap_rows(repeats: int) -> list:
    """Token SHAP (``token_shap``, ``token_permutation_shap``) vs shap 0.51's ``KernelExplainer`` and
    ``PermutationExplainer`` on the token-presence game, on the course's docstring BERT (2x64, word pieces) and
    GPT classifier (4x128, characters), both in float64, the first 8 test docstrings encoded as in
    :func:`token_lime_rows`: BERT ``[CLS]`` + up to 46 word pieces + ``[SEP]``, GPT a newline + up to 47
    characters (newlines -> spaces), padded to 48; the players are every real token but ``[CLS]``/``[SEP]`` (BERT)
    or the leading newline (GPT). Target: each text's predicted class (its logit).

    Both sides get the same model, seed 0, the same rows per model call (512; 64 in one row) and the same
    coalitions. Ours draws shap's own (``shap_compatible=True``) in ONE call on the 8 texts: each text's perturbed
    texts built at once, grouped by length (a model call is cut to its longest text), identical ones run once,
    under ``torch.inference_mode``. shap: the explainer on each text in turn over a model function as a user
    writes it (presence masks -> the text with the absent tokens deleted, or replaced by ``[MASK]``; chunks of
    the same size in shap's order, each padded to its longest text; ``torch.no_grad``). KernelExplainer:
    ``l1_reg=False``, ``np.random.seed(0)`` before each text, background ``np.zeros((1, m))``, ``x = np.ones(m)``;
    2140 coalitions (= 2·46 + 2048, its "auto" budget for 46 players) on the BERT, 600 on the GPT (several times
    slower per token). PermutationExplainer: ``seed=0``, masker ``(mask, x) -> x * mask``, ``max_evals =
    P (2m + 1)``, 10 orders on the BERT, 6 on the GPT, its ``batch_size`` set to the same size (its own default
    sends 10 rows per call).

    absent="delete" rows (one repeated at 64 rows per call: smaller calls run faster per token on this CPU, shap's
    full-width chunks most), and one absent="mask" row (every text keeps its length there, so ours cannot gain
    from shorter rows, only from running repeated texts once).
    """
    batch_size, seed = 512, 0
    bert, gpt, vocab, newline, gpt_pad, bert_ids, bert_lengths, gpt_ids, gpt_lengths = _token_benchmark_texts(False)
    bert_case = ("BERT 2x64", bert, bert_ids, bert_lengths, (vocab.cls_id, vocab.sep_id), vocab.pad_id)
    gpt_case = ("GPT classifier 4x128", gpt, gpt_ids, gpt_lengths, (newline,), gpt_pad)
    options = dict(batch_size=batch_size, seed=seed, repeats=repeats)
    return [_shap_case(*bert_case, "delete", None, n_samples=2140, **options),
            _shap_case(*bert_case, "delete", None, n_samples=2140, **{**options, "batch_size": 64}),
            _shap_case(*bert_case, "delete", None, n_permutations=10, **options),
            _shap_case(*gpt_case, "delete", None, n_samples=600, **options),
            _shap_case(*gpt_case, "delete", None, n_permutations=6, **options),
            _shap_case(*bert_case, "mask", vocab.mask_id, n_samples=2140, **options)]


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
