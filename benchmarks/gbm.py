"""gbm on the M3 subsets: both direct strategies (one model with the step ahead as a feature, one model per step)
on a validation split carved from the training file (its last horizon), which chooses the default, then on the
official test file; train seconds and the peak of memory per fit.

    python3 benchmarks/gbm.py [--subsets monthly,quarterly,yearly,other]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from forecast import api

DATA = Path(__file__).resolve().parents[1] / "data"
H = {"monthly": 18, "quarterly": 8, "yearly": 6, "other": 8}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--subsets", default="monthly,quarterly,yearly,other")
    parser.add_argument("--tracking-uri", default=f"sqlite:///{tempfile.mkdtemp()}/mlflow.db")
    args = parser.parse_args()
    print("| subset | strategy | validation sMAPE / MASE | test sMAPE / MASE | train s (test fit) |")
    print("|---|---|---|---|---|")
    for subset in args.subsets.split(","):
        train, test = DATA / f"m3_{subset}_train.csv", DATA / f"m3_{subset}_test.csv"
        for strategy in ("step", "per-step"):
            common = dict(experiment=f"gbm_{subset}", tracking_uri=args.tracking_uri, strategy=strategy)
            val = api.backtest(train, "gbm", H[subset], final_fit=False, **common)  # the training file's tail
            start = time.perf_counter()
            scored = api.backtest(train, "gbm", test_path=test, **common)
            total = time.perf_counter() - start
            print(f"| {subset} | {strategy} | {val.metrics['smape']:.3f} / {val.metrics['mase']:.3f} | "
                  f"{scored.metrics['smape']:.3f} / {scored.metrics['mase']:.3f} | {scored.train_seconds:.1f} "
                  f"({total:.0f} s with logging) |", flush=True)


if __name__ == "__main__":
    main()
