"""Parquet in and out, and the Spark engine on a real local Spark session (no mocks): the forecasts equal the
single process's."""

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import DATA

from forecast import api
from forecast.cli import main

pyspark = pytest.importorskip("pyspark", reason="PySpark is not installed: pip install -e \".[spark]\"")


@pytest.fixture(scope="module")
def spark():
    from forecast import spark as engine

    session = engine.session("local[2]")
    yield session
    session.stop()


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


@pytest.mark.parametrize("model", ["seasonal-naive", "gru"])
def test_spark_forecasts_equal_the_single_process_ones(spark, history, model):
    from forecast import spark as engine

    df, csv, _ = history
    hyper = {"hidden_size": 8, "layers": 1, "epochs": 2, "lookback": 12} if model == "gru" else {}
    trained = api.train(csv, model, horizon=6, **hyper)
    single = api.predict(trained.model_uri, csv, 8, levels=(80, 95))
    distributed = engine.predict(spark.createDataFrame(df), trained.model_uri, horizon=8, level=[80, 95],
                                 buckets=7).toPandas()
    distributed = distributed.sort_values(["unique_id", "ds"]).reset_index(drop=True)
    assert list(distributed.columns) == list(single.columns) and len(distributed) == 300 * 8
    assert distributed["unique_id"].tolist() == single["unique_id"].tolist()
    assert (pd.to_datetime(distributed["ds"]) == single["ds"]).all()
    for column in single.columns[2:]:
        np.testing.assert_allclose(distributed[column], single[column], rtol=1e-6)


def test_predict_engine_spark_from_the_cli(spark, history, tmp_path):
    _, csv, parquet = history
    trained = api.train(csv, "naive", horizon=3)
    out = tmp_path / "spark.csv"
    done = invoke("predict", trained.model_uri, parquet, "--engine", "spark", "-o", out)
    assert done.exit_code == 0, done.output
    expected = api.predict(trained.model_uri, csv, None)
    got = pd.read_csv(out, parse_dates=["ds"])
    pd.testing.assert_frame_equal(got, expected, check_dtype=False)
    refused = invoke("predict", trained.model_uri, parquet, "--engine", "spark", "--id-col", "unique_id")
    assert refused.exit_code == 2 and "not with --engine spark" in refused.output
