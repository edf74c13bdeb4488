"""Calibration curves: a chapter's single-modality baseline against a generator knob.

A synthetic cohort can be made as easy or as hard as one likes in each modality, and a
chapter's multimodal verdicts mean something only when each modality alone is about as
informative as in the paper. The honest way to get there is to calibrate the *inputs* and
never the outputs: measure the chapter's own single-modality model, in its ``book`` profile
(same cohort size, backbone, epochs), at several values of a difficulty knob of the
generator and over several seeds; pick the knob value whose mean meets the paper's
single-modality number; then compute the multimodal claims as they come.

Measuring takes minutes per run, so the curves are measured once by a script and stored as
small JSON files under ``mmcxr/chapters/calibration/`` (the book only reads them)::

    python -m mmcxr.calibration late-fusion-pneumonia --seeds 3 --values 0 0.4 0.55 0.7

* :data:`CALIBRATIONS` / :class:`Calibration` — per chapter: the knob, the metric, the
  paper's target and how one run is measured;
* :func:`measure_curve` — the runs (resumable: each point is written as it finishes);
* :func:`summarize`, :func:`pick_value`, :func:`default_value` — the curve's mean and spread
  per knob value, and the value whose mean meets the target (a monotone fit through the
  means, seed noise being no reason for a harder film to read better, then linear
  interpolation);
* :func:`plot_curve` / :func:`plot_curves` — the metric against the knob, seeds and spread
  drawn, the paper's baseline as a horizontal line.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from mmcxr import atomic

__all__ = [
    "CALIBRATIONS",
    "CURVE_DIR",
    "Calibration",
    "chapter_status",
    "curve_path",
    "curve_state",
    "default_value",
    "image_cache",
    "load_curve",
    "measure_curve",
    "monotone_fit",
    "pick_value",
    "reaches_target",
    "plot_curve",
    "plot_curves",
    "plot_report_witness",
    "report_witness",
    "stale_parameters",
    "status_markdown",
    "summarize",
    "synthetic_root",
    "write_curve",
]

#: Where the measured curves live (one ``<name>.json`` per calibration), inside the package.
CURVE_DIR = Path(__file__).resolve().parent / "chapters" / "calibration"

#: A measurement: (book parameters with the knob and seed set, output folder, device) ->
#: ``{metric: value, ...}`` plus any timings (``*_seconds``).
Measure = Callable[[dict[str, Any], Path, str], dict[str, float]]


@dataclass(frozen=True)
class Calibration:
    """What a chapter calibrates: ``knob`` (a chapter parameter) against ``metric`` of its
    single-modality ``baseline``, to the paper's ``target``; ``keys`` are the parameters the
    measured run depends on (a stored curve is stale when one of them changes)."""

    slug: str
    knob: str
    metric: str
    target: float
    baseline: str
    source: str
    measure: Measure
    keys: tuple[str, ...]
    #: the curve's name (its file is ``<name>.json``); a chapter's first calibration is
    #: named by its slug, further ones ``<slug>.<what>``
    name: str = ""

    def __post_init__(self) -> None:
        if not self.name:
            object.__setattr__(self, "name", self.slug)


def _calibrations() -> dict[str, Calibration]:
    """Every ``mmcxr/chapters/<module>_calibration.py`` defines ``calibrations()``, returning
    that chapter's :class:`Calibration` objects (a chapter may calibrate several baselines)."""
    import importlib
    import pkgutil

    from mmcxr import chapters

    out: dict[str, Calibration] = {}
    for info in sorted(pkgutil.iter_modules(chapters.__path__), key=lambda i: i.name):
        if not info.name.endswith("_calibration"):
            continue
        module = importlib.import_module(f"mmcxr.chapters.{info.name}")
        for cal in module.calibrations():
            if cal.name in out:
                raise ValueError(f"two calibrations named {cal.name!r}")
            out[cal.name] = cal
    return out


