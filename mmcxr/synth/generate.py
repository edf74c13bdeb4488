"""``generate()``: write a whole synthetic cohort in one real dataset's on-disk format.

The cohort is planned in this process (cheap, sequential, one random stream); pixels are
rendered in a process pool, each study from its own child seed (``SeedSequence(seed,
spawn_key=(0, study index))``) and each patient's anatomy from ``(1, patient index)``, so the
bytes written do not depend on the number of workers or on chunking.

The tree is built in ``.<name>.partial`` beside ``out_dir`` and renamed into place at the end.
A run that is interrupted leaves that folder behind with a per-study progress record; calling
``generate`` again with the same arguments resumes it and renders only the missing studies.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from mmcxr import atomic
from mmcxr.synth import write_chestxray14, write_imagenome, write_mimic, write_openi
from mmcxr.synth.cohort import StudyPlan, sample_cohort
from mmcxr.synth.config import SynthConfig
from mmcxr.synth.fingerprint import FINGERPRINT_KEY, generator_fingerprint
from mmcxr.synth.labeler import label_report
from mmcxr.synth.reports import Report, compose_report, report_kwargs
from mmcxr.synth.writers import (
    ground_truth_rows,
    jpeg_bytes,
    png_bytes,
    to_uint8,
    write_config,
    write_ground_truth,
)

FORMATS = ("mimic-cxr", "mimic-cxr-jpg", "openi", "openi-kaggle", "chestx-ray14")
_DATASET = {
    "mimic-cxr": "mimic",
    "mimic-cxr-jpg": "mimic",
    "openi": "openi",
    "openi-kaggle": "openi",  # the same cohort as "openi", in the Kaggle edition's files
    "chestx-ray14": "chestxray14",
}
_PROGRESS = ".progress"


def child_rng(seed: int, *key: int) -> np.random.Generator:
    """Independent stream for one purpose: (0, i) study i pixels, (1, p) patient p anatomy,
    (3, i) study i report text, (4, i) study i DICOM header choices, (5,) OpenI MeSH."""
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=tuple(key)))


@dataclass(frozen=True)
class _Task:
    study: StudyPlan
    fmt: str
    root: str
    image_size: int
    seed: int
    monochrome1_rate: float
    voi_lut_rate: float
    conspicuity: object = None  # phantom.Conspicuity from the config's image difficulty


def _image_path(fmt: str, study: StudyPlan, k: int, n_openi: int) -> str:
    im = study.images[k]
    if fmt == "mimic-cxr":
        return write_mimic.image_relpath(study, im, ".dcm")
    if fmt == "mimic-cxr-jpg":
        return write_mimic.image_relpath(study, im, ".jpg")
    if fmt == "openi":
        return f"{write_openi.PNG_DIR}/{write_openi.image_ids(n_openi, study)[k]}.png"
    if fmt == "openi-kaggle":
        return f"{write_openi.KAGGLE_IMAGE_DIR}/{write_openi.kaggle_filenames(n_openi, study)[k]}"
    return f"images/{write_chestxray14.image_index(study)}"


def _boxes(d: dict) -> dict[str, list[int]]:
    return {str(k): [int(round(float(v))) for v in b] for k, b in sorted(d.items())}


def render_study(task: _Task) -> tuple[int, dict[str, dict]]:
    """Render and write one study's images; return per-image info (sizes, boxes, header)."""
    study, root = task.study, Path(task.root)
    progress = root / _PROGRESS / f"{study.index}.json"
    if progress.is_file():
        return study.index, json.loads(progress.read_text())
    from mmcxr.synth import phantom

    anatomy = phantom.sample_anatomy(child_rng(task.seed, 1, study.patient_index))
    rng = child_rng(task.seed, 0, study.index)
    header_rng = child_rng(task.seed, 4, study.index)  # so pixels match across formats
    findings = [
        phantom.Finding(
            f.label,
            f.side,
            f.zone,
            float(f.severity),
            {k: v for k, v in f.attrs.items() if k != "render"},
        )
        for f in study.findings
        if f.drawn and f.attrs.get("render", True)
    ]
    infos: dict[str, dict] = {}
    for k, im in enumerate(study.images):
        view = "LATERAL" if im.view in ("LATERAL", "LL") else im.view
        r = phantom.render(
            anatomy,
            findings,
            view,
            task.image_size,
            rng,
            marker=im.marker,
            conspicuity=task.conspicuity,
        )
        image = np.asarray(r.image, dtype=np.float32)
        rows, cols = image.shape
        info: dict = {
            "rows": rows,
            "columns": cols,
            "lesion_boxes": _boxes(r.lesion_boxes) if view != "LATERAL" else {},
            "anatomy_boxes": _boxes(r.anatomy_boxes) if view != "LATERAL" else {},
        }
        rel = _image_path(task.fmt, study, k, study.index + 1)
        if task.fmt == "mimic-cxr":
            ds, header = write_mimic.dicom_dataset(
                image,
                study,
                im,
                header_rng,
                monochrome1_rate=task.monochrome1_rate,
                voi_lut_rate=task.voi_lut_rate,
            )
            write_mimic.write_dicom(root / rel, ds)
            info.update(header)
        elif task.fmt == "mimic-cxr-jpg":
            atomic.write_bytes(root / rel, jpeg_bytes(to_uint8(image)))
        elif task.fmt in ("openi", "openi-kaggle"):
            atomic.write_bytes(root / rel, png_bytes(to_uint8(image)))
        else:  # chestx-ray14: the release's 1024 x 1024 PNG, boxes in that frame
            info.update(write_chestxray14.write_image(root, rel, to_uint8(image), info))
        infos[im.dicom_id] = info
    text = json.dumps(infos, sort_keys=True)
    atomic.write_text(progress, text)
    return study.index, json.loads(text)  # the same types whether fresh or resumed


