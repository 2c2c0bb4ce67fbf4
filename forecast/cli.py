"""The `forecast` command: thin click commands over forecast.api."""

from __future__ import annotations

import sys

import click

from forecast import __version__
from forecast.cli_errors import Group
from forecast.cli_options import (
    data_options,
    engine_options,
    interval_options,
    model_options,
    threads_option,
    tracking_option,
)
from forecast.cli_output import echo_result, echo_tune, fit_with_progress


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="forecast")
def main():
    """Train time-series forecasters on a CSV, track every run in MLflow, batch-predict from saved models."""


@main.command()
@model_options
@engine_options
@click.option("--no-refit", is_flag=True, help="Save the model that was scored (fitted without the holdout) instead "
                                               "of fitting it again on all the data.")
@click.option("--test", "test_path", type=click.Path(),
              help="An official test file (the same columns, the points after CSV's end): fit on all of CSV and "
                   "score on it instead of CSV's held-out tail.")
def train(csv, model, horizon, quiet, no_refit, test_path, **options):
    """Fit a model on CSV, score it on the held-out tail, and log the run and model to MLflow.

    \b
    Example:
        forecast train data/air_passengers.csv --model gru
        forecast train data/m3_monthly_train.csv --model ar --horizon 18
        forecast train history.parquet --model ar --horizon 18 --engine spark --spark-master "local[*]"
    """
    from forecast import api

    options = interval_options({k: v for k, v in options.items() if v is not None})
    result = fit_with_progress(lambda on_epoch: api.train(csv, model, horizon, final_fit=not no_refit,
                                                          test_path=test_path, on_epoch=on_epoch, **options),
                               model, options, quiet)
    echo_result(result, csv)


@main.command()
@model_options
@engine_options
@click.option("--folds", default=3, show_default=True, type=int, help="Forecast origins.")
@click.option("--step", type=int, help="Steps between origins [default: one horizon].")
@click.option("--no-refit", is_flag=True, help="Nets and gbm: train once before the first origin, forecast every "
                                               "fold; save that model (not one fitted again on all the data).")
@click.option("--fit-horizon", type=int, help="Train for this many steps and forecast the rest of --horizon "
                                           "recursively, to see the recursion's error growth [default: --horizon].")
def backtest(csv, model, horizon, quiet, folds, step, no_refit, fit_horizon, **options):
    """Rolling-origin evaluation: fit before each of the last FOLDS origins and forecast the next HORIZON points.

    Logs per-fold metrics (the fold as the step) and their mean and standard deviation.

    \b
    Example:
        forecast backtest data/air_passengers.csv --model gru --folds 4
    """
    from forecast import api

    options = interval_options({k: v for k, v in options.items() if v is not None})
    result = fit_with_progress(
        lambda on_epoch: api.backtest(csv, model, horizon, folds=folds, step=step, refit=not no_refit,
                                      final_fit=not no_refit, on_epoch=on_epoch, fit_horizon=fit_horizon, **options),
        model, options, quiet)
    names = ("mae", "rmse", "smape", "mase")
    for fold, scores in enumerate(result.fold_metrics, start=1):
        click.echo(f"fold {fold}: " + "  ".join(f"{n} {scores[n]:.4g}" for n in names))
    echo_result(result, csv)


@main.command()
@model_options
@click.option("--trials", default=30, show_default=True, type=int, help="Trials at most.")
@click.option("--timeout", help="Stop starting trials after this long: seconds, or e.g. 20m, 1h [default: none].")
@click.option("--metric", default="smape", show_default=True, type=click.Choice(["smape", "mase", "mae", "rmse",
                                                                                   "mape"]),
              help="Validation metric to minimise.")
@click.option("--folds", type=int,
              help="Validation origins, one horizon apart, before the holdout [default: 4, or as many as the "
                   "longest series allows].")
@click.option("--test", "test_path", type=click.Path(), help="An official test file: the holdout the best model is "
                                                             "scored on (the search never reads it).")
@click.option("--top", type=int, help="The final model is the mean of the best TOP configurations, each trained "
                                     "once more; 1: the best alone [default: 3].")
