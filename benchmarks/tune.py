"""`forecast tune` on the M3 subsets, the search seeing only the official training file (validation folds before
its end), the best configuration then scored on the official test file.

    python3 benchmarks/tune.py --subsets quarterly,yearly,monthly --model gru --timeout 20m,10m,10m

Prints per subset: the budget used, the trials (finished / pruned), the best validation sMAPE, and the test-file
sMAPE and MASE of the best configuration; the forecasts go to tune_<subset>_forecasts.csv for bench/score.py.
With `--split validation` no test file is read: the search sees the training file less its last horizon, and the
best configuration is scored on that horizon (a nested validation, for choices about the tuner itself).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from forecast import tuning

DATA = Path(__file__).resolve().parents[1] / "data"
HORIZONS = {"yearly": 6, "quarterly": 8, "monthly": 18, "other": 8}  # the official ones (the test files')


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--subsets", default="quarterly,yearly,monthly")
    parser.add_argument("--model", default="gru")
    parser.add_argument("--timeout", default="20m", help="one budget, or one per subset: 20m,10m,10m")
    parser.add_argument("--trials", type=int, default=500)
    parser.add_argument("--folds", type=int, default=None, help="default: forecast tune's (tuning.FOLDS)")
    parser.add_argument("--top", type=int, default=None, help="the final model: the mean of the best TOP "
                                                              "(default: forecast tune's, tuning.TOP)")
    parser.add_argument("--tracking-uri", default=None)
    parser.add_argument("--split", choices=["test", "validation"], default="test")
    args = parser.parse_args()
    rows = []
    subsets = args.subsets.split(",")
    budgets = args.timeout.split(",") * (len(subsets) if "," not in args.timeout else 1)
    for subset, budget in zip(subsets, budgets):
        train, test = DATA / f"m3_{subset}_train.csv", DATA / f"m3_{subset}_test.csv"
        test = test if args.split == "test" else None  # validation: the holdout is the file's last horizon
        start = time.perf_counter()
        result = tuning.tune(train, args.model, HORIZONS[subset], trials=args.trials, timeout=budget, folds=args.folds,
                             top=args.top, test_path=test, experiment=f"tune_m3_{subset}",
                             tracking_uri=args.tracking_uri, echo=lambda line: print(line, flush=True))
        seconds = time.perf_counter() - start
        result.final.forecast.to_csv(f"tune_{subset}_forecasts.csv", index=False)
        states = result.trials["state"].value_counts().to_dict()
        rows.append((f"{subset} ({budget})", seconds, states.get("COMPLETE", 0), states.get("PRUNED", 0),
                     result.best_value, result.final.metrics["smape"], result.final.metrics["mase"],
                     len(result.final_params), result.best_params))
    scored = "test" if args.split == "test" else "holdout"
    print(f"\n| subset | seconds (search + final fit) | trials finished / pruned | best validation sMAPE | {scored} "
          f"sMAPE | {scored} MASE | configurations in the final model | best settings |")
    print("|---|---|---|---|---|---|---|---|")
    for subset, seconds, done, pruned, value, smape, mase, top, best in rows:
        print(f"| {subset} | {seconds:.0f} | {done} / {pruned} | {value:.3f} | {smape:.3f} | {mase:.3f} | {top} | "
              f"{best} |")


if __name__ == "__main__":
    main()
