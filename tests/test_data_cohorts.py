"""Cohort filters on a hand-built table, subsampling ratios, leak-free patient splits."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mmcxr.data import (
    CohortFlow,
    DataWarning,
    binary_cohort,
    frontal_only,
    one_per_patient,
    patient_split,
    select_pa_erect_nonportable,
    stratified_splits,
    subsample_ratio,
)

NAN = np.nan


@pytest.fixture
def table():
    rows = [  # subject, study, view, orientation, procedure, Pneumonia, No Finding
        (1, 11, "PA", "Erect", "CHEST (PA AND LAT)", 1.0, NAN),  # pos
        (1, 11, "LATERAL", "Erect", "CHEST (PA AND LAT)", 1.0, NAN),  # lateral
        (1, 12, "PA", "Erect", "CHEST (PA AND LAT)", NAN, 1.0),  # neg, same patient
        (2, 21, "PA", "Erect", "CHEST (PA AND LAT)", -1.0, NAN),  # uncertain: out
        (3, 31, "AP", "Erect", "CHEST (PORTABLE AP)", 1.0, NAN),  # AP portable
        (4, 41, "PA", "Recumbent", "CHEST (PA AND LAT)", NAN, 1.0),  # recumbent
        (5, 51, "PA", "erect", "CHEST (PORTABLE PA)", NAN, 1.0),  # portable PA
        (6, 61, "PA", "Erect", "CHEST (PA AND LAT)", 0.0, 1.0),  # neg
        (7, 71, "pa", "Erect", "CHEST (SINGLE VIEW)", NAN, 1.0),  # neg (case)
        (8, 81, "PA", "Erect", "CHEST (PA AND LAT)", 1.0, 1.0),  # contradictory
        (9, 91, "LL", "Erect", "CHEST (PA AND LAT)", NAN, 1.0),  # lateral
        (10, 101, "AP", "Recumbent", "CHEST (PORTABLE AP)", NAN, 1.0),  # AP
    ]
    return pd.DataFrame(
        rows,
        columns=[
            "subject_id",
            "study_id",
            "view",
            "orientation",
            "procedure",
            "Pneumonia",
            "No Finding",
        ],
    )


def test_pa_erect_nonportable(table):
    out = select_pa_erect_nonportable(table)
    assert out.study_id.tolist() == [11, 12, 21, 61, 71, 81]


def test_frontal_only(table):
    assert frontal_only(table).study_id.tolist() == [11, 12, 21, 31, 41, 51, 61, 71, 81, 101]
    openi = pd.DataFrame({"view": ["Frontal", "Lateral", None]})
    with pytest.warns(DataWarning, match="1 of 3"):
        assert len(frontal_only(openi)) == 1


def test_binary_cohort(table):
    out = binary_cohort(table)
    assert out.study_id.tolist() == [11, 11, 12, 31, 41, 51, 61, 71, 91, 101]
    assert out.label.tolist() == [1, 1, 0, 1, 0, 0, 0, 0, 0, 0]
    with pytest.raises(KeyError, match="Edema"):
        binary_cohort(table, positive="Edema")


def test_one_per_patient(table):
    out = one_per_patient(table, seed=0)
    assert out.subject_id.is_unique and set(out.subject_id) == set(table.subject_id)
    counts = {one_per_patient(table, seed=s).index[0] for s in range(20)}
    assert counts == {0, 1, 2}  # patient 1's row is drawn at random ...
    pd.testing.assert_frame_equal(
        one_per_patient(table, 3), one_per_patient(table, 3)
    )  # ... by seed
    by_study = one_per_patient(table, seed=0, keep="study")
    assert by_study.groupby("subject_id").study_id.nunique().max() == 1
    assert len(by_study) in (len(table) - 1, len(table) - 2)  # study 11 has two rows


def test_cohort_flow_counts(table):
    flow = CohortFlow(table, "all images")
    df = flow.apply("PA, erect, non-portable", select_pa_erect_nonportable)
    df = flow.apply("pneumonia vs no finding", binary_cohort)
    df = flow.apply("one per patient", one_per_patient, seed=0)
    t = flow.table
    assert t.step.tolist() == [
        "all images",
        "PA, erect, non-portable",
        "pneumonia vs no finding",
        "one per patient",
    ]
    assert t.rows.tolist() == [12, 6, 4, 3]
    assert t.patients.tolist() == [10, 5, 3, 3]
    assert t.studies.tolist() == [11, 6, 4, 3]
    assert t.removed.tolist() == [0, 6, 2, 1]
    assert t.positives.tolist()[2:] == [1, int(df.label.sum())]
    assert pd.isna(t.positives.iloc[0])
    assert "one per patient" in repr(flow)


def test_subsample_hits_ratio():
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"label": (rng.random(1000) < 0.1).astype(int)})
    n_pos = int(df.label.sum())
    out = subsample_ratio(df, "label", neg_frac=0.75, seed=1)
    assert int(out.label.sum()) == n_pos  # every positive kept
    assert (out.label == 0).sum() == 3 * n_pos
    pd.testing.assert_frame_equal(out, subsample_ratio(df, "label", 0.75, seed=1))
    assert not out.index.equals(subsample_ratio(df, "label", 0.75, seed=2).index)
    # too few negatives for the ratio: keep all negatives, sample positives instead
    few = pd.DataFrame({"label": [1] * 50 + [0] * 30})
    out = subsample_ratio(few, "label", neg_frac=0.75, seed=0)
    assert (out.label == 0).sum() == 30 and (out.label == 1).sum() == 10
    with pytest.raises(ValueError, match="neg_frac"):
        subsample_ratio(df, "label", neg_frac=1.0)


def _patients(n_patients=300, seed=0):
    rng = np.random.default_rng(seed)
    per = rng.integers(1, 6, n_patients)
    subj = np.repeat(np.arange(10_000_000, 10_000_000 + n_patients), per)
    return pd.DataFrame({"subject_id": subj, "label": (rng.random(len(subj)) < 0.2).astype(int)})


def test_patient_split_never_leaks_and_is_deterministic():
    df = _patients()
    split = patient_split(df, (0.8, 0.1, 0.1), seed=3)
    assert split.index.equals(df.index) and set(split) == {"train", "val", "test"}
    assert df.assign(s=split).groupby("subject_id").s.nunique().max() == 1
    n = df.subject_id.nunique()
    per_split = df.assign(s=split).groupby("s").subject_id.nunique()
    assert (
        (per_split["train"], per_split["val"], per_split["test"])
        == (240, 30, 30)
        == (0.8 * n, 0.1 * n, 0.1 * n)
    )
    pd.testing.assert_series_equal(split, patient_split(df, (0.8, 0.1, 0.1), seed=3))
    shuffled = df.sample(frac=1.0, random_state=0)
    pd.testing.assert_series_equal(
        patient_split(shuffled, seed=3).sort_index(), split.sort_index()
    )  # row order does not matter
    assert not split.equals(patient_split(df, seed=4))


def test_patient_split_stratified():
    df = _patients(400, seed=1)
    split = patient_split(df, (0.6, 0.2, 0.2), seed=0, stratify="label")
    assert df.assign(s=split).groupby("subject_id").s.nunique().max() == 1
    pat = df.groupby("subject_id").label.agg(lambda s: s.value_counts().sort_index().idxmax())
    pat_split = df.assign(s=split).groupby("subject_id").s.first()
    rates = pat.groupby(pat_split).mean()
    assert rates.max() - rates.min() < 0.03
    with pytest.raises(ValueError, match="fractions"):
        patient_split(df, (0.5, 0.2, 0.2))


def test_frontal_only_says_when_it_drops_images_without_a_view():
    import warnings

    df = pd.DataFrame({"view": ["PA", "LATERAL", None, "", "Frontal"]})
    with pytest.warns(DataWarning, match="2 of 5 images have no view"):
        assert len(frontal_only(df)) == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(frontal_only(df.iloc[[0, 1, 4]])) == 2, "known views: no warning"


def test_stratified_splits_are_stratified_disjoint_and_reproducible():
    y = np.array([1] * 60 + [0] * 40)
    splits = stratified_splits(y, 3, 0.2, seed=1)
    assert len(splits) == 3
    for tr, te in splits:
        assert len(te) == 20 and not set(tr) & set(te) and len(tr) + len(te) == 100
        assert y[te].mean() == pytest.approx(0.6)
    again = stratified_splits(y, 3, 0.2, seed=1)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(splits, again, strict=True))
    assert not np.array_equal(splits[0][1], splits[1][1])
