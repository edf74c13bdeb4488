"""The book's registry: which paper each chapter reproduces, and the datasets they read.

One table feeds every page that talks about a chapter (its opening, the scorecard, the
course page), so a paper's title or a dataset's access terms are written once. The
``credentialed`` flag of a dataset is what the publishing guard (:mod:`mmcxr.provenance`)
relies on: PhysioNet's data use agreements forbid publishing images or report text.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Dataset:
    """A real release that a chapter can read unchanged (``data_format`` in the loaders)."""

    format: str
    name: str
    credentialed: bool
    example_root: str
    access: str


@dataclass(frozen=True)
class Chapter:
    """What a chapter reproduces; ``paper_file`` is None for chapters that reproduce no paper."""

    slug: str
    title: str
    paper_file: str | None
    paper_title: str | None
    authors: str | None
    question: str
    reproduces: tuple[str, ...]
    formats: tuple[str, ...]

    @property
    def citation(self) -> str:
        """Short reference used in tables: authors and title, or the title alone."""
        if self.paper_title is None:
            return "(no paper: the book's data)"
        who = self.authors or "authors not named in our copy"
        return f"{who}, *{self.paper_title}*"

    @property
    def primary_format(self) -> str:
        """The format of ``data_root`` (the first listed)."""
        return self.formats[0]


DATASETS: dict[str, Dataset] = {
    d.format: d
    for d in (
        Dataset(
            "mimic-cxr",
            "MIMIC-CXR 2.0.0 (DICOM + reports)",
            True,
            "/data/physionet.org/files/mimic-cxr/2.0.0",
            "PhysioNet credentialed access; the data use agreement forbids publishing "
            "images or report text",
        ),
        Dataset(
            "mimic-cxr-jpg",
            "MIMIC-CXR-JPG 2.0.0",
            True,
            "/data/physionet.org/files/mimic-cxr-jpg/2.0.0",
            "PhysioNet credentialed access; the data use agreement forbids publishing "
            "images or report text",
        ),
        Dataset(
            "chest-imagenome",
            "Chest ImaGenome 1.0.0",
            True,
            "/data/physionet.org/files/chest-imagenome/1.0.0",
            "PhysioNet credentialed access; the data use agreement forbids publishing "
            "images or report text",
        ),
        Dataset(
            "openi",
            "IU X-ray / OpenI (NLMCXR)",
            False,
            "/data/NLMCXR",
            "public download from the NLM Open-i service",
        ),
        Dataset(
            "openi-kaggle",
            "IU X-ray / OpenI, Kaggle edition (indiana_reports.csv)",
            False,
            "/data/chest-xrays-indiana-university",
            "public download from Kaggle (raddar/chest-xrays-indiana-university), a CSV"
            " repackaging of the CC-licensed NLM Open-i collection",
        ),
        Dataset(
            "chestx-ray14",
            "NIH ChestX-ray14",
            False,
            "/data/ChestX-ray14",
            "public download from the NIH Clinical Center",
        ),
    )
}

CHAPTERS: dict[str, Chapter] = {
    c.slug: c
    for c in (
        Chapter(
            slug="synthetic-cohort",
            title="The synthetic cohort",
            paper_file=None,
            paper_title=None,
            authors=None,
            question="What do the real datasets look like on disk, and what structure does "
            "the synthetic cohort plant so that the later chapters can check that a "
            "method recovers it?",
            reproduces=(
                "the on-disk formats of MIMIC-CXR, MIMIC-CXR-JPG, OpenI, ChestX-ray14 and "
                "Chest ImaGenome, read back by the same loaders that read the real releases",
                "the planted structure (class imbalance, hidden strata, a spurious marker) "
                "and the labels derived from the report text",
            ),
            formats=("mimic-cxr", "mimic-cxr-jpg", "openi", "chestx-ray14", "chest-imagenome"),
        ),
        Chapter(
            slug="late-fusion-pneumonia",
            title="Late fusion for pneumonia under class imbalance",
            paper_file="001_ad573dd23246b193.txt",
            paper_title="Exploring Multimodal Learning in Classifiers for Healthcare Applications",
            authors="Chao & Li",
            question="Does late fusion of an image model (ResNet-50) and a report model "
            "(BioBERT) separate pneumonia from no finding better than either alone, "
            "and do focal loss and subsampling counter a 90/10 class imbalance?",
            reproduces=(
                "the PA erect non-portable cohort, pneumonia vs no finding",
                "12 models: image, text and late fusion, each with BCE or focal loss, on the "
                "full cohort or a 75/25 subsample",
                "the bimodal sensitivity test (one modality shuffled at test time)",
            ),
            formats=("mimic-cxr-jpg", "mimic-cxr"),
        ),
        Chapter(
            slug="meems-hidden-stratification",
            title="MEEMS: multimodal semantic embeddings against hidden stratification",
            paper_file="000_e6028d3d5c486beb.txt",
            paper_title="Multimodal Semantic Embeddings to Reduce Hidden Stratification in "
            "Medical Imaging Data",
            authors="Cooper & Vainio",
            question="Does projecting an image alone into a multimodal (image + report) "
            "embedding space, through a captioning model, reduce hidden "
            "stratification: the systematic misclassification of minority subsets?",
            reproduces=(
                "a Show-Attend-Tell captioner trained on frontal images and report text",
                "the MEEMS-embedding classifier against a ResNet-50 image baseline, binary "
                "and 14-label",
                "attention maps, caption word-set IoU, and a PCA of the embedding space",
                "hidden stratification measured on the cohort's planted strata, and slice "
                "discovery without stratum labels",
            ),
            formats=("mimic-cxr",),
        ),
        Chapter(
            slug="small-data-explanations",
            title="Small data: multimodal classification and detection with explanations",
            paper_file="002_fec24d92fd86ae33.txt",
            paper_title="Multimodal classification and detection in small data",
            authors=None,
            question="With about 3,000 image-report pairs, does a transferred multimodal model "
            "(Word2Vec 1-D CNN for text, DenseNet121 pretrained on ChestX-ray14 for "
            "images) beat either model alone, and can integrated gradients plus "
            "clustering locate the anomalies?",
            reproduces=(
                "a 1-D CNN text model initialised from Word2Vec",
                "a DenseNet121 image model pretrained on ChestX-ray14, then transferred",
                "the concatenation model against both single-modality models",
                "integrated gradients with clustering ('sight sensitivity') and per-word "
                "text explanations",
            ),
            formats=("openi", "openi-kaggle", "chestx-ray14"),
        ),
        Chapter(
            slug="multimodal-vae",
            title="A multimodal VAE over frontal, lateral and text",
            paper_file="003_be7a19ce2d92b55d.txt",
            paper_title="Multimodal Generative Learning on the MIMIC-CXR Database",
            authors="Klug, Sutter & Vogt",
            question="Does a multimodal generative model (MoPoE-VAE) trained without labels on "
            "frontal and lateral films and report text learn a latent space that "
            "separates findings, and can it generate one modality from the others?",
            reproduces=(
                "a MoPoE-VAE over frontal image, lateral image and report text",
                "linear probes on the latent representation of every subset of modalities",
                "conditionally generated samples",
            ),
            formats=("mimic-cxr",),
        ),
        Chapter(
            slug="alignment-interpretability",
            title="That's the wrong lung: are image-text alignments interpretable?",
            paper_file="004_c2f9737dcadaeb0b.txt",
            paper_title="That's the Wrong Lung! Evaluating and Improving the Interpretability "
            "of Unsupervised Multimodal Encoders for Medical Data",
            authors="anonymous ACL submission",
            question="Do the soft region-to-sentence alignments of an unsupervised image-text "
            "encoder (GLoRIA) point at the regions the text describes, and does the "
            "text influence them at all?",
            reproduces=(
                "a GLoRIA-style encoder pair: ResNet region and global vectors, BERT word and "
                "sentence vectors, eq. 1's word-to-region attention, GLoRIA's local and global "
                "contrastive losses, trained on sentence-image pairs",
                "the five models of section 4.1: a GLoRIA stand-in trained at CheXpert's share "
                "of normal films, Retrained, w/ Abnormal, w/ Masking (a rule-based entity "
                "matcher) and w/ Rand Sents, with early stopping",
                "attention against Chest ImaGenome gold boxes (pixel AUROC, average precision, "
                "IoU and precision at 5/10/30%) on real and Table 1 synthetic sentences",
                "Random Attention KL, sentence retrieval accuracy, attention entropy, the five "
                "perturbations and the Abnormal, One Lung and MDRB subsets",
                "beyond the paper: the attention scored against the planted lesion itself",
            ),
            formats=("mimic-cxr", "chest-imagenome"),
        ),
    )
}


def chapter(slug: str) -> Chapter:
    """The registry entry of a chapter, with a clear error for an unknown slug."""
    try:
        return CHAPTERS[slug]
    except KeyError:
        raise KeyError(f"unknown chapter {slug!r}; known: {sorted(CHAPTERS)}") from None


def dataset(fmt: str) -> Dataset | None:
    """The dataset of a ``data_format`` string (case and ``_`` tolerant), None if unknown."""
    return DATASETS.get(normalise_format(fmt))


def normalise_format(fmt: str) -> str:
    return fmt.strip().lower().replace("_", "-")
