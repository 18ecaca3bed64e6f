"""Which coalitions the sampling Shapley estimators of :mod:`bigtut.explain.shap` evaluate. KernelSHAP's design
comes in two versions: the course's own sampler (:func:`_kernel_design`) and shap 0.51's KernelExplainer replayed
draw for draw (:func:`_shap_kernel_design`); :func:`_shap_permutation_orders` replays the orders of shap's
PermutationExplainer. With the replayed versions an answer can be compared with shap's at the very same
coalitions (the ``shap_compatible`` flag of the estimators).

Shape legend:  m players   K coalitions   P permutations
"""

from __future__ import annotations

import itertools
import math

import numpy as np


def _size_mass(m: int) -> tuple[np.ndarray, int]:
    """The Shapley kernel's mass per coalition size ``(ceil((m-1)/2),)``, sizes ``s`` and ``m-s`` together (a middle
    size, ``m`` even, is its own complement), normalised; and how many sizes have a distinct complement."""
    n_sizes, n_paired = math.ceil((m - 1) / 2), (m - 1) // 2
    mass = np.array([(m - 1) / (s * (m - s)) for s in range(1, n_sizes + 1)])  # (n_sizes,)
    mass[:n_paired] *= 2  # sizes s and m - s together
    return mass / mass.sum(), n_paired


def _sizes_enumerated(m: int, n_samples: int, mass: np.ndarray) -> int:
    """How many sizes (from the smallest up) a budget of ``n_samples`` enumerates: a size pair whose share of the
    remaining budget covers all its coalitions is enumerated, and the rest of the budget goes to larger sizes."""
    n_paired = (m - 1) // 2
    left, share = n_samples, mass.copy()
    for s in range(1, len(mass) + 1):
        count = math.comb(m, s) * (2 if s <= n_paired else 1)  # coalitions of size s (and m - s)
        if left * share[s - 1] / count < 1 - 1e-8:
            return s - 1
        left -= count
        if share[s - 1] < 1:
            share /= 1 - share[s - 1]
    return len(mass)


def _size_coalitions(m: int, s: int, paired: bool, interleaved: bool = False) -> np.ndarray:
    """Every coalition of size ``s`` ``(comb(m, s), m)`` in ``itertools.combinations`` order, followed by their
    complements when ``paired`` (or, ``interleaved``, each one followed by its complement, as shap adds them)."""
    chosen = np.array(list(itertools.combinations(range(m), s)))  # (comb(m, s), s)
    masks = np.zeros((len(chosen), m), bool)
    masks[np.arange(len(chosen))[:, None], chosen] = True
    if not paired:
        return masks
    if interleaved:
        return np.stack([masks, ~masks], axis=1).reshape(-1, m)  # (2 comb, m)
    return np.concatenate([masks, ~masks])  # (2 comb, m)


def _kernel_design(m: int, n_samples: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """KernelSHAP's coalitions ``(K, m)`` and regression weights ``(K,)`` for a budget of ``n_samples``.

    The Shapley kernel gives all coalitions of size ``s`` together the mass ``(m-1) / (s (m-s))``; sizes ``s`` and
    ``m-s`` are handled as a pair. Going from the smallest size up, a size pair whose share of the remaining
    budget covers all its coalitions is enumerated, each coalition weighted by its exact kernel weight: the
    coalitions and weights of shap's KernelExplainer (``n_samples >= 2**m - 2`` enumerates them all). The rest of
    the budget draws a size pair by kernel mass, a random coalition of that size *and its complement*
    (antithetic), counts repeats, and scales the counts to the kernel mass left over.
    """
    mass, n_paired = _size_mass(m)
    n_sizes, n_full = len(mass), _sizes_enumerated(m, n_samples, mass)
    masks, weights = [np.zeros((0, m), bool)], [np.zeros(0)]
    for s in range(1, n_full + 1):
        masks.append(_size_coalitions(m, s, s <= n_paired))
        weights.append(np.full(len(masks[-1]), mass[s - 1] / len(masks[-1])))
    left = n_samples - sum(len(part) for part in masks)
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


def _shap_kernel_design(m: int, n_samples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """shap 0.51 KernelExplainer's own coalitions ``(K, m)`` and weights ``(K,)`` (its ``maskMatrix`` and
    ``kernelWeights``, row for row) after ``np.random.seed(seed)``: the same enumerated sizes as
    :func:`_kernel_design` (each coalition followed by its complement), then shap's sampler, replayed on
    ``np.random.RandomState(seed)`` — the generator ``np.random.seed`` seeds.

    shap draws ``4 K'`` sizes at once (``K'`` coalitions left), by the kernel mass *halved* for a paired size,
    then for each draw a uniformly random coalition of that size (``permutation(m)[:size]``); a new coalition is
    added with its complement (paired sizes), a repeat adds 1 to the weight of it and its complement. When the
    draws run out before ``K'`` coalitions, fewer rows come back (shap keeps them as zero-weight rows). The
    sampled weights are scaled to the kernel mass left over, as in :func:`_kernel_design`.
    """
    mass, n_paired = _size_mass(m)
    n_sizes, n_full = len(mass), _sizes_enumerated(m, n_samples, mass)
    masks = [np.zeros((0, m), bool)] + [_size_coalitions(m, s, s <= n_paired, interleaved=True)
                                        for s in range(1, n_full + 1)]
    weights = [np.zeros(0)] + [np.full(len(part), mass[s - 1] / len(part)) for s, part in enumerate(masks[1:], 1)]
    left = n_samples - sum(len(part) for part in masks)
    if n_full < n_sizes:
        rng = np.random.RandomState(seed)
        draw_mass = mass.copy()
        draw_mass[:n_paired] /= 2  # a paired size adds two coalitions per draw
        draw_mass = draw_mass[n_full:] / draw_mass[n_full:].sum()
        drawn, counts, row_of = [], [], {}  # coalitions (m,), their weights, coalition -> its row
        for size in n_full + 1 + rng.choice(len(draw_mass), 4 * left, p=draw_mass):
            if left <= 0:
                break
            mask = np.zeros(m, bool)
            mask[rng.permutation(m)[:size]] = True
            new = mask.tobytes() not in row_of
            if new:
                row_of[mask.tobytes()] = len(drawn)
                drawn.append(mask)
                counts.append(1.0)
                left -= 1
            else:
                counts[row_of[mask.tobytes()]] += 1
            if left > 0 and size <= n_paired:
                if new:
                    drawn.append(~mask)
                    counts.append(1.0)
                    left -= 1
                else:
                    counts[row_of[mask.tobytes()] + 1] += 1
        counts = np.array(counts)  # (K_sampled,)
        masks.append(np.array(drawn, dtype=bool).reshape(-1, m))
        weights.append(counts * (mass[n_full:].sum() / max(counts.sum(), 1.0)))
    return np.concatenate(masks), np.concatenate(weights)


def _shap_permutation_orders(m: int, n_permutations: int, seed: int) -> np.ndarray:
    """The orders ``(P, m)`` shap 0.51's PermutationExplainer(seed=seed) walks for one row of ``m`` players (all
    varying): it calls ``np.random.seed(seed)`` when built, then shuffles one index array in place before each
    permutation, so each order is a shuffle of the one before; replayed on ``np.random.RandomState(seed)``."""
    rng, order, orders = np.random.RandomState(seed), np.arange(m), []
    for _ in range(n_permutations):
        rng.shuffle(order)
        orders.append(order.copy())
    return np.array(orders).reshape(n_permutations, m)
