"""Exercises in notebooks, and the student edition.

An exercise is one self-contained code cell: imports, a function whose body holds the solution between the
lines ``### BEGIN SOLUTION`` and ``### END SOLUTION``, and a checker call. The student edition replaces each
such region by a stub that raises ``NotImplementedError``::

    python -m bigtut.exercises notebooks student/notebooks     # what `make student` runs
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
STUB = 'raise NotImplementedError("Exercise: replace this line with your code")'
_BEGIN_LINE = re.compile(r"^(?P<indent>[ \t]*)" + re.escape(BEGIN) + r"\s*$")


def is_exercise(source: str) -> bool:
    """Does this cell's source hold a solution region?"""
    return BEGIN in source


def make_stub(source: str) -> str:
    """Replace every solution region of a cell's source with a ``NotImplementedError`` stub.

    Raises:
        ValueError: a BEGIN marker without its END marker (or the reverse), or nested markers.
    """
    out: list[str] = []
    inside = False
    for number, line in enumerate(source.splitlines(keepends=True), start=1):
        begin = _BEGIN_LINE.match(line.rstrip("\n"))
        if begin:
            if inside:
                raise ValueError(f"line {number}: {BEGIN} inside another solution region")
            inside = True
            out.append(f"{begin['indent']}{STUB}\n")
        elif line.strip() == END:
            if not inside:
                raise ValueError(f"line {number}: {END} without a {BEGIN} before it")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"{BEGIN} without a matching {END}")
    return "".join(out)


def exercise_cells(notebook_path: str | Path) -> list[tuple[int, str]]:
    """``(cell index, source)`` of every exercise cell in a notebook."""
    cells = json.loads(Path(notebook_path).read_text())["cells"]
    return [(i, "".join(c["source"])) for i, c in enumerate(cells)
            if c["cell_type"] == "code" and is_exercise("".join(c["source"]))]


def write_student_edition(source_dir: str | Path, target_dir: str | Path) -> list[Path]:
    """Copy every notebook of ``source_dir`` to ``target_dir`` with solutions stubbed and their outputs cleared."""
    import nbformat

    target = Path(target_dir)
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for path in sorted(Path(source_dir).glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code" and is_exercise(cell.source):
                cell.source = make_stub(cell.source)
                cell.outputs, cell.execution_count = [], None
        nbformat.write(nb, target / path.name)
        written.append(target / path.name)
    return written


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python -m bigtut.exercises NOTEBOOK_DIR TARGET_DIR")
    for p in write_student_edition(sys.argv[1], sys.argv[2]):
        print(f"wrote {p}")
