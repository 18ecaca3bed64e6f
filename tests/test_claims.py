"""The prose check (bigtut.claims): its rules on small texts, and planted errors in copies of the course's own
notebooks and chapters — a changed stored number, a wrong number in a chapter, a flipped comparison — each
of which it must catch."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from bigtut import claims
from bigtut.claims import Evidence, Number, check_files, check_text, holds, parse_number, quantities

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
CHAPTERS = sorted((ROOT / "chapters").glob("*.md"))


def evidence(*printed: str, code: str = "", statements: tuple[str, ...] = ()) -> Evidence:
    numbers = [n for text in printed for n in claims.printed_numbers(text)]
    in_code = [float(x) for x in re.findall(r"\d+(?:\.\d+)?", code)]
    return Evidence(numbers, in_code, statements)


def failures(text: str, ev: Evidence) -> list[claims.Failure]:
    return check_text([("test cell 0", text)], ev)


# ------------------------------------------------------------------------------------------------ rules
@pytest.mark.parametrize("prose, printed, ok", [
    ("The model reaches 0.46 accuracy.", "acc 0.4632", True),
    ("The model reaches 0.46 accuracy.", "acc 0.4672", False),
    ("The model reaches 0.463 accuracy.", "acc 0.46", False),          # more digits than were printed
    ("The model reaches 46% accuracy.", "acc 0.4632", True),
    ("The model reaches 46% accuracy.", "acc 46.3%", True),
    ("The model reaches 47% accuracy.", "acc 0.4632", False),
    ("It takes about 40 s.", "took 37.2 s", True),
    ("It takes about 40 s.", "took 33.0 s", False),
    ("Accuracy is over 90% now.", "acc 0.93", True),
    ("Accuracy is over 90% now.", "acc 0.89", False),
    ("The loss is under 0.5 here.", "loss 0.47", True),
    ("The loss is under 0.5 here.", "loss 0.52", False),
    ("A drop of −0.31 in the score.", "delta -0.312", True),
    ("It has 5,000 steps and 132 k tokens.", "5000 steps, 132,417 tokens", True),
    ("It has 5,000 steps and 133 k tokens.", "5000 steps, 132,417 tokens", False),
    ("The speed-up is 2.4× here.", "ratio 2.43x", True),
])
def test_a_number_must_be_printed_at_its_stated_precision(prose, printed, ok):
    assert (failures(prose, evidence(printed)) == []) is ok


def test_whole_numbers_written_in_code_count_but_decimals_must_be_printed():
    ev = evidence("nothing here", code="fit(model, steps=300, lr=0.003)")
    assert failures("We train for 300 steps.", ev) == []
    assert failures("We train for 400 steps.", ev) != []
    assert failures("The learning rate 0.003 is small.", ev) != []


@pytest.mark.parametrize("prose", [
    "GPT-2 and int8 and BPE-512 are names.", "See chapter 04 and notebooks 05–09.", "Layer 2, head 3, step 4800.",
    "Vaswani et al. (2017) wrote it.", "Python 3.11 and torch 2.13.0 run it.", "1. First item of a list.",
    "The cost is $O(n^2)$ in $d_{64}$ terms.", "Code like `steps=987` is not prose.",
    "A [link](https://example.org/3.14) hides its target.",
])
def test_numbers_that_are_not_quantities_are_skipped(prose):
    assert list(quantities(claims._strip_code_and_links(prose))) == []


def test_decimals_inside_math_are_checked():
    assert [n.value for n in quantities("so $2/(a+b) \\approx 0.74$ here")] == [0.74]


def test_constants_marker_covers_its_sentence_or_its_whole_cell():
    ev = evidence("nothing")
    assert failures("Masks 80/10/10 of the tokens.<!-- constants: 80/10/10 --> Then 15 of them.", ev)[0] \
        .problem.startswith("15 ")
    assert failures("<!-- constants: 80 10 15 -->\nMasks 80/10/10 of the tokens. Then 15 of them.", ev) == []
    assert failures("Masks 80/10/10 of the tokens.", ev) != []


def test_from_marker_reads_another_file(tmp_path):
    (tmp_path / "bench.txt").write_text("speed-up 3.71x\n")
    ev = evidence("nothing")
    text = "The cache speeds decoding up 3.7×. <!-- from: bench.txt -->"
    assert check_text([("c", text)], ev, root=tmp_path) == []
    assert check_text([("c", text.replace("3.7", "4.7"))], ev, root=tmp_path) != []
    missing = check_text([("c", "It is 3.7. <!-- from: nope.txt -->")], ev, root=tmp_path)
    assert "does not exist" in missing[0].problem


def test_a_comparison_needs_an_assertion_or_an_argument_marker():
    ev = evidence("claim holds: random is worst on every column", statements=("Random is worst on every column",))
    assert failures("As the table shows, random is worst on every column.", ev) == []
    assert failures("As the table shows, random is best on every column.", ev) != []
    assert failures("Bigger models usually do better than small ones. <!-- argument -->", ev) == []
    assert failures("The pretrained model beats the baseline.", ev)[0].problem.startswith("comparison")


def test_holds_prints_or_raises(capsys):
    holds("random is worst on every column", bool(np.all(np.array([1, 2]) > 0)))
    assert capsys.readouterr().out == "claim holds: random is worst on every column\n"
    with pytest.raises(AssertionError, match="claim fails: a beats b always"):
        holds("a beats b always", False)
    with pytest.raises(TypeError, match="bool"):
        holds("a beats b always", np.array([True, False]))
    with pytest.raises(ValueError, match="three words"):
        holds("worst", True)


def test_parse_number_reads_about_and_bounds():
    m = claims._NUMBER.search("1,500")
    assert parse_number(m, "about ") == Number("1,500", 1500.0, -2, False, "about")
    assert parse_number(claims._NUMBER.search("0.30"), "over ").mode == "above"


# ------------------------------------------------------------------------------------------------ the course
def test_the_course_prose_is_bound_to_its_outputs():
    """The check `make claims` runs: every notebook, chapter and README course-map result."""
    found = check_files(claims.default_files(ROOT), ROOT)
    assert not found, "\n".join(map(str, found[:20]))


def _copy_course(tmp_path: Path) -> Path:
    """The notebooks and chapters copied (to be changed), everything their markers cite linked."""
    for folder in ("notebooks", "chapters"):
        shutil.copytree(ROOT / folder, tmp_path / folder,
                        ignore=shutil.ignore_patterns("*.png", "*.safetensors", ".ipynb_checkpoints"))
    for cited in ("benchmarks", "tests", "checkpoints", "bigtut"):
        (tmp_path / cited).symlink_to(ROOT / cited)
    return tmp_path


def _supported_decimals(notebook: Path) -> list[tuple[int, Number]]:
    """(cell index, number) of every prose number with two or more decimals that an output supports."""
    ev = Evidence.of_notebook(notebook)
    cells = json.loads(notebook.read_text())["cells"]
    found = []
    for i, cell in enumerate(cells):
        if cell["cell_type"] == "markdown":
            text = claims._strip_code_and_links(claims._ANY_COMMENT.sub(" ", "".join(cell["source"])))
            found += [(i, n) for n in quantities(text) if n.decimals >= 2 and n.mode == "exact" and ev.supports(n)]
    return found


def _falsify_outputs(notebook: Path, number: Number) -> None:
    """Change every stored output number that supports ``number`` into another value."""
    def change(match: re.Match) -> str:
        printed = claims.parse_number(match)
        return f"{abs(printed.value) + 0.37:.4f}" if Evidence([printed]).supports(number) else match.group(0)

    nb = json.loads(notebook.read_text())
    for cell in nb["cells"]:
        for output in cell.get("outputs", []):
            if "text" in output:
                output["text"] = claims._NUMBER.sub(change, "".join(output["text"]))
            if "text/plain" in output.get("data", {}):
                output["data"]["text/plain"] = claims._NUMBER.sub(change, "".join(output["data"]["text/plain"]))
    notebook.write_text(json.dumps(nb))


@pytest.mark.parametrize("notebook", [p.name for p in NOTEBOOKS])
def test_a_changed_stored_number_fails_the_check(tmp_path, notebook):
    root = _copy_course(tmp_path)
    path = root / "notebooks" / notebook
    candidates = _supported_decimals(path)
    if not candidates:
        pytest.skip(f"{notebook} states no measured decimal in its markdown")
    cell, number = candidates[len(candidates) // 2]
    assert check_files([path], root) == []
    _falsify_outputs(path, number)
    found = check_files([path], root)
    assert any(f.where == f"notebooks/{notebook} cell {cell}" and f.problem.startswith(number.text) for f in found)


@pytest.mark.parametrize("chapter", [p.name for p in CHAPTERS])
def test_a_wrong_number_in_a_chapter_fails_the_check(tmp_path, chapter):
    """A measured decimal of the chapter, changed in its last digit where the prose states it, is caught."""
    root = _copy_course(tmp_path)
    path = root / "chapters" / chapter
    ev = Evidence.of_notebook(root / "notebooks" / f"{path.stem}.ipynb")
    text = path.read_text()
    assert check_files([path], root) == []
    for sentence in claims._sentences(claims._strip_code_and_links(claims._ANY_COMMENT.sub(" ", text))):
        for number in quantities(sentence):
            if number.decimals < 1 or number.mode != "exact" or not ev.supports(number):
                continue
            wrong = number.text[:-1] + str((int(number.text[-1]) + 5) % 10) if number.text[-1].isdigit() else None
            if wrong is None or ev.supports(claims.parse_number(claims._NUMBER.search(wrong))):
                continue
            for place in re.finditer(rf"(?<![\d.]){re.escape(number.text)}(?![\d])", text):
                path.write_text(text[:place.start()] + wrong + text[place.end():])
                if any(f.problem.startswith(wrong + " ") for f in check_files([path], root)):
                    return
            pytest.fail(f"changing {number.text} to {wrong} in {chapter} was not caught")
    pytest.skip(f"{chapter} states no measured decimal")


FLIPS = {"worst": "best", "best": "worst", "higher": "lower", "lower": "higher", "beats": "loses to",
         "faster": "slower", "slower": "faster", "more": "fewer", "fewer": "more", "larger": "smaller",
         "smaller": "larger", "rising": "falling", "falling": "rising", "above": "below", "below": "above",
         "wins": "loses", "every": "no", "never": "always", "always": "never", "lowest": "highest",
         "highest": "lowest", "largest": "smallest", "smallest": "largest"}


def _bound_comparisons(notebook: Path) -> list[tuple[int, str]]:
    """(markdown cell, statement) for each asserted statement a notebook cell's prose contains, where the
    chapter does not repeat it."""
    statements = Evidence.of_notebook(notebook).statements
    chapter = notebook.parents[1] / "chapters" / f"{notebook.stem}.md"
    elsewhere = claims._normalise(chapter.read_text()) if chapter.exists() else ""
    cells = json.loads(notebook.read_text())["cells"]
    return [(i, s) for i, c in enumerate(cells) if c["cell_type"] == "markdown" for s in statements
            if s in claims._normalise("".join(c["source"])) and s not in elsewhere]


def test_a_flipped_comparison_fails_the_check(tmp_path):
    """Each asserted comparison of the course, flipped in its sentence (worst → best, faster → slower, ...)."""
    root = _copy_course(tmp_path)
    flipped = 0
    for notebook in sorted((root / "notebooks").glob("*.ipynb")):
        for cell, statement in _bound_comparisons(notebook):
            word = next((w for w in statement.split() if w in FLIPS), None)
            if word is None:
                continue
            nb = json.loads(notebook.read_text())
            source = "".join(nb["cells"][cell]["source"])
            nb["cells"][cell]["source"] = re.sub(rf"\b{word}\b", FLIPS[word], source, flags=re.I)
            copy = notebook.with_name("flipped_" + notebook.name)
            copy.write_text(json.dumps(nb))
            found = check_files([copy], root)
            assert any(f.problem.startswith(("comparison", "a holds() statement")) for f in found), \
                (notebook.name, statement)
            copy.unlink()
            flipped += 1
    assert flipped >= 5, f"only {flipped} asserted comparisons could be flipped"


def test_a_flipped_sentence_is_caught_by_its_comparison_word_too():
    """Where an assertion also backs another sentence, the flipped one still fails on its comparison word."""
    ev = evidence(statements=("random is worst on every column",))
    assert failures("Random is worst on every column.", ev) == []
    assert failures("Random is best on every column.", ev)[0].problem.startswith("comparison")


def test_readme_benchmark_rows_need_their_committed_output(tmp_path):
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "out.txt").write_text("ratio 0.90x\n")
    row = "| `benchmarks/a.py` | fast vs torch | {} the time<!-- from: out.txt --> | ≤ 1.2×<!-- constants: 1.2 --> |\n"
    (tmp_path / "README.md").write_text("## Benchmarks\n\n" + row.format("0.90×"))
    assert check_files([tmp_path / "README.md"], tmp_path) == []
    (tmp_path / "README.md").write_text("## Benchmarks\n\n" + row.format("0.80×"))
    assert [f.problem.split()[0] for f in check_files([tmp_path / "README.md"], tmp_path)] == ["0.80"]
