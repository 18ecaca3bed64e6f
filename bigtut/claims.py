"""Every number the course's prose states, checked against what its notebooks printed.

A sentence in a notebook's markdown, in a chapter, in the README's course-map results column or in a row of its
benchmark table (whose numbers come from the committed outputs under ``benchmarks/results/``) may state a number
only if one of these holds:

* **the notebook printed it** — the number appears in the stored outputs of its notebook (a chapter's
  notebook is the one with the same name; a README row's is the one it links) at the precision the sentence
  states: "0.46" matches a printed 0.4632, "46%" matches 0.4632 or 46.3%, "about 40" matches 37.2 (±5, half
  a unit of its last non-zero digit), "over 90%" matches 0.93 (above it, within one such unit). A whole number
  also matches the same number written in the notebook's code (``steps=300`` binds "300 steps");
* **it is a constant of the text** (a definition, a hyper-parameter, a year, a citation): listed in a marker
  ``<!-- constants: 80/10/10 2017 51200 -->`` (pieces separated by spaces or commas, so write a grouped
  number without its spaces). Written inside a paragraph, the marker covers its sentence; on a line
  of its own, the whole markdown cell (or, in a chapter, the section up to the next heading);
* **it comes from elsewhere**, named by ``<!-- from: notebooks/05_bert.ipynb -->`` (another notebook's outputs
  or a committed text file), with the same two scopes.

Counts written as words ("seven module families") are numbers too, from "three" up ("one" and "two" are
mostly pronouns and articles in English). Numbers that are not quantities are skipped by rule: code (inline or
fenced), links, names with a digit (GPT-2, int8, BPE-512), references (chapter 04, layer 2, step 4800,
Python 3.11), the course's two-digit numbering (05–09), list numbering, years, and whole numbers inside
``$math$`` (exponents, indices); decimals inside math are checked.

Comparisons that carry no number ("Random is worst on every column", "the curve is still rising") are found by
their words (:data:`COMPARISON`). Such a sentence must contain a statement a notebook cell asserted with
:func:`holds` — which prints ``claim holds: <statement>`` or raises, so a re-execution that flips the comparison
fails — or be marked ``<!-- argument -->``: reasoning or general knowledge, not a measurement of this course.
Every asserted statement must in turn appear in the notebook's markdown or its chapter, so a sentence changed
after its assertion (a flipped comparison) fails even where its words are not in :data:`COMPARISON`.

Markdown comments are invisible in JupyterLab and on the site, so the text reads as plain prose in both; a
MyST ``{glue}`` role would show as raw markup in JupyterLab, and a number the reader sees is what the stored
output printed, rounded as the sentence says.

    python -m bigtut.claims                 # check the notebooks, chapters and README; exit 1 on any failure
    python -m bigtut.claims notebooks/09_evaluating_explanations.ipynb chapters/09_evaluating_explanations.md
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["COMPARISON", "Failure", "holds", "check_files", "check_text", "default_files", "main"]

HOLDS_PREFIX = "claim holds: "
ROOT = Path(__file__).resolve().parents[1]


def holds(statement: str, condition) -> None:
    """Assert a comparison the prose makes, on the numbers this notebook just computed.

    Prints ``claim holds: <statement>`` (the stored output the prose check binds the sentence to) or raises
    ``AssertionError`` naming the statement, so a re-execution that flips the comparison fails the notebook.
    ``condition`` must be a plain or NumPy bool (a tensor or array would hide an ``all``/``any`` mistake).
    """
    if not isinstance(statement, str) or len(statement.split()) < 3:
        raise ValueError(f"statement must be a sentence of at least three words, got {statement!r}")
    if not isinstance(condition, (bool, np.bool_)):
        raise TypeError(f"condition must be a bool, got {type(condition).__name__}; reduce it with all() or any()")
    if not condition:
        raise AssertionError(f"claim fails: {statement}")
    print(f"{HOLDS_PREFIX}{statement}")


# ------------------------------------------------------------------------------------------------ numbers
@dataclass(frozen=True)
class Number:
    """A number as written: its value, the decimals it states, and how it is meant."""

    text: str
    value: float
    decimals: int  # digits after the point (negative: "about 40" → -1)
    percent: bool = False
    mode: str = "exact"  # "exact", "about", "above" or "below"


_NUMBER = re.compile(
    r"(?P<sign>[-−])?"
    r"(?P<int>\d{1,3}(?:[,\u202f\u2009\u00a0 ]\d{3})+(?![\d.])|\d+)"
    r"(?P<frac>\.\d+)?"
    r"(?:[eE](?P<exp>[-−+]?\d+))?"
    r"(?P<pct>\s?%)?"
    r"(?P<scale>\s?[kM](?![A-Za-z]))?"
)
_ABOUT = re.compile(r"(?:about|around|roughly|approximately|nearly|almost|some|~|≈|∼|~\s?|≃)\s*$", re.I)
_ABOVE = re.compile(r"(?:over|above|more than|greater than|at least|>|≥|>=)\s*$", re.I)
_BELOW = re.compile(r"(?:under|below|less than|fewer than|at most|up to|within|<|≤|<=)\s*$", re.I)
_REFERENCE = re.compile(
    r"(?:chapters?|notebooks?|sections?|§|figures?|fig\.|tables?|steps?|exercises?|cells?|parts?|appendix|eq\.|"
    r"equations?|layers?|heads?|lines?|rows?|columns?|version|v|python|torch|pytorch|transformers|numpy|items?|"
    r"epochs?|issue|position|token|seed|block|rank|stage|phase|level|CUDA|PEP|RFC|ISO|page|no\.|#)\s*$", re.I)
_REFERENCE_RUN = re.compile(r"^\s*(?:[-–—,/]|and|or|to)\s*$")
_UNIT_AFTER = re.compile(r"\s*(?:steps?|tokens?|examples?|sentences?|words?|param|characters?|docstrings?|samples?|"
                         r"rows?|seconds?|s\b|ms\b|iterations?|labels?|images?|texts?|files?)", re.I)


def _decimals(frac: str | None, exp: str | None) -> int:
    d = len(frac) - 1 if frac else 0
    return d - int(exp.replace("−", "-")) if exp else d


def _lowest_digit(value: float, decimals: int) -> int:
    """Decimals of the last non-zero digit: 40 → -1, 1500 → -2, 0.30 → 1, 0 → 0."""
    if decimals > 0 or value == 0:
        text = f"{abs(value):.{max(decimals, 0)}f}".rstrip("0")
        return max(len(text.split(".")[1]) if "." in text else 0, 0) if "." in text else 0
    n, d = int(round(abs(value))), 0
    while n and n % 10 == 0:
        n //= 10
        d -= 1
    return d


def parse_number(match: re.Match, before: str = "") -> Number:
    """A :class:`Number` from a match of ``_NUMBER``; ``before`` is the text in front (for "about", "over")."""
    digits = re.sub(r"[,\u202f\u2009\u00a0 ]", "", match["int"]) + (match["frac"] or "")
    exp = match["exp"].replace("−", "-") if match["exp"] else None
    value = float(digits) * (10 ** int(exp) if exp else 1)
    decimals = _decimals(match["frac"], exp)
    if match["scale"]:
        factor = {"k": 1e3, "M": 1e6}[match["scale"].strip()]
        value, decimals = value * factor, decimals - round(math.log10(factor))
    if match["sign"]:
        value = -value
    mode = "exact"
    if _ABOUT.search(before):
        mode, decimals = "about", min(decimals, _lowest_digit(value, decimals))
    elif _ABOVE.search(before):
        mode, decimals = "above", min(decimals, _lowest_digit(value, decimals))
    elif _BELOW.search(before):
        mode, decimals = "below", min(decimals, _lowest_digit(value, decimals))
    return Number(match.group(0).strip(), value, decimals, bool(match["pct"]), mode)


def printed_numbers(text: str) -> list[Number]:
    """Every number in a notebook's printed output, with the decimals it was printed to."""
    out = []
    for m in _NUMBER.finditer(text):
        if m["int"] and re.search(r"[,\u202f\u2009\u00a0 ]", m["int"]):
            for part in re.split(r"[,\u202f\u2009\u00a0 ]", m["int"]):  # "1, 2" is two numbers in an output
                out.append(Number(part, float(part), 0))
        out.append(parse_number(m))
    return out


