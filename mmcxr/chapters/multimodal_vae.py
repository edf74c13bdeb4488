"""The multimodal-VAE chapter (Klug, Sutter & Vogt, paper 003): cohort, runs, evaluations.

The notebook ``notebooks/multimodal-vae.py`` tells the story; this module holds this paper's
recipe only. The model and its generalised ELBO are shared (:mod:`mmcxr.models.mvae`), the
training loop is :func:`mmcxr.train.fit`, the run cache :mod:`mmcxr.runs`.

* :data:`PARAMETERS` — what every parameter of the chapter must be;
* :func:`build_cohort` — one frontal, one lateral and the report of every study that has all
  three, the label "Finding", a patient split;
* :func:`make_splits` — the word vocabulary learnt from the training reports, the image
  cache, one dataset per split;
* :func:`train_runs` — MoPoE, and the same code with a PoE joint (MVAE) and an MoE joint
  (MMVAE), each trained (or reused) through :func:`mmcxr.train.fit`;
* :func:`latent_probe_predictions`, :func:`generation_table` — the paper's Table 1 analogue
  and the evaluations of the generated samples (coherence, sharpness).
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Subset

from mmcxr import data, metrics, probes, train
from mmcxr.data.datasets import InMemoryViews, to_display
from mmcxr.evaluate import generation_scores_ci
from mmcxr.labels import CHEXPERT_LABELS
from mmcxr.models import mvae
from mmcxr.models.cnn_text import WordVocab
from mmcxr.params import Param, common, shared, synthetic
from mmcxr.runs import fingerprint_table, run_key
from mmcxr.runs import image_cache_dir as _cache_dir

SLUG = "multimodal-vae"
PAPER = (
    "Klug, Sutter & Vogt, Multimodal Generative Learning on the MIMIC-CXR Database "
    "(shared/papers/003_be7a19ce2d92b55d.txt)"
)

#: The three modalities, their batch keys and the letters the paper names them by.
MODALITIES = ("frontal", "lateral", "text")
LETTERS = {"frontal": "F", "lateral": "L", "text": "T"}
#: The seven subsets in the order of the paper's Table 1 (its own spelling of each).
SUBSETS: tuple[tuple[str, ...], ...] = (
    ("frontal",),
    ("lateral",),
    ("text",),
    ("lateral", "frontal"),
    ("frontal", "text"),
    ("lateral", "text"),
    ("lateral", "frontal", "text"),
)
#: The joints compared: the paper's MoPoE, and the MoPoE paper's two baselines.
JOINTS = ("mopoe", "poe", "moe")
JOINT_NAMES = {"mopoe": "MoPoE", "poe": "MVAE (PoE)", "moe": "MMVAE (MoE)"}
#: "Finding": any of the 13 pathologies, i.e. every CheXpert label but "No Finding".
FINDING_LABELS = tuple(c for c in CHEXPERT_LABELS if c != "No Finding")
FRONTAL, LATERAL = ("PA", "AP"), ("LATERAL", "LL")  # in order of preference
_TEXT_FIELDS = ("findings_impression", "report", "findings", "impression")


def subset_name(subset: Sequence[str]) -> str:
    """The paper's column name of a subset, e.g. ``L,F,T``."""
    return ",".join(LETTERS[m] for m in subset)


#: What every parameter must be (checked when the chapter starts: :mod:`mmcxr.params`).
PARAMETERS: dict[str, Param] = {
    **common(formats=("mimic-cxr",)),
    **synthetic(image_difficulty=True, report_difficulty=True),
    **shared("split_fractions"),
    "text_field": Param("str", choices=_TEXT_FIELDS),
    "image_size": Param("int", choices=(16, 32, 64, 128, 256)),
    "max_length": Param("int", low=8, high=1024, doc="words per report, a multiple of 8"),
    "vocab_size": Param("int", low=10),
    "min_word_count": Param("int", low=1),
    "latent_dim": Param("int", low=1),
    "image_channels": Param("int", low=1),
    "text_channels": Param("int", low=1),
    "likelihood_weighting": Param("str", choices=("size", "equal")),
    "beta": Param("float", low=0),
    "laplace_scale": Param("float", low=0.01),
    "joints": Param("list", items="str", doc="any of mopoe, poe, moe"),
    "batch_size": Param("int", low=8),
    "probe_c": Param("float", low=0),
    "n_bootstrap": Param("int", low=1),
    "n_examples": Param("int", low=1, high=12),
    **shared("epochs", "lr", "patience", "claim_tol", "num_workers"),
}

