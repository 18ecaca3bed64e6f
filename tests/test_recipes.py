"""Tests of bigtut.recipes: deterministic recipes, and a runs/ cache that cannot go stale — keyed by every
source file of the package, written atomically, rebuilt with a warning when an entry does not load."""

import json
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

import bigtut
from bigtut.bert import classify
from bigtut.gpt import GPTConfig
from bigtut.recipes import (
    BertRecipe,
    cache_folder,
    cache_key,
    load_or_build,
    pretrain_char_gpt,
    source_fingerprint,
    train_bert_docstring_classifier,
    train_gpt_docstring_classifier,
)
from bigtut.recipes import cache as cache_module
from bigtut.recipes.cache import NOT_TRAINING, write_atomically

PACKAGE = Path(bigtut.__file__).resolve().parent
TINY = BertRecipe(vocab_size=300, d_model=16, num_heads=2, d_ff=32, num_layers=1, max_len=48, pretrain_steps=3,
                  pretrain_batch=4, finetune_steps=3, finetune_batch=4)


# ------------------------------------------------------------------------------------------- fingerprint
@pytest.fixture
def package_copy(tmp_path):
    copy = tmp_path / "bigtut"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def test_fingerprint_covers_every_module(package_copy):
    original = source_fingerprint(package_copy)
    assert original == source_fingerprint(PACKAGE) and len(original) == 16
    modules = sorted(m for m in package_copy.rglob("*.py")
                     if m.relative_to(package_copy).parts[0] not in NOT_TRAINING)
    assert len(modules) > 30
    seen = {original}
    for module in modules:  # an edit to any one module gives a new fingerprint
        text = module.read_text()
        module.write_text(text + "\n# edited\n")
        seen.add(source_fingerprint(package_copy))
        module.write_text(text)
    assert len(seen) == len(modules) + 1
    assert source_fingerprint(package_copy) == original  # undone edits give the old one back


