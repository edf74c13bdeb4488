"""Decode every image once into a memory-mapped ``uint8`` array that training reads directly.

Decoding a full-size MIMIC DICOM (VOI LUT, 3056 x 2544, 16 bit) costs far more than a
training step on a 256-pixel image, and every epoch would pay it again. :func:`prepare` pays
it once per image and :class:`ImageCache` then serves rows straight from the page cache.

Layout of a cache folder::

    images.u8       n x size x size uint8, row r = index row r (letterboxed, see images.py)
    shapes.i32      n x 2 int32, each source image's native (height, width)
    index.csv       key, path, src_size, src_mtime_ns, row (+ height, width, sha256, skipped
                    when done)
    manifest.json   format, size, n, dtype, layout, keys digest, complete, sha256 of images.u8,
                    skipped (key, path, reason of each image left out; see on_error)
    progress/done-<i>-of-<n>.bits      packed done-bitmap of shard i (atomically replaced)
    progress/skipped-<i>-of-<n>.json   {row: reason} of the images shard i left out

Workers write their rows of ``images.u8`` in place; the parent marks a chunk done only after
the workers flushed it, so an interruption loses at most the chunks in flight. Each shard of a
job array (``shard=(i, n)``: rows r with r % n == i) keeps its own bitmap, so concurrent
shards never write the same file; whichever call sees every row done writes the checksums
and the final manifest (:func:`finalize`). Files are created with a no-replace hard link, so
two shards starting at once agree on one array.

An unreadable image (missing, truncated, undecodable) stops ``prepare`` with an error naming
the file (``on_error="raise"``, the default), or with ``on_error="skip"`` is left out: its row
stays black, its reason is recorded before its chunk counts as done (so a resumed build keeps
it), and the finished manifest lists every such image. :class:`ImageCache` then treats those
keys as absent (``key in cache`` is False; asking for one is a ``KeyError`` with the reason),
so a left-out image can never be read as a black film.

This is hand-written because no library in the stack does resumable, sharded, checksummed
image caching; MONAI's PersistentDataset/CacheDataset cache per-item tensors (one file per
item, or RAM) and do not resume or shard a build.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from mmcxr import atomic
from mmcxr.data.errors import CacheError, DataError, DataWarning, MissingFileError, SchemaError
from mmcxr.data.images import SquareGeometry, decode_image, square_geometry, to_uint8

__all__ = [
    "ARRAY_FILE",
    "INDEX_FILE",
    "MANIFEST_FILE",
    "ImageCache",
    "finalize",
    "image_table",
    "prepare",
]

ARRAY_FILE = "images.u8"
SHAPES_FILE = "shapes.i32"
INDEX_FILE = "index.csv"
MANIFEST_FILE = "manifest.json"
PROGRESS_DIR = "progress"
ON_ERROR = ("raise", "skip")
#: ``src_size``/``src_mtime_ns`` of an image that was missing when the index was made.
_MISSING = -1
LAYOUT = "letterbox-lanczos-pad0"
_VERSION = 1


# ---------------------------------------------------------------------------- file helpers


def _create_once(path: Path, write) -> bool:
    """Create ``path`` with ``write(tmp_path)`` unless it exists; True if we created it.

    The temp file is hard-linked into place, which fails if another process got there first
    (unlike ``os.replace``), so concurrent shards never clobber each other's array.
    """
    if path.exists():
        return False
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        try:
            os.link(tmp, path)
            return True
        except FileExistsError:
            return False
    finally:
        Path(tmp).unlink(missing_ok=True)


def _sha256_file(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


# ---------------------------------------------------------------------------- tables
def image_table(fmt: str, data_root: str | os.PathLike) -> pd.DataFrame:
    """Every image of a release as ``key`` + ``path`` (what :func:`prepare` caches)."""
    if fmt in ("mimic-cxr", "mimic-cxr-jpg"):
        from mmcxr.data.mimic import mimic_image_table

        return mimic_image_table(fmt, data_root)
    if fmt in ("openi", "openi-kaggle"):
        from mmcxr.data.openi import openi_image_table

        return openi_image_table(data_root, "kaggle" if fmt == "openi-kaggle" else "xml")
    if fmt == "chestx-ray14":
        from mmcxr.data.chestxray14 import chestxray14_image_table

        return chestxray14_image_table(data_root)
    raise ValueError(f"unknown format {fmt!r}")


def _key_column(table: pd.DataFrame) -> str:
    for c in ("key", "dicom_id", "image_id"):
        if c in table.columns:
            return c
    raise SchemaError(
        "<table>",
        "table= needs a 'key', 'dicom_id' or 'image_id' column and "
        f"a 'path' column; it has {list(table.columns)}",
    )


def _cache_index(table: pd.DataFrame, on_error: str = "raise") -> pd.DataFrame:
    """The cache's index of ``table``: keys, paths and each source's size and mtime.

    A missing file is an error naming it, or with ``on_error="skip"`` gets size and mtime
    ``-1`` (so it counts as changed once it appears) and is recorded when its row is built.
    """
    if "path" not in table.columns:
        raise SchemaError("<table>", f"table= needs a 'path' column; it has {list(table.columns)}")
    keys = table[_key_column(table)].astype(str).to_numpy()
    dup = pd.Series(keys).duplicated()
    if dup.any():
        raise SchemaError(
            "<table>", f"duplicate image key {keys[dup.to_numpy()][0]!r}: one cache row per image"
        )
    paths = [str(Path(p)) for p in table["path"]]
    size, mtime = [], []
    for p in paths:
        try:
            st = os.stat(p)
        except FileNotFoundError:
            if on_error == "skip":
                size.append(_MISSING)
                mtime.append(_MISSING)
                continue
            raise MissingFileError(
                p, "image file not found (listed in the table to cache)"
            ) from None
        size.append(st.st_size)
        mtime.append(st.st_mtime_ns)
    return pd.DataFrame(
        {
            "key": keys,
            "path": paths,
            "src_size": np.asarray(size, np.int64),
            "src_mtime_ns": np.asarray(mtime, np.int64),
            "row": np.arange(len(keys), dtype=np.int64),
        }
    )


def _keys_digest(index: pd.DataFrame) -> str:
    h = hashlib.sha256()
    for k, p in zip(index["key"], index["path"], strict=True):
        h.update(f"{k}\t{p}\n".encode())
    return h.hexdigest()


def _read_index(d: Path) -> pd.DataFrame:
    return pd.read_csv(
        d / INDEX_FILE, dtype={"key": str, "path": str, "sha256": str}, keep_default_na=False
    )


def _read_manifest(d: Path) -> dict[str, Any]:
    try:
        return json.loads((d / MANIFEST_FILE).read_text())
    except FileNotFoundError:
        raise CacheError(
            d, "not an image cache (no manifest.json); run mmcxr.data.prepare"
        ) from None
    except json.JSONDecodeError as e:
        raise CacheError(d / MANIFEST_FILE, f"corrupt manifest ({e})") from None


# ---------------------------------------------------------------------------- progress
def _progress_path(d: Path, shard: tuple[int, int]) -> Path:
    return d / PROGRESS_DIR / f"done-{shard[0]}-of-{shard[1]}.bits"


def _load_bits(path: Path, n: int) -> np.ndarray:
    return np.unpackbits(np.fromfile(path, dtype=np.uint8), count=n).astype(bool)


def _done_union(d: Path, n: int) -> np.ndarray:
    done = np.zeros(n, dtype=bool)
    for p in sorted((d / PROGRESS_DIR).glob("done-*.bits")):
        done |= _load_bits(p, n)
    return done


def _skipped_path(d: Path, shard: tuple[int, int]) -> Path:
    return d / PROGRESS_DIR / f"skipped-{shard[0]}-of-{shard[1]}.json"


def _load_skipped(path: Path) -> dict[int, str]:
    """``{row: reason}`` from one shard's record (empty if it has none)."""
    if not path.is_file():
        return {}
    try:
        return {int(r): str(why) for r, why in json.loads(path.read_text()).items()}
    except (ValueError, AttributeError) as e:
        raise CacheError(path, f"corrupt record of skipped images ({e})") from None


