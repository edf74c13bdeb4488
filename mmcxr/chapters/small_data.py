"""The small-data chapter (paper 002): its cohort, its transfer recipe, its runs, its detectors.

The notebook ``notebooks/small-data-explanations.py`` tells the story; this module holds the
paper's recipe only, so that the ``smoke``, ``book`` and ``full`` profiles run the same code.
What any chapter could use lives in the shared modules: the Kim CNN and Word2Vec
(:mod:`mmcxr.models.cnn_text`), the encoders and the concatenation model
(:mod:`mmcxr.models`), training (:mod:`mmcxr.train`), the sight-sensitivity detector and the
word scores (:mod:`mmcxr.explain`), the circle and pointing-game scores
(:mod:`mmcxr.localization`).

* :func:`build_cohort` — frontal image + report per case, normal/abnormal from MeSH, a split;
* :func:`custom_vectors` / :func:`generic_vectors` — the two embeddings of Tables 1-2;
* :func:`pretrain_chestxray14` — the 14-label DenseNet the image model transfers;
* :func:`train_text_runs`, :func:`train_image_runs`, :func:`train_split_runs` — Tables 1-2,
  Figure 4, Figure 5 / Table 3, each run keyed (:func:`mmcxr.runs.run_key`) and reused;
* :func:`explain_images` / :func:`explain_texts` — sections 3.1 and 3.2 on test cases.
"""

from __future__ import annotations

import copy
import hashlib
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from sklearn.model_selection import StratifiedShuffleSplit
from tqdm.auto import tqdm

from mmcxr import data, explain, models, train
from mmcxr.data.datasets import IMAGE_MEAN, IMAGE_STD
from mmcxr.localization import boxes_to_mask
from mmcxr.models.cnn_text import load_glove
from mmcxr.params import Param, common, synthetic
from mmcxr.runs import RunResult, RunStore, fingerprint_table, run_key

SLUG = "small-data-explanations"
PAPER = (
    "Multimodal classification and detection in small data (shared/papers/002_fec24d92fd86ae33.txt)"
)
FORMATS = ("openi", "openi-kaggle")
EMBEDDINGS = ("custom", "generic")
MODELS = ("multimodal", "text", "image")
LRS = ("high", "low")
#: The word2vec-format corpus gensim ships with its tests: the Lee background corpus, 300
#: news articles of the Australian Broadcasting Corporation (gensim's Word2Vec tutorial data).
GENERIC_CORPUS = "lee_background.cor"
METHODS = ("integrated gradients", "gradient", "grad-cam")

#: What every parameter must be (checked when the chapter starts: :mod:`mmcxr.params`).
PARAMETERS: dict[str, Param] = {
    **common(formats=FORMATS),
    **synthetic(),
    "cxr14_root": Param("str", optional=True, doc="a real ChestX-ray14 root for pretraining"),
    "synth_cxr14_n": Param("int", low=20, doc="images of the synthetic ChestX-ray14 cohort"),
    "split_fractions": Param("list", items="float", length=3, low=0, high=1),
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
    "claim_tol": Param("float", low=0, high=1),
}


# --------------------------------------------------------------------------------------------
# the cohort


@dataclass
class Cohort:
    """One frontal image and its report per case, labelled and split.

    ``table``: the loader's columns plus ``label`` (1 abnormal, 0 normal, from the MeSH
    coding), ``text`` (findings and impression, what the text model reads) and ``split``
    ("train"/"val"/"test", stratified by label). ``flow``: counts after each selection step.
    """

    table: pd.DataFrame
    flow: pd.DataFrame

    def rows(self, split: str) -> pd.DataFrame:
        if split not in ("train", "val", "test"):
            raise ValueError(f"split must be train, val or test, got {split!r}")
        return self.table[self.table["split"] == split]

    def split_counts(self) -> pd.DataFrame:
        """Cases, abnormal and abnormal share per split."""
        rows = []
        for split in ("train", "val", "test"):
            part = self.rows(split)
            n, pos = len(part), int(part["label"].sum())
            rows.append(
                {"split": split, "cases": n, "abnormal": pos, "abnormal share": pos / max(n, 1)}
            )
        return pd.DataFrame(rows)


