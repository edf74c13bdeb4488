"""The ``mmcxr`` command line: a data error is one line on stderr and exit status 1 (the
traceback only with ``--debug``), the format choices are the data layer's, and ``prepare
--on-error skip`` records what it leaves out."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

import mmcxr.data
import mmcxr.synth
from mmcxr.cli import EXIT_DATA_ERROR, EXIT_INTERRUPTED, build_parser, main
from mmcxr.data import MissingFileError
from mmcxr.data.roots import FORMATS

_PROGRESS_BAR = re.compile(r"^.*: +\d+%\|")  # tqdm's lines, which prepare also writes


def _one_line(err: str) -> str:
    """The one message line of stderr (besides progress bars), checking there is just one."""
    lines = [x for x in re.split(r"[\r\n]", err) if x.strip() and not _PROGRESS_BAR.match(x)]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def test_format_choices_come_from_the_data_layer():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    for name in ("synth", "prepare"):
        fmt = next(a for a in sub.choices[name]._actions if a.dest == "format")
        assert list(fmt.choices) == list(FORMATS)


def test_data_error_is_one_line(tmp_path, capsys):
    rc = main(["prepare", "chestx-ray14", str(tmp_path), str(tmp_path / "cache")])
    assert rc == EXIT_DATA_ERROR
    line = _one_line(capsys.readouterr().err)
    assert line.startswith(f"mmcxr prepare: error: {tmp_path.resolve()}: does not look like")
    assert "--debug" in line


@pytest.mark.parametrize("command", ["synth", "prepare"])
def test_every_command_turns_a_data_error_into_one_line(tmp_path, capsys, monkeypatch, command):
    def fails(*args, **kwargs):
        raise MissingFileError(tmp_path / "x.csv", "table not found\nsecond line of detail")

    monkeypatch.setattr(mmcxr.synth, "generate", fails)
    monkeypatch.setattr(mmcxr.data, "prepare", fails)
    argv = {
        "synth": ["synth", "openi", str(tmp_path / "out")],
        "prepare": ["prepare", "openi", str(tmp_path), str(tmp_path / "c")],
    }[command]
    assert main(argv) == EXIT_DATA_ERROR
    line = _one_line(capsys.readouterr().err)
    assert line.startswith(f"mmcxr {command}: error: {tmp_path / 'x.csv'}: table not found second")
    # --debug, before or after the command name, shows the real exception instead
    for debug in (["--debug", *argv], [*argv, "--debug"]):
        with pytest.raises(MissingFileError, match="table not found"):
            main(debug)


def test_os_errors_and_interrupts_are_one_line(tmp_path, capsys, monkeypatch):
    out = tmp_path / "full"
    out.mkdir()
    (out / "x.txt").write_text("x")
    assert main(["synth", "openi", str(out), "--n", "2", "--image-size", "32"]) == EXIT_DATA_ERROR
    assert "not empty" in _one_line(capsys.readouterr().err)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(mmcxr.data, "prepare", interrupted)
    assert main(["prepare", "openi", str(tmp_path), str(tmp_path / "c")]) == EXIT_INTERRUPTED
    assert "rerun the same command to resume" in _one_line(capsys.readouterr().err)


def test_bad_arguments_are_usage_errors(tmp_path, capsys):
    for argv in (
        ["prepare", "openi", str(tmp_path), str(tmp_path / "c"), "--size", "4"],
        ["synth", "openi", str(tmp_path / "o"), "--n", "0"],
        ["prepare", "dicom-zoo", str(tmp_path), str(tmp_path / "c")],
        ["prepare", "openi", str(tmp_path), str(tmp_path / "c"), "--on-error", "ignore"],
    ):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2
    assert "--size: must be >= 8, got 4" in capsys.readouterr().err


def test_the_installed_command_has_no_traceback(tmp_path):
    """The real entry point, in a fresh interpreter: one line and status 1; --debug: the
    traceback."""
    argv = [
        sys.executable,
        "-m",
        "mmcxr.cli",
        "prepare",
        "chestx-ray14",
        str(tmp_path),
        str(tmp_path / "c"),
    ]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    plain = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=120)
    assert plain.returncode == EXIT_DATA_ERROR and plain.stdout == ""
    assert _one_line(plain.stderr).startswith("mmcxr prepare: error: ")
    debug = subprocess.run([*argv, "--debug"], capture_output=True, text=True, env=env, timeout=120)
    assert debug.returncode != 0 and "Traceback" in debug.stderr
    assert "FormatError" in debug.stderr.strip().splitlines()[-1]


def test_prepare_on_error_skip(tmp_path, capsys, cxr14_tree):
    root, truth = cxr14_tree
    bad = truth.path.iloc[2]
    data = open(bad, "rb").read()
    open(bad, "wb").write(data[: len(data) // 2])
    argv = [
        "prepare",
        "chestx-ray14",
        str(root),
        str(tmp_path / "c"),
        "--size",
        "16",
        "--workers",
        "0",
    ]
    assert main(argv) == EXIT_DATA_ERROR  # raise (the default) stops at the file
    line = _one_line(capsys.readouterr().err)
    assert "00000002_000.png" in line and "truncated" in line
    assert main([*argv[:3], str(tmp_path / "s"), *argv[4:], "--on-error", "skip"]) == 0
    warning = _one_line(capsys.readouterr().err)
    assert warning.startswith("mmcxr prepare: warning: prepare chestx-ray14: left out 1 unreadable")
    man = json.loads((tmp_path / "s" / "manifest.json").read_text())
    assert man["complete"] and [s["path"] for s in man["skipped"]] == [bad]
    assert "truncated" in man["skipped"][0]["reason"]
