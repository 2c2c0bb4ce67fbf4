"""A backtest pipeline's validation blocks: the same pipeline on its data less the benchmark's origins, so that a
choice is made on the blocks of origins before the benchmark's, never on the benchmark's own.

    python3 benchmarks/pipeline_validation.py pipelines/electricity.yaml --blocks 2 --labels ar,gru,lstm --run

Block 1 is the file less the points after its backtest's first origin ((folds - 1) x step + horizon: for the
electricity pipeline its last 14 days, so the origins are 4-17 December), block 2 the file less twice as many
(20 November-3 December), and so on. Each block gets its data file and a copy of the pipeline (only `--labels`,
if given) under `--out`; `--run` runs them one after the other (`forecast run ... --threads 1`, a store of their
own under `--out`), each printing its leaderboard.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pandas as pd
import yaml


def blocks(pipeline: Path, count: int, labels: list[str] | None, out: Path) -> list[Path]:
    """Write each block's data file and pipeline copy; return the pipeline copies."""
    doc = yaml.safe_load(pipeline.read_text())
    data = doc["data"]
    if data.get("test") or not doc.get("backtest"):
        sys.exit(f"{pipeline}: not a backtest pipeline (it scores a test file or a single holdout); validate on the "
                 "training file's last horizons instead: benchmarks/accuracy.py --split validation")
    source = (pipeline.parent / data["path"]).resolve()
    frame = pd.read_csv(source)
    id_col = data.get("id_col")
    backtest = doc["backtest"]
    folds, step = int(backtest.get("folds", 1)), int(backtest.get("step", doc["horizon"]))
    scored = (folds - 1) * step + int(doc["horizon"])  # the points after the first origin
    models = [m for m in doc["models"] if not labels or m.get("label", m["model"]) in labels]
    missing = sorted(set(labels or ()) - {m.get("label", m["model"]) for m in models})
    if missing:
        sys.exit(f"{pipeline}: no model labelled {', '.join(missing)}")
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for block in range(1, count + 1):
        cut = block * scored
        if id_col:  # each series less its last `cut` rows (the file is in time order within a series)
            left = frame.groupby(id_col, sort=False).cumcount(ascending=False)
            part = frame[left.to_numpy() >= cut]
        else:
            part = frame.iloc[:len(frame) - cut]
        path = out / f"{source.stem}_less_{cut}.csv"
        part.to_csv(path, index=False)
        copy = dict(doc, name=f"{doc['name']}_validation_{block}", data=dict(data, path=str(path)), models=models)
        target = out / f"{pipeline.stem}_validation_{block}.yaml"
        target.write_text(yaml.safe_dump(copy, sort_keys=False))
        written.append(target)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pipeline", type=Path)
    parser.add_argument("--blocks", type=int, default=2)
    parser.add_argument("--labels", help="comma-separated labels of the pipeline's models (default: all)")
    parser.add_argument("--out", type=Path, default=Path("/tmp/pipeline_validation"))
    parser.add_argument("--run", action="store_true", help="run the blocks' pipelines (else only write them)")
    args = parser.parse_args()
    labels = [x.strip() for x in args.labels.split(",")] if args.labels else None
    for path in blocks(args.pipeline, args.blocks, labels, args.out):
        command = ["forecast", "run", str(path), "--threads", "1",
                   "--tracking-uri", f"sqlite:///{(args.out / 'mlflow.db').resolve()}"]
        print(" ".join(command), flush=True)
        if args.run:
            subprocess.run(command, check=True)


if __name__ == "__main__":
    main()