@click.option("--study-seed", default=1, show_default=True, type=int, help="The sampler's seed.")
def tune(csv, model, horizon, quiet, trials, timeout, metric, folds, top, test_path, study_seed, **options):
    """Search MODEL's settings with Optuna on validation folds before the holdout; train the best.

    Every trial is a child run of one parent run (`forecast compare --parent RUN`); Ctrl-C keeps the finished
    trials, and --resume PARENT_RUN continues the study. Settings given (e.g. --epochs 20) are fixed, not searched.

    \b
    Example:
        forecast tune data/air_passengers.csv --model gbm --trials 20 --timeout 5m
    """
    from forecast import tuning

    options = interval_options({k: v for k, v in options.items() if v is not None})
    options.pop("checkpoint_every", None)
    resume = options.pop("resume", None)
    result = tuning.tune(csv, model, horizon, trials=trials, timeout=timeout, metric=metric, folds=folds,
                         top=top, resume=resume, test_path=test_path, seed=study_seed, echo=click.echo, **options)
    echo_tune(result, csv, metric)


@main.command()
@click.argument("csv", type=click.Path(), required=False)
@click.option("--models", help="Nets to compare, comma-separated [default: rnn,lstm,gru; with --memory also the "
                               "transformer].")
@click.option("--memory", is_flag=True, help="Instead: how many steps back each cell can remember, on a synthetic "
                                             "copy-after-k-steps task (no CSV); about 10 minutes.")
@click.option("--quick", is_flag=True, help="With --memory: a one-minute version (delays 2, 4, 8; smaller nets).")
@click.option("--horizon", "-H", type=int, help="Steps held out and forecast [default: one season].")
@data_options
@click.option("--lookback", type=int, help="Window the gradient is traced back through [default: 2 x horizon].")
@click.option("--hidden-size", type=int, help="Hidden units [default: 64].")
@click.option("--epochs", default=20, show_default=True, type=int, help="Maximum epochs (a brief training).")
@click.option("--tbptt", type=int, help="Truncate backpropagation through time to the last K steps.")
@click.option("--seed", type=int, help="Random seed [default: 1].")
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Also write the comparison plot (PNG) here.")
@click.option("--experiment", help="MLflow experiment [default: the CSV's name without extension].")
@threads_option
@tracking_option
def diagnose(csv, models, horizon, output, memory, quick, **options):
    """Train the recurrent nets briefly and plot how much gradient reaches each step of the past.

    One picture of ‖∂L/∂h_{T−k}‖ by lag k for every model, logged to a parent run (its children are the models'
    runs) and, with --output, written as PNG.

    \b
    Example:
        forecast diagnose data/air_passengers.csv --models rnn,lstm,gru --lookback 48 -o gradient_flow.png
        forecast diagnose --memory -o memory_horizon.png
    """
    from forecast import api

    options = {k: v for k, v in options.items() if v is not None}
    if memory:
        return diagnose_memory(csv, models, quick, output, options)
    if csv is None:
        raise click.UsageError("give a CSV to diagnose (or --memory for the synthetic memory task)")
    names = tuple(m.strip() for m in (models or "rnn,lstm,gru").split(",") if m.strip())
    run_id, results = api.diagnose(csv, names, horizon, output=output, echo=lambda line: click.echo(line, err=True),
                                   **options)
    click.echo(f"{'model':<12}{'grad_ratio_last_first':>24}{'half_life':>12}{'smape':>10}")
    for name, result in results.items():
        summary = result.gradient_summary
        click.echo(f"{name:<12}{summary['grad_ratio_last_first']:>24.3g}{summary['grad_half_life']:>12g}"
                   f"{result.metrics['smape']:>10.4g}")
    click.echo(f"parent run {run_id}" + (f"; plot written to {output}" if output else ""))


