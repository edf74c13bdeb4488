"""resolve_root: synthetic cohorts are generated once, atomically, under a descriptive name,
and regenerated when the generator code changes; a user's own root is never touched. The
config file is read by one reader (for the chapters and the staleness check alike), and a
root's tree is listed by its shape."""

from __future__ import annotations

import json

import pytest

import mmcxr.synth
from mmcxr.data import (
    DataWarning,
    FormatError,
    load_synth_config,
    resolve_root,
    tree_listing,
)
from mmcxr.names import CONFIG_FILE
from mmcxr.provenance import describe_source
from mmcxr.synth import fingerprint
from mmcxr.synth.config import SynthConfig


@pytest.fixture
def fake_generate(tmp_path, monkeypatch):
    """Stand-in generator: the format's marker file and, as the real one does, a
    ``synthetic_config.json`` with the generator fingerprint; counts its calls."""
    monkeypatch.setenv("MMCXR_HOME", str(tmp_path / "home"))
    calls = []

    def generate(fmt, out_dir, n, seed, image_size, config=None):
        calls.append((fmt, n, seed, image_size, config))
        out_dir.mkdir(parents=True)
        (out_dir / "Data_Entry_2017.csv").write_text(f"Image Index\ncall {len(calls)}\n")
        payload = {fingerprint.FINGERPRINT_KEY: fingerprint.generator_fingerprint()}
        (out_dir / "synthetic_config.json").write_text(json.dumps(payload))
        return out_dir

    monkeypatch.setattr(mmcxr.synth, "generate", generate)
    return calls


def test_generated_once_and_reused(tmp_path, fake_generate):
    root = resolve_root("chestx-ray14", None, n=40, seed=3, image_size=96)
    assert root == tmp_path / "home" / "data" / "synthetic" / "chestx-ray14-n40-s3-px96"
    assert (root / "Data_Entry_2017.csv").is_file()
    assert resolve_root("chestx-ray14", None, n=40, seed=3, image_size=96) == root
    assert len(fake_generate) == 1
    assert [p.name for p in root.parent.iterdir()] == [root.name]  # no temp dir left over


def test_config_changes_the_name(fake_generate):
    default = resolve_root("chestx-ray14", None, n=8, image_size=64, config=SynthConfig())
    custom = resolve_root(
        "chestx-ray14", None, n=8, image_size=64, config=SynthConfig(label_noise_rate=0.0)
    )
    assert default.name == "chestx-ray14-n8-s0-px64"
    assert custom.name.startswith("chestx-ray14-n8-s0-px64-c") and custom != default
    assert len(fake_generate) == 2


def test_failed_generation_leaves_nothing(tmp_path, fake_generate, monkeypatch):
    def broken(fmt, out_dir, **kw):
        out_dir.mkdir(parents=True)
        (out_dir / "half-written").write_text("x")
        raise RuntimeError("generator crashed")

    monkeypatch.setattr(mmcxr.synth, "generate", broken)
    with pytest.raises(RuntimeError, match="crashed"):
        resolve_root("openi", None, n=4, image_size=64)
    assert list((tmp_path / "home" / "data" / "synthetic").iterdir()) == []


def test_leftover_junk_under_final_name_is_an_error(tmp_path, fake_generate):
    junk = tmp_path / "home" / "data" / "synthetic" / "openi-n4-s0-px64"
    junk.mkdir(parents=True)
    (junk / "something").write_text("x")
    with pytest.raises(FormatError, match="not a complete openi cohort"):
        resolve_root("openi", None, n=4, image_size=64)


