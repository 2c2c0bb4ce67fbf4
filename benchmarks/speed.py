#!/usr/bin/env python3
"""Training speed against the machine: the matrix-multiply ceiling, a bare torch training step and our loop.

At NeuralForecast's default GRU size (2 layers x 200 hidden, window 36, horizon 18, 128 windows per step) it
measures, in one process:
  - the ceiling: a large float32 matmul, in GFLOP/s;
  - the bare step: nn.GRU -> last hidden state -> Linear, MAE loss, backward, Adam, on one fixed batch;
  - our loop: forecast.training.fit_network on the same net size over real M3 monthly windows (sampling,
    clipping, the learning-rate schedule, the per-epoch bookkeeping included);
and our four nets at their default size. FLOPs per step are counted by torch's FlopCounterMode.

    python3 benchmarks/speed.py [--steps 60] [--threads 2]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from m3 import GATES, recurrent_flops  # noqa: E402

from forecast import api, registry  # noqa: E402
from forecast.data import series_arrays  # noqa: E402
from forecast.training import TrainConfig, fit_network  # noqa: E402
from forecast.transforms import fit_transforms  # noqa: E402
from forecast.windows import make_windows  # noqa: E402

L, H, B = 36, 18, 128


def ceiling(n: int = 2048, repeat: int = 10) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    start = time.perf_counter()
    for _ in range(repeat):
        a @ b
    return 2 * n**3 * repeat / (time.perf_counter() - start) / 1e9


def flops_of(step) -> float:
    with FlopCounterMode(display=False) as counter:
        step()
    return float(counter.get_total_flops())


class BareGRU(nn.Module):
    def __init__(self, hidden: int, layers: int):
        super().__init__()
        self.rnn = nn.GRU(1, hidden, layers, batch_first=True)
        self.head = nn.Linear(hidden, H)

    def forward(self, x, tbptt=None):
        out, _ = self.rnn(x.unsqueeze(-1))
        return self.head(out[:, -1])


def steps_per_second(net: nn.Module, steps: int) -> float:
    """Forward, MAE loss, backward and Adam on one fixed batch, after three warm-up steps."""
    x, y = torch.randn(B, L), torch.randn(B, H)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)

    def step():
        loss = (net(x) - y).abs().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(3):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps / (time.perf_counter() - start)


def bare_steps(net: nn.Module, steps: int) -> tuple[float, float]:
    """(steps per second, FLOPs per step) of the bare training step."""
    x, y = torch.randn(B, L), torch.randn(B, H)
    flops = flops_of(lambda: (net(x) - y).abs().mean().backward())
    return steps_per_second(net, steps), flops


def m3_windows():
    data = api.load(ROOT / "data/m3_monthly_train.csv")
    _, series = series_arrays(data.df)
    transforms = fit_transforms(series, data.freq.season)
    return make_windows([t.transform(s) for t, s in zip(transforms, series)], L, H)


def loop_steps(net: nn.Module, windows, steps: int, cell: str | None = None) -> tuple[float, float]:
    """(steps per second, FLOPs per step) of our training loop, as the models call it."""
    if cell in GATES:
        flops = recurrent_flops(cell, B, L, net.rnn.hidden_size, net.rnn.num_layers, H)
    else:
        x = torch.randn(B, L)
        flops = flops_of(lambda: net(x).abs().mean().backward())
        net.zero_grad(set_to_none=True)
    cfg = TrainConfig(epochs=1, steps_per_epoch=3, device="cpu")
    fit_network(net, windows, None, cfg)  # warm-up
    cfg = TrainConfig(epochs=max(steps // 20, 1), steps_per_epoch=20, device="cpu")
    history = fit_network(net, windows, None, cfg)
    return history.steps / history.seconds, flops


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    peak = ceiling()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; matmul ceiling {peak:.1f} GFLOP/s "
          "(2048 x 2048 float32)")
    windows = m3_windows()
    rows = []
    bare = bare_steps(BareGRU(200, 2), args.steps)
    rows.append(("bare nn.GRU step (2 x 200)", *bare, "NeuralForecast GRU fit: 5.8 steps/s"))
    ours = registry.create("gru", hidden_size=200, layers=2)._build(L, H, 1)
    rows.append(("our loop, GRU 2 x 200", *loop_steps(ours, windows, args.steps, "gru"), ""))
    for name in ("rnn", "lstm", "gru", "transformer"):
        model = registry.create(name)
        net = model._build(L, H, 1)
        rows.append((f"our loop, {name} default size", *loop_steps(net, windows, args.steps, name), ""))
    print(f"{'what':34} {'steps/s':>8} {'GFLOP/step':>10} {'GFLOP/s':>8} {'of ceiling':>10}  reference")
    for what, rate, flops, ref in rows:
        print(f"{what:34} {rate:8.2f} {flops / 1e9:10.3f} {rate * flops / 1e9:8.1f} "
              f"{rate * flops / 1e9 / peak:10.1%}  {ref}")
    loss = 1 - rows[1][1] / rows[0][1]
    print(f"our loop vs the bare step at equal size: {rows[1][1]:.2f} vs {rows[0][1]:.2f} steps/s "
          f"({loss:+.1%} slower)")


if __name__ == "__main__":
    main()
