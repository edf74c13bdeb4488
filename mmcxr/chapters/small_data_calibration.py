"""The small-data chapter's calibrations (see :mod:`mmcxr.calibration`): Table 3's two
single-modality baselines at the high learning rate, each against the knob of its modality.

* ``small-data-explanations``: the text model's accuracy against ``synth_report_difficulty``
  (the paper: 0.77). Measured first: the report knob changes the MeSH labels every model is
  scored on (the images stay as drawn), so the image curve is measured at its value.
* ``small-data-explanations.image``: the image model's accuracy against
  ``synth_image_difficulty`` (the paper: 0.74). The image knob changes pixels only, so the
  text curve does not depend on it.

Each point runs the chapter's own single-modality model in its ``book`` profile, through the
chapter's own functions, as the notebook does: the cohort, the split runs of Figure 5 at the
high rate (:func:`mmcxr.chapters.small_data.train_split_runs` for one kind), Table 3's mean
over splits and epochs (:func:`mmcxr.chapters.small_data_results.table3_rows`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pandas as pd

from mmcxr import calibration, data, runs
from mmcxr.calibration import Calibration, load_curve, summarize
from mmcxr.chapters import small_data as sd
from mmcxr.chapters import small_data_reference as ref
from mmcxr.chapters import small_data_results as sdr

#: The chapter's calibrations: the text baseline's (report knob), then the image's.
NAMES = (sd.SLUG, f"{sd.SLUG}.image")
#: Table 3's source, as the page cites it.
SOURCE = "Table 3, learning rate 1e-2"


def cohort_data(params: dict[str, Any], out: Path) -> tuple[sd.Cohort, sd.Data]:
    """The notebook's cohort cells: the synthetic IU root of these parameters (difficulty
    knobs included), its loader, :func:`~mmcxr.chapters.small_data.build_cohort`, the image
    cache and the token ids."""
    fmt = params["data_format"]
    root = calibration.synthetic_root(params)
    loader = data.load_openi if fmt == "openi" else data.load_openi_kaggle
    cohort = sd.build_cohort(
        loader(root), seed=params["seed"], split_fractions=params["split_fractions"]
    )
    cache_dir = sd.cache_dir(out, cohort.table, params["image_size"], fmt)
    cache = calibration.image_cache(fmt, root, cache_dir, cohort.table[["image_id", "path"]],
                                    params["image_size"])  # fmt: skip
    return cohort, sd.make_data(cohort, cache, params["max_words"])


def pretrained_key(params: dict[str, Any], out: Path, store: runs.RunStore, device: str) -> str:
    """The notebook's ChestX-ray14 pretraining (its synthetic root: :func:`~mmcxr.chapters.small_data.cxr14_config`)."""
    root = calibration.synthetic_root(params, "chestx-ray14", n=params["synth_cxr14_n"],
                                      config=sd.cxr14_config(params))  # fmt: skip
    cxr = data.load_chestxray14(root)
    cache_dir = sd.cache_dir(out, cxr, params["image_size"], "chestx-ray14")
    cache = calibration.image_cache("chestx-ray14", root, cache_dir, cxr[["image_id", "path"]],
                                    params["image_size"])  # fmt: skip
    _, key = sd.pretrain_chestxray14(cxr, cache, params, store, device=device)
    return key


def _single(kind: str):
    def measure(params: dict[str, Any], out: Path, device: str) -> dict[str, float]:
        """Table 3's ``kind`` model at the high learning rate: mean held-out accuracy over
        the profile's splits and epochs."""
        t0 = time.perf_counter()
        store = runs.RunStore(out / "runs")
        cohort, d = cohort_data(params, out)
        key = pretrained_key(params, out, store, device) if kind == "image" else None
        t1 = time.perf_counter()
        split_runs = sd.train_split_runs(
            d, sd.custom_vectors(cohort, params) if kind == "text" else None, params, store,
            key, device=device, kinds=(kind,), lrs=("high",),
        )  # fmt: skip
        row = sdr.table3_rows(sd.split_histories(split_runs)).iloc[0]
        return {
            "accuracy": float(row["accuracy"]),
            "abnormal_share": float(cohort.table["label"].mean()),
            "data_seconds": t1 - t0,
            "train_seconds": time.perf_counter() - t1,
        }

    return measure