def test_fingerprint_hashes_the_generator_sources(tmp_path, monkeypatch):
    names = {p.name for p in fingerprint.generator_sources()}
    assert {"phantom.py", "cohort.py", "reports.py", "fingerprint.py", "labels.py"} <= names
    a = fingerprint.generator_fingerprint()
    assert a == fingerprint.generator_fingerprint() and len(a) == 64
    # an edited source changes it: hash a copy of the tree with one byte added to phantom.py
    copy = tmp_path / "mmcxr"
    (copy / "synth").mkdir(parents=True)
    package = fingerprint.generator_sources()[0].parents[1]
    for p in fingerprint.generator_sources():
        (copy / p.relative_to(package)).write_bytes(p.read_bytes())
    monkeypatch.setattr(fingerprint, "__file__", str(copy / "synth" / "fingerprint.py"))
    assert fingerprint.generator_fingerprint() == a
    with open(copy / "synth" / "phantom.py", "a") as f:
        f.write("#")
    assert fingerprint.generator_fingerprint() != a


def test_real_generator_records_its_fingerprint(tmp_path):
    root = mmcxr.synth.generate("openi", tmp_path / "c", n=2, image_size=32, progress=False)
    recorded = json.loads((root / "synthetic_config.json").read_text())
    assert recorded[fingerprint.FINGERPRINT_KEY] == fingerprint.generator_fingerprint()


def test_changed_generator_regenerates_the_cached_cohort(tmp_path, fake_generate, monkeypatch):
    root = resolve_root("chestx-ray14", None, n=40, seed=3, image_size=96)
    assert "call 1" in (root / "Data_Entry_2017.csv").read_text()
    monkeypatch.setattr(fingerprint, "generator_fingerprint", lambda: "f" * 64)
    with pytest.warns(DataWarning, match="other generator code.*regenerating"):
        again = resolve_root("chestx-ray14", None, n=40, seed=3, image_size=96)
    assert again == root and len(fake_generate) == 2
    assert "call 2" in (root / "Data_Entry_2017.csv").read_text()  # replaced, not merged
    recorded = json.loads((root / "synthetic_config.json").read_text())
    assert recorded[fingerprint.FINGERPRINT_KEY] == "f" * 64
    assert [p.name for p in root.parent.iterdir()] == [root.name]  # old copy and temp gone
    assert resolve_root("chestx-ray14", None, n=40, seed=3, image_size=96) == root
    assert len(fake_generate) == 2  # current again: reused


def test_cohort_without_a_fingerprint_is_regenerated(tmp_path, fake_generate):
    root = tmp_path / "home" / "data" / "synthetic" / "chestx-ray14-n8-s0-px64"
    root.mkdir(parents=True)
    (root / "Data_Entry_2017.csv").write_text("Image Index\nold\n")
    (root / "synthetic_config.json").write_text(json.dumps({"config": {}}))
    with pytest.warns(DataWarning, match="before generator fingerprints"):
        assert resolve_root("chestx-ray14", None, n=8, image_size=64) == root
    assert "call 1" in (root / "Data_Entry_2017.csv").read_text()


def test_failed_regeneration_keeps_the_old_cohort(tmp_path, fake_generate, monkeypatch):
    root = resolve_root("chestx-ray14", None, n=8, image_size=64)
    monkeypatch.setattr(fingerprint, "generator_fingerprint", lambda: "0" * 64)

    def broken(fmt, out_dir, **kw):
        raise RuntimeError("generator crashed")

    monkeypatch.setattr(mmcxr.synth, "generate", broken)
    with pytest.warns(DataWarning), pytest.raises(RuntimeError, match="crashed"):
        resolve_root("chestx-ray14", None, n=8, image_size=64)
    assert "call 1" in (root / "Data_Entry_2017.csv").read_text()
    assert [p.name for p in root.parent.iterdir()] == [root.name]


def test_foreign_folder_in_the_cache_is_left_alone(tmp_path, fake_generate):
    root = tmp_path / "home" / "data" / "synthetic" / "chestx-ray14-n8-s0-px64"
    root.mkdir(parents=True)
    (root / "Data_Entry_2017.csv").write_text("real data\n")
    with pytest.raises(FormatError, match="not made by mmcxr.synth and is left alone"):
        resolve_root("chestx-ray14", None, n=8, image_size=64)
    assert (root / "Data_Entry_2017.csv").read_text() == "real data\n"
    assert fake_generate == []


