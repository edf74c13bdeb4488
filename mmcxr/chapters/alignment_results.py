"""The alignment chapter's results (paper 004): the paper's findings as claims, its tables
beside ours, the numbers the prose quotes, and the figures.

:mod:`mmcxr.chapters.alignment` trains and scores the models; this module reads their tables
only. Each claim is a test on a results table (:class:`mmcxr.claims.ClaimSpec`), run with the
same code on the paper's numbers (:mod:`alignment_reference`) and on ours. Numbers are
fractions (the paper prints percentages) except the KL divergences and entropies (nats).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from mmcxr import claims, metrics, plots
from mmcxr.chapters import alignment_reference as reference
from mmcxr.chapters.alignment import (
    MODEL_NAMES,
    MODELS,
    PAPER,
    PERTURBATION_NAMES,
    PERTURBATIONS,
    SLUG,
    SUBSETS,
)
from mmcxr.claims import ClaimSpec, Verdict
from mmcxr.results import records, write_chapter_outputs

SUBSET_NAMES = reference.SUBSET_NAMES
KEYS = ("model", "sentences", "perturbation", "subset")
#: Metrics of the summary tables.
METRICS = (
    "auroc", "average_precision", "iou@5", "iou@10", "iou@30", "precision@5", "precision@10",
    "precision@30", "kl", "entropy", "entropy_norm", "local_similarity", "global_similarity",
    "retrieval_local", "retrieval_global", "mask_share",
    "lesion_auroc", "lesion_average_precision", "lesion_iou@5", "lesion_iou@10", "lesion_iou@30",
    "lesion_precision@10", "lesion_share",
)  # fmt: skip
#: A change of AUROC smaller than this counts as "barely moves"; larger drops are "clear".
SMALL_DELTA = 0.02
#: Two AUROCs this close count as "about as well".
SIMILAR = 0.02
#: Random Attention KL "near zero": below this, and below a tenth of every other model's.
NEAR_ZERO_KL = 0.1
#: A rank correlation below this across the five models: retrieval does not track localisation.
RANK_TRACKS = 0.5
RETRAINED = ("retrained", "abnormal", "masking", "randsents")


def _label(
    model: str, sentences: str = "real", subset: str = "all", perturbation: str = "none"
) -> str:
    parts = [MODEL_NAMES.get(model, model), "real" if sentences == "real" else "synthetic"]
    if perturbation != "none":
        parts.append(PERTURBATION_NAMES[perturbation])
    return " · ".join(parts + [SUBSET_NAMES[subset]])


# --------------------------------------------------------------------------------------------
# the tables the claims read


def claim_table(summary: pd.DataFrame, deltas: pd.DataFrame | None = None) -> pd.DataFrame:
    """Our summary (:func:`mmcxr.chapters.alignment.summary`) with each perturbation's change
    joined as ``delta_<metric>`` (and its interval) on the perturbed rows."""
    t = summary.copy()
    if deltas is not None and len(deltas):
        d = deltas.copy()
        d["sentences"] = np.where(d["perturbation"] == "swapped_conditions", "synthetic", "real")
        cols = [c for c in d.columns if c not in (*KEYS, "n")]
        d = d.rename(columns={c: f"delta_{c}" for c in cols})
        t = t.merge(d.drop(columns="n"), on=list(KEYS), how="left")
    return t


def paper_table() -> pd.DataFrame:
    """The paper's Tables 2-10 in the layout of :func:`claim_table` (no deltas: the paper
    shows them as bar charts only)."""
    loc = reference.localization_table()
    other = reference.kl_table().merge(
        reference.retrieval_table(), on=["model", "subset"], how="outer"
    )
    other = other.merge(reference.entropy_table(), on=["model", "subset"], how="outer").assign(
        sentences="real"
    )
    t = loc.merge(other, on=["model", "sentences", "subset"], how="outer")
    return t.assign(perturbation="none")


class Table(claims.ResultTable):
    def __init__(self, table: pd.DataFrame) -> None:
        super().__init__(table, KEYS, defaults={"sentences": "real", "perturbation": "none", "subset": "all"},
                         name=lambda **k: _label(k["model"], k["sentences"], k["subset"], k["perturbation"]))  # fmt: skip

    def get(self, metric: str, model: str, **key):
        return self.value(metric, model=model, **key)


def _low(n: claims.Number) -> float:
    """The interval's lower end when there is one (our numbers), else the number (paper's)."""
    return n.x if n.lo is None or math.isnan(n.lo) else n.lo


def _high(n: claims.Number) -> float:
    return n.x if n.hi is None or math.isnan(n.hi) else n.hi


# --------------------------------------------------------------------------------------------
# claims


def _gloria_above_chance(t: Table, tol: float) -> Verdict:
    a = t.get("auroc", "gloria")
    return Verdict(
        bool(_low(a) > 0.5),
        f"GLoRIA pixel AUROC {a} (chance 0.5; our interval's lower end must clear it)",
    )


def _synthetic_like_real(t: Table, tol: float) -> Verdict:
    real, syn = t.get("auroc", "gloria"), t.get("auroc", "gloria", sentences="synthetic")
    return Verdict(
        bool(abs(syn.x - real.x) <= SIMILAR),
        f"GLoRIA AUROC real {real} vs synthetic {syn} (within {SIMILAR:g})",
    )


def _hard_subsets(t: Table, tol: float) -> Verdict:
    a = t.get("auroc", "gloria")
    parts, ok = [f"All {a}"], True
    for s in ("one_lung", "mdrb"):
        v = t.get("auroc", "gloria", subset=s)
        ok &= v.x < a.x
        parts.append(f"{SUBSET_NAMES[s]} {v}")
    return Verdict(bool(ok), "GLoRIA AUROC " + "; ".join(parts))


_TEXT_PERTURBATIONS = (
    "swap_left_right",
    "shuffle_bboxes",
    "random_sentences",
    "swapped_conditions",
)


def _delta(
    t: Table, model: str, pert: str, subset: str = "all", metric: str = "auroc"
) -> claims.Number:
    sentences = "synthetic" if pert == "swapped_conditions" else "real"
    try:
        return t.get(
            f"delta_{metric}", model, sentences=sentences, perturbation=pert, subset=subset
        )
    except (claims.Missing, KeyError):
        raise claims.Missing(
            f"no Δ {metric} for {MODEL_NAMES[model]}, {PERTURBATION_NAMES[pert]} ({SUBSET_NAMES[subset]}); "
            "the paper gives its Δs as bar charts only (Figures 4, 5, 7-9)"
        ) from None


def _text_barely_moves(t: Table, tol: float) -> Verdict:
    parts, ok = [], True
    for subset in ("all", "one_lung"):
        for p in _TEXT_PERTURBATIONS:
            d = _delta(t, "gloria", p, subset)
            ok &= abs(d.x) < SMALL_DELTA
            parts.append(f"{PERTURBATION_NAMES[p]} ({SUBSET_NAMES[subset]}) {d}")
    return Verdict(
        bool(ok), f"GLoRIA Δ AUROC (|Δ| < {SMALL_DELTA:g} counts as barely): " + "; ".join(parts)
    )


def _random_bboxes_drop(t: Table, tol: float) -> Verdict:
    ds = {p: _delta(t, "gloria", p) for p in PERTURBATIONS}
    worst = min(ds, key=lambda p: ds[p].x)
    ok = worst == "random_bboxes" and ds[worst].x < -SMALL_DELTA
    listed = "; ".join(f"{PERTURBATION_NAMES[p]} {d}" for p, d in ds.items())
    return Verdict(bool(ok), f"GLoRIA Δ AUROC on the gold set: {listed}")


def _abnormal_beats_retrained(t: Table, tol: float) -> Verdict:
    a, r = t.get("auroc", "abnormal"), t.get("auroc", "retrained")
    return Verdict(
        bool(a.x > r.x + tol), f"AUROC w/ Abnormal {a} vs Retrained {r} (needs a gain > {tol:g})"
    )


def _extreme_is(t: Table, metric: str, models, want: str, label: str, pick=max) -> Verdict:
    """Whether model ``want`` has the highest (``pick=max``) or lowest ``metric`` of ``models``,
    listing every model's value."""
    v = {m: t.get(metric, m) for m in models}
    got = pick(v, key=lambda m: v[m].x)
    listed = "; ".join(f"{MODEL_NAMES[m]} {x}" for m, x in v.items())
    return Verdict(bool(got == want), f"{label} {listed}")


