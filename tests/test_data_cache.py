"""The image cache: pixel equality, resume, shards, corruption and staleness; the Dataset."""

from __future__ import annotations

import json
import os
import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

import mmcxr.data.cache as cache_mod
from mmcxr.cli import main as cli_main
from mmcxr.data import (
    CacheError,
    DataWarning,
    ImageCache,
    ImageDecodeError,
    MissingFileError,
    MultimodalDataset,
    finalize,
    image_table,
    prepare,
    read_image,
    to_uint8,
)
from mmcxr.data.datasets import InMemoryViews, to_display

SIZE = 24


def _expected(table):
    return np.stack([to_uint8(read_image(p, SIZE)) for p in table.path])


def test_prepare_matches_read_image_and_resize(tmp_path, mimic_tree):
    root, truth = mimic_tree
    d = prepare("mimic-cxr", root, tmp_path / "c", size=SIZE, workers=0, progress=False)
    cache = ImageCache(d)
    table = image_table("mimic-cxr", root)
    assert list(cache.index.key) == list(table.key) and cache.size == SIZE
    got = cache.get(list(table.key))
    assert got.dtype == np.uint8 and got.shape == (len(table), SIZE, SIZE)
    np.testing.assert_array_equal(got, _expected(table))
    key = table.key.iloc[3]
    assert cache.row(key) == 3 and key in cache
    np.testing.assert_array_equal(cache.get(key)[0], got[3])
    g = cache.geometry(key)
    assert (g.height, g.width) == (SIZE, round(32 * SIZE / 40))
    man = json.loads((d / "manifest.json").read_text())
    assert man["complete"] and man["n"] == len(table) and man["dtype"] == "uint8"
    assert man["format"] == "mimic-cxr" and man["completed_rows"] == len(table)
    assert len(man["sha256"]) == 64 and cache.index.sha256.str.len().eq(64).all()
    with pytest.raises(KeyError, match="not in the image cache"):
        cache.get(["nope"])


def test_prepare_jpeg_uses_draft_path(tmp_path, mimic_jpg_tree):
    root, _ = mimic_jpg_tree
    d = prepare("mimic-cxr-jpg", root, tmp_path / "c", size=SIZE, workers=0, progress=False)
    table = image_table("mimic-cxr-jpg", root)
    np.testing.assert_array_equal(ImageCache(d).get(list(table.key)), _expected(table))


def test_selected_table_only(tmp_path, mimic_tree):
    root, truth = mimic_tree
    sel = truth[truth.view == "PA"][["dicom_id", "path"]]
    d = prepare("mimic-cxr", root, tmp_path / "c", size=SIZE, workers=0, table=sel, progress=False)
    cache = ImageCache(d)
    assert list(cache.index.key) == list(sel.dicom_id)
    with pytest.raises(CacheError, match="other images"):
        prepare("mimic-cxr", root, d, size=SIZE, workers=0, progress=False)
    with pytest.raises(CacheError, match=r"other settings \(size: 24 != 32"):
        prepare("mimic-cxr", root, d, size=32, workers=0, table=sel, progress=False)


def test_resume_after_interruption(tmp_path, mimic_tree, monkeypatch):
    root, _ = mimic_tree
    clean = prepare("mimic-cxr", root, tmp_path / "clean", size=SIZE, workers=0, progress=False)
    real = cache_mod.decode_image
    calls = []

    def dies_after_5(path, size):
        if len(calls) == 5:
            raise KeyboardInterrupt  # the job is killed mid-chunk
        calls.append(path)
        return real(path, size)

    monkeypatch.setattr(cache_mod, "decode_image", dies_after_5)
    d = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        prepare("mimic-cxr", root, d, size=SIZE, workers=0, chunk_size=2, progress=False)
    with pytest.raises(CacheError, match="incomplete cache: 4 of 12 rows done"):
        ImageCache(d)
    monkeypatch.setattr(cache_mod, "decode_image", lambda p, s: (calls.append(p), real(p, s))[1])
    calls.clear()
    prepare("mimic-cxr", root, d, size=SIZE, workers=0, chunk_size=2, progress=False)
    assert len(calls) == 12 - 4  # the 2 finished chunks were not decoded again
    assert (d / "images.u8").read_bytes() == (clean / "images.u8").read_bytes()
    assert ImageCache(d).manifest["sha256"] == ImageCache(clean).manifest["sha256"]


