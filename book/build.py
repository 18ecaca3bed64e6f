"""Build the course as a static website: ``python book/build.py`` (what ``make book`` runs).

The site is made by Sphinx with MyST-NB (the tools Jupyter Book 1 wraps) from the committed chapters and the
notebooks with their STORED outputs; nothing is executed. This script stages the sources, then calls Sphinx:

    _build/source/   index.md (the README's course map), chapters/*.md, notebooks/*.ipynb (same layout as the
                     repository, so a chapter's link ``../notebooks/04_gpt.ipynb`` resolves to the notebook's page)
    _build/extra/    the repository files the chapters link to (bigtut/, tests/, benchmarks/, checkpoints/), copied
                     to the site's root as plain files, with an index.html for every folder
    _build/static/   MathJax 3, copied from the django-static-mathjax wheel, so the site loads nothing from outside
    _build/html/     the site: open _build/html/index.html, or ``make book-check`` to serve and test it

Course order is read from the file names, never hard-coded: for every number ``NN`` (00, 01, ..., then appendices
``A1``, ``A2``, ...) the chapter ``chapters/NN_*.md`` comes first, then its twin ``notebooks/NN_*.ipynb``.
"""

from __future__ import annotations

import argparse
import html
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "_build"
SOURCE = BUILD / "source"
EXTRA = BUILD / "extra"
STATIC = BUILD / "static"
HTML = BUILD / "html"

# Folders of the repository that chapters and notebooks link to; they are shipped as plain files in the site.
REPO_DIRS = ("bigtut", "tests", "benchmarks", "checkpoints")
SKIP_NAMES = shutil.ignore_patterns("__pycache__", "*.pyc", ".ipynb_checkpoints", "*.egg-info")
PAGE_NAME = re.compile(r"^(?P<key>\d\d|A\d+)_[A-Za-z0-9_]+$")
MARKDOWN_LINK = re.compile(r"(?<!!)\[(?P<text>(?:[^\[\]]|\[[^\]]*\])*)\]\((?P<target>[^)\s]+)\)")


@dataclass(frozen=True)
class Page:
    """One page of the site: ``key`` is the course number ("04", "A1"), ``kind`` "chapter" or "notebook"."""

    key: str
    kind: str
    path: Path  # relative to ROOT, e.g. chapters/04_gpt.md

    @property
    def docname(self) -> str:
        return self.path.with_suffix("").as_posix()

    @property
    def html(self) -> str:
        return self.docname + ".html"


def _order(key: str) -> tuple[int, int]:
    """Numbered chapters first (00, 01, ...), then appendices (A1, A2, ...)."""
    return (1, int(key[1:])) if key.startswith("A") else (0, int(key))


def course_pages(root: Path = ROOT) -> list[Page]:
    """Every chapter and notebook in course order: chapter NN, then notebook NN."""
    pages = []
    for folder, suffix, kind in (("chapters", ".md", "chapter"), ("notebooks", ".ipynb", "notebook")):
        for path in sorted((root / folder).glob("*" + suffix)):
            match = PAGE_NAME.match(path.stem)
            if match is None:
                raise SystemExit(
                    f"book: {path.relative_to(root)} does not follow the course naming NN_topic{suffix} or "
                    f"A1_topic{suffix}; rename it so it has a place in the course order"
                )
            pages.append(Page(match["key"], kind, path.relative_to(root)))
    if not pages:
        raise SystemExit(f"book: no chapters/*.md or notebooks/*.ipynb under {root}")
    return sorted(pages, key=lambda p: (_order(p.key), p.kind != "chapter"))


def page_title(root: Path, page: Page) -> str:
    """The page's first heading ("04 · GPT: a decoder-only ..."), as the sidebar shows it."""
    if page.kind == "chapter":
        lines = (root / page.path).read_text(encoding="utf-8").splitlines()
    else:
        notebook = json.loads((root / page.path).read_text(encoding="utf-8"))
        lines = [
            line
            for cell in notebook["cells"]
            if cell["cell_type"] == "markdown"
            for line in "".join(cell["source"]).splitlines()
        ]
    for line in lines:
        if line.startswith("# "):
            return line[2:].strip()
    raise SystemExit(f"book: {page.path} has no '# title' heading; the site needs one for its sidebar")


def short_title(title: str) -> str:
    """ "04 · GPT: a decoder-only language model" -> "04 · GPT" (the sidebar names chapter and notebook apart)."""
    return re.split(r":| — ", title, maxsplit=1)[0].strip()


