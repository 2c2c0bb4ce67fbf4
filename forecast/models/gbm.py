"""A global gradient-boosted tree model (scikit-learn's HistGradientBoostingRegressor), the M5 winners' kind of
model: trained on every series' windows in the nets' transformed space (seasonally adjusted, logs where positive),
each window described by its lags relative to its last value, rolling statistics and, with covariates, their last
and future values and the statics. Direct multi-horizon: by default one model with the step ahead as a feature
(`strategy: step`), or one model per step (`per-step`). The series' last horizon is held out for early stopping and
the split-conformal intervals (forecast.models.conformal), as the nets' is. Saved in skops' format (no pickles),
loaded trusting scikit-learn's tree predictor and nothing else."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from forecast.errors import ModelError
from forecast.intervals import Calibration
from forecast.models.base import Forecaster, GlobalWindows
from forecast.models.conformal import ScaledConformal
from forecast.transforms import Stacked, fit_transforms, transform_all
from forecast.windows import default_lookback, last_windows, make_windows, split_windows, validation_length

STRATEGIES = ("step", "per-step")
LOSSES = {"mae": "absolute_error", "mse": "squared_error"}  # ours: scikit-learn's
TRUSTED = ("sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",)  # besides skops' defaults
PREDICT_CHUNK = 65536  # rows per call to the trees when forecasting


@dataclass
class GBMConfig:
    lookback: int | None = None  # None: as the nets' (twice the horizon, at least one season plus the horizon)
    strategy: str = "step"  # "step": one model, the step ahead a feature; "per-step": one model per step
    max_iter: int = 300  # boosting rounds; early stopping on the validation windows may end sooner
    learning_rate: float = 0.1
    max_leaf_nodes: int = 31
    min_samples_leaf: int = 50
    l2_regularization: float = 0.0
    loss: str = "mae"  # in the transformed space (logs: relative errors, as sMAPE's)
    max_rows: int = 400_000  # training rows (window x step) at most: a random sample of them beyond
    validate: bool = True  # hold out each series' last horizon for early stopping (False: train on every window)
    patience: int = 20  # rounds without improvement on the validation windows before stopping
    deseasonalize: bool = True
    log: bool = True
    seed: int = 1

    def __post_init__(self):
        if self.strategy not in STRATEGIES:
            raise ModelError(f"--strategy {self.strategy}: choose one of {', '.join(STRATEGIES)}")
        if self.loss not in LOSSES:
            raise ModelError(f"--loss {self.loss}: choose one of {', '.join(LOSSES)}")
        for name in ("max_iter", "max_leaf_nodes", "min_samples_leaf", "max_rows", "patience") + (
                ("lookback",) if self.lookback is not None else ()):
            if int(getattr(self, name)) < 1:
                raise ModelError(f"--{name.replace('_', '-')} {getattr(self, name)}: must be at least 1")
        if self.max_leaf_nodes < 2:
            raise ModelError(f"--max-leaf-nodes {self.max_leaf_nodes}: must be at least 2")
        if self.learning_rate <= 0:
            raise ModelError(f"--learning-rate {self.learning_rate}: must be positive")
        if self.l2_regularization < 0:
            raise ModelError(f"--l2-regularization {self.l2_regularization}: must be 0 or more")


def window_features(x: np.ndarray, lookback: int, season: int, past_dim: int = 0, future_dim: int = 0,
                    h: int = 0) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """(the features of each window (N, K), their future covariates (N, h, F) or None, the last values (N,)) of
    windows packed as forecast.windows packs them ([y (L) | past covariates (L x P) | future (h x F) | statics]):
    the lags relative to the last value, the last value, the means of the last season and of the window, the
    spread of the window and of its steps, the window's range, and, with covariates, the past ones' last values
    and the statics."""
    y = np.asarray(x[:, :lookback], np.float64)
    last = y[:, -1]
    rel = y - last[:, None]
    m = min(max(season, 1), lookback)
    parts = [rel[:, :-1], last[:, None], rel[:, -m:].mean(axis=1, keepdims=True), rel.mean(axis=1, keepdims=True),
             y.std(axis=1, keepdims=True), rel.min(axis=1, keepdims=True), rel.max(axis=1, keepdims=True)]
    if lookback > 1:
        parts.append(np.diff(y, axis=1).std(axis=1, keepdims=True))
    future = None
    if x.shape[1] > lookback:
        cut = lookback + lookback * past_dim
        past = np.asarray(x[:, lookback:cut], np.float64).reshape(len(x), lookback, past_dim)
        future = np.asarray(x[:, cut:cut + h * future_dim], np.float64).reshape(len(x), h, future_dim)
        parts += [past[:, -1, :], np.asarray(x[:, cut + h * future_dim:], np.float64)]
    return np.concatenate(parts, axis=1), future, last


def step_rows(features: np.ndarray, future: np.ndarray | None, steps, strategy: str) -> np.ndarray:
    """The rows the trees read for step(s) `steps` (0-based) of each window: the features, with the step ahead
    (strategy "step") and that step's future covariates."""
    steps = np.asarray(steps)
    parts = [features]
    if strategy == "step":
        parts.append(steps[:, None].astype(float) + 1 if steps.ndim else np.full((len(features), 1), steps + 1.0))
    if future is not None and future.shape[2]:
        parts.append(future[np.arange(len(features)), steps] if steps.ndim else future[:, int(steps)])
    return np.concatenate(parts, axis=1)


