"""The book machinery: the execution cache, the chapter opening and exercises, claims and the
scorecard, and the guard that keeps credentialed data out of the published book.

Cache and guard tests run on a throw-away repository (``book.root`` monkeypatched) with a
recording stand-in for papermill, except one that executes a notebook for real to show that
a provenance record survives papermill and nbformat validation.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import jupytext
import nbformat
import numpy as np
import pytest
import yaml
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from mmcxr import book, chapter_page, papers, profiles, provenance, scorecard
from mmcxr.claims import (
    ClaimsError,
    claims_markdown,
    read_claims,
    validate_claims,
    write_claims,
)

ROOT = Path(__file__).resolve().parents[1]
# symbols, dingbats and pictographs (✅ ❌ ➖ ⚠): an empty box without a colour-emoji font
EMOJI = re.compile("[\u2600-\u27bf\u2b00-\u2bff\U0001f300-\U0001faff]")
PLACEHOLDERS = []

EXAMPLE_CLAIMS = {
    "chapter": "late-fusion-pneumonia",
    "paper": "Chao & Li, Exploring Multimodal Learning ...",
    "profile": "book",
    "data": {"kind": "synthetic", "format": "mimic-cxr-jpg", "root": "/x"},
    "claims": [
        {
            "id": "text-beats-image",
            "claim": "The text model beats the image model",
            "paper_evidence": "Text Full BCE AUROC 0.9995 vs image 0.7735",
            "ours": "text AUROC 0.99 [0.98, 1.00] vs image 0.71 [0.65, 0.77]",
            "holds": True,
        }
    ],
}

TINY = """# %% [markdown]
# # Tiny

# %% tags=["parameters"]
data_root = None
seed = 0
device = "cpu"
output_dir = None

