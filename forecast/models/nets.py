"""The networks in PyTorch: a stacked RNN, LSTM or GRU over a hidden state H_t, and a Transformer encoder; each maps
a transformed lookback window (B, L) to all h future values at once (B, h), relative to the window's last value.

With covariates (forecast.covariates) a window is one packed row per example, [y (L) | past covariates (L x P) |
future covariates (h x F) | statics (C)] (`Layout`): the past covariates and the statics are extra input channels
at every step of the window, the future ones go with the last hidden state (the Transformer's flattened encoding)
into the output head (`FutureHead`), so each forecast step sees the covariates of the step it forecasts."""

from __future__ import annotations

import math

import torch
from torch import nn

from forecast.errors import ModelError


class Layout:
    """Where the parts of a packed window lie: the lookback L, the horizon h, and the widths of the past covariates
    P, the future covariates F and the statics C (all 0 without covariates: the window is y alone)."""

    def __init__(self, lookback: int, h: int, past: int = 0, future: int = 0, static: int = 0):
        self.lookback, self.h, self.past, self.future, self.static = lookback, h, past, future, static
        self.width = lookback * (1 + past) + h * future + static

    def unpack(self, x: torch.Tensor):
        """(y (B, L), past (B, L, P), future (B, h, F), statics (B, C)) of packed windows x (B, width)."""
        L, cut = self.lookback, self.lookback * (1 + self.past)
        y = x[:, :L]
        past = x[:, L:cut].reshape(len(x), L, self.past)
        future = x[:, cut:cut + self.h * self.future].reshape(len(x), self.h, self.future)
        return y, past, future, x[:, cut + self.h * self.future:]

    def inputs(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(the level: the window's last value (B, 1), the input channels at every step (B, L, 1 + P + C), the
        future covariates (B, h, F))."""
        y, past, future, static = self.unpack(x)
        level = y[:, -1:]
        channels = [(y - level).unsqueeze(-1), past]
        if self.static:
            channels.append(static.unsqueeze(1).expand(-1, self.lookback, -1))
        return level, torch.cat(channels, dim=-1), future


HEADS = ("linear", "local")  # how the future covariates reach the forecasts (FutureHead); "linear" before 2026-12-05


class FutureHead(nn.Module):
    """The h forecasts from a context (B, D), the nets' summary of the window, and the future covariates (B, h, F).
    "linear": one linear map of both. "local" adds, at each step, a small MLP shared by the steps (MQ-RNN's local
    decoder, Wen et al. 2017) of the projected context, a learned embedding of the step and that step's covariates,
    so that a covariate can act non-linearly and through the state (demand's U-shaped response to temperature,
    stronger at some hours than at others), which the linear map cannot express. Without future covariates: linear."""

    def __init__(self, context: int, h: int, future: int, width: int, kind: str = "linear"):
        super().__init__()
        if kind not in HEADS:
            raise ModelError(f"unknown head {kind!r}; expected one of {', '.join(HEADS)}")
        self.future = future
        self.local = kind == "local" and future > 0
        self.linear = nn.Linear(context + h * future, h)
        if self.local:
            self.project = nn.Linear(context, width)
            self.step = nn.Parameter(torch.zeros(h, width))
            self.mlp = nn.Sequential(nn.Linear(width + future, width), nn.ReLU(), nn.Linear(width, 1))

    def forward(self, context: torch.Tensor, future: torch.Tensor) -> torch.Tensor:
        out = self.linear(torch.cat([context, future.flatten(1)], dim=1) if self.future else context)  # (B, h)
        if self.local:
            state = self.project(context).unsqueeze(1) + self.step  # (B, h, width)
            out = out + self.mlp(torch.cat([state, future], dim=-1)).squeeze(-1)
        return out


def _detach(state):
    return tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()


class RecurrentNet(nn.Module):
    """A stacked RNN, LSTM or GRU whose last hidden state H_T is mapped to the h forecasts."""

    def __init__(self, cell: str, lookback: int, h: int, hidden_size: int, layers: int, dropout: float,
                 layout: Layout | None = None, head: str = "linear"):
        super().__init__()
        self.layout = layout or Layout(lookback, h)
        self.lookback = lookback
        channels = 1 + self.layout.past + self.layout.static
        self.rnn = getattr(nn, cell.upper())(input_size=channels, hidden_size=hidden_size, num_layers=layers,
                                             dropout=dropout if layers > 1 else 0.0, batch_first=True)
        self.head = FutureHead(hidden_size, h, self.layout.future, hidden_size, head)

    def _head(self, last: torch.Tensor, future: torch.Tensor, level: torch.Tensor) -> torch.Tensor:
        return self.head(last, future) + level  # (B, h)

    def forward(self, x: torch.Tensor, tbptt: int | None = None) -> torch.Tensor:
        # forecasts are learned relative to the window's last value, the level (B, 1)
        level, x, future = self.layout.inputs(x)  # x: (B, L, channels)
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
        return self._head(out[:, -1], future, level)

    def unrolled(self, x: torch.Tensor, tbptt: int | None = None) -> tuple[torch.Tensor, list]:
        """The same forecast as `forward`, one time step at a time, with every hidden state H_t (layers, B, H)
        that the next step reads, so that ∂L/∂H_t can be asked for; truncated where `forward` truncates."""
        level, z, future = self.layout.inputs(x)  # (B, 1), (B, L, channels), (B, h, F)
        steps = z.shape[1]
        cut = steps - tbptt if tbptt and tbptt < steps else 0
        state, states = None, []
        for t in range(steps):
            if t == cut and state is not None:
                state = _detach(state)
            _, state = self.rnn(z[:, t:t + 1], state)
            states.append(state[0] if isinstance(state, tuple) else state)  # (layers, B, H)
        return self._head(states[-1][-1], future, level), states  # the top layer's H_T, as out[:, -1] in forward


class TransformerNet(nn.Module):
    """A Transformer encoder over the window with sinusoidal positional encoding, flattened to the h forecasts."""

    def __init__(self, lookback: int, h: int, hidden_size: int, layers: int, dropout: float, heads: int,
                 layout: Layout | None = None, head: str = "linear"):
        super().__init__()
        if hidden_size % heads:
            raise ModelError(f"--hidden-size {hidden_size} must be divisible by the {heads} attention heads")
        self.layout = layout or Layout(lookback, h)
        self.lookback = lookback
        self.embed = nn.Linear(1 + self.layout.past + self.layout.static, hidden_size)
        position = torch.arange(lookback).unsqueeze(1)  # (L, 1)
        rate = torch.exp(torch.arange(0, hidden_size, 2) * (-math.log(10000.0) / hidden_size))
        pe = torch.zeros(lookback, hidden_size)
        pe[:, 0::2] = torch.sin(position * rate)
        pe[:, 1::2] = torch.cos(position * rate[: hidden_size // 2])
        self.register_buffer("pe", pe)  # (L, H)
        layer = nn.TransformerEncoderLayer(hidden_size, heads, 2 * hidden_size, dropout, batch_first=True,
                                           norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = FutureHead(lookback * hidden_size, h, self.layout.future, hidden_size, head)

    def forward(self, x: torch.Tensor, tbptt: int | None = None) -> torch.Tensor:
        level, x, future = self.layout.inputs(x)  # (B, 1), (B, L, channels), (B, h, F)
        z = self.encoder(self.embed(x) + self.pe).flatten(1)  # (B, L x H)
        return self.head(z, future) + level  # (B, h)
