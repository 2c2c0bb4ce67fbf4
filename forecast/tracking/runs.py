"""A run, from its start to its end state: what training logs goes through Run (kept locally if the store is lost
mid-run), the heartbeat while it runs, FAILED/KILLED with the error, dead runs of other processes ended, the
checkpoints of a run to resume."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import warnings
from contextlib import contextmanager, suppress
from pathlib import Path

import mlflow
import pandas as pd
from mlflow.entities import LoggedModelStatus, Metric, Param, RunStatus, RunTag
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow.types.schema import ColSpec, ParamSchema, ParamSpec, Schema

from forecast import liveness, serving, spool
from forecast.data import ID, TARGET, TIME
from forecast.errors import DataError, TrackingError
from forecast.tracking.store import _experiment_id, connect, retrying, unreachable

MODEL_NAME = "model"
ENTRY = Path(__file__).parents[1] / "pyfunc_entry.py"
PACKAGE = Path(__file__).parents[1]  # the forecast package, logged inside every model


class Run:
    """One MLflow run: what training logs goes through here. If the store cannot be reached mid-run (a tracking
    server stopped; after MLflow's own retries), the run goes on and keeps everything locally (forecast.spool):
    `spool` is then set, and the run's end reports where."""

    def __init__(self, client: MlflowClient, run_id: str):
        self.client, self.run_id = client, run_id
        self.spool: spool.Spool | None = None
        self._sent = {"params": {}, "tags": {}, "metrics": []}  # what the spool starts with, if it comes to that

    def _send(self, call, keep=None):
        """call() on the store; once the store is unreachable, keep(spool) instead (nothing, without `keep`)."""
        if self.spool is None:
            try:
                return retrying(call)
            except MlflowException as exc:
                where = unreachable(exc)
                if where is None:
                    raise
                self.spool = spool.Spool(self.run_id, *where, **self._sent)
        return keep(self.spool) if keep is not None else None

    def log_params(self, params: dict) -> None:
        clean = {k: ("" if v is None else str(v))[:6000] for k, v in params.items()}
        self._send(lambda: self.client.log_batch(self.run_id, params=[Param(k, v) for k, v in clean.items()]),
                   lambda kept: kept.params(clean))
        self._sent["params"].update(clean)

    def log_metrics(self, metrics: dict, step: int | None = None) -> None:
        now = int(time.time() * 1000)
        finite = [Metric(k, float(v), now, step or 0) for k, v in metrics.items() if v is not None and pd.notna(v)]
        self._send_metrics(finite)

    def log_curve(self, name: str, values) -> None:
        """A metric whose history is a curve over steps 1, 2, ... (MLflow's chart view draws and overlays it)."""
        now = int(time.time() * 1000)
        points = [Metric(name, float(v), now, step) for step, v in enumerate(values, start=1) if pd.notna(v)]
        for i in range(0, len(points), 1000):
            self._send_metrics(points[i:i + 1000])

    def _send_metrics(self, metrics: list[Metric]) -> None:
        rows = [(m.key, m.value, m.step, m.timestamp) for m in metrics]
        self._send(lambda: self.client.log_batch(self.run_id, metrics=metrics), lambda kept: kept.metrics(rows))
        self._sent["metrics"] += rows

    def log_frame(self, frame: pd.DataFrame, name: str) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / name
            frame.to_csv(path, index=False)
            self.log_file(path, None)

    def log_text(self, text: str, name: str) -> None:
        self._send(lambda: self.client.log_text(self.run_id, text, name),
                   lambda kept: kept.artifact(name).write_text(text))

    def log_file(self, path: Path, folder: str | None) -> None:
        self._send(lambda: self.client.log_artifact(self.run_id, str(path), folder),
                   lambda kept: shutil.copyfile(path, kept.artifact(Path(path).name, folder)))

    def set_tags(self, tags: dict) -> None:
        clean = {k: str(v) for k, v in tags.items()}
        self._send(lambda: self.client.log_batch(self.run_id, tags=[RunTag(k, v) for k, v in clean.items()]),
                   lambda kept: kept.tags(clean))
        self._sent["tags"].update(clean)

    def log_dataset(self, df: pd.DataFrame, path, sha256: str, context: str = "training") -> None:
        """The data as an MLflow dataset of the run (the runs table's Dataset column): named after the file, its
        source the file, its digest the file's SHA-256 (first 16 hex digits)."""
        from mlflow.entities import DatasetInput, InputTag

        source, name = str(Path(path).resolve()), Path(path).name
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dataset = mlflow.data.from_pandas(df, source=source, targets=TARGET, name=name, digest=sha256[:16])
            entity = DatasetInput(dataset._to_mlflow_entity(), tags=[InputTag("mlflow.data.context", context)])
        self._send(lambda: self.client.log_inputs(self.run_id, datasets=[entity]),
                   lambda kept: kept.dataset(name, source, sha256[:16], context))

    def set_description(self, markdown: str) -> None:
        """The run page's description (Markdown)."""
        self.set_tags({"mlflow.note.content": markdown})

    def log_figure(self, figure, name: str) -> None:
        self._send(lambda: self.client.log_figure(self.run_id, figure, name),
                   lambda kept: figure.savefig(kept.artifact(name)))

    def log_model(self, model_dir: Path, example: pd.DataFrame, output: pd.DataFrame, h: int,
                  register: str | None = None, covariates=None) -> tuple[str, str | None]:
        """Log a saved forecaster as an MLflow pyfunc model (models from code: nothing pickled), the package's code
        inside it; return its URI and, with `register`, the registered version's models:/NAME/VERSION. The
        signature lists the `covariates` columns (forecast.data.Covariates) the model reads beside the history.
        With the store lost, the model is saved in the spool instead (its folder is the URI; not registered)."""
        extra = []
        if covariates is not None:
            extra = [ColSpec("double", name) for name in covariates.futr + covariates.hist]
            extra += [ColSpec("string" if not pd.api.types.is_numeric_dtype(example[name]) else "double", name)
                      for name in covariates.static]
        with warnings.catch_warnings():  # its hint about integer columns (integer time steps) is not the user's
            warnings.simplefilter("ignore")
            inferred = mlflow.models.infer_signature(output).inputs.inputs
        signature = mlflow.models.ModelSignature(
            inputs=Schema([ColSpec("string", ID, required=False), ColSpec("string", TIME), ColSpec("double", TARGET),
                           *extra]),
            outputs=Schema([ColSpec(spec.type, spec.name, required=not spec.name.startswith("yhat_"))
                            for spec in inferred]),
            params=ParamSchema([ParamSpec("horizon", "long", int(h)), ParamSpec("level", "double", [], (-1,)),
                                ParamSpec("quantiles", "double", [], (-1,))]))
        example = example.assign(**{TIME: example[TIME].astype(str)})  # as a CSV or a JSON request carries dates
        model = dict(python_model=str(ENTRY), artifacts={"forecaster": str(model_dir)}, code_paths=[str(PACKAGE)],
                     signature=signature, input_example=(example, {"horizon": int(h)}),
                     pip_requirements=serving.requirements())

        def send():
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    return mlflow.pyfunc.log_model(name=MODEL_NAME, registered_model_name=register, **model)
            except BaseException as exc:
                if unreachable(exc) is None:  # else the store cannot delete anything either
                    self._discard_unfinished_model()
                raise

        def keep(kept):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return kept.model(lambda path: mlflow.pyfunc.save_model(path, **model))

        info = self._send(send, keep)
        if self.spool is not None:
            return str(info), None
        version = getattr(info, "registered_model_version", None)
        return info.model_uri, (f"models:/{register}/{version}" if register and version is not None else None)

    def _discard_unfinished_model(self) -> None:
        """After a failed log_model: delete what was copied of the model (MLflow has marked it FAILED; a full disk
        gets its space back), best effort: the store may be what failed."""
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        try:
            model = mlflow.last_logged_model()
            if model is not None and model.source_run_id == self.run_id and model.status != LoggedModelStatus.READY:
                get_artifact_repository(model.artifact_location).delete_artifacts()
        except Exception:  # noqa: BLE001  the model stays FAILED, and load_model refuses it
            pass


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
    run = Run(client, run_id)
    try:
        with liveness.Heartbeat(lambda: client.set_tag(run_id, liveness.HEARTBEAT, f"{time.time():.3f}")):
            yield run
    except BaseException as exc:
        killed = isinstance(exc, KeyboardInterrupt) or getattr(exc, "ends_killed", False)  # Ctrl-C, a pruned trial
        status = RunStatus.KILLED if killed else RunStatus.FAILED
        message = error_message(exc)
        with suppress(AttributeError):  # for the CLI's message of a full disk: the run ended, where it was writing
            exc.forecast_run_id = run_id
        if isinstance(exc, OSError) and run.spool is None:
            with suppress(Exception):
                exc.forecast_artifacts = retrying(lambda: client.get_run(run_id)).info.artifact_uri
        if run.spool is not None:
            _end_unsent(run, terminate, RunStatus.to_string(status), message)
            raise TrackingError(f"{message}; {run.spool.message()}") from exc
        retrying(lambda: client.set_tag(run_id, "error", message))
        retrying(lambda: terminate(RunStatus.to_string(status)))
        raise
    if run.spool is not None:
        host = liveness.identity()[liveness.HOST]
        _end_unsent(run, terminate, "FAILED", f"the tracking server could not be reached during the run; its params, "
                                              f"metrics and model are kept in {run.spool.folder} on {host}")
        raise TrackingError(run.spool.message())
    retrying(lambda: terminate(RunStatus.to_string(RunStatus.FINISHED)))


def _end_unsent(run: Run, terminate, status: str, message: str) -> None:
    """End a run whose store went away: in its spool, and on the server in one quick try (it may be back), with
    MLflow's retries off: they were spent when the store was lost."""
    run.spool.end(status, message)
    saved = {k: os.environ.get(k) for k in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT")}
    os.environ.update(MLFLOW_HTTP_REQUEST_MAX_RETRIES="0", MLFLOW_HTTP_REQUEST_TIMEOUT="5")
    try:
        run.client.set_tag(run.run_id, "error", message)
        terminate(status)
    except Exception:  # noqa: BLE001  still unreachable: the next command that reaches it ends the run
        with suppress(Exception):
            terminate(status)  # a fluent run is let go of in this process all the same
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


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
