"""The late-fusion chapter (Chao & Li, paper 001): cohort recipe, the 12-run grid, claims.

The notebook ``notebooks/late-fusion-pneumonia.py`` tells the story; this module holds what
it would otherwise grow, so that it is unit-tested and the ``smoke``, ``book`` and ``full``
profiles run exactly the same code:

* :func:`build_cohort` — the paper's selection (PA, erect, non-portable; Pneumonia = 1.0 vs
  No Finding = 1.0; one study per patient), a patient-level split whose test set is shared by
  every run, and the 75/25 subsample of the training and validation patients;
* :func:`run_grid` / :func:`run_config` — the 12 runs (3 models x 2 losses x 2 training sets)
  and the parameters that identify each one, so finished runs are reused (:mod:`mmcxr.runs`);
* :func:`train_runs` — train (or reuse) every run from the prepared image cache;
* :data:`CLAIMS` / :func:`evaluate_claims` — each finding of the paper as a test on a results
  table, run on the paper's own numbers and on ours.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from mmcxr.chapters import late_fusion_reference as reference

SLUG = "late-fusion-pneumonia"
PAPER = (
    "Chao & Li, Exploring Multimodal Learning in Classifiers for Healthcare Applications "
    "(shared/papers/001_ad573dd23246b193.txt)"
)

MODELS = ("multimodal", "image", "text")
DATASETS = ("full", "75")
LOSSES = ("bce", "focal")
METRICS = reference.METRICS
RUN_COLUMNS = ("model", "dataset", "loss")

_MODEL_NAMES = {"multimodal": "Multimodal", "image": "Image", "text": "Text"}
_DATASET_NAMES = {"full": "Full", "75": "75"}
_LOSS_NAMES = {"bce": "BCE", "focal": "Focal"}


# --------------------------------------------------------------------------------------------
# the run grid


@dataclass(frozen=True)
class RunSpec:
    """One of the paper's 12 models: which inputs, which training set, which loss."""

    model: str
    dataset: str
    loss: str
    alpha: float | None = None  # focal alpha (weight of the positive class); None for BCE
    gamma: float | None = None  # focal gamma; None for BCE

    def __post_init__(self) -> None:
        for value, allowed, what in (
            (self.model, MODELS, "model"),
            (self.dataset, DATASETS, "dataset"),
            (self.loss, LOSSES, "loss"),
        ):
            if value not in allowed:
                raise ValueError(f"RunSpec.{what} must be one of {allowed}, got {value!r}")
        if self.loss == "bce" and (self.alpha is not None or self.gamma is not None):
            raise ValueError("a BCE run takes no focal alpha/gamma")
        if self.loss == "focal" and (self.alpha is None or self.gamma is None):
            raise ValueError("a focal run needs alpha and gamma")

    @property
    def name(self) -> str:
        """File-system name, e.g. ``multimodal-full-bce``."""
        return f"{self.model}-{self.dataset}-{self.loss}"

    @property
    def label(self) -> str:
        """The paper's row label, e.g. ``Multimodal Full BCE loss``."""
        return run_label(self.model, self.dataset, self.loss)


def run_label(model: str, dataset: str, loss: str, shuffled: str = "none") -> str:
    """The paper's naming of a run (and of a shuffled-modality test of it)."""
    label = f"{_MODEL_NAMES[model]} {_DATASET_NAMES[dataset]} {_LOSS_NAMES[loss]} loss"
    if shuffled != "none":
        label += f" {shuffled.capitalize()} Shuffle"
    return label


def run_grid(focal: Mapping[str, tuple[float, float]]) -> list[RunSpec]:
    """All 12 runs in the paper's order; ``focal`` maps training set -> (alpha, gamma)."""
    missing = [d for d in DATASETS if d not in focal]
    if missing:
        raise ValueError(f"focal (alpha, gamma) missing for training set(s) {missing}")
    runs = []
    for dataset in DATASETS:
        for loss in LOSSES:
            alpha, gamma = focal[dataset] if loss == "focal" else (None, None)
            for model in MODELS:
                runs.append(RunSpec(model, dataset, loss, alpha, gamma))
    return runs


