"""The stored notebooks are clean for someone browsing them: one kernelspec, no widget state, no unfinished or
carriage-return progress frames, execution counts from one top-to-bottom run (``make outputs``).

``make outputs`` runs ``nbconvert --execute`` with ``BIGTUT_PROGRESS=text``: every code cell runs, numbered
1..N in order, and each loop's progress bar writes one finished line (:func:`bigtut.training.progress_bar`).
"""

import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))
KERNELSPEC = {"display_name": "Python 3 (bigtut)", "language": "python", "name": "python3"}
UNFINISHED = re.compile(r"(?<![0-9])0%\|")  # a bar's first frame, "  0%|", but not "100%|" or "10%|"


def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _code_cells(nb: dict) -> list[dict]:
    return [c for c in nb["cells"] if c["cell_type"] == "code"]


def _streams(nb: dict):
    for index, cell in enumerate(nb["cells"]):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                text = output["text"]
                yield index, output["name"], "".join(text) if isinstance(text, list) else text


def test_there_are_notebooks():
    assert NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_kernelspec_and_no_widget_state(path):
    nb = _load(path)
    assert nb["metadata"].get("kernelspec") == KERNELSPEC
    assert "widgets" not in nb["metadata"], "stored widget state: re-run with BIGTUT_PROGRESS=text (make outputs)"
    for index, cell in enumerate(nb["cells"]):
        for output in cell.get("outputs", []):
            assert "application/vnd.jupyter.widget-view+json" not in output.get("data", {}), f"cell {index}: a widget"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_stream_outputs_hold_only_finished_lines(path):
    for index, name, text in _streams(_load(path)):
        assert "\r" not in text, f"cell {index} ({name}): a carriage return — progress frames were stored"
        assert not UNFINISHED.search(text), f"cell {index} ({name}): an unfinished progress bar (0%|)"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_execution_counts_come_from_one_top_to_bottom_run(path):
    counts = [cell.get("execution_count") for cell in _code_cells(_load(path))]
    assert counts == list(range(1, len(counts) + 1)), f"execution counts {counts}"


def test_the_checks_catch_what_they_should():
    assert UNFINISHED.search("train:   0%|          | 0/400 [00:00<?, ?it/s]")
    for finished in ("train: 100%|██████████| 400/400 [00:12<00:00, 32.1it/s, loss=0.741]", "10%|█  | 10/100"):
        assert not UNFINISHED.search(finished)