def _masking_best(t: Table, tol: float) -> Verdict:
    return _extreme_is(t, "auroc", RETRAINED, "masking", "AUROC")


def _masking_highest_kl(t: Table, tol: float) -> Verdict:
    return _extreme_is(t, "kl", RETRAINED, "masking", "Random Attention KL")


def _randsents_kl_zero(t: Table, tol: float) -> Verdict:
    rand = t.get("kl", "randsents")
    others = {m: t.get("kl", m) for m in MODELS if m != "randsents"}
    ok = rand.x < NEAR_ZERO_KL and all(rand.x < o.x / 10 for o in others.values())
    listed = "; ".join(f"{MODEL_NAMES[m]} {x}" for m, x in others.items())
    return Verdict(
        bool(ok),
        f"Rand Sents KL {rand} (needs < {NEAR_ZERO_KL:g} and a tenth of each other): {listed}",
    )


def _randsents_worst(t: Table, tol: float) -> Verdict:
    return _extreme_is(t, "auroc", MODELS, "randsents", "AUROC", pick=min)


def _retrieval_above_chance(t: Table, tol: float) -> Verdict:
    parts, ok = [], True
    for m in MODELS:
        r = t.get("retrieval_global", m)
        ok &= (_high(r) < 0.5 + 0.1) if m == "randsents" else (_low(r) > 0.5)
        parts.append(f"{MODEL_NAMES[m]} {r}")
    return Verdict(
        bool(ok),
        "global retrieval accuracy (real pairs above chance; Rand Sents within 0.1 of it): "
        + "; ".join(parts),
    )


