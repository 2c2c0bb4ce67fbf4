"""Per-series transforms the nets learn in: seasonal adjustment and log or standard scaling, and their inverse.

Seasonality follows the M4 competition's benchmarks: a series is called seasonal when its autocorrelation at the
seasonal lag passes a 90% test, and then divided by the seasonal indices of a classical multiplicative
decomposition. Positive series are then taken to logs, so that an error in the transformed space is a relative
error (|log(yhat / y)| is sMAPE's 2|yhat - y| / (yhat + y) to first order). A series that is never negative
but has zeros (intermittent demand, a season when the business is closed) keeps both: it is shifted by a tenth
of its mean first (log(y + c), c = mean / 10), and forecasts are shifted back and floored at zero. Series with
negative values are standardised.
Every statistic comes from the history it is applied to, so a saved net forecasts any new history the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def acf(y: np.ndarray, lags: int) -> np.ndarray:
    """Sample autocorrelations r_0..r_lags of `y` (r_0 = 1)."""
    return acf_rows(np.asarray(y, float)[None], lags)[0]


def acf_rows(y: np.ndarray, lags: int) -> np.ndarray:
    """(S, lags + 1) sample autocorrelations of the rows of `y` (S, n); 0 beyond r_0 for a constant row."""
    z = y - y.mean(axis=1, keepdims=True)
    n = z.shape[1]
    r = np.zeros((len(z), lags + 1))
    denom = np.einsum("ij,ij->i", z, z)
    for k in range(min(lags, n - 1) + 1):
        r[:, k] = np.einsum("ij,ij->i", z[:, k:], z[:, :n - k])
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(denom[:, None] > 0, r / denom[:, None], 0.0)
    r[:, 0] = 1.0
    return r


def is_seasonal(y: np.ndarray, season: int) -> bool:
    """The M4 benchmarks' 90% test: |r_m| > 1.645 sqrt((1 + 2 sum_{k<m} r_k^2) / n), for n >= 3m."""
    return bool(seasonal_rows(np.asarray(y, float)[None], season)[0])


def seasonal_rows(y: np.ndarray, season: int) -> np.ndarray:
    """(S,) the seasonality test of `is_seasonal` on each row of `y` (S, n)."""
    n = y.shape[1]
    if season <= 1 or n < 3 * season:
        return np.zeros(len(y), bool)
    r = acf_rows(y, season)
    limit = 1.645 * np.sqrt((1 + 2 * np.sum(r[:, 1:season] ** 2, axis=1)) / n)
    return np.abs(r[:, season]) > limit


def seasonal_indices(y: np.ndarray, season: int) -> np.ndarray:
    """Classical multiplicative seasonal indices (season,), index k for the points t with t % season == k,
    normalised to mean 1: the mean ratio of y to its centred moving average at each position."""
    return seasonal_index_rows(np.asarray(y, float)[None], season)[0]


def seasonal_index_rows(y: np.ndarray, season: int) -> np.ndarray:
    """(S, season) the seasonal indices of `seasonal_indices` of each row of `y` (S, n)."""
    m = season
    if m % 2:
        weights, offset = np.full(m, 1 / m), (m - 1) // 2  # centred: offset (m - 1) / 2
    else:  # a 2 x m moving average
        weights, offset = np.r_[0.5, np.ones(m - 1), 0.5] / m, m // 2
    trend = sliding_window_view(y, len(weights), axis=1) @ weights  # (S, T)
    ratios = y[:, offset:offset + trend.shape[1]] / trend
    positions = (np.arange(trend.shape[1]) + offset) % m
    onehot = positions[:, None] == np.arange(m)[None]  # (T, m)
    index = (ratios @ onehot) / onehot.sum(axis=0)
    return index / index.mean(axis=1, keepdims=True)


def by_length(series: list[np.ndarray]) -> dict[int, np.ndarray]:
    """The positions of the series of each length: series of one length are processed as one matrix."""
    lengths = np.fromiter((len(s) for s in series), int, len(series))
    order = np.argsort(lengths, kind="stable")
    cuts = np.flatnonzero(np.diff(lengths[order])) + 1
    return {int(lengths[g[0]]): g for g in np.split(order, cuts) if len(g)}


ZERO_SHIFT = 0.1  # the shift of a non-negative series with zeros, as a fraction of its mean


