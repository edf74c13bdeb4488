"""The late-fusion chapter's results (Chao & Li, paper 001): the paper's findings as claims,
its figures' tables beside ours, the numbers the prose quotes, and the figures.

:mod:`mmcxr.chapters.late_fusion` trains the runs; this module reads their tables only. Each
claim is a test on a results table (:class:`mmcxr.claims.ClaimSpec`), run with the same code
on the paper's own numbers (:mod:`late_fusion_reference`) and on ours.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path

import pandas as pd

from mmcxr import claims, metrics, plots
from mmcxr.chapters import late_fusion_reference as reference
from mmcxr.chapters.late_fusion import (
    _DATASET_NAMES,
    _LOSS_NAMES,
    _MODEL_NAMES,
    DATASETS,
    LOSSES,
    METRICS,
    MODELS,
    ORDERS,
    PAPER,
    PLOT_NAMES,
    RUN_COLUMNS,
    SLUG,
    Cohort,
    check_columns,
    run_label,
)
from mmcxr.claims import ClaimSpec, Verdict
from mmcxr.results import cohort_section, write_chapter_outputs


def with_labels(table: pd.DataFrame) -> pd.DataFrame:
    """Index a tidy results (or sensitivity) table by the paper's run labels."""
    check_columns(table, RUN_COLUMNS, "results table")
    shuffled = table["shuffled"] if "shuffled" in table.columns else ["none"] * len(table)
    labels = [
        run_label(m, d, lo, s)
        for m, d, lo, s in zip(
            table["model"], table["dataset"], table["loss"], shuffled, strict=True
        )
    ]
    return table.set_index(pd.Index(labels, name="run"))


# --------------------------------------------------------------------------------------------
# claims


class Table(claims.ResultTable):
    """Results and shuffle tests of the 12 runs, looked up by (model, dataset, loss)."""

    def __init__(self, results: pd.DataFrame, sensitivity: pd.DataFrame | None = None) -> None:
        check_columns(results, RUN_COLUMNS, "results table")
        parts = [results.assign(shuffled="none")]
        if sensitivity is not None:
            parts.append(sensitivity[sensitivity["shuffled"] != "none"])
        super().__init__(
            pd.concat(parts, ignore_index=True),
            (*RUN_COLUMNS, "shuffled"),
            defaults={"shuffled": "none"},
            name=run_label,
        )

    def get(self, metric: str, model: str, dataset: str, loss: str, shuffled: str = "none"):
        return self.value(metric, model=model, dataset=dataset, loss=loss, shuffled=shuffled)

    def sensitivity_runs(self) -> list[tuple[str, str, str]]:
        return [c[:3] for c in self.combos(shuffled="image")]


def _retained(shuffled: float, intact: float) -> float:
    """Share of the above-chance AUROC that survives shuffling one modality (1 = none lost)."""
    if intact <= 0.5:
        return math.nan
    return (shuffled - 0.5) / (intact - 0.5)


def _text_beats_image(t: Table, tol: float) -> Verdict:
    parts, ok = [], True
    for dataset in DATASETS:
        for loss in LOSSES:
            txt = t.get("auroc", "text", dataset, loss)
            img = t.get("auroc", "image", dataset, loss)
            ok &= txt.x > img.x
            parts.append(
                f"{_DATASET_NAMES[dataset]} {_LOSS_NAMES[loss]}: text {txt} vs image {img}"
            )
    return Verdict(ok, "AUROC " + "; ".join(parts))


def _text_not_worse_than_multimodal(t: Table, tol: float) -> Verdict:
    parts, ok = [], True
    for metric in ("accuracy", "precision", "f1", "auroc"):
        txt = t.get(metric, "text", "full", "bce")
        mm = t.get(metric, "multimodal", "full", "bce")
        ok &= txt.x >= mm.x - tol
        parts.append(f"{metric} text {txt} vs multimodal {mm}")
    return Verdict(ok, "Full BCE: " + "; ".join(parts))


def _shuffle_verdict(t: Table, modality: str, test: Callable[[float], bool]) -> Verdict:
    parts, ok = [], True
    for model, dataset, loss in t.sensitivity_runs():
        intact = t.get("auroc", model, dataset, loss)
        shuffled = t.get("auroc", model, dataset, loss, shuffled=modality)
        r = _retained(shuffled.x, intact.x)
        ok &= bool(test(r))
        parts.append(
            f"{run_label(model, dataset, loss)}: AUROC {intact} -> {shuffled} with "
            f"{modality} shuffled ({r:.0%} of the above-chance AUROC kept)"
        )
    return Verdict(ok, "; ".join(parts))


