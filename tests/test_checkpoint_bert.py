"""The committed long BERT pretraining, ``checkpoints/bert_pretrain_long/``: it loads, it is small, its weights are
the ones its metadata describes, and the recipe that wrote it reproduces its first 20 training losses.

Regenerate it (about 5 minutes on a 2-core CPU) with::

    python -c "from bigtut.recipes.bert import write_long_pretraining as w; w()"
"""

import json

import pytest
import torch

from bigtut.bert import IGNORE_INDEX
from bigtut.data.sentences import docs_sentences
from bigtut.recipes.bert import (
    LONG_EVAL_EVERY,
    LONG_PRETRAIN,
    LONG_PRETRAIN_DIR,
    build_bert_tokenizer,
    first_pretraining_losses,
    load_pretrained_bert,
    pretraining_batches,
)

# Measured on the 2-core machine that wrote the checkpoint: the recomputed first 20 losses equal the stored ones exactly
# with 1 thread and differ by at most 6.3e-8 (relative) with 2 threads (another summation order). 1e-5 leaves room
# for other CPUs, while a changed batch, mask, initialisation or schedule moves a loss by far more.
RTOL = 1e-5


@pytest.fixture(scope="module")
def stored():
    return load_pretrained_bert(device="cpu")


def test_checkpoint_is_small_and_complete(stored):
    files = {p.name: p.stat().st_size for p in LONG_PRETRAIN_DIR.iterdir()}
    assert set(files) >= {"model.safetensors", "config.json", "tokenizer.json"}
    assert sum(files.values()) < 5e6, f"the checkpoint should stay a few MB, it has {files}"
    assert stored.recipe == LONG_PRETRAIN and stored.metadata["eval_every"] == LONG_EVAL_EVERY
    scores = stored.metadata["scores"]
    assert scores["step"][-1] == LONG_PRETRAIN.pretrain_steps
    assert len(scores["step"]) == len(scores["mlm_accuracy"]) == len(scores["nsp_accuracy"])
    assert len(stored.metadata["first_losses"]) == 20
    assert json.loads((LONG_PRETRAIN_DIR / "config.json").read_text())["vocab_size"] == stored.tokenizer.vocab_size


def test_the_recipe_reproduces_the_first_20_losses(stored):
    fresh = first_pretraining_losses(LONG_PRETRAIN, 20, device="cpu")
    torch.testing.assert_close(torch.tensor(fresh, dtype=torch.float64),
                               torch.tensor(stored.metadata["first_losses"], dtype=torch.float64), rtol=RTOL, atol=0)


def test_the_tokenizer_is_the_recipes(stored):
    built = build_bert_tokenizer(LONG_PRETRAIN)
    text = "Return the socket's file descriptor. [MASK] This is useful with select()."
    assert built.vocab_size == stored.tokenizer.vocab_size
    assert built.encode(text) == stored.tokenizer.encode(text)


def test_the_weights_give_the_stored_validation_accuracy(stored):
    """The last validation MLM accuracy in the metadata is recomputed from the loaded weights (same fixed batches)."""
    recipe, model = stored.recipe, stored.model
    source = pretraining_batches(docs_sentences("val", docstrings=recipe.pretrain_on_docstrings), stored.tokenizer,
                                 recipe, seed=recipe.seed + 1, batch_size=64)
    hits = total = 0
    with torch.no_grad():
        for _ in range(2):
            ids, segments, mask, labels, _ = source()
            mlm_logits, _ = model(ids, mask, segments)  # (B, L, V)
            selected = labels != IGNORE_INDEX
            hits += int((mlm_logits[selected].argmax(-1) == labels[selected]).sum())
            total += int(selected.sum())
    assert abs(hits / total - stored.metadata["scores"]["mlm_accuracy"][-1]) <= 2 / total


def test_a_missing_checkpoint_says_how_to_rebuild_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="write_long_pretraining"):
        load_pretrained_bert(tmp_path)
