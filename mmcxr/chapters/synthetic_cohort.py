"""The synthetic-cohort chapter: what the cohort plants, how to see it, and how strong it is.

The notebook ``notebooks/synthetic-cohort.py`` is the reader's guide to the data every other
chapter uses. What it would otherwise grow lives here, tested:

* :func:`tree_listing` — a short, deterministic listing of a release's on-disk tree;
* :func:`planted_structure` — each planted structure's knob in ``synthetic_config.json``
  beside what the generated cohort actually shows (computed from the ground-truth table);
* :func:`label_truth_agreement` / :func:`cooccurrence` — how the report-derived labels relate
  to the pixel truth and to each other;
* :func:`dicom_headers` / :func:`raw_and_display` — DICOM display tags, and a stored image
  next to its display-ready version;
* :func:`pick_examples`, :func:`image_grid`, :func:`boxed_grid` — example studies that
  cover the labels, and figures over :mod:`mmcxr.plots` with multi-line titles and legends;
* :func:`signal_check` — logistic regressions on 32x32 pixels and on a bag of words of the
  report, per common finding: how learnable each modality is (the papers find the text far
  stronger than the image).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from tqdm.auto import tqdm

from mmcxr.data.splits import patient_split
from mmcxr.synth.labels import CHEXPERT_LABELS, FINDING_LABELS

SLUG = "synthetic-cohort"
CONFIG_FILE = "synthetic_config.json"

__all__ = [
    "SLUG",
    "boxed_grid",
    "cache_dir_for",
    "common_labels",
    "cooccurrence",
    "dicom_headers",
    "image_grid",
    "is_synthetic",
    "label_truth_agreement",
    "load_synth_config",
    "parse_box",
    "pick_examples",
    "planted_structure",
    "plot_cooccurrence",
    "plot_signal_check",
    "raw_and_display",
    "report_card",
    "signal_check",
    "study_labels",
    "tree_listing",
]


# --------------------------------------------------------------------------------------------
# the root


def is_synthetic(root: str | os.PathLike) -> bool:
    """Whether ``root`` was written by :func:`mmcxr.synth.generate` (the provenance rule)."""
    from mmcxr.provenance import describe_source

    return describe_source(root, None)["kind"] == "synthetic"


def load_synth_config(root: str | os.PathLike) -> dict[str, Any]:
    """``synthetic_config.json`` of a synthetic root: the planted structure and the recipe."""
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


def cooccurrence(table: pd.DataFrame, labels: Sequence[str]) -> pd.DataFrame:
    """``P(column positive | row positive)``: each cell is a share of the row label's positives."""
    pos = (table[list(labels)] == 1.0).astype(float)
    counts = pos.T @ pos
    n = np.diag(counts.to_numpy())
    out = counts.div(np.where(n > 0, n, np.nan), axis=0)
    out.index.name, out.columns.name = "given", "also positive"
    return out


def plot_cooccurrence(matrix: pd.DataFrame, *, title: str | None = None) -> Figure:
    """Heat map of :func:`cooccurrence` with the shares printed in the cells."""
    from mmcxr.plots import style

    k = len(matrix)
    with style():
        fig = Figure(figsize=(0.5 * k + 3.2, 0.45 * k + 1.8), layout="constrained")
        ax = fig.add_subplot()
        im = ax.imshow(matrix.to_numpy(dtype=float), cmap="Blues", vmin=0, vmax=1)
        ax.grid(False)
        ax.set_xticks(range(k), matrix.columns, rotation=60, ha="right")
        ax.set_yticks(range(k), matrix.index)
        ax.set(xlabel="also positive", ylabel="given positive")
        for i in range(k):
            for j in range(k):
                v = matrix.iat[i, j]
                if np.isfinite(v) and i != j:
                    ax.text(
                        j,
                        i,
                        f"{v:.2f}"[1:] if v < 1 else "1",
                        ha="center",
                        va="center",
                        fontsize=7,
                        color="white" if v > 0.5 else "black",
                    )
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02, label="share of the row's positives")
        if title:
            ax.set_title(title)
    return fig


