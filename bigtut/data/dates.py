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
import gc
import random
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import NamedTuple

import torch

__all__ = [
    "DATE_FORMATS", "DATE_SPECIAL_TOKENS", "DatePair", "ambiguous_sources", "date_fields", "date_pairs",
    "date_splits", "date_tokenizer", "encode_date_pairs", "exact_match_ceiling", "format_date",
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


class DatePair(NamedTuple):
    """One example: ``source`` (a human-written date), ``target`` (ISO 8601) and the format's template."""

    source: str
    target: str
    fmt: str


def _dates(first_year: int, last_year: int) -> list[dt.date]:
    if not (isinstance(first_year, int) and isinstance(last_year, int) and 1 <= first_year <= last_year <= 9999):
        raise ValueError(f"need 1 <= first_year <= last_year <= 9999, got {first_year!r}..{last_year!r}")
    start, stop = dt.date(first_year, 1, 1), dt.date(last_year, 12, 31)
    return [start + dt.timedelta(days=i) for i in range((stop - start).days + 1)]


def _formats(formats: Sequence[str] | None) -> tuple[str, ...]:
    names = DATE_FORMATS if formats is None else tuple(formats)
    unknown = [f for f in names if f not in DATE_FORMATS]
    if unknown or not names:
        raise ValueError(f"unknown or no formats {unknown}; choose from {list(DATE_FORMATS)}")
    return names


def _write(dates: Sequence[dt.date], formats: Sequence[str]) -> list[DatePair]:
    """Every date in every format, date by date."""
    out: list[DatePair] = []
    was_enabled = gc.isenabled()
    gc.disable()  # ~0.5M new tuples, none in a reference cycle: the cyclic collector would only slow us down
    try:
        for d in dates:
            fields, target = date_fields(d), d.isoformat()
            out += [DatePair._make((f.format_map(fields), target, f)) for f in formats]
    finally:
        if was_enabled:
            gc.enable()
    return out


def date_pairs(first_year: int = 1950, last_year: int = 2049, formats: Sequence[str] | None = None) -> list[DatePair]:
    """Every date of the window written in every format: ``n_days * n_formats`` pairs, in date order."""
    return _write(_dates(first_year, last_year), _formats(formats))


def ambiguous_sources(pairs: Sequence[DatePair]) -> dict[str, set[str]]:
    """Input strings that stand for more than one target: ``{source: {target, …}}`` (empty = learnable)."""
    first: dict[str, str] = {}
    clashes: dict[str, set[str]] = defaultdict(set)
    for p in pairs:
        seen = first.setdefault(p.source, p.target)
        if seen != p.target:
            clashes[p.source] |= {seen, p.target}
    return dict(clashes)


def exact_match_ceiling(pairs: Sequence[DatePair]) -> float:
    """The best exact-match any model can reach on ``pairs``: for each input, the share of its most common
    target. 1.0 means every input has exactly one answer."""
    if not pairs:
        raise ValueError("exact_match_ceiling needs at least one pair")
    ambiguous = ambiguous_sources(pairs)
    if not ambiguous:
        return 1.0
    counts: dict[str, Counter] = defaultdict(Counter)
    for p in pairs:
        if p.source in ambiguous:
            counts[p.source][p.target] += 1
    lost = sum(c.total() - c.most_common(1)[0][1] for c in counts.values())
    return 1.0 - lost / len(pairs)


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
        ValueError: the held-out dates would not leave any for training, or some held-out input string also
            stands for a training date (see :func:`ambiguous_sources`), so the splits would not be disjoint.
    """
    names, dates = _formats(formats), _dates(first_year, last_year)
    for name, n in (("n_val", n_val), ("n_test", n_test)):
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ValueError(f"{name} must be a positive int, got {n!r}")
    if n_val + n_test >= len(dates):
        raise ValueError(f"n_val + n_test = {n_val + n_test} leaves no training dates out of {len(dates)}")
    order = list(range(len(dates)))
    random.Random(seed).shuffle(order)
    val_idx, test_idx = order[:n_val], order[n_val : n_val + n_test]
    held_out = set(order[: n_val + n_test])

    def one_format_each(indices: list[int]) -> list[DatePair]:
        return [DatePair(format_date(dates[i], names[k % len(names)]), dates[i].isoformat(), names[k % len(names)])
                for k, i in enumerate(indices)]

    train = _write([d for i, d in enumerate(dates) if i not in held_out], names)
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

    one_per_month_and_weekday = [dt.date(2024, m, d) for m in range(1, 13) for d in range(1, 8)]
    text = "".join(format_date(d, f) for f in DATE_FORMATS for d in one_per_month_and_weekday)
    text += "0123456789-stndrh"  # every digit, ISO's dash, and the ordinal suffixes st/nd/rd/th
    return CharTokenizer.train(text, special_tokens=DATE_SPECIAL_TOKENS)


def encode_date_pairs(pairs: Sequence[DatePair], tokenizer, src_len: int | None = None,
                 tgt_len: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Encode pairs as right-padded id matrices for a seq2seq model.

    Returns:
        ``(src, tgt)``: ``src`` ``(N, S)`` = the source characters; ``tgt`` ``(N, T)`` =
        ``<bos> target <eos>``. Both are padded with ``<pad>`` to the longest row (or to ``src_len``/``tgt_len``).
    """
    if not pairs:
        raise ValueError("encode_date_pairs needs at least one pair")
    pad, bos, eos = (tokenizer.token_to_id(t) for t in DATE_SPECIAL_TOKENS)
    src_ids = [tokenizer.encode(p.source) for p in pairs]
    tgt_ids = [[bos, *tokenizer.encode(p.target), eos] for p in pairs]
    longest_src, longest_tgt = max(map(len, src_ids)), max(map(len, tgt_ids))
    S, T = src_len or longest_src, tgt_len or longest_tgt
    if longest_src > S or longest_tgt > T:
        raise ValueError(f"src_len={src_len} / tgt_len={tgt_len} is shorter than the longest source "
                         f"({longest_src}) / target ({longest_tgt}) row")
    src = torch.tensor([s + [pad] * (S - len(s)) for s in src_ids], dtype=torch.long)  # (N, S)
    tgt = torch.tensor([t + [pad] * (T - len(t)) for t in tgt_ids], dtype=torch.long)  # (N, T)
    return src, tgt
