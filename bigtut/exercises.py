"""Exercises in notebooks, the student edition, and grading it with nbgrader.

An exercise is one self-contained code cell: imports, a function whose body holds the solution between the
lines ``### BEGIN SOLUTION`` and ``### END SOLUTION`` (nbgrader's markers), and a final checker call. The
student edition replaces each such region by a stub that raises ``NotImplementedError``, and splits the cell in
two, marked for nbgrader: an answer cell (``solution``) holding everything but the checker call, and a read-only
graded cell (``grade``, ``locked``, 1 point) holding the call::

    python -m bigtut.exercises notebooks student/notebooks student/exercises   # make student
    python -m bigtut.exercises --nbgrader notebooks grading                      # make nbgrader
    python -m bigtut.exercises --grade-check notebooks .venv-grader/bin/nbgrader # make grade-check

``student/exercises/`` holds one notebook per chapter with only its exercises (their statements and the split
cells): what nbgrader grades, since each exercise runs alone, in seconds, in a fresh kernel. ``grading/`` is an
nbgrader course directory whose ``source/`` holds the same notebooks with their solutions.
"""

from __future__ import annotations

import argparse
import ast
import copy
import csv
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
STUB = 'raise NotImplementedError("Exercise: replace this line with your code")'
_BEGIN_LINE = re.compile(r"^(?P<indent>[ \t]*)" + re.escape(BEGIN) + r"\s*$")
_STATEMENT = re.compile(r"Exercise \d")  # the paragraph that opens an exercise's statement
POINTS = 1  # per exercise: its checker passes or it does not
EXERCISES_SUFFIX = "_exercises"
CHECK_OUTPUT = "# NBVAL_CHECK_OUTPUT"


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


def split_exercise(source: str) -> tuple[str, str]:
    """``(answer, check)``: an exercise cell's code up to its final checker call, and that call (which takes the
    cell's ``# NBVAL_CHECK_OUTPUT`` line along: the checked output is its ``PASS`` line).

    Raises:
        ValueError: the cell does not parse, or does not end with a call to a function named ``check_*``.
    """
    try:
        body = ast.parse(source).body
    except SyntaxError as error:
        raise ValueError(f"an exercise cell must be plain Python: {error}") from None
    last = body[-1] if body else None
    if not (isinstance(last, ast.Expr) and isinstance(last.value, ast.Call)
            and isinstance(last.value.func, ast.Name) and last.value.func.id.startswith("check_")):
        raise ValueError("an exercise cell must end with its checker call, check_...(...)")
    lines = source.splitlines(keepends=True)
    answer, check = lines[: last.lineno - 1], lines[last.lineno - 1:]
    if answer and answer[0].strip() == CHECK_OUTPUT:
        answer, check = answer[1:], [answer[0]] + check
    return "".join(answer).strip("\n").rstrip(), "".join(check).rstrip()


def nbgrader_metadata(grade_id: str, *, check: bool) -> dict:
    """nbgrader's cell metadata (schema 3): an autograded answer, or a read-only test worth :data:`POINTS`."""
    if check:
        return {"grade": True, "grade_id": grade_id, "locked": True, "points": POINTS, "schema_version": 3,
                "solution": False, "task": False}
    return {"grade": False, "grade_id": grade_id, "locked": False, "schema_version": 3, "solution": True,
            "task": False}


def grade_ids(stem: str, number: int) -> tuple[str, str]:
    """The answer's and the checker's grade_id of exercise ``number`` (1, 2, ...) of notebook ``stem``."""
    return f"{stem}_ex{number}", f"{stem}_ex{number}_check"


def exercise_cells(notebook_path: str | Path) -> list[tuple[int, str]]:
    """``(cell index, source)`` of every exercise cell in a notebook."""
    cells = json.loads(Path(notebook_path).read_text())["cells"]
    return [(i, "".join(c["source"])) for i, c in enumerate(cells)
            if c["cell_type"] == "code" and is_exercise("".join(c["source"]))]


