"""Image decoding: DICOM display pipeline, JPEG/PNG, letterbox resizing, damaged files."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from pydicom.data import get_testdata_file

from mmcxr.data import (
    ImageDecodeError,
    MissingFileError,
    decode_image,
    dicom_headers,
    raw_and_display,
    read_image,
    resize_square,
    square_geometry,
    to_uint8,
)
from mmcxr.data.images import check_dicom_header, check_raster


def ramp(rows=24, cols=20, maxval=4095):
    return np.tile(np.linspace(0, maxval, cols), (rows, 1)).round().astype(np.uint16)


def test_monochrome2_full_window_is_identity_scale(tmp_path, dicom_writer):
    stored = ramp()
    p = dicom_writer(tmp_path / "a.dcm", stored, window=(2048, 4096))
    img = read_image(p)
    assert img.dtype == np.float32 and img.shape == stored.shape
    np.testing.assert_allclose(img, stored / 4095.0, atol=1e-6)


def test_monochrome1_is_inverted(tmp_path, dicom_writer):
    stored = ramp()
    m2 = read_image(dicom_writer(tmp_path / "m2.dcm", stored, window=(2048, 4096)))
    m1 = read_image(
        dicom_writer(
            tmp_path / "m1.dcm", 4095 - stored, photometric="MONOCHROME1", window=(2048, 4096)
        )
    )
    np.testing.assert_allclose(m1, m2, atol=1e-6)
    assert m1[0, 0] < 0.01 and m1[0, -1] > 0.99  # low stored value = bright in MONOCHROME1
    m1_raw = read_image(
        dicom_writer(tmp_path / "m1b.dcm", stored, photometric="MONOCHROME1", window=(2048, 4096))
    )
    np.testing.assert_allclose(m1_raw, 1.0 - m2, atol=1e-6)


def test_window_center_width_clips_and_scales(tmp_path, dicom_writer):
    stored = ramp()
    # a narrow window 1000..2000: below -> 0, above -> 1, linear inside
    img = read_image(dicom_writer(tmp_path / "w.dcm", stored, window=(1500.5, 1001)))
    flat = stored[0].astype(float)
    row = img[0]
    assert np.all(row[flat <= 1000] == 0.0)
    assert np.all(row[flat > 2000] == 1.0)
    inside = (flat > 1000) & (flat <= 2000)
    np.testing.assert_allclose(row[inside], (flat[inside] - 1000) / 1000, atol=2e-3)


@pytest.mark.parametrize("vr", ["US", "OW"])
def test_voi_lut_sequence_applied(tmp_path, dicom_writer, vr):
    stored = ramp(maxval=255)
    lut = np.rint(np.sqrt(np.arange(256) / 255.0) * 65535).astype(int).tolist()
    img = read_image(
        dicom_writer(tmp_path / "lut.dcm", stored, bits=8, voi_lut=lut, window=(10, 2), lut_vr=vr)
    )  # the LUT wins over a window
    np.testing.assert_allclose(img, np.sqrt(stored / 255.0), atol=1e-4)


def test_modality_rescale_then_window(tmp_path, dicom_writer):
    stored = ramp(maxval=1000)
    # output units = 2 * stored - 100; window over output 0..1800
    img = read_image(
        dicom_writer(tmp_path / "r.dcm", stored, rescale=(2.0, -100.0), window=(900.5, 1801))
    )
    out = 2.0 * stored - 100
    np.testing.assert_allclose(img, np.clip(out / 1800, 0, 1), atol=2e-3)


def test_16_bit_without_voi_uses_min_max(tmp_path, dicom_writer):
    stored = ramp(maxval=60000) + 1000
    img = read_image(dicom_writer(tmp_path / "b16.dcm", stored, bits=16))
    assert img.min() == 0.0 and img.max() == 1.0
    np.testing.assert_allclose(img, (stored - 1000) / 60000.0, atol=1e-6)


def test_rle_compressed_matches_uncompressed(tmp_path, dicom_writer):
    stored = ramp(maxval=65535)
    a = read_image(dicom_writer(tmp_path / "u.dcm", stored, bits=16, window=(32768, 65536)))
    b = read_image(
        dicom_writer(tmp_path / "c.dcm", stored, bits=16, window=(32768, 65536), compress=True)
    )
    np.testing.assert_array_equal(a, b)


def test_jpeg_compressed_transfer_syntax_decodes():
    p = get_testdata_file("JPGExtended.dcm")  # 12-bit JPEG Extended, decoded by pylibjpeg
    img = read_image(p)
    assert img.shape == (1024, 256) and 0.0 <= img.min() and img.max() <= 1.0
    assert img.std() > 0.01


@pytest.mark.parametrize("cut", [60, 0.5])
def test_truncated_dicom_raises_naming_file(tmp_path, dicom_writer, cut):
    p = dicom_writer(tmp_path / "full.dcm", ramp(), window=(2048, 4096))
    data = p.read_bytes()
    bad = tmp_path / "bad.dcm"
    bad.write_bytes(data[: int(cut if cut > 1 else len(data) * cut)])
    with pytest.raises(ImageDecodeError, match="bad.dcm"):
        read_image(bad)
    with pytest.raises(ImageDecodeError, match="bad.dcm"):
        check_dicom_header(bad)


def test_truncated_compressed_dicom_detected_by_header_check(tmp_path, dicom_writer):
    p = dicom_writer(tmp_path / "c.dcm", ramp(), window=(2048, 4096), compress=True)
    check_dicom_header(p)  # intact file passes
    data = p.read_bytes()
    (tmp_path / "cut.dcm").write_bytes(data[:-30])
    with pytest.raises(ImageDecodeError, match="cut.dcm.*truncated"):
        check_dicom_header(tmp_path / "cut.dcm")


def test_garbage_file_with_dcm_suffix(tmp_path):
    p = tmp_path / "junk.dcm"
    p.write_bytes(b"not a dicom at all" * 20)
    with pytest.raises(ImageDecodeError, match=r"junk\.dcm: not a DICOM"):
        read_image(p)


def test_missing_file(tmp_path):
    with pytest.raises(MissingFileError, match="nope.png"):
        read_image(tmp_path / "nope.png")


def test_png_8_and_16_bit(tmp_path):
    a8 = (np.arange(20 * 10) % 256).astype(np.uint8).reshape(20, 10)
    Image.fromarray(a8).save(tmp_path / "a.png")
    np.testing.assert_allclose(read_image(tmp_path / "a.png"), a8 / 255.0, atol=1e-7)
    a16 = (np.arange(20 * 10) * 300).astype(np.uint16).reshape(20, 10)
    Image.fromarray(a16).save(tmp_path / "b.png")
    np.testing.assert_allclose(read_image(tmp_path / "b.png"), a16 / 65535.0, atol=1e-7)


def test_truncated_png_and_jpeg(tmp_path):
    arr = (np.random.default_rng(0).random((64, 64)) * 255).astype(np.uint8)
    for name in ("x.png", "x.jpg"):
        Image.fromarray(arr).save(tmp_path / name)
        data = (tmp_path / name).read_bytes()
        (tmp_path / f"cut_{name}").write_bytes(data[: len(data) // 2])
        with pytest.raises(ImageDecodeError, match=f"cut_{name}"):
            check_raster(tmp_path / f"cut_{name}")
        with pytest.raises(ImageDecodeError, match=f"cut_{name}"):
            read_image(tmp_path / f"cut_{name}")


def test_jpeg_draft_mode_close_to_full_decode(tmp_path):
    yy, xx = np.mgrid[0:400, 0:320]
    arr = (127 + 100 * np.sin(xx / 23.0) * np.cos(yy / 31.0)).astype(np.uint8)
    Image.fromarray(arr).save(tmp_path / "big.jpg", quality=95)
    fast, hw = decode_image(tmp_path / "big.jpg", 64)
    full = resize_square(read_image(tmp_path / "big.jpg"), 64)
    assert hw == (400, 320) and fast.shape == (64, 64)
    assert np.abs(fast - full).mean() < 0.01


def test_letterbox_geometry_and_resize():
    g = square_geometry(3056, 2544, 256)
    assert (g.height, g.width, g.top) == (256, 213, 0) and g.left == (256 - 213) // 2
    assert g.map_box((0, 0, 2544, 3056)) == pytest.approx((g.left, 0, g.left + 213.1, 256), abs=0.5)
    img = np.ones((30, 10), dtype=np.float32)
    sq = resize_square(img, 12)
    g = square_geometry(30, 10, 12)
    assert sq.shape == (12, 12)
    assert np.all(sq[:, : g.left] == 0) and np.all(sq[:, g.left + g.width :] == 0)
    np.testing.assert_allclose(sq[:, g.left : g.left + g.width], 1.0, atol=1e-5)
    # identity when already square at the target size
    x = np.random.default_rng(0).random((16, 16)).astype(np.float32)
    np.testing.assert_array_equal(resize_square(x, 16), x)


def test_read_image_size_equals_resize_of_full_for_dicom(tmp_path, dicom_writer):
    p = dicom_writer(tmp_path / "a.dcm", ramp(50, 40), window=(2048, 4096))
    np.testing.assert_array_equal(read_image(p, 16), resize_square(read_image(p), 16))
    assert to_uint8(np.array([0.0, 0.5, 1.0, 1.2])).tolist() == [0, 128, 255, 255]


def test_raw_and_display_shows_what_the_display_pipeline_changes(tmp_path, dicom_writer):
    stored = np.tile(np.arange(0, 4000, 100, dtype=np.uint16), (30, 1))  # dark left, bright right
    path = dicom_writer(tmp_path / "m1.dcm", stored, photometric="MONOCHROME1", window=(2000, 4000))
    raw, shown, tags = raw_and_display(path)
    assert raw.shape == shown.shape == stored.shape
    assert raw[0, 0] == 0.0 and raw[0, -1] == 1.0, "stored values, min-max scaled"
    assert shown[0, 0] > shown[0, -1], "MONOCHROME1: low stored values display bright"
    np.testing.assert_array_equal(shown, read_image(path))  # the display image is read_image's
    assert tags["PhotometricInterpretation"] == "MONOCHROME1" and not tags["VOI LUT"]
    assert tags["stored range"] == (0, 3900) and tags["BitsStored"] == 12
    lut = np.rint(np.sqrt(np.arange(256) / 255.0) * 65535).astype(int).tolist()
    voi = dicom_writer(tmp_path / "lut.dcm", ramp(maxval=255), bits=8, voi_lut=lut)
    raw, shown, tags = raw_and_display(voi)
    assert tags["VOI LUT"] and tags["PhotometricInterpretation"] == "MONOCHROME2"
    np.testing.assert_allclose(shown, np.sqrt(raw), atol=1e-4)  # the LUT bends the ramp
    with pytest.raises(MissingFileError, match="nope.dcm"):
        raw_and_display(tmp_path / "nope.dcm")


def test_dicom_headers_list_the_display_tags_of_each_file(tmp_path, dicom_writer):
    window = dicom_writer(tmp_path / "w.dcm", ramp(), window=(2048, 4096), rescale=(1.0, 0.0))
    lut = list(range(0, 65536, 256))
    voi = dicom_writer(tmp_path / "v.dcm", ramp(maxval=255), bits=8, voi_lut=lut)
    headers = dicom_headers([window, voi], progress=False)
    assert headers.to_dict("records") == [
        {"path": str(window), "photometric": "MONOCHROME2", "bits_stored": 12, "window": True,
         "voi_lut": False, "rescale": True},
        {"path": str(voi), "photometric": "MONOCHROME2", "bits_stored": 8, "window": False,
         "voi_lut": True, "rescale": False},
    ]  # fmt: skip
    assert list(dicom_headers([], progress=False).columns) == list(headers.columns)
    bad = tmp_path / "not.dcm"
    bad.write_text("hello")
    with pytest.raises(ImageDecodeError, match="not.dcm"):
        dicom_headers([window, bad], progress=False)


# --------------------------------------------------------------------------------------------
# the lookup-table fast path against the per-pixel display chain it replaced


def _reference_display(path) -> np.ndarray:
    """The display chain on every pixel, as read_image did before its lookup table:
    pydicom's modality LUT, then its VOI LUT or window, [0, 1] by the VOI output range (the
    image's own min..max without VOI tags), MONOCHROME1 inverted; all in float64/float32."""
    import pydicom
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    from mmcxr.data.images import _voi_output_range

    ds = pydicom.dcmread(path)
    arr = apply_modality_lut(ds.pixel_array, ds)
    lo, hi = _voi_output_range(ds)
    if lo is not None:
        arr = apply_voi_lut(arr, ds)
    arr = arr.astype(np.float32)
    if lo is None:
        lo, hi = float(arr.min()), float(arr.max())
    out = np.clip((arr - lo) / (hi - lo), 0.0, 1.0)
    if ds.PhotometricInterpretation == "MONOCHROME1":
        out = 1.0 - out
    return out.astype(np.float32)


