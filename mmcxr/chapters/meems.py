"""The MEEMS chapter (Cooper & Vainio, paper 000): cohort, four splits, and its seven runs.

The notebook ``notebooks/meems-hidden-stratification.py`` tells the story; this module holds
the paper's recipe only. Generic pieces live in shared modules: the captioner, beam search,
caption metrics and the embedder (:mod:`mmcxr.models.captioner`), image encoders
(:mod:`mmcxr.models.image`), the training loop (:mod:`mmcxr.train`), run reuse
(:mod:`mmcxr.runs`) and the row-share patient split (:mod:`mmcxr.data.splits`).

The runs, each keyed by the parameters it depends on so that finished runs are reused:

1. ``extractor`` -- the ResNet trained on D_captioning (14 labels), then frozen;
2. ``features`` -- its pooled vector and attention-stage map for every image;
3. ``captioner`` -- Show, Attend and Tell on D_captioning (Word2Vec-initialised embeddings);
4. ``captions`` -- beam-search captions, attention and hidden state for every image;
5. ``meems-<task>`` -- embedder + embedding classifier on D_embedding (binary, 14-label);
6. ``baseline-<task>`` -- the ResNet trained on raw D_embedding images (binary, 14-label).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from mmcxr import data, models, train
from mmcxr.chapters import meems_reference as reference
from mmcxr.data.splits import patient_split_shares
from mmcxr.labels import CHEXPERT_LABELS
from mmcxr.models import captioner as cap
from mmcxr.params import Param, common, shared, synthetic
from mmcxr.runs import fingerprint_table
from mmcxr.runs import image_cache_dir as _cache_dir

SLUG = "meems-hidden-stratification"
PAPER = (
    "Cooper & Vainio, Multimodal Semantic Embeddings to Reduce Hidden Stratification in "
    "Medical Imaging Data (shared/papers/000_e6028d3d5c486beb.txt)"
)
LABELS: list[str] = list(CHEXPERT_LABELS)
SPLITS = ("captioning", "embedding", "val", "test")
TASKS = ("binary", "14-label")
MODELS = ("baseline", "meems")

PARAMETERS: dict[str, Param] = {
    **common(formats=("mimic-cxr",)),
    **synthetic(image_difficulty=True),
    "split_shares": Param("list", items="float", length=4, low=0, high=1),
    "image_size": Param("int", low=32, high=1024),
    "image_backbone": Param("str"),
    "attention_stage": Param("str", choices=("layer2", "layer3", "layer4")),
    "extractor_epochs": Param("int", low=1),
    "baseline_epochs": Param("int", low=1),
    "vocab_size": Param("int", low=10),
    "max_words": Param("int", low=4),
    "word_dim": Param("int", low=4),
    "word_vectors": Param("str", optional=True, doc="a local word2vec-format file"),
    "decoder_dim": Param("int", low=4),
    "attention_dim": Param("int", low=4),
    "caption_epochs": Param("int", low=1),
    "caption_lr": Param("float", low=0, high=1),
    "caption_sample": Param("int", low=1),
    "beam": Param("int", low=1),
    "embed_dims": Param("list", items="int", length=2, low=1),
    "classifier_hidden": Param("int", low=1),
    "classifier_epochs": Param("int", low=1),
    "batch_size": Param("int", low=1),
    "plateau_patience": Param("int", low=1),
    "slice_clusters": Param("int", low=2),
    "n_bootstrap": Param("int", low=0),
    **shared("lr", "patience", "claim_tol"),
}


# --------------------------------------------------------------------------------------------
# the cohort


@dataclass
class Cohort(data.SplitCohort):
    """Frontal image-report pairs with 14 labels, the binary label and the four splits.

    ``table``: the loader's columns plus ``text`` (findings and impression merged),
    ``finding`` (1 unless No Finding = 1.0), one 0/1 column ``y_<label>`` per CheXpert label
    (1.0 positive; uncertain and blank count as 0, the "U-zeros" reading) and ``split``.
    """

    SPLITS = SPLITS

    def targets(self, task: str, split: str | None = None) -> np.ndarray:
        """``(N,)`` Finding labels or ``(N, 14)`` label matrix of a split (all rows: None)."""
        t = self.table if split is None else self.rows(split)
        if task == "binary":
            return t["finding"].to_numpy(dtype=np.float32, copy=True)  # writable for torch
        if task == "14-label":
            return t[[f"y_{c}" for c in LABELS]].to_numpy(dtype=np.float32, copy=True)
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")


def build_cohort(images: pd.DataFrame, *, shares: Mapping[str, float], seed: int = 0) -> Cohort:
    """The paper's data from :func:`mmcxr.data.load_mimic_cxr`: frontal image-report pairs,
    split by patient into D_captioning, D_embedding, D_val and D_test in ``shares`` of images.

    The paper does not say it kept frontal films only; a lateral film's report describes the
    same chest, but its attention maps would not be comparable, so laterals are left out.
    """
    missing = [
        c for c in ("subject_id", "dicom_id", "view", "findings", "impression") if c not in images
    ]
    if missing:
        raise ValueError(f"the image table lacks columns {missing}")
    if set(shares) != set(SPLITS):
        raise ValueError(f"shares must name {SPLITS}, got {sorted(shares)}")
    flow = data.CohortFlow(images, "images in the release")
    df = flow.apply("frontal (PA or AP)", data.frontal_only)
    text = (df["findings"].fillna("") + " " + df["impression"].fillna("")).str.strip()
    df = flow.record("with findings or impression text", df.assign(text=text)[text != ""])
    if len(df) < 8:
        raise ValueError(f"only {len(df)} frontal images with report text: too few to split")
    df = df.reset_index(drop=True)
    for c in LABELS:
        df[f"y_{c}"] = (df[c] == 1.0).astype(np.float32) if c in df else np.float32(0)
    df["finding"] = (df["No Finding"] != 1.0).astype(np.float32)
    df["split"] = patient_split_shares(df, dict(shares), seed).to_numpy()
    df.attrs = {}
    return Cohort(table=df, flow=flow.table)


def split_table(cohort: Cohort) -> pd.DataFrame:
    """Our four splits beside the paper's: images, patients, share and finding rate."""
    paper = reference.SPLITS
    total = sum(paper.values())
    rows = []
    for s in SPLITS:
        part = cohort.rows(s)
        rows.append({
            "split": f"D_{s}", "images": len(part), "patients": part["subject_id"].nunique(),
            "share": len(part) / len(cohort.table), "with findings": float(part["finding"].mean()),
            "paper images": paper[s], "paper share": paper[s] / total,
        })  # fmt: skip
    return pd.DataFrame(rows).set_index("split")


