"""The alignment chapter ("That's the Wrong Lung!", paper 004): its corpora, gold set, five
models and the evaluation of their attention against the gold boxes.

The notebook ``notebooks/alignment-interpretability.py`` tells the story; this module holds
the paper's recipe only. The shared pieces: the GLoRIA-style encoder pair and its losses
(:mod:`mmcxr.models.gloria`), sentences, masking, synthetic sentences, perturbations and the
batched localisation metrics (:mod:`mmcxr.alignment`), the small BERT pretrained on the
reports (:mod:`mmcxr.pretrain`), the training loop (:mod:`mmcxr.train`) and run reuse
(:mod:`mmcxr.runs`).

* :func:`build_corpus` -- the frontal images of ImaGenome's silver train/valid splits and
  their report sentences, each marked abnormal when the silver scene graph says so;
* :func:`build_gold` -- the gold set as (image, sentence) instances with the paper's subsets
  and the draws of every perturbation;
* :func:`train_models` -- the five models of section 4.1 (trained, or reused when finished);
* :func:`evaluate` / :func:`instance_table` -- attention, similarities and localisation
  scores of every model, instance, sentence kind and perturbation.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from mmcxr import alignment as al
from mmcxr import data, models, train
from mmcxr.chapters import alignment_reference as reference
from mmcxr.localization import sample_negatives
from mmcxr.models import gloria
from mmcxr.params import Param, common, shared, synthetic
from mmcxr.runs import canonical_json, fingerprint_table, run_key
from mmcxr.runs import image_cache_dir as _cache_dir

SLUG = "alignment-interpretability"
PAPER = (
    "anonymous ACL submission, That's the Wrong Lung! Evaluating and Improving the "
    "Interpretability of Unsupervised Multimodal Encoders for Medical Data "
    "(shared/papers/004_c2f9737dcadaeb0b.txt)"
)
MODELS = reference.MODELS
MODEL_NAMES = reference.MODEL_NAMES
SUBSETS = reference.SUBSETS
#: (sentences, perturbation) conditions scored; the first of each kind is its baseline.
CONDITIONS = (
    ("real", "none"), ("real", "swap_left_right"), ("real", "shuffle_bboxes"),
    ("real", "random_sentences"), ("real", "random_bboxes"),
    ("synthetic", "none"), ("synthetic", "swapped_conditions"),
)  # fmt: skip
PERTURBATIONS = tuple(p for _, p in CONDITIONS if p != "none")
PERTURBATION_NAMES = {
    "swap_left_right": "Swap Left Right", "shuffle_bboxes": "Shuffle BBoxes",
    "random_sentences": "Random Sentences", "random_bboxes": "Random BBoxes",
    "swapped_conditions": "Synthetic w/ Swapped Conditions",
}  # fmt: skip
TOP_K = reference.TOP_K

PARAMETERS: dict[str, Param] = {
    **common(formats=("mimic-cxr",)),
    **synthetic(),
    "imagenome_root": Param("str", optional=True, doc="a Chest ImaGenome root"),
    "gloria_synth_n": Param("int", low=1),
    "gloria_no_finding": Param("float", low=0.0, high=1.0),
    "gloria_checkpoint": Param("str", optional=True, doc="GLoRIA's released weights"),
    "gold_images": Param("int", optional=True, low=2),
    "image_size": Param("int", low=32, high=1024),
    "image_backbone": Param("str"),
    "image_weights": Param("str", optional=True, doc="a local state dict"),
    "local_stage": Param("str", choices=("layer1", "layer2", "layer3")),
    "bert_path": Param("str", optional=True, doc="a local BERT folder"),
    "max_length": Param("int", low=8, high=512),
    "vocab_size": Param("int", low=100),
    "bert_hidden": Param("int", low=8),
    "bert_layers": Param("int", low=1),
    "bert_heads": Param("int", low=1),
    "bert_last_layers": Param("int", low=1),
    **shared("mlm_epochs", "mlm_lr"),
    "temp1": Param("float", low=0),
    "temp2": Param("float", low=0),
    "temp3": Param("float", low=0),
    "word_softmax": Param("bool"),
    "mask_vocabulary": Param("str", choices=("findings", "findings+anatomy")),
    "batch_size": Param("int", low=2),
    "grad_clip": Param("float", low=0),
    "n_bootstrap": Param("int", low=0),
    **shared("epochs", "patience", "lr", "weight_decay", "claim_tol", "num_workers"),
}


def standin_config(no_finding: float):
    """The GLoRIA stand-in cohort's generator settings: CheXpert's share of "No Finding"
    films (8.86%) for every view, no forced pneumonia share, and no gold set (every frontal
    film trains: the stand-in is never evaluated on its own cohort)."""
    from mmcxr.synth import SynthConfig

    return SynthConfig(normal_rate_pa=no_finding, normal_rate_ap=no_finding, pneumonia_share_pa=None,
                       imagenome_gold_fraction=0.0)  # fmt: skip


# --------------------------------------------------------------------------------------------
# training corpora


@dataclass
class Corpus:
    """Training material of one release: ``images`` (``dicom_id, subject_id, study_id,
    split, no_finding``; split "train" or "valid") and ``sentences`` (``dicom_id, split,
    text, abnormal``), with the selection's ``flow``."""

    name: str
    images: pd.DataFrame
    sentences: pd.DataFrame
    flow: pd.DataFrame

    def summary(self) -> dict[str, float]:
        s, im = self.sentences, self.images
        train = s[s["split"] == "train"]
        with_abnormal = set(train.loc[train["abnormal"], "dicom_id"])
        train_images = im[im["split"] == "train"]
        return {
            "images": len(im), "train images": len(train_images), "sentences": len(s),
            "no finding share": float(im["no_finding"].mean()),
            "train images without abnormal sentence": float((~train_images["dicom_id"].isin(with_abnormal)).mean()),
            "train sentences abnormal": float(train["abnormal"].mean()),
        }  # fmt: skip


