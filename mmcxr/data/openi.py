"""IU X-ray / OpenI (NLMCXR) as one table, one row per image, whichever edition is on disk.

The collection is downloaded in three shapes, and a researcher should not have to convert
between them before the first cell runs:

* **NLM, unpacked**: ``ecgen-radiology/<n>.xml`` (one report each: four ``AbstractText``
  sections, empty ones self-closing; MeSH ``major``/``automatic`` terms; one ``parentImage``
  per image) and ``<parentImage id>.png`` anywhere under the root (``NLMCXR_png/``).
* **NLM, as downloaded**: ``NLMCXR_reports.tgz`` (members ``ecgen-radiology/<n>.xml``) and
  ``NLMCXR_png.tgz`` (members ``<id>.png``). They are streamed with :mod:`tarfile`; nothing is
  unpacked to disk. Either archive may stand in for its unpacked folder. An image inside an
  archive has the path ``<archive>::<member>`` (:data:`MEMBER_SEP`).
* **Kaggle** (format ``openi-kaggle``): ``indiana_reports.csv`` (``uid, MeSH, Problems,
  image, indication, comparison, findings, impression``), ``indiana_projections.csv``
  (``uid, filename, projection``) and ``images/images_normalized/<filename>``; no XML. It is
  read into the same columns: ``normal`` from ``MeSH`` (the XML's ``major``; ``Problems``, its
  headings, when ``MeSH`` is blank), the report from the four section columns. It has no
  automatic MeSH indexing, so ``mesh_automatic`` is blank (NaN) there, not empty.

Image ids come in two forms in the XML, ``CXR2_IM-0652-1001`` and, for some reports, with a
``_<k>`` infix, ``CXR1_1_IM-0001-3001`` (some also end in ``-0001``); the Kaggle table names
both without ``CXR`` and without the infix, as ``<n>_IM-....dcm.png``. :func:`image_key`
reduces every form to ``<n>_IM-...``, the ``image_key`` column, and that is what the view join
uses. The XML has no view tag: the view comes from ``indiana_projections.csv`` when it is
anywhere under the root. An image the table does not list gets no view, and that is a
:class:`~mmcxr.data.errors.DataWarning` with the count (``frontal_only`` would otherwise drop
it without a word), as is a root with no projection table at all.
"""

from __future__ import annotations

import io
import os
import re
import tarfile
import warnings
import xml.etree.ElementTree as ET
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image, UnidentifiedImageError
from tqdm.auto import tqdm

from mmcxr.data.errors import (
    DataError,
    DataWarning,
    FormatError,
    ImageDecodeError,
    MissingFileError,
    ReportError,
    SchemaError,
    SkipLog,
)
from mmcxr.data.images import check_raster
from mmcxr.data.sections import normalize_text, report_fields
from mmcxr.data.tables import read_table, require_columns

__all__ = [
    "EDITIONS",
    "KAGGLE_IMAGE_DIR",
    "KAGGLE_REPORTS_FILE",
    "MEMBER_SEP",
    "PNG_ARCHIVE",
    "PROJECTIONS_FILE",
    "REPORTS_ARCHIVE",
    "REPORT_DIR",
    "image_key",
    "load_openi",
    "load_openi_kaggle",
    "openi_edition",
    "openi_image_table",
    "parse_openi_xml",
]

REPORT_DIR = "ecgen-radiology"
REPORTS_ARCHIVE = "NLMCXR_reports.tgz"
PNG_ARCHIVE = "NLMCXR_png.tgz"
PROJECTIONS_FILE = "indiana_projections.csv"
KAGGLE_REPORTS_FILE = "indiana_reports.csv"
KAGGLE_IMAGE_DIR = "images/images_normalized"
#: Separates an archive's path from a member's name in ``path`` and ``report_path``.
MEMBER_SEP = "::"
#: ``xml``: NLM's reports (a folder or the .tgz); ``kaggle``: the two Kaggle CSVs.
EDITIONS = ("xml", "kaggle")

_SECTIONS = ("COMPARISON", "INDICATION", "FINDINGS", "IMPRESSION")
_KAGGLE_SECTIONS = {s: s.lower() for s in _SECTIONS}
# CXR<n>[_<k>]_IM-...  or  <n>_IM-...(.dcm)(.png): uid number, optional infix, the IM- tail
_IMAGE_NAME = re.compile(r"^(?:CXR)?(\d+)(?:_\d+)?_(IM-[0-9A-Za-z-]+?)(?:\.dcm)?(?:\.png)?$", re.I)
_FIRST = [
    "subject_id",
    "study_id",
    "uid",
    "image_id",
    "image_key",
    "path",
    "view",
    "findings",
    "impression",
    "report",
    "report_path",
]


