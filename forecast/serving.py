"""The logged model as MLflow serves it: the pyfunc model, its own check of each request (parameters and
history), and the serving environment's requirements."""

from __future__ import annotations

import re

import mlflow
import numpy as np
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

from forecast.covariates import read_future
from forecast.data import ID, TARGET, TIME, history_frame
from forecast.errors import ForecastError, ModelError
from forecast.intervals import check_levels, check_quantiles

RUNTIME = ("click", "numpy", "pandas", "statsmodels", "torch", "mlflow", "matplotlib", "rich", "PyYAML")


def requirements() -> list[str]:
    """The serving environment's requirements: the package's own dependencies, pinned at the versions in use
    (never the package itself: it travels inside the model, and `forecast` on PyPI is someone else's project)."""
    from importlib.metadata import PackageNotFoundError, requires, version

    try:
        declared = requires("forecast") or []
    except PackageNotFoundError:  # running from a source tree
        declared = []
    names = [re.split(r"[<>=!~;\[ ]", d, maxsplit=1)[0] for d in declared if "extra ==" not in d] or list(RUNTIME)
    pins = []
    for name in names:
        try:
            pins.append(f"{name}=={version(name).split('+')[0]}")  # torch 2.13.0+cpu: the local label is the build
        except PackageNotFoundError:
            pins.append(name)
    return pins


PARAMS = ("horizon", "level", "quantiles")


class RequestError(MlflowException, ModelError):
    """A request the pyfunc model refuses: one line, HTTP 400 from `mlflow models serve`, exit 1 from the CLI.

    MLflow's scoring server prefixes a model's error message with the whole request frame; the message here stays
    the one line the model wrote."""

    def __init__(self, message: str):
        super().__init__(message, error_code=INVALID_PARAMETER_VALUE)

    @property
    def message(self) -> str:
        return self._line

    @message.setter
    def message(self, value: str) -> None:
        if not hasattr(self, "_line"):
            self._line = value


def _whole_number(name: str, value) -> int:
    """A positive whole number from an int, an integral float (JSON from JavaScript) or a numeric string."""
    number = None
    if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_)):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            pass
    if number is None or not np.isfinite(number) or number % 1 or number < 1:
        raise RequestError(f"parameter {name}: {value!r} is not allowed; give a whole number of steps of at least 1")
    return int(number)


def _numbers(name: str, value, check) -> tuple[float, ...]:
    """A list of numbers (or one number, or numeric strings) checked by `check` (intervals.check_*)."""
    values = list(value) if isinstance(value, (list, tuple, np.ndarray)) else [value]
    try:
        numbers = [float(v.strip() if isinstance(v, str) else v) for v in values
                   if not isinstance(v, (bool, np.bool_, dict, list))]
    except (TypeError, ValueError):
        numbers = None
    if numbers is None or len(numbers) != len(values):
        raise RequestError(f"parameter {name}: {value!r} is not allowed; give a list of numbers")
    try:
        return check(numbers)
    except ForecastError as exc:
        raise RequestError(f"parameter {name}: {str(exc).split(': ', 1)[-1]}") from None


def request_params(params: dict | None) -> tuple[int | None, tuple[float, ...], tuple[float, ...]]:
    """(horizon, levels, quantiles) from a request's params, refusing unknown names and bad values."""
    params = dict(params or {})
    unknown = sorted(str(k) for k in params if k not in PARAMS)
    if unknown:
        raise RequestError(f"parameter {unknown[0]}: unknown; the model takes {', '.join(PARAMS)}")
    horizon = params.get("horizon")
    horizon = None if horizon is None else _whole_number("horizon", horizon)
    levels = _numbers("level", params["level"], check_levels) if _given(params.get("level")) else ()
    quantiles = _numbers("quantiles", params["quantiles"], check_quantiles) if _given(params.get("quantiles")) else ()
    return horizon, levels, quantiles


def _given(value) -> bool:
    """Not left out: neither None nor an empty list (MLflow's default for a list parameter)."""
    return value is not None and not (isinstance(value, (list, tuple, np.ndarray)) and len(value) == 0)