def _masking_most_sensitive(t: Table, tol: float) -> Verdict:
    v = {m: _delta(t, m, "swap_left_right", "one_lung") for m in MODELS}
    worst = min(v, key=lambda m: v[m].x)
    return Verdict(
        bool(worst == "masking"),
        "Swap Left Right Δ AUROC on One Lung: "
        + "; ".join(f"{MODEL_NAMES[m]} {x}" for m, x in v.items()),
    )


def _retrieval_not_localisation(t: Table, tol: float) -> Verdict:
    from scipy.stats import spearmanr

    auc = [t.get("auroc", m).x for m in MODELS]
    ret = [t.get("retrieval_global", m).x for m in MODELS]
    rho = float(spearmanr(auc, ret).statistic)
    return Verdict(
        bool(rho < RANK_TRACKS),
        f"Spearman rank correlation across the five models of AUROC and global retrieval accuracy: {rho:.2f} (needs < {RANK_TRACKS:g})",
    )


CLAIMS: tuple[ClaimSpec, ...] = (
    ClaimSpec("gloria-localises-above-chance",
              "GLoRIA's sentence attention points at the sentence's gold boxes better than chance "
              "(pixel AUROC above 0.5).", _gloria_above_chance),
    ClaimSpec("synthetic-sentences-like-real",
              "Synthetic sentences built by the Table 1 rules localise about as well as the "
              "report's own (GLoRIA, AUROC within 0.02).", _synthetic_like_real),
    ClaimSpec("one-lung-and-mdrb-are-harder",
              "GLoRIA localises worse on the One Lung and MDRB subsets than on the whole gold "
              "set.", _hard_subsets),
    ClaimSpec("text-perturbations-barely-move",
              "Perturbing the text (left/right swapped, boxes shuffled within the report, random "
              "sentences, swapped conditions) barely moves GLoRIA's AUROC, on the gold set and on "
              "One Lung.", _text_barely_moves),
    ClaimSpec("random-bboxes-is-the-real-drop",
              "Only Random BBoxes (targets of another image) clearly lowers GLoRIA's AUROC: the "
              "attention follows the image more than the text.", _random_bboxes_drop),
    ClaimSpec("abnormal-beats-retrained",
              "Training on abnormal sentences only localises better than training on all "
              "(Retrained w/ Abnormal > Retrained).", _abnormal_beats_retrained),
    ClaimSpec("masking-localises-best",
              "Masking clinical entities gives the best localisation of the retrained models.",
              _masking_best),
    ClaimSpec("masking-highest-random-kl",
              "Masking gives the highest Random Attention KL of the retrained models: its "
              "attention depends on the text the most.", _masking_highest_kl),
    ClaimSpec("masking-most-sensitive-to-sides",
              "Retrained w/ Masking reacts most to swapping left and right on the One Lung "
              "subset (most negative Δ AUROC of the models).", _masking_most_sensitive),
    ClaimSpec("randsents-kl-near-zero",
              "Trained on random pairs, the attention ignores the text: Random Attention KL near "
              "0.", _randsents_kl_zero),
    ClaimSpec("randsents-localises-worst",
              "The model trained on random sentences localises worst of the five.", _randsents_worst),
    ClaimSpec("retrieval-above-chance",
              "Models trained on real pairs tell an image's own sentence from a random one above "
              "chance (global similarity); Rand Sents does not.", _retrieval_above_chance),
    ClaimSpec("retrieval-does-not-track-localisation",
              "Retrieval accuracy does not track localisation across the models (rank "
              "correlation below 0.5).", _retrieval_not_localisation),
)  # fmt: skip


