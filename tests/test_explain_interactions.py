"""Shapley interaction values of pairs (bigtut.explain.interactions) equal the definition computed by brute force,
shapiq's exact SII, and the known answers of small games (an and, an or, an xor, an additive game); their
first-order values are exact_shapley's and token_shap's; bad input is refused before any model call."""

import functools
import itertools
import math

import numpy as np
import pytest
import shapiq
import torch
from explain_fixtures import tiny_bert
from test_explain_family import pattern_violations
from torch import nn

from bigtut.explain.interactions import (
    MAX_INTERACTION_PLAYERS,
    exact_interaction_game,
    interaction_weight,
    shapley_interactions,
    token_shapley_interactions,
)
from bigtut.explain.shap import exact_game, exact_shapley
from bigtut.explain.shap_tokens import token_shap
from bigtut.gpt import GPT, GPTConfig

CLS, MASK = 1, 2


# ----------------------------------------------------------------------------------- the definition, by brute force
def brute_force(v, m):
    """I (m, m) straight from the definition, with ``v(frozenset) -> float``: a slow loop over every S ⊆ N∖{i,j}."""
    v = functools.cache(v)  # a model's game: each coalition runs the model once
    interactions = np.zeros((m, m))
    for i, j in itertools.combinations(range(m), 2):
        others = [p for p in range(m) if p not in (i, j)]
        for size in range(m - 1):
            weight = math.factorial(size) * math.factorial(m - size - 2) / math.factorial(m - 1)
            for s in itertools.combinations(others, size):
                s = frozenset(s)
                interactions[i, j] += weight * (v(s | {i, j}) - v(s | {i}) - v(s | {j}) + v(s))
        interactions[j, i] = interactions[i, j]  # the definition is symmetric in i and j
    return interactions


def table_game(table):
    """A game given by its value per coalition code (bit p = player p): as masks -> values and as a set function."""
    m = int(np.log2(len(table)))

    def game(masks):
        return table[masks.astype(int) @ (1 << np.arange(m))]  # (K,)

    return game, (lambda s: table[sum(1 << p for p in s)])


@pytest.mark.parametrize("m", [2, 3, 4, 6])
def test_random_games_equal_the_definition_and_shapiq(m):
    table = np.random.default_rng(m).normal(size=2**m)
    game, v = table_game(table)
    phi, interactions, empty, n = exact_interaction_game(game, m)
    np.testing.assert_allclose(interactions, brute_force(v, m), rtol=0, atol=1e-13)
    np.testing.assert_array_equal(phi, exact_game(game, m)[0])
    assert empty == table[0] and n == 2**m
    sii = shapiq.ExactComputer(game, n_players=m)("SII", order=2)  # shapiq: values by sorted tuple
    np.testing.assert_allclose([sii[(i, j)] for i, j in itertools.combinations(range(m), 2)],
                               [interactions[i, j] for i, j in itertools.combinations(range(m), 2)], rtol=0, atol=1e-13)
    np.testing.assert_allclose([sii[(i,)] for i in range(m)], phi, rtol=0, atol=1e-13)  # order 1 of SII = Shapley
    assert sii.baseline_value == pytest.approx(table[0], abs=0)  # shapiq keeps v(∅) aside, unsubtracted


def test_a_pair_is_the_shapley_value_of_one_with_the_other_present_minus_absent():
    """I_ij = φ_i(game over N∖{j} with j always present) − φ_i(the same with j always absent)."""
    m, (i, j) = 5, (1, 3)
    table = np.random.default_rng(7).normal(size=2**m)
    game, _ = table_game(table)
    rest = [p for p in range(m) if p != j]

    def with_j(present):
        def sub(masks):  # (K, m-1) over the other players
            full = np.zeros((len(masks), m), bool)
            full[:, rest], full[:, j] = masks, present
            return game(full)
        return exact_game(sub, m - 1)[0][rest.index(i)]

    assert exact_interaction_game(game, m)[1][i, j] == pytest.approx(with_j(True) - with_j(False), abs=1e-13)


def test_the_weights_over_the_coalitions_sum_to_one():
    for m in range(2, 10):
        assert sum(math.comb(m - 2, s) * interaction_weight(s, m) for s in range(m - 1)) == pytest.approx(1, abs=1e-14)
        assert interaction_weight(0, m) == pytest.approx(math.factorial(m - 2) / math.factorial(m - 1))
    assert exact_interaction_game(table_game(np.array([0.0, 2.0]))[0], 1)[1].shape == (1, 1)  # no pair: zeros
    assert exact_interaction_game(lambda masks: np.zeros(len(masks)), 0)[1].shape == (0, 0)


# ------------------------------------------------------------------------------------------- known answers
BINARY = (np.ones((1, 4)), np.zeros((1, 4)))  # x = 1 everywhere, background 0: v(S) = f(1_S)