@dataclass
class SeriesTransform:
    """The transform of one series: z_t = log((y_t + shift) / s_t) where it is not negative (shift 0 when it is
    positive), else (y_t / s_t - loc) / scale."""

    log: bool
    loc: float
    scale: float
    index: np.ndarray | None  # the seasonal indices by position t % season, or None when not seasonal
    length: int  # the history's length, to continue the seasonal positions into the future
    shift: float = 0.0  # added before the logs and the seasonal indices, subtracted after (floored at 0)

    @classmethod
    def fit(cls, y: np.ndarray, season: int, deseasonalize: bool = True, log: bool = True,
            shift_zeros: bool = True) -> SeriesTransform:
        return fit_rows(np.asarray(y, float)[None], season, deseasonalize, log, shift_zeros)[0]

    def _factors(self, start: int, count: int, ndim: int = 1) -> np.ndarray:
        """The seasonal factors of `count` points from position `start`, shaped to scale an array of `ndim`
        dimensions whose first axis is time."""
        if self.index is None:
            factors = np.ones(count)
        else:
            factors = self.index[np.arange(start, start + count) % len(self.index)]
        return factors.reshape(-1, *([1] * (ndim - 1)))

    def transform(self, y: np.ndarray, start: int = 0) -> np.ndarray:
        """The transformed values of `y`, the points from position `start` on (default: the history itself; its
        length for the points that follow it)."""
        factors = self._factors(start, len(y))
        if self.log:
            return np.log((np.asarray(y, float) + self.shift) / factors)
        return (np.asarray(y, float) / factors - self.loc) / self.scale

    def forecast_space(self, y: np.ndarray) -> np.ndarray:
        """Forecasts of the points after the history, transformed; for a series in logs, forecasts at or below
        what the logs can take (a combination may undershoot zero) are floored at the smallest they can."""
        y = np.asarray(y, float)
        if self.log:
            y = np.maximum(y, -self.shift + 1e-9 * max(self.shift, 1.0))
        return self.transform(y, start=self.length)

    def inverse(self, z: np.ndarray, start: int | None = None) -> np.ndarray:
        """The original-scale values of the transformed values `z` (time on the first axis) for the points from
        `start` on (default: the points right after the history)."""
        z = np.asarray(z, float)
        factors = self._factors(self.length if start is None else start, len(z), z.ndim)
        if not self.log:
            return (z * self.scale + self.loc) * factors
        values = np.exp(np.clip(z, -700, 700)) * factors
        return np.maximum(values - self.shift, 0.0) if self.shift else values


def fit_rows(y: np.ndarray, season: int, deseasonalize: bool = True, log: bool = True,
             shift_zeros: bool = True) -> list[SeriesTransform]:
    """The transforms of the rows of `y` (S, n), series of one length, fitted together."""
    rows, n = y.shape
    shift = np.zeros(rows)
    if shift_zeros and n:
        zeros = (y >= 0).all(axis=1) & (y == 0).any(axis=1) & (y > 0).any(axis=1)
        # no underflow to 0 for tiny values
        shift[zeros] = np.maximum(ZERO_SHIFT * y[zeros].mean(axis=1), np.finfo(float).tiny)
    shifted = y + shift[:, None]
    positive = (shifted > 0).all(axis=1)
    seasonal = np.zeros(rows, bool)
    m = max(int(season), 1)
    index = np.ones((rows, m))
    if deseasonalize:
        seasonal[positive] = seasonal_rows(shifted[positive], season)
        if seasonal.any():
            index[seasonal] = seasonal_index_rows(shifted[seasonal], season)
    logs = positive & log
    loc, scale = np.zeros(rows), np.ones(rows)
    if not logs.all() and n:
        adjusted = y[~logs] / index[~logs][:, np.arange(n) % m]
        mean, std = adjusted.mean(axis=1), adjusted.std(axis=1)
        # a constant series has no spread: scale by its magnitude instead (or 1 for zeros)
        flat = std <= 1e-8 * np.maximum(np.abs(mean), 1.0)
        loc[~logs] = mean
        scale[~logs] = np.where(flat, np.where(np.abs(mean) > 0, np.abs(mean), 1.0), std)
    return [SeriesTransform(True, 0.0, 1.0, index[i] if seasonal[i] else None, n, float(shift[i])) if logs[i]
            else SeriesTransform(False, float(loc[i]), float(scale[i]), index[i] if seasonal[i] else None, n)
            for i in range(rows)]


