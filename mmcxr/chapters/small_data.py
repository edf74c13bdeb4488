"""The small-data chapter (paper 002): its cohort, its transfer recipe, its runs, its detectors.

The notebook ``notebooks/small-data-explanations.py`` tells the story; this module holds the
paper's recipe only (the same code for ``smoke``, ``book`` and ``full``). The generic parts live
in the shared modules: the Kim CNN and embeddings (:mod:`mmcxr.models.cnn_text`), the paired
datasets (:mod:`mmcxr.data.paired`), training (:mod:`mmcxr.train`), ChestX-ray14 pretraining
(:mod:`mmcxr.pretrain`), run reuse (:mod:`mmcxr.runs`), attributions, the sight-sensitivity
detector and word scores (:mod:`mmcxr.explain`), lesion masks and circle scores
(:mod:`mmcxr.localization`). The calibration of its two synthetic difficulty knobs is in
:mod:`mmcxr.chapters.small_data_calibration`.
"""

from __future__ import annotations

import copy
import hashlib
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from mmcxr import data, explain, localization, models, pretrain, runs, train
from mmcxr.data.openi import image_key
from mmcxr.data.paired import PairedData
from mmcxr.data.sections import join_sections
from mmcxr.models.cnn_text import LEE_CORPUS
from mmcxr.params import Param, common, shared, synthetic
from mmcxr.runs import RunResult, RunStore, fingerprint_table, history_table
from mmcxr.runs import pick_params as _config
from mmcxr.synth import SynthConfig

SLUG = "small-data-explanations"
PAPER = (
    "Multimodal classification and detection in small data (shared/papers/002_fec24d92fd86ae33.txt)"
)
FORMATS = ("openi", "openi-kaggle")
EMBEDDINGS = ("custom", "generic")
MODELS = ("multimodal", "text", "image")
LRS = ("high", "low")
#: The generic embedding's corpus without ``glove_path``: gensim's Lee background corpus.
GENERIC_CORPUS = LEE_CORPUS
METHODS = explain.IMAGE_METHODS

#: What every parameter must be (checked when the chapter starts: :mod:`mmcxr.params`).
PARAMETERS: dict[str, Param] = {
    **common(formats=FORMATS),
    **synthetic(image_difficulty=True, report_difficulty=True),
    "cxr14_root": Param("str", optional=True, doc="a real ChestX-ray14 root for pretraining"),
    "synth_cxr14_n": Param("int", low=20, doc="images of the synthetic ChestX-ray14 cohort"),
    **shared("split_fractions"),
    "image_size": Param("int", low=32, high=1024),
    "image_backbone": Param("str", choices=("densenet121", "densenet-small")),
    "image_weights": Param("str", optional=True, doc="a local ImageNet state dict"),
    "batch_size": Param("int", low=2),
    "pretrain_epochs": Param("int", low=1),
    "pretrain_lr": Param("float", low=0, high=1),
    "image_epochs": Param("int", low=1),
    "image_lr": Param("float", low=0, high=1),
    "decoder_hidden": Param("int", low=1),
    "max_words": Param("int", low=5, high=1000),
    "embed_dim": Param("int", low=4),
    "n_filters": Param("int", low=1),
    "w2v_epochs": Param("int", low=1),
    "glove_path": Param("str", optional=True, doc="a local GloVe/word2vec vectors file"),
    "text_epochs": Param("int", low=1),
    "text_lr": Param("float", low=0, high=1),
    "lr_high": Param("float", low=0, high=1),
    "lr_low": Param("float", low=0, high=1),
    "splits_high": Param("int", low=1),
    "epochs_high": Param("int", low=1),
    "splits_low": Param("int", low=1),
    "epochs_low": Param("int", low=1),
    "holdout_fraction": Param("float", low=0.05, high=0.5),
    "n_explain": Param("int", low=1),
    "ig_steps": Param("int", low=2),
    "sensitivities": Param("list", items="float", low=0, high=0.99),
    "figure_sensitivities": Param("list", items="float", length=3, low=0, high=0.99),
    "max_clusters": Param("int", low=1),
    "pointing_tolerance": Param("int", low=0),
    "n_bootstrap": Param("int", low=0),
    **shared("claim_tol"),
}


