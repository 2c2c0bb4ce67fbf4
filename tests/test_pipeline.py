"""Backtests and YAML pipelines: fold cut points, per-fold metrics, validation, failures, nested runs in MLflow."""

import json

import mlflow
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import DATA, write
from hypothesis import given, settings
from hypothesis import strategies as st
from mlflow.tracking import MlflowClient

from forecast import api
from forecast.cli import main
from forecast.data import rolling_origins
from forecast.metrics import evaluate
from forecast.pipeline import PipelineError, load_pipeline


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(10, 60), min_size=1, max_size=4), st.integers(1, 5), st.integers(1, 3),
       st.integers(1, 5))
def test_no_fold_sees_its_own_future(lengths, h, folds, step):
    need = h + step * (folds - 1) + 2
    lengths = [max(n, need) for n in lengths]
    df = pd.concat([pd.DataFrame({"unique_id": f"s{i}", "ds": np.arange(n), "y": np.arange(n, dtype=float)})
                    for i, n in enumerate(lengths)], ignore_index=True)
    cuts = rolling_origins(df, h, folds, step)
    assert len(cuts) == folds
    for k, (train, test) in enumerate(cuts):
        assert (test.groupby("unique_id").size() == h).all()
        for uid, n in zip([f"s{i}" for i in range(len(lengths))], lengths):
            seen, ahead = train[train.unique_id == uid].ds, test[test.unique_id == uid].ds
            assert seen.max() < ahead.min()  # nothing from the fold's own future
            assert list(ahead) == list(range(seen.max() + 1, seen.max() + 1 + h))  # the h steps right after
            assert ahead.max() == n - 1 - step * (folds - 1 - k)  # origins `step` apart, the last at the end


def test_per_fold_metrics_equal_scoring_each_fold_directly(air_csv):
    result = api.backtest(air_csv, "seasonal-naive", 12, folds=3, step=6)
    data = api.load(air_csv)
    client = MlflowClient()
    history = {m.step: m.value for m in client.get_metric_history(result.run_id, "fold_smape")}
    assert sorted(history) == [1, 2, 3]
    for fold, (train, test) in enumerate(rolling_origins(data.df, 12, 3, 6), start=1):
        forecast = result.forecast[result.forecast.fold == fold]
        direct = evaluate(train, test, forecast, 12)
        assert direct == pytest.approx({k: result.fold_metrics[fold - 1][k] for k in direct})
        assert history[fold] == pytest.approx(direct["smape"])
        # and the forecast is the seasonal naive by hand: the same month a year before the origin
        expected = train.y.to_numpy()[-12:]
        np.testing.assert_allclose(forecast.yhat, expected)
    logged = client.get_run(result.run_id).data.metrics
    assert logged["smape"] == pytest.approx(np.mean([m["smape"] for m in result.fold_metrics]))
    assert logged["smape_std"] == pytest.approx(np.std([m["smape"] for m in result.fold_metrics]))


