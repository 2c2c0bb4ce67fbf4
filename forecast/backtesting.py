"""The inside of a backtest's run (forecast.api.backtest): each fold fitted and forecast, the final fit on all of
the data, what the model learned and the model itself logged to the run."""

from __future__ import annotations

import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

from forecast import fits, registry
from forecast.covariates import next_rows
from forecast.data import ID, TARGET, TIME, Dataset
from forecast.errors import TrainingDiverged, TrainingInterrupted
from forecast.intervals import DEFAULT_LEVELS
from forecast.metrics import evaluate


def fit(forecaster, df: pd.DataFrame, data: Dataset, h: int, on_epoch=None, engine=None):
    """`forecaster` fitted on `df` (of `data`) for `h` steps: in this process, or where it is a per-series model
    and `engine` is given (forecast.spark.fitter), by the engine."""
    from forecast.models.per_series import PerSeries

    if engine is not None and isinstance(forecaster, PerSeries):
        return engine(forecaster, df, data.freq, h)
    return forecaster.fit(df, data.freq, h, on_epoch=on_epoch, covariates=data.covariates)


def fit_final(run, scored, model: str, hyper: dict, data: Dataset, h: int, register: str | None, on_epoch,
              engine=None):
    """The model to save: fitted again on all of the data, with the scored model's final settings (the nets:
    the epochs that early stopping chose, no validation window). Its per-epoch metrics are logged as final_*.
    If this fit is stopped, the scored model is logged instead and the run says fit_on=holdout."""
    final = registry.create(model, **{**hyper, **scored.final_settings()})
    final.resolve_config(h, data.freq.season)
    final.checkpoints_, final.checkpoint_key_ = getattr(scored, "checkpoints_", None), "final"
    run.log_params({f"final_{k}": v for k, v in scored.final_settings().items()})

    def log_epoch(epoch, metrics):
        run.log_metrics({f"final_{k}": v for k, v in metrics.items()}, step=epoch)
        if on_epoch is not None:
            on_epoch(epoch, metrics)

    start = time.perf_counter()
    try:
        fit(final, data.df, data, h, log_epoch, engine)
    except (TrainingDiverged, TrainingInterrupted) as exc:
        exc.run_id = run.run_id
        run.log_params({"fit_on": "holdout"})
        log_model(run, scored, data, scored.history_, h, register)
        exc.model_logged = True
        raise
    final.inherit(scored)
    calibration = getattr(final, "calibration_", None)
    if calibration is not None:
        logged = {"final_calibration": calibration.source}
        if calibration.growth and calibration.pooled:  # how the pooled steps' spread grows
            logged["final_calibration_growth"] = round(calibration.power, 4)
        run.log_params(logged)
    fits.store(final, data.df, h, data.covariates)
    run.log_metrics({"final_fit_seconds": time.perf_counter() - start})
    return final


