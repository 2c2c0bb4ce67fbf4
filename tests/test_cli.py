"""The CLI end to end: real CSVs, real (tiny) models, a real MLflow store read back through MLflow."""

import os
import subprocess
import sys
import warnings

import mlflow
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import TINY_NET, write
from mlflow.tracking import MlflowClient

from forecast import api, registry
from forecast.cli import main


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def train_args(name):
    return ["--model", name, *(TINY_NET if name in registry.NEURAL else []), "--quiet"]


def only_run(experiment):
    client = MlflowClient()
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 1
    return client, runs[0]


@pytest.mark.parametrize("name", list(registry.MODELS))
def test_train_logs_everything_and_predict_matches_pyfunc(name, m3_csv, tmp_path):
    result = run("train", m3_csv, "--horizon", 6, *train_args(name))
    assert result.exit_code == 0, result.output
    client, logged = only_run("m3_three")
    run_id = logged.info.run_id
    assert logged.info.status == "FINISHED" and logged.info.run_name == name
    assert f"runs:/{run_id}/model" in result.output
    params = logged.data.params
    assert params["model"] == name and params["horizon"] == "6" and params["n_series"] == "3"
    assert params["freq"] == "MS" and params["season"] == "12" and len(params["data_sha256"]) == 64
    metrics = logged.data.metrics
    assert {"mae", "rmse", "smape", "mase", "train_seconds"} <= set(metrics)
    holdout = pd.read_csv(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="holdout_forecasts.csv",
                                                              dst_path=str(tmp_path)))
    assert len(holdout) == 18 and holdout["yhat"].notna().all()
    assert metrics["mae"] == pytest.approx(np.mean(holdout.groupby("unique_id").apply(
        lambda g: np.mean(np.abs(g.y - g.yhat)), include_groups=False)))
    artifacts = {a.path for a in client.list_artifacts(run_id)}
    assert {"forecast.png", "holdout_forecasts.csv"} <= artifacts
    if name in registry.NEURAL:
        history = client.get_metric_history(run_id, "train_loss")
        assert [m.step for m in history] == [1, 2]
        assert len(client.get_metric_history(run_id, "val_loss")) == 2
        assert params["hidden_size"] == "8" and params["lookback"] == "12"
    if name == "ar":
        assert "ar_lags.csv" in artifacts

    out = tmp_path / "forecasts.csv"
    predicted = run("predict", f"runs:/{run_id}/model", m3_csv, "--horizon", 8, "--output", out)
    assert predicted.exit_code == 0, predicted.output
    frame = pd.read_csv(out)
    assert list(frame.columns) == ["unique_id", "ds", "yhat"] and len(frame) == 24
    history = pd.read_csv(m3_csv, parse_dates=["ds"])
    pyfunc = mlflow.pyfunc.load_model(f"runs:/{run_id}/model")
    direct = pyfunc.predict(history, params={"horizon": 8})
    np.testing.assert_allclose(frame["yhat"], direct["yhat"], rtol=1e-9)
    for uid, part in frame.groupby("unique_id"):
        last = history[history["unique_id"] == uid]["ds"].max()
        expected = pd.date_range(last, periods=9, freq="MS")[1:].strftime("%Y-%m-%d").tolist()
        assert part["ds"].tolist() == expected


def test_single_series_train_then_predict_to_stdout_and_compare(air_csv):
    result = run("train", air_csv, *train_args("gru"))
    assert result.exit_code == 0, result.output
    assert run("train", air_csv, "--model", "seasonal-naive").exit_code == 0
    _, = [line for line in result.output.splitlines() if line.startswith("model: runs:/")]
    uri = result.output.split("model: ")[1].split()[0]
    predicted = run("predict", uri, air_csv, "--horizon", 3)
    assert predicted.exit_code == 0, predicted.output
    lines = predicted.output.strip().splitlines()
    assert lines[0] == "unique_id,ds,yhat"
    assert [line.split(",")[:2] for line in lines[1:]] == [["passengers", "1961-01-01"], ["passengers", "1961-02-01"],
                                                           ["passengers", "1961-03-01"]]
    table = run("compare", "--experiment", "air_passengers", "--metric", "smape")
    rows = table.output.strip().splitlines()
    assert table.exit_code == 0 and len(rows) == 3
    ranked = [r.split()[2] for r in rows[1:]]
    smapes = [float(r.split()[5]) for r in rows[1:]]
    assert sorted(ranked) == ["gru", "seasonal-naive"] and smapes == sorted(smapes)