def _skipped_union(d: Path) -> dict[int, str]:
    """Every shard's skipped rows: ``{row: reason}``, in row order."""
    out: dict[int, str] = {}
    for p in sorted((d / PROGRESS_DIR).glob("skipped-*.json")):
        out.update(_load_skipped(p))
    return dict(sorted(out.items()))


def _recorded_skips(d: Path) -> list[dict[str, Any]]:
    """The images a cache left out: the finished manifest's list, else the shards' records."""
    man = _read_manifest(d) if (d / MANIFEST_FILE).exists() else {}
    if man.get("complete"):
        return list(man.get("skipped", []))
    skipped = _skipped_union(d) if (d / PROGRESS_DIR).is_dir() else {}
    if not skipped:
        return []
    index = _read_index(d)
    return [
        {"key": index["key"].iloc[r], "path": index["path"].iloc[r], "reason": why}
        for r, why in skipped.items()
    ]


# ---------------------------------------------------------------------------- workers
def _process_chunk(
    args: tuple[str, int, int, list[int], list[str], str],
) -> tuple[list[int], dict[int, str]]:
    """Decode, letterbox and write a chunk of rows into the shared memmaps, then flush.

    Returns the rows and ``{row: reason}`` of those left out (``on_error="skip"``: black
    row, shape 0 x 0); with ``"raise"`` the first unreadable image's error propagates.
    """
    cache_dir, n, size, rows, paths, on_error = args
    d = Path(cache_dir)
    images = np.memmap(d / ARRAY_FILE, dtype=np.uint8, mode="r+", shape=(n, size, size))
    shapes = np.memmap(d / SHAPES_FILE, dtype=np.int32, mode="r+", shape=(n, 2))
    skipped: dict[int, str] = {}
    for row, path in zip(rows, paths, strict=True):
        try:
            img, hw = decode_image(path, size)
        except DataError as e:
            if on_error != "skip":
                raise
            skipped[row] = f"{type(e).__name__}: {e.problem}"
            images[row] = 0
            shapes[row] = (0, 0)
            continue
        images[row] = to_uint8(img)
        shapes[row] = hw
    images.flush()
    shapes.flush()
    del images, shapes
    return rows, skipped


