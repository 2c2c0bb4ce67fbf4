"""One battery over every registered model, as scikit-learn's check_estimator does, plus model specifics."""

import json
import pickle

import numpy as np
import pandas as pd
import pytest
from conftest import reseal

from forecast import registry
from forecast.data import load_series, split_holdout
from forecast.errors import ModelError, TrainingInterrupted
from forecast.models.ar import fit_series, recurse

TINY = {"hidden_size": 8, "layers": 1, "epochs": 2, "lookback": 12}
H = 6


def make(name, **extra):
    params = dict(TINY) if name in registry.NEURAL else {}
    return registry.create(name, **{**params, **extra})


@pytest.fixture(scope="module")
def parts(data):
    return split_holdout(data.df, H)


@pytest.mark.parametrize("name", list(registry.MODELS))
def test_fit_returns_self_and_predict_continues_every_series(name, data, parts):
    train, test = parts
    model = make(name)
    assert model.fit(train, data.freq, H) is model
    out = model.predict()
    assert list(out.columns) == ["unique_id", "ds", "yhat"]
    assert out.groupby("unique_id").size().to_dict() == {uid: H for uid in train["unique_id"].unique()}
    assert out["ds"].tolist() == test["ds"].tolist()
    assert np.isfinite(out["yhat"]).all()


@pytest.mark.parametrize("name", list(registry.MODELS))
def test_same_seed_same_forecast_and_save_load_round_trip(name, data, parts, tmp_path):
    train, _ = parts
    first = make(name).fit(train, data.freq, H)
    second = make(name).fit(train, data.freq, H)
    np.testing.assert_array_equal(first.predict()["yhat"], second.predict()["yhat"])
    loaded = registry.load(first.save(tmp_path / "saved", extra={"columns": {"id_col": "unique_id"}}))
    assert loaded.meta_ == {"columns": {"id_col": "unique_id"}}
    np.testing.assert_allclose(loaded.predict(H, train)["yhat"], first.predict()["yhat"], rtol=1e-6)


@pytest.mark.parametrize("name", list(registry.MODELS))
def test_longer_horizons_extend_the_model_horizon(name, data, parts):
    train, _ = parts
    model = make(name).fit(train, data.freq, H)
    short, long = model.predict(H), model.predict(3 * H)
    assert len(long) == 3 * H * train["unique_id"].nunique()
    head = long.groupby("unique_id").head(H).reset_index(drop=True)
    np.testing.assert_allclose(head["yhat"], short["yhat"], rtol=1e-6)
    assert np.isfinite(long["yhat"]).all()


@pytest.mark.parametrize("name", list(registry.MODELS))
def test_predict_before_fit_raises(name, parts):
    with pytest.raises(ModelError, match="is not fitted; call fit"):
        make(name).predict(H, parts[0])


@pytest.mark.parametrize("name", list(registry.MODELS))
def test_series_the_model_never_saw_are_forecast_from_their_history(name, data, parts):
    train, _ = parts
    model = make(name).fit(train, data.freq, H)
    other = train[train["unique_id"] == train["unique_id"].iloc[0]].assign(unique_id="new", y=lambda d: d.y * 2)
    out = model.predict(H, other)
    assert out["unique_id"].unique().tolist() == ["new"] and np.isfinite(out["yhat"]).all()


def test_unknown_model_and_settings_are_refused():
    with pytest.raises(ModelError, match="unknown model 'prophet'; choose one of naive, seasonal-naive, ar, rnn"):
        registry.create("prophet")
    with pytest.raises(ModelError, match="model 'ar' has no setting --hidden-size; its settings: --diff, --ic, --lags"):
        registry.create("ar", hidden_size=8)
    with pytest.raises(ModelError, match="--tbptt applies to the recurrent models"):
        registry.create("transformer", tbptt=4)


def test_ar_recursion_by_hand():
    # y_t = 1 + 0.5 y_{t-1} + 0.2 y_{t-2}: 1 + 1.5 + 0.4 = 2.9, then 1 + 1.45 + 0.6 = 3.05
    np.testing.assert_allclose(recurse(np.array([1.0, 0.5, 0.2]), np.array([1.0, 2.0, 3.0]), 2), [2.9, 3.05])