def image_key(name: str) -> str | None:
    """The id every edition shares, ``<n>_IM-<series>-<k>`` (None for a name that is not one).

    ``CXR1_1_IM-0001-3001``, ``CXR1_1_IM-0001-3001.png`` and Kaggle's
    ``1_IM-0001-3001.dcm.png`` all give ``1_IM-0001-3001``; ``CXR2_IM-0652-1001`` and
    ``2_IM-0652-1001.dcm.png`` give ``2_IM-0652-1001``.
    """
    m = _IMAGE_NAME.match(Path(str(name).strip()).name)
    return f"{int(m.group(1))}_{m.group(2).upper()}" if m else None


# --------------------------------------------------------------------------------------------
# one report


def parse_openi_xml(path: str | os.PathLike, data: bytes | None = None) -> dict:
    """One OpenI report: uid, the four sections, MeSH terms and the images it lists.

    ``data`` is the file's bytes when it comes from an archive; ``path`` then only names it
    (``<archive>::<member>``) in errors and in ``report_path``.
    """
    p = str(path)
    try:
        root = ET.parse(p).getroot() if data is None else ET.fromstring(data)
    except FileNotFoundError:
        raise MissingFileError(p, "report XML not found") from None
    except ET.ParseError as e:
        raise ReportError(p, f"malformed XML ({e})") from None
    uid_el = root.find("uId")
    if uid_el is None or not uid_el.get("id"):
        raise ReportError(p, "no <uId id=...> element (not an OpenI report?)")
    texts = {}
    for el in root.iter("AbstractText"):
        label = (el.get("Label") or "").strip().upper()
        if label in _SECTIONS:
            texts[label] = normalize_text("".join(el.itertext()))
    absent = [s for s in ("FINDINGS", "IMPRESSION") if s not in texts]
    if absent:
        raise ReportError(p, f"no AbstractText Label={'/'.join(absent)} element")
    mesh = root.find("MeSH")
    major = (
        [normalize_text(e.text or "") for e in mesh.findall("major")] if mesh is not None else []
    )
    automatic = (
        [normalize_text(e.text or "") for e in mesh.findall("automatic")]
        if mesh is not None
        else []
    )
    images = []
    for im in root.iter("parentImage"):
        cap = im.find("caption")
        images.append(
            {
                "image_id": im.get("id", "").strip(),
                "caption": normalize_text(cap.text or "") if cap is not None else "",
            }
        )
    return {
        **_report_columns(uid_el.get("id").strip(), texts, [m for m in major if m]),
        "mesh_automatic": "; ".join(a for a in automatic if a),
        "images": images,
    }


def _report_columns(uid: str, texts: dict[str, str], major: list[str]) -> dict:
    """The report's columns, built the same way for the XML and the Kaggle edition."""
    texts = {s: texts.get(s, "") for s in _SECTIONS}
    sections = {
        "findings": texts["FINDINGS"],
        "impression": texts["IMPRESSION"],
        "last_paragraph": texts["IMPRESSION"] or texts["FINDINGS"],
    }
    return {
        "uid": uid,
        "comparison": texts["COMPARISON"],
        "indication": texts["INDICATION"],
        **report_fields(sections),
        "report": "\n".join(f"{s}: {texts[s]}" for s in _SECTIONS),
        "mesh_major": "; ".join(major),
        "normal": len(major) > 0 and all(m.lower() == "normal" for m in major),
    }


# --------------------------------------------------------------------------------------------
# where the files are


def _openi_root(root: str | os.PathLike) -> Path:
    r = Path(root).expanduser().resolve()
    if not r.is_dir():
        raise MissingFileError(r, "OpenI root folder not found")
    return r


def openi_edition(root: str | os.PathLike) -> str:
    """``xml`` for NLM's reports (folder or ``NLMCXR_reports.tgz``), ``kaggle`` for the CSVs."""
    r = _openi_root(root)
    if (r / REPORT_DIR).is_dir() or (r / REPORTS_ARCHIVE).is_file():
        return "xml"
    if (r / KAGGLE_REPORTS_FILE).is_file():
        return "kaggle"
    raise FormatError(
        r,
        f"does not look like OpenI: no {REPORT_DIR}/ folder or {REPORTS_ARCHIVE} (NLM edition)"
        f" and no {KAGGLE_REPORTS_FILE} (Kaggle edition)",
    )