#: Parameters that change what a run learns; anything else leaves a finished run reusable.
RUN_KEYS = (
    "seed",
    "split_fractions",
    "text_field",
    "image_size",
    "max_length",
    "vocab_size",
    "min_word_count",
    "latent_dim",
    "image_channels",
    "text_channels",
    "likelihood_weighting",
    "beta",
    "laplace_scale",
    "epochs",
    "batch_size",
    "lr",
    "patience",
)


def run_config(joint: str, params: Mapping[str, object]) -> dict[str, object]:
    """What identifies a run: its joint and the parameters its model depends on."""
    if joint not in JOINTS:
        raise ValueError(f"joint must be one of {JOINTS}, got {joint!r}")
    missing = [k for k in RUN_KEYS if k not in params]
    if missing:
        raise KeyError(f"run_config: parameters {missing} are not set")
    return {"joint": joint, **{k: params[k] for k in RUN_KEYS}}


# --------------------------------------------------------------------------------------------
# the cohort


@dataclass
class Cohort(data.SplitCohort):
    """One row per study: ``frontal_id``/``frontal_path``, ``lateral_id``/``lateral_path``,
    ``text``, ``label`` (1 = "Finding"), ``split``; ``flow``: counts after each step."""

    def split_counts(self) -> pd.DataFrame:
        """Studies, patients and the share with a finding in each split."""
        g = self.table.groupby("split", sort=False)
        out = pd.DataFrame(
            {
                "studies": g.size(),
                "patients": g["subject_id"].nunique(),
                "finding": g["label"].sum().astype(int),
                "finding share": g["label"].mean(),
            }
        )
        return out.reindex(list(self.SPLITS)).dropna(how="all")


def _text(df: pd.DataFrame, field: str) -> pd.Series:
    if field == "findings_impression":
        parts = df[["findings", "impression"]].fillna("").astype(str)
        return (parts["findings"] + " " + parts["impression"]).str.strip()
    return df[field].fillna("").astype(str).str.strip()


def _first(df: pd.DataFrame, views: Sequence[str]) -> pd.DataFrame:
    """Per study, the image of the most preferred view (ties: the smallest dicom_id)."""
    rank = df["view"].map({v: i for i, v in enumerate(views)})
    return (
        df.assign(_rank=rank)
        .sort_values(["study_id", "_rank", "dicom_id"])
        .drop_duplicates("study_id")
        .set_index("study_id")
    )


