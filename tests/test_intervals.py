"""Prediction intervals and quantiles: never crossing, calibrated where the truth is known, metrics equal to an
independent computation, the same through the CLI and the pyfunc model, clear errors."""

import json
import subprocess
import sys

import mlflow
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import DATA, SHARED, TINY_NET
from hypothesis import given, settings
from hypothesis import strategies as st

from forecast import api, registry
from forecast.cli import main
from forecast.data import load_series, split_holdout
from forecast.intervals import Calibration, check_levels, growth_power, interval_metrics, to_columns
from forecast.metrics import evaluate

TINY = {"hidden_size": 8, "layers": 1, "epochs": 2, "lookback": 12}
H = 6
LEVELS = (50, 80, 95)


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.mark.parametrize("name", list(registry.MODELS))
def test_intervals_nest_around_the_forecast_and_widen_past_the_horizon(name, data):
    train, _ = split_holdout(data.df, H)
    model = registry.create(name, **(TINY if name in registry.NEURAL else {})).fit(train, data.freq, H)
    out = model.predict(3 * H, levels=LEVELS, quantiles=(0.05, 0.5, 0.95))
    assert list(out.columns) == ["unique_id", "ds", "yhat", "yhat_lo_50", "yhat_hi_50", "yhat_lo_80", "yhat_hi_80",
                                 "yhat_lo_95", "yhat_hi_95", "yhat_q5", "yhat_q50", "yhat_q95"]
    chain = ["yhat_lo_95", "yhat_lo_80", "yhat_lo_50", "yhat", "yhat_hi_50", "yhat_hi_80", "yhat_hi_95"]
    values = out[chain].to_numpy()
    assert np.isfinite(values).all() and (np.diff(values, axis=1) >= 0).all()
    assert (np.diff(out[["yhat_q5", "yhat_q50", "yhat_q95"]].to_numpy(), axis=1) >= 0).all()
    np.testing.assert_allclose(out["yhat"], model.predict(3 * H)["yhat"], rtol=1e-9)  # points unchanged
    width = (out.yhat_hi_95 - out.yhat_lo_95).to_numpy().reshape(4, 3 * H)
    assert (width[:, -1] >= width[:, H - 1] * (1 - 1e-9)).all()  # never narrower further out
    if name in registry.NEURAL or name == "naive":  # the nets recurse past their horizon: wider, honestly
        assert (width[:, -1] > width[:, H - 1]).all()


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 6), st.integers(1, 8), st.data())
def test_columns_never_cross_whatever_the_bands(s, h, draw):
    probs = (0.025, 0.1, 0.25, 0.75, 0.9, 0.975)
    raw = np.asarray(draw.draw(st.lists(st.floats(-1e6, 1e6), min_size=s * h * 6, max_size=s * h * 6)))
    yhat = np.asarray(draw.draw(st.lists(st.floats(-1e6, 1e6), min_size=s * h, max_size=s * h))).reshape(s, h)
    columns = to_columns(yhat, raw.reshape(s, h, 6), probs, (50, 80, 95), (0.1, 0.9))
    chain = [columns["yhat_lo_95"], columns["yhat_lo_80"], columns["yhat_lo_50"], yhat, columns["yhat_hi_50"],
             columns["yhat_hi_80"], columns["yhat_hi_95"]]
    assert (np.diff(np.stack(chain), axis=0) >= 0).all()
    assert (columns["yhat_q10"] <= columns["yhat_q90"]).all()


def seasonal_draws(n_series, length, sigma=2.0, seed=0):
    """Independent draws of y_t = 100 + 10 sin(2 pi t / 12) + N(0, sigma^2): the truth of every interval is known."""
    rng = np.random.default_rng(seed)
    t = np.arange(length)
    curve = 100 + 10 * np.sin(2 * np.pi * t / 12)
    return pd.DataFrame({"unique_id": np.repeat([f"d{i}" for i in range(n_series)], length),
                         "ds": np.tile(pd.date_range("2000-01-01", periods=length, freq="MS"), n_series),
                         "y": (curve + sigma * rng.standard_normal((n_series, length))).reshape(-1)})