def diagnose_memory(csv, models, quick, output, options) -> None:
    from forecast import memory

    if csv is not None:
        raise click.UsageError("--memory trains on a synthetic task: leave out the CSV")
    names = tuple(m.strip() for m in (models or ",".join(memory.CELLS)).split(",") if m.strip())
    run_id, table = memory.memory_horizon(names, quick, options.get("experiment") or "memory_horizon",
                                          options.get("tracking_uri"), output, options.get("seed") or 1,
                                          echo=lambda line: click.echo(line, err=True))
    wide = table.pivot(index="cell", columns="delay", values="relative_error").loc[list(names)]
    click.echo("relative error (1: nothing learned, 0: perfect) by delay k:")
    click.echo(wide.to_string(float_format=lambda v: f"{v:.3f}"))
    click.echo("largest delay solved (error < 0.1): " + ", ".join(f"{c} {k}" for c, k in memory.solved(table).items()))
    click.echo(f"parent run {run_id}" + (f"; plot written to {output}" if output else ""))


@main.command(name="run")
@click.argument("pipeline_file", type=click.Path(dir_okay=False))
@click.option("--models", help="Run only these (labels or model names, comma-separated).")
@click.option("--dry-run", is_flag=True, help="Check the file and print what would run.")
@threads_option
@tracking_option
def run_pipeline(pipeline_file, models, dry_run, tracking_uri):
    """Run a YAML pipeline: every model as a child run of one parent run, then a leaderboard.

    \b
    Example:
        forecast run pipelines/air_passengers.yaml
        forecast run pipelines/m3_monthly.yaml --models gru,ar --dry-run
    """
    from forecast import pipeline, report

    if dry_run:
        spec = pipeline.load_pipeline(pipeline_file)
        click.echo("\n".join(pipeline.plan(spec, pipeline.select(spec, models))))
        return
    result = pipeline.run_pipeline(pipeline_file, models, tracking_uri, echo=lambda line: click.echo(line, err=True))
    shown = result.leaderboard.drop(columns=["run_id"], errors="ignore")
    click.echo(f"leaderboard of '{result.experiment}' (parent run {result.run_id}):")
    click.echo(report.render(shown, "table"), nl=False)
    if result.failures:
        summary = "; ".join(f"{label}: {error}" for label, error in result.failures.items())
        raise click.ClickException(f"{len(result.failures)} of {len(result.leaderboard)} models failed: {summary}")


@main.command()
@click.argument("model_uri")
@click.argument("csv", type=click.Path())
@click.option("--horizon", "-H", type=int, help="Steps to forecast [default: the model's horizon].")
@data_options
@click.option("--level", "levels", type=float, multiple=True,
              help="Add the prediction interval at this level in percent (yhat_lo_L, yhat_hi_L); repeatable.")
@click.option("--quantiles", help="Add these quantiles, e.g. 0.1,0.5,0.9 (columns yhat_q10, yhat_q50, yhat_q90).")
@click.option("--future", "future_path", type=click.Path(),
              help="CSV or Parquet of the future covariates (id, time and the --futr columns of the model) for the "
                   "HORIZON steps after each series.")
@click.option("--output", "-o", type=click.Path(dir_okay=False),
              help="CSV or .parquet file to write [default: CSV to standard output].")
@click.option("--engine", type=click.Choice(["local", "spark"]), default="local", show_default=True,
              help="Where to forecast: this process, or Spark (pip install -e \".[spark]\").")
