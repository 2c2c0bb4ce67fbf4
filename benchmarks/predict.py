#!/usr/bin/env python3
"""Batch-prediction time of a saved model, end to end inside one process (the interpreter's start excluded):
importing forecast and MLflow, loading the model, reading and validating the CSV, forecasting, writing the CSV.

    python3 benchmarks/predict.py runs:/<run_id>/model data/m3_monthly_train.csv --horizon 18 --level 80 95
"""

from __future__ import annotations

import time

START = time.perf_counter()

import argparse  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model_uri")
    ap.add_argument("csv")
    ap.add_argument("--horizon", type=int)
    ap.add_argument("--output", default="/dev/null")
    ap.add_argument("--tracking-uri")
    ap.add_argument("--level", type=float, nargs="*", default=[], help="also forecast these prediction intervals")
    args = ap.parse_args(argv)
    marks = [("start", START)]

    import mlflow.store.tracking.sqlalchemy_store  # noqa: F401  (what a SQLite store needs)
    import torch  # noqa: F401  (what a net's model needs; both imported here to time them apart)

    from forecast import api, tracking

    marks.append(("imports: forecast, MLflow, torch", time.perf_counter()))
    tracking.connect(args.tracking_uri)
    marks.append(("open the MLflow store", time.perf_counter()))
    pyfunc = tracking.load_model(args.model_uri, args.tracking_uri)
    marks.append(("load the model", time.perf_counter()))
    frame = api.predict(args.model_uri, args.csv, args.horizon, tracking_uri=args.tracking_uri, model=pyfunc,
                        levels=args.level)
    marks.append(("read and check the CSV, forecast", time.perf_counter()))
    frame.to_csv(args.output, index=False)
    marks.append(("write the CSV", time.perf_counter()))
    for (_, before), (what, after) in zip(marks, marks[1:]):
        print(f"{what:34} {after - before:6.2f} s")
    series = frame["unique_id"].nunique()
    for what, since in (("end to end, imports included", START), ("end to end after the imports", marks[1][1])):
        total = marks[-1][1] - since
        print(f"{what:34} {total:6.2f} s  ({series} series, {series / total:.0f} series/s)")


if __name__ == "__main__":
    main()
