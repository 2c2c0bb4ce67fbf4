#!/usr/bin/env python3
"""Which per-series scale makes the nets' split-conformal intervals sharpest at the same coverage? On the validation
split only (the last horizon of every training series is scored; never a test file).

The nets calibrate y_hat + q_j(p) s_i with s_i each series' in-sample seasonal-naive MAE
(forecast.models.conformal). This fits a model once, keeps the held-out errors its calibration saw, and calibrates
them again under other scales s_i (normalised conformal prediction), printing coverage and MSIS of each; the last
scale reads the net's own disagreement with its statistical partner (the mean |net - partner| over the horizon, over
the default scale, d_i: s_i (2 median(d) + d_i)), an ensemble's spread standing in for each series' difficulty;
then a learned difficulty (a regression across the series of each calibration window's error on features of its
history: normalised conformal prediction), a multi-quantile GRU's spread (quantile_scale.py) per step and over
the steps, and an oracle that knows each window's realised error, the bound of
what any scale could gain:

    python3 benchmarks/interval_scales.py --subset m3_monthly m3_quarterly --model gru
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

import accuracy  # noqa: E402
import quantile_scale  # noqa: E402

import forecast.models.conformal as conformal  # noqa: E402
import forecast.models.partner as partner_module  # noqa: E402
from forecast import registry  # noqa: E402
from forecast.intervals import Calibration, fill_scales, probabilities, to_columns  # noqa: E402
from forecast.metrics import evaluate, seasonal_scale  # noqa: E402
from forecast.transforms import is_seasonal, seasonal_indices  # noqa: E402
from forecast.windows import default_lookback  # noqa: E402

LEVELS = (80.0, 95.0)


def adjusted(y: np.ndarray, m: int) -> np.ndarray:
    """The series divided by its classical multiplicative seasonal indices, where seasonal and positive."""
    if m > 1 and np.all(y > 0) and is_seasonal(y, m):
        return y / seasonal_indices(y, m)[np.arange(len(y)) % m]
    return y


def recent(y: np.ndarray, m: int, h: int) -> np.ndarray:
    return y[-(max(3 * m, 2 * h) + m):]


def mean_abs_diff(y: np.ndarray) -> float:
    return float(np.mean(np.abs(np.diff(y)))) if len(y) > 1 else float("nan")


SCALES = {  # name -> s(history, season, horizon)
    "seasonal-naive MAE (the default)": lambda y, m, h: seasonal_scale(y, m),
    "seasonal-naive MAE, last 3 seasons": lambda y, m, h: seasonal_scale(recent(y, m, h), m),
    "level (mean of the last season)": lambda y, m, h: float(np.mean(np.abs(y[-max(m, 3):]))),
    "naive MAE, seasonally adjusted": lambda y, m, h: mean_abs_diff(adjusted(y, m)),
    "geometric mean of the default and the adjusted naive MAE": lambda y, m, h: float(np.sqrt(
        seasonal_scale(y, m) * mean_abs_diff(adjusted(y, m)))),
}


DISAGREEMENT = "the default times (2 median + the net's disagreement with its partner)"


def disagreement_scale(histories, m: int, net: np.ndarray, partner: np.ndarray) -> np.ndarray:
    """s_i (2 median(d) + d_i), s_i the seasonal-naive MAE, d_i = mean |net - partner| / s_i over the horizon."""
    s = fill_scales([seasonal_scale(y, m) for y in histories])
    d = np.abs(net - partner).mean(axis=1) / s
    return fill_scales(s * (2 * np.median(d) + d))


LEARNED = "the default times a learned difficulty (gradient boosting over 8 features, cross-fitted)"
QUANTILE_STEP = "a multi-quantile GRU's spread (q90 - q10) per step (benchmarks/quantile_scale.py)"
QUANTILE_MEAN = "the same spread's mean over the steps"
ORACLE = "oracle: each window's own realised MAE (a bound, not a method)"


def difficulty_features(y: np.ndarray, m: int, h: int, predicted: np.ndarray) -> list[float]:
    """What may tell how hard a series is to forecast, relative to its seasonal-naive MAE s: s over the level, the
    adjusted naive MAE, the recent s, the length, the recent slope, the recent spread, and the forecast's own
    slope and jump from the last value (logs)."""
    s = fill_scales([seasonal_scale(y, m)])[0]
    n = min(len(y), 2 * h)
    slope = np.polyfit(np.arange(n), y[-n:], 1)[0] if n > 2 else 0.0
    return [np.log(s / (np.mean(np.abs(y[-max(m, 3):])) + 1e-9) + 1e-9),
            np.log(mean_abs_diff(adjusted(y, m)) / s + 1e-6) if len(y) > 1 else 0.0,
            np.log(fill_scales([seasonal_scale(recent(y, m, h), m)])[0] / s + 1e-6), np.log(len(y)),
            np.log(abs(slope) * h / s + 1e-3), np.log(np.std(y[-h:]) / s + 1e-3),
            np.log(abs(predicted[-1] - predicted[0]) / s + 1e-3), np.log(abs(predicted[0] - y[-1]) / s + 1e-3)]


def learned_scales(seen, default, series, s, yhat, m: int, h: int):
    """Normalised conformal prediction with a learned normaliser (Papadopoulos et al. 2011): a gradient-boosted
    regression of each calibration window's log(MAE / s) on difficulty_features, fitted across the series; the
    calibration windows' own normalisers cross-fitted (two folds), so that they are out of sample as the
    forecast's are. Returns (calibration scales per call, the forecast's scales)."""
    from sklearn.ensemble import HistGradientBoostingRegressor

    x = np.array([difficulty_features(y, m, h, p) for hist, _, pred, _ in seen for y, p in zip(hist, pred)])
    target = np.concatenate([np.log(np.abs(actual - pred).mean(axis=1) / d + 1e-3)
                             for (_, actual, pred, _), d in zip(seen, default)])

    def model():
        return HistGradientBoostingRegressor(max_iter=200, learning_rate=0.05, max_leaf_nodes=15,
                                             min_samples_leaf=40, loss="absolute_error", random_state=0)

    folds, inside = np.arange(len(x)) % 2, np.empty(len(x))
    for fold in (0, 1):
        inside[folds == fold] = model().fit(x[folds != fold], target[folds != fold]).predict(x[folds == fold])
    cuts = np.cumsum([len(d) for d in default])[:-1]
    calibration = [d * np.exp(part) for d, part in zip(default, np.split(inside, cuts))]
    outside = model().fit(x, target).predict(np.array([difficulty_features(y, m, h, p) for y, p in zip(series, yhat)]))
    return calibration, s * np.exp(outside)


def run(subset: str, model_name: str) -> list[dict]:
    fit, scored, freq = accuracy.split(subset, "validation")
    h, m = accuracy.HORIZONS[subset], freq.season
    seen, original = [], conformal.scaled_errors  # (histories, actual, predicted) of every calibration call
    parts, combine = [], partner_module.combine  # (net, partner) of every combined forecast, in the same order

    def keep(histories, actual, predicted, season):
        seen.append(([np.asarray(y, float) for y in histories], np.asarray(actual, float),
                     np.asarray(predicted, float), parts[-1] if parts else None))
        return original(histories, actual, predicted, season)

    def keep_parts(net, partner, weight):
        parts.append((np.asarray(net, float), np.asarray(partner, float)))
        return combine(net, partner, weight)

    conformal.scaled_errors, partner_module.combine = keep, keep_parts
    try:
        model = registry.create(model_name, **({"diagnostics": False} if model_name in accuracy.NETS else {}))
        model.fit(fit, freq, h)
        points = model.predict(h)
    finally:
        conformal.scaled_errors, partner_module.combine = original, combine
    final = parts[-1] if parts and getattr(model, "combine_weight_", 1.0) < 1.0 else None
    ids = list(dict.fromkeys(points["unique_id"]))
    yhat = points["yhat"].to_numpy(float).reshape(len(ids), h)
    by_id = dict(zip(model.ids_, model.series_))
    series = [np.asarray(by_id[i], float) for i in ids]
    probs = probabilities(LEVELS)
    rows = []

    def score(name: str, calibration_scales: list[np.ndarray], s: np.ndarray) -> None:
        """Calibrate the errors of every calibration call over `calibration_scales` (one (S,) array per call) and
        score the bands yhat + s q(p) on the validation window."""
        residuals = []
        for (histories, actual, predicted, _), scale in zip(seen, calibration_scales):
            block = np.full((len(histories), h), np.nan)
            k = actual.shape[1]
            block[:, :k] = (actual - predicted) / (scale[:, None] if scale.ndim == 1 else scale[:, :k])
            residuals.append(block)
        spread = Calibration.from_residuals(np.concatenate(residuals), "validation").quantiles(probs, h)  # (h, P)
        bands = yhat[:, :, None] + (s[:, None, None] if s.ndim == 1 else s[:, :, None]) * spread[None]
        floor = np.array([0.0 if y.min() >= 0 else -np.inf for y in series])[:, None, None]
        columns = to_columns(yhat, np.maximum(bands, floor), probs, LEVELS)
        frame = pd.DataFrame({"unique_id": points["unique_id"], "ds": points["ds"], "yhat": points["yhat"],
                              **{k: v.ravel() for k, v in columns.items()}})
        scores = evaluate(fit, scored, frame, m, levels=LEVELS)
        rows.append({"subset": subset, "model": model_name, "scale": name, "coverage_80": scores["coverage_80"],
                     "coverage_95": scores["coverage_95"], "msis": scores["msis"]})
        print(json.dumps(rows[-1]), flush=True)

    for name, scale in SCALES.items():
        score(name, [fill_scales([scale(y, m, h) for y in block[0]]) for block in seen],
              fill_scales([scale(y, m, h) for y in series]))
    if final is not None:
        score(DISAGREEMENT, [disagreement_scale(hist, m, *(part[:, :actual.shape[1]] for part in both))
                             for hist, actual, _, both in seen], disagreement_scale(series, m, *final))
    default = [fill_scales([seasonal_scale(y, m) for y in block[0]]) for block in seen]
    s = fill_scales([seasonal_scale(y, m) for y in series])
    score(LEARNED, *learned_scales(seen, default, series, s, yhat, m, h))
    lookback = getattr(model, "lookback_", None) or default_lookback(h, m)
    net = quantile_scale.fit([y[:-h] for y in series if len(y) > h], lookback, h)
    per_step = [quantile_scale.spreads(net, block[0], lookback, d) for block, d in zip(seen, default)]
    forecast_spread = quantile_scale.spreads(net, series, lookback, s)
    score(QUANTILE_STEP, per_step, forecast_spread)
    score(QUANTILE_MEAN, [q.mean(axis=1) for q in per_step], forecast_spread.mean(axis=1))
    truth = scored.groupby("unique_id", sort=False)["y"].apply(lambda v: v.to_numpy(float)[:h])
    score(ORACLE, [fill_scales(np.abs(actual - predicted).mean(axis=1)) for _, actual, predicted, _ in seen],
          fill_scales([np.abs(truth[i] - yhat[k, :len(truth[i])]).mean() for k, i in enumerate(ids)]))
    return rows


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subset", nargs="+", default=["m3_monthly"], choices=list(accuracy.HORIZONS))
    ap.add_argument("--model", default="gru")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    rows = [row for subset in args.subset for row in run(subset, args.model)]
    with pd.option_context("display.width", 200, "display.max_colwidth", 60):
        print(pd.DataFrame(rows).round(3).to_string(index=False))


if __name__ == "__main__":
    main()