# --------------------------------------------------------------------------------------------
# the cohort


@dataclass
class Cohort(data.SplitCohort):
    """One frontal image and its report per case, labelled and split.

    ``table``: the loader's columns plus ``label`` (1 abnormal, 0 normal, from the MeSH
    coding), ``text`` (findings and impression, what the text model reads) and ``split``
    ("train"/"val"/"test", stratified by label). ``flow``: counts after each selection step.
    """

    def split_counts(self) -> pd.DataFrame:
        """Cases, abnormal and abnormal share per split."""
        rows = []
        for split in self.SPLITS:
            part = self.rows(split)
            n, pos = len(part), int(part["label"].sum())
            rows.append(
                {"split": split, "cases": n, "abnormal": pos, "abnormal share": pos / max(n, 1)}
            )
        return pd.DataFrame(rows)


def report_text(findings: object, impression: object) -> str:
    """Findings then impression (the radiologist's note the paper reads), the impression left
    out when it only repeats the findings (:func:`mmcxr.data.sections.join_sections`)."""
    return join_sections(findings, impression)


def build_cohort(
    images: pd.DataFrame, *, seed: int = 0, split_fractions: Sequence[float] = (0.7, 0.1, 0.2)
) -> Cohort:
    """The paper's cohort from an OpenI image table (either edition's loader).

    Frontal images only; one per report (the first by image id: the paper counts cases); the
    label is "abnormal" unless the report's MeSH coding is ``normal`` (OpenI's ``normal``
    column); cases without findings or impression text cannot feed the text model and are
    removed as a recorded step, with a warning. The split is by patient and stratified.
    """
    need = ["subject_id", "study_id", "image_id", "path", "view", "findings", "impression"]
    missing = [c for c in need + ["normal"] if c not in images.columns]
    if missing:
        raise ValueError(f"the image table lacks columns {missing}; is it an OpenI table?")
    df = images.copy()
    coded = df["normal"].notna()
    df["label"] = np.where(coded, 1 - df["normal"].fillna(True).astype(bool).astype(int), -1)
    flow = data.CohortFlow(df, "images in the release")
    if not coded.all():
        df = flow.record("with a MeSH coding", df[coded])
    df = flow.apply("frontal images", data.frontal_only)
    df = flow.record(
        "one frontal image per report",
        df.sort_values(["study_id", "image_id"]).drop_duplicates("study_id"),
    )
    text = pd.Series(
        [report_text(f, i) for f, i in zip(df["findings"], df["impression"], strict=True)],
        index=df.index,
    )
    if (text == "").any():
        warnings.warn(
            f"{int((text == '').sum())} of {len(df)} reports have neither findings nor "
            "impression text; they are removed (see the cohort flow)",
            data.DataWarning,
            stacklevel=2,
        )
        df = flow.record("with findings or impression text", df[text != ""])
        text = text[text != ""]
    if df["label"].nunique() < 2:
        raise ValueError(
            f"the cohort holds one class only ({len(df)} cases); the root is too small or "
            "its MeSH coding is missing"
        )
    df = df.assign(text=text.to_numpy())
    df["split"] = data.patient_split(df, split_fractions, seed, stratify="label")
    table = df.reset_index(drop=True)
    table.attrs = {}
    return Cohort(table=table, flow=flow.table)


def data_fingerprint(cohort: Cohort, cache) -> str:
    """What the runs were trained and tested on: the cohort table and the cached pixels."""
    table = fingerprint_table(cohort.table, ["image_id", "label", "split", "text"])
    return hashlib.sha256(f"{table}:{cache.manifest.get('sha256')}".encode()).hexdigest()


def cache_dir(out_dir: Path, table: pd.DataFrame, size: int, name: str) -> Path:
    """A cache folder per image set and size, so a changed cohort never meets a stale cache."""
    return runs.image_cache_dir(out_dir, table, ["image_id", "path"], size, name)


# --------------------------------------------------------------------------------------------
# the two embeddings (Tables 1-2)