def build_corpus(images: pd.DataFrame, imagenome: Path, name: str) -> Corpus:
    """Frontal images of ImaGenome's silver train and valid splits (gold images are on its
    "avoid" list and in neither) with their FINDINGS and IMPRESSION sentences, cleaned as
    GLoRIA cleans them; a sentence is abnormal when its image's scene graph says so."""
    flow = data.CohortFlow(images, "images in the release")
    splits = data.load_imagenome_splits(imagenome)
    splits = splits[splits["split"].isin(["train", "valid"])].drop_duplicates("dicom_id")
    df = flow.apply("in ImaGenome's silver train/valid splits",
                    lambda t: t.merge(splits[["dicom_id", "split"]].rename(columns={"split": "ig_split"}),
                                      on="dicom_id"))  # fmt: skip
    rows = []
    for r in df.itertuples(index=False):
        for section in ("findings", "impression"):
            for s in al.split_sentences(getattr(r, section)):
                rows.append(
                    {"dicom_id": r.dicom_id, "split": r.ig_split, "text": al.clean_sentence(s)}
                )
    sentences = pd.DataFrame(rows, columns=["dicom_id", "split", "text"])
    df = flow.apply(
        "with a report sentence", lambda t: t[t["dicom_id"].isin(sentences["dicom_id"])]
    )
    abnormal = al.abnormal_phrases(data.SceneGraphs(imagenome), df["dicom_id"].tolist())
    sentences["abnormal"] = [
        (d, t) in abnormal for d, t in zip(sentences["dicom_id"], sentences["text"], strict=True)
    ]
    table = pd.DataFrame({
        "dicom_id": df["dicom_id"].astype(str), "subject_id": df["subject_id"],
        "study_id": df["study_id"], "path": df["path"], "split": df["ig_split"],
        "no_finding": df["No Finding"].eq(1.0) if "No Finding" in df else False,
    }).reset_index(drop=True)  # fmt: skip
    return Corpus(name, table, sentences.reset_index(drop=True), flow.table)


