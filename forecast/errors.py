"""Errors users can act on: each message is one line naming the file, column, row or series and what to do."""


class ForecastError(Exception):
    """Base of every error the library raises on purpose; the CLI turns it into one line and exit code 1."""


class DataError(ForecastError):
    """The CSV or the frame built from it cannot be used as given."""


class ModelError(ForecastError):
    """An unknown model, bad hyperparameters, or a saved model that cannot be loaded."""


class TrackingError(ForecastError):
    """The MLflow store or a model URI cannot be reached or read."""


class TrainingDiverged(ModelError):
    """The loss or the gradient became NaN or infinite; the net keeps the best weights seen before."""

    def __init__(self, epoch: int, loss: float, grad_norm: float):
        self.epoch = epoch
        self.best_epoch = 0  # set by the training loop: the epoch whose weights the net holds (0: none)
        super().__init__(f"training diverged at epoch {epoch} (loss {loss:.4g}, gradient norm {grad_norm:.4g}); "
                         "set --clip (e.g. 1) or a smaller --lr")


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C during training; the net keeps the best weights seen before (best_epoch, 0: none)."""

    def __init__(self, epoch: int, best_epoch: int):
        super().__init__(f"interrupted at epoch {epoch}")
        self.epoch, self.best_epoch = epoch, best_epoch
        self.run_id: str | None = None
        self.model_logged = False