# %%
x = seed + 1
"""


# --- a throw-away repository -------------------------------------------------------------


def _write_pair(nb_dir: Path, text: str) -> None:
    """notebooks/tiny.py and its .ipynb, with the kernelspec papermill needs."""
    (nb_dir / "tiny.py").write_text(text)
    nb = jupytext.reads(text, fmt="py:percent")
    nb.metadata["kernelspec"] = {"name": "mmcxr", "display_name": "mmcxr", "language": "python"}
    jupytext.write(nb, nb_dir / "tiny.ipynb")


@pytest.fixture
def repo(tmp_path: Path, monkeypatch) -> Path:
    """notebooks/tiny.{py,ipynb}, its smoke profile, a one-file mmcxr, a toc."""
    nb_dir = tmp_path / "notebooks"
    (nb_dir / "params" / "tiny").mkdir(parents=True)
    _write_pair(nb_dir, TINY)
    (nb_dir / "params" / "tiny" / "smoke.yaml").write_text("seed: 3\n")
    (tmp_path / "mmcxr").mkdir()
    (tmp_path / "mmcxr" / "a.py").write_text("A = 1\n")
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    monkeypatch.setattr(book, "root", lambda: tmp_path)
    monkeypatch.setattr(profiles, "root", lambda: tmp_path)
    monkeypatch.setenv("MMCXR_HOME", str(tmp_path))
    return tmp_path


@pytest.fixture
def fake_papermill(monkeypatch) -> list[dict]:
    """Stands in for papermill: copies the notebook, adding a provenance record of its
    data_root, and logs each call."""
    import papermill

    calls: list[dict] = []

    def run(src, dst, parameters=None, **kw):
        calls.append({"src": src, "parameters": dict(parameters or {})})
        nb = nbformat.read(src, as_version=4)
        root = (parameters or {}).get("data_root")
        nb.cells.append(_provenance_cell(provenance.describe_source(root, "mimic-cxr")))
        nbformat.write(nb, dst)

    monkeypatch.setattr(papermill, "execute_notebook", run)
    return calls


def _provenance_cell(src: dict) -> nbformat.NotebookNode:
    """A code cell carrying a provenance record exactly as myst_nb.glue stores it."""
    out = new_output(
        "display_data",
        data={"application/papermill.record/text/plain": repr(json.dumps(src))},
        metadata={
            "scrapbook": {
                "name": f"{provenance.GLUE_PREFIX}0",
                "mime_prefix": "application/papermill.record/",
            }
        },
    )
    return new_code_cell("record_provenance(...)", outputs=[out])


def test_cache_reuses_unchanged_and_reexecutes_on_any_change(repo: Path, fake_papermill):
    def run(**kw) -> int:
        book.execute("tiny", **kw)
        return len(fake_papermill)

    assert run() == 1
    assert run() == 1, "nothing changed: reused"
    _write_pair(repo / "notebooks", TINY.replace("seed + 1", "seed + 2"))
    assert run() == 2, "notebook source edited"
    assert run(seed=5) == 3, "a parameter override"
    assert run(seed=5) == 3, "the same override again: reused"
    assert run(profile="smoke") == 4
    (repo / "notebooks" / "params" / "tiny" / "smoke.yaml").write_text("seed: 4\n")
    assert run(profile="smoke") == 5, "profile file edited"
    assert fake_papermill[-1]["parameters"] == {"seed": 4, "profile": "smoke"}
    (repo / "mmcxr" / "a.py").write_text("A = 2\n")
    assert run(profile="smoke") == 6, "mmcxr code edited"
    assert run(profile="smoke", force=True) == 7, "--force"


def test_cache_key_follows_a_real_root_and_the_executed_copy(repo: Path, fake_papermill):
    real = repo / "real"
    real.mkdir()
    (real / "a.csv").write_text("x\n")
    book.execute("tiny", data_root=str(real))
    book.execute("tiny", data_root=str(real))
    assert len(fake_papermill) == 1
    (real / "b.csv").write_text("more\n")
    book.execute("tiny", data_root=str(real))
    assert len(fake_papermill) == 2, "the data root's listing changed"
    out = repo / "book" / "chapters" / "tiny.ipynb"
    out.write_text(out.read_text().replace("Tiny", "Copied in"))
    book.execute("tiny", data_root=str(real))
    assert len(fake_papermill) == 3, "an executed notebook replaced by hand is re-executed"
    (repo / "book" / "chapters" / "tiny.run.json").write_text("{not json")
    book.execute("tiny", data_root=str(real))
    assert len(fake_papermill) == 4, "an unreadable run record is not trusted"


def test_run_record_says_which_data_was_read(repo: Path, fake_papermill):
    book.execute("tiny")
    rec = book.run_record("tiny")
    assert rec["data"] == {"kind": "synthetic", "format": "mimic-cxr", "root": None}
    assert rec["status"] == "ok" and rec["device"] == "cpu" and rec["versions"]["mmcxr"]
    assert rec["started_unix"] <= rec["finished_unix"]
    real = repo / "real"
    real.mkdir()
    book.execute("tiny", data_root=str(real))
    rec = book.run_record("tiny")
    assert rec["data"] == {"kind": "real", "format": "mimic-cxr", "root": str(real.resolve())}
    assert rec["parameters"]["data_root"] == str(real)


@pytest.mark.slow
def test_a_real_kernel_records_provenance_that_the_guard_reads(repo: Path):
    """papermill for real: the glued record must pass nbformat's output validation."""
    real = repo / "real"
    real.mkdir()
    nb_text = TINY + (
        "\n# %%\nimport mmcxr\n"
        "src = mmcxr.provenance.record_provenance(data_root, 'mimic-cxr-jpg')\n"
        "mmcxr.chapter_page.glue_value('n', 3)\n"
    )
    _write_pair(repo / "notebooks", nb_text)
    out = book.execute("tiny", data_root=str(real))
    rec = book.run_record("tiny")
    assert rec["data"] == {"kind": "real", "format": "mimic-cxr-jpg", "root": str(real.resolve())}
    verdict = provenance.assess_notebook(out, rec)
    assert verdict.blocked and "credentialed" in verdict.reasons[0]
    assert len(verdict.reasons) == 1, "notebook and sidecar name one root: one reason"


# --- the guard ---------------------------------------------------------------------------