def test_given_root_is_never_regenerated(tmp_path, fake_generate, monkeypatch):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "Data_Entry_2017.csv").write_text("x\n")
    (mine / "synthetic_config.json").write_text(json.dumps({fingerprint.FINGERPRINT_KEY: "old"}))
    monkeypatch.setattr(fingerprint, "generator_fingerprint", lambda: "new")
    assert resolve_root("chestx-ray14", mine, n=8, image_size=64) == mine.resolve()
    assert fake_generate == [] and (mine / "Data_Entry_2017.csv").read_text() == "x\n"


def test_cohort_with_an_unreadable_config_is_regenerated(tmp_path, fake_generate):
    root = tmp_path / "home" / "data" / "synthetic" / "chestx-ray14-n8-s0-px64"
    root.mkdir(parents=True)
    (root / "Data_Entry_2017.csv").write_text("Image Index\nold\n")
    for broken in ("{not json", "[1, 2]"):
        (root / CONFIG_FILE).write_text(broken)
        with pytest.warns(DataWarning, match="synthetic_config.json is unreadable"):
            assert resolve_root("chestx-ray14", None, n=8, image_size=64) == root
        assert "call" in (root / "Data_Entry_2017.csv").read_text()
    assert len(fake_generate) == 2


def test_tree_listing_shows_the_shape_and_counts_the_rest(tmp_path):
    root = tmp_path / "rel"
    for p in ("p10/p1001/s1", "p10/p1002", "p11/p1100", "p12", "p13"):
        (root / "files" / p).mkdir(parents=True)
    (root / "files/p10/p1001/s1/a.dcm").write_text("x")
    (root / "files/p10/p1001/s1.txt").write_text("x")
    for name in ("b.csv.gz", "a.csv.gz", ".hidden"):
        (root / name).write_text("x")
    text = tree_listing(root, max_entries=2, max_top=5)
    assert text.splitlines() == [
        "rel/",
        "|-- files/",
        "|   |-- p10/",  # only the first subfolder is opened ...
        "|   |   |-- p1001/",
        "|   |   |   |-- s1/",
        "|   |   |   |   `-- a.dcm",
        "|   |   |   `-- s1.txt",
        "|   |   `-- p1002/",
        "|   |-- p11/",  # ... its siblings are listed closed
        "|   `-- ... (2 more folders)",
        "|-- a.csv.gz",
        "`-- b.csv.gz",
    ]
    assert ".hidden" not in text
    assert "files" not in tree_listing(root, exclude=["files"])
    with pytest.raises(FileNotFoundError, match="not a folder"):
        tree_listing(tmp_path / "absent")


def test_the_config_is_read_from_the_file_that_makes_a_root_synthetic(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    assert describe_source(real, None)["kind"] == "real"
    with pytest.raises(FileNotFoundError, match="synthetic_config.json"):
        load_synth_config(real)
    synth = tmp_path / "synth"
    synth.mkdir()
    (synth / CONFIG_FILE).write_text(json.dumps({"config": {"label_noise_rate": 0.03}}))
    assert describe_source(synth, None)["kind"] == "synthetic", "one name, one rule"
    assert load_synth_config(synth)["config"]["label_noise_rate"] == 0.03
    (synth / CONFIG_FILE).write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_synth_config(synth)
    (synth / CONFIG_FILE).write_text(json.dumps({"n": 3}))
    with pytest.raises(ValueError, match="'config' object"):
        load_synth_config(synth)
    fingerprint_only = {fingerprint.FINGERPRINT_KEY: "abc"}
    (synth / CONFIG_FILE).write_text(json.dumps(fingerprint_only))
    assert load_synth_config(synth, require_config=False) == fingerprint_only, "staleness"
    (synth / CONFIG_FILE).write_text("[1, 2]")
    with pytest.raises(ValueError, match="expected a JSON object"):
        load_synth_config(synth, require_config=False)
