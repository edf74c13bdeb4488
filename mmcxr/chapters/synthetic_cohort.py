"""The synthetic-cohort chapter: what the cohort plants, how to see it, and how strong it is.

The notebook ``notebooks/synthetic-cohort.py`` is the reader's guide to the data every other
chapter uses. What it would otherwise grow lives here, tested; what is not particular to this
page lives in the shared modules: :mod:`mmcxr.plots` draws every figure, :mod:`mmcxr.data`
reads DICOM tags, lists a root (``tree_listing``), reads its ``synthetic_config.json`` and
analyses its ground truth (``planted_structure``, ``label_truth_agreement``,
``strata_films``), and :mod:`mmcxr.probes` measures how learnable each modality is
(``signal_check``). Here:

* :func:`load_release` — any of the chapter's :data:`FORMATS` read by its loader;
* :func:`study_labels`, :func:`report_card` — the labels per study, one report parsed;
* ``*_panels`` — which images a figure shows, with captions (and boxes), as tables that
  :func:`mmcxr.plots.plot_image_grid` draws; :func:`plot_stored_and_displayed` for DICOMs;
* ``*_numbers`` and :func:`glue_text` — the numbers the prose quotes, formatted once.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from mmcxr.data.ground_truth import strata_films
from mmcxr.labels import CHEXPERT_LABELS
from mmcxr.params import Param, common, synthetic

# Moved to mmcxr.probes; still importable from here for tests/test_synth_learnability.py.

SLUG = "synthetic-cohort"

#: What every parameter must be (checked when the chapter starts: :mod:`mmcxr.params`).
PARAMETERS: dict[str, Param] = {
    **common(formats=("mimic-cxr", "mimic-cxr-jpg")),
    **synthetic(),
    "meta_root": Param("str", optional=True, doc="the MIMIC-CXR-JPG root with its tables"),
    "reports_root": Param("str", optional=True, doc="the MIMIC-CXR root with the reports"),
    "imagenome_root": Param("str", optional=True, doc="a Chest ImaGenome root"),
    "demo_n_mimic": Param("int", low=1),
    "demo_n_openi": Param("int", low=1),
    "demo_n_chestxray14": Param("int", low=1),
    "demo_image_size": Param("int", low=16, high=4096),
    "check_images": Param("bool"),
    "n_examples": Param("int", low=1),
    "cache_size": Param("int", low=8, high=1024),
    "signal_max_images": Param("int", low=10),
    "min_prevalence": Param("float", low=0, high=1),
    "test_share": Param("float", low=0.05, high=0.95),
}
FORMATS = ("mimic-cxr", "mimic-cxr-jpg", "openi", "chestx-ray14")
"""The release formats the chapter shows, in the order it shows them."""
NOT_REAL = "n/a (real data)"
"""What the prose quotes for a number that only the synthetic ground truth defines."""

__all__ = [
    "FORMATS",
    "GLUE_FORMATS",
    "IMAGENOME_ANATOMY",
    "NOT_REAL",
    "SLUG",
    "agreement_numbers",
    "cache_dir_for",
    "display_numbers",
    "glue_text",
    "imagenome_panels",
    "load_release",
    "paper_numbers",
    "pick_examples",
    "plot_stored_and_displayed",
    "report_card",
    "strata_panels",
    "study_labels",
    "view_panels",
]

# --------------------------------------------------------------------------------------------
# the root and its labels


def load_release(fmt: str, root: str | os.PathLike, **kwargs: Any) -> pd.DataFrame:
    """The tidy image table of any of the :data:`FORMATS`, by its format's loader."""
    from mmcxr import data

    loaders = {
        "mimic-cxr": data.load_mimic_cxr,
        "mimic-cxr-jpg": data.load_mimic_cxr_jpg,
        "openi": data.load_openi,
        "chestx-ray14": data.load_chestxray14,
    }
    if fmt not in loaders:
        raise ValueError(f"unknown format {fmt!r}; known: {list(loaders)}")
    return loaders[fmt](root, **kwargs)


