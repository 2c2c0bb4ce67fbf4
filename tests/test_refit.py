"""The saved model is fitted on all of the data; short series train, forecast and are left out of the scores."""

import mlflow
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import DATA, TINY_NET
from mlflow.tracking import MlflowClient

from forecast import api, registry
from forecast.cli import main
from forecast.intervals import Calibration
from forecast.models import partner
from forecast.models.ar import fit_series

TINY = {"hidden_size": 8, "layers": 1, "epochs": 2, "lookback": 12}


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def params_of(run_id):
    return MlflowClient().get_run(run_id).data.params


@pytest.mark.parametrize("name", ["seasonal-naive", "ar", "gru", "transformer"])
def test_the_saved_model_equals_a_fresh_fit_on_all_the_data(name, m3_csv):
    hyper = TINY if name in registry.NEURAL else {}
    result = api.train(m3_csv, name, 6, **hyper)
    assert result.fit_on == "all" and params_of(result.run_id)["fit_on"] == "all"
    data = api.load(m3_csv)
    scored = registry.create(name, **hyper).fit(data.df.groupby("unique_id").head(-6), data.freq, 6)
    fresh = registry.create(name, **{**hyper, **scored.final_settings()}).fit(data.df, data.freq, 6)
    fresh.inherit(scored)  # the nets: the calibration and combination weight of the fit that held windows out
    if name in registry.NEURAL:
        assert scored.final_settings() == {"validate": False, "epochs": scored.histories_[0].best_epoch}
        assert params_of(result.run_id)["final_epochs"] == str(scored.histories_[0].best_epoch)
    saved = mlflow.pyfunc.load_model(result.model_uri).predict(data.df, params={"horizon": 6})
    np.testing.assert_allclose(saved["yhat"], fresh.predict(6)["yhat"], rtol=1e-6)
    # and not the model that was scored, whose parameters never saw the last 6 months (unless it has none: the
    # seasonal naive, or a net's Theta line or damped trend alone, which read the data they are given)
    fixed = name == "seasonal-naive" or (name in registry.NEURAL and scored.combine_weight_ == 0
                                         and not partner.uses(scored.partner_kind_, "ar"))
    assert fixed or not np.allclose(saved["yhat"], scored.predict(6, data.df)["yhat"], rtol=1e-6)


def test_no_refit_saves_the_scored_model_and_says_so(m3_csv):
    result = run("train", m3_csv, "--model", "gru", *TINY_NET, "--horizon", 6, "--quiet", "--no-refit")
    assert result.exit_code == 0, result.output
    assert "fitted on the data before the holdout (the model scored)" in result.output
    (logged,) = MlflowClient().search_runs([MlflowClient().get_experiment_by_name("m3_three").experiment_id])
    assert logged.data.params["fit_on"] == "holdout" and "final_epochs" not in logged.data.params
    data = api.load(m3_csv)
    scored = registry.create("gru", **TINY).fit(data.df.groupby("unique_id").head(-6), data.freq, 6)
    saved = mlflow.pyfunc.load_model(f"runs:/{logged.info.run_id}/model").predict(data.df, params={"horizon": 6})
    np.testing.assert_allclose(saved["yhat"], scored.predict(6, data.df)["yhat"], rtol=1e-6)
    refitted = run("train", m3_csv, "--model", "naive", "--horizon", 6)
    assert "fitted on all of the data" in refitted.output


@pytest.fixture
def short_csv(tmp_path):
    """Real M1 and M3 series cut to 3 to 500 points: a 500-point series is made of several M3 ones end to end."""
    m3 = pd.read_csv(DATA / "m3_monthly_train.csv")
    pool = [part.y.to_numpy() for _, part in m3.groupby("unique_id", sort=False) if len(part) >= 100][:15]
    rows = [pd.DataFrame({"unique_id": "long", "ds": pd.date_range("1960-01-01", periods=500, freq="MS"),
                          "y": np.concatenate(pool[:6])[:500]})]
    for k, n in enumerate([3, 4, 5, 8, 12, 20, 40, 80]):
        rows.append(pd.DataFrame({"unique_id": f"s{n}", "ds": pd.date_range("2000-01-01", periods=n, freq="MS"),
                                  "y": pool[6 + k][-n:]}))
    path = tmp_path / "short.csv"
    pd.concat(rows).to_csv(path, index=False)
    return path