class _Registry(Mapping[str, Calibration]):
    """Calibration name -> :class:`Calibration`, built on first use (chapters import torch)."""

    _items: dict[str, Calibration] | None = None

    def _get(self) -> dict[str, Calibration]:
        if self._items is None:
            self._items = _calibrations()
        return self._items

    def __getitem__(self, name: str) -> Calibration:
        items = self._get()
        if name not in items:
            raise KeyError(f"no calibration named {name!r}; known: {sorted(items)}")
        return items[name]

    def __iter__(self):
        return iter(self._get())

    def __len__(self) -> int:
        return len(self._get())


#: Every chapter's calibrations, by name.
CALIBRATIONS: Mapping[str, Calibration] = _Registry()


# --------------------------------------------------------------------------------------------
# stored curves


def curve_path(name: str) -> Path:
    return CURVE_DIR / f"{name}.json"


def load_curve(name_or_path: str | os.PathLike) -> dict[str, Any]:
    """A stored curve (a calibration's name, or a path to a ``.json``)."""
    p = Path(name_or_path)
    path = p if p.suffix == ".json" else curve_path(str(name_or_path))
    try:
        curve = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{path}: no calibration curve; measure it with python -m mmcxr.calibration"
        ) from None
    for key in ("knob", "metric", "target", "points"):
        if key not in curve:
            raise ValueError(f"{path}: a calibration curve needs {key!r}")
    return curve


def write_curve(curve: Mapping[str, Any], path: str | os.PathLike) -> Path:
    """Write a curve atomically (a reader never sees half a file)."""
    return atomic.write_text(path, json.dumps(curve, indent=2, sort_keys=True) + "\n")


def summarize(points: Iterable[Mapping[str, Any]] | Mapping[str, Any], metric: str | None = None):
    """Mean and spread of ``metric`` per knob value: ``n, mean, std, min, max`` (std over
    seeds, ddof 1; NaN for one seed), indexed by ``value`` in increasing order. ``points``
    is a curve (its own metric is used) or its list of points (``value``, ``seed``, metric).
    """
    if isinstance(points, Mapping):
        metric = metric or points["metric"]
        points = points["points"]
    if metric is None:
        raise ValueError("summarize: name the metric (or pass a whole curve)")
    df = pd.DataFrame(list(points))
    if df.empty:
        raise ValueError("summarize: the curve has no points")
    g = df.groupby("value")[metric]
    out = pd.DataFrame(
        {"n": g.size(), "mean": g.mean(), "std": g.std(ddof=1), "min": g.min(), "max": g.max()}
    )
    return out.sort_index()


def monotone_fit(
    values: Sequence[float], means: Sequence[float], weights: Sequence[float] | None = None
) -> np.ndarray:
    """The means refitted as a monotone function of the knob, in the order of ``values``:
    isotonic regression, rising or falling as a straight line through them does, ``weights``
    e.g. the seeds behind each mean.

    A harder knob cannot make a finding easier to see, so a curve that wiggles does so by
    seed noise; pooling adjacent values that disagree (scikit-learn's pool-adjacent-violators)
    is the least-squares monotone curve through the measured means.
    """
    from sklearn.isotonic import IsotonicRegression

    v = np.asarray(values, dtype=float)
    m = np.asarray(means, dtype=float)
    w = None if weights is None else np.asarray(weights, dtype=float)
    rising = bool(np.polyfit(v, m, 1, w=None if w is None else np.sqrt(w))[0] > 0)
    return IsotonicRegression(increasing=rising).fit(v, m, sample_weight=w).predict(v)


