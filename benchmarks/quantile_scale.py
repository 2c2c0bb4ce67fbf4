"""A learned spread for normalised conformal prediction: a multi-quantile (pinball) GRU, the kind of output head the
probabilistic nets (MQ-RNN, ES-RNN) train, fitted across all series on every window of their histories, in logs
relative to each window's last value; its spread level x (exp(q90) - exp(q10)) per forecast step is one series'
difficulty at one origin. Used by interval_scales.py (validation split only)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from forecast.windows import last_windows, make_windows

QUANTILES = (0.1, 0.5, 0.9)


class QuantileGRU(nn.Module):
    """Windows (B, L) of logs less their last value -> the 10%, 50% and 90% quantiles (B, h, 3), never crossing."""

    def __init__(self, h: int, hidden: int = 64):
        super().__init__()
        self.h = h
        self.rnn = nn.GRU(1, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 3 * h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x.unsqueeze(-1))
        median, below, above = self.head(out[:, -1]).view(len(x), 3, self.h).unbind(1)
        return torch.stack([median - nn.functional.softplus(below), median,
                            median + nn.functional.softplus(above)], dim=-1)


def pinball(q: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    p = torch.tensor(QUANTILES, dtype=q.dtype)
    e = y.unsqueeze(-1) - q
    return torch.maximum(p * e, (p - 1) * e).mean()


def _relative(x: np.ndarray) -> np.ndarray:
    return x - x[:, -1:]


def fit(histories: list[np.ndarray], lookback: int, h: int, steps: int = 3000, seed: int = 1) -> QuantileGRU:
    """Train on every (lookback, h) window of the positive `histories` (short ones left-padded)."""
    torch.manual_seed(seed)
    logs = [np.log(y) for y in histories if len(y) > h and np.all(y > 0)]
    x, y = make_windows(logs, lookback, h)[:2]
    y = torch.as_tensor(y - x[:, -1:], dtype=torch.float32)  # the targets relative to the window's last value
    x = torch.as_tensor(_relative(x), dtype=torch.float32)
    net = QuantileGRU(h)
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        idx = torch.randint(len(x), (256,), generator=generator)
        loss = pinball(net(x[idx]), y[idx])
        optimizer.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        optimizer.step()
        schedule.step()
    net.eval()
    return net


@torch.no_grad()
def spreads(net: QuantileGRU, histories: list[np.ndarray], lookback: int, fallback: np.ndarray) -> np.ndarray:
    """(S, h): each history's forecast spread level x (exp(q90) - exp(q10)); `fallback` (S,) where a history is not
    positive (no logs)."""
    out = np.repeat(np.asarray(fallback, float)[:, None], net.h, axis=1)
    rows = [k for k, y in enumerate(histories) if len(y) and np.all(y > 0)]
    if rows:
        windows = last_windows([np.log(histories[k]) for k in rows], lookback)
        q = net(torch.as_tensor(_relative(windows))).numpy()  # (S', h, 3)
        level = np.array([histories[k][-1] for k in rows])[:, None]
        out[rows] = level * (np.exp(q[..., 2]) - np.exp(q[..., 0]))
    return out
