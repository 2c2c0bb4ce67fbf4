"""Latent-autoregressive forecasters in PyTorch: RNN, LSTM and GRU over a hidden state H_t, and a Transformer.

Each net reads a transformed lookback window (B, L) (seasonally adjusted, in logs where the series is positive:
`forecast.transforms`) and maps it to all h future values at once (B, h), relative to the window's last value;
one global model (`forecast.models.nets`) is trained over every series with `forecast.training.fit_network`. With
`ensemble` N > 1, N nets of different seeds and lookbacks are trained and the forecast is their median; with
`combine` it is averaged with a statistical forecast (AR's, a Theta line's, a damped trend's, the seasonal
naive's, or a mean of two: `forecast.models.partner`), and conformal residuals calibrate its intervals.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from forecast.diagnostics import GradientProbe
from forecast.errors import ModelError, TrainingDiverged, TrainingInterrupted
from forecast.intervals import Calibration
from forecast.metrics import seasonal_scale
from forecast.models.base import Forecaster, GlobalWindows
from forecast.models.conformal import ScaledConformal
from forecast.models.nets import HEADS, Layout, RecurrentNet, TransformerNet
from forecast.models.partner import PARTNERS, Partnered
from forecast.training import LOSSES, SCHEDULES, TrainConfig, fit_network, resolve_device
from forecast.transforms import Stacked, fit_transforms, transform_all
from forecast.windows import default_lookback, last_windows, make_windows, split_windows, validation_length

WEIGHTS_FILE = "weights.pt"
# saved in a model's state, the version of forecast.transforms' space the nets learn in: 1 standardised only,
# 2 seasonally adjusted and in logs where positive, 3 also in logs where non-negative with zeros
PREDICT_CHUNK = 1024  # series per forward pass when forecasting: memory stays flat, the cache warm
TRANSFORMS = 3
LOOKBACK_FACTORS = (1.0, 1.5, 0.75, 2.0, 1.25)  # ensemble member i's lookback: the base times factor i (cycled)


@dataclass
class NeuralConfig:
    lookback: int | None = None  # None: twice the horizon, at least one season plus the horizon
    hidden_size: int = 64
    layers: int = 2
    dropout: float = 0.0
    heads: int = 4  # attention heads (transformer only)
    epochs: int = 20  # the length of the cosine learning-rate schedule; early stopping may end sooner
    batch_size: int = 128
    steps_per_epoch: int | None = 50
    lr: float = 1e-3
    clip: float | None = 1.0
    tbptt: int | None = None
    patience: int = 10
    seed: int = 1
    device: str = "auto"
    diagnostics: bool = True  # measure the gradient flow by lag (one extra backward pass per measured epoch)
    loss: str = "mae"
    schedule: str = "cosine"
    deseasonalize: bool = True  # divide seasonal series by classical multiplicative indices first
    log: bool = True  # learn positive series in logs (errors become relative, as sMAPE's are)
    ensemble: int = 1  # members of different seeds and lookbacks; the forecast is their median
    validate: bool = True  # hold out each series' last horizon for early stopping (False: train on every window)
    recent: float | None = None  # train on the windows ending in each series' last `recent` x horizon points only
    head: str = "local"  # how future covariates reach the forecasts (forecast.models.nets.FutureHead)
    combine: str = "auto"  # the statistical partner (one of partner.KINDS; auto: chosen) and its weight are chosen
    # on the validation windows (forecast.models.partner)

    def __post_init__(self):
        positive = ("hidden_size", "layers", "heads", "epochs", "batch_size", "patience", "ensemble")
        for name in positive + (("lookback",) if self.lookback is not None else ()):
            if int(getattr(self, name)) < 1:
                raise ModelError(f"--{name.replace('_', '-')} {getattr(self, name)}: must be at least 1")
        if self.tbptt is not None and self.tbptt < 1:
            raise ModelError(f"--tbptt {self.tbptt}: must be at least 1 step")
        if not 0 <= self.dropout < 1:
            raise ModelError(f"--dropout {self.dropout}: must be in [0, 1)")
        if self.lr <= 0:
            raise ModelError(f"--lr {self.lr}: must be positive")
        if self.recent is not None and self.recent <= 0:
            raise ModelError(f"--recent {self.recent}: must be positive (horizons of history to train on)")
        if self.loss not in LOSSES:
            raise ModelError(f"--loss {self.loss}: unknown; choose one of {', '.join(LOSSES)}")
        if self.combine not in PARTNERS:
            raise ModelError(f"--combine {self.combine}: unknown; choose one of {', '.join(PARTNERS)}")
        if self.head not in HEADS:
            raise ModelError(f"--head {self.head}: unknown; choose one of {', '.join(HEADS)}")
        if self.schedule not in SCHEDULES:
            raise ModelError(f"--schedule {self.schedule}: unknown; choose one of {', '.join(SCHEDULES)}")

    def train_config(self) -> TrainConfig:
        names = {f.name for f in fields(TrainConfig)}
        return TrainConfig(**{k: v for k, v in asdict(self).items() if k in names})


MASE_WEIGHT_CAP = 10.0  # no series weighs more than this many times the median series under --loss mase


def mase_weights(series: list[np.ndarray], transforms, season: int) -> np.ndarray:
    """Per series, the factor that turns an error in its transformed space into MASE's scaled error: its unit (the
    recent level for a series in logs, where errors are relative; the standard deviation otherwise) over its
    in-sample seasonal-naive MAE. Capped at MASE_WEIGHT_CAP times the median, normalised to mean 1."""
    weights = []
    for y, t in zip(series, transforms):
        unit = float(np.mean(np.abs(y[-max(season, 1):])) + t.shift) if t.log else t.scale
        scale = seasonal_scale(y, season)
        weights.append(unit / scale if np.isfinite(scale) and scale > 0 else np.nan)
    weights = np.asarray(weights, float)
    median = np.nanmedian(weights) if np.isfinite(weights).any() else 1.0
    weights = np.clip(np.nan_to_num(weights, nan=median), 0.0, MASE_WEIGHT_CAP * median)
    return weights / weights.mean()


def member_lookbacks(base: int, members: int) -> list[int]:
    """The lookback of each ensemble member: the base, then the base scaled by LOOKBACK_FACTORS in turn."""
    return [max(1, round(base * LOOKBACK_FACTORS[i % len(LOOKBACK_FACTORS)])) for i in range(members)]


class NeuralForecaster(GlobalWindows, ScaledConformal, Partnered, Forecaster):
    """A global net (or a median ensemble of nets) over all series: per-series transforms, windows, the shared
    training loop, recursive forecasts past the nets' horizon."""

    Config = NeuralConfig
    cell: str
    covariate_roles = ("futr", "hist", "static", "calendar")

    def _build(self, lookback: int, h: int, seed: int) -> nn.Module:
        c = self.config
        torch.manual_seed(seed)
        encoder = getattr(self, "encoder_", None)
        layout = (Layout(lookback, h, encoder.past_dim, encoder.future_dim, encoder.static_dim)
                  if encoder is not None else None)
        if self.cell == "transformer":
            return TransformerNet(lookback, h, c.hidden_size, c.layers, c.dropout, c.heads, layout, c.head)
        return RecurrentNet(self.cell, lookback, h, c.hidden_size, c.layers, c.dropout, layout, c.head)

    def __init__(self, config=None, **params):
        super().__init__(config, **params)
        if self.config.tbptt and self.cell == "transformer":
            raise ModelError("--tbptt applies to the recurrent models (rnn, lstm, gru), not the transformer")

    def _transformed(self, series):
        transforms = fit_transforms(series, self.freq_.season, self.config.deseasonalize, self.config.log,
                                    getattr(self, "transforms_", TRANSFORMS) >= 3)
        return transforms, transform_all(transforms, series)

    def _fit(self, ids, series, h):
        c = self.config
        self.lookback_ = c.lookback or default_lookback(h, self.freq_.season)
        self.ids_, self.series_ = ids, series  # for calibrating the intervals, also after a stop mid-training
        transforms, scaled = self._transformed(series)
        weights = mase_weights(series, transforms, self.freq_.season) if c.loss == "mase" else None
        self.lookbacks_ = member_lookbacks(self.lookback_, c.ensemble)
        self.nets_, self.histories_, self.n_windows_, self.probe_ = [], [], 0, None
        self.validated_series_ = sum(len(s) >= validation_length(h) for s in series) if c.validate else 0
        recent = max(1, round(c.recent * h)) if c.recent else None
        offset = 0  # member i's epochs are reported after those of the members before it
        covs = self._covs(ids)
        for member, lookback in enumerate(self.lookbacks_):
            if c.validate:
                train, val = split_windows(scaled, lookback, h, recent, weights, covs)
            else:
                train, val = make_windows(scaled, lookback, h, recent, weights, covs), None
            self.n_windows_ += len(train[0])
            net = self._build(lookback, h, c.seed + member)
            self.nets_.append(net)
            if member == 0 and c.diagnostics:
                self.probe_ = self._probe(net, train)

            def on_epoch(epoch, metrics, member=member, offset=offset):
                if member == 0 and self.probe_ is not None and self.probe_.due(epoch):
                    self.probe_.measure(f"epoch {epoch}")
                if self.on_epoch_ is not None:
                    self.on_epoch_(offset + epoch, {**metrics, "member": member} if c.ensemble > 1 else metrics)

            cfg = c.train_config()
            cfg.seed = c.seed + member
            try:
                history = fit_network(net, train, val, cfg, on_epoch, getattr(self, "checkpoints_", None),
                                      f"{getattr(self, 'checkpoint_key_', 'fit')}-member{member}")
            except (TrainingDiverged, TrainingInterrupted) as exc:
                self._keep_finished_members(exc)
                raise
            self.histories_.append(history)
            offset += len(history.train_loss)
            if member == 0 and self.probe_ is not None:
                self.probe_.measure(f"end (best epoch {history.best_epoch})")
        self.partner_, self.partner_kind_, self.combine_weight_, self.combine_scores_ = None, None, 1.0, {}
        held_out, started = None, time.perf_counter()
        if c.combine != "none":
            held_out = self._fit_partner(ids, series, h)
        calibrating = time.perf_counter()
        self.calibration_ = self._calibrate(ids, series, h, held_out)
        self.seconds_ = {"train_nets": sum(run.seconds for run in self.histories_),
                         "fit_ar": calibrating - started, "calibrate": time.perf_counter() - calibrating}

    def _calibrate(self, ids, series, h, partner=None) -> Calibration | None:
        """Split-conformal calibration of the intervals (forecast.models.conformal) from the (combined) forecasts
        of each series' last h points, on the original scale. Held out when the fit validated on those points
        (they chose the best epoch, nothing more), in-sample otherwise; `inherit` replaces an in-sample
        calibration. Combined forecasts take AR's part from `partner`, fitted without those points."""
        if not self.nets_:
            return None
        return self._conformal(ids, series, h, lambda i, hist, steps: self._forecast(i, hist, steps, partner),
                               self.config.validate and self.validated_series_ > 0)

    def inherit(self, scored: NeuralForecaster) -> None:
        """A fit on all the data has no held-out windows left: take the combination weight of the fit that had
        them, and calibrate on the errors of that fit on its validation window and its holdout
        (inherit_calibration)."""
        self.inherit_calibration(scored)
        if getattr(self, "partner_kind_", None) is not None and scored.combine_scores_:
            self.combine_weight_, self.combine_scores_ = scored.combine_weight_, scored.combine_scores_
            self.partner_kind_ = scored.partner_kind_

    def _keep_finished_members(self, exc) -> None:
        """After a stop in the middle of member k: keep k if it finished an epoch (its best weights are loaded),
        else drop it; the ensemble is then the members kept, and `exc.best_epoch` says whether there are any."""
        if not exc.best_epoch:
            self.nets_.pop()
            if self.histories_:
                exc.best_epoch = self.histories_[-1].best_epoch
        self.lookbacks_ = self.lookbacks_[:len(self.nets_)]
        self.partner_, self.partner_kind_, self.combine_weight_, self.combine_scores_ = None, None, 1.0, {}  # no time
        # for the partner after a stop
        self.calibration_ = self._calibrate(self.ids_, self.series_, self.h_) if self.nets_ else None

    def _probe(self, net, train) -> GradientProbe:
        """A gradient-flow probe on a fixed batch of training windows."""
        device = resolve_device(self.config.device)
        pick = torch.randperm(len(train[0]), generator=torch.Generator().manual_seed(self.config.seed))[:256]
        x = torch.as_tensor(train[0][pick.numpy()], device=device)  # (P, L)
        y = torch.as_tensor(train[1][pick.numpy()], device=device)  # (P, h)
        net.to(device)
        return GradientProbe(net, x, y, self.config.tbptt)

    @torch.no_grad()
    def _net_z(self, ids, scaled, h) -> np.ndarray:
        """The median of the members' forecasts (S, h) in the transformed space, recursive past their horizon
        (not with covariates: `future_steps`)."""
        covs = self._covs(ids)
        members = []
        for net, lookback in zip(self.nets_, self.lookbacks_):
            device = next(net.parameters()).device
            net.eval()
            history, steps = scaled, []
            while sum(s.shape[1] for s in steps) < h:
                x = torch.as_tensor(last_windows(history, lookback, covs, self.h_), device=device)  # (S, width)
                out = np.concatenate([net(x[i:i + PREDICT_CHUNK]).cpu().numpy().astype(float)  # (S, h_model)
                                      for i in range(0, len(x), PREDICT_CHUNK)]) if len(x) else np.zeros((0, h))
                steps.append(out)
                history = [np.concatenate([s, o]) for s, o in zip(history, out)]
            members.append(np.concatenate(steps, axis=1)[:, :h])  # (S, h)
        return np.median(np.stack(members), axis=0)  # the inverse transforms are increasing

    def _forecast_z(self, ids, series, h, partner=None):
        """(transforms, transformed series, the forecasts (S, h) in the transformed space): the nets', combined
        with the statistical partner's (AR's part from `partner`, by default the model's own AR) where the model
        combines."""
        transforms, scaled = self._transformed(series)
        z = self._net_z(ids, scaled, h)
        combined = self._partnered(ids, series, transforms, scaled, z, h, partner)
        return transforms, scaled, z if combined is None else Stacked(transforms).forecast_space(combined)

    def _forecast(self, ids, series, h, partner=None):
        transforms, _, z = self._forecast_z(ids, series, h, partner)
        return Stacked(transforms).inverse(z)

    def final_settings(self) -> dict:
        """Without a validation window, the epochs that early stopping chose (the latest best epoch of the
        members); nothing to change when this fit had no validation window either."""
        if not self.validated_series_:
            return {}
        return {"validate": False, "epochs": max(h.best_epoch for h in self.histories_)}

    def fit_details(self):
        hists = self.histories_
        details = {"lookback_used": self.lookback_, "best_epoch": hists[0].best_epoch,
                   "epochs_run": sum(len(h.train_loss) for h in hists), "train_windows": self.n_windows_,
                   "validated_series": self.validated_series_, "combine_weight": self.combine_weight_,
                   "combine_partner": getattr(self, "partner_kind_", None) or "none",
                   **{f"seconds_{k}": round(v, 3) for k, v in getattr(self, "seconds_", {}).items()}}
        if self.combine_scores_:
            details["combine_validation_mase"] = ",".join(f"{k}={v:.4f}" for k, v in self.combine_scores_.items())
        if self.config.validate and not self.validated_series_:
            details["note"] = (f"no series has the {validation_length(self.h_)} points a validation window needs: "
                               f"trained the full {self.config.epochs} epochs")
        if len(hists) > 1:
            details["member_lookbacks"] = ",".join(map(str, self.lookbacks_))
            details["member_best_epochs"] = ",".join(str(h.best_epoch) for h in hists)
        return details, None

    def gradient_flow(self) -> tuple[dict, pd.DataFrame] | None:
        """(grad_ratio_last_first and grad_half_life, the gradient norm by lag per measured epoch), if measured."""
        probe = getattr(self, "probe_", None)
        if probe is None or not probe.rows:
            return None
        return probe.summary(), probe.frame()

    @staticmethod
    def _weights_file(member: int) -> str:
        return WEIGHTS_FILE if member == 0 else f"weights-{member}.pt"

    def _state(self, path: Path):
        for member, net in enumerate(self.nets_):
            torch.save({k: v.cpu() for k, v in net.state_dict().items()}, path / self._weights_file(member))
        calibration = getattr(self, "calibration_", None)
        partner = getattr(self, "partner_", None)
        return {"lookback": self.lookback_, "lookbacks": self.lookbacks_, "transforms": TRANSFORMS,
                "calibration": calibration.to_dict() if calibration is not None else None,
                "combine_weight": self.combine_weight_, "partner": partner._state(path) if partner else None,
                "partner_kind": getattr(self, "partner_kind_", None)}

    @classmethod
    def restore(cls, path: Path, doc: dict) -> NeuralForecaster:
        config = doc.get("config", {})
        if "head" not in config:  # saved before the local head: the future covariates' linear map
            doc = {**doc, "config": {**config, "head": "linear"}}
        return super().restore(path, doc)

    def _restore(self, path: Path, state):
        self.lookback_ = int(state["lookback"])
        self.lookbacks_ = [int(v) for v in state.get("lookbacks", [self.lookback_])]
        self.transforms_ = int(state.get("transforms", 1))
        self.calibration_ = Calibration.from_dict(state["calibration"]) if state.get("calibration") else None
        self.combine_weight_ = float(state.get("combine_weight", 1.0))
        self.partner_ = None
        self.partner_kind_ = state.get("partner_kind", "ar" if state.get("partner") else None)  # saved before Theta
        if state.get("partner"):
            from forecast.models.ar import AutoRegressive

            self.partner_ = AutoRegressive()
            self.partner_.freq_, self.partner_.h_ = self.freq_, self.h_
            self.partner_.encoder_ = getattr(self, "encoder_", None)
            self.partner_._restore(path, state["partner"])
        if self.transforms_ < 2:  # saved before seasonal adjustment and logs: standardising
            self.config.deseasonalize = self.config.log = False
        device = resolve_device("auto")
        self.nets_ = []
        for member, lookback in enumerate(self.lookbacks_):
            weights = path / self._weights_file(member)
            if not weights.is_file():
                raise ModelError(f"{path}: {weights.name} is missing; the model folder is incomplete")
            try:
                tensors = torch.load(weights, map_location="cpu", weights_only=True)
                if "head.weight" in tensors:  # saved before FutureHead: the head was the linear map itself
                    tensors = {("head.linear." + k[5:] if k.startswith("head.") else k): v for k, v in tensors.items()}
            except Exception as exc:  # torch raises UnpicklingError and others for files it will not trust
                raise ModelError(f"{weights}: refused to load ({str(exc).splitlines()[0]}); "
                                 "only plain tensors are accepted") from None
            net = self._build(lookback, self.h_, self.config.seed + member)
            try:
                net.load_state_dict(tensors)
            except (RuntimeError, TypeError, AttributeError) as exc:
                raise ModelError(f"{weights}: does not fit the {self.name} network "
                                 f"({str(exc).splitlines()[0]})") from None
            self.nets_.append(net.to(device).eval())


class RNNForecaster(NeuralForecaster):
    name, cell = "rnn", "rnn"


class LSTMForecaster(NeuralForecaster):
    name, cell = "lstm", "lstm"


class GRUForecaster(NeuralForecaster):
    name, cell = "gru", "gru"


class TransformerForecaster(NeuralForecaster):
    name, cell = "transformer", "transformer"
