"""CSV -> long frame (unique_id, ds, y): column detection, frequency inference, validation, time splits."""

from __future__ import annotations

import csv
import hashlib
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from pandas.tseries import offsets as po
from pandas.tseries.frequencies import to_offset

from forecast.errors import DataError

ID, TIME, TARGET = "unique_id", "ds", "y"
_MONTHLY = (po.MonthBegin, po.MonthEnd, po.BusinessMonthBegin, po.BusinessMonthEnd)
_QUARTERLY = (po.QuarterBegin, po.QuarterEnd, po.BQuarterBegin, po.BQuarterEnd)
_YEARLY = (po.YearBegin, po.YearEnd, po.BYearBegin, po.BYearEnd)
TIME_NAMES = ("ds", "date", "time", "timestamp", "datetime", "month", "year", "period", "t", "step", "week", "day")


@dataclass(frozen=True)
class Columns:
    """The user's names for the series id, time and target columns (id is None for a single series)."""

    id_col: str | None
    time_col: str
    target_col: str


@dataclass(frozen=True)
class Frequency:
    """How a series steps through time: a pandas alias (`MS`, `30min`, ...) or integer steps when alias is None."""

    alias: str | None
    step: int
    season: int

    def future(self, last, h: int) -> pd.Index:
        """The `h` time stamps that follow `last`."""
        if self.alias is None:
            return pd.Index(int(last) + self.step * np.arange(1, h + 1))
        return pd.date_range(start=last, periods=h + 1, freq=self.alias)[1:]

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Dataset:
    """A loaded CSV: the long frame sorted by (unique_id, ds), and the facts about it that runs log."""

    df: pd.DataFrame
    columns: Columns
    freq: Frequency
    path: str
    sha256: str

    @property
    def n_series(self) -> int:
        return int(self.df[ID].nunique())

    @property
    def n_points(self) -> int:
        return len(self.df)

    def lengths(self) -> pd.Series:
        return self.df.groupby(ID, sort=False).size()


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
    if is_parquet(path):
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)


