"""The MEEMS chapter's recipe: the four patient-disjoint splits, the cohort on a hand-made
table, run keys, the paper's metrics on known arrays, strata masks and the claims on
hand-made tables."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from mmcxr import evaluate, metrics
from mmcxr.chapters import meems as mm
from mmcxr.chapters import meems_reference as reference
from mmcxr.chapters import meems_results as mr
from mmcxr.data.splits import patient_split_shares
from mmcxr.models.captioner import caption_words
from mmcxr.runs import run_key


def _images(n_patients=120, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(n_patients):
        for k in range(int(rng.integers(1, 4))):
            nf = float(rng.random() < 0.4)
            row = {"subject_id": 1000 + p, "study_id": 5000 + 10 * p + k,
                   "dicom_id": f"d{p}-{k}", "path": f"p{p}/{k}.dcm",
                   "view": "PA" if k % 2 == 0 else "LATERAL",
                   "findings": "" if (p == 3 and k == 0) else f"finding text {p}",
                   "impression": "" if (p == 3 and k == 0) else "no acute process"}  # fmt: skip
            for c in mm.LABELS:
                row[c] = np.nan
            row["No Finding"] = 1.0 if nf else np.nan
            row["Edema"] = np.nan if nf else (1.0 if rng.random() < 0.5 else -1.0)
            rows.append(row)
    return pd.DataFrame(rows)


def test_split_shares_are_patient_disjoint_and_in_proportion():
    df = _images(400)
    shares = reference.split_shares()
    split = patient_split_shares(df, shares, seed=1)
    assert split.notna().all()
    per_patient = df.assign(split=split).groupby("subject_id")["split"].nunique()
    assert (per_patient == 1).all(), "a patient in two splits"
    got = split.value_counts(normalize=True)
    for name, share in shares.items():
        assert got.get(name, 0) == pytest.approx(share, abs=0.02)
    assert split.equals(patient_split_shares(df, shares, seed=1))  # deterministic
    assert not split.equals(patient_split_shares(df, shares, seed=2))
    with pytest.raises(ValueError, match="sum to 1"):
        patient_split_shares(df, {"a": 0.5, "b": 0.6})
    with pytest.raises(KeyError):
        patient_split_shares(df.drop(columns="subject_id"), shares)


def test_cohort_keeps_frontal_films_with_text_and_labels_them():
    images = _images()
    shares = dict(zip(mm.SPLITS, (0.3, 0.4, 0.1, 0.2), strict=True))
    cohort = mm.build_cohort(images, shares=shares)
    t = cohort.table
    assert (t["view"] == "PA").all()
    assert not t["dicom_id"].eq("d3-0").any(), "the film without report text is kept"
    assert list(cohort.flow["step"])[-1] == "with findings or impression text"
    nf = t["No Finding"] == 1.0
    assert (t.loc[nf, "finding"] == 0).all() and (t.loc[~nf, "finding"] == 1).all()
    # uncertain (-1) counts as negative (U-zeros)
    assert (t["y_Edema"] == (t["Edema"] == 1.0)).all()
    assert cohort.targets("14-label").shape == (len(t), 14)
    assert set(t["split"]) == set(mm.SPLITS)
    assert t.groupby("subject_id")["split"].nunique().max() == 1
    table = mm.split_table(cohort)
    assert table["images"].sum() == len(t)
    assert table.loc["D_embedding", "paper images"] == 206_888
    with pytest.raises(ValueError, match="shares must name"):
        mm.build_cohort(images, shares={"train": 1.0})
    with pytest.raises(ValueError, match="lacks columns"):
        mm.build_cohort(images.drop(columns="impression"), shares=shares)
    with pytest.raises(ValueError, match="task"):
        cohort.targets("3-label")


def _params(**kw):
    p = {k: 1 for part in mm._KEYS.values() for k in part}
    p.update(kw)
    return p


def test_run_keys_depend_only_on_what_a_run_reads():
    def keys(p):
        return {s: run_key(mm.run_config(s, p, "binary"), "data") for s in
                ("extractor", "captioner", "meems", "baseline")}  # fmt: skip

    base = keys(_params())
    changed = lambda new: {s for s in base if new[s] != base[s]}  # noqa: E731
    assert changed(keys(_params(vocab_size=7))) == {"captioner", "meems"}
    assert changed(keys(_params(classifier_epochs=9))) == {"meems"}
    assert changed(keys(_params(baseline_epochs=9))) == {"baseline"}
    assert changed(keys(_params(extractor_epochs=9))) == {"extractor", "captioner", "meems"}
    assert changed(keys(_params(lr=0.5))) == set(base)
    assert run_key(mm.run_config("meems", _params(), "binary"), "d") != run_key(
        mm.run_config("meems", _params(), "14-label"), "d")  # fmt: skip
    with pytest.raises(KeyError):
        mm.run_config("meems", {})
    with pytest.raises(ValueError):
        mm.run_config("decoder", _params())


def test_paper_metrics_on_known_arrays():
    y = np.array([0, 0, 1, 1, 1])
    p = np.array([0.6, 0.1, 0.7, 0.4, 0.9])
    assert metrics.false_negative_rate(y, p) == pytest.approx(1 / 3)
    assert metrics.false_positive_rate(y, p) == pytest.approx(1 / 2)
    assert metrics.mean_auroc(y, p) == pytest.approx(5 / 6)
    # the binary micro AUC flattens [1 - y, y] against [1 - p, p]
    flat_y, flat_p = np.r_[1 - y, y], np.r_[1 - p, p]
    assert metrics.micro_auroc(y, p) == pytest.approx(metrics.mean_auroc(flat_y, flat_p))
    Y = np.stack([y, 1 - y, np.zeros(5)], 1)  # the third label has no positive: left out
    P = np.stack([p, 1 - p, p], 1)
    assert metrics.mean_auroc(Y, P) == pytest.approx(5 / 6)


def test_worst_error_cluster_finds_the_planted_slice():
    rng = np.random.default_rng(0)
    a = rng.normal([5, 0], 0.1, (20, 2))  # a tight group the model gets wrong
    b = rng.normal([0, 5], 0.1, (40, 2))
    errors = np.r_[np.full(20, 0.8), np.full(40, 0.1)]
    labels, worst = evaluate.worst_error_cluster(np.r_[a, b], errors, k=2, seed=0)
    assert (labels[:20] == worst).all() and (labels[20:] != worst).all()
    with pytest.raises(ValueError, match="clusters"):
        evaluate.worst_error_cluster(a[:2], errors[:2], k=3)


def test_primary_label_and_strata_masks():
    Y = np.zeros((3, 14))
    Y[0, mm.LABELS.index("No Finding")] = 1
    Y[1, [mm.LABELS.index("Edema"), mm.LABELS.index("Atelectasis")]] = 1
    Y[2, mm.LABELS.index("Support Devices")] = 1
    assert [mm.LABELS[j] for j in mr.primary_label(Y)] == ["No Finding", "Atelectasis",
                                                          "Support Devices"]  # fmt: skip
    test = pd.DataFrame({"dicom_id": ["a", "b", "c", "d"], "y_Pneumothorax": [1, 1, 0, 0],
                         "y_Lung Lesion": [0, 0, 1, 0], "finding": [1, 1, 1, 0]})  # fmt: skip
    gt = pd.DataFrame({"dicom_id": ["a", "b", "c", "d"], "portable": [True, False, False, True],
                       "stratum_pneumothorax_chest_tube": [1.0, 0.0, np.nan, np.nan],
                       "stratum_lesion": [np.nan, np.nan, "subtle", np.nan]})  # fmt: skip
    masks = mr.strata_masks(test, gt)
    out, easy, hard, neg = masks[mr.STRATA[0][0]]
    assert out == "Pneumothorax" and list(easy) == [1, 0, 0, 0] and list(hard) == [0, 1, 0, 0]
    assert list(neg) == [0, 0, 1, 1]
    _, easy, hard, _ = masks[mr.STRATA[1][0]]
    assert list(easy) == [0, 0, 0, 0] and list(hard) == [0, 0, 1, 0]
    _, easy, hard, neg = masks[mr.STRATA[2][0]]
    assert list(hard) == [1, 0, 0, 1] and neg is None


def _holds(verdicts: pd.DataFrame, claim: str) -> bool | None:
    """A verdict as Python's True, False or None (a column of decided claims is numpy bool)."""
    x = verdicts.loc[claim, "holds"]
    return None if x is None else bool(x)


