"""Which generator made a cohort: a hash of the code that decides its pixels and labels.

A cached synthetic cohort is only reusable while the generator that wrote it is unchanged:
after the phantom or the report writer is tuned, the old cohort would show the book stale
data under the same name. :func:`generator_fingerprint` hashes the sources of every module of
:mod:`mmcxr.synth`, the label vocabularies in :mod:`mmcxr.labels` and the names of the files
written at the root (:mod:`mmcxr.names`); the generator records it in
``synthetic_config.json`` and :func:`mmcxr.data.resolve_root` regenerates a cohort whose
recorded fingerprint differs.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

__all__ = ["FINGERPRINT_KEY", "generator_fingerprint", "generator_sources"]

#: Key of the fingerprint in ``synthetic_config.json``.
FINGERPRINT_KEY = "generator_fingerprint"


def generator_sources() -> list[Path]:
    """The files hashed: ``mmcxr/synth/*.py``, ``mmcxr/labels.py`` and ``mmcxr/names.py``."""
    synth = Path(__file__).resolve().parent
    return sorted(synth.glob("*.py")) + [synth.parent / "labels.py", synth.parent / "names.py"]


def generator_fingerprint() -> str:
    """sha256 (hex) over the generator's sources, each file's package-relative name then bytes.

    Read from disk on every call (a few dozen kilobytes), so an edit made while a session is
    running is noticed.
    """
    base = Path(__file__).resolve().parent.parent
    h = hashlib.sha256()
    for p in generator_sources():
        h.update(p.relative_to(base).as_posix().encode())
        h.update(b"\0")
        h.update(p.read_bytes())
        h.update(b"\0")
    return h.hexdigest()
