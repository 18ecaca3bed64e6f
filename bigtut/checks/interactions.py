"""Checker for chapter 09's Shapley interaction exercise: one pair's interaction value from the definition.

``check_shapley_interaction`` holds ``candidate(value, n_players, i, j)`` to the Shapley interaction index of
Grabisch & Roubens (1999), as :func:`bigtut.explain.interactions.exact_interaction_game` computes it::

    I_ij = Σ_{S ⊆ N∖{i,j}}  |S|! (M − |S| − 2)! / (M − 1)!  ·  [v(S ∪ {i,j}) − v(S ∪ {i}) − v(S ∪ {j}) + v(S)]

``value`` takes a ``frozenset`` of players (as chapter 07's ``shapley_value`` exercise) and refuses anything else.
The checker plays random 2- to 5-player games (one with a dummy player, whose interactions are 0) with the pair in
both orders, and an xor of two players (``I = −2``); ``i == j`` must raise ``ValueError``. A wrong answer is named
when it equals a known mistake: the Shapley value's weight, the (M−1)! replaced by M!, no weights (the Banzhaf
interaction), the Shapley-Taylor weight 2/(M·C(M−1, |S|)), (|S|+1)! for |S|!, i's marginal v(S ∪ {i}) − v(S) for
the pair's difference, the single terms left out, the sign flipped, half the index (shap's interaction values), the
empty or the largest coalitions left out, the last player never in ``S`` (M − 1 players), only S = ∅ or only
S = N∖{i,j}; an answer that calls the course's own ``exact_interaction_game`` / ``shapley_interactions`` or shapiq
fails too.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from functools import partial

import numpy as np
import torch

from bigtut.checks.core import (
    CheckFailure,
    _describe,
    assert_close_or_hint,
    checker_generator,
    guarded,
    passed,
    wrong_only,
)
from bigtut.checks.explain import _Game, _number
from bigtut.checks.forbidden import assert_does_not_use

__all__ = ["check_shapley_interaction"]

_OWN = "{} is the course's own answer to this exercise: write the sum over coalitions yourself"
_BANNED = {
    "exact_interaction_game": _OWN.format("bigtut.explain's exact_interaction_game"),
    "shapley_interactions": _OWN.format("bigtut.explain's shapley_interactions"),
    "token_shapley_interactions": _OWN.format("bigtut.explain's token_shapley_interactions"),
    "interaction_weight": _OWN.format("bigtut.explain's interaction_weight"),
    "ExactComputer": "shapiq's ExactComputer computes every interaction for you: write the sum yourself",
}


def _random_table(gen: torch.Generator, n: int, dummy: bool) -> dict[frozenset, float]:
    """A random value per coalition of ``n`` players; with ``dummy`` the last player adds nothing anywhere."""
    real = n - 1 if dummy else n
    table = {frozenset(s): float(torch.randn(1, generator=gen, dtype=torch.float64))
             for size in range(real + 1) for s in itertools.combinations(range(real), size)}
    if dummy:
        table.update({s | {n - 1}: value for s, value in list(table.items())})
    return table


def _xor_table(n: int, i: int, j: int) -> dict[frozenset, float]:
    """v(S) = 1 when exactly one of ``i``, ``j`` is in S, else 0 (the other players are dummies)."""
    return {frozenset(s): float((i in s) != (j in s))
            for size in range(n + 1) for s in itertools.combinations(range(n), size)}


def _reference(table: dict[frozenset, float], n: int) -> np.ndarray:
    """I ``(n, n)`` of the game by the course's implementation."""
    from bigtut.explain.interactions import exact_interaction_game

    def game(masks: np.ndarray) -> np.ndarray:  # (K, n) bool -> (K,)
        return np.array([table[frozenset(np.flatnonzero(row).tolist())] for row in masks])

    return exact_interaction_game(game, n)[1]


