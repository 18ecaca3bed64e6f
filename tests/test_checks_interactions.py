"""The Shapley interaction checker (09) passes the definition on seeds 0–2, in two ways of writing it, and catches
the wrong answers students write, each with a message naming the mistake."""

import itertools
import math

import numpy as np
import pytest
from checker_cases import assert_fails_naming, assert_passes_on_seeds

from bigtut.checks import CheckFailure
from bigtut.checks.interactions import check_shapley_interaction

F = math.factorial


# ------------------------------------------------------------------------- right answers (the notebook's solution)
def shapley_interaction(value, n_players, i, j):
    if i == j:
        raise ValueError(f"a pair needs two players, got i = j = {i}")
    others = [p for p in range(n_players) if p not in (i, j)]
    total = 0.0
    for size in range(n_players - 1):
        weight = F(size) * F(n_players - size - 2) / F(n_players - 1)
        for coalition in itertools.combinations(others, size):
            s = frozenset(coalition)
            total += weight * (value(s | {i, j}) - value(s | {i}) - value(s | {j}) + value(s))
    return total


def interaction_by_orders(value, n_players, i, j):  # the mean over orders of the others of Δ_ij(players before)
    if i == j:
        raise ValueError("i == j")
    others = [p for p in range(n_players) if p not in (i, j)]
    orders = list(itertools.permutations(others)) or [()]
    total = 0.0
    for order in orders:
        for k in range(len(others) + 1):  # i and j enter together after the first k others: each place alike
            s = frozenset(order[:k])
            total += (value(s | {i, j}) - value(s | {i}) - value(s | {j}) + value(s)) / (len(others) + 1)
    return total / len(orders)


def interaction_over_every_subset(value, n_players, i, j):  # S may hold i or j: with sets those terms are 0
    if i == j:
        raise ValueError("i == j")
    total = 0.0
    for size in range(n_players - 1):
        weight = F(size) * F(n_players - size - 2) / F(n_players - 1)
        for coalition in itertools.combinations(range(n_players), size):
            s = frozenset(coalition)
            total += weight * (value(s | {i, j}) - value(s | {i}) - value(s | {j}) + value(s))
    return total


def interaction_by_comb(value, n_players, i, j):  # 1 / ((M − 1) C(M − 2, |S|)) is the same weight
    if i == j:
        raise ValueError("i == j")
    others = [p for p in range(n_players) if p not in (i, j)]
    return sum((value(frozenset(s) | {i, j}) - value(frozenset(s) | {i}) - value(frozenset(s) | {j})
                + value(frozenset(s))) / ((n_players - 1) * math.comb(n_players - 2, len(s)))
               for k in range(n_players - 1) for s in itertools.combinations(others, k))


def interaction_by_moebius(value, n_players, i, j):  # I_ij = Σ_{T ⊇ {i,j}} m(T) / (|T| − 1), m the Möbius transform
    if i == j:
        raise ValueError("i == j")
    subsets = [frozenset(s) for k in range(n_players + 1) for s in itertools.combinations(range(n_players), k)]
    moebius = {t: sum((-1) ** (len(t) - k) * value(frozenset(u)) for k in range(len(t) + 1)
                      for u in itertools.combinations(sorted(t), k)) for t in subsets}
    return sum(m / (len(t) - 1) for t, m in moebius.items() if {i, j} <= t)


def interaction_by_numpy_table(value, n_players, i, j):  # every coalition a bitmask; the table read in one go
    if i == j:
        raise ValueError("i == j")
    codes = np.arange(2**n_players)
    bits = (codes[:, None] >> np.arange(n_players)) & 1  # (2^M, M)
    table = np.array([value(frozenset(np.flatnonzero(row).tolist())) for row in bits])
    free = codes[(bits[:, i] == 0) & (bits[:, j] == 0)]  # the S without i and j
    sizes = bits[free].sum(1)
    weights = np.array([F(k) * F(n_players - k - 2) / F(n_players - 1) for k in sizes])
    return float(weights @ (table[free | 1 << i | 1 << j] - table[free | 1 << i] - table[free | 1 << j] + table[free]))


@pytest.mark.parametrize("answer", [shapley_interaction, interaction_by_orders, interaction_over_every_subset,
                                    interaction_by_comb, interaction_by_moebius, interaction_by_numpy_table])
def test_right_answers_pass(answer, capsys):
    assert_passes_on_seeds(check_shapley_interaction, answer, capsys)


def test_the_committed_solution_prints_the_committed_pass_line(capsys):
    check_shapley_interaction(shapley_interaction)
    assert capsys.readouterr().out.splitlines() == [
        "PASS shapley_interaction: random 2- to 5-player games (a dummy pair gives 0), both orders of a pair, an xor "
        "(I = −2), and i == j refused"]


# ------------------------------------------------------------------------------------------------ wrong answers
def _sum(value, n, i, j, weight=None, sizes=None, players=None, delta=None):
    weight = weight or (lambda s, m: F(s) * F(m - s - 2) / F(m - 1))
    delta = delta or (lambda s: value(s | {i, j}) - value(s | {i}) - value(s | {j}) + value(s))
    others = [p for p in (range(n) if players is None else players) if p not in (i, j)]
    return sum(weight(k, n) * delta(frozenset(s)) for k in (range(n - 1) if sizes is None else sizes)
               for s in itertools.combinations(others, k))


