"""Models fitted series by series (AR, the naive baselines) fitted in parts: each part, a group of the series
fitted apart (on a Spark worker, forecast.spark.fit, or in a process of this machine, forecast.parallel.fit: both
cut the series with `Buckets`), hands back its state as plain data (pickled by Spark), and
the parts merge into the model fitted on all the series, equal to one fitted in one process. The per-series state
is joined; what all the series share, the calibration of the intervals and the validation MASE, is computed again
from the parts' raw residuals and errors, the parts having calibrated on the plan of all the series
(forecast.intervals.calibration_plan)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import ClassVar

import numpy as np

from forecast.intervals import Calibration, calibration_plan


class PerSeries:
    """Mixin of a Forecaster fitted series by series. Its fit keeps `residuals_` (the normalised holdout errors it
    calibrated on, or None) and `validation_errors_` (the sum and count of the absolute scaled errors behind
    `validation_mase_`); `series_state` names the keys of its `_state` that hold a value per series id."""

    series_state: ClassVar[tuple[str, ...]] = ()
    processes_from: ClassVar[int | None] = None  # the fewest series from which fitting in processes pays; None: never

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


@dataclass
class Buckets:
    """A per-series model's fit cut into buckets of series, each fitted apart (on a Spark worker or in a process of
    this machine) by `fit(payload)`: the series, ordered by length, cut into groups of as many points (long series cost
    more), each as ids, lengths and the values one after the other; every bucket calibrates on the `plan` of all
    the series. (Series of one length are fitted as one matrix, so buckets by length keep those matrices as large
    as in one process; hashed buckets cut them into many small ones, which cost 1.4 times as much.)"""

    name: str
    config: dict
    frequency: dict
    h: int
    plan: tuple | None
    payloads: list  # (ids, lengths, values) per bucket

    @classmethod
    def of(cls, forecaster, df, freq, h: int, n: int) -> Buckets:
        """The series of the long frame `df` (unique_id, ds, y) in at most `n` buckets, for `forecaster`."""
        from forecast.data import ID, TARGET

        sizes = df.groupby(ID, sort=False).size()
        lengths, ids = sizes.to_numpy(), sizes.index.to_numpy(dtype=object)
        starts = np.cumsum(lengths) - lengths
        values = df[TARGET].to_numpy(float)
        n = max(1, min(int(n), len(ids)))
        order = np.argsort(lengths, kind="stable")
        points = np.cumsum(lengths[order])
        payloads = []
        for picked in np.split(order, np.searchsorted(points, points[-1] * np.arange(1, n) / n)):
            if len(picked):
                rows = np.concatenate([np.arange(starts[i], starts[i] + lengths[i]) for i in picked])
                payloads.append((ids[picked].tolist(), lengths[picked], values[rows]))
        return cls(forecaster.name, asdict(forecaster.config), freq.to_dict(), int(h), calibration_plan(lengths, h),
                   payloads)

    def fit(self, payload) -> dict:
        """One of the `payloads` fitted: its `part()`."""
        import pandas as pd

        from forecast import registry
        from forecast.data import ID, TARGET, TIME, Frequency

        ids, lengths, values = payload
        model = registry.create(self.name, **self.config)
        model.calibration_plan_ = self.plan
        part = pd.DataFrame({ID: np.repeat(np.array(ids, dtype=object), lengths),
                             TIME: np.concatenate([np.arange(k) for k in lengths]), TARGET: values})
        model.fit(part, Frequency(**self.frequency), self.h)
        return model.part()
