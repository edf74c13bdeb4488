"""IU X-ray / OpenI as users download it: both image-id forms, the Kaggle CSV edition, NLM's
.tgz archives, and MeSH indexing. Every fixture here is written by hand in the release's own
form (the names, columns and archive members of the real files), never by the generator, so a
loader that only reads what the generator writes fails here."""

from __future__ import annotations

import io
import shutil
import tarfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import OPENI_XML, kaggle_name, planted_image
from PIL import Image

from mmcxr.data import DataWarning, frontal_only, prepare, skipped_files
from mmcxr.data.errors import (
    FormatError,
    ImageDecodeError,
    MissingFileError,
    SchemaError,
)
from mmcxr.data.openi import (
    image_key,
    load_openi,
    load_openi_kaggle,
    openi_edition,
    openi_image_table,
    parse_openi_xml,
)
from mmcxr.data.roots import looks_like, resolve_root
from mmcxr.synth.cohort import sample_cohort
from mmcxr.synth.config import SynthConfig
from mmcxr.synth.labels import OPENI_AUTOMATIC, OPENI_MESH_AGREEMENT, OPENI_NOT_AUTOMATIC
from mmcxr.synth.write_openi import heading, mesh_agrees, plan_mesh


def _load(root: Path, **kw) -> pd.DataFrame:
    """Load with every DataWarning an error: a clean real-form root must warn about nothing."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", DataWarning)
        return load_openi(root, progress=False, **kw)


def _png(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = planted_image(30, 30, seed=seed)
    Image.fromarray(np.rint(img * 255).astype(np.uint8)).save(path)


# --------------------------------------------------------------------------------------------
# 1. image ids: both XML forms and the Kaggle names join


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("CXR1_1_IM-0001-3001", "1_IM-0001-3001"),  # with the _<k> infix
        ("CXR1_1_IM-0001-3001.png", "1_IM-0001-3001"),
        ("1_IM-0001-3001.dcm.png", "1_IM-0001-3001"),  # Kaggle: no CXR, no infix
        ("CXR2_IM-0652-1001", "2_IM-0652-1001"),
        ("2_IM-0652-1001.dcm.png", "2_IM-0652-1001"),
        ("CXR1021_IM-0017-1001-0001.png", "1021_IM-0017-1001-0001"),  # the -0001 variant
        ("1021_IM-0017-1001-0001.dcm.png", "1021_IM-0017-1001-0001"),
        ("CXR37_12_IM-1822-2001", "37_IM-1822-2001"),
        ("images/images_normalized/3_IM-1384-1001.dcm.png", "3_IM-1384-1001"),
        ("00000001_000.png", None),
        ("CXR1", None),
    ],
)
def test_image_key_reduces_every_real_form(name, key):
    assert image_key(name) == key


def test_fixture_uses_the_real_kaggle_names(openi_tree):
    """The shared fixture's projection table names images as the real one does."""
    root, truth = openi_tree
    proj = pd.read_csv(root / "indiana_projections.csv")
    assert proj.filename.iloc[0] == "1_IM-0001-3001.dcm.png"
    assert proj.filename.str.fullmatch(r"\d+_IM-\d{4}-\d{4}\.dcm\.png").all()
    assert truth.image_id.iloc[0] == "CXR1_1_IM-0001-3001"  # the XML keeps the infix
    assert truth.image_id.iloc[2] == "CXR2_IM-0002-1001"


def test_views_join_both_id_forms(openi_tree):
    root, truth = openi_tree
    df = _load(root)  # no warning: every image, infixed or not, found its view
    assert df.view.tolist() == truth.view.tolist()
    assert df.image_id.str.contains("_1_IM-").sum() == 2
    assert frontal_only(df).image_id.tolist() == truth.image_id[truth.view == "Frontal"].tolist()


