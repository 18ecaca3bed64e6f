"""Every exercise of every notebook, as the student edition splits it for nbgrader (an answer cell, then a
locked checker cell), run in a fresh namespace: with the committed solution its checker must PASS; with the
student-edition stub, the checker must fail. And the nbgrader metadata every exercise carries.

Grading the student edition with nbgrader itself is ``make grade-check`` (it installs nbgrader)."""

import ast
import contextlib
import io
from pathlib import Path

import matplotlib
import nbformat
import pytest

from bigtut.exercises import (
    POINTS,
    STUB,
    exercise_cells,
    exercises_notebook,
    grade_ids,
    make_stub,
    split_exercise,
    student_notebook,
    write_nbgrader_course,
    write_student_edition,
)

matplotlib.use("Agg")
NOTEBOOK_DIR = Path(__file__).parent.parent / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
READ = {path: nbformat.read(path, as_version=4) for path in NOTEBOOKS}


def _graded_pairs(nb) -> list[tuple]:
    """``(answer cell, checker cell)`` of every exercise, in order, found by their nbgrader metadata."""
    cells = nb.cells
    return [(cell, cells[i + 1]) for i, cell in enumerate(cells)
            if cell.metadata.get("nbgrader", {}).get("solution") and i + 1 < len(cells)]


# (notebook, exercise number, solved answer, stubbed answer, checker) as the exercises notebooks hold them
EXERCISES = [
    (path, number, solved.source, stubbed.source, check.source)
    for path in NOTEBOOKS
    for number, ((solved, check), (stubbed, _)) in enumerate(
        zip(_graded_pairs(exercises_notebook(READ[path], path.stem, solutions=True)),
            _graded_pairs(exercises_notebook(READ[path], path.stem)), strict=True), start=1)
]


def _run(*cells: str) -> str:
    """Run cells one after the other in one fresh namespace, as a fresh kernel would; return what they print."""
    out, namespace = io.StringIO(), {"__name__": "__exercise__"}
    with contextlib.redirect_stdout(out):
        for source in cells:
            exec(compile(source, "<exercise>", "exec"), namespace)
    return out.getvalue()


@pytest.mark.parametrize("notebook, number, solved, stubbed, check", EXERCISES,
                         ids=[f"{nb.stem}-ex{n}" for nb, n, *_ in EXERCISES])
def test_solution_passes_and_stub_fails(notebook, number, solved, stubbed, check):
    assert "PASS" in _run(solved, check), "the committed solution should make its checker print PASS"
    assert STUB in stubbed and "### BEGIN SOLUTION" not in stubbed
    with pytest.raises(AssertionError):
        _run(stubbed, check)


def test_every_notebook_gives_every_exercise_to_the_student_edition():
    for path in NOTEBOOKS:
        assert len([e for e in EXERCISES if e[0] == path]) == len(exercise_cells(path)), path.name


# The course promises at least three exercises in every notebook from 02 on (two in 00 and 01), fifty in all.
MINIMUM_EXERCISES_EARLY, MINIMUM_EXERCISES, MINIMUM_TOTAL = 2, 3, 50