#: Shuffling a modality "collapses" the model when at most this share of its above-chance
#: AUROC survives, and "spares" it when at least ``SPARED`` survives.
COLLAPSED, SPARED = 0.25, 0.75


def _text_shuffle_collapses(t: Table, tol: float) -> Verdict:
    return _shuffle_verdict(t, "text", lambda r: r <= COLLAPSED)


def _image_shuffle_spares(t: Table, tol: float) -> Verdict:
    return _shuffle_verdict(t, "image", lambda r: r >= SPARED)


def _images_used(t: Table, tol: float) -> Verdict:
    parts, ok = [], True
    for model, dataset, loss in t.sensitivity_runs():
        intact = t.get("auroc", model, dataset, loss)
        shuffled = t.get("auroc", model, dataset, loss, shuffled="image")
        ok &= intact.x - shuffled.x > tol
        parts.append(f"{run_label(model, dataset, loss)}: AUROC {intact} -> {shuffled}")
    return Verdict(ok, f"(needs a drop > {tol:g}) " + "; ".join(parts))


def _focal_no_clear_gain_full(t: Table, tol: float) -> Verdict:
    parts, ok = [], True
    for model in MODELS:
        bce = t.get("auroc", model, "full", "bce")
        foc = t.get("auroc", model, "full", "focal")
        ok &= foc.x - bce.x <= tol
        parts.append(f"{_MODEL_NAMES[model]} BCE {bce} vs focal {foc}")
    return Verdict(ok, f"Full set AUROC (gain <= {tol:g} counts as none): " + "; ".join(parts))


def _gap(t: Table, model: str, dataset: str, loss: str) -> float:
    return abs(t.get("precision", model, dataset, loss).x - t.get("recall", model, dataset, loss).x)


def _focal_balances_75(t: Table, tol: float) -> Verdict:
    parts, ok = [], True
    for model in MODELS:
        bce, foc = _gap(t, model, "75", "bce"), _gap(t, model, "75", "focal")
        ok &= foc < bce
        parts.append(f"{_MODEL_NAMES[model]} BCE {bce:.3f} vs focal {foc:.3f}")
    return Verdict(ok, "75 set |precision - recall|: " + "; ".join(parts))


def _subsample_focal_best_balance(t: Table, tol: float) -> Verdict:
    gaps = {(d, lo): _gap(t, "multimodal", d, lo) for d in DATASETS for lo in LOSSES}
    best = min(gaps, key=gaps.get)
    listed = "; ".join(
        f"{_DATASET_NAMES[d]} {_LOSS_NAMES[lo]} {g:.3f}" for (d, lo), g in gaps.items()
    )
    return Verdict(best == ("75", "focal"), f"Multimodal |precision - recall|: {listed}")


def _multimodal_best_auroc_75(t: Table, tol: float) -> Verdict:
    parts, ok = [], True
    for loss in LOSSES:
        mm = t.get("auroc", "multimodal", "75", loss)
        best = max(("image", "text"), key=lambda m: t.get("auroc", m, "75", loss).x)
        uni = t.get("auroc", best, "75", loss)
        ok &= mm.x >= uni.x - tol
        parts.append(f"{_LOSS_NAMES[loss]}: multimodal {mm} vs {best} {uni}")
    return Verdict(ok, f"75 set AUROC (ties within {tol:g} count): " + "; ".join(parts))