def report_text(findings: object, impression: object) -> str:
    """Findings then impression (the radiologist's note the paper reads), the impression left
    out when it only repeats the findings (the release's reports without a heading do)."""
    parts = []
    for p in (findings, impression):
        s = "" if p is None or (isinstance(p, float) and np.isnan(p)) else str(p).strip()
        if s and s not in parts:
            parts.append(s)
    return " ".join(parts)


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


def stratified_splits(
    labels: Sequence[int], n_splits: int, holdout: float, seed: int = 0
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n_splits`` stratified (train, held-out) index pairs over all cases, as the paper's
    "stratified splits" (each case is one patient's one frontal image, so no patient spans
    both parts)."""
    y = np.asarray(labels)
    sss = StratifiedShuffleSplit(n_splits=n_splits, test_size=holdout, random_state=seed)
    return [(np.sort(a), np.sort(b)) for a, b in sss.split(np.zeros(len(y)), y)]


def data_fingerprint(cohort: Cohort, cache) -> str:
    """What the runs were trained and tested on: the cohort table and the cached pixels."""
    table = fingerprint_table(cohort.table, ["image_id", "label", "split", "text"])
    return hashlib.sha256(f"{table}:{cache.manifest.get('sha256')}".encode()).hexdigest()


def cache_dir(out_dir: Path, table: pd.DataFrame, size: int, name: str) -> Path:
    """A cache folder per image set and size, so a changed cohort never meets a stale cache."""
    digest = fingerprint_table(table, ["image_id", "path"])[:12]
    return Path(out_dir) / "image-cache" / f"{name}-px{size}-{digest}"


# --------------------------------------------------------------------------------------------
# the two embeddings (Tables 1-2)


def generic_corpus() -> list[str]:
    """The general-English corpus of the generic embedding: gensim's Lee background corpus
    (:data:`GENERIC_CORPUS`, one news article per line), shipped with gensim, offline."""
    from gensim.test.utils import datapath

    return Path(datapath(GENERIC_CORPUS)).read_text(encoding="latin-1").splitlines()


def custom_vectors(cohort: Cohort, params: Mapping[str, object]):
    """Word2Vec trained on this institution's reports (the paper's custom embedding): every
    report of the cohort except the test split's, so no test report shapes its own words."""
    texts = cohort.table.loc[cohort.table["split"] != "test", "text"].tolist()
    return models.train_word2vec(
        texts, dim=int(params["embed_dim"]), seed=int(params["seed"]),
        epochs=int(params["w2v_epochs"]),
    )  # fmt: skip


def generic_vectors(params: Mapping[str, object]):
    """The generic embedding: GloVe (or any word2vec-format file) from ``glove_path`` when
    given, else Word2Vec with the custom embedding's settings on :func:`generic_corpus`."""
    if params.get("glove_path"):
        return load_glove(str(params["glove_path"]))
    return models.train_word2vec(
        generic_corpus(), dim=int(params["embed_dim"]), seed=int(params["seed"]),
        epochs=int(params["w2v_epochs"]),
    )  # fmt: skip


def embedding_dim(params: Mapping[str, object], vectors) -> int:
    """The embedding width (a GloVe file fixes its own; the custom one then follows it)."""
    return int(vectors.vector_size) if vectors is not None else int(params["embed_dim"])


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


def multimodal_model(text_encoder, image_encoder, params: Mapping[str, object]):
    """Figure 1: both trained encoders concatenated -> batch norm -> dense decoder -> binary."""
    return models.build_classifier(
        "multimodal", copy.deepcopy(image_encoder), copy.deepcopy(text_encoder),
        fusion="concat_bn", hidden=int(params["decoder_hidden"]), dropout=0.2,
    )  # fmt: skip


def cam_layer(model) -> torch.nn.Module:
    """The layer Grad-CAM reads: a DenseNet's final norm (its last map), a ResNet's layer4."""
    enc = model.image_encoder
    if hasattr(enc, "features") and hasattr(enc.features, "norm5"):
        return enc.features.norm5
    return enc.layer4


def _fit(model, train_ds, val_ds, *, lr, epochs, params, ckpt, device, restore_best=True):
    return train.fit(
        model, train_ds, val_ds, loss="bce", epochs=int(epochs),
        batch_size=int(params["batch_size"]), lr=float(lr), patience=None,
        restore_best=restore_best, checkpoint_dir=ckpt, seed=int(params["seed"]),
        device=device, progress=False,
    )  # fmt: skip