def test_ar_falls_back_from_an_explosive_fit():
    rng = np.random.default_rng(3)
    y = np.cumprod(np.full(30, 1.15)) + rng.normal(0, 0.01, 30)  # grows 15% a step: an AR fit is explosive
    tau, params, first, _ = fit_series(y, lags=3, max_lags=3, ic="aic")
    assert first == 3 and tau < 3
    if tau:
        roots = np.roots(np.r_[-params[1:][::-1], 1.0])
        assert np.all(np.abs(roots) > 1)


def test_ar_learns_in_the_seasonally_adjusted_space_and_differences_a_trend(tmp_path):
    t = np.arange(96)
    factors = np.array([0.8, 0.9, 1.0, 1.1, 1.3, 1.2, 1.0, 0.9, 0.85, 0.95, 1.0, 1.0])
    y = (100 + 2.0 * t) * factors[t % 12]  # a straight trend times a fixed seasonal pattern
    df = pd.DataFrame({"unique_id": "a", "ds": pd.date_range("2000-01-01", periods=96, freq="MS"), "y": y})
    df.to_csv(tmp_path / "trend.csv", index=False)
    data = load_series(tmp_path / "trend.csv")
    model = make("ar").fit(data.df, data.freq, 12)
    assert model.diffs_ == {"a": 1}
    future = np.arange(96, 108)
    expected = (100 + 2.0 * future) * factors[future % 12]
    np.testing.assert_allclose(model.predict()["yhat"], expected, rtol=0.02)
    _, params, _, _ = fit_series(y, None, 24, "aic")  # AR on the raw levels reverts to their mean
    raw = recurse(params, y, 12)
    assert np.abs(raw - expected).mean() > 5 * np.abs(model.predict()["yhat"] - expected).mean()


def test_saved_weights_that_are_a_pickle_are_refused_and_not_run(data, parts, tmp_path):
    path = make("gru").fit(parts[0], data.freq, H).save(tmp_path / "saved")
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    (path / "weights.pt").write_bytes(pickle.dumps({"w": Payload()}))
    with pytest.raises(ModelError, match="weights.pt: differs from the one saved"):
        registry.load(path)
    reseal(path)  # the digests rewritten too: torch's weights-only loader is what refuses it
    with pytest.raises(ModelError, match="weights.pt: refused to load"):
        registry.load(path)
    assert not marker.exists()


def test_damaged_model_folders_are_refused(data, parts, tmp_path):
    path = make("naive").fit(parts[0], data.freq, H).save(tmp_path / "saved")
    doc = json.loads((path / "forecaster.json").read_text())
    (path / "forecaster.json").write_text(json.dumps({**doc, "code": "import os"}))
    with pytest.raises(ModelError, match="unexpected layout"):
        registry.load(path)
    with pytest.raises(ModelError, match="no forecaster.json; this is not a saved forecast model"):
        registry.load(tmp_path)


def test_an_ensemble_is_the_median_of_its_members_and_saves_as_one_model(data, parts, tmp_path):
    train, _ = parts
    ensemble = make("gru", ensemble=3, combine="none").fit(train, data.freq, H)
    assert ensemble.lookbacks_ == [12, 18, 9] and len(ensemble.nets_) == 3
    members = [make("gru", seed=1 + i, lookback=lookback, combine="none").fit(train, data.freq, H)
               .predict()["yhat"].to_numpy()
               for i, lookback in enumerate(ensemble.lookbacks_)]
    assert not np.allclose(members[0], members[1])
    expected = np.median(np.stack(members), axis=0)
    np.testing.assert_allclose(ensemble.predict()["yhat"], expected, rtol=1e-5)
    path = ensemble.save(tmp_path / "ensemble")
    assert {"weights.pt", "weights-1.pt", "weights-2.pt"} <= {p.name for p in path.iterdir()}
    np.testing.assert_allclose(registry.load(path).predict(df=train)["yhat"], expected, rtol=1e-5)
    (path / "weights-2.pt").unlink()
    with pytest.raises(ModelError, match="weights-2.pt: is missing; the model folder is incomplete"):
        registry.load(path)