def name_the_kind(markdown: str, page: Page) -> str:
    """ "# 04 · GPT: ..." -> "# Chapter 04 · GPT: ..." (or "Notebook"): a chapter and its twin share a title, and the
    site shows titles without their folder (previous/next links, search results, browser tabs)."""
    return re.sub(r"^# ", f"# {page.kind.capitalize()} ", markdown, count=1, flags=re.MULTILINE)


def _inline_html(markdown: str) -> str:
    """Link text to HTML: `code` spans become <code>, everything else is escaped."""
    parts = re.split(r"`([^`]*)`", markdown)
    return "".join(
        f'<code class="docutils literal notranslate"><span class="pre">{html.escape(part)}</span></code>'
        if odd
        else html.escape(part)
        for odd, part in ((i % 2 == 1, part) for i, part in enumerate(parts))
    )


def rewrite_links(text: str, where: Path, root: Path, docs: set[str], linked: set[str] | None = None) -> str:
    """Point the links of a staged page (``where`` = its path relative to the repository) at the site.

    A link to a chapter, a notebook or a rendered page (``_build/html/X.html``, as the README writes them) becomes a
    MyST link to that document, so Sphinx checks it. A link to another repository file (``../bigtut/gpt/``)
    becomes a plain HTML link to the copy of that file in the site (folders to their index.html); files outside
    REPO_DIRS (``../Makefile``) are added to ``linked``, so stage() copies them too. Web links stay.
    """

    def replace(match: re.Match) -> str:
        text_md, target = match["text"], match["target"]
        if "://" in target or target.startswith(("#", "mailto:")):
            return match.group(0)
        path, _, anchor = target.partition("#")
        resolved = os.path.normpath((where.parent / path).as_posix())
        rendered = re.fullmatch(r"_build/html/(.+)\.html", resolved)
        if rendered and rendered[1] in docs:
            resolved = rendered[1]
        doc = os.path.splitext(resolved)[0]
        if doc in docs:
            suffix = ".ipynb" if doc.startswith("notebooks/") else ".md"
            relative = os.path.relpath(doc + suffix, where.parent.as_posix())
            return f"[{text_md}]({relative}{'#' + anchor if anchor else ''})"
        if resolved in ("chapters", "notebooks"):
            first = min(d for d in docs if d.startswith(resolved + "/"))
            suffix = ".ipynb" if resolved == "notebooks" else ".md"
            return f"[{text_md}]({os.path.relpath(first + suffix, where.parent.as_posix())})"
        inside = not resolved.startswith(("..", "/", ".venv", "_build", "runs", ".git/")) and resolved != ".git"
        if inside and (root / resolved).exists():
            if resolved.split("/")[0] not in REPO_DIRS and linked is not None:
                linked.add(resolved)
            href = target.rstrip("/") + "/index.html" if (root / resolved).is_dir() else target
            return f'<a class="reference external" href="{html.escape(href)}">{_inline_html(text_md)}</a>'
        raise SystemExit(
            f"book: {where} links to {target!r}, which is neither a page of the course nor a file of the "
            "repository (outside the git-ignored .venv, _build and runs); fix the link"
        )

    return MARKDOWN_LINK.sub(replace, text)


def course_map(root: Path) -> str:
    """The README's title, its opening paragraphs and its "Course map" section, as markdown."""
    readme = (root / "README.md").read_text(encoding="utf-8")
    sections = re.split(r"^(?=## )", readme, flags=re.MULTILINE)
    opening = sections[0]
    course = [s for s in sections if s.startswith("## Course map")]
    if not course:
        raise SystemExit("book: README.md has no '## Course map' section; the landing page is made from it")
    return opening.rstrip() + "\n\n" + course[0].rstrip() + "\n"


