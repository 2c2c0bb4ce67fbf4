"""Figures: the holdout forecast against the actual values."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from forecast.data import ID, TARGET, TIME  # noqa: E402


def forecast_figure(train: pd.DataFrame, test: pd.DataFrame, forecast: pd.DataFrame, title: str,
                    max_series: int = 4, context: int = 60):
    """Up to `max_series` panels: the last `context` training points, the holdout, and the forecast with its
    prediction intervals as a fan (the widest level palest) where `forecast` has yhat_lo_L/yhat_hi_L columns."""
    levels = sorted((float(c[len("yhat_lo_"):]) for c in forecast.columns if c.startswith("yhat_lo_")), reverse=True)
    ids = list(dict.fromkeys(test[ID]))[:max_series]
    fig, axes = plt.subplots(len(ids), 1, figsize=(9, 2.6 * len(ids) + 0.6), squeeze=False)
    for ax, uid in zip(axes[:, 0], ids):
        past = train[train[ID] == uid].tail(context)
        actual = test[test[ID] == uid]
        pred = forecast[forecast[ID] == uid]
        ax.plot(past[TIME], past[TARGET], color="0.35", lw=1.2, label="history")
        ax.plot(actual[TIME], actual[TARGET], color="black", lw=1.6, label="actual")
        for k, level in enumerate(levels):
            ax.fill_between(pred[TIME], pred[f"yhat_lo_{level:g}"], pred[f"yhat_hi_{level:g}"], color="tab:red",
                            alpha=0.12 + 0.12 * k, lw=0, label=f"{level:g}% interval")
        ax.plot(pred[TIME], pred["yhat"], color="tab:red", lw=1.6, ls="--", label="forecast")
        ax.set_title(str(uid), fontsize=9, loc="left")
        ax.grid(alpha=0.3)
    axes[0, 0].legend(loc="upper left", fontsize=8, ncol=3 + len(levels))
    n_series = test[ID].nunique()
    more = f" (first {len(ids)} of {n_series} series)" if n_series > len(ids) else ""
    fig.suptitle(f"{title}{more}", fontsize=10)
    fig.tight_layout()
    return fig


def close(fig) -> None:
    plt.close(fig)


def leaderboard_figure(holdouts: dict, history: pd.DataFrame, title: str, max_series: int = 2, context: int = 48,
                       by_step: dict | None = None):
    """Every model's forecast of the last fold against the actual values, for the first `max_series` series; with
    `by_step` (label -> forecast.metrics.error_by_step table), a last panel of every model's sMAPE by step ahead."""
    first = next(iter(holdouts.values()))
    last_fold = first[first["fold"] == first["fold"].max()]
    ids = list(dict.fromkeys(last_fold[ID]))[:max_series]
    rows = len(ids) + (1 if by_step else 0)
    fig, axes = plt.subplots(rows, 1, figsize=(10, 3.2 * rows + 0.6), squeeze=False)
    for ax, uid in zip(axes[:, 0], ids):
        actual = last_fold[last_fold[ID] == uid]
        past = history[(history[ID] == uid) & (history[TIME] < actual[TIME].min())].tail(context)
        ax.plot(past[TIME], past[TARGET], color="0.35", lw=1.2, label="history")
        ax.plot(actual[TIME], actual[TARGET], color="black", lw=2, label="actual")
        for label, frame in holdouts.items():
            part = frame[(frame["fold"] == frame["fold"].max()) & (frame[ID] == uid)]
            ax.plot(part[TIME], part["yhat"], lw=1.3, ls="--", label=label)
        ax.set_title(str(uid), fontsize=9, loc="left")
        ax.grid(alpha=0.3)
    axes[0, 0].legend(loc="upper left", fontsize=8, ncol=4)
    if by_step:
        ax = axes[-1, 0]
        for label, table in by_step.items():
            ax.plot(table["step"], table["smape"], marker=".", lw=1.3, label=label)
        ax.set_xlabel("step ahead")
        ax.set_ylabel("sMAPE (mean over series and folds)")
        ax.set_title("error by step ahead", fontsize=9, loc="left")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, ncol=4)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def gradient_flow_figure(flows: dict, title: str, curve: str | None = None):
    """Gradient norm by lag on a log scale. One panel per model, one line per measured epoch; or, with
    `curve="end"`, one line per model on a single panel (its last measurement) for comparison."""
    if curve == "end":
        fig, ax = plt.subplots(figsize=(8, 4.2))
        for label, frame in flows.items():
            last = frame[frame["epoch"] == frame["epoch"].iloc[-1]]
            ax.semilogy(last["lag"], last["grad_norm"].clip(lower=1e-12), lw=1.8, label=label)
        _gradient_axes(ax, title)
        fig.tight_layout()
        return fig
    fig, axes = plt.subplots(1, len(flows), figsize=(6 * len(flows), 4.2), squeeze=False)
    for ax, (label, frame) in zip(axes[0], flows.items()):
        for epoch, part in frame.groupby("epoch", sort=False):
            ax.semilogy(part["lag"], part["grad_norm"].clip(lower=1e-12), lw=1.4, label=str(epoch))
        _gradient_axes(ax, f"{title}" if len(flows) == 1 else label)
    fig.tight_layout()
    return fig


def _gradient_axes(ax, title: str) -> None:
    ax.set_xlabel("lag k (steps before the end of the window)")
    ax.set_ylabel(r"$\|\partial L / \partial h_{T-k}\|$ (mean over the probe batch)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