def read_csv(path: str | Path) -> pd.DataFrame:
    """Read a CSV (comma, semicolon or tab; UTF-8 with or without BOM) with a clear error on failure."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: no such file; check the path")
    sep = _sniff_delimiter(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)  # rows longer than the header lose data
            raw = pd.read_csv(path, sep=sep, encoding="utf-8-sig", skipinitialspace=True, index_col=False)
    except pd.errors.ParserWarning:
        raise DataError(f"{path}: some rows have more fields than the header; fix those rows, quote fields "
                        "that hold the delimiter, or check the delimiter") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{path}: not a readable CSV ({first}); save it as UTF-8 CSV with a header row") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: the file is empty; give a CSV with a header row and data") from None
    raw.columns = [str(c).strip() for c in raw.columns]
    if raw.empty:
        raise DataError(f"{path}: the file has a header but no data rows")
    return raw


def _parse_dates(values: pd.Series) -> pd.Series | None:
    """Parse a column as dates, or None when it is not a date column."""
    if pd.api.types.is_datetime64_any_dtype(values):
        return values
    if pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        return None
    sample = values.dropna().astype(str).head(20)
    if sample.empty:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if pd.to_datetime(sample, errors="coerce", format="mixed", utc=True).isna().mean() > 0.5:
            return None
        try:
            return pd.to_datetime(values, format="ISO8601")
        except (ValueError, TypeError, OverflowError):
            pass
        try:
            return pd.to_datetime(values, errors="coerce", format="mixed")
        except (ValueError, TypeError, OverflowError):  # mixed time zones: one common zone, UTC
            return pd.to_datetime(values, errors="coerce", format="mixed", utc=True)


def _is_numeric_like(values: pd.Series) -> bool:
    if pd.api.types.is_bool_dtype(values):
        return False
    if pd.api.types.is_numeric_dtype(values):
        return True
    present = values.dropna()
    if present.empty:
        return False
    return pd.to_numeric(present, errors="coerce").notna().mean() >= 0.5


def _row(index) -> int:
    """The 1-based line number in the file of a data row (the header is line 1)."""
    return int(index) + 2


def detect_columns(raw: pd.DataFrame, path, id_col=None, time_col=None, target_col=None) -> Columns:
    """Name the id, time and target columns, from the options or from the data when that is unambiguous."""
    cols = list(raw.columns)
    for option, name in (("--id-col", id_col), ("--time-col", time_col), ("--target", target_col)):
        if name is not None and name not in cols:
            raise DataError(f"{path}: no column '{name}' (from {option}); the columns are {', '.join(cols)}")
    if id_col is None and ID in cols and time_col in (None, TIME) and target_col in (None, TARGET):
        id_col = ID
    taken = {id_col}
    if time_col is None:
        if TIME in cols and TIME not in taken:
            time_col = TIME
        else:
            reserved = taken | {target_col or (TARGET if TARGET in cols else None)}
            time_col = _detect_time_col(raw, path, [c for c in cols if c not in reserved])
    taken.add(time_col)
    if target_col is None:
        if TARGET in cols and TARGET not in taken:
            target_col = TARGET
        else:
            numeric = [c for c in cols if c not in taken and _is_numeric_like(raw[c])]
            if not numeric:
                raise DataError(f"{path}: no numeric column to forecast (columns: {', '.join(cols)}); "
                                "name it with --target")
            if len(numeric) > 1:
                raise DataError(f"{path}: ambiguous target, numeric columns {', '.join(numeric)}; "
                                "name one with --target")
            target_col = numeric[0]
    return Columns(id_col=id_col, time_col=time_col, target_col=target_col)


def _detect_time_col(raw: pd.DataFrame, path, candidates: list[str]) -> str:
    dates = [c for c in candidates if _parse_dates(raw[c]) is not None]
    if len(dates) == 1:
        return dates[0]
    if not dates:
        dates = [c for c in candidates
                 if pd.api.types.is_integer_dtype(raw[c]) and raw[c].is_monotonic_increasing and raw[c].is_unique]
        if len(dates) == 1:
            return dates[0]
        if not dates:  # integer steps in long format repeat from series to series: known by name only
            dates = [c for c in candidates if pd.api.types.is_integer_dtype(raw[c]) and c.lower() in TIME_NAMES]
    named = [c for c in dates if c.lower() in TIME_NAMES]
    if len(named) == 1:
        return named[0]
    if not dates:
        raise DataError(f"{path}: no time column found (no column parses as dates or an increasing integer "
                        f"index; columns: {', '.join(candidates)}); name it with --time-col")
    raise DataError(f"{path}: ambiguous time column, candidates {', '.join(dates)}; name one with --time-col")


def to_long(raw: pd.DataFrame, columns: Columns, path) -> pd.DataFrame:
    """The user's frame as a long frame (unique_id: str, ds: datetime or int, y: float), sorted."""
    time = raw[columns.time_col]
    ds = _parse_dates(time)
    if ds is None:
        if not pd.api.types.is_integer_dtype(time):
            bad = pd.to_numeric(time, errors="coerce").isna()
            if pd.api.types.is_float_dtype(time) and not bad.any():
                bad = time % 1 != 0
            first = bad.idxmax() if bad.any() else 0
            raise DataError(f"{path}: column '{columns.time_col}' holds neither dates nor integer steps "
                            f"(row {_row(first)}: '{time.iloc[first]}'); fix the value or name the time column "
                            "with --time-col")
        ds = time.astype("int64")
    elif ds.isna().any():
        first = ds.isna().idxmax()
        raise DataError(f"{path}: row {_row(first)}: cannot parse '{time.iloc[first]}' in column "
                        f"'{columns.time_col}' as a date; fix or remove the row")
    y = pd.to_numeric(raw[columns.target_col], errors="coerce")
    bad = y.isna() & raw[columns.target_col].notna()
    if bad.any():
        first = bad.idxmax()
        raise DataError(f"{path}: row {_row(first)}: '{raw[columns.target_col].iloc[first]}' in column "
                        f"'{columns.target_col}' is not a number; fix or remove the row")
    if np.isinf(y.to_numpy(float)).any():
        first = int(np.flatnonzero(np.isinf(y.to_numpy(float)))[0])
        raise DataError(f"{path}: row {_row(first)}: infinite value in column '{columns.target_col}'; "
                        "fix or remove the row")
    uid = raw[columns.id_col].astype(str) if columns.id_col else pd.Series(columns.target_col, index=raw.index)
    df = pd.DataFrame({ID: uid.to_numpy(dtype=object), TIME: ds.to_numpy(), TARGET: y.to_numpy(float)})
    df[ID] = df[ID].astype(object)
    df["_row"] = raw.index.to_numpy()
    df = df.sort_values([ID, TIME], kind="stable").reset_index(drop=True)
    return df