@click.option("--spark-master", help="Spark master for --engine spark [default: the active session, else local[*]].")
@threads_option
@tracking_option
def predict(model_uri, csv, horizon, levels, quantiles, future_path, output, engine, spark_master, tracking_uri,
            **data_options):
    """Forecast HORIZON steps past the end of every series in CSV (or Parquet) with a saved model.

    MODEL_URI is runs:/<run_id>/model, models:/<model_id>, models:/<name>/<version> or a local model folder.
    Writes unique_id,ds,yhat, and with --level or --quantiles the interval bounds or quantiles. A big file (over
    2 million rows) is read and forecast 2 million rows at a time: keep each series' rows together in it.

    \b
    Example:
        forecast predict runs:/3f2a.../model data/air_passengers.csv --horizon 24 -o forecasts.csv
        forecast predict models:/m3/1 history.parquet --engine spark -o forecasts.parquet
    """
    from forecast import api

    if engine == "spark":
        from forecast import spark

        given = [f"--{k.replace('_col', '-col').replace('target-col', 'target')}" for k, v in data_options.items() if v]
        if given:
            raise click.UsageError(f"{', '.join(given)}: not with --engine spark, which reads the columns the model "
                                   "was trained on (or unique_id, ds, y)")

        if future_path:
            raise click.UsageError("--future: not with --engine spark; put the future rows (y empty) after each "
                                   "series' history in the input instead")
        chunks = [spark.predict_file(model_uri, csv, horizon, levels, quantiles or (), spark_master, tracking_uri)]
    else:
        chunks = api.predict_chunks(model_uri, csv, horizon, tracking_uri=tracking_uri, levels=levels,
                                    quantiles=quantiles or (), future_path=future_path, **data_options)
    if output:
        from forecast.data import TableWriter

        with TableWriter(output) as writer:  # chunk by chunk: memory stays flat over millions of series
            for frame in chunks:
                writer.write(frame)
        click.echo(f"wrote {writer.rows} forecasts for {writer.series} series to {output}", err=True)
    else:
        for i, frame in enumerate(chunks):
            click.echo(frame.to_csv(index=False, header=i == 0), nl=False)


@main.command()
@click.option("--experiment", "-e", help="Experiment to rank [default: all].")
@click.option("--parent", help="Rank the model runs of one pipeline run (its run id).")
@click.option("--metric", default="mase", show_default=True,
              type=click.Choice(["mase", "smape", "mae", "rmse", "msis", "sql", "train_seconds"]))
@click.option("--format", "fmt", default="table", show_default=True, type=click.Choice(["table", "csv", "json",
                                                                                      "markdown"]))
@tracking_option
def compare(experiment, parent, metric, fmt, tracking_uri):
    """Rank runs by a holdout metric (mean ± std over folds where they have folds).

    \b
    Example:
        forecast compare --experiment air_passengers --metric smape
        forecast compare --parent 3f2a... --format markdown
    """
    from forecast import api, report

    table = api.compare(experiment, metric, tracking_uri, parent=parent)
    if table.empty:
        click.echo("no runs yet: train one with `forecast train data.csv`")
        return
    if fmt == "table":
        table = table.drop(columns=["parent_run_id"])
    click.echo(report.render(table, fmt), nl=False)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind; the UI has no login.")
@click.option("--port", default=5000, show_default=True, type=int)
@click.option("--open", "open_browser", is_flag=True, help="Open the experiments in the default web browser.")
@tracking_option
def ui(host, port, open_browser, tracking_uri):
    """Open the MLflow UI on the project's store (http://127.0.0.1:5000).

    Prints each experiment's runs page, in MLflow's model-training view. SIGTERM, SIGINT (Ctrl-C) and SIGHUP stop
    the server and all of its workers.

    \b
    Example:
        forecast ui --port 5001 --open
    """
    from forecast import ui as server

    warning = ui_warning(host)
    if warning:
        click.echo(warning, err=True)
    base = server.base_url(host, port)
    from forecast import tracking

    for run_id in tracking.reap_all(tracking_uri, "ui"):  # the UI would show them RUNNING for ever
        click.echo(f"run {run_id}: its process died; ended FAILED", err=True)
    pages = server.ui_pages(tracking_uri, base)
    click.echo(f"MLflow UI on {base} (Ctrl-C to stop)", err=True)
    for name, url in pages.items():
        click.echo(f"  {name}: {url}", err=True)
    first = next(iter(pages.values()), f"{base}/#/experiments?{server.UI_VIEW}")
    sys.exit(server.serve_ui(tracking_uri, host, port, open_url=first if open_browser else None))


def ui_warning(host: str) -> str | None:
    """The warning for binding the UI anywhere but the loopback interface."""
    if host in ("127.0.0.1", "localhost", "::1"):
        return None
    return (f"warning: binding {host}: the MLflow UI has no authentication; anyone who can reach this address "
            "can read and change your runs")