def study_labels(images: pd.DataFrame, labels: Sequence[str] = CHEXPERT_LABELS) -> pd.DataFrame:
    """One row per study (its labels are per study in MIMIC): ids, view of its first image."""
    missing = [c for c in ("subject_id", "study_id", *labels) if c not in images.columns]
    if missing:
        raise KeyError(f"study_labels needs column(s) {missing}")
    return images.drop_duplicates("study_id")[["subject_id", "study_id", *labels]].reset_index(
        drop=True
    )


def agreement_numbers(agreement: pd.DataFrame | None, gt: pd.DataFrame | None) -> dict[str, Any]:
    """The numbers the prose quotes about labels against pixels (:data:`NOT_REAL` on real data)."""
    keys = ("noise_studies", "noise_share", "kappa_min", "kappa_min_finding", "devices_unlabelled")
    if agreement is None or gt is None:
        return dict.fromkeys(keys, NOT_REAL)
    noisy = gt.drop_duplicates("study_id")["noise_label"].notna()
    devices = "Support Devices"
    return {
        "noise_studies": int(noisy.sum()),
        "noise_share": float(noisy.mean()),
        "kappa_min": float(agreement["kappa"].min()),
        "kappa_min_finding": str(agreement["kappa"].idxmin()),
        "devices_unlabelled": int(agreement.loc[devices, "unlabelled"])
        if devices in agreement.index
        else 0,
    }


# --------------------------------------------------------------------------------------------
# examples: which images a figure shows, as tables of path, caption (and boxes where drawn)


