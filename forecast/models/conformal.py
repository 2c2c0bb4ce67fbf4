"""Split-conformal intervals on the scale of MASE, shared by the global models (the nets and gbm): the errors of
forecasts of each series' last horizon, divided by the series' in-sample seasonal-naive MAE, per step, give the
quantiles y_hat + q_j(p) s_i. (Calibrated in levels rather than logs: a spread in logs exponentiates into absurd
upper bounds for erratic series, and the scale is the one MSIS judges the width by.)"""

from __future__ import annotations

import numpy as np

from forecast.errors import ModelError
from forecast.intervals import Calibration, fill_scales, holdout_residuals
from forecast.metrics import seasonal_scale


def scaled_errors(histories, actual: np.ndarray, predicted: np.ndarray, season: int) -> np.ndarray:
    """(S, steps) the errors of forecasts of the points after each history, divided by the history's in-sample
    seasonal-naive MAE (the scale of MASE; zero and undefined scales replaced by the median)."""
    scales = fill_scales([seasonal_scale(s, season) for s in histories])
    return (np.asarray(actual, float) - np.asarray(predicted, float)) / scales[:, None]


class ScaledConformal:
    """Mixin of a Forecaster with `_forecast(ids, series, h)` that keeps the series it was fitted on as `ids_` and
    `series_`: `_conformal` calibrates, `inherit_calibration` takes over a scored fit's, `_bands` forecasts the
    quantiles. `validation_mase_` is the mean scaled error of the forecasts of each series' last horizon (NaN when
    no series is long enough), the figure combinations weigh models by."""

    def _scales(self, series) -> np.ndarray:
        """(S,) each series' in-sample seasonal-naive MAE, the zero and undefined ones replaced by the median."""
        return fill_scales([seasonal_scale(s, self.freq_.season) for s in series])

    def _conformal(self, ids, series, h, forecast, held_out: bool) -> Calibration | None:
        """Calibration from the errors of `forecast(ids, histories, steps)` (S, steps) of each series' last h
        points (forecast.intervals.holdout_residuals), "validation" when the fit held those points out."""
        self.validation_mase_ = float("nan")

        def errors(picked, histories, steps):
            predicted = forecast([ids[i] for i in picked], histories, steps)  # (S, steps)
            actual = np.stack([series[i][len(past):] for i, past in zip(picked, histories)])
            scaled = scaled_errors(histories, actual, predicted, self.freq_.season)
            if steps == h:
                self.validation_mase_ = float(np.nanmean(np.abs(scaled)))
            return scaled

        residuals = holdout_residuals(series, h, errors)  # None for constant series: nothing to calibrate
        self.residuals_ = residuals  # for a fit on all the data that inherits this one's calibration; not saved
        if residuals is None:
            return None
        return Calibration.from_residuals(residuals, "validation" if held_out else "in-sample")

    def inherit_calibration(self, scored) -> None:
        """In a fit on all of the data, the calibration of `scored` (fitted on it less its last points, and scored
        on them), where that was held out: recomputed from the residuals of both windows `scored` never trained
        on, its validation window's and those of its forecasts of the points it was scored on (each series' last h
        points, from the points before them: holdout_residuals). Two windows of errors where there was one (the
        choice measured on validation windows: README, Prediction intervals). With covariates `scored` reads the
        holdout's from this fit's data, encoded by its own encoder, as a backtest's fold reads its test rows."""
        taken = getattr(scored, "calibration_", None)
        if taken is None or taken.source == "in-sample":
            return
        self.calibration_, self.validation_mase_ = taken, scored.validation_mase_
        validation = getattr(scored, "residuals_", None)
        covariates = getattr(self, "encoder_", None) is not None
        if validation is None or covariates and getattr(self, "history_", None) is None:
            return
        seen = dict(zip(scored.ids_, scored.series_))
        pairs = [(uid, y) for uid, y in zip(self.ids_, self.series_)
                 if uid in seen and len(y) - len(seen[uid]) >= self.h_]
        if not pairs:  # fitted on the same data: no holdout
            return
        ids, series = [uid for uid, _ in pairs], [y for _, y in pairs]

        def errors(picked, histories, steps):
            predicted = scored._forecast([ids[i] for i in picked], histories, steps)  # (S, steps)
            actual = np.stack([series[i][len(past):len(past) + steps] for i, past in zip(picked, histories)])
            return scaled_errors(histories, actual, predicted, self.freq_.season)

        kept = getattr(scored, "covs_", None)
        if covariates:  # every series' covariates over its whole length, the holdout's included
            scored._set_covariates(self.ids_, self.history_)
        try:
            holdout = holdout_residuals(series, self.h_, errors)
        finally:
            scored.covs_ = kept
        self.holdout_residuals_ = holdout  # for inspection; not saved
        if holdout is not None and holdout.shape[1] == validation.shape[1]:
            self.calibration_ = Calibration.from_residuals(np.concatenate([validation, holdout]),
                                                           "validation+holdout")

    def can_bound(self) -> bool:
        """Not without a calibration: no series was long enough for one (forecast.intervals.calibration_plan)."""
        return super().can_bound() and getattr(self, "calibration_", None) is not None

    def _bands(self, ids, series, h, probs):
        """Conformal quantiles y_hat + q_j(p) s_i, floored at zero for a series that is never negative."""
        if getattr(self, "calibration_", None) is None:
            raise ModelError(f"model '{self.name}' has no calibration for prediction intervals: no series was long "
                             "enough to hold out a horizon (train with a shorter --horizon)")
        yhat = self._forecast(ids, series, h)  # (S, h)
        spread = self.calibration_.quantiles(probs, h)  # (h, P)
        bands = yhat[:, :, None] + self._scales(series)[:, None, None] * spread[None]  # (S, h, P)
        floor = np.array([0.0 if np.min(s) >= 0 else -np.inf for s in series])[:, None, None]  # (S, 1, 1)
        return yhat, np.maximum(bands, floor)
