"""SHAP from scratch: Shapley values of a prediction, exactly, by KernelSHAP regression and by permutations.

A prediction is a cooperative game. The players are the input's features (or a text's tokens), a coalition
``S`` is the set of players that are *present*, and ``v(S)`` is the model's output when only they are. The
Shapley value shares ``v(N) - v(∅)`` among the ``M`` players::

    φ_i = Σ_{S ⊆ N∖{i}}  |S|! (M - |S| - 1)! / M!  ·  [v(S ∪ {i}) - v(S)]

What "absent" means is a modelling choice and part of what an explanation says. For tabular inputs this
module uses the interventional value function of shap's KernelExplainer: an absent feature takes the value
of a background row, averaged over the ``R`` background rows::

    v(S) = 1/R Σ_r f(x_S, b^r_{N∖S})

:func:`~bigtut.explain.shap_tokens.token_shap` and ``token_permutation_shap`` (in
:mod:`bigtut.explain.shap_tokens`) mask, hide or delete absent tokens instead. Every estimator works on a *game*: a
function from coalition masks ``(K, M)`` bool (True = present) to values ``(K,)``; exact enumeration,
KernelSHAP and permutation sampling are written once against it, and each row of a batch ``(B, ...)`` is
its own game, played with the same seed (a row explained alone = the same row explained in a batch). Which
coalitions the samplers draw — the course's own, or shap's replayed (``shap_compatible``) — is in
:mod:`bigtut.explain.shap_designs`.

The three tabular methods here and the token methods keep the family's shape (:mod:`bigtut.explain`):
``method(f_or_model, <batch>, *, target=None, ..., seed=None, batch_size=None, probabilities=False)``
-> :class:`ShapleyValues`.

Shape legend:  B batch   M features (players)   R background rows   K coalitions   N rows sent to the model
               L tokens   P token players   C classes   V vocabulary
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

from bigtut.explain.arguments import (
    check_budget,
    check_flag,
    check_float_batch,
    check_target_rows,
    resolve_batch_size,
    resolve_seed,
)
from bigtut.explain.common import as_numpy, scalar_output, target_of_row, to_model_input
from bigtut.explain.shap_designs import _kernel_design, _shap_kernel_design, _shap_permutation_orders

__all__ = ["MAX_EXACT_PLAYERS", "Game", "ShapleyValues", "coalition_weight", "exact_game", "exact_shapley",
           "kernel_budget", "kernel_game", "kernel_shap", "permutation_shap"]

MAX_EXACT_PLAYERS = 20  # 2**20 coalitions: about a million model calls per background row
Game = Callable[[np.ndarray], np.ndarray]  # coalition masks (K, M) bool -> values v(S) (K,) float64


class ShapleyValues(NamedTuple):
    """Shapley values of a batch, float64 NumPy. ``attributions`` is shaped like the input (``(B, M)`` features
    or ``(B, L)`` tokens; 0 for a feature or token that is no player), ``base_value`` ``(B,)`` is each row's
    ``v(∅)``, and ``attributions.sum(1) == v(N) - base_value`` (efficiency); ``n_evaluations`` counts the model
    rows used for the whole batch."""

    attributions: np.ndarray
    base_value: np.ndarray
    n_evaluations: int


def coalition_weight(size: int, n_features: int) -> float:
    """Shapley weight ``|S|! (M - |S| - 1)! / M!`` of a coalition of ``size`` players lacking player ``i``."""
    n_features = check_budget("n_features", n_features, 1)
    size = check_budget("size", size, 0)
    if size >= n_features:
        raise ValueError(f"size must lie in [0, n_features={n_features}), got {size}")
    return 1.0 / (n_features * math.comb(n_features - 1, size))  # = s! (M-1-s)! / M!


# ---------------------------------------------------------------------------------------------------- the core
def _all_coalitions(m: int) -> np.ndarray:
    """All ``2**m`` coalitions ``(2**m, m)`` bool; row ``c`` holds the bits of the integer ``c`` (row 0 = ∅)."""
    codes = np.arange(2**m)  # (2^m,)
    return ((codes[:, None] >> np.arange(m)) & 1).astype(bool)  # (2^m, m)


def exact_game(game: Game, m: int) -> tuple[np.ndarray, float, int]:
    """``(φ (m,), v(∅), coalitions evaluated)`` by Shapley's formula over every coalition."""
    masks = _all_coalitions(m)  # (2^m, m)
    v = game(masks)  # (2^m,), v[code]
    codes, sizes = np.arange(2**m), masks.sum(1)  # (2^m,), (2^m,)
    weights = np.array([coalition_weight(s, m) for s in range(m)] + [0.0])  # (m+1,) indexed by |S|
    phi = np.zeros(m)
    for i in range(m):
        without = codes[~masks[:, i]]  # (2^(m-1),) coalitions lacking player i
        phi[i] = weights[sizes[without]] @ (v[without | (1 << i)] - v[without])
    return phi, float(v[0]), len(masks)


