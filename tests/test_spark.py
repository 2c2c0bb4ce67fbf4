"""Parquet in and out, and the Spark engine on a real local Spark session (no mocks): the forecasts equal the
single process's."""

import signal

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import DATA, assert_same_fit

from forecast import api
from forecast.cli import main

pyspark = pytest.importorskip("pyspark", reason="PySpark is not installed: pip install -e \".[spark]\"")


@pytest.fixture(scope="module")
def spark():
    from forecast import spark as engine

    previous = signal.getsignal(signal.SIGINT)
    session = engine.session("local[2]")
    yield session
    session.stop()
    signal.signal(signal.SIGINT, previous)  # PySpark's own would cancel the jobs of the stopped context, and fail


@pytest.fixture
def history(tmp_path):
    """300 real M3 monthly series, as CSV and as Parquet."""
    df = pd.read_csv(DATA / "m3_monthly_train.csv")
    df = df[df["unique_id"].isin(df["unique_id"].drop_duplicates().iloc[:300])]
    df.to_csv(tmp_path / "m3.csv", index=False)
    df.to_parquet(tmp_path / "m3.parquet", index=False)
    return df, tmp_path / "m3.csv", tmp_path / "m3.parquet"


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_parquet_trains_and_predicts_like_the_csv_and_writes_parquet(history, tmp_path):
    _, csv, parquet = history
    from_csv = api.train(csv, "seasonal-naive", horizon=6, experiment="a")
    from_parquet = api.train(parquet, "seasonal-naive", horizon=6, experiment="b")
    assert from_csv.metrics == from_parquet.metrics
    out = tmp_path / "forecasts.parquet"
    done = invoke("predict", from_parquet.model_uri, parquet, "-H", 4, "--level", 80, "-o", out)
    assert done.exit_code == 0, done.output
    written = pd.read_parquet(out)
    expected = api.predict(from_csv.model_uri, csv, 4, levels=(80,))
    pd.testing.assert_frame_equal(written, expected)
    assert list(written.columns) == ["unique_id", "ds", "yhat", "yhat_lo_80", "yhat_hi_80"] and len(written) == 1200


def test_a_damaged_or_missing_parquet_file_is_one_line(tmp_path):
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"PAR1 this is not parquet")
    for path, message in ((bad, "not a readable Parquet file"), (tmp_path / "none.parquet", "no such file")):
        result = invoke("train", path, "--model", "naive")
        assert result.exit_code == 1 and message in result.output and len(result.output.strip().splitlines()) == 1


def downloads(folder):
    return sorted(p.name for p in folder.glob("forecast-model-*"))


@pytest.mark.parametrize("model", ["seasonal-naive", "gru"])
def test_spark_forecasts_equal_the_single_process_ones(spark, history, model, tmp_path, monkeypatch):
    import tempfile

    from forecast import spark as engine

    df, csv, _ = history
    hyper = {"hidden_size": 8, "layers": 1, "epochs": 2, "lookback": 12} if model == "gru" else {}
    trained = api.train(csv, model, horizon=6, **hyper)
    single = api.predict(trained.model_uri, csv, 8, levels=(80, 95))
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    distributed = engine.predict(spark.createDataFrame(df), trained.model_uri, horizon=8, level=[80, 95],
                                 buckets=7).toPandas()
    # the lazy DataFrame's executors read the downloaded model until the process ends, which removes it
    assert len(downloads(scratch)) == 1
    engine._remove_downloads()
    assert downloads(scratch) == []
    distributed = distributed.sort_values(["unique_id", "ds"]).reset_index(drop=True)
    assert list(distributed.columns) == list(single.columns) and len(distributed) == 300 * 8
    assert distributed["unique_id"].tolist() == single["unique_id"].tolist()
    assert (pd.to_datetime(distributed["ds"]) == single["ds"]).all()
    for column in single.columns[2:]:
        np.testing.assert_allclose(distributed[column], single[column], rtol=1e-6)


def test_predict_engine_spark_from_the_cli(spark, history, tmp_path, monkeypatch):
    import tempfile

    _, csv, parquet = history
    trained = api.train(csv, "naive", horizon=3)
    out = tmp_path / "spark.csv"
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    done = invoke("predict", trained.model_uri, parquet, "--engine", "spark", "-o", out)
    assert done.exit_code == 0, done.output
    assert downloads(scratch) == []  # the forecasts are collected: the model's download is removed at once
    expected = api.predict(trained.model_uri, csv, None)
    got = pd.read_csv(out, parse_dates=["ds"])
    pd.testing.assert_frame_equal(got, expected, check_dtype=False)
    refused = invoke("predict", trained.model_uri, parquet, "--engine", "spark", "--id-col", "unique_id")
    assert refused.exit_code == 2 and "not with --engine spark" in refused.output


def _runs_params(run_id):
    from mlflow import MlflowClient

    return MlflowClient().get_run(run_id).data.params


def test_train_engine_spark_fits_ar_to_the_single_process_model(spark, history, tmp_path):
    _, csv, parquet = history
    local = api.train(parquet, "ar", horizon=6, experiment="local")
    done = invoke("train", parquet, "--model", "ar", "-H", 6, "--engine", "spark", "--experiment", "spark")
    assert done.exit_code == 0, done.output
    run_id = done.output.split("run ")[1].split(")")[0]
    params = _runs_params(run_id)
    assert params["engine"] == "spark" and params["fit_on"] == "all" and "engine" not in _runs_params(local.run_id)
    assert params["lags_mean"] == _runs_params(local.run_id)["lags_mean"]
    expected = api.predict(local.model_uri, parquet, 8, levels=(80, 95))
    got = api.predict(f"runs:/{run_id}/model", parquet, 8, levels=(80, 95))
    pd.testing.assert_frame_equal(got, expected, rtol=1e-9)
    assert len(got) == 300 * 8


@pytest.mark.parametrize("model", ["ar", "naive", "seasonal-naive"])
def test_per_series_models_fitted_in_buckets_equal_one_fit(spark, history, model):
    """40 series: the calibration takes 5 origins per series (forecast.intervals.calibration_plan), which the
    buckets must take as well, each holding a few series only."""
    from forecast import registry
    from forecast import spark as engine
    from forecast.data import dataset_from_frame

    df, csv, _ = history
    few = df[df["unique_id"].isin(df["unique_id"].drop_duplicates().iloc[:40])]
    data = dataset_from_frame(few, csv)
    single = registry.create(model).fit(data.df, data.freq, 6)
    parts = engine.fit(registry.create(model), data.df, data.freq, 6, spark, buckets=7)
    assert single.calibration_.n == parts.calibration_.n and single.residuals_.shape == (200, 6)
    assert_same_fit(single, parts, data.df, 6)


def test_backtest_engine_spark_equals_local_and_covariates_are_refused(spark, history):
    _, csv, _ = history
    local = api.backtest(csv, "seasonal-naive", horizon=6, folds=2, experiment="local")
    distributed = api.backtest(csv, "seasonal-naive", horizon=6, folds=2, engine="spark", experiment="spark")
    assert distributed.fold_metrics == local.fold_metrics
    refused = invoke("train", csv, "--model", "ar", "--calendar", "--engine", "spark")
    assert refused.exit_code == 1
    assert refused.output.strip() == ("Error: --engine spark fits models without covariates; leave out --futr, "
                                      "--hist, --static and --calendar, or the engine")