@pytest.mark.parametrize("name", ["seasonal-naive", "ar"])
def test_statistical_intervals_cover_as_often_as_they_say_on_a_known_distribution(name, tmp_path):
    path = tmp_path / "draws.csv"
    seasonal_draws(300, 96 + 12).to_csv(path, index=False)
    data = load_series(path)
    train, test = split_holdout(data.df, 12)
    forecast = registry.create(name).fit(train, data.freq, 12).predict(12, levels=(80, 95))
    scores = evaluate(train, test, forecast, 12, levels=(80, 95))
    assert scores["coverage_80"] == pytest.approx(80, abs=3)
    assert scores["coverage_95"] == pytest.approx(95, abs=2)


def test_a_net_calibrated_by_conformal_residuals_covers_close_to_nominal(tmp_path):
    path = tmp_path / "draws.csv"
    seasonal_draws(200, 72 + 12, seed=1).to_csv(path, index=False)
    data = load_series(path)
    train, test = split_holdout(data.df, 12)
    model = registry.create("gru", **{**TINY, "epochs": 4}).fit(train, data.freq, 12)
    assert model.calibration_.source == "validation" and model.calibration_.n >= 200
    scores = evaluate(train, test, model.predict(12, levels=(80, 95)), 12, levels=(80, 95))
    assert scores["coverage_80"] == pytest.approx(80, abs=6)
    assert scores["coverage_95"] == pytest.approx(95, abs=4)


def test_conformal_quantiles_are_the_finite_sample_order_statistics():
    residuals = np.arange(1.0, 100.0)[:, None] * np.ones((1, 2))  # 99 residuals 1..99 at each of two steps
    cal = Calibration.from_residuals(residuals, "validation")
    q = cal.quantiles([0.05, 0.5, 0.95], 2)
    # the ceil((n + 1) p)-th smallest above the median, the floor((n + 1) p)-th below: 95th and 5th of 1..99
    assert q[0].tolist() == [5.0, 50.0, 95.0]
    assert cal.quantiles([0.95], 8)[-1, 0] == pytest.approx(95 * 2)  # 4 times the horizon: sqrt(4) times wider


def triangle(h, power, seed=0):
    """The residuals of one series' calibration (holdout_residuals' origins at each of its last h points: step j
    has h - j + 1 of them, too few to stand alone), N(0, 1) times j ** power."""
    rng = np.random.default_rng(seed)
    residuals = np.full((h, h), np.nan)
    for k in range(h):
        residuals[k, :h - k] = rng.standard_normal(h - k) * np.arange(1, h - k + 1) ** power
    return residuals


@settings(max_examples=30, deadline=None)
@given(st.floats(0.0, 1.0), st.integers(0, 10_000))
def test_the_growth_of_pooled_residuals_is_estimated_from_them(power, seed):
    residuals = np.concatenate([triangle(48, power, seed), triangle(48, power, seed + 1)])
    estimate = growth_power(residuals)
    assert 0.0 <= estimate <= 1.0 and estimate == pytest.approx(power, abs=0.2)
    cal = Calibration.from_residuals(residuals, "validation")
    assert cal.power == estimate and cal.n < Calibration.MIN_PER_STEP
    spread, steps = cal.quantiles([0.975], 48)[:, 0], np.arange(1, 49)
    pooled = np.isfinite(residuals).sum(axis=0) < Calibration.MIN_PER_STEP  # steps 25-48: the same quantile
    np.testing.assert_allclose(spread[pooled] / steps[pooled] ** estimate, spread[pooled][0] / 25 ** estimate)


def test_flat_errors_pooled_give_a_flat_band_and_enough_residuals_are_not_pooled():
    flat = Calibration.from_residuals(triangle(48, 0.0), "validation")
    assert flat.power < 0.15  # sqrt(step) made the last step's band 6.9 times the first's
    last, first = flat.quantiles([0.975], 48)[[-1, 0], 0]
    assert last / first < 48 ** 0.15
    many = np.random.default_rng(1).standard_normal((60, 4)) * np.arange(1, 5)  # 60 residuals at every step
    cal = Calibration.from_residuals(many, "validation")
    assert cal.power == 0.5  # nothing pooled: per-step quantiles, and sqrt past the horizon as before
    assert cal.quantiles([0.975], 16)[-1, 0] == pytest.approx(cal.quantiles([0.975], 4)[-1, 0] * 2)
    assert Calibration.from_residuals(triangle(12, 1.0), "validation", growth=False).power == 0.0
    assert growth_power(np.full((3, 4), np.nan)) == 0.5 and growth_power(np.ones((3, 1))) == 0.5


