"""Publish the built book to a git remote's ``gh-pages`` branch, and never credentialed data.

``make book`` refuses to build ``_build/html`` from chapters executed on credentialed data
(:mod:`mmcxr.provenance`), but a publishable tree can go stale or be assembled by hand, and
pushing is the step that cannot be undone. So publishing asks the same question again, of
what is about to be pushed: every executed notebook inside the tree (Jupyter Book copies each
chapter's notebook into ``_sources/``) and every executed chapter in ``book/chapters/`` whose
page the tree holds, each with its ``.run.json`` sidecar, goes through
:func:`mmcxr.provenance.assess_notebook`, the check the build uses. A tree built with
``--local-only`` is refused by its marker file whatever its notebooks say.

The push itself is Jupyter Book's documented route, ``ghp-import -n -p`` (``-n`` writes
``.nojekyll`` so that GitHub Pages serves ``_static/``). It runs in a throw-away repository
that first fetches the remote's ``gh-pages``, so the user's checkout gains no branch, the
remote keeps its history, and a concurrent publish makes the push fail instead of being
overwritten (no ``--force``).

The book's ``repository.url`` and launch buttons stay empty in ``_config.yml`` because the
book must build offline and from any fork; :func:`write_config` writes a copy of
``_config.yml`` with them filled in, for ``jupyter-book build --config`` (``make book
BOOK_REPO_URL=...``).

Usage::

    python -m mmcxr.publish --remote URL [--html DIR] [--chapters DIR] [--branch gh-pages]
    python -m mmcxr.publish --check [--html DIR] [--chapters DIR]
    python -m mmcxr.publish --write-config OUT --repo-url URL [--repo-branch main]
        [--binderhub-url URL] [--jupyterhub-url URL] [--colab-url URL]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from mmcxr import env, provenance

PAGES_BRANCH = "gh-pages"
LOCAL_ONLY_MARKER = provenance.LOCAL_ONLY_MARKER


class PublishRefused(RuntimeError):
    """Publishing was refused before anything was pushed; the message says why."""


def _root() -> Path:
    """The checkout (editable install), else the current directory (a plain install)."""
    return env.repo_root() or Path.cwd()


def default_html() -> Path:
    """Where ``make book`` writes the publishable book."""
    return _root() / "_build" / "html"


def default_chapters() -> Path:
    """Where ``make chapters`` writes the executed notebooks and their sidecars."""
    return _root() / "book" / "chapters"


def _sidecar(chapters: Path | None, stem: str) -> dict[str, Any] | None:
    """A chapter's ``.run.json``, read as the build reads it (absent or unreadable: None)."""
    f = chapters / f"{stem}.run.json" if chapters else None
    if f is None or not f.is_file():
        return None
    try:
        return json.loads(f.read_text())
    except json.JSONDecodeError:
        return None


def assess_tree(html: Path, chapters: Path | None = None) -> list[provenance.Assessment]:
    """Assess everything a push of ``html`` would publish, as the build's guard does.

    The notebooks inside the tree are what readers download; the executed chapters in
    ``chapters`` are what the tree's pages were rendered from (the only evidence when a tree
    holds no notebook copies). Sidecars add evidence and never remove any.
    """
    html = Path(html)
    verdicts = [
        provenance.assess_notebook(nb, _sidecar(chapters, nb.stem))
        for nb in sorted(html.rglob("*.ipynb"))
    ]
    if chapters and chapters.is_dir():
        pages = {p.stem for p in html.rglob("*.html")}
        verdicts += [
            provenance.assess_notebook(nb, _sidecar(chapters, nb.stem))
            for nb in sorted(chapters.glob("*.ipynb"))
            if not nb.name.startswith(".") and nb.stem in pages
        ]
    return verdicts


def refusals(html: Path, chapters: Path | None = None) -> list[str]:
    """Why ``html`` may not be published; empty when it may."""
    html = Path(html)
    if not (html / "index.html").is_file():
        return [f"{html / 'index.html'} is missing: build the book first (`make book`)"]
    reasons = [
        f"{d / LOCAL_ONLY_MARKER}: this is a --local-only build, which must never be published"
        for d in (html, *html.resolve().parents)
        if (d / LOCAL_ONLY_MARKER).is_file()
    ]
    return reasons + [r for a in assess_tree(html, chapters) if a.blocked for r in a.reasons]