def custom_vectors(cohort: Cohort, params: Mapping[str, object]):
    """Word2Vec trained on this institution's reports (the paper's custom embedding): every
    report of the cohort except the test split's, so no test report shapes its own words."""
    texts = cohort.table.loc[cohort.table["split"] != "test", "text"].tolist()
    return models.train_word2vec(
        texts, dim=int(params["embed_dim"]), seed=int(params["seed"]),
        epochs=int(params["w2v_epochs"]),
    )  # fmt: skip


def generic_vectors(params: Mapping[str, object]):
    """The generic embedding (:func:`mmcxr.models.cnn_text.general_vectors`): GloVe from
    ``glove_path`` when given, else Word2Vec with the custom embedding's settings on
    :data:`GENERIC_CORPUS`."""
    return models.general_vectors(
        params.get("glove_path") or None, dim=int(params["embed_dim"]),
        seed=int(params["seed"]), epochs=int(params["w2v_epochs"]),
    )  # fmt: skip


# --------------------------------------------------------------------------------------------
# models


def text_model(vocab_size: int, weights: torch.Tensor | None, params: Mapping[str, object]):
    """Kim CNN (kernels 3/4/5, embedding not frozen) -> batch norm -> small dense decoder."""
    dim = int(weights.shape[1]) if weights is not None else int(params["embed_dim"])
    enc = models.KimCNN(
        vocab_size, dim, n_filters=int(params["n_filters"]), embedding_weights=weights
    )
    return models.build_classifier(
        "text", None, enc, fusion="concat_bn", hidden=int(params["decoder_hidden"]), dropout=0.2
    )


def image_model(encoder, params: Mapping[str, object], n_outputs: int = 1):
    """An image encoder -> batch norm -> small dense decoder (section 2.2)."""
    return models.build_classifier(
        "image", encoder, n_outputs=n_outputs, fusion="concat_bn",
        hidden=int(params["decoder_hidden"]), dropout=0.2,
    )  # fmt: skip


def fresh_image_model(params: Mapping[str, object], n_outputs: int = 1):
    """:func:`image_model` on a freshly initialised ``image_backbone``."""
    return image_model(models.image_encoder(str(params["image_backbone"])), params, n_outputs)


def multimodal_model(text_encoder, image_encoder, params: Mapping[str, object]):
    """Figure 1: both trained encoders concatenated -> batch norm -> dense decoder -> binary."""
    return models.build_classifier(
        "multimodal", copy.deepcopy(image_encoder), copy.deepcopy(text_encoder),
        fusion="concat_bn", hidden=int(params["decoder_hidden"]), dropout=0.2,
    )  # fmt: skip


# --------------------------------------------------------------------------------------------
# datasets

#: Everything a run reads: the cohort's cached images, its token ids and their vocabulary.
Data = PairedData


def make_data(cohort: Cohort, cache, max_words: int) -> Data:
    """Token ids of every report (vocabulary from the training reports, the rest ``<unk>``)."""
    fp = data_fingerprint(cohort, cache)
    return PairedData.build(cohort, cache, max_words=int(max_words), fingerprint=fp)


# --------------------------------------------------------------------------------------------
# runs

TEXT_KEYS = ("seed", "max_words", "embed_dim", "n_filters", "w2v_epochs", "decoder_hidden",
             "batch_size", "split_fractions")  # fmt: skip
IMAGE_KEYS = ("seed", "image_size", "image_backbone", "decoder_hidden", "batch_size",
              "split_fractions")  # fmt: skip
PRETRAIN_KEYS = ("seed", "image_size", "image_backbone", "decoder_hidden", "batch_size",
                 "pretrain_epochs", "pretrain_lr", "synth_cxr14_n")  # fmt: skip