#: What both baselines depend on besides their knob: the cohort and the split recipe.
BASE_KEYS = ("data_format", "synth_n", "synth_seed", "synth_image_size", "split_fractions",
             "batch_size", "decoder_hidden", "lr_high", "splits_high", "epochs_high",
             "holdout_fraction")  # fmt: skip
TEXT_KEYS = BASE_KEYS + ("max_words", "embed_dim", "n_filters", "w2v_epochs")
IMAGE_KEYS = BASE_KEYS + ("synth_report_difficulty", "synth_cxr14_n", "image_size",
                          "image_backbone", "pretrain_epochs", "pretrain_lr")  # fmt: skip


def calibrations() -> tuple[Calibration, ...]:
    paper = ref.MULTIMODAL_ACCURACY
    return (
        Calibration(
            slug=sd.SLUG,
            knob="synth_report_difficulty",
            metric="accuracy",
            target=paper[("high", "text")],
            baseline="text model's held-out accuracy, mean over splits and epochs",
            source=SOURCE,
            measure=_single("text"),
            keys=TEXT_KEYS,
        ),
        Calibration(
            slug=sd.SLUG,
            name=f"{sd.SLUG}.image",
            knob="synth_image_difficulty",
            metric="accuracy",
            target=paper[("high", "image")],
            baseline="image model's held-out accuracy, mean over splits and epochs",
            source=SOURCE,
            measure=_single("image"),
            keys=IMAGE_KEYS,
        ),
    )


def label_witness(cohort: sd.Cohort, gt: pd.DataFrame) -> pd.DataFrame:
    """What the label every model is scored on (the MeSH coding) says, against what the report
    states and what the film shows, from the synthetic ground truth: the share of cases that
    are abnormal by MeSH, that have a finding drawn, whose label agrees with the film (what
    the rule "abnormal when anything is drawn" scores), whose report leaves out or only hedges
    a drawn finding, and whose MeSH coding contradicts the report's text (no text model can
    know those: one minus this share is about the most a text model can score)."""
    g = gt.assign(key=gt["image_id"].map(sd._key)).drop_duplicates("key").set_index("key")
    rows = g.reindex(cohort.table["image_id"].map(sd._key).to_numpy())
    truth = [c for c in gt.columns if c.startswith("truth_")]
    drawn = rows[truth].fillna(0).to_numpy().astype(bool).any(axis=1)
    edits = rows["report_edits"].fillna("").astype(str)
    label = cohort.table["label"].to_numpy() == 1
    shares = {
        "abnormal by MeSH (the label)": label.mean(),
        "a finding is drawn on the film": drawn.mean(),
        "the label agrees with the film": (label == drawn).mean(),
        "a drawn finding left out of the report or only hedged": edits.str.contains(
            "omitted:|hedged:"
        ).mean(),
        "the MeSH coding contradicts the report's text": edits.str.contains("mesh_flipped").mean(),
    }
    return pd.DataFrame({"share of cases": shares}).rename_axis("cases")


def uncalibrated(name: str) -> float:
    """The measured curve's mean at knob value 0 (the generator as drawn)."""
    return float(summarize(load_curve(name))["mean"].get(0.0, float("nan")))


def plot_curves():
    """Both measured curves side by side (:func:`mmcxr.calibration.plot_curve`): the metric
    against the knob, seeds and spread, the paper's baseline and the default read off it,
    and the accuracy of calling every case normal in each measured cohort (grey)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10.0, 3.8), layout="constrained")
    for ax, name in zip(fig.subplots(1, len(NAMES)), NAMES, strict=True):
        c = load_curve(name)
        calibration.plot_curve(c, ax=ax, title=c["baseline"].replace(", mean", "\nmean"))
        share = pd.DataFrame(c["points"]).groupby("value")["abnormal_share"].mean()
        ax.plot(share.index, 1 - share, "-.", color="0.45", lw=1, label="every case 'normal'")
        ax.legend(loc="best", fontsize=8)
    return fig
