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
from forecast.data.columns import ID, TARGET, TIME, TIME_NAMES, Columns, detect_columns, to_long  # noqa: F401
from forecast.data.io import PARQUET, file_sha256, is_parquet, read_csv, read_parquet, read_table, write_table  # noqa: F401
from forecast.data.splits import (  # noqa: F401
    default_horizon,
    future_frame,
    rolling_origins,
    series_arrays,
    sort_long,
    split_holdout,
)
from forecast.errors import DataError


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
