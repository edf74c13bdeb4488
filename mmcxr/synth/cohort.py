"""Who is in the synthetic cohort and what each study shows: patients, studies, views, findings.

Findings are not drawn label by label: each abnormal study gets a clinical *process* (heart
failure, pneumonia, atelectasis ...) that brings its usual companions (cardiomegaly with edema
and effusions, pneumonia with consolidation or opacity), which is what gives the CheXpert
labels MIMIC-like co-occurrence. On top of that sit the planted structures of
:class:`~mmcxr.synth.config.SynthConfig` (class imbalance among PA erect films, hidden strata,
a spurious marker, label noise), each recorded per study so that the ground-truth table can
say exactly what was planted where.

Everything here is cheap bookkeeping done in the parent process with one sequential random
stream; pixels are rendered later from per-study child seeds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mmcxr.synth.config import SynthConfig
from mmcxr.synth.labels import FINDING_LABELS, LABEL_ZONES, LATERALISED

#: Dataset flavours the sampler knows: they differ in views and clinical setting.
DATASETS = ("mimic", "openi", "chestxray14")

DEVICES_ICU = ("endotracheal tube", "enteric tube", "central line", "picc")


@dataclass
class PlannedFinding:
    """One finding of one study, as drawn in the pixels and as said in the report.

    ``drawn`` is the pixel truth; ``status`` is what the report asserts (1.0 positive, -1.0
    hedged, 0.0 explicitly absent, NaN not reported). They disagree only where the config
    planted it: label noise, or a hedge about something that is not there.
    """

    label: str
    side: str | None = None
    zone: str | None = None
    severity: float = 0.5
    drawn: bool = True
    status: float = 1.0
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def reported(self) -> bool:
        return self.status in (1.0, -1.0)


@dataclass
class ImagePlan:
    dicom_id: str
    view: str  # ViewPosition: PA, AP, LATERAL or LL
    marker: str | None = None


@dataclass
class StudyPlan:
    """Everything decided about one study before any pixel is drawn."""

    index: int
    patient_index: int
    subject_id: int
    study_id: int
    study_order: int
    sex: str
    age: int
    study_date: int  # YYYYMMDD (MIMIC's shifted years, 21xx)
    study_time: float  # HHMMSS.fff
    portable: bool
    orientation: str  # Erect | Recumbent
    images: list[ImagePlan]
    findings: list[PlannedFinding]
    process: str  # "normal" or the clinical process that drove the findings
    spurious_marker: bool = False
    noise_label: str | None = None
    noise_kind: str | None = None  # "dropped" (drawn, not reported) | "added" (reported, not drawn)
    prior_study_id: int | None = None
    prior_labels: frozenset[str] = frozenset()
    #: what ``SynthConfig.report_difficulty`` did to the report ("omitted:<label>",
    #: "hedged:<label>", "false_hedge:<label>", "mesh_flipped"), in the ground truth.
    report_edits: list[str] = field(default_factory=list)

    @property
    def frontal(self) -> ImagePlan:
        return self.images[0]

    @property
    def frontal_view(self) -> str:
        return self.images[0].view

    def drawn(self) -> list[PlannedFinding]:
        return [f for f in self.findings if f.drawn]

    def reported(self) -> list[PlannedFinding]:
        return [f for f in self.findings if f.reported]

    def truth(self, label: str) -> bool:
        return any(f.label == label and f.drawn for f in self.findings)

    def status(self, label: str) -> float:
        """The report's assertion for ``label``: CheXpert aggregation (positive > uncertain)."""
        values = [f.status for f in self.findings if f.label == label and f.reported]
        if 1.0 in values:
            return 1.0
        if -1.0 in values:
            return -1.0
        return math.nan


# --------------------------------------------------------------------------------------------
# ids


def _unique_ints(rng: np.random.Generator, n: int, low: int, high: int) -> list[int]:
    out: list[int] = []
    seen: set[int] = set()
    while len(out) < n:
        for v in rng.integers(low, high, size=max(8, 2 * (n - len(out)))).tolist():
            if v not in seen:
                seen.add(v)
                out.append(v)
                if len(out) == n:
                    break
    return out


