"""MLflow tracking: the store, runs and their end states, params, metrics, artifacts, datasets, the logged model
(serving.py: the model as MLflow loads and serves it; ui.py: the MLflow UI)."""

from __future__ import annotations

import fcntl
import logging
import os
import re
import signal
import tempfile
import threading
import time
import warnings
from contextlib import contextmanager
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.entities import Metric, Param, RunStatus, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.types.schema import ColSpec, ParamSchema, ParamSpec, Schema
from sqlalchemy.exc import IntegrityError, OperationalError

from forecast import liveness, serving
from forecast.data import ID, TARGET, TIME
from forecast.errors import DataError, ForecastError, TrackingError
from forecast.serving import ForecastModel  # noqa: F401  (the entry file of models logged before serving.py)

DEFAULT_URI = "sqlite:///mlruns/mlflow.db"
MODEL_NAME = "model"
ENTRY = Path(__file__).with_name("pyfunc_entry.py")
PACKAGE = Path(__file__).parent

for _name in ("alembic", "mlflow", "urllib3"):
    logging.getLogger(_name).setLevel(logging.ERROR)
# no "Downloading artifacts" bars in the middle of a command's output (a forecast CSV on stdout among them)
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def tracking_uri(uri: str | None = None) -> str:
    """The store to use: the option, else MLFLOW_TRACKING_URI, else the project's SQLite store under ./mlruns."""
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_URI
    scheme = uri.split(":", 1)[0] if re.match(r"^[a-z][a-z0-9+.-]*:", uri) else ""
    if scheme in ("", "file"):
        raise TrackingError(f"tracking URI '{uri}': MLflow's plain file store is refused; "
                            f"use a SQLite store such as {DEFAULT_URI}")
    if scheme == "sqlite":
        db = _sqlite_path(uri)
        if db is not None:
            db.parent.mkdir(parents=True, exist_ok=True)
    return uri


def _sqlite_path(uri: str) -> Path | None:
    path = uri[len("sqlite:///"):] if uri.startswith("sqlite:///") else None
    return Path(path).resolve() if path and path != ":memory:" else None


_READY: set[str] = set()  # stores this process has made sure exist


def connect(uri: str | None = None) -> str:
    """Point MLflow at the store; a new SQLite store is created under a file lock, so that processes starting
    together do not race through its schema migrations."""
    uri = tracking_uri(uri)
    mlflow.set_tracking_uri(uri)
    db = _sqlite_path(uri)
    if db is not None and uri not in _READY:
        with open(db.with_name(db.name + ".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                retrying(lambda: MlflowClient(uri).search_experiments(max_results=1))
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
        _READY.add(uri)
    return uri


@contextmanager
def _ctrl_c_after():
    """Hold a Ctrl-C (SIGINT) until the block is done, then raise it: a store call is never cut in half, which
    could leave this process's connection holding SQLite's write lock for every write after it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.default_int_handler)
    if caught:
        raise KeyboardInterrupt


CONTENDED = ("locked", "UNIQUE constraint failed", "UniqueViolation", "duplicate key value")


def retrying(call, attempts: int = 8):
    """`call()`, tried again with growing pauses while another process writing the same store gets in the way:
    SQLite's 'database is locked', or a row both created at once (the same dataset logged by concurrent runs: the
    store checks, then inserts; the loser finds the row on its next try); a Ctrl-C waits until the call is done."""
    with _ctrl_c_after():
        for attempt in range(attempts):
            try:
                return call()
            except (MlflowException, OperationalError, IntegrityError) as exc:
                if not any(sign in str(exc) for sign in CONTENDED) or attempt == attempts - 1:
                    raise
                time.sleep(0.1 * 2 ** attempt)


def _experiment_id(name: str, uri: str) -> str:
    """The experiment's id, creating it (artifacts beside the SQLite file) when new."""
    client = MlflowClient(uri)
    found = retrying(lambda: client.get_experiment_by_name(name))
    if found is not None:
        if found.lifecycle_stage != "active":
            raise TrackingError(f"experiment '{name}' is deleted in {uri}; restore it in the UI or use --experiment")
        return found.experiment_id
    db = _sqlite_path(uri)
    location = None
    if db is not None:
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name) or "experiment"
        location = (db.parent / "artifacts" / safe).as_uri()
    try:
        return retrying(lambda: client.create_experiment(name, artifact_location=location))
    except MlflowException:
        found = client.get_experiment_by_name(name)  # created by a concurrent run in the meantime
        if found is None:
            raise
        return found.experiment_id


