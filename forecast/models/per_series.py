"""Models fitted series by series (AR, the naive baselines) fitted in parts: each part, a group of the series
fitted apart (on a Spark worker: forecast.spark.fit), hands back its state as plain data (pickled by Spark), and
the parts merge into the model fitted on all the series, equal to one fitted in one process. The per-series state
is joined; what all the series share, the calibration of the intervals and the validation MASE, is computed again
from the parts' raw residuals and errors, the parts having calibrated on the plan of all the series
(forecast.intervals.calibration_plan)."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from forecast.intervals import Calibration


class PerSeries:
    """Mixin of a Forecaster fitted series by series. Its fit keeps `residuals_` (the normalised holdout errors it
    calibrated on, or None) and `validation_errors_` (the sum and count of the absolute scaled errors behind
    `validation_mase_`); `series_state` names the keys of its `_state` that hold a value per series id."""

    series_state: ClassVar[tuple[str, ...]] = ()

    def _keep_validation(self, scaled: np.ndarray) -> None:
        errors = np.abs(np.asarray(scaled, float))
        finite = errors[np.isfinite(errors)]
        self.validation_errors_ = (float(finite.sum()), int(finite.size))
        self.validation_mase_ = float(finite.mean()) if finite.size else float("nan")

    def part(self) -> dict:
        """This fit, of a part of the series, as plain data: the per-series state (lists and numbers), the raw
        residuals as an array and the validation sums."""
        residuals, state = getattr(self, "residuals_", None), self._state(None)
        return {"state": {key: state[key] for key in self.series_state},
                "residuals": None if residuals is None else np.asarray(residuals, float),
                "validation": list(getattr(self, "validation_errors_", (0.0, 0)))}

    def merge(self, parts: list[dict], df, freq, h: int):
        """This unfitted model, fitted: the `parts` (`part()` of fits of groups of the series of the long frame
        `df`, together all of them) joined."""
        self.freq_, self.h_, self.encoder_, self.covs_, self.on_epoch_ = freq, int(h), None, None, None
        state = {key: {uid: value for p in parts for uid, value in p["state"][key].items()}
                 for key in self.series_state}
        blocks = [np.asarray(p["residuals"], dtype=float) for p in parts
                  if p["residuals"] is not None and np.size(p["residuals"])]
        residuals = np.concatenate(blocks) if blocks else None
        calibration = (Calibration.from_residuals(residuals, "validation", growth=False)
                       if residuals is not None and np.isfinite(residuals).any() else None)
        self._restore(None, {**state, "calibration": calibration.to_dict() if calibration is not None else None})
        total, count = (sum(p["validation"][i] for p in parts) for i in (0, 1))
        self.validation_errors_ = (total, count)
        self.validation_mase_ = total / count if count else float("nan")
        self.residuals_ = residuals
        self.history_ = df
        return self
