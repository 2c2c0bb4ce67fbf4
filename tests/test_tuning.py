"""`forecast tune`: trials as child runs scored on validation folds carved before the holdout (the holdout's values
never change the search), the best trained again and logged to the parent, Ctrl-C and --resume."""

import json

import mlflow
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from forecast import api, tuning
from forecast.cli import main
from forecast.errors import DataError, ModelError
from tests.conftest import DATA

FAST = {"max_iter": 25}  # gbm: fixed, not searched


@pytest.fixture
def split(tmp_path):
    """Six real M3 quarterly series: the official training file and test file cut to them."""
    train, test = (pd.read_csv(DATA / f"m3_quarterly_{part}.csv") for part in ("train", "test"))
    keep = train["unique_id"].drop_duplicates().iloc[:6]
    paths = tmp_path / "train.csv", tmp_path / "test.csv"
    train[train["unique_id"].isin(keep)].to_csv(paths[0], index=False)
    test[test["unique_id"].isin(keep)].to_csv(paths[1], index=False)
    return paths


def _trial_runs(parent: str) -> pd.DataFrame:
    runs = mlflow.search_runs(search_all_experiments=True, filter_string=f"tags.mlflow.parentRunId = '{parent}'")
    return runs[runs["tags.mlflow.runName"].str.startswith("trial-")]


def test_the_holdout_never_changes_the_search(split, tmp_path):
    """The same study on the same training file with the test file's values poisoned (huge) chooses the same
    settings from the same trial scores; only the final holdout score differs."""
    train, test = split
    clean = tuning.tune(train, "gbm", trials=3, test_path=test, echo=lambda *_: None, **FAST)
    poisoned = tmp_path / "poisoned.csv"
    pd.read_csv(test).assign(y=1e12).to_csv(poisoned, index=False)
    again = tuning.tune(train, "gbm", trials=3, test_path=poisoned, echo=lambda *_: None, **FAST)
    assert again.best_params == clean.best_params
    pd.testing.assert_series_equal(again.trials["smape"], clean.trials["smape"])
    assert again.final.metrics["smape"] > 190 > clean.final.metrics["smape"]
    assert set(clean.best_params) == {"lookback", "learning_rate", "max_leaf_nodes", "min_samples_leaf",
                                      "l2_regularization", "loss", "max_iter"}


def test_the_holdout_is_the_files_tail_without_a_test_file(split, tmp_path):
    """Without a test file the validation data is the file less its last horizon: poisoning that tail changes
    nothing in the search either."""
    train, _ = split
    df = pd.read_csv(train)
    tail = df.groupby("unique_id").cumcount(ascending=False) < 8
    poisoned = tmp_path / "tail.csv"
    df.assign(y=df["y"].where(~tail, 1e12)).to_csv(poisoned, index=False)
    a = tuning.tune(train, "gbm", 8, trials=2, echo=lambda *_: None, **FAST)
    b = tuning.tune(poisoned, "gbm", 8, trials=2, echo=lambda *_: None, **FAST)
    pd.testing.assert_series_equal(a.trials["smape"], b.trials["smape"])


def test_the_default_folds_are_as_many_of_four_as_the_data_allows(split):
    """Four validation origins by default (tuning.FOLDS), fewer where the longest series cannot be scored at four,
    saying so; --folds given is kept, and refused where the data cannot meet it."""
    train, test = split
    lines = []
    full = tuning.tune(train, "gbm", trials=1, test_path=test, echo=lines.append, **FAST)  # longest series: 38
    short = tuning.tune(train, "gbm", 8, trials=1, echo=lines.append, **FAST)  # 30 once its last 8 are cut off

    def folds(result):
        return mlflow.get_run(result.run_id).data.params["tune_folds"]

    assert tuning.FOLDS == 4 and folds(full) == "4" and folds(short) == "3"
    assert list(_trial_runs(short.run_id)["params.folds"]) == ["3"]
    assert "validation: 3 fold(s) of 8, as many as the longest series allows (default 4)" in lines
    with pytest.raises(DataError, match="fewer --folds"):
        tuning.tune(train, "gbm", 8, trials=1, folds=4, echo=lambda *_: None, **FAST)


