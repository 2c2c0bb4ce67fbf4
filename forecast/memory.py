"""How far back each cell can remember: the nets (the same classes, the same training loop, small sizes) trained on
a synthetic "copy after a delay" task, where the value to forecast is the input k steps back and every other input
is noise, for k over a range. Reported per cell and k: the error relative to the best constant forecast (MAE over
the MAE of the training targets' median: 1 learned nothing, 0 perfect), the largest k solved (relative error below
SOLVED) and the gradient reaching the cue's step (forecast.diagnostics.lag_gradients) over that at the last step.
`forecast diagnose --memory` logs it to one MLflow parent run with a child run per cell."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from forecast.diagnostics import lag_gradients
from forecast.errors import ModelError
from forecast.models.nets import RecurrentNet, TransformerNet
from forecast.training import TrainConfig, fit_network

CELLS = ("rnn", "lstm", "gru", "transformer")
SOLVED = 0.1  # relative error below which a delay counts as solved


@dataclass(frozen=True)
class Setting:
    delays: tuple[int, ...]
    hidden_size: int
    train: int  # windows
    epochs: int
    steps_per_epoch: int
    window: int | None = None  # None: each delay plus one (the cue is the window's second input)
    lr: float = 1e-2  # Adam's, higher than the forecasters' default: the task is learned in few steps
    batch_size: int = 64


FULL = Setting(delays=(2, 4, 8, 16, 32, 64, 128), hidden_size=32, train=8192, epochs=20, steps_per_epoch=40)
QUICK = Setting(delays=(2, 4, 8), hidden_size=16, train=2048, epochs=25, steps_per_epoch=40)


def task(n: int, window: int, delay: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`n` windows of `window` standard normal inputs and their targets, each the input `delay` steps before the
    step forecast (at lag delay - 1 from the window's end); when the window is shorter than that, a fresh draw
    the window does not hold."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, max(window, delay))).astype(np.float32)
    y = x[:, -delay][:, None].copy()
    return np.ascontiguousarray(x[:, -window:]), y


def build(cell: str, window: int, hidden: int, seed: int):
    torch.manual_seed(seed)
    if cell == "transformer":
        return TransformerNet(window, 1, hidden, 1, 0.0, 4)
    return RecurrentNet(cell, window, 1, hidden, 1, 0.0)


def relative_error(net, x: np.ndarray, y: np.ndarray, constant: float) -> float:
    with torch.no_grad():
        net.eval()
        pred = net(torch.as_tensor(x)).numpy()
    return float(np.mean(np.abs(pred - y)) / np.mean(np.abs(y - constant)))


def measure(cell: str, delay: int, window: int, setting: Setting, seed: int = 1) -> dict:
    """Train `cell` on the task at `delay` with windows of `window` inputs; its relative error on fresh windows and
    the gradient reaching the cue."""
    train = task(setting.train, window, delay, seed)
    val = task(1024, window, delay, seed + 1)
    test = task(2048, window, delay, seed + 2)
    net = build(cell, window, setting.hidden_size, seed)
    cfg = TrainConfig(epochs=setting.epochs, steps_per_epoch=setting.steps_per_epoch, lr=setting.lr,
                      batch_size=setting.batch_size, patience=setting.epochs, seed=seed, device="cpu", loss="mae")
    start = time.perf_counter()
    history = fit_network(net, train, val, cfg)
    seconds = time.perf_counter() - start
    constant = float(np.median(train[1]))
    norms = lag_gradients(net, torch.as_tensor(test[0][:256]), torch.as_tensor(test[1][:256]))
    cue = delay - 1  # the cue's lag from the window's last step
    return {"cell": cell, "delay": delay, "window": window,
            "relative_error": relative_error(net, *test, constant),
            "grad_cue_over_last": float(norms[cue] / norms[0]) if cue < len(norms) and norms[0] > 0 else float("nan"),
            "best_epoch": history.best_epoch, "seconds": seconds}


def memory_table(cells=CELLS, setting: Setting = FULL, seed: int = 1, echo=None) -> pd.DataFrame:
    """Every cell at every delay (windows of the delay plus one, unless the setting fixes them)."""
    rows = []
    for cell in cells:
        for delay in setting.delays:
            rows.append(measure(cell, delay, setting.window or delay + 1, setting, seed))
            if echo is not None:
                r = rows[-1]
                echo(f"  {cell} k={delay}: relative error {r['relative_error']:.3f}, gradient at the cue "
                     f"{r['grad_cue_over_last']:.3g} of the last step's ({r['seconds']:.1f} s)")
    return pd.DataFrame(rows)


def solved(table: pd.DataFrame) -> dict[str, int]:
    """Per cell, the largest delay solved (relative error below SOLVED) with every shorter delay solved too; 0 when
    none."""
    out = {}
    for cell, part in table.groupby("cell", sort=False):
        best = 0
        for delay, error in zip(part["delay"], part["relative_error"]):
            if error >= SOLVED:
                break
            best = int(delay)
        out[cell] = best
    return out


def figure(table: pd.DataFrame, title: str):
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for cell, part in table.groupby("cell", sort=False):
        left.plot(part["delay"], part["relative_error"], marker="o", lw=1.6, label=cell)
        right.semilogy(part["delay"], part["grad_cue_over_last"].clip(lower=1e-12), marker="o", lw=1.6, label=cell)
    for ax in (left, right):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("delay k (steps between the cue and the forecast)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    left.axhline(SOLVED, color="0.5", ls=":", lw=1)
    left.set_ylabel("error / best constant's (1: nothing learned)")
    right.set_ylabel("gradient at the cue / at the last step")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def memory_horizon(cells=CELLS, quick: bool = False, experiment: str = "memory_horizon",
                   tracking_uri: str | None = None, output=None, seed: int = 1, echo=print) -> tuple[str, pd.DataFrame]:
    """The table for `cells` (the QUICK setting with `quick`), logged to one MLflow parent run (the table as
    memory_horizon.csv, the plot, the largest delay each cell solves) with a child run per cell (its relative
    error and gradient at the cue as curves over the delay); the plot also written to `output` when given."""
    from forecast import plots, tracking

    unknown = [c for c in cells if c not in CELLS]
    if unknown:
        raise ModelError(f"--models {', '.join(unknown)}: the memory task compares the nets ({', '.join(CELLS)})")
    setting = QUICK if quick else FULL
    tables = []
    with tracking.parent_run(experiment, run_name="memory-quick" if quick else "memory", uri=tracking_uri) as parent:
        parent.log_params({"cells": ",".join(cells), "delays": ",".join(map(str, setting.delays)), "seed": seed,
                           "hidden_size": setting.hidden_size, "train_windows": setting.train,
                           "epochs": setting.epochs, "steps_per_epoch": setting.steps_per_epoch, "lr": setting.lr,
                           "batch_size": setting.batch_size,
                           "window": setting.window or "delay + 1", "solved_below": SOLVED})
        for cell in cells:
            echo(f"{cell} ...")
            with tracking.training_run(experiment, run_name=f"memory-{cell}", uri=tracking_uri,
                                       parent_run_id=parent.run_id) as run:
                table = memory_table((cell,), setting, seed, echo)
                run.log_params({"cell": cell, "delays": ",".join(map(str, setting.delays))})
                for _, row in table.iterrows():
                    run.log_metrics({"relative_error": row["relative_error"],
                                     "grad_cue_over_last": row["grad_cue_over_last"]}, step=int(row["delay"]))
                run.log_metrics({"largest_delay_solved": solved(table)[cell]})
            tables.append(table)
        table = pd.concat(tables, ignore_index=True)
        parent.log_frame(table, "memory_horizon.csv")
        parent.log_metrics({f"{cell}_largest_delay_solved": k for cell, k in solved(table).items()})
        fig = figure(table, f"memory horizon: error on the copy-after-k-steps task ({'quick' if quick else 'full'})")
        parent.log_figure(fig, "memory_horizon.png")
        if output:
            fig.savefig(output, dpi=120)
        plots.close(fig)
    return parent.run_id, table
