"""The library API that the CLI, pipelines and tests call: train(), backtest(), predict(), compare()."""

from __future__ import annotations

import contextlib
import itertools
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import pandas as pd

from forecast import backtesting, registry
from forecast.covariates import read_future
from forecast.data import (
    ID,
    TARGET,
    TIME,
    Covariates,
    Dataset,
    chunks,
    dataset_from_frame,
    default_horizon,
    detect_columns,
    load_series,
    read_table,
    rolling_origins,
)
from forecast.data.chunks import raw_chunks, series_chunks, shift_rows
from forecast.errors import DataError, ModelError
from forecast.intervals import DEFAULT_LEVELS, check_levels, check_quantiles, level_columns, quantile_column
from forecast.metrics import error_by_step

METRICS = ("mae", "rmse", "smape", "mape", "mase")
CHECKPOINT_EVERY = 60.0  # seconds between a net's checkpoints (at most; one more when each training ends)
INTERVAL_METRICS = ("msis", "sql")  # also rankable; coverage_L is not: nearest the level is best, not lowest


@dataclass
class TrainResult:
    run_id: str
    experiment: str
    model: str
    model_uri: str
    horizon: int
    metrics: dict  # mean over folds (the holdout's values for a single fold), with the interval metrics
    train_seconds: float
    forecast: pd.DataFrame  # the holdout forecasts of every fold (fold, unique_id, ds, y, yhat, the bounds)
    fold_metrics: list[dict] = field(default_factory=list)
    metrics_std: dict = field(default_factory=dict)  # standard deviation over folds (empty for one fold)
    gradient_flow: pd.DataFrame | None = None  # the nets: gradient norm by lag per measured epoch
    gradient_summary: dict = field(default_factory=dict)  # grad_ratio_last_first, grad_half_life
    fit_on: str = "all"  # the data the saved model was fitted on: "all" of the file, or "holdout" (all but the tail)
    n_series_scored: int = 0  # series long enough to score at the last origin (shorter ones are fit, not scored)
    n_series: int = 0
    registered: str | None = None  # models:/NAME/VERSION with --register
    covariates: Covariates = field(default_factory=Covariates)  # the covariate roles the model reads
    fitted: object = field(default=None, repr=False)  # the model logged (forecast.models.base.Forecaster)
    fit_history: pd.DataFrame | None = field(default=None, repr=False)  # the data it was fitted on
    error_by_step: pd.DataFrame | None = None  # forecast.metrics.error_by_step of the holdout forecasts
    intervals: bool = True  # False: scored without intervals, no series being long enough to calibrate them on


def data_params(data: Dataset, h: int) -> dict:
    """The data facts every run logs (with the covariates' roles, when there are any)."""
    return {"data_file": data.path, "data_sha256": data.sha256, "n_series": data.n_series,
            "n_points": data.n_points, "freq": data.freq.alias or f"int:{data.freq.step}",
            "season": data.freq.season, "horizon": h, **asdict(data.columns),
            **(data.covariates.params() if data.covariates else {})}


DATA_OPTIONS = ("id_col", "time_col", "target_col", "freq", "season", "fill", "aggregate", "futr", "hist", "static",
                "calendar")


def load(path, *, id_col=None, time_col=None, target_col=None, freq=None, season=None, fill=None,
         aggregate=None, futr=None, hist=None, static=None, calendar=False) -> Dataset:
    """The CSV at `path` as a validated Dataset (forecast.data.load_series; `fill` None refuses gaps), with the
    covariate columns of each role (names, or "a,b")."""
    covariates = Covariates.of(futr, hist, static, calendar)
    return load_series(path, id_col, time_col, target_col, freq, season, fill or "error", aggregate, covariates)


def load_test(path, data: Dataset, columns: dict) -> Dataset:
    """An official test file, read as `data` was: the same columns, frequency, season and covariates."""
    return load(path, **{**columns, **asdict(data.columns), "freq": data.freq.alias, "season": data.freq.season,
                         **_roles(data.covariates)})


def _models_in(forecaster) -> list[str]:
    """The models a forecaster fits: a combination's members, else itself."""
    return forecaster.config.names() if forecaster.name == "combination" else [forecaster.name]


def _has_global(forecaster) -> bool:
    """Whether a backtest without refit trains (part of) the model once: the nets and gbm, alone or combined."""
    return any(name in registry.GLOBAL for name in _models_in(forecaster))


