#!/usr/bin/env python3
"""The nets' candidate statistical partners alone, on the validation split only (each training series less its last
horizon is fitted, that horizon scored; never a test file): AR, the Theta line, a damped trend (`damped_lines`
below: exponential smoothing with a damped trend, its parameters chosen per series from a grid, vectorised as the
Theta lines are) and their means, MASE per subset, with statsmodels' damped-trend exponential smoothing
(ExponentialSmoothing, parameters estimated per series; in the nets' transformed space, as the lines are) as a
yardstick of the grid's. A partner worth offering must beat the ones there are on some subsets; then it is tried as
the nets' partner (`partner.KINDS`) on the validation split with benchmarks/accuracy.py.

    python3 benchmarks/partners.py --subset m3_other m3_yearly
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import accuracy  # noqa: E402

from forecast.metrics import seasonal_scale  # noqa: E402
from forecast.models.partner import fit_partner, theta_lines  # noqa: E402
from forecast.transforms import Stacked, fit_transforms, transform_all  # noqa: E402

# the damped trend's grid: level weights, trend weights (as fractions of the level's) and damping factors; one
# triple chosen per series
DAMPED_GRID = np.array([(a, b, phi) for a in np.linspace(0.05, 0.95, 10) for b in (0.0, 0.05, 0.1, 0.2, 0.3)
                        for phi in (0.8, 0.88, 0.94, 0.98)])


def damped_lines(series: list[np.ndarray], h: int) -> np.ndarray:
    """Exponential smoothing with an additive damped trend (Gardner and McKenzie, 1985), forecasts (S, h) of the
    (seasonally adjusted) `series`: level l and trend b updated by each one-step error e = y - (l + phi b) as
    l += phi b + alpha e, b = phi b + alpha beta e, from l = the first value and b = the mean step of the first four;
    the triple (alpha, beta, phi) of DAMPED_GRID with the least in-sample one-step squared error is chosen per series;
    the forecast k steps ahead is l + (phi + ... + phi^k) b."""
    if not series:
        return np.zeros((0, h))
    alpha, beta, phi = DAMPED_GRID.T  # (G,) each
    lengths = np.array([len(s) for s in series])
    width = int(lengths.max())
    starts = width - lengths  # every series ends in the last row
    y = np.zeros((width, len(series)))
    for column, s in enumerate(series):
        y[starts[column]:, column] = s
    first = np.minimum(lengths - 1, 3)
    slope = np.array([(s[k] - s[0]) / k if k else 0.0 for s, k in zip(series, first)])
    level = np.zeros((len(series), len(alpha)))  # (S, G)
    trend, sse = np.zeros_like(level), np.zeros_like(level)
    for t in range(width):
        begins = starts == t
        level[begins], trend[begins] = y[t, begins][:, None], slope[begins][:, None]
        live = (t > starts)[:, None]  # (S, 1)
        predicted = level + phi * trend
        error = np.where(live, y[t][:, None] - predicted, 0.0)
        sse += error * error
        level = np.where(live, predicted + alpha * error, level)
        trend = np.where(live, phi * trend + alpha * beta * error, trend)
    rows, best = np.arange(len(series)), np.argmin(sse, axis=1)
    damping = np.cumsum(phi[best][:, None] ** np.arange(1, h + 1), axis=1)  # (S, h)
    return level[rows, best][:, None] + damping * trend[rows, best][:, None]


def statsmodels_damped(z: np.ndarray, h: int) -> np.ndarray:
    """Damped-trend exponential smoothing's forecasts of `z`, its parameters estimated by statsmodels; the last
    value where the series is too short or the fit fails."""
    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    if len(z) >= 5:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                out = ExponentialSmoothing(z, trend="add", damped_trend=True,
                                           initialization_method="estimated").fit().forecast(h)
                if np.all(np.isfinite(out)):
                    return out
            except (ValueError, np.linalg.LinAlgError):
                pass
    return np.repeat(z[-1], h)


def run(subset: str) -> dict:
    fit, scored, freq = accuracy.split(subset, "validation")
    h, m = accuracy.HORIZONS[subset], freq.season
    groups = fit.groupby("unique_id", sort=False)
    ids = list(groups.groups)
    series = [groups.get_group(i)["y"].to_numpy(float) for i in ids]
    truth = scored.groupby("unique_id", sort=False)["y"]
    actual = np.stack([truth.get_group(i).to_numpy(float)[:h] for i in ids])
    transforms = fit_transforms(series, m)
    scaled, stacked = transform_all(transforms, series), Stacked(transforms)
    ar = fit_partner(ids, series, freq, h)._forecast(ids, series, h)
    theta = stacked.inverse(theta_lines(scaled, h))
    start = time.perf_counter()
    ets = stacked.inverse(damped_lines(scaled, h))
    seconds = time.perf_counter() - start
    reference = stacked.inverse(np.stack([statsmodels_damped(z, h) for z in scaled]))
    reference_seconds = time.perf_counter() - start - seconds
    scales = np.array([seasonal_scale(y, m) for y in series])
    ok = np.isfinite(scales) & (scales > 0)
    candidates = {"ar": ar, "theta": theta, "damped": ets, "ar+theta": (ar + theta) / 2,
                  "ar+damped": (ar + ets) / 2, "theta+damped": (theta + ets) / 2,
                  "ar+theta+damped": (ar + theta + ets) / 3, "damped (statsmodels)": reference}
    row = {"subset": subset}
    for name, forecast in candidates.items():
        row[name] = float(np.mean(np.abs(actual - forecast).mean(axis=1)[ok] / scales[ok]))
    row["damped_seconds"], row["statsmodels_seconds"] = seconds, reference_seconds
    return row


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subset", nargs="+", default=list(accuracy.HORIZONS), choices=list(accuracy.HORIZONS))
    args = ap.parse_args(argv)
    for subset in args.subset:
        print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in run(subset).items()}),
              flush=True)


if __name__ == "__main__":
    main()