def planted_structure(gt: pd.DataFrame, config: dict[str, Any]) -> pd.DataFrame:
    """Each planted structure: its knob in ``synthetic_config.json`` and what the cohort shows.

    ``gt`` is the ground-truth table (one row per image); ``config`` the ``config`` object of
    ``synthetic_config.json``. ``planted`` is the knob's value, ``measured`` the same quantity
    counted in the cohort, over ``n`` units (studies or images, see ``over``). A knob switched
    off (None, False, 0) is reported as such and measured all the same.
    """
    need = ["study_id", "frontal", "portable", "orientation", "spurious_marker", "noise_label"]
    missing = [c for c in need if c not in gt.columns]
    if missing:
        raise KeyError(f"planted_structure: ground-truth table lacks {missing}")
    studies = gt.sort_values("frontal", ascending=False).drop_duplicates("study_id")
    frontal = gt[gt["frontal"].astype(bool)]
    rows: list[dict[str, Any]] = []

    def add(structure: str, knob: str, planted: Any, measured: float, n: int, over: str) -> None:
        rows.append(
            {
                "structure": structure,
                "knob": knob,
                "planted": planted,
                "measured": measured,
                "n": int(n),
                "over": over,
            }
        )

    add(
        "portable AP films",
        "portable_rate",
        config.get("portable_rate"),
        studies["portable"].astype(bool).mean(),
        len(studies),
        "studies",
    )
    spur = config.get("spurious_label")
    ap = frontal[frontal["portable"].astype(bool)]
    if spur:
        truth = ap[f"truth_{spur}"].astype(bool)
        marker = ap["spurious_marker"].astype(bool)
        add(
            f"spurious marker | {spur} drawn (AP)",
            "spurious_p_positive",
            config.get("spurious_p_positive"),
            marker[truth].mean(),
            truth.sum(),
            "AP images",
        )
        add(
            f"spurious marker | no {spur} (AP)",
            "spurious_p_negative",
            config.get("spurious_p_negative"),
            marker[~truth].mean(),
            (~truth).sum(),
            "AP images",
        )
    else:
        add(
            "spurious marker (switched off)",
            "spurious_label",
            None,
            frontal["spurious_marker"].astype(bool).mean(),
            len(frontal),
            "frontal images",
        )
    ptx = studies["stratum_pneumothorax_chest_tube"].dropna()
    add(
        "chest tube | pneumothorax (hidden stratum)",
        "chest_tube_rate_pneumothorax",
        config.get("chest_tube_rate_pneumothorax") if config.get("plant_strata") else False,
        ptx.mean() if len(ptx) else np.nan,
        len(ptx),
        "pneumothorax studies",
    )
    les = studies["stratum_lesion"].dropna()
    add(
        "subtle lung lesions (hidden stratum)",
        "subtle_rate",
        config.get("subtle_rate") if config.get("plant_strata") else False,
        (les == "subtle").mean() if len(les) else np.nan,
        len(les),
        "lesion studies",
    )
    add(
        "label noise (report disagrees with pixels)",
        "label_noise_rate",
        config.get("label_noise_rate"),
        studies["noise_label"].notna().mean(),
        len(studies),
        "studies",
    )
    return pd.DataFrame(rows)


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


# --------------------------------------------------------------------------------------------
# examples and figures


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


def parse_box(text: Any) -> tuple[int, int, int, int] | None:
    """A ground-truth box ``"x1 y1 x2 y2"`` as integers; None when blank."""
    if text is None or (isinstance(text, float) and np.isnan(text)) or not str(text).strip():
        return None
    parts = str(text).split()
    if len(parts) != 4:
        raise ValueError(f"a box is 'x1 y1 x2 y2', got {text!r}")
    x1, y1, x2, y2 = (int(float(v)) for v in parts)
    return x1, y1, x2, y2


def image_grid(
    images: Sequence[np.ndarray],
    titles: Sequence[str],
    *,
    ncols: int = 3,
    panel_size: float = 3.0,
    wrap: int = 44,
) -> Figure:
    """:func:`mmcxr.plots.plot_image_grid` with titles whose line breaks are kept.

    ``plot_image_grid`` re-wraps each caption as one paragraph; here each line of a title is
    wrapped on its own, so a title can be "view | labels" over the report's first words.
    """
    import textwrap

    from mmcxr.plots import plot_image_grid

    if len(titles) != len(images):
        raise ValueError(f"{len(images)} images but {len(titles)} titles")
    fig = plot_image_grid(images, None, ncols=ncols, panel_size=panel_size)
    for ax, title in zip(fig.axes, titles, strict=False):
        lines = [textwrap.fill(line, wrap) for line in str(title).splitlines()]
        ax.set_title("\n".join(lines), fontsize=8)
    return fig