def test_the_printed_predict_command_runs_as_printed_from_a_folder_with_a_space(air_csv, tmp_path):
    import shlex

    csv = tmp_path / "my data" / "air passengers.csv"
    csv.parent.mkdir()
    csv.write_text(air_csv.read_text())
    result = run("train", csv, "--model", "seasonal-naive", "--horizon", 6)
    assert result.exit_code == 0, result.output
    line, = [line for line in result.output.splitlines() if line.startswith("predict: forecast predict ")]
    args = shlex.split(line.removeprefix("predict: forecast "))
    assert args[2] == str(csv)
    predicted = run(*args)
    assert predicted.exit_code == 0, predicted.output
    assert len(predicted.output.strip().splitlines()) == 7  # the header and 6 months


def test_same_seed_gives_the_same_forecast(air_csv):
    first = api.train(air_csv, "lstm", hidden_size=8, layers=1, epochs=3, lookback=12, seed=7)
    second = api.train(air_csv, "lstm", hidden_size=8, layers=1, epochs=3, lookback=12, seed=7)
    other = api.train(air_csv, "lstm", hidden_size=8, layers=1, epochs=3, lookback=12, seed=8)
    np.testing.assert_array_equal(first.forecast["yhat"], second.forecast["yhat"])
    assert not np.array_equal(first.forecast["yhat"], other.forecast["yhat"])


def test_local_model_path_and_registered_model_uri(air_csv, tmp_path, store):
    result = api.train(air_csv, "naive", register="air-naive")
    local = mlflow.artifacts.download_artifacts(result.model_uri, dst_path=str(tmp_path / "local"))
    by_path = run("predict", local, air_csv, "-H", 2)
    by_name = run("predict", "models:/air-naive/1", air_csv, "-H", 2)
    by_id = run("predict", result.model_uri, air_csv, "-H", 2)
    assert by_path.exit_code == by_name.exit_code == by_id.exit_code == 0
    assert by_path.output == by_name.output == by_id.output
    assert by_path.output.strip().splitlines()[1] == "passengers,1961-01-01,432.0"
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    command = [sys.executable, "-m", "forecast", "predict", f"runs:/{result.run_id}/model", str(air_csv), "-H", "2"]
    alone = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "TMPDIR": str(scratch)})
    assert alone.returncode == 0 and alone.stdout == by_id.output, alone.stderr
    assert list(scratch.iterdir()) == []  # the model it downloaded to predict is gone


def test_a_diverging_run_ends_failed_with_its_error_and_nothing_else_changes(air_csv):
    assert run("train", air_csv, "--model", "naive").exit_code == 0
    result = run("train", air_csv, "--model", "rnn", "--lr", "1e36", "--clip", "0", "--epochs", "3",
                 "--hidden-size", "8", "-q")
    assert result.exit_code == 1
    assert "training diverged at epoch" in result.output and "Traceback" not in result.output
    client = MlflowClient()
    runs = client.search_runs([client.get_experiment_by_name("air_passengers").experiment_id])
    status = {r.info.run_name: r.info.status for r in runs}
    assert status == {"naive": "FINISHED", "rnn": "FAILED"}
    failed = [r for r in runs if r.info.run_name == "rnn"][0]
    assert failed.data.tags["error"].startswith("TrainingDiverged: training diverged at epoch")


def test_an_interrupted_run_ends_killed(air_csv):
    def interrupt(epoch, metrics):
        if epoch == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        api.train(air_csv, "gru", hidden_size=8, layers=1, epochs=5, on_epoch=interrupt)
    client = MlflowClient()
    (logged,) = client.search_runs([client.get_experiment_by_name("air_passengers").experiment_id])
    assert logged.info.status == "KILLED"
    assert [m.step for m in client.get_metric_history(logged.info.run_id, "train_loss")] == [1, 2]


