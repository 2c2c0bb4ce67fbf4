#!/usr/bin/env python3
"""Runs benchmarks/accuracy.py configurations in parallel, one torch thread per process, until a deadline.

Each job is (subset, model, params); results go to OUT/results.jsonl as they finish and every job's forecast
matrix to OUT/forecasts.npz (key: the job's index), so that ensembles can be scored afterwards.

    python3 benchmarks/sweep.py jobs.json OUT --workers 15 --deadline 500
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def work(job):
    import torch

    torch.set_num_threads(1)
    import accuracy

    index, subset, model, params = job
    try:
        row, yhat = accuracy.run(subset, model, dict(params), None, return_matrix=True)
        return index, {**row, "params": params, "job": index}, yhat
    except Exception as exc:  # a failed configuration is a result too
        return index, {"subset": subset, "model": model, "params": params, "job": index, "error": repr(exc)}, None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("jobs", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--workers", type=int, default=mp.cpu_count())
    ap.add_argument("--deadline", type=float, default=480)
    args = ap.parse_args()
    jobs = [(i, *job) for i, job in enumerate(json.loads(args.jobs.read_text()))]
    args.out.mkdir(parents=True, exist_ok=True)
    start, matrices = time.time(), {}
    pool = mp.get_context("fork").Pool(args.workers, maxtasksperchild=1)
    results = pool.imap_unordered(work, jobs)
    with open(args.out / "results.jsonl", "w") as log:
        for _ in jobs:
            left = args.deadline - (time.time() - start)
            if left <= 0:
                break
            try:
                index, row, yhat = results.next(timeout=left)
            except mp.TimeoutError:
                break
            log.write(json.dumps(row) + "\n")
            log.flush()
            print(json.dumps(row), flush=True)
            if yhat is not None:
                matrices[str(index)] = yhat.astype(np.float32)
    pool.terminate()
    np.savez_compressed(args.out / "forecasts.npz", **matrices)
    print(f"{len(matrices)} of {len(jobs)} jobs in {time.time() - start:.0f} s")


if __name__ == "__main__":
    main()
