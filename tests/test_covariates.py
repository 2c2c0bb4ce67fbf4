"""Covariates end to end: the roles and their errors, calendar features, the future file, no leakage of --hist
values past the origin, saving and loading through MLflow and the CLI, and a synthetic series whose only
information is a future covariate (the covariate path must carry it, not just run)."""

import json

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from conftest import reseal

from forecast import registry
from forecast.cli import main
from forecast.covariates import CovariateEncoder, calendar_features, calendar_names, next_rows
from forecast.data import Covariates, Frequency, dataset_from_frame, rolling_origins
from forecast.errors import DataError, ModelError

NOISE = 0.02


def driven(n=240, series=3, seed=0):
    """Daily series y = 10 + 3 x + noise, x an iid uniform covariate known in advance (and a store type)."""
    rng = np.random.default_rng(seed)
    frames = []
    for s in range(series):
        x = rng.uniform(0, 1, n)
        frames.append(pd.DataFrame({"unique_id": f"s{s}", "ds": pd.date_range("2020-01-01", periods=n, freq="D"),
                                    "y": 10 + 3 * x + NOISE * rng.standard_normal(n), "x": x,
                                    "footfall": rng.normal(100, 10, n), "kind": "ab"[s % 2]}))
    return pd.concat(frames, ignore_index=True)


def load(df, path="data.csv", **roles):
    df.to_csv(path, index=False)  # in the test's own working directory
    return dataset_from_frame(df, path, covariates=Covariates.of(**roles))


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


# -- roles and their errors

def test_roles_parse_and_a_column_in_two_roles_is_refused():
    spec = Covariates.of("a, b", ["c"], "d", calendar=True)
    assert (spec.futr, spec.hist, spec.static, spec.calendar) == (("a", "b"), ("c",), ("d",), True)
    assert not Covariates.of() and Covariates.of(calendar=True)
    with pytest.raises(DataError, match=r"column 'a' is given two roles \(--futr and --hist\)"):
        Covariates.of("a", "a")


@pytest.mark.parametrize("roles, message", [
    ({"futr": "price"}, r"data.csv: no column 'price' for the covariates"),
    ({"futr": "y"}, r"column 'y' is the id, time or target column"),
    ({"futr": "kind"}, r"row 2: 'ab'|row 2: 'a' in covariate column 'kind' is not a number"),
    ({"static": "footfall"}, r"static column 'footfall' changes within series 's0'"),
])
def test_bad_covariate_columns_are_refused_by_name(roles, message):
    df = driven(n=20)
    with pytest.raises(DataError, match=message):
        data = load(df, **roles)
        CovariateEncoder.fit(data.df, data.covariates, data.freq)


def test_a_missing_covariate_value_names_its_row_unless_filled():
    df = driven(n=20)
    df.loc[5, "x"] = np.nan
    with pytest.raises(DataError, match=r"row 7: missing value of covariate 'x' in series 's0'"):
        load(df, futr="x")
    df.to_csv("data.csv", index=False)
    filled = dataset_from_frame(df, "data.csv", fill="interpolate", covariates=Covariates.of("x"))
    assert filled.df.loc[5, "x"] == pytest.approx((df.loc[4, "x"] + df.loc[6, "x"]) / 2)


def test_models_refuse_the_roles_they_cannot_use():
    data = load(driven(n=40), futr="x", static="kind")
    with pytest.raises(ModelError, match=r"model 'seasonal-naive' cannot use --futr, --static: it takes no covariates"):
        registry.create("seasonal-naive").fit(data.df, data.freq, 7, covariates=data.covariates)
    with pytest.raises(ModelError, match=r"model 'ar' cannot use --static: it takes --futr, --calendar"):
        registry.create("ar").fit(data.df, data.freq, 7, covariates=data.covariates)


def test_calendar_features_encode_the_position_in_the_day_week_and_year():
    freq = Frequency("30min", 1, 48)
    assert calendar_names(freq) == ["hour_of_day_sin", "hour_of_day_cos", "day_of_week_sin", "day_of_week_cos",
                                    "day_of_year_sin", "day_of_year_cos"]
    f = calendar_features(pd.to_datetime(["2024-01-01 06:00", "2024-01-01 12:00", "2024-01-03 00:00"]), freq)
    np.testing.assert_allclose(f[:, 0], [1.0, 0.0, 0.0], atol=1e-12)  # 06:00 is a quarter of the day
    np.testing.assert_allclose(f[:, 1], [0.0, -1.0, 1.0], atol=1e-12)
    np.testing.assert_allclose(f[2, 2:4], [np.sin(4 * np.pi / 7), np.cos(4 * np.pi / 7)])  # Wednesday: day 2
    np.testing.assert_allclose(f[:, 4], [0.0, 0.0, np.sin(4 * np.pi / 365.25)], atol=1e-12)  # 3 January: day 2
    np.testing.assert_allclose(f[:, 5], [1.0, 1.0, np.cos(4 * np.pi / 365.25)], atol=1e-12)
    assert calendar_names(Frequency("MS", 1, 12)) == ["month_of_year_sin", "month_of_year_cos"]
    with pytest.raises(DataError, match=r"--calendar: data at the 'YS-JAN' frequency has no position"):
        calendar_names(Frequency("YS-JAN", 1, 1))
    with pytest.raises(DataError, match=r"--calendar: the time column holds integer steps"):
        calendar_names(Frequency(None, 1, 1))


