"""What the `forecast` commands print: per-epoch progress on stderr, metrics, and the results of training and
tuning with the commands that use them (forecast.cli holds the commands)."""

from __future__ import annotations

import shlex
import sys
from contextlib import nullcontext

import click

from forecast.registry import NEURAL


def epoch_progress(quiet: bool):
    """A progress bar (epoch, train and validation loss) on stderr, or nothing when quiet or not a terminal."""
    if quiet or not sys.stderr.isatty():
        return nullcontext(None)
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                    TimeElapsedColumn(), transient=True, console=_stderr_console())


def _stderr_console():
    from rich.console import Console

    return Console(stderr=True)


def format_metrics(metrics: dict) -> str:
    names = [n for n in ("mae", "rmse", "smape", "mape", "mase", "coverage_80", "coverage_95", "msis") if n in metrics]
    head = "  ".join(f"{n:>10}" for n in names)
    row = "  ".join(f"{metrics[n]:>10.4g}" for n in names)
    return f"{head}\n{row}"


def fit_with_progress(fit, model: str, hyper: dict, quiet: bool):
    """Call `fit(on_epoch=...)` under a progress bar for the nets (none when quiet or not a terminal)."""
    epochs = (hyper.get("epochs") or 20) * (hyper.get("ensemble") or 1)
    with epoch_progress(quiet or model not in NEURAL) as bar:
        if bar is None:
            return fit(on_epoch=None)
        task = bar.add_task(f"training {model}", total=epochs)

        def on_epoch(epoch, metrics):
            if epoch == 1:
                bar.reset(task, total=epochs)
            val = f"  val {metrics['val_loss']:.4f}" if "val_loss" in metrics else ""
            bar.update(task, completed=epoch, description=f"{model} epoch {epoch}  train {metrics['train_loss']:.4f}"
                                                          f"{val}")

        return fit(on_epoch=on_epoch)


def predict_line(run_id: str, csv, horizon: int, future: bool) -> str:
    """The `forecast predict` command for a run's model, runnable as printed (the path shell-quoted)."""
    needs = " --future FUTURE.csv" if future else ""
    return f"predict: forecast predict runs:/{run_id}/model {shlex.quote(str(csv))} --horizon {horizon}{needs}"


def echo_result(result, csv) -> None:
    folds = f", {len(result.fold_metrics)} folds (mean)" if len(result.fold_metrics) > 1 else ""
    click.echo(f"{result.model} on {csv}: horizon {result.horizon}{folds}, trained in {result.train_seconds:.1f} s "
               f"(experiment '{result.experiment}', run {result.run_id})")
    click.echo(format_metrics(result.metrics))
    if result.n_series_scored < result.n_series:
        click.echo(f"scored on {result.n_series_scored} of {result.n_series} series; the others are too short to hold "
                   f"out {result.horizon} points and were only fitted")
    if not result.intervals:
        click.echo(f"no prediction intervals scored: no series had the {result.horizon + 2} points before the "
                   "holdout that calibrating them needs; the point forecasts were scored")
    fitted = "all of the data" if result.fit_on == "all" else "the data before the holdout (the model scored)"
    click.echo(f"model: runs:/{result.run_id}/model  ({result.model_uri}), fitted on {fitted}")
    if result.registered:
        click.echo(f"registered: {result.registered}")
    click.echo(predict_line(result.run_id, csv, result.horizon, bool(result.covariates.futr)))


def echo_tune(result, csv, metric: str) -> None:
    """What `forecast tune` found: the study, the best settings, the holdout, and the commands that use them."""
    click.echo(f"study (parent run {result.run_id}): {len(result.trials)} trials, best validation {metric} "
               f"{result.best_value:.4g}, {result.seconds:.0f} s")
    click.echo("best: " + ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                    for k, v in result.best_params.items()))
    final = result.final
    if len(result.final_params or ()) > 1:
        click.echo(f"final model: the mean of the best {len(result.final_params)} configurations' forecasts "
                   "(a combination), each trained once more")
    click.echo("holdout: " + "  ".join(f"{k} {final.metrics[k]:.4g}" for k in ("smape", "mase", "mae")))
    click.echo(f"model: runs:/{result.run_id}/model  ({final.model_uri}), the parent run's; the same as "
               f"runs:/{final.run_id}/model")
    click.echo(predict_line(result.run_id, csv, final.horizon, bool(final.covariates.futr)))
    click.echo(f"reproduce: {result.command}")
    click.echo(f"trials: forecast compare --parent {result.run_id} --metric {metric}")
