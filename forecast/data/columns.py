"""Which columns are the id, the time and the target, and the user's frame as a long frame."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from forecast.errors import DataError

ID, TIME, TARGET = "unique_id", "ds", "y"
TIME_NAMES = ("ds", "date", "time", "timestamp", "datetime", "month", "year", "period", "t", "step", "week", "day")


@dataclass(frozen=True)
class Columns:
    """The user's names for the series id, time and target columns (id is None for a single series)."""

    id_col: str | None
    time_col: str
    target_col: str


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