CLAIMS: tuple[ClaimSpec, ...] = (
    ClaimSpec(
        "text-beats-image",
        "The report text alone separates pneumonia from no finding better (higher AUROC) "
        "than the image alone, for every training set and loss.",
        _text_beats_image,
    ),
    ClaimSpec(
        "text-matches-multimodal-full-bce",
        "Trained with BCE on the full set, the text-only model is at least as good as the "
        "multimodal one on accuracy, precision, F1 and AUROC.",
        _text_not_worse_than_multimodal,
    ),
    ClaimSpec(
        "text-shuffle-collapses",
        "The multimodal model collapses to chance (AUROC near 0.5) when the reports are "
        "shuffled across the test set.",
        _text_shuffle_collapses,
    ),
    ClaimSpec(
        "image-shuffle-spares",
        "Shuffling the images instead leaves the multimodal model largely intact.",
        _image_shuffle_spares,
    ),
    ClaimSpec(
        "multimodal-uses-images",
        "The multimodal model still uses the images: shuffling them costs some AUROC.",
        _images_used,
    ),
    ClaimSpec(
        "focal-no-gain-full",
        "On the full (about 90/10) set, focal loss does not clearly improve any model's AUROC "
        "over BCE.",
        _focal_no_clear_gain_full,
    ),
    ClaimSpec(
        "focal-balances-75",
        "On the 75/25 subsample, focal loss narrows the gap between precision and recall "
        "relative to BCE, for every model.",
        _focal_balances_75,
    ),
    ClaimSpec(
        "subsample-focal-best-balance",
        "Subsampling plus focal loss gives the multimodal model its best-balanced precision "
        "and recall of the four training recipes.",
        _subsample_focal_best_balance,
    ),
    ClaimSpec(
        "multimodal-best-auroc-75",
        "On the 75/25 subsample the multimodal model reaches at least the AUROC of the best "
        "single-modality model, with either loss.",
        _multimodal_best_auroc_75,
    ),
)


def evaluate_claims(
    results: pd.DataFrame, sensitivity: pd.DataFrame | None = None, *, tol: float = 0.01
) -> pd.DataFrame:
    """Every claim decided on the paper's numbers and, with the same test, on ours
    (columns ``id, claim, paper_evidence, paper_holds, ours, holds``)."""
    paper = Table(reference.results_table(), reference.sensitivity_table())
    return claims.evaluate_claims(CLAIMS, Table(results, sensitivity), paper, tol=tol)


# --------------------------------------------------------------------------------------------
# tables, numbers and figures of the page


#: The runs each of the paper's result figures compares.
FIGURES: dict[str, tuple[tuple[str, str, str], ...]] = {
    "2": tuple((m, "full", "bce") for m in MODELS),
    "3": tuple((m, "full", lo) for m in MODELS for lo in LOSSES),
    "4": (("multimodal", "full", "bce"), ("multimodal", "full", "focal"))
    + tuple((m, "75", lo) for lo in LOSSES for m in MODELS),
}


def cohort_vs_paper(cohort: Cohort) -> pd.DataFrame:
    """Our cohort's sizes beside the paper's (section 2.1.1).

    The paper subsampled its whole cohort to 75/25 before splitting; here only the training
    and validation patients are subsampled, so its "75 set" row is compared with ours
    without the test images.
    """
    t = cohort.table
    sub = t[t["in_75"]]
    paper = reference.COHORT
    share = paper["pneumonia"] / (paper["pneumonia"] + paper["no_finding"])
    rows = [
        ("pneumonia (Pneumonia = 1.0)", f"{int(t['label'].sum()):,}", f"{paper['pneumonia']:,}"),
        (
            "no finding (No Finding = 1.0)",
            f"{int((t['label'] == 0).sum()):,}",
            f"{paper['no_finding']:,}",
        ),
        ("pneumonia share", f"{t['label'].mean():.1%}", f"{share:.1%}"),
        (
            "75 set: pneumonia (ours: train + val)",
            f"{int(sub['label'].sum()):,}",
            f"{paper['pneumonia']:,}",
        ),
        (
            "75 set: no finding (ours: train + val)",
            f"{int((sub['label'] == 0).sum()):,}",
            f"{paper['subsampled_negative']:,}",
        ),
    ]
    return pd.DataFrame(rows, columns=["count", "ours", "paper"]).set_index("count")


def figure_table(results: pd.DataFrame, figure: str) -> pd.DataFrame:
    """Ours (with 95% intervals) beside the paper for the runs of one of its figures."""
    if figure not in FIGURES:
        raise ValueError(f"figure must be one of {sorted(FIGURES)}, got {figure!r}")
    runs = [run_label(*r) for r in FIGURES[figure]]
    ours = with_labels(results).reindex(runs)
    paper = with_labels(reference.results_table()).reindex(runs)
    return metrics.comparison_table(ours, paper[list(METRICS)], metrics=list(METRICS))


def sensitivity_table(sensitivity: pd.DataFrame) -> pd.DataFrame:
    """Our bimodal sensitivity tests beside the paper's (it tested the Full BCE model only)."""
    ours = with_labels(sensitivity)
    paper = with_labels(reference.sensitivity_table()).reindex(ours.index)
    return metrics.comparison_table(ours, paper[list(METRICS)], metrics=list(METRICS))


