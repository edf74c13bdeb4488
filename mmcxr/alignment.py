"""Image-text alignment under test: sentences, masking, synthetic sentences, perturbations,
and the attention-versus-box metrics of the "Wrong Lung" paper (paper 004), batched.

What a GLoRIA-style model (:mod:`mmcxr.models.gloria`) needs around it, none of it particular
to one chapter:

* text: :func:`split_sentences` and :func:`clean_sentence` (GLoRIA's own cleaning: lower case,
  word characters only), :func:`tokenize_words` (tokens plus the word each belongs to);
* :class:`EntityMatcher`: an offline, rule-based longest-match phrase matcher over a
  finding / anatomy vocabulary (:data:`FINDING_TERMS`, :data:`ANATOMY_TERMS`), which replaces
  the clinical entities of a sentence with ``[MASK]`` (the paper used SciSpaCy's UMLS linker,
  which cannot be installed offline);
* :func:`synthetic_sentence`: the paper's Table 1 rules, from ImaGenome's conditions, their
  context and their boxes; :func:`swap_left_right` and the other perturbations of section 3.1;
* :class:`SentenceImageDataset`: image-level items, each paired with one of its report's
  sentences drawn anew every epoch (GLoRIA's ``full_report: false``);
* :func:`embed_images`, :func:`embed_texts`, :func:`paired_scores`: a trained model's
  sentence-averaged attention, local and global similarity for (image, sentence) pairs;
* :func:`localization_batch`: pixel AUROC, average precision, IoU and precision of the top
  k % pixels for many maps at once, equal to :func:`mmcxr.localization.localization_scores`
  map by map (a test checks it) at a fraction of the time; :func:`symmetric_kl_rows`,
  :func:`entropy_rows`, :func:`mean_ci`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from mmcxr.data.datasets import IMAGE_MEAN, IMAGE_STD

__all__ = [
    "ANATOMY_TERMS",
    "EntityMatcher",
    "FINDING_TERMS",
    "SentenceImageDataset",
    "abnormal_phrases",
    "box_masks",
    "clean_sentence",
    "embed_images",
    "embed_texts",
    "entropy_rows",
    "gold_instances",
    "localization_batch",
    "location_list",
    "mean_ci",
    "paired_deltas",
    "paired_scores",
    "permute_within",
    "report_overlap",
    "split_sentences",
    "subset_summary",
    "swap_left_right",
    "swapped_conditions",
    "symmetric_kl_rows",
    "synthetic_sentence",
    "tokenize_words",
]

# --------------------------------------------------------------------------------------------
# sentences


_WORDS = re.compile(r"\w+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n\s*\n")


def split_sentences(text: str) -> list[str]:
    """A report section's sentences: split after ``.``, ``!`` or ``?`` followed by white
    space (so "3.2 cm" stays whole) and at blank lines; sentences of fewer than two words are
    dropped, as GLoRIA drops them."""
    if not isinstance(text, str):
        return []
    parts = (p.strip() for p in _SENTENCE_END.split(text.replace("\r", " ")))
    return [p for p in parts if len(_WORDS.findall(p)) >= 2]


def clean_sentence(text: str) -> str:
    """GLoRIA's text cleaning: lower case, word characters only, one space between words."""
    return " ".join(_WORDS.findall(str(text).lower()))


def tokenize_words(
    tokenizer, texts: Sequence[str], max_length: int = 32
) -> dict[str, torch.Tensor]:
    """Tokens of each text padded to ``max_length`` with, for each token, the word it belongs
    to: ``input_ids``, ``attention_mask``, ``word_index`` (``-1`` for special tokens and
    padding) and ``n_words`` (words kept after truncation). Needs a fast tokenizer."""
    texts = [str(t) for t in texts]
    if not texts:
        raise ValueError("tokenize_words: no texts")
    enc = tokenizer(texts, padding="max_length", truncation=True, max_length=max_length)
    index = torch.full((len(texts), max_length), -1, dtype=torch.long)
    for i in range(len(texts)):
        ids = enc.word_ids(i)
        index[i] = torch.tensor([-1 if w is None else w for w in ids], dtype=torch.long)
    n_words = (index.max(dim=1).values + 1).clamp(min=0)
    return {
        "input_ids": torch.tensor(enc["input_ids"], dtype=torch.long),
        "attention_mask": torch.tensor(enc["attention_mask"], dtype=torch.long),
        "word_index": index,
        "n_words": n_words,
    }


