#!/usr/bin/env python3
"""Accuracy and training speed on the M1 and M3 competition data, without MLflow in the way.

`--split test` (the official split): fits each model on data/<subset>_train.csv, forecasts the official
horizon and scores it against data/<subset>_test.csv. `--split validation` never reads a test file: the last
horizon of every training series is the validation window (series too short for it are fitted, not scored),
the model is fitted on the rest; this is what defaults are chosen on. `--as-train` scores the model that
`forecast train` saves instead: fitted first without the data's last horizon (the holdout train scores), then
again on all of it. Scores are the M-competitions' sMAPE and MASE (as ../shared/bench/score.py computes them);
per model it also prints training seconds, optimizer steps per second and GFLOP/s (FLOPs of one training step on
a full batch, times the steps, over the training time).

    python3 benchmarks/accuracy.py --subset m3_monthly --models gru lstm --set ensemble=3 --out /tmp/m3
    python3 benchmarks/accuracy.py --subset all --split validation --models ar seasonal-naive gru
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
from forecast.data import split_holdout  # noqa: E402
from forecast.metrics import evaluate  # noqa: E402

HORIZONS = {"m1_monthly": 18, "m1_quarterly": 8, "m1_yearly": 6,
            "m3_monthly": 18, "m3_quarterly": 8, "m3_yearly": 6, "m3_other": 8}
NETS = ("rnn", "lstm", "gru", "transformer")
# The references: NeuralForecast 3.3.0 on this machine (M3 monthly: sMAPE, fit+predict seconds),
# the published Theta and N-BEATS sMAPE, and our targets
PEER = {"gru": "NF GRU 15.92 in 88 s", "lstm": "NF LSTM 16.14 in 57 s", "rnn": "NF RNN 16.56 in 22 s",
        "transformer": "NF VanillaTransformer 15.18 in 131 s"}
PUBLISHED = {"m3_monthly": "Theta 13.85, N-BEATS 13.11", "m3_quarterly": "Theta 8.96, N-BEATS 8.84",
             "m3_yearly": "Theta 16.90, N-BEATS 15.93", "m3_other": "Theta 4.41, N-BEATS 4.24"}


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


def split(subset: str, which: str, h: int | None = None):
    """(training frame, scored frame, frequency) of `subset`: the official split, or the validation window (the
    last `h` points of each training series, default the official horizon)."""
    train = api.load(ROOT / f"data/{subset}_train.csv")
    if which == "validation":
        fit, scored = split_holdout(train.df, h or HORIZONS[subset])
        return fit, scored, train.freq
    test = api.load(ROOT / f"data/{subset}_test.csv", freq=train.freq.alias)
    return train.df, test.df, train.freq


def run(subset: str, name: str, params: dict, out: Path | None, return_matrix: bool = False,
        which: str = "test", levels=(), refit: bool = False, as_train: bool = False, h: int | None = None):
    fit, scored, freq = split(subset, which, h)
    h = h or HORIZONS[subset]
    params = {"diagnostics": False, **params} if name in NETS else params
    model = registry.create(name, **params)
    start = time.perf_counter()
    model.fit(split_holdout(fit, h)[0] if as_train else fit, freq, h)
    seconds = time.perf_counter() - start
    if refit or as_train:  # fitted again on all of `fit` with the settings this fit chose (forecast.backtesting)
        first = model
        model = registry.create(name, **{**params, **first.final_settings()})
        start = time.perf_counter()
        model.fit(fit, freq, h)
        model.inherit(first)
        seconds += time.perf_counter() - start
    start = time.perf_counter()
    forecast = model.predict(h, levels=levels)
    predict_seconds = time.perf_counter() - start
    scores = evaluate(fit, scored, forecast, freq.season, levels=levels)
    row = {"subset": subset, "split": which, "model": name, "smape": scores["smape"], "mase": scores["mase"],
           **{k: v for k, v in scores.items() if k.startswith("coverage") or k == "msis"},
           "train_s": seconds, "predict_s": predict_seconds}
    if hasattr(model, "combine_weight_"):
        row["combine_weight"], row["combine_partner"] = model.combine_weight_, model.partner_kind_
    if which == "test" and (subset, name) in (("m3_monthly", n) for n in PEER):
        row["reference"] = PEER[name]
    if name in NETS:
        steps = sum(h.steps for h in model.histories_)
        loop_s = sum(h.seconds for h in model.histories_)
        row.update(steps=steps, steps_per_s=steps / loop_s, gflops=step_flops(model) * steps / loop_s / 1e9,
                   epochs=sum(len(h.train_loss) for h in model.histories_),
                   **{k: v for k, v in model.fit_details()[0].items() if k.startswith("seconds_")})
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        forecast.to_csv(out / f"{subset}_{which}_{name}.csv", index=False)
    if return_matrix:
        return row, forecast["yhat"].to_numpy().reshape(-1, h)
    return row


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subset", nargs="+", default=["m3_monthly"], choices=[*HORIZONS, "all", "m1", "m3"])
    ap.add_argument("--split", default="test", choices=["test", "validation"])
    ap.add_argument("--models", nargs="+", default=list(NETS))
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="hyperparameters of the models")
    ap.add_argument("--jsonl", type=Path, help="append every result row here as JSON")
    ap.add_argument("--refit", action="store_true", help="score the model fitted again on the same data with the "
                                                         "settings the first fit chose")
    ap.add_argument("--as-train", action="store_true",
                    help="score what forecast train saves: a fit on the data less its last horizon (the holdout "
                         "train scores), then the model fitted again on all of it, inheriting that fit's partner, "
                         "weight and calibration")
    ap.add_argument("--level", type=float, nargs="*", default=[80, 95],
                    help="prediction intervals to forecast and score (coverage, MSIS)")
    ap.add_argument("--horizon", type=int, help="with --split validation: forecast and score this many points "
                                                 "instead of the official horizon")
    ap.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    ap.add_argument("--out", type=Path, help="write each model's forecasts here as <subset>_<model>.csv")
    args = ap.parse_args(argv)
    if args.horizon and args.split != "validation":
        ap.error("--horizon needs --split validation: the test files hold the official horizons")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    params = {k: parse_value(v) for k, v in (item.split("=", 1) for item in args.set)}
    subsets = [s for s in HORIZONS if "all" in args.subset or s in args.subset or s.split("_")[0] in args.subset]
    rows = []
    for subset in subsets:
        for name in args.models:
            row = {**run(subset, name, params, args.out, which=args.split, levels=tuple(args.level),
                       refit=args.refit, as_train=args.as_train, h=args.horizon), "params": params, "refit": args.refit,
                   "as_train": args.as_train}
            rows.append(row)
            print(json.dumps(row), flush=True)
            if args.jsonl:
                with open(args.jsonl, "a") as log:
                    log.write(json.dumps(row) + "\n")
    table = pd.DataFrame(rows).drop(columns=["params"])
    with pd.option_context("display.width", 250, "display.max_columns", 20):
        print(table.round(3).to_string(index=False))


if __name__ == "__main__":
    main()