# ---------------------------------------------------------------------------- prepare
def prepare(
    fmt: str,
    data_root: str | os.PathLike,
    cache_dir: str | os.PathLike,
    size: int = 256,
    workers: int | None = None,
    shard: tuple[int, int] | None = None,
    table: pd.DataFrame | None = None,
    *,
    chunk_size: int = 16,
    overwrite: bool | str = False,
    progress: bool = True,
    on_error: str = "raise",
) -> Path:
    """Build (or resume, or add a shard to) the image cache of a release or a cohort.

    ``table`` (with ``path`` and a ``key``/``dicom_id``/``image_id`` column) restricts the
    cache to a selected cohort; default: every image of ``data_root``. ``workers`` processes
    (default: all cores; 0 or 1 decodes in this process). ``shard=(i, n)`` does rows with
    ``row % n == i`` only; the call that finds every row done finalises the cache. Rerunning
    skips rows already done. A cache built with other settings or from since-modified
    sources raises :class:`CacheError` unless ``overwrite=True`` (which deletes it first; do
    not combine with shards running elsewhere). ``overwrite="stale"`` keeps a cache that is
    still valid and rebuilds, with a warning, one that is not: what a re-executed chapter
    wants after its cohort was regenerated.

    ``on_error="raise"`` (default) stops at the first missing or unreadable image with a
    :class:`~mmcxr.data.errors.DataError` naming it; ``"skip"`` leaves such images out,
    records each with its reason in ``manifest.json`` (``"skipped"``; also
    ``ImageCache(...).skipped``) and builds the rest, warning with their count. A cache that
    left images out is refused in ``"raise"`` mode (a :class:`CacheError` naming the first),
    so that a default call never silently gets a cache with holes.
    """
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {ON_ERROR}, got {on_error!r}")
    if overwrite == "stale":
        kwargs = dict(chunk_size=chunk_size, progress=progress, on_error=on_error)
        try:
            return prepare(fmt, data_root, cache_dir, size, workers, shard, table, **kwargs)
        except CacheError as err:
            if shard not in (None, (0, 1)):
                raise  # never delete a cache that shards elsewhere may be writing
            warnings.warn(f"rebuilding the image cache: {err}", DataWarning, stacklevel=2)
            return prepare(
                fmt, data_root, cache_dir, size, workers, shard, table, overwrite=True, **kwargs
            )
    if overwrite not in (True, False):
        raise ValueError(f"overwrite must be True, False or 'stale', got {overwrite!r}")
    d = Path(cache_dir).expanduser().resolve()
    if size < 8:
        raise ValueError(f"size must be >= 8, got {size}")
    shard = (0, 1) if shard is None else (int(shard[0]), int(shard[1]))
    if not (shard[1] >= 1 and 0 <= shard[0] < shard[1]):
        raise ValueError(f"shard must be (i, n) with 0 <= i < n, got {shard}")
    if overwrite and d.exists():
        for name in (ARRAY_FILE, SHAPES_FILE, INDEX_FILE, MANIFEST_FILE):
            (d / name).unlink(missing_ok=True)
        shutil.rmtree(d / PROGRESS_DIR, ignore_errors=True)
    if table is None:
        table = image_table(fmt, data_root)
    index = _cache_index(table, on_error)
    n = len(index)
    if n == 0:
        raise SchemaError("<table>", "no images to cache")
    spec = {
        "version": _VERSION,
        "format": fmt,
        "size": int(size),
        "n": n,
        "dtype": "uint8",
        "layout": LAYOUT,
        "keys_sha256": _keys_digest(index),
    }
    _initialise(d, index, spec)
    _check_not_stale(d, index)
    if on_error == "raise":
        _refuse_holes(d)

    done = _done_union(d, n)
    mine = np.arange(shard[0], n, shard[1])
    todo = mine[~done[mine]]
    bits_path = _progress_path(d, shard)
    my_bits = _load_bits(bits_path, n) if bits_path.exists() else np.zeros(n, dtype=bool)
    skip_path = _skipped_path(d, shard)
    my_skipped = _load_skipped(skip_path)
    if len(todo):
        paths = index["path"].to_numpy()
        chunks = [
            (
                str(d),
                n,
                int(size),
                [int(r) for r in todo[i : i + chunk_size]],
                [str(paths[r]) for r in todo[i : i + chunk_size]],
                on_error,
            )
            for i in range(0, len(todo), chunk_size)
        ]
        n_workers = (os.cpu_count() or 1) if workers is None else int(workers)
        bar = tqdm(
            total=len(todo),
            desc=f"prepare {fmt} {size}px shard {shard[0]}/{shard[1]}",
            unit="img",
            disable=not progress,
        )
        try:
            record = (my_bits, bits_path, my_skipped, skip_path)
            if n_workers <= 1 or len(chunks) == 1:
                results: Iterable[tuple[list[int], dict[int, str]]] = map(_process_chunk, chunks)
                _collect(results, *record, bar)
            else:
                ctx = mp.get_context("spawn")  # safe next to torch/OpenMP threads in notebooks
                with ctx.Pool(min(n_workers, len(chunks))) as pool:
                    _collect(pool.imap_unordered(_process_chunk, chunks), *record, bar)
        finally:
            bar.close()
    if not _read_manifest(d).get("complete") and _done_union(d, n).all():
        finalize(d, progress=progress)
    holes = _recorded_skips(d)
    if holes:
        first = holes[0]
        warnings.warn(
            f"prepare {fmt}: left out {len(holes)} unreadable image(s) of {n}, recorded in"
            f" {d / MANIFEST_FILE} (first: {first['path']}: {first['reason']})",
            DataWarning,
            stacklevel=2,
        )
    return d