def test_fingerprint_leaves_out_only_what_no_recipe_imports(package_copy):
    """Editing an explanation, a checker or a picture does not retrain: no recipe (nor anything it imports) loads
    those modules, so they cannot change what a recipe builds."""
    original = source_fingerprint(package_copy)
    for part in NOT_TRAINING:
        assert (package_copy / part).exists(), part
        for module in [package_copy / part] if part.endswith(".py") else sorted((package_copy / part).rglob("*.py")):
            text = module.read_text()
            module.write_text(text + "\n# edited\n")
            assert source_fingerprint(package_copy) == original, module
            module.write_text(text)
    code = ("import sys, bigtut.recipes, bigtut.recipes.__main__, bigtut.recipes.checkpoints; "
            "print(sorted(m for m in sys.modules if m.startswith('bigtut.')))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    for part in NOT_TRAINING:
        assert f"'bigtut.{part.removesuffix('.py')}" not in loaded, part


def test_fingerprint_sees_new_and_renamed_files_but_not_bytecode(package_copy):
    original = source_fingerprint(package_copy)
    (package_copy / "__pycache__").mkdir()
    (package_copy / "__pycache__" / "runtime.cpython-311.pyc").write_bytes(b"\0")
    (package_copy / "data" / "stale.pyc").write_bytes(b"\0")
    assert source_fingerprint(package_copy) == original
    (package_copy / "data" / "extra.py").write_text("X = 1\n")
    assert source_fingerprint(package_copy) != original
    (package_copy / "data" / "extra.py").unlink()
    (package_copy / "plots.py").rename(package_copy / "plotting.py")
    assert source_fingerprint(package_copy) != original
    with pytest.raises(FileNotFoundError):
        source_fingerprint(package_copy / "missing")


def test_an_imported_copy_fingerprints_itself(package_copy):
    """Python imports bigtut from the copy: its default fingerprint (and cache key) follows an edit of it."""
    code = ("import bigtut.recipes as r, bigtut; "
            "print(bigtut.__file__); print(r.source_fingerprint()); print(r.cache_key('x', {}))")

    def run():
        out = subprocess.run([sys.executable, "-c", code], cwd=package_copy.parent, capture_output=True, text=True,
                             check=True, env={"PYTHONPATH": str(package_copy.parent), "PATH": ""}).stdout.split()
        assert Path(out[0]).resolve().parent == package_copy.resolve()
        return out[1:]

    before = run()
    target = package_copy / "tokenizers.py"
    target.write_text(target.read_text().replace("class ", "class  ", 1))
    after = run()
    assert before[0] != after[0] and before[1] != after[1]


# ------------------------------------------------------------------------------------------- cache key
def test_cache_key_covers_fields_versions_and_source(tmp_path, monkeypatch):
    fields = {"seed": 0, "steps": 3}
    key = cache_key("demo", fields)
    assert key == cache_key("demo", dict(fields)) and cache_folder("demo", fields, tmp_path).parent == tmp_path
    assert cache_key("demo", {**fields, "seed": 1}) != key
    assert cache_key("other", fields) != key
    monkeypatch.setattr(bigtut, "__version__", bigtut.__version__ + ".post1")
    assert cache_key("demo", fields) != key
    monkeypatch.undo()
    monkeypatch.setattr(torch, "__version__", "0.0.1")
    assert cache_key("demo", fields) != key
    monkeypatch.undo()
    monkeypatch.setattr(cache_module, "source_fingerprint", lambda package_dir=None: "0badc0de0badc0de")
    assert cache_key("demo", fields) != key


# ------------------------------------------------------------------------------------------- load_or_build
def _counting_build(counter):
    def build():
        counter.append(1)
        return {"weights": torch.arange(6.0)}
    return build


def _save(value, folder):
    from safetensors.torch import save_file

    save_file(value, str(folder / "weights.safetensors"))


def _load(folder):
    from safetensors.torch import load_file

    value = load_file(str(folder / "weights.safetensors"))
    if set(value) != {"weights"}:
        raise KeyError(f"unexpected keys {sorted(value)}")
    return value


def test_load_or_build_reuses_then_rebuilds_broken_entries(tmp_path):
    builds = []
    args = ("demo", {"n": 6}, _counting_build(builds), _save, _load)
    first = load_or_build(*args, cache_dir=tmp_path)
    again = load_or_build(*args, cache_dir=tmp_path)
    assert len(builds) == 1 and torch.equal(first["weights"], again["weights"])
    folder = cache_folder("demo", {"n": 6}, tmp_path)
    assert json.loads((folder / "recipe.json").read_text()) == {"recipe": "demo", "fields": {"n": 6}}

    weights = folder / "weights.safetensors"
    for damage in ("truncate", "wrong keys", "missing"):
        if damage == "truncate":
            weights.write_bytes(weights.read_bytes()[:40])
        elif damage == "wrong keys":
            _save({"other": torch.zeros(2)}, folder)
        else:
            weights.unlink()
        with pytest.warns(RuntimeWarning, match="could not be loaded.*rebuilding"):
            rebuilt = load_or_build(*args, cache_dir=tmp_path)
        assert torch.equal(rebuilt["weights"], first["weights"])
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # the rebuilt entry loads cleanly
            assert torch.equal(load_or_build(*args, cache_dir=tmp_path)["weights"], first["weights"])
    assert len(builds) == 4
    assert [p.name for p in tmp_path.iterdir()] == [folder.name]  # no temporary folders left behind

    load_or_build(*args, cache_dir=tmp_path, reuse=False)  # reuse=False always builds ...
    load_or_build("demo", {"n": 7}, _counting_build(builds), _save, _load, cache_dir=tmp_path, store=False)
    assert len(builds) == 6 and len(list(tmp_path.iterdir())) == 1  # ... and store=False writes nothing


def test_write_atomically_leaves_nothing_half_written(tmp_path):
    def ours(tmp):
        (tmp / "weights.safetensors").write_text("ours")

    def crashes(tmp):
        ours(tmp)
        raise RuntimeError("disk full")

    target = tmp_path / "entry"
    with pytest.raises(RuntimeError, match="disk full"):
        write_atomically(target, crashes)
    assert list(tmp_path.iterdir()) == []
    target.mkdir()
    (target / "weights.safetensors").write_text("theirs")
    with pytest.raises(RuntimeError, match="disk full"):
        write_atomically(target, crashes, replace=True)
    assert (target / "weights.safetensors").read_text() == "theirs"  # a failed rebuild keeps the old entry
    assert write_atomically(target, ours) == target
    assert (target / "weights.safetensors").read_text() == "theirs"  # a complete entry is kept: readers never
    assert write_atomically(target, ours, replace=True) == target  # see it vanish, unless it is being rebuilt
    assert (target / "weights.safetensors").read_text() == "ours"
    assert list(tmp_path.iterdir()) == [target]


# ------------------------------------------------------------------------------------------- BERT recipe
def _same_weights(a, b):
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        torch.testing.assert_close(x, y, atol=0, rtol=0, msg=name)


def test_bert_recipe_is_deterministic_and_cached(tmp_path):
    first = train_bert_docstring_classifier(TINY, cache_dir=tmp_path, progress=False, device="cpu")
    again = train_bert_docstring_classifier(TINY, cache_dir=tmp_path, reuse=False, save=False, progress=False,
                                            device="cpu")
    loaded = train_bert_docstring_classifier(TINY, cache_dir=tmp_path, progress=False, device="cpu")
    assert len(list(tmp_path.iterdir())) == 1
    for other in (again, loaded):
        _same_weights(first.classifier, other.classifier)
        _same_weights(first.pretrainer, other.pretrainer)
        assert other.tokenizer.encode("socket()") == first.tokenizer.encode("socket()")
    assert not loaded.classifier.training
    assert loaded.histories["mlm"].train_loss == first.histories["mlm"].train_loss
    assert len(first.histories["finetune"].train_loss) == 3
    texts = ["Return the socket's file descriptor.", "x", "Compute the square root of x, a longer text here."]
    probs = classify(loaded.classifier, loaded.tokenizer, texts)
    assert probs.shape == (3, 7)
    torch.testing.assert_close(probs.sum(1), torch.ones(3))
    torch.testing.assert_close(classify(loaded.classifier, loaded.tokenizer, texts[1:2])[0], probs[1])  # padding


def test_bert_recipe_never_loads_stale_or_truncated_entries(tmp_path, monkeypatch):
    first = train_bert_docstring_classifier(TINY, cache_dir=tmp_path, progress=False, device="cpu")
    stale = next(tmp_path.iterdir())
    with torch.no_grad():  # poison the entry: loading it would give different weights
        for p in first.classifier.parameters():
            p.add_(1.0)
    bigtut.training.save_checkpoint(first.classifier, stale / "classifier.safetensors",
                                    {"recipe": {}, "histories": {"finetune": {}}})
    monkeypatch.setattr(cache_module, "source_fingerprint", lambda package_dir=None: "0badc0de0badc0de")
    fresh = train_bert_docstring_classifier(TINY, cache_dir=tmp_path, progress=False, device="cpu")
    folder = cache_folder("bert_docstrings", TINY.__dict__, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([stale.name, folder.name])
    reference = train_bert_docstring_classifier(TINY, cache_dir=tmp_path, reuse=False, save=False, progress=False,
                                                device="cpu")
    _same_weights(fresh.classifier, reference.classifier)  # trained by the new code, not read from the old entry

    checkpoint = folder / "classifier.safetensors"
    checkpoint.write_bytes(checkpoint.read_bytes()[: checkpoint.stat().st_size // 2])  # a crash mid-copy
    with pytest.warns(RuntimeWarning, match="rebuilding"):
        rebuilt = train_bert_docstring_classifier(TINY, cache_dir=tmp_path, progress=False, device="cpu")
    _same_weights(rebuilt.classifier, reference.classifier)
    _same_weights(train_bert_docstring_classifier(TINY, cache_dir=tmp_path, progress=False, device="cpu").classifier,
                  reference.classifier)


# ------------------------------------------------------------------------------------------- GPT recipes
def test_gpt_recipes_are_deterministic_smoke():
    config = GPTConfig(vocab_size=105, block_size=16, n_layer=1, n_head=2, d_model=16)
    runs = [pretrain_char_gpt(config, steps=3, batch_size=4, warmup_steps=1, eval_every=2, progress=False,
                              device="cpu") for _ in range(2)]
    assert runs[0].history.val_step == [2, 3]
    assert 0 < runs[0].val_bpc < 8 and runs[0].val_bpc == runs[1].val_bpc
    clfs = [train_gpt_docstring_classifier(runs[0], steps=2, batch_size=8, progress=False, device="cpu")
            for _ in range(2)]
    assert clfs[0].history.train_loss == clfs[1].history.train_loss
    assert clfs[0].test_accuracy == clfs[1].test_accuracy and 0 <= clfs[0].test_accuracy <= 1
    assert clfs[0].config["pretrained"] is True
    _same_weights(clfs[0].model, clfs[1].model)
    # fine-tuning works on a copy: the pretrained model is unchanged
    assert torch.equal(runs[0].model.tok_emb.weight, runs[1].model.tok_emb.weight)


def test_dates_recipe_is_deterministic_smoke():
    from bigtut.data import date_splits
    from bigtut.recipes import train_dates_transformer

    splits = date_splits(n_val=20, n_test=20)
    splits["train"] = splits["train"][:500]
    runs = [train_dates_transformer(steps=3, batch_size=8, warmup_steps=1, splits=splits, progress=False,
                                    device="cpu") for _ in range(2)]
    assert runs[0].history.train_loss == runs[1].history.train_loss and runs[0].history.val_step == [3]
    assert not runs[0].model.training and runs[0].model.config.pad_id == runs[0].tokenizer.token_to_id("<pad>")
    _same_weights(runs[0].model, runs[1].model)


def test_gpt_models_are_cached_and_reload_equal(tmp_path):
    from bigtut.recipes import load_or_train_gpt

    first = load_or_train_gpt(pretrain_steps=3, finetune_steps=2, cache_dir=tmp_path, progress=False, device="cpu")
    loaded = load_or_train_gpt(pretrain_steps=3, finetune_steps=2, cache_dir=tmp_path, progress=False, device="cpu")
    assert len(list(tmp_path.iterdir())) == 1
    _same_weights(first.language_model, loaded.language_model)
    _same_weights(first.classifier, loaded.classifier)
    assert not loaded.classifier.training and loaded.test_accuracy == first.test_accuracy
    assert loaded.histories["pretrain"].train_loss == first.histories["pretrain"].train_loss
    assert loaded.tokenizer.encode("def f():") == first.tokenizer.encode("def f():")
    ids = torch.tensor([first.tokenizer.encode("Return the value.")])
    torch.testing.assert_close(loaded.classifier(ids), first.classifier(ids))
    assert first.language_model.tok_emb.weight.data_ptr() != first.classifier.gpt.tok_emb.weight.data_ptr()


def test_gpt_from_scratch_baseline_is_cached_and_equals_the_uncached_recipe(tmp_path):
    from bigtut.recipes import load_or_train_gpt_from_scratch, train_gpt_docstring_classifier

    first = load_or_train_gpt_from_scratch(steps=2, cache_dir=tmp_path, progress=False, device="cpu")
    loaded = load_or_train_gpt_from_scratch(steps=2, cache_dir=tmp_path, progress=False, device="cpu")
    direct = train_gpt_docstring_classifier(None, steps=2, progress=False, device="cpu")
    assert len(list(tmp_path.iterdir())) == 1
    _same_weights(first.model, loaded.model)
    _same_weights(direct.model, loaded.model)
    assert loaded.history.train_loss == direct.history.train_loss and loaded.config == direct.config
    assert (loaded.val_accuracy, loaded.test_accuracy) == (direct.val_accuracy, direct.test_accuracy)
    assert not loaded.model.training and not loaded.config["pretrained"]
