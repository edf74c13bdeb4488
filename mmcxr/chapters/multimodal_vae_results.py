"""The multimodal-VAE chapter's results (Klug, Sutter & Vogt, paper 003): Table 1 beside the
paper's, the generation tables, the paper's findings as claims, the figures and the records.

:mod:`mmcxr.chapters.multimodal_vae` trains the runs and scores them; this module reads
their tables only. Each claim is a test on a results table (:class:`mmcxr.claims.ClaimSpec`),
run with the same code on the paper's numbers (:mod:`multimodal_vae_reference`) and on ours.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from mmcxr import claims, metrics, plots
from mmcxr.chapters import multimodal_vae_reference as reference
from mmcxr.chapters.multimodal_vae import (
    JOINT_NAMES,
    JOINTS,
    MODALITIES,
    PAPER,
    SLUG,
    SUBSETS,
    Cohort,
    Splits,
    TrainedRun,
    generate,
    subset_name,
)
from mmcxr.claims import ClaimSpec, Verdict
from mmcxr.data.datasets import to_display
from mmcxr.results import cohort_section, write_chapter_outputs

SUBSET_NAMES = tuple(subset_name(s) for s in SUBSETS)
ALL, WITHOUT_F = "L,F,T", "L,T"
NAMES = {**JOINT_NAMES, "random": "Random"}
TERM_NAMES = {
    "loss": "negative ELBO (weighted)",
    "kl": "KL (mean over components)",
    "nll_frontal": "-log p(F | z)",
    "nll_lateral": "-log p(L | z)",
    "nll_text": "-log p(T | z)",
    "curves": "",
}


# --------------------------------------------------------------------------------------------
# Table 1


def table1_results(long: pd.DataFrame, *, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Average precision of every (joint, subset) probe with its 95% bootstrap interval,
    and the random baseline (the test set's share of "Finding", which is what a random
    score's average precision comes to) with the interval of that share."""
    rows = []
    for (joint, subset), g in long.groupby(["joint", "subset"], sort=False):
        ci = metrics.bootstrap_ci(
            metrics.average_precision,
            g["label"].to_numpy(),
            g["prob"].to_numpy(),
            n_boot,
            seed=seed,
        )
        rows.append(
            {"joint": joint, "subset": subset, "average_precision": ci.point}
            | {"average_precision_lo": ci.lo, "average_precision_hi": ci.hi, "n": len(g)}
        )
    first = long[long["joint"] == long["joint"].iloc[0]]
    first = first[first["subset"] == first["subset"].iloc[0]]
    y = first["label"].to_numpy()
    ci = metrics.bootstrap_ci(lambda a, b: float(np.mean(a)), y, y, n_boot, seed=seed)
    rows.append(
        {"joint": "random", "subset": "-", "average_precision": ci.point}
        | {"average_precision_lo": ci.lo, "average_precision_hi": ci.hi, "n": len(y)}
    )
    return pd.DataFrame(rows)


def table1_comparison(results: pd.DataFrame) -> pd.DataFrame:
    """Table 1 turned for the page: a row per subset (and Random), a column per joint; the
    paper's MoPoE row sits beside ours under MoPoE."""
    joints = [j for j in JOINTS if j in set(results["joint"])]
    ours, paper = {}, {}
    for j in joints:
        part = results[results["joint"].isin([j, "random"])].set_index("subset")
        label = JOINT_NAMES[j]
        ours[label] = part["average_precision"]
        ours[f"{label}_lo"] = part["average_precision_lo"]
        ours[f"{label}_hi"] = part["average_precision_hi"]
        ref = reference.table1().set_index("subset")["average_precision"]
        paper[label] = ref if j == "mopoe" else pd.Series(np.nan, index=ref.index)
    index = pd.Index([*SUBSET_NAMES, "-"], name="subset")
    ours_t = pd.DataFrame(ours).reindex(index).rename(index={"-": "Random"})
    paper_t = pd.DataFrame(paper).reindex(index).rename(index={"-": "Random"})
    return metrics.comparison_table(ours_t, paper_t, metrics=[JOINT_NAMES[j] for j in joints])


# --------------------------------------------------------------------------------------------
# claims


