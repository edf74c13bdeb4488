"""A procedural chest radiograph: per-patient anatomy, the CheXpert findings, three views.

Why hand-written: no library in the stack renders chest radiographs, and the book needs films
whose findings (which side, which zone, how big) are known exactly, so that classifiers,
localisation maps and shortcut experiments can be scored against planted ground truth.

How it works. Everything is analytic in a patient-centred *body frame* (units of image height,
origin mid-chest, +x towards the image's right = the patient's left on PA/AP, +y down). The
frame is mapped onto the requested pixel grid once per render (patient size, offset, small
rotation), so any size renders directly and a 512-row film costs a few tens of milliseconds.
Image formation is a crude line integral: each structure adds attenuation (soft tissue, bone,
fluid, metal) or removes it (air), and the sum goes through an exponential film response.
Findings therefore behave like their real counterparts: an effusion replaces lung air with
fluid and so silhouettes the hemidiaphragm; a pneumothorax replaces lung with air, so the
vessels vanish behind a thin pleural line.

Ground truth is exact by construction: every finding is drawn through a window that is zero
outside the Chest ImaGenome box(es) :func:`region_for` names, and the anatomy boxes are read
off the same masks the pixels are drawn from. Devices and burned-in text are rasterised by
Pillow; blurs and smooth random blotches come from ``scipy.ndimage``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont
from scipy import ndimage
from scipy.interpolate import CubicSpline

from mmcxr.synth.labels import (
    CENTRAL,
    DEVICE_ALIASES,
    FINDING_LABELS,
    LABEL_ZONES,
    SIDED_WITHOUT_ZONE,
    SIDES,
)

ASPECT = 2544 / 3056  # MIMIC-CXR's usual portrait film, columns / rows
FULL_ROWS = 3056
VIEWS = ("PA", "AP", "LATERAL", "LL")  # LL (left lateral) is drawn as LATERAL
MIN_ROWS = 32

#: Chest ImaGenome anatomical boxes returned for frontal views.
ANATOMY_BOX_NAMES: tuple[str, ...] = (
    "right lung",
    "left lung",
    "right upper lung zone",
    "right mid lung zone",
    "right lower lung zone",
    "left upper lung zone",
    "left mid lung zone",
    "left lower lung zone",
    "right apical zone",
    "left apical zone",
    "right hilar structures",
    "left hilar structures",
    "right costophrenic angle",
    "left costophrenic angle",
    "right hemidiaphragm",
    "left hemidiaphragm",
    "trachea",
    "right clavicle",
    "left clavicle",
    "aortic arch",
    "upper mediastinum",
    "svc",
    "cardiac silhouette",
    "cavoatrial junction",
    "right atrium",
    "carina",
    "abdomen",
    "spine",
    "mediastinum",
)

_F = np.float32
_BIG = 3.0e38  # clip(x, 0, None) is several times slower than a finite upper bound
_RIB = 0.2  # attenuation of a rib at full cortical thickness (soft tissue through chest = 1)
_ORIGIN_Y = 0.42  # the body-frame origin sits 42% of the way down the film
_BOX = tuple[int, int, int, int]
_SL = tuple[slice, slice]


# --------------------------------------------------------------------------------------------
# public types


@dataclass(frozen=True)
class Finding:
    """One planted finding in one study.

    ``side`` is the patient's side ("right" is drawn on the image's left in PA/AP), or
    "bilateral", or None (the renderer picks one for lateralised labels). ``severity`` runs
    from 0 (subtle) to 1 (obvious). ``attrs``: ``{"chest_tube": True}`` for a pneumothorax,
    ``{"device": name or [names]}`` for support devices (see ``labels.DEVICE_ALIASES``;
    without it one or two devices are picked at random per film),
    ``{"air_bronchograms": bool}`` for consolidation and pneumonia.
    """

    label: str
    side: str | None = None
    zone: str | None = None
    severity: float = 0.5
    attrs: dict[str, Any] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if self.label not in FINDING_LABELS:
            raise ValueError(
                f"Finding label {self.label!r} is not a drawable CheXpert finding; "
                f"expected one of {list(FINDING_LABELS)}"
            )
        if self.side is not None and self.side not in SIDES:
            raise ValueError(
                f"Finding({self.label!r}): side must be one of {SIDES} or None, got {self.side!r}"
            )
        if self.label in CENTRAL and self.side is not None:
            raise ValueError(
                f"Finding({self.label!r}) is central and takes no side, got side={self.side!r}"
            )
        allowed = LABEL_ZONES.get(self.label, ())
        if self.zone is not None and self.zone not in allowed:
            raise ValueError(
                f"Finding({self.label!r}) cannot take zone {self.zone!r}; "
                f"allowed: {list(allowed) or 'no zone'}"
            )
        sev = float(self.severity)
        if not 0.0 <= sev <= 1.0:
            raise ValueError(
                f"Finding({self.label!r}): severity must be in [0, 1], got {self.severity!r}"
            )
        if not isinstance(self.attrs, dict):
            raise TypeError(
                f"Finding({self.label!r}): attrs must be a dict, got {type(self.attrs).__name__}"
            )
        if self.label == "Support Devices":
            _device_names(self)  # validates


@dataclass(frozen=True)
class Anatomy:
    """One patient's geometry and exposure, in body-frame units (fractions of film height).

    Sampled once per patient by :func:`sample_anatomy` so that all of a patient's films (and
    both views of a study) share a body; lung-marking phases come from ``seed``.
    """

    seed: int
    scale: float  # patient size relative to the film
    offset: tuple[float, float]  # chest centre shift (x, y) in film heights
    rotation: float  # radians, in the film plane
    lung_width: tuple[float, float]  # (right, left) half-thorax widths
    apex: float  # lung apex level
    diaphragm: tuple[float, float]  # (right, left) dome tops; right is higher (liver)
    ctr: float  # cardiothoracic ratio of the normal heart
    heart_tilt: float  # radians, long axis below horizontal towards the patient's left
    mediastinum: float  # mediastinal half-width
    clavicle: float  # level of the medial clavicle ends
    rib_spacing: float
    habitus: float  # 0 thin .. 1 heavy (chest-wall soft tissue)
    exposure: float  # film response gain
    contrast: float  # display window narrowing
    noise: float  # quantum noise level
    inspiration: float = 0.5  # 0 shallow .. 1 deep: lower domes, more air in the lungs
    heart_shape: float = 0.707  # short over long axis of the cardiac ellipse
    heart_right: float = 0.30  # share of the heart's half-width lying right of the midline
    fat_pad: float = 0.0  # 0 none .. 1 large epicardial fat pad at the left cardiophrenic angle
    vessels: float = 1.0  # prominence of the hila and lung markings
    aortic_knob: float = 0.03  # bulge of the aortic knob (an unfolded aorta widens it)


@dataclass
class Rendered:
    """A rendered film and its pixel truth (masks and boxes are empty for LATERAL)."""

    image: np.ndarray  # float32 in [0, 1], rows x cols, bone bright
    masks: dict[str, np.ndarray]  # CheXpert label -> bool mask of where it was drawn
    lesion_boxes: dict[str, _BOX]  # label -> (x1, y1, x2, y2), inclusive pixel indices
    anatomy_boxes: dict[str, _BOX]  # Chest ImaGenome bbox_name -> (x1, y1, x2, y2)


#: A finding at its own difficulty ``e`` (see :class:`Conspicuity`) keeps ``1 - CONTRAST_LOSS
#: * e`` of its density and is drawn at ``1 - SIZE_LOSS * e`` of its severity (size and density
#: both follow severity); at knob ``d`` every film's lungs carry patchy texture of peak density
#: about ``TEXTURE * d``.
CONTRAST_LOSS = 0.7
SIZE_LOSS = 0.5
TEXTURE = 0.5
#: Labels the film-wide ``difficulty`` leaves alone (devices are metal, not lesions); a
#: per-label override still applies to them.
CONSPICUITY_EXEMPT = frozenset({"Support Devices"})


@dataclass(frozen=True)
class Conspicuity:
    """How hard findings are to see: ``difficulty`` 0 (as drawn) .. 1 (hardest).

    Three things make a real finding hard to read, and the knob turns all three: its
    *contrast*, its *size*, and how far its *texture overlaps normal anatomy*. Findings are
    not all equally hard, so each one gets its own difficulty ``e`` (:meth:`level`): ``u **
    ((1 - d) / d)`` for the knob ``d`` and a uniform draw ``u`` fixed by the finding (both
    views of a study agree). ``e`` is 0 at ``d = 0``, 1 at ``d = 1``, uniform at ``d = 0.5``;
    the share of findings harder than ``x`` is ``1 - x ** (d / (1 - d))``, so turning the knob
    moves findings from obvious to occult gradually, rather than making all of them faint at
    once (a classifier on a small cohort then either sees all of them or none). A finding at
    ``e`` keeps ``1 - CONTRAST_LOSS * e`` of its density and is drawn at severity ``severity
    * (1 - SIZE_LOSS * e)``: smaller and fainter, with its mask and box following what is
    drawn. Every frontal and lateral film, normal or not, also gets smooth patchy lung density
    with the grain of airspace disease, peak about ``TEXTURE * d``, from its own random stream
    so the other pixels do not move.

    ``by_label`` overrides ``d`` per CheXpert label for contrast and size; the texture is
    film-wide and follows ``difficulty``. At 0 (the default) nothing changes, pixel for
    pixel. The planned severity recorded in a cohort's ground truth is never changed: the
    knob decides only what reaches the film. ``Finding.attrs["conspicuity_draw"]`` (in
    [0, 1)) fixes a finding's ``u`` by hand.
    """

    difficulty: float = 0.0
    by_label: dict[str, float] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        for name, v in [("difficulty", self.difficulty), *self.by_label.items()]:
            if not 0.0 <= float(v) <= 1.0:
                raise ValueError(f"Conspicuity: {name} must be in [0, 1], got {v!r}")
        unknown = set(self.by_label) - set(FINDING_LABELS)
        if unknown:
            raise ValueError(f"Conspicuity.by_label: unknown labels {sorted(unknown)}")

    def of(self, label: str) -> float:
        """The knob for one label (its override, else the film-wide value)."""
        if label in self.by_label:
            return float(self.by_label[label])
        return 0.0 if label in CONSPICUITY_EXEMPT else float(self.difficulty)

    def level(self, finding: Finding) -> float:
        """This finding's own difficulty ``e`` in [0, 1] (see the class)."""
        d = self.of(finding.label)
        if d <= 0.0 or d >= 1.0:
            return d
        u = finding.attrs.get("conspicuity_draw")
        if u is None:  # a hash of the finding: the same on every view of a study
            key = [FINDING_LABELS.index(finding.label), int(round(finding.severity * 2**40))]
            u = np.random.default_rng([17, *key]).random()
        return float(u) ** ((1.0 - d) / d)

    def contrast(self, finding: Finding) -> float:
        """The share of its density a finding keeps."""
        return 1.0 - CONTRAST_LOSS * self.level(finding)

    def drawn(self, finding: Finding) -> Finding:
        """The finding as it reaches the film: severity scaled by ``1 - SIZE_LOSS * e``."""
        e = self.level(finding)
        if e == 0.0:
            return finding
        return dataclasses.replace(finding, severity=finding.severity * (1.0 - SIZE_LOSS * e))

    @property
    def texture(self) -> float:
        return TEXTURE * float(self.difficulty)


def sample_anatomy(rng: np.random.Generator) -> Anatomy:
    """Draw one patient's body and exposure from ``rng`` (a fixed number of draws).

    The spreads are wide on purpose: real films differ in patient size and centring, a few
    degrees of tilt, depth of inspiration, soft tissue and exposure, and a classifier that
    reads a finding off fixed pixels or off the overall lung brightness must meet that
    variation. The normal heart's CTR is drawn around 0.45 with a tail up to 0.52, as normal
    hearts are measured (a CTR just over 0.5 is not by itself called cardiomegaly).
    """
    u = rng.uniform
    seed = int(rng.integers(0, 2**31 - 1))
    rw = u(0.252, 0.305)
    inspiration = float(u(0.0, 1.0))
    dr = 0.168 + 0.08 * inspiration + u(-0.008, 0.008)
    return Anatomy(
        seed=seed,
        scale=float(u(0.87, 1.06)),
        offset=(float(u(-0.028, 0.028)), float(u(-0.022, 0.02))),
        rotation=float(np.deg2rad(u(-3.0, 3.0))),
        lung_width=(float(rw), float(rw * u(0.93, 0.99))),
        apex=float(u(-0.305, -0.27)),
        diaphragm=(float(dr), float(dr + u(0.012, 0.035))),
        ctr=float(np.clip(rng.normal(0.46, 0.035), 0.37, 0.525)),
        heart_tilt=float(np.deg2rad(u(36.0, 52.0))),
        mediastinum=float(u(0.044, 0.070)),
        clavicle=float(u(-0.26, -0.225)),
        rib_spacing=float(u(0.048, 0.056)),
        habitus=float(u(0.0, 1.0)),
        exposure=float(u(0.8, 1.22)),
        contrast=float(u(0.88, 1.14)),
        noise=float(u(0.010, 0.025)),
        inspiration=inspiration,
        heart_shape=float(u(0.62, 0.80)),
        heart_right=float(u(0.18, 0.42)),
        fat_pad=float(u(0.0, 1.0) ** 1.5),
        vessels=float(u(0.75, 1.3)),
        aortic_knob=float(u(0.018, 0.046)),
    )


def region_for(finding: Finding) -> list[str]:
    """Chest ImaGenome box names whose union contains the finding when drawn on a frontal film.

    The first name is the most specific. Support devices run from the neck to the abdomen and
    get no box (an empty list means "not confined").
    """
    label = finding.label
    if label == "Cardiomegaly":
        return ["cardiac silhouette"]
    if label == "Enlarged Cardiomediastinum":
        return ["mediastinum"]
    if label == "Support Devices":
        return []
    sides = _sides(finding.side)
    if label == "Pleural Effusion":
        return [n for s in sides for n in (f"{s} costophrenic angle", f"{s} lower lung zone")]
    if label == "Pneumothorax":
        return [n for s in sides for n in (f"{s} apical zone", f"{s} lung")]
    if label == "Edema":
        return [f"{s} lung" for s in sides]
    return [_zone_box_name(s, finding.zone) for s in sides]


