"""The local engine: a per-series model fitted in several processes of this machine, where that pays. `--threads
N` (or FORECAST_THREADS) gives the cores; with N > 1 and at least the model's `processes_from` series
(forecast.models.per_series.PerSeries: AR from 1,000; the naive models never, their fit being cheaper than handing
the parts back), the series are cut into N buckets (forecast.models.per_series.Buckets, as on Spark), each fitted
in a forked process, and the parts merged into the model that one process fits. Where fork is not available
(Windows, macOS' default) everything runs in this process."""

from __future__ import annotations

import multiprocessing
import os

_JOB = None  # the buckets of the fit under way, inherited by the forked processes
_CORES: int | None = None  # set by --threads


def use_cores(n: int | None) -> None:
    """The cores this process may use from now on (the commands' --threads); None: FORECAST_THREADS decides."""
    global _CORES
    _CORES = None if n is None else max(1, int(n))


def cores() -> int:
    """The cores the command may use: --threads, else FORECAST_THREADS, else 1."""
    if _CORES is not None:
        return _CORES
    try:
        return max(1, int(os.environ.get("FORECAST_THREADS", 1)))
    except ValueError:
        return 1


def fitter(model_class, n_series: int, processes: int | None = None):
    """The function that fits a model of `model_class` to `n_series` series in `processes` [default: cores()]
    processes, or None where one process is the better choice: one core, a model that is not fitted series by
    series, fewer series than its `processes_from`, or no fork."""
    processes = processes or cores()
    least = getattr(model_class, "processes_from", None)
    if (processes < 2 or least is None or n_series < least
            or "fork" not in multiprocessing.get_all_start_methods()):
        return None

    def fit_here(forecaster, df, freq, h):
        return fit(forecaster, df, freq, h, processes)

    fit_here.processes = processes  # logged with the run
    return fit_here


def fit(forecaster, df, freq, h: int, processes: int):
    """The unfitted per-series model `forecaster` fitted to forecast `h` steps of every series of the long frame
    `df` (no covariates), its buckets fitted in `processes` forked processes (which inherit the data instead of
    receiving it pickled, and hand back their parts pickled); equal to the fit in one process."""
    from forecast.models.per_series import Buckets

    global _JOB
    _JOB = Buckets.of(forecaster, df, freq, h, processes)
    try:
        with multiprocessing.get_context("fork").Pool(min(processes, len(_JOB.payloads))) as pool:
            parts = pool.map(_fit_bucket, range(len(_JOB.payloads)), chunksize=1)
    finally:
        _JOB = None
    return forecaster.merge(parts, df, freq, h)


def _fit_bucket(i: int) -> dict:
    """Bucket `i` of the job, in a forked process: one BLAS thread (its pool was started before the fork with
    --threads threads, and setting OMP_NUM_THREADS now would change nothing; threadpoolctl comes with
    scikit-learn)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        return _JOB.fit(_JOB.payloads[i])
