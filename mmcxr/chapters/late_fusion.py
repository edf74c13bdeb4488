"""The late-fusion chapter (Chao & Li, paper 001): its cohort, its 12-run grid, its claims.

The notebook ``notebooks/late-fusion-pneumonia.py`` tells the story; this module holds this
paper's recipe only, so that it is unit-tested and the ``smoke``, ``book`` and ``full``
profiles run exactly the same code. What is not particular to the paper lives in the shared
modules: the fusion model (:mod:`mmcxr.models.fusion`), the focal loss
(:mod:`mmcxr.models.losses`), the training loop (:mod:`mmcxr.train`), the shuffling test
(:mod:`mmcxr.evaluate`), the claims engine (:mod:`mmcxr.claims`) and the figures
(:mod:`mmcxr.plots`).

* :data:`PARAMETERS` — what every parameter of the chapter must be;
* :func:`build_cohort` — the paper's selection, a patient split with one shared test set, and
  the 75/25 subsample of the training and validation patients;
* :func:`run_grid` / :func:`run_config` — the 12 runs and what identifies each one, so that
  finished runs are reused (:mod:`mmcxr.runs`);
* :func:`train_runs` — train (or reuse) every run and score it on the test set;
* :data:`CLAIMS` — each finding of the paper as a test on a results table.
"""

from __future__ import annotations

import hashlib
import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from tqdm.auto import tqdm

from mmcxr import data, evaluate, metrics, models, train
from mmcxr.chapters import late_fusion_reference as reference
from mmcxr.params import Param, common, shared, synthetic
from mmcxr.runs import fingerprint_table, run_key
from mmcxr.runs import image_cache_dir as _cache_dir

SLUG = "late-fusion-pneumonia"
PAPER = (
    "Chao & Li, Exploring Multimodal Learning in Classifiers for Healthcare Applications "
    "(shared/papers/001_ad573dd23246b193.txt)"
)

MODELS = ("multimodal", "image", "text")
DATASETS = ("full", "75")
LOSSES = ("bce", "focal")
SHUFFLED = ("none", "image", "text")
METRICS = reference.METRICS
RUN_COLUMNS = ("model", "dataset", "loss")
ORDERS = {"model": MODELS, "dataset": DATASETS, "loss": LOSSES, "shuffled": SHUFFLED}

_MODEL_NAMES = {"multimodal": "Multimodal", "image": "Image", "text": "Text"}
_DATASET_NAMES = {"full": "Full", "75": "75"}
_LOSS_NAMES = {"bce": "BCE", "focal": "Focal"}
#: How values are printed in figure titles and legends.
PLOT_NAMES = {
    **_MODEL_NAMES,
    **{k: f"{v} set" for k, v in _DATASET_NAMES.items()},
    **{k: f"{v} loss" for k, v in _LOSS_NAMES.items()},
}
_TEXT_FIELDS = ("report", "findings", "impression")

#: What every parameter must be (checked when the chapter starts: :mod:`mmcxr.params`).
PARAMETERS: dict[str, Param] = {
    **common(formats=("mimic-cxr-jpg",)),
    **synthetic(image_difficulty=True, report_difficulty=True),
    "reports_root": Param("str", optional=True, doc="folder of the report files/ tree"),
    **shared("split_fractions"),
    "subsample_negative_fraction": Param("float", low=0.01, high=0.99),
    "test_negative_fraction": Param("float", optional=True, low=0.01, high=0.99),
    "image_size": Param("int", low=16, high=1024),
    "image_backbone": Param("str"),
    "image_weights": Param("str", optional=True, doc="a local state dict"),
    "frozen_layers": Param("list", items="str", doc="image stages kept fixed"),
    "bert_path": Param("str", optional=True, doc="a local BERT folder"),
    "text_field": Param("str", choices=_TEXT_FIELDS),
    "max_length": Param("int", low=8, high=512),
    "bert_pooling": Param("str", choices=("cls", "mean")),
    "bert_hidden": Param("int", low=8),
    "bert_layers": Param("int", low=1),
    "bert_heads": Param("int", low=1),
    "vocab_size": Param("int", low=100),
    **shared("mlm_epochs", "mlm_lr"),
    "proj_dim": Param("int", low=1),
    "batch_size": Param("int", low=1),
    "schedule": Param("str", choices=("linear", "linear_epoch", "constant")),
    "focal_alpha_full": Param("float", low=0, high=1),
    "focal_gamma_full": Param("float", low=0),
    "focal_alpha_75": Param("float", low=0, high=1),
    "focal_gamma_75": Param("float", low=0),
    "n_bootstrap": Param("int", low=0),
    **shared("epochs", "lr", "weight_decay", "patience", "claim_tol", "num_workers"),
}


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
    return [
        RunSpec(model, dataset, loss, *(focal[dataset] if loss == "focal" else (None, None)))
        for dataset in DATASETS
        for loss in LOSSES
        for model in MODELS
    ]


