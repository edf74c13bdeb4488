"""Chest ImaGenome's silver scene graphs read from ``silver_dataset/scene_graph.zip`` as the
release ships it (members read one at a time, nothing unpacked), as well as unpacked; and the
generator's zip form."""

from __future__ import annotations

import functools
import pickle
import shutil
import zipfile
from pathlib import Path

import pandas as pd
import pytest

import mmcxr.synth.write_imagenome as write_imagenome_mod
from mmcxr.data import DataWarning, FormatError, MissingFileError, ReportError, load_scene_graph
from mmcxr.data.imagenome import MEMBER_SEP, SceneGraphs
from mmcxr.synth import generate


def _zip_release(root: Path, *, keep_folder: bool = False, extra: dict[str, bytes] | None = None):
    """Turn the fixture's unpacked scene graphs into the release's ``scene_graph.zip``."""
    silver = root / "chest-imagenome" / "silver_dataset"
    folder = silver / "scene_graph"
    archive = silver / "scene_graph.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("scene_graph/", b"")  # a folder entry, as zip tools write one
        for p in sorted(folder.iterdir()):
            zf.write(p, f"scene_graph/{p.name}")
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    if not keep_folder:
        shutil.rmtree(folder)
    return archive


def _same_tables(a: dict, b: dict) -> None:
    assert a["meta"] == b["meta"]
    for k in ("objects", "attributes", "phrases", "relationships"):
        pd.testing.assert_frame_equal(a[k], b[k])


def test_zip_reads_like_the_folder(imagenome_tree):
    root, ids = imagenome_tree
    d = ids[0]
    unpacked = root / "chest-imagenome/silver_dataset/scene_graph" / f"{d}_SceneGraph.json"
    want = load_scene_graph(unpacked)
    folder = SceneGraphs(root)
    assert folder.kind == "folder" and list(folder) == [d]
    _same_tables(folder[d], want)

    archive = _zip_release(root)
    graphs = SceneGraphs(root)
    assert graphs.kind == "zip" and list(graphs) == [d] and len(graphs) == 1
    assert d in graphs and ids[1] not in graphs
    _same_tables(graphs[d], want)
    assert graphs.json(d)["viewpoint"] == "PA"
    assert graphs.path(d) == f"{archive}{MEMBER_SEP}scene_graph/{d}_SceneGraph.json"
    _same_tables(load_scene_graph(graphs.path(d)), want)  # a member path is a path
    for where in (root, root / "chest-imagenome", archive.parent, archive):
        _same_tables(load_scene_graph(where, d), want)
    # nothing was unpacked beside the archive
    assert sorted(p.name for p in archive.parent.iterdir()) == ["scene_graph.zip", "splits"]
    with pytest.raises(KeyError, match=f"no scene graph for dicom_id '{ids[1]}'"):
        graphs[ids[1]]


def test_zip_members_are_read_on_demand(imagenome_tree, monkeypatch):
    root, ids = imagenome_tree
    _zip_release(root, extra={f"scene_graph/{i}_SceneGraph.json": b"{}" for i in ("x1", "x2")})
    reads = []
    real = zipfile.ZipFile.read
    monkeypatch.setattr(
        zipfile.ZipFile,
        "read",
        lambda self, name, pwd=None: (reads.append(name), real(self, name, pwd))[1],
    )
    with SceneGraphs(root) as graphs:
        assert len(graphs) == 3 and reads == []  # listing reads only the central directory
        graphs.json(ids[0])
        assert reads == [f"scene_graph/{ids[0]}_SceneGraph.json"]
        with pytest.raises(
            ReportError,
            match=r"scene_graph\.zip::scene_graph/x1_SceneGraph\.json: scene graph lacks",
        ):
            graphs["x1"]
        copy = pickle.loads(pickle.dumps(graphs))  # a DataLoader worker reopens the zip
        assert copy.json(ids[0])["image_id"] == ids[0]


