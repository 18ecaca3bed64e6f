"""A generated translation task with a real-world flavour: dates as people write them -> ISO 8601.

    "23 Nov 2026", "11/23/26", "Monday, November 23rd 2026", "23.11.2026", …  ->  "2026-11-23"

Every input is produced from a known date, so the right answer is never in doubt — *provided the task is
learnable*: no input string may stand for two dates. Two traps are avoided by construction, and
:func:`ambiguous_sources` / :func:`exact_match_ceiling` prove it over the whole generated set:

* **Two-digit years** ("11/23/26") name one year only inside a 100-year window. The default window is
  1950–2049: ``50..99`` mean 19xx and ``00..49`` mean 20xx. Widen the window and "26" means both 1926 and
  2026; the ceiling then drops below 100 % whatever the model does.
* **Day/month order**: slashed dates are always US order (month/day/year), dotted dates always European
  order (day.month.year), so "03/04/2026" is March 4 and "03.04.2026" is April 3 — different strings,
  different answers, never one string with two.

Splits are disjoint by *date* (hence by input string): validation and test dates are never seen in training,
in any format.
"""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

__all__ = [
    "DATE_FORMATS", "DATE_SPECIAL_TOKENS", "DatePair", "ambiguous_sources", "date_pairs", "date_splits",
    "date_tokenizer", "encode_pairs", "exact_match_ceiling",
]

MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December"]
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
DATE_SPECIAL_TOKENS = ("<pad>", "<bos>", "<eos>")  # ids 0, 1, 2 of :func:`date_tokenizer`


def _ordinal(day: int) -> str:
    """1 -> '1st', 2 -> '2nd', 3 -> '3rd', 11 -> '11th', 22 -> '22nd', …"""
    suffix = "th" if 11 <= day <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{day}{suffix}"


def date_fields(d: dt.date) -> dict[str, str]:
    """The pieces a format template may use, for one date (shown here for 2026-11-23)."""
    month, weekday = MONTHS[d.month - 1], WEEKDAYS[d.weekday()]
    return {
        "d": str(d.day), "dd": f"{d.day:02d}", "dth": _ordinal(d.day),  # 23, 23, 23rd
        "m": str(d.month), "mm": f"{d.month:02d}",  # 11, 11
        "Month": month, "Mon": month[:3], "MON": month[:3].upper(),  # November, Nov, NOV
        "Weekday": weekday, "Wkd": weekday[:3],  # Monday, Mon
        "yy": f"{d.year % 100:02d}", "yyyy": f"{d.year:04d}",  # 26, 2026
    }


# Every format is a template over :func:`date_fields`; each is one a person might really type.
DATE_FORMATS: tuple[str, ...] = (
    "{d} {Mon} {yyyy}",  # 23 Nov 2026
    "{d} {Month} {yyyy}",  # 23 November 2026
    "{Month} {d}, {yyyy}",  # November 23, 2026
    "{Mon} {d}, {yyyy}",  # Nov 23, 2026
    "{m}/{d}/{yy}",  # 11/23/26    (US order; two-digit year inside the century window)
    "{mm}/{dd}/{yyyy}",  # 11/23/2026  (US order)
    "{dd}.{mm}.{yyyy}",  # 23.11.2026  (European order)
    "{Weekday}, {Month} {dth} {yyyy}",  # Monday, November 23rd 2026
    "{Wkd} {d} {Mon} {yyyy}",  # Mon 23 Nov 2026
    "the {dth} of {Month}, {yyyy}",  # the 23rd of November, 2026
    "{dd}-{MON}-{yy}",  # 23-NOV-26
    "{yyyy}{mm}{dd}",  # 20261123
)


def format_date(d: dt.date, fmt: str) -> str:
    """Write ``d`` in one of :data:`DATE_FORMATS`, e.g. ``format_date(date(2026, 11, 23), "{m}/{d}/{yy}")``."""
    return fmt.format_map(date_fields(d))


@dataclass(frozen=True)
class DatePair:
    """One example: ``source`` (a human-written date), ``target`` (ISO 8601) and the format's name."""

    source: str
    target: str
    fmt: str


def _dates(first_year: int, last_year: int) -> list[dt.date]:
    if not (isinstance(first_year, int) and isinstance(last_year, int) and 1 <= first_year <= last_year <= 9999):
        raise ValueError(f"need 1 <= first_year <= last_year <= 9999, got {first_year!r}..{last_year!r}")
    start, stop = dt.date(first_year, 1, 1), dt.date(last_year, 12, 31)
    return [start + dt.timedelta(days=i) for i in range((stop - start).days + 1)]


def _formats(formats: Sequence[str] | None) -> list[str]:
    names = list(DATE_FORMATS) if formats is None else list(formats)
    unknown = [f for f in names if f not in DATE_FORMATS]
    if unknown or not names:
        raise ValueError(f"unknown or no formats {unknown}; choose from {list(DATE_FORMATS)}")
    return names


def date_pairs(first_year: int = 1950, last_year: int = 2049, formats: Sequence[str] | None = None) -> list[DatePair]:
    """Every date of the window written in every format: ``n_days * n_formats`` pairs, in date order."""
    names = _formats(formats)
    return [DatePair(DATE_FORMATS[f](d), d.isoformat(), f) for d in _dates(first_year, last_year) for f in names]


