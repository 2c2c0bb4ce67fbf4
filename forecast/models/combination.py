"""Combinations of different models, the lesson of the M3, M4 and M5 competitions: the members are fitted on the same
data and their forecasts (and each quantile of their intervals) combined by the median, the mean, or a mean weighted
by the inverse of each member's validation MASE (its errors forecasting each series' last horizon before the origin,
measured while fitting: forecast.models.conformal). Saved as one model holding its members' folders."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from forecast.covariates import refuse
from forecast.data import NO_COVARIATES
from forecast.errors import ModelError
from forecast.models.base import Forecaster

HOWS = ("median", "mean", "inverse-error")


def combine_values(values: np.ndarray, how: str, weights: np.ndarray | None = None) -> np.ndarray:
    """Members' values (M, ...) combined along the first axis."""
    if how == "median":
        return np.median(values, axis=0)
    if how == "mean" or weights is None:
        return values.mean(axis=0)
    return np.tensordot(np.asarray(weights, float), values, axes=1)


def inverse_error_weights(errors) -> np.ndarray:
    """Weights proportional to 1 / error, summing to 1; equal weights where no error is finite and positive."""
    errors = np.asarray(errors, float)
    ok = np.isfinite(errors) & (errors > 0)
    if not ok.any():
        return np.full(len(errors), 1.0 / len(errors))
    inverse = np.where(ok, 1.0 / np.where(ok, errors, 1.0), 0.0)
    return inverse / inverse.sum()


@dataclass
class CombinationConfig:
    members: str = "gru,transformer,ar"  # model names, comma-separated
    how: str = "median"
    # the members' settings: a mapping from member name to settings (each model then at most once), or a list of
    # one mapping per member, in order (a model may then be a member more than once: `forecast tune --top K`);
    # JSON text (--params) is read as either
    params: dict | list = field(default_factory=dict)

    def __post_init__(self):
        from forecast import registry

        names = self.names()
        if isinstance(self.params, str):
            try:
                self.params = json.loads(self.params)
            except ValueError:
                raise ModelError(f"--params {self.params}: not JSON; give a mapping from member name to settings, "
                                 'e.g. {"gru": {"epochs": 20}}, or a list of one mapping per member') from None
        if len(names) < 2:
            raise ModelError(f"--members {self.members}: a combination needs at least two models")
        by_position = isinstance(self.params, list)
        if by_position and (len(self.params) != len(names) or not all(isinstance(p, dict) for p in self.params)):
            raise ModelError(f"--params: a list of {len(names)} mappings, one per member of {self.members}")
        if len(set(names)) < len(names) and not by_position:
            raise ModelError(f"--members {self.members}: each model at most once, unless --params gives a list "
                             "of settings, one per member")
        for name in names:
            if name not in registry.MODELS or name == "combination":
                raise ModelError(f"--members: unknown model '{name}'; choose from "
                                 f"{', '.join(m for m in registry.MODELS if m != 'combination')}")
        if self.how not in HOWS:
            raise ModelError(f"--how {self.how}: choose one of {', '.join(HOWS)}")
        if not by_position and (not isinstance(self.params, dict) or set(self.params) - set(names)):
            raise ModelError(f"combination params {self.params!r}: a mapping from member names to their settings")
        for i, name in enumerate(names):
            registry.create(name, **self.member_params(i))  # bad settings refused now

    def names(self) -> list[str]:
        return [n.strip() for n in str(self.members).split(",") if n.strip()]

    def member_params(self, i: int) -> dict:
        """The settings of the i-th member."""
        if isinstance(self.params, list):
            return dict(self.params[i] or {})
        return dict(self.params.get(self.names()[i]) or {})

    def labels(self) -> list[str]:
        """The members' names, numbered where a model is a member more than once (gru-1, gru-2)."""
        names = self.names()
        return [f"{n}-{i + 1}" if names.count(n) > 1 else n for i, n in enumerate(names)]