def dicom_id(rng: np.random.Generator) -> str:
    """MIMIC-CXR's dicom_id shape: five groups of eight hex characters joined by '-'."""
    return "-".join(f"{v:08x}" for v in rng.integers(0, 2**32, size=5, dtype=np.uint64).tolist())


# --------------------------------------------------------------------------------------------
# findings


def _side(rng: np.random.Generator, p_right: float, p_left: float) -> str:
    u = rng.random()
    return "right" if u < p_right else "left" if u < p_right + p_left else "bilateral"


def _pick(rng: np.random.Generator, options: tuple[str, ...], p: tuple[float, ...]) -> str:
    return options[int(rng.choice(len(options), p=np.asarray(p) / sum(p)))]


#: Findings graded on a continuum in real reports (heart size, mediastinal width, edema):
#: mostly mild, so borderline cases exist, rather than split into subtle and obvious.
GRADED = ("Cardiomegaly", "Edema", "Enlarged Cardiomediastinum")


def _severity(
    rng: np.random.Generator, cfg: SynthConfig, subtle: bool | None = None, graded: bool = False
) -> float:
    """Bimodal (subtle vs obvious) when strata are planted, else uniform over the range.

    ``graded`` findings (see :data:`GRADED`) are skewed to mild instead (median about 0.3),
    whatever the strata switch, unless asked for a subtle one (a hedged finding).
    """
    if graded and subtle is not True:
        return float(0.1 + 0.88 * rng.random() ** 2)
    if not cfg.plant_strata:
        return float(rng.uniform(0.15, 0.95))
    if subtle is None:
        subtle = bool(rng.random() < cfg.subtle_rate)
    lo, hi = (0.12, cfg.subtle_threshold) if subtle else (0.55, 0.98)
    return float(rng.uniform(lo, min(hi, 1.0)))


def _finding(
    rng: np.random.Generator,
    cfg: SynthConfig,
    label: str,
    side: str | None = None,
    zone: str | None = None,
    **attrs: Any,
) -> PlannedFinding:
    if zone is not None and zone not in LABEL_ZONES.get(label, ()):
        zone = None  # a companion cannot sit there (atelectasis is never apical): resample
    if label in LATERALISED and side is None:
        side = {
            "Pleural Effusion": lambda: _side(rng, 0.35, 0.30),
            "Pneumothorax": lambda: _side(rng, 0.52, 0.48),
            "Fracture": lambda: _side(rng, 0.5, 0.5),
            "Lung Lesion": lambda: _side(rng, 0.55, 0.45),
            "Pleural Other": lambda: _side(rng, 0.45, 0.40),
            "Atelectasis": lambda: _side(rng, 0.35, 0.35),
        }.get(label, lambda: _side(rng, 0.48, 0.37))()
    if label in LATERALISED and zone is None:
        zone = {
            "Pleural Effusion": lambda: "basal",
            "Pneumothorax": lambda: "apical",
            "Pleural Other": lambda: "apical",
            "Atelectasis": lambda: _pick(rng, ("basal", "lower", "mid"), (0.6, 0.25, 0.15)),
            "Lung Lesion": lambda: _pick(rng, ("upper", "mid", "lower"), (0.45, 0.3, 0.25)),
            "Fracture": lambda: _pick(rng, ("upper", "mid", "lower"), (0.3, 0.45, 0.25)),
        }.get(label, lambda: _pick(rng, ("lower", "mid", "upper"), (0.55, 0.25, 0.20)))()
    if label == "Edema":
        side = "bilateral"
    subtle = attrs.pop("subtle", None)
    sev = _severity(rng, cfg, subtle, graded=label in GRADED)
    return PlannedFinding(label, side, zone, sev, attrs=attrs)


