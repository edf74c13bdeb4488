"""Decode every image once into a memory-mapped ``uint8`` array that training reads directly.

Decoding a full-size MIMIC DICOM (VOI LUT, 3056 x 2544, 16 bit) costs far more than a
training step on a 256-pixel image, and every epoch would pay it again. :func:`prepare` pays
it once per image and :class:`ImageCache` then serves rows straight from the page cache.

Layout of a cache folder::

    images.u8       n x size x size uint8, row r = index row r (letterboxed, see images.py)
    shapes.i32      n x 2 int32, each source image's native (height, width)
    index.csv       key, path, src_size, src_mtime_ns, row (+ height, width, sha256 when done)
    manifest.json   format, size, n, dtype, layout, keys digest, complete, sha256 of images.u8
    progress/done-<i>-of-<n>.bits   packed done-bitmap of shard i (atomically replaced)

Workers write their rows of ``images.u8`` in place; the parent marks a chunk done only after
the workers flushed it, so an interruption loses at most the chunks in flight. Each shard of a
job array (``shard=(i, n)``: rows r with r % n == i) keeps its own bitmap, so concurrent
shards never write the same file; whichever call sees every row done writes the checksums
and the final manifest (:func:`finalize`). Files are created with a no-replace hard link, so
two shards starting at once agree on one array.

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
from mmcxr.data.errors import CacheError, DataWarning, MissingFileError, SchemaError
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


def _cache_index(table: pd.DataFrame) -> pd.DataFrame:
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


# ---------------------------------------------------------------------------- workers
def _process_chunk(args: tuple[str, int, int, list[int], list[str]]) -> list[int]:
    """Decode, letterbox and write a chunk of rows into the shared memmaps, then flush."""
    cache_dir, n, size, rows, paths = args
    d = Path(cache_dir)
    images = np.memmap(d / ARRAY_FILE, dtype=np.uint8, mode="r+", shape=(n, size, size))
    shapes = np.memmap(d / SHAPES_FILE, dtype=np.int32, mode="r+", shape=(n, 2))
    for row, path in zip(rows, paths, strict=True):
        img, hw = decode_image(path, size)
        images[row] = to_uint8(img)
        shapes[row] = hw
    images.flush()
    shapes.flush()
    del images, shapes
    return rows


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
    """
    if overwrite == "stale":
        kwargs = dict(chunk_size=chunk_size, progress=progress)
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
    index = _cache_index(table)
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

    done = _done_union(d, n)
    mine = np.arange(shard[0], n, shard[1])
    todo = mine[~done[mine]]
    bits_path = _progress_path(d, shard)
    my_bits = _load_bits(bits_path, n) if bits_path.exists() else np.zeros(n, dtype=bool)
    if len(todo):
        paths = index["path"].to_numpy()
        chunks = [
            (
                str(d),
                n,
                int(size),
                [int(r) for r in todo[i : i + chunk_size]],
                [str(paths[r]) for r in todo[i : i + chunk_size]],
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
            if n_workers <= 1 or len(chunks) == 1:
                results: Iterable[list[int]] = map(_process_chunk, chunks)
                _collect(results, my_bits, bits_path, bar)
            else:
                ctx = mp.get_context("spawn")  # safe next to torch/OpenMP threads in notebooks
                with ctx.Pool(min(n_workers, len(chunks))) as pool:
                    _collect(pool.imap_unordered(_process_chunk, chunks), my_bits, bits_path, bar)
        finally:
            bar.close()
    if not _read_manifest(d).get("complete") and _done_union(d, n).all():
        finalize(d, progress=progress)
    return d


def _collect(results: Iterable[list[int]], bits: np.ndarray, bits_path: Path, bar) -> None:
    for rows in results:
        bits[rows] = True
        atomic.write_bytes(bits_path, np.packbits(bits).tobytes(), fsync=True)
        bar.update(len(rows))


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
    atomic.write_bytes(d / INDEX_FILE, index.to_csv(index=False).encode(), fsync=True)
    man.update(complete=True, completed_rows=n, sha256=_sha256_file(d / ARRAY_FILE))
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
        self._rows = pd.Series(index["row"].to_numpy(), index=index["key"].to_numpy())
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
            raise KeyError(f"{key!r} is not in the image cache at {self.cache_dir}") from None

    def rows(self, keys: Sequence[str]) -> np.ndarray:
        """Array rows of many keys (KeyError names the first missing one)."""
        keys = [str(k) for k in keys]
        found = self._rows.reindex(keys)
        if found.isna().any():
            missing = keys[int(np.flatnonzero(found.isna().to_numpy())[0])]
            raise KeyError(
                f"{missing!r} is not in the image cache at {self.cache_dir} "
                f"({int(found.isna().sum())} keys missing)"
            )
        return found.to_numpy(dtype=np.int64)

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
        """Index rows whose source file is now missing or differs in size/mtime."""
        bad = []
        for r in self.index.itertuples():
            try:
                st = os.stat(r.path)
                if st.st_size != r.src_size or st.st_mtime_ns != r.src_mtime_ns:
                    bad.append(r.Index)
            except FileNotFoundError:
                bad.append(r.Index)
        return self.index.loc[bad]

    def __repr__(self) -> str:
        return f"ImageCache({str(self.cache_dir)!r}, n={len(self)}, size={self.size})"