def test_image_without_a_view_is_warned_with_its_count(openi_tree):
    root, truth = openi_tree
    proj = pd.read_csv(root / "indiana_projections.csv")
    proj[~proj.filename.isin(["1_IM-0001-4001.dcm.png", "3_IM-0003-1001.dcm.png"])].to_csv(
        root / "indiana_projections.csv", index=False
    )
    with pytest.warns(DataWarning, match=r"indiana_projections\.csv: 2 of 8 image\(s\)") as w:
        df = load_openi(root, progress=False)
    assert "CXR1_1_IM-0001-4001" in str(w[0].message) and "frontal_only" in str(w[0].message)
    assert df.view.isna().sum() == 2
    (root / "indiana_projections.csv").unlink()
    with pytest.warns(DataWarning, match="no indiana_projections.csv.*all 8 image"):
        load_openi(root, progress=False)


def test_bad_projection_tables_name_the_file(openi_tree):
    root, _ = openi_tree
    path = root / "indiana_projections.csv"
    proj = pd.read_csv(path)
    twice = pd.concat([proj, proj.iloc[[0]].assign(projection="Lateral")])
    twice.to_csv(path, index=False)
    with pytest.raises(SchemaError, match=r"indiana_projections\.csv: image 1_IM-0001-3001 is"):
        load_openi(root, progress=False)
    proj.assign(filename="00000001_000.png").to_csv(path, index=False)
    with pytest.raises(SchemaError, match="no filename is an OpenI image name"):
        load_openi(root, progress=False)
    proj.drop(columns="projection").to_csv(path, index=False)
    with pytest.raises(SchemaError, match=r"indiana_projections\.csv.*projection"):
        load_openi(root, progress=False)


def test_png_named_either_way_is_found(openi_tree):
    """An XML root whose PNGs are Kaggle's normalised files still finds every image."""
    root, truth = openi_tree
    for i in truth.image_id:
        src = root / "NLMCXR_png" / f"{i}.png"
        dst = root / "images" / "images_normalized" / kaggle_name(i)
        dst.parent.mkdir(parents=True, exist_ok=True)
        src.rename(dst)
    df = _load(root)
    assert df.path.map(lambda p: Path(p).name).tolist() == [kaggle_name(i) for i in truth.image_id]


# --------------------------------------------------------------------------------------------
# 2. the Kaggle edition

# Two reports as the real indiana_reports.csv has them: report 1 normal (``normal`` in both
# MeSH and Problems), report 2 abnormal with two terms; blank cells for absent sections.
KAGGLE_REPORTS = """uid,MeSH,Problems,image,indication,comparison,findings,impression
1,normal,normal,Xray Chest PA and Lateral,Positive TB test,None.,"The cardiac silhouette and \
mediastinum size are within normal limits. There is no pulmonary edema.",Normal chest x-XXXX.
2,Cardiomegaly/borderline;Pulmonary Artery/enlarged,Cardiomegaly;Pulmonary Artery,\
"Chest, 2 views, frontal and lateral",Preop bariatric surgery.,,"Borderline cardiomegaly. \
Midline sternotomy XXXX.",Borderline cardiomegaly. No acute disease.
"""
# the real table's names: report 1's images have the infix in the XML, report 2's do not
KAGGLE_PROJECTIONS = """uid,filename,projection
1,1_IM-0001-4001.dcm.png,Frontal
1,1_IM-0001-3001.dcm.png,Lateral
2,2_IM-0652-1001.dcm.png,Frontal
2,2_IM-0652-2001.dcm.png,Lateral
"""
XML_IDS = {
    1: ["CXR1_1_IM-0001-4001", "CXR1_1_IM-0001-3001"],
    2: ["CXR2_IM-0652-1001", "CXR2_IM-0652-2001"],
}


def build_kaggle_tree(root: Path) -> Path:
    (root / "images" / "images_normalized").mkdir(parents=True)
    (root / "indiana_reports.csv").write_text(KAGGLE_REPORTS)
    (root / "indiana_projections.csv").write_text(KAGGLE_PROJECTIONS)
    for j, line in enumerate(KAGGLE_PROJECTIONS.splitlines()[1:]):
        _png(root / "images" / "images_normalized" / line.split(",")[1], seed=j)
    return root


