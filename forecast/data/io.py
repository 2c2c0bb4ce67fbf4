"""Reading and writing the data files: CSV (delimiter and encoding sniffed) and Parquet, with one-line errors."""

from __future__ import annotations

import csv
import hashlib
import warnings
from pathlib import Path

import pandas as pd

from forecast.data.columns import ID
from forecast.errors import DataError


def file_sha256(path: Path) -> str:
    """The SHA-256 of the file, or of the files of a folder (a Parquet data set as Spark writes it) in name order."""
    digest = hashlib.sha256()
    path = Path(path)
    for part in sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]:
        with open(part, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _sniff_delimiter(path: Path) -> str:
    with open(path, encoding="utf-8-sig", errors="replace") as fh:
        head = fh.read(64 * 1024)
    if not head.strip():
        raise DataError(f"{path}: the file is empty; give a CSV with a header row and data")
    try:
        return csv.Sniffer().sniff(head.splitlines()[0], delimiters=",;\t").delimiter
    except csv.Error:
        return ","


PARQUET = (".parquet", ".pq")


def is_parquet(path: str | Path) -> bool:
    return Path(path).suffix.lower() in PARQUET


def read_table(path: str | Path) -> pd.DataFrame:
    """Read the data file: Parquet by its extension (.parquet, .pq), CSV otherwise; a clear error on failure."""
    return read_parquet(path) if is_parquet(path) else read_csv(path)


def read_parquet(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: no such file; check the path")
    try:
        raw = pd.read_parquet(path)
    except (OSError, ValueError, ImportError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{path}: not a readable Parquet file ({first}); write it with pandas, Spark or pyarrow, "
                        "or give a CSV") from None
    raw.columns = [str(c).strip() for c in raw.columns]
    if isinstance(raw.index, pd.MultiIndex) or raw.index.name is not None:  # pandas' index kept in the file
        raw = raw.reset_index()
    if raw.empty:
        raise DataError(f"{path}: the file has no rows")
    return raw.reset_index(drop=True)


def write_table(frame: pd.DataFrame, path: str | Path) -> None:
    """Write forecasts as Parquet (by the extension) or CSV."""
    with TableWriter(path) as writer:
        writer.write(frame)


class TableWriter:
    """Forecasts written chunk by chunk as Parquet (by the extension) or CSV, into a temporary file beside `path`
    that takes its name only when all were written: a failed or interrupted command leaves no half file."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.partial = self.path.with_name(f".{self.path.name}.partial")
        self.rows, self.series, self._parquet = 0, 0, None

    def write(self, frame: pd.DataFrame) -> None:
        if is_parquet(self.path):
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pa.Table.from_pandas(frame, preserve_index=False)
            if self._parquet is None:
                self._parquet = pq.ParquetWriter(self.partial, table.schema)
            self._parquet.write_table(table.cast(self._parquet.schema))
        else:
            frame.to_csv(self.partial, index=False, mode="a" if self.rows else "w", header=not self.rows)
        self.rows += len(frame)
        self.series += int(frame[ID].nunique()) if ID in frame.columns else 0

    def __enter__(self) -> TableWriter:
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if self._parquet is not None:
            self._parquet.close()
        if kind is None:
            if not self.rows and not self.partial.exists():
                pd.DataFrame().to_csv(self.partial, index=False)
            self.partial.replace(self.path)
        else:
            self.partial.unlink(missing_ok=True)


def read_csv(path: str | Path) -> pd.DataFrame:
    """Read a CSV (comma, semicolon or tab; UTF-8 with or without BOM) with a clear error on failure."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file; check the path")
    [raw] = csv_frames(path)  # to the end: the warning filter is restored
    if raw.empty:
        raise DataError(f"{path}: the file has a header but no data rows")
    return raw


def csv_frames(path: Path, rows: int | None = None):
    """The CSV's rows as frames of `rows` rows each (one frame of all when None), the column names stripped; a
    clear one-line error on failure."""
    sep = _sniff_delimiter(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)  # rows longer than the header lose data
            read = pd.read_csv(path, sep=sep, encoding="utf-8-sig", skipinitialspace=True, index_col=False,
                               chunksize=rows)
            for frame in [read] if rows is None else read:
                frame.columns = [str(c).strip() for c in frame.columns]
                yield frame.reset_index(drop=True)
    except pd.errors.ParserWarning:
        raise DataError(f"{path}: some rows have more fields than the header; fix those rows, quote fields "
                        "that hold the delimiter, or check the delimiter") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{path}: not a readable CSV ({first}); save it as UTF-8 CSV with a header row") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty; give a CSV with a header row and data") from None
