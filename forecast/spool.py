"""A run kept on local disk once its tracking store cannot be reached (a tracking server stopped mid-run): its
params, tags, metrics, the artifacts logged after the loss and the model, under mlruns/unsent/RUN_ID (or
$FORECAST_UNSENT/RUN_ID), so that the training goes on and is not lost with the server. Plain files only; the
model folder is an MLflow model that `forecast predict` and `mlflow.pyfunc.load_model` read from there."""

from __future__ import annotations

import csv
import json
import os
import time
from pathlib import Path

UNSENT = Path("mlruns") / "unsent"
RECORD = "run.json"
METRICS = "metrics.csv"


def unsent_root() -> Path:
    return Path(os.environ.get("FORECAST_UNSENT") or UNSENT).resolve()


class Spool:
    """The local record of run `run_id`, started with what the run had logged before `store` went away."""

    def __init__(self, run_id: str, store: str, reason: str, params: dict, tags: dict, metrics: list[tuple]):
        self.folder = unsent_root() / run_id
        (self.folder / "artifacts").mkdir(parents=True, exist_ok=True)
        self.record = {"run_id": run_id, "tracking_uri": store, "unreachable_since": _stamp(), "reason": reason,
                       "status": "RUNNING", "params": {}, "tags": {}, "model": None, "datasets": []}
        with open(self.folder / METRICS, "w", newline="") as out:
            csv.writer(out).writerow(["key", "value", "step", "timestamp"])
        self.params(params)
        self.tags(tags)
        self.metrics(metrics)

    def params(self, params: dict) -> None:
        self.record["params"].update({k: str(v) for k, v in params.items()})
        self._save()

    def tags(self, tags: dict) -> None:
        self.record["tags"].update({k: str(v) for k, v in tags.items()})
        self._save()

    def metrics(self, rows: list[tuple]) -> None:
        """Rows (key, value, step, timestamp in ms), appended to metrics.csv."""
        with open(self.folder / METRICS, "a", newline="") as out:
            csv.writer(out).writerows(rows)

    def dataset(self, name: str, source: str, digest: str, context: str) -> None:
        self.record["datasets"].append({"name": name, "source": source, "digest": digest, "context": context})
        self._save()

    def artifact(self, name: str, folder: str | None = None) -> Path:
        """Where to write artifact `name` (under `folder`)."""
        path = self.folder / "artifacts" / (folder or "") / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def model(self, save) -> Path:
        """The run's model, written by `save(path)` (mlflow.pyfunc.save_model) into the spool."""
        path = self.folder / "model"
        save(str(path))
        self.record["model"] = str(path)
        self._save()
        return path

    def end(self, status: str, error: str | None = None) -> None:
        self.record.update(status=status, ended=_stamp(), **({"error": error} if error else {}))
        self._save()

    def message(self) -> str:
        model = self.record["model"]
        use = (f"`forecast predict {model} DATA` forecasts from its model" if model else
               "the run ended before logging a model")
        return (f"the tracking server {self.record['tracking_uri']} could not be reached from "
                f"{self.record['unreachable_since']} ({self.record['reason']}), after MLflow's retries; run "
                f"{self.record['run_id']} went on without it and its params, metrics, artifacts and model are kept in "
                f"{self.folder} ({use}; {RECORD} lists what is there); on the server the run is ended FAILED by the "
                "next forecast command that reaches it")

    def _save(self) -> None:
        partial = self.folder / (RECORD + ".partial")
        partial.write_text(json.dumps(self.record, indent=2))
        partial.replace(self.folder / RECORD)


def _stamp() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S %Z")
