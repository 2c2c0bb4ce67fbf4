"""Naive baselines: the last value, and the last season's values. Their intervals have the textbook shape, the
standard deviation of the in-sample residuals times sqrt(h) (naive) or sqrt(k + 1), k the complete seasons within h
steps (seasonal naive) (Hyndman and Athanasopoulos, FPP3 5.5), with quantiles calibrated on the series' last
horizon (forecast.intervals.Calibration) instead of the normal's, which the M3 data showed too light-tailed.
The errors of those last-horizon forecasts, scaled as MASE's, are the models' `validation_mase_`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from forecast.intervals import Calibration, holdout_residuals, normal_quantiles
from forecast.models.base import Forecaster
from forecast.models.conformal import scaled_errors
from forecast.models.per_series import PerSeries
from forecast.transforms import by_length


@dataclass
class NaiveConfig:
    pass


@dataclass
class SeasonalNaiveConfig:
    season: int | None = None  # None: the data's season length


def residual_scale(y: np.ndarray, lag: int) -> np.ndarray:
    """(S,) the root mean square of the in-sample residuals y_t - y_{t-lag} of each row of `y` (S, n) (0 when there
    are none)."""
    y = np.asarray(y, float)
    if y.shape[1] <= lag:
        return np.zeros(len(y))
    return np.sqrt(np.mean((y[:, lag:] - y[:, :-lag]) ** 2, axis=1))


def seasonal_repeats(y: np.ndarray, h: int, m: int) -> np.ndarray:
    """(S, h): each row of `y` (S, n) continued by its last `m` values repeated (NaN where a row is empty)."""
    return y[:, -m:][:, np.arange(h) % m] if y.shape[1] else np.full((len(y), h), np.nan)


class _Baseline(PerSeries, Forecaster):
    """What both naive models share: a forecast and its textbook standard deviation per series, calibrated; the
    series of one length computed as one matrix."""

    def _path_rows(self, y: np.ndarray, h: int) -> tuple[np.ndarray, np.ndarray]:
        """(forecasts (S, h), their standard deviations (S, h)) of the rows of `y` (S, n)."""
        raise NotImplementedError

    def _paths(self, series, h: int) -> tuple[np.ndarray, np.ndarray]:
        yhat, sd = np.empty((len(series), h)), np.empty((len(series), h))
        for n, picked in by_length(series).items():
            rows = np.array([series[i] for i in picked], float).reshape(len(picked), n)
            yhat[picked], sd[picked] = self._path_rows(rows, h)
        return yhat, sd

    def _fit(self, ids, series, h):
        """Calibrate (forecast.intervals.holdout_residuals): the errors of forecasts of each series' last h points,
        over the textbook standard deviations, give the quantiles per step."""
        self.validation_mase_ = float("nan")

        def errors(picked, histories, steps):
            yhat, sd = self._paths(histories, steps)
            actual = np.stack([series[i][len(past):] for i, past in zip(picked, histories)])
            if steps == h:
                self._keep_validation(scaled_errors(histories, actual, yhat, self.freq_.season))
            return (actual - yhat) / np.where(sd > 0, sd, np.nan)

        residuals = holdout_residuals(series, h, errors, getattr(self, "calibration_plan_", None))
        self.residuals_ = residuals
        self.calibration_ = None if residuals is None else Calibration.from_residuals(residuals, "validation",
                                                                                      growth=False)

    def _forecast(self, ids, series, h):
        return self._paths(series, h)[0]

    def _bands(self, ids, series, h, probs):
        calibration = getattr(self, "calibration_", None)
        spread = (calibration.quantiles(probs, h) if calibration is not None else
                  np.tile(normal_quantiles(probs), (h, 1)))  # (h, P)
        yhat, sd = self._paths(series, h)  # (S, h) each
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

    def _path_rows(self, y, h):
        last = y[:, -1:] if y.shape[1] else np.full((len(y), 1), np.nan)
        return np.repeat(last, h, axis=1), residual_scale(y, 1)[:, None] * np.sqrt(np.arange(1, h + 1))


class SeasonalNaive(_Baseline):
    """Every future value equals the value one season earlier (the last value for series shorter than a season)."""

    name = "seasonal-naive"
    Config = SeasonalNaiveConfig

    def _path_rows(self, y, h):
        m = self.config.season or self.freq_.season
        m = m if y.shape[1] >= m else 1
        return seasonal_repeats(y, h, m), residual_scale(y, m)[:, None] * np.sqrt(np.arange(h) // m + 1)
