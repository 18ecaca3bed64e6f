"""The dates task: learnable (one answer per input), disjoint deterministic splits, a tokenizer that covers it."""

from __future__ import annotations

import datetime as dt

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bigtut.data import DatePair, date_pairs, date_splits, date_tokenizer, encode_date_pairs
from bigtut.data.dates import DATE_FORMATS, ambiguous_sources, exact_match_ceiling, format_date


@pytest.fixture(scope="module")
def pairs():
    return date_pairs()


@pytest.fixture(scope="module")
def splits():
    return date_splits()


def test_every_input_has_exactly_one_answer(pairs):
    assert len(pairs) == 36525 * len(DATE_FORMATS)  # 1950-01-01 .. 2049-12-31, every format
    assert ambiguous_sources(pairs) == {}
    assert exact_match_ceiling(pairs) == 1.0


def test_a_wider_window_makes_two_digit_years_ambiguous():
    wide = date_pairs(1940, 2049, formats=["{m}/{d}/{yy}", "{d} {Mon} {yyyy}"])
    clashes = ambiguous_sources(wide)
    assert clashes["11/23/45"] == {"1945-11-23", "2045-11-23"}
    assert all(p.count("/") == 2 for p in clashes)  # only the two-digit-year format clashes
    # 1940-1949 and 2040-2049 collide pairwise in the first format: 2 x 3653 pairs, half of them lost
    expected = 1 - 3653 / len(wide)
    assert exact_match_ceiling(wide) == pytest.approx(expected)
    with pytest.raises(ValueError, match="two dates"):
        date_splits(first_year=1940, last_year=2049, formats=["{m}/{d}/{yy}"])


def test_formats_write_what_their_comments_say():
    day = dt.date(2026, 11, 23)
    written = [format_date(day, f) for f in DATE_FORMATS]
    assert written == [
        "23 Nov 2026", "23 November 2026", "November 23, 2026", "Nov 23, 2026", "11/23/26", "11/23/2026",
        "23.11.2026", "Monday, November 23rd 2026", "Mon 23 Nov 2026", "the 23rd of November, 2026",
        "23-NOV-26", "20261123",
    ]
    early = [format_date(dt.date(2003, 4, 1), f) for f in ("{m}/{d}/{yy}", "{dd}.{mm}.{yyyy}", "{Weekday}, {dth}")]
    assert early == ["4/1/03", "01.04.2003", "Tuesday, 1st"]


@settings(max_examples=25, deadline=None)
@given(st.dates(dt.date(1950, 1, 1), dt.date(2049, 12, 31)))
def test_ordinals_and_weekdays_are_right(day):
    ordinal = format_date(day, "{dth}")
    suffix = "th" if day.day in (11, 12, 13) else {1: "st", 2: "nd", 3: "rd"}.get(day.day % 10, "th")
    assert ordinal == f"{day.day}{suffix}"
    assert format_date(day, "{Weekday}") == day.strftime("%A")  # C-locale names in the test process
    assert format_date(day, "{yyyy}-{mm}-{dd}") == day.isoformat()


def test_splits_are_disjoint_by_date_and_input(splits):
    assert {k: len(v) for k, v in splits.items()} == {"train": (36525 - 2500) * 12, "val": 500, "test": 2000}
    dates = {k: {p.target for p in v} for k, v in splits.items()}
    sources = {k: {p.source for p in v} for k, v in splits.items()}
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        assert not dates[a] & dates[b], f"{a} and {b} share dates"
        assert not sources[a] & sources[b], f"{a} and {b} share inputs"
    counts = {f: sum(p.fmt == f for p in splits["test"]) for f in DATE_FORMATS}
    assert max(counts.values()) - min(counts.values()) <= 1  # formats take turns in the held-out splits
    assert all(format_date(dt.date.fromisoformat(p.target), p.fmt) == p.source for p in splits["test"])


def test_splits_are_deterministic():
    small = {"n_val": 30, "n_test": 60, "first_year": 2000, "last_year": 2004}
    first, again = date_splits(**small), date_splits(**small)
    assert first == again
    assert date_splits(seed=1, **small)["test"] != first["test"]


def test_tokenizer_covers_every_character_and_round_trips(pairs, splits):
    tok = date_tokenizer()
    assert [tok.token_to_id(t) for t in ("<pad>", "<bos>", "<eos>")] == [0, 1, 2]
    used = set("".join(p.source for p in pairs)) | set("".join(p.target for p in pairs[:100]))
    assert all(tok.token_to_id(c) >= 3 for c in used)
    src, tgt = encode_date_pairs(splits["test"][:5], tok)
    assert src.shape == (5, max(len(p.source) for p in splits["test"][:5])) and tgt.shape == (5, 12)
    assert (tgt[:, 0] == 1).all() and (tgt[:, -1] == 2).all()
    for row, pair in zip(src, splits["test"][:5]):
        assert tok.decode([i for i in row.tolist() if i != 0]) == pair.source
    wide_src, _ = encode_date_pairs(splits["test"][:5], tok, src_len=40)
    assert wide_src.shape == (5, 40) and torch.equal(wide_src[:, : src.shape[1]], src)


@pytest.mark.parametrize("kwargs, message", [
    ({"n_val": 0}, "n_val"), ({"n_test": 40000}, "no training dates"), ({"formats": ["%d/%m"]}, "unknown"),
    ({"first_year": 2000, "last_year": 1999}, "first_year"),
])
def test_bad_arguments_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        date_splits(**kwargs)


def test_encode_refuses_rows_that_do_not_fit():
    tok = date_tokenizer()
    with pytest.raises(ValueError, match="shorter than"):
        encode_date_pairs([DatePair("23 Nov 2026", "2026-11-23", "{d} {Mon} {yyyy}")], tok, src_len=5)
    with pytest.raises(ValueError, match="at least one"):
        encode_date_pairs([], tok)