class Run:
    """One MLflow run: what training logs goes through here."""

    def __init__(self, client: MlflowClient, run_id: str):
        self.client, self.run_id = client, run_id

    def log_params(self, params: dict) -> None:
        clean = [Param(k, ("" if v is None else str(v))[:6000]) for k, v in params.items()]
        retrying(lambda: self.client.log_batch(self.run_id, params=clean))

    def log_metrics(self, metrics: dict, step: int | None = None) -> None:
        now = int(time.time() * 1000)
        finite = [Metric(k, float(v), now, step or 0) for k, v in metrics.items() if v is not None and pd.notna(v)]
        retrying(lambda: self.client.log_batch(self.run_id, metrics=finite))

    def log_curve(self, name: str, values) -> None:
        """A metric whose history is a curve over steps 1, 2, ... (MLflow's chart view draws and overlays it)."""
        now = int(time.time() * 1000)
        points = [Metric(name, float(v), now, step) for step, v in enumerate(values, start=1) if pd.notna(v)]
        for i in range(0, len(points), 1000):
            retrying(lambda i=i: self.client.log_batch(self.run_id, metrics=points[i:i + 1000]))

    def log_frame(self, frame: pd.DataFrame, name: str) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / name
            frame.to_csv(path, index=False)
            self.client.log_artifact(self.run_id, str(path))

    def log_text(self, text: str, name: str) -> None:
        self.client.log_text(self.run_id, text, name)

    def log_file(self, path: Path, folder: str) -> None:
        retrying(lambda: self.client.log_artifact(self.run_id, str(path), folder))

    def set_tags(self, tags: dict) -> None:
        retrying(lambda: self.client.log_batch(self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()]))

    def log_dataset(self, df: pd.DataFrame, path, sha256: str, context: str = "training") -> None:
        """The data as an MLflow dataset of the run (the runs table's Dataset column): named after the file, its
        source the file, its digest the file's SHA-256 (first 16 hex digits)."""
        from mlflow.entities import DatasetInput, InputTag

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dataset = mlflow.data.from_pandas(df, source=str(Path(path).resolve()), targets=TARGET,
                                              name=Path(path).name, digest=sha256[:16])
            entity = DatasetInput(dataset._to_mlflow_entity(), tags=[InputTag("mlflow.data.context", context)])
        retrying(lambda: self.client.log_inputs(self.run_id, datasets=[entity]))

    def set_description(self, markdown: str) -> None:
        """The run page's description (Markdown)."""
        self.set_tags({"mlflow.note.content": markdown})

    def log_figure(self, figure, name: str) -> None:
        self.client.log_figure(self.run_id, figure, name)

    def log_model(self, model_dir: Path, example: pd.DataFrame, output: pd.DataFrame, h: int,
                  register: str | None = None, covariates=None) -> tuple[str, str | None]:
        """Log a saved forecaster as an MLflow pyfunc model (models from code: nothing pickled), the package's code
        inside it; return its URI and, with `register`, the registered version's models:/NAME/VERSION. The
        signature lists the `covariates` columns (forecast.data.Covariates) the model reads beside the history."""
        extra = []
        if covariates is not None:
            extra = [ColSpec("double", name) for name in covariates.futr + covariates.hist]
            extra += [ColSpec("string" if not pd.api.types.is_numeric_dtype(example[name]) else "double", name)
                      for name in covariates.static]
        signature = mlflow.models.ModelSignature(
            inputs=Schema([ColSpec("string", ID, required=False), ColSpec("string", TIME), ColSpec("double", TARGET),
                           *extra]),
            outputs=Schema([ColSpec(spec.type, spec.name, required=not spec.name.startswith("yhat_"))
                            for spec in mlflow.models.infer_signature(output).inputs.inputs]),
            params=ParamSchema([ParamSpec("horizon", "long", int(h)), ParamSpec("level", "double", [], (-1,)),
                                ParamSpec("quantiles", "double", [], (-1,))]))
        example = example.assign(**{TIME: example[TIME].astype(str)})  # as a CSV or a JSON request carries dates
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            info = retrying(lambda: mlflow.pyfunc.log_model(
                name=MODEL_NAME, python_model=str(ENTRY), artifacts={"forecaster": str(model_dir)},
                code_paths=[str(PACKAGE)], signature=signature, input_example=(example, {"horizon": int(h)}),
                registered_model_name=register, pip_requirements=serving.requirements()))
        version = getattr(info, "registered_model_version", None)
        return info.model_uri, (f"models:/{register}/{version}" if register and version is not None else None)