def fit_transforms(series: list[np.ndarray], season: int, deseasonalize: bool = True, log: bool = True,
                   shift_zeros: bool = True) -> list[SeriesTransform]:
    """The transform of every series, fitted as one matrix per length."""
    transforms = [None] * len(series)
    for n, picked in by_length(series).items():
        matrix = np.array([series[i] for i in picked], float).reshape(len(picked), n)
        for i, t in zip(picked, fit_rows(matrix, season, deseasonalize, log, shift_zeros)):
            transforms[i] = t
    return transforms


def transform_all(transforms: list[SeriesTransform], series: list[np.ndarray]) -> list[np.ndarray]:
    """Each series transformed by its transform (the histories they were fitted on), one matrix per length."""
    out = [None] * len(series)
    for n, picked in by_length(series).items():
        matrix = np.array([series[i] for i in picked], float).reshape(len(picked), n)
        for i, row in zip(picked, Stacked([transforms[i] for i in picked]).transform(matrix, 0)):
            out[i] = row
    return out


class Stacked:
    """Many transforms as arrays, to transform and invert (S, steps, ...) matrices at once: row i by transform i,
    the steps from position `start` (per row) on."""

    def __init__(self, transforms: list[SeriesTransform]):
        self.log = np.array([t.log for t in transforms], bool)
        self.loc = np.array([t.loc for t in transforms], float)
        self.scale = np.array([t.scale for t in transforms], float)
        self.shift = np.array([t.shift for t in transforms], float)
        self.length = np.array([t.length for t in transforms], int)
        m = max((len(t.index) for t in transforms if t.index is not None), default=1)
        self.index = np.ones((len(transforms), m))
        for i, t in enumerate(transforms):
            if t.index is not None:
                self.index[i] = t.index

    def _factors(self, start, count: int) -> np.ndarray:
        """(S, count) the seasonal factors of `count` steps from `start` (scalar or (S,))."""
        positions = (np.broadcast_to(np.asarray(start), self.log.shape)[:, None] + np.arange(count)) % \
            self.index.shape[1]
        return np.take_along_axis(self.index, positions, axis=1)

    @staticmethod
    def _column(values: np.ndarray, ndim: int) -> np.ndarray:
        return values.reshape(-1, *([1] * (ndim - 1)))

    def transform(self, y: np.ndarray, start=None) -> np.ndarray:
        """`SeriesTransform.transform` of each row of `y` (S, steps, ...); `start` default: each history's end."""
        y = np.asarray(y, float)
        factors = self._factors(self.length if start is None else start, y.shape[1])
        factors = factors.reshape(*factors.shape, *([1] * (y.ndim - 2)))
        col = self._column
        with np.errstate(divide="ignore", invalid="ignore"):
            logs = np.log((y + col(self.shift, y.ndim)) / factors)
        return np.where(col(self.log, y.ndim), logs, (y / factors - col(self.loc, y.ndim)) / col(self.scale, y.ndim))

    def forecast_space(self, y: np.ndarray) -> np.ndarray:
        """`SeriesTransform.forecast_space` of each row of `y` (S, h)."""
        y = np.asarray(y, float)
        floor = -self.shift + 1e-9 * np.maximum(self.shift, 1.0)
        return self.transform(np.where(self.log[:, None], np.maximum(y, floor[:, None]), y))

    def inverse(self, z: np.ndarray, start=None) -> np.ndarray:
        """`SeriesTransform.inverse` of each row of `z` (S, steps, ...); `start` default: each history's end."""
        z = np.asarray(z, float)
        factors = self._factors(self.length if start is None else start, z.shape[1])
        factors = factors.reshape(*factors.shape, *([1] * (z.ndim - 2)))
        col = self._column
        levels = np.exp(np.clip(z, -700, 700)) * factors
        shift = col(self.shift, z.ndim)
        levels = np.where(shift > 0, np.maximum(levels - shift, 0.0), levels)
        return np.where(col(self.log, z.ndim), levels, (z * col(self.scale, z.ndim) + col(self.loc, z.ndim)) * factors)