def refuse(fn):
    def answer(value, n, i, j):
        if i == j:
            raise ValueError("i == j")
        return fn(value, n, i, j)
    answer.__name__ = fn.__name__
    return answer


@refuse
def shapley_value_weight(v, n, i, j):
    return _sum(v, n, i, j, weight=lambda s, m: F(s) * F(m - s - 1) / F(m))


@refuse
def m_factorial(v, n, i, j):
    return _sum(v, n, i, j, weight=lambda s, m: F(s) * F(m - s - 2) / F(m))


@refuse
def banzhaf(v, n, i, j):
    return _sum(v, n, i, j, weight=lambda s, m: 1 / 2 ** (m - 2))


@refuse
def shapley_taylor(v, n, i, j):
    return _sum(v, n, i, j, weight=lambda s, m: 2 / (m * math.comb(m - 1, s)))


@refuse
def size_plus_one_factorial(v, n, i, j):
    return _sum(v, n, i, j, weight=lambda s, m: F(s + 1) * F(m - s - 2) / F(m - 1))


@refuse
def marginal_of_i(v, n, i, j):
    return _sum(v, n, i, j, delta=lambda s: v(s | {i}) - v(s))


@refuse
def no_single_terms(v, n, i, j):
    return _sum(v, n, i, j, delta=lambda s: v(s | {i, j}) - v(s))


@refuse
def sign_flipped(v, n, i, j):
    return -shapley_interaction(v, n, i, j)


@refuse
def halved(v, n, i, j):
    return shapley_interaction(v, n, i, j) / 2


@refuse
def without_empty(v, n, i, j):
    return _sum(v, n, i, j, sizes=range(1, n - 1))


@refuse
def largest_left_out(v, n, i, j):
    return _sum(v, n, i, j, sizes=range(n - 2))


@refuse
def last_player_never_in_s(v, n, i, j):  # m = n_players - 1 everywhere
    return _sum(v, n - 1, i, j, players=range(n - 1))


@refuse
def only_the_empty_coalition(v, n, i, j):
    return v(frozenset({i, j})) - v(frozenset({i})) - v(frozenset({j})) + v(frozenset())


def self_interaction(v, n, i, j):  # the definition, i == j not refused: −(a Shapley-like value) comes back
    return _sum(v, n, i, j)


@refuse
def lists_with_duplicates(v, n, i, j):  # coalitions as lists: [*S, i, j] may repeat a player
    others = [p for p in range(n) if p not in (i, j)]
    return sum(F(k) * F(n - k - 2) / F(n - 1) * (v([*s, i, j]) - v([*s, i]) - v([*s, j]) + v(list(s)))
               for k in range(n - 1) for s in itertools.combinations(others, k))


@refuse
def by_the_course(v, n, i, j):
    from bigtut.explain.interactions import exact_interaction_game

    table = np.array([v(frozenset(np.flatnonzero([(c >> p) & 1 for p in range(n)]).tolist())) for c in range(2**n)])
    return exact_interaction_game(lambda masks: table[masks.astype(int) @ (1 << np.arange(n))], n)[1][i, j]


def returns_a_string(v, n, i, j):
    return "I_ij"


def stub(value, n_players, i, j):
    raise NotImplementedError


WRONG = [
    (shapley_value_weight, r"\|S\|!\(M−\|S\|−1\)!/M! is the Shapley value's"),
    (m_factorial, r"divide by \(M−1\)!, not M!"),
    (banzhaf, "Banzhaf interaction"),
    (shapley_taylor, "Shapley-Taylor interaction's weight"),
    (size_plus_one_factorial, r"\(\|S\|\+1\)!.*first factorial is \|S\|!"),
    (marginal_of_i, "player i's marginal contribution"),
    (no_single_terms, "leaves out the single terms"),
    (sign_flipped, "the sign is flipped"),
    (halved, "half the index"),
    (without_empty, "the empty coalition is left out"),
    (largest_left_out, "the largest coalitions"),
    (last_player_never_in_s, "off by one in M"),
    (only_the_empty_coalition, r"only S = ∅"),
    (self_interaction, r"i == j is no pair.*raise ValueError"),
    (lists_with_duplicates, "value\\(\\) takes a frozenset of players, got list"),
    (by_the_course, "calls `exact_interaction_game`"),
    (returns_a_string, "expected a number"),
    (stub, "not implemented"),
]


@pytest.mark.parametrize("wrong, message", WRONG, ids=[w.__name__ for w, _ in WRONG])
def test_wrong_answers_fail_naming_the_mistake(wrong, message):
    assert_fails_naming(check_shapley_interaction, wrong, message)


def test_failures_name_the_input_and_refuse_what_is_not_a_function():
    with pytest.raises(CheckFailure, match=r"(?s)a random 4-player game, pair \(0, 1\) \(seed=5\).*expected.*got"):
        check_shapley_interaction(sign_flipped, seed=5)
    with pytest.raises(CheckFailure, match="expected a function"):
        check_shapley_interaction(None, seed=0)


def test_the_xor_case_alone_would_not_name_banzhaf():
    """On the xor every S has Δ = −2, so the Banzhaf average is right there: the random games must catch it."""
    values = {frozenset(s): float((1 in s) != (2 in s)) for k in range(5) for s in itertools.combinations(range(4), k)}
    assert banzhaf(values.__getitem__, 4, 1, 2) == pytest.approx(-2) == shapley_interaction(values.__getitem__, 4, 1, 2)
