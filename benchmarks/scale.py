#!/usr/bin/env python3
"""Batch prediction at scale: a saved model over the 1,428 M3 monthly series replicated under new ids, in one
process per size (seconds after the imports and the model load, series per second, peak RSS), and optionally on
Spark local[N] beside it.

    python3 benchmarks/scale.py MODEL_URI [MODEL_URI ...] --sizes 1428 14280 142800 --spark 142800 --threads 1
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "data" / "m3_monthly_train.csv"


def inputs(size: int, folder: Path) -> Path:
    """The M3 monthly training series replicated under new ids up to `size` series, as Parquet (written copy by
    copy: a million series fit in memory only as a file)."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = folder / f"m3_x{size}.parquet"
    if not path.exists():
        base = pd.read_csv(SOURCE)
        ids = base["unique_id"].drop_duplicates()
        partial = path.with_suffix(".partial")
        with pq.ParquetWriter(partial, pa.Table.from_pandas(base.iloc[:0], preserve_index=False).schema) as out:
            for k in range(-(-size // len(ids))):
                part = base[base["unique_id"].isin(ids.iloc[:size - k * len(ids)])]
                out.write_table(pa.Table.from_pandas(part.assign(unique_id=part["unique_id"] + f"_{k}"),
                                                     preserve_index=False))
        partial.replace(path)
    return path


def child(model_uri: str, path: str, horizon: int, engine: str, threads: int) -> None:
    """One measurement, in its own process: prints a JSON line."""
    os.environ["OMP_NUM_THREADS"] = str(threads)
    start = time.perf_counter()
    import torch

    torch.set_num_threads(threads)
    from forecast import api, tracking
    from forecast.data import TableWriter

    model = tracking.load_model(model_uri)
    ready = time.perf_counter()
    if engine == "spark":
        from forecast import spark

        session = spark.session(f"local[{threads}]")
        session.range(1).count()  # the JVM and a first task: Spark's start, timed apart
        ready = time.perf_counter()
        chunks = [spark.predict_file(model_uri, path, horizon)]
    else:
        chunks = api.predict_chunks(model_uri, path, horizon, model=model)
    with TableWriter(Path(path).with_name(f"forecasts_{engine}_{Path(path).stem}.parquet")) as out:
        for frame in chunks:  # written as they come, as `forecast predict -o x.parquet` does
            out.write(frame)
    done = time.perf_counter()
    if engine == "spark":
        session.stop()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(json.dumps({"setup_s": ready - start, "predict_s": done - ready, "rows": out.rows, "series": out.series,
                      "peak_gib": peak}))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+")
    ap.add_argument("--sizes", type=int, nargs="+", default=[1428, 14280, 142800])
    ap.add_argument("--spark", type=int, nargs="*", default=[], help="sizes to run on Spark local[threads] too")
    ap.add_argument("--horizon", type=int, default=18)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--folder", default="/tmp/forecast-scale")
    ap.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        model_uri, path, engine, threads = args.child
        return child(model_uri, path, args.horizon, engine, int(threads))
    folder = Path(args.folder)
    folder.mkdir(parents=True, exist_ok=True)
    print(f"{'model':<44} {'engine':<7} {'series':>9} {'predict s':>10} {'series/s':>10} {'peak GiB':>9}")
    for uri in args.models:
        for size in args.sizes:
            runs = [("local", size)] + ([("spark", size)] if size in args.spark else [])
            for engine, n in runs:
                path = inputs(n, folder)
                out = subprocess.run([sys.executable, __file__, uri, "--child", uri, str(path), engine,
                                      str(args.threads), "--horizon", str(args.horizon)],
                                     capture_output=True, text=True)
                if out.returncode:
                    print(f"{uri:<44} {engine:<7} {n:>9} failed: {out.stderr.strip().splitlines()[-1]}")
                    continue
                r = json.loads(out.stdout.strip().splitlines()[-1])
                print(f"{uri:<44} {engine:<7} {r['series']:>9} {r['predict_s']:>10.2f} "
                      f"{r['series'] / r['predict_s']:>10.0f} {r['peak_gib']:>9.2f}", flush=True)
            if len(runs) == 2:
                print(f"{'':<44} spark vs local: max relative difference {difference(path):.1e}")


def difference(path: Path) -> float:
    """The largest relative difference between the Spark and the single-process forecasts of one input."""
    import numpy as np
    import pandas as pd

    local, spark = (pd.read_parquet(path.with_name(f"forecasts_{e}_{path.stem}.parquet")) for e in ("local", "spark"))
    keys = ["unique_id", "ds"]
    both = local.merge(spark, on=keys, suffixes=("", "_spark"), validate="one_to_one")
    if len(both) != len(local) or len(both) != len(spark):
        return float("inf")
    a, b = both["yhat"].to_numpy(), both["yhat_spark"].to_numpy()
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(a), 1e-12)))


if __name__ == "__main__":
    main()