def evaluate_claims(ours: pd.DataFrame, *, tol: float = 0.01) -> pd.DataFrame:
    """Every claim on the paper's numbers and, with the same test, on ours."""
    return claims.evaluate_claims(CLAIMS, Table(ours), Table(paper_table()), tol=tol)


# --------------------------------------------------------------------------------------------
# the paper's tables beside ours


def comparison(ours: pd.DataFrame, rows: Sequence[tuple[str, str, str]], metric_names: Sequence[str],
               perturbation: str = "none") -> pd.DataFrame:  # fmt: skip
    """Ours (95% intervals) beside the paper for ``(model, sentences, subset)`` rows."""

    def indexed(t: pd.DataFrame) -> pd.DataFrame:
        t = t[t["perturbation"] == perturbation]
        lab = [
            _label(m, s, b) for m, s, b in zip(t["model"], t["sentences"], t["subset"], strict=True)
        ]
        return t.set_index(pd.Index(lab, name="run"))

    labels = [_label(*r) for r in rows]
    o = indexed(ours).reindex(labels)
    p = indexed(paper_table()).reindex(labels)
    for m in metric_names:
        p[m] = p[m] if m in p else np.nan
    return metrics.comparison_table(o, p[list(metric_names)], metrics=list(metric_names))


def table(ours: pd.DataFrame, name: str) -> pd.DataFrame:
    """The analogue of one of the paper's tables (``"2"``, ``"3"``, ``"4"``, ``"5"``,
    ``"6"``, ``"7"``, ``"8"``, ``"9"``, ``"10"``, ``"13"``, ``"14"``)."""
    both, real = ("real", "synthetic"), ("real",)
    spec = {
        "2": ([("gloria", s, "all") for s in both], ["auroc", "average_precision", "iou@5", "iou@10", "iou@30"]),
        "3": ([("gloria", s, b) for b in SUBSETS[1:] for s in both], ["auroc", "average_precision", "iou@5", "iou@10", "iou@30"]),
        "4": ([(m, s, "all") for m in RETRAINED for s in both], ["auroc", "average_precision"]),
        "7": ([(m, s, b) for m in RETRAINED for b in SUBSETS[1:] for s in both], ["auroc", "average_precision"]),
        "5": ([(m, "real", "all") for m in MODELS], ["kl"]),
        "8": ([(m, "real", b) for m in MODELS for b in SUBSETS[1:]], ["kl"]),
        "6": ([(m, "real", b) for m in MODELS for b in SUBSETS[:2]], ["retrieval_local", "retrieval_global"]),
        "9": ([(m, "real", b) for m in MODELS for b in SUBSETS[2:]], ["retrieval_local", "retrieval_global"]),
        "10": ([(m, "real", b) for m in MODELS for b in SUBSETS], ["entropy_norm"]),
        "13": ([(m, s, b) for m in MODELS for s in both for b in SUBSETS], ["precision@5", "precision@10", "precision@30"]),
        "14": ([(m, s, b) for m in MODELS for s in both for b in SUBSETS], ["iou@5", "iou@10", "iou@30"]),
    }  # fmt: skip
    if name not in spec:
        raise ValueError(f"table must be one of {sorted(spec, key=int)}, got {name!r}")
    rows, cols = spec[name]
    rows = [r for r in rows if r[1] in (both if name not in ("5", "6", "8", "9", "10") else real)]
    return comparison(ours, rows, cols)


