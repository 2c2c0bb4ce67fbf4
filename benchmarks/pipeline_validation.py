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

from forecast.errors import ForecastError
from forecast.pipeline import load_pipeline


def blocks(path: Path, count: int, labels: str | None, out: Path) -> list[Path]:
    """Write each block's data file and pipeline copy; return the pipeline copies."""
    pipeline = load_pipeline(path)  # checked as `forecast run` checks it: the data path resolved, the labels
    if "test" in pipeline.data or pipeline.horizon is None:
        sys.exit(f"{path}: not a backtest with a horizon of its own (it scores a test file, or takes the data's "
                 "default horizon); validate on the training file's last horizons: benchmarks/accuracy.py --split "
                 "validation")
    every = [m.label for m in pipeline.models + pipeline.combine]
    kept = set(labels.split(",")) if labels else set(every)  # labels exactly (`--models gru` takes gru-plain too)
    if kept - set(every):
        sys.exit(f"{path}: no model labelled {', '.join(sorted(kept - set(every)))}; it has {', '.join(every)}")
    scored = (pipeline.folds - 1) * (pipeline.step or pipeline.horizon) + pipeline.horizon  # after the 1st origin
    doc = yaml.safe_load(path.read_text())
    models = [raw for raw, spec in zip(doc["models"], pipeline.models) if spec.label in kept]
    combine = [raw for raw, spec in zip(doc.get("combine") or [], pipeline.combine) if spec.label in kept]
    frame = pd.read_csv(pipeline.data["path"])
    id_col = pipeline.data.get("id_col")
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for block in range(1, count + 1):
        cut = block * scored
        if id_col:  # each series less its last `cut` rows (the file is in time order within a series)
            part = frame[frame.groupby(id_col, sort=False).cumcount(ascending=False).to_numpy() >= cut]
        else:
            part = frame.iloc[:len(frame) - cut]
        data = out / f"{pipeline.data['path'].stem}_less_{cut}.csv"
        part.to_csv(data, index=False)
        copy = dict(doc, name=f"{pipeline.name}_validation_{block}", data=dict(doc["data"], path=str(data)),
                    models=models, combine=combine)
        target = out / f"{path.stem}_validation_{block}.yaml"
        target.write_text(yaml.safe_dump({k: v for k, v in copy.items() if v != []}, sort_keys=False))
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
    try:
        written = blocks(args.pipeline, args.blocks, args.labels, args.out)
    except ForecastError as exc:
        sys.exit(str(exc))
    for path in written:
        command = ["forecast", "run", str(path), "--threads", "1",
                   "--tracking-uri", f"sqlite:///{(args.out / 'mlflow.db').resolve()}"]
        print(" ".join(command), flush=True)
        if args.run:
            subprocess.run(command, check=True)


if __name__ == "__main__":
    main()
