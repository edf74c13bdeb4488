"""The repository's frame: environment pins in sync, notebook pairs in sync and clean,
parameter files naming only real parameters."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import jupytext
import nbformat
import papermill as pm
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.py"))
SLUGS = [p.stem for p in NOTEBOOKS]


def test_top_level_layout():
    for name in [
        "book",
        "notebooks",
        "mmcxr",
        "environment.yml",
        "_config.yml",
        "_toc.yml",
        "tests",
        "README.md",
        "pyproject.toml",
        "Makefile",
        "bench",
        ".ci/run",
    ]:
        assert (ROOT / name).exists(), name


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = {d.split("==")[0].lower(): d for d in project["dependencies"]}
    assert all("==" in d for d in project["dependencies"]), "every runtime dependency is pinned"
    assert not {"torchvision", "timm"} & set(pins), "torchvision/timm fail with the CPU torch"
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    deps = env["dependencies"]
    assert "python=3.11" in deps
    pip = next(d["pip"] for d in deps if isinstance(d, dict) and "pip" in d)
    assert pins["torch"] in pip, "environment.yml installs the same torch as pyproject"
    assert any(line.startswith("-e .") for line in pip), "environment.yml installs the package"
    assert project["requires-python"] == ">=3.11"


def test_every_chapter_in_toc_has_a_notebook_and_profiles():
    from mmcxr import book

    toc_slugs = book.chapters()
    assert sorted(toc_slugs) == sorted(SLUGS), "each notebook is a chapter and vice versa"
    for slug in SLUGS:
        for profile in ("smoke", "full"):
            assert (ROOT / "notebooks" / "params" / slug / f"{profile}.yaml").is_file()


def _cells(nb) -> list:
    return [(c.cell_type, c.source.strip(), sorted(c.metadata.get("tags", []))) for c in nb.cells]


@pytest.mark.parametrize("py", NOTEBOOKS, ids=SLUGS)
def test_pair_in_sync_and_without_outputs(py: Path):
    ipynb = py.with_suffix(".ipynb")
    assert ipynb.is_file(), f"{py.name} has no paired .ipynb (run jupytext --sync)"
    raw = nbformat.read(ipynb, as_version=4)
    for cell in raw.cells:
        if cell.cell_type == "code":
            assert not cell.outputs, f"{ipynb.name} is stored with outputs"
            assert cell.execution_count is None, f"{ipynb.name} has execution counts"
    a = jupytext.read(py)
    b = jupytext.read(ipynb)
    assert _cells(a) == _cells(b), f"{py.name} and {ipynb.name} differ: run `jupytext --sync`"


@pytest.mark.parametrize("py", NOTEBOOKS, ids=SLUGS)
def test_parameters_cell_holds_literals(py: Path):
    nb = jupytext.read(py)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "exactly one cell is tagged `parameters`"
    tree = ast.parse(tagged[0].source)
    names = set()
    for node in tree.body:
        assert isinstance(node, ast.Assign), f"{py.name}: only assignments in the parameters cell"
        ast.literal_eval(node.value)  # raises for anything but a literal
        names |= {t.id for t in node.targets}
    assert {"data_root", "seed", "device", "output_dir"} <= names
    inspected = set(pm.inspect_notebook(str(py.with_suffix(".ipynb"))))
    assert names == inspected, (
        f"{py.name}: papermill cannot parse {sorted(names - inspected)} "
        "(keep parameter comments free of '=')"
    )


@pytest.mark.parametrize("slug", SLUGS)
def test_profile_files_name_known_parameters(slug: str):
    known = set(pm.inspect_notebook(str(ROOT / "notebooks" / f"{slug}.ipynb")))
    for profile in ("smoke", "full"):
        f = ROOT / "notebooks" / "params" / slug / f"{profile}.yaml"
        keys = set(yaml.safe_load(f.read_text()) or {})
        unknown = keys - known
        assert not unknown, f"{f}: not parameters of {slug}: {sorted(unknown)}"


@pytest.mark.parametrize("py", NOTEBOOKS, ids=SLUGS)
def test_notebooks_do_not_edit_sys_path(py: Path):
    assert "sys.path" not in py.read_text(), "notebooks import the installed mmcxr"