def build_xml_twin(root: Path) -> Path:
    """The same two reports as NLM's XML, with the images the Kaggle table names."""
    (root / "ecgen-radiology").mkdir(parents=True)
    rep = pd.read_csv(io.StringIO(KAGGLE_REPORTS), dtype=str)
    j = 0
    for r in rep.itertuples():
        n = int(r.uid)

        def section(label: str, text: object) -> str:
            return (
                f'<AbstractText Label="{label}">{text}</AbstractText>'
                if isinstance(text, str)
                else f'<AbstractText Label="{label}"/>'
            )

        imgs = "".join(
            f'<parentImage id="{i}"><figureId>F{k + 1}</figureId><caption>{r.image}</caption>'
            f'<panel type="single"><url>/hadoop/{i}.jpg</url></panel></parentImage>'
            for k, i in enumerate(XML_IDS[n])
        )
        xml = OPENI_XML.format(
            n=n,
            findings=section("FINDINGS", r.findings),
            impression=section("IMPRESSION", r.impression),
            major="</major><major>".join(r.MeSH.split(";")),
            automatic="" if n == 1 else "<automatic>cardiomegaly</automatic>",
            images=imgs,
        )
        xml = xml.replace(">None.<", f">{r.comparison}<" if isinstance(r.comparison, str) else "><")
        xml = xml.replace("XXXX-year-old with cough.", r.indication)
        (root / "ecgen-radiology" / f"{n}.xml").write_text(xml)
        for i in XML_IDS[n]:
            _png(root / "NLMCXR_png" / f"{i}.png", seed=j)
            j += 1
    (root / "indiana_projections.csv").write_text(KAGGLE_PROJECTIONS)
    return root


def test_kaggle_edition_reads_into_the_table(tmp_path):
    root = build_kaggle_tree(tmp_path / "kaggle")
    assert openi_edition(root) == "kaggle" and looks_like("openi-kaggle", root)
    assert not looks_like("openi", root)
    df = _load(root)
    assert df.attrs["edition"] == "kaggle"
    assert df.image_id.tolist() == [
        "1_IM-0001-4001",
        "1_IM-0001-3001",
        "2_IM-0652-1001",
        "2_IM-0652-2001",
    ]
    assert df.uid.tolist() == ["CXR1", "CXR1", "CXR2", "CXR2"] and (df.subject_id == df.uid).all()
    assert df.view.tolist() == ["Frontal", "Lateral", "Frontal", "Lateral"]
    assert df.normal.tolist() == [True, True, False, False]
    assert df.mesh_major.iloc[2] == "Cardiomegaly/borderline; Pulmonary Artery/enlarged"
    assert df.mesh_automatic.isna().all()  # not in this edition: blank, not "no terms"
    assert df.caption.iloc[2] == "Chest, 2 views, frontal and lateral"
    assert df.comparison.tolist()[1:3] == ["None.", ""]
    assert df.impression.iloc[0] == "Normal chest x-XXXX."
    assert (df.findings_source == "findings").all()
    assert all(Path(p).parent == root / "images" / "images_normalized" for p in df.path)
    pd.testing.assert_frame_equal(load_openi_kaggle(root, progress=False), df)
    with pytest.raises(FormatError, match="this is format openi-kaggle"):
        load_openi(root, edition="xml")


def test_kaggle_and_xml_editions_give_the_same_table(tmp_path):
    kag = _load(build_kaggle_tree(tmp_path / "kaggle")).set_index("image_key")
    xml = _load(build_xml_twin(tmp_path / "xml")).set_index("image_key")
    assert xml.attrs["edition"] == "xml"
    assert xml.index.tolist() == kag.index.tolist()
    assert xml.image_id.tolist() == [i for n in (1, 2) for i in XML_IDS[n]]
    same = [c for c in kag.columns if c not in ("image_id", "path", "report_path")]
    same.remove("mesh_automatic")
    pd.testing.assert_frame_equal(xml[same], kag[same])
    assert xml.mesh_automatic.tolist() == ["", "", "cardiomegaly", "cardiomegaly"]


