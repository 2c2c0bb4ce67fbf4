"""The networks in PyTorch: a stacked RNN, LSTM or GRU over a hidden state H_t, and a Transformer encoder; each maps
a transformed lookback window (B, L) to all h future values at once (B, h), relative to the window's last value."""

from __future__ import annotations

import math

import torch
from torch import nn

from forecast.errors import ModelError


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