def _collect(
    results: Iterable[tuple[list[int], dict[int, str]]],
    bits: np.ndarray,
    bits_path: Path,
    skipped: dict[int, str],
    skip_path: Path,
    bar,
) -> None:
    """Mark finished chunks done; a chunk's skipped rows are recorded before its done bits."""
    for rows, left_out in results:
        if left_out:
            skipped.update(left_out)
            text = json.dumps({str(r): why for r, why in sorted(skipped.items())}, indent=1)
            atomic.write_bytes(skip_path, text.encode(), fsync=True)
        bits[rows] = True
        atomic.write_bytes(bits_path, np.packbits(bits).tobytes(), fsync=True)
        bar.update(len(rows))


def _refuse_holes(d: Path) -> None:
    """In ``on_error="raise"`` mode, a cache that left images out is an error naming one."""
    holes = _recorded_skips(d)
    if holes:
        first = holes[0]
        raise CacheError(
            d,
            f"was built with on_error='skip' and left out {len(holes)} unreadable image(s)"
            f" (first: {first['path']}: {first['reason']}); pass on_error='skip' to use it as"
            " it is, or fix the files and rebuild (overwrite=True)",
        )


def _initialise(d: Path, index: pd.DataFrame, spec: dict[str, Any]) -> None:
    d.mkdir(parents=True, exist_ok=True)
    (d / PROGRESS_DIR).mkdir(exist_ok=True)
    n, size = spec["n"], spec["size"]
    if (d / MANIFEST_FILE).exists():
        old = _read_manifest(d)
        if old.get("keys_sha256") != spec["keys_sha256"]:
            raise CacheError(
                d,
                f"cache holds other images than asked for ({old.get('n')} "
                f"cached, {n} asked, or other keys/paths); use another "
                "cache_dir or prepare(..., overwrite=True)",
            )
        diff = {k: (old.get(k), v) for k, v in spec.items() if old.get(k) != v}
        if diff:
            raise CacheError(
                d,
                "cache was built with other settings "
                f"({', '.join(f'{k}: {a!r} != {b!r}' for k, (a, b) in diff.items())});"
                " use another cache_dir or prepare(..., overwrite=True)",
            )
    nbytes = n * size * size

    def sparse(nb: int):
        def write(tmp: Path) -> None:
            with open(tmp, "r+b") as f:
                f.truncate(nb)

        return write

    _create_once(d / ARRAY_FILE, sparse(nbytes))
    _create_once(d / SHAPES_FILE, sparse(n * 2 * 4))
    for name, nb in ((ARRAY_FILE, nbytes), (SHAPES_FILE, n * 8)):
        if (d / name).stat().st_size != nb:
            raise CacheError(
                d / name,
                f"has {(d / name).stat().st_size} bytes, expected {nb}; "
                "stale cache from other settings (overwrite=True)",
            )
    _create_once(d / INDEX_FILE, lambda tmp: index.to_csv(tmp, index=False))
    manifest = {**spec, "complete": False, "completed_rows": 0, "sha256": None}
    _create_once(
        d / MANIFEST_FILE,
        lambda tmp: tmp.write_text(json.dumps(manifest, indent=2, sort_keys=True)),
    )


