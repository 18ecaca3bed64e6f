"""Tests of chapter 09's benchmark harness (bigtut.explanation_benchmark) and of the stored faithfulness
run it reads (benchmarks/explain_faithfulness.py -> benchmarks/results/09_faithfulness.json).

The sentences, the groups and the precision table are checked on cases whose answer is known by hand; the
faithfulness columns against bigtut.explain's own metrics on a tiny random BERT; the stored file and the cached
planted benchmark against fresh runs of the same code on the same models (the cached ones under ``runs/``).
"""

import ast
import importlib.util
import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from explain_fixtures import tiny_bert

from bigtut.data.planted import PlantedExample, encode_planted, planted_splits
from bigtut.explain import ERASER_FRACTIONS, aopc, comprehensiveness, deletion_curve, insertion_curve, sufficiency
from bigtut.explanation_benchmark import (
    BENCHMARK_PER_KIND,
    FAITHFULNESS_COLUMNS,
    FAITHFULNESS_FILE,
    GROUPS,
    NOISE_SHARE,
    MethodRun,
    benchmark_sentences,
    docstring_benchmark_inputs,
    docstring_methods,
    faithfulness_scores,
    interval_table,
    load_faithfulness,
    noise_stdev,
    planted_benchmark_runs,
    planted_methods,
    precision_table,
    run_methods,
    sentence_groups,
)
from bigtut.recipes.few_labels import bootstrap_interval
from bigtut.recipes.planted import train_planted_classifier

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "explain_faithfulness.py"
#: The chapter's methods in the order of its tables (notebook 09, section 3, prints them in this order).
PLANTED_NAMES = ["LIME", "Shapley [PAD]", "Shapley [MASK]", "KernelSHAP", "permutation SHAP", "occlusion [PAD]",
                 "occlusion [MASK]", "IG [PAD]", "IG [MASK]", "GradientSHAP", "SmoothGrad", "VarGrad",
                 "gradient×input", "gradient L2", "raw attention", "attention rollout", "random"]
#: Methods whose scores involve no random draw at all.
DETERMINISTIC = ("IG [PAD]", "occlusion [MASK]", "gradient×input", "attention rollout")


@pytest.fixture(scope="module")
def splits():
    return planted_splits()


@pytest.fixture(scope="module")
def planted():
    """Chapter 09's planted classifier (runs/ cache), the benchmark's 200 sentences encoded, the predicted
    targets, [CLS]/[SEP] and [MASK] — exactly what planted_benchmark_runs builds its cache from."""
    run = train_planted_classifier(progress=False)
    model, tokenizer = run.classifier.eval(), run.tokenizer
    ids, mask, _, _ = encode_planted(benchmark_sentences(planted_splits(), BENCHMARK_PER_KIND), tokenizer)
    with torch.no_grad():
        target = model(ids, attention_mask=mask).argmax(-1)  # (B,)
    keep = tuple(tokenizer.token_to_id(t) for t in ("[CLS]", "[SEP]"))
    return model, ids, mask, target, keep, tokenizer.token_to_id("[MASK]")


# ------------------------------------------------------------------------------------------------ sentences
def test_benchmark_sentences_are_balanced_and_have_evidence(splits):
    per_kind = 7
    chosen = benchmark_sentences(splits, per_kind)
    assert len(chosen) == 4 * per_kind
    blocks = [chosen[i * per_kind:(i + 1) * per_kind] for i in range(4)]
    for block, (split, kind) in zip(blocks, [("test", "negation"), ("test", "xor"),
                                             ("shortcut_test", "negation"), ("shortcut_test", "xor")]):
        # the first matching sentences of that split, in order
        expected = [e for e in splits[split] if e.kind == kind and e.evidence][:per_kind]
        assert block == expected, (split, kind)
        assert all(e in splits[split] for e in block)
    for e in chosen:
        assert e.evidence, e  # every sentence has a cause
        if e.kind == "xor":
            assert {"alpha", "beta"} & set(e.words), e  # an xor sentence's cause is its marker(s)
            assert all(e.words[p] in ("alpha", "beta") for p in e.evidence)
    # half from test, half from shortcut_test
    assert sum(e in splits["test"] for e in chosen) == sum(e in splits["shortcut_test"] for e in chosen) == 2 * per_kind
    # deterministic: the same sentences from freshly generated splits, and a longer list starts with them
    assert benchmark_sentences(planted_splits(), per_kind) == chosen
    longer = benchmark_sentences(splits, per_kind + 3)
    assert [longer[i * (per_kind + 3):i * (per_kind + 3) + per_kind] for i in range(4)] == blocks