def boxed_grid(
    panels: Sequence[tuple[str, np.ndarray, dict[str, Sequence[float]]]],
    *,
    ncols: int = 3,
    panel_size: float = 3.0,
    legend: bool = True,
) -> Figure:
    """Images with boxes (:func:`mmcxr.plots.plot_boxes`), named in a legend under each panel.

    ``plot_boxes`` writes each name at its box, which is unreadable when boxes overlap (the
    ImaGenome regions do); here the boxes go in unnamed and a legend in the same colours
    names them. Each panel is ``(title, image, {name: (x1, y1, x2, y2)})``.
    """
    from matplotlib.patches import Patch

    from mmcxr.plots import PALETTE, plot_boxes, style

    if not panels:
        raise ValueError("no panels to draw")
    ncols = max(1, min(ncols, len(panels)))
    nrows = -(-len(panels) // ncols)
    rows = max((len(b) for _, _, b in panels), default=0) if legend else 0
    extra = 0.4 + 0.17 * rows  # room for the title and a one-column legend
    with style():
        fig = Figure(
            figsize=(panel_size * ncols, (panel_size + extra) * nrows), layout="constrained"
        )
        axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
        for ax in axes[len(panels) :]:
            ax.set_axis_off()
        for ax, (title, image, boxes) in zip(axes, panels, strict=False):
            plot_boxes(image, list(boxes.values()), ax=ax)
            ax.set_title(title, fontsize=9)
            if legend and boxes:
                handles = [
                    Patch(fill=False, edgecolor=PALETTE[i % len(PALETTE)], lw=1.5, label=name)
                    for i, name in enumerate(boxes)
                ]
                ax.legend(
                    handles=handles,
                    loc="upper center",
                    bbox_to_anchor=(0.5, 0.0),
                    fontsize=7,
                    handlelength=1.2,
                    columnspacing=0.8,
                )
    return fig


# --------------------------------------------------------------------------------------------
# DICOM


def dicom_headers(paths: Sequence[str | os.PathLike], *, progress: bool = True) -> pd.DataFrame:
    """The display tags of each DICOM (no pixels read): photometric, window, VOI LUT, bits."""
    import pydicom

    rows = []
    for p in tqdm(list(paths), desc="DICOM display tags", unit="img", disable=not progress):
        try:
            ds = pydicom.dcmread(p, stop_before_pixels=True)
        except Exception as exc:  # name the file: pydicom's own message does not
            raise ValueError(f"{p}: cannot read the DICOM header ({exc})") from None
        rows.append(
            {
                "path": str(p),
                "photometric": str(ds.get("PhotometricInterpretation", "")),
                "bits_stored": int(ds.get("BitsStored", 0) or 0),
                "window": ds.get("WindowCenter") is not None,
                "voi_lut": bool(ds.get("VOILUTSequence")),
                "rescale": ds.get("RescaleSlope") is not None,
            }
        )
    return pd.DataFrame(rows)


def raw_and_display(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """A DICOM's stored values (min-max scaled for viewing), its display image and its tags.

    The display image is :func:`mmcxr.data.read_image` (modality LUT, VOI LUT or window,
    MONOCHROME1 inverted); the raw one is ``pixel_array`` as stored, so a MONOCHROME1 film
    shows bone dark and air bright.
    """
    import pydicom

    from mmcxr.data.images import read_image

    ds = pydicom.dcmread(path)
    raw = ds.pixel_array.astype(np.float32)
    lo, hi = float(raw.min()), float(raw.max())
    raw = (raw - lo) / (hi - lo) if hi > lo else np.zeros_like(raw)
    tags = {
        "PhotometricInterpretation": str(ds.get("PhotometricInterpretation", "")),
        "BitsStored": int(ds.get("BitsStored", 0) or 0),
        "stored range": (int(lo), int(hi)),
        "WindowCenter/Width": (ds.get("WindowCenter"), ds.get("WindowWidth")),
        "VOI LUT": bool(ds.get("VOILUTSequence")),
    }
    return raw, read_image(path), tags


# --------------------------------------------------------------------------------------------
# reports


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


def plot_signal_check(result: pd.DataFrame, *, title: str | None = None) -> Figure:
    """Image and text AUROC per label as paired horizontal bars, chance marked."""
    from mmcxr.plots import PALETTE, style

    r = result.sort_values("image_auroc")
    y = np.arange(len(r))
    with style():
        fig = Figure(figsize=(6.0, 0.38 * len(r) + 1.7), layout="constrained")
        ax = fig.add_subplot()
        ax.barh(y + 0.2, r["text_auroc"], height=0.4, color=PALETTE[1], label="report words")
        bars = ax.barh(
            y - 0.2, r["image_auroc"], height=0.4, color=PALETTE[0], label="32x32 pixels"
        )
        ax.bar_label(bars, fmt="%.2f", fontsize=7, padding=2)
        ax.axvline(0.5, color="grey", ls="--", lw=1, label="chance")
        ax.set_yticks(y, r.index)
        low = np.nanmin(r[["image_auroc", "text_auroc"]].to_numpy(dtype=float), initial=0.4)
        ax.set(
            xlim=(max(0.0, min(0.4, low - 0.05)), 1.04), xlabel="test AUROC (logistic regression)"
        )
        ax.grid(axis="y", visible=False)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.11), ncols=3, fontsize=8)
        if title:
            ax.set_title(title, loc="left")
    return fig
