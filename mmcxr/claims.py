"""A chapter's verdict on its paper: ``claims.json``, written by the chapter, read by the scorecard.

Schema (every key required unless marked optional)::

    {"chapter": "<slug>", "paper": "<short citation>", "profile": "book",
     "data": {"kind": "synthetic" | "real", "format": "<data_format>", "root": "<path>" | null},
     "claims": [{"id": "text-beats-image", "claim": "...", "paper_evidence": "...",
                 "ours": "...", "holds": true | false | null, "notes": "..." (optional)}]}

``holds: null`` means the claim could not be tested on this data (say why in ``notes``).
Unknown keys are refused so that a typo (``"hold"``) cannot silently drop a verdict.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from mmcxr.atomic import write_text

PROFILES = ("smoke", "book", "full", "custom")
DATA_KINDS = ("synthetic", "real")
_TOP = {"chapter", "paper", "profile", "data", "claims"}
_CLAIM = {"id", "claim", "paper_evidence", "ours", "holds"}
_CLAIM_OPTIONAL = {"notes"}
_ID = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


class ClaimsError(ValueError):
    """A claims record that does not follow the schema."""


def _text(obj: dict[str, Any], key: str, where: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ClaimsError(f"{where}: {key!r} must be a non-empty string, got {value!r}")
    return value


def validate_claims(obj: Any, source: str = "claims") -> dict[str, Any]:
    """Check a claims record against the schema; return it, or raise :class:`ClaimsError`.

    ``source`` (a file name) prefixes every message so the bad file is named.
    """
    if not isinstance(obj, dict):
        raise ClaimsError(f"{source}: a claims record is a JSON object, got {type(obj).__name__}")
    missing, unknown = _TOP - set(obj), set(obj) - _TOP
    if missing or unknown:
        raise ClaimsError(
            f"{source}: missing keys {sorted(missing)}, unknown keys {sorted(unknown)}"
        )
    _text(obj, "chapter", source)
    _text(obj, "paper", source)
    if obj["profile"] not in PROFILES:
        raise ClaimsError(f"{source}: 'profile' must be one of {PROFILES}, got {obj['profile']!r}")
    data = obj["data"]
    if not isinstance(data, dict) or {"kind", "format", "root"} - set(data):
        raise ClaimsError(f"{source}: 'data' needs 'kind', 'format' and 'root', got {data!r}")
    if data["kind"] not in DATA_KINDS:
        raise ClaimsError(f"{source}: data.kind must be one of {DATA_KINDS}, got {data['kind']!r}")
    if data["root"] is not None and not isinstance(data["root"], str):
        raise ClaimsError(f"{source}: data.root must be a path string or null")
    claims = obj["claims"]
    if not isinstance(claims, list) or not claims:
        raise ClaimsError(f"{source}: 'claims' must be a non-empty list")
    seen: set[str] = set()
    for i, c in enumerate(claims):
        where = f"{source}: claims[{i}]"
        if not isinstance(c, dict):
            raise ClaimsError(f"{where} must be an object")
        missing, unknown = _CLAIM - set(c), set(c) - _CLAIM - _CLAIM_OPTIONAL
        if missing or unknown:
            raise ClaimsError(
                f"{where}: missing keys {sorted(missing)}, unknown keys {sorted(unknown)}"
            )
        cid = _text(c, "id", where)
        if not _ID.match(cid):
            raise ClaimsError(f"{where}: id {cid!r} must be lower-case letters, digits, '-' or '_'")
        if cid in seen:
            raise ClaimsError(f"{where}: duplicate id {cid!r}")
        seen.add(cid)
        for key in ("claim", "paper_evidence", "ours"):
            _text(c, key, where)
        if c["holds"] not in (True, False, None):
            raise ClaimsError(f"{where}: 'holds' must be true, false or null, got {c['holds']!r}")
    return obj


def write_claims(
    path: str | os.PathLike,
    *,
    chapter: str,
    paper: str,
    profile: str,
    data: dict[str, Any],
    claims: list[dict[str, Any]],
) -> Path:
    """Validate and write ``claims.json`` atomically; ``path`` may be the output folder.

    ``data`` may be what :func:`mmcxr.provenance.record_provenance` returned (extra keys such
    as ``credentialed`` are dropped).
    """
    target = Path(path)
    if target.is_dir() or target.suffix != ".json":
        target = target / "claims.json"
    record = {
        "chapter": chapter,
        "paper": paper,
        "profile": profile,
        "data": {k: data.get(k) for k in ("kind", "format", "root")},
        "claims": [dict(c) for c in claims],
    }
    validate_claims(record, str(target))
    write_text(target, json.dumps(record, indent=2) + "\n")
    return target


def read_claims(path: str | os.PathLike) -> dict[str, Any]:
    """Load and validate a ``claims.json``; errors name the file."""
    p = Path(path)
    try:
        obj = json.loads(p.read_text())
    except json.JSONDecodeError as exc:
        raise ClaimsError(f"{p}: not valid JSON ({exc})") from None
    return validate_claims(obj, str(p))


def verdict(holds: bool | None) -> str:
    return {True: "✅ holds", False: "❌ does not hold", None: "➖ not testable here"}[holds]


def cell(text: Any) -> str:
    """Text made safe for one cell of a Markdown table."""
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def claims_markdown(record: dict[str, Any]) -> str:
    """The claims as a Markdown table: claim, paper's evidence, ours, verdict."""
    rows = ["| claim | the paper's evidence | ours | verdict |", "|---|---|---|---|"]
    for c in record["claims"]:
        note = f" ({c['notes']})" if c.get("notes") else ""
        rows.append(
            f"| {cell(c['claim'])} | {cell(c['paper_evidence'])} | "
            f"{cell(c['ours'] + note)} | {verdict(c['holds'])} |"
        )
    return "\n".join(rows)


def show_claims(record_or_path: dict[str, Any] | str | os.PathLike) -> None:
    """Display the claims table in a notebook (a chapter's closing section)."""
    from IPython.display import Markdown, display

    record = record_or_path if isinstance(record_or_path, dict) else read_claims(record_or_path)
    display(Markdown(claims_markdown(validate_claims(record))))