def pick_value(
    values: Sequence[float],
    means: Sequence[float],
    target: float,
    *,
    weights: Sequence[float] | None = None,
    monotone: bool = True,
) -> float:
    """The knob value at which the curve meets ``target``, interpolated linearly.

    ``values`` (the knob, any order) and ``means`` (the metric's mean at each) describe a
    curve that falls (or rises) with the knob. Seed noise makes measured means wiggle, so
    by default the curve is first refitted monotone (:func:`monotone_fit`, ``weights`` = the
    seeds behind each mean); the first crossing from the lowest knob value is then taken. A
    target met exactly at a point returns that point. A target outside the curve's range
    raises ``ValueError``: extrapolating a curve measured with noise is guessing, and the
    remedy is to measure further out.
    """
    v = np.asarray(values, dtype=float)
    m = np.asarray(means, dtype=float)
    if v.shape != m.shape or v.ndim != 1 or len(v) < 2:
        raise ValueError("pick_value needs two or more (value, mean) pairs of equal length")
    if np.isnan(v).any() or np.isnan(m).any() or math.isnan(target):
        raise ValueError("pick_value: NaN in the curve or the target")
    if len(np.unique(v)) != len(v):
        raise ValueError("pick_value: each knob value once (summarize the seeds first)")
    if weights is not None and len(weights) != len(v):
        raise ValueError("pick_value: one weight per knob value")
    if monotone:
        m = monotone_fit(v, m, weights)
    order = np.argsort(v)
    v, m = v[order], m[order]
    for i in range(len(v)):
        if m[i] == target:
            return float(v[i])
        if i + 1 < len(v) and (m[i] - target) * (m[i + 1] - target) < 0:
            return float(v[i] + (target - m[i]) * (v[i + 1] - v[i]) / (m[i + 1] - m[i]))
    raise ValueError(
        f"target {target:g} is outside the measured curve ({m.min():.3f}-{m.max():.3f} over"
        f" knob values {v.min():g}-{v.max():g}); measure further knob values"
    )


def _fit(s: pd.DataFrame) -> np.ndarray:
    """The monotone fit of a summarized curve (one value: its mean)."""
    return monotone_fit(s.index, s["mean"], s["n"]) if len(s) > 1 else s["mean"].to_numpy()


def reaches_target(curve: Mapping[str, Any]) -> bool:
    """Whether the curve's monotone fit reaches the paper's target somewhere in the measured
    range of the knob."""
    fit = _fit(summarize(curve))
    return bool(fit.min() <= float(curve["target"]) <= fit.max())


def curve_state(curve: Mapping[str, Any]) -> str:
    """``"reached"`` (the curve meets the paper's target), ``"unreached"`` (it moves with its
    knob but misses the target: the default is the closest value) or ``"flat"`` (it misses
    the target and its fitted mean moves by less than twice the seeds' spread across the
    whole knob: the knob does not move this baseline, and a value read off it would be read
    off seed noise, so the generator is left as drawn)."""
    if reaches_target(curve):
        return "reached"
    s = summarize(curve)
    fit, sd = _fit(s), float(s["std"].mean())
    return "flat" if not math.isnan(sd) and np.ptp(fit) < 2 * sd else "unreached"


def default_value(name_or_curve: str | Mapping[str, Any], decimals: int = 2) -> float:
    """The chapter's default knob value, rounded to ``decimals`` (what the chapter's
    parameters cell holds), by :func:`curve_state`: where the stored curve's mean meets its
    target; for a curve that misses it, the measured knob value whose fitted mean comes
    closest; for a flat curve, its lowest knob value (the generator as drawn). The page
    says which (:func:`status_markdown`)."""
    curve = load_curve(name_or_curve) if isinstance(name_or_curve, str) else name_or_curve
    s = summarize(curve)
    target = float(curve["target"])
    state = curve_state(curve)
    if state == "reached":
        picked = pick_value(s.index.to_numpy(), s["mean"].to_numpy(), target, weights=s["n"])
    elif state == "flat":
        picked = float(s.index[0])
    else:
        picked = float(s.index[int(np.argmin(np.abs(_fit(s) - target)))])
    return round(picked, decimals)


