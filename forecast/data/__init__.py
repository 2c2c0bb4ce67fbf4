"""The data: a CSV or Parquet file (one series, or many in long format) checked and made a long frame
(unique_id, ds, y) on a regular grid. io: the files; columns: which column is which; calendar: frequency and
grid; splits: holdouts, origins and future stamps."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from forecast.data.calendar import (  # noqa: F401
    AGGREGATES,
    FILLS,
    Frequency,
    infer_frequency,
    regularize,
    season_of,
)
from forecast.data.columns import (  # noqa: F401
    ID,
    TARGET,
    TIME,
    TIME_NAMES,
    Columns,
    Covariates,
    detect_columns,
    to_long,
)
from forecast.data.io import (  # noqa: F401
    PARQUET,
    TableWriter,
    file_sha256,
    is_parquet,
    read_csv,
    read_parquet,
    read_table,
    write_table,
)
from forecast.data.splits import (  # noqa: F401
    default_horizon,
    future_frame,
    rolling_origins,
    series_arrays,
    sort_long,
    split_holdout,
)
from forecast.errors import DataError

NO_COVARIATES = Covariates()


@dataclass(frozen=True)
class Dataset:
    """A loaded CSV: the long frame sorted by (unique_id, ds), and the facts about it that runs log."""

    df: pd.DataFrame
    columns: Columns
    freq: Frequency
    path: str
    sha256: str
    covariates: Covariates = NO_COVARIATES

    @property
    def n_series(self) -> int:
        return int(self.df[ID].nunique())

    @property
    def n_points(self) -> int:
        return len(self.df)

    def lengths(self) -> pd.Series:
        return self.df.groupby(ID, sort=False).size()


def load_series(path, id_col=None, time_col=None, target_col=None, freq: str | None = None,
                season: int | None = None, fill: str = "error", aggregate: str | None = None,
                covariates: Covariates = NO_COVARIATES) -> Dataset:
    """Load a CSV of one series (time + value) or many (long format) into a validated Dataset."""
    return dataset_from_frame(read_table(path), path, id_col, time_col, target_col, freq, season, fill, aggregate,
                              covariates)


def dataset_from_frame(raw: pd.DataFrame, path, id_col=None, time_col=None, target_col=None,
                       freq: str | None = None, season: int | None = None, fill: str = "error",
                       aggregate: str | None = None, covariates: Covariates = NO_COVARIATES,
                       digest: bool = True) -> Dataset:
    """A validated Dataset from a frame as read from the CSV at `path`, with the covariate columns it names (and,
    with `digest`, the file's SHA-256)."""
    path = Path(path)
    if covariates.columns and target_col is None:
        target_col = TARGET if TARGET in raw.columns else None
        if target_col is None:
            raise DataError(f"{path}: with covariates, name the column to forecast with --target")
    columns = detect_columns(raw, path, id_col, time_col, target_col)
    covariates.check_frame(raw, path, (columns.id_col, columns.time_col, columns.target_col))
    df = to_long(raw, columns, path, covariates.futr + covariates.hist, covariates.static)
    frequency = infer_frequency(df, path, freq)
    df = regularize(df, frequency, path, fill, aggregate, inferred=freq is None)
    if season is not None:
        if season < 1:
            raise DataError(f"--season {season}: the season length must be a positive number of steps")
        frequency = Frequency(alias=frequency.alias, step=frequency.step, season=int(season))
    return Dataset(df=df.drop(columns="_row"), columns=columns, freq=frequency, path=str(path),
                   sha256=file_sha256(path) if digest else "", covariates=covariates)


def history_frame(raw: pd.DataFrame, source: str, freq: str | None, id_col=None, time_col=None,
                  target_col=None, covariates: Covariates = NO_COVARIATES) -> tuple[pd.DataFrame, list[str], Columns]:
    """The validated long frame (unique_id, ds, y and the `covariates` columns) of a history handed over as a frame
    rather than a file (the pyfunc model's input, from a DataFrame, a CSV or a JSON request), its series ids in the
    order given, and which column was which. The time column may hold dates as strings or datetimes, or integer
    steps as numbers or numeric strings."""
    raw = raw.reset_index(drop=True)
    raw.columns = [str(c) for c in raw.columns]
    for name in raw.columns:  # integer steps sent as strings (a CSV body parsed with the signature's types)
        values = raw[name]
        if name in (id_col, ID) or not (values.dtype == object or isinstance(values.dtype, pd.StringDtype)):
            continue
        numbers = pd.to_numeric(values, errors="coerce")
        if values.notna().any() and numbers.notna().sum() == values.notna().sum() and (numbers.dropna() % 1 == 0).all():
            raw[name] = numbers.astype("int64") if numbers.notna().all() else numbers
    if covariates.columns and target_col is None and TARGET in raw.columns:
        target_col = TARGET
    columns = detect_columns(raw, source, id_col, time_col, target_col)
    covariates.check_frame(raw, source, (columns.id_col, columns.time_col, columns.target_col))
    df = to_long(raw, columns, source, covariates.futr + covariates.hist, covariates.static)
    order = list(pd.unique(raw[columns.id_col].astype(str))) if columns.id_col else [columns.target_col]
    frequency = infer_frequency(df, source, freq)
    return regularize(df, frequency, source, "error", None, inferred=freq is None).drop(columns="_row"), order, columns