def _accuracy(model, ds, params, device) -> tuple[float, train.Predictions]:
    pred = train.predict(model, ds, batch_size=128, device=device, progress=False)
    return float(np.mean((pred.probs > 0.5) == (pred.labels > 0.5))), pred


# --------------------------------------------------------------------------------------------
# datasets


@dataclass
class Data:
    """Everything a run reads: the cohort's cached images, its token ids and their vocabulary."""

    cohort: Cohort
    cache: object
    vocab: models.WordVocab
    tokens: torch.Tensor
    fingerprint: str

    def dataset(self, index: Sequence[int] | np.ndarray, modalities: Sequence[str] = MODELS):
        rows = self.cohort.table.iloc[np.asarray(index, dtype=int)]
        idx = torch.as_tensor(np.asarray(index, dtype=np.int64))
        want_image = "image" in modalities or "multimodal" in modalities
        want_text = "text" in modalities or "multimodal" in modalities
        return data.MultimodalDataset(
            rows["label"].to_numpy(dtype="float32"),
            images=self.cache if want_image else None,
            image_keys=rows["image_id"].tolist() if want_image else None,
            text={"token_ids": self.tokens[idx]} if want_text else None,
        )

    def split(self, split: str, modalities: Sequence[str] = MODELS):
        return self.dataset(np.flatnonzero(self.cohort.table["split"] == split), modalities)


def make_data(cohort: Cohort, cache, max_words: int) -> Data:
    """Token ids of every report (vocabulary from the training reports, the rest ``<unk>``)."""
    vocab = models.WordVocab.build(cohort.rows("train")["text"].tolist())
    tokens = vocab.encode(cohort.table["text"].tolist(), length=int(max_words))
    fp = hashlib.sha256(f"{data_fingerprint(cohort, cache)}:{max_words}".encode()).hexdigest()
    return Data(cohort, cache, vocab, tokens, fp)


# --------------------------------------------------------------------------------------------
# runs

TEXT_KEYS = ("seed", "max_words", "embed_dim", "n_filters", "w2v_epochs", "decoder_hidden",
             "batch_size", "split_fractions")  # fmt: skip
IMAGE_KEYS = ("seed", "image_size", "image_backbone", "decoder_hidden", "batch_size",
              "split_fractions")  # fmt: skip
PRETRAIN_KEYS = ("seed", "image_size", "image_backbone", "decoder_hidden", "batch_size",
                 "pretrain_epochs", "pretrain_lr", "synth_cxr14_n")  # fmt: skip


def _config(params: Mapping[str, object], keys: Sequence[str], **extra: object) -> dict:
    missing = [k for k in keys if k not in params]
    if missing:
        raise KeyError(f"parameters {missing} are not set (add them to PARAMS)")
    return {k: params[k] for k in keys} | extra


def pretrain_chestxray14(
    cxr: pd.DataFrame, cache, params: Mapping[str, object], store: RunStore, *, device="auto"
) -> tuple[RunResult, str]:
    """The image encoder trained on ChestX-ray14's 14 labels (patients split 90/10); returns
    the run and its key, from which :func:`chestxray14_encoder` rebuilds the weights."""
    labels = list(data.CHESTXRAY14_LABELS)
    table = cxr.reset_index(drop=True)
    split = data.patient_split(table, (0.9, 0.1, 0.0), int(params["seed"]))
    y = table[labels].to_numpy(dtype="float32")

    def ds(mask):
        rows = table[mask]
        return data.MultimodalDataset(
            y[mask.to_numpy()], images=cache, image_keys=rows["image_id"].tolist()
        )

    fp = hashlib.sha256(
        f"{fingerprint_table(table, ['image_id', *labels])}:{cache.manifest.get('sha256')}".encode()
    ).hexdigest()
    config = _config(params, PRETRAIN_KEYS, run="pretrain-chestxray14")

    def work(ckpt: Path) -> dict:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(params["seed"]))
            model = image_model(
                models.image_encoder(str(params["image_backbone"])), params, len(labels)
            )
        history = _fit(
            model, ds(split == "train"), ds(split == "val"), lr=params["pretrain_lr"],
            epochs=params["pretrain_epochs"], params=params, ckpt=ckpt, device=device,
        )  # fmt: skip
        last = history.table.iloc[-1]
        return {
            "metrics": {"val_auroc": float(last["val_auroc"]), "n_images": len(table)},
            "history": history,
            "model": model,
        }

    return store.get_or_run("pretrain-chestxray14", config, fp, work), run_key(config, fp)