class GradientBoosting(GlobalWindows, ScaledConformal, Forecaster):
    """Global HistGradientBoostingRegressor(s) over window features, forecasting h steps at once; recursive past
    the horizon it was trained for (not with covariates)."""

    name = "gbm"
    Config = GBMConfig
    covariate_roles = ("futr", "hist", "static", "calendar")

    def _dims(self) -> tuple[int, int]:
        encoder = getattr(self, "encoder_", None)
        return (encoder.past_dim, encoder.future_dim) if encoder is not None else (0, 0)

    def _transformed(self, series):
        transforms = fit_transforms(series, self.freq_.season, self.config.deseasonalize, self.config.log)
        return transforms, transform_all(transforms, series)

    def _rows(self, x: np.ndarray, y: np.ndarray | None, h: int, pick=None):
        """(rows, targets relative to the last value) of windows `x` for every step, or for the (window, step)
        pairs `pick` (flat indices window * h + step)."""
        features, future, last = window_features(x, self.lookback_, self.freq_.season, *self._dims(), h)
        pick = np.arange(len(x) * h) if pick is None else pick
        window, step = pick // h, pick % h
        rows = step_rows(features[window], None if future is None else future[window], step, self.config.strategy)
        target = None if y is None else y[window, step] - last[window]
        return rows, target, step

    def _estimator(self, validating: bool):
        from sklearn.ensemble import HistGradientBoostingRegressor

        c = self.config
        return HistGradientBoostingRegressor(
            loss=LOSSES[c.loss], learning_rate=c.learning_rate, max_iter=c.max_iter, max_leaf_nodes=c.max_leaf_nodes,
            min_samples_leaf=c.min_samples_leaf, l2_regularization=c.l2_regularization,
            early_stopping=validating, n_iter_no_change=c.patience, validation_fraction=None, random_state=c.seed)

    def _fit(self, ids, series, h):
        c = self.config
        self.lookback_ = c.lookback or default_lookback(h, self.freq_.season)
        self.ids_, self.series_ = ids, series  # for inherit_calibration
        transforms, scaled = self._transformed(series)
        covs = self._covs(ids)
        if c.validate:
            (x, y), val = split_windows(scaled, self.lookback_, h, covs=covs)
        else:
            (x, y), val = make_windows(scaled, self.lookback_, h, covs=covs), None
        self.validated_series_ = 0 if val is None else len(val[0])
        rng = np.random.default_rng(c.seed)
        total = len(x) * h
        pick = np.sort(rng.choice(total, c.max_rows, replace=False)) if total > c.max_rows else None
        rows, target, step = self._rows(x, y, h, pick)
        val_rows = self._rows(val[0], val[1], h) if val is not None else None
        self.n_rows_ = len(rows)
        if c.strategy == "step":
            self.models_ = [self._fit_one(rows, target, val_rows)]
        else:
            self.models_ = []
            for k in range(h):
                at = val_rows and tuple(part[val_rows[2] == k] for part in val_rows)
                self.models_.append(self._fit_one(rows[step == k], target[step == k], at))
        self.calibration_ = self._conformal(ids, series, h, self._forecast, c.validate and self.validated_series_ > 0)

    def _fit_one(self, rows, target, val):
        validating = val is not None and len(val[0]) > 0
        model = self._estimator(validating)
        if validating:
            model.fit(rows, target, X_val=val[0], y_val=val[1])
        else:
            model.fit(rows, target)
        return model

    def _predict_z(self, x: np.ndarray, h: int) -> np.ndarray:
        """(S, h) forecasts in the transformed space of the windows `x`."""
        features, future, last = window_features(x, self.lookback_, self.freq_.season, *self._dims(), self.h_)
        out = np.empty((len(x), h))
        for k in range(h):
            rows = step_rows(features, future, k, self.config.strategy)
            model = self.models_[0 if self.config.strategy == "step" else k]
            out[:, k] = np.concatenate([model.predict(rows[i:i + PREDICT_CHUNK])
                                        for i in range(0, len(rows), PREDICT_CHUNK)]) if len(rows) else []
        return out + last[:, None]

    def _forecast(self, ids, series, h):
        transforms, scaled = self._transformed(series)
        covs = self._covs(ids)
        history, steps = scaled, []
        while sum(s.shape[1] for s in steps) < h:
            out = self._predict_z(last_windows(history, self.lookback_, covs, self.h_), self.h_)
            steps.append(out)
            history = [np.concatenate([s, o]) for s, o in zip(history, out)]
        z = np.concatenate(steps, axis=1)[:, :h] if steps else np.zeros((len(series), h))
        return Stacked(transforms).inverse(z)

    def inherit(self, scored: GradientBoosting) -> None:
        self.inherit_calibration(scored)

    def final_settings(self) -> dict:
        """Without validation windows, the rounds early stopping chose (the most of the models')."""
        if not self.validated_series_:
            return {}
        return {"validate": False, "max_iter": max(int(m.n_iter_) for m in self.models_)}

    def fit_details(self):
        details = {"lookback_used": self.lookback_, "train_rows": self.n_rows_,
                   "boosting_rounds": ",".join(str(int(m.n_iter_)) for m in self.models_[:24]),
                   "validated_series": self.validated_series_, "validation_mase": round(self.validation_mase_, 6)}
        if self.config.validate and not self.validated_series_:
            details["note"] = (f"no series has the {validation_length(self.h_)} points a validation window needs: "
                               f"no early stopping")
        return details, None

    # -- persistence: skops' format, loaded trusting only scikit-learn's tree predictor beyond skops' defaults

    def _state(self, path: Path):
        import skops.io as sio

        files = []
        for k, model in enumerate(self.models_):
            name = f"gbm-{k}.skops"
            sio.dump(model, path / name)
            files.append(name)
        calibration = getattr(self, "calibration_", None)
        return {"lookback": self.lookback_, "files": files,
                "calibration": calibration.to_dict() if calibration is not None else None}

    def _restore(self, path: Path, state):
        import skops.io as sio

        self.lookback_ = int(state["lookback"])
        self.calibration_ = Calibration.from_dict(state["calibration"]) if state.get("calibration") else None
        self.models_ = []
        for name in state["files"]:
            file = path / Path(name).name
            if not file.is_file():
                raise ModelError(f"{path}: {file.name} is missing; the model folder is incomplete")
            try:
                untrusted = [t for t in sio.get_untrusted_types(file=file) if t not in TRUSTED]
            except Exception as exc:  # skops raises many kinds for a damaged archive
                raise ModelError(f"{file}: not a readable skops file ({str(exc).splitlines()[0]})") from None
            if untrusted:
                raise ModelError(f"{file}: refused to load: it holds types this model never saves "
                                 f"({', '.join(untrusted)})")
            try:
                model = sio.load(file, trusted=list(TRUSTED))
            except Exception as exc:
                raise ModelError(f"{file}: refused to load ({str(exc).splitlines()[0]})") from None
            if type(model).__name__ != "HistGradientBoostingRegressor":
                raise ModelError(f"{file}: holds a {type(model).__name__}, not the trees this model saves")
            self.models_.append(model)