def _process_findings(
    rng: np.random.Generator, cfg: SynthConfig, process: str
) -> list[PlannedFinding]:
    """The findings one clinical process brings, with their usual companions."""

    def f(label: str, **kw: Any) -> PlannedFinding:
        return _finding(rng, cfg, label, **kw)

    p = rng.random
    out: list[PlannedFinding] = []
    if process == "heart_failure":
        # not every edema comes with a big heart and effusions (fluid overload, renal failure)
        if p() < 0.65:
            out.append(f("Cardiomegaly"))
        out.append(f("Edema"))
        if p() < 0.45:
            side = _side(rng, 0.3, 0.1)
            out.append(f("Pleural Effusion", side=side))
            if p() < 0.35:
                out.append(f("Atelectasis", side=side, zone="basal"))
        if p() < 0.12:
            out.append(f("Enlarged Cardiomediastinum"))
    elif process == "pneumonia":
        pn = f("Pneumonia")
        out.append(pn)
        u = p()
        if u < 0.35:
            out.append(f("Consolidation", side=pn.side, zone=pn.zone))
        elif u < 0.80:
            out.append(f("Lung Opacity", side=pn.side, zone=pn.zone))
        else:
            out.append(f("Consolidation", side=pn.side, zone=pn.zone))
            out.append(f("Lung Opacity", side=pn.side, zone=pn.zone))
        if p() < 0.2:
            out.append(f("Pleural Effusion", side=pn.side if pn.side != "bilateral" else None))
    elif process == "atelectasis":
        at = f("Atelectasis")
        out.append(at)
        if p() < 0.35:
            out.append(f("Pleural Effusion", side=at.side))
        if p() < 0.15:
            out.append(
                f("Lung Opacity", side=at.side, zone=at.zone if at.zone != "basal" else "lower")
            )
    elif process == "effusion":
        ef = f("Pleural Effusion")
        out.append(ef)
        if p() < 0.4:
            out.append(f("Atelectasis", side=ef.side, zone="basal"))
        if p() < 0.2:
            out.append(f("Cardiomegaly"))
    elif process == "cardiomegaly":
        out.append(f("Cardiomegaly"))
        if p() < 0.2:
            out.append(f("Enlarged Cardiomediastinum"))
    elif process == "opacity":
        op = f("Lung Opacity")
        out.append(op)
        if p() < 0.2:
            out.append(f("Atelectasis", side=op.side, zone=op.zone))
    elif process == "pneumothorax":
        tube = cfg.plant_strata and p() < cfg.chest_tube_rate_pneumothorax
        ptx = f("Pneumothorax", chest_tube=bool(tube))
        out.append(ptx)
        if tube:
            side = ptx.side if ptx.side != "bilateral" else "right"
            out.append(
                PlannedFinding(
                    "Support Devices",
                    side,
                    None,
                    1.0,
                    attrs={"device": "chest tube", "render": False},
                )
            )
        if p() < 0.15:
            out.append(f("Fracture", side=ptx.side if ptx.side != "bilateral" else None))
        if p() < 0.1:
            out.append(f("Pleural Effusion", side=ptx.side))
    elif process == "mediastinum":
        out.append(f("Enlarged Cardiomediastinum"))
        if p() < 0.3:
            out.append(f("Cardiomegaly"))
    elif process == "lesion":
        out.append(f("Lung Lesion"))
        if p() < 0.1:
            out.append(f("Pleural Effusion"))
    elif process == "fracture":
        out.append(f("Fracture"))
        if p() < 0.1:
            out.append(f("Pneumothorax"))
    elif process == "pleural_other":
        out.append(f("Pleural Other"))
        if p() < 0.1:
            out.append(f("Atelectasis"))
    else:  # pragma: no cover - process names come from the config, which is validated
        raise ValueError(f"unknown process {process!r}")
    if process != "pneumothorax":
        for fi in out:
            fi.attrs.pop("chest_tube", None)
    return out


def _merge(findings: list[PlannedFinding]) -> list[PlannedFinding]:
    """One finding per label (devices excepted): a second process adds nothing already there."""
    seen: set[str] = set()
    out = []
    for f in findings:
        if f.label != "Support Devices" and f.label in seen:
            continue
        seen.add(f.label)
        out.append(f)
    return out