def pretrain_chestxray14(
    cxr: pd.DataFrame, cache, params: Mapping[str, object], store: RunStore, *, device="auto"
) -> tuple[RunResult, str]:
    """The image encoder trained on ChestX-ray14's 14 labels (patients split 90/10,
    :func:`mmcxr.pretrain.chestxray14_run`); returns the run and its key, from which
    :func:`chestxray14_encoder` rebuilds the weights."""

    def fit(model, train_ds, val_ds, ckpt):
        kwargs = _fit_kwargs(params, params["pretrain_lr"], params["pretrain_epochs"])
        return train.fit(model, train_ds, val_ds, checkpoint_dir=ckpt, device=device, **kwargs)

    config = _config(params, PRETRAIN_KEYS, run=pretrain.CHESTXRAY14_RUN)
    build = partial(fresh_image_model, params)
    return pretrain.chestxray14_run(
        cxr, cache, store, config, build=build, fit=fit, seed=int(params["seed"])
    )


def chestxray14_encoder(store: RunStore, key: str, params: Mapping[str, object]):
    """The pretrained image encoder of :func:`pretrain_chestxray14` (a fresh copy)."""
    model = fresh_image_model(params, len(data.CHESTXRAY14_LABELS))
    return store.load_model(pretrain.CHESTXRAY14_RUN, key, model).image_encoder


def cxr14_config(params: Mapping[str, object]) -> SynthConfig:
    """The synthetic ChestX-ray14's recipe: films as hard as IU's (``synth_image_difficulty``),
    labels as drawn (the report knob is set for IU's MeSH coding, not for text-mined labels)."""
    return SynthConfig(image_difficulty=float(params.get("synth_image_difficulty") or 0.0))


def alternative_encoder(params: Mapping[str, object]):
    """What ChestX-ray14 pretraining is compared with: ImageNet weights from ``image_weights``
    when given, else the same network from scratch (ImageNet is not available here)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(params["seed"]))
        return models.prepared_image_encoder(
            str(params["image_backbone"]), params.get("image_weights")
        )


def alternative_name(params: Mapping[str, object]) -> str:
    return "imagenet" if params.get("image_weights") else "scratch"


def _fit_kwargs(params: Mapping[str, object], lr, epochs) -> dict:
    """:func:`mmcxr.train.fit`'s settings of every run here (BCE, no early stopping)."""
    return {"loss": "bce", "epochs": int(epochs), "batch_size": int(params["batch_size"]),
            "lr": float(lr), "patience": None, "seed": int(params["seed"]), "progress": False}  # fmt: skip


def train_text_runs(
    d: Data, vectors: Mapping[str, object], params, store: RunStore, *, device="auto"
) -> dict[str, RunResult]:
    """Tables 1-2: the text model with each embedding, trained on the training split (best
    validation epoch kept), scored on training, validation and test cases."""
    out = {}
    fit = _fit_kwargs(params, params["text_lr"], params["text_epochs"])
    for name in EMBEDDINGS:
        kv = vectors[name]
        weights, coverage = models.embedding_matrix(d.vocab, kv, seed=int(params["seed"]))
        source = str(params.get("glove_path") or GENERIC_CORPUS) if name == "generic" else "reports"
        config = _config(params, TEXT_KEYS, run=f"text-{name}", source=source,
                         lr=params["text_lr"], epochs=params["text_epochs"])  # fmt: skip

        def work(ckpt: Path, weights=weights, coverage=coverage) -> dict:
            run = train.scored_run(
                partial(text_model, len(d.vocab), weights, params), d.split("train", ["text"]),
                d.split("val", ["text"]), {s: d.split(s, ["text"]) for s in ("train", "val", "test")},
                init_seed=int(params["seed"]), device=device, checkpoint_dir=ckpt, **fit,
            )  # fmt: skip
            return run | {"metrics": run["metrics"] | {"coverage": coverage}}

        out[name] = store.get_or_run(f"text-{name}", config, d.fingerprint, work)
    return out


