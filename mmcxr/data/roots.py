"""Where a chapter's data comes from: a real release, or a synthetic cohort made on demand.

Every chapter has a ``data_root`` parameter. Given, it must be a real (or synthetic) release
of the chapter's format and is checked here so a wrong path fails in the first cell with a
clear message. Not given, a synthetic cohort of the requested size is generated once under
``mmcxr.env.data_dir()/synthetic/`` and reused: generation writes into a temporary folder
beside the target and renames it into place, so an interrupted or concurrent generation can
never leave a half-written cohort under the final name.

A cached cohort is reused only while the generator that wrote it is unchanged (its
``synthetic_config.json`` records :func:`mmcxr.synth.fingerprint.generator_fingerprint`):
otherwise it is regenerated and swapped in, with a warning saying why, so that the book never
shows pixels or reports from an older generator. A root passed as ``data_root`` is only
checked, never regenerated or modified.

Two small readers of a root live here too: :func:`load_synth_config`, the one reader of the
``synthetic_config.json`` that both the staleness check and the chapters consult, and
:func:`tree_listing`, the shape of a root's folders as the book prints it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mmcxr.data.errors import DataWarning, FormatError, MissingFileError
from mmcxr.names import CONFIG_FILE

__all__ = [
    "FORMATS",
    "load_synth_config",
    "looks_like",
    "resolve_root",
    "stale_reason",
    "synthetic_root_name",
    "tree_listing",
]

#: Format name -> files/folders (relative to the root) that identify it; any one suffices.
FORMATS: dict[str, tuple[str, ...]] = {
    "mimic-cxr": ("cxr-record-list.csv.gz",),
    "mimic-cxr-jpg": ("mimic-cxr-2.0.0-metadata.csv.gz",),
    "openi": ("ecgen-radiology", "NLMCXR_reports.tgz"),
    "openi-kaggle": ("indiana_reports.csv",),
    "chestx-ray14": ("Data_Entry_2017.csv", "Data_Entry_2017_v2020.csv"),
}


def looks_like(fmt: str, root: str | os.PathLike) -> bool:
    """Whether ``root`` holds the marker files of format ``fmt``."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; known: {sorted(FORMATS)}")
    r = Path(root)
    return any((r / m).exists() for m in FORMATS[fmt])


def synthetic_root_name(fmt: str, n: int, seed: int, image_size: int, config: Any = None) -> str:
    """``<fmt>-n<N>-s<seed>-px<size>``, plus ``-c<hash>`` for a non-default SynthConfig."""
    name = f"{fmt}-n{int(n)}-s{int(seed)}-px{int(image_size)}"
    if config is not None:
        from mmcxr.synth.config import SynthConfig

        if config != SynthConfig():
            digest = hashlib.sha256(config.to_json().encode()).hexdigest()[:10]
            name += f"-c{digest}"
    return name


