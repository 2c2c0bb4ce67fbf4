#!/usr/bin/env python3
"""How the spread of pooled conformal residuals should grow with the step, on data no benchmark scores. With few
series (one: AirPassengers, electricity) a calibration has under 50 residuals at some steps and pools them all,
each divided by step ** b and multiplied back (forecast.intervals.Calibration). This fits each model once per
rolling origin and forecasts the next horizon with b = 0.5 (a random walk's square root) and with b estimated from
the residuals (forecast.intervals.growth_power), printing coverage and MSIS of both:

    python3 benchmarks/pooled_growth.py --data air --models rnn lstm gru transformer gbm
    python3 benchmarks/pooled_growth.py --data electricity --models gru --days 7

`air`: AirPassengers less its last 36 months (the pipeline's backtest), 3 origins a year apart, h = 12, refit per
origin. `electricity`: the demand file less the pipeline's benchmark fortnight, fitted once before the last DAYS
days and forecast from each of them (h = 48, temperature, working day and calendar features), as the pipeline does.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

import covariate_calibration as electricity  # noqa: E402

from forecast import api, registry  # noqa: E402
from forecast.covariates import next_rows  # noqa: E402
from forecast.data import TIME  # noqa: E402
from forecast.intervals import Calibration, growth_power  # noqa: E402
from forecast.metrics import evaluate  # noqa: E402

LEVELS = (80, 95)
KEYS = ("coverage_80", "coverage_95", "msis_95")
SETTINGS = {"air": {}, "electricity": electricity.PARAMS}  # as the pipelines configure them (single nets)


def origins(name: str, days: int):
    """(data, h, [(history, truth)] per origin, fitted once?) of a data set, its benchmark's test part removed."""
    if name == "air":
        data = api.load(electricity.ROOT / "data" / "air_passengers.csv")
        df, h = data.df.iloc[:-36].reset_index(drop=True), 12
        return data, h, [(df.iloc[:len(df) - k * h], df.iloc[len(df) - k * h:len(df) - (k - 1) * h])
                         for k in (3, 2, 1)], False
    data, h = electricity.load(), electricity.H
    df = data.df.iloc[:-electricity.BENCHMARK_DAYS * h].reset_index(drop=True)
    return data, h, [(df.iloc[:len(df) - k * h], next_rows(df, df.iloc[:len(df) - k * h], h))
                     for k in range(days, 0, -1)], True


def run(name: str, models, days: int) -> pd.DataFrame:
    data, h, cuts, once = origins(name, days)
    rows = []
    for model in models:
        params = SETTINGS[name].get("gbm" if model == "gbm" else "net", {})
        fitted = None
        for history, truth in cuts:
            if fitted is None or not once:
                fitted = registry.create(model, **params).fit(history, data.freq, h, covariates=data.covariates)
                residuals = fitted.residuals_
                print(f"{model}: fitted on {len(history)} points, b = {growth_power(residuals):.3f}", flush=True)
            for label, power in (("sqrt", 0.5), ("estimated", None)):
                fitted.calibration_ = Calibration.from_residuals(residuals, "validation", power=power)
                bands = fitted.predict(h, history, levels=LEVELS, future=truth if once else None)
                scores = evaluate(history, truth, bands, data.freq.season, levels=LEVELS)
                rows.append({"model": model, "origin": str(truth[TIME].iloc[0]), "growth": label,
                             **{k: scores[k] for k in KEYS}})
    return pd.DataFrame(rows)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", choices=sorted(SETTINGS), default="air")
    ap.add_argument("--models", nargs="+", default=["rnn", "lstm", "gru", "transformer", "gbm"])
    ap.add_argument("--days", type=int, default=7, help="electricity: origins, the last DAYS days before the fortnight")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    table = run(args.data, args.models, args.days)
    means = table.groupby(["model", "growth"])[list(KEYS)].mean()
    means["coverage_error"] = (means.coverage_80 - 80).abs() + (means.coverage_95 - 95).abs()
    with pd.option_context("display.width", 200):
        print(means.round(3))
        print(means.groupby("growth").mean().round(3))


if __name__ == "__main__":
    main()