def chestxray14_encoder(store: RunStore, key: str, params: Mapping[str, object]):
    """The pretrained image encoder of :func:`pretrain_chestxray14` (a fresh copy)."""
    model = image_model(
        models.image_encoder(str(params["image_backbone"])), params, len(data.CHESTXRAY14_LABELS)
    )
    store.load_model("pretrain-chestxray14", key, model)
    return model.image_encoder


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


def train_text_runs(
    d: Data, vectors: Mapping[str, object], params, store: RunStore, *, device="auto"
) -> dict[str, RunResult]:
    """Tables 1-2: the text model with each embedding, trained on the training split (best
    validation epoch kept), scored on training, validation and test cases."""
    out = {}
    for name in EMBEDDINGS:
        kv = vectors[name]
        weights, coverage = models.embedding_matrix(d.vocab, kv, seed=int(params["seed"]))
        source = str(params.get("glove_path") or GENERIC_CORPUS) if name == "generic" else "reports"
        config = _config(params, TEXT_KEYS, run=f"text-{name}", source=source,
                         lr=params["text_lr"], epochs=params["text_epochs"])  # fmt: skip

        def work(ckpt: Path, weights=weights, coverage=coverage) -> dict:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(params["seed"]))
                model = text_model(len(d.vocab), weights, params)
            history = _fit(
                model, d.split("train", ["text"]), d.split("val", ["text"]),
                lr=params["text_lr"], epochs=params["text_epochs"], params=params, ckpt=ckpt,
                device=device,
            )  # fmt: skip
            acc = {s: _accuracy(model, d.split(s, ["text"]), params, device) for s in
                   ("train", "val", "test")}  # fmt: skip
            test = acc["test"][1]
            return {
                "metrics": {s: a for s, (a, _) in acc.items()} | {"coverage": coverage},
                "predictions": {"probs": test.probs, "labels": test.labels},
                "history": history,
                "model": model,
            }

        out[name] = store.get_or_run(f"text-{name}", config, d.fingerprint, work)
    return out


def train_image_runs(
    d: Data, params, store: RunStore, pretrain_key: str, *, device="auto"
) -> dict[str, RunResult]:
    """Figure 4: the image model fine-tuned from the ChestX-ray14 encoder and from the
    alternative, validation accuracy after every epoch (best validation epoch kept)."""
    out = {}
    inits = {"chestxray14": pretrain_key, alternative_name(params): params.get("image_weights")}
    for init, source in inits.items():
        config = _config(params, IMAGE_KEYS, run=f"image-{init}", source=source,
                         lr=params["image_lr"], epochs=params["image_epochs"])  # fmt: skip

        def work(ckpt: Path, init=init) -> dict:
            enc = (
                chestxray14_encoder(store, pretrain_key, params)
                if init == "chestxray14"
                else alternative_encoder(params)
            )
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(params["seed"]))
                model = image_model(enc, params)
            history = _fit(
                model, d.split("train", ["image"]), d.split("val", ["image"]),
                lr=params["image_lr"], epochs=params["image_epochs"], params=params, ckpt=ckpt,
                device=device,
            )  # fmt: skip
            acc, test = _accuracy(model, d.split("test", ["image"]), params, device)
            return {
                "metrics": {"test": acc, "best_epoch": history.best_epoch},
                "predictions": {"probs": test.probs, "labels": test.labels},
                "history": history,
                "model": model,
            }

        out[init] = store.get_or_run(f"image-{init}", config, d.fingerprint, work)
    return out


def split_grid(params: Mapping[str, object]) -> list[tuple[str, float, int, int]]:
    """Figure 5's runs: (learning-rate name, value, split, epochs) for every split."""
    return [
        (name, float(params[f"lr_{name}"]), k, int(params[f"epochs_{name}"]))
        for name in LRS
        for k in range(int(params[f"splits_{name}"]))
    ]