def kernel_budget(m: int, n_samples: int | None) -> int:
    """The number of coalitions KernelSHAP draws for ``m`` players (besides ∅ and N), or ``ValueError`` when
    ``n_samples`` is too small to determine ``m`` values."""
    cap = 2**m - 2  # every coalition but ∅ and N
    n_samples = min(2 * m + 2048, cap) if n_samples is None else n_samples
    if m > 1 and n_samples < 2 * m - 2:  # a coalition and its complement constrain one direction: m - 1 pairs
        raise ValueError(f"n_samples={n_samples} is too small to fit {m} Shapley values; need at least "
                         f"2M - 2 = {2 * m - 2} coalitions")
    return min(n_samples, cap)


def kernel_game(game: Game, m: int, n_samples: int | None, seed: int,
                shap_compatible: bool = False) -> tuple[np.ndarray, float, int]:
    """``(φ (m,), v(∅), coalitions evaluated)`` by KernelSHAP: weighted least squares with Σφ = v(N) - v(∅), on
    the coalitions of :func:`_kernel_design` (or, ``shap_compatible``, of :func:`_shap_kernel_design`)."""
    if m <= 1:  # one player takes everything: nothing to fit
        return exact_game(game, m)
    n_samples = kernel_budget(m, n_samples)
    masks, weights = (_shap_kernel_design(m, n_samples, seed) if shap_compatible
                      else _kernel_design(m, n_samples, np.random.default_rng(seed)))  # (K, m), (K,)
    empty, full = game(np.stack([np.zeros(m, bool), np.ones(m, bool)]))
    v = game(masks)  # (K,)
    # Minimise Σ_k w_k (v_k - v(∅) - z_k·φ)² under Σφ = v(N) - v(∅): substitute φ_m = total - Σ_{j<m} φ_j
    # (shap eliminates its last player the same way) and solve an ordinary weighted least-squares problem.
    z, total = masks.astype(float), full - empty  # (K, m)
    y = v - empty - z[:, -1] * total  # (K,)
    design = z[:, :-1] - z[:, -1:]  # (K, m-1)
    root = np.sqrt(weights)[:, None]  # (K, 1)
    head = np.linalg.lstsq(root * design, root[:, 0] * y, rcond=None)[0]  # (m-1,)
    return np.append(head, total - head.sum()), float(empty), len(masks) + 2


def _permutation_game(game: Game, m: int, n_permutations: int, seed: int,
                      shap_compatible: bool = False) -> tuple[np.ndarray, float, int]:
    """``(φ (m,), v(∅), coalitions evaluated)`` from ``n_permutations`` random orders and their reverses: shap's
    forward and backward passes (the backward pass removes the players in the order's order, i.e. adds them in
    the reverse order). ``shap_compatible``: the orders of :func:`_shap_permutation_orders`."""
    orders = (_shap_permutation_orders(m, n_permutations, seed) if shap_compatible
              else np.argsort(np.random.default_rng(seed).random((n_permutations, m)), axis=1))  # (P, m)
    orders = np.concatenate([orders, orders[:, ::-1]])  # (2P, m): every order and its reverse
    rank = np.argsort(orders, axis=1)  # (2P, m): rank[p, i] = place of player i in order p
    prefixes = rank[:, None, :] < np.arange(1, m)[None, :, None]  # (2P, m-1, m): the first k, k = 1..m-1
    empty, full = game(np.stack([np.zeros(m, bool), np.ones(m, bool)]))
    inner = game(prefixes.reshape(-1, m)).reshape(len(orders), m - 1)  # (2P, m-1)
    chain = np.column_stack([np.full(len(orders), empty), inner, np.full(len(orders), full)])  # (2P, m+1)
    gains = np.diff(chain, axis=1)  # (2P, m): what the k-th player of each order adds
    phi = np.take_along_axis(gains, rank, axis=1).mean(0)  # (m,)
    return phi, float(empty), 2 + prefixes.shape[0] * prefixes.shape[1]


