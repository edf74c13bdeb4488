"""ChestX-ray14 as users download it: NIH's v2020 table, Kaggle's image folders, the box
table's ``Infiltrate``, and the 1024-pixel frame the boxes are given in (also in the
synthetic cohort). The fixtures are hand-built in the release's form (tests/conftest.py)."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import build_cxr14_tree
from PIL import Image

from mmcxr.data import (
    CHESTXRAY14_LABELS,
    DataWarning,
    ImageCache,
    LabelValueError,
    MissingFileError,
    image_table,
    load_chestxray14,
    load_chestxray14_boxes,
    load_ground_truth,
    looks_like,
    parse_box,
    prepare,
    resolve_root,
    skipped_files,
)
from mmcxr.data.images import check_raster
from mmcxr.synth import generate
from mmcxr.synth.write_chestxray14 import TO_CXR14, png_up_filtered

V2020 = "Data_Entry_2017_v2020.csv"


def _load(root: Path, **kw) -> pd.DataFrame:
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)  # a clean tree warns about nothing
        return load_chestxray14(root, progress=False, **kw)


def _check(df: pd.DataFrame, truth: pd.DataFrame) -> None:
    assert df.image_id.tolist() == truth.image_id.tolist()
    assert df.subject_id.tolist() == truth.subject_id.tolist()
    assert df.sex.tolist() == truth.sex.tolist()
    assert df.path.tolist() == truth.path.tolist()
    assert df.split.tolist() == ["train_val", "train_val", "train_val", "test"]
    for r, lab in zip(df.itertuples(), truth.labels, strict=True):
        want = set() if lab == "No Finding" else set(lab.split("|"))
        assert {c for c in CHESTXRAY14_LABELS if df.loc[r.Index, c] == 1.0} == want
    assert df.height.tolist() == [1024] * 4 and df.width.tolist() == [1024] * 4


@pytest.mark.parametrize(
    ("entry", "layout"),
    [("Data_Entry_2017.csv", "nih"), (V2020, "nih"), (V2020, "kaggle")],
)
def test_table_names_and_image_layouts(tmp_path, entry, layout):
    root = tmp_path / "cxr14"
    truth = build_cxr14_tree(root, entry=entry, layout=layout)
    _check(_load(root), truth)
    if layout == "kaggle":
        assert {Path(p).parent.parent.name for p in truth.path} == {"images_001", "images_002"}
    # the chapters' entry point accepts the root, and the image cache finds every file
    assert looks_like("chestx-ray14", root)
    assert resolve_root("chestx-ray14", root, n=1, image_size=32) == root.resolve()
    table = image_table("chestx-ray14", root)
    assert (
        table.key.tolist() == truth.image_id.tolist() and table.path.tolist() == truth.path.tolist()
    )
    cache = ImageCache(
        prepare("chestx-ray14", root, tmp_path / "c", size=16, workers=0, progress=False)
    )
    assert len(cache) == 4 and cache.skipped.empty


def test_both_tables_reads_v2020_and_says_so(tmp_path):
    root = tmp_path / "cxr14"
    truth = build_cxr14_tree(root, entry=V2020)
    old = (root / V2020).read_text().replace("Patient Sex", "Patient Gender")
    (root / "Data_Entry_2017.csv").write_text(old.replace("Cardiomegaly|Emphysema", "Hernia"))
    with pytest.warns(DataWarning, match=f"both {V2020} and Data_Entry_2017.csv; reading {V2020}"):
        df = load_chestxray14(root, progress=False)
    _check(df, truth)  # the v2020 labels, not the 2017 copy's


def test_missing_image_in_kaggle_layout_is_named(tmp_path):
    root = tmp_path / "cxr14"
    truth = build_cxr14_tree(root, entry=V2020, layout="kaggle")
    Path(truth.path.iloc[2]).unlink()
    with pytest.raises(
        MissingFileError,
        match=r"images/00000002_000\.png: image listed in .*v2020\.csv not found.*images_001",
    ):
        load_chestxray14(root, progress=False)
    with pytest.warns(DataWarning, match="skipped 1"):
        df = load_chestxray14(root, on_error="skip", progress=False)
    assert df.image_id.tolist() == truth.image_id.drop(2).tolist()
    assert skipped_files(df).path.tolist() == [str(root.resolve() / "images" / "00000002_000.png")]


def test_image_in_two_folders_warns(tmp_path):
    root = tmp_path / "cxr14"
    truth = build_cxr14_tree(root, layout="kaggle")
    copy = root / "images_003" / "images" / "00000001_000.png"
    copy.parent.mkdir(parents=True)
    copy.write_bytes(Path(truth.path.iloc[0]).read_bytes())
    with pytest.warns(DataWarning, match=r"1 image name\(s\) occur in more than one folder"):
        df = load_chestxray14(root, progress=False)
    assert df.path.iloc[0] == truth.path.iloc[0]  # images_001 sorts first


def test_boxes_infiltrate_and_the_1024_frame(tmp_path):
    root = tmp_path / "cxr14"
    build_cxr14_tree(root)
    boxes = load_chestxray14_boxes(root)
    assert boxes.label.tolist() == ["Cardiomegaly", "Effusion", "Infiltration"]
    assert set(boxes.label) <= set(CHESTXRAY14_LABELS)
    df = _load(root).set_index("image_id")
    # the boxes join the label columns and lie inside the 1024 x 1024 images they annotate
    for b in boxes.itertuples():
        assert df.loc[b.image_id, b.label] == 1.0
        assert 0 <= b.x and b.x + b.w <= df.loc[b.image_id, "width"]
        assert 0 <= b.y and b.y + b.h <= df.loc[b.image_id, "height"]


def test_box_label_outside_the_vocabulary(tmp_path):
    root = tmp_path / "cxr14"
    build_cxr14_tree(root)
    path = root / "BBox_List_2017.csv"
    path.write_text(path.read_text().replace("Effusion,", "Effusions,"))
    with pytest.raises(
        LabelValueError,
        match=r"BBox_List_2017\.csv: row 3 \(Image Index 00000003_000\.png\).*'Effusions'",
    ):
        load_chestxray14_boxes(root)
    with pytest.warns(DataWarning, match="skipped 1"):
        boxes = load_chestxray14_boxes(root, on_error="skip")
    assert boxes.label.tolist() == ["Cardiomegaly", "Infiltration"]


# ---------------------------------------------------------------------------- the generator


def _source_label(cxr14: str) -> str:
    return (
        "Lung Lesion" if cxr14 in ("Mass", "Nodule") else {v: k for k, v in TO_CXR14.items()}[cxr14]
    )


def test_synthetic_root_is_in_the_1024_frame(tmp_path):
    """Whatever size the phantom is drawn at, the files and the boxes are in the release's
    1024-pixel frame (a reader that assumes it, as third-party code does, is right)."""
    roots = {
        px: generate(
            "chestx-ray14",
            tmp_path / f"px{px}",
            n=40,
            seed=0,
            image_size=px,
            workers=1,
            progress=False,
        )
        for px in (48, 96)
    }
    tables = {}
    for px, root in roots.items():
        df = load_chestxray14(root, progress=False)
        assert set(df.height) == {1024} and set(df.width) == {1024}
        with Image.open(df.path.iloc[0]) as im:
            assert im.size == (1024, 1024) and im.mode == "L"
        boxes = load_chestxray14_boxes(root)
        assert len(boxes) and set(boxes.label) <= set(CHESTXRAY14_LABELS)
        gt = load_ground_truth(root).set_index("image_id")
        assert set(gt.rows) == {1024} and set(gt["columns"]) == {1024}
        for b in boxes.itertuples():  # the table's box is the planted box, in the same frame
            x1, y1, x2, y2 = parse_box(gt.loc[b.image_id, f"box_{_source_label(b.label)}"])
            assert (b.x, b.y, b.w, b.h) == (x1, y1, x2 - x1, y2 - y1)
            assert 0 <= x1 < x2 <= 1024 and 0 <= y1 < y2 <= 1024
        tables[px] = boxes
    both = tables[48].merge(tables[96], on=["image_id", "label"], suffixes=("_48", "_96"))
    assert len(both) == len(tables[48]) > 0
    for c in ("x", "y", "w", "h"):  # the same box, not one at half the scale of the other
        assert (both[f"{c}_48"] - both[f"{c}_96"]).abs().max() < 0.1 * 1024


def test_png_writer_round_trips_exactly():
    img = np.random.default_rng(0).integers(0, 256, size=(37, 53), dtype=np.uint8)
    data = png_up_filtered(img)
    with Image.open(io.BytesIO(data)) as im:
        assert im.format == "PNG" and im.mode == "L" and im.size == (53, 37)
        np.testing.assert_array_equal(np.asarray(im), img)
    with pytest.raises(ValueError, match="2-D uint8"):
        png_up_filtered(np.zeros((2, 2, 3), np.uint8))


def test_png_writer_output_passes_the_integrity_check(tmp_path):
    p = tmp_path / "x.png"
    p.write_bytes(png_up_filtered(np.full((8, 8), 7, np.uint8)))
    assert check_raster(p) == (8, 8)
