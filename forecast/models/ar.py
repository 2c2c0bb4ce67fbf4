"""AR(τ) per series via statsmodels AutoReg, τ fixed or chosen by information criterion, explosive fits refused."""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from forecast.data import ID
from forecast.errors import DataError, ModelError
from forecast.models.base import Forecaster
from forecast.windows import left_pad

log = logging.getLogger(__name__)


@dataclass
class ARConfig:
    lags: int | None = None  # τ; None: chosen per series by `ic` up to max_lags
    max_lags: int | None = None  # None: min(max(2 * season, 8), n // 3)
    ic: str = "aic"

    def __post_init__(self):
        if self.lags is not None and self.lags < 0:
            raise ModelError(f"--lags {self.lags}: τ must be 0 or more")
        if self.ic not in ("aic", "bic", "hqic"):
            raise ModelError(f"ic '{self.ic}': choose aic, bic or hqic")


def _fit_autoreg(y: np.ndarray, lags: int):
    from statsmodels.tsa.ar_model import AutoReg

    return AutoReg(y, lags=lags, trend="c").fit()


def _stationary(result) -> bool:
    """No root of the lag polynomial inside the unit circle (no characteristic root outside it)."""
    roots = getattr(result, "roots", np.array([]))
    return bool(np.all(np.abs(roots) > 1.0)) if len(roots) else True


def fit_series(y: np.ndarray, lags: int | None, max_lags: int, ic: str) -> tuple[int, np.ndarray, int]:
    """(τ, [const, φ1..φτ], the τ first tried) for one series, stepping τ down while the fit is explosive."""
    from statsmodels.tsa.ar_model import ar_select_order

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if lags is None:
            max_lags = max(0, min(max_lags, len(y) // 3))
            if max_lags == 0:
                tau = 0
            else:
                selected = ar_select_order(y, maxlag=max_lags, ic=ic, trend="c").ar_lags
                tau = int(max(selected)) if selected is not None and len(selected) else 0
        else:
            tau = int(lags)
        first = tau
        while True:
            result = _fit_autoreg(y, tau)
            if tau == 0 or _stationary(result):
                return tau, np.asarray(result.params, dtype=float), first
            tau -= 1


def recurse(params: np.ndarray, history: np.ndarray, h: int) -> np.ndarray:
    """h-step forecast of y_t = c + Σ φ_i y_{t-i} from the end of `history`."""
    const, phi = params[0], params[1:]
    tau = len(phi)
    past = left_pad(np.asarray(history, float), tau)[-tau:] if tau else np.empty(0)
    buf = np.concatenate([past, np.empty(h)])
    for step in range(h):
        buf[tau + step] = const + phi @ buf[step:tau + step][::-1]
    return buf[tau:]


class AutoRegressive(Forecaster):
    """AR(τ) with a constant, one per series; unseen series are fitted when forecast."""

    name = "ar"
    Config = ARConfig

    def _max_lags(self) -> int:
        return self.config.max_lags or max(2 * self.freq_.season, 8)

    def _check_length(self, uid: str, y: np.ndarray) -> None:
        tau = self.config.lags
        if tau is not None and len(y) < 2 * tau + 2:
            raise DataError(f"series '{uid}' has {len(y)} training points, fewer than the {2 * tau + 2} that "
                            f"AR({tau}) needs (2τ + 2); use a smaller --lags")
        if len(y) < 3:
            raise DataError(f"series '{uid}' has {len(y)} training points; AR needs at least 3")

    def _fit_one(self, uid: str, y: np.ndarray):
        self._check_length(uid, y)
        return fit_series(y, self.config.lags, self._max_lags(), self.config.ic)

    def _fit(self, ids, series, h):
        self.params_, self.fallback_ = {}, {}
        for uid, y in zip(ids, series):
            tau, params, first = self._fit_one(uid, y)
            self.params_[uid] = params
            self.fallback_[uid] = first
        self.unseen_ = []

    def _forecast(self, ids, series, h):
        self.unseen_ = [uid for uid in ids if uid not in self.params_]
        if self.unseen_:
            log.warning("AR: fitting %d series the model has not seen (e.g. '%s')", len(self.unseen_), self.unseen_[0])
        rows = []
        for uid, y in zip(ids, series):
            params = self.params_[uid] if uid in self.params_ else self._fit_one(uid, y)[1]
            rows.append(recurse(params, y, h))
        return np.stack(rows)

    def fit_details(self):
        table = pd.DataFrame({ID: list(self.params_), "lags": [len(p) - 1 for p in self.params_.values()],
                              "lags_first_tried": list(self.fallback_.values())})
        params = {"lags_chosen": int(table["lags"].iloc[0]) if len(table) == 1 else "per series, see ar_lags.csv",
                  "lags_mean": round(float(table["lags"].mean()), 3),
                  "explosive_fallbacks": int((table["lags"] != table["lags_first_tried"]).sum())}
        return params, table

    def _state(self, path):
        return {"params": {uid: p.tolist() for uid, p in self.params_.items()}}

    def _restore(self, path, state):
        self.params_ = {str(uid): np.asarray(p, dtype=float) for uid, p in state["params"].items()}
        self.fallback_ = {uid: len(p) - 1 for uid, p in self.params_.items()}
        self.unseen_ = []
