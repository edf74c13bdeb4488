"""The MEEMS chapter's results: tables beside the paper's, hidden stratification measured on
the planted strata, slice discovery, claims, glued numbers, figures and outputs (the captioner's
results are read in :mod:`meems_captions`).

:mod:`mmcxr.chapters.meems` trains the runs; this module reads their stored predictions only.
Each claim is a :class:`~mmcxr.claims.ClaimSpec` run with the same code on the paper's numbers
(:mod:`meems_reference`) and on ours; where the paper shows a figure instead of a number the
claim is undecided on its side.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from mmcxr import claims, evaluate, metrics, plots
from mmcxr.chapters import meems_reference as reference
from mmcxr.chapters.meems import LABELS, PAPER, SLUG, Cohort
from mmcxr.claims import ClaimSpec, Verdict
from mmcxr.results import cohort_section, records, write_chapter_outputs

NAMES = {"baseline": "ResNet baseline", "meems": "MEEMS"}
#: Planted strata: (name, output read, easy stratum, hard stratum) -- see :func:`strata_masks`.
STRATA = (
    ("pneumothorax: chest tube vs none", "Pneumothorax", "chest tube", "no tube"),
    ("lung lesion: obvious vs subtle", "Lung Lesion", "obvious", "subtle"),
    ("finding: department PA vs portable AP", "finding", "department", "portable"),
)
SEPARATES = 0.70  # a linear probe at least this AUROC counts as "separates"
ENRICHED = 0.10  # a discovered slice recovers a stratum when its share rises by this much


# --------------------------------------------------------------------------------------------
# metrics


#: The paper's metrics: AUC (mean over classes), micro AUC, F1, and FNR/FPR at 0.5 (argmax).
METRIC_FNS = {
    "auroc": metrics.mean_auroc,
    "auroc_micro": metrics.micro_auroc,
    "f1": metrics.mean_f1,
    "fnr": metrics.false_negative_rate,
    "fpr": metrics.false_positive_rate,
}


def results_table(runs: Mapping[str, object], *, n_boot: int = 200, seed: int = 0) -> pd.DataFrame:
    """Test metrics of the four classifiers with percentile-bootstrap 95% intervals."""
    rows = []
    for task in ("binary", "14-label"):
        for model in ("baseline", "meems"):
            pred = runs[f"{model}-{task}"].predictions
            y, p = pred["labels"], pred["probs"]
            row = {"task": task, "model": model, "n": len(y)}
            for name, fn in METRIC_FNS.items():
                if n_boot:
                    ci = _quiet(metrics.bootstrap_ci, fn, y, p, n_boot=n_boot, seed=seed)
                    row.update({name: ci.point, f"{name}_lo": ci.lo, f"{name}_hi": ci.hi})
                else:
                    row[name] = fn(y, p)
            rows.append(row)
    return pd.DataFrame(rows)


def _quiet(fn, *args, **kwargs):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return fn(*args, **kwargs)


def paper_table(results: pd.DataFrame) -> pd.DataFrame:
    """Ours beside the paper's for the binary and 14-label tables (AUC, micro AUC, F1,
    FNR and FPR at the argmax / 0.5 operating point)."""
    idx = lambda t: [f"{NAMES[m]}, {tk}" for tk, m in zip(t["task"], t["model"], strict=True)]  # noqa: E731
    ours = results.set_index(pd.Index(idx(results)))
    ref = reference.results_table()
    paper = ref.set_index(pd.Index(idx(ref))).reindex(ours.index)
    return metrics.comparison_table(ours, paper, metrics=list(METRIC_FNS))


def per_class_auroc(runs: Mapping[str, object], cohort: Cohort) -> pd.DataFrame:
    """Per-label test AUROC of both 14-label models, with training and test positives."""
    train_pos = cohort.targets("14-label", "embedding").sum(0)
    rows = []
    for j, c in enumerate(LABELS):
        row = {"label": c, "train positives": int(train_pos[j])}
        for m in ("baseline", "meems"):
            pred = runs[f"{m}-14-label"].predictions
            row["test positives"] = int(pred["labels"][:, j].sum())
            row[NAMES[m]] = metrics.mean_auroc(pred["labels"][:, j], pred["probs"][:, j])
        rows.append(row)
    return pd.DataFrame(rows).set_index("label")


def primary_label(Y: np.ndarray) -> np.ndarray:
    """One label per image for colours and argmax confusion matrices: its first positive
    finding in CheXpert order (Support Devices only when nothing else), else No Finding."""
    order = [j for j, c in enumerate(LABELS) if c not in ("No Finding", "Support Devices")]
    out = np.full(len(Y), LABELS.index("No Finding"))
    devices = LABELS.index("Support Devices")
    for i, row in enumerate(Y):
        pos = [j for j in order if row[j] == 1]
        out[i] = pos[0] if pos else (devices if row[devices] == 1 and row[8] != 1 else out[i])
    return out


# --------------------------------------------------------------------------------------------
# hidden stratification, measured


def strata_masks(test: pd.DataFrame, gt: pd.DataFrame) -> dict[str, tuple[np.ndarray, ...]]:
    """Per planted stratum pair: ``(output, easy positives, hard positives, negatives)`` as
    boolean masks over the test rows (ground truth joined on ``dicom_id``)."""
    g = test[["dicom_id"]].merge(gt, on="dicom_id", how="left")
    tube, lesion = g["stratum_pneumothorax_chest_tube"], g["stratum_lesion"]
    port = g["portable"].fillna(False).astype(bool).to_numpy()
    ptx, les = test["y_Pneumothorax"].to_numpy() == 1, test["y_Lung Lesion"].to_numpy() == 1
    return {
        STRATA[0][0]: ("Pneumothorax", ptx & (tube == 1.0).to_numpy(),
                       ptx & (tube == 0.0).to_numpy(), ~ptx),
        STRATA[1][0]: ("Lung Lesion", les & (lesion == "obvious").to_numpy(),
                       les & (lesion == "subtle").to_numpy(), ~les),
        # a film type holds both classes: each stratum is scored within itself
        STRATA[2][0]: ("finding", ~port, port, None),
    }  # fmt: skip


def _output(pred: Mapping[str, np.ndarray], output: str, runs_task: str) -> np.ndarray:
    return pred["probs"] if output == "finding" else pred["probs"][:, LABELS.index(output)]


def strata_table(
    runs: Mapping[str, object],
    cohort: Cohort,
    gt: pd.DataFrame,
    *,
    n_boot: int = 200,
    seed: int = 0,
) -> pd.DataFrame:
    """AUROC of each model on each planted stratum (positives of the stratum against every
    negative; for film type, both classes within the stratum), with 95% intervals."""
    test = cohort.rows("test").reset_index(drop=True)
    rows = []
    for name, (output, easy, hard, neg) in strata_masks(test, gt).items():
        task = "binary" if output == "finding" else "14-label"
        y_all = (
            test["finding"].to_numpy() if output == "finding" else test[f"y_{output}"].to_numpy()
        )
        for model in ("baseline", "meems"):
            p = _output(runs[f"{model}-{task}"].predictions, output, task)
            for label, mask in (("easy", easy), ("hard", hard)):
                keep = mask if neg is None else (mask | neg)
                y, s = y_all[keep], p[keep]
                row = {"strata": name, "model": model, "stratum": label, "positives": int(y.sum()),
                       "n": int(keep.sum())}  # fmt: skip
                if 0 < y.sum() < len(y) and n_boot:
                    ci = _quiet(
                        metrics.bootstrap_ci, metrics.mean_auroc, y, s, n_boot=n_boot, seed=seed
                    )
                    row.update(auroc=ci.point, auroc_lo=ci.lo, auroc_hi=ci.hi)
                else:
                    row.update(auroc=metrics.mean_auroc(y, s) if 0 < y.sum() < len(y) else math.nan)
                rows.append(row)
    return pd.DataFrame(rows)


def discover_slices(
    runs: Mapping[str, object], cohort: Cohort, gt: pd.DataFrame, *, k: int = 3, seed: int = 0
) -> pd.DataFrame:
    """Slice discovery without stratum labels (in the spirit of Domino/GEORGE): cluster the
    positives of each output in the model's own representation (MEEMS: the 200-d embedding;
    baseline: the ResNet's pooled features) with k-means, take the cluster with the highest
    mean error (1 - p), and only then look at the planted strata: the stratum is recovered
    when the worst cluster's share of the hard stratum exceeds its share among all positives
    by at least ``ENRICHED``."""
    test = cohort.rows("test").reset_index(drop=True)
    rows = []
    for name, (output, _easy, hard, _neg) in strata_masks(test, gt).items():
        task = "binary" if output == "finding" else "14-label"
        y = test["finding"].to_numpy() if output == "finding" else test[f"y_{output}"].to_numpy()
        pos = np.flatnonzero(y == 1)
        for model in ("baseline", "meems"):
            pred = runs[f"{model}-{task}"].predictions
            row = {"strata": name, "model": model, "positives": len(pos),
                   "hard share": float(hard[pos].mean()) if len(pos) else math.nan}  # fmt: skip
            if len(pos) < 2 * k or hard[pos].sum() == 0 or hard[pos].all():
                rows.append(row | {"worst share": math.nan, "recovered": math.nan})
                continue
            err = 1 - _output(pred, output, task)[pos]
            lab, worst = evaluate.worst_error_cluster(pred["features"][pos], err, k, seed)
            share = float(hard[pos][lab == worst].mean())
            rows.append(row | {"worst size": int((lab == worst).sum()), "worst error":
                               float(err[lab == worst].mean()), "worst share": share,
                               "recovered": float(share - row["hard share"] >= ENRICHED)})  # fmt: skip
    return pd.DataFrame(rows)


def embedding_separation(runs: Mapping[str, object], cohort: Cohort, seed: int = 0) -> dict:
    """How well No Finding separates from findings in the 200-d MEEMS embedding of D_test: a
    5-fold cross-validated logistic-regression AUROC and the silhouette of the two groups."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import silhouette_score
    from sklearn.model_selection import cross_val_predict

    emb = runs["meems-14-label"].predictions["features"]
    y = cohort.rows("test")["finding"].to_numpy().astype(int)
    z = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-8)
    if min(y.sum(), len(y) - y.sum()) < 5:
        return {"probe_auroc": math.nan, "silhouette": math.nan}
    p = cross_val_predict(LogisticRegression(max_iter=1000), z, y, cv=5, method="predict_proba")
    return {"probe_auroc": metrics.auroc(y, p[:, 1]), "silhouette": float(silhouette_score(z, y))}