def test_a_calibration_saved_before_the_estimated_growth_keeps_the_square_root():
    doc = Calibration.from_residuals(triangle(12, 0.0), "validation").to_dict()
    assert json.loads(json.dumps(doc))["power"] < 0.5
    del doc["power"]  # as saved by a model before it
    assert Calibration.from_dict(doc).power == 0.5


def oracle(y, lo, hi, scale, level):
    """The M4 definitions written again, point by point, for one series."""
    a = 1 - level / 100
    total = 0.0
    for yt, lt, ht in zip(y, lo, hi):
        total += (ht - lt) + (2 / a * (lt - yt) if yt < lt else 0) + (2 / a * (yt - ht) if yt > ht else 0)
    return total / len(y) / scale, sum(lt <= yt <= ht for yt, lt, ht in zip(y, lo, hi))


def test_coverage_and_msis_equal_an_independent_computation(data):
    train, test = split_holdout(data.df, H)
    forecast = registry.create("ar").fit(train, data.freq, H).predict(H, levels=(80, 95))
    scores = evaluate(train, test, forecast, 12, levels=(80, 95))
    joined = test.merge(forecast, on=["unique_id", "ds"])
    for level in (80, 95):
        msis, inside = [], 0
        for uid, part in joined.groupby("unique_id"):
            past = train[train.unique_id == uid].y.to_numpy()
            value, count = oracle(part.y.to_numpy(), part[f"yhat_lo_{level}"].to_numpy(),
                                  part[f"yhat_hi_{level}"].to_numpy(), np.mean(np.abs(past[12:] - past[:-12])), level)
            msis.append(value)
            inside += count
        assert scores[f"msis_{level}"] == pytest.approx(np.mean(msis), rel=1e-9)
        assert scores[f"coverage_{level}"] == pytest.approx(100 * inside / len(joined), rel=1e-9)
    assert scores["msis"] == scores["msis_95"]


@pytest.mark.skipif(not (SHARED / "bench" / "score.py").is_file(), reason="../shared/bench/score.py not present")
def test_coverage_and_msis_equal_the_independent_scorer(tmp_path):
    train_csv, test_csv = DATA / "m3_other_train.csv", DATA / "m3_other_test.csv"
    train, test = api.load(train_csv), api.load(test_csv)
    forecast = registry.create("seasonal-naive").fit(train.df, train.freq, 8).predict(8, levels=(80, 95))
    pred = tmp_path / "pred.csv"
    forecast.to_csv(pred, index=False)
    done = subprocess.run([sys.executable, str(SHARED / "bench" / "score.py"), "--train", str(train_csv), "--test",
                           str(test_csv), "--pred", str(pred), "--season", "1"], capture_output=True, text=True,
                          check=True)
    theirs = json.loads(done.stdout)
    ours = evaluate(train.df, test.df, forecast, train.freq.season, levels=(80, 95))
    for key in ("coverage_80", "coverage_95", "msis_80", "msis_95", "mase", "smape"):
        value = ours[key] / 100 if key.startswith("coverage") else ours[key]  # score.py: a fraction, 4 decimals
        assert round(value, 4) == theirs[key], key


def test_the_scaled_quantile_loss_of_a_perfect_forecast_is_zero():
    joined = pd.DataFrame({"unique_id": ["a"] * 3, "y": [1.0, 2.0, 3.0], "yhat": [1.0, 2.0, 3.0],
                           "yhat_q10": [1.0, 2.0, 3.0]})
    assert interval_metrics(joined, pd.Series({"a": 1.0}), quantiles=(0.1,))["sql"] == 0.0
    joined["yhat_q10"] = [2.0, 3.0, 4.0]  # one above the truth everywhere: pinball (1 - 0.1) x 1, averaged with 0
    assert interval_metrics(joined, pd.Series({"a": 2.0}), quantiles=(0.1,))["sql"] == pytest.approx(0.9 / 2 / 2)


