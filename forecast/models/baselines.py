"""Naive baselines: the last value, and the last season's values. Their intervals have the textbook shape, the
standard deviation of the in-sample residuals times sqrt(h) (naive) or sqrt(k + 1), k the complete seasons within h
steps (seasonal naive) (Hyndman and Athanasopoulos, FPP3 5.5), with quantiles calibrated on the series' last
horizon (forecast.intervals.Calibration) instead of the normal's, which the M3 data showed too light-tailed."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from forecast.intervals import Calibration, holdout_residuals, normal_quantiles
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


class _Baseline(Forecaster):
    """What both naive models share: a forecast and its textbook standard deviation per series, calibrated."""

    def _path(self, y: np.ndarray, h: int) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def _fit(self, ids, series, h):
        """Calibrate (forecast.intervals.holdout_residuals): the errors of forecasts of each series' last h points,
        over the textbook standard deviations, give the quantiles per step."""
        def errors(picked, histories, steps):
            rows = []
            for i, past in zip(picked, histories):
                yhat, sd = self._path(past, steps)
                rows.append((series[i][len(past):] - yhat) / np.where(sd > 0, sd, np.nan))
            return np.stack(rows)

        residuals = holdout_residuals(series, h, errors)
        self.calibration_ = None if residuals is None else Calibration.from_residuals(residuals, "validation",
                                                                                      growth=False)

    def _forecast(self, ids, series, h):
        return np.stack([self._path(s, h)[0] for s in series])

    def _bands(self, ids, series, h, probs):
        calibration = getattr(self, "calibration_", None)
        spread = (calibration.quantiles(probs, h) if calibration is not None else
                  np.tile(normal_quantiles(probs), (h, 1)))  # (h, P)
        paths = [self._path(s, h) for s in series]
        yhat = np.stack([p[0] for p in paths])  # (S, h)
        sd = np.stack([p[1] for p in paths])  # (S, h)
        return yhat, yhat[..., None] + sd[..., None] * spread[None]

    def _state(self, path):
        calibration = getattr(self, "calibration_", None)
        return {"calibration": calibration.to_dict() if calibration is not None else None}

    def _restore(self, path, state):
        self.calibration_ = Calibration.from_dict(state["calibration"]) if state.get("calibration") else None


class Naive(_Baseline):
    """Every future value equals the last one observed."""

    name = "naive"
    Config = NaiveConfig

    def _path(self, y, h):
        return np.full(h, y[-1], dtype=float), residual_scale(y, 1) * np.sqrt(np.arange(1, h + 1))


class SeasonalNaive(_Baseline):
    """Every future value equals the value one season earlier (the last value for series shorter than a season)."""

    name = "seasonal-naive"
    Config = SeasonalNaiveConfig

    def _path(self, y, h):
        m = self.config.season or self.freq_.season
        m = m if len(y) >= m else 1
        last = y[-m:]
        yhat = np.resize(last, h).astype(float) if len(last) else np.full(h, np.nan)
        return yhat, residual_scale(y, m) * np.sqrt(np.arange(h) // m + 1)