def _months_per_step(offset) -> int | None:
    """Months in one step of a month, quarter or year based offset; None for any other offset."""
    for kinds, months in ((_MONTHLY, 1), (_QUARTERLY, 3), (_YEARLY, 12)):
        if isinstance(offset, kinds):
            return months * offset.n
    return None


def _fixed_step(offset) -> pd.Timedelta | None:
    try:
        return pd.Timedelta(offset)
    except (ValueError, TypeError):
        return None


def _step_index(df: pd.DataFrame, freq: Frequency) -> np.ndarray:
    """Each row's position in time counted in steps of `freq` (a fraction means off the grid)."""
    ds = df[TIME]
    if freq.alias is None:
        return (ds.to_numpy(np.int64) - ds.min()) / freq.step
    offset = to_offset(freq.alias)
    months = _months_per_step(offset)
    if months:
        return (ds.dt.year.to_numpy() * 12 + ds.dt.month.to_numpy() - 1) / months
    step = _fixed_step(offset)
    if step is not None:
        stamps = ds.dt.tz_localize(None) if ds.dt.tz is not None else ds
        nanos = stamps.to_numpy("datetime64[ns]").astype(np.int64)
        return (nanos - nanos.min()) / step.value
    # calendar frequencies without a fixed length (business days, ...): position on a regular grid
    grid = pd.date_range(ds.min(), ds.max(), freq=freq.alias)
    pos = grid.get_indexer(ds)
    return np.where(pos < 0, np.nan, pos).astype(float)