def test_train_logs_interval_metrics_and_predict_equals_pyfunc_with_levels(m3_csv, tmp_path):
    result = run("train", m3_csv, "--model", "gru", *TINY_NET, "--horizon", H, "--quiet", "--quantiles", "0.1,0.9")
    assert result.exit_code == 0, result.output
    assert "coverage_80" in result.output and "msis" in result.output
    (logged,) = mlflow.search_runs(experiment_names=["m3_three"], output_format="list")
    metrics = logged.data.metrics
    assert {"coverage_80", "coverage_95", "msis_80", "msis_95", "msis", "sql"} <= set(metrics)
    assert logged.data.params["levels"] == "80,95" and logged.data.params["quantiles"] == "0.1,0.9"
    holdout = pd.read_csv(mlflow.artifacts.download_artifacts(run_id=logged.info.run_id,
                                                              artifact_path="holdout_forecasts.csv",
                                                              dst_path=str(tmp_path)))
    inside = (holdout.y >= holdout.yhat_lo_95) & (holdout.y <= holdout.yhat_hi_95)
    assert metrics["coverage_95"] == pytest.approx(100 * inside.mean())
    out = tmp_path / "out.csv"
    uri = f"runs:/{logged.info.run_id}/model"
    predicted = run("predict", uri, m3_csv, "--horizon", 9, "--level", 80, "--level", 95, "-o", out)
    assert predicted.exit_code == 0, predicted.output
    frame = pd.read_csv(out)
    assert list(frame.columns) == ["unique_id", "ds", "yhat", "yhat_lo_80", "yhat_hi_80", "yhat_lo_95", "yhat_hi_95"]
    history = pd.read_csv(m3_csv, parse_dates=["ds"])
    direct = mlflow.pyfunc.load_model(uri).predict(history, params={"horizon": 9, "level": [80, 95]})
    np.testing.assert_allclose(frame.drop(columns=["unique_id", "ds"]).to_numpy(),
                               direct.drop(columns=["unique_id", "ds"]).to_numpy(), rtol=1e-9)
    quantiles = run("predict", uri, m3_csv, "--quantiles", "0.1,0.5,0.9")
    assert quantiles.output.splitlines()[0] == "unique_id,ds,yhat,yhat_q10,yhat_q50,yhat_q90", quantiles.output[:600]


@pytest.mark.parametrize("args, message", [
    (["train", "{air}", "--model", "naive", "--level", "120"],
     "Error: --level 120.0: must be between 0 and 100 (a coverage in percent, e.g. 80 or 95)"),
    (["train", "{air}", "--model", "naive", "--quantiles", "0.1,1.5"],
     "Error: --quantiles 1.5: must be between 0 and 1 (probabilities, e.g. 0.1,0.5,0.9)"),
    (["train", "{air}", "--model", "naive", "--quantiles", "ten"],
     "Error: --quantiles 'ten': not a number; give probabilities, e.g. 0.1,0.5,0.9"),
])
def test_bad_levels_and_quantiles_are_one_line_errors(args, message, air_csv):
    result = CliRunner().invoke(main, [a.replace("{air}", str(air_csv)) for a in args])
    assert result.exit_code == 1 and result.output.strip() == message


def test_a_level_asked_of_a_model_saved_before_intervals_is_refused(data, tmp_path):
    path = registry.create("naive").fit(data.df, data.freq, H).save(tmp_path / "old")
    doc = json.loads((path / "forecaster.json").read_text())
    (path / "forecaster.json").write_text(json.dumps({**doc, "format": 1}))
    old = registry.load(path)
    assert len(old.predict(H, data.df)) == 4 * H  # point forecasts as before
    with pytest.raises(Exception, match="saved before prediction intervals existed; train it again"):
        old.predict(H, data.df, levels=(80,))


def test_levels_are_checked_and_sorted():
    assert check_levels([95, 80, 80.0]) == (80.0, 95.0)
    assert check_levels(()) == ()