def _member_order(name: str) -> tuple[int, str]:
    stem = Path(name).stem
    return (int(stem), name) if stem.isdigit() else (1 << 62, name)


def _tar_members(
    archive: Path, log: SkipLog, read: str | None
) -> Iterator[tuple[str, bytes | None]]:
    """Stream ``(member name, bytes)`` of an archive's regular files; a truncated or corrupt
    archive is one error naming it and how far it got (``on_error="skip"`` keeps the rest).

    Only members whose names end in ``read`` are read (the others give None): passing over a
    member still decompresses it, since a .tgz has no index, but never keeps it in memory.
    """
    count = 0
    try:
        with tarfile.open(archive, mode="r|*") as tf:
            for m in tf:
                base = Path(m.name).name
                if not m.isfile() or base.startswith("._"):  # macOS resource forks
                    continue
                wanted = read is not None and base.lower().endswith(read)
                f = tf.extractfile(m) if wanted else None
                yield m.name, (f.read() if f is not None else None)
                count += 1
    except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
        log.handle(
            FormatError(archive, f"truncated or corrupt archive after {count} file(s) ({e})")
        )


def _xml_reports(r: Path, log: SkipLog) -> list[tuple[str, bytes | None]]:
    """``(report path, bytes or None)`` in report-number order, from the folder or the .tgz."""
    folder = r / REPORT_DIR
    files = (
        sorted(folder.glob("*.xml"), key=lambda p: _member_order(p.name)) if folder.is_dir() else []
    )
    if files:
        return [(str(p), None) for p in files]
    archive = r / REPORTS_ARCHIVE
    if not archive.is_file():
        raise FormatError(folder, "no report .xml files")
    found = [(n, d) for n, d in _tar_members(archive, log, ".xml") if d is not None]
    if not found and not log.rows:
        raise FormatError(archive, f"no {REPORT_DIR}/<n>.xml members")
    found.sort(key=lambda nd: _member_order(nd[0]))
    return [(f"{archive}{MEMBER_SEP}{n}", d) for n, d in found]