def _executed(path: Path, *, records=(), data_root=None, injected=True) -> Path:
    cells = [new_markdown_cell("# Chapter")]
    params = new_code_cell("data_root = None\nseed = 0")
    params.metadata["tags"] = ["parameters"]
    cells.append(params)
    if injected and data_root is not None:
        inj = new_code_cell(f"data_root = {str(data_root)!r}")
        inj.metadata["tags"] = ["injected-parameters"]
        cells.append(inj)
    cells += [_provenance_cell(r) for r in records]
    nb = new_notebook(cells=cells)
    if data_root is not None:
        nb.metadata["papermill"] = {"parameters": {"data_root": str(data_root)}}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


def test_describe_source(tmp_path: Path):
    synth, real = tmp_path / "synth", tmp_path / "real"
    synth.mkdir()
    real.mkdir()
    (synth / "synthetic_config.json").write_text("{}")
    assert provenance.describe_source(None, "mimic-cxr")["kind"] == "synthetic"
    assert provenance.describe_source(synth, "mimic-cxr")["kind"] == "synthetic"
    s = provenance.describe_source(real, "MIMIC_CXR_JPG")
    assert (s["kind"], s["format"], s["credentialed"]) == ("real", "mimic-cxr-jpg", True)
    assert provenance.describe_source(real, "openi")["credentialed"] is False
    assert provenance.describe_source(real, "chest-imagenome")["credentialed"] is True
    assert provenance.describe_source(real, None)["credentialed"] is True, "unknown: assume so"
    with pytest.raises(FileNotFoundError, match="missing"):
        provenance.describe_source(tmp_path / "missing", "mimic-cxr")


def test_assess_notebook_catches_real_data_however_it_was_executed(tmp_path: Path):
    real, synth = tmp_path / "real", tmp_path / "synth"
    real.mkdir()
    synth.mkdir()
    (synth / "synthetic_config.json").write_text("{}")
    rec_real = provenance.describe_source(real, "mimic-cxr")
    rec_synth = provenance.describe_source(synth, "mimic-cxr")
    rec_openi = provenance.describe_source(real, "openi")
    cases = {
        "recorded-real": (dict(records=[rec_synth, rec_real]), True),
        "recorded-synthetic": (dict(records=[rec_synth]), False),
        "recorded-public-real": (dict(records=[rec_openi]), False),
        "no-record-real-root": (dict(data_root=real), True),
        "no-record-by-hand": (dict(data_root=real, injected=False), True),
        "no-record-missing-root": (dict(data_root=tmp_path / "elsewhere"), True),
        "no-record-synthetic-root": (dict(data_root=synth), False),
        "no-record-default": (dict(), False),
    }
    for name, (kw, blocked) in cases.items():
        v = provenance.assess_notebook(_executed(tmp_path / f"{name}.ipynb", **kw))
        assert v.blocked is blocked, (name, v.reasons)
        if blocked:
            assert f"{name}.ipynb" in v.reasons[0], "the reason names the notebook"
    clean = _executed(tmp_path / "clean.ipynb", records=[rec_synth])
    v = provenance.assess_notebook(
        clean, {"data": {"kind": "real", "format": "mimic-cxr", "root": "/data"}}
    )
    assert v.blocked, "the run record's evidence counts too"
    garbled = _executed(tmp_path / "garbled.ipynb", records=[rec_synth])
    nb = nbformat.read(garbled, as_version=4)
    nb.cells[-1].outputs[0].data["application/papermill.record/text/plain"] = "'{oops'"
    nbformat.write(nb, garbled)
    assert provenance.assess_notebook(garbled).blocked, "an unreadable record is not trusted"