@dataclass(frozen=True)
class SplitRun:
    """One Figure 5 run: a model kind fine-tuned at one learning rate on one stratified split.

    ``keys`` holds the run keys of the split's text and image runs, whose trained encoders a
    multimodal run starts from."""

    lr_name: str
    lr: float
    split: int
    epochs: int
    kind: str
    train: np.ndarray
    held_out: np.ndarray
    keys: tuple[tuple[str, str], ...] = ()

    @property
    def name(self) -> str:
        return f"split-{self.lr_name}-{self.split}-{self.kind}"

    def sibling(self, kind: str) -> str:
        return f"split-{self.lr_name}-{self.split}-{kind}"


def _split_work(run: SplitRun, d: Data, weights, params, store, pretrain_key, device):
    """The ``work`` of one :class:`SplitRun` for :meth:`mmcxr.runs.RunStore.get_or_run`."""

    def work(ckpt: Path) -> dict:
        keys = dict(run.keys)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(params["seed"]) + run.split)
            if run.kind == "text":
                model = text_model(len(d.vocab), weights, params)
            elif run.kind == "image":
                model = image_model(chestxray14_encoder(store, pretrain_key, params), params)
            else:
                t = store.load_model(
                    run.sibling("text"), keys["text"], text_model(len(d.vocab), None, params)
                )
                backbone = models.image_encoder(str(params["image_backbone"]))
                i = store.load_model(
                    run.sibling("image"), keys["image"], image_model(backbone, params)
                )
                model = multimodal_model(t.text_encoder, i.image_encoder, params)
        history = _fit(
            model, d.dataset(run.train, [run.kind]), d.dataset(run.held_out, [run.kind]),
            lr=run.lr, epochs=run.epochs, params=params, ckpt=ckpt, device=device,
            restore_best=False,
        )  # fmt: skip
        acc = history.table["val_accuracy"]
        return {
            "metrics": {"mean_accuracy": float(acc.mean()), "last": float(acc.iloc[-1])},
            "history": history,
            "model": model if run.kind != "multimodal" else None,
        }

    return work


def train_split_runs(
    d: Data, custom: object, params, store: RunStore, pretrain_key: str, *, device="auto"
) -> dict[tuple[str, int, str], RunResult]:
    """Figure 5 / Table 3. On every stratified split and at both learning rates: the text model
    (custom embedding) and the image model (ChestX-ray14 encoder) are fine-tuned, then the
    multimodal model is built from their trained encoders (section 2) and fine-tuned the same
    way. Accuracy on the held-out part after every epoch; no epoch is selected on it."""
    labels = d.cohort.table["label"].to_numpy()
    weights, _ = models.embedding_matrix(d.vocab, custom, seed=int(params["seed"]))
    out: dict[tuple[str, int, str], RunResult] = {}
    grid = split_grid(params)
    n_max = max(int(params["splits_high"]), int(params["splits_low"]))
    splits = stratified_splits(
        labels, n_max, float(params["holdout_fraction"]), int(params["seed"])
    )
    bar = tqdm(total=3 * len(grid), desc="split runs", unit="run")
    for lr_name, lr, k, epochs in grid:
        tr, te = splits[k]
        base = _config(
            params, sorted(set(TEXT_KEYS) | set(IMAGE_KEYS)), lr=lr, epochs=epochs, split=k,
            holdout=params["holdout_fraction"], pretrain=pretrain_key,
        )  # fmt: skip
        keys: dict[str, str] = {}
        for kind in ("text", "image", "multimodal"):
            config = base | {"model": kind}
            run = SplitRun(lr_name, lr, k, epochs, kind, tr, te, tuple(keys.items()))
            keys[kind] = run_key(config, d.fingerprint)
            work = _split_work(run, d, weights, params, store, pretrain_key, device)
            bar.set_postfix_str(run.name)
            out[(lr_name, k, kind)] = store.get_or_run(run.name, config, d.fingerprint, work)
            bar.update()
    bar.close()
    return out