def test_shards_combine_to_the_same_cache(tmp_path, mimic_tree):
    root, _ = mimic_tree
    clean = prepare("mimic-cxr", root, tmp_path / "clean", size=SIZE, workers=0, progress=False)
    d = tmp_path / "sharded"
    for i in (2, 0):
        prepare("mimic-cxr", root, d, size=SIZE, workers=0, shard=(i, 3), progress=False)
        with pytest.raises(CacheError, match="incomplete"):
            ImageCache(d)
    with pytest.raises(CacheError, match=r"incomplete: 4 of 12 rows not done \(first row 1"):
        finalize(d)
    cli_main(
        [
            "prepare",
            "mimic-cxr",
            str(root),
            str(d),
            "--size",
            str(SIZE),
            "--workers",
            "0",
            "--shard",
            "1/3",
        ]
    )
    assert (d / "images.u8").read_bytes() == (clean / "images.u8").read_bytes()
    assert ImageCache(d).manifest["sha256"] == ImageCache(clean).manifest["sha256"]
    assert sorted(p.name for p in (d / "progress").iterdir()) == [
        "done-0-of-3.bits",
        "done-1-of-3.bits",
        "done-2-of-3.bits",
    ]


def test_three_shards_in_parallel_processes_equal_one_process_byte_for_byte(
    tmp_path, mimic_tree, capsys
):
    """The scheduler array job of the README: ``mmcxr prepare --shard i/3`` started at once in
    three processes (racing to create the array and to finalise it), then the merge step
    (``prepare`` without ``--shard``: decodes nothing, finalises if no shard did) and
    ``mmcxr verify``. Every file but the per-shard progress records equals the one-process
    cache's."""
    import subprocess
    import sys

    root, _ = mimic_tree
    clean = prepare("mimic-cxr", root, tmp_path / "clean", size=SIZE, workers=0, progress=False)
    d = tmp_path / "sharded"
    argv = ["prepare", "mimic-cxr", str(root), str(d), "--size", str(SIZE), "--workers", "0"]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "mmcxr.cli", *argv, "--shard", f"{i}/3"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(3)
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    assert cli_main(argv) == 0  # merge: nothing left to decode
    assert cli_main(["verify", str(d)]) == 0
    assert "complete, checksum ok: 12 images" in capsys.readouterr().out

    def files(c):
        return {
            p.relative_to(c).as_posix(): p.read_bytes()
            for p in sorted(c.rglob("*"))
            if p.is_file() and p.parent.name != "progress"
        }

    one, three = files(clean), files(d)
    assert sorted(three) == sorted(one) == ["images.u8", "index.csv", "manifest.json", "shapes.i32"]
    for name in one:
        assert three[name] == one[name], name
    assert sorted(p.name for p in (d / "progress").glob("done-*")) == [
        f"done-{i}-of-3.bits" for i in range(3)
    ]


def test_verify_fails_on_an_incomplete_or_stale_cache(tmp_path, mimic_tree, capsys):
    root, truth = mimic_tree
    d = tmp_path / "c"
    prepare("mimic-cxr", root, d, size=SIZE, workers=0, shard=(0, 2), progress=False)
    assert cli_main(["verify", str(d)]) == 1  # shard 1 of 2 never ran
    assert "incomplete cache" in capsys.readouterr().err
    prepare("mimic-cxr", root, d, size=SIZE, workers=0, shard=(1, 2), progress=False)
    assert cli_main(["verify", str(d)]) == 0
    os.utime(truth.path.iloc[0], ns=(1, 1))  # a source changed after it was cached
    assert cli_main(["verify", str(d)]) == 1
    assert "stale: 1 source image(s) changed" in capsys.readouterr().err


