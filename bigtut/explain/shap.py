"""SHAP from scratch: Shapley values of one prediction, exactly, by KernelSHAP regression and by permutations.

A prediction is a cooperative game. The players are the input's features (or a text's tokens), a coalition
``S`` is the set of players that are *present*, and ``v(S)`` is the model's output when only they are. The
Shapley value shares ``v(N) - v(∅)`` among the ``M`` players::

    φ_i = Σ_{S ⊆ N∖{i}}  |S|! (M - |S| - 1)! / M!  ·  [v(S ∪ {i}) - v(S)]

What "absent" means is a modelling choice and part of what an explanation says. For tabular inputs this
module uses the interventional value function of shap's KernelExplainer: an absent feature takes the value
of a background row, averaged over the ``B`` background rows::

    v(S) = 1/B Σ_b f(x_S, b_{N∖S})

:func:`token_shap` masks, hides or deletes absent tokens instead. Every estimator works on a *game*: a
function from coalition masks ``(K, M)`` bool (True = present) to values ``(K,)``; exact enumeration,
KernelSHAP and permutation sampling are written once against it.

Shape legend:  M features (players)   B background rows   K coalitions   L tokens   C classes
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
import torch

from bigtut.explain.common import as_numpy, check_budget, scalar_output, select_target

__all__ = ["ShapleyValues", "coalition_weight", "exact_shapley", "kernel_shap", "permutation_shap", "token_shap"]

MAX_EXACT_PLAYERS = 20  # 2**20 coalitions: about a million model calls per background row
ABSENT_MODES = ("mask", "pad", "delete")
Game = Callable[[np.ndarray], np.ndarray]  # coalition masks (K, M) bool -> values v(S) (K,) float64


class ShapleyValues(NamedTuple):
    """One explanation. ``values`` is shaped like the input (``(M,)`` features or ``(L,)`` tokens; 0 for a
    feature that is no player), ``base_value`` is ``v(∅)`` and ``values.sum() == v(N) - base_value``
    (efficiency); ``n_evaluations`` counts the rows the model was run on."""

    values: np.ndarray
    base_value: float
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


def _exact_game(game: Game, m: int) -> tuple[np.ndarray, float, int]:
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


def _kernel_design(m: int, n_samples: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """KernelSHAP's coalitions ``(K, m)`` and regression weights ``(K,)`` for a budget of ``n_samples``.

    The Shapley kernel gives all coalitions of size ``s`` together the mass ``(m-1) / (s (m-s))``; sizes ``s`` and
    ``m-s`` are handled as a pair. Going from the smallest size up, a size pair whose share of the remaining
    budget covers all its coalitions is enumerated, each coalition weighted by its exact kernel weight: the
    coalitions and weights of shap's KernelExplainer (``n_samples >= 2**m - 2`` enumerates them all). The rest of
    the budget draws a size pair by kernel mass, a random coalition of that size *and its complement*
    (antithetic), counts repeats, and scales the counts to the kernel mass left over.
    """
    n_sizes, n_paired = math.ceil((m - 1) / 2), (m - 1) // 2  # a middle size (m even) is its own complement
    mass = np.array([(m - 1) / (s * (m - s)) for s in range(1, n_sizes + 1)])  # (n_sizes,)
    mass[:n_paired] *= 2  # sizes s and m - s together
    mass /= mass.sum()
    masks, weights = [np.zeros((0, m), bool)], [np.zeros(0)]
    left, share, n_full = n_samples, mass.copy(), 0
    for s in range(1, n_sizes + 1):
        count = math.comb(m, s) * (2 if s <= n_paired else 1)  # coalitions of size s (and m - s)
        if left * share[s - 1] / count < 1 - 1e-8:
            break
        n_full, left = n_full + 1, left - count
        if share[s - 1] < 1:
            share /= 1 - share[s - 1]  # what is left of the budget goes to the larger sizes
        chosen = np.array(list(itertools.combinations(range(m), s)))  # (comb(m, s), s)
        size_masks = np.zeros((len(chosen), m), bool)
        size_masks[np.arange(len(chosen))[:, None], chosen] = True
        if s <= n_paired:
            size_masks = np.concatenate([size_masks, ~size_masks])  # (count, m)
        masks.append(size_masks)
        weights.append(np.full(count, mass[s - 1] / count))
    if n_full < n_sizes and left > 0:
        sizes = n_full + 1 + rng.choice(n_sizes - n_full, size=4 * left, p=mass[n_full:] / mass[n_full:].sum())
        counts: dict[bytes, list] = {}  # coalition -> [mask (m,), times drawn]
        for s in sizes:
            if len(counts) >= left:
                break
            drawn = np.zeros(m, bool)
            drawn[rng.choice(m, size=s, replace=False)] = True
            for mask in (drawn, ~drawn):
                if mask.tobytes() in counts:
                    counts[mask.tobytes()][1] += 1
                elif len(counts) < left:
                    counts[mask.tobytes()] = [mask, 1]
        drawn_weights = np.array([c for _, c in counts.values()], dtype=float)  # (K_sampled,)
        masks.append(np.array([mask for mask, _ in counts.values()]).reshape(-1, m))
        weights.append(drawn_weights * mass[n_full:].sum() / drawn_weights.sum())
    return np.concatenate(masks), np.concatenate(weights)


def _kernel_game(game: Game, m: int, n_samples: int | None, seed: int) -> tuple[np.ndarray, float, int]:
    """``(φ (m,), v(∅), coalitions evaluated)`` by KernelSHAP: weighted least squares with Σφ = v(N) - v(∅)."""
    n_samples = None if n_samples is None else check_budget("n_samples", n_samples)
    if m <= 1:  # one player takes everything: nothing to fit
        return _exact_game(game, m)
    cap = 2**m - 2  # every coalition but ∅ and N
    n_samples = min(2 * m + 2048, cap) if n_samples is None else n_samples
    if n_samples < 2 * m - 2:  # a coalition and its complement constrain one direction: m - 1 pairs for m - 1 unknowns
        raise ValueError(f"n_samples={n_samples} is too small to fit {m} Shapley values; need at least "
                         f"2M - 2 = {2 * m - 2} coalitions")
    masks, weights = _kernel_design(m, min(n_samples, cap), np.random.default_rng(seed))  # (K, m), (K,)
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


# ---------------------------------------------------------------------------------------------------- tabular
def _check_data(x, background) -> tuple[np.ndarray, np.ndarray]:
    """``x`` as ``(M,)`` and ``background`` as ``(B, M)`` float64, or ``ValueError``."""
    x, background = as_numpy(x), as_numpy(background)
    if x.ndim == 2 and len(x) == 1:
        x = x[0]
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"x must be one input of M >= 1 features, shape (M,) or (1, M); got shape {x.shape}")
    if background.ndim != 2 or len(background) == 0:
        raise ValueError(f"background must be (B, M) with B >= 1 rows, got shape {background.shape}")
    if background.shape[1] != len(x):
        raise ValueError(f"x has {len(x)} features but background rows have {background.shape[1]}; they must match")
    return x, background


def _tabular_game(f, x, background, players, target, probabilities, batch_size) -> Game:
    """The interventional game: absent players take background values, present ones (and non-players) ``x``'s."""
    explained, n_bg = scalar_output(f, target, probabilities), len(background)
    per_call = max(1, check_budget("batch_size", batch_size) // n_bg)  # coalitions per model call

    def game(masks: np.ndarray) -> np.ndarray:
        present = np.ones((len(masks), len(x)), bool)  # (K, M)
        present[:, players] = masks
        out = [np.zeros(0)]
        for start in range(0, len(present), per_call):
            chunk = present[start:start + per_call]  # (k, M)
            rows = np.where(chunk[:, None, :], x, background).reshape(-1, len(x))  # (k·B, M)
            values = explained(rows)  # (k·B,)
            if values.shape != (len(rows),):
                raise ValueError(f"f must return one output (or one row) per input row; got {values.shape} "
                                 f"for {len(rows)} rows")
            out.append(values.reshape(len(chunk), n_bg).mean(1))  # (k,): v(S) averages over the background
        return np.concatenate(out)

    return game


def exact_shapley(f: Callable, x, background, target: int | None = None, probabilities: bool = False,
                  batch_size: int = 4096) -> ShapleyValues:
    """Exact Shapley values of ``f`` at ``x`` ``(M,)`` over all ``2**M`` coalitions (``M <= 20``).

    ``f`` maps a batch ``(N, M)`` float64 to ``(N,)`` or ``(N, C)`` (NumPy or torch); ``target`` picks the
    column. ``v(S)`` averages ``f`` over ``background`` ``(B, M)`` with ``x``'s values on ``S``; ``batch_size``
    bounds the rows of one call to ``f``. ``base_value = v(∅)``, the mean output over the background.
    """
    x, background = _check_data(x, background)
    if len(x) > MAX_EXACT_PLAYERS:
        raise ValueError(f"exact_shapley enumerates 2**M coalitions and allows M <= {MAX_EXACT_PLAYERS}, got "
                         f"M={len(x)}; use kernel_shap or permutation_shap")
    game = _tabular_game(f, x, background, np.arange(len(x)), target, probabilities, batch_size)
    phi, base, n_coalitions = _exact_game(game, len(x))
    return ShapleyValues(phi, base, n_coalitions * len(background))


def kernel_shap(f: Callable, x, background, n_samples: int | None = None, seed: int = 0, target: int | None = None,
                probabilities: bool = False, batch_size: int = 4096) -> ShapleyValues:
    """KernelSHAP: Shapley values as the weighted linear regression ``v(S) ≈ v(∅) + Σ_{i∈S} φ_i`` over
    coalitions ``S`` weighted by the Shapley kernel, with efficiency ``Σφ = f(x) - v(∅)`` imposed exactly.

    As in shap's KernelExplainer, only features whose value in ``x`` differs from some background row are
    players (the others cannot change any ``v(S)`` and get 0). ``n_samples`` is the number of coalitions besides
    ∅ and N (default ``2M + 2048``); from ``2**M - 2`` on every coalition enters once, deterministically, and the
    regression returns the exact Shapley values. Below, coalitions are sampled with a ``seed``-ed generator (see
    :func:`_kernel_design`); more samples, smaller error. Other arguments as :func:`exact_shapley`.
    """
    x, background = _check_data(x, background)
    players = np.flatnonzero((background != x).any(0))  # (M',) the varying features
    game = _tabular_game(f, x, background, players, target, probabilities, batch_size)
    phi, base, n_coalitions = _kernel_game(game, len(players), n_samples, seed)
    values = np.zeros(len(x))
    values[players] = phi
    return ShapleyValues(values, base, n_coalitions * len(background))


def permutation_shap(f: Callable, x, background, n_permutations: int = 10, seed: int = 0,
                     target: int | None = None, probabilities: bool = False, batch_size: int = 4096) -> ShapleyValues:
    """Shapley values as the mean marginal contribution of each feature along random orders of the features.

    Each of the ``n_permutations`` random orders is used together with its reverse (antithetic sampling,
    which lowers the variance; for ``M = 2`` one pair is every order, so the answer is exact). Unbiased, and
    exact as the number of orders grows; efficiency holds for every sample. Other arguments as
    :func:`exact_shapley`.
    """
    x, background = _check_data(x, background)
    n_permutations, m = check_budget("n_permutations", n_permutations), len(x)
    game = _tabular_game(f, x, background, np.arange(m), target, probabilities, batch_size)
    orders = np.argsort(np.random.default_rng(seed).random((n_permutations, m)), axis=1)  # (P, M)
    orders = np.concatenate([orders, orders[:, ::-1]])  # (2P, M): every order and its reverse
    rank = np.argsort(orders, axis=1)  # (2P, M): rank[p, i] = place of feature i in order p
    prefixes = rank[:, None, :] < np.arange(1, m)[None, :, None]  # (2P, M-1, M): the first k, k = 1..M-1
    empty, full = game(np.stack([np.zeros(m, bool), np.ones(m, bool)]))
    inner = game(prefixes.reshape(-1, m)).reshape(len(orders), m - 1)  # (2P, M-1)
    chain = np.column_stack([np.full(len(orders), empty), inner, np.full(len(orders), full)])  # (2P, M+1)
    gains = np.diff(chain, axis=1)  # (2P, M): what the k-th feature of each order adds
    values = np.take_along_axis(gains, rank, axis=1).mean(0)  # (M,)
    return ShapleyValues(values, float(empty), (2 + prefixes.shape[0] * prefixes.shape[1]) * len(background))


# ---------------------------------------------------------------------------------------------------- tokens
def token_shap(model: torch.nn.Module, input_ids, attention_mask=None, target: int | None = None, *,
               absent: str = "mask", mask_id: int | None = None, pad_id: int | None = None,
               keep_ids: Sequence[int] = (), n_samples: int | None = None, seed: int = 0, exact_up_to: int = 10,
               probabilities: bool = False, position: int | None = None, batch_size: int = 256) -> ShapleyValues:
    """Shapley values of the tokens of one text ``input_ids`` ``(1, L)`` or ``(L,)`` (values in the same shape).

    ``model(ids (K, L), attention_mask=(K, L))`` is a classifier (logits ``(K, C)``) or a language model
    (``(K, L, V)``; then ``target`` is a token id and the logit is read at ``position``, default the last real
    token: the next-token prediction). The players are the real tokens (``attention_mask`` 1) whose id is not
    in ``keep_ids`` (say [CLS] and [SEP], which stay present); for a language model also not after
    ``position`` (causal attention makes them dummies).

    What an absent token is decides what the values mean:

    * ``"mask"``: its id becomes ``mask_id`` (BERT's [MASK]); the model still sees a token there;
    * ``"pad"``: ``attention_mask`` 0, the model cannot see it and every other token keeps its position;
    * ``"delete"``: removed, the later tokens move left (a shorter text, padded on the right with ``pad_id``).

    With "pad"/"delete" the language model's token at ``position`` is no player (its prediction is read
    there), and a classifier needs a kept token (an id in ``keep_ids``) so that no text is empty. Exact for
    at most ``exact_up_to`` players, else KernelSHAP with ``n_samples`` coalitions (:func:`kernel_shap`).
    ``values`` ``(L,)`` is 0 at non-players; ``base_value`` is the value with every player absent. Put the
    model in ``eval()`` mode: dropout would make the game random.
    """
    if absent not in ABSENT_MODES:
        raise ValueError(f"absent must be one of {ABSENT_MODES}, got {absent!r}")
    if absent == "mask" and mask_id is None:
        raise ValueError("absent='mask' replaces tokens by mask_id; pass mask_id= (e.g. the id of [MASK])")
    if check_budget("exact_up_to", exact_up_to, 0) > MAX_EXACT_PLAYERS:
        raise ValueError(f"exact_up_to must be <= {MAX_EXACT_PLAYERS}, got {exact_up_to}")
    ids = torch.as_tensor(input_ids)
    ids = ids[0] if ids.dim() == 2 and len(ids) == 1 else ids
    if ids.dim() != 1 or ids.is_floating_point() or len(ids) == 0:
        raise ValueError(f"input_ids must be one text of integer ids, (1, L) or (L,); got {tuple(ids.shape)}")
    n_tokens = len(ids)
    real = (torch.ones(n_tokens, dtype=torch.bool, device=ids.device) if attention_mask is None
            else torch.as_tensor(attention_mask, device=ids.device).reshape(-1) != 0)  # (L,) True at real tokens
    if len(real) != n_tokens:
        raise ValueError(f"attention_mask has {len(real)} entries for {n_tokens} tokens")
    with torch.no_grad():  # one call on the text itself tells a classifier (K, C) from a language model (K, L, V)
        probe = model(ids[None], attention_mask=real[None].long())
    is_lm = getattr(probe, "logits", probe).dim() == 3  # a GPT returns a GPTOutput(logits, loss)
    if position is not None and not is_lm:
        raise ValueError("position is only for language models, whose logits are (B, L, V)")
    players = real & ~torch.isin(ids, torch.as_tensor(list(keep_ids), dtype=ids.dtype, device=ids.device))
    if is_lm:
        position = int(torch.nonzero(real)[-1, 0]) if position is None else position
        if not (0 <= position < n_tokens and real[position]):
            raise ValueError(f"position must index a real token in [0, {n_tokens}), got {position}")
        players[position + 1:] = False
        if absent != "mask":
            players[position] = False
    if absent != "mask" and not bool((real & ~players).any()):
        raise ValueError(f"absent={absent!r} with every token a player leaves an empty text; keep one present "
                         "with keep_ids= (e.g. the ids of [CLS] and [SEP])")
    index, fill = torch.nonzero(players)[:, 0], 0 if pad_id is None else pad_id  # (P,) player positions
    batch_size = check_budget("batch_size", batch_size)

    def game(masks: np.ndarray) -> np.ndarray:
        out = [np.zeros(0)]
        for start in range(0, len(masks), batch_size):
            chunk = torch.as_tensor(masks[start:start + batch_size], device=ids.device)  # (k, P)
            gone = torch.zeros(len(chunk), n_tokens, dtype=torch.bool, device=ids.device)  # (k, L)
            gone[:, index] = ~chunk
            batch, seen = ids.repeat(len(chunk), 1), real.repeat(len(chunk), 1)  # (k, L), (k, L)
            read = torch.full((len(chunk),), position or 0, device=ids.device)  # (k,): where an LM is read
            if absent == "mask":
                batch[gone] = mask_id
            else:
                seen &= ~gone
            if absent == "delete":
                read = seen[:, :(position or 0) + 1].sum(1) - 1  # (k,): the read token's new place
                order = torch.argsort((~seen).to(torch.int8), dim=1, stable=True)  # (k, L): kept tokens first
                batch, seen = batch.gather(1, order), seen.gather(1, order)
            if absent != "mask":
                batch[~seen] = fill  # never attended
            with torch.no_grad():
                out_k = model(batch, attention_mask=seen.long())
            logits = getattr(out_k, "logits", out_k)  # (k, C) or (k, L, V)
            if is_lm:
                logits = logits[torch.arange(len(chunk), device=logits.device), read.to(logits.device)]  # (k, V)
            out.append(select_target(as_numpy(logits), target, probabilities))  # (k,)
        return np.concatenate(out)

    m = len(index)
    phi, base, n_coalitions = _exact_game(game, m) if m <= exact_up_to else _kernel_game(game, m, n_samples, seed)
    values = np.zeros(n_tokens)
    values[index.cpu().numpy()] = phi
    return ShapleyValues(values.reshape(tuple(np.shape(input_ids))), base, n_coalitions + 1)  # input's shape