def test_kaggle_normal_from_problems_when_mesh_is_blank(tmp_path):
    root = build_kaggle_tree(tmp_path / "kaggle")
    text = (root / "indiana_reports.csv").read_text().replace("1,normal,normal", "1,,normal")
    (root / "indiana_reports.csv").write_text(text)
    df = _load(root)
    assert df.normal.tolist() == [True, True, False, False] and df.mesh_major.iloc[0] == "normal"


def test_kaggle_words_pandas_would_blank_are_kept(tmp_path):
    """``None`` and ``NA`` are report text (a COMPARISON of ``None``), not missing cells."""
    root = build_kaggle_tree(tmp_path / "kaggle")
    text = (root / "indiana_reports.csv").read_text()
    text = text.replace(",Preop bariatric surgery.,,", ",NA,None,")
    (root / "indiana_reports.csv").write_text(text)
    df = _load(root)
    assert df.comparison.iloc[2] == "None" and df.indication.iloc[2] == "NA"
    assert "COMPARISON: None\nINDICATION: NA\n" in df.report.iloc[2]


def test_kaggle_bad_input_names_the_file(tmp_path):
    root = build_kaggle_tree(tmp_path / "kaggle")
    reports, proj = root / "indiana_reports.csv", root / "indiana_projections.csv"
    good_reports, good_proj = reports.read_text(), proj.read_text()

    reports.write_text(good_reports.replace("uid,MeSH,Problems", "uid,MeSH,Problem"))
    with pytest.raises(SchemaError, match=r"indiana_reports\.csv.*Problems"):
        load_openi(root, progress=False)
    reports.write_text(good_reports.replace("\n2,", "\nCXR-two,"))
    with pytest.raises(SchemaError, match=r"indiana_reports\.csv: uid values .*CXR-two"):
        load_openi(root, progress=False)
    reports.write_text(good_reports.replace("\n2,", "\n1,"))
    with pytest.raises(SchemaError, match=r"indiana_reports\.csv: uid CXR1 has two rows"):
        load_openi(root, progress=False)
    reports.write_text(good_reports)

    proj.write_text(good_proj + "3,3_IM-1384-1001.dcm.png,Frontal\n")
    with pytest.raises(SchemaError, match=r"indiana_projections\.csv: image 3_IM-1384.*uid 3"):
        load_openi(root, progress=False)
    with pytest.warns(DataWarning, match="skipped 1"):
        df = load_openi(root, on_error="skip", progress=False)
    assert len(df) == 4
    proj.write_text(good_proj.replace("2,2_IM-0652-2001", "2,1_IM-0652-2001"))
    with pytest.raises(SchemaError, match="not an image name of that report"):
        load_openi(root, progress=False)
    proj.write_text(good_proj.replace("2_IM-0652-2001.dcm.png,Lateral", "2_IM-0652-2001.dcm.png,"))
    with pytest.warns(DataWarning, match=r"1 of 4 image\(s\) have a blank projection"):
        load_openi(root, progress=False)
    proj.write_text(good_proj)

    missing = root / "images" / "images_normalized" / "2_IM-0652-1001.dcm.png"
    missing.unlink()
    with pytest.raises(MissingFileError, match=r"images_normalized/2_IM-0652-1001\.dcm\.png"):
        load_openi(root, progress=False)
    proj.unlink()
    with pytest.raises(MissingFileError, match="projection table not found"):
        load_openi(root, progress=False)


def test_not_openi_says_which_files_it_looked_for(tmp_path):
    with pytest.raises(FormatError, match="no ecgen-radiology/.*NLMCXR_reports.tgz.*indiana"):
        load_openi(tmp_path)
    with pytest.raises(ValueError, match="edition must be one of"):
        load_openi(tmp_path, edition="csv")


# --------------------------------------------------------------------------------------------
# 3. NLM's archives, read as downloaded


