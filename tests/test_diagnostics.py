"""Backpropagation through time made visible: lag gradients by hand, truncation, the NaN guard, the artifacts."""

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from conftest import TINY_NET
from mlflow.tracking import MlflowClient
from torch import nn

from forecast.cli import main
from forecast.diagnostics import half_life, lag_gradients, ratio_last_first
from forecast.models.nets import RecurrentNet, TransformerNet


def linear_rnn(w: float, lookback: int) -> RecurrentNet:
    """A one-unit RNN that is linear on positive inputs: h_t = relu(w h_{t-1} + x_t) = w h_{t-1} + x_t."""
    net = RecurrentNet("rnn", lookback, 1, hidden_size=1, layers=1, dropout=0.0)
    net.rnn = nn.RNN(1, 1, num_layers=1, nonlinearity="relu", bias=False, batch_first=True)
    with torch.no_grad():
        net.rnn.weight_hh_l0.fill_(w)
        net.rnn.weight_ih_l0.fill_(1.0)
        net.head.linear.weight.fill_(1.0)
        net.head.linear.bias.fill_(0.0)
    return net


@pytest.mark.parametrize("w", [0.5, 0.9, 1.2])
def test_lag_gradients_of_a_linear_rnn_are_powers_of_w(w):
    lookback = 10
    net = linear_rnn(w, lookback)
    x = torch.arange(lookback, 0, -1, dtype=torch.float32).repeat(3, 1)  # decreasing: inputs x - x_T >= 0
    y = torch.full((3, 1), -1e3)  # far below the forecast: ∂L/∂ŷ = 1, so ∂L/∂h_T = 1 (the head's weight)
    norms = lag_gradients(net, x, y)
    np.testing.assert_allclose(norms, w ** np.arange(lookback), rtol=1e-5)
    assert ratio_last_first(norms) == pytest.approx(w ** (lookback - 1), rel=1e-5)
    if w < 1:
        assert half_life(norms) == np.ceil(np.log(0.5) / np.log(w) - 1e-9)  # the first k with w^k <= 1/2
    else:
        assert np.isnan(half_life(norms))
    # the unrolled forecast is the forecast
    torch.testing.assert_close(net.unrolled(x)[0], net(x))


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("k", [1, 4, 7])
def test_truncated_bptt_stops_the_gradient_k_steps_back(cell, k):
    torch.manual_seed(0)
    lookback = 12
    net = RecurrentNet(cell, lookback, 3, hidden_size=6, layers=2, dropout=0.0)
    x, y = torch.randn(5, lookback), torch.randn(5, 3)
    norms = lag_gradients(net, x, y, tbptt=k)
    assert np.all(norms[k:] == 0.0) and np.all(norms[:k] > 0)
    # the training forward itself: no gradient reaches the inputs before the last K steps
    x = x.clone().requires_grad_(True)
    (net(x, tbptt=k) - y).abs().mean().backward()
    assert torch.all(x.grad[:, :lookback - k] == 0) and torch.all(x.grad[:, lookback - k:].abs().sum(0) > 0)
    assert np.all(lag_gradients(net, x.detach(), y) > 0)  # untruncated, every lag gets some


def test_transformer_gradient_is_taken_with_respect_to_the_inputs():
    torch.manual_seed(0)
    net = TransformerNet(8, 2, hidden_size=8, layers=1, dropout=0.0, heads=2)
    norms = lag_gradients(net, torch.randn(4, 8), torch.randn(4, 2))
    assert norms.shape == (8,) and np.all(np.isfinite(norms)) and np.all(norms >= 0)


def test_gradient_flow_is_logged_with_every_neural_run(air_csv, tmp_path):
    result = CliRunner().invoke(main, ["train", str(air_csv), "--model", "gru", *TINY_NET, "--epochs", "5", "-q"])
    assert result.exit_code == 0, result.output
    client = MlflowClient()
    (run,) = client.search_runs([client.get_experiment_by_name("air_passengers").experiment_id])
    metrics = run.data.metrics
    assert {"grad_ratio_last_first", "grad_half_life", "grad_norm_mean", "grad_norm_max", "clipped_fraction"} \
        <= set(metrics)
    assert [m.step for m in client.get_metric_history(run.info.run_id, "grad_norm_max")] == [1, 2, 3, 4, 5]
    assert 0 <= metrics["clipped_fraction"] <= 1
    flow = pd.read_csv(mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="gradient_flow.csv",
                                                           dst_path=str(tmp_path)))
    assert flow["epoch"].unique().tolist() == ["epoch 1", "epoch 2", "epoch 4", "end (best epoch 5)"] or \
        flow["epoch"].iloc[-1].startswith("end (best epoch")
    assert flow.groupby("epoch").size().eq(12).all()  # lags 0..lookback-1
    end = flow[flow["epoch"] == flow["epoch"].iloc[-1]]["grad_norm"].to_numpy()
    assert metrics["grad_ratio_last_first"] == pytest.approx(end[-1] / end[0], rel=1e-6)
    assert "gradient_flow.png" in {a.path for a in client.list_artifacts(run.info.run_id)}


def test_divergence_stops_naming_the_epoch_fails_the_run_and_keeps_the_best_weights(air_csv):
    result = CliRunner().invoke(main, ["train", str(air_csv), "--model", "rnn", "--lr", "1e36", "--clip", "0",
                                       "--epochs", "3", "--hidden-size", "8", "-q"])
    assert result.exit_code == 1
    line = result.output.strip()
    assert line.startswith("Error: training diverged at epoch 2 (loss ") and \
        line.endswith("set --clip (e.g. 1) or a smaller --lr")
    client = MlflowClient()
    (run,) = client.search_runs([client.get_experiment_by_name("air_passengers").experiment_id])
    assert run.info.status == "FAILED"
    assert run.data.tags["error"].startswith("TrainingDiverged: training diverged at epoch 2")
    model = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model")  # the weights of epoch 1
    history = pd.read_csv(air_csv).rename(columns={"month": "ds", "passengers": "y"}).assign(unique_id="passengers")
    history["ds"], history["y"] = pd.to_datetime(history["ds"]), history["y"].astype(float)
    assert np.isfinite(model.predict(history, params={"horizon": 3})["yhat"]).all()


def test_diagnose_compares_the_recurrent_nets_in_one_picture(air_csv, tmp_path):
    out = tmp_path / "flow.png"
    result = CliRunner().invoke(main, ["diagnose", str(air_csv), "--models", "rnn,gru", "--lookback", "16",
                                       "--hidden-size", "8", "--epochs", "2", "-o", str(out)])
    assert result.exit_code == 0, result.output
    rows = result.stdout.strip().splitlines()
    assert rows[0].split() == ["model", "grad_ratio_last_first", "half_life", "smape"]
    assert [r.split()[0] for r in rows[1:3]] == ["rnn", "gru"]
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    client = MlflowClient()
    runs = client.search_runs([client.get_experiment_by_name("air_passengers").experiment_id])
    parent = [r for r in runs if r.info.run_name == "diagnose"][0]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert sorted(r.info.run_name for r in children) == ["gru", "rnn"]
    assert {"rnn_grad_ratio_last_first", "gru_grad_half_life"} <= set(parent.data.metrics)
    assert "gradient_flow_comparison.png" in {a.path for a in client.list_artifacts(parent.info.run_id)}