def split_histories(runs: Mapping[tuple[str, int, str], RunResult]) -> pd.DataFrame:
    """Every Figure 5 run's per-epoch held-out accuracy: ``lr, split, model, epoch, accuracy``."""
    parts = [
        r.history[["epoch", "val_accuracy"]]
        .rename(columns={"val_accuracy": "accuracy"})
        .assign(lr=lr, split=k, model=kind)
        for (lr, k, kind), r in runs.items()
    ]
    return pd.concat(parts, ignore_index=True)[["lr", "split", "model", "epoch", "accuracy"]]


def load_model(run: RunResult, model):
    """Weights of a finished run (saved as ``model.pt`` in its folder) into ``model``."""
    model.load_state_dict(torch.load(run.path / "model.pt", map_location="cpu", weights_only=True))
    return model.eval()


# --------------------------------------------------------------------------------------------
# detection (section 3.1) and text explanations (section 3.2)


def _truth_by_key(gt: pd.DataFrame) -> pd.DataFrame:
    """The ground truth indexed by the id both OpenI editions share (``image_key``): the
    Kaggle edition names images differently from the XML ids the ground truth records."""
    from mmcxr.data.openi import image_key

    return gt.set_index(gt["image_id"].map(lambda v: image_key(v) or v))


def _keys(rows: pd.DataFrame) -> pd.Series:
    from mmcxr.data.openi import image_key

    return rows["image_id"].map(lambda v: image_key(v) or v)


def lesion_masks(rows: pd.DataFrame, gt: pd.DataFrame, cache, size: int) -> list[np.ndarray]:
    """Each image's planted findings as one boolean mask on the cached (letterboxed) grid.

    The ground truth's boxes are inclusive pixel corners in the source image; they are mapped
    through the cache's letterbox geometry and rounded outwards. Only synthetic roots have a
    ground truth.
    """
    box_cols = [c for c in gt.columns if c.startswith("box_")]
    truth = _truth_by_key(gt)
    out = []
    for image_id, key in zip(rows["image_id"], _keys(rows), strict=True):
        if key not in truth.index:
            raise KeyError(f"image {image_id} is not in the ground-truth table")
        g = cache.geometry(image_id)
        boxes = []
        for c in box_cols:
            b = data.parse_box(truth.at[key, c])
            if b is not None:
                x1, y1, x2, y2 = b
                bx1, by1, bx2, by2 = g.map_box((x1, y1, x2 + 1, y2 + 1))
                # outward to whole pixels: a one-pixel-thin finding must not vanish when shrunk
                boxes.append((np.floor(bx1), np.floor(by1), np.ceil(bx2), np.ceil(by2)))
        out.append(boxes_to_mask(boxes, (size, size)))
    return out


def explain_cases(cohort: Cohort, gt: pd.DataFrame | None, n: int, seed: int = 0) -> pd.DataFrame:
    """Abnormal test cases to explain, with at least one planted box when a ground truth
    exists (up to ``n``, drawn at random)."""
    test = cohort.rows("test")
    test = test[test["label"] == 1]
    if gt is not None:
        box_cols = [c for c in gt.columns if c.startswith("box_")]
        has_box = _truth_by_key(gt)[box_cols].notna().any(axis=1)
        test = test[_keys(test).map(has_box).fillna(False).astype(bool).to_numpy()]
    if len(test) == 0:
        raise ValueError("no abnormal test case with a planted finding to explain")
    return test.sample(min(n, len(test)), random_state=seed)


def attribution_maps(
    model, ds, *, ig_steps: int = 32, batch_size: int = 8
) -> dict[str, list[np.ndarray]]:
    """For each image of ``ds``: integrated gradients (black-image baseline), the plain
    gradient and Grad-CAM, each a ``(H, W)`` map of the abnormal logit."""
    black = (0.0 - IMAGE_MEAN) / IMAGE_STD  # the letterbox's padding, after normalisation
    maps: dict[str, list[np.ndarray]] = {m: [] for m in METHODS}
    model = model.eval()
    for start in range(0, len(ds), batch_size):
        batch = torch.utils.data.default_collate(
            [ds[i] for i in range(start, min(len(ds), start + batch_size))]
        )
        batch = {"image": batch["image"]}
        ig = explain.integrated_gradients_image(model, batch, baseline=black, n_steps=ig_steps)
        grad = explain.gradient_image(model, batch)
        cam = explain.grad_cam_image(model, batch, cam_layer(model))
        for name, a in zip(METHODS, (ig.attributions, grad, cam), strict=True):
            maps[name] += [m.sum(0).numpy() for m in a]
    return maps


