#!/usr/bin/env python3
"""How long `forecast` takes to load a large long-format CSV, and its peak memory.

    python benchmarks/load_1m.py [--rows 1000000] [--series 1000]

Writes a CSV of `series` daily series with `rows` rows in all (in a temporary folder), loads it with
forecast.data.load_series as `forecast train` does, and prints one JSON line: rows, series, file_mb, seconds,
peak_rss_mb (the whole process, interpreter and libraries included) and baseline_rss_mb (before loading).
"""

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--series", type=int, default=1_000)
    args = ap.parse_args()
    per = args.rows // args.series
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.csv"
        rng = np.random.default_rng(0)
        days = pd.date_range("2000-01-01", periods=per, freq="D").strftime("%Y-%m-%d")
        with open(path, "w") as fh:  # in blocks, so that writing the file does not set the peak
            fh.write("unique_id,ds,y\n")
            for first in range(0, args.series, 50):
                ids = range(first, min(first + 50, args.series))
                block = pd.DataFrame({"unique_id": np.repeat([f"series_{i:04d}" for i in ids], per),
                                      "ds": np.tile(days, len(ids)),
                                      "y": rng.normal(100, 10, per * len(ids)).round(3)})
                block.to_csv(fh, index=False, header=False)
        from forecast.data import load_series

        baseline = rss_mb()
        start = time.perf_counter()
        data = load_series(path)
        seconds = time.perf_counter() - start
        print(json.dumps({"rows": data.n_points, "series": data.n_series,
                          "file_mb": round(path.stat().st_size / 2**20, 1), "seconds": round(seconds, 2),
                          "peak_rss_mb": round(rss_mb(), 1), "baseline_rss_mb": round(baseline, 1)}))


if __name__ == "__main__":
    main()