def _checked_by_model(validate):
    """MLflow's check of a request against the signature, left to the forecast model where the request is for one:
    it would refuse string dates, `horizon` as 6.0 or "6", and drop unknown parameters without a word."""
    if getattr(validate, "forecast_defers", False):
        return validate

    def check(data, params, input_schema, params_schema, flavor=None):
        names = {spec.name for spec in params_schema.params} if params_schema is not None else set()
        if names == set(PARAMS):
            return data, params
        return validate(data, params, input_schema, params_schema, flavor)

    check.forecast_defers = True
    return check


class ForecastModel(mlflow.pyfunc.PythonModel):
    """The pyfunc face of a saved forecaster: predict(history (unique_id, ds, y), params={"horizon": h, "level":
    [80, 95], "quantiles": [...]}). The model checks the request itself, with the CLI's rules and messages."""

    def load_context(self, context):
        from forecast import registry

        self.forecaster = registry.load(context.artifacts["forecaster"])
        if hasattr(mlflow.pyfunc, "_validate_prediction_input"):
            mlflow.pyfunc._validate_prediction_input = _checked_by_model(mlflow.pyfunc._validate_prediction_input)

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        try:
            return self._predict(model_input, params)
        except RequestError:
            raise
        except ForecastError as exc:
            raise RequestError(str(exc)) from None

    def _predict(self, model_input, params) -> pd.DataFrame:
        horizon, levels, quantiles = request_params(params)
        forecaster = self.forecaster
        if not isinstance(model_input, pd.DataFrame):
            model_input = pd.DataFrame(model_input)
        if model_input.empty:
            raise RequestError("request: no rows; send the history of every series to forecast (unique_id, ds, y)")
        trained = forecaster.meta_.get("columns", {})
        names = {key: trained.get(key) if trained.get(key) in model_input.columns else None
                 for key in ("id_col", "time_col", "target_col")}
        integer_model = forecaster.freq_.alias is None
        covariates, future = forecaster.covariates, None
        if covariates.futr:  # the rows after each series' last value, y left empty, carry the future covariates
            model_input, future = _split_future(model_input, names["id_col"] or ID, names["target_col"] or TARGET)
        history, order, columns = history_frame(model_input, "request", forecaster.freq_.alias, covariates=covariates,
                                                **names)
        if future is not None:
            future = read_future(future, columns, covariates, "request")
        if integer_model != pd.api.types.is_integer_dtype(history[TIME]):
            given, trained = ("dates", "integer steps") if integer_model else ("integer steps", "dates")
            raise RequestError(f"request: the time column holds {given} but the model was trained on {trained}; "
                               f"send {trained}")
        return forecast(forecaster, history, horizon, levels, quantiles, order, future, "request")


def _split_future(frame: pd.DataFrame, id_col: str, target: str) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """(the history rows, the future rows): those after each series' last row with a value of `target`."""
    if target not in frame.columns:
        raise RequestError(f"request: no column '{target}'; send the history (y) and, after it, the future rows of "
                           "the covariates with y left empty")
    frame = frame.reset_index(drop=True)
    ids = frame[id_col].astype(str) if id_col in frame.columns else pd.Series("", index=frame.index)
    present = pd.to_numeric(frame[target], errors="coerce").notna()
    after = present[::-1].groupby(ids[::-1], sort=False).cumsum()[::-1] == 0  # no value from here to the end
    return frame[~after], (frame[after] if after.any() else None)


def forecast(forecaster, history: pd.DataFrame, horizon: int | None, levels=(), quantiles=(),
             order: list[str] | None = None, future: pd.DataFrame | None = None, source="--future") -> pd.DataFrame:
    """The forecasts of a checked long history (unique_id, ds, y), the rows in `order` of series (default: as in
    `history`): what the pyfunc model answers, and what `forecast predict` writes after checking its file. A model
    with future covariates reads them from `future` (unique_id, ds and those columns)."""
    out = forecaster.predict(horizon, history, levels, quantiles, future=future, source=source)
    if order is None:
        return out
    rank = pd.Series(np.arange(len(order)), index=order)
    out["_order"] = out[ID].map(rank).to_numpy()
    return out.sort_values("_order", kind="stable").drop(columns="_order").reset_index(drop=True)