def _split_cells(cell, stem: str, number: int, *, solutions: bool) -> list:
    """An exercise cell as nbgrader's pair: the answer (stubbed unless ``solutions``) and the locked checker."""
    import nbformat

    try:
        answer, check = split_exercise(cell.source)
    except ValueError as error:
        raise ValueError(f"{stem}, exercise {number}: {error}") from None
    answer_id, check_id = grade_ids(stem, number)
    # What `nbgrader generate_assignment` does to these cells (its LockCells), done here too.
    answer_cell = nbformat.v4.new_code_cell(answer if solutions else make_stub(answer).rstrip(),
                                            id=cell.get("id") or answer_id.replace("_", "-"),
                                            metadata={"deletable": False,
                                                      "nbgrader": nbgrader_metadata(answer_id, check=False)})
    check_cell = nbformat.v4.new_code_cell(check, id=check_id.replace("_", "-"),
                                           metadata={"deletable": False, "editable": False,
                                                     "nbgrader": nbgrader_metadata(check_id, check=True)})
    return [answer_cell, check_cell]


def student_notebook(nb, stem: str, *, solutions: bool = False):
    """A copy of a notebook with every exercise cell split and marked for nbgrader, stubbed unless ``solutions``."""
    nb = copy.deepcopy(nb)
    cells, number = [], 0
    for cell in nb.cells:
        if cell.cell_type == "code" and is_exercise(cell.source):
            number += 1
            cells += _split_cells(cell, stem, number, solutions=solutions)
        else:
            cells.append(cell)
    nb.cells = cells
    return nb


def _statement(markdown: str) -> str:
    """The part of a markdown cell from the paragraph naming "Exercise N" on (all of it if none does)."""
    paragraphs = markdown.split("\n\n")
    start = next((i for i, p in enumerate(paragraphs) if _STATEMENT.search(p)), 0)
    return "\n\n".join(paragraphs[start:])


def exercises_notebook(nb, stem: str, *, solutions: bool = False):
    """A notebook of only ``nb``'s exercises: a title, then per exercise its statement (the markdown cell before
    it) and its split cells; stubbed unless ``solutions``. Exercise cells stand alone, so it runs in a fresh
    kernel in seconds."""
    import nbformat

    title = next((c.source.splitlines()[0] for c in nb.cells if c.cell_type == "markdown" and c.source.strip()),
                 stem).lstrip("# ")
    intro = (f"# Exercises — {title}\n\nThe exercises of `{stem}.ipynb`, on their own; that notebook explains the "
             "ideas. Write your code in place of each `raise NotImplementedError(...)` line, then run the cell "
             "below it: its checker prints `PASS` or says what is wrong. Every exercise stands alone, so any "
             "can be done first.")
    cells = [nbformat.v4.new_markdown_cell(intro, id=f"{stem}-exercises-title".replace("_", "-"))]
    number = 0
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and is_exercise(cell.source):
            number += 1
            before = nb.cells[i - 1] if i > 0 else None
            if before is not None and before.cell_type == "markdown":
                cells.append(nbformat.v4.new_markdown_cell(_statement(before.source), id=before.get("id")))
            cells += _split_cells(cell, stem, number, solutions=solutions)
    out = nbformat.v4.new_notebook(cells=cells, metadata=copy.deepcopy(nb.metadata))
    out.nbformat, out.nbformat_minor = nb.nbformat, nb.nbformat_minor
    return out


def _notebooks(source_dir: str | Path) -> list[Path]:
    return sorted(Path(source_dir).glob("*.ipynb"))


def write_student_edition(source_dir: str | Path, target_dir: str | Path,
                          exercises_dir: str | Path | None = None) -> list[Path]:
    """Copy every notebook of ``source_dir`` to ``target_dir`` with solutions stubbed, exercise cells split and
    marked for nbgrader (their outputs cleared); with ``exercises_dir``, also write each notebook's exercises
    alone there (``<stem>_exercises.ipynb``, only for notebooks that have exercises)."""
    import nbformat

    written = []
    for path in _notebooks(source_dir):
        nb = nbformat.read(path, as_version=4)
        out = student_notebook(nb, path.stem)
        Path(target_dir).mkdir(parents=True, exist_ok=True)
        nbformat.write(out, Path(target_dir) / path.name)
        written.append(Path(target_dir) / path.name)
        if exercises_dir is not None and any(is_exercise(c.source) for c in nb.cells if c.cell_type == "code"):
            Path(exercises_dir).mkdir(parents=True, exist_ok=True)
            target = Path(exercises_dir) / f"{path.stem}{EXERCISES_SUFFIX}.ipynb"
            nbformat.write(exercises_notebook(nb, path.stem), target)
            written.append(target)
    return written