def mesh_words(mesh_major: object) -> set[str]:
    """The words of a report's MeSH headings (qualifiers after ``/`` dropped): what the report
    was coded as showing, e.g. ``Pleural Effusion/right`` -> {"pleural", "effusion"}."""
    if not isinstance(mesh_major, str):
        return set()
    heads = [t.split("/")[0] for t in mesh_major.split(";")]
    return {w for h in heads for w in models.words(h)} - {"normal"}


def explain_texts(model, d: Data, rows: pd.DataFrame) -> pd.DataFrame:
    """Section 3.2 for ``rows`` of the cohort: per-word scores (squared gradient summed over
    each word's embedding row, normalised), the top word and whether a MeSH heading names it.

    One row per case: ``image_id, label, prob, words, scores, top_word, top_hit, chance``
    (``chance``: the share of the report's words that are MeSH heading words, the hit rate of
    a word picked at random).
    """
    idx = [int(np.flatnonzero(d.cohort.table["image_id"] == k)[0]) for k in rows["image_id"]]
    ids = d.tokens[torch.as_tensor(idx)]
    batch = {"token_ids": ids, "attention_mask": (ids != 0).long()}
    model = model.eval()
    scores = explain.token_gradient_scores(
        model, batch, model.text_encoder.embedding, ids_key="token_ids"
    )
    with torch.no_grad():
        probs = torch.sigmoid(model({"token_ids": ids})).numpy()
    out = []
    for j, (_, row) in enumerate(rows.iterrows()):
        n = int((ids[j] != 0).sum())
        ws = [d.vocab.itos[int(t)] for t in ids[j, :n]]
        s = scores[j, :n].numpy()
        target = mesh_words(row.get("mesh_major"))
        top = ws[int(np.argmax(s))] if n else ""
        out.append(
            {
                "image_id": row["image_id"],
                "label": int(row["label"]),
                "prob": float(probs[j]),
                "words": ws,
                "scores": s,
                "top_word": top,
                "top_hit": float(top in target),
                "chance": float(np.mean([w in target for w in ws])) if n else np.nan,
            }
        )
    return pd.DataFrame(out)


def localisation(
    maps: Mapping[str, Sequence[np.ndarray]],
    masks: Sequence[np.ndarray] | None,
    thresholds: Sequence[float],
    *,
    tolerance: int = 0,
    **circle_kwargs: object,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The sensitivity sweep against the planted lesions (:func:`mmcxr.explain.sensitivity_sweep`);
    a real root has no lesion masks, and then both tables are empty (the page says so)."""
    if masks is None:
        cols = ["method", "threshold", "image", "hit", "n_circles", "true_circles",
                "false_circles", "covered", "precision"]  # fmt: skip
        return pd.DataFrame(columns=cols), pd.DataFrame(columns=["method", "image", "pointing"])
    return explain.sensitivity_sweep(maps, masks, thresholds, tolerance=tolerance, **circle_kwargs)


def multimodal_summary(d: Data, params: Mapping[str, object]) -> pd.DataFrame:
    """Layers, output shapes and parameter counts of the multimodal model on two test cases
    (:func:`mmcxr.models.model_summary`), with freshly initialised encoders."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(params["seed"]))
        t = text_model(len(d.vocab), None, params)
        i = image_model(models.image_encoder(str(params["image_backbone"])), params)
        model = multimodal_model(t.text_encoder, i.image_encoder, params)
    test = d.split("test")
    batch = torch.utils.data.default_collate([test[j] for j in range(2)])
    return models.model_summary(model, batch, depth=2)


def cam_grid(model, image_size: int) -> int:
    """Cells a side of the map Grad-CAM reads (:func:`cam_layer`) for a square image."""
    grid: list[int] = []
    hook = cam_layer(model).register_forward_hook(lambda m, i, o: grid.append(o.shape[-1]))
    try:
        with torch.no_grad():
            model.eval()({"image": torch.zeros(1, 1, image_size, image_size)})
    finally:
        hook.remove()
    return grid[0]