#: Parameters that change what a run learns, by the part of the model they concern. Anything
#: else (bootstrap size, output folder, device, plotting) leaves a finished run reusable.
SHARED_KEYS = (
    "seed",
    "epochs",
    "batch_size",
    "lr",
    "schedule",
    "patience",
    "weight_decay",
    "proj_dim",
    "split_fractions",
    "subsample_negative_fraction",
    "test_negative_fraction",
)
IMAGE_KEYS = ("image_size", "image_backbone", "image_weights", "frozen_layers")
BERT_KEYS = ("vocab_size", "bert_hidden", "bert_layers", "bert_heads", "mlm_epochs", "mlm_lr")
TEXT_KEYS = ("bert_path", "text_field", "max_length", "bert_pooling", *BERT_KEYS)


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
# the cohort


@dataclass
class Cohort:
    """The selected images, their split, and how many each selection step kept.

    ``table``: one row per image of the binary cohort with the loader's columns plus
    ``label`` (1 pneumonia, 0 no finding), ``split`` ("train"/"val"/"test", by patient),
    ``in_75`` (the image belongs to the 75/25 training set; test images never do, because
    every run is scored on the same natural-prevalence test set) and ``text`` (the report
    text the text model reads). ``flow``: counts after each selection step.
    """

    table: pd.DataFrame
    flow: pd.DataFrame

    def rows(self, dataset: str, split: str) -> pd.DataFrame:
        """Images of one split of one training set (``dataset`` is ignored for "test")."""
        if dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {DATASETS}, got {dataset!r}")
        if split not in ("train", "val", "test"):
            raise ValueError(f"split must be train, val or test, got {split!r}")
        t = self.table
        keep = t["split"] == split
        if split != "test" and dataset == "75":
            keep &= t["in_75"]
        return t[keep]

    def split_counts(self) -> pd.DataFrame:
        """Images, pneumonia, no finding and pneumonia share per training set and split."""
        rows = []
        for dataset in DATASETS:
            for split in ("train", "val", "test"):
                part = self.rows(dataset, split)
                pos = int(part["label"].sum())
                rows.append(
                    {
                        "training set": _DATASET_NAMES[dataset],
                        "split": split,
                        "images": len(part),
                        "pneumonia": pos,
                        "no finding": len(part) - pos,
                        "pneumonia share": pos / len(part) if len(part) else math.nan,
                    }
                )
        return pd.DataFrame(rows)