class Evidence:
    """The numbers (and asserted statements) prose may rely on: one notebook's outputs, or a text file."""

    def __init__(self, printed: Iterable[Number], in_code: Iterable[float] = (), statements: Iterable[str] = ()):
        printed = list(printed)
        self.values = np.array([abs(n.value) for n in printed], dtype=float)
        self.decimals = np.array([n.decimals for n in printed], dtype=float)
        self.percent = np.array([n.percent for n in printed], dtype=bool)
        self.in_code = {abs(v) for v in in_code}
        self.statements = [_normalise(s) for s in statements]

    @classmethod
    def of_notebook(cls, path: Path) -> Evidence:
        cells = json.loads(path.read_text())["cells"]
        printed, in_code, statements = [], [], []
        for cell in cells:
            if cell["cell_type"] != "code":
                continue
            source = "".join(cell["source"])
            in_code += [float(m.group(0)) for m in re.finditer(r"(?<![\w.])\d+(?:\.\d+)?(?![\w.])", source)
                        if not m.group(0).startswith("0") or "." in m.group(0) or m.group(0) == "0"]
            for text in _output_texts(cell):
                printed += printed_numbers(text)
                statements += [line[len(HOLDS_PREFIX):].strip() for line in text.splitlines()
                               if line.startswith(HOLDS_PREFIX)]
        return cls(printed, in_code, statements)

    @classmethod
    def of_file(cls, path: Path) -> Evidence:
        if path.suffix == ".ipynb":
            return cls.of_notebook(path)
        return cls(printed_numbers(path.read_text()))

    def supports(self, number: Number) -> bool:
        """Did this evidence print ``number`` at its stated precision (or write it in code)?"""
        target = abs(number.value)
        if number.mode == "exact" and number.decimals <= 0 and target in self.in_code:
            return True
        if not len(self.values):
            return False
        candidates = [self.values]
        if number.percent:
            candidates.append(np.where(self.percent, self.values, self.values * 100))
        else:
            candidates.append(np.where(self.percent, self.values / 100, self.values))
        unit = 10.0 ** (-number.decimals)
        for values in candidates:
            if number.mode == "above":
                hit = (values >= target * (1 - 1e-9)) & (values < target + unit)
            elif number.mode == "below":
                hit = (values <= target * (1 + 1e-9)) & (values > target - unit)
            else:
                hit = np.abs(values - target) <= unit / 2 * (1 + 1e-9)
            if hit.any():
                return True
        return False

    def nearest(self, number: Number) -> float | None:
        if not len(self.values):
            return None
        target = abs(number.value) / 100 if number.percent else abs(number.value)
        scaled = np.where(self.percent, self.values / 100, self.values)
        return float(scaled[np.argmin(np.abs(scaled - target))]) * (100 if number.percent else 1)