def build_cohort(
    images: pd.DataFrame,
    *,
    seed: int = 0,
    split_fractions: Sequence[float] = (0.7, 0.1, 0.2),
    text_field: str = "findings_impression",
) -> Cohort:
    """The studies with a frontal film, a lateral film and report text, from a loader's image
    table (:func:`mmcxr.data.load_mimic_cxr`).

    The model is trained here on complete studies only, as the reference code does: the
    generalised ELBO is defined for any subset, but a study without a lateral would train
    the lateral encoder on nothing and make the seven-subset probe undefined for it. Frontal
    means PA (preferred) or AP, lateral LATERAL (preferred) or LL, one of each per study.
    "Finding" is 1 when any of the 13 pathologies is labelled 1.0 (uncertain -1.0 counts as
    not found). Patients are split, stratified by that label, so no patient is in two parts.
    """
    need = ["subject_id", "study_id", "dicom_id", "path", "view", *FINDING_LABELS]
    need += ["findings", "impression"] if text_field == "findings_impression" else [text_field]
    missing = [c for c in need if c not in images.columns]
    if missing:
        raise ValueError(f"the image table lacks columns {missing}")
    images = images.assign(
        label=(images[list(FINDING_LABELS)] == 1.0).any(axis=1).astype(int),
        text=_text(images, text_field),
    )
    flow = data.CohortFlow(images, "images in the release")
    views = flow.record(
        "frontal (PA, AP) or lateral (LATERAL, LL) films",
        images[images["view"].isin((*FRONTAL, *LATERAL))],
    )
    has = views.groupby("study_id")["view"].agg(
        lambda v: bool(set(v) & set(FRONTAL)) and bool(set(v) & set(LATERAL))
    )
    both = flow.record(
        "studies with both a frontal and a lateral film",
        views[views["study_id"].map(has)],
    )
    if (both["text"] == "").any():
        warnings.warn(
            f"{both.loc[both['text'] == '', 'study_id'].nunique()} studies have no "
            f"{text_field!r} text; they are removed (see the cohort flow)",
            data.DataWarning,
            stacklevel=2,
        )
    both = flow.record(f"with {text_field} text", both[both["text"] != ""])
    front = _first(both[both["view"].isin(FRONTAL)], FRONTAL)
    lat = _first(both[both["view"].isin(LATERAL)], LATERAL)
    studies = front[["subject_id", "label", "text"]].assign(
        frontal_id=front["dicom_id"],
        frontal_path=front["path"],
        frontal_view=front["view"],
        lateral_id=lat.loc[front.index, "dicom_id"],
        lateral_path=lat.loc[front.index, "path"],
    )
    studies = flow.record(
        "one frontal + one lateral per study", studies.reset_index().sort_values("study_id")
    )
    if len(studies) < 10 or studies["label"].nunique() < 2:
        raise ValueError(
            f"the cohort holds {len(studies)} complete studies with labels "
            f"{sorted(studies['label'].unique())}: too small, or not a MIMIC-CXR release"
        )
    studies["split"] = data.patient_split(studies, split_fractions, seed, stratify="label")
    table = studies.reset_index(drop=True)
    table.attrs = {}
    return Cohort(table=table, flow=flow.table)


def image_cache_dir(out_dir: Path, cohort: Cohort, size: int) -> Path:
    """A cache folder per cohort and size, so a changed cohort never meets a stale cache."""
    return _cache_dir(out_dir, cohort.table, ["frontal_id", "lateral_id"], size)


def image_table(cohort: Cohort) -> pd.DataFrame:
    """Every film of the cohort (``dicom_id``, ``path``): what the image cache holds."""
    t = cohort.table
    return pd.concat(
        [
            t[["frontal_id", "frontal_path"]].set_axis(["dicom_id", "path"], axis=1),
            t[["lateral_id", "lateral_path"]].set_axis(["dicom_id", "path"], axis=1),
        ],
        ignore_index=True,
    )


# --------------------------------------------------------------------------------------------
# datasets


#: Each film of a study: its item key and the column of the cohort table holding its cache key.
VIEW_KEYS = {"frontal": "frontal_id", "lateral": "lateral_id"}
#: The datasets of a split: items ``{"frontal", "lateral", "token_ids", "label"}``.
StudyDataset = InMemoryViews


@dataclass
class Splits:
    """The datasets of every split, the word vocabulary and the token ids per study."""

    train: StudyDataset
    val: StudyDataset
    test: StudyDataset
    vocab: WordVocab
    tokens: torch.Tensor


def make_splits(cohort: Cohort, cache, *, max_length: int, vocab_size: int, min_count: int = 2):
    """The vocabulary learnt from the training reports (the ``vocab_size`` most frequent
    words seen ``min_count`` times), every report as ``max_length`` word ids, and the
    datasets of the three splits."""
    train_text = cohort.rows("train")["text"].tolist()
    vocab = WordVocab.build(train_text, min_count=min_count, max_size=vocab_size)
    tokens = vocab.encode(cohort.table["text"].tolist(), length=max_length)

    def ds(split: str) -> StudyDataset:
        rows = cohort.rows(split)
        ids = tokens[torch.as_tensor(rows.index.to_numpy().copy())]
        return StudyDataset(rows, cache, ids, views=VIEW_KEYS)

    return Splits(ds("train"), ds("val"), ds("test"), vocab, tokens)


def data_fingerprint(cohort: Cohort, cache) -> str:
    """What the runs were trained on: the cohort table and the cached pixels."""
    cols = ["study_id", "frontal_id", "lateral_id", "label", "split", "text"]
    table = fingerprint_table(cohort.table, cols)
    return hashlib.sha256(f"{table}:{cache.manifest.get('sha256')}".encode()).hexdigest()