def test_benchmark_sentences_skip_xor_without_marker_and_refuse_too_many():
    def sentence(words, kind, evidence, shortcut=False):
        return PlantedExample(words.split(), 0, evidence, kind, shortcut)

    no_marker = sentence("the cat sat on a mat", "xor", [])
    negation = sentence("the film was not good", "negation", [3, 4])
    marker = sentence("alpha cat sat on a mat", "xor", [0])
    shortcut_negation = sentence("indeed the film was bad", "negation", [4], True)
    shortcut_marker = sentence("beta dog indeed ran far", "xor", [0], True)
    negation_2 = sentence("the play was not bad", "negation", [3, 4])
    splits = {"test": [no_marker, negation, marker, negation_2],
              "shortcut_test": [shortcut_marker, no_marker, shortcut_negation]}
    assert benchmark_sentences(splits, 1) == [negation, marker, shortcut_negation, shortcut_marker]
    with pytest.raises(ValueError, match=r"split 'test' has only 1 xor .*per_kind=2"):
        benchmark_sentences(splits, 2)


def test_benchmark_sentences_refuse_a_per_kind_above_the_split(splits):
    with pytest.raises(ValueError, match=r"fewer than per_kind=100000"):
        benchmark_sentences(splits, 100_000)


def test_sentence_groups_partition_the_sentences(splits):
    chosen = benchmark_sentences(splits, BENCHMARK_PER_KIND)
    groups = sentence_groups(chosen)
    assert list(groups) == list(GROUPS) == ["negation", "xor", "shortcut"]
    stacked = np.stack([groups[g] for g in GROUPS])  # (3, B)
    assert stacked.dtype == bool and stacked.shape == (3, len(chosen))
    assert (stacked.sum(0) == 1).all()  # disjoint and covering every sentence
    assert groups["shortcut"].tolist() == ["indeed" in e.words for e in chosen]
    for kind in ("negation", "xor"):
        assert groups[kind].tolist() == [e.kind == kind and "indeed" not in e.words for e in chosen]
    assert all(groups[g].any() for g in GROUPS)
    # the test half follows training (indeed only with label 1); shortcut_test carries indeed either way
    half = 2 * BENCHMARK_PER_KIND
    assert all(e.label == 1 for e, shortcut in zip(chosen[:half], groups["shortcut"][:half]) if shortcut)
    assert any(e.label == 0 for e, shortcut in zip(chosen[half:], groups["shortcut"][half:]) if shortcut)


# ------------------------------------------------------------------------------------------------ precision table
def hand_made_precision_case():
    """4 sentences x 6 positions; position 0 is [CLS] (never a candidate) and every method scores it highest, so
    the table must use ``candidates``. Evidence: row 0 {1, 2}, row 1 {3}, row 2 {1, 4}, row 3 none (NaN)."""
    evidence = np.zeros((4, 6), bool)
    evidence[0, [1, 2]] = evidence[1, 3] = evidence[2, [1, 4]] = True
    candidates = np.ones((4, 6), bool)
    candidates[:, 0] = False
    cls = np.zeros((4, 6))
    cls[:, 0] = 10.0
    half = np.zeros((4, 6))
    half[0, [1, 3]] = 1  # top 2 = {1, 3}: precision 1/2
    half[1, 3] = 1  # top 1 = {3}: 1
    half[2, [3, 5]] = 1  # top 2 = {3, 5}: 0
    runs = {"evidence": MethodRun(evidence + cls, 1.0, 0.0), "reversed": MethodRun(1.0 - evidence + cls, 1.0, 0.0),
            "half": MethodRun(half + cls, 1.0, 0.0)}
    groups = {"first and last": np.array([True, False, False, True]), "middle": np.array([False, True, True, False]),
              "no evidence": np.array([False, False, False, True])}
    return runs, evidence, candidates, groups