def _devices(
    rng: np.random.Generator, portable: bool, findings: list[PlannedFinding]
) -> list[PlannedFinding]:
    """Lines, tubes and pacemakers: ICU portables often, department films sometimes.

    Thin lines (endotracheal and enteric tubes, central lines, PICCs) are a pixel or less wide
    on a small thumbnail; a pacemaker is obvious at any size. Outpatients carry PICCs, ports
    and pacemakers too, so a device is not simply a portable film.
    """
    out = []
    chosen: list[str] = []
    if portable and rng.random() < 0.55:
        chosen = [
            d for d, q in zip(DEVICES_ICU, (0.5, 0.5, 0.4, 0.3), strict=True) if rng.random() < q
        ]
        chosen = chosen or ["endotracheal tube"]
    elif not portable and rng.random() < 0.05:
        chosen = [_pick(rng, ("central line", "picc"), (0.4, 0.6))]
    for d in chosen:
        side = (
            _pick(rng, ("right", "left"), (0.65, 0.35)) if d in ("central line", "picc") else None
        )
        out.append(PlannedFinding("Support Devices", side, None, 1.0, attrs={"device": d}))
    if rng.random() < (0.06 if portable else 0.03):
        out.append(
            PlannedFinding("Support Devices", "left", None, 1.0, attrs={"device": "pacemaker"})
        )
    return out


def _abnormal_processes(cfg: SynthConfig, exclude: tuple[str, ...] = ()) -> tuple[list, np.ndarray]:
    names = [k for k, w in cfg.process_weights.items() if w > 0 and k not in exclude]
    if not names:
        raise ValueError("SynthConfig.process_weights leaves no abnormal process to sample")
    w = np.array([cfg.process_weights[k] for k in names], dtype=float)
    return names, w / w.sum()


def _pneumonia_process_rate(cfg: SynthConfig) -> float:
    """Chance of the pneumonia process in a PA erect study that hits ``pneumonia_share_pa``.

    Among PA erect studies a share ``normal_rate_pa`` is normal; a pneumonia study counts as
    Pneumonia=1.0 only when it is not hedged, so the process rate is inflated by the hedge
    rate, and normal studies lose the few that get a hedge about an absent finding.
    """
    r = cfg.pneumonia_share_pa
    assert r is not None
    normal = cfg.normal_rate_pa * (1 - cfg.hedge_absent_rate)
    q = r / (1 - r) * normal / (1 - cfg.uncertain_rate_pneumonia)
    if q + cfg.normal_rate_pa > 1:
        raise ValueError(
            f"pneumonia_share_pa={r} is unreachable with normal_rate_pa="
            f"{cfg.normal_rate_pa}: lower one of them"
        )
    return q


def _sample_findings(
    rng: np.random.Generator, cfg: SynthConfig, portable: bool, pa_erect: bool
) -> tuple[str, list[PlannedFinding]]:
    controlled = pa_erect and cfg.pneumonia_share_pa is not None
    p_normal = cfg.normal_rate_ap if portable else cfg.normal_rate_pa
    u = rng.random()
    if u < p_normal:
        process = "normal"
        findings: list[PlannedFinding] = []
    else:
        if controlled and u < p_normal + _pneumonia_process_rate(cfg):
            process = "pneumonia"
        else:
            names, w = _abnormal_processes(cfg, ("pneumonia",) if controlled else ())
            process = names[int(rng.choice(len(names), p=w))]
        findings = _process_findings(rng, cfg, process)
        if rng.random() < (0.18 if portable else 0.08):
            names, w = _abnormal_processes(cfg, ("pneumonia",) if controlled else ())
            second = names[int(rng.choice(len(names), p=w))]
            findings = _merge(findings + _process_findings(rng, cfg, second))
    findings += _devices(rng, portable, findings)
    return process, findings


def _plan_reporting(
    rng: np.random.Generator, cfg: SynthConfig, findings: list[PlannedFinding]
) -> None:
    """Decide which present findings the report hedges; hedged ones are drawn subtle."""
    for f in findings:
        if f.label == "Support Devices":
            continue
        rate = cfg.uncertain_rate_pneumonia if f.label == "Pneumonia" else cfg.uncertain_rate
        if rng.random() < rate:
            f.status = -1.0
            if cfg.plant_strata:
                f.severity = _severity(rng, cfg, subtle=True)
    if rng.random() < cfg.hedge_absent_rate:
        _hedge_absent(rng, cfg, findings)


