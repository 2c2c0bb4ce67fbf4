"""Cutting long frames: the holdout, rolling origins, per-series arrays, and the frame of future stamps."""

from __future__ import annotations

import numpy as np
import pandas as pd

from forecast.data.calendar import Frequency
from forecast.data.columns import ID, TARGET, TIME
from forecast.errors import DataError


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


def scorable_folds(longest: int, h: int, step: int, most: int, min_fit: int = 2) -> int:
    """How many of the last `most` origins, `step` apart, `rolling_origins` scores a series of `longest` points at
    (at least 1)."""
    return max(1, min(most, (longest - min_fit - h) // step + 1))


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
    stamps, position = np.unique(last.to_numpy(), return_inverse=True)  # series often end together
    futures = np.stack([freq.future(stamp, h).to_numpy() for stamp in stamps]) if len(stamps) else None
    where = position[last.index.get_indexer(pd.Index(ids, dtype=object))] if len(ids) else position[:0]
    return pd.DataFrame({
        ID: np.repeat(np.asarray(ids, dtype=object), h),
        TIME: futures[where].reshape(-1) if len(ids) else pd.Series([], dtype=df[TIME].dtype),
        "yhat": np.asarray(yhat, dtype=float).reshape(-1),
    })