@contextmanager
def activated(run_id: str):
    """An existing run made MLflow's active run for what only the fluent API logs (a model), then let go of
    without ending it: its status stays RUNNING for the command that owns it to end."""
    if mlflow.active_run() is not None:
        mlflow.end_run()
    retrying(lambda: mlflow.start_run(run_id=run_id))
    try:
        yield
    finally:
        mlflow.end_run(status="RUNNING")


def error_message(exc: BaseException) -> str:
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted by the user (Ctrl-C)"
    message = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {message}"[:5000]


@contextmanager
def _ended(client: MlflowClient, run_id: str, terminate):
    """Yield the run, with a heartbeat while it runs; end it with `terminate(status)`: FINISHED, FAILED (the error
    message as tag `error`) or KILLED (Ctrl-C), never left RUNNING. (A run whose process dies without a word is
    ended FAILED by the next command that reads its experiment: `reap`.)"""
    try:
        with liveness.Heartbeat(lambda: client.set_tag(run_id, liveness.HEARTBEAT, f"{time.time():.3f}")):
            yield Run(client, run_id)
    except BaseException as exc:
        killed = isinstance(exc, KeyboardInterrupt) or getattr(exc, "ends_killed", False)  # Ctrl-C, a pruned trial
        status = RunStatus.KILLED if killed else RunStatus.FAILED
        message = error_message(exc)
        retrying(lambda: client.set_tag(run_id, "error", message))
        retrying(lambda: terminate(RunStatus.to_string(status)))
        raise
    retrying(lambda: terminate(RunStatus.to_string(RunStatus.FINISHED)))


@contextmanager
def training_run(experiment: str, run_name: str, uri: str | None = None, parent_run_id: str | None = None):
    """A model's run (a child of `parent_run_id` when given), active in MLflow so that it can log the model."""
    uri = connect(uri)
    client = MlflowClient(uri)
    experiment_id = _experiment_id(experiment, uri)
    reap(client, [experiment_id], "train")
    if mlflow.active_run() is not None:
        mlflow.end_run()
    tags = {**liveness.identity(), **({"mlflow.parentRunId": parent_run_id} if parent_run_id else {})}
    run_id = retrying(lambda: mlflow.start_run(experiment_id=experiment_id, run_name=run_name, tags=tags)).info.run_id
    with _ended(client, run_id, lambda status: mlflow.end_run(status)) as run:
        yield run


@contextmanager
def parent_run(experiment: str, run_name: str, uri: str | None = None, run_id: str | None = None):
    """A pipeline's (or a study's) parent run, which its model runs are nested under; with `run_id`, that earlier
    parent run of `experiment`, reopened (a study resumed)."""
    uri = connect(uri)
    client = MlflowClient(uri)
    experiment_id = _experiment_id(experiment, uri)
    reap(client, [experiment_id], "run")
    from mlflow.tracking.context.registry import resolve_tags

    tags = {**resolve_tags(), **liveness.identity()}  # the user and the source, as mlflow.start_run sets them
    if run_id is not None:
        try:
            old = client.get_run(run_id)
        except MlflowException:
            raise DataError(f"--resume {run_id}: no such run in this store") from None
        if old.info.experiment_id != experiment_id or old.data.tags.get("mlflow.runName") != run_name:
            raise DataError(f"--resume {run_id}: not a '{run_name}' run of experiment '{experiment}'")
        if old.info.status == "RUNNING":
            raise DataError(f"--resume {run_id}: the run is still running (its process is alive); stop it first")
        retrying(lambda: client.update_run(run_id, status="RUNNING"))
        retrying(lambda: client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in liveness.identity().items()]))
    else:
        run_id = retrying(lambda: client.create_run(experiment_id, run_name=run_name, tags=tags)).info.run_id
    with _ended(client, run_id, lambda status: client.set_terminated(run_id, status)) as run:
        yield run