def _pack(root: Path, *, png_folder: str = "") -> Path:
    """Replace the unpacked tree by NLMCXR_reports.tgz and NLMCXR_png.tgz, as NLM ships them."""
    with tarfile.open(root / "NLMCXR_reports.tgz", "w:gz") as tf:
        for p in sorted((root / "ecgen-radiology").glob("*.xml"), key=lambda p: int(p.stem)):
            tf.add(p, arcname=f"ecgen-radiology/{p.name}")
    with tarfile.open(root / "NLMCXR_png.tgz", "w:gz") as tf:
        for p in sorted((root / "NLMCXR_png").glob("*.png")):
            tf.add(p, arcname=f"{png_folder}{p.name}")
    shutil.rmtree(root / "ecgen-radiology")
    shutil.rmtree(root / "NLMCXR_png")
    return root


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.mark.parametrize("png_folder", ["", "NLMCXR_png/"])
def test_archives_read_as_downloaded(openi_tree, png_folder):
    root, truth = openi_tree
    unpacked = _load(root)
    _pack(root, png_folder=png_folder)
    before = _files(root)
    assert before == ["NLMCXR_png.tgz", "NLMCXR_reports.tgz", "indiana_projections.csv"]
    assert looks_like("openi", root) and resolve_root("openi", root, n=1, image_size=8) == root
    df = _load(root)
    assert _files(root) == before  # nothing unpacked to disk
    cols = [c for c in df.columns if c not in ("path", "report_path")]
    pd.testing.assert_frame_equal(df[cols], unpacked[cols])
    assert df.report_path.iloc[0] == f"{root / 'NLMCXR_reports.tgz'}::ecgen-radiology/1.xml"
    assert df.path.iloc[0] == f"{root / 'NLMCXR_png.tgz'}::{png_folder}CXR1_1_IM-0001-3001.png"
    with pytest.raises(FormatError, match=r"NLMCXR_png\.tgz: the images are inside the archive"):
        openi_image_table(root)


def test_one_archive_beside_an_unpacked_folder(openi_tree):
    root, truth = openi_tree
    shutil.copytree(root / "NLMCXR_png", root / "kept")
    _pack(root)
    (root / "NLMCXR_png.tgz").unlink()
    (root / "kept").rename(root / "NLMCXR_png")
    df = _load(root)
    assert df.image_id.tolist() == truth.image_id.tolist()
    assert all(Path(p).is_file() for p in df.path)
    assert df.report_path.str.contains("NLMCXR_reports.tgz::").all()
    assert openi_image_table(root).key.tolist() == truth.image_id.tolist()


