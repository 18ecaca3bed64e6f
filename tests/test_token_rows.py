"""evaluate_token_rows: identical rows once, rows of about the same length together, each call cut to its longest
row — the same logits as running every row as it is, in its order."""

import pytest
import torch

from bigtut.bert import BertConfig, BertForSequenceClassification
from bigtut.explain.common import delete_tokens, logits_of, read_at
from bigtut.explain.token_rows import evaluate_token_rows, length_groups
from bigtut.gpt import GPT, GPTConfig


def perturbed_rows(n_rows: int, L: int, seed: int):
    """``n_rows`` copies of one text ``(n_rows, L)`` with random tokens deleted (right-padded with 0), a block of
    identical rows among them; and where each row's last kept token went."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(4, 100, (1, L), generator=gen).repeat(n_rows, 1)
    present = torch.rand(n_rows, L, generator=gen) > torch.rand(n_rows, 1, generator=gen)
    present[:, -1] = True
    present[: n_rows // 5] = present[0]  # repeats
    deleted, attended, new_position = delete_tokens(ids, present, 0)
    return deleted, attended, new_position[:, -1]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_classifier_logits_equal_each_row_run_alone(seed):
    torch.manual_seed(seed)
    bert = BertForSequenceClassification(BertConfig(vocab_size=100, max_len=48, d_model=32, num_layers=2, num_heads=4,
                                                    d_ff=64, dropout=0.0, num_labels=3)).double().eval()
    ids, attended, _ = perturbed_rows(300, 48, seed)
    with torch.no_grad():
        expected = torch.cat([bert(ids[i:i + 1], attention_mask=attended[i:i + 1].long()) for i in range(300)])
    got = evaluate_token_rows(bert, ids, attended, batch_size=64)
    assert got.shape == (300, 3) and torch.allclose(got, expected, rtol=0, atol=1e-12)


def test_language_model_read_where_each_row_says():
    torch.manual_seed(3)
    gpt = GPT(GPTConfig(vocab_size=100, block_size=48, n_layer=2, n_head=2, d_model=32)).double().eval()
    ids, attended, last = perturbed_rows(200, 48, 3)
    with torch.no_grad():
        expected = read_at(logits_of(gpt(ids, attention_mask=attended.long())), last)  # (200, V), full width
    got = evaluate_token_rows(gpt, ids, attended, batch_size=50, read=last)
    assert got.shape == (200, 100) and torch.allclose(got, expected, rtol=0, atol=1e-12)


def test_each_distinct_row_runs_once_and_calls_are_cut_to_their_longest_row():
    ids, attended, _ = perturbed_rows(400, 40, 4)
    seen = []

    def model(batch, attention_mask):
        seen.append((batch.clone(), attention_mask.clone()))
        return batch.double().sum(1, keepdim=True)  # (n, 1): depends on every column it gets

    evaluate_token_rows(model, ids, attended, batch_size=64)
    rows = torch.cat([torch.nn.functional.pad(batch, (0, 40 - batch.shape[1])) for batch, _ in seen])
    assert len(rows) == len(torch.unique(torch.cat([ids, attended.long()], 1), dim=0))  # each distinct row once
    for batch, mask in seen:
        assert len(batch) <= 64 and bool(mask[:, -1].any())  # no call keeps a column nobody attends


@pytest.mark.parametrize("n_rows", [300, 5000])
def test_length_groups_hold_every_row_once_and_pad_at_most_a_ninth(n_rows):
    lengths = torch.randint(1, 90, (n_rows,), generator=torch.Generator().manual_seed(n_rows))  # (K,)
    groups = length_groups(lengths)
    assert sorted(torch.cat(groups).tolist()) == list(range(n_rows))
    longest_before = 0
    for group in groups:  # shortest first, and a group's longest row is at most 9/8 of its shortest
        shortest, longest = int(lengths[group].min()), int(lengths[group].max())
        assert shortest > longest_before and 8 * longest <= 9 * shortest
        assert len(group) * longest - int(lengths[group].sum()) <= len(group) * longest / 9
        if shortest < longest:  # lengths share a call only while they have few rows
            assert int((lengths[group] < longest).sum()) < 32
        longest_before = longest
    if n_rows == 5000:  # ~56 rows a length: every length its own call
        assert len(groups) == len(torch.unique(lengths))