# --------------------------------------------------------------------------------------------
# masking clinical entities


#: Findings, diseases and devices as radiology reports name them (singular and plural).
FINDING_TERMS: tuple[str, ...] = (
    "pleural effusion", "pleural effusions", "effusion", "effusions", "pneumothorax",
    "pneumothoraces", "hydropneumothorax", "consolidation", "consolidations", "atelectasis",
    "collapse", "opacity", "opacities", "opacification", "infiltrate", "infiltrates",
    "pulmonary edema", "interstitial edema", "edema", "vascular congestion", "congestion",
    "cardiomegaly", "enlargement", "enlarged", "widening", "widened", "mediastinal widening",
    "pneumonia", "nodule", "nodules", "mass", "masses", "lesion", "lesions", "fracture",
    "fractures", "pleural thickening", "thickening", "plaque", "plaques", "scarring",
    "fibrosis", "emphysema", "copd", "granuloma", "blunting", "hazy opacity", "tube",
    "tubes", "catheter", "line", "picc", "pacemaker", "pacer", "leads", "device",
    "abnormality", "abnormalities",
)  # fmt: skip
#: Anatomy (with the sides and zones left out: masking "right" would defeat the test).
ANATOMY_TERMS: tuple[str, ...] = (
    "lung", "lungs", "lobe", "lobes", "lingula", "base", "bases", "apex", "apices",
    "hemithorax", "costophrenic angle", "costophrenic angles", "heart", "cardiac silhouette",
    "mediastinum", "mediastinal contours", "hilum", "hila", "hilar", "rib", "ribs",
    "diaphragm", "hemidiaphragm", "trachea", "carina", "svc", "stomach", "clavicle",
)  # fmt: skip


class EntityMatcher:
    """Longest-match, whole-word, case-insensitive phrase matcher over a vocabulary.

    A rule-based target matcher of the kind medspaCy offers (``TargetMatcher`` with literal
    rules), written here without spaCy: the phrases are tried longest first, so "pleural
    effusion" is one entity rather than "effusion" inside it. :meth:`mask` replaces each
    entity by one ``[MASK]`` token.
    """

    def __init__(self, terms: Iterable[str]) -> None:
        words = sorted(
            {clean_sentence(t) for t in terms if clean_sentence(t)}, key=lambda t: (-len(t), t)
        )
        if not words:
            raise ValueError("EntityMatcher needs at least one term")
        self.terms = tuple(words)
        alternation = "|".join(re.escape(t).replace(r"\ ", r"\s+") for t in words)
        self._pattern = re.compile(rf"\b(?:{alternation})\b", re.IGNORECASE)

    def find(self, text: str) -> list[str]:
        """The entities of ``text`` in order."""
        return [m.group(0) for m in self._pattern.finditer(text)]

    def mask(self, text: str, token: str = "[MASK]") -> str:
        return self._pattern.sub(token, text)


# --------------------------------------------------------------------------------------------
# synthetic sentences (Table 1) and perturbations (section 3.1)


def _plural(name: str) -> str:
    return name if name.endswith("s") else name + "s"


