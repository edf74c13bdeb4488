"""A tiny :func:`mmcxr.train.fit` run, the same in one process or under ``torchrun``.

``tests/test_train_distributed.py`` starts it twice, plainly and with ``torchrun
--nproc_per_node 2`` (gloo on CPU), and compares what each process writes to ``OUT_DIR``:
``rank-<r>.json`` (the world it saw, the history of each call, a digest of its final weights)
and the run that :class:`mmcxr.runs.RunStore` saved. The run is cut after one epoch
(``epoch_budget``) and finished by a second call through ``RunStore.get_or_run``, so the
multi-process run also proves checkpointing and resuming.

Not a test module itself (its name does not start with ``test_``): run it as
``python tests/two_process_fit.py OUT_DIR``.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

#: Items, not multiples of the global batch: the last training batch of every epoch is short
#: (45 = 5 x 8 + 5), where accelerate pads one process's slice and fit must leave the padding
#: out; the last validation batch too (21 = 2 x 8 + 5), whose padding gather_for_metrics drops.
N_TRAIN, N_VAL, BATCH, EPOCHS = 45, 21, 8, 3


class Planted(Dataset):
    """8 x 8 images whose positives carry a brighter square (learnable in a few epochs)."""

    def __init__(self, n: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.y = rng.integers(0, 2, n).astype(np.float32)
        self.x = rng.normal(0, 1, (n, 1, 8, 8)).astype(np.float32)
        self.x[self.y == 1, :, 2:5, 2:5] += 1.0

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"image": torch.from_numpy(self.x[i]), "label": torch.tensor(self.y[i])}


class Tiny(nn.Module):
    """No dropout and no BatchNorm: with either, one process and two draw other masks or
    normalise over other batches, and the runs could only agree statistically."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.Tanh(), nn.Linear(16, 1))

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.net(batch["image"]).squeeze(-1)


def main(out_dir: Path) -> None:
    import torch.distributed as dist

    from mmcxr.runs import RunStore
    from mmcxr.train import fit

    torch.set_num_threads(1)
    train, val = Planted(N_TRAIN, 0), Planted(N_VAL, 1)
    kwargs = dict(
        loss="bce",
        epochs=EPOCHS,
        batch_size=BATCH,
        lr=0.01,
        schedule="linear",
        patience=None,
        seed=0,
        device="cpu",
        progress=False,
    )
    store = RunStore(out_dir / "runs")
    params, data = {"tiny": 1}, "toy-data"
    from mmcxr.runs import run_key

    ckpt = store.checkpoint_dir("tiny", run_key(params, data))
    torch.manual_seed(0)
    first = fit(Tiny(), train, val, checkpoint_dir=ckpt, epoch_budget=1, **kwargs)
    states = sorted(p.name for p in ckpt.glob("state-*"))
    calls: dict[str, object] = {}

    def work(checkpoint_dir: Path) -> dict[str, object]:
        torch.manual_seed(0)
        model = Tiny()
        history = fit(model, train, val, checkpoint_dir=checkpoint_dir, **kwargs)
        calls["second"] = history
        calls["model"] = model
        return {"metrics": {"best_epoch": history.best_epoch}, "history": history, "model": model}

    store.get_or_run("tiny", params, data, work)
    second = calls["second"]
    weights = torch.cat([p.detach().flatten() for p in calls["model"].parameters()])
    world = dist.get_world_size() if dist.is_initialized() else 1
    rank = dist.get_rank() if dist.is_initialized() else 0
    report = {
        "world": world,
        "rank": rank,
        "first_completed": first.completed,
        "first_epochs": len(first.table),
        "states_after_first": states,
        "resumed_from_epoch": second.resumed_from_epoch,
        "completed": second.completed,
        "history": second.table.drop(columns="seconds").to_dict(orient="list"),
        "weights": weights.tolist(),
        "weights_sha256": hashlib.sha256(weights.numpy().tobytes()).hexdigest(),
    }
    (out_dir / f"rank-{rank}.json").write_text(json.dumps(report))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