# ---------------------------------------------------------------------------------------------------- tabular
def _check_tabular(f: Any, inputs: Any, background: Any) -> tuple[np.ndarray, np.ndarray, Callable]:
    """``inputs`` ``(B, M)`` and ``background`` ``(R, M)`` as float64 NumPy, and how a NumPy batch of rows goes
    to ``f``: a tensor for a module (on its device) or for tensor inputs (in their dtype), else NumPy float64.
    Bad arguments raise ``TypeError``/``ValueError``."""
    if not callable(f):
        raise TypeError(f"f must be a model or a function (N, M) -> (N,) or (N, C), got {type(f).__name__}")
    check_float_batch("inputs", inputs, 2, "(B, M)")
    if inputs.ndim != 2:
        raise ValueError(f"inputs must be a batch of feature rows (B, M), got shape {tuple(inputs.shape)}")
    if background is None:
        raise TypeError("background= is required: the rows (R, M) whose values absent features take")
    check_float_batch("background", background, 2, "(R, M)")
    if background.ndim != 2:
        raise ValueError(f"background must be rows (R, M), got shape {tuple(background.shape)}")
    if background.shape[1] != inputs.shape[1]:
        raise ValueError(f"inputs have M={inputs.shape[1]} features but background rows have {background.shape[1]}; "
                         "they must match")
    to_model = to_model_input(f, inputs)  # NumPy rows (N, M) -> what f takes
    background = as_numpy(to_model(as_numpy(background)))  # (R, M): the values f will see (in its dtype)
    return as_numpy(inputs), background, to_model


