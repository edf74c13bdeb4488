"""Publishing: the built book reaches a remote's gh-pages branch, credentialed data never
does, and the GitHub workflow and the Makefile agree on how the book is built and tested.

Pushes go to a local bare repository, so these tests need git but no network.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml
from nbformat.v4 import new_code_cell, new_notebook, new_output

from mmcxr import provenance, publish

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "book.yml"


def _git(*args: str, cwd: Path | None = None) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, text=True, capture_output=True, check=True
    ).stdout


@pytest.fixture
def bare(tmp_path: Path) -> Path:
    remote = tmp_path / "remote.git"
    _git("init", "--quiet", "--bare", str(remote))
    return remote


def _refs(remote: Path) -> list[str]:
    return _git("--git-dir", str(remote), "for-each-ref", "--format=%(refname)").split()


def _tree(remote: Path, ref: str = "gh-pages") -> set[str]:
    return set(_git("--git-dir", str(remote), "ls-tree", "-r", "--name-only", ref).split())


def _chapter(path: Path, source: dict) -> Path:
    """An executed chapter whose outputs carry ``source`` as record_provenance glues it."""
    out = new_output(
        "display_data",
        data={"application/papermill.record/text/plain": repr(json.dumps(source))},
        metadata={
            "scrapbook": {
                "name": f"{provenance.GLUE_PREFIX}0",
                "mime_prefix": "application/papermill.record/",
            }
        },
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(new_notebook(cells=[new_code_cell("opening()", outputs=[out])]), path)
    return path


def _real_mimic(tmp_path: Path) -> dict:
    """A real (no synthetic marker) MIMIC-CXR root: credentialed."""
    root = tmp_path / "mimic-cxr"
    root.mkdir(exist_ok=True)
    return provenance.describe_source(root, "mimic-cxr")


SYNTHETIC = provenance.describe_source(None, "mimic-cxr")


def _site(tmp_path: Path, source: dict | None = SYNTHETIC, name: str = "html") -> Path:
    """A built book as Jupyter Book lays it out, its chapter's notebook under _sources/."""
    html = tmp_path / name
    (html / "_static").mkdir(parents=True)
    (html / "index.html").write_text("<html>the book</html>")
    (html / "_static" / "book.css").write_text("body {}")
    (html / "book" / "chapters").mkdir(parents=True)
    (html / "book" / "chapters" / "demo.html").write_text("<html>demo</html>")
    if source is not None:
        _chapter(html / "_sources" / "book" / "chapters" / "demo.ipynb", source)
    return html


@pytest.fixture
def chapters(tmp_path: Path) -> Path:
    d = tmp_path / "chapters"
    d.mkdir()
    return d


def test_publish_pushes_the_tree_with_nojekyll_to_gh_pages(tmp_path, bare, chapters, capsys):
    html = _site(tmp_path)
    rc = publish.main(["--remote", str(bare), "--html", str(html), "--chapters", str(chapters)])
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert _refs(bare) == ["refs/heads/gh-pages"]
    assert _tree(bare) == {
        ".nojekyll",
        "index.html",
        "_static/book.css",
        "book/chapters/demo.html",
        "_sources/book/chapters/demo.ipynb",
    }
    head = _git("--git-dir", str(bare), "rev-parse", "gh-pages").strip()
    assert head in out.out, "the CLI reports the commit it pushed"


@pytest.mark.slow
def test_runs_as_a_module(tmp_path, chapters):
    """`python -m mmcxr.publish` is what the Makefile calls; a refusal is its exit status."""
    cmd = [sys.executable, "-m", "mmcxr.publish", "--check", "--chapters", str(chapters)]
    ok = subprocess.run([*cmd, "--html", str(_site(tmp_path))], capture_output=True, text=True)
    assert ok.returncode == 0 and "may be published" in ok.stdout, ok.stderr
    bad = _site(tmp_path, _real_mimic(tmp_path), name="credentialed")
    refused = subprocess.run([*cmd, "--html", str(bad)], capture_output=True, text=True)
    assert refused.returncode == 1 and "real credentialed data" in refused.stderr