@pytest.fixture
def book_repo(tmp_path: Path, monkeypatch) -> tuple[Path, list[list[str]]]:
    """A repository with two executed registry chapters and a recording jupyter-book."""
    (tmp_path / "_toc.yml").write_text(
        yaml.safe_dump(
            {
                "format": "jb-book",
                "root": "intro",
                "parts": [
                    {
                        "chapters": [
                            {"file": "book/chapters/multimodal-vae"},
                            {"file": "book/chapters/alignment-interpretability"},
                        ]
                    }
                ],
            }
        )
    )
    monkeypatch.setattr(book, "root", lambda: tmp_path)
    monkeypatch.setenv("MMCXR_HOME", str(tmp_path))
    calls: list[list[str]] = []
    monkeypatch.setattr(book, "_jupyter_book", lambda args: calls.append(args) or 0)
    for slug in ("multimodal-vae", "alignment-interpretability"):
        _executed(
            tmp_path / "book" / "chapters" / f"{slug}.ipynb",
            records=[provenance.describe_source(None, "mimic-cxr")],
        )
    return tmp_path, calls


def test_build_publishes_synthetic_chapters(book_repo):
    repo, calls = book_repo
    assert book.build() == 0
    assert calls and "--path-output" not in calls[0] and "-W" in calls[0]
    assert (repo / "book" / "generated" / "scorecard.md").is_file(), "scorecard made first"


def test_build_refuses_credentialed_chapters_unless_local_only(book_repo, tmp_path: Path):
    repo, calls = book_repo
    real = tmp_path / "physionet"
    real.mkdir()
    _executed(
        repo / "book" / "chapters" / "alignment-interpretability.ipynb",
        records=[provenance.describe_source(real, "chest-imagenome")],
    )
    with pytest.raises(SystemExit) as exc:
        book.build()
    msg = str(exc.value)
    assert "alignment-interpretability.ipynb" in msg and "--local-only" in msg
    assert "multimodal-vae" not in msg
    assert not calls, "nothing was built"
    assert book.main(["check"]) == 1
    assert book.build(local_only=True) == 0
    args = calls[0]
    dest = repo / "_build" / "local-only"
    assert args[args.index("--path-output") + 1] == str(dest)
    assert not any("_build/html" in a for a in args)
    assert "forbid publishing" in (dest / book.LOCAL_ONLY_MARKER).read_text()


# --- claims and the scorecard --------------------------------------------------------------


def test_validate_claims_accepts_the_schema_example():
    assert validate_claims(json.loads(json.dumps(EXAMPLE_CLAIMS))) == EXAMPLE_CLAIMS


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda o: o.pop("paper"), "missing keys \\['paper'\\]"),
        (lambda o: o.update(extra=1), "unknown keys \\['extra'\\]"),
        (lambda o: o.update(profile="huge"), "'profile' must be one of"),
        (lambda o: o["data"].update(kind="mixed"), "data.kind"),
        (lambda o: o.update(claims=[]), "non-empty list"),
        (lambda o: o["claims"][0].update(holds="yes"), "'holds' must be true, false or null"),
        (lambda o: o["claims"][0].update(hold=True), "unknown keys \\['hold'\\]"),
        (lambda o: o["claims"][0].update(ours=""), "'ours' must be a non-empty string"),
        (lambda o: o["claims"][0].update(id="Text Beats"), "lower-case"),
        (lambda o: o["claims"].append(dict(o["claims"][0])), "duplicate id"),
    ],
)
def test_validate_claims_rejects(edit, message):
    obj = json.loads(json.dumps(EXAMPLE_CLAIMS))
    edit(obj)
    with pytest.raises(ClaimsError, match=message):
        validate_claims(obj, "some/claims.json")
    with pytest.raises(ClaimsError, match="some/claims.json"):
        validate_claims(obj, "some/claims.json")


def test_write_claims_round_trip_and_refuses_bad_records(tmp_path: Path):
    data = {**EXAMPLE_CLAIMS["data"], "credentialed": False}
    kw = {k: EXAMPLE_CLAIMS[k] for k in ("chapter", "paper", "profile", "claims")}
    path = write_claims(tmp_path, data=data, **kw)
    assert path == tmp_path / "claims.json"
    assert read_claims(path) == EXAMPLE_CLAIMS, "extra provenance keys are dropped"
    assert [p.name for p in tmp_path.iterdir()] == ["claims.json"], "no temp file left"
    with pytest.raises(ClaimsError):
        write_claims(tmp_path / "bad.json", data=data, **{**kw, "profile": "nope"})
    assert not (tmp_path / "bad.json").exists()
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(ClaimsError, match="broken.json: not valid JSON"):
        read_claims(tmp_path / "broken.json")


