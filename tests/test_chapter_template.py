"""The pieces every chapter is built from: its opening (parameters checked, listed once), the
method's code and model summary on the page, the claims engine, ``metrics.json``, and the
import direction between what notebooks call and what builds the book."""

from __future__ import annotations

import ast
import json
import math
from pathlib import Path

import pandas as pd
import pytest
import torch
from torch import nn

from mmcxr import chapter_page, claims, results
from mmcxr.models import model_summary
from mmcxr.params import Param, ParameterError, common

ROOT = Path(__file__).resolve().parents[1]


# --- the opening -------------------------------------------------------------------------


def test_open_chapter_validates_and_writes_checked_values_back(monkeypatch):
    shown = []
    monkeypatch.setattr(chapter_page, "_display_markdown", shown.append)
    ns = {"data_root": None, "seed": "3", "device": "cpu", "output_dir": None}
    ns |= {"profile": "smoke", "layers": "[a, b]", "In": [], "_hidden": 1}
    spec = {**common(), "layers": Param("list", items="str")}
    params = chapter_page.open_chapter("multimodal-vae", ns, spec)
    assert params["layers"] == ["a", "b"] and ns["layers"] == ["a", "b"], "cells below see it"
    assert ns["seed"] == 3 and "In" not in params and "_hidden" not in params
    md = shown[0]
    assert "profile <code>smoke</code>" in md and md.count("| `layers` |") == 1
    assert "| versions |" in md and "torch" in md, "the environment, in the same folded block"
    with pytest.raises(ParameterError, match="seed"):
        chapter_page.open_chapter("multimodal-vae", {**ns, "seed": -1}, spec)


def _late_fusion_kind(kind: str) -> str:
    return f"a {kind} classifier"


def test_source_markdown_shows_the_code_that_runs_with_its_place():
    from mmcxr.models import Classifier

    md = chapter_page.source_markdown(_late_fusion_kind, Classifier.forward)
    assert md.count("```python") == 2
    assert "tests/test_chapter_template.py" in md and "def _late_fusion_kind" in md
    lines, start = __import__("inspect").getsourcelines(Classifier.forward)
    assert f"`mmcxr/models/fusion.py` lines {start}-{start + len(lines) - 1}" in md
    assert "\ndef forward(self" in md, "a method is dedented to read as code"


# --- the model summary -------------------------------------------------------------------


class _Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(4, 8), nn.ReLU())
        self.head = nn.Linear(8, 1)

    def forward(self, batch):
        return self.head(self.encoder(batch["x"])).squeeze(1)


def test_model_summary_counts_parameters_shapes_and_frozen_parts():
    model = _Tiny().train()
    for p in model.encoder.parameters():
        p.requires_grad = False
    table = model_summary(model, {"x": torch.zeros(5, 4)}, depth=2)
    rows = table.set_index("layer")
    assert rows.loc["encoder", "output shape"] == "5x8"
    assert rows.loc["encoder.0", "parameters"] == 4 * 8 + 8
    assert rows.loc["encoder", "frozen"] == 40 and rows.loc["encoder", "trainable"] == 0
    assert rows.loc["head", "trainable"] == 9
    assert rows.loc["total", "parameters"] == 49 and rows.loc["total", "output shape"] == "5"
    assert model.training, "the model is put back in its former mode"
    assert "encoder.0" not in set(model_summary(model, {"x": torch.zeros(1, 4)}, depth=1).layer)


# --- the claims engine -------------------------------------------------------------------

TABLE = pd.DataFrame(
    {
        "model": ["a", "b", "b"],
        "shuffled": ["none", "none", "x"],
        "auroc": [0.9, 0.7, math.nan],
        "auroc_lo": [0.85, 0.6, math.nan],
        "auroc_hi": [0.95, 0.8, math.nan],
    }
)


def _a_beats_b(t: claims.ResultTable, tol: float) -> claims.Verdict:
    a, b = t.value("auroc", model="a"), t.value("auroc", model="b")
    return claims.Verdict(a.x > b.x + tol, f"a {a} vs b {b}")


def test_result_table_looks_up_with_intervals_and_defaults():
    t = claims.ResultTable(TABLE, ("model", "shuffled"), defaults={"shuffled": "none"})
    assert str(t.value("auroc", model="a")) == "0.900 [0.850, 0.950]"
    with pytest.raises(claims.Missing, match="undefined"):
        t.value("auroc", model="b", shuffled="x")
    with pytest.raises(claims.Missing, match="no run"):
        t.value("auroc", model="c")
    with pytest.raises(ValueError, match="unknown"):
        t.value("auroc", model="a", loss="bce")
    assert t.combos(model="b") == [("b", "none"), ("b", "x")]