def resolve_horizon(horizon: int | None, data: Dataset, test: Dataset | None) -> int:
    """The horizon given, else the test file's longest series, else the default for the data's season."""
    if horizon:
        return int(horizon)
    return int(test.lengths().max()) if test is not None else default_horizon(data.lengths(), data.freq.season)


def split_options(options: dict) -> tuple[dict, dict]:
    """(the data options, the rest) of a dict of keyword options."""
    data = {k: v for k, v in options.items() if k in DATA_OPTIONS}
    return data, {k: v for k, v in options.items() if k not in DATA_OPTIONS}


def train(path, model: str = "gru", horizon: int | None = None, **options) -> TrainResult:
    """Fit `model` on the CSV at `path` less its last `horizon` points, score that holdout, log it all to MLflow."""
    return backtest(path, model, horizon, folds=1, **options)


def backtest(path, model: str = "gru", horizon: int | None = None, *, folds: int = 1, step: int | None = None,
             refit: bool = True, final_fit: bool = True, test_path=None, experiment: str | None = None,
             tracking_uri: str | None = None, register: str | None = None, run_name: str | None = None,
             parent_run_id: str | None = None, data: Dataset | None = None, test: Dataset | None = None,
             levels=DEFAULT_LEVELS, quantiles=(), on_epoch=None, resume: str | None = None,
             checkpoint_every: float | None = None, tags: dict | None = None, light: bool = False,
             fit_horizon: int | None = None, engine: str = "local", spark_master: str | None = None,
             **hyper) -> TrainResult:
    """Rolling-origin evaluation: for each of the last `folds` origins, `step` apart, fit on everything before it
    and forecast the next `horizon` points; one MLflow run with per-fold and mean metrics and the last fold's model.

    With `test_path` (an official test file) there is one origin: fit on all of `path`, score on the test file.
    Otherwise, after scoring, the model that is saved is fitted once more on all of the data (`final_fit`; the
    nets with the settings of `Forecaster.final_settings`), unless `final_fit` is False: then it is the last
    fold's model, fitted on the data before the last origin. Series too short to hold out at an origin are
    fitted, not scored, there. `levels` (percent) and `quantiles` (probabilities) are the prediction intervals and
    quantiles forecast and scored at every origin.

    `engine` "spark" fits the per-series models (ar, the naive ones) on Spark (`spark_master`, default the active
    session or local[*]), in buckets of series, to the same model; "local" fits them here, in as many processes as
    FORECAST_THREADS (`--threads`) where there are enough series for it to pay (forecast.parallel); the global
    ones train in this process either way.

    The nets save checkpoints to the run (artifacts under checkpoints/) at most every `checkpoint_every` seconds
    (default CHECKPOINT_EVERY); `resume`, the id of a run of the same command that died, continues its training
    from its last checkpoints in this new run, to the same weights and forecasts as a run never stopped.
    """
    from forecast import plots, tracking

    levels, quantiles = check_levels(levels), check_quantiles(quantiles)
    columns, hyper = split_options(hyper)
    if data is not None:  # loaded by the caller (a pipeline): a data option the model also has is the model's own
        settings = {f.name for f in fields(registry.model_class(model).Config)} if model in registry.MODELS else set()
        hyper.update({k: columns.pop(k) for k in list(columns) if k in settings})
    data = data or load(path, **columns)
    if test_path is not None and test is None:
        test = load_test(test_path, data, columns)
    h = resolve_horizon(horizon, data, test)
    if h < 1:
        raise DataError(f"--horizon {h}: must be at least 1")
    if folds < 1:
        raise DataError(f"--folds {folds}: must be at least 1")
    step = int(step or h)
    if fit_horizon is not None and not 1 <= int(fit_horizon) <= h:
        raise DataError(f"--fit-horizon {fit_horizon}: must be between 1 and the horizon ({h})")
    fit_h = int(fit_horizon or h)
    if test is not None:
        if folds != 1:
            raise DataError("a test file gives one forecast origin (the official split); leave out --folds")
        cuts = [(data.df, test.df)]
    else:
        cuts = rolling_origins(data.df, h, folds, step)
        if any(test_part.empty for _, test_part in cuts):
            what = (f"a holdout of {h} (--horizon) plus 2 training points" if folds == 1 else
                    f"{folds} folds of horizon {h}, {step} apart, plus 2 training points")
            longest = int(data.lengths().max())
            raise DataError(f"{data.path}: no series is long enough to score: {what} needs "
                            f"{h + step * (folds - 1) + 2} points, the longest series has {longest}; use a shorter "
                            "--horizon or fewer --folds")
    forecaster = registry.create(model, **hyper)  # bad settings are refused before a run starts
    if data.covariates:  # and covariates the model cannot use
        forecaster.refuse(data.covariates)
    fitter = _engine(engine, spark_master, data, model) if model in registry.PER_SERIES else None  # nets: here
    neural = any(name in registry.NEURAL for name in _models_in(forecaster))  # a net, alone or combined: checkpoints
    experiment = experiment or Path(path).stem
    fit_on = "all" if final_fit or test is not None else "holdout"
    n_scored = int(cuts[-1][1][ID].nunique())
    params = {"model": model, **forecaster.resolve_config(fit_h, data.freq.season), **data_params(data, h),
              "folds": folds, "step": step, "refit": refit if _has_global(forecaster) else True,
              "test_file": str(test_path) if test_path else None, "n_series_scored": n_scored,
              "levels": ",".join(f"{v:g}" for v in levels), "quantiles": ",".join(f"{v:g}" for v in quantiles),
              **({"fit_horizon": fit_h} if fit_horizon else {}),
              **({"engine": engine} if fitter is not None else {}),
              **({"processes": fitter.processes} if getattr(fitter, "processes", None) else {})}
    label = run_name or model
    resume_from = tracking.resumable(resume, params, tracking_uri) if resume else None  # refused before a new run
    with contextlib.ExitStack() as scratch, tracking.training_run(experiment, run_name=label, uri=tracking_uri,
                                                                    parent_run_id=parent_run_id) as run:
        if resume_from is not None:  # downloaded for this run only
            scratch.callback(shutil.rmtree, resume_from.parent, ignore_errors=True)
        run.log_params(params)
        if tags:
            run.set_tags(tags)
        if resume:
            run.set_tags({"forecast.resumed_from": resume})
        if neural:
            from forecast.training import Checkpoints

            every = CHECKPOINT_EVERY if checkpoint_every is None else float(checkpoint_every)
            folder = scratch.enter_context(tempfile.TemporaryDirectory(prefix="forecast-checkpoints-",
                                                                       ignore_cleanup_errors=True))
            forecaster.checkpoints_ = Checkpoints(Path(folder), every, lambda path: run.log_file(path, "checkpoints"),
                                                  resume_from)  # each file logged to the run as it is saved
        run.log_dataset(data.df, data.path, data.sha256)
        if test is not None:
            run.log_dataset(test.df, test.path, test.sha256, context="evaluation")
        full = data.df if test is None else sort_long_frame(pd.concat([data.df, test.df], ignore_index=True))
        forecaster, folds_out, seconds = backtesting.fit_folds(run, forecaster, model, hyper, data, cuts, (fit_h, h),
                                                               refit, register, on_epoch, (levels, quantiles), full,
                                                               fitter)
        fold_metrics = [scores for scores, _ in folds_out]
        names = [k for k in fold_metrics[0] if all(k in m for m in fold_metrics)]  # intervals only if all had them
        bounds = [c for level in levels for c in level_columns(level)] + [quantile_column(q) for q in quantiles]
        bounded = all(c in frame for _, frame in folds_out for c in bounds)
        if not bounded:
            run.log_params({"intervals": "none: no series was long enough to calibrate them on"})
        metrics = {k: float(np.mean([m[k] for m in fold_metrics])) for k in names}
        spread = {f"{k}_std": float(np.std([m[k] for m in fold_metrics])) for k in names} if len(cuts) > 1 else {}
        run.log_metrics({**metrics, **spread, "train_seconds": seconds})
        summary, flow = backtesting.log_fit_details(run, forecaster, label, plot=not light)
        holdout = pd.concat([f for _, f in folds_out], ignore_index=True)
        holdout = holdout[["fold", ID, TIME, TARGET, "yhat", *(c for c in bounds if c in holdout)]]
        run.log_frame(holdout, "holdout_forecasts.csv")
        steps = error_by_step([(fit, frame) for (fit, _), (_, frame) in zip(cuts, folds_out)], data.freq.season,
                              fit_h if fit_horizon else None)
        run.log_frame(steps, "error_by_step.csv")
        for name in ("smape", "mase"):
            run.log_curve(f"{name}_by_step", steps[name])
        fit_part, test_part = cuts[-1]
        if not light:
            figure = plots.forecast_figure(fit_part, test_part, folds_out[-1][1], f"{label} on {Path(path).name}, "
                                                                                 f"horizon {h}")
            run.log_figure(figure, "forecast.png")
            plots.close(figure)
        if fit_on == "all" and test is None:
            forecaster = backtesting.fit_final(run, forecaster, model, hyper, data, fit_h, register, on_epoch,
                                               fitter)
            fit_part = data.df
        run.log_params({"fit_on": fit_on})
        model_uri, registered = ("", None) if light else backtesting.log_model(run, forecaster, data, fit_part, h,
                                                                                 register)
    return TrainResult(run_id=run.run_id, experiment=experiment, model=model, model_uri=model_uri, horizon=h,
                       registered=registered,
                       metrics=metrics, train_seconds=seconds, forecast=holdout, fold_metrics=fold_metrics,
                       metrics_std=spread, gradient_flow=flow, gradient_summary=summary, fit_on=fit_on,
                       n_series_scored=n_scored, n_series=data.n_series, covariates=data.covariates,
                       fitted=forecaster, fit_history=fit_part, error_by_step=steps,
                       intervals=bounded)