def fit_folds(run, forecaster, model: str, hyper: dict, data: Dataset, cuts, horizons: tuple[int, int], refit: bool,
               register: str | None, on_epoch, bands: tuple, full: pd.DataFrame, engine=None):
    """Fit (refit per fold, except the global models, alone or in a combination, with refit=False) and forecast
    every fold (the future covariates from `full`, the data with the test file's); the per-epoch metrics of the
    model that ends up logged go to the run. `horizons`: (the horizon fitted for, the horizon forecast and
    scored); `engine`: where the per-series models are fitted (forecast.spark.fitter; None: here). Returns (the
    last model, [(scores, holdout frame)], fit seconds)."""
    fit_h, h = horizons
    out, seconds = [], 0.0
    for fold, (fit_part, test_part) in enumerate(cuts, start=1):
        if fold == 1 or refit or model not in registry.GLOBAL:
            if fold > 1:
                checkpoints = getattr(forecaster, "checkpoints_", None)
                previous, forecaster = forecaster, registry.create(model, **hyper)
                forecaster.resolve_config(fit_h, data.freq.season)
                forecaster.checkpoints_ = checkpoints
                if not refit and model == "combination":  # its global members trained once, as they are alone
                    forecaster.kept_ = previous
            forecaster.checkpoint_key_ = f"fold{fold}"
            logged = fold == len(cuts) or not refit
            start = time.perf_counter()
            try:
                cached = fits.lookup(forecaster, fit_part, fit_h, data.covariates)
                if cached is not None:  # fitted in this pipeline already (a combination's member)
                    forecaster = cached
                else:
                    fit(forecaster, fit_part, data, fit_h, epoch_logger(run, on_epoch) if logged else on_epoch, engine)
                    fits.store(forecaster, fit_part, fit_h, data.covariates)
            except (TrainingDiverged, TrainingInterrupted) as exc:
                exc.run_id = run.run_id
                if exc.best_epoch:  # the net holds the best weights seen before: keep them as the run's model
                    run.log_params({"fit_on": "holdout"})
                    log_model(run, forecaster, data, fit_part, h, register)
                    exc.model_logged = True
                raise
            seconds += time.perf_counter() - start
        future = None
        if data.covariates.futr:  # the fold's future covariates: the rows after the origin (the test file's)
            future = next_rows(full, fit_part, forecaster.future_steps(h))
        bounded = bands if forecaster.can_bound() else ((), ())  # points only where nothing could calibrate
        forecast = forecaster.predict(h, fit_part, *bounded, future=future, source=data.path)
        scores = evaluate(fit_part, test_part, forecast, data.freq.season, *bounded)
        if len(cuts) > 1:
            run.log_metrics({f"fold_{k}": v for k, v in scores.items()}, step=fold)
        out.append((scores, test_part.merge(forecast, on=[ID, TIME], how="left").assign(fold=fold)))
    return forecaster, out, seconds


def log_fit_details(run, forecaster, label: str, plot: bool = True) -> tuple[dict, pd.DataFrame | None]:
    """What the model learned beyond its forecasts: AR orders, the nets' epochs and gradient flow by lag."""
    from forecast import plots

    details, table = forecaster.fit_details()
    if details:
        run.log_params(details)
    if table is not None:
        run.log_frame(table, "ar_lags.csv" if forecaster.name == "ar" else f"{forecaster.name}_details.csv")
    flow = forecaster.gradient_flow() if hasattr(forecaster, "gradient_flow") else None
    if flow is None:
        return {}, None
    summary, frame = flow
    run.log_metrics(summary)
    run.log_frame(frame, "gradient_flow.csv")
    if not plot:
        return summary, frame
    figure = plots.gradient_flow_figure({label: frame}, f"{label}: gradient by lag")
    run.log_figure(figure, "gradient_flow.png")
    plots.close(figure)
    return summary, frame


def log_model(run, forecaster, data: Dataset, history: pd.DataFrame, h: int,
               register: str | None) -> tuple[str, str | None]:
    """Save the fitted model and log it to the run as an MLflow pyfunc model; returns its models:/ URI and, when
    registered, models:/NAME/VERSION."""
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = forecaster.save(Path(tmp) / "forecaster", extra={"columns": asdict(data.columns)})
        example = history[history[ID] == history[ID].iloc[0]].tail(100).reset_index(drop=True)
        levels = DEFAULT_LEVELS if forecaster.can_bound() else ()
        covariates, future = forecaster.covariates, None
        if covariates.futr:  # the request then carries the future rows after the history, their y left empty
            steps = forecaster.future_steps(h)
            example, future = example.iloc[:-steps].reset_index(drop=True), example.iloc[-steps:]
        output = forecaster.predict(h, example, levels, future=future)
        if future is not None:
            example = pd.concat([example, future.assign(**{TARGET: np.nan})], ignore_index=True)
        return run.log_model(model_dir, example, output, h, register=register, covariates=covariates)


def epoch_logger(run, on_epoch):
    def log_epoch(epoch, metrics):
        run.log_metrics(metrics, step=epoch)
        if on_epoch is not None:
            on_epoch(epoch, metrics)

    return log_epoch
