"""Decoding radiographs into display-ready float images: DICOM, JPEG, PNG.

A DICOM's stored values are not what a radiologist sees: the modality LUT (rescale) maps them
to output units, the VOI LUT or window maps those to display values, and MONOCHROME1 means
*low* values are bright. MIMIC-CXR mixes all of these, so skipping a step gives inverted or
washed-out images in a fraction of the cohort, which a model happily learns as a shortcut.
pydicom does each step (``pixel_array`` for any transfer syntax it has a decoder for,
``apply_modality_lut``, ``apply_voi_lut``); this module only chains them and scales the result
to [0, 1] using the *known* output range of the VOI step, so that the window chosen by the
modality survives (a per-image min-max would undo it).

Square resizing is a letterbox: the long side is scaled to ``size`` and the short side is
padded with black (0) symmetrically. Stretching would change the cardiothoracic ratio that
the Cardiomegaly label depends on; :func:`square_geometry` gives the mapping for boxes.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pydicom
from PIL import Image, UnidentifiedImageError
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_modality_lut, apply_voi_lut, apply_windowing
from tqdm.auto import tqdm

from mmcxr.data.errors import ImageDecodeError, MissingFileError

__all__ = [
    "SquareGeometry",
    "check_dicom_header",
    "check_raster",
    "decode_image",
    "dicom_headers",
    "dicom_to_float",
    "is_dicom",
    "raw_and_display",
    "read_image",
    "resize_square",
    "square_geometry",
    "to_uint8",
]

_NEEDED_TAGS = ("Rows", "Columns", "BitsAllocated", "BitsStored", "PhotometricInterpretation")


@dataclass(frozen=True)
class SquareGeometry:
    """Where an ``height x width`` image lands inside a ``size x size`` letterbox."""

    scale: float  # output pixels per input pixel
    top: int  # padding rows above the image
    left: int  # padding columns left of the image
    height: int  # rows the image occupies
    width: int  # columns the image occupies

    def map_box(self, box: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
        """Map an ``(x1, y1, x2, y2)`` box in source pixels into letterbox pixels."""
        x1, y1, x2, y2 = box
        s = self.scale
        return (x1 * s + self.left, y1 * s + self.top, x2 * s + self.left, y2 * s + self.top)


def square_geometry(height: int, width: int, size: int) -> SquareGeometry:
    """Letterbox geometry: long side scaled to ``size``, short side centred and padded."""
    if height < 1 or width < 1 or size < 1:
        raise ValueError(f"need positive sizes, got height={height}, width={width}, size={size}")
    scale = size / max(height, width)
    h = max(1, min(size, round(height * scale)))
    w = max(1, min(size, round(width * scale)))
    return SquareGeometry(scale=scale, top=(size - h) // 2, left=(size - w) // 2, height=h, width=w)


def resize_square(image: np.ndarray, size: int) -> np.ndarray:
    """Letterbox a float image into ``size x size`` with PIL's antialiased Lanczos filter.

    Output is float32 clipped to [0, 1] (Lanczos overshoots slightly at edges).
    """
    if image.ndim != 2:
        raise ValueError(f"expected a 2-D image, got shape {image.shape}")
    g = square_geometry(*image.shape, size)
    out = np.zeros((size, size), dtype=np.float32)
    if (g.height, g.width) == image.shape:
        scaled = image.astype(np.float32, copy=False)
    else:
        pil = Image.fromarray(np.ascontiguousarray(image, dtype=np.float32))
        scaled = np.asarray(pil.resize((g.width, g.height), Image.Resampling.LANCZOS))
    out[g.top : g.top + g.height, g.left : g.left + g.width] = scaled
    return np.clip(out, 0.0, 1.0, out=out)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """[0, 1] float -> uint8 with rounding (the cache's storage type)."""
    return np.rint(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)


def is_dicom(path: str | os.PathLike) -> bool:
    """``.dcm`` suffix, or else the Part 10 preamble (MIMIC files always have it).

    The suffix decides first so that a DICOM missing its preamble still reaches pydicom, which
    then reports what is wrong with it, and so that rasters are never opened twice. Other names
    are sniffed with :func:`pydicom.misc.is_dicom` (``DICM`` at byte 128); an unreadable file
    is "not DICOM" here and fails in the raster reader, which names the path.
    """
    p = Path(path)
    if p.suffix.lower() in (".dcm", ".dicom"):
        return True
    if p.suffix.lower() in (".png", ".jpg", ".jpeg"):
        return False
    try:
        return pydicom.misc.is_dicom(p)
    except OSError:
        return False


def read_image(path: str | os.PathLike, size: int | None = None) -> np.ndarray:
    """Decode a radiograph to float32 in [0, 1], bright = dense (bone), whatever its format.

    ``size=None`` returns the native resolution; ``size=N`` returns the ``N x N`` letterbox
    (:func:`resize_square`). For JPEG, ``size`` lets libjpeg decode at 1/2, 1/4 or 1/8 scale
    (PIL draft mode) before the final resize, which is several times faster on full-size
    MIMIC-CXR-JPG files; the result then differs from ``resize_square(read_image(p), N)`` by
    a rounding-level amount. For DICOM and PNG the two are identical.
    """
    return decode_image(path, size)[0]


def decode_image(
    path: str | os.PathLike, size: int | None = None
) -> tuple[np.ndarray, tuple[int, int]]:
    """:func:`read_image` plus the source's native ``(height, width)`` (for box mapping)."""
    p = Path(path)
    if not p.is_file():
        raise MissingFileError(p, "image file not found")
    if is_dicom(p):
        img = _read_dicom(p)
        shape = img.shape
    else:
        img, shape = _read_raster(p, size)
    return (img if size is None else resize_square(img, size)), (int(shape[0]), int(shape[1]))


def check_dicom_header(path: str | os.PathLike) -> pydicom.Dataset:
    """Read a DICOM header (no pixels) and check that the pixel data can be complete.

    Catches the common damage cheaply: not a DICOM, header cut short, image tags missing,
    and a file too small to hold its uncompressed pixels or missing the end-of-sequence
    marker of encapsulated (compressed) pixels. Full decoding is left to :func:`read_image`.
    """
    p = Path(path)
    if not p.is_file():
        raise MissingFileError(p, "DICOM file not found")
    try:
        with open(p, "rb") as f:
            ds = pydicom.dcmread(f, stop_before_pixels=True)
            pixel_tag_at = f.tell()  # reading stops at the Pixel Data tag
    except InvalidDicomError as e:
        raise ImageDecodeError(p, f"not a DICOM file ({e})") from None
    except Exception as e:  # pydicom raises many types on garbage headers
        raise ImageDecodeError(p, f"unreadable DICOM header ({type(e).__name__}: {e})") from None
    missing = [t for t in _NEEDED_TAGS if t not in ds]
    if missing:
        raise ImageDecodeError(p, f"DICOM header truncated or incomplete: no {', '.join(missing)}")
    tsyntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    if tsyntax is None:
        raise ImageDecodeError(p, "DICOM file meta has no TransferSyntaxUID (truncated header?)")
    size = p.stat().st_size
    if tsyntax.is_compressed:
        with open(p, "rb") as f:
            f.seek(max(0, size - 8))
            tail = f.read(8)
        # encapsulated pixel data ends with the Sequence Delimitation Item (FFFE,E0DD), length 0
        end = (
            b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
            if tsyntax.is_little_endian
            else b"\xff\xfe\xe0\xdd\x00\x00\x00\x00"
        )
        if tail != end:
            raise ImageDecodeError(
                p,
                "compressed pixel data is truncated (no end-of-sequence "
                "marker at the end of the file)",
            )
    else:
        frames = int(ds.get("NumberOfFrames", 1) or 1)
        expected = (
            int(ds.Rows)
            * int(ds.Columns)
            * int(ds.get("SamplesPerPixel", 1))
            * int(ds.BitsAllocated)
            // 8
            * frames
        )
        available = size - pixel_tag_at - 8  # minus the element's tag and length (>= 8 bytes)
        if available < expected:
            raise ImageDecodeError(
                p,
                f"file is truncated: {max(available, 0)} bytes left for "
                f"{expected} bytes of pixel data",
            )
    return ds


def _read_dicom(p: Path) -> np.ndarray:
    try:
        ds = pydicom.dcmread(p)
    except InvalidDicomError as e:
        raise ImageDecodeError(p, f"not a DICOM file ({e})") from None
    except Exception as e:
        raise ImageDecodeError(p, f"unreadable DICOM ({type(e).__name__}: {e})") from None
    return dicom_to_float(ds, p)


def dicom_to_float(ds: pydicom.Dataset, path: str | os.PathLike = "<dataset>") -> np.ndarray:
    """Stored pixels -> modality LUT -> VOI LUT/window -> [0, 1] -> MONOCHROME1 inverted.

    Scaling to [0, 1] uses the VOI step's output range: the LUT's own min..max for a VOI LUT
    Sequence, pydicom's window output range for WindowCenter/Width. Without any VOI tags the
    image's own min..max is used (nothing else defines its display range).

    Every step maps one stored value to one display value, so for 8- and 16-bit stored
    pixels (every radiograph release) the chain runs once over all *possible* stored values
    (at most 65,536) and the image is one table lookup: bit-identical to running the chain
    on every pixel, without float64 copies of a 3056 x 2544 film (:func:`_display_lut`).
    """
    try:
        arr = ds.pixel_array
    except Exception as e:  # decoder plugins raise ValueError/RuntimeError/AttributeError
        raise ImageDecodeError(
            path, f"cannot decode pixel data ({type(e).__name__}: {str(e).splitlines()[0]})"
        ) from None
    photometric = str(ds.get("PhotometricInterpretation", "")).strip().upper()
    if photometric not in ("MONOCHROME1", "MONOCHROME2") or arr.ndim != 2:
        raise ImageDecodeError(
            path,
            f"expected one grayscale frame (MONOCHROME1/2), got "
            f"{photometric or 'no PhotometricInterpretation'} with "
            f"pixel array shape {arr.shape}",
        )
    try:
        if arr.dtype.kind in "ui" and arr.dtype.itemsize <= 2:
            lut, index = _display_lut(ds, arr, photometric)
            return np.take(lut, index)
        return _display_chain(arr, ds, photometric)  # 32-bit or float pixels: per pixel
    except Exception as e:
        raise ImageDecodeError(
            path, f"invalid modality/VOI LUT tags ({type(e).__name__}: {e})"
        ) from None


def _display_chain(
    values: np.ndarray,
    ds: pydicom.Dataset,
    photometric: str,
    minmax: tuple[float, float] | None = None,
) -> np.ndarray:
    """The display transform, value by value (pydicom's modality and VOI steps).

    ``minmax``: the modality-output range to scale by when the dataset has no VOI step (the
    image's own, which a table of all possible values cannot see); default: ``values``'.
    """
    out = apply_modality_lut(values, ds)
    lo, hi = _voi_output_range(ds)
    if lo is not None:
        out = apply_voi_lut(out, ds)
    out = out.astype(np.float32)
    if lo is None:
        lo, hi = minmax if minmax is not None else (float(out.min()), float(out.max()))
    out = (out - lo) / (hi - lo) if hi > lo else np.zeros_like(out)
    np.clip(out, 0.0, 1.0, out=out)
    if photometric == "MONOCHROME1":
        out = 1.0 - out
    return out.astype(np.float32, copy=False)


def _display_lut(
    ds: pydicom.Dataset, arr: np.ndarray, photometric: str
) -> tuple[np.ndarray, np.ndarray]:
    """``(lut, index)`` with ``lut[index]`` the display image of the 8/16-bit ``arr``.

    The table holds :func:`_display_chain` of every value of ``arr``'s dtype, in the order of
    the unsigned view of those values (two's complement for signed pixels), so ``index`` is a
    free view of ``arr``. Same dtypes and same operations as on the whole image, hence the
    same float32 numbers. Only the min-max scaling of a film without VOI tags looks at the
    image: its stored range through the (linear, so monotone) rescale, or the values present
    when a Modality LUT Sequence (any shape) maps them.
    """
    unsigned = np.dtype(f"u{arr.dtype.itemsize}")
    domain = np.arange(1 << (8 * arr.dtype.itemsize), dtype=unsigned).view(arr.dtype)
    index = arr.view(unsigned)
    minmax = None
    if _voi_output_range(ds)[0] is None:
        modality = apply_modality_lut(domain, ds).astype(np.float32)
        if ds.get("ModalityLUTSequence"):
            present = np.bincount(index.ravel(), minlength=len(domain)) > 0
            used = modality[present]
        else:
            ends = np.array([arr.min(), arr.max()], dtype=arr.dtype).view(unsigned)
            used = modality[ends]
        minmax = (float(used.min()), float(used.max()))
    return _display_chain(domain, ds, photometric, minmax), index


def _voi_output_range(ds: pydicom.Dataset) -> tuple[float | None, float | None]:
    """The value range that ``apply_voi_lut`` will produce for this dataset (None: no VOI)."""
    seq = ds.get("VOILUTSequence")
    if seq and seq[0].get("LUTDescriptor") is not None and seq[0].get("LUTData") is not None:
        item = seq[0]
        if isinstance(item.LUTData, bytes):  # VR OW: raw 16-bit words
            n = item.LUTDescriptor[0] or 2**16
            tsyntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
            big = tsyntax is not None and not tsyntax.is_little_endian
            lut = np.frombuffer(item.LUTData, dtype=">u2" if big else "<u2", count=n)
        else:
            lut = np.asarray(item.LUTData)
        return float(lut.min()), float(lut.max())
    if ds.get("WindowCenter") is not None and ds.get("WindowWidth") is not None:
        # pydicom maps "below the window" to y_min and "above" to y_max: ask it for both
        probe = np.array([-1e30, 1e30], dtype=np.float64)
        with np.errstate(over="ignore"):
            y = apply_windowing(probe, ds)
        return float(y[0]), float(y[1])
    return None, None


def _read_raster(p: Path, size: int | None) -> tuple[np.ndarray, tuple[int, int]]:
    try:
        with Image.open(p) as im:
            native = (im.height, im.width)
            if size is not None and im.format == "JPEG":
                g = square_geometry(im.height, im.width, size)
                im.draft("L", (g.width, g.height))  # libjpeg DCT scaling, result >= request
            im.load()
            return _pil_to_float(im), native
    except UnidentifiedImageError:
        raise ImageDecodeError(p, "not a readable image (unknown or corrupt format)") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageDecodeError(p, f"corrupt or truncated image ({e})") from None


def _pil_to_float(im: Image.Image) -> np.ndarray:
    if im.mode in ("I;16", "I;16B", "I;16L"):
        return np.asarray(im, dtype=np.float32) / 65535.0
    if im.mode == "I":  # 16-bit PNGs on some Pillow builds
        return np.asarray(im, dtype=np.float32) / 65535.0
    if im.mode == "F":
        return np.clip(np.asarray(im, dtype=np.float32), 0.0, 1.0)
    if im.mode != "L":
        im = im.convert("L")  # a few ChestX-ray14 PNGs are RGB(A)
    return np.asarray(im, dtype=np.float32) / 255.0


def check_raster(path: str | os.PathLike) -> tuple[int, int]:
    """Cheap integrity check of a JPEG/PNG without decoding it; returns ``(height, width)``.

    PIL identifies the format from the header; a truncated download is caught by the
    end marker (JPEG EOI ``FFD9``, PNG ``IEND`` chunk) that a complete file ends with.
    """
    p = Path(path)
    if not p.is_file():
        raise MissingFileError(p, "image file not found")
    try:
        with Image.open(p) as im:
            fmt, (w, h) = im.format, im.size
    except UnidentifiedImageError:
        raise ImageDecodeError(p, "not a readable image (unknown or corrupt format)") from None
    except OSError as e:
        raise ImageDecodeError(p, f"unreadable image header ({e})") from None
    with open(p, "rb") as f:
        f.seek(max(0, p.stat().st_size - 12))
        tail = f.read()
    if fmt == "JPEG" and not tail.rstrip(b"\x00").endswith(b"\xff\xd9"):
        raise ImageDecodeError(p, "JPEG is truncated (no end-of-image marker)")
    if fmt == "PNG" and b"IEND" not in tail:
        raise ImageDecodeError(p, "PNG is truncated (no IEND chunk)")
    return h, w


# --------------------------------------------------------------------------------------------
# the display pipeline, shown: which tags a DICOM carries, and its stored values beside the
# display image (for teaching what read_image does; reading data never needs these)


def dicom_headers(paths: Iterable[str | os.PathLike], *, progress: bool = True) -> pd.DataFrame:
    """The display tags of each DICOM, one row per file: photometric, bits, window, VOI LUT.

    Only headers are read (no pixels), so thousands of files take seconds: enough to count how
    a release mixes MONOCHROME1 with MONOCHROME2 and VOI LUTs with windows, the mix that makes
    a pipeline skipping a display step show some films inverted or washed out. Columns:
    ``path``, ``photometric``, ``bits_stored``, ``window`` / ``voi_lut`` / ``rescale``
    (whether the WindowCenter, VOILUTSequence and RescaleSlope tags are present). A file that
    is not a readable DICOM raises :class:`~mmcxr.data.errors.ImageDecodeError` naming it.
    """
    rows = []
    for p in tqdm(list(paths), desc="DICOM display tags", unit="img", disable=not progress):
        try:
            ds = pydicom.dcmread(p, stop_before_pixels=True)
        except Exception as exc:  # pydicom raises many types on garbage; name the file
            raise ImageDecodeError(p, f"cannot read the DICOM header ({exc})") from None
        rows.append(
            {
                "path": str(p),
                "photometric": str(ds.get("PhotometricInterpretation", "")),
                "bits_stored": int(ds.get("BitsStored", 0) or 0),
                "window": ds.get("WindowCenter") is not None,
                "voi_lut": bool(ds.get("VOILUTSequence")),
                "rescale": ds.get("RescaleSlope") is not None,
            }
        )
    columns = ["path", "photometric", "bits_stored", "window", "voi_lut", "rescale"]
    return pd.DataFrame(rows, columns=columns)


def raw_and_display(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """A DICOM's stored values, its display image and the tags that turn one into the other.

    ``raw`` is ``pixel_array`` as stored, min-max scaled to [0, 1] only so it can be viewed
    (a MONOCHROME1 film then shows bone dark and air bright); ``display`` is what
    :func:`read_image` returns (modality LUT, VOI LUT or window, MONOCHROME1 inverted),
    decoded from the same read of the file. ``tags``: PhotometricInterpretation, BitsStored,
    the stored range, WindowCenter/Width and whether a VOI LUT is present.
    """
    p = Path(path)
    if not p.is_file():
        raise MissingFileError(p, "DICOM file not found")
    try:
        ds = pydicom.dcmread(p)
    except Exception as exc:  # InvalidDicomError, or any of the types pydicom raises on garbage
        raise ImageDecodeError(p, f"unreadable DICOM ({type(exc).__name__}: {exc})") from None
    display = dicom_to_float(ds, p)
    raw = ds.pixel_array.astype(np.float32)
    lo, hi = float(raw.min()), float(raw.max())
    raw = (raw - lo) / (hi - lo) if hi > lo else np.zeros_like(raw)
    tags = {
        "PhotometricInterpretation": str(ds.get("PhotometricInterpretation", "")),
        "BitsStored": int(ds.get("BitsStored", 0) or 0),
        "stored range": (int(lo), int(hi)),
        "WindowCenter/Width": (ds.get("WindowCenter"), ds.get("WindowWidth")),
        "VOI LUT": bool(ds.get("VOILUTSequence")),
    }
    return raw, display, tags