def _ours(binary=(0.70, 0.80), labels14=(0.80, 0.40), fnr=(0.3, 0.1), fpr=(0.3, 0.5)):
    rows = []
    for model, k in (("baseline", 0), ("meems", 1)):
        b = {
            "auroc": binary[0] + 0.05 * k,
            "f1": binary[1] + 0.01 * k,
            "fnr": fnr[k],
            "fpr": fpr[k],
        }
        rows.append({"task": "binary", "model": model, **b})
        rows.append({"task": "14-label", "model": model, "auroc": labels14[0] + 0.02 * k,
                     "f1": labels14[1] + 0.01 * k})  # fmt: skip
    return pd.DataFrame(rows)


def test_claims_hold_on_the_papers_numbers_where_it_gives_them():
    v = mr.evaluate_claims(_ours()).set_index("id")
    assert v.loc["meems-beats-baseline-binary", "holds"]
    assert v.loc["meems-beats-baseline-14", "holds"]
    assert v.loc["meems-lower-fnr-higher-fpr", "holds"]
    paper = mr.evaluate_claims(_ours()).set_index("id")["paper_evidence"]
    assert "0.76" in paper["meems-beats-baseline-binary"]
    # numbers the paper never gives leave the claim undecided on both sides here
    assert _holds(v, "no-finding-separates") is None
    assert paper["no-finding-separates"].startswith("not evaluated")


