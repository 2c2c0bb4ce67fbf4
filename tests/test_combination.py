"""Combinations of models: as a model (`--model combination`) whose logged pyfunc equals the combination of its
members' own logged models, and as a pipeline's `combine` entry scored on the members' folds."""

import mlflow
import numpy as np
import pandas as pd
import pytest

from forecast import api, pipeline
from forecast.models.ensemble import combine_values, inverse_error_weights
from tests.conftest import write

MEMBERS = "ar,seasonal-naive,gbm"
GBM = {"max_iter": 30}


def _pyfunc(uri: str, history: pd.DataFrame, h: int) -> pd.DataFrame:
    return mlflow.pyfunc.load_model(uri).predict(history, params={"horizon": h, "level": [80.0]})


@pytest.mark.parametrize("how", ["median", "inverse-error"])  # mean: the pipeline test
def test_a_combination_model_forecasts_the_combination_of_its_members(m3_csv, how):
    """Each member trained alone, as `forecast train` would, and logged; the combination trained on the same file;
    their logged models' forecasts (points and bounds) combine to the combination's."""
    h = 6
    combo = api.train(m3_csv, "combination", h, members=MEMBERS, how=how, params={"gbm": GBM})
    alone = {name: api.train(m3_csv, name, h, **(GBM if name == "gbm" else {})) for name in MEMBERS.split(",")}
    history = pd.read_csv(m3_csv)
    got = _pyfunc(combo.model_uri, history, h)
    members = [_pyfunc(alone[name].model_uri, history, h) for name in MEMBERS.split(",")]
    weights = None
    if how == "inverse-error":
        logged = mlflow.get_run(combo.run_id).data.params["member_validation_mase"]
        errors = [float(part.split(":")[1]) for part in logged.split(",")]
        weights = inverse_error_weights(errors)
        assert weights.sum() == pytest.approx(1) and len(set(np.round(weights, 6))) == 3  # not all equal
    for column in ("yhat", "yhat_lo_80", "yhat_hi_80"):
        expected = combine_values(np.stack([m[column].to_numpy() for m in members]), how, weights)
        np.testing.assert_allclose(got[column].to_numpy(), expected, rtol=1e-6)
    assert got.shape == (3 * h, 5)


def test_inverse_error_weights():
    np.testing.assert_allclose(inverse_error_weights([1.0, 2.0, 4.0]), np.array([4, 2, 1]) / 7)
    np.testing.assert_allclose(inverse_error_weights([1.0, np.nan]), [1.0, 0.0])
    np.testing.assert_allclose(inverse_error_weights([np.nan, np.nan]), [0.5, 0.5])


def test_bad_members_are_refused():
    from forecast import registry
    from forecast.errors import ModelError

    with pytest.raises(ModelError, match="at least two"):
        registry.create("combination", members="ar")
    with pytest.raises(ModelError, match="unknown model 'arima'"):
        registry.create("combination", members="ar,arima")
    with pytest.raises(ModelError, match="--how vote"):
        registry.create("combination", how="vote")


def test_a_pipeline_combination_is_scored_on_the_members_folds(tmp_path, air_csv):
    path = write(tmp_path, "p.yaml", f"""
name: combos
data: {{path: {air_csv}}}
horizon: 12
backtest: {{folds: 2}}
models: [naive, seasonal-naive, {{model: ar, label: my-ar}}]
combine:
  - {{name: avg, members: [seasonal-naive, my-ar], how: mean}}
""")
    result = pipeline.run_pipeline(path, echo=lambda *_: None)
    board = result.leaderboard.set_index("label")
    assert board.loc["avg", "status"] == "FINISHED" and board.loc["avg", "model"] == "combination"
    client = mlflow.MlflowClient()

    def holdout(label):
        run_id = board.loc[label, "run_id"]
        return pd.read_csv(client.download_artifacts(run_id, "holdout_forecasts.csv", str(tmp_path / label)))

    expected = (holdout("seasonal-naive")["yhat"] + holdout("my-ar")["yhat"]) / 2
    np.testing.assert_allclose(holdout("avg")["yhat"], expected, rtol=1e-9)
    steps = pd.read_csv(client.download_artifacts(result.run_id, "error_by_step.csv", str(tmp_path)))
    assert steps.groupby("label").size().to_dict() == {"avg": 12, "my-ar": 12, "naive": 12, "seasonal-naive": 12}
    assert "avg: combination mean of seasonal-naive,ar" in "\n".join(pipeline.plan(pipeline.load_pipeline(path),
                                                                                   pipeline.load_pipeline(path).models +
                                                                                   pipeline.load_pipeline(path).combine))


def test_a_combination_of_unknown_labels_is_refused_before_anything_runs(tmp_path, air_csv):
    path = write(tmp_path, "p.yaml", f"""
data: {{path: {air_csv}}}
models: [naive, ar]
combine: {{name: c, members: [naive, gru]}}
""")
    with pytest.raises(pipeline.PipelineError, match=r"member\(s\) gru not among the models; labels: naive, ar"):
        pipeline.load_pipeline(path)