@pytest.mark.parametrize("f, pair, phi", [
    (lambda z: z[:, 0] * z[:, 1] + 3 * z[:, 2], 1.0, [0.5, 0.5, 3, 0]),  # "and": I = 1, split half and half
    (lambda z: z[:, 0] + z[:, 1] - 2 * z[:, 0] * z[:, 1], -2.0, [0, 0, 0, 0]),  # xor: v(N) = v(∅), nothing to share
    (lambda z: np.maximum(z[:, 0], z[:, 1]) - z[:, 3], -1.0, [0.5, 0.5, 0, -1]),  # "or": I = −1
], ids=["and", "xor", "or"])
def test_known_games(f, pair, phi):
    result = shapley_interactions(f, *BINARY[:1], background=BINARY[1])
    expected = np.zeros((4, 4))
    expected[0, 1] = expected[1, 0] = pair
    np.testing.assert_allclose(result.interactions[0], expected, rtol=0, atol=1e-14)
    np.testing.assert_allclose(result.attributions[0], phi, rtol=0, atol=1e-14)
    assert result.base_value[0] == 0 and result.n_evaluations == 2**4


def test_an_additive_model_has_no_interactions():
    rng = np.random.default_rng(0)
    w = rng.normal(size=5)
    x, background = rng.normal(size=(3, 5)), rng.normal(size=(4, 5))
    result = shapley_interactions(lambda z: z @ w + np.sin(z[:, 0]), x, background=background)
    np.testing.assert_allclose(result.interactions, 0, rtol=0, atol=1e-13)


# ---------------------------------------------------------------------------------------- tabular, on a model
def mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 8), nn.Tanh(), nn.Linear(8, 3)).double().eval()


def test_tabular_equals_the_definition_and_exact_shapley():
    f = mlp()
    rng = np.random.default_rng(1)
    x, background = rng.normal(size=(3, 5)), rng.normal(size=(4, 5))
    result = shapley_interactions(f, x, target=[0, 2, 1], background=background, batch_size=7)
    shapley = exact_shapley(f, x, target=[0, 2, 1], background=background, batch_size=7)
    np.testing.assert_array_equal(result.attributions, shapley.attributions)  # the same table, the same sums
    np.testing.assert_array_equal(result.base_value, shapley.base_value)
    assert result.n_evaluations == shapley.n_evaluations == 3 * 2**5 * 4
    assert result.interactions.shape == (3, 5, 5) and result.interactions.dtype == np.float64
    for b, t in enumerate([0, 2, 1]):
        def v(s, b=b, t=t):
            rows = np.where(np.isin(np.arange(5), list(s)), x[b], background)  # (R, M)
            with torch.no_grad():
                return f(torch.from_numpy(rows))[:, t].mean().item()
        np.testing.assert_allclose(result.interactions[b], brute_force(v, 5), rtol=0, atol=1e-12)
    np.testing.assert_array_equal(result.interactions, result.interactions.transpose(0, 2, 1))
    assert np.all(result.interactions[:, range(5), range(5)] == 0)
    alone = shapley_interactions(f, x[1:2], target=2, background=background)
    np.testing.assert_allclose(alone.interactions[0], result.interactions[1], rtol=0, atol=1e-12)  # a row alone


# ---------------------------------------------------------------------------------------------------- tokens
@pytest.fixture(scope="module")
def bert():
    return tiny_bert(seed=3, num_labels=3)


def test_tokens_equal_the_definition_shapiq_and_token_shap(bert):
    model, ids, mask = bert
    ids, mask = ids[:, :7], mask[:, :7]  # rows 0-2: 6 token players after [CLS]; row 3: 4 (padded)
    result = token_shapley_interactions(model, ids, mask, target=[0, 1, 2, 1], keep_ids=(CLS,), batch_size=10)
    shap = token_shap(model, ids, mask, target=[0, 1, 2, 1], absent="pad", keep_ids=(CLS,), batch_size=10)
    np.testing.assert_array_equal(result.attributions, shap.attributions)
    np.testing.assert_array_equal(result.base_value, shap.base_value)
    assert result.n_evaluations == shap.n_evaluations == 4 + 3 * 2**6 + 2**4
    assert result.interactions.shape == (4, 7, 7)
    for b, t in [(0, 0), (3, 1)]:
        players = [p for p in range(7) if mask[b, p] and ids[b, p] != CLS]

        def v(s, b=b, t=t, players=players):  # absent = "pad": the token's attention mask is 0
            seen = mask[b].clone()
            seen[[p for k, p in enumerate(players) if k not in s]] = 0
            with torch.no_grad():
                return model(ids[b:b + 1], attention_mask=seen[None])[0, t].item()

        expected = np.zeros((7, 7))
        expected[np.ix_(players, players)] = brute_force(v, len(players))
        np.testing.assert_allclose(result.interactions[b], expected, rtol=0, atol=1e-12)
        cached = functools.cache(v)
        game = lambda masks, v=cached: np.array([v(frozenset(np.flatnonzero(row).tolist())) for row in masks])  # noqa: E731
        sii = shapiq.ExactComputer(game, n_players=len(players))("SII", order=2)
        for (k, p), (k2, p2) in itertools.combinations(enumerate(players), 2):
            assert result.interactions[b, p, p2] == pytest.approx(sii[(k, k2)], abs=1e-12)
    assert np.all(result.interactions[3, 5:] == 0) and np.all(result.interactions[:, 0] == 0)  # padding, [CLS]
    np.testing.assert_array_equal(result.interactions, result.interactions.transpose(0, 2, 1))
    alone = token_shapley_interactions(model, ids[3:4, :5], target=1, keep_ids=(CLS,))
    np.testing.assert_allclose(alone.interactions[0], result.interactions[3, :5, :5], rtol=0, atol=1e-12)


