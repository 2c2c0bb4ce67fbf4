#!/usr/bin/env python3
"""Accuracy and training speed on the M3 competition data, official split, without MLflow in the way.

Fits each model on data/m3_<subset>_train.csv, forecasts the official horizon, scores it against
data/m3_<subset>_test.csv (the M-competitions' sMAPE and MASE, as ../shared/bench/score.py computes them) and
prints, per model: sMAPE, MASE, training seconds, optimizer steps per second and GFLOP/s (the FLOPs of one
training step counted by torch's FlopCounterMode on a full batch, times the steps taken, over the training time).

    python3 benchmarks/m3.py --subset monthly --models gru lstm --set ensemble=3 --out /tmp/m3
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from forecast import api, registry  # noqa: E402
from forecast.metrics import evaluate  # noqa: E402

HORIZONS = {"monthly": 18, "quarterly": 8, "yearly": 6, "other": 8}
NETS = ("rnn", "lstm", "gru", "transformer")
# The references: NeuralForecast 3.3.0 on this machine (M3 monthly: sMAPE, fit+predict seconds),
# the published Theta and N-BEATS sMAPE, and our targets
PEER = {"gru": "NF GRU 15.92 in 88 s", "lstm": "NF LSTM 16.14 in 57 s", "rnn": "NF RNN 16.56 in 22 s",
        "transformer": "NF VanillaTransformer 15.18 in 131 s"}
PUBLISHED = {"monthly": "Theta 13.85, N-BEATS 13.11", "quarterly": "Theta 8.96, N-BEATS 8.84",
             "yearly": "Theta 16.90, N-BEATS 15.93", "other": "Theta 4.41, N-BEATS 4.24"}
TARGET = {"monthly": 13.0, "quarterly": 8.9, "yearly": 16.0, "other": 4.3}


def parse_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


GATES = {"rnn": 1, "gru": 3, "lstm": 4}


def recurrent_flops(cell: str, batch: int, lookback: int, hidden: int, layers: int, h: int) -> float:
    """FLOPs of one training step of a stacked recurrent net with a linear head: the matrix products of the
    forward pass (2 per multiply-add) times 3 for forward and backward. (torch's FlopCounterMode agrees for the
    RNN and GRU; it does not see the oneDNN kernel that runs the LSTM on the CPU.)"""
    g = GATES[cell]
    inputs = [1] + [hidden] * (layers - 1)
    forward = sum(2 * batch * lookback * g * hidden * (n + hidden) for n in inputs)
    return 3 * (forward + 2 * batch * hidden * h)


def step_flops(model) -> float:
    """FLOPs of one training step (forward, loss, backward) of the model's first net on a full batch."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    net, cfg = model.nets_[0], model.config
    if model.cell in GATES:
        return recurrent_flops(model.cell, cfg.batch_size, model.lookbacks_[0], cfg.hidden_size, cfg.layers,
                               model.h_)
    x = torch.randn(cfg.batch_size, model.lookbacks_[0], device=next(net.parameters()).device)
    net.train()
    with FlopCounterMode(display=False) as counter:
        out = net(x, tbptt=cfg.tbptt)
        out.abs().mean().backward()
    net.zero_grad(set_to_none=True)
    return float(counter.get_total_flops())


def run(subset: str, name: str, params: dict, out: Path | None, return_matrix: bool = False):
    train = api.load(ROOT / f"data/m3_{subset}_train.csv")
    test = api.load(ROOT / f"data/m3_{subset}_test.csv", freq=train.freq.alias)
    h = HORIZONS[subset]
    params = {"diagnostics": False, **params}
    model = registry.create(name, **(params if name in NETS else {}))
    start = time.perf_counter()
    model.fit(train.df, train.freq, h)
    seconds = time.perf_counter() - start
    start = time.perf_counter()
    forecast = model.predict(h)
    predict_seconds = time.perf_counter() - start
    scores = evaluate(train.df, test.df, forecast, train.freq.season)
    row = {"subset": subset, "model": name, "smape": scores["smape"], "mase": scores["mase"],
           "train_s": seconds, "predict_s": predict_seconds, "target": TARGET[subset],
           "reference": PEER[name] if subset == "monthly" and name in PEER else PUBLISHED[subset]}
    if name in NETS:
        steps = sum(h.steps for h in model.histories_)
        loop_s = sum(h.seconds for h in model.histories_)
        row.update(steps=steps, steps_per_s=steps / loop_s, gflops=step_flops(model) * steps / loop_s / 1e9,
                   epochs=sum(len(h.train_loss) for h in model.histories_))
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        forecast[["unique_id", "ds", "yhat"]].to_csv(out / f"{subset}_{name}.csv", index=False)
    if return_matrix:
        return row, forecast["yhat"].to_numpy().reshape(-1, h)
    return row


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subset", nargs="+", default=["monthly"], choices=[*HORIZONS, "all"])
    ap.add_argument("--models", nargs="+", default=list(NETS))
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="hyperparameters of the nets")
    ap.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    ap.add_argument("--out", type=Path, help="write each model's forecasts here as <subset>_<model>.csv")
    args = ap.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    params = {k: parse_value(v) for k, v in (item.split("=", 1) for item in args.set)}
    subsets = list(HORIZONS) if "all" in args.subset else args.subset
    rows = []
    for subset in subsets:
        for name in args.models:
            row = run(subset, name, params, args.out)
            rows.append(row)
            print(json.dumps({**row, "params": params}), flush=True)
    table = pd.DataFrame(rows)
    with pd.option_context("display.width", 250, "display.max_columns", 20):
        print(table.round(3).to_string(index=False))


if __name__ == "__main__":
    main()
