"""`forecast ui`: the MLflow UI on the project's store, in a process group of its own, and the pages to open."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

from mlflow.tracking import MlflowClient

from forecast.tracking import connect, retrying, tracking_uri

JOBS = "MLFLOW_SERVER_ENABLE_JOB_EXECUTION"
UI_VIEW = "workflowType=machine_learning"  # MLflow 3 opens experiments on GenAI traces unless told otherwise


def ui_pages(uri: str | None, base: str) -> dict[str, str]:
    """Each experiment's runs page in the UI at `base`, in model-training mode."""
    connect(uri)
    experiments = retrying(lambda: MlflowClient().search_experiments())
    return {e.name: f"{base}/#/experiments/{e.experiment_id}/runs?{UI_VIEW}"
            for e in sorted(experiments, key=lambda e: e.name) if e.name != "Default" or _has_runs(e.experiment_id)}


def _has_runs(experiment_id: str) -> bool:
    return bool(MlflowClient().search_runs([experiment_id], max_results=1))


def base_url(host: str, port: int) -> str:
    """Where a browser on this machine reaches the UI (a wildcard bind is reached on the loopback address)."""
    return f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"


def serve_ui(uri: str | None, host: str, port: int, open_url: str | None = None) -> int:
    """Run the MLflow UI on the store until interrupted or told to stop, opening `open_url` in the browser once
    it answers; returns its exit code.

    The server and every worker it starts run in a process group of their own, which SIGTERM, SIGINT and SIGHUP
    to this process stop as a whole (SIGKILL after 10 s), so that nothing is left holding the port."""
    uri = tracking_uri(uri)
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", host, "--port", str(port)]
    env = dict(os.environ)
    env.setdefault(JOBS, "false")  # MLflow 3's GenAI job consumers: 7 processes, ~2 GB, nothing a forecast uses
    server = subprocess.Popen(command, start_new_session=True, env=env)
    stopping = []

    def stop(signum, frame):
        stopping.append(signum)
        stop_group(server)

    handled = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
    previous = {sig: signal.signal(sig, stop) for sig in handled}
    try:
        if open_url is not None:
            threading.Thread(target=_open_when_up, args=(open_url,), daemon=True).start()
        code = server.wait()
    finally:
        stop_group(server)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0 if stopping else code


def _open_when_up(url: str, timeout: float = 120.0) -> None:
    """Open `url` in the default browser once its server accepts connections."""
    import socket
    import webbrowser
    from urllib.parse import urlsplit

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection((urlsplit(url).hostname, urlsplit(url).port), timeout=1).close()
            webbrowser.open(url)
            return
        except OSError:
            time.sleep(0.5)


def stop_group(server: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM to the server's process group, SIGKILL to whatever is left of it after `grace` seconds."""
    try:
        os.killpg(server.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            os.killpg(server.pid, 0)
        except ProcessLookupError:
            break
        server.poll()  # reap the leader, so that the group can empty
        time.sleep(0.1)
    else:
        try:
            os.killpg(server.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    server.poll()