def build_cohort(
    images: pd.DataFrame,
    *,
    seed: int = 0,
    split_fractions: Sequence[float] = (0.8, 0.1, 0.1),
    neg_frac: float = 0.75,
    test_neg_frac: float | None = None,
    text_field: str = "report",
) -> Cohort:
    """The paper's cohort from a loader's image table (``mmcxr.data.load_mimic_cxr_jpg``).

    PA, erect, non-portable films; Pneumonia = 1.0 (positive) vs No Finding = 1.0 (negative);
    one image per patient ("duplicated patient records" removed); a patient split stratified
    by label so the small synthetic test set still holds positives. The 75/25 set keeps every
    positive of the training and validation patients and samples their negatives to
    ``neg_frac``. ``test_neg_frac`` (default None: the cohort's own prevalence) subsamples
    the shared test set's negatives the same way, as the paper seems to have tested its 75/25
    models. Images whose report has no ``text_field`` text cannot feed the text model: they
    are removed as a recorded step with a warning, never silently.
    """
    check_columns(
        images, ["subject_id", "study_id", "dicom_id", "path", text_field], "the image table"
    )
    flow = data.CohortFlow(images, "images in the release")
    df = flow.apply("PA, erect, non-portable", data.select_pa_erect_nonportable)
    df = flow.apply(
        "Pneumonia = 1.0 or No Finding = 1.0",
        data.binary_cohort,
        positive="Pneumonia",
        negative="No Finding",
    )
    df = flow.apply("one image per patient", data.one_per_patient, seed)
    text = df[text_field].fillna("").astype(str).str.strip()
    if (text == "").any():
        empty = df[text == ""]
        example = empty["report_path"].iloc[0] if "report_path" in empty else empty["path"].iloc[0]
        warnings.warn(
            f"{len(empty)} of {len(df)} selected images have no {text_field!r} text "
            f"(e.g. {example}); they are removed (see the cohort flow)",
            data.DataWarning,
            stacklevel=2,
        )
        df = flow.record(f"with {text_field} text", df[text != ""])
        text = text[text != ""]
    if df["label"].nunique() < 2:
        raise ValueError(
            f"the selected cohort holds only {'pneumonia' if df['label'].all() else 'no finding'}"
            f" images ({len(df)}); the root is too small or not a MIMIC-CXR-JPG release"
        )
    df = df.assign(text=text.to_numpy())
    df["split"] = data.patient_split(df, split_fractions, seed, stratify="label")
    df["in_75"] = False
    for split in ("train", "val"):
        part = df[df["split"] == split]
        if len(part):
            kept = data.subsample_ratio(part, "label", neg_frac=neg_frac, seed=seed)
            df.loc[kept.index, "in_75"] = True
    if test_neg_frac is not None:
        test = df[df["split"] == "test"]
        kept = data.subsample_ratio(test, "label", neg_frac=test_neg_frac, seed=seed)
        df = flow.record(
            f"test set subsampled to {1 - test_neg_frac:.0%} pneumonia",
            df[(df["split"] != "test") | df.index.isin(kept.index)],
        )
    table = df.reset_index(drop=True)
    # the loader's skipped-files record stays with the loaded table; a DataFrame in attrs
    # would make every later pd.concat of cohort rows fail comparing attrs
    table.attrs = {}
    return Cohort(table=table, flow=flow.table)


def mlm_corpus(images: pd.DataFrame, cohort: Cohort, text_field: str = "report") -> list[str]:
    """Report texts to pretrain the small BERT on: one per study, from every study of the
    release (any view or finding, as a domain corpus would be) except those of patients in
    the validation or test split, so no evaluated report is seen before fine-tuning."""
    held_out = set(cohort.table.loc[cohort.table["split"] != "train", "subject_id"])
    studies = images[~images["subject_id"].isin(held_out)].drop_duplicates("study_id")
    texts = studies[text_field].fillna("").astype(str).str.strip()
    return [t for t in texts if t]


def data_fingerprint(cohort: Cohort, cache) -> str:
    """What the runs were trained and tested on: the cohort table and the cached pixels."""
    cols = ["dicom_id", "subject_id", "study_id", "label", "split", "in_75", "text"]
    table = fingerprint_table(cohort.table, cols)
    return hashlib.sha256(f"{table}:{cache.manifest.get('sha256')}".encode()).hexdigest()


def image_cache_dir(out_dir: Path, cohort: Cohort, size: int) -> Path:
    """A cache folder per cohort and size, so a changed cohort never meets a stale cache."""
    return _cache_dir(out_dir, cohort.table, ["dicom_id", "path"], size)