def resolve_root(
    fmt: str,
    data_root: str | os.PathLike | None = None,
    *,
    n: int,
    seed: int = 0,
    image_size: int,
    config: Any = None,
) -> Path:
    """The folder a chapter reads: ``data_root`` checked, else a cached synthetic cohort.

    ``n``, ``seed``, ``image_size`` and ``config`` describe the synthetic cohort and are
    ignored when ``data_root`` is given. Generation calls :func:`mmcxr.synth.generate`; a
    cached cohort from other generator code (see :func:`stale_reason`) is regenerated and
    replaced, with a :class:`~mmcxr.data.errors.DataWarning` saying why.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; known: {sorted(FORMATS)}")
    if data_root is not None and str(data_root) != "":
        r = Path(data_root).expanduser().resolve()
        if not r.is_dir():
            raise MissingFileError(r, f"data_root for {fmt} does not exist (or is not a folder)")
        if not looks_like(fmt, r):
            raise FormatError(
                r,
                f"does not look like {fmt}: expected {' or '.join(FORMATS[fmt])} at its top level",
            )
        return r
    from mmcxr.env import data_dir

    parent = data_dir() / "synthetic"
    final = parent / synthetic_root_name(fmt, n, seed, image_size, config)
    if final.is_dir() and looks_like(fmt, final):
        why = stale_reason(final)
        if why is None:
            return final
        warnings.warn(f"{final}: {why}; regenerating it", DataWarning, stacklevel=2)
    elif final.exists():
        raise FormatError(
            final, f"exists but is not a complete {fmt} cohort; delete it to regenerate"
        )
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=parent))
    try:
        from mmcxr.synth import generate

        out = Path(
            generate(fmt, tmp / "cohort", n=n, seed=seed, image_size=image_size, config=config)
        )
        if not looks_like(fmt, out):
            raise FormatError(out, f"mmcxr.synth.generate did not write a {fmt} tree")
        _move_into_place(fmt, out, final, tmp / "stale")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def load_synth_config(root: str | os.PathLike, *, require_config: bool = True) -> dict[str, Any]:
    """The ``synthetic_config.json`` of a synthetic root: planted structure, recipe, fingerprint.

    The one reader of the file the generator writes, so that its encoding and its errors are
    decided once: chapters read the planted structure (the ``config`` object) through it, and
    :func:`stale_reason` the generator fingerprint (``require_config=False``, since a cached
    cohort is judged by its fingerprint alone). A missing file is a FileNotFoundError (real
    releases have none); a file that is not a JSON object (with a ``config`` object inside,
    unless ``require_config`` is False) is a ValueError naming it.
    """
    path = Path(root) / CONFIG_FILE
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: not found (only synthetic cohorts have one)") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    has_config = isinstance(payload, dict) and isinstance(payload.get("config"), dict)
    if not isinstance(payload, dict) or (require_config and not has_config):
        what = "an object with a 'config' object inside" if require_config else "a JSON object"
        raise ValueError(f"{path}: expected {what}")
    return payload


def stale_reason(root: str | os.PathLike) -> str | None:
    """Why a cached synthetic cohort must be regenerated, or None while it is current.

    Current means its ``synthetic_config.json`` records the fingerprint of the generator code
    installed now. A folder without that file was not written by the generator, so it is
    never deleted: that is an error naming the folder.
    """
    from mmcxr.synth import fingerprint

    r = Path(root)
    path = r / CONFIG_FILE
    if not path.is_file():
        raise FormatError(
            r,
            f"is in the synthetic-cohort cache but has no {CONFIG_FILE}, so it was not made by"
            " mmcxr.synth and is left alone; move it elsewhere (and pass it as data_root)",
        )
    try:
        recorded = load_synth_config(r, require_config=False).get(fingerprint.FINGERPRINT_KEY)
    except (OSError, ValueError) as exc:
        return f"its {CONFIG_FILE} is unreadable ({exc})"
    if recorded is None:
        return "it was generated before generator fingerprints were recorded"
    current = fingerprint.generator_fingerprint()
    if recorded != current:
        return (
            f"it was generated by other generator code (fingerprint {str(recorded)[:12]},"
            f" now {current[:12]}: mmcxr/synth or mmcxr/labels.py changed)"
        )
    return None


def _move_into_place(fmt: str, new: Path, final: Path, aside: Path) -> None:
    """Rename ``new`` to ``final``, first moving a stale ``final`` to ``aside``.

    A directory cannot be renamed over a non-empty one, so replacing takes two renames; a
    concurrent caller that got there first wins, and its cohort is kept.
    """
    if final.exists():
        try:
            os.replace(final, aside)
        except FileNotFoundError:
            pass  # another process moved it first
    try:
        os.replace(new, final)
    except OSError:
        if not (final.is_dir() and looks_like(fmt, final) and stale_reason(final) is None):
            raise


def tree_listing(
    root: str | os.PathLike,
    *,
    max_entries: int = 3,
    max_top: int = 12,
    max_depth: int = 5,
    exclude: Sequence[str] = (),
) -> str:
    """The shape of a release's tree as text: a few entries per folder, one path expanded.

    Hand-written (``tree`` is not a Python library and ``os.walk`` lists everything): a
    release holds hundreds of thousands of files and the reader needs the *shape*, so each
    folder shows its first ``max_entries`` entries in sorted order (the root: ``max_top``)
    and a count of the rest, and only the first subfolder of each folder is opened, giving
    one example path from the root down to the files. Hidden names and names in ``exclude``
    are skipped. It lives with the roots because it describes any folder a chapter reads (a
    release, a synthetic cohort, a prepare cache), whatever wrote it.
    """
    r = Path(root)
    if not r.is_dir():
        raise FileNotFoundError(f"{r}: not a folder")
    lines = [f"{r.name}/"]
    skip = set(exclude)

    def walk(d: Path, prefix: str, depth: int) -> None:
        entries = sorted(
            (p for p in d.iterdir() if p.name not in skip and not p.name.startswith(".")),
            key=lambda p: (not p.is_dir(), p.name),
        )
        limit = max_top if depth == 1 else max_entries
        shown, rest = entries[:limit], entries[limit:]
        opened = False
        for i, p in enumerate(shown):
            last = i == len(shown) - 1 and not rest
            branch, cont = ("`-- ", "    ") if last else ("|-- ", "|   ")
            lines.append(f"{prefix}{branch}{p.name}{'/' if p.is_dir() else ''}")
            if p.is_dir() and depth < max_depth and (depth == 1 or not opened):
                opened = True
                walk(p, prefix + cont, depth + 1)
        if rest:
            n_dirs = sum(p.is_dir() for p in rest)
            n_files = len(rest) - n_dirs
            what = [f"{n} more {w}" for n, w in ((n_dirs, "folders"), (n_files, "files")) if n]
            lines.append(f"{prefix}`-- ... ({', '.join(what)})")

    walk(r, "", 1)
    return "\n".join(lines)