def _output_texts(cell: dict) -> Iterator[str]:
    for output in cell.get("outputs", []):
        if output["output_type"] == "stream" and output.get("name") == "stdout":
            yield "".join(output["text"])
        elif output["output_type"] in ("execute_result", "display_data"):
            data = output.get("data", {})
            if "text/plain" in data and "image/png" not in data:
                yield "".join(data["text/plain"])


def _normalise(text: str) -> str:
    text = re.sub(r"[*_`]", "", text).replace("−", "-").replace("–", "-").replace("—", "-")
    return re.sub(r"\s+", " ", text).strip().lower()


# ------------------------------------------------------------------------------------------------ prose
COMPARISON = re.compile(
    r"\b(?:beats?|beaten|beating|outperform\w*|worst|best|wins?|loses|better than|worse than|faster than|"
    r"slower than|higher than|lower than|larger than|smaller than|more accurate|less accurate|still rising|"
    r"keeps? (?:rising|falling|improving)|plateau\w*|levels? off|overtakes?|ahead of|on every|in every|"
    r"(?:sits?|stays?|lies|lie|remains?|ends? up)(?: \w+)? (?:below|above)(?!\s*[-−~≈]?\s*\d)|"
    r"faster|slower|(?:more|less|fewer|higher|lower|larger|smaller|better|worse)\b[^.;:!?]{1,40}?\bthan|"
    r"fastest|slowest|highest|lowest|largest|smallest|most faithful|least faithful|"
    r"(?:more|fewer|less) than(?!\s*[-−~≈]?\s*\d))\b", re.I)

_MARKER = re.compile(r"<!--\s*(?P<kind>constants?|from|argument)\s*:?(?P<body>.*?)-->", re.S | re.I)
_ANY_COMMENT = re.compile(r"<!--.*?-->", re.S)
_PLACEHOLDER = re.compile(r"\x00(\d+)\x00")