@pytest.mark.slow
def test_process_pool_gives_identical_bytes(tmp_path, mimic_tree):
    root, _ = mimic_tree
    a = prepare("mimic-cxr", root, tmp_path / "a", size=SIZE, workers=0, progress=False)
    b = prepare(
        "mimic-cxr", root, tmp_path / "b", size=SIZE, workers=2, chunk_size=3, progress=False
    )
    assert (a / "images.u8").read_bytes() == (b / "images.u8").read_bytes()


def test_corrupted_byte_is_detected(tmp_path, mimic_tree):
    root, _ = mimic_tree
    d = prepare("mimic-cxr", root, tmp_path / "c", size=SIZE, workers=0, progress=False)
    arr = d / "images.u8"
    data = bytearray(arr.read_bytes())
    row = 5
    data[row * SIZE * SIZE + SIZE * SIZE // 2] ^= 0x01
    arr.write_bytes(bytes(data))
    with pytest.raises(CacheError, match=r"images\.u8: checksum mismatch"):
        ImageCache(d)
    per_row = ImageCache(d, verify="rows")
    keys = list(per_row.index.key)
    per_row.get(keys[:row])  # other rows still check out
    with pytest.raises(CacheError, match=f"row {row} .* fails its checksum"):
        per_row.get([keys[row]])
    arr.write_bytes(bytes(data[:-1]))
    with pytest.raises(CacheError, match="wrong size"):
        ImageCache(d, verify="none")


def test_stale_source_is_reported(tmp_path, mimic_tree):
    root, truth = mimic_tree
    d = prepare("mimic-cxr", root, tmp_path / "c", size=SIZE, workers=0, progress=False)
    src = truth.path.iloc[2]
    st = os.stat(src)
    os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert ImageCache(d).stale().path.tolist() == [src]
    with pytest.raises(CacheError, match="stale: 1 source image"):
        prepare("mimic-cxr", root, d, size=SIZE, workers=0, progress=False)
    prepare("mimic-cxr", root, d, size=SIZE, workers=0, overwrite=True, progress=False)
    assert ImageCache(d).stale().empty


def test_overwrite_stale_rebuilds_only_a_stale_cache(tmp_path, mimic_tree):
    root, truth = mimic_tree
    d = prepare("mimic-cxr", root, tmp_path / "c", size=SIZE, workers=0, progress=False)
    manifest = (d / "manifest.json").read_bytes()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a valid cache is kept, silently
        prepare("mimic-cxr", root, d, size=SIZE, workers=0, overwrite="stale", progress=False)
    assert (d / "manifest.json").read_bytes() == manifest
    src = truth.path.iloc[1]
    st = os.stat(src)
    os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    with pytest.warns(DataWarning, match="rebuilding the image cache: .*stale: 1 source"):
        prepare("mimic-cxr", root, d, size=SIZE, workers=0, overwrite="stale", progress=False)
    assert ImageCache(d).stale().empty
    with pytest.raises(ValueError, match="overwrite must be"):
        prepare("mimic-cxr", root, d, size=SIZE, workers=0, overwrite="yes", progress=False)


def test_not_a_cache(tmp_path):
    with pytest.raises(CacheError, match="no manifest.json"):
        ImageCache(tmp_path)


@pytest.fixture
def small_cache(tmp_path, mimic_tree):
    root, truth = mimic_tree
    d = prepare("mimic-cxr", root, tmp_path / "c", size=SIZE, workers=0, progress=False)
    return ImageCache(d), truth


def test_multimodal_dataset_items(small_cache):
    cache, truth = small_cache
    keys = list(truth.dicom_id)
    y = np.arange(len(keys)) % 2
    ids = torch.arange(len(keys) * 5).reshape(len(keys), 5)
    ds = MultimodalDataset(
        y, cache, keys, text={"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    )
    item = ds[3]
    assert set(item) == {"image", "input_ids", "attention_mask", "label"}
    assert item["image"].dtype == torch.float32 and item["image"].shape == (1, SIZE, SIZE)
    want = (cache.get([keys[3]])[0] / 255.0 - 0.5) / 0.25
    np.testing.assert_allclose(item["image"][0].numpy(), want, atol=1e-6)
    # the NumPy normalisation is MONAI's NormalizeIntensity bit for bit (what items used to be)
    from monai.transforms import NormalizeIntensity

    scaled = torch.from_numpy(cache.get([keys[3]]).astype(np.float32) / 255.0)
    monai = NormalizeIntensity(subtrahend=0.5, divisor=0.25)(scaled).as_tensor()
    assert torch.equal(item["image"], monai) and type(item["image"]) is torch.Tensor
    assert item["label"].shape == () and item["label"].dtype == torch.float32
    assert torch.equal(item["input_ids"], ids[3])
    multi = MultimodalDataset(np.eye(len(keys), 4), cache, keys)
    assert multi[1]["label"].shape == (4,) and "input_ids" not in multi[1]
    with pytest.raises(ValueError, match="image keys"):
        MultimodalDataset(y[:-1], cache, keys)


def test_in_memory_views_items_batches_and_subsets(small_cache):
    """Two films per item from the cache, normalised as MultimodalDataset does; batches and
    subsets give the same numbers, and display intensity undoes the normalisation."""
    cache, truth = small_cache
    keys = list(truth.dicom_id)
    n = len(keys) // 2
    rows = pd.DataFrame({"a": keys[:n], "b": keys[n : 2 * n], "label": np.arange(n) % 2})
    ids = torch.arange(n * 4).reshape(n, 4)
    ds = InMemoryViews(rows, cache, ids, views={"front": "a", "side": "b"})
    item = ds[1]
    assert list(item) == ["front", "side", "token_ids", "label"]
    assert item["front"].shape == (1, SIZE, SIZE) and item["label"].dtype == torch.float32
    same = MultimodalDataset(rows["label"], cache, rows["b"])[1]["image"]
    torch.testing.assert_close(item["side"], same)
    assert torch.equal(item["token_ids"], ids[1])
    batch = next(ds.batches(3))
    assert batch["front"].shape == (3, 1, SIZE, SIZE) and batch["label"].tolist() == [0, 1, 0]
    torch.testing.assert_close(batch["side"][1], item["side"])
    sub = ds.subset([2, 1])
    assert len(sub) == 2 and sub.keys["front"] == [keys[2], keys[1]]
    torch.testing.assert_close(sub[1]["front"], item["front"])
    shown = ds.display_images("front")
    np.testing.assert_allclose(shown, cache.get(keys[:n]) / 255.0)
    np.testing.assert_allclose(to_display(batch["front"]), shown[:3], atol=1e-6)
    assert to_display(np.full((1, 1, 2, 2), 9.0)).tolist() == [[[1.0, 1.0], [1.0, 1.0]]]
    with pytest.raises(ValueError, match="token rows"):
        InMemoryViews(rows, cache, ids[:-1], views={"front": "a"})


def test_pickles_by_path_and_batches(small_cache):
    cache, truth = small_cache
    blob = pickle.dumps(cache)
    assert len(blob) < cache.size * cache.size * len(cache)  # not a copy of the array
    keys = list(truth.dicom_id)
    np.testing.assert_array_equal(pickle.loads(blob).get(keys), cache.get(keys))
    ds = MultimodalDataset(np.arange(len(keys)) % 2, cache, keys)
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=5)))
    assert batch["image"].shape == (5, 1, SIZE, SIZE) and batch["label"].shape == (5,)