# -- the future values

@pytest.mark.parametrize("name, params", [
    ("gru", {"hidden_size": 8, "layers": 1, "epochs": 2, "lookback": 14}), ("gbm", {"max_iter": 20, "lookback": 14})])
def test_calendar_features_alone_forecast_past_the_trained_horizon(name, params):
    """Calendar features follow from the dates, so a model with no other covariates goes on recursively; one with
    --futr or --hist columns cannot (their values past the future file or the origin are unknown)."""
    data = load(driven(n=120), calendar=True)
    model = registry.create(name, **params).fit(data.df, data.freq, 7, covariates=data.covariates)
    long = model.predict(17, levels=(80,))
    assert len(long) == 3 * 17 and long["yhat"].notna().all()
    short = model.predict(7)
    np.testing.assert_allclose(long.groupby("unique_id").head(7)["yhat"], short["yhat"], rtol=1e-9)
    assert (long["yhat_lo_80"] <= long["yhat"]).all() and (long["yhat"] <= long["yhat_hi_80"]).all()
    for roles in ({"futr": "x", "calendar": True}, {"hist": "footfall"}):
        other = load(driven(n=120), **roles)
        fitted = registry.create(name, **params).fit(other.df, other.freq, 7, covariates=other.covariates)
        with pytest.raises(ModelError, match="trained with covariates to forecast 7 steps; it cannot forecast 17"):
            fitted.predict(17, future=next_rows(other.df, other.df, 17) if "futr" in roles else None)


def test_future_rows_are_checked_naming_the_series_column_and_stamp():
    data = load(driven(n=60), futr="x")
    model = registry.create("ar").fit(data.df, data.freq, 5, covariates=data.covariates)
    future = pd.DataFrame({"unique_id": np.repeat(["s0", "s1", "s2"], 5),
                           "ds": list(pd.date_range("2020-03-01", periods=5, freq="D")) * 3, "x": 0.5})
    assert len(model.predict(5, data.df, future=future)) == 15
    with pytest.raises(DataError, match=r"give their values for the 5 steps ahead with --future FILE"):
        model.predict(5, data.df)
    short = future.drop(index=[7])  # s1 lacks 2020-03-03
    with pytest.raises(DataError, match=r"f.csv: series 's1' has no value of 'x' at 2020-03-03 00:00:00"):
        model.predict(5, data.df, future=short, source="f.csv")
    with pytest.raises(DataError, match=r"no column 'x' among the future covariates"):
        model.predict(5, data.df, future=future.drop(columns="x"))


@pytest.mark.parametrize("name, params", [
    ("gru", {"hidden_size": 8, "layers": 1, "epochs": 2, "lookback": 14, "steps_per_epoch": 5}),
    ("gbm", {"max_iter": 20, "lookback": 14})])
def test_hist_values_after_the_origin_do_not_change_the_forecast(name, params):
    data = load(driven(n=120), hist="footfall", futr="x", calendar=True)
    fit, _ = rolling_origins(data.df, 7, 1, 7)[0]
    model = registry.create(name, **params)
    model.fit(fit, data.freq, 7, covariates=data.covariates)
    future = next_rows(data.df, fit, 7)
    before = model.predict(7, fit, future=future)
    perturbed = future.assign(footfall=future["footfall"] * 100 + 1e6)  # what happens after the origin
    after = model.predict(7, fit, future=perturbed)
    np.testing.assert_array_equal(before["yhat"].to_numpy(), after["yhat"].to_numpy())
    changed = model.predict(7, fit, future=future.assign(x=future["x"] + 1.0))  # the futr ones are read
    assert not np.allclose(changed["yhat"], before["yhat"])


# -- the information test