def mask_matcher(vocabulary: str) -> al.EntityMatcher:
    terms = al.FINDING_TERMS + (al.ANATOMY_TERMS if vocabulary == "findings+anatomy" else ())
    return al.EntityMatcher(terms)


def training_sentences(corpus: Corpus, model: str, params: Mapping[str, object]) -> pd.DataFrame:
    """The sentences a model trains on: all (``retrained``, ``gloria``), the abnormal ones
    (``abnormal``), every clinical entity masked (``masking``), or each replaced by a random
    sentence of the corpus (``randsents``: the images keep their count of sentences)."""
    s = corpus.sentences.copy()
    if model == "abnormal":
        s = s[s["abnormal"]]
    elif model == "masking":
        s["text"] = [mask_matcher(str(params["mask_vocabulary"])).mask(t) for t in s["text"]]
    elif model == "randsents":
        rng = np.random.default_rng(int(params["seed"]))
        s["text"] = s["text"].to_numpy()[rng.permutation(len(s))]
    return s.reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# the gold set


def build_gold(boxes: pd.DataFrame, sentences: pd.DataFrame, images: pd.DataFrame, *,
               max_images: int | None, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:  # fmt: skip
    """The gold (image, sentence) instances (:func:`mmcxr.alignment.gold_instances`) of the
    gold images the release holds, ``max_images`` of them drawn at random when given; with the
    counts of each step."""
    flow = data.CohortFlow(sentences.drop_duplicates("dicom_id"), "gold images")
    known = set(images["dicom_id"].astype(str)) & set(boxes["dicom_id"].astype(str))
    keep = flow.apply("image and boxes in the release", lambda t: t[t["dicom_id"].isin(known)])
    if max_images is not None and len(keep) > max_images:
        keep = flow.apply(
            f"{max_images} drawn at random", lambda t: t.sample(max_images, random_state=seed)
        )
    inst = al.gold_instances(sentences[sentences["dicom_id"].isin(set(keep["dicom_id"]))])
    meta = images.drop_duplicates("dicom_id").set_index("dicom_id")[["subject_id", "study_id"]]
    inst = inst.join(meta, on="dicom_id")
    counts = pd.DataFrame({"step": ["gold sentences (image, sentence)"], "n": [len(inst)]})
    return inst, pd.concat([flow.table, counts], ignore_index=True)


def perturb(inst: pd.DataFrame, masks: np.ndarray, seed: int) -> pd.DataFrame:
    """The draws of every perturbation (section 3.1) and the MDRB subset (section 3.2).

    ``swap``: the sentence with left and right swapped; ``shuffle_donor``: whose boxes an
    instance takes when boxes are shuffled within its report; ``sentence_donor`` and
    ``box_donor``: a random instance of another image (Random Sentences, Random BBoxes; the
    random sentence is also the "random text" of the KL divergence and the negative of the
    retrieval test); ``synthetic_swapped``: the synthetic sentence with swapped conditions;
    ``report_iou`` and ``mdrb``: mean IoU with the report's other sentences, lowest 10%.
    """
    out = inst.copy()
    out["swap"] = [al.swap_left_right(t) for t in out["text"]]
    out["shuffle_donor"] = al.permute_within(out["dicom_id"], seed)
    out["sentence_donor"] = sample_negatives(out["dicom_id"].tolist(), seed + 1)
    out["box_donor"] = sample_negatives(out["dicom_id"].tolist(), seed + 2)
    out["synthetic_swapped"] = al.swapped_conditions(out, seed + 3)
    out["report_iou"] = al.report_overlap(out["dicom_id"], masks)
    finite = out["report_iou"].dropna()
    cut = finite.quantile(0.1) if len(finite) else np.nan
    out["mdrb"] = out["report_iou"].le(cut) & out["report_iou"].notna()
    out["all"] = True
    return out


def gold_fingerprint(inst: pd.DataFrame, cache) -> str:
    cols = ["dicom_id", "text", "synthetic", "swap", "shuffle_donor", "sentence_donor", "box_donor"]
    table = fingerprint_table(
        inst.assign(conditions=inst["conditions"].map(canonical_json)), [*cols, "conditions"]
    )
    return hashlib.sha256(f"{table}:{cache.manifest.get('sha256')}".encode()).hexdigest()


def corpus_fingerprint(corpus: Corpus, cache) -> str:
    table = fingerprint_table(corpus.sentences, ["dicom_id", "split", "text", "abnormal"])
    return hashlib.sha256(f"{table}:{cache.manifest.get('sha256')}".encode()).hexdigest()


def image_cache_dir(out_dir: Path, name: str, table: pd.DataFrame, size: int) -> Path:
    """A cache folder per image set (``name``) and size, so a changed set never meets a stale
    cache (:func:`mmcxr.runs.image_cache_dir`)."""
    return _cache_dir(out_dir, table, ["dicom_id", "path"], size, name)


# --------------------------------------------------------------------------------------------
# models and runs

_TRAIN_KEYS = (
    "seed", "image_size", "image_backbone", "image_weights", "local_stage", "bert_path",
    "max_length", "vocab_size", "bert_hidden", "bert_layers", "bert_heads", "bert_last_layers",
    "mlm_epochs", "mlm_lr", "temp1", "temp2", "temp3", "word_softmax", "epochs", "patience",
    "batch_size", "lr", "weight_decay", "grad_clip",
)  # fmt: skip


def run_config(model: str, params: Mapping[str, object]) -> dict[str, object]:
    """What identifies a model's run: the model and every parameter training depends on."""
    keys = [*_TRAIN_KEYS, *(("mask_vocabulary",) if model == "masking" else ())]
    keys += ["gloria_synth_n", "gloria_no_finding"] if model == "gloria" else []
    return {"model": model, **{k: params[k] for k in keys}}


def build_model(
    params: Mapping[str, object], text_dir: Path, *, released: bool = False
) -> gloria.Gloria:
    """A GLoRIA-style model initialised from ``seed``: the BERT of ``text_dir`` and a MONAI
    ResNet (``released``: ResNet-50 with layer3 regions, the released checkpoint's shape)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(params["seed"]))
        bert = models.load_text_model(text_dir)[0].bert
        layers = min(int(params["bert_last_layers"]), int(bert.config.num_hidden_layers) + 1)
        text = gloria.GloriaTextEncoder(bert, last_n_layers=layers)
        image = gloria.GloriaImageEncoder(
            "resnet50" if released else str(params["image_backbone"]), text.out_dim,
            "layer3" if released else str(params["local_stage"]),
            None if released else params["image_weights"],
        )  # fmt: skip
        return gloria.Gloria(image, text, temp1=float(params["temp1"]), temp2=float(params["temp2"]),
                             temp3=float(params["temp3"]), word_softmax=bool(params["word_softmax"]))  # fmt: skip


def datasets(corpus: Corpus, sentences: pd.DataFrame, cache, tokenizer, params):
    """``(train, valid or None)`` :class:`~mmcxr.alignment.SentenceImageDataset` s.

    A batch of one image has no negative, so no contrastive signal (and breaks BatchNorm on
    a 1 x 1 map): when the training images would leave one alone in the last batch, the
    last of them (in ``dicom_id`` order) is left out."""
    tokens = al.tokenize_words(tokenizer, sentences["text"].tolist(), int(params["max_length"]))
    out = []
    for split in ("train", "valid"):
        rows = sentences[sentences["split"] == split]
        groups = rows.groupby("dicom_id", sort=True).indices
        keys = sorted(groups)
        if split == "train" and len(keys) > 1 and len(keys) % int(params["batch_size"]) == 1:
            keys = keys[:-1]
        if not keys:
            out.append(None)
            continue
        out.append(al.SentenceImageDataset(
            cache, keys, tokens, [rows.index.to_numpy()[groups[k]] for k in keys],
            draw=split == "train", seed=int(params["seed"]),
        ))  # fmt: skip
    if out[0] is None:
        raise ValueError(f"{corpus.name}: no training sentence for this model")
    return out[0], out[1]


@dataclass
class Trained:
    """A model ready to evaluate: the network (final epoch's weights) and its run record."""

    name: str
    model: gloria.Gloria
    tokenizer: object
    run: object | None


def train_models(params, corpora: Mapping[str, Corpus], caches: Mapping[str, object], text_dir: Path,
                 store, *, device: str = "auto", names=MODELS) -> dict[str, Trained]:  # fmt: skip
    """Each model of section 4.1, trained through :func:`mmcxr.train.fit` (early stopping on
    validation loss with ``patience``; the last epoch's weights are kept, as the paper
    reports "the last epoch before the early stopping condition") or loaded from ``store``.
    ``gloria`` trains on the stand-in corpus, unless ``gloria_checkpoint`` gives the released
    weights (with ``bert_path`` the Bio_ClinicalBERT they were trained from)."""
    _, tokenizer = models.load_text_model(text_dir)
    out: dict[str, Trained] = {}
    for name in names:
        if name == "gloria" and params.get("gloria_checkpoint"):
            if not params.get("bert_path"):
                raise ValueError("gloria_checkpoint needs bert_path: the Bio_ClinicalBERT folder")
            net = build_model(params, Path(str(params["bert_path"])), released=True)
            gloria.load_gloria_checkpoint(net, str(params["gloria_checkpoint"]))
            out[name] = Trained(
                name, net.eval(), models.load_text_model(params["bert_path"])[1], None
            )
            continue
        corpus = corpora["gloria" if name == "gloria" else "main"]
        cache = caches[corpus.name]
        sentences = training_sentences(corpus, name, params)
        config = run_config(name, params)
        data_fp = corpus_fingerprint(corpus, cache)

        def work(ckpt: Path, sentences=sentences, cache=cache, corpus=corpus) -> dict:
            net = build_model(params, text_dir)
            train_ds, val_ds = datasets(corpus, sentences, cache, tokenizer, params)
            history = train.fit(
                net, train_ds, val_ds, loss=gloria.gloria_loss, epochs=int(params["epochs"]),
                batch_size=int(params["batch_size"]), lr=float(params["lr"]),
                weight_decay=float(params["weight_decay"]), patience=int(params["patience"]),
                grad_clip=float(params["grad_clip"]) or None, restore_best=False,
                checkpoint_dir=ckpt, seed=int(params["seed"]), device=device,
                num_workers=int(params["num_workers"]), progress=False,
            )  # fmt: skip
            metrics = {"best_epoch": history.best_epoch, "epochs_run": len(history.table),
                       "stopped_early": history.stopped_early, "train_images": len(train_ds),
                       "train_sentences": int((sentences["split"] == "train").sum())}  # fmt: skip
            return {"metrics": metrics, "history": history, "model": net}

        run = store.get_or_run(name, config, data_fp, work)
        net = store.load_model(name, run_key(config, data_fp), build_model(params, text_dir))
        out[name] = Trained(name, net.eval(), tokenizer, run)
    return out


# --------------------------------------------------------------------------------------------
# evaluation


_TEXTS = {
    "real": "text",
    "swap": "swap",
    "synthetic": "synthetic",
    "synthetic_swapped": "synthetic_swapped",
}


def evaluate(
    trained: Trained, gold: pd.DataFrame, pixels: np.ndarray, params, *, device: str = "auto"
) -> dict:
    """Sentence-averaged attention maps and similarities of one model on the gold instances:
    ``attention_<kind>`` for the real, left/right-swapped, random (another image's),
    synthetic and condition-swapped sentences, and the local and global similarity of each
    image with its own and with the random sentence."""
    from mmcxr.env import resolve_device

    net = trained.model.to(resolve_device(device))
    texts = {k: gold[c].tolist() for k, c in _TEXTS.items()}
    flat = [t for v in texts.values() for t in v]
    uniq = list(dict.fromkeys(flat))
    where = {t: i for i, t in enumerate(uniq)}
    tok = al.tokenize_words(trained.tokenizer, uniq, int(params["max_length"]))
    text_emb = al.embed_texts(net, tok)
    image_emb = al.embed_images(net, pixels, batch_size=int(params["batch_size"]))
    img = np.arange(len(gold))
    donors = gold["sentence_donor"].to_numpy()
    pairs = {k: [where[t] for t in v] for k, v in texts.items()}
    pairs["random"] = [pairs["real"][j] for j in donors]
    out = {}
    for kind, txt in pairs.items():
        s = al.paired_scores(net, image_emb, text_emb, img, txt)
        out[f"attention_{kind}"] = s["attention"].astype(np.float32)
        if kind in ("real", "random"):
            out[f"local_{kind}"], out[f"global_{kind}"] = s["local"], s["global"]
    net.cpu()
    return out


#: The CheXpert label whose planted lesion an ImaGenome condition of the synthetic cohort
#: names (its ground truth holds one ``box_<label>`` per drawn finding).
CONDITION_LABELS = {
    "atelectasis": "Atelectasis", "enlarged cardiac silhouette": "Cardiomegaly",
    "consolidation": "Consolidation", "pulmonary edema/hazy opacity": "Edema",
    "mediastinal widening": "Enlarged Cardiomediastinum", "fracture": "Fracture",
    "lung lesion": "Lung Lesion", "lung opacity": "Lung Opacity",
    "pleural effusion": "Pleural Effusion", "pleural/parenchymal scarring": "Pleural Other",
    "pneumonia": "Pneumonia", "pneumothorax": "Pneumothorax",
}  # fmt: skip


def lesion_masks(gold: pd.DataFrame, truth: pd.DataFrame, cache) -> np.ndarray:
    """Beyond the paper, on a synthetic root: each abnormal instance's planted lesions (the
    ground truth's box of every finding it asserts, mapped to the cache grid), empty for the
    other instances and for findings drawn without a box."""
    from mmcxr.localization import boxes_to_mask

    t = truth.drop_duplicates("dicom_id").set_index("dicom_id")
    size = int(cache.size)
    out = np.zeros((len(gold), size, size), dtype=bool)
    for i, (d, conds) in enumerate(zip(gold["dicom_id"], gold["conditions"], strict=True)):
        if d not in t.index:
            continue
        g, found = cache.geometry(d), []
        for name, ctx, _ in conds:
            label = CONDITION_LABELS.get(name)
            b = data.parse_box(t.at[d, f"box_{label}"]) if ctx == "yes" and label else None
            if b is not None:
                x1, y1, x2, y2 = g.map_box((b[0], b[1], b[2] + 1, b[3] + 1))
                found.append((np.floor(x1), np.floor(y1), np.ceil(x2), np.ceil(y2)))
        out[i] = boxes_to_mask(found, (size, size))
    return out


def evaluate_all(trained: Mapping[str, Trained], gold: pd.DataFrame, pixels: np.ndarray, params, store,
                 cache, *, device: str = "auto") -> dict[str, dict]:  # fmt: skip
    """:func:`evaluate` for every model, each kept as a run of ``store`` (``eval-<model>``)
    keyed by the trained run it scores and by the gold set, so a re-execution reuses it."""
    gold_fp = gold_fingerprint(gold, cache)
    out = {}
    for name, t in trained.items():
        source = str(t.run.path) if t.run is not None else str(params.get("gloria_checkpoint"))
        config = {"model": name, "trained": source, "max_length": params["max_length"]}
        res = store.get_or_run(f"eval-{name}", config, gold_fp, lambda ckpt, t=t: {
            "metrics": {"instances": len(gold)},
            "predictions": evaluate(t, gold, pixels, params, device=device)})  # fmt: skip
        out[name] = res.predictions
    return out


def instance_table(scores: Mapping[str, Mapping[str, np.ndarray]], gold: pd.DataFrame, masks: np.ndarray,
                   lesion: np.ndarray | None = None) -> pd.DataFrame:  # fmt: skip
    """One row per model, condition (:data:`CONDITIONS`) and gold instance: the localisation
    scores (:func:`mmcxr.alignment.localization_batch`) and, for the unperturbed sentences,
    the attention entropy, the Random Attention KL, the similarities and the retrieval
    outcomes (ties count one half). ``lesion``: each instance's planted-lesion mask (empty
    where there is none) for the scores against it (``lesion_*``)."""
    shuffle, boxes = gold["shuffle_donor"].to_numpy(), gold["box_donor"].to_numpy()
    kinds = {("real", "none"): ("real", masks), ("real", "swap_left_right"): ("swap", masks),
             ("real", "shuffle_bboxes"): ("real", masks[shuffle]),
             ("real", "random_sentences"): ("random", masks),
             ("real", "random_bboxes"): ("real", masks[boxes]),
             ("synthetic", "none"): ("synthetic", masks),
             ("synthetic", "swapped_conditions"): ("synthetic_swapped", masks)}  # fmt: skip
    flags = gold[["all", "abnormal", "one_lung", "mdrb"]].reset_index(drop=True)
    parts = []
    for model, s in scores.items():
        n_regions = s["attention_real"][0].size
        for (sentences, pert), (kind, m) in kinds.items():
            att = s[f"attention_{kind}"]
            t = al.localization_batch(att, m, TOP_K)
            t.insert(0, "instance", np.arange(len(gold)))
            t = pd.concat([t, flags], axis=1).assign(
                model=model, sentences=sentences, perturbation=pert
            )
            t["mask_share"] = m.reshape(len(m), -1).mean(1)
            t["entropy"] = al.entropy_rows(att)
            t["entropy_norm"] = t["entropy"] / np.log(n_regions)
            if (sentences, pert) == ("real", "none"):
                t["kl"] = al.symmetric_kl_rows(att, s["attention_random"])
                for sim in ("local", "global"):
                    true, rand = s[f"{sim}_real"], s[f"{sim}_random"]
                    t[f"{sim}_similarity"] = true
                    t[f"retrieval_{sim}"] = (true > rand) + 0.5 * (true == rand)
                if lesion is not None:
                    has = lesion.reshape(len(lesion), -1).any(1)
                    les = al.localization_batch(att[has], lesion[has], TOP_K).add_prefix("lesion_")
                    les["lesion_share"] = lesion[has].reshape(int(has.sum()), -1).mean(1)
                    les.index = np.flatnonzero(has)
                    t = t.join(les)
            parts.append(t)
    return pd.concat(parts, ignore_index=True)


def correlations(long: pd.DataFrame) -> pd.DataFrame:
    """Table 12: Pearson correlations over the unperturbed real instances, per model
    (``model, a, b, r``, each pair of :data:`reference.CORRELATION_VARIABLES` once)."""
    names = reference.CORRELATION_VARIABLES
    base = long[(long["sentences"] == "real") & (long["perturbation"] == "none")]
    rows = []
    for model, g in base.groupby("model", sort=False):
        x = g.assign(abnormal=g["abnormal"].astype(float))[list(names)].astype(float)
        c = x.corr()
        for i in range(1, len(names)):
            for j in range(i):
                rows.append({"model": model, "a": names[i], "b": names[j], "r": c.iloc[i, j]})
    return pd.DataFrame(rows)