def _git(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run git; with ``check``, a failure is a RuntimeError carrying git's own message."""
    done = subprocess.run(["git", *args], cwd=cwd, text=True, capture_output=True)
    if check and done.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed:\n{done.stderr.strip()}")
    return done


def _resolve_remote(remote: str) -> str:
    """A remote's name in the checkout (``origin``) becomes its URL; anything else is a URL."""
    root = env.repo_root()
    if root is not None and "/" not in remote and ":" not in remote:
        named = _git(root, "remote", "get-url", remote, check=False)
        if named.returncode == 0 and named.stdout.strip():
            return named.stdout.strip()
    return remote


def _source_commit() -> str:
    """The checkout's commit, for the gh-pages commit message (``unknown`` outside git)."""
    root = env.repo_root()
    if root is None:
        return "unknown"
    head = _git(root, "rev-parse", "--short", "HEAD", check=False)
    return head.stdout.strip() if head.returncode == 0 else "unknown"


def publish(
    remote: str,
    html: Path | None = None,
    chapters: Path | None = None,
    branch: str = PAGES_BRANCH,
) -> str:
    """Push ``html`` to ``remote``'s ``branch`` with ghp-import; return the pushed commit.

    Raises :class:`PublishRefused` (nothing pushed) for an empty remote, a missing
    ``index.html``, a local-only build or credentialed data, and :class:`RuntimeError` when
    git or ghp-import fails.
    """
    if not remote or not remote.strip():
        raise PublishRefused("no remote given: `make publish REMOTE=<git url or remote name>`")
    html = Path(html) if html else default_html()
    chapters = chapters if chapters is not None else default_chapters()
    reasons = refusals(html, chapters)
    if reasons:
        raise PublishRefused(
            f"refusing to publish {html}:\n  " + "\n  ".join(reasons) + "\nThe data use "
            "agreements forbid publishing images or report text from credentialed data; "
            "re-execute those chapters on synthetic data and rebuild (`make book`)."
        )
    url = _resolve_remote(remote.strip())
    with tempfile.TemporaryDirectory(prefix="mmcxr-publish-") as tmp:
        scratch = Path(tmp)
        _git(scratch, "init", "--quiet", "--initial-branch=mmcxr-publish-scratch")
        ref = f"refs/heads/{branch}"
        found = _git(scratch, "ls-remote", "--exit-code", url, ref, check=False)
        if found.returncode not in (0, 2):  # 2: reachable, but no such branch yet
            raise RuntimeError(f"cannot reach {url}:\n{found.stderr.strip()}")
        if found.returncode == 0:  # build on the published history, so the push fast-forwards
            _git(scratch, "fetch", "--quiet", url, f"+{ref}:{ref}")
        ident = {  # ghp-import commits as the configured user, or as these when there is none
            var: os.environ.get(var)
            or _git(scratch, "config", key, check=False).stdout.strip()
            or fallback
            for var, key, fallback in (
                ("GIT_COMMITTER_NAME", "user.name", "mmcxr publish"),
                ("GIT_COMMITTER_EMAIL", "user.email", "mmcxr-publish@localhost"),
            )
        }
        cmd = [sys.executable, "-m", "ghp_import", "--no-jekyll", "--push", "--remote", url]
        cmd += ["--branch", branch, "--message", f"Publish the book from {_source_commit()}"]
        done = subprocess.run(
            [*cmd, str(html.resolve())],
            cwd=scratch,
            env={**os.environ, **ident},
            text=True,
            capture_output=True,
        )
        if done.returncode != 0:
            raise RuntimeError(f"ghp-import failed:\n{(done.stderr or done.stdout).strip()}")
        local = _git(scratch, "rev-parse", "--verify", "--quiet", ref, check=False).stdout.strip()
        pushed = _git(scratch, "ls-remote", url, ref).stdout.split()
    if not local or not pushed or pushed[0] != local:  # ghp-import prints, not fails, on these
        raise RuntimeError(f"{url} {branch} is {pushed[:1]} after the push, expected {local!r}")
    return local


def write_config(
    out: Path,
    repo_url: str,
    repo_branch: str = "main",
    binderhub_url: str = "",
    jupyterhub_url: str = "",
    colab_url: str = "",
    base: Path | None = None,
) -> Path:
    """Write ``_config.yml`` with the repository and launch buttons filled in, to ``out``.

    ``jupyter-book build --config OUT`` replaces ``_config.yml`` rather than merging, so the
    copy carries every other setting unchanged. The repository and issues buttons are turned
    on; the edit button stays off because ``book/chapters/`` is generated, not committed.
    """
    if not repo_url.strip():
        raise ValueError("repository URL is empty; launch buttons need one too")
    cfg = yaml.safe_load(Path(base or _root() / "_config.yml").read_text())
    cfg["repository"] = {"url": repo_url.strip(), "branch": repo_branch, "path_to_book": ""}
    cfg.setdefault("html", {}).update(use_repository_button=True, use_issues_button=True)
    cfg.setdefault("launch_buttons", {}).update(
        binderhub_url=binderhub_url, jupyterhub_url=jupyterhub_url, colab_url=colab_url
    )
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    header = (
        "# Generated by `python -m mmcxr.publish --write-config` from _config.yml; edit that.\n"
    )
    out.write_text(header + yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m mmcxr.publish", description=__doc__.split("\n")[0])
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--remote", help="git URL (or a remote's name in this checkout) to push to")
    mode.add_argument("--check", action="store_true", help="only run the guard; push nothing")
    mode.add_argument("--write-config", type=Path, metavar="OUT", help="write a _config.yml copy")
    ap.add_argument("--html", type=Path, help="the built book (default: _build/html)")
    ap.add_argument("--chapters", type=Path, help="executed chapters (default: book/chapters)")
    ap.add_argument("--branch", default=PAGES_BRANCH, help="branch to publish to")
    ap.add_argument("--repo-url", default="", help="repository.url for --write-config")
    ap.add_argument("--repo-branch", default="main", help="repository.branch for --write-config")
    ap.add_argument("--binderhub-url", default="", help="launch_buttons.binderhub_url")
    ap.add_argument("--jupyterhub-url", default="", help="launch_buttons.jupyterhub_url")
    ap.add_argument("--colab-url", default="", help="launch_buttons.colab_url")
    args = ap.parse_args(argv)
    try:
        if args.write_config:
            out = write_config(
                args.write_config,
                args.repo_url,
                args.repo_branch,
                args.binderhub_url,
                args.jupyterhub_url,
                args.colab_url,
            )
            print(f"[publish] wrote {out} (build with `jupyter-book build --config {out}`)")
        elif args.check:
            html = args.html or default_html()
            reasons = refusals(html, args.chapters or default_chapters())
            if reasons:
                raise PublishRefused(f"{html} may not be published:\n  " + "\n  ".join(reasons))
            print(f"[publish] {html} may be published")
        else:
            commit = publish(args.remote, args.html, args.chapters, args.branch)
            print(f"[publish] pushed {commit} to {args.remote} {args.branch}")
    except (PublishRefused, ValueError, RuntimeError) as exc:
        print(f"[publish] {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
