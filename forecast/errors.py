"""Errors users can act on: each message is one line naming the file, column, row or series and what to do."""


class ForecastError(Exception):
    """Base of every error the library raises on purpose; the CLI turns it into one line and exit code 1."""


class DataError(ForecastError):
    """The CSV or the frame built from it cannot be used as given."""


class ModelError(ForecastError):
    """An unknown model, bad hyperparameters, or a saved model that cannot be loaded."""


class TrackingError(ForecastError):
    """The MLflow store or a model URI cannot be reached or read."""
