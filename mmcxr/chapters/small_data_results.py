"""The small-data chapter's results (paper 002): claims, tables beside the paper's, the numbers
the prose quotes, the figures and the explorer.

:mod:`mmcxr.chapters.small_data` trains the runs; this module reads their tables only. All
results meet in one tidy table (:func:`results_table`) keyed by experiment, group and variant,
and each claim is a test on it (:class:`mmcxr.claims.ClaimSpec`), run with the same code on
the paper's numbers (:mod:`small_data_reference`) and on ours.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Circle
from matplotlib.ticker import MaxNLocator

from mmcxr import claims, explain, metrics, plots
from mmcxr.chapters import small_data_reference as reference
from mmcxr.chapters.small_data import LRS, METHODS, MODELS, PAPER, SLUG, Cohort
from mmcxr.claims import ClaimSpec, Verdict
from mmcxr.results import cohort_section, write_chapter_outputs

KEYS = ("experiment", "group", "variant")
MODEL_NAMES = {"multimodal": "Multimodal", "text": "Text", "image": "Image"}
LR_NAMES = {"high": "high learning rate", "low": "low learning rate"}
INIT_NAMES = {
    "chestxray14": "ChestX-ray14 pretrained",
    "scratch": "from scratch",
    "imagenet": "ImageNet",
}
COLOURS = {"multimodal": "#2ca02c", "image": "#e377c2", "text": "#1f77b4"}  # the paper's


# --------------------------------------------------------------------------------------------
# one results table


def _threshold_key(t: float) -> str:
    return f"{float(t):.2f}"


def text_rows(text_runs: Mapping[str, object]) -> pd.DataFrame:
    """Tables 1-2 analogue (ours: Indiana only): ``dataset, embedding, train, val, test`` plus
    the test accuracy's bootstrap interval columns when the runs carry predictions."""
    rows = []
    for emb, run in text_runs.items():
        m = run.metrics
        rows.append({"dataset": "indiana", "embedding": emb, "train": m["train"],
                     "val": m["val"], "test": m["test"], "coverage": m.get("coverage")})  # fmt: skip
    return pd.DataFrame(rows)


def with_test_interval(table: pd.DataFrame, text_runs, n_boot: int, seed: int) -> pd.DataFrame:
    """Add ``test_lo``/``test_hi``: a percentile-bootstrap 95% interval over test cases."""
    t = table.copy()
    for i, emb in enumerate(t["embedding"]):
        p = text_runs[emb].predictions
        if n_boot and "probs" in p:
            ci = metrics.bootstrap_ci(metrics.accuracy, p["labels"], p["probs"], n_boot, seed=seed)
            t.loc[i, ["test_lo", "test_hi"]] = [ci.lo, ci.hi]
    return t


def table3_rows(history: pd.DataFrame) -> pd.DataFrame:
    """Table 3 analogue: mean held-out accuracy over splits and epochs per (lr, model), with
    the range of the per-split means as ``accuracy_lo``/``accuracy_hi`` and the split count."""
    per_split = history.groupby(["lr", "model", "split"])["accuracy"].mean().reset_index()
    g = per_split.groupby(["lr", "model"])["accuracy"]
    out = pd.DataFrame(
        {"accuracy": g.mean(), "accuracy_lo": g.min(), "accuracy_hi": g.max(), "splits": g.size()}
    ).reset_index()
    out["accuracy"] = history.groupby(["lr", "model"])["accuracy"].mean().to_numpy()
    return out


def figure4_rows(image_runs: Mapping[str, object]) -> pd.DataFrame:
    """Figure 4 summary: mean and last validation accuracy over the fine-tuning epochs."""
    rows = []
    for init, run in image_runs.items():
        acc = run.history["val_accuracy"]
        rows.append({"init": init, "val_accuracy": float(acc.mean()),
                     "last_val_accuracy": float(acc.iloc[-1]), "test": run.metrics["test"]})  # fmt: skip
    return pd.DataFrame(rows)


