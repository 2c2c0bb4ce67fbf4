#!/usr/bin/env python3
"""What a theta line alone scores on M3, in the space the nets learn in: the yardstick for the nets' accuracy.

Each training series is transformed as the nets see it (`forecast.transforms`: seasonal adjustment, logs), and
forecast by simple exponential smoothing (weight alpha) plus phi times its least-squares slope per step ahead,
over its whole history or its last `history` horizons; the forecasts are transformed back and scored (sMAPE)
against the official test file. One alpha, phi and history for all series of a subset, as a global net has.

    python3 benchmarks/theta_line.py --subset all
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from accuracy import HORIZONS, ROOT  # noqa: E402

from forecast import api  # noqa: E402
from forecast.data import ID, TARGET  # noqa: E402
from forecast.metrics import smape  # noqa: E402  (every series has h points: the mean over points is over series)
from forecast.transforms import fit_transforms  # noqa: E402

ALPHAS, PHIS, HISTORIES = (0.3, 0.5, 0.8, 1.0), (0.5, 1.0), (None, 2, 3, 4)


def theta_line(z: np.ndarray, alpha: float, phi: float, h: int) -> np.ndarray:
    level = z[0]
    for value in z[1:]:
        level = alpha * value + (1 - alpha) * level
    t = np.arange(len(z)) - (len(z) - 1) / 2
    slope = float(z @ t / (t @ t)) if len(z) > 1 else 0.0
    return level + phi * slope * np.arange(1, h + 1)


def scores(subset: str) -> pd.DataFrame:
    h = HORIZONS[subset]
    train = api.load(ROOT / f"data/{subset}_train.csv")
    test = api.load(ROOT / f"data/{subset}_test.csv", freq=train.freq.alias)
    series = [g.to_numpy(float) for _, g in train.df.groupby(ID, sort=True)[TARGET]]
    actual = np.stack([g.to_numpy(float) for _, g in test.df.groupby(ID, sort=True)[TARGET]])
    transforms = fit_transforms(series, train.freq.season)
    z = [t.transform(s) for t, s in zip(transforms, series)]
    rows = []
    for alpha, phi, history in itertools.product(ALPHAS, PHIS, HISTORIES):
        lines = [theta_line(s[-history * h:] if history else s, alpha, phi, h) for s in z]
        forecast = np.stack([t.inverse(line) for t, line in zip(transforms, lines)])
        rows.append({"subset": subset, "alpha": alpha, "phi": phi, "history": history or "all",
                     "smape": smape(actual, forecast)})
    return pd.DataFrame(rows).sort_values("smape")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subset", nargs="+", default=["all"], choices=[*HORIZONS, "all"])
    ap.add_argument("--top", type=int, default=3, help="settings to print per subset, best first")
    args = ap.parse_args(argv)
    for subset in list(HORIZONS) if "all" in args.subset else args.subset:
        print(scores(subset).head(args.top).round(2).to_string(index=False), flush=True)


if __name__ == "__main__":
    main()