def ambiguous_sources(pairs: Sequence[DatePair]) -> dict[str, set[str]]:
    """Input strings that stand for more than one target: ``{source: {target, …}}`` (empty = learnable)."""
    targets: dict[str, set[str]] = defaultdict(set)
    for p in pairs:
        targets[p.source].add(p.target)
    return {s: t for s, t in targets.items() if len(t) > 1}


def exact_match_ceiling(pairs: Sequence[DatePair]) -> float:
    """The best exact-match any model can reach on ``pairs``: for each input, the share of its most common
    target. 1.0 means every input has exactly one answer."""
    if not pairs:
        raise ValueError("exact_match_ceiling needs at least one pair")
    counts: dict[str, Counter] = defaultdict(Counter)
    for p in pairs:
        counts[p.source][p.target] += 1
    return sum(c.most_common(1)[0][1] for c in counts.values()) / len(pairs)


def date_splits(
    n_val: int = 500,
    n_test: int = 2000,
    seed: int = 0,
    first_year: int = 1950,
    last_year: int = 2049,
    formats: Sequence[str] | None = None,
) -> dict[str, list[DatePair]]:
    """Deterministic ``{"train", "val", "test"}`` splits, disjoint by date and therefore by input string.

    ``n_val`` and ``n_test`` dates are drawn at random (``seed``) and held out; each is written in one format,
    the formats taking turns so every format is equally represented. Training gets every format of every
    remaining date (~400k pairs with the defaults).

    Raises:
        ValueError: the held-out dates would not leave any for training, or some input string stands for two
            dates (see :func:`ambiguous_sources`), so the splits could not be disjoint by input.
    """
    names, dates = _formats(formats), _dates(first_year, last_year)
    for name, n in (("n_val", n_val), ("n_test", n_test)):
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"{name} must be a positive int, got {n!r}")
    if n_val + n_test >= len(dates):
        raise ValueError(f"n_val + n_test = {n_val + n_test} leaves no training dates out of {len(dates)}")
    order = list(range(len(dates)))
    random.Random(seed).shuffle(order)
    val_idx, test_idx = order[:n_val], order[n_val : n_val + n_test]
    held_out = set(val_idx) | set(test_idx)

    def one_format_each(indices: list[int]) -> list[DatePair]:
        out = []
        for k, i in enumerate(indices):
            f = names[k % len(names)]
            out.append(DatePair(DATE_FORMATS[f](dates[i]), dates[i].isoformat(), f))
        return out

    train = [DatePair(DATE_FORMATS[f](d), d.isoformat(), f)
             for i, d in enumerate(dates) if i not in held_out for f in names]
    splits = {"train": train, "val": one_format_each(val_idx), "test": one_format_each(test_idx)}
    seen = {p.source for p in train}
    if any(p.source in seen for p in splits["val"] + splits["test"]):
        raise ValueError(f"years {first_year}..{last_year} make some inputs stand for two dates (e.g. two-digit "
                         "years across more than a century); use a window of at most 100 years")
    return splits


def date_tokenizer():
    """A :class:`~bigtut.tokenizers.CharTokenizer` for every character any format can produce.

    Ids 0, 1, 2 are ``<pad>``, ``<bos>``, ``<eos>`` (:data:`DATE_SPECIAL_TOKENS`); the same vocabulary serves
    inputs and outputs.
    """
    from bigtut.tokenizers import CharTokenizer

    sample = [dt.date(2000, m, d) for m in range(1, 13) for d in (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 22, 31)
              if not (m == 2 and d > 29) and not (d == 31 and m in (4, 6, 9, 11))]
    text = "".join(f(d) for f in DATE_FORMATS.values() for d in sample) + "0123456789-"
    return CharTokenizer.train(text, special_tokens=DATE_SPECIAL_TOKENS)


def encode_pairs(pairs: Sequence[DatePair], tokenizer, src_len: int | None = None,
                 tgt_len: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Encode pairs as right-padded id matrices for a seq2seq model.

    Returns:
        ``(src, tgt)``: ``src`` ``(N, S)`` = the source characters; ``tgt`` ``(N, T)`` =
        ``<bos> target <eos>``. Both are padded with ``<pad>`` to the longest row (or to ``src_len``/``tgt_len``).
    """
    pad, bos, eos = (tokenizer.token_to_id(t) for t in DATE_SPECIAL_TOKENS)
    src_ids = [tokenizer.encode(p.source) for p in pairs]
    tgt_ids = [[bos, *tokenizer.encode(p.target), eos] for p in pairs]
    S = src_len or max(map(len, src_ids))
    T = tgt_len or max(map(len, tgt_ids))
    if max(map(len, src_ids)) > S or max(map(len, tgt_ids)) > T:
        raise ValueError(f"src_len={src_len} / tgt_len={tgt_len} is shorter than the longest source "
                         f"({max(map(len, src_ids))}) / target ({max(map(len, tgt_ids))}) row")
    src = torch.full((len(pairs), S), pad, dtype=torch.long)  # (N, S)
    tgt = torch.full((len(pairs), T), pad, dtype=torch.long)  # (N, T)
    for row, (s, t) in enumerate(zip(src_ids, tgt_ids)):
        src[row, : len(s)] = torch.tensor(s)
        tgt[row, : len(t)] = torch.tensor(t)
    return src, tgt