def correlation_comparison(ours: pd.DataFrame) -> pd.DataFrame:
    """Table 12: our Pearson correlations beside the paper's, one row per pair of variables,
    a column pair per model."""
    paper = reference.correlation_table()
    t = ours.merge(paper, on=["model", "a", "b"], how="left", suffixes=("", "_paper"))
    t["pair"] = t["a"] + " ~ " + t["b"]
    wide = t.pivot_table(index="pair", columns="model", values=["r", "r_paper"], sort=False)
    wide = wide.rename(columns={"r": "ours", "r_paper": "paper"}, level=0).swaplevel(axis=1)
    order = [m for m in MODELS if m in wide.columns.get_level_values(0)]
    return wide.reindex(columns=pd.MultiIndex.from_product([order, ["ours", "paper"]])).round(3)


def lesion_table(long: pd.DataFrame, *, n_boot: int = 0, seed: int = 0) -> pd.DataFrame:
    """Beyond the paper: on the sentences asserting a planted lesion, the same attention scored
    against the sentence's anatomical gold boxes and against the lesion's own box (the same
    instances for both), beside the best IoU any map could reach (a map equal to the target:
    ``min(k, a) / max(k, a)`` for a target covering a share ``a`` of the film)."""
    from mmcxr.alignment import mean_ci

    base = long[(long["sentences"] == "real") & (long["perturbation"] == "none")]
    if "lesion_auroc" not in base:
        return pd.DataFrame()
    base = base[base["lesion_share"].notna()]
    rows = []
    for model, g in base.groupby("model", sort=False):
        for target, pre, share in (
            ("anatomical boxes", "", "mask_share"),
            ("lesion box", "lesion_", "lesion_share"),
        ):
            a = g[share].to_numpy(dtype=float)
            row = {
                "model": MODEL_NAMES[model],
                "target": target,
                "instances": len(g),
                "target share": float(a.mean()),
            }
            for m, name in (("auroc", "AUROC"), ("iou@10", "IoU@10%"), ("precision@10", "P@10%")):
                row[name] = mean_ci(g[f"{pre}{m}"], n_boot, seed)[0]
            row["best IoU@10%"] = float(np.mean(np.minimum(0.1, a) / np.maximum(0.1, a)))
            rows.append(row)
    return pd.DataFrame(rows).set_index(["model", "target"])


def corpus_table(corpora: Mapping[str, object]) -> pd.DataFrame:
    """Each training corpus (:meth:`~mmcxr.chapters.alignment.Corpus.summary`) beside the
    shares the paper reports: CheXpert's "No Finding" for GLoRIA's, ImaGenome's abnormal
    shares for the retrained models'."""
    facts = reference.DATA
    rows = {}
    for name, c in corpora.items():
        row = c.summary()
        if name == "gloria":
            row["paper: no finding share"] = facts["chexpert_no_finding_share"]
        else:
            row["paper: train images without abnormal sentence"] = facts[
                "imagenome_train_images_without_abnormal_sentence"
            ]
            row["paper: train sentences abnormal"] = facts["imagenome_train_sentences_abnormal"]
        rows["GLoRIA stand-in" if name == "gloria" else "MIMIC-CXR (retrained models)"] = row
    return pd.DataFrame(rows).T


