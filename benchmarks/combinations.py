#!/usr/bin/env python3
"""Combinations of whole models (what a pipeline's `combine:` makes) scored from the forecasts that
benchmarks/accuracy.py wrote (--out), against their best member, per M3 subset: the means and medians of the member
sets declared here. Run it on the validation split to choose a combination without reading a test file:

    python3 benchmarks/accuracy.py --subset m3 --split validation --models ar gbm rnn lstm gru transformer \
        --threads 1 --out /tmp/v17
    python3 benchmarks/combinations.py /tmp/v17 --split validation
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

import accuracy  # noqa: E402
from combine import load  # noqa: E402

from forecast.data import ID  # noqa: E402
from forecast.metrics import evaluate  # noqa: E402
from forecast.models.combination import combine_values  # noqa: E402

NETS = ["rnn", "lstm", "gru", "transformer"]
CANDIDATES = {  # declared before any was scored
    "mean(gru, transformer, gbm) (the pipelines' combo)": ("mean", ["gru", "transformer", "gbm"]),
    "median(gru, transformer, ar) (combo-median)": ("median", ["gru", "transformer", "ar"]),
    "mean(all six)": ("mean", [*NETS, "ar", "gbm"]),
    "median(all six)": ("median", [*NETS, "ar", "gbm"]),
    "mean(four nets)": ("mean", NETS),
    "median(four nets)": ("median", NETS),
    "mean(gru, transformer)": ("mean", ["gru", "transformer"]),
}
SUBSETS = ("m3_monthly", "m3_quarterly", "m3_yearly", "m3_other")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--split", default="validation", choices=["test", "validation"])
    ap.add_argument("--metric", default="smape", choices=["smape", "mase"])
    args = ap.parse_args(argv)
    rows = []
    for subset in SUBSETS:
        fit, scored, freq = accuracy.split(subset, args.split)
        key = scored[[ID, "ds"]].astype(str)
        forecasts = {}
        for model in {m for _, members in CANDIDATES.values() for m in members}:
            frame = load(args.folder, subset, args.split, model)
            if frame is None:
                raise SystemExit(f"{args.folder}: no {subset}_{args.split}_{model}.csv; run benchmarks/accuracy.py")
            forecasts[model] = key.merge(frame.astype({"ds": str}), on=[ID, "ds"], how="left")["yhat"].to_numpy()

        def score(yhat, fit=fit, scored=scored, season=freq.season):
            return evaluate(fit, scored, scored[[ID, "ds"]].assign(yhat=yhat), season)[args.metric]

        alone = {model: score(yhat) for model, yhat in forecasts.items()}
        for name, (how, members) in CANDIDATES.items():
            value = score(combine_values(np.stack([forecasts[m] for m in members]), how))
            best = min(members, key=alone.get)
            rows.append({"subset": subset, "combination": name, args.metric: value, "best member": best,
                         "its score": alone[best], "margin %": 100 * (value / alone[best] - 1)})
    table = pd.DataFrame(rows)
    with pd.option_context("display.width", 250, "display.max_rows", 100, "display.max_columns", 20,
                           "display.max_colwidth", 60):
        print(table.round(3).to_string(index=False))
        print("\nmargin over the best member, % (negative: the combination beats it):")
        print(table.pivot(index="combination", columns="subset", values="margin %").round(2))


if __name__ == "__main__":
    main()