@pytest.mark.parametrize("args, message", [
    (["train", "missing.csv"], "Error: missing.csv: no such file; check the path"),
    (["train", "{air}", "--model", "prophet"],
     "Error: unknown model 'prophet'; choose one of naive, seasonal-naive, ar, rnn, lstm, gru, transformer"),
    (["train", "{air}", "--model", "ar", "--hidden-size", "8"],
     "Error: model 'ar' has no setting --hidden-size; its settings: --diff, --ic, --lags, --log, --max-lags"),
    (["train", "{air}", "--horizon", "143"],
     "Error: {air}: no series is long enough to score: a holdout of 143 (--horizon) plus 2 training points needs "
     "145 points, the longest series has 144; use a shorter --horizon or fewer --folds"),
    (["predict", "runs:/0123456789abcdef/model", "{air}"],
     "Error: model 'runs:/0123456789abcdef/model': cannot be loaded"),
    (["predict", "no/such/folder", "{air}"],
     "Error: model 'no/such/folder': no MLflow model at that path (no MLmodel file)"),
    (["train", "{air}", "--tracking-uri", "./mlruns"],
     "Error: tracking URI './mlruns': MLflow's plain file store is refused; use a SQLite store such as "
     "sqlite:///mlruns/mlflow.db"),
    (["compare", "--experiment", "nothing"], "Error: no experiment 'nothing' in"),
])
def test_user_errors_are_one_line_with_exit_code_1(args, message, air_csv):
    args = [a.replace("{air}", str(air_csv)) for a in args]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message.replace("{air}", str(air_csv)))


def test_bad_csv_values_name_the_row(tmp_path):
    path = write(tmp_path, "bad.csv", "month,y\n2000-01-01,1\n2000-02-01,x\n2000-03-01,3\n2000-04-01,4\n")
    result = CliRunner().invoke(main, ["train", str(path), "--model", "naive"])
    assert result.exit_code == 1
    assert result.output.strip() == f"Error: {path}: row 3: 'x' in column 'y' is not a number; fix or remove the row"


def test_an_ensemble_trains_logs_and_predicts_as_one_model(m3_csv, tmp_path):
    result = run("train", m3_csv, "--horizon", 6, *train_args("gru"), "--ensemble", 2, "--loss", "smape")
    assert result.exit_code == 0, result.output
    client, logged = only_run("m3_three")
    params = logged.data.params
    assert params["ensemble"] == "2" and params["member_lookbacks"] == "12,18" and params["loss"] == "smape"
    assert params["epochs_run"] == "4"
    members = client.get_metric_history(logged.info.run_id, "member")
    assert [(m.step, m.value) for m in members] == [(1, 0), (2, 0), (3, 1), (4, 1)]
    lrs = [m.value for m in sorted(client.get_metric_history(logged.info.run_id, "lr"), key=lambda m: m.step)]
    assert lrs[1] == pytest.approx(0.0, abs=1e-12) and lrs[3] == pytest.approx(0.0, abs=1e-12)  # one schedule each
    out = tmp_path / "ensemble.csv"
    predicted = run("predict", f"runs:/{logged.info.run_id}/model", m3_csv, "--horizon", 6, "--output", out)
    assert predicted.exit_code == 0, predicted.output
    frame = pd.read_csv(out)
    assert len(frame) == 18 and frame["yhat"].notna().all()


def test_unknown_loss_is_refused_by_the_cli(m3_csv):
    result = run("train", m3_csv, "--model", "gru", "--loss", "huber")
    assert result.exit_code == 2 and "huber" in result.output
    result = run("train", m3_csv, "--model", "gru", "--loss", "mse")  # gbm's, not the nets'
    assert result.exit_code == 1 and "--loss mse: unknown; choose one of mae, smape, mase" in result.output


def test_threads_option_sets_torch_and_refuses_zero(air_csv):
    import torch

    try:
        assert run("train", air_csv, "--model", "naive", "--threads", 2).exit_code == 0
        assert torch.get_num_threads() == 2
        assert run("train", air_csv, "--model", "naive").exit_code == 0
        assert torch.get_num_threads() == 1  # the default
        refused = CliRunner().invoke(main, ["predict", "x", str(air_csv), "--threads", "0"])
        assert refused.exit_code == 2 and "--threads" in refused.output and "give at least 1" in refused.output
    finally:
        torch.set_num_threads(1)


def test_integer_time_steps_train_without_warnings(tmp_path):
    rows = "\n".join(f"s{k},{t},{10 + k + t % 4}" for k in range(2) for t in range(1, 25))
    path = write(tmp_path, "steps.csv", "unique_id,ds,y\n" + rows + "\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = run("train", path, "--model", "naive", "--horizon", 4, "--quiet")
    assert result.exit_code == 0, result.output
    assert [w for w in caught if "integer column" in str(w.message)] == []  # MLflow's hint, once on every run