NBGRADER_CONFIG = '''\
"""nbgrader's configuration for the bigtut course (written by `make nbgrader`)."""
import os

c = get_config()  # noqa: F821 - nbgrader provides it
c.CourseDirectory.course_id = "bigtut"
# The stub of the student edition, so nbgrader's release equals student/exercises/.
c.ClearSolutions.code_stub = {{"python": {stub!r}}}
c.Execute.timeout = 300  # seconds per cell
c.Execute.shutdown_kernel = "immediate"  # a graded kernel has nothing to save: saves seconds per notebook
# Run submissions in the course's kernel (torch and bigtut installed): its kernelspec is found first.
os.environ["JUPYTER_PATH"] = os.pathsep.join(
    p for p in ({kernels!r}, os.environ.get("JUPYTER_PATH")) if p)
'''


def write_nbgrader_course(source_dir: str | Path, course_dir: str | Path) -> list[Path]:
    """An nbgrader course directory: ``nbgrader_config.py`` and, per notebook with exercises, the assignment
    ``source/<stem>/<stem>_exercises.ipynb`` holding them with their solutions."""
    import nbformat

    course = Path(course_dir)
    course.mkdir(parents=True, exist_ok=True)
    kernels = str(Path(sys.prefix).resolve() / "share" / "jupyter")  # where `make setup` put the course's kernel
    (course / "nbgrader_config.py").write_text(NBGRADER_CONFIG.format(stub=STUB, kernels=kernels))
    written = []
    for path in _notebooks(source_dir):
        nb = nbformat.read(path, as_version=4)
        if not any(c.cell_type == "code" and is_exercise(c.source) for c in nb.cells):
            continue
        target = course / "source" / path.stem / f"{path.stem}{EXERCISES_SUFFIX}.ipynb"
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(exercises_notebook(nb, path.stem, solutions=True), target)
        written.append(target)
    return written


def _run(what: str, command: list[str], cwd: Path, env: dict) -> None:
    """Run one step of the grade check; on failure show its output and stop."""
    start = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        sys.stderr.write(result.stdout + result.stderr)
        raise SystemExit(f"grade-check: {what} failed ({Path(command[0]).name} exited with {result.returncode})")
    print(f"grade-check: {what} ({time.perf_counter() - start:.0f} s)", flush=True)


def _failed_checks(notebook: Path) -> list[str]:
    """``grade_id: error`` of every graded cell of an autograded notebook that raised."""
    failed = []
    for cell in json.loads(notebook.read_text())["cells"]:
        if cell["metadata"].get("nbgrader", {}).get("grade"):
            for output in cell.get("outputs", []):
                if output.get("output_type") == "error":
                    failed.append(f"{cell['metadata']['nbgrader']['grade_id']}: {output['ename']}: "
                                  f"{output['evalue'][:200]}")
    return failed