class Table(claims.ResultTable):
    """Table 1 rows (``modality="latent"``) and generation rows, by (joint, subset, modality)."""

    def __init__(self, table1: pd.DataFrame, generation: pd.DataFrame | None = None) -> None:
        parts = [table1.assign(modality="latent")]
        if generation is not None:
            parts.append(generation)
        super().__init__(
            pd.concat(parts, ignore_index=True),
            ("joint", "subset", "modality"),
            defaults={"modality": "latent"},
            name=lambda joint, subset, modality: f"{NAMES.get(joint, joint)} {subset} ({modality})",
        )
        self.has_generation = generation is not None and len(generation) > 0

    def ap(self, subset: str, joint: str = "mopoe") -> claims.Number:
        return self.value("average_precision", joint=joint, subset=subset)

    def random(self) -> claims.Number:
        return self.value("average_precision", joint="random", subset="-")


def _every_subset_beats_random(t: Table, tol: float) -> Verdict:
    rnd = t.random()
    aps = {s: t.ap(s) for s in SUBSET_NAMES}
    ok = all(a.x > rnd.x + tol for a in aps.values())
    listed = "; ".join(f"{s} {a}" for s, a in aps.items())
    return Verdict(ok, f"MoPoE mAP {listed}; random {rnd} (must exceed it by > {tol:g})")


def _all_three_highest(t: Table, tol: float) -> Verdict:
    aps = {s: t.ap(s) for s in SUBSET_NAMES}
    best_other = max((s for s in SUBSET_NAMES if s != ALL), key=lambda s: aps[s].x)
    ok = aps[ALL].x >= aps[best_other].x - tol
    return Verdict(
        ok,
        f"MoPoE mAP L,F,T {aps[ALL]} vs best other subset {best_other} {aps[best_other]} "
        f"(ties within {tol:g} count)",
    )


def _frontal_sharpens(t: Table, tol: float) -> Verdict:
    if not t.has_generation:
        raise claims.Missing("no sharpness measured (the paper shows Figure 1 only)")
    parts, ok = [], True
    for m in ("F", "L"):
        without = t.value("sharpness", joint="mopoe", subset=WITHOUT_F, modality=m)
        with_f = t.value("sharpness", joint="mopoe", subset=ALL, modality=m)
        ok &= with_f.x > without.x + tol
        parts.append(f"generated {m}: {without} given L,T vs {with_f} given L,F,T")
    return Verdict(ok, "MoPoE sharpness (gradient magnitude / real films'): " + "; ".join(parts))


CLAIMS: tuple[ClaimSpec, ...] = (
    ClaimSpec(
        "every-subset-beats-random",
        "A linear classifier on the MoPoE latent representation of every subset of "
        "modalities (F, L, T, LF, FT, LT, LFT) detects 'Finding' better than random "
        "(mean average precision).",
        _every_subset_beats_random,
    ),
    ClaimSpec(
        "all-three-highest",
        "The latent representation of all three modalities together (L, F, T) scores the "
        "highest mean average precision of the seven subsets.",
        _all_three_highest,
    ),
    ClaimSpec(
        "frontal-sharpens-generation",
        "Adding the frontal image to (L, T) as input makes the generated images less blurry "
        "(sharper generated frontal and lateral films).",
        _frontal_sharpens,
    ),
)


def evaluate_claims(
    table1: pd.DataFrame, generation: pd.DataFrame | None = None, *, tol: float = 0.0
) -> pd.DataFrame:
    """Every claim decided on the paper's numbers and, with the same test, on ours."""
    paper = Table(reference.table1())
    out = claims.evaluate_claims(CLAIMS, Table(table1, generation), paper, tol=tol)
    qualitative = out["id"] == "frontal-sharpens-generation"
    out.loc[qualitative, "paper_evidence"] = reference.FIGURE1
    return out


# --------------------------------------------------------------------------------------------
# generation tables and figures


def generation_wide(generation: pd.DataFrame, value: str) -> pd.DataFrame:
    """One metric of the generation table: a row per conditioning subset, a column per
    (joint, generated modality); the real test data on the first row."""
    mods = ["F", "T"] if value == "coherence" else ["F", "L"]
    t = generation[generation["modality"].isin(mods)]
    wide = t.pivot_table(index="subset", columns=["joint", "modality"], values=value, sort=False)
    order = ["-", *SUBSET_NAMES]
    wide = wide.reindex([s for s in order if s in wide.index]).rename(index={"-": "real data"})
    joints = [j for j in ("real", *JOINTS) if j in wide.columns.get_level_values(0)]
    wide = wide.reindex(columns=[(j, m) for j in joints for m in mods if (j, m) in wide.columns])
    wide.columns = pd.MultiIndex.from_tuples(
        [(NAMES.get(j, "real"), m) for j, m in wide.columns], names=["model", "generated"]
    )
    wide.index.name = "given"
    return wide.round(3)