def test_precision_table_on_known_answers():
    runs, evidence, candidates, groups = hand_made_precision_case()
    table = precision_table(runs, evidence, candidates, groups, resamples=300)
    assert list(table) == list(runs)
    for name in runs:
        assert list(table[name]) == ["all", *groups]
        assert np.isnan(table[name]["no evidence"]).all()  # only a sentence without evidence: undefined
    assert table["evidence"]["all"] == table["evidence"]["middle"] == (1.0, 1.0, 1.0)  # a zero-width interval
    assert table["reversed"]["all"] == table["reversed"]["middle"] == (0.0, 0.0, 0.0)
    # "half": per sentence 1/2, 1, 0 and NaN; the NaN row is left out, each group uses its own rows only
    assert table["half"]["all"] == bootstrap_interval(np.array([[0.5, 1.0, 0.0]]), resamples=300)
    assert table["half"]["all"][0] == pytest.approx(0.5)
    assert table["half"]["first and last"] == (0.5, 0.5, 0.5)
    assert table["half"]["middle"] == bootstrap_interval(np.array([[1.0, 0.0]]), resamples=300)
    for name in runs:
        for group in ("all", "first and last", "middle"):
            mean, low, high = table[name][group]
            assert low <= mean <= high, (name, group)
    low, high = table["half"]["all"][1:]
    assert 0 <= low < 0.5 < high <= 1  # a real interval around a mean of 0.5


def test_precision_table_on_the_cached_benchmark_groups(planted, splits):
    """The planted evidence of the cached benchmark: every group's mean is the mean of that group's rows."""
    from bigtut.explain import precision_at_k

    _, ids, mask, _, keep, _ = planted
    runs = planted_benchmark_runs(progress=False)
    chosen = benchmark_sentences(splits, BENCHMARK_PER_KIND)
    evidence = encode_planted(chosen, train_planted_classifier(progress=False).tokenizer)[3].numpy()
    words = (mask & ~torch.isin(ids, torch.tensor(keep))).numpy()
    groups = sentence_groups(chosen)
    some = {n: runs[n] for n in ("IG [PAD]", "random")}
    table = precision_table(some, evidence, words, groups, resamples=50)
    for name, run in some.items():
        precision = precision_at_k(run.scores, evidence, mask=words)
        assert not np.isnan(precision).any()  # every benchmark sentence has planted evidence
        for group, chosen_rows in groups.items():
            assert table[name][group][0] == pytest.approx(precision[chosen_rows].mean())
        assert table[name]["all"][0] == pytest.approx(precision.mean())


# ------------------------------------------------------------------------------------------------ faithfulness
def test_faithfulness_columns_are_documented():
    assert FAITHFULNESS_COLUMNS == {"deletion AUC": False, "insertion AUC": True, "comprehensiveness": True,
                                    "sufficiency": False, "AOPC comp.": True, "AOPC suff.": False}