def _engine(engine: str, master: str | None, data: Dataset, model: str):
    """The function that fits the per-series models on `engine` (None: in this process); "local" fits them in
    several processes where that pays (forecast.parallel)."""
    if engine in (None, "local"):
        from forecast import parallel

        return None if data.covariates else parallel.fitter(registry.model_class(model), data.n_series)
    if engine != "spark":
        raise DataError(f"--engine {engine}: choose local or spark")
    if data.covariates:
        raise DataError("--engine spark fits models without covariates; leave out --futr, --hist, --static and "
                        "--calendar, or the engine")
    from forecast import spark

    return spark.fitter(master)


def log_fitted(run, result: TrainResult, data: Dataset) -> tuple[str, str | None]:
    """Log the model of `result` (a backtest's) to another run as well (a study's parent run)."""
    from forecast import tracking

    with tracking.activated(run.run_id):
        return backtesting.log_model(run, result.fitted, data, result.fit_history, result.horizon, None)


def _roles(covariates: Covariates) -> dict:
    """The load() options that give a file the same covariates."""
    return {"futr": covariates.futr, "hist": covariates.hist, "static": covariates.static,
            "calendar": covariates.calendar}


def sort_long_frame(df: pd.DataFrame) -> pd.DataFrame:
    return df.sort_values([ID, TIME], kind="stable").reset_index(drop=True)


