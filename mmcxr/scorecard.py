"""The reproducibility scorecard: one page of every chapter's claims and how each run was made.

Generated before each build from what the chapters left behind (``claims.json`` in their
output folder, the ``.run.json`` sidecar of their executed notebook), so the page cannot
claim more than the executed chapters showed. A chapter without claims is listed as not yet
reproduced; a ``claims.json`` older than the chapter's last run is flagged as stale rather
than shown as current.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmcxr import papers
from mmcxr.atomic import write_text
from mmcxr.claims import ClaimsError, badge, cell, claims_markdown, read_claims


@dataclass
class ChapterResult:
    """What one chapter left for the scorecard."""

    slug: str
    run: dict[str, Any] | None
    claims: dict[str, Any] | None
    claims_path: Path
    problem: str | None = None


def load_result(slug: str, run: dict[str, Any] | None, claims_path: Path) -> ChapterResult:
    """Read a chapter's claims; a bad or stale file becomes a visible problem, not a verdict."""
    res = ChapterResult(slug, run, None, claims_path)
    if not claims_path.is_file():
        return res
    try:
        record = read_claims(claims_path)
    except ClaimsError as exc:
        res.problem = f"invalid claims file: {exc}"
        return res
    if record["chapter"] != slug:
        res.problem = f"{claims_path} belongs to chapter {record['chapter']!r}, not {slug!r}"
        return res
    started = (run or {}).get("started_unix")
    if started is not None and claims_path.stat().st_mtime < started:
        res.problem = (
            f"{claims_path} predates the chapter's last run (it was not rewritten); "
            "its verdicts are not shown"
        )
        return res
    res.claims = record
    return res


def _no_paper(slug: str) -> bool:
    return papers.chapter(slug).paper_file is None


def _link(slug: str) -> str:
    return f"{{doc}}`{papers.chapter(slug).title} <../chapters/{slug}>`"


def _data(res: ChapterResult) -> str:
    d = (res.claims or {}).get("data") or (res.run or {}).get("data") or {}
    if not d:
        return "-"
    return f"{d.get('kind', '?')} `{d.get('format') or '?'}`"


def _wall(run: dict[str, Any] | None) -> str:
    if not run or run.get("wall_s") is None:
        return "-"
    s = float(run["wall_s"])
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.1f} min"


def _tally(res: ChapterResult) -> str:
    if res.problem:
        return badge("problem", "see below")
    if res.claims is None:
        return "no claims (no paper)" if _no_paper(res.slug) else "not yet reproduced"
    holds = [c["holds"] for c in res.claims["claims"]]
    tested = [h for h in holds if h is not None]
    return f"{sum(tested)} of {len(tested)} hold" + (
        f" ({len(holds) - len(tested)} not testable)" if len(tested) < len(holds) else ""
    )


def scorecard_markdown(results: list[ChapterResult]) -> str:
    """The whole page, MyST Markdown."""
    out = [
        "# Reproducibility scorecard",
        "",
        "Every claim below is a finding of the paper, restated, with the paper's own evidence "
        "and this book's, as computed by the executed chapter (its `claims.json`). The page "
        "is regenerated before each build (`python -m mmcxr.book scorecard`). On the "
        "synthetic cohort a claim *holding* means the method recovers the planted structure "
        "the way the paper says it should; it does not reproduce the paper's numbers.",
        "",
        "## Summary",
        "",
        "| chapter | paper | claims | data | profile | wall time |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        ch = papers.chapter(r.slug)
        profile = (r.claims or {}).get("profile") or (r.run or {}).get("profile") or "-"
        out.append(
            f"| {_link(r.slug)} | {cell(ch.authors or ch.paper_title or '-')} | "
            f"{_tally(r)} | {_data(r)} | {profile} | {_wall(r.run)} |"
        )
    out += ["", "## Claims, chapter by chapter", ""]
    for r in results:
        ch = papers.chapter(r.slug)
        out += [f"### {ch.title}", "", f"{ch.citation}. Chapter: {_link(r.slug)}.", ""]
        if r.problem:
            out += [":::{warning}", cell(r.problem), ":::", ""]
        elif r.claims is None and _no_paper(r.slug):
            out += ["This chapter reproduces no paper; it wrote no claims.", ""]
        elif r.claims is None:
            out += [
                f"Not yet reproduced: the chapter wrote no claims (looked for "
                f"`{r.claims_path.name}` in its output folder).",
                "",
            ]
        else:
            out += [claims_markdown(r.claims), ""]
    out += _environment(results)
    return "\n".join(out).rstrip() + "\n"


def _environment(results: list[ChapterResult]) -> list[str]:
    out = [
        "## Run environment",
        "",
        "| chapter | profile | device | data | wall time | finished |",
        "|---|---|---|---|---|---|",
    ]
    versions: dict[str, dict[str, str]] = {}
    for r in results:
        run = r.run or {}
        out.append(
            f"| {_link(r.slug)} | {run.get('profile', '-')} | {run.get('device', '-')} | "
            f"{_data(r)} | {_wall(r.run)} | {run.get('finished', 'not executed')} |"
        )
        for pkg, ver in (run.get("versions") or {}).items():
            versions.setdefault(pkg, {})[r.slug] = ver
    if versions:
        out += ["", "| package | version |", "|---|---|"]
        for pkg, by_slug in versions.items():
            distinct = sorted(set(by_slug.values()))
            ver = (
                distinct[0]
                if len(distinct) == 1
                else "; ".join(
                    f"{v} ({', '.join(s for s, x in by_slug.items() if x == v)})" for v in distinct
                )
            )
            out.append(f"| {cell(pkg)} | {cell(ver)} |")
    return out + [""]


def write_scorecard(path: Path, results: list[ChapterResult]) -> Path:
    """Write the page atomically (a build never sees half a file)."""
    return write_text(path, scorecard_markdown(results))