# --------------------------------------------------------------------------------------------
# claims


def claim_table(
    results, *, separation=None, per_class=None, strata=None, slices=None
) -> pd.DataFrame:
    """Everything the claims read, as one tidy table keyed by ``task, model``."""
    parts = [results]
    if separation is not None:
        parts.append(pd.DataFrame([{"task": "embedding", "model": "meems", **separation}]))
    if per_class is not None:
        pc = per_class[(per_class.index != "No Finding") & (per_class["test positives"] > 0)]
        pc = pc.dropna(subset=[NAMES["meems"]])
        if len(pc):
            rare, common = pc["train positives"].idxmin(), pc["train positives"].idxmax()
            parts.append(pd.DataFrame([{"task": "minority", "model": "meems",
                                        "rare_auroc": pc.loc[rare, NAMES["meems"]],
                                        "common_auroc": pc.loc[common, NAMES["meems"]],
                                        "rare": rare, "common": common}]))  # fmt: skip
    if strata is not None:
        for (name, model), g in strata.groupby(["strata", "model"], sort=False):
            a = g.set_index("stratum")["auroc"]
            parts.append(
                pd.DataFrame(
                    [
                        {
                            "task": f"strata:{name}",
                            "model": model,
                            "gap": a.get("easy", np.nan) - a.get("hard", np.nan),
                        }
                    ]
                )
            )
    if slices is not None:
        for model, g in slices.groupby("model"):
            r = g["recovered"].dropna()
            parts.append(pd.DataFrame([{"task": "slices", "model": model,
                                        "recovered": r.sum() if len(r) else np.nan,
                                        "decidable": float(len(r))}]))  # fmt: skip
    return pd.concat(parts, ignore_index=True)


