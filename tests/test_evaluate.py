"""Bimodal sensitivity on models that use one modality only, and prediction-table intervals."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from mmcxr import evaluate as V
from mmcxr.metrics import METRIC_NAMES, ci_wide, metrics_with_ci, sharpness


class PairedDataset(Dataset):
    """Stand-in for MultimodalDataset: both modalities carry the label; shuffled() permutes one."""

    def __init__(self, images, ids, labels):
        self.images, self.ids, self.labels = images, ids, labels

    @classmethod
    def make(cls, n=400, seed=0):
        g = torch.Generator().manual_seed(seed)
        labels = (torch.rand(n, generator=g) < 0.4).float()
        images = torch.rand(n, 1, 8, 8, generator=g) * 0.5 + labels[:, None, None, None] * 0.5
        ids = torch.randint(3, 10, (n, 6), generator=g)
        ids[:, 2] = torch.where(labels > 0, 2, 1)  # token 2 = "pneumonia", 1 = "clear"
        return cls(images, ids, labels)

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return {"image": self.images[i], "input_ids": self.ids[i], "label": self.labels[i]}

    def shuffled(self, modality, seed):
        perm = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))
        if modality == "image":
            return PairedDataset(self.images[perm], self.ids, self.labels)
        if modality == "text":
            return PairedDataset(self.images, self.ids[perm], self.labels)
        raise ValueError(modality)


class TextOnly(nn.Module):
    def forward(self, batch):
        return 4.0 * (batch["input_ids"] == 2).any(1).float() - 2.0 + 0.0 * batch["image"].sum()


class ImageOnly(nn.Module):
    def forward(self, batch):
        return 10.0 * (batch["image"].mean((1, 2, 3)) - 0.5)


def predict(model, ds):
    probs, labels = [], []
    with torch.no_grad():
        for batch in DataLoader(ds, batch_size=128):
            probs.append(torch.sigmoid(model(batch)))
            labels.append(batch["label"])
    return torch.cat(probs), torch.cat(labels)


def test_text_only_model_depends_on_text_only():
    ds = PairedDataset.make()
    t = V.bimodal_sensitivity(TextOnly(), ds, predict, seed=0)
    assert list(t.index) == ["normal", "image shuffled", "text shuffled"]
    assert list(t.columns) == ["shuffled", *METRIC_NAMES]
    assert t["shuffled"].tolist() == ["none", "image", "text"]
    assert t.loc["normal", "auroc"] == 1.0
    metric_cols = list(METRIC_NAMES)
    pd.testing.assert_series_equal(
        t.loc["image shuffled", metric_cols], t.loc["normal", metric_cols], check_names=False
    )
    assert t.loc["text shuffled", "auroc"] == pytest.approx(0.5, abs=0.08)


def test_image_only_model_depends_on_image_only():
    ds = PairedDataset.make(seed=1)
    t = V.bimodal_sensitivity(ImageOnly(), ds, predict, seed=3)
    assert t.loc["normal", "auroc"] > 0.95
    assert t.loc["image shuffled", "auroc"] == pytest.approx(0.5, abs=0.08)
    metric_cols = list(METRIC_NAMES)
    pd.testing.assert_series_equal(
        t.loc["text shuffled", metric_cols], t.loc["normal", metric_cols], check_names=False
    )


def test_bimodal_sensitivity_accepts_prediction_objects_and_bootstraps():
    @dataclass
    class Predictions:
        probs: np.ndarray
        labels: np.ndarray

    def predict_obj(model, ds):
        p, y = predict(model, ds)
        return Predictions(p.numpy(), y.numpy())

    ds = PairedDataset.make(n=200)
    t = V.bimodal_sensitivity(TextOnly(), ds, predict_obj, modalities=("text",), n_boot=100)
    assert list(t.index) == ["normal", "text shuffled"]
    assert {"auroc", "auroc_lo", "auroc_hi"} <= set(t.columns)
    row = t.loc["text shuffled"]
    assert row["auroc_lo"] <= row["auroc"] <= row["auroc_hi"]


def test_bimodal_sensitivity_multilabel_uses_macro():
    class TwoLabel(nn.Module):
        def forward(self, batch):
            t = 4.0 * (batch["input_ids"] == 2).any(1).float() - 2.0
            return torch.stack([t, -t], 1)

    def predict2(model, ds):
        p, y = predict(model, ds)
        return p, torch.stack([y, 1 - y], 1)

    t = V.bimodal_sensitivity(TwoLabel(), PairedDataset.make(n=200), predict2)
    assert t.loc["normal", "auroc"] == 1.0
    assert t.loc["text shuffled", "auroc"] == pytest.approx(0.5, abs=0.12)


def test_shuffle_that_moves_labels_is_rejected():
    class Leaky(PairedDataset):
        def shuffled(self, modality, seed):
            perm = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))
            return Leaky(self.images, self.ids[perm], self.labels[perm])

    base = PairedDataset.make(n=50)
    ds = Leaky(base.images, base.ids, base.labels)
    with pytest.raises(ValueError, match="labels changed"):
        V.bimodal_sensitivity(TextOnly(), ds, predict, modalities=("text",))
    with pytest.raises(ValueError, match="modality"):
        V.bimodal_sensitivity(TextOnly(), ds, predict, modalities=("audio",))
    with pytest.raises(TypeError, match="predict_fn"):
        V.bimodal_sensitivity(TextOnly(), ds, lambda m, d: 0.5)


@pytest.mark.slow
def test_predictions_table_and_ci():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    good = np.clip(y * 0.6 + rng.normal(0.2, 0.15, 300), 0, 1)
    bad = rng.random(300)
    table = V.predictions_table({"good": (good, y), "bad": (bad, y)})
    assert list(table.columns) == ["run", "case", "label", "prob"] and len(table) == 600
    ci = V.predictions_ci(table, n_boot=200)
    assert list(ci.index) == ["good", "bad"]
    for m in METRIC_NAMES:
        assert (ci[f"{m}_lo"] <= ci[m]).all() and (ci[m] <= ci[f"{m}_hi"]).all()
    assert ci.loc["good", "auroc_lo"] > ci.loc["bad", "auroc_hi"]  # clearly separated runs
    assert ci.loc["good", "n"] == 300 and ci.loc["good", "positives"] == y.sum()
    # each run is metrics_with_ci on its own rows, with the same seed
    alone = ci_wide({"bad": metrics_with_ci(y, bad, n_boot=200, seed=0)})
    pd.testing.assert_series_equal(
        ci.loc["bad", alone.columns], alone.loc["bad"], check_dtype=False
    )
    with pytest.raises(KeyError, match="prob"):
        V.predictions_ci(table.drop(columns="prob"))


def test_generation_scores_judge_coherence_and_relative_sharpness():
    rng = np.random.default_rng(0)
    y = np.array([0, 1] * 10)
    sharp = rng.uniform(0, 1, (20, 8, 8))
    flat = np.full((20, 8, 8), 0.5)
    ids = np.where(y[:, None] == 1, 5, 6) * np.ones((20, 4), dtype=int)
    rows = V.generation_scores(
        y,
        {"F": sharp, "L": flat, "T": ids},
        {"F": lambda x: x[:, 0, 0], "T": lambda t: (t[:, 0] == 5).astype(float)},
        {"F": float(sharpness(sharp).mean()), "L": 1.0},
    )
    assert [r["modality"] for r in rows] == ["F", "L", "T"]
    f, lat, t = rows
    assert f["sharpness"] == 1.0 and 0.0 <= f["coherence"] <= 1.0
    assert lat["sharpness"] == 0.0 and np.isnan(lat["coherence"]), "no judge: NaN"
    assert t["coherence"] == 1.0 and np.isnan(t["sharpness"]), "no real sharpness: NaN"


def test_generation_scores_ci_bracket_the_point_values_and_pair_the_items():
    rng = np.random.default_rng(0)
    y = np.array([0, 1] * 30)
    real = rng.uniform(0, 1, (60, 8, 8))
    blurred = 0.5 + 0.5 * (real - 0.5)  # half the contrast: half the edge strength
    ids = np.where(y[:, None] == 1, 5, 6) * np.ones((60, 4), dtype=int)
    judges = {"F": lambda x: x[:, 0, 0] + y, "T": lambda t: (t[:, 0] == 5).astype(float)}
    samples = {"F": blurred, "L": real, "T": ids}
    plain = V.generation_scores(y, samples, judges, {"F": float(sharpness(real).mean())})
    rows = V.generation_scores_ci(
        y, samples, judges, {"F": sharpness(real), "L": sharpness(real)}, n_boot=200
    )
    f, lat, t = rows
    assert f["sharpness"] == pytest.approx(plain[0]["sharpness"]) == pytest.approx(0.5)
    assert f["coherence"] == pytest.approx(plain[0]["coherence"])
    for r, v in ((f, "sharpness"), (f, "coherence"), (lat, "sharpness")):
        assert r[f"{v}_lo"] <= r[v] <= r[f"{v}_hi"]
    # a resample draws the same items' real and generated films: a constant ratio stays exact
    assert f["sharpness_lo"] == pytest.approx(0.5) and f["sharpness_hi"] == pytest.approx(0.5)
    assert lat["sharpness_lo"] == pytest.approx(1.0) and lat["sharpness_hi"] == pytest.approx(1.0)
    assert np.isnan(lat["coherence"]) and np.isnan(lat["coherence_lo"]), "no judge: NaN"
    assert t["coherence"] == t["coherence_lo"] == 1.0 and np.isnan(t["sharpness_hi"])