def test_claims_are_decided_on_both_tables_and_missing_numbers_leave_them_open():
    paper = claims.ResultTable(TABLE.iloc[:2].drop(columns=["auroc_lo", "auroc_hi"]), ("model",))
    ours = claims.ResultTable(TABLE.iloc[[0]], ("model",))
    spec = claims.ClaimSpec("a-beats-b", "A beats B.", _a_beats_b)
    out = claims.evaluate_claims([spec], ours, paper, tol=0.1)
    row = out.iloc[0]
    assert out["paper_holds"].tolist() == [True] and row["paper_evidence"] == "a 0.9 vs b 0.7"
    assert out["holds"].tolist() == [None] and row["ours"].startswith("not evaluated: no run")
    assert claims.tally(out) == {"claims_total": 1, "claims_hold": 0, "claims_fail": 0}
    strict = claims.evaluate_claims([spec], paper, paper, tol=0.25)
    assert strict["holds"].tolist() == [False], "a tolerance wider than the gap: a fail"


# --- metrics.json ------------------------------------------------------------------------


def test_metrics_json_is_written_validated_and_read_back(tmp_path):
    params = {"profile": "smoke", "seed": 0, "split": (0.5, 0.5)}
    table = pd.DataFrame({"run": ["a"], "auroc": [math.nan]})
    path = results.write_metrics(tmp_path, chapter="c", params=params, results=table)
    back = results.read_metrics(path)
    assert back["results"] == [{"run": "a", "auroc": None}] and back["profile"] == "smoke"
    with pytest.raises(results.MetricsError, match="no results section"):
        results.write_metrics(tmp_path, chapter="c", params=params)
    path.write_text(json.dumps({**back, "profile": "paper"}))
    with pytest.raises(results.MetricsError, match=f"{path}: 'profile'"):
        results.read_metrics(path)


def test_the_cohort_section_is_the_flow_and_the_split_table_as_records():
    flow = pd.DataFrame({"step": ["loaded"], "rows": [2]})
    splits = pd.DataFrame({"split": ["train"], "share": [math.nan]})
    assert results.cohort_section(flow, splits) == {
        "flow": [{"step": "loaded", "rows": 2}],
        "splits": [{"split": "train", "share": None}],
    }


# --- what the chapters share ---------------------------------------------------------------


def test_a_cohort_returns_one_split_and_names_the_allowed_ones():
    from mmcxr.chapters import meems, small_data

    t = pd.DataFrame({"split": ["train", "test", "train"], "x": [1, 2, 3]})
    assert small_data.Cohort(t, t).rows("train")["x"].tolist() == [1, 3]
    with pytest.raises(ValueError, match=r"one of \('train', 'val', 'test'\), got 'captioning'"):
        small_data.Cohort(t, t).rows("captioning")
    with pytest.raises(ValueError, match=r"\('captioning', 'embedding', 'val', 'test'\)"):
        meems.Cohort(t, t).rows("train")


def test_image_cache_folders_keep_their_names():
    """A chapter finds the caches it built before: each folder name, pinned."""
    from mmcxr.chapters import alignment, late_fusion, meems, multimodal_vae, small_data

    t = pd.DataFrame({"dicom_id": ["a", "b"], "path": ["a.jpg", "b.jpg"], "image_id": ["a", "b"]})
    t = t.assign(frontal_id=["a", "c"], lateral_id=["b", "d"])
    base = Path("out") / "image-cache"
    for ch in (late_fusion, meems):
        assert ch.image_cache_dir(Path("out"), ch.Cohort(t, t), 64) == base / "px64-dbe21682ca81"
    cohort = multimodal_vae.Cohort(t, t)
    assert multimodal_vae.image_cache_dir("out", cohort, 64) == base / "px64-401787fc154b"
    assert alignment.image_cache_dir("out", "main", t, 64) == base / "main-px64-dbe21682ca81"
    assert small_data.cache_dir("out", t, 64, "openi") == base / "openi-px64-74fdcf62f311"


# --- import direction ----------------------------------------------------------------------


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
    return {n for n in names if n.startswith("mmcxr")}


def test_no_import_cycle_in_mmcxr():
    """Module-level and function-level imports alike: the graph of mmcxr modules is acyclic."""
    pkg = ROOT / "mmcxr"
    modules = {
        ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__"): p
        for p in pkg.rglob("*.py")
    }
    graph = {
        m: {n for n in _imports(p) if n in modules and n != m and not m.startswith(n + ".")}
        for m, p in modules.items()
    }
    # a package __init__ only re-exports lazily: edges into a package are edges to it alone
    state: dict[str, int] = {}

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for n in graph[m]:
            if state.get(n) == 1:
                raise AssertionError("import cycle: " + " -> ".join([*stack, m, n]))
            if n not in state:
                visit(n, [*stack, m])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [])
    assert "mmcxr.book" not in graph["mmcxr.chapter_page"]
    assert "mmcxr.chapter_page" not in graph["mmcxr.book"]
