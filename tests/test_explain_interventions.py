"""Ground truth by intervention (bigtut.explain.interventions, bigtut.data.planted's minimal pairs).

A hand-written "model" whose answer is known decides the expected evidence: it reads the planted words by the
label rule, plus a shortcut, so every smallest flipping set can be worked out by hand. Then the functions run
on a random BERT and are compared with a plain loop over edited texts.
"""

import numpy as np
import pytest
import torch

from bigtut.bert import BertConfig, BertForSequenceClassification
from bigtut.data.planted import (
    NEGATOR,
    OPPOSITE,
    PlantedExample,
    encode_planted,
    minimal_pair_edit,
    planted_edits,
    planted_label,
    planted_splits,
    planted_tokenizer,
)
from bigtut.explain.interventions import DELETE, FIXED, apply_edits, counterfactual_effects, interventional_evidence

TOK = planted_tokenizer()
CLS, SEP, PAD = (TOK.token_to_id(t) for t in ("[CLS]", "[SEP]", "[PAD]"))
KEEP = (CLS, SEP)


class RuleModel(torch.nn.Module):
    """Logits (N, 2) of the label rule applied to the real words, OR "indeed" (a shortcut to label 1):
    the prediction is 1 if the rule says 1 or "indeed" is present. ``margin`` sets how confident it is."""

    def __init__(self, margin=6.0, shortcut=True):
        super().__init__()
        self.margin, self.shortcut = margin, shortcut
        self.dummy = torch.nn.Parameter(torch.zeros(1))  # a parameter, so the model has a device

    def forward(self, input_ids, attention_mask=None):
        mask = torch.ones_like(input_ids, dtype=torch.bool) if attention_mask is None else attention_mask.bool()
        out = []
        for ids, real in zip(input_ids.tolist(), mask.tolist()):
            words = [TOK.decode([i]) for i, r in zip(ids, real) if r and i not in (CLS, SEP, PAD)]
            one = planted_label(words) == 1 or (self.shortcut and "indeed" in words)
            out.append([0.0, self.margin] if one else [self.margin, 0.0])
        return torch.tensor(out, dtype=torch.float64)


def encode(*sentences):
    examples = [PlantedExample(s.split(), planted_label(s.split()), [], "negation", False) for s in sentences]
    ids, mask, _, _ = encode_planted(examples, TOK)
    return ids, mask


def evidence_words(result, ids, b):
    return sorted(TOK.decode([i]) for i in ids[b][torch.as_tensor(result.evidence[b])].tolist())


def test_planted_edits_are_the_minimal_pairs():
    ids, _ = encode("the not good film indeed", "alpha was beta")
    edits = planted_edits(ids, TOK)
    assert edits[0, 0] == FIXED and edits[0, 6] == FIXED  # [CLS], [SEP]
    assert edits[0, 3] == TOK.token_to_id("bad")  # swap polarity
    assert (edits[0, [1, 2, 4, 5]] == DELETE).all()  # drop filler, drop not, drop filler, drop indeed
    assert edits[1, 5] == FIXED  # padding after [SEP]... is [PAD]: never edited
    assert {minimal_pair_edit(w) for w in ("good", "not", "indeed", "alpha", "film")} == {
        "swap polarity", "drop not", "drop indeed", "drop marker", "drop filler"}
    assert all(OPPOSITE[OPPOSITE[w]] == w for w in OPPOSITE)
    assert NEGATOR == "not"


def test_every_planted_edit_changes_the_rule_as_its_name_says():
    for example in planted_splits(n_train=2, n_val=2, n_test=200, n_shortcut_test=2)["test"]:
        ids, _, _, _ = encode_planted([example], TOK)
        edits = planted_edits(ids, TOK)[0]
        for position, word in enumerate(example.words):
            edit = int(edits[position + 1])
            words = list(example.words)
            if edit >= 0:
                words[position] = TOK.decode([edit])
            else:
                del words[position]
            flips = planted_label(words) != example.label
            name = minimal_pair_edit(word)
            if name in ("drop indeed", "drop filler"):
                assert not flips, (example.words, word)
            elif name in ("swap polarity", "drop not"):
                assert flips, (example.words, word)
            else:  # drop marker: always flips an xor label (one marker <-> none, both <-> one)
                assert flips, (example.words, word)


