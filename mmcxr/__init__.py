"""mmcxr: multimodal chest X-ray + report deep learning, the library behind the book.

Submodules are imported lazily (``mmcxr.data``, ``mmcxr.models`` ...) so that ``import mmcxr``
stays cheap in the CLI and in the first notebook cell.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_SUBMODULES = {
    "atomic",
    "book",
    "chapter_page",
    "chapters",
    "claims",
    "cli",
    "data",
    "env",
    "evaluate",
    "explain",
    "labels",
    "localization",
    "metrics",
    "models",
    "papers",
    "plots",
    "probes",
    "provenance",
    "runs",
    "scorecard",
    "synth",
    "train",
}


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"mmcxr.{name}")
    raise AttributeError(f"module 'mmcxr' has no attribute {name!r}")