def test_truncated_or_corrupt_archives_name_the_archive(openi_tree):
    root, truth = openi_tree
    _pack(root)
    reports = root / "NLMCXR_reports.tgz"
    good = reports.read_bytes()
    reports.write_bytes(good[: len(good) // 2])
    with pytest.raises(FormatError, match=r"NLMCXR_reports\.tgz: truncated or corrupt archive"):
        load_openi(root, progress=False)
    with pytest.warns(DataWarning, match="skipped 1"):
        df = load_openi(root, on_error="skip", progress=False)
    assert "truncated" in skipped_files(df).reason.iloc[0]
    reports.write_bytes(b"not a tar file at all")
    with pytest.raises(FormatError, match=r"NLMCXR_reports\.tgz: truncated or corrupt"):
        load_openi(root, progress=False)
    reports.write_bytes(good)

    # one PNG member cut short inside an intact archive: that image, named by its member
    pngs = root / "NLMCXR_png.tgz"
    with tarfile.open(pngs) as tf:
        members = [(m, tf.extractfile(m).read()) for m in tf.getmembers()]
    with tarfile.open(pngs, "w:gz") as tf:
        for m, data in members:
            if m.name == "CXR2_IM-0002-1001.png":
                data = data[: len(data) - 20]
            m.size = len(data)
            tf.addfile(m, io.BytesIO(data))
    with pytest.raises(ImageDecodeError, match=r"NLMCXR_png\.tgz::CXR2_IM-0002-1001\.png: PNG"):
        load_openi(root, progress=False)
    with pytest.warns(DataWarning, match="skipped 1"):
        df = load_openi(root, on_error="skip", progress=False)
    assert "CXR2_IM-0002-1001" not in set(df.image_id) and len(df) == len(truth) - 1
    assert len(load_openi(root, check_images=False, progress=False)) == len(truth)


# --------------------------------------------------------------------------------------------
# 4. MeSH: major and automatic are different indexings


def test_major_and_automatic_read_as_they_are(tmp_path):
    p = tmp_path / "1.xml"
    p.write_text(
        OPENI_XML.format(
            n=1,
            findings='<AbstractText Label="FINDINGS">Calcified granuloma.</AbstractText>',
            impression='<AbstractText Label="IMPRESSION">No acute disease.</AbstractText>',
            major="Calcified Granuloma/lung/upper lobe/right</major><major>Thoracic Vertebrae/"
            "degenerative/mild",
            automatic="<automatic>calcified granuloma</automatic>",
            images="",
        )
    )
    rep = parse_openi_xml(p)
    assert rep["mesh_major"] == (
        "Calcified Granuloma/lung/upper lobe/right; Thoracic Vertebrae/degenerative/mild"
    )
    assert rep["mesh_automatic"] == "calcified granuloma" and rep["normal"] is False
    assert not mesh_agrees(rep["mesh_major"].split("; "), rep["mesh_automatic"].split("; "))
    assert mesh_agrees(["Cardiomegaly/borderline"], ["cardiomegaly"])
    assert not mesh_agrees(["normal"], [])


def test_synthetic_mesh_follows_the_real_indexing():
    """Planned MeSH: automatic terms from the real vocabulary, sparser than the major ones,
    agreeing with them at the real rate (285 of 3,955 reports)."""
    studies = sample_cohort(1000, seed=3, dataset="openi")
    mesh = plan_mesh(studies, seed=3, agreement_rate=OPENI_MESH_AGREEMENT)
    vocabulary = {t for terms in OPENI_AUTOMATIC.values() for t in terms}
    autos = [t for m in mesh.values() for t in m.automatic]
    assert set(autos) <= vocabulary and not set(autos) & OPENI_NOT_AUTOMATIC
    assert all(t == t.lower() and "/" not in t for t in autos)
    agree = sum(mesh_agrees(m.major, m.automatic) for m in mesh.values())
    assert agree == round(OPENI_MESH_AGREEMENT * 1000)
    abnormal = [m for m in mesh.values() if m.major != ("normal",)]
    assert all(not m.automatic for m in mesh.values() if m.major == ("normal",))
    assert sum(len(m.automatic) for m in abnormal) < 0.7 * sum(len(m.major) for m in abnormal)
    assert sum(bool(m.automatic) for m in abnormal) > 0.3 * len(abnormal)  # sparse, not absent
    assert {heading(t) for m in abnormal for t in m.major} <= set(OPENI_AUTOMATIC)
    none = plan_mesh(studies, seed=3, agreement_rate=0.0)
    assert not any(mesh_agrees(m.major, m.automatic) for m in none.values())
    assert [m.major for m in none.values()] == [m.major for m in mesh.values()]
    with pytest.raises(ValueError, match="openi_mesh_agreement_rate must be in"):
        SynthConfig(openi_mesh_agreement_rate=1.5)


# --------------------------------------------------------------------------------------------
# the image cache reads the Kaggle edition through its own format name


def test_prepare_reads_the_kaggle_edition(tmp_path):
    root = build_kaggle_tree(tmp_path / "kaggle")
    out = prepare("openi-kaggle", root, tmp_path / "cache", size=16, workers=0, progress=False)
    index = pd.read_csv(out / "index.csv")
    assert index.key.tolist() == [
        "1_IM-0001-4001",
        "1_IM-0001-3001",
        "2_IM-0652-1001",
        "2_IM-0652-2001",
    ]
