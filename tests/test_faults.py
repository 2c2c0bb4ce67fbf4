"""Faults at the edges, for real: a tracking server stopped in the middle of a training, a disk that fills up
while a run logs its model (a small tmpfs mounted in a mount namespace of its own), and a model whose files are
deleted or damaged between listing it and loading it. Each gives one line and a FAILED run, and no half-written
model ever loads."""

import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import free_port, wait_for
from mlflow.tracking import MlflowClient

from forecast.cli import main


def start_server(folder: Path, port: int) -> subprocess.Popen:
    """`mlflow server` on a SQLite file in `folder`, artifacts served by it, until stopped."""
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{folder}/server.db",
         "--serve-artifacts", "--artifacts-destination", str(folder / "served"), "--host", "127.0.0.1",
         "--port", str(port), "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})
    wait_for(lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).status == 200, 120)
    return server


def stop(server: subprocess.Popen) -> None:
    os.killpg(server.pid, signal.SIGKILL)  # as a crashed or unplugged server: no goodbye to the clients
    server.wait(timeout=30)


def cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "forecast", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=600)


def test_a_server_lost_mid_run_keeps_the_run_locally_and_says_where(air_csv, tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_server(tmp_path, port)
    env = {**os.environ, "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
           "FORECAST_UNSENT": str(tmp_path / "unsent")}
    training = subprocess.Popen(
        [sys.executable, "-m", "forecast", "train", str(air_csv), "--model", "gru", "--hidden-size", "8",
         "--layers", "1", "--epochs", "60", "--patience", "100", "--steps-per-epoch", "20", "--lookback", "24",
         "--tracking-uri", url, "--quiet"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        client = MlflowClient(url)

        def two_epochs_logged():
            runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
            return runs and len(client.get_metric_history(runs[0].info.run_id, "train_loss")) >= 2 and runs[0]

        run = wait_for(two_epochs_logged, 120, every=0.05)
    finally:
        stop(server)
    out, err = training.communicate(timeout=600)
    assert training.returncode == 1, err[-2000:]
    lines = err.strip().splitlines()
    run_id = run.info.run_id
    folder = tmp_path / "unsent" / run_id
    assert len(lines) == 1 and lines[0].startswith(f"Error: the tracking server {url} could not be reached"), err
    assert str(folder) in lines[0] and f"forecast predict {folder / 'model'}" in lines[0]

    record = json.loads((folder / "run.json").read_text())
    assert record["status"] == "FAILED" and record["run_id"] == run_id and record["tracking_uri"] == url
    assert record["params"]["model"] == "gru" and record["params"]["epochs"] == "60"
    metrics = pd.read_csv(folder / "metrics.csv")
    losses = metrics[metrics["key"] == "train_loss"]
    assert len(losses) >= 2 and losses["step"].max() > 2  # the epochs trained after the loss were kept
    assert {"mase", "smape", "mae", "coverage_95", "train_seconds"} <= set(metrics["key"])
    assert (folder / "artifacts" / "holdout_forecasts.csv").is_file()

    predicted = cli("predict", folder / "model", air_csv, "--horizon", "12", env=env)
    assert predicted.returncode == 0, predicted.stderr
    forecasts = pd.read_csv(pd.io.common.StringIO(predicted.stdout))
    assert len(forecasts) == 12 and forecasts["yhat"].notna().all()

    server = start_server(tmp_path, port)  # back: the next command that reads the experiment ends the run FAILED
    try:
        shown = cli("compare", "--tracking-uri", url, "--format", "csv", env=env)
        assert shown.returncode == 0, shown.stderr
        table = pd.read_csv(pd.io.common.StringIO(shown.stdout))
        assert table.loc[table["run_id"] == run_id, "status"].tolist() == ["FAILED"]
        assert "process died" in MlflowClient(url).get_run(run_id).data.tags["error"]
    finally:
        stop(server)


def can_mount_tmpfs() -> str | None:
    """The unshare prefix that gives a private mount namespace here, or None."""
    if shutil.which("unshare") is None:
        return None
    for prefix in (["unshare", "--mount"], ["unshare", "--user", "--map-root-user", "--mount"]):
        probe = subprocess.run([*prefix, "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"], capture_output=True)
        if probe.returncode == 0:
            return " ".join(prefix)
    return None


def test_a_full_disk_while_logging_the_model_fails_the_run_and_leaves_no_model_that_loads(air_csv, tmp_path):
    unshare = can_mount_tmpfs()
    if unshare is None:
        pytest.skip("needs unshare and a private mount namespace (root, or unprivileged user namespaces) to mount "
                    "a small tmpfs as the full disk")
    store = tmp_path / "store"
    (store / "artifacts").mkdir(parents=True)
    uri = f"sqlite:///{store}/mlflow.db"
    forecast = f"{sys.executable} -m forecast"
    # the artifact store is a 150 KB disk: the run's plots and tables fit, its model (the package's code) does not
    script = (f"mount -t tmpfs -o size=150k tmpfs {store}/artifacts && "
              f"{forecast} train {air_csv} --model seasonal-naive --tracking-uri {uri} --quiet 2> {tmp_path}/train.err"
              f"; echo $? > {tmp_path}/train.rc; ls -R {store}/artifacts > {tmp_path}/left.txt")
    subprocess.run([*unshare.split(), "sh", "-c", script], check=True, timeout=600)

    train_err = (tmp_path / "train.err").read_text().strip().splitlines()
    assert (tmp_path / "train.rc").read_text().strip() == "1"
    assert len(train_err) == 1 and train_err[0].startswith("Error: no space left on the device writing "), train_err
    client = MlflowClient(uri)
    (run,) = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert run.info.status == "FAILED" and "No space left on device" in run.data.tags["error"]
    assert f"run {run.info.run_id} ended FAILED" in train_err[0]
    (model,) = client.search_logged_models([run.info.experiment_id])
    assert str(model.status) == "FAILED"
    left = (tmp_path / "left.txt").read_text()
    assert "holdout_forecasts.csv" in left and "MLmodel" not in left and "forecaster.json" not in left

    line = one_line_error("predict", f"runs:/{run.info.run_id}/model", air_csv, "--tracking-uri", uri)
    assert "its logging failed part way" in line and f"{model.model_id} is FAILED" in line, line


def one_line_error(*args) -> str:
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    return lines[0]


def model_folder(run_id: str) -> Path:
    client = MlflowClient()
    (model,) = client.search_logged_models([client.get_run(run_id).info.experiment_id])
    return Path(model.artifact_location.removeprefix("file://"))


@pytest.mark.parametrize("damage", ["folder", "weights", "truncated", "config"])
def test_a_model_deleted_or_damaged_between_listing_and_loading_is_one_line(damage, air_csv):
    out = CliRunner().invoke(main, ["train", str(air_csv), "--model", "gru", "--hidden-size", "8", "--layers", "1",
                                    "--epochs", "2", "--lookback", "12", "--quiet"])
    assert out.exit_code == 0, out.output
    run_id = next(line.split()[1] for line in out.output.splitlines() if line.startswith("model:")).split("/")[1]
    listed = CliRunner().invoke(main, ["compare", "--format", "csv"])
    assert run_id in listed.output
    folder = model_folder(run_id)
    forecaster = folder / "artifacts" / "forecaster"
    weights = sorted(forecaster.glob("*.pt"))[0]
    if damage == "folder":
        shutil.rmtree(folder)
    elif damage == "weights":
        weights.unlink()
    elif damage == "truncated":  # half-written: the file is there, a part of it is not
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    else:
        (forecaster / "forecaster.json").write_text('{"format": 3, "model": "gru"')
    line = one_line_error("predict", f"runs:/{run_id}/model", air_csv)
    assert f"model 'runs:/{run_id}/model'" in line and "/tmp/tmp" not in line  # not the download's path
    expected = {"folder": "its files are missing from the artifact store",
                "weights": f"artifacts/forecaster/{weights.name}: is missing",
                "truncated": f"artifacts/forecaster/{weights.name}: differs from the one saved",
                "config": "not valid JSON"}[damage]
    assert expected in line, line


def test_a_model_whose_logging_never_finished_is_refused(air_csv):
    """A process killed while it copies a model leaves MLflow's record of it PENDING: the files there do not load."""
    out = CliRunner().invoke(main, ["train", str(air_csv), "--model", "naive", "--quiet"])
    assert out.exit_code == 0, out.output
    run_id = next(line.split()[1] for line in out.output.splitlines() if line.startswith("model:")).split("/")[1]
    client = MlflowClient()
    run = client.get_run(run_id)
    complete = model_folder(run_id)
    unfinished = client.create_logged_model(run.info.experiment_id, name="model", source_run_id=run_id)
    client.log_model_artifacts(unfinished.model_id, str(complete))  # every file there, but never finalized
    line = one_line_error("predict", f"runs:/{run_id}/model", air_csv)
    assert "its logging never finished" in line and f"{unfinished.model_id} is PENDING" in line, line
    assert one_line_error("predict", f"models:/{unfinished.model_id}", air_csv).endswith("train it again")
