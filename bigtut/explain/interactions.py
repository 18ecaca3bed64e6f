"""Shapley interaction values of pairs of players: what two features (or two tokens) do *together* that neither
does alone.

A Shapley value gives each player one number, so it cannot tell "a and b each matter" from "a and b matter only
together" (an xor). The Shapley interaction index of Grabisch & Roubens (1999) gives every *pair* ``{i, j}``
the weighted mean of its discrete second derivative over the coalitions ``S`` without them::

    I_ij = Σ_{S ⊆ N∖{i,j}}  |S|! (M - |S| - 2)! / (M - 1)!  ·  [v(S ∪ {i,j}) - v(S ∪ {i}) - v(S ∪ {j}) + v(S)]

The weights over ``S`` sum to 1: ``I_ij`` is the mean second difference when the other players come in a random
order and the pair joins it at a random place (the players before the pair form ``S``). ``I_ij > 0``: together
they add more than their two parts (an "and"); ``< 0``: less (an "or", or an xor, where ``I_ij = -2``); ``0`` for
an additive game.

The games are those of :mod:`bigtut.explain.shap` (absent features take background values) and
:mod:`bigtut.explain.shap_tokens` (absent tokens are padded, masked or deleted). Every coalition is evaluated once;
the first-order values come from :func:`~bigtut.explain.shap.exact_game` on that same table (so they equal
:func:`~bigtut.explain.shap.exact_shapley` / :func:`~bigtut.explain.shap_tokens.token_shap`), and all ``M (M-1)/2``
pairs from four matrix products over it (:func:`exact_interaction_game`).

Shape legend:  B batch   M features (players)   L tokens   P token players   K = 2^M coalitions
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch

from bigtut.explain.arguments import check_budget
from bigtut.explain.shap import MAX_EXACT_PLAYERS, Game, _all_coalitions, _explain_rows, exact_game
from bigtut.explain.shap_tokens import _token_games

__all__ = ["INTERACTION_ORDERS", "MAX_INTERACTION_PLAYERS", "InteractionResult", "exact_interaction_game",
           "interaction_weight", "shapley_interactions", "token_shapley_interactions"]

INTERACTION_ORDERS = (2,)  # pairs; order 1 is the Shapley value (exact_shapley, token_shap)
MAX_INTERACTION_PLAYERS = 14  # default limit: 2**14 = 16384 coalitions per row


class InteractionResult(NamedTuple):
    """Shapley values and pairwise Shapley interactions of a batch, float64 NumPy. ``attributions`` ``(B, M)`` or
    ``(B, L)`` are the first-order Shapley values (as :class:`~bigtut.explain.shap.ShapleyValues`, so the metrics
    read them), ``interactions`` ``(B, M, M)`` or ``(B, L, L)`` the symmetric matrix of ``I_ij`` (diagonal 0, and 0
    in the rows and columns of non-players), ``base_value`` ``(B,)`` each row's ``v(∅)``, ``n_evaluations`` the
    model rows used for the whole batch."""

    attributions: np.ndarray
    interactions: np.ndarray
    base_value: np.ndarray
    n_evaluations: int


def interaction_weight(size: int, n_players: int) -> float:
    """Shapley interaction weight ``|S|! (M - |S| - 2)! / (M - 1)!`` of a coalition of ``size`` players that lacks
    both players of a pair, among ``M`` = ``n_players``."""
    n_players = check_budget("n_players", n_players, 2)
    size = check_budget("size", size, 0)
    if size > n_players - 2:
        raise ValueError(f"size must lie in [0, n_players - 2 = {n_players - 2}], got {size}")
    return 1.0 / ((n_players - 1) * math.comb(n_players - 2, size))  # = s! (M-2-s)! / (M-1)!


def _check_order(order: Any) -> None:
    if isinstance(order, bool) or not isinstance(order, int) or order not in INTERACTION_ORDERS:
        raise ValueError(f"order={order!r} is not supported: the interactions are of pairs, order in "
                         f"{INTERACTION_ORDERS} (order 1 is the Shapley value: use exact_shapley or token_shap)")


def _check_max_players(max_players: Any) -> int:
    max_players = check_budget("max_players", max_players, 2)
    if max_players > MAX_EXACT_PLAYERS:
        raise ValueError(f"max_players must be <= {MAX_EXACT_PLAYERS} (2**{MAX_EXACT_PLAYERS} coalitions per row), "
                         f"got {max_players}")
    return max_players


def _player_limit(method: str, max_players: int) -> Callable[[int], None]:
    """A check that a row's number of players can be enumerated (``ValueError`` naming the count and the limit)."""
    def check(m: int) -> None:
        if m > max_players:
            raise ValueError(f"{method} enumerates all 2**M coalitions: got M={m} players, more than "
                             f"max_players={max_players}; raise max_players (up to {MAX_EXACT_PLAYERS}; the cost "
                             f"doubles per player) or explain fewer features/tokens")

    return check


