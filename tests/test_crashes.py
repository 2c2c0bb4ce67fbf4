"""Hard crashes: a training killed with SIGKILL (no handler runs) is found dead by the next command that reads
its experiment and ended FAILED with the reason; runs from other hosts are judged by their heartbeat; live runs
and runs of other tools are left alone."""

import os
import signal
import socket
import subprocess
import sys
import time

import mlflow
import numpy as np
import pandas as pd
from click.testing import CliRunner
from conftest import wait_for
from mlflow.tracking import MlflowClient

from forecast import liveness, tracking
from forecast.cli import main
from forecast.tracking.store import connect


def test_a_killed_training_is_ended_failed_by_the_next_compare(air_csv, store, tmp_path):
    env = {**os.environ, "MLFLOW_TRACKING_URI": store, "FORECAST_HEARTBEAT_SECONDS": "0.2",
           "TMPDIR": str(tmp_path)}  # a killed process cannot remove its temporary folders: keep them here
    connect(store)  # made first: the polling client below takes no lock of ours
    proc = subprocess.Popen([sys.executable, "-m", "forecast", "train", str(air_csv), "--model", "lstm",
                             "--epochs", "500", "--patience", "500", "--hidden-size", "8", "--quiet"],
                            env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = MlflowClient(store)
    try:
        def running():
            experiment = client.get_experiment_by_name("air_passengers")
            runs = client.search_runs([experiment.experiment_id]) if experiment else []
            return runs[0] if runs and runs[0].info.status == "RUNNING" else None

        first = wait_for(running)
        beat = float(first.data.tags[liveness.HEARTBEAT])
        wait_for(lambda: float(client.get_run(first.info.run_id).data.tags[liveness.HEARTBEAT]) > beat)  # it beats
        assert first.data.tags[liveness.PID] == str(proc.pid)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert client.get_run(first.info.run_id).info.status == "RUNNING"  # nothing ran to end it
    result = CliRunner().invoke(main, ["compare", "--experiment", "air_passengers", "--format", "csv"])
    assert result.exit_code == 0, result.output
    assert "RUNNING" not in result.output and "FAILED" in result.output
    run = client.get_run(first.info.run_id)
    assert run.info.status == "FAILED"
    assert f"its process {proc.pid} on " in run.data.tags[liveness.ORPHANED]
    assert "is gone; ended FAILED by `forecast compare` at" in run.data.tags[liveness.ORPHANED]
    assert run.data.tags["error"].startswith("process died: its process")
    assert run.info.end_time is not None and run.info.end_time >= run.info.start_time


def make_run(client, experiment_id, tags):
    return client.create_run(experiment_id, tags=tags).info.run_id


def test_runs_are_judged_by_host_process_and_heartbeat(store, monkeypatch):
    monkeypatch.setenv("FORECAST_HEARTBEAT_TIMEOUT", "60")
    client = MlflowClient(store)
    experiment = client.create_experiment("team")
    now = time.time()
    elsewhere = {liveness.HOST: "another-host", liveness.PID: "4242"}
    silent = make_run(client, experiment, {**elsewhere, liveness.HEARTBEAT: f"{now - 3600:.3f}"})
    beating = make_run(client, experiment, {**elsewhere, liveness.HEARTBEAT: f"{now - 5:.3f}"})
    alive = make_run(client, experiment, liveness.identity())  # this very process
    reused = make_run(client, experiment, {**liveness.identity(), liveness.PID_START: "1"})  # same pid, other start
    foreign = make_run(client, experiment, {})  # not started by forecast: not ours to judge
    ended = tracking.reap(client, [experiment], "compare")
    assert sorted(ended) == sorted([silent, reused])
    status = {run_id: client.get_run(run_id).info.status for run_id in (silent, beating, alive, reused, foreign)}
    assert status == {silent: "FAILED", beating: "RUNNING", alive: "RUNNING", reused: "FAILED", foreign: "RUNNING"}
    assert "no heartbeat from its process 4242 on another-host since" in \
        client.get_run(silent).data.tags[liveness.ORPHANED]
    assert "(the id now belongs to another process)" in client.get_run(reused).data.tags[liveness.ORPHANED]
    assert abs(client.get_run(silent).info.end_time - (now - 3600) * 1000) <= 1  # its last sign of life


def test_a_new_training_in_the_experiment_ends_the_dead_runs_first(air_csv, store):
    client = MlflowClient(store)
    experiment = client.create_experiment("air_passengers")
    dead = make_run(client, experiment, {liveness.HOST: liveness.identity()[liveness.HOST], liveness.PID: "999999999",
                                         liveness.HEARTBEAT: f"{time.time():.3f}"})
    result = CliRunner().invoke(main, ["train", str(air_csv), "--model", "naive", "--quiet"])
    assert result.exit_code == 0, result.output
    assert client.get_run(dead).info.status == "FAILED"
    assert "ended FAILED by `forecast train`" in client.get_run(dead).data.tags[liveness.ORPHANED]
    finished = [r for r in mlflow.search_runs([experiment], output_format="list") if r.info.run_id != dead]
    assert [r.info.status for r in finished] == ["FINISHED"]
    assert liveness.HEARTBEAT in finished[0].data.tags and finished[0].data.tags[liveness.PID] == str(os.getpid())


def train_command(air_csv, *extra):
    return [sys.executable, "-m", "forecast", "train", str(air_csv), "--model", "lstm", "--hidden-size", "8",
            "--layers", "1", "--epochs", "100", "--patience", "100", "--checkpoint-every", "0", "--seed", "3",
            "--quiet", *extra]


def test_a_training_killed_at_a_random_moment_resumes_to_the_same_weights(air_csv, store, tmp_path):
    env = {**os.environ, "MLFLOW_TRACKING_URI": store}
    scratch = tmp_path / "scratch"  # the temporary folder of the runs that finish: left empty
    scratch.mkdir()
    finishing = {**env, "TMPDIR": str(scratch)}
    client = MlflowClient(store)
    twin = subprocess.run(train_command(air_csv), env=finishing, cwd=tmp_path, capture_output=True, text=True)
    assert twin.returncode == 0, twin.stderr
    twin_id = next(line.split()[1] for line in twin.stdout.splitlines() if line.startswith("model:")).split("/")[1]
    proc = subprocess.Popen(train_command(air_csv), env={**env, "TMPDIR": str(tmp_path)}, cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # its folders stay here
    try:
        def started():
            runs = client.search_runs([client.get_experiment_by_name("air_passengers").experiment_id],
                                      "attributes.status = 'RUNNING'")
            return runs[0].info.run_id if runs else None

        killed = wait_for(started)
        epochs = int(np.random.default_rng().integers(3, 90))  # a random moment of the first training
        wait_for(lambda: len(client.get_metric_history(killed, "train_loss")) >= epochs, every=0.05)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    resumed = subprocess.run(train_command(air_csv, "--resume", killed), env=finishing, cwd=tmp_path,
                             capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert not [p.name for p in scratch.iterdir() if p.name.startswith("forecast-")]  # checkpoints, the download
    new_id = next(line.split()[1] for line in resumed.stdout.splitlines() if line.startswith("model:")).split("/")[1]
    run = client.get_run(new_id)
    assert run.info.status == "FINISHED" and run.data.tags["forecast.resumed_from"] == killed
    assert client.get_run(killed).info.status == "FAILED"  # found dead by the resuming command
    for name in ("mae", "mase", "smape"):
        assert run.data.metrics[name] == client.get_run(twin_id).data.metrics[name], (epochs, name)
    ours, theirs = (mlflow.pyfunc.load_model(f"runs:/{i}/model") for i in (new_id, twin_id))
    frame = pd.read_csv(air_csv)
    np.testing.assert_array_equal(ours.predict(frame)["yhat"].to_numpy(), theirs.predict(frame)["yhat"].to_numpy())


def test_resume_refuses_other_settings_and_runs_without_checkpoints(air_csv, store):
    result = CliRunner().invoke(main, ["train", str(air_csv), "--model", "naive", "--quiet"])
    naive_id = next(line.split()[1] for line in result.output.splitlines() if line.startswith("model:")).split("/")[1]
    result = CliRunner().invoke(main, ["train", str(air_csv), "--model", "naive", "--resume", naive_id])
    assert result.exit_code == 1 and "the run saved no checkpoint" in result.output
    result = CliRunner().invoke(main, ["train", str(air_csv), "--model", "seasonal-naive", "--resume", naive_id])
    assert result.exit_code == 1
    assert result.output.strip() == (f"Error: --resume {naive_id}: run it with the settings and data it started with "
                                     "(model 'naive' -> 'seasonal-naive')")


def test_an_unreachable_tracking_server_is_one_line(air_csv, monkeypatch):
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for args in (["compare"], ["train", str(air_csv), "--model", "naive", "--quiet"]):
        result = CliRunner().invoke(main, [*args, "--tracking-uri", f"http://127.0.0.1:{port}"])
        assert result.exit_code == 1
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"Error: the tracking server http://127.0.0.1:{port} cannot "
                                                       "be reached ("), result.output