def test_shuffled_permutes_one_modality(small_cache):
    cache, truth = small_cache
    keys = list(truth.dicom_id)
    ids = torch.arange(len(keys)).unsqueeze(1)
    ds = MultimodalDataset(np.arange(len(keys)), cache, keys, text={"token_ids": ids})
    s_img = ds.shuffled("image", seed=0)
    s_txt = ds.shuffled("text", seed=0)
    perm = np.random.default_rng(0).permutation(len(keys))
    for i in range(len(keys)):
        assert s_img[i]["label"] == ds[i]["label"] and torch.equal(s_img[i]["token_ids"], ids[i])
        assert torch.equal(s_img[i]["image"], ds[int(perm[i])]["image"])
        assert torch.equal(s_txt[i]["token_ids"], ids[perm[i]])
        assert torch.equal(s_txt[i]["image"], ds[i]["image"])
    assert not all(torch.equal(s_img[i]["image"], ds[i]["image"]) for i in range(len(keys)))
    with pytest.raises(ValueError, match="cannot shuffle 'text'"):
        MultimodalDataset(np.zeros(len(keys)), cache, keys).shuffled("text")


def test_monai_transform_applied_before_normalisation(small_cache):
    from monai.transforms import RandAffine

    cache, truth = small_cache
    keys = list(truth.dicom_id)[:3]

    def make():
        t = RandAffine(prob=1.0, rotate_range=0.3, padding_mode="zeros")
        t.set_random_state(seed=7)
        return MultimodalDataset(np.zeros(3), cache, keys, transform=t)

    a, b, plain = make(), make(), MultimodalDataset(np.zeros(3), cache, keys)
    x = a[0]["image"]
    assert type(x) is torch.Tensor and x.shape == (1, SIZE, SIZE)
    assert torch.equal(x, b[0]["image"])  # seeded -> reproducible
    assert not torch.equal(x, plain[0]["image"])
    assert x.min() >= -2.0 - 1e-6  # zero padding of the [0,1] image normalises to -2


