"""The data layer: every release's on-disk format read into tidy tables, cohort selection,
patient-level splits, the decoded-image cache and the Dataset the models train on.

Loaders read real releases unchanged and the synthetic cohorts that :mod:`mmcxr.synth` writes
in the same formats; bad input raises a :class:`~mmcxr.data.errors.DataError` naming the file.
A synthetic root's own files are read here too (its config, and its ground truth with the
analyses of what was planted: :mod:`mmcxr.data.ground_truth`), without the generator.

Names are imported lazily (PEP 562): ``import mmcxr.data.cache`` in a worker process, or the
``mmcxr prepare`` command, then pays only for what it uses (not for torch and MONAI, which
only :class:`MultimodalDataset` needs).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS: dict[str, str] = {
    "ImageCache": "mmcxr.data.cache",
    "finalize": "mmcxr.data.cache",
    "image_table": "mmcxr.data.cache",
    "prepare": "mmcxr.data.cache",
    "CHESTXRAY14_LABELS": "mmcxr.labels",
    "load_chestxray14": "mmcxr.data.chestxray14",
    "load_chestxray14_boxes": "mmcxr.data.chestxray14",
    "CohortFlow": "mmcxr.data.cohorts",
    "SplitCohort": "mmcxr.data.cohorts",
    "binary_cohort": "mmcxr.data.cohorts",
    "frontal_only": "mmcxr.data.cohorts",
    "one_per_patient": "mmcxr.data.cohorts",
    "select_pa_erect_nonportable": "mmcxr.data.cohorts",
    "subsample_ratio": "mmcxr.data.cohorts",
    "MultimodalDataset": "mmcxr.data.datasets",
    "CacheError": "mmcxr.data.errors",
    "DataError": "mmcxr.data.errors",
    "DataWarning": "mmcxr.data.errors",
    "FormatError": "mmcxr.data.errors",
    "ImageDecodeError": "mmcxr.data.errors",
    "LabelValueError": "mmcxr.data.errors",
    "MissingFileError": "mmcxr.data.errors",
    "ReportError": "mmcxr.data.errors",
    "SchemaError": "mmcxr.data.errors",
    "SkippedFile": "mmcxr.data.errors",
    "skipped_files": "mmcxr.data.errors",
    "label_truth_agreement": "mmcxr.data.ground_truth",
    "load_ground_truth": "mmcxr.data.ground_truth",
    "parse_box": "mmcxr.data.ground_truth",
    "planted_structure": "mmcxr.data.ground_truth",
    "strata_films": "mmcxr.data.ground_truth",
    "load_imagenome_gold": "mmcxr.data.imagenome",
    "load_imagenome_splits": "mmcxr.data.imagenome",
    "load_scene_graph": "mmcxr.data.imagenome",
    "SceneGraphs": "mmcxr.data.imagenome",
    "SquareGeometry": "mmcxr.data.images",
    "decode_image": "mmcxr.data.images",
    "dicom_headers": "mmcxr.data.images",
    "raw_and_display": "mmcxr.data.images",
    "read_image": "mmcxr.data.images",
    "resize_square": "mmcxr.data.images",
    "square_geometry": "mmcxr.data.images",
    "to_uint8": "mmcxr.data.images",
    "load_mimic_cxr": "mmcxr.data.mimic",
    "load_mimic_cxr_jpg": "mmcxr.data.mimic",
    "read_report": "mmcxr.data.mimic",
    "load_openi": "mmcxr.data.openi",
    "load_openi_kaggle": "mmcxr.data.openi",
    "parse_openi_xml": "mmcxr.data.openi",
    "load_synth_config": "mmcxr.data.roots",
    "looks_like": "mmcxr.data.roots",
    "resolve_root": "mmcxr.data.roots",
    "tree_listing": "mmcxr.data.roots",
    "parse_sections": "mmcxr.data.sections",
    "report_fields": "mmcxr.data.sections",
    "patient_split": "mmcxr.data.splits",
    "stratified_splits": "mmcxr.data.splits",
    "CHEXPERT_LABELS": "mmcxr.labels",
}

__all__ = [
    "CHESTXRAY14_LABELS",
    "CHEXPERT_LABELS",
    "CacheError",
    "CohortFlow",
    "DataError",
    "DataWarning",
    "FormatError",
    "ImageCache",
    "ImageDecodeError",
    "SceneGraphs",
    "LabelValueError",
    "MissingFileError",
    "MultimodalDataset",
    "ReportError",
    "SchemaError",
    "SkippedFile",
    "SplitCohort",
    "SquareGeometry",
    "binary_cohort",
    "decode_image",
    "dicom_headers",
    "finalize",
    "frontal_only",
    "image_table",
    "label_truth_agreement",
    "load_chestxray14",
    "load_chestxray14_boxes",
    "load_ground_truth",
    "load_imagenome_gold",
    "load_imagenome_splits",
    "load_mimic_cxr",
    "load_mimic_cxr_jpg",
    "load_openi",
    "load_openi_kaggle",
    "load_scene_graph",
    "load_synth_config",
    "looks_like",
    "one_per_patient",
    "parse_box",
    "parse_openi_xml",
    "parse_sections",
    "patient_split",
    "planted_structure",
    "prepare",
    "raw_and_display",
    "read_image",
    "read_report",
    "report_fields",
    "resize_square",
    "resolve_root",
    "select_pa_erect_nonportable",
    "skipped_files",
    "square_geometry",
    "strata_films",
    "stratified_splits",
    "subsample_ratio",
    "to_uint8",
    "tree_listing",
]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'mmcxr.data' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


if TYPE_CHECKING:  # static analysers and IDEs see the eager imports
    from mmcxr.data.cache import ImageCache, finalize, image_table, prepare
    from mmcxr.data.chestxray14 import load_chestxray14, load_chestxray14_boxes
    from mmcxr.data.cohorts import (
        CohortFlow,
        SplitCohort,
        binary_cohort,
        frontal_only,
        one_per_patient,
        select_pa_erect_nonportable,
        subsample_ratio,
    )
    from mmcxr.data.datasets import MultimodalDataset
    from mmcxr.data.errors import (
        CacheError,
        DataError,
        DataWarning,
        FormatError,
        ImageDecodeError,
        LabelValueError,
        MissingFileError,
        ReportError,
        SchemaError,
        SkippedFile,
        skipped_files,
    )
    from mmcxr.data.ground_truth import (
        label_truth_agreement,
        load_ground_truth,
        parse_box,
        planted_structure,
        strata_films,
    )
    from mmcxr.data.imagenome import (
        SceneGraphs,
        load_imagenome_gold,
        load_imagenome_splits,
        load_scene_graph,
    )
    from mmcxr.data.images import (
        SquareGeometry,
        decode_image,
        dicom_headers,
        raw_and_display,
        read_image,
        resize_square,
        square_geometry,
        to_uint8,
    )
    from mmcxr.data.mimic import load_mimic_cxr, load_mimic_cxr_jpg, read_report
    from mmcxr.data.openi import load_openi, load_openi_kaggle, parse_openi_xml
    from mmcxr.data.roots import load_synth_config, looks_like, resolve_root, tree_listing
    from mmcxr.data.sections import parse_sections, report_fields
    from mmcxr.data.splits import patient_split, stratified_splits
    from mmcxr.labels import CHESTXRAY14_LABELS, CHEXPERT_LABELS