@dataclass
class Scope:
    """What a marker allows: numbers declared constant, extra evidence, or "this is an argument"."""

    constants: set[str] = field(default_factory=set)
    sources: list[str] = field(default_factory=list)
    argument: bool = False

    def add(self, kind: str, body: str) -> None:
        kind = kind.lower().rstrip("s")
        if kind == "constant":
            # each space- or comma-separated piece is read on its own ("1M 256 512" is three constants)
            self.constants |= {_canonical(m.group(0)) for piece in re.split(r"[\s,;]+", body)
                               for m in _NUMBER.finditer(piece)}
        elif kind == "from":
            self.sources += body.split()
        else:
            self.argument = True

    def merged(self, other: Scope) -> Scope:
        return Scope(self.constants | other.constants, self.sources + other.sources, self.argument or other.argument)


def _canonical(text: str) -> str:
    m = _NUMBER.fullmatch(text.strip()) or _NUMBER.search(text)
    n = parse_number(m)
    return f"{abs(n.value):.12g}"


@dataclass(frozen=True)
class Failure:
    """One sentence the check cannot bind: where it is, what is wrong, and the sentence itself."""

    where: str
    problem: str
    sentence: str

    def __str__(self) -> str:
        sentence = self.sentence if len(self.sentence) < 220 else self.sentence[:217] + "..."
        return f"{self.where}: {self.problem}\n    “{sentence}”"


def _strip_code_and_links(text: str) -> str:
    text = re.sub(r"^(```|~~~).*?^\1[^\n]*$", "\n", text, flags=re.S | re.M)
    text = re.sub(r"`[^`\n]*`", "code", text)
    text = re.sub(r"!\[[^\]]*\]\([^)]*\)", " ", text)
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    text = re.sub(r"\[\^[^\]]*\]", "", text)
    text = re.sub(r"https?://\S+", " ", text)
    text = re.sub(r"</?[A-Za-z][^>]*>", " ", text)
    return text


def _sentences(text: str) -> Iterator[str]:
    """Split a block of markdown into sentences (table rows and list items are sentences of their own)."""
    for line_block in re.split(r"\n\s*\n|\n(?=\s*(?:[-*+]\s|\d+[.)]\s|\||#|>))", text):
        line_block = line_block.strip()
        if not line_block:
            continue
        if line_block.startswith("|"):
            yield from (row for row in line_block.splitlines() if not re.fullmatch(r"[|:\-\s]+", row))
            continue
        parts = re.split(r"(?<=[.!?:;])[\"”')\]*_]*\s+(?=[\x00A-Z(\[*_\"“$\d-])", line_block)
        merged: list[str] = []
        for part in parts:  # a marker written after the sentence's full stop belongs to that sentence
            lead = re.match(r"(\s*\x00\d+\x00)+", part)
            if lead and merged:
                merged[-1] += lead.group(0)
                part = part[lead.end():]
            if part.strip():
                merged.append(part)
        yield from merged


def _math_spans(sentence: str) -> list[tuple[int, int]]:
    return [m.span() for m in re.finditer(r"\$\$.*?\$\$|\$[^$]+\$", sentence, re.S)]


NUMBER_WORDS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
    "seventeen eighteen nineteen twenty".split())} | {"thirty": 30, "forty": 40, "fifty": 50, "hundred": 100,
                                                      "thousand": 1000, "million": 1_000_000}
# "one" and "two" are left out: in English they are more often pronouns and articles ("one idea") than counts.
_NUMBER_WORD = re.compile(r"\b(" + "|".join(w for w in NUMBER_WORDS if w not in ("zero", "one", "two")) + r")\b",
                          re.I)


def quantities(sentence: str) -> Iterator[Number]:
    """The numbers of a sentence that state a quantity (see the module docstring for what is skipped), digits
    first, then counts written as words from "three" up ("seven module families" is a claim about 7)."""
    yield from _digit_quantities(sentence)
    math_spans = _math_spans(sentence)
    for m in _NUMBER_WORD.finditer(sentence):
        if any(a <= m.start() < b for a, b in math_spans) or _REFERENCE.search(sentence[max(0, m.start() - 40):
                                                                                         m.start()]):
            continue
        yield Number(m.group(0), float(NUMBER_WORDS[m.group(0).lower()]), 0)