def _check_not_stale(d: Path, index: pd.DataFrame) -> None:
    old = _read_index(d)
    cols = ["key", "path", "src_size", "src_mtime_ns"]
    if len(old) != len(index) or not (old["key"].to_numpy() == index["key"].to_numpy()).all():
        raise CacheError(
            d / INDEX_FILE,
            "index lists other images than asked for; use another cache_dir or overwrite=True",
        )
    changed = (old[cols[2:]].to_numpy() != index[cols[2:]].to_numpy()).any(axis=1)
    if changed.any():
        first = index["path"].iloc[int(np.flatnonzero(changed)[0])]
        raise CacheError(
            d,
            f"stale: {int(changed.sum())} source image(s) changed since they "
            f"were cached (first: {first}); rebuild with overwrite=True",
        )


def finalize(cache_dir: str | os.PathLike, *, progress: bool = True) -> Path:
    """Check every row is done, then write per-row checksums and the complete manifest."""
    d = Path(cache_dir).expanduser().resolve()
    man = _read_manifest(d)
    n, size = int(man["n"]), int(man["size"])
    done = _done_union(d, n)
    if not done.all():
        shards = sorted(p.name for p in (d / PROGRESS_DIR).glob("done-*.bits"))
        raise CacheError(
            d,
            f"incomplete: {int((~done).sum())} of {n} rows not done (first row "
            f"{int(np.flatnonzero(~done)[0])}; progress files: {shards}); run "
            "the missing shards of prepare",
        )
    images = np.memmap(d / ARRAY_FILE, dtype=np.uint8, mode="r", shape=(n, size, size))
    shapes = np.fromfile(d / SHAPES_FILE, dtype=np.int32).reshape(n, 2)
    row_sha = [
        hashlib.sha256(images[r].tobytes()).hexdigest()
        for r in tqdm(range(n), desc="checksums", unit="img", leave=False, disable=not progress)
    ]
    del images
    index = _read_index(d)
    index["height"], index["width"], index["sha256"] = shapes[:, 0], shapes[:, 1], row_sha
    skipped = _skipped_union(d)
    index["skipped"] = [skipped.get(r, "") for r in range(n)]
    atomic.write_bytes(d / INDEX_FILE, index.to_csv(index=False).encode(), fsync=True)
    man.update(
        complete=True,
        completed_rows=n,
        sha256=_sha256_file(d / ARRAY_FILE),
        skipped=[
            {"key": index["key"].iloc[r], "path": index["path"].iloc[r], "reason": why}
            for r, why in skipped.items()
        ],
    )
    atomic.write_bytes(
        d / MANIFEST_FILE, json.dumps(man, indent=2, sort_keys=True).encode(), fsync=True
    )
    return d


