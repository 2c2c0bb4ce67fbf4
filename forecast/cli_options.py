"""The options the `forecast` commands share: the data's columns, the store, the threads, and every setting of the
models that train (forecast.cli holds the commands)."""

from __future__ import annotations

import sys

import click

from forecast.models.partner import PARTNERS
from forecast.registry import MODELS

DATA_OPTIONS = [
    click.option("--id-col", help="Column naming the series in a long-format file (default: unique_id)."),
    click.option("--time-col", help="Time column (default: detected: ds, or the one column of dates)."),
    click.option("--target", "target_col", help="Column to forecast (default: y, or the one numeric column)."),
    click.option("--freq", help="Pandas frequency alias (MS, QS, W, D, h, 30min); default: inferred."),
    click.option("--fill", type=click.Choice(["error", "interpolate", "ffill", "zero"]),
                 help="Gaps and missing values: refuse them (default) or fill them."),
    click.option("--aggregate", type=click.Choice(["mean", "sum", "last"]),
                 help="Duplicate time stamps in a series: refuse them (default) or aggregate them."),
]


def data_options(f):
    for option in reversed(DATA_OPTIONS):
        f = option(f)
    return f


def tracking_option(f):
    return click.option("--tracking-uri", envvar="MLFLOW_TRACKING_URI",
                        help="MLflow store [default: sqlite:///mlruns/mlflow.db, or MLFLOW_TRACKING_URI].")(f)