def pick_examples(
    table: pd.DataFrame, n: int, seed: int = 0, labels: Sequence[str] = CHEXPERT_LABELS
) -> pd.DataFrame:
    """``n`` rows of different studies that between them show as many labels as possible.

    A random sample of a cohort that is one third No Finding shows mostly normal films; here
    rows are visited in a seeded random order and a row is taken when it adds a positive
    label not shown yet (one No Finding row included), then the rest is filled at random.
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    rows = table.drop_duplicates("study_id")
    rows = rows.iloc[np.random.default_rng(seed).permutation(len(rows))]
    cols = [c for c in labels if c in rows.columns]
    chosen: list[Any] = []
    seen: set[str] = set()
    for idx, row in rows.iterrows():
        if len(chosen) == n:
            break
        positive = {c for c in cols if row[c] == 1.0}
        if positive - seen:
            chosen.append(idx)
            seen |= positive
    rest = [i for i in rows.index if i not in set(chosen)]
    chosen += rest[: max(0, n - len(chosen))]
    return rows.loc[chosen]


def view_panels(images: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """A department study's PA and lateral, then a bedside AP film (those the cohort has).

    Studies are drawn with a seeded generator; captions give view, orientation, procedure.
    """
    rng = np.random.default_rng(seed)
    views = images.assign(view=images["view"].str.upper())
    by_study = views.groupby("study_id")["view"].agg(set)
    lateral = {"LATERAL", "LL"}
    pa_lat = by_study[by_study.map(lambda v: "PA" in v and bool(v & lateral))].index
    ap = by_study[by_study.map(lambda v: "AP" in v)].index
    rows = []
    for studies, wanted in ((pa_lat, ({"PA"}, lateral)), (ap, ({"AP"},))):
        if len(studies):
            study = views[views["study_id"] == studies[int(rng.integers(len(studies)))]]
            rows += [study[study["view"].isin(w)].iloc[0] for w in wanted]
    captions = [
        f"{r['view']}, {r['orientation'] or 'orientation not recorded'}\n{r['procedure']}"
        for r in rows
    ]
    return pd.DataFrame({"path": [r["path"] for r in rows], "caption": captions})


def strata_panels(gt: pd.DataFrame, images: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """:func:`mmcxr.data.strata_films` as panels: the group as caption, its box named "as drawn".

    The films are the data layer's choice; captions and box names are this page's wording.
    ``path`` stays relative to the root, as in the ground-truth table.
    """
    rows = [
        {
            "path": f.path,
            "caption": f.group,
            "boxes": {f"{f.finding}, as drawn": f.box} if f.box else {},
        }
        for f in strata_films(gt, images, seed).itertuples()
    ]
    return pd.DataFrame(rows, columns=["path", "caption", "boxes"])


IMAGENOME_ANATOMY = (
    "right lung",
    "left lung",
    "cardiac silhouette",
    "mediastinum",
    "right costophrenic angle",
    "left costophrenic angle",
)
"""The anatomical boxes shown: the regions the findings of the chapters sit in."""


def imagenome_panels(
    gold_boxes: pd.DataFrame,
    gold_sentences: pd.DataFrame,
    images: pd.DataFrame,
    seed: int = 0,
    max_linked: int = 6,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A gold image twice: :data:`IMAGENOME_ANATOMY`, then the boxes its positive sentences name.

    Returns the two panels and the image's positive sentences. The image is drawn (seeded)
    among the gold images in ``images`` with a positive sentence about a region smaller than
    a whole lung, so that the second panel localises something; each linked box is named
    with every condition said about it (at most ``max_linked`` boxes).
    """
    corners = ["original_x1", "original_y1", "original_x2", "original_y2"]
    positive = gold_sentences[gold_sentences["context"].astype(str).str.lower() == "yes"]
    on_disk = set(images["dicom_id"])
    linked = positive[
        positive["dicom_id"].isin(on_disk) & ~positive["bbox"].isin(["left lung", "right lung"])
    ]
    ids = sorted(set(linked["dicom_id"])) or sorted(set(gold_boxes["dicom_id"]) & on_disk)
    if not ids:
        raise ValueError("imagenome_panels: no gold image is among the images")
    dicom_id = ids[int(np.random.default_rng(seed).integers(len(ids)))]
    path = images.loc[images["dicom_id"] == dicom_id, "path"].iloc[0]
    anat = gold_boxes[gold_boxes["dicom_id"] == dicom_id].set_index("bbox_name")[corners]
    said = linked[linked["dicom_id"] == dicom_id]
    named = {}  # one entry per box, naming every condition said about it
    for bbox, group in said.groupby("bbox", sort=True):
        if bbox in anat.index and len(named) < max_linked:
            conditions = ", ".join(sorted(set(group["label_name"])))
            named[f"{bbox}: {conditions}"] = anat.loc[bbox].tolist()
    anatomy = {n: anat.loc[n].tolist() for n in IMAGENOME_ANATOMY if n in anat.index}
    panels = pd.DataFrame(
        {
            "path": [path, path],
            "caption": ["anatomical boxes", "boxes linked to positive sentences"],
            "boxes": [anatomy, named],
        }
    )
    columns = ["sentence", "bbox", "label_name", "context", "section"]
    return panels, said[columns].reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# DICOM display and reports


def plot_stored_and_displayed(headers: pd.DataFrame, *, panel_size: float = 2.8) -> Figure | None:
    """A MONOCHROME1 film and a film with a VOI LUT: stored values beside ``read_image``.

    ``headers`` is :func:`mmcxr.data.dicom_headers` of the films to choose from (the first of
    each kind is shown); None when there is neither kind. The display images share the grey
    scale 0..1, so the window's black and white are shown as they are.
    """
    from mmcxr.data import raw_and_display
    from mmcxr.plots import plot_image_grid

    chosen = [headers[headers["photometric"] == "MONOCHROME1"], headers[headers["voi_lut"]]]
    images, captions = [], []
    for h in (h for h in chosen if len(h)):
        raw, shown, tags = raw_and_display(h["path"].iloc[0])
        photometric = tags["PhotometricInterpretation"]
        inverted = "inverted" if photometric == "MONOCHROME1" else "not inverted"
        images += [raw, shown]
        captions += [
            f"stored values, {photometric}\n({tags['BitsStored']}-bit, min-max scaled)",
            f"read_image: {'VOI LUT' if tags['VOI LUT'] else 'window'} applied,\n{inverted}",
        ]
    if not images:
        return None
    return plot_image_grid(images, captions, ncols=2, panel_size=panel_size, value_range=(0, 1))