# ---------------------------------------------------------------------------- reading
class ImageCache:
    """Read-only access to a finished cache: ``get(keys) -> uint8 (N, size, size)``.

    ``verify="full"`` (default) hashes ``images.u8`` once on opening and compares it with the
    manifest (about a second per GB); ``"rows"`` checks each row's SHA-256 as it is read;
    ``"none"`` trusts the files. Any mismatch is a :class:`CacheError`.

    Images that ``prepare(on_error="skip")`` left out are listed in :attr:`skipped` (key,
    path, reason) and are not in the cache: ``key in cache`` is False and asking for one is
    a ``KeyError`` giving the reason (``len(cache)`` still counts their rows).
    """

    def __init__(self, cache_dir: str | os.PathLike, verify: str = "full") -> None:
        if verify not in ("full", "rows", "none"):
            raise ValueError(f"verify must be 'full', 'rows' or 'none', got {verify!r}")
        d = Path(cache_dir).expanduser().resolve()
        self.cache_dir = d
        man = _read_manifest(d)
        self.manifest = man
        if not man.get("complete"):
            done = int(_done_union(d, int(man["n"])).sum()) if (d / PROGRESS_DIR).is_dir() else 0
            raise CacheError(
                d,
                f"incomplete cache: {done} of {man['n']} rows done; run prepare "
                "(all shards) to finish it",
            )
        n, size = int(man["n"]), int(man["size"])
        self.size = size
        self.format = man.get("format")
        try:
            index = _read_index(d)
        except FileNotFoundError:
            raise CacheError(d / INDEX_FILE, "index missing") from None
        if len(index) != n or not (index["row"].to_numpy() == np.arange(n)).all():
            raise CacheError(d / INDEX_FILE, f"index has {len(index)} rows, manifest says {n}")
        if _keys_digest(index) != man.get("keys_sha256"):
            raise CacheError(
                d / INDEX_FILE, "index keys/paths do not match the manifest (stale or edited index)"
            )
        arr = d / ARRAY_FILE
        if not arr.is_file() or arr.stat().st_size != n * size * size:
            raise CacheError(arr, f"missing or wrong size (expected {n * size * size} bytes)")
        if verify == "full" and _sha256_file(arr) != man.get("sha256"):
            raise CacheError(
                arr,
                "checksum mismatch: the array is corrupt or was modified "
                "after prepare finished; rebuild it",
            )
        self.verify = verify
        self.index = index
        #: The images prepare left out (``on_error="skip"``): key, path, reason.
        self.skipped = pd.DataFrame(man.get("skipped", []), columns=["key", "path", "reason"])
        self._skipped = dict(zip(self.skipped["key"], self.skipped["reason"], strict=True))
        usable = ~index["key"].isin(self._skipped).to_numpy()
        self._rows = pd.Series(
            index["row"].to_numpy()[usable], index=index["key"].to_numpy()[usable]
        )
        self._images = np.memmap(arr, dtype=np.uint8, mode="r", shape=(n, size, size))

    def __getstate__(self) -> dict[str, Any]:
        # DataLoader workers get the path, not a pickled copy of the whole array
        state = self.__dict__.copy()
        state["_images"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        shape = (len(self.index), self.size, self.size)
        self._images = np.memmap(self.cache_dir / ARRAY_FILE, dtype=np.uint8, mode="r", shape=shape)

    def __len__(self) -> int:
        return len(self.index)

    def __contains__(self, key: object) -> bool:
        return key in self._rows.index

    def row(self, key: str) -> int:
        """The array row of one image key."""
        try:
            return int(self._rows[str(key)])
        except KeyError:
            raise KeyError(self._missing_message(str(key))) from None

    def rows(self, keys: Sequence[str]) -> np.ndarray:
        """Array rows of many keys (KeyError names the first missing one)."""
        keys = [str(k) for k in keys]
        found = self._rows.reindex(keys)
        if found.isna().any():
            missing = keys[int(np.flatnonzero(found.isna().to_numpy())[0])]
            raise KeyError(
                f"{self._missing_message(missing)} ({int(found.isna().sum())} keys missing)"
            )
        return found.to_numpy(dtype=np.int64)

    def _missing_message(self, key: str) -> str:
        if key in self._skipped:
            return (
                f"{key!r} was left out of the image cache at {self.cache_dir} when it was"
                f" prepared with on_error='skip' ({self._skipped[key]}); drop it from the"
                " cohort (``key in cache`` is False for it)"
            )
        return f"{key!r} is not in the image cache at {self.cache_dir}"

    def get(self, keys: str | Sequence[str]) -> np.ndarray:
        """Images of ``keys`` as a new ``(N, size, size)`` uint8 array (a str is one key)."""
        if isinstance(keys, str):
            keys = [keys]
        return self.get_rows(self.rows(keys))

    def get_rows(self, rows: Sequence[int] | np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        out = np.asarray(self._images[rows])
        if self.verify == "rows":
            want = self.index["sha256"].to_numpy()
            for i, r in enumerate(rows):
                if hashlib.sha256(out[i].tobytes()).hexdigest() != want[r]:
                    raise CacheError(
                        self.cache_dir / ARRAY_FILE,
                        f"row {r} (key {self.index.key.iloc[r]}) fails its checksum",
                    )
        return out

    def geometry(self, key: str) -> SquareGeometry:
        """Where the source image sits in its cached square (for mapping boxes)."""
        r = self.index.iloc[self.row(key)]
        return square_geometry(int(r["height"]), int(r["width"]), self.size)

    def stale(self) -> pd.DataFrame:
        """Index rows whose source file is now missing or differs in size/mtime.

        An image that was already missing when the cache was prepared (and so left out,
        ``on_error="skip"``) is stale once it appears, not while it stays missing.
        """
        bad = []
        for r in self.index.itertuples():
            try:
                st = os.stat(r.path)
                if st.st_size != r.src_size or st.st_mtime_ns != r.src_mtime_ns:
                    bad.append(r.Index)
            except FileNotFoundError:
                if r.src_size != _MISSING:
                    bad.append(r.Index)
        return self.index.loc[bad]

    def __repr__(self) -> str:
        return f"ImageCache({str(self.cache_dir)!r}, n={len(self)}, size={self.size})"