# --------------------------------------------------------------------------------------------
# datasets, models, runs


@dataclass
class Splits:
    """The datasets of every run: train/val per training set, one shared test set."""

    train: dict[str, object]
    val: dict[str, object]
    test: object


def make_splits(cohort: Cohort, cache, tokens: Mapping[str, object]) -> Splits:
    """``MultimodalDataset`` s over the cached images and tokenised reports of each split
    (``tokens`` aligned with ``cohort.table`` rows); a uni-modal model reads its own keys."""

    def dataset(rows: pd.DataFrame):
        idx = torch.tensor(rows.index.to_numpy(), dtype=torch.long)
        return data.MultimodalDataset(
            rows["label"].to_numpy(dtype="float32"),
            images=cache,
            image_keys=rows["dicom_id"].tolist(),
            text={k: v[idx] for k, v in tokens.items()},
        )

    return Splits(
        train={d: dataset(cohort.rows(d, "train")) for d in DATASETS},
        val={d: dataset(cohort.rows(d, "val")) for d in DATASETS},
        test=dataset(cohort.rows("full", "test")),
    )


def build_model(spec: RunSpec, params: Mapping[str, object], text_dir: Path | None):
    """The paper's classifier for one run, initialised from ``seed`` alone.

    The image branch is a MONAI ResNet (``image_backbone``), loaded from ``image_weights``
    (a local torchvision-format state dict) when given, with ``frozen_layers`` frozen as in
    the paper (:func:`mmcxr.models.prepared_image_encoder`). The text branch is a fresh copy of the BERT in
    ``text_dir``, pooled by ``bert_pooling``: the [CLS] state ("cls", as BioBERT classifiers
    do) or the mean over tokens ("mean": a small BERT pretrained only by masked-language
    modelling was never taught to summarise a report in [CLS], and learns far faster so).
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(params["seed"]))
        image = text = None
        if spec.model in ("image", "multimodal"):
            image = models.prepared_image_encoder(
                str(params["image_backbone"]),
                params["image_weights"],
                list(params["frozen_layers"] or []),
            )
        if spec.model in ("text", "multimodal"):
            if text_dir is None:
                raise ValueError(f"run {spec.name} reads text but no text encoder was given")
            text, _ = models.load_text_model(text_dir)
            text.pooling = str(params["bert_pooling"])
        return models.build_classifier(spec.model, image, text, proj_dim=int(params["proj_dim"]))


def train_run(
    spec: RunSpec, params, splits: Splits, store, data_fp: str, text_dir, *, device="auto"
):
    """Train one run (or load it if finished) and score it on the shared test set.

    A multimodal run is also scored with its test images, then its test reports, shuffled
    across cases (the bimodal sensitivity test). Every prediction is stored with the run, so
    tables and figures are recomputed from disk without the model.
    """

    def work(checkpoint_dir: Path) -> dict[str, object]:
        model = build_model(spec, params, text_dir)
        gamma = spec.gamma if spec.gamma is not None else 2.0
        history = train.fit(
            model,
            splits.train[spec.dataset],
            splits.val[spec.dataset],
            loss=models.make_loss(spec.loss, alpha=spec.alpha, gamma=gamma),
            epochs=int(params["epochs"]),
            batch_size=int(params["batch_size"]),
            lr=float(params["lr"]),
            weight_decay=float(params["weight_decay"]),
            schedule=params["schedule"],
            patience=int(params["patience"]),
            checkpoint_dir=checkpoint_dir,
            seed=int(params["seed"]),
            device=device,
            num_workers=int(params.get("num_workers", 0)),
            progress=False,
        )
        shuffled = ("image", "text") if spec.model == "multimodal" else ()
        tests = evaluate.shuffled_predictions(
            model,
            splits.test,
            lambda m, ds: train.predict(
                m, ds, batch_size=max(64, int(params["batch_size"])), device=device, progress=False
            ),
            modalities=shuffled,
            seed=int(params["seed"]),
        )
        base = tests["none"]
        arrays = {"probs": base.probs, "labels": base.labels, "logits": base.logits}
        scores = {"test": metrics.binary_metrics(base.labels, base.probs)}
        for modality in shuffled:
            arrays[f"probs_{modality}_shuffled"] = tests[modality].probs
            scores[f"test_{modality}_shuffled"] = metrics.binary_metrics(
                tests[modality].labels, tests[modality].probs
            )
        scores.update(
            best_epoch=history.best_epoch,
            epochs_run=len(history.table),
            stopped_early=history.stopped_early,
        )
        return {"metrics": scores, "predictions": arrays, "history": history}

    return store.get_or_run(spec.name, run_config(spec, params), data_fp, work)


def train_runs(
    grid: Sequence[RunSpec], params, splits: Splits, store, data_fp, text_dir, *, device="auto"
):
    """Every run of ``grid`` (finished ones loaded from ``store``), by run name."""
    out = {}
    bar = tqdm(grid, desc="runs", unit="run")
    for spec in bar:
        done = store.is_done(spec.name, run_key(run_config(spec, params), data_fp))
        bar.set_postfix_str(f"{spec.name} ({'reused' if done else 'training'})")
        out[spec.name] = train_run(spec, params, splits, store, data_fp, text_dir, device=device)
    return out


def predictions_long(grid: Sequence[RunSpec], runs: Mapping[str, object]) -> pd.DataFrame:
    """One row per run, shuffle condition and test case: ``model, dataset, loss, shuffled,
    case, label, prob`` (what the bootstrap tables and the figures read)."""
    parts = []
    for spec in grid:
        pred = runs[spec.name].predictions
        for shuffled in SHUFFLED:
            key = "probs" if shuffled == "none" else f"probs_{shuffled}_shuffled"
            if key in pred:
                parts.append(
                    pd.DataFrame(
                        {"model": spec.model, "dataset": spec.dataset, "loss": spec.loss}
                        | {"shuffled": shuffled, "case": range(len(pred[key]))}
                        | {"label": pred["labels"], "prob": pred[key]}
                    )
                )
    return pd.concat(parts, ignore_index=True)


def results_tables(long: pd.DataFrame, *, n_boot: int = 1000, seed: int = 0):
    """Our Figures 2-4 (``results``) and Figure 2 bottom (``sensitivity``) with bootstrap
    95% intervals, in the tidy layout of the paper's tables (:mod:`late_fusion_reference`)."""
    by = [*RUN_COLUMNS, "shuffled"]
    table = evaluate.predictions_ci(long, by=by, n_boot=n_boot, seed=seed).reset_index()
    results = table[table["shuffled"] == "none"].drop(columns="shuffled").reset_index(drop=True)
    sensitivity = table[table["model"] == "multimodal"].reset_index(drop=True)
    return results, sensitivity


def histories(grid: Sequence[RunSpec], runs: Mapping[str, object]) -> pd.DataFrame:
    """Every run's per-epoch history in one table (``model, dataset, loss`` + fit's columns)."""
    parts = [
        runs[s.name].history.assign(model=s.model, dataset=s.dataset, loss=s.loss)
        for s in grid
        if runs[s.name].history is not None
    ]
    return pd.concat(parts, ignore_index=True)


def check_columns(table: pd.DataFrame, columns: Iterable[str], what: str) -> None:
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"{what} lacks columns {missing}; it has {list(table.columns)}")


def fused_model_summary(params: Mapping[str, object], splits: Splits, text_dir: Path | None):
    """The layers, output shapes and parameter counts of this run's fused model, on two test
    cases (:func:`mmcxr.models.model_summary`)."""
    spec = RunSpec("multimodal", "full", "bce")
    batch = torch.utils.data.default_collate([splits.test[i] for i in range(2)])
    return models.model_summary(build_model(spec, params, text_dir), batch, depth=2)