class Table(claims.ResultTable):
    def __init__(self, table: pd.DataFrame) -> None:
        super().__init__(
            table, ("task", "model"), name=lambda task, model: f"{NAMES[model]} {task}"
        )

    def get(self, metric: str, task: str, model: str) -> claims.Number:
        if metric not in self.table.columns:
            raise claims.Missing(f"no {metric} for {task}")
        return self.value(metric, task=task, model=model)


def _beats(task: str):
    def test(t: Table, tol: float) -> Verdict:
        parts, ok = [], True
        for m in ("auroc", "f1"):
            b, e = t.get(m, task, "baseline"), t.get(m, task, "meems")
            ok &= e.x > b.x
            parts.append(f"{m.upper()} MEEMS {e} vs baseline {b}")
        return Verdict(bool(ok), f"{task}: " + "; ".join(parts))

    return test


def _fnr_fpr(t: Table, tol: float) -> Verdict:
    parts, ok = [], True
    for m, better in (("fnr", lambda e, b: e < b), ("fpr", lambda e, b: e > b)):
        b, e = t.get(m, "binary", "baseline"), t.get(m, "binary", "meems")
        ok &= better(e.x, b.x)
        parts.append(f"{m.upper()} MEEMS {e} vs baseline {b}")
    return Verdict(bool(ok), "binary, at 0.5 (argmax): " + "; ".join(parts))


