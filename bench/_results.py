"""``bench/RESULTS.md``: the last figures each bench script measured, written by the scripts.

Each script owns one section per device kind (``cpu``, ``cuda``, ...), fenced by HTML comments
that name it, and replaces only that section when it runs; the other scripts' sections and
the other devices' stay as they are. Nothing in the file is typed by hand, so a number in it
is always one that a command printed, with the device, the date and that command beside it.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")
HEADER = """# Bench results

The last figures measured by the scripts in `bench/`, one section per script and device.
**Written by the scripts** (`bench/_results.py`), never by hand: rerun a script to refresh its
section. Figures are ratios measured side by side in one run; absolute rates depend on the
machine and its load, given with each section.
"""


def device_description(device: str) -> str:
    """``cpu: N cores (model)`` or the GPU's name, and the 1-minute load on Linux."""
    import torch

    if device.startswith("cuda"):
        text = f"{device}: {torch.cuda.get_device_name(0)}"
    else:
        text = f"cpu: {os.cpu_count()} cores ({platform.processor() or platform.machine()})"
    try:
        text += f", load average {os.getloadavg()[0]:.1f} at the start"
    except OSError:
        pass
    return text


def command_line() -> str:
    """The command that ran, as typed from the repository root."""
    script = Path(sys.argv[0])
    try:
        script = script.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        pass
    return shlex.join([".venv/bin/python", str(script), *sys.argv[1:]])


def write_section(
    script: str,
    device_kind: str,
    title: str,
    rows: Sequence[dict[str, str]],
    *,
    device: str,
    command: str,
    notes: str = "",
    path: Path = RESULTS,
) -> Path:
    """Replace (or add) the section of ``script`` on ``device_kind`` with a table of ``rows``.

    ``rows``: dicts with the same keys (the table's columns), values already formatted.
    """
    start, end = f"<!-- {script} {device_kind} -->", f"<!-- /{script} {device_kind} -->"
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    cols = list(rows[0]) if rows else []
    lines = [
        start,
        f"## {title} ({device_kind})",
        "",
        f"- device: {device}",
        f"- date: {stamp}",
        f"- command: `{command}`",
        "",
        "| " + " | ".join(cols) + " |",
        "|" + "|".join("---" for _ in cols) + "|",
        *("| " + " | ".join(str(r[c]) for c in cols) + " |" for r in rows),
    ]
    if notes:
        lines += ["", notes.strip()]
    lines.append(end)
    block = "\n".join(lines)
    text = path.read_text() if path.is_file() else HEADER
    if start in text and end in text:
        before, rest = text.split(start, 1)
        after = rest.split(end, 1)[1]
        text = before + block + after
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path
