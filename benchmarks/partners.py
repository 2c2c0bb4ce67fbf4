#!/usr/bin/env python3
"""The nets' candidate statistical partners alone, on the validation split only (each training series less its last
horizon is fitted, that horizon scored; never a test file): AR, the Theta line, a damped trend
(`forecast.models.partner.damped_lines`: exponential smoothing with a damped trend, its parameters chosen per series
from a grid, vectorised as the Theta lines are) and their means, MASE per subset, with statsmodels' damped-trend
exponential smoothing (ExponentialSmoothing, parameters estimated per series; in the nets' transformed space, as the
lines are) as a yardstick of the grid's. A partner worth offering must beat the ones there are on some subsets;
then it is tried as the nets' partner (`partner.KINDS`) on the validation split with benchmarks/partner_rules.py.

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
from forecast.models.partner import damped_lines, fit_partner, theta_lines  # noqa: E402
from forecast.transforms import Stacked, fit_transforms, transform_all  # noqa: E402


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


def run(subset: str, h: int | None = None) -> dict:
    fit, scored, freq = accuracy.split(subset, "validation", h)
    h, m = h or accuracy.HORIZONS[subset], freq.season
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
    ap.add_argument("--horizon", type=int, help="forecast and score this many points instead of the official "
                                                 "horizon")
    args = ap.parse_args(argv)
    for subset in args.subset:
        row = {"subset": subset, "horizon": args.horizon or accuracy.HORIZONS[subset], **run(subset, args.horizon)}
        print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}),
              flush=True)


if __name__ == "__main__":
    main()