#: Parameters that change what a run learns, by the part of the model they concern. Anything
#: else (bootstrap size, output folder, device, plotting) leaves a finished run reusable.
SHARED_KEYS = (
    "seed", "epochs", "batch_size", "lr", "patience", "weight_decay", "proj_dim",
    "split_fractions", "subsample_negative_fraction", "num_workers",
)
IMAGE_KEYS = ("image_size", "image_backbone", "image_width", "frozen_layers", "augment")
TEXT_KEYS = (
    "bert_path", "text_field", "max_length", "bert_hidden", "bert_layers", "bert_heads",
    "vocab_size", "mlm_epochs", "mlm_lr",
)


def run_config(spec: RunSpec, params: Mapping[str, object]) -> dict[str, object]:
    """What identifies a run: its spec plus the parameters its model actually depends on.

    An image-only run does not depend on the text encoder's settings and vice versa, so
    changing the BERT size retrains only the runs that read text.
    """
    keys = list(SHARED_KEYS)
    if spec.model in ("image", "multimodal"):
        keys += IMAGE_KEYS
    if spec.model in ("text", "multimodal"):
        keys += TEXT_KEYS
    missing = [k for k in keys if k not in params]
    if missing:
        raise KeyError(f"run_config: parameters {missing} are not set (add them to PARAMS)")
    config: dict[str, object] = {k: params[k] for k in keys}
    config.update(model=spec.model, dataset=spec.dataset, loss=spec.loss)
    if spec.loss == "focal":
        config.update(focal_alpha=spec.alpha, focal_gamma=spec.gamma)
    return config


# --------------------------------------------------------------------------------------------
# results tables


def _check_columns(table: pd.DataFrame, columns: Iterable[str], what: str) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"{what} lacks columns {missing}; it has {list(table.columns)}")


def with_labels(table: pd.DataFrame) -> pd.DataFrame:
    """Index a tidy results (or sensitivity) table by the paper's run labels."""
    _check_columns(table, RUN_COLUMNS, "results table")
    shuffled = table["shuffled"] if "shuffled" in table.columns else ["none"] * len(table)
    labels = [
        run_label(m, d, lo, s)
        for m, d, lo, s in zip(table["model"], table["dataset"], table["loss"], shuffled, strict=True)
    ]
    return table.set_index(pd.Index(labels, name="run"))


def paper_tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    """The paper's Figures 2-4 (results) and Figure 2 bottom (sensitivity), tidy."""
    return reference.results_table(), reference.sensitivity_table()


# --------------------------------------------------------------------------------------------
# claims


@dataclass(frozen=True)
class Verdict:
    """Whether a claim holds on one results table, and the numbers that decide it.

    ``holds`` is None when the table lacks a run the claim needs (nothing is decided).
    """

    holds: bool | None
    evidence: str


class _Missing(LookupError):
    pass


