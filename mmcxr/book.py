"""Execute the chapters and build the book, re-executing only what changed.

Jupyter Book's own execution cache keys on the notebook alone, so an edit to the imported
``mmcxr`` package or to the generated cohort would leave stale figures in the book. Here
each chapter is executed by papermill into ``book/chapters/<slug>.ipynb`` and a sidecar
``<slug>.run.json`` records the cache key (notebook source, parameters, ``mmcxr`` code,
pinned environment, cohort fingerprint) and the wall time; the HTML build then renders those
executed notebooks without executing anything.

Before the build the scorecard page is generated from the chapters' ``claims.json`` and the
sidecars, and every executed chapter is checked for credentialed data (see
:mod:`mmcxr.provenance`): such a book is built only with ``--local-only``, and then only
into ``_build/local-only/``, never into the publishable ``_build/html``.

Chapters never import this module (they call :mod:`mmcxr.chapter_page`); the profiles both
read are in :mod:`mmcxr.profiles`. The executor tells a chapter which profile it runs under
through its ``profile`` parameter, and hides the parameters cells in the executed notebook
(the chapter opening lists every parameter once, folded).

Usage: ``python -m mmcxr.book {data,execute,scorecard,check,build} [--only SLUG ...]
[--force] [--profile P] [-p NAME VALUE ...] [--jobs N] [--local-only] [--config FILE]``.
``execute`` runs two chapters at a time where there are two cores or more
(:func:`execute_parallel`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from mmcxr import env, provenance
from mmcxr.atomic import write_text
from mmcxr.profiles import (
    PROFILES,
    literal,
    notebook_path,
    profile_parameters,
    resolved_parameters,
    root,
)
from mmcxr.scorecard import load_result, write_scorecard


def chapters() -> list[str]:
    """Chapter slugs in book order, read from ``_toc.yml``."""
    toc = yaml.safe_load((root() / "_toc.yml").read_text())
    slugs = []
    for part in toc.get("parts", []):
        for ch in part.get("chapters", []):
            f = ch["file"]
            if f.startswith("book/chapters/"):
                slugs.append(f.removeprefix("book/chapters/"))
    return slugs


def _hash_files(paths: list[Path], base: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(paths):
        h.update(str(p.relative_to(base)).encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def code_fingerprint() -> str:
    """Hash of the ``mmcxr`` sources and the pinned environment."""
    r = root()
    files = list((r / "mmcxr").rglob("*.py")) + [r / "pyproject.toml"]
    return _hash_files(files, r)


def cohort_fingerprint(params: dict[str, Any]) -> str:
    """What identifies the chapter's data: the synthetic recipe, or each real root's listing.

    A root's listing is its top-level files (name, size, mtime): a re-downloaded or
    re-generated root changes it without hashing gigabytes of images.
    """
    keys = (
        "data_format",
        "synth_n",
        "synth_seed",
        "synth_image_size",
        "synth_image_difficulty",
        "synth_report_difficulty",
    )
    parts: dict[str, Any] = {"recipe": {k: params.get(k) for k in keys}}
    for name, value in sorted(params.items()):
        if name.endswith("_root") and value is not None:
            p = Path(value).expanduser()
            files = sorted(q for q in p.glob("*") if q.is_file()) if p.is_dir() else []
            parts[name] = [
                str(p.resolve()),
                [(q.name, q.stat().st_size, int(q.stat().st_mtime)) for q in files],
            ]
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def cache_key(slug: str, profile: str, params: dict[str, Any]) -> str:
    r = root()
    parts = {
        "notebook": _hash_files([r / "notebooks" / f"{slug}.py"], r),
        "profile": profile,
        "parameters": json.dumps(params, sort_keys=True, default=str),
        "code": code_fingerprint(),
        "cohort": cohort_fingerprint(params),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def executed_dir() -> Path:
    d = root() / "book" / "chapters"
    d.mkdir(parents=True, exist_ok=True)
    return d


def run_record(slug: str) -> dict[str, Any] | None:
    """The ``.run.json`` sidecar of an executed chapter; None when absent or unreadable."""
    f = executed_dir() / f"{slug}.run.json"
    if not f.is_file():
        return None
    try:
        return json.loads(f.read_text())
    except json.JSONDecodeError as exc:
        print(f"[book] {f}: unreadable run record ({exc}); the chapter will be re-executed")
        return None


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _reusable(out: Path, rec: dict[str, Any] | None, key: str) -> bool:
    if not (out.is_file() and rec and rec.get("key") == key and rec.get("status") == "ok"):
        return False
    if rec.get("output_sha256") not in (None, _sha256(out)):
        print(f"[book] {out}: changed since it was executed (copied in or edited by hand)")
        return False
    return True


def _data_record(out: Path, slug: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Which data the executed notebook read, for the sidecar (most sensitive source first)."""
    verdict = provenance.assess_notebook(out)
    order = {"real": 0, "unknown": 1, "synthetic": 2}
    sources = sorted(
        verdict.sources, key=lambda s: (order.get(s.get("kind"), 1), not s.get("credentialed"))
    )
    first = sources[0] if sources else {"kind": "synthetic", "format": None, "root": None}
    return {k: first.get(k) for k in ("kind", "format", "root")}, sources


