#!/usr/bin/env python3
"""Scores combinations of forecasts that benchmarks/accuracy.py wrote (--out): each net alone, each net averaged
with a statistical forecast at several weights, and the median of the nets, per subset and split. The statistical
forecast is AR's (read from the folder), the Theta line's in the nets' space (computed here:
forecast.models.partner.theta_lines), or the mean of the two (`--with ar+theta`), as the nets' partner.

    python3 benchmarks/accuracy.py --subset all --split validation --models ar gru lstm --set combine=none \
        --out /tmp/val
    python3 benchmarks/combine.py /tmp/val --split validation --with ar theta ar+theta
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

import accuracy  # noqa: E402

from forecast.data import ID, TARGET  # noqa: E402
from forecast.metrics import evaluate  # noqa: E402
from forecast.models.partner import partner_forecast, theta_lines  # noqa: E402
from forecast.transforms import Stacked, fit_transforms  # noqa: E402

WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)  # the net's weight; the statistical forecast gets the rest


def load(folder: Path, subset: str, which: str, model: str) -> pd.DataFrame | None:
    path = folder / f"{subset}_{which}_{model}.csv"
    if not path.is_file():
        return None
    return pd.read_csv(path, dtype={"unique_id": str})


def theta(fit: pd.DataFrame, key: pd.DataFrame, season: int, h: int) -> np.ndarray:
    """The Theta lines of the series of `fit` in the nets' space, in the order of `key`'s rows."""
    ids = list(dict.fromkeys(key[ID]))
    groups = dict(tuple(fit.groupby(ID)))
    series = [groups[i][TARGET].to_numpy(float) for i in ids]
    transforms = fit_transforms(series, season)
    return Stacked(transforms).inverse(theta_lines([t.transform(s) for t, s in zip(transforms, series)], h)).ravel()


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--split", default="validation", choices=["test", "validation"])
    ap.add_argument("--with", dest="partners", nargs="+", default=["ar"], choices=["ar", "theta", "ar+theta"],
                    help="the statistical forecasts to combine with")
    ap.add_argument("--models", nargs="+", default=list(accuracy.NETS))
    args = ap.parse_args(argv)
    rows = []
    for subset, h in accuracy.HORIZONS.items():
        ar = load(args.folder, subset, args.split, "ar")
        if ar is None:
            continue
        fit, scored, freq = accuracy.split(subset, args.split)
        key = scored[[ID, "ds"]].astype(str)
        ar = key.merge(ar.astype({"ds": str}), on=[ID, "ds"], how="left")["yhat"].to_numpy()
        line = theta(fit, key, freq.season, h)
        nets = {}
        for model in args.models:
            frame = load(args.folder, subset, args.split, model)
            if frame is not None:
                nets[model] = key.merge(frame.astype({"ds": str}), on=[ID, "ds"], how="left")["yhat"].to_numpy()
        if len(nets) > 1:
            nets["median"] = np.median(np.stack(list(nets.values())), axis=0)
        for kind in args.partners:
            partner = partner_forecast(kind, ar, line)
            for model, yhat in nets.items():
                for w in WEIGHTS:
                    combined = scored[[ID, "ds"]].assign(yhat=w * yhat + (1 - w) * partner)
                    rows.append({"subset": subset, "model": model, "partner": kind, "weight": w,
                                 **evaluate(fit, scored, combined, freq.season)})
    table = pd.DataFrame(rows)
    best = table.loc[table.groupby(["subset", "model", "partner"])["mase"].idxmin()]
    with pd.option_context("display.width", 250, "display.max_rows", 500, "display.max_columns", 20):
        print(table.pivot_table(index=["partner", "model", "weight"], columns="subset", values="mase").round(3))
        print("best weight per subset, model and partner (MASE / weight):")
        print(best.assign(cell=best["mase"].map("{:.4f}".format) + " / " + best["weight"].map("{:g}".format))
              .pivot_table(index=["model", "partner"], columns="subset", values="cell", aggfunc="first"))


if __name__ == "__main__":
    main()