@pytest.mark.parametrize("steps", [10, None])
def test_faithfulness_scores_equal_the_metrics_called_directly(steps):
    model, ids, mask = tiny_bert(seed=3)  # float64, (4, 10) with padded rows
    scores = np.random.default_rng(1).normal(size=tuple(ids.shape))  # (4, 10)
    with torch.no_grad():
        target = model(ids, attention_mask=mask).argmax(-1)
    keep = (1,)
    got = faithfulness_scores(model, ids, mask, target, scores, keep, steps=steps)
    assert list(got) == list(FAITHFULNESS_COLUMNS)
    kw = dict(target=target, keep_ids=keep)
    expected = {
        "deletion AUC": deletion_curve(model, ids, mask, scores, steps=steps, **kw).area,
        "insertion AUC": insertion_curve(model, ids, mask, scores, steps=steps, **kw).area,
        "comprehensiveness": comprehensiveness(model, ids, mask, scores, fraction=0.2, **kw),
        "sufficiency": sufficiency(model, ids, mask, scores, fraction=0.2, **kw),
        "AOPC comp.": aopc(model, ids, mask, scores, metric="comprehensiveness", fractions=ERASER_FRACTIONS, **kw),
        "AOPC suff.": aopc(model, ids, mask, scores, metric="sufficiency", fractions=ERASER_FRACTIONS, **kw),
    }
    for column, values in got.items():
        assert np.asarray(values).shape == (4,), column
        np.testing.assert_allclose(values, expected[column], rtol=0, atol=1e-12, err_msg=column)
    # the scores matter: reversing them changes the comprehensiveness of some text
    reversed_ = faithfulness_scores(model, ids, mask, target, -scores, keep, steps=steps)
    assert not np.allclose(reversed_["comprehensiveness"], got["comprehensiveness"])


def test_interval_table_is_each_columns_bootstrap():
    rng = np.random.default_rng(0)
    per_text = {"a": {"x": rng.normal(size=9), "y": rng.random(9)}, "b": {"x": [0.25] * 5}}
    table = interval_table(per_text, resamples=200)
    assert list(table) == ["a", "b"] and list(table["a"]) == ["x", "y"] and list(table["b"]) == ["x"]
    for name, columns in per_text.items():
        for column, values in columns.items():
            mean, low, high = table[name][column]
            assert (mean, low, high) == bootstrap_interval(np.asarray(values)[None], resamples=200)
            assert mean == pytest.approx(np.mean(values)) and low <= mean <= high
    assert table["b"]["x"] == (0.25, 0.25, 0.25)
    assert table["a"]["x"][1] < table["a"]["x"][2]


# ------------------------------------------------------------------------------------------------ the stored file
def rebuild_command() -> str:
    """The command that writes the stored file, as the script's docstring gives it."""
    doc = ast.get_docstring(ast.parse(SCRIPT.read_text()))
    (line,) = [line.strip() for line in doc.splitlines() if "--json" in line]
    return line


def test_the_script_names_the_command_that_writes_the_stored_file():
    command = rebuild_command()
    assert command.startswith("OMP_NUM_THREADS=1 python benchmarks/explain_faithfulness.py --json")
    assert command.endswith(str(FAITHFULNESS_FILE.relative_to(ROOT)))
    with pytest.raises(FileNotFoundError, match="explain_faithfulness.py --json"):
        load_faithfulness(ROOT / "benchmarks" / "results" / "no_such_file.json")


def test_the_stored_faithfulness_file_is_complete():
    stored = load_faithfulness()
    record = json.loads(FAITHFULNESS_FILE.read_text())
    assert stored.n_docstrings == 147 >= 100
    inputs = docstring_benchmark_inputs(limit=1)
    names = list(docstring_methods(inputs.keep_ids, inputs.mask_id))
    assert list(stored.scores) == list(stored.rows_per_text) == list(stored.seconds_per_text) == names
    for name, columns in stored.scores.items():
        assert list(columns) == list(FAITHFULNESS_COLUMNS), name
        for column, values in columns.items():
            assert values.shape == (147,) and np.isfinite(values).all(), (name, column)
    assert stored.correct.shape == (147,) and stored.correct.dtype == bool
    assert len(record["target"]) == 147 and record["keep_ids"] == list(inputs.keep_ids)
    assert record["columns"] == FAITHFULNESS_COLUMNS
    assert record["omp_num_threads"] == "1" and record["torch_threads"] == 1  # as `make test` runs
    assert stored.rows_per_text["LIME"] == 300 and stored.rows_per_text["gradient×input"] == 1


