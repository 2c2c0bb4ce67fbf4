"""Logged models loaded as MLflow pyfunc models, refused in one line where their logging did not finish or their
files are gone or damaged."""

from __future__ import annotations

import re
import tempfile
import warnings
from pathlib import Path

import mlflow
from mlflow.entities import LoggedModelStatus
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from forecast.errors import ForecastError, TrackingError
from forecast.tracking.store import connect


def load_model(model_uri: str, uri: str | None = None):
    """A logged model as an MLflow pyfunc model, from runs:/, models:/ or a local path; refused in one line where
    its logging did not finish (MLflow's logged model is not READY), or its files are missing or damaged (deleted
    since it was listed, or half-written: forecast.registry.load checks every file against its digest)."""
    connect(uri)
    local = "://" not in model_uri and ":/" not in model_uri
    if local and not (Path(model_uri) / "MLmodel").is_file():
        raise TrackingError(f"model '{model_uri}': no MLflow model at that path (no MLmodel file)")
    if not local:
        _check_complete(model_uri)
    try:
        with warnings.catch_warnings(), tempfile.TemporaryDirectory(prefix="forecast-load-") as scratch:
            warnings.simplefilter("ignore")  # no requirements scan (~2 s); a download is removed once read
            return mlflow.pyfunc.load_model(model_uri, suppress_warnings=True, dst_path=None if local else scratch)
    except ForecastError as exc:  # the forecaster's own check; its path is a temporary download
        where = re.sub(r"\S*?/(artifacts/forecaster)", r"\1", str(exc))
        raise TrackingError(f"model '{model_uri}': {where}") from None
    except (MlflowException, OSError) as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if isinstance(exc, OSError) or "MLmodel" in message or "No such artifact" in message:
            message = ("its files are missing from the artifact store (deleted, or moved, since it was logged); "
                       "train it again")
        raise TrackingError(f"model '{model_uri}': cannot be loaded: {message}") from None


def _check_complete(model_uri: str) -> None:
    """Refuse a model whose logging never finished (PENDING: its process died while writing it) or failed
    (FAILED: e.g. the disk filled up), as MLflow records it; models without such a record pass."""
    found = logged_model(model_uri)
    if found is None or found.status == LoggedModelStatus.READY:
        return
    why = ("its logging failed part way (a full disk, a lost store)" if found.status == LoggedModelStatus.FAILED else
           "its logging never finished (the process writing it died, or is still writing)")
    raise TrackingError(f"model '{model_uri}': {why}, so its files are incomplete (MLflow model {found.model_id} is "
                        f"{found.status}); train it again")


def logged_model(model_uri: str):
    """MLflow's record (LoggedModel) of the model at a runs:/RUN/NAME or models:/ URI, found as MLflow resolves
    the URI; None where there is none (a model logged before MLflow 3) or the store cannot say."""
    client = MlflowClient()
    try:
        if model_uri.startswith("runs:/"):
            run_id, _, name = model_uri[len("runs:/"):].strip("/").partition("/")
            experiment_id = client.get_run(run_id).info.experiment_id
            token = None
            while True:
                page = client.search_logged_models([experiment_id], filter_string=f"name = '{name}'",
                                                   page_token=token)
                found = next((m for m in page if m.source_run_id == run_id), None)
                if found is not None or not page.token:
                    return found
                token = page.token
        if model_uri.startswith("models:/"):
            ref = model_uri[len("models:/"):].strip("/")
            if ref.startswith("m-") and "/" not in ref:
                return client.get_logged_model(ref)
            if "@" in ref:
                version = client.get_model_version_by_alias(*ref.split("@", 1))
            else:
                name, _, number = ref.rpartition("/")
                version = client.get_model_version(name, number) if number.isdigit() else None
            model_id = getattr(version, "model_id", None)
            return client.get_logged_model(model_id) if model_id else None
    except MlflowException:
        return None
    return None


def forecaster_of(pyfunc_model):
    """The forecast model inside a loaded pyfunc model."""
    return pyfunc_model.unwrap_python_model().forecaster