def reap(client: MlflowClient, experiment_ids: list[str], command: str) -> list[str]:
    """End FAILED the RUNNING runs of these experiments whose process is dead (forecast.liveness.dead: gone from
    this host, or silent past the heartbeat timeout), each with a tag saying why and which command found it;
    returns their ids. Runs not started by forecast (no process tags) are left alone."""
    if not experiment_ids:
        return []
    running = retrying(lambda: client.search_runs(experiment_ids, "attributes.status = 'RUNNING'", max_results=1000))
    ended, now = [], time.time()
    for run in running:
        reason = liveness.dead(run.data.tags, now)
        if reason is not None:
            _end_dead(client, run, reason, f"{reason}; ended FAILED by `forecast {command}` at {liveness.stamp(now)}")
            ended.append(run.info.run_id)
    return ended


def _end_dead(client: MlflowClient, run, reason: str, found: str) -> None:
    run_id = run.info.run_id
    last = liveness.last_heartbeat(run.data.tags)
    end_ms = int(last * 1000) if last == last else None  # the last sign of life, where there was one
    retrying(lambda: client.set_tag(run_id, liveness.ORPHANED, found))
    retrying(lambda: client.set_tag(run_id, "error", f"process died: {reason}"))
    retrying(lambda: client.set_terminated(run_id, "FAILED", end_time=end_ms))


def reap_all(uri: str | None, command: str) -> list[str]:
    """`reap` in every active experiment of the store."""
    connect(uri)
    client = MlflowClient()
    ids = [e.experiment_id for e in retrying(lambda: client.search_experiments())]
    return reap(client, ids, command)


def resumable(run_id: str, params: dict, uri: str | None = None) -> Path:
    """The checkpoints of run `run_id`, downloaded, to resume it with `params` (the new run's): refused in one line
    where the run is unknown, still alive, has no checkpoints, or was started with other settings or data."""
    connect(uri)
    client = MlflowClient()
    try:
        old = retrying(lambda: client.get_run(run_id))
    except MlflowException:
        raise TrackingError(f"--resume {run_id}: no such run in {mlflow.get_tracking_uri()}") from None
    if old.info.status == "RUNNING" and liveness.dead(old.data.tags) is None:
        raise TrackingError(f"--resume {run_id}: the run is still running (process {old.data.tags.get(liveness.PID)} "
                            f"on {old.data.tags.get(liveness.HOST)}); stop it first")
    differ = [k for k, v in params.items() if k in old.data.params and old.data.params[k] != ("" if v is None else
                                                                                               str(v))[:6000]]
    if differ:
        shown = ", ".join(f"{k} {old.data.params[k]!r} -> {params[k]!r}" for k in differ[:4])
        raise TrackingError(f"--resume {run_id}: run it with the settings and data it started with ({shown})")
    target = Path(tempfile.mkdtemp(prefix="forecast-resume-"))
    try:
        folder = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="checkpoints", dst_path=str(target))
    except (MlflowException, OSError):
        raise TrackingError(f"--resume {run_id}: the run saved no checkpoint (its training had not reached one, or "
                            "it is not a neural run); train again without --resume") from None
    return Path(folder)


