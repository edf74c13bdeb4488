"""The one training loop every chapter uses, and batch prediction.

:func:`fit` runs on CPU, one GPU (bf16 autocast) or many (``accelerate launch`` — nothing in
the chapter changes) through ``accelerate.Accelerator``. It keeps the papers' protocol — Adam,
linear or plateau schedule, early stopping on validation loss, best-checkpoint selection — and
makes runs restartable: after every epoch ``<checkpoint_dir>/state-<epoch>/`` holds everything
needed to continue — ``Accelerator.save_state`` (weights, optimiser, scheduler, every RNG) plus
``mmcxr_run.json`` (history, early-stopping counters and the settings it belongs to) — and
``best.pt`` the best weights (``{"epoch", "model"}``). Both appear atomically (a folder is
written under a temporary name and renamed). Calling :func:`fit` again with the same
``checkpoint_dir`` resumes with ``Accelerator.load_state``, and a resumed run ends
bit-identical to an uninterrupted one on CPU.

Reproducibility: :func:`seed_everything` seeds Python, NumPy and torch and asks torch for
deterministic kernels; batches are shuffled by accelerate's seedable sampler, whose order depends
only on ``(seed, epoch)``, so a resumed run sees the same batches.

accelerate keeps one device per process (``AcceleratorState``; its public API offers no way to
change it once set), so a process that trained on one device cannot :func:`fit` on another:
restart the kernel. Mixed precision is per call instead: ``fit`` applies bf16 autocast itself
rather than through the process-wide ``Accelerator(mixed_precision=...)``, so
``mixed_precision=False`` after a bf16 fit needs no restart.

:func:`accuracy` scores a model on a dataset; :func:`scored_run` trains one and scores it on
several (the ``work`` of a :class:`~mmcxr.runs.RunStore` run); :func:`split_curves` fine-tunes a model on each
of several (train, held-out) splits and keeps the held-out accuracy after every epoch, each
split a reusable run of a :class:`~mmcxr.runs.RunStore`.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from mmcxr import atomic

__all__ = [
    "History",
    "Predictions",
    "accuracy",
    "collate_items",
    "fit",
    "predict",
    "seed_everything",
    "seed_worker",
    "scored_run",
    "split_curves",
]

HISTORY_COLUMNS = [
    "epoch",
    "train_loss",
    "train_accuracy",
    "val_loss",
    "val_auroc",
    "val_accuracy",
    "lr",
    "seconds",
]


# --------------------------------------------------------------------------- seeding


def seed_everything(seed: int, deterministic: bool = True) -> torch.Generator:
    """Seed Python, NumPy and torch (MONAI's ``set_determinism``); return a seeded generator
    for DataLoaders.

    With ``deterministic`` torch is also asked for deterministic kernels, ``warn_only`` so the few
    ops without one warn instead of failing (MONAI's switch has no such option).
    """
    from monai.utils import set_determinism

    set_determinism(seed=seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
    g = torch.Generator()
    g.manual_seed(seed)
    return g


def seed_worker(worker_id: int) -> None:
    """``worker_init_fn``: NumPy/Python seeds from torch's per-worker seed, and MONAI's own
    seeding of any randomised MONAI transforms the dataset holds."""
    from monai.data.utils import worker_init_fn

    s = torch.initial_seed() % 2**32
    np.random.seed(s)  # noqa: NPY002 - third-party code draws from the global stream
    random.seed(s)
    worker_init_fn(worker_id)


# --------------------------------------------------------------------------- results


@dataclass
class History:
    """What :func:`fit` returns. ``table`` has one row per epoch (columns ``HISTORY_COLUMNS``)."""

    table: pd.DataFrame
    best_epoch: int | None
    best_val_loss: float
    stopped_early: bool
    completed: bool  # False when an epoch/time budget cut the call short (call fit again)
    resumed_from_epoch: int  # epochs already done when this call started (0 = fresh run)

    def __repr__(self) -> str:
        return (
            f"History(epochs={len(self.table)}, best_epoch={self.best_epoch}, "
            f"best_val_loss={self.best_val_loss:.4f}, stopped_early={self.stopped_early}, "
            f"completed={self.completed}, resumed_from_epoch={self.resumed_from_epoch})"
        )


@dataclass
class Predictions:
    """Model outputs on a dataset, rows in dataset order (``(N,)`` binary or ``(N, C)``)."""

    probs: np.ndarray
    labels: np.ndarray
    logits: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)


def _val_metrics(labels: np.ndarray, logits: np.ndarray) -> dict[str, float]:
    """Validation AUROC (macro over outputs with both classes) and accuracy at p=0.5; NaN
    when the outputs are not one logit per label (e.g. a captioner's per-token vocabulary
    scores, whose labels are the caption's word ids)."""
    from sklearn.metrics import roc_auc_score

    if np.size(labels) != np.size(logits):
        return {"val_auroc": float("nan"), "val_accuracy": float("nan")}
    y = labels.reshape(len(labels), -1)
    s = logits.reshape(len(logits), -1)
    aucs = [
        roc_auc_score(y[:, j], s[:, j]) for j in range(y.shape[1]) if len(np.unique(y[:, j])) == 2
    ]
    return {
        "val_auroc": float(np.mean(aucs)) if aucs else float("nan"),
        "val_accuracy": float(np.mean((s > 0) == (y > 0.5))),
    }


# --------------------------------------------------------------------------- helpers


def _atomic_save(obj: Any, path: Path) -> None:
    with atomic.replacing(path) as tmp:
        torch.save(obj, tmp)


def _make_accelerator(device: str, seed: int):
    """An ``Accelerator`` on the requested device, through accelerate's public API only.

    accelerate fixes the device at the first ``Accelerator`` of a process; asking for another
    one later either raises (CPU after GPU) or silently keeps the first (GPU after CPU). Both
    become one error here that says to restart (resetting the state takes accelerate's private
    ``_reset_state``). Precision is not given to accelerate (``mixed_precision="no"``) because
    that too is fixed per process; :func:`fit` autocasts per call.
    """
    from accelerate import Accelerator
    from accelerate.utils import DataLoaderConfiguration

    from mmcxr.env import resolve_device

    want = torch.device(resolve_device(device))
    advice = (
        f"fit(device={device!r}) needs accelerate on {want.type} without its own mixed "
        "precision, but an earlier Accelerator in this process was set up otherwise and "
        "accelerate allows one setup per process: restart the kernel, or keep the device this "
        "process started with"
    )
    try:
        accelerator = Accelerator(
            cpu=want.type == "cpu",
            mixed_precision="no",
            # split_batches: ``batch_size`` is the global batch, cut into one slice per process,
            # so N processes take the same optimiser steps as one (see _shard_counts)
            dataloader_config=DataLoaderConfiguration(
                split_batches=True, use_seedable_sampler=True, data_seed=seed
            ),
        )
    except ValueError as e:
        raise ValueError(f"{advice} ({e})") from e
    if accelerator.device.type != want.type:
        raise ValueError(f"{advice} (it is on {accelerator.device})")
    return accelerator


STATE_PREFIX = "state-"
RUN_FILE = "mmcxr_run.json"


def _latest_state(ckpt_dir: Path) -> Path | None:
    """The newest complete ``state-<epoch>`` folder (partial ones carry another name)."""
    done = [
        p
        for p in ckpt_dir.glob(f"{STATE_PREFIX}*")
        if p.name[len(STATE_PREFIX) :].isdigit() and (p / RUN_FILE).is_file()
    ]
    return max(done, key=lambda p: int(p.name[len(STATE_PREFIX) :]), default=None)


def _save_state(accelerator, ckpt_dir: Path, epoch: int, run: dict[str, Any]) -> None:
    """``Accelerator.save_state`` plus ``run`` into ``state-<epoch>``, atomically.

    Every process calls this (accelerate writes each rank's RNG state). The folder is filled
    under a dot-name and renamed when complete, so a crash leaves the previous state usable;
    older states are removed after the rename.
    """
    final = ckpt_dir / f"{STATE_PREFIX}{epoch:04d}"
    partial = ckpt_dir / f".{final.name}.partial"
    main = accelerator.is_main_process
    if main:
        shutil.rmtree(partial, ignore_errors=True)
        ckpt_dir.mkdir(parents=True, exist_ok=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(partial))
    if main:
        atomic.write_text(partial / RUN_FILE, json.dumps(run))
    accelerator.wait_for_everyone()
    if main:
        if final.exists():  # only after a crash between this rename and the cleanup below
            shutil.rmtree(final)
        os.replace(partial, final)
        for old in ckpt_dir.glob(f"{STATE_PREFIX}*"):
            if old != final and old.is_dir():
                shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()


def _shard_counts(
    accelerator, step: int, steps: int, n_items: int, batch_size: int
) -> tuple[int, int]:
    """``(real items in this process's slice of global batch step, real items in that batch)``.

    With ``split_batches`` accelerate gives process ``i`` the items ``[i*b, (i+1)*b)`` of each
    global batch (``b = batch_size / processes``) and pads a short last batch with items of
    the first, so that every process steps together. Those copies must not count, or the last
    step of every epoch would differ from one process's: a process's loss is weighted by its
    share of the real items (:func:`fit`), which makes the DDP-averaged gradient the gradient
    of the global batch's mean loss.
    """
    total = batch_size if step < steps - 1 else n_items - (steps - 1) * batch_size
    share = batch_size // accelerator.num_processes
    return min(max(total - share * accelerator.process_index, 0), share), total


_NUMPY_DTYPES = (torch.float32, torch.float64, torch.int64, torch.int32, torch.uint8, torch.bool)


def collate_items(items: list[Any]) -> Any:
    """``default_collate``, with a batch of dict items of CPU tensors stacked by NumPy.

    The same bytes as ``torch.stack``, but in one thread: a batch of small images is too
    little work to share, and on a busy CPU torch's intra-op threads wait for each other
    longer than the copy takes (a 256 px batch of 16: 140 ms instead of 1 ms on 2 loaded
    cores, which made the cached loader a bottleneck; bench/pipeline.py). Anything else (other
    types, tensors needing grad or of other dtypes or devices) goes to ``default_collate``.
    """
    from torch.utils.data import default_collate

    first = items[0]
    if isinstance(first, dict) and all(
        isinstance(v, torch.Tensor)
        and v.device.type == "cpu"
        and v.dtype in _NUMPY_DTYPES
        and not v.requires_grad
        for v in first.values()
    ):
        try:
            return {k: torch.from_numpy(np.stack([it[k].numpy() for it in items])) for k in first}
        except (KeyError, ValueError, TypeError, AttributeError):
            pass  # ragged or mismatched items: let default_collate say what is wrong
    return default_collate(items)


def _accuracy_counts(logits: torch.Tensor, labels: torch.Tensor) -> tuple[float, int]:
    """Correct predictions at p=0.5 and how many were made; ``(0, 0)`` when the outputs are
    not one logit per label (e.g. masked-LM vocabulary logits), which reads as NaN accuracy."""
    if logits.shape != labels.shape:
        return 0.0, 0
    return float(((logits > 0) == (labels > 0.5)).sum().item()), labels.numel()


def _optimizer(
    model: nn.Module, name: str, lr: float, weight_decay: float, no_decay: Sequence[str]
) -> torch.optim.Optimizer:
    """Adam/AdamW over the trainable parameters; names ending in ``no_decay`` get no weight
    decay (BERT's convention for biases and LayerNorm weights)."""
    opt_cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}.get(name)
    if opt_cls is None:
        raise ValueError(f"optimizer must be 'adam' or 'adamw', got {name!r}")
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not named:
        raise ValueError("model has no trainable parameters (everything frozen?)")
    suffixes = tuple(no_decay)
    decay = [p for n, p in named if not (suffixes and n.endswith(suffixes))]
    exempt = [p for n, p in named if suffixes and n.endswith(suffixes)]
    groups = [
        {"params": params, "weight_decay": wd}
        for params, wd in ((decay, weight_decay), (exempt, 0.0))
        if params
    ]
    return opt_cls(groups, lr=lr)


def _make_scheduler(
    name: str | None,
    opt: torch.optim.Optimizer,
    total_steps: int,
    kwargs: dict[str, Any],
):
    """``(scheduler, when)`` with ``when`` in {"step", "epoch", "val"}."""
    if name is None:
        return None, None
    if name == "linear":  # per optimiser step, warm-up then linear decay to 0
        from transformers import get_linear_schedule_with_warmup

        sched = get_linear_schedule_with_warmup(
            opt, kwargs.get("warmup_steps", 0), kwargs.get("total_steps", total_steps)
        )
        return sched, "step"
    if name == "linear_epoch":  # per epoch: LinearLR over ``total_iters`` epochs
        sched = torch.optim.lr_scheduler.LinearLR(
            opt,
            start_factor=kwargs.get("start_factor", 1.0),
            end_factor=kwargs.get("end_factor", 0.1),
            total_iters=kwargs.get("total_iters", 2),
        )
        return sched, "epoch"
    if name == "plateau":
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(
            opt,
            mode="min",
            factor=kwargs.get("factor", 0.1),
            patience=kwargs.get("patience", 1),
        )
        return sched, "val"
    raise ValueError(f"schedule must be None, 'linear', 'linear_epoch' or 'plateau', got {name!r}")


def _describe_loss(loss: Callable) -> str:
    """Loss identity for the resume check, buffers included (``pos_weight`` is not in repr)."""
    if isinstance(loss, nn.Module):
        buffers = {k: v.tolist() for k, v in loss.state_dict().items()}
        return f"{loss!r} {buffers}" if buffers else repr(loss)
    return getattr(loss, "__name__", repr(loss))


# --------------------------------------------------------------------------- fit


def fit(
    model: nn.Module,
    train_ds: Dataset,
    val_ds: Dataset | None,
    *,
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | str,
    epochs: int,
    batch_size: int,
    lr: float,
    optimizer: str = "adam",
    weight_decay: float = 0.0,
    no_decay: Sequence[str] = (),
    schedule: str | None = None,
    schedule_kwargs: dict[str, Any] | None = None,
    patience: int | None = 3,
    min_delta: float = 0.0,
    grad_clip: float | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    restore_best: bool = True,
    seed: int = 0,
    device: str = "auto",
    mixed_precision: bool = True,
    num_workers: int = 0,
    collate_fn: Callable[[list[Any]], dict[str, Any]] | None = None,
    epoch_budget: int | None = None,
    time_budget_s: float | None = None,
    progress: bool = True,
    epoch_metrics: Callable[[nn.Module], dict[str, float]] | None = None,
) -> History:
    """Train ``model`` (a batch-dict -> logits module) and return its :class:`History`.

    ``loss`` takes ``(logits, labels)`` (e.g. ``make_loss("focal", alpha=0.85, gamma=1.5)``;
    a name uses :func:`mmcxr.models.make_loss` defaults); labels are the batch's ``"label"`` as
    float. ``schedule``: None, ``"linear"`` (per step, ``warmup_steps`` in ``schedule_kwargs``),
    ``"linear_epoch"`` (``LinearLR`` stepped per epoch over ``total_iters`` epochs, our reading
    of paper 001's "linear scheduler with two steps") or ``"plateau"`` (``ReduceLROnPlateau``
    on validation loss). Early stopping after
    ``patience`` epochs without a ``min_delta`` improvement of validation loss (None: never).
    ``no_decay``: parameter-name endings trained without weight decay (``("bias",
    "LayerNorm.weight")`` for BERT). ``collate_fn`` builds batches (e.g. masked-LM masking);
    ``train_accuracy`` is NaN when logits are not one per label.

    With ``checkpoint_dir`` the run resumes from its newest ``state-<epoch>`` folder when
    present (a finished run returns at once). ``epoch_budget``/``time_budget_s`` end this call
    early, resumable, e.g. to fit a long run into limited sessions. At the end the
    best-validation weights are loaded into ``model`` (``restore_best``). The model is left on
    CPU. ``mixed_precision`` means bf16 autocast on CUDA (nothing elsewhere).

    Under ``accelerate launch`` / ``torchrun`` ``batch_size`` stays the *global* batch (a
    multiple of the number of processes): each process takes its slice and its loss is
    weighted by its share of the real items, so N processes take the same steps on the same
    items as one and end equal to float rounding (``tests/test_train_distributed.py``), except
    for dropout masks and BatchNorm statistics, which are drawn per process.

    ``epoch_metrics(model)`` (optional) is called after each epoch with the unwrapped model in
    eval mode and without gradients; the numbers it returns join that epoch's history row as
    extra columns (and are checkpointed with it). It is how a model whose loss has several
    terms (a VAE's reconstruction and KL terms) gets a curve per term without its own loop.
    """
    if isinstance(loss, str):
        from mmcxr.models.losses import make_loss

        loss = make_loss(loss)
    if epochs < 1 or batch_size < 1 or lr <= 0:
        raise ValueError(f"need epochs>=1, batch_size>=1, lr>0; got {epochs}, {batch_size}, {lr}")
    if len(train_ds) == 0:
        raise ValueError("train_ds is empty")
    if val_ds is not None and len(val_ds) == 0:
        raise ValueError("val_ds is empty (pass None to train without validation)")
    schedule_kwargs = dict(schedule_kwargs or {})
    signature = {
        "lr": lr,
        "batch_size": batch_size,
        "optimizer": optimizer,
        "weight_decay": weight_decay,
        "no_decay": list(no_decay),
        "schedule": schedule,
        "schedule_kwargs": repr(sorted(schedule_kwargs.items())),
        "seed": seed,
        "loss": _describe_loss(loss),
        "n_train": len(train_ds),
        "n_val": len(val_ds) if val_ds is not None else 0,
    }
    ckpt_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
    best_path = ckpt_dir / "best.pt" if ckpt_dir else None

    seed_everything(seed)
    accelerator = _make_accelerator(device, seed)
    world = accelerator.num_processes
    if batch_size % world:
        raise ValueError(
            f"batch_size {batch_size} is the global batch, split over {world} processes: "
            "it must be a multiple of the number of processes"
        )
    use_bf16 = mixed_precision and accelerator.device.type == "cuda"
    opt = _optimizer(model, optimizer, lr, weight_decay, no_decay)

    train_loader = DataLoader(
        train_ds,
        batch_size=batch_size,
        shuffle=True,
        num_workers=num_workers,
        collate_fn=collate_fn or collate_items,
        worker_init_fn=seed_worker,
        generator=torch.Generator().manual_seed(seed),
        persistent_workers=False,
    )
    val_loader = (
        DataLoader(
            val_ds,
            batch_size=batch_size,
            shuffle=False,
            num_workers=num_workers,
            collate_fn=collate_fn or collate_items,
        )
        if val_ds is not None
        else None
    )

    # ---- resume: settings first, so a checkpoint of another run is refused before loading
    state: dict[str, Any] = {
        "epoch": 0,
        "rows": [],
        "best_val_loss": math.inf,
        "best_epoch": None,
        "bad_epochs": 0,
        "stopped_early": False,
    }
    state_dir = _latest_state(ckpt_dir) if ckpt_dir is not None else None
    run: dict[str, Any] | None = None
    if state_dir is not None:
        try:
            run = json.loads((state_dir / RUN_FILE).read_text())
        except (OSError, ValueError) as e:
            raise ValueError(
                f"{state_dir}: unreadable checkpoint ({e}); delete it to start afresh"
            ) from e
        saved = run.get("signature", {})
        if saved != signature:
            diff = {k: (saved.get(k), v) for k, v in signature.items() if saved.get(k) != v}
            raise ValueError(
                f"{state_dir} belongs to a run with other settings (checkpoint, now): {diff}. "
                "Use another checkpoint_dir or delete this one."
            )
    elif ckpt_dir is not None and (ckpt_dir / "last.pt").is_file():
        warnings.warn(
            f"{ckpt_dir / 'last.pt'} is an older mmcxr checkpoint, which this version does not "
            "read; the run starts afresh",
            RuntimeWarning,
            stacklevel=2,
        )

    model, opt, train_loader = accelerator.prepare(model, opt, train_loader)
    if val_loader is not None:
        val_loader = accelerator.prepare(val_loader)
    steps_per_epoch = len(train_loader)
    scheduler, sched_when = _make_scheduler(
        schedule, opt, epochs * steps_per_epoch, schedule_kwargs
    )
    if scheduler is not None:
        # saved and restored by save_state/load_state, but not wrapped by prepare(): accelerate's
        # scheduler wrapper would step once per process and change the schedule on many GPUs
        accelerator.register_for_checkpointing(scheduler)
    if run is not None:
        # after the scheduler: building one resets the learning rate, the saved state restores it
        try:
            accelerator.load_state(str(state_dir))
        except (RuntimeError, KeyError, OSError) as e:
            raise ValueError(f"{state_dir}: does not fit this model or run: {e}") from e
        state.update(run["state"])
    resumed_from = state["epoch"]
    best_state: dict[str, torch.Tensor] | None = None
    if best_path is not None and best_path.is_file() and state["best_epoch"] is not None:
        best = torch.load(best_path, map_location="cpu", weights_only=True)
        # best.pt is written before the state folder; after a crash between the two it is one
        # epoch ahead, and that epoch is about to be re-run (and re-saved) anyway
        if best["epoch"] == state["best_epoch"]:
            best_state = best["model"]

    unwrapped = accelerator.unwrap_model(model)
    main = accelerator.is_main_process
    started = time.monotonic()
    epoch_bar = tqdm(
        range(state["epoch"], epochs),
        desc="epochs",
        disable=not (progress and main),
        initial=state["epoch"],
        total=epochs,
    )
    done_this_call = 0
    for epoch in epoch_bar:
        if state["stopped_early"]:
            break
        t0 = time.monotonic()
        model.train()
        train_loader.set_epoch(epoch)
        tot, n, correct, n_lab = 0.0, 0, 0.0, 0
        bar = tqdm(
            train_loader,
            desc=f"epoch {epoch + 1}/{epochs}",
            leave=False,
            disable=not (progress and main),
        )
        for step, batch in enumerate(bar):
            labels = batch["label"].float()
            with torch.autocast(accelerator.device.type, torch.bfloat16, enabled=use_bf16):
                logits = model(batch)
            if world == 1:
                bs = labels.shape[0]
                value = objective = loss(logits.float(), labels)
            else:  # leave out accelerate's padding; weight by this process's share of items
                bs, total = _shard_counts(
                    accelerator, step, steps_per_epoch, len(train_ds), batch_size
                )
                logits, labels = logits[:bs], labels[:bs]
                value = loss(logits.float(), labels) if bs else logits.float().sum() * 0.0
                objective = value * (bs * world / total)
            if not torch.isfinite(value):
                raise FloatingPointError(
                    f"non-finite training loss at epoch {epoch + 1}, batch {step}: {value.item()} "
                    f"(labels with NaN? learning rate {lr} too high?)"
                )
            opt.zero_grad(set_to_none=True)
            accelerator.backward(objective)
            if grad_clip is not None:
                accelerator.clip_grad_norm_(model.parameters(), grad_clip)
            opt.step()
            if sched_when == "step":
                scheduler.step()
            tot += value.detach().item() * bs
            n += bs
            c, k = _accuracy_counts(logits.detach(), labels)
            correct += c
            n_lab += k
            bar.set_postfix(loss=f"{tot / n:.4f}")
        row = {
            "epoch": epoch + 1,
            "train_loss": _global_mean(accelerator, tot, n),
            "train_accuracy": _global_mean(accelerator, correct, n_lab),
            "val_loss": float("nan"),
            "val_auroc": float("nan"),
            "val_accuracy": float("nan"),
            "lr": opt.param_groups[0]["lr"],
        }
        if val_loader is not None:
            vl, vlabels, vlogits = _evaluate(model, val_loader, loss, accelerator, use_bf16)
            if not math.isfinite(vl):
                raise FloatingPointError(
                    f"non-finite validation loss at epoch {epoch + 1}: {vl} (labels with NaN?)"
                )
            row["val_loss"] = vl
            row.update(_val_metrics(vlabels, vlogits))
        if epoch_metrics is not None:
            unwrapped.eval()
            with torch.no_grad():
                extra = {k: float(v) for k, v in epoch_metrics(unwrapped).items()}
            clash = sorted(set(extra) & set(row))
            if clash:
                raise ValueError(f"epoch_metrics returned {clash}, which fit records itself")
            row.update(extra)
        monitor = row["val_loss"] if val_loader is not None else row["train_loss"]
        if sched_when == "epoch":
            scheduler.step()
        elif sched_when == "val":
            scheduler.step(monitor)
        if monitor < state["best_val_loss"] - min_delta:
            state.update(best_val_loss=monitor, best_epoch=epoch + 1, bad_epochs=0)
            best_state = {k: v.detach().cpu().clone() for k, v in unwrapped.state_dict().items()}
            if best_path is not None and main:
                ckpt_dir.mkdir(parents=True, exist_ok=True)
                _atomic_save({"epoch": epoch + 1, "model": best_state}, best_path)
        else:
            state["bad_epochs"] += 1
            if patience is not None and state["bad_epochs"] >= patience:
                state["stopped_early"] = True
        row["seconds"] = time.monotonic() - t0
        state["rows"].append(row)
        state["epoch"] = epoch + 1
        done_this_call += 1
        epoch_bar.set_postfix(
            train=f"{row['train_loss']:.4f}", val=f"{row['val_loss']:.4f}", best=state["best_epoch"]
        )
        if ckpt_dir is not None:
            _save_state(accelerator, ckpt_dir, epoch + 1, {"signature": signature, "state": state})
        if state["stopped_early"]:
            break
        if epoch_budget is not None and done_this_call >= epoch_budget:
            break
        elapsed = time.monotonic() - started
        if time_budget_s is not None and elapsed + row["seconds"] > time_budget_s:
            break
    epoch_bar.close()

    completed = state["stopped_early"] or state["epoch"] >= epochs
    if restore_best and completed and state["best_epoch"] is not None:
        if best_state is None:
            warnings.warn(
                f"best weights (epoch {state['best_epoch']}) were lost in an interrupted "
                f"checkpoint write; keeping the last epoch's weights",
                RuntimeWarning,
                stacklevel=2,
            )
        else:
            unwrapped.load_state_dict(best_state)
    unwrapped.to("cpu")
    unwrapped.eval()
    accelerator.free_memory()
    extra = [k for r in state["rows"] for k in r if k not in HISTORY_COLUMNS]
    table = pd.DataFrame(state["rows"], columns=HISTORY_COLUMNS + list(dict.fromkeys(extra)))
    return History(
        table=table,
        best_epoch=state["best_epoch"],
        best_val_loss=float(state["best_val_loss"]),
        stopped_early=bool(state["stopped_early"]),
        completed=bool(completed),
        resumed_from_epoch=resumed_from,
    )


def _global_mean(accelerator, total: float, count: float) -> float:
    """Mean over all processes; NaN when nothing was counted."""
    if accelerator.num_processes > 1:
        t = accelerator.reduce(
            torch.tensor([total, count], dtype=torch.float64, device=accelerator.device), "sum"
        )
        total, count = t.tolist()
    return total / count if count else float("nan")


@torch.no_grad()
def _evaluate(
    model, loader, loss, accelerator, use_bf16: bool
) -> tuple[float, np.ndarray, np.ndarray]:
    model.eval()
    all_logits, all_labels = [], []
    for batch in loader:
        with torch.autocast(accelerator.device.type, torch.bfloat16, enabled=use_bf16):
            logits = model(batch)
        logits, labels = accelerator.gather_for_metrics((logits.float(), batch["label"].float()))
        all_logits.append(logits.cpu())
        all_labels.append(labels.cpu())
    logits = torch.cat(all_logits)
    labels = torch.cat(all_labels)
    value = float(loss(logits, labels))
    return value, labels.numpy(), logits.numpy()


# --------------------------------------------------------------------------- predict


@torch.no_grad()
def predict(
    model: nn.Module,
    ds: Dataset,
    batch_size: int = 64,
    device: str = "auto",
    *,
    num_workers: int = 0,
    mixed_precision: bool = True,
    progress: bool = True,
) -> Predictions:
    """Sigmoid probabilities, labels and logits for every item of ``ds``, in order."""
    from mmcxr.env import resolve_device

    dev = torch.device(resolve_device(device))
    model = model.to(dev).eval()
    loader = DataLoader(
        ds, batch_size=batch_size, shuffle=False, num_workers=num_workers, collate_fn=collate_items
    )
    use_bf16 = mixed_precision and dev.type == "cuda"
    logits_all, labels_all = [], []
    for batch in tqdm(loader, desc="predict", leave=False, disable=not progress):
        batch = {k: v.to(dev) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=use_bf16):
            logits = model(batch)
        logits_all.append(logits.float().cpu())
        labels_all.append(batch["label"].float().cpu())
    logits = torch.cat(logits_all)
    return Predictions(
        probs=torch.sigmoid(logits).numpy(),
        labels=torch.cat(labels_all).numpy(),
        logits=logits.numpy(),
    )


# --------------------------------------------------------------------------- accuracy curves


def accuracy(
    model: nn.Module, ds: Dataset, *, batch_size: int = 128, device: str = "auto"
) -> tuple[float, Predictions]:
    """Accuracy at p=0.5 of a binary model on ``ds`` (a probability above 0.5 counts as
    positive), with the :class:`Predictions` it was read from."""
    pred = predict(model, ds, batch_size=batch_size, device=device, progress=False)
    return float(np.mean((pred.probs > 0.5) == (pred.labels > 0.5))), pred


def scored_run(
    build: Callable[[], nn.Module],
    train_ds: Dataset,
    val_ds: Dataset | None,
    scored: Mapping[str, Dataset],
    *,
    init_seed: int = 0,
    device: str = "auto",
    **fit_kwargs: Any,
) -> dict[str, Any]:
    """A model built by ``build()`` (under the torch seed ``init_seed``), trained by
    :func:`fit` (``fit_kwargs``) and scored by :func:`accuracy` on each dataset of ``scored``:
    what a :class:`~mmcxr.runs.RunStore` run returns. ``metrics``: the accuracy per name of
    ``scored``; ``predictions``: probabilities and labels on the last of ``scored``; with
    ``history`` and ``model``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(init_seed))
        model = build()
    history = fit(model, train_ds, val_ds, device=device, **fit_kwargs)
    acc = {name: accuracy(model, ds, device=device) for name, ds in scored.items()}
    last = acc[list(scored)[-1]][1]
    return {
        "metrics": {name: a for name, (a, _) in acc.items()},
        "predictions": {"probs": last.probs, "labels": last.labels},
        "history": history,
        "model": model,
    }


def split_curves(
    store: Any,
    name: str,
    config: dict[str, Any],
    fingerprint: str,
    splits: Sequence[tuple[np.ndarray, np.ndarray]],
    build: Callable[[int], nn.Module],
    dataset: Callable[[np.ndarray], Dataset],
    *,
    init_seed: int = 0,
    keep_model: bool = True,
    bar: Any = None,
    **fit_kwargs: Any,
) -> list[Any]:
    """Held-out accuracy curves over (train, held-out) index splits (e.g.
    :func:`mmcxr.data.stratified_splits`): for split ``k``, ``build(k)`` (under the torch seed
    ``init_seed + k``) is fine-tuned on ``dataset(train)`` with no epoch selected (no early
    stopping, the last weights kept) and scored on ``dataset(held_out)`` after every epoch.

    Each split is a run of ``store`` (a :class:`~mmcxr.runs.RunStore`), named
    ``name.format(split=k)`` and keyed by ``config`` with ``split=k`` and ``fingerprint``, so
    finished splits are reused. Metrics: ``mean_accuracy`` (over epochs) and ``last``; the
    history holds the curve (``val_accuracy``); the weights are kept when ``keep_model``.
    ``fit_kwargs`` go to :func:`fit`; ``bar`` (a tqdm) advances by one per split.
    """
    out = []
    for k, (tr, te) in enumerate(splits):

        def work(ckpt: Path, k: int = k, tr: np.ndarray = tr, te: np.ndarray = te) -> dict:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(int(init_seed) + k)
                model = build(k)
            history = fit(
                model, dataset(tr), dataset(te), patience=None, restore_best=False,
                checkpoint_dir=ckpt, **fit_kwargs,
            )  # fmt: skip
            acc = history.table["val_accuracy"]
            return {
                "metrics": {"mean_accuracy": float(acc.mean()), "last": float(acc.iloc[-1])},
                "history": history,
                "model": model if keep_model else None,
            }

        run_name = name.format(split=k)
        if bar is not None:
            bar.set_postfix_str(run_name)
        out.append(store.get_or_run(run_name, config | {"split": k}, fingerprint, work))
        if bar is not None:
            bar.update()
    return out
