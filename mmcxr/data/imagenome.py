"""Chest ImaGenome 1.0.0: gold boxes and sentence-to-box links, silver scene graphs.

The layout is inferred from public loaders (no first-party spec was found), so the readers
require only the columns the book uses and keep every other column as it is. The gold set is
what the alignment chapter scores attention against: anatomical boxes per image (224-pixel
and original coordinates) and, per report sentence, the boxes it refers to.

The silver scene graphs (one JSON per frontal MIMIC-CXR image, about 240,000) ship as
``silver_dataset/scene_graph.zip``. :class:`SceneGraphs` reads them from that zip as
downloaded, one member at a time (the archive's central directory is read once, members are
inflated on demand), or from ``silver_dataset/scene_graph/`` where it has been unpacked;
unpacking 240,000 small files is slow and not needed.
"""

from __future__ import annotations

import json
import os
import warnings
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from mmcxr.data.errors import DataWarning, FormatError, MissingFileError, ReportError
from mmcxr.data.tables import read_table

__all__ = [
    "MEMBER_SEP",
    "SCENE_GRAPH_DIR",
    "SCENE_GRAPH_ZIP",
    "SceneGraphs",
    "imagenome_root",
    "load_imagenome_gold",
    "load_imagenome_splits",
    "load_scene_graph",
]

GOLD_BOXES = "gold_dataset/gold_bbox_coordinate_annotations_1000images.csv"
GOLD_SENTENCES = "gold_dataset/gold_object_attribute_with_coordinates.txt"
#: The unpacked scene graphs, ``<dicom_id>_SceneGraph.json`` each.
SCENE_GRAPH_DIR = "silver_dataset/scene_graph"
#: The scene graphs as the release ships them.
SCENE_GRAPH_ZIP = "silver_dataset/scene_graph.zip"
#: Separates an archive's path from a member's name (as in :mod:`mmcxr.data.openi`).
MEMBER_SEP = "::"
_SUFFIX = "_SceneGraph.json"
_BOX_COLUMNS = ["image_id", "bbox_name", "x1", "y1", "x2", "y2"]
_SENTENCE_COLUMNS = ["image_id", "sentence", "bbox", "label_name", "context"]


def imagenome_root(root: str | os.PathLike) -> Path:
    """The ImaGenome folder: ``root`` itself, or ``root/chest-imagenome`` (synthetic layout)."""
    r = Path(root).expanduser().resolve()
    for cand in (r, r / "chest-imagenome"):
        if (cand / "gold_dataset").is_dir() or (cand / "silver_dataset").is_dir():
            return cand
    if not r.is_dir():
        raise MissingFileError(r, "Chest ImaGenome root folder not found")
    raise FormatError(
        r,
        "does not look like Chest ImaGenome: no gold_dataset/ or "
        "silver_dataset/ (here or under chest-imagenome/)",
    )


def _dicom_id(image_id: pd.Series) -> pd.Series:
    return image_id.astype(str).str.strip().str.replace(r"\.dcm$", "", regex=True)