def test_backtest_without_refit_trains_once_and_forecasts_every_fold(air_csv):
    result = CliRunner().invoke(main, ["backtest", str(air_csv), "--model", "gru", "--folds", "2", "--no-refit",
                                       "--hidden-size", "8", "--layers", "1", "--epochs", "2", "-q"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("fold 1: mae ") and "\nfold 2: mae " in result.output
    run_id = result.output.split("model: runs:/")[1].split("/")[0]
    run = MlflowClient().get_run(run_id)
    assert run.data.params["refit"] == "False" and run.data.params["folds"] == "2"
    assert [m.step for m in MlflowClient().get_metric_history(run_id, "train_loss")] == [1, 2]


PIPELINE = """
name: tiny
data:
  path: {path}
horizon: 6
backtest:
  folds: 2
models:
  - model: naive
  - model: seasonal-naive
  - model: gru
    label: gru-small
    params: {{hidden_size: 8, layers: 1, epochs: 2, lookback: 12}}
"""


def test_pipeline_runs_every_model_as_a_child_run_and_logs_a_leaderboard(m3_csv, tmp_path):
    yaml_file = write(tmp_path, "tiny.yaml", PIPELINE.format(path=m3_csv.name))
    result = CliRunner().invoke(main, ["run", str(yaml_file)])
    assert result.exit_code == 0, result.output
    client = MlflowClient()
    experiment = client.get_experiment_by_name("tiny")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(children) == 3
    parent = parents[0]
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    assert sorted(c.info.run_name for c in children) == ["gru-small", "naive", "seasonal-naive"]
    # the same parameter names in every child, so the UI's comparison lines them up
    assert all(c.data.params["horizon"] == "6" and c.data.params["folds"] == "2" for c in children)
    board = pd.read_csv(mlflow.artifacts.download_artifacts(run_id=parent.info.run_id,
                                                            artifact_path="leaderboard.csv", dst_path=str(tmp_path)))
    assert board["label"].tolist()[0] == parent.data.tags["best_model"]
    assert board["smape"].is_monotonic_increasing and board["rank"].tolist() == [1, 2, 3]
    by_label = {c.info.run_name: c.data.metrics["smape"] for c in children}
    for row in board.itertuples():
        assert row.smape == pytest.approx(by_label[row.label])
    assert parent.data.metrics["best_smape"] == pytest.approx(board["smape"].min())
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"leaderboard.csv", "leaderboard.md", "leaderboard.png"} <= artifacts
    assert "leaderboard of 'tiny'" in result.output and "gru-small" in result.output

    listed = CliRunner().invoke(main, ["compare", "--parent", parent.info.run_id, "--format", "json",
                                       "--metric", "smape"])
    rows = json.loads(listed.output)
    assert [r["run"] for r in rows] == board["label"].tolist()
    assert all(r["smape_std"] >= 0 for r in rows)
    table = CliRunner().invoke(main, ["compare", "--parent", parent.info.run_id, "--metric", "smape"])
    assert " ± " in table.output
    markdown = CliRunner().invoke(main, ["compare", "--parent", parent.info.run_id, "--format", "markdown"])
    assert markdown.output.splitlines()[1].startswith("|---|")


def test_a_failing_model_is_recorded_and_the_others_finish(m3_csv, tmp_path):
    text = PIPELINE.format(path=m3_csv.name) + "  - model: rnn\n    label: exploding\n" \
        "    params: {hidden_size: 8, lr: 1.0e+36, clip: 0, epochs: 3}\n"
    yaml_file = write(tmp_path, "tiny.yaml", text)
    result = CliRunner().invoke(main, ["run", str(yaml_file)])
    assert result.exit_code == 1
    assert "Error: 1 of 4 models failed: exploding: TrainingDiverged: training diverged at epoch" in result.output
    client = MlflowClient()
    runs = client.search_runs([client.get_experiment_by_name("tiny").experiment_id])
    status = {r.info.run_name: r.info.status for r in runs}
    assert status == {"tiny": "FINISHED", "naive": "FINISHED", "seasonal-naive": "FINISHED",
                      "gru-small": "FINISHED", "exploding": "FAILED"}


def test_a_model_without_intervals_ranks_last_by_an_interval_metric(tmp_path):
    pd.DataFrame({"ds": pd.date_range("2020-01-01", periods=4, freq="MS"), "y": [1.0, 2.0, 2.0, 5.0]}).to_csv(
        tmp_path / "four.csv", index=False)  # two points before the holdout: too few for the gru to calibrate on
    text = ("name: four\ndata: {path: four.csv}\nhorizon: 2\nmetric: msis\nmodels:\n"
            "  - {model: gru, params: {hidden_size: 8, layers: 1, epochs: 2, lookback: 4}}\n  - naive\n")
    result = CliRunner().invoke(main, ["run", str(write(tmp_path, "four.yaml", text))])
    assert result.exit_code == 0, result.output
    assert "msis none" in result.output
    (parent,) = MlflowClient().search_runs([MlflowClient().get_experiment_by_name("four").experiment_id],
                                           "tags.mlflow.runName = 'four'")
    board = pd.read_csv(mlflow.artifacts.download_artifacts(f"runs:/{parent.info.run_id}/leaderboard.csv"))
    assert board["label"].tolist() == ["naive", "gru"] and board["msis"].isna().tolist() == [False, True]
    assert board["mase"].notna().all()


@pytest.mark.parametrize("text, message", [
    ("name: x\ndata: {path: data.csv}\nmodels: [naive]\nfolds: 3\n",
     "unknown key(s) folds in the file; valid keys: name, data, horizon, backtest, metric, models"),
    ("data: {path: data.csv, target: y}\nmodels: [naive]\n",
     "unknown key(s) target in data; valid keys: path, test, id_col, time_col, target_col, freq, season"),
    ("data: {path: data.csv}\nmodels:\n  - {model: gru, hidden: 8}\n",
     "unknown key(s) hidden in models[1]; valid keys: model, label, params"),
    ("data: {path: data.csv}\nmodels: [prophet]\n",
     "models[1]: unknown model 'prophet'; choose one of naive, seasonal-naive, ar, rnn, lstm, gru, transformer"),
    ("data: {path: data.csv}\nmodels:\n  - {model: ar, params: {hidden_size: 8}}\n",
     "models[1] (ar): model 'ar' has no setting --hidden-size; its settings: --diff, --ic, --lags, --log, --max-lags"),
    ("data: {path: data.csv}\nmodels: [naive, naive]\n",
     "label(s) naive used twice; give each model its own label"),
    ("data: {path: missing.csv}\nmodels: [naive]\n", "data path 'missing.csv' not found"),
    ("data: {path: data.csv}\nbacktest: {folds: 0}\nmodels: [naive]\n",
     "backtest.folds must be a positive whole number, not 0"),
    ("data: [1, 2\n", "not valid YAML at line 2; check the indentation and quoting"),
])
def test_invalid_pipelines_are_refused_by_name_before_anything_runs(tmp_path, text, message):
    (tmp_path / "data.csv").write_text((DATA / "air_passengers.csv").read_text())
    yaml_file = write(tmp_path, "bad.yaml", text)
    with pytest.raises(PipelineError) as info:
        load_pipeline(yaml_file)
    assert str(info.value).startswith(f"{yaml_file}: ") and message in str(info.value)
    result = CliRunner().invoke(main, ["run", str(yaml_file)])
    assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1
    assert MlflowClient().search_experiments(filter_string="name != 'Default'") == []


def test_dry_run_and_model_subsets(m3_csv, tmp_path):
    yaml_file = write(tmp_path, "tiny.yaml", PIPELINE.format(path=m3_csv.name))
    result = CliRunner().invoke(main, ["run", str(yaml_file), "--models", "gru-small,naive", "--dry-run"])
    assert result.exit_code == 0
    lines = result.output.strip().splitlines()
    assert lines[0].startswith("pipeline 'tiny': m3_three.csv, horizon 6, 2 fold(s)")
    assert [line.split(":")[0].strip() for line in lines[1:]] == ["naive", "gru-small"]
    unknown = CliRunner().invoke(main, ["run", str(yaml_file), "--models", "lstm"])
    assert unknown.exit_code == 1 and "--models lstm not in the pipeline; it has naive, seasonal-naive, gru-small" \
        in unknown.output


def test_shipped_pipelines_are_valid():
    for name in ("air_passengers", "m3_monthly", "electricity"):
        spec = load_pipeline(DATA.parent / "pipelines" / f"{name}.yaml")
        assert spec.models and spec.data["path"].is_file()