def set_threads(ctx, param, value):
    """Threads for torch and the BLAS libraries, set before torch is imported (it reads OMP_NUM_THREADS then), and
    the processes that fit the per-series models (forecast.parallel).
    Default 1: the nets here are small, so a second thread gains little on an idle machine and costs much on a
    busy one (README, Scale: training 5.5 s vs 5.7 s idle, 8.6 s vs 5.4 s with the other core busy)."""
    import os

    threads = value if value is not None else int(os.environ.get("FORECAST_THREADS", 1))
    if threads < 1:
        raise click.BadParameter(f"{threads}: give at least 1", param=param)
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[name] = str(threads)
    from forecast import parallel

    parallel.use_cores(threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
    return threads


threads_option = click.option("--threads", type=int, callback=set_threads, expose_value=False, is_eager=True,
                              help="CPU threads for torch and BLAS, and processes for the per-series models "
                                   "[default: 1, or FORECAST_THREADS].")


def model_options(f):
    """The options of every command that trains: the model, the data, the hyperparameters, the store."""
    options = [
        click.argument("csv", type=click.Path()),
        click.option("--model", "-m", default="gru", show_default=True, help=f"One of: {', '.join(MODELS)}."),
        click.option("--horizon", "-H", type=int, help="Steps held out and forecast [default: one season]."),
        *DATA_OPTIONS,
        click.option("--season", type=int, help="Season length in steps [default: from the frequency]."),
        click.option("--futr", help="Covariate columns known in advance (temperature forecast, working day), "
                                    "comma-separated; predict reads their future values from --future."),
        click.option("--hist", help="Covariate columns known only up to the forecast origin, comma-separated."),
        click.option("--static", help="Columns constant per series (store type, region), comma-separated."),
        click.option("--calendar", is_flag=True, default=None,
                     help="Add calendar features of the time stamps (hour, weekday, day of year, month, as sine and "
                          "cosine)."),
        click.option("--resume", help="Continue the training of this run (it died: killed, out of memory, a lost "
                                      "machine) from its last checkpoint, in a new run; give the same command."),
        click.option("--checkpoint-every", type=float,
                     help="Seconds between the nets' checkpoints, saved to the run [default: 60]."),
        click.option("--lookback", type=int, help="Input window of the nets [default: 2 x horizon]."),
        click.option("--hidden-size", type=int, help="Hidden units of the nets [default: 64]."),
        click.option("--layers", type=int, help="Stacked layers of the nets [default: 2]."),
        click.option("--epochs", type=int, help="Epochs of the learning-rate schedule [default: 20; early stopping "
                                                "on the validation window]."),
        click.option("--batch-size", type=int, help="Windows per step [default: 128]."),
        click.option("--steps-per-epoch", type=int, help="Batches per epoch at most [default: 50]."),
        click.option("--lr", type=float, help="Adam learning rate [default: 0.001]."),
        click.option("--dropout", type=float, help="Dropout between layers [default: 0]."),
        click.option("--seed", type=int, help="Random seed [default: 1]."),
        click.option("--clip", type=float, help="Max gradient norm; 0 turns clipping off [default: 1]."),
        click.option("--tbptt", type=int, help="Truncate backpropagation through time to the last K steps."),
        click.option("--patience", type=int, help="Epochs without improvement before stopping [default: 10]."),
        click.option("--heads", type=int, help="Attention heads of the transformer [default: 4]."),
        click.option("--head", type=click.Choice(["local", "linear"]), default=None,
                     help="Nets with --futr/--calendar: how the future covariates reach each step's forecast, a small "
                          "MLP per step beside the linear map (local) or the linear map alone [default: local]."),
        click.option("--device", help="cpu, cuda or cuda:N [default: cuda when present, else cpu]."),
        click.option("--ensemble", type=int, help="Train N nets of different seeds and lookbacks; forecast their "
                                                  "median [default: 1]."),
        click.option("--loss", type=click.Choice(["mae", "smape", "mase", "mse"]), default=None,
                     help="Training loss [default: mae, in logs; mase: mae weighted per series as MASE weighs it; "
                          "gbm: mae or mse]."),
        click.option("--schedule", type=click.Choice(["cosine", "constant"]), default=None,
                     help="Learning-rate schedule [default: cosine]."),
        click.option("--deseasonalize/--no-deseasonalize", default=None,
                     help="Divide seasonal series by their seasonal indices first [default: on]."),
        click.option("--log/--no-log", default=None,
                     help="Learn positive series in logs [default: on]."),
        click.option("--validate/--no-validate", default=None,
                     help="Hold out each series' last horizon for early stopping [default: on]."),
        click.option("--recent", type=float, help="Train on windows from each series' last N horizons only."),
        click.option("--combine", type=click.Choice(PARTNERS), default=None,
                     help="Nets: average with a statistical forecast (AR's, the Theta method's, a damped trend's, the "
                          "seasonal naive's, or a mean of two), the partner (auto) and weight chosen on the "
                          "validation windows [default: auto]."),
        click.option("--diagnostics/--no-diagnostics", default=None,
                     help="Measure the gradient flow by lag during training [default: on]."),
        click.option("--lags", type=int, help="AR order τ [default: chosen per series by AIC]."),
        click.option("--max-lags", type=int, help="Largest τ the AR order search tries."),
        click.option("--diff", type=click.IntRange(0, 1), help="AR: differences before fitting [default: per series, "
                                                               "by a KPSS test]."),
        click.option("--strategy", type=click.Choice(["step", "per-step"]), default=None,
                     help="gbm: one model with the step ahead as a feature, or one per step [default: step]."),
        click.option("--max-iter", type=int, help="gbm: boosting rounds at most [default: 300; early stopping]."),
        click.option("--learning-rate", type=float, help="gbm: shrinkage of each tree [default: 0.1]."),
        click.option("--max-leaf-nodes", type=int, help="gbm: leaves per tree [default: 31]."),
        click.option("--min-samples-leaf", type=int, help="gbm: rows per leaf at least [default: 50]."),
        click.option("--l2-regularization", type=float, help="gbm: L2 penalty on the leaves [default: 0]."),
        click.option("--max-rows", type=int, help="gbm: training rows (window x step) at most [default: 400000]."),
        click.option("--members", help="combination: the models combined, comma-separated [default: "
                                       "gru,transformer,ar]."),
        click.option("--how", type=click.Choice(["median", "mean", "inverse-error"]), default=None,
                     help="combination: how the members' forecasts are combined [default: median]."),
        click.option("--params", help="combination: the members' settings as JSON, a mapping from member to "
                                      "settings ('{\"gru\": {\"epochs\": 20}}') or a list of one mapping per member "
                                      "(a model may then be a member more than once)."),
        click.option("--level", "levels", type=float, multiple=True,
                     help="Prediction interval in percent, repeatable [default: 80 and 95]."),
        click.option("--quantiles", help="Also forecast these quantiles, e.g. 0.1,0.5,0.9 (columns yhat_q10, ...)."),
        click.option("--experiment", help="MLflow experiment [default: the CSV's name without extension]."),
        click.option("--register", help="Also register the model under this name (models:/NAME/VERSION)."),
        tracking_option,
        threads_option,
        click.option("--quiet", "-q", is_flag=True, help="No progress bar."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def interval_options(options: dict) -> dict:
    """--level given no times means the default levels; --quantiles as a comma-separated string."""
    if not options.get("levels"):
        options.pop("levels", None)
    return options


def engine_options(f):
    """--engine and --spark-master of the commands that fit."""
    f = click.option("--spark-master", help="Spark master for --engine spark [default: the active session, else "
                                            "local[*]].")(f)
    return click.option("--engine", type=click.Choice(["local", "spark"]), default="local", show_default=True,
                        help="Where the per-series models (ar, naive, seasonal-naive) are fitted: this process, or "
                             "Spark, in buckets of series (pip install -e \".[spark]\"); the nets train here.")(f)
