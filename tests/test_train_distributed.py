"""fit() in two processes (torchrun, gloo on CPU) against one process with the same global batch.

``batch_size`` is the *global* batch (accelerate's ``split_batches``), and fit weights each
process's loss by its share of the real items of a step, leaving out the copies accelerate
pads a short last batch with. The two runs then take the same optimiser steps on the same
items and differ only by the order of floating-point sums (a gradient summed over two halves
and all-reduced vs summed at once): the tolerance below is 1e-6 on every history number and on
every weight, far below what a wrong batch (a different step) moves, about 1e-2.

The launcher is ``torchrun --nproc_per_node 2``: on this CPU machine ``accelerate launch
--num_processes 2 --cpu`` started one process. Slow only because each of the three processes
imports torch, accelerate and MONAI (tens of seconds on a loaded 2-core machine).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).with_name("two_process_fit.py")
TOL = 1e-6


def _launch(out: Path, nproc: int) -> None:
    """Run the script with ``torchrun --standalone`` (a free port, one node)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    cmd += [f"--nproc_per_node={nproc}", str(SCRIPT), str(out)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


@pytest.mark.slow
def test_two_processes_train_checkpoint_resume_and_match_one(tmp_path):
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import two_process_fit
    finally:
        sys.path.remove(str(SCRIPT.parent))
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    two_process_fit.main(one)  # one process: here, without a launcher
    _launch(two, 2)

    ref = json.loads((one / "rank-0.json").read_text())
    ranks = [json.loads((two / f"rank-{r}.json").read_text()) for r in (0, 1)]
    assert ref["world"] == 1 and [r["world"] for r in ranks] == [2, 2]
    for r in [ref, *ranks]:
        # cut after one epoch, checkpointed, resumed from it by RunStore.get_or_run
        assert not r["first_completed"] and r["first_epochs"] == 1
        assert r["states_after_first"] == ["state-0001"]
        assert r["resumed_from_epoch"] == 1 and r["completed"]
    # every process holds the same model (DDP keeps them in step)
    assert ranks[0]["weights_sha256"] == ranks[1]["weights_sha256"]
    hist, ref_hist = ranks[0]["history"], ref["history"]
    assert hist.keys() == ref_hist.keys()
    for col in hist:
        np.testing.assert_allclose(hist[col], ref_hist[col], atol=TOL, rtol=0, err_msg=col)
    np.testing.assert_allclose(ranks[0]["weights"], ref["weights"], atol=TOL, rtol=0)
    # it trains: loss falls, the planted square is found
    assert ref_hist["train_loss"][-1] < ref_hist["train_loss"][0] - 0.1
    assert ref_hist["val_auroc"][-1] > 0.85
    # the run was written once, by rank 0, and its checkpoint removed
    (run,) = (two / "runs" / "tiny").iterdir()
    assert (run / "done.json").is_file() and not (run / "checkpoint").exists()
    assert json.loads((run / "metrics.json").read_text())["best_epoch"] == hist["epoch"][-1]
