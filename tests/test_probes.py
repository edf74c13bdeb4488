"""The linear probes: the signal check recovers planted pixel and word signals (and finds
none in noise), picks the common labels and rejects bad input; its summary counts only the
labels both probes scored."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from mmcxr import probes


def test_common_labels_keeps_the_labels_positive_often_enough_in_order():
    nan = np.nan
    t = pd.DataFrame(
        {
            "Edema": [1.0, 1.0, 1.0, 0.0, nan],
            "Cardiomegaly": [1.0, 1.0, -1.0, 1.0, nan],
            "Fracture": [nan, nan, nan, nan, 0.0],
        }
    )
    assert probes.common_labels(t, ["Edema", "Cardiomegaly", "Fracture"], 0.5) == [
        "Edema",
        "Cardiomegaly",
    ]
    assert probes.common_labels(t, ["Edema", "Cardiomegaly"], 0.7) == []
    assert probes.common_labels(t, ["Pneumonia", "Edema"], 0.1) == ["Edema"], "absent: skipped"


def planted_signal(n_patients: int = 150, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Two images per patient. Edema lights one pixel and is named in the text; Fracture is
    in the text only; Cardiomegaly is in neither (pure noise)."""
    rng = np.random.default_rng(seed)
    n = 2 * n_patients
    t = pd.DataFrame({"subject_id": np.repeat(np.arange(n_patients), 2), "study_id": np.arange(n)})
    edema = rng.random(n) < 0.3
    fracture = rng.random(n) < 0.3
    t["Edema"] = np.where(edema, 1.0, np.nan)
    t["Fracture"] = np.where(fracture, 1.0, 0.0)
    t["Cardiomegaly"] = np.where(rng.random(n) < 0.3, 1.0, np.nan)
    t.loc[t.index[:10], "Edema"] = -1.0  # uncertain rows: left out of the Edema probe
    words = ["lungs", "clear", "heart", "normal", "size", "seen"]
    t["report"] = [
        " ".join(rng.choice(words, 6))
        + (" edema present" if e else "")
        + (" rib fracture" if f else "")
        for e, f in zip(edema, fracture, strict=True)
    ]
    pixels = rng.normal(0.5, 0.1, size=(n, 8, 8)).astype(np.float32)
    pixels[edema, 3, 3] += 1.0
    return t, pixels


def test_signal_check_recovers_planted_signals():
    t, pixels = planted_signal()
    r = probes.signal_check(t, pixels, ["Edema", "Fracture", "Cardiomegaly"], progress=False)
    assert r.loc["Edema", "image_auroc"] > 0.95 and r.loc["Edema", "text_auroc"] > 0.95
    assert r.loc["Fracture", "text_auroc"] > 0.95
    assert 0.3 < r.loc["Fracture", "image_auroc"] < 0.7, "no pixel signal planted"
    assert 0.3 < r.loc["Cardiomegaly", "image_auroc"] < 0.7
    assert 0.3 < r.loc["Cardiomegaly", "text_auroc"] < 0.7
    edema = r.loc["Edema"]
    assert edema["train"] + edema["test"] == len(t) - 10, "uncertain rows are left out"
    assert r.loc["Fracture", "train"] + r.loc["Fracture", "test"] == len(t)
    assert 0.2 < r.loc["Fracture", "test"] / len(t) < 0.4
    again = probes.signal_check(t, pixels, ["Edema", "Fracture", "Cardiomegaly"], progress=False)
    pd.testing.assert_frame_equal(r, again)


def test_signal_check_picks_common_labels_and_rejects_bad_input():
    t, pixels = planted_signal(60)
    r = probes.signal_check(t, pixels, min_prevalence=0.2, progress=False)
    assert set(r.index) == {"Edema", "Fracture", "Cardiomegaly"}
    with pytest.raises(ValueError, match="table rows but"):
        probes.signal_check(t, pixels[:-1], progress=False)
    with pytest.raises(ValueError, match="no label is positive"):
        probes.signal_check(t, pixels, min_prevalence=0.9, progress=False)
    with pytest.raises(KeyError, match="findings"):
        probes.signal_check(t, pixels, ["Edema"], text_col="findings", progress=False)
    with pytest.raises(ValueError, match="test_share"):
        probes.signal_check(t, pixels, ["Edema"], test_share=1.0, progress=False)
    one_class = t.assign(Pleural=0.0)
    r = probes.signal_check(one_class, pixels, ["Pleural"], progress=False)
    assert np.isnan(r.loc["Pleural", "image_auroc"]), "one class: undefined, not a number"


def test_signal_numbers_count_only_labels_both_probes_scored():
    signal = pd.DataFrame(
        {"image_auroc": [0.6, 0.8, np.nan], "text_auroc": [0.9, 0.7, 0.95]},
        index=["Edema", "Fracture", "Pleural"],
    )
    numbers = probes.signal_numbers(signal)
    assert numbers["n_signal_labels"] == 2 and numbers["n_text_wins"] == 1
    assert numbers["image_auroc_mean"] == pytest.approx(0.7)
    assert (numbers["image_auroc_min"], numbers["image_auroc_max"]) == (0.6, 0.8)
    assert numbers["text_auroc_mean"] == pytest.approx(0.8)
    none = probes.signal_numbers(None)
    assert none["n_signal_labels"] == 0 and math.isnan(none["image_auroc_mean"])


def test_latent_probes_score_each_feature_set_on_the_test_items():
    rng = np.random.default_rng(0)
    y_train, y_test = np.arange(80) % 2, np.arange(40) % 2
    planted = {"a": 3.0, "noise": 0.0}

    def feats(y):
        return {k: rng.normal(size=(len(y), 3)) + s * y[:, None] for k, s in planted.items()}

    long = probes.latent_probes(feats(y_train), y_train, feats(y_test), y_test)
    assert list(long.columns) == ["subset", "case", "label", "prob"]
    assert long["subset"].unique().tolist() == ["a", "noise"] and len(long) == 80
    a = long[long["subset"] == "a"]
    assert a["case"].tolist() == list(range(40)) and a["label"].tolist() == y_test.tolist()
    assert ((a["prob"] > 0.5) == (a["label"] == 1)).mean() > 0.9
    with pytest.raises(KeyError, match="no test features"):
        probes.latent_probes(feats(y_train), y_train, {"a": feats(y_test)["a"]}, y_test)


def test_bag_of_ids_counts_words_but_padding_and_unknown():
    ids = np.array([[0, 1, 2, 2, 4], [3, 3, 3, 0, 9]])
    bag = probes.bag_of_ids(ids, 5)
    assert bag.tolist() == [[0, 0, 2, 0, 1], [0, 0, 0, 3, 0]], "id 9 is past the vocabulary"


def test_judges_read_a_planted_label_from_films_and_reports():
    rng = np.random.default_rng(0)
    y = np.arange(60) % 2
    images = rng.uniform(0, 1, (60, 6, 6))
    images[:, :2, :2] += y[:, None, None]
    ids = rng.integers(2, 6, (60, 5))
    ids[:, 0] = np.where(y == 1, 7, 8)
    judges = probes.train_judges(images, ids, y, 10, seed=0)
    assert ((judges.score_images(images) > 0.5) == y).mean() > 0.9
    assert ((judges.score_text(ids) > 0.5) == y).mean() > 0.9
    assert judges.bag(ids).shape == (60, 10)
