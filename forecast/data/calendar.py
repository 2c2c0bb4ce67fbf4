"""Frequencies and the regular time grid: inference, season lengths, duplicates, gaps and fills."""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from pandas.tseries import offsets as po
from pandas.tseries.frequencies import to_offset

from forecast.data.columns import ID, TARGET, TIME, _row
from forecast.errors import DataError

_MONTHLY = (po.MonthBegin, po.MonthEnd, po.BusinessMonthBegin, po.BusinessMonthEnd)
_QUARTERLY = (po.QuarterBegin, po.QuarterEnd, po.BQuarterBegin, po.BQuarterEnd)
_YEARLY = (po.YearBegin, po.YearEnd, po.BYearBegin, po.BYearEnd)


@dataclass(frozen=True)
class Frequency:
    """How a series steps through time: a pandas alias (`MS`, `30min`, ...) or integer steps when alias is None."""

    alias: str | None
    step: int
    season: int

    def future(self, last, h: int) -> pd.Index:
        """The `h` time stamps that follow `last`."""
        if self.alias is None:
            return pd.Index(int(last) + self.step * np.arange(1, h + 1))
        return pd.date_range(start=last, periods=h + 1, freq=self.alias)[1:]

    def to_dict(self) -> dict:
        return asdict(self)


def _months_per_step(offset) -> int | None:
    """Months in one step of a month, quarter or year based offset; None for any other offset."""
    for kinds, months in ((_MONTHLY, 1), (_QUARTERLY, 3), (_YEARLY, 12)):
        if isinstance(offset, kinds):
            return months * offset.n
    return None


def _fixed_step(offset) -> pd.Timedelta | None:
    try:
        return pd.Timedelta(offset)
    except (ValueError, TypeError):
        return None


def _step_index(df: pd.DataFrame, freq: Frequency) -> np.ndarray:
    """Each row's position in time counted in steps of `freq` (a fraction means off the grid)."""
    ds = df[TIME]
    if freq.alias is None:
        return (ds.to_numpy(np.int64) - ds.min()) / freq.step
    offset = to_offset(freq.alias)
    months = _months_per_step(offset)
    if months:
        return (ds.dt.year.to_numpy() * 12 + ds.dt.month.to_numpy() - 1) / months
    step = _fixed_step(offset)
    if step is not None:
        stamps = ds.dt.tz_localize(None) if ds.dt.tz is not None else ds
        nanos = stamps.to_numpy("datetime64[ns]").astype(np.int64)
        return (nanos - nanos.min()) / step.value
    # calendar frequencies without a fixed length (business days, ...): position on a regular grid
    grid = pd.date_range(ds.min(), ds.max(), freq=freq.alias)
    pos = grid.get_indexer(ds)
    return np.where(pos < 0, np.nan, pos).astype(float)