def _check_png_bytes(where: str, data: bytes) -> None:
    """:func:`~mmcxr.data.images.check_raster` for an archive member's bytes."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            fmt = im.format
    except UnidentifiedImageError:
        raise ImageDecodeError(where, "not a readable image (unknown or corrupt format)") from None
    except OSError as e:
        raise ImageDecodeError(where, f"unreadable image header ({e})") from None
    if fmt == "PNG" and b"IEND" not in data[-12:]:
        raise ImageDecodeError(where, "PNG is truncated (no IEND chunk)")


def _stem(name: str) -> str:
    base = Path(name).name
    for ext in (".png", ".dcm"):
        base = base.removesuffix(ext) if base.lower().endswith(ext) else base
    return base


@dataclass
class _Images:
    """Image id -> where the PNG is (a file, or ``<archive>::<member>``), by exact id and by
    :func:`image_key`, and the members an archive check found unusable."""

    by_id: dict[str, str] = field(default_factory=dict)
    by_key: dict[str, str] = field(default_factory=dict)
    bad: dict[str, DataError] = field(default_factory=dict)
    archived: bool = False

    def add(self, name: str, where: str) -> None:
        self.by_id.setdefault(_stem(name), where)
        key = image_key(name)
        if key is not None:
            self.by_key.setdefault(key, where)

    def find(self, image_id: str) -> str | None:
        hit = self.by_id.get(image_id)
        if hit is None and (key := image_key(image_id)) is not None:
            hit = self.by_key.get(key)
        return hit


def _png_index(r: Path, log: SkipLog, check: bool, progress: bool) -> _Images:
    """The PNGs unpacked anywhere under the root, else those inside ``NLMCXR_png.tgz``."""
    index = _Images()
    for p in sorted(r.rglob("*.png")):
        index.add(p.name, str(p))
    archive = r / PNG_ARCHIVE
    if index.by_id or not archive.is_file():
        return index
    index.archived = True
    members = _tar_members(archive, log, ".png" if check else None)
    for name, data in tqdm(members, desc=PNG_ARCHIVE, disable=not progress, unit="file"):
        if not name.lower().endswith(".png"):
            continue
        where = f"{archive}{MEMBER_SEP}{name}"
        index.add(name, where)
        if data is not None:
            try:
                _check_png_bytes(where, data)
            except DataError as e:
                index.bad[where] = e
    return index


# --------------------------------------------------------------------------------------------
# views


def _projection_table(path: Path) -> dict[str, str]:
    """:func:`image_key` -> projection from ``indiana_projections.csv``; names that are not
    image names are warned about, and an image listed twice with two views is an error."""
    proj = read_table(path, ["filename", "projection"], dtype=str, what="projection table")
    keys = proj["filename"].map(lambda s: image_key(s) if isinstance(s, str) else None)
    bad = keys.isna()
    if bad.all() and len(proj):
        raise SchemaError(
            path,
            f"no filename is an OpenI image name (e.g. {proj['filename'].iloc[0]!r}; expected"
            " names like 1_IM-0001-3001.dcm.png)",
        )
    if bad.any():
        warnings.warn(
            f"{path}: {int(bad.sum())} filename(s) are not OpenI image names and are ignored"
            f" (e.g. {proj['filename'][bad].iloc[0]!r})",
            DataWarning,
            stacklevel=4,
        )
    views = proj["projection"].fillna("").astype(str).str.strip()
    table = pd.DataFrame({"key": keys, "view": views})[~bad].drop_duplicates()
    twice = table["key"].duplicated()
    if twice.any():
        raise SchemaError(
            path, f"image {table['key'][twice].iloc[0]} is listed with two different projections"
        )
    return {k: v for k, v in zip(table["key"], table["view"], strict=True) if v}


def _warn_no_view(where: Path, missing: pd.Series, n: int, why: str) -> None:
    if missing.any():
        warnings.warn(
            f"{where}: {int(missing.sum())} of {n} image(s) {why} (e.g."
            f" {', '.join(missing[missing].index[:3].astype(str))}); their view is blank and"
            " frontal_only() drops them",
            DataWarning,
            stacklevel=4,
        )


def _views(r: Path, df: pd.DataFrame) -> pd.Series:
    found = sorted(r.rglob(PROJECTIONS_FILE))
    if not found:
        warnings.warn(
            f"{r}: no {PROJECTIONS_FILE}; OpenI's XML has no view tag, so the view of all"
            f" {len(df)} image(s) is blank (frontal_only() needs it: put the Kaggle"
            " projection table anywhere under the root)",
            DataWarning,
            stacklevel=3,
        )
        return pd.Series(np.nan, index=df.index, dtype=object)
    table = _projection_table(found[0])
    view = df["image_key"].map(table)
    _warn_no_view(
        found[0],
        pd.Series(view.isna().to_numpy(), index=df["image_id"]),
        len(df),
        "are not in the projection table",
    )
    return view


# --------------------------------------------------------------------------------------------
# the loaders


def _finish(df: pd.DataFrame, edition: str, log: SkipLog) -> pd.DataFrame:
    if df.empty:
        df = pd.DataFrame(columns=[c for c in _FIRST if c not in ("subject_id", "study_id")])
    df["subject_id"] = df["uid"]
    df["study_id"] = df["uid"]
    for col in ("view", "mesh_automatic"):  # text with blanks, one dtype in both editions
        if col in df.columns:
            df[col] = df[col].astype("str")
    df = df[_FIRST + [c for c in df.columns if c not in _FIRST]].reset_index(drop=True)
    df.attrs["edition"] = edition
    return log.attach(df)


def _load_xml(r: Path, log: SkipLog, check_images: bool, progress: bool, views: bool):
    reports = _xml_reports(r, log)
    pngs = _png_index(r, log, check_images, progress)
    rows = []
    for where, data in tqdm(reports, desc="OpenI reports", disable=not progress, unit="report"):
        try:
            rep = parse_openi_xml(where, data)
        except DataError as e:
            log.handle(e)
            continue
        images = rep.pop("images")
        for im in images:
            path = pngs.find(im["image_id"])
            try:
                if path is None:
                    raise MissingFileError(
                        r / f"{im['image_id']}.png",
                        f"image listed in {Path(where).name} not found under {r}"
                        + (f" or in {PNG_ARCHIVE}" if pngs.archived else ""),
                    )
                if path in pngs.bad:
                    raise pngs.bad[path]
                if check_images and not pngs.archived:
                    check_raster(path)
            except DataError as e:
                log.handle(e)
                continue
            rows.append(
                {
                    **rep,
                    "image_id": im["image_id"],
                    "image_key": image_key(im["image_id"]),
                    "caption": im["caption"],
                    "path": path,
                    "report_path": where,
                }
            )
    df = pd.DataFrame(rows)
    if views and not df.empty:
        df["view"] = _views(r, df)
    elif not df.empty:
        df["view"] = np.nan
    return _finish(df, "xml", log)


def _read_kaggle_csv(path: Path, required: list[str], what: str) -> pd.DataFrame:
    """A Kaggle table as text, where only an empty cell is blank.

    pandas' default missing-value words would turn a report's ``None`` or ``NA`` (real
    COMPARISON texts) into NaN, so they are off here.
    """
    if not path.is_file():
        raise MissingFileError(path, f"{what} not found")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    except Exception as e:  # EmptyDataError, ParserError, UnicodeDecodeError
        raise SchemaError(path, f"cannot parse {what} ({type(e).__name__}: {e})") from None
    df.columns = [str(c).strip() for c in df.columns]
    require_columns(df, required, path, what)
    return df


def _kaggle_uid(values: pd.Series, path: Path) -> pd.Series:
    """The Kaggle tables' integer ``uid`` as ``CXR<n>``; anything else is a SchemaError."""
    s = values.fillna("").astype(str).str.strip()
    m = s.str.extract(r"^(?:CXR)?(\d+)(?:\.0)?$", flags=re.I, expand=False)
    if m.isna().any():
        raise SchemaError(path, f"uid values that are not report numbers: {list(s[m.isna()][:5])}")
    return "CXR" + m.astype(int).astype(str)


