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
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

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


#: ``holds`` -> (badge kind, words). Verdicts are words in a coloured badge styled by
#: book/_static/mmcxr.css, not emoji: without a colour-emoji font (headless Chromium on a
#: server) an emoji renders as an empty box.
VERDICTS: dict[bool | None, tuple[str, str]] = {
    True: ("holds", "holds"),
    False: ("fails", "does not hold"),
    None: ("untested", "not testable here"),
}


def badge(kind: str, text: str) -> str:
    """Inline HTML for a verdict badge (``kind``: holds, fails, untested or problem)."""
    return f'<span class="verdict verdict-{kind}">{text}</span>'


def verdict(holds: bool | None) -> str:
    """The verdict badge of one claim, for a Markdown table cell."""
    return badge(*VERDICTS[holds])


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


# --------------------------------------------------------------------------------------------
# deciding claims on results tables
#
# A chapter writes each finding of its paper as a test on a results table (``ClaimSpec``),
# and runs the same test on the paper's own numbers and on ours (``evaluate_claims``): a
# claim that the paper's numbers do not pass is a claim mis-transcribed, and one that ours
# do not pass is reported as failing, with the numbers that decide it.


class Missing(LookupError):
    """A claim needs a number the table lacks: it is left undecided (``holds: null``)."""


@dataclass(frozen=True)
class Number:
    """A metric and, when the table has one, its bootstrap interval (printed with it)."""

    x: float
    lo: float | None = None
    hi: float | None = None

    def __str__(self) -> str:
        if self.lo is None or self.hi is None or math.isnan(self.lo) or math.isnan(self.hi):
            return f"{self.x:.4g}"  # a reported number: as many digits as papers print
        return f"{self.x:.3f} [{self.lo:.3f}, {self.hi:.3f}]"


@dataclass(frozen=True)
class Verdict:
    """Whether a claim holds on one table, and the numbers that decide it."""

    holds: bool | None
    evidence: str


class ResultTable:
    """Metrics of a tidy results table, looked up by its key columns.

    One row per combination of ``keys`` (e.g. model, dataset, loss), a column per metric and
    optionally ``<metric>_lo`` / ``<metric>_hi``. ``defaults`` fill keys a claim leaves out
    (e.g. ``shuffled="none"``); ``name`` turns a key into the row's label for messages.
    """

    def __init__(
        self,
        table: pd.DataFrame,
        keys: Sequence[str],
        *,
        defaults: Mapping[str, Any] | None = None,
        name: Callable[..., str] | None = None,
    ) -> None:
        missing = [k for k in keys if k not in table.columns]
        if missing:
            raise ValueError(f"results table lacks key columns {missing}: {list(table.columns)}")
        self.table, self.keys = table, tuple(keys)
        self.defaults = dict(defaults or {})
        self.name = name or (lambda **k: ", ".join(f"{a}={b}" for a, b in k.items()))

    def _key(self, given: Mapping[str, Any]) -> dict[str, Any]:
        key = {**self.defaults, **given}
        unknown, absent = set(key) - set(self.keys), set(self.keys) - set(key)
        if unknown or absent:
            raise ValueError(f"lookup keys: unknown {sorted(unknown)}, missing {sorted(absent)}")
        return {k: key[k] for k in self.keys}

    def value(self, metric: str, **key: Any) -> Number:
        """The metric of the one row matching ``key``; :class:`Missing` if none or NaN."""
        key = self._key(key)
        mask = pd.Series(True, index=self.table.index)
        for col, v in key.items():
            mask &= self.table[col] == v
        rows = self.table[mask]
        if len(rows) == 0:
            raise Missing(f"no run {self.name(**key)}")
        if len(rows) > 1:
            raise ValueError(f"the table holds {len(rows)} rows for {self.name(**key)}")
        row = rows.iloc[0]
        x = float(row[metric])
        if math.isnan(x):
            raise Missing(f"{metric} of {self.name(**key)} is undefined")
        lo, hi = row.get(f"{metric}_lo"), row.get(f"{metric}_hi")
        return Number(x, None if lo is None else float(lo), None if hi is None else float(hi))

    def combos(self, **fixed: Any) -> list[tuple[Any, ...]]:
        """The distinct key tuples (in ``keys`` order) of the rows matching ``fixed``."""
        t = self.table
        for col, v in fixed.items():
            t = t[t[col] == v]
        if len(t) == 0:
            raise Missing(f"no run with {fixed}")
        return sorted({tuple(r) for r in t[list(self.keys)].itertuples(index=False)})


@dataclass(frozen=True)
class ClaimSpec:
    """One finding of a paper and the test that decides it on a :class:`ResultTable`."""

    id: str
    claim: str
    test: Callable[[ResultTable, float], Verdict]


def check_claim(spec: ClaimSpec, table: ResultTable, tol: float) -> Verdict:
    """Run one claim's test; a number the claim needs but the table lacks gives ``None``."""
    try:
        return spec.test(table, tol)
    except Missing as e:
        return Verdict(None, f"not evaluated: {e}")


def evaluate_claims(
    specs: Sequence[ClaimSpec], ours: ResultTable, paper: ResultTable, *, tol: float
) -> pd.DataFrame:
    """Every claim decided on the paper's numbers and, with the same test, on ours.

    Columns ``id, claim, paper_evidence, paper_holds, ours, holds``; ``tol`` is the margin
    within which two metrics count as equal.
    """
    rows = []
    for spec in specs:
        p, o = check_claim(spec, paper, tol), check_claim(spec, ours, tol)
        rows.append(
            {
                "id": spec.id,
                "claim": spec.claim,
                "paper_evidence": p.evidence,
                "paper_holds": p.holds,
                "ours": o.evidence,
                "holds": o.holds,
            }
        )
    return pd.DataFrame(rows)


def tally(claims: pd.DataFrame) -> dict[str, int]:
    """How many claims there are, hold and fail (an undecided claim is neither)."""
    holds = claims["holds"].tolist()
    return {
        "claims_total": len(holds),
        "claims_hold": sum(h is True for h in holds),
        "claims_fail": sum(h is False for h in holds),
    }


def claims_record(
    claims: pd.DataFrame, *, chapter: str, paper: str, params: Mapping[str, Any]
) -> dict[str, Any]:
    """The keyword arguments of :func:`write_claims` for one run: the profile the executor
    passed in (``params["profile"]``) and the data source described from ``data_root``."""
    from mmcxr import papers
    from mmcxr.provenance import describe_source

    fmt = params.get("data_format") or papers.chapter(chapter).primary_format
    return {
        "chapter": chapter,
        "paper": paper,
        "profile": params.get("profile", "custom"),
        "data": describe_source(params.get("data_root"), str(fmt)),
        "claims": claims[["id", "claim", "paper_evidence", "ours", "holds"]].to_dict("records"),
    }
