"""Execute the chapters and build the book, re-executing only what changed.

Jupyter Book's own execution cache keys on the notebook alone, so an edit to the imported
``mmcxr`` package or to the generated cohort would leave stale figures in the book. Here
each chapter is executed by papermill into ``book/chapters/<slug>.ipynb`` and a sidecar
``<slug>.run.json`` records the cache key (notebook source, parameters, ``mmcxr`` code,
pinned environment, cohort fingerprint) and the wall time; the HTML build then renders those
executed notebooks without executing anything.

Usage: ``python -m mmcxr.book {data,execute,build} [--only SLUG ...] [--force]``.
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

from mmcxr import env

PROFILES = ("smoke", "book", "full")


def root() -> Path:
    r = env.repo_root()
    if r is None:
        raise RuntimeError("mmcxr.book works from a checkout of the repository (pip install -e .)")
    return r


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


def notebook_path(slug: str) -> Path:
    return root() / "notebooks" / f"{slug}.ipynb"


def profile_parameters(slug: str, profile: str = "book") -> dict[str, Any]:
    """The parameter overrides of a profile (``book`` = the notebook's own defaults)."""
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, got {profile!r}")
    if profile == "book":
        return {}
    f = root() / "notebooks" / "params" / slug / f"{profile}.yaml"
    if not f.is_file():
        raise FileNotFoundError(f"{f}: no {profile!r} parameter file for chapter {slug!r}")
    return yaml.safe_load(f.read_text()) or {}


def default_parameters(slug: str) -> dict[str, Any]:
    import papermill as pm

    return {k: v["default"] for k, v in pm.inspect_notebook(str(notebook_path(slug))).items()}


def _literal(text: str) -> Any:
    import ast

    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def resolved_parameters(slug: str, profile: str = "book", **overrides: Any) -> dict[str, Any]:
    params = {k: _literal(v) for k, v in default_parameters(slug).items()}
    params.update(profile_parameters(slug, profile))
    params.update(overrides)
    return params


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
    """What identifies the chapter's data: the synthetic recipe, or a real root's listing."""
    data_root = params.get("data_root")
    if data_root is None:
        keys = ("data_format", "synth_n", "synth_seed", "synth_image_size")
        return json.dumps({k: params.get(k) for k in keys}, sort_keys=True)
    p = Path(data_root)
    stats = sorted((q.name, q.stat().st_size, int(q.stat().st_mtime)) for q in p.glob("*") if q.is_file())
    return hashlib.sha256(json.dumps([str(p.resolve()), stats]).encode()).hexdigest()


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
    f = executed_dir() / f"{slug}.run.json"
    return json.loads(f.read_text()) if f.is_file() else None


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, default=str))
    os.replace(tmp, path)


def execute(slug: str, profile: str = "book", force: bool = False, **overrides: Any) -> Path:
    """Execute one chapter with papermill unless an identical run is already in the book."""
    import papermill as pm

    params = resolved_parameters(slug, profile, **overrides)
    key = cache_key(slug, profile, params)
    out = executed_dir() / f"{slug}.ipynb"
    rec = run_record(slug)
    if not force and out.is_file() and rec and rec.get("key") == key and rec.get("status") == "ok":
        print(f"[book] {slug}: unchanged, reusing the executed notebook")
        return out
    print(f"[book] {slug}: executing ({profile} profile)")
    tmp = out.with_name(f".{slug}.executing.ipynb")
    started = time.time()
    pm.execute_notebook(
        str(notebook_path(slug)), str(tmp),
        parameters={**profile_parameters(slug, profile), **overrides},
        kernel_name="mmcxr", cwd=str(root() / "notebooks"), progress_bar=True,
        request_save_on_cell_execute=False,
    )
    os.replace(tmp, out)
    _write_json(executed_dir() / f"{slug}.run.json", {
        "slug": slug, "profile": profile, "key": key, "status": "ok", "parameters": params,
        "wall_s": round(time.time() - started, 1), "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
        "versions": env.versions(),
    })
    return out


def generate_data(slugs: list[str]) -> None:
    """Generate each chapter's default synthetic cohort (once per distinct recipe)."""
    from mmcxr.data import resolve_root

    done = set()
    for slug in slugs:
        p = resolved_parameters(slug, "book")
        if p.get("data_root") is not None or "synth_n" not in p:
            continue
        recipe = (p["data_format"], p["synth_n"], p.get("synth_seed", 0), p["synth_image_size"])
        if recipe in done:
            continue
        done.add(recipe)
        path = resolve_root(recipe[0], None, n=recipe[1], seed=recipe[2], image_size=recipe[3])
        print(f"[book] cohort for {slug}: {path}")


def build(extra: list[str] | None = None) -> int:
    missing = [s for s in chapters() if not (executed_dir() / f"{s}.ipynb").is_file()]
    if missing:
        raise SystemExit(f"chapters not executed yet: {missing}; run `make chapters` first")
    cmd = [str(Path(sys.executable).with_name("jupyter-book")), "build", str(root()), "-W",
           "--keep-going", *(extra or [])]
    return subprocess.call(cmd, cwd=root())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mmcxr.book", description=__doc__.split("\n")[0])
    ap.add_argument("command", choices=["data", "execute", "build"])
    ap.add_argument("--only", nargs="*", help="chapter slugs (default: all in _toc.yml)")
    ap.add_argument("--profile", default="book", choices=PROFILES)
    ap.add_argument("--force", action="store_true", help="re-execute even when unchanged")
    args = ap.parse_args(argv)
    slugs = args.only or chapters()
    if args.command == "data":
        generate_data(slugs)
    elif args.command == "execute":
        for slug in slugs:
            execute(slug, args.profile, force=args.force)
    else:
        return build()
    return 0


if __name__ == "__main__":
    sys.exit(main())