def _signed_dicom(path, stored: np.ndarray, rescale: tuple[float, float]):
    """A 16-bit *signed* (PixelRepresentation 1) DICOM without VOI tags, rescaled."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import DigitalXRayImageStorageForPresentation, ExplicitVRLittleEndian

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = DigitalXRayImageStorageForPresentation
    meta.MediaStorageSOPInstanceUID = "1.2.3.4"
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, "1.2.3.4"
    ds.set_pixel_data(stored.astype(np.int16), "MONOCHROME2", 16, generate_instance_uid=False)
    ds.RescaleSlope, ds.RescaleIntercept = rescale
    ds.save_as(path, enforce_file_format=True)
    return path


def test_lookup_table_fast_path_equals_the_per_pixel_chain(tmp_path, dicom_writer):
    """Tolerance zero: the table holds the chain's own float32 results for every stored
    value, so read_image at native size and letterboxed (same Lanczos on the same floats)
    must equal the per-pixel reference bit for bit, on the synthetic generator's MONOCHROME1,
    VOI LUT and window/level files and on hand-made files for the cases it never writes."""
    from mmcxr.synth import SynthConfig, generate

    root = generate(
        "mimic-cxr",
        tmp_path / "synth",
        n=6,
        seed=0,
        image_size=96,
        workers=1,
        config=SynthConfig(monochrome1_rate=0.5, voi_lut_rate=0.3),
        progress=False,
    )
    paths = sorted(root.rglob("*.dcm"))
    kinds = dicom_headers(paths, progress=False)
    # the files must cover what the test is about, or it proves nothing
    assert (kinds["photometric"] == "MONOCHROME1").any() and kinds["voi_lut"].any()
    assert (kinds["window"] & ~kinds["voi_lut"]).any() and kinds["bits_stored"].nunique() > 1
    rng = np.random.default_rng(1)
    noisy = (rng.random((70, 52)) * 4095).astype(np.uint16)
    paths += [
        # a narrow window clips inside the Lanczos support (where order of steps matters)
        dicom_writer(tmp_path / "narrow.dcm", noisy, window=(1500.5, 501)),
        dicom_writer(tmp_path / "m1.dcm", noisy, photometric="MONOCHROME1", window=(900, 700)),
        # min-max scaling through a negative rescale, 16-bit, no VOI tags
        dicom_writer(tmp_path / "rescale.dcm", noisy + 7, bits=16, rescale=(-0.5, 3000.0)),
        _signed_dicom(tmp_path / "signed.dcm", noisy.astype(np.int16) - 2048, (1.0, 1024.0)),
        dicom_writer(
            tmp_path / "lut8.dcm",
            (noisy // 16).astype(np.uint16),
            bits=8,
            voi_lut=[int(v) for v in np.sqrt(np.arange(256) / 255) * 65535],
        ),
    ]
    for p in paths:
        ref = _reference_display(p)
        np.testing.assert_array_equal(read_image(p), ref, err_msg=str(p))
        np.testing.assert_array_equal(read_image(p, 40), resize_square(ref, 40), err_msg=str(p))
