"""A team's tracking server, for real: PostgreSQL (Debian's package) behind `mlflow server --serve-artifacts`, started
here and stopped afterwards. forecast works against it unchanged (train, register, an alias, predict from runs:/
and models:/ URIs, backtests, pipelines, compare), and concurrent trainings into it, or into one SQLite file, lose
nothing. Skipped, saying why, where PostgreSQL or psycopg2 is missing (.ci/run installs both)."""

import glob
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import free_port, wait_for
from mlflow.tracking import MlflowClient

from forecast.cli import main


@pytest.fixture(scope="module")
def server():
    """The URL of an MLflow tracking server on a fresh PostgreSQL database, artifacts served by the server."""
    initdb = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not initdb or importlib.util.find_spec("psycopg2") is None:
        pytest.skip("needs PostgreSQL (apt-get install postgresql) and psycopg2 (pip install -e '.[test]')")
    bin_dir = Path(initdb[-1]).parent
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    root = Path(tempfile.mkdtemp(prefix="forecast-pg-"))
    root.chmod(0o755)
    data = root / "data"
    data.mkdir()
    if as_postgres:
        shutil.chown(data, "postgres", "postgres")
    subprocess.run([*as_postgres, bin_dir / "initdb", "-D", data, "-A", "trust", "-U", "postgres"], check=True,
                   capture_output=True)
    pg_port, port = free_port(), free_port()
    database = subprocess.Popen([*as_postgres, bin_dir / "postgres", "-D", data, "-p", str(pg_port), "-k", data,
                                 "-c", "listen_addresses=127.0.0.1"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
    mlflow_server = None
    try:
        wait_for(lambda: subprocess.run([bin_dir / "pg_isready", "-h", "127.0.0.1", "-p", str(pg_port)],
                                        capture_output=True).returncode == 0)
        subprocess.run([bin_dir / "createdb", "-h", "127.0.0.1", "-p", str(pg_port), "-U", "postgres", "mlflow"],
                       check=True, capture_output=True)
        backend = f"postgresql+psycopg2://postgres@127.0.0.1:{pg_port}/mlflow"
        mlflow_server = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend, "--serve-artifacts",
             "--artifacts-destination", str(root / "artifacts"), "--host", "127.0.0.1", "--port", str(port),
             "--workers", "2"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
            env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: urllib.request.urlopen(f"{url}/health", timeout=2).status == 200, seconds=120)
        yield url
    finally:
        if mlflow_server is not None:
            os.killpg(mlflow_server.pid, signal.SIGTERM)
            mlflow_server.wait(timeout=30)
        database.terminate()
        database.wait(timeout=30)
        shutil.rmtree(root, ignore_errors=True)


def run(*args):
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


def test_forecast_works_unchanged_against_a_postgres_backed_server(server, air_csv, tmp_path):
    out = run("train", air_csv, "--model", "ar", "--register", "airline", "--tracking-uri", server, "--quiet")
    run_id = next(line.split()[1] for line in out.splitlines() if line.startswith("model:")).split("/")[1]
    assert "registered: models:/airline/1" in out
    client = MlflowClient(server)
    client.set_registered_model_alias("airline", "champion", "1")
    by_run = run("predict", f"runs:/{run_id}/model", air_csv, "--tracking-uri", server)
    by_alias = run("predict", "models:/airline@champion", air_csv, "--tracking-uri", server)
    assert by_run == by_alias and len(by_run.splitlines()) == 13
    out = run("backtest", air_csv, "--model", "gru", "--folds", "2", "--hidden-size", "8", "--layers", "1",
              "--epochs", "2", "--tracking-uri", server, "--quiet")
    assert "fold 2:" in out
    pipeline = tmp_path / "team.yaml"
    pipeline.write_text(f"name: team\ndata: {{path: {air_csv}}}\nhorizon: 12\nmodels: [naive, seasonal-naive]\n")
    assert "leaderboard of 'team'" in run("run", pipeline, "--tracking-uri", server)
    table = pd.read_csv(pd.io.common.StringIO(run("compare", "--tracking-uri", server, "--format", "csv")))
    assert set(table["status"]) == {"FINISHED"} and len(table) == 2 + 3  # ar, gru; the pipeline and its two
    artifacts = client.list_artifacts(run_id)
    assert {"holdout_forecasts.csv", "forecast.png"} <= {a.path for a in artifacts}  # served by the server


@pytest.mark.parametrize("store_kind", ["server", "sqlite"])
def test_concurrent_trainings_lose_nothing(store_kind, request, air_csv, m3_csv, tmp_path):
    uri = request.getfixturevalue("server") if store_kind == "server" else f"sqlite:///{tmp_path}/shared.db"
    experiment = f"load-{store_kind}"
    models = ["naive", "seasonal-naive", "ar", "naive", "seasonal-naive", "ar", "gru", "lstm"]
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri}
    commands = [[sys.executable, "-m", "forecast", "train", str(m3_csv), "--model", model, "--experiment",
                 experiment, "--hidden-size", "4", "--layers", "1", "--epochs", "1", "--steps-per-epoch", "2",
                 "--no-diagnostics", "--quiet"] if model in ("gru", "lstm") else
                [sys.executable, "-m", "forecast", "train", str(m3_csv), "--model", model, "--experiment",
                 experiment, "--quiet"] for model in models]
    pipeline = tmp_path / "load.yaml"
    pipeline.write_text(f"name: {experiment}-pipeline\ndata: {{path: {air_csv}}}\nmodels: [naive, ar]\n")
    commands.append([sys.executable, "-m", "forecast", "run", str(pipeline)])
    procs = [subprocess.Popen(c, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for c in commands]
    outputs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0] * len(procs), [err[-300:] for _, err in outputs]
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    assert len(runs) == len(models) and {r.info.status for r in runs} == {"FINISHED"}
    for r in runs:
        assert {"mase", "smape", "mae"} <= set(r.data.metrics), r.data.tags.get("mlflow.runName")
    mlflow.set_tracking_uri(uri)
    history = pd.read_csv(m3_csv)
    for r in runs:
        forecasts = mlflow.pyfunc.load_model(f"runs:/{r.info.run_id}/model").predict(history)
        assert len(forecasts) == 3 * 12 and forecasts["yhat"].notna().all()  # one season ahead
    board = client.search_runs([client.get_experiment_by_name(f"{experiment}-pipeline").experiment_id])
    assert len(board) == 3 and {r.info.status for r in board} == {"FINISHED"}