def _pair_sum(v: Callable, n: int, i: int, j: int, *, weight: Callable | None = None, sizes: range | None = None,
              players: range | None = None, delta: Callable | None = None) -> float:
    """Σ over S ⊆ ``players``∖{i,j} with |S| in ``sizes`` of ``weight(|S|, n) · delta(v, S, i, j)``: the
    interaction and, with other arguments, its usual wrong variants."""
    f = math.factorial
    weight = (lambda s, m: f(s) * f(m - s - 2) / f(m - 1)) if weight is None else weight
    delta = (lambda v, s, i, j: v(s | {i, j}) - v(s | {i}) - v(s | {j}) + v(s)) if delta is None else delta
    others = [p for p in (range(n) if players is None else players) if p not in (i, j)]
    return sum(weight(size, n) * delta(v, frozenset(s), i, j)
               for size in (range(n - 1) if sizes is None else sizes) for s in itertools.combinations(others, size))


def _variants(v: Callable, n: int, i: int, j: int, expected: float) -> dict[str, Callable[[], float]]:
    """What the usual wrong formulas give the pair ``(i, j)`` of the game ``v`` (each computed only when asked)."""
    f = math.factorial
    everyone = frozenset(range(n))
    return {
        "the weight |S|!(M−|S|−1)!/M! is the Shapley value's; a pair's coalitions lack two players: "
        "|S|!(M−|S|−2)!/(M−1)!": lambda: _pair_sum(v, n, i, j, weight=lambda s, m: f(s) * f(m - s - 1) / f(m)),
        "|S|!(M−|S|−2)!/M!: divide by (M−1)!, not M! (the weights over S ⊆ N∖{i,j} must sum to 1)":
            lambda: _pair_sum(v, n, i, j, weight=lambda s, m: f(s) * f(m - s - 2) / f(m)),
        "an unweighted average over the coalitions (1/2^(M−2) each) is the Banzhaf interaction; the Shapley "
        "interaction weighs each S by |S|!(M−|S|−2)!/(M−1)!":
            lambda: _pair_sum(v, n, i, j, weight=lambda s, m: 1 / 2 ** (m - 2)),
        "an unweighted sum over the coalitions; each S needs the weight |S|!(M−|S|−2)!/(M−1)!":
            lambda: _pair_sum(v, n, i, j, weight=lambda s, m: 1.0),
        "2/(M·C(M−1, |S|)) is the Shapley-Taylor interaction's weight (STII); the Shapley interaction index "
        "weighs each S by |S|!(M−|S|−2)!/(M−1)!":
            lambda: _pair_sum(v, n, i, j, weight=lambda s, m: 2 / (m * math.comb(m - 1, s))),
        "(|S|+1)!(M−|S|−2)!/(M−1)!: the weight's first factorial is |S|!, the size of S itself":
            lambda: _pair_sum(v, n, i, j, weight=lambda s, m: f(s + 1) * f(m - s - 2) / f(m - 1)),
        "v(S∪{i}) − v(S) is player i's marginal contribution (a Shapley value's term), not the pair's: the "
        "difference is v(S∪{i,j}) − v(S∪{i}) − v(S∪{j}) + v(S)":
            lambda: _pair_sum(v, n, i, j, delta=lambda v, s, i, j: v(s | {i}) - v(s)),
        "v(S∪{i,j}) − v(S) leaves out the single terms: the difference is "
        "v(S∪{i,j}) − v(S∪{i}) − v(S∪{j}) + v(S)":
            lambda: _pair_sum(v, n, i, j, delta=lambda v, s, i, j: v(s | {i, j}) - v(s)),
        "the sign is flipped: the difference is v(S∪{i,j}) − v(S∪{i}) − v(S∪{j}) + v(S)": lambda: -expected,
        "half the index: shap's interaction values split I_ij between (i, j) and (j, i); return the whole I_ij":
            lambda: expected / 2,
        "the empty coalition is left out: sizes run 0 … M−2": lambda: _pair_sum(v, n, i, j, sizes=range(1, n - 1)),
        "the largest coalitions (all the other M−2 players) are left out: sizes run 0 … M−2, "
        "range(n_players − 1), not range(n_players − 2)": lambda: _pair_sum(v, n, i, j, sizes=range(n - 2)),
        "off by one in M: the last player never joins S (players run 0 … M−1, range(n_players))":
            lambda: _pair_sum(v, n - 1, i, j, players=range(n - 1)),
        "only S = ∅: v({i,j}) − v({i}) − v({j}) + v(∅) is one term of the sum, not the interaction":
            lambda: v(frozenset({i, j})) - v(frozenset({i})) - v(frozenset({j})) + v(frozenset()),
        "only S = N∖{i,j}: v(N) − v(N∖{i}) − v(N∖{j}) + v(N∖{i,j}) is one term of the sum, not the interaction":
            lambda: v(everyone) - v(everyone - {i}) - v(everyone - {j}) + v(everyone - {i, j}),
    }


