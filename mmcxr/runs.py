"""Run cache: a chapter re-executed with the same parameters reuses its finished runs.

A run is identified by ``run_key(params, data_fingerprint)`` — the sha256 of the canonical JSON
of its parameters and of a fingerprint of the exact cohort table it trained on — and lives in
``<root>/<name>/<key[:16]>/``::

    params.json        parameters + data fingerprint (checked on load: a key collision or a
                       hand-edited folder is reported, not silently reused)
    checkpoint/        fit()'s state-<epoch>/ (accelerate's) and best.pt while training (an
                       interrupted run resumes; get_or_run deletes it once the result is saved)
    metrics.json       test metrics
    predictions.npz    probs, labels, logits (+ any extra arrays)
    history.csv        the per-epoch training table
    model.pt           final weights (optional; for explanations without retraining)
    done.json          written last: its presence is what makes the run "done"

Every file is written to a temporary name in the same folder and renamed into place, so a
crash never leaves a half-written result that looks finished.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mmcxr import atomic

__all__ = [
    "RunResult",
    "RunStore",
    "canonical_json",
    "fingerprint_table",
    "history_table",
    "image_cache_dir",
    "load_run_model",
    "pick_params",
    "run_key",
]


def _plain(obj: Any) -> Any:
    """JSON-safe, order-independent form of parameters (paths, numpy scalars, tuples, sets)."""
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, (set, frozenset)):
        return sorted(_plain(v) for v in obj)
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, float) and not math.isfinite(obj):
        return repr(obj)  # "nan"/"inf": JSON has no such numbers
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    raise TypeError(f"run parameter of type {type(obj).__name__} is not JSON-able: {obj!r}")


def canonical_json(obj: Any) -> str:
    """Sorted keys, no whitespace: equal parameter dicts give byte-equal text."""
    return json.dumps(_plain(obj), sort_keys=True, separators=(",", ":"), allow_nan=False)


def run_key(params: Mapping[str, Any], data_fingerprint: str) -> str:
    """sha256 (hex) of the canonical JSON of ``params`` and the data fingerprint."""
    blob = canonical_json({"params": params, "data": data_fingerprint})
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def fingerprint_table(df: pd.DataFrame, cols: Sequence[str] | None = None) -> str:
    """sha256 of a table's selected columns (names, dtypes, values, row order; not the index).

    Uses pandas' own row hashing (``hash_pandas_object``), so any changed value, row, order or
    dtype changes the fingerprint.
    """
    cols = list(df.columns) if cols is None else list(cols)
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise KeyError(f"fingerprint_table: columns {missing} not in table {list(df.columns)}")
    sub = df[cols]
    h = hashlib.sha256()
    h.update(canonical_json([[c, str(sub[c].dtype)] for c in cols]).encode())
    h.update(str(len(sub)).encode())
    if len(sub):
        rows = pd.util.hash_pandas_object(sub, index=False).to_numpy()
        h.update(rows.astype("<u8").tobytes())
    return h.hexdigest()


def image_cache_dir(
    out_dir: str | os.PathLike,
    table: pd.DataFrame,
    cols: Sequence[str],
    size: int,
    name: str | None = None,
) -> Path:
    """``<out_dir>/image-cache/[<name>-]px<size>-<digest>``: a decoded-image cache folder per
    image set and size, so a changed cohort never meets a stale cache. ``digest`` is the first
    12 hex digits of :func:`fingerprint_table` over ``cols`` (the columns naming the images)."""
    digest = fingerprint_table(table, cols)[:12]
    prefix = "" if name is None else f"{name}-"
    return Path(out_dir) / "image-cache" / f"{prefix}px{size}-{digest}"


def pick_params(params: Mapping[str, Any], keys: Sequence[str], **extra: Any) -> dict[str, Any]:
    """The parameters a run depends on (``keys`` of ``params``) plus ``extra``: the ``params``
    of :func:`run_key`. A key that is not set is an error, not a silent gap in the key."""
    missing = [k for k in keys if k not in params]
    if missing:
        raise KeyError(f"parameters {missing} are not set (add them to PARAMS)")
    return {k: params[k] for k in keys} | extra


@dataclass
class RunResult:
    metrics: dict[str, Any]
    predictions: dict[str, np.ndarray]
    history: pd.DataFrame | None
    params: dict[str, Any]
    path: Path


def load_run_model(run: RunResult, model: Any) -> Any:
    """The final weights of a finished run (its ``model.pt``) loaded into ``model`` (built with
    the run's parameters), in eval mode."""
    import torch

    model.load_state_dict(torch.load(run.path / "model.pt", map_location="cpu", weights_only=True))
    return model.eval()


def history_table(
    runs: Mapping[Any, RunResult],
    names: Sequence[str],
    columns: Mapping[str, str] | None = None,
) -> pd.DataFrame:
    """Every run's per-epoch history, stacked: the parts of each run's key in ``runs`` (a tuple,
    one value per name of ``names``), then the history's columns, or only ``columns`` renamed
    as it maps them (``{"val_accuracy": "accuracy"}``)."""
    parts = []
    for key, r in runs.items():
        values = key if isinstance(key, tuple) else (key,)
        if len(values) != len(names):
            raise ValueError(f"run key {key!r} has {len(values)} parts for names {list(names)}")
        h = r.history if columns is None else r.history[list(columns)].rename(columns=columns)
        parts.append(h.assign(**dict(zip(names, values, strict=True))))
    table = pd.concat(parts, ignore_index=True)
    return table[[*names, *[c for c in table.columns if c not in names]]]


class RunStore:
    """Finished and in-progress runs under ``root`` (see module docstring for the layout)."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)

    def run_dir(self, name: str, key: str, create: bool = True) -> Path:
        if not name or "/" in name or name.startswith("."):
            raise ValueError(f"run name must be a plain folder name, got {name!r}")
        if len(key) < 16 or any(c not in "0123456789abcdef" for c in key):
            raise ValueError(f"run key must be a hex digest from run_key(), got {key!r}")
        d = self.root / name / key[:16]
        if create:
            d.mkdir(parents=True, exist_ok=True)
        return d

    def checkpoint_dir(self, name: str, key: str) -> Path:
        """Where :func:`mmcxr.train.fit` keeps its resumable ``state-<epoch>/`` and ``best.pt``."""
        return self.run_dir(name, key) / "checkpoint"

    def is_done(self, name: str, key: str) -> bool:
        return (self.run_dir(name, key, create=False) / "done.json").is_file()

    def save_result(
        self,
        name: str,
        key: str,
        *,
        metrics: Mapping[str, Any],
        predictions: Any = None,
        history: Any = None,
        params: Mapping[str, Any] | None = None,
        model: Any = None,
    ) -> Path:
        """Write a finished run. ``predictions``: a ``Predictions`` or a dict of arrays;
        ``history``: a ``History`` or DataFrame; ``model``: an ``nn.Module`` (weights saved)."""
        d = self.run_dir(name, key)
        done = d / "done.json"
        if done.exists():  # re-saving: un-finish first so a crash mid-way is not "done"
            done.unlink()
        atomic.write_text(d / "params.json", canonical_json({"key": key, "params": params or {}}))
        atomic.write_text(d / "metrics.json", json.dumps(_plain(metrics), indent=2, sort_keys=True))
        if predictions is not None:
            arrays = _prediction_arrays(predictions)
            with atomic.replacing(d / "predictions.npz", suffix=".npz") as tmp:
                np.savez_compressed(tmp, **arrays)
        if history is not None:
            table = getattr(history, "table", history)
            if not isinstance(table, pd.DataFrame):
                raise TypeError(f"history must be a History or DataFrame, got {type(history)}")
            with atomic.replacing(d / "history.csv") as tmp:
                table.to_csv(tmp, index=False)
        if model is not None:
            import torch

            with atomic.replacing(d / "model.pt") as tmp:
                torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, tmp)
        stamp = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
        atomic.write_text(done, json.dumps({"key": key, "finished": stamp}))
        return d

    def load_result(self, name: str, key: str) -> RunResult:
        d = self.run_dir(name, key, create=False)
        if not (d / "done.json").is_file():
            raise FileNotFoundError(f"run {name}/{key[:16]} is not finished (no {d / 'done.json'})")
        try:
            stored = json.loads((d / "params.json").read_text())
            metrics = json.loads((d / "metrics.json").read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise ValueError(f"{d}: damaged run folder ({e}); delete it to recompute") from e
        if stored.get("key") != key:
            raise ValueError(f"{d}/params.json is for key {stored.get('key')}, not {key}")
        preds: dict[str, np.ndarray] = {}
        if (d / "predictions.npz").is_file():
            with np.load(d / "predictions.npz", allow_pickle=False) as z:
                preds = {k: z[k] for k in z.files}
        history = pd.read_csv(d / "history.csv") if (d / "history.csv").is_file() else None
        return RunResult(metrics, preds, history, stored.get("params", {}), d)

    def load_model(self, name: str, key: str, model: Any) -> Any:
        """Load the saved final weights into ``model`` (built with the run's parameters)."""
        import torch

        path = self.run_dir(name, key, create=False) / "model.pt"
        if not path.is_file():
            raise FileNotFoundError(f"no saved weights for run {name}/{key[:16]}: {path}")
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        return model

    def get_or_run(
        self,
        name: str,
        params: Mapping[str, Any],
        data_fingerprint: str,
        run: Any,
        *,
        keep_checkpoint: bool = False,
    ) -> RunResult:
        """Load the run if finished; otherwise call ``run(checkpoint_dir)`` — which returns the
        keyword arguments of :meth:`save_result` (metrics, predictions, history, model) — save
        and load it. An interrupted run resumes from ``checkpoint_dir`` on the next call; once
        the result is saved the checkpoint (weights + optimiser state, the bulk of the disk
        use) is deleted unless ``keep_checkpoint`` (return ``model`` to keep final weights)."""
        key = run_key(params, data_fingerprint)
        if not self.is_done(name, key):
            ckpt = self.checkpoint_dir(name, key)
            out = run(ckpt)
            if not isinstance(out, Mapping) or "metrics" not in out:
                raise TypeError(
                    f"run() for {name!r} must return a dict with 'metrics', got {out!r}"
                )
            rank, barrier = _process_group()
            if rank == 0:  # under accelerate launch / torchrun every process trained it
                self.save_result(name, key, params={**params, "data": data_fingerprint}, **out)
                if not keep_checkpoint and ckpt.is_dir():
                    shutil.rmtree(ckpt)
            barrier()
        return self.load_result(name, key)

    def runs(self) -> pd.DataFrame:
        """One row per finished run: name, key prefix, path and its metrics (for the book)."""
        rows = []
        for done in sorted(self.root.glob("*/*/done.json")):
            d = done.parent
            try:
                metrics = json.loads((d / "metrics.json").read_text())
            except (OSError, json.JSONDecodeError):
                metrics = {}
            rows.append({"name": d.parent.name, "key": d.name, "path": str(d), **metrics})
        return pd.DataFrame(rows)


def _process_group() -> tuple[int, Any]:
    """``(rank, barrier)`` of the torch.distributed group a multi-process run set up (accelerate
    launch, torchrun), or ``(0, no-op)``: one process writes a run, the others wait for it."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        return dist.get_rank(), dist.barrier
    return 0, lambda: None


def _prediction_arrays(predictions: Any) -> dict[str, np.ndarray]:
    if isinstance(predictions, Mapping):
        arrays = dict(predictions)
    elif hasattr(predictions, "probs") and hasattr(predictions, "labels"):
        arrays = {"probs": predictions.probs, "labels": predictions.labels}
        if getattr(predictions, "logits", None) is not None:
            arrays["logits"] = predictions.logits
    else:
        raise TypeError(
            f"predictions must be Predictions or a dict of arrays, got {type(predictions)}"
        )
    out = {}
    for k, v in arrays.items():
        a = np.asarray(v)
        if a.dtype == object:
            raise TypeError(f"predictions[{k!r}] has dtype object; store numbers or strings only")
        out[k] = a
    return out
