"""The knobs of the synthetic cohort: every piece of planted structure can be switched here.

A chapter that needs a particular structure (a 90/10 pneumonia cohort, a hidden stratum, a
spurious marker, noisy labels) states it through a :class:`SynthConfig`, and the generator
writes the config beside the data (``synthetic_config.json``) so that a result can always be
traced back to the structure that was planted.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mmcxr.synth.labels import FINDING_LABELS, OPENI_MESH_AGREEMENT


def _default_weights() -> dict[str, float]:
    # Relative frequency of each "clinical process" among abnormal studies. Chosen so the
    # CheXpert label marginals land near MIMIC-CXR's (Atelectasis/Effusion/Cardiomegaly/Opacity
    # ~20%, Fracture/Lung Lesion/Pleural Other ~1-3%) once co-occurrence is added.
    return {
        "heart_failure": 0.20,
        "pneumonia": 0.16,
        "atelectasis": 0.16,
        "effusion": 0.12,
        "cardiomegaly": 0.08,
        "opacity": 0.11,
        "pneumothorax": 0.05,
        "mediastinum": 0.04,
        "lesion": 0.04,
        "fracture": 0.03,
        "pleural_other": 0.02,
    }


@dataclass(frozen=True)
class SynthConfig:
    """Planted structure of a synthetic cohort (all of it recorded in the ground-truth table).

    Probabilities are per study unless said otherwise. Setting a ``plant_*`` switch to False
    removes that structure, which is how a chapter shows what the structure does.
    """

    # --- patients and studies -------------------------------------------------------------
    max_studies_per_patient: int = 4
    #: share of studies that are portable AP films (ICU / ward); the rest are PA erect.
    portable_rate: float = 0.40
    #: share of portable AP films taken sitting up (orientation Erect) rather than Recumbent.
    portable_erect_rate: float = 0.25
    #: chance that a PA study has a lateral view (AP portables rarely do).
    lateral_rate_pa: float = 0.92
    lateral_rate_ap: float = 0.10
    #: "No Finding" share among PA erect and among AP films (overall about a third).
    normal_rate_pa: float = 0.46
    normal_rate_ap: float = 0.14
    process_weights: dict[str, float] = field(default_factory=_default_weights)
    #: chance that a present finding is reported with a hedge ("possible ...", label -1.0).
    uncertain_rate: float = 0.10
    #: pneumonia is hedged far more often in real reports ("cannot exclude pneumonia").
    uncertain_rate_pneumonia: float = 0.30
    #: chance that a study with no such finding hedges about it anyway (nothing drawn).
    hedge_absent_rate: float = 0.03

    # --- planted structure ----------------------------------------------------------------
    #: class-imbalance control: share of Pneumonia=1.0 among (Pneumonia=1.0 or No Finding=1.0)
    #: PA erect non-portable studies (the late-fusion chapter's ~90/10 cohort); None = off.
    pneumonia_share_pa: float | None = 0.10
    #: hidden strata: pneumothorax with vs without a chest tube, subtle vs obvious lesions.
    plant_strata: bool = True
    chest_tube_rate_pneumothorax: float = 0.55
    subtle_rate: float = 0.40
    #: severity at or below which a finding counts as "subtle" in the ground truth.
    subtle_threshold: float = 0.35
    #: spurious marker drawn on AP films, correlated with ``spurious_label``; None = off.
    #: P(marker | label drawn, AP) = 0.6 and P(marker | not drawn, AP) = 0.1: a moderate
    #: correlate (on AP films the marker alone scores an AUROC of about 0.75), still an easy
    #: shortcut for an image model, but not a near-perfect proxy for the label.
    spurious_label: str | None = "Pneumonia"
    spurious_p_positive: float = 0.6
    spurious_p_negative: float = 0.1
    #: label noise: chance that a study's report disagrees with its pixels on one finding
    #: (a drawn finding left unreported, or an undrawn one reported); 0 = off.
    label_noise_rate: float = 0.03

    # --- image difficulty (conspicuity; mmcxr.synth.phantom.Conspicuity) --------------------
    #: 0 (the phantom as drawn) .. 1 (hardest): how hard findings are to see on the film.
    #: Each finding draws its own difficulty, so a higher value makes a growing share of
    #: findings fainter and smaller (never changing the planned severity or the labels; boxes
    #: follow what is drawn), and every film, normal ones too, gets lung texture that mimics
    #: patchy opacity. Calibrated per chapter (mmcxr.calibration).
    image_difficulty: float = 0.0
    #: per-label overrides of ``image_difficulty`` for contrast and size (CheXpert label ->
    #: value in [0, 1]); the texture overlay is film-wide and follows ``image_difficulty``.
    image_difficulty_by_label: dict[str, float] = field(default_factory=dict)

    # --- report informativeness (mmcxr.synth.cohort.plan_report_difficulty) -----------------
    #: 0 (each report says what the plan above decided) .. 1 (least informative): a growing
    #: share of the findings on the film are left out of the report or only hedged, normal
    #: studies hedge about findings that are not there, and (OpenI) the MeSH normal/abnormal
    #: indexing disagrees with the text. The pixels never change; the labels follow the text
    #: (as the CheXpert labeller's do), so the knob weakens the text as evidence of the film.
    #: Calibrated per chapter (mmcxr.calibration), like ``image_difficulty``.
    report_difficulty: float = 0.0

    # --- report style ---------------------------------------------------------------------
    #: OpenI: share of reports with an empty FINDINGS element, and among the others, share
    #: with an empty IMPRESSION element.
    no_findings_section_rate: float = 0.08
    no_impression_section_rate: float = 0.06

    # --- MIMIC-CXR report layout (shares of all reports; mimic_report_layouts) --------------
    #: no FINDINGS section. The MIT-LCP section parser's notes count about 150k FINDINGS
    #: sections and 190k IMPRESSION sections (CONCLUSION and the combined headers included)
    #: in 228k reports: a third of the reports have no FINDINGS, a sixth no IMPRESSION.
    mimic_no_findings_rate: float = 0.335
    #: no IMPRESSION section (a combined header counts as one, as in the MIT-LCP parser).
    mimic_no_impression_rate: float = 0.17
    #: neither section: the text follows COMPARISON without a header (the parser's
    #: last-paragraph case); counted in both rates above. Not in the parser's notes; a guess.
    mimic_no_sections_rate: float = 0.02
    #: a combined ``FINDINGS AND IMPRESSION:`` (or ``FINDINGS/IMPRESSION:``) header, which
    #: counts as the impression; counted in the no-FINDINGS rate. The real share is about
    #: 0.06% (135 of 228k); 0.5% keeps a few in a book-sized cohort.
    mimic_combined_header_rate: float = 0.005
    #: an addendum block on top (``FINAL ADDENDUM``, ``ADDENDUM:``, its text, a line of
    #: underscores, then ``FINAL REPORT``). The parser's notes count 183 ``ADDENDUM:`` headers
    #: (0.08%); 0.5% keeps a few in a book-sized cohort.
    addendum_rate: float = 0.005

    # --- DICOM --------------------------------------------------------------------------------
    monochrome1_rate: float = 0.15
    voi_lut_rate: float = 0.05

    # --- splits / subsets -------------------------------------------------------------------
    #: patient-level split fractions for mimic-cxr-2.0.0-split.csv.gz (train, validate, test).
    split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
    #: share of frontal MIMIC images in the Chest ImaGenome gold set (capped at 1,000 images).
    imagenome_gold_fraction: float = 0.5
    #: ChestX-ray14: share of images with a bounding-box row in BBox_List_2017.csv.
    chestxray14_bbox_fraction: float = 0.15
    chestxray14_test_fraction: float = 0.2

    # --- IU X-ray / OpenI ---------------------------------------------------------------------
    #: share of reports whose MeSH ``<automatic>`` terms equal their ``<major>`` headings
    #: (the real release: 285 of 3,955); the rest are indexed sparser or not at all.
    openi_mesh_agreement_rate: float = OPENI_MESH_AGREEMENT

    def __post_init__(self) -> None:
        def prob(name: str, value: float | None) -> None:
            if value is not None and not 0.0 <= value <= 1.0:
                raise ValueError(f"SynthConfig.{name} must be in [0, 1], got {value!r}")

        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name.endswith(
                ("_rate", "_share_pa", "_fraction", "_threshold")
            ) or f.name.startswith("spurious_p_"):
                prob(f.name, value)
        prob("image_difficulty", self.image_difficulty)
        prob("report_difficulty", self.report_difficulty)
        for label, value in self.image_difficulty_by_label.items():
            if label not in FINDING_LABELS:
                raise ValueError(
                    f"SynthConfig.image_difficulty_by_label: {label!r} is not one of"
                    f" {FINDING_LABELS}"
                )
            prob(f"image_difficulty_by_label[{label!r}]", value)
        if self.max_studies_per_patient < 1:
            raise ValueError("SynthConfig.max_studies_per_patient must be >= 1")
        mimic_report_layouts(self)  # the MIMIC layout shares must fit together
        if self.pneumonia_share_pa is not None and self.pneumonia_share_pa >= 1.0:
            raise ValueError("SynthConfig.pneumonia_share_pa must be < 1 (it is a share)")
        if self.spurious_label is not None and self.spurious_label not in FINDING_LABELS:
            raise ValueError(
                f"SynthConfig.spurious_label {self.spurious_label!r} is not one of {FINDING_LABELS}"
            )
        unknown = set(self.process_weights) - set(_default_weights())
        if unknown:
            raise ValueError(
                f"SynthConfig.process_weights has unknown processes {sorted(unknown)};"
                f" known: {sorted(_default_weights())}"
            )
        if (
            any(w < 0 for w in self.process_weights.values())
            or sum(self.process_weights.values()) <= 0
        ):
            raise ValueError("SynthConfig.process_weights must be >= 0 and not all zero")
        if (
            len(self.split_fractions) != 3
            or abs(sum(self.split_fractions) - 1) > 1e-6
            or min(self.split_fractions) < 0
        ):
            raise ValueError(
                f"SynthConfig.split_fractions must be 3 non-negative numbers summing"
                f" to 1, got {self.split_fractions!r}"
            )

    @classmethod
    def from_chapter(cls, params: Mapping[str, Any]) -> SynthConfig:
        """The config a chapter's ``synth_*`` difficulty parameters ask for (the defaults for
        any it does not declare), so that a notebook, the book's data step and a calibration
        run build the same cohort from the same parameters."""
        return cls(
            **{
                name: float(params[f"synth_{name}"])
                for name in CHAPTER_KNOBS
                if params.get(f"synth_{name}") is not None
            }
        )

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["split_fractions"] = list(self.split_fractions)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SynthConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown SynthConfig fields: {sorted(unknown)}")
        d = dict(d)
        if "split_fractions" in d:
            d["split_fractions"] = tuple(d["split_fractions"])
        return cls(**d)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


#: The difficulty knobs a chapter may expose as ``synth_<knob>`` parameters.
CHAPTER_KNOBS = ("image_difficulty", "report_difficulty")


#: The MIMIC-CXR report layouts :func:`mimic_report_layouts` shares out.
MIMIC_LAYOUTS = ("standard", "impression_only", "findings_only", "combined", "no_sections")


def mimic_report_layouts(config: SynthConfig) -> dict[str, float]:
    """The share of each MIMIC-CXR report layout (:data:`MIMIC_LAYOUTS`) from the config.

    ``standard`` has FINDINGS and IMPRESSION; ``impression_only`` and ``combined`` (one
    ``FINDINGS AND IMPRESSION`` header) have no FINDINGS; ``findings_only`` has no
    IMPRESSION; ``no_sections`` has neither. The config's rates are marginal shares (what a
    section count over the release measures), so they must fit together: raises
    ``ValueError`` when they cannot.
    """
    nf, ni = config.mimic_no_findings_rate, config.mimic_no_impression_rate
    both, combined = config.mimic_no_sections_rate, config.mimic_combined_header_rate
    shares = {
        "impression_only": nf - both - combined,
        "findings_only": ni - both,
        "combined": combined,
        "no_sections": both,
    }
    shares = {"standard": 1.0 - sum(shares.values()), **shares}
    if min(shares.values()) < -1e-9:
        raise ValueError(
            "SynthConfig: the MIMIC layout rates do not fit together (need "
            "mimic_no_sections_rate + mimic_combined_header_rate <= mimic_no_findings_rate, "
            "mimic_no_sections_rate <= mimic_no_impression_rate and mimic_no_findings_rate + "
            "mimic_no_impression_rate - mimic_no_sections_rate <= 1); got "
            f"{nf}, {ni}, {both}, {combined}"
        )
    return {k: max(v, 0.0) for k, v in shares.items()}