def test_republishing_extends_the_remote_history(tmp_path, bare, chapters):
    html = _site(tmp_path)
    first = publish.publish(str(bare), html, chapters)
    (html / "index.html").write_text("<html>the book, again</html>")
    (html / "_static" / "book.css").unlink()
    second = publish.publish(str(bare), html, chapters)
    log = _git("--git-dir", str(bare), "rev-list", "gh-pages").split()
    assert log == [second, first], "a fast-forward on top of what was published"
    assert "_static/book.css" not in _tree(bare), "the branch mirrors the tree, deletions too"
    shown = _git("--git-dir", str(bare), "show", "gh-pages:index.html")
    assert shown == "<html>the book, again</html>"


def test_credentialed_chapter_in_the_tree_is_refused_and_nothing_pushed(
    tmp_path, bare, chapters, capsys
):
    html = _site(tmp_path, _real_mimic(tmp_path))
    with pytest.raises(publish.PublishRefused, match="real credentialed data"):
        publish.publish(str(bare), html, chapters)
    rc = publish.main(["--remote", str(bare), "--html", str(html), "--chapters", str(chapters)])
    assert rc == 1
    assert "refusing to publish" in capsys.readouterr().err
    assert publish.main(["--check", "--html", str(html), "--chapters", str(chapters)]) == 1
    assert _refs(bare) == [], "nothing was pushed"


def test_sidecar_of_a_published_chapter_is_evidence_too(tmp_path, bare, chapters):
    """A tree without notebook copies is judged by the executed chapters its pages came
    from, with their .run.json, exactly what `make book` checks before building."""
    html = _site(tmp_path, source=None)
    _chapter(chapters / "demo.ipynb", SYNTHETIC)
    assert publish.refusals(html, chapters) == [], "synthetic notebook, no sidecar: publishable"
    sidecar = {"data_sources": [_real_mimic(tmp_path)]}
    (chapters / "demo.run.json").write_text(json.dumps(sidecar))
    with pytest.raises(publish.PublishRefused, match="credentialed"):
        publish.publish(str(bare), html, chapters)
    assert _refs(bare) == []


def test_unpublished_chapters_do_not_block(tmp_path, chapters):
    """A credentialed chapter in book/chapters whose page the tree lacks is not published."""
    html = _site(tmp_path)
    _chapter(chapters / "elsewhere.ipynb", _real_mimic(tmp_path))
    assert publish.refusals(html, chapters) == []
    (html / "book" / "chapters" / "elsewhere.html").write_text("<html></html>")
    assert publish.refusals(html, chapters), "once its page is in the tree, it blocks"


def test_local_only_build_is_refused(tmp_path, bare, chapters):
    dest = tmp_path / "_build" / "local-only"
    html = _site(dest, name="_build/html")
    (dest / publish.LOCAL_ONLY_MARKER).write_text("do not publish")
    with pytest.raises(publish.PublishRefused, match="local-only"):
        publish.publish(str(bare), html, chapters)
    assert _refs(bare) == []


def test_marker_name_matches_the_builder():
    from mmcxr import book

    assert publish.LOCAL_ONLY_MARKER == book.LOCAL_ONLY_MARKER  # one name, in provenance


@pytest.mark.parametrize("remote", ["", "   "])
def test_empty_remote_is_refused(tmp_path, chapters, remote, capsys):
    html = _site(tmp_path)
    assert publish.main(["--remote", remote, "--html", str(html), "--chapters", str(chapters)])
    assert "no remote given" in capsys.readouterr().err


def test_missing_index_is_refused(tmp_path, bare, chapters):
    html = _site(tmp_path)
    (html / "index.html").unlink()
    with pytest.raises(publish.PublishRefused, match="index.html is missing"):
        publish.publish(str(bare), html, chapters)
    assert _refs(bare) == []


def test_unreachable_remote_fails_cleanly(tmp_path, chapters):
    html = _site(tmp_path)
    with pytest.raises(RuntimeError, match="cannot reach"):
        publish.publish(str(tmp_path / "no-such-repo.git"), html, chapters)


