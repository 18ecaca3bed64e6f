"""Shapley values of the tokens of a text: :func:`token_shap` (exact or KernelSHAP) and
:func:`token_permutation_shap`, the game of :mod:`bigtut.explain.shap` played with tokens as players, where an
absent token is masked, hidden or deleted. All coalitions of a call become perturbed texts at once, grouped by
length, each group evaluated by :func:`~bigtut.explain.token_rows.evaluate_token_rows` (a deleted token shortens
the model call instead of padding it); ``shap_compatible=True`` samples shap's own coalitions.

Shape legend:  B batch   L tokens   P token players   K coalitions   C classes   V vocabulary
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from bigtut.explain.arguments import (
    check_budget,
    check_flag,
    check_keep_ids,
    check_target_rows,
    check_token_batch,
    check_token_id,
    resolve_batch_size,
    resolve_pad_id,
    resolve_seed,
    vocab_size_of,
)
from bigtut.explain.common import (
    as_numpy,
    delete_tokens,
    explained_logits,
    last_real_positions,
    logits_of,
    model_device,
    resolve_positions,
    select_target,
    target_of_row,
)
from bigtut.explain.shap import (
    MAX_EXACT_PLAYERS,
    Game,
    ShapleyValues,
    _permutation_game,
    exact_game,
    kernel_budget,
    kernel_game,
)
from bigtut.explain.token_rows import evaluate_token_rows

__all__ = ["ABSENT_MODES", "token_permutation_shap", "token_shap"]

ABSENT_MODES = ("mask", "pad", "delete")
_ELEMENTS_PER_PASS = 2**22  # token ids built at once by a game (rows x L): bounds the memory of a 2**20-row call


class _TokenGame:
    """The game of one text ``ids`` ``(L,)`` (``real`` ``(L,)`` its real tokens) whose players sit at ``index``
    ``(P,)``: ``game(masks (K, P)) -> values (K,)``. The coalitions of a call become ``K`` perturbed texts at once
    (:meth:`rows`) and go through :func:`~bigtut.explain.token_rows.evaluate_token_rows` (identical texts once,
    texts of about the same length together, at most ``batch_size`` rows per model call, each cut to its longest
    text). A language model's logits are read at ``read`` (None for a
    classifier), wherever "delete" moved that token. Calls of more than :data:`_ELEMENTS_PER_PASS` ids go in
    several passes."""

    def __init__(self, model: torch.nn.Module, ids: torch.Tensor, real: torch.Tensor, index: torch.Tensor,
                 read: int | None, absent: str, mask_id: int | None, fill: int, target: Any, probabilities: bool,
                 batch_size: int):
        self.model, self.ids, self.real, self.index, self.read = model, ids, real, index, read
        self.absent, self.mask_id, self.fill = absent, mask_id, fill
        self.target, self.probabilities, self.batch_size = target, probabilities, batch_size

    def rows(self, masks: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The ids and attended positions ``(K, L)`` of the coalitions ``masks`` ``(K, P)``, and where each row's
        language-model logits are read ``(K,)``."""
        present = torch.as_tensor(np.asarray(masks, dtype=bool), device=self.ids.device)  # (K, P)
        K, L = len(present), len(self.ids)
        gone = torch.zeros(K, L, dtype=torch.bool, device=self.ids.device)  # (K, L)
        gone[:, self.index] = ~present
        batch, attended = self.ids.expand(K, L), self.real.expand(K, L)  # (K, L) views
        where = torch.full((K,), self.read or 0, device=self.ids.device)  # (K,)
        if self.absent == "mask":
            batch = batch.masked_fill(gone, self.mask_id)
        elif self.absent == "pad":
            attended = attended & ~gone
            batch = batch.masked_fill(~attended, self.fill)  # never attended
        else:  # "delete": the present tokens move left, the read token with them
            batch, attended, new_position = delete_tokens(batch, attended & ~gone, self.fill)  # (K, L) x 3
            where = new_position[:, self.read or 0]  # (K,)
        return batch, attended, where

    def __call__(self, masks: np.ndarray) -> np.ndarray:
        per_pass = max(self.batch_size, _ELEMENTS_PER_PASS // len(self.ids) // self.batch_size * self.batch_size)
        values = np.zeros(len(masks))  # (K,)
        for start in range(0, len(masks), per_pass):
            ids, attended, where = self.rows(masks[start:start + per_pass])  # (k, L), (k, L), (k,)
            logits = evaluate_token_rows(self.model, ids, attended, batch_size=self.batch_size,
                                         read=None if self.read is None else where)  # (k, C) or (k, V)
            values[start:start + len(ids)] = select_target(as_numpy(logits), self.target, self.probabilities)
        return values


def _token_games(model: torch.nn.Module, input_ids: Any, attention_mask: Any, *, target: Any, absent: str,
                 mask_id: int | None, pad_id: int | None, keep_ids: Sequence[int], batch_size: int | None,
                 probabilities: bool, position: Any,
                 check_players: Callable[[int], Any]) -> tuple[list[tuple[np.ndarray, Game]], tuple[int, int]]:
    """The token games of a batch, one per row, for every Shapley method on tokens (arguments as
    :func:`token_shap`): ``([(player positions (P,), game), ...] B pairs, (B, L))``.

    Checks the arguments, then makes one call on the texts themselves (``B`` model rows: it tells a classifier
    from a language model and checks the target), finds each row's players, and hands each row's number of
    players to ``check_players`` before any game is played."""
    if absent not in ABSENT_MODES:
        raise ValueError(f"absent must be one of {ABSENT_MODES}, got {absent!r}")
    vocab_size = vocab_size_of(model)
    input_ids, real = check_token_batch(input_ids, attention_mask, vocab_size)  # (B, L), (B, L)
    B, L = input_ids.shape
    if absent == "mask":
        if mask_id is None:
            raise ValueError("absent='mask' replaces tokens by mask_id; pass mask_id= (e.g. the id of [MASK])")
        mask_id = check_token_id("mask_id", mask_id, vocab_size)
    fill = resolve_pad_id(model, pad_id, vocab_size)  # what padded positions hold
    fill = 0 if fill is None else fill
    keep_ids = check_keep_ids(keep_ids)
    batch_size = resolve_batch_size(batch_size)
    probabilities = check_flag("probabilities", probabilities)
    target = check_target_rows(target, B)
    positions = last_real_positions(real) if position is None else resolve_positions(position, real)  # (B,)
    device = model_device(model)
    input_ids, real, positions = input_ids.to(device), real.to(device), positions.to(device)

    def run(ids: torch.Tensor, seen: torch.Tensor) -> torch.Tensor:
        """The model's logits ``(N, C)`` or ``(N, L, V)`` of ``ids`` ``(N, L)`` with ``seen`` ``(N, L)`` attended."""
        with torch.no_grad():
            return logits_of(model(ids, attention_mask=seen.long()), len(ids))

    # One call on the texts themselves tells a classifier (N, C) from a language model (N, L, V) and checks
    # the target and the outputs before the first coalition.
    probe = [run(input_ids[i:i + batch_size], real[i:i + batch_size]) for i in range(0, B, batch_size)]
    is_lm = probe[0].dim() == 3
    probe = [explained_logits(logits, positions[i * batch_size:(i + 1) * batch_size], position is not None)
             for i, logits in enumerate(probe)]  # (N, C) or (N, V) each
    select_target(as_numpy(torch.cat(probe)), target, probabilities)  # (B,): raises for a bad target or NaN

    keep = torch.isin(input_ids, torch.as_tensor(keep_ids, dtype=torch.long, device=device))  # (B, L)
    players = real & ~keep  # (B, L)
    if is_lm:
        after = torch.arange(L, device=device)[None, :] > positions[:, None]  # (B, L): dummies under causal attention
        players &= ~after
        if absent != "mask":
            players[torch.arange(B, device=device), positions] = False  # the read token stays
    if absent != "mask" and not bool((real & ~players).any(-1).all()):
        raise ValueError(f"absent={absent!r} with every token a player leaves an empty text; keep one present "
                         "with keep_ids= (e.g. the ids of [CLS] and [SEP])")
    for m in players.sum(-1).tolist():
        check_players(m)

    games = []
    for b in range(B):
        index = torch.nonzero(players[b])[:, 0]  # (P,) player positions
        game = _TokenGame(model, input_ids[b], real[b], index, int(positions[b]) if is_lm else None, absent,
                          mask_id, fill, target_of_row(target, b), probabilities, batch_size)
        games.append((index.cpu().numpy(), game))
    return games, (B, L)


def _play(games: list[tuple[np.ndarray, Game]], shape: tuple[int, int], estimate: Callable) -> ShapleyValues:
    """Run ``estimate(game, m)`` -> ``(φ (m,), v(∅), coalitions)`` on each row's game of :func:`_token_games`."""
    attributions, base = np.zeros(shape), np.zeros(shape[0])  # (B, L), (B,)
    n_evaluations = shape[0]  # the probe
    for b, (index, game) in enumerate(games):
        attributions[b, index], base[b], n_coalitions = estimate(game, len(index))
        n_evaluations += n_coalitions
    return ShapleyValues(attributions, base, n_evaluations)


def token_shap(model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, *,
               target: int | Sequence[int] | None = None, absent: str = "mask", mask_id: int | None = None,
               pad_id: int | None = None, keep_ids: Sequence[int] = (), n_samples: int | None = None,
               seed: int | None = None, exact_up_to: int = 10, batch_size: int | None = None,
               probabilities: bool = False, position: int | Sequence[int] | None = None,
               shap_compatible: bool = False) -> ShapleyValues:
    """Shapley values of the tokens of each text of ``input_ids`` ``(B, L)``, one game per row.

    ``model(ids (N, L), attention_mask=(N, L))`` is a classifier (logits ``(N, C)``) or a language model
    (``(N, L, V)``; then ``target`` is a token id and the logit is read at ``position``: an int or one per row,
    negative counting back from the row's last real token; default ``-1``, the last real token — the next-token
    prediction). ``target`` is an int or one per row. The players are the real tokens (``attention_mask`` 1)
    whose id is not in ``keep_ids`` (say [CLS] and [SEP], which stay present); for a language model also not
    after ``position`` (causal attention makes them dummies).

    What an absent token is decides what the values mean:

    * ``"mask"``: its id becomes ``mask_id`` (BERT's [MASK]); the model still sees a token there;
    * ``"pad"``: ``attention_mask`` 0, the model cannot see it and every other token keeps its position;
    * ``"delete"``: removed, the later tokens move left (a shorter text, padded on the right with ``pad_id``;
      default ``model.config.pad_id``, else 0: never attended).

    With "pad"/"delete" the language model's token at ``position`` is no player (its prediction is read
    there), and a classifier needs a kept token (an id in ``keep_ids``) so that no text is empty. Exact for
    at most ``exact_up_to`` players, else KernelSHAP with ``n_samples`` coalitions (as :func:`kernel_shap`,
    the same ``seed`` for every row). ``shap_compatible=True`` samples shap 0.51's coalitions there instead (see
    :func:`kernel_shap`): a row's answer then equals ``shap.KernelExplainer(f, np.zeros((1, P))).shap_values(
    np.ones(P), nsamples=n_samples, l1_reg=False)`` after ``np.random.seed(seed)``, where ``f`` maps presence
    masks ``(K, P)`` to the model's value of the texts they make. The ids go to the model's device; the perturbed
    texts of a row are built at once, identical ones run once, texts of about the same length together, at most
    ``batch_size`` rows per model call (:class:`_TokenGame`).

    Returns :class:`ShapleyValues` ``(attributions (B, L), base_value (B,), n_evaluations)``: attributions 0 at
    non-players, ``base_value`` the value with every player absent, ``n_evaluations`` the coalitions evaluated
    (of every row, identical texts among them counted each time, though run once), plus the ``B`` rows of one call
    on the texts themselves that tells a classifier from a language model. Put the model in ``eval()`` mode:
    dropout would make the game random.
    """
    if check_budget("exact_up_to", exact_up_to, 0) > MAX_EXACT_PLAYERS:
        raise ValueError(f"exact_up_to must be <= {MAX_EXACT_PLAYERS}, got {exact_up_to}")
    n_samples = None if n_samples is None else check_budget("n_samples", n_samples)
    seed, shap_compatible = resolve_seed(seed), check_flag("shap_compatible", shap_compatible)

    def check_players(m: int) -> None:  # every row's budget is checked before the coalitions
        if m > exact_up_to:
            kernel_budget(m, n_samples)

    games, shape = _token_games(model, input_ids, attention_mask, target=target, absent=absent, mask_id=mask_id,
                                pad_id=pad_id, keep_ids=keep_ids, batch_size=batch_size,
                                probabilities=probabilities, position=position, check_players=check_players)
    return _play(games, shape, lambda game, m: exact_game(game, m) if m <= exact_up_to
                 else kernel_game(game, m, n_samples, seed, shap_compatible))


def token_permutation_shap(model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                           *, target: int | Sequence[int] | None = None, absent: str = "mask",
                           mask_id: int | None = None, pad_id: int | None = None, keep_ids: Sequence[int] = (),
                           n_permutations: int = 10, seed: int | None = None, batch_size: int | None = None,
                           probabilities: bool = False, position: int | Sequence[int] | None = None,
                           shap_compatible: bool = False) -> ShapleyValues:
    """Shapley values of the tokens of each text of ``input_ids`` ``(B, L)`` by permutation sampling: the game of
    :func:`token_shap` (same ``target``, ``absent``, ``mask_id``, ``pad_id``, ``keep_ids``, ``position``), each
    player's marginal contribution averaged over ``n_permutations`` random orders of a row's ``P`` players and
    their reverses (as :func:`permutation_shap`, the same ``seed`` for every row). Unbiased, efficient for every
    sample; a row with at most one player is exact.

    ``shap_compatible=True`` walks the orders of shap 0.51's PermutationExplainer (see
    :func:`~bigtut.explain.shap_designs._shap_permutation_orders`): a row's answer then equals
    ``shap.PermutationExplainer(f, masker, seed=seed)(np.ones((1, P)), max_evals=n_permutations * (2P + 1))`` with
    ``masker = lambda mask, x: (x * mask)[None]`` and ``f`` as in :func:`token_shap`, up to rounding. shap spends
    ``2P + 1`` model rows per order (∅ twice, ∅ and N again in every order); here ∅ and N are evaluated once and
    identical texts run once. Texts are built and run as in :func:`token_shap`.

    Returns :class:`ShapleyValues` ``(attributions (B, L), base_value (B,), n_evaluations)``, ``n_evaluations`` =
    ``B`` (the probe) + per row ``2 + 2 n_permutations (P - 1)`` coalitions (``2**P`` for ``P <= 1``).
    """
    n_permutations, seed = check_budget("n_permutations", n_permutations), resolve_seed(seed)
    shap_compatible = check_flag("shap_compatible", shap_compatible)
    games, shape = _token_games(model, input_ids, attention_mask, target=target, absent=absent, mask_id=mask_id,
                                pad_id=pad_id, keep_ids=keep_ids, batch_size=batch_size,
                                probabilities=probabilities, position=position, check_players=lambda m: None)
    return _play(games, shape, lambda game, m: exact_game(game, m) if m <= 1
                 else _permutation_game(game, m, n_permutations, seed, shap_compatible))