def _claims_for(slug: str, holds: list[bool | None]) -> dict:
    return {
        **EXAMPLE_CLAIMS,
        "chapter": slug,
        "claims": [
            {
                "id": f"c{i}",
                "claim": f"claim {i} | with a pipe",
                "paper_evidence": "p",
                "ours": f"ours {i}",
                "holds": h,
            }
            for i, h in enumerate(holds)
        ],
    }


def test_scorecard_page(tmp_path: Path):
    def result(slug: str, claims=None, run=None, mtime=None):
        p = tmp_path / slug / "claims.json"
        if claims is not None:
            p.parent.mkdir()
            p.write_text(json.dumps(claims))
            if mtime is not None:
                os.utime(p, (mtime, mtime))
        return scorecard.load_result(slug, run, p)

    run = {
        "profile": "book",
        "device": "cpu",
        "wall_s": 150.0,
        "finished": "2026-01-01",
        "started_unix": 1000.0,
        "versions": {"torch": "2.13.0"},
    }
    results = [
        result("synthetic-cohort", run={**run, "versions": {"torch": "2.12.0"}}),
        result(
            "late-fusion-pneumonia", _claims_for("late-fusion-pneumonia", [True, False, None]), run
        ),
        result("meems-hidden-stratification", run=run),
        result("multimodal-vae", _claims_for("multimodal-vae", [True]), run, mtime=10.0),
        result("alignment-interpretability", _claims_for("small-data-explanations", [True])),
        result("small-data-explanations", {"chapter": "small-data-explanations"}),
    ]
    md = scorecard.scorecard_markdown(results)
    assert "| 1 of 2 hold (1 not testable) |" in md
    assert "claim 0 \\| with a pipe" in md, "pipes in claims cannot break the table"
    assert md.count('<span class="verdict verdict-holds">holds</span>') == 1
    assert md.count('<span class="verdict verdict-fails">does not hold</span>') == 1
    assert md.count('<span class="verdict verdict-untested">not testable here</span>') == 1
    assert md.count('<span class="verdict verdict-problem">see below</span>') == 3, (
        "stale, misplaced and invalid claims files are each flagged in the summary"
    )
    assert not EMOJI.search(md), "no emoji: they render as empty boxes without an emoji font"
    assert "not yet reproduced" in md and "no claims (no paper)" in md
    assert "predates the chapter's last run" in md, "a stale claims.json is flagged"
    assert "belongs to chapter 'small-data-explanations'" in md
    assert "invalid claims file" in md
    assert "2.5 min" in md and "| cpu |" in md
    assert "2.12.0 (synthetic-cohort); 2.13.0 (late-fusion-pneumonia" in md
    for slug in papers.CHAPTERS:
        assert f"<../chapters/{slug}>" in md


def test_verdicts_are_text_badges_styled_by_the_book_css():
    record = _claims_for("late-fusion-pneumonia", [True, False, None])
    rows = claims_markdown(record).splitlines()[2:]
    verdicts = [row.rsplit("|", 2)[1].strip() for row in rows]
    assert verdicts == [
        '<span class="verdict verdict-holds">holds</span>',
        '<span class="verdict verdict-fails">does not hold</span>',
        '<span class="verdict verdict-untested">not testable here</span>',
    ]
    assert not EMOJI.search(claims_markdown(record))
    sphinx = yaml.safe_load((ROOT / "_config.yml").read_text())["sphinx"]["config"]
    assert "mmcxr.css" in sphinx["html_css_files"], "the book links its CSS"
    css = [ROOT / d / "mmcxr.css" for d in sphinx["html_static_path"]]
    assert any(f.is_file() for f in css), f"mmcxr.css is in a static path: {css}"
    text = next(f for f in css if f.is_file()).read_text()
    for kind in ["holds", "fails", "untested", "problem"]:
        rule = re.search(r"\.verdict-" + kind + r"\s*\{([^}]*)\}", text)
        assert rule and "background-color" in rule.group(1), f"no badge style for {kind}"