def season_of(alias: str | None) -> int:
    """Season length of a frequency: 12 monthly, 4 quarterly, 1 yearly, 52 weekly, 7 daily, 24 hourly, ..."""
    if alias is None:
        return 1
    offset = to_offset(alias)
    months = _months_per_step(offset)
    if months:
        return max(1, 12 // months) if 12 % months == 0 else 1
    if isinstance(offset, po.Week) and offset.n == 1:
        return 52
    if isinstance(offset, po.BusinessDay) and offset.n == 1:
        return 5
    step = _fixed_step(offset)
    if step is None or step <= pd.Timedelta(0):
        return 1
    day, hour = pd.Timedelta("1D"), pd.Timedelta("1h")
    if step == day:
        return 7
    if step < day and day % step == pd.Timedelta(0):
        per_day = int(day / step)
        if per_day <= 96:
            return per_day
        if step < hour and hour % step == pd.Timedelta(0):
            return int(hour / step)
    return 1


def _infer_alias(stamps: pd.DatetimeIndex) -> str | None:
    """pandas' inferred alias of the whole index, else the most common one over short stretches (so one gap
    is reported as a gap rather than as an unknown frequency)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        found = pd.infer_freq(stamps) if len(stamps) >= 3 else None
        if found is not None:
            return found
        starts = range(0, max(len(stamps) - 2, 0), max(1, len(stamps) // 200))
        votes = [pd.infer_freq(stamps[i:i + 3]) for i in starts]
    votes = [to_offset(v).freqstr for v in votes if v is not None]
    return max(set(votes), key=votes.count) if votes else None


def infer_frequency(df: pd.DataFrame, path, alias: str | None = None) -> Frequency:
    """Infer the frequency from the longest series, or take `alias` (--freq)."""
    lengths = df.groupby(ID, sort=False).size()
    longest = df.loc[df[ID] == lengths.idxmax(), TIME]
    if pd.api.types.is_integer_dtype(df[TIME]):
        diffs = np.diff(longest.to_numpy(np.int64))
        positive = diffs[diffs > 0]
        if alias is not None and not str(alias).isdigit():
            raise DataError(f"{path}: the time column holds integer steps, not dates, so the frequency "
                            f"'{alias}' does not apply; give dates, or an integer step with --freq")
        step = int(alias) if alias is not None else (int(positive.min()) if positive.size else 1)
        return Frequency(alias=None, step=step, season=1)
    if alias is None:
        if len(longest) < 3:
            raise DataError(f"{path}: too few points to infer the frequency; give it with --freq (e.g. MS, D, h)")
        found = _infer_alias(pd.DatetimeIndex(longest.drop_duplicates()))
        if found is None:
            raise DataError(f"{path}: cannot infer a regular frequency from series '{lengths.idxmax()}'; "
                            "give it with --freq (e.g. MS, D, h, 30min)")
        alias = to_offset(found).freqstr
    else:
        try:
            alias = to_offset(alias).freqstr
        except ValueError:
            raise DataError(f"--freq {alias}: not a pandas frequency alias (e.g. MS, QS, YS, W, D, h, 30min)") from None
    return Frequency(alias=alias, step=1, season=season_of(alias))


FILLS = ("error", "interpolate", "ffill", "zero")
AGGREGATES = ("mean", "sum", "last")


def regularize(df: pd.DataFrame, freq: Frequency, path, fill: str = "error", aggregate: str | None = None,
               inferred: bool = True) -> pd.DataFrame:
    """Each series on its regular time grid: duplicates refused or aggregated, stamps off the grid refused,
    series at a coarser frequency than the inferred one refused, leading and trailing missing values dropped,
    gaps and missing values refused or filled (`fill`)."""
    if fill not in FILLS:
        raise DataError(f"--fill {fill}: choose one of {', '.join(FILLS)}")
    describe = freq.alias or f"integer steps of {freq.step}"
    pos = _step_index(df, freq)
    same = np.r_[False, df[ID].to_numpy()[1:] == df[ID].to_numpy()[:-1]]
    step = np.diff(pos, prepend=np.nan)
    dup = same & (step == 0)
    if dup.any():
        if aggregate is None:
            i = int(np.flatnonzero(dup)[0])
            raise DataError(f"{path}: row {_row(df['_row'].iloc[i])}: duplicate time stamp {df[TIME].iloc[i]} in "
                            f"series '{df[ID].iloc[i]}'; remove the duplicates or pass --aggregate mean, sum or last")
        if aggregate not in AGGREGATES:
            raise DataError(f"--aggregate {aggregate}: choose one of {', '.join(AGGREGATES)}")
        df = df.groupby([ID, TIME], sort=False, as_index=False).agg({TARGET: aggregate, "_row": "first"})
        return regularize(df, freq, path, fill, inferred=inferred)
    off = np.flatnonzero(np.abs(pos - np.round(pos)) > 1e-9)
    if len(off):
        i = int(off[0])
        raise DataError(f"{path}: row {_row(df['_row'].iloc[i])}: time stamp {df[TIME].iloc[i]} of series "
                        f"'{df[ID].iloc[i]}' is off the {describe} grid (irregular or mixed frequencies); "
                        "give the right --freq or fix the time stamps")
    df = _trim_missing_ends(df, path)
    pos = _step_index(df, freq)
    same = np.r_[False, df[ID].to_numpy()[1:] == df[ID].to_numpy()[:-1]]
    steps = np.diff(pos, prepend=np.nan)
    coarsest = pd.Series(np.where(same, steps, np.nan)).groupby(df[ID].to_numpy(), sort=False).min()
    coarser = coarsest[coarsest > 1]
    if inferred and len(coarser):  # a series that never steps at the file's frequency has one of its own
        uid = coarser.index[0]
        raise DataError(f"{path}: series '{uid}' steps every {int(coarser.iloc[0])} x {describe}, not at the "
                        f"{describe} of the rest (mixed frequencies); split the file by frequency or give --freq")
    gap = same & (steps > 1)
    missing = df[TARGET].isna().to_numpy()
    if not (gap.any() or missing.any()):
        return df
    if fill == "error":
        if gap.any():
            i = int(np.flatnonzero(gap)[0])
            raise DataError(f"{path}: series '{df[ID].iloc[i]}' has {int(gap.sum())} gap(s) at {describe}, the first "
                            f"between {df[TIME].iloc[i - 1]} and {df[TIME].iloc[i]} (row {_row(df['_row'].iloc[i])}); "
                            "fill them with --fill interpolate, ffill or zero, or give the right --freq")
        i = int(np.flatnonzero(missing)[0])
        raise DataError(f"{path}: row {_row(df['_row'].iloc[i])}: missing value in series '{df[ID].iloc[i]}' "
                        f"({int(missing.sum())} in all); fill them with --fill interpolate, ffill or zero")
    return _fill_gaps(df, freq, pos.astype(np.int64), fill)


def _trim_missing_ends(df: pd.DataFrame, path) -> pd.DataFrame:
    """Drop missing values before a series' first and after its last observation (it starts later, ends earlier)."""
    present = df[TARGET].notna()
    if not present.all():
        groups = present.groupby(df[ID], sort=False)
        started = groups.cumsum() > 0
        not_ended = present[::-1].groupby(df[ID][::-1], sort=False).cumsum()[::-1] > 0
        empty = groups.sum()
        if (empty == 0).any():
            raise DataError(f"{path}: series '{empty[empty == 0].index[0]}' has no values; remove it")
        df = df[started & not_ended].reset_index(drop=True)
    return df


def _fill_gaps(df: pd.DataFrame, freq: Frequency, pos: np.ndarray, fill: str) -> pd.DataFrame:
    """Every series on its full grid from its first to its last stamp, the holes filled by `fill`."""
    parts = []
    for (uid, part), part_pos in zip(df.groupby(ID, sort=False), np.split(pos, np.cumsum(
            df.groupby(ID, sort=False).size().to_numpy())[:-1])):
        n = int(part_pos[-1] - part_pos[0]) + 1
        if n == len(part) and part[TARGET].notna().all():
            parts.append(part)
            continue
        first = part[TIME].iloc[0]
        stamps = (first + freq.step * np.arange(n) if freq.alias is None
                  else pd.date_range(first, periods=n, freq=freq.alias))
        y = np.full(n, np.nan)
        y[part_pos - part_pos[0]] = part[TARGET].to_numpy()
        rows = np.full(n, -1)
        rows[part_pos - part_pos[0]] = part["_row"].to_numpy()
        values = pd.Series(y)
        values = {"interpolate": values.interpolate(), "ffill": values.ffill(), "zero": values.fillna(0.0)}[fill]
        parts.append(pd.DataFrame({ID: uid, TIME: stamps, TARGET: values.to_numpy(), "_row": rows}))
    return pd.concat(parts, ignore_index=True)


def load_series(path, id_col=None, time_col=None, target_col=None, freq: str | None = None,
                season: int | None = None, fill: str = "error", aggregate: str | None = None) -> Dataset:
    """Load a CSV of one series (time + value) or many (long format) into a validated Dataset."""
    return dataset_from_frame(read_table(path), path, id_col, time_col, target_col, freq, season, fill, aggregate)


def dataset_from_frame(raw: pd.DataFrame, path, id_col=None, time_col=None, target_col=None,
                       freq: str | None = None, season: int | None = None, fill: str = "error",
                       aggregate: str | None = None) -> Dataset:
    """A validated Dataset from a frame as read from the CSV at `path`."""
    path = Path(path)
    columns = detect_columns(raw, path, id_col, time_col, target_col)
    df = to_long(raw, columns, path)
    frequency = infer_frequency(df, path, freq)
    df = regularize(df, frequency, path, fill, aggregate, inferred=freq is None)
    if season is not None:
        if season < 1:
            raise DataError(f"--season {season}: the season length must be a positive number of steps")
        frequency = Frequency(alias=frequency.alias, step=frequency.step, season=int(season))
    return Dataset(df=df.drop(columns="_row"), columns=columns, freq=frequency, path=str(path),
                   sha256=file_sha256(path))


def history_frame(raw: pd.DataFrame, source: str, freq: str | None, id_col=None, time_col=None,
                  target_col=None) -> tuple[pd.DataFrame, list[str]]:
    """The validated long frame (unique_id, ds, y) of a history handed over as a frame rather than a file (the
    pyfunc model's input, from a DataFrame, a CSV or a JSON request), and its series ids in the order given. The
    time column may hold dates as strings or datetimes, or integer steps as numbers or numeric strings."""
    raw = raw.reset_index(drop=True)
    raw.columns = [str(c) for c in raw.columns]
    for name in raw.columns:  # integer steps sent as strings (a CSV body parsed with the signature's types)
        values = raw[name]
        if name in (id_col, ID) or not (values.dtype == object or isinstance(values.dtype, pd.StringDtype)):
            continue
        numbers = pd.to_numeric(values, errors="coerce")
        if values.notna().any() and numbers.notna().sum() == values.notna().sum() and (numbers.dropna() % 1 == 0).all():
            raw[name] = numbers.astype("int64") if numbers.notna().all() else numbers
    columns = detect_columns(raw, source, id_col, time_col, target_col)
    df = to_long(raw, columns, source)
    order = list(pd.unique(raw[columns.id_col].astype(str))) if columns.id_col else [columns.target_col]
    frequency = infer_frequency(df, source, freq)
    return regularize(df, frequency, source, "error", None, inferred=freq is None).drop(columns="_row"), order


def default_horizon(lengths: pd.Series, season: int) -> int:
    """One season, or a fifth of the shortest series (at least 1, at most 10) when there is no season."""
    if season > 1:
        return season
    return int(np.clip(lengths.min() // 5, 1, 10))


def rolling_origins(df: pd.DataFrame, h: int, folds: int, step: int,
                    min_fit: int = 2) -> list[tuple[pd.DataFrame, pd.DataFrame]]:
    """(training part, test part) for each of the last `folds` forecast origins, `step` apart, oldest first:
    the test part is the `h` points after the origin, the training part everything before it.

    A series with fewer than `min_fit` points before an origin is not scored at it: the points it has before the
    origin stay in the training part (a global model learns from them), its test points are left out.
    """
    from_end = df.groupby(ID, sort=False).cumcount(ascending=False).to_numpy()
    length = df.groupby(ID, sort=False)[ID].transform("size").to_numpy()
    cuts = []
    for k in range(folds):
        offset = step * (folds - 1 - k)
        scored = length - offset - h >= min_fit
        test = (from_end >= offset) & (from_end < offset + h) & scored
        cuts.append((df[from_end >= offset + h].reset_index(drop=True), df[test].reset_index(drop=True)))
    return cuts


def split_holdout(df: pd.DataFrame, h: int, min_fit: int = 2) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The last `h` points of every series as the test part, the rest as the training part (series with fewer
    than `min_fit` points before the holdout: in the training part, unscored)."""
    return rolling_origins(df, h, 1, h, min_fit)[0]


def sort_long(df: pd.DataFrame) -> pd.DataFrame:
    """A long frame with string ids, sorted by (unique_id, ds), as the models expect it."""
    missing = {ID, TIME, TARGET} - set(df.columns)
    if missing:
        raise DataError(f"history frame: missing column(s) {', '.join(sorted(missing))}; "
                        f"expected {ID}, {TIME}, {TARGET}")
    out = df[[ID, TIME, TARGET]].copy()
    out[ID] = out[ID].astype(str).astype(object)
    out[TARGET] = pd.to_numeric(out[TARGET], errors="raise").astype(float)
    return out.sort_values([ID, TIME], kind="stable").reset_index(drop=True)


def series_arrays(df: pd.DataFrame) -> tuple[list[str], list[np.ndarray]]:
    """The ids in frame order and each series' values as a float array (the frame is sorted by id, ds)."""
    sizes = df.groupby(ID, sort=False).size()
    values = np.split(df[TARGET].to_numpy(float), np.cumsum(sizes.to_numpy())[:-1])
    return [str(i) for i in sizes.index], values


def future_frame(df: pd.DataFrame, freq: Frequency, h: int, ids: list[str], yhat: np.ndarray) -> pd.DataFrame:
    """The long forecast frame (unique_id, ds, yhat) continuing each series of `df` at its frequency."""
    last = df.groupby(ID, sort=False)[TIME].last()
    futures = {stamp: freq.future(stamp, h) for stamp in last.unique()}  # series often end together
    stamps = [futures[last[uid]] for uid in ids]
    return pd.DataFrame({
        ID: np.repeat(np.asarray(ids, dtype=object), h),
        TIME: stamps[0].append(stamps[1:]) if stamps else [],
        "yhat": np.asarray(yhat, dtype=float).reshape(-1),
    })