def cardiothoracic_ratio(rendered: Rendered) -> float:
    """Cardiac silhouette width over the inner thoracic width (lung outer edges), from boxes."""
    b = rendered.anatomy_boxes
    if not {"cardiac silhouette", "right lung", "left lung"} <= set(b):
        raise ValueError(
            "cardiothoracic_ratio needs a frontal render (PA or AP) with anatomy boxes"
        )
    heart = b["cardiac silhouette"][2] - b["cardiac silhouette"][0] + 1
    thorax = b["left lung"][2] - b["right lung"][0] + 1
    return heart / thorax


def film_shape(rows: int) -> tuple[int, int]:
    """(rows, cols) of a film with ``rows`` rows in MIMIC-CXR's portrait aspect."""
    return rows, int(round(rows * ASPECT))


def render(
    anatomy: Anatomy,
    findings: Sequence[Finding],
    view: str,
    rows: int,
    rng: np.random.Generator,
    *,
    marker: str | None = None,
    conspicuity: Conspicuity | None = None,
) -> Rendered:
    """Draw one film of ``anatomy`` with ``findings`` in ``view`` ("PA", "AP", "LATERAL"/"LL").

    The image is ``film_shape(rows)``. ``rng`` is consumed by exactly one draw (a seed from
    which noise and per-finding shapes are derived), so adding a finding changes pixels only
    where that finding is drawn. ``marker``: "PORTABLE" (or any short text) burns a bright
    text tag into the top-right corner; "spurious" burns a small bright token into the
    top-left corner, for shortcut-learning experiments. ``conspicuity`` makes the findings
    harder to see (:class:`Conspicuity`; None: as drawn).
    """
    if view not in VIEWS:
        raise ValueError(f"view must be one of {VIEWS}, got {view!r}")
    if int(rows) != rows or rows < MIN_ROWS:
        raise ValueError(f"rows must be an integer >= {MIN_ROWS}, got {rows!r}")
    if not isinstance(anatomy, Anatomy):
        raise TypeError(
            f"anatomy must be an Anatomy (see sample_anatomy), got {type(anatomy).__name__}"
        )
    findings = tuple(findings)
    for f in findings:
        if not isinstance(f, Finding):
            raise TypeError(f"findings must be Finding objects, got {type(f).__name__}")
    if marker is not None and (not isinstance(marker, str) or not marker.strip()):
        raise ValueError(f"marker must be a non-empty string or None, got {marker!r}")
    if conspicuity is not None and not isinstance(conspicuity, Conspicuity):
        raise TypeError(f"conspicuity must be a Conspicuity, got {type(conspicuity).__name__}")
    seen = conspicuity or Conspicuity()
    gains = [seen.contrast(f) for f in findings]
    findings = tuple(seen.drawn(f) for f in findings)
    rows, cols = film_shape(int(rows))
    base = int(rng.integers(0, 2**62))
    frame = _Frame(rows, cols, anatomy)
    keyed = _keyed_findings(findings, base)
    for k, gain in zip(keyed, gains, strict=True):
        k.gain = gain
    texture = (seen.texture, np.random.default_rng([base, 3]))
    if view in ("LATERAL", "LL"):
        view = "LATERAL"
        atten = _lateral(frame, anatomy, keyed, texture)
        masks: dict[str, np.ndarray] = {}
        anatomy_boxes: dict[str, _BOX] = {}
    else:
        atten, masks, anatomy_boxes = _frontal(frame, anatomy, keyed, view, texture)
    image = _film(atten, anatomy, view, np.random.default_rng([base, 1]))
    if marker is not None:
        _burn_marker(image, marker)
    lesion_boxes = {k: b for k, m in masks.items() if (b := _bbox(m)) is not None}
    masks = {k: m for k, m in masks.items() if k in lesion_boxes}
    return Rendered(image, masks, lesion_boxes, anatomy_boxes)


# --------------------------------------------------------------------------------------------
# small helpers


def _sides(side: str | None) -> list[str]:
    return ["right", "left"] if side in (None, "bilateral") else [side]


def _zone_box_name(side: str, zone: str | None) -> str:
    if zone is None:
        return f"{side} lung"
    if zone == "apical":
        return f"{side} apical zone"
    return f"{side} {'lower' if zone == 'basal' else zone} lung zone"


def _device_names(f: Finding) -> list[str]:
    raw = f.attrs.get("device")
    if raw is None:
        return []
    names = [raw] if isinstance(raw, str) else list(raw)
    out = []
    for n in names:
        key = str(n).lower()
        if key not in DEVICE_ALIASES:
            raise ValueError(
                f"Finding('Support Devices'): unknown device {n!r}; expected one of "
                f"{sorted(DEVICE_ALIASES)}"
            )
        out.append(DEVICE_ALIASES[key])
    return out


@dataclass
class _Keyed:
    finding: Finding
    rng: np.random.Generator
    sides: list[str]
    gain: float = 1.0  # contrast kept (Conspicuity.contrast)


def _keyed_findings(findings: tuple[Finding, ...], base: int) -> list[_Keyed]:
    """Give each finding its own random stream, keyed by label and occurrence, not position."""
    seen: dict[str, int] = {}
    out = []
    for f in findings:
        k = seen.get(f.label, 0)
        seen[f.label] = k + 1
        rng = np.random.default_rng([base, 2, FINDING_LABELS.index(f.label), k])
        if f.side is None and f.label not in CENTRAL and f.label not in SIDED_WITHOUT_ZONE:
            sides = [("right", "left")[int(rng.integers(2))]]
        elif f.label == "Support Devices":
            sides = [f.side] if f.side in ("right", "left") else []
        else:
            sides = _sides(f.side) if f.label not in CENTRAL else []
        out.append(_Keyed(f, rng, sides))
    return out


def _ramp(d: np.ndarray, width: float) -> np.ndarray:
    """0 where ``d`` <= 0, rising linearly to 1 at ``d`` = width: a cheap anti-aliased edge."""
    return np.clip(d * _F(1.0 / width), 0.0, 1.0)


def _bump(y: np.ndarray, centre: float, half: float) -> np.ndarray:
    """Compact C1 bump: 1 at ``centre``, 0 beyond ``half`` either side."""
    t = np.clip(1.0 - ((y - centre) / half) ** 2, 0.0, 1.0)
    return t * t


def _bone(u: np.ndarray) -> np.ndarray:
    """Projected thickness across a hollow bone (u in [-1, 1]): bright cortex, paler medulla."""
    u2 = u * u
    return np.sqrt(np.clip(1.0 - u2, 0.0, _BIG)) - _F(0.62) * np.sqrt(np.clip(0.55 - u2, 0.0, _BIG))


def _bbox(mask: np.ndarray | None, r0: int = 0, c0: int = 0) -> _BOX | None:
    if mask is None:
        return None
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return (int(c0 + cols[0]), int(r0 + rows[0]), int(c0 + cols[-1]), int(r0 + rows[-1]))


def _union(*boxes: _BOX | None) -> _BOX | None:
    bs = [b for b in boxes if b is not None]
    if not bs:
        return None
    return (
        min(b[0] for b in bs),
        min(b[1] for b in bs),
        max(b[2] for b in bs),
        max(b[3] for b in bs),
    )


def _box_window(
    boxes: Sequence[_BOX], sl: _SL, frac: float = 0.06, frac_x: float | None = None
) -> np.ndarray:
    """Separable window, zero on and outside each box's border, 1 a few percent inside.

    Multiplying a finding's density by it makes "the finding lies inside its box" true by
    construction; for several boxes the windows are combined by maximum (their union).
    """
    r = np.arange(sl[0].start, sl[0].stop, dtype=_F)
    c = np.arange(sl[1].start, sl[1].stop, dtype=_F)
    out = None
    for x1, y1, x2, y2 in boxes:
        ry = max(1.0, frac * (y2 - y1))
        rx = max(1.0, (frac if frac_x is None else frac_x) * (x2 - x1))
        wy = np.clip((r - y1) / ry, 0, 1) * np.clip((y2 - r) / ry, 0, 1)
        wx = np.clip((c - x1) / rx, 0, 1) * np.clip((x2 - c) / rx, 0, 1)
        w = wy[:, None] * wx[None, :]
        out = w if out is None else np.maximum(out, w)
    assert out is not None
    return out.astype(_F)


def _coarse_noise(rng: np.random.Generator, shape: tuple[int, int], cells: float) -> np.ndarray:
    """Smooth blotchy noise (about N(0,1)) with ``cells`` blobs across the longer side."""
    n0 = max(2, int(round(cells * shape[0] / max(shape)))) + 2
    n1 = max(2, int(round(cells * shape[1] / max(shape)))) + 2
    g = rng.standard_normal((n0, n1)).astype(_F)
    z = ndimage.zoom(g, (shape[0] / n0, shape[1] / n1), order=3, mode="nearest", grid_mode=True)
    z = z[: shape[0], : shape[1]]
    if z.shape != shape:
        z = np.pad(z, ((0, shape[0] - z.shape[0]), (0, shape[1] - z.shape[1])), mode="edge")
    return z


def _local(sl: _SL, inner: _SL) -> _SL:
    """``inner`` (absolute slices, inside ``sl``) as slices relative to ``sl``."""
    return (
        slice(inner[0].start - sl[0].start, inner[0].stop - sl[0].start),
        slice(inner[1].start - sl[1].start, inner[1].stop - sl[1].start),
    )


def _intersect(a: _SL, b: _SL) -> _SL | None:
    r0, r1 = max(a[0].start, b[0].start), min(a[0].stop, b[0].stop)
    c0, c1 = max(a[1].start, b[1].start), min(a[1].stop, b[1].stop)
    if r0 >= r1 or c0 >= c1:
        return None
    return slice(r0, r1), slice(c0, c1)


# --------------------------------------------------------------------------------------------
# the body frame on the pixel grid