@pytest.mark.parametrize("name", list(registry.MODELS))
def test_series_of_3_to_500_points_train_every_model_and_forecast_every_series(name, short_csv, tmp_path):
    hyper = TINY_NET[:-2] if name in registry.NEURAL else []  # the default lookback: 2 x 18 = 36 points
    result = run("train", short_csv, "--model", name, "--horizon", 18, *hyper, "--quiet")
    assert result.exit_code == 0, result.output
    assert "scored on 4 of 9 series; the others are too short to hold out 18 points" in result.output
    (logged,) = MlflowClient().search_runs([MlflowClient().get_experiment_by_name("short").experiment_id])
    params = logged.data.params
    assert params["n_series_scored"] == "4" and params["fit_on"] == "all"
    if name in registry.NEURAL:
        # in the scored fit only the 500-point series (and the 80-point one) have the 38 a validation window needs
        assert params["validated_series"] == "2"
    out = tmp_path / "out.csv"
    predicted = run("predict", f"runs:/{logged.info.run_id}/model", short_csv, "--horizon", 18, "-o", out)
    assert predicted.exit_code == 0, predicted.output
    frame = pd.read_csv(out)
    assert frame.groupby("unique_id").size().to_dict() == {uid: 18 for uid in
                                                           ["long", "s12", "s20", "s3", "s4", "s40", "s5", "s8",
                                                            "s80"]}
    assert np.isfinite(frame["yhat"]).all()


def test_nets_with_no_validation_window_train_the_full_schedule_and_say_so(tmp_path):
    m3 = pd.read_csv(DATA / "m3_yearly_train.csv")
    path = tmp_path / "yearly.csv"
    m3[m3.unique_id.isin(m3.unique_id.unique()[:5])].groupby("unique_id").tail(10).to_csv(path, index=False)
    data = api.load(path)
    seen = []
    model = registry.create("gru", **{**TINY, "lookback": 6}).fit(data.df, data.freq, 6,
                                                                  on_epoch=lambda e, m: seen.append(m))
    details, _ = model.fit_details()
    assert details["validated_series"] == 0 and "trained the full 2 epochs" in details["note"]
    assert [("val_loss" in m) for m in seen] == [False, False] and model.final_settings() == {}


def test_ar_steps_down_to_an_order_the_series_can_carry():
    y = np.random.default_rng(1).normal(size=9)
    tau, params, first, _ = fit_series(y, lags=6, max_lags=6, ic="aic")
    assert first == 6 and tau == 3 and len(params) == 4  # 9 points carry τ = 3 (n >= 2τ + 2)
    tau, params, _, sigma = fit_series(np.array([4.0, 6.0]), lags=None, max_lags=8, ic="aic")
    assert tau == 0 and params.tolist() == [5.0] and sigma == pytest.approx(np.sqrt(2))  # two points: their mean


def test_ar_logs_how_many_series_fell_back_to_a_lower_order(short_csv):
    data = api.load(short_csv)
    model = registry.create("ar", lags=4).fit(data.df, data.freq, 6)
    details, table = model.fit_details()
    short = table[table.lags < table.lags_first_tried]
    # differenced series of 3, 4, 5 and 8 points (2, 3, 4, 7 differences) cannot carry AR(4)
    assert sorted(short.unique_id) == ["s3", "s4", "s5", "s8"]
    assert details["lower_order_fallbacks"] == 4


