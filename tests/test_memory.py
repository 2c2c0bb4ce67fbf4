"""The memory-horizon task: it really needs memory (a window without the cue learns nothing), it reproduces its own
numbers with a fixed seed, and `forecast diagnose --memory --quick` logs the table to MLflow."""

import mlflow
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from forecast import memory
from forecast.cli import main


@given(st.integers(1, 40), st.integers(1, 40))
@settings(max_examples=30, deadline=None)
def test_the_target_is_the_input_k_steps_back_when_the_window_holds_it(delay, window):
    x, y = memory.task(64, window, delay, seed=3)
    assert x.shape == (64, window) and y.shape == (64, 1)
    if window >= delay:
        np.testing.assert_array_equal(y[:, 0], x[:, window - delay])  # lag delay - 1 from the window's end
    else:  # the cue lies before the window: no input equals it
        assert not np.isclose(x, y).all(axis=0).any()


def test_a_window_without_the_cue_learns_nothing_and_one_with_it_learns_the_copy():
    blind = memory.measure("gru", 8, 6, memory.QUICK)
    seeing = memory.measure("gru", 8, 9, memory.QUICK)
    assert blind["relative_error"] > 0.9
    assert seeing["relative_error"] < memory.SOLVED


def test_quick_diagnose_logs_the_table_and_reproduces_its_numbers(tmp_path):
    result = CliRunner().invoke(main, ["diagnose", "--memory", "--quick", "--models", "rnn,gru",
                                       "-o", str(tmp_path / "m.png")])
    assert result.exit_code == 0, result.output
    assert "largest delay solved (error < 0.1): rnn " in result.output and (tmp_path / "m.png").stat().st_size > 0
    parent = mlflow.search_runs(experiment_names=["memory_horizon"],
                                filter_string="tags.mlflow.runName = 'memory-quick'")
    run_id = parent["run_id"][0]
    table = pd.read_csv(mlflow.MlflowClient().download_artifacts(run_id, "memory_horizon.csv", str(tmp_path)))
    assert table[["cell", "delay"]].values.tolist() == [["rnn", 2], ["rnn", 4], ["rnn", 8],
                                                       ["gru", 2], ["gru", 4], ["gru", 8]]
    children = mlflow.search_runs(experiment_names=["memory_horizon"],
                                  filter_string=f"tags.mlflow.parentRunId = '{run_id}'")
    assert sorted(children["tags.mlflow.runName"]) == ["memory-gru", "memory-rnn"]
    history = mlflow.MlflowClient().get_metric_history(children["run_id"][0], "relative_error")
    assert sorted(m.step for m in history) == [2, 4, 8]
    again = memory.measure("gru", 4, 5, memory.QUICK)  # the same training, from the same seed
    logged = table[(table["cell"] == "gru") & (table["delay"] == 4)].iloc[0]
    assert again["relative_error"] == pytest.approx(logged["relative_error"], rel=1e-9)
    assert again["grad_cue_over_last"] == pytest.approx(logged["grad_cue_over_last"], rel=1e-9)
    bad = CliRunner().invoke(main, ["diagnose", "--memory", "--quick", "--models", "arima"])
    assert bad.exit_code == 1 and "the memory task compares the nets" in bad.output