#: How papermill's client waits for a cell's outputs. By default it waits 4 s after a cell's
#: reply for the rest of its output messages and then goes on without them, with only a log
#: line: on a loaded machine a figure can arrive later than that and be silently missing from
#: the page. Wait a minute instead, and fail the chapter rather than drop an output.
PAPERMILL_OPTIONS: dict[str, Any] = {"iopub_timeout": 60, "raise_on_iopub_timeout": True}


def execute(slug: str, profile: str = "book", force: bool = False, **overrides: Any) -> Path:
    """Execute one chapter with papermill unless an identical run is already in the book.

    "Identical": same cache key (:func:`cache_key`) and the executed notebook unchanged
    since (its hash is in the sidecar), so a notebook copied over it is re-executed.
    """
    import papermill as pm

    params = resolved_parameters(slug, profile, **overrides)
    key = cache_key(slug, profile, params)
    out = executed_dir() / f"{slug}.ipynb"
    if not force and _reusable(out, run_record(slug), key):
        print(f"[book] {slug}: unchanged, reusing the executed notebook")
        return out
    device = env.resolve_device(params.get("device", "auto"))
    print(f"[book] {slug}: executing ({profile} profile)")
    tmp = out.with_name(f".{slug}.executing.ipynb")
    started = time.time()
    # Progress bars are for people at a live kernel: in a stored notebook a widget bar is a
    # frozen "0%" and a text bar hundreds of carriage returns, so the kernel runs without them.
    saved_tqdm = os.environ.get("TQDM_DISABLE")
    os.environ["TQDM_DISABLE"] = "1"
    try:
        pm.execute_notebook(
            str(notebook_path(slug)),
            str(tmp),
            parameters={**profile_parameters(slug, profile), "profile": profile, **overrides},
            kernel_name="mmcxr",
            cwd=str(root() / "notebooks"),
            progress_bar=True,
            request_save_on_cell_execute=False,
            **PAPERMILL_OPTIONS,
        )
    except BaseException:
        if tmp.is_file():
            failed = out.with_name(f".{slug}.failed.ipynb")
            os.replace(tmp, failed)
            print(f"[book] {slug}: failed; the partly executed notebook is {failed}")
        raise
    finally:
        if saved_tqdm is None:
            os.environ.pop("TQDM_DISABLE", None)
        else:
            os.environ["TQDM_DISABLE"] = saved_tqdm
    _hide_parameter_cells(tmp)
    os.replace(tmp, out)
    finished = time.time()
    data, sources = _data_record(out, slug)
    _write_json(
        executed_dir() / f"{slug}.run.json",
        {
            "slug": slug,
            "profile": profile,
            "key": key,
            "status": "ok",
            "parameters": params,
            "device": device,
            "data": data,
            "data_sources": sources,
            "wall_s": round(finished - started, 1),
            "started_unix": started,
            "finished_unix": finished,
            "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
            "versions": env.versions(),
            "output_sha256": _sha256(out),
        },
    )
    return out


def default_jobs(profile: str) -> int:
    """Chapters executed at once by default: two where there are two cores or more (``book``
    and ``smoke``), one for ``full`` (paper-scale chapters would share one GPU's memory).

    Two small chapters side by side, each with half the cores, finish sooner than one after
    the other with all of them: the ``book`` profile's models are too small to keep two
    threads busy, and an idle thread of PyTorch's pool spins instead of sleeping."""
    return 1 if profile == "full" else min(2, os.cpu_count() or 1)


def _child_command(slug: str, extra: list[str]) -> list[str]:
    """The process :func:`execute_parallel` starts for one chapter."""
    return [sys.executable, "-m", "mmcxr.book", "execute", "--only", slug, "--jobs", "1", *extra]


