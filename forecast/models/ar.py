"""AR(τ) per series via statsmodels AutoReg, in the nets' transformed space (seasonally adjusted, logs where not
negative), differenced when a KPSS test finds a trend, τ fixed or chosen by information criterion; explosive fits
and series too short for τ step down to a lower order."""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from forecast.data import ID
from forecast.errors import ModelError
from forecast.intervals import Calibration, holdout_residuals, normal_quantiles
from forecast.models.base import Forecaster
from forecast.transforms import SeriesTransform
from forecast.windows import left_pad

log = logging.getLogger(__name__)

KPSS_LEVEL = 0.05  # difference a series when the KPSS test rejects level stationarity at this level
KPSS_MIN = 10  # points below which the test is not run: such short series are differenced when d is "auto"


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


def lag_matrix(y: np.ndarray, lags: int, hold_back: int) -> tuple[np.ndarray, np.ndarray]:
    """(target y_t, regressors [1, y_{t-1}, .., y_{t-lags}]) for t from `hold_back` on, as statsmodels' AutoReg."""
    n = len(y)
    x = np.ones((n - hold_back, lags + 1))
    for i in range(1, lags + 1):
        x[:, i] = y[hold_back - i:n - i]
    return y[hold_back:], x


def ols_ar(y: np.ndarray, lags: int) -> tuple[np.ndarray, float]:
    """([const, φ1..φτ], σ² = SSR / nobs) of AR(τ) with a constant by least squares: statsmodels'
    `AutoReg(y, lags, trend="c").fit()` without its ~4 ms of set-up per series."""
    target, x = lag_matrix(y, lags, lags)
    params, *_ = np.linalg.lstsq(x, target, rcond=None)
    resid = target - x @ params
    return params, float(resid @ resid / len(target))


def stationary(phi: np.ndarray) -> bool:
    """No root of 1 - φ1 z - .. - φτ z^τ on or inside the unit circle."""
    if not len(phi) or not np.any(phi):
        return True
    roots = np.roots(np.r_[-phi[::-1], 1.0])
    return bool(np.all(np.abs(roots) > 1.0))


def select_order(y: np.ndarray, top: int, ic: str) -> int | None:
    """τ in 0..top minimising the information criterion on the common sample y[top:], exactly as statsmodels'
    `ar_select_order(y, top, ic, trend="c")` ranks them, from one QR factorisation (the nested fits' residual sums
    of squares); None when the lag matrix is degenerate."""
    target, x = lag_matrix(y, top, top)
    nobs = len(target)
    if nobs <= top + 1:
        return None
    q, r = np.linalg.qr(x)
    if np.any(np.abs(np.diag(r)) < 1e-10 * max(1.0, np.abs(r).max())):
        return None
    b = q.T @ target
    ssr = target @ target - np.cumsum(b ** 2)  # SSR with the first k + 1 columns: const, lags 1..k
    if np.any(ssr <= 0) or not np.all(np.isfinite(ssr)):
        return None
    llf = -nobs * (np.log(2 * np.pi * ssr / nobs) + 1) / 2
    k = np.arange(top + 1) + 1.0  # parameters with the constant
    penalty = {"aic": 2 * k, "bic": np.log(nobs) * k, "hqic": 2 * np.log(np.log(nobs)) * k}[ic]
    return int(np.argmin(-2 * llf + penalty))


