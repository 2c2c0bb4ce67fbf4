#!/usr/bin/env python3
"""Crash test: N trainings into one store killed with SIGKILL at random moments (before their run exists, mid-epoch,
while logging the model), then one `forecast compare`, SQLite's integrity check, and every killed run resumed and
compared with an uninterrupted twin.

    python3 benchmarks/crash.py --kills 20 --parallel 2
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data" / "air_passengers.csv"


def command(*extra: str) -> list[str]:
    return [sys.executable, "-m", "forecast", "train", str(DATA), "--model", "lstm", "--hidden-size", "8",
            "--layers", "1", "--epochs", "60", "--patience", "60", "--checkpoint-every", "0", "--seed", "3",
            "--quiet", *extra]


def model_line(output: str) -> str:
    return next(line.split()[1] for line in output.splitlines() if line.startswith("model:")).split("/")[1]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--parallel", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    from mlflow.tracking import MlflowClient

    rng = random.Random(args.seed)
    folder = Path(tempfile.mkdtemp(prefix="forecast-crash-"))
    db = folder / "mlflow.db"
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{db}", "FORECAST_THREADS": "1"}
    start = time.perf_counter()
    twin = subprocess.run(command(), env=env, cwd=folder, capture_output=True, text=True, check=True)
    twin_seconds = time.perf_counter() - start
    twin_id = model_line(twin.stdout)
    print(f"twin: run {twin_id}, {twin_seconds:.1f} s uninterrupted")
    delays = [rng.uniform(0.0, twin_seconds) for _ in range(args.kills)]
    running: list[tuple[subprocess.Popen, float, float]] = []
    for delay in delays:
        while len(running) >= args.parallel:
            running = _reap(running)
        proc = subprocess.Popen(command(), env=env, cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        running.append((proc, time.perf_counter(), delay))
    while running:
        running = _reap(running)
    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    experiment = client.get_experiment_by_name("air_passengers").experiment_id
    compare = subprocess.run([sys.executable, "-m", "forecast", "compare", "--format", "csv"], env=env, cwd=folder,
                             capture_output=True, text=True, check=True)
    runs = [r for r in client.search_runs([experiment], max_results=1000) if r.info.run_id != twin_id
            and "forecast.resumed_from" not in r.data.tags]
    states: dict[str, int] = {}
    for r in runs:
        key = r.info.status + (" (orphaned)" if "forecast.orphaned" in r.data.tags else "")
        states[key] = states.get(key, 0) + 1
    survived = states.get("FINISHED", 0)
    integrity = sqlite3.connect(db).execute("PRAGMA integrity_check").fetchone()[0]
    print(f"{args.kills} trainings killed at uniform random moments of 0-{twin_seconds:.0f} s, {args.parallel} at once:"
          f" {len(runs)} runs created ({args.kills - len(runs)} killed before their run existed)")
    print(f"after one `forecast compare`: {states}; RUNNING in compare's table: {compare.stdout.count('RUNNING')}")
    print(f"PRAGMA integrity_check: {integrity}")
    twin_metrics = client.get_run(twin_id).data.metrics
    equal = resumed = unresumable = 0
    for r in runs:
        if r.info.status == "FINISHED":
            equal += all(r.data.metrics.get(k) == twin_metrics[k] for k in ("mae", "mase", "smape"))
            continue
        out = subprocess.run(command("--resume", r.info.run_id), env=env, cwd=folder, capture_output=True, text=True)
        if out.returncode:
            unresumable += 1
            print(f"  {r.info.run_id}: not resumed: {out.stderr.strip().splitlines()[-1]}")
            continue
        resumed += 1
        new = client.get_run(model_line(out.stdout)).data.metrics
        equal += all(new.get(k) == twin_metrics[k] for k in ("mae", "mase", "smape"))
    print(f"resumed {resumed}, not resumable {unresumable}, finished before the kill {survived}; "
          f"equal to the twin (mae, mase, smape bit for bit): {equal} of {resumed + survived}")


def _reap(running):
    """Kill each process whose moment has come; keep the others."""
    time.sleep(0.05)
    left = []
    for proc, started, delay in running:
        if time.perf_counter() - started >= delay or proc.poll() is not None:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        else:
            left.append((proc, started, delay))
    return left


if __name__ == "__main__":
    main()
