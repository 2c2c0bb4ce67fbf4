"""The library API that the CLI, pipelines and tests call: train(), predict(), compare()."""

from __future__ import annotations

import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from forecast import registry
from forecast.data import (
    ID,
    TARGET,
    TIME,
    Dataset,
    check_lengths,
    dataset_from_frame,
    default_horizon,
    read_csv,
    split_holdout,
)
from forecast.errors import DataError, ModelError
from forecast.metrics import evaluate

METRICS = ("mae", "rmse", "smape", "mase")


@dataclass
class TrainResult:
    run_id: str
    experiment: str
    model: str
    model_uri: str
    horizon: int
    metrics: dict
    train_seconds: float
    forecast: pd.DataFrame  # the holdout forecast (unique_id, ds, y, yhat)


def data_params(data: Dataset, h: int) -> dict:
    """The data facts every run logs."""
    return {"data_file": data.path, "data_sha256": data.sha256, "n_series": data.n_series,
            "n_points": data.n_points, "freq": data.freq.alias or f"int:{data.freq.step}",
            "season": data.freq.season, "horizon": h, **asdict(data.columns)}


def model_params(model, h: int, season: int) -> dict:
    """The hyperparameters as the model will use them (the default lookback resolved)."""
    params = asdict(model.config)
    if "lookback" in params and params["lookback"] is None:
        from forecast.models.neural import default_lookback

        params["lookback"] = default_lookback(h, season)
        model.config.lookback = params["lookback"]
    return params


def train(path, model: str = "gru", horizon: int | None = None, *, id_col=None, time_col=None, target_col=None,
          freq: str | None = None, season: int | None = None, experiment: str | None = None,
          tracking_uri: str | None = None, register: str | None = None, on_epoch=None, **hyper) -> TrainResult:
    """Fit `model` on the CSV at `path` less its last `horizon` points, score that holdout, log it all to MLflow."""
    from forecast import plots, tracking

    data = dataset_from_frame(read_csv(path), path, id_col, time_col, target_col, freq, season)
    h = int(horizon) if horizon else default_horizon(data.lengths(), data.freq.season)
    if h < 1:
        raise DataError(f"--horizon {h}: must be at least 1")
    check_lengths(data.df, h + 2, f"a holdout of {h} (--horizon) plus 2 training points", data.path)
    forecaster = registry.create(model, **hyper)
    fit_part, test = split_holdout(data.df, h)
    experiment = experiment or Path(path).stem
    with tracking.training_run(experiment, run_name=model, uri=tracking_uri) as run:
        run.log_params({"model": model, **model_params(forecaster, h, data.freq.season), **data_params(data, h)})

        def log_epoch(epoch, train_loss, val_loss):
            run.log_epoch(epoch, train_loss, val_loss)
            if on_epoch is not None:
                on_epoch(epoch, train_loss, val_loss)

        start = time.perf_counter()
        forecaster.fit(fit_part, data.freq, h, on_epoch=log_epoch)
        seconds = time.perf_counter() - start
        forecast = forecaster.predict(h)
        metrics = evaluate(fit_part, test, forecast, data.freq.season)
        run.log_metrics({**metrics, "train_seconds": seconds})
        details, table = forecaster.fit_details()
        if details:
            run.log_params(details)
        if table is not None:
            run.log_frame(table, f"{model}_details.csv" if model != "ar" else "ar_lags.csv")
        holdout = test.merge(forecast, on=[ID, TIME], how="left")
        run.log_frame(holdout, "holdout_forecasts.csv")
        figure = plots.forecast_figure(fit_part, test, forecast, f"{model} on {Path(path).name}, horizon {h}")
        run.log_figure(figure, "forecast.png")
        plots.close(figure)
        with tempfile.TemporaryDirectory() as tmp:
            model_dir = forecaster.save(Path(tmp) / "forecaster", extra={"columns": asdict(data.columns)})
            example = fit_part[fit_part[ID] == fit_part[ID].iloc[0]].tail(100).reset_index(drop=True)
            output = forecaster.predict(h, example)
            model_uri = run.log_model(model_dir, example, output, h, register=register)
    return TrainResult(run_id=run.run_id, experiment=experiment, model=model, model_uri=model_uri, horizon=h,
                       metrics=metrics, train_seconds=seconds, forecast=holdout)


def predict(model_uri: str, path, horizon: int | None = None, *, id_col=None, time_col=None, target_col=None,
            freq: str | None = None, tracking_uri: str | None = None) -> pd.DataFrame:
    """Forecast `horizon` steps past the end of every series in the CSV at `path` with a logged model."""
    from forecast import tracking

    pyfunc = tracking.load_model(model_uri, tracking_uri)
    forecaster = tracking.forecaster_of(pyfunc)
    raw = read_csv(path)
    trained = forecaster.meta_.get("columns", {})
    given = {"id_col": id_col, "time_col": time_col, "target_col": target_col}
    names = {key: given[key] or (trained.get(key) if trained.get(key) in raw.columns else None) for key in given}
    data = dataset_from_frame(raw, path, freq=freq or forecaster.freq_.alias, **names)
    if data.freq.alias != forecaster.freq_.alias:
        raise DataError(f"{path}: the data steps in {data.freq.alias or 'integers'} but the model was trained on "
                        f"{forecaster.freq_.alias or 'integer steps'}; give data at the model's frequency")
    if horizon is not None and horizon < 1:
        raise ModelError(f"--horizon {horizon}: must be at least 1")
    return tracking.predict(pyfunc, data.df[[ID, TIME, TARGET]], horizon)


def compare(experiment: str | None = None, metric: str = "mase", tracking_uri: str | None = None) -> pd.DataFrame:
    """The runs of an experiment (or of all) ranked by a holdout metric."""
    from forecast import tracking

    if metric not in METRICS + ("train_seconds",):
        raise DataError(f"--metric {metric}: choose one of {', '.join(METRICS + ('train_seconds',))}")
    return tracking.runs_table(experiment, metric, tracking_uri)
