"""Combinations of models: as a model (`--model combination`) whose logged pyfunc equals the combination of its
members' own logged models, and as a pipeline's `combine` entry scored on the members' folds."""

import mlflow
import numpy as np
import pandas as pd
import pytest

from forecast import api, pipeline
from forecast.models.combination import combine_values, inverse_error_weights
from forecast.serving import RequestError
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
    with pytest.raises(ModelError, match="each model at most once, unless --params gives a list"):
        registry.create("combination", members="ar,ar")
    with pytest.raises(ModelError, match="a list of 2 mappings, one per member of ar,ar"):
        registry.create("combination", members="ar,ar", params=[{}])
    with pytest.raises(ModelError, match="--params {: not JSON"):
        registry.create("combination", members="ar,naive", params="{")
    with pytest.raises(ModelError, match="model .ar. has no setting"):
        registry.create("combination", members="ar,ar", params=[{"max_lag": 3}, {}])


def test_a_model_may_be_a_member_more_than_once_with_settings_per_member(m3_csv):
    """`--members ar,ar --params '[...]'` (what `forecast tune --top K` trains): each member fitted with its own
    settings, as that model alone is, and the saved combination's pyfunc their mean; refit with each member's own
    final settings."""
    h = 6
    settings = [{"max_lags": 2, "diff": 1}, {"max_lags": 8, "diff": 0}]
    combo = api.train(m3_csv, "combination", h, members="ar,ar", how="mean", params='[{"max_lags": 2, "diff": 1}, '
                                                                                      '{"max_lags": 8, "diff": 0}]')
    alone = [api.train(m3_csv, "ar", h, **s) for s in settings]
    history = pd.read_csv(m3_csv)
    got = _pyfunc(combo.model_uri, history, h)
    members = [_pyfunc(a.model_uri, history, h) for a in alone]
    assert not np.allclose(members[0]["yhat"], members[1]["yhat"])  # the settings reached the members
    np.testing.assert_allclose(got["yhat"], (members[0]["yhat"] + members[1]["yhat"]) / 2, rtol=1e-6)
    logged = mlflow.get_run(combo.run_id).data.params
    assert logged["member_weights"] == "ar-1:0.5000,ar-2:0.5000"


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


# -- with covariates: every member reads them, the combination forecasts from the future file like any model

def _driven(tmp_path):
    """Daily series y = 10 + 3 x + noise, x known in advance (tests/test_covariates.py), split into a history and
    the future file of its last 7 rows."""
    from tests.test_covariates import driven

    df = driven(n=90).drop(columns=["footfall", "kind"])
    history, ahead = df.groupby("unique_id").head(83), df.groupby("unique_id").tail(7)
    history.to_csv(tmp_path / "history.csv", index=False)
    ahead.drop(columns="y").to_csv(tmp_path / "future.csv", index=False)
    return history, ahead


def test_a_combination_with_covariates_forecasts_the_combination_of_its_members(tmp_path):
    history, ahead = _driven(tmp_path)
    roles = {"futr": "x", "calendar": True}
    combo = api.train(tmp_path / "history.csv", "combination", 7, members="ar,gbm", how="mean",
                      params={"gbm": {**GBM, "lookback": 14}}, **roles)
    alone = [api.train(tmp_path / "history.csv", "ar", 7, **roles),
             api.train(tmp_path / "history.csv", "gbm", 7, **GBM, lookback=14, **roles)]
    assert mlflow.get_run(combo.run_id).data.params["covariates_futr"] == "x"
    request = pd.concat([history, ahead.drop(columns="y")]).sort_values(["unique_id", "ds"])
    request = request.assign(ds=request["ds"].astype(str))

    def served(uri):
        return mlflow.pyfunc.load_model(uri).predict(request, params={"level": [80.0]})

    got, members = served(combo.model_uri), [served(r.model_uri) for r in alone]
    for column in ("yhat", "yhat_lo_80", "yhat_hi_80"):
        expected = np.mean([m[column].to_numpy() for m in members], axis=0)
        np.testing.assert_allclose(got[column].to_numpy(), expected, rtol=1e-6)
    # the covariate moves y by 3 x (mean absolute deviation 0.75): read, it leaves the noise and the members' errors
    assert np.mean(np.abs(got["yhat"].to_numpy() - ahead["y"].to_numpy())) < 0.15
    model = mlflow.pyfunc.load_model(combo.model_uri)
    with pytest.raises(RequestError, match=r"the model reads future covariates \(x\): give their values for the 7 "
                                           "steps ahead"):
        model.predict(history.assign(ds=history["ds"].astype(str)), params={"horizon": 7})


