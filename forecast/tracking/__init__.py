"""MLflow tracking, all of it here: the store (store.py), runs and their end states, params, metrics, artifacts,
datasets and the logged model (runs.py), logged models loaded and checked (models.py), the runs ranked
(table.py). serving.py holds the model as MLflow loads and serves it; ui.py the MLflow UI."""

import logging
import os

import mlflow  # noqa: F401  (first: its import sets its loggers' levels, which these lines then lower)

for _name in ("alembic", "mlflow", "urllib3"):
    logging.getLogger(_name).setLevel(logging.ERROR)
# no "Downloading artifacts" bars, nor a tracking server's "View run" links, in the middle of a command's output
# (a forecast CSV on stdout among them)
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")

from forecast.serving import ForecastModel  # noqa: E402, F401  (the entry file of models logged before serving.py)
from forecast.tracking.models import forecaster_of, load_model, logged_model  # noqa: E402
from forecast.tracking.runs import (  # noqa: E402
    MODEL_NAME,
    Run,
    activated,
    error_message,
    parent_run,
    reap,
    reap_all,
    resumable,
    training_run,
)
from forecast.tracking.store import DEFAULT_URI, connect, retrying, tracking_uri, unreachable  # noqa: E402
from forecast.tracking.table import runs_table  # noqa: E402

__all__ = ["DEFAULT_URI", "MODEL_NAME", "Run", "activated", "connect", "error_message", "forecaster_of", "load_model",
           "logged_model", "parent_run", "reap", "reap_all", "resumable", "retrying", "runs_table", "tracking_uri",
           "training_run", "unreachable"]