def train_image_runs(
    d: Data, params, store: RunStore, pretrain_key: str, *, device="auto"
) -> dict[str, RunResult]:
    """Figure 4: the image model fine-tuned from the ChestX-ray14 encoder and from the
    alternative, validation accuracy after every epoch (best validation epoch kept)."""
    out = {}
    inits = {"chestxray14": pretrain_key, alternative_name(params): params.get("image_weights")}
    fit = _fit_kwargs(params, params["image_lr"], params["image_epochs"])
    for init, source in inits.items():
        config = _config(params, IMAGE_KEYS, run=f"image-{init}", source=source,
                         lr=params["image_lr"], epochs=params["image_epochs"])  # fmt: skip

        def work(ckpt: Path, init=init) -> dict:
            enc = (
                chestxray14_encoder(store, pretrain_key, params)
                if init == "chestxray14"
                else alternative_encoder(params)
            )
            run = train.scored_run(
                partial(image_model, enc, params), d.split("train", ["image"]),
                d.split("val", ["image"]), {"test": d.split("test", ["image"])},
                init_seed=int(params["seed"]), device=device, checkpoint_dir=ckpt, **fit,
            )  # fmt: skip
            return run | {"metrics": run["metrics"] | {"best_epoch": run["history"].best_epoch}}

        out[init] = store.get_or_run(f"image-{init}", config, d.fingerprint, work)
    return out


def _split_model(kind: str, k: int, d: Data, weights, params, store, pretrain_key, done):
    """A fresh Figure 5 model of ``kind`` for split ``k``: the multimodal one starts from the
    split's trained text and image models (``done[kind][k]``, their runs)."""
    if kind == "text":
        return text_model(len(d.vocab), weights, params)
    if kind == "image":
        return image_model(chestxray14_encoder(store, pretrain_key, params), params)
    t = runs.load_run_model(done["text"][k], text_model(len(d.vocab), None, params))
    i = runs.load_run_model(done["image"][k], fresh_image_model(params))
    return multimodal_model(t.text_encoder, i.image_encoder, params)


def train_split_runs(
    d: Data, custom: object, params, store: RunStore, pretrain_key: str | None, *,
    device="auto", kinds: Sequence[str] = MODELS, lrs: Sequence[str] = LRS,
) -> dict[tuple[str, int, str], RunResult]:  # fmt: skip
    """Figure 5 / Table 3. On every stratified split and at both learning rates: the text model
    (custom embedding) and the image model (ChestX-ray14 encoder) are fine-tuned, then the
    multimodal model is built from their trained encoders (section 2) and fine-tuned the same
    way. Accuracy on the held-out part after every epoch; no epoch is selected on it
    (:func:`mmcxr.train.split_curves`). ``kinds`` and ``lrs`` run a part only (the calibration
    runs one single-modality model at the high rate; multimodal needs text and image)."""
    if "multimodal" in kinds and not {"text", "image"} <= set(kinds):
        raise ValueError("the multimodal model is built from the text and the image runs")
    kinds = [k for k in ("text", "image", "multimodal") if k in kinds]
    labels = d.cohort.table["label"].to_numpy()
    weights = None
    if "text" in kinds:
        weights, _ = models.embedding_matrix(d.vocab, custom, seed=int(params["seed"]))
    n = {lr: int(params[f"splits_{lr}"]) for lr in LRS}
    splits = data.stratified_splits(
        labels, max(n.values()), float(params["holdout_fraction"]), int(params["seed"])
    )
    bar = tqdm(total=len(kinds) * sum(n[lr] for lr in lrs), desc="split runs", unit="run")
    done: dict[tuple[str, str], list[RunResult]] = {}
    for lr_name in [lr for lr in LRS if lr in lrs]:
        lr, epochs = float(params[f"lr_{lr_name}"]), int(params[f"epochs_{lr_name}"])
        base = _config(
            params, sorted(set(TEXT_KEYS) | set(IMAGE_KEYS)), lr=lr, epochs=epochs,
            holdout=params["holdout_fraction"], pretrain=pretrain_key,
        )  # fmt: skip
        fit = {k: v for k, v in _fit_kwargs(params, lr, epochs).items() if k != "patience"}
        trained: dict[str, list[RunResult]] = {}
        for kind in kinds:
            build = partial(_split_model, kind, d=d, weights=weights, params=params,
                            store=store, pretrain_key=pretrain_key, done=trained)  # fmt: skip
            trained[kind] = train.split_curves(
                store, f"split-{lr_name}-{{split}}-{kind}", base | {"model": kind},
                d.fingerprint, splits[: n[lr_name]], build, partial(d.dataset, modalities=[kind]),
                init_seed=int(params["seed"]), keep_model=kind != "multimodal", bar=bar,
                device=device, **fit,
            )  # fmt: skip
            done[(lr_name, kind)] = trained[kind]
    bar.close()
    return {(lr, k, kind): done[(lr, kind)][k] for (lr, kind) in done for k in range(n[lr])}


