"""The MLflow store: its URI (SQLite by default, never the plain file store), the connection, retries while other
processes write it, a tracking server that cannot be reached, experiments."""

from __future__ import annotations

import fcntl
import os
import re
import signal
import sqlite3
import threading
import time
from contextlib import closing, contextmanager
from pathlib import Path

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from sqlalchemy.exc import IntegrityError, OperationalError

from forecast.errors import TrackingError

DEFAULT_URI = "sqlite:///mlruns/mlflow.db"


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
                _migrated(uri, db)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
        _READY.add(uri)
    return uri


UNUSABLE = ("unable to open database", "readonly database", "not a database", "disk I/O error", "malformed")


MIGRATION_WAIT_S = 120.0  # the longest a new store waits for another program's migration
QUIET_S = 1.0  # a store file unchanged this long is being migrated by no one


def _migrated(uri: str, db: Path) -> None:
    """Open the store, MLflow creating or migrating its schema as needed. Another program doing that at the same
    time without our lock (`mlflow ui`, a script of the user's) makes MLflow's migration fail in many ways, from
    'table already exists' to alembic's version checks and dropped indexes. After such a failure: wait until the
    file has been still for a moment (the other program is done, or has failed), drop the temporary table copies
    that a migration step failing half way leaves behind (`_alembic_tmp_<name>`: SQLite's migrations are not
    transactional, and every later try would fail on them), and try again. A try that fails on a still file
    without changing it is no race: its error is raised, as is one saying that the file cannot be used at all."""
    deadline = time.monotonic() + MIGRATION_WAIT_S
    still = False
    while True:
        before = _fingerprint(db)
        try:
            with _ctrl_c_after():
                MlflowClient(uri).search_experiments(max_results=1)
            return
        except Exception as exc:
            if any(sign in str(exc) for sign in UNUSABLE) or time.monotonic() > deadline or \
                    (still and _fingerprint(db) == before):
                raise
        still = _still(db, deadline)
        if still:
            _drop_leftovers(db)


def _fingerprint(db: Path) -> tuple:
    """What changes whenever anyone writes the SQLite store `db`: its file's and its journals' sizes and times."""
    def stat(path: Path):
        try:
            info = path.stat()
        except FileNotFoundError:
            return None
        return info.st_size, info.st_mtime_ns
    return tuple(stat(db.with_name(db.name + suffix)) for suffix in ("", "-journal", "-wal"))


def _still(db: Path, deadline: float) -> bool:
    """Wait until the store `db` has not changed for QUIET_S seconds (True), or until the deadline (False)."""
    last, since = _fingerprint(db), time.monotonic()
    while time.monotonic() - since < QUIET_S:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
        now = _fingerprint(db)
        if now != last:
            last, since = now, time.monotonic()
    return True


def _drop_leftovers(db: Path) -> None:
    """Drop the `_alembic_tmp_<name>` tables of migration steps that failed half way."""
    with closing(sqlite3.connect(db, timeout=30)) as connection, connection:
        names = [row[0] for row in connection.execute(
            r"SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE '\_alembic\_tmp\_%' ESCAPE '\'")]
        for name in names:
            connection.execute(f'DROP TABLE IF EXISTS "{name}"')


@contextmanager
def _ctrl_c_after():
    """Hold a Ctrl-C (SIGINT) until the block is done, then raise it: a store call is never cut in half, which
    could leave this process's connection holding SQLite's write lock for every write after it."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        yield  # (a process started with Ctrl-C ignored, as `nohup cmd &` is, keeps ignoring it)
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


def contended(exc: Exception) -> bool:
    """Whether `exc` is another process writing the same store: SQLite's 'database is locked', or a row both
    created at once (the same dataset logged by concurrent runs: the store checks, then inserts; the loser finds the
    row on its next try)."""
    return isinstance(exc, (MlflowException, OperationalError, IntegrityError)) and \
        any(sign in str(exc) for sign in CONTENDED)


def retrying(call, attempts: int = 8, passing=contended):
    """`call()`, tried again with growing pauses while the error it raises is `passing` (by default: another
    process writing the same store gets in the way); a Ctrl-C waits until the call is done."""
    with _ctrl_c_after():
        for attempt in range(attempts):
            try:
                return call()
            except Exception as exc:
                if not passing(exc) or attempt == attempts - 1:
                    raise
                time.sleep(0.1 * 2 ** attempt)


UNREACHABLE = re.compile(r"API request to (\S+?)/api/\S* failed with exception")  # a transport failure, not a reply
REASONS = (r"\[Errno -?\d+\] [^\"')]+", r"\w+Error\(\d+, '[^']+'\)", r"RemoteDisconnected\('[^']+'\)",
           r"too many \d+ error responses", r"Read timed out")


def unreachable(exc: BaseException) -> tuple[str, str] | None:
    """(the server's URL, why) where `exc` says that the tracking server could not be reached after MLflow's own
    retries (MLFLOW_HTTP_REQUEST_MAX_RETRIES, about four minutes by default); None for any other error."""
    found = UNREACHABLE.search(str(exc)) if isinstance(exc, MlflowException) else None
    if found is None:
        return None
    why = next((m.group(0) for m in (re.search(p, str(exc)) for p in REASONS) if m), "the connection failed")
    return found.group(1), why.strip()


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
