"""The Spark engine: batch prediction with a logged model over a Spark DataFrame of many series, and the fits of
the per-series models (AR, the naive ones) spread over Spark's workers.

Whole series are forecast together: the rows are partitioned by a hash of the series id and each partition goes to
the model in one call (`mapInPandas` over its Arrow batches, joined), thousands of series at a time, one task per
partition: tasks of equal size keep every core busy to the end, where grouping by a bucket column
(`groupBy().applyInPandas`) sorts each partition and lets Spark pack unequal numbers of buckets into its tasks. The
model is loaded once per Python worker process (a module-level cache) from a copy shipped to every executor with
`SparkContext.addFile`. A per-series
model is fitted the same way, a bucket of series per call, and the buckets' fits merge into the model of all
the series (forecast.models.per_series), equal to one fitted in one process.

    from forecast import spark
    forecasts = spark.predict(spark.read.parquet("history.parquet"), "models:/airline/1", horizon=18, level=[80, 95])
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

from forecast.data import ID, TIME
from forecast.data.chunks import CHUNK_ROWS
from forecast.errors import ForecastError
from forecast.intervals import check_levels, check_quantiles, level_columns, quantile_column

_MODELS: dict[str, object] = {}  # in each Python worker: shipped model folder -> loaded pyfunc model
_DOWNLOADS: list[str] = []  # on the driver: the models downloaded for `predict`, removed at exit (a lazy DataFrame
# may be evaluated again at any time, and its executors fetch the model from this folder)


def require_pyspark():
    try:
        import pyspark  # noqa: F401
    except ImportError:
        raise ForecastError("--engine spark needs PySpark: pip install -e \".[spark]\" (and Java 17)") from None


PANDAS_3 = "PySpark does not yet fully support pandas >= 3.0.0"  # PySpark 4.x's warning; the path used here works


def _quiet() -> None:
    """PySpark 4 warns on every Arrow conversion that pandas 3 is not fully supported; what this module uses of
    it is tested (equal forecasts), so the warning is silenced here and, through the environment, in the workers."""
    import warnings

    warnings.filterwarnings("ignore", message=PANDAS_3, category=FutureWarning)
    rule = f"ignore:{PANDAS_3}:FutureWarning"
    if rule not in os.environ.get("PYTHONWARNINGS", ""):
        os.environ["PYTHONWARNINGS"] = ",".join(filter(None, [os.environ.get("PYTHONWARNINGS"), rule]))


def session(master: str | None = None):
    """The active SparkSession, or a new one on `master` (default local[*]) in UTC, with Arrow on."""
    require_pyspark()
    _quiet()
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None and master is None:
        return active
    return (SparkSession.builder.master(master or "local[*]").appName("forecast")
            .config("spark.sql.session.timeZone", "UTC")
            .config("spark.sql.execution.arrow.pyspark.enabled", "true")
            .config("spark.ui.showConsoleProgress", "false")
            .getOrCreate())


def predict(history, model_uri: str, horizon: int | None = None, level=(), quantiles=(), buckets: int | None = None,
            tracking_uri: str | None = None):
    """Forecasts of every series in the Spark DataFrame `history` (unique_id, ds, y, or the columns the model was
    trained on) as a Spark DataFrame (unique_id, ds, yhat and the bounds asked for), equal to `forecast predict`'s.
    `buckets`: partitions of whole series, each forecast in one model call [default: 2 per core of the cluster, more
    where that would put over CHUNK_ROWS rows in one (a worker holds its partition in memory); counting the rows
    costs a pass over `history`, nothing for Parquet]. A model in the store is downloaded to a temporary folder
    that the DataFrame's tasks read, removed when the Python process exits."""
    require_pyspark()
    from pyspark.sql import functions as F

    from forecast import tracking

    _quiet()
    levels, quantiles = check_levels(level), check_quantiles(quantiles)
    local = _local_copy(model_uri, tracking_uri)
    forecaster = tracking.forecaster_of(tracking.load_model(local))  # checked once on the driver
    spark = history.sparkSession
    spark.sparkContext.addFile(local, recursive=True)
    shipped = Path(local).name
    id_col = forecaster.meta_.get("columns", {}).get("id_col") or ID
    if id_col not in history.columns:
        raise ForecastError(f"Spark DataFrame: no column '{id_col}' (columns: {', '.join(history.columns)}); "
                            "the Spark engine needs a series id column")
    params = {"horizon": int(horizon) if horizon is not None else forecaster.h_}
    if levels:
        params["level"] = list(levels)
    if quantiles:
        params["quantiles"] = list(quantiles)
    n = buckets or max(2 * spark.sparkContext.defaultParallelism, -(-history.count() // CHUNK_ROWS))
    schema = _schema(forecaster.freq_.alias is None, levels, quantiles)

    def forecast_partition(batches):  # runs on the workers: captures only names and parameters, never the model
        import pandas as pd

        frames = list(batches)
        if frames and sum(map(len, frames)):
            yield _model(shipped).predict(pd.concat(frames, ignore_index=True), params=params)

    return history.repartition(int(n), F.col(id_col)).mapInPandas(forecast_partition, schema=schema)


def predict_file(model_uri: str, path, horizon: int | None = None, levels=(), quantiles=(), master: str | None = None,
                 tracking_uri: str | None = None):
    """`forecast predict --engine spark`: read the CSV or Parquet file (or folder) with Spark, forecast on Spark,
    return the forecasts as a pandas frame ordered by series and time."""
    from forecast.data import is_parquet

    path = Path(path)
    if not path.exists():
        raise ForecastError(f"{path}: no such file; check the path")
    spark = session(master)
    reader = spark.read
    history = reader.parquet(str(path)) if is_parquet(path) else reader.csv(str(path), header=True, inferSchema=True)
    downloaded = len(_DOWNLOADS)
    try:
        forecasts = predict(history, model_uri, horizon, levels, quantiles, tracking_uri=tracking_uri).toPandas()
    finally:  # collected: this call's download is not needed again
        _remove_downloads(downloaded)
    return forecasts.sort_values([ID, TIME], kind="stable").reset_index(drop=True)


def _schema(integer_steps: bool, levels, quantiles) -> str:
    bounds = [c for level in levels for c in level_columns(level)] + [quantile_column(q) for q in quantiles]
    return ", ".join([f"{ID} string", f"{TIME} {'long' if integer_steps else 'timestamp'}", "yhat double",
                      *(f"`{c}` double" for c in bounds)])


def _local_copy(model_uri: str, tracking_uri: str | None) -> str:
    """The model as a local folder on the driver (downloaded from the store unless it is one already)."""
    import mlflow

    from forecast import tracking

    if Path(model_uri, "MLmodel").is_file():
        return str(Path(model_uri).resolve())
    tracking.connect(tracking_uri)
    target = tempfile.mkdtemp(prefix="forecast-model-")
    _DOWNLOADS.append(target)
    return mlflow.artifacts.download_artifacts(model_uri, dst_path=target).rstrip("/")


def _remove_downloads(first: int = 0) -> None:
    """Remove the models downloaded for `predict` since the `first`-th (all of them: at exit)."""
    while len(_DOWNLOADS) > first:
        shutil.rmtree(_DOWNLOADS.pop(), ignore_errors=True)


atexit.register(_remove_downloads)


def _model(shipped: str):
    """The pyfunc model in this worker process, loaded on its first bucket (one torch thread per worker: Spark runs
    one worker per core)."""
    if shipped not in _MODELS:
        from pyspark import SparkFiles

        os.environ.setdefault("OMP_NUM_THREADS", "1")
        try:
            import torch

            torch.set_num_threads(1)
        except ImportError:
            pass
        from forecast import tracking

        _MODELS[shipped] = tracking.load_model(SparkFiles.get(shipped))
    return _MODELS[shipped]


def fitter(master: str | None = None):
    """`fit` on the active SparkSession, or a new one on `master`: what `forecast train --engine spark` fits the
    per-series models with (forecast.backtesting)."""
    spark = session(master)
    return lambda forecaster, df, freq, h: fit(forecaster, df, freq, h, spark)


def fit(forecaster, df, freq, h: int, spark=None, buckets: int | None = None):
    """The unfitted per-series model `forecaster` (forecast.models.per_series.PerSeries) fitted to forecast `h`
    steps of every series of the long frame `df` (unique_id, ds, y; no covariates) on Spark: the series cut into
    `buckets` [default: 2 per core] (forecast.models.per_series.Buckets), each shipped as arrays (an RDD of one
    element per bucket: the driver holds the data already) and fitted in one call on a worker; the fits merged on
    the driver. Returns `forecaster`, fitted as in one process."""
    from forecast.models.per_series import Buckets

    spark = spark or session()
    job = Buckets.of(forecaster, df, freq, h, buckets or 2 * spark.sparkContext.defaultParallelism)
    payloads, job.payloads = job.payloads, []  # the tasks' closure carries the settings only, each task its bucket
    parts = (spark.sparkContext.parallelize(payloads, len(payloads))
             .map(lambda payload: _fit_part(job, payload)).collect())
    return forecaster.merge(parts, df, freq, h)


def _fit_part(job, payload) -> dict:
    """One bucket of `job` fitted on a worker, as plain data that Spark pickles back to the driver."""
    _quiet()
    return job.fit(payload)