#: Findings a report hedges about when they are not there ("cannot exclude pneumonia").
HEDGED_WHEN_ABSENT = (
    "Pneumonia",
    "Atelectasis",
    "Consolidation",
    "Pleural Effusion",
    "Pneumothorax",
    "Edema",
)


def _hedge_absent(
    rng: np.random.Generator, cfg: SynthConfig, findings: list[PlannedFinding]
) -> str | None:
    """Add a hedge about a finding that is not drawn; returns its label (None if none left)."""
    present = {f.label for f in findings}
    pool = [lab for lab in HEDGED_WHEN_ABSENT if lab not in present]
    if not pool:
        return None
    lab = pool[int(rng.integers(len(pool)))]
    g = _finding(rng, cfg, lab, subtle=True)
    g.drawn, g.status = False, -1.0
    findings.append(g)
    return lab


#: At ``SynthConfig.report_difficulty`` d, each finding the report states plainly is left
#: out with probability ``REPORT_OMIT * d``, else hedged with ``REPORT_HEDGE * d``; a study
#: gains a hedge about an absent finding with ``REPORT_FALSE_HEDGE * d``; an OpenI study's
#: MeSH normal/abnormal indexing contradicts its text with ``MESH_FLIP * d``.
REPORT_OMIT = 0.4
REPORT_HEDGE = 0.4
REPORT_FALSE_HEDGE = 0.3
MESH_FLIP = 0.3


def plan_report_difficulty(
    rng: np.random.Generator, cfg: SynthConfig, study: StudyPlan, dataset: str
) -> None:
    """Make one study's report less informative about its film (see the constants above).

    Only what the report says changes (``status``), never what is drawn, so the pixels of a
    cohort do not depend on the knob; every change is listed in ``study.report_edits``. The
    draws come from a stream of their own, so at 0 the cohort is the same, byte for byte.
    """
    d = cfg.report_difficulty
    if d <= 0.0:
        return
    for f in study.findings:
        if f.label == "Support Devices" or not f.drawn or f.status != 1.0:
            continue
        u = rng.random()
        if u < REPORT_OMIT * d:
            f.status = math.nan
            study.report_edits.append(f"omitted:{f.label}")
        elif u < (REPORT_OMIT + REPORT_HEDGE) * d:
            f.status = -1.0
            study.report_edits.append(f"hedged:{f.label}")
    if rng.random() < REPORT_FALSE_HEDGE * d:
        lab = _hedge_absent(rng, cfg, study.findings)
        if lab is not None:
            study.report_edits.append(f"false_hedge:{lab}")
    if dataset == "openi" and rng.random() < MESH_FLIP * d:
        stated = any(f.status == 1.0 for f in study.findings)
        if stated or any(f.drawn for f in study.findings):  # else nothing to contradict
            study.report_edits.append("mesh_flipped")


def _plan_noise(rng: np.random.Generator, cfg: SynthConfig, study: StudyPlan) -> None:
    if cfg.label_noise_rate <= 0 or rng.random() >= cfg.label_noise_rate:
        return
    label = FINDING_LABELS[int(rng.integers(len(FINDING_LABELS)))]
    present = [f for f in study.findings if f.label == label and f.drawn]
    if present:
        for f in present:
            f.status = math.nan
        study.noise_kind = "dropped"
    else:
        if label == "Support Devices":
            g = PlannedFinding(label, None, None, 1.0, attrs={"device": "enteric tube"})
        else:
            g = _finding(rng, cfg, label)
        g.drawn = False
        study.findings = [f for f in study.findings if f.label != label] + [g]
        study.noise_kind = "added"
    study.noise_label = label


# --------------------------------------------------------------------------------------------
# the cohort


def _views(rng: np.random.Generator, cfg: SynthConfig, dataset: str, portable: bool) -> list[str]:
    frontal = "AP" if portable else "PA"
    if dataset == "chestxray14":
        return [frontal]
    rate = cfg.lateral_rate_ap if portable else cfg.lateral_rate_pa
    if dataset == "openi":
        rate = 0.95
    if rng.random() < rate:
        return [frontal, "LL" if (dataset == "mimic" and rng.random() < 0.12) else "LATERAL"]
    return [frontal]