def stale_parameters(curve: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """Parameters the measured run depends on whose value now differs from the curve's
    (``{name: (measured with, now)}``); empty while the curve is current."""
    recorded = curve.get("parameters", {})
    keys = curve.get("depends_on", list(recorded))
    return {
        k: (recorded.get(k), params.get(k))
        for k in keys
        if json.dumps(recorded.get(k)) != json.dumps(params.get(k))
    }


def chapter_status(name: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """What a chapter's page says of its calibration: the knob and the value this run used,
    the stored default and the paper's target, the curve's fitted mean at this value, and
    whether this run *is* the calibrated one (synthetic data, the default value, and none of
    the parameters the curve depends on changed since it was measured)."""
    cal = CALIBRATIONS[name]
    curve = load_curve(name)
    s = summarize(curve)
    fit = _fit(s)
    value = float(params[cal.knob])
    default = default_value(curve)
    state = curve_state(curve)
    stale = stale_parameters(curve, params)
    return {
        "knob": cal.knob,
        "value": value,
        "default": default,
        "target": float(curve["target"]),
        "metric": curve["metric"],
        "baseline": cal.baseline,
        "source": cal.source,
        "expected": float(np.interp(value, s.index.to_numpy(), fit)),
        "state": state,
        "reached": state == "reached",
        "fit_range": (float(fit[0]), float(fit[-1])),
        "knob_range": (float(s.index[0]), float(s.index[-1])),
        "seeds": int(s["n"].min()),
        "seed_sd": float(s["std"].mean()),
        "synthetic": params.get("data_root") is None,
        "stale": stale,
        "calibrated": params.get("data_root") is None and not stale and value == default,
    }


#: What each difficulty knob sets, as :func:`status_markdown` says it.
KNOB_EFFECTS = {
    "synth_image_difficulty": "how hard the synthetic films are",
    "synth_report_difficulty": "how little the synthetic reports say about their films",
}


def _metric_name(metric: str) -> str:
    """A metric as prose names it: AUROC in capitals, accuracy not."""
    return metric.upper() if metric in ("auroc", "auc", "map") else metric


def status_markdown(status: Mapping[str, Any]) -> str:
    """:func:`chapter_status` as a paragraph for the page."""
    knob = f"`{status['knob']}` = {status['value']:g}"
    if not status["synthetic"]:
        return f"{knob} is ignored: this run reads a real release."
    effect = KNOB_EFFECTS.get(status["knob"], "a difficulty of the synthetic cohort")
    curve = (
        f"the stored calibration curve (mean of {status['seeds']} seeds per knob value, `book`"
        f" profile) of the {status['baseline']}"
    )
    paper = f"the paper's {status['target']:.3g} ({status['source']})"
    (lo, hi), (f0, f1) = status.get("knob_range", (0, 0)), status.get("fit_range", (0, 0))
    spread = status.get("seed_sd", math.nan)
    state = status.get("state", "reached" if status.get("reached", True) else "unreached")
    if state == "flat":
        what = (
            f"{knob} sets {effect}; it is not calibrated: {curve} does not move with it (its"
            f" fitted mean runs from {f0:.3f} at {lo:g} to {f1:.3f} at {hi:g}, where the seeds"
            f" differ by {spread:.3f}) and does not reach {paper}. A value read off a flat"
            f" curve would be read off seed noise, so the default is {status['default']:g},"
            " the generator as drawn."
        )
    else:
        where = f"is where {curve} meets {paper}"
        if state == "unreached":
            where = (
                f"is where {curve} comes closest to {paper}, which it does not reach: its"
                f" fitted mean runs from {f0:.3f} at {lo:g} to {f1:.3f} at {hi:g}"
            )
        what = (
            f"{knob} sets {effect}. The chapter's default, {status['default']:g}, {where}; at"
            f" {status['value']:g} the curve's fitted mean is {status['expected']:.3f}."
        )
        if not math.isnan(spread):
            what += (
                f" One run is one seed: at a fixed knob value the seeds'"
                f" {_metric_name(status['metric'])} differ by {spread:.3f} (standard deviation,"
                " averaged over the curve), so this page's own baseline may sit that far from"
                " the curve."
            )
    if status["calibrated"]:
        if state == "flat":
            return what
        return what + " Only this input was calibrated; every claim below is computed as it comes."
    why = []
    if status["value"] != status["default"]:
        why.append(f"the knob is {status['value']:g}, not {status['default']:g}")
    if status["stale"]:
        changed = ", ".join(f"`{k}`" for k in status["stale"])
        why.append(f"the curve was measured with other values of {changed}")
    return what + " **This run is not the calibrated one**: " + "; ".join(why) + "."


# --------------------------------------------------------------------------------------------
# measuring


def synthetic_root(
    params: Mapping[str, Any],
    data_format: str | None = None,
    *,
    n: int | None = None,
    config: Any = None,
) -> Path:
    """The chapter's synthetic root for these parameters (difficulty knobs included), built as
    its notebook builds it, so that a curve's point is measured on the cohort the page reads:
    ``data_format``/``n``/``config`` for a chapter's second cohort (e.g. its pretraining one)."""
    from mmcxr import data
    from mmcxr.synth import SynthConfig

    return data.resolve_root(
        data_format or params["data_format"], None,
        n=params["synth_n"] if n is None else n, seed=params["synth_seed"],
        image_size=params["synth_image_size"],
        config=SynthConfig.from_chapter(params) if config is None else config,
    )  # fmt: skip


def image_cache(
    data_format: str, root: Path, cache_dir: Path, table: pd.DataFrame, size: int, **prepare: Any
):
    """The notebook's ``prepare`` cell (only what is missing or stale, quietly) and the cache
    it leaves, for a measurement that builds the chapter's data as the page does."""
    from mmcxr import data

    data.prepare(data_format, root, cache_dir, size=size, table=table, overwrite="stale",
                 progress=False, **prepare)  # fmt: skip
    return data.ImageCache(cache_dir)


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def measure_curve(
    name: str,
    values: Sequence[float],
    seeds: Sequence[int],
    *,
    profile: str = "book",
    out_dir: str | os.PathLike | None = None,
    device: str = "auto",
    path: str | os.PathLike | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Measure the calibration ``name``'s single-modality baseline at each knob value and seed.

    Each run is the chapter's ``profile`` (default ``book``) with the knob set to the value
    and the chapter's ``seed`` (its split, initialisation and batches) set to the seed; the
    synthetic cohort is the profile's (``synth_seed`` unchanged), one per knob value. The
    curve is written to ``path`` (default: the stored curve of the chapter) after every run,
    and points already there for the same parameters are kept, not measured again, so an
    interrupted measurement resumes. Returns the curve.
    """
    from mmcxr import env
    from mmcxr.profiles import resolved_parameters
    from mmcxr.synth.fingerprint import generator_fingerprint

    cal = CALIBRATIONS[name]
    slug = cal.slug
    params = resolved_parameters(slug, profile)
    if cal.knob not in params:
        raise KeyError(f"{slug}: the notebook has no {cal.knob!r} parameter")
    recorded = {k: _plain(params[k]) for k in cal.keys}
    path = Path(path) if path is not None else curve_path(name)
    out = Path(out_dir) if out_dir is not None else env.output_dir(slug) / "calibration"
    curve: dict[str, Any] = {
        "slug": slug,
        "name": name,
        "knob": cal.knob,
        "metric": cal.metric,
        "target": cal.target,
        "baseline": cal.baseline,
        "source": cal.source,
        "profile": profile,
        "seeds_vary": "seed (split, initialisation, batches); the cohort is the profile's",
        "parameters": recorded,
        "depends_on": list(cal.keys),
        "points": [],
    }
    if path.is_file():
        old = load_curve(path)
        if old.get("parameters") == recorded and old.get("profile") == profile:
            curve["points"] = old["points"]
    done = {(p["value"], p["seed"]) for p in curve["points"]}
    todo = [(float(v), int(s)) for v in values for s in seeds if (float(v), int(s)) not in done]
    for i, (value, seed) in enumerate(todo, 1):
        run_params = dict(params, **{cal.knob: value, "seed": seed})
        t0 = time.perf_counter()
        result = cal.measure(run_params, out / f"{cal.knob}-{value:g}", device)
        point = {"value": value, "seed": seed, **result, "seconds": time.perf_counter() - t0}
        curve["points"].append(point)
        curve["points"].sort(key=lambda p: (p["value"], p["seed"]))
        curve["generator_fingerprint"] = generator_fingerprint()
        curve["measured"] = _dt.date.today().isoformat()
        curve["device"] = env.resolve_device(device)
        write_curve(curve, path)
        if progress:
            print(
                f"[calibration] {name} {cal.knob}={value:g} seed={seed}:"
                f" {cal.metric} {result[cal.metric]:.3f} in {point['seconds']:.0f} s"
                f" ({i}/{len(todo)})",
                flush=True,
            )
    return curve


# --------------------------------------------------------------------------------------------
# figures


def plot_curve(
    slug_or_curve: str | Mapping[str, Any], *, ax: Axes | None = None, title: str | None = None
) -> Figure:
    """The metric against the knob: each seed's run (dots), the mean with its spread over
    seeds (line, band of +-1 standard deviation), the monotone fit the default is read from
    (dashed, where it differs from the means), the paper's baseline (horizontal line) and the
    knob value picked for it (vertical line), when the curve reaches it."""
    from mmcxr import plots

    curve = load_curve(slug_or_curve) if isinstance(slug_or_curve, str) else slug_or_curve
    s = summarize(curve)
    pts = pd.DataFrame(curve["points"])
    metric, target = curve["metric"], float(curve["target"])
    with plots.style():
        if ax is None:
            fig = Figure(figsize=(5.0, 3.6), layout="constrained")
            ax = fig.add_subplot()
        else:
            fig = ax.figure
        c = plots.PALETTE[0]
        ax.scatter(pts["value"], pts[metric], s=14, color=c, alpha=0.5, label="one seed")
        std = s["std"].fillna(0.0)
        ax.fill_between(s.index, s["mean"] - std, s["mean"] + std, color=c, alpha=0.15, lw=0)
        n = int(s["n"].min())
        ax.plot(s.index, s["mean"], "-o", color=c, ms=4, label=f"mean of {n}+ seeds, ±1 sd")
        fit = _fit(s)
        if not np.allclose(fit, s["mean"]):
            ax.plot(s.index, fit, "--", color=c, lw=1, label="monotone fit")
        ax.axhline(target, ls="--", color=plots.PALETTE[1], lw=1.2, label=f"paper {target:.2f}")
        try:
            picked = pick_value(s.index.to_numpy(), s["mean"].to_numpy(), target, weights=s["n"])
        except ValueError:
            picked = None
        if picked is not None:
            ax.axvline(picked, ls=":", color="grey", lw=1.2, label=f"default {picked:.2f}")
        ax.set(xlabel=curve["knob"], ylabel=metric.upper() if metric == "auroc" else metric)
        ax.set_title(title if title is not None else curve.get("name", curve.get("slug", "")))
        ax.legend(loc="best", fontsize=8)
    return fig


def plot_curves(names: Sequence[str] | None = None, columns: int = 2) -> Figure:
    """Every stored curve (or those named), one panel each, ``columns`` to a row."""
    if names is None:
        names = sorted(p.stem for p in CURVE_DIR.glob("*.json"))
    if not names:
        raise FileNotFoundError(f"no calibration curves under {CURVE_DIR}")
    from mmcxr import plots

    cols = min(columns, len(names))
    rows = -(-len(names) // cols)
    with plots.style():
        fig = Figure(figsize=(5.0 * cols, 3.6 * rows), layout="constrained")
        axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for name, ax in zip(names, axes, strict=False):
        curve = load_curve(name)
        plot_curve(curve, ax=ax, title=f"{name}\n{curve.get('baseline', '')}")
    for ax in axes[len(names) :]:
        ax.set_visible(False)
    return fig


# --------------------------------------------------------------------------------------------
# the report knob, read off the generator's plans


def report_witness(
    values: Sequence[float],
    labels: Sequence[str] = ("Pneumonia", "Pleural Effusion", "Cardiomegaly", "Atelectasis"),
    *,
    n: int = 3000,
    seed: int = 0,
    dataset: str = "mimic",
) -> pd.DataFrame:
    """How well a report witnesses its film at each ``report_difficulty``: per label, the
    AUROC of what the report says (stated 1, hedged 0.5, silent or negated 0) against what
    is drawn, over ``n`` planned studies (no pixels are rendered, so this takes a second).

    This is the ceiling of any text-only model scored against the pixels; a chapter whose
    labels are read from the text itself (CheXpert) keeps a perfect text model whatever the
    knob, which is why the knob is set per chapter.
    """
    from sklearn.metrics import roc_auc_score

    from mmcxr.synth import SynthConfig
    from mmcxr.synth.cohort import sample_cohort

    rows = []
    for value in values:
        plans = sample_cohort(
            n, seed=seed, config=SynthConfig(report_difficulty=float(value)), dataset=dataset
        )
        for label in labels:
            truth = [s.truth(label) for s in plans]
            said = [s.status(label) for s in plans]
            score = [0.0 if math.isnan(v) else (1.0 if v == 1.0 else 0.5) for v in said]
            auroc = roc_auc_score(truth, score) if 0 < sum(truth) < len(truth) else math.nan
            rows.append({"report_difficulty": float(value), "label": label, "auroc": auroc})
    return pd.DataFrame(rows)


def plot_report_witness(table: pd.DataFrame) -> Figure:
    """:func:`report_witness` as one line per label."""
    from mmcxr import plots

    with plots.style():
        fig = Figure(figsize=(5.0, 3.4), layout="constrained")
        ax = fig.add_subplot()
        for (label, g), c in zip(table.groupby("label", sort=False), plots.PALETTE, strict=False):
            ax.plot(g["report_difficulty"], g["auroc"], "-o", ms=3, color=c, label=label)
        ax.set(
            xlabel="synth_report_difficulty",
            ylabel="AUROC, report vs film",
            title="What the report says, against what is drawn",
        )
        ax.legend(fontsize=8, loc="lower left")
    return fig


# --------------------------------------------------------------------------------------------
# command line


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m mmcxr.calibration",
        description="Measure a chapter's single-modality baseline against a generator knob"
        " (in its book profile) and store the curve under mmcxr/chapters/calibration/.",
    )
    ap.add_argument("name", help="calibration name, e.g. late-fusion-pneumonia (see --list)")
    ap.add_argument("--values", type=float, nargs="+", required=True, help="knob values")
    ap.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 (default 3)")
    ap.add_argument("--profile", default="book")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--out", default=None, help="folder for the runs (default: the chapter's)")
    ap.add_argument("--path", default=None, help="curve file (default: the stored curve)")
    a = ap.parse_args(argv)
    if a.seeds < 1:
        ap.error("--seeds must be >= 1")
    curve = measure_curve(
        a.name,
        a.values,
        list(range(a.seeds)),
        profile=a.profile,
        out_dir=a.out,
        device=a.device,
        path=a.path,
    )
    print(summarize(curve).round(4).to_string())
    try:
        print(f"default {curve['knob']} = {default_value(curve):.2f} (target {curve['target']})")
    except ValueError as exc:
        print(f"no default: {exc}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
