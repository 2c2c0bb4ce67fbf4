#!/usr/bin/env python3
"""Scores combinations of forecasts that benchmarks/accuracy.py wrote (--out): each net alone, each net averaged
with a statistical forecast at several weights, and the median of the nets, per subset and split.

    python3 benchmarks/accuracy.py --subset all --split validation --models ar gru lstm --out /tmp/val
    python3 benchmarks/combine.py /tmp/val --split validation --with ar
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

import accuracy  # noqa: E402

from forecast.metrics import evaluate  # noqa: E402

WEIGHTS = (0.0, 0.25, 0.5, 0.75, 1.0)  # the net's weight; the statistical forecast gets the rest


def load(folder: Path, subset: str, which: str, model: str) -> pd.DataFrame | None:
    path = folder / f"{subset}_{which}_{model}.csv"
    if not path.is_file():
        return None
    return pd.read_csv(path, dtype={"unique_id": str})


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--split", default="validation", choices=["test", "validation"])
    ap.add_argument("--with", dest="partner", default="ar", help="the statistical forecast to combine with")
    ap.add_argument("--models", nargs="+", default=list(accuracy.NETS))
    args = ap.parse_args(argv)
    rows = []
    for subset in accuracy.HORIZONS:
        partner = load(args.folder, subset, args.split, args.partner)
        if partner is None:
            continue
        fit, scored, freq = accuracy.split(subset, args.split)
        key = scored[["unique_id", "ds"]].astype(str)
        base = key.merge(partner.astype({"ds": str}), on=["unique_id", "ds"], how="left")
        nets = {}
        for model in args.models:
            frame = load(args.folder, subset, args.split, model)
            if frame is not None:
                joined = key.merge(frame.astype({"ds": str}), on=["unique_id", "ds"], how="left")
                nets[model] = joined["yhat"].to_numpy()
        for model, yhat in nets.items():
            for w in WEIGHTS:
                combined = scored[["unique_id", "ds"]].assign(yhat=w * yhat + (1 - w) * base["yhat"].to_numpy())
                scores = evaluate(fit, scored, combined, freq.season)
                rows.append({"subset": subset, "model": model, "weight": w, **scores})
        if len(nets) > 1:
            median = np.median(np.stack(list(nets.values())), axis=0)
            for w in WEIGHTS:
                combined = scored[["unique_id", "ds"]].assign(yhat=w * median + (1 - w) * base["yhat"].to_numpy())
                rows.append({"subset": subset, "model": "median", "weight": w,
                             **evaluate(fit, scored, combined, freq.season)})
    table = pd.DataFrame(rows)
    with pd.option_context("display.width", 250, "display.max_rows", 500, "display.max_columns", 20):
        print(table.pivot_table(index=["model", "weight"], columns="subset", values="mase").round(3))
        print(table.pivot_table(index=["model", "weight"], columns="subset", values="smape").round(2))


if __name__ == "__main__":
    main()
