"""Is the mean of a study's best K configurations better than the best alone on the next window? Post hoc, on the
studies of a nested validation (`benchmarks/tune.py --split validation --tracking-uri URI`): each of the K best
trials trained once more as `forecast tune` trains its final model (on the training file, scored on its last
horizon, which the search never saw), then their mean forecast scored on the same horizon. No test file is read.

    python3 benchmarks/tune_top.py --tracking-uri sqlite:////tmp/q4/mlflow.db --subsets quarterly --top 3

Prints, per subset, each trial's holdout sMAPE and that of the mean of the first k, for k = 1 .. K.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from mlflow.tracking import MlflowClient
from tune import DATA, HORIZONS

from forecast import api, tuning
from forecast.metrics import smape


def best_trials(client: MlflowClient, subset: str, model: str, top: int) -> list[tuple[int, float, dict]]:
    """(number, validation sMAPE, sampled values) of the `top` best finished trials of the latest study."""
    experiment = client.get_experiment_by_name(f"tune_m3_{subset}")
    parent = client.search_runs([experiment.experiment_id], f"tags.mlflow.runName = 'tune-{model}'",
                                order_by=["attributes.start_time DESC"], max_results=1)[0]
    children = client.search_runs([experiment.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}' "
                                  "and attributes.status = 'FINISHED'", max_results=5000)
    trials = [(int(r.data.tags[tuning.TRIAL]), r.data.metrics["smape"], json.loads(r.data.tags[tuning.TRIAL_PARAMS]))
              for r in children if tuning.TRIAL in r.data.tags and "smape" in r.data.metrics]
    return sorted(trials, key=lambda t: (t[1], t[0]))[:top]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tracking-uri", required=True, help="the store of a `tune.py --split validation` run")
    parser.add_argument("--subsets", default="quarterly,yearly")
    parser.add_argument("--model", default="gru")
    parser.add_argument("--top", type=int, default=tuning.TOP)
    args = parser.parse_args()
    client = MlflowClient(args.tracking_uri)
    for subset in args.subsets.split(","):
        train, h = DATA / f"m3_{subset}_train.csv", HORIZONS[subset]
        data = api.load(train)
        forecasts = []
        for rank, (number, value, sampled) in enumerate(best_trials(client, subset, args.model, args.top), 1):
            hyper = tuning.settings(sampled, h, data.freq.season)
            result = api.backtest(train, args.model, h, data=data, final_fit=False, experiment=f"top_{subset}",
                                  tracking_uri=args.tracking_uri, run_name=f"rank-{rank}", **hyper)
            frame = result.forecast.sort_values(["unique_id", "ds"]).reset_index(drop=True)
            forecasts.append(frame["yhat"].to_numpy())
            y = frame["y"].to_numpy()
            print(f"{subset}: rank {rank}, trial {number} (validation {value:.4f}): holdout sMAPE "
                  f"{smape(y, forecasts[-1]):.4f}; the mean of the first {rank}: "
                  f"{smape(y, np.mean(forecasts, axis=0)):.4f}", flush=True)


if __name__ == "__main__":
    main()