def location_list(boxes: Sequence[str]) -> tuple[str, bool]:
    """Anatomical box names as a natural-language list, and whether it reads as plural.

    A left and a right box of the same structure become one plural item ("left lung" and
    "right lung": "lungs"; "left upper lung zone" and "right upper lung zone": "upper lung
    zones"); one-sided boxes keep their side. Items are listed from the whole lung down (lung,
    apical, upper, mid, lower zone), then the rest as they come, which reproduces the order of
    the paper's Table 11 examples ("The left lung, upper lung zones, and mid lung zones").
    """
    names = list(dict.fromkeys(str(b) for b in boxes))
    if not names:
        raise ValueError("location_list: no boxes")
    items, plural_items = [], set()
    for n in names:
        side, _, rest = n.partition(" ")
        other = {"left": "right", "right": "left"}.get(side)
        if other and f"{other} {rest}" in names:
            if _plural(rest) not in items:
                items.append(_plural(rest))
                plural_items.add(_plural(rest))
        else:
            items.append(n)
    zones = ("apical", "upper", "mid", "lower")

    def rank(item: str) -> int:
        words = item.split()
        if words[-1] in ("lung", "lungs"):
            return 0
        return next((i + 1 for i, z in enumerate(zones) if z in words), len(zones) + 1)

    items = sorted(items, key=rank)  # stable: equal ranks keep their order
    paired = plural_items
    if len(items) == 1:
        text = items[0]
    elif len(items) == 2:
        text = f"{items[0]} and {items[1]}"
    else:
        text = ", ".join(items[:-1]) + f", and {items[-1]}"
    return text, bool(paired) or len(items) > 1


def synthetic_sentence(conditions: Sequence[tuple[str, str, Sequence[str]]]) -> str:
    """The paper's Table 1 rules for ``(condition, context, boxes)`` triples, concatenated.

    Positive context: "The {loclist} is/are {c}." for "normal" / "abnormal", else "There is
    {c} in the {loclist}."; negative context: "There is no {c}."
    """
    out = []
    for name, context, boxes in conditions:
        c = str(name).strip()
        if str(context).strip().lower() in ("no", "0", "false", "negative", "neg"):
            out.append(f"There is no {c}.")
            continue
        loc, plural = location_list(boxes)
        if c.lower() in ("normal", "abnormal"):
            out.append(f"The {loc} {'are' if plural else 'is'} {c}.")
        else:
            out.append(f"There is {c} in the {loc}.")
    if not out:
        raise ValueError("synthetic_sentence: no conditions")
    return " ".join(out)


_SIDES = re.compile(r"\b(right|left)\b", re.IGNORECASE)


def swap_left_right(text: str) -> str:
    """Every "right" becomes "left" and vice versa (whole words, case kept as written)."""

    def swap(m: re.Match) -> str:
        w = m.group(0)
        new = "left" if w.lower() == "right" else "right"
        return new.upper() if w.isupper() else new.capitalize() if w[0].isupper() else new

    return _SIDES.sub(swap, text)


def permute_within(groups: Sequence[object], seed: int = 0) -> np.ndarray:
    """For each item, the index of the item whose value it takes when values are shuffled at
    random within each group (a group of one keeps its own)."""
    g = pd.factorize(pd.Series(list(groups)))[0]
    rng = np.random.default_rng(seed)
    out = np.arange(len(g))
    for k in np.unique(g):
        members = np.flatnonzero(g == k)
        out[members] = members[rng.permutation(len(members))]
    return out


# --------------------------------------------------------------------------------------------
# the gold set: one instance per (image, sentence)


def _is_negative(context: object) -> bool:
    return str(context).strip().lower() in ("no", "0", "false", "negative", "neg")