def _tabular_game(explained: Callable, x: np.ndarray, background: np.ndarray, players: np.ndarray,
                  batch_size: int, to_model: Callable) -> Game:
    """The interventional game of row ``x`` ``(M,)``: absent players take background values, present ones (and
    non-players) ``x``'s. At most ``batch_size`` rows go to the model per call."""
    n_bg, m = background.shape
    per_call = max(1, batch_size // n_bg)  # coalitions per chunk (one coalition = R rows)

    def game(masks: np.ndarray) -> np.ndarray:
        present = np.ones((len(masks), m), bool)  # (K, M)
        present[:, players] = masks
        out = [np.zeros(0)]
        for start in range(0, len(present), per_call):
            chunk = present[start:start + per_call]  # (k, M)
            rows = np.where(chunk[:, None, :], x, background).reshape(-1, m)  # (k·R, M)
            values = np.concatenate([explained(to_model(rows[i:i + batch_size]))
                                     for i in range(0, len(rows), batch_size)])  # (k·R,)
            out.append(values.reshape(len(chunk), n_bg).mean(1))  # (k,): v(S) averages over the background
        return np.concatenate(out)

    return game


def _explain_rows(f: Callable, inputs: Any, background: Any, target: Any, batch_size: Any, probabilities: Any,
                  estimate: Callable, varying_only: bool = False,
                  check_players: Callable[[int], Any] | None = None) -> ShapleyValues:
    """Run ``estimate(game, m)`` -> ``(φ, v(∅), coalitions)`` on each row's game. The players are every feature,
    or with ``varying_only`` those whose value differs from some background row; ``check_players(m)`` vets each
    row's number of players before the first model call."""
    x, background, to_model = _check_tabular(f, inputs, background)  # (B, M), (R, M)
    target = check_target_rows(target, len(x))
    probabilities = check_flag("probabilities", probabilities)
    batch_size = resolve_batch_size(batch_size)
    players = [np.flatnonzero((background != row).any(0)) if varying_only else np.arange(len(row))
               for row in x]  # B x (M',): which features of each row play
    for p in players:
        if check_players is not None:
            check_players(len(p))
    attributions, base = np.zeros(x.shape), np.zeros(len(x))  # (B, M), (B,)
    n_evaluations = 0
    for b, row in enumerate(x):
        explained = scalar_output(f, target_of_row(target, b), probabilities)  # (N, M) -> (N,)
        game = _tabular_game(explained, row, background, players[b], batch_size, to_model)
        phi, base[b], n_coalitions = estimate(game, len(players[b]))
        attributions[b, players[b]] = phi
        n_evaluations += n_coalitions * len(background)
    return ShapleyValues(attributions, base, n_evaluations)


def exact_shapley(f: Callable, inputs: Any, *, target: int | Sequence[int] | None = None, background: Any,
                  batch_size: int | None = None, probabilities: bool = False) -> ShapleyValues:
    """Exact Shapley values of ``f`` at each row of ``inputs`` ``(B, M)``, over all ``2**M`` coalitions
    (``M <= 20``).

    ``f`` maps a batch ``(N, M)`` to ``(N,)`` or ``(N, C)``: a module gets tensors on its device (in the dtype
    of tensor ``inputs``, else of its parameters), a function gets tensors for tensor ``inputs`` and NumPy
    float64 rows for NumPy ``inputs``. ``target`` (an int or one per row) picks the column. ``v(S)`` averages
    ``f`` over ``background`` ``(R, M)`` with the row's values on ``S``; ``batch_size`` bounds the rows of one
    call to ``f``. Returns :class:`ShapleyValues` ``(attributions (B, M), base_value (B,), n_evaluations =
    B · 2^M · R)``; ``base_value = v(∅)``, the mean output over the background.
    """
    def check_players(m: int) -> None:
        if m > MAX_EXACT_PLAYERS:
            raise ValueError(f"exact_shapley enumerates 2**M coalitions and allows M <= {MAX_EXACT_PLAYERS}, got "
                             f"M={m}; use kernel_shap or permutation_shap")

    return _explain_rows(f, inputs, background, target, batch_size, probabilities, exact_game,
                         check_players=check_players)


def kernel_shap(f: Callable, inputs: Any, *, target: int | Sequence[int] | None = None, background: Any,
                n_samples: int | None = None, seed: int | None = None, batch_size: int | None = None,
                probabilities: bool = False, shap_compatible: bool = False) -> ShapleyValues:
    """KernelSHAP: Shapley values as the weighted linear regression ``v(S) ≈ v(∅) + Σ_{i∈S} φ_i`` over
    coalitions ``S`` weighted by the Shapley kernel, with efficiency ``Σφ = f(x) - v(∅)`` imposed exactly.

    As in shap's KernelExplainer, only features whose value in a row differs from some background row are
    players (the others cannot change any ``v(S)`` and get 0). ``n_samples`` is the number of coalitions besides
    ∅ and N (default ``2M + 2048``); from ``2**M - 2`` on every coalition enters once, deterministically, and the
    regression returns the exact Shapley values. Below, coalitions are sampled with a ``seed``-ed generator (see
    :func:`_kernel_design`; the same draw for every row); more samples, smaller error.

    ``shap_compatible=True`` draws shap 0.51's coalitions instead (:func:`_shap_kernel_design`): the answer then
    equals ``KernelExplainer(f, background).shap_values(x, nsamples=n_samples, l1_reg=False)`` with
    ``np.random.seed(seed)`` called before each row (shap samples from NumPy's global generator and never seeds
    it), up to rounding. Both samplers are valid; the default one draws sizes by the kernel mass directly and each
    coalition with NumPy's ``Generator``, shap's halves the mass of a paired size and draws permutations from the
    legacy global ``RandomState``, so their samples differ. Other arguments and the result as
    :func:`exact_shapley`, with ``n_evaluations = Σ_rows (K + 2) · R``.
    """
    n_samples = None if n_samples is None else check_budget("n_samples", n_samples)
    seed, shap_compatible = resolve_seed(seed), check_flag("shap_compatible", shap_compatible)
    return _explain_rows(f, inputs, background, target, batch_size, probabilities,
                         lambda game, m: kernel_game(game, m, n_samples, seed, shap_compatible), varying_only=True,
                         check_players=lambda m: kernel_budget(m, n_samples))


def permutation_shap(f: Callable, inputs: Any, *, target: int | Sequence[int] | None = None, background: Any,
                     n_permutations: int = 10, seed: int | None = None, batch_size: int | None = None,
                     probabilities: bool = False) -> ShapleyValues:
    """Shapley values as the mean marginal contribution of each feature along random orders of the features.

    Each of the ``n_permutations`` random orders (``seed``-ed, the same for every row) is used together with its
    reverse (antithetic sampling, which lowers the variance; for ``M = 2`` one pair is every order, so the
    answer is exact). Unbiased, and exact as the number of orders grows; efficiency holds for every sample.
    Other arguments and the result as :func:`exact_shapley`, with ``n_evaluations = B · (2 + 2P(M-1)) · R``.
    """
    n_permutations, seed = check_budget("n_permutations", n_permutations), resolve_seed(seed)
    return _explain_rows(f, inputs, background, target, batch_size, probabilities,
                         lambda game, m: _permutation_game(game, m, n_permutations, seed))
