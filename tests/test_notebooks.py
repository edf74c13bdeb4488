"""Every chapter runs end to end with its smoke profile (papermill, fresh kernel)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import papermill as pm
import pytest
import yaml

from mmcxr import book, papers
from mmcxr.claims import read_claims
from mmcxr.results import read_metrics

ROOT = Path(__file__).resolve().parents[1]
SLUGS = sorted(p.stem for p in (ROOT / "notebooks").glob("*.py"))
#: Chapters past the placeholder stage (a placeholder says so and writes no claims yet).
REPRODUCED = {
    s for s in SLUGS if "not yet reproduced" not in (ROOT / "notebooks" / f"{s}.py").read_text()
}


@pytest.fixture(scope="session")
def mmcxr_home(tmp_path_factory) -> Path:
    """Smoke cohorts and outputs go to a throw-away home shared by the whole session."""
    home = tmp_path_factory.mktemp("mmcxr-home")
    old = os.environ.get("MMCXR_HOME")
    os.environ["MMCXR_HOME"] = str(home)  # the kernel subprocess inherits it
    yield home
    if old is None:
        os.environ.pop("MMCXR_HOME", None)
    else:
        os.environ["MMCXR_HOME"] = old


@pytest.mark.slow
@pytest.mark.parametrize("slug", SLUGS)
def test_smoke_run(slug: str, mmcxr_home: Path, tmp_path: Path):
    params = yaml.safe_load((ROOT / "notebooks" / "params" / slug / "smoke.yaml").read_text()) or {}
    params["output_dir"] = str(tmp_path / "out")
    params["profile"] = "smoke"
    t0 = time.time()
    pm.execute_notebook(
        str(ROOT / "notebooks" / f"{slug}.ipynb"),
        str(tmp_path / f"{slug}.ipynb"),
        parameters=params,
        kernel_name="mmcxr",
        cwd=str(ROOT / "notebooks"),
        progress_bar=False,
        **book.PAPERMILL_OPTIONS,
    )
    print(f"{slug}: smoke run {time.time() - t0:.1f} s")
    # a chapter that reproduces a paper writes its verdicts and its numbers, to schema (the
    # verdicts themselves are not checked: smoke data are too small to decide anything)
    if papers.chapter(slug).paper_file and slug in REPRODUCED:
        claims = read_claims(tmp_path / "out" / "claims.json")
        assert claims["chapter"] == slug and claims["profile"] == "smoke"
        metrics = read_metrics(tmp_path / "out" / "metrics.json")
        assert metrics["chapter"] == slug and metrics["profile"] == "smoke"