def gold_instances(sentences: pd.DataFrame) -> pd.DataFrame:
    """ImaGenome's gold sentence table (one row per sentence, box and condition) as one row per
    (image, sentence), in order of first appearance.

    Columns: ``dicom_id``, ``sentence`` (as written), ``text`` (:func:`clean_sentence`),
    ``conditions`` (tuple of ``(condition, context, boxes)`` with the boxes of that condition
    and context), ``boxes`` (every box of the sentence), ``abnormal`` (a condition other than
    "normal" in a positive context: the paper's Abnormal subset), ``one_lung`` (the boxes hold
    the left or the right lung, not both) and ``synthetic`` (the Table 1 sentence).
    """
    need = ["dicom_id", "sentence", "bbox", "label_name", "context"]
    missing = [c for c in need if c not in sentences.columns]
    if missing:
        raise ValueError(f"gold sentence table lacks {missing}; it has {list(sentences.columns)}")
    rows = []
    for (dicom, sentence), g in sentences.groupby(["dicom_id", "sentence"], sort=False):
        conds: dict[tuple[str, str], list[str]] = {}
        for name, ctx, box in zip(g["label_name"], g["context"], g["bbox"], strict=True):
            key = (str(name).strip(), "no" if _is_negative(ctx) else "yes")
            conds.setdefault(key, [])
            if str(box) not in conds[key]:
                conds[key].append(str(box))
        conditions = tuple((n, c, tuple(b)) for (n, c), b in conds.items())
        boxes = tuple(dict.fromkeys(b for _, _, bs in conditions for b in bs))
        lungs = {"left lung", "right lung"} & set(boxes)
        rows.append({
            "dicom_id": str(dicom), "sentence": str(sentence), "text": clean_sentence(sentence),
            "conditions": conditions, "boxes": boxes,
            "abnormal": any(c == "yes" and n.lower() != "normal" for n, c, _ in conditions),
            "one_lung": len(lungs) == 1, "synthetic": synthetic_sentence(conditions),
        })  # fmt: skip
    return pd.DataFrame(rows)


def abnormal_phrases(graphs, dicom_ids) -> set[tuple[str, str]]:
    """``(dicom_id, cleaned phrase)`` of every phrase a silver scene graph marks abnormal
    (an ``nlp|yes|abnormal`` attribute)."""
    out = set()
    for d in dicom_ids:
        if d not in graphs:
            continue
        for a in graphs.json(d)["attributes"]:
            for phrase, attrs in zip(a.get("phrases", []), a.get("attributes", []), strict=False):
                if any("nlp|yes|abnormal" in str(x) for x in attrs or []):
                    out.add((str(d), clean_sentence(phrase)))
    return out


def swapped_conditions(instances: pd.DataFrame, seed: int = 0) -> list[str]:
    """The synthetic sentence of each instance with every condition swapped for another one
    found with the same set of boxes anywhere in the gold set (paper 004, section 3.1); a
    condition with no such alternative stays (its footnote 4)."""
    seen: dict[frozenset, set[str]] = {}
    for conds in instances["conditions"]:
        for name, _, boxes in conds:
            seen.setdefault(frozenset(boxes), set()).add(name)
    rng = np.random.default_rng(seed)
    out = []
    for conds in instances["conditions"]:
        new = []
        for name, ctx, boxes in conds:
            others = sorted(seen[frozenset(boxes)] - {name})
            new.append((others[rng.integers(len(others))] if others else name, ctx, boxes))
        out.append(synthetic_sentence(new))
    return out


def box_masks(
    dicom_ids: Sequence[str], box_names: Sequence[Sequence[str]], boxes: pd.DataFrame, cache
) -> np.ndarray:
    """The union of each instance's named boxes as a mask on the cache's letterboxed grid.

    ``boxes``: ImaGenome's gold box table (``dicom_id``, ``bbox_name`` and the boxes in the
    image's own pixels, ``original_x1 .. original_y2``), mapped through
    ``cache.geometry(dicom_id)``. A box name the image lacks is an error naming it.
    """
    from mmcxr.localization import boxes_to_mask

    cols = ["original_x1", "original_y1", "original_x2", "original_y2"]
    table = boxes.set_index(["dicom_id", "bbox_name"])[cols].astype(float)
    size = int(cache.size)
    out = np.zeros((len(dicom_ids), size, size), dtype=bool)
    for i, (d, names) in enumerate(zip(dicom_ids, box_names, strict=True)):
        g = cache.geometry(str(d))
        mapped = []
        for n in names:
            if (str(d), n) not in table.index:
                raise KeyError(f"gold box {n!r} of image {d} is not in the box table")
            mapped.append(g.map_box(tuple(table.loc[(str(d), n)])))
        out[i] = boxes_to_mask(mapped, (size, size))
    return out