def _cell(value: object) -> str:
    """A CSV cell as text: a blank cell (NaN) is the empty section it stands for."""
    return value if isinstance(value, str) else ""


def _split_terms(value: object) -> list[str]:
    return [t for t in (normalize_text(x) for x in _cell(value).split(";")) if t]


def _load_kaggle(r: Path, log: SkipLog, check_images: bool, progress: bool, views: bool):
    rep_path = r / KAGGLE_REPORTS_FILE
    if not rep_path.is_file():
        raise FormatError(
            r, f"does not look like the Kaggle OpenI edition: no {KAGGLE_REPORTS_FILE}"
        )
    reports = _read_kaggle_csv(
        rep_path, ["uid", "MeSH", "Problems", "findings", "impression"], "Kaggle OpenI report table"
    )
    reports["uid"] = _kaggle_uid(reports["uid"], rep_path)
    twice = reports["uid"].duplicated()
    if twice.any():
        raise SchemaError(rep_path, f"uid {reports['uid'][twice].iloc[0]} has two rows")
    proj_path = r / PROJECTIONS_FILE
    if not proj_path.is_file():
        found = sorted(r.rglob(PROJECTIONS_FILE))
        if not found:
            raise MissingFileError(
                proj_path, "Kaggle OpenI projection table not found (it lists the images)"
            )
        proj_path = found[0]
    proj = _read_kaggle_csv(proj_path, ["uid", "filename", "projection"], "projection table")
    proj["uid"] = _kaggle_uid(proj["uid"], proj_path)
    proj["filename"] = proj["filename"].fillna("").astype(str).str.strip()
    twice = proj["filename"].duplicated()
    if twice.any():
        raise SchemaError(proj_path, f"image {proj['filename'][twice].iloc[0]} is listed twice")
    order = proj["uid"].str[3:].astype(int)
    proj = proj.iloc[np.argsort(order.to_numpy(), kind="stable")]

    by_uid = {}
    for row in reports.to_dict("records"):
        texts = {s: normalize_text(_cell(row.get(c))) for s, c in _KAGGLE_SECTIONS.items()}
        major = _split_terms(row["MeSH"]) or _split_terms(row["Problems"])
        by_uid[row["uid"]] = {
            **_report_columns(row["uid"], texts, major),
            "mesh_automatic": np.nan,  # the Kaggle edition has no automatic indexing
            "caption": normalize_text(_cell(row.get("image"))),
        }
    on_disk: dict[str, str] | None = None
    rows = []
    for uid, filename, projection in tqdm(
        proj[["uid", "filename", "projection"]].itertuples(index=False),
        total=len(proj),
        desc="OpenI images",
        disable=not progress,
        unit="image",
    ):
        try:
            key = image_key(filename)
            if key is None or f"CXR{key.split('_', 1)[0]}" != uid:
                raise SchemaError(
                    proj_path,
                    f"filename {filename!r} (uid {uid[3:]}) is not an image name of that"
                    " report (expected <uid>_IM-....dcm.png)",
                )
            if uid not in by_uid:
                raise SchemaError(
                    proj_path,
                    f"image {filename} has uid {uid[3:]}, which "
                    f"{KAGGLE_REPORTS_FILE} does not have",
                )
            path = r / KAGGLE_IMAGE_DIR / filename
            if not path.is_file():
                if on_disk is None:  # another unpacking layout: look once, by name
                    on_disk = {p.name: str(p) for p in sorted(r.rglob("*.png"))}
                found = on_disk.get(filename)
                if found is None:
                    raise MissingFileError(
                        path, f"image listed in {proj_path.name} not found under {r}"
                    )
                path = Path(found)
            if check_images:
                check_raster(path)
        except DataError as e:
            log.handle(e)
            continue
        view = projection.strip() if isinstance(projection, str) else ""
        rows.append(
            {
                **by_uid[uid],
                "image_id": _stem(filename),
                "image_key": key,
                "path": str(path),
                "report_path": str(rep_path),
                "view": view or np.nan,
            }
        )
    df = pd.DataFrame(rows)
    if not df.empty:
        if not views:
            df["view"] = np.nan
        else:
            missing = pd.Series(df["view"].isna().to_numpy(), index=df["image_id"])
            _warn_no_view(proj_path, missing, len(df), "have a blank projection")
    return _finish(df, "kaggle", log)


