"""The gradient-boosted tree model: its features, forecasts, intervals, save/load and the refusal of tampered files."""

import json
import zipfile

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from forecast import registry
from forecast.errors import ModelError
from forecast.models.gbm import GradientBoosting, step_rows, window_features
from tests.conftest import m3_monthly, reseal


@pytest.fixture(scope="module")
def panel(tmp_path_factory):
    """Twelve real M3 monthly series."""
    return m3_monthly(tmp_path_factory.mktemp("gbm"), 12)


@pytest.fixture(scope="module")
def fitted(panel):
    return GradientBoosting(max_iter=40).fit(panel.df, panel.freq, 6), panel


@given(st.lists(st.floats(-5, 5), min_size=4, max_size=30))
@settings(max_examples=40, deadline=None)
def test_window_features_are_lags_relative_to_the_last_value(values):
    x = np.array([values], np.float32)
    features, future, last = window_features(x, len(values), 4)
    y = x[0].astype(float)
    assert future is None and last[0] == pytest.approx(y[-1])
    np.testing.assert_allclose(features[0, :len(values) - 1], y[:-1] - y[-1], atol=1e-6)
    assert features[0, len(values) - 1] == pytest.approx(y[-1])  # the level itself
    assert features[0, len(values) + 1] == pytest.approx((y - y[-1]).mean(), abs=1e-6)  # the window's mean


def test_the_step_ahead_is_a_feature_only_for_the_one_model_strategy():
    features = np.arange(6.0).reshape(3, 2)
    assert step_rows(features, None, 2, "step")[:, -1].tolist() == [3.0, 3.0, 3.0]
    assert step_rows(features, None, np.array([0, 1, 4]), "step")[:, -1].tolist() == [1.0, 2.0, 5.0]
    assert step_rows(features, None, 2, "per-step").shape == (3, 2)


def test_forecasts_intervals_and_its_own_validation(fitted):
    model, data = fitted
    out = model.predict(6, data.df, levels=(80, 95))
    assert out.shape == (12 * 6, 7) and np.isfinite(out["yhat"]).all()
    assert (out["yhat_lo_95"] <= out["yhat_lo_80"]).all() and (out["yhat_hi_80"] <= out["yhat_hi_95"]).all()
    assert (out["yhat_lo_80"] <= out["yhat"]).all() and (out["yhat"] <= out["yhat_hi_80"]).all()
    assert model.calibration_.source == "validation" and model.validated_series_ == 12
    assert 0 < model.validation_mase_ < 5
    assert model.final_settings() == {"validate": False, "max_iter": int(model.models_[0].n_iter_)}
    longer = model.predict(15, data.df)  # recursive past its horizon
    np.testing.assert_allclose(longer.groupby("unique_id").head(6)["yhat"], out["yhat"])


def test_one_model_per_step(panel):
    data = panel
    model = GradientBoosting(max_iter=20, strategy="per-step").fit(data.df, data.freq, 4)
    assert len(model.models_) == 4 and model.models_[0].n_features_in_ == model.models_[3].n_features_in_
    assert np.isfinite(model.predict(4, data.df)["yhat"]).all()


def test_save_and_load_give_the_same_forecasts(fitted, tmp_path):
    model, data = fitted
    folder = model.save(tmp_path / "gbm")
    assert sorted(p.name for p in folder.iterdir()) == ["forecaster.json", "gbm-0.skops"]
    again = registry.load(folder)
    pd.testing.assert_frame_equal(again.predict(6, data.df, levels=(80,)), model.predict(6, data.df, levels=(80,)))


def test_a_tampered_model_file_is_refused(fitted, tmp_path):
    """A skops file whose schema names a type the model never saves (here `os.system`) is refused by name, before
    anything in it is built."""
    model, _ = fitted
    folder = model.save(tmp_path / "gbm")
    file = folder / "gbm-0.skops"
    with zipfile.ZipFile(file) as archive:
        contents = {name: archive.read(name) for name in archive.namelist()}
    schema = json.loads(contents["schema.json"])
    schema["content"]["content"]["loss"] = {"__class__": "system", "__module__": "os", "__loader__": "ObjectNode",
                                            "content": {"__class__": "dict", "__module__": "builtins",
                                                        "__loader__": "DictNode", "content": {}, "key_types": {
                                                            "__class__": "list", "__module__": "builtins",
                                                            "__loader__": "ListNode", "content": []}},
                                            "__id__": 1}
    contents["schema.json"] = json.dumps(schema).encode()
    with zipfile.ZipFile(file, "w") as archive:
        for name, blob in contents.items():
            archive.writestr(name, blob)
    reseal(folder)  # the digests rewritten too: skops' trusted-types check is what refuses it
    with pytest.raises(ModelError, match=r"gbm-0\.skops: refused to load.*os\.system"):
        registry.load(folder)
    file.write_bytes(b"not a zip")
    with pytest.raises(ModelError, match=r"gbm-0\.skops: differs from the one saved"):
        registry.load(folder)
    reseal(folder)
    with pytest.raises(ModelError, match=r"gbm-0\.skops: not a readable skops file"):
        registry.load(folder)


def test_bad_settings_are_refused_by_name():
    with pytest.raises(ModelError, match="--strategy sideways"):
        registry.create("gbm", strategy="sideways")
    with pytest.raises(ModelError, match="--loss smape"):
        registry.create("gbm", loss="smape")