@pytest.mark.parametrize("name", ["ar", "gru", "lstm", "rnn", "transformer", "gbm"])
def test_a_future_covariate_carries_the_information(name):
    data = load(driven(n=240), futr="x")
    fit, test = rolling_origins(data.df, 7, 1, 7)[0]
    errors = {}
    for covariates in (data.covariates, Covariates()):
        params = {} if name == "ar" else {"lookback": 14} if name == "gbm" else {
            "hidden_size": 16, "layers": 1, "epochs": 30, "lookback": 14, "lr": 0.01,
            "combine": "none"}  # the net alone, not its AR partner
        model = registry.create(name, **params).fit(fit, data.freq, 7, covariates=covariates)
        future = next_rows(data.df, fit, 7) if covariates else None
        yhat = model.predict(7, fit, future=future)["yhat"].to_numpy()
        errors[bool(covariates)] = float(np.mean(np.abs(yhat - test["y"].to_numpy())))
    # the covariate alone moves y by 3 x (mean absolute deviation 0.75); the noise has MAE 0.016
    assert errors[True] < 0.15, errors
    assert errors[False] > 0.45, errors


def test_the_local_head_learns_a_covariate_that_acts_non_linearly():
    """y = 10 + 6 |x - 0.5|: x's effect is U-shaped (as demand's on temperature), uncorrelated with x itself, so the
    linear map of the future covariates can read nothing from it; the per-step MLP of the local head can."""
    df = driven(n=240)
    df["y"] = 10 + 6 * np.abs(df["x"] - 0.5) + NOISE * np.random.default_rng(1).standard_normal(len(df))
    data = load(df, futr="x")
    fit, test = rolling_origins(data.df, 7, 1, 7)[0]
    errors = {}
    for head in ("local", "linear"):
        model = registry.create("gru", hidden_size=16, layers=1, epochs=30, lookback=14, lr=0.01, combine="none",
                                head=head).fit(fit, data.freq, 7, covariates=data.covariates)
        yhat = model.predict(7, fit, future=next_rows(data.df, fit, 7))["yhat"].to_numpy()
        errors[head] = float(np.mean(np.abs(yhat - test["y"].to_numpy())))
    # 6 |x - 0.5| has mean absolute deviation 0.75 about its mean; the noise has MAE 0.016
    assert errors["local"] < 0.3, errors
    assert errors["linear"] > 0.5, errors


def test_a_covariate_net_saved_before_the_local_head_loads_with_its_linear_head(tmp_path):
    data = load(driven(n=97), futr="x", calendar=True)
    fit, _ = rolling_origins(data.df, 7, 1, 7)[0]
    future = next_rows(data.df, fit, 7)
    model = registry.create("gru", hidden_size=8, layers=1, epochs=2, lookback=14, head="linear")
    model.fit(fit, data.freq, 7, covariates=data.covariates)
    folder = model.save(tmp_path / "model")
    weights = torch.load(folder / "weights.pt", weights_only=True)  # as saved before: head.weight, head.bias
    torch.save({k.replace("head.linear.", "head."): v for k, v in weights.items()}, folder / "weights.pt")
    doc = json.loads((folder / "forecaster.json").read_text())
    del doc["config"]["head"]
    (folder / "forecaster.json").write_text(json.dumps(doc))
    reseal(folder)
    old = registry.load(folder)
    assert old.config.head == "linear"  # the head it was saved with, not the new default
    np.testing.assert_allclose(old.predict(7, fit, future=future)["yhat"],
                               model.predict(7, fit, future=future)["yhat"], rtol=1e-6)


def test_a_model_keeps_the_calendar_parts_it_was_fitted_with(tmp_path):
    """The position in the year joined sub-daily data's calendar on 2026-12-06: a saved model records its parts, and
    one saved before, whose encoder recorded none, reads the hour and the weekday only, as it was trained to."""
    df = driven(n=120)
    df["ds"] = df.groupby("unique_id").cumcount().map(lambda i: pd.Timestamp("2020-01-01") + pd.Timedelta(hours=i))
    data = load(df, futr="x", calendar=True)
    fit, _ = rolling_origins(data.df, 6, 1, 6)[0]
    future = next_rows(data.df, fit, 6)
    model = registry.create("gbm", max_iter=20, lookback=12).fit(fit, data.freq, 6, covariates=data.covariates)
    assert model.encoder_.calendar == ("hour_of_day", "day_of_week", "day_of_year")
    assert model.encoder_.past_dim == 1 + 6
    folder = model.save(tmp_path / "model")
    doc = json.loads((folder / "forecaster.json").read_text())
    assert doc["covariates"]["calendar"] == ["hour_of_day", "day_of_week", "day_of_year"]
    np.testing.assert_allclose(registry.load(folder).predict(6, fit, future=future)["yhat"],
                               model.predict(6, fit, future=future)["yhat"], rtol=1e-12)
    del doc["covariates"]["calendar"]
    old = CovariateEncoder.from_dict(doc["covariates"], data.freq)
    assert old.calendar == ("hour_of_day", "day_of_week") and old.past_dim == 1 + 4
    daily = load(driven(n=60), calendar=True)
    doc = CovariateEncoder.fit(daily.df, daily.covariates, daily.freq).to_dict()
    del doc["calendar"]
    assert CovariateEncoder.from_dict(doc, daily.freq).calendar == ("day_of_week", "day_of_year")


