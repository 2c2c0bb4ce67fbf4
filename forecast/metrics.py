"""Forecast accuracy as the M-competitions define it: per-series errors, then the mean over series."""

from __future__ import annotations

import numpy as np
import pandas as pd

from forecast.data import ID, TARGET, TIME
from forecast.intervals import MSIS_LEVEL, interval_metrics


def mae(y: np.ndarray, f: np.ndarray) -> float:
    return float(np.mean(np.abs(np.asarray(y, float) - np.asarray(f, float))))


def rmse(y: np.ndarray, f: np.ndarray) -> float:
    return float(np.sqrt(np.mean((np.asarray(y, float) - np.asarray(f, float)) ** 2)))


def smape_points(y: np.ndarray, f: np.ndarray) -> np.ndarray:
    """Each point's symmetric APE in percent (0 to 200); 0 where both actual and forecast are 0."""
    y, f = np.asarray(y, float), np.asarray(f, float)
    denom = np.abs(y) + np.abs(f)
    return np.where(denom == 0, 0.0, 200.0 * np.abs(y - f) / np.where(denom == 0, 1.0, denom))


def smape(y: np.ndarray, f: np.ndarray) -> float:
    """Symmetric MAPE in percent (0 to 200); a point where both actual and forecast are 0 counts as 0."""
    return float(np.mean(smape_points(y, f)))


def mape(y: np.ndarray, f: np.ndarray) -> float:
    """Mean absolute percentage error in percent over the points where the actual is not 0 (NaN when all are),
    as shared/bench/score.py computes it."""
    y, f = np.asarray(y, float), np.asarray(f, float)
    nonzero = y != 0
    return float(np.mean(100.0 * np.abs(y - f)[nonzero] / np.abs(y[nonzero]))) if nonzero.any() else float("nan")


def seasonal_scale(insample: np.ndarray, season: int) -> float:
    """In-sample MAE of the seasonal naive forecast (lag 1 when the series is not longer than a season)."""
    insample = np.asarray(insample, float)
    lag = season if len(insample) > season else 1
    diffs = np.abs(insample[lag:] - insample[:-lag])
    return float(diffs.mean()) if len(diffs) else float("nan")


def mase(y: np.ndarray, f: np.ndarray, insample: np.ndarray, season: int) -> float:
    """MAE scaled by the in-sample seasonal naive MAE; NaN where that scale is 0 (a constant series)."""
    scale = seasonal_scale(insample, season)
    if not np.isfinite(scale) or scale == 0:
        return float("nan")
    return mae(y, f) / scale


def per_series(train: pd.DataFrame, test: pd.DataFrame, forecast: pd.DataFrame, season: int) -> pd.DataFrame:
    """One row per series with mae, rmse, smape, mape and mase of `forecast` (unique_id, ds, yhat) against
    `test`."""
    joined = test.merge(forecast[[ID, TIME, "yhat"]], on=[ID, TIME], how="left")
    if joined["yhat"].isna().any():
        missing = joined[joined["yhat"].isna()].iloc[0]
        raise ValueError(f"no forecast for series '{missing[ID]}' at {missing[TIME]}")
    insample = dict(tuple(train.groupby(ID, sort=False)[TARGET]))
    rows = []
    for uid, part in joined.groupby(ID, sort=False):
        y, f = part[TARGET].to_numpy(float), part["yhat"].to_numpy(float)
        rows.append({ID: uid, "mae": mae(y, f), "rmse": rmse(y, f), "smape": smape(y, f), "mape": mape(y, f),
                     "mase": mase(y, f, insample[uid].to_numpy(float), season)})
    return pd.DataFrame(rows)


def evaluate(train: pd.DataFrame, test: pd.DataFrame, forecast: pd.DataFrame, season: int, levels=(),
             quantiles=()) -> dict[str, float]:
    """Mean over series of each metric (series with an undefined MASE are left out of its mean, as score.py does);
    with `levels` and `quantiles`, the interval metrics of forecast.intervals.interval_metrics too, and `msis`, the
    M4 competition's MSIS at 95% where 95 is among the levels."""
    table = per_series(train, test, forecast, season)
    scores = {name: float(table[name].mean()) for name in ("mae", "rmse", "smape", "mape", "mase")}
    if levels or quantiles:
        joined = test.merge(forecast, on=[ID, TIME], how="left")
        scales = train.groupby(ID, sort=False)[TARGET].agg(lambda y: seasonal_scale(y.to_numpy(float), season))
        scores.update(interval_metrics(joined, scales, levels, quantiles))
        if f"msis_{MSIS_LEVEL:g}" in scores:
            scores["msis"] = scores[f"msis_{MSIS_LEVEL:g}"]
    return scores


def error_by_step(folds, season: int, direct: int | None = None) -> pd.DataFrame:
    """The error at each step ahead, averaged over series and folds: `folds` is [(training part, holdout frame with
    unique_id, ds, y, yhat)]; step k is each series' k-th point after the origin. Columns step, smape, mase (each
    series' errors divided by its in-sample seasonal-naive MAE at that origin; undefined scales left out), mae, n
    (the series x folds scored at that step) and, with `direct` (the horizon the model was trained for), part:
    "direct" up to it, "recursive" past it."""
    parts = []
    for train, frame in folds:
        frame = frame.sort_values([ID, TIME], kind="stable")
        scales = train.groupby(ID, sort=False)[TARGET].agg(lambda y: seasonal_scale(y.to_numpy(float), season))
        y, f = frame[TARGET].to_numpy(float), frame["yhat"].to_numpy(float)
        error = np.abs(y - f)
        scale = frame[ID].map(scales).to_numpy(float)
        parts.append(pd.DataFrame({
            "step": frame.groupby(ID, sort=False).cumcount().to_numpy() + 1,
            "smape": smape_points(y, f),
            "mase": np.where(np.isfinite(scale) & (scale > 0), error / np.where(scale > 0, scale, 1.0), np.nan),
            "mae": error}))
    table = pd.concat(parts, ignore_index=True).groupby("step").agg(
        smape=("smape", "mean"), mase=("mase", "mean"), mae=("mae", "mean"), n=("mae", "size")).reset_index()
    if direct is not None:
        table["part"] = np.where(table["step"] <= direct, "direct", "recursive")
    return table