def load_model(model_uri: str, uri: str | None = None):
    """A logged model as an MLflow pyfunc model, from runs:/, models:/ or a local path."""
    connect(uri)
    local = Path(model_uri)
    if "://" not in model_uri and ":/" not in model_uri:
        if not (local / "MLmodel").is_file():
            raise TrackingError(f"model '{model_uri}': no MLflow model at that path (no MLmodel file)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return mlflow.pyfunc.load_model(model_uri, suppress_warnings=True)  # no requirements scan (~2 s)
    except ForecastError:
        raise
    except (MlflowException, OSError) as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TrackingError(f"model '{model_uri}': cannot be loaded ({message})") from None


def forecaster_of(pyfunc_model):
    """The forecast model inside a loaded pyfunc model."""
    return pyfunc_model.unwrap_python_model().forecaster


def runs_table(experiment: str | None, metric: str, uri: str | None = None, parent: str | None = None) -> pd.DataFrame:
    """Runs of one experiment (or of all, or the children of a pipeline run), ranked by a holdout metric."""
    connect(uri)
    client = MlflowClient()
    experiments = {e.experiment_id: e.name for e in client.search_experiments()}
    query = ""
    if parent is not None:
        try:
            ids = [client.get_run(parent).info.experiment_id]
        except MlflowException:
            raise TrackingError(f"no run '{parent}' in {mlflow.get_tracking_uri()}; "
                                "give the run id of a pipeline run (forecast compare lists them)") from None
        query = f"tags.mlflow.parentRunId = '{parent}'"
    elif experiment is not None:
        ids = [i for i, name in experiments.items() if name == experiment]
        if not ids:
            names = ", ".join(experiments.values()) or "none yet"
            raise TrackingError(f"no experiment '{experiment}' in {mlflow.get_tracking_uri()} (experiments: {names})")
    else:
        ids = list(experiments)
    if not ids:
        return pd.DataFrame()
    reap(client, ids, "compare")  # a dead run is never shown RUNNING
    runs = mlflow.search_runs(experiment_ids=ids, filter_string=query, order_by=[f"metrics.{metric} ASC"],
                              output_format="pandas")
    if runs.empty:
        return runs
    table = pd.DataFrame({
        "experiment": runs["experiment_id"].map(experiments),
        "run": runs.get("tags.mlflow.runName"),
        "model": runs.get("params.model"),
        "status": runs["status"],
        "folds": runs.get("params.folds"),
    })
    for name in ("mase", "smape", "mae", "rmse", "msis", "coverage_80", "coverage_95"):
        table[name] = runs.get(f"metrics.{name}", float("nan"))
        table[f"{name}_std"] = runs.get(f"metrics.{name}_std", float("nan"))
    table["train_seconds"] = runs.get("metrics.train_seconds", float("nan"))
    registered = _registered_versions(client, set(runs["run_id"]))
    for column in ("registered", "version", "aliases"):
        table[column] = [registered.get(run_id, {}).get(column, "") for run_id in runs["run_id"]]
    table["run_id"] = runs["run_id"]
    table["parent_run_id"] = runs.get("tags.mlflow.parentRunId")
    return table.reset_index(drop=True)


def _registered_versions(client: MlflowClient, run_ids: set[str]) -> dict[str, dict]:
    """run id -> the registry's name, version(s) and aliases of the models registered from that run."""
    found: dict[str, dict] = {}
    try:
        versions = retrying(lambda: client.search_model_versions(max_results=10000))
    except MlflowException:  # a store without a model registry
        return found
    versions = sorted((mv for mv in versions if mv.run_id in run_ids), key=lambda mv: (mv.name, int(mv.version)))
    aliases: dict[tuple[str, str], list[str]] = {}
    for name in {mv.name for mv in versions}:  # search_model_versions leaves the aliases out
        for alias, version in retrying(lambda n=name: client.get_registered_model(n)).aliases.items():
            aliases.setdefault((name, str(version)), []).append(f"@{alias}")
    for mv in versions:
        entry = found.setdefault(mv.run_id, {"registered": mv.name, "version": [], "aliases": []})
        entry["version"].append(str(mv.version))
        entry["aliases"] += sorted(aliases.get((mv.name, str(mv.version)), []))
    return {run_id: {"registered": e["registered"], "version": ",".join(e["version"]),
                     "aliases": ",".join(e["aliases"])} for run_id, e in found.items()}