def split_histories(runs: Mapping[tuple[str, int, str], RunResult]) -> pd.DataFrame:
    """Every Figure 5 run's per-epoch held-out accuracy: ``lr, split, model, epoch, accuracy``."""
    cols = {"epoch": "epoch", "val_accuracy": "accuracy"}
    return history_table(runs, ("lr", "split", "model"), cols)


# --------------------------------------------------------------------------------------------
# detection (section 3.1) and text explanations (section 3.2)


def _key(image_id: str) -> str:
    """The id both OpenI editions share (:func:`mmcxr.data.openi.image_key`): the Kaggle
    edition names images differently from the XML ids the ground truth records."""
    return image_key(image_id) or image_id


def lesion_masks(rows: pd.DataFrame, gt: pd.DataFrame, cache, size: int) -> list[np.ndarray]:
    """Each case's planted findings as one boolean mask on the cached (letterboxed) grid
    (:func:`mmcxr.localization.lesion_masks`); only synthetic roots have a ground truth."""
    return localization.lesion_masks(rows["image_id"], gt, cache, size, key=_key)


def explain_cases(cohort: Cohort, gt: pd.DataFrame | None, n: int, seed: int = 0) -> pd.DataFrame:
    """Abnormal test cases to explain, with at least one planted box when a ground truth
    exists (up to ``n``, drawn at random)."""
    test = cohort.rows("test")
    test = test[test["label"] == 1]
    if gt is not None:
        box_cols = [c for c in gt.columns if c.startswith("box_")]
        has_box = gt.set_index(gt["image_id"].map(_key))[box_cols].notna().any(axis=1)
        test = test[test["image_id"].map(_key).map(has_box).fillna(False).astype(bool).to_numpy()]
    if len(test) == 0:
        raise ValueError("no abnormal test case with a planted finding to explain")
    return test.sample(min(n, len(test)), random_state=seed)


def mesh_words(mesh_major: object) -> set[str]:
    """The words of a report's MeSH headings (qualifiers after ``/`` dropped): what the report
    was coded as showing, e.g. ``Pleural Effusion/right`` -> {"pleural", "effusion"}."""
    if not isinstance(mesh_major, str):
        return set()
    heads = [t.split("/")[0] for t in mesh_major.split(";")]
    return {w for h in heads for w in models.words(h)} - {"normal"}


def explain_texts(model, d: Data, rows: pd.DataFrame) -> pd.DataFrame:
    """Section 3.2 for ``rows`` of the cohort (:func:`mmcxr.explain.word_scores`): per-word
    scores (squared gradient summed over each word's embedding row, normalised), the top word
    and whether a MeSH heading names it.

    One row per case: ``image_id, label, prob, words, scores, top_word, top_hit, chance``
    (``chance``: the share of the report's words that are MeSH heading words, the hit rate of
    a word picked at random).
    """
    idx = [int(np.flatnonzero(d.cohort.table["image_id"] == k)[0]) for k in rows["image_id"]]
    targets = [mesh_words(row.get("mesh_major")) for _, row in rows.iterrows()]
    out = explain.word_scores(model, d.tokens[torch.as_tensor(idx)], d.vocab.itos, targets)
    out.insert(0, "label", rows["label"].astype(int).to_numpy())
    out.insert(0, "image_id", rows["image_id"].to_numpy())
    return out


def multimodal_summary(d: Data, params: Mapping[str, object]) -> pd.DataFrame:
    """Layers, output shapes and parameter counts of the multimodal model on two test cases
    (:func:`mmcxr.models.model_summary`), with freshly initialised encoders."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(params["seed"]))
        t = text_model(len(d.vocab), None, params)
        i = fresh_image_model(params)
        model = multimodal_model(t.text_encoder, i.image_encoder, params)
    test = d.split("test")
    batch = torch.utils.data.default_collate([test[j] for j in range(2)])
    return models.model_summary(model, batch, depth=2)
