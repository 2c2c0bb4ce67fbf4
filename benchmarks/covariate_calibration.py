#!/usr/bin/env python3
"""The calibration of a saved model with covariates, on electricity days no benchmark reads (the file less the
pipeline's benchmark fortnight): per day-ahead origin, the fit `forecast train` scores (the data less its last day),
the fit it saves (all the data to the origin) inheriting that one's calibration, and the saved fit's bands of the
next day with the scored fit's validation window alone against that window pooled with its holdout (what the saved
model now uses), each with the pooled steps' spread growing as the square root of the step or as estimated
(forecast.intervals.growth_power).

    python3 benchmarks/covariate_calibration.py --model gru --days 7
"""

from __future__ import annotations

import argparse
from itertools import product
from pathlib import Path

import numpy as np
import pandas as pd

from forecast import api, registry
from forecast.covariates import next_rows
from forecast.data import TIME
from forecast.intervals import Calibration
from forecast.metrics import evaluate

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "electricity_demand_vic_2014.csv"
H, BENCHMARK_DAYS = 48, 14
GROWTH = {"sqrt": 0.5, "estimated": None}  # how pooled steps' spread grows (forecast.intervals.growth_power)
PARAMS = {  # as pipelines/electricity.yaml configures them, single nets
    "gbm": {"lookback": 96},
    "net": {"lookback": 96, "epochs": 10, "patience": 4, "combine": "ar", "diagnostics": False},
}


def load():
    """The electricity data with the pipeline's covariates: temperature, the working day, calendar features."""
    return api.load(DATA, time_col="timestamp", target_col="demand_gw", futr="temperature,workday", calendar=True)


def run(name: str, days: int) -> pd.DataFrame:
    data = load()
    df = data.df.iloc[:-BENCHMARK_DAYS * H].reset_index(drop=True)
    params = PARAMS["gbm" if name == "gbm" else "net"]
    rows = []
    for day in range(days, 0, -1):
        cut = len(df) - day * H
        upto = df.iloc[:cut]
        scored = registry.create(name, **params).fit(df.iloc[:cut - H], data.freq, H, covariates=data.covariates)
        saved = registry.create(name, **{**params, **scored.final_settings()}).fit(upto, data.freq, H,
                                                                                    covariates=data.covariates)
        saved.inherit(scored)
        truth = next_rows(df, upto, H)
        residuals = {"validation": scored.residuals_,
                     "pooled": np.concatenate([scored.residuals_, saved.holdout_residuals_])}
        kept = saved.calibration_
        for (label, errors), (growth, power) in product(residuals.items(), GROWTH.items()):
            saved.calibration_ = Calibration.from_residuals(errors, label, power=power)
            bands = saved.predict(H, upto, levels=(80, 95), future=truth)
            scores = evaluate(upto, truth, bands, data.freq.season, levels=(80, 95))  # MSIS over the lag-48 MAE
            rows.append({"origin": str(upto[TIME].iloc[-1]), "calibration": label, "growth": growth,
                         **{k: scores[k] for k in ("coverage_80", "coverage_95", "msis_80", "msis_95")}})
            print(rows[-1], flush=True)
        saved.calibration_ = kept
    return pd.DataFrame(rows)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="gru")
    ap.add_argument("--days", type=int, default=7, help="origins: the last DAYS days before the benchmark fortnight")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    table = run(args.model, args.days)
    print(table.groupby(["calibration", "growth"])[["coverage_80", "coverage_95", "msis_80", "msis_95"]].mean()
          .round(3))


if __name__ == "__main__":
    main()
