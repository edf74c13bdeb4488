"""The synthetic-cohort chapter: what the cohort plants, how to see it, and how strong it is.

The notebook ``notebooks/synthetic-cohort.py`` is the reader's guide to the data every other
chapter uses. What it would otherwise grow lives here, tested; generic pieces live in the
shared modules (:mod:`mmcxr.plots` draws every figure, :mod:`mmcxr.data` reads DICOM tags):

* :func:`tree_listing` — a short, deterministic listing of a release's on-disk tree;
* :func:`planted_structure` — each planted knob of the cohort's config beside what the
  generated cohort actually shows (computed from the ground-truth table);
* :func:`label_truth_agreement` — how the report-derived labels relate to the pixel truth;
* ``*_panels`` — which images a figure shows, with captions (and boxes), as tables that
  :func:`mmcxr.plots.plot_image_grid` draws; :func:`plot_stored_and_displayed` for DICOMs;
* :func:`signal_check` — logistic regressions on 32x32 pixels and on a bag of words of the
  report, per common finding: how learnable each modality is (the papers find the text far
  stronger than the image);
* ``*_numbers`` and :func:`glue_text` — the numbers the prose quotes, formatted once.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from tqdm.auto import tqdm

from mmcxr.data.splits import patient_split
from mmcxr.names import CONFIG_FILE
from mmcxr.params import Param, common, synthetic
from mmcxr.synth.labels import CHEXPERT_LABELS, FINDING_LABELS

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
    "common_labels",
    "display_numbers",
    "glue_text",
    "imagenome_panels",
    "label_truth_agreement",
    "load_release",
    "load_synth_config",
    "paper_numbers",
    "parse_box",
    "pick_examples",
    "planted_structure",
    "plot_stored_and_displayed",
    "report_card",
    "signal_check",
    "signal_numbers",
    "strata_panels",
    "study_labels",
    "tree_listing",
    "view_panels",
]

# --------------------------------------------------------------------------------------------
# the root


def load_synth_config(root: str | os.PathLike) -> dict[str, Any]:
    """The config file of a synthetic root: the planted structure (``config``) and recipe."""
    path = Path(root) / CONFIG_FILE
    try:
        payload = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: not found (only synthetic cohorts have one)") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("config"), dict):
        raise ValueError(f"{path}: expected an object with a 'config' object inside")
    return payload


def tree_listing(
    root: str | os.PathLike,
    *,
    max_entries: int = 3,
    max_top: int = 12,
    max_depth: int = 5,
    exclude: Sequence[str] = (),
) -> str:
    """The shape of a release's tree as text: a few entries per folder, one path expanded.

    Hand-written (``tree`` is not a Python library and ``os.walk`` lists everything): a
    release holds hundreds of thousands of files and the reader needs the *shape*, so each
    folder shows its first ``max_entries`` entries in sorted order (the root: ``max_top``)
    and a count of the rest, and only the first subfolder of each folder is opened, giving
    one example path from the root down to the files. Hidden names and names in ``exclude``
    are skipped.
    """
    r = Path(root)
    if not r.is_dir():
        raise FileNotFoundError(f"{r}: not a folder")
    lines = [f"{r.name}/"]
    skip = set(exclude)

    def walk(d: Path, prefix: str, depth: int) -> None:
        entries = sorted(
            (p for p in d.iterdir() if p.name not in skip and not p.name.startswith(".")),
            key=lambda p: (not p.is_dir(), p.name),
        )
        limit = max_top if depth == 1 else max_entries
        shown, rest = entries[:limit], entries[limit:]
        opened = False
        for i, p in enumerate(shown):
            last = i == len(shown) - 1 and not rest
            branch, cont = ("`-- ", "    ") if last else ("|-- ", "|   ")
            lines.append(f"{prefix}{branch}{p.name}{'/' if p.is_dir() else ''}")
            if p.is_dir() and depth < max_depth and (depth == 1 or not opened):
                opened = True
                walk(p, prefix + cont, depth + 1)
        if rest:
            n_dirs = sum(p.is_dir() for p in rest)
            n_files = len(rest) - n_dirs
            what = [f"{n} more {w}" for n, w in ((n_dirs, "folders"), (n_files, "files")) if n]
            lines.append(f"{prefix}`-- ... ({', '.join(what)})")

    walk(r, "", 1)
    return "\n".join(lines)


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


# --------------------------------------------------------------------------------------------
# labels and the planted structure


def study_labels(images: pd.DataFrame, labels: Sequence[str] = CHEXPERT_LABELS) -> pd.DataFrame:
    """One row per study (its labels are per study in MIMIC): ids, view of its first image."""
    missing = [c for c in ("subject_id", "study_id", *labels) if c not in images.columns]
    if missing:
        raise KeyError(f"study_labels needs column(s) {missing}")
    return images.drop_duplicates("study_id")[["subject_id", "study_id", *labels]].reset_index(
        drop=True
    )


def common_labels(
    table: pd.DataFrame, labels: Sequence[str] = CHEXPERT_LABELS, min_prevalence: float = 0.05
) -> list[str]:
    """Labels positive (1.0) in at least ``min_prevalence`` of the rows, in the given order."""
    return [c for c in labels if c in table.columns and (table[c] == 1.0).mean() >= min_prevalence]


def planted_structure(gt: pd.DataFrame, config: dict[str, Any]) -> pd.DataFrame:
    """Each planted structure: its knob in the cohort's config and what the cohort shows.

    ``gt`` is the ground-truth table (one row per image); ``config`` the ``config`` object of
    :func:`load_synth_config`. ``planted`` is the knob's value, ``measured`` the same quantity
    counted in the cohort, over ``n`` units (studies or images, see ``over``). A knob switched
    off (None, False, 0) is reported as such and measured all the same.
    """
    need = ["study_id", "frontal", "portable", "orientation", "spurious_marker", "noise_label"]
    missing = [c for c in need if c not in gt.columns]
    if missing:
        raise KeyError(f"planted_structure: ground-truth table lacks {missing}")
    studies = gt.sort_values("frontal", ascending=False).drop_duplicates("study_id")
    frontal = gt[gt["frontal"].astype(bool)]
    knob = config.get
    strata = bool(knob("plant_strata"))  # off: the two stratum knobs are reported as False
    spur = knob("spurious_label")
    # (structure, knob, planted value, one 0/1 outcome per unit, unit)
    spec: list[tuple[str, str, Any, pd.Series, str]] = [
        ("portable AP films", "portable_rate", knob("portable_rate"), studies["portable"].astype(bool),
         "studies")
    ]  # fmt: skip
    if spur:
        ap = frontal[frontal["portable"].astype(bool)]
        drawn, marker = ap[f"truth_{spur}"].astype(bool), ap["spurious_marker"].astype(bool)
        spec += [
            (f"spurious marker | {spur} drawn (AP)", "spurious_p_positive",
             knob("spurious_p_positive"), marker[drawn], "AP images"),
            (f"spurious marker | no {spur} (AP)", "spurious_p_negative",
             knob("spurious_p_negative"), marker[~drawn], "AP images"),
        ]  # fmt: skip
    else:
        spec.append(("spurious marker (switched off)", "spurious_label", None,
                     frontal["spurious_marker"].astype(bool), "frontal images"))  # fmt: skip
    spec += [
        ("chest tube | pneumothorax (hidden stratum)", "chest_tube_rate_pneumothorax",
         strata and knob("chest_tube_rate_pneumothorax"),
         studies["stratum_pneumothorax_chest_tube"].dropna(), "pneumothorax studies"),
        ("subtle lung lesions (hidden stratum)", "subtle_rate", strata and knob("subtle_rate"),
         studies["stratum_lesion"].dropna() == "subtle", "lesion studies"),
        ("label noise (report disagrees with pixels)", "label_noise_rate",
         knob("label_noise_rate"), studies["noise_label"].notna(), "studies"),
    ]  # fmt: skip
    rows = [
        (name, k, planted, x.astype(float).mean() if len(x) else np.nan, len(x), over)
        for name, k, planted, x, over in spec
    ]
    columns = ["structure", "knob", "planted", "measured", "n", "over"]
    # object columns keep a knob's None and False apart from NaN ("off", not "missing")
    out = pd.DataFrame(rows, columns=columns, dtype=object)
    return out.astype({"measured": float, "n": int})


def label_truth_agreement(
    gt: pd.DataFrame, labels: pd.DataFrame, findings: Sequence[str] = FINDING_LABELS
) -> pd.DataFrame:
    """Per finding, frontal images: drawn in the pixels vs what the CheXpert-style label says.

    ``labels`` is the loader's image table (label columns, ``dicom_id`` or ``image_id``);
    ``gt`` the ground-truth table. ``drawn`` counts images with the finding in the pixels;
    of those, ``labelled 1`` / ``labelled -1`` / ``unlabelled`` (0 or blank) say what the
    report-derived label made of them; ``labelled, not drawn`` counts positive or uncertain
    labels with nothing drawn (label noise and hedges about absent findings). ``kappa`` is
    Cohen's kappa (scikit-learn) between drawn and labelled positive-or-uncertain.
    """
    from sklearn.metrics import cohen_kappa_score

    key = "dicom_id" if "dicom_id" in gt.columns and "dicom_id" in labels.columns else "image_id"
    lab_cols = [c for c in findings if c in labels.columns]
    for name, table in (("ground-truth", gt), ("labels", labels)):
        if key not in table.columns or table[key].duplicated().any():
            raise ValueError(f"label_truth_agreement: the {name} table needs unique {key} values")
    m = gt[gt["frontal"].astype(bool)][[key, *[f"truth_{c}" for c in lab_cols]]].merge(
        labels[[key, *lab_cols]], on=key, how="inner", validate="one_to_one"
    )
    if m.empty:
        raise ValueError("label_truth_agreement: no frontal image of the labels is in the GT")
    rows = []
    for c in lab_cols:
        drawn = m[f"truth_{c}"].astype(bool).to_numpy()
        lab = m[c].to_numpy(dtype=float)
        said = np.isin(lab, (1.0, -1.0))
        rows.append(
            {
                "finding": c,
                "drawn": int(drawn.sum()),
                "labelled 1": int((drawn & (lab == 1.0)).sum()),
                "labelled -1": int((drawn & (lab == -1.0)).sum()),
                "unlabelled": int((drawn & ~said).sum()),
                "labelled, not drawn": int((~drawn & said).sum()),
                "agreement": float((drawn == said).mean()),
                "kappa": float(cohen_kappa_score(drawn, said))
                if drawn.any() or said.any()
                else np.nan,
            }
        )
    return pd.DataFrame(rows).set_index("finding")


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


def parse_box(text: Any) -> tuple[int, int, int, int] | None:
    """A ground-truth box ``"x1 y1 x2 y2"`` as integers; None when blank."""
    if text is None or (isinstance(text, float) and np.isnan(text)) or not str(text).strip():
        return None
    parts = str(text).split()
    if len(parts) != 4:
        raise ValueError(f"a box is 'x1 y1 x2 y2', got {text!r}")
    x1, y1, x2, y2 = (int(float(v)) for v in parts)
    return x1, y1, x2, y2


def strata_panels(gt: pd.DataFrame, images: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """One frontal film per hidden stratum and per marker group, its finding's box as drawn.

    Films are drawn (seeded) among the ground truth's frontal images that ``images`` holds;
    a group without any film (a small cohort) is left out. ``path`` is relative to the root,
    as in the ground-truth table.
    """
    f = gt[gt["frontal"].astype(bool)].merge(images[["dicom_id"]], on="dicom_id")
    tube, lesion = f["stratum_pneumothorax_chest_tube"], f["stratum_lesion"]
    marker, pneumonia = f["spurious_marker"].astype(bool), f["truth_Pneumonia"] == 1
    groups = (
        ("pneumothorax, chest tube", "Pneumothorax", tube == 1.0),
        ("pneumothorax, no tube", "Pneumothorax", tube == 0.0),
        ("lung lesion, obvious", "Lung Lesion", lesion == "obvious"),
        ("lung lesion, subtle", "Lung Lesion", lesion == "subtle"),
        ("AP, marker, pneumonia", "Pneumonia", marker & pneumonia),
        ("AP, marker, no pneumonia", "Pneumonia", marker & ~pneumonia),
    )
    rows = []
    for name, finding, mask in groups:
        if mask.any():
            row = f[mask].sample(1, random_state=seed).iloc[0]
            box = parse_box(row[f"box_{finding}"])
            boxes = {f"{finding}, as drawn": box} if box else {}
            rows.append({"path": row["path"], "caption": name, "boxes": boxes})
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
# the signal check


def cache_dir_for(base: str | os.PathLike, keys: Sequence[str], size: int) -> Path:
    """A prepare-cache folder named by its image keys and size, so another selection of
    images (a different seed or sample size) gets its own cache instead of a stale-cache
    error, and the same selection reuses the one already built."""
    import hashlib

    digest = hashlib.sha256("\n".join(map(str, keys)).encode()).hexdigest()[:12]
    return Path(base) / f"cache-{int(size)}px-{digest}"


def signal_check(
    table: pd.DataFrame,
    pixels: np.ndarray,
    labels: Sequence[str] | None = None,
    *,
    text_col: str = "report",
    patient_col: str = "subject_id",
    test_share: float = 0.3,
    min_prevalence: float = 0.05,
    seed: int = 0,
    progress: bool = True,
) -> pd.DataFrame:
    """AUROC of an image probe and a text probe per common finding, on a patient-level split.

    ``table`` has one row per (frontal) image, aligned with ``pixels`` (``(n, h, w)`` or
    ``(n, features)``, e.g. 32x32 thumbnails). Both probes are scikit-learn logistic
    regressions: on the standardised pixels, and on a bag of words of ``text_col``
    (``CountVectorizer``, words seen in at least two training reports). A row is positive
    when its label is 1.0, negative when 0.0 or blank; uncertain (-1.0) rows are left out of
    that label's fit and score (the "U-ignore" policy). ``labels=None`` takes every CheXpert
    label positive in at least ``min_prevalence`` of the rows. Patients are split with
    :func:`mmcxr.data.patient_split`, so no patient is in both parts.
    """
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = np.asarray(pixels, dtype=np.float32).reshape(len(pixels), -1)
    if len(x) != len(table):
        raise ValueError(f"signal_check: {len(table)} table rows but {len(x)} pixel rows")
    if not 0.0 < test_share < 1.0:
        raise ValueError(f"test_share must be in (0, 1), got {test_share}")
    if text_col not in table.columns:
        raise KeyError(f"signal_check: no text column {text_col!r}")
    if labels is None:
        labels = common_labels(table, CHEXPERT_LABELS, min_prevalence)
    if not labels:
        raise ValueError(f"signal_check: no label is positive in >= {min_prevalence:.0%} of rows")
    split = patient_split(
        table, (1.0 - test_share, 0.0, test_share), seed=seed, patient_col=patient_col
    ).to_numpy()
    train, test = split == "train", split == "test"
    texts = table[text_col].fillna("").astype(str).to_numpy()
    vectorizer = CountVectorizer(min_df=2).fit(texts[train])
    bow = vectorizer.transform(texts)
    rows = []
    for lab in tqdm(list(labels), desc="signal check", unit="label", disable=not progress):
        v = table[lab].to_numpy(dtype=float)
        y = (v == 1.0).astype(int)
        keep = v != -1.0
        a, b = train & keep, test & keep
        row: dict[str, Any] = {
            "label": lab,
            "prevalence": float((v == 1.0).mean()),
            "train": int(a.sum()),
            "test": int(b.sum()),
            "test positives": int(y[b].sum()),
        }
        if len(np.unique(y[a])) < 2 or len(np.unique(y[b])) < 2:
            row.update(image_auroc=np.nan, text_auroc=np.nan)  # one class only: undefined
        else:
            # liblinear: ten times faster than lbfgs on 1,024 dense pixels, same optimum
            image = make_pipeline(
                StandardScaler(),
                LogisticRegression(C=0.1, solver="liblinear", max_iter=2000, random_state=seed),
            )
            image.fit(x[a], y[a])
            text = LogisticRegression(
                C=1.0, solver="liblinear", max_iter=2000, random_state=seed
            ).fit(bow[a], y[a])
            row["image_auroc"] = float(roc_auc_score(y[b], image.predict_proba(x[b])[:, 1]))
            row["text_auroc"] = float(roc_auc_score(y[b], text.predict_proba(bow[b])[:, 1]))
        rows.append(row)
    return pd.DataFrame(rows).set_index("label")


def signal_numbers(signal: pd.DataFrame | None) -> dict[str, Any]:
    """The signal check's numbers the prose quotes, over the labels scored by both probes
    (NaN means and ranges when there is none)."""
    cols = ["image_auroc", "text_auroc"]
    scored = signal.dropna(subset=cols) if signal is not None else pd.DataFrame(columns=cols)
    image, text = scored["image_auroc"].astype(float), scored["text_auroc"].astype(float)
    return {
        "n_signal_labels": len(scored),
        "n_text_wins": int((text > image).sum()),
        "image_auroc_mean": float(image.mean()),
        "text_auroc_mean": float(text.mean()),
        "image_auroc_min": float(image.min()),
        "image_auroc_max": float(image.max()),
    }


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