# --------------------------------------------------------------------------------------------
# numbers for the prose


def headline(summary: pd.DataFrame, deltas: pd.DataFrame, verdicts: pd.DataFrame,
             extra: Mapping[str, float]) -> dict[str, float]:  # fmt: skip
    """The numbers the chapter's prose quotes (glued, never typed), ours and the paper's."""
    ours, paper = Table(claim_table(summary, deltas)), Table(paper_table())
    out: dict[str, float] = {**claims.tally(verdicts), **extra}
    for name, t in (("", ours), ("paper_", paper)):
        for m in MODELS:
            for metric in ("auroc", "average_precision", "iou@10", "precision@10", "kl", "retrieval_global",
                           "retrieval_local", "entropy_norm"):  # fmt: skip
                try:
                    out[f"{name}{m}_{metric.replace('@', '_at_')}"] = t.get(metric, m).x
                except claims.Missing:
                    pass
        for s in ("one_lung", "mdrb"):
            try:
                out[f"{name}gloria_auroc_{s}"] = t.get("auroc", "gloria", subset=s).x
            except claims.Missing:
                pass
    for m in MODELS:
        for p in PERTURBATIONS:
            for s in ("all", "one_lung"):
                try:
                    out[f"delta_{m}_{p}_{s}"] = _delta(ours, m, p, s).x
                except claims.Missing:
                    pass
    return out


# --------------------------------------------------------------------------------------------
# figures


def plot_deltas(deltas: pd.DataFrame, metric: str = "auroc", subsets: Sequence[str] = SUBSETS):
    """Figures 4, 5, 7 (``auroc``) and 8, 9 (``average_precision``): each perturbation's change
    per model (bars, 95% paired-bootstrap intervals), one panel per subset."""
    from matplotlib.figure import Figure

    names = [m for m in MODELS if m in set(deltas["model"])]
    width = 0.8 / max(1, len(names))
    with plots.style():
        fig = Figure(figsize=(10, 2.4 * len(subsets)), layout="constrained")
        axes = fig.subplots(len(subsets), 1, sharex=True, squeeze=False)
        for ax, subset in zip(axes[:, 0], subsets, strict=True):
            for k, m in enumerate(names):
                part = (
                    deltas[(deltas["model"] == m) & (deltas["subset"] == subset)]
                    .set_index("perturbation")
                    .reindex(PERTURBATIONS)
                )
                x = np.arange(len(PERTURBATIONS)) + (k - (len(names) - 1) / 2) * width
                y = part[metric].to_numpy(dtype=float)
                err = np.vstack([y - part[f"{metric}_lo"], part[f"{metric}_hi"] - y]).astype(float)
                ax.bar(x, y, width, yerr=np.nan_to_num(np.clip(err, 0, None)), capsize=2,
                       color=plots.PALETTE[k % len(plots.PALETTE)], label=MODEL_NAMES[m], error_kw={"lw": 0.8})  # fmt: skip
            ax.axhline(0, color="grey", lw=0.8)
            ax.set(ylabel=f"Δ {'AUROC' if metric == 'auroc' else 'AP'}", title=SUBSET_NAMES[subset])
        axes[-1, 0].set_xticks(
            range(len(PERTURBATIONS)), [PERTURBATION_NAMES[p] for p in PERTURBATIONS], fontsize=8
        )
        axes[0, 0].legend(
            ncols=len(names), loc="lower center", bbox_to_anchor=(0.5, 1.15), fontsize=8
        )
    return fig


def plot_training(histories: pd.DataFrame):
    """Training (dashed) and validation (solid) GLoRIA loss per epoch of each model."""
    return plots.loss_curves_grid(histories.assign(panel="loss", kind="GLoRIA objective"), row="panel", col="kind",
                                  hue="model", orders={"model": MODELS}, names=MODEL_NAMES)  # fmt: skip


def _overlay(ax, image, attention, mask, title):
    from mmcxr.localization import upsample

    ax.imshow(image, cmap="gray")
    ax.imshow(upsample(attention, image.shape), cmap="jet", alpha=0.45)
    ax.contour(mask, levels=[0.5], colors="white", linewidths=1.0)
    ax.set_title(title, fontsize=8)
    ax.set_axis_off()