def test_scorecard_command_reads_each_chapters_output_dir(book_repo):
    repo, _ = book_repo
    write_claims(
        repo / "outputs" / "multimodal-vae",
        data={"kind": "synthetic", "format": "mimic-cxr", "root": None},
        **{k: v for k, v in _claims_for("multimodal-vae", [True, True]).items() if k != "data"},
    )
    assert book.main(["scorecard"]) == 0
    md = (repo / "book" / "generated" / "scorecard.md").read_text()
    assert "| 2 of 2 hold |" in md and "not yet reproduced" in md


# --- the chapter opening, glue, exercises ------------------------------------------------


def test_header_names_paper_parameters_and_rerun_commands():
    params = {"data_root": None, "seed": 7, "device": "auto", "output_dir": None}
    md = chapter_page.header_markdown("late-fusion-pneumonia", params)
    ch = papers.chapter("late-fusion-pneumonia")
    for text in (ch.paper_title, "Chao & Li", ch.question, *ch.reproduces, ch.paper_file):
        assert text in md
    assert "| `seed` | `7` (changed) | `0` |" in md
    assert "| `device` | `'auto'` | `'auto'` |" in md
    assert "profile <code>custom</code>" in md, "no profile passed in: custom"
    assert md.count("| `seed` |") == 1, "every parameter listed once, folded"
    assert "<details>" in md and "</details>" in md
    assert "papermill late-fusion-pneumonia.ipynb out.ipynb -k mmcxr\n" in md
    assert "-f params/late-fusion-pneumonia/full.yaml" in md
    assert "-p data_root /data/physionet.org/files/mimic-cxr-jpg/2.0.0" in md
    assert ":::{warning}" in md, "credentialed data: the keep-it-local warning"
    assert ":::{warning}" not in chapter_page.header_markdown("small-data-explanations", params)
    with pytest.raises(KeyError, match="unknown chapter"):
        chapter_page.header_markdown("no-such-chapter", params)


def test_executor_passes_the_profile_and_hides_the_parameters_cells(repo: Path):
    """A real papermill run: the chapter learns its profile from the executor (it never reads
    its profile files), and the executed notebook's parameters cells are removed from the page."""
    _write_pair(
        repo / "notebooks",
        TINY.replace("output_dir = None", 'output_dir = None\nprofile = "custom"')
        + '\n# %%\nprint("profile:", profile, "seed:", seed)\n',
    )
    out = book.execute("tiny", "smoke")
    nb = nbformat.read(out, as_version=4)
    printed = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
    assert "profile: smoke seed: 3" in printed
    tagged = [c.metadata.get("tags", []) for c in nb.cells]
    hidden = [t for t in tagged if "parameters" in t or "injected-parameters" in t]
    assert len(hidden) == 2 and all("remove-cell" in t for t in hidden)
    assert book.run_record("tiny")["parameters"]["profile"] == "smoke"
    assert profiles.resolved_parameters("tiny", "book")["profile"] == "book"


def test_exercises_checks_parameters_and_writes_the_command():
    params = {"seed": 0, "device": "auto", "name": "x"}
    md = chapter_page.exercises_markdown(
        "multimodal-vae",
        [
            chapter_page.Exercise("Q1?", parameter="seed", value=1),
            {"question": "Q2?", "parameter": "name", "value": "1"},
            chapter_page.Exercise("Q3?", profile="smoke"),
            chapter_page.Exercise("Q4?"),
        ],
        params,
    )
    assert "1. Set `seed` to `1`. Q1?" in md
    assert "exercise-1.ipynb -k mmcxr -p seed 1" in md
    assert "-y '{name: '\"'\"'1'\"'\"'}'" in md, "a numeric-looking string stays a string"
    assert "-f params/multimodal-vae/smoke.yaml" in md
    assert "4. Q4?" in md and "exercise-4" not in md
    with pytest.raises(ValueError, match="'sede' is not a parameter of multimodal-vae"):
        chapter_page.exercises_markdown(
            "multimodal-vae", [chapter_page.Exercise("?", "sede", 1)], params
        )
    with pytest.raises(ValueError, match="profile must be"):
        chapter_page.exercises_markdown(
            "multimodal-vae", [chapter_page.Exercise("?", profile="book")], params
        )


