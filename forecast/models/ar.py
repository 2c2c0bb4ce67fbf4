"""AR(τ) per series, in the nets' transformed space (seasonally adjusted, logs where not negative), differenced
when a KPSS test finds a trend, τ fixed or chosen by information criterion; explosive fits and series too short for
τ step down to a lower order. The arithmetic, for many series at once, is in `forecast.models.ar_fit`."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from forecast.data import ID
from forecast.errors import ModelError
from forecast.intervals import Calibration, holdout_residuals, normal_quantiles
from forecast.models.ar_fit import (  # noqa: F401  (fit_series and recurse: the one-series API)
    choose_diffs,
    fit_rows,
    fit_series,
    psi_rows,
    recurse,
    recurse_rows,
)
from forecast.models.base import Forecaster
from forecast.models.conformal import scaled_errors
from forecast.models.per_series import PerSeries
from forecast.transforms import Stacked, by_length, fit_transforms

log = logging.getLogger(__name__)


@dataclass
class ARConfig:
    lags: int | None = None  # τ; None: chosen per series by `ic` up to max_lags
    max_lags: int | None = None  # None: min(max(2 * season, 8), n // 3)
    ic: str = "aic"
    diff: int | None = None  # d, differences before the AR; None: per series by a KPSS test (as auto.arima does)
    log: bool = False  # logs where the series is not negative: growth then compounds, so off (chosen on validation)

    def __post_init__(self):
        if self.lags is not None and self.lags < 0:
            raise ModelError(f"--lags {self.lags}: τ must be 0 or more")
        if self.ic not in ("aic", "bic", "hqic"):
            raise ModelError(f"ic '{self.ic}': choose aic, bic or hqic")
        if self.diff not in (None, 0, 1):
            raise ModelError(f"--diff {self.diff}: choose 0 or 1 (or leave it out: chosen per series)")


class AutoRegressive(PerSeries, Forecaster):
    """AR(τ) with a constant, one per series, on the transformed series or its first differences (then the
    constant is a drift); unseen series are fitted when forecast. Series of one length are fitted and forecast
    together, as matrices."""

    name = "ar"
    Config = ARConfig
    covariate_roles = ("futr", "calendar")  # regressors at each step: known in advance
    series_state = ("params", "diffs", "sigmas", "betas", "first")
    processes_from = 1000  # 2 processes fit 1,428 series 1.40x as fast as one, 14,280 1.51x (forecast.parallel)

    def _max_lags(self) -> int:
        return self.config.max_lags or max(2 * self.freq_.season, 8)

    def _transforms(self, series) -> list | None:
        """The series' transforms; None for models saved before AR learned in the transformed space."""
        if getattr(self, "raw_", False):
            return None
        return fit_transforms(series, self.freq_.season, log=self.config.log)

    @staticmethod
    def _matrix(series, picked, n) -> np.ndarray:
        return np.array([series[i] for i in picked], float).reshape(len(picked), n)

    def _z(self, transforms, series, picked, n) -> tuple[Stacked | None, np.ndarray]:
        """(the transforms of the series `picked`, all of length n, stacked; their transformed values (k, n))."""
        y = self._matrix(series, picked, n)
        if transforms is None:
            return None, y
        stacked = Stacked([transforms[i] for i in picked])
        return stacked, stacked.transform(y, 0)

    def _exog(self, ids, start: int, stop: int) -> np.ndarray | None:
        """(k, stop - start, E) the future-known covariates (forecast.models.base: `covs_`) of the series `ids` at
        the positions start..stop - 1; None without covariates."""
        if not self._exogenous():
            return None
        covs, index = self.covs_, self.encoder_.future_index
        return np.stack([covs[uid][0][start:stop, index] for uid in ids]).reshape(len(ids), stop - start, len(index))

    def _exogenous(self) -> bool:
        encoder = getattr(self, "encoder_", None)
        return encoder is not None and encoder.future_dim > 0 and getattr(self, "covs_", None) is not None

    def _fit_all(self, ids, series, transforms):
        """(d, params [const, φ1..φτ], τ first tried, σ, the covariates' coefficients) of every series."""
        count = len(series)
        diffs, firsts, sigmas, params = np.zeros(count, int), np.zeros(count, int), np.zeros(count), [None] * count
        betas = [None] * count
        for n, picked in by_length(series).items():
            _, z = self._z(transforms, series, picked, n)
            exog = self._exog([ids[i] for i in picked], 0, n)
            d = choose_diffs(z) if self.config.diff is None else np.full(len(picked), min(self.config.diff,
                                                                                          max(n - 1, 0)))
            for value in np.unique(d):
                rows = picked[d == value]
                regressors = None if exog is None else np.diff(exog[d == value], n=value, axis=1)
                tau, fitted, first, sigma, beta = fit_rows(np.diff(z[d == value], n=value, axis=1), self.config.lags,
                                                           self._max_lags(), self.config.ic, regressors)
                diffs[rows], firsts[rows], sigmas[rows] = value, first, sigma
                for i, t, p, b in zip(rows, tau, fitted, beta):
                    params[i], betas[i] = p[:t + 1], b
        return diffs, params, firsts, sigmas, betas

    def _fit(self, ids, series, h):
        diffs, params, firsts, sigmas, betas = self._fit_all(ids, series, self._transforms(series))
        self.params_ = dict(zip(ids, params))
        self.diffs_ = dict(zip(ids, diffs.tolist()))
        self.first_ = dict(zip(ids, firsts.tolist()))
        self.sigmas_ = dict(zip(ids, sigmas.tolist()))
        self.betas_ = dict(zip(ids, betas)) if self._exogenous() else {}
        self.unseen_ = []
        self.calibration_ = self._calibrate(ids, series, h) if getattr(self, "intervals", True) else None

    @staticmethod
    def _padded(params: list[np.ndarray]) -> np.ndarray:
        """(S, T + 1) parameter vectors padded with zero coefficients to the longest."""
        out = np.zeros((len(params), max(len(p) for p in params)))
        for row, p in zip(out, params):
            row[:len(p)] = p
        return out

    def _path_rows(self, ids, z: np.ndarray, d: int, params: np.ndarray, sigma: np.ndarray, h: int, betas=None):
        """(forecast paths (S, h), their standard deviations (S, h): σ² Σ ψ²) in the transformed space of the
        series `ids`, `z` (S, n), differenced d times, AR `params` (S, T + 1) and the covariates' coefficients
        `betas` (S, E) (their values at the h steps after the history from `covs_`)."""
        effect = None
        if betas is not None:
            n = z.shape[1]
            ahead = self._exog(ids, max(n - d, 0), n + h)  # (S, d + h, E): the last d known for the differences
            effect = np.einsum("she,se->sh", np.diff(ahead, n=d, axis=1), betas)
        path = recurse_rows(params, np.diff(z, n=d, axis=1), h, effect)
        if d:
            path = z[:, -1:] + np.cumsum(path, axis=1)
        psi = psi_rows(params[:, 1:], np.full(len(z), d), h)
        return path, sigma[:, None] * np.sqrt(np.cumsum(psi ** 2, axis=1))

    def _calibrate(self, ids, series, h) -> Calibration | None:
        """Calibrate the model's intervals as the nets' are (forecast.models.neural): each series long enough for
        a validation window is fitted again on all but its last h points (its order and differencing kept) and
        forecasts them (forecast.intervals.holdout_residuals); the errors in the
        transformed space divided by the AR's own standard deviation per step. The intervals are then
        z_hat + q_j(p) sd_j: the AR's shape, widened to the coverage those residuals show (the analytic variance
        ignores the uncertainty of the estimated seasonal indices, order and coefficients)."""
        self.validation_mase_ = float("nan")

        def errors(picked, histories, steps):
            out, scaled = np.empty((len(picked), steps)), np.full((len(picked), steps), np.nan)
            transforms = self._transforms(histories)
            keys = np.array([(self.diffs_[ids[i]], len(self.params_[ids[i]]) - 1) for i in picked]).reshape(-1, 2)
            for n, group in by_length(histories).items():
                stacked, z = self._z(transforms, histories, group, n)
                exog = self._exog([ids[picked[r]] for r in group], 0, n)
                for d, lags in np.unique(keys[group], axis=0):
                    sel = np.all(keys[group] == (d, lags), axis=1)
                    rows = group[sel]
                    regressors = None if exog is None else np.diff(exog[sel], n=d, axis=1)
                    _, params, _, sigma, beta = fit_rows(np.diff(z[sel], n=d, axis=1), int(lags), int(lags),
                                                         self.config.ic, regressors)
                    path, sd = self._path_rows([ids[picked[r]] for r in rows], z[sel], int(d), params, sigma, steps,
                                               None if exog is None else beta)
                    actual = np.array([series[picked[r]][n:] for r in rows], float).reshape(len(rows), steps)
                    if steps == h:  # the scaled errors on the original scale, for validation_mase_
                        original = path if stacked is None else Stacked([transforms[r] for r in rows]).inverse(path)
                        scaled[rows] = scaled_errors([histories[r] for r in rows], actual, original,
                                                     self.freq_.season)
                    if stacked is not None:
                        actual = Stacked([transforms[r] for r in rows]).transform(actual)
                    out[rows] = (actual - path) / np.where(sd > 0, sd, np.nan)
            if steps == h:
                self._keep_validation(scaled)
            return out

        residuals = holdout_residuals(series, h, errors, getattr(self, "calibration_plan_", None))
        self.residuals_ = residuals  # None for constant series: nothing to calibrate
        return None if residuals is None else Calibration.from_residuals(residuals, "validation", growth=False)

    def _paths(self, ids, series, h, probs=None):
        """The forecasts (S, h) and, with `probs`, their quantiles (S, h, P): in the transformed space the
        forecast plus the calibrated quantiles times the AR's standard deviations, transformed back (the transform
        is increasing)."""
        unseen = [i for i, uid in enumerate(ids) if uid not in self.params_]
        self.unseen_ = [ids[i] for i in unseen]
        if unseen and not getattr(self, "warned_unseen_", False):  # once per loaded model, not per chunk
            log.warning("AR: fitting %d series the model has not seen (e.g. '%s')", len(unseen), ids[unseen[0]])
            self.warned_unseen_ = True
        spread = self._spread(probs, h) if probs is not None else None  # (h, P)
        transforms = self._transforms(series)  # fitted once for the fit of an unseen series and its forecast
        diffs = np.array([self.diffs_.get(uid, 0) for uid in ids], int)
        params = [self.params_.get(uid) for uid in ids]
        sigmas = np.array([self.sigmas_.get(uid, 0.0) for uid in ids], float)
        exogenous = self._exogenous()
        betas = [getattr(self, "betas_", {}).get(uid) for uid in ids]
        if unseen:
            fitted = self._fit_all([ids[i] for i in unseen], [series[i] for i in unseen],
                                   [transforms[i] for i in unseen] if transforms is not None else None)
            diffs[unseen], sigmas[unseen] = fitted[0], fitted[3]
            for i, p, b in zip(unseen, fitted[1], fitted[4]):
                params[i], betas[i] = p, b
        points = np.empty((len(series), h))
        bands = np.empty((len(series), h, spread.shape[1])) if spread is not None else None
        for n, picked in by_length(series).items():
            _, z = self._z(transforms, series, picked, n)
            for d in np.unique(diffs[picked]):
                sel = diffs[picked] == d
                rows = picked[sel]
                path, sd = self._path_rows([ids[i] for i in rows], z[sel], int(d),
                                           self._padded([params[i] for i in rows]), sigmas[rows], h,
                                           np.stack([betas[i] for i in rows]) if exogenous else None)
                back = Stacked([transforms[i] for i in rows]).inverse if transforms is not None else np.asarray
                points[rows] = back(path)
                if spread is not None:
                    bands[rows] = back(path[:, :, None] + sd[:, :, None] * spread[None])
        return points, bands

    def _spread(self, probs, h) -> np.ndarray:
        """(h, P) quantiles of the standardised forecast errors: calibrated, or normal where nothing was long
        enough to calibrate on."""
        calibration = getattr(self, "calibration_", None)
        if calibration is None:
            return np.tile(normal_quantiles(probs), (h, 1))
        return calibration.quantiles(probs, h)

    def _forecast(self, ids, series, h):
        return self._paths(ids, series, h)[0]

    def _bands(self, ids, series, h, probs):
        return self._paths(ids, series, h, probs)

    def fit_details(self):
        table = pd.DataFrame({ID: list(self.params_), "lags": [len(p) - 1 for p in self.params_.values()],
                              "lags_first_tried": list(self.first_.values()), "diff": list(self.diffs_.values())})
        params = {"lags_chosen": int(table["lags"].iloc[0]) if len(table) == 1 else "per series, see ar_lags.csv",
                  "lags_mean": round(float(table["lags"].mean()), 3),
                  "differenced_series": int(table["diff"].sum()),
                  "lower_order_fallbacks": int((table["lags"] < table["lags_first_tried"]).sum())}
        return params, table

    def _state(self, path):
        calibration = getattr(self, "calibration_", None)
        return {"params": {uid: p.tolist() for uid, p in self.params_.items()}, "diffs": self.diffs_,
                "sigmas": self.sigmas_, "first": self.first_,
                "calibration": calibration.to_dict() if calibration is not None else None,
                "betas": {uid: np.asarray(b).tolist() for uid, b in getattr(self, "betas_", {}).items()}}

    def _restore(self, path, state):
        self.params_ = {str(uid): np.asarray(p, dtype=float) for uid, p in state["params"].items()}
        self.raw_ = "diffs" not in state  # saved before AR learned in the transformed space: raw values
        self.diffs_ = {uid: int(state.get("diffs", {}).get(uid, 0)) for uid in self.params_}
        self.sigmas_ = {str(uid): float(v) for uid, v in state.get("sigmas", {}).items()}
        self.calibration_ = Calibration.from_dict(state["calibration"]) if state.get("calibration") else None
        first = state.get("first") or {}  # the order first tried; saved since models can be fitted in parts
        self.first_ = {uid: int(first.get(uid, len(p) - 1)) for uid, p in self.params_.items()}
        self.betas_ = {str(uid): np.asarray(b, dtype=float) for uid, b in state.get("betas", {}).items()}
        self.unseen_ = []