def test_the_best_is_trained_again_and_logged_to_the_parent(split):
    """--top 1: the best trial's settings alone, trained once more."""
    train, test = split
    result = tuning.tune(train, "ar", trials=3, top=1, test_path=test, echo=lambda *_: None)
    parent = mlflow.get_run(result.run_id)
    assert parent.info.status == "FINISHED" and parent.data.tags["mlflow.runName"] == "tune-ar"
    trials = _trial_runs(result.run_id)
    assert len(trials) == 3 and set(trials["status"]) == {"FINISHED"}
    assert trials["metrics.smape"].min() == pytest.approx(result.best_value)
    best = trials[trials["metrics.smape"] == trials["metrics.smape"].min()]  # ties: orders that select alike
    assert result.best_params in [json.loads(p) for p in best["tags.forecast.trial_params"]]
    assert parent.data.tags["best_run_id"] == result.final.run_id
    assert parent.data.metrics["holdout_smape"] == pytest.approx(result.final.metrics["smape"])
    forecasts = mlflow.pyfunc.load_model(f"runs:/{result.run_id}/model").predict(pd.read_csv(train))
    final = mlflow.pyfunc.load_model(f"runs:/{result.final.run_id}/model").predict(pd.read_csv(train))
    pd.testing.assert_frame_equal(forecasts, final)
    assert result.command.startswith(f"forecast train {train} --model ar --horizon 8 --test {test} --max-lags ")
    assert result.final_params == [result.best_params]


def test_the_final_model_is_the_mean_of_the_best_three_as_the_printed_command_trains_it(split):
    """By default the best three configurations are trained once more, as one combination whose forecast is the
    mean of theirs (each trained alone the same way); `forecast train` with the printed command gives the same
    model and scores."""
    import shlex

    train, test = split
    lines = []
    result = tuning.tune(train, "ar", trials=5, test_path=test, echo=lines.append)
    trials = result.trials[result.trials["state"] == "COMPLETE"].sort_values(["smape", "trial"])
    assert tuning.TOP == 3 and len(result.final_params) == 3
    assert result.final_params[0] == result.best_params
    tagged = _trial_runs(result.run_id).set_index("tags.forecast.trial")["tags.forecast.trial_params"]
    assert [json.loads(tagged[str(t)]) for t in trials["trial"][:3]] == result.final_params  # ar: sampled = settings
    assert any(line.endswith(f"training the mean of the best 3 (trials {', '.join(map(str, trials['trial'][:3]))}) "
                             "on all of the data ...") for line in lines)
    history = pd.read_csv(train)
    got = mlflow.pyfunc.load_model(f"runs:/{result.run_id}/model").predict(history)
    members = [mlflow.pyfunc.load_model(api.train(train, "ar", 8, test_path=test, **p).model_uri).predict(history)
               for p in result.final_params]
    np.testing.assert_allclose(got["yhat"], np.mean([m["yhat"] for m in members], axis=0), rtol=1e-6)
    args = shlex.split(result.command)
    assert args[:5] == ["forecast", "train", str(train), "--model", "combination"]
    again = CliRunner().invoke(main, args[1:] + ["--quiet"])
    assert again.exit_code == 0, again.output
    reproduced = mlflow.search_runs(search_all_experiments=True, order_by=["start_time DESC"]).iloc[0]
    assert reproduced["metrics.smape"] == pytest.approx(result.final.metrics["smape"], rel=1e-9)
    assert mlflow.get_run(result.run_id).data.params["tune_top"] == "3"


def test_an_interrupted_study_resumes_with_its_finished_trials(split):
    """Ctrl-C after the second trial ends the parent KILLED with the best so far tagged; --resume reopens the same
    parent, keeps both trials and runs only the rest."""
    train, test = split

    def stop(number, value):
        if number == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        tuning.tune(train, "gbm", trials=4, test_path=test, on_trial=stop, echo=lambda *_: None, **FAST)
    parent = mlflow.search_runs(search_all_experiments=True, filter_string="tags.mlflow.runName = 'tune-gbm'")
    assert len(parent) == 1 and parent["status"][0] == "KILLED"
    parent_id = parent["run_id"][0]
    before = _trial_runs(parent_id)
    assert len(before) == 2 and "best_params" in mlflow.get_run(parent_id).data.tags
    lines = []
    result = tuning.tune(train, "gbm", trials=4, test_path=test, resume=parent_id, echo=lines.append, **FAST)
    assert result.run_id == parent_id and mlflow.get_run(parent_id).info.status == "FINISHED"
    assert lines[0].startswith("resuming: 2 finished trial(s)")
    after = _trial_runs(parent_id)
    assert len(after) == 4 and set(after["status"]) == {"FINISHED"}
    assert result.best_value == pytest.approx(after["metrics.smape"].min())
    assert len(result.trials) == 4
    with pytest.raises(DataError, match="not a tune run of this command"):
        tuning.tune(train, "gbm", trials=4, test_path=test, resume=parent_id, echo=lambda *_: None, max_iter=30)


