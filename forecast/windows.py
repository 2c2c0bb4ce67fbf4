"""Sliding windows: lists of series arrays -> (inputs, targets) matrices."""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def left_pad(y: np.ndarray, length: int) -> np.ndarray:
    """`y` repeated at its first value on the left up to `length` points (unchanged when long enough)."""
    if len(y) >= length:
        return y
    return np.concatenate([np.full(length - len(y), y[0], dtype=y.dtype), y])


def make_windows(series: list[np.ndarray], lookback: int, h: int,
                 recent: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Every (lookback inputs, h targets) window of every series, short series left-padded to one window;
    with `recent`, only each series' last `recent` windows."""
    width = lookback + h
    blocks = [sliding_window_view(left_pad(np.asarray(s, float), width), width) for s in series]
    if recent is not None:
        blocks = [b[-recent:] for b in blocks]
    if not blocks:
        return np.zeros((0, lookback), np.float32), np.zeros((0, h), np.float32)
    windows = np.concatenate(blocks).astype(np.float32)  # (N, lookback + h)
    return windows[:, :lookback], windows[:, lookback:]


def split_windows(series: list[np.ndarray], lookback: int, h: int, recent: int | None = None):
    """Training windows whose targets end before each series' last `h` points, and those points as validation.

    Returns ((X_train, Y_train), (X_val, Y_val)); the validation part has one window per series.
    """
    train = make_windows([s[:-h] if len(s) > h else s[:1] for s in series], lookback, h, recent)
    val_x = np.stack([left_pad(np.asarray(s, float), lookback + h)[-lookback - h:-h] for s in series])
    val_y = np.stack([left_pad(np.asarray(s, float), lookback + h)[-h:] for s in series])
    return train, (val_x.astype(np.float32), val_y.astype(np.float32))


def last_windows(series: list[np.ndarray], lookback: int) -> np.ndarray:
    """The last `lookback` points of every series (left-padded when shorter) as a (S, lookback) matrix."""
    return np.stack([left_pad(np.asarray(s, float), lookback)[-lookback:] for s in series]).astype(np.float32)
