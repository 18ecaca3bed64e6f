"""Repository-wide pytest hooks: when notebooks run under nbval, print each notebook's wall time at the end.

nbval turns every notebook cell into a test item (``notebooks/02_attention.ipynb::Cell 7``); we group the
reports by notebook and show the time from its first cell's start to its last cell's end (kernel start-up
included), so the course's time budget is visible in every ``make test``.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

_spans: dict[str, list[float]] = defaultdict(lambda: [float("inf"), 0.0, 0.0])  # start, stop, summed cells
_failed: set[str] = set()


def pytest_runtest_logreport(report):
    notebook = report.nodeid.split("::")[0]
    if not notebook.endswith(".ipynb"):
        return
    span = _spans[notebook]
    span[0] = min(span[0], report.start)
    span[1] = max(span[1], report.stop)
    span[2] += report.duration
    if report.failed:
        _failed.add(notebook)


def pytest_terminal_summary(terminalreporter):
    if not _spans:
        return
    write = terminalreporter.write_line
    write("")
    write("notebook wall times (first cell start -> last cell end, kernel start-up included)")
    write(f"{'notebook':<42} {'seconds':>8}  status")
    total_cells = 0.0
    for notebook in sorted(_spans):
        start, stop, cells = _spans[notebook]
        total_cells += cells
        write(f"{Path(notebook).name:<42} {stop - start:>8.1f}  {'FAILED' if notebook in _failed else 'ok'}")
    first = min(s[0] for s in _spans.values())
    last = max(s[1] for s in _spans.values())
    write(f"{'all notebooks (wall, in parallel)':<42} {last - first:>8.1f}")
    write(f"{'all notebooks (sum of cell times)':<42} {total_cells:>8.1f}")
    Path(".notebook-times.json").write_text(json.dumps(
        {Path(n).name: round(s[1] - s[0], 1) for n, s in sorted(_spans.items())}, indent=1))