def _check_out_dir(out: Path) -> None:
    if out.exists():
        if not out.is_dir():
            raise FileExistsError(f"{out}: exists and is not a folder; choose another out_dir")
        if any(out.iterdir()):
            raise FileExistsError(
                f"{out}: exists and is not empty; generate() never writes "
                f"into an existing cohort (delete it or choose another out_dir)"
            )


def _params(fmt: str, n: int, seed: int, image_size: int, config: SynthConfig) -> dict:
    from mmcxr import __version__

    return {
        "format": fmt,
        "n": n,
        "seed": seed,
        "image_size": image_size,
        "mmcxr_version": __version__,
        # which code drew it: a changed generator makes a cached cohort (and a half-finished
        # run, whose params then differ) stale
        FINGERPRINT_KEY: generator_fingerprint(),
        "config": config.to_dict(),
    }


def _run(tasks: list[_Task], workers: int, desc: str, progress: bool) -> dict[int, dict]:
    results: dict[int, dict] = {}
    bar = tqdm(total=len(tasks), desc=desc, unit="study", disable=not progress)
    try:
        if workers <= 1 or len(tasks) <= 2:
            for t in tasks:
                i, info = render_study(t)
                results[i] = info
                bar.update()
        else:
            chunk = max(1, min(16, len(tasks) // (workers * 6)))
            # fork: workers inherit the imported modules instead of re-importing them (seconds
            # per worker on a busy machine); the work is numpy/PIL/pydicom, no threads. Where
            # fork is unavailable (Windows, macOS default), spawn.
            method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
            ctx = mp.get_context(method)
            with ctx.Pool(workers) as pool:
                for i, info in pool.imap_unordered(render_study, tasks, chunksize=chunk):
                    results[i] = info
                    bar.update()
    finally:
        bar.close()
    return results


def generate(
    fmt: str,
    out_dir: str | os.PathLike,
    n: int = 2000,
    seed: int = 0,
    image_size: int = 512,
    workers: int | None = None,
    config: SynthConfig | None = None,
    *,
    progress: bool = True,
) -> Path:
    """Write a synthetic cohort of ``n`` studies (images for ChestX-ray14) to ``out_dir``.

    ``fmt`` is one of ``mimic-cxr``, ``mimic-cxr-jpg``, ``openi``, ``openi-kaggle`` (the same
    OpenI cohort in the Kaggle edition's CSVs and file names), ``chestx-ray14``;
    ``image_size`` is the image height in pixels (width follows MIMIC's 2544/3056 aspect;
    ChestX-ray14 is drawn at that height and written 1024 x 1024, the release's frame).
    Also writes ``synthetic_ground_truth.csv.gz`` and ``synthetic_config.json`` (the config,
    the arguments and the :func:`~mmcxr.synth.fingerprint.generator_fingerprint`) at the
    root, and for ``mimic-cxr`` a Chest ImaGenome-style tree under ``chest-imagenome/``.
    Returns the root.
    """
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {FORMATS}, got {fmt!r}")
    if int(n) < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if int(image_size) < 32:
        raise ValueError(f"image_size must be >= 32 pixels, got {image_size}")
    if workers is not None and int(workers) < 1:
        raise ValueError(f"workers must be >= 1 (or None for all cores), got {workers}")
    cfg = config if config is not None else SynthConfig()
    if not isinstance(cfg, SynthConfig):
        raise TypeError(f"config must be a SynthConfig, got {type(cfg).__name__}")
    n, seed, image_size = int(n), int(seed), int(image_size)
    out = Path(out_dir).expanduser().absolute()
    _check_out_dir(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    params = _params(fmt, n, seed, image_size, cfg)

    part = out.parent / f".{out.name}.partial"
    stamp = part / _PROGRESS / "params.json"
    if part.exists() and not (stamp.is_file() and json.loads(stamp.read_text()) == params):
        shutil.rmtree(part)  # a leftover from a different request: start over
    (part / _PROGRESS).mkdir(parents=True, exist_ok=True)
    atomic.write_text(stamp, json.dumps(params, sort_keys=True))

    studies = sample_cohort(n, seed, cfg, _DATASET[fmt])
    style = "openi" if fmt in ("openi", "openi-kaggle") else "mimic"
    reports = {
        s.study_id: compose_report(
            s, child_rng(seed, 3, s.index), style=style, **report_kwargs(cfg, style)
        )
        for s in studies
    }
    texts = {sid: r.mimic_text() for sid, r in reports.items()}
    labels = {sid: label_report(t) for sid, t in texts.items()}

    from mmcxr.synth.phantom import Conspicuity

    seen = Conspicuity(cfg.image_difficulty, dict(cfg.image_difficulty_by_label))
    tasks = [
        _Task(s, fmt, str(part), image_size, seed, cfg.monochrome1_rate, cfg.voi_lut_rate, seen)
        for s in studies
    ]
    n_workers = int(workers) if workers is not None else (os.cpu_count() or 1)
    results = _run(tasks, n_workers, f"synth {fmt}", progress)
    image_info = {k: v for i in sorted(results) for k, v in results[i].items()}

    _write_metadata(fmt, part, studies, reports, texts, labels, image_info, cfg, seed)
    gt = []
    for s in studies:
        for k, im in enumerate(s.images):
            key = {
                "openi": write_openi.image_ids(s.index + 1, s)[k],
                "openi-kaggle": write_openi.kaggle_image_ids(s.index + 1, s)[k],
                "chestx-ray14": write_chestxray14.image_index(s),
            }.get(fmt, im.dicom_id)
            gt.append(
                ground_truth_rows(
                    s,
                    im,
                    image_info[im.dicom_id],
                    image_key=key,
                    path=_image_path(fmt, s, k, s.index + 1),
                    config=cfg,
                    mimic=fmt.startswith("mimic"),
                )
            )
    write_ground_truth(gt, part)
    write_config(cfg, part, {k: v for k, v in params.items() if k != "config"})

    shutil.rmtree(part / _PROGRESS)
    _check_out_dir(out)
    if out.exists():
        out.rmdir()
    os.replace(part, out)
    return out


def _write_metadata(
    fmt: str,
    root: Path,
    studies: list[StudyPlan],
    reports: dict[int, Report],
    texts: dict[int, str],
    labels: dict[int, dict[str, float]],
    image_info: dict[str, dict],
    cfg: SynthConfig,
    seed: int,
) -> None:
    if fmt in ("mimic-cxr", "mimic-cxr-jpg"):
        for s in studies:
            atomic.write_text(root / write_mimic.report_relpath(s), texts[s.study_id])
        split_of = write_mimic.write_tables(
            root,
            studies,
            labels,
            image_info,
            dicom=fmt == "mimic-cxr",
            split_fractions=cfg.split_fractions,
            seed=seed,
        )
        if fmt == "mimic-cxr":
            write_imagenome.write_imagenome(
                root,
                studies,
                reports,
                image_info,
                split_of,
                gold_fraction=cfg.imagenome_gold_fraction,
                seed=seed,
            )
    elif fmt in ("openi", "openi-kaggle"):
        mesh = write_openi.plan_mesh(studies, seed, cfg.openi_mesh_agreement_rate)
        if fmt == "openi":
            for s in studies:
                write_openi.write_report_xml(
                    root, s.index + 1, s, reports[s.study_id], mesh[s.index]
                )
            write_openi.write_projections(root, studies)
        else:
            write_openi.write_kaggle_tables(root, studies, reports, mesh)
    else:
        write_chestxray14.write_tables(
            root,
            studies,
            labels,
            image_info,
            bbox_fraction=cfg.chestxray14_bbox_fraction,
            test_fraction=cfg.chestxray14_test_fraction,
            seed=seed,
        )
