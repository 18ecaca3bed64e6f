"""Every exercise cell of every notebook, run in a fresh namespace: as committed its checker must PASS; with the
solution replaced by the student-edition stub, the checker must fail."""

import contextlib
import io
from pathlib import Path

import matplotlib
import pytest

from bigtut.exercises import STUB, exercise_cells, make_stub, write_student_edition

matplotlib.use("Agg")
NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))
EXERCISES = [(nb, i, src) for nb in NOTEBOOKS for i, src in exercise_cells(nb)]


def _run(source: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(source, "<exercise>", "exec"), {"__name__": "__exercise__"})
    return out.getvalue()


@pytest.mark.parametrize("notebook, index, source", EXERCISES,
                         ids=[f"{nb.stem}-cell{i}" for nb, i, _ in EXERCISES])
def test_solution_passes_and_stub_fails(notebook, index, source):
    assert "PASS" in _run(source), "the committed solution should make its checker print PASS"
    stub = make_stub(source)
    assert STUB in stub and "### BEGIN SOLUTION" not in stub
    with pytest.raises(AssertionError):
        _run(stub)


# The course promises at least two exercises per notebook; attention and GPT promise three.
MINIMUM_EXERCISES = {"02_attention": 3, "04_gpt": 3}


def test_every_notebook_has_its_minimum_of_exercises():
    assert NOTEBOOKS, "no notebooks found"
    for nb in NOTEBOOKS:
        needed = MINIMUM_EXERCISES.get(nb.stem, 2)
        assert len(exercise_cells(nb)) >= needed, f"{nb.name} has fewer than {needed} exercises"


def test_make_stub_keeps_indentation_and_rejects_broken_markers():
    source = "def f(x):\n    ### BEGIN SOLUTION\n    return x\n    ### END SOLUTION\ncheck(f)\n"
    assert make_stub(source) == f"def f(x):\n    {STUB}\ncheck(f)\n"
    with pytest.raises(ValueError, match="without a matching"):
        make_stub("def f():\n    ### BEGIN SOLUTION\n    pass\n")
    with pytest.raises(ValueError, match="without a"):
        make_stub("### END SOLUTION\n")


def test_student_edition_has_no_solutions(tmp_path):
    written = write_student_edition(Path(__file__).parent.parent / "notebooks", tmp_path)
    assert len(written) == len(NOTEBOOKS)
    for path in written:
        assert "### BEGIN SOLUTION" not in path.read_text()
