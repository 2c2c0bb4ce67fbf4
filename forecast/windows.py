"""Per-series scaling and sliding windows: lists of series arrays <-> (inputs, targets) matrices."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


@dataclass(frozen=True)
class Scaler:
    """Per-series standardisation: (y - loc) / scale, with statistics from the history given to `fit`."""

    loc: np.ndarray  # (S,)
    scale: np.ndarray  # (S,)

    @classmethod
    def fit(cls, series: list[np.ndarray]) -> Scaler:
        loc = np.array([s.mean() for s in series], dtype=float)
        std = np.array([s.std() for s in series], dtype=float)
        # a constant series has no spread: scale by its magnitude instead (or 1 for zeros)
        fallback = np.where(np.abs(loc) > 0, np.abs(loc), 1.0)
        scale = np.where(std > 1e-8 * np.maximum(np.abs(loc), 1.0), std, fallback)
        return cls(loc=loc, scale=scale)

    def transform(self, series: list[np.ndarray]) -> list[np.ndarray]:
        return [(s - m) / d for s, m, d in zip(series, self.loc, self.scale)]

    def inverse(self, values: np.ndarray) -> np.ndarray:
        """Undo the scaling of a (S, h) matrix of forecasts."""
        return values * self.scale[:, None] + self.loc[:, None]


def left_pad(y: np.ndarray, length: int) -> np.ndarray:
    """`y` repeated at its first value on the left up to `length` points (unchanged when long enough)."""
    if len(y) >= length:
        return y
    return np.concatenate([np.full(length - len(y), y[0], dtype=y.dtype), y])


def make_windows(series: list[np.ndarray], lookback: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    """Every (lookback inputs, h targets) window of every series, short series left-padded to one window."""
    width = lookback + h
    blocks = [sliding_window_view(left_pad(np.asarray(s, float), width), width) for s in series]
    if not blocks:
        return np.zeros((0, lookback), np.float32), np.zeros((0, h), np.float32)
    windows = np.concatenate(blocks).astype(np.float32)  # (N, lookback + h)
    return windows[:, :lookback], windows[:, lookback:]


def split_windows(series: list[np.ndarray], lookback: int, h: int):
    """Training windows whose targets end before each series' last `h` points, and those points as validation.

    Returns ((X_train, Y_train), (X_val, Y_val)); the validation part has one window per series.
    """
    train = make_windows([s[:-h] if len(s) > h else s[:1] for s in series], lookback, h)
    val_x = np.stack([left_pad(np.asarray(s, float), lookback + h)[-lookback - h:-h] for s in series])
    val_y = np.stack([left_pad(np.asarray(s, float), lookback + h)[-h:] for s in series])
    return train, (val_x.astype(np.float32), val_y.astype(np.float32))


def last_windows(series: list[np.ndarray], lookback: int) -> np.ndarray:
    """The last `lookback` points of every series (left-padded when shorter) as a (S, lookback) matrix."""
    return np.stack([left_pad(np.asarray(s, float), lookback)[-lookback:] for s in series]).astype(np.float32)