def test_undecodable_image_stops_prepare_naming_it(tmp_path, mimic_tree):
    root, truth = mimic_tree
    bad = truth.path.iloc[4]
    with open(bad, "r+b") as f:  # keep the header, destroy the pixel data length
        f.truncate(os.path.getsize(bad) - 700)
    for workers in (0, 2):  # the error crosses the process pool intact
        with pytest.raises(ImageDecodeError, match=os.path.basename(bad)):
            prepare(
                "mimic-cxr",
                root,
                tmp_path / f"c{workers}",
                size=SIZE,
                workers=workers,
                chunk_size=4,
                progress=False,
            )
    assert pickle.loads(pickle.dumps(ImageDecodeError(bad, "x"))).path == bad


# ---------------------------------------------------------------------------- on_error="skip"


def _break(truth, k_truncate: int, k_delete: int | None = None) -> tuple[str, str | None]:
    cut = truth.path.iloc[k_truncate]
    with open(cut, "r+b") as f:  # keep the header, lose the pixel data
        f.truncate(os.path.getsize(cut) - 700)
    gone = None if k_delete is None else truth.path.iloc[k_delete]
    if gone is not None:
        os.unlink(gone)
    return cut, gone


@pytest.mark.parametrize("workers", [0, 2])
def test_skip_records_unreadable_images_and_builds_the_rest(tmp_path, mimic_tree, workers):
    root, truth = mimic_tree
    cut, gone = _break(truth, 4, 7)
    with pytest.raises(MissingFileError, match=os.path.basename(gone)):  # raise: the first
        prepare("mimic-cxr", root, tmp_path / "r", size=SIZE, workers=workers, progress=False)
    d = tmp_path / "c"
    with pytest.warns(DataWarning, match=r"left out 2 unreadable image\(s\) of 12"):
        prepare(
            "mimic-cxr",
            root,
            d,
            size=SIZE,
            workers=workers,
            chunk_size=3,
            on_error="skip",
            progress=False,
        )
    man = json.loads((d / "manifest.json").read_text())
    assert man["complete"] and man["n"] == 12
    reasons = {s["path"]: s["reason"] for s in man["skipped"]}
    assert set(reasons) == {cut, gone}
    assert reasons[gone].startswith("MissingFileError: image file not found")
    assert reasons[cut].startswith("ImageDecodeError:") and "pixel data" in reasons[cut]
    cache = ImageCache(d)
    assert sorted(cache.skipped.path) == sorted([cut, gone])
    bad = truth.dicom_id[truth.path.isin([cut, gone])].tolist()
    good = truth.dicom_id[~truth.path.isin([cut, gone])].tolist()
    assert not any(k in cache for k in bad) and all(k in cache for k in good)
    with pytest.raises(KeyError, match="left out of the image cache .*pixel data"):
        cache.get([good[0], bad[truth.path[truth.dicom_id.isin(bad)].tolist().index(cut)]])
    ok = truth[truth.dicom_id.isin(good)]
    np.testing.assert_array_equal(cache.get(good), _expected(ok))
    assert (cache.index.skipped != "").sum() == 2
    assert cache.stale().empty  # a file missing then and now is not "changed"


