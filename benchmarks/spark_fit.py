#!/usr/bin/env python3
"""A per-series model fitted on Spark local[N] and in N processes of this machine (forecast.parallel, what
`--threads N` does) against one process on one core, side by side in one run: the same series (the 1,428 M3
monthly training series replicated under new ids, as `benchmarks/scale.py` makes them), read once, fitted the three
ways to forecast 18 steps, the models' forecasts compared.

    python3 benchmarks/spark_fit.py --series 14280 --model ar --cores 2 --repeat 3

Spark's start (the JVM, and its Python workers importing forecast, numpy and pandas) is timed apart: a first fit
on 1,428 of the series warms the workers, as any earlier job of a long-lived session would have.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core for the single process: BLAS must not spread

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--series", type=int, default=14280)
    ap.add_argument("--model", default="ar")
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--horizon", type=int, default=18)
    ap.add_argument("--folder", default="/tmp/forecast-scale")
    args = ap.parse_args(argv)

    import numpy as np
    import pandas as pd
    import scale

    from forecast import parallel, registry, spark
    from forecast.data import dataset_from_frame

    folder = Path(args.folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = scale.inputs(args.series, folder)
    data = dataset_from_frame(pd.read_parquet(path), path)
    warm = data.df[data.df["unique_id"].isin(data.df["unique_id"].drop_duplicates().iloc[:1428])]

    started = time.perf_counter()
    session = spark.session(f"local[{args.cores}]")
    spark.fit(registry.create(args.model), warm, data.freq, args.horizon, session)
    print(f"Spark local[{args.cores}] started and warmed in {time.perf_counter() - started:.1f} s")

    seconds = {"one process, one core": [], f"{args.cores} processes": [], f"Spark local[{args.cores}]": []}
    fits = [lambda: registry.create(args.model).fit(data.df, data.freq, args.horizon),
            lambda: parallel.fit(registry.create(args.model), data.df, data.freq, args.horizon, args.cores),
            lambda: spark.fit(registry.create(args.model), data.df, data.freq, args.horizon, session)]
    for _ in range(args.repeat):
        models = []
        for timings, fit in zip(seconds.values(), fits):
            start = time.perf_counter()
            models.append(fit())
            timings.append(time.perf_counter() - start)
    session.stop()
    forecasts = [m.predict(args.horizon, data.df, levels=(80, 95)) for m in models]
    values = forecasts[0].columns[2:]
    a = forecasts[0][values].to_numpy()
    difference = max(float(np.max(np.abs(a - b[values].to_numpy()) / np.maximum(np.abs(a), 1e-12)))
                     for b in forecasts[1:])
    best = {name: min(timings) for name, timings in seconds.items()}
    one = best["one process, one core"]
    print(f"{args.model}, {data.n_series} series ({data.n_points} points), horizon {args.horizon}, best of "
          f"{args.repeat}:")
    for name, timings in seconds.items():
        print(f"  {name:<22} {best[name]:6.2f} s  {one / best[name]:5.2f}x  (all: "
              f"{', '.join(f'{s:.2f}' for s in timings)})")
    print(f"  forecasts and bounds: max relative difference to one process {difference:.1e}")


if __name__ == "__main__":
    main()
