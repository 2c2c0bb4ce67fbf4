#!/usr/bin/env python3
"""Time to accuracy against NeuralForecast, side by side in one run, on M3 monthly (official split).

Runs NeuralForecast's model through ../shared/bench/peer_neuralforecast.py in its own venv (its docstring says
how to install it), then ours in this process, and scores both forecasts with ../shared/bench/score.py.

    python3 benchmarks/vs_neuralforecast.py --peer-python /tmp/peer-venv/bin/python --model gru --set epochs=3
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT.parent / "shared" / "bench"
sys.path.insert(0, str(Path(__file__).resolve().parent))

import accuracy  # noqa: E402

PEER_NAMES = {"gru": "GRU", "lstm": "LSTM", "rnn": "RNN", "transformer": "VanillaTransformer"}


def score(pred: Path) -> dict:
    out = subprocess.run([sys.executable, str(BENCH / "score.py"), "--train", str(ROOT / "data/m3_monthly_train.csv"),
                          "--test", str(ROOT / "data/m3_monthly_test.csv"), "--pred", str(pred), "--season", "12"],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--peer-python", required=True, help="the python of NeuralForecast's venv")
    ap.add_argument("--model", default="gru", choices=list(PEER_NAMES))
    ap.add_argument("--peer-steps", type=int, default=500)
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="our model's hyperparameters")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    params = {k: accuracy.parse_value(v) for k, v in (item.split("=", 1) for item in args.set)}
    out = Path(tempfile.mkdtemp(prefix="vs_nf_"))

    peer_csv = out / "peer.csv"
    start = time.perf_counter()
    done = subprocess.run([args.peer_python, str(BENCH / "peer_neuralforecast.py"),
                           "--train", str(ROOT / "data/m3_monthly_train.csv"), "--horizon", "18",
                           "--model", PEER_NAMES[args.model], "--steps", str(args.peer_steps),
                           "--output", str(peer_csv)], check=True, capture_output=True, text=True)
    peer_wall = time.perf_counter() - start
    peer = json.loads(done.stdout.strip().splitlines()[-1])

    torch.set_num_threads(args.threads)
    row = accuracy.run("m3_monthly", args.model, params, out)
    ours = score(out / f"m3_monthly_test_{args.model}.csv")
    theirs = score(peer_csv)
    ours_s = row["train_s"] + row["predict_s"]
    print(f"{'':28} {'sMAPE':>7} {'MASE':>6} {'fit s':>7} {'fit+predict s':>14} {'steps/s':>8}")
    print(f"{'NeuralForecast ' + PEER_NAMES[args.model]:28} {theirs['smape']:7.2f} {theirs['mase']:6.3f} "
          f"{peer['train_seconds']:7.1f} {peer_wall:14.1f} {peer['steps_per_second']:8.2f}  (process wall)")
    print(f"{'forecast ' + args.model + ' ' + json.dumps(params):28} {ours['smape']:7.2f} {ours['mase']:6.3f} "
          f"{row['train_s']:7.1f} {ours_s:14.1f} {row['steps_per_s']:8.2f}")
    print(f"time ratio (ours / theirs, fit): {row['train_s'] / peer['train_seconds']:.2f}; "
          f"fit+predict vs their process wall: {ours_s / peer_wall:.2f}")


if __name__ == "__main__":
    main()