def test_write_config_fills_repository_and_launch_buttons_only(tmp_path):
    out = publish.write_config(
        tmp_path / "cfg" / "_config.yml",
        "https://github.com/example/mmcxr",
        repo_branch="trunk",
        binderhub_url="https://mybinder.org",
    )
    base = yaml.safe_load((ROOT / "_config.yml").read_text())
    cfg = yaml.safe_load(out.read_text())
    assert cfg["repository"] == {
        "url": "https://github.com/example/mmcxr",
        "branch": "trunk",
        "path_to_book": "",
    }
    assert cfg["launch_buttons"]["binderhub_url"] == "https://mybinder.org"
    assert cfg["html"]["use_repository_button"] is True
    changed = {"repository", "html", "launch_buttons"}
    assert {k: v for k, v in cfg.items() if k not in changed} == {
        k: v for k, v in base.items() if k not in changed
    }, "every other setting is carried over unchanged"
    assert cfg["html"]["use_download_button"] == base["html"]["use_download_button"]
    with pytest.raises(ValueError, match="empty"):
        publish.write_config(tmp_path / "x.yml", " ", binderhub_url="https://mybinder.org")


def test_config_in_the_repository_builds_offline():
    """_config.yml itself names no repository or launch service: the book builds anywhere."""
    cfg = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert not (cfg.get("repository") or {}).get("url")
    buttons = cfg["launch_buttons"]
    assert not any(buttons.get(k) for k in ("binderhub_url", "jupyterhub_url", "colab_url"))


def _make_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^([A-Za-z][\w.-]*)\s*:(?!=)", text, flags=re.MULTILINE))


def _make_calls(run: str) -> list[str]:
    return re.findall(r"\bmake\s+([A-Za-z][\w.-]*)", run)


def _workflow() -> dict:
    wf = yaml.safe_load(WORKFLOW.read_text())
    wf["on"] = wf.pop(True, wf.get("on"))  # YAML 1.1 reads the key `on` as true
    return wf


def _runs(job: dict) -> str:
    return "\n".join(s.get("run", "") for s in job["steps"])


def test_workflow_calls_only_targets_the_makefile_defines():
    wf = _workflow()
    targets = _make_targets()
    called = {t for job in wf["jobs"].values() for t in _make_calls(_runs(job))}
    assert {"book", "test"} <= called
    assert called <= targets, f"undefined make targets: {sorted(called - targets)}"


def test_workflow_tests_pull_requests_and_deploys_the_built_book():
    wf = _workflow()
    assert "pull_request" in wf["on"] and "push" in wf["on"]
    jobs = wf["jobs"]
    tests = [j for j in jobs.values() if "test" in _make_calls(_runs(j))]
    assert any("pull_request" in j.get("if", "") for j in tests), "make test on pull requests"
    (build,) = [j for j in jobs.values() if "book" in _make_calls(_runs(j))]
    guard = build.get("if", "").replace(" ", "")
    assert guard == "github.event_name!='pull_request'", "builds and deploys only from pushes"
    uses = [s.get("uses", "") for s in build["steps"]]
    upload = build["steps"][next(i for i, u in enumerate(uses) if "upload-pages-artifact" in u)]
    assert upload["with"]["path"] == "_build/html"
    calls = _make_calls(_runs(build))
    assert calls.index("book") < calls.index("publish-check"), "the guard runs on what is built"
    (deploy,) = [
        j for j in jobs.values() if any("deploy-pages" in s.get("uses", "") for s in j["steps"])
    ]
    build_name = next(k for k, j in jobs.items() if j is build)
    assert build_name in (
        [deploy["needs"]] if isinstance(deploy["needs"], str) else deploy["needs"]
    )
    assert deploy["permissions"] == {"pages": "write", "id-token": "write"}
    assert deploy["environment"]["name"] == "github-pages"
    assert wf["permissions"] == {"contents": "read"}, "nothing else may write"


def _dry_run(*args: str) -> str:
    return subprocess.run(
        ["make", "-n", "--no-print-directory", *args],
        cwd=ROOT,
        text=True,
        capture_output=True,
        check=True,
    ).stdout


def test_make_publish_and_test_fast_recipes():
    out = _dry_run("publish", "REMOTE=git@example.org:me/book.git")
    assert '-m mmcxr.publish --remote "git@example.org:me/book.git"' in out
    fast = _dry_run("test-fast")
    assert re.search(r"pytest .*-m ['\"]not slow and not browser['\"]", fast)
    cfg = _dry_run("book", "BOOK_REPO_URL=https://github.com/example/mmcxr")
    assert "-m mmcxr.publish --write-config _build/config/_config.yml" in cfg
    assert '--repo-url "https://github.com/example/mmcxr"' in cfg
    assert "--config _build/config/_config.yml" in cfg
    assert "--config" not in _dry_run("book"), "no override: the repository's _config.yml"