# --------------------------------------------------------------------------------------------
# models and runs


def build_model(joint: str, params: Mapping[str, object], vocab_size: int) -> mvae.MultimodalVAE:
    """The chapter's VAE with the given joint, initialised from ``seed`` alone."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(params["seed"]))
        return mvae.build_mvae(
            image_size=int(params["image_size"]),
            vocab_size=vocab_size,
            text_length=int(params["max_length"]),
            latent_dim=int(params["latent_dim"]),
            joint=joint,
            image_channels=int(params["image_channels"]),
            text_channels=int(params["text_channels"]),
            beta=float(params["beta"]),
            likelihood_weights=str(params["likelihood_weighting"]),
            laplace_scale=float(params["laplace_scale"]),
        )


@dataclass
class TrainedRun:
    """A finished run: its model (best validation weights), history and stored result."""

    joint: str
    model: mvae.MultimodalVAE
    history: pd.DataFrame
    result: object


def train_runs(params, splits: Splits, store, data_fp: str, *, device: str = "auto"):
    """Every joint of ``params["joints"]``, trained through :func:`mmcxr.train.fit` or loaded
    from ``store`` when finished; per-term ELBO curves on the validation set and a fixed
    slice of the training set come from ``fit``'s ``epoch_metrics``."""
    bs = int(params["batch_size"])
    val_loader = DataLoader(splits.val, batch_size=bs)
    probe = Subset(splits.train, range(min(len(splits.train), len(splits.val))))
    train_loader = DataLoader(probe, batch_size=bs)
    out: dict[str, TrainedRun] = {}
    for joint in params["joints"]:
        config = run_config(joint, params)
        vocab_size = len(splits.vocab)

        def work(checkpoint_dir: Path, joint=joint, vocab_size=vocab_size):
            model = build_model(joint, params, vocab_size)

            def terms(m):
                return {
                    **mvae.elbo_terms(m, train_loader, "train_elbo_"),
                    **mvae.elbo_terms(m, val_loader, "val_elbo_"),
                }

            history = train.fit(
                model,
                splits.train,
                splits.val,
                loss=mvae.elbo_loss,
                epochs=int(params["epochs"]),
                batch_size=bs,
                lr=float(params["lr"]),
                patience=int(params["patience"]),
                checkpoint_dir=checkpoint_dir,
                seed=int(params["seed"]),
                device=device,
                num_workers=int(params.get("num_workers", 0)),
                progress=False,
                epoch_metrics=terms,
            )
            scores = {
                "best_epoch": history.best_epoch,
                "epochs_run": len(history.table),
                "best_val_loss": history.best_val_loss,
            }
            return {"metrics": scores, "history": history, "model": model}

        result = store.get_or_run(joint, config, data_fp, work)
        model = build_model(joint, params, vocab_size)
        store.load_model(joint, run_key(config, data_fp), model)
        out[joint] = TrainedRun(joint, model.eval(), result.history, result)
    return out


def histories(runs: Mapping[str, TrainedRun]) -> pd.DataFrame:
    """Per-term curves of every run, long: ``joint, term, epoch, train_loss, val_loss`` (the
    terms as ``fit``'s ``epoch_metrics`` recorded them, on the validation studies and on as
    many training studies)."""
    parts = []
    for joint, r in runs.items():
        h = r.history
        terms = [c[len("val_elbo_") :] for c in h.columns if c.startswith("val_elbo_")]
        for t in terms:
            part = {"joint": joint, "term": t, "panel": "curves", "epoch": h["epoch"]}
            part |= {"train_loss": h[f"train_elbo_{t}"], "val_loss": h[f"val_elbo_{t}"]}
            parts.append(pd.DataFrame(part))
    return pd.concat(parts, ignore_index=True)


# --------------------------------------------------------------------------------------------
# evaluations


def latents(model: mvae.MultimodalVAE, ds: StudyDataset) -> dict[str, np.ndarray]:
    """The latent representation (posterior mean) of every subset, keyed by its name."""
    z = mvae.subset_latents(model, ds.batches(), SUBSETS)
    return {subset_name(k): v for k, v in z.items()}


def _labels(ds: StudyDataset) -> np.ndarray:
    return np.asarray(ds.labels, dtype=int)