@pytest.mark.parametrize("absent", ["mask", "delete"])
def test_other_absence_modes_share_token_shaps_game(bert, absent):
    model, ids, mask = bert
    kw = dict(target=2, absent=absent, mask_id=MASK, keep_ids=(CLS,))
    result = token_shapley_interactions(model, ids[1:2, :6], **kw)
    np.testing.assert_array_equal(result.attributions, token_shap(model, ids[1:2, :6], **kw).attributions)
    assert np.abs(result.interactions).max() > 1e-3


def test_a_language_model():
    torch.manual_seed(1)
    gpt = GPT(GPTConfig(vocab_size=31, block_size=20, n_layer=1, n_head=2, d_model=16)).double().eval()
    ids = torch.tensor([[4, 8, 15, 16, 23, 30, 2]])
    result = token_shapley_interactions(gpt, ids, target=7, position=-2)  # read at 30: 2 after it, 30 stay out
    np.testing.assert_array_equal(result.attributions, token_shap(gpt, ids, target=7, absent="pad",
                                                                  position=-2).attributions)
    assert np.all(result.interactions[0, 5:] == 0) and np.all(result.interactions[0, :, 5:] == 0)
    assert np.abs(result.interactions[0, :5, :5]).max() > 1e-3


# ------------------------------------------------------------------------------------------------ bad input
class Counting(nn.Module):
    """A linear classifier over one-hot tokens that counts its calls (bad input must be refused before any)."""

    def __init__(self):
        super().__init__()
        self.embedding, self.calls = nn.Embedding(10, 2).double(), 0

    def get_input_embeddings(self):
        return self.embedding

    def forward(self, input_ids, attention_mask=None, *, inputs_embeds=None):
        self.calls += 1
        return (self.embedding(input_ids) * attention_mask[..., None]).sum(1)


def test_bad_input_is_refused_before_any_model_call():
    model = Counting()
    long_text = torch.tensor([[CLS] + [3] * 15])  # 15 token players
    bad = [  # (options, what the message says, model calls allowed: the players are counted after the probe)
        (dict(order=3), r"order=3 is not supported.*\(2,\)", 0), (dict(order=1), "order=1.*exact_shapley", 0),
        (dict(order="2"), "order='2'", 0), (dict(order=True), "order=True", 0),
        (dict(max_players=21), "max_players must be <= 20", 0), (dict(max_players=1), "max_players", 0),
        (dict(absent="zero"), "absent", 0), (dict(batch_size=0), "batch_size", 0),
        (dict(), r"M=15.*max_players=14", 1), (dict(max_players=4), r"M=15.*max_players=4", 1),
        (dict(keep_ids=()), "empty text", 1),  # "pad" with every token a player
    ]
    for options, message, allowed in bad:
        model.calls = 0
        with pytest.raises(ValueError, match=message):
            token_shapley_interactions(model, long_text, **{"keep_ids": (CLS,), "target": 0, **options})
        assert model.calls <= allowed, options
    calls = []

    def f(z):
        calls.append(len(z))
        return z.sum(1)

    x = np.zeros((1, 16))
    for options, message in [(dict(order=2.0), "order=2.0"), (dict(), r"M=16.*max_players=14"),
                             (dict(background=np.zeros((2, 3))), "background")]:
        with pytest.raises(ValueError, match=message):
            shapley_interactions(f, x, **{"background": np.zeros((2, 16)), **options})
    assert calls == [] and MAX_INTERACTION_PLAYERS == 14


def test_the_methods_keep_the_family_shape():
    assert pattern_violations(shapley_interactions) == []
    assert pattern_violations(token_shapley_interactions) == []