def data_fingerprint(cohort: Cohort, cache) -> str:
    """What every run is trained and tested on: the cohort table and the cached pixels."""
    cols = ["dicom_id", "subject_id", "split", "text", "finding"]
    table = fingerprint_table(cohort.table, cols + [f"y_{c}" for c in LABELS])
    return hashlib.sha256(f"{table}:{cache.manifest.get('sha256')}".encode()).hexdigest()


def image_cache_dir(out_dir: Path, cohort: Cohort, size: int) -> Path:
    """A cache folder per cohort and size, so a changed cohort never meets a stale cache."""
    return _cache_dir(out_dir, cohort.table, ["dicom_id", "path"], size)


# --------------------------------------------------------------------------------------------
# what identifies each run

_KEYS = {
    "extractor": ("seed", "image_size", "image_backbone", "extractor_epochs", "batch_size", "lr",
                  "patience", "plateau_patience"),
    "captioner": ("attention_stage", "vocab_size", "max_words", "word_dim", "word_vectors",
                  "decoder_dim", "attention_dim", "caption_epochs", "caption_lr", "caption_sample",
                  "beam"),
    "meems": ("embed_dims", "classifier_hidden", "classifier_epochs"),
    "baseline": ("seed", "image_size", "image_backbone", "baseline_epochs", "batch_size", "lr",
                 "patience", "plateau_patience"),
}  # fmt: skip


def run_config(stage: str, params: Mapping[str, object], task: str | None = None) -> dict:
    """Parameters a run depends on: its own and those of every run it reads from."""
    chain = {"extractor": ["extractor"], "features": ["extractor"],
             "captioner": ["extractor", "captioner"], "captions": ["extractor", "captioner"],
             "meems": ["extractor", "captioner", "meems"], "baseline": ["baseline"]}  # fmt: skip
    if stage not in chain:
        raise ValueError(f"unknown stage {stage!r}")
    keys = [k for part in chain[stage] for k in _KEYS[part]]
    missing = [k for k in keys if k not in params]
    if missing:
        raise KeyError(f"run_config: parameters {missing} are not set")
    return {"stage": stage, "task": task, **{k: params[k] for k in keys}}


# --------------------------------------------------------------------------------------------
# image models