def _studies_per_patient(rng: np.random.Generator, k_max: int) -> int:
    # geometric-like: most patients have one or two studies, a few have k_max
    w = np.array([0.55**k for k in range(k_max)])
    return int(rng.choice(k_max, p=w / w.sum())) + 1


def sample_cohort(
    n: int, seed: int = 0, config: SynthConfig | None = None, dataset: str = "mimic"
) -> list[StudyPlan]:
    """Plan ``n`` studies (images for ChestX-ray14, which has one view per study).

    Deterministic in ``seed``; the i-th study's pixels are later rendered from its own child
    seed, so the plan and the pixels do not depend on how the work is split across processes.
    """
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {DATASETS}, got {dataset!r}")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    cfg = config or SynthConfig()
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(2,)))

    sizes: list[int] = []
    k_max = 1 if dataset == "openi" else cfg.max_studies_per_patient  # IU: one study each
    while sum(sizes) < n:
        sizes.append(min(_studies_per_patient(rng, k_max), n - sum(sizes)))
    subject_ids = _unique_ints(rng, len(sizes), 10_000_000, 20_000_000)
    if dataset == "chestxray14":
        subject_ids = list(range(1, len(sizes) + 1))
    study_ids = _unique_ints(rng, n, 50_000_000, 60_000_000)
    portable_rate = cfg.portable_rate * (0.05 if dataset == "openi" else 1.0)
    if dataset == "chestxray14":
        portable_rate = 0.4

    studies: list[StudyPlan] = []
    for p_idx, (subject, k) in enumerate(zip(subject_ids, sizes, strict=True)):
        sex = "M" if rng.random() < 0.52 else "F"
        age = int(np.clip(rng.normal(62, 17), 18, 95))
        day = day0 = int(rng.integers(0, 365 * 80))
        prior: StudyPlan | None = None
        for order in range(1, k + 1):
            i = len(studies)
            portable = bool(rng.random() < portable_rate)
            orientation = (
                "Erect" if not portable or rng.random() < cfg.portable_erect_rate else "Recumbent"
            )
            pa_erect = not portable
            process, findings = _sample_findings(rng, cfg, portable, pa_erect)
            _plan_reporting(rng, cfg, findings)
            views = _views(rng, cfg, dataset, portable)
            images = [ImagePlan(dicom_id(rng), v) for v in views]
            date = np.datetime64("2110-01-01") + np.timedelta64(day, "D")
            ymd = int(str(date).replace("-", ""))
            seconds = float(rng.uniform(0, 86_400))
            hh, rem = divmod(seconds, 3600)
            mm, ss = divmod(rem, 60)
            study = StudyPlan(
                index=i,
                patient_index=p_idx,
                subject_id=subject,
                study_id=study_ids[i],
                study_order=order,
                sex=sex,
                age=min(age + (day - day0) // 365, 99),
                study_date=ymd,
                study_time=round(hh * 10_000 + mm * 100 + ss, 3),
                portable=portable,
                orientation=orientation,
                images=images,
                findings=findings,
                process=process,
                prior_study_id=prior.study_id if prior else None,
                prior_labels=frozenset(f.label for f in prior.findings if f.reported)
                if prior
                else frozenset(),
            )
            _plan_noise(rng, cfg, study)
            if cfg.report_difficulty > 0:  # its own stream: the main one is left untouched
                stream = np.random.SeedSequence(seed, spawn_key=(9, i))
                plan_report_difficulty(np.random.default_rng(stream), cfg, study, dataset)
            if cfg.spurious_label is not None and portable:
                p_mark = (
                    cfg.spurious_p_positive
                    if study.truth(cfg.spurious_label)
                    else cfg.spurious_p_negative
                )
                study.spurious_marker = bool(rng.random() < p_mark)
                if study.spurious_marker:
                    study.images[0].marker = "spurious"
            studies.append(study)
            prior = study
            day += int(rng.integers(1, 400))
    return studies


def no_finding(study: StudyPlan) -> float:
    """CheXpert's rule: 1.0 when no finding other than Support Devices is positive/uncertain."""
    for f in study.findings:
        if f.label != "Support Devices" and f.reported:
            return math.nan
    return 1.0
