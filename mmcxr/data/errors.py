"""What goes wrong with real data, as exceptions that name the file and the problem.

Real releases arrive with truncated downloads, a CSV from another version, a report that
never got unzipped. Every reader in :mod:`mmcxr.data` turns such a problem into a
:class:`DataError` whose message starts with the offending path, so that a failure in a
notebook cell points at the file to fix instead of at a pandas ``KeyError`` three frames deep.
``DataError`` subclasses ``ValueError`` so callers that already catch ``ValueError`` keep
working.
"""

from __future__ import annotations

import os
import warnings
from typing import NamedTuple

import pandas as pd

__all__ = [
    "CacheError",
    "DataError",
    "DataWarning",
    "FormatError",
    "ImageDecodeError",
    "LabelValueError",
    "MissingFileError",
    "ReportError",
    "SchemaError",
    "SkipLog",
    "SkippedFile",
    "skipped_files",
]


class DataError(ValueError):
    """A data file is unusable; ``.path`` is the file, ``.problem`` says what is wrong."""

    def __init__(self, path: str | os.PathLike, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")

    def __reduce__(self):  # keep the two-argument constructor picklable (worker processes)
        return (type(self), (self.path, self.problem))


class MissingFileError(DataError, FileNotFoundError):
    """An image, report or table the release should contain is not there."""


class ImageDecodeError(DataError):
    """An image file exists but cannot be decoded (corrupt, truncated, unsupported)."""


class SchemaError(DataError):
    """A table lacks required columns or has duplicate keys."""


class LabelValueError(DataError):
    """A label column holds values outside {1.0, 0.0, -1.0, blank}."""


class ReportError(DataError):
    """A report file cannot be read or parsed."""


class FormatError(DataError):
    """A folder does not look like the dataset release it is said to be."""


class CacheError(DataError):
    """An image cache is incomplete, corrupt, stale or was built with other settings."""


class DataWarning(UserWarning):
    """Something was skipped or assumed while reading data (details in the message)."""


class SkippedFile(NamedTuple):
    """One file (or table row) a loader left out with ``on_error="skip"``, and why."""

    path: str
    reason: str


def skipped_files(df: pd.DataFrame) -> pd.DataFrame:
    """The skipped-files report of a loaded table as a DataFrame (columns path, reason).

    Loaders store it in ``df.attrs["skipped"]`` as a tuple of :class:`SkippedFile`: pandas
    compares ``attrs`` when concatenating tables, which fails for a DataFrame value.
    """
    return pd.DataFrame(list(df.attrs.get("skipped", ())), columns=["path", "reason"])


class SkipLog:
    """Collects the files a loader skipped with ``on_error="skip"``, so none vanish silently.

    ``handle`` either re-raises (``on_error="raise"``) or records the error; ``attach`` puts
    the record on ``df.attrs["skipped"]`` (a tuple of :class:`SkippedFile`; see
    :func:`skipped_files`) and warns with the count.
    """

    def __init__(self, on_error: str, who: str) -> None:
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        self.on_error = on_error
        self.who = who
        self.rows: list[SkippedFile] = []

    def handle(self, err: DataError) -> None:
        if self.on_error == "raise":
            raise err
        self.record(err.path, err.problem)

    def record(self, path: str | os.PathLike, reason: str) -> None:
        self.rows.append(SkippedFile(str(path), reason))

    def attach(self, df: pd.DataFrame) -> pd.DataFrame:
        df.attrs["skipped"] = tuple(self.rows)
        if self.rows:
            first = self.rows[0]
            warnings.warn(
                f"{self.who}: skipped {len(self.rows)} unusable file(s)/row(s); see "
                f"mmcxr.data.skipped_files(df) (first: {first.path}: {first.reason})",
                DataWarning,
                stacklevel=3,
            )
        return df