def headline(cohort: Cohort, results, sensitivity, verdicts: pd.DataFrame) -> dict[str, float]:
    """The numbers the chapter's prose quotes (glued, never typed), ours and the paper's."""
    t = Table(results, sensitivity)
    out: dict[str, float] = {
        "n_images": len(cohort.table),
        "n_pneumonia": int(cohort.table["label"].sum()),
        "pneumonia_share": float(cohort.table["label"].mean()),
        "n_test": int((cohort.table["split"] == "test").sum()),
        "n_test_pneumonia": int(cohort.rows("full", "test")["label"].sum()),
        **claims.tally(verdicts),
    }
    keys = [
        (m, d, lo, "none", x)
        for m in MODELS
        for d in DATASETS
        for lo in LOSSES
        for x in ("auroc", "f1", "precision", "recall")
    ]
    keys += [
        ("multimodal", d, lo, s, "auroc")
        for d in DATASETS
        for lo in LOSSES
        for s in ("image", "text")
    ]
    for m, d, lo, s, x in keys:
        name = f"{m}_{d}_{lo}_{x}" if s == "none" else f"{m}_{d}_{lo}_{s}_shuffled_{x}"
        try:
            out[name] = t.get(x, m, d, lo, s).x
        except claims.Missing:
            out[name] = math.nan
    paper = Table(reference.results_table(), reference.sensitivity_table())
    for m, d, lo, s, x in keys:
        name = f"{m}_{d}_{lo}_{x}" if s == "none" else f"{m}_{d}_{lo}_{s}_shuffled_{x}"
        try:
            out[f"paper_{name}"] = paper.get(x, m, d, lo, s).x
        except claims.Missing:
            pass
    return out


def plot_training_grid(history: pd.DataFrame):
    """Training and validation loss per epoch, one panel per training set and loss."""
    return plots.loss_curves_grid(
        history, row="dataset", col="loss", hue="model", orders=ORDERS, names=PLOT_NAMES
    )


def plot_roc_grid(long: pd.DataFrame):
    """ROC curves of the three models, one panel per training set and loss."""
    base = long[long["shuffled"] == "none"]
    return plots.roc_grid(
        base, row="dataset", col="loss", hue="model", orders=ORDERS, names=PLOT_NAMES
    )


def plot_confusion_grid(long: pd.DataFrame, threshold: float = 0.5):
    """Row-normalised confusion matrices at ``threshold``: models x (training set, loss)."""
    return plots.confusion_grid(
        long[long["shuffled"] == "none"],
        row="model",
        col=("dataset", "loss"),
        class_names=["no\nfinding", "pneu-\nmonia"],
        threshold=threshold,
        orders=ORDERS,
        names={**PLOT_NAMES, **_DATASET_NAMES, **_LOSS_NAMES},
    )


def plot_sensitivity(sensitivity: pd.DataFrame):
    """AUROC of each multimodal run intact and with one modality shuffled (95% intervals),
    with the paper's Full BCE values as black ticks."""
    return plots.interval_bars(
        sensitivity,
        group=("dataset", "loss"),
        hue="shuffled",
        value="auroc",
        reference=reference.sensitivity_table(),
        reference_label="paper (Full BCE only)",
        orders=ORDERS,
        # "image" and "text" name shuffle conditions here, not models
        names={**PLOT_NAMES, "none": "intact", "image": "image shuffled", "text": "text shuffled"},
        ylabel="test AUROC",
        title="Multimodal model, bimodal sensitivity",
    )


def write_outputs(
    out_dir: Path,
    params: Mapping[str, object],
    *,
    cohort: Cohort,
    results: pd.DataFrame,
    sensitivity: pd.DataFrame,
    runs: Mapping[str, object],
    verdicts: pd.DataFrame,
) -> Path:
    """``claims.json`` and ``metrics.json`` of this run (both validated, written atomically);
    returns the path of ``claims.json``."""
    return write_chapter_outputs(
        out_dir,
        params,
        chapter=SLUG,
        paper=PAPER,
        verdicts=verdicts,
        cohort=cohort_section(cohort.flow, cohort.split_counts()),
        results=results,
        sensitivity=sensitivity,
        runs={
            name: {k: r.metrics.get(k) for k in ("best_epoch", "epochs_run", "stopped_early")}
            | {"path": str(r.path)}
            for name, r in runs.items()
        },
        headline=headline(cohort, results, sensitivity, verdicts),
    )