class Combination(Forecaster):
    """The members' forecasts combined; every quantile combined alike (Vincentization)."""

    name = "combination"
    Config = CombinationConfig

    def refuse(self, covariates) -> None:
        """Refuse, naming the member, the covariate roles one of the members cannot use."""
        from forecast import registry

        for name in self.config.names():
            refuse(name, covariates, registry.model_class(name).covariate_roles, what="combination member")

    def fit(self, df, freq, h, on_epoch=None, covariates=NO_COVARIATES):
        """Fit every member on `df` with the same covariates (each member refuses the roles it cannot use)."""
        from forecast import fits, registry

        self.freq_, self.h_, self.on_epoch_ = freq, int(h), on_epoch
        self.covs_ = None  # the members read the covariates, each through its own encoder
        if covariates:
            self.refuse(covariates)
        kept, self.kept_ = getattr(self, "kept_", None), None  # a backtest without refit: the previous fold's fit
        self.members_ = []
        for i, (name, label) in enumerate(zip(self.config.names(), self.config.labels())):
            if kept is not None and name in registry.GLOBAL:  # trained once, before the first origin
                self.members_.append(kept.members_[i])
                continue
            member = registry.create(name, **self.config.member_params(i))
            member.resolve_config(h, freq.season)  # the default lookback resolved as a lone model's
            cached = fits.lookup(member, df, h, covariates)
            if cached is None:  # not fitted by this pipeline already (forecast.fits)
                member.checkpoints_ = getattr(self, "checkpoints_", None)
                member.checkpoint_key_ = f"{getattr(self, 'checkpoint_key_', 'fit')}-{label}"  # gru-1, gru-2
                cached = member.fit(df, freq, h, covariates=covariates)
                fits.store(cached, df, h, covariates)
            self.members_.append(cached)
        self.encoder_ = self.members_[0].encoder_  # the members' covariates (one spec), checked and saved
        self._set_weights()
        self.history_ = df
        return self

    def _set_covariates(self, ids, df, future=None, h: int = 0) -> None:
        """Each member reads the covariates of these series through its own encoder; the combination none."""
        for member in self.members_:
            member._set_covariates(ids, df, future, h)

    def future_steps(self, h: int) -> int:
        """The most steps of future covariates any member reads (each refuses a horizon it cannot forecast)."""
        return max(member.future_steps(h) for member in self.members_)

    def _set_weights(self) -> None:
        errors = [getattr(m, "validation_mase_", float("nan")) for m in self.members_]
        self.validation_errors_ = [float(e) for e in errors]
        self.weights_ = (inverse_error_weights(errors) if self.config.how == "inverse-error" else
                         np.full(len(errors), 1.0 / len(errors)))

    def _forecast(self, ids, series, h):
        values = np.stack([np.asarray(m._forecast(ids, series, h), float) for m in self.members_])
        return combine_values(values, self.config.how, self.weights_)

    def _bands(self, ids, series, h, probs):
        parts = [m._bands(ids, series, h, probs) for m in self.members_]
        yhat = combine_values(np.stack([np.asarray(p[0], float) for p in parts]), self.config.how, self.weights_)
        bands = combine_values(np.stack([np.sort(np.asarray(p[1], float), axis=-1) for p in parts]), self.config.how,
                               self.weights_)
        return yhat, bands

    def can_bound(self) -> bool:
        return all(member.can_bound() for member in self.members_)

    def inherit(self, scored: Combination) -> None:
        """Each member takes over from its scored twin, and the combination its weights: those logged, chosen on
        the validation of the fit that was scored."""
        for member, twin in zip(self.members_, scored.members_):
            member.inherit(twin)
        self.validation_errors_, self.weights_ = scored.validation_errors_, scored.weights_

    def final_settings(self) -> dict:
        """Each member's own final settings (the nets: the epochs early stopping chose)."""
        settings = [{**self.config.member_params(i), **m.final_settings()} for i, m in enumerate(self.members_)]
        if isinstance(self.config.params, list):
            return {"params": settings}
        return {"params": {n: s for n, s in zip(self.config.names(), settings) if s}}

    def fit_details(self):
        names = self.config.labels()
        return {"member_weights": ",".join(f"{n}:{w:.4f}" for n, w in zip(names, self.weights_)),
                "member_validation_mase": ",".join(f"{n}:{e:.10g}" for n, e in zip(names, self.validation_errors_))
                }, None

    def _state(self, path: Path):
        folders = []
        for i, member in enumerate(self.members_):
            folder = f"member-{i}-{member.name}"
            member.save(path / folder)
            folders.append(folder)
        return {"members": folders, "weights": [float(w) for w in self.weights_],
                "validation_errors": self.validation_errors_}

    def _restore(self, path: Path, state):
        from forecast import registry

        self.members_ = [registry.load(path / Path(folder).name) for folder in state["members"]]
        names = [m.name for m in self.members_]
        if names != self.config.names():
            raise ModelError(f"{path}: members {names} do not match the configured {self.config.names()}")
        self.weights_ = np.asarray(state["weights"], float)
        self.validation_errors_ = list(state.get("validation_errors", []))