def diagnose(path, models: tuple[str, ...] = ("rnn", "lstm", "gru"), horizon: int | None = None, *,
             experiment: str | None = None, tracking_uri: str | None = None, output=None, echo=print,
             **options) -> tuple[str, dict[str, TrainResult]]:
    """Train each recurrent model briefly on the same data (child runs of one parent run) and plot their gradient
    flow by lag in one picture, logged to the parent run and written to `output` when given."""
    from forecast import plots, tracking

    unknown = [m for m in models if m not in registry.NEURAL]
    if unknown:
        raise ModelError(f"--models {', '.join(unknown)}: diagnose compares the nets ({', '.join(registry.NEURAL)})")
    columns, options = split_options(options)
    data = load(path, **columns)
    experiment = experiment or Path(path).stem
    results = {}
    with tracking.parent_run(experiment, run_name="diagnose", uri=tracking_uri) as parent:
        parent.log_params({"models": ",".join(models), **{k: v for k, v in options.items() if v is not None}})
        for name in models:
            echo(f"{name} ...")
            results[name] = backtest(path, name, horizon, final_fit=False, experiment=experiment,
                                     tracking_uri=tracking_uri, parent_run_id=parent.run_id, data=data, **options)
            summary = results[name].gradient_summary
            parent.log_metrics({f"{name}_{k}": v for k, v in summary.items()})
            echo(f"  grad_ratio_last_first {summary['grad_ratio_last_first']:.3g}  half-life "
                 f"{summary['grad_half_life']:g} steps  smape {results[name].metrics['smape']:.4g}")
        figure = plots.gradient_flow_figure({n: r.gradient_flow for n, r in results.items()},
                                            f"gradient reaching each lag, {Path(path).name}", curve="end")
        parent.log_figure(figure, "gradient_flow_comparison.png")
        if output:
            figure.savefig(output, dpi=120)
        plots.close(figure)
    return parent.run_id, results