def _refuses_a_lone_player(name: str, candidate: Callable, table: dict[frozenset, float], n: int, i: int) -> None:
    """``candidate(value, n, i, i)`` must raise ``ValueError``: a player does not form a pair with itself."""
    call = f"shapley_interaction(value, {n}, {i}, {i})"
    try:
        got = candidate(_Game(table, n), n, i, i)
    except ValueError:
        return
    except NotImplementedError:
        raise CheckFailure(f"{name}: not implemented yet — replace the `raise NotImplementedError` stub") from None
    except Exception as err:
        raise CheckFailure(f"{name}: {call} raised {type(err).__name__}: {err}; i == j is no pair — check it "
                           f"first and raise ValueError") from err
    raise CheckFailure(f"{name}: {call} returned {_describe(got)}; i == j is no pair (a player does not interact "
                       f"with itself) — raise ValueError, e.g. `if i == j: raise ValueError(...)`")


def check_shapley_interaction(candidate: Callable, seed: int | None = None) -> None:
    """``candidate(value, n_players, i, j) -> float`` with ``value(frozenset) -> float`` must be the Shapley
    interaction index ``I_ij`` of the pair (see the module docstring), and raise ``ValueError`` for ``i == j``."""
    gen, seed = checker_generator(seed)
    name = "shapley_interaction"
    if not callable(candidate):
        raise CheckFailure(f"{name}: expected a function, got {_describe(candidate)}")
    cases = [  # (game, players, description, pairs): the first case tells every named mistake apart
        (_random_table(gen, 4, dummy=False), 4, "a random 4-player game", [(0, 1), (3, 1), (2, 0)]),
        (_random_table(gen, 2, dummy=False), 2, "a random 2-player game", [(1, 0)]),
        (_random_table(gen, 3, dummy=False), 3, "a random 3-player game", [(0, 2), (2, 1)]),
        (_random_table(gen, 5, dummy=True), 5, "a random 5-player game whose player 4 is a dummy",
         [(1, 3), (4, 0), (2, 4)]),
        (_xor_table(4, 1, 2), 4, "v(S) = 1 if exactly one of players 1, 2 is in S (xor)", [(1, 2), (2, 1), (0, 3)]),
    ]
    for table, n, what, pairs in cases:
        reference = _reference(table, n)  # (n, n)
        for i, j in pairs:
            expected = float(reference[i, j])
            inputs = f"{what}, pair ({i}, {j}) (seed={seed})"
            got = _number(name, guarded(name, f"shapley_interaction(value, {n}, {i}, {j}) for {inputs}", candidate,
                                        _Game(table, n), n, i, j), inputs)
            assert_close_or_hint(torch.tensor(got, dtype=torch.float64), torch.tensor(expected, dtype=torch.float64),
                                 what=name, inputs=inputs, atol=1e-10,
                                 variants=wrong_only(partial(_variants, table.__getitem__, n, i, j, expected),
                                                     expected))
    _refuses_a_lone_player(name, candidate, cases[0][0], 4, 2)
    assert_does_not_use(name, candidate, _BANNED)
    passed(name, "random 2- to 5-player games (a dummy pair gives 0), both orders of a pair, an xor (I = −2), "
                 "and i == j refused")

