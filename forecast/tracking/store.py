"""The MLflow store: its URI (SQLite by default, never the plain file store), the connection, retries while other
processes write it, a tracking server that cannot be reached, experiments."""

from __future__ import annotations

import fcntl
import glob
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
    """Point MLflow at the store; a new SQLite store is built aside and linked in whole, under a file lock, so
    that processes starting together never race through its schema migrations (`_migrated`)."""
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


MIGRATION_WAIT_S = 120.0  # the longest a new store waits for another program to finish creating it
STALE_S = 5.0  # a store short of MLflow's schema and unchanged this long is being created by no one


def _migrated(uri: str, db: Path) -> None:
    """Open the store, creating it first where it does not exist. MLflow creates a SQLite store's schema step by
    step, in place and not in one transaction, so two programs doing it at once (ours and `mlflow ui` or a script
    of the user's, which take no lock of ours) fail each other in many ways, from 'table already exists' to a
    'duplicate column' that no retry gets past. So a new store is created aside, complete, and then put in place
    only if no one else has made it meanwhile; a store someone else is still creating is waited for, never
    migrated alongside them."""
    if not db.exists():
        _create_aside(db)
    _wait_for_schema(db)
    with _ctrl_c_after():
        retrying(lambda: MlflowClient(uri).search_experiments(max_results=1))


def _create_aside(db: Path) -> None:
    """Create the store `db` in a file of its own beside it (MLflow's whole schema and its Default experiment, as
    MLflow makes them) and link it in as `db` unless that exists by then, made by another program."""
    from mlflow.store.tracking import DEFAULT_LOCAL_FILE_AND_ARTIFACT_PATH
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    for left in db.parent.glob(f".{glob.escape(db.name)}.*.new*"):  # of a process killed while building one
        left.unlink(missing_ok=True)  # (we hold the lock under which stores are built)
    aside = db.with_name(f".{db.name}.{os.getpid()}.new")
    uri = f"sqlite:///{aside}"
    try:
        with _ctrl_c_after():
            SqlAlchemyStore(uri, DEFAULT_LOCAL_FILE_AND_ARTIFACT_PATH)
            engine = getattr(SqlAlchemyStore, "_engine_map", {}).pop(uri, None)  # (MLflow keeps the engines it made)
            if engine is not None:
                engine.dispose()
        try:
            os.link(aside, db)  # atomic: fails where `db` exists
        except FileExistsError:
            pass  # another program made it first: waited for by the caller
        except OSError:
            pass  # no hard links on this file system: MLflow creates the store in place, as it always has
    finally:
        for path in (aside, aside.with_name(aside.name + "-journal")):
            path.unlink(missing_ok=True)


def _wait_for_schema(db: Path) -> None:
    """Return once the store `db` has MLflow's latest schema, or once it has stayed short of it and unchanged for
    STALE_S seconds (a store of an older MLflow, or one whose creator died: MLflow's own check then speaks), or
    after MIGRATION_WAIT_S seconds. A file that is no SQLite database is left to MLflow's error at once."""
    head = _latest_schema()
    deadline = time.monotonic() + MIGRATION_WAIT_S
    last, since = _fingerprint(db), time.monotonic()
    while db.exists():
        try:
            if _schema(db) == head:
                return
        except sqlite3.DatabaseError:
            return
        now = time.monotonic()
        if now - since >= STALE_S or now > deadline:
            return
        time.sleep(0.05)
        current = _fingerprint(db)
        if current != last:
            last, since = current, time.monotonic()


def _latest_schema() -> str:
    """The alembic revision of the schema that this MLflow writes."""
    from mlflow.store.db.utils import _get_latest_schema_revision  # (MLflow checks every store against it)

    return _get_latest_schema_revision()


def _schema(db: Path) -> str | None:
    """The alembic revision that the SQLite store `db` records, read without writing; None while it has none (or
    its writer holds it locked). Raises sqlite3.DatabaseError where the file is no SQLite database."""
    try:
        with closing(sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True, timeout=1)) as connection:
            row = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.OperationalError:
        return None
    return row[0] if row else None


def _fingerprint(db: Path) -> tuple:
    """What changes whenever anyone writes the SQLite store `db`: its file's and its journals' sizes and times."""
    def stat(path: Path):
        try:
            info = path.stat()
        except FileNotFoundError:
            return None
        return info.st_size, info.st_mtime_ns
    return tuple(stat(db.with_name(db.name + suffix)) for suffix in ("", "-journal", "-wal"))


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
