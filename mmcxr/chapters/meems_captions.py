"""The MEEMS chapter's captioner, read: caption scores beside a captioner that ignores the
film, examples, the attention of finding words against the planted boxes, and the attention
viewer. :mod:`mmcxr.chapters.meems` trains the captioner; this module reads its stored run.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from mmcxr import plots
from mmcxr.chapters.meems import LABELS, Cohort

#: Words whose attention is checked against the planted box of their finding.
FINDING_WORDS = {
    "effusion": "Pleural Effusion", "effusions": "Pleural Effusion",
    "cardiomegaly": "Cardiomegaly", "enlarged": "Cardiomegaly", "edema": "Edema",
    "atelectasis": "Atelectasis", "consolidation": "Consolidation",
    "pneumothorax": "Pneumothorax", "opacity": "Lung Opacity", "opacities": "Lung Opacity",
    "nodule": "Lung Lesion", "mass": "Lung Lesion", "lesion": "Lung Lesion",
    "pneumonia": "Pneumonia", "fracture": "Fracture",
    "tube": "Support Devices", "endotracheal": "Support Devices", "catheter": "Support Devices",
    "picc": "Support Devices", "pacemaker": "Support Devices",
}  # fmt: skip


def plot_caption_curves(history: pd.DataFrame, constant: Mapping[str, float] | None = None):
    """The Figure 3 analogue and beyond: loss, word-set IoU, BLEU-4, label agreement; with
    ``constant`` (:func:`~mmcxr.chapters.meems.constant_caption_scores`) as dotted lines."""
    fig, axes = plt.subplots(1, 4, figsize=(15, 3.2))
    keys = (("loss", "cross-entropy"), ("iou", "word-set IoU"), ("bleu4", "BLEU-4"),
            ("label_agreement", "label agreement"))  # fmt: skip
    for ax, (key, title) in zip(axes, keys, strict=True):
        for split, style in (("train", "-o"), ("val", "--s")):
            ax.plot(history["epoch"], history[f"{split}_{key}"], style, label=split, ms=4)
        if constant is not None and key in constant:
            ax.axhline(constant[key], ls=":", c="grey", label="most common report")
        ax.set(title=title, xlabel="epoch")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def caption_examples(cohort: Cohort, captions, *, max_words: int, n: int = 6) -> pd.DataFrame:
    """The first ``n`` held-out films that have a finding, plus one without: generated caption,
    the report's first ``max_words`` words, and the findings the labeller reads in each."""
    from mmcxr.models.captioner import caption_words
    from mmcxr.synth.labeler import label_text

    t = cohort.table
    held = t["split"].isin(["val", "test"]).to_numpy()
    pick = list(np.flatnonzero(held & (t["finding"] == 1).to_numpy())[: n - 1])
    pick += list(np.flatnonzero(held & (t["finding"] == 0).to_numpy())[:1])

    def said(text: str) -> str:
        out = label_text(text)
        return ", ".join(c for c in LABELS if c != "No Finding" and out.get(c) in (1.0, -1.0))

    rows = []
    for i in pick:
        gen, ref = str(captions.predictions["captions"][i]), t["text"].iloc[i]
        ref = " ".join(caption_words(ref)[:max_words])
        rows.append({"generated": gen, "report": ref, "generated says": said(gen) or "-",
                     "report says": said(ref) or "-"})  # fmt: skip
    return pd.DataFrame(rows)


def caption_numbers(captions, cohort: Cohort, constant: Mapping[str, float], params) -> dict:
    """What the prose says of the captioner: the kept model's (the epoch of lowest validation
    loss) IoU, BLEU-4 and label agreement over every validation film, the most common
    report's scores on the same films (``constant``,
    :func:`~mmcxr.chapters.meems.constant_caption_scores`), and how many distinct captions it
    wrote for the held-out films (one caption for all would mean it ignores the film)."""
    from mmcxr.chapters.meems import score_captions

    split = cohort.table["split"].to_numpy()
    gen = captions.predictions["captions"]
    val = np.flatnonzero(split == "val")
    ours = score_captions([str(gen[i]).split() for i in val],
                          cohort.table["text"].iloc[val].tolist(), params)  # fmt: skip
    held = np.isin(split, ["val", "test"])
    out = {f"val_{k}": float(v) for k, v in ours.items()}
    out |= {f"const_{k}": float(v) for k, v in constant.items()}
    return out | {"caption_best_epoch": int(captions.metrics["best_epoch"]),
                  "n_held": int(held.sum()), "n_val": len(val),
                  "caption_distinct": len(set(gen[held].tolist()))}  # fmt: skip