class _Table:
    """Lookup of one metric of one run, with its bootstrap interval when the table has one."""

    def __init__(self, results: pd.DataFrame, sensitivity: pd.DataFrame | None) -> None:
        _check_columns(results, RUN_COLUMNS, "results table")
        self.results = results
        self.sensitivity = sensitivity

    def _row(self, table: pd.DataFrame | None, keys: dict[str, str]) -> pd.Series:
        if table is None:
            raise _Missing("no sensitivity table")
        mask = pd.Series(True, index=table.index)
        for col, value in keys.items():
            mask &= table[col] == value
        rows = table[mask]
        if len(rows) == 0:
            raise _Missing(f"no run {run_label(**keys)}")
        if len(rows) > 1:
            raise ValueError(f"the table holds {len(rows)} rows for {run_label(**keys)}")
        return rows.iloc[0]

    def value(self, metric: str, model: str, dataset: str, loss: str, shuffled: str = "none"):
        keys = {"model": model, "dataset": dataset, "loss": loss}
        if shuffled == "none":
            row = self._row(self.results, keys)
        else:
            row = self._row(self.sensitivity, keys | {"shuffled": shuffled})
        x = float(row[metric])
        if math.isnan(x):
            raise _Missing(f"{metric} of {run_label(model, dataset, loss, shuffled)} is undefined")
        lo, hi = row.get(f"{metric}_lo"), row.get(f"{metric}_hi")
        return _Number(x, None if lo is None else float(lo), None if hi is None else float(hi))

    def sensitivity_runs(self) -> list[tuple[str, str, str]]:
        if self.sensitivity is None or len(self.sensitivity) == 0:
            raise _Missing("no sensitivity table")
        s = self.sensitivity
        return sorted({(m, d, lo) for m, d, lo in zip(s["model"], s["dataset"], s["loss"], strict=True)})


@dataclass(frozen=True)
class _Number:
    x: float
    lo: float | None = None
    hi: float | None = None

    def __str__(self) -> str:
        if self.lo is None or self.hi is None or math.isnan(self.lo) or math.isnan(self.hi):
            return f"{self.x:.4g}"  # a reported number: as many digits as papers print
        return f"{self.x:.3f} [{self.lo:.3f}, {self.hi:.3f}]"


def _retained(shuffled: float, intact: float) -> float:
    """Share of the above-chance AUROC that survives shuffling one modality (1 = none lost)."""
    if intact <= 0.5:
        return math.nan
    return (shuffled - 0.5) / (intact - 0.5)


def _text_beats_image(t: _Table, tol: float) -> Verdict:
    parts, ok = [], True
    for dataset in DATASETS:
        for loss in LOSSES:
            txt = t.value("auroc", "text", dataset, loss)
            img = t.value("auroc", "image", dataset, loss)
            ok &= txt.x > img.x
            parts.append(f"{_DATASET_NAMES[dataset]} {_LOSS_NAMES[loss]}: text {txt} vs image {img}")
    return Verdict(ok, "AUROC " + "; ".join(parts))


def _text_not_worse_than_multimodal(t: _Table, tol: float) -> Verdict:
    parts, ok = [], True
    for metric in ("accuracy", "precision", "f1", "auroc"):
        txt = t.value(metric, "text", "full", "bce")
        mm = t.value(metric, "multimodal", "full", "bce")
        ok &= txt.x >= mm.x - tol
        parts.append(f"{metric} text {txt} vs multimodal {mm}")
    return Verdict(ok, "Full BCE: " + "; ".join(parts))


def _shuffle_verdict(t: _Table, modality: str, test: Callable[[float], bool]) -> Verdict:
    parts, ok = [], True
    for model, dataset, loss in t.sensitivity_runs():
        intact = t.value("auroc", model, dataset, loss)
        shuffled = t.value("auroc", model, dataset, loss, shuffled=modality)
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


def _text_shuffle_collapses(t: _Table, tol: float) -> Verdict:
    return _shuffle_verdict(t, "text", lambda r: r <= COLLAPSED)


def _image_shuffle_spares(t: _Table, tol: float) -> Verdict:
    return _shuffle_verdict(t, "image", lambda r: r >= SPARED)


def _images_used(t: _Table, tol: float) -> Verdict:
    parts, ok = [], True
    for model, dataset, loss in t.sensitivity_runs():
        intact = t.value("auroc", model, dataset, loss)
        shuffled = t.value("auroc", model, dataset, loss, shuffled="image")
        ok &= intact.x - shuffled.x > tol
        parts.append(f"{run_label(model, dataset, loss)}: AUROC {intact} -> {shuffled}")
    return Verdict(ok, f"(needs a drop > {tol:g}) " + "; ".join(parts))