def latent_probe_predictions(runs: Mapping[str, TrainedRun], splits: Splits, *, c: float = 1.0):
    """Table 1's probe (:func:`mmcxr.probes.latent_probes`): a logistic regression per run
    and subset, fitted on the training studies' latents and scored on the test studies.
    Long: ``joint, subset, case, label, prob``."""
    y_train, y_test = _labels(splits.train), _labels(splits.test)
    parts = []
    for joint, r in runs.items():
        z_train, z_test = latents(r.model, splits.train), latents(r.model, splits.test)
        long = probes.latent_probes(z_train, y_train, z_test, y_test, c=c)
        parts.append(long.assign(joint=joint)[["joint", "subset", "case", "label", "prob"]])
    return pd.concat(parts, ignore_index=True)


def generate(model: mvae.MultimodalVAE, ds: StudyDataset, subset: Sequence[str], seed: int = 0):
    """Every modality generated for every study of ``ds`` from one draw of the posterior
    given ``subset`` (seeded): ``{"frontal", "lateral": (N, S, S) in 0..1, "text": ids}``."""
    gen = mvae.generate_all(model, ds.batches(), subset, seed=seed)
    return {m: to_display(v) if m != "text" else v.numpy() for m, v in gen.items()}


def train_judges(splits: Splits, c: float = 0.1, seed: int = 0) -> probes.Judges:
    """The judges of generated samples (:func:`mmcxr.probes.train_judges`): logistic
    regressions on real training frontals (standardised pixels) and reports."""
    ds = splits.train
    images, ids = ds.display_images("frontal"), ds.token_ids.numpy()
    return probes.train_judges(images, ids, _labels(ds), len(splits.vocab), c=c, seed=seed)


def generation_table(
    runs: Mapping[str, TrainedRun], splits: Splits, judges: probes.Judges, *, seed: int = 0,
    n_boot: int = 1000,
) -> pd.DataFrame:  # fmt: skip
    """Coherence and sharpness (:func:`mmcxr.evaluate.generation_scores_ci`) of what each run
    generates on the test studies, given each subset, with 95% bootstrap intervals over the
    test studies (``<value>_lo/_hi``). One row per (joint, subset, modality): ``coherence``
    is the AUROC with which a judge trained on real data recovers the conditioning study's
    "Finding" label from the generated frontal film or report; ``sharpness`` is the mean
    gradient magnitude of generated films over that of the same studies' real films (1: as
    sharp as real). Rows with ``joint="real"`` score the real test data."""
    test = splits.test
    y = _labels(test)
    judge = {"F": judges.score_images, "T": judges.score_text}

    def lettered(sample: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {LETTERS[m]: sample[m] for m in MODALITIES}

    real = {v: test.display_images(v) for v in ("frontal", "lateral")}
    ref = {LETTERS[v]: metrics.sharpness(x) for v, x in real.items()}

    def scores(sample: Mapping[str, np.ndarray]) -> list[dict]:
        return generation_scores_ci(y, lettered(sample), judge, ref, n_boot=n_boot, seed=seed)

    real_ids = {"text": test.token_ids.numpy()}
    rows = [{"joint": "real", "subset": "-"} | r for r in scores(real | real_ids)]
    for joint, r in runs.items():
        for s in SUBSETS:
            base = {"joint": joint, "subset": subset_name(s)}
            rows += [base | row for row in scores(generate(r.model, test, s, seed=seed))]
    table = pd.DataFrame(rows)
    table.attrs["real_sharpness"] = {v: float(ref[LETTERS[v]].mean()) for v in real}
    return table


def example_cases(cohort: Cohort, n: int, seed: int = 0) -> list[int]:
    """Positions in the test split of ``n`` studies for the figure, half with a finding."""
    test = cohort.rows("test").reset_index(drop=True)
    rng = np.random.default_rng(seed)
    pos = np.flatnonzero(test["label"].to_numpy() == 1)
    neg = np.flatnonzero(test["label"].to_numpy() == 0)
    k = min(len(pos), (n + 1) // 2)
    picked = list(rng.choice(pos, k, replace=False)) + list(
        rng.choice(neg, min(len(neg), n - k), replace=False)
    )
    return [int(i) for i in picked]