def attention_hits(cohort: Cohort, captions, gt: pd.DataFrame, cache, grid: tuple[int, int],
                   splits: Sequence[str] = ("val", "test")) -> pd.DataFrame:  # fmt: skip
    """Does a finding word's attention fall in that finding's planted box? For every held-out
    image whose finding is drawn with a box and whose generated caption *asserts* it (the
    cohort's labeller reads the caption as positive or uncertain for it, so "no effusion" does
    not count): the share of the word's attention inside the box (each region's weight spread
    over its pixels; chance: the box's share of the image) and whether the most attended
    region's centre is inside."""
    from mmcxr.data.ground_truth import parse_box
    from mmcxr.synth.labeler import label_text

    t = cohort.table
    g = t[["dicom_id"]].merge(gt, on="dicom_id", how="left")
    alphas, texts = captions.predictions["alphas"], captions.predictions["captions"]
    h, w = grid
    rows = []
    for i in np.flatnonzero(t["split"].isin(splits).to_numpy()):
        words = str(texts[i]).split()
        said = label_text(str(texts[i]))
        for pos, word in enumerate(words[: alphas.shape[1]]):
            finding = FINDING_WORDS.get(word)
            if finding is None or t[f"y_{finding}"].iloc[i] != 1:
                continue
            if said.get(finding) not in (1.0, -1.0):
                continue
            box = parse_box(g[f"box_{finding}"].iloc[i]) if f"box_{finding}" in g else None
            if box is None:
                continue
            size = cache.get([t["dicom_id"].iloc[i]])[0].shape[-1]
            x1, y1, x2, y2 = cache.geometry(t["dicom_id"].iloc[i]).map_box(box)
            a = alphas[i, pos].reshape(h, w)
            # each pixel carries its region's attention, spread over the region's pixels
            r, c = np.arange(size) * h // size, np.arange(size) * w // size
            counts = np.bincount(r, minlength=h)[:, None] * np.bincount(c, minlength=w)[None]
            pix = (a / counts)[r][:, c]
            rows_in = (np.arange(size) + 0.5 >= y1) & (np.arange(size) + 0.5 <= y2)
            cols_in = (np.arange(size) + 0.5 >= x1) & (np.arange(size) + 0.5 <= x2)
            inside = rows_in[:, None] & cols_in[None]
            top = np.unravel_index(int(a.argmax()), a.shape)
            centre = ((top[0] + 0.5) * size / h, (top[1] + 0.5) * size / w)
            rows.append({"finding": finding, "word": word, "mass": float(pix[inside].sum()),
                         "chance mass": float(inside.mean()),
                         "hit": float(y1 <= centre[0] <= y2 and x1 <= centre[1] <= x2)})  # fmt: skip
            break  # the first finding word of a caption
    table = pd.DataFrame(rows, columns=["finding", "word", "mass", "chance mass", "hit"])
    return table


def interactive_session() -> bool:
    """Whether a live Jupyter front end renders widgets (JupyterLab sets ``JPY_SESSION_NAME``;
    papermill, which builds the book, does not)."""
    return bool(os.environ.get("JPY_SESSION_NAME"))


def attention_viewer(images, alphas, captions, grid):
    """An image x word slider over the attention maps (JupyterLab only; the book shows the
    static :func:`mmcxr.plots.plot_attention_words`)."""
    import ipywidgets as w
    from IPython.display import display

    def show(image: int, word: int) -> None:
        words = str(captions[image]).split()
        if not words:
            return
        j = min(word, len(words) - 1)
        fig = plots.plot_attention_words(images[image], alphas[image][j : j + 1], words[j : j + 1], grid,
                             truth="", caption=" ".join(words), n_words=1)  # fmt: skip
        display(fig)

    return w.interactive(show, image=w.IntSlider(0, 0, len(images) - 1),
                         word=w.IntSlider(0, 0, alphas.shape[1] - 1))  # fmt: skip


def hit_sentence(hits: pd.DataFrame) -> str:
    """The attention finding as one sentence for the prose (glued whole, because with no
    asserted finding there is no rate to quote)."""
    if not len(hits):
        return (
            "No held-out caption asserts a finding that its film has, so no finding word's "
            "attention can be checked against a box (the examples above show what the "
            "captions say instead)."
        )
    return (
        f"For {len(hits)} held-out films the caption asserts a finding the film has; the most "
        f"attended region of that word lay in the finding's box for a share "
        f"{hits['hit'].mean():.3f} of them, with a mean attention mass of "
        f"{hits['mass'].mean():.3f} inside the box, where attention spread evenly would put "
        f"{hits['chance mass'].mean():.3f} (the boxes' mean share of the image)."
    )
