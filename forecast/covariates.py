"""Exogenous covariates: their roles, calendar features, their encoding for the models, and the future values.

Roles, as NeuralForecast and Darts name them: `futr` columns are known in advance for the forecast period
(a temperature forecast, a working day, a planned price); `hist` columns are known only up to the forecast origin;
`static` columns are constant per series (numeric, or categories); `calendar` adds cyclic encodings of the time
stamps' position in the day, week and year at the data's frequency. Numeric covariates are standardised with the
statistics of the training part, categories one-hot encoded over the categories seen in training; all of it is
saved with the model (`CovariateEncoder.to_dict`) so that a saved model encodes new data as it was trained.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
from pandas.tseries.frequencies import to_offset

from forecast.data import ID, TARGET, TIME, Columns, Covariates, Frequency, to_long
from forecast.errors import DataError, ModelError

ROLES = ("futr", "hist", "static", "calendar")  # what a covariate column can be (forecast.data.Covariates)

# -- calendar features

def _calendar_parts(freq: Frequency) -> list[str]:
    """The periodic positions worth encoding at a frequency: those that change from step to step, and the position
    in the year wherever a step is a day or less (GluonTS' time features do the same)."""
    if freq.alias is None:
        raise DataError("--calendar: the time column holds integer steps; calendar features need dates")
    offset = to_offset(freq.alias)
    try:
        step = pd.Timedelta(offset)
    except (ValueError, TypeError):
        step = None
    if step is not None:
        if step < pd.Timedelta(days=1):
            return ["hour_of_day", "day_of_week", "day_of_year"]
        if step == pd.Timedelta(days=1):
            return ["day_of_week", "day_of_year"]
        if step <= pd.Timedelta(days=7):
            return ["week_of_year"]
    name = type(offset).__name__
    if "Week" in name:
        return ["week_of_year"]
    if "Month" in name:
        return ["month_of_year"]
    if "Quarter" in name:
        return ["quarter_of_year"]
    raise DataError(f"--calendar: data at the '{freq.alias}' frequency has no position within a day, week or year to "
                    "encode; leave out --calendar")


def _saved_parts(freq: Frequency) -> list[str]:
    """The parts a model saved before its encoder recorded them reads: those of today less the position in the year
    of sub-daily data (added on 2026-12-06)."""
    parts = _calendar_parts(freq)
    return [p for p in parts if p != "day_of_year"] if "hour_of_day" in parts else parts


def calendar_names(freq: Frequency) -> list[str]:
    return [f"{part}_{fn}" for part in _calendar_parts(freq) for fn in ("sin", "cos")]


def calendar_features(stamps, freq: Frequency, parts=None) -> np.ndarray:
    """(n, K) sine and cosine of each stamp's position in its day, week or year (`calendar_names` says which):
    `parts`, else those of the frequency."""
    ds = pd.DatetimeIndex(stamps)
    columns = []
    for part in parts or _calendar_parts(freq):
        if part == "hour_of_day":
            phase = (ds.hour * 3600 + ds.minute * 60 + ds.second) / 86400.0
        elif part == "day_of_week":
            phase = ds.dayofweek / 7.0
        elif part == "day_of_year":
            phase = (ds.dayofyear - 1) / 365.25
        elif part == "week_of_year":
            phase = (ds.dayofyear - 1) / 365.25
        elif part == "month_of_year":
            phase = (ds.month - 1) / 12.0
        else:
            phase = (ds.quarter - 1) / 4.0
        angle = 2 * np.pi * np.asarray(phase, float)
        columns += [np.sin(angle), np.cos(angle)]
    return np.stack(columns, axis=1) if columns else np.zeros((len(ds), 0))


# -- encoding for the models

def _split(values: np.ndarray, sizes: np.ndarray) -> list[np.ndarray]:
    return np.split(values, np.cumsum(sizes)[:-1]) if len(sizes) else []


@dataclass
class CovariateEncoder:
    """The covariates of a model as matrices: per series the past (n, P) [futr, hist, calendar], the future (h, F)
    [futr, calendar] and the statics (C,), every numeric column standardised with the training part's mean and
    standard deviation."""

    spec: Covariates
    freq: Frequency
    mean: dict = field(default_factory=dict)  # numeric column -> mean over the training part
    std: dict = field(default_factory=dict)
    categories: dict = field(default_factory=dict)  # categorical static column -> its categories, sorted
    calendar: tuple = ()  # the calendar parts encoded (hour_of_day, ...), fixed when fitted

    @classmethod
    def fit(cls, df: pd.DataFrame, spec: Covariates, freq: Frequency) -> CovariateEncoder:
        # a frequency without calendar features is refused now, not at predict time
        enc = cls(spec, freq, calendar=tuple(_calendar_parts(freq)) if spec.calendar else ())
        for name in spec.futr + spec.hist:
            values = df[name].to_numpy(float)
            enc.mean[name], enc.std[name] = float(values.mean()), float(values.std()) or 1.0
        statics = enc.statics_frame(df)
        for name in spec.static:
            column = statics[name]
            numbers = pd.to_numeric(column, errors="coerce")
            if numbers.notna().all():
                enc.mean[name], enc.std[name] = float(numbers.mean()), float(numbers.std(ddof=0)) or 1.0
            else:
                enc.categories[name] = sorted(column.astype(str).unique().tolist())
        return enc

    @property
    def past_dim(self) -> int:
        return len(self.spec.futr) + len(self.spec.hist) + 2 * len(self.calendar)

    @property
    def future_dim(self) -> int:
        return len(self.spec.futr) + 2 * len(self.calendar)

    @property
    def future_index(self) -> np.ndarray:
        """The positions of the future-known columns (futr, calendar) among the past ones (futr, hist, calendar)."""
        futr, hist = len(self.spec.futr), len(self.spec.hist)
        return np.r_[np.arange(futr), np.arange(futr + hist, self.past_dim)].astype(int)

    @property
    def static_dim(self) -> int:
        return sum(len(self.categories[n]) if n in self.categories else 1 for n in self.spec.static)

    def _scaled(self, df: pd.DataFrame, names) -> np.ndarray:
        if not names:
            return np.zeros((len(df), 0))
        values = np.stack([df[n].to_numpy(float) for n in names], axis=1)
        return (values - np.array([self.mean[n] for n in names])) / np.array([self.std[n] for n in names])

    def _calendar(self, df: pd.DataFrame) -> np.ndarray:
        return calendar_features(df[TIME], self.freq, self.calendar) if self.calendar else np.zeros((len(df), 0))

    def past(self, df: pd.DataFrame) -> list[np.ndarray]:
        """Per series of the long frame `df` (sorted by id, time), its (n, P) past covariates."""
        values = np.concatenate([self._scaled(df, self.spec.futr + self.spec.hist), self._calendar(df)], axis=1)
        return _split(values, df.groupby(ID, sort=False).size().to_numpy())

    def future(self, future: pd.DataFrame, h: int) -> list[np.ndarray]:
        """Per series of the long frame of future rows `future` (h per series, in the history's series order), its
        (h, F) future covariates."""
        values = np.concatenate([self._scaled(future, self.spec.futr), self._calendar(future)], axis=1)
        return list(values.reshape(-1, h, values.shape[1])) if len(values) else []

    def statics_frame(self, df: pd.DataFrame) -> pd.DataFrame:
        """One row per series (in frame order) of its static columns, refusing a value that changes in a series."""
        if not self.spec.static:
            return pd.DataFrame(index=pd.Index(df[ID].unique()))
        groups = df.groupby(ID, sort=False)[list(self.spec.static)]
        varying = groups.nunique(dropna=False) > 1
        if varying.to_numpy().any():
            uid, name = varying.stack()[varying.stack()].index[0]
            raise DataError(f"static column '{name}' changes within series '{uid}'; a static covariate has one "
                            "value per series (give it with --futr or --hist instead)")
        return groups.first()

    def static(self, df: pd.DataFrame) -> np.ndarray:
        """(S, C) the statics of the series of `df`, numeric ones standardised, categories one-hot (a category
        not seen in training: all zeros)."""
        frame = self.statics_frame(df)
        parts = []
        for name in self.spec.static:
            if name in self.categories:
                values = frame[name].astype(str).to_numpy()
                parts.append((values[:, None] == np.array(self.categories[name], dtype=object)[None]).astype(float))
            else:
                numbers = pd.to_numeric(frame[name], errors="coerce").to_numpy(float)
                if np.isnan(numbers).any():
                    raise DataError(f"static column '{name}' was numeric in training but holds "
                                    f"'{frame[name][np.isnan(numbers)].iloc[0]}' here; give numbers")
                parts.append(((numbers - self.mean[name]) / self.std[name])[:, None])
        return np.concatenate(parts, axis=1) if parts else np.zeros((len(frame), 0))

    def to_dict(self) -> dict:
        return {"spec": asdict(self.spec), "mean": self.mean, "std": self.std, "categories": self.categories,
                "calendar": list(self.calendar)}

    @classmethod
    def from_dict(cls, doc: dict, freq: Frequency) -> CovariateEncoder:
        spec = Covariates(**{k: tuple(v) if isinstance(v, list) else v for k, v in doc["spec"].items()})
        calendar = doc.get("calendar", _saved_parts(freq) if spec.calendar else ())
        return cls(spec, freq, dict(doc.get("mean", {})), dict(doc.get("std", {})), dict(doc.get("categories", {})),
                   tuple(calendar))


# -- the future values

def next_rows(full: pd.DataFrame, fit_part: pd.DataFrame, h: int) -> pd.DataFrame:
    """The `h` rows of `full` that follow each series' end in `fit_part` (a backtest fold's future covariates)."""
    fitted = fit_part.groupby(ID, sort=False).size()
    position = full.groupby(ID, sort=False).cumcount().to_numpy()
    start = full[ID].map(fitted).to_numpy(float)
    keep = (position >= start) & (position < start + h)
    return full[keep].reset_index(drop=True)


def read_future(raw: pd.DataFrame, columns: Columns, spec: Covariates, source) -> pd.DataFrame:
    """The future covariates in a file or request `raw` as a long frame (unique_id, ds, the futr columns), read with
    the history's column names and date parsing."""
    wanted = ((columns.id_col,) if columns.id_col else ()) + (columns.time_col,) + spec.futr
    missing = [c for c in wanted if c not in raw.columns]
    if missing:
        raise DataError(f"{source}: no column '{missing[0]}' (columns: {', '.join(map(str, raw.columns))}); the "
                        f"future covariates need the columns {', '.join(wanted)}")
    if columns.target_col not in raw.columns:
        raw = raw.assign(**{columns.target_col: np.nan})
    return to_long(raw, columns, source, numeric=spec.futr).drop(columns=["_row", TARGET])


def check_future(future: pd.DataFrame | None, history: pd.DataFrame, spec: Covariates, freq: Frequency, h: int,
                 source) -> pd.DataFrame:
    """The future rows of every series of `history`: the `h` stamps after its end, with the `futr` columns from
    `future` (a long frame: unique_id, ds and those columns). A missing row or value is refused with one line
    naming the series, the column and the first stamp missing."""
    last = history.groupby(ID, sort=False)[TIME].last()
    ids = last.index.to_numpy()
    stamps = [freq.future(stamp, h) for stamp in last.to_numpy()]
    frame = pd.DataFrame({ID: np.repeat(ids, h).astype(object),
                          TIME: stamps[0].append(stamps[1:]) if stamps else []})
    if not spec.futr:
        return frame
    if future is None:
        raise DataError(f"the model reads future covariates ({', '.join(spec.futr)}): give their values for the "
                        f"{h} steps ahead with --future FILE (the id and time columns, {', '.join(spec.futr)})")
    missing = [n for n in spec.futr if n not in future.columns]
    if missing:
        raise DataError(f"{source}: no column '{missing[0]}' among the future covariates (columns: "
                        f"{', '.join(map(str, future.columns))}); give every --futr column")
    given = future[[ID, TIME, *spec.futr]].drop_duplicates([ID, TIME], keep="last")
    merged = frame.merge(given, on=[ID, TIME], how="left")
    for name in spec.futr:
        hole = merged[name].isna().to_numpy()
        if hole.any():
            i = int(np.flatnonzero(hole)[0])
            count = int(hole.reshape(-1, h).any(axis=1).sum())
            raise DataError(f"{source}: series '{merged[ID].iloc[i]}' has no value of '{name}' at "
                            f"{merged[TIME].iloc[i]} (and {count - 1} more series lack some); give the {h} future "
                            "rows of every series")
    return merged


def refuse(model: str, spec: Covariates, allowed: tuple[str, ...] = (), what: str = "model") -> None:
    """Refuse the roles a model (`what`: or a combination's member) cannot use, in one line."""
    used = [role for role in ROLES if getattr(spec, role)]
    wrong = [role for role in used if role not in allowed]
    if wrong:
        roles = ", ".join(f"--{r}" for r in wrong)
        takes = f"it takes {', '.join('--' + r for r in allowed)}" if allowed else "it takes no covariates"
        raise ModelError(f"{what} '{model}' cannot use {roles}: {takes}; the nets (rnn, lstm, gru, transformer) "
                         "take every role")