def _separates(t: Table, tol: float) -> Verdict:
    p, s = t.get("probe_auroc", "embedding", "meems"), t.get("silhouette", "embedding", "meems")
    return Verdict(bool(p.x >= SEPARATES and s.x > 0), f"probe AUROC {p} (needs >= {SEPARATES}), "
                   f"silhouette {s} (needs > 0)")  # fmt: skip


def _minority(t: Table, tol: float) -> Verdict:
    r, c = t.get("rare_auroc", "minority", "meems"), t.get("common_auroc", "minority", "meems")
    row = t.table[t.table["task"] == "minority"].iloc[0]
    return Verdict(bool(r.x < c.x - tol), f"rarest {row['rare']} AUROC {r} vs commonest "
                   f"{row['common']} {c}")  # fmt: skip


def _strata_narrower(t: Table, tol: float) -> Verdict:
    parts, wins, n = [], 0, 0
    for name, *_ in STRATA:
        try:
            b, e = (
                t.get("gap", f"strata:{name}", "baseline"),
                t.get("gap", f"strata:{name}", "meems"),
            )
        except claims.Missing:
            continue
        n += 1
        wins += e.x < b.x - tol
        parts.append(f"{name}: gap MEEMS {e} vs baseline {b}")
    if n == 0:
        raise claims.Missing("no stratum with both AUROCs defined")
    return Verdict(bool(wins > n / 2), f"narrower in {wins} of {n}: " + "; ".join(parts))


def _slices(t: Table, tol: float) -> Verdict:
    parts, ok = [], True
    for m in ("baseline", "meems"):
        r, d = t.get("recovered", "slices", m), t.get("decidable", "slices", m)
        ok &= r.x >= d.x / 2
        parts.append(f"{NAMES[m]}: {r.x:.0f} of {d.x:.0f}")
    return Verdict(bool(ok), "strata recovered by the worst k-means cluster: " + "; ".join(parts))


CLAIMS: tuple[ClaimSpec, ...] = (
    ClaimSpec("meems-beats-baseline-binary", "MEEMS beats the ResNet baseline on binary "
              "(Finding / No Finding) AUC and F1.", _beats("binary")),
    ClaimSpec("meems-beats-baseline-14", "MEEMS beats the ResNet baseline on 14-label mean AUC "
              "and F1.", _beats("14-label")),
    ClaimSpec("meems-lower-fnr-higher-fpr", "At the argmax operating point MEEMS has a lower "
              "false-negative and a higher false-positive rate than the baseline (binary).",
              _fnr_fpr),
    ClaimSpec("no-finding-separates", "No Finding separates from the findings in the MEEMS "
              "embedding space (the paper shows PCA plots; measured here by a linear probe "
              "and the silhouette).", _separates),
    ClaimSpec("minority-not-captured", "Minority classes are not captured: the rarest class's "
              "AUROC is below the commonest finding's.", _minority),
    ClaimSpec("meems-reduces-stratification", "MEEMS reduces hidden stratification: its AUROC "
              "gap between the easy and the hard planted stratum is narrower than the "
              "baseline's for most strata (the paper's hypothesis, which it could not measure).",
              _strata_narrower),
    ClaimSpec("slices-recover-strata", "Under-performing slices found without stratum labels "
              "(k-means on each class's representations, ranked by error) recover at least half "
              "of the planted strata.", _slices),
)  # fmt: skip


def evaluate_claims(ours: pd.DataFrame, *, tol: float = 0.01) -> pd.DataFrame:
    """Every claim on the paper's numbers and on ``ours`` (a :func:`claim_table`)."""
    return claims.evaluate_claims(CLAIMS, Table(ours), Table(reference.results_table()), tol=tol)


# --------------------------------------------------------------------------------------------
# numbers for the prose


def headline(
    cohort: Cohort, results, verdicts, *, extra: Mapping[str, float] | None = None
) -> dict:
    """The numbers the page quotes (glued), ours and the paper's."""
    out: dict[str, float] = {"n_images": len(cohort.table), **claims.tally(verdicts)}
    for s in ("captioning", "embedding", "val", "test"):
        out[f"n_{s}"] = len(cohort.rows(s))
    for r in results.itertuples():
        for m in METRIC_FNS:
            out[f"{r.model}_{r.task.replace('-', '')}_{m}"] = float(getattr(r, m))
    for r in reference.results_table().itertuples():
        for m in METRIC_FNS:
            v = getattr(r, m, math.nan)
            if v == v:
                out[f"paper_{r.model}_{r.task.replace('-', '')}_{m}"] = float(v)
    out.update(extra or {})
    return out


