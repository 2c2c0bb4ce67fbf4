#!/usr/bin/env python3
"""statsforecast's AutoETS on the M1 and M3 subsets, the same splits as benchmarks/accuracy.py, scored the same way.

AutoETS runs in a venv of its own (`python3 -m venv /tmp/sf && /tmp/sf/bin/pip install statsforecast`, as
../shared/bench/peer_intervals.md shows); its forecasts, with its native 80% and 95% intervals, are written as
<out>/<subset>_<split>_autoets.csv and scored with forecast.metrics (and, on the test split, checked against
../shared/bench/score.py).

    python3 benchmarks/vs_autoets.py --peer-python /tmp/sf/bin/python --subset all --out /tmp/ets
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import accuracy  # noqa: E402

from forecast.metrics import evaluate  # noqa: E402

BENCH = accuracy.ROOT.parent / "shared" / "bench"
PEER = """
import sys, pandas as pd
from statsforecast import StatsForecast
from statsforecast.models import AutoETS, Naive
train, out, h, season, freq = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
df = pd.read_csv(train)
if freq == "int":
    freq = 1
else:
    df["ds"] = pd.to_datetime(df["ds"])
# the naive forecast for a series too short for AutoETS ("tiny datasets"), as statsforecast's users do
fc = StatsForecast(models=[AutoETS(season_length=season)], freq=freq, n_jobs=2,
                   fallback_model=Naive()).forecast(df=df, h=h, level=[80, 95])
fc = fc.rename(columns=lambda c: c.replace("AutoETS", "yhat").replace("-lo-", "_lo_").replace("-hi-", "_hi_"))
fc.to_csv(out, index=False)
"""


def run_peer(python: str, subset: str, which: str, out: Path, reuse: bool = False,
             h: int | None = None) -> tuple[dict, Path]:
    fit, scored, freq = accuracy.split(subset, which, h)
    h = h or accuracy.HORIZONS[subset]
    pred = out / f"{subset}_{which}{'' if h == accuracy.HORIZONS[subset] else f'_h{h}'}_autoets.csv"
    seconds = float("nan")
    if not (reuse and pred.is_file()):
        with tempfile.TemporaryDirectory() as tmp:
            train_csv = Path(tmp) / "train.csv"
            fit.to_csv(train_csv, index=False)
            start = time.perf_counter()
            subprocess.run([python, "-c", PEER, str(train_csv), str(pred), str(h), str(freq.season),
                            freq.alias or "int"], check=True)
            seconds = time.perf_counter() - start
    import pandas as pd

    forecast = pd.read_csv(pred)
    forecast["unique_id"] = forecast["unique_id"].astype(str)
    forecast["ds"] = forecast["ds"] if freq.alias is None else pd.to_datetime(forecast["ds"])
    scores = evaluate(fit, scored, forecast, freq.season, levels=(80, 95))
    row = {"subset": subset, "split": which, "model": "autoets", "smape": scores["smape"], "mase": scores["mase"],
           **{k: v for k, v in scores.items() if k.startswith("coverage") or k == "msis"}, "fit_predict_s": seconds}
    if which == "test":
        check = subprocess.run([sys.executable, str(BENCH / "score.py"), "--train",
                                str(accuracy.ROOT / f"data/{subset}_train.csv"), "--test",
                                str(accuracy.ROOT / f"data/{subset}_test.csv"), "--pred", str(pred),
                                "--season", str(freq.season)], check=True, capture_output=True, text=True)
        independent = json.loads(check.stdout)
        row.update(score_py_smape=independent["smape"], score_py_mase=independent["mase"],
                   score_py_msis=independent.get("msis_95"))
    return row, pred


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--peer-python", required=True, help="the python of a venv with statsforecast")
    ap.add_argument("--subset", nargs="+", default=["all"], choices=[*accuracy.HORIZONS, "all", "m1", "m3"])
    ap.add_argument("--split", default="test", choices=["test", "validation"])
    ap.add_argument("--out", type=Path, default=Path(tempfile.mkdtemp(prefix="autoets_")))
    ap.add_argument("--horizon", type=int, help="with --split validation: forecast and score this many points "
                                                 "instead of the official horizon")
    ap.add_argument("--jsonl", type=Path, help="append every result row here as JSON")
    ap.add_argument("--reuse", action="store_true", help="score forecasts already written to --out again")
    args = ap.parse_args(argv)
    if args.horizon and args.split != "validation":
        ap.error("--horizon needs --split validation: the test files hold the official horizons")
    args.out.mkdir(parents=True, exist_ok=True)
    subsets = [s for s in accuracy.HORIZONS
               if "all" in args.subset or s in args.subset or s.split("_")[0] in args.subset]
    for subset in subsets:
        row, _ = run_peer(args.peer_python, subset, args.split, args.out, args.reuse, args.horizon)
        print(json.dumps(row), flush=True)
        if args.jsonl:
            with open(args.jsonl, "a") as log:
                log.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