def load_imagenome_gold(root: str | os.PathLike) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(boxes, sentences)`` of the gold set, each with a ``dicom_id`` column added.

    ``boxes``: one row per (image, anatomical box), coordinates in 224 space (``x1..y2``)
    and original pixels (``original_*``). ``sentences``: one row per (sentence, box, label)
    from the TSV, ``context`` yes/no.
    """
    r = imagenome_root(root)
    boxes = read_table(r / GOLD_BOXES, _BOX_COLUMNS, what="gold box table")
    boxes.insert(0, "dicom_id", _dicom_id(boxes["image_id"]))
    sent = read_table(r / GOLD_SENTENCES, _SENTENCE_COLUMNS, sep="\t", what="gold sentence table")
    sent.insert(0, "dicom_id", _dicom_id(sent["image_id"]))
    return boxes, sent


def load_imagenome_splits(root: str | os.PathLike) -> pd.DataFrame:
    """Silver split lists ``{train,valid,test}.csv`` concatenated with a ``split`` column."""
    r = imagenome_root(root)
    parts = []
    for name in ("train", "valid", "test"):
        p = r / "silver_dataset" / "splits" / f"{name}.csv"
        if p.is_file():
            t = read_table(p, ["dicom_id"], dtype={"dicom_id": str}, what="split list")
            parts.append(t.assign(split=name))
    if not parts:
        raise MissingFileError(r / "silver_dataset" / "splits", "no split lists found")
    return pd.concat(parts, ignore_index=True)


class SceneGraphs(Mapping[str, dict[str, Any]]):
    """The silver scene graphs of an ImaGenome root by ``dicom_id``, each read when asked for.

    ``graphs[dicom_id]`` is what :func:`load_scene_graph` returns (tables); :meth:`json`
    gives the parsed JSON and :meth:`path` where it is read from (a file, or
    ``<zip>::<member>``, which :func:`load_scene_graph` also accepts). ``root`` may be the
    ImaGenome root (or its parent holding ``chest-imagenome/``), ``silver_dataset/``,
    ``scene_graph.zip`` or the ``scene_graph/`` folder.

    The source is the unpacked folder or the zip, whichever is there; with both, the one
    holding more graphs (the folder on a tie), and a :class:`DataWarning` when they differ,
    since an interrupted unzip leaves a partial folder. Zip members are matched by name
    (``<dicom_id>_SceneGraph.json`` at any depth), so the folder name inside the archive
    does not matter. The zip stays open while the object lives (``close()``, or use it as a
    context manager); a pickled copy (a DataLoader worker) reopens it.
    """

    def __init__(self, root: str | os.PathLike) -> None:
        folder, archive = _scene_graph_sources(root)
        self._zip: zipfile.ZipFile | None = None
        self._members: dict[str, str] = {}
        files: dict[str, Path] = {}
        if folder is not None:
            files = {
                p.name[: -len(_SUFFIX)]: p for p in folder.iterdir() if p.name.endswith(_SUFFIX)
            }
        if archive is not None:
            self._members = _zip_members(self._open(archive))
        self.folder, self.archive = folder, archive
        use_zip = archive is not None and (folder is None or len(self._members) > len(files))
        if folder is not None and archive is not None and len(files) != len(self._members):
            warnings.warn(
                f"{folder}: holds {len(files)} scene graphs, {archive.name} beside it"
                f" {len(self._members)}; reading {'the zip' if use_zip else 'the folder'}"
                " (a partial unzip? delete the folder to read the zip)",
                DataWarning,
                stacklevel=2,
            )
        #: ``"zip"`` or ``"folder"``: where the graphs are read from.
        self.kind = "zip" if use_zip else "folder"
        self._files = {} if use_zip else files
        if not use_zip:
            self.close()
            self._members = {}
        self._ids = sorted(self._members if use_zip else files)

    # -- Mapping
    def __getitem__(self, dicom_id: str) -> dict[str, Any]:
        return _graph_tables(self.json(dicom_id), self.path(dicom_id))

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids)

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, dicom_id: object) -> bool:
        return dicom_id in (self._members if self.kind == "zip" else self._files)

    # -- reading
    def path(self, dicom_id: str) -> str:
        """Where the graph of ``dicom_id`` is read from (``<zip>::<member>`` in the zip)."""
        if self.kind == "zip":
            return f"{self.archive}{MEMBER_SEP}{self._member(dicom_id)}"
        return str(self._file(dicom_id))

    def json(self, dicom_id: str) -> dict[str, Any]:
        """The parsed JSON of one scene graph; a bad one is a ReportError naming it."""
        if self.kind == "folder":
            return _parse_graph(_read_file(self._file(dicom_id)), self.path(dicom_id))
        member = self._member(dicom_id)
        where = f"{self.archive}{MEMBER_SEP}{member}"
        zf = self._zip if self._zip is not None else self._open(self.archive)
        try:
            data = zf.read(member)
        except (zipfile.BadZipFile, OSError, EOFError) as e:  # CRC error, truncated member
            raise ReportError(where, f"corrupt zip member ({e})") from None
        return _parse_graph(data, where)

    def close(self) -> None:
        """Close the zip (reading again reopens it)."""
        if self._zip is not None:
            self._zip.close()
            self._zip = None

    def __enter__(self) -> SceneGraphs:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_zip"] = None  # an open file does not pickle; json() reopens it
        return state

    def __repr__(self) -> str:
        src = self.archive if self.kind == "zip" else self.folder
        return f"SceneGraphs({str(src)!r}, n={len(self)}, kind={self.kind!r})"

    # -- helpers
    def _open(self, archive: Path) -> zipfile.ZipFile:
        try:
            self._zip = zipfile.ZipFile(archive)
        except FileNotFoundError:
            raise MissingFileError(archive, "scene graph archive not found") from None
        except (zipfile.BadZipFile, OSError) as e:
            raise FormatError(
                archive, f"not a readable zip archive ({e}); download it again"
            ) from None
        return self._zip

    def _member(self, dicom_id: str) -> str:
        try:
            return self._members[str(dicom_id)]
        except KeyError:
            raise KeyError(
                f"no scene graph for dicom_id {dicom_id!r} in {self.archive}"
                f" ({len(self._members)} graphs)"
            ) from None

    def _file(self, dicom_id: str) -> Path:
        try:
            return self._files[str(dicom_id)]
        except KeyError:
            raise KeyError(
                f"no scene graph for dicom_id {dicom_id!r} in {self.folder}"
                f" ({len(self._files)} graphs)"
            ) from None


def _scene_graph_sources(root: str | os.PathLike) -> tuple[Path | None, Path | None]:
    """``(folder, zip)`` of the scene graphs under ``root``, either possibly None (not both)."""
    r = Path(root).expanduser().resolve()
    if r.is_file():
        if not zipfile.is_zipfile(r):
            raise FormatError(r, "not a zip archive of scene graphs")
        return None, r
    if r.name == "scene_graph" and r.is_dir():
        base = r.parent
    elif r.name == "silver_dataset" and r.is_dir():
        base = r
    else:
        base = imagenome_root(r) / "silver_dataset"
    folder, archive = base / "scene_graph", base / "scene_graph.zip"
    found = (folder if folder.is_dir() else None, archive if archive.is_file() else None)
    if found == (None, None):
        raise MissingFileError(
            folder, "no silver scene graphs: neither this folder nor scene_graph.zip beside it"
        )
    return found


def _zip_members(zf: zipfile.ZipFile) -> dict[str, str]:
    """``{dicom_id: member name}`` of the ``*_SceneGraph.json`` members (macOS debris skipped)."""
    out: dict[str, str] = {}
    for name in zf.namelist():
        base = name.rsplit("/", 1)[-1]
        if base.endswith(_SUFFIX) and not base.startswith("._") and "__MACOSX/" not in name:
            out.setdefault(base[: -len(_SUFFIX)], name)
    if not out:
        raise FormatError(
            zf.filename or "<zip>", f"holds no *{_SUFFIX} members (not the scene graph archive?)"
        )
    return out


def _read_file(p: Path) -> bytes:
    try:
        return p.read_bytes()
    except FileNotFoundError:
        raise MissingFileError(p, "scene graph not found") from None


def _parse_graph(data: bytes, where: str | os.PathLike) -> dict[str, Any]:
    try:
        g = json.loads(data.decode("utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ReportError(where, f"not valid JSON ({e})") from None
    if not isinstance(g, dict):
        raise ReportError(where, f"scene graph is a JSON {type(g).__name__}, not an object")
    missing = [k for k in ("image_id", "objects", "attributes") if k not in g]
    if missing:
        raise ReportError(where, f"scene graph lacks key(s) {missing}")
    return g


def load_scene_graph(path: str | os.PathLike, dicom_id: str | None = None) -> dict[str, Any]:
    """One silver scene graph as tables.

    ``path`` is a ``<dicom_id>_SceneGraph.json`` file, or a member of the zip as
    ``<scene_graph.zip>::<member>`` (what :meth:`SceneGraphs.path` gives); or, with
    ``dicom_id``, anything :class:`SceneGraphs` accepts (the ImaGenome root, the zip, the
    folder). For many graphs keep one :class:`SceneGraphs` open instead: each call here
    opens the zip and reads its directory again.

    Returns ``{"meta": dict, "objects": DataFrame, "attributes": DataFrame, "phrases":
    DataFrame, "relationships": DataFrame}``. ``phrases`` explodes the parallel per-phrase
    lists of each attribute entry into one row per (box, phrase) with its
    ``category|yes/no|label`` strings.
    """
    if dicom_id is not None:
        with SceneGraphs(path) as graphs:
            return graphs[dicom_id]
    text = str(path)
    if MEMBER_SEP in text:
        archive, member = text.split(MEMBER_SEP, 1)
        zp = Path(archive)
        try:
            with zipfile.ZipFile(zp) as zf:
                data = zf.read(member)
        except FileNotFoundError:
            raise MissingFileError(zp, "scene graph archive not found") from None
        except KeyError:
            raise MissingFileError(text, "no such member in the archive") from None
        except (zipfile.BadZipFile, OSError, EOFError) as e:
            raise ReportError(text, f"unreadable zip or member ({e})") from None
        return _graph_tables(_parse_graph(data, text), text)
    p = Path(path)
    return _graph_tables(_parse_graph(_read_file(p), p), str(p))


def _graph_tables(g: dict[str, Any], where: str) -> dict[str, Any]:
    """The tables of one parsed scene graph (``where`` names it in errors)."""
    meta = {k: v for k, v in g.items() if k not in ("objects", "attributes", "relationships")}
    try:
        objects = pd.DataFrame(g["objects"])
        attributes = pd.DataFrame(g["attributes"])
    except (TypeError, ValueError) as e:
        raise ReportError(where, f"objects/attributes are not lists of records ({e})") from None
    rows = []
    for a in g["attributes"]:
        phrases = a.get("phrases", [])
        for j, phrase in enumerate(phrases):
            rows.append(
                {
                    "bbox_name": a.get("bbox_name"),
                    "object_id": a.get("object_id"),
                    "phrase": phrase,
                    "phrase_id": _nth(a.get("phrase_IDs"), j),
                    "section": _nth(a.get("sections"), j),
                    "attributes": _nth(a.get("attributes"), j) or [],
                }
            )
    phrases = pd.DataFrame(
        rows, columns=["bbox_name", "object_id", "phrase", "phrase_id", "section", "attributes"]
    )
    return {
        "meta": meta,
        "objects": objects,
        "attributes": attributes,
        "phrases": phrases,
        "relationships": pd.DataFrame(g.get("relationships", [])),
    }


def _nth(values: Any, j: int) -> Any:
    return values[j] if isinstance(values, list) and j < len(values) else None