def season_of(alias: str | None) -> int:
    """Season length of a frequency: 12 monthly, 4 quarterly, 1 yearly, 52 weekly, 7 daily, 24 hourly, ..."""
    if alias is None:
        return 1
    offset = to_offset(alias)
    months = _months_per_step(offset)
    if months:
        return max(1, 12 // months) if 12 % months == 0 else 1
    if isinstance(offset, po.Week) and offset.n == 1:
        return 52
    if isinstance(offset, po.BusinessDay) and offset.n == 1:
        return 5
    step = _fixed_step(offset)
    if step is None or step <= pd.Timedelta(0):
        return 1
    day, hour = pd.Timedelta("1D"), pd.Timedelta("1h")
    if step == day:
        return 7
    if step < day and day % step == pd.Timedelta(0):
        per_day = int(day / step)
        if per_day <= 96:
            return per_day
        if step < hour and hour % step == pd.Timedelta(0):
            return int(hour / step)
    return 1


def _infer_alias(stamps: pd.DatetimeIndex) -> str | None:
    """pandas' inferred alias of the whole index, else the most common one over short stretches (so one gap
    is reported as a gap rather than as an unknown frequency)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        found = pd.infer_freq(stamps) if len(stamps) >= 3 else None
        if found is not None:
            return found
        starts = range(0, max(len(stamps) - 2, 0), max(1, len(stamps) // 200))
        votes = [pd.infer_freq(stamps[i:i + 3]) for i in starts]
    votes = [to_offset(v).freqstr for v in votes if v is not None]
    return max(set(votes), key=votes.count) if votes else None


def infer_frequency(df: pd.DataFrame, path, alias: str | None = None) -> Frequency:
    """Infer the frequency from the longest series, or take `alias` (--freq)."""
    lengths = df.groupby(ID, sort=False).size()
    longest = df.loc[df[ID] == lengths.idxmax(), TIME]
    if pd.api.types.is_integer_dtype(df[TIME]):
        diffs = np.diff(longest.to_numpy(np.int64))
        positive = diffs[diffs > 0]
        if alias is not None and not str(alias).isdigit():
            raise DataError(f"{path}: the time column holds integer steps, not dates, so the frequency "
                            f"'{alias}' does not apply; give dates, or an integer step with --freq")
        step = int(alias) if alias is not None else (int(positive.min()) if positive.size else 1)
        return Frequency(alias=None, step=step, season=1)
    if alias is None:
        if len(longest) < 3:
            raise DataError(f"{path}: too few points to infer the frequency; give it with --freq (e.g. MS, D, h)")
        found = _infer_alias(pd.DatetimeIndex(longest.drop_duplicates()))
        if found is None:
            raise DataError(f"{path}: cannot infer a regular frequency from series '{lengths.idxmax()}'; "
                            "give it with --freq (e.g. MS, D, h, 30min)")
        alias = to_offset(found).freqstr
    else:
        try:
            alias = to_offset(alias).freqstr
        except ValueError:
            raise DataError(f"--freq {alias}: not a pandas frequency alias (e.g. MS, QS, YS, W, D, h, 30min)") from None
    return Frequency(alias=alias, step=1, season=season_of(alias))


FILLS = ("error", "interpolate", "ffill", "zero")
AGGREGATES = ("mean", "sum", "last")


def regularize(df: pd.DataFrame, freq: Frequency, path, fill: str = "error", aggregate: str | None = None,
               inferred: bool = True) -> pd.DataFrame:
    """Each series on its regular time grid: duplicates refused or aggregated, stamps off the grid refused,
    series at a coarser frequency than the inferred one refused, leading and trailing missing values dropped,
    gaps and missing values refused or filled (`fill`)."""
    if fill not in FILLS:
        raise DataError(f"--fill {fill}: choose one of {', '.join(FILLS)}")
    describe = freq.alias or f"integer steps of {freq.step}"
    pos = _step_index(df, freq)
    same = np.r_[False, df[ID].to_numpy()[1:] == df[ID].to_numpy()[:-1]]
    step = np.diff(pos, prepend=np.nan)
    dup = same & (step == 0)
    if dup.any():
        if aggregate is None:
            i = int(np.flatnonzero(dup)[0])
            raise DataError(f"{path}: row {_row(df['_row'].iloc[i])}: duplicate time stamp {df[TIME].iloc[i]} in "
                            f"series '{df[ID].iloc[i]}'; remove the duplicates or pass --aggregate mean, sum or last")
        if aggregate not in AGGREGATES:
            raise DataError(f"--aggregate {aggregate}: choose one of {', '.join(AGGREGATES)}")
        extra = {c: aggregate if pd.api.types.is_numeric_dtype(df[c]) else "first" for c in _covariates(df)}
        df = df.groupby([ID, TIME], sort=False, as_index=False).agg({TARGET: aggregate, **extra, "_row": "first"})
        return regularize(df, freq, path, fill, inferred=inferred)
    off = np.flatnonzero(np.abs(pos - np.round(pos)) > 1e-9)
    if len(off):
        i = int(off[0])
        raise DataError(f"{path}: row {_row(df['_row'].iloc[i])}: time stamp {df[TIME].iloc[i]} of series "
                        f"'{df[ID].iloc[i]}' is off the {describe} grid (irregular or mixed frequencies); "
                        "give the right --freq or fix the time stamps")
    df = _trim_missing_ends(df, path)
    pos = _step_index(df, freq)
    same = np.r_[False, df[ID].to_numpy()[1:] == df[ID].to_numpy()[:-1]]
    steps = np.diff(pos, prepend=np.nan)
    coarsest = pd.Series(np.where(same, steps, np.nan)).groupby(df[ID].to_numpy(), sort=False).min()
    coarser = coarsest[coarsest > 1]
    if inferred and len(coarser):  # a series that never steps at the file's frequency has one of its own
        uid = coarser.index[0]
        raise DataError(f"{path}: series '{uid}' steps every {int(coarser.iloc[0])} x {describe}, not at the "
                        f"{describe} of the rest (mixed frequencies); split the file by frequency or give --freq")
    gap = same & (steps > 1)
    missing = df[TARGET].isna().to_numpy()
    holes = df[_covariates(df)].isna().to_numpy().any(axis=1)
    if not (gap.any() or missing.any() or holes.any()):
        return df
    if fill == "error":
        if gap.any():
            i = int(np.flatnonzero(gap)[0])
            raise DataError(f"{path}: series '{df[ID].iloc[i]}' has {int(gap.sum())} gap(s) at {describe}, the first "
                            f"between {df[TIME].iloc[i - 1]} and {df[TIME].iloc[i]} (row {_row(df['_row'].iloc[i])}); "
                            "fill them with --fill interpolate, ffill or zero, or give the right --freq")
        if missing.any():
            i = int(np.flatnonzero(missing)[0])
            raise DataError(f"{path}: row {_row(df['_row'].iloc[i])}: missing value in series '{df[ID].iloc[i]}' "
                            f"({int(missing.sum())} in all); fill them with --fill interpolate, ffill or zero")
        i = int(np.flatnonzero(holes)[0])
        name = next(c for c in _covariates(df) if pd.isna(df[c].iloc[i]))
        raise DataError(f"{path}: row {_row(df['_row'].iloc[i])}: missing value of covariate '{name}' in series "
                        f"'{df[ID].iloc[i]}'; fill it, or pass --fill interpolate, ffill or zero")
    return _fill_gaps(df, freq, pos.astype(np.int64), fill)


def _covariates(df: pd.DataFrame) -> list[str]:
    """The covariate columns a long frame carries beside unique_id, ds, y."""
    return [c for c in df.columns if c not in (ID, TIME, TARGET, "_row")]


def _trim_missing_ends(df: pd.DataFrame, path) -> pd.DataFrame:
    """Drop missing values before a series' first and after its last observation (it starts later, ends earlier)."""
    present = df[TARGET].notna()
    if not present.all():
        groups = present.groupby(df[ID], sort=False)
        started = groups.cumsum() > 0
        not_ended = present[::-1].groupby(df[ID][::-1], sort=False).cumsum()[::-1] > 0
        empty = groups.sum()
        if (empty == 0).any():
            raise DataError(f"{path}: series '{empty[empty == 0].index[0]}' has no values; remove it")
        df = df[started & not_ended].reset_index(drop=True)
    return df


def _fill_gaps(df: pd.DataFrame, freq: Frequency, pos: np.ndarray, fill: str) -> pd.DataFrame:
    """Every series on its full grid from its first to its last stamp, the holes filled by `fill`."""
    parts = []
    for (uid, part), part_pos in zip(df.groupby(ID, sort=False), np.split(pos, np.cumsum(
            df.groupby(ID, sort=False).size().to_numpy())[:-1])):
        n = int(part_pos[-1] - part_pos[0]) + 1
        extra = _covariates(part)
        if n == len(part) and part[[TARGET, *extra]].notna().all().all():
            parts.append(part)
            continue
        first = part[TIME].iloc[0]
        stamps = (first + freq.step * np.arange(n) if freq.alias is None
                  else pd.date_range(first, periods=n, freq=freq.alias))
        y = np.full(n, np.nan)
        y[part_pos - part_pos[0]] = part[TARGET].to_numpy()
        rows = np.full(n, -1)
        rows[part_pos - part_pos[0]] = part["_row"].to_numpy()
        columns = {TARGET: _filled(pd.Series(y), fill)}
        for name in extra:  # covariates: filled the same way; categories (statics) from their neighbours
            values = pd.Series(np.full(n, None, dtype=object))
            values[part_pos - part_pos[0]] = part[name].to_numpy(dtype=object)
            numeric = pd.api.types.is_numeric_dtype(part[name])
            columns[name] = _filled(values.astype(float), fill) if numeric else values.ffill().bfill().to_numpy()
        parts.append(pd.DataFrame({ID: uid, TIME: stamps, **columns, "_row": rows}))
    return pd.concat(parts, ignore_index=True)


def _filled(values: pd.Series, fill: str) -> np.ndarray:
    filled = {"interpolate": values.interpolate(), "ffill": values.ffill(), "zero": values.fillna(0.0)}[fill]
    return filled.to_numpy()
