"""The local engine (forecast.parallel): per-series models fitted in several forked processes equal the fit in one
process, and `--threads` turns it on only where there are enough series."""

import sys

import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import DATA, assert_same_fit

from forecast import api, parallel, registry
from forecast.cli import main
from forecast.data import dataset_from_frame


@pytest.fixture
def history(tmp_path):
    """120 real M3 monthly series of many lengths."""
    df = pd.read_csv(DATA / "m3_monthly_train.csv")
    df = df[df["unique_id"].isin(df["unique_id"].drop_duplicates().iloc[:120])]
    path = tmp_path / "m3.csv"
    df.to_csv(path, index=False)
    return df, path


@pytest.mark.parametrize("model", ["ar", "naive", "seasonal-naive"])
def test_fitted_in_processes_equals_one_process(history, model):
    df, path = history
    data = dataset_from_frame(df, path)
    single = registry.create(model).fit(data.df, data.freq, 6)
    parts = parallel.fit(registry.create(model), data.df, data.freq, 6, processes=3)
    assert single.residuals_.shape == (240, 6)  # 2 origins per series
    assert_same_fit(single, parts, data.df, 6)


def test_processes_only_where_they_pay(monkeypatch):
    ar, least = registry.model_class("ar"), registry.model_class("ar").processes_from
    assert parallel.fitter(ar, 10_000, processes=1) is None
    assert parallel.fitter(ar, least - 1, processes=2) is None
    assert parallel.fitter(ar, least, processes=2).processes == 2
    for model in ("naive", "seasonal-naive", "gru", "gbm"):  # cheap fits, or not series by series
        assert parallel.fitter(registry.model_class(model), 100_000, processes=2) is None
    parallel.use_cores(None)  # as in a new process: an earlier command of this one set it
    monkeypatch.setenv("FORECAST_THREADS", "3")
    assert parallel.cores() == 3 and parallel.fitter(ar, least).processes == 3
    monkeypatch.setenv("FORECAST_THREADS", "many")
    assert parallel.cores() == 1
    try:
        parallel.use_cores(2)  # --threads 2
        assert parallel.cores() == 2
    finally:
        parallel.use_cores(None)


def test_train_with_threads_fits_ar_in_processes_to_the_same_model(history, monkeypatch):
    from mlflow import MlflowClient

    _, path = history
    monkeypatch.setattr(registry.model_class("ar"), "processes_from", 100)
    one = api.train(path, "ar", horizon=6, experiment="one")
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):  # --threads sets them here
        monkeypatch.setenv(name, "1")
    try:
        done = CliRunner().invoke(main, ["train", str(path), "--model", "ar", "-H", "6", "--threads", "2",
                                         "--experiment", "two"], catch_exceptions=False)
    finally:
        parallel.use_cores(None)
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(1)
    assert done.exit_code == 0, done.output
    run_id = done.output.split("run ")[1].split(")")[0]
    params = MlflowClient().get_run(run_id).data.params
    assert params["processes"] == "2" and params["engine"] == "local"
    assert "processes" not in MlflowClient().get_run(one.run_id).data.params
    expected = api.predict(one.model_uri, path, 8, levels=(80, 95))
    got = api.predict(f"runs:/{run_id}/model", path, 8, levels=(80, 95))
    pd.testing.assert_frame_equal(got, expected, rtol=1e-9)