def _fit_kwargs(params: Mapping[str, object], epochs: int, device: str) -> dict:
    return dict(
        loss="bce", epochs=epochs, batch_size=int(params["batch_size"]), lr=float(params["lr"]),
        schedule="plateau", patience=int(params["patience"]), seed=int(params["seed"]),
        schedule_kwargs={"factor": 0.1, "patience": int(params["plateau_patience"])},
        device=device, progress=False,
    )  # fmt: skip


def image_dataset(cohort: Cohort, cache, task: str, split: str) -> data.MultimodalDataset:
    rows = cohort.rows(split)
    return data.MultimodalDataset(
        cohort.targets(task, split), images=cache, image_keys=rows["dicom_id"].tolist()
    )


def image_classifier(params: Mapping[str, object], n_outputs: int) -> models.Classifier:
    """The paper's ResNet with a linear head (``image_backbone``: resnet50 in the paper)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(params["seed"]))
        enc = models.image_encoder(str(params["image_backbone"]))
        return models.build_classifier("image", enc, n_outputs=n_outputs, proj_dim=enc.out_dim)


def train_image_model(stage, task, params, cohort, cache, store, data_fp, *, device="auto"):
    """The feature extractor (``stage="extractor"``: 14 labels on D_captioning) or a baseline
    (D_embedding, ``task``), validated on D_val; a baseline is scored on D_test, with its
    pooled test features kept for slice discovery."""
    train_split = "captioning" if stage == "extractor" else "embedding"
    epochs = int(params["extractor_epochs" if stage == "extractor" else "baseline_epochs"])
    n_out = 1 if task == "binary" else len(LABELS)

    def work(ckpt: Path) -> dict:
        model = image_classifier(params, n_out)
        history = train.fit(model, image_dataset(cohort, cache, task, train_split),
                            image_dataset(cohort, cache, task, "val"), checkpoint_dir=ckpt,
                            **_fit_kwargs(params, epochs, device))  # fmt: skip
        out = {"metrics": {"best_epoch": history.best_epoch, "epochs_run": len(history.table)},
               "history": history, "model": model}  # fmt: skip
        if stage == "baseline":
            test = image_dataset(cohort, cache, task, "test")
            pred = train.predict(model, test, device=device, progress=False)
            feats = encode_images(model.image_encoder, cache, cohort.rows("test")["dicom_id"])[0]
            out["predictions"] = {"probs": pred.probs, "labels": pred.labels, "features": feats}
        return out

    name = "extractor" if stage == "extractor" else f"baseline-{task}"
    return store.get_or_run(name, run_config(stage, params, task), data_fp, work)


@torch.no_grad()
def encode_images(encoder, cache, keys, stage: str | None = None, batch: int = 64):
    """Pooled features ``(N, D)`` and, with ``stage``, the map ``(N, C, h, w)`` of each image."""
    encoder.eval()
    ds = data.MultimodalDataset(np.zeros(len(keys)), images=cache, image_keys=list(keys))
    pooled, maps = [], []
    for b in torch.utils.data.DataLoader(ds, batch_size=batch):
        p, m = encoder.forward_features(b["image"], stage)
        pooled.append(p.numpy())
        maps.append(m.numpy() if stage else np.zeros((len(p), 0), np.float32))
    return np.concatenate(pooled), np.concatenate(maps)


def extract_features(params, cohort, cache, store, data_fp):
    """The frozen extractor's pooled features and attention-stage maps for every image."""

    def work(ckpt: Path) -> dict:
        key = _key("extractor", params, data_fp, "14-label")
        model = store.load_model("extractor", key, image_classifier(params, len(LABELS)))
        pooled, maps = encode_images(model.image_encoder, cache, cohort.table["dicom_id"],
                                     str(params["attention_stage"]))  # fmt: skip
        return {"metrics": {"n": len(pooled)},
                "predictions": {"pooled": pooled, "maps": maps.astype(np.float32)}}  # fmt: skip

    cfg = {**run_config("features", params), "attention_stage": params["attention_stage"]}
    return store.get_or_run("features", cfg, data_fp, work)


def _key(stage: str, params, data_fp: str, task: str | None = None) -> str:
    from mmcxr.runs import run_key

    return run_key(run_config(stage, params, task), data_fp)


# --------------------------------------------------------------------------------------------
# the captioner


def regions(maps: np.ndarray) -> torch.Tensor:
    """A feature map ``(N, C, h, w)`` as ``(N, h*w, C)`` regions for the attention."""
    t = torch.from_numpy(np.asarray(maps, dtype=np.float32))
    return t.flatten(2).transpose(1, 2).contiguous()