def _digit_quantities(sentence: str) -> Iterator[Number]:
    math_spans = _math_spans(sentence)
    previous_reference_end = None
    line_start = re.match(r"\s*(?:#+\s*|[-*+]\s+|>\s*)*(?:\d+[.)](?=\s))?", sentence)
    skip_until = line_start.end() if line_start and re.search(r"\d", line_start.group(0)) else 0
    for m in _NUMBER.finditer(sentence):
        start, end = m.span()
        if start < skip_until:
            continue
        before, after = sentence[max(0, start - 40):start], sentence[end:end + 12]
        in_math = any(a <= start < b for a, b in math_spans)
        if re.search(r"[A-Za-z_^\\{]-?$|[A-Za-z]\($", before) or re.match(r"[A-Za-z_]", after) and not m["scale"]:
            if not re.match(r"(?:x|×)(?![A-Za-z])", after):  # "GPT-2", "int8", "x^2", "3D"; "3x" is a ratio
                continue
        if re.search(r"[.\d]$", before) or re.match(r"\.\d", after):  # part of a version or a dotted name
            continue
        if _REFERENCE.search(before) or (previous_reference_end is not None
                                         and _REFERENCE_RUN.match(sentence[previous_reference_end:start])):
            previous_reference_end = end
            continue
        previous_reference_end = None
        number = parse_number(m, before)
        if in_math and not (m["frac"] or re.search(r"(?:\\approx|≈)\s*$", before)):
            continue
        whole = number.decimals <= 0 and not m["frac"]
        if whole and re.fullmatch(r"0\d", m.group(0)):
            continue  # "05–09": the course's own numbering of notebooks and chapters
        if whole and 1900 <= abs(number.value) <= 2035 and not m["scale"] and not number.percent \
                and not _UNIT_AFTER.match(after):
            continue  # a year
        yield number


def check_text(blocks: Iterable[tuple[str, str]], evidence: Evidence, *, root: Path = ROOT) -> list[Failure]:
    """Check markdown ``blocks`` (``(where, text)`` pairs) against ``evidence``; return what fails."""
    failures = []
    cache: dict[str, Evidence] = {}
    for where, raw in blocks:
        markers: list[tuple[str, str]] = []
        block_scope = Scope()

        def keep(match: re.Match, raw: str = raw, markers: list = markers, block_scope: Scope = block_scope) -> str:
            whole_line = re.fullmatch(r"\s*", raw[raw.rfind("\n", 0, match.start()) + 1:match.start()]) and \
                re.match(r"[ \t]*(\n|$)", raw[match.end():])
            if whole_line:
                block_scope.add(match["kind"], match["body"])
                return " "
            markers.append((match["kind"], match["body"]))
            return f"\x00{len(markers) - 1}\x00"

        text = _MARKER.sub(keep, raw)
        text = _ANY_COMMENT.sub(" ", text)
        text = _strip_code_and_links(text)
        for sentence in _sentences(text):
            scope = Scope()
            for index in _PLACEHOLDER.findall(sentence):
                scope.add(*markers[int(index)])
            scope = scope.merged(block_scope)
            shown = _PLACEHOLDER.sub("", sentence).strip()
            sources = [evidence]
            for source in scope.sources:
                if source not in cache:
                    path = root / source
                    if not path.is_file():
                        failures.append(Failure(where, f"marker names {source}, which does not exist", shown))
                        cache[source] = Evidence([])
                    else:
                        cache[source] = Evidence.of_file(path)
                sources.append(cache[source])
            for number in quantities(_PLACEHOLDER.sub("", sentence)):
                if f"{abs(number.value):.12g}" in scope.constants or any(e.supports(number) for e in sources):
                    continue
                nearest = evidence.nearest(number)
                hint = f" (nearest printed: {nearest:.6g})" if nearest is not None else ""
                failures.append(Failure(where, f"{number.text} is not in the stored outputs{hint} and not "
                                               f"declared a constant", shown))
            if not scope.argument:
                failures += [Failure(where, f"comparison “{word}” is not asserted by a holds() cell nor marked "
                                            f"<!-- argument -->", shown)
                             for word in _unasserted_comparisons(shown, sources)]
    return failures


def _unasserted_comparisons(sentence: str, sources: list[Evidence]) -> list[str]:
    """The comparison words of a sentence (outside math) that no asserted statement in it covers."""
    normal = _normalise(re.sub(r"\$\$.*?\$\$|\$[^$]+\$", " ", sentence, flags=re.S))
    covered = [(m.start(), m.start() + len(s)) for e in sources for s in e.statements if s
               for m in re.finditer(re.escape(s), normal)]
    return [m.group(0) for m in COMPARISON.finditer(normal)
            if not any(a <= m.start() and m.end() <= b for a, b in covered)]