def stage(root: Path = ROOT) -> list[Page]:
    """Write _build/source (pages, index.md with the toctree), _build/extra and _build/static."""
    pages = course_pages(root)
    docs = {p.docname for p in pages}
    linked: set[str] = set()  # repository files outside REPO_DIRS that a page links to
    for folder in (SOURCE, EXTRA, STATIC):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)

    for page in pages:
        target = SOURCE / page.path
        target.parent.mkdir(parents=True, exist_ok=True)
        if page.kind == "chapter":
            text = (root / page.path).read_text(encoding="utf-8")
            text = name_the_kind(rewrite_links(text, page.path, root, docs, linked), page)
            target.write_text(text, encoding="utf-8")
        else:
            notebook = json.loads((root / page.path).read_text(encoding="utf-8"))
            titled = False
            for cell in notebook["cells"]:
                if cell["cell_type"] == "markdown":
                    cell["source"] = rewrite_links("".join(cell["source"]), page.path, root, docs, linked)
                    if not titled and re.search(r"^# ", cell["source"], flags=re.MULTILINE):
                        cell["source"], titled = name_the_kind(cell["source"], page), True
            target.write_text(json.dumps(notebook, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")

    toc = ["", "```{toctree}", ":hidden:", ":caption: Course", ""]
    appendix_started = False
    for page in pages:
        if page.key.startswith("A") and not appendix_started:
            toc += ["```", "", "```{toctree}", ":hidden:", ":caption: Appendix", ""]
            appendix_started = True
        toc.append(f"{short_title(page_title(root, page))} ({page.kind}) <{page.docname}>")
    toc.append("```")
    landing = rewrite_links(course_map(root), Path("index.md"), root, docs, linked)
    (SOURCE / "index.md").write_text(landing + "\n".join(toc) + "\n", encoding="utf-8")

    for name in REPO_DIRS:
        if (root / name).is_dir():
            shutil.copytree(root / name, EXTRA / name, ignore=SKIP_NAMES)
    for path in sorted(linked):
        (EXTRA / path).parent.mkdir(parents=True, exist_ok=True)
        if (root / path).is_dir():
            shutil.copytree(root / path, EXTRA / path, ignore=SKIP_NAMES, dirs_exist_ok=True)
        else:
            shutil.copy2(root / path, EXTRA / path)
    for folder in sorted(p for p in EXTRA.rglob("*") if p.is_dir()):
        _write_folder_index(folder)

    mathjax = importlib.util.find_spec("mathjax")
    if mathjax is None or not mathjax.submodule_search_locations:
        raise SystemExit(
            "book: MathJax is missing; run `make book` (it installs requirements-book.txt into .venv-book)"
        )
    es5 = Path(list(mathjax.submodule_search_locations)[0]) / "static" / "mathjax" / "es5"
    shutil.copytree(
        es5,
        STATIC / "mathjax",
        ignore=shutil.ignore_patterns("*svg*", "mml-*.js", "tex-mml-*.js", "tex-chtml-full*.js", "node-main.js"),
    )
    return pages


def _write_folder_index(folder: Path) -> None:
    """A plain listing, so links to a folder of the repository (``../bigtut/gpt/``) open from disk and server."""
    entries = sorted(folder.iterdir(), key=lambda p: (p.is_file(), p.name))
    rows = [
        f'<li><a href="{html.escape(p.name)}{"/index.html" if p.is_dir() else ""}">{html.escape(p.name)}'
        f"{'/' if p.is_dir() else ''}</a></li>"
        for p in entries
        if p.name != "index.html"
    ]
    name = folder.relative_to(EXTRA).as_posix()
    folder.joinpath("index.html").write_text(
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{name}/ · bigtut</title></head>\n'
        f'<body><h1>{name}/</h1>\n<p><a href="../index.html">..</a></p>\n<ul>\n' + "\n".join(rows) + "\n</ul>\n"
        "</body></html>\n",
        encoding="utf-8",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stage-only", action="store_true", help="write _build/source etc. without running Sphinx")
    args = parser.parse_args(argv)
    pages = stage()
    print(f"book: staged {len(pages)} pages in course order into {SOURCE.relative_to(ROOT)}/")
    if args.stage_only:
        return 0
    command = [
        sys.executable, "-m", "sphinx", "-b", "html", "-c", str(ROOT / "book"),
        "-W", "--keep-going", "-q", "-j", "2", "-d", str(BUILD / "doctrees"), str(SOURCE), str(HTML),
    ]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT)
    if done.returncode != 0:
        print("book: Sphinx reported warnings or errors (above); the site was not built cleanly", file=sys.stderr)
        return done.returncode
    for page in pages:  # each notebook page's download button offers the repository's notebook, not the staged
        if page.kind == "notebook":  # copy (whose title and links were rewritten for the site)
            shutil.copyfile(ROOT / page.path, HTML / "_sources" / page.path)
    print(f"book: site written to {HTML.relative_to(ROOT)}/index.html")
    return 0


if __name__ == "__main__":
    sys.exit(main())
