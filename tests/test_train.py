"""fit()/predict(): learning, early stopping, checkpoint resume, determinism; the run cache."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from torch.utils.data import Dataset

from mmcxr.models import KimCNN, build_classifier, freeze, image_encoder, make_loss
from mmcxr.runs import (
    RunStore,
    fingerprint_table,
    history_table,
    load_run_model,
    pick_params,
    run_key,
)
from mmcxr.train import History, accuracy, fit, predict, scored_run, seed_everything, split_curves


class ToyDataset(Dataset):
    """Items shaped like ``MultimodalDataset``'s. Positives carry a bright square in the image
    and token 1 at position 4 of the text (planted, so a model can learn them)."""

    def __init__(self, n, seed=0, size=32, seq=12, vocab=30, flip=False):
        rng = np.random.default_rng(seed)
        self.y = rng.integers(0, 2, n).astype(np.float32)
        self.img = rng.normal(0, 1, (n, 1, size, size)).astype(np.float32)
        self.img[self.y == 1, :, 8:16, 8:16] += 2.0
        self.tok = rng.integers(2, vocab, (n, seq))
        self.tok[self.y == 1, 4] = 1
        if flip:  # labels contradict the planted signal
            self.y = 1.0 - self.y

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return {
            "image": torch.from_numpy(self.img[i]),
            "token_ids": torch.from_numpy(self.tok[i]).long(),
            "label": torch.tensor(self.y[i]),
        }


def make_model(kind="multimodal", seed=0, dropout=0.3):
    torch.manual_seed(seed)
    img = image_encoder("resnet10-half") if kind != "text" else None
    if img is not None:
        freeze(img, ["conv1", "layer1"])  # frozen BN in the mix
    txt = KimCNN(30, 8, n_filters=6, dropout=dropout) if kind != "image" else None
    return build_classifier(kind, img, txt, proj_dim=16, dropout=dropout)


FIT = {"batch_size": 16, "lr": 3e-3, "device": "cpu", "progress": False}


def _weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def _same_weights(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _table(h: History) -> pd.DataFrame:
    return h.table.drop(columns="seconds")


def test_fit_overfits_a_tiny_batch():
    seed_everything(0)
    model = make_model(dropout=0.0)
    train = ToyDataset(16, seed=0)
    h = fit(model, train, train, loss=make_loss("bce"), epochs=25, patience=None, **FIT)
    assert h.completed and not h.stopped_early and len(h.table) == 25
    assert list(h.table.columns) == [
        "epoch", "train_loss", "train_accuracy", "val_loss", "val_auroc", "val_accuracy", "lr",
        "seconds",
    ]  # fmt: skip
    assert h.table["train_loss"].iloc[-1] < 0.05 < h.table["train_loss"].iloc[0]
    p = predict(model, train, batch_size=5, device="cpu", progress=False)
    assert p.probs.shape == (16,) and p.probs.dtype == np.float32
    assert np.array_equal(p.labels, train.y)
    assert ((p.probs > 0.5) == (train.y > 0.5)).all()
    assert np.allclose(p.probs, 1 / (1 + np.exp(-p.logits)), atol=1e-6)
    assert h.table["val_auroc"].iloc[-1] == 1.0
    # frozen parameters did not move
    fresh = make_model(dropout=0.0)
    assert torch.equal(model.image_encoder.conv1.weight, fresh.image_encoder.conv1.weight)
    assert torch.equal(
        model.image_encoder.layer1[0].bn1.running_mean,
        fresh.image_encoder.layer1[0].bn1.running_mean,
    )


@pytest.mark.parametrize(
    "schedule, first_call",
    [
        ("linear", {"epochs": 4, "epoch_budget": 2}),  # interrupted half-way through 4
        ("plateau", {"epochs": 2}),  # "run 2 epochs, then ask for 4"
    ],
)
@pytest.mark.slow
def test_resume_equals_uninterrupted_run(tmp_path, schedule, first_call):
    train, val = ToyDataset(40, seed=1), ToyDataset(20, seed=2)
    kw = {"loss": make_loss("focal", alpha=0.75, gamma=2.0), "schedule": schedule, "patience": None}

    seed_everything(0)
    straight = make_model()
    h_straight = fit(straight, train, val, epochs=4, checkpoint_dir=tmp_path / "a", **kw, **FIT)

    seed_everything(0)
    first = make_model()
    h1 = fit(first, train, val, checkpoint_dir=tmp_path / "b", **first_call, **kw, **FIT)
    assert len(h1.table) == 2 and h1.completed == (first_call["epochs"] == 2)
    # a new process would rebuild the model from scratch, with other RNG state
    torch.manual_seed(123)
    resumed = make_model(seed=99)
    h2 = fit(resumed, train, val, epochs=4, checkpoint_dir=tmp_path / "b", **kw, **FIT)
    assert h2.resumed_from_epoch == 2 and h2.completed
    pd.testing.assert_frame_equal(_table(h2), _table(h_straight))
    assert _same_weights(_weights(resumed), _weights(straight))
    assert h2.best_epoch == h_straight.best_epoch

    # only the newest state is kept: accelerate's save_state plus the history and settings
    # accelerate does not know about (which the equal tables above needed)
    ckpt = tmp_path / "b"
    assert sorted(p.name for p in ckpt.iterdir()) == ["best.pt", "state-0004"]
    run = json.loads((ckpt / "state-0004" / "mmcxr_run.json").read_text())
    assert run["state"]["epoch"] == 4 and len(run["state"]["rows"]) == 4
    assert run["signature"]["schedule"] == schedule

    # a finished run returns at once with the same result
    again = make_model(seed=5)
    h3 = fit(again, train, val, epochs=4, checkpoint_dir=tmp_path / "b", **kw, **FIT)
    assert h3.resumed_from_epoch == 4
    pd.testing.assert_frame_equal(_table(h3), _table(h_straight))
    assert _same_weights(_weights(again), _weights(straight))


def test_a_checkpoint_write_cut_short_is_ignored(tmp_path):
    train = ToyDataset(16, seed=0)
    kw = {"loss": "bce", "epochs": 2, "patience": None, **FIT}
    seed_everything(0)
    straight = fit(make_model("text"), train, train, **kw)
    seed_everything(0)
    fit(make_model("text"), train, train, checkpoint_dir=tmp_path, epoch_budget=1, **kw)
    # as if the process died while saving epoch 2: a half-written folder beside state-0001
    partial = tmp_path / ".state-0002.partial"
    partial.mkdir()
    (partial / "optimizer.bin").write_bytes(b"truncated")
    h = fit(make_model("text", seed=3), train, train, checkpoint_dir=tmp_path, **kw)
    assert h.resumed_from_epoch == 1 and h.completed
    pd.testing.assert_frame_equal(_table(h), _table(straight))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "state-0002"]


def test_a_checkpoint_of_the_old_format_is_not_resumed_silently(tmp_path):
    torch.save({"state": {"epoch": 1}}, tmp_path / "last.pt")  # what fit wrote before
    with pytest.warns(RuntimeWarning, match="older mmcxr checkpoint"):
        h = fit(make_model("text"), ToyDataset(8), None, loss="bce", epochs=1,
                checkpoint_dir=tmp_path, **FIT)  # fmt: skip
    assert h.resumed_from_epoch == 0 and h.completed


def test_early_stopping_restores_the_best_epoch(tmp_path):
    train = ToyDataset(32, seed=3)
    val = ToyDataset(32, seed=3, flip=True)  # learning the training signal hurts validation
    seed_everything(0)
    model = make_model(kind="text", dropout=0.0)
    h = fit(
        model, train, val, loss=make_loss("bce"), epochs=20, patience=2,
        checkpoint_dir=tmp_path, **FIT,
    )  # fmt: skip
    assert h.stopped_early and h.completed
    assert len(h.table) == h.best_epoch + 2 < 20
    assert h.best_val_loss == pytest.approx(h.table["val_loss"].min())
    best = torch.load(tmp_path / "best.pt", weights_only=True)
    assert best["epoch"] == h.best_epoch and _same_weights(_weights(model), best["model"])


def test_budgets_end_a_call_early_and_resumably(tmp_path):
    train = ToyDataset(16, seed=0)
    seed_everything(0)
    kw = {"loss": "bce", "epochs": 3, "checkpoint_dir": tmp_path, **FIT}
    h = fit(make_model("text"), train, None, time_budget_s=0.0, **kw)
    assert len(h.table) == 1 and not h.completed and h.table["val_loss"].isna().all()
    h = fit(make_model("text"), train, None, **kw)
    assert h.resumed_from_epoch == 1 and h.completed and list(h.table["epoch"]) == [1, 2, 3]


@pytest.mark.slow
def test_same_seed_same_results_and_other_seed_differs():
    train, val = ToyDataset(40, seed=4), ToyDataset(20, seed=5)

    def run(seed):
        seed_everything(seed)
        model = make_model(seed=seed)
        h = fit(model, train, val, loss=make_loss("bce"), epochs=3, seed=seed, **FIT)
        return _table(h), predict(model, val, device="cpu", progress=False).probs

    t1, p1 = run(0)
    t2, p2 = run(0)
    pd.testing.assert_frame_equal(t1, t2)
    assert np.array_equal(p1, p2)
    t3, p3 = run(1)
    assert not np.array_equal(p1, p3)


def test_bad_inputs_fail_loudly(tmp_path):
    train, val = ToyDataset(16, seed=0), ToyDataset(8, seed=1)
    seed_everything(0)
    fit(make_model("text"), train, val, loss="bce", epochs=1, checkpoint_dir=tmp_path, **FIT)
    with pytest.raises(ValueError, match="other settings.*lr"):
        fit(make_model("text"), train, val, loss="bce", epochs=2, checkpoint_dir=tmp_path,
            **{**FIT, "lr": 1e-4})  # fmt: skip

    class NanLabels(ToyDataset):
        def __getitem__(self, i):
            item = super().__getitem__(i)
            item["label"] = torch.tensor(float("nan"))
            return item

    with pytest.raises(FloatingPointError, match="non-finite training loss"):
        fit(make_model("text"), NanLabels(8), None, loss="bce", epochs=1, **FIT)
    frozen = make_model("text")
    frozen.requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        fit(frozen, train, val, loss="bce", epochs=1, **FIT)
    with pytest.raises(ValueError, match="schedule must be"):
        fit(make_model("text"), train, val, loss="bce", epochs=1, schedule="cosine", **FIT)


def test_multilabel_targets():
    class MultiLabel(ToyDataset):
        def __getitem__(self, i):
            item = super().__getitem__(i)
            item["label"] = torch.stack([item["label"], 1 - item["label"], item["label"]])
            return item

    torch.manual_seed(0)
    model = build_classifier("text", text_encoder=KimCNN(30, 8, n_filters=6), n_outputs=3)
    ds = MultiLabel(24, seed=6)
    h = fit(model, ds, ds, loss=make_loss("focal"), epochs=2, **FIT)
    assert np.isfinite(h.table["val_auroc"]).all()
    p = predict(model, ds, device="cpu", progress=False)
    assert p.probs.shape == (24, 3) and p.labels.shape == (24, 3)


def test_collate_fn_and_outputs_that_are_not_one_logit_per_label():
    # two-class softmax over class indices: what masked-LM pretraining looks like to fit
    batches = []

    def collate(items):
        batch = torch.utils.data.default_collate(items)
        batches.append(len(items))
        return batch

    def cross_entropy(logits, labels):
        return torch.nn.functional.cross_entropy(logits, labels.long())

    torch.manual_seed(0)
    encoder = KimCNN(30, 8, n_filters=6, dropout=0.0)
    model = build_classifier("text", text_encoder=encoder, n_outputs=2, dropout=0.0)
    ds = ToyDataset(24, seed=6)
    h = fit(model, ds, None, loss=cross_entropy, epochs=8, patience=None, collate_fn=collate, **FIT)
    assert batches[:2] == [16, 8] and len(batches) == 16
    assert h.table["train_accuracy"].isna().all()  # not a per-label accuracy, so not reported
    assert h.table["train_loss"].iloc[-1] < 0.8 * h.table["train_loss"].iloc[0]


# --------------------------------------------------------------------------- run cache


def test_run_key_is_canonical():
    a = run_key({"lr": 1e-4, "epochs": 15, "frozen": ("conv1", "layer1")}, "abc")
    b = run_key({"frozen": ["conv1", "layer1"], "epochs": 15, "lr": 0.0001}, "abc")
    assert a == b and len(a) == 64
    assert run_key({"lr": 1e-3, "epochs": 15, "frozen": ["conv1", "layer1"]}, "abc") != a
    assert run_key({"lr": 1e-4, "epochs": 15, "frozen": ["conv1", "layer1"]}, "abd") != a
    with pytest.raises(TypeError, match="not JSON-able"):
        run_key({"model": object()}, "abc")


def test_fingerprint_table_sees_every_change():
    df = pd.DataFrame({"id": ["a", "b", "c"], "label": [0.0, 1.0, np.nan], "extra": [1, 2, 3]})
    fp = fingerprint_table(df, ["id", "label"])
    assert fp == fingerprint_table(df.copy(), ["id", "label"])
    assert fp == fingerprint_table(df.assign(extra=[9, 9, 9]), ["id", "label"])  # unused column
    assert fp != fingerprint_table(df.assign(label=[0.0, 1.0, 1.0]), ["id", "label"])
    assert fp != fingerprint_table(df.iloc[::-1], ["id", "label"])
    assert fp != fingerprint_table(df.iloc[:2], ["id", "label"])
    assert fp != fingerprint_table(df.astype({"label": "float32"}), ["id", "label"])
    with pytest.raises(KeyError, match="missing_col"):
        fingerprint_table(df, ["missing_col"])


def test_run_store_round_trip_and_reuse(tmp_path):
    store = RunStore(tmp_path)
    params = {"model": "text", "lr": 1e-3}
    key = run_key(params, "data")
    assert not store.is_done("text-bce", key)
    train = ToyDataset(16)
    calls = []

    def work(checkpoint_dir):
        calls.append(checkpoint_dir)
        torch.manual_seed(0)
        model = make_model("text")
        h = fit(model, train, train, loss="bce", epochs=2, checkpoint_dir=checkpoint_dir, **FIT)
        p = predict(model, train, device="cpu", progress=False)
        return {"metrics": {"auroc": 0.9, "n": np.int64(16)}, "predictions": p, "history": h,
                "model": model}  # fmt: skip

    res = store.get_or_run("text-bce", params, "data", work)
    assert len(calls) == 1 and not calls[0].exists()  # checkpoint dropped once saved
    assert store.is_done("text-bce", key)
    again = store.get_or_run("text-bce", params, "data", work)
    assert len(calls) == 1  # reused, not retrained
    assert again.metrics == {"auroc": 0.9, "n": 16}
    assert set(again.predictions) == {"probs", "labels", "logits"}
    assert np.array_equal(again.predictions["probs"], res.predictions["probs"])
    assert list(again.history["epoch"]) == [1, 2]
    assert again.params == {**params, "data": "data"}
    model = store.load_model("text-bce", key, make_model("text", seed=7))
    p = predict(model, train, device="cpu", progress=False)
    assert np.array_equal(p.probs, again.predictions["probs"])
    assert store.runs()["name"].tolist() == ["text-bce"]


def test_unfinished_or_damaged_runs_are_not_reused(tmp_path):
    store = RunStore(tmp_path)
    key = run_key({"a": 1}, "d")
    d = store.save_result("r", key, metrics={"x": 1.0}, predictions={"probs": np.zeros(3)})
    (d / "done.json").unlink()  # as if the process died before the last write
    assert not store.is_done("r", key)
    with pytest.raises(FileNotFoundError, match="not finished"):
        store.load_result("r", key)
    store.save_result("r", key, metrics={"x": 1.0})
    (d / "params.json").write_text(json.dumps({"key": "0" * 64, "params": {}}))
    with pytest.raises(ValueError, match="is for key"):
        store.load_result("r", key)
    assert not list(d.glob(".*tmp*"))  # no temporary files left behind
    with pytest.raises(ValueError, match="plain folder name"):
        store.run_dir("../escape", key)
    with pytest.raises(TypeError, match="dtype object"):
        store.save_result(
            "r", key, metrics={}, predictions={"ids": np.array([{}, 1], dtype=object)}
        )


def test_collate_items_equals_default_collate():
    """fit's and predict's collate stacks with NumPy; it must give default_collate's batch,
    same dtypes and bytes, and hand anything it does not cover to default_collate."""
    from torch.utils.data import default_collate

    from mmcxr.train import collate_items

    items = [ToyDataset(6)[i] for i in range(6)]
    ours, ref = collate_items(items), default_collate(items)
    assert ours.keys() == ref.keys()
    for k in ref:
        assert ours[k].dtype == ref[k].dtype and torch.equal(ours[k], ref[k]), k
    pairs = [(torch.zeros(2), "a"), (torch.ones(2), "b")]  # not dicts: default_collate's
    assert list(collate_items(pairs)[1]) == ["a", "b"]
    with pytest.raises(RuntimeError):  # ragged images: default_collate's error, not a silent mess
        collate_items([{"x": torch.zeros(2)}, {"x": torch.zeros(3)}])


def test_pick_params_takes_the_keys_a_run_depends_on():
    assert pick_params({"a": 1, "b": 2, "c": 3}, ["a", "c"], run="x") == {
        "a": 1,
        "c": 3,
        "run": "x",
    }
    with pytest.raises(KeyError, match="not set"):
        pick_params({"a": 1}, ["a", "b"])


def test_scored_run_trains_once_and_scores_every_set(tmp_path):
    train = ToyDataset(32)
    out = scored_run(
        lambda: make_model("text"), train, train, {"train": train, "test": ToyDataset(16, seed=1)},
        init_seed=3, loss="bce", epochs=2, checkpoint_dir=tmp_path / "ckpt", **FIT,
    )  # fmt: skip
    assert set(out["metrics"]) == {"train", "test"} and len(out["history"].table) == 2
    acc, pred = accuracy(out["model"], ToyDataset(16, seed=1), device="cpu")
    assert out["metrics"]["test"] == acc and np.array_equal(out["predictions"]["probs"], pred.probs)
    assert acc == np.mean((pred.probs > 0.5) == (pred.labels > 0.5))


def test_split_curves_keep_every_epochs_held_out_accuracy_and_reuse_runs(tmp_path):
    store = RunStore(tmp_path)
    ds = ToyDataset(40)
    splits = [(np.arange(0, 30), np.arange(30, 40)), (np.arange(10, 40), np.arange(0, 10))]
    built = []

    def build(k):
        built.append(k)
        return make_model("text")

    def run():
        return split_curves(
            store, "curve-{split}-text", {"model": "text"}, "fp", splits, build,
            lambda idx: torch.utils.data.Subset(ds, idx), init_seed=0, loss="bce", epochs=2,
            **FIT,
        )  # fmt: skip

    results = run()
    assert built == [0, 1] and [r.path.parent.name for r in results] == ["curve-0-text",
                                                                          "curve-1-text"]  # fmt: skip
    for r in results:
        acc = r.history["val_accuracy"]
        assert len(acc) == 2 and r.metrics["mean_accuracy"] == pytest.approx(acc.mean())
        assert r.metrics["last"] == pytest.approx(acc.iloc[-1])
        assert r.params["split"] in (0, 1)
    assert run()[1].path == results[1].path and built == [0, 1], "finished splits are reused"
    model = load_run_model(results[0], make_model("text", seed=5))
    assert not model.training
    table = history_table(dict(zip([("a", 0), ("a", 1)], results, strict=True)), ("lr", "split"),
                          {"epoch": "epoch", "val_accuracy": "accuracy"})  # fmt: skip
    assert list(table.columns) == ["lr", "split", "epoch", "accuracy"] and len(table) == 4
    assert table["split"].tolist() == [0, 0, 1, 1]
    with pytest.raises(ValueError, match="parts"):
        history_table({"a": results[0]}, ("lr", "split"))