def test_raise_mode_refuses_a_cache_with_holes(tmp_path, mimic_tree):
    root, truth = mimic_tree
    cut, _ = _break(truth, 2)
    d = tmp_path / "c"
    with pytest.warns(DataWarning, match="left out 1"):
        prepare("mimic-cxr", root, d, size=SIZE, workers=0, on_error="skip", progress=False)
    with pytest.raises(CacheError, match=rf"on_error='skip' and left out 1 .*first: {cut}"):
        prepare("mimic-cxr", root, d, size=SIZE, workers=0, progress=False)
    with pytest.warns(DataWarning, match="left out 1"):  # skip mode reuses it as it is
        prepare("mimic-cxr", root, d, size=SIZE, workers=0, on_error="skip", progress=False)
    # a chapter's overwrite="stale" rebuilds it in raise mode, which names the bad file
    with pytest.warns(DataWarning, match="rebuilding the image cache"):
        with pytest.raises(ImageDecodeError, match=os.path.basename(cut)):
            prepare("mimic-cxr", root, d, size=SIZE, workers=0, overwrite="stale", progress=False)
    with pytest.raises(ValueError, match="on_error must be one of"):
        prepare("mimic-cxr", root, d, size=SIZE, workers=0, on_error="ignore", progress=False)


def test_skip_record_survives_an_interruption(tmp_path, mimic_tree, monkeypatch):
    root, truth = mimic_tree
    cut, _ = _break(truth, 1)
    real = cache_mod.decode_image
    calls = []

    def dies_after_6(path, size):
        if len(calls) == 6:
            raise KeyboardInterrupt  # killed after the chunk holding the bad image was done
        calls.append(path)
        return real(path, size)

    monkeypatch.setattr(cache_mod, "decode_image", dies_after_6)
    d = tmp_path / "c"
    kw = dict(size=SIZE, workers=0, chunk_size=2, progress=False)
    with pytest.raises(KeyboardInterrupt):
        prepare("mimic-cxr", root, d, on_error="skip", **kw)
    record = json.loads((d / "progress" / "skipped-0-of-1.json").read_text())
    assert list(record) == ["1"] and record["1"].startswith("ImageDecodeError:")
    with pytest.raises(CacheError, match=f"left out 1 .*first: {cut}"):  # raise mode refuses
        prepare("mimic-cxr", root, d, **kw)
    monkeypatch.setattr(cache_mod, "decode_image", lambda p, n: (calls.append(p), real(p, n))[1])
    calls.clear()
    with pytest.warns(DataWarning, match="left out 1"):
        prepare("mimic-cxr", root, d, on_error="skip", **kw)
    assert cut not in calls and len(calls) == 12 - 6  # the bad image was not retried
    assert ImageCache(d).skipped.path.tolist() == [cut]


def test_skip_on_a_handbuilt_chestxray14_release(tmp_path, cxr14_tree):
    """The real layout: a truncated PNG and one never downloaded, both listed in the table."""
    root, truth = cxr14_tree
    cut, gone = truth.path.iloc[1], truth.path.iloc[3]
    data = open(cut, "rb").read()
    open(cut, "wb").write(data[: len(data) // 2])
    os.unlink(gone)
    with pytest.raises(MissingFileError, match=r"images/00000003_000\.png: image file not found"):
        prepare("chestx-ray14", root, tmp_path / "r", size=SIZE, workers=0, progress=False)
    with pytest.warns(DataWarning, match="left out 2"):
        d = prepare(
            "chestx-ray14",
            root,
            tmp_path / "c",
            size=SIZE,
            workers=0,
            on_error="skip",
            progress=False,
        )
    cache = ImageCache(d)
    assert cache.skipped.key.tolist() == ["00000001_001.png", "00000003_000.png"]
    assert cache.skipped.path.tolist() == [cut, gone]
    assert "00000001_000.png" in cache and "00000003_000.png" not in cache