def predict(model_uri: str, path, horizon: int | None = None, **options) -> pd.DataFrame:
    """Forecast `horizon` steps past the end of every series in the CSV or Parquet file at `path` with a logged
    model, as one frame (`predict_chunks` takes the same arguments)."""
    return pd.concat(list(predict_chunks(model_uri, path, horizon, **options)), ignore_index=True)


def predict_chunks(model_uri: str, path, horizon: int | None = None, *, id_col=None, time_col=None,
                   target_col=None, freq: str | None = None, fill: str | None = None, aggregate: str | None = None,
                   tracking_uri: str | None = None, model=None, levels=(), quantiles=(), future_path=None,
                   chunk_rows: int | None = None) -> Iterator[pd.DataFrame]:
    """The forecasts of `horizon` steps past the end of every series in the file at `path` with a logged model
    (`model`: the pyfunc model already loaded from `model_uri`), with the prediction intervals at `levels`
    (percent) and the `quantiles` (probabilities) asked for, a frame per chunk of whole series (a file of more
    than `chunk_rows` rows, default forecast.data.chunks.CHUNK_ROWS, is read and forecast that many rows at a
    time); a model trained with future covariates reads their values over the horizon from the file at
    `future_path` (the history then read whole)."""
    from forecast import serving, tracking

    levels, quantiles = check_levels(levels), check_quantiles(quantiles)
    pyfunc = model if model is not None else tracking.load_model(model_uri, tracking_uri)
    forecaster = tracking.forecaster_of(pyfunc)
    if (levels or quantiles) and not getattr(forecaster, "intervals_", True):
        raise ModelError(f"model '{model_uri}' was saved before prediction intervals existed; train it again to get "
                         "--level or --quantiles")
    if horizon is not None and horizon < 1:
        raise ModelError(f"--horizon {horizon}: must be at least 1")
    covariates = forecaster.covariates
    if future_path is not None and not covariates.futr:
        raise DataError(f"{future_path}: model '{model_uri}' reads no future covariates; leave out --future")
    frames = raw_chunks(path, None if future_path is not None else chunk_rows or chunks.CHUNK_ROWS)  # --future: whole
    first = next(frames)
    trained = forecaster.meta_.get("columns", {})
    given = {"id_col": id_col, "time_col": time_col, "target_col": target_col}
    names = {key: given[key] or (trained.get(key) if trained.get(key) in first.columns else None) for key in given}
    id_name = detect_columns(first, path, **names).id_col
    for start, raw in series_chunks(itertools.chain([first], frames), id_name, path):
        try:
            data = dataset_from_frame(raw, path, freq=freq or forecaster.freq_.alias, fill=fill or "error",
                                      aggregate=aggregate, covariates=covariates, digest=False, **names)
        except DataError as exc:
            raise shift_rows(exc, start) from None
        future = None
        if future_path is not None:
            future = read_future(read_table(future_path), data.columns, covariates, future_path)
        if data.freq.alias != forecaster.freq_.alias:
            raise DataError(f"{path}: the data steps in {data.freq.alias or 'integers'} but the model was trained on "
                            f"{forecaster.freq_.alias or 'integer steps'}; give data at the model's frequency")
        yield serving.forecast(forecaster, data.df, horizon, levels, quantiles, future=future,
                               source=future_path or "--future")  # checked once, here


def compare(experiment: str | None = None, metric: str = "mase", tracking_uri: str | None = None,
            parent: str | None = None) -> pd.DataFrame:
    """The runs of an experiment (or of all, or the children of one pipeline run) ranked by a holdout metric."""
    from forecast import tracking

    rankable = METRICS + INTERVAL_METRICS + ("train_seconds",)
    if metric not in rankable:
        raise DataError(f"--metric {metric}: choose one of {', '.join(rankable)}")
    return tracking.runs_table(experiment, metric, tracking_uri, parent=parent)