def report_overlap(groups: Sequence[object], masks: np.ndarray) -> np.ndarray:
    """Each instance's mean IoU with the other instances of its group (report); NaN for an
    instance alone in its report. The paper's MDRB subset is the lowest 10%."""
    flat = np.asarray(masks, dtype=bool).reshape(len(masks), -1)
    g = pd.factorize(pd.Series(list(groups)))[0]
    out = np.full(len(flat), np.nan)
    for k in np.unique(g):
        idx = np.flatnonzero(g == k)
        if len(idx) < 2:
            continue
        m = flat[idx].astype(np.float32)
        inter = m @ m.T
        area = m.sum(1)
        union = area[:, None] + area[None, :] - inter
        iou = np.where(union > 0, inter / np.maximum(union, 1), 0.0)
        np.fill_diagonal(iou, np.nan)
        out[idx] = np.nanmean(iou, axis=1)
    return out


# --------------------------------------------------------------------------------------------
# training items


class SentenceImageDataset(Dataset):
    """One item per image: the image and one sentence of its report.

    ``sentences_of[i]`` lists the rows of ``tokens`` (the tokenised sentences) that belong to
    image ``i``. With ``draw`` each fetch draws one of them from torch's global random stream
    (seeded by :func:`mmcxr.train.fit` and checkpointed with it, so a resumed run draws the
    same), which makes every epoch pair each image with a fresh sentence, as GLoRIA's
    pretraining does; without, the sentence is fixed once by ``seed`` (validation).
    """

    def __init__(
        self,
        cache,
        image_keys: Sequence[str],
        tokens: Mapping[str, torch.Tensor],
        sentences_of: Sequence[Sequence[int]],
        *,
        draw: bool = True,
        seed: int = 0,
    ) -> None:
        if len(image_keys) != len(sentences_of):
            raise ValueError(f"{len(image_keys)} images but {len(sentences_of)} sentence lists")
        empty = [k for k, s in zip(image_keys, sentences_of, strict=True) if len(s) == 0]
        if empty:
            raise ValueError(f"{len(empty)} images have no sentence (e.g. {empty[0]})")
        self.cache, self.keys = cache, [str(k) for k in image_keys]
        self._rows = cache.rows(self.keys)
        self.tokens = {k: torch.as_tensor(v) for k, v in tokens.items()}
        self.sentences_of = [np.asarray(s, dtype=np.int64) for s in sentences_of]
        self.draw = bool(draw)
        rng = np.random.default_rng(seed)
        self._fixed = np.array([s[rng.integers(len(s))] for s in self.sentences_of])

    def __len__(self) -> int:
        return len(self.keys)

    def sentence_row(self, i: int) -> int:
        options = self.sentences_of[i]
        if self.draw:
            return int(options[int(torch.randint(len(options), (1,)))])
        return int(self._fixed[i])

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        pixels = self.cache.get_rows([self._rows[i]])[0].astype(np.float32) / 255.0
        j = self.sentence_row(i)
        item = {"image": torch.from_numpy((pixels - IMAGE_MEAN) / IMAGE_STD).unsqueeze(0)}
        item.update({k: v[j] for k, v in self.tokens.items()})
        item["label"] = torch.tensor(0.0)
        return item


# --------------------------------------------------------------------------------------------
# a trained model's scores


