"""Metrics against a per-series oracle, and against ../shared/bench/score.py, the independent scorer."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from conftest import SHARED
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from forecast.errors import DataError
from forecast.metrics import evaluate, mase, smape

finite = st.floats(-1e6, 1e6, allow_nan=False)


@given(arrays(float, 10, elements=finite), arrays(float, 10, elements=finite))
def test_smape_matches_the_pointwise_definition(y, f):
    expected = np.mean([0.0 if abs(a) + abs(b) == 0 else 200 * abs(a - b) / (abs(a) + abs(b)) for a, b in zip(y, f)])
    assert smape(y, f) == pytest.approx(expected, abs=1e-9)
    assert 0.0 <= smape(y, f) <= 200.0 + 1e-9


@given(arrays(float, 30, elements=finite), arrays(float, 6, elements=finite), arrays(float, 6, elements=finite),
       st.integers(1, 12))
def test_mase_is_mae_over_in_sample_seasonal_naive_mae(insample, y, f, season):
    scale = np.mean(np.abs(insample[season:] - insample[:-season]))
    value = mase(y, f, insample, season)
    if scale == 0:
        assert np.isnan(value)
    else:
        assert value == pytest.approx(np.mean(np.abs(y - f)) / scale, rel=1e-9)


def test_mase_uses_lag_one_when_the_series_is_not_longer_than_a_season():
    assert mase(np.array([3.0]), np.array([1.0]), np.array([1.0, 2.0, 4.0]), season=12) == pytest.approx(2 / 1.5)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(8, 20), min_size=1, max_size=4), st.integers(0, 2**32 - 1))
def test_evaluate_is_the_mean_over_series(lengths, seed):
    rng = np.random.default_rng(seed)
    train, test, fc = [], [], []
    for i, n in enumerate(lengths):
        uid = f"s{i}"
        y = rng.normal(100, 10, n + 3)
        train.append(pd.DataFrame({"unique_id": uid, "ds": np.arange(n), "y": y[:n]}))
        test.append(pd.DataFrame({"unique_id": uid, "ds": np.arange(n, n + 3), "y": y[n:]}))
        fc.append(pd.DataFrame({"unique_id": uid, "ds": np.arange(n, n + 3), "yhat": y[n:] + rng.normal(0, 5, 3)}))
    train, test, fc = pd.concat(train), pd.concat(test), pd.concat(fc)
    got = evaluate(train, test, fc, season=4)
    per = [smape(t.y, f.yhat) for (_, t), (_, f) in zip(test.groupby("unique_id"), fc.groupby("unique_id"))]
    assert got["smape"] == pytest.approx(np.mean(per))


def test_evaluate_agrees_with_the_independent_scorer(tmp_path):
    scorer = SHARED / "bench" / "score.py"
    if not scorer.exists():
        pytest.skip("../shared/bench/score.py is not beside the checkout")
    rng = np.random.default_rng(0)
    full = pd.read_csv(SHARED / "data" / "m3_monthly_train.csv")
    full = full[full["unique_id"].isin(full["unique_id"].unique()[:20])]
    from_end = full.groupby("unique_id").cumcount(ascending=False)
    train, test = full[from_end >= 18], full[from_end < 18]
    pred = test.rename(columns={"y": "yhat"}).assign(yhat=lambda d: d.yhat * rng.uniform(0.7, 1.3, len(d)))
    for name, frame in (("train", train), ("test", test), ("pred", pred)):
        frame.to_csv(tmp_path / f"{name}.csv", index=False)
    out = subprocess.run([sys.executable, str(scorer), "--train", tmp_path / "train.csv", "--test",
                          tmp_path / "test.csv", "--pred", tmp_path / "pred.csv", "--season", "12"],
                         capture_output=True, text=True, check=True)
    reference = json.loads(out.stdout)
    ours = evaluate(train, test, pred, season=12)
    assert ours["smape"] == pytest.approx(reference["smape"], abs=1e-3)
    assert ours["mase"] == pytest.approx(reference["mase"], abs=1e-3)
    assert ours["mae"] == pytest.approx(reference["mae"], abs=1e-5)


def test_error_by_step_is_logged_and_equals_an_independent_computation(air_csv, tmp_path):
    """The curves smape_by_step and mase_by_step and error_by_step.csv of a 2-fold backtest equal the errors
    recomputed from the logged holdout forecasts; their means over steps equal the run's sMAPE and MASE."""
    import mlflow

    from forecast import api

    result = api.backtest(air_csv, "seasonal-naive", 6, folds=2)
    client = mlflow.MlflowClient()
    holdout = pd.read_csv(client.download_artifacts(result.run_id, "holdout_forecasts.csv", str(tmp_path)))
    table = pd.read_csv(client.download_artifacts(result.run_id, "error_by_step.csv", str(tmp_path)))
    y = pd.read_csv(air_csv)["passengers"].to_numpy(float)
    expected_smape, expected_mase = [], []
    for k in range(6):
        errors, scaled = [], []
        for fold in (1, 2):
            origin = len(y) - 6 * (3 - fold)  # the points before the fold's holdout
            actual, forecast = y[origin + k], y[origin + k - 12]  # the seasonal naive by hand
            errors.append(200 * abs(actual - forecast) / (abs(actual) + abs(forecast)))
            scaled.append(abs(actual - forecast) / np.mean(np.abs(y[12:origin] - y[:origin - 12])))
        expected_smape.append(np.mean(errors))
        expected_mase.append(np.mean(scaled))
    np.testing.assert_allclose(table["smape"], expected_smape, rtol=1e-9)
    np.testing.assert_allclose(table["mase"], expected_mase, rtol=1e-9)
    assert table["step"].tolist() == [1, 2, 3, 4, 5, 6] and table["n"].tolist() == [2] * 6
    history = client.get_metric_history(result.run_id, "smape_by_step")
    assert [m.step for m in history] == [1, 2, 3, 4, 5, 6]
    np.testing.assert_allclose([m.value for m in history], expected_smape, rtol=1e-9)
    assert np.mean(expected_smape) == pytest.approx(result.metrics["smape"])
    assert np.mean(expected_mase) == pytest.approx(result.metrics["mase"])
    assert len(holdout) == 12


def test_a_fit_horizon_below_the_horizon_marks_the_recursive_steps(air_csv):
    from forecast import api

    result = api.backtest(air_csv, "gbm", 12, fit_horizon=4, max_iter=20, final_fit=False)
    table = result.error_by_step
    assert table["part"].tolist() == ["direct"] * 4 + ["recursive"] * 8
    assert result.fitted.h_ == 4 and len(result.forecast) == 12
    with pytest.raises(DataError, match="--fit-horizon 13: must be between 1 and the horizon"):
        api.backtest(air_csv, "gbm", 12, fit_horizon=13)