def style_generation(generation: pd.DataFrame, value: str):
    """:func:`generation_wide` with each number's 95% bootstrap interval under it (a row per
    conditioning subset, a column per model and generated modality); the real test data's
    value, the ceiling, goes to the caption."""
    mods = ["F", "T"] if value == "coherence" else ["F", "L"]
    t = generation[generation["modality"].isin(mods)].copy()
    t["cell"] = [
        "—" if math.isnan(x) else f'<b>{x:.3f}</b><br><span style="font-size:0.8em">'
        f"[{lo:.2f}, {hi:.2f}]</span>"
        for x, lo, hi in zip(t[value], t.get(f"{value}_lo", t[value] * np.nan),
                             t.get(f"{value}_hi", t[value] * np.nan), strict=True)
    ]  # fmt: skip
    t["cell"] = t["cell"].str.replace("[nan, nan]", "", regex=False)
    real = t[t["joint"] == "real"].set_index("modality")
    ours = t[t["joint"] != "real"]
    wide = ours.pivot(index="subset", columns=["joint", "modality"], values="cell")
    wide = wide.reindex([s for s in SUBSET_NAMES if s in wide.index])
    cols = [(j, m) for j in JOINTS for m in mods if (j, m) in wide.columns]
    wide = wide[cols]
    wide.columns = pd.MultiIndex.from_tuples([(NAMES[j], m) for j, m in cols],
                                             names=["model", "generated"])  # fmt: skip
    wide.index.name = "given"
    ceiling = "; ".join(
        f"{m} {real.loc[m, value]:.3f} [{real.loc[m, f'{value}_lo']:.2f}, "
        f"{real.loc[m, f'{value}_hi']:.2f}]"
        for m in mods
        if m in real.index and f"{value}_lo" in real.columns
    )
    what = {"coherence": "AUROC of the judge", "sharpness": "edge strength / real films'"}
    caption = f"{value.capitalize()} ({what[value]}), 95% bootstrap interval below each number"
    if value == "coherence" and ceiling:
        caption += f"; real test data: {ceiling}"
    return wide.style.set_caption(caption + ".").set_table_styles(
        [{"selector": "td", "props": "text-align: right; line-height: 1.2;"},
         {"selector": "caption", "props": "caption-side: top; text-align: left;"}]
    )  # fmt: skip


def plot_curves(history: pd.DataFrame):
    """Every ELBO term per epoch for each joint (validation solid, training dashed)."""
    return plots.loss_curves_grid(
        history,
        row="panel",
        col="term",
        hue="joint",
        orders={"term": ["loss", "kl", "nll_frontal", "nll_lateral", "nll_text"], "joint": JOINTS},
        names={**NAMES, **TERM_NAMES, "curves": "ELBO term"},
        size=(3.2, 2.6),
    )


def plot_table1(results: pd.DataFrame):
    """Average precision per subset and joint, 95% intervals, the paper's MoPoE as ticks and
    the random baseline as a dotted line."""
    rnd = float(results.loc[results["joint"] == "random", "average_precision"].iloc[0])
    return plots.interval_bars(
        results[results["joint"] != "random"],
        group=("subset",),
        hue="joint",
        value="average_precision",
        reference=reference.table1(),
        reference_label="paper (MoPoE)",
        orders={"subset": SUBSET_NAMES, "joint": [j for j in JOINTS if j in set(results["joint"])]},
        names=NAMES,
        chance=rnd,
        ylabel="test average precision",
        title="Linear probe for 'Finding' on each subset's latent (dotted: random)",
    )


