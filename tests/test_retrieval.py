"""The retrieval task: its rule re-derived here on every example, evidence positions, balanced deterministic
disjoint splits, the encoding; the recipe for a few steps, its cache, and the full run's accuracy
(cached, or trained here in about 11 s)."""

import re
from collections import Counter

import pytest
import torch

from bigtut.data.retrieval import (
    LETTERS,
    MAX_LENGTH,
    MIN_LENGTH,
    VALUES,
    encode_retrieval,
    retrieval_answer,
    retrieval_example,
    retrieval_splits,
    retrieval_tokenizer,
)
from bigtut.recipes.retrieval import RETRIEVAL_MODEL, answer_accuracy, train_retrieval_gpt

PROMPT = re.compile(r"([a-z0-9]*)@([0-9])([a-z0-9]*)\?")


@pytest.fixture(scope="module")
def splits():
    return retrieval_splits(n_train=2000, n_test=520)


def rule(prompt):
    """The task's rule written again: split the prompt at its one '@' and read the digit after it."""
    before, digit, after = PROMPT.fullmatch(prompt).groups()
    return digit, len(before), len(before) + 2 + len(after)


def test_every_example_follows_the_rule(splits):
    for e in splits["train"] + splits["test"]:
        answer, marker, n = rule(e.prompt)
        assert e.answer == answer == retrieval_answer(e.prompt)
        assert e.length == n and MIN_LENGTH <= n <= MAX_LENGTH and e.distance == n - 2 - marker
        assert (e.marker_position, e.evidence_position) == (marker, marker + 1)
        assert e.prompt[e.evidence_position] == e.answer and e.prompt[e.marker_position] == "@"
        assert e.query_position == n and e.prompt[n] == "?" and e.text == e.prompt + e.answer


def test_splits_are_deterministic_disjoint_and_balanced(splits):
    again = retrieval_splits(n_train=2000, n_test=520)
    assert again == splits
    assert retrieval_splits(n_train=2000, n_test=520, seed=1)["test"] != splits["test"]
    prompts = [e.prompt for e in splits["train"] + splits["test"]]
    assert len(set(prompts)) == len(prompts)  # no prompt twice, within or across splits
    test = splits["test"]
    assert set(Counter(e.answer for e in test).values()) == {52}
    assert set(Counter(e.length for e in test).values()) == {40}
    for n in range(MIN_LENGTH, MAX_LENGTH + 1):
        places = Counter(e.distance for e in test if e.length == n)
        assert sorted(places) == list(range(n - 1)) and max(places.values()) - min(places.values()) <= 1
    # distractors: letters and digits alike, the answer's digit among them sometimes (a copy, not the evidence)
    assert set("".join(e.prompt[:-1].replace("@" + e.answer, "", 1) for e in test)) == set(LETTERS + VALUES)
    assert any(e.prompt.count(e.answer) > 1 for e in test)


def test_encoding_marks_the_evidence(splits):
    tokenizer = retrieval_tokenizer()
    assert tokenizer.vocab_size == 1 + len(LETTERS) + len(VALUES) + 2
    examples = splits["test"][:20]
    batch = encode_retrieval(examples, tokenizer, with_answer=True)
    for row, e in enumerate(examples):
        n = len(e.text)
        assert tokenizer.decode(batch.input_ids[row, :n].tolist()) == e.text
        assert batch.attention_mask[row].sum() == n and not batch.attention_mask[row, n:].any()
        assert batch.evidence[row].nonzero().flatten().tolist() == [e.evidence_position]
        assert batch.marker[row].nonzero().flatten().tolist() == [e.marker_position]
        assert batch.answer_positions[row] == len(e.prompt) - 1
        assert batch.input_ids[row, batch.answer_positions[row] + 1] == batch.answer_ids[row]
        assert tokenizer.decode([batch.answer_ids[row]]) == e.answer


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="exactly one marker"):
        retrieval_answer("a@1b@2?")
    with pytest.raises(ValueError, match="exactly one marker"):
        retrieval_answer("ab12?")
    with pytest.raises(ValueError, match="followed by a digit"):
        retrieval_answer("ab@c?")
    with pytest.raises(ValueError, match="only letters"):
        retrieval_answer("a;@1?")
    with pytest.raises(ValueError, match="then '\\?'"):
        retrieval_answer("a@1")
    with pytest.raises(ValueError, match="marker must be"):
        retrieval_example("abc", 4, "1")
    with pytest.raises(ValueError, match="n_test"):
        retrieval_splits(n_test=0)
    with pytest.raises(ValueError, match="at least one"):
        encode_retrieval([], retrieval_tokenizer())


def test_recipe_runs_a_few_steps_and_caches(tmp_path):
    kwargs = dict(steps=3, batch_size=8, n_train=50, n_test=20, cache_dir=tmp_path, device="cpu", progress=False)
    run = train_retrieval_gpt(**kwargs)
    assert not run.model.training and len(run.history.train_loss) == 3
    assert run.model.config.block_size >= MAX_LENGTH + 2 and run.model.config.n_layer == RETRIEVAL_MODEL["n_layer"]
    again = train_retrieval_gpt(**kwargs)  # from the cache
    assert again.test_accuracy == run.test_accuracy and again.history == run.history
    for a, b in zip(run.model.parameters(), again.model.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    rebuilt = train_retrieval_gpt(**{**kwargs, "reuse": False, "save": False})  # deterministic
    for a, b in zip(run.model.parameters(), rebuilt.model.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_the_full_run_reaches_its_accuracy():
    """The cached run if `make models` built it, else trained here without storing it (about 11 s on one core)."""
    settings = {"seed": 0, "steps": 500, "batch_size": 64, "lr": 3e-3, "n_train": 20000, "n_test": 1000,
                "model": RETRIEVAL_MODEL}
    run = train_retrieval_gpt(device="cpu", progress=False, save=False)
    assert run.settings == settings and len(run.history.train_loss) == settings["steps"]
    test = encode_retrieval(retrieval_splits(20000, 1000)["test"], run.tokenizer)
    assert answer_accuracy(run.model, test) == pytest.approx(run.test_accuracy)
    assert run.test_accuracy >= 0.95
