"""A reader's pace: each notebook keeps the path a student walks short (side studies, cross-machine caveats and
long derivations live in the chapters). Words are counted as whitespace-separated pieces of the markdown source,
markers included."""

import json
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
MAX_WORDS_PER_NOTEBOOK, MAX_WORDS_PER_CELL, MAX_LINES_PER_CODE_CELL = 3000, 250, 40
AUTHORING_PHRASES = ("seed draft", "drafts claim", "this session", "the issue asks", "author's note")


def cells(path: Path) -> list[tuple[int, str, str]]:
    return [(i, c["cell_type"], "".join(c["source"])) for i, c in enumerate(json.loads(path.read_text())["cells"])]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_keeps_a_readers_pace(path):
    markdown = [(i, len(src.split())) for i, kind, src in cells(path) if kind == "markdown"]
    code = [(i, len(src.splitlines())) for i, kind, src in cells(path) if kind == "code"]
    total = sum(words for _, words in markdown)
    assert total <= MAX_WORDS_PER_NOTEBOOK, f"{path.name}: {total} words of markdown (at most 3,000)"
    long_cells = [(i, w) for i, w in markdown if w > MAX_WORDS_PER_CELL]
    assert not long_cells, f"{path.name}: markdown cells over 250 words (cell, words): {long_cells}"
    long_code = [(i, n) for i, n in code if n > MAX_LINES_PER_CODE_CELL]
    assert not long_code, f"{path.name}: code cells over 40 lines (cell, lines): {long_code}"


def test_no_sentence_speaks_of_how_the_course_was_written():
    root = NOTEBOOKS[0].parents[1]
    for path in NOTEBOOKS + sorted((root / "chapters").glob("*.md")) + [root / "README.md"]:
        text = path.read_text().lower()
        for phrase in AUTHORING_PHRASES:
            assert phrase not in text, f"{path.name} mentions {phrase!r}"