def detection_rows(circles: pd.DataFrame) -> pd.DataFrame:
    """Localisation per method and sight sensitivity, averaged over the explained images."""
    cols = ["hit", "false_circles", "true_circles", "n_circles", "covered", "precision"]
    return circles.groupby(["method", "threshold"])[cols].mean().reset_index()


def results_table(
    text: pd.DataFrame | None = None,
    table3: pd.DataFrame | None = None,
    figure4: pd.DataFrame | None = None,
    detection: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Every result in one tidy table keyed by ``experiment, group, variant`` (what the claims
    read); any part may be absent (the paper has no numbers for Figure 4 or the detector)."""
    parts = []
    if text is not None:
        parts.append(text.rename(columns={"dataset": "group", "embedding": "variant"})
                     .assign(experiment="text"))  # fmt: skip
    if table3 is not None:
        parts.append(table3.rename(columns={"lr": "group", "model": "variant"})
                     .assign(experiment="table3"))  # fmt: skip
    if figure4 is not None:
        parts.append(figure4.rename(columns={"init": "variant"})
                     .assign(experiment="figure4", group="indiana"))  # fmt: skip
    if detection is not None:
        d = detection.rename(columns={"method": "group"})
        d["variant"] = d.pop("threshold").map(_threshold_key)
        parts.append(d.assign(experiment="detection"))
    if not parts:
        raise ValueError("results_table needs at least one part")
    return pd.concat(parts, ignore_index=True)


def paper_table() -> pd.DataFrame:
    return results_table(text=reference.text_table(), table3=reference.multimodal_table())


class Table(claims.ResultTable):
    """The tidy results table, looked up by (experiment, group, variant)."""

    def __init__(self, table: pd.DataFrame) -> None:
        super().__init__(table, KEYS, name=lambda **k: f"{k['group']} {k['variant']}")

    def get(self, metric: str, experiment: str, group: str, variant: str) -> claims.Number:
        return self.value(metric, experiment=experiment, group=group, variant=variant)


# --------------------------------------------------------------------------------------------
# claims


def _custom_beats_generic(t: Table, tol: float) -> Verdict:
    parts, ok = [], True
    for _, group, _ in sorted({c[:2] + ("",) for c in t.combos(experiment="text")}):
        c = t.get("test", "text", group, "custom")
        g = t.get("test", "text", group, "generic")
        ok &= c.x > g.x + tol
        parts.append(f"{group}: custom {c} vs generic {g}")
    return Verdict(ok, "test accuracy " + "; ".join(parts))


def _multimodal_beats(lr: str):
    def test(t: Table, tol: float) -> Verdict:
        mm = t.get("accuracy", "table3", lr, "multimodal")
        txt = t.get("accuracy", "table3", lr, "text")
        img = t.get("accuracy", "table3", lr, "image")
        ok = mm.x > txt.x + tol and mm.x > img.x + tol
        return Verdict(
            ok,
            f"{LR_NAMES[lr]}: multimodal {mm}, text {txt}, image {img}; gain over text "
            f"{mm.x - txt.x:+.3f}, over image {mm.x - img.x:+.3f} (the abstract: "
            f"+{reference.ABSTRACT_GAINS['text']:.2f} and +{reference.ABSTRACT_GAINS['image']:.2f})",
        )

    return test


def _chestxray14_beats(t: Table, tol: float) -> Verdict:
    variants = [c[2] for c in t.combos(experiment="figure4")]
    alt = next((v for v in variants if v != "chestxray14"), None)
    if alt is None:
        raise claims.Missing("no alternative initialisation in Figure 4")
    cxr = t.get("val_accuracy", "figure4", "indiana", "chestxray14")
    other = t.get("val_accuracy", "figure4", "indiana", alt)
    return Verdict(
        cxr.x > other.x + tol,
        f"validation accuracy averaged over the fine-tuning epochs: ChestX-ray14 {cxr} vs "
        f"{INIT_NAMES.get(alt, alt)} {other}",
    )


def _sensitivity_trades(t: Table, tol: float) -> Verdict:
    method = "integrated gradients"
    thresholds = sorted(c[2] for c in t.combos(experiment="detection", group=method))
    if len(thresholds) < 2:
        raise claims.Missing("the detector was run at fewer than two sensitivities")
    lo, hi = thresholds[0], thresholds[-1]
    f_lo = t.get("false_circles", "detection", method, lo)
    f_hi = t.get("false_circles", "detection", method, hi)
    c_lo = t.get("covered", "detection", method, lo)
    c_hi = t.get("covered", "detection", method, hi)
    h_lo = t.get("hit", "detection", method, lo)
    h_hi = t.get("hit", "detection", method, hi)
    p_lo = t.get("precision", "detection", method, lo)
    p_hi = t.get("precision", "detection", method, hi)
    ok = f_hi.x < f_lo.x - tol and c_hi.x < c_lo.x
    return Verdict(
        ok,
        f"IG, sensitivity {lo} -> {hi}: false circles per image {f_lo} -> {f_hi}; share of "
        f"lesion pixels inside a circle {c_lo} -> {c_hi}; images with a circle centred on a "
        f"lesion {h_lo} -> {h_hi}; circled pixels on a lesion {p_lo} -> {p_hi}",
    )


CLAIMS: tuple[ClaimSpec, ...] = (
    ClaimSpec(
        "custom-embedding-beats-generic",
        "A text model initialised with Word2Vec trained on the institution's own reports "
        "reaches a higher test accuracy than one initialised with a generic embedding.",
        _custom_beats_generic,
    ),
    ClaimSpec(
        "multimodal-beats-unimodal-high-lr",
        "Fine-tuned at the high learning rate (1e-2), the concatenation model is more accurate "
        "on average over splits and epochs than the text and the image model alone.",
        _multimodal_beats("high"),
    ),
    ClaimSpec(
        "multimodal-beats-unimodal-low-lr",
        "Fine-tuned at the low learning rate (1e-5), the concatenation model is more accurate "
        "on average over splits and epochs than the text and the image model alone.",
        _multimodal_beats("low"),
    ),
    ClaimSpec(
        "chestxray14-pretraining-beats-alternative",
        "An image encoder pretrained on ChestX-ray14 fine-tunes to a higher validation accuracy "
        "than the generic alternative (ImageNet in the paper; here from scratch unless ImageNet "
        "weights are given). The paper shows this in Figure 4 only, without numbers.",
        _chestxray14_beats,
    ),
    ClaimSpec(
        "sight-sensitivity-trades-noise-for-signal",
        "Raising the sight-sensitivity threshold of the integrated-gradients detector removes "
        "false circles (structured noise) at the cost of some true positive signal. The paper "
        "describes this on one image (Figure 2) without numbers.",
        _sensitivity_trades,
    ),
)


def evaluate_claims(results: pd.DataFrame, *, tol: float = 0.0) -> pd.DataFrame:
    """Every claim decided on the paper's numbers and, with the same test, on ours."""
    return claims.evaluate_claims(CLAIMS, Table(results), Table(paper_table()), tol=tol)


# --------------------------------------------------------------------------------------------
# tables beside the paper's


def cohort_vs_paper(cohort: Cohort) -> pd.DataFrame:
    """Our cohort's size and balance beside section 4's."""
    t = cohort.table
    words = t["text"].str.split().str.len().mean()
    paper = reference.COHORT
    rows = [
        ("cases (frontal image + report)", f"{len(t):,}", f"{paper['cases']:,}"),
        ("abnormal share (MeSH not 'normal')", f"{t['label'].mean():.1%}",
         f"{paper['abnormal_share']:.0%}"),
        ("words per report", f"{words:.1f}", f"{paper['words_per_report']}"),
    ]  # fmt: skip
    return pd.DataFrame(rows, columns=["count", "ours", "paper"]).set_index("count")


def text_comparison(text: pd.DataFrame) -> pd.DataFrame:
    """Tables 1-2: our accuracies beside the paper's (Alfred Hospital: the paper's only)."""
    paper = reference.text_table().set_index(["dataset", "embedding"])
    ours = text.set_index(["dataset", "embedding"])
    rows = []
    for (dataset, emb), p in paper.iterrows():
        row = {"dataset": {"indiana": "Indiana University", "alfred": "Alfred Hospital"}[dataset],
               "embedding": emb}  # fmt: skip
        for split in ("train", "val", "test"):
            o = ours[split].get((dataset, emb), math.nan)
            cell = "no data" if math.isnan(o) else f"{o:.3f}"
            if split == "test" and "test_lo" in ours and not math.isnan(o):
                lo, hi = ours.loc[(dataset, emb), ["test_lo", "test_hi"]]
                if not math.isnan(lo):
                    cell += f" [{lo:.3f}, {hi:.3f}]"
            row[f"{split} (ours)"] = cell
            row[f"{split} (paper)"] = f"{p[split]:.2f}"
        rows.append(row)
    return pd.DataFrame(rows).set_index(["dataset", "embedding"])


def table3_comparison(table3: pd.DataFrame) -> pd.DataFrame:
    """Table 3: our mean accuracy (range of the per-split means) beside the paper's."""
    paper = reference.multimodal_table().set_index(["lr", "model"])["accuracy"]
    rows = []
    for lr in LRS:
        row = {"learning rate": lr}
        for m in MODELS:
            r = table3[(table3["lr"] == lr) & (table3["model"] == m)]
            row[f"{MODEL_NAMES[m]} (ours)"] = (
                f"{r['accuracy'].iloc[0]:.3f} [{r['accuracy_lo'].iloc[0]:.3f}, "
                f"{r['accuracy_hi'].iloc[0]:.3f}]"
                if len(r)
                else "not run"
            )
            row[f"{MODEL_NAMES[m]} (paper)"] = f"{paper[(lr, m)]:.2f}"
        rows.append(row)
    return pd.DataFrame(rows).set_index("learning rate")


def pointing_table(pointing: pd.DataFrame) -> pd.DataFrame:
    """Pointing-game score per attribution method (share of images whose peak is on a lesion)."""
    g = pointing.groupby("method")["pointing"]
    out = pd.DataFrame({"pointing game": g.mean(), "images": g.size()})
    return out.reindex([m for m in METHODS if m in out.index])


def text_hits(texts: pd.DataFrame) -> pd.DataFrame:
    """How often the top-scored word is a MeSH heading word, beside a word drawn at random."""
    abnormal = texts[texts["label"] == 1]
    return pd.DataFrame(
        {
            "reports": [len(abnormal)],
            "top word names a MeSH finding": [abnormal["top_hit"].mean()],
            "a random word does (chance)": [abnormal["chance"].mean()],
        }  # fmt: skip
    )


# --------------------------------------------------------------------------------------------
# numbers the prose quotes


def headline(
    cohort: Cohort, results: pd.DataFrame, pointing: pd.DataFrame, texts: pd.DataFrame,
    verdicts: pd.DataFrame,
) -> dict[str, float]:  # fmt: skip
    """The numbers the chapter's prose quotes (glued, never typed), ours and the paper's."""
    t, p = Table(results), Table(paper_table())
    out: dict[str, float] = {
        "n_cases": len(cohort.table),
        "abnormal_share": float(cohort.table["label"].mean()),
        "n_test": int((cohort.table["split"] == "test").sum()),
        **claims.tally(verdicts),
    }

    def put(name, table, *key):
        try:
            out[name] = table.get(*key).x
        except claims.Missing:
            out[name] = math.nan

    for emb in ("custom", "generic"):
        put(f"text_{emb}_test", t, "test", "text", "indiana", emb)
        put(f"paper_text_{emb}_test", p, "test", "text", "indiana", emb)
    for lr in LRS:
        for m in MODELS:
            put(f"{lr}_{m}", t, "accuracy", "table3", lr, m)
            put(f"paper_{lr}_{m}", p, "accuracy", "table3", lr, m)
        for m in ("text", "image"):
            out[f"{lr}_gain_{m}"] = out[f"{lr}_multimodal"] - out[f"{lr}_{m}"]
    for init in results.loc[results["experiment"] == "figure4", "variant"]:
        put(f"fig4_{init}", t, "val_accuracy", "figure4", "indiana", init)
    det = results[(results["experiment"] == "detection")
                  & (results["group"] == "integrated gradients")]  # fmt: skip
    if len(det):
        lo, hi = det["variant"].min(), det["variant"].max()
        for name, v in (("low", lo), ("high", hi)):
            out[f"ig_sensitivity_{name}"] = float(v)
            for metric in ("hit", "false_circles", "covered", "precision"):
                put(f"ig_{metric}_{name}", t, metric, "detection", "integrated gradients", v)
    for m, s in pointing.groupby("method")["pointing"].mean().items():
        out[f"pointing_{m.replace(' ', '_').replace('-', '_')}"] = float(s)
    abnormal = texts[texts["label"] == 1]
    out["text_top_hit"] = float(abnormal["top_hit"].mean()) if len(abnormal) else math.nan
    out["text_chance"] = float(abnormal["chance"].mean()) if len(abnormal) else math.nan
    return out


# --------------------------------------------------------------------------------------------
# figures


def plot_figure4(image_runs: Mapping[str, object]) -> Figure:
    """Validation accuracy after every fine-tuning epoch, per initialisation (Figure 4)."""
    with plots.style():
        fig = Figure(figsize=(5.5, 3.4))
        ax = fig.add_subplot()
        for init, run in image_runs.items():
            h = run.history
            ax.plot(h["epoch"], h["val_accuracy"], marker="o", label=INIT_NAMES.get(init, init))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("fine-tuning epoch")
        ax.set_ylabel("validation accuracy")
        ax.set_title("Image model: transfer from ChestX-ray14 vs the alternative")
        ax.legend()
    return fig


def plot_figure5(history: pd.DataFrame, params: Mapping[str, object]) -> Figure:
    """Held-out accuracy per epoch over stratified splits: mean line, min-max band (Figure 5)."""
    with plots.style():
        fig = Figure(figsize=(10, 3.6))
        axes = fig.subplots(1, 2, sharey=True)
        for ax, lr in zip(axes, LRS, strict=True):
            part = history[history["lr"] == lr]
            for m in MODELS:
                g = part[part["model"] == m].groupby("epoch")["accuracy"]
                mean, lo, hi = g.mean(), g.min(), g.max()
                ax.plot(mean.index, mean, color=COLOURS[m], label=MODEL_NAMES[m])
                ax.fill_between(mean.index, lo, hi, color=COLOURS[m], alpha=0.2, lw=0)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            n, e = part["split"].nunique(), part["epoch"].nunique()
            ax.set_title(f"lr {params[f'lr_{lr}']:g}: {n} split{'s' * (n != 1)} x {e} epochs")
            ax.set_xlabel("epoch")
        axes[0].set_ylabel("held-out accuracy")
        axes[0].legend()
    return fig


def _outline(ax, mask: np.ndarray) -> None:
    if mask is not None and mask.any():
        ax.contour(mask.astype(float), levels=[0.5], colors="#39ff14", linewidths=1.0)


def plot_figure2(
    image: np.ndarray, attribution: np.ndarray, sensitivities: Sequence[float],
    mask: np.ndarray | None = None, **circle_kwargs: object,
) -> Figure:  # fmt: skip
    """Figure 2 analogue: surviving pixels (top) and their bounding circles on the image
    (bottom) from high to low sight sensitivity; the planted lesion outlined in green."""
    a = np.clip(np.asarray(attribution, dtype=float), 0, None)
    with plots.style():
        fig = Figure(figsize=(3.2 * len(sensitivities), 6.4))
        axes = fig.subplots(2, len(sensitivities))
        for j, s in enumerate(sensitivities):
            circles = explain.sight_sensitivity(a, float(s), **circle_kwargs)
            rows, cols = np.nonzero(a > circles.attrs["cut"])
            top, bottom = axes[0, j], axes[1, j]
            top.scatter(cols, rows, s=2, c="k")
            top.set(xlim=(0, a.shape[1]), ylim=(a.shape[0], 0), aspect="equal", xticks=[],
                    yticks=[], title=f"sensitivity {s:g}: {len(rows)} points")  # fmt: skip
            bottom.imshow(np.squeeze(image), cmap="gray")
            for c in circles.itertuples():
                bottom.add_patch(Circle((c.x, c.y), c.radius, fill=False, lw=1.5, ec="#00e5ff"))
            _outline(bottom, mask)
            bottom.set_axis_off()
            bottom.set_title(f"{len(circles)} circle{'s' * (len(circles) != 1)}")
    return fig


def plot_sweep(circles: pd.DataFrame) -> Figure:
    """Localisation against the planted lesions as the sight sensitivity rises, per method:
    images with a circle centred on a lesion, false circles per image, share of the lesion
    inside a circle (signal kept) and share of the circled area on a lesion (precision)."""
    summary = detection_rows(circles)
    panels = (
        ("hit", "images with a circle on a lesion"),
        ("false_circles", "false circles per image"),
        ("covered", "lesion pixels inside a circle"),
        ("precision", "circled pixels on a lesion"),
    )
    with plots.style():
        fig = Figure(figsize=(14, 3.4))
        axes = fig.subplots(1, len(panels))
        for ax, (col, title) in zip(axes, panels, strict=True):
            for m in METHODS:
                s = summary[summary["method"] == m]
                ax.plot(s["threshold"], s[col], marker="o", label=m)
            ax.set_xlabel("sight sensitivity")
            ax.set_title(title, fontsize=10)
        axes[0].legend(fontsize=8)
    return fig


def plot_explanations(
    images: Sequence[np.ndarray], maps: Mapping[str, Sequence[np.ndarray]],
    masks: Sequence[np.ndarray] | None, sensitivity: float, n: int = 4, **circle_kwargs: object,
) -> Figure:  # fmt: skip
    """A few explained images: each method's map with its circles at one sensitivity, the
    planted lesion outlined (rows: images; columns: methods)."""
    n = min(n, len(images))
    with plots.style():
        fig = Figure(figsize=(3.0 * len(maps), 3.0 * n))
        axes = np.atleast_2d(fig.subplots(n, len(maps)))
        for i in range(n):
            for j, (method, ms) in enumerate(maps.items()):
                ax = axes[i, j]
                a = np.clip(ms[i], 0, None)
                ax.imshow(np.squeeze(images[i]), cmap="gray")
                ax.imshow(np.ma.masked_where(a <= 0, a), cmap="inferno", alpha=0.5)
                for c in explain.sight_sensitivity(a, sensitivity, **circle_kwargs).itertuples():
                    ax.add_patch(Circle((c.x, c.y), c.radius, fill=False, lw=1.2, ec="#00e5ff"))
                _outline(ax, None if masks is None else masks[i])
                ax.set_axis_off()
                if i == 0:
                    ax.set_title(method)
    return fig


# --------------------------------------------------------------------------------------------
# outputs


def write_outputs(
    out_dir: Path, params: Mapping[str, object], *, cohort: Cohort, results: pd.DataFrame,
    history: pd.DataFrame, pointing: pd.DataFrame, texts: pd.DataFrame, verdicts: pd.DataFrame,
) -> Path:  # fmt: skip
    """``claims.json`` and ``metrics.json`` of this run (validated, written atomically:
    :func:`mmcxr.results.write_chapter_outputs`); returns the path of ``claims.json``."""
    return write_chapter_outputs(
        out_dir,
        params,
        chapter=SLUG,
        paper=PAPER,
        verdicts=verdicts,
        cohort=cohort_section(cohort.flow, cohort.split_counts()),
        results=results,
        figure5=history,
        pointing=pointing_table(pointing).reset_index(),
        text_explanations=text_hits(texts),
        headline=headline(cohort, results, pointing, texts, verdicts),
    )