# --------------------------------------------------------------------------------------------
# figures


def plot_rocs(runs: Mapping[str, object]):
    """Figures 6 and 7 analogues: binary ROC of both models; per-class 14-label ROCs."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    for m, style in (("baseline", "--"), ("meems", "-")):
        pred = runs[f"{m}-binary"].predictions
        c = metrics.roc_curve(pred["labels"], pred["probs"])
        axes[0].plot(c.fpr, c.tpr, style, label=f"{NAMES[m]} (AUC {c.auroc:.3f})")
    axes[0].set(title="binary: Finding vs No Finding")
    for ax, m in zip(axes[1:], ("baseline", "meems"), strict=True):
        pred = runs[f"{m}-14-label"].predictions
        for j, name in enumerate(LABELS):
            y = pred["labels"][:, j]
            if 0 < y.sum() < len(y):
                c = metrics.roc_curve(y, pred["probs"][:, j])
                ax.plot(c.fpr, c.tpr, lw=1, label=f"{name} ({c.auroc:.2f})")
        ax.set(title=f"14-label: {NAMES[m]}")
        ax.legend(fontsize=6)
    for ax in axes:
        ax.plot([0, 1], [0, 1], ":", c="grey")
        ax.set(xlabel="false-positive rate", ylabel="true-positive rate")
    axes[0].legend()
    fig.tight_layout()
    return fig


def plot_confusions(runs: Mapping[str, object]):
    """Figures 6 and 8 analogues: argmax confusion matrices (rows: truth, normalised)."""
    fig, axes = plt.subplots(1, 4, figsize=(18, 4.6), gridspec_kw={"width_ratios": [1, 1, 2, 2]})
    for ax, m in zip(axes[:2], ("baseline", "meems"), strict=True):
        pred = runs[f"{m}-binary"].predictions
        cm = pd.crosstab(pred["labels"].astype(int), (pred["probs"] >= 0.5).astype(int)).reindex(
            index=[0, 1], columns=[0, 1], fill_value=0).to_numpy()  # fmt: skip
        _matrix(ax, cm, ["No Finding", "Finding"], f"binary: {NAMES[m]}")
    short = [c[:12] for c in LABELS]
    for ax, m in zip(axes[2:], ("baseline", "meems"), strict=True):
        pred = runs[f"{m}-14-label"].predictions
        t, p = primary_label(pred["labels"]), pred["probs"].argmax(1)
        cm = np.zeros((len(LABELS), len(LABELS)), int)
        np.add.at(cm, (t, p), 1)
        _matrix(ax, cm, short, f"14-label (argmax): {NAMES[m]}", annotate=False)
    fig.tight_layout()
    return fig


def _matrix(ax, cm, names, title, annotate=True):
    norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.set(title=title, xlabel="predicted", ylabel="true")
    if annotate:
        for (i, j), v in np.ndenumerate(cm):
            ax.text(j, i, f"{norm[i, j]:.2f}\n({v})", ha="center", va="center", fontsize=8)


def plot_pca(emb: np.ndarray, Y: np.ndarray):
    """Figure 5 analogue: PCA of the normalised embeddings coloured by each film's primary label
    (:func:`primary_label`), and the per-class grid of the paper's supplementary material."""
    return plots.plot_embedding_pca(emb, primary_label(Y), LABELS)


# --------------------------------------------------------------------------------------------
# outputs


def write_outputs(out_dir: Path, params: Mapping[str, object], *, cohort: Cohort, results,
                  tables: Mapping[str, pd.DataFrame], runs: Mapping[str, object], verdicts,
                  headline_numbers: Mapping[str, float]) -> Path:  # fmt: skip
    """``claims.json`` and ``metrics.json`` (validated, atomic); returns the claims path."""
    from mmcxr.chapters.meems import split_table

    return write_chapter_outputs(
        out_dir, params, chapter=SLUG, paper=PAPER, verdicts=verdicts,
        cohort=cohort_section(cohort.flow, split_table(cohort).reset_index()),
        results=results, **{k: records(v.reset_index()) for k, v in tables.items()},
        runs={n: {k: r.metrics.get(k) for k in ("best_epoch", "epochs_run")} | {"path": str(r.path)}
              for n, r in runs.items()},
        headline=dict(headline_numbers),
    )  # fmt: skip
