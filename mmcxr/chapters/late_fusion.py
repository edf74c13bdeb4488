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

import hashlib
import json
import math
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure
from tqdm.auto import tqdm

from mmcxr import book, data, evaluate, metrics, models, plots, train
from mmcxr.atomic import write_text
from mmcxr.chapter_page import infer_profile
from mmcxr.chapters import late_fusion_reference as reference
from mmcxr.provenance import describe_source
from mmcxr.runs import canonical_json, fingerprint_table, run_key

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
TEXT_KEYS = (
    "bert_path",
    "text_field",
    "max_length",
    "bert_pooling",
    "bert_hidden",
    "bert_layers",
    "bert_heads",
    "vocab_size",
    "mlm_epochs",
    "mlm_lr",
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
    _check_columns(
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


def cohort_vs_paper(cohort: Cohort) -> pd.DataFrame:
    """Our cohort's sizes beside the paper's (section 2.1.1).

    The paper subsampled its whole cohort to 75/25 before splitting; here only the training
    and validation patients are subsampled, so its "75 set" row is compared with ours
    without the test images.
    """
    t = cohort.table
    sub = t[t["in_75"]]
    paper = reference.COHORT
    share = paper["pneumonia"] / (paper["pneumonia"] + paper["no_finding"])
    rows = [
        ("pneumonia (Pneumonia = 1.0)", f"{int(t['label'].sum()):,}", f"{paper['pneumonia']:,}"),
        (
            "no finding (No Finding = 1.0)",
            f"{int((t['label'] == 0).sum()):,}",
            f"{paper['no_finding']:,}",
        ),
        ("pneumonia share", f"{t['label'].mean():.1%}", f"{share:.1%}"),
        (
            "75 set: pneumonia (ours: train + val)",
            f"{int(sub['label'].sum()):,}",
            f"{paper['pneumonia']:,}",
        ),
        (
            "75 set: no finding (ours: train + val)",
            f"{int((sub['label'] == 0).sum()):,}",
            f"{paper['subsampled_negative']:,}",
        ),
    ]
    return pd.DataFrame(rows, columns=["count", "ours", "paper"]).set_index("count")


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
    digest = fingerprint_table(cohort.table, ["dicom_id", "path"])[:12]
    return Path(out_dir) / "image-cache" / f"px{size}-{digest}"


# --------------------------------------------------------------------------------------------
# the text encoder


#: Reports per masked-language-model batch (fixed, so the encoder does not depend on the
#: classifiers' batch size).
MLM_BATCH_SIZE = 32


def text_encoder_dir(
    corpus: Sequence[str],
    params: Mapping[str, object],
    out_dir: Path,
    *,
    device: str = "auto",
    progress: bool = True,
) -> tuple[Path, list[float]]:
    """The folder of the BERT every text-reading run starts from, and its MLM loss curve.

    ``bert_path`` given: that local folder (BioBERT in the paper), loss curve empty.
    Otherwise a WordPiece vocabulary and a small BERT are trained on ``corpus`` with masked
    language modelling and saved under ``out_dir``, keyed on the text settings and the
    corpus, so a re-executed chapter reuses them.
    """
    if params["bert_path"] is not None:
        path = Path(str(params["bert_path"])).expanduser()
        models.load_text_model(path)  # fails here, naming the folder, if it is not a model
        return path, []
    settings = {
        k: params[k] for k in TEXT_KEYS if k not in ("bert_path", "text_field", "bert_pooling")
    }
    settings["seed"] = params["seed"]

    corpus_digest = hashlib.sha256(canonical_json(list(corpus)).encode()).hexdigest()
    d = Path(out_dir) / "text-encoder" / run_key(settings, corpus_digest)[:16]
    losses_file = d / "mlm_losses.json"
    if (d / "config.json").is_file() and losses_file.is_file():
        return d, json.loads(losses_file.read_text())
    tokenizer = models.train_wordpiece(corpus, vocab_size=int(params["vocab_size"]))
    encoder = models.bert_from_scratch(
        tokenizer,
        seed=int(params["seed"]),
        hidden_size=int(params["bert_hidden"]),
        num_layers=int(params["bert_layers"]),
        num_heads=int(params["bert_heads"]),
        max_position=max(int(params["max_length"]), 32),
    )
    encoder, losses = models.train_mlm(
        encoder,
        tokenizer,
        corpus,
        epochs=int(params["mlm_epochs"]),
        batch_size=MLM_BATCH_SIZE,
        lr=float(params["mlm_lr"]),
        max_length=int(params["max_length"]),
        seed=int(params["seed"]),
        device=device,
        progress=progress,
    )
    models.save_text_model(d, encoder, tokenizer)
    write_text(losses_file, json.dumps(losses))  # last: its presence marks the folder complete
    return d, losses


# --------------------------------------------------------------------------------------------
# datasets, models, runs


@dataclass
class Splits:
    """The datasets of every run: train/val per training set, one shared test set."""

    train: dict[str, object]
    val: dict[str, object]
    test: object


def make_splits(cohort: Cohort, cache, tokens: Mapping[str, object]) -> Splits:
    """``MultimodalDataset`` s over the cached images and tokenised reports of each split.

    ``tokens`` are aligned with ``cohort.table`` rows (``mmcxr.models.tokenize``). Every
    dataset carries both modalities; a uni-modal model reads only its own keys.
    """

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
    (a local torchvision-format state dict) when given; ``frozen_layers`` are then frozen as
    in the paper. Freezing randomly initialised layers would fix random features, so that
    combination warns. The text branch is a fresh copy of the BERT in ``text_dir``, pooled
    by ``bert_pooling``: BERT's [CLS] state ("cls", what BioBERT classifiers use) or the mean
    over tokens ("mean"; a small BERT pretrained only by masked-language modelling has never
    been taught to summarise a report in its [CLS] state, and learns far faster this way).
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(params["seed"]))
        image = text = None
        if spec.model in ("image", "multimodal"):
            image = models.image_encoder(str(params["image_backbone"]))
            if params["image_weights"] is not None:
                models.load_pretrained(
                    image,
                    str(params["image_weights"]),
                    key_map=lambda k: None if k.startswith("fc.") else k,
                )
            frozen = list(params["frozen_layers"] or [])
            if frozen:
                if params["image_weights"] is None:
                    warnings.warn(
                        f"freezing {frozen} of a randomly initialised {params['image_backbone']}"
                        ": those layers will keep random weights (set image_weights)",
                        UserWarning,
                        stacklevel=2,
                    )
                models.freeze(image, frozen)
        if spec.model in ("text", "multimodal"):
            if text_dir is None:
                raise ValueError(f"run {spec.name} reads text but no text encoder was given")
            text, _ = models.load_text_model(text_dir)
            text.pooling = str(params["bert_pooling"])
        return models.build_classifier(spec.model, image, text, proj_dim=int(params["proj_dim"]))


SHUFFLED = ("none", "image", "text")


def train_run(
    spec: RunSpec,
    params: Mapping[str, object],
    splits: Splits,
    store,
    data_fp: str,
    text_dir: Path | None,
    *,
    device: str = "auto",
    progress: bool = False,
):
    """Train one run (or load it if finished) and score it on the shared test set.

    A multimodal run also gets the bimodal sensitivity test (``mmcxr.evaluate``): the test
    set scored again with its images, then its reports, shuffled. Every prediction is stored
    with the run, so tables and figures are recomputed from disk without the model.
    """

    def work(checkpoint_dir: Path) -> dict[str, object]:
        model = build_model(spec, params, text_dir)
        loss = models.make_loss(
            spec.loss, alpha=spec.alpha, gamma=spec.gamma if spec.gamma is not None else 2.0
        )
        history = train.fit(
            model,
            splits.train[spec.dataset],
            splits.val[spec.dataset],
            loss=loss,
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
            progress=progress,
        )
        test = splits.test
        probs: dict[str, object] = {}

        def predict_fn(m, ds):
            p = train.predict(
                m, ds, batch_size=max(64, int(params["batch_size"])), device=device, progress=False
            )
            if ds is test:
                probs["none"] = p
            elif ds.image_keys != test.image_keys:
                probs["image"] = p
            else:
                probs["text"] = p
            return p

        if spec.model == "multimodal":
            evaluate.bimodal_sensitivity(model, test, predict_fn, seed=int(params["seed"]))
        else:
            predict_fn(model, test)
        base = probs["none"]
        arrays = {"probs": base.probs, "labels": base.labels, "logits": base.logits}
        scores = {"test": metrics.binary_metrics(base.labels, base.probs)}
        for modality in ("image", "text"):
            if modality in probs:
                arrays[f"probs_{modality}_shuffled"] = probs[modality].probs
                scores[f"test_{modality}_shuffled"] = metrics.binary_metrics(
                    probs[modality].labels, probs[modality].probs
                )
        scores.update(
            best_epoch=history.best_epoch,
            epochs_run=len(history.table),
            stopped_early=history.stopped_early,
        )
        return {"metrics": scores, "predictions": arrays, "history": history}

    return store.get_or_run(spec.name, run_config(spec, params), data_fp, work)


def train_runs(
    grid: Sequence[RunSpec],
    params: Mapping[str, object],
    splits: Splits,
    store,
    data_fp: str,
    text_dir: Path | None,
    *,
    device: str = "auto",
) -> dict[str, object]:
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
    case, label, prob`` (the table bootstraps and figures read)."""
    parts = []
    for spec in grid:
        pred = runs[spec.name].predictions
        for shuffled in SHUFFLED:
            key = "probs" if shuffled == "none" else f"probs_{shuffled}_shuffled"
            if key not in pred:
                continue
            parts.append(
                pd.DataFrame(
                    {
                        "model": spec.model,
                        "dataset": spec.dataset,
                        "loss": spec.loss,
                        "shuffled": shuffled,
                        "case": range(len(pred[key])),
                        "label": pred["labels"],
                        "prob": pred[key],
                    }
                )
            )
    return pd.concat(parts, ignore_index=True)


def results_tables(
    long: pd.DataFrame, *, n_boot: int = 1000, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Our Figures 2-4 (``results``) and Figure 2 bottom (``sensitivity``) with bootstrap
    95% intervals, in the tidy layout of :func:`paper_tables`."""
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
        for m, d, lo, s in zip(
            table["model"], table["dataset"], table["loss"], shuffled, strict=True
        )
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
        return sorted(
            {(m, d, lo) for m, d, lo in zip(s["model"], s["dataset"], s["loss"], strict=True)}
        )


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
            parts.append(
                f"{_DATASET_NAMES[dataset]} {_LOSS_NAMES[loss]}: text {txt} vs image {img}"
            )
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
    return abs(
        t.value("precision", model, dataset, loss).x - t.value("recall", model, dataset, loss).x
    )


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
    listed = "; ".join(
        f"{_DATASET_NAMES[d]} {_LOSS_NAMES[lo]} {g:.3f}" for (d, lo), g in gaps.items()
    )
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
        rows.append(
            {
                "id": c.id,
                "claim": c.claim,
                "paper_evidence": paper.evidence,
                "paper_holds": paper.holds,
                "ours": ours.evidence,
                "holds": ours.holds,
            }
        )
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------------
# the chapter's tables


#: The runs each of the paper's result figures compares.
FIGURES: dict[str, tuple[tuple[str, str, str], ...]] = {
    "2": tuple((m, "full", "bce") for m in MODELS),
    "3": tuple((m, "full", lo) for m in MODELS for lo in LOSSES),
    "4": (("multimodal", "full", "bce"), ("multimodal", "full", "focal"))
    + tuple((m, "75", lo) for lo in LOSSES for m in MODELS),
}


def figure_table(results: pd.DataFrame, figure: str) -> pd.DataFrame:
    """Ours (with 95% intervals) beside the paper for the runs of one of its figures."""
    if figure not in FIGURES:
        raise ValueError(f"figure must be one of {sorted(FIGURES)}, got {figure!r}")
    runs = [run_label(*r) for r in FIGURES[figure]]
    ours = with_labels(results).reindex(runs)
    paper = with_labels(reference.results_table()).reindex(runs)
    return metrics.comparison_table(ours, paper[list(METRICS)], metrics=list(METRICS))


def sensitivity_table(sensitivity: pd.DataFrame) -> pd.DataFrame:
    """Our bimodal sensitivity tests beside the paper's (it tested the Full BCE model only)."""
    ours = with_labels(sensitivity)
    paper = with_labels(reference.sensitivity_table()).reindex(ours.index)
    return metrics.comparison_table(ours, paper[list(METRICS)], metrics=list(METRICS))


def profile_table(params: Mapping[str, object], slug: str = SLUG) -> pd.DataFrame:
    """The parameters that differ between the ``smoke``, ``book`` and ``full`` profiles,
    read from the notebook and its profile files, beside the values of this run."""
    try:
        profiles = {p: book.resolved_parameters(slug, p) for p in ("smoke", "book", "full")}
    except (RuntimeError, FileNotFoundError):  # not a checkout: the profile files are absent
        profiles = {}
    keys = [
        k
        for k in profiles.get("book", params)
        if len({repr(v.get(k)) for v in profiles.values()} | {repr(params.get(k))}) > 1
        or not profiles
    ]
    rows = {
        k: {**{p: profiles[p].get(k) for p in profiles}, "this run": params.get(k)} for k in keys
    }
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "parameter"
    return table.map(repr)


def headline(
    cohort: Cohort, results: pd.DataFrame, sensitivity: pd.DataFrame, claims: pd.DataFrame
) -> dict[str, float | int]:
    """The numbers the chapter's prose quotes (glued, never typed)."""
    t = _Table(results, sensitivity)
    out: dict[str, float | int] = {
        "n_images": len(cohort.table),
        "n_pneumonia": int(cohort.table["label"].sum()),
        "pneumonia_share": float(cohort.table["label"].mean()),
        "n_test": int((cohort.table["split"] == "test").sum()),
        "n_test_pneumonia": int(cohort.rows("full", "test")["label"].sum()),
        "claims_total": len(claims),
        "claims_hold": int((claims["holds"] == True).sum()),  # noqa: E712 (None is neither)
        "claims_fail": int((claims["holds"] == False).sum()),  # noqa: E712
    }
    for model in MODELS:
        for dataset in DATASETS:
            for loss in LOSSES:
                for metric in ("auroc", "f1", "precision", "recall"):
                    try:
                        value = t.value(metric, model, dataset, loss).x
                    except _Missing:
                        value = math.nan
                    out[f"{model}_{dataset}_{loss}_{metric}"] = value
    for dataset in DATASETS:
        for loss in LOSSES:
            for shuffled in ("image", "text"):
                try:
                    value = t.value("auroc", "multimodal", dataset, loss, shuffled).x
                except _Missing:
                    value = math.nan
                out[f"multimodal_{dataset}_{loss}_{shuffled}_shuffled_auroc"] = value
    # the paper's own numbers quoted beside ours, from the reference tables
    for (model, dataset, loss), values in reference.RESULTS.items():
        for metric, value in zip(METRICS, values, strict=True):
            out[f"paper_{model}_{dataset}_{loss}_{metric}"] = value
    for (model, dataset, loss, shuffled), values in reference.SENSITIVITY.items():
        if shuffled != "none":
            auroc = values[METRICS.index("auroc")]
            out[f"paper_{model}_{dataset}_{loss}_{shuffled}_shuffled_auroc"] = auroc
    return out


def claims_record(claims: pd.DataFrame, params: Mapping[str, object]) -> dict[str, object]:
    """The keyword arguments of ``mmcxr.book.write_claims`` for this run: the profile is
    recognised from the parameters (``custom`` when they match none) and the data source
    described from ``data_root`` (synthetic or real)."""
    profile = infer_profile(SLUG, dict(params))
    return {
        "chapter": SLUG,
        "paper": PAPER,
        "profile": profile if profile in ("smoke", "book", "full") else "custom",
        "data": describe_source(params["data_root"], str(params["data_format"])),
        "claims": claims[["id", "claim", "paper_evidence", "ours", "holds"]].to_dict("records"),
    }


def write_metrics(
    out_dir: Path,
    *,
    profile: str,
    cohort: Cohort,
    results: pd.DataFrame,
    sensitivity: pd.DataFrame,
    runs: Mapping[str, object],
    params: Mapping[str, object],
) -> Path:
    """``metrics.json``: the headline tables, cohort counts and run summaries, atomically."""

    def records(df: pd.DataFrame) -> list[dict[str, object]]:
        return json.loads(df.to_json(orient="records"))

    record = {
        "chapter": SLUG,
        "profile": profile,
        "parameters": json.loads(canonical_json(params)),
        "cohort": {"flow": records(cohort.flow), "splits": records(cohort.split_counts())},
        "results": records(results),
        "sensitivity": records(sensitivity),
        "runs": {
            name: {k: r.metrics.get(k) for k in ("best_epoch", "epochs_run", "stopped_early")}
            | {"path": str(r.path)}
            for name, r in runs.items()
        },
    }
    return write_text(Path(out_dir) / "metrics.json", json.dumps(record, indent=2) + "\n")


# --------------------------------------------------------------------------------------------
# the chapter's figures


def _panels(nrows: int, ncols: int, size: tuple[float, float]):

    fig = Figure(figsize=(size[0] * ncols, size[1] * nrows), layout="constrained")
    return fig, fig.subplots(nrows, ncols, squeeze=False)


def plot_roc_grid(long: pd.DataFrame):
    """ROC curves of the three models, one panel per training set and loss."""
    with plots.style():
        fig, axes = _panels(len(DATASETS), len(LOSSES), (4.0, 4.0))
        base = long[long["shuffled"] == "none"]
        for i, dataset in enumerate(DATASETS):
            for j, loss in enumerate(LOSSES):
                part = base[(base["dataset"] == dataset) & (base["loss"] == loss)]
                curves = {
                    _MODEL_NAMES[m]: (g["label"].to_numpy(), g["prob"].to_numpy())
                    for m in MODELS
                    if len(g := part[part["model"] == m])
                }
                plots.plot_roc(
                    curves,
                    ax=axes[i, j],
                    title=f"{_DATASET_NAMES[dataset]} set, {_LOSS_NAMES[loss]} loss",
                )
    return fig


def plot_confusion_grid(long: pd.DataFrame, threshold: float = 0.5):
    """Confusion matrices at the 0.5 threshold: rows = models, columns = set and loss.

    Each row of a matrix is normalised by its true class (counts in brackets), so every
    panel shares one 0-1 colour scale and the per-panel colour bars are dropped.
    """
    base = long[long["shuffled"] == "none"]
    combos = [(d, lo) for d in DATASETS for lo in LOSSES]
    names = ["no\nfinding", "pneu-\nmonia"]
    with plots.style():
        fig, axes = _panels(len(MODELS), len(combos), (2.3, 2.2))
        for i, model in enumerate(MODELS):
            for j, (dataset, loss) in enumerate(combos):
                ax = axes[i, j]
                g = base[
                    (base["model"] == model) & (base["dataset"] == dataset) & (base["loss"] == loss)
                ]
                cm = metrics.confusion_matrix(g["label"], g["prob"], threshold, class_names=names)
                plots.plot_confusion(cm, normalize=True, ax=ax)
                ax.set_title(run_label(model, dataset, loss).removesuffix(" loss"), fontsize=9)
                ax.tick_params(labelsize=8)
                if i < len(MODELS) - 1:
                    ax.set(xlabel="", xticklabels=[])
                if j > 0:
                    ax.set(ylabel="", yticklabels=[])
        grid_axes = set(axes.ravel())
        for ax in list(fig.axes):
            if ax not in grid_axes:  # the colour bars
                ax.remove()
    return fig


def plot_training_grid(history: pd.DataFrame):
    """Training (dashed) and validation (solid) loss per epoch, one panel per set and loss.

    The two losses are on different scales (focal loss is far smaller than BCE), so each
    panel has its own y axis; a marker shows the epoch whose weights were kept.
    """
    with plots.style():
        fig, axes = _panels(len(DATASETS), len(LOSSES), (4.2, 3.0))
        for i, dataset in enumerate(DATASETS):
            for j, loss in enumerate(LOSSES):
                ax = axes[i, j]
                for k, model in enumerate(MODELS):
                    h = history[
                        (history["model"] == model)
                        & (history["dataset"] == dataset)
                        & (history["loss"] == loss)
                    ]
                    if not len(h):
                        continue
                    colour = plots.PALETTE[k]
                    ax.plot(h["epoch"], h["train_loss"], ls="--", lw=1.2, color=colour)
                    ax.plot(
                        h["epoch"], h["val_loss"], lw=1.6, color=colour, label=_MODEL_NAMES[model]
                    )
                    best = h.loc[h["val_loss"].idxmin()]
                    ax.plot(best["epoch"], best["val_loss"], "o", color=colour, ms=5)
                ax.set(
                    title=f"{_DATASET_NAMES[dataset]} set, {_LOSS_NAMES[loss]} loss",
                    xlabel="epoch",
                    ylabel="loss",
                )
                ax.xaxis.get_major_locator().set_params(integer=True)
        axes[0, 0].legend(title="validation (solid)\ntraining (dashed)", loc="upper right")
    return fig


def plot_sensitivity(sensitivity: pd.DataFrame):
    """AUROC of each multimodal run as is and with one modality shuffled (95% intervals),
    with the paper's Full BCE values as black ticks."""
    paper = reference.sensitivity_table()
    runs = [(d, lo) for d in DATASETS for lo in LOSSES]
    width = 0.26
    with plots.style():
        fig, axes = _panels(1, 1, (7.0, 3.4))
        ax = axes[0, 0]
        for k, shuffled in enumerate(SHUFFLED):
            xs, ys, err = [], [], [[], []]
            for r, (dataset, loss) in enumerate(runs):
                row = sensitivity[
                    (sensitivity["dataset"] == dataset)
                    & (sensitivity["loss"] == loss)
                    & (sensitivity["shuffled"] == shuffled)
                ]
                if not len(row):
                    continue
                row = row.iloc[0]
                xs.append(r + (k - 1) * width)
                ys.append(row["auroc"])
                err[0].append(row["auroc"] - row.get("auroc_lo", row["auroc"]))
                err[1].append(row.get("auroc_hi", row["auroc"]) - row["auroc"])
                p = paper[
                    (paper["dataset"] == dataset)
                    & (paper["loss"] == loss)
                    & (paper["shuffled"] == shuffled)
                ]
                if len(p):
                    ax.plot(
                        [xs[-1] - width / 2, xs[-1] + width / 2],
                        [p["auroc"].iloc[0]] * 2,
                        color="black",
                        lw=2,
                        label="paper (Full BCE only)"
                        if (shuffled, dataset, loss) == ("none", "full", "bce")
                        else None,
                    )
            label = "intact" if shuffled == "none" else f"{shuffled} shuffled"
            ax.bar(
                xs,
                ys,
                width,
                # a percentile interval from few resamples can miss the point estimate, and
                # an undefined one is NaN: draw what lies on each side, never a negative bar
                yerr=np.nan_to_num(np.clip(np.asarray(err, dtype=float), 0, None)),
                color=plots.PALETTE[k],
                label=label,
                capsize=2,
                error_kw={"lw": 0.8},
            )
        ax.axhline(0.5, color="grey", ls=":", lw=1)
        ax.set_xticks(
            range(len(runs)), [f"{_DATASET_NAMES[d]} set, {_LOSS_NAMES[lo]}" for d, lo in runs]
        )
        ax.set(ylim=(0, 1.05), ylabel="test AUROC", title="Multimodal model, bimodal sensitivity")
        ax.legend(ncols=4, loc="lower center", bbox_to_anchor=(0.5, 1.08))
    return fig
