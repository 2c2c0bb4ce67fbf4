"""Sliding windows: lists of series arrays -> (inputs, targets) matrices."""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def left_pad(y: np.ndarray, length: int) -> np.ndarray:
    """`y` repeated at its first value on the left up to `length` points (unchanged when long enough)."""
    if len(y) >= length:
        return y
    return np.concatenate([np.full(length - len(y), y[0], dtype=y.dtype), y])


def make_windows(series: list[np.ndarray], lookback: int, h: int, recent: int | None = None,
                 weights: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
    """Every (lookback inputs, h targets) window of every series, short series left-padded to one window;
    with `recent`, only each series' last `recent` windows. With per-series `weights`, a third matrix (N,) gives
    every window its series' weight."""
    width = lookback + h
    blocks = [sliding_window_view(left_pad(np.asarray(s, float), width), width) for s in series]
    if recent is not None:
        blocks = [b[-recent:] for b in blocks]
    if not blocks:
        empty = (np.zeros((0, lookback), np.float32), np.zeros((0, h), np.float32))
        return empty if weights is None else (*empty, np.zeros(0, np.float32))
    windows = np.concatenate(blocks).astype(np.float32)  # (N, lookback + h)
    if weights is None:
        return windows[:, :lookback], windows[:, lookback:]
    per_window = np.repeat(np.asarray(weights, np.float32), [len(b) for b in blocks])  # (N,)
    return windows[:, :lookback], windows[:, lookback:], per_window


def validation_length(h: int) -> int:
    """The points a series needs to give a validation window: the window's h targets, and before them one
    training window's h targets and 2 input points."""
    return 2 * h + 2


def split_windows(series: list[np.ndarray], lookback: int, h: int, recent: int | None = None,
                  weights: np.ndarray | None = None):
    """Training windows, and the last `h` points of every series long enough (`validation_length`) as validation.

    A long series gives one validation window, and training windows whose targets end before it; a shorter series
    gives all its windows (left-padded) to training. Returns ((X_train, Y_train), (X_val, Y_val)), the validation
    part None when no series is long enough; with per-series `weights`, each part has its windows' weights third.
    """
    long = [len(s) >= validation_length(h) for s in series]
    train = make_windows([s[:-h] if ok else s for s, ok in zip(series, long)], lookback, h, recent, weights)
    if not any(long):
        return train, None
    padded = [left_pad(np.asarray(s, float), lookback + h) for s, ok in zip(series, long) if ok]
    val = (np.stack([p[-lookback - h:-h] for p in padded]).astype(np.float32),
           np.stack([p[-h:] for p in padded]).astype(np.float32))
    if weights is not None:
        val = (*val, np.asarray(weights, np.float32)[np.asarray(long)])
    return train, val


def last_windows(series: list[np.ndarray], lookback: int) -> np.ndarray:
    """The last `lookback` points of every series (left-padded when shorter) as a (S, lookback) matrix."""
    return np.stack([left_pad(np.asarray(s, float), lookback)[-lookback:] for s in series]).astype(np.float32)