def grade_check(source_dir: str | Path, nbgrader: str | Path) -> int:
    """Grade the course with nbgrader end to end, offline, in a temporary course directory: generate every
    assignment, check that nbgrader's release equals the student edition, validate the student edition's
    metadata, then autograde a solved copy (the source, which must get full marks) and a stub copy (the student
    edition, which must get none). Returns 0 when all holds, else 1."""
    import nbformat

    nbgrader = Path(nbgrader).resolve()
    expected = {p.stem: len(exercise_cells(p)) for p in _notebooks(source_dir) if exercise_cells(p)}
    if not expected:
        print(f"grade-check FAILED: no exercises in {source_dir}", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="bigtut-grade-check-") as tmp:
        tmp = Path(tmp)
        course, student = tmp / "course", tmp / "student"
        env = dict(os.environ, JUPYTER_CONFIG_DIR=str(tmp / "jupyter-config"),  # no user-wide config
                   PATH=os.pathsep.join([str(nbgrader.parent), os.environ.get("PATH", "")]),  # nbgrader runs alembic
                   JUPYTER_RUNTIME_DIR=str(tmp / "jupyter-runtime"))
        write_nbgrader_course(source_dir, course)
        write_student_edition(source_dir, student / "notebooks", student / "exercises")
        _run("nbgrader generate_assignment: every assignment", [str(nbgrader), "generate_assignment", "*", "--force"],
             course, env)

        problems = []
        full = sorted((student / "notebooks").glob("*.ipynb"))
        validate = ("import sys, nbformat\nfrom nbgrader.nbgraderformat import MetadataValidator\n"
                    "for p in sys.argv[1:]:\n    MetadataValidator().validate_nb(nbformat.read(p, as_version=4))\n")
        _run("nbgrader's metadata validator: the student edition", [str(nbgrader.parent / "python"), "-c", validate,
             *map(str, full)], tmp, env)
        for stem in expected:
            name = f"{stem}{EXERCISES_SUFFIX}.ipynb"
            ours = nbformat.read(student / "exercises" / name, as_version=4)
            released = nbformat.read(course / "release" / stem / name, as_version=4)
            if [c.source for c in ours.cells] != [c.source for c in released.cells]:
                problems.append(f"{stem}: nbgrader's release differs from student/exercises/{name}")
            for copy_name, notebook in (("solved", course / "source" / stem / name),
                                        ("stub", student / "exercises" / name)):
                target = course / "submitted" / copy_name / stem / name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(notebook, target)
        _run("nbgrader autograde: a solved and a stub copy of every assignment",
             [str(nbgrader), "autograde", "*", "--force"], course, env)
        _run("nbgrader export", [str(nbgrader), "export", "--to", str(tmp / "grades.csv")], course, env)

        with open(tmp / "grades.csv", newline="") as f:
            scores = {(row["student_id"], row["assignment"]): (float(row["score"]), float(row["max_score"]))
                      for row in csv.DictReader(f)}
        print(f"{'assignment':<36}{'solved':>10}{'stub':>10}")
        for stem, count in expected.items():
            (solved, top), (stubbed, _) = scores.get(("solved", stem), (-1, 0)), scores.get(("stub", stem), (-1, 0))
            print(f"{stem:<36}{solved:>6g} / {top:g}{stubbed:>6g} / {top:g}")
            if top != count * POINTS:
                problems.append(f"{stem}: max score {top:g}, expected {count * POINTS} ({count} exercises)")
            if solved != top:
                autograded = course / "autograded" / "solved" / stem / f"{stem}{EXERCISES_SUFFIX}.ipynb"
                failed = _failed_checks(autograded) if autograded.exists() else ["not autograded"]
                problems.append(f"{stem}: the solved copy scored {solved:g} of {top:g}: " + "; ".join(failed))
            if stubbed != 0:
                problems.append(f"{stem}: the stub copy scored {stubbed:g}, expected 0")
    for problem in problems:
        print("grade-check FAILED:", problem, file=sys.stderr)
    if not problems:
        print(f"grade-check: {len(expected)} assignments, {sum(expected.values())} exercises: every solved copy "
              "got full marks, every stub copy none")
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bigtut.exercises", description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--nbgrader", action="store_true", help="write nbgrader's course directory to TARGET")
    mode.add_argument("--grade-check", action="store_true",
                      help="grade the course with the nbgrader executable TARGET (solved: full marks, stub: none)")
    parser.add_argument("notebooks", help="the notebooks' folder")
    parser.add_argument("target", help="where the student edition (or the course directory) goes")
    parser.add_argument("exercises", nargs="?", help="where each notebook's exercises alone go")
    args = parser.parse_args(argv)
    if args.grade_check:
        return grade_check(args.notebooks, args.target)
    if args.nbgrader:
        written = write_nbgrader_course(args.notebooks, args.target)
    else:
        written = write_student_edition(args.notebooks, args.target, args.exercises)
    for p in written:
        print(f"wrote {p}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
