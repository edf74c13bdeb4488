"""Where a chapter's data came from, and the guard that keeps credentialed data unpublished.

The data use agreements of MIMIC-CXR, MIMIC-CXR-JPG and Chest ImaGenome forbid publishing
images or report text, and an executed chapter shows both. So every chapter records, in its
own executed notebook, which roots it read (:func:`record_provenance`, called by the
chapter's opening); the book reads that record back (:func:`assess_notebook`) before it
builds. Because the record lives in the notebook's outputs, a chapter executed by hand and
copied into ``book/chapters/`` is caught as well as one executed by ``make book``.

A root is synthetic when it holds :data:`mmcxr.names.CONFIG_FILE` (written by the generator);
anything else is real. Real data of an unknown format, or a root that cannot be checked on
this machine, counts as credentialed: the guard errs on the side of not publishing.
"""

from __future__ import annotations

import ast
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat

from mmcxr import papers
from mmcxr.names import CONFIG_FILE

#: Written by ``python -m mmcxr.book build --local-only`` beside and inside its HTML tree; a
#: tree holding it is never published (:mod:`mmcxr.publish` refuses it).
LOCAL_ONLY_MARKER = "LOCAL-ONLY-DO-NOT-PUBLISH.txt"

#: glue keys of provenance records are this prefix plus a counter (glue keys must be unique)
GLUE_PREFIX = "mmcxr-provenance-"
_counter = itertools.count()


def describe_source(data_root: str | Path | None, fmt: str | None) -> dict[str, Any]:
    """What a data root is: ``{"kind": "synthetic"|"real", "format", "root", "credentialed"}``.

    ``data_root=None`` is the chapter's default synthetic cohort.
    """
    fmt_name = papers.normalise_format(fmt) if fmt else None
    if data_root is None:
        return {"kind": "synthetic", "format": fmt_name, "root": None, "credentialed": False}
    root = Path(data_root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: data root does not exist or is not a directory")
    kind = "synthetic" if (root / CONFIG_FILE).is_file() else "real"
    return {
        "kind": kind,
        "format": fmt_name,
        "root": str(root.resolve()),
        "credentialed": kind == "real" and _credentialed_format(fmt_name),
    }


def _credentialed_format(fmt: str | None) -> bool:
    ds = papers.dataset(fmt) if fmt else None
    return True if ds is None else ds.credentialed


def record_provenance(data_root: str | Path | None, fmt: str | None) -> dict[str, Any]:
    """Describe a root and store the description, hidden, in the executed notebook's outputs.

    Call it for every root a chapter reads (the chapter opening does it for the ``*_root``
    parameters). Outside a Jupyter kernel it only returns the description.
    """
    src = describe_source(data_root, fmt)
    from IPython.core.interactiveshell import InteractiveShell

    if InteractiveShell.initialized():
        from myst_nb import glue

        # a JSON string, not an object: nbformat only accepts objects under *json mime
        # types, and glue's hidden prefix makes the type "application/papermill.record/..."
        glue(f"{GLUE_PREFIX}{next(_counter)}", json.dumps(src, sort_keys=True), display=False)
    return src


def notebook_sources(nb: nbformat.NotebookNode) -> list[dict[str, Any]]:
    """Every provenance record found in an executed notebook's outputs."""
    found = []
    for cell in nb.cells:
        for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
            meta = out.get("metadata", {}).get("scrapbook", {})
            if not str(meta.get("name", "")).startswith(GLUE_PREFIX):
                continue
            text = next(
                (v for k, v in out.get("data", {}).items() if k.endswith("text/plain")), None
            )
            found.append(_parse_record(text, cell))
    return found


def _parse_record(text: Any, cell: nbformat.NotebookNode) -> dict[str, Any]:
    """A glued record back to a dict; an unreadable one is a record of unknown data."""
    try:
        value = json.loads(ast.literal_eval("".join(text) if isinstance(text, list) else text))
        if isinstance(value, dict):
            return value
    except (ValueError, SyntaxError, TypeError):
        pass
    return {
        "kind": "unknown",
        "format": None,
        "root": None,
        "credentialed": True,
        "error": f"unreadable provenance record in cell {cell.get('id', '?')}: {text!r:.80}",
    }


def notebook_parameters(nb: nbformat.NotebookNode) -> dict[str, Any]:
    """Parameters the notebook ran with: its ``parameters`` cell, then papermill's injected ones."""
    params: dict[str, Any] = {}
    for cell in nb.cells:
        tags = cell.get("metadata", {}).get("tags", [])
        if cell.cell_type != "code" or not {"parameters", "injected-parameters"} & set(tags):
            continue
        try:
            tree = ast.parse(cell.source)
        except SyntaxError:
            continue
        for node in tree.body:
            if isinstance(node, ast.Assign):
                try:
                    value = ast.literal_eval(node.value)
                except ValueError:
                    continue
                params.update({t.id: value for t in node.targets if isinstance(t, ast.Name)})
    params.update(nb.metadata.get("papermill", {}).get("parameters", {}) or {})
    return params


@dataclass
class Assessment:
    """The verdict on one executed notebook."""

    path: Path
    sources: list[dict[str, Any]] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)

    @property
    def blocked(self) -> bool:
        """True when publishing this notebook could publish credentialed data."""
        return bool(self.reasons)

    @property
    def kind(self) -> str:
        kinds = {s.get("kind") for s in self.sources}
        return "real" if "real" in kinds else "unknown" if "unknown" in kinds else "synthetic"