def load_openi(
    root: str | os.PathLike,
    *,
    edition: str | None = None,
    on_error: str = "raise",
    check_images: bool = True,
    progress: bool = True,
) -> pd.DataFrame:
    """OpenI as one row per image: ids, path, view, report sections, MeSH, ``normal``.

    ``edition`` is ``xml`` (NLM's reports, unpacked or as ``NLMCXR_reports.tgz``) or
    ``kaggle`` (``indiana_reports.csv``); None detects it (:func:`openi_edition`). Either way
    the columns are the same. ``subject_id`` and ``study_id`` are the report uid (``CXR1``): IU
    X-ray has one study per patient, and the shared names let the cohort helpers work on every
    dataset. ``image_id`` is the edition's own name for the image, ``image_key`` the one both
    share (:func:`image_key`). Unusable reports or images are raised or skipped and listed
    (``on_error``); ``df.attrs["edition"]`` says which edition was read.
    """
    return _load(root, edition, on_error, check_images, progress, views=True)


def load_openi_kaggle(
    root: str | os.PathLike,
    *,
    on_error: str = "raise",
    check_images: bool = True,
    progress: bool = True,
) -> pd.DataFrame:
    """:func:`load_openi` of the Kaggle edition (format ``openi-kaggle``)."""
    return _load(root, "kaggle", on_error, check_images, progress, views=True)


def _load(
    root: str | os.PathLike,
    edition: str | None,
    on_error: str,
    check_images: bool,
    progress: bool,
    *,
    views: bool,
) -> pd.DataFrame:
    if edition is not None and edition not in EDITIONS:
        raise ValueError(f"edition must be one of {EDITIONS} or None, got {edition!r}")
    r = _openi_root(root)
    ed = edition or openi_edition(r)
    log = SkipLog(on_error, "load_openi")
    if ed == "kaggle":
        return _load_kaggle(r, log, check_images, progress, views)
    if not ((r / REPORT_DIR).is_dir() or (r / REPORTS_ARCHIVE).is_file()):
        kaggle = (r / KAGGLE_REPORTS_FILE).is_file()
        raise FormatError(
            r,
            f"does not look like OpenI's NLM edition: no {REPORT_DIR}/ folder or"
            f" {REPORTS_ARCHIVE}"
            + (f" ({KAGGLE_REPORTS_FILE} is there: this is format openi-kaggle)" if kaggle else ""),
        )
    return _load_xml(r, log, check_images, progress, views)


def openi_image_table(root: str | os.PathLike, edition: str | None = None) -> pd.DataFrame:
    """Every PNG of an OpenI root, as ``key`` (the edition's image id) and ``path``.

    The image cache decodes files, so images that are only inside ``NLMCXR_png.tgz`` are an
    error saying to unpack it (the table itself, :func:`load_openi`, reads the archive).
    """
    df = _load(root, edition, "raise", False, False, views=False)
    inside = df["path"].astype(str).str.contains(MEMBER_SEP, regex=False)
    if inside.any():
        archive = str(df["path"][inside].iloc[0]).split(MEMBER_SEP, 1)[0]
        raise FormatError(
            archive,
            "the images are inside the archive, and prepare() decodes image files: unpack it"
            f" first (tar xzf {Path(archive).name} -C {Path(archive).parent / 'NLMCXR_png'})",
        )
    return pd.DataFrame({"key": df["image_id"], "path": df["path"]})
