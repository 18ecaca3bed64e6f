"""The committed BERT pretrainings: ``checkpoints/bert_pretrain_long/`` (the chapter's model on the Python docs,
4800 steps) and ``checkpoints/bert_packages/`` (a larger BERT on the installed packages' docstrings). Each loads, is
small, its weights are the ones its metadata describes, and the recipe that wrote it reproduces its first 20
training losses.

Regenerate them (about 5 and 45 minutes on a 2-core CPU) with::

    OMP_NUM_THREADS=1 python -m bigtut.recipes.checkpoints bert
    python -m bigtut.recipes.checkpoints bert-packages
"""

import hashlib
import json

import pytest
import torch

from bigtut.bert import IGNORE_INDEX
from bigtut.recipes.bert import (
    LONG_EVAL_EVERY,
    LONG_PRETRAIN,
    LONG_PRETRAIN_DIR,
    PACKAGES_EVAL_EVERY,
    PACKAGES_PRETRAIN,
    PACKAGES_PRETRAIN_DIR,
    build_bert_tokenizer,
    first_pretraining_losses,
    load_pretrained_bert,
    pretraining_batches,
    pretraining_documents,
    tokenizer_training_text,
)

# Measured on the 2-core machine that wrote the checkpoints: the recomputed first 20 losses equal the stored ones
# exactly with the thread count of the run and differ by at most 6.3e-8 (relative) with another (another summation
# order). 1e-5 leaves room for other CPUs, while a changed batch, mask, initialisation or schedule moves a loss by far
# more.
RTOL = 1e-5
CHECKPOINTS = {"python_docs": (LONG_PRETRAIN, LONG_PRETRAIN_DIR, LONG_EVAL_EVERY, 5e6),
               "packages": (PACKAGES_PRETRAIN, PACKAGES_PRETRAIN_DIR, PACKAGES_EVAL_EVERY, 25e6)}


@pytest.fixture(scope="module", params=list(CHECKPOINTS))
def case(request):
    recipe, folder, eval_every, max_bytes = CHECKPOINTS[request.param]
    return recipe, folder, eval_every, max_bytes, load_pretrained_bert(folder, device="cpu")


def test_checkpoint_is_small_and_complete(case):
    recipe, folder, eval_every, max_bytes, stored = case
    files = {p.name: p.stat().st_size for p in folder.iterdir()}
    assert set(files) >= {"model.safetensors", "config.json", "tokenizer.json"}
    assert sum(files.values()) < max_bytes, f"the checkpoint should stay small, it has {files}"
    assert stored.recipe == recipe and stored.metadata["eval_every"] == eval_every
    scores = stored.metadata["scores"]
    assert scores["step"][-1] == recipe.pretrain_steps
    assert len(scores["step"]) == len(scores["mlm_accuracy"]) == len(scores["nsp_accuracy"])
    assert len(stored.metadata["first_losses"]) == 20
    assert json.loads((folder / "config.json").read_text())["vocab_size"] == stored.tokenizer.vocab_size


def test_the_recipe_reproduces_the_first_20_losses(case):
    recipe, _, _, _, stored = case
    fresh = first_pretraining_losses(recipe, 20, device="cpu", tokenizer=stored.tokenizer)
    torch.testing.assert_close(torch.tensor(fresh, dtype=torch.float64),
                               torch.tensor(stored.metadata["first_losses"], dtype=torch.float64), rtol=RTOL, atol=0)


def test_the_tokenizer_is_the_recipes(case):
    """The small vocabulary is retrained here; the packages' one (BPE on 2 MB, two minutes) is checked through
    the digest of its training text, which the metadata stores — the BPE trainer is deterministic (test_tokenizers)."""
    recipe, _, _, _, stored = case
    if recipe.corpus == "packages":
        digest = hashlib.sha256(tokenizer_training_text(recipe).encode()).hexdigest()
        assert digest == stored.metadata["tokenizer_text_sha256"]
        assert stored.tokenizer.vocab_size == recipe.vocab_size
        return
    built = build_bert_tokenizer(recipe)
    text = "Return the socket's file descriptor. [MASK] This is useful with select()."
    assert built.vocab_size == stored.tokenizer.vocab_size
    assert built.encode(text) == stored.tokenizer.encode(text)


def test_the_weights_give_the_stored_validation_accuracy(case):
    """The last validation MLM accuracy in the metadata is recomputed from the loaded weights (same fixed batches)."""
    recipe, _, _, _, stored = case
    source = pretraining_batches(pretraining_documents(recipe, "val"), stored.tokenizer, recipe, seed=recipe.seed + 1,
                                 batch_size=64)
    hits = total = 0
    with torch.no_grad():
        for _ in range(2):
            ids, segments, mask, labels, _ = source()
            mlm_logits, _ = stored.model(ids, mask, segments)  # (B, L, V)
            selected = labels != IGNORE_INDEX
            hits += int((mlm_logits[selected].argmax(-1) == labels[selected]).sum())
            total += int(selected.sum())
    assert abs(hits / total - stored.metadata["scores"]["mlm_accuracy"][-1]) <= 2 / total


def test_a_missing_checkpoint_says_how_to_rebuild_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="write_long_pretraining"):
        load_pretrained_bert(tmp_path)