def test_claims_fail_with_the_numbers_that_decide_them():
    ours = _ours(fnr=(0.1, 0.3))
    ours.loc[(ours["task"] == "binary") & (ours["model"] == "meems"), "auroc"] = 0.6
    v = mr.evaluate_claims(ours).set_index("id")
    assert _holds(v, "meems-beats-baseline-binary") is False
    assert "0.6" in v.loc["meems-beats-baseline-binary", "ours"]
    assert _holds(v, "meems-lower-fnr-higher-fpr") is False


def test_embedding_strata_and_slice_claims_on_hand_made_tables():
    per_class = pd.DataFrame({"train positives": [50, 2, 30], "test positives": [5, 1, 9],
                              "ResNet baseline": [0.7, 0.6, 0.8], "MEEMS": [0.8, 0.55, 0.7]},
                             index=["Edema", "Fracture", "No Finding"])  # fmt: skip
    strata = pd.DataFrame([
        {"strata": mr.STRATA[0][0], "model": m, "stratum": s, "auroc": a}
        for m, s, a in (("baseline", "easy", 0.9), ("baseline", "hard", 0.6),
                        ("meems", "easy", 0.85), ("meems", "hard", 0.75))])  # fmt: skip
    slices = pd.DataFrame({"model": ["baseline", "meems", "meems"],
                           "recovered": [0.0, 1.0, np.nan]})  # fmt: skip
    table = mr.claim_table(_ours(), separation={"probe_auroc": 0.9, "silhouette": 0.1},
                           per_class=per_class, strata=strata, slices=slices)  # fmt: skip
    v = mr.evaluate_claims(table).set_index("id")
    assert v.loc["no-finding-separates", "holds"]
    assert v.loc["minority-not-captured", "holds"]  # Fracture 0.55 < Edema 0.8
    assert "Fracture" in v.loc["minority-not-captured", "ours"]
    assert v.loc["meems-reduces-stratification", "holds"]  # gap 0.10 < 0.30
    assert _holds(v, "slices-recover-strata") is False  # baseline 0 of 1
    weak = mr.claim_table(_ours(), separation={"probe_auroc": 0.6, "silhouette": 0.2})
    assert _holds(mr.evaluate_claims(weak).set_index("id"), "no-finding-separates") is False
    assert math.isclose(sum(reference.split_shares().values()), 1.0)


def test_calibration_is_registered_against_the_papers_baseline():
    from mmcxr.calibration import CALIBRATIONS

    c = CALIBRATIONS[mm.SLUG]
    assert c.knob == "synth_image_difficulty" and c.knob in mm.PARAMETERS
    assert c.target == reference.RESULTS[("binary", "baseline")]["auroc"] == 0.76
    # the curve depends on what the baseline run reads, and its seed is what varies
    assert "seed" not in c.keys and {"split_shares", "baseline_epochs", "synth_n"} <= set(c.keys)
    assert set(c.keys) <= set(mm.PARAMETERS)


def test_constant_caption_scores_are_those_of_the_most_common_report():
    images = _images(200)
    for i in range(len(images)):  # one report much more common than the rest
        if i % 3:
            images.loc[i, ["findings", "impression"]] = ["The lungs are clear.", "No change."]
    cohort = mm.build_cohort(images, shares=dict(zip(mm.SPLITS, (0.4, 0.2, 0.2, 0.2), strict=True)))
    params = {"max_words": 30}
    val = cohort.rows("val")["text"].tolist()
    got = mm.constant_caption_scores(cohort, params)
    common = "the lungs are clear no change".split()
    assert got == mm.score_captions([common] * len(val), val, params)
    same = mm.score_captions([caption_words(t) for t in val], val, params)
    assert same["iou"] == 1.0 and same["label_agreement"] == 1.0
    assert 0 <= got["iou"] < 1 and 0 <= got["bleu4"] < 1


def test_hit_sentence_quotes_the_rate_or_says_there_is_none():
    from mmcxr.chapters import meems_captions as mc

    none = mc.hit_sentence(pd.DataFrame(columns=["finding", "word", "mass", "chance mass", "hit"]))
    assert none.startswith("No held-out caption")
    hits = pd.DataFrame({"finding": ["Edema"] * 4, "word": ["edema"] * 4,
                         "mass": [0.5, 0.3, 0.2, 0.2], "chance mass": [0.1] * 4,
                         "hit": [1.0, 1.0, 0.0, 0.0]})  # fmt: skip
    text = mc.hit_sentence(hits)
    assert "For 4 held-out films" in text and "0.500" in text and "0.300" in text


def test_rotating_pca_is_a_self_contained_player():
    from mmcxr import plots

    rng = np.random.default_rng(0)
    emb, labels = rng.normal(size=(40, 6)), rng.integers(0, 3, 40)
    html = plots.animate_embedding_pca(emb, labels, ["a", "b", "c"], frames=2, size=2, dpi=30)
    assert "<script" in html and html.count("data:image/png;base64") == 2
    with pytest.raises(ValueError, match="frames"):
        plots.animate_embedding_pca(emb, labels, ["a", "b", "c"], frames=1)