def plot_swap_example(image: np.ndarray, mask: np.ndarray, maps: Mapping[str, tuple[np.ndarray, np.ndarray]],
                      sentence: str, swapped: str):  # fmt: skip
    """Figure 6: each model's attention for a sentence (top) and its left/right-swapped
    version (bottom), the gold boxes outlined in white."""
    from matplotlib.figure import Figure

    with plots.style():
        fig = Figure(figsize=(2.2 * len(maps), 5.0), layout="constrained")
        axes = fig.subplots(2, len(maps), squeeze=False)
        for j, (m, (orig, swap)) in enumerate(maps.items()):
            _overlay(axes[0, j], image, orig, mask, MODEL_NAMES[m])
            _overlay(axes[1, j], image, swap, mask, "swapped")
        fig.suptitle(f"“{sentence}”  →  “{swapped}”", fontsize=9)
    return fig


def interactive_session() -> bool:
    """Whether a live Jupyter front end renders widgets (JupyterLab sets ``JPY_SESSION_NAME``;
    papermill, which builds the book, does not)."""
    return bool(os.environ.get("JPY_SESSION_NAME"))


def explorer(
    images: np.ndarray,
    masks: np.ndarray,
    gold: pd.DataFrame,
    scores: Mapping[str, Mapping[str, np.ndarray]],
):
    """An ipywidgets viewer over gold instances, sentence kinds/perturbations and models
    (JupyterLab only; the book shows :func:`plot_swap_example`)."""
    import ipywidgets as w
    from IPython.display import display
    from matplotlib.figure import Figure

    kinds = {"real": ("text", "real", "none"), "swap left/right": ("swap", "swap", "none"),
             "random sentence": ("text", "random", "none"), "synthetic": ("synthetic", "synthetic", "none"),
             "synthetic, swapped conditions": ("synthetic_swapped", "synthetic_swapped", "none"),
             "shuffled boxes": ("text", "real", "shuffle"), "random boxes": ("text", "real", "random")}  # fmt: skip

    def show(instance: int, kind: str, model: str) -> None:
        col, att, boxes = kinds[kind]
        row = gold.iloc[instance]
        text = gold["text"].iloc[int(row["sentence_donor"])] if att == "random" else row[col]
        j = {
            "none": instance,
            "shuffle": int(row["shuffle_donor"]),
            "random": int(row["box_donor"]),
        }[boxes]
        fig = Figure(figsize=(4, 4.3), layout="constrained")
        _overlay(
            fig.add_subplot(),
            images[instance],
            scores[model][f"attention_{att}"][instance],
            masks[j],
            text,
        )
        display(fig)

    return w.interactive(show, instance=w.IntSlider(0, 0, len(gold) - 1),
                         kind=w.Dropdown(options=list(kinds)), model=w.Dropdown(options=list(scores)))  # fmt: skip


# --------------------------------------------------------------------------------------------
# outputs


def write_outputs(out_dir: Path, params: Mapping[str, object], *, cohort: Mapping[str, object],
                  summary: pd.DataFrame, deltas: pd.DataFrame, tables: Mapping[str, pd.DataFrame],
                  runs: Mapping[str, object], verdicts: pd.DataFrame, headline_numbers: Mapping[str, float]) -> Path:  # fmt: skip
    """``claims.json`` and ``metrics.json`` (validated, atomic); returns the claims path."""
    return write_chapter_outputs(
        out_dir, params, chapter=SLUG, paper=PAPER, verdicts=verdicts, cohort=dict(cohort),
        results=summary, deltas=deltas, **{k: records(v) for k, v in tables.items()},
        runs={n: ({k: r.metrics.get(k) for k in ("best_epoch", "epochs_run", "stopped_early", "train_images")}
                  | {"path": str(r.path)}) if r is not None else {"released": True}
              for n, r in runs.items()},
        headline=dict(headline_numbers),
    )  # fmt: skip