def word_embedding(params, vocab: cap.CaptionVocab, texts) -> tuple[torch.Tensor, float]:
    """Initial word embeddings: a local word2vec-format file (BioWordVec in the paper) when
    ``word_vectors`` is given, else Word2Vec trained here on the captioning reports."""
    if params.get("word_vectors"):
        vectors = models.load_word_vectors(str(params["word_vectors"]))
    else:
        vectors = models.train_word2vec(list(texts), dim=int(params["word_dim"]),
                                        seed=int(params["seed"]), epochs=5)  # fmt: skip
    from mmcxr.models.cnn_text import WordVocab

    wv = WordVocab(vocab.itos)  # same ids: <pad>, <unk>, then <start>, <end> and the words
    mat, coverage = models.embedding_matrix(wv, vectors, seed=int(params["seed"]))
    return mat, coverage


def build_captioner(params, vocab_size: int, enc_dim: int, embedding=None) -> cap.ShowAttendTell:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(params["seed"]))
        return cap.ShowAttendTell(
            vocab_size, enc_dim, embed_dim=int(params["word_dim"]),
            dec_dim=int(params["decoder_dim"]), att_dim=int(params["attention_dim"]),
            embedding=embedding,
        )  # fmt: skip


def caption_scores(model, feats, texts, vocab, params) -> dict[str, float]:
    """Word-set IoU, BLEU-4 and label agreement of beam-search captions vs the reports."""
    out = model.generate(feats, beam=int(params["beam"]), max_len=int(params["max_words"]))
    return score_captions([vocab.decode(t) for t in out.tokens], texts, params)


def constant_caption_scores(cohort: Cohort, params, split: str = "val") -> dict[str, float]:
    """What a "captioner" that ignores the film reaches: the most common $D_{captioning}$
    report (its first ``max_words`` words) written for every film of ``split``. A captioner
    whose scores do not beat these has learnt the reports' phrasing, not the films."""
    words = cohort.rows("captioning")["text"].map(
        lambda t: " ".join(cap.caption_words(t)[: int(params["max_words"])])
    )
    common = str(words.value_counts().index[0]).split()
    texts = cohort.rows(split)["text"].tolist()
    return score_captions([common] * len(texts), texts, params)


def score_captions(gen: list[list[str]], texts, params) -> dict[str, float]:
    """IoU, BLEU-4 and label agreement of generated word lists against the reports' first
    ``max_words`` words."""
    from mmcxr.synth.labeler import label_text

    ref = [cap.caption_words(t)[: int(params["max_words"])] for t in texts]
    return {
        "iou": float(np.mean([cap.word_iou(g, r) for g, r in zip(gen, ref, strict=True)])),
        "bleu4": cap.bleu4(ref, gen),
        "label_agreement": cap.label_agreement(
            [" ".join(g) for g in gen], [" ".join(r) for r in ref], label_text, LABELS
        ),
    }


def train_captioner(params, cohort, features, store, data_fp, *, device="auto"):
    """Show, Attend and Tell on D_captioning, validated on D_val (through
    :func:`mmcxr.train.fit`, so an interrupted run resumes), with the Figure 3 numbers (IoU,
    BLEU-4, label agreement) on seeded samples of ``caption_sample`` images per epoch."""
    t = cohort.table
    maps = features.predictions["maps"]
    texts = t["text"].tolist()
    idx = {s: np.flatnonzero(t["split"].to_numpy() == s) for s in SPLITS}
    rng = np.random.default_rng(int(params["seed"]))
    n = int(params["caption_sample"])
    sample = {s: rng.permutation(idx[s])[:n] for s in ("captioning", "val")}

    def work(ckpt: Path) -> dict:
        vocab = cap.CaptionVocab.build([texts[i] for i in idx["captioning"]],
                                       max_size=int(params["vocab_size"]))  # fmt: skip
        emb, coverage = word_embedding(params, vocab, [texts[i] for i in idx["captioning"]])
        tokens = vocab.encode(texts, int(params["max_words"]))
        feats = regions(maps)

        def ds(split):
            i = torch.from_numpy(idx[split])
            return cap.caption_dataset(feats[i], tokens[i])

        model = build_captioner(params, len(vocab), feats.shape[2], emb)

        def per_epoch(m):
            row = {}
            for s, name in (("captioning", "train"), ("val", "val")):
                sc = caption_scores(
                    m, feats[sample[s]], [texts[i] for i in sample[s]], vocab, params
                )
                row.update({f"{name}_{k}": v for k, v in sc.items()})
            return row

        history = cap.fit_captioner(
            model, ds("captioning"), ds("val"), epochs=int(params["caption_epochs"]),
            batch_size=int(params["batch_size"]), lr=float(params["caption_lr"]),
            plateau_patience=int(params["plateau_patience"]), patience=int(params["patience"]),
            seed=int(params["seed"]), epoch_metrics=per_epoch, checkpoint_dir=ckpt,
            device=device,
        )  # fmt: skip
        out = model.generate(feats, beam=int(params["beam"]), max_len=int(params["max_words"]))
        n_alpha = max(len(a) for a in out.alphas)
        alphas = np.zeros((len(texts), n_alpha, feats.shape[1]), np.float32)
        for i, a in enumerate(out.alphas):
            alphas[i, : len(a)] = a
        captions = np.array([" ".join(vocab.decode(tk)) for tk in out.tokens])
        return {
            "metrics": {"best_epoch": history.best_epoch, "epochs_run": len(history.table),
                        "coverage": coverage, "vocab": vocab.itos},
            "history": history,
            "predictions": {"hidden": out.hidden.numpy(), "captions": captions,
                            "alphas": alphas, "scores": out.scores},
        }  # fmt: skip

    return store.get_or_run("captioner", run_config("captions", params), data_fp, work)