class _Frame:
    """Pixel grid <-> body frame, plus a 1-D lookup for profiles that depend on height only."""

    def __init__(self, rows: int, cols: int, anatomy: Anatomy) -> None:
        if not anatomy.scale > 0:
            raise ValueError(f"Anatomy.scale must be > 0, got {anatomy.scale!r}")
        self.rows, self.cols = rows, cols
        self.s = float(anatomy.scale)
        self.ox, self.oy = (float(v) for v in anatomy.offset)
        self.c, self.sn = math.cos(anatomy.rotation), math.sin(anatomy.rotation)
        u = (np.arange(cols, dtype=_F) + 0.5 - cols / 2) / rows - _F(self.ox)
        v = (np.arange(rows, dtype=_F) + 0.5) / rows - _F(_ORIGIN_Y + self.oy)
        k = 1.0 / self.s
        self.X = u[None, :] * _F(self.c * k) + v[:, None] * _F(self.sn * k)
        self.Y = u[None, :] * _F(-self.sn * k) + v[:, None] * _F(self.c * k)
        self.px = 1.0 / (rows * self.s)  # one pixel in body units
        corners = self.Y[[0, 0, -1, -1], [0, -1, 0, -1]]
        n = max(2048, 4 * rows)
        self.lut_y = np.linspace(float(corners.min()) - 0.01, float(corners.max()) + 0.01, n)
        self._y0 = float(self.lut_y[0])
        self._inv = (n - 1) / float(self.lut_y[-1] - self.lut_y[0])
        self._n = n
        self.yi = ((self.Y - _F(self._y0)) * _F(self._inv) + _F(0.5)).astype(np.int32)

    def index(self, y: np.ndarray) -> np.ndarray:
        return np.clip((y - _F(self._y0)) * _F(self._inv) + _F(0.5), 0, self._n - 1).astype(
            np.int32
        )

    def table(self, fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        return np.asarray(fn(self.lut_y), dtype=_F)

    def to_pixel(self, x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
        """Body (x, y) -> continuous (col, row); pixel (r, c) covers [c, c+1) x [r, r+1)."""
        x, y = np.asarray(x, float), np.asarray(y, float)
        u = self.s * (self.c * x - self.sn * y) + self.ox
        v = self.s * (self.sn * x + self.c * y) + self.oy
        return u * self.rows + self.cols / 2, (v + _ORIGIN_Y) * self.rows

    def to_body(self, col: Any, row: Any) -> tuple[np.ndarray, np.ndarray]:
        u = np.asarray(col, float) / self.rows - self.cols / (2 * self.rows) - self.ox
        v = np.asarray(row, float) / self.rows - _ORIGIN_Y - self.oy
        return (self.c * u + self.sn * v) / self.s, (-self.sn * u + self.c * v) / self.s

    def window(self, x0: float, x1: float, y0: float, y1: float, pad: int = 2) -> _SL | None:
        """Pixel slices covering the body-frame rectangle [x0, x1] x [y0, y1] (None if off-film)."""
        cols, rows = self.to_pixel([x0, x1, x0, x1], [y0, y0, y1, y1])
        r0 = max(0, int(math.floor(rows.min())) - pad)
        r1 = min(self.rows, int(math.ceil(rows.max())) + pad)
        c0 = max(0, int(math.floor(cols.min())) - pad)
        c1 = min(self.cols, int(math.ceil(cols.max())) + pad)
        if r0 >= r1 or c0 >= c1:
            return None
        return slice(r0, r1), slice(c0, c1)

    def box_of(self, xs: Any, ys: Any, pad: int = 0) -> _BOX | None:
        """Inclusive pixel box around body-frame points, clipped to the film."""
        cols, rows = self.to_pixel(xs, ys)
        x1 = max(0, int(math.floor(cols.min())) - pad)
        x2 = min(self.cols - 1, int(math.floor(cols.max())) + pad)
        y1 = max(0, int(math.floor(rows.min())) - pad)
        y2 = min(self.rows - 1, int(math.floor(rows.max())) + pad)
        if x1 > x2 or y1 > y2:
            return None
        return x1, y1, x2, y2


# --------------------------------------------------------------------------------------------
# frontal anatomy


class _Lung:
    """One hemithorax, in mirrored coordinates: ``xs`` grows towards the patient's flank.

    The lung is ``min(xs - med(y), lat(y) - xs, dome(xs) - y) > 0``: a mediastinal border, a
    rib-cage border whose square-root profile rounds the apex, and a parabolic hemidiaphragm
    that drops steeply into a sharp costophrenic angle.
    """

    def __init__(self, side: str, anatomy: Anatomy, view: str, widen: float) -> None:
        right = side == "right"
        i = 0 if right else 1
        self.side = side
        self.sign = -1.0 if right else 1.0  # body x = sign * xs
        self.lw = anatomy.lung_width[i]
        self.ya = anatomy.apex + (0.004 if right else 0.0)
        self.xa = 0.40 * self.lw
        self.yw = 0.07
        self.dome_top = anatomy.diaphragm[i] - (0.03 if view == "AP" else 0.0)
        self.xdc = 0.42 * self.lw
        self.cpd = 0.075
        self.m0 = anatomy.mediastinum * (1.1 if view == "AP" else 1.0)  # magnified, supine
        self.knob = anatomy.aortic_knob
        self.widen = widen
        self.y_cp = float(self.dome(np.float64(self.lw)))
        self.y_hilum = -0.015 if right else -0.04
        self.x_hilum = self.m0 + 0.035
        # per-render arrays, filled by _frontal
        self.sl: _SL
        self.xs: np.ndarray
        self.y: np.ndarray
        self.lat_w: np.ndarray
        self.med_w: np.ndarray
        self.d: np.ndarray
        self.soft: np.ndarray
        self.mask: np.ndarray
        self.box: _BOX | None = None

    def lat(self, y: np.ndarray) -> np.ndarray:
        s = np.clip((y - self.ya) / (self.yw - self.ya), 0.0, 1.0)
        return self.xa + (self.lw - self.xa) * s**0.45

    def mediastinal(self, y: np.ndarray) -> np.ndarray:
        m = self.m0 + 0.004 * _bump(y, 0.02, 0.2)
        if self.side == "right":  # superior vena cava, then the right atrium's upper border
            m = m + 0.008 * _bump(y, -0.15, 0.12) + 0.012 * _bump(y, 0.02, 0.09)
        else:  # aortic knob, main pulmonary artery, left atrial appendage
            m = (
                m
                + self.knob * _bump(y, -0.165, 0.05)
                + 0.016 * _bump(y, -0.085, 0.04)
                + 0.02 * _bump(y, 0.0, 0.07)
            )
        if self.widen:
            m = m + self.widen * _bump(y, -0.17, 0.17)
        return m

    def med(self, y: np.ndarray) -> np.ndarray:
        m = self.mediastinal(y)
        cap = self.xa - (self.xa - m) * np.sqrt(np.clip((y - self.ya) / 0.11, 0.0, 1.0))
        return np.maximum(m, cap)

    def dome(self, xs: np.ndarray) -> np.ndarray:
        lat = np.clip(xs - self.xdc, 0.0, _BIG) * (1.0 / (self.lw - self.xdc))
        med = np.clip(self.xdc - xs, 0.0, _BIG) * (1.0 / self.xdc)
        return self.dome_top + self.cpd * lat * lat + 0.02 * med * med

    def distance(
        self, frame: _Frame, xs: np.ndarray, y: np.ndarray, lat_t: np.ndarray, med_t: np.ndarray
    ) -> np.ndarray:
        """Signed inside-distance at arbitrary points (profiles looked up in the tables)."""
        idx = frame.index(y)
        lat, med = np.take(lat_t, idx), np.take(med_t, idx)
        return np.minimum(np.minimum(xs - med, lat - xs), self.dome(xs) - y)


@dataclass
class _Heart:
    cx: float
    cy: float
    a: float
    b: float
    tilt: float

    def lowest(self) -> tuple[float, float]:
        c, s = math.cos(self.tilt), math.sin(self.tilt)
        t = math.atan2(self.b * c, self.a * s)
        return (
            self.cx + self.a * math.cos(t) * c - self.b * math.sin(t) * s,
            self.cy + self.a * math.cos(t) * s + self.b * math.sin(t) * c,
        )

    def scaled(self, lam: float) -> _Heart:
        """Homothety about the highest point, where the great vessels leave: a bigger heart
        grows out to the left and down, its lower part hidden by the diaphragm (as an enlarged
        ventricle does), and contains the normal one, so cardiomegaly only ever adds pixels."""
        lx, ly = self.lowest()
        px, py = 2 * self.cx - lx, 2 * self.cy - ly
        return _Heart(
            px + lam * (self.cx - px),
            py + lam * (self.cy - py),
            lam * self.a,
            lam * self.b,
            self.tilt,
        )

    def extent(self) -> tuple[float, float, float, float]:
        c, s = math.cos(self.tilt), math.sin(self.tilt)
        hx = math.hypot(self.a * c, self.b * s)
        hy = math.hypot(self.a * s, self.b * c)
        return self.cx - hx, self.cx + hx, self.cy - hy, self.cy + hy


def _normal_heart(anatomy: Anatomy, lungs: dict[str, _Lung], view: str) -> _Heart:
    thorax = lungs["right"].lw + lungs["left"].lw
    hw = 0.5 * anatomy.ctr * thorax * (1.07 if view == "AP" else 1.0)
    phi = anatomy.heart_tilt
    c, s = math.cos(phi), math.sin(phi)
    k = anatomy.heart_shape
    a = hw / math.sqrt(c * c + k * k * s * s)
    b = a * k
    cx = anatomy.heart_right * hw  # about a third of the heart lies right of the midline
    cy = lungs["left"].dome_top - 0.06
    return _Heart(cx, cy, a, b, phi)


def _cardiomegaly_ctr(anatomy: Anatomy, severity: float) -> float:
    """Target CTR of an enlarged heart: just over the 0.5 threshold when mild, and always a
    little bigger than the patient's own normal heart."""
    return max(anatomy.ctr + 0.015, 0.516 + 0.13 * severity)


def _visible_width(heart: _Heart, lungs: dict[str, _Lung]) -> float:
    """Transverse diameter of the part of the heart above the hemidiaphragms (what is
    measured on a film), from points on the ellipse's outline."""
    t = np.linspace(0.0, 2 * np.pi, 720, endpoint=False)
    c, s = math.cos(heart.tilt), math.sin(heart.tilt)
    x = heart.cx + heart.a * np.cos(t) * c - heart.b * np.sin(t) * s
    y = heart.cy + heart.a * np.cos(t) * s + heart.b * np.sin(t) * c
    seen = y <= _dome_at(lungs, x)
    return float(x[seen].max() - x[seen].min()) if seen.any() else 0.0


def _enlarged_heart(
    anatomy: Anatomy, normal: _Heart, lungs: dict[str, _Lung], view: str, severity: float
) -> _Heart:
    """The normal heart scaled (see :meth:`_Heart.scaled`) until its visible width gives the
    target CTR: part of an enlarged heart hides below the diaphragm, so the scale is found by
    bisection rather than as a ratio of CTRs."""
    thorax = lungs["right"].lw + lungs["left"].lw
    want = _cardiomegaly_ctr(anatomy, severity) * thorax * (1.07 if view == "AP" else 1.0)
    lo, hi = 1.0, 3.0
    for _ in range(24):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if _visible_width(normal.scaled(mid), lungs) < want else (lo, mid)
    return normal.scaled(hi)


def _mediastinal_widening(severity: float) -> float:
    """Extra half-width of the upper mediastinum: within normal variation when mild."""
    return 0.002 + 0.012 * severity + 0.03 * severity * severity


def _ellipse_d(heart: _Heart, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Approximate signed inside-distance to the heart ellipse."""
    c, s = _F(math.cos(heart.tilt)), _F(math.sin(heart.tilt))
    dx, dy = X - _F(heart.cx), Y - _F(heart.cy)
    xr = (c * dx + s * dy) * _F(1 / heart.a)
    yr = (c * dy - s * dx) * _F(1 / heart.b)
    return (1.0 - xr * xr - yr * yr) * _F(0.5 * heart.b)


def _dome_at(lungs: dict[str, _Lung], X: np.ndarray) -> np.ndarray:
    left = lungs["left"].dome(X)
    return left + (lungs["right"].dome(-X) - left) * (X < 0)


def _heart_fields(
    frame: _Frame, heart: _Heart, lungs: dict[str, _Lung]
) -> tuple[_SL, np.ndarray, np.ndarray] | None:
    x0, x1, y0, y1 = heart.extent()
    sl = frame.window(x0, x1, y0, y1)
    if sl is None:
        return None
    X, Y = frame.X[sl], frame.Y[sl]
    d = _ellipse_d(heart, X, Y)
    under = _dome_at(lungs, X) - Y
    e = max(0.004, 1.2 * frame.px)
    soft = _ramp(d, e) * _ramp(under, e)
    return sl, soft, (d > 0) & (under > 0)


def _fat_pad(
    frame: _Frame, anatomy: Anatomy, heart: _Heart, lungs: dict[str, _Lung], lung_t: np.ndarray
) -> None:
    """Epicardial fat at the left cardiophrenic angle: a soft shadow that blurs the lower heart
    border, large in some patients, and so mimics a bigger heart on a small image.

    Anchored to the normal heart, so that an enlarged heart only covers it.
    """
    fat = anatomy.fat_pad
    if fat <= 0.02:
        return
    _, x1, _, _ = heart.extent()
    fx = x1 - 0.015
    fy = float(lungs["left"].dome(np.float64(fx))) - 0.012
    rx, ry = 0.025 + 0.045 * fat, 0.02 + 0.03 * fat
    sl = frame.window(fx - rx, fx + rx, fy - ry, fy + ry)
    if sl is None:
        return
    X, Y = frame.X[sl], frame.Y[sl]
    q = ((X - _F(fx)) * _F(1 / rx)) ** 2 + ((Y - _F(fy)) * _F(1 / ry)) ** 2
    lung_t[sl] *= _F(1.0) - _F(0.6 * fat) * np.clip(_F(1.0) - q, 0.0, 1.0)


def _posterior_ribs(
    xs: np.ndarray,
    y: np.ndarray,
    lat: np.ndarray,
    ya: float,
    spacing: float,
    shift: np.ndarray | float = 0.0,
) -> np.ndarray:
    """Posterior rib arcs: gentle hump off the spine, then down along the chest wall."""
    q = xs - _F(0.08)
    edge = np.clip(xs - _F(0.7) * lat, 0.0, _BIG)
    t = y - (_F(2.2) * q * q - _F(0.014)) - _F(6.0) * edge * edge
    t = t + shift
    p = (t - _F(ya - 0.03)) * _F(1.0 / spacing)
    p = p - _F(0.1) * p * p / _F(12.0)  # ribs spread slightly towards the base
    k = np.floor(p)
    u = (p - k) * _F(2.0 / 0.40) - _F(1.0)
    valid = (k >= 0) & (k < 12)
    out = _bone(u) * valid
    return out * _ramp(xs - _F(0.03), 0.012) * _ramp(lat + _F(0.02) - xs, 0.012)


def _anterior_ribs(
    xs: np.ndarray, y: np.ndarray, lat: np.ndarray, ya: float, spacing: float
) -> np.ndarray:
    """Anterior ribs: fainter bands sloping down towards the sternum, fading at the cartilage."""
    t = y + _F(0.6) * (xs - _F(0.1)) - _F(0.9) * (xs - _F(0.22)) ** 2
    p = (t - _F(ya + 0.03)) * _F(1.0 / (1.35 * spacing))
    k = np.floor(p)
    u = (p - k) * _F(2.0 / 0.42) - _F(1.0)
    out = _bone(u) * ((k >= 0) & (k < 7))
    return out * _ramp(xs - _F(0.11), 0.05) * _ramp(lat + _F(0.02) - xs, 0.012)


@functools.lru_cache(maxsize=256)
def _vessel_tree(
    seed: int, key: int, angles: tuple[float, float], n0: int = 8, generations: int = 6
) -> np.ndarray:
    """Segments ``(x0, y0, x1, y1, width)`` of a branching vascular tree near the origin.

    Angles are measured from the +x axis with y down, so (-pi/2) points up. Each generation
    splits every branch in two, shorter and thinner; fixed per patient (``seed``), so every
    film of a patient shows the same vessels.
    """
    rng = np.random.default_rng([seed, 9, key])
    a = np.linspace(*angles, n0) + rng.uniform(-0.12, 0.12, n0)
    # roots leave a short hilar trunk (upper-lobe branches higher up, lower-lobe ones lower)
    t = (np.arange(n0) + rng.uniform(-0.3, 0.3, n0)) / max(1, n0 - 1)
    x, y = 0.004 + 0.012 * t, -0.055 + 0.13 * t
    length = 0.022 + 0.012 * rng.random(n0)
    w = np.full(n0, 0.0048)
    out = [np.array([[0.0, -0.06, 0.016, 0.09, 0.0075]])]  # the trunk itself
    for g in range(generations + 1):
        x1, y1 = x + length * np.cos(a), y + length * np.sin(a)
        out.append(np.column_stack([x, y, x1, y1, w]))
        if g == generations:
            break
        m = a.size
        turn = np.concatenate([-1.0 * rng.uniform(0.15, 0.45, m), rng.uniform(0.15, 0.45, m)])
        a = np.concatenate([a, a]) + turn + rng.normal(0.0, 0.1, 2 * m)
        x, y = np.concatenate([x1, x1]), np.concatenate([y1, y1])
        length = np.concatenate([length, length]) * rng.uniform(0.78, 0.95, 2 * m)
        w = np.concatenate([w, w]) * 0.76
    segs = np.concatenate(out)
    segs.flags.writeable = False  # cached and shared between renders of one patient
    return segs


def _draw_tree(
    frame: _Frame, sl: _SL, segs: np.ndarray, origin: tuple[float, float], sign: float
) -> np.ndarray:
    """Rasterise a vessel tree (mirrored by ``sign``) into the window ``sl``.

    Points are splatted along every segment (weight ~ cross-section) and blurred: a Gaussian
    profile approximates a projected cylinder, and a few hundred segments cost one
    ``bincount`` and two blurs instead of a drawing call each.
    """
    h, w = sl[0].stop - sl[0].start, sl[1].stop - sl[1].start
    ox, oy = origin
    c0, r0 = frame.to_pixel(sign * (ox + segs[:, 0]), oy + segs[:, 1])
    c1, r1 = frame.to_pixel(sign * (ox + segs[:, 2]), oy + segs[:, 3])
    c0, c1 = c0 - sl[1].start, c1 - sl[1].start
    r0, r1 = r0 - sl[0].start, r1 - sl[0].start
    length = np.hypot(c1 - c0, r1 - r0)
    n = np.maximum(1, np.ceil(length / 0.7)).astype(np.int64)
    seg = np.repeat(np.arange(len(segs)), n)
    start = np.repeat(np.cumsum(n) - n, n)
    t = (np.arange(int(n.sum())) - start + 0.5) / n[seg]
    cc = np.floor(c0[seg] + t * (c1 - c0)[seg]).astype(np.int64)
    rr = np.floor(r0[seg] + t * (r1 - r0)[seg]).astype(np.int64)
    width = segs[:, 4] / frame.px  # pixels
    weight = (width**1.5 * length / n)[seg]  # thin vessels a little louder than their area
    ok = (cc >= 0) & (cc < w) & (rr >= 0) & (rr < h)
    thick = width[seg] >= 0.5 * float(width.max())
    out = np.zeros((h, w), _F)
    for cls in (thick, ~thick):
        sel = ok & cls
        if not sel.any():
            continue
        img = np.bincount(rr[sel] * w + cc[sel], weights=weight[sel], minlength=h * w)
        sigma = max(0.6, 0.45 * float(np.median(width[seg][sel])))
        out += ndimage.gaussian_filter(img.reshape(h, w).astype(_F), sigma)
    wmax = float(width.max())
    out *= _F(math.sqrt(2 * math.pi) * max(0.6, 0.45 * wmax) / wmax**1.5)  # thickest ~ 1
    return out


@dataclass
class _Chest:
    """Everything a frontal finding needs to place itself."""

    frame: _Frame
    anatomy: Anatomy
    view: str
    lungs: dict[str, _Lung]
    tables: dict[str, tuple[np.ndarray, np.ndarray]]  # side -> (lat, med) lookup tables
    lung_t: np.ndarray  # lung air thickness (ignoring the heart in front of it), full film
    boxes: dict[str, _BOX]
    heart: _Heart
    carina: tuple[float, float]
    tube_sides: set[str] = field(default_factory=set)  # chest tubes already drawn


@dataclass
class _Drawn:
    """A finding's contributions: attenuation parts, and changes to the lung markings."""

    parts: list[tuple[_SL, np.ndarray]] = field(default_factory=list)
    kill: dict[str, np.ndarray] = field(default_factory=dict)  # side -> markings removed
    blur: dict[str, np.ndarray] = field(default_factory=dict)  # side -> markings blurred
    # parts drawn on behalf of another label (a pneumothorax's chest tube is a device)
    extra: dict[str, list[tuple[_SL, np.ndarray]]] = field(default_factory=dict)


def _frontal(
    frame: _Frame,
    anatomy: Anatomy,
    keyed: list[_Keyed],
    view: str,
    texture: tuple[float, np.random.Generator] | None = None,
) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, _BOX]]:
    rows, cols = frame.rows, frame.cols
    X, Y = frame.X, frame.Y
    px = frame.px
    labels = {k.finding.label: k for k in keyed}

    ecm = labels.get("Enlarged Cardiomediastinum")
    widen = 0.0 if ecm is None else _mediastinal_widening(ecm.finding.severity)
    lungs = {s: _Lung(s, anatomy, view, widen) for s in ("right", "left")}
    normal_lungs = (
        lungs if ecm is None else {s: _Lung(s, anatomy, view, 0.0) for s in ("right", "left")}
    )
    heart = normal_heart = _normal_heart(anatomy, normal_lungs, view)
    cm = labels.get("Cardiomegaly")
    if cm is not None:
        heart = _enlarged_heart(anatomy, heart, normal_lungs, view, cm.finding.severity)

    atten = np.zeros((rows, cols), _F)
    lung_t = np.zeros((rows, cols), _F)
    bones = np.zeros((rows, cols), _F)

    # body envelope: an elliptic cylinder whose width follows neck, shoulders, chest, abdomen
    chest_w = max(lungs["right"].lw, lungs["left"].lw) + 0.04 + 0.03 * anatomy.habitus

    def half_width(y: np.ndarray) -> np.ndarray:
        neck = 0.085 + 0.01 * anatomy.habitus
        sh = np.clip((y + 0.43) / 0.13, 0.0, 1.0)
        shoulders = neck + (chest_w + 0.12 - neck) * (sh * sh * (3 - 2 * sh))
        arms = chest_w + 0.12 - 0.07 * np.clip((y + 0.30) / 0.18, 0.0, 1.0)
        w = np.where(y < -0.30, shoulders, arms)
        return np.where(y > 0.30, w - 0.02 * np.clip((y - 0.3) / 0.15, 0, 1), w)

    def depth(y: np.ndarray) -> np.ndarray:
        return (
            0.9
            + 0.25 * anatomy.habitus
            + 0.12 * np.clip((y - 0.15) / 0.2, 0, 1)
            - 0.35 * np.clip((-0.36 - y) / 0.08, 0, 1)
        )

    inv_w = frame.table(lambda y: 1.0 / half_width(y))
    dep = frame.table(depth)
    yi = frame.yi
    xw = X * np.take(inv_w, yi)
    atten += np.take(dep, yi) * np.sqrt(np.clip(1.0 - xw * xw, 0.0, _BIG))
    del xw

    # lungs
    boxes: dict[str, _BOX] = {}
    tables: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    e_lung = max(0.005, 1.5 * px)
    for side, lung in lungs.items():
        lat_t, med_t = frame.table(lung.lat), frame.table(lung.med)
        tables[side] = (lat_t, med_t)
        xr = (lung.sign * -0.01, lung.sign * (lung.lw + 0.05))
        sl = frame.window(min(xr), max(xr), lung.ya - 0.08, lung.y_cp + 0.10)
        assert sl is not None
        lung.sl = sl
        xs = X[sl] * _F(lung.sign)
        y = Y[sl]
        lung.xs, lung.y = xs, y
        lung.lat_w = np.take(lat_t, yi[sl])
        lung.med_w = np.take(med_t, yi[sl])
        wall = np.minimum(lung.lat_w - xs, lung.dome(xs) - y)
        d = np.minimum(xs - lung.med_w, wall)
        lung.d = d
        lung.soft = _ramp(d, e_lung)
        lung.mask = d > 0
        lung.box = _bbox(lung.mask, sl[0].start, sl[1].start)
        if lung.box is None:
            raise ValueError("the phantom lung fell off the film; check Anatomy.offset/scale")
        # the lung thins towards the curved chest wall and the diaphragm
        thick = lung.soft * (_F(0.45) + _F(0.55) * _ramp(wall, 0.05))
        thick *= _F(0.72) + _F(0.28) * np.clip((y - _F(lung.ya)) * _F(1 / 0.2), 0, 1)
        lung_t[sl] += thick
        # bones of this hemithorax
        ribs = _posterior_ribs(xs, y, lung.lat_w, lung.ya, anatomy.rib_spacing)
        ribs += _F(0.5) * _anterior_ribs(xs, y, lung.lat_w, lung.ya, anatomy.rib_spacing)
        below = _ramp(y - lung.dome(xs) - _F(0.01), 0.03)
        bones[sl] += _F(_RIB) * ribs * (_F(1.0) - _F(0.5) * below)
        boxes[f"{side} lung"] = lung.box

    lung_raw = lung_t.copy()  # findings behind the heart still replace air (retrocardiac)
    hf = _heart_fields(frame, heart, lungs)
    heart_mask_full = None
    if hf is not None:
        hsl, hsoft, hmask = hf
        lung_t[hsl] *= 1.0 - _F(0.93) * hsoft
        heart_mask_full = (hsl, hmask)
    _fat_pad(frame, anatomy, normal_heart, lungs, lung_t)

    carina = (-0.004, -0.095 - (0.02 if view == "AP" else 0.0))
    _anatomy_boxes(frame, anatomy, view, lungs, heart, heart_mask_full, carina, boxes)

    chest = _Chest(frame, anatomy, view, lungs, tables, lung_raw, boxes, heart, carina)

    # findings
    masks: dict[str, np.ndarray] = {}
    drawn: list[_Drawn] = []
    for kf in keyed:
        fn = _FRONTAL_FINDINGS[kf.finding.label]
        out = fn(chest, kf)
        drawn.append(out)
        m = _mask_from_parts(
            out.parts, rows, cols, 0.02 if kf.finding.label == "Support Devices" else 0.04
        )
        if kf.finding.label == "Cardiomegaly" and hf is not None:
            m = np.zeros((rows, cols), bool)
            m[hf[0]] = hf[2]
        if kf.finding.label == "Enlarged Cardiomediastinum":
            m = _ecm_mask(chest)
        _merge_mask(masks, kf.finding.label, m)
        for lab, parts in out.extra.items():
            _merge_mask(masks, lab, _mask_from_parts(parts, rows, cols, 0.02))

    # lung markings (after findings: a pneumothorax removes them, edema blurs them)
    for key, (side, lung) in enumerate(lungs.items()):
        segs = _vessel_tree(anatomy.seed, key, (-1.95, 1.7))
        vessels = _draw_tree(frame, lung.sl, segs, (lung.x_hilum, lung.y_hilum), lung.sign)
        blur = None
        for kf, d_ in zip(keyed, drawn, strict=True):
            if side in d_.blur:
                b_ = d_.blur[side] * _F(kf.gain)
                blur = b_ if blur is None else np.maximum(blur, b_)
        if blur is not None:
            hazy = ndimage.gaussian_filter(vessels, max(1.5, 0.006 / px))
            vessels += blur * (_F(1.2) * hazy - vessels)
        for kf, d_ in zip(keyed, drawn, strict=True):
            if side in d_.kill:
                vessels *= 1.0 - _F(kf.gain) * d_.kill[side]
        sl = lung.sl
        dx, dy = lung.xs - _F(lung.x_hilum), lung.y - _F(lung.y_hilum)
        fade = np.clip(_F(1.15) - np.sqrt(dx * dx + dy * dy) * _F(1 / (0.8 * lung.lw)), 0, 1)
        # a shallow breath crowds the vessels and the hila (a classic mimic of edema)
        crowd = (1.25 - 0.5 * anatomy.inspiration) * anatomy.vessels
        atten[sl] += _F(0.24 * crowd) * vessels * lung_t[sl] * fade
        # hilum: pulmonary arteries and veins
        hx, hy = lung.x_hilum + 0.01, lung.y_hilum + 0.01
        hd = ((lung.xs - _F(hx)) * _F(1 / 0.036)) ** 2 + ((lung.y - _F(hy)) * _F(1 / 0.07)) ** 2
        atten[sl] += _F(0.14 * crowd) * np.clip(1.0 - hd, 0.0, _BIG) * lung.soft

    atten -= _F(0.68 + 0.24 * anatomy.inspiration) * lung_t
    for lung in lungs.values():
        _lung_texture(atten, lung.sl, lung_t[lung.sl], texture)
    _frontal_bones(frame, anatomy, lungs, view, bones)
    atten += bones
    _airways(frame, lungs, carina, atten)
    for kf, d_ in zip(keyed, drawn, strict=True):
        for sl, part in d_.parts:
            atten[sl] += part if kf.gain == 1.0 else _F(kf.gain) * part
        for sl, part in (p for ps in d_.extra.values() for p in ps):
            atten[sl] += part  # devices drawn on a finding's behalf keep their contrast
    return atten, masks, boxes


def _lung_texture(
    atten: np.ndarray,
    sl: _SL,
    lung_t: np.ndarray,
    texture: tuple[float, np.random.Generator] | None,
) -> None:
    """Patchy lung density with the grain of airspace disease, on normal films too
    (:class:`Conspicuity`): sparse blobs a few per lung, broken up by finer patches."""
    if texture is None or texture[0] <= 0.0:
        return
    amp, rng = texture
    shape = lung_t.shape
    blobs = np.clip(_coarse_noise(rng, shape, 6) - _F(0.5), 0.0, 1.5)
    patch = np.clip((_coarse_noise(rng, shape, 12) + _F(0.8)) * _F(0.6), 0.0, 1.0)
    atten[sl] += _F(amp / 1.5) * blobs * patch * lung_t


def _merge_mask(masks: dict[str, np.ndarray], label: str, m: np.ndarray | None) -> None:
    if m is None:
        return
    masks[label] = m if label not in masks else (masks[label] | m)


def _mask_from_parts(
    parts: list[tuple[_SL, np.ndarray]], rows: int, cols: int, frac: float = 0.04
) -> np.ndarray | None:
    """Where a finding was drawn: each part's density above a small fraction of its peak."""
    if not parts:
        return None
    m = np.zeros((rows, cols), bool)
    for sl, p in parts:
        a = np.abs(p)
        peak = float(a.max()) if a.size else 0.0
        if peak > 0:
            m[sl] |= a > frac * peak
    return m


def _ecm_mask(chest: _Chest) -> np.ndarray:
    """The widened upper mediastinum (out to the widened lung border plus its soft edge)."""
    frame = chest.frame
    right, left = chest.lungs["right"], chest.lungs["left"]
    y0 = min(right.ya, left.ya) - 0.02
    y1 = -0.17 + 0.17
    w = max(right.m0, left.m0) + right.widen + 0.06
    sl = frame.window(-w, w, y0, y1)
    m = np.zeros((frame.rows, frame.cols), bool)
    if sl is None:
        return m
    X, Y = frame.X[sl], frame.Y[sl]
    idx = frame.yi[sl]
    e = max(0.005, 1.5 * frame.px)
    inside = (
        (X > -(np.take(chest.tables["right"][1], idx) + _F(e)))
        & (X < np.take(chest.tables["left"][1], idx) + _F(e))
        & (Y >= _F(y0))
        & (Y <= _F(y1))
    )
    m[sl] = inside
    return m


def _frontal_bones(
    frame: _Frame, anatomy: Anatomy, lungs: dict[str, _Lung], view: str, bones: np.ndarray
) -> None:
    X, Y = frame.X, frame.Y
    # spine: vertebral bodies, disc spaces, pedicles, spinous processes
    sl = frame.window(-0.05, 0.05, -0.6, 0.7)
    if sl is not None:
        x, y = X[sl], Y[sl]
        xn = x * _F(1 / 0.034)
        v = (y + _F(0.40)) * _F(1 / (anatomy.rib_spacing * 1.02))
        fv = v - np.floor(v)
        body = _ramp(_F(1.0) - np.abs(xn), 0.25)
        disc = np.clip(_F(1.0) - np.minimum(fv, _F(1.0) - fv) * _F(1 / 0.09), 0, 1)
        ped = ((np.abs(xn) - _F(0.72)) * _F(1 / 0.2)) ** 2 + ((fv - _F(0.38)) * _F(1 / 0.17)) ** 2
        ring = np.clip(_F(1.0) - np.abs(ped - _F(1.0)) * _F(1 / 0.6), 0, 1)
        spin = np.clip(
            _F(1.0) - (xn * _F(1 / 0.18)) ** 2 - ((fv - _F(0.65)) * _F(1 / 0.2)) ** 2, 0, 1
        )
        bones[sl] += _F(0.14) * (
            _F(0.75) * body * (_F(1.0) - _F(0.45) * disc) + _F(0.45) * ring + _F(0.3) * spin
        )
    # clavicles and humeral heads
    lift = 0.035 if view == "AP" else 0.0
    for lung in lungs.values():
        y_med = anatomy.clavicle - lift
        x_end = lung.lw + 0.07
        sl = frame.window(
            *sorted((lung.sign * 0.015, lung.sign * (x_end + 0.01))), y_med - 0.09, y_med + 0.04
        )
        if sl is not None:
            xs = X[sl] * _F(lung.sign)
            y = Y[sl]
            q = xs - _F(0.03)
            yc = _F(y_med) - _F(0.30 if view != "AP" else 0.14) * q + _F(0.28) * q * q
            th = _F(0.0135) + _F(0.005) * np.clip(_F(1) - q * _F(1 / 0.12), 0, 1)
            clav = _bone((y - yc) / th) * _ramp(q + _F(0.012), 0.012) * _ramp(_F(x_end) - xs, 0.02)
            bones[sl] += _F(0.30) * clav
        hx, hy, hr = lung.lw + 0.125, y_med - 0.03, 0.07
        sl = frame.window(
            *sorted((lung.sign * (hx - hr), lung.sign * (hx + hr + 0.1))), hy - hr, hy + 0.35
        )
        if sl is not None:
            xs = X[sl] * _F(lung.sign)
            y = Y[sl]
            r2 = ((xs - _F(hx)) ** 2 + (y - _F(hy)) ** 2) * _F(1 / hr**2)
            head = np.sqrt(np.clip(1.0 - r2, 0.0, _BIG))
            shaft = _bone((xs - _F(hx + 0.02) - (y - _F(hy)) * _F(0.12)) * _F(1 / 0.04)) * (
                _ramp(y - _F(hy), 0.02)
            )
            bones[sl] += _F(0.30) * np.maximum(head, shaft)


def _airways(
    frame: _Frame, lungs: dict[str, _Lung], carina: tuple[float, float], atten: np.ndarray
) -> None:
    """Trachea and main bronchi: air columns darker than the mediastinum around them."""
    cx, cy = carina
    sl = frame.window(cx - 0.03, cx + 0.03, -0.7, cy + 0.01)
    if sl is not None:
        x, y = frame.X[sl], frame.Y[sl]
        tr = _ramp(_F(0.0165) - np.abs(x - _F(cx)), 0.006) * _ramp(_F(cy) - y, 0.012)
        atten[sl] -= _F(0.22) * tr
    for end, w in (((-0.075, cy + 0.06), 0.012), ((0.085, cy + 0.045), 0.011)):
        sl = frame.window(min(cx, end[0]) - 0.02, max(cx, end[0]) + 0.02, cy - 0.02, end[1] + 0.02)
        if sl is None:
            continue
        x, y = frame.X[sl], frame.Y[sl]
        dist = _segment_distance(x, y, (cx, cy), end)
        atten[sl] -= _F(0.16) * _ramp(_F(w) - dist, 0.005)
    # gastric bubble under the left hemidiaphragm
    left = lungs["left"]
    bx, by = left.sign * 0.13, float(left.dome(np.float64(0.13))) + 0.045
    sl = frame.window(bx - 0.06, bx + 0.06, by - 0.03, by + 0.04)
    if sl is not None:
        x, y = frame.X[sl], frame.Y[sl]
        r2 = ((x - _F(bx)) * _F(1 / 0.05)) ** 2 + ((y - _F(by)) * _F(1 / 0.028)) ** 2
        atten[sl] -= _F(0.18) * np.sqrt(np.clip(1.0 - r2, 0.0, _BIG))


def _segment_distance(
    x: np.ndarray, y: np.ndarray, p0: tuple[float, float], p1: tuple[float, float]
) -> np.ndarray:
    ax, ay = p0
    dx, dy = p1[0] - ax, p1[1] - ay
    ll = dx * dx + dy * dy
    t = np.clip(((x - _F(ax)) * _F(dx) + (y - _F(ay)) * _F(dy)) * _F(1 / ll), 0, 1)
    ex = x - _F(ax) - t * _F(dx)
    ey = y - _F(ay) - t * _F(dy)
    return np.sqrt(ex * ex + ey * ey)


def _anatomy_boxes(
    frame: _Frame,
    anatomy: Anatomy,
    view: str,
    lungs: dict[str, _Lung],
    heart: _Heart,
    heart_mask: tuple[_SL, np.ndarray] | None,
    carina: tuple[float, float],
    boxes: dict[str, _BOX],
) -> None:
    """Chest ImaGenome boxes, read off the drawn lung and heart masks where they exist."""
    for side, lung in lungs.items():
        assert lung.box is not None
        x1, y1, x2, y2 = lung.box
        h = y2 - y1 + 1
        r0, c0 = lung.sl[0].start, lung.sl[1].start
        m = lung.mask

        def band(a: int, b: int, m: np.ndarray = m, r0: int = r0, c0: int = c0) -> _BOX | None:
            return _bbox(m[max(0, a - r0) : max(0, b + 1 - r0)], max(a, r0), c0)

        zones = {
            "apical zone": band(y1, y1 + round(0.20 * h)),
            "upper lung zone": band(y1, y1 + round(0.36 * h)),
            "mid lung zone": band(y1 + round(0.32 * h), y1 + round(0.68 * h)),
            "lower lung zone": band(y1 + round(0.64 * h), y2),
        }
        for name, b in zones.items():
            if b is not None:
                boxes[f"{side} {name}"] = b
        w = x2 - x1 + 1
        cw, ch = round(0.30 * w), round(0.16 * h)
        cp = (x1, y2 - ch, x1 + cw, y2) if side == "right" else (x2 - cw, y2 - ch, x2, y2)
        boxes[f"{side} costophrenic angle"] = cp
        low = boxes.get(f"{side} lower lung zone", lung.box)
        sub = m[max(0, low[1] - r0) :]
        has = sub.any(axis=0)
        last = sub.shape[0] - 1 - np.argmax(sub[::-1], axis=0)
        dome_row = low[1] + int(last[has].min()) if has.any() else y2
        boxes[f"{side} hemidiaphragm"] = (
            low[0],
            max(0, dome_row - round(0.03 * h)),
            low[2],
            min(frame.rows - 1, y2 + round(0.03 * h)),
        )
        sg = lung.sign
        hb = frame.box_of(
            [sg * (lung.m0 - 0.005), sg * (lung.m0 + 0.10)] * 2,
            [lung.y_hilum - 0.065] * 2 + [lung.y_hilum + 0.07] * 2,
        )
        if hb is not None:
            boxes[f"{side} hilar structures"] = hb
        yc = anatomy.clavicle - (0.035 if view == "AP" else 0.0)
        qs = np.linspace(0.0, lung.lw + 0.04, 24)
        ycl = yc - (0.30 if view != "AP" else 0.14) * qs + 0.28 * qs * qs
        cb = frame.box_of(np.r_[sg * (qs + 0.03), sg * (qs + 0.03)], np.r_[ycl - 0.02, ycl + 0.02])
        if cb is not None:
            boxes[f"{side} clavicle"] = cb

    right, left = lungs["right"], lungs["left"]
    cx, cy = carina
    top = -_ORIGIN_Y / frame.s - 0.1
    b = frame.box_of([cx - 0.019, cx + 0.019] * 2, [top, top, cy, cy])
    if b is not None:
        boxes["trachea"] = b
    b = frame.box_of([cx - 0.03, cx + 0.03] * 2, [cy - 0.02] * 2 + [cy + 0.03] * 2)
    if b is not None:
        boxes["carina"] = b
    ak = left.m0 + left.knob + left.widen
    b = frame.box_of([-0.01, ak + 0.01] * 2, [-0.215] * 2 + [-0.12] * 2)
    if b is not None:
        boxes["aortic arch"] = b
    # mediastinum: between the lungs' medial borders, inlet to diaphragm, plus the heart
    ys = np.linspace(min(right.ya, left.ya) - 0.02, max(right.dome_top, left.dome_top) + 0.02, 160)
    e = max(0.005, 1.5 * frame.px)
    mr, ml = right.med(ys) + e, left.med(ys) + e
    med_box = frame.box_of(np.r_[-mr, ml], np.r_[ys, ys], pad=1)
    upper = ys <= cy + 0.02
    b = frame.box_of(np.r_[-mr[upper], ml[upper]], np.r_[ys[upper], ys[upper]])
    if b is not None:
        boxes["upper mediastinum"] = b
    svc_y = np.linspace(-0.24, 0.0, 40)
    b = frame.box_of(
        np.r_[-right.med(svc_y) - 0.004, -right.med(svc_y) + 0.03], np.r_[svc_y, svc_y]
    )
    if b is not None:
        boxes["svc"] = b
    heart_box = None
    if heart_mask is not None:
        hsl, hm = heart_mask
        heart_box = _bbox(hm, hsl[0].start, hsl[1].start)
    if heart_box is not None:
        boxes["cardiac silhouette"] = heart_box
        hx1, hy1, hx2, hy2 = heart_box
        hw_, hh_ = hx2 - hx1 + 1, hy2 - hy1 + 1
        boxes["right atrium"] = (hx1, hy1 + round(0.3 * hh_), hx1 + round(0.38 * hw_), hy2)
        cj_x, cj_y = frame.to_pixel(-right.m0, heart.extent()[2] + 0.03)
        boxes["cavoatrial junction"] = (
            max(0, int(cj_x) - round(0.05 * hw_)),
            max(0, int(cj_y) - round(0.06 * hh_)),
            min(frame.cols - 1, int(cj_x) + round(0.08 * hw_)),
            min(frame.rows - 1, int(cj_y) + round(0.06 * hh_)),
        )
    med = _union(med_box, heart_box)
    if med is not None:
        boxes["mediastinum"] = med
    bottom = (1 - _ORIGIN_Y) / frame.s + 0.1
    b = frame.box_of([-right.lw, left.lw] * 2, [right.dome_top] * 2 + [bottom] * 2)
    if b is not None:
        boxes["abdomen"] = b
    b = frame.box_of([-0.036, 0.036] * 2, [top] * 2 + [bottom] * 2)
    if b is not None:
        boxes["spine"] = b


# --------------------------------------------------------------------------------------------
# frontal findings


def _zone_boxes(chest: _Chest, side: str, zone: str | None) -> list[_BOX]:
    b = chest.boxes.get(_zone_box_name(side, zone))
    return [b] if b is not None else []


def _pick(
    chest: _Chest,
    side: str,
    box: _BOX,
    margin: float,
    rng: np.random.Generator,
    lateral: float = 0.0,
    box_margin: tuple[float, float] | None = None,
) -> tuple[float, float]:
    """A random point (mirrored xs, y) inside ``box`` and at least ``margin`` inside the lung.

    ``box_margin`` (body units, x and y) keeps the point that far from the box's edges too,
    so that a shape of that half-size is not clipped by the box window.
    """
    lung = chest.lungs[side]
    r0, c0 = lung.sl[0].start, lung.sl[1].start
    px = chest.frame.px
    bmx, bmy = box_margin if box_margin is not None else (margin, margin)
    x1, y1, x2, y2 = box
    mx = min(int(math.ceil(bmx / px)) + 1, max(0, (x2 - x1) // 2 - 1))
    my = min(int(math.ceil(bmy / px)) + 1, max(0, (y2 - y1) // 2 - 1))
    for k in (1.0, 0.5, 0.0):
        ra = max(y1 + int(k * my) - r0, 0)
        rb = min(y2 - int(k * my) - r0 + 1, lung.d.shape[0])
        ca = max(x1 + int(k * mx) - c0, 0)
        cb = min(x2 - int(k * mx) - c0 + 1, lung.d.shape[1])
        m = k
        if ra >= rb or ca >= cb:
            continue
        d = lung.d[ra:rb, ca:cb]
        ok = d > _F(margin * m)
        if lateral:
            ok &= lung.xs[ra:rb, ca:cb] > _F(lateral) * lung.lat_w[ra:rb, ca:cb]
        idx = np.flatnonzero(ok)
        if idx.size:
            k = int(idx[rng.integers(idx.size)])
            rr, cc = divmod(k, cb - ca)
            return float(lung.xs[ra + rr, ca + cc]), float(lung.y[ra + rr, ca + cc])
    return float(lung.xa + 0.3 * (lung.lw - lung.xa)), float((lung.ya + lung.y_cp) / 2)


def _side_window(
    chest: _Chest, side: str, xs0: float, xs1: float, y0: float, y1: float
) -> tuple[_SL, _SL] | None:
    """A body-frame rectangle on one side as (absolute slices, slices into the lung arrays)."""
    lung = chest.lungs[side]
    xr = sorted((lung.sign * xs0, lung.sign * xs1))
    sl = chest.frame.window(xr[0], xr[1], y0, y1)
    if sl is None:
        return None
    sl = _intersect(sl, lung.sl)
    if sl is None:
        return None
    return sl, _local(lung.sl, sl)


def _finding_box(chest: _Chest, kf: _Keyed, side: str) -> list[_BOX]:
    f = kf.finding
    if f.label == "Pleural Effusion":
        return _zone_boxes(chest, side, "lower")
    if f.label in ("Pneumothorax", "Edema"):
        return _zone_boxes(chest, side, None)
    return _zone_boxes(chest, side, f.zone)


def _effusion(chest: _Chest, kf: _Keyed) -> _Drawn:
    out = _Drawn()
    sev = kf.finding.severity
    for side in kf.sides:
        lung = chest.lungs[side]
        boxes = _finding_box(chest, kf, side)
        if not boxes:
            continue
        top_row = boxes[0][1]
        _, y_top = chest.frame.to_body(chest.frame.cols / 2, top_row)
        hgt = min(0.03 + 0.23 * sev, lung.y_cp - float(y_top) - 0.04)
        y_lat = lung.y_cp - hgt
        w = _side_window(chest, side, 0.0, lung.lw + 0.05, y_lat - 0.02, lung.y_cp + 0.02)
        if w is None:
            continue
        sl, loc = w
        xs, y = lung.xs[loc], lung.y[loc]
        med, lat = lung.med_w[loc], lung.lat_w[loc]
        rel = np.clip((xs - med) / np.maximum(lat - med, _F(1e-3)), 0, 1)
        y_f = _F(y_lat) + _F(0.5 * hgt) * (_F(1.0) - rel * rel)
        u = _ramp(y - y_f, 0.012 + 0.03 * sev)
        thick = _F(0.6 + 0.4 * sev) + _F(0.4 - 0.4 * sev) * np.clip(
            (y - y_f) * _F(1 / max(hgt, 0.02)), 0, 1
        )
        part = _F(0.95) * chest.lung_t[sl] * u * thick * _box_window(boxes, sl, 0.03, 0.0)
        out.parts.append((sl, part))
    return out


def _pneumothorax(chest: _Chest, kf: _Keyed) -> _Drawn:
    out = _Drawn()
    f = kf.finding
    sev = f.severity
    frame = chest.frame
    for side in kf.sides:
        lung = chest.lungs[side]
        lat_t, med_t = chest.tables[side]
        shrink = 1.0 - (0.07 + 0.30 * sev)
        cxs, cy = 0.55 * lung.lw, lung.y_cp - 0.03
        xs, y = lung.xs, lung.y
        xs2 = _F(cxs) + (xs - _F(cxs)) * _F(1 / shrink)
        y2 = _F(cy) + (y - _F(cy)) * _F(1 / shrink)
        d2 = lung.distance(frame, xs2, y2, lat_t, med_t) * _F(shrink)
        e = max(0.004, 1.2 * frame.px)
        gap = lung.soft * _ramp(-d2, e)
        wline = max(0.0022, 1.1 * frame.px)
        line = np.clip(1.0 - np.abs(d2) * _F(1 / wline), 0, 1) * _ramp(lung.d, 2 * e)
        win = _box_window(_finding_box(chest, kf, side), lung.sl)
        gap *= win
        line *= win
        part = _F(0.30) * line - _F(0.28) * chest.lung_t[lung.sl] * gap
        out.parts.append((lung.sl, part))
        out.kill[side] = gap
        if f.attrs.get("chest_tube") and side not in chest.tube_sides:
            chest.tube_sides.add(side)
            out.extra.setdefault("Support Devices", []).extend(_chest_tube(chest, side))
    return out


def _edema(chest: _Chest, kf: _Keyed) -> _Drawn:
    out = _Drawn()
    sev = kf.finding.severity
    for side in kf.sides:
        lung = chest.lungs[side]
        dx = (lung.xs - _F(lung.x_hilum)) * _F(1.0)
        dy = (lung.y - _F(lung.y_hilum)) * _F(1 / 1.35)
        reach = 0.11 + 0.16 * sev
        h = np.clip(_F(1.0) - np.sqrt(dx * dx + dy * dy) * _F(1 / reach), 0, 1)
        h = h * np.sqrt(h)
        h *= _box_window(_finding_box(chest, kf, side), lung.sl)
        part = _F(0.02 + 0.12 * sev + 0.3 * sev * sev) * h * chest.lung_t[lung.sl]
        out.parts.append((lung.sl, part))
        out.blur[side] = np.clip(h * _F(1.6), 0, 1)
    return out


def _blob_parts(chest: _Chest, kf: _Keyed, kind: str) -> _Drawn:
    """Airspace disease: consolidation (dense, lobulated), opacity (patchy), pneumonia (both)."""
    out = _Drawn()
    f = kf.finding
    sev = f.severity
    rng = kf.rng
    frame = chest.frame
    for side in kf.sides:
        lung = chest.lungs[side]
        boxes = _finding_box(chest, kf, side)
        if not boxes:
            continue
        bx1, by1, bx2, by2 = boxes[0]
        bw, bh = (bx2 - bx1) * frame.px, (by2 - by1) * frame.px
        size = {
            "consolidation": 0.45 + 0.35 * sev,
            "opacity": 0.7 + 0.3 * sev,
            "pneumonia": 0.5 + 0.35 * sev,
        }[kind]
        rx, ry = max(0.015, 0.5 * size * bw), max(0.015, 0.5 * size * bh)
        cxs, cy = _pick(
            chest, side, boxes[0], 0.4 * min(rx, ry), rng, box_margin=(1.05 * rx, 1.05 * ry)
        )
        w = _side_window(chest, side, cxs - 1.6 * rx, cxs + 1.6 * rx, cy - 1.6 * ry, cy + 1.6 * ry)
        if w is None:
            continue
        sl, loc = w
        xs, y = lung.xs[loc], lung.y[loc]
        q = ((xs - _F(cxs)) * _F(1 / rx)) ** 2 + ((y - _F(cy)) * _F(1 / ry)) ** 2
        shape = xs.shape
        lob = np.clip(_coarse_noise(rng, shape, 5), -1.5, 1.5)
        core = np.clip((_F(1.0) - q + _F(0.25) * lob) * _F(1 / 0.45), 0, 1)
        core = core * core * (_F(3.0) - _F(2.0) * core)
        t = chest.lung_t[sl]
        win = _box_window(boxes, sl)
        if kind == "consolidation":
            dens = _F(0.25 + 0.65 * sev) * core
        elif kind == "opacity":
            patch = np.clip((_coarse_noise(rng, shape, 8) + _F(0.9)) * _F(0.6), 0, 1)
            env = np.clip((_F(1.0) - q) * _F(1 / 0.6), 0, 1)
            dens = _F(0.38 + 0.55 * sev) * patch * env
        else:
            patch = np.clip((_coarse_noise(rng, shape, 8) + _F(0.5)) * _F(0.6), 0, 1)
            env = np.clip((_F(1.0) - q) * _F(1 / 0.5), 0, 1)
            small = np.clip((_F(1.0) - _F(2.2) * q + _F(0.3) * lob) * _F(1 / 0.45), 0, 1)
            dens = _F(0.35 + 0.4 * sev) * np.maximum(patch * env, small * _F(1.3))
        bronchi = f.attrs.get("air_bronchograms", kind != "opacity" and sev >= 0.45)
        if bronchi:
            dx, dy = xs - _F(lung.x_hilum), y - _F(lung.y_hilum)
            phi = np.arctan2(dy, dx)
            r = np.sqrt(dx * dx + dy * dy)
            ph = rng.uniform(0, 2 * np.pi, 2)
            arg = _F(11) * phi + _F(0.6) * np.sin(_F(30) * r + _F(ph[0])) + _F(ph[1])
            wrapped = arg - _F(2 * np.pi) * np.round(arg * _F(1 / (2 * np.pi)))
            dist = r * np.abs(wrapped) * _F(1 / 11)  # distance to the nearest airway
            tube = _ramp(_F(0.002 + 0.8 * frame.px) - dist, max(0.0015, frame.px))
            tube *= _ramp(r - _F(0.03), 0.02) * _ramp(dens - _F(0.3), 0.2)
            dens = dens * (_F(1.0) - _F(0.45) * tube)
        out.parts.append((sl, _F(0.80) * dens * t * win))
    return out


def _consolidation(chest: _Chest, kf: _Keyed) -> _Drawn:
    return _blob_parts(chest, kf, "consolidation")


def _opacity(chest: _Chest, kf: _Keyed) -> _Drawn:
    return _blob_parts(chest, kf, "opacity")


def _pneumonia(chest: _Chest, kf: _Keyed) -> _Drawn:
    return _blob_parts(chest, kf, "pneumonia")


def _lesion(chest: _Chest, kf: _Keyed) -> _Drawn:
    out = _Drawn()
    sev = kf.finding.severity
    rng = kf.rng
    for side in kf.sides:
        boxes = _finding_box(chest, kf, side)
        if not boxes:
            continue
        R = 0.011 + 0.032 * sev
        cxs, cy = _pick(chest, side, boxes[0], R * 1.25 + 0.004, rng)
        w = _side_window(chest, side, cxs - 1.3 * R, cxs + 1.3 * R, cy - 1.3 * R, cy + 1.3 * R)
        if w is None:
            continue
        sl, loc = w
        lung = chest.lungs[side]
        dx, dy = lung.xs[loc] - _F(cxs), lung.y[loc] - _F(cy)
        r = np.sqrt(dx * dx + dy * dy) + _F(1e-6)
        cth = dx / r
        ph = rng.uniform(-1, 1, 2)
        lobes = (
            _F(1.0)
            + _F(0.10 * sev) * (_F(4) * cth**3 - _F(3) * cth) * _F(ph[0])
            + _F(0.06 * sev) * (_F(2) * cth * cth - _F(1)) * _F(ph[1])
        )
        q = (r / (_F(R) * lobes)) ** 2
        prof = np.sqrt(np.clip(_F(1.0) - q, 0.0, _BIG))
        dens = _F(0.30 + 0.25 * sev) * prof + _F(0.12) * _ramp(_F(1.0) - q, 0.15)
        out.parts.append((sl, dens * _box_window(boxes, sl)))
    return out


def _atelectasis(chest: _Chest, kf: _Keyed) -> _Drawn:
    out = _Drawn()
    sev = kf.finding.severity
    rng = kf.rng
    for side in kf.sides:
        lung = chest.lungs[side]
        boxes = _finding_box(chest, kf, side)
        if not boxes and kf.finding.zone is None:
            boxes = _zone_boxes(chest, side, "lower")
        if not boxes:
            continue
        for _ in range(1 + int(sev > 0.55)):
            length = (0.4 + 0.35 * sev) * (lung.lw - lung.m0)
            tau = 0.005 + 0.018 * sev
            cxs, cy = _pick(chest, side, boxes[0], 0.01, rng)
            cxs = float(np.clip(cxs, lung.m0 + 0.5 * length, lung.lw - 0.5 * length))
            ang = float(rng.uniform(-0.25, 0.05))
            w = _side_window(
                chest, side, cxs - 0.6 * length, cxs + 0.6 * length, cy - 0.08, cy + 0.08
            )
            if w is None:
                continue
            sl, loc = w
            dx, dy = lung.xs[loc] - _F(cxs), lung.y[loc] - _F(cy)
            ca, sa = _F(math.cos(ang)), _F(math.sin(ang))
            along = (ca * dx + sa * dy) * _F(2 / length)
            perp = (ca * dy - sa * dx) * _F(1 / tau)
            band = np.clip(_F(1.0) - perp * perp, 0, 1) * np.clip(_F(1.0) - along * along, 0, 1)
            dens = _F(0.4 + 0.35 * sev) * np.sqrt(band) * chest.lung_t[sl] * _box_window(boxes, sl)
            out.parts.append((sl, dens))
        if sev > 0.4 and kf.finding.zone in (None, "basal", "lower"):
            # segmental collapse at the base: a hazy density rising off the hemidiaphragm
            depth = 0.03 + 0.08 * sev
            half = (0.25 + 0.2 * sev) * (lung.lw - lung.m0)
            cx0 = float(rng.uniform(lung.m0 + half, max(lung.m0 + half, lung.lw - half)))
            w = _side_window(
                chest, side, cx0 - half, cx0 + half, lung.dome_top - depth - 0.01, lung.y_cp + 0.01
            )
            if w is not None:
                sl, loc = w
                xs, y = lung.xs[loc], lung.y[loc]
                rise = np.clip(_F(1.0) - (lung.dome(xs) - y) * _F(1 / depth), 0, 1)
                across = np.clip(_F(1.0) - ((xs - _F(cx0)) * _F(1 / half)) ** 2, 0, 1)
                dens = _F(0.35 + 0.4 * sev) * rise * across * chest.lung_t[sl]
                out.parts.append((sl, dens * _box_window(boxes, sl)))
    return out


def _fracture(chest: _Chest, kf: _Keyed) -> _Drawn:
    out = _Drawn()
    sev = kf.finding.severity
    rng = kf.rng
    a = chest.anatomy
    for side in kf.sides:
        lung = chest.lungs[side]
        boxes = _finding_box(chest, kf, side)
        if not boxes:
            continue
        rf = 0.03
        half = 0.5 * a.rib_spacing
        cxs, cy = _pick(chest, side, boxes[0], rf + half + 0.005, rng, lateral=0.55)
        # move onto the middle of the nearest posterior rib
        dys = np.linspace(-half * 1.2, half * 1.2, 97)
        vals = _posterior_ribs(
            np.full(dys.size, cxs, _F),
            (cy + dys).astype(_F),
            lung.lat(cy + dys).astype(_F),
            lung.ya,
            a.rib_spacing,
        )
        inside = np.r_[False, vals > 0.02, False]
        starts = np.flatnonzero(~inside[:-1] & inside[1:])
        ends = np.flatnonzero(inside[:-1] & ~inside[1:]) - 1
        if starts.size:
            mids = 0.5 * (dys[starts] + dys[ends])
            cy += float(mids[np.argmin(np.abs(mids))])
        w = _side_window(chest, side, cxs - rf, cxs + rf, cy - rf, cy + rf)
        if w is None:
            continue
        sl, loc = w
        xs, y, lat = lung.xs[loc], lung.y[loc], lung.lat_w[loc]
        dx, dy = xs - _F(cxs), y - _F(cy)
        taper = np.clip(_F(1.0) - np.sqrt(dx * dx + dy * dy) * _F(1 / rf), 0, 1)
        step = _F((0.3 + 0.8 * sev) * a.rib_spacing * 0.4) * _ramp(dx, 0.003) * taper
        gapw = 0.002 + 0.005 * sev
        gap = np.clip(_F(1.0) - np.abs(dx + _F(0.35) * dy) * _F(1 / gapw), 0, 1) * taper
        base = _posterior_ribs(xs, y, lat, lung.ya, a.rib_spacing)
        broken = _posterior_ribs(xs, y, lat, lung.ya, a.rib_spacing, shift=step) * (_F(1.0) - gap)
        diff = _F(_RIB) * (broken - base) * _box_window(boxes, sl)
        out.parts.append((sl, diff))
    return out


def _pleural_other(chest: _Chest, kf: _Keyed) -> _Drawn:
    out = _Drawn()
    f = kf.finding
    sev = f.severity
    rng = kf.rng
    for side in kf.sides:
        lung = chest.lungs[side]
        boxes = _finding_box(chest, kf, side)
        if not boxes:
            continue
        th = 0.008 + 0.022 * sev
        ph = float(rng.uniform(0, 2 * np.pi))
        lump = _F(1.0) + _F(0.35) * np.sin(lung.y * _F(45) + _F(ph))
        band = np.clip(_F(1.0) - lung.d * _F(1 / th) / lump, 0, 1) * lung.soft
        if f.zone != "apical":
            band *= _ramp(lung.xs - _F(0.6) * lung.lat_w, 0.02)
        dens = _F(0.45 + 0.4 * sev) * band * _box_window(boxes, lung.sl)
        out.parts.append((lung.sl, dens))
    return out


def _cardiomegaly(chest: _Chest, kf: _Keyed) -> _Drawn:
    return _Drawn()  # drawn through the heart geometry; mask = the enlarged silhouette


def _enlarged_mediastinum(chest: _Chest, kf: _Keyed) -> _Drawn:
    return _Drawn()  # drawn through the mediastinal borders; mask = the widened mediastinum


# --------------------------------------------------------------------------------------------
# devices (polylines rasterised by Pillow, supersampled for anti-aliasing)


def _draw_paths(
    frame: _Frame,
    paths: Sequence[tuple[np.ndarray, float, float]],
    shapes: Sequence[tuple[str, tuple[float, float], tuple[float, float], float]] = (),
) -> tuple[_SL, np.ndarray] | None:
    """Rasterise body-frame polylines ``(points, width, density)`` (and rounded boxes)."""
    pts = [frame.to_pixel(p[:, 0], p[:, 1]) for p, _, _ in paths]
    for _, (cx, cy), (hw, hh), _ in shapes:
        pts.append(frame.to_pixel([cx - hw, cx + hw], [cy - hh, cy + hh]))
    allc = np.concatenate([p[0] for p in pts])
    allr = np.concatenate([p[1] for p in pts])
    pad = 4 + int(0.02 / frame.px)
    c0 = max(0, int(allc.min()) - pad)
    c1 = min(frame.cols, int(allc.max()) + pad)
    r0 = max(0, int(allr.min()) - pad)
    r1 = min(frame.rows, int(allr.max()) + pad)
    if c0 >= c1 or r0 >= r1:
        return None
    ss = 3 if frame.rows <= 1024 else 2
    total = np.zeros((r1 - r0, c1 - c0), _F)
    for (_, width, dens), (pc, pr) in zip(paths, pts, strict=False):
        img = Image.new("F", ((c1 - c0) * ss, (r1 - r0) * ss), 0.0)
        xy = [((c - c0) * ss - 0.5, (r - r0) * ss - 0.5) for c, r in zip(pc, pr, strict=True)]
        w = max(1, int(round(width / frame.px * ss)))
        ImageDraw.Draw(img).line(xy, fill=float(dens), width=w, joint="curve")
        total += _downsample(np.asarray(img), ss)
    for kind, (cx, cy), (hw, hh), dens in shapes:
        img = Image.new("F", ((c1 - c0) * ss, (r1 - r0) * ss), 0.0)
        pc, pr = frame.to_pixel([cx - hw, cx + hw], [cy - hh, cy + hh])
        box = [
            (pc.min() - c0) * ss,
            (pr.min() - r0) * ss,
            (pc.max() - c0) * ss,
            (pr.max() - r0) * ss,
        ]
        draw = ImageDraw.Draw(img)
        if kind == "ellipse":
            draw.ellipse(box, fill=float(dens))
        else:
            draw.rounded_rectangle(box, radius=0.35 * (box[3] - box[1]), fill=float(dens))
        total += _downsample(np.asarray(img), ss)
    return (slice(r0, r1), slice(c0, c1)), total


def _downsample(a: np.ndarray, ss: int) -> np.ndarray:
    h, w = a.shape[0] // ss, a.shape[1] // ss
    return a[: h * ss, : w * ss].reshape(h, ss, w, ss).mean(axis=(1, 3)).astype(_F)


def _curve(points: Sequence[tuple[float, float]], n: int = 64) -> np.ndarray:
    """A smooth path through control points (cubic spline over chord length)."""
    p = np.asarray(points, float)
    t = np.r_[0.0, np.cumsum(np.hypot(*np.diff(p, axis=0).T))]
    s = np.linspace(0.0, t[-1], n)
    return np.column_stack([CubicSpline(t, p[:, 0])(s), CubicSpline(t, p[:, 1])(s)])


def _chest_tube(chest: _Chest, side: str) -> list[tuple[_SL, np.ndarray]]:
    lung = chest.lungs[side]
    sg = lung.sign
    pts = [
        (lung.lw + 0.09, 0.16),
        (lung.lw - 0.005, 0.10),
        (lung.lw - 0.045, -0.03),
        (0.62 * lung.lw, -0.17),
        (0.45 * lung.lw, lung.ya + 0.05),
    ]
    path = _curve([(sg * x, y) for x, y in pts])
    drawn = _draw_paths(chest.frame, [(path, 0.013, 0.30), (path, 0.0035, 0.9)])
    return [drawn] if drawn is not None else []


def _device_paths(
    chest: _Chest, device: str, side: str | None, rng: np.random.Generator
) -> tuple[list[tuple[np.ndarray, float, float]], list]:
    cx, cy = chest.carina
    left = chest.lungs["left"]
    top = -_ORIGIN_Y / chest.frame.s - 0.15
    if device == "endotracheal tube":
        tip = cy - float(rng.uniform(0.035, 0.075))
        path = _curve([(cx + 0.002, top), (cx, -0.35), (cx + 0.001, tip)])
        stripe = path + np.array([0.006, 0.0])
        return [(path, 0.019, 0.18), (stripe, 0.0035, 0.9)], []
    if device == "enteric tube":
        dl = left.dome_top
        path = _curve(
            [
                (cx + 0.012, top),
                (0.012, -0.25),
                (0.02, 0.0),
                (0.045, dl - 0.02),
                (0.09, dl + 0.05),
                (0.15, dl + 0.075),
                (0.19, dl + 0.05),
            ]
        )
        return [(path, 0.0045, 0.8)], []
    sg = -1.0 if side != "left" else 1.0
    if device == "central line":
        tipy = chest.heart.extent()[2] + float(rng.uniform(0.0, 0.04))
        if sg < 0:
            pts = [(-0.085, top), (-0.07, -0.36), (-0.045, -0.24), (-0.034, -0.12), (-0.032, tipy)]
        else:
            pts = [
                (0.085, top),
                (0.068, -0.34),
                (0.03, -0.24),
                (-0.02, -0.19),
                (-0.035, -0.10),
                (-0.033, tipy),
            ]
        return [(_curve(pts), 0.0045, 0.75)], []
    if device == "picc":
        lung = chest.lungs["left" if sg > 0 else "right"]
        tipy = chest.heart.extent()[2] + float(rng.uniform(-0.02, 0.03))
        pts = [
            (sg * (lung.lw + 0.2), -0.12),
            (sg * (lung.lw + 0.07), -0.25),
            (sg * 0.16, -0.27),
            (sg * 0.06, -0.23),
            (-0.03, -0.15),
            (-0.034, tipy),
        ]
        return [(_curve(pts), 0.003, 0.7)], []
    if device == "pacemaker":
        sg = -1.0 if side == "right" else 1.0
        lung = chest.lungs["left" if sg > 0 else "right"]
        gx, gy = sg * (0.55 * lung.lw + 0.05), chest.anatomy.clavicle + 0.075
        _, hx1, _, hy1 = chest.heart.extent()
        hy1 = min(hy1, left.dome_top + 0.05)  # an enlarged heart reaches below the dome
        ra = (-0.065, chest.heart.extent()[2] + 0.07)
        rv = (min(hx1 - 0.06, 0.12), hy1 - 0.04)
        lead1 = _curve(
            [
                (gx - sg * 0.02, gy),
                (sg * 0.12, gy - 0.035),
                (sg * 0.04, gy - 0.02),
                (-0.03, -0.13),
                (-0.05, ra[1] - 0.06),
                (ra[0], ra[1]),
                (ra[0] + 0.02, ra[1] - 0.03),
            ]
        )
        lead2 = _curve(
            [
                (gx - sg * 0.02, gy + 0.01),
                (sg * 0.11, gy - 0.025),
                (sg * 0.035, gy - 0.01),
                (-0.035, -0.12),
                (-0.045, ra[1] - 0.02),
                (0.0, hy1 - 0.06),
                rv,
            ]
        )
        shapes = [("box", (gx, gy), (0.034, 0.024), 2.6), ("ellipse", rv, (0.006, 0.006), 1.5)]
        return [(lead1, 0.0035, 0.95), (lead2, 0.0035, 0.95)], shapes
    if device == "chest tube":
        return [], []  # handled by _chest_tube (needs the lung)
    raise ValueError(f"unknown device {device!r}")  # pragma: no cover - validated in Finding


def _support_devices(chest: _Chest, kf: _Keyed) -> _Drawn:
    out = _Drawn()
    f = kf.finding
    rng = kf.rng
    names = _device_names(f)
    if not names:
        k = 1 + int(f.severity > 0.5)
        pool = ["endotracheal tube", "enteric tube", "central line", "pacemaker"]
        names = [pool[i] for i in rng.choice(len(pool), size=k, replace=False)]
    side = f.side if f.side in ("right", "left") else None
    for name in names:
        if name == "chest tube":
            tube_side = side or "right"
            if tube_side not in chest.tube_sides:  # not twice with Pneumothorax(chest_tube)
                chest.tube_sides.add(tube_side)
                out.parts.extend(_chest_tube(chest, tube_side))
            continue
        paths, shapes = _device_paths(chest, name, side, rng)
        drawn = _draw_paths(chest.frame, paths, shapes)
        if drawn is not None:
            out.parts.append(drawn)
    return out


_FRONTAL_FINDINGS: dict[str, Callable[[_Chest, _Keyed], _Drawn]] = {
    "Atelectasis": _atelectasis,
    "Cardiomegaly": _cardiomegaly,
    "Consolidation": _consolidation,
    "Edema": _edema,
    "Enlarged Cardiomediastinum": _enlarged_mediastinum,
    "Fracture": _fracture,
    "Lung Lesion": _lesion,
    "Lung Opacity": _opacity,
    "Pleural Effusion": _effusion,
    "Pleural Other": _pleural_other,
    "Pneumonia": _pneumonia,
    "Pneumothorax": _pneumothorax,
    "Support Devices": _support_devices,
}


# --------------------------------------------------------------------------------------------
# lateral view


def _lateral(
    frame: _Frame,
    anatomy: Anatomy,
    keyed: list[_Keyed],
    texture: tuple[float, np.random.Generator] | None = None,
) -> np.ndarray:
    """A left lateral film (anterior on the image's left) of the same patient and findings.

    Simpler than the frontal film: body profile, the two lungs superimposed with their two
    hemidiaphragms, heart shadow, sternum, vertebral column, trachea and vessels; findings at
    their usual lateral sites (an effusion blunts the posterior costophrenic sulcus). No masks.
    """
    X, Y = frame.X, frame.Y
    px = frame.px
    labels = {k.finding.label: k for k in keyed}
    hab = anatomy.habitus
    fr, bk = 0.27 + 0.025 * hab, 0.27 + 0.02 * hab
    ya = anatomy.apex + 0.02
    dr, dl = anatomy.diaphragm

    def smooth(t: np.ndarray) -> np.ndarray:
        t = np.clip(t, 0.0, 1.0)
        return t * t * (3 - 2 * t)

    def front(y: np.ndarray) -> np.ndarray:
        return -0.075 - (fr - 0.075) * smooth((y + 0.47) / 0.17) - 0.025 * smooth((y - 0.15) / 0.3)

    def back(y: np.ndarray) -> np.ndarray:
        return 0.11 + (bk - 0.11) * smooth((y + 0.49) / 0.17) - 0.04 * smooth((y - 0.2) / 0.3)

    def lung_a(y: np.ndarray) -> np.ndarray:  # anterior lung border (retrosternal)
        s = np.sqrt(np.clip((y - ya) / 0.22, 0.0, 1.0))
        return -0.05 + (front(y) + 0.04 + 0.05) * s

    def lung_p(y: np.ndarray) -> np.ndarray:  # posterior border (posterior ribs)
        s = np.sqrt(np.clip((y - ya) / 0.22, 0.0, 1.0))
        return 0.09 + (back(y) - 0.055 - 0.09) * s

    yi = frame.yi
    f_, b_ = np.take(frame.table(front), yi), np.take(frame.table(back), yi)
    z = (X - (f_ + b_) * _F(0.5)) / ((b_ - f_) * _F(0.5))
    atten = _F(1.3 + 0.1 * hab) * np.sqrt(np.clip(_F(1.0) - z * z, 0.0, _BIG))
    del z, f_, b_

    la_t, lp_t = frame.table(lung_a), frame.table(lung_p)
    ant, post = -fr + 0.04, bk - 0.055
    sl = frame.window(ant - 0.03, post + 0.03, ya - 0.03, max(dr, dl) + 0.16)
    assert sl is not None
    x, y = X[sl], Y[sl]
    a_, p_ = np.take(la_t, yi[sl]), np.take(lp_t, yi[sl])
    top = y - (_F(ya) + _F(6.0) * (x - _F(0.02)) ** 2)
    u = (x - _F(ant)) * _F(1 / (post - ant))
    shape = _F(0.06) * (u - _F(0.3)) ** 2 + _F(0.4) * np.clip(u - _F(0.45), 0.0, _BIG) ** 2
    e = max(0.005, 1.5 * px)
    side_d, side_soft = {}, {}
    lung_t = np.zeros_like(x)
    for side, dome_top in (("right", dr), ("left", dl)):
        d = np.minimum(np.minimum(x - a_, p_ - x), np.minimum(_F(dome_top - 0.03) + shape - y, top))
        side_d[side] = d
        side_soft[side] = _ramp(d, e) * (_F(0.5) + _F(0.5) * _ramp(d, 0.05))
        lung_t += _F(0.5) * side_soft[side]
    # heart: anterior and inferior, resting on the diaphragm
    cm = labels.get("Cardiomegaly")
    lam = 1.0 if cm is None else _cardiomegaly_ctr(anatomy, cm.finding.severity) / anatomy.ctr
    ha0, hb0 = 0.135 * anatomy.ctr / 0.45, 0.115 * anatomy.ctr / 0.45
    bx, by = ant + 0.01 + ha0, min(dr, dl) + 0.07  # lowest point: the homothety centre
    ha, hb = ha0 * lam, hb0 * lam
    hx, hy = bx, by - hb
    hd = _F(1.0) - ((x - _F(hx)) * _F(1 / ha)) ** 2 - ((y - _F(hy)) * _F(1 / hb)) ** 2
    heart = _ramp(hd * _F(0.5 * hb), 0.012)
    lung_t *= _F(1.0) - _F(0.7) * heart
    # vessels from the hilum
    hxl, hyl = 0.03, -0.04
    segs = _vessel_tree(anatomy.seed, 5, (-math.pi, math.pi), n0=11)
    vessels = _draw_tree(frame, sl, segs, (hxl, hyl), 1.0)
    dx, dy = x - _F(hxl), y - _F(hyl)
    rr = np.sqrt(dx * dx + dy * dy)
    vessels *= np.clip(_F(1.15) - rr * _F(1 / 0.24), 0, 1)
    parts = np.zeros_like(x)
    kill = np.zeros_like(x)
    blur = np.zeros_like(x)
    for kf in keyed:
        before = (parts.copy(), kill.copy(), blur.copy()) if kf.gain != 1.0 else None
        f, sev, rng = kf.finding, kf.finding.severity, kf.rng
        lab = f.label
        sides = kf.sides or ["right", "left"]
        tt = sum(_F(0.5) * side_soft[s] for s in sides)
        if lab == "Pleural Effusion":
            hgt = 0.03 + 0.17 * sev
            for s_ in sides:
                dome_top = dr if s_ == "right" else dl
                y_f = _F(dome_top + 0.11 - hgt) - _F(0.55 * hgt) * (_F(1.0) - u * u)
                parts += _F(0.9) * _F(0.5) * side_soft[s_] * _ramp(y - y_f, 0.015 + 0.03 * sev)
        elif lab in ("Consolidation", "Pneumonia", "Lung Opacity", "Lung Lesion", "Atelectasis"):
            zone = f.zone or "lower"
            yc = {"apical": -0.24, "upper": -0.17, "mid": -0.03, "lower": 0.1, "basal": 0.13}[zone]
            xc = {"apical": 0.0, "upper": -0.06, "mid": 0.0, "lower": 0.1, "basal": 0.12}[zone]
            xc += float(rng.uniform(-0.03, 0.03))
            if lab == "Lung Lesion":
                R = 0.011 + 0.032 * sev
                q = ((x - _F(xc)) ** 2 + (y - _F(yc)) ** 2) * _F(1 / R**2)
                parts += _F(0.3 + 0.25 * sev) * np.sqrt(np.clip(_F(1.0) - q, 0.0, _BIG))
            elif lab == "Atelectasis":
                perp = (y - _F(yc) - _F(0.1) * (x - _F(xc))) * _F(1 / (0.004 + 0.011 * sev))
                along = (x - _F(xc)) * _F(1 / (0.06 + 0.05 * sev))
                band = np.clip(_F(1.0) - perp * perp, 0, 1) * np.clip(_F(1.0) - along * along, 0, 1)
                parts += _F(0.4 + 0.35 * sev) * np.sqrt(band) * tt
            else:
                rx, ry = 0.05 + 0.06 * sev, 0.045 + 0.05 * sev
                q = ((x - _F(xc)) * _F(1 / rx)) ** 2 + ((y - _F(yc)) * _F(1 / ry)) ** 2
                core = np.clip(
                    (_F(1.0) - q + _F(0.3) * _coarse_noise(rng, x.shape, 5)) * _F(1 / 0.3), 0, 1
                )
                dens = 0.45 + 0.5 * sev if lab == "Consolidation" else 0.25 + 0.4 * sev
                parts += _F(0.8 * dens) * core * tt
        elif lab == "Edema":
            h = np.clip(
                _F(1.0) - np.sqrt(dx * dx + (dy * _F(1 / 1.3)) ** 2) * _F(1 / (0.12 + 0.12 * sev)),
                0,
                1,
            )
            h = h * np.sqrt(h)
            parts += _F(0.3 + 0.45 * sev) * h * lung_t
            blur = np.maximum(blur, np.clip(h * _F(1.6), 0, 1))
        elif lab == "Pneumothorax":
            gap = _ramp(_F(ya + 0.05 + 0.1 * sev) - y, 0.02) * _ramp(side_d[sides[0]], e)
            kill = np.maximum(kill, gap)
            parts -= _F(0.25) * gap * lung_t
        elif lab == "Pleural Other":
            parts += _F(0.45 + 0.4 * sev) * _ramp(_F(0.008 + 0.022 * sev) - (p_ - x), 0.006) * tt
        elif lab == "Enlarged Cardiomediastinum":
            band = (
                _ramp(_F(0.03 + 0.04 * sev) - np.abs(x - _F(-0.07)), 0.02)
                * _ramp(_F(-0.03) - y, 0.04)
                * _ramp(y - _F(-0.3), 0.04)
            )
            parts += _F(0.5) * band * lung_t
        if before is not None:  # keep kf.gain of what this finding added
            g = _F(kf.gain)
            parts = before[0] + g * (parts - before[0])
            kill = before[1] + g * (kill - before[1])
            blur = before[2] + g * (blur - before[2])
    if blur.any():
        vessels += blur * (
            _F(1.4) * ndimage.gaussian_filter(vessels, max(1.5, 0.006 / px)) - vessels
        )
    vessels *= _F(1.0) - kill
    hil = np.clip(
        _F(1.0) - ((x - _F(hxl)) * _F(1 / 0.05)) ** 2 - ((y - _F(hyl)) * _F(1 / 0.07)) ** 2, 0, None
    )
    atten[sl] += (_F(0.16) * vessels + _F(0.12) * hil - _F(0.82)) * lung_t + parts
    _lung_texture(atten, sl, lung_t, texture)
    # vertebral column along a gentle kyphosis, sternum, trachea
    vs = frame.window(0.0, bk + 0.05, -0.6, 0.7)
    if vs is not None:
        x2, y2 = X[vs], Y[vs]
        xc = _F(bk - 0.135) + _F(0.025) * np.clip(
            _F(1.0) - ((y2 + _F(0.1)) * _F(1 / 0.5)) ** 2, 0, 1
        )
        v = (y2 + _F(0.4)) * _F(1 / (anatomy.rib_spacing * 1.02))
        fv = v - np.floor(v)
        body = _bone((x2 - xc) * _F(1 / 0.04)) * _bone((fv - _F(0.45)) * _F(1 / 0.4))
        post_el = _ramp(_F(1.0) - np.abs((x2 - xc - _F(0.075)) * _F(1 / 0.022)), 0.3)
        atten[vs] += _F(0.22) * body + _F(0.08) * post_el
    st = frame.window(-fr - 0.01, -fr + 0.06, -0.32, 0.15)
    if st is not None:
        x2, y2 = X[st], Y[st]
        s_x = _F(-fr + 0.018) - _F(0.03) * (y2 + _F(0.1))
        band = (
            _bone((x2 - s_x) * _F(1 / 0.011))
            * _ramp(y2 + _F(0.28), 0.02)
            * _ramp(_F(0.12) - y2, 0.02)
        )
        atten[st] += _F(0.3) * band
    tr = frame.window(-0.08, 0.08, -0.7, -0.06)
    if tr is not None:
        x2, y2 = X[tr], Y[tr]
        dist = _segment_distance(x2, y2, (-0.03, -0.62), (0.035, -0.09))
        atten[tr] -= _F(0.2) * _ramp(_F(0.012) - dist, 0.005)
    # devices, roughly where they run on a lateral
    paths: list[tuple[np.ndarray, float, float]] = []
    shapes: list = []
    tube = False  # one chest tube, whether asked for by the pneumothorax or as a device
    for kf in keyed:
        f = kf.finding
        if f.label == "Pneumothorax" and f.attrs.get("chest_tube"):
            names = ["chest tube"]
        elif f.label == "Support Devices":
            names = _device_names(f) or ["endotracheal tube"]
        else:
            continue
        for n in names:
            if n == "endotracheal tube":
                paths.append((_curve([(-0.05, -0.7), (-0.03, -0.45), (0.015, -0.16)]), 0.004, 0.9))
            elif n == "enteric tube":
                paths.append(
                    (
                        _curve(
                            [
                                (0.0, -0.7),
                                (0.06, -0.3),
                                (0.08, 0.05),
                                (0.02, dl + 0.05),
                                (-0.08, dl + 0.09),
                            ]
                        ),
                        0.0045,
                        0.8,
                    )
                )
            elif n in ("central line", "picc"):
                paths.append(
                    (
                        _curve(
                            [(0.02, -0.7), (-0.01, -0.3), (-0.04, -0.12), (-0.05, hy - 0.6 * hb)]
                        ),
                        0.004,
                        0.7,
                    )
                )
            elif n == "pacemaker":
                shapes.append(("box", (-fr - 0.005, -0.21), (0.012, 0.034), 2.6))
                paths.append(
                    (
                        _curve(
                            [
                                (-fr + 0.005, -0.21),
                                (-0.1, -0.19),
                                (-0.05, -0.1),
                                (hx - 0.03, hy),
                                (hx - 0.6 * ha, hy + 0.6 * hb),
                            ]
                        ),
                        0.0035,
                        0.95,
                    )
                )
            elif n == "chest tube" and not tube:
                tube = True
                paths.append(
                    (_curve([(0.2, 0.22), (0.17, 0.0), (0.1, -0.18), (0.04, -0.25)]), 0.012, 0.35)
                )
    if paths or shapes:
        drawn = _draw_paths(frame, paths, shapes)
        if drawn is not None:
            atten[drawn[0]] += drawn[1]
    return atten


# --------------------------------------------------------------------------------------------
# film response, noise, burned-in markers


def _film(atten: np.ndarray, anatomy: Anatomy, view: str, rng: np.random.Generator) -> np.ndarray:
    """Exponential film response, display window, signal-dependent quantum noise."""
    lateral = view == "LATERAL"
    gain = 1.05 * anatomy.exposure * (0.9 if view == "AP" else 1.0) * (0.8 if lateral else 1.0)
    img = _F(1.0) - np.exp(atten * _F(-gain))
    lo = 0.02 if view != "AP" else 0.05
    hi = lo + (0.78 if view != "AP" else 0.74) / anatomy.contrast
    img = (img - _F(lo)) * _F(1.0 / (hi - lo))
    sigma = anatomy.noise * (1.8 if view == "AP" else 1.0)
    noise = rng.standard_normal(img.shape, dtype=_F)
    img += noise * (_F(0.35 * sigma) + _F(0.65 * sigma) * np.clip(img, 0, 1))
    np.clip(img, 0.0, 1.0, out=img)
    return img


def _burn_marker(image: np.ndarray, marker: str) -> None:
    rows, cols = image.shape
    if marker.lower() == "spurious":
        size = max(7, int(round(0.05 * rows)))
        ss = 4
        img = Image.new("L", (size * ss, size * ss), 0)
        d = ImageDraw.Draw(img)
        w = max(ss, int(round(size * ss * 0.14)))
        d.ellipse(
            [w // 2, w // 2, size * ss - w // 2 - 1, size * ss - w // 2 - 1], outline=255, width=w
        )
        c = size * ss / 2
        r = size * ss * 0.16
        d.rectangle([c - r, c - r, c + r, c + r], fill=255)
        tag = _downsample(np.asarray(img, _F) / 255.0, ss)
        r0, c0 = int(0.04 * rows), int(0.05 * cols)
    else:
        height = max(8, int(round(0.03 * rows)))
        try:
            font: Any = ImageFont.load_default(size=height * 4)
        except (OSError, TypeError, ValueError):  # no FreeType: the fixed bitmap font
            font = ImageFont.load_default()
        text = marker.upper()
        probe = ImageDraw.Draw(Image.new("L", (1, 1)))
        stroke = max(1, (probe.textbbox((0, 0), text, font=font)[3]) // 7)  # bold, block-like
        x0, y0, x1, y1 = probe.textbbox((0, 0), text, font=font, stroke_width=stroke)
        img = Image.new("L", (x1 - x0 + 4, y1 - y0 + 4), 0)
        ImageDraw.Draw(img).text(
            (2 - x0, 2 - y0), text, fill=255, font=font, stroke_width=stroke, stroke_fill=255
        )
        scale = height / img.height
        w = max(1, int(round(img.width * scale)))
        w = min(w, int(0.45 * cols))
        img = img.resize((w, height), Image.Resampling.BOX)
        tag = np.asarray(img, _F) / 255.0
        r0, c0 = int(0.03 * rows), cols - int(0.04 * cols) - tag.shape[1]
    h, w = tag.shape
    h, w = min(h, rows - r0), min(w, cols - c0)
    region = image[r0 : r0 + h, c0 : c0 + w]
    np.maximum(region, _F(0.97) * tag[:h, :w], out=region)