def test_without_validation_every_window_trains_and_the_schedule_ends_at_zero(data, parts):
    train, _ = parts
    seen = []
    model = make("rnn", validate=False, epochs=3).fit(train, data.freq, H, on_epoch=lambda e, m: seen.append(m))
    assert all("val_loss" not in m for m in seen) and model.histories_[0].best_epoch == 3
    lrs = [m["lr"] for m in seen]
    assert lrs == sorted(lrs, reverse=True) and lrs[-1] == pytest.approx(0.0, abs=1e-12)
    validated = make("rnn", epochs=1).fit(train, data.freq, H)
    assert model.n_windows_ == validated.n_windows_ + 4 * H  # each series' last horizon of windows too


def test_models_saved_before_the_transforms_still_forecast_as_they_did(data, parts, tmp_path):
    train, _ = parts
    model = make("gru", deseasonalize=False, log=False, combine="none").fit(train, data.freq, H)
    path = model.save(tmp_path / "old")
    doc = json.loads((path / "forecaster.json").read_text())
    doc["state"] = {"lookback": doc["state"]["lookback"]}  # the state as the first format wrote it
    for key in ("deseasonalize", "log", "ensemble", "loss", "schedule", "validate", "recent", "combine"):
        doc["config"].pop(key)
    (path / "forecaster.json").write_text(json.dumps(doc))
    old = registry.load(path)
    assert not old.config.deseasonalize and not old.config.log
    np.testing.assert_allclose(old.predict(df=train)["yhat"], model.predict()["yhat"], rtol=1e-6)


def test_an_ensemble_stopped_in_its_second_member_keeps_the_members_it_has(data, parts, tmp_path):
    train, _ = parts

    def stop_in_member_two(epoch, metrics):
        if metrics["member"] == 1:
            raise KeyboardInterrupt

    model = make("gru", ensemble=3)
    with pytest.raises(TrainingInterrupted) as stopped:
        model.fit(train, data.freq, H, on_epoch=stop_in_member_two)
    assert stopped.value.best_epoch == 1 and len(model.nets_) == 2 and model.lookbacks_ == [12, 18]
    expected = model.predict(df=train)["yhat"]
    loaded = registry.load(model.save(tmp_path / "stopped"))
    assert len(loaded.nets_) == 2
    np.testing.assert_allclose(loaded.predict(df=train)["yhat"], expected, rtol=1e-6)


def test_member_lookbacks_start_at_the_base_even_for_a_one_step_window():
    from forecast.models.neural import member_lookbacks

    assert member_lookbacks(1, 1) == [1]
    assert member_lookbacks(36, 6) == [36, 54, 27, 72, 45, 36]


@pytest.mark.parametrize("loss", ["smape", "mase"])
def test_every_epoch_reports_the_validation_mae_beside_the_loss_trained_on(loss):
    """val_loss is the loss trained on (sMAPE, or MAE weighted per window for mase), val_mae the plain mean
    absolute error, the same measure whatever the loss: what tuning prunes by."""
    import torch
    from torch import nn

    from forecast.training import TrainConfig, fit_network

    class Linear(nn.Module):
        def __init__(self):
            super().__init__()
            self.map = nn.Linear(6, 3)

        def forward(self, x, tbptt=None):
            return self.map(x)

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 6)).astype(np.float32), rng.normal(size=(64, 3)).astype(np.float32)
    xv, yv = rng.normal(size=(9, 6)).astype(np.float32), rng.normal(size=(9, 3)).astype(np.float32)
    weights = np.linspace(0.5, 2.0, 9).astype(np.float32)
    val = (xv, yv, weights) if loss == "mase" else (xv, yv)
    seen = []
    net = Linear()
    history = fit_network(net, (x, y, np.ones(64, np.float32)) if loss == "mase" else (x, y), val,
                          TrainConfig(epochs=3, batch_size=16, loss=loss, device="cpu", patience=5),
                          lambda epoch, metrics: seen.append(metrics))
    best = seen[history.best_epoch - 1]  # the weights left in the net are the best epoch's
    with torch.no_grad():
        errors = (net(torch.as_tensor(xv)) - torch.as_tensor(yv)).abs().numpy()
    assert best["val_mae"] == pytest.approx(errors.mean(), rel=1e-5)
    expected = ((errors * weights[:, None]).mean(axis=1).sum() / weights.sum() if loss == "mase" else
                np.mean(2 * np.tanh(errors / 2)))
    assert best["val_loss"] == pytest.approx(expected, rel=1e-5)
    assert best["val_loss"] != pytest.approx(best["val_mae"], rel=1e-3)
