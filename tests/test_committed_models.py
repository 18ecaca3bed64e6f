"""The explained models committed in ``checkpoints/explained/``: one per recipe of ``EXPLAINED_RECIPES``, under the
key the current source gives it, loaded without training; and the smallest recipe, retrained here, reproduces what
its committed copy stored.

When a test here fails after an edit to the training code, rebuild them with
``OMP_NUM_THREADS=1 python -m bigtut.recipes.checkpoints explained`` (about 5 minutes on a 2-core CPU), then
re-execute notebooks 04-11 and run ``make claims``.
"""

import json

import pytest
import torch

import bigtut.recipes.bert
import bigtut.recipes.gpt
import bigtut.recipes.planted
import bigtut.recipes.retrieval
from bigtut.recipes import build_explanation_models, train_planted_classifier
from bigtut.recipes.cache import COMMITTED_DIR, EXPLAINED_RECIPES, cache_folder, committed_dir, load_or_build

REBUILD = "OMP_NUM_THREADS=1 python -m bigtut.recipes.checkpoints explained"


def committed_entries():
    return sorted(p for p in COMMITTED_DIR.iterdir() if p.is_dir())


def test_one_committed_entry_per_explained_recipe_and_nothing_stale():
    names = sorted(p.name.rsplit("_", 1)[0] for p in committed_entries())
    assert names == sorted(EXPLAINED_RECIPES), f"committed: {names}; rebuild with `{REBUILD}`"
    for entry in committed_entries():
        recipe = json.loads((entry / "recipe.json").read_text())
        assert entry == COMMITTED_DIR / cache_folder(recipe["recipe"], recipe["fields"], COMMITTED_DIR).name, (
            f"{entry.name} was built by other code than this (its key is stale); rebuild with `{REBUILD}`")
    size = sum(f.stat().st_size for f in COMMITTED_DIR.rglob("*") if f.is_file())
    assert size < 15_000_000, f"{size / 1e6:.1f} MB committed"


def test_the_explained_models_load_without_training(tmp_path, monkeypatch):
    """Every recipe ``make models`` runs finds its committed entry: none builds, even with an empty ``runs/``."""
    monkeypatch.setenv("BIGTUT_RUNS", str(tmp_path))
    monkeypatch.delenv("BIGTUT_COMMITTED", raising=False)
    loaded = []

    def no_training(name, fields, build, save, load, **kwargs):
        def refuse():
            raise AssertionError(f"{name} would be trained: no committed entry for its current key; "
                                 f"rebuild with `{REBUILD}`")

        loaded.append(name)
        return load_or_build(name, fields, refuse, save, load, **kwargs)

    for module in (bigtut.recipes.bert, bigtut.recipes.gpt, bigtut.recipes.planted, bigtut.recipes.retrieval):
        monkeypatch.setattr(module, "load_or_build", no_training)
    build_explanation_models(device="cpu", progress=False)
    assert sorted(loaded) == sorted(EXPLAINED_RECIPES)
    assert not any(tmp_path.iterdir())  # nothing was written to the cache


def test_the_committed_directory_can_be_switched_off(monkeypatch, tmp_path):
    assert committed_dir() == COMMITTED_DIR
    monkeypatch.setenv("BIGTUT_COMMITTED", "")
    assert committed_dir() is None
    monkeypatch.setenv("BIGTUT_COMMITTED", str(tmp_path))
    assert committed_dir() == tmp_path


def test_a_broken_committed_entry_warns_and_falls_back(tmp_path, monkeypatch):
    committed, runs = tmp_path / "committed", tmp_path / "runs"
    monkeypatch.setenv("BIGTUT_COMMITTED", str(committed))
    monkeypatch.setenv("BIGTUT_RUNS", str(runs))
    (committed / cache_folder("toy", {"a": 1}, committed).name).mkdir(parents=True)

    def load(folder):
        return json.loads((folder / "value.json").read_text())  # the committed folder has no value.json

    with pytest.warns(RuntimeWarning, match="committed toy"):
        got = load_or_build("toy", {"a": 1}, lambda: 7, lambda v, f: (f / "value.json").write_text("7"), load)
    assert got == 7 and (runs / cache_folder("toy", {"a": 1}, runs).name / "value.json").is_file()


def test_the_planted_recipe_reproduces_its_committed_model():
    """Retrained here (about half a minute), chapter 09's classifier makes the committed run's first losses and
    scores. Another CPU sums in another order: the losses agree to float rounding at first and drift later, so the
    first 20 are compared to 1e-4 relative and the accuracies to a few sentences."""
    committed = train_planted_classifier(device="cpu", progress=False)  # the committed entry
    fresh = train_planted_classifier(device="cpu", progress=False, reuse=False, save=False)
    torch.testing.assert_close(torch.tensor(fresh.history.train_loss[:20]),
                               torch.tensor(committed.history.train_loss[:20]), rtol=1e-4, atol=0)
    assert abs(fresh.test_accuracy - committed.test_accuracy) <= 0.01
    assert abs(fresh.shortcut_test_accuracy - committed.shortcut_test_accuracy) <= 0.02
    assert fresh.scores["shortcut_test_groups"]["label 0, with indeed"] < 0.05  # the shortcut wins, here too
