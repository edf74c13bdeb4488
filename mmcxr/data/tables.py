"""Reading the releases' CSV tables with the checks their loaders rely on.

pandas reads anything; these helpers make the contract explicit (required columns present,
keys unique, label values in the CheXpert code set) and report violations with the file name,
so a release from another version fails at load time with a readable message.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from mmcxr.data.errors import LabelValueError, MissingFileError, ReportError, SchemaError

__all__ = [
    "LABEL_CODES",
    "bad_label_rows",
    "label_error",
    "read_table",
    "require_columns",
    "text_file",
]

#: CheXpert/NegBio label codes: positive, negative, uncertain (blank = NaN, not mentioned).
LABEL_CODES = (1.0, 0.0, -1.0)


def read_table(
    path: str | os.PathLike,
    required: Sequence[str] = (),
    *,
    dtype: dict | None = None,
    sep: str = ",",
    what: str = "table",
) -> pd.DataFrame:
    """Read a (possibly gzipped) CSV/TSV and check it has the ``required`` columns.

    Column names are stripped of surrounding spaces; extra columns and any column order are
    accepted (several of these files' layouts are only inferred from public loaders).
    """
    p = Path(path)
    if not p.is_file():
        raise MissingFileError(p, f"{what} not found")
    try:
        df = pd.read_csv(p, dtype=dtype, sep=sep, keep_default_na=True)
    except Exception as e:  # EmptyDataError, ParserError, gzip errors, UnicodeDecodeError
        raise SchemaError(p, f"cannot parse {what} ({type(e).__name__}: {e})") from None
    df.columns = [str(c).strip() for c in df.columns]
    require_columns(df, required, p, what)
    return df


def require_columns(
    df: pd.DataFrame, required: Iterable[str], path: str | os.PathLike, what: str = "table"
) -> None:
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise SchemaError(
            path, f"{what} lacks required column(s) {missing}; it has {list(df.columns)}"
        )


def bad_label_rows(
    df: pd.DataFrame, labels: Sequence[str], path: str | os.PathLike
) -> tuple[pd.DataFrame, pd.Series]:
    """Coerce label columns to float and find rows with values outside {1, 0, -1, blank}.

    Returns the coerced table and a boolean mask of offending rows; the caller raises
    :class:`LabelValueError` (``on_error="raise"``) or skips the rows with a record.
    """
    require_columns(df, labels, path, "label table")
    out = df.copy()
    bad = pd.Series(False, index=df.index)
    for col in labels:
        raw = df[col]
        num = pd.to_numeric(raw, errors="coerce")
        unparsable = raw.notna() & num.isna() & (raw.astype(str).str.strip() != "")
        outside = num.notna() & ~num.isin(LABEL_CODES)
        bad |= unparsable | outside
        out[col] = num.astype(np.float64)
    return out, bad


def label_error(
    df: pd.DataFrame, bad: pd.Series, labels: Sequence[str], path: str | os.PathLike, key: str
) -> LabelValueError:
    """A :class:`LabelValueError` naming the first offending row, column and value."""
    row = df.loc[bad].iloc[0]
    cols = []
    for c in labels:
        v = row[c]
        num = pd.to_numeric(pd.Series([v]), errors="coerce").iloc[0]
        if (pd.notna(v) and str(v).strip() != "" and pd.isna(num)) or (
            pd.notna(num) and num not in LABEL_CODES
        ):
            cols.append(f"{c}={v!r}")
    return LabelValueError(
        path,
        f"{int(bad.sum())} row(s) have label values outside "
        f"{{1.0, 0.0, -1.0, blank}}; first: {key}={row[key]} "
        f"({', '.join(cols)})",
    )


def text_file(path: str | os.PathLike, what: str = "report") -> str:
    """Read a UTF-8 text file, naming the file if it is missing or not text."""
    p = Path(path)
    try:
        return p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise MissingFileError(p, f"{what} file not found") from None
    except UnicodeDecodeError as e:
        raise ReportError(p, f"{what} is not UTF-8 text ({e})") from None
