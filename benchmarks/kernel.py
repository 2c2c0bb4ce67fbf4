#!/usr/bin/env python3
"""Is a faster GRU kernel within reach on this CPU? Training steps per second of three GRUs of equal maths.

  - nn.GRU: torch's own (ATen on the CPU: input projections for all steps in one matmul, then per step one
    matmul and the gate arithmetic as separate ops);
  - loop GRU: the same cell written out in Python, input projections in one matmul per layer, eager;
  - compiled loop GRU: that module under torch.compile (inductor fuses each step's gate arithmetic).

    python3 benchmarks/kernel.py [--hidden 200] [--layers 2] [--steps 40]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from m3 import recurrent_flops  # noqa: E402
from speed import B, BareGRU, H, L, ceiling, steps_per_second  # noqa: E402


class LoopGRU(nn.Module):
    def __init__(self, hidden, layers):
        super().__init__()
        self.ih = nn.ModuleList(nn.Linear(1 if i == 0 else hidden, 3 * hidden) for i in range(layers))
        self.hh = nn.ModuleList(nn.Linear(hidden, 3 * hidden) for _ in range(layers))
        self.head = nn.Linear(hidden, H)
        self.hidden = hidden

    def forward(self, x):
        seq = x.unsqueeze(-1)  # (B, L, 1)
        for ih, hh in zip(self.ih, self.hh):
            gi = ih(seq)  # (B, L, 3H): every step's input projection in one matmul
            h = x.new_zeros(x.shape[0], self.hidden)
            outs = []
            for t in range(seq.shape[1]):
                i_r, i_z, i_n = gi[:, t].chunk(3, 1)
                h_r, h_z, h_n = hh(h).chunk(3, 1)
                r, z = torch.sigmoid(i_r + h_r), torch.sigmoid(i_z + h_z)
                n = torch.tanh(i_n + r * h_n)
                h = (1 - z) * n + z * h
                outs.append(h)
            seq = torch.stack(outs, 1)
        return self.head(h)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hidden", type=int, default=200)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    flops = recurrent_flops("gru", B, L, args.hidden, args.layers, H)
    peak = ceiling()
    print(f"GRU {args.layers} x {args.hidden}, window {L}, batch {B}: {flops / 1e9:.2f} GFLOP per step; "
          f"matmul ceiling {peak:.0f} GFLOP/s")
    start = time.perf_counter()
    compiled = torch.compile(LoopGRU(args.hidden, args.layers))
    steps_per_second(compiled, 1)
    compile_s = time.perf_counter() - start
    for what, net in (("nn.GRU", BareGRU(args.hidden, args.layers)), ("loop GRU, eager", LoopGRU(args.hidden,
                                                                                                   args.layers)),
                      (f"loop GRU, torch.compile ({compile_s:.0f} s to compile)", compiled)):
        r = steps_per_second(net, args.steps)
        print(f"{what:44} {r:7.2f} steps/s {r * flops / 1e9:7.1f} GFLOP/s {r * flops / 1e9 / peak:6.1%} of ceiling")


if __name__ == "__main__":
    main()
