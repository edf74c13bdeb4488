"""Render cost of the procedural radiograph phantom at 256, 512 and full (3056) rows.

The cohort generator draws 2,000 two-view studies at 512 rows, so a 512-row render must stay
well under ~40 ms. Prints wall and CPU milliseconds per film for a normal PA film, a busy PA
film (several findings and devices) and a lateral, and each size's cost relative to 512 rows
measured in the same run (CPU time is less disturbed by other processes on a shared machine).

    python bench/bench_phantom.py [--repeat N] [--montage PATH]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from mmcxr.synth.phantom import Finding, render, sample_anatomy

BUSY = [
    Finding("Cardiomegaly", None, None, 0.7),
    Finding("Pleural Effusion", "right", None, 0.8),
    Finding("Consolidation", "left", "lower", 0.9),
    Finding("Edema", "bilateral", None, 0.6),
    Finding("Support Devices", None, None, 1.0, {"device": ["endotracheal tube", "central line"]}),
]
CASES = {"PA normal": ([], "PA"), "PA busy": (BUSY, "PA"), "LATERAL busy": (BUSY, "LATERAL")}


def time_render(findings: list[Finding], view: str, rows: int, repeat: int) -> tuple[float, float]:
    """Median wall and CPU milliseconds per render over ``repeat`` patients."""
    walls, cpus = [], []
    for i in range(repeat):
        anatomy = sample_anatomy(np.random.default_rng(i))
        rng = np.random.default_rng(1000 + i)
        w0, c0 = time.perf_counter(), time.process_time()
        render(anatomy, findings, view, rows, rng)
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    return 1e3 * float(np.median(walls)), 1e3 * float(np.median(cpus))


def montage(path: Path, rows: int = 384) -> None:
    """Normal PA, AP portable, lateral, and every finding at severity 0.2 and 1 (for the eye)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    anatomy = sample_anatomy(np.random.default_rng(3))
    specs = [
        ("Atelectasis", "right", "basal"), ("Cardiomegaly", None, None),
        ("Consolidation", "right", "lower"), ("Edema", "bilateral", None),
        ("Enlarged Cardiomediastinum", None, None), ("Fracture", "left", "mid"),
        ("Lung Lesion", "left", "upper"), ("Lung Opacity", "left", "lower"),
        ("Pleural Effusion", "right", None), ("Pleural Other", "left", "mid"),
        ("Pneumonia", "left", "mid"), ("Pneumothorax", "right", "apical"),
    ]  # fmt: skip
    cases = [("PA normal", [], "PA", None), ("AP portable", [], "AP", "PORTABLE"),
             ("LATERAL", [], "LATERAL", None)]  # fmt: skip
    for label, side, zone in specs:
        for sev in (0.2, 1.0):
            cases.append((f"{label} {sev}", [Finding(label, side, zone, sev)], "PA", None))
    cases.append(
        (
            "Support Devices",
            [
                Finding(
                    "Support Devices",
                    "left",
                    None,
                    1.0,
                    {"device": ["endotracheal tube", "enteric tube", "pacemaker"]},
                )
            ],
            "AP",
            "spurious",
        )
    )
    cases.append(("LATERAL effusion+CM", BUSY[:2], "LATERAL", None))
    ncol = 6
    nrow = -(-len(cases) // ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(2.6 * ncol, 3.2 * nrow))
    for ax in axes.flat:
        ax.axis("off")
    for ax, (title, fs, view, marker) in zip(axes.flat, cases, strict=False):
        r = render(anatomy, fs, view, rows, np.random.default_rng(11), marker=marker)
        ax.imshow(r.image, cmap="gray", vmin=0, vmax=1)
        ax.set_title(title, fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"montage written to {path}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=15)
    ap.add_argument("--montage", type=Path, default=None)
    args = ap.parse_args()
    sizes = (256, 512, 3056)
    render(sample_anatomy(np.random.default_rng(0)), BUSY, "PA", 256, np.random.default_rng(0))
    print(f"{'case':<14} {'rows':>5} {'wall ms':>9} {'cpu ms':>8} {'cpu / 512':>10}")
    for name, (findings, view) in CASES.items():
        res = {}
        for rows in sizes:
            res[rows] = time_render(findings, view, rows, args.repeat if rows < 3056 else 2)
        for rows in sizes:
            wall, cpu = res[rows]
            print(f"{name:<14} {rows:>5} {wall:>9.1f} {cpu:>8.1f} {cpu / res[512][1]:>10.2f}")
    if args.montage:
        montage(args.montage)


if __name__ == "__main__":
    main()