@pytest.mark.parametrize("name", ["gru", "gbm"])
def test_the_saved_model_calibrates_on_the_scored_fits_validation_window_and_its_holdout(name, m3_csv):
    hyper = TINY if name == "gru" else {"lookback": 12}
    result = api.train(m3_csv, name, 6, **hyper)
    assert params_of(result.run_id)["final_calibration"] == "validation+holdout"
    data = api.load(m3_csv)
    scored = registry.create(name, **hyper).fit(data.df.groupby("unique_id").head(-6), data.freq, 6)
    # the scored model's errors on the 6 points it was scored on, computed here apart: 3 series, so from 6 origins
    # (the last 6 - k points from the points before them), each error over its history's seasonal-naive MAE
    full = [g.y.to_numpy(float) for _, g in data.df.groupby("unique_id", sort=False)]
    ids = list(data.df.unique_id.unique())
    holdout = np.full((6 * 3, 6), np.nan)
    for k in range(6):
        histories = [y[:len(y) - 6 + k] for y in full]
        predicted = scored._forecast(ids, histories, 6 - k)
        for i, (y, past) in enumerate(zip(full, histories)):
            scale = np.mean(np.abs(past[12:] - past[:-12]))
            holdout[k * 3 + i, :6 - k] = (y[len(past):] - predicted[i]) / scale
    expected = Calibration.from_residuals(np.concatenate([scored.residuals_, holdout]), "validation+holdout")
    saved = result.fitted.calibration_
    assert saved.source == "validation+holdout" and saved.n == expected.n < Calibration.MIN_PER_STEP
    # 36 residuals at the first step, fewer after: pooled, growing as step ** power, the power logged
    assert float(params_of(result.run_id)["final_calibration_growth"]) == pytest.approx(expected.power, abs=1e-4)
    np.testing.assert_allclose(saved.table, expected.table, rtol=1e-6)
    assert not np.allclose(saved.table, scored.calibration_.table)  # not the validation window's alone
    # and the saved model forecasts with it
    bands = mlflow.pyfunc.load_model(result.model_uri).predict(data.df, params={"horizon": 6, "level": [95]})
    yhat = bands["yhat"].to_numpy().reshape(3, 6)
    spread = expected.quantiles([0.025, 0.975], 6)  # (6, 2)
    scales = np.array([np.mean(np.abs(y[12:] - y[:-12])) for y in full])
    np.testing.assert_allclose(bands["yhat_hi_95"].to_numpy().reshape(3, 6), np.maximum(
        yhat + scales[:, None] * spread[None, :, 1], yhat), rtol=1e-6)


@pytest.mark.parametrize("name", ["gru", "gbm"])
def test_series_too_short_to_calibrate_score_the_points_and_say_so(name, tmp_path):
    path = tmp_path / "four.csv"
    pd.DataFrame({"ds": pd.date_range("2020-01-01", periods=4, freq="MS"), "y": [1.0, 2.0, 2.0, 5.0]}).to_csv(
        path, index=False)
    result = run("train", path, "--model", name, "--horizon", 2, "--quiet", *(TINY_NET if name == "gru" else ()))
    # two points before the holdout: no series has the 4 that a calibration needs, so the holdout scores points
    assert "no prediction intervals scored: no series had the 4 points" in result.output
    (logged,) = MlflowClient().search_runs([MlflowClient().get_experiment_by_name("four").experiment_id])
    assert logged.data.params["intervals"].startswith("none")
    assert "mase" in logged.data.metrics and "coverage_80" not in logged.data.metrics
    holdout = pd.read_csv(mlflow.artifacts.download_artifacts(f"runs:/{logged.info.run_id}/holdout_forecasts.csv"))
    assert list(holdout.columns) == ["fold", "unique_id", "ds", "y", "yhat"] and len(holdout) == 2
    # the saved model, fitted on all four points, calibrates on them and gives intervals
    out = tmp_path / "f.csv"
    assert run("predict", f"runs:/{logged.info.run_id}/model", path, "--level", 80, "-o", out).exit_code == 0
    bands = pd.read_csv(out)
    assert len(bands) == 2 and (bands.yhat_lo_80 <= bands.yhat).all() and (bands.yhat <= bands.yhat_hi_80).all()
