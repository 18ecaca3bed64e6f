"""The two assertions every checker test makes, written once: the right answer passes on seeds 0-2 (one PASS
line each), and a wrong answer fails on seeds 0-2 with a message naming its mistake."""

import re

import pytest

from bigtut.checks.core import CheckFailure

SEEDS = (0, 1, 2)


def assert_passes_on_seeds(checker, solution, capsys) -> None:
    for seed in SEEDS:
        checker(solution, seed=seed)
    out = capsys.readouterr().out
    assert out.count("PASS") == len(SEEDS) and len(out.splitlines()) == len(SEEDS), out


def assert_fails_naming(checker, wrong, message: str) -> None:
    for seed in SEEDS:
        with pytest.raises(CheckFailure) as failure:
            checker(wrong, seed=seed)
        assert re.search(message, str(failure.value), flags=re.DOTALL), str(failure.value)