def _sources_from_parameters(params: dict[str, Any], slug: str) -> list[dict[str, Any]]:
    primary = papers.CHAPTERS[slug].primary_format if slug in papers.CHAPTERS else None
    fmt_default = params.get("data_format", primary)
    out = []
    for name, value in sorted(params.items()):
        if not name.endswith("_root") or value is None:
            continue
        fmt = fmt_default if name == "data_root" else None
        try:
            out.append(describe_source(value, fmt))
        except (FileNotFoundError, TypeError):
            out.append(
                {
                    "kind": "unknown",
                    "format": fmt,
                    "root": str(value),
                    "credentialed": True,
                    "parameter": name,
                }
            )
    return out or [describe_source(None, fmt_default)]


def assess_notebook(path: str | Path, run_record: dict[str, Any] | None = None) -> Assessment:
    """Decide whether an executed chapter may go into the published book.

    Evidence, any of which can block: the provenance records in its outputs (or, for a
    chapter that records none, its ``*_root`` parameters checked on this machine), and the
    ``data`` entries of its ``.run.json`` sidecar.
    """
    path = Path(path)
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as exc:  # a notebook we cannot read is one we cannot vouch for
        return Assessment(path, reasons=[f"{path}: cannot read the notebook ({exc})"])
    sources = notebook_sources(nb) or _sources_from_parameters(notebook_parameters(nb), path.stem)
    if run_record:
        sources += [s for s in run_record.get("data_sources", [run_record.get("data")]) if s]
    unique: dict[tuple, dict[str, Any]] = {}
    for s in sources:  # the notebook and its sidecar usually name the same root
        unique.setdefault((s.get("kind"), s.get("format"), s.get("root")), s)
    verdict = Assessment(path, sources=list(unique.values()))
    for s in verdict.sources:
        where = s.get("root") or "(no root)"
        fmt = s.get("format") or "unknown format"
        if s.get("kind") == "unknown":
            verdict.reasons.append(
                f"{path}: read {where} ({fmt}), which cannot be checked on this machine"
            )
        elif s.get("kind") == "real" and (
            s.get("credentialed") or _credentialed_format(s.get("format"))
        ):
            verdict.reasons.append(f"{path}: executed on real credentialed data ({fmt}) at {where}")
    return verdict
