"""Whether the process behind a run is alive: who runs it (host, process id and its start time), a heartbeat while
it runs, and the verdict on a run still marked RUNNING. No MLflow here: forecast.tracking writes the tags and
ends the runs found dead.

A run is dead when it was started on this host and its process is gone (or its process id now belongs to another
process: the start times differ), or, from any host, when its heartbeat is older than HEARTBEAT_TIMEOUT seconds.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from datetime import datetime, timezone

HOST, PID, PID_START, HEARTBEAT = "forecast.host", "forecast.pid", "forecast.pid_start", "forecast.heartbeat"
ORPHANED = "forecast.orphaned"  # why and when a run found dead was ended FAILED


def interval() -> float:
    """Seconds between heartbeats (FORECAST_HEARTBEAT_SECONDS, default 30)."""
    return float(os.environ.get("FORECAST_HEARTBEAT_SECONDS", 30))


def timeout() -> float:
    """Seconds without a heartbeat after which a run from another host is taken for dead
    (FORECAST_HEARTBEAT_TIMEOUT, default 600: twenty missed heartbeats, longer than a store's bad minute)."""
    return float(os.environ.get("FORECAST_HEARTBEAT_TIMEOUT", 600))


def process_start(pid: int) -> str | None:
    """The start time of process `pid` in clock ticks since boot (/proc/PID/stat field 22); None when there is
    no such process."""
    try:
        with open(f"/proc/{int(pid)}/stat") as fh:
            stat = fh.read()
    except (OSError, ValueError):
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # the fields after the command name, which may hold spaces


def identity() -> dict[str, str]:
    """The tags that say which process runs a run, with its first heartbeat."""
    pid = os.getpid()
    return {HOST: socket.gethostname(), PID: str(pid), PID_START: process_start(pid) or "",
            HEARTBEAT: f"{time.time():.3f}"}


def stamp(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def last_heartbeat(tags: dict) -> float:
    """The time of a run's last heartbeat in seconds since the epoch (NaN when it has none)."""
    try:
        return float(tags.get(HEARTBEAT, "nan"))
    except ValueError:
        return float("nan")


def dead(tags: dict, now: float | None = None) -> str | None:
    """Why the process of a RUNNING run with these tags is dead, or None when it may be alive (or the run was not
    started by forecast: no process tags)."""
    if PID not in tags:
        return None
    now = time.time() if now is None else now
    host, pid = tags.get(HOST, "?"), tags[PID]
    if host == socket.gethostname():
        started = process_start(int(pid)) if pid.isdigit() else None
        if started is None:
            return f"its process {pid} on {host} is gone"
        if tags.get(PID_START) and started != tags[PID_START]:
            return f"its process {pid} on {host} is gone (the id now belongs to another process)"
        return None
    last = last_heartbeat(tags)
    if not last <= now - timeout():
        return None
    return f"no heartbeat from its process {pid} on {host} since {stamp(last)} (over {timeout():g} s)"


class Heartbeat:
    """Calls `beat()` every `interval()` seconds in a daemon thread until stopped; a failed beat (a busy or
    unreachable store) is skipped, not raised."""

    def __init__(self, beat):
        self.beat, self.stopped = beat, threading.Event()
        self.thread = threading.Thread(target=self._run, name="forecast-heartbeat", daemon=True)

    def _run(self):
        while not self.stopped.wait(interval()):
            try:
                self.beat()
            except Exception:  # noqa: BLE001  the next beat may get through
                pass

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopped.set()
        self.thread.join(timeout=5)
