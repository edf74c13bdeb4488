"""resolve_root: synthetic cohorts are generated once, atomically, under a descriptive name."""

from __future__ import annotations

import pytest

import mmcxr.synth
from mmcxr.data import FormatError, resolve_root
from mmcxr.synth.config import SynthConfig


@pytest.fixture
def fake_generate(tmp_path, monkeypatch):
    """Stand-in generator that writes only the format's marker file and counts its calls."""
    monkeypatch.setenv("MMCXR_HOME", str(tmp_path / "home"))
    calls = []

    def generate(fmt, out_dir, n, seed, image_size, config=None):
        calls.append((fmt, n, seed, image_size, config))
        out_dir.mkdir(parents=True)
        (out_dir / "Data_Entry_2017.csv").write_text("Image Index\n")
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