# -- saved and loaded through MLflow and the CLI

def test_train_predict_and_the_pyfunc_model_agree_with_covariates(tmp_path):
    df = driven(n=90)
    history, ahead = df.groupby("unique_id").head(83), df.groupby("unique_id").tail(7)
    history.to_csv(tmp_path / "history.csv", index=False)
    ahead.drop(columns=["y", "footfall"]).to_csv(tmp_path / "future.csv", index=False)
    result = run("train", tmp_path / "history.csv", "--model", "gru", "--horizon", "7", "--futr", "x",
                 "--hist", "footfall", "--static", "kind", "--calendar", "--hidden-size", "8", "--layers", "1",
                 "--epochs", "2", "--lookback", "14", "--quiet")
    assert result.exit_code == 0, result.output
    uri = next(line.split()[1] for line in result.output.splitlines() if line.startswith("model:"))
    assert "--future FUTURE" in result.output  # the printed predict command asks for the future file
    run_id = uri.split("/")[1]
    params = mlflow.get_run(run_id).data.params
    assert (params["covariates_futr"], params["covariates_hist"], params["covariates_static"],
            params["covariates_calendar"]) == ("x", "footfall", "kind", "True")
    out = tmp_path / "f.csv"
    result = run("predict", uri, tmp_path / "history.csv", "--future", tmp_path / "future.csv", "--level", "80",
                 "-o", out)
    assert result.exit_code == 0, result.output
    cli = pd.read_csv(out)
    assert len(cli) == 21 and list(cli.columns) == ["unique_id", "ds", "yhat", "yhat_lo_80", "yhat_hi_80"]
    request = pd.concat([history, ahead.drop(columns=["y", "footfall"])]).sort_values(["unique_id", "ds"])
    request = request.assign(ds=request["ds"].astype(str))
    served = mlflow.pyfunc.load_model(uri).predict(request, params={"level": [80]})
    np.testing.assert_allclose(served["yhat"].to_numpy(), cli["yhat"].to_numpy(), rtol=1e-6)
    np.testing.assert_allclose(served["yhat_lo_80"].to_numpy(), cli["yhat_lo_80"].to_numpy(), rtol=1e-6)
    missing = run("predict", uri, tmp_path / "history.csv")
    assert missing.exit_code == 1 and "--future FILE" in missing.output
    other = df.drop(columns="x")
    other.to_csv(tmp_path / "other.csv", index=False)
    wrong = run("predict", uri, tmp_path / "other.csv", "--future", tmp_path / "future.csv")
    assert wrong.exit_code == 1 and "no column 'x' for the covariates" in wrong.output


@pytest.mark.parametrize("name, params", [
    ("gru", {"hidden_size": 8, "layers": 1, "epochs": 2, "lookback": 14}), ("gbm", {"max_iter": 20, "lookback": 14})])
def test_the_saved_model_calibrates_on_the_holdout_with_its_covariates(name, params):
    data = load(driven(n=90), futr="x", hist="footfall")
    fit, test = rolling_origins(data.df, 7, 1, 7)[0]
    scored = registry.create(name, **params).fit(fit, data.freq, 7, covariates=data.covariates)
    final = registry.create(name, **{**params, **scored.final_settings()}).fit(data.df, data.freq, 7,
                                                                                covariates=data.covariates)
    final.inherit(scored)
    assert final.calibration_.source == "validation+holdout"
    # the first origin's errors (3 series: 7 origins) are the scored model's forecasts of the holdout, as predict
    # gives them from the future rows, over each history's seasonal-naive MAE (weekly season)
    forecast = scored.predict(7, fit, future=next_rows(data.df, fit, 7))["yhat"].to_numpy().reshape(3, 7)
    histories = [g.to_numpy(float) for _, g in fit.groupby("unique_id")["y"]]
    scales = np.array([np.mean(np.abs(y[7:] - y[:-7])) for y in histories])
    expected = (test["y"].to_numpy().reshape(3, 7) - forecast) / scales[:, None]
    np.testing.assert_allclose(final.holdout_residuals_[:3], expected, rtol=1e-6)
    assert final.calibration_.n == 2 * scored.calibration_.n  # twice the residuals at the step with the fewest


def test_a_naive_model_with_covariates_fails_before_a_run_starts(tmp_path):
    driven(n=40).to_csv(tmp_path / "d.csv", index=False)
    result = run("train", tmp_path / "d.csv", "--model", "naive", "--futr", "x", "--quiet")
    assert result.exit_code == 1
    assert result.output.strip().startswith("Error: model 'naive' cannot use --futr: it takes no covariates")
    assert mlflow.search_runs(search_all_experiments=True).empty