def max_order(n: int) -> int:
    """The largest τ a series of n points supports (n >= 2τ + 2)."""
    return max(0, (n - 2) // 2)


def fit_series(y: np.ndarray, lags: int | None, max_lags: int, ic: str) -> tuple[int, np.ndarray, int, float]:
    """(τ, [const, φ1..φτ], the τ first tried, the residual standard deviation σ) for one series, stepping τ down
    while the fit is explosive or the series is too short for it; fewer than 3 points give τ = 0, the mean."""
    from statsmodels.tsa.ar_model import ar_select_order

    y = np.asarray(y, float)
    if lags is None:
        top = max(0, min(max_lags, len(y) // 3))
        tau = select_order(y, top, ic) if top else 0
        if tau is None:  # a degenerate lag matrix: statsmodels' own search
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                selected = ar_select_order(y, maxlag=top, ic=ic, trend="c").ar_lags
            tau = int(max(selected)) if selected is not None and len(selected) else 0
    else:
        tau = int(lags)
    first = tau
    tau = min(tau, max_order(len(y)))
    while tau:
        params, sigma2 = ols_ar(y, tau)
        if stationary(params[1:]):
            return tau, params, first, float(np.sqrt(sigma2))
        tau -= 1
    if not len(y):
        return 0, np.array([0.0]), first, 0.0
    return 0, np.array([float(y.mean())]), first, float(y.std(ddof=1)) if len(y) > 1 else 0.0


def psi_weights(phi: np.ndarray, d: int, h: int) -> np.ndarray:
    """The weights ψ_0..ψ_{h-1} of the forecast errors' MA(∞) form (of the integrated series when d = 1): the
    j-step error variance is σ² Σ_{k<j} ψ_k²."""
    psi = np.zeros(h)
    psi[0] = 1.0
    for k in range(1, h):
        psi[k] = sum(phi[i - 1] * psi[k - i] for i in range(1, min(k, len(phi)) + 1))
    return np.cumsum(psi) if d else psi


def recurse(params: np.ndarray, history: np.ndarray, h: int) -> np.ndarray:
    """h-step forecast of y_t = c + Σ φ_i y_{t-i} from the end of `history`."""
    const, phi = params[0], params[1:]
    tau = len(phi)
    past = left_pad(np.asarray(history, float), tau)[-tau:] if tau else np.empty(0)
    buf = np.concatenate([past, np.empty(h)])
    for step in range(h):
        buf[tau + step] = const + phi @ buf[step:tau + step][::-1]
    return buf[tau:]


def choose_diff(z: np.ndarray) -> int:
    """1 when the KPSS test rejects level stationarity (a trend or a random walk), else 0; short series: 1."""
    from statsmodels.tsa.stattools import kpss

    if len(z) < 3:
        return 0
    if len(z) < KPSS_MIN:
        return 1
    if np.ptp(z) == 0:
        return 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # p-values outside the table's range come with a warning
        p_value = kpss(z, regression="c", nlags="auto")[1]
    return int(p_value < KPSS_LEVEL)


class AutoRegressive(Forecaster):
    """AR(τ) with a constant, one per series, on the transformed series or its first differences (then the
    constant is a drift); unseen series are fitted when forecast."""

    name = "ar"
    Config = ARConfig

    def _max_lags(self) -> int:
        return self.config.max_lags or max(2 * self.freq_.season, 8)

    def _transform(self, y: np.ndarray) -> SeriesTransform | None:
        """The series' transform; None for models saved before AR learned in the transformed space."""
        if getattr(self, "raw_", False):
            return None
        return SeriesTransform.fit(y, self.freq_.season, log=self.config.log)

    def _fit_one(self, y: np.ndarray, transform=...) -> tuple[int, int, np.ndarray, int, float]:
        """(d, τ, params, τ first tried, σ) of one series (`transform`: its transform, when already fitted)."""
        transform = self._transform(y) if transform is ... else transform
        z = transform.transform(y) if transform else np.asarray(y, float)
        d = choose_diff(z) if self.config.diff is None else min(self.config.diff, max(len(z) - 1, 0))
        tau, params, first, sigma = fit_series(np.diff(z, n=d), self.config.lags, self._max_lags(), self.config.ic)
        return d, tau, params, first, sigma

    def _fit(self, ids, series, h):
        self.params_, self.diffs_, self.first_, self.sigmas_ = {}, {}, {}, {}
        for uid, y in zip(ids, series):
            d, _, params, first, sigma = self._fit_one(y)
            self.params_[uid], self.diffs_[uid], self.first_[uid], self.sigmas_[uid] = params, d, first, sigma
        self.unseen_ = []
        self.calibration_ = self._calibrate(ids, series, h) if getattr(self, "intervals", True) else None

    def _path(self, y: np.ndarray, d: int, params: np.ndarray, sigma: float, h: int, transform=...):
        """(the transform, the forecast path (h,) and its standard deviations (h,), σ² Σ ψ², in the transformed
        space) of one series (`transform`: its transform, when already fitted)."""
        transform = self._transform(y) if transform is ... else transform
        z = transform.transform(y) if transform else np.asarray(y, float)
        path = recurse(params, np.diff(z, n=d), h)
        if d:
            path = z[-1] + np.cumsum(path)
        sd = sigma * np.sqrt(np.cumsum(psi_weights(params[1:], d, h) ** 2))
        return transform, path, sd

    def _calibrate(self, ids, series, h) -> Calibration | None:
        """Calibrate the model's intervals as the nets' are (forecast.models.neural): each series long enough for
        a validation window is fitted again on all but its last h points (its order and differencing kept) and
        forecasts them (forecast.intervals.holdout_residuals); the errors in the
        transformed space divided by the AR's own standard deviation per step. The intervals are then
        z_hat + q_j(p) sd_j: the AR's shape, widened to the coverage those residuals show (the analytic variance
        ignores the uncertainty of the estimated seasonal indices, order and coefficients)."""
        def errors(picked, histories, steps):
            rows = []
            for i, past in zip(picked, histories):
                uid, s = ids[i], series[i]
                transform = self._transform(past)
                z = transform.transform(past) if transform else np.asarray(past, float)
                lags = len(self.params_[uid]) - 1
                _, params, _, sigma = fit_series(np.diff(z, n=self.diffs_[uid]), lags, lags, self.config.ic)
                transform, path, sd = self._path(past, self.diffs_[uid], params, sigma, steps)
                actual = transform.transform(s[len(past):], start=len(past)) if transform else s[len(past):]
                rows.append((actual - path) / np.where(sd > 0, sd, np.nan))
            return np.stack(rows)

        residuals = holdout_residuals(series, h, errors)  # None for constant series: nothing to calibrate
        return None if residuals is None else Calibration.from_residuals(residuals, "validation", growth=False)

    def _paths(self, ids, series, h, probs=None):
        """Per series the forecast (h,) and, with `probs`, its quantiles (h, P): in the transformed space the
        forecast plus the calibrated quantiles times the AR's standard deviations, transformed back (the transform
        is increasing)."""
        self.unseen_ = [uid for uid in ids if uid not in self.params_]
        if self.unseen_:
            log.warning("AR: fitting %d series the model has not seen (e.g. '%s')", len(self.unseen_), self.unseen_[0])
        spread = self._spread(probs, h) if probs is not None else None  # (h, P)
        points, bands = [], []
        for uid, y in zip(ids, series):
            transform = self._transform(y)  # fitted once for the fit of an unseen series and its forecast
            if uid in self.params_:
                d, params, sigma = self.diffs_[uid], self.params_[uid], self.sigmas_.get(uid, 0.0)
            else:
                d, _, params, _, sigma = self._fit_one(y, transform)
            transform, path, sd = self._path(y, d, params, sigma, h, transform)
            back = transform.inverse if transform else np.asarray
            points.append(back(path))
            if spread is not None:
                bands.append(back(path[:, None] + sd[:, None] * spread))
        return np.stack(points), (np.stack(bands) if spread is not None else None)

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
                "sigmas": self.sigmas_, "calibration": calibration.to_dict() if calibration is not None else None}

    def _restore(self, path, state):
        self.params_ = {str(uid): np.asarray(p, dtype=float) for uid, p in state["params"].items()}
        self.raw_ = "diffs" not in state  # saved before AR learned in the transformed space: raw values
        self.diffs_ = {uid: int(state.get("diffs", {}).get(uid, 0)) for uid in self.params_}
        self.sigmas_ = {str(uid): float(v) for uid, v in state.get("sigmas", {}).items()}
        self.calibration_ = Calibration.from_dict(state["calibration"]) if state.get("calibration") else None
        self.first_ = {uid: len(p) - 1 for uid, p in self.params_.items()}
        self.unseen_ = []
