"""What every forecaster shares: fit(df) -> self, predict(h, df) -> frame, and a pickle-free save/load."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, fields
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd

from forecast.covariates import CovariateEncoder, check_future, refuse
from forecast.data import NO_COVARIATES, Covariates, Frequency, future_frame, series_arrays
from forecast.errors import DataError, ModelError
from forecast.intervals import check_levels, check_quantiles, probabilities, to_columns
from forecast.windows import WindowCovariates, default_lookback

FORMAT = 3  # 2: prediction intervals (models saved as format 1 give point forecasts only); 3: covariates
CONFIG_FILE = "forecaster.json"


def manifest(path: Path) -> dict:
    """{file: {"bytes", "sha256"}} of every file under the model folder `path` but its own forecaster.json."""
    files = sorted(f for f in path.rglob("*") if f.is_file() and f != path / CONFIG_FILE)
    return {f.relative_to(path).as_posix(): {"bytes": f.stat().st_size,
                                             "sha256": hashlib.sha256(f.read_bytes()).hexdigest()} for f in files}


def build_config(config_cls, values: dict, model: str):
    """The model's config dataclass from a dict, refusing unknown keys by name."""
    known = {f.name for f in fields(config_cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        def option(name):
            return "--" + name.replace("_", "-")

        valid = ", ".join(option(n) for n in sorted(known)) or "none"
        raise ModelError(f"model '{model}' has no setting {', '.join(map(option, unknown))}; its settings: {valid}")
    return config_cls(**values)


class Forecaster:
    """Base of all models. Subclasses set `name` and `Config` and implement `_fit` and `_forecast`.

    `_fit(ids, series, h)` learns from a list of 1-D arrays; `_forecast(ids, series, h)` returns an (S, h)
    matrix of forecasts following each given history; `_bands(ids, series, h, probs)` returns those forecasts and
    their quantiles (S, h, P) at the probabilities `probs`. Fitted state ends in `_`.

    A model fitted with covariates (`covariate_roles`: the roles it can use) finds them, during `_fit` and each
    `predict`, in `covs_`: per series id its covariates (n + f, P) over its history and the f future steps given
    (forecast.covariates.CovariateEncoder.past; the future rows hold the future-known columns `future_index`) and
    its statics (C,).
    """

    name: ClassVar[str]
    Config: ClassVar[type]
    covariate_roles: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config=None, **params):
        self.config = config if config is not None else build_config(self.Config, params, self.name)

    def fit(self, df: pd.DataFrame, freq: Frequency, h: int, on_epoch=None,
            covariates: Covariates = NO_COVARIATES) -> Forecaster:
        """Fit on the long frame `df` to forecast `h` steps, reading the `covariates` columns of `df`;
        `on_epoch(epoch, metrics)` for the nets."""
        self.freq_ = freq
        self.on_epoch_ = on_epoch
        self.h_ = int(h)
        self.encoder_ = None
        if covariates:
            self.refuse(covariates)
            self.encoder_ = CovariateEncoder.fit(df, covariates, freq)
        ids, series = series_arrays(df)
        self._set_covariates(ids, df)
        self._fit(ids, series, self.h_)
        self.history_ = df
        return self

    def refuse(self, covariates: Covariates) -> None:
        """Refuse, in one line, the covariate roles this model cannot use."""
        refuse(self.name, covariates, self.covariate_roles)

    @property
    def covariates(self) -> Covariates:
        encoder = getattr(self, "encoder_", None)
        return encoder.spec if encoder is not None else NO_COVARIATES

    def _set_covariates(self, ids, df: pd.DataFrame, future: pd.DataFrame | None = None, h: int = 0) -> None:
        """`covs_` for the series of `df` and, with `future` (their next h rows), their future covariates."""
        encoder = getattr(self, "encoder_", None)
        if encoder is None:
            self.covs_ = None
            return
        past, static = encoder.past(df), encoder.static(df)
        if future is not None:
            ahead = encoder.future(future, h)  # (h, F) per series
            index = encoder.future_index
            for i, rows in enumerate(ahead):
                extended = np.zeros((h, encoder.past_dim))
                extended[:, index] = rows
                past[i] = np.concatenate([past[i], extended])
        self.covs_ = {uid: (p, s) for uid, p, s in zip(ids, past, static)}

    def predict(self, h: int | None = None, df: pd.DataFrame | None = None, levels=(), quantiles=(),
                future: pd.DataFrame | None = None, source="--future") -> pd.DataFrame:
        """Forecast `h` steps (default: the horizon fitted for) past the end of every series in `df`; with `levels`
        (percent) the columns yhat_lo_L and yhat_hi_L, with `quantiles` (probabilities) yhat_qN. A model fitted with
        future covariates reads their values over the h steps from `future` (unique_id, ds and those columns;
        `source` names it in errors)."""
        if not hasattr(self, "freq_"):
            raise ModelError(f"model '{self.name}' is not fitted; call fit() first")
        if df is None:
            df = getattr(self, "history_", None)
            if df is None:
                raise ModelError(f"model '{self.name}' was loaded from disk; give the history to forecast from")
        h = self.h_ if h is None else int(h)
        if h < 1:
            raise ModelError(f"horizon {h}: must be at least 1")
        levels, quantiles = check_levels(levels), check_quantiles(quantiles)
        ids, series = series_arrays(df)
        if getattr(self, "encoder_", None) is not None:
            steps = self.future_steps(h)
            self._set_covariates(ids, df, check_future(future, df, self.encoder_.spec, self.freq_, steps, source),
                                 steps)
        elif future is not None:
            raise DataError(f"{source}: model '{self.name}' was trained without covariates; leave out the future "
                            "covariates")
        if not (levels or quantiles):
            yhat = np.asarray(self._forecast(ids, series, h), dtype=float)  # (S, h)
            return future_frame(df, self.freq_, h, ids, yhat)
        if not getattr(self, "intervals_", True):
            raise ModelError(f"model '{self.name}' was saved before prediction intervals existed; train it again to "
                             "get --level or --quantiles")
        probs = probabilities(levels, quantiles)
        yhat, bands = self._bands(ids, series, h, probs)  # (S, h), (S, h, P)
        frame = future_frame(df, self.freq_, h, ids, np.asarray(yhat, dtype=float))
        for name, values in to_columns(np.asarray(yhat, float), bands, probs, levels, quantiles).items():
            frame[name] = values.reshape(-1)
        return frame

    def resolve_config(self, h: int, season: int) -> dict:
        """The settings as the model will use them, the default lookback (of the models with one) resolved for
        horizon h and the season; the config is updated to match."""
        if getattr(self.config, "lookback", 0) is None:
            self.config.lookback = default_lookback(h, season)
        return asdict(self.config)

    def future_steps(self, h: int) -> int:
        """The steps ahead whose future covariates forecasting h steps reads."""
        return h

    def _bands(self, ids, series, h, probs) -> tuple[np.ndarray, np.ndarray]:
        raise ModelError(f"model '{self.name}' gives no prediction intervals")

    def can_bound(self) -> bool:
        """Whether `predict` gives prediction intervals: not from a model saved before them."""
        return getattr(self, "intervals_", True)

    def inherit(self, scored: Forecaster) -> None:
        """Take over from `scored`, the same model fitted on less of the data, what this fit on all of it could not
        learn (the nets: the calibration of their intervals on held-out windows); nothing by default."""

    def final_settings(self) -> dict:
        """Settings for fitting this model's kind again on all of the data, learned from this fit (the nets: the
        epoch count early stopping chose); {} for models that have none."""
        return {}

    def fit_details(self) -> tuple[dict, pd.DataFrame | None]:
        """Facts learned in fitting worth logging: params, and an optional per-series table."""
        return {}, None

    # -- persistence: configuration and state as JSON, tensors through torch's weights-only loader

    def save(self, path: str | Path, extra: dict | None = None) -> Path:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        covariates = getattr(self, "encoder_", None) is not None
        doc = {"format": FORMAT if covariates else 2, "model": self.name, "config": asdict(self.config), "h": self.h_,
               "freq": self.freq_.to_dict(), "state": self._state(path), "extra": extra or {}}
        if covariates:  # readers before format 3 refuse the model rather than ignore its covariates
            doc["covariates"] = self.encoder_.to_dict()
        doc["files"] = manifest(path)  # the state files' digests: a half-written or damaged copy is refused
        (path / CONFIG_FILE).write_text(json.dumps(doc, indent=2, default=str))  # last: the folder is complete
        return path

    @classmethod
    def restore(cls, path: Path, doc: dict) -> Forecaster:
        model = cls(build_config(cls.Config, doc.get("config", {}), cls.name))
        model.freq_ = Frequency(**doc["freq"])
        model.h_ = int(doc["h"])
        model.meta_ = dict(doc.get("extra") or {})
        model.intervals_ = int(doc.get("format", 1)) >= 2
        model.encoder_ = CovariateEncoder.from_dict(doc["covariates"], model.freq_) if doc.get("covariates") else None
        model._restore(path, doc.get("state", {}))
        return model

    def _state(self, path: Path) -> dict:
        return {}

    def _restore(self, path: Path, state: dict) -> None:
        pass


class GlobalWindows:
    """Mixin of the global models that read windows (the nets, gbm): the covariates of their series as windows
    take them, and forecasts of their whole horizon at once."""

    def _covs(self, ids) -> WindowCovariates | None:
        """The covariates of the series `ids` for their windows (`covs_`); None without."""
        if getattr(self, "encoder_", None) is None or getattr(self, "covs_", None) is None:
            return None
        rows = [self.covs_[uid] for uid in ids]
        static = np.stack([r[1] for r in rows]) if rows else np.zeros((0, self.encoder_.static_dim))
        return WindowCovariates([r[0] for r in rows], self.encoder_.future_index, static)

    def future_steps(self, h: int) -> int:
        """The model forecasts its horizon at once, reading the future covariates of all of it, and past it one
        horizon at a time. Calendar features follow from the dates, so a model with no other covariates forecasts
        any horizon; longer horizons than its own would need values of the --futr columns past the future file and
        of the --hist ones past the origin."""
        spec = self.covariates
        if getattr(self, "encoder_", None) is None:
            return h
        if spec.futr or spec.hist:
            if h > self.h_:
                raise ModelError(f"model '{self.name}' was trained with covariates to forecast {self.h_} steps; it "
                                 f"cannot forecast {h}: train it with --horizon {h}")
            return max(h, self.h_) if spec.futr or spec.calendar else h
        return -(-h // self.h_) * self.h_ if spec.calendar else h  # every step the windows of each horizon read
