"""Big files in chunks of whole series, so that prediction over millions of series runs in flat memory: a Parquet
file (or folder) of more than CHUNK_ROWS rows, or a CSV of more than CSV_CHUNK_BYTES, is read CHUNK_ROWS rows at a
time and cut at series boundaries. That needs each series' rows together in the file (as files sorted by id, or
written per series, have them); a series met again after others is refused in one line."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from forecast.data.io import csv_frames, is_parquet, read_table
from forecast.errors import DataError

CHUNK_ROWS = 2_000_000  # rows per chunk: about 0.7 GB of working memory when forecast
CSV_CHUNK_BYTES = 64 * 2**20  # CSV files larger than this are read in chunks


def raw_chunks(path, rows: int | None = CHUNK_ROWS) -> Iterator[pd.DataFrame]:
    """The file's rows as frames of about `rows` rows each (one frame holding all of a small file, or of any file
    when `rows` is None), columns named as `read_table` names them."""
    path = Path(path)
    if rows is None:
        yield read_table(path)
    elif is_parquet(path):
        yield from _parquet_chunks(path, rows)
    elif path.is_file() and path.stat().st_size > CSV_CHUNK_BYTES:
        yield from csv_frames(path, rows)
    else:
        yield read_table(path)


def _parquet_chunks(path: Path, rows: int) -> Iterator[pd.DataFrame]:
    """The Parquet file, or the files of a folder in name order, in frames of `rows` rows: record batches read one
    after the other (no read-ahead, which held gigabytes) and converted to pandas `rows` at a time (per batch, the
    conversion took six times as long)."""
    import pyarrow.parquet as pq

    if not path.exists():
        raise DataError(f"{path}: no such file; check the path")
    try:
        files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(("_", "."))) \
            if path.is_dir() else [path]
        readers = [pq.ParquetFile(f) for f in files]
        total = sum(r.metadata.num_rows for r in readers)
    except (OSError, ValueError):  # pyarrow's errors: ArrowInvalid is a ValueError
        total = 0
    if total <= rows:  # small, or not readable: the whole-file reader reads it or says what is wrong, in one line
        yield read_table(path)
        return
    batches, count = [], 0
    for reader in readers:
        for batch in reader.iter_batches(batch_size=min(rows, 1 << 16)):
            batches.append(batch)
            count += batch.num_rows
            if count >= rows:
                yield _frame(batches)
                batches, count = [], 0
    if batches:
        yield _frame(batches)


def _frame(batches) -> pd.DataFrame:
    import pyarrow as pa

    frame = pa.Table.from_batches(batches).to_pandas()
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def series_chunks(frames: Iterator[pd.DataFrame], id_col: str | None, path) -> Iterator[tuple[int, pd.DataFrame]]:
    """(the row of the file its first row is, 0-based; a frame of whole series) from the raw `frames`: each
    frame's last series waits for the next frame, where it may go on. One frame (a file read whole) is yielded as
    it is, its rows in any order; without an id column (one series) the frames are joined into one."""
    frames = iter(frames)
    first = next(frames)
    second = next(frames, None)
    if second is None:  # a file read whole: its rows may come in any order
        yield 0, first
        return
    frames = itertools.chain([first, second], frames)
    if id_col is None:
        yield 0, pd.concat(list(frames), ignore_index=True)
        return
    seen: set[str] = set()
    carry, start = None, 0
    for frame in frames:
        if id_col not in frame.columns:  # the checks of the whole frame name the missing column
            yield start, frame
            return
        if carry is not None:
            frame = pd.concat([carry, frame], ignore_index=True)
        ids = frame[id_col].astype(str).to_numpy()
        cut = _last_run_start(ids)
        if cut == 0:  # all one series so far: it may go on in the next frame
            carry = frame
            continue
        _check_together(ids[:cut], seen, path, start)
        yield start, frame.iloc[:cut].reset_index(drop=True)
        carry, start = frame.iloc[cut:].reset_index(drop=True), start + cut
    if carry is not None and len(carry):
        _check_together(carry[id_col].astype(str).to_numpy(), seen, path, start)
        yield start, carry


def _last_run_start(ids: np.ndarray) -> int:
    """The position where the last run of equal ids starts (0 when all are equal)."""
    differs = np.flatnonzero(ids[1:] != ids[:-1])
    return int(differs[-1]) + 1 if len(differs) else 0


def _check_together(ids: np.ndarray, seen: set, path, start: int) -> None:
    """Refuse a series whose rows are not together: met in two runs of the chunk, or in an earlier chunk."""
    starts = np.r_[0, np.flatnonzero(ids[1:] != ids[:-1]) + 1]
    runs = ids[starts]
    _, first = np.unique(runs, return_index=True)
    again = np.setdiff1d(np.arange(len(runs)), first)
    earlier = [i for i in range(len(runs)) if runs[i] in seen]
    bad = min(list(again) + earlier) if len(again) or earlier else None
    if bad is not None:
        raise DataError(f"{path}: row {start + int(starts[bad]) + 2}: series '{runs[bad]}' again after other "
                        "series; a file this large is read in chunks of whole series, so sort it by id and time "
                        "(or keep each series' rows together)")
    seen.update(runs.tolist())


def shift_rows(error: DataError, start: int) -> DataError:
    """The error of a chunk whose first row is the file's row `start` (0-based), its row numbers made the file's."""
    if not start:
        return error
    return DataError(re.sub(r"\brow (\d+)", lambda m: f"row {int(m.group(1)) + start}", str(error)))