def exact_interaction_game(game: Game, m: int) -> tuple[np.ndarray, np.ndarray, float, int]:
    """``(φ (m,), I (m, m), v(∅), coalitions evaluated)`` of ``game`` over ``m`` players, from one evaluation of
    all ``2**m`` coalitions.

    ``φ`` is :func:`~bigtut.explain.shap.exact_game`'s on the same values. For the pairs, write the sum over
    ``S ⊆ N∖{i,j}`` as a sum over all coalitions ``C``: with ``a = [i ∈ C] + [j ∈ C]``, ``C`` enters with sign
    ``(-1)^a`` and weight ``w(|C| - a)``. Splitting by ``a``, each part is a matrix product over the coalition
    table ``X`` ``(K, m)`` (1 = present)::

        I = X̄ᵀ diag(u₀) X̄ - X̄ᵀ diag(u₁) X - Xᵀ diag(u₁) X̄ + Xᵀ diag(u₂) X,   u_a(C) = v(C) · w(|C| - a),  X̄ = 1 - X
    """
    masks = _all_coalitions(m)  # (K, m), row c = the bits of c
    values = np.asarray(game(masks), dtype=np.float64)  # (K,)
    phi, empty, n_coalitions = exact_game(lambda asked: values, m)  # the same table: no second evaluation
    interactions = np.zeros((m, m))
    if m >= 2:
        weights = np.array([interaction_weight(s, m) for s in range(m - 1)] + [0.0, 0.0, 0.0])  # (m+2,) by |S|
        sizes = masks.sum(1)  # (K,)
        present = masks.astype(np.float64)  # (K, m)
        absent = 1.0 - present  # (K, m)
        u = [values * weights[np.clip(sizes - a, -1, None)] for a in range(3)]  # 3 x (K,); |S| = -1 -> w[-1] = 0
        interactions = ((absent * u[0][:, None]).T @ absent - (absent * u[1][:, None]).T @ present
                        - (present * u[1][:, None]).T @ absent + (present * u[2][:, None]).T @ present)  # (m, m)
        interactions = (interactions + interactions.T) / 2  # symmetric up to rounding already: exactly so
        np.fill_diagonal(interactions, 0.0)
    return phi, interactions, empty, n_coalitions


def shapley_interactions(f: Callable, inputs: Any, *, target: int | Sequence[int] | None = None, background: Any,
                         order: int = 2, max_players: int = MAX_INTERACTION_PLAYERS, batch_size: int | None = None,
                         probabilities: bool = False) -> InteractionResult:
    """Exact Shapley values and pairwise Shapley interactions of ``f`` at each row of ``inputs`` ``(B, M)``, over
    all ``2**M`` coalitions (``M <= max_players``).

    The game is :func:`~bigtut.explain.shap.exact_shapley`'s: ``v(S)`` averages ``f`` over ``background`` ``(R, M)``
    with the row's values on ``S``; ``f``, ``target``, ``batch_size`` and ``probabilities`` as there. ``order``
    must be 2 (pairs). Returns :class:`InteractionResult` ``(attributions (B, M) = exact_shapley's, interactions
    (B, M, M), base_value (B,), n_evaluations = B · 2^M · R)``.
    """
    _check_order(order)
    check = _player_limit("shapley_interactions", _check_max_players(max_players))
    matrices = []  # (M, M) per row, in row order

    def estimate(game: Game, m: int) -> tuple[np.ndarray, float, int]:
        phi, interactions, empty, n_coalitions = exact_interaction_game(game, m)
        matrices.append(interactions)
        return phi, empty, n_coalitions

    values = _explain_rows(f, inputs, background, target, batch_size, probabilities, estimate, check_players=check)
    return InteractionResult(values.attributions, np.stack(matrices), values.base_value, values.n_evaluations)


def token_shapley_interactions(model: torch.nn.Module, input_ids: torch.Tensor,
                               attention_mask: torch.Tensor | None = None, *,
                               target: int | Sequence[int] | None = None, absent: str = "pad",
                               keep_ids: Sequence[int] = (), mask_id: int | None = None, pad_id: int | None = None,
                               order: int = 2, max_players: int = MAX_INTERACTION_PLAYERS,
                               batch_size: int | None = None, probabilities: bool = False,
                               position: int | Sequence[int] | None = None) -> InteractionResult:
    """Exact Shapley values and pairwise Shapley interactions of the tokens of each text of ``input_ids`` ``(B, L)``.

    The game is :func:`~bigtut.explain.shap_tokens.token_shap`'s (same ``target``, ``absent`` = "pad" / "mask" /
    "delete", ``keep_ids``, ``mask_id``, ``pad_id``, ``position``, ``batch_size``, ``probabilities``): the players
    are the real tokens whose id is not in ``keep_ids`` (for a language model, not after ``position``), at most
    ``max_players`` per row. ``order`` must be 2 (pairs).

    Returns :class:`InteractionResult` ``(attributions (B, L) = token_shap's exact values, interactions (B, L, L),
    base_value (B,), n_evaluations)``: 0 at non-players, ``n_evaluations = B + Σ_rows 2^P`` (the first ``B``: one
    call on the texts themselves). Put the model in ``eval()`` mode.
    """
    _check_order(order)
    check = _player_limit("token_shapley_interactions", _check_max_players(max_players))
    games, (B, L) = _token_games(model, input_ids, attention_mask, target=target, absent=absent, mask_id=mask_id,
                                 pad_id=pad_id, keep_ids=keep_ids, batch_size=batch_size,
                                 probabilities=probabilities, position=position, check_players=check)
    attributions, interactions, base = np.zeros((B, L)), np.zeros((B, L, L)), np.zeros(B)  # (B, L), (B, L, L), (B,)
    n_evaluations = B  # the probe
    for b, (index, game) in enumerate(games):  # index (P,): the player positions of row b
        phi, pairs, base[b], n_coalitions = exact_interaction_game(game, len(index))
        attributions[b, index] = phi
        interactions[b, index[:, None], index[None, :]] = pairs  # (P, P) into (L, L)
        n_evaluations += n_coalitions
    return InteractionResult(attributions, interactions, base, n_evaluations)