def execute_parallel(
    slugs: list[str],
    jobs: int,
    profile: str = "book",
    force: bool = False,
    params: list[list[str]] | None = None,
) -> int:
    """Execute ``slugs`` ``jobs`` at a time, each in its own ``python -m mmcxr.book execute
    --only SLUG`` process (so each is :func:`execute`, reuse included) with the cores split
    between them (``OMP_NUM_THREADS``, unless already set); the longest by its last recorded
    wall time starts first. Each process's output goes to ``_build/logs/<slug>.log``, whose
    tail is printed when it fails. Returns the number of chapters that failed."""
    threads = os.environ.get("OMP_NUM_THREADS") or str(max(1, (os.cpu_count() or 1) // jobs))
    child_env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
    logs = root() / "_build" / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    order = sorted(slugs, key=lambda s: -float((run_record(s) or {}).get("wall_s") or 0.0))
    extra = ["--profile", profile, *(["--force"] if force else [])]
    extra += [a for pair in params or [] for a in ("-p", *pair)]
    running: dict[str, tuple[subprocess.Popen, float, Path]] = {}
    failed: list[str] = []
    print(f"[book] executing {len(slugs)} chapters, {jobs} at a time, {threads} thread(s) each")
    while order or running:
        while order and len(running) < jobs:
            slug = order.pop(0)
            log = logs / f"{slug}.log"
            with open(log, "w") as fh:
                proc = subprocess.Popen(_child_command(slug, extra), stdout=fh,
                                        stderr=subprocess.STDOUT, env=child_env, cwd=root())  # fmt: skip
            running[slug] = (proc, time.time(), log)
            print(f"[book] {slug}: started (log: {log.relative_to(root())})")
        time.sleep(0.5)
        for slug, (proc, started, log) in list(running.items()):
            if proc.poll() is None:
                continue
            del running[slug]
            took = time.time() - started
            if proc.returncode == 0:
                print(f"[book] {slug}: done in {took:.0f} s")
            else:
                failed.append(slug)
                tail = log.read_text(errors="replace").splitlines()[-25:]
                print(f"[book] {slug}: FAILED after {took:.0f} s; the end of {log}:")
                print("\n".join(f"    {line}" for line in tail))
    if failed:
        print(f"[book] failed: {', '.join(failed)}")
    return len(failed)


#: Tags of the cells holding the parameters: the notebook's own and the one papermill injects.
PARAMETER_TAGS = ("parameters", "injected-parameters")


def _hide_parameter_cells(path: Path) -> None:
    """Tag the parameters cells ``remove-cell``: the chapter opening lists every parameter."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    for c in nb.cells:
        tags = c.metadata.get("tags", [])
        if any(t in tags for t in PARAMETER_TAGS) and "remove-cell" not in tags:
            c.metadata["tags"] = [*tags, "remove-cell"]
    nbformat.write(nb, path)


def _write_json(path: Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, default=str))


def generate_data(slugs: list[str]) -> None:
    """Generate each chapter's default synthetic cohort (once per distinct recipe)."""
    from mmcxr.data import resolve_root
    from mmcxr.synth import SynthConfig

    done = set()
    for slug in slugs:
        p = resolved_parameters(slug, "book")
        if p.get("data_root") is not None or "synth_n" not in p:
            continue
        config = SynthConfig.from_chapter(p)
        recipe = (p["data_format"], p["synth_n"], p.get("synth_seed", 0), p["synth_image_size"])
        if (recipe, config.to_json()) in done:
            continue
        done.add((recipe, config.to_json()))
        path = resolve_root(
            recipe[0], None, n=recipe[1], seed=recipe[2], image_size=recipe[3], config=config
        )
        print(f"[book] cohort for {slug}: {path}")


def claims_path(slug: str, rec: dict[str, Any] | None) -> Path:
    """Where a chapter wrote ``claims.json``: its ``output_dir`` parameter, else the default."""
    out = ((rec or {}).get("parameters") or {}).get("output_dir")
    if out is None:
        return env.home() / "outputs" / slug / "claims.json"
    p = Path(out).expanduser()
    return (p if p.is_absolute() else root() / "notebooks" / p) / "claims.json"


def scorecard_path() -> Path:
    return root() / "book" / "generated" / "scorecard.md"


def scorecard(slugs: list[str] | None = None) -> Path:
    """Generate the scorecard page from every chapter's claims and run record."""
    results = []
    for slug in slugs or chapters():
        rec = run_record(slug)
        results.append(load_result(slug, rec, claims_path(slug, rec)))
    path = write_scorecard(scorecard_path(), results)
    print(
        f"[book] scorecard: {path} ({sum(r.claims is not None for r in results)} of "
        f"{len(results)} chapters with claims)"
    )
    return path


def check_publishable(slugs: list[str] | None = None) -> list[provenance.Assessment]:
    """Assess every executed chapter for credentialed data (see :mod:`mmcxr.provenance`)."""
    return [
        provenance.assess_notebook(executed_dir() / f"{s}.ipynb", run_record(s))
        for s in slugs or chapters()
    ]


LOCAL_ONLY_DIR = "local-only"
LOCAL_ONLY_MARKER = provenance.LOCAL_ONLY_MARKER
_MARKER_TEXT = """This book was built with --local-only from chapters executed on credentialed data
(MIMIC-CXR, MIMIC-CXR-JPG or Chest ImaGenome). The data use agreements forbid publishing
images or report text: keep this folder on the machine that holds the data.
"""


def build(extra: list[str] | None = None, local_only: bool = False) -> int:
    """Build the HTML book from the executed chapters; refuse credentialed data unless local.

    ``local_only`` builds into ``_build/local-only/_build/html`` (with a marker file beside
    and inside it), never into the publishable ``_build/html``.
    """
    missing = [s for s in chapters() if not (executed_dir() / f"{s}.ipynb").is_file()]
    if missing:
        raise SystemExit(f"chapters not executed yet: {missing}; run `make chapters` first")
    scorecard()
    blocked = [a for a in check_publishable() if a.blocked]
    args = [str(root()), "-W", "--keep-going"]
    if local_only:
        dest = root() / "_build" / LOCAL_ONLY_DIR
        write_text(dest / LOCAL_ONLY_MARKER, _MARKER_TEXT)
        args += ["--path-output", str(dest)]
        print(f"[book] local-only build into {dest}/_build/html: do not publish it")
    elif blocked:
        reasons = "\n  ".join(r for a in blocked for r in a.reasons)
        raise SystemExit(
            "refusing to build a publishable book from chapters executed on credentialed data:"
            f"\n  {reasons}\nThe data use agreements forbid publishing images or report text. "
            "Build a private copy with `python -m mmcxr.book build --local-only` "
            "(`make book LOCAL_ONLY=1`), or re-execute those chapters on synthetic data."
        )
    rc = _jupyter_book([*args, *(extra or [])])
    if local_only:
        html = root() / "_build" / LOCAL_ONLY_DIR / "_build" / "html"
        if html.is_dir():
            write_text(html / LOCAL_ONLY_MARKER, _MARKER_TEXT)
    return rc


def _jupyter_book(args: list[str]) -> int:
    cmd = [str(Path(sys.executable).with_name("jupyter-book")), "build", *args]
    return subprocess.call(cmd, cwd=root())


def _overrides(pairs: list[list[str]] | None) -> dict[str, Any]:
    return {name: literal(value) for name, value in pairs or []}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mmcxr.book", description=__doc__.split("\n")[0])
    ap.add_argument("command", choices=["data", "execute", "scorecard", "check", "build"])
    ap.add_argument("--only", nargs="*", help="chapter slugs (default: all in _toc.yml)")
    ap.add_argument("--profile", default="book", choices=PROFILES)
    ap.add_argument("--force", action="store_true", help="re-execute even when unchanged")
    ap.add_argument(
        "-p",
        "--param",
        nargs=2,
        action="append",
        metavar=("NAME", "VALUE"),
        help="override a parameter for execute (a Python literal or a string)",
    )
    ap.add_argument(
        "--jobs",
        type=int,
        help="chapters executed at once, each in its own process with its share of the cores"
        " (default: 2 on two or more cores, 1 for the full profile)",
    )
    ap.add_argument("--config", help="an alternative _config.yml (jupyter-book build --config)")
    ap.add_argument(
        "--local-only",
        action="store_true",
        help="build chapters executed on credentialed data into _build/local-only/",
    )
    args = ap.parse_args(argv)
    slugs = args.only or chapters()
    if args.command == "data":
        generate_data(slugs)
    elif args.command == "execute":
        jobs = args.jobs or default_jobs(args.profile)
        if jobs > 1 and len(slugs) > 1:
            return 1 if execute_parallel(slugs, jobs, args.profile, args.force, args.param) else 0
        for slug in slugs:
            execute(slug, args.profile, force=args.force, **_overrides(args.param))
    elif args.command == "scorecard":
        scorecard()
    elif args.command == "check":
        verdicts = check_publishable(slugs)
        for v in verdicts:
            print(f"{v.path.name}: {v.kind}" + "".join(f"\n  {r}" for r in v.reasons))
        return 1 if any(v.blocked for v in verdicts) else 0
    else:
        return build(["--config", args.config] if args.config else None, local_only=args.local_only)
    return 0


if __name__ == "__main__":
    sys.exit(main())
