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


def acf(y: np.ndarray, lags: int) -> np.ndarray:
    """Sample autocorrelations r_0..r_lags of `y` (r_0 = 1)."""
    z = np.asarray(y, float) - np.mean(y)
    denom = float(z @ z)
    if denom == 0:
        return np.r_[1.0, np.zeros(lags)]
    return np.correlate(z, z, mode="full")[len(z) - 1:len(z) + lags] / denom


def is_seasonal(y: np.ndarray, season: int) -> bool:
    """The M4 benchmarks' 90% test: |r_m| > 1.645 sqrt((1 + 2 sum_{k<m} r_k^2) / n), for n >= 3m."""
    n = len(y)
    if season <= 1 or n < 3 * season:
        return False
    r = acf(y, season)
    limit = 1.645 * np.sqrt((1 + 2 * np.sum(r[1:season] ** 2)) / n)
    return bool(abs(r[season]) > limit)


def seasonal_indices(y: np.ndarray, season: int) -> np.ndarray:
    """Classical multiplicative seasonal indices (season,), index k for the points t with t % season == k,
    normalised to mean 1: the mean ratio of y to its centred moving average at each position."""
    y = np.asarray(y, float)
    m = season
    if m % 2:
        trend = np.convolve(y, np.full(m, 1 / m), mode="valid")  # centred: offset (m - 1) / 2
        offset = (m - 1) // 2
    else:  # a 2 x m moving average
        weights = np.r_[0.5, np.ones(m - 1), 0.5] / m
        trend = np.convolve(y, weights, mode="valid")
        offset = m // 2
    ratios = y[offset:offset + len(trend)] / trend
    positions = (np.arange(len(trend)) + offset) % m
    index = np.bincount(positions, ratios, m) / np.bincount(positions, minlength=m)
    return index / index.mean()


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
        y = np.asarray(y, float)
        shift = 0.0
        if shift_zeros and np.all(y >= 0) and np.any(y == 0) and np.any(y > 0):
            shift = max(ZERO_SHIFT * float(y.mean()), np.finfo(float).tiny)  # no underflow to 0 for tiny values
        positive = bool(np.all(y + shift > 0))
        index = None
        if deseasonalize and positive and is_seasonal(y + shift, season):
            index = seasonal_indices(y + shift, season)
        if log and positive:
            return cls(True, 0.0, 1.0, index, len(y), shift)
        adjusted = y if index is None else y / index[np.arange(len(y)) % season]
        loc, std = float(adjusted.mean()), float(adjusted.std())
        # a constant series has no spread: scale by its magnitude instead (or 1 for zeros)
        scale = std if std > 1e-8 * max(abs(loc), 1.0) else (abs(loc) if abs(loc) > 0 else 1.0)
        return cls(False, loc, scale, index, len(y))

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


def fit_transforms(series: list[np.ndarray], season: int, deseasonalize: bool = True, log: bool = True,
                   shift_zeros: bool = True) -> list[SeriesTransform]:
    return [SeriesTransform.fit(s, season, deseasonalize, log, shift_zeros) for s in series]