def display_numbers(headers: pd.DataFrame | None) -> dict[str, Any]:
    """The shares of MONOCHROME1 films and of VOI LUTs the prose quotes (None: a JPG release,
    which has no DICOM header to count)."""
    if headers is None:
        return dict.fromkeys(("share_mono1", "share_voi_lut"), "n/a (JPG release)")
    return {
        "share_mono1": float((headers["photometric"] == "MONOCHROME1").mean()),
        "share_voi_lut": float(headers["voi_lut"].mean()),
    }


def report_card(row: pd.Series, labels: Sequence[str] = CHEXPERT_LABELS) -> dict[str, Any]:
    """One study's report as the loader parsed it, with its non-blank labels by name."""
    from mmcxr.data.sections import parse_sections

    states = {1.0: "positive", -1.0: "uncertain", 0.0: "negative"}
    given = {c: states[float(row[c])] for c in labels if c in row and pd.notna(row[c])}
    return {
        "report": str(row["report"]),
        "sections": parse_sections(str(row["report"])),
        "findings": row.get("findings"),
        "impression": row.get("impression"),
        "labels": given,
    }


# --------------------------------------------------------------------------------------------
# the prepare cache


def cache_dir_for(base: str | os.PathLike, keys: Sequence[str], size: int) -> Path:
    """A prepare-cache folder named by its image keys and size, so another selection of
    images (a different seed or sample size) gets its own cache instead of a stale-cache
    error, and the same selection reuses the one already built."""
    import hashlib

    digest = hashlib.sha256("\n".join(map(str, keys)).encode()).hexdigest()[:12]
    return Path(base) / f"cache-{int(size)}px-{digest}"


# --------------------------------------------------------------------------------------------
# the numbers the prose quotes


def paper_numbers() -> dict[str, float]:
    """The pneumonia AUROCs of Chao & Li's text and image models (full data, BCE), quoted in
    the prose from the late-fusion chapter's reference tables."""
    from mmcxr.chapters import late_fusion_reference as paper

    auroc = paper.METRICS.index("auroc")
    return {
        f"paper_001_{model}_auroc": paper.RESULTS[(model, "full", "bce")][auroc]
        for model in ("text", "image")
    }


GLUE_FORMATS = {
    "findings_ratio": ".2f",
    "share_no_finding": ".1%",
    "share_mono1": ".1%",
    "share_voi_lut": ".1%",
    "noise_share": ".1%",
    "kappa_min": ".2f",
    "image_auroc_mean": ".3f",
    "text_auroc_mean": ".3f",
    "image_auroc_min": ".3f",
    "image_auroc_max": ".3f",
    "paper_001_text_auroc": ".4f",
    "paper_001_image_auroc": ".4f",
}
"""How the prose shows each number; other ints get thousands separators, strings stay."""


def glue_text(numbers: Mapping[str, Any]) -> dict[str, str]:
    """Each number as the prose shows it (:data:`GLUE_FORMATS`); strings ("n/a ...") as given."""
    out = {}
    for name, value in numbers.items():
        if isinstance(value, np.generic):
            value = value.item()  # np.int64 is no int: it would miss its thousands separator
        fmt = None if isinstance(value, str) else GLUE_FORMATS.get(name)
        if fmt is None and isinstance(value, int) and not isinstance(value, bool):
            fmt = ","
        out[name] = format(value, fmt) if fmt else str(value)
    return out