def test_member_names_at_any_depth_and_mac_debris(imagenome_tree):
    root, ids = imagenome_tree
    silver = root / "chest-imagenome" / "silver_dataset"
    src = next((silver / "scene_graph").iterdir())
    with zipfile.ZipFile(silver / "scene_graph.zip", "w") as zf:
        zf.write(src, f"silver_dataset/scene_graph/{src.name}")
        zf.writestr(f"__MACOSX/scene_graph/._{src.name}", b"\x00\x05")
    shutil.rmtree(silver / "scene_graph")
    graphs = SceneGraphs(root)
    assert list(graphs) == [ids[0]] and graphs.json(ids[0])["image_id"] == ids[0]


def test_partial_unzip_beside_the_zip_warns(imagenome_tree):
    root, ids = imagenome_tree
    _zip_release(root, keep_folder=True, extra={"scene_graph/more_SceneGraph.json": b"{}"})
    with pytest.warns(
        DataWarning, match=r"holds 1 scene graphs, scene_graph\.zip beside it 2; reading the zip"
    ):
        graphs = SceneGraphs(root)
    assert graphs.kind == "zip" and len(graphs) == 2


def test_bad_archives_are_named(imagenome_tree, tmp_path):
    root, ids = imagenome_tree
    archive = _zip_release(root)
    data = archive.read_bytes()
    archive.write_bytes(data[: len(data) // 2])  # a truncated download
    with pytest.raises(FormatError, match=r"scene_graph\.zip: not a readable zip archive"):
        SceneGraphs(root)
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("readme.txt", "hello")
    with pytest.raises(
        FormatError, match=r"scene_graph\.zip: holds no \*_SceneGraph\.json members"
    ):
        SceneGraphs(root)
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(f"scene_graph/{ids[0]}_SceneGraph.json", "{not json")
    with pytest.raises(
        ReportError,
        match=rf"scene_graph\.zip::scene_graph/{ids[0]}_SceneGraph\.json: not valid JSON",
    ):
        load_scene_graph(root, ids[0])
    archive.unlink()
    with pytest.raises(MissingFileError, match="no silver scene graphs"):
        SceneGraphs(root)
    with pytest.raises(MissingFileError, match="no such member"):
        load_scene_graph(f"{_one_member_zip(tmp_path)}{MEMBER_SEP}scene_graph/nope_SceneGraph.json")


def _one_member_zip(tmp_path: Path) -> Path:
    p = tmp_path / "scene_graph.zip"
    with zipfile.ZipFile(p, "w") as zf:
        zf.writestr("scene_graph/a_SceneGraph.json", "{}")
    return p


def test_generator_writes_the_zip_form(tmp_path, monkeypatch):
    """``write_imagenome(scene_graphs="zip")`` writes the release's archive, reproducibly, with
    the same graphs as the unpacked form."""
    folder_root = generate(
        "mimic-cxr", tmp_path / "folder", n=6, seed=1, image_size=48, workers=1, progress=False
    )
    real = write_imagenome_mod.write_imagenome
    monkeypatch.setattr(
        write_imagenome_mod, "write_imagenome", functools.partial(real, scene_graphs="zip")
    )
    zipped = [
        generate(
            "mimic-cxr", tmp_path / f"zip{k}", n=6, seed=1, image_size=48, workers=1, progress=False
        )
        for k in (1, 2)
    ]
    silver = zipped[0] / "chest-imagenome" / "silver_dataset"
    assert (silver / "scene_graph.zip").is_file() and not (silver / "scene_graph").exists()
    assert not [p for p in silver.iterdir() if p.name.startswith(".")]  # no temp file left
    assert (silver / "scene_graph.zip").read_bytes() == (
        zipped[1] / "chest-imagenome/silver_dataset/scene_graph.zip"
    ).read_bytes()
    unpacked, archived = SceneGraphs(folder_root), SceneGraphs(zipped[0])
    assert (unpacked.kind, archived.kind) == ("folder", "zip")
    assert list(unpacked) == list(archived) and len(archived) > 0
    for d in archived:
        assert archived.json(d) == unpacked.json(d)
    with pytest.raises(ValueError, match="scene_graphs must be one of"):
        real(tmp_path, [], {}, {}, {}, gold_fraction=0.1, seed=0, scene_graphs="tar")
