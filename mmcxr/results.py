"""``metrics.json``: every number a chapter run produced, in one file beside ``claims.json``.

Schema (required keys; a chapter adds its own sections, each a JSON object or list)::

    {"chapter": "<slug>", "profile": "book", "parameters": {...}, "<section>": ...}

The prose of a chapter is glued from the same tables, and a re-run with other parameters
(or on real data) can be compared with the book's by reading this file alone.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from mmcxr.atomic import write_text
from mmcxr.claims import PROFILES
from mmcxr.runs import canonical_json

_REQUIRED = ("chapter", "profile", "parameters")


class MetricsError(ValueError):
    """A ``metrics.json`` that does not follow the schema."""


def records(table: pd.DataFrame) -> list[dict[str, Any]]:
    """A table as JSON records (NaN as null, numpy scalars as numbers)."""
    return json.loads(table.to_json(orient="records"))


def cohort_section(flow: pd.DataFrame, splits: pd.DataFrame) -> dict[str, list[dict[str, Any]]]:
    """A chapter's ``cohort`` section of ``metrics.json``: its selection flow and its split
    table, as records."""
    return {"flow": records(flow), "splits": records(splits)}


def validate_metrics(obj: Any, source: str = "metrics") -> dict[str, Any]:
    """Check a metrics record; return it or raise :class:`MetricsError` naming ``source``."""
    if not isinstance(obj, dict):
        raise MetricsError(f"{source}: a metrics record is a JSON object")
    missing = [k for k in _REQUIRED if k not in obj]
    if missing:
        raise MetricsError(f"{source}: missing keys {missing}")
    if not isinstance(obj["chapter"], str) or not obj["chapter"]:
        raise MetricsError(f"{source}: 'chapter' must be a non-empty string")
    if obj["profile"] not in PROFILES:
        raise MetricsError(f"{source}: 'profile' must be one of {PROFILES}, got {obj['profile']!r}")
    if not isinstance(obj["parameters"], dict):
        raise MetricsError(f"{source}: 'parameters' must be an object")
    sections = [k for k in obj if k not in _REQUIRED]
    if not sections:
        raise MetricsError(f"{source}: no results section besides {list(_REQUIRED)}")
    for k in sections:
        if not isinstance(obj[k], dict | list):
            raise MetricsError(f"{source}: section {k!r} must be an object or a list")
    return obj


def write_metrics(
    out_dir: str | os.PathLike, *, chapter: str, params: Mapping[str, Any], **sections: Any
) -> Path:
    """Validate and write ``<out_dir>/metrics.json`` atomically; tables become records."""
    record: dict[str, Any] = {
        "chapter": chapter,
        "profile": params.get("profile", "custom"),
        "parameters": json.loads(canonical_json(dict(params))),
    }
    for name, value in sections.items():
        record[name] = records(value) if isinstance(value, pd.DataFrame) else value
    path = Path(out_dir) / "metrics.json"
    validate_metrics(json.loads(json.dumps(record, default=str)), str(path))
    return write_text(path, json.dumps(record, indent=2, default=str) + "\n")


def read_metrics(path: str | os.PathLike) -> dict[str, Any]:
    """Load and validate a ``metrics.json``; errors name the file."""
    p = Path(path)
    try:
        obj = json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise MetricsError(f"{p}: not valid JSON ({exc})") from None
    return validate_metrics(obj, str(p))


def write_chapter_outputs(
    out_dir: str | os.PathLike,
    params: Mapping[str, Any],
    *,
    chapter: str,
    paper: str,
    verdicts: pd.DataFrame,
    **sections: Any,
) -> Path:
    """A chapter run's ``claims.json`` (from its verdicts) and ``metrics.json`` (``sections``),
    both validated and written atomically; returns the path of ``claims.json``.

    Every chapter ends the same way, so the pairing of the two files lives here once and a
    chapter's ``write_outputs`` only says which tables it keeps.
    """
    from mmcxr import claims

    record = claims.claims_record(verdicts, chapter=chapter, paper=paper, params=params)
    path = claims.write_claims(out_dir, **record)
    write_metrics(out_dir, chapter=chapter, params=params, **sections)
    return path
