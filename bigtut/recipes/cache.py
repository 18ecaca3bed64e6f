"""A cache of trained models under ``runs/`` that cannot go stale.

An entry's folder name carries a key over everything that decides what the recipe builds: the recipe's
name and fields, the versions of bigtut and torch, and :func:`source_fingerprint` — a hash over every source
file of the package that building a model can run. Editing any of them (the model, the tokenizer, the data, the
training loop) changes the key, so a later chapter never loads a model built by older code. The modules that only
read a trained model (:data:`NOT_TRAINING`: explanations, compression, checkers, pictures, the prose check) are
left out, so editing them does not retrain anything; a test proves no recipe imports them. Entries are written
to a temporary folder and renamed into place (readers see a complete entry or none); an entry that fails to load
is rebuilt with a warning, never used.

The models the chapters explain are also committed, under the same keys, in ``checkpoints/explained/``
(:data:`COMMITTED_DIR`), and loaded from there first. Training is deterministic on one machine but not across
CPUs (another instruction set sums in another order, and a few hundred steps amplify the last bits), so a model
trained here would differ from the one the notebooks' stored outputs and prose describe. The committed copy makes
every reader explain the same weights. Editing the training code changes the keys: ``tests/test_committed_models.py``
then fails until ``python -m bigtut.recipes.checkpoints explained`` has rebuilt them.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import torch

__all__ = ["COMMITTED_DIR", "EXPLAINED_RECIPES", "NOT_TRAINING", "cache_folder", "cache_key", "committed_dir",
           "default_cache_dir", "load_or_build", "source_fingerprint", "write_atomically"]

T = TypeVar("T")
PACKAGE_DIR = Path(__file__).resolve().parents[1]  # the bigtut folder this module was imported from
# Parts of the package (relative to it) that no model recipe imports: they read trained models, never build them.
# (Chapter 09's cached benchmark, bigtut/explanation_benchmark, runs the explanation methods; its key adds a
# fingerprint of bigtut/explain and of itself.)
NOT_TRAINING = ("checks", "claims.py", "compress", "diagrams.py", "exercises.py", "explain", "explanation_benchmark",
                "plots.py")
COMMITTED_DIR = PACKAGE_DIR.parent / "checkpoints" / "explained"
"""Where the repository keeps the explained models, one ``<name>_<cache key>`` folder each, as in ``runs/``."""
# The recipes whose results are committed: the models chapters 04-11 explain (not the package documents, which
# are re-read in a minute from the pinned packages, nor chapter 09's benchmark, which only runs explanations).
EXPLAINED_RECIPES = ("bert_docstrings", "bert_planted", "gpt_docstrings", "gpt_docstrings_from_scratch",
                     "gpt_retrieval")


def source_fingerprint(package_dir: str | Path | None = None) -> str:
    """SHA-256 (16 hex digits) over the relative path and bytes of every source file of the package that
    training can run (all but :data:`NOT_TRAINING`).

    Compiled caches (``__pycache__``, ``*.pyc``) are left out. Computed afresh on every call (a few ms), so an
    edit made while Python runs is seen too. ``package_dir`` defaults to the installed ``bigtut`` folder.
    """
    root = Path(package_dir) if package_dir is not None else PACKAGE_DIR
    if not root.is_dir():
        raise FileNotFoundError(f"no package folder at {root}")
    digest = hashlib.sha256()
    files = sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts
                   and p.suffix not in (".pyc", ".pyo")
                   and p.relative_to(root).parts[0] not in NOT_TRAINING)
    for path in files:
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def cache_key(name: str, fields: dict[str, Any]) -> str:
    """12 hex digits over the recipe ``name``, its ``fields`` (JSON), bigtut's and torch's versions and the
    :func:`source_fingerprint`."""
    from bigtut import __version__

    text = json.dumps({"recipe": name, "fields": fields, "bigtut": __version__, "torch": torch.__version__,
                       "source": source_fingerprint()}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def default_cache_dir() -> Path:
    """``$BIGTUT_RUNS``, else ``runs/`` at the root of the source checkout (git-ignored), else ``./runs``."""
    if os.environ.get("BIGTUT_RUNS"):
        return Path(os.environ["BIGTUT_RUNS"])
    root = PACKAGE_DIR.parent
    return root / "runs" if (root / "pyproject.toml").exists() else Path.cwd() / "runs"


def committed_dir() -> Path | None:
    """:data:`COMMITTED_DIR`, or ``$BIGTUT_COMMITTED`` when set (empty: no committed models, train everything)."""
    if "BIGTUT_COMMITTED" in os.environ:
        return Path(os.environ["BIGTUT_COMMITTED"]) if os.environ["BIGTUT_COMMITTED"] else None
    return COMMITTED_DIR


def cache_folder(name: str, fields: dict[str, Any], cache_dir: str | Path | None = None) -> Path:
    """``cache_dir/<name>_<cache_key>``: where the entry of this recipe, with these fields, lives."""
    return Path(cache_dir or default_cache_dir()) / f"{name}_{cache_key(name, fields)}"


def write_atomically(folder: Path, write: Callable[[Path], None], replace: bool = False) -> Path:
    """Call ``write(tmp)`` on a fresh temporary folder beside ``folder``, then rename it to ``folder``.

    Readers see a complete folder or none. A ``folder`` already there is kept (another process finished the
    same entry first, or a rebuild produced the same weights) unless ``replace`` — a broken entry being
    rebuilt — in which case it is moved aside and deleted.
    """
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=folder.parent))
    old = None
    try:
        write(tmp)
        if folder.exists():
            if not replace:
                return folder
            old = Path(tempfile.mkdtemp(prefix=f".{folder.name}.old-", dir=folder.parent))
            os.replace(folder, old / "entry")
        os.rename(tmp, folder)  # atomic on one file system
    finally:
        for leftover in (tmp, old):
            if leftover is not None and leftover.exists():
                shutil.rmtree(leftover, ignore_errors=True)
    return folder


def load_or_build(name: str, fields: dict[str, Any], build: Callable[[], T], save: Callable[[T, Path], None],
                  load: Callable[[Path], T], *, cache_dir: str | Path | None = None, reuse: bool = True,
                  store: bool = True) -> T:
    """Return ``load(folder)`` if the entry exists and loads; else ``build()``, stored with ``save`` if ``store``.

    With the default ``cache_dir`` the committed copy (:func:`committed_dir`) is looked for first. An entry that
    raises while loading (a truncated file, missing or renamed weights) is reported with a ``RuntimeWarning`` and
    rebuilt.
    """
    committed = committed_dir()
    if reuse and cache_dir is None and committed is not None:
        shipped = committed / cache_folder(name, fields, committed).name
        if shipped.is_dir():
            try:
                return load(shipped)
            except Exception as err:  # noqa: BLE001 - same rule as for the cache below
                warnings.warn(f"committed {name} at {shipped} could not be loaded ({type(err).__name__}: {err}); "
                              "using the runs/ cache instead", RuntimeWarning, stacklevel=2)
    folder, broken = cache_folder(name, fields, cache_dir), False
    if reuse and folder.exists():
        try:
            return load(folder)
        except Exception as err:  # noqa: BLE001 - any failure means the entry cannot be trusted
            broken = True
            warnings.warn(f"cached {name} at {folder} could not be loaded ({type(err).__name__}: {err}); "
                          "rebuilding it", RuntimeWarning, stacklevel=2)
    result = build()
    if store:
        def write(tmp: Path) -> None:
            (tmp / "recipe.json").write_text(json.dumps({"recipe": name, "fields": fields}, indent=1, default=str))
            save(result, tmp)

        write_atomically(folder, write, replace=broken)
    return result
