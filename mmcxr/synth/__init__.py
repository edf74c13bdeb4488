"""The synthetic cohort: planned findings, report text, labels, and writers for each format.

``generate(fmt, out_dir, ...)`` writes a cohort in a real dataset's on-disk format (MIMIC-CXR,
MIMIC-CXR-JPG, OpenI, ChestX-ray14, plus a Chest ImaGenome tree with MIMIC-CXR), with its
planted structure described by a :class:`SynthConfig` and recorded at the root.
"""

from __future__ import annotations

from mmcxr.synth.config import SynthConfig
from mmcxr.synth.generate import FORMATS, generate
from mmcxr.synth.labels import CHEXPERT_LABELS

__all__ = ["CHEXPERT_LABELS", "FORMATS", "SynthConfig", "generate"]