def _device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def embed_images(
    model, pixels: np.ndarray, batch_size: int = 64
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(v_l (N, D, h, w), v_g (N, D))`` of uint8 images ``(N, S, S)`` (on CPU)."""
    model.eval()
    dev = _device(model)
    locs, globs = [], []
    for s in range(0, len(pixels), batch_size):
        x = torch.from_numpy(pixels[s : s + batch_size].astype(np.float32) / 255.0)
        x = ((x - IMAGE_MEAN) / IMAGE_STD).unsqueeze(1).to(dev)
        v_l, v_g = model.encode_image(x)
        locs.append(v_l.float().cpu())
        globs.append(v_g.float().cpu())
    return torch.cat(locs), torch.cat(globs)


@torch.no_grad()
def embed_texts(model, tokens: Mapping[str, torch.Tensor], batch_size: int = 256):
    """``(t_l (S, W, D), word_mask (S, W), t_g (S, D))`` of tokenised sentences (on CPU);
    ``W`` is cut to the longest sentence."""
    model.eval()
    dev = _device(model)
    n = len(tokens["input_ids"])
    width = max(1, int(tokens["n_words"].max()))
    words, masks, sents = [], [], []
    for s in range(0, n, batch_size):
        batch = {k: v[s : s + batch_size].to(dev) for k, v in tokens.items()}
        t_l, m, t_g = model.encode_text(batch)
        words.append(t_l[:, :width].float().cpu())
        masks.append(m[:, :width].cpu())
        sents.append(t_g.float().cpu())
    return torch.cat(words), torch.cat(masks), torch.cat(sents)


@torch.no_grad()
def paired_scores(
    model,
    images: tuple[torch.Tensor, torch.Tensor],
    texts: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    image_idx: Sequence[int],
    text_idx: Sequence[int],
    *,
    batch_size: int = 256,
    local_aggregate: str = "max",
) -> dict[str, np.ndarray]:
    """For pairs ``(image_idx[k], text_idx[k])``: the sentence-averaged attention (eq. 1
    averaged over the sentence's words, ``(n, h, w)``), the local similarity (GLoRIA's
    retrieval form: the best word's ``temp2 * cos`` with ``local_aggregate="max"``, its
    training form ``"sum"``: log-sum-exp over words) and the global cosine similarity."""
    from mmcxr.models.gloria import paired_local_similarity

    v_l, v_g = images
    t_l, t_m, t_g = texts
    ii = torch.as_tensor(np.asarray(image_idx, dtype=np.int64))
    tt = torch.as_tensor(np.asarray(text_idx, dtype=np.int64))
    if ii.shape != tt.shape or ii.ndim != 1:
        raise ValueError("image_idx and text_idx must be equal-length 1-D")
    dev = _device(model)
    h, w = v_l.shape[-2:]
    maps, local, glob = [], [], []
    for s in range(0, len(ii), batch_size):
        bi, bt = ii[s : s + batch_size], tt[s : s + batch_size]
        regions = v_l[bi].flatten(2).to(dev)
        words, mask = t_l[bt].to(dev), t_m[bt].to(dev)
        sim, attn = paired_local_similarity(
            words, mask, regions, temp1=model.temp1, temp2=model.temp2,
            word_softmax=model.word_softmax, aggregate=local_aggregate,
        )  # fmt: skip
        m = mask.unsqueeze(-1).to(attn.dtype)
        avg = (attn * m).sum(1) / m.sum(1).clamp(min=1.0)
        maps.append(avg.reshape(-1, h, w).float().cpu())
        local.append(sim.float().cpu())
        glob.append(F.cosine_similarity(v_g[bi], t_g[bt], dim=-1))
    return {
        "attention": torch.cat(maps).numpy(),
        "local": torch.cat(local).numpy(),
        "global": torch.cat(glob).numpy(),
    }


# --------------------------------------------------------------------------------------------
# metrics, many maps at once


def upsample_maps(maps: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear upsampling of ``(n, h, w)`` maps to ``(n, *shape)``, as
    :func:`mmcxr.localization.upsample` does one map (float32 arithmetic, float64 out)."""
    t = torch.as_tensor(np.asarray(maps, dtype=np.float32))
    if t.ndim != 3:
        raise ValueError(f"maps must be (n, h, w), got shape {tuple(t.shape)}")
    if tuple(t.shape[1:]) == tuple(shape):
        return t.numpy().astype(np.float64)
    up = F.interpolate(
        t[:, None], size=tuple(int(s) for s in shape), mode="bilinear", align_corners=False
    )
    return up[:, 0].numpy().astype(np.float64)


def _scores(s: np.ndarray, lab: np.ndarray, top_k: Sequence[float]) -> dict[str, np.ndarray]:
    """The scores of :func:`localization_batch` for flat rows (one sort per row)."""
    n, p = s.shape
    n_pos = lab.sum(1).astype(float)
    n_neg = p - n_pos
    order = np.argsort(-s, axis=1, kind="stable")
    ss = np.take_along_axis(s, order, 1)
    ll = np.take_along_axis(lab, order, 1).astype(float)
    # tie groups of the sorted scores: each position's group start and end
    pos = np.arange(p)[None, :]
    end = np.ones_like(ss, dtype=bool)
    end[:, :-1] = ss[:, :-1] != ss[:, 1:]
    start = np.ones_like(ss, dtype=bool)
    start[:, 1:] = end[:, :-1]
    end_idx = np.minimum.accumulate(np.where(end, pos, p)[:, ::-1], axis=1)[:, ::-1]
    start_idx = np.maximum.accumulate(np.where(start, pos, -1), axis=1)
    # AUROC: Mann-Whitney with average ranks (ascending rank of descending position k: p - k)
    ranks = p - (start_idx + end_idx) / 2.0
    tp = np.cumsum(ll, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        auroc = ((ranks * ll).sum(1) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
        # average precision as scikit-learn: each positive weighs the precision at the end
        # of its tie group
        ap = (ll * np.take_along_axis(tp, end_idx, 1) / (end_idx + 1)).sum(1) / n_pos
    auroc[(n_pos == 0) | (n_neg == 0)] = np.nan
    ap[n_pos == 0] = np.nan
    out = {"auroc": auroc, "average_precision": ap}
    mask_size = lab.sum(1)
    for k in top_k:
        n_top = max(1, math.ceil(k / 100 * p))
        # every pixel scoring at least the n_top-th highest: the cut's whole tie group
        last = end_idx[:, n_top - 1]
        inter = np.take_along_axis(tp, last[:, None], 1)[:, 0]
        size = last + 1
        union = size + mask_size - inter
        with np.errstate(invalid="ignore", divide="ignore"):
            out[f"iou@{k:g}"] = np.where(union > 0, inter / union, np.nan)
        out[f"precision@{k:g}"] = inter / size
    return out


def localization_batch(
    maps: np.ndarray,
    masks: np.ndarray,
    top_k: Sequence[float] = (5, 10, 30),
    *,
    chunk: int = 4_000_000,
) -> pd.DataFrame:
    """Paper 004's localisation scores of many ``(h, w)`` maps against ``(H, W)`` masks.

    Each map is upsampled bilinearly to its mask's grid; columns ``auroc``,
    ``average_precision``, ``iou@k`` and ``precision@k`` (ties at the top-k cut all kept),
    NaN where a score is undefined (an empty or full mask), exactly as
    :func:`mmcxr.localization.localization_scores` gives them map by map.
    """
    maps = np.asarray(maps)
    masks = np.asarray(masks, dtype=bool)
    if maps.ndim != 3 or masks.ndim != 3 or len(maps) != len(masks):
        raise ValueError(
            f"need (n, h, w) maps and (n, H, W) masks, got {maps.shape} and {masks.shape}"
        )
    for k in top_k:
        if not 0 < k <= 100:
            raise ValueError(f"k is a percentage in (0, 100], got {k}")
    shape = masks.shape[1:]
    p = shape[0] * shape[1]
    step = max(1, chunk // p)
    parts = []
    for s in range(0, len(maps), step):
        sc = upsample_maps(maps[s : s + step], shape).reshape(-1, p)
        if not np.isfinite(sc).all():
            raise ValueError("a map contains non-finite values")
        parts.append(pd.DataFrame(_scores(sc, masks[s : s + step].reshape(-1, p), top_k)))
    if not parts:
        cols = [
            "auroc",
            "average_precision",
            *[f"{m}@{k:g}" for m in ("iou", "precision") for k in top_k],
        ]
        return pd.DataFrame(columns=cols, dtype=float)
    return pd.concat(parts, ignore_index=True)


def symmetric_kl_rows(p: np.ndarray, q: np.ndarray, eps: float = 1e-8) -> np.ndarray:
    """:func:`mmcxr.localization.symmetric_kl` of each row pair (maps flattened): both
    eps-smoothed and normalised, ``KL(p||q) + KL(q||p)`` in nats."""
    a = np.asarray(p, dtype=float).reshape(len(p), -1) + eps
    b = np.asarray(q, dtype=float).reshape(len(q), -1) + eps
    if a.shape != b.shape:
        raise ValueError(f"maps differ in shape: {a.shape} vs {b.shape}")
    a /= a.sum(1, keepdims=True)
    b /= b.sum(1, keepdims=True)
    return ((a - b) * (np.log(a) - np.log(b))).sum(1)


def entropy_rows(p: np.ndarray) -> np.ndarray:
    """Shannon entropy (nats) of each map, normalised to sum to one (``0 ln 0 = 0``)."""
    a = np.asarray(p, dtype=float).reshape(len(p), -1)
    a = a / a.sum(1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        return -np.where(a > 0, a * np.log(a), 0.0).sum(1)


def mean_ci(
    values: Sequence[float], n_boot: int = 1000, seed: int = 0, level: float = 0.95
) -> tuple[float, float, float]:
    """Mean of the finite values and its percentile-bootstrap interval (NaN without values;
    no interval when ``n_boot`` is 0)."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return math.nan, math.nan, math.nan
    if n_boot <= 0 or len(x) == 1:
        return float(x.mean()), math.nan, math.nan
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot)
    for s in range(0, n_boot, 256):
        idx = rng.integers(0, len(x), size=(min(256, n_boot - s), len(x)))
        means[s : s + len(idx)] = x[idx].mean(1)
    a = (1 - level) / 2
    lo, hi = np.quantile(means, [a, 1 - a])
    return float(x.mean()), float(lo), float(hi)


def subset_summary(
    long: pd.DataFrame, metrics: Sequence[str], subsets: Sequence[str], *, n_boot: int, seed: int
) -> pd.DataFrame:
    """Mean of each metric per ``model, sentences, perturbation`` and per subset (a boolean
    column of ``long`` for each name in ``subsets``) with its bootstrap interval over the
    instances (``<metric>_lo``/``_hi``) and the instance count ``n``."""
    rows = []
    keys = ["model", "sentences", "perturbation"]
    for combo, g in long.groupby(keys, sort=False):
        for subset in subsets:
            part = g[g[subset]]
            row = dict(zip(keys, combo, strict=True)) | {"subset": subset, "n": len(part)}
            for m in metrics:
                if m in part and part[m].notna().any():
                    row[m], row[f"{m}_lo"], row[f"{m}_hi"] = mean_ci(part[m], n_boot, seed)
            rows.append(row)
    return pd.DataFrame(rows)


def paired_deltas(
    long: pd.DataFrame, metrics: Sequence[str], subsets: Sequence[str], *, n_boot: int, seed: int
) -> pd.DataFrame:
    """Each perturbation's change of each metric, instance by instance (perturbed minus the
    same sentences unperturbed, ``perturbation == "none"``), per model and subset, with
    paired bootstrap intervals: ``model, perturbation, subset, n`` and the metrics."""
    rows = []
    key = ["model", "instance"]
    combos = long[long["perturbation"] != "none"][["sentences", "perturbation"]].drop_duplicates()
    for sentences, pert in combos.itertuples(index=False):
        same = long["sentences"] == sentences
        base = long[same & (long["perturbation"] == "none")].set_index(key)
        pt = long[same & (long["perturbation"] == pert)].set_index(key)
        for model in pt.index.get_level_values("model").unique():
            b, p = base.loc[model], pt.loc[model].reindex(base.loc[model].index)
            for subset in subsets:
                sel = b[subset].to_numpy()
                row = {"model": model, "perturbation": pert, "subset": subset, "n": int(sel.sum())}
                for m in metrics:
                    d = (p[m] - b[m]).to_numpy()[sel]
                    row[m], row[f"{m}_lo"], row[f"{m}_hi"] = mean_ci(d, n_boot, seed)
                rows.append(row)
    return pd.DataFrame(rows)