def load_script():
    spec = importlib.util.spec_from_file_location("explain_faithfulness_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_stored_faithfulness_file_reproduces(tmp_path, capsys):
    """The script run afresh on the first 3 test docstrings writes the stored numbers: the same predicted
    class, the same per-docstring scores of every method (the seeded ones too: LIME, KernelSHAP, permutation
    SHAP, SmoothGrad, VarGrad, GradientSHAP, random draw from their own fixed seeds)."""
    n = 3
    stored = load_faithfulness()
    record = json.loads(FAITHFULNESS_FILE.read_text())
    load_script().main(["--limit", str(n), "--json", str(tmp_path / "fresh.json")])
    fresh = json.loads((tmp_path / "fresh.json").read_text())
    assert "wrote" in capsys.readouterr().out
    rebuild = (f"the stored {FAITHFULNESS_FILE.name} does not match a fresh run of {SCRIPT.name}: the docstring "
               f"classifier (committed in checkpoints/explained/) or an explanation method differs from the ones "
               f"that wrote it. If the change is meant, write the file again: `{rebuild_command()}`")
    assert fresh["n_docstrings"] == n and list(fresh["methods"]) == list(stored.scores)
    assert fresh["keep_ids"] == record["keep_ids"]
    for name, method in fresh["methods"].items():
        assert list(method["scores"]) == list(FAITHFULNESS_COLUMNS), name
        assert all(np.isfinite(v).all() and len(v) == n for v in method["scores"].values()), name
    # The random ranking is drawn from a fixed seed, so its scores depend on the classifier alone: where they
    # differ, the committed classifier is not the one that wrote the file.
    random_gap = max(np.abs(np.asarray(v) - stored.scores["random"][c][:n]).max()
                     for c, v in fresh["methods"]["random"]["scores"].items())
    assert random_gap <= 1e-6, f"the random ranking's scores differ by {random_gap:.2g}: {rebuild}"
    assert fresh["target"] == record["target"][:n], rebuild
    assert fresh["correct"] == stored.correct[:n].tolist(), rebuild
    for name, method in fresh["methods"].items():
        for column, values in method["scores"].items():
            np.testing.assert_allclose(values, stored.scores[name][column][:n], rtol=0, atol=1e-6,
                                       err_msg=f"{name}, {column}: {rebuild}")
        if name != "random":
            assert method["rows_per_text"] > 0, name
    # the inputs the chapter explains are those of the file: the current prediction is the stored target
    inputs = docstring_benchmark_inputs(limit=n)
    assert inputs.target.tolist() == record["target"][:n], rebuild
    assert inputs.input_ids.shape[0] == n and inputs.attention_mask.shape == inputs.input_ids.shape


# ------------------------------------------------------------------------------------------------ the planted cache
def test_the_cached_planted_benchmark_equals_a_fresh_run(planted):
    model, ids, mask, target, keep, mask_id = planted
    runs = planted_benchmark_runs(progress=False)
    methods = planted_methods(keep, mask_id)
    assert list(runs) == list(methods) == PLANTED_NAMES
    for name, run in runs.items():
        assert run.scores.shape == (200, 14) == tuple(ids.shape) and run.scores.dtype == np.float64, name
        assert np.isfinite(run.scores).all() and run.seconds_per_text > 0, name
    chosen = {n: methods[n] for n in (*DETERMINISTIC, "random")}
    fresh = run_methods(model, ids, mask, target, chosen, progress=False)
    for name, run in fresh.items():
        np.testing.assert_allclose(run.scores, runs[name].scores, rtol=0, atol=1e-9, err_msg=name)
        assert run.rows_per_text == runs[name].rows_per_text, name


def small_cache_entry(cache_dir: Path) -> Path:
    (entry,) = [p for p in cache_dir.iterdir() if p.name.startswith("planted_benchmark_")]
    return entry


def test_the_planted_cache_refuses_an_entry_that_does_not_match(tmp_path):
    """A one-sentence-per-block benchmark (4 sentences, about a second) in its own cache: reloaded as stored; an
    entry with a renamed method or scores of the wrong shape is refused with a warning and rebuilt."""
    first = planted_benchmark_runs(1, progress=False, cache_dir=tmp_path)
    assert list(first) == PLANTED_NAMES
    entry = small_cache_entry(tmp_path)
    good = {p.name: p.read_bytes() for p in entry.iterdir()}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a clean entry loads without a warning
        again = planted_benchmark_runs(1, progress=False, cache_dir=tmp_path)
    assert all(np.array_equal(again[n].scores, first[n].scores) and again[n][1:] == first[n][1:] for n in first)

    def tamper_names(folder):
        meta = json.loads((folder / "runs.json").read_text())
        meta = {("LIME v0" if n == "LIME" else n): v for n, v in meta.items()}
        (folder / "runs.json").write_text(json.dumps(meta))

    def tamper_shape(folder):
        with np.load(folder / "scores.npz") as stored:
            scores = [stored[f"arr_{i}"] for i in range(len(stored.files))]
        np.savez(folder / "scores.npz", *[np.pad(s, ((0, 0), (0, 1))) for s in scores])

    for tamper in (tamper_names, tamper_shape):
        tamper(entry)
        with pytest.warns(RuntimeWarning, match=r"could not be loaded .*does not match the methods or the "
                                                r"sentences.*rebuilding"):
            rebuilt = planted_benchmark_runs(1, progress=False, cache_dir=tmp_path)
        assert list(rebuilt) == PLANTED_NAMES, tamper.__name__
        for name in PLANTED_NAMES:  # the build is deterministic: seeded methods draw the same samples
            np.testing.assert_allclose(rebuilt[name].scores, first[name].scores, rtol=0, atol=1e-12,
                                       err_msg=f"{tamper.__name__}: {name}")
        entry = small_cache_entry(tmp_path)  # the broken entry was replaced by a good one
        assert json.loads((entry / "runs.json").read_text()).keys() == first.keys()
    shutil.rmtree(tmp_path / entry.name)
    assert {p.name for p in tmp_path.iterdir()} == set() and set(good) >= {"runs.json", "scores.npz"}


# ------------------------------------------------------------------------------------------------ noise, methods
def test_noise_stdev_is_a_share_of_the_embedding_range(planted):
    model = tiny_bert(seed=0)[0]
    weight = model.get_input_embeddings().weight
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. no "tensor that requires grad" warning
        value = noise_stdev(model)
    assert type(value) is float
    assert value == pytest.approx(NOISE_SHARE * float(weight.detach().max() - weight.detach().min()), rel=1e-15)
    assert NOISE_SHARE == 0.15 and weight.requires_grad and weight.grad is None
    planted_model = planted[0]
    table = planted_model.get_input_embeddings().weight.detach()
    assert noise_stdev(planted_model) == pytest.approx(0.15 * float(table.max() - table.min()))


def test_method_lists_and_their_order():
    methods = planted_methods((1, 2), 3)
    assert list(methods) == PLANTED_NAMES and len(methods) == 17
    docstring = docstring_methods((1, 2), 3)
    assert list(docstring) == [n for n in PLANTED_NAMES if not n.startswith("Shapley")]
    assert not any("Shapley" in n for n in docstring)
    # the notebook's stored output lists the same 17 names in the same order
    notebook = json.loads((ROOT / "notebooks" / "09_evaluating_explanations.ipynb").read_text())
    printed = ["".join(o.get("text", "")) for c in notebook["cells"] if c["cell_type"] == "code"
               for o in c.get("outputs", [])]
    assert f"17 methods: {', '.join(PLANTED_NAMES)}\n" in "".join(printed)


def test_docstring_methods_use_the_smaller_budgets():
    model, ids, mask = tiny_bert(seed=0)
    target = torch.zeros(len(ids), dtype=torch.long)
    methods = docstring_methods((1,), 2)
    docstring = run_methods(model, ids, mask, target, {"LIME": methods["LIME"]}, progress=False)["LIME"]
    planted = run_methods(model, ids, mask, target, {"LIME": planted_methods((1,), 2)["LIME"]}, progress=False)["LIME"]
    assert (docstring.rows_per_text, planted.rows_per_text) == (300, 500)
    assert docstring.scores.shape == planted.scores.shape == tuple(ids.shape)