def test_a_combination_member_that_cannot_use_the_covariates_is_named(tmp_path):
    from click.testing import CliRunner

    from forecast.cli import main

    _driven(tmp_path)
    result = CliRunner().invoke(main, ["train", str(tmp_path / "history.csv"), "--model", "combination",
                                       "--members", "gbm,naive", "--futr", "x", "--quiet"])
    assert result.exit_code == 1
    assert result.output.strip().startswith("Error: combination member 'naive' cannot use --futr: it takes no "
                                            "covariates")
    assert mlflow.search_runs(search_all_experiments=True).empty


def test_a_pipeline_combines_members_with_the_same_covariates_only_and_refits_as_they_do(tmp_path):
    _driven(tmp_path)
    models = f"""
name: covs
data: {{path: {tmp_path / 'history.csv'}, futr: [x]}}
horizon: 7
backtest: {{folds: 3, refit: false}}
models:
  - {{model: ar, label: ar}}
  - {{model: gbm, label: gbm, params: {{max_iter: 30, lookback: 14}}}}
  - {{model: seasonal-naive, label: snaive, futr: []}}
"""
    path = write(tmp_path, "p.yaml", models + "combine: {name: both, members: [ar, gbm], how: mean}\n")
    result = pipeline.run_pipeline(path, echo=lambda *_: None)
    board = result.leaderboard.set_index("label")
    assert (board["status"] == "FINISHED").all(), board
    client = mlflow.MlflowClient()
    assert client.get_run(board.loc["both", "run_id"]).data.params["covariates_futr"] == "x"
    assert client.get_run(board.loc["both", "run_id"]).data.params["refit"] == "False"  # its gbm trained once
    statistical = api.backtest(tmp_path / "history.csv", "combination", 7, folds=2, refit=False,
                               members="ar,seasonal-naive")
    assert mlflow.get_run(statistical.run_id).data.params["refit"] == "True"  # both refit per fold, as alone

    def holdout(label):
        run_id = board.loc[label, "run_id"]
        return pd.read_csv(client.download_artifacts(run_id, "holdout_forecasts.csv", str(tmp_path / label)))

    # without refit gbm is trained once, before the first origin, alone and in the combination; AR refits per fold
    both, ar, gbm = holdout("both"), holdout("ar"), holdout("gbm")
    assert sorted(both["fold"].unique()) == [1, 2, 3]
    np.testing.assert_allclose(both["yhat"], (ar["yhat"] + gbm["yhat"]) / 2, rtol=1e-9)
    mixed = write(tmp_path, "q.yaml", models + "combine: {name: c, members: [snaive, gbm]}\n")
    with pytest.raises(pipeline.PipelineError, match=r"combine\[1\]: members must use the same covariates "
                                                     r"\(snaive: none; gbm: futr x\)"):
        pipeline.load_pipeline(mixed)


def test_members_of_one_model_keep_their_own_checkpoints(air_csv):
    """Two GRU members save their training state under keys of their own (gru-1, gru-2): a resumed run must not
    continue one member from the other's weights."""
    tiny = {"hidden_size": 8, "layers": 1, "epochs": 2, "ensemble": 1, "combine": "none", "steps_per_epoch": 3}
    result = api.train(air_csv, "combination", 12, members="gru,gru", how="mean",
                       params=[tiny, {**tiny, "hidden_size": 4}])
    saved = {a.path.split("/")[-1] for a in mlflow.MlflowClient().list_artifacts(result.run_id, "checkpoints")}
    assert {"fold1-gru-1-member0.pt", "fold1-gru-2-member0.pt"} <= saved, saved
