"""How the `forecast` command ends on an error: one line on stderr and exit code 1 for what users can act on (bad
input, the store, a full disk), 130 after Ctrl-C, saying what became of the run."""

from __future__ import annotations

import errno

import click

from forecast.errors import ForecastError, TrainingInterrupted


class Group(click.Group):
    """Turns every ForecastError into one line on stderr and exit code 1, in one place."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except ForecastError as exc:
            raise click.ClickException(str(exc)) from None
        except Exception as exc:
            if type(exc).__module__.startswith("mlflow."):  # the store itself failed: one line, not a traceback
                raise click.ClickException(store_message(exc)) from None
            if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise click.ClickException(disk_full_message(exc)) from None
            raise
        except TrainingInterrupted as exc:
            kept = (f"; the best weights (epoch {exc.best_epoch}) are its model: runs:/{exc.run_id}/model"
                    if exc.model_logged else "; no epoch had finished, so no model was logged")
            click.echo(f"Interrupted at epoch {exc.epoch}: run {exc.run_id} ended KILLED{kept}", err=True)
            ctx.exit(130)
        except KeyboardInterrupt:
            click.echo("Interrupted; any run in progress ended KILLED", err=True)
            ctx.exit(130)


def store_message(exc: Exception) -> str:
    """One line for an error of the MLflow store: an unreachable tracking server named, with the reason."""
    from forecast.tracking import unreachable

    where = unreachable(exc)
    if where:
        return (f"the tracking server {where[0]} cannot be reached ({where[1]}) after MLflow's retries "
                "(MLFLOW_HTTP_REQUEST_MAX_RETRIES, MLFLOW_HTTP_REQUEST_TIMEOUT); start it, or check --tracking-uri or "
                "MLFLOW_TRACKING_URI")
    text = str(exc)
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return f"MLflow store: {first[:500]}"


def disk_full_message(exc: OSError) -> str:
    """One line for a full disk (or quota): the file that could not be written, the run it ended."""
    where = exc.filename2 or exc.filename or getattr(exc, "forecast_artifacts", None)
    run = getattr(exc, "forecast_run_id", None)
    ended = f"; run {run} ended FAILED without a model (a model half-written is deleted and never loads)" if run else ""
    return (f"no space left on the device writing {where or 'a file'}: free some space there (or point TMPDIR or "
            f"the tracking store at another disk) and run the command again{ended}")
