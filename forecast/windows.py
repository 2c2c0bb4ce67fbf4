"""Sliding windows: lists of series arrays -> (inputs, targets) matrices; with covariates, each input row packed as
forecast.models.nets.Layout reads it: [y (L) | past covariates (L x P) | future covariates (h x F) | statics (C)]."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


@dataclass
class WindowCovariates:
    """The covariates of the series windows are cut from: per series its covariates (m, P) from its first point
    on (m may exceed the series' length: rows known beyond it), the positions of the future-known columns among
    them, and the statics (S, C)."""

    past: list[np.ndarray]
    future_index: np.ndarray
    static: np.ndarray

    def rows(self, i: int, start: int, stop: int) -> np.ndarray:
        """Series i's covariates at positions start..stop - 1 (before its first point: the first row; past the
        rows known: the last row)."""
        p = self.past[i]
        if not len(p):
            return np.zeros((stop - start, p.shape[1]))
        return p[np.clip(np.arange(start, stop), 0, len(p) - 1)]

    def pack(self, i: int, starts: np.ndarray, lookback: int, h: int) -> np.ndarray:
        """The covariate part (len(starts), L x P + h x F + C) of series i's windows whose inputs start at
        `starts` (positions, negative before the first point)."""
        p = self.rows(i, int(starts.min()), int(starts.max()) + lookback + h)  # (span, P)
        span = sliding_window_view(p, lookback + h, axis=0).transpose(0, 2, 1)[starts - starts.min()]  # (N, L+h, P)
        parts = [span[:, :lookback].reshape(len(starts), -1),
                 span[:, lookback:][:, :, self.future_index].reshape(len(starts), -1),
                 np.repeat(self.static[i][None], len(starts), axis=0)]
        return np.concatenate(parts, axis=1)

    def subset(self, picked) -> WindowCovariates:
        return WindowCovariates([self.past[i] for i in picked], self.future_index, self.static[np.asarray(picked)])


def default_lookback(h: int, season: int) -> int:
    """The window the global models read by default: twice the horizon, at least one season plus the horizon."""
    return max(2 * h, season + h if season > 1 else 0)


def left_pad(y: np.ndarray, length: int) -> np.ndarray:
    """`y` repeated at its first value on the left up to `length` points (unchanged when long enough)."""
    if len(y) >= length:
        return y
    return np.concatenate([np.full(length - len(y), y[0], dtype=y.dtype), y])


def make_windows(series: list[np.ndarray], lookback: int, h: int, recent: int | None = None,
                 weights: np.ndarray | None = None, covs: WindowCovariates | None = None) -> tuple[np.ndarray, ...]:
    """Every (lookback inputs, h targets) window of every series, short series left-padded to one window;
    with `recent`, only each series' last `recent` windows. With per-series `weights`, a third matrix (N,) gives
    every window its series' weight; with `covs`, the inputs are packed with the covariates of each window."""
    width = lookback + h
    blocks = [sliding_window_view(left_pad(np.asarray(s, float), width), width) for s in series]
    if recent is not None:
        blocks = [b[-recent:] for b in blocks]
    if not blocks:
        empty = (np.zeros((0, lookback), np.float32), np.zeros((0, h), np.float32))
        return empty if weights is None else (*empty, np.zeros(0, np.float32))
    if covs is not None:  # window k of a series of n points starts at n - width - (windows - 1 - k)
        starts = [len(s) - width - len(b) + 1 + np.arange(len(b)) if len(s) >= width else np.array([len(s) - width])
                  for s, b in zip(series, blocks)]
        blocks = [np.concatenate([b[:, :lookback], covs.pack(i, st, lookback, h), b[:, lookback:]], axis=1)
                  for i, (b, st) in enumerate(zip(blocks, starts))]
    windows = np.concatenate(blocks).astype(np.float32)  # (N, inputs + h)
    if weights is None:
        return windows[:, :-h], windows[:, -h:]
    per_window = np.repeat(np.asarray(weights, np.float32), [len(b) for b in blocks])  # (N,)
    return windows[:, :-h], windows[:, -h:], per_window


def validation_length(h: int) -> int:
    """The points a series needs to give a validation window: the window's h targets, and before them one
    training window's h targets and 2 input points."""
    return 2 * h + 2


def split_windows(series: list[np.ndarray], lookback: int, h: int, recent: int | None = None,
                  weights: np.ndarray | None = None, covs: WindowCovariates | None = None):
    """Training windows, and the last `h` points of every series long enough (`validation_length`) as validation.

    A long series gives one validation window, and training windows whose targets end before it; a shorter series
    gives all its windows (left-padded) to training. Returns ((X_train, Y_train), (X_val, Y_val)), the validation
    part None when no series is long enough; with per-series `weights`, each part has its windows' weights third.
    """
    long = [len(s) >= validation_length(h) for s in series]
    train = make_windows([s[:-h] if ok else s for s, ok in zip(series, long)], lookback, h, recent, weights, covs)
    if not any(long):
        return train, None
    picked = np.flatnonzero(long)
    val_x = last_windows([series[i][:-h] for i in picked], lookback, covs and covs.subset(picked), h)
    val = (val_x, np.stack([np.asarray(series[i][-h:], float) for i in picked]).astype(np.float32))
    if weights is not None:
        val = (*val, np.asarray(weights, np.float32)[np.asarray(long)])
    return train, val


def last_windows(series: list[np.ndarray], lookback: int, covs: WindowCovariates | None = None,
                 h: int = 0) -> np.ndarray:
    """The last `lookback` points of every series (left-padded when shorter) as a (S, lookback) matrix; with
    `covs`, packed with the covariates of that window and of the `h` steps after each series' end."""
    x = np.stack([left_pad(np.asarray(s, float), lookback)[-lookback:] for s in series]).reshape(len(series),
                                                                                                  lookback)
    if covs is not None and len(series):
        packed = [covs.pack(i, np.array([len(s) - lookback]), lookback, h) for i, s in enumerate(series)]
        x = np.concatenate([x, np.concatenate(packed)], axis=1)
    return x.astype(np.float32)