def figure1(run: TrainedRun, splits: Splits, cases: Sequence[int], *, seed: int = 0):
    """The Figure 1 analogue: the input films above, then the films generated given (L, T)
    and given (F, L, T); and the reports (input, and generated given each) as a table."""
    ds = splits.test.subset(cases)
    given = {WITHOUT_F: ("lateral", "text"), ALL: ("lateral", "frontal", "text")}
    gens = {k: generate(run.model, ds, s, seed=seed) for k, s in given.items()}
    batch = [splits.test[i] for i in cases]
    inputs = {
        "frontal": to_display(np.stack([b["frontal"].numpy() for b in batch])),
        "lateral": to_display(np.stack([b["lateral"].numpy() for b in batch])),
    }
    images, captions = [], []
    for label, src in [
        ("input F", inputs["frontal"]),
        ("input L", inputs["lateral"]),
        ("F given L,T", gens[WITHOUT_F]["frontal"]),
        ("L given L,T", gens[WITHOUT_F]["lateral"]),
        ("F given L,F,T", gens[ALL]["frontal"]),
        ("L given L,F,T", gens[ALL]["lateral"]),
    ]:
        for i, c in enumerate(cases):
            images.append(src[i])
            tag = "finding" if splits.test.labels[c] else "no finding"
            captions.append(f"{label}\n(study {i + 1}, {tag})")
    fig = plots.plot_image_grid(
        images, captions, ncols=len(cases), panel_size=1.5, value_range=(0, 1)
    )
    words = lambda ids: " ".join(splits.vocab.decode(ids)) or "(padding only)"  # noqa: E731
    texts = pd.DataFrame(
        {
            "input report (as the model reads it)": [words(b["token_ids"]) for b in batch],
            "generated given L,T": [words(x) for x in gens[WITHOUT_F]["text"]],
            "generated given L,F,T": [words(x) for x in gens[ALL]["text"]],
        },
        index=pd.Index([f"study {i + 1}" for i in range(len(cases))], name="test study"),
    )
    return fig, texts


def generations(run: TrainedRun, splits: Splits, cases: Sequence[int], *, seed: int = 0):
    """What ``run`` generates for the test studies ``cases`` given each of the seven subsets:
    ``{subset name: {"frontal", "lateral": (N, S, S) in 0..1, "text": ids}}``."""
    ds = splits.test.subset(cases)
    return {subset_name(s): generate(run.model, ds, s, seed=seed) for s in SUBSETS}


def plot_generations(run: TrainedRun, splits: Splits, cases: Sequence[int], *, seed: int = 0):
    """The explorer's view for the book: for each study of ``cases`` (rows: its frontal, then
    its lateral film), the input film and the film generated given each subset (columns);
    and each study's report as read and as generated given each subset (a table)."""
    gens = generations(run, splits, cases, seed=seed)
    images, captions = [], []
    for i, c in enumerate(cases):
        tag = "finding" if splits.test.labels[c] else "no finding"
        for view in ("frontal", "lateral"):
            real = to_display(splits.test[c][view].numpy()[None])[0]
            images.append(real)
            captions.append(f"study {i + 1} ({tag})\ninput {view[0].upper()}")
            for name, g in gens.items():
                images.append(g[view][i])
                captions.append(f"{view[0].upper()} given {name}")
    fig = plots.plot_image_grid(
        images, captions, ncols=1 + len(gens), panel_size=1.1, value_range=(0, 1), wrap=24
    )
    words = lambda ids: " ".join(splits.vocab.decode(ids)) or "(padding only)"  # noqa: E731
    texts = pd.DataFrame(
        {f"study {i + 1}": [words(splits.test[c]["token_ids"])]
         + [words(g["text"][i]) for g in gens.values()] for i, c in enumerate(cases)},
        index=pd.Index(["input", *(f"given {n}" for n in gens)], name="report"),
    )  # fmt: skip
    return fig, texts


def explorer(runs: Mapping[str, TrainedRun], splits: Splits, *, seed: int = 0):
    """Pick a model, a conditioning subset and a test study and see what is generated (the
    films beside the study's own, the report beside its own). JupyterLab only; the book
    shows :func:`plot_generations` instead."""
    import ipywidgets as w
    from IPython.display import display

    def show(joint: str, subset: str, study: int) -> None:
        given = dict(zip(SUBSET_NAMES, SUBSETS, strict=True))[subset]
        g = generate(runs[joint].model, splits.test.subset([study]), given, seed=seed)
        item = splits.test[study]
        films = [to_display(item[v].numpy()[None])[0] for v in ("frontal", "lateral")]
        tag = "finding" if splits.test.labels[study] else "no finding"
        fig = plots.plot_image_grid(
            [*films, g["frontal"][0], g["lateral"][0]],
            [f"input F ({tag})", "input L", f"F given {subset}", f"L given {subset}"],
            ncols=4, panel_size=2.0, value_range=(0, 1),
        )  # fmt: skip
        display(fig)
        words = lambda ids: " ".join(splits.vocab.decode(ids)) or "(padding only)"  # noqa: E731
        print(f"input report:     {words(item['token_ids'])}")
        print(f"generated report: {words(g['text'][0])}")

    return w.interactive(
        show,
        joint=w.Dropdown(options=[(NAMES[j], j) for j in runs], description="model"),
        subset=w.Dropdown(options=list(SUBSET_NAMES), value=WITHOUT_F, description="given"),
        study=w.IntSlider(0, 0, len(splits.test) - 1, description="test study"),
    )