def test_glue_value_formats_and_converts_numpy(monkeypatch):
    import myst_nb

    glued = []
    monkeypatch.setattr(myst_nb, "glue", lambda n, v, display: glued.append((n, v, display)))
    chapter_page.glue_value("auroc", np.float64(0.91234), ".2f")
    chapter_page.glue_value("n", np.int64(12))
    assert glued == [("auroc", "0.91", False), ("n", 12, False)]
    assert type(glued[1][1]) is int
    with pytest.raises(ValueError, match="no ':'"):
        chapter_page.glue_value("a:b", 1)


# --- the book's own chapters --------------------------------------------------------------


def test_registry_covers_the_toc_and_the_papers():
    assert sorted(book.chapters()) == sorted(papers.CHAPTERS)
    shared = ROOT.parent / "shared" / "papers"
    for ch in papers.CHAPTERS.values():
        if ch.paper_file and shared.is_dir():
            assert (shared / ch.paper_file).is_file(), ch.paper_file
        assert all(papers.dataset(f) for f in ch.formats), ch.formats
    toc = (ROOT / "_toc.yml").read_text()
    assert "book/generated/scorecard" in toc and "book/course" in toc


@pytest.mark.parametrize("slug", PLACEHOLDERS)
def test_placeholders_open_with_the_header_and_end_with_exercises(slug: str):
    nb = jupytext.read(ROOT / "notebooks" / f"{slug}.py")
    code = [
        c.source
        for c in nb.cells
        if c.cell_type == "code" and "parameters" not in c.metadata.get("tags", [])
    ]
    assert f'PARAMS = page.open_chapter("{slug}", globals(), common())' in code[0]
    assert any(c.cell_type == "markdown" and c.source.startswith("## Exercises") for c in nb.cells)
    assert f'page.exercises("{slug}"' in code[-1]


def test_chapters_run_two_at_a_time_longest_first_with_the_cores_shared(
    repo: Path, monkeypatch, capsys
):
    """execute_parallel: at most ``jobs`` chapter processes at once, the one that took longest
    last time first, each with its share of the cores; a failure is counted and its log's
    end printed, and the others still run."""
    import sys

    for slug, wall in (("a", 5.0), ("b", 50.0), ("c", 20.0)):
        (book.executed_dir() / f"{slug}.run.json").write_text(json.dumps({"wall_s": wall}))
    spans = repo / "spans"
    script = (
        "import os, sys, time; t = time.time(); time.sleep(0.6); "
        f"open({str(spans)!r} + '-' + sys.argv[1], 'w').write("
        "f\"{t} {time.time()} {os.environ['OMP_NUM_THREADS']}\"); "
        "print('the end of', sys.argv[1]); sys.exit(3 if sys.argv[1] == 'c' else 0)"
    )
    monkeypatch.setattr(
        book, "_child_command", lambda slug, extra: [sys.executable, "-c", script, slug]
    )
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert book.execute_parallel(["a", "b", "c"], jobs=2) == 1
    got = {s: Path(f"{spans}-{s}").read_text().split() for s in "abc"}
    start = {s: float(v[0]) for s, v in got.items()}
    end = {s: float(v[1]) for s, v in got.items()}
    assert {v[2] for v in got.values()} == {"2"}, "4 cores, 2 jobs: 2 threads each"
    out = capsys.readouterr().out
    started = [out.index(f"[book] {s}: started") for s in "bca"]
    assert started == sorted(started), "longest first"
    assert start["a"] >= min(end["b"], end["c"]) - 0.05, "never three at once"
    assert "c: FAILED" in out and "the end of c" in out and "failed: c" in out
    assert (repo / "_build" / "logs" / "a.log").read_text().strip() == "the end of a"