def test_every_notebook_has_its_minimum_of_exercises():
    assert NOTEBOOKS, "no notebooks found"
    for nb in NOTEBOOKS:
        needed = MINIMUM_EXERCISES_EARLY if nb.stem.startswith(("00_", "01_")) else MINIMUM_EXERCISES
        assert len(exercise_cells(nb)) >= needed, f"{nb.name} has fewer than {needed} exercises"
    assert sum(len(exercise_cells(nb)) for nb in NOTEBOOKS) >= MINIMUM_TOTAL


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_nbgrader_metadata(path):
    """Each exercise: exactly one solution cell, directly followed by exactly one locked graded cell holding only
    its checker call; grade_ids unique and made from the notebook's stem and the exercise's number."""
    count = len(exercise_cells(path))
    for nb in (student_notebook(READ[path], path.stem), exercises_notebook(READ[path], path.stem)):
        marked = [c for c in nb.cells if "nbgrader" in c.metadata]
        answers = [c for c in marked if c.metadata.nbgrader["solution"]]
        checks = [c for c in marked if c.metadata.nbgrader["grade"]]
        assert len(answers) == len(checks) == count and len(marked) == 2 * count
        ids = [c.metadata.nbgrader["grade_id"] for c in marked]
        assert len(set(ids)) == len(ids), f"duplicate grade_ids {ids}"
        assert len({c.id for c in nb.cells}) == len(nb.cells), "duplicate cell ids"
        for number, (answer, check) in enumerate(_graded_pairs(nb), start=1):
            assert (answer.metadata.nbgrader["grade_id"], check.metadata.nbgrader["grade_id"]) == grade_ids(
                path.stem, number)
            assert answer.cell_type == check.cell_type == "code"
            assert answer.metadata.nbgrader == {"grade": False, "grade_id": f"{path.stem}_ex{number}", "locked": False,
                                                "schema_version": 3, "solution": True, "task": False}
            assert check.metadata.nbgrader == {"grade": True, "grade_id": f"{path.stem}_ex{number}_check",
                                               "locked": True, "points": POINTS, "schema_version": 3,
                                               "solution": False, "task": False}
            assert check.metadata.editable is False and check.metadata.deletable is False
            body = ast.parse(check.source).body
            assert len(body) == 1 and body[0].value.func.id.startswith("check_"), check.source
            assert STUB in answer.source and not answer.outputs and not check.outputs


def test_student_edition_keeps_every_other_cell():
    for path in NOTEBOOKS:
        nb = READ[path]
        out = student_notebook(nb, path.stem)
        assert len(out.cells) == len(nb.cells) + len(exercise_cells(path))
        others = [c for c in nb.cells if not (c.cell_type == "code" and "### BEGIN SOLUTION" in c.source)]
        assert [c for c in out.cells if "nbgrader" not in c.metadata] == others


def test_split_exercise_moves_only_the_final_checker_call():
    source = "# NBVAL_CHECK_OUTPUT\nimport torch\n\n\ndef f(x):\n    return x\n\n\ncheck_f(f,\n        seed=0)\n"
    assert split_exercise(source) == ("import torch\n\n\ndef f(x):\n    return x",
                                      "# NBVAL_CHECK_OUTPUT\ncheck_f(f,\n        seed=0)")
    with pytest.raises(ValueError, match="must end with its checker call"):
        split_exercise("def f(x):\n    return x\n\nprint(f(1))\n")
    with pytest.raises(ValueError, match="plain Python"):
        split_exercise("%xmode Minimal\ncheck_f(f)\n")


def test_make_stub_keeps_indentation_and_rejects_broken_markers():
    source = "def f(x):\n    ### BEGIN SOLUTION\n    return x\n    ### END SOLUTION\ncheck(f)\n"
    assert make_stub(source) == f"def f(x):\n    {STUB}\ncheck(f)\n"
    with pytest.raises(ValueError, match="without a matching"):
        make_stub("def f():\n    ### BEGIN SOLUTION\n    pass\n")
    with pytest.raises(ValueError, match="without a"):
        make_stub("### END SOLUTION\n")


def test_student_edition_has_no_solutions(tmp_path):
    written = write_student_edition(NOTEBOOK_DIR, tmp_path / "notebooks", tmp_path / "exercises")
    assert sorted(p.name for p in (tmp_path / "notebooks").iterdir()) == [p.name for p in NOTEBOOKS]
    assert sorted(p.name for p in (tmp_path / "exercises").iterdir()) == sorted(
        f"{p.stem}_exercises.ipynb" for p in NOTEBOOKS if exercise_cells(p))
    assert len(written) == len(list(tmp_path.glob("*/*.ipynb")))
    for path in written:
        assert "### BEGIN SOLUTION" not in path.read_text()


def test_nbgrader_course_holds_the_solutions(tmp_path):
    written = write_nbgrader_course(NOTEBOOK_DIR, tmp_path)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in written) == sorted(
        f"source/{p.stem}/{p.stem}_exercises.ipynb" for p in NOTEBOOKS if exercise_cells(p))
    for path in written:
        assert "### BEGIN SOLUTION" in path.read_text()
    config = (tmp_path / "nbgrader_config.py").read_text()
    compile(config, "nbgrader_config.py", "exec")
    assert repr(STUB) in config and "JUPYTER_PATH" in config
