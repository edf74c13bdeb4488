"""The multimodal-VAE chapter's calibration (see :mod:`mmcxr.calibration`): Table 1's probe
on the report alone (T) against ``synth_report_difficulty`` (the paper: mAP 0.473).

The report knob leaves findings unreported or only hedged. The CheXpert labels are read
from the text, so "Finding" follows what the report says (it grows rarer) while the films
stay as drawn: the knob weakens the report's *words* as evidence only through what a small
text model fails to tell apart (a hedge from a statement), and the films, still showing
what the label no longer counts, grow weaker evidence of the label too.

Average precision moves with the share of positives, and the paper's test set had 23.5%
(its random row) against more than half here at the knob's 0, so the probes are compared
*normalised*, ``(AP - p) / (1 - p)`` with ``p`` the test share of "Finding" (the AP of a
random score): the share of the way from random to perfect. Normalised, the paper's T is
0.311 and its F 0.303.

The measured curve does not reach the paper's T: the probe falls with the knob but stays
above it at the knob's end (1), with a wide spread over seeds; the chapter's default is then
the knob value where the fitted mean comes closest (:func:`mmcxr.calibration.default_value`),
and the page says so. The image knob is not calibrated: at that report value the probe on
the frontal film alone is already below the paper's with the films as drawn, and a harder
film could only take it further away.

Each point trains the chapter's own MoPoE model in its ``book`` profile through the chapter's
own functions, as the notebook does (the cohort, the image cache, the vocabulary,
:func:`~mmcxr.chapters.multimodal_vae.train_runs` with the MoPoE joint only, and Table 1's
probe :func:`~mmcxr.chapters.multimodal_vae.latent_probe_predictions`)::

    python -m mmcxr.calibration multimodal-vae --seeds 3 --values 0 0.5 0.75 0.9 1
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from mmcxr import calibration, data, metrics, runs
from mmcxr.calibration import Calibration
from mmcxr.chapters import multimodal_vae as mv
from mmcxr.chapters import multimodal_vae_reference as ref

SOURCE = "Klug, Sutter & Vogt, Table 1, MoPoE row over its Random row"


def cohort_splits(params: dict[str, Any], out: Path) -> tuple[mv.Cohort, mv.Splits, str]:
    """The notebook's cohort cells: the synthetic MIMIC-CXR root of these parameters
    (difficulty knobs included), the complete studies, the image cache and the vocabulary;
    with the data fingerprint the runs are keyed by."""
    root = calibration.synthetic_root(params)
    images = data.load_mimic_cxr(root, check_images=False, progress=False)
    cohort = mv.build_cohort(images, seed=params["seed"], split_fractions=params["split_fractions"],
                             text_field=params["text_field"])  # fmt: skip
    cache_dir = mv.image_cache_dir(out, cohort, params["image_size"])
    cache = calibration.image_cache(params["data_format"], root, cache_dir, mv.image_table(cohort),
                                    params["image_size"], workers=0)  # fmt: skip
    splits = mv.make_splits(cohort, cache, max_length=params["max_length"],
                            vocab_size=params["vocab_size"], min_count=params["min_word_count"])  # fmt: skip
    return cohort, splits, mv.data_fingerprint(cohort, cache)


def normalised(ap: float, random: float) -> float:
    """Average precision as the share of the way from a random score's (``random``, the
    share of positives) to a perfect one's (1)."""
    return (ap - random) / (1.0 - random)


def probe_map(params: dict[str, Any], out: Path, device: str) -> dict[str, float]:
    """The MoPoE run of the ``book`` profile and Table 1's probe on it: test average
    precision from the frontal film alone (``f_map``), the report alone (``t_map``) and all
    three (``lft_map``), the test share of "Finding" (``random``), and the first two
    normalised (``f_nap``, ``t_nap``: :func:`normalised`)."""
    t0 = time.perf_counter()
    cohort, splits, fp = cohort_splits(params, out)
    t1 = time.perf_counter()
    trained = mv.train_runs(dict(params, joints=["mopoe"]), splits, runs.RunStore(out / "runs"),
                            fp, device=device)  # fmt: skip
    long = mv.latent_probe_predictions(trained, splits, c=params["probe_c"])
    ap = {s: metrics.average_precision(g["label"], g["prob"]) for s, g in long.groupby("subset")}
    random = float(np.mean(splits.test.labels))
    return {
        "f_nap": normalised(float(ap["F"]), random),
        "t_nap": normalised(float(ap["T"]), random),
        "f_map": float(ap["F"]),
        "t_map": float(ap["T"]),
        "lft_map": float(ap["L,F,T"]),
        "random": random,
        "finding_share": float(cohort.table["label"].mean()),
        "data_seconds": t1 - t0,
        "train_seconds": time.perf_counter() - t1,
    }


#: What the probe depends on besides its knob: the cohort, the model and its training.
BASE_KEYS = ("data_format", "synth_n", "synth_seed", "synth_image_size", "text_field",
             "probe_c", *(k for k in mv.RUN_KEYS if k != "seed"))  # fmt: skip
TEXT_KEYS = (*BASE_KEYS, "synth_image_difficulty")


def calibrations() -> tuple[Calibration, ...]:
    return (
        Calibration(
            slug=mv.SLUG,
            knob="synth_report_difficulty",
            metric="t_nap",
            target=round(normalised(ref.TABLE1["T"], ref.RANDOM), 4),
            baseline="linear probe for 'Finding' on the MoPoE latent of the report alone"
            " (normalised mAP)",
            source=SOURCE,
            measure=probe_map,
            keys=TEXT_KEYS,
        ),
    )


def status_markdown(params: dict[str, Any]) -> str:
    """The page's paragraph on the calibration (:func:`mmcxr.calibration.status_markdown`),
    and what the same runs say of the probe on the frontal film, whose knob stays at 0."""
    text = calibration.status_markdown(calibration.chapter_status(mv.SLUG, params))
    if params.get("data_root") is not None:
        return text
    curve = calibration.load_curve(mv.SLUG)
    default = calibration.default_value(curve)
    means = {m: calibration.summarize(curve, m)["mean"] for m in ("f_nap", "f_map", "random")}
    at = {m: float(np.interp(default, v.index, v.to_numpy())) for m, v in means.items()}
    return text + (
        f" At {default:g} the frontal film's probe comes to {at['f_nap']:.2f} normalised (mAP"
        f" {at['f_map']:.3f} at a random {at['random']:.3f}; the paper:"
        f" {normalised(ref.TABLE1['F'], ref.RANDOM):.2f}, {ref.TABLE1['F']} at {ref.RANDOM})"
        " with the films as drawn, so `synth_image_difficulty`, which can only make films"
        " harder, stays at 0."
    )
