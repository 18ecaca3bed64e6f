"""Numbers one notebook quotes from another must match the quoted notebook's stored outputs.

Notebook 05 cannot afford to re-run notebook 04's GPT classifier, so it quotes its test accuracy in a constant:
the accuracy of the model chapters 06–10 load (``bigtut.recipes.load_or_train_gpt``, notebook 04's recipe),
which notebook 06 prints. Notebooks 05–10 were stored on one machine; notebook 04's own stored run may come from
another CPU model, where the same recipe gives another third digit (its "Same code, another CPU" note says so).
These tests read the notebooks' JSON (no execution) so that the quote cannot go stale silently."""

import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
CONSTANT = re.compile(r"^GPT_CHAPTER_04_TEST_ACCURACY\s*=\s*([0-9.]+)", re.MULTILINE)


def _text_outputs(notebook: Path) -> list[str]:
    """The printed text of every code cell of a stored notebook, one string per cell."""
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    texts = []
    for cell in cells:
        if cell["cell_type"] != "code":
            continue
        parts = []
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                parts.append("".join(out["text"]))
            elif "text/plain" in out.get("data", {}):
                parts.append("".join(out["data"]["text/plain"]))
        texts.append("\n".join(parts))
    return texts


def table_value(text: str, row: str, column: str) -> float | None:
    """The number in ``column`` of the printed table row whose label is ``row``, or None.

    A table is a header line of column names separated by two or more spaces, followed by rows whose label is
    followed by one number per column (numbers are right-aligned under their column names)."""
    lines = text.splitlines()
    for i, header in enumerate(lines):
        names = [n for n in re.split(r"\s{2,}", header.strip()) if n]
        if column not in names:
            continue
        for line in lines[i + 1:]:
            match = re.fullmatch(r"\s*(.*?)\s+((?:-?\d+\.\d+\s*)+)", line)
            if not match:
                break  # end of the table
            numbers = match.group(2).split()
            if match.group(1) == row and len(numbers) == len(names):
                return float(numbers[names.index(column)])
    return None


def gpt_test_accuracy_from_04(notebook: Path = NOTEBOOKS / "04_gpt.ipynb") -> float:
    values = [v for text in _text_outputs(notebook)
              if (v := table_value(text, "pretrained + fine-tune", "test acc")) is not None]
    assert len(values) == 1, f"expected one 'pretrained + fine-tune' row with a 'test acc' column, got {values}"
    return values[0]


def gpt_test_accuracy_from_06(notebook: Path = NOTEBOOKS / "06_lime.ipynb") -> float:
    """The test accuracy notebook 06 prints for the cached GPT classifier it explains."""
    values = [float(m.group(1)) for text in _text_outputs(notebook)
              for m in re.finditer(r"GPT test accuracy (\d\.\d+)", text)]
    assert len(values) == 1, f"expected one 'GPT test accuracy' printout in {notebook.name}, got {values}"
    return values[0]


def quoted_in_05(notebook: Path = NOTEBOOKS / "05_bert.ipynb") -> float:
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    found = [float(m.group(1)) for c in cells if c["cell_type"] == "code"
             for m in CONSTANT.finditer("".join(c["source"]))]
    assert len(found) == 1, f"expected one GPT_CHAPTER_04_TEST_ACCURACY assignment in {notebook.name}, got {found}"
    return found[0]


def check_quote(nb06: Path = NOTEBOOKS / "06_lime.ipynb", nb05: Path = NOTEBOOKS / "05_bert.ipynb") -> None:
    accuracy, quoted = gpt_test_accuracy_from_06(nb06), quoted_in_05(nb05)
    assert 0.0 <= accuracy <= 1.0
    assert quoted == pytest.approx(round(accuracy, 3), abs=1e-9), (
        f"notebook 05 quotes GPT_CHAPTER_04_TEST_ACCURACY = {quoted}, but notebook 06's stored output shows "
        f"GPT test accuracy {accuracy:.3f} for the same recipe: update the constant in notebooks/05_bert.ipynb")


def test_table_parser():
    text = ("                        val acc  test acc\n"
            "pretrained + fine-tune    0.524     0.463\n"
            "          from scratch    0.320     0.265\n")
    assert table_value(text, "pretrained + fine-tune", "test acc") == 0.463
    assert table_value(text, "pretrained + fine-tune", "val acc") == 0.524
    assert table_value(text, "from scratch", "test acc") == 0.265
    assert table_value(text, "missing", "test acc") is None
    assert table_value(text, "from scratch", "train acc") is None


def test_gpt_accuracy_quoted_in_05_matches_notebook_06():
    check_quote()


def test_notebook_04_prints_its_fine_tuned_accuracy():
    assert 0.14 < gpt_test_accuracy_from_04() <= 1.0  # above chance (1/7) on its stored run


def test_a_stale_quote_fails(tmp_path):
    """A copy of notebook 05 whose constant is off by 0.001 must fail the check above."""
    notebook = json.loads((NOTEBOOKS / "05_bert.ipynb").read_text(encoding="utf-8"))
    stale = round(gpt_test_accuracy_from_06() + 0.001, 3)
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            cell["source"] = CONSTANT.sub(f"GPT_CHAPTER_04_TEST_ACCURACY = {stale}", "".join(cell["source"]))
    copy = tmp_path / "05_bert.ipynb"
    copy.write_text(json.dumps(notebook), encoding="utf-8")
    assert quoted_in_05(copy) == stale
    with pytest.raises(AssertionError, match="update the constant"):
        check_quote(nb05=copy)
