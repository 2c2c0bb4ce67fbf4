"""The runs of an experiment (or of all, or a pipeline's children) as a table ranked by a holdout metric, with
their registered versions and aliases."""

from __future__ import annotations

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from forecast.errors import TrackingError
from forecast.tracking.runs import reap
from forecast.tracking.store import connect, retrying


def runs_table(experiment: str | None, metric: str, uri: str | None = None, parent: str | None = None) -> pd.DataFrame:
    """Runs of one experiment (or of all, or the children of a pipeline run), ranked by a holdout metric."""
    connect(uri)
    client = MlflowClient()
    experiments = {e.experiment_id: e.name for e in client.search_experiments()}
    query = ""
    if parent is not None:
        try:
            ids = [client.get_run(parent).info.experiment_id]
        except MlflowException:
            raise TrackingError(f"no run '{parent}' in {mlflow.get_tracking_uri()}; "
                                "give the run id of a pipeline run (forecast compare lists them)") from None
        query = f"tags.mlflow.parentRunId = '{parent}'"
    elif experiment is not None:
        ids = [i for i, name in experiments.items() if name == experiment]
        if not ids:
            names = ", ".join(experiments.values()) or "none yet"
            raise TrackingError(f"no experiment '{experiment}' in {mlflow.get_tracking_uri()} (experiments: {names})")
    else:
        ids = list(experiments)
    if not ids:
        return pd.DataFrame()
    reap(client, ids, "compare")  # a dead run is never shown RUNNING
    runs = mlflow.search_runs(experiment_ids=ids, filter_string=query, order_by=[f"metrics.{metric} ASC"],
                              output_format="pandas")
    if runs.empty:
        return runs
    table = pd.DataFrame({
        "experiment": runs["experiment_id"].map(experiments),
        "run": runs.get("tags.mlflow.runName"),
        "model": runs.get("params.model"),
        "status": runs["status"],
        "folds": runs.get("params.folds"),
    })
    for name in ("mase", "smape", "mae", "rmse", "msis", "coverage_80", "coverage_95"):
        table[name] = runs.get(f"metrics.{name}", float("nan"))
        table[f"{name}_std"] = runs.get(f"metrics.{name}_std", float("nan"))
    table["train_seconds"] = runs.get("metrics.train_seconds", float("nan"))
    registered = _registered_versions(client, set(runs["run_id"]))
    for column in ("registered", "version", "aliases"):
        table[column] = [registered.get(run_id, {}).get(column, "") for run_id in runs["run_id"]]
    table["run_id"] = runs["run_id"]
    table["parent_run_id"] = runs.get("tags.mlflow.parentRunId")
    return table.reset_index(drop=True)


def _registered_versions(client: MlflowClient, run_ids: set[str]) -> dict[str, dict]:
    """run id -> the registry's name, version(s) and aliases of the models registered from that run."""
    found: dict[str, dict] = {}
    try:
        versions = retrying(lambda: client.search_model_versions(max_results=10000))
    except MlflowException:  # a store without a model registry
        return found
    versions = sorted((mv for mv in versions if mv.run_id in run_ids), key=lambda mv: (mv.name, int(mv.version)))
    aliases: dict[tuple[str, str], list[str]] = {}
    for name in {mv.name for mv in versions}:  # search_model_versions leaves the aliases out
        for alias, version in retrying(lambda n=name: client.get_registered_model(n)).aliases.items():
            aliases.setdefault((name, str(version)), []).append(f"@{alias}")
    for mv in versions:
        entry = found.setdefault(mv.run_id, {"registered": mv.name, "version": [], "aliases": []})
        entry["version"].append(str(mv.version))
        entry["aliases"] += sorted(aliases.get((mv.name, str(mv.version)), []))
    return {run_id: {"registered": e["registered"], "version": ",".join(e["version"]),
                     "aliases": ",".join(e["aliases"])} for run_id, e in found.items()}