def test_refusals_and_the_command_line(split):
    train, test = split
    with pytest.raises(ModelError, match="--model naive: nothing to tune"):
        tuning.tune(train, "naive")
    with pytest.raises(DataError, match="--timeout soon"):
        tuning.parse_duration("soon")
    assert tuning.parse_duration("20m") == 1200 and tuning.parse_duration("1.5h") == 5400
    runner = CliRunner()
    done = runner.invoke(main, ["tune", str(train), "--model", "gbm", "--trials", "2", "--max-iter", "20", "--top",
                                "1", "--test", str(test)])
    assert done.exit_code == 0, done.output
    assert "best validation smape" in done.output and "reproduce: forecast train" in done.output
    assert "--max-iter 20" in done.output and "final model: the mean" not in done.output
    bad = runner.invoke(main, ["tune", str(train), "--model", "naive"])
    assert bad.exit_code == 1 and bad.output.strip().endswith("nothing to tune (no settings to search); choose one "
                                                              "of rnn, lstm, gru, transformer, ar, gbm")


def test_the_nets_head_is_searched_only_where_there_are_future_covariates(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, 80)
    pd.DataFrame({"ds": pd.date_range("2020-01-01", periods=80, freq="D"), "y": 10 + 3 * x,
                  "x": x}).to_csv(tmp_path / "d.csv", index=False)
    tiny = {"hidden_size": 8, "layers": 1, "epochs": 2, "lookback": 14, "ensemble": 1, "combine": "none",
            "steps_per_epoch": 5}
    spaces = {}
    for futr in ("x", None):
        result = tuning.tune(tmp_path / "d.csv", "gru", 7, trials=1, echo=lambda *_: None, futr=futr, **tiny)
        spaces[futr] = json.loads(mlflow.get_run(result.run_id).data.params["search_space"])
        if futr:
            assert result.best_params["head"] in ("local", "linear")
            assert "--head" in result.command
    assert spaces["x"]["head"] == ["choice", ["local", "linear"]]
    assert "head" not in spaces[None] and set(spaces[None]) == set(spaces["x"]) - {"head"}


def test_no_trial_starts_after_the_budget_runs_out(split):
    """The budget counts from the start of the search, setting up included: Optuna's own clock, which starts later,
    must not start trials that the budget then stops at their first epoch (a fresh store takes seconds to set up);
    at most the one running is stopped."""
    train, test = split
    lines = []
    result = tuning.tune(train, "gru", trials=500, timeout="20s", test_path=test, echo=lines.append, hidden_size=8,
                         layers=1, epochs=4, ensemble=1)
    stopped = [line for line in lines if "budget ran out" in line]
    assert len(stopped) <= 1, stopped
    assert 1 <= (result.trials["state"] == "COMPLETE").sum() < 500


def test_the_printed_command_reproduces_the_best_model_with_its_data_options(tmp_path):
    """The data read as the search read it (a target column of another name, a future covariate): the printed
    `forecast train` command trains the same model, and the printed predict command asks for the future file."""
    import shlex

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, 120)
    pd.DataFrame({"when": pd.date_range("2020-01-01", periods=120, freq="D"),
                  "load": 10 + 3 * x + rng.normal(0, .1, 120), "x": x}).to_csv(tmp_path / "d.csv", index=False)
    runner = CliRunner()
    tuned = runner.invoke(main, ["tune", str(tmp_path / "d.csv"), "--model", "gbm", "--horizon", "7", "--target",
                                 "load", "--futr", "x", "--trials", "2", "--max-iter", "20"])
    assert tuned.exit_code == 0, tuned.output
    lines = dict(line.split(": ", 1) for line in tuned.output.splitlines() if line.startswith(("reproduce", "predict")))
    assert lines["predict"].endswith("--horizon 7 --future FUTURE.csv")
    args = shlex.split(lines["reproduce"])
    assert args[:2] == ["forecast", "train"] and "--target" in args and "--futr" in args
    again = runner.invoke(main, args[1:] + ["--quiet"])
    assert again.exit_code == 0, again.output
    assert "final model: the mean of the best 2 configurations' forecasts" in tuned.output  # of 2 trials
    runs = mlflow.search_runs(search_all_experiments=True, order_by=["start_time DESC"])
    best, reproduced = runs[runs["tags.mlflow.runName"] == "gbm-top2"].iloc[0], runs.iloc[0]
    assert reproduced["params.covariates_futr"] == "x"
    for metric in ("metrics.smape", "metrics.mae", "metrics.msis"):
        assert reproduced[metric] == pytest.approx(best[metric], rel=1e-9)