# ------------------------------------------------------------------------------------------------ files
def notebook_blocks(path: Path, name: str) -> list[tuple[str, str]]:
    cells = json.loads(path.read_text())["cells"]
    return [(f"{name} cell {i}", "".join(c["source"])) for i, c in enumerate(cells) if c["cell_type"] == "markdown"]


def markdown_sections(path: Path, name: str) -> list[tuple[str, str]]:
    """A chapter split at its headings (fenced code kept whole), each section named by its first line."""
    text = path.read_text()
    sections, current, start, fenced = [], [], 1, False
    for number, line in enumerate(text.splitlines(), start=1):
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
        if line.startswith("#") and not fenced and current:
            sections.append((f"{name} line {start}", "\n".join(current)))
            current, start = [], number
        current.append(line)
    if current:
        sections.append((f"{name} line {start}", "\n".join(current)))
    return sections


def readme_results(path: Path, name: str) -> list[tuple[str, str, str]]:
    """``(where, results cell, notebook path)`` of each course-map row of the README."""
    rows = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        m = re.match(r"\|\s*[0-9A]\w*\s*\|.*?\((notebooks/[^)]+\.ipynb)\)", line)
        if m:
            rows.append((f"{name} line {number}", "|" + line.rstrip().rstrip("|").split("|")[-1] + "|", m.group(1)))
    return rows


def _unused_statements(evidence: Evidence, blocks: list[tuple[str, str]], chapter: Path, name: str) -> list[Failure]:
    """An asserted statement backs a sentence of the notebook or its chapter: one that appears in neither means
    that sentence was changed (a flipped comparison) or removed."""
    prose = _normalise(" ".join(text for _, text in blocks) + (chapter.read_text() if chapter.exists() else ""))
    return [Failure(name, "a holds() statement appears in no sentence of the notebook or its chapter (was the "
                          "sentence it backs changed?)", statement)
            for statement in dict.fromkeys(evidence.statements) if statement not in prose]


def readme_benchmarks(path: Path, name: str) -> list[tuple[str, str]]:
    """``(where, row)`` of each row of the README's benchmark table (a row that starts with a script's path):
    its numbers must come from the committed output its from-marker names, or be declared (the goals)."""
    return [(f"{name} line {number}", "|" + line.split("|", 2)[2]) for number, line in
            enumerate(path.read_text().splitlines(), start=1) if line.startswith("| `benchmarks/")]


def default_files(root: Path = ROOT) -> list[Path]:
    return sorted((root / "notebooks").glob("*.ipynb")) + sorted((root / "chapters").glob("*.md")) + \
        [root / "README.md"]


def check_files(paths: Iterable[Path], root: Path = ROOT) -> list[Failure]:
    """Check notebooks, chapters (against their notebook) and the README's course map (against each row's)."""
    failures: list[Failure] = []
    for path in paths:
        path = Path(path).resolve()
        name = path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)
        if path.suffix == ".ipynb":
            evidence = Evidence.of_notebook(path)
            blocks = notebook_blocks(path, name)
            failures += check_text(blocks, evidence, root=root)
            failures += _unused_statements(evidence, blocks, path.parents[1] / "chapters" / f"{path.stem}.md", name)
        elif path.name == "README.md":
            for where, cell, notebook in readme_results(path, name):
                failures += check_text([(where, cell)], Evidence.of_notebook(root / notebook), root=root)
            failures += check_text(readme_benchmarks(path, name), Evidence([]), root=root)
        else:
            notebook = root / "notebooks" / f"{path.stem}.ipynb"
            evidence = Evidence.of_notebook(notebook) if notebook.exists() else Evidence([])
            failures += check_text(markdown_sections(path, name), evidence, root=root)
    return failures


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    paths = [Path(a) for a in argv] or default_files()
    failures = check_files(paths)
    for failure in failures:
        print(failure)
    checked = ", ".join(p.name for p in paths) if argv else f"{len(paths)} files"
    if failures:
        print(f"\n{len(failures)} statements in the prose are not bound to a stored output ({checked}).")
        return 1
    print(f"every number and comparison in the prose is bound to a stored output or declared ({checked})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