def _focal_no_clear_gain_full(t: _Table, tol: float) -> Verdict:
    parts, ok = [], True
    for model in MODELS:
        bce = t.value("auroc", model, "full", "bce")
        foc = t.value("auroc", model, "full", "focal")
        ok &= foc.x - bce.x <= tol
        parts.append(f"{_MODEL_NAMES[model]} BCE {bce} vs focal {foc}")
    return Verdict(ok, f"Full set AUROC (gain <= {tol:g} counts as none): " + "; ".join(parts))


def _gap(t: _Table, model: str, dataset: str, loss: str) -> float:
    return abs(t.value("precision", model, dataset, loss).x - t.value("recall", model, dataset, loss).x)


def _focal_balances_75(t: _Table, tol: float) -> Verdict:
    parts, ok = [], True
    for model in MODELS:
        bce, foc = _gap(t, model, "75", "bce"), _gap(t, model, "75", "focal")
        ok &= foc < bce
        parts.append(f"{_MODEL_NAMES[model]} BCE {bce:.3f} vs focal {foc:.3f}")
    return Verdict(ok, "75 set |precision - recall|: " + "; ".join(parts))


def _subsample_focal_best_balance(t: _Table, tol: float) -> Verdict:
    gaps = {(d, lo): _gap(t, "multimodal", d, lo) for d in DATASETS for lo in LOSSES}
    best = min(gaps, key=gaps.get)
    listed = "; ".join(f"{_DATASET_NAMES[d]} {_LOSS_NAMES[lo]} {g:.3f}" for (d, lo), g in gaps.items())
    return Verdict(best == ("75", "focal"), f"Multimodal |precision - recall|: {listed}")


def _multimodal_best_auroc_75(t: _Table, tol: float) -> Verdict:
    parts, ok = [], True
    for loss in LOSSES:
        mm = t.value("auroc", "multimodal", "75", loss)
        best = max(("image", "text"), key=lambda m: t.value("auroc", m, "75", loss).x)
        uni = t.value("auroc", best, "75", loss)
        ok &= mm.x >= uni.x - tol
        parts.append(f"{_LOSS_NAMES[loss]}: multimodal {mm} vs {best} {uni}")
    return Verdict(ok, f"75 set AUROC (ties within {tol:g} count): " + "; ".join(parts))


@dataclass(frozen=True)
class ClaimSpec:
    """One finding of the paper and the test that decides it on a results table."""

    id: str
    claim: str
    test: Callable[[_Table, float], Verdict]


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


def check_claim(
    claim: ClaimSpec,
    results: pd.DataFrame,
    sensitivity: pd.DataFrame | None = None,
    tol: float = 0.01,
) -> Verdict:
    """Run one claim's test; a run the claim needs but the tables lack gives ``holds=None``."""
    try:
        return claim.test(_Table(results, sensitivity), tol)
    except _Missing as e:
        return Verdict(None, f"not evaluated: {e}")


def evaluate_claims(
    results: pd.DataFrame,
    sensitivity: pd.DataFrame | None = None,
    *,
    tol: float = 0.01,
    claims: Sequence[ClaimSpec] = CLAIMS,
) -> pd.DataFrame:
    """Every claim decided on our tables and, with the same test, on the paper's numbers.

    ``results``: one row per run, columns ``model, dataset, loss`` and the metrics (optionally
    ``<metric>_lo``/``<metric>_hi``); ``sensitivity``: the same plus ``shuffled`` in
    {"none", "image", "text"}. ``tol`` is the margin within which two metrics count as equal.
    Returns columns ``id, claim, paper_evidence, paper_holds, ours, holds``.
    """
    paper_results, paper_sensitivity = paper_tables()
    rows = []
    for c in claims:
        paper = check_claim(c, paper_results, paper_sensitivity, tol)
        ours = check_claim(c, results, sensitivity, tol)
        rows.append({
            "id": c.id, "claim": c.claim, "paper_evidence": paper.evidence,
            "paper_holds": paper.holds, "ours": ours.evidence, "holds": ours.holds,
        })
    return pd.DataFrame(rows)