def test_apply_edits_replaces_then_deletes():
    ids = torch.tensor([[CLS, 10, 11, 12, SEP]])
    real = torch.ones_like(ids, dtype=torch.bool)
    edits = torch.tensor([[FIXED, DELETE, 20, DELETE, FIXED]])
    chosen = torch.tensor([[False, True, True, False, False]])
    out, mask = apply_edits(ids, real, edits, chosen, PAD)
    assert out.tolist() == [[CLS, 20, 12, SEP, PAD]] and mask.tolist() == [[True] * 4 + [False]]


def test_known_evidence_on_a_rule_model():
    model = RuleModel()
    ids, mask = encode("bad film", "the not good film", "good film indeed", "alpha was beta", "bad was indeed",
                       "the film was")
    target = model(ids, mask).argmax(-1)
    result = interventional_evidence(model, ids, mask, target=target, edits=planted_edits(ids, TOK), keep_ids=KEEP)
    assert evidence_words(result, ids, 0) == ["bad"]  # swap -> good flips; deleting it would not (empty -> 0)
    assert evidence_words(result, ids, 1) == ["good", "not"]  # each flips alone
    assert evidence_words(result, ids, 2) == ["good", "indeed"]  # redundant: only the pair flips
    assert result.set_size[2] == 2 and result.flipping_sets[2] == [(1, 3)]
    assert evidence_words(result, ids, 3) == ["alpha", "beta"]  # either marker dropped -> exactly one left
    assert evidence_words(result, ids, 4) == ["indeed"]  # the shortcut is the whole reason
    assert evidence_words(result, ids, 5) == [] and result.set_size[5] == 0  # nothing flips "the film was"
    np.testing.assert_allclose(result.probability, 1 / (1 + np.exp(-6.0)))
    single = interventional_evidence(model, ids, mask, target=target, edits=planted_edits(ids, TOK),
                                     keep_ids=KEEP, max_size=1)
    assert evidence_words(single, ids, 2) == []  # single edits cannot see two sufficient reasons


def test_counterfactual_effects_equal_a_loop_over_edited_texts():
    torch.manual_seed(0)
    config = BertConfig(vocab_size=TOK.vocab_size, d_model=16, num_layers=1, num_heads=2, d_ff=32, max_len=16,
                        pad_id=PAD, num_labels=2)
    model = BertForSequenceClassification(config).double().eval()
    ids, mask = encode("the not good film indeed", "alpha was beta today", "bad")
    edits = planted_edits(ids, TOK)
    result = counterfactual_effects(model, ids, mask, target=1, edits=edits, keep_ids=KEEP, batch_size=3)
    with torch.no_grad():
        base = model(ids, attention_mask=mask)[:, 1]
    for b in range(len(ids)):
        n = int(mask[b].sum())
        for t in range(n):
            if t in (0, n - 1):
                assert result.attributions[b, t] == 0 and np.isnan(result.edited[b, t])
                continue
            row = ids[b, :n].tolist()
            row = row[:t] + ([int(edits[b, t])] if edits[b, t] >= 0 else []) + row[t + 1:]
            with torch.no_grad():
                edited = model(torch.tensor([row]))[0, 1]
            assert result.attributions[b, t] == pytest.approx(float(base[b] - edited), abs=1e-10)
    assert result.n_evaluations == len(ids) + int((edits != FIXED)[mask].sum())
    probs = counterfactual_effects(model, ids, mask, target=1, keep_ids=KEEP, probabilities=True)
    assert np.all(np.abs(probs.attributions) <= 1)


@pytest.mark.parametrize("kwargs, message", [
    (dict(threshold=1.5), "threshold"), (dict(threshold=0), "threshold"), (dict(max_size=0), "max_size"),
    (dict(edits="swap"), "edits"), (dict(edits=torch.zeros(1, 3, dtype=torch.long)), "shape of input_ids"),
    (dict(edits=torch.full((2, 5), -7)), "edits must be ids"), (dict(target=None), "target"),
    (dict(edits=torch.zeros(2, 5)), "integer ids"),
])
def test_bad_input_is_refused(kwargs, message):
    ids, mask = encode("bad film", "good film indeed")
    arguments = dict(target=0, edits="delete", keep_ids=KEEP) | kwargs
    with pytest.raises((ValueError, TypeError), match=message):
        interventional_evidence(RuleModel(), ids, mask, **arguments)
