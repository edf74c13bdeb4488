"""How well a map (attention, saliency) points at the right pixels, and related alignment scores.

The localization metrics follow paper 004 ("That's the Wrong Lung!"): a coarse attention map is
upsampled bilinearly to the image grid, the reference boxes become a binary pixel mask, and the
pixel scores are ranked against that mask (AUROC, average precision, IoU and precision of the
top-k % pixels). The same paper's random-attention symmetric KL and image-sentence retrieval
accuracy, and MEEMS's (paper 000) caption word-set IoU, live here too.

Boxes are ``(x1, y1, x2, y2)`` in pixel coordinates of the image they refer to, half-open like
numpy slices: the box covers columns ``x1 .. x2-1`` and rows ``y1 .. y2-1``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Sequence

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from scipy.stats import entropy
from sklearn import metrics as skm
from tqdm.auto import tqdm

Box = tuple[float, float, float, float]
DEFAULT_TOP_K: tuple[float, ...] = (5, 10, 25, 50)


def boxes_to_mask(boxes: Iterable[Box] | Box, shape: tuple[int, int]) -> np.ndarray:
    """Boolean ``shape`` mask that is True inside any of ``boxes``.

    Coordinates are clipped to the image (boxes partly outside are common after resizing);
    a box with ``x2 < x1`` or ``y2 < y1`` is an error, not an empty region.
    """
    h, w = int(shape[0]), int(shape[1])
    if h <= 0 or w <= 0:
        raise ValueError(f"shape must be positive (rows, cols), got {shape}")
    arr = np.asarray(list(boxes) if not isinstance(boxes, np.ndarray) else boxes, dtype=float)
    if arr.size == 0:
        return np.zeros((h, w), dtype=bool)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"boxes must be (x1, y1, x2, y2) tuples, got array of shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError("boxes contain non-finite coordinates")
    mask = np.zeros((h, w), dtype=bool)
    for x1, y1, x2, y2 in arr:
        if x2 < x1 or y2 < y1:
            raise ValueError(f"box {(x1, y1, x2, y2)} has x2 < x1 or y2 < y1")
        c1, c2 = int(np.clip(round(x1), 0, w)), int(np.clip(round(x2), 0, w))
        r1, r2 = int(np.clip(round(y1), 0, h)), int(np.clip(round(y2), 0, h))
        mask[r1:r2, c1:c2] = True
    return mask


def lesion_masks(
    image_ids: Sequence[str],
    gt: pd.DataFrame,
    cache,
    size: int,
    *,
    key: Callable[[str], str] | None = None,
) -> list[np.ndarray]:
    """Each image's planted findings (a synthetic root's ground truth, ``box_*`` columns) as
    one boolean ``(size, size)`` mask on the cache's letterboxed grid.

    The ground truth's boxes are inclusive pixel corners in the source image; they are mapped
    through the cache's geometry (``cache.geometry(image_id).map_box``) and rounded outwards.
    ``key`` maps an image id, in ``image_ids`` and in ``gt["image_id"]`` alike, to the id both
    share (when the cohort's loader names images differently from the ground truth).
    """
    from mmcxr.data.ground_truth import parse_box

    key = key or (lambda v: v)
    box_cols = [c for c in gt.columns if c.startswith("box_")]
    truth = gt.set_index(gt["image_id"].map(key))
    out = []
    for image_id in image_ids:
        k = key(image_id)
        if k not in truth.index:
            raise KeyError(f"image {image_id} is not in the ground-truth table")
        g = cache.geometry(image_id)
        boxes = []
        for c in box_cols:
            b = parse_box(truth.at[k, c])
            if b is not None:
                x1, y1, x2, y2 = b
                bx1, by1, bx2, by2 = g.map_box((x1, y1, x2 + 1, y2 + 1))
                # outward to whole pixels: a one-pixel-thin finding must not vanish when shrunk
                boxes.append((np.floor(bx1), np.floor(by1), np.ceil(bx2), np.ceil(by2)))
        out.append(boxes_to_mask(boxes, (size, size)))
    return out


def upsample(saliency: np.ndarray | torch.Tensor, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear upsampling of a 2-D map to ``shape`` (paper 004's pixel scores).

    Uses ``torch.nn.functional.interpolate(mode="bilinear", align_corners=False)``, which treats
    every map cell as covering an equal patch of the image -- the geometry of a CNN feature map.
    """
    t = torch.as_tensor(np.asarray(saliency, dtype=np.float32))
    if t.ndim != 2:
        raise ValueError(f"saliency must be a 2-D map, got shape {tuple(t.shape)}")
    if tuple(t.shape) == tuple(shape):
        return t.numpy().astype(np.float64)
    up = F.interpolate(
        t[None, None], size=tuple(int(s) for s in shape), mode="bilinear", align_corners=False
    )
    return up[0, 0].numpy().astype(np.float64)


def _scores_and_labels(saliency, mask) -> tuple[np.ndarray, np.ndarray]:
    m = np.asarray(mask)
    if m.ndim != 2:
        raise ValueError(f"mask must be 2-D, got shape {m.shape}")
    s = upsample(saliency, m.shape)
    if not np.isfinite(s).all():
        raise ValueError("saliency map contains non-finite values")
    return s.ravel(), m.astype(bool).ravel()


def _both_classes(labels: np.ndarray) -> bool:
    return bool(labels.any() and not labels.all())


def pixel_auroc(saliency: np.ndarray | torch.Tensor, mask: np.ndarray) -> float:
    """AUROC of pixel scores against the box mask; NaN if the mask is empty or full."""
    s, lab = _scores_and_labels(saliency, mask)
    return float(skm.roc_auc_score(lab, s)) if _both_classes(lab) else math.nan


def pixel_average_precision(saliency: np.ndarray | torch.Tensor, mask: np.ndarray) -> float:
    """Average precision of pixel scores against the mask; NaN if the mask is empty."""
    s, lab = _scores_and_labels(saliency, mask)
    return float(skm.average_precision_score(lab, s)) if lab.any() else math.nan


def top_k_mask(saliency: np.ndarray | torch.Tensor, k: float, shape=None) -> np.ndarray:
    """Pixels among the top ``k`` percent of scores.

    The cut is the score of the ``ceil(k/100 * P)``-th highest pixel and every pixel scoring at
    least that is kept, so ties at the cut are all included (a flat map selects everything)
    rather than broken by pixel position.
    """
    if not 0 < k <= 100:
        raise ValueError(f"k is a percentage in (0, 100], got {k}")
    s = upsample(saliency, shape) if shape is not None else np.asarray(saliency, dtype=float)
    flat = s.ravel()
    n_top = max(1, math.ceil(k / 100 * flat.size))
    cut = np.partition(flat, flat.size - n_top)[flat.size - n_top]
    return s >= cut


def iou_at_top_k(saliency: np.ndarray | torch.Tensor, mask: np.ndarray, k: float) -> float:
    """IoU between the top-``k`` % pixels and the mask (paper 004's IOU@k%)."""
    m = np.asarray(mask, dtype=bool)
    top = top_k_mask(saliency, k, m.shape)
    union = np.logical_or(top, m).sum()
    return float(np.logical_and(top, m).sum() / union) if union else math.nan


def precision_at_top_k(saliency: np.ndarray | torch.Tensor, mask: np.ndarray, k: float) -> float:
    """Fraction of the top-``k`` % pixels that fall inside the mask (paper 004's P@k%)."""
    m = np.asarray(mask, dtype=bool)
    top = top_k_mask(saliency, k, m.shape)
    return float(np.logical_and(top, m).sum() / top.sum())


def localization_scores(
    saliency: np.ndarray | torch.Tensor,
    mask: np.ndarray,
    top_k: Sequence[float] = DEFAULT_TOP_K,
) -> dict[str, float]:
    """``auroc``, ``average_precision``, ``iou@k`` and ``precision@k`` for one map and mask."""
    m = np.asarray(mask, dtype=bool)
    s = upsample(saliency, m.shape)
    out = {"auroc": pixel_auroc(s, m), "average_precision": pixel_average_precision(s, m)}
    for k in top_k:
        out[f"iou@{k:g}"] = iou_at_top_k(s, m, k)
    for k in top_k:
        out[f"precision@{k:g}"] = precision_at_top_k(s, m, k)
    return out


def localization_table(
    maps: Sequence[np.ndarray | torch.Tensor],
    boxes: Sequence[Iterable[Box]],
    image_shapes: Sequence[tuple[int, int]] | tuple[int, int],
    top_k: Sequence[float] = DEFAULT_TOP_K,
    *,
    progress: bool = True,
) -> pd.DataFrame:
    """:func:`localization_scores` for many (map, boxes) instances, one row each.

    ``image_shapes`` is one ``(rows, cols)`` for all instances or one per instance; maps are
    upsampled to it and boxes are in its pixel coordinates.
    """
    if len(maps) != len(boxes):
        raise ValueError(f"{len(maps)} maps but {len(boxes)} box sets")
    if len(image_shapes) == 2 and all(isinstance(v, int | np.integer) for v in image_shapes):
        shapes = [tuple(image_shapes)] * len(maps)
    else:
        shapes = list(image_shapes)
        if len(shapes) != len(maps):
            raise ValueError(f"{len(maps)} maps but {len(shapes)} image shapes")
    rows = []
    for sal, bx, shp in tqdm(
        zip(maps, boxes, shapes, strict=True),
        total=len(maps),
        desc="localization",
        disable=not progress,
    ):
        rows.append(localization_scores(sal, boxes_to_mask(bx, shp), top_k))
    return pd.DataFrame(rows)


def symmetric_kl(
    p: np.ndarray | torch.Tensor, q: np.ndarray | torch.Tensor, eps: float = 1e-8
) -> float:
    """Symmetric KL divergence ``KL(p||q) + KL(q||p)`` between two attention maps (nats).

    Paper 004's "random attention KL": each map is eps-smoothed (``a + eps``) and normalised to
    a distribution first, so maps with exact zeros stay finite. Maps must be non-negative and of
    the same shape.
    """
    a = np.asarray(p, dtype=float).ravel()
    b = np.asarray(q, dtype=float).ravel()
    if a.shape != b.shape:
        raise ValueError(f"attention maps differ in size: {np.shape(p)} vs {np.shape(q)}")
    if eps < 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    for name, v in (("p", a), ("q", b)):
        if not np.isfinite(v).all() or (v < 0).any():
            raise ValueError(f"attention map {name} must be finite and non-negative")
    a, b = a + eps, b + eps
    if a.sum() == 0 or b.sum() == 0:
        raise ValueError("an all-zero attention map is not a distribution; use eps > 0")
    return float(entropy(a, b) + entropy(b, a))  # scipy normalises both arguments


def attention_entropy(attention: np.ndarray | torch.Tensor, eps: float = 0.0) -> float:
    """Shannon entropy (nats) of a normalised attention map (paper 004, Table 10).

    A uniform map over M cells reaches the maximum ``ln M``; a model that localises sharply
    scores lower.
    """
    a = np.asarray(attention, dtype=float).ravel() + eps
    if not np.isfinite(a).all() or (a < 0).any() or a.sum() == 0:
        raise ValueError("attention map must be finite, non-negative and not all zero")
    return float(entropy(a))


def sample_negatives(groups: Sequence[object], seed: int = 0) -> np.ndarray:
    """For each item, the index of a random item from a *different* group (e.g. report).

    Used for paper 004's retrieval check: the "random sentence" must come from another report.
    """
    g = pd.factorize(pd.Series(list(groups)))[0]
    if len(np.unique(g)) < 2:
        raise ValueError("need at least two groups to draw negatives from a different group")
    rng = np.random.default_rng(seed)
    out = np.empty(len(g), dtype=int)
    for i, gi in enumerate(g):
        candidates = np.flatnonzero(g != gi)
        out[i] = candidates[rng.integers(len(candidates))]
    return out


def retrieval_accuracy(true_scores: Sequence[float], random_scores: Sequence[float]) -> float:
    """Fraction of instances where score(image, own sentence) > score(image, random sentence).

    Paper 004's simplified text retrieval: 0.5 is chance. Ties count one half, so a scorer that
    ignores its input (constant similarity) lands at chance instead of 0.
    """
    t = np.asarray(true_scores, dtype=float)
    r = np.asarray(random_scores, dtype=float)
    if t.shape != r.shape or t.ndim != 1 or len(t) == 0:
        raise ValueError(f"need two equal-length 1-D score arrays, got {t.shape} and {r.shape}")
    return float(np.mean((t > r) + 0.5 * (t == r)))


def retrieval_accuracy_matrix(
    similarity: np.ndarray | torch.Tensor,
    groups: Sequence[object] | None = None,
    seed: int = 0,
) -> float:
    """:func:`retrieval_accuracy` from a square image x sentence similarity matrix.

    Row ``i`` is an image, column ``i`` its own sentence; the negative for row ``i`` is a random
    column from a different group (``groups``, e.g. report ids; default: any other column).
    """
    s = np.asarray(similarity, dtype=float)
    if s.ndim != 2 or s.shape[0] != s.shape[1]:
        raise ValueError(f"similarity must be square (images x their sentences), got {s.shape}")
    g = list(range(len(s))) if groups is None else list(groups)
    if len(g) != len(s):
        raise ValueError(f"{len(g)} groups for {len(s)} instances")
    neg = sample_negatives(g, seed)
    rows = np.arange(len(s))
    return retrieval_accuracy(s[rows, rows], s[rows, neg])


_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def caption_words(text: str) -> set[str]:
    """Lower-cased word set of a caption (punctuation dropped, as MEEMS processes reports)."""
    return set(_WORD.findall(text.lower()))


def caption_iou(generated: str, reference: str) -> float:
    """Word-set IoU between a generated and a reference caption (paper 000).

    Two empty captions are identical and score 1.0.
    """
    a, b = caption_words(generated), caption_words(reference)
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def mean_caption_iou(generated: Sequence[str], references: Sequence[str]) -> float:
    """Mean :func:`caption_iou` over paired captions (MEEMS's per-epoch caption score)."""
    if len(generated) != len(references) or not generated:
        raise ValueError(f"{len(generated)} generated vs {len(references)} reference captions")
    return float(np.mean([caption_iou(g, r) for g, r in zip(generated, references, strict=True)]))


# --------------------------------------------------------------------------------------------
# bounding circles and the pointing game (paper 002's detector scored against planted lesions)


def disc_mask(x: float, y: float, radius: float, shape: tuple[int, int]) -> np.ndarray:
    """Boolean ``shape`` mask of the pixels whose centre lies within ``radius`` of ``(x, y)``.

    ``x`` is a column and ``y`` a row, as :func:`mmcxr.explain.sight_sensitivity` gives them; a
    cluster of one pixel has radius 0 and still covers that pixel.
    """
    h, w = int(shape[0]), int(shape[1])
    if radius < 0 or not all(math.isfinite(v) for v in (x, y, radius)):
        raise ValueError(f"need a finite centre and radius >= 0, got ({x}, {y}, {radius})")
    rows, cols = np.ogrid[:h, :w]
    return (cols - x) ** 2 + (rows - y) ** 2 <= radius**2 + 1e-9


def circle_overlaps(circles: pd.DataFrame, mask: np.ndarray) -> np.ndarray:
    """For each circle (rows with ``x, y, radius``), whether its disc touches the mask.

    A circle drawn around a finding is "true" when any pixel it encloses belongs to the
    finding; a circle that encloses none of it is a false detection (paper 002's structured
    noise). An empty mask makes every circle false.
    """
    m = np.asarray(mask, dtype=bool)
    if m.ndim != 2:
        raise ValueError(f"mask must be 2-D, got shape {m.shape}")
    missing = [c for c in ("x", "y", "radius") if c not in circles.columns]
    if missing:
        raise ValueError(f"circles lack columns {missing}")
    return np.array(
        [bool((disc_mask(c.x, c.y, c.radius, m.shape) & m).any()) for c in circles.itertuples()],
        dtype=bool,
    )


def circle_localization(
    circles: pd.DataFrame, mask: np.ndarray, tolerance: int = 0
) -> dict[str, float]:
    """One image's detection against its lesion mask.

    A circle is a true detection when its centre lies on the lesion (grown by ``tolerance``
    pixels): touching the lesion is not enough, or one circle around the whole film would
    find every lesion. Returns ``hit`` (some circle is true), ``n_circles``,
    ``true_circles``, ``false_circles`` (paper 002's structured noise), ``covered`` (share of
    lesion pixels inside some circle: the true signal kept) and ``precision`` (share of the
    circled pixels that are lesion: what a reader shown the circles looks at in vain).
    """
    m = _grow(np.asarray(mask, dtype=bool), tolerance)
    lesion = np.asarray(mask, dtype=bool)
    h, w = m.shape
    true = np.array(
        [
            bool(m[min(max(round(c.y), 0), h - 1), min(max(round(c.x), 0), w - 1)])
            for c in circles.itertuples()
        ],
        dtype=bool,
    )
    union = np.zeros(m.shape, dtype=bool)
    for c in circles.itertuples():
        union |= disc_mask(c.x, c.y, c.radius, m.shape)
    return {
        "hit": float(true.any()),
        "n_circles": float(len(true)),
        "true_circles": float(true.sum()),
        "false_circles": float((~true).sum()),
        "covered": float((union & lesion).sum() / lesion.sum()) if lesion.any() else math.nan,
        "precision": float((union & lesion).sum() / union.sum()) if union.any() else math.nan,
    }


def _grow(mask: np.ndarray, tolerance: int) -> np.ndarray:
    """``mask`` dilated by ``tolerance`` pixels (a square neighbourhood)."""
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0 pixels, got {tolerance}")
    if not tolerance:
        return mask
    t = int(tolerance)
    grown = F.max_pool2d(
        torch.as_tensor(mask, dtype=torch.float32)[None, None], 2 * t + 1, stride=1, padding=t
    )
    return grown[0, 0].numpy() > 0


def pointing_game(
    saliency: np.ndarray | torch.Tensor, mask: np.ndarray, tolerance: int = 0
) -> float:
    """1.0 when the map's maximum falls on the mask (grown by ``tolerance`` pixels), else 0.0.

    Zhang et al.'s pointing game: one point per image, no threshold to choose. The map is
    upsampled to the mask's grid first; when several pixels share the maximum (an upsampled
    coarse map has a plateau there) the point is their centroid, and a flat map points
    nowhere (0.0). NaN for an empty mask.
    """
    m = np.asarray(mask, dtype=bool)
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0 pixels, got {tolerance}")
    if not m.any():
        return math.nan
    s = upsample(saliency, m.shape)
    if not np.isfinite(s).all():
        raise ValueError("saliency map contains non-finite values")
    if s.max() == s.min():
        return 0.0
    m = _grow(m, tolerance)
    rows, cols = np.nonzero(s >= s.max())
    return float(m[int(np.floor(rows.mean() + 0.5)), int(np.floor(cols.mean() + 0.5))])