# --------------------------------------------------------------------------------------------
# the numbers of the page, and the records


def headline(
    cohort: Cohort, table1: pd.DataFrame, generation: pd.DataFrame | None, verdicts: pd.DataFrame
) -> dict[str, float]:
    """The numbers the chapter's prose quotes (glued, never typed), ours and the paper's."""
    t = cohort.table
    test = t[t["split"] == "test"]
    out: dict[str, float] = {
        "n_studies": len(t),
        "n_train": int((t["split"] == "train").sum()),
        "n_test": len(test),
        "finding_share": float(t["label"].mean()),
        "test_finding_share": float(test["label"].mean()),
        "paper_random": reference.RANDOM,
        **claims.tally(verdicts),
    }
    tab = Table(table1, generation)
    for j in JOINTS:
        for s, key in zip(SUBSET_NAMES, _keys(SUBSET_NAMES), strict=True):
            try:
                out[f"{j}_{key}_ap"] = tab.ap(s, j).x
            except claims.Missing:
                out[f"{j}_{key}_ap"] = math.nan
    try:
        out["random_ap"] = tab.random().x
    except claims.Missing:
        out["random_ap"] = math.nan
    for s, key in zip(SUBSET_NAMES, _keys(SUBSET_NAMES), strict=True):
        out[f"paper_{key}_ap"] = reference.TABLE1[s]
    out["paper_spread"] = max(reference.TABLE1.values()) - min(reference.TABLE1.values())
    for m in ("t", "f"):  # normalised: the share of the way from random to perfect
        paper = reference.TABLE1[m.upper()]
        out[f"paper_{m}_nap"] = (paper - reference.RANDOM) / (1 - reference.RANDOM)
        out[f"mopoe_{m}_nap"] = (out[f"mopoe_{m}_ap"] - out["random_ap"]) / (1 - out["random_ap"])
    ours = [out[f"mopoe_{k}_ap"] for k in _keys(SUBSET_NAMES)]
    out["mopoe_spread"] = float(np.max(ours) - np.min(ours)) if ours else math.nan
    if generation is not None:
        for subset, key in ((WITHOUT_F, "lt"), (ALL, "lft")):
            for m in ("F", "L", "T"):
                for value in ("sharpness", "coherence"):
                    try:
                        x = tab.value(value, joint="mopoe", subset=subset, modality=m).x
                    except claims.Missing:
                        continue
                    out[f"mopoe_{m.lower()}_{value}_given_{key}"] = x
        for m in ("F", "T"):
            try:
                out[f"real_{m.lower()}_coherence"] = tab.value(
                    "coherence", joint="real", subset="-", modality=m
                ).x
            except claims.Missing:
                out[f"real_{m.lower()}_coherence"] = math.nan
    return out


def _keys(names: Sequence[str]) -> list[str]:
    return [n.replace(",", "").lower() for n in names]


def write_outputs(
    out_dir: Path,
    params: Mapping[str, object],
    *,
    cohort: Cohort,
    table1: pd.DataFrame,
    generation: pd.DataFrame,
    runs: Mapping[str, TrainedRun],
    verdicts: pd.DataFrame,
) -> Path:
    """``claims.json`` and ``metrics.json`` of this run (validated, written atomically);
    returns the path of ``claims.json``."""
    return write_chapter_outputs(
        out_dir,
        params,
        chapter=SLUG,
        paper=PAPER,
        verdicts=verdicts,
        cohort=cohort_section(cohort.flow, cohort.split_counts().reset_index()),
        table1=table1,
        generation=generation,
        runs={
            j: {k: r.result.metrics.get(k) for k in ("best_epoch", "epochs_run", "best_val_loss")}
            | {"path": str(r.result.path)}
            for j, r in runs.items()
        },
        modalities=list(MODALITIES),
        headline=headline(cohort, table1, generation, verdicts),
    )
