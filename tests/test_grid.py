"""``python -m mmcxr.grid``: a chapter's training grid run outside its notebook.

The pieces, at a few seconds: which cells run (the real late-fusion notebook), that the
parameters are the book executor's, and on a small notebook that the runner trains through
the RunStore what a later full execution of the notebook then reuses without training. The
multi-process side (``fit`` and ``RunStore.get_or_run`` under torchrun) is
``tests/test_train_distributed.py``; the whole late-fusion grid at smoke scale under torchrun,
then papermill reusing its runs, is in the closing note of the change (minutes, not a test).
"""

from __future__ import annotations

import nbformat
import pytest

from mmcxr import grid, profiles

SLUG = "late-fusion-pneumonia"


def test_late_fusion_runs_up_to_its_grid_cell():
    params_cell, cells = grid.grid_cells(profiles.notebook_path(SLUG))
    assert "profile =" in params_cell and "epochs =" in params_cell
    assert "train_runs(" in cells[-1] and "RunStore(" in cells[-1]
    assert not any("RunStore(" in c for c in cells[:-1])
    assert not any("evaluate_claims" in c or "write_outputs" in c for c in cells)
    assert "# %matplotlib inline" in "\n".join(cells)  # magics commented out, not run


@pytest.mark.parametrize("profile", profiles.PROFILES)
def test_parameters_are_the_book_executors(profile):
    """The namespace after the parameters cell and the injection is what the book runs with."""
    params_cell, _ = grid.grid_cells(profiles.notebook_path(SLUG))
    ns: dict = {}
    exec(params_cell, ns)
    ns.update(grid.notebook_parameters(SLUG, profile))
    want = profiles.resolved_parameters(SLUG, profile)
    assert {k: ns[k] for k in want} == want
    assert grid.notebook_parameters(SLUG, profile, {"seed": 3})["seed"] == 3


def _notebook(path, out_dir):
    """A chapter in miniature: parameters, a grid cell training through a RunStore (each
    training appends to trained.txt), then evaluation cells the runner must not execute."""
    cells = [
        nbformat.v4.new_code_cell("seed = 0\nlr = 0.1\nprofile = 'custom'"),
        nbformat.v4.new_code_cell(
            "%matplotlib inline\nfrom pathlib import Path\nfrom mmcxr import runs"
        ),
        nbformat.v4.new_code_cell(
            f"out = Path({str(out_dir)!r})\n"
            "def work(ckpt):\n"
            "    with open(out / 'trained.txt', 'a') as f:\n"
            "        f.write(profile + '\\n')\n"
            "    return {'metrics': {'auroc': 0.5 + lr}}\n"
            "store = runs.RunStore(out / 'runs')\n"
            "result = store.get_or_run('toy', {'seed': seed, 'lr': lr}, 'data', work)"
        ),
        nbformat.v4.new_code_cell("evaluated = result.metrics['auroc']"),
    ]
    cells[0].metadata["tags"] = ["parameters"]
    nbformat.write(nbformat.v4.new_notebook(cells=cells), str(path))
    return path


def test_the_runner_trains_and_the_notebook_then_reuses(tmp_path):
    nb = _notebook(tmp_path / "toy.ipynb", tmp_path)
    ns = grid.run_cells(nb, {"lr": 0.2, "profile": "full"})
    assert "evaluated" not in ns, "the runner stops at the grid cell"
    assert (tmp_path / "trained.txt").read_text() == "full\n"
    assert ns["result"].metrics == {"auroc": 0.7}
    # the notebook, executed whole with the same parameters, finds the run and trains nothing
    whole = grid.run_cells(nb, {"lr": 0.2, "profile": "full"}, until="evaluated =")
    assert whole["evaluated"] == 0.7
    assert (tmp_path / "trained.txt").read_text() == "full\n"
    # other parameters: another run
    grid.run_cells(nb, {"lr": 0.3, "profile": "full"})
    assert (tmp_path / "trained.txt").read_text() == "full\nfull\n"
    setup = grid.run_cells(nb, {"lr": 0.4}, setup_only=True)
    assert "runs" in setup and "result" not in setup


def test_command_line(tmp_path, monkeypatch):
    with pytest.raises(SystemExit):
        grid.main([SLUG, "-p", "no equals sign"])
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(SystemExit):  # the shared-file step refuses to run in many processes
        grid.main([SLUG, "--setup"])
    with pytest.raises(ValueError, match="no code cell after the parameters matches"):
        grid.grid_cells(_notebook(tmp_path / "toy.ipynb", tmp_path), until="never there")
