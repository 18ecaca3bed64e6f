"""Shapley values of the tokens of a text: :func:`token_shap`, the game of :mod:`bigtut.explain.shap` played
with tokens as players, where an absent token is masked, hidden or deleted.

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
    read_at,
    resolve_positions,
    select_target,
    target_of_row,
)
from bigtut.explain.shap import MAX_EXACT_PLAYERS, Game, ShapleyValues, exact_game, kernel_budget, kernel_game

__all__ = ["ABSENT_MODES", "token_shap"]

ABSENT_MODES = ("mask", "pad", "delete")


def _token_game(run: Callable, ids: torch.Tensor, real: torch.Tensor, index: torch.Tensor, read: int | None,
                absent: str, mask_id: int | None, fill: int, target: Any, probabilities: bool,
                batch_size: int) -> Game:
    """The game of one text ``ids`` ``(L,)`` (``real`` ``(L,)`` its real tokens) whose players sit at ``index``
    ``(P,)``: each coalition ``(P,)`` becomes one row for ``run(ids, attended)``; a language model's logits are
    read at ``read`` (None for a classifier), wherever "delete" moved that token."""
    L, device = len(ids), ids.device

    def game(masks: np.ndarray) -> np.ndarray:
        out = [np.zeros(0)]
        for start in range(0, len(masks), batch_size):
            chunk = torch.as_tensor(masks[start:start + batch_size], device=device)  # (k, P)
            gone = torch.zeros(len(chunk), L, dtype=torch.bool, device=device)  # (k, L)
            gone[:, index] = ~chunk
            batch, attended = ids.repeat(len(chunk), 1), real.repeat(len(chunk), 1)  # (k, L), (k, L)
            where = torch.full((len(chunk),), read or 0, device=device)  # (k,): where a language model is read
            if absent == "mask":
                batch[gone] = mask_id
            elif absent == "pad":
                attended &= ~gone
                batch[~attended] = fill  # never attended
            else:  # "delete": the present tokens move left, the read token with them
                batch, attended, new_position = delete_tokens(batch, attended & ~gone, fill)  # (k, L) x 3
                where = new_position[:, read or 0]  # (k,)
            logits = run(batch, attended)  # (k, C) or (k, L, V)
            if read is not None:
                logits = read_at(logits, where)  # (k, V)
            out.append(select_target(as_numpy(logits), target, probabilities))  # (k,)
        return np.concatenate(out)

    return game


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
        game = _token_game(run, input_ids[b], real[b], index, int(positions[b]) if is_lm else None, absent,
                           mask_id, fill, target_of_row(target, b), probabilities, batch_size)
        games.append((index.cpu().numpy(), game))
    return games, (B, L)


def token_shap(model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None, *,
               target: int | Sequence[int] | None = None, absent: str = "mask", mask_id: int | None = None,
               pad_id: int | None = None, keep_ids: Sequence[int] = (), n_samples: int | None = None,
               seed: int | None = None, exact_up_to: int = 10, batch_size: int | None = None,
               probabilities: bool = False, position: int | Sequence[int] | None = None) -> ShapleyValues:
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
    the same ``seed`` for every row). The ids go to the model's device, at most ``batch_size`` rows per call.

    Returns :class:`ShapleyValues` ``(attributions (B, L), base_value (B,), n_evaluations)``: attributions 0 at
    non-players, ``base_value`` the value with every player absent, ``n_evaluations`` the model rows used (the
    coalitions of every row, plus one call on the texts themselves that tells a classifier from a language
    model). Put the model in ``eval()`` mode: dropout would make the game random.
    """
    if check_budget("exact_up_to", exact_up_to, 0) > MAX_EXACT_PLAYERS:
        raise ValueError(f"exact_up_to must be <= {MAX_EXACT_PLAYERS}, got {exact_up_to}")
    n_samples = None if n_samples is None else check_budget("n_samples", n_samples)
    seed = resolve_seed(seed)

    def check_players(m: int) -> None:  # every row's budget is checked before the coalitions
        if m > exact_up_to:
            kernel_budget(m, n_samples)

    games, shape = _token_games(model, input_ids, attention_mask, target=target, absent=absent, mask_id=mask_id,
                                pad_id=pad_id, keep_ids=keep_ids, batch_size=batch_size,
                                probabilities=probabilities, position=position, check_players=check_players)
    attributions, base = np.zeros(shape), np.zeros(shape[0])  # (B, L), (B,)
    n_evaluations = shape[0]  # the probe
    for b, (index, game) in enumerate(games):
        m = len(index)
        phi, base[b], n_coalitions = (exact_game(game, m) if m <= exact_up_to
                                      else kernel_game(game, m, n_samples, seed))
        attributions[b, index] = phi
        n_evaluations += n_coalitions
    return ShapleyValues(attributions, base, n_evaluations)
