"""Latent-autoregressive forecasters in PyTorch: RNN, LSTM and GRU over a hidden state H_t, and a Transformer.

Each net reads a scaled lookback window (B, L) and maps it to all h future values at once (B, h); one global
model is trained over every series with `forecast.training.fit_network`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from forecast.diagnostics import GradientProbe
from forecast.errors import ModelError
from forecast.models.base import Forecaster
from forecast.training import History, TrainConfig, fit_network, resolve_device
from forecast.windows import Scaler, last_windows, split_windows

WEIGHTS_FILE = "weights.pt"


@dataclass
class NeuralConfig:
    lookback: int | None = None  # None: twice the horizon, at least one season plus the horizon
    hidden_size: int = 64
    layers: int = 2
    dropout: float = 0.0
    heads: int = 4  # attention heads (transformer only)
    epochs: int = 100
    batch_size: int = 128
    steps_per_epoch: int | None = 50
    lr: float = 1e-3
    clip: float | None = 1.0
    tbptt: int | None = None
    patience: int = 10
    seed: int = 1
    device: str = "auto"
    diagnostics: bool = True  # measure the gradient flow by lag (one extra backward pass per measured epoch)

    def __post_init__(self):
        positive = ("hidden_size", "layers", "heads", "epochs", "batch_size", "patience")
        for name in positive + (("lookback",) if self.lookback is not None else ()):
            if int(getattr(self, name)) < 1:
                raise ModelError(f"--{name.replace('_', '-')} {getattr(self, name)}: must be at least 1")
        if self.tbptt is not None and self.tbptt < 1:
            raise ModelError(f"--tbptt {self.tbptt}: must be at least 1 step")
        if not 0 <= self.dropout < 1:
            raise ModelError(f"--dropout {self.dropout}: must be in [0, 1)")
        if self.lr <= 0:
            raise ModelError(f"--lr {self.lr}: must be positive")

    def train_config(self) -> TrainConfig:
        names = {f.name for f in fields(TrainConfig)}
        return TrainConfig(**{k: v for k, v in asdict(self).items() if k in names})


def default_lookback(h: int, season: int) -> int:
    return max(2 * h, season + h if season > 1 else 0)


def _detach(state):
    return tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()


class RecurrentNet(nn.Module):
    """A stacked RNN, LSTM or GRU whose last hidden state H_T is mapped to the h forecasts."""

    def __init__(self, cell: str, lookback: int, h: int, hidden_size: int, layers: int, dropout: float):
        super().__init__()
        self.rnn = getattr(nn, cell.upper())(input_size=1, hidden_size=hidden_size, num_layers=layers,
                                             dropout=dropout if layers > 1 else 0.0, batch_first=True)
        self.head = nn.Linear(hidden_size, h)

    def forward(self, x: torch.Tensor, tbptt: int | None = None) -> torch.Tensor:
        level = x[:, -1:]  # (B, 1): forecasts are learned relative to the window's last value
        x = (x - level).unsqueeze(-1)  # (B, L, 1)
        steps = x.shape[1]
        if tbptt and tbptt < steps:
            # chunks aligned to the end of the window: gradients reach back only through the last chunk
            sizes = [steps % tbptt] * bool(steps % tbptt) + [tbptt] * (steps // tbptt)
            chunks = torch.split(x, sizes, dim=1)
            state = None
            for chunk in chunks[:-1]:
                _, state = self.rnn(chunk, state)
                state = _detach(state)
            out, _ = self.rnn(chunks[-1], state)  # (B, K, H)
        else:
            out, _ = self.rnn(x)  # (B, L, H)
        return self.head(out[:, -1]) + level  # (B, h)

    def unrolled(self, x: torch.Tensor, tbptt: int | None = None) -> tuple[torch.Tensor, list]:
        """The same forecast as `forward`, one time step at a time, with every hidden state H_t (layers, B, H)
        that the next step reads, so that ∂L/∂H_t can be asked for; truncated where `forward` truncates."""
        level = x[:, -1:]  # (B, 1)
        z = (x - level).unsqueeze(-1)  # (B, L, 1)
        steps = z.shape[1]
        cut = steps - tbptt if tbptt and tbptt < steps else 0
        state, states = None, []
        for t in range(steps):
            if t == cut and state is not None:
                state = _detach(state)
            _, state = self.rnn(z[:, t:t + 1], state)
            states.append(state[0] if isinstance(state, tuple) else state)  # (layers, B, H)
        return self.head(states[-1][-1]) + level, states  # the top layer's H_T, as out[:, -1] in forward


class TransformerNet(nn.Module):
    """A Transformer encoder over the window with sinusoidal positional encoding, flattened to the h forecasts."""

    def __init__(self, lookback: int, h: int, hidden_size: int, layers: int, dropout: float, heads: int):
        super().__init__()
        if hidden_size % heads:
            raise ModelError(f"--hidden-size {hidden_size} must be divisible by the {heads} attention heads")
        self.embed = nn.Linear(1, hidden_size)
        position = torch.arange(lookback).unsqueeze(1)  # (L, 1)
        rate = torch.exp(torch.arange(0, hidden_size, 2) * (-math.log(10000.0) / hidden_size))
        pe = torch.zeros(lookback, hidden_size)
        pe[:, 0::2] = torch.sin(position * rate)
        pe[:, 1::2] = torch.cos(position * rate[: hidden_size // 2])
        self.register_buffer("pe", pe)  # (L, H)
        layer = nn.TransformerEncoderLayer(hidden_size, heads, 2 * hidden_size, dropout, batch_first=True,
                                           norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Linear(lookback * hidden_size, h)

    def forward(self, x: torch.Tensor, tbptt: int | None = None) -> torch.Tensor:
        level = x[:, -1:]  # (B, 1)
        z = self.embed((x - level).unsqueeze(-1)) + self.pe  # (B, L, H)
        z = self.encoder(z)  # (B, L, H)
        return self.head(z.flatten(1)) + level  # (B, h)


class NeuralForecaster(Forecaster):
    """A global net over all series: per-series scaling, windows, the shared training loop, recursive long horizons."""

    Config = NeuralConfig
    cell: str

    def _build(self, lookback: int, h: int) -> nn.Module:
        c = self.config
        torch.manual_seed(c.seed)
        if self.cell == "transformer":
            return TransformerNet(lookback, h, c.hidden_size, c.layers, c.dropout, c.heads)
        return RecurrentNet(self.cell, lookback, h, c.hidden_size, c.layers, c.dropout)

    def __init__(self, config=None, **params):
        super().__init__(config, **params)
        if self.config.tbptt and self.cell == "transformer":
            raise ModelError("--tbptt applies to the recurrent models (rnn, lstm, gru), not the transformer")

    def _fit(self, ids, series, h):
        self.lookback_ = self.config.lookback or default_lookback(h, self.freq_.season)
        shortest = min(len(s) for s in series)
        if shortest <= h:
            uid = ids[int(np.argmin([len(s) for s in series]))]
            raise ModelError(f"series '{uid}' has {shortest} training points; the {self.name} model needs more than "
                             f"the horizon ({h}) to hold out a validation window; use a shorter --horizon")
        scaled = Scaler.fit(series).transform(series)
        train, val = split_windows(scaled, self.lookback_, h)
        self.n_windows_ = len(train[0])
        self.net_ = self._build(self.lookback_, h)
        self.probe_ = self._probe(train) if self.config.diagnostics else None

        def on_epoch(epoch, metrics):
            if self.probe_ is not None and self.probe_.due(epoch):
                self.probe_.measure(f"epoch {epoch}")
            if self.on_epoch_ is not None:
                self.on_epoch_(epoch, metrics)

        self.history_loss_: History = fit_network(self.net_, train, val, self.config.train_config(), on_epoch)
        if self.probe_ is not None:
            self.probe_.measure(f"end (best epoch {self.history_loss_.best_epoch})")

    def _probe(self, train) -> GradientProbe:
        """A gradient-flow probe on a fixed batch of training windows."""
        device = resolve_device(self.config.device)
        pick = torch.randperm(len(train[0]), generator=torch.Generator().manual_seed(self.config.seed))[:256]
        x = torch.as_tensor(train[0][pick.numpy()], device=device)  # (P, L)
        y = torch.as_tensor(train[1][pick.numpy()], device=device)  # (P, h)
        return GradientProbe(self.net_, x, y, self.config.tbptt)

    @torch.no_grad()
    def _forecast(self, ids, series, h):
        scaler = Scaler.fit(series)
        scaled = scaler.transform(series)
        device = next(self.net_.parameters()).device
        self.net_.eval()
        steps = []
        while sum(s.shape[1] for s in steps) < h:
            x = torch.as_tensor(last_windows(scaled, self.lookback_), device=device)  # (S, L)
            out = self.net_(x).cpu().numpy().astype(float)  # (S, h_model)
            steps.append(out)
            scaled = [np.concatenate([s, o]) for s, o in zip(scaled, out)]
        return scaler.inverse(np.concatenate(steps, axis=1)[:, :h])

    def fit_details(self):
        hist = self.history_loss_
        return {"lookback_used": self.lookback_, "best_epoch": hist.best_epoch, "epochs_run": len(hist.train_loss),
                "train_windows": self.n_windows_}, None

    def gradient_flow(self) -> tuple[dict, pd.DataFrame] | None:
        """(grad_ratio_last_first and grad_half_life, the gradient norm by lag per measured epoch), if measured."""
        probe = getattr(self, "probe_", None)
        if probe is None or not probe.rows:
            return None
        return probe.summary(), probe.frame()

    def _state(self, path: Path):
        torch.save({k: v.cpu() for k, v in self.net_.state_dict().items()}, path / WEIGHTS_FILE)
        return {"lookback": self.lookback_}

    def _restore(self, path: Path, state):
        self.lookback_ = int(state["lookback"])
        weights = path / WEIGHTS_FILE
        if not weights.is_file():
            raise ModelError(f"{path}: {WEIGHTS_FILE} is missing; the model folder is incomplete")
        try:
            tensors = torch.load(weights, map_location="cpu", weights_only=True)
        except Exception as exc:  # torch raises UnpicklingError and others for files it will not trust
            raise ModelError(f"{weights}: refused to load ({str(exc).splitlines()[0]}); "
                             "only plain tensors are accepted") from None
        self.net_ = self._build(self.lookback_, self.h_)
        try:
            self.net_.load_state_dict(tensors)
        except (RuntimeError, TypeError, AttributeError) as exc:
            raise ModelError(f"{weights}: does not fit the {self.name} network "
                             f"({str(exc).splitlines()[0]})") from None
        self.net_.to(resolve_device("auto")).eval()


class RNNForecaster(NeuralForecaster):
    name, cell = "rnn", "rnn"


class LSTMForecaster(NeuralForecaster):
    name, cell = "lstm", "lstm"


class GRUForecaster(NeuralForecaster):
    name, cell = "gru", "gru"


class TransformerForecaster(NeuralForecaster):
    name, cell = "transformer", "transformer"
