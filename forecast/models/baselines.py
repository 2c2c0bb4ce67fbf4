"""Naive baselines: the last value, and the last season's values, with the textbook prediction intervals: normal
quantiles around the forecast with the standard deviation of the in-sample residuals times sqrt(h) (naive) or
sqrt(k + 1), k the complete seasons within h steps (seasonal naive) (Hyndman and Athanasopoulos, FPP3 5.5)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from forecast.intervals import normal_quantiles
from forecast.models.base import Forecaster


@dataclass
class NaiveConfig:
    pass


@dataclass
class SeasonalNaiveConfig:
    season: int | None = None  # None: the data's season length


def residual_scale(y: np.ndarray, lag: int) -> float:
    """The root mean square of the in-sample residuals y_t - y_{t-lag} (0 when there are none)."""
    residuals = np.asarray(y[lag:], float) - np.asarray(y[:-lag], float) if len(y) > lag else np.empty(0)
    return float(np.sqrt(np.mean(residuals ** 2))) if len(residuals) else 0.0


def normal_bands(yhat: np.ndarray, sd: np.ndarray, probs) -> np.ndarray:
    """Quantiles (S, h, P) of normal forecasts with means `yhat` (S, h) and standard deviations `sd` (S, h)."""
    return yhat[..., None] + sd[..., None] * normal_quantiles(probs)


class Naive(Forecaster):
    """Every future value equals the last one observed."""

    name = "naive"
    Config = NaiveConfig

    def _fit(self, ids, series, h):
        pass

    def _forecast(self, ids, series, h):
        return np.stack([np.full(h, s[-1], dtype=float) for s in series])

    def _bands(self, ids, series, h, probs):
        yhat = self._forecast(ids, series, h)
        steps = np.sqrt(np.arange(1, h + 1))
        sd = np.stack([residual_scale(s, 1) * steps for s in series])
        return yhat, normal_bands(yhat, sd, probs)


class SeasonalNaive(Forecaster):
    """Every future value equals the value one season earlier (the last value for series shorter than a season)."""

    name = "seasonal-naive"
    Config = SeasonalNaiveConfig

    def _fit(self, ids, series, h):
        pass

    def _season(self, s: np.ndarray) -> int:
        m = self.config.season or self.freq_.season
        return m if len(s) >= m else 1

    def _forecast(self, ids, series, h):
        rows = []
        for s in series:
            last = s[-self._season(s):]
            rows.append(np.resize(last, h) if len(last) else np.full(h, np.nan))
        return np.stack(rows)

    def _bands(self, ids, series, h, probs):
        yhat = self._forecast(ids, series, h)
        sd = []
        for s in series:
            m = self._season(s)
            sd.append(residual_scale(s, m) * np.sqrt(np.arange(h) // m + 1))
        return yhat, normal_bands(yhat, np.stack(sd), probs)