# --------------------------------------------------------------------------------------------
# MEEMS: embedder + embedding classifier


class Meems(torch.nn.Module):
    """The multimodal embedder (concatenated image features and captioner hidden state ->
    ``embed_dims``, 1,000 -> 200 in the paper) and the embedding classifier (200 -> 50 ->
    out), trained together on a classification task."""

    def __init__(self, in_dim: int, embed_dims, hidden: int, n_out: int) -> None:
        super().__init__()
        d1, d2 = embed_dims
        self.embedder = torch.nn.Sequential(
            torch.nn.LayerNorm(in_dim), torch.nn.Linear(in_dim, d1), torch.nn.ReLU(),
            torch.nn.Linear(d1, d2),
        )  # fmt: skip
        self.classifier = torch.nn.Sequential(
            torch.nn.ReLU(), torch.nn.Linear(d2, hidden), torch.nn.ReLU(),
            torch.nn.Linear(hidden, n_out),
        )  # fmt: skip
        self.n_out = n_out

    def embed(self, batch) -> torch.Tensor:
        return self.embedder(batch["vector"].float())

    def forward(self, batch) -> torch.Tensor:
        out = self.classifier(self.embed(batch))
        return out.squeeze(1) if self.n_out == 1 else out


def meems_vectors(features, captions) -> np.ndarray:
    """Image features and captioner hidden state, concatenated (2,560 numbers in the paper)."""
    return np.concatenate([features.predictions["pooled"], captions.predictions["hidden"]], 1)


def train_meems(task, params, cohort, vectors, store, data_fp, *, device="auto"):
    """One MEEMS classifier on D_embedding vectors, validated on D_val, scored on D_test; the
    test embeddings (200-d) are kept for the PCA, the probe and slice discovery."""
    split = cohort.table["split"].to_numpy()
    x = torch.from_numpy(vectors.astype(np.float32))
    n_out = 1 if task == "binary" else len(LABELS)

    def ds(s):
        i = np.flatnonzero(split == s)
        return data.MultimodalDataset(cohort.targets(task, s), text={"vector": x[i]})

    def work(ckpt: Path) -> dict:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(params["seed"]))
            model = Meems(x.shape[1], params["embed_dims"], int(params["classifier_hidden"]), n_out)
        history = train.fit(
            model,
            ds("embedding"),
            ds("val"),
            checkpoint_dir=ckpt,
            **_fit_kwargs(params, int(params["classifier_epochs"]), device),
        )
        test = ds("test")
        pred = train.predict(model, test, device=device, progress=False)
        with torch.no_grad():
            emb = model.embed({"vector": test.text["vector"]}).numpy()
            all_emb = model.embed({"vector": x}).numpy()
        return {"metrics": {"best_epoch": history.best_epoch, "epochs_run": len(history.table)},
                "history": history,
                "predictions": {"probs": pred.probs, "labels": pred.labels, "features": emb,
                                "embedding_all": all_emb}}  # fmt: skip

    return store.get_or_run(f"meems-{task}", run_config("meems", params, task), data_fp, work)


def histories(runs: Mapping[str, object]) -> pd.DataFrame:
    """Per-epoch training histories of the classifier runs, one table (``run`` column)."""
    parts = [r.history.assign(run=n) for n, r in runs.items() if r.history is not None]
    return pd.concat(parts, ignore_index=True)
