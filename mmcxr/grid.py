"""Run a chapter's training grid outside the notebook, on a GPU node or several.

A chapter's heavy step is its grid of training runs. On a cluster it belongs in a batch job
under ``accelerate launch`` or ``torchrun``, not in a notebook kernel; the notebook should
then only evaluate and plot. This module executes the chapter notebook's *own* code cells
as a script, with the parameters the book's executor would inject (the profile's YAML, then
``-p`` overrides, ``profile`` set), from the first cell up to and including the cell that
trains the grid: by default the first code cell that builds a :class:`mmcxr.runs.RunStore`.
Nothing of the recipe is re-implemented here, so the run keys, data fingerprints and
folders are the notebook's by construction, and a later execution of the notebook with the
same parameters finds every run finished (``RunStore.get_or_run`` loads it) and trains
nothing.

Two steps, because the cells before the grid write shared files (the synthetic cohort, the
image cache, the pretrained text encoder) that several processes must not write at once::

    # 1. one process: data, image cache, text encoder (every cell before the grid)
    python -m mmcxr.grid late-fusion-pneumonia --profile full --setup
    # 2. every process: the same cells (now all reused from disk), then the grid
    torchrun --nproc_per_node 8 -m mmcxr.grid late-fusion-pneumonia --profile full
    accelerate launch --multi_gpu --num_processes 8 -m mmcxr.grid late-fusion-pneumonia \\
        --profile full                       # the same with accelerate's launcher
    # several nodes: torchrun --nnodes N --node_rank R --rdzv_endpoint HOST:PORT ... (or
    # accelerate launch --num_machines N --machine_rank R --main_process_ip HOST ...)

In step 2 every process trains each run together with the others (``batch_size`` is the
global batch, split over the processes by :func:`mmcxr.train.fit`); process 0 alone writes
the finished run. Output (``outputs/<slug>/`` or ``output_dir``, or under ``MMCXR_HOME``)
must be one shared file system for all processes and for the notebook afterwards.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import nbformat

from mmcxr import profiles

__all__ = ["GRID_CELL", "grid_cells", "main", "notebook_parameters", "run_cells"]

#: The cell that trains a chapter's grid: the first code cell that builds a RunStore.
GRID_CELL = r"\bRunStore\("
_MAGIC = re.compile(r"^\s*[%!]")


def grid_cells(notebook: str | os.PathLike, until: str = GRID_CELL) -> tuple[str, list[str]]:
    """``(parameters cell, [code cells after it, up to and including the grid cell])``.

    IPython magics (``%matplotlib inline``) are commented out: the cells run as plain Python.
    A notebook without a ``parameters``-tagged cell, or without a cell matching ``until``
    after it, is an error naming what is missing.
    """
    nb = nbformat.read(str(notebook), as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    tagged = [i for i, c in enumerate(code) if "parameters" in c.metadata.get("tags", [])]
    if not tagged:
        raise ValueError(f"{notebook}: no cell tagged 'parameters'")
    first = tagged[0]
    pattern = re.compile(until)
    after = code[first + 1 :]
    stop = next((i for i, c in enumerate(after) if pattern.search(c.source)), None)
    if stop is None:
        raise ValueError(f"{notebook}: no code cell after the parameters matches {until!r}")

    def plain(source: str) -> str:
        return "\n".join("# " + x if _MAGIC.match(x) else x for x in source.splitlines())

    return plain(code[first].source), [plain(c.source) for c in after[: stop + 1]]


def notebook_parameters(
    slug: str, profile: str = "book", overrides: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """What the book's executor injects after a chapter's parameters cell: the profile's
    YAML overrides, ``profile``, then ``overrides`` (:func:`mmcxr.book.execute`)."""
    return {**profiles.profile_parameters(slug, profile), "profile": profile, **(overrides or {})}


def run_cells(
    notebook: str | os.PathLike,
    parameters: Mapping[str, Any],
    *,
    until: str = GRID_CELL,
    setup_only: bool = False,
) -> dict[str, Any]:
    """Execute the notebook's cells as papermill would, up to the grid cell (or, with
    ``setup_only``, up to the cell before it), in the notebook's folder; return the
    namespace. Each cell is compiled under its own name, so a traceback says which cell."""
    os.environ.setdefault("MPLBACKEND", "Agg")  # figures before the grid go nowhere
    params_cell, cells = grid_cells(notebook, until)
    if setup_only:
        cells = cells[:-1]
    ns: dict[str, Any] = {"__name__": "__main__"}
    here = os.getcwd()
    os.chdir(Path(notebook).resolve().parent)  # papermill's cwd: the notebooks folder
    try:
        exec(compile(params_cell, f"<{Path(notebook).name}: parameters>", "exec"), ns)
        ns.update(parameters)
        for i, source in enumerate(cells, 1):
            exec(compile(source, f"<{Path(notebook).name}: cell {i} after parameters>", "exec"), ns)
    finally:
        os.chdir(here)
    return ns


def _override(text: str) -> tuple[str, Any]:
    name, sep, value = text.partition("=")
    if not sep or not name.isidentifier():
        raise argparse.ArgumentTypeError(f"-p takes NAME=VALUE, got {text!r}")
    return name, profiles.literal(value)


def main(argv: list[str] | None = None) -> int:
    """``python -m mmcxr.grid SLUG [--profile P] [-p NAME=VALUE ...] [--setup]``."""
    ap = argparse.ArgumentParser(prog="python -m mmcxr.grid", description=__doc__.split("\n\n")[0])
    ap.add_argument("slug", help="the chapter, e.g. late-fusion-pneumonia")
    ap.add_argument("--profile", choices=profiles.PROFILES, default="book")
    ap.add_argument(
        "-p", dest="overrides", action="append", type=_override, default=[],
        metavar="NAME=VALUE", help="a parameter, as papermill's -p (repeatable)",
    )  # fmt: skip
    ap.add_argument(
        "--setup",
        action="store_true",
        help="run only the cells before the grid (data, cache, encoders), in one process",
    )
    ap.add_argument("--until", default=GRID_CELL, help="regex of the grid cell's source")
    args = ap.parse_args(argv)
    params = notebook_parameters(args.slug, args.profile, dict(args.overrides))
    if args.setup and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        ap.error("--setup writes shared files: run it in one process, not under a launcher")
    run_cells(profiles.notebook_path(args.slug), params, until=args.until, setup_only=args.setup)
    return 0


if __name__ == "__main__":
    sys.exit(main())
