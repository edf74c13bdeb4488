"""The one training loop every chapter uses, and batch prediction.

:func:`fit` runs on CPU, one GPU (bf16 autocast) or many (``accelerate launch`` — nothing in
the chapter changes) through ``accelerate.Accelerator``. It keeps the papers' protocol — Adam,
linear or plateau schedule, early stopping on validation loss, best-checkpoint selection — and
makes runs restartable: after every epoch ``<checkpoint_dir>/last.pt`` holds everything needed
to continue (weights, optimiser, scheduler, RNG states, history, early-stopping counters) and
``best.pt`` the best weights (``{"epoch", "model"}``), both written atomically. Calling
:func:`fit` again with the same ``checkpoint_dir`` resumes, and a resumed run ends
bit-identical to an uninterrupted one on CPU.

Reproducibility: :func:`seed_everything` seeds Python, NumPy and torch and asks torch for
deterministic kernels; batches are shuffled by accelerate's seedable sampler, whose order depends
only on ``(seed, epoch)``, so a resumed run sees the same batches.
"""

from __future__ import annotations

import math
import os
import random
import time
import warnings
from collections.abc import Callable
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
    "fit",
    "predict",
    "seed_everything",
    "seed_worker",
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


def _rng_state() -> dict[str, Any]:
    """All RNG states as tensors/plain types, so ``torch.load(weights_only=True)`` accepts them."""
    py_version, py_state, py_gauss = random.getstate()
    np_state = np.random.get_state()  # noqa: NPY002 - checkpointing the global stream
    return {
        "python": {
            "version": py_version,
            "state": torch.tensor(py_state, dtype=torch.int64),
            "gauss": py_gauss,
        },
        "numpy": {
            "kind": np_state[0],
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def _set_rng_state(state: dict[str, Any]) -> None:
    py = state["python"]
    random.setstate((py["version"], tuple(int(x) for x in py["state"].tolist()), py["gauss"]))
    n = state["numpy"]
    np.random.set_state(  # noqa: NPY002
        (
            n["kind"],
            n["keys"].numpy().astype(np.uint32),
            n["pos"],
            n["has_gauss"],
            n["cached_gaussian"],
        )
    )
    torch.set_rng_state(state["torch"])
    if (
        state["cuda"]
        and torch.cuda.is_available()
        and len(state["cuda"]) == torch.cuda.device_count()
    ):
        torch.cuda.set_rng_state_all(state["cuda"])


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
    """Validation AUROC (macro over outputs with both classes) and accuracy at p=0.5."""
    from sklearn.metrics import roc_auc_score

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


def _make_accelerator(device: str, mixed_precision: bool, seed: int):
    """An ``Accelerator`` for this call. accelerate keeps one process-wide state; in a
    single-process notebook that switches device or precision between fits it is reset
    (never under ``accelerate launch``, where the state belongs to the launcher)."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, PartialState
    from accelerate.utils import DataLoaderConfiguration

    from mmcxr.env import resolve_device

    want = resolve_device(device)
    cpu = want == "cpu"
    mp = "bf16" if (mixed_precision and want.startswith("cuda")) else "no"
    state = AcceleratorState._shared_state
    if state and not PartialState().use_distributed:
        current = AcceleratorState()
        if current.device.type != want.split(":")[0] or current._mixed_precision != mp:
            AcceleratorState._reset_state(reset_partial_state=True)
    return Accelerator(
        cpu=cpu,
        mixed_precision=mp,
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True, data_seed=seed),
    )


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
    epoch_budget: int | None = None,
    time_budget_s: float | None = None,
    progress: bool = True,
) -> History:
    """Train ``model`` (a batch-dict -> logits module) and return its :class:`History`.

    ``loss`` takes ``(logits, labels)`` (e.g. ``make_loss("focal", alpha=0.85, gamma=1.5)``;
    a name uses :func:`mmcxr.models.make_loss` defaults). ``schedule``: None, ``"linear"``
    (per step, ``warmup_steps`` in ``schedule_kwargs``), ``"linear_epoch"`` (``LinearLR`` stepped
    per epoch over ``total_iters`` epochs, our reading of paper 001's "linear scheduler with two
    steps") or ``"plateau"`` (``ReduceLROnPlateau`` on validation loss). Early stopping after
    ``patience`` epochs without a ``min_delta`` improvement of validation loss (None: never).

    With ``checkpoint_dir`` the run resumes from ``last.pt`` when present (a finished run
    returns at once). ``epoch_budget``/``time_budget_s`` end this call early, resumable, e.g. to
    fit a long run into limited sessions. At the end the best-validation weights are loaded
    into ``model`` (``restore_best``). The model is left on CPU.
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
        "schedule": schedule,
        "schedule_kwargs": repr(sorted(schedule_kwargs.items())),
        "seed": seed,
        "loss": _describe_loss(loss),
        "n_train": len(train_ds),
        "n_val": len(val_ds) if val_ds is not None else 0,
    }
    ckpt_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
    last_path = ckpt_dir / "last.pt" if ckpt_dir else None
    best_path = ckpt_dir / "best.pt" if ckpt_dir else None

    seed_everything(seed)
    accelerator = _make_accelerator(device, mixed_precision, seed)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("model has no trainable parameters (everything frozen?)")
    opt_cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}.get(optimizer)
    if opt_cls is None:
        raise ValueError(f"optimizer must be 'adam' or 'adamw', got {optimizer!r}")
    opt = opt_cls(params, lr=lr, weight_decay=weight_decay)

    train_loader = DataLoader(
        train_ds,
        batch_size=batch_size,
        shuffle=True,
        num_workers=num_workers,
        worker_init_fn=seed_worker,
        generator=torch.Generator().manual_seed(seed),
        persistent_workers=False,
    )
    val_loader = (
        DataLoader(val_ds, batch_size=batch_size, shuffle=False, num_workers=num_workers)
        if val_ds is not None
        else None
    )

    # ---- resume
    state: dict[str, Any] = {
        "epoch": 0,
        "rows": [],
        "best_val_loss": math.inf,
        "best_epoch": None,
        "bad_epochs": 0,
        "stopped_early": False,
    }
    ckpt = None
    if last_path is not None and last_path.is_file():
        try:
            ckpt = torch.load(last_path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise ValueError(
                f"{last_path}: unreadable checkpoint ({e}); delete it to start afresh"
            ) from e
        if ckpt.get("signature") != signature:
            diff = {
                k: (ckpt.get("signature", {}).get(k), v)
                for k, v in signature.items()
                if ckpt.get("signature", {}).get(k) != v
            }
            raise ValueError(
                f"{last_path} belongs to a run with other settings (checkpoint, now): {diff}. "
                "Use another checkpoint_dir or delete this one."
            )
        try:
            model.load_state_dict(ckpt["model"])
        except RuntimeError as e:
            raise ValueError(f"{last_path}: weights do not fit this model: {e}") from e
        state.update(ckpt["state"])

    model, opt, train_loader = accelerator.prepare(model, opt, train_loader)
    if val_loader is not None:
        val_loader = accelerator.prepare(val_loader)
    steps_per_epoch = len(train_loader)
    scheduler, sched_when = _make_scheduler(
        schedule, opt, epochs * steps_per_epoch, schedule_kwargs
    )
    if ckpt is not None:
        # after the scheduler: building one resets the learning rate, the saved state restores it
        opt.load_state_dict(ckpt["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(ckpt["scheduler"])
        _set_rng_state(ckpt["rng"])
    resumed_from = state["epoch"]
    best_state: dict[str, torch.Tensor] | None = None
    if best_path is not None and best_path.is_file() and state["best_epoch"] is not None:
        best = torch.load(best_path, map_location="cpu", weights_only=True)
        # best.pt is written before last.pt; after a crash between the two it is one epoch
        # ahead, and that epoch is about to be re-run (and re-saved) anyway
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
            logits = model(batch)
            value = loss(logits.float(), labels)
            if not torch.isfinite(value):
                raise FloatingPointError(
                    f"non-finite training loss at epoch {epoch + 1}, batch {step}: {value.item()} "
                    f"(labels with NaN? learning rate {lr} too high?)"
                )
            opt.zero_grad(set_to_none=True)
            accelerator.backward(value)
            if grad_clip is not None:
                accelerator.clip_grad_norm_(model.parameters(), grad_clip)
            opt.step()
            if sched_when == "step":
                scheduler.step()
            bs = labels.shape[0]
            tot += value.detach().item() * bs
            n += bs
            correct += ((logits.detach() > 0) == (labels > 0.5)).float().sum().item()
            n_lab += labels.numel()
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
            vl, vlabels, vlogits = _evaluate(model, val_loader, loss, accelerator)
            if not math.isfinite(vl):
                raise FloatingPointError(
                    f"non-finite validation loss at epoch {epoch + 1}: {vl} (labels with NaN?)"
                )
            row["val_loss"] = vl
            row.update(_val_metrics(vlabels, vlogits))
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
        if last_path is not None and main:
            ckpt_dir.mkdir(parents=True, exist_ok=True)
            _atomic_save(
                {
                    "model": {k: v.detach().cpu() for k, v in unwrapped.state_dict().items()},
                    "optimizer": opt.state_dict(),
                    "scheduler": scheduler.state_dict() if scheduler is not None else None,
                    "rng": _rng_state(),
                    "state": state,
                    "signature": signature,
                },
                last_path,
            )
        accelerator.wait_for_everyone()
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
    table = pd.DataFrame(state["rows"], columns=HISTORY_COLUMNS)
    return History(
        table=table,
        best_epoch=state["best_epoch"],
        best_val_loss=float(state["best_val_loss"]),
        stopped_early=bool(state["stopped_early"]),
        completed=bool(completed),
        resumed_from_epoch=resumed_from,
    )


def _global_mean(accelerator, total: float, count: float) -> float:
    if accelerator.num_processes > 1:
        t = accelerator.reduce(
            torch.tensor([total, count], dtype=torch.float64, device=accelerator.device), "sum"
        )
        total, count = t.tolist()
    return total / max(count, 1)


@torch.no_grad()
def _evaluate(model, loader, loss, accelerator) -> tuple[float, np.ndarray, np.ndarray]:
    model.eval()
    all_logits, all_labels = [], []
    for batch in loader:
        logits = model(batch).float()
        logits, labels = accelerator.gather_for_metrics((logits, batch["label"].float()))
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
    loader = DataLoader(ds, batch_size=batch_size, shuffle=False, num_workers=num_workers)
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
