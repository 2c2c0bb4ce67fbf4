"""Which columns are the id, the time and the target, and the user's frame as a long frame."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from forecast.errors import DataError

ID, TIME, TARGET = "unique_id", "ds", "y"
TIME_NAMES = ("ds", "date", "time", "timestamp", "datetime", "month", "year", "period", "t", "step", "week", "day")


RESERVED = (ID, TIME, TARGET, "_row")  # names a covariate cannot take


def _names(value) -> tuple[str, ...]:
    """Column names from "a,b", ["a", "b"] or None."""
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else [n for v in value for n in str(v).split(",")]
    return tuple(n.strip() for n in items if n.strip())


@dataclass(frozen=True)
class Covariates:
    """The covariate columns by role, and whether calendar features are added."""

    futr: tuple[str, ...] = ()
    hist: tuple[str, ...] = ()
    static: tuple[str, ...] = ()
    calendar: bool = False

    @classmethod
    def of(cls, futr=None, hist=None, static=None, calendar=False) -> Covariates:
        spec = cls(_names(futr), _names(hist), _names(static), bool(calendar))
        seen: dict[str, str] = {}
        for role in ("futr", "hist", "static"):
            for name in getattr(spec, role):
                if name in seen:
                    raise DataError(f"column '{name}' is given two roles (--{seen[name]} and --{role}); give it one")
                seen[name] = role
        return spec

    @property
    def columns(self) -> tuple[str, ...]:
        return self.futr + self.hist + self.static

    def __bool__(self) -> bool:
        return bool(self.columns or self.calendar)

    def params(self) -> dict:
        """What a run logs: the columns of each role."""
        return {"covariates_futr": ",".join(self.futr), "covariates_hist": ",".join(self.hist),
                "covariates_static": ",".join(self.static), "covariates_calendar": self.calendar}

    def check_frame(self, raw: pd.DataFrame, path, taken: tuple[str, ...]) -> None:
        """Every covariate column is in the file and is not the id, time or target column."""
        for name in self.columns:
            if name not in raw.columns:
                raise DataError(f"{path}: no column '{name}' for the covariates (columns: "
                                f"{', '.join(map(str, raw.columns))}); check --futr, --hist and --static")
            if name in taken or name in RESERVED:
                raise DataError(f"{path}: column '{name}' is the id, time or target column; it cannot also be a "
                                "covariate")


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


def to_long(raw: pd.DataFrame, columns: Columns, path, numeric=(), other=()) -> pd.DataFrame:
    """The user's frame as a long frame (unique_id: str, ds: datetime or int, y: float), sorted, with the
    covariate columns `numeric` (numbers: text is refused, naming its row) and `other` (kept as they are)."""
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
    if columns.id_col:
        uid = raw[columns.id_col]
        strings = pd.api.types.is_string_dtype(uid) and uid.notna().all()
        uid = uid.to_numpy(dtype=object) if strings else uid.astype(str).to_numpy(dtype=object)
    else:
        uid = np.full(len(raw), columns.target_col, dtype=object)
    df = pd.DataFrame({ID: pd.Series(uid, dtype=object), TIME: ds.to_numpy(), TARGET: y.to_numpy(float)})
    for name in numeric:
        values = pd.to_numeric(raw[name], errors="coerce")
        bad = values.isna() & raw[name].notna()
        if bad.any():
            first = bad.idxmax()
            raise DataError(f"{path}: row {_row(first)}: '{raw[name].iloc[first]}' in covariate column '{name}' is "
                            "not a number; fix the value (a category belongs in --static)")
        df[name] = values.to_numpy(float)
    for name in other:
        df[name] = raw[name].to_numpy()
    df["_row"] = raw.index.to_numpy()
    if not _sorted(uid, df[TIME].to_numpy()):
        df = df.sort_values([ID, TIME], kind="stable").reset_index(drop=True)
    return df


def _sorted(ids: np.ndarray, times: np.ndarray) -> bool:
    """Whether the rows are already in (id, time) order, as files written by id mostly are: no sort needed."""
    if len(ids) < 2:
        return True
    try:
        same = ids[1:] == ids[:-1]
        return bool(np.all((ids[1:] > ids[:-1]) | (same & (times[1:] >= times[:-1]))))
    except TypeError:  # ids of mixed kinds: let the sort decide
        return False
